"""``magcfg secrets verify``: does every Vault reference of an environment resolve on a
live Vault or OpenBao server?

The environment is compiled in memory (nothing written), every ``vault://`` and
``vault+direct://`` reference is read from the server (each secret once) and checked: the
KV v2 path exists, its current version is neither deleted nor destroyed, and it holds the
referenced key. Each problem is located at the layer line that set the reference. Values
are only looked up as keys of the secret's data: none is returned, printed or kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..compiler import compile_environment
from ..errors import Diagnostic
from ..keyglob import format_keypath
from ..project import Project
from ..secrets.references import SecretRef, references
from ..secrets.settings import load_secret_settings
from ..secrets.vault import KvRead, VaultSession, vault_config


@dataclass(frozen=True)
class Unresolved:
    """One reference that does not resolve, located at the layer that set it."""

    key: str
    reference: str
    problem: str  # missing-path, missing-key, deleted, destroyed, denied
    diagnostic: Diagnostic


@dataclass(frozen=True)
class VerifyReport:
    environment: str
    addr: str | None
    checked: int
    secrets: int
    unresolved: tuple[Unresolved, ...]

    @property
    def ok(self) -> bool:
        return not self.unresolved

    def as_json(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "vault": self.addr,
            "ok": self.ok,
            "references": self.checked,
            "secrets": self.secrets,
            "unresolved": [{"key": u.key, "reference": u.reference, "problem": u.problem,
                            "file": u.diagnostic.file, "line": u.diagnostic.line,
                            "message": u.diagnostic.message} for u in self.unresolved],
        }


def verify_secrets(project: Project, env: str, environ: Mapping[str, str]) -> VerifyReport:
    """Check every Vault reference of ``env`` against the server ``environ`` names.

    Raises ``UsageError`` (no address or credentials), ``BuildError`` (the layers do not
    build) or ``VaultError`` (the server cannot be used: unreachable, too slow, TLS,
    refused credentials)."""
    env = project.check_envs([env])[0]
    settings, _ = load_secret_settings(project)
    artifact = compile_environment(project, env)
    refs = [(k, r) for k, r in references(artifact.config) if r.is_vault]
    if not refs:
        return VerifyReport(env, None, 0, 0, ())
    config = vault_config(environ, settings.vault_address(env))
    session = VaultSession(config)
    session.login()
    reads: dict[tuple[str, str], KvRead] = {}
    for _, ref in refs:
        if (ref.mount, ref.path) not in reads:
            reads[ref.mount, ref.path] = session.read_kv(ref.mount, ref.path)
    context = artifact.context
    assert context is not None
    unresolved = []
    for keypath, ref in refs:
        found = reads[ref.mount, ref.path]
        problem, message = _problem(ref, found)
        if problem is None:
            continue
        unresolved.append(Unresolved(format_keypath(keypath), str(ref), problem,
                                     context.locate(keypath, f"{ref}: {message}", "vault-verify")))
    return VerifyReport(env, config.addr, len(refs), len(reads), tuple(unresolved))


def _problem(ref: SecretRef, found: KvRead) -> tuple[str | None, str]:
    if found.status != "ok":
        return found.status, found.describe()
    if ref.key not in found.data:
        return "missing-key", (f"the key {ref.key!r} is not in the current version "
                               f"({found.version}) of {ref.mount}/{ref.path}")
    return None, ""


def format_report(report: VerifyReport) -> list[str]:
    """The text report: one located line per unresolved reference, then a summary."""
    lines = [u.diagnostic.format() for u in report.unresolved]
    if report.addr is None:
        lines.append(f"secrets verify: {report.environment}: no Vault references to check")
    elif report.ok:
        lines.append(f"secrets verify: {report.environment}: all {report.checked} Vault "
                     f"reference(s) resolve ({report.secrets} secret(s) at {report.addr})")
    else:
        lines.append(f"secrets verify: {report.environment}: {len(report.unresolved)} of "
                     f"{report.checked} Vault reference(s) do not resolve at {report.addr}")
    return lines
