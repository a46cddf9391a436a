"""``magcfg diff``: the semantic difference between two compiled configs.

Two environments of the working tree (``diff A B``), or one environment at a git ref
against the working tree (``diff --env E --against REF``; the ref side is built from git
objects by ``GitSource``, the working tree is never touched).

The comparison is over leaves: maps are walked, while scalars and lists are compared
whole (lists replace when layers merge, so a list is one value to a reader). Values of
different JSON types never compare equal (``1``, ``1.0`` and ``true`` differ). Every
change carries its reload policy and where each side's value was set (file:line and
layer). Values are shown through the project's one ``Redactor`` (``Redactor.shown``): a
secret key shows its reference (mount, path, key: where the value lives, as
``config.json`` holds it), anything else a secret key holds shows as ``<redacted>``.

Engine: a flatten-and-compare written for this shape of data. DeepDiff gives the same
changes (``compare_deepdiff``, used by the tests as an oracle and by
``benchmarks/diff_bench.py``) but is about 30x slower on large configs, so the command
uses the flat engine.

JSON output (``format_json``), format 1::

    {"format": 1,
     "old": {"label": ..., "environment": ..., "ref": ..., "commit": ...},
     "new": {...},
     "identical": bool,
     "summary": {"added": n, "removed": n, "changed": n, "restart": n},
     "added": [entry], "removed": [entry], "changed": [entry]}

    entry = {"key": "magds.pool.max_size", "old": value|null, "new": value|null,
             "secret": bool, "reload": "hot"|"restart",
             "old_source": {"file", "line", "layer"}|null, "new_source": ...|null}

``old`` is null in ``added`` entries and ``new`` is null in ``removed`` ones; a secret
key's reference is shown as written, any other secret value is the string
``"<redacted>"``. Lists are sorted by key path; keys within objects sorted.
"""

from __future__ import annotations

import functools
import itertools
import json
import marshal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, NamedTuple, TypeVar

from ..compiler import Compiler
from ..errors import BuildError, Diagnostic, md_cell, md_code, printable
from ..pipeline.cache import BuildCache
from ..pipeline.context import CompileContext
from ..pipeline.emit import json_bytes
from ..pipeline.load import ParsedFile
from ..pipeline.merge import LayerStack
from ..pipeline.merge import _lookup as lookup
from ..project import Project
from ..schema.index import PolicyIndex, SchemaIndex
from ..secrets.redaction import REDACTED, Redactor
from ..syntax.keylines import Indexed, KeyLines
from ..workers import available_jobs, run_shares, weighted_runs

if TYPE_CHECKING:
    from ..pipeline.gitsource import GitSource

Kind = Literal["added", "removed", "changed"]
KeyPath = tuple[str, ...]
S = TypeVar("S")
R = TypeVar("R")
MISSING: Any = object()
"""What ``value_at`` returns for a key the document does not have."""
FORMATS = ("text", "json", "markdown")


# ------------------------------------------------------------------ comparison engines


def flatten(doc: Any, prefix: KeyPath = ()) -> dict[KeyPath, Any]:
    """Every leaf of ``doc`` by key path. Leaves are scalars, lists and empty maps."""
    out: dict[KeyPath, Any] = {}
    stack: list[tuple[KeyPath, Any]] = [(prefix, doc)]
    while stack:
        path, node = stack.pop()
        if type(node) is dict and (node or not path):
            for k, v in node.items():
                stack.append(((*path, k), v))
        else:
            out[path] = node
    return out


def same(a: Any, b: Any) -> bool:
    """JSON equality: like ``==`` but ``1``, ``1.0`` and ``True`` are all different."""
    ta = type(a)
    if ta is not type(b):
        return False
    if ta is dict:
        return a.keys() == b.keys() and all(same(v, b[k]) for k, v in a.items())
    if ta is list:
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


RawChange = tuple[Kind, KeyPath, Any, Any]
"""(kind, key path, old value or MISSING, new value or MISSING), values unredacted."""


def compare(old: dict[str, Any], new: dict[str, Any]) -> list[RawChange]:
    """The leaf changes from ``old`` to ``new``, sorted by key path (the flat engine).

    Both documents are walked together, so a key path is made only for a change (most
    of a large diff's million leaves are equal); where one side has a map and the other
    a leaf, both sides are flattened there and compared leaf by leaf."""
    out: list[RawChange] = []
    _compare_maps(old, new, (), out)
    out.sort(key=lambda c: c[1])
    return out


