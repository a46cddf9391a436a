"""The JSON Schema of a project and what magcfg reads from its annotations.

``SchemaIndex`` walks the schema once (following local ``$ref``s) and answers the
questions every stage asks about a key path: is it a secret (``x-magcfg-secret``),
what is its reload policy (``x-magcfg-reload``, inherited, default ``restart``), which
keys are known there (for "did you mean"), what does it describe (``magcfg docs``).
A ``*`` segment stands for any map key (``additionalProperties``/``patternProperties``)
or list index (``items``).

A schema file is checked before anything reads it (``dialect.py``): strict JSON, nested
at most ``dialect.MAX_DEPTH`` levels, 2020-12 with magcfg's annotations, every ``$ref``
a pointer into the file. The index then refuses a ``$ref`` that points to no schema, and
shapes that nest deeper than ``MAX_FOLLOWED_DEPTH`` levels once references are followed
(each walk of the index recurses that deep), and schemas that stand for more than
``MAX_EXPANDED`` subschemas then (each walk visits them all).

Pieces: a schema whose root only lists its top-level keys (``properties``, no keyword
that relates them to each other, no ``$ref`` into ``#/properties`` or to the root, and
shared definitions small enough to repeat in every piece) is *split* once per digest
into one standalone document per top-level key (the root with only that key under
``properties``; the same JSON pointers as in the file). Each piece has its own digest,
index and validator, so a build parses, indexes and compiles only the pieces of the
fragments it has to compile, and a change to one key's schema invalidates only that
key's fragments. The split is kept in a ``PieceStore`` (the build
cache) by the file's digest, and each piece by its own.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import repeat
from types import MappingProxyType
from typing import Any, Literal, NamedTuple, Protocol
from urllib.parse import unquote

from ..artifact import read_as_json_reads, value_pattern
from ..errors import BuildError, Diagnostic
from ..keyglob import format_keypath
from .dialect import MAX_DEPTH, TOO_DEEP, check_dialect, dangling_ref, located
from .json_lines import nesting_line

ReloadPolicy = Literal["hot", "restart"]
DEFAULT_RELOAD: ReloadPolicy = "restart"
WILDCARD = "*"
MAX_FOLLOWED_DEPTH = 256
"""Nesting of the schema once its references are followed (chains of ``$ref``)."""
MAX_EXPANDED = 1_000_000
"""Subschemas the schema may stand for once its references are followed: every walk of
the index (``magcfg docs``, the reload partition, the secret paths) visits that many.
``benchmarks/synth.py``'s 40 MB exhaustive schemas stand for ~250,000; a chain of
``$defs`` each referring to the one before twice doubles at every link."""


Constraint = tuple[str, tuple[str, ...]]
"""What a key allows, for people: words and the values they apply to (JSON text),
e.g. ``("one of", ('"debug"', '"info"'))``, ``(">=", ("1",))``."""


class _Node:
    """One key of the schema index. Slots: an index holds a node per key of the schema.
    A plain class: a dataclass's generated methods cost every command that imports the
    index ~2 ms of start-up."""

    __slots__ = ("_constraints", "children", "default", "description", "has_default",
                 "height", "merge_key", "reload", "secret", "secret_value", "size",
                 "sources", "types")

    def __init__(self, children: dict[str, _Node] | None = None, secret: bool = False,
                 reload: ReloadPolicy | None = None, description: str | None = None,
                 types: tuple[str, ...] = (), default: Any = None,
                 has_default: bool = False, merge_key: str | None = None,
                 sources: Any = None, height: int = 1,
                 secret_value: dict[str, Any] | None = None) -> None:
        self.children: dict[str, _Node] = {} if children is None else children
        self.secret = secret
        self.reload = reload
        self.description = description
        self.types = types
        self.default = default
        self.has_default = has_default
        self.merge_key = merge_key
        # The schema object(s) the node was made from: a dict, or a tuple of them for a
        # combined node. Read only by ``entry`` (bounds for editors), so building the
        # index costs one reference per node, not a copy of the keywords.
        self.sources = sources
        self.height = height  # levels of children below and including this node
        self.size = 1  # nodes below and including this one, a shared node each time
        # ``x-magcfg-secret-value``: what the secret's value must be (not its reference).
        self.secret_value = secret_value
        self._constraints: tuple[Constraint, ...] | None = None

    @property
    def constraints(self) -> tuple[Constraint, ...]:
        """What the node's own schema objects allow (``constraints`` of each source, in
        order, without repeats): computed on first use, since only editors and ``magcfg
        docs`` ask, and computing it for every node was half the cost of building the
        index of a large schema (``magcfg diff``)."""
        if self._constraints is None:
            self._constraints = tuple(dict.fromkeys(
                c for src in _sources(self) for c in constraints(src)))
        return self._constraints

    def measure(self) -> None:
        children = self.children.values()
        self.height = 1 + max((c.height for c in children), default=0)
        self.size = 1 + sum(c.size for c in children)


def _sources(node: _Node) -> tuple[dict[str, Any], ...]:
    found = node.sources
    return () if found is None else found if type(found) is tuple else (found,)


def _constraints(node: _Node) -> dict[str, Any]:
    """The bounds the node's own schema objects put on a value (later ones win)."""
    return {k: src[k] for src in _sources(node) for k in CONSTRAINTS if k in src}


def _combine(a: _Node, b: _Node, done: dict[tuple[int, int], tuple[_Node, _Node, _Node]]
             | None = None) -> _Node:
    """A new node with what both say (for allOf/anyOf/oneOf and $ref with siblings).

    Below the top, a pair of nodes met again is combined once (``done``): shared nodes
    meet again where both sides use one definition twice, and combining each meeting
    afresh doubled the work at every level. The caller may change the top node only."""
    if done is None:
        done = {}
    else:
        seen = done.get((id(a), id(b)))
        if seen is not None:
            return seen[2]
    out = _Node(dict(a.children), a.secret or b.secret, b.reload or a.reload,
                a.description or b.description, a.types or b.types,
                a.default if a.has_default else b.default, a.has_default or b.has_default,
                a.merge_key or b.merge_key, (*_sources(a), *_sources(b)),
                secret_value=({**a.secret_value, **b.secret_value}
                              if a.secret_value and b.secret_value
                              else a.secret_value or b.secret_value))
    for k, child in b.children.items():
        out.children[k] = (_combine(out.children[k], child, done) if k in out.children
                           else child)
    out.measure()
    done[id(a), id(b)] = (a, b, out)  # a and b kept alive: their ids stay theirs
    return out


