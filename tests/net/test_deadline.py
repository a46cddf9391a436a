"""The whole-request deadline (magcfg.net.deadline) on real sockets: a blocked read ends
at it, through whichever object the socket was wrapped in since it was watched, and so
does a name lookup that hangs."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from magcfg.net.deadline import Deadline, connect, watch
from tests.conftest import descriptors_on

from .slow import Resolver, ends_within


def _descriptors_of(sock: socket.socket) -> int:
    held = os.readlink(f"/proc/self/fd/{sock.fileno()}")
    return descriptors_on(lambda target: target == held)


def test_a_blocked_read_ends_at_the_deadline() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.settimeout(30)  # each wait for the network: never reached here
        started = time.monotonic()
        with Deadline(0.5) as deadline:
            watch(ours)
            assert ours.recv(1) == b""  # shut down: the read ends, empty
        assert deadline.expired and time.monotonic() - started < 5


def test_the_socket_ends_after_a_wrapper_took_its_descriptor() -> None:
    # What TLS does: the socket watched at connect is detached, its descriptor now
    # another object's, before the handshake and every read.
    ours, theirs = socket.socketpair()
    with theirs, Deadline(0.5) as deadline:
        watch(ours)
        with socket.socket(ours.family, ours.type, ours.proto, ours.detach()) as wrapper:
            wrapper.settimeout(30)
            assert wrapper.recv(1) == b""
    assert deadline.expired


def test_a_request_within_its_deadline_is_untouched_and_leaves_no_descriptor() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        with Deadline(30) as deadline:
            watch(ours)
            assert _descriptors_of(ours) == 2  # the duplicate the deadline would shut
            theirs.sendall(b"x")
            assert ours.recv(1) == b"x"
        assert not deadline.expired and _descriptors_of(ours) == 1
        theirs.sendall(b"y")  # the connection outlives the request (keep-alive)
        assert ours.recv(1) == b"y"


def test_a_socket_watched_after_the_deadline_ends_at_once() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs, Deadline(0) as deadline:
        time.sleep(0.1)
        watch(ours)
        ours.settimeout(30)
        assert ours.recv(1) == b"" and deadline.expired


def test_outside_a_deadline_watch_does_nothing() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        watch(ours)
        theirs.sendall(b"x")
        assert ours.recv(1) == b"x"


def test_a_lookup_that_hangs_ends_at_the_deadline(resolver: Resolver) -> None:
    failed: list[BaseException] = []

    def request() -> None:
        with Deadline(0.5) as deadline:
            try:
                connect((Resolver.HANG, 80), 30)
            except OSError as exc:
                failed.append(exc)
        assert deadline.expired

    started = time.monotonic()
    assert ends_within(request, 10)
    assert time.monotonic() - started >= 0.5
    assert isinstance(failed[0], TimeoutError)
    assert str(failed[0]) == f"no address for {Resolver.HANG} within 0.5 s"


def test_requests_for_a_host_whose_lookup_hangs_share_that_lookup(resolver: Resolver) -> None:
    def request() -> None:
        with Deadline(0.3), pytest.raises(TimeoutError):
            connect((Resolver.HANG, 80), 30)

    for _ in range(3):
        assert ends_within(request, 10)
    assert resolver.lookups[Resolver.HANG] == 1  # one thread waits on the resolver, not three


def test_a_host_is_looked_up_once_per_request_then_its_address_connected(
        resolver: Resolver) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with Deadline(30) as deadline:
            for _ in range(2):
                with connect(("config.resolver.test", port), 30) as sock:
                    accepted, _ = server.accept()
                    with accepted:
                        accepted.sendall(b"x")
                        assert sock.recv(1) == b"x"
        assert not deadline.expired and resolver.lookups["config.resolver.test"] == 1
        with Deadline(30), connect(("config.resolver.test", port), 30):
            server.accept()[0].close()
        assert resolver.lookups["config.resolver.test"] == 2  # a new request looks again


def test_expire_ends_a_lookup_that_hangs_at_once(resolver: Resolver) -> None:
    # What a client being stopped does (Registry.abort): the request ends before its time.
    with Deadline(60) as deadline:
        threading.Timer(0.3, deadline.expire).start()
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            connect((Resolver.HANG, 80), 30)
        assert time.monotonic() - started < 10
