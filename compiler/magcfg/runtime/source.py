"""Reading a candidate artifact from its directory, consistently and cheaply.

If the directory is a Kubernetes ConfigMap volume (``..data`` is a symlink to a
timestamped directory), the symlink is resolved once and every file is read from that
one target, so a kubelet swap during the read cannot mix two versions. The target must
be a real directory beside the link (``magcfg.artifact.data_root``); any other ``..data``
is reported as unreadable and nothing is read. Otherwise files
are read by name (editors and ``magcfg build`` replace each file by rename, so each read
sees a whole file; a torn *set* fails digest verification and is retried on the next
change).

Only regular files are read (``magcfg.durable.read_regular``): a FIFO, a device or a
symlink where a file belongs is reported as unreadable, never opened or waited on.
The files a manifest lists are read only once its signature verified.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NamedTuple

from ..artifact import DATA_LINK, DataLinkError, data_root, size_limit
from ..durable import FileTooLarge, NotRegularFile, read_member
from ..signing.signatures import MANIFEST_NAME, SIGNATURE_NAME

__all__ = ["RawArtifact", "read_artifact", "stat_signature"]

_PATH = getattr(os, "O_PATH", os.O_RDONLY)


class RawArtifact(NamedTuple):
    """The bytes of one read of the artifact directory (nothing verified yet).

    ``files`` holds the files a verified manifest lists (``None`` for a missing one);
    ``unreadable`` names what could not be read, and why (not a regular file, no
    permission).
    """

    root: Path
    manifest_bytes: bytes | None
    signature: bytes | None
    files: dict[str, bytes | None]
    unreadable: dict[str, str]

    def same_content(self, other: RawArtifact | None) -> bool:
        """Byte-for-byte the same manifest, signature and files (a memcmp, no hashing)."""
        return other is not None and (
            self.manifest_bytes, self.signature, self.files, self.unreadable) == (
            other.manifest_bytes, other.signature, other.files, other.unreadable)


def _read(root: Path, root_fd: int, name: str, unreadable: dict[str, str]) -> bytes | None:
    # Regular files only: a FIFO would block the kernel's thread for good; and no
    # larger than the kind allows, checked before a byte is read (a planted huge
    # manifest would be read whole, before its signature is checked).
    try:
        return read_member(root, name, size_limit(name), dir_fd=root_fd)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (NotRegularFile, FileTooLarge) as exc:
        unreadable[name] = exc.message
    except OSError as exc:
        unreadable[name] = f"cannot read: {exc.strerror}"
    return None


SWAP_READS = 4
"""How many times a read is made while a volume's ``..data`` moves under it; the last
one stands (and fails verification if torn)."""


def _data_link(directory: Path) -> str | None:
    """Where ``directory``'s ``..data`` link points, ``None`` without one."""
    try:
        return os.readlink(directory / DATA_LINK)
    except OSError:
        return None


def read_artifact(directory: Path,
                  listed: Callable[[bytes, bytes], Iterable[str]]) -> RawArtifact:
    """Read the manifest, its signature and every file the manifest lists.

    ``listed(manifest_bytes, signature)`` returns the names to read, and nothing unless
    the signature verifies: an unverified manifest names no file to open.

    The kubelet swaps ``..data`` to a new version, then removes the old version's
    directory: a read of the old one that it overtakes finds files gone, which is no
    refusal of either version. A read during which ``..data`` moved is made again from
    its new target, up to :data:`SWAP_READS` reads in all.
    """
    for _ in range(SWAP_READS - 1):
        before = _data_link(directory)
        raw = _read_once(directory, listed)
        if before is None or _data_link(directory) == before:
            return raw
    return _read_once(directory, listed)


def _read_once(directory: Path,
               listed: Callable[[bytes, bytes], Iterable[str]]) -> RawArtifact:
    unreadable: dict[str, str] = {}
    try:
        root = data_root(directory, volume=True)
    except DataLinkError as exc:
        return RawArtifact(directory, None, None, {}, {DATA_LINK: exc.message})
    # Opened once, and every file read from that descriptor: a version directory swapped
    # for a link elsewhere after data_root() checked it leads no read out of the volume.
    # The artifact directory itself is the operator's, and may be a link. O_PATH: a
    # directory that may be searched but not listed is read as by its path.
    try:
        root_fd = os.open(root, _PATH | os.O_DIRECTORY | os.O_CLOEXEC
                          | (os.O_NOFOLLOW if root != directory else 0))
    except (FileNotFoundError, NotADirectoryError):
        return RawArtifact(root, None, None, {}, {})
    except OSError as exc:
        why = (f"links to {root.name!r}, which is a symbolic link; it must be a directory"
               if exc.errno == errno.ELOOP else
               f"links to {root.name!r}, which cannot be read: {exc.strerror}")
        if root == directory:
            return RawArtifact(root, None, None, {}, {MANIFEST_NAME: f"cannot read: "
                                                      f"{exc.strerror}"})
        return RawArtifact(directory, None, None, {}, {DATA_LINK: why})
    try:
        manifest = _read(root, root_fd, MANIFEST_NAME, unreadable)
        signature = _read(root, root_fd, SIGNATURE_NAME, unreadable)
        files: dict[str, bytes | None] = {}
        if manifest is not None and signature is not None:
            files = {name: _read(root, root_fd, name, unreadable)
                     for name in sorted(listed(manifest, signature))}
    finally:
        os.close(root_fd)
    return RawArtifact(root, manifest, signature, files, unreadable)


def stat_signature(directory: Path, names: tuple[str, ...]) -> tuple[object, ...]:
    """A cheap fingerprint of the directory for the slow poll: where ``..data`` points
    and the inode, size and mtime of each named file (``lstat``: never opened)."""
    try:
        root = data_root(directory, volume=True)
    except DataLinkError as exc:
        return (DATA_LINK, exc.message)  # changes when the link does
    out: list[object] = [str(root)]
    for name in (MANIFEST_NAME, SIGNATURE_NAME, *names):
        try:
            st = os.lstat(root / name)
            out.append((st.st_ino, st.st_size, st.st_mtime_ns, st.st_mode))
        except OSError:
            out.append(None)
    return tuple(out)
