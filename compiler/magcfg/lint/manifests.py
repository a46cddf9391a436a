"""The Kubernetes manifests MAG002 reads by their structure: a Bitnami SealedSecret's
ciphertext, and a Secret's ``data``, whose base64 values the line rules cannot read.

The file is the pull request's: both are read from libyaml's events, one entry at a
time, never composed into a tree (libyaml's composer recurses on the C stack; PyYAML's
took 19 s and hundreds of MB over the 200,000 entries of a 4 MiB Secret), and an entry
is kept as a few numbers and its value, not as the parser's events. A file that is not
YAML (a Helm template) is left to the line rules.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .walk import SourceFile

MAX_DATA_BYTES = 1 << 20
"""The largest Secret value decoded: a Secret holds at most 1 MiB."""
_MAX_ENCODED = 4 * ((MAX_DATA_BYTES + 2) // 3)
# `kind: Secret` in YAML or JSON (`"kind": "Secret"`), not SealedSecret or SecretStore.
_SECRET_KIND = re.compile(r"""["']?kind["']?\s*+:\s*+["']?Secret(?![\w-])""")


@dataclass(frozen=True, slots=True)
class DataEntry:
    """One decoded value of a Secret's ``data``."""

    key: str
    line: int
    column: int
    """Where the entry's key is: its findings' place."""
    lines: range
    """The lines of the key and its encoded value."""
    encoded: str
    data: bytes
    start: tuple[int, int]
    end: tuple[int, int]
    """Where the encoded value starts and ends (line, column)."""


_Entry = tuple[str, int, int, int, str | None]
"""A mapping entry as ``_entries`` keeps it: its key, where the key starts, where its
value starts and ends (offsets in the text), and the value if it is a plain scalar."""


@dataclass(slots=True)
class _Open:
    """A collection the YAML parser is inside (``_entries``)."""

    mapping: bool
    manifest: _Manifest | None = None
    """A document's root mapping, or an item of its ``items`` (a ``kind: List``): the
    manifest it is."""
    items: bool = False
    """A sequence: the ``items`` of a manifest."""
    path: tuple[str, ...] | None = None
    """A mapping's keys from its manifest's root, while they lead to the wanted mapping."""
    owner: _Manifest | None = None
    """The manifest this mapping (or the collection that is one of its values) is in."""
    key: str | None = None
    """A mapping's: the plain key its next value is under."""
    key_at: int = 0
    at_key: bool = True
    start: int = 0
    """Where the collection starts."""


@dataclass(slots=True)
class _Manifest:
    kind: str | None = None
    entries: list[_Entry] = field(default_factory=list)


def _entries(src: SourceFile, kind: str, path: tuple[str, ...]) -> Iterator[_Entry]:
    """The entries of the mapping at ``path`` in each ``kind`` manifest of ``src`` (the
    documents, and the items of a ``kind: List``), each as it is read; a manifest's
    entries read before its ``kind`` are held until the kind is (the first ``kind`` key
    counts). A manifest without one has none."""
    import yaml

    stack: list[_Open] = []

    def value_done(parent: _Open | None) -> None:
        if parent is not None and parent.mapping:
            parent.at_key = not parent.at_key

    def collect(parent: _Open | None, start: int, end: int, value: str | None
                ) -> Iterator[_Entry]:
        # A value of the wanted mapping: one of its manifest's entries, passed on at once
        # once the manifest's kind is known (`kind` first, as manifests are written), held
        # until it is otherwise.
        manifest = parent.owner if parent is not None else None
        if parent is None or manifest is None or parent.path != path or parent.at_key \
                or parent.key is None or manifest.kind not in (None, kind):
            return
        entry = (parent.key, parent.key_at, start, end, value)
        if manifest.kind is None:
            manifest.entries.append(entry)
        else:
            yield entry

    try:
        for event in yaml.parse(src.text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
            top = stack[-1] if stack else None
            if isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                done = stack.pop()
                parent = stack[-1] if stack else None
                yield from collect(parent, done.start, _offset(event.end_mark), None)
                value_done(parent)
                continue
            if not isinstance(event, yaml.NodeEvent):
                continue
            under = top.key if top is not None and top.mapping and not top.at_key else None
            owner = top.owner if top is not None else None
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                mapping = isinstance(event, yaml.MappingStartEvent)
                manifest = _Manifest() if mapping and (
                    top is None or (not top.mapping and top.items)) else None
                sub: tuple[str, ...] | None = None
                if manifest is not None:
                    sub = ()
                elif mapping and top is not None and top.path is not None \
                        and under is not None and path[:len(top.path) + 1] == (*top.path, under):
                    sub = (*top.path, under)
                stack.append(_Open(
                    mapping=mapping, manifest=manifest,
                    items=not mapping and top is not None and top.path == () and under == "items",
                    path=sub, owner=manifest or owner, start=_offset(event.start_mark)))
                continue
            value = event.value if isinstance(event, yaml.ScalarEvent) else None
            if top is not None and top.mapping:
                if top.at_key:
                    top.key = value
                    top.key_at = _offset(event.start_mark)
                elif top.manifest is not None and under == "kind" and top.manifest.kind is None:
                    top.manifest.kind = value
                    if value == kind:
                        yield from top.manifest.entries
                    top.manifest.entries = []
                else:
                    yield from collect(top, _offset(event.start_mark), _offset(event.end_mark), value)
            value_done(top)
    except yaml.YAMLError:
        return  # not YAML (a Helm template): the manifests read so far count


def _offset(mark: Any) -> int:
    # Every event the parser gives has its marks (the stubs allow None).
    return int(mark.index)


def _entry_lines(first: int, end: tuple[int, int]) -> range:
    """The lines from an entry's key's, ``first``, to where its value ends, ``end``."""
    last, column = end
    # A block scalar ends at the start of the line after its last.
    return range(first, max(first, last - (column == 1)) + 1)


def sealed_lines(src: SourceFile) -> frozenset[int]:
    """The lines of a Bitnami SealedSecret's ``spec.encryptedData`` entries: ciphertext
    that only the cluster's controller can open, so neither a secret-like key's value nor
    a high-entropy string there is a finding (a token format still is)."""
    if "SealedSecret" not in src.text or "encryptedData" not in src.text:
        return frozenset()
    lines: set[int] = set()
    for _, key_at, _, end, _ in _entries(src, "SealedSecret", ("spec", "encryptedData")):
        lines.update(_entry_lines(src.position(key_at)[0], src.position(end)))
    return frozenset(lines)


def secret_data(src: SourceFile) -> Iterator[DataEntry]:
    """The ``data`` values of the ``kind: Secret`` documents of ``src`` (and of the
    items of a ``kind: List``) that are base64 of at most ``MAX_DATA_BYTES`` (what the
    API server accepts), decoded. A value that is not base64 (a template's
    ``{{ ... | b64enc }}``) is left to the line rules."""
    if "data" not in src.text or not _SECRET_KIND.search(src.text):
        return
    for key, key_at, start, end, value in _entries(src, "Secret", ("data",)):
        encoded = "".join(value.split()) if value is not None else ""
        if not encoded or len(encoded) > _MAX_ENCODED:
            continue
        try:
            decoded = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        line, column = src.position(key_at)
        ends = src.position(end)
        yield DataEntry(key, line, column, _entry_lines(line, ends), value or "", decoded,
                        src.position(start), ends)
