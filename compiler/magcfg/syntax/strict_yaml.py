"""Stage 1, load: strict YAML loading of layer files.

Two parsers, one meaning:

* the fast path is yaml-rs (Rust, YAML 1.2): about 10x faster than PyYAML's C loader on
  large repos (see docs/performance.md);
* the reference path is PyYAML's C parser with our own YAML 1.2 core resolver and
  constructor. It knows node styles and marks, so it decides every strictness rule and
  produces every error with file, line and key. It also serves ``locate`` (line numbers
  for provenance are recovered lazily, only for errors, warnings and ``explain``).

A file takes the fast path only when a cheap scan of its text shows nothing the fast
parser could read differently (tags, tabs, merge keys, YAML 1.1 look-alikes, deep
indentation); anything else, and any fast-path failure, goes through the reference path.
Both give the same data for the same text (tests/syntax/test_strict_yaml.py checks it on generated
corpora).

Data model: mappings are ``dict[str, Any]``, sequences ``list``, scalars ``str | int |
float | bool | None``. The two layer markers are tuples, which YAML never produces:
``UNSET`` (``!unset``: remove the key set below) and ``("!replace", value)``
(``!replace``: replace instead of merging, allowing a type change).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from ..errors import Diagnostic
from ..keyglob import format_keypath

MAX_DEPTH = 64
"""Deepest nesting of mappings and sequences a layer may use."""
ALIAS_BUDGET = 10_000
"""Nodes that alias expansion may add per file (the billion-laughs guard)."""

UNSET: tuple[str] = ("!unset",)
REPLACE_TAG = "!replace"

# Plain scalars that YAML 1.1 (PyYAML, many tools) and YAML 1.2 (magcfg, yaml-rs, Go's
# yaml.v3) read differently: booleans-by-word and sexagesimal numbers. We refuse them
# rather than pick a meaning silently. Leading-zero integers are refused in
# _construct_scalar.
_AMBIGUOUS_PLAIN = re.compile(
    r"(?:y|Y|yes|Yes|YES|n|N|no|No|NO|on|On|ON|off|Off|OFF"
    r"|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?)"
)
# What the fast path cannot judge from the parsed data alone: tags and merge keys
# (yaml-rs drops tags), tabs (to word the error), and leading-zero numbers (yaml-rs
# reads 0755 as 755). Cheap substring checks first; one bytes regex for the numbers.
# YAML 1.1 words, sexagesimals, .nan/.inf, key types and depth are checked on the
# parsed data (_fast_tree_ok). Anything suspicious goes to the reference path.
_SUSPECT_LITERALS = (b"\t", b"!", b"<<")
_LEADING_ZERO_NUMBER = re.compile(rb"[ \[,{][-+]?0[0-9_]")
_YAML11_WORDS = frozenset(
    ["y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF"])
_JSON_SCALARS = (str, int, float, bool, type(None))


class LoadFailed(Exception):
    """Raised inside this module; carries the diagnostics of one file."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = diagnostics
        super().__init__("; ".join(d.format() for d in diagnostics))


def decode_text(path: str, raw: bytes) -> str:
    """UTF-8 decode with a located error; a leading BOM is dropped."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise LoadFailed(
            [Diagnostic(path, line, None, f"invalid UTF-8 (byte 0x{raw[exc.start]:02x} at column {col})",
                        code="utf8")]
        ) from None
    return text[1:] if text.startswith("\ufeff") else text


def parse_layer(path: str, raw: bytes) -> tuple[dict[str, Any], bool]:
    """Parse one layer file strictly: ``(data, has_markers)``.

    Raises ``LoadFailed`` with located diagnostics."""
    text = decode_text(path, raw)
    if not any(s in raw for s in _SUSPECT_LITERALS) and not _LEADING_ZERO_NUMBER.search(raw):
        data = _parse_fast(text)
        if data is not None:
            return data, False
    return parse_reference(path, text)


def _parse_fast(text: str) -> dict[str, Any] | None:
    """yaml-rs; ``None`` means "ask the reference path" (which also words any error)."""
    import yaml_rs

    try:
        data = yaml_rs.loads(
            text,
            parse_datetime=False,
            alias_limits=_alias_limits(),
            duplicate_key_policy=yaml_rs.DuplicateKeyPolicy.Error,
        )
    except Exception:
        return None
    if data is None:
        return {}
    if not isinstance(data, dict) or not _fast_tree_ok(data, 1):
        return None
    return data


@lru_cache(maxsize=1)
def _alias_limits() -> Any:
    import yaml_rs

    return yaml_rs.AliasLimits(max_total_replayed_events=ALIAS_BUDGET)


def _fast_tree_ok(node: dict[str, Any] | list[Any], depth: int) -> bool:
    """What the text checks cannot see: key types, depth, non-finite floats, and plain
    YAML 1.1 look-alikes (a quoted "no" also lands here and is then accepted by the
    reference path, which knows the quoting)."""
    if depth > MAX_DEPTH:
        return False
    values: Any = node.values() if type(node) is dict else node
    if type(node) is dict:
        for k in node:
            if type(k) is not str:
                return False
    v: Any
    for v in values:
        t = type(v)
        if t is str:
            if v in _YAML11_WORDS or (":" in v and _AMBIGUOUS_PLAIN.fullmatch(v)):
                return False
        elif t is dict or t is list:
            if not _fast_tree_ok(v, depth + 1):
                return False
        elif t is float and not math.isfinite(v):
            return False
    return True


# --------------------------------------------------------------------------- reference


def _reference_loader() -> type:
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class ReferenceLoader(base):  # type: ignore[valid-type,misc]
        """PyYAML's parser with a YAML 1.2 core schema resolver."""

    ReferenceLoader.yaml_implicit_resolvers = {}
    resolvers = [
        ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
        ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
        ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$",
         list("-+0123456789")),
        ("tag:yaml.org,2002:float",
         r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
         r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
         list("-+.0123456789")),
    ]
    for tag, pattern, first in resolvers:
        ReferenceLoader.add_implicit_resolver(tag, re.compile(pattern), first)
    return ReferenceLoader


