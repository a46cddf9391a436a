"""Output formats of ``magcfg lint``: text for people, JSON for scripts, SARIF 2.1.0 for
code-scanning UIs. All deterministic (same findings, same bytes)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from ..errors import report_json
from . import suppress as suppression
from .baseline import fingerprint
from .findings import RULES, Finding, Rule
from .walk import listed_name

FORMATS = ("text", "json", "sarif")
SARIF_SCHEMA = ("https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/"
                "sarif-schema-2.1.0.json")
_SARIF_LEVEL = {"error": "error", "warning": "warning"}


def render(findings: Sequence[Finding], fmt: str, summary: dict[str, int]) -> str:
    """``findings`` in ``fmt`` (one of FORMATS)."""
    if fmt == "text":
        return render_text(findings)
    if fmt == "json":
        return render_json(findings, summary)
    if fmt == "sarif":
        return render_sarif(findings)
    raise ValueError(f"unknown format {fmt!r}")


def render_text(findings: Sequence[Finding]) -> str:
    out = []
    for f in findings:
        where = f" (commit {f.commit})" if f.commit else ""
        out.append(f"{f.file}:{f.line}:{f.column}:{where} {f.rule} {f.severity}: "
                   f"{f.message}\n    fix: {f.fix}\n")
    return "".join(out)


def finding_dict(f: Finding) -> dict[str, Any]:
    found = {"rule": f.rule, "name": f.rule_name, "severity": f.severity, "file": f.file,
             "line": f.line, "column": f.column, "message": f.message, "fix": f.fix,
             "fingerprint": fingerprint(f)}
    if f.commit:  # a file as a commit since `--since` holds it, not the work tree's
        found["commit"] = f.commit
    return found


def render_json(findings: Sequence[Finding], summary: dict[str, int]) -> str:
    doc = {"format": 1, "command": "lint", "ok": not findings,
           "findings": [finding_dict(f) for f in findings],
           "summary": dict(sorted(summary.items()))}
    return render_report(doc)


def render_report(doc: dict[str, Any]) -> str:
    """A JSON report as every magcfg command prints one (sorted keys, one newline)."""
    return report_json(doc)


def render_sarif(findings: Sequence[Finding]) -> str:
    from ..version import PROJECT_URL, __version__

    rule_ids = sorted(RULES)
    index = {rid: i for i, rid in enumerate(rule_ids)}
    rules = [_sarif_rule(RULES[rid]) for rid in rule_ids]
    results = [{
        "ruleId": f.rule,
        "ruleIndex": index[f.rule],
        "level": _SARIF_LEVEL[f.severity],
        "message": {"text": f"{f.message}{f' (commit {f.commit})' if f.commit else ''}. "
                            f"Fix: {f.fix}"},
        "locations": [{"physicalLocation": {
            "artifactLocation": {"uri": _uri(f.file), "uriBaseId": "%SRCROOT%"},
            "region": {"startLine": f.line, "startColumn": f.column},
        }}],
        "partialFingerprints": {"magcfgLineHash/v1": fingerprint(f)},
        "properties": {"fix": f.fix, **({"commit": f.commit} if f.commit else {})},
    } for f in findings]
    doc = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "magcfg", "version": __version__,
                                "semanticVersion": __version__, "rules": rules,
                                "informationUri": PROJECT_URL}},
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    }
    return report_json(doc)


def _uri(file: str) -> str:
    """The relative URI of the file a finding shows as ``file``: its name's bytes, each
    that a URI cannot hold as it is percent-encoded (a name that is not UTF-8,
    ``bad%FF.env``), never the escapes it is shown with."""
    try:
        quoted = quote(listed_name(file).encode("utf-8", "surrogateescape"))
    except UnicodeEncodeError:  # a surrogate that stands for no byte: no listed name
        quoted = quote(file)
    # A commit may hold an entry named `..` or `.` (git stores one, no checkout writes
    # it), which lint --since reads: as a URI's dot segment it would be resolved away,
    # naming another file (`deploy/../values.yaml` as `values.yaml`).
    return "/".join("%2E" * len(segment) if segment in (".", "..") else segment
                    for segment in quoted.split("/"))


def _sarif_rule(rule: Rule) -> dict[str, Any]:
    """A rule as GitHub code scanning ingests it: descriptions, help and its URI, and for a
    security rule the ``security-severity`` and tags that file it as a security alert."""
    from ..version import PROJECT_URL

    anchor = f"{rule.id}-{rule.name}".lower()
    # An invalid suppression is fixed, never suppressed (one naming MAG000 is itself
    # invalid): advice to suppress it would be wrong, and, as the syntax, a MAG000
    # finding in a report written into the checkout that the next lint reads.
    suppress = ("fix the suppression: name the rules it ignores and say why; this rule "
                "cannot be suppressed." if rule.id == suppression.RULE else
                f"suppress one line with `magcfg: ignore[{rule.id}] reason: <why>`.")
    tags = ["security", f"external/cwe/cwe-{rule.cwe}"] if rule.cwe else ["maintainability"]
    properties: dict[str, Any] = {"tags": tags, "precision": "high",
                                  "problem.severity": rule.severity}
    if rule.security_severity is not None:
        properties["security-severity"] = rule.security_severity
    return {
        "id": rule.id,
        "name": rule.name,
        "shortDescription": {"text": rule.summary},
        "fullDescription": {"text": f"{rule.summary} ({rule.id} {rule.name}: see "
                                    f"docs/lint.md.)"},
        "defaultConfiguration": {"level": _SARIF_LEVEL[rule.severity]},
        "help": {"text": f"{rule.summary} See docs/lint.md ({rule.id}); {suppress}",
                 "markdown": f"{rule.summary}\n\nSee [docs/lint.md]"
                             f"({PROJECT_URL}/blob/main/docs/lint.md#{anchor}); {suppress}"},
        "helpUri": f"{PROJECT_URL}/blob/main/docs/lint.md#{anchor}",
        "properties": properties,
    }
