"""The JSON-lines audit log: one line per reload attempt, the final event of each.

Events are already redacted when they are built, so the log holds versions, stages,
reasons, changed key paths and non-secret values only. Lines are appended with
``O_APPEND`` and flushed one by one, so concurrent writers and a crash leave whole lines;
a line a full disk cut short is ended before the next one is written.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import threading
from pathlib import Path

from ..durable import NotRegularFile, file_kind
from .events import Event


class AuditLog:
    """Appends events as JSON lines to ``path`` (parents created)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        """Open (or create) the log; ``OSError`` if it cannot, or is not a regular file
        (a FIFO would block every reload until someone reads it)."""
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except FileExistsError:  # what mkdir says of a file where the directory would be
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR),
                                     str(self.path.parent)) from None
        self._lock = threading.Lock()
        try:
            mode = os.stat(self.path).st_mode
        except FileNotFoundError:
            mode = stat.S_IFREG
        if not stat.S_ISREG(mode):  # checked before the open, which a FIFO would fail
            raise NotRegularFile(self.path, file_kind(mode))
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK
                     | os.O_CLOEXEC, 0o640)
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            os.close(fd)
            raise NotRegularFile(self.path, file_kind(mode))
        os.set_blocking(fd, True)
        self._fd = fd
        self._torn = False

    def write(self, event: Event) -> None:
        line = (json.dumps(event, sort_keys=True, separators=(",", ":"), default=str)
                + "\n").encode()
        with self._lock:
            if self._fd < 0:
                return
            # A line cut short (the disk filled up in its middle) is ended first: the
            # next one starts a line of its own rather than run on from it.
            view = memoryview(b"\n" + line if self._torn else line)
            while view:
                written = os.write(self._fd, view)  # may take part of what it is given
                view = view[written:]
                self._torn = bool(view)  # whether the file now ends inside a line

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
