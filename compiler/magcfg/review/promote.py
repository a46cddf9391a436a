"""``magcfg promote FROM TO``: copy the values FROM's per-environment layers set into
TO's layer files, as a reviewable git commit on a new branch with a PR body.

What is promoted: every leaf that a per-environment layer of FROM (a layer whose path
has ``{env}``) sets to a value that differs from TO's compiled value at that key,
optionally narrowed by ``--key`` globs. Keys TO sets on its own and FROM leaves to the
base are not touched: promotion copies, it never deletes them, unless a ``--key`` names
such a key exactly (no wildcard, not a parent): then TO's override is removed so that TO
inherits the shared value as FROM does. Never promoted:

* secret references (a key the redactor calls secret), unless ``--include-secrets``;
* keys on the project's allow-list of intended differences::

      promote:
        allow_differences:
          "*": [kernel.environment, magauth.jwt.issuer]   # differ in every environment
          production: [magds.pool]                        # differ for this one

  a key listed under FROM, TO or ``"*"`` is skipped (globs as in ``--key``);
* values written with ``!unset`` or ``!replace`` (reported: promote those by hand).

Lists with ``x-magcfg-merge-key`` are promoted item by item (``_KeyedList``): each item
FROM's per-environment layer mentions is made equal in TO with the fewest fields (a
``- !unset {name: X}`` item travels as such); TO's other items are kept and listed in
the plan's ``kept``.

Where a value goes: into TO's layer of the same name, in the file that already sets the
key, else the one that sets its nearest parent, else ``<top-level key>.yaml``. Edits are
minimal (``yamledit``). TO is compiled in memory from the edited texts before anything
is written: a promotion that would make TO invalid fails and changes nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import posixpath
import shlex
import stat
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..artifact import ATTESTATION, CONFIGMAP, SIGNATURE
from ..compiler import Compiler
from ..cue import CUE_SUFFIX
from ..errors import BuildError, Diagnostic, MagcfgError, UsageError, md_cell, md_code, printable
from ..keyglob import KeyGlobs, format_keypath
from ..pipeline.load import LAYER_SUFFIXES, FileSource, ParsedFile
from ..pipeline.merge import ABSENT, LayerStack
from ..project import MAX_KEY_NAME_BYTES, FromTop, LayerSpec, Project, project_option
from ..syntax.locate import locate
from ..syntax.strict_yaml import UNSET_TAG, is_unset_item, iter_leaves
from .diff import (
    MISSING,
    ConfigDiff,
    Origin,
    Side,
    compare,
    describe,
    markdown_table,
    same,
    show,
    value_at,
)

KeyPath = tuple[str, ...]


# ------------------------------------------------------------------ project settings


@dataclass(frozen=True)
class PromoteSettings:
    """The ``promote:`` section of the project file."""

    allow_differences: dict[str, KeyGlobs] = field(default_factory=dict)

    def intended(self, keypath: KeyPath, *envs: str) -> str | None:
        """The allow-list entry (``env: glob``) that covers ``keypath``, if any."""
        for scope in ("*", *envs):
            globs = self.allow_differences.get(scope)
            if globs is not None:
                hit = globs.matching(keypath)
                if hit:
                    return f"{scope}: {hit[0]}"
        return None


def promote_settings(project: Project) -> PromoteSettings:
    """The ``promote:`` section, which ``load_project`` has checked."""
    section = project.settings.get("promote") or {}
    allow = section.get("allow_differences") or {}
    return PromoteSettings({scope: KeyGlobs(globs) for scope, globs in allow.items()})


# ------------------------------------------------------------------ the plan


@dataclass(frozen=True)
class Edit:
    """One value to write into TO. ``value`` is the real value (may be a secret
    reference); ``shown`` is what output may display."""

    key: str
    keypath: KeyPath
    value: Any
    shown: Any
    secret: bool
    reload: str
    layer: str
    target: str
    new_file: bool
    source: Origin
    replaces: Any
    replaces_source: Origin | None
    removes: bool = False
    """True: the edit removes TO's override, so TO inherits FROM's value."""
    deletes: bool = False
    """True: the edit writes ``- !unset {KEY: NAME}``, deleting a keyed list's item."""


@dataclass(frozen=True)
class Skip:
    """A key promote leaves alone, and why. ``reason`` is a ``str.format`` template whose
    fields are ``names``: what the project wrote (a layer name, a merge key, an
    allow-list glob), which the PR body shows as code: a pull request writes them."""

    key: str
    reason: str
    names: tuple[str, ...] = ()
    file: bool = False
    """True: ``names[0]`` is a file of the project, named by ``name`` when shown."""

    def _names(self, name: Callable[[str], str]) -> tuple[str, ...]:
        return (name(self.names[0]), *self.names[1:]) if self.file else self.names

    def text(self, name: Callable[[str], str]) -> str:
        return self.reason.format(*self._names(name))

    def markdown(self, name: Callable[[str], str]) -> str:
        # Code needs no quotes of its own (``{!r}`` quotes a name in text).
        return self.reason.replace("{!r}", "{}").format(*map(md_code, self._names(name)))


@dataclass
class Plan:
    """What ``promote`` will do; computing it writes nothing."""

    from_env: str
    to_env: str
    edits: list[Edit]
    skipped: list[Skip]
    texts: dict[str, bytes]
    diff: ConfigDiff
    command: str = ""
    kept: list[str] = field(default_factory=list)
    """Keyed lists: TO's own items that FROM does not mention, left as they are."""

    @property
    def empty(self) -> bool:
        return not self.edits


class _EditedSource:
    """The working tree with some files replaced or added (for the in-memory check)."""

    def __init__(self, base: FileSource, edited: dict[str, bytes]) -> None:
        self.base = base
        self.edited = edited

    def read(self, path: str) -> bytes:
        data = self.edited.get(path)
        return data if data is not None else self.base.read(path)

    def list_layer(self, directory: str, suffixes: tuple[str, ...] = LAYER_SUFFIXES
                   ) -> tuple[list[str], list[Diagnostic]]:
        files, problems = self.base.list_layer(directory, suffixes)
        prefix = directory.strip("/") + "/"
        extra = [p for p in self.edited if p.startswith(prefix) and p not in files]
        return sorted([*files, *extra], key=lambda p: p.encode("utf-8")), problems


def _depth(data: Any, keypath: KeyPath) -> int:
    """How many leading segments of ``keypath`` ``data`` has (as nested maps/values)."""
    node, depth = data, 0
    for part in keypath:
        if type(node) is not dict or part not in node:
            break
        node = node[part]
        depth += 1
    return depth


