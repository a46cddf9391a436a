"""Work spread over the machine's cores by ``fork``.

A cold build of a large repository spends most of its time on work that is independent
per top-level key (merging, compiling the key's piece of the schema, validating), and so
do its diffs, its report page and the reference of its schema. Forked processes start
with everything the command has read and parsed so far, at no copying cost, and hand
back only bytes: nothing has to be pickled on the way in, and nothing the children
compute is trusted beyond being the same computation the parent would run (a child that
fails hands back nothing and its share is done again by the caller).

By default only a process with a single thread forks (a thread holding a lock at the
fork would leave it held forever in the child); a caller that asks for a number of
processes answers for its own threads.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Sequence
from typing import Generic, NoReturn, TypeVar

from .durable import write_all
from .errors import UsageError

JOBS_ENV = "MAGCFG_JOBS"
"""How many processes a command that spreads its work may use (``build``, ``diff``,
``report``, ``docs``, ``lint``; default: the cores this process may run on)."""

T = TypeVar("T")
R = TypeVar("R")


def available_jobs(requested: int | None = None) -> int:
    """The number of processes to use: ``requested`` (the caller answers for its own
    threads), else ``$MAGCFG_JOBS``, else the cores this process may run on; by default
    1 in a process that runs other threads, and 1 where there is no ``fork``. A
    ``$MAGCFG_JOBS`` that is not a whole number of 1 or more is a ``UsageError``."""
    if not hasattr(os, "fork"):
        return 1
    if requested is not None:
        return max(1, requested)
    if threading.active_count() > 1:
        return 1
    setting = os.environ.get(JOBS_ENV, "").strip()
    if setting:
        # Refused as --jobs refuses it: ignoring it would run on some other number, and
        # str.isdigit alone also takes digits int() does not read ("²").
        try:
            jobs = int(setting) if setting.isascii() and setting.isdigit() else 0
        except ValueError:  # more digits than int() reads (sys.get_int_max_str_digits)
            jobs = 0
        if jobs < 1:
            raise UsageError(f"{JOBS_ENV}={os.environ[JOBS_ENV]!r}: give a whole number "
                             "of processes, 1 or more")
        return jobs
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def weighted_runs(items: Sequence[T], weight: Callable[[T], int], jobs: int) -> list[list[T]]:
    """``items`` in up to ``jobs`` consecutive runs of about equal total ``weight``: the
    shares of processes that each take whole top-level keys (a layer file is then read
    by one process only)."""
    total = sum(map(weight, items))
    runs: list[list[T]] = []
    run: list[T] = []
    done = 0
    for item in items:
        run.append(item)
        done += weight(item)
        if len(runs) < jobs - 1 and done * jobs >= total * (len(runs) + 1):
            runs.append(run)
            run = []
    if run:
        runs.append(run)
    return runs


def run_shares(shares: Sequence[T], here: Callable[[T], R], dumps: Callable[[R], bytes],
               loads: Callable[[bytearray], R]) -> list[R]:
    """``here(share)`` of each share, in order: the first share in this process, each
    other in a forked child, which hands back ``dumps`` of its result for this process
    to ``loads``. A child that fails has its share done here: the results are the same
    with any number of shares."""
    if len(shares) < 2:
        return [here(share) for share in shares]
    with Forked(shares[1:], lambda share: dumps(here(share))) as children:
        out = [here(shares[0])]
        theirs = children.results()
    for share, found in zip(shares[1:], theirs, strict=True):
        out.append(here(share) if found is None else loads(found))
    return out


class Forked(Generic[T]):
    """``work(share)`` for each share, each in a forked child, all at once::

        with Forked(shares[1:], work) as children:
            mine = work(shares[0])      # this process's own share, meanwhile
            theirs = children.results()

    ``results()`` gives each share's bytes, or None for a child that failed (raised,
    was killed, or exited otherwise) or never started: where the system starts no more
    processes (``fork`` fails with ``EAGAIN``: the limit on processes reached), the
    shares from there on are this process's to do, as a failed child's are. Leaving the
    block early stops the children."""

    def __init__(self, shares: Sequence[T], work: Callable[[T], bytes]) -> None:
        self._shares = shares
        self._work = work
        self._children: list[tuple[int, int]] = []  # (pid, read end of its pipe)

    def __enter__(self) -> Forked[T]:
        try:
            for share in self._shares:
                read_end, write_end = os.pipe()
                _widen(write_end)
                try:
                    pid = os.fork()
                except BlockingIOError:  # EAGAIN: no more processes
                    os.close(read_end)
                    os.close(write_end)
                    break
                if pid == 0:  # the child: never returns into the caller's code
                    os.close(read_end)
                    _run_child(self._work, share, write_end)
                os.close(write_end)
                self._children.append((pid, read_end))
        except BaseException:
            self._stop()
            raise
        return self

    def results(self) -> list[bytearray | None]:
        out = [_collect(pid, read_end) for pid, read_end in self._children]
        self._children.clear()
        return out + [None] * (len(self._shares) - len(out))

    def __exit__(self, *exc: object) -> None:
        self._stop()

    def _stop(self) -> None:
        for pid, read_end in self._children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            os.close(read_end)
            os.waitpid(pid, 0)
        self._children.clear()


PIPE_BYTES = 1 << 20
"""What a pipe to a child holds where the system lets it (Linux's most for a user): tens
of megabytes of results cross it in 1 MB turns of the two processes, not 64 KB ones
(40 MB: ~40 ms against ~70 ms)."""


def _widen(fd: int) -> None:
    """Let the pipe of ``fd`` hold ``PIPE_BYTES`` where the system allows it."""
    import fcntl  # where there is fork, there is fcntl

    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)  # Linux's
    if set_size is not None:
        with contextlib.suppress(OSError):  # above the system's limit: as it is
            fcntl.fcntl(fd, set_size, PIPE_BYTES)


def _run_child(work: Callable[[T], bytes], share: T, write_end: int) -> NoReturn:
    code = 1
    try:
        data = work(share)
        # The length first, then the data itself: joining them would copy tens of MB.
        write_all(write_end, len(data).to_bytes(8, "big"))
        write_all(write_end, data)
        code = 0
    except BaseException:
        pass  # the parent compiles this share itself
    finally:
        # No atexit handler, buffered stream or finalizer of the parent's state runs
        # twice: the child leaves at once.
        os._exit(code)


def _collect(pid: int, read_end: int) -> bytearray | None:
    """The child's bytes, read into one buffer of the size it announced (no second copy
    of tens of megabytes), or None: it failed or said less than it announced."""
    try:
        head = _read_exactly(read_end, bytearray(8))
        data = (_read_exactly(read_end, bytearray(int.from_bytes(head, "big")))
                if head is not None else None)
    finally:
        os.close(read_end)
    _, status = os.waitpid(pid, 0)
    if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
        return None
    return data


def _read_exactly(fd: int, buffer: bytearray) -> bytearray | None:
    view = memoryview(buffer)
    while view:
        n = os.readv(fd, [view])
        if n == 0:
            return None
        view = view[n:]
    return buffer