_BOUNDS = (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="),
           ("exclusiveMaximum", "<"), ("minLength", "length >="), ("maxLength", "length <="),
           ("minItems", "items >="), ("maxItems", "items <="),
           ("minProperties", "keys >="), ("maxProperties", "keys <="),
           ("multipleOf", "multiple of"))


json_text = json.JSONEncoder(sort_keys=True).encode
"""``json.dumps(value, sort_keys=True)``, without making an encoder per call (``magcfg
docs`` writes ~10^5 of them)."""


def constraints(schema: dict[str, Any]) -> tuple[Constraint, ...]:
    """What a schema node allows (``magcfg docs``): enum, const, ranges, lengths,
    pattern, format, uniqueness."""
    out: list[Constraint] = []
    if isinstance(schema.get("enum"), list):
        out.append(("one of", tuple(json_text(v) for v in schema["enum"])))
    if "const" in schema:
        out.append(("=", (json_text(schema["const"]),)))
    for keyword, words in _BOUNDS:
        value = schema.get(keyword)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            # As json writes it: a schema's numbers are finite (``_parse_schema``).
            out.append((words, (repr(value),)))
    for keyword in ("pattern", "format"):
        if isinstance(schema.get(keyword), str):
            out.append((keyword, (schema[keyword],)))
    if schema.get("uniqueItems") is True:
        out.append(("unique items", ()))
    return tuple(out)


CONSTRAINTS = ("enum", "const", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
               "multipleOf", "minLength", "maxLength", "pattern", "format", "minItems",
               "maxItems", "uniqueItems", "minProperties", "maxProperties")
"""The keywords of a key's own schema that bound its value (shown by editors)."""


class _SharedRefs:
    """The nodes of ``$ref`` targets of one schema file, and its index's failure."""

    def __init__(self) -> None:
        self.nodes: dict[str, _Node] = {}
        self.failed: BuildError | None = None


class SchemaEntry(NamedTuple):
    """One documented key of the schema (for ``magcfg docs``; ``constraints`` are filled
    in by ``SchemaIndex.entry``, for editors)."""

    path: str
    description: str | None
    types: tuple[str, ...]
    secret: bool
    reload: ReloadPolicy
    default: Any
    has_default: bool
    constraints: tuple[Constraint, ...] = ()
    bounds: Mapping[str, Any] = MappingProxyType({})
    """The bounding keywords as written (``CONSTRAINTS``), for editors."""