def _target(spec: LayerSpec, stack: LayerStack, layer_index: int, keypath: KeyPath,
            pending: Container[str]) -> tuple[str, KeyPath, bool] | None:
    """(file, key path inside it, is new) in TO's layer for ``keypath``: the file that
    sets most of it, else the file the layer maps it to (``LayerSpec.file_for``); None
    when the layer's pattern names no single file for it."""
    layer = stack.layers[layer_index]
    best: ParsedFile | None = None
    best_depth = 0
    for f in layer.files:
        if keypath[0] not in f.keys or keypath[:len(f.prefix)] != f.prefix:
            continue
        d = _depth(f.data, keypath)
        if d > best_depth:
            best, best_depth = f, d
    if best is not None:
        return best.path, best.file_keypath(keypath), False
    mapped = spec.file_for(stack.env, keypath)
    if mapped is None:
        return None
    named, inside = mapped
    existing = {f.path for f in layer.files}
    return named, inside, named not in existing and named not in pending


def _in_cue(key: str, path: str) -> Skip | None:
    """The skip of a key whose edit would fall on ``path`` when that is a CUE layer
    file: promote edits YAML only (magcfg writes no CUE, docs/cue.md), so the value is
    left for a hand edit rather than a YAML parse of CUE text."""
    if not path.endswith(CUE_SUFFIX):
        return None
    return Skip(key, "set in {}, a CUE file: promote writes YAML only, so change it there "
                     "by hand", (path,), file=True)


def _not_promoted(settings: PromoteSettings, keypath: KeyPath, withheld_secret: bool,
                  from_env: str, to_env: str) -> Skip | None:
    """Why a key FROM sets is not promoted (a secret not asked for, an intended
    difference), or None."""
    key = ".".join(keypath)
    if withheld_secret:
        return Skip(key, "secret reference (use --include-secrets to promote references)")
    intended = settings.intended(keypath, from_env, to_env)
    if intended is not None:
        return Skip(key, "intended difference (promote.allow_differences {})", (intended,))
    return None


