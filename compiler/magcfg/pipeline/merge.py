"""Stage 2, merge: deep-merge an environment's layers, with provenance.

Rules (docs/layers.md):

* maps merge key by key; scalars and lists replace (a list whose schema names
  ``x-magcfg-merge-key`` merges item by item on that key);
* ``!unset`` removes a key set below (``- !unset {name: x}`` removes item ``x`` of a
  keyed list); ``!replace`` replaces a value without merging,
  and is the only way to change a value's kind (map, list, scalar);
* within one layer, two files may not set the same leaf;
* an override equal to the value below is a warning (one source of truth per value).

Parsed layer trees are never mutated (they are shared with the parse cache): a merge
copies only the maps along the paths an override touches. Provenance is not stored per
leaf during the merge: ``LayerStack.provenance`` recovers it on demand (file and layer
from the parsed trees, line from the file text), which keeps large builds fast.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

from ..errors import Diagnostic, printable
from ..keyglob import format_keypath
from ..syntax.locate import locate
from ..syntax.strict_yaml import REPLACE_TAG, UNSET, is_unset_item
from .load import ParsedFile

if TYPE_CHECKING:
    from ..errors import Severity


class Source(Protocol):
    """Where layer files come from: the working tree, or a git commit (diff --against)."""

    def read(self, path: str) -> bytes: ...


@runtime_checkable
class HashingSource(Source, Protocol):
    """A source that can also hash a file without holding its bytes (the working tree:
    ``FileSource``); the compiler then reads a large schema only when it needs it."""

    def sha256(self, path: str) -> tuple[str, int]:
        """The hex SHA-256 and size of what ``read(path)`` returns."""
        ...


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()
"""A key no layer sets (distinct from ``None``, which is a value)."""


class Layer(NamedTuple):
    """One layer of one environment: its files, in merge order."""

    name: str
    directory: str
    files: tuple[ParsedFile, ...]


@dataclass(frozen=True)
class Provenance:
    """Where a value was set: file, line (1-based) and layer. ``value`` is what that file
    says there (``UNSET`` for ``!unset``)."""

    file: str
    line: int | None
    layer: str
    value: Any

    def where(self, name: Callable[[str], str]) -> str:
        """``file:line`` for people, the file named by ``name`` (``project.FromTop.name``,
        or ``str`` for its name in the project), a control character in it escaped."""
        file = printable(name(self.file))
        return file if self.line is None else f"{file}:{self.line}"


class _Finding(NamedTuple):
    severity: Severity
    file: str
    keypath: tuple[str, ...]
    message: str
    code: str


MergeKeyLookup = Callable[[tuple[str, ...]], str | None]


class LayerStack:
    """The ordered layers of one environment, lowest first."""

    def __init__(self, env: str, layers: Iterable[Layer], source: Source,
                 merge_key: MergeKeyLookup | None = None) -> None:
        self.env = env
        self.layers = tuple(layers)
        self.source = source
        self._merge_key = merge_key or (lambda _path: None)
        self._by_key: dict[str, list[tuple[Layer, ParsedFile]]] | None = None

    def _index(self) -> dict[str, list[tuple[Layer, ParsedFile]]]:
        """top-level key -> (layer, file) that set it, in merge order (built once)."""
        if self._by_key is None:
            by_key: dict[str, list[tuple[Layer, ParsedFile]]] = {}
            for layer in self.layers:
                for f in layer.files:
                    for key in f.keys:
                        by_key.setdefault(key, []).append((layer, f))
            self._by_key = by_key
        return self._by_key

    def files_of(self, key: str) -> list[ParsedFile]:
        """The files that set the top-level ``key``, in merge order."""
        return [f for _, f in self._index().get(key, [])]

    # -- merging -------------------------------------------------------------------------

    def top_keys(self) -> list[str]:
        return sorted(self._index())

    def contributors(self, key: str) -> list[ParsedFile]:
        """Files that set anything under the top-level ``key``, in merge order."""
        return [f for _, f in self._index().get(key, ())]

    def merge(self) -> tuple[dict[str, Any], list[Diagnostic]]:
        """The merged document and the merge's diagnostics (errors and warnings)."""
        out: dict[str, Any] = {}
        diagnostics: list[Diagnostic] = []
        for key in self.top_keys():
            value, diags = self.merge_top(key)
            diagnostics.extend(diags)
            if value is not ABSENT:
                out[key] = value
        return out, diagnostics

    def merge_top(self, key: str) -> tuple[Any, list[Diagnostic]]:
        """Merge only the top-level ``key`` (the unit of the build's fragment cache)."""
        ctx = _Context(self._merge_key)
        value: Any = ABSENT
        entries = self._index().get(key, [])
        for layer in self.layers:
            parts = [f for owner, f in entries if owner is layer]
            if not parts:
                continue
            if ctx.layer is not None:
                ctx.below.append(ctx.layer)
            ctx.layer = layer
            tree = parts[0].data[key]
            ctx.file = parts[0].path
            for other in parts[1:]:
                tree = _union(tree, other.data[key], (key,), ctx, layer)
            ctx.markers = any(p.has_markers for p in parts)
            value = _overlay(value, tree, (key,), ctx)
        return value, self._locate(ctx.findings)

    def value_at(self, keypath: tuple[str, ...]) -> Any:
        """The merged value at ``keypath`` (list items by index), or ``ABSENT``; merges
        only its top-level key."""
        value, _ = self.merge_top(keypath[0])
        for part in keypath[1:]:
            if isinstance(value, dict) and part in value:
                value = value[part]
            elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            else:
                return ABSENT
        return value

    def _locate(self, findings: list[_Finding]) -> list[Diagnostic]:
        if not findings:  # most keys: no table of the stack's hundreds of files
            return []
        by_path = {f.path: f for f in self.files()}
        # Each file read once, however many findings it has: the same bytes object also
        # keeps ParsedFile.line's index of its lines (thousands of redundant overrides in
        # one file read and compared it once per finding).
        raws: dict[str, bytes | None] = {}
        out = []
        for f in findings:
            if f.file not in raws:
                try:
                    raws[f.file] = self.source.read(f.file)
                except OSError:
                    raws[f.file] = None
            raw = raws[f.file]
            parsed = by_path.get(f.file)
            line = (None if raw is None else parsed.line(raw, f.keypath) if parsed
                    else locate(f.file, raw, f.keypath))
            out.append(Diagnostic(f.file, line, format_keypath(f.keypath), f.message, f.severity,
                                  f.code))
        return out

    # -- provenance ----------------------------------------------------------------------

    def provenance(self, keypath: tuple[str, ...]) -> list[Provenance]:
        """Every file that set ``keypath`` (or replaced/unset an ancestor of it), lowest
        layer first. The last entry is the one whose value is in effect, unless it is an
        ``!unset``."""
        chain: list[Provenance] = []
        # Only the files that set the top-level key are read (and parsed, when only
        # their keys were cached): one key's provenance costs its files, not the repo's.
        setters = (self._index().get(keypath[0], []) if keypath else
                   [(layer, f) for layer in self.layers for f in layer.files])
        for layer, f in setters:
            found = _lookup(f.data, keypath)
            if found is None:
                continue
            depth, value = found
            line = f.line(self.source.read(f.path), keypath[:depth])
            chain.append(Provenance(f.path, line, layer.name, value))
        return chain

    def files(self) -> list[ParsedFile]:
        return [f for layer in self.layers for f in layer.files]