class SchemaIndex:
    """What the schema says about key paths."""

    def __init__(self, schema: Schema) -> None:
        # Built on first query: a rebuild whose fragments all come from the cache never
        # needs to parse or walk the schema (a 26 MB schema takes ~2 s to read and walk).
        self._file = schema
        self._tree: _Node | None = None
        self._walked: _Rows | None = None
        self._failed: BuildError | None = None
        # Nodes are shared between every place that $refs the same definition, so the
        # index stays as small as the schema (200 services referencing one shape cost
        # one shape, not 200); the pieces of a file share them too (every piece has the
        # file's $defs), and so a failure: a piece's index built after it must not
        # answer from the placeholders it left.
        self._shared: _SharedRefs = (schema.origin.index._shared if schema.origin is not None
                                     else _SharedRefs())
        self._by_ref = self._shared.nodes

    @property
    def schema(self) -> dict[str, Any]:
        return self._file.document

    @property
    def _root(self) -> _Node:
        if self._tree is None:
            # A failed build leaves placeholders behind: asking again must fail again,
            # never answer from a partial index (a secret key would not be secret).
            if self._failed is not None:
                raise self._failed
            if self._shared.failed is not None:
                raise self._shared.failed
            try:
                self._tree = self._build(self.schema, (), 0)
            except BuildError as exc:
                self._failed = self._shared.failed = exc
                raise
        return self._tree

    # -- construction ---------------------------------------------------------------

    def _error(self, where: Any, key: str | None, message: str) -> BuildError:
        """A located error about the schema object ``where`` (its member ``key``)."""
        pointer = _pointer_of(self.schema, where) or []
        return located(self._file.path, self._file.file_raw,
                       [([*pointer, key] if key else pointer, message)])

    def _target(self, ref: str, holder: dict[str, Any]) -> Any:
        """What the pointer ``ref`` names; a pointer to nothing is an error."""
        try:
            return pointer_target(self.schema, ref)
        except LookupError:
            raise self._error(holder, "$ref", dangling_ref(ref)) from None

    def _build(self, schema: Any, seen: tuple[str, ...], depth: int,
               beside_ref: bool = False) -> _Node:
        if depth > MAX_FOLLOWED_DEPTH:
            raise self._error(schema, None, f"the schema nests deeper than "
                              f"{MAX_FOLLOWED_DEPTH} levels where its $refs are followed")
        node = self._node(schema, seen, depth, beside_ref)
        if node.height > MAX_FOLLOWED_DEPTH:
            raise self._error(schema, None, f"the keys below this point nest deeper than "
                              f"{MAX_FOLLOWED_DEPTH} levels where the $refs are followed")
        if node.size > MAX_EXPANDED:
            raise self._error(schema, None, f"the schema expands to more than "
                              f"{MAX_EXPANDED:,} subschemas through $ref here (a "
                              "definition used twice in one that is used twice ...)")
        return node

    def _node(self, schema: Any, seen: tuple[str, ...], depth: int,
              beside_ref: bool = False) -> _Node:
        """The node of ``schema``; ``beside_ref``: of its keywords other than ``$ref``
        (the object itself, not a copy without it, so an error about one of them is
        located by identity at its line in the file)."""
        if not isinstance(schema, dict):
            return _Node()
        ref = None if beside_ref else schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#") and ref not in seen:
            target = self._target(ref, schema)
            if not isinstance(target, (dict, bool)):
                raise self._error(schema, "$ref", dangling_ref(ref))
            if isinstance(target, dict):
                if ref not in self._by_ref:
                    self._by_ref[ref] = _Node()  # placeholder breaks reference cycles
                    self._by_ref[ref] = self._build(target, (*seen, ref), depth + 1)
                shared = self._by_ref[ref]
                if len(schema) == 1:
                    return shared
                local = self._build(schema, seen, depth + 1, beside_ref=True)
                node = _combine(shared, local)
                # Words next to the $ref describe this use of the shape: they win.
                node.description = local.description or shared.description
                if local.has_default:
                    node.default, node.has_default = local.default, True
                return node
        node = _Node()
        get = schema.get  # one bound method for the ~15 look-ups of each of ~10^5 nodes
        if get("x-magcfg-secret") is True:
            node.secret = True
        if isinstance(get("x-magcfg-secret-value"), dict):
            node.secret_value = self._secret_value(schema)
        reload = get("x-magcfg-reload")
        if reload in ("hot", "restart"):
            node.reload = reload
        description = get("description")
        if isinstance(description, str):
            node.description = description
        if "default" in schema:
            node.default, node.has_default = schema["default"], True
        merge_key = get("x-magcfg-merge-key")
        if isinstance(merge_key, str):
            node.merge_key = merge_key
        node.sources = schema
        t = get("type")
        if isinstance(t, str):
            node.types = (t,)
        elif isinstance(t, list):
            node.types = tuple(x for x in t if isinstance(x, str))
        properties = get("properties")
        if properties:
            children = node.children
            for key, sub in properties.items():
                children[key] = self._build(sub, seen, depth + 1)
        wild: list[Any] = []
        if isinstance(get("additionalProperties"), dict):
            wild.append(schema["additionalProperties"])
        wild.extend((get("patternProperties") or {}).values())
        if isinstance(get("items"), dict):
            wild.append(schema["items"])
        for sub in wild:
            child = self._build(sub, seen, depth + 1)
            node.children[WILDCARD] = (_combine(node.children[WILDCARD], child)
                                       if WILDCARD in node.children else child)
        if node.children:  # a leaf's height is 1 already
            node.measure()
        for combinator in ("allOf", "anyOf", "oneOf"):
            for sub in get(combinator) or ():
                node = _combine(node, self._build(sub, seen, depth + 1))
        return node

    def _secret_value(self, schema: dict[str, Any]) -> dict[str, Any]:
        """The constraints of ``x-magcfg-secret-value`` (the dialect checked their
        types); a pattern :func:`magcfg.artifact.value_pattern` cannot check (Python's
        ``re`` cannot compile it, or it needs backtracking) is an error at its line."""
        rules = dict(schema["x-magcfg-secret-value"])
        pattern = rules.get("pattern")
        if isinstance(pattern, str):
            try:
                value_pattern(pattern)
            except re.error as exc:
                pointer = _pointer_of(self.schema, schema) or []
                raise located(self._file.path, self._file.file_raw, [(
                    [*pointer, "x-magcfg-secret-value", "pattern"],
                    f"pattern {pattern!r} is not a regular expression magcfg can check "
                    f"({exc}); JSON Schema patterns are ECMA-262, write it in the syntax "
                    "both understand, without backreferences or lookarounds")]) from None
        return rules

    # -- queries ----------------------------------------------------------------------

    def _of(self, keypath: tuple[str, ...]) -> SchemaIndex:
        """The index that answers for ``keypath``: its top-level key's piece, when the
        schema is split and lists that key; else this one."""
        if keypath:
            piece = self._file.piece(keypath[0])
            if piece is not self._file:
                return piece.index
        return self

    def _nodes(self, keypath: tuple[str, ...]) -> Iterator[_Node]:
        """The schema nodes along ``keypath`` (stops where the schema has no entry)."""
        owner = self._of(keypath)
        if owner is not self:
            yield from owner._nodes(keypath)
            return
        node = self._root
        yield node
        for part in keypath:
            nxt = node.children.get(part) or node.children.get(WILDCARD)
            if nxt is None:
                return
            node = nxt
            yield node

    def known_keys(self, keypath: tuple[str, ...]) -> list[str]:
        if not keypath and self._file.origin is None:
            split = self._file.piece_digests()
            if split:
                # A split root lists exactly its pieces' keys (``fragment_safe``: no
                # keyword but ``properties`` names a key): no need to index the file.
                return sorted(k for k in split if k != WILDCARD)
        owner = self._of(keypath)
        if owner is not self:
            return owner.known_keys(keypath)
        node = self._root
        for part in keypath:
            nxt = node.children.get(part) or node.children.get(WILDCARD)
            if nxt is None:
                return []
            node = nxt
        return sorted(k for k in node.children if k != WILDCARD)

    def entry(self, keypath: tuple[str, ...]) -> SchemaEntry | None:
        """What the schema says about ``keypath`` (None where it has no entry)."""
        nodes = list(self._nodes(keypath))
        if len(nodes) != len(keypath) + 1:
            return None
        node = nodes[-1]
        return SchemaEntry(format_keypath(keypath), node.description, node.types,
                           any(n.secret for n in nodes), self.reload_policy(keypath),
                           node.default, node.has_default, node.constraints,
                           _constraints(node))

    def is_secret(self, keypath: tuple[str, ...]) -> bool:
        """True when the key or one of its ancestors is marked ``x-magcfg-secret``."""
        return any(n.secret for n in self._nodes(keypath))

    def secret_subtrees_at(self, at: tuple[str, ...], tree: Any, path: tuple[str, ...]
                           ) -> Iterator[tuple[tuple[str, ...], Any]]:
        """``PolicyIndex.secret_subtrees`` of ``tree``, which sits at ``at`` in the
        configuration and at ``path`` in the tree, from this index's nodes: the nodes
        along ``at`` found once, then walked down beside the tree (asking ``is_secret``
        of each key path would walk from the root for each: a cold build asks this of
        every layer file, before any policy table is cached)."""
        nodes = list(self._nodes(at))
        if any(n.secret for n in nodes):
            yield path, tree
        elif len(nodes) == len(at) + 1:  # else the schema ends above: nothing is secret
            yield from _secret_nodes(nodes[-1], tree, path)

    def reload_policy(self, keypath: tuple[str, ...]) -> ReloadPolicy:
        policy = DEFAULT_RELOAD
        for n in self._nodes(keypath):
            if n.reload is not None:
                policy = n.reload
        return policy

    def merge_key(self, keypath: tuple[str, ...]) -> str | None:
        """Keyed list merge: the item key the schema names for the list at ``keypath``."""
        nodes = list(self._nodes(keypath))
        return nodes[-1].merge_key if len(nodes) == len(keypath) + 1 else None

    def policy_table(self) -> PolicyTable:
        """This index's nodes as ``[(secret, reload, {child: row}, merge key)]``, the root
        first (row 0): what ``is_secret``, ``reload_policy`` and ``merge_key`` read, in a
        form the build cache keeps (``PolicyIndex``). Shared and recursive nodes are one
        row each."""
        return self._rows().table

    def _rows(self) -> _Rows:
        """The nodes in rows (``policy_table``), made once: the summary's walks
        (``secret_paths``, ``secret_values``, ``reload_partition``) read them. Of a
        schema that is a plain tree (``_plain_rows``), read from its document without
        making the index, which only editors, ``magcfg docs`` and the messages of a
        failed validation ask for: a cold build summarizes every piece of the schema."""
        if self._walked is None:
            plain = (_plain_rows(self) if self._tree is None and self._failed is None
                     and self._shared.failed is None else None)
            self._walked = plain or self._node_rows()
        return self._walked

    def _node_rows(self) -> _Rows:
        """The rows of the index's nodes, breadth first."""
        root = self._root
        rows: dict[int, int] = {id(root): 0}
        order = [root]
        parents = [-1]
        tree = True
        table: PolicyTable = []
        values: dict[int, tuple[dict[str, Any], Any]] = {}
        for number, node in enumerate(order):  # grows while it is walked: breadth first
            children: dict[str, int] = {}
            for key, child in node.children.items():
                row = rows.get(id(child))
                if row is None:
                    row = rows[id(child)] = len(order)
                    order.append(child)
                    parents.append(number)
                else:
                    tree = False  # a shared or recursive node: a row of two parents
                children[key] = row
            table.append((node.secret, node.reload, children, node.merge_key))
            if node.secret_value:
                values[number] = (node.secret_value, next(
                    (s for s in _sources(node) if "x-magcfg-secret-value" in s), None))
        return _Rows(table, values, parents if tree else None)

    def secret_paths(self) -> list[str]:
        """Key paths (text form of ``magcfg.keyglob``, ``*`` for wildcards) of every key
        marked secret."""
        pieces = self._file.pieces()
        if pieces:
            return sorted({p for piece in pieces for p in piece.index.secret_paths()})
        rows = self._rows()
        table = rows.table
        leads = rows.leading(number for number, row in enumerate(table) if row[0])
        memo: dict[int, list[tuple[str, ...]]] = {}

        def walk(number: int) -> list[tuple[str, ...]]:
            if number not in memo:
                row = table[number]
                memo[number] = [()] if row[0] else [
                    (k, *rest) for k, child in row[2].items() if leads(child)
                    for rest in walk(child)]
            return memo[number]

        return sorted(format_keypath(p, WILDCARD) for p in walk(0) if p)

    def secret_values(self) -> dict[str, dict[str, Any]]:
        """Key path (text form, ``*`` for wildcards) -> the ``x-magcfg-secret-value``
        constraints stated there. Stated on a key that is not secret (neither it nor an
        ancestor is ``x-magcfg-secret``), it is an error at its line: nothing would
        ever check it."""
        pieces = self._file.pieces()
        if pieces:
            return {k: v for piece in pieces for k, v in piece.index.secret_values().items()}
        rows = self._rows()
        table, values = rows.table, rows.values
        leads = rows.leading(values)
        memo: dict[int, list[tuple[tuple[str, ...], int, bool]]] = {}

        def walk(number: int) -> list[tuple[tuple[str, ...], int, bool]]:
            if number not in memo:
                memo[number] = []  # cycle guard
                secret, children = table[number][0], table[number][2]
                found: list[tuple[tuple[str, ...], int, bool]] = (
                    [((), number, secret)] if number in values else [])
                found += [((k, *rest), target, covered or secret)
                          for k, child in children.items() if leads(child)
                          for rest, target, covered in walk(child)]
                memo[number] = found
            return memo[number]

        out: dict[str, dict[str, Any]] = {}
        for path, number, covered in walk(0):
            rules, holder = values[number]
            if not covered:
                pointer = (_pointer_of(self.schema, holder) or []) if holder else []
                raise located(self._file.path, self._file.file_raw, [(
                    [*pointer, "x-magcfg-secret-value"],
                    f"x-magcfg-secret-value on {format_keypath(path, WILDCARD) or 'the root'}, "
                    "which is not secret: mark it (or an ancestor) x-magcfg-secret: true")])
            if path:
                out[format_keypath(path, WILDCARD)] = dict(sorted(rules.items()))
        return dict(sorted(out.items()))

    def reload_partition(self) -> tuple[list[str], list[str]]:
        """(hot, restart): the largest subtrees whose keys are all hot, or all restart.

        Every key of the schema lies in exactly one listed subtree, so the policy of a
        key is the one of the longest listed prefix of its path (``*`` matches any
        segment). This is what manifest.json carries as ``hot_keys``/``restart_keys``.
        Of a split schema: the union of its pieces' (each lists the root's children
        one by one, so the pieces' subtrees are the whole schema's).
        """
        pieces = self._file.pieces()
        if pieces:
            hot_keys: set[str] = set()
            restart_keys: set[str] = set()
            for piece in pieces:
                h, r = piece.index.reload_partition()
                hot_keys.update(h)
                restart_keys.update(r)
            return sorted(hot_keys), sorted(restart_keys)
        rows = self._rows()
        table = rows.table
        # A subtree that states no policy has its parent's throughout.
        leads = rows.leading(number for number, row in enumerate(table) if row[1] is not None)
        uniform: dict[tuple[int, str], str | None] = {}

        def policy_of(number: int, inherited: ReloadPolicy) -> str | None:
            if not leads(number):
                return inherited
            key = (number, inherited)
            if key not in uniform:
                uniform[key] = "?"  # cycle guard: a recursive shape counts as mixed
                own = table[number][1] or inherited
                kids = {policy_of(c, own) for c in table[number][2].values()}
                uniform[key] = own if kids <= {own} else None
            result = uniform[key]
            return None if result == "?" else result

        hot: list[str] = []
        restart: list[str] = []

        def collect(number: int, path: tuple[str, ...], inherited: ReloadPolicy,
                    depth: int) -> None:
            own = table[number][1] or inherited
            p = policy_of(number, inherited)
            if p is not None or depth > 32:
                (hot if (p or own) == "hot" else restart).append(format_keypath(path, WILDCARD))
                return
            for k, child in table[number][2].items():
                collect(child, (*path, k), own, depth + 1)

        default = table[0][1] or DEFAULT_RELOAD
        for k, child in table[0][2].items():
            collect(child, (k,), default, 1)
        return sorted(hot), sorted(restart)

    def entry_keys(self) -> list[str]:
        """The top-level keys ``entries`` goes through, in its order."""
        split = self._split()
        if not split:
            return sorted(self._root.children)
        keys = sorted(split)
        wild = self._file.piece(keys[0]).index._root.children.get(WILDCARD)
        return sorted({*keys, *([WILDCARD] if wild is not None else [])})

    def entries(self, keys: Iterable[str] | None = None) -> Iterator[SchemaEntry]:
        """Every key of the schema under ``keys`` (default: ``entry_keys``), depth first
        in sorted order (for ``magcfg docs``), one top-level key at a time.

        Of a split schema: each top-level key's entries from its piece, one piece at a
        time, each let go once read (the file is neither parsed nor indexed whole). A
        piece's root is the file's root with one key, so the root's reload policy,
        secret flag and ``*`` (``additionalProperties``) are the same in every piece."""
        split = self._split()
        if keys is None:
            keys = self.entry_keys()
        if not split:
            root = self._root
            for key in keys:
                yield from _entries(root.children[key], (key,),
                                    root.reload or DEFAULT_RELOAD, root.secret, [])
            return
        first = min(split)
        for key in keys:
            owner = key if key in split else first
            root = self._file.piece(owner).index._root
            found = _entries(root.children[key], (key,), root.reload or DEFAULT_RELOAD,
                             root.secret, [])
            self._file.release(owner)
            yield from found

    def _split(self) -> dict[str, str]:
        """The file's pieces by top-level key (none for a piece, or a file not split)."""
        return self._file.piece_digests() if self._file.origin is None else {}


