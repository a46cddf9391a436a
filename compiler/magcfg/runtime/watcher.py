"""Watching the artifact directory: inotify (Linux, via ctypes) with a slow poll fallback.

The directory is watched, never the files: a watch on a file goes deaf when the
kubelet swaps the ConfigMap's ``..data`` symlink or an editor renames a new file over
the old one. Every event only says "look again": after a quiet period (debounce, with
an upper bound so a steady stream of writes cannot starve it) the callback re-reads and
hashes the artifact and acts only if its content changed. The slow poll runs whether or
not inotify works, and catches what events cannot (a directory that was replaced, a
network filesystem).

A failing callback is logged and the watcher goes on. Anything else that ends the thread
before :meth:`DirectoryWatcher.stop` (an OS error on its descriptors, an exception that
is not an ``Exception``) is loud: ``failure`` holds it and ``on_failure`` is called on
the dying thread, so the owner can report that changes are no longer seen.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import math
import os
import select
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .events import check_seconds, log

_IN_MODIFY = 0x002
_IN_ATTRIB = 0x004
_IN_CLOSE_WRITE = 0x008
_IN_MOVED_FROM = 0x040
_IN_MOVED_TO = 0x080
_IN_CREATE = 0x100
_IN_DELETE = 0x200
_IN_DELETE_SELF = 0x400
_IN_MOVE_SELF = 0x800
_IN_NONBLOCK = 0o4000
_IN_CLOEXEC = 0o2000000
_MASK = (_IN_MODIFY | _IN_ATTRIB | _IN_CLOSE_WRITE | _IN_MOVED_FROM | _IN_MOVED_TO
         | _IN_CREATE | _IN_DELETE | _IN_DELETE_SELF | _IN_MOVE_SELF)


class _Inotify:
    """A minimal inotify binding: one fd, watches added by path, events only drained."""

    def __init__(self) -> None:
        # The process's own symbols include libc's; ctypes.util.find_library would spawn
        # tools and cost more import time than the rest of the runtime.
        libc = ctypes.CDLL(None, use_errno=True)
        self._add = libc.inotify_add_watch
        self._add.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        self._add.restype = ctypes.c_int
        init = libc.inotify_init1
        init.argtypes = [ctypes.c_int]
        init.restype = ctypes.c_int
        fd = init(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
        self.fd = fd

    def add(self, path: Path) -> int:
        """0 once ``path`` is watched, else the errno (``ENOSPC``: the user's watch limit,
        ``fs.inotify.max_user_watches``, is reached; ``ENOENT``: no such directory)."""
        if self._add(self.fd, os.fsencode(path), _MASK) >= 0:
            return 0
        return ctypes.get_errno() or errno.EIO

    def drain(self) -> bool:
        """Read all pending events; True if there were any."""
        seen = False
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return seen
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                raise
            if not data:
                return seen
            seen = True

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


def inotify_available() -> bool:
    """Whether this platform offers inotify through libc."""
    try:
        _Inotify().close()
    except (OSError, AttributeError):
        return False
    return True


class DirectoryWatcher:
    """Calls ``on_change(trigger)`` after changes in ``directory`` settle, on its own thread.

    ``trigger`` is ``"watch"`` after filesystem events and ``"poll"`` on the slow poll.
    """

    def __init__(self, directory: Path, on_change: Callable[[str], None], *,
                 debounce: float = 0.01, max_delay: float = 0.5,
                 poll_interval: float = 5.0, use_inotify: bool = True,
                 on_failure: Callable[[BaseException], None] | None = None) -> None:
        # Before a descriptor is opened: an infinity or a NaN ends the thread at its first
        # wait (OverflowError, ValueError), a poll interval of 0 or below fires the
        # callback in a busy loop.
        for what, seconds, least in (("debounce", debounce, 0.0),
                                     ("debounce's upper bound", max_delay, 0.0),
                                     ("poll interval", poll_interval, None)):
            check_seconds(what, seconds, least)
        self.directory = directory
        self.on_change = on_change
        self.on_failure = on_failure
        self.failure: BaseException | None = None
        """What ended the watcher's thread before :meth:`stop`, if anything did."""
        self.debounce = debounce
        self.max_delay = max_delay
        self.poll_interval = poll_interval
        self._inotify: _Inotify | None = None
        # The errno of the watch that could not be added (0 while it holds): without
        # the watch, the inotify descriptor sees nothing and only the poll sees changes.
        self._unwatched = 0
        if use_inotify:
            try:
                self._inotify = _Inotify()
            except (OSError, AttributeError):
                self._inotify = None
        self._stop_r, self._stop_w = os.pipe()
        self._thread: threading.Thread | None = None
        self._stopping = False

    @property
    def mode(self) -> str:
        """``inotify`` or ``poll``: how changes are noticed (``poll`` too while the
        directory's inotify watch cannot be added); ``dead`` once the thread has ended
        without :meth:`stop`."""
        if self.failure is not None:
            return "dead"
        return "inotify" if self._inotify is not None and not self._unwatched else "poll"

    def start(self) -> None:
        self._watch()
        thread = threading.Thread(target=self._run, name="magcfg-watch", daemon=True)
        thread.start()
        self._thread = thread  # only a thread that runs is ever joined (stop)

    def stop(self, timeout: float | None = None) -> bool:
        """Stop watching; wait at most ``timeout`` seconds (``None``: as long as it
        takes) for the thread, which a callback that does not return holds. Returns
        whether the thread has ended: one left running ends when its callback returns,
        calling nothing more."""
        self._stopping = True
        with contextlib.suppress(OSError):
            os.write(self._stop_w, b"x")
        ended = True
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
            ended = not self._thread.is_alive()
        for fd in (self._stop_r, self._stop_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        if self._inotify is not None:
            self._inotify.close()
            self._inotify = None
        return ended

    def _watch(self) -> None:
        # The directory sees the ..data swap and rename-writes. A directory that is itself
        # replaced is caught by the poll, which re-adds the watch on the new inode.
        if self._inotify is None:
            return
        failed = self._inotify.add(self.directory)
        if failed and failed != self._unwatched:
            log.warning("magcfg: %s: cannot watch it with inotify (%s); changes are seen "
                        "by the poll every %s s", self.directory, os.strerror(failed),
                        self.poll_interval)
        elif not failed and self._unwatched:
            log.info("magcfg: %s: watched with inotify again", self.directory)
        self._unwatched = failed

    def _wait(self, timeout: float) -> tuple[bool, bool]:
        """(stop requested, filesystem events seen) after waiting at most ``timeout``."""
        fds = [self._stop_r] + ([self._inotify.fd] if self._inotify is not None else [])
        # poll, not select: select refuses a descriptor numbered 1024 or more, which a
        # kernel started in a process holding that many (a busy server's connections)
        # is given, and the watcher would die at its first wait.
        waiting = select.poll()
        for fd in fds:
            waiting.register(fd, select.POLLIN)
        try:
            found = waiting.poll(math.ceil(max(timeout, 0.0) * 1000))
        except InterruptedError:
            return self._stopping, False
        except OSError:
            if self._stopping:
                return True, False
            raise
        if self._stopping:
            return True, False
        if any(flags & select.POLLNVAL for _, flags in found):
            # A descriptor closed under the watcher, and not by stop(): an error of its own.
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        ready = [fd for fd, _ in found]
        if self._stop_r in ready:
            return True, False
        inotify = self._inotify
        try:
            events = inotify is not None and inotify.fd in ready and inotify.drain()
        except OSError:
            if self._stopping:
                return True, False
            raise
        return False, bool(events)

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # the thread ends here: say so, never silently
            if self._stopping:
                return
            self.failure = exc
            log.error("magcfg: the watcher of %s stopped: %s; changes are no longer "
                      "applied", self.directory, type(exc).__name__)
            if self.on_failure is not None:
                try:
                    self.on_failure(exc)
                except BaseException as report:  # the thread ends either way
                    log.error("magcfg: reporting the watcher's failure failed: %s",
                              type(report).__name__)

    def _loop(self) -> None:
        next_poll = time.monotonic() + self.poll_interval
        while not self._stopping:
            stop, events = self._wait(next_poll - time.monotonic())
            if stop:
                return
            if events:
                # Debounce: wait until quiet for `debounce`, but at most `max_delay`.
                deadline = time.monotonic() + self.max_delay
                while True:
                    stop, more = self._wait(min(self.debounce, deadline - time.monotonic()))
                    if stop:
                        return
                    if not more or time.monotonic() >= deadline:
                        break
                # Re-adding is idempotent for the same inode and picks up a directory
                # that was replaced (its old watch died with it).
                self._watch()
                self._fire("watch")
            elif time.monotonic() >= next_poll:
                self._watch()
                self._fire("poll")
                next_poll = time.monotonic() + self.poll_interval

    def _fire(self, trigger: str) -> None:
        try:
            self.on_change(trigger)
        except Exception as exc:  # the kernel reports its own failures; watch on
            # The type only: a message may quote config values.
            log.error("magcfg: watcher callback failed: %s", type(exc).__name__)
