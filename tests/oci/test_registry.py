"""The registry client: docker-config credentials and a registry's token challenge, against
the real local registry behind a token-checking front (a real HTTP server)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import html
import http.client
import http.server
import json
import re
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from magcfg.errors import UsageError
from magcfg.oci.reference import parse_reference
from magcfg.oci.registry import MAX_MANIFEST_BYTES, Registry, RegistryError, docker_credentials
from magcfg.secrets.redaction import REDACTED
from tests.conftest import Project, failed_cleanly
from tests.net.slow import Resolver, ends_within, self_signed
from tests.oci.conftest import LocalRegistry, crane
from tests.oci.test_publish import _publish, signed  # noqa: F401  (fixture)

USER, PASSWORD, TOKEN = "ci", "s3cret-canary-7f3a", "token-9c1e"


class _Handler(http.server.BaseHTTPRequestHandler):
    """A test server's handler: quiet, and ``_answer`` to send a status, headers and a
    body (none to a HEAD)."""

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class _AuthFront(_Handler):
    """Bearer-token auth in front of a registry, as Docker Hub, GHCR and Harbor do it."""

    upstream = ""
    realm = ""  # the token service named in the challenge: by default this server's /token
    seen: list[str]

    def _any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        if self.path.startswith("/token"):
            basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            if self.headers.get("Authorization") != basic:
                self._reply(401, {}, b'{"errors":[{"code":"UNAUTHORIZED"}]}')
                return
            self._reply(200, {"Content-Type": "application/json"},
                        json.dumps({"token": TOKEN}).encode())
            return
        self.seen.append(self.headers.get("Authorization") or "")
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            host = self.server.server_address  # type: ignore[attr-defined]
            realm = self.realm or f"http://127.0.0.1:{host[1]}/token"
            challenge = (f'Bearer realm="{realm}",'
                         'service="front",scope="repository:x:pull,push"')
            self._reply(401, {"WWW-Authenticate": challenge},
                        b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}')
            return
        conn = http.client.HTTPConnection(self.upstream, timeout=30)
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() in ("content-type", "accept", "content-length")}
        conn.request(self.command, self.path, body=body, headers=headers)
        answer = conn.getresponse()
        data = answer.read()
        out = {k: v for k, v in answer.getheaders()
               if k.lower() in ("content-type", "docker-content-digest", "location")}
        self._reply(answer.status, out, data, head=self.command == "HEAD")

    def _reply(self, status: int, headers: dict[str, str], body: bytes, head: bool = False) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v.replace(f"http://{self.upstream}", ""))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = _any


@pytest.fixture
def front(registry: LocalRegistry) -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []
    handler = type("Front", (_AuthFront,), {"upstream": registry.host, "seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def _serve(handler: type[http.server.BaseHTTPRequestHandler],
           tls: ssl.SSLContext | None = None) -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_credentials_go_to_no_plain_http_token_service_of_an_https_registry(
        scheme: str, registry: LocalRegistry, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Docker's leniency: a registry reached over HTTPS that named an http:// realm had
    the credentials sent there in clear text."""
    heard: list[str] = []

    class Plain(_Handler):
        def do_GET(self) -> None:
            heard.append(self.headers.get("Authorization") or "")
            self.send_response(200)
            body = json.dumps({"token": TOKEN}).encode()
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert, key = self_signed(tmp_path)
    context.load_cert_chain(cert, key)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # what the client trusts
    plain = _serve(Plain)
    seen: list[str] = []
    front_handler = type("Front", (_AuthFront,), {"upstream": registry.host, "seen": seen})
    front = _serve(front_handler, context)
    port = front.server_address[1]
    front_handler.realm = (f"http://127.0.0.1:{plain.server_address[1]}/token"
                           if scheme == "http" else f"https://127.0.0.1:{port}/token")
    try:
        client = Registry(parse_reference(f"oci://127.0.0.1:{port}/magcfg/auth:production"),
                          credentials=(USER, PASSWORD))
        if scheme == "https":
            assert client.manifest("magcfg/auth", "production") is None  # the real registry's 404
            assert f"Bearer {TOKEN}" in seen
            return
        with pytest.raises(RegistryError) as info:
            client.manifest("magcfg/auth", "production")
        assert heard == []
        message = info.value.format()
        assert (f"the token service http://127.0.0.1:{plain.server_address[1]}/token that "
                f"the registry names is plain HTTP, and 127.0.0.1:{port} is reached over "
                "HTTPS: its credentials are not sent there") in message, message
        assert PASSWORD not in message
    finally:
        for server in (front, plain):
            server.shutdown()
            server.server_close()