def _lookup(data: Any, keypath: tuple[str, ...]) -> tuple[int, Any] | None:
    """(depth, value) where ``data`` sets ``keypath``; an ``!unset``/``!replace`` on an
    ancestor counts as setting it (depth is then the ancestor's)."""
    node = data
    for depth, part in enumerate(keypath):
        if type(node) is tuple:
            if node == UNSET:
                return depth, UNSET
            node = node[1]
        if type(node) is dict:
            if part not in node:
                return None
            node = node[part]
        elif type(node) is list and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    if type(node) is tuple and node != UNSET:
        node = node[1]
    return len(keypath), node


class _Context:
    def __init__(self, merge_key: MergeKeyLookup) -> None:
        self.merge_key = merge_key
        self.findings: list[_Finding] = []
        self.layer: Layer | None = None
        self.below: list[Layer] = []  # the layers merged before ``layer``, lowest first
        self.file = ""
        self.markers = False

    def file_for(self, keypath: tuple[str, ...]) -> str:
        """The file of the current layer that sets ``keypath`` (a layer may have several)."""
        assert self.layer is not None
        for f in self.layer.files:
            if _lookup(f.data, keypath) is not None:
                return f.path
        return self.file

    def add(self, severity: Severity, keypath: tuple[str, ...], message: str, code: str) -> None:
        self.findings.append(_Finding(severity, self.file_for(keypath), keypath, message, code))

    def add_below(self, severity: Severity, keypath: tuple[str, ...], message: str,
                  code: str) -> None:
        """A finding about a value a lower layer set: at the highest file below that sets
        ``keypath`` (the current file if none does, as list items may have moved)."""
        owner = next((f.path for layer in reversed(self.below) for f in layer.files
                      if _lookup(f.data, keypath) is not None), self.file)
        self.findings.append(_Finding(severity, owner, keypath, message, code))