def plan_promotion(project: Project, from_env: str, to_env: str, keys: list[str] | None = None,
                   include_secrets: bool = False) -> Plan:
    """Work out the promotion of ``from_env``'s per-environment values into ``to_env``,
    and check (in memory) that ``to_env`` still compiles. Writes nothing."""
    from .yamledit import REMOVE, set_values

    project.check_envs([from_env, to_env])
    if from_env == to_env:
        raise UsageError("FROM and TO are the same environment")
    settings = promote_settings(project)
    globs = KeyGlobs(keys or ())
    env_layers = [i for i, spec in enumerate(project.layers) if spec.per_environment]
    if not env_layers:
        raise UsageError("the project has no per-environment layer (a path with {env})")
    compiler = Compiler(project)
    stacks = compiler.load_stacks([from_env, to_env])
    to_before = _compiled(compiler, to_env, stacks[to_env])
    from_values = _compiled(compiler, from_env, stacks[from_env])
    redactor = compiler.redactor()
    index = compiler.policies()

    edits: list[Edit] = []
    skipped: list[Skip] = []
    kept: list[str] = []
    used: set[str] = set()
    per_file: dict[str, list[tuple[KeyPath, Any]]] = {}
    new_files: set[str] = set()
    for i in env_layers:
        from_layer = stacks[from_env].layers[i]
        for f in _files(from_layer.files, globs):
            for keypath, value in iter_leaves(f.data):
                if globs:
                    hit = globs.matching(keypath)
                    if not hit:
                        continue
                    used.update(hit)
                key = ".".join(keypath)
                if type(value) is tuple:
                    skipped.append(Skip(key, "set with !unset or !replace: promote it by hand"))
                    continue
                secret = redactor.is_secret(keypath) or redactor.value(keypath, value) != value
                refused = _not_promoted(settings, keypath, secret and not include_secrets,
                                        from_env, to_env)
                if refused is not None:
                    skipped.append(refused)
                    continue
                merge_key = index.merge_key(keypath) if index else None
                if merge_key is not None and type(value) is list:
                    keyed = _KeyedList(keypath, merge_key, i, from_layer.name, f, from_env,
                                       to_env)
                    keyed.plan(project, stacks, to_before, from_values, redactor, index,
                               _Out(edits, skipped, kept, per_file, new_files))
                    continue
                current = value_at(to_before, keypath)
                if current is not MISSING and same(current, value):
                    continue
                found = _target(project.layers[i], stacks[to_env], i, keypath, per_file)
                if found is None:
                    patterned = project.layers[i].files is not None
                    skipped.append(Skip(key, f"layer {{!r}} of {to_env} has no file for it "
                                             "and " + ("its files pattern names none"
                                                       if patterned else "the key {!r} names "
                                                       "none (a name of at most "
                                                       f"{MAX_KEY_NAME_BYTES} bytes: no /, "
                                                       "not hidden)")
                                        + ": add it by hand",
                                        (from_layer.name,) if patterned
                                        else (from_layer.name, keypath[0])))
                    continue
                target, inside, is_new = found
                in_cue = _in_cue(key, target)
                if in_cue is not None:
                    skipped.append(in_cue)
                    continue
                if is_new:
                    new_files.add(target)
                per_file.setdefault(target, []).append((inside, value))
                line = f.line(stacks[from_env].source.read(f.path), keypath)
                to_chain = stacks[to_env].provenance(keypath) if current is not MISSING else []
                edits.append(Edit(
                    key=key, keypath=keypath, value=value,
                    shown=redactor.shown(keypath, value), secret=secret,
                    reload=index.reload_policy(keypath) if index else "restart",
                    layer=from_layer.name, target=target, new_file=target in new_files,
                    source=Origin(f.path, line, from_layer.name),
                    replaces=None if current is MISSING else redactor.shown(keypath, current),
                    replaces_source=(Origin(to_chain[-1].file, to_chain[-1].line,
                                            to_chain[-1].layer) if to_chain else None)))
    own: dict[str, list[str]] = {}  # a pattern -> TO's own overrides it covers, kept
    if globs:
        # TO overrides a key that FROM inherits from a shared layer. Named exactly by a
        # --key, the smallest edit that makes TO equal FROM removes TO's override (never
        # a redundant copy); covered only by a glob or a parent, it is TO's own and stays:
        # a glob over a service must not sweep away what TO deliberately sets.
        from_sets = {kp for i in env_layers
                     for f in _files(stacks[from_env].layers[i].files, globs)
                     for kp, _ in iter_leaves(f.data)}
        for i in env_layers:
            to_layer = stacks[to_env].layers[i]
            for f in _files(to_layer.files, globs):
                for keypath, written in iter_leaves(f.data):
                    hit = globs.matching(keypath)
                    if not hit or keypath in from_sets:
                        continue
                    if index and index.merge_key(keypath) is not None:
                        used.update(hit)  # FROM mentions none of the items: all are kept
                        # A `!replace` list is (tag, list); `!unset` has no items.
                        items = written[-1] if type(written) is tuple else written
                        kept.append(_kept_note(to_env, from_env, ".".join(keypath), [
                            _item_name(item, index.merge_key(keypath) or "")
                            for item in (items if type(items) is list else [])]))
                        continue
                    wanted = value_at(from_values, keypath)
                    current = value_at(to_before, keypath)
                    if wanted is MISSING or (current is not MISSING and same(current, wanted)):
                        continue
                    key = ".".join(keypath)
                    if not globs.naming(keypath):
                        kept.append(f"{key}: {to_env}'s own override kept ({from_env} leaves "
                                    "it to the base): name the key exactly with --key to "
                                    "remove it")
                        for pattern in hit:
                            own.setdefault(pattern, []).append(format_keypath(keypath))
                        continue
                    used.update(hit)
                    secret = redactor.is_secret(keypath)
                    refused = _not_promoted(settings, keypath, secret and not include_secrets,
                                            from_env, to_env)
                    if refused is not None:
                        skipped.append(refused)
                        continue
                    in_cue = _in_cue(key, f.path)
                    if in_cue is not None:
                        skipped.append(in_cue)
                        continue
                    per_file.setdefault(f.path, []).append((keypath, REMOVE))
                    inherited = stacks[from_env].provenance(keypath)
                    to_line = locate(f.path, stacks[to_env].source.read(f.path), keypath)
                    edits.append(Edit(
                        key=key, keypath=keypath, value=wanted,
                        shown=redactor.value(keypath, wanted), secret=secret,
                        reload=index.reload_policy(keypath) if index else "restart",
                        layer=inherited[-1].layer if inherited else "",
                        target=f.path, new_file=False,
                        source=(Origin(inherited[-1].file, inherited[-1].line,
                                       inherited[-1].layer) if inherited
                                else Origin(f.path, to_line, to_layer.name)),
                        replaces=redactor.value(keypath, current) if current is not MISSING
                        else None,
                        replaces_source=Origin(f.path, to_line, to_layer.name),
                        removes=True))
        unused = [p for p in globs.patterns if p not in used]
        if unused:
            kept_under = own.get(unused[0])
            raise UsageError(f"--key {unused[0]!r} matches no key that {from_env}'s "
                             "per-environment layers set" + (
                                 f" ({to_env}'s own overrides under it are kept: name "
                                 f"one exactly to remove it, e.g. --key {kept_under[0]})"
                                 if kept_under else ""))

    texts: dict[str, bytes] = {}
    for target in sorted(new_files):  # a file to create: nothing may be in its way
        if os.path.lexists(project.root / target):
            _regular_target(project.root, target)
            raise BuildError([Diagnostic(target, None, None, "is there but not a layer file "
                                         f"of {to_env}; promote would create it: move it",
                                         code="path")])
    for target, assignments in sorted(per_file.items()):
        before = b"" if target in new_files else compiler.source.read(target)
        after = set_values(target, before.decode("utf-8"), assignments)
        texts[target] = after.encode("utf-8")

    to_after_stack = stacks[to_env]
    # TO's top-level values before and after the edits, of the keys they touch.
    tops_before: dict[str, Any] = {}
    tops_after: dict[str, Any] = {}
    if texts:
        # The build cache is read (never written: only a build flushes it), so only the
        # edited files' top-level keys are merged and validated again.
        checker = Compiler(project, _EditedSource(FileSource(project.root, project.fenced), texts),
                           compiler.cache)
        to_after_stack = checker.load_stack(to_env)
        artifact, diagnostics = checker.compile(to_env, to_after_stack, None)
        if artifact is not None:
            # What the build of TO checks across environments too (Vault isolation, CUE):
            # a promotion the CI gate would refuse is refused here, before any write.
            diagnostics = checker.build_checks([artifact])
        if artifact is None or diagnostics:
            raise BuildError([
                Diagnostic(d.file, d.line, d.key,
                           f"{d.message} (promoting {from_env} into {to_env} would make "
                           f"{to_env} invalid; nothing was written)", d.severity, d.code)
                for d in diagnostics if d.severity == "error"])
        # Only the edited files' top-level keys can differ: every other key's fragment
        # has the same inputs on both sides.
        touched = sorted({key for stack in (stacks[to_env], to_after_stack)
                          for layer in stack.layers for f in layer.files if f.path in texts
                          for key in f.keys})
        assert artifact.context is not None
        tops_before = {k: to_before[k] for k in touched if k in to_before}
        tops_after = artifact.context.tops(touched)
    changes = describe(compare(tops_before, tops_after), stacks[to_env], to_after_stack,
                       redactor, index)
    diff = ConfigDiff(Side(to_env), Side(to_env, name=f"{to_env} (promoted)"), changes)
    edits.sort(key=lambda e: e.keypath)
    skipped.sort(key=lambda s: s.key)
    return Plan(from_env, to_env, edits, skipped, texts, diff, kept=kept)


# ------------------------------------------------------------------ keyed lists


@dataclass
class _Out:
    """Where the planners put what they find (shared by every promoted key)."""

    edits: list[Edit]
    skipped: list[Skip]
    kept: list[str]
    per_file: dict[str, list[tuple[KeyPath, Any]]]
    new_files: set[str]


def _files(files: Iterable[ParsedFile], globs: KeyGlobs) -> Iterator[ParsedFile]:
    """``files``, without those whose top-level keys no glob can cover (with globs):
    they are neither parsed nor walked."""
    for f in files:
        if not globs or any(globs.may_cover_below(key) for key in f.keys):
            yield f


def _value(data: Any, keypath: KeyPath) -> Any:
    """The value a layer file writes at ``keypath`` (None when it writes none)."""
    found = value_at(data, keypath)
    return None if found is MISSING else found


def _item_name(item: Any, key: str) -> str:
    """How a keyed list's item is shown: ``name=orders``."""
    inner = item[1] if is_unset_item(item) else item
    name = inner.get(key) if type(inner) is dict else None
    return f"{key}={json.dumps(name)}"


def _find(items: Any, key: str, name: Any) -> tuple[int, Any] | None:
    """(index, item) of the item whose merge key is ``name``; markers count as items."""
    for n, item in enumerate(items if type(items) is list else []):
        inner = item[1] if is_unset_item(item) else item
        if type(inner) is dict and key in inner and same(inner[key], name):
            return n, item
    return None


