"""Stage 1, load: strict YAML loading of layer files, one meaning for every file.

Two parsers, one meaning, by construction:

* the **reference path** defines what a file means. PyYAML's C parser produces the
  events; our composer keeps what composing would lose (the tag as written), and our
  builder decides every rule with one table for plain scalars (``syntax/scalars.py``:
  YAML 1.2 core where YAML 1.1 agrees, refused where they differ). It words every error
  with file, line and key, and serves ``locate`` (line numbers for provenance are
  recovered lazily, only for errors, warnings and ``explain``);
* the **fast path** (yaml-rs, Rust, about 10x faster, see docs/performance.md) may only
  answer for files inside a canonical subset of YAML, checked on the bytes before it
  parses: printable text without tags, anchors, aliases, block scalars, escapes,
  directives, complex keys, tabs or carriage returns, without a ``...`` line or a ``:``
  at the start of a token or before a flow indicator (where libyaml, a YAML 1.1 parser,
  and yaml-rs disagree), and without a plain scalar in a number-like form other than
  the canonical ones (no ``_``, ``0x``/``0o``/``0b``, leading zero, exponent or signed
  leading dot), nor nesting that could go deeper than MAX_DEPTH (yaml-rs recurses on
  the C stack: 20,000 compact "- " crashed it). On its data, a walk sends to the
  reference path any value the table could refuse (YAML 1.1 words, base-60 look-alikes,
  integers beyond 64 bits, non-finite floats), any non-string key, and too deep nesting.
  Anything else, and any fast-path failure, goes through the reference path.

Inside that subset the two parsers agree: tests/syntax/test_differential.py checks it on
a generated corpus of hostile fragments in CI, and ``benchmarks/fuzz_loader.py`` keeps
looking. Text both refuse outright comes first, on either path: control characters,
the YAML 1.1 line breaks (NEL, LS, PS, which YAML 1.2 reads as text), a byte order mark
after the start, a carriage return without a line feed (so that line numbers count
``\\n`` exactly as YAML counts line breaks), and tabs in indentation.

Data model: mappings are ``dict[str, Any]``, sequences ``list``, scalars ``str | int |
float | bool | None``. The two layer markers are tuples, which YAML never produces:
``UNSET`` (``!unset``: remove the key set below) and ``("!replace", value)``
(``!replace``: replace instead of merging, allowing a type change). Markers stand only
as the value of a key, with one exception: an item of a list, ``- !unset {name: orders}``,
is ``("!unset", {"name": "orders"})`` (``is_unset_item``): in a keyed list (the schema's
``x-magcfg-merge-key``) it deletes the item of that key below. The loader checks its
shape (a map of one key to a scalar); the merge, which knows the schema, checks the key.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

from ..errors import Diagnostic
from ..keyglob import format_keypath
from .scalars import INT_MAX, INT_MIN, SEXAGESIMAL, YAML11_ONLY_WORDS, resolve_plain, resolve_plain_key

MAX_DEPTH = 64
"""Deepest nesting of mappings and sequences a layer may use."""
ALIAS_BUDGET = 10_000
"""Nodes that alias expansion may add per file (the billion-laughs guard)."""

UNSET: tuple[str] = ("!unset",)
UNSET_TAG = "!unset"
REPLACE_TAG = "!replace"
_MARKERS = ("!unset", REPLACE_TAG)

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


def parse_layer(path: str, raw: bytes, document: str = "layer file"
                ) -> tuple[dict[str, Any], bool]:
    """Parse one layer file strictly: ``(data, has_markers)``. ``document`` is what the
    messages call the file (the project file is read by the same rules).

    Raises ``LoadFailed`` with located diagnostics."""
    text = decode_text(path, raw)
    conflict = conflict_marker(path, text)
    if conflict is not None:
        raise conflict
    if fast_path_eligible(raw, text):
        data = _parse_fast(text)
        if data is not None:
            return data, False
    return parse_reference(path, text, document)


# --------------------------------------------------------------------------- text gate

# Characters YAML 1.2 does not allow in a stream (C0 and C1 controls but tab and line
# feed, DEL, surrogates cannot occur in decoded UTF-8, U+FFFE/U+FFFF), the YAML 1.1 line
# breaks NEL/LS/PS (text in 1.2: the two versions split lines differently), and a byte
# order mark anywhere but at the start (decode_text drops that one).
_FORBIDDEN_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]")
_LONE_CR = re.compile("\r(?!\n)")
_TAB_INDENT = re.compile(r"^[ ]*\t", re.MULTILINE)
_LINE_BREAK_NAMES = {"\x85": "NEL, next line", "\u2028": "LS, line separator",
                     "\u2029": "PS, paragraph separator"}
_LINE_BREAK_ESCAPES = {"\x85": "\\N", "\u2028": "\\L", "\u2029": "\\P"}


def _line_col(text: str, index: int) -> tuple[int, int]:
    return text.count("\n", 0, index) + 1, index - (text.rfind("\n", 0, index) + 1) + 1


def _check_text(path: str, text: str) -> None:
    """Refuse, located, what no YAML parser of ours should see."""
    found = _FORBIDDEN_CHARS.search(text)
    if found is None and "\r" in text:
        found = _LONE_CR.search(text)
    if found is not None:
        char = found.group()
        line, col = _line_col(text, found.start())
        code = f"U+{ord(char):04X}"
        if char in _LINE_BREAK_NAMES:
            message = (f"{code} ({_LINE_BREAK_NAMES[char]}, column {col}) is a line break in "
                       f"YAML 1.1 and text in YAML 1.2: remove it, or write "
                       f"{_LINE_BREAK_ESCAPES[char]} in a double-quoted string")
        elif char == "\r":
            message = (f"carriage return without a line feed (column {col}): "
                       "end lines with \\n or \\r\\n")
        elif char == "\ufeff":
            message = f"byte order mark U+FEFF at column {col}: only the first byte of a file may be one"
        else:
            message = (f"control character {code} at column {col} is not allowed in YAML: "
                       f"write it as an escape (\"\\u{ord(char):04x}\") in a double-quoted string")
        raise LoadFailed([Diagnostic(path, line, None, message, code="control-char")])
    tab = _TAB_INDENT.search(text)
    if tab is not None:
        raise LoadFailed([Diagnostic(path, _line_col(text, tab.start())[0], None,
                                     "tab character in indentation (YAML indents with spaces)",
                                     code="tab")])


# --------------------------------------------------------------------------- fast path

# The canonical subset the fast path may answer for, checked on the raw bytes. Outside
# it are the bytes of tags (!), anchors and aliases (& *), block scalars (| >), merge
# keys (<), directives (%), escapes (\), the reserved indicators (@ `), and every
# control byte but the line feed (tabs and carriage returns included). A '?' is common
# in URLs; only one at a token start (a complex key) leaves the subset.
_FAST_BYTES = bytes(b for b in range(256)
                    if b >= 0x80 or b == 0x0A or (0x20 <= b < 0x7F and chr(b) not in "!&*|><%\\@`"))
# A plain scalar in a number-like form that is not canonical: yaml-rs reads 1_000, _1,
# 0b101, 0X1F, -0x1F, 0o17, 0755, 1e3, 1e+3 and +.5 as numbers, where the scalar table
# refuses them or reads text. Canonical numbers (12, -3, 0.5, .5, 1., 0x1F aside) never
# match; a false alarm only costs the reference path. A number token starts after a
# space, a line feed, a flow indicator or ':' ("a":1); each pattern begins with a literal
# (the regex engine then skips to it) and looks back for the token start.
_NUMBER_SUSPECTS = (
    # a leading zero or a base prefix at a token start, signed or not (0755, 0x1F, -0b1)
    re.compile(rb"0(?:(?<=[ \n\[{,:]0)|(?<=[ \n\[{,:][-+]0))[0-9_xXoObB]"),
    # a signed leading dot (+.5, -.inf)
    re.compile(rb"\.(?<=[ \n\[{,:][-+]\.)"),
)
# Literals whose token is suspect when it is number-like from its start: an exponent
# ending a token (1e3, 1.5e+3) and an underscore after a digit, a dot, a sign or a token
# start (1_000, _1, 1._5, -_1; after 0x/0o/0b the patterns above catch the number first).
# The token start is checked in Python, as the mantissa has no fixed width: hex digests
# like 3e5 inside a word and names like SVC_000_TOKEN are frequent.
_IN_NUMBER_SUSPECTS = (
    *(re.compile(e + rb"(?<=[0-9.]" + e + rb")[-+]?[0-9_]+(?![^ \n,\]}#])")
      for e in (b"e", b"E")),
    re.compile(rb"_(?<=[0-9.+\- \n\[{,:]_)"),
)
_NUMBER_CHARS = frozenset(b"0123456789._+-")
_TOKEN_START = frozenset(b" \n[{,:")
_FIRST_TOKEN_SUSPECT = re.compile(rb"[-+]?(?:[._]|0[0-9_xXoObB]|[0-9][0-9._]*[eE_])")
# Where YAML 1.1 (libyaml) and 1.2 (yaml-rs) parse differently: in flow context libyaml
# reads a ':' at the start of a token always as the value indicator and refuses a ':'
# followed by a flow indicator ('{a:}', '[:x]', '{:: 1}'). A ':' at a token start in
# block context only costs the reference path.
_COLON_SUSPECT = re.compile(rb":(?:(?<=[ \n\[{,]:)|[,\[\]{}])")
_QUESTION_SUSPECT = re.compile(rb"\?(?<=[ \n\[{,:]\?)")
# Flow collections over several lines: the two parsers differ on multi-line keys and on
# the indentation of continuation lines. Seen through brackets, quotes, '#' and line
# breaks only (the rest deleted), a file whose flow collections each close on their line
# reduces to no bracket once empty quote pairs and bracket pairs are taken out: a bracket
# inside a quote or a comment keeps the quote or '#' between itself and the others.
_NOT_FLOW_SHAPE = bytes(b for b in range(256) if b not in b"[]{}'\"#\n")
_FAST_SUSPECT_WORDS = YAML11_ONLY_WORDS


def fast_path_eligible(raw: bytes, text: str) -> bool:
    """Whether ``raw`` is inside the canonical subset the fast path may answer for."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]  # the byte order mark decode_text drops: the text starts after it
    if (raw.translate(None, _FAST_BYTES)
            or (not raw.isascii() and _FORBIDDEN_CHARS.search(text) is not None)
            # a document end marker without a document: libyaml refuses, yaml-rs reads {}
            or raw.startswith((b":", b"...", b"?")) or b"\n..." in raw
            or _COLON_SUSPECT.search(raw) is not None
            or _QUESTION_SUSPECT.search(raw) is not None
            or _FIRST_TOKEN_SUSPECT.match(raw) is not None):
        return False
    if (b"[" in raw or b"{" in raw) and _flow_spans_lines(raw):
        return False
    if _may_nest_too_deep(raw):
        return False
    for pattern in _NUMBER_SUSPECTS:
        if pattern.search(raw) is not None:
            return False
    for literal in _IN_NUMBER_SUSPECTS:
        for found in literal.finditer(raw):
            i = found.start() - 1
            while i >= 0 and raw[i] in _NUMBER_CHARS:
                i -= 1
            if i < 0 or raw[i] in _TOKEN_START:
                return False
    return True


