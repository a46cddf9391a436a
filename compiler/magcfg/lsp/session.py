"""One project as an editor sees it: its diagnostics, kept current keystroke by keystroke,
and the answers to an editor's questions about a key (hover, definition, references,
completion, fixes).

A full check compiles every environment (``Compiler.compile`` and the build checks)
from the open buffers and the files (``OverlaySource``). An edit then re-checks only the
fragments it touched: the top-level keys whose value in the edited file changed, in the
environments whose layers hold the file (``Compiler.compile(..., only=...)``); every
other finding stands as last computed. Checks of the whole document (required keys,
schema rules across fragments, CUE) run again with the next full check, on save.

In a file whose layer maps it under a key (``files:`` with ``key:``, docs/layers.md), a
key as written names the merged key behind the file's prefix (``Session.keypaths``), for
every question about a key.

Nothing here quotes a secret value: diagnostics come redacted from the compiler, and
hover shows a secret key's reference (never a literal, which may be the secret).
"""

from __future__ import annotations

import functools
import gc
import json
import os
import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from ..compiler import Compiler, build_inputs, ignored_inputs
from ..durable import PathError
from ..errors import BuildError, Diagnostic, printable
from ..heap import gc_paused
from ..keyglob import format_keypath, parse_keypath
from ..pipeline.cache import BuildCache
from ..pipeline.merge import ABSENT, LayerStack, Provenance
from ..project import FromTop, Project
from ..schema.index import SchemaEntry
from ..secrets.redaction import REDACTED
from ..secrets.references import parse_reference
from ..secrets.rules import LITERAL_CODE
from ..secrets.settings import load_secret_settings
from ..syntax.strict_yaml import UNSET
from .cursor import Cursor, Outline, cursor_at, cursors, key_column
from .overlay import OverlaySource

DOCUMENT = ""
"""Where findings about no top-level key are filed (the project file, required keys)."""

_SHOWN_CHARS = 160

_P = ParamSpec("_P")
_R = TypeVar("_R")
_E = TypeVar("_E")


def _unless_unreadable(empty: Callable[[], _E]
                       ) -> Callable[[Callable[_P, _R]], Callable[_P, _R | _E]]:
    """A question about a key answers ``empty()`` while a file it needs cannot be read
    (a schema that is not JSON, read when first asked): that file's diagnostic says why."""
    def wrap(question: Callable[_P, _R]) -> Callable[_P, _R | _E]:
        @functools.wraps(question)
        def answer(*args: _P.args, **kwargs: _P.kwargs) -> _R | _E:
            try:
                return question(*args, **kwargs)
            except BuildError:
                return empty()
        return answer
    return wrap
_DID_YOU_MEAN = re.compile(r"unknown key '[^']*' \(did you mean '([^']+)'\?\)")


@dataclass(frozen=True)
class Finding:
    """A diagnostic with the environments it was found in (empty: all of them), and
    the column of its key on its line (0-based; 0 when the file cannot be read)."""

    diagnostic: Diagnostic
    envs: tuple[str, ...]
    column: int
    line_length: int


@dataclass(frozen=True)
class Place:
    """A key written in a file: path, 0-based line and column, and the key's length."""

    file: str
    line: int
    column: int
    length: int


@dataclass(frozen=True)
class Edit:
    """A fix: replace the text from (first_line, first_column) to (end_line, end_column),
    0-based, of ``file`` by ``text``."""

    title: str
    file: str
    first_line: int
    first_column: int
    end_line: int
    end_column: int
    text: str
    kind: str  # "quickfix"


@dataclass(frozen=True)
class Completion:
    label: str
    detail: str
    documentation: str
    insert: str
    is_value: bool


def _top(diagnostic: Diagnostic) -> str:
    if not diagnostic.key:
        return DOCUMENT
    path = parse_keypath(diagnostic.key)
    return path[0] if path else DOCUMENT


