"""Last known-good: the newest accepted artifact, persisted so a restart can boot from it.

One file, ``<state_dir>/last-known-good.json``, holds the exact verified bytes (manifest,
signature, every listed file), the highest version ever accepted (rollback protection
across restarts) and a sha256 checksum over the rest. It is written atomically (temp
file, fsync, rename, fsync of the directory), so a crash leaves the old or the new
state, never a mix. On load the checksum detects corruption, and the kernel verifies
the signature again: the state file is never trusted on its own. Only a regular file is
read, and only up to :data:`MAX_STATE_BYTES`; temp files of writers killed mid-write are
removed at start (:func:`remove_stale_state_temps`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from pathlib import Path
from typing import Any, NamedTuple

from ..artifact import (
    MAX_FILE_BYTES,
    MAX_MANIFEST_BYTES,
    MAX_SIGNATURE_BYTES,
    MAX_VERSION,
    is_version,
)
from ..durable import FileTooLarge, read_regular, remove_stale_temps, replace_file

STATE_FILE = "last-known-good.json"
STATE_FORMAT = 1


def _base64_size(size: int) -> int:
    return 4 * -(-size // 3)


MAX_STATE_BYTES = (_base64_size(MAX_MANIFEST_BYTES) + _base64_size(MAX_SIGNATURE_BYTES)
                   + _base64_size(MAX_FILE_BYTES) + 4 * MAX_MANIFEST_BYTES)
"""The largest state file written and read back: the artifact's limits in base64 (the
largest manifest and signature, and files of at most :data:`MAX_FILE_BYTES` together,
as a registry's layer holds them), with room for the JSON around them (the files'
names, all in the manifest, escaped). A larger file is refused before a byte of it is
read: the state directory is the kernel's own, but whatever planted a file there must
not make the kernel read gigabytes at start."""


class StateCorrupt(Exception):
    """The state file exists but cannot be trusted; the message says why."""


class SavedState(NamedTuple):
    """What :func:`load_state` read back. A named tuple, as the others a start makes:
    ``dataclasses`` (with ``inspect``) would be a fifth of a first start's imports."""

    manifest_bytes: bytes
    signature: bytes
    files: dict[str, bytes]
    highest_version: int
    path: Path


def _checksum(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return "sha256:" + hashlib.sha256(canonical).hexdigest()


def save_state(state_dir: Path, manifest_bytes: bytes, signature: bytes,
               files: dict[str, bytes], version: int, highest_version: int) -> Path:
    """Persist an accepted artifact atomically; returns the state file's path."""
    state_dir.mkdir(parents=True, exist_ok=True)
    body: dict[str, Any] = {
        "format": STATE_FORMAT,
        "version": version,
        "highest_version": max(version, highest_version),
        "manifest": base64.b64encode(manifest_bytes).decode(),
        "signature": base64.b64encode(signature).decode(),
        "files": {n: base64.b64encode(d).decode() for n, d in sorted(files.items())},
    }
    body["checksum"] = _checksum(body)
    data = (json.dumps(body, sort_keys=True, indent=1) + "\n").encode()
    path = state_dir / STATE_FILE
    if len(data) > MAX_STATE_BYTES:  # what load_state() would refuse: keep the last one
        raise FileTooLarge(path, len(data), MAX_STATE_BYTES)
    replace_file(path, data, mode=0o600)
    return path


def remove_stale_state_temps(state_dir: Path) -> list[str]:
    """Remove what a :func:`save_state` killed mid-write left in ``state_dir`` (only its
    own temp files; see :func:`magcfg.durable.remove_stale_temps`)."""
    return remove_stale_temps(state_dir / STATE_FILE)


def load_state(state_dir: Path) -> SavedState | None:
    """The saved state, ``None`` if there is none; :class:`StateCorrupt` if unusable."""
    path = state_dir / STATE_FILE
    try:
        raw = read_regular(path, MAX_STATE_BYTES)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:  # "is a FIFO, not a regular file", "is larger than ... bytes"
        raise StateCorrupt(f"{path}: cannot read: {exc.strerror}") from None
    try:
        body = json.loads(raw.decode("utf-8"))
        if not isinstance(body, dict):
            raise ValueError("not an object")
        expected = body.pop("checksum", None)
        if expected != _checksum(body):
            raise StateCorrupt(f"{path}: checksum mismatch (the file was damaged or edited)")
        if body.get("format") != STATE_FORMAT:
            # Not quoted: whatever planted the file chose the value.
            raise ValueError(f"not of format {STATE_FORMAT}")
        files = {str(n): base64.b64decode(d, validate=True) for n, d in body["files"].items()}
        highest = body["highest_version"]
        if not is_version(highest):
            raise ValueError(f"highest_version is not an integer from 1 to {MAX_VERSION}")
        return SavedState(base64.b64decode(body["manifest"], validate=True),
                          base64.b64decode(body["signature"], validate=True),
                          files, highest, path)
    except StateCorrupt:
        raise
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError,
            RecursionError, binascii.Error) as exc:
        raise StateCorrupt(f"{path}: unreadable state ({type(exc).__name__}: "
                           f"{str(exc)[:80]})") from None
