"""Output formats of ``magcfg lint``: text for people, JSON for scripts, SARIF 2.1.0 for
code-scanning UIs. All deterministic (same findings, same bytes)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from .baseline import fingerprint
from .findings import RULES, Finding

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
        out.append(f"{f.file}:{f.line}:{f.column}: {f.rule} {f.severity}: {f.message}\n"
                   f"    fix: {f.fix}\n")
    return "".join(out)


def finding_dict(f: Finding) -> dict[str, Any]:
    return {"rule": f.rule, "name": f.rule_name, "severity": f.severity, "file": f.file,
            "line": f.line, "column": f.column, "message": f.message, "fix": f.fix,
            "fingerprint": fingerprint(f)}


def render_json(findings: Sequence[Finding], summary: dict[str, int]) -> str:
    doc = {"format": 1, "findings": [finding_dict(f) for f in findings],
           "summary": dict(sorted(summary.items()))}
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render_sarif(findings: Sequence[Finding]) -> str:
    from ..version import __version__

    rule_ids = sorted(RULES)
    index = {rid: i for i, rid in enumerate(rule_ids)}
    rules = [{
        "id": rid,
        "name": RULES[rid].name,
        "shortDescription": {"text": RULES[rid].summary},
        "defaultConfiguration": {"level": _SARIF_LEVEL[RULES[rid].severity]},
        "help": {"text": f"{RULES[rid].summary} See docs/lint.md ({rid}); suppress one line "
                         f"with `magcfg: ignore[{rid}] reason: <why>`."},
    } for rid in rule_ids]
    results = [{
        "ruleId": f.rule,
        "ruleIndex": index[f.rule],
        "level": _SARIF_LEVEL[f.severity],
        "message": {"text": f"{f.message}. Fix: {f.fix}"},
        "locations": [{"physicalLocation": {
            "artifactLocation": {"uri": quote(f.file), "uriBaseId": "%SRCROOT%"},
            "region": {"startLine": f.line, "startColumn": f.column},
        }}],
        "partialFingerprints": {"magcfgLineHash/v1": fingerprint(f)},
        "properties": {"fix": f.fix},
    } for f in findings]
    doc = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "magcfg", "version": __version__,
                                "semanticVersion": __version__, "rules": rules}},
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    }
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