def _kept_note(to_env: str, from_env: str, key: str, names: list[str]) -> str:
    return (f"{key}: {to_env}'s own items kept ({', '.join(names)}): "
            f"{from_env}'s per-environment layer does not mention them")


_UNEXPRESSIBLE: Any = object()
"""A field the item below has and the wanted item lacks (only ``!unset`` could say it)."""


def _minimal(below: Any, wanted: Any) -> Any:
    """The smallest override that turns ``below`` into ``wanted`` (no redundant field),
    ``_UNEXPRESSIBLE`` when a field would have to be removed."""
    if type(below) is not dict or type(wanted) is not dict:
        return wanted
    if set(below) - set(wanted):
        return _UNEXPRESSIBLE
    out = {}
    for k, v in wanted.items():
        if k in below and same(below[k], v):
            continue
        sub = _minimal(below.get(k), v) if k in below else v
        if sub is _UNEXPRESSIBLE:
            return _UNEXPRESSIBLE
        out[k] = sub
    return out


@dataclass
class _KeyedList:
    """Promotion of one list with ``x-magcfg-merge-key``: item by item. For each item
    FROM's per-environment layer mentions, TO's overlay item is made to hold exactly the
    fields TO's lower layers need to yield FROM's effective item; TO's other overlay items
    stay (they are reported as kept)."""

    keypath: KeyPath
    key: str
    layer_index: int
    layer_name: str
    source_file: ParsedFile
    from_env: str
    to_env: str

    def plan(self, project: Project, stacks: dict[str, LayerStack], to_before: dict[str, Any],
             from_values: dict[str, Any], redactor: Any, index: Any, out: _Out) -> None:
        from_env, to_env = self.from_env, self.to_env
        found = _target(project.layers[self.layer_index], stacks[to_env], self.layer_index,
                        self.keypath, out.per_file)
        dotted = ".".join(self.keypath)
        if found is None:
            out.skipped.append(Skip(dotted, f"layer {{!r}} of {to_env} has no file for it "
                                    "and its files pattern names none: add it by hand",
                                    (self.layer_name,)))
            return
        target, inside, is_new = found
        in_cue = _in_cue(dotted, target)
        if in_cue is not None:
            out.skipped.append(in_cue)
            return
        to_file = next((f for f in stacks[to_env].layers[self.layer_index].files
                        if f.path == target), None)
        overlay = _value(to_file.data, self.keypath) if to_file else None
        overlay = overlay if type(overlay) is list else []
        below = _below(stacks[to_env], self.layer_index, self.keypath)
        effective = _value(to_before, self.keypath)
        wanted_list = _value(from_values, self.keypath)
        from .yamledit import REMOVE

        mentioned: set[str] = set()
        assignments: list[tuple[KeyPath, Any]] = []
        removals: list[int] = []
        added: list[Any] = []
        raw = stacks[from_env].source.read(self.source_file.path)
        for n, item in enumerate(_value(self.source_file.data, self.keypath) or []):
            name = _item_name(item, self.key)
            inner = item[1] if is_unset_item(item) else item
            if type(inner) is not dict or self.key not in inner:
                out.skipped.append(Skip(f"{dotted}.{n}", "list item without its merge key "
                                        "{!r}: promote it by hand", (self.key,)))
                continue
            mentioned.add(name)
            item_key = f"{dotted}[{name}]"
            origin = Origin(self.source_file.path,
                            self.source_file.line(raw, (*self.keypath, str(n))), self.layer_name)
            mine = _find(overlay, self.key, inner[self.key])
            current = _find(effective, self.key, inner[self.key])
            was = self._where(stacks[to_env], to_file, mine)
            if is_unset_item(item):
                if current is None:
                    continue  # TO does not have it either
                marker = (UNSET_TAG, {self.key: inner[self.key]})
                if mine is not None and _find(below, self.key, inner[self.key]) is None:
                    removals.append(mine[0])  # only TO's overlay adds it: drop that
                elif mine is not None:
                    assignments.append(((*inside, str(mine[0])), marker))
                else:
                    added.append(marker)
                out.edits.append(self._edit(item_key, None, "(deleted)", current[1], origin,
                                            was, target, is_new, redactor, index,
                                            deletes=True))
                continue
            wanted = _find(wanted_list, self.key, inner[self.key])
            if wanted is None or (current is not None and same(current[1], wanted[1])):
                continue
            base = _find(below, self.key, inner[self.key])
            override = _minimal(base[1], wanted[1]) if base else wanted[1]
            if override is _UNEXPRESSIBLE:
                out.skipped.append(Skip(item_key, f"{from_env}'s item lacks a field that "
                                        f"{to_env}'s lower layers set: promote it by hand"))
                continue
            if base is not None and not override:
                if mine is not None:  # TO's overlay item only restates the lower layers'
                    removals.append(mine[0])
                    out.edits.append(self._edit(item_key, wanted[1], wanted[1],
                                                current[1] if current else None, origin, was,
                                                target, is_new, redactor, index, removes=True))
                continue
            full = {self.key: inner[self.key], **override}
            if mine is not None and type(mine[1]) is dict:
                # Field by field: TO's item keeps its line, comments and styles.
                at = (*inside, str(mine[0]))
                assignments += [((*at, k), v) for k, v in override.items()
                                if k not in mine[1] or not same(mine[1][k], v)]
                assignments += [((*at, k), REMOVE) for k in mine[1]
                                if k != self.key and k not in override]
            elif mine is not None:
                assignments.append(((*inside, str(mine[0])), full))
            else:
                added.append(full)
            out.edits.append(self._edit(item_key, wanted[1], wanted[1],
                                        current[1] if current else None, origin, was,
                                        target, is_new, redactor, index))
        # New items go at the end of TO's overlay list (the whole list when TO has none);
        # removals come last, from the end, so that no index moves under an edit.
        if added and to_file is not None and type(_value(to_file.data, self.keypath)) is list:
            assignments += [((*inside, str(len(overlay) + k)), item)
                            for k, item in enumerate(added)]
        elif added:
            assignments.append((inside, added))
        assignments += [((*inside, str(r)), REMOVE) for r in sorted(removals, reverse=True)]
        if assignments:
            if is_new:
                out.new_files.add(target)
            out.per_file.setdefault(target, []).extend(assignments)
        own = [_item_name(item, self.key) for item in overlay
               if _item_name(item, self.key) not in mentioned]
        if own:
            out.kept.append(_kept_note(to_env, from_env, dotted, own))

    def _where(self, stack: LayerStack, to_file: ParsedFile | None,
               mine: tuple[int, Any] | None) -> Origin | None:
        """Where TO sets the item now: its overlay item, else the list's last setter."""
        if to_file is not None and mine is not None:
            line = to_file.line(stack.source.read(to_file.path), (*self.keypath, str(mine[0])))
            return Origin(to_file.path, line, self.layer_name)
        chain = stack.provenance(self.keypath)
        return Origin(chain[-1].file, chain[-1].line, chain[-1].layer) if chain else None

    def _edit(self, key: str, value: Any, shown: Any, replaces: Any, origin: Origin,
              was: Origin | None, target: str, is_new: bool, redactor: Any, index: Any,
              removes: bool = False, deletes: bool = False) -> Edit:
        return Edit(
            key=key, keypath=(*self.keypath, key), value=value,
            shown=shown if deletes else redactor.value(self.keypath, shown), secret=False,
            reload=index.reload_policy(self.keypath) if index else "restart",
            layer=self.layer_name, target=target, new_file=is_new, source=origin,
            replaces=replaces, replaces_source=was if replaces is not None else None,
            removes=removes, deletes=deletes)


