"""Durable, atomic file replacement: the one implementation every writer uses
(generated/ outputs, keys and signatures, the runtime's last known-good state and the
sidecar's published files); and the one safe reader of files that may be hostile.

A reader sees the old file or the new one, never a part of either, and after a crash
the new file is either complete on disk or not there: write a temp file in the same
directory (created with its final mode), fsync it, rename it over the target, fsync
the directory.

:func:`read_regular` reads only regular files: an artifact directory or a state
directory may hold a FIFO (whose open or read blocks for good), a device or a symlink
where a file belongs.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import time
from pathlib import Path

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISLNK, "a symbolic link"),
          (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


class NotRegularFile(OSError):
    """``path`` exists but is not a regular file (``kind`` says what it is)."""

    def __init__(self, path: Path | str, kind: str) -> None:
        self.message = f"is {kind}, not a regular file"
        super().__init__(errno.EINVAL, self.message, str(path))
        self.kind = kind


class FileTooLarge(OSError):
    """``path`` is larger than the reader accepts."""

    def __init__(self, path: Path | str, size: int, limit: int) -> None:
        super().__init__(errno.EFBIG, f"is {size} bytes, more than the {limit} accepted",
                         str(path))


def file_kind(mode: int) -> str:
    """What a file of ``mode`` is, for messages: ``a FIFO``, ``a directory``, ..."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def read_regular(path: Path | str, limit: int | None = None, *,
                 follow_symlinks: bool = False) -> bytes:
    """The bytes of the regular file ``path``, which may be hostile.

    Never opens a device, never blocks on a FIFO and, unless ``follow_symlinks`` (for a
    path the operator configured, such as a key mounted from a Kubernetes volume),
    never follows a symlink in the last component: ``lstat`` (or ``stat``) first, so
    nothing but a regular file is opened, then open with ``O_NONBLOCK`` (and
    ``O_NOFOLLOW``) and ``fstat`` the descriptor (the file may have been swapped in
    between). Raises :class:`NotRegularFile`, :class:`FileTooLarge` (more than
    ``limit`` bytes), ``FileNotFoundError`` or another ``OSError``.
    """
    mode = (os.stat(path) if follow_symlinks else os.lstat(path)).st_mode
    if not stat.S_ISREG(mode):
        raise NotRegularFile(path, file_kind(mode))
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    if not follow_symlinks:
        flags |= os.O_NOFOLLOW
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # became a symlink after the lstat
            raise NotRegularFile(path, "a symbolic link") from None
        raise
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(path, file_kind(st.st_mode))
        if limit is not None and st.st_size > limit:
            raise FileTooLarge(path, st.st_size, limit)
        data = fh.read() if limit is None else fh.read(limit + 1)
    if limit is not None and len(data) > limit:  # grew after the fstat
        raise FileTooLarge(path, len(data), limit)
    return data


def write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is written (it may write less than asked)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def fsync_dir(path: Path | str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_new(path: Path | str, data: bytes, mode: int = 0o644) -> None:
    """Create ``path`` (it must not exist) with ``mode`` and ``data``, fsynced."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)  # whatever the umask
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_path(path: Path) -> Path:
    """Where :func:`replace_file` writes ``path`` before the rename: ``.<name>.tmp-<pid>``."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def remove_stale_temps(path: Path, stale_after: float = 600.0) -> list[str]:
    """Remove the temp files that writers of ``path`` killed mid-write (``kill -9``,
    power loss) left beside it; returns their names.

    Only names of :func:`temp_path`'s pattern for ``path``, only regular files (a
    symlink is never followed), only in ``path``'s directory, and only when the writer
    cannot still be writing: the pid in the name is ours, is no process, or the file
    is older than ``stale_after`` seconds (a replace takes milliseconds; in a fresh
    container another process may have been given the dead writer's pid). Call it
    before this process writes ``path``.
    """
    pattern = re.compile(re.escape(f".{path.name}.tmp-") + r"([0-9]{1,10})")
    removed: list[str] = []
    try:
        names = os.listdir(path.parent)
    except OSError:
        return removed
    for name in sorted(names):
        match = pattern.fullmatch(name)
        if match is None:
            continue
        candidate = path.parent / name
        try:
            st = os.lstat(candidate)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        if not (_writer_gone(int(match.group(1)))
                or time.time() - st.st_mtime > stale_after):
            continue
        try:
            os.unlink(candidate)
        except FileNotFoundError:
            continue
        removed.append(name)
    return removed


def _writer_gone(pid: int) -> bool:
    if pid == os.getpid() or not 0 < pid < 2**31:
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, under another user
        return False
    return False


def replace_file(path: Path, data: bytes, mode: int = 0o644, sync_dir: bool = True) -> None:
    """Atomically replace ``path`` with ``data``; the directory is fsynced unless the
    caller does it once for many files (``sync_dir=False``)."""
    tmp = temp_path(path)
    try:
        write_new(tmp, data, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if sync_dir:
        fsync_dir(path.parent)
