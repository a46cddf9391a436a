"""``magcfg init``: a new project that builds, in an empty or existing repository.

It writes the project file, a layer directory per layer and environment (a starter key
when the repository has no ``layers/`` yet), a starting JSON Schema inferred from those
layers (``scaffold.infer``), the ``.gitignore`` entry for the build cache, the
``.gitattributes`` lines that keep git from converting line ends of inputs and outputs,
a CI pipeline and a pre-commit hook that run ``magcfg build --check`` and ``magcfg
lint`` (the pipeline also the project's snapshot tests where it keeps them, and
``build --check --since`` and ``lint --since`` where a change left its target), then
runs the first build. Every environment is compiled in memory first: if anything fails
(an input or an output git would ignore included), nothing is written. Files that exist
already are kept (and reported; a kept ``.pre-commit-config.yaml`` or ``.gitlab-ci.yml``
with the hooks or job to add), except the project file, whose presence stops ``init``,
and ``.gitignore``, ``.gitattributes`` and the editor settings, which get the lines they
lack.

A project below the top of its git work tree (a monorepo's ``platform/config``) gets its
CI pipeline, pre-commit hook and editor settings where those tools look for them, at the
top, naming the project: each command runs with ``--project <path>/magcfg.yaml``, the
hook's ``files:`` is anchored at the project's path, and so are the schema paths and file
globs of ``.vscode/settings.json``. The GitHub and Woodpecker pipelines are a file per
project (``magcfg-<slug>.yml``, ``project_slug``); GitLab has one ``.gitlab-ci.yml``, with a job per project;
the editor settings are merged into the top's (each project adds its schemas). A kept
``.pre-commit-config.yaml`` or ``.gitlab-ci.yml`` there, or a settings file that is not
plain JSON (comments), comes with the hook, job or settings to add
(``InitResult.notes``). Every name reported, in ``InitResult`` and in errors, is from
the repository's top (``project.FromTop``): ``.pre-commit-config.yaml``,
``platform/config/magcfg.yaml``. At the top of a work tree, or outside git, the files are
those of a project at the top.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import shlex
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..compiler import OUTPUT_FILES, build, compile_environment, ignored_inputs
from ..durable import PathError, Tree
from ..errors import BuildError, Diagnostic, MagcfgError, UsageError, printable
from ..pipeline.load import LAYER_SUFFIXES, FileSource
from ..project import (
    GIT_DIR,
    PROJECT_FILE_NAMES,
    SNAPSHOT_FILE,
    FromTop,
    LayerSpec,
    Project,
    load_project,
)
from ..syntax.scalars import resolve_plain
from ..version import __version__
from .editors import editor_settings, layer_schema, project_schema
from .infer import infer_schema, schema_bytes

__all__ = ["DEFAULT_ENVIRONMENTS", "InitResult", "init_project"]

DEFAULT_ENVIRONMENTS = ("dev", "staging", "production")
SCHEMA_PATH = "schemas/config.schema.json"
LAYER_SCHEMA_PATH = "schemas/layer.schema.json"
PROJECT_SCHEMA_PATH = "schemas/magcfg-project.schema.json"
VSCODE_SETTINGS = ".vscode/settings.json"
CACHE_DIR = ".magcfg-cache"
LAYERS = (
    LayerSpec("base", "layers/base"),
    LayerSpec("environment", "layers/environments/{env}"),
    LayerSpec("secrets", "layers/secrets/{env}"),
)
CI_FILES = {
    "github": ".github/workflows/magcfg.yml",
    "gitlab": ".gitlab-ci.yml",
    "woodpecker": ".woodpecker/magcfg.yml",
}
_ENV_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
UNCONVERTED = ("/magcfg.yaml", "/layers/**", "/schemas/**", "/generated/**")
"""The paths ``.gitattributes`` marks ``UNCONVERTED_ATTRIBUTES``: what a build reads and
what it writes. Their bytes are hashed into the manifest and signed, so a checkout with
``core.autocrlf=true`` (or a ``* text=auto`` above) that turned LF into CRLF, a ``*
ident`` above that expanded ``$Id$`` to the blob's name, or a ``working-tree-encoding``
above that wrote UTF-16, would make ``build --check`` and ``verify`` fail in that
checkout alone. ``filter`` is left as set: ``-filter`` would
undo a ``filter=git-crypt`` above, and the next ``git add`` would commit in clear what
was encrypted; a checkout without a filter's driver is refused by the build where it can
tell (an LFS pointer, a git-crypt file: ``project.Checkout``)."""
UNCONVERTED_ATTRIBUTES = "-text -ident -working-tree-encoding"
_MERGED = (".gitignore", ".gitattributes", VSCODE_SETTINGS)
"""Files that ``init`` adds its lines to when they exist, rather than keeping them."""
MAX_MERGED_BYTES = 4 << 20
"""The most bytes of a file of ``_MERGED`` init reads (and splits into lines, or parses):
the largest such files of real repositories are kilobytes."""


@dataclass
class InitResult:
    root: Path
    written: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    built: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What to add by hand to a kept file shared by the repository's projects."""
    schema: str = SCHEMA_PATH
    """The starting schema, to refine."""


