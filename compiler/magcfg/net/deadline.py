"""A deadline for one request as a whole: connecting, sending, the answer's headers and
its body.

A socket timeout bounds each wait for the network only: a server that sends a byte now
and then never reaches it, and keeps a request (and whatever waits on it: a kernel's
start, a secret's refresh) waiting for ever. Here a timer shuts the request's sockets
down when its time is up, which ends any connect, read or write blocked on them at once,
whoever made the call (``http.client``, ``urllib3``, a TLS handshake)::

    with Deadline(seconds) as deadline:
        ...  # the client passes each socket it opens or reuses to watch()
    if deadline.expired:
        ...  # whatever was read before the sockets were shut is not the answer

A name lookup has no socket to shut: :func:`connect` (what a client opens its connections
with) looks the host up on a thread of its own and waits for it until the deadline only,
once per host in one request, then connects to the addresses found; a resolver that
hangs ends the request at its deadline like a server that does.

Standard library only: the runtime kernel uses it.
"""

from __future__ import annotations

import contextlib
import contextvars
import ipaddress
import os
import socket
import threading
import time
from collections.abc import Iterable
from typing import Any

__all__ = ["Deadline", "connect", "watch"]

_current: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar(
    "magcfg_deadline", default=None)

AddressInfo = tuple[Any, ...]
"""One entry of ``socket.getaddrinfo``: (family, type, proto, canonname, sockaddr)."""


class Deadline:
    """Ends the request made inside ``with Deadline(seconds)`` ``seconds`` from its
    start; ``expired`` tells afterwards whether it did."""

    def __init__(self, seconds: float) -> None:
        self.seconds = max(seconds, 0.0)
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(self.seconds, self.expire)
        self._timer.daemon = True
        self._token: contextvars.Token[Deadline | None] | None = None
        self._end = time.monotonic() + self.seconds
        self._addresses: dict[tuple[str, int], list[AddressInfo]] = {}

    def __enter__(self) -> Deadline:
        self._token = _current.set(self)
        self._end = time.monotonic() + self.seconds
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        if self._token is not None:
            _current.reset(self._token)
        with self._lock:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()

    def expire(self) -> None:
        """End the request now (its time is up, or whoever waits on it is stopping)."""
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut(sock)

    def watch(self, sock: socket.socket) -> None:
        """End ``sock`` at the deadline (at once if it has passed)."""
        # Through a duplicate of its descriptor: shutting a socket down through any of
        # its descriptors ends every operation on it, and TLS wraps the socket given
        # here in a new object, detaching this one (whose shutdown would then do nothing).
        try:
            fd = os.dup(sock.fileno())
        except OSError:  # closed already: nothing left to end
            return
        duplicate = socket.socket(sock.family, sock.type, sock.proto, fd)
        # Blocking or not belongs to the open socket, shared by both descriptors: as it was.
        duplicate.settimeout(sock.gettimeout())
        with self._lock:
            self._sockets.append(duplicate)
            if self.expired:
                _shut(duplicate)

    def resolve(self, host: str, port: int) -> list[AddressInfo]:
        """The addresses of ``host`` (``getaddrinfo``, TCP), looked up once in this
        request; ``TimeoutError`` (the deadline then expired) if the lookup has not
        ended by the deadline."""
        with self._lock:
            found = self._addresses.get((host, port))
        if found is None:
            lookup = _Lookup.of(host, port)
            # Until the lookup ends, the time is up, or expire() ends the request sooner.
            while not lookup.done.wait(min(max(self._end - time.monotonic(), 0.0), 0.1)):
                if self.expired or time.monotonic() >= self._end:
                    self.expire()
                    raise TimeoutError(f"no address for {host} within {self.seconds:g} s")
            found = lookup.result()
            with self._lock:
                self._addresses[host, port] = found
        return found


class _Lookup:
    """One ``getaddrinfo`` on a thread of its own. A request that asks for a host whose
    lookup is still running waits for that one: a resolver that hangs holds one thread
    per host, not one per request."""

    def __init__(self, host: str, port: int) -> None:
        self.key = (host, port)
        self.done = threading.Event()
        self.found: list[AddressInfo] = []
        self.error: Exception | None = None

    @classmethod
    def of(cls, host: str, port: int) -> _Lookup:
        with _lookups_lock:
            lookup = _lookups.get((host, port))
            if lookup is None:
                lookup = _lookups[host, port] = cls(host, port)
                threading.Thread(target=lookup._run, name="magcfg-resolve", daemon=True).start()
        return lookup

    def _run(self) -> None:
        try:
            self.found = socket.getaddrinfo(*self.key, 0, socket.SOCK_STREAM)
        except Exception as exc:  # the caller's to raise: gaierror, or a name idna refuses
            self.error = exc
        finally:
            with _lookups_lock:
                if _lookups.get(self.key) is self:
                    del _lookups[self.key]
            self.done.set()

    def result(self) -> list[AddressInfo]:
        """The addresses of the ended lookup; raises what it raised."""
        if self.error is not None:
            raise self.error
        return self.found


_lookups: dict[tuple[str, int], _Lookup] = {}
"""The lookups running, by host and port."""
_lookups_lock = threading.Lock()


_DEFAULT = object()
"""No ``timeout`` given: the socket keeps the default one (``socket.setdefaulttimeout``)."""


def connect(address: tuple[str, int], timeout: object = _DEFAULT,
            source_address: tuple[str, int] | None = None,
            socket_options: Iterable[tuple[int, int, int | bytes]] | None = None,
            ) -> socket.socket:
    """``socket.create_connection`` under the current deadline, if any: the host looked
    up within it (:meth:`Deadline.resolve`), each socket watched from before its
    connect. ``timeout`` (each wait for the network) applies when it is a number or
    ``None``; a client's "default" marker leaves the socket's default."""
    host, port = address
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    deadline = _current.get()
    if deadline is None or _numeric(host):
        # An address needs no lookup (the call returns at once); no deadline, no bound.
        addresses = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    else:
        addresses = deadline.resolve(host, port)
    error: OSError | None = None
    for family, kind, proto, _, sockaddr in addresses:
        if deadline is not None and deadline.expired:
            break
        sock = socket.socket(family, kind, proto)
        try:
            for option in socket_options or ():
                sock.setsockopt(*option)
            if timeout is None or isinstance(timeout, (int, float)):
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            if deadline is not None:
                deadline.watch(sock)  # a connect that hangs ends at the deadline too
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            error = exc
            sock.close()
    if deadline is not None and deadline.expired:
        raise TimeoutError(f"no connection to {host} within {deadline.seconds:g} s")
    raise error or OSError(f"no address found for {host}")


def _numeric(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def watch(sock: socket.socket) -> None:
    """End ``sock`` at the deadline of the request being made in this context, if any:
    what a client calls with each socket it connects or reuses."""
    deadline = _current.get()
    if deadline is not None:
        deadline.watch(sock)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # the connection is gone already
        sock.shutdown(socket.SHUT_RDWR)
