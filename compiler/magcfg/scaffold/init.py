"""``magcfg init``: a new project that builds, in an empty or existing repository.

It writes the project file, a layer directory per layer and environment (a starter key
when the repository has no ``layers/`` yet), a starting JSON Schema inferred from those
layers (``scaffold.infer``), the ``.gitignore`` entry for the build cache, a CI pipeline
and a pre-commit hook that run ``magcfg build --check``, then runs the first build. Every
environment is compiled in memory first: if anything fails, nothing is written. Files
that exist already are kept (and reported), except the project file, whose presence
stops ``init``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..compiler import build, compile_environment
from ..durable import Tree
from ..errors import BuildError, Diagnostic, UsageError
from ..pipeline.load import LAYER_SUFFIXES, FileSource
from ..project import GIT_DIR, PROJECT_FILE_NAMES, LayerSpec, Project, load_project
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


@dataclass
class InitResult:
    root: Path
    written: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    built: list[str] = field(default_factory=list)


def init_project(root: Path, environments: Iterable[str] = DEFAULT_ENVIRONMENTS,
                 ci: str = "github") -> InitResult:
    """Scaffold a project in ``root`` and build it. Raises ``UsageError`` for bad
    arguments or an existing project file, ``BuildError`` if the layers found do not
    build; in both cases nothing is written."""
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
        raise UsageError(f"{given} does not exist: create it first (git init {given})")
    if not root.is_dir():
        raise UsageError(f"{given} is not a directory")
    for name in PROJECT_FILE_NAMES:
        if os.path.lexists(root / name):
            raise BuildError([Diagnostic(name, None, None, "a project file exists already: "
                                         "magcfg init starts a new project only",
                                         code="init")])
    tree = Tree(root, (GIT_DIR,))
    files: dict[str, bytes] = {"magcfg.yaml": project_file(envs).encode()}
    if not os.path.lexists(root / "layers"):
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
    files[".gitignore"] = _gitignore(tree.read_optional(".gitignore"))
    if ci != "none":
        files[CI_FILES[ci]] = CI_PIPELINES[ci].encode()
    files[".pre-commit-config.yaml"] = PRE_COMMIT.encode()
    # Editors check and complete layer files and the project file (yaml-language-server).
    document = json.loads(files.get(SCHEMA_PATH) or tree.read(SCHEMA_PATH))
    files[LAYER_SCHEMA_PATH] = schema_bytes(layer_schema(document))
    files[PROJECT_SCHEMA_PATH] = project_schema()
    current = tree.read_optional(VSCODE_SETTINGS)
    try:
        settings = json.loads(current) if current else None
    except ValueError:  # JSON with comments: the user's to edit (docs/editors.md)
        settings = False
    if settings is not False and (settings is None or isinstance(settings, dict)):
        files[VSCODE_SETTINGS] = editor_settings(
            sorted({f"{spec.path.split('{env}')[0].rstrip('/')}/**/*.yaml" for spec in LAYERS}),
            LAYER_SCHEMA_PATH, PROJECT_SCHEMA_PATH, settings)

    result = InitResult(root)
    for rel, data in files.items():
        if rel not in (".gitignore", VSCODE_SETTINGS) and os.path.lexists(root / rel):
            result.kept.append(rel)
            continue
        if rel in (".gitignore", VSCODE_SETTINGS) and tree.read_optional(rel) == data:
            continue
        tree.replace(rel, data)
        result.written.append(rel)
    done = build(load_project(root / "magcfg.yaml"))
    result.built = list(done.environments)
    result.written += done.written
    return result


def project_file(environments: tuple[str, ...]) -> str:
    layers = "".join(f"  - name: {spec.name}\n    path: {_quoted(spec.path)}\n" for spec in LAYERS)
    return (
        "# magcfg project file (https://github.com/magflock/magcfg, docs/layers.md).\n"
        "# Layers are merged in the order listed (lowest first); {env} is the environment.\n"
        "version: 1\n"
        f"environments: [{', '.join(environments)}]\n"
        f"layers:\n{layers}"
        "# A strict starting schema inferred from the layers (`magcfg schema infer`):\n"
        "# add descriptions, ranges, enums and x-magcfg-reload, mark secrets x-magcfg-secret.\n"
        f"schema:\n  json: {SCHEMA_PATH}\n"
        "output: generated\n"
    )


def _quoted(path: str) -> str:
    return f'"{path}"' if "{" in path else path


def _starter_layers(name: str, envs: tuple[str, ...]) -> dict[str, bytes]:
    app = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or "app"
    files = {f"{LAYERS[0].path}/app.yaml": (
        "# A starter key: replace it with your own configuration.\n"
        f"app:\n  name: {app}\n  log_level: info\n").encode()}
    for env in envs:
        files[f"{LAYERS[1].directory(env)}/app.yaml"] = f"app:\n  environment: {env}\n".encode()
    return files


def _gitignore(current: bytes | None) -> bytes:
    text = (current or b"").decode("utf-8", "replace")
    lines = {line.strip() for line in text.splitlines()}
    if {CACHE_DIR, f"{CACHE_DIR}/", f"/{CACHE_DIR}/", f"/{CACHE_DIR}"} & lines:
        return current or b""
    if text and not text.endswith("\n"):
        text += "\n"
    text += f"# magcfg's build cache (authenticated, local to each checkout)\n{CACHE_DIR}/\n"
    return text.encode("utf-8")


class _Overlay(FileSource):
    """The files on disk with ``files`` (about to be written) laid over them."""

    def __init__(self, root: Path, files: dict[str, bytes]) -> None:
        super().__init__(root, (GIT_DIR, "generated", CACHE_DIR))
        self.files = files

    def read(self, path: str) -> bytes:
        return self.files[path] if path in self.files else super().read(path)

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
"""

_INSTALL = f"pip install 'magcfg[compiler]=={__version__}'"
CI_PIPELINES = {
    "github": f"""\
# Every change must leave generated/ matching the layers (magcfg build --check).
name: magcfg
on: [push, pull_request]
permissions:
  contents: read
jobs:
  config:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: "3.12"
      - run: {_INSTALL}
      - run: magcfg build --check
""",
    "gitlab": f"""\
# Every change must leave generated/ matching the layers (magcfg build --check).
magcfg:
  image: python:3.12
  script:
    - {_INSTALL}
    - magcfg build --check
""",
    "woodpecker": f"""\
# Every change must leave generated/ matching the layers (magcfg build --check).
steps:
  - name: magcfg
    image: python:3.12
    commands:
      - {_INSTALL}
      - magcfg build --check
""",
}
