"""The files of a project as an editor sees them: open buffers over the working tree.

The compiler reads layer and schema files through a source (``pipeline.merge.Source``);
this one answers with the unsaved text of an open document where there is one. What may
be read is decided exactly as for a build (docs/security.md): only paths the listing of a
layer directory found, or the schema's path, and a buffer stands in for a file only while
that file resolves inside the repository, out of the fenced areas (``durable.Tree``). A
buffer for a path the build would refuse or never read is never read either.

The checks of the checkout are the build's too (``FileSource``): a buffer stands for its
file, so its bytes are refused as the file's would be (an LFS pointer, a converted
file, a symlink's target), and a layer directory beside its case twin is refused.

Listing layer directories walks the disk, so listings are kept until a file is created,
deleted or saved (``forget_listings``): a keystroke costs no directory walk.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from ..durable import MAX_INPUT_BYTES, FileTooLarge
from ..errors import Diagnostic
from ..pipeline.load import LAYER_SUFFIXES, FileSource
from ..project import Checkout


def buffer_bytes(text: str) -> int:
    """The bytes of ``text`` as a buffer is kept (UTF-8), which ``MAX_INPUT_BYTES``
    bounds as it bounds a file: a character may be up to four of them."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


class OverlaySource(FileSource):
    """Layer and schema files below ``root``; open buffers win over the disk."""

    def __init__(self, root: Path, fenced: Iterable[str] = ()) -> None:
        super().__init__(root, fenced)
        self._buffers: dict[str, bytes] = {}
        self._listings: dict[tuple[str, tuple[str, ...]], tuple[list[str], list[Diagnostic]]] = {}

    # -- the editor's side ------------------------------------------------------------

    def open(self, path: str, text: str) -> None:
        """The buffer of ``path`` (relative to the root) now holds ``text``; FileTooLarge
        (the buffer closed) when it is larger than a file the build reads."""
        raw = text.encode("utf-8", "surrogatepass")
        if len(raw) > MAX_INPUT_BYTES:
            self._buffers.pop(path, None)
            raise FileTooLarge(path, len(raw), MAX_INPUT_BYTES)
        self._buffers[path] = raw

    def close(self, path: str) -> None:
        """``path`` is read from disk again."""
        self._buffers.pop(path, None)

    def buffer(self, path: str) -> bytes | None:
        return self._buffers.get(path)

    def forget_listings(self) -> None:
        """Files were created, deleted or renamed: list the layer directories again, and
        ask git's index again (a commit or a checkout may have changed it)."""
        self._listings.clear()
        self._checkout = Checkout(self.root)

    # -- the compiler's side (``pipeline.merge.Source`` and ``FileSource``) ------------

    def read_examined(self, path: str) -> tuple[bytes, bool]:
        buffer = self._buffers.get(path)
        if buffer is None:
            return super().read_examined(path)
        self._tree.resolve(path)  # the file the buffer stands for must be readable
        return self.examined(path, buffer)

    def sha256(self, path: str) -> tuple[str, int]:
        buffer = self._buffers.get(path)
        if buffer is None:
            return super().sha256(path)
        return hashlib.sha256(buffer).hexdigest(), len(buffer)

    def list_layer(self, directory: str, suffixes: tuple[str, ...] = LAYER_SUFFIXES
                   ) -> tuple[list[str], list[Diagnostic]]:
        key = (directory, suffixes)
        found = self._listings.get(key)
        if found is None:
            found = super().list_layer(directory, suffixes)
            self._listings[key] = found
        files, problems = found
        return list(files), list(problems)
