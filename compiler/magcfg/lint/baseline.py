"""The baseline: findings an existing repository accepts for now, so only new ones fail.

A finding's fingerprint is a digest of its rule, its file and a digest of its
whitespace-normalised source line: it survives the line moving (code added above it,
re-indentation) and holds neither the line nor any secret in it. Identical lines in one
file are counted, so a second copy of an accepted secret is still a new finding.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from ..durable import operator_path_to_read, read_located, write_operator_file
from ..errors import BuildError, Diagnostic, UsageError, printable
from .findings import RULES, Finding
from .walk import SourceFile, display_name, source

FORMAT = 1
TOOL = "magcfg lint"
"""What a baseline's ``tool`` says: the one text ``parse`` accepts there."""
MAX_BASELINE_BYTES = 16 << 20
"""Largest baseline read: ~100,000 accepted findings, far more than any repository adopts
the gate with; a larger one is planted to exhaust memory."""


def fingerprint(f: Finding) -> str:
    """The stable identity of a finding across line moves."""
    basis = f"{f.rule}\0{f.file}\0{f.line_hash}".encode()
    return hashlib.sha256(basis).hexdigest()[:32]


def render(findings: Iterable[Finding]) -> str:
    """The baseline file's text for ``findings`` (deterministic)."""
    counts: Counter[tuple[str, str, str]] = Counter(
        (f.file, f.rule, fingerprint(f)) for f in findings)
    entries = [{"file": file, "rule": rule, "fingerprint": fp, "count": n}
               for (file, rule, fp), n in sorted(counts.items())]
    doc = {"format": FORMAT, "tool": TOOL, "findings": entries}
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def write(path: Path, findings: Iterable[Finding], checkout: Path) -> None:
    """Write the baseline atomically to ``path``, a file the operator names that may lie
    in ``checkout`` (``durable.write_operator_file``)."""
    write_operator_file(path, render(findings).encode("utf-8"), checkout=checkout)


class Loaded(NamedTuple):
    """A baseline as ``load`` read it."""

    accepted: Counter[str]
    """The accepted fingerprints, with their counts."""
    committed: tuple[str, SourceFile] | None
    """A baseline in the repository: its name as listed, and its text as lint checks
    any file's. Its entries' ``file`` is text of any form, so it is checked as every
    other committed file is (one that ``--write-baseline`` wrote reports nothing)."""


def load(path: Path, root: Path, *,
         written_by: str = "magcfg lint --write-baseline") -> Loaded:
    """The baseline file ``path``; ``written_by``, the command that writes it, is what
    an error for a missing one advises.

    A baseline in the repository at ``root`` is committed, so a pull request controls it:
    it is read as the build reads its inputs (a regular file, no symlink out of the
    repository or into ``.git``); one the operator names outside the repository may be
    a symlink, to a regular file. Either is at most ``MAX_BASELINE_BYTES``."""
    if not os.path.lexists(path):
        raise UsageError(f"baseline file {printable(str(path))} does not exist "
                         f"(create it with `{printable(written_by)}`)")
    real_root = os.path.realpath(root)
    real = operator_path_to_read(path, real_root)
    inside = os.path.commonpath((real, real_root)) == real_root
    shown = os.path.relpath(real, real_root).replace(os.sep, "/") if inside else str(path)
    raw = read_located(real, shown, MAX_BASELINE_BYTES)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BuildError([Diagnostic(shown, None, None,
                                     "baseline is not UTF-8 text")]) from None
    accepted = parse(text, shown)
    return Loaded(accepted, (shown, source(display_name(shown), raw)) if inside else None)


def parse(text: str, shown: str) -> Counter[str]:
    """The accepted fingerprints of a baseline's ``text`` (``load``); its errors name
    the file ``shown``."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BuildError([Diagnostic(shown, exc.lineno, None,
                                     f"baseline is not valid JSON: {exc.msg}")]) from None
    except RecursionError:  # three levels make a baseline: thousands are planted
        raise BuildError([Diagnostic(shown, None, None, "not a magcfg lint baseline "
                                     f"(format {FORMAT}): nested too deep")]) from None
    entries = doc.get("findings") if isinstance(doc, dict) else None
    if not isinstance(entries, list) or doc.get("format") != FORMAT:
        raise BuildError([Diagnostic(shown, None, None,
                                     f"not a magcfg lint baseline (format {FORMAT})")])
    # Only what `--write-baseline` writes: lint does not check the baseline it reads, so
    # a field of any other name or shape would be a place to commit a secret unchecked.
    extra = sorted(set(doc) - _TOP_KEYS)
    if extra:
        raise BuildError([Diagnostic(shown, None, _shown_key(extra[0]),
                                     "unknown field: a baseline holds format, tool and "
                                     "findings only (rewrite it with --write-baseline)")])
    if doc.get("tool", TOOL) != TOOL:
        raise BuildError([Diagnostic(shown, None, "tool", f"tool is {TOOL!r} or left out, "
                                     "nothing else (rewrite it with --write-baseline)")])
    accepted: Counter[str] = Counter()
    for i, entry in enumerate(entries):
        if not (isinstance(entry, dict) and set(entry) <= _ENTRY_KEYS
                and isinstance(entry.get("fingerprint"), str)
                and _FINGERPRINT.fullmatch(entry["fingerprint"])
                and isinstance(entry.get("file", ""), str)
                and entry.get("rule", RULE_IDS[0]) in RULE_IDS
                and type(entry.get("count", 1)) is int and entry.get("count", 1) > 0):
            raise BuildError([Diagnostic(
                shown, None, f"findings[{i}]",
                "entry needs a fingerprint (32 hex digits), a rule id, a file and a "
                "positive count, and nothing else (rewrite it with --write-baseline)")])
        accepted[entry["fingerprint"]] += entry.get("count", 1)
    return accepted


_TOP_KEYS = frozenset({"format", "tool", "findings"})
_ENTRY_KEYS = frozenset({"file", "rule", "fingerprint", "count"})
_FINGERPRINT = re.compile(r"[0-9a-f]{32}")
RULE_IDS = tuple(sorted(RULES))


def _shown_key(key: str) -> str:
    return printable(key)[:80]


def new_findings(findings: Iterable[Finding], accepted: Counter[str]) -> tuple[list[Finding],
                                                                              int]:
    """The findings the baseline does not account for, and how many it did."""
    left = Counter(accepted)
    new: list[Finding] = []
    matched = 0
    for f in findings:
        fp = fingerprint(f)
        if left[fp] > 0:
            left[fp] -= 1
            matched += 1
        else:
            new.append(f)
    return new, matched
