"""``magcfg secrets verify``: does every Vault reference of an environment resolve on a
live Vault or OpenBao server?

The environment is compiled in memory (nothing written), every ``vault://`` and
``vault+direct://`` reference is read from the server (each secret once) and checked: the
KV v2 path exists, its current version is neither deleted nor destroyed, and it holds the
referenced key. Each problem is located at the layer line that set the reference. Values
are only looked up as keys of the secret's data: none is returned, printed or kept.

A reference on a dynamic-secret mount (``secrets.vault.dynamic_mounts``) is never read:
reading ``database/creds/<role>`` would issue new credentials and a lease. Only its role
is checked, by reading ``<mount>/roles/<role>`` (``static-creds/<role>``:
``<mount>/static-roles/<role>``): a missing role is ``missing-role``; when the token may
not read the role, or the path has another shape, the reference is skipped with a note.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
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
    problem: str  # missing-path, missing-key, deleted, destroyed, denied, missing-role
    diagnostic: Diagnostic


@dataclass(frozen=True)
class VerifyReport:
    environment: str
    addr: str | None
    checked: int
    secrets: int
    unresolved: tuple[Unresolved, ...]
    skipped: tuple[str, ...] = ()
    """Notes on the dynamic-secret references not checked (no value in them)."""

    @property
    def ok(self) -> bool:
        return not self.unresolved

    def as_json(self, name: Callable[[str], str]) -> dict[str, Any]:
        """The JSON report, each file named by ``name`` as the text names it."""
        return {
            "environment": self.environment,
            "vault": self.addr,
            "ok": self.ok,
            "references": self.checked,
            "secrets": self.secrets,
            "unresolved": [{"key": u.key, "reference": u.reference, "problem": u.problem,
                            "file": name(u.diagnostic.file), "line": u.diagnostic.line,
                            "message": u.diagnostic.message} for u in self.unresolved],
            "skipped": list(self.skipped),
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
    roles: dict[tuple[str, str], bool | None] = {}
    for _, ref in refs:
        if settings.is_dynamic(ref.mount):
            role = role_path(ref.path)
            if role is not None and (ref.mount, role) not in roles:
                roles[ref.mount, role] = session.exists(f"{ref.mount}/{role}")
        elif (ref.mount, ref.path) not in reads:
            reads[ref.mount, ref.path] = session.read_kv(ref.mount, ref.path)
    context = artifact.context
    assert context is not None
    unresolved = []
    skipped: list[str] = []
    for keypath, ref in refs:
        if settings.is_dynamic(ref.mount):
            role = role_path(ref.path)
            found_role = None if role is None else roles[ref.mount, role]
            if found_role is False:
                unresolved.append(Unresolved(
                    format_keypath(keypath), str(ref), "missing-role", context.locate(
                        keypath, f"{ref}: the dynamic-secret role {ref.mount}/{role} does not "
                        "exist", "vault-verify")))
            elif found_role is None:
                why = ("the token may not read " + f"{ref.mount}/{role}" if role is not None
                       else "not a creds/<role> or static-creds/<role> path")
                skipped.append(f"{format_keypath(keypath)}: {ref}: dynamic secret not checked "
                               f"({why}; its credentials are never read)")
            continue
        found = reads[ref.mount, ref.path]
        problem, message = _problem(ref, found)
        if problem is None:
            continue
        unresolved.append(Unresolved(format_keypath(keypath), str(ref), problem,
                                     context.locate(keypath, f"{ref}: {message}", "vault-verify")))
    return VerifyReport(env, config.shown, len(refs), len(reads) + len(roles), tuple(unresolved),
                        tuple(skipped))


def role_path(path: str) -> str | None:
    """The role behind a dynamic-secret path: ``creds/<role>`` -> ``roles/<role>``,
    ``static-creds/<role>`` -> ``static-roles/<role>`` (the database engine's layout, also
    that of several others); None for any other shape."""
    kind, _, role = path.partition("/")
    if role and "/" not in role and kind in ("creds", "static-creds"):
        return f"{'static-roles' if kind == 'static-creds' else 'roles'}/{role}"
    return None


def _problem(ref: SecretRef, found: KvRead) -> tuple[str | None, str]:
    if found.status != "ok":
        return found.status, found.describe()
    if ref.key not in found.data:
        return "missing-key", (f"the key {ref.key!r} is not in the current version "
                               f"({found.version}) of {ref.mount}/{ref.path}")
    return None, ""


def format_report(report: VerifyReport, name: Callable[[str], str]) -> list[str]:
    """The text report: one located line per unresolved reference (its file named by
    ``name``), then a summary."""
    lines = [u.diagnostic.replace(file=name(u.diagnostic.file)).format()
             for u in report.unresolved]
    lines += [f"note: {note}" for note in report.skipped]
    if report.addr is None:
        lines.append(f"secrets verify: {report.environment}: no Vault references to check")
    elif report.ok:
        unchecked = f", {len(report.skipped)} not checked" if report.skipped else ""
        lines.append(f"secrets verify: {report.environment}: all {report.checked} Vault "
                     f"reference(s) resolve ({report.secrets} secret(s) at {report.addr}"
                     f"{unchecked})")
    else:
        lines.append(f"secrets verify: {report.environment}: {len(report.unresolved)} of "
                     f"{report.checked} Vault reference(s) do not resolve at {report.addr}")
    return lines
