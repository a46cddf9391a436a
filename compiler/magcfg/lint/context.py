"""What every rule family may consult besides the file it is checking: the lint root, the
settings, and facts gathered once over the whole repository (git state, Flux contexts)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import LintConfig
from .findings import RULES, Finding
from .walk import SourceFile


@dataclass
class LintContext:
    """Repository-wide facts for one lint run (built once, read by every rule)."""

    root: Path
    config: LintConfig
    files: dict[str, SourceFile]
    in_git: bool
    listed: dict[str, str] = field(default_factory=dict)
    """Each checked file's name as findings show it (``SourceFile.path``, ``display_name``)
    -> its name as listed, the one to open it by: they differ for a name with a control
    character or a backslash (a project's directory holding a line end)."""
    flux_files: frozenset[str] = frozenset()
    flux_dirs: tuple[str, ...] = ()
    caches: dict[str, Any] = field(default_factory=dict)
    """Per-run memo of the rule families (apps by directory, the layer set)."""

    def in_flux_substitution(self, path: str) -> bool:
        """Whether Flux post-build substitution processes this file (so `:?` is not
        available)."""
        if path in self.flux_files:
            return True
        return any(not d or path.startswith(d + "/") for d in self.flux_dirs)


def normalise_line(line: str) -> str:
    """A line with its whitespace collapsed: fingerprints survive re-indentation."""
    return " ".join(line.split())


def line_hash(line: str) -> str:
    return hashlib.sha256(normalise_line(line).encode("utf-8")).hexdigest()


def finding(src: SourceFile, line: int, column: int, rule: str, message: str,
            fix: str, fingerprint: str | None = None) -> Finding:
    """A finding at ``line``/``column`` (1-based) of ``src``, with the rule's severity.
    Its baseline identity is the digest of ``fingerprint`` when given (what the finding
    stands for, where that is more than its line), else of its line."""
    text = src.lines[line - 1] if 0 < line <= len(src.lines) else ""
    return Finding(file=src.path, line=line, column=column, rule=rule, message=message,
                   fix=fix, severity=RULES[rule].severity,
                   line_hash=line_hash(text if fingerprint is None else fingerprint))
