"""The project file (``magcfg.yaml``): environments, ordered layers, schema, output.

Feature sections (``secrets``, ``signing``, ``promote``, ``lint``, ...) are kept raw in
``Project.settings`` and read by the stage that owns them; unknown top-level sections
are errors so a typo never silently disables a rule.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import BuildError, Diagnostic, UsageError
from .syntax.locate import locate
from .syntax.strict_yaml import LoadFailed, parse_layer

PROJECT_FILE_NAMES = ("magcfg.yaml", "magcfg.yml")
KNOWN_SECTIONS = frozenset({
    "version", "environments", "layers", "schema", "output", "cache",
    # feature sections, each validated by the stage that owns it
    "secrets", "redact", "signing", "promote", "lint", "cue", "runtime",
})
_ENV_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


@dataclass(frozen=True)
class LayerSpec:
    """One entry of ``layers:``. ``path`` may contain ``{env}``."""

    name: str
    path: str

    def directory(self, env: str) -> str:
        return self.path.replace("{env}", env)


@dataclass(frozen=True)
class Project:
    """A loaded project file. Paths are relative to ``root`` with ``/`` separators."""

    root: Path
    file: str
    environments: tuple[str, ...]
    layers: tuple[LayerSpec, ...]
    json_schema: str | None
    cue_schema: str | None
    output: str
    cache_dir: str
    settings: dict[str, Any] = field(default_factory=dict)
    digest: str = ""

    def path(self, relative: str) -> Path:
        return self.root / relative

    def check_envs(self, envs: list[str] | None) -> tuple[str, ...]:
        """The environments asked for, in project order; unknown names are usage errors."""
        if not envs:
            return self.environments
        unknown = [e for e in envs if e not in self.environments]
        if unknown:
            prefixed = [e for e in self.environments if e.startswith(unknown[0])]
            hint = prefixed[:1] or difflib.get_close_matches(unknown[0], self.environments, n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise UsageError(f"unknown environment {unknown[0]!r}{extra}; "
                             f"known: {', '.join(self.environments)}")
        return tuple(e for e in self.environments if e in envs)


def find_project_file(start: Path | None = None) -> Path:
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        for name in PROJECT_FILE_NAMES:
            candidate = directory / name
            if candidate.is_file():
                return candidate
    raise UsageError(f"no {PROJECT_FILE_NAMES[0]} in {here} or its parents "
                     "(use --project FILE)")


def load_project(path: str | os.PathLike[str] | None = None) -> Project:
    """Read and check a project file (default: ``magcfg.yaml`` here or in a parent)."""
    file = Path(path) if path is not None else find_project_file()
    if not file.is_file():
        raise UsageError(f"project file {file} not found")
    root = file.resolve().parent
    name = file.name
    raw = file.read_bytes()
    try:
        data, _ = parse_layer(name, raw)
    except LoadFailed as exc:
        raise BuildError(exc.diagnostics) from None

    errors: list[Diagnostic] = []

    def err(keypath: tuple[str, ...], message: str) -> None:
        errors.append(Diagnostic(name, locate(name, raw, keypath), ".".join(keypath) or None,
                                 message, code="project"))

    for key in data:
        if key not in KNOWN_SECTIONS:
            hint = difflib.get_close_matches(key, sorted(KNOWN_SECTIONS), n=1)
            err((key,), f"unknown section {key!r}" + (f" (did you mean {hint[0]!r}?)" if hint else ""))

    envs = data.get("environments")
    if not isinstance(envs, list) or not envs or not all(isinstance(e, str) for e in envs):
        err(("environments",), "environments must be a non-empty list of names")
        envs = []
    for e in envs:
        if isinstance(e, str) and not _ENV_NAME.match(e):
            err(("environments",), f"environment name {e!r} must match {_ENV_NAME.pattern}")
    if len(set(envs)) != len(envs):
        err(("environments",), "environment names must be unique")

    layers: list[LayerSpec] = []
    raw_layers = data.get("layers")
    if not isinstance(raw_layers, list) or not raw_layers:
        err(("layers",), "layers must be a non-empty list of {name, path}")
        raw_layers = []
    for i, entry in enumerate(raw_layers):
        if (not isinstance(entry, dict) or set(entry) - {"name", "path"}
                or not isinstance(entry.get("name"), str) or not isinstance(entry.get("path"), str)):
            err(("layers", str(i)), "each layer is a mapping with a string name and path")
            continue
        if not _inside(root, entry["path"].replace("{env}", "x")):
            err(("layers", str(i), "path"), "layer paths must stay inside the project")
            continue
        layers.append(LayerSpec(entry["name"], entry["path"].strip("/")))
    if len({spec.name for spec in layers}) != len(layers):
        err(("layers",), "layer names must be unique")

    schema = data.get("schema", {})
    json_schema = cue_schema = None
    if not isinstance(schema, dict) or set(schema) - {"json", "cue", "cue_definition"}:
        err(("schema",), "schema is a mapping with keys json and/or cue")
    else:
        json_schema = schema.get("json")
        cue_schema = schema.get("cue")
        for key, value in (("json", json_schema), ("cue", cue_schema)):
            if value is not None and (not isinstance(value, str) or not _inside(root, value)):
                err(("schema", key), "schema paths are strings inside the project")
        if json_schema is None and cue_schema is None:
            err(("schema",), "name a schema: schema.json and/or schema.cue")
        definition = schema.get("cue_definition")
        if definition is not None and cue_schema is None:
            err(("schema", "cue_definition"), "cue_definition needs schema.cue")
        elif definition is not None and (not isinstance(definition, str)
                                         or not re.fullmatch(r"#[A-Za-z_][A-Za-z0-9_]*", definition)):
            err(("schema", "cue_definition"),
                f"cue_definition must name a CUE definition like '#Config', not {definition!r}")

    output = data.get("output", "generated")
    if not isinstance(output, str) or not _inside(root, output) or output.strip("/") in ("", "."):
        err(("output",), "output must be a directory inside the project")
        output = "generated"
    cache = data.get("cache", ".magcfg-cache")
    if not isinstance(cache, str) or not _inside(root, cache):
        err(("cache",), "cache must be a directory inside the project")
        cache = ".magcfg-cache"
    if data.get("version", 1) != 1:
        err(("version",), "this magcfg reads project files of version 1")

    if errors:
        raise BuildError(errors)
    import hashlib

    return Project(
        root=root,
        file=name,
        environments=tuple(envs),
        layers=tuple(layers),
        json_schema=json_schema,
        cue_schema=cue_schema,
        output=output.strip("/"),
        cache_dir=cache.strip("/"),
        settings=data,
        digest=hashlib.sha256(raw).hexdigest(),
    )


def _inside(root: Path, relative: str) -> bool:
    if os.path.isabs(relative):
        return False
    return os.path.normpath(os.path.join(str(root), relative)).startswith(str(root))