def _compare_maps(a: dict[str, Any], b: dict[str, Any], path: KeyPath,
                  out: list[RawChange]) -> None:
    for k, va in a.items():
        vb = b.get(k, MISSING)
        if vb is MISSING:
            out.extend(("removed", leaf, v, MISSING) for leaf, v in flatten(va, (*path, k)).items())
            continue
        ta = type(va)
        if ta is type(vb):
            if ta is dict:
                if va and vb:
                    _compare_maps(va, vb, (*path, k), out)
                elif va or vb:
                    _compare_leaves(flatten(va, (*path, k)), flatten(vb, (*path, k)), out)
            elif ta is list:
                if not same(va, vb):
                    out.append(("changed", (*path, k), va, vb))
            elif va != vb:
                out.append(("changed", (*path, k), va, vb))
        elif (ta is dict and va) or (type(vb) is dict and vb):
            _compare_leaves(flatten(va, (*path, k)), flatten(vb, (*path, k)), out)
        else:
            out.append(("changed", (*path, k), va, vb))
    for k, vb in b.items():
        if k not in a:
            out.extend(("added", leaf, MISSING, v) for leaf, v in flatten(vb, (*path, k)).items())


def _compare_leaves(a: dict[KeyPath, Any], b: dict[KeyPath, Any], out: list[RawChange]) -> None:
    for path, va in a.items():
        vb = b.get(path, MISSING)
        if vb is MISSING:
            out.append(("removed", path, va, MISSING))
        elif not same(va, vb):
            out.append(("changed", path, va, vb))
    for path, vb in b.items():
        if path not in a:
            out.append(("added", path, MISSING, vb))


def compare_deepdiff(old: dict[str, Any], new: dict[str, Any]) -> list[RawChange]:
    """The same result as ``compare``, computed with DeepDiff (the reference engine)."""
    from deepdiff import DeepDiff

    # zip_ordered_iterables: by default DeepDiff aligns list items by hash, and
    # hash(True) == hash(1), so [true] -> [1] would go unreported.
    tree = DeepDiff(old, new, view="tree", threshold_to_diff_deeper=0,
                    zip_ordered_iterables=True)
    paths: set[KeyPath] = set()
    for items in tree.values():
        for item in items:
            steps = item.path(output_format="list")
            keypath: list[str] = []
            for step in steps:
                if not isinstance(step, str):  # a list index: the whole list is the leaf
                    break
                keypath.append(step)
            paths.add(tuple(keypath))
    # An empty map is a leaf: a key added into it also removes that leaf.
    for path in list(paths):
        for n in range(1, len(path)):
            if value_at(old, path[:n]) == {} or value_at(new, path[:n]) == {}:
                paths.add(path[:n])
    out: list[RawChange] = []
    for path in paths:
        va, vb = value_at(old, path), value_at(new, path)
        # A map added, removed or replaced by a scalar counts leaf by leaf.
        fa = flatten(va, path) if type(va) is dict and va else {path: va}
        fb = flatten(vb, path) if type(vb) is dict and vb else {path: vb}
        for leaf in fa.keys() | fb.keys():
            x, y = fa.get(leaf, MISSING), fb.get(leaf, MISSING)
            if x is MISSING and y is MISSING:
                continue
            if x is MISSING:
                out.append(("added", leaf, x, y))
            elif y is MISSING:
                out.append(("removed", leaf, x, y))
            elif not same(x, y):
                out.append(("changed", leaf, x, y))
    unique = {c[1]: c for c in out}
    return sorted(unique.values(), key=lambda c: c[1])


def value_at(doc: Any, path: KeyPath) -> Any:
    """The value at ``path`` in nested maps, or ``MISSING``."""
    node = doc
    for part in path:
        if type(node) is not dict or part not in node:
            return MISSING
        node = node[part]
    return node


# ------------------------------------------------------------------ described changes


# A diff shows the same few hundred files' names ~10^5 times.
_printable_file = functools.lru_cache(maxsize=4096)(printable)


