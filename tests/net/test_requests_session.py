"""The deadline's requests session (magcfg.net.requests_session, the Vault client's): a
name lookup that hangs ends a request at its deadline; a name is looked up once, then
its address connected."""

from __future__ import annotations

import http.server

import pytest
import requests

from magcfg.net.deadline import Deadline
from magcfg.net.requests_session import session

from .slow import Resolver, ends_within, serve


class _Ok(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


def test_a_lookup_that_hangs_ends_a_request_at_its_deadline(resolver: Resolver) -> None:
    made = session()
    made.trust_env = False  # no proxy from the environment: this host is asked directly

    def request() -> None:
        with Deadline(0.5) as deadline, pytest.raises(requests.exceptions.ConnectTimeout):
            made.get(f"http://{Resolver.HANG}:9/v1/secret", timeout=30)
        assert deadline.expired

    assert ends_within(request, 10)


def test_a_name_is_looked_up_then_its_address_connected(resolver: Resolver) -> None:
    server = serve(_Ok, None)
    try:
        made = session()
        made.trust_env = False
        with Deadline(30):
            answer = made.get(f"http://vault.resolver.test:{server.server_address[1]}/",
                              timeout=30)
        assert (answer.status_code, answer.text) == (200, "ok")
        assert resolver.lookups["vault.resolver.test"] == 1
    finally:
        server.shutdown()
        server.server_close()