def _secret_nodes(node: _Node, tree: Any, path: tuple[str, ...]
                  ) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(path, value) of each outermost value below ``tree``, the value of a key whose
    node ``node`` is not secret, whose own node is secret; below where the schema ends
    nothing is (``SchemaIndex._nodes`` stops there)."""
    if type(tree) is not dict:
        return
    children = node.children
    wildcard = children.get(WILDCARD)
    for key, value in tree.items():
        child = children.get(key) or wildcard
        if child is None:
            continue
        if child.secret:
            yield (*path, key), value
        else:
            yield from _secret_nodes(child, value, (*path, key))


def _entries(node: _Node, path: tuple[str, ...], policy: ReloadPolicy, secret: bool,
             out: list[SchemaEntry]) -> list[SchemaEntry]:
    """``out`` with ``node``'s entry at ``path`` and those of the keys below it, in
    sorted order."""
    policy = node.reload or policy
    secret = secret or node.secret
    out.append(SchemaEntry(".".join(path), node.description, node.types, secret, policy,
                           node.default, node.has_default, node.constraints))
    for k in sorted(node.children):
        _entries(node.children[k], (*path, k), policy, secret, out)
    return out


_Row = tuple[bool, ReloadPolicy | None, dict[str, int], str | None]
PolicyTable = list[_Row]
"""``SchemaIndex.policy_table``: rows of (secret, reload, {child key: row}, merge key)."""


class _Rows(NamedTuple):
    """An index's nodes numbered breadth first (``SchemaIndex.policy_table``)."""

    table: PolicyTable
    # Row -> (``x-magcfg-secret-value``'s constraints, the schema object stating them),
    # for the rows with constraints.
    values: dict[int, tuple[dict[str, Any], Any]]
    parents: list[int] | None  # by row (the root's: -1); None: a row has two parents

    def leading(self, marked: Iterable[int]) -> Callable[[int], bool]:
        """Whether a row is one of ``marked`` or above one. The walks of the summary
        follow only such rows: of a tree, a subtree without a marked row adds nothing
        to what they find (each is a tree of the schema's objects, but for shared and
        recursive ``$ref`` targets, where every row is followed)."""
        if self.parents is None:
            return _every_row
        parents = self.parents
        found: set[int] = set()
        for number in marked:
            while number >= 0 and number not in found:
                found.add(number)
                number = parents[number]
        return found.__contains__


