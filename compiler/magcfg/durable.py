"""Durable, atomic file replacement: the one implementation every writer uses
(generated/ outputs, keys and signatures, the runtime's last known-good state and the
sidecar's published files).

A reader sees the old file or the new one, never a part of either, and after a crash
the new file is either complete on disk or not there: write a temp file in the same
directory (created with its final mode), fsync it, rename it over the target, fsync
the directory.
"""

from __future__ import annotations

import os
from pathlib import Path


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


def replace_file(path: Path, data: bytes, mode: int = 0o644, sync_dir: bool = True) -> None:
    """Atomically replace ``path`` with ``data``; the directory is fsynced unless the
    caller does it once for many files (``sync_dir=False``)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write_new(tmp, data, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if sync_dir:
        fsync_dir(path.parent)
