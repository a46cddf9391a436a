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

Consecutive snapshots **share unchanged subtrees**: :func:`build_config` splits a
``config.json`` laid out as the compiler writes it (one top-level member after each
``,\n  "``) into the byte spans of its top-level members, and a member whose bytes are
the same as in the previous snapshot keeps the previous snapshot's frozen object (the
same object, ``is``); only changed members are parsed and frozen.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from ..keyglob import parse_keypath
from ..record import Record

TYPE_CHECKING = False  # typing costs more than the rest of this module: see kernel.py
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Member = tuple[int, int, str, Any]
    """A top-level member of a config: its byte span in ``config.json`` (start, end),
    its key and its frozen value."""

MISSING: Any = object()
"""Returned by :meth:`Snapshot.lookup` for a path that is not in the config."""

_MEMO_LIMIT = 65536
_CONTAINERS = (dict, list)
_SEPARATOR = b',\n  "'  # before every top-level member but the first, in the compiler's layout
_HINT = 96
_SPACE = b" \t\r\n"


def _max_depth() -> int:
    """``artifact.MAX_CONFIG_DEPTH``, read when a config is loaded: ``artifact`` (json,
    pathlib, re) is not for this module's import, which every service pays at start."""
    from ..artifact import MAX_CONFIG_DEPTH

    return MAX_CONFIG_DEPTH


class NestedTooDeep(ValueError):
    """A value nested deeper than :func:`freeze` takes (``MAX_CONFIG_DEPTH`` levels)."""

    def __init__(self) -> None:
        super().__init__(f"nested deeper than {_max_depth()} levels")


def freeze(value: Any, depth: int | None = None) -> Any:
    """A deeply immutable copy of parsed JSON: dicts as read-only mappings, lists as
    tuples. Raises :class:`NestedTooDeep` if a dict or list in ``value`` (``value``
    itself at level 1) lies more than ``depth`` levels down (``MAX_CONFIG_DEPTH`` if
    ``None``)."""
    if depth is None:
        depth = _max_depth()
    kind = type(value)
    if kind is dict:
        if depth < 1:
            raise NestedTooDeep()
        below = depth - 1
        # Scalars (most values) are taken as they are, without a call per value.
        return MappingProxyType({k: freeze(v, below) if type(v) in _CONTAINERS else v
                                 for k, v in value.items()})
    if kind is list:
        if depth < 1:
            raise NestedTooDeep()
        below = depth - 1
        return tuple([freeze(v, below) if type(v) in _CONTAINERS else v for v in value])
    return value


