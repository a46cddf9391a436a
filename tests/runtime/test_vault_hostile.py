"""Direct-Vault against a server that answers what Vault or OpenBao never would (a small
in-process HTTP server on 127.0.0.1): JSON of the wrong shape, JSON nested too deeply, an
answer far larger than any secret, an answer dripped a byte at a time. Each is a
VaultError naming the path, never the value, through the kernel as for the client."""

from __future__ import annotations

import http.server
import json
import logging
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from magcfg.runtime import Kernel
from magcfg.runtime.vault import SECRET_FAILED, DirectVault
from magcfg.secrets.vault import MAX_RESPONSE_BYTES, VaultError, vault_config
from magcfg.signing.keys import Ed25519PrivateKey

from ..net.slow import ends_within, self_signed, serve
from .fixtures import artifact_files, base_config, rename_write
from .test_vault import CANARY, Recorder, ref

MOUNT_V2 = b'{"data": {"type": "kv", "options": {"version": "2"}}}'
TOKEN = b'{"data": {"ttl": 0, "renewable": false}}'


class FakeVault:
    """Answers lookup-self with ``token`` and the mount's kind as Vault does, a lease's
    renewal with ``renewal``, and the secret's read with ``answer`` (bytes, a status and
    the bytes, or a handler of its own). ``keep_alive``: HTTP/1.1, a connection serves
    request after request; ``tls``: HTTPS with it."""

    def __init__(self, keep_alive: bool = False, tls: ssl.SSLContext | None = None) -> None:
        self.answer: Any = b"{}"
        self.token = TOKEN
        self.renewal = b"{}"
        self.stopping = threading.Event()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"
            served = 0
            """Requests this connection carried, this one included."""

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self.served += 1
                status, body = 200, fake.answer
                if "lookup-self" in self.path:
                    body = fake.token
                elif self.path == "/v1/sys/leases/renew":
                    self.rfile.read(int(self.headers.get("Content-Length") or 0))
                    body = fake.renewal
                elif "internal/ui/mounts" in self.path:
                    body = MOUNT_V2
                elif callable(body):
                    body(self)
                    return
                elif isinstance(body, tuple):
                    status, body = body
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_PUT = do_GET

        self.server = serve(Handler, tls)
        self.addr = f"http{'s' if tls else ''}://127.0.0.1:{self.server.server_address[1]}"

    def drip(self, body: bytes, pause: float, headers_too: bool) -> None:
        """Answer the secret's read with ``body``, one byte every ``pause`` seconds (from
        the status line with ``headers_too``, else from the body). ``reused`` then says
        whether that came on a connection that carried an earlier request."""
        head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body))
        self.reused: bool | None = None

        def answer(handler: Any) -> None:
            self.reused = handler.served > 1
            handler.close_connection = True
            data = head + body
            slow = 0 if headers_too else len(head)
            try:
                handler.wfile.write(data[:slow])
                for i in range(slow, len(data)):
                    if self.stopping.wait(pause):
                        return
                    handler.wfile.write(data[i:i + 1])
            except OSError:
                pass  # the client hung up: what it should do

        self.answer = answer

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake() -> Iterator[FakeVault]:
    served = FakeVault()
    yield served
    served.stop()


def _vault(fake: FakeVault, events: Recorder, **environ: str) -> DirectVault:
    config = vault_config({"VAULT_ADDR": fake.addr, "VAULT_TOKEN": CANARY + "-token",
                           **environ})
    return DirectVault(config, on_event=events, background=False)


def _kernel(tmp_path: Path, vault: DirectVault) -> Kernel:
    key = Ed25519PrivateKey.generate()
    (tmp_path / "k.pub").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    config = base_config(1)
    config["magds"]["password"] = "vault+direct://secret/app#password"
    rename_write(tmp_path / "art", artifact_files(config, 1, key))
    return Kernel(tmp_path / "art", [tmp_path / "k.pub"], environment="production",
                  direct_vault=vault, watch=False)


