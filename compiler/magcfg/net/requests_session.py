"""A ``requests`` session whose every request the current :class:`~.deadline.Deadline`
can end: its connections hand each socket they connect, and the one they reuse for a
request (keep-alive), to :func:`~.deadline.watch`.

Imported only by whoever talks through ``requests`` (the Vault client, through hvac):
importing :mod:`magcfg.net` or :mod:`.deadline` loads none of it.
"""

from __future__ import annotations

import socket
from typing import Any

import requests
import requests.adapters
from urllib3 import connection, connectionpool
from urllib3.poolmanager import PoolManager

from .deadline import watch

__all__ = ["session"]


class _HTTPConnection(connection.HTTPConnection):
    def _new_conn(self) -> socket.socket:
        # The TCP socket, before any TLS handshake: a handshake sent byte by byte ends too.
        sock = super()._new_conn()
        watch(sock)
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        if self.sock is not None:  # a kept-alive connection: connected for an earlier request
            watch(self.sock)
        super().request(*args, **kwargs)


class _HTTPSConnection(_HTTPConnection, connection.HTTPSConnection):
    pass


class _HTTPPool(connectionpool.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(connectionpool.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS: dict[str, type[connectionpool.HTTPConnectionPool]] = {
    "http": _HTTPPool, "https": _HTTPSPool}


class _Adapter(requests.adapters.HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **kwargs)
        # An HTTP(S) proxy's pools are a plain pool manager's; a SOCKS proxy's connect
        # through it, and are left as they are.
        if isinstance(manager, PoolManager) and not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = _POOLS
        return manager


def session() -> requests.Session:
    """A new session whose requests a :class:`~.deadline.Deadline` ends."""
    made = requests.Session()
    adapter = _Adapter()
    made.mount("http://", adapter)
    made.mount("https://", adapter)
    return made