class Origin(NamedTuple):
    """Where a value was set. (A named tuple: a large diff makes ~10^5 of them, and a
    tuple is made 3x faster than a frozen dataclass.)"""

    file: str
    line: int | None
    layer: str

    def where(self, name: Callable[[str], str]) -> str:
        """``file:line`` for people, the file named by ``name`` (``project.FromTop.name``,
        or ``str`` for its name in the project), a control character in it escaped."""
        file = _printable_file(name(self.file))
        return file if self.line is None else f"{file}:{self.line}"

    def as_json(self, name: Callable[[str], str]) -> dict[str, Any]:
        return {"file": name(self.file), "layer": self.layer, "line": self.line}


class Change(NamedTuple):
    """One changed leaf, with values already redacted for display (a named tuple, as
    ``Origin``)."""

    kind: Kind
    key: str
    keypath: KeyPath
    old: Any
    new: Any
    secret: bool
    reload: str
    old_source: Origin | None
    new_source: Origin | None

    @property
    def restart(self) -> bool:
        return self.reload == "restart"

    def as_json(self, name: Callable[[str], str]) -> dict[str, Any]:
        return {
            "key": self.key,
            "new": None if self.kind == "removed" else self.new,
            "new_source": self.new_source.as_json(name) if self.new_source else None,
            "old": None if self.kind == "added" else self.old,
            "old_source": self.old_source.as_json(name) if self.old_source else None,
            "reload": self.reload,
            "secret": self.secret,
        }


@dataclass(frozen=True)
class Side:
    """One side of a diff: an environment, optionally at a git ref."""

    environment: str
    ref: str | None = None
    commit: str | None = None
    name: str | None = None

    @property
    def label(self) -> str:
        if self.name is not None:
            return self.name
        if self.ref is None:
            return self.environment
        return f"{self.environment}@{self.ref}"

    def as_json(self) -> dict[str, Any]:
        return {"commit": self.commit, "environment": self.environment, "label": self.label,
                "ref": self.ref}


@dataclass(frozen=True)
class ConfigDiff:
    """The changes from ``old`` to ``new``, sorted by key path."""

    old: Side
    new: Side
    changes: tuple[Change, ...]
    warnings: tuple[Diagnostic, ...] = ()
    """About the ref side's layer files (``file@REF``): the literal secrets they commit,
    which its build would refuse and the comparison reads (``diff`` and ``report`` print
    them on stderr, the value never shown)."""

    @property
    def identical(self) -> bool:
        return not self.changes

    def of_kind(self, kind: Kind) -> list[Change]:
        return [c for c in self.changes if c.kind == kind]

    def summary(self) -> dict[str, int]:
        return change_counts(self.changes)


def change_counts(changes: Sequence[Change]) -> dict[str, int]:
    """How many of ``changes`` are added, changed and removed, and take a restart."""
    counts = {"added": 0, "changed": 0, "removed": 0, "restart": 0}
    for c in changes:
        counts[c.kind] += 1
        if c.reload == "restart":
            counts["restart"] += 1
    return counts


KEY_LINES = "key-lines-1-"
"""Prefix of the build cache's key-line entries (the number: the index's format)."""


class StoredKeyLines:
    """Files' key-line indexes in the build cache, by file content (``KeyLines``'s
    store): a diff after a diff indexes only the files that changed."""

    def __init__(self, cache: BuildCache) -> None:
        self.cache = cache

    def get(self, digest: str) -> Indexed | None:
        found = self.cache.fragment(KEY_LINES + digest)
        return found if isinstance(found, tuple) else None

    def put(self, digest: str, indexed: Indexed) -> None:
        self.cache.put_fragment(KEY_LINES + digest, indexed)


