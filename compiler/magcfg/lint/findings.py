"""The finding model and the rule catalogue shared by every rule family and formatter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Rule:
    """One lint rule: its stable id, a short name, and what it is about."""

    id: str
    name: str
    summary: str
    severity: Severity = "error"
    security_severity: str | None = None
    """CVSS-style score (0.1-10.0) for code-scanning UIs; None: not a security rule."""
    cwe: str | None = None


RULES: dict[str, Rule] = {
    rule.id: rule
    for rule in (
        Rule("MAG000", "invalid-suppression",
             "An inline `magcfg: ignore[...]` suppression without a reason, naming no "
             "known rule, or covering a finding in a file a diff shows as binary."),
        Rule("MAG001", "fallback-default",
             "A `${VAR:-default}`-style fallback hides a missing required value in a compose "
             "file, Kubernetes manifest, Helm values or committed env file.",
             security_severity="5.3", cwe="1188"),
        Rule("MAG002", "hardcoded-secret",
             "A secret value is committed: a secret-like key assigned a literal, or a "
             "well-known token format.", security_severity="8.8", cwe="798"),
        Rule("MAG003", "env-file-in-deploy-path",
             "A `.env` file lives in a deploy path, or a root `.env` is not git-ignored.",
             security_severity="7.5", cwe="538"),
        Rule("MAG004", "undeclared-vault-client",
             "Application source uses a Vault KV client but the app has not declared "
             "Direct-Vault with a justification.", security_severity="4.3", cwe="522"),
        Rule("MAG005", "vault-policy-wildcard",
             "A Vault KV v2 policy grants a wildcard path without the exact path, or uses a "
             "prefix glob that matches sibling paths.", security_severity="6.5", cwe="732"),
        Rule("MAG006", "layer-secret-literal",
             "A magcfg layer sets a literal value for a key the schema marks "
             "`x-magcfg-secret`.", security_severity="8.8", cwe="798"),
        Rule("MAG007", "unchecked-file",
             "A file lint could not check for secrets: larger than 4 MiB, or unreadable.",
             security_severity="5.3", cwe="1059"),
    )
}


@dataclass(frozen=True, order=True)
class Finding:
    """One problem at one place. ``file`` is relative to the lint root with ``/`` separators;
    ``line`` and ``column`` are 1-based. ``message`` and ``fix`` never contain a secret value.
    ``line_hash`` is a digest of the whitespace-normalised source line, so a baseline can
    recognise the finding after the line moves without storing the line (or a secret).
    ``commit`` is the short id of the commit that holds the finding (``lint --since``),
    empty for the work tree's.
    """

    file: str
    line: int
    column: int
    rule: str
    message: str
    fix: str
    severity: Severity = "error"
    line_hash: str = ""
    commit: str = ""

    @property
    def rule_name(self) -> str:
        return RULES[self.rule].name


REDACTED = "<redacted>"
"""What a finding shows in place of a secret value."""
