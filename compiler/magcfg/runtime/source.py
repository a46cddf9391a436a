"""Reading a candidate artifact from its directory, consistently and cheaply.

If the directory is a Kubernetes ConfigMap volume (``..data`` is a symlink to a
timestamped directory), the symlink is resolved once and every file is read from that
one target, so a kubelet swap during the read cannot mix two versions. Otherwise files
are read by name (editors and ``magcfg build`` replace each file by rename, so each read
sees a whole file; a torn *set* fails digest verification and is retried on the next
change).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..signing.signatures import MANIFEST_NAME, SIGNATURE_NAME, VerificationError, parse_manifest

DATA_LINK = "..data"


@dataclass(frozen=True)
class RawArtifact:
    """The bytes of one read of the artifact directory (nothing verified yet)."""

    root: Path
    manifest_bytes: bytes | None
    signature: bytes | None
    files: dict[str, bytes | None]

    def same_content(self, other: RawArtifact | None) -> bool:
        """Byte-for-byte the same manifest, signature and files (a memcmp, no hashing)."""
        return other is not None and (self.manifest_bytes, self.signature, self.files) == (
            other.manifest_bytes, other.signature, other.files)


def resolve_root(directory: Path) -> Path:
    """Where the files really are: the target of ``..data`` if present, else ``directory``."""
    link = directory / DATA_LINK
    if link.is_symlink():
        return Path(os.path.realpath(link))
    return directory


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None


def read_artifact(directory: Path) -> RawArtifact:
    """Read the manifest, its signature and every file the manifest lists.

    The manifest is parsed unverified here only to learn which files to read; the kernel
    verifies the signature before it trusts anything in it.
    """
    root = resolve_root(directory)
    manifest = _read(root / MANIFEST_NAME)
    signature = _read(root / SIGNATURE_NAME)
    files: dict[str, bytes | None] = {}
    if manifest is not None:
        try:
            names = sorted(parse_manifest(manifest)["files"])
        except VerificationError:
            names = []
        files = {name: _read(root / name) for name in names}
    return RawArtifact(root, manifest, signature, files)


def stat_signature(directory: Path, names: tuple[str, ...]) -> tuple[object, ...]:
    """A cheap fingerprint of the directory for the slow poll: where ``..data`` points
    and the inode, size and mtime of each named file."""
    root = resolve_root(directory)
    out: list[object] = [str(root)]
    for name in (MANIFEST_NAME, SIGNATURE_NAME, *names):
        try:
            st = os.stat(root / name)
            out.append((st.st_ino, st.st_size, st.st_mtime_ns))
        except OSError:
            out.append(None)
    return tuple(out)