def _making(given: Path) -> str:
    """The command that makes the missing project directory ``given``, pasted where init
    ran: below an existing repository's top a directory of it (``git init`` there would
    make another repository, and put the CI pipeline and the hook at its top, which no
    CI runs), else the repository."""
    from ..durable import git_root

    above = Path(os.path.abspath(given)).parent
    while not above.is_dir() and above != above.parent:
        above = above.parent
    command = "mkdir -p" if git_root(above) is not None else "git init"
    return f"{command} {shlex.quote(os.fspath(given))}"


def init_project(root: Path, environments: Iterable[str] = DEFAULT_ENVIRONMENTS,
                 ci: str = "github") -> InitResult:
    """Scaffold a project in ``root`` and build it. Raises ``UsageError`` for bad
    arguments, ``MagcfgError`` for an existing project file or layers that do not build;
    in both cases nothing is written. The files reported and those of errors are named
    from the repository's top (``project.FromTop``)."""
    envs = tuple(dict.fromkeys(environments))
    bad = [e for e in envs if not _ENV_NAME.match(e)]
    if not envs or bad:
        raise UsageError(f"environment names must match {_ENV_NAME.pattern}"
                         + (f", not {bad[0]!r}" if bad else ""))
    if ci not in (*CI_FILES, "none"):
        raise UsageError(f"--ci must be one of {', '.join((*CI_FILES, 'none'))}, not {ci!r}")
    given = root
    root = Path(os.path.realpath(root))
    if not root.exists():
        # Not created: a mistyped path would leave a stray directory behind, and the
        # repository the project lives in is git's to make.
        raise UsageError(f"{given} does not exist: create it first ({_making(given)})")
    if not root.is_dir():
        raise UsageError(f"{given} is not a directory")
    # Named from the repository's top, as every command names the project's files.
    named = FromTop(None, root / PROJECT_FILE_NAMES[0])
    _refuse_unnameable(named.prefix().removesuffix("/"), ci)
    try:
        result = _scaffold(root, envs, ci, named)
    except MagcfgError as exc:
        raise named.error(exc) from None
    result.written = [named.name(name) for name in result.written]
    result.kept = [named.name(name) for name in result.kept]
    result.schema = named.name(SCHEMA_PATH)
    return result


_CI_NAMES = {"github": "GitHub", "gitlab": "GitLab", "woodpecker": "Woodpecker"}
_UNNAMEABLE = (
    ("${{", ("github", "gitlab"), "{ci} replaces it in the pipeline's text, with no escape"),
    ("$[[", ("gitlab",), "{ci} replaces it in the pipeline's text, with no escape"),
    ("[", tuple(CI_FILES), "pytest refuses it in the snapshot step's argument, where it "
                           "reads a test's parameters"),
    ("::", tuple(CI_FILES), "pytest reads the snapshot step's argument there as a test's "
                            "name"),
)
"""What a project path cannot hold for the pipelines that name it, each with why (none
has an escape): GitHub evaluates a ``${{ }}`` expression anywhere in a workflow, a step's
``run:`` included; GitLab interpolates ``$[[ ]]`` (``spec: inputs``, in a kept
``.gitlab-ci.yml`` the job is added to) and its runner ``${{ }}`` (job inputs) in a
script; pytest takes its arguments for test names. A ``$`` alone is the shell's, which
reads the path single-quoted, and Woodpecker's ``$NAME`` is escaped (``$$``)."""


def _refuse_unnameable(prefix: str, ci: str) -> None:
    """A project whose path (from the repository's top, where the pipeline names it) holds
    what the ``ci`` pipeline cannot name (``_UNNAMEABLE``) is refused: the pipeline would
    check a path that is not there, or run what the path spells."""
    for token, cis, why in _UNNAMEABLE:
        if ci in cis and token in prefix:
            raise UsageError(
                f"{printable(prefix)}: a project path holding `{token}` cannot be named in "
                f"a {_CI_NAMES[ci]} pipeline ({why.format(ci=_CI_NAMES[ci])}): rename the "
                "directory, or use --ci none and write the pipeline's steps yourself "
                "(docs/cli.md, init)")


