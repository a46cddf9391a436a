"""Immutable snapshots of a verified config, and lookups that cost about a dict access.

A snapshot is built once per accepted artifact and never changes: maps are frozen into
``MappingProxyType`` views of dicts nobody else holds, lists into tuples. The kernel
publishes a snapshot by assigning one reference, so a reader holding a snapshot sees one
whole config, never a mix of two.

``get("a.b.c")`` memoises the paths it has resolved in a per-snapshot dict: the first
lookup of a path walks the tree, every later one is one dict lookup. The memo is
bounded so arbitrary keys cannot grow it without limit. A path is the text form of
:mod:`magcfg.keyglob` (a dot inside a key is escaped: ``apps.eu\\.west.dsn``) or a
tuple of segments.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..keyglob import parse_keypath

MISSING: Any = object()
"""Returned by :meth:`Snapshot.lookup` for a path that is not in the config."""

_MEMO_LIMIT = 65536
_CONTAINERS = (dict, list)


def freeze(value: Any) -> Any:
    """A deeply immutable copy of parsed JSON: dicts as read-only mappings, lists as tuples."""
    kind = type(value)
    if kind is dict:
        # Scalars (most values) are taken as they are, without a call per value.
        return MappingProxyType({k: freeze(v) if type(v) in _CONTAINERS else v
                                 for k, v in value.items()})
    if kind is list:
        return tuple([freeze(v) if type(v) in _CONTAINERS else v for v in value])
    return value


def thaw(value: Any) -> Any:
    """A plain, mutable copy of a frozen value (dicts and lists), e.g. for serializing."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


@dataclass(frozen=True, eq=False)
class Snapshot:
    """One accepted config: its frozen tree, the verified manifest and where it came from.

    ``files`` holds the exact verified bytes of every file the manifest lists, so the
    snapshot can be persisted or republished without reading the artifact again.
    """

    config: Mapping[str, Any]
    manifest: Mapping[str, Any]
    manifest_bytes: bytes
    signature: bytes
    files: Mapping[str, bytes]
    key_id: str
    source: str = "artifact"
    _memo: dict[str | tuple[str, ...], Any] = field(default_factory=dict, repr=False)

    @property
    def version(self) -> int:
        """The manifest's monotonic version."""
        return int(self.manifest["version"])

    @property
    def environment(self) -> str:
        return str(self.manifest.get("environment", ""))

    @property
    def config_digest(self) -> str:
        return str(self.manifest.get("config_digest", ""))

    def lookup(self, path: str | tuple[str, ...]) -> Any:
        """The value at ``path`` (list items by index), or :data:`MISSING`."""
        value = self._memo.get(path, MISSING)
        if value is not MISSING:
            return value
        node: Any = self.config
        for part in parse_keypath(path) if isinstance(path, str) else path:
            if isinstance(node, Mapping):
                node = node.get(part, MISSING)
            elif (isinstance(node, tuple) and part.isascii() and part.isdigit()
                  and int(part) < len(node)):
                node = node[int(part)]
            else:
                return MISSING
            if node is MISSING:
                return MISSING
        if len(self._memo) < _MEMO_LIMIT:
            # A plain dict store is atomic under the GIL; racing readers store equal values.
            self._memo[path] = node
        return node

    def get(self, path: str | tuple[str, ...], default: Any = None) -> Any:
        """The value at ``path``, or ``default``."""
        value = self.lookup(path)
        return default if value is MISSING else value