def _below(stack: LayerStack, layer_index: int, keypath: KeyPath) -> Any:
    """The list at ``keypath`` as TO's layers under ``layer_index`` merge it."""
    lower = LayerStack(stack.env, stack.layers[:layer_index], stack.source,
                       stack._merge_key)
    value, _ = lower.merge_top(keypath[0])
    return None if value is ABSENT else _value({keypath[0]: value}, keypath)


def _compiled(compiler: Compiler, env: str, stack: LayerStack) -> dict[str, Any]:
    artifact, diagnostics = compiler.compile(env, stack, None)
    if artifact is None:
        raise BuildError([d for d in diagnostics if d.severity == "error"])
    return artifact.config


# ------------------------------------------------------------------ applying it


@dataclass(frozen=True)
class Promotion:
    """A promotion that was committed."""

    plan: Plan
    branch: str
    commit: str
    files: tuple[str, ...]
    base: str
    """The ref the pull request goes into, as a reviewer's clone names it (``review_base``)."""


def default_branch(plan: Plan) -> str:
    """Deterministic: the same promotion gets the same branch name."""
    h = hashlib.sha256()
    for e in plan.edits:
        h.update(f"{e.key}\0{e.target}\0".encode() + json.dumps(e.value).encode() + b"\n")
    return f"promote/{plan.from_env}-to-{plan.to_env}-{h.hexdigest()[:8]}"


def _what(plan: Plan) -> str:
    """What the promotion does to TO's layer files, in words: copies, removals or both."""
    removed = sum(e.removes for e in plan.edits)
    parts = []
    if len(plan.edits) > removed:
        parts.append(f"copied {len(plan.edits) - removed} value(s) from {plan.from_env}'s "
                     f"layers into {plan.to_env}'s")
    if removed:
        parts.append(f"removed {removed} override(s) of {plan.to_env}'s that "
                     f"{plan.from_env} leaves to the shared layers")
    return " and ".join(parts) or f"changed nothing in {plan.to_env}'s layers"


def commit_message(plan: Plan, name: Callable[[str], str]) -> str:
    """The promotion's commit message, each file named by ``name``."""
    keys = [e.key for e in plan.edits]
    subject = f"Promote {plan.from_env} -> {plan.to_env}: "
    listed = ", ".join(keys)
    subject += listed if len(keys) <= 3 and len(subject + listed) <= 72 else f"{len(keys)} keys"
    lines = [subject, "", f"magcfg promote {_what(plan)}:", ""]
    for e in plan.edits:
        old = show(e.replaces) if e.replaces_source else "(unset)"
        flag = " [restart]" if e.reload == "restart" else ""
        lines.append(f"  {e.key}: {old} -> {show(e.shown)}{flag}")
        lines.append(f"    removed from {name(e.target)}, inherits {e.source.where(name)}"
                     if e.removes else f"    from {e.source.where(name)}, into {name(e.target)}")
    return "\n".join(map(printable, lines)) + "\n"


def apply_promotion(project: Project, plan: Plan, branch: str | None = None) -> Promotion:
    """Write the plan on a new branch, rebuild TO's artifact, commit. On any failure the
    files, the branch and HEAD are restored."""
    import git

    try:
        return _apply(project, plan, branch)
    except git.GitCommandError as exc:
        raise BuildError(f"{_git_failure(exc)}; nothing was changed") from None


def _git_failure(exc: Any) -> str:
    """A ``git.GitCommandError`` as one line: the command and what git said."""
    detail = str(exc.stderr or "").strip()
    detail = detail.removeprefix("stderr:").strip().strip("'").strip()
    words = [str(w) for w in exc.command]
    verb = 1
    while words[verb:verb + 1] == ["-c"]:  # options before the command: not its name
        verb += 2
    # A hook that fails may say nothing: its exit status is all there is.
    return (f"git failed ({' '.join(words[:1] + words[verb:verb + 1])}): "
            f"{detail or f'exit status {exc.status}'}")