class Origins:
    """Where the value in effect at a key path was set in one stack: the last file that
    sets it (the same answer as ``LayerStack.provenance(...)[-1]``), looking only at the
    files that set the top-level key and indexing each file's key lines once."""

    def __init__(self, stack: LayerStack, lines: KeyLines | None = None) -> None:
        self.stack = stack
        self.lines = lines or KeyLines(stack.source)
        # Per top-level key: (layer, file, its key lines or None) of the files setting it.
        self._by_top: dict[str, list[tuple[str, ParsedFile, dict[KeyPath, int] | None]]] = {}

    def of(self, keypath: KeyPath) -> Origin | None:
        files = self._by_top.get(keypath[0])
        if files is None:
            files = self._by_top[keypath[0]] = [
                (layer.name, f, self._keys(f)) for layer in self.stack.layers
                for f in layer.files if keypath[0] in f.keys]
        last: tuple[ParsedFile, int, str] | None = None
        line: int | None = None
        for layer_name, f, keys in files:
            if keys is not None:
                # A file without !unset/!replace and key prefix sets the key path
                # exactly when it writes it: its line index answers, and its values
                # need not be parsed.
                written = keys.get(keypath)
                if written is not None:
                    last, line = (f, len(keypath), layer_name), written
                continue
            found = lookup(f.data, keypath)
            if found is not None:
                last, line = (f, found[0], layer_name), None
        if last is None:
            return None
        file, depth, layer_name = last
        if line is None:
            line = self.lines.line(file.path, file.file_keypath(keypath[:depth]))
        return Origin(file.path, line, layer_name)

    def _keys(self, f: ParsedFile) -> dict[KeyPath, int] | None:
        """The key lines of ``f`` when they tell where it sets a key path (no markers, no
        key prefix, indexed), else None (its data is looked up)."""
        if f.has_markers or f.prefix:
            return None
        return self.lines.indexed(f.path)


_NESTED = (dict, list)

MIN_PARALLEL_CHANGES = 10_000
"""Fewer changes are described in one process: a fork would cost more than it saves."""

MIN_PARALLEL_BYTES = 4 << 20
"""Two environments' configs smaller than this together are compared in one process."""


def describe(raw: list[RawChange], old_stack: LayerStack, new_stack: LayerStack,
             redactor: Redactor, index: SchemaIndex | PolicyIndex | None,
             jobs: int | None = None, cache: BuildCache | None = None) -> tuple[Change, ...]:
    """Redact, locate and classify raw changes (sorted by key path).

    Many changes are described in ``jobs`` processes (the default is
    ``available_jobs``), each taking a run of whole top-level keys (``_described``)."""
    shares = _shares(raw, available_jobs(jobs)) if len(raw) >= MIN_PARALLEL_CHANGES else [raw]
    parts = _described(shares, lambda share: share, old_stack, new_stack, redactor, index,
                       cache, _CHANGES)
    return tuple(itertools.chain.from_iterable(parts))


class _Outcome(Generic[R]):
    """What a process makes of the changes it described (``of``), and how that crosses
    from a forked process (``dumps`` to marshal-able values, ``loads`` back)."""

    __slots__ = ("dumps", "loads", "of")

    def __init__(self, of: Callable[[tuple[Change, ...]], R], dumps: Callable[[R], Any],
                 loads: Callable[[Any], R]) -> None:
        self.of, self.dumps, self.loads = of, dumps, loads


_CHANGES: _Outcome[tuple[Change, ...]] = _Outcome(
    lambda changes: changes, lambda changes: [_packed(c) for c in changes],
    lambda packed: tuple(map(_unpacked, packed)))
"""The changes themselves."""


def _described(shares: Sequence[S], changes_of: Callable[[S], list[RawChange]],
               old_stack: LayerStack, new_stack: LayerStack, redactor: Redactor,
               index: SchemaIndex | PolicyIndex | None, cache: BuildCache | None,
               outcome: _Outcome[R]) -> list[R]:
    """``outcome`` of the described ``changes_of`` each share, in order: the first share
    here, each other in a forked process (``workers``). Shares are runs of
    whole top-level keys, so each layer file is read and indexed by one process only. A
    process that fails has its share described again here: the result is the same with
    any number. With ``cache``, files' key lines are looked up there first, and the ones
    computed are put there (the other processes' too); the caller flushes it."""
    store = StoredKeyLines(cache) if cache is not None else None

    def here(share: S) -> R:
        return outcome.of(_describe(changes_of(share), old_stack, new_stack, redactor,
                                    index, store))

    before = cache.pending_names() if cache is not None else frozenset()

    def dumps(result: R) -> bytes:
        return marshal.dumps((outcome.dumps(result),
                              cache.new_entries(before) if cache is not None else {}))

    def loads(data: bytearray) -> R:
        dumped, entries = marshal.loads(data)
        if cache is not None:
            cache.adopt(entries)
        return outcome.loads(dumped)

    return run_shares(shares, here, dumps, loads)