def _scaffold(root: Path, envs: tuple[str, ...], ci: str, named: FromTop) -> InitResult:
    """``init_project`` in the real directory ``root``, its names (and its errors')
    relative to it; ``named``: where the project is in its repository, as every command
    places it, and the names in the notes' text."""
    for name in PROJECT_FILE_NAMES:
        if os.path.lexists(root / name):
            raise BuildError([Diagnostic(name, None, None, "a project file exists already: "
                                         "magcfg init starts a new project only",
                                         code="init")])
    tree = Tree(root, (GIT_DIR,))
    prefix = named.prefix().removesuffix("/") or None  # None: at the top, or outside git
    top = tree if prefix is None else Tree(root.parents[prefix.count("/")], (GIT_DIR,))
    # Files the repository's tools read at its top: name reported -> (tree, path in it).
    at_top: dict[str, tuple[Tree, str]] = {}
    starter = not os.path.lexists(root / "layers")
    files: dict[str, bytes] = {"magcfg.yaml": project_file(envs, starter).encode()}
    if starter:
        files.update(_starter_layers(root.name, envs))
    for directory in sorted({spec.directory(env) for spec in LAYERS for env in envs}):
        if not os.path.lexists(root / directory) and not any(
                p.startswith(f"{directory}/") for p in files):
            files[f"{directory}/.gitkeep"] = b""  # git keeps no empty directory
    overlay = _Overlay(root, files)
    project = Project(root=root, file="magcfg.yaml", environments=envs, layers=LAYERS,
                      json_schema=SCHEMA_PATH, cue_schema=None, output="generated",
                      cache_dir=CACHE_DIR, settings={"version": 1})
    schema_new = not os.path.lexists(root / SCHEMA_PATH)
    if schema_new:
        files[SCHEMA_PATH] = schema_bytes(infer_schema(project, overlay))
    # Compiled in memory with what is about to be written: a failure writes nothing.
    for env in envs:
        compile_environment(project, env, source=overlay)
    layer_files = {p for spec in LAYERS for env in envs
                   for p in overlay.list_layer(spec.directory(env))[0]}
    ignored = ignored_inputs(overlay, ["magcfg.yaml", SCHEMA_PATH, *sorted(layer_files)],
                             [f"generated/{env}/{name}" for env in envs
                              for name in OUTPUT_FILES],
                             encoding_decided=lambda path: _attributes_decide(root, path))()
    if ignored:  # the build would refuse the inputs, and a clone would lack the output
        raise BuildError([d.replace(severity="error") for d in ignored])
    files[".gitignore"] = _gitignore(tree.read_optional(".gitignore", MAX_MERGED_BYTES))
    files[".gitattributes"] = _gitattributes(
        tree.read_optional(".gitattributes", MAX_MERGED_BYTES))
    if prefix is None:
        if ci != "none":
            files[CI_FILES[ci]] = CI_PIPELINES[ci].encode()
        files[".pre-commit-config.yaml"] = PRE_COMMIT.encode()
    else:
        shared = {ci_file(ci, prefix): ci_pipeline(ci, prefix)} if ci != "none" else {}
        shared[".pre-commit-config.yaml"] = pre_commit_config(prefix)
        for rel, text in shared.items():
            name = posixpath.relpath(rel, prefix)
            at_top[name] = (top, rel)
            files[name] = text.encode()
    # Editors check and complete layer files and the project file (yaml-language-server).
    document = json.loads(files.get(SCHEMA_PATH) or tree.read(SCHEMA_PATH))
    files[LAYER_SCHEMA_PATH] = schema_bytes(layer_schema(document))
    files[PROJECT_SCHEMA_PATH] = project_schema()
    # VS Code reads the settings of the folder it opened alone: a monorepo's, at its top.
    settings_name = VSCODE_SETTINGS if prefix is None else posixpath.relpath(VSCODE_SETTINGS,
                                                                             prefix)
    with _at_top(prefix):
        current = top.read_optional(VSCODE_SETTINGS, MAX_MERGED_BYTES)
    try:
        settings = json.loads(current) if current else None
    except ValueError:  # JSON with comments: the user's to edit (docs/editors.md)
        settings = False
    globs = sorted({f"{spec.path.split('{env}')[0].rstrip('/')}/**/*.yaml" for spec in LAYERS})
    anchor = "" if prefix is None else f"{prefix}/"
    unmerged: list[str] = []  # a monorepo's settings file, kept: what to add to it
    if settings is not False and (settings is None or isinstance(settings, dict)):
        files[settings_name] = editor_settings(globs, LAYER_SCHEMA_PATH, PROJECT_SCHEMA_PATH,
                                               settings, anchor)
        if prefix is not None:
            at_top[settings_name] = (top, VSCODE_SETTINGS)
    elif prefix is not None:
        unmerged.append(
            f"to give editors the schemas of {printable(prefix)}, add these settings to "
            f"{printable(named.name(settings_name))} (docs/editors.md):\n"
            + editor_settings(globs, LAYER_SCHEMA_PATH, PROJECT_SCHEMA_PATH, None,
                              anchor).decode())

    result = InitResult(root)
    writes: list[tuple[str, Tree, str, bytes]] = []
    for name, data in files.items():
        where, rel = at_top.get(name, (tree, name))
        if rel not in _MERGED and os.path.lexists(os.path.join(where.root, rel)):
            result.kept.append(name)
            if prefix is None or name in at_top:
                result.notes += _to_add(named.name(name), rel, prefix, ci)
            continue
        with _at_top(prefix if where is not tree else None):
            if rel in _MERGED and where.read_optional(rel, MAX_MERGED_BYTES) == data:
                continue
        writes.append((name, where, rel, data))
    # Every place asked first: a file init adds to may be one it cannot write (a link).
    problems: list[Diagnostic] = []
    for _, where, rel, _ in writes:
        try:
            where.writable(rel)
        except PathError as exc:
            problems += (exc.diagnostics if where is tree
                         else _from_project(exc.diagnostics, prefix))
    if problems:
        raise BuildError(problems)
    for name, where, rel, data in writes:
        with _at_top(prefix if where is not tree else None):
            where.replace(rel, data)
        result.written.append(name)
    if unmerged:
        result.kept.append(settings_name)
        result.notes += unmerged
    done = build(load_project(root / "magcfg.yaml"))
    result.built = list(done.environments)
    result.written += done.written
    return result


