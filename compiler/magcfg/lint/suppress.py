"""Inline suppressions: ``magcfg: ignore[MAG002] reason: <why>`` in a comment on the line.

Any comment syntax works (``#``, ``//``, ``/* */``, ``<!-- -->``), in any file. Several
ids may be listed (``ignore[MAG001,MAG002]``). The reason is required: a suppression
without one, or naming an unknown rule, suppresses nothing and is itself a finding
(MAG000), except in prose (Markdown, reStructuredText, plain text), where it is taken for
documentation of the syntax. A suppression applies where the diff a reviewer reads shows
it beside the line it covers: in a file a diff shows as binary (UTF-16's text, a key
store with a suppression's bytes after it, a file ``.gitattributes`` marks ``-diff``)
it suppresses nothing, and each finding it would cover brings a MAG000 saying why.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

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
    unshown: dict[int, tuple[frozenset[str], Finding]] = field(default_factory=dict)
    """By line, the suppressions of a file a diff shows as binary, and the MAG000 each
    brings where it would cover a finding."""

    def covers(self, f: Finding) -> bool:
        return f.rule in self.by_line.get(f.line, frozenset())

    def not_shown(self, found: list[Finding]) -> list[Finding]:
        """The MAG000 of each suppression a diff does not show that would cover one of
        ``found``."""
        return [problem for line, (ids, problem) in sorted(self.unshown.items())
                if any(f.line == line and f.rule in ids for f in found)]


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
            if src.shown_as_text:
                out.by_line[number] = frozenset(ids)
                continue
            out.unshown[number] = (frozenset(ids), finding(
                src, number, col, RULE,
                f"suppression of {', '.join(ids)} in a file a diff shows as binary (not "
                "UTF-8 text, holding a NUL byte, or `-diff` in .gitattributes): no "
                "reviewer reads it beside its line, and it suppresses nothing",
                "save the file as UTF-8 text a diff shows, with the line and its "
                "suppression, or accept the finding in the baseline "
                "(`magcfg lint --write-baseline`)"))
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


def diff_as_binary(root: Path, names: Sequence[str]) -> set[str]:
    """Those of ``names`` (files as listed, from the top of the repository at ``root``)
    whose ``diff`` attribute git's attributes unset (``-diff``, ``binary``): ``git diff``
    shows them as ``Binary files differ``, by the work tree's ``.gitattributes``, which
    a pull request's diff is shown by."""
    from .history import git_output

    if not names:
        return set()
    asked = b"".join(n.encode("utf-8", "surrogateescape") + b"\0" for n in names)
    answer = git_output(["check-attr", "-z", "--stdin", "diff"], root,
                        "read which files a diff shows as binary", asked)
    fields = answer.split(b"\0")
    return {fields[i].decode("utf-8", "surrogateescape") for i in range(0, len(fields) - 2, 3)
            if fields[i + 2] == b"unset"}


def hide_unshown(root: Path, sources: Sequence[tuple[str, SourceFile]]) -> None:
    """Mark each of ``sources`` (by its name as listed) that holds a suppression and that
    ``diff_as_binary`` names as not shown as text (``SourceFile.shown_as_text``)."""
    held = {name: src for name, src in sources
            if src.shown_as_text and not src.link and "ignore[" in src.text}
    for name in diff_as_binary(root, sorted(held)):
        held[name].shown_as_text = False