def _apply(project: Project, plan: Plan, branch: str | None) -> Promotion:
    import git

    from ..compiler import build
    from ..durable import Tree
    from ..pipeline.gitsource import open_repo
    from .snapshots import refresh_snapshots, snapshot_path

    if plan.empty:
        raise UsageError("nothing to promote")
    repo = open_repo(project.root)
    branch = branch or default_branch(plan)
    try:
        repo.git.check_ref_format("--branch", branch)
    except git.GitCommandError:
        raise UsageError(f"{branch!r} is not a valid branch name") from None
    if branch in [h.name for h in repo.heads]:
        raise BuildError(f"branch {branch!r} already exists (delete it or give --branch)")
    root = project.root
    generated = f"{project.output}/{plan.to_env}"
    paths = [str(root / p) for p in sorted(plan.texts)] + [str(root / generated)]
    snapshots = snapshot_path(project)
    if os.path.lexists(root / snapshots):  # the project keeps snapshot tests: refresh TO's
        paths.append(str(root / snapshots))
    # The commit must hold exactly what the committed inputs build: no uncommitted
    # change in what the promotion writes, nor in anything the rebuild of TO reads.
    inputs = [project.file, project.json_schema, project.cue_schema,
              *(spec.directory(plan.to_env) for spec in project.layers)]
    watched = paths + [str(root / p) for p in inputs if p]
    dirty = _status(repo, watched)
    if dirty:
        raise BuildError("uncommitted changes in files the promotion reads or writes:\n"
                         + "".join(f"{code} {path}\n" for code, path in dirty)
                         + _what_to_do(dirty, str(repo.working_tree_dir)))
    tree = Tree(root, project.fenced)
    for rel in plan.texts:  # a refused target stops the promotion before any git change
        if os.path.lexists(root / rel):
            tree.resolve(rel)
            _regular_target(root, rel)
    original = _head(repo)
    base = review_base(repo)
    absent = _absent_directories(root, [*(posixpath.dirname(p) for p in plan.texts),
                                        generated, snapshots])
    try:
        # In the block: a post-checkout hook that fails leaves the branch made and
        # checked out, and the undo below takes both back.
        repo.git.checkout("-q", "-b", branch)
        for rel, text in sorted(plan.texts.items()):
            if text != tree.read_optional(rel):
                tree.replace(rel, text)
        build(project, envs=[plan.to_env])
        refresh_snapshots(project, [plan.to_env])
        repo.git.add("-A", "--", *paths)
        repo.git.commit("-q", "-m", commit_message(plan, FromTop(project).name))
    except BaseException as exc:
        try:
            _undo(repo, paths, original, branch)
        except git.GitCommandError as undo:
            # Say what failed first and what is left, not "nothing was changed".
            first = (_git_failure(exc) if isinstance(exc, git.GitCommandError)
                     else exc.format() if isinstance(exc, MagcfgError)
                     else f"{type(exc).__name__}: {exc}")
            raise BuildError(f"{first}\nand undoing the promotion failed too "
                             f"({_git_failure(undo)}): "
                             f"{_left(repo, paths, original, branch)}") from None
        _remove_empty(absent)
        raise
    written = [*plan.texts, generated]
    if os.path.lexists(root / snapshots):
        written.append(snapshots)
    files = tuple(sorted(written))
    return Promotion(plan, branch, repo.head.commit.hexsha, files, base)


def review_base(repo: Any) -> str:
    """The ref a promotion made from the current HEAD is reviewed against: the upstream
    of the branch HEAD is on, else that branch on ``origin``, else ``origin``'s default
    branch, else the branch itself (a repository with no remote) or HEAD's commit."""
    import git

    def ask(*args: str) -> str:
        try:
            return str(repo.git.rev_parse(*args)).strip()
        except git.GitCommandError:
            return ""

    if not repo.head.is_detached:
        name = str(repo.head.ref.name)
        upstream = ask("--abbrev-ref", "--symbolic-full-name", f"refs/heads/{name}@{{upstream}}")
        if upstream:
            return upstream
        if ask("--verify", "-q", f"refs/remotes/origin/{name}"):
            return f"origin/{name}"
    try:
        default = str(repo.git.symbolic_ref("-q", "--short", "refs/remotes/origin/HEAD"))
    except git.GitCommandError:
        default = ""
    if default.strip():
        return default.strip()
    return str(repo.head.ref.name) if not repo.head.is_detached \
        else str(repo.head.commit.hexsha)[:12]


def _head(repo: Any) -> str:
    """The branch HEAD is on, or its commit when detached."""
    return str(repo.head.ref.name if not repo.head.is_detached else repo.head.commit.hexsha)


def _undo(repo: Any, paths: list[str], original: str, branch: str) -> None:
    """Take back what a failed promotion changed: the files at ``paths`` (clean before
    it), HEAD (``original``) and ``branch``, each only if it changed. Without hooks: a
    hook that fails a checkout after it switched would stop the undo half way."""
    def git(command: str, *args: str) -> str:
        # Options given by calling the Git object hold for its next command only.
        return str(getattr(repo.git(c="core.hooksPath=/dev/null"), command)(*args))

    git("reset", "-q", "HEAD", "--", *paths)
    in_head = git("ls_tree", "-r", "--name-only", "HEAD", "--", *paths).splitlines()
    if in_head:
        git("checkout", "HEAD", "--", *in_head)
    git("clean", "-q", "-f", "--", *paths)
    if _head(repo) != original:
        git("checkout", "-q", original)
    if branch in [h.name for h in repo.heads]:
        git("branch", "-q", "-D", branch)


def _absent_directories(root: Path, directories: list[str]) -> list[Path]:
    """The directories on the way to ``directories`` (relative to ``root``), themselves
    included, that are not there: those a promotion makes. Deepest first."""
    absent: set[Path] = set()
    for rel in directories:
        path = root / rel
        while path != root and root in path.parents and not os.path.lexists(path):
            absent.add(path)
            path = path.parent
    return sorted(absent, key=lambda p: len(p.parts), reverse=True)


def _remove_empty(directories: list[Path]) -> None:
    """Remove each of ``directories`` (deepest first) that is empty: ``git clean``
    removes the files a failed promotion made, not the directories it made for them.
    One that holds anything was not the promotion's alone, and stays."""
    for directory in directories:
        with contextlib.suppress(OSError):
            directory.rmdir()


def _status(repo: Any, paths: list[str]) -> list[tuple[str, str]]:
    """``git status`` of ``paths``: each changed file's two-letter code and its path from
    the top of the work tree, as every command names files (``FromTop``), and as written
    (``-z``: porcelain quotes and octal-escapes a name that is not plain ASCII)."""
    out = repo.git.status("--porcelain", "-z", "--untracked-files=all", "--", *paths,
                          strip_newline_in_stdout=False)
    entries = iter(out.split("\0"))
    found = []
    for entry in entries:
        if len(entry) < 4:
            continue
        code, path = entry[:2], entry[3:]
        if "R" in code or "C" in code:
            next(entries, None)  # the name it had: the entry after it
        found.append((code, path))
    return found


def _what_to_do(dirty: list[tuple[str, str]], top: str) -> str:
    """What to do about the uncommitted ``dirty`` files (``_status``'s, from ``top``):
    what a local ``magcfg sign`` wrote into an artifact directory (its signature and
    attestation, added; its ConfigMap, changed) is dropped, not committed, as CI signs
    and publishes and main holds each artifact unsigned (docs/ops/
    Runbook_ConfigPromotion.md, step 7); the rest is committed or stashed."""
    signing = [(code, path) for code, path in dirty
               if (code == "??" and posixpath.basename(path) in (SIGNATURE, ATTESTATION))
               or (code == " M" and posixpath.basename(path) == CONFIGMAP)]
    if not signing:
        return "commit or stash them first"

    def shown(code: str) -> str:
        # git reads a path in a command from where it runs, where the operator pastes it.
        return " ".join(shlex.quote(os.path.relpath(os.path.join(top, path)))
                        for found, path in signing if found == code)

    steps = [f"git checkout -- {shown(' M')}"] if any(c == " M" for c, _ in signing) else []
    steps += [f"git clean -f -- {shown('??')}"] if any(c == "??" for c, _ in signing) else []
    drop = (f"drop what a local `magcfg sign` wrote (CI signs and publishes, and main holds "
            f"each artifact unsigned) with `{' && '.join(steps)}`")
    return drop if len(signing) == len(dirty) else f"{drop}; commit or stash the rest first"