def _from_project(diagnostics: Iterable[Diagnostic], prefix: str | None
                  ) -> list[Diagnostic]:
    """``diagnostics`` of files at the repository's top (the tree above the project at
    ``prefix``) named from the project directory (``../../.vscode/settings.json``), as
    every other of ``_scaffold``'s: ``init_project`` names them all from the top."""
    return [d if not d.file or prefix is None
            else d.replace(file=posixpath.relpath(d.file, prefix)) for d in diagnostics]


@contextmanager
def _at_top(prefix: str | None) -> Iterator[None]:
    """Errors of files at the repository's top, named as ``_from_project`` names them
    (``prefix`` None: the files are the project's, named as they are)."""
    try:
        yield
    except MagcfgError as exc:
        if prefix is None:
            raise
        named = BuildError(_from_project(exc.diagnostics, prefix))
        named.exit_code = exc.exit_code
        raise named from None


def project_slug(prefix: str) -> str:
    """A file and job name for the project at ``prefix``, a different one for each path
    and the same whatever other projects the repository has: each ``/`` a ``-``, a ``-``
    inside a directory's name ``--``, letters, digits, ``.`` and ``_`` as they are, any
    other byte (and a ``-`` that starts or ends a name) percent-encoded. ``platform/config``
    -> ``platform-config``, ``a/b`` -> ``a-b``, ``a-b`` -> ``a--b``."""
    # No name's part begins or ends with a dash, so in the slug a lone dash is a `/` and
    # a run of 2n dashes n dashes of a name: the path reads back from its slug.
    return "-".join(map(_slug_part, prefix.split("/")))


def _slug_part(name: str) -> str:
    out = []
    for i, char in enumerate(name):
        if char == "-" and 0 < i < len(name) - 1:
            out.append("--")
        elif char.isascii() and (char.isalnum() or char in "._"):
            out.append(char)
        else:
            out += [f"%{byte:02X}" for byte in char.encode("utf-8", "surrogateescape")]
    return "".join(out)


def ci_file(ci: str, prefix: str) -> str:
    """The repository path of the ``ci`` pipeline of the project at ``prefix``."""
    if ci == "gitlab":
        return CI_FILES["gitlab"]
    return CI_FILES[ci].replace("magcfg.yml", f"magcfg-{project_slug(prefix)}.yml")


def _snapshot_file(prefix: str | None) -> str:
    """The project's snapshot file, from the repository's top."""
    return SNAPSHOT_FILE if prefix is None else f"{prefix}/{SNAPSHOT_FILE}"


