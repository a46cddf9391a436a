"""Loopback ports for the servers the tests start. A port found free is free only when
asked: another xdist worker, a tool or an outgoing connection may take it before the
server binds it. A server that can bind port 0 does so and reports its port; for one
that cannot, :func:`on_a_free_port` starts it again on another port when it found its
port taken; an address that must refuse connections is held by :func:`refusing_port`."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")

TRIES = 5


class PortTaken(Exception):
    """Raised by a ``start`` given to :func:`on_a_free_port` when its server could not
    bind the port (``address already in use``)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def on_a_free_port(start: Callable[[int], T], tries: int = TRIES) -> T:
    """``start(port)`` on a port free when asked, and on another one for each time
    ``start`` raises :class:`PortTaken` (the start is tried again, not the test)."""
    for _ in range(tries - 1):
        with contextlib.suppress(PortTaken):
            return start(free_port())
    return start(free_port())


@contextlib.contextmanager
def refusing_port() -> Iterator[int]:
    """A loopback port that refuses connections for as long as it is held: bound, so
    that nothing else can listen on it, and never listening."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        port: int = held.getsockname()[1]
        yield port