def _left(repo: Any, paths: list[str], original: str, branch: str) -> str:
    """What a failed undo left, as git tells it now, and how to restore the rest; what
    it may have left when git cannot tell."""
    import git

    # A branch may be named `fix;touch${IFS}x`: the commands are pasted into a shell.
    restore = f"git checkout -f {shlex.quote(original)}"
    try:
        head = _head(repo)
        made = branch in [h.name for h in repo.heads]
        status = _status(repo, paths)
    except (git.GitCommandError, ValueError, TypeError):
        top = os.path.realpath(str(repo.working_tree_dir))
        return (f"the repository may be left on branch {branch!r} with changes in "
                f"{', '.join(os.path.relpath(os.path.realpath(p), top) for p in paths)}; "
                f"restore it with "
                f"`{restore} && git branch -D {shlex.quote(branch)}`")
    left = []
    if head != original:
        left.append(f"HEAD is on {head!r}, not {original!r}")
    if made:
        left.append(f"branch {branch!r} exists")
    changed = [path for _, path in status]
    if changed:
        left.append(f"{', '.join(changed)} changed")
    if not left:
        return "git shows nothing left of it"
    steps = [restore] if head != original or changed else []
    # A checkout leaves files git does not track: the promotion's new ones. git reads a
    # path in a command from where it runs, where the operator pastes it.
    top = str(repo.working_tree_dir)
    untracked = [shlex.quote(os.path.relpath(os.path.join(top, path)))
                 for code, path in status if code == "??"]
    steps += [f"git clean -f -- {' '.join(untracked)}"] if untracked else []
    steps += [f"git branch -D {shlex.quote(branch)}"] if made else []
    return f"{'; '.join(left)}; restore it with `{' && '.join(steps)}`"


def _regular_target(root: Path, rel: str) -> None:
    """Refuse a target that is there and not a regular file: promote writes layer files
    only, and its rollback (``git clean``) must never meet what it did not write."""
    mode = os.lstat(root / rel).st_mode
    if not stat.S_ISREG(mode):
        what = ("a symlink" if stat.S_ISLNK(mode) else "a directory" if stat.S_ISDIR(mode)
                else "not a regular file")
        raise BuildError([Diagnostic(rel, None, None, f"is {what}; promote edits only regular "
                                     "layer files", code="path")])


# ------------------------------------------------------------------ reports


def _blame(project: Project, origins: list[Origin]) -> dict[Origin, str]:
    """Who set each line: ``commit abc1234 by Name: subject``, from one ``git blame`` per
    file."""
    import git

    from ..pipeline.gitsource import open_repo

    out: dict[Origin, str] = {o: "(line unknown)" for o in origins if o.line is None}
    by_file: dict[str, list[Origin]] = {}
    for o in origins:
        if o.line is not None:
            by_file.setdefault(o.file, []).append(o)
    try:
        repo = open_repo(project.root)
    except UsageError:
        return {**out, **{o: "(not in git)" for o in origins if o not in out}}
    for file, located in sorted(by_file.items()):
        ranges = [a for o in located for a in ("-L", f"{o.line},{o.line}")]
        try:
            text = repo.git.blame("--porcelain", *ranges, "--", str(project.root / file))
        except git.GitCommandError:
            out.update({o: "(not in git)" for o in located})
            continue
        commits: dict[str, dict[str, str]] = {}
        line_commit: dict[int, str] = {}
        current = ""
        for row in text.splitlines():
            if row.startswith("\t"):
                continue
            head = row.split(" ")
            if len(head) >= 3 and len(head[0]) == 40 and head[2].isdigit():
                current = head[0]
                line_commit[int(head[2])] = current
                commits.setdefault(current, {})
                continue
            name, _, rest = row.partition(" ")
            commits.setdefault(current, {}).setdefault(name, rest)
        for o in located:
            sha = line_commit.get(o.line or 0, "")
            fields = commits.get(sha, {})
            if not sha:
                out[o] = "(unknown)"
            elif set(sha) == {"0"}:
                out[o] = "not committed yet"
            else:
                out[o] = (f"commit {sha[:10]} by {fields.get('author', '?')}: "
                          f"{fields.get('summary', '')}")
    return out


def to_inherit(plan: Plan) -> str:
    return f"{plan.to_env} then inherits the shared value, as {plan.from_env} does"


def rerun_command(from_env: str, to_env: str, keys: Sequence[str],
                  include_secrets: bool = False, project: str = "") -> str:
    """The ``magcfg promote`` command line a PR body shows, to run again: each ``--key``
    glob single-quoted as the docs write it, a quote in one escaped as a shell reads it;
    ``project``: ``project_option``'s."""
    import shlex

    words = ["magcfg", "promote", shlex.quote(from_env), shlex.quote(to_env)]
    words += ["--key '" + k.replace("'", "'\\''") + "'" for k in keys]
    if include_secrets:
        words.append("--include-secrets")
    return " ".join(words) + project


def format_plan(plan: Plan, name: Callable[[str], str]) -> str:
    """The plan as text (``--dry-run``), each file named by ``name``
    (``project.FromTop.name``)."""
    lines = [f"promote {plan.from_env} -> {plan.to_env}: {len(plan.edits)} value(s) to write, "
             f"{len(plan.skipped)} skipped"]
    if plan.edits:
        lines.append("")
    for e in plan.edits:
        flag = "  [restart]" if e.reload == "restart" else ""
        value = "(deleted: - !unset)" if e.deletes else show(e.shown)
        lines.append(f"  {e.key} = {value}{flag}")
        lines.append(f"      from {e.source.where(name)} ({e.source.layer})")
        if e.removes:
            assert e.replaces_source is not None
            lines.append(f"      by removing {show(e.replaces)} set in "
                         f"{e.replaces_source.where(name)} ({to_inherit(plan)})")
            continue
        was = (f"replaces {show(e.replaces)} set in {e.replaces_source.where(name)}"
               if e.replaces_source else "new key")
        lines.append(f"      into {printable(name(e.target))}"
                     f"{' (new file)' if e.new_file else ''}; {was}")
    if plan.kept:
        lines += ["", "kept:"]
        lines += [f"  {k}" for k in plan.kept]
    if plan.skipped:
        lines += ["", "skipped:"]
        lines += [f"  {s.key}: {s.text(name)}" for s in plan.skipped]
    if plan.texts:
        lines += ["", "files:"]
        lines += [f"  {name(p)}" for p in sorted(plan.texts)]
    # Keys, layer names and paths come from the repository: a terminal escape in one
    # must reach the terminal as text.
    return "\n".join(map(printable, lines)) + "\n"