def _project_file(prefix: str | None) -> str:
    """The project file init writes, from the repository's top."""
    return "magcfg.yaml" if prefix is None else f"{prefix}/magcfg.yaml"


def _pytest_argument(prefix: str | None) -> str:
    """The project file as pytest's argument: from ``./``, since pytest reads an argument
    that begins with a ``-`` (a directory's name may) as its options."""
    return f"./{_project_file(prefix)}"


def _check_command(prefix: str, *options: str) -> str:
    """``magcfg build --check`` for the project at ``prefix``, as a shell command run
    from the top of the repository."""
    return shlex.join(["magcfg", "build", "--check", *options, "--project",
                       _project_file(prefix)])


def _lint_command(prefix: str) -> str:
    """``magcfg lint`` of the whole repository with the settings of the project at
    ``prefix``, run from the top (every project's layers are checked, docs/lint.md)."""
    return shlex.join(["magcfg", "lint", "--project", _project_file(prefix)])


_PLAIN = re.compile(r"[A-Za-z0-9_^][A-Za-z0-9_./@+=()^|?\\-]*(?: [A-Za-z0-9_./@+=()^|?\\-]+)*")


def yaml_text(text: str) -> str:
    """``text`` as a YAML scalar that reads back as ``text``: plain where that is safe,
    else single-quoted (backslashes stay as they are), else double-quoted (a line end)."""
    # A space or a slash: never a null, boolean, number or date to YAML (1.1 or 1.2).
    if _PLAIN.fullmatch(text) and re.search("[ /]", text):
        return text
    if not re.search("[\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff]", text):
        return "'" + text.replace("'", "''") + "'"
    return json.dumps(text, ensure_ascii=False)


def _pre_commit_hook(prefix: str, indent: str = "  ") -> str:
    files = "^" + re.escape(prefix) + r"/(magcfg\.ya?ml|layers/|schemas/|generated/)"
    return "".join(indent + line + "\n" for line in (
        "- repo: local",
        "  hooks:",
        "    - id: magcfg-build",
        f"      name: {yaml_text(f'magcfg build --check {prefix} (generated/ matches the layers)')}",
        f"      entry: {yaml_text(_check_command(prefix, '--quiet'))}",
        "      language: system",
        "      pass_filenames: false",
        f"      files: {yaml_text(files)}",
        "    - id: magcfg-lint",
        f"      name: {yaml_text(f'magcfg lint (secrets rules, settings of {prefix})')}",
        f"      entry: {yaml_text(_lint_command(prefix))}",
        "      language: system",
        "      types: [file]",
        "      require_serial: true",
    ))


def pre_commit_config(prefix: str) -> str:
    """The repository's ``.pre-commit-config.yaml`` with the hook of the project at
    ``prefix``."""
    return PRE_COMMIT.split("repos:\n")[0] + "repos:\n" + _pre_commit_hook(prefix)


def ci_pipeline(ci: str, prefix: str) -> str:
    """The ``ci`` pipeline of the project at ``prefix``, run from the repository's top."""
    return ci_text(ci, prefix)


def _to_add(name: str, rel: str, prefix: str | None, ci: str) -> list[str]:
    """For a kept file that the repository's projects and tools share (its own hooks, its
    GitLab pipeline): what to add to it, for the project at ``prefix`` (None: at the
    top)."""
    which = "this project" if prefix is None else printable(prefix)
    if rel == ".pre-commit-config.yaml":
        hooks = PRE_COMMIT.split("repos:\n", 1)[1] if prefix is None else _pre_commit_hook(prefix)
        return [f"to check {which} before each commit, add this under `repos:` "
                f"in {printable(name)} (docs/cli.md, init):\n" + hooks]
    if rel == CI_FILES["gitlab"] and ci == "gitlab":
        return [f"to check {which} in CI, add this job to {printable(name)} "
                "(docs/cli.md, init):\n" + _job("gitlab", prefix)]
    return []


def project_file(environments: tuple[str, ...], starter: bool = False) -> str:
    """The project file; ``starter``: with the starter layers, whose ``app.environment``
    differs per environment by design, so ``promote`` must never copy it."""
    layers = "".join(f"  - name: {spec.name}\n    path: {_quoted(spec.path)}\n" for spec in LAYERS)
    intended = (
        "# Keys that differ between environments by design: `magcfg promote` never copies\n"
        "# them (docs/ops/Runbook_ConfigPromotion.md).\n"
        "promote:\n  allow_differences:\n    \"*\": [app.environment]\n") if starter else ""
    return (
        "# magcfg project file (https://github.com/magflock/magcfg, docs/layers.md).\n"
        "# Layers are merged in the order listed (lowest first); {env} is the environment.\n"
        "version: 1\n"
        f"environments: [{', '.join(map(_name_text, environments))}]\n"
        f"layers:\n{layers}"
        "# A strict starting schema inferred from the layers (`magcfg schema infer`):\n"
        "# add descriptions, ranges, enums and x-magcfg-reload, mark secrets x-magcfg-secret.\n"
        f"schema:\n  json: {SCHEMA_PATH}\n"
        "output: generated\n"
        f"{intended}"
    )