def _kind(value: Any) -> str:
    t = type(value)
    return "a map" if t is dict else "a list" if t is list else "a scalar"


def _union(a: Any, b: Any, path: tuple[str, ...], ctx: _Context, layer: Layer) -> Any:
    """Two files of one layer: maps combine; any leaf set twice is an error."""
    if type(a) is dict and type(b) is dict:
        out = dict(a)
        for k, v in b.items():
            out[k] = _union(out[k], v, (*path, k), ctx, layer) if k in out else v
        return out
    owners = [f.path for f in layer.files if _lookup(f.data, path) is not None]
    ctx.findings.append(_Finding(
        "error", owners[-1] if owners else ctx.file, path,
        f"set twice in layer {layer.name!r} ({', '.join(owners)}): one file per value",
        "conflict"))
    return a


def _overlay(below: Any, above: Any, path: tuple[str, ...], ctx: _Context) -> Any:
    if type(above) is tuple:
        if above == UNSET:
            if below is ABSENT:
                ctx.add("warning", path, "!unset of a key that no lower layer sets", "unset-nothing")
            return ABSENT
        return _strip(above[1], path, ctx)
    if below is ABSENT:
        return _strip(above, path, ctx) if ctx.markers else above
    ta, tb = type(above), type(below)
    if ta is dict and tb is dict:
        out = dict(below)
        for k, v in above.items():
            merged = _overlay(below.get(k, ABSENT), v, (*path, k), ctx)
            if merged is ABSENT:
                out.pop(k, None)
            else:
                out[k] = merged
        return out
    if (ta is dict) != (tb is dict) or (ta is list) != (tb is list):
        ctx.add("error", path,
                f"type change: {_kind(below)} below is overridden by {_kind(above)}; "
                f"mark the override with {REPLACE_TAG} if that is intended", "type-change")
        return below
    if ta is list:
        key = ctx.merge_key(_pattern(path))
        if key is not None:
            return _merge_keyed_list(below, above, key, path, ctx)
    if ta is tb and above == below:
        ctx.add("warning", path, "override repeats the value set below: remove it "
                "(one source of truth per value)", "redundant")
    return _strip(above, path, ctx) if ctx.markers else above


_SCALARS = (str, int, float, bool, type(None))


def _not_a_name(key: str, value: Any) -> str | None:
    """Why ``value`` cannot be the merge-key value that names a list item (None if it
    can): the merge looks items up by it, and a list or a map is no name."""
    if type(value) in _SCALARS:
        return None
    return (f"the merge key {key!r} (x-magcfg-merge-key) of a list item is {_kind(value)}; "
            "it names the item, so it must be a scalar (a string or a number)")