class Session:
    """The state of one project for the language server."""

    def __init__(self, project: Project) -> None:
        self.project = project
        # The files a hover names, named as every command names them.
        self.named = FromTop(project)
        self.source = OverlaySource(project.root, project.fenced)
        self.compiler = self._compiler()
        # env -> top-level key (or DOCUMENT) -> findings of the last check of it
        self._found: dict[str, dict[str, list[Diagnostic]]] = {}
        self._build_checks: list[Diagnostic] = []
        self._load_problems: list[Diagnostic] = []
        self._checkout_problems: list[Diagnostic] = []
        self._stacks: dict[str, LayerStack] | None = None
        self._lines: dict[str, list[str]] = {}  # of files with findings, for columns

    def _compiler(self) -> Compiler:
        # The build cache is read (a project built once opens with the first check of a
        # rebuild, not a cold compile) and never flushed: an unsaved buffer's fragments
        # stay in memory. A build may compact the packs meanwhile: the cache keeps the
        # descriptors of the packs it opened, and an entry whose pack is gone is a miss.
        try:
            cache = BuildCache.for_project(self.project)
        except PathError:  # a cache directory the build refuses: the build says so
            cache = BuildCache(None)
        return Compiler(self.project, self.source, cache)

    def _new_compiler(self) -> None:
        """Start again from the schema: a new compiler, the old one's cache closed (after a
        full check, ``gc.freeze`` hides it from the collector for good)."""
        self.compiler.cache.close()
        self.compiler = self._compiler()

    # -- files ------------------------------------------------------------------------

    def relative(self, path: str) -> str | None:
        """``path`` (absolute) relative to the project root, or None outside it."""
        root = str(self.source.root)
        real = os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))
        for candidate in (os.path.abspath(path), real):
            if candidate.startswith(root + os.sep):
                return candidate[len(root) + 1:].replace(os.sep, "/")
        return None

    def text(self, path: str) -> str | None:
        """The text of ``path`` as the build reads it (the buffer, else the file)."""
        try:
            raw = self.source.read(path)
        except (OSError, BuildError):
            return None
        return raw.decode("utf-8", "replace")

    def envs_of(self, path: str) -> list[str]:
        """The environments whose layers hold ``path``."""
        return list(self.prefixes(path))

    def prefixes(self, path: str) -> dict[str, tuple[str, ...]]:
        """The key prefix of ``path``'s content (``ParsedFile.prefix``: ``()`` unless its
        layer maps files under a ``key``) in each environment whose layers hold it, in
        project order."""
        out: dict[str, tuple[str, ...]] = {}
        for env, stack in (self._stacks or {}).items():
            held = next((f for f in stack.files() if f.path == path), None)
            if held is not None:
                out[env] = held.prefix
        return out

    def keypaths(self, path: str, inner: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
        """The key path of the merged document that ``inner`` (a key path as written in
        ``path``) names, in every environment: behind the file's prefix there. An
        environment whose layers do not hold the file (``services/web/env/dev.yaml`` in
        prod) reads it behind the prefix the file would have there: the first holder's,
        with ``{env}`` of the layer's ``key`` naming that environment (its value may come
        from other files). Empty when no layer holds the file."""
        prefixes = self.prefixes(path)
        if not prefixes:
            return {}
        first_env, first = next(iter(prefixes.items()))
        parts = next((tuple(spec.key.split(".")) for env, spec, prefix
                      in self.project.mapping(path)
                      if env == first_env and prefix == first and spec.key), ())
        out = {}
        for env in self.project.environments:
            prefix = prefixes.get(env)
            if prefix is None:
                prefix = first if len(parts) != len(first) else tuple(
                    env if part == "{env}" else actual
                    for part, actual in zip(parts, first, strict=True))
            out[env] = (*prefix, *inner)
        return out

    # -- checking ---------------------------------------------------------------------

    def full_check(self) -> None:
        """Compile every environment from the buffers and files; all findings anew."""
        with gc_paused():
            self._full_check()
        # What a full check keeps (parsed layers, the schema index) lives as long as the
        # session: out of the collector's sight, a keystroke's collections scan only
        # what the keystroke allocated, not the whole project again.
        gc.freeze()

    def _full_check(self) -> None:
        self._lines = {}
        self._found = {}
        self._build_checks = []
        self._checkout_problems = []
        envs = self.project.environments
        try:
            stacks = self.compiler.load_stacks(envs, links_asked=True)
        except BuildError as exc:
            self._load_problems = list(exc.diagnostics)
            return
        self._load_problems = []
        self._stacks = stacks
        # What the build asks git about its inputs (ignored, left out of a sparse
        # checkout, converted, a symlink held as a file), answered while compiling.
        asked = ignored_inputs(self.source, build_inputs(self.project, stacks), (),
                               self.project, envs)
        artifacts = []
        for env in envs:
            found: dict[str, list[Diagnostic]] = {}
            try:
                artifact, diagnostics = self.compiler.compile(env, stacks[env], None)
            except BuildError as exc:
                artifact, diagnostics = None, list(exc.diagnostics)
            for d in diagnostics:
                found.setdefault(_top(d), []).append(d)
            self._found[env] = found
            if artifact is not None:
                artifacts.append(artifact)
        try:
            self._build_checks = self.compiler.build_checks(artifacts)
        except BuildError as exc:
            self._build_checks = list(exc.diagnostics)
        self._checkout_problems = [*asked(), *self.compiler.schema_as_committed()]

    def files_changed(self, paths: list[str]) -> None:
        """Files changed, appeared or vanished on disk: read them (and the layer
        directories) again, then check everything."""
        self.source.forget_listings()
        if self.project.json_schema in paths:
            self._new_compiler()
        self.compiler.forget(paths)
        self.full_check()

    def edit(self, path: str, text: str | None) -> None:
        """The buffer of ``path`` now holds ``text`` (None: closed, the file counts
        again); re-check the fragments that changed."""
        with gc_paused():
            self._edit(path, text)

    def _edit(self, path: str, text: str | None) -> None:
        self._lines.pop(path, None)
        if text is None:
            self.source.close(path)
        else:
            self.source.open(path, text)
        if path == self.project.json_schema:
            self._new_compiler()
            self.full_check()
            return
        self.compiler.forget([path])
        before = self._stacks
        envs = self.project.environments
        try:
            stacks = self.compiler.load_stacks(envs, links_asked=True)
        except BuildError as exc:
            # The last stacks that loaded stand; their findings stay until this loads.
            self._load_problems = list(exc.diagnostics)
            return
        self._load_problems = []
        if before is None:
            self.full_check()
            return
        for env in envs:
            touched = _touched(before[env], stacks[env], path)
            if not touched:
                continue
            try:
                _, diagnostics = self.compiler.compile(env, stacks[env], None, only=touched)
            except BuildError as exc:
                diagnostics = list(exc.diagnostics)
            found = self._found.setdefault(env, {})
            for key in touched:
                found.pop(key, None)
            for d in diagnostics:
                top = _top(d)
                if top in touched:
                    found.setdefault(top, []).append(d)
        self._stacks = stacks

    def findings(self) -> dict[str, list[Finding]]:
        """Every current finding by file, each once with the environments it is in."""
        envs_by: dict[Diagnostic, set[str]] = {}
        for env, found in self._found.items():
            for diagnostics in found.values():
                for d in diagnostics:
                    envs_by.setdefault(d, set()).add(env)
        everywhere = set(self.project.environments)
        for d in (*self._load_problems, *self._checkout_problems, *self._build_checks):
            envs_by.setdefault(d, set()).update(everywhere)
        holders: dict[str, set[str]] = {}
        if self._stacks is not None:
            for env, stack in self._stacks.items():
                for f in stack.files():
                    holders.setdefault(f.path, set()).add(env)
        out: dict[str, list[Finding]] = {}
        lines = self._lines
        for d in sorted(envs_by):
            envs = envs_by[d]
            shown = () if envs >= holders.get(d.file, everywhere) else tuple(
                e for e in self.project.environments if e in envs)
            if d.file not in lines:
                text = self.text(d.file)
                lines[d.file] = text.split("\n") if text is not None else []
            column, length = 0, 0
            if d.line is not None and 0 < d.line <= len(lines[d.file]):
                line_text = lines[d.file][d.line - 1]
                keypath = parse_keypath(d.key) if d.key else ()
                column = key_column(line_text, keypath[-1]) if keypath else (
                    len(line_text) - len(line_text.lstrip()))
                length = len(line_text.rstrip())
            out.setdefault(d.file, []).append(Finding(d, shown, column, length))
        return out

    # -- questions about a key ----------------------------------------------------------

    def cursor(self, path: str, line: int, character: int) -> Cursor | None:
        """The cursor in a layer file (None in any other file). Its key paths are as
        written in the file: ``keypaths`` puts them behind the file's key prefix."""
        if not self.envs_of(path):
            return None
        text = self.text(path)
        if text is None:
            return None
        return cursor_at(text, line, character)

    @_unless_unreadable(lambda: None)
    def hover(self, path: str, line: int, character: int) -> str | None:
        """Markdown: the key's value in every environment, who set it and what it
        overrode, its reload policy and what the schema says of it."""
        cursor = self.cursor(path, line, character)
        if cursor is None or cursor.key is None or self._stacks is None:
            return None
        keypaths = self.keypaths(path, cursor.keypath)
        keypath = keypaths[self.envs_of(path)[0]]
        redactor = self.compiler.redactor()
        secret = redactor.is_secret(keypath)
        entry = self._entry(keypath)
        reload = entry.reload if entry is not None else "restart"
        head = f"**`{printable(format_keypath(keypath))}`**  reload: `{reload}`"
        if secret:
            head += " · secret (shown as its reference)"
        parts = [head]
        if entry is not None:
            parts.append(_describe(entry))
        for env in self.project.environments:
            stack = self._stacks.get(env)
            if stack is None:
                continue
            here = keypaths[env]
            named = "" if here == keypath else f" (`{printable(format_keypath(here))}`)"
            value = stack.value_at(here)
            chain = stack.provenance(here)
            if value is ABSENT and not chain:
                parts.append(f"- **{env}**{named}: not set")
                continue
            # Another environment's key path may be a secret by a glob of its own.
            secret_here = secret or redactor.is_secret(here)
            files = {p.file for p in chain}
            shown = "not set" if value is ABSENT else (
                f"`{_show(self._safe(here, value, secret_here, files))}`")
            lines = [f"- **{env}**{named}: {shown}"]
            for i, p in enumerate(reversed(chain)):
                verb = "set at" if i == 0 else "overrides"
                lines.append(f"  - {verb} `{p.where(self.named.name)}` ({printable(p.layer)}): "
                             f"`{_show(self._provenance_value(here, p, secret_here, files))}`")
            parts.append("\n".join(lines))
        return "\n\n".join(parts)

    def _safe(self, keypath: tuple[str, ...], value: Any, secret: bool,
              files: Collection[str]) -> Any:
        """``value``, from ``files``, fit to show: under a secret key only references,
        else redacted, and no literal of a secret key's in it
        (``Compiler.masked_literals``)."""
        return self.compiler.masked_literals(self._shown(keypath, value, secret), files)

    def _shown(self, keypath: tuple[str, ...], value: Any, secret: bool) -> Any:
        redactor = self.compiler.redactor()
        if secret:
            return _references_only(value)
        if isinstance(value, dict):
            return {k: self._shown((*keypath, k), v, redactor.is_secret((*keypath, k)))
                    for k, v in value.items()}
        if isinstance(value, list):
            return [self._shown((*keypath, str(i)), v, redactor.is_secret((*keypath, str(i))))
                    for i, v in enumerate(value)]
        return value

    def _provenance_value(self, keypath: tuple[str, ...], p: Provenance, secret: bool,
                          files: Collection[str]) -> Any:
        if p.value == UNSET:
            return "!unset"
        value = p.value[1] if type(p.value) is tuple else p.value
        return self._safe(keypath, value, secret, files)

    def _entry(self, keypath: tuple[str, ...]) -> SchemaEntry | None:
        try:
            schema = self.compiler.schema()
            return schema.index.entry(keypath) if schema is not None else None
        except BuildError:
            return None

    def _places(self, keypath: tuple[str, ...], chain: Iterable[Provenance]) -> list[Place]:
        out = []
        for p in chain:
            if p.line is None:
                continue
            text = self.text(p.file) or ""
            lines = text.split("\n")
            line_text = lines[p.line - 1] if p.line <= len(lines) else ""
            segment = keypath[-1]
            column = key_column(line_text, segment)
            length = len(segment) if line_text[column:column + len(segment)] == segment else 0
            out.append(Place(p.file, p.line - 1, column, length))
        return out

    @_unless_unreadable(list)
    def definition(self, path: str, line: int, character: int) -> list[Place]:
        """Where the value overridden at the cursor is set, in the layer below (for
        each environment whose layers hold this file)."""
        cursor = self.cursor(path, line, character)
        if cursor is None or cursor.key is None or self._stacks is None:
            return []
        below: list[Provenance] = []
        keypaths = self.keypaths(path, cursor.keypath)
        for env in self.envs_of(path):
            chain = self._stacks[env].provenance(keypaths[env])
            for i, p in enumerate(chain):
                if p.file == path and i > 0 and chain[i - 1] not in below:
                    below.append(chain[i - 1])
                    break
        return _unique(self._places(cursor.keypath, below))

    @_unless_unreadable(list)
    def references(self, path: str, line: int, character: int) -> list[Place]:
        """Every layer file that sets the key at the cursor, in any environment."""
        cursor = self.cursor(path, line, character)
        if cursor is None or cursor.key is None or self._stacks is None:
            return []
        keypaths = self.keypaths(path, cursor.keypath)
        chain = [p for env, stack in self._stacks.items()
                 for p in stack.provenance(keypaths[env])]
        return _unique(self._places(cursor.keypath, chain))

    @_unless_unreadable(list)
    def complete(self, path: str, line: int, character: int) -> list[Completion]:
        """Keys the schema allows at the cursor's key path (behind the file's key
        prefix), or a key's enum values."""
        cursor = self.cursor(path, line, character)
        if cursor is None:
            return []
        # Distinct prefixes only where a layer's key names {env}.
        prefixes = list(dict.fromkeys(self.prefixes(path).values()))
        try:
            schema = self.compiler.schema()
        except BuildError:
            return []
        if schema is None:
            return []
        index = schema.index
        if cursor.key is not None and cursor.in_value:
            entry = index.entry((*prefixes[0], *cursor.keypath))
            if entry is None or entry.secret:
                return []
            values = list(entry.bounds.get("enum") or ())
            if "const" in entry.bounds:
                values.append(entry.bounds["const"])
            if not values and "boolean" in entry.types:
                values = [True, False]
            return [Completion(v if isinstance(v, str) else _yaml_scalar(v),
                               ", ".join(entry.types), entry.description or "",
                               _yaml_scalar(v), True) for v in values]
        inner = cursor.parent if cursor.key is not None else cursor.keypath
        written = self._written_keys(path, inner) - {cursor.key}
        out: dict[str, Completion] = {}
        for prefix in prefixes:
            parent = (*prefix, *inner)
            for name in index.known_keys(parent):
                if name in written or name in out:
                    continue
                entry = index.entry((*parent, name))
                detail = ", ".join(entry.types) if entry is not None else ""
                doc = (entry.description or "") if entry is not None else ""
                out[name] = Completion(name, detail, doc, f"{name}: ", False)
        return list(out.values())

    def _written_keys(self, path: str, inner: tuple[str, ...]) -> set[str]:
        """Keys the file (as last loaded) already sets under ``inner`` (a key path as
        written in the file)."""
        for stack in (self._stacks or {}).values():
            for f in stack.files():
                if f.path == path:
                    node: Any = f.data
                    for part in (*f.prefix, *inner):
                        node = node.get(part) if isinstance(node, dict) else None
                    return set(node) if isinstance(node, dict) else set()
        return set()

    # -- fixes ------------------------------------------------------------------------

    def fixes(self, path: str, line: int, code: str, key: str | None, message: str) -> list[Edit]:
        """Quick fixes for a finding on ``line`` (0-based) of ``path``."""
        return self.fixes_of(path, [(line, code, message)])[0]

    def fixes_of(self, path: str, findings: list[tuple[int, str, str]]) -> list[list[Edit]]:
        """The quick fixes of each finding (0-based line, code, message) of ``path``,
        from one reading of the file however many they are (an editor asks for those
        of every finding in a selection)."""
        text = self.text(path)
        if text is None:
            return [[] for _ in findings]
        lines = text.split("\n")
        at = cursors(lines, {line: len(lines[line]) for line, _, _ in findings
                             if 0 <= line < len(lines)})
        outline = Outline(lines)
        return [self._fixes(path, lines, outline, at[line], line, code, message)
                if line in at else [] for line, code, message in findings]

    @_unless_unreadable(list)
    def _fixes(self, path: str, lines: list[str], outline: Outline, cursor: Cursor, line: int,
               code: str, message: str) -> list[Edit]:
        if cursor.key is None:
            return []
        # The key path as the build names it (behind the file's key prefix), in the
        # first environment whose layers hold the file.
        env = next(iter(self.envs_of(path)), self.project.environments[0])
        keypath = self.keypaths(path, cursor.keypath).get(env, cursor.keypath)
        shown = printable(format_keypath(keypath))
        if code == "redundant":
            first, end = outline.removal(line)
            return [Edit(f"Remove the redundant override of {shown}", path, first, 0,
                         end, 0, "", "quickfix")]
        if code == "unknown-key":
            m = _DID_YOU_MEAN.search(message)
            if m is None:
                return []
            name = m.group(1)
            return [Edit(f"Change {printable(cursor.key)!r} to {printable(name)!r}", path, line,
                         cursor.key_start, line, cursor.key_end, name, "quickfix")]
        if code == LITERAL_CODE or (code.startswith("schema-")
                                        and self.compiler.redactor().is_secret(keypath)):
            value = _value_span(lines[line], cursor.key_end)
            if value is None or parse_reference(
                    lines[line][value[0]:value[1]].strip("\"'")) is not None:
                return []
            reference = self._reference_template(env, keypath)
            return [Edit(f"Replace the literal with a reference ({reference})", path, line,
                         value[0], line, value[1], json.dumps(reference), "quickfix")]
        return []

    def _reference_template(self, env: str, keypath: tuple[str, ...]) -> str:
        """A reference for the secret at ``keypath`` as ``env`` would name it (the
        project's first mount and path prefix, ``{env}`` filled in)."""
        settings, _ = load_secret_settings(self.project)
        settings = settings.for_env(env)
        mount = settings.mounts[0] if settings.mounts else "secret"
        prefix = (settings.path_prefixes or ("",))[0]
        app, name = keypath[0], keypath[-1]
        return f"vault://{mount}/{prefix}{app}#{name}"


def _touched(before: LayerStack, after: LayerStack, path: str) -> set[str]:
    """Top-level keys whose value in ``path`` differs between the two stacks."""
    old = next((f for f in before.files() if f.path == path), None)
    new = next((f for f in after.files() if f.path == path), None)
    if old is None and new is None:
        return set()
    old_data = old.data if old is not None else {}
    new_data = new.data if new is not None else {}
    return {k for k in old_data.keys() | new_data.keys()
            if k not in old_data or k not in new_data or old_data[k] != new_data[k]}


def _references_only(value: Any) -> Any:
    """A secret's value as shown: a well-formed reference as written, anything else
    (a literal, which may be the secret itself) as ``REDACTED``."""
    if isinstance(value, str):
        return value if parse_reference(value) is not None else REDACTED
    if value is None:
        return None
    if isinstance(value, dict):
        return {k: _references_only(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_references_only(v) for v in value]
    return REDACTED


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    text = printable(text).replace("`", "'")
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS - 1] + "…"


def _describe(entry: SchemaEntry) -> str:
    lines = []
    if entry.description:
        lines.append(printable(entry.description, lines=True))
    facts = []
    if entry.types:
        facts.append("type: `" + " | ".join(entry.types) + "`")
    for name, value in sorted(entry.bounds.items()):
        facts.append(f"{name}: `{_show(value)}`")
    if entry.has_default and not entry.secret:
        facts.append(f"default: `{_show(entry.default)}`")
    if facts:
        lines.append(" · ".join(facts))
    return "\n\n".join(lines)


def _yaml_scalar(value: Any) -> str:
    # JSON scalars are YAML 1.2 scalars that mean the same, quoted strings included.
    return json.dumps(value, ensure_ascii=False)


def _value_span(line_text: str, key_end: int) -> tuple[int, int] | None:
    """Columns of a one-line scalar value after the key's colon (its comment left out);
    None for a block scalar or a value on the following lines."""
    colon = line_text.find(":", key_end)
    if colon < 0:
        return None
    start = colon + 1
    while start < len(line_text) and line_text[start] in " \t":
        start += 1
    rest = line_text[start:].rstrip("\r")
    if not rest or rest[0] in "|>#":
        return None
    if rest[0] in "\"'":
        quoted = re.match(r'"(?:[^"\\]|\\.)*"' if rest[0] == '"' else r"'(?:[^']|'')*'", rest)
        return (start, start + quoted.end()) if quoted else None
    # From the start of a run of spaces only: a search from each of them would scan
    # the rest of the run each time (quadratic in a long run).
    m = re.search(r"(?<![ \t])[ \t]+#", rest)
    return start, start + (m.start() if m else len(rest.rstrip()))


def _unique(places: list[Place]) -> list[Place]:
    seen: list[Place] = []
    for p in places:
        if p not in seen:
            seen.append(p)
    return seen