def _flow_spans_lines(raw: bytes) -> bool:
    """Whether a flow collection may span lines (see _NOT_FLOW_SHAPE); false alarms, such
    as an unmatched bracket in a plain scalar, only cost the reference path."""
    shape = raw.translate(None, _NOT_FLOW_SHAPE).replace(b'""', b"").replace(b"''", b"")
    for _ in range(MAX_DEPTH + 1):
        reduced = shape.replace(b"[]", b"").replace(b"{}", b"")
        if reduced == shape:
            break
        shape = reduced
    return any(bracket in shape for bracket in (b"[", b"]", b"{", b"}"))


# Where a block node can start on a line: after the indentation and any compact
# sequence indicators ("- - - x").
_BLOCK_START = re.compile(rb"^[ ]*(?:-[ ]+)*", re.MULTILINE)
_INDICATOR = re.compile(rb"-[ ]+")
_WIDE = 16
_WIDE_START = re.compile(rb"\n[ -]{%d}" % _WIDE)
_NOT_OPENING = bytes(b for b in range(256) if b not in b"[{\n")


def _may_nest_too_deep(raw: bytes) -> bool:
    """Whether ``raw`` could nest deeper than MAX_DEPTH. yaml-rs recurses natively and
    overflows the C stack (a segfault) long before _fast_tree_ok could count, so this
    bound comes from the bytes. Block nodes nest only at a greater column, but for a
    sequence that is a key's value at the key's column: two levels per column on the
    chain of open ones. Flow collections stay on one line here (_flow_spans_lines), and
    a line cannot nest deeper than it has brackets. Overestimates only cost the reference
    path, which words the depth error."""
    # First a bound from byte searches (a few % of the fast path, where the line loop
    # below more than doubled it): no line starts with _WIDE spaces or indicators, and
    # none has more opening brackets than the depth left.
    if (_WIDE_START.search(raw) is None and _WIDE_START.match(b"\n" + raw[:_WIDE]) is None
            and 2 * _WIDE + max(map(len, raw.translate(None, _NOT_OPENING).split(b"\n")))
            <= MAX_DEPTH):
        return False
    lines = raw.split(b"\n")
    # A quoted scalar over several lines may dedent (yaml-rs does not check), and a
    # dedent closes columns below: then only the widest column bounds the chain.
    open_quote = any(line.count(b'"') % 2 or line.count(b"'") % 2 for line in lines)
    columns: list[int] = []
    for line in lines:
        body = line.lstrip(b" ")
        if not body or body.startswith(b"#"):
            continue
        start = _BLOCK_START.match(line)
        assert start is not None
        indent = len(line) - len(body)
        if open_quote:
            levels = start.end() + 1
        else:
            while columns and columns[-1] >= indent:
                columns.pop()
            columns.append(indent)
            columns.extend(m.end() for m in _INDICATOR.finditer(line, indent, start.end()))
            levels = len(columns)
        if 2 * levels + line.count(b"[") + line.count(b"{") > MAX_DEPTH:
            return True
    return False