def _docker_config(tmp_path: Path, host: str, auth: dict[str, str]) -> Path:
    directory = tmp_path / "docker"
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps({"auths": {host: auth}}))
    return directory


def test_publish_authenticates_with_the_docker_config(
        signed: Project, front: tuple[str, list[str]], registry: LocalRegistry,  # noqa: F811
        tmp_path: Path) -> None:
    host, seen = front
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    config = _docker_config(tmp_path, host, {"auth": auth})
    done = signed.run("publish", "--env", "production", "--key",
                      str(signed.root.parent / "keys/magcfg.key"), "--insecure",
                      f"oci://{host}/magcfg/auth", env={"DOCKER_CONFIG": str(config)})
    assert done.returncode == 0, done.stderr
    assert f"Bearer {TOKEN}" in seen
    assert "production" not in crane("ls", f"{registry.host}/magcfg/auth")
    assert PASSWORD not in done.stdout + done.stderr


def test_publish_without_credentials_says_so(
        signed: Project, front: tuple[str, list[str]], tmp_path: Path) -> None:  # noqa: F811
    host, _ = front
    config = _docker_config(tmp_path, "other.example.com", {"username": "u", "password": "p"})
    done = signed.run("publish", "--env", "production", "--key",
                      str(signed.root.parent / "keys/magcfg.key"), "--insecure",
                      f"oci://{host}/magcfg/auth", env={"DOCKER_CONFIG": str(config)})
    err = failed_cleanly(done, 1)
    assert err == (f"oci://{host}/magcfg/auth: error: token request to http://{host}/token: "
                   "HTTP 401 (UNAUTHORIZED) (credentials: docker login, or "
                   "$DOCKER_CONFIG/config.json)\n")


def test_docker_credentials_forms(tmp_path: Path) -> None:
    auth = base64.b64encode(b"user:pa:ss").decode()
    config = _docker_config(tmp_path, "https://reg.example.com", {"auth": auth})
    env = {"DOCKER_CONFIG": str(config)}
    assert docker_credentials("reg.example.com", env) == ("user", "pa:ss")
    assert docker_credentials("other.example.com", env) is None
    assert docker_credentials("x", {"DOCKER_CONFIG": str(tmp_path / "none")}) is None
    (config / "config.json").write_text('{"auths": {"reg.example.com": {"auth": "%%%"}}}')
    with pytest.raises(UsageError) as info:
        docker_credentials("reg.example.com", env)
    assert info.value.format() == (f"{config}/config.json: error: is not base64 of "
                                   "user:password [auths.reg.example.com.auth]")


def test_a_blob_that_does_not_match_its_digest_is_refused(registry: LocalRegistry) -> None:
    repo = registry.repository()
    client = Registry(parse_reference(f"oci://{repo}"), insecure=True)
    name = client.reference.repository
    digest = client.put_blob(name, b"hello")
    assert client.blob(name, digest) == b"hello"
    with pytest.raises(RegistryError) as info:
        client.blob(name, "sha256:" + "0" * 64)
    assert "GET blob sha256:000" in info.value.format()


def test_a_lookup_that_hangs_ends_the_request_at_its_deadline(resolver: Resolver) -> None:
    client = Registry(parse_reference(f"oci://{Resolver.HANG}/acme/cfg:production"),
                      deadline=1.0, credentials=None)
    failed: list[str] = []

    def fetch() -> None:
        with pytest.raises(RegistryError) as info:
            client.manifest_digest("acme/cfg", "production")
        failed.append(info.value.format())

    assert ends_within(fetch, 10)
    assert (f"registry {Resolver.HANG} unreachable: no whole answer to HEAD "
            f"https://{Resolver.HANG}/v2/acme/cfg/manifests/production within 1 s") in failed[0]


