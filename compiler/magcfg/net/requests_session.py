"""A ``requests`` session whose every request the current :class:`~.deadline.Deadline`
can end: its connections hand each socket they connect, and the one they reuse for a
request (keep-alive), to :func:`~.deadline.watch`.

Imported only by whoever talks through ``requests`` (the Vault client, through hvac):
importing :mod:`magcfg.net` or :mod:`.deadline` loads none of it.
"""

from __future__ import annotations

import socket
import sys
from typing import Any

import requests
import requests.adapters
from urllib3 import connection, connectionpool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.poolmanager import PoolManager

from .deadline import connect, watch

__all__ = ["session"]


class _HTTPConnection(connection.HTTPConnection):
    def _new_conn(self) -> socket.socket:
        # urllib3's, connecting through deadline.connect: the host looked up within the
        # deadline, the TCP socket watched before any TLS handshake (a handshake sent
        # byte by byte ends too). Its errors are urllib3's, as requests expects them.
        try:
            sock = connect((self._dns_host, self.port), self.timeout,
                           source_address=self.source_address,
                           socket_options=self.socket_options)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        except TimeoutError as exc:
            raise ConnectTimeoutError(self, f"Connection to {self.host} timed out. "
                                      f"(connect timeout={self.timeout})") from exc
        except OSError as exc:
            raise NewConnectionError(
                self, f"Failed to establish a new connection: {exc}") from exc
        sys.audit("http.client.connect", self, self.host, self.port)
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