def _parse_fast(text: str) -> dict[str, Any] | None:
    """yaml-rs; ``None`` means "ask the reference path" (which also words any error).
    Only for text ``fast_path_eligible`` accepted."""
    import yaml_rs

    try:
        data = yaml_rs.loads(
            text,
            parse_datetime=False,
            duplicate_key_policy=yaml_rs.DuplicateKeyPolicy.Error,
        )
    except Exception:
        return None
    if data is None:
        return {}
    if type(data) is not dict or not _fast_tree_ok(data, 1):
        return None
    return data


def _fast_tree_ok(node: dict[str, Any] | list[Any], depth: int) -> bool:
    """What the byte checks cannot see: key types, depth, and any value the scalar table
    could refuse (a quoted "no" also lands here and is then accepted by the reference
    path, which knows the quoting)."""
    if depth > MAX_DEPTH:
        return False
    words = _FAST_SUSPECT_WORDS
    values: Any
    if type(node) is dict:
        # Keys in C: join refuses any key that is not a string.
        try:
            joined = "\0".join(node)
        except TypeError:
            return False
        if not words.isdisjoint(node) or (
                ":" in joined and any(SEXAGESIMAL.fullmatch(k) for k in node if ":" in k)):
            return False
        values = node.values()
    else:
        values = node
    v: Any
    for v in values:
        t = type(v)
        if t is str:
            if v in words or (":" in v and SEXAGESIMAL.fullmatch(v)):
                return False
        elif t is dict or t is list:
            if not _fast_tree_ok(v, depth + 1):
                return False
        elif t is int:
            if not INT_MIN <= v <= INT_MAX:
                return False
        elif t is float and not math.isfinite(v):
            return False
    return True