@pytest.fixture
def ftp_drip() -> Iterator[int]:
    """An FTP server's port that sends its greeting a byte every half second."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()
    dripping: list[threading.Thread] = []

    def drip(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            for byte in b"220 a greeting that takes minutes to arrive\r\n" * 20:
                if stop.wait(0.5):
                    return
                conn.sendall(bytes([byte]))

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = server.accept()
                dripping.append(threading.Thread(target=drip, args=(conn,), daemon=True))
                dripping[-1].start()

    accepting = threading.Thread(target=accept, daemon=True)
    accepting.start()
    yield server.getsockname()[1]
    stop.set()
    # A close() alone leaves accept() waiting for ever on Linux: shutdown() ends it.
    server.shutdown(socket.SHUT_RDWR)
    accepting.join(30)
    server.close()
    for thread in dripping:
        thread.join(30)


def test_a_redirect_to_ftp_is_refused_within_the_deadline(ftp_drip: int) -> None:
    # urllib follows it (not file:, which it refuses), with a handler no deadline ends.
    target = f"ftp://127.0.0.1:{ftp_drip}/x"

    class Redirecting(_Handler):
        def do_HEAD(self) -> None:
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirecting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        host = f"127.0.0.1:{server.server_address[1]}"
        client = Registry(parse_reference(f"oci://{host}/acme/cfg:production"), insecure=True,
                          deadline=2.0, credentials=None)
        failed: list[str] = []

        def fetch() -> None:
            with pytest.raises(RegistryError) as info:
                client.manifest_digest("acme/cfg", "production")
            failed.append(info.value.format())

        assert ends_within(fetch, 10), "the redirect outlasted the request's deadline"
        assert f"registry {host} unreachable: " in failed[0], failed[0]
        assert "redirected to a ftp: URL; only HTTP(S) redirects are followed" in failed[0]
    finally:
        server.shutdown()
        server.server_close()


def test_credentials_a_registry_quotes_back_are_not_shown() -> None:
    # A registry (or a proxy before it) that quotes the request's Authorization header
    # in its error: the message reaches events, logs and the audit log.
    basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

    class Quoting(_Handler):
        def do_GET(self) -> None:
            sent = self.headers.get("Authorization")
            if sent is None:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="registry"')
                body = b"{}"
            else:
                self.send_response(403)
                body = json.dumps({"errors": [
                    {"code": "DENIED", "message": f"{sent} may not read this"},
                    {"code": "DENIED", "message": f"({USER}:{PASSWORD})"}]}).encode()
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quoting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        host = f"127.0.0.1:{server.server_address[1]}"
        client = Registry(parse_reference(f"oci://{host}/acme/cfg:production"), insecure=True,
                          credentials=(USER, PASSWORD))
        with pytest.raises(RegistryError) as info:
            client.manifest("acme/cfg", "production")
        text = info.value.format()
        assert PASSWORD not in text and basic not in text, text
        assert ("HTTP 403 (Basic <redacted> may not read this; (<redacted>))" in text), text
    finally:
        server.shutdown()
        server.server_close()


def _realm_errors(handler: type[http.server.BaseHTTPRequestHandler], password: str
                  ) -> tuple[str, list[str]]:
    """The registry's host and the errors of two manifest requests to a server of
    ``handler`` with ``password``: the first sends the credentials the second's token
    realm quotes."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        host = f"127.0.0.1:{server.server_address[1]}"
        client = Registry(parse_reference(f"oci://{host}/acme/cfg:production"), insecure=True,
                          credentials=(USER, password))
        texts = []
        for _ in range(2):
            with pytest.raises(RegistryError) as info:
                client.manifest("acme/cfg", "production")
            texts.append(info.value.format())
        return host, texts
    finally:
        server.shutdown()
        server.server_close()


def test_credentials_a_registry_writes_into_a_malformed_answer_are_not_shown() -> None:
    # http.client's error quotes the status line it could not read: a registry that
    # writes the request's Authorization header there put the docker password, as
    # base64, into the error every event, log line and audit record shows.
    basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

    class Quoting(_Handler):
        def do_GET(self) -> None:
            sent = self.headers.get("Authorization")
            if sent is None:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="registry"')
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")
            else:
                self.wfile.write(f"HTTP/1.1 abc {sent} {USER}:{PASSWORD}\r\n\r\n".encode())

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quoting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        host = f"127.0.0.1:{server.server_address[1]}"
        client = Registry(parse_reference(f"oci://{host}/acme/cfg:production"), insecure=True,
                          credentials=(USER, PASSWORD))
        with pytest.raises(RegistryError) as info:
            client.manifest("acme/cfg", "production")
        text = info.value.format()
        assert PASSWORD not in text and basic not in text, text
        assert f"unreachable: HTTP/1.1 abc Basic {REDACTED} {REDACTED}" in text, text
    finally:
        server.shutdown()
        server.server_close()


