"""Inline suppressions: ``magcfg: ignore[MAG002] reason: <why>`` in a comment on the line.

Any comment syntax works (``#``, ``//``, ``/* */``, ``<!-- -->``), in any file. Several
ids may be listed (``ignore[MAG001,MAG002]``). The reason is required: a suppression
without one, or naming an unknown rule, suppresses nothing and is itself a finding
(MAG000), except in prose (Markdown, reStructuredText, plain text), where it is taken for
documentation of the syntax.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .context import finding
from .findings import RULES, Finding
from .walk import SourceFile

RULE = "MAG000"
_SUPPRESS = re.compile(r"magcfg:\s*ignore\[([A-Za-z0-9_, ]*)\]")
# Where the syntax is documented: an incomplete suppression there is an example of one.
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
    if "ignore[" not in src.text:
        return out
    prose = src.name.lower().endswith(_PROSE)
    for number, line in enumerate(src.lines, 1):
        m = _SUPPRESS.search(line)
        if m is None:
            continue
        ids = [r.strip().upper() for r in m.group(1).split(",") if r.strip()]
        unknown = [r for r in ids if r not in RULES or r == RULE]
        reason = _REASON.match(line, m.end())
        col = m.start() + 1
        if ids and not unknown and reason is not None and reason.group(1):
            out.by_line[number] = frozenset(ids)
        elif prose:
            continue
        elif not ids or unknown:
            what = ", ".join(unknown) if unknown else "no rule id"
            out.invalid.append(finding(
                src, number, col, RULE, f"suppression names an unknown rule ({what})",
                "name the rule ids to ignore, e.g. `magcfg: ignore[MAG002] reason: ...`"))
        else:
            out.invalid.append(finding(
                src, number, col, RULE,
                f"suppression of {', '.join(ids)} has no reason",
                f"say why: `magcfg: ignore[{','.join(ids)}] reason: <why this is safe>`"))
    return out