def _shares(raw: list[RawChange], jobs: int) -> list[list[RawChange]]:
    """``raw`` in up to ``jobs`` runs of about as many changes, cut only where the
    top-level key changes."""
    shares: list[list[RawChange]] = []
    start = 0
    for n in range(jobs, 0, -1):
        end = start + (len(raw) - start) // n
        while 0 < end < len(raw) and raw[end][1][:1] == raw[end - 1][1][:1]:
            end += 1
        if end > start:
            shares.append(raw[start:end])
        start = end
    return shares


def _packed(c: Change) -> tuple[Any, ...]:
    """A change as marshal-able values (its values are JSON values, redacted)."""
    return (c.kind, c.key, c.keypath, c.old, c.new, c.secret, c.reload,
            *((o.file, o.line, o.layer) if o is not None else None
              for o in (c.old_source, c.new_source)))


def _unpacked(t: tuple[Any, ...]) -> Change:
    kind, key, keypath, old, new, secret, reload, old_source, new_source = t
    # Positional: a named tuple made with keywords costs twice as much, 10^5 times.
    return Change(kind, key, keypath, old, new, secret, reload,
                  Origin(*old_source) if old_source is not None else None,
                  Origin(*new_source) if new_source is not None else None)


def _describe(raw: list[RawChange], old_stack: LayerStack, new_stack: LayerStack,
              redactor: Redactor, index: SchemaIndex | PolicyIndex | None,
              store: StoredKeyLines | None = None) -> tuple[Change, ...]:
    old_origins = Origins(old_stack, KeyLines(old_stack.source, store))
    # The same files (both environments of one tree) are indexed once.
    new_origins = Origins(new_stack, old_origins.lines if new_stack.source is old_stack.source
                          else KeyLines(new_stack.source, store))
    out = []
    for kind, keypath, va, vb in raw:
        secret = redactor.is_secret(keypath)
        if secret or type(va) in _NESTED or type(vb) in _NESTED:
            # A secret's reference is shown (where the value lives, never the value).
            shown_old, secret_old = ((None, False) if va is MISSING
                                     else redactor.shown_secret(keypath, va))
            shown_new, secret_new = ((None, False) if vb is MISSING
                                     else redactor.shown_secret(keypath, vb))
            secret = secret or secret_old or secret_new
        else:
            # A scalar under a key that is not secret is shown as it is and holds no
            # secret (what ``shown_secret`` answers).
            shown_old = None if va is MISSING else va
            shown_new = None if vb is MISSING else vb
        out.append(Change(  # positional, as in ``_unpacked``
            kind, ".".join(keypath), keypath, shown_old, shown_new, secret,
            index.reload_policy(keypath) if index is not None else "restart",
            None if va is MISSING else old_origins.of(keypath),
            None if vb is MISSING else new_origins.of(keypath)))
    return tuple(out)


# ------------------------------------------------------------------ building both sides


def _compile(compiler: Compiler, env: str, stack: LayerStack
             ) -> CompileContext:
    return _compiled(compiler, env, stack)[0]


def _compiled(compiler: Compiler, env: str, stack: LayerStack
              ) -> tuple[CompileContext, list[Diagnostic]]:
    """The compiled ``env`` and its warnings; ``BuildError`` with its errors."""
    artifact, diagnostics = compiler.compile(env, stack, None)
    if artifact is None:
        raise BuildError([d for d in diagnostics if d.severity == "error"])
    assert artifact.context is not None
    return artifact.context, artifact.warnings


def diff_environments(project: Project, old_env: str, new_env: str,
                      jobs: int | None = None) -> ConfigDiff:
    """``old_env`` against ``new_env``, both as in the working tree. Large configs are
    compared and described in ``jobs`` processes (the default is ``available_jobs``),
    each parsing, comparing and describing a run of top-level keys of both."""
    parts = _compared(project, old_env, new_env, jobs, _CHANGES)
    return ConfigDiff(Side(old_env), Side(new_env), tuple(itertools.chain.from_iterable(parts)))


