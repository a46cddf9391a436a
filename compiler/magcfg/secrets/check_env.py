"""``magcfg check-env``: at service start-up, is every secret of the artifact resolvable?

Reads ``config.json`` of ``generated/<env>/`` (after checking its digest against
``manifest.json``), finds every secret reference in it and checks that what delivers the
value is there:

* ``vault://`` (External Secrets delivery): the env var ``env_var_name(key)`` that the
  Deployment injects with ``secretKeyRef`` is set and non-empty;
* ``env://VAR``: ``VAR`` is set and non-empty;
* ``vault+direct://``: the app reads Vault itself, so ``VAULT_ADDR`` is set.

Only names are reported, never values. Light on purpose (standard library only): a
service embedding magcfg, or the runtime kernel, can call ``check_env`` at boot.

    >>> result = check_env("generated/production", os.environ)
    >>> if not result.ok: sys.exit("missing secrets: " + ", ".join(result.missing_names))
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..durable import PathError, Tree
from ..errors import Diagnostic, MagcfgError
from .references import SecretRef, env_var_name, references

VAULT_ADDR = "VAULT_ADDR"


class ArtifactError(MagcfgError):
    """The artifact directory cannot be read or does not agree with its manifest."""


@dataclass(frozen=True)
class RequiredSecret:
    """One secret the artifact needs: its config key, reference scheme and the name of
    the env var that must carry it (or ``VAULT_ADDR`` for Direct-Vault)."""

    key: str
    scheme: str
    name: str
    present: bool


@dataclass(frozen=True)
class EnvCheck:
    """The verdict of ``check_env``."""

    environment: str
    required: tuple[RequiredSecret, ...]

    @property
    def missing(self) -> tuple[RequiredSecret, ...]:
        return tuple(r for r in self.required if not r.present)

    @property
    def missing_names(self) -> list[str]:
        """Sorted, unique names of the env vars that are missing or empty."""
        return sorted({r.name for r in self.missing})

    @property
    def ok(self) -> bool:
        return not self.missing

    def as_json(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "ok": self.ok,
            "required": len(self.required),
            "missing": [{"key": r.key, "name": r.name, "scheme": r.scheme} for r in self.missing],
        }


def delivery_name(keypath: tuple[str, ...], ref: SecretRef) -> str:
    """The env var that carries the value of ``ref`` used at ``keypath``."""
    if ref.scheme == "env":
        return ref.var
    if ref.direct:
        return VAULT_ADDR
    return env_var_name(keypath)


def resolve(keypath: tuple[str, ...], ref: SecretRef, environ: Mapping[str, str]) -> str | None:
    """The secret's value from the environment, or None (missing, empty, or Direct-Vault,
    which the app reads from Vault itself)."""
    if ref.direct:
        return None
    return environ.get(delivery_name(keypath, ref)) or None


def read_config(artifact_dir: str | os.PathLike[str], env: str | None = None) -> tuple[str, Any]:
    """(environment, config) of an artifact directory; config.json must match the digest
    in manifest.json, and the manifest's environment must be ``env`` when given."""
    base = Path(artifact_dir)
    tree = Tree(base)
    try:
        manifest_raw = tree.read("manifest.json")
        config_raw = tree.read("config.json")
    except PathError as exc:
        found = exc.diagnostics[0]
        raise ArtifactError([Diagnostic(str(base / found.file), None, None,
                                        f"cannot read the artifact: {found.message}",
                                        code="artifact")]) from None
    try:
        manifest = json.loads(manifest_raw)
        config = json.loads(config_raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ArtifactError([Diagnostic(str(base), None, None,
                                        f"artifact is not valid JSON: {type(exc).__name__}",
                                        code="artifact")]) from None
    if not isinstance(manifest, dict) or not isinstance(config, dict):
        raise ArtifactError([Diagnostic(str(base), None, None, "artifact files must be JSON objects",
                                        code="artifact")])
    digest = "sha256:" + hashlib.sha256(config_raw).hexdigest()
    if manifest.get("config_digest") != digest:
        raise ArtifactError([Diagnostic(str(base / "config.json"), None, None,
                                        "config.json does not match the digest in manifest.json "
                                        "(torn or tampered artifact)", code="artifact")])
    environment = str(manifest.get("environment", ""))
    if env is not None and environment != env:
        raise ArtifactError([Diagnostic(str(base / "manifest.json"), None, "environment",
                                        f"this artifact is for environment {environment!r}, "
                                        f"not {env!r}", code="artifact")])
    return environment, config


def check_config(environment: str, config: Any, environ: Mapping[str, str]) -> EnvCheck:
    """Check a loaded config against ``environ`` (no files read)."""
    required = []
    for keypath, ref in references(config):
        name = delivery_name(keypath, ref)
        required.append(RequiredSecret(".".join(keypath), ref.scheme, name, bool(environ.get(name))))
    return EnvCheck(environment, tuple(required))


def check_env(artifact_dir: str | os.PathLike[str], environ: Mapping[str, str] | None = None,
              env: str | None = None) -> EnvCheck:
    """Is every secret of the artifact in ``artifact_dir`` resolvable from ``environ``
    (default: ``os.environ``)? Raises ``ArtifactError`` for an unreadable artifact."""
    environment, config = read_config(artifact_dir, env)
    return check_config(environment, config, os.environ if environ is None else environ)
