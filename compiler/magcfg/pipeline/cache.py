"""Content-hash cache of parsed layer files and of compiled fragments.

Parsed files are keyed by the sha256 of their bytes; a fragment (one top-level key of
one environment, merged, validated and serialized) by a digest of everything it was
made from: compiler version, schema digest, the key, and the path, layer and content
digest of each file that contributed to it. An entry can therefore only be reused for
exactly the same inputs.

Storage: entries are ``marshal`` blobs (several times faster to read back than pickle
or JSON) appended to *pack* files, one new pack per build, with one index file mapping
keys to (pack, offset, length). Creating a file per entry cost more than the whole
parse on the large benchmark repo (1,500 file creations, ~0.5 s); a pack is one write.
Packs and the index are replaced atomically; an unreadable entry is a miss, never an
error; writes are best effort (a read-only checkout still builds). When more than
``MAX_PACKS`` packs exist, the live entries (those the last build used) are compacted
into one pack and the rest is deleted.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import sys
from pathlib import Path
from typing import Any

from ..version import __version__

_FORMAT = 2
_SALT = f"magcfg-{__version__}-{_FORMAT}-{sys.version_info[0]}.{sys.version_info[1]}".encode()
MAX_PACKS = 8
_INDEX = "index.bin"

Location = tuple[str, int, int]


class BuildCache:
    """A directory of packs; ``directory=None`` keeps everything in memory."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self._loaded = False
        self._locations: dict[str, Location] = {}
        self._files: dict[str, tuple[tuple[str, ...], bool]] = {}
        self._pending: dict[str, bytes] = {}
        self._used: set[str] = set()
        self._fds: dict[str, int] = {}

    # -- parsed layer files -------------------------------------------------------------

    def index(self) -> dict[str, tuple[tuple[str, ...], bool]]:
        """content digest -> (top-level keys, has markers), for every cached file."""
        self._load_index()
        return self._files

    def parsed(self, digest: str) -> tuple[dict[str, Any], bool] | None:
        entry = self._get(f"p-{digest}")
        if (isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], dict)
                and isinstance(entry[1], bool)):
            return entry[0], entry[1]
        return None

    def put_parsed(self, digest: str, data: dict[str, Any], has_markers: bool) -> None:
        self._put(f"p-{digest}", (data, has_markers))
        self.index()[digest] = (tuple(data), has_markers)

    # -- fragments ------------------------------------------------------------------------

    @staticmethod
    def fragment_key(*parts: str) -> str:
        h = hashlib.sha256(_SALT)
        for part in parts:
            h.update(b"\0")
            h.update(part.encode("utf-8"))
        return h.hexdigest()

    def fragment(self, key: str) -> Any:
        return self._get(f"f-{key}")

    def put_fragment(self, key: str, value: Any) -> None:
        self._put(f"f-{key}", value)

    # -- storage --------------------------------------------------------------------------

    def _load_index(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        if self.directory is None:
            return
        try:
            raw = (self.directory / _INDEX).read_bytes()
            if raw.startswith(_SALT + b"\n"):
                locations, files = marshal.loads(raw[len(_SALT) + 1:])
                if isinstance(locations, dict) and isinstance(files, dict):
                    self._locations, self._files = locations, files
        except (OSError, ValueError, EOFError, TypeError):
            pass

    def _put(self, key: str, value: Any) -> None:
        self._used.add(key)
        self._pending[key] = marshal.dumps(value)

    def _get(self, key: str) -> Any:
        self._used.add(key)
        blob = self._pending.get(key)
        if blob is None:
            blob = self._read_blob(key)
        if blob is None:
            return None
        try:
            return marshal.loads(blob)
        except (ValueError, EOFError, TypeError):
            return None

    def _read_blob(self, key: str) -> bytes | None:
        self._load_index()
        location = self._locations.get(key)
        if location is None or self.directory is None:
            return None
        pack, offset, length = location
        try:
            fd = self._fds.get(pack)
            if fd is None:
                fd = self._fds[pack] = os.open(self.directory / pack, os.O_RDONLY)
            blob = os.pread(fd, length, offset)
        except OSError:
            return None
        return blob if len(blob) == length else None

    def flush(self) -> None:
        """Write this build's new entries as one pack and the index; compact if needed."""
        if self.directory is None or not self._pending:
            return
        self._load_index()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            packs = sorted(p.name for p in self.directory.glob("pack-*.bin"))
            if len(packs) >= MAX_PACKS:
                self._compact(packs)
            else:
                self._write_pack(self._pending)
            self._pending = {}
            self._write_atomic(self.directory / _INDEX,
                               _SALT + b"\n" + marshal.dumps((self._locations, self._files)))
        except OSError:
            pass

    def _write_pack(self, blobs: dict[str, bytes]) -> None:
        assert self.directory is not None
        keys = sorted(blobs)
        name = "pack-" + hashlib.sha256(b"".join(k.encode() for k in keys)).hexdigest()[:20] + ".bin"
        offset = 0
        for key in keys:
            self._locations[key] = (name, offset, len(blobs[key]))
            offset += len(blobs[key])
        self._write_atomic(self.directory / name, b"".join(blobs[k] for k in keys))

    def _compact(self, packs: list[str]) -> None:
        assert self.directory is not None
        live: dict[str, bytes] = {}
        for key in sorted(self._used):
            blob = self._pending.get(key) or self._read_blob(key)
            if blob is not None:
                live[key] = blob
        self._locations = {}
        live_digests = {k[2:] for k in live if k.startswith("p-")}
        self._files = {d: v for d, v in self._files.items() if d in live_digests}
        self._close()
        self._write_pack(live)
        keep = {loc[0] for loc in self._locations.values()}
        for pack in packs:
            if pack not in keep:
                (self.directory / pack).unlink(missing_ok=True)

    @staticmethod
    def _write_atomic(path: Path, data: bytes) -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def _close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds = {}

    def __del__(self) -> None:
        self._close()
