"""Stage 1, load: the layer files of an environment, listed and parsed.

A ``FileSource`` lists each layer directory of the project (sorted, hidden entries
skipped) and reads files; ``syntax.strict_yaml`` parses them strictly; the compiler
keeps one ``ParsedFile`` per path for every environment of a build, and the parse cache
(``pipeline.cache``) lets a rebuild skip parsing files whose bytes it has seen.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import Diagnostic

__all__ = ["LAYER_SUFFIXES", "FileSource", "ParsedFile"]


class ParsedFile:
    """One layer file after strict loading. ``data`` is its top-level mapping, which
    may be loaded on first use (from the parse cache): a rebuild that reuses a
    fragment never needs the data of the files behind it, only their ``keys``."""

    __slots__ = ("_data", "_loader", "digest", "has_markers", "keys", "path")

    def __init__(self, path: str, digest: str, keys: tuple[str, ...], has_markers: bool,
                 data: dict[str, Any] | None = None,
                 loader: Callable[[], dict[str, Any]] | None = None) -> None:
        self.path = path
        self.digest = digest
        self.keys = frozenset(keys)
        self.has_markers = has_markers
        self._data = data
        self._loader = loader

    @property
    def data(self) -> dict[str, Any]:
        if self._data is None:
            assert self._loader is not None
            self._data = self._loader()
        return self._data

    def __repr__(self) -> str:
        return f"ParsedFile({self.path!r})"


LAYER_SUFFIXES = (".yaml", ".yml", ".cue")
"""Layer files: YAML, and CUE (evaluated by ``cue export``, see cue_layers.py)."""


class FileSource:
    """Layer files on disk below ``root``. Symlinks are followed only inside ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._root = str(self.root)

    def read(self, path: str) -> bytes:
        with open(os.path.join(self._root, path), "rb") as fh:
            return fh.read()

    def list_layer(self, directory: str, suffixes: tuple[str, ...] = LAYER_SUFFIXES
                   ) -> tuple[list[str], list[Diagnostic]]:
        """Layer files under ``directory`` (recursive, sorted by path bytes, hidden
        entries skipped). A missing directory is an empty layer."""
        # Plain strings and os.walk, not pathlib: 1,000 files cost ~30 ms in Path objects.
        base = os.path.join(self._root, directory)
        files: list[str] = []
        problems: list[Diagnostic] = []
        if not os.path.lexists(base):
            return files, problems
        cut = len(self._root) + 1
        for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for d in list(dirnames):
                full = os.path.join(dirpath, d)
                if os.path.islink(full) and not self._inside(Path(full)):
                    problems.append(Diagnostic(full[cut:].replace(os.sep, "/"), None, None,
                                               "symlink leads outside the repository",
                                               code="symlink"))
                    dirnames.remove(d)
            for name in filenames:
                if name.startswith(".") or not name.endswith(suffixes):
                    continue
                full = os.path.join(dirpath, name)
                rel = full[cut:].replace(os.sep, "/")
                if os.path.islink(full) and not self._inside(Path(full)):
                    problems.append(Diagnostic(rel, None, None,
                                               "symlink leads outside the repository",
                                               code="symlink"))
                    continue
                files.append(rel)
        files.sort(key=lambda p: p.encode("utf-8"))
        return files, problems

    def _inside(self, path: Path) -> bool:
        try:
            path.resolve().relative_to(self.root)
        except ValueError:
            return False
        return True