# --------------------------------------------------------------------------- reference

_STR = "tag:yaml.org,2002:str"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"


_CONFLICT = re.compile(r"^(<{7}|\|{7}|>{7})(?: [^\n]*)?\r?$|^={7}\r?$", re.MULTILINE)
"""A line git writes where it could not merge, from the first column: ``<<<<<<< ours``,
``||||||| base`` (diff3), ``=======``, ``>>>>>>> theirs``."""


def conflict_marker(path: str, text: str) -> LoadFailed | None:
    """The error for the first of git's conflict markers in ``text``, if it holds one.
    Git writes them from the first column, where no line of a layer's block scalar
    (``|``, ``>``) starts: only a multi-line quoted string or flow collection could hold
    such a line as text, and there it may be indented, to the same value."""
    if not any(m in text for m in ("<<<<<<<", "|||||||", "=======", ">>>>>>>")):
        return None  # the search below looks at every line; most files hold none of them
    found = _CONFLICT.search(text)
    if found is None:
        return None
    marker = found.group()[:7]
    # YAML's words for git's markers name a line below them and say nothing of a merge,
    # and text between markers a parser accepts builds, and is signed, with both sides.
    return LoadFailed([Diagnostic(
        path, text.count("\n", 0, found.start()) + 1, None,
        f"an unresolved merge conflict (git's {marker} marker): resolve it, then build "
        "again", code="syntax")])