_LOADER: type | None = None


def compose(path: str, text: str) -> Any:
    """Compose ``text`` into a PyYAML node tree (marks kept). Raises ``LoadFailed``."""
    import yaml

    global _LOADER
    if _LOADER is None:
        _LOADER = _reference_loader()
    _check_depth(path, text)
    loader = _LOADER(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or "syntax error"
        if exc.context:
            problem = f"{problem} ({exc.context})"
        raise LoadFailed([Diagnostic(path, line, None, f"YAML syntax error: {problem}",
                                     code="syntax")]) from None
    except yaml.YAMLError as exc:
        raise LoadFailed([Diagnostic(path, None, None, f"YAML error: {exc}",
                                     code="syntax")]) from None
    finally:
        loader.dispose()
    return node


def _check_depth(path: str, text: str) -> None:
    """Walk parser events iteratively: PyYAML's composer recurses and would crash on
    absurd nesting before it could say where."""
    import yaml

    global _LOADER
    assert _LOADER is not None
    depth = 0
    tab_line = _tab_indented_line(text)
    if tab_line is not None:
        raise LoadFailed([Diagnostic(path, tab_line, None,
                                     "tab character in indentation (YAML indents with spaces)",
                                     code="tab")])
    loader = _LOADER(text)
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    mark: Any = event.start_mark
                    raise LoadFailed([Diagnostic(
                        path, mark.line + 1, None,
                        f"nesting deeper than {MAX_DEPTH} levels", code="depth")])
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or "syntax error"
        if exc.context:
            problem = f"{problem} ({exc.context})"
        raise LoadFailed([Diagnostic(path, line, None, f"YAML syntax error: {problem}",
                                     code="syntax")]) from None
    finally:
        loader.dispose()


def _tab_indented_line(text: str) -> int | None:
    m = re.search(r"^[ ]*\t", text, re.MULTILINE)
    return None if m is None else text.count("\n", 0, m.start()) + 1


def parse_reference(path: str, text: str) -> tuple[dict[str, Any], bool]:
    """The reference parser: every strictness rule, every error located."""
    node = compose(path, text)
    if node is None:
        return {}, False
    builder = _Builder(path)
    if node.tag == "tag:yaml.org,2002:null":
        return {}, False
    if type(node).__name__ != "MappingNode":
        raise LoadFailed([Diagnostic(path, node.start_mark.line + 1, None,
                                     "the top level of a layer file must be a mapping",
                                     code="toplevel")])
    data = builder.build(node, (), 1)
    if builder.errors:
        raise LoadFailed(builder.errors)
    assert isinstance(data, dict)
    return data, builder.markers


class _Builder:
    """Constructs plain data from a node tree, collecting every error of the file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.errors: list[Diagnostic] = []
        self.expanded = 0
        self.seen: set[int] = set()
        self.markers = False

    def error(self, node: Any, keypath: tuple[str, ...], message: str, code: str) -> None:
        key = format_keypath(keypath) or None
        self.errors.append(Diagnostic(self.path, node.start_mark.line + 1, key, message,
                                      code=code))

    def build(self, node: Any, keypath: tuple[str, ...], depth: int) -> Any:
        import yaml

        if id(node) in self.seen:
            # An alias: count what its expansion adds (billion-laughs guard).
            self.expanded += _node_count(node)
            if self.expanded > ALIAS_BUDGET:
                raise LoadFailed([Diagnostic(
                    self.path, node.start_mark.line + 1, format_keypath(keypath) or None,
                    f"aliases expand to more than {ALIAS_BUDGET} nodes (alias bomb?)",
                    code="alias")])
        self.seen.add(id(node))
        tag = node.tag
        if tag in ("!unset", REPLACE_TAG):
            self.markers = True
        if tag == "!unset":
            if not (isinstance(node, yaml.ScalarNode) and node.value == ""):
                self.error(node, keypath, "!unset takes no value", "marker")
            return UNSET
        if tag == REPLACE_TAG:
            inner = _retag(node)
            return (REPLACE_TAG, self.build(inner, keypath, depth))
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, keypath, depth)
        if isinstance(node, yaml.SequenceNode):
            if tag not in ("tag:yaml.org,2002:seq",):
                self.error(node, keypath, f"unsupported tag {tag}", "tag")
            return [self.build(n, (*keypath, str(i)), depth + 1)
                    for i, n in enumerate(node.value)]
        return self._scalar(node, keypath)

    def _mapping(self, node: Any, keypath: tuple[str, ...], depth: int) -> dict[str, Any]:
        if node.tag != "tag:yaml.org,2002:map":
            self.error(node, keypath, f"unsupported tag {node.tag}", "tag")
        out: dict[str, Any] = {}
        for knode, vnode in node.value:
            if knode.tag == "tag:yaml.org,2002:merge" or (
                getattr(knode, "value", None) == "<<" and not knode.style
            ):
                self.error(knode, keypath, "merge keys (<<) are not supported: "
                           "write the values, or put shared values in a lower layer", "merge-key")
                continue
            if knode.tag != "tag:yaml.org,2002:str" or not isinstance(knode.value, str):
                shown = getattr(knode, "value", "?")
                if not isinstance(shown, str):
                    shown = "a collection"
                self.error(knode, keypath, f"keys must be strings; quote {shown!r}", "key-type")
                continue
            key = knode.value
            if key in out:
                self.error(knode, (*keypath, key), f"duplicate key {key!r}", "duplicate-key")
                continue
            out[key] = self.build(vnode, (*keypath, key), depth + 1)
        return out

    def _scalar(self, node: Any, keypath: tuple[str, ...]) -> Any:
        tag, value, plain = node.tag, node.value, not node.style
        if tag == "tag:yaml.org,2002:str":
            if plain and _AMBIGUOUS_PLAIN.fullmatch(value):
                fix = ("quote it" if value[0].isdigit() or value[0] in "+-"
                       else "write true/false, or quote it if it is text")
                self.error(node, keypath,
                           f"{value!r} means different things in YAML 1.1 and 1.2: {fix}",
                           "ambiguous")
            return value
        if tag == "tag:yaml.org,2002:null":
            return None
        if tag == "tag:yaml.org,2002:bool":
            return value in ("true", "True", "TRUE")
        if tag == "tag:yaml.org,2002:int":
            digits = value.lstrip("+-")
            if len(digits) > 1 and digits[0] == "0" and digits[1].isdigit():
                self.error(node, keypath,
                           f"{value!r} is octal in YAML 1.1 and decimal in 1.2: "
                           "write 0o... for octal, drop the leading zero, or quote it",
                           "ambiguous")
                return 0
            if digits.startswith("0o"):
                return int(value.replace("0o", ""), 8)
            if digits.startswith("0x"):
                return int(value.replace("0x", ""), 16)
            return int(value)
        if tag == "tag:yaml.org,2002:float":
            number = float(value.replace(".inf", "inf").replace(".Inf", "inf")
                           .replace(".INF", "inf").replace(".nan", "nan")
                           .replace(".NaN", "nan").replace(".NAN", "nan"))
            if not math.isfinite(number):
                self.error(node, keypath, f"{value} is not representable in JSON", "float")
                return 0.0
            return number
        self.error(node, keypath, f"unsupported tag {tag}", "tag")
        return None


def _retag(node: Any) -> Any:
    """The node under ``!replace``, with the tag it would have had without it."""
    import yaml

    if isinstance(node, yaml.MappingNode):
        return yaml.MappingNode("tag:yaml.org,2002:map", node.value, node.start_mark,
                                node.end_mark, node.flow_style)
    if isinstance(node, yaml.SequenceNode):
        return yaml.SequenceNode("tag:yaml.org,2002:seq", node.value, node.start_mark,
                                 node.end_mark, node.flow_style)
    assert _LOADER is not None
    resolver: Any = _LOADER
    resolved = resolver.resolve(resolver, yaml.ScalarNode, node.value, (True, False))
    return yaml.ScalarNode(resolved, node.value, node.start_mark, node.end_mark, node.style)


def _node_count(node: Any) -> int:
    import yaml

    count, stack = 0, [node]
    while stack:
        n = stack.pop()
        count += 1
        if count > ALIAS_BUDGET:
            break
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                stack.append(k)
                stack.append(v)
        elif isinstance(n, yaml.SequenceNode):
            stack.extend(n.value)
    return count


def iter_leaves(data: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every leaf (scalar, list, or marker) of a layer tree with its key path."""
    if type(data) is dict:
        for k, v in data.items():
            yield from iter_leaves(v, (*prefix, k))
    else:
        yield prefix, data


def is_json_scalar(value: object) -> bool:
    return isinstance(value, _JSON_SCALARS)