def _merge_keyed_list(below: list[Any], above: list[Any], key: str, path: tuple[str, ...],
                      ctx: _Context) -> list[Any]:
    out = list(below)
    index: dict[Any, int] = {}
    for i, item in enumerate(out):
        if type(item) is dict:
            problem = _not_a_name(key, item.get(key))
            if problem is None:
                index[item.get(key)] = i
            else:
                ctx.add_below("error", (*path, str(i), key), problem, "merge-key")
    for j, item in enumerate(above):
        if type(item) is dict and key in item:
            problem = _not_a_name(key, item[key])
            if problem is not None:
                ctx.add("error", (*path, str(j), key), problem, "merge-key")
                continue
        if is_unset_item(item):
            name = _unset_item_name(item, key, (*path, str(j)), ctx)
            if name is ABSENT:
                continue
            if index.get(name) is None or out[index[name]] is ABSENT:
                ctx.add("warning", (*path, str(j)), f"!unset of list item {key}={name!r} that "
                        "no lower layer has", "unset-nothing")
            else:
                out[index[name]] = ABSENT
            continue
        if type(item) is dict and item.get(key) in index and out[index[item[key]]] is not ABSENT:
            i = index[item[key]]
            # The merge key names the item (it must be repeated for the merge to find it):
            # only the other fields override, so repeating it is not a redundant override.
            fields = {k: v for k, v in item.items() if k != key}
            merged = _overlay(out[i], fields, (*path, str(i)), ctx)
            out[i] = merged
        else:
            out.append(_strip(item, (*path, str(j)), ctx) if ctx.markers else item)
    return [item for item in out if item is not ABSENT]


def _unset_item_name(item: tuple[str, dict[str, Any]], key: str, path: tuple[str, ...],
                     ctx: _Context) -> Any:
    """The merge-key value a ``- !unset {KEY: VALUE}`` item deletes; ABSENT (reported)
    when it names another key."""
    written = next(iter(item[1]), None)
    if written != key:
        ctx.add("error", path, f"!unset item names {written!r}, but this list merges on "
                f"{key!r} (x-magcfg-merge-key): write `- !unset {{{key}: ITEM}}`",
                "unset-item")
        return ABSENT
    problem = _not_a_name(key, item[1][key])
    if problem is not None:
        ctx.add("error", path, problem, "unset-item")
        return ABSENT
    return item[1][key]


def _strip(value: Any, path: tuple[str, ...], ctx: _Context) -> Any:
    """Resolve markers inside a value that has nothing below it."""
    t = type(value)
    if t is tuple:
        if value == UNSET:
            ctx.add("warning", path, "!unset of a key that no lower layer sets", "unset-nothing")
            return ABSENT
        return _strip(value[1], path, ctx)
    if t is dict:
        out = {}
        for k, v in value.items():
            s = _strip(v, (*path, k), ctx)
            if s is not ABSENT:
                out[k] = s
        return out
    if t is list:
        return _strip_list(value, path, ctx)
    return value


def _strip_list(value: list[Any], path: tuple[str, ...], ctx: _Context) -> list[Any]:
    """A list with nothing below it: an ``- !unset {KEY: VALUE}`` item deletes nothing
    (a warning in a keyed list, an error in any other: only keyed lists have items to
    name)."""
    out = []
    key = ctx.merge_key(_pattern(path))
    for i, v in enumerate(value):
        if not is_unset_item(v):
            out.append(_strip(v, (*path, str(i)), ctx))
        elif key is None:
            ctx.add("error", (*path, str(i)), "!unset item in a list without "
                    "x-magcfg-merge-key: only keyed lists delete items by name; write the "
                    "list without the item", "unset-item")
        elif _unset_item_name(v, key, (*path, str(i)), ctx) is not ABSENT:
            ctx.add("warning", (*path, str(i)), f"!unset of list item {key}="
                    f"{v[1][key]!r} that no lower layer has", "unset-nothing")
    return out


def _pattern(path: tuple[str, ...]) -> tuple[str, ...]:
    """A key path as the schema index reads it (list indices as ``*``)."""
    return tuple("*" if p.isdigit() else p for p in path)