def _syntax_error(path: str, exc: Any, text: str = "") -> LoadFailed:
    conflict = conflict_marker(path, text)
    if conflict is not None:
        return conflict
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else None
    problem = exc.problem or "syntax error"
    if exc.context:
        problem = f"{problem} ({exc.context})"
    return LoadFailed([Diagnostic(path, line, None, f"YAML syntax error: {problem}", code="syntax")])


class _Composer:
    """PyYAML nodes from the C parser's events. Unlike PyYAML's composer it remembers
    each tag as written (``!!str 5`` and ``5`` compose alike), refuses directives, too
    deep nesting, duplicate anchors (YAML 1.1 tools refuse them, 1.2 rebinds) and aliases
    into the node that holds them, and stops before recursing too deep."""

    def __init__(self, path: str, text: str) -> None:
        import yaml

        self.path = path
        self.text = text
        self.parser = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
        self.tags: dict[int, str] = {}
        self.anchors: dict[str, Any] = {}
        self.open: set[str] = set()

    def fail(self, mark: Any, message: str, code: str) -> LoadFailed:
        return LoadFailed([Diagnostic(self.path, mark.line + 1, None, message, code=code)])

    def compose(self) -> Any:
        import yaml

        parser = self.parser
        try:
            parser.get_event()  # stream start
            if parser.check_event(yaml.StreamEndEvent):
                return None
            start = parser.get_event()
            if start.version is not None or start.tags:
                raise self.fail(start.start_mark, "directives (%YAML, %TAG) are not supported: "
                                "magcfg reads YAML 1.2; remove the directive", "directive")
            node = self._node(1)
            parser.get_event()  # document end
            if not parser.check_event(yaml.StreamEndEvent):
                raise self.fail(parser.peek_event().start_mark,
                                "YAML syntax error: several documents in one file "
                                "(expected a single document in the stream)", "syntax")
        except yaml.MarkedYAMLError as exc:
            raise _syntax_error(self.path, exc, self.text) from None
        except yaml.YAMLError as exc:
            raise LoadFailed([Diagnostic(self.path, None, None, f"YAML error: {exc}",
                                         code="syntax")]) from None
        finally:
            parser.dispose()
        return node

    def _node(self, depth: int) -> Any:
        import yaml

        parser = self.parser
        event = parser.get_event()
        cls = type(event)
        anchor = event.anchor
        if cls is yaml.AliasEvent:
            if anchor in self.open:
                raise self.fail(event.start_mark, f"alias *{anchor} refers to the node that "
                                "contains it (a cycle JSON cannot hold)", "alias")
            if anchor not in self.anchors:
                raise self.fail(event.start_mark, f"undefined alias *{anchor}", "alias")
            return self.anchors[anchor]
        if anchor is not None and (anchor in self.anchors or anchor in self.open):
            raise self.fail(event.start_mark, f"anchor &{anchor} is defined twice (YAML 1.1 "
                            "refuses that, YAML 1.2 rebinds it): rename one", "alias")
        node: Any
        if cls is yaml.ScalarEvent:
            node = yaml.ScalarNode(event.tag or _STR, event.value, event.start_mark,
                                   event.end_mark, event.style)
        else:
            if depth > MAX_DEPTH:
                raise self.fail(event.start_mark, f"nesting deeper than {MAX_DEPTH} levels",
                                "depth")
            if anchor is not None:
                self.open.add(anchor)
            if cls is yaml.SequenceStartEvent:
                items: list[Any] = []
                while not parser.check_event(yaml.SequenceEndEvent):
                    items.append(self._node(depth + 1))
                node = yaml.SequenceNode(event.tag or _SEQ, items, event.start_mark,
                                         parser.get_event().end_mark, event.flow_style)
            else:
                pairs: list[tuple[Any, Any]] = []
                while not parser.check_event(yaml.MappingEndEvent):
                    key = self._node(depth + 1)
                    pairs.append((key, self._node(depth + 1)))
                node = yaml.MappingNode(event.tag or _MAP, pairs, event.start_mark,
                                        parser.get_event().end_mark, event.flow_style)
            if anchor is not None:
                self.open.discard(anchor)
        if event.tag is not None:
            self.tags[id(node)] = event.tag
        if anchor is not None:
            self.anchors[anchor] = node
        return node