def _quoted(path: str) -> str:
    return f'"{path}"' if "{" in path else path


def _starter_layers(name: str, envs: tuple[str, ...]) -> dict[str, bytes]:
    app = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or "app"
    files = {f"{LAYERS[0].path}/app.yaml": (
        "# A starter key: replace it with your own configuration.\n"
        f"app:\n  name: {_name_text(app)}\n  log_level: info\n").encode()}
    for env in envs:
        files[f"{LAYERS[1].directory(env)}/app.yaml"] = (
            f"app:\n  environment: {_name_text(env)}\n".encode())
    return files


def _attributes_decide(root: Path, path: str) -> bool:
    """Whether the ``.gitattributes`` lines init appends in ``root`` (``UNCONVERTED``)
    decide how git checks out ``path``: no ``.gitattributes`` between them and it, which
    would win over them (one above, or earlier in init's file, loses)."""
    parts = path.split("/")[:-1]
    return not any(os.path.lexists(os.path.join(root, *parts[:depth], ".gitattributes"))
                   for depth in range(1, len(parts) + 1))


def _name_text(name: str) -> str:
    """An environment's or the application's name (letters, digits, ``-``, ``_``) as a
    YAML scalar that magcfg reads as that text: plain, else double-quoted. A plain
    ``yes``, ``on`` or ``n`` is refused (YAML 1.1 and 1.2 read it differently), and a
    plain ``1`` is a number."""
    return name if resolve_plain(name) == (name, None) else json.dumps(name)


def _gitignore(current: bytes | None) -> bytes:
    text = _git_text(current)
    lines = {line.strip() for line in text.splitlines()}
    if {CACHE_DIR, f"{CACHE_DIR}/", f"/{CACHE_DIR}/", f"/{CACHE_DIR}"} & lines:
        return current or b""
    return _appended(text, "# magcfg's build cache (authenticated, local to each "
                     f"checkout)\n{CACHE_DIR}/\n")


def _gitattributes(current: bytes | None) -> bytes:
    """``current`` with ``UNCONVERTED_ATTRIBUTES`` on ``UNCONVERTED``, appended: for git
    the last line that sets an attribute wins, so a ``* text=auto`` kept above does not
    convert them."""
    text = _git_text(current)
    lines = {" ".join(line.split()) for line in text.splitlines()}
    missing = [line for path in UNCONVERTED
               if (line := f"{path} {UNCONVERTED_ATTRIBUTES}") not in lines]
    if not missing:
        return current or b""
    return _appended(text, "# magcfg hashes and signs these bytes: no line-end, $Id$ or "
                     "encoding conversion on checkout\n"
                     + "".join(f"{line}\n" for line in missing))


def _git_text(current: bytes | None) -> str:
    """A file of git's (``.gitignore``, ``.gitattributes``) as text whose bytes come back
    as they were: git matches its patterns as bytes, so one in another encoding
    (latin-1's ``café``) must not be made U+FFFD."""
    return (current or b"").decode("utf-8", "surrogateescape")


def _appended(text: str, lines: str) -> bytes:
    """``text`` (``_git_text``) with ``lines`` after its last line, as bytes."""
    if text and not text.endswith("\n"):
        text += "\n"
    return (text + lines).encode("utf-8", "surrogateescape")


class _Overlay(FileSource):
    """The files on disk with ``files`` (about to be written) laid over them."""

    def __init__(self, root: Path, files: dict[str, bytes]) -> None:
        super().__init__(root, (GIT_DIR, "generated", CACHE_DIR))
        self.files = files

    def read_examined(self, path: str) -> tuple[bytes, bool]:
        return (self.files[path], False) if path in self.files \
            else super().read_examined(path)

    def sha256(self, path: str) -> tuple[str, int]:
        if path in self.files:
            return hashlib.sha256(self.files[path]).hexdigest(), len(self.files[path])
        return super().sha256(path)

    def list_layer(self, directory: str, suffixes: tuple[str, ...] = LAYER_SUFFIXES
                   ) -> tuple[list[str], list[Diagnostic]]:
        found, problems = super().list_layer(directory, suffixes)
        new = [p for p in self.files if p.startswith(f"{directory}/") and p.endswith(suffixes)
               and "/." not in p]
        return sorted({*found, *new}, key=lambda p: p.encode()), problems


