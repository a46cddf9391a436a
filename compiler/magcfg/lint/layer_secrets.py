"""MAG006: a literal value for a secret key in a magcfg layer.

Uses the compiler's own pieces: the project file (``magcfg.project``), the strict layer
loader (``magcfg.load``), the schema index that knows which dotted keys are
``x-magcfg-secret`` (``magcfg.schema``) and the reference grammar (``magcfg.secrets``).
So lint flags exactly the values a build would refuse as non-references, but in every layer
file at once, with its line, before anyone runs a build.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .context import LintContext, finding
from .findings import REDACTED, Finding
from .history import CommitFile
from .walk import SourceFile, display_name

RULE = "MAG006"


@dataclass(frozen=True)
class _Project:
    """A magcfg project of the repository, as MAG006 reads it."""

    here: str  # its directory from the lint root: "" or "dir/"
    index: Any  # its schema's PolicyIndex
    compiler: Any  # its Compiler, which reads its CUE layer files (``_cue``)

    def key_prefixes(self, path: str) -> frozenset[tuple[str, ...]]:
        """The key paths a file at ``path`` (from the lint root) would sit under as a
        layer file of this project, as the build lists one (a layer's suffix, no hidden
        name below its directory): none for a file of no layer. What a commit's file
        that the work tree lacks is checked as (``lint --since``)."""
        from ..project import LAYER_SUFFIXES

        rel = path.removeprefix(self.here)
        if (self.here and rel == path) or not rel.endswith(LAYER_SUFFIXES):
            return frozenset()
        project = self.compiler.project
        found = set()
        for env in project.environments:
            for spec in project.layers:
                directory = spec.directory(env).rstrip("/")
                below = rel.removeprefix(f"{directory}/") if directory != "." else rel
                if (directory != "." and below == rel) or any(
                        part.startswith(".") for part in below.split("/")):
                    continue
                prefix = spec.key_prefix(env, rel)
                if prefix is not None:
                    found.add(prefix)
        return frozenset(found)


@dataclass(frozen=True)
class _Layers:
    # Each layer file (from the lint root) -> the key paths its content sits under
    # (``()`` in a directory layer; a layer of ``files:`` maps a file under its ``key:``,
    # per environment), and the project it is a layer file of.
    files: dict[str, tuple[frozenset[tuple[str, ...]], _Project]]
    # A project file found in the repository that cannot be read -> why.
    unread: dict[str, str]
    # Every project read, in the order its layer files were taken (``files``).
    projects: tuple[_Project, ...] = ()

    def of(self, path: str) -> tuple[frozenset[tuple[str, ...]], _Project] | None:
        """What ``files`` holds for ``path``, or for a file the work tree lacks (a
        commit's), what it would hold for one there: the first project's that takes it."""
        known = self.files.get(path)
        if known is not None:
            return known
        for project in self.projects:
            prefixes = project.key_prefixes(path)
            if prefixes:
                return prefixes, project
        return None


def _layers(ctx: LintContext) -> _Layers:
    cached = ctx.caches.get("layers")
    if isinstance(cached, _Layers):
        return cached
    result = _load_layers(ctx)
    ctx.caches["layers"] = result
    return result


def _load_layers(ctx: LintContext) -> _Layers:
    """The layer files of every project of the repository: the one lint reads its
    settings from, and every other project file it lints (a monorepo's projects, each
    in its directory, checked from the root as from their own)."""
    from ..errors import MagcfgError
    from ..project import PROJECT_FILE_NAMES

    files: dict[str, tuple[frozenset[tuple[str, ...]], _Project]] = {}
    unread: dict[str, str] = {}
    projects: list[_Project] = []
    # Project and layer files by the names they are opened by (``LintContext.listed``).
    found = {ctx.listed.get(name, name) for name in ctx.files
             if name.rsplit("/", 1)[-1] in PROJECT_FILE_NAMES}
    configured = ctx.config.project_file
    for rel in sorted(found | ({configured} if configured is not None else set())):
        try:
            loaded = _project(ctx, rel)
        except MagcfgError as exc:
            if rel == configured:
                raise
            unread[rel] = exc.diagnostics[0].message if exc.diagnostics else str(exc)
            continue
        if loaded is None:
            continue
        project, listed = loaded
        projects.append(project)
        for path, keys in listed.items():
            files.setdefault(path, (keys, project))  # two projects' file: the first's
    return _Layers(files, unread, tuple(projects))


def _project(ctx: LintContext, rel: str
             ) -> tuple[_Project, dict[str, frozenset[tuple[str, ...]]]] | None:
    """The project of the project file ``rel`` and its layer files with their key
    prefixes (from the lint root); None when it lists no layers (``_may_list_layers``) or
    has no JSON schema, or lies outside the linted tree."""
    from ..compiler import Compiler
    from ..errors import BuildError
    from ..project import load_project

    if rel == ctx.config.project_file:
        raw: Any = ctx.config.raw_project
    else:
        import yaml

        try:
            raw = yaml.safe_load(ctx.files[display_name(rel)].text)
        except yaml.YAMLError as exc:  # its problem only: the context quotes the file
            raise BuildError(f"{rel}: not valid YAML: {getattr(exc, 'problem', None) or '?'}"
                             ) from None
        except RecursionError:  # a pull request's file, nested past the parser
            raise BuildError(f"{rel}: not valid YAML: nested too deeply to read") from None
    if not _may_list_layers(raw):
        return None
    project = load_project(ctx.root / rel)
    if project.json_schema is None:
        return None
    try:  # layer paths are the project's; lint's are its root's (a monorepo's subdirectory)
        below = Path(project.root).resolve().relative_to(ctx.root.resolve()).as_posix()
    except ValueError:
        return None  # none of the layer files is linted
    here = "" if below == "." else f"{below}/"
    # The build cache is read, never written: "secret?" comes from the policy tables a
    # build cached (the schema is neither parsed nor indexed), else from the schema's
    # index, as for diff.
    compiler = Compiler(project)
    prefixes: dict[str, set[tuple[str, ...]]] = {}
    for env in project.environments:
        listed, _ = compiler.layer_files(env)
        for _, files in listed:
            for path, prefix in files:
                prefixes.setdefault(here + path, set()).add(prefix)
    return (_Project(here, compiler.policies(), compiler),
            {path: frozenset(keys) for path, keys in prefixes.items()})


def _cue(ctx: LintContext) -> dict[str, dict[str, Any] | str]:
    """Each CUE layer file (from the lint root) -> its exported data, or why lint cannot
    read it; exported when the first is checked (one ``cue`` process per project)."""
    found = ctx.caches.get("cue")
    if not isinstance(found, dict):
        layers = _layers(ctx)
        found = {}
        by_project: dict[int, tuple[_Project, list[str]]] = {}  # by id: two may share a directory
        for path, (_, project) in layers.files.items():
            if path.endswith(".cue"):
                by_project.setdefault(id(project), (project, []))[1].append(
                    path.removeprefix(project.here))
        for project, paths in by_project.values():
            exported = _exported(project.compiler, sorted(paths))
            found.update({project.here + p: data for p, data in exported.items()})
        ctx.caches["cue"] = found
    return found


def _exported(compiler: Any, paths: list[str]) -> dict[str, dict[str, Any] | str]:
    """The data of each CUE layer file of ``paths`` as the build loads it (one ``cue``
    process for all), or, without a usable ``cue``, why it cannot be checked. A file
    that does not export is left out (the build reports it at its line); after an error
    each file is exported alone, so one bad file hides no other's values."""
    from ..cue.layers import load_cue_layers
    from ..errors import BuildError

    try:
        return {path: parsed.data for path, parsed in load_cue_layers(compiler, paths).items()}
    except BuildError as exc:
        unusable = [d.message for d in exc.diagnostics if d.code in ("cue-missing", "cue-version")]
        if unusable:
            return dict.fromkeys(paths, unusable[0])
        if len(paths) == 1:
            return {}
        return {path: data for one in paths for path, data in _exported(compiler, [one]).items()}


def _cue_data(ctx: LintContext, src: SourceFile, listed: str, project: _Project
              ) -> dict[str, Any] | str | None:
    """The data of the CUE layer file ``src`` (``listed`` from the lint root), as
    ``_cue`` gives it: the work tree's from its one export, and a version a commit holds
    that the work tree does not (``lint --since``), exported alone."""
    from ..cue.binary import find_cue
    from ..cue.layers import export
    from ..errors import BuildError

    work_tree = ctx.files.get(src.path)
    if work_tree is not None and work_tree.text == src.text:
        exported = _cue(ctx)
        if listed in exported:  # a commit's layers (``CommitLayers``) export none at once
            return exported[listed]
    path = listed.removeprefix(project.here)
    try:
        cue = find_cue(path, project.compiler.project.root, project.compiler.cache)
        return export(cue, {path: src.text.encode("utf-8")}).get(path)
    except BuildError as exc:
        unusable = [d.message for d in exc.diagnostics if d.code in ("cue-missing", "cue-version")]
        return unusable[0] if unusable else None  # `magcfg build` reports export errors


class CommitLayers:
    """MAG006 of ``lint --since``: each commit's files judged by the layers its own
    project files and schemas list and mark, read from git at that commit (a commit
    that lists a layer directory and puts a literal in it, both undone by the next, is
    judged by what it listed, not by the work tree). Each project is loaded once per
    distinct project file and schema blob, whatever the number of commits."""

    def __init__(self, ctx: LintContext, commits: Sequence[str],
                 changed: Sequence[CommitFile]) -> None:
        from ..project import PROJECT_FILE_NAMES

        self._ctx = ctx
        self._changed: dict[str, list[str]] = {}
        for f in changed:
            self._changed.setdefault(f.commit, []).append(f.name)
        configured = ctx.config.project_file
        names = {ctx.listed.get(name, name) for name in ctx.files}
        names |= {f.name for f in changed}
        # Git's batch questions are lines: a name holding a line end is asked of nobody.
        self._names = sorted(name for name in names | ({configured} if configured else set())
                             if name.rsplit("/", 1)[-1] in PROJECT_FILE_NAMES
                             and "\n" not in name)
        files = self._objects([f"{c}:{name}" for c in commits for name in self._names])
        self._files = {c: files[i * len(self._names):(i + 1) * len(self._names)]
                       for i, c in enumerate(commits)}
        # (name, blob) -> Project, why it cannot be read, or None: no layer project.
        self._loaded: dict[tuple[str, str], Any] = {}
        self._schemas = self._schema_objects(commits)
        self._projects: dict[tuple[str, str, str], _Project | str | None] = {}
        self._contexts: dict[tuple[tuple[str, str, str], ...], LintContext] = {}
        self._repo: Any = None

    def close(self) -> None:
        if self._repo is not None:
            self._repo.close()

    def __enter__(self) -> CommitLayers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _objects(self, names: list[str]) -> list[str]:
        """The object git holds at each ``REV:PATH`` of ``names``, "" where none is."""
        from .history import git_output

        if not names:
            return []
        answer = git_output(["cat-file", "--batch-check=%(objectname) %(objecttype)"],
                            self._ctx.root, "find the project files of the commits",
                            "".join(f"{n}\n" for n in names).encode())
        lines = answer.decode("utf-8", "surrogateescape").split("\n")
        return [line.split(" ")[0] if line.endswith(" blob") else ""
                for line in lines[:len(names)]] + [""] * (len(names) - len(lines))

    def _schema_objects(self, commits: Sequence[str]) -> dict[tuple[str, str], str]:
        """(commit, project file) -> the blob of that project's JSON schema there."""
        from ..durable import MAX_INPUT_BYTES
        from ..pipeline.gitsource import committed_project
        from ..project import committed_blobs
        from .history import git_failed

        wanted = sorted({(name, blob) for c in commits
                         for name, blob in zip(self._names, self._files[c], strict=True)
                         if blob})
        try:
            raws = committed_blobs(self._ctx.root, [blob for _, blob in wanted], MAX_INPUT_BYTES)
        except OSError as exc:
            raise git_failed("read the project files of the commits", str(exc)) from None
        from ..errors import MagcfgError

        for (name, blob), raw in zip(wanted, raws, strict=True):
            here = name.rpartition("/")[0]
            try:
                if not isinstance(raw, bytes):
                    raise MagcfgError(f"is more than {MAX_INPUT_BYTES} bytes")
                # Judged as the work tree's (``_project``): one that may list layers is
                # loaded, and one that does not load fails the gate.
                if _may_list_layers_text(raw.decode("utf-8", "replace")):
                    self._loaded[name, blob] = committed_project(
                        name.rpartition("/")[2], raw, self._ctx.root / here)
                else:
                    self._loaded[name, blob] = None
            except MagcfgError as exc:
                self._loaded[name, blob] = _why(exc)
        asked = [(c, name, f"{name.rpartition('/')[0]}/{project.json_schema}".lstrip("/"))
                 for c in commits
                 for name, blob in zip(self._names, self._files[c], strict=True)
                 if blob and (project := self._loaded[name, blob]) is not None
                 and not isinstance(project, str) and project.json_schema]
        found = self._objects([f"{c}:{path}" for c, _, path in asked])
        return {(c, name): blob for (c, name, _), blob in zip(asked, found, strict=True)}

    def context(self, commit: str) -> LintContext:
        """``ctx`` as MAG006 reads it for a file of ``commit``: its layers that commit's."""
        key = tuple((name, blob, self._schemas.get((commit, name), ""))
                    for name, blob in zip(self._names, self._files[commit], strict=True)
                    if blob)
        found = self._contexts.get(key)
        if found is None:
            projects = [self._project(commit, *one) for one in key]
            layers = _Layers({}, {}, tuple(p for p in projects if isinstance(p, _Project)))
            found = dataclasses.replace(self._ctx, caches={**self._ctx.caches,
                                                           "layers": layers})
            self._contexts[key] = found
        return found

    def problems(self, commit: str, short: str) -> list[Finding]:
        """A finding at each project file of ``commit`` that does not load there, when
        the commit changed a file that could be a layer file of it: those files cannot
        be told from others, and the gate fails closed."""
        from ..project import LAYER_SUFFIXES
        from .context import line_hash
        from .findings import RULES

        out = []
        for name, blob in zip(self._names, self._files[commit], strict=True):
            here = name.rpartition("/")[0]
            touched = [n for n in self._changed.get(commit, ())
                       if n.endswith(LAYER_SUFFIXES) and (not here or n.startswith(here + "/"))]
            project = self._project(commit, name, blob, self._schemas.get((commit, name), "")
                                    ) if blob and touched else None
            if isinstance(project, str):
                out.append(Finding(
                    display_name(name), 1, 1, RULE,
                    f"layers of this commit not checked for literal secrets: {project}",
                    "mend the project file or its schema in a new commit, or rewrite the "
                    f"branch's history ({_build_of(name)} at that commit names the problem)",
                    RULES[RULE].severity, line_hash(f"{name}: {project}"), short))
        return out

    def _project(self, commit: str, name: str, blob: str, schema: str) -> _Project | str | None:
        """The project of ``name`` at ``commit`` as MAG006 reads it, or why it cannot be
        read; None for no layer project (no layers, no JSON schema)."""
        from ..compiler import Compiler
        from ..errors import MagcfgError
        from ..pipeline.gitsource import GitSource, open_repo

        key = (name, blob, schema)
        if key in self._projects:
            return self._projects[key]
        project = self._loaded[name, blob]
        found: _Project | str | None = None
        if isinstance(project, str):
            found = project
        elif project is not None and project.layers and project.json_schema:
            here = name.rpartition("/")[0]
            try:
                if self._repo is None:
                    self._repo = open_repo(self._ctx.root)
                source = GitSource(project.root, commit, self._repo)
                source.fence(project.fenced)
                compiler = Compiler(project, source, judge_layers=False)
                with source.errors_at_ref():
                    schema_file = compiler.schema()
                    if schema_file is not None:
                        schema_file.document  # noqa: B018 (read for its check)
                found = _Project(f"{here}/" if here else "", compiler.policies(), compiler)
            except MagcfgError as exc:
                found = _why(exc)
        self._projects[key] = found
        return found


_GATE_SECTIONS = frozenset({"version", "lint", "secrets"})
"""The sections of the project file of a repository that uses magcfg only as its secrets
gate (``lint:``, and ``secrets.direct_vault``, which lint reads)."""


def _may_list_layers(raw: Any) -> bool:
    """Whether a project file's parsed YAML ``raw`` may be a layer project's, and is
    loaded (to fail the gate where it does not load): not one that is empty or holds no
    section but ``_GATE_SECTIONS`` (a secrets gate's), nor a mapping of no section of a
    project file (a CI pipeline of its name, ``project.may_be_project_text``); one with
    another section may (a misspelt ``layers``), and so may one that is not a mapping."""
    from ..project import KNOWN_SECTIONS

    if raw is None:
        return False
    if not isinstance(raw, dict):
        return True
    keys = {str(key) for key in raw}
    return bool(keys & KNOWN_SECTIONS) and not keys <= _GATE_SECTIONS


def _may_list_layers_text(text: str) -> bool:
    """``_may_list_layers`` of a commit's project file ``text``; one that is not YAML may."""
    import yaml

    try:
        raw = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError):  # RecursionError: nested past the parser
        return True
    return _may_list_layers(raw)