def test_credentials_a_registry_writes_into_a_token_realm_are_not_shown() -> None:
    # The realm of a bearer challenge is the registry's own words too: one that writes
    # the Authorization header it was sent into it, then has its token service fail,
    # put the docker password, as base64, into the error naming the token service.
    basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

    class Quoting(_Handler):
        def do_GET(self) -> None:
            sent = self.headers.get("Authorization")
            host = f"127.0.0.1:{self.server.server_address[1]}"
            self.send_response(500 if self.path.startswith("/token") else 401)
            if sent is None:
                self.send_header("WWW-Authenticate", 'Basic realm="registry"')
            elif not self.path.startswith("/token"):
                self.send_header("WWW-Authenticate", f'Bearer realm="http://{host}/token/'
                                 f'{sent.split()[-1]}/{USER}:{PASSWORD}",service="r"')
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    host, texts = _realm_errors(Quoting, PASSWORD)
    assert f"token request to http://{host}/token/{REDACTED}/{REDACTED}: HTTP 500" in \
        texts[1], texts
    for text in texts:
        assert PASSWORD not in text and basic not in text, text


@pytest.mark.parametrize("hex_case", ["upper", "lower", "mixed", "every byte"])
def test_credentials_a_registry_writes_percent_encoded_into_a_token_realm_are_not_shown(
        hex_case: str) -> None:
    # A realm is a URL: a registry that writes what it was sent into its query encodes
    # it there (`+`, `/` and `=` of base64 and of an ECR password as `%2B`, `%2F`, `%3D`).
    import urllib.parse

    password = "eyJwYXlsb2FkIjoi+Zk9/Qw==:s3cret canary@7f3a"
    basic = base64.b64encode(f"{USER}:{password}".encode()).decode()

    class Quoting(_Handler):
        def do_GET(self) -> None:
            sent = self.headers.get("Authorization")
            host = f"127.0.0.1:{self.server.server_address[1]}"
            self.send_response(500 if self.path.startswith("/token") else 401)
            if sent is None:
                self.send_header("WWW-Authenticate", 'Basic realm="registry"')
            elif not self.path.startswith("/token"):
                query = urllib.parse.urlencode({"basic": sent.split()[-1], "pw": password,
                                                "login": f"{USER}:{password}"})
                if hex_case == "lower":  # RFC 3986: %2b is %2B
                    query = re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), query)
                elif hex_case == "mixed":  # %2b%3D: each escape's case its own
                    cases = iter([str.lower, str.upper] * len(query))
                    query = re.sub(r"%[0-9A-F]{2}", lambda m: next(cases)(m.group()), query)
                elif hex_case == "every byte":  # an unreserved byte may be escaped too
                    query = "&".join(f"{name}={''.join(f'%{b:02X}' for b in value.encode())}"
                                     for name, value in (("basic", sent.split()[-1]),
                                                         ("pw", password),
                                                         ("login", f"{USER}:{password}")))
                self.send_header("WWW-Authenticate", f'Bearer realm="http://{host}/token'
                                 f'?{query}",service="r"')
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    _, texts = _realm_errors(Quoting, password)
    assert "HTTP 500" in texts[1], texts
    for text in texts:
        for form in (password, basic, f"{USER}:{password}"):
            for shown in (form, urllib.parse.quote(form, safe=""),
                          urllib.parse.quote_plus(form, safe="")):
                assert shown not in text and shown.lower() not in text.lower(), text
        decoded = urllib.parse.unquote_plus(text)
        assert password not in decoded and basic not in decoded, text
        assert "%2b" not in text.lower() and "Zk9" not in text, text


@pytest.mark.parametrize("nesting", ["url in a url", "json in a url"])
def test_credentials_a_token_realm_holds_encoded_twice_are_not_shown(nesting: str) -> None:
    # A realm's query may carry a URL (`?next=https%3A%2F%2Fuser%3Apw%40host`), the
    # credential then encoded for the inner URL's userinfo and again for the outer
    # query (`%2540` for `@`), or JSON a Go service wrote (`&` and `<` as `\u0026`,
    # `\u003c`; `/` as `\/`), then percent-encoded: each of its bytes escaped or not.
    import urllib.parse

    password = "Xq7&k<9/p@ss+w0rd=é"
    basic = base64.b64encode(f"{USER}:{password}".encode()).decode()

    def go_json(value: str) -> str:
        body = json.dumps(value)[1:-1]
        return (body.replace("&", "\\u0026").replace("<", "\\u003c")
                .replace(">", "\\u003e").replace("/", "\\/"))

    class Quoting(_Handler):
        def do_GET(self) -> None:
            sent = self.headers.get("Authorization")
            host = f"127.0.0.1:{self.server.server_address[1]}"
            self.send_response(500 if self.path.startswith("/token") else 401)
            if sent is None:
                self.send_header("WWW-Authenticate", 'Basic realm="registry"')
            elif not self.path.startswith("/token"):
                if nesting == "url in a url":
                    inner = (f"https://{urllib.parse.quote(USER, safe='')}:"
                             f"{urllib.parse.quote(password, safe='')}@auth.example/"
                             f"?basic={urllib.parse.quote(sent.split()[-1], safe='')}")
                else:
                    inner = (f'{{"pw":"{go_json(password)}",'
                             f'"basic":"{go_json(sent.split()[-1])}"}}')
                query = urllib.parse.urlencode({"next": inner})
                self.send_header("WWW-Authenticate", f'Bearer realm="http://{host}/token'
                                 f'?{query}",service="r"')
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    _, texts = _realm_errors(Quoting, password)
    assert "HTTP 500" in texts[1], texts
    for text in texts:
        shown = text
        for _ in range(3):  # each layer of encoding undone
            shown = urllib.parse.unquote(shown)
        shown = re.sub(r"\\u([0-9a-f]{4})", lambda m: chr(int(m.group(1), 16)), shown)
        shown = shown.replace("\\/", "/")
        for form in (password, basic):
            assert form not in shown, text
        assert "Xq7" not in text and "WHE3" not in text, text