PRE_COMMIT = """\
# pre-commit (https://pre-commit.com): `pre-commit install` runs this before each commit.
repos:
  - repo: local
    hooks:
      - id: magcfg-build
        name: magcfg build --check (generated/ matches the layers)
        entry: magcfg build --check --quiet
        language: system
        pass_filenames: false
        files: ^(magcfg\\.ya?ml|layers/|schemas/|generated/)
      - id: magcfg-lint
        name: magcfg lint (secrets rules)
        entry: magcfg lint
        language: system
        types: [file]
        require_serial: true
"""

# The test extra is the compiler with pytest and syrupy, which the snapshot step runs.
_INSTALL = f"pip install 'magcfg[test]=={__version__}'"
_HEAD = ("# Every change must leave generated/ matching the layers (magcfg build --check) and\n"
         "# pass the secrets rules (magcfg lint); a change must not take an environment's\n"
         "# version back, as a plain revert of generated/ would: every running service\n"
         "# refuses an older artifact (docs/versioning.md).\n")
# The branch a change goes into: the pull request's target, else the default branch
# (whose own pipeline compares it with itself). Each CI names it in its own variables;
# GitLab and Woodpecker run a job's commands in one shell, GitHub each step in its own.
_TARGET = {
    "gitlab": '"${CI_MERGE_REQUEST_TARGET_BRANCH_NAME:-$CI_DEFAULT_BRANCH}"',
    "woodpecker": '"${CI_COMMIT_TARGET_BRANCH:-$CI_REPO_DEFAULT_BRANCH}"',
}


def _snapshot_command(prefix: str | None) -> str:
    """The project's snapshot tests (README, "Snapshot tests of the compiled config"),
    where it keeps a snapshot file. The file is looked for by the pipeline's shell, so
    that a repository adding snapshots after ``init`` has them run with no new pipeline.
    No ``conftest.py`` is loaded: the snapshot tests need none, and a repository's own (a
    monorepo's Python application's) may import what the pipeline does not install."""
    return (f"if [ -f {shlex.quote(_snapshot_file(prefix))} ]; then "
            f"{shlex.join(['pytest', *_SNAPSHOT_OPTIONS, _pytest_argument(prefix)])}; fi")


_SNAPSHOT_OPTIONS = ("-c", "/dev/null", "--rootdir", ".", "--noconftest",
                     "-p", "magcfg", "-p", "syrupy")
"""pytest's options in the pipeline's snapshot step. The repository's own pytest
configuration (``pytest.ini``, ``pyproject.toml``, ``setup.cfg``, ``tox.ini``, found from
the project's directory up) is not read, an empty file's in its place (``-c``; the
runners are Linux, whatever system init ran on): its ``addopts`` would break the step
(``--cov`` without pytest-cov; so would a ``required_plugins`` or ``usefixtures`` of the
application's), disable it (``-p no:magcfg``) or defeat it (``--snapshot-update``
rewrites every snapshot and passes). Test names stay those from the repository's top,
where the step runs (``--rootdir``), and the plugins the step needs are loaded by name,
even where a runner turns their automatic loading off."""


def _snapshot_comment(prefix: str | None, indent: str) -> str:
    """What the pipeline says above its snapshot step: how to write the snapshots, with
    the step's options (``_SNAPSHOT_OPTIONS``), so that the snapshots are written where
    the step compares them, and with none of the repository's pytest configuration or
    ``conftest.py``, which break, empty or defeat the step's run (and so the update)."""
    update = printable(shlex.join(["pytest", *_SNAPSHOT_OPTIONS, "--snapshot-update",
                                   _pytest_argument(prefix)]))
    return (f"{indent}# The snapshot tests of each environment's compiled config run where the\n"
            f"{indent}# project keeps {printable(_snapshot_file(prefix))}. After a deliberate change,\n"
            f"{indent}#   {update}\n"
            f"{indent}# writes or updates them: commit them. `magcfg promote` updates the entry\n"
            f"{indent}# of the environment it changes.\n")