def build_config(body: bytes, parse: Callable[[bytes], Any],
                 previous: Snapshot | None = None,
                 config_name: str = "config.json",
                 ) -> tuple[Mapping[str, Any], tuple[Member, ...]] | None:
    """The frozen config of the JSON object ``body`` and its top-level members, reusing
    the frozen value of every member whose bytes are unchanged since ``previous``.

    ``body`` is split into pieces, ``{piece,piece,...}``: a piece is either the bytes of
    a member of ``previous`` (compared byte for byte, ``memcmp``, with the member at the
    same position, else with the one of the same key text) followed by whitespace and
    ``,`` or the closing brace, or the bytes up to the next ``,\n  "`` (the compiler's layout: one
    top-level member per line at an indent of two), which must parse, wrapped in
    braces, as an object of exactly one member. That is sound whatever the layout:
    if every ``{piece}`` is a valid one-member object, ``{piece,piece,...}`` is a valid
    object made of exactly those members (JSON's grammar: ``{ ws member (ws , ws
    member)* ws }``), and a member's value does not depend on what surrounds it.

    ``None`` if ``body`` is not an object in that layout, a piece does not parse on its
    own, or a key repeats: the caller then parses (and reports errors on) the whole
    document as before. Raises :class:`NestedTooDeep` as :func:`freeze` does.
    """
    below_top = _max_depth() - 1
    end = len(body)
    while end and body[end - 1] in _SPACE:
        end -= 1
    if not body.startswith(b"{") or end < 2 or body[end - 1] != 0x7D:  # "}"
        return None
    end -= 1
    old: tuple[Member, ...] = ()
    old_body = b""
    old_view = memoryview(old_body)
    if previous is not None and previous._members is not None:
        found_body = previous.files.get(config_name)
        if found_body is not None:
            old, old_body = previous._members, found_body
            old_view = memoryview(old_body)
    by_hint: dict[bytes, int] | None = None

    def same(j: int, at: int) -> int:
        """The end of member ``j`` of ``previous`` if its bytes are at ``at``, else -1."""
        start, stop = old[j][0], old[j][1]
        after = at + stop - start
        if after > end or not body.startswith(old_view[start:stop], at):
            return -1
        while after < end and body[after] in _SPACE:
            after += 1
        return after if after == end or body[after] == 0x2C else -1  # ","

    config: dict[str, Any] = {}
    members: list[Member] = []
    pos = 1
    while True:
        stop = -1
        if old:
            n = len(members)
            if n < len(old):
                j, stop = n, same(n, pos)
            if stop < 0:
                if by_hint is None:
                    by_hint = {}
                    for k, (s, e, _, _) in enumerate(old):
                        by_hint.setdefault(_key_text(old_body, s, e), k)
                j = by_hint.get(_key_text(body, pos, end), -1)
                if j >= 0:
                    stop = same(j, pos)
        if stop >= 0:
            key, frozen = old[j][2], old[j][3]
        else:
            stop = body.find(_SEPARATOR, pos, end)
            if stop < 0:
                stop = end
            try:
                parsed = parse(b"{" + body[pos:stop] + b"}")
            except (ValueError, RecursionError):
                return None
            if type(parsed) is not dict or len(parsed) != 1:
                return None
            key, value = next(iter(parsed.items()))
            # A member's value is level 2 of the config.
            frozen = freeze(value, below_top) if type(value) in _CONTAINERS else value
        if key in config:
            return None
        config[key] = frozen
        trimmed = stop  # without the whitespace before "," or "}": a last member moved
        while trimmed > pos and body[trimmed - 1] in _SPACE:  # up matches again
            trimmed -= 1
        members.append((pos, trimmed, key, frozen))
        if stop == end:
            return MappingProxyType(config), tuple(members)
        pos = stop + 1


def _key_text(body: bytes, start: int, end: int) -> bytes:
    """The bytes of a member up to its key's closing ``":``, within its first bytes: a
    hint to find a member that moved (a match is then compared byte for byte)."""
    found = body.find(b'":', start, min(end, start + _HINT))
    return body[start:found] if found >= 0 else b""


def thaw(value: Any) -> Any:
    """A plain, mutable copy of a frozen value (dicts and lists), e.g. for serializing."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


_FIELDS = ("config", "manifest", "manifest_bytes", "signature", "files", "key_id", "source",
           "_members", "_memo")


class Snapshot(Record):
    """One accepted config: its frozen tree, the verified manifest and where it came from.

    ``files`` holds the exact verified bytes of every file the manifest lists, so the
    snapshot can be persisted or republished without reading the artifact again.
    Immutable; two snapshots are equal only if they are the same object.
    """

    __slots__ = _FIELDS

    config: Mapping[str, Any]
    manifest: Mapping[str, Any]
    manifest_bytes: bytes
    signature: bytes
    files: Mapping[str, bytes]
    key_id: str
    source: str
    _members: tuple[Member, ...] | None
    _memo: dict[str | tuple[str, ...], Any]

    def __init__(self, config: Mapping[str, Any], manifest: Mapping[str, Any],
                 manifest_bytes: bytes, signature: bytes, files: Mapping[str, bytes],
                 key_id: str, source: str = "artifact",
                 _members: tuple[Member, ...] | None = None,
                 _memo: dict[str | tuple[str, ...], Any] | None = None) -> None:
        values = (config, manifest, manifest_bytes, signature, files, key_id, source,
                  _members, {} if _memo is None else _memo)
        self._set_fields(values)

    def with_source(self, source: str) -> Snapshot:
        """The same snapshot (tree, files, memo) named as coming from ``source``."""
        return Snapshot(self.config, self.manifest, self.manifest_bytes, self.signature,
                        self.files, self.key_id, source, self._members, self._memo)

    # Equal only to itself: comparing two configs field by field is not what == asks.
    __eq__ = object.__eq__
    __hash__ = object.__hash__

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