DEEP = b'{"data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
SHAPES = {
    "a list": json.dumps([CANARY, 2]).encode(),
    "data a string": json.dumps({"data": CANARY}).encode(),
    "metadata a string": json.dumps({"data": {"data": {"password": CANARY},
                                              "metadata": CANARY}}).encode(),
    "the secret's data a list": json.dumps({"data": {"data": [CANARY],
                                                     "metadata": {"version": 1}}}).encode(),
    "nested too deeply": DEEP,
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_an_answer_of_the_wrong_shape_is_a_vault_error_naming_the_path(
        shape: str, fake: FakeVault, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fake.answer = SHAPES[shape]
    events = Recorder()
    with _kernel(tmp_path, _vault(fake, events)) as kernel, \
            pytest.raises(VaultError) as info:
        kernel.secret("magds.password")
    message = info.value.format()
    assert f"Vault at {fake.addr} sent an answer to secret/data/app that is not Vault's JSON" \
        in message, message
    assert events.of(SECRET_FAILED)[0]["reference"] == "vault+direct://secret/app"
    assert CANARY not in message + events.text() + caplog.text


@pytest.mark.parametrize("body", [[CANARY], {"data": [CANARY]}, {"data": {"metadata": CANARY}}])
def test_a_404_body_of_the_wrong_shape_is_a_vault_error_naming_the_path(
        body: Any, fake: FakeVault) -> None:
    fake.answer = (404, json.dumps(body).encode())
    events = Recorder()
    with _vault(fake, events) as vault, pytest.raises(VaultError) as info:
        vault.value(ref("vault+direct://secret/app#password"))
    message = info.value.format()
    assert "sent an answer to secret/data/app that is not Vault's JSON" in message, message
    assert CANARY not in message + events.text()


def test_a_404_body_without_metadata_is_no_secret_there(fake: FakeVault) -> None:
    fake.answer = (404, json.dumps({"data": {"other": CANARY}, "errors": []}).encode())
    with _vault(fake, Recorder()) as vault, pytest.raises(VaultError) as info:
        vault.value(ref("vault+direct://secret/app#password"))
    assert "no secret at secret/app" in info.value.format()


@pytest.mark.parametrize("length", ["declared", "undeclared"])
def test_an_answer_larger_than_any_secret_is_a_vault_error_read_no_further(
        length: str, fake: FakeVault, tmp_path: Path) -> None:
    # The value goes on for 64 times the bound; whether the server says so up front
    # (Content-Length) or not (the connection's end marks the body's), the client stops
    # reading just past the bound.
    head = b'{"data": {"data": {"password": "' + CANARY.encode()
    tail = b'"}, "metadata": {"version": 1}}}'
    chunk = b"A" * (1 << 20)
    chunks = 64 * MAX_RESPONSE_BYTES // len(chunk)

    def huge(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        if length == "declared":
            handler.send_header("Content-Length", str(len(head) + chunks * len(chunk) + len(tail)))
        else:
            handler.close_connection = True
        handler.end_headers()
        try:
            handler.wfile.write(head)
            for _ in range(chunks):
                if fake.stopping.is_set():
                    break
                handler.wfile.write(chunk)
            handler.wfile.write(tail)
        except OSError:
            pass  # the client hung up: what it should do

    fake.answer = huge
    events = Recorder()
    with _kernel(tmp_path, _vault(fake, events)) as kernel, \
            pytest.raises(VaultError) as info:
        kernel.secret("magds.password")
    message = info.value.format()
    assert (f"Vault at {fake.addr} sent more than {MAX_RESPONSE_BYTES} bytes in answer to "
            "secret/data/app") in message, message
    assert events.of(SECRET_FAILED)[0]["reference"] == "vault+direct://secret/app"
    assert CANARY not in message + events.text()


# What no Vault sends for a lease duration or a TTL (a Go time.Duration): a number wider
# than the float deadlines it is turned into hold, a negative one, a fraction, NaN.
DURATIONS = {"400 digits": "1" + "0" * 400, "negative": "-60", "a fraction": "60.5",
             "NaN": "NaN", "true": "true"}


def _lease(duration: str) -> bytes:
    return (f'{{"data": {{"username": "{CANARY}"}}, "lease_id": "database/creds/app/1", '
            f'"lease_duration": {duration}, "renewable": true}}').encode()


@pytest.mark.parametrize("duration", list(DURATIONS))
@pytest.mark.parametrize("answer", ["lease", "renewal", "token"])
def test_a_lease_or_ttl_no_vault_sends_is_a_vault_error_naming_where(
        answer: str, duration: str, fake: FakeVault, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    given = DURATIONS[duration]
    fake.answer = _lease(given if answer == "lease" else "60")
    fake.renewal = _lease(given)
    if answer == "token":
        fake.token = f'{{"data": {{"ttl": {given}, "renewable": true}}}}'.encode()
    events = Recorder()
    where = {"lease": "database/creds/app", "renewal": "sys/leases/renew",
             "token": "auth/token/lookup-self"}[answer]
    said = f"Vault at {fake.addr} sent an answer to {where} that is not Vault's JSON"
    reference = ref("vault+direct://database/creds/app#username")
    # kv_mounts: no mount is KV v2, the reference is a leased read.
    with DirectVault(vault_config({"VAULT_ADDR": fake.addr, "VAULT_TOKEN": CANARY + "-token"}),
                     on_event=events, background=False, kv_mounts=set()) as vault:
        if answer == "renewal":
            assert vault.value(reference) == CANARY
            vault._cache["database", "creds/app"].renew_at = 0.0  # the renewal is due
            vault.maintain()  # reports, never raises
            failed = events.of(SECRET_FAILED)[0]
            assert (failed["stage"], failed["error"]) == ("renew", said)
            message = failed["error"]
        else:
            with pytest.raises(VaultError) as info:
                vault.value(reference)
            message = info.value.format()
            assert said in message, message
            assert events.of(SECRET_FAILED)[0]["reference"] == "vault+direct://database/creds/app"
    assert CANARY not in message + events.text() + caplog.text


SECRET = json.dumps({"data": {"data": {"password": CANARY}, "metadata": {"version": 1}}}).encode()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Callable[[bool, bool], FakeVault]]:
    """A FakeVault of the kind asked for (keep-alive, TLS), stopped after the test."""
    started: list[FakeVault] = []

    def serve(keep_alive: bool, tls: bool) -> FakeVault:
        context = None
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self_signed(tmp_path))
        started.append(FakeVault(keep_alive, context))
        return started[-1]

    yield serve
    for fake in started:
        fake.stop()


@pytest.mark.parametrize("transport", ["http", "http keep-alive", "https keep-alive"])
@pytest.mark.parametrize("headers_too", [False, True], ids=["body", "headers"])
def test_a_read_ends_at_the_timeout_however_slowly_vault_answers(
        transport: str, headers_too: bool, served: Callable[[bool, bool], FakeVault],
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    fake = served("keep-alive" in transport, transport.startswith("https"))
    fake.drip(SECRET, pause=0.2, headers_too=headers_too)
    events = Recorder()
    environ = {"VAULT_CLIENT_TIMEOUT": "1"}
    if transport.startswith("https"):
        environ["VAULT_CACERT"] = str(tmp_path / "server.crt")
    failed: list[VaultError] = []

    def read() -> None:
        with _kernel(tmp_path, _vault(fake, events, **environ)) as kernel, \
                pytest.raises(VaultError) as info:
            kernel.secret("magds.password")
        failed.append(info.value)

    # Each byte comes well within the 1 s a read may wait; the answer would take minutes.
    assert ends_within(read, 20)
    assert fake.reused is ("keep-alive" in transport)  # the dripping connection was reused
    message = failed[0].format()
    assert f"Vault at {fake.addr} did not answer secret/data/app within 1 s " \
           "(VAULT_CLIENT_TIMEOUT)" in message, message
    assert events.of(SECRET_FAILED)[0]["reference"] == "vault+direct://secret/app"
    assert CANARY not in message + events.text() + caplog.text


def test_a_refresh_ends_at_the_timeout_and_the_value_is_not_served_stale(
        served: Callable[[bool, bool], FakeVault]) -> None:
    fake = served(True, False)
    fake.answer = SECRET
    events = Recorder()
    with _vault(fake, events, VAULT_CLIENT_TIMEOUT="1") as vault:
        reference = ref("vault+direct://secret/app#password")
        assert vault.value(reference) == CANARY
        fake.drip(SECRET, pause=0.2, headers_too=False)
        failed: list[VaultError] = []

        def refresh() -> None:
            with pytest.raises(VaultError) as info:
                vault.refresh()
            failed.append(info.value)

        assert ends_within(refresh, 20)
        assert "did not answer secret/data/app within 1 s" in failed[0].format()
        assert events.of(SECRET_FAILED)[0]["stage"] == "refresh"
        fake.answer = SECRET  # the next read goes to the server again
        assert vault.value(reference) == CANARY