def _why(exc: Exception) -> str:
    """Why a project of a commit cannot be read: its first diagnostic, located."""
    from ..errors import MagcfgError

    diagnostics = exc.diagnostics if isinstance(exc, MagcfgError) else []
    if not diagnostics:
        return str(exc)
    d = diagnostics[0]
    where = f"{d.file}:{d.line}: " if d.file and d.line else f"{d.file}: " if d.file else ""
    return f"{where}{d.message}"


def _build_of(project_file: str) -> str:
    """`magcfg build` of ``project_file`` (from lint's root, where the hook and CI run
    lint): a project below it, or of another name, is found there by ``--project`` alone
    (``project.project_option``'s rule, for a project that did not load)."""
    import shlex

    from ..errors import printable
    from ..project import PROJECT_FILE_NAMES

    if project_file == PROJECT_FILE_NAMES[0]:
        return "`magcfg build`"
    return f"`magcfg build --project {printable(shlex.quote(project_file))}`"


def prepare(ctx: LintContext) -> None:
    """Load what every layer file's check reads (the project, its layer files, the
    schema's secret keys, the CUE layers' data) once."""
    _cue(ctx)


def check(src: SourceFile, ctx: LintContext) -> Iterator[Finding]:
    """Yield a finding for each secret key of a layer file that holds no reference."""
    if not src.name.endswith((".yaml", ".yml", ".cue")):
        return
    layers = _layers(ctx)
    listed = ctx.listed.get(src.path, src.path)
    unread = layers.unread.get(listed)
    if unread is not None:  # fail closed, as for CUE below
        yield finding(src, 1, 1, RULE, f"layers not checked for literal secrets: {unread}",
                      f"fix the project file ({_build_of(listed)} names the problem)")
        return
    known = layers.of(listed)
    if known is None:
        return
    prefixes, project = known
    index = project.index
    from ..secrets.references import looks_like_reference, parse_reference
    from ..syntax.locate import locate
    from ..syntax.strict_yaml import LoadFailed, iter_leaves, parse_layer

    raw = src.text.encode("utf-8")
    data: Any
    if src.name.endswith(".cue"):
        data = _cue_data(ctx, src, listed, project)
        if isinstance(data, str):  # fail closed: a gate that cannot read says so
            yield finding(src, 1, 1, RULE, f"not checked for literal secrets: {data}",
                          "install the cue CLI where lint runs (docs/cue.md)")
            return
        if data is None:
            return  # `magcfg build` reports export errors with their own file:line
    else:
        try:
            data, _ = parse_layer(src.path, raw)
        except LoadFailed:
            return  # `magcfg build` reports load errors with their own file:line
    data = _without_replace(data)
    for prefix in sorted(prefixes):
        for path, subtree in index.secret_subtrees(data, prefix):
            for keypath, value in iter_leaves(subtree, path):
                if value is None or isinstance(value, tuple) or not keypath:
                    continue  # null, or a layer marker (!unset, !replace)
                if isinstance(value, str) and parse_reference(value) is not None:
                    continue
                key = ".".join((*prefix, *keypath))
                line = locate(src.path, raw, keypath) or 1
                column = _value_column(src, line, keypath[-1])
                if isinstance(value, str) and looks_like_reference(value):
                    message = f"`{key}` holds a malformed secret reference ({REDACTED})"
                else:
                    message = (f"`{key}` is marked x-magcfg-secret but holds a literal value "
                               f"({REDACTED})")
                yield finding(src, line, column, RULE, message,
                              "replace the value with a reference: "
                              "`vault://<mount>/<path>#<key>` (e.g. "
                              "vault://secret/k3s/<app>#<key>) or `env://VAR`; then rotate "
                              "the exposed secret")


def _without_replace(data: Any) -> Any:
    """``data`` with each ``!replace`` marker's value in its place: the value is set all
    the same (replacing instead of merging), and the build refuses a literal secret in
    it as anywhere else."""
    from ..syntax.strict_yaml import REPLACE_TAG

    if type(data) is dict:
        return {k: _without_replace(v) for k, v in data.items()}
    if type(data) is tuple and len(data) == 2 and data[0] == REPLACE_TAG:
        return _without_replace(data[1])
    return data


def _value_column(src: SourceFile, line: int, key: str) -> int:
    text = src.lines[line - 1] if 0 < line <= len(src.lines) else ""
    at = text.find(key)
    if at < 0:
        return 1
    colon = text.find(":", at + len(key))
    if colon < 0:
        return at + 1
    rest = text[colon + 1:]
    return colon + 2 + (len(rest) - len(rest.lstrip()))