def _ci_commands(ci: str, prefix: str | None) -> list[str]:
    """The pipeline's commands, as YAML scalars, for the project at ``prefix`` (None: at
    the top of the repository): install, check, lint, snapshot tests, then the
    comparison with the target."""
    check = "magcfg build --check" if prefix is None else _check_command(prefix)
    lint = "magcfg lint" if prefix is None else _lint_command(prefix)
    snapshots = _snapshot_command(prefix)
    if ci == "github":
        # A pull request's checkout is its merge into the target: the target's tree is
        # all `build --since` reads, while `lint --since` reads each commit the pull
        # request brings, which the checkout fetches whole (`fetch-depth: 0`). A
        # shallow fetch of the target here would cut the history below its tip, and
        # every older commit would read as the pull request's.
        fetch = ('git fetch --no-tags origin "+refs/heads/$GITHUB_BASE_REF:'
                 'refs/remotes/origin/$GITHUB_BASE_REF"')
        since = f'{check} --since "origin/$GITHUB_BASE_REF"'
        history = f'{lint} --since "origin/$GITHUB_BASE_REF"'
        commands = [_INSTALL, check, lint, snapshots, fetch, since, history]
    else:
        # The commit is compared with where it left the target, their merge base, as a
        # pull request's merge into its target is on GitHub. The target's tip would
        # fail the pipeline of a commit the default branch has since moved past (a newer
        # version there is no step back of this commit's), and a merge request whose
        # target moved on. The target is fetched down to the commits the clone has; a
        # clone too shallow to hold the merge base is deepened, only then.
        shell = ['git fetch --no-tags origin "+refs/heads/$TARGET:refs/remotes/origin/$TARGET"',
                 'BASE="$(git merge-base HEAD "origin/$TARGET" || { git fetch -q --no-tags '
                 '--unshallow origin && git merge-base HEAD "origin/$TARGET"; })"',
                 # A merge request that merged its target in has the merge base near its
                 # tip, and its own older commits may lie below where the clone stops
                 # (a commit of .git/shallow since the base): deepened then too.
                 'if git rev-list "$BASE..HEAD" | grep -qxFf "$(git rev-parse --git-path '
                 'shallow)" 2>/dev/null; then git fetch -q --no-tags --unshallow origin; fi',
                 f'{check} --since "$BASE"',
                 # A secret a commit added and a later one removed is in the history
                 # merged: every commit since the merge base is checked.
                 f'{lint} --since "$BASE"']
        commands = [_INSTALL, check, lint, snapshots, f"TARGET={_TARGET[ci]}", *shell]
    return [yaml_text(c) if c != _INSTALL else c for c in commands]


def ci_text(ci: str, prefix: str | None) -> str:
    """The ``ci`` pipeline of the project at ``prefix`` (None: at the top), run from the
    repository's top."""
    return _HEAD + _job(ci, prefix)


def _job(ci: str, prefix: str | None) -> str:
    """``ci_text`` without its heading comment: what a kept ``.gitlab-ci.yml`` gets."""
    install, check, lint, snapshots, *rest = _ci_commands(ci, prefix)
    if ci == "github":
        fetch, since, history = rest
        name = "magcfg" if prefix is None else yaml_text(f"magcfg {prefix}")
        return f"""\
name: {name}
on: [push, pull_request]
permissions:
  contents: read
jobs:
  config:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
        with:
          fetch-depth: 0
      - uses: actions/setup-python@v5
        with:
          python-version: "3.12"
      - run: {install}
      - run: {check}
      - run: {lint}
{_snapshot_comment(prefix, "      ")}\
      - run: {snapshots}
      - if: github.event_name == 'pull_request'
        run: {fetch}
      - if: github.event_name == 'pull_request'
        run: {since}
      - if: github.event_name == 'pull_request'
        run: {history}
"""
    if ci == "gitlab":
        name = "magcfg" if prefix is None else f"magcfg-{project_slug(prefix)}"
        return (f"{name}:\n  image: python:3.12\n  script:\n"
                + "".join(f"    - {c}\n" for c in (install, check, lint))
                + _snapshot_comment(prefix, "    ")
                + "".join(f"    - {c}\n" for c in (snapshots, *rest)))
    # Woodpecker substitutes its variables (`$NAME`, `${NAME}`) in the pipeline's text
    # before it parses it, `$$` standing for `$`: every `$` is the shell's, or a path's.
    return ("steps:\n  - name: magcfg\n    image: python:3.12\n    commands:\n"
            + "".join(f"      - {c}\n" for c in (install, check, lint))
            + _snapshot_comment(prefix, "      ")
            + "".join(f"      - {c}\n" for c in (snapshots, *rest))).replace("$", "$$")


CI_PIPELINES = {ci: ci_text(ci, None) for ci in ("github", "gitlab", "woodpecker")}