def diff_environments_text(project: Project, old_env: str, new_env: str,
                           name: Callable[[str], str], color: bool = False,
                           jobs: int | None = None) -> tuple[bool, str]:
    """Whether the two environments are identical, and
    ``format_text(diff_environments(project, old_env, new_env), name, color)``. Each
    process formats the changes it described: no change crosses between processes."""
    old, new = Side(old_env).label, Side(new_env).label
    body = _text_body(old, new, color, name)
    parts = _compared(project, old_env, new_env, jobs, _Outcome(
        lambda changes: (change_counts(changes), body(changes)), _as_is, _as_is))
    counts = change_counts(())
    for part_counts, _ in parts:
        for kind, n in part_counts.items():
            counts[kind] += n
    if not (counts["added"] or counts["changed"] or counts["removed"]):
        return True, _identical_text(old, new)
    return False, "".join([_text_head(old, new, counts, color), *(part[1] for part in parts)])


def _as_is(value: R) -> R:
    return value


def _compared(project: Project, old_env: str, new_env: str, jobs: int | None,
              outcome: _Outcome[R]) -> list[R]:
    """``outcome`` of each process's run of changes from ``old_env`` to ``new_env``."""
    project.check_envs([old_env, new_env])
    compiler = Compiler(project)
    stacks = compiler.load_stacks([old_env, new_env])
    old = _compile(compiler, old_env, stacks[old_env])
    new = _compile(compiler, new_env, stacks[new_env])
    index = compiler.policies()
    keys = sorted(old.fragments.keys() | new.fragments.keys())

    def weight(key: str) -> int:
        return sum(len(side.fragments[key][1]) for side in (old, new) if key in side.fragments)

    big = len(old.config_json) + len(new.config_json) >= MIN_PARALLEL_BYTES
    runs = weighted_runs(keys, weight, available_jobs(jobs)) if big else [keys]
    parts = _described(runs, lambda run: compare(old.tops(run), new.tops(run)),
                       stacks[old_env], stacks[new_env],
                       compiler.redactor(), index, compiler.cache,
                       outcome)
    compiler.cache.flush(only=KEY_LINES)
    return parts


def diff_against(project: Project, env: str, ref: str) -> ConfigDiff:
    """``env`` at git ``ref`` (from git objects) against ``env`` in the working tree."""
    (found,) = diffs_against(project, [env], ref).values()
    return found


def diffs_against(project: Project, envs: Sequence[str], ref: str,
                  compiler: Compiler | None = None) -> dict[str, ConfigDiff]:
    """Each of ``envs`` at git ``ref`` against itself in the working tree (compiled by
    ``compiler``, if given: its owner then flushes its cache). The ref side is read
    from git once for all of them: a file two environments share is read and parsed
    once on each side."""
    from ..pipeline.gitsource import ref_project_source

    chosen = project.check_envs(list(envs))
    with ref_project_source(project, ref) as (source, file):
        return _diffs_at(project, chosen, source, compiler, file)


def _diffs_at(project: Project, chosen: Sequence[str], source: GitSource,
              compiler: Compiler | None, file: str | None) -> dict[str, ConfigDiff]:
    """``diffs_against`` with the project at the ref read from ``file`` in ``source``'s
    directory (``project_file_at``), None where the ref holds none."""
    from ..pipeline.gitsource import project_at
    from ..secrets.rules import LITERAL_CODE

    ref = source.ref
    old_project = None
    if file is not None:
        with source.errors_at_ref():
            old_project = project_at(project, source, file)
    noted = _project_noted(project, source, file)
    # An environment the ref does not hold (all of them where it holds no project: the
    # pull request that starts it) is compared with an empty config, every key added,
    # as `build --since` takes it for a new environment.
    there = () if old_project is None else tuple(e for e in chosen
                                                 if e in old_project.environments)
    owned = compiler is None
    if compiler is None:
        compiler = Compiler(project)
    old_stacks = {env: LayerStack(env, (), source) for env in chosen}
    old_compiler: Compiler | None = None
    if old_project is not None:
        source.fence(old_project.fenced)
        # The ref side reads the build cache too: fragments are named by their inputs'
        # contents, so every file the ref shares with the working tree is a hit. Of what
        # it computes, nothing is written (the flush below keeps only key lines). It does
        # not judge what its layer files commit (its own build's to judge): that would
        # refuse the very change that mends the ref.
        old_compiler = Compiler(old_project, source, compiler.cache, judge_layers=False)
        if there:
            with source.errors_at_ref():
                old_stacks.update(old_compiler.load_stacks(there))
    stacks = compiler.load_stacks(chosen)
    index = compiler.policies()
    out: dict[str, ConfigDiff] = {}
    for env in chosen:
        old_doc: dict[str, Any] = {}
        warnings: list[Diagnostic] = []
        if old_compiler is not None and env in there:
            with source.errors_at_ref():
                old_side, warnings = _compiled(old_compiler, env, old_stacks[env])
            old_doc = old_side.config
        new_doc = _compile(compiler, env, stacks[env]).config
        # One process: the ref side reads its blobs through one git process, which a
        # forked process would share.
        changes = describe(compare(old_doc, new_doc), old_stacks[env], stacks[env],
                           compiler.redactor(), index, jobs=1, cache=compiler.cache)
        if source.name(".") != ".":  # named from the working project's directory
            changes = tuple(c._replace(old_source=c.old_source._replace(
                file=source.name(c.old_source.file))) if c.old_source is not None else c
                for c in changes)
        judged = [d for d in warnings if d.code == LITERAL_CODE]
        out[env] = ConfigDiff(Side(env, ref, source.hexsha), Side(env), changes,
                              (*noted, *source.at_ref(judged)))
    if owned:
        compiler.cache.flush(only=KEY_LINES)
    return out


