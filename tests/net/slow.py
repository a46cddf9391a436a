"""For servers on 127.0.0.1 that answer a byte now and then (``serve``) (each wait of the client for
the network is short, the whole answer takes minutes): a certificate for one on TLS, the
bound a test waits for a call that must end at its deadline, and a resolver that hangs."""

from __future__ import annotations

import collections
import contextlib
import datetime
import http.server
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from magcfg.net import deadline


class Server(http.server.ThreadingHTTPServer):
    """Answers each connection in a thread of its own, and ends them all when it closes:
    ``server_close()`` shuts the connections still open (one kept alive for a next
    request its client never sends, one a handler still answers) and joins the threads.
    A test's server leaves no thread behind to answer, or to fail, in a later test."""

    daemon_threads = True  # the process's exit never waits on a handler
    block_on_close = False  # server_close() joins them itself, after shutting their sockets

    def __init__(self, handler: type[http.server.BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self._lock = threading.Lock()
        self._open: set[Any] = set()
        self._answering: list[threading.Thread] = []
        self.serving: threading.Thread | None = None

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(target=self._answer, args=(request, client_address),
                                  daemon=True)
        with self._lock:
            self._open.add(request)
            self._answering = [t for t in self._answering if t.is_alive()] + [thread]
        thread.start()

    def _answer(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._lock:
                self._open.discard(request)

    def server_close(self) -> None:
        super().server_close()
        if self.serving is not None:
            self.serving.join(30)
        with self._lock:
            still_open, threads = list(self._open), list(self._answering)
        for conn in still_open:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(30)


def serve(handler: type[http.server.BaseHTTPRequestHandler], tls: ssl.SSLContext | None
          ) -> Server:
    """A server on a free port of 127.0.0.1, over TLS with ``tls``, answering in threads
    of its own (``shutdown()`` and ``server_close()`` it when done)."""
    server = Server(handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    server.serving = threading.Thread(target=server.serve_forever, daemon=True)
    server.serving.start()
    return server


def ends_within(call: Callable[[], object], within: float) -> bool:
    """Whether ``call`` returned within ``within`` seconds (a bound only a hang exceeds)."""
    done = threading.Event()

    def run() -> None:
        call()
        done.set()

    threading.Thread(target=run, daemon=True).start()
    return done.wait(within)


def self_signed(directory: Path) -> tuple[Path, Path]:
    """(certificate, key) PEM files for a server on 127.0.0.1 (and localhost), the
    certificate its own CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "server.crt", directory / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class Resolver:
    """``socket.getaddrinfo`` for names under ``.resolver.test`` (every other name goes
    to the real one): :attr:`HANG` is answered only once :attr:`release` is set (a
    resolver that hangs, which no real DNS server here can play), any other such name
    is 127.0.0.1. Counts the lookups of each."""

    HANG = "hangs.resolver.test"

    def __init__(self) -> None:
        self.real = socket.getaddrinfo
        self.release = threading.Event()
        self.lookups: collections.Counter[str] = collections.Counter()

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(".resolver.test"):
            self.lookups[host] += 1
            if host == self.HANG:
                self.release.wait(120)
            host = "127.0.0.1"
        return self.real(host, port, *args, **kwargs)


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Resolver]:
    """A :class:`Resolver` in the place of ``socket.getaddrinfo`` for one test."""
    fake = Resolver()
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    yield fake
    fake.release.set()
    # A lookup of a name of ours ends on its own thread after the release; one still in
    # magcfg's table would be shared by the next test's request (answered 127.0.0.1).
    waited = time.monotonic() + 10
    while _lookups_of_ours():
        assert time.monotonic() < waited, "a lookup of the fake resolver did not end"
        time.sleep(0.01)


def _lookups_of_ours() -> bool:
    # Under the table's lock: a lookup's thread removes its entry as it ends, and a dict
    # that changes size while it is walked raises RuntimeError.
    with deadline._lookups_lock:
        return any(host.endswith(".resolver.test") for host, _ in deadline._lookups)