@pytest.mark.parametrize("header", ["sha256:" + "0" * 64 + "/../../../v2/other/manifests/x",
                                    "../../v2/other/manifests/latest", "latest"])
def test_a_tag_answered_with_no_digest_is_refused_before_it_is_asked_for(header: str) -> None:
    """The digest a registry answers a tag with (``Docker-Content-Digest``) is the
    registry's word: one that is no ``sha256:HEX`` goes into no further request (a path
    of its choosing, a manifest fetched by tag where its bytes are checked by digest) and
    is refused, naming the tag, as every other answer that is no digest is."""
    asked: list[str] = []

    class Lying(_Handler):
        def do_HEAD(self) -> None:
            asked.append(f"HEAD {self.path}")
            self.send_response(200)
            self.send_header("Docker-Content-Digest", header)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            asked.append(f"GET {self.path}")
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Lying)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        host = f"127.0.0.1:{server.server_address[1]}"
        client = Registry(parse_reference(f"oci://{host}/acme/cfg:production"), insecure=True,
                          credentials=None)
        with pytest.raises(RegistryError) as info:
            client.manifest_digest("acme/cfg", "production")
        assert info.value.format() == (
            f"oci://{host}/acme/cfg:production: error: the registry answered tag production "
            f"with digest {header!r}, which is no sha256 digest")
        assert asked == ["HEAD /v2/acme/cfg/manifests/production"]
    finally:
        server.shutdown()
        server.server_close()


_ECHOED = "Pw&<canary>?7f3a-x1"
"""A password whose ``user:password`` is padded in base64 and holds a ``/`` there, with
characters HTML escapes."""


def _base64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize("echoed", [
    _base64(f"{USER}:{_ECHOED}").rstrip("="),  # the Authorization header, unpadded
    _base64(_ECHOED),  # the password alone
    _base64(_ECHOED).rstrip("="),
    base64.urlsafe_b64encode(f"{USER}:{_ECHOED}".encode()).decode(),
    "token" + _base64(json.dumps({"user": USER, "password": _ECHOED})),  # glued, in a document
    _base64(f"{USER}:{_ECHOED}")[:12] + "\r\n    " + _base64(f"{USER}:{_ECHOED}")[12:],
    html.escape(_ECHOED),  # a proxy's HTML error page: &amp;&lt;
    "".join(f"&#{ord(char)};" for char in _ECHOED),
    "".join(f"&#X{ord(char):02X};" for char in _ECHOED),
    _ECHOED[:8] + "\n" + _ECHOED[8:],  # a long message wrapped
    _ECHOED[:2] + "\n  %26%3C" + _ECHOED[4:],
], ids=["basic unpadded", "password", "password unpadded", "base64url", "glued document",
        "wrapped base64", "html named", "html decimal", "html hex", "wrapped", "wrapped url"])
def test_credentials_a_registry_quotes_back_encoded_are_not_shown(echoed: str) -> None:
    """A registry (or a proxy before it) quotes the credentials in its error in a form of
    its own: base64 padded or not, of the password alone or of a document holding it,
    HTML character references, a line break inside. Each is masked; each showed whole."""
    class Quoting(_Handler):
        def do_GET(self) -> None:
            if self.headers.get("Authorization") is None:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="registry"')
                body = b"{}"
            else:
                self.send_response(403)
                body = json.dumps({"errors": [{"code": "DENIED",
                                               "message": f"denied: {echoed} (sent)"}]}).encode()
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    _, texts = _realm_errors(Quoting, _ECHOED)
    for text in texts:
        assert f"HTTP 403 (denied: {REDACTED} (sent))" in text, text
        for form in (_ECHOED, echoed, *echoed.split("\n")):
            assert form.strip() not in text, text