def _every_row(_: int) -> bool:
    return True


_NOT_PLAIN = ("$ref", "allOf", "anyOf", "oneOf", "patternProperties")


def _plain_rows(index: SchemaIndex) -> _Rows | None:
    """The rows ``SchemaIndex._node_rows`` makes, read from the document of a schema
    that is a tree of plain objects: none holds a ``$ref``, a combinator or
    ``patternProperties``, nor both ``additionalProperties`` and ``items`` as
    schemas, nor a key named ``*`` beside them (their nodes combine), nor an
    ``x-magcfg-secret-value`` the index refuses; and no more than ``MAX_EXPANDED``
    objects. Else None: the index decides (and words any error). Without ``$ref`` the
    nesting is the file's, which the dialect holds below ``MAX_FOLLOWED_DEPTH``."""
    order: list[Any] = [index.schema]
    parents = [-1]
    table: PolicyTable = []
    values: dict[int, tuple[dict[str, Any], Any]] = {}
    for number, schema in enumerate(order):  # grows while it is walked: breadth first
        if type(schema) is not dict:
            table.append((False, None, {}, None))
            continue
        for keyword in _NOT_PLAIN:
            if keyword in schema:
                return None
        get = schema.get
        children: dict[str, int] = {}
        properties = get("properties")
        if properties:
            first = len(order)
            order += properties.values()
            children = dict(zip(properties, range(first, len(order)), strict=True))
            parents += repeat(number, len(properties))
        extra, items = get("additionalProperties"), get("items")
        wild = extra if type(extra) is dict else None
        if type(items) is dict:
            if wild is not None:
                return None
            wild = items
        if wild is not None:
            if WILDCARD in children:
                return None
            children[WILDCARD] = len(order)
            order.append(wild)
            parents.append(number)
        if len(order) > MAX_EXPANDED:
            return None
        reload = get("x-magcfg-reload")
        merge_key = get("x-magcfg-merge-key")
        table.append((get("x-magcfg-secret") is True,
                      reload if reload == "hot" or reload == "restart" else None,
                      children, merge_key if type(merge_key) is str else None))
        if type(get("x-magcfg-secret-value")) is dict:
            try:
                rules = index._secret_value(schema)
            except BuildError:
                return None
            if rules:
                values[number] = (rules, schema)
    return _Rows(table, values, parents)