def compose(path: str, text: str) -> Any:
    """Compose ``text`` into a PyYAML node tree (marks kept). Raises ``LoadFailed``."""
    return _compose(path, text).compose()


def _compose(path: str, text: str) -> _Composer:
    _check_text(path, text)
    return _Composer(path, text)


def parse_reference(path: str, text: str, document: str = "layer file"
                    ) -> tuple[dict[str, Any], bool]:
    """The reference parser: every strictness rule, every error located."""
    import yaml

    composer = _compose(path, text)
    node = composer.compose()
    if node is None:
        return {}, False
    tags = composer.tags
    if type(node) is not yaml.MappingNode:
        if (type(node) is yaml.ScalarNode and not node.style and id(node) not in tags
                and resolve_plain(node.value) == (None, None)):
            return {}, False  # an empty document, or one that says null
        raise LoadFailed([Diagnostic(path, node.start_mark.line + 1, None,
                                     f"the top level of a {document} must be a mapping",
                                     code="toplevel")])
    builder = _Builder(path, tags)
    data = builder.build(node, (), "top")
    if builder.errors:
        raise LoadFailed(builder.errors)
    assert isinstance(data, dict)
    return data, builder.markers


def _written(tag: str) -> str:
    """A tag as a YAML author writes it."""
    if tag.startswith("tag:yaml.org,2002:"):
        return "!!" + tag[len("tag:yaml.org,2002:"):]
    return tag if tag.startswith("!") else f"!<{tag}>"


_PLACE = {"top": "the top level", "item": "a list item"}


