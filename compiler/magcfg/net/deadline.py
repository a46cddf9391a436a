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

Standard library only: the runtime kernel uses it.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import socket
import threading

__all__ = ["Deadline", "watch"]

_current: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar(
    "magcfg_deadline", default=None)


class Deadline:
    """Ends the request made inside ``with Deadline(seconds)`` ``seconds`` from its
    start; ``expired`` tells afterwards whether it did."""

    def __init__(self, seconds: float) -> None:
        self.seconds = max(seconds, 0.0)
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(self.seconds, self._expire)
        self._timer.daemon = True
        self._token: contextvars.Token[Deadline | None] | None = None

    def __enter__(self) -> Deadline:
        self._token = _current.set(self)
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

    def _expire(self) -> None:
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


def watch(sock: socket.socket) -> None:
    """End ``sock`` at the deadline of the request being made in this context, if any:
    what a client calls with each socket it connects or reuses."""
    deadline = _current.get()
    if deadline is not None:
        deadline.watch(sock)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # the connection is gone already
        sock.shutdown(socket.SHUT_RDWR)