def test_credentials_a_registry_writes_into_an_upload_location_are_not_shown() -> None:
    # The upload's URL is the registry's (its Location): one that writes the request's
    # Authorization header there, then answers the upload with more than a manifest's
    # bound, put the docker password, as base64, into the error naming that URL.
    basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

    class Quoting(_Handler):
        def do_HEAD(self) -> None:
            sent = self.headers.get("Authorization")
            self._answer(404 if sent else 401,
                         {} if sent else {"WWW-Authenticate": 'Basic realm="registry"'})

        def do_POST(self) -> None:
            sent = self.headers.get("Authorization") or ""
            self._answer(202, {"Location": f"/upload?auth={sent.split()[-1]}"})

        def do_PUT(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self._answer(201, {}, b"x" * (MAX_MANIFEST_BYTES + 1))

    server = _serve(Quoting)
    try:
        host = f"127.0.0.1:{server.server_address[1]}"
        client = Registry(parse_reference(f"oci://{host}/acme/cfg:production"), insecure=True,
                          credentials=(USER, PASSWORD))
        with pytest.raises(RegistryError) as info:
            client.put_blob("acme/cfg", b"layer")
        message = info.value.format()
    finally:
        server.shutdown()
        server.server_close()
    assert f"PUT http://{host}/upload?auth={REDACTED}&digest=" in message, message
    assert basic not in message and PASSWORD not in message


def test_credentials_a_registry_writes_into_a_digest_header_are_not_shown() -> None:
    # A tag's digest is the registry's words (Docker-Content-Digest), quoted when it is
    # no digest: one that writes the request's Authorization header there.
    basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

    class Quoting(_Handler):
        def do_HEAD(self) -> None:
            sent = self.headers.get("Authorization")
            self.send_response(200 if sent else 401)
            if sent:
                self.send_header("Docker-Content-Digest", f"sha256:{sent}")
            else:
                self.send_header("WWW-Authenticate", 'Basic realm="registry"')
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = _serve(Quoting)
    try:
        host = f"127.0.0.1:{server.server_address[1]}"
        client = Registry(parse_reference(f"oci://{host}/acme/cfg:production"), insecure=True,
                          credentials=(USER, PASSWORD))
        with pytest.raises(RegistryError) as info:
            client.manifest_digest("acme/cfg", "production")
        message = info.value.format()
    finally:
        server.shutdown()
        server.server_close()
    assert f"with digest 'sha256:Basic {REDACTED}', which is no sha256 digest" in message, \
        message
    assert basic not in message and PASSWORD not in message


class _Uploads(_Handler):
    """A registry that asks for basic auth and answers a blob upload's start with
    ``location``; a PUT it receives (there, or as another server) is recorded in ``put``
    as (its Authorization header, its body)."""

    location = ""
    put: list[tuple[str | None, bytes]]

    def do_HEAD(self) -> None:
        sent = self.headers.get("Authorization")
        self._answer(404 if sent else 401,
                     {} if sent else {"WWW-Authenticate": 'Basic realm="registry"'})

    def do_POST(self) -> None:
        port = str(self.server.server_address[1])
        self._answer(202, {"Location": self.location.replace("SELF", port)})

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.put.append((self.headers.get("Authorization"), body))
        self._answer(201, {})


def _uploads(location: str) -> tuple[http.server.ThreadingHTTPServer, list[tuple[str | None, bytes]]]:
    put: list[tuple[str | None, bytes]] = []
    return _serve(type("Uploads", (_Uploads,), {"location": location, "put": put})), put


@pytest.mark.parametrize("storage", ["another host name", "another port", "the registry"])
def test_an_upload_goes_where_the_registry_says_with_its_credentials_to_the_registry_only(
        storage: str) -> None:
    # docker's rule: an upload's URL may be another server's (the registry's storage);
    # the registry's credentials go to the registry alone, never to whoever it names.
    elsewhere, received = _uploads("")
    port = elsewhere.server_address[1]
    location = {"another host name": f"http://localhost:{port}/upload?id=1",
                "another port": f"http://127.0.0.1:{port}/upload?id=1",
                "the registry": "http://127.0.0.1:SELF/upload?id=1"}[storage]
    registry, put = _uploads(location)
    try:
        host = f"127.0.0.1:{registry.server_address[1]}"
        client = Registry(parse_reference(f"oci://{host}/acme/cfg:production"), insecure=True,
                          credentials=(USER, PASSWORD))
        assert client.put_blob("acme/cfg", b"layer") == (
            "sha256:" + hashlib.sha256(b"layer").hexdigest())
    finally:
        for server in (registry, elsewhere):
            server.shutdown()
            server.server_close()
    basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    if storage == "the registry":
        assert (put, received) == ([(basic, b"layer")], [])
    else:
        assert (put, received) == ([], [(None, b"layer")])


@pytest.mark.parametrize("scheme", ["file", "data", "ftp"])
def test_an_upload_url_of_no_http_scheme_is_opened_not_at_all(
        scheme: str, tmp_path: Path, ftp_drip: int) -> None:
    # urllib's default opener reads file: and data: URLs as answers (a file's JSON
    # `errors` were quoted as the upload's error) and opens ftp: with sockets no
    # deadline ends; an upload's URL is the registry's to name.
    quoted = tmp_path / "errors.json"
    quoted.write_text(json.dumps({"errors": [{"message": "LOCAL-FILE-CANARY"}]}))
    location = {"file": f"file://{quoted}#",
                "data": "data:application/json,%7B%22errors%22%3A%5B%7B%22message%22%3A"
                        "%22LOCAL-FILE-CANARY%22%7D%5D%7D#",
                "ftp": f"ftp://127.0.0.1:{ftp_drip}/upload#"}[scheme]
    registry, put = _uploads(location)
    failed: list[str] = []
    try:
        host = f"127.0.0.1:{registry.server_address[1]}"
        client = Registry(parse_reference(f"oci://{host}/acme/cfg:production"), insecure=True,
                          credentials=(USER, PASSWORD), deadline=2.0)

        def upload() -> None:
            with pytest.raises(RegistryError) as info:
                client.put_blob("acme/cfg", b"layer")
            failed.append(info.value.format())

        assert ends_within(upload, 10), "the upload outlasted the request's deadline"
    finally:
        registry.shutdown()
        registry.server_close()
    assert failed[0].endswith(f"error: registry {host} unreachable: unknown url type: "
                              f"{scheme}"), failed[0]
    assert "LOCAL-FILE-CANARY" not in failed[0] and put == []


def test_an_expired_token_is_replaced_by_a_new_one_from_the_token_service() -> None:
    # Docker Hub's and GHCR's tokens last minutes; a Kernel polls its tag for days with
    # one client. The token the client held was sent again and again after it expired,
    # each poll an outage until the process restarted.
    digest = "sha256:" + "c" * 64
    issued: list[str] = []
    valid: set[str] = set()

    class Expiring(_Handler):
        def do_GET(self) -> None:  # the token service
            issued.append(f"token-{len(issued)}")
            valid.clear()
            valid.add(issued[-1])
            self._answer(200, {"Content-Type": "application/json"},
                         json.dumps({"token": issued[-1]}).encode())

        def do_HEAD(self) -> None:
            sent = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
            if sent in valid:
                self._answer(200, {"Docker-Content-Digest": digest})
                return
            realm = f"http://127.0.0.1:{self.server.server_address[1]}/token"
            self._answer(401, {"WWW-Authenticate": f'Bearer realm="{realm}",service="r",'
                                                   'scope="repository:acme/cfg:pull"'})

    server = _serve(Expiring)
    try:
        host = f"127.0.0.1:{server.server_address[1]}"
        client = Registry(parse_reference(f"oci://{host}/acme/cfg:production"), insecure=True,
                          credentials=None)
        assert client.manifest_digest("acme/cfg", "production") == digest
        assert client.manifest_digest("acme/cfg", "production") == digest
        assert issued == ["token-0"]  # one token while it is good
        valid.clear()  # it expires
        assert client.manifest_digest("acme/cfg", "production") == digest
        assert client.manifest_digest("acme/cfg", "production") == digest
        assert issued == ["token-0", "token-1"]
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("auth", ["basic", "bearer"])
def test_a_redirect_to_another_server_carries_no_credentials(auth: str) -> None:
    # A blob's GET is redirected to the registry's storage, as S3-backed registries do:
    # the blob comes from there, checked by its digest; the registry's credentials and
    # token stay with the registry.
    data = b"blob"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    heard: list[str | None] = []

    class Storage(_Handler):
        def do_GET(self) -> None:
            heard.append(self.headers.get("Authorization"))
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    storage = _serve(Storage)

    class Redirecting(_Handler):
        def do_GET(self) -> None:
            if self.path.startswith("/token"):
                self._answer(200, {}, json.dumps({"token": TOKEN}).encode())
            elif not self.headers.get("Authorization"):
                realm = f"http://127.0.0.1:{self.server.server_address[1]}/token"
                self._answer(401, {"WWW-Authenticate": 'Basic realm="r"' if auth == "basic"
                                   else f'Bearer realm="{realm}"'})
            else:
                port = storage.server_address[1]
                self._answer(307, {"Location": f"http://localhost:{port}/blob"})

    registry = _serve(Redirecting)
    try:
        host = f"127.0.0.1:{registry.server_address[1]}"
        client = Registry(parse_reference(f"oci://{host}/acme/cfg:production"), insecure=True,
                          credentials=(USER, PASSWORD))
        assert client.blob("acme/cfg", digest) == data
    finally:
        for server in (registry, storage):
            server.shutdown()
            server.server_close()
    assert heard == [None]


@pytest.mark.parametrize("way", ["upload", "redirect"])
def test_a_challenge_of_another_server_is_not_answered_with_the_registrys_credentials(
        way: str) -> None:
    # The registry's storage (an upload's URL, a blob's redirect) answers 401 with a
    # token service of its choosing: docker answers the registry's challenges alone, and
    # so does this client, or the storage would collect the registry's password.
    asked: list[str | None] = []

    class TokenService(_Handler):
        def do_GET(self) -> None:
            asked.append(self.headers.get("Authorization"))
            body = json.dumps({"token": TOKEN}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    service = _serve(TokenService)

    class Storage(_Handler):
        def _challenge(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            realm = f"http://localhost:{service.server_address[1]}/token"
            self.send_response(401)
            self.send_header("WWW-Authenticate", f'Bearer realm="{realm}"')
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_PUT = _challenge

    storage = _serve(Storage)
    elsewhere = f"http://localhost:{storage.server_address[1]}/storage"

    class Front(_Handler):
        def do_HEAD(self) -> None:
            sent = self.headers.get("Authorization")
            self._answer(404 if sent else 401,
                         {} if sent else {"WWW-Authenticate": 'Basic realm="registry"'})

        def do_GET(self) -> None:
            if not self.headers.get("Authorization"):
                self._answer(401, {"WWW-Authenticate": 'Basic realm="registry"'})
            else:
                self._answer(307, {"Location": elsewhere})

        def do_POST(self) -> None:
            self._answer(202, {"Location": elsewhere})

    registry = _serve(Front)
    try:
        host = f"127.0.0.1:{registry.server_address[1]}"
        client = Registry(parse_reference(f"oci://{host}/acme/cfg:production"), insecure=True,
                          credentials=(USER, PASSWORD))
        with pytest.raises(RegistryError) as info:
            if way == "upload":
                client.put_blob("acme/cfg", b"layer")
            else:
                client.blob("acme/cfg", "sha256:" + hashlib.sha256(b"layer").hexdigest())
    finally:
        for server in (registry, storage, service):
            server.shutdown()
            server.server_close()
    assert asked == []
    assert ": HTTP 401 (credentials: docker login" in info.value.format()


def test_a_token_of_too_narrow_a_scope_is_replaced_by_one_of_the_scope_challenged() -> None:
    # Docker Hub answers a blob's HEAD with a challenge for pull, and its upload with one
    # for push: the pull token, kept, made every first push fail with HTTP 401.
    scopes: dict[str, str] = {}

    class Scoped(_Handler):
        def _needs(self, scope: str) -> bool:
            sent = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
            if scope in scopes.get(sent, "").split(","):
                return True
            realm = f"http://127.0.0.1:{self.server.server_address[1]}/token"
            self._answer(401, {"WWW-Authenticate": f'Bearer realm="{realm}",service="r",'
                                                   f'scope="repository:acme/cfg:{scope}"'})
            return False

        def do_GET(self) -> None:  # the token service
            scope = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)["scope"][0]
            token = f"token-{len(scopes)}"
            scopes[token] = scope.rsplit(":", 1)[1]
            self._answer(200, {}, json.dumps({"token": token}).encode())

        def do_HEAD(self) -> None:
            if self._needs("pull"):
                self._answer(404, {})

        def do_POST(self) -> None:
            if self._needs("push"):
                self._answer(202, {"Location": "/upload"})

        def do_PUT(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self._needs("push"):
                self._answer(201, {})

    server = _serve(Scoped)
    try:
        host = f"127.0.0.1:{server.server_address[1]}"
        client = Registry(parse_reference(f"oci://{host}/acme/cfg:production"), insecure=True,
                          credentials=None)
        assert client.put_blob("acme/cfg", b"layer") == (
            "sha256:" + hashlib.sha256(b"layer").hexdigest())
    finally:
        server.shutdown()
        server.server_close()
    assert sorted(scopes.values()) == ["pull", "push"]