def _project_noted(project: Project, source: GitSource, file: str | None
                   ) -> tuple[Diagnostic, ...]:
    """A warning naming the project file the ref side is built from where it is not the
    working tree's (renamed or moved since), or saying the ref holds none, every key
    added: a reviewer reads what the diff compares with. A name in its text is from the
    project's directory, as the working tree's names are."""
    ref = source.ref
    if file is None:
        return (Diagnostic(project.file, None, None, f"{ref} holds no project file here, "
                           "nor one this change moved or removed: each environment is "
                           "compared with an empty config, every key added",
                           severity="warning", code="against_no_project"),)
    if file == project.file and source.name(".") == ".":
        return ()
    return (Diagnostic(project.file, None, None, f"the project at {ref} is "
                       f"{printable(source.name(file))} (renamed or moved since): each environment "
                       "is compared with its build", severity="warning",
                       code="against_project_moved"),)


# ------------------------------------------------------------------ output


def show(value: Any) -> str:
    """A value as one line of text (JSON), with the redaction marker bare, safe for a
    terminal: JSON escapes control characters, ``printable`` the format characters it
    leaves (a bidi override as ``\\u202e``, which JSON reads back as the same)."""
    return printable(_json_text(value))


def _json_text(value: Any) -> str:
    if isinstance(value, str) and value == REDACTED:
        return REDACTED
    # The common scalars as ``json.dumps`` writes them, without making an encoder.
    t = type(value)
    if t is str:
        return _encode_string(value)
    if t is int:
        return int.__repr__(value)
    if t is bool:
        return "true" if value else "false"
    if value is None:
        return "null"
    if t is float and value - value == 0.0:  # finite: NaN and infinities are json's to spell
        return float.__repr__(value)
    if t is list:
        # A list of strings and integers (most lists in layers), as ``json.dumps`` writes it.
        items = [_encode_string(x) if type(x) is str else int.__repr__(x)
                 for x in value if type(x) is str or type(x) is int]
        if len(items) == len(value):
            return f"[{', '.join(items)}]"
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


_encode_string = json.encoder.encode_basestring


_STYLE = {"added": "+", "removed": "-", "changed": "~"}
_COLOUR = {"+": "\x1b[32m", "-": "\x1b[31m", "~": "\x1b[33m", "dim": "\x1b[2m",
           "bold": "\x1b[1m"}
_RESET = "\x1b[0m"


def summary_line(d: ConfigDiff) -> str:
    return _summary_text(d.summary())


def _summary_text(s: dict[str, int]) -> str:
    text = f"{s['changed']} changed, {s['added']} added, {s['removed']} removed"
    if s["restart"]:
        text += f" ({s['restart']} restart-only)"
    return text


def format_text(d: ConfigDiff, name: Callable[[str], str], color: bool = False) -> str:
    """Human-readable diff, files named by ``name`` (``Origin.where``); ANSI colours when
    ``color``."""
    old, new = d.old.label, d.new.label
    if d.identical:
        return _identical_text(old, new)
    return (_text_head(old, new, d.summary(), color)
            + _text_body(old, new, color, name)(d.changes))


def _identical_text(old: str, new: str) -> str:
    return f"{old} and {new} are identical\n"


