"""Inline suppressions: ``magcfg: ignore[MAG002] reason: <why>`` in a comment on the line.

Any comment syntax works (``#``, ``//``, ``/* */``, ``<!-- -->``). Several ids may be
listed (``ignore[MAG001,MAG002]``). The reason is required: a suppression without one, or
naming an unknown rule, suppresses nothing and is itself a finding (MAG000).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .context import finding
from .findings import RULES, Finding
from .walk import SourceFile

RULE = "MAG000"
_SUPPRESS = re.compile(r"magcfg:\s*ignore\[([A-Za-z0-9_, ]*)\]")
# Prose that documents the syntax is not a suppression.
_PROSE = (".md", ".markdown", ".rst", ".txt", ".adoc")
_REASON = re.compile(r"\s*reason:\s*(.*?)\s*(?:-->|\*/)?\s*$")


@dataclass
class Suppressions:
    """The valid suppressions of one file by line, and the findings for invalid ones."""

    by_line: dict[int, frozenset[str]] = field(default_factory=dict)
    invalid: list[Finding] = field(default_factory=list)

    def covers(self, f: Finding) -> bool:
        return f.rule in self.by_line.get(f.line, frozenset())


def parse(src: SourceFile) -> Suppressions:
    """Collect the suppressions written in ``src``."""
    out = Suppressions()
    if "ignore[" not in src.text or src.name.lower().endswith(_PROSE):
        return out
    for number, line in enumerate(src.lines, 1):
        m = _SUPPRESS.search(line)
        if m is None:
            continue
        ids = [r.strip().upper() for r in m.group(1).split(",") if r.strip()]
        unknown = [r for r in ids if r not in RULES or r == RULE]
        reason = _REASON.match(line, m.end())
        col = m.start() + 1
        if not ids or unknown:
            what = ", ".join(unknown) if unknown else "no rule id"
            out.invalid.append(finding(
                src, number, col, RULE, f"suppression names an unknown rule ({what})",
                "name the rule ids to ignore, e.g. `magcfg: ignore[MAG002] reason: ...`"))
        elif reason is None or not reason.group(1):
            out.invalid.append(finding(
                src, number, col, RULE,
                f"suppression of {', '.join(ids)} has no reason",
                f"say why: `magcfg: ignore[{','.join(ids)}] reason: <why this is safe>`"))
        else:
            out.by_line[number] = frozenset(ids)
    return out
