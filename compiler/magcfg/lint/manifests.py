"""The Kubernetes manifests MAG002 reads by their structure: a Bitnami SealedSecret's
ciphertext, and a Secret's ``data``, whose base64 values the line rules cannot read.

The file is the pull request's: neither reads it with libyaml's composer, which recurses
on the C stack. A file that is not YAML (a Helm template) is left to the line rules.
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


@dataclass(frozen=True)
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

    def covers(self, line: int, column: int) -> bool:
        """Whether (``line``, ``column``) is in the encoded value."""
        return self.start <= (line, column) <= self.end


def _child(node: Any, name: str) -> Any:
    import yaml

    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == name:
                return value
    return None


def _kind_is(node: Any, kind: str) -> bool:
    import yaml

    found = _child(node, "kind")
    return isinstance(found, yaml.ScalarNode) and found.value == kind


def _documents(src: SourceFile) -> Iterator[Any]:
    """The documents of ``src`` as nodes, and the items of a ``kind: List`` (what
    ``kubectl get -o yaml`` prints); nothing once the text is not YAML."""
    import yaml

    try:
        for doc in yaml.compose_all(src.text, Loader=yaml.SafeLoader):
            yield doc
            items = _child(doc, "items") if _kind_is(doc, "List") else None
            if isinstance(items, yaml.SequenceNode):
                yield from items.value
    except (yaml.YAMLError, RecursionError):
        return


def _entry_lines(src: SourceFile, key: Any, value: Any) -> range:
    first, _ = src.position(key.start_mark.index)
    last, column = src.position(value.end_mark.index)
    # A block scalar ends at the start of the line after its last.
    return range(first, max(first, last - (column == 1)) + 1)


def sealed_lines(src: SourceFile) -> frozenset[int]:
    """The lines of a Bitnami SealedSecret's ``spec.encryptedData`` entries: ciphertext
    that only the cluster's controller can open, so neither a secret-like key's value nor
    a high-entropy string there is a finding (a token format still is)."""
    import yaml

    if "SealedSecret" not in src.text or "encryptedData" not in src.text:
        return frozenset()
    lines: set[int] = set()
    for doc in _documents(src):
        data = _child(_child(doc, "spec"), "encryptedData")
        if _kind_is(doc, "SealedSecret") and isinstance(data, yaml.MappingNode):
            for key, value in data.value:
                lines.update(_entry_lines(src, key, value))
    return frozenset(lines)


@dataclass
class _Open:
    """A collection the YAML parser is inside (``secret_data``)."""

    mapping: bool
    manifest: bool = False
    """A document's root mapping, or an item of its ``items`` (a ``kind: List``)."""
    items: bool = False
    """A sequence: the ``items`` of a manifest."""
    data: list[tuple[Any, Any]] | None = None
    """A mapping that is a manifest's ``data``: that manifest's entries."""
    key: Any = None
    """A mapping's: the scalar key its next value is under."""
    at_key: bool = True
    kind: str | None = None
    entries: list[tuple[Any, Any]] = field(default_factory=list)


def secret_data(src: SourceFile) -> list[DataEntry]:
    """The ``data`` values of the ``kind: Secret`` documents of ``src`` (and of the
    items of a ``kind: List``) that are base64 of at most ``MAX_DATA_BYTES`` (what the
    API server accepts), decoded. A value that is not base64 (a template's
    ``{{ ... | b64enc }}``) is left to the line rules. Read from libyaml's events, not
    composed: PyYAML's composer took 19 s over the 200,000 entries of a 4 MiB file,
    libyaml's recurses on the C stack."""
    import yaml

    if "data" not in src.text or not _SECRET_KIND.search(src.text):
        return []
    pairs: list[tuple[Any, Any]] = []
    stack: list[_Open] = []

    def value_done() -> None:
        if stack and stack[-1].mapping:
            stack[-1].at_key = not stack[-1].at_key

    try:
        for event in yaml.parse(src.text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
            top = stack[-1] if stack else None
            under = top.key.value if top is not None and top.mapping and not top.at_key \
                and isinstance(top.key, yaml.ScalarEvent) else None
            if isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                done = stack.pop()
                if done.manifest and done.kind == "Secret":
                    pairs.extend(done.entries)
                value_done()
            elif isinstance(event, yaml.MappingStartEvent):
                manifest = top is None or (not top.mapping and top.items)
                data = top.entries if top is not None and top.manifest and under == "data" \
                    else None
                stack.append(_Open(mapping=True, manifest=manifest, data=data))
            elif isinstance(event, yaml.SequenceStartEvent):
                stack.append(_Open(mapping=False, items=top is not None and top.manifest
                                   and under == "items"))
            elif isinstance(event, (yaml.ScalarEvent, yaml.AliasEvent)) and top is not None \
                    and top.mapping:
                if top.at_key:
                    top.key = event
                elif top.manifest and under == "kind" and isinstance(event, yaml.ScalarEvent):
                    top.kind = event.value
                elif top.data is not None and under is not None \
                        and isinstance(event, yaml.ScalarEvent):
                    top.data.append((top.key, event))
                value_done()
    except yaml.YAMLError:
        pass  # not YAML (a Helm template): the manifests read so far count
    entries: list[DataEntry] = []
    for key, value in pairs:
        encoded = "".join(value.value.split())
        if not encoded or len(encoded) > _MAX_ENCODED:
            continue
        try:
            decoded = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        line, column = src.position(key.start_mark.index)
        entries.append(DataEntry(str(key.value), line, column, _entry_lines(src, key, value),
                                 value.value, decoded, src.position(value.start_mark.index),
                                 src.position(value.end_mark.index)))
    return entries