def _text_head(old: str, new: str, counts: dict[str, int], color: bool) -> str:
    bold, close = (_COLOUR["bold"], _RESET) if color else ("", "")
    return f"{bold}--- {old}{close}\n{bold}+++ {new}{close}\n{_summary_text(counts)}\n\n"


def _text_body(old: str, new: str, color: bool, name: Callable[[str], str]
               ) -> Callable[[Sequence[Change]], str]:
    """The text of changes, one after the other (any run of them: a change's lines
    depend on it alone)."""
    width = max(len(old), len(new))
    # Each value line is `    ` + paint(sign, `sign label  value`) + paint(dim, where);
    # the parts around the value are the same for every change of a side.
    opened = {style: _COLOUR[style] if color else "" for style in _COLOUR}
    close = _RESET if color else ""
    old_head = f"    {opened['-']}- {old.ljust(width)}  "
    new_head = f"    {opened['+']}+ {new.ljust(width)}  "
    dim = close + opened["dim"]

    def where(origin: Origin | None) -> str:
        return f"  {origin.where(name)} ({origin.layer})" if origin is not None else ""

    def body(changes: Sequence[Change]) -> str:
        lines = []
        for c in changes:
            mark = _STYLE[c.kind]
            flag = ("  [restart, secret]" if c.secret else "  [restart]") if c.restart else (
                "  [secret]" if c.secret else "")
            lines.append(f"{opened[mark]}{mark} {printable(c.key)}{close}{flag}\n")
            if c.kind != "added":
                lines.append(f"{old_head}{show(c.old)}{dim}{where(c.old_source)}{close}\n")
            if c.kind != "removed":
                lines.append(f"{new_head}{show(c.new)}{dim}{where(c.new_source)}{close}\n")
        return "".join(lines)

    return body


def format_json(d: ConfigDiff, name: Callable[[str], str]) -> str:
    """The documented, stable JSON shape (module docstring), with the fields every
    command's report has (``command``; ``ok``: identical, exit 0; docs/cli.md); files
    named by ``name`` as the text names them."""
    doc = {
        "added": [c.as_json(name) for c in d.of_kind("added")],
        "changed": [c.as_json(name) for c in d.of_kind("changed")],
        "command": "diff",
        "format": 1,
        "identical": d.identical,
        "ok": d.identical,
        "new": d.new.as_json(),
        "old": d.old.as_json(),
        "removed": [c.as_json(name) for c in d.of_kind("removed")],
        "summary": d.summary(),
    }
    return json_bytes(doc).decode("utf-8")


def markdown_table(d: ConfigDiff, name: Callable[[str], str]) -> list[str]:
    """The change table (also used inside promotion PR bodies)."""
    lines = [f"| | Key | {md_cell(d.old.label)} | {md_cell(d.new.label)} | Reload "
             f"| Set in {md_cell(d.old.label)} | Set in {md_cell(d.new.label)} |",
             "|:-:|---|---|---|---|---|---|"]
    for c in d.changes:
        old = md_cell(show(c.old)) if c.kind != "added" else "—"
        new = md_cell(show(c.new)) if c.kind != "removed" else "—"
        reload = "**restart**" if c.restart else c.reload
        src_old = md_cell(c.old_source.where(name)) if c.old_source else ""
        src_new = md_cell(c.new_source.where(name)) if c.new_source else ""
        lines.append(f"| {_STYLE[c.kind]} | {md_cell(c.key)} | {old} | {new} | {reload} "
                     f"| {src_old} | {src_new} |")
    return lines


def format_markdown(d: ConfigDiff, name: Callable[[str], str]) -> str:
    """A PR comment: summary, restart-only warning, and the change table."""
    title = f"### Config diff: {md_code(d.old.label)} → {md_code(d.new.label)}"
    if d.identical:
        return f"{title}\n\nNo differences.\n"
    lines = [title, "", f"**{summary_line(d)}**", ""]
    restart = [c for c in d.changes if c.restart]
    if restart:
        lines += [f"> [!WARNING]\n> {len(restart)} change(s) take effect only after a restart: "
                  + ", ".join(md_code(c.key) for c in restart[:20])
                  + (", …" if len(restart) > 20 else ""), ""]
    lines += markdown_table(d, name)
    return "\n".join(lines) + "\n"