class PolicyIndex:
    """``is_secret``, ``reload_policy`` and ``merge_key`` of a split schema, answered
    from each piece's ``policy_table`` (cached by the build; ``table_of(key)`` reads
    one, once, when a key under it is asked about) exactly as the pieces' indexes
    answer; a key path without a table (the root, a key no piece lists, a table not
    cached, a schema that is not split) asks ``fallback``."""

    def __init__(self, table_of: Callable[[str], PolicyTable | None],
                 fallback: SchemaIndex) -> None:
        self._table_of = table_of
        self._tables: dict[str, PolicyTable | None] = {}
        self._secret_rows: dict[str, frozenset[int]] = {}  # ``_rows_to_secrets`` by key
        self.fallback = fallback
        # What holds along recently asked parents: a diff asks about ~10^5 leaves, most
        # of them siblings, and both questions about each.
        self._along: dict[tuple[str, ...], _Along] = {}
        # The last answer: both questions are asked about one key path in a row.
        self._last: tuple[tuple[str, ...], tuple[bool, ReloadPolicy] | None] = ((), None)

    def _facts(self, keypath: tuple[str, ...]) -> tuple[bool, ReloadPolicy] | None:
        """(secret, reload policy) of ``keypath`` from the rows along it (as
        ``SchemaIndex._nodes``: down to where the schema ends), or None: no table."""
        if keypath is self._last[0]:
            return self._last[1]
        table = self._table(keypath)
        if table is None:
            return None
        # The parent is remembered, the leaf is not: siblings share their parent.
        secret, policy, _, _ = _step(table, self._at(table, keypath[:-1]), keypath[-1])
        self._last = (keypath, (secret, policy))
        return secret, policy

    def forget_missing(self) -> None:
        """Ask ``table_of`` again for the keys it had no table for: the build cached
        more tables since (a piece summarized after a key under it was merged)."""
        self._tables = {k: t for k, t in self._tables.items() if t is not None}

    def _table(self, keypath: tuple[str, ...]) -> PolicyTable | None:
        """The table of ``keypath``'s top-level key, if the build cached one."""
        if not keypath:
            return None
        if keypath[0] not in self._tables:
            self._tables[keypath[0]] = self._table_of(keypath[0])
        return self._tables[keypath[0]]

    def _at(self, table: PolicyTable, keypath: tuple[str, ...]) -> _Along:
        """What holds at ``keypath`` (remembered by key path, whose first key names the
        table): secret, policy, its row, and whether the schema reaches that far."""
        if not keypath:
            root = table[0]
            return root[0], root[1] or DEFAULT_RELOAD, root, True
        found = self._along.get(keypath)
        if found is None:
            found = _step(table, self._at(table, keypath[:-1]), keypath[-1])
            if len(self._along) >= 4096:
                self._along.clear()
            self._along[keypath] = found
        return found

    def is_secret(self, keypath: tuple[str, ...]) -> bool:
        facts = self._facts(keypath)
        return self.fallback.is_secret(keypath) if facts is None else facts[0]

    def reload_policy(self, keypath: tuple[str, ...]) -> ReloadPolicy:
        facts = self._facts(keypath)
        return self.fallback.reload_policy(keypath) if facts is None else facts[1]

    def merge_key(self, keypath: tuple[str, ...]) -> str | None:
        table = self._table(keypath)
        if table is None:
            return self.fallback.merge_key(keypath)
        _, _, row, whole = self._at(table, keypath)
        return row[3] if whole else None

    def secret_subtrees(self, tree: Any, prefix: tuple[str, ...] = ()
                        ) -> Iterator[tuple[tuple[str, ...], Any]]:
        """(path in ``tree``, value) of each outermost value of a tree of mappings whose
        key path, behind ``prefix`` (where a layer file's content sits), ``is_secret``;
        every key below such a value is secret too. A mapping whose rows lead to no
        secret is skipped unread, so a layer file costs what its secret keys do rather
        than what its size does (``magcfg lint`` asks this of every layer file)."""
        if prefix:
            yield from self._secret_subtrees(prefix, tree, ())
        elif type(tree) is dict:  # the root itself is no key
            for key, value in tree.items():
                yield from self._secret_subtrees((key,), value, (key,))

    def _secret_subtrees(self, at: tuple[str, ...], node: Any, path: tuple[str, ...]
                         ) -> Iterator[tuple[tuple[str, ...], Any]]:
        """``secret_subtrees`` of ``node``, which sits at ``at`` in the configuration
        and at ``path`` in the tree."""
        table = self._table(at)
        if table is None:
            yield from self.fallback.secret_subtrees_at(at, node, path)
            return
        rows = self._secret_rows.get(at[0])
        if rows is None:
            rows = self._secret_rows[at[0]] = _rows_to_secrets(table)
        yield from _secret_walk(table, rows, self._at(table, at), node, path)


_Along = tuple[bool, ReloadPolicy, _Row, bool]


def _step(table: PolicyTable, along: _Along, part: str) -> _Along:
    """What holds one key below ``along``: at its child ``part`` (or wildcard) row, or,
    where the schema ends, what held above (as ``SchemaIndex._nodes`` stops there)."""
    secret, policy, row, whole = along
    if not whole:
        return along
    nxt = row[2].get(part)
    if nxt is None:
        nxt = row[2].get(WILDCARD)
        if nxt is None:
            return secret, policy, row, False
    child = table[nxt]
    return secret or child[0], child[1] or policy, child, True


def _rows_to_secrets(table: PolicyTable) -> frozenset[int]:
    """Ids of the rows of ``table`` that are secret or lead to a secret row: the secret
    rows (few) and their ancestors, through every parent of a shared or recursive row."""
    parents: list[list[int]] = [[] for _ in table]
    for number, row in enumerate(table):
        for child in row[2].values():
            parents[child].append(number)
    leading: set[int] = set()
    todo = [number for number, row in enumerate(table) if row[0]]
    while todo:
        number = todo.pop()
        if number not in leading:
            leading.add(number)
            todo.extend(parents[number])
    return frozenset(id(table[number]) for number in leading)


