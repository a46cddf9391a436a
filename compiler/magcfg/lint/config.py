"""Lint settings: defaults, overridden by the ``lint:`` section of the magcfg project file.

The project file is optional: ``magcfg lint`` runs on any repository (users' app repos
too). Only the keys lint needs are read here, leniently typed but strictly checked.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..durable import MAX_INPUT_BYTES, read_located
from ..errors import BuildError, Diagnostic
from .findings import RULES

DEFAULT_DEPLOY_PATHS = ("deploy", "k8s", "kubernetes", "docker", "helm", "charts", "manifests")
DEFAULT_BASELINE = ".magcfg-lint-baseline.json"


@dataclass(frozen=True)
class DirectVault:
    """An app allowed to read Vault directly, with the reason recorded in the project file."""

    app: str
    path: str
    justification: str


@dataclass(frozen=True)
class LintConfig:
    """Everything a lint run may be configured with."""

    deploy_paths: tuple[str, ...] = DEFAULT_DEPLOY_PATHS
    exclude: tuple[str, ...] = ()
    """The project file's globs (``lint.exclude``)."""
    command_exclude: tuple[str, ...] = ()
    """The globs of ``--exclude``: the operator's, honoured whatever ``--since`` REF holds
    (``target``)."""
    disable: tuple[str, ...] = ()
    direct_vault: tuple[DirectVault, ...] = ()
    project_file: str | None = None
    project_named: str | None = None
    """The project file from the repository's top as the operator named it, a link a
    pull request commits on its way not followed (``durable.operator_name_in_checkout``):
    where ``--since`` reads REF's version (``target``). None outside the repository
    (``--project /etc/ci/magcfg.yaml``): the operator's, whose settings apply whatever
    REF holds."""
    raw_project: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    project_bytes: bytes = field(default=b"", compare=False, repr=False)
    """The project file as read: where a setting's line is found (``syntax.locate``)."""

    def excludes(self, name: str) -> bool:
        """Whether a glob of the project file's or of ``--exclude`` names ``name``."""
        return excluded(name, self.command_exclude) or excluded(name, self.exclude)


def excluded(name: str, patterns: Sequence[str]) -> bool:
    """Whether one of the globs ``patterns`` names ``name``, a path from the lint root,
    or a directory above it."""
    return any(fnmatch.fnmatchcase(name, p) or name.startswith(p.rstrip("/") + "/")
               for p in patterns)


def find_project_file(root: Path, start: Path | None = None) -> Path | None:
    """The nearest magcfg project file in ``start`` (default: ``root``) or a parent, up
    to the lint root and never above it (a project of a monorepo's subdirectory)."""
    from ..project import nearest_project_file

    here = start or root
    return nearest_project_file(here.parent if here.is_file() else here, root)


def load_config(root: Path, project_file: Path | None = None,
                start: Path | None = None) -> LintConfig:
    """Read lint settings from ``project_file`` (default: the nearest magcfg.yaml from
    ``start`` up to ``root``)."""
    path = project_file or find_project_file(root, start)
    if path is None:
        return LintConfig()
    # Named as every finding names a file, from the lint root, as the build names it.
    inside = _from_root(root, path)
    rel = inside if inside is not None else str(path)
    raw = read_located(path, rel, MAX_INPUT_BYTES)
    from ..project import check_project_bytes

    check_project_bytes(path, raw, rel)
    from ..durable import operator_name_in_checkout

    return replace(parse_config(raw, rel),
                   project_named=operator_name_in_checkout(path, str(root.resolve())))


def parse_config(raw: bytes, rel: str) -> LintConfig:
    """The lint settings of a project file's bytes ``raw``, named ``rel`` in errors (a
    ``BuildError``, located)."""
    import yaml

    from ..syntax.strict_yaml import LoadFailed, decode_text

    try:
        data = yaml.safe_load(decode_text(rel, raw))
    except LoadFailed as exc:
        raise BuildError(exc.diagnostics) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise BuildError([Diagnostic(rel, line, None,
                                     "project file is not valid YAML: "
                                     f"{getattr(exc, 'problem', None) or exc}")]) from None
    except RecursionError:  # PyYAML composes recursively; the build bounds the depth
        raise BuildError([Diagnostic(rel, None, None, "project file is not valid "
                                     "YAML: nested too deep")]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise BuildError([Diagnostic(rel, 1, None, "project file must be a mapping")])
    from ..project import LINT_KEYS, unknown_key
    from ..syntax.locate import locate

    def located(key: str, message: str) -> Diagnostic:
        line = locate(rel, raw, tuple(re.split(r"[.\[\]]+", key.strip("]"))))
        return Diagnostic(rel, line, key, message)

    # Every misspelt key at once, as the build reports them: a setting that is silently
    # ignored weakens the gate without anyone noticing.
    lint = data.get("lint")
    unknown = [located(f"lint.{key}", unknown_key(key, LINT_KEYS))
               for key in (lint if isinstance(lint, dict) else ()) if key not in LINT_KEYS]
    if unknown:
        raise BuildError(unknown)
    try:
        return replace(_config(data, rel), project_bytes=raw)
    except _Bad as exc:
        raise BuildError([located(exc.key, exc.message)]) from None


def _config(data: dict[str, Any], rel: str) -> LintConfig:
    lint = _mapping(data.get("lint"), rel, "lint")
    secrets = _mapping(data.get("secrets"), rel, "secrets")
    deploy = _strings(lint.get("deploy_paths"), rel, "lint.deploy_paths")
    disable = _strings(lint.get("disable"), rel, "lint.disable") or []
    unknown = [r for r in disable if r not in RULES]
    if unknown:
        raise _Bad("lint.disable", f"unknown rule {unknown[0]!r} (known: {', '.join(RULES)})")
    return LintConfig(
        deploy_paths=tuple(p.strip("/") for p in deploy) if deploy is not None
        else DEFAULT_DEPLOY_PATHS,
        exclude=tuple(_strings(lint.get("exclude"), rel, "lint.exclude") or ()),
        disable=tuple(disable),
        direct_vault=_direct_vault(secrets.get("direct_vault"), rel),
        project_file=rel,
        raw_project=data,
    )


def _from_root(root: Path, path: Path) -> str | None:
    """``path`` from the lint root; None outside it."""
    # The directory resolved, not the file: a link is named as itself, where it is.
    try:
        return (path.parent.resolve() / path.name).relative_to(root.resolve()).as_posix()
    except ValueError:
        return None


class _Bad(Exception):
    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = message


def _bad(rel: str, key: str, message: str) -> _Bad:
    return _Bad(key, message)


def _mapping(value: Any, rel: str, key: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _bad(rel, key, "must be a mapping")
    return value


def _strings(value: Any, rel: str, key: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _bad(rel, key, "must be a list of non-empty strings")
    return list(value)


def _direct_vault(value: Any, rel: str) -> tuple[DirectVault, ...]:
    if value is None:
        return ()
    key = "secrets.direct_vault"
    if not isinstance(value, list):
        raise _bad(rel, key, "must be a list of {app, path, justification}")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, dict) or not isinstance(item.get("app"), str):
            raise _bad(rel, f"{key}[{i}]", "needs an `app` name")
        justification = item.get("justification")
        if not isinstance(justification, str) or not justification.strip():
            raise _bad(rel, f"{key}[{i}].justification",
                       f"Direct-Vault for app {item['app']!r} needs a justification")
        path = item.get("path", "")
        out.append(DirectVault(item["app"], str(path), justification.strip()))
    return tuple(out)