def pr_body(project: Project, plan: Plan, name: Callable[[str], str],
            promotion: Promotion | None = None) -> str:
    """Markdown PR body: summary, the semantic diff of TO, restart-only changes, and who
    set each promoted value, each file named by ``name``. Secrets appear only as
    ``<redacted>``."""
    f, t = plan.from_env, plan.to_env
    lines = [f"## Promote `{f}` → `{t}`", ""]
    if plan.command:
        # The operator's --key globs: printable keeps a newline in one from ending the
        # block, whose closing fence must begin a line.
        lines += ["```", printable(plan.command), "```", ""]
    removals = sum(e.removes for e in plan.edits)
    lines += ["### Summary", "",
              f"{len(plan.edits) - removals} value(s) that `{f}` sets are copied into `{t}`'s "
              "layer files"
              + (f", {removals} override(s) of `{t}` removed (`{f}` leaves them to the "
                 "shared layers)" if removals else "")
              + f"; {len(plan.skipped)} skipped."
              + (f" Branch {md_code(promotion.branch)}, for a pull request into "
                 f"{md_code(promotion.base)}." if promotion else ""), ""]
    if plan.texts:
        lines += ["Files changed:", ""] + [f"- {md_code(name(p))}" for p in sorted(plan.texts)]
        lines += [f"- {md_code(name(f'{project.output}/{t}/'))} (rebuilt)"]
        # The commit's every file (Promotion.files): the snapshots where the project
        # keeps them, whose refreshed entry the review reads beside the rebuilt config.
        from .snapshots import snapshot_path

        snapshots = snapshot_path(project)
        if promotion is not None and snapshots in promotion.files:
            lines += [f"- {md_code(name(snapshots))} (`{t}`'s snapshot refreshed)"]
        lines += [""]
    lines += ["### Semantic diff", ""]
    if plan.diff.identical:
        lines += [f"`{t}`'s compiled config does not change.", ""]
    else:
        lines += [*markdown_table(plan.diff, name), ""]
    lines += [*report_link(project, promotion.base if promotion else None, name), ""]
    lines += ["### Restart-only changes", ""]
    restart = [c for c in plan.diff.changes if c.restart]
    if restart:
        lines += [f"These take effect only when `{t}` restarts (the runtime refuses to "
                  "hot-apply them):", ""]
        lines += [f"- {md_code(c.key)}" for c in restart]
    else:
        lines.append("None: every change is hot-reloadable.")
    lines += ["", "### Where each value comes from", "",
              f"| Key | Value | Set in `{f}` | By |", "|---|---|---|---|"]
    who = _blame(project, [e.source for e in plan.edits])
    removed = [e for e in plan.edits if e.removes]
    for e in plan.edits:
        shown = "(deleted)" if e.deletes else show(e.shown)
        lines.append(f"| {md_cell(e.key)} | {md_cell(shown)} "
                     f"| {md_cell(e.source.where(name))} | {md_cell(who[e.source])} |")
    if removed:
        lines += ["", f"### Overrides removed from `{t}`", ""]
        lines += [f"- {md_code(e.key)} (was {md_code(show(e.replaces))} in "
                  f"{md_code(e.replaces_source.where(name) if e.replaces_source else '')}): "
                  f"{to_inherit(plan)}" for e in removed]
    if plan.kept:
        lines += ["", f"### Kept in `{t}`", ""]
        lines += [f"- {md_code(k)}" for k in plan.kept]
    if plan.skipped:
        lines += ["", "### Not promoted", ""]
        lines += [f"- {md_code(s.key)}: {s.markdown(name)}" for s in plan.skipped]
    return "\n".join(map(printable, lines)) + "\n"


REPORT_ARTIFACT = "ci-artifacts/report.html"
"""Where CI publishes ``magcfg report --html`` for a pull request (.woodpecker.yml)."""


_CI_FILES = (".woodpecker.yml", ".woodpecker.yaml", ".gitlab-ci.yml")


def report_link(project: Project, base: str | None, name: Callable[[str], str]
                ) -> list[str]:
    """The PR body's pointer to the config matrix: a link where the project's CI
    publishes it beside ``diff.md`` (as magcfg's own does), else how to make it, against
    ``base`` (the pull request's target; None: the command without ``--against``), from
    where ``name`` names files."""
    command = "magcfg report --html report.html"
    if base is not None:
        command += f" --against {shlex.quote(base)}"
    command += project_option(project, name)
    local = md_code(command)
    if not _ci_publishes_report(project):
        return ["### Config matrix", "",
                f"Every key by environment, with this change highlighted: {local} "
                "(docs/report.md)."]
    return ["### Config matrix", "",
            f"Every key by environment, with this change highlighted: [`report.html`]"
            f"({REPORT_ARTIFACT}), published by CI for this pull request next to `diff.md` "
            f"(locally: {local})."]


def _ci_publishes_report(project: Project) -> bool:
    """Whether a CI file of the project writes ``REPORT_ARTIFACT`` (``magcfg init``'s do
    not: they run the build checks and lint)."""
    from ..durable import Tree

    tree = Tree(project.root, project.fenced)
    try:  # resolved as any repository path: a committed link out of it is not listed
        workflows = tree.resolve(".github/workflows")
        listed = sorted(os.listdir(workflows)) if os.path.isdir(workflows) else []
    except (MagcfgError, OSError):
        listed = []  # none, or one magcfg may not read: it links nothing
    names = [*_CI_FILES, *(f".github/workflows/{name}" for name in listed
                           if name.endswith((".yml", ".yaml")))]
    for name in names:
        try:
            text = tree.read_optional(name)
        except (MagcfgError, OSError):
            continue  # a CI file magcfg may not read links nothing
        if text is not None and REPORT_ARTIFACT.encode() in text:
            return True
    return False


def write_text(path: Path, text: str, checkout: Path) -> None:
    """Write the PR body to ``path`` (atomically), through no symlink inside
    ``checkout`` (``durable.write_operator_file``)."""
    from ..durable import write_operator_file

    write_operator_file(path, text.encode("utf-8"), checkout=checkout)
