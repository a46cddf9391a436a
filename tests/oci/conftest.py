"""A real OCI registry on 127.0.0.1 (go-containerregistry's, pinned in scripts/tools.sh),
started for the session and stopped at its end; tests use a repository of their own."""

from __future__ import annotations

import http.client
import http.server
import itertools
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.delivery.tools import tool
from tests.net.slow import resolver  # noqa: F401  (fixture)

_PORT = re.compile(rb"serving on port (\d+)")
_names = itertools.count()


class LocalRegistry:
    """``crane registry serve`` bound to 127.0.0.1 (in memory, or on ``disk`` so that it
    can be stopped and started again with the same content and port)."""

    def __init__(self, disk: Path | None = None) -> None:
        self.disk = disk
        self.port: int | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.reader: threading.Thread | None = None

    def start(self) -> LocalRegistry:
        if self.disk is not None:
            self.disk.mkdir(parents=True, exist_ok=True)
        address = f"127.0.0.1:{self.port or 0}"
        args = [tool("crane"), "registry", "serve", "--address", address]
        if self.disk is not None:
            args += ["--disk", str(self.disk)]
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert self.process.stdout is not None
        seen = b""
        while not (found := _PORT.search(seen)):
            line = self.process.stdout.readline()
            assert line, seen  # the registry exited
            seen += line
        self.port = int(found.group(1))
        # Keep reading its log, so that a full pipe never blocks it.
        self.reader = threading.Thread(target=self.process.stdout.read, daemon=True)
        self.reader.start()
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
            self.process = None
        if self.reader is not None:
            self.reader.join(30)  # the log's end: the registry has exited
            self.reader = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def repository(self, stem: str = "magcfg") -> str:
        """A fresh ``HOST/REPO`` for one test."""
        return f"{self.host}/{stem}-{next(_names)}"


@pytest.fixture(scope="session")
def registry() -> Iterator[LocalRegistry]:
    served = LocalRegistry().start()
    try:
        yield served
    finally:
        served.stop()


def crane(*args: str) -> str:
    done = subprocess.run([tool("crane"), *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def wait_for(predicate: object, timeout: float = 30.0) -> None:
    """Poll ``predicate`` until true (the deadline is a safety net, never the assertion)."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


class _Forward(http.server.BaseHTTPRequestHandler):
    """Passes every request on to ``upstream`` (a registry), answer and all."""

    upstream = ""

    def log_message(self, *args: object) -> None:
        pass

    def _any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        conn = http.client.HTTPConnection(self.upstream, timeout=30)
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() in ("content-type", "accept", "content-length")}
        conn.request(self.command, self.path, body=body, headers=headers)
        answer = conn.getresponse()
        data = answer.read()
        self.send_response(answer.status)
        for k, v in answer.getheaders():
            if k.lower() in ("content-type", "docker-content-digest", "location"):
                self.send_header(k, v.replace(f"http://{self.upstream}", ""))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = _any


class _SharedPortServer(http.server.ThreadingHTTPServer):
    allow_reuse_port = True


class Front:
    """An address in front of a registry that can go away and come back (same port,
    same content behind it): a registry outage, as its clients see it.

    Its port stays bound while it is away, by a socket that never listens (connections
    are refused, as by a registry that is down): no other process can take the port
    before it comes back. Only sockets that share the port (SO_REUSEPORT, this user)
    can bind it too, as the server does. :meth:`close` lets the port go."""

    def __init__(self, upstream: str) -> None:
        self.handler = type("Forward", (_Forward,), {"upstream": upstream})
        self.held = socket.socket()
        self.held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        self.held.bind(("127.0.0.1", 0))
        self.port: int = self.held.getsockname()[1]
        self.server: http.server.ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> Front:
        self.server = _SharedPortServer(("127.0.0.1", self.port), self.handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        if self.thread is not None:
            self.thread.join()
            self.thread = None

    def close(self) -> None:
        self.stop()
        self.held.close()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"