class _Builder:
    """Constructs plain data from a node tree, collecting every error of the file."""

    def __init__(self, path: str, tags: dict[int, str]) -> None:
        self.path = path
        self.tags = tags
        self.errors: list[Diagnostic] = []
        self.expanded = 0
        self.seen: set[int] = set()
        self.markers = False

    def error(self, node: Any, keypath: tuple[str, ...], message: str, code: str) -> None:
        key = format_keypath(keypath) or None
        self.errors.append(Diagnostic(self.path, node.start_mark.line + 1, key, message,
                                      code=code))

    def build(self, node: Any, keypath: tuple[str, ...], place: str) -> Any:
        """``place``: "value" of a key, list "item", or "top"."""
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
        tag = self.tags.get(id(node))
        if tag in _MARKERS:
            self.markers = True
            if tag == UNSET_TAG and place == "item":
                return self._unset_item(node, keypath)
            if place != "value":
                self.error(node, keypath, f"{tag} marks the value of a key; it cannot stand "
                           f"as {_PLACE[place]}", "marker")
            elif tag == "!unset":
                if not (isinstance(node, yaml.ScalarNode) and node.value == "" and not node.style):
                    self.error(node, keypath, "!unset takes no value", "marker")
                return UNSET
            else:
                return (REPLACE_TAG, self._untagged(node, keypath))
        elif tag is not None:
            self.error(node, keypath, f"unsupported tag {_written(tag)}: only !unset and "
                       "!replace are accepted (write the value without a tag)", "tag")
        return self._untagged(node, keypath)

    def _unset_item(self, node: Any, keypath: tuple[str, ...]) -> Any:
        """``- !unset {KEY: VALUE}``: the item of a keyed list to delete. Only the merge
        key may be written (other fields would suggest a partial delete)."""
        import yaml

        usage = ("!unset as a list item names the item to delete by its merge key: "
                 "`- !unset {name: ITEM}` (in a list whose schema has x-magcfg-merge-key)")
        if not isinstance(node, yaml.MappingNode):
            self.error(node, keypath, usage, "marker")
            return UNSET
        item = self._mapping(node, keypath)
        if len(item) != 1 or not is_json_scalar(next(iter(item.values()))):
            self.error(node, keypath, usage, "marker")
        return (UNSET_TAG, item)

    def _untagged(self, node: Any, keypath: tuple[str, ...]) -> Any:
        import yaml

        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, keypath)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(n, (*keypath, str(i)), "item") for i, n in enumerate(node.value)]
        if node.style:
            return node.value  # quoted or block scalar: text
        value, refusal = resolve_plain(node.value)
        if refusal is not None:
            self.error(node, keypath, refusal[1], refusal[0])
        return value

    def _mapping(self, node: Any, keypath: tuple[str, ...]) -> dict[str, Any]:
        import yaml

        out: dict[str, Any] = {}
        for knode, vnode in node.value:
            tag = self.tags.get(id(knode))
            if tag is not None:
                self.error(knode, keypath, f"{tag} marks the value of a key, not a key"
                           if tag in _MARKERS else f"unsupported tag {_written(tag)} on a key: "
                           "only !unset and !replace are accepted, as values", "tag")
                continue
            if not isinstance(knode, yaml.ScalarNode):
                kind = "a map" if isinstance(knode, yaml.MappingNode) else "a list"
                self.error(knode, keypath, f"keys must be strings, not {kind}", "key-type")
                continue
            if not knode.style:
                if knode.value == "<<":
                    self.error(knode, keypath, "merge keys (<<) are not supported: write the "
                               "values, or put shared values in a lower layer", "merge-key")
                    continue
                resolved, refusal = resolve_plain_key(knode.value)
                if refusal is not None:
                    self.error(knode, keypath, refusal[1], refusal[0])
                    continue
                if type(resolved) is not str:
                    self.error(knode, keypath, f"keys must be strings; quote {knode.value!r}",
                               "key-type")
                    continue
            key = knode.value
            if key in out:
                self.error(knode, (*keypath, key), f"duplicate key {key!r}", "duplicate-key")
                continue
            out[key] = self.build(vnode, (*keypath, key), "value")
        return out


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


def is_unset_item(value: object) -> bool:
    """Whether ``value`` is a ``- !unset {KEY: VALUE}`` list item (see the module doc)."""
    return type(value) is tuple and len(value) == 2 and value[0] == UNSET_TAG


def is_json_scalar(value: object) -> bool:
    return isinstance(value, _JSON_SCALARS)
