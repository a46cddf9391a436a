"""Which server a URL names: what a client's credentials are sent to.

A server's answer names URLs (a redirect's, an upload's): a client sends the credentials
it holds for one server to a URL of that server only, never to another host, another
port, or the same host over another scheme (plain HTTP instead of HTTPS). Standard
library only: the runtime kernel uses it.
"""

from __future__ import annotations

import urllib.parse

__all__ = ["same_server"]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> tuple[str, str, int | None] | None:
    """Scheme, host and port of ``url`` (lower case, the scheme's default port filled
    in); None when it names no host or its port is no port."""
    try:
        parts = urllib.parse.urlsplit(url)
        scheme = parts.scheme.lower()
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:  # a port that is not a number, or out of range
        return None
    return (scheme, parts.hostname, port) if parts.hostname else None


def same_server(url: str, base: str) -> bool:
    """Whether ``url`` names the server ``base`` names: the same scheme, host and port."""
    found = _origin(url)
    return found is not None and found == _origin(base)
