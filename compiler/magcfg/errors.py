"""Diagnostics: every problem magcfg reports names a file, a line and, where there is one, a key.

One type for errors and warnings of every stage, so the CLI prints them the same way and
a build can collect all of them before it fails.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import total_ordering
from typing import Any, Literal

Severity = Literal["error", "warning"]


@total_ordering
@dataclass(frozen=True)
class Diagnostic:
    """One finding. ``file`` is relative to the project root, with ``/`` separators.
    Ordered by file, line and key, a missing line or key first."""

    file: str
    line: int | None
    key: str | None
    message: str
    severity: Severity = "error"
    code: str = "error"

    def _order(self) -> tuple[Any, ...]:
        return (self.file, self.line is not None, self.line or 0, self.key is not None,
                self.key or "", self.message, self.severity, self.code)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Diagnostic):
            return NotImplemented
        return self._order() < other._order()

    def format(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        key = f" [{self.key}]" if self.key else ""
        return f"{where}: {self.severity}: {self.message}{key}"


class MagcfgError(Exception):
    """Base of every error magcfg raises on purpose. The CLI prints it without a traceback."""

    exit_code = 1

    def __init__(self, diagnostics: Iterable[Diagnostic] | str) -> None:
        if isinstance(diagnostics, str):
            diagnostics = [Diagnostic(file="", line=None, key=None, message=diagnostics)]
        self.diagnostics: list[Diagnostic] = sorted(diagnostics)
        super().__init__("\n".join(d.format() for d in self.diagnostics))

    def format(self) -> str:
        lines = []
        for d in self.diagnostics:
            lines.append(d.format() if d.file else f"error: {d.message}")
        return "\n".join(lines)


class BuildError(MagcfgError):
    """The layers, the project file or the schema are not acceptable; nothing was written."""


class UsageError(MagcfgError):
    """The command was called wrongly (unknown environment, bad option value)."""

    exit_code = 2
