"""A hostile OCI registry on 127.0.0.1 (standard library): it serves correctly signed
magcfg artifacts, and each test then changes one of its answers into something a real
registry never sends (a manifest nested 200,000 deep, a signature layer without a digest,
a body dripped one byte at a time)."""

from __future__ import annotations

import hashlib
import http.server
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from magcfg.oci import cosign, flux
from magcfg.signing.keys import Ed25519PrivateKey

from ..net.slow import serve
from .fixtures import artifact_files, base_config

Route = tuple[int, dict[str, str], bytes] | Callable[[http.server.BaseHTTPRequestHandler], None]


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class HostileRegistry:
    """Answers ``GET``/``HEAD`` from ``routes`` (path -> answer, or a handler of its own);
    over HTTPS with ``tls``."""

    def __init__(self, repository: str = "acme/cfg", tls: ssl.SSLContext | None = None) -> None:
        self.repository = repository
        self.routes: dict[str, Route] = {}
        self.key = Ed25519PrivateKey.generate()
        self.stopping = threading.Event()
        routes = self.routes

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                route = routes.get(self.path)
                if callable(route):
                    route(self)
                    return
                status, headers, body = route or (404, {}, b'{"errors":[{"code":"NOT_FOUND"}]}')
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = _any

        self.server = serve(Handler, tls)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()

    def drip(self, path: str, pause: float, headers_too: bool = False) -> None:
        """Answer ``path`` as now, but one byte every ``pause`` seconds (from the status
        line with ``headers_too``, else from the body): each wait for the network is
        short, the whole answer takes minutes."""
        route = self.routes[path]
        assert not callable(route)
        status, headers, body = route
        head = f"HTTP/1.1 {status} OK\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        head += f"Content-Length: {len(body)}\r\n\r\n"
        stopping = self.stopping

        def answer(handler: http.server.BaseHTTPRequestHandler) -> None:
            handler.close_connection = True
            data = head.encode() + (body if handler.command != "HEAD" else b"")
            slow = 0 if headers_too else len(head)
            try:
                handler.wfile.write(data[:slow])
                for i in range(slow, len(data)):
                    if stopping.wait(pause):
                        return
                    handler.wfile.write(data[i:i + 1])
                    handler.wfile.flush()
            except OSError:
                pass  # the client hung up: what it should do

        self.routes[path] = answer

    def drip_manifest(self, digest: str, pause: float = 0.5) -> threading.Event:
        """Drip the manifest ``digest`` (``drip``: minutes for the whole answer), and an
        event set once a client waits on it."""
        path = self.manifest_path(digest)
        self.drip(path, pause)
        asked, answer = threading.Event(), self.routes[path]
        assert callable(answer)

        def noted(handler: http.server.BaseHTTPRequestHandler) -> None:
            asked.set()
            answer(handler)

        self.routes[path] = noted
        return asked

    def public_key(self, path: Path) -> Path:
        path.write_bytes(self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        return path

    def reference(self, tag: str = "production") -> str:
        return f"oci://{self.host}/{self.repository}:{tag}"

    def manifest_path(self, ref: str) -> str:
        return f"/v2/{self.repository}/manifests/{ref}"

    def put_manifest(self, data: bytes, tag: str | None = None) -> str:
        digest = _digest(data)
        answer = (200, {"Content-Type": cosign.OCI_MANIFEST, "Docker-Content-Digest": digest}, data)
        self.routes[self.manifest_path(digest)] = answer
        if tag is not None:
            self.routes[self.manifest_path(tag)] = answer
        return digest

    def put_blob(self, data: bytes) -> str:
        digest = _digest(data)
        self.routes[f"/v2/{self.repository}/blobs/{digest}"] = (200, {}, data)
        return digest

    def sign(self, digest: str) -> None:
        payload, layer = cosign.signature_layer(f"{self.host}/{self.repository}", digest, self.key)
        self.put_blob(payload)
        config, manifest = cosign.image_manifest([layer])
        self.put_blob(config)
        self.put_manifest(manifest, tag=cosign.tag_for(digest, "sig"))

    def publish(self, version: int, tag: str = "production", sign: bool = True) -> str:
        """A signed artifact of ``version`` at ``tag`` (its signature only with ``sign``)."""
        layer = flux.pack(artifact_files(base_config(version), version, self.key))
        self.put_blob(layer)
        self.put_blob(flux.CONFIG_BLOB)
        digest = self.put_manifest(
            flux.image_manifest(layer, {flux.ANNOTATION_REVISION: f"main@sha1:{version:040x}"}),
            tag=tag)
        if sign:
            self.sign(digest)
        return digest