def _secret_walk(table: PolicyTable, leading: frozenset[int], along: _Along, node: Any,
                 path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    """``PolicyIndex.secret_subtrees`` from ``along``, by the steps ``is_secret`` takes."""
    secret, _, row, whole = along
    if secret:
        yield path, node
    elif whole and type(node) is dict and id(row) in leading:
        for key, value in node.items():
            yield from _secret_walk(table, leading, _step(table, along, key), value,
                                    (*path, key))


class PieceStore(Protocol):
    """Where the split of a schema is kept (the build cache): marshal-able values and
    raw bytes, by name; ``None`` when absent."""

    def get(self, name: str) -> Any: ...

    def put(self, name: str, value: Any) -> None: ...

    def get_bytes(self, name: str) -> bytes | None: ...

    def put_bytes(self, name: str, data: bytes) -> None: ...

    def keep_bytes(self, name: str) -> None:
        """Keep the bytes under ``name`` though this build does not read them."""
        ...


_PIECES_FORMAT = 1
_FRAGMENT_SAFE_ROOT = frozenset({
    "$schema", "$id", "$defs", "definitions", "$comment", "title", "description",
    "type", "properties", "required", "additionalProperties", "default", "examples",
})
"""Root keywords under which ``{key: value}`` validates as the key does in the document
(anything else may relate top-level keys to each other)."""


def pointer_target(document: Any, ref: str) -> Any:
    """What the local pointer ``ref`` (``#`` or ``#/...``, percent-encoded as jsonschema-rs
    reads it) names in ``document``; ``LookupError`` when it names nothing."""
    target = document
    parts = unquote(ref[1:]).split("/")[1:] if ref != "#" else []
    for part in parts:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(target, dict) and part in target:
            target = target[part]
        elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
            target = target[int(part)]
        else:
            raise LookupError(ref)
    return target


def fragment_safe(document: dict[str, Any]) -> bool:
    """Whether validating each top-level key alone is validating the document."""
    return all(_fragment_keyword(k) for k in document)


def fragment_schema(document: dict[str, Any]) -> dict[str, Any]:
    """The root without ``required`` and without the keywords that relate top-level
    keys to each other: what ``{key: value}`` must satisfy for the document to be valid.
    Of a ``fragment_safe`` root, validating every key against it is validating the
    document (but for ``required``); of any other, it finds only real violations, and
    the whole document is validated too (``Validator.check_document``)."""
    return {k: v for k, v in document.items() if k != "required" and _fragment_keyword(k)}


def _fragment_keyword(keyword: str) -> bool:
    return keyword in _FRAGMENT_SAFE_ROOT or keyword.startswith("x-")


class Schema:
    """A JSON Schema file: path, digest and size at once (and its bytes, unless it is
    known by its digest: ``of_file``); the bytes, the parsed and checked ``document``
    and the ``index`` on first use (errors are raised, located, then).

    A *piece* (``piece(key)``) is a Schema too, whose ``raw`` is its own document and
    whose ``file_raw`` is the file's (errors are located in the file)."""

    def __init__(self, path: str, raw: bytes, *, origin: Schema | None = None,
                 document: dict[str, Any] | None = None, digest: str | None = None) -> None:
        self.path = path
        self._raw: bytes | None = raw
        self._read: Callable[[], bytes] | None = None
        self.origin = origin
        # ``digest``: the SHA-256 of ``raw`` its caller has just computed (40 MB of pieces
        # hashed once, not twice, on a cold build's way).
        self.digest = digest or hashlib.sha256(raw).hexdigest()
        self.size = len(raw)
        self._document: dict[str, Any] | None = document
        self.index = SchemaIndex(self)
        self._store: PieceStore | None = None
        self._piece_digests: dict[str, str] | None = None
        self._pieces: dict[str, Schema] = {}

    @classmethod
    def of_file(cls, path: str, digest: str, size: int, read: Callable[[], bytes]
                ) -> Schema:
        """A schema file known by its digest and size; its bytes are read (and checked
        against the digest) only when something needs them. A rebuild that finds the
        split and the summaries in the cache never reads them."""
        schema = cls(path, b"")
        schema._raw, schema._read = None, read
        schema.digest, schema.size = digest, size
        return schema

    @property
    def raw(self) -> bytes:
        if self._raw is None:
            assert self._read is not None
            raw = self._read()
            # The bytes must be the ones the digest names: the cache is keyed by it.
            if len(raw) != self.size or hashlib.sha256(raw).hexdigest() != self.digest:
                raise BuildError([Diagnostic(self.path, None, None,
                                             "the file changed while magcfg was reading "
                                             "it; build again", code="schema")])
            self._raw = raw
        return self._raw

    @property
    def file_raw(self) -> bytes:
        """The bytes of the schema file (where errors are located)."""
        return self.origin.raw if self.origin is not None else self.raw

    @property
    def document(self) -> dict[str, Any]:
        if self._document is None:
            document = (_parse_piece(self.raw) if self.origin is not None else None)
            if document is None:
                document = _parse_schema(self.path, self.raw)
            if self.origin is None:  # a piece comes from a file that passed the check
                check_dialect(self.path, self.raw, document)
            self._document = document
        return self._document

    # -- pieces -----------------------------------------------------------------------

    def use_store(self, store: PieceStore) -> None:
        """Split this schema into pieces kept in ``store`` (on first use)."""
        self._store = store

    def piece_digests(self) -> dict[str, str]:
        """Top-level key -> digest of its piece; empty when the schema is not split (no
        store given, or a root that relates its keys). Parses and checks the file once
        per digest: later builds find the split in the store."""
        if self._piece_digests is None:
            self._piece_digests = self._split() if self._store is not None else {}
        return self._piece_digests

    def piece_digest(self, key: str) -> str:
        """The digest of ``piece(key)``, without reading the piece."""
        return self.piece_digests().get(key, self.digest)

    def pieces(self) -> list[Schema]:
        """Every piece, in key order (none when not split)."""
        return [self.piece(key) for key in self.piece_digests()]

    def piece(self, key: str) -> Schema:
        """The piece of the top-level ``key``; this schema itself when it is not split
        or does not list ``key`` (an unknown key is judged by the whole root)."""
        if self.origin is not None:
            return self
        digest = self.piece_digests().get(key)
        if digest is None:
            return self
        found = self._pieces.get(key)
        if found is None:
            assert self._store is not None
            raw = self._store.get_bytes(f"schema-piece:{digest}")
            if raw is None or hashlib.sha256(raw).hexdigest() != digest:
                # Lost from the store (compacted away): split again from the file.
                self._store.put(self._split_name, None)
                self._piece_digests = self._split(force=True)
                return self.piece(key)
            found = self._pieces[key] = Schema(self.path, raw, origin=self, digest=digest)
        return found

    def split_stored(self) -> bool:
        """Whether the store holds this file's split already (``piece_digests`` will
        read it rather than parse the file)."""
        return self._store is not None and self._store.get(self._split_name) is not None

    @property
    def _split_name(self) -> str:
        return f"schema-pieces:{self.digest}"

    def release(self, key: str) -> None:
        """Forget the piece of ``key`` (its document and index); ``piece(key)`` reads it
        again from the store."""
        piece = self._pieces.pop(key, None)
        if piece is not None:
            # A schema and its index refer to each other, so the piece would wait for the
            # cyclic collector, which a build pauses: let go of what is large now (a
            # holder of the piece parses and indexes it again if it asks).
            piece._document = None
            piece.index = SchemaIndex(piece)

    def _split(self, force: bool = False) -> dict[str, str]:
        assert self._store is not None
        name = self._split_name
        found = None if force else self._store.get(name)
        if isinstance(found, dict) and found.get("format") == _PIECES_FORMAT:
            stored: dict[str, str] = dict(found["keys"])
            for digest in stored.values():
                self._store.keep_bytes(f"schema-piece:{digest}")
            return stored
        document = self.document
        keys: dict[str, str] = {}
        properties = document.get("properties")
        rest = {k: v for k, v in document.items() if k != "properties"}
        # Every piece repeats the root's other members (shared $defs, say): split only
        # when all pieces together are at most about twice the file, or a schema of
        # 200 keys sharing definitions would compile them 200 times.
        if (fragment_safe(document) and isinstance(properties, dict)
                and len(_dumps(rest)) * len(properties) <= self.size
                and not _refers_into_root(self.raw, document)):
            for key, sub in properties.items():
                piece_document = {**rest, "properties": {key: sub}}
                raw = _dumps(piece_document)
                digest = hashlib.sha256(raw).hexdigest()
                self._store.put_bytes(f"schema-piece:{digest}", raw)
                keys[key] = digest
                self._pieces[key] = Schema(self.path, raw, origin=self,
                                           document=piece_document, digest=digest)
        self._store.put(name, {"format": _PIECES_FORMAT, "keys": keys})
        return keys


def _dumps(document: dict[str, Any]) -> bytes:
    """A piece's bytes: compact JSON (orjson; json for what orjson cannot write, such
    as integers beyond 64 bits)."""
    import orjson

    try:
        return orjson.dumps(document)
    except TypeError:
        import json

        return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


_REF_LITERAL = re.compile(rb'"\$ref"\s*:\s*"([^"\\]*)"')


def _refers_into_root(raw: bytes, document: dict[str, Any]) -> bool:
    """Whether a ``$ref`` names the root or something under ``properties``: a piece
    keeps one key of ``properties``, so such a pointer would change meaning there.

    Read from the text when every ``$ref`` is written plainly there (no ``\\u``
    escape anywhere, every value without escapes): a walk of a 30 MB document costs
    about a second."""
    # Most schemas hold no backslash at all: one memchr, not a search for "\u".
    if raw.find(b"\\") < 0 or b"\\u" not in raw:
        plain = []
        at = raw.find(b'"$ref"')
        while at >= 0:  # each $ref read where it is found, not by a regex over the file
            found = _REF_LITERAL.match(raw, at)
            if found is None:
                break
            plain.append(found.group(1))
            at = raw.find(b'"$ref"', found.end())
        else:
            return any(_into_root(ref.decode("utf-8", "replace")) for ref in plain)
    stack: list[Any] = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and _into_root(ref):
                return True
            stack.extend(v for v in node.values() if isinstance(v, (dict, list)))
        elif isinstance(node, list):
            stack.extend(v for v in node if isinstance(v, (dict, list)))
    return False


def _into_root(ref: str) -> bool:
    target = unquote(ref)
    return target in ("#", "#/") or target.startswith("#/properties")


def load_schema(path: str, raw: bytes) -> Schema:
    """A schema file, parsed lazily (``Schema.document`` raises located errors)."""
    return Schema(path, raw)


def _parse_piece(raw: bytes) -> dict[str, Any] | None:
    """A piece's document by orjson (about 3x faster than ``json`` with the duplicate
    check, which a piece cannot fail: ``_dumps`` wrote it from a dict); ``None`` for
    what orjson does not read as ``json`` would (integers beyond 64 bits, NaN), which
    ``_parse_schema`` then reads."""
    import orjson

    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return document if isinstance(document, dict) else None


def _parse_schema(path: str, raw: bytes) -> dict[str, Any]:
    # orjson's document where it is json's (the 2.1 MB schema of the realistic medium
    # benchmark: 0.69x the instructions of json with the checks below, CPU 13.6 ms
    # against 14.7); else json's, and each error worded.
    agreed, found = read_as_json_reads(raw)
    if agreed and isinstance(found, dict):
        return found
    # ``json`` reads NaN, Infinity and numbers beyond a double (as inf), which are not
    # JSON: each becomes a marker, refused below where it stands.
    not_finite: list[_NotFinite] = []

    def constant(token: str) -> _NotFinite:
        not_finite.append(_NotFinite(token))
        return not_finite[-1]

    def number(token: str) -> float | _NotFinite:
        value = float(token)
        return value if math.isfinite(value) else constant(token)

    try:
        text = raw.decode("utf-8")
        document = json.loads(text, object_pairs_hook=_no_duplicates,
                              parse_constant=constant, parse_float=number)
    except UnicodeDecodeError as exc:
        raise BuildError([Diagnostic(path, raw[: exc.start].count(b"\n") + 1, None,
                                     "invalid UTF-8", code="schema")]) from None
    except json.JSONDecodeError as exc:
        raise BuildError([Diagnostic(path, exc.lineno, None, f"invalid JSON: {exc.msg}",
                                     code="schema")]) from None
    except _DuplicateKey as exc:
        raise BuildError([Diagnostic(path, None, exc.key, f"duplicate key {exc.key!r}",
                                     code="schema")]) from None
    except RecursionError:  # far deeper than MAX_DEPTH: json's own limit
        raise BuildError([Diagnostic(path, nesting_line(text, MAX_DEPTH), None, TOO_DEEP,
                                     code="schema")]) from None
    if not isinstance(document, dict):
        raise BuildError([Diagnostic(path, 1, None, "a schema must be a JSON object",
                                     code="schema")])
    if not_finite:
        first = not_finite[0]
        raise located(path, raw, [(_pointer_of(document, first) or [],
                                   f"invalid JSON: {first.token} is not a finite number")])
    return document


class _NotFinite:
    """Where ``json`` read a number that JSON does not have (``_parse_schema``)."""

    __slots__ = ("token",)

    def __init__(self, token: str) -> None:
        self.token = token


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) < len(pairs):
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                raise _DuplicateKey(k)
            seen.add(k)
    return out


def _pointer_of(document: Any, target: Any) -> list[str | int] | None:
    """The JSON pointer of the object ``target`` (by identity) inside ``document``."""
    stack: list[tuple[Any, list[str | int]]] = [(document, [])]
    while stack:
        node, pointer = stack.pop()
        if node is target:
            return pointer
        if isinstance(node, dict):
            stack.extend((v, [*pointer, k]) for k, v in node.items()
                         if isinstance(v, (dict, list)) or v is target)
        elif isinstance(node, list):
            stack.extend((v, [*pointer, i]) for i, v in enumerate(node)
                         if isinstance(v, (dict, list)) or v is target)
    return None
