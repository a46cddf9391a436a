"""Which server a URL names, as the registry and Vault clients judge where their
credentials may go."""

from __future__ import annotations

import pytest

from magcfg.net.origin import same_server

BASE = "https://registry.example"


@pytest.mark.parametrize("url", [
    "https://registry.example/v2/upload?id=1",
    "https://REGISTRY.example:443/v2/",  # the host's case, the scheme's default port
    "HTTPS://registry.example",
])
def test_a_url_of_the_same_scheme_host_and_port_is_the_same_server(url: str) -> None:
    assert same_server(url, BASE)


@pytest.mark.parametrize("url", [
    "http://registry.example/v2/",  # plain HTTP: anyone on the path reads what is sent
    "https://registry.example:8443/v2/",
    "https://storage.example/v2/",
    "https://registry.example.storage.example/",
    "https://registry.example:99999/",  # no port
    "https://registry.example:x/",
    "file:///registry.example/v2/",
    "/v2/upload",  # relative: no server named
])
def test_another_scheme_host_or_port_is_another_server(url: str) -> None:
    assert not same_server(url, BASE)


def test_a_base_with_a_port_and_a_path() -> None:
    assert same_server("http://127.0.0.1:8200/v1/auth", "http://127.0.0.1:8200/vault")
    assert not same_server("http://127.0.0.1/v1/auth", "http://127.0.0.1:8200")
