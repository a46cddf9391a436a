"""Stage 1, load: the layer files of an environment, listed and parsed.

A ``FileSource`` lists each layer directory of the project (sorted, hidden entries
skipped) and reads files; ``syntax.strict_yaml`` parses them strictly; the compiler
keeps one ``ParsedFile`` per path for every environment of a build, and the parse cache
(``pipeline.cache``) lets a rebuild skip parsing files whose bytes it has seen.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..durable import PathError, Tree, colliding_paths, one_file_name, path_problem
from ..errors import Diagnostic
from ..project import LAYER_SUFFIXES, Checkout
from .cache import settled

if TYPE_CHECKING:
    # Imported by ``ParsedFile.line``, when a line is asked for (an error, a warning,
    # ``explain``): a build that asks none imports nothing of the line index.
    from ..syntax.keylines import Indexed

__all__ = ["LAYER_SUFFIXES", "FileSource", "ParsedFile"]


class ParsedFile:
    """One layer file after strict loading. ``data`` is its top-level mapping, which
    may be loaded on first use (from the parse cache): a rebuild that reuses a
    fragment never needs the data of the files behind it, only their ``keys``."""

    __slots__ = ("_data", "_lines", "_loader", "digest", "has_markers", "keys", "path",
                 "prefix")

    def __init__(self, path: str, digest: str, keys: tuple[str, ...], has_markers: bool,
                 data: dict[str, Any] | None = None,
                 loader: Callable[[], dict[str, Any]] | None = None,
                 prefix: tuple[str, ...] = ()) -> None:
        self.path = path
        self.digest = digest
        self.keys = frozenset(keys)
        self.has_markers = has_markers
        self._data = data
        self._loader = loader
        self._lines: tuple[bytes, Indexed | bool] | None = None
        self.prefix = prefix
        """The key path the file's content sits under (``LayerSpec.key``; ``()`` for a
        file that spells out its full key paths): ``data`` and ``keys`` include it."""

    def under(self, prefix: tuple[str, ...]) -> ParsedFile:
        """This file as a layer with a key prefix reads it: its content nested under
        ``prefix`` (an empty file stays empty)."""
        if not prefix:
            return self
        inner = self

        def nested() -> dict[str, Any]:
            data: dict[str, Any] = inner.data
            if not data:
                return {}
            for part in reversed(prefix):
                data = {part: data}
            return data

        return ParsedFile(self.path, self.digest, (prefix[0],) if self.keys else (),
                          self.has_markers, loader=nested, prefix=prefix)

    def file_keypath(self, keypath: tuple[str, ...]) -> tuple[str, ...]:
        """Where ``keypath`` (of the merged document) is written inside the file: without
        the key prefix; ``()`` (the file itself) for the prefix or any part of it."""
        n = len(self.prefix)
        return keypath[n:] if keypath[:n] == self.prefix else ()

    def line(self, raw: bytes, keypath: tuple[str, ...]) -> int | None:
        """The line of ``keypath`` (of the merged document) in the file's bytes ``raw``,
        or of its deepest ancestor written there (``syntax.locate``). The file's lines
        are read once for all the key paths asked about (a promotion asks hundreds)."""
        from ..syntax.keylines import line_in, simple_lines

        found = self._lines
        if found is None or found[0] is not raw:
            # Equal bytes read anew keep the index, and are kept so that the next
            # comparison is by identity (it was by content each time: a megabyte per key).
            lines = found[1] if found is not None and found[0] == raw else simple_lines(
                self.path, raw)
            found = self._lines = (raw, lines)
        return line_in(self.path, raw, found[1], self.file_keypath(keypath))

    @property
    def loaded(self) -> bool:
        """Whether ``data`` is at hand (not yet to be loaded from the file)."""
        return self._data is not None

    @property
    def data(self) -> dict[str, Any]:
        if self._data is None:
            assert self._loader is not None
            self._data = self._loader()
        return self._data

    def __repr__(self) -> str:
        return f"ParsedFile({self.path!r})"




class FileSource:
    """Layer and schema files on disk below ``root`` (``durable.Tree``): symlinks are
    followed only while they stay inside ``root`` and out of ``fenced`` (the output,
    the cache, ``.git``); only regular files are read."""

    def __init__(self, root: Path, fenced: Iterable[str] = ()) -> None:
        self._tree = Tree(root, fenced)
        self.root = Path(self._tree.root)
        self._checkout = Checkout(self.root)

    def read(self, path: str) -> bytes:
        """The bytes of ``path``, refused when they are not what the commit holds
        (``project.Checkout``)."""
        return self.read_examined(path)[0]

    def read_examined(self, path: str) -> tuple[bytes, bool]:
        """``read``, and whether the bytes are such that no checkout could have written
        them for others (``project.Checkout.examine``)."""
        return self.examined(path, self._tree.read(path))

    def examined(self, path: str, raw: bytes) -> tuple[bytes, bool]:
        """``raw``, which ``path`` holds (or a buffer standing for it), as ``read_examined``
        gives it."""
        problem, plain = self._checkout.examine(self._tree.real_relative(path), raw)
        if problem is not None:
            raise PathError([path_problem(path, problem)])
        return raw, plain

    def sha256(self, path: str) -> tuple[str, int]:
        """The hex SHA-256 and size of what ``read(path)`` returns, without holding the
        bytes (a rebuild needs only the digest of a schema of tens of megabytes). A
        subclass that changes ``read`` changes this too."""
        return self._tree.sha256(path)

    def read_settled(self, path: str, began_ns: int) -> tuple[bytes, os.stat_result | None]:
        """``read(path)``, and the file's status if it vouches for these bytes while it
        lasts (``BuildCache.held_digests``): the file held still while it was read,
        which began after ``began_ns`` (``cache.settled``), and the verdict on its bytes
        was theirs alone, not git's index's (``read_examined``)."""
        try:
            before = self.status(path)
        except PathError:  # read says what is wrong, as it says it without a status
            return self.read(path), None
        raw, plain = self.read_examined(path)
        if not plain:
            return raw, None
        try:
            after = self.status(path)
        except PathError:  # gone since: it did not hold still
            return raw, None
        return raw, before if settled(before, after, began_ns) else None

    def status(self, path: str) -> os.stat_result:
        """The status of the file ``sha256(path)`` hashes, with its checks: what tells the
        file unchanged since it was hashed (``BuildCache.file_sha256``). Only of the
        disk's file: a subclass that changes ``read`` has no status for what it lays
        over it."""
        return self._tree.status(path)

    def list_layer(self, directory: str, suffixes: tuple[str, ...] = LAYER_SUFFIXES
                   ) -> tuple[list[str], list[Diagnostic]]:
        """Layer files under ``directory`` (recursive, sorted by path bytes, hidden
        entries skipped), and the problems found. A missing directory is an empty layer."""
        files, problems = self._tree.list_files(directory, suffixes)
        if not problems:
            problems = self.elsewhere_there(directory.strip("/"))
        return files, [self._linked(d) if d.file == directory.strip("/") else d
                       for d in problems]

    def elsewhere_there(self, directory: str) -> list[Diagnostic]:
        """A problem when an entry on the way to ``directory`` (a layer directory, or a
        file the build reads: the project file, a schema) has a sibling that macOS or
        Windows would open for it (``layers/Base`` for ``layers/base``): with
        ``directory`` not here, an empty layer here and that directory's files there;
        with both here, this layer's files here and both's there, one directory (or the
        file git wrote last)."""
        parent = ""
        for part in directory.split("/"):
            path = f"{parent}/{part}" if parent else part
            try:
                names = os.listdir(os.path.join(self.root, parent))
            except OSError:
                return []
            key = one_file_name(part)
            found = next((n for n in sorted(names)
                          if n != part and one_file_name(n) == key), None)
            if found is not None:
                other = f"{parent}/{found}" if parent else found
                if part in names:
                    return colliding_paths([path, other])
                return [path_problem(directory, f"is not here, but {other} is, which macOS "
                                     "or Windows would read for it (names there differ "
                                     "only in case, normalization, a trailing dot or "
                                     "space); write the name as it is")]
            if part not in names:
                return []
            parent = path
        return []

    def _linked(self, problem: Diagnostic) -> Diagnostic:
        """``problem`` (a layer directory that is a file), or what the file is: a
        committed symlink to a directory that a checkout without symlinks wrote as
        a file (``project.Checkout``)."""
        try:
            raw = self._tree.read(problem.file)
        except PathError:
            return problem
        found = self._checkout.problem_asked(self._tree.real_relative(problem.file), raw)
        return problem if found is None else path_problem(problem.file, found)

    def real_relative(self, path: str) -> str:
        """Where below the root ``path`` really is (``durable.Tree.real_relative``)."""
        return self._tree.real_relative(path)
