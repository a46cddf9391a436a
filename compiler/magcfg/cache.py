"""Content-hash cache of parsed layer files and of compiled fragments.

Parsed files are keyed by the sha256 of their bytes; a fragment (one top-level key of
one environment, merged, validated and serialized) by a digest of everything it was
made from: compiler version, schema digest, the key, and the path, layer and content
digest of each file that contributed to it. A cache entry can therefore only be reused
for exactly the same inputs. Entries are written atomically; an unreadable entry is a
miss, never an error. Writes are best effort (a read-only checkout still builds).

Storage is ``marshal`` (the parsed data is plain dicts, lists and scalars, plus the
tuple markers of load.py): several times faster to read back than pickle or JSON.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import sys
from pathlib import Path
from typing import Any

from . import __version__

_FORMAT = 1
_SALT = f"magcfg-{__version__}-{_FORMAT}-{sys.version_info[0]}.{sys.version_info[1]}"


class BuildCache:
    """A directory of cache entries; ``directory=None`` keeps everything in memory."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self._index: dict[str, tuple[tuple[str, ...], bool]] | None = None
        self._index_dirty = False
        self._memory: dict[str, Any] = {}

    # -- parsed layer files -------------------------------------------------------------

    def index(self) -> dict[str, tuple[tuple[str, ...], bool]]:
        """content digest -> (top-level keys, has markers), for every cached file."""
        if self._index is None:
            loaded = self._read("index")
            self._index = loaded if isinstance(loaded, dict) else {}
        return self._index

    def parsed(self, digest: str) -> tuple[dict[str, Any], bool] | None:
        entry = self._read(f"p-{digest}")
        if (isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], dict)
                and isinstance(entry[1], bool)):
            return entry[0], entry[1]
        return None

    def put_parsed(self, digest: str, data: dict[str, Any], has_markers: bool) -> None:
        self._write(f"p-{digest}", (data, has_markers))
        self.index()[digest] = (tuple(data), has_markers)
        self._index_dirty = True

    # -- fragments ------------------------------------------------------------------------

    @staticmethod
    def fragment_key(*parts: str) -> str:
        h = hashlib.sha256(_SALT.encode())
        for part in parts:
            h.update(b"\0")
            h.update(part.encode("utf-8"))
        return h.hexdigest()

    def fragment(self, key: str) -> Any:
        return self._read(f"f-{key}")

    def put_fragment(self, key: str, value: Any) -> None:
        self._write(f"f-{key}", value)

    def flush(self) -> None:
        if self._index_dirty and self._index is not None:
            self._write("index", self._index)
            self._index_dirty = False

    # -- storage --------------------------------------------------------------------------

    def _path(self, name: str) -> Path:
        assert self.directory is not None
        sub = name[2:4] if name[1] == "-" else ""
        return self.directory / sub / name if sub else self.directory / name

    def _read(self, name: str) -> Any:
        if self.directory is None:
            return self._memory.get(name)
        try:
            raw = self._path(name).read_bytes()
        except OSError:
            return None
        salt = _SALT.encode() + b"\n"
        if not raw.startswith(salt):
            return None
        try:
            return marshal.loads(raw[len(salt):])
        except (ValueError, EOFError, TypeError):
            return None

    def _write(self, name: str, value: Any) -> None:
        if self.directory is None:
            self._memory[name] = value
            return
        path = self._path(name)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_bytes(_SALT.encode() + b"\n" + marshal.dumps(value))
            os.replace(tmp, path)
        except OSError:
            pass
