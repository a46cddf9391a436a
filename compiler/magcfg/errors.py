"""Diagnostics: every problem magcfg reports names a file, a line and, where there is one, a key.

One type for errors and warnings of every stage, so the CLI prints them the same way and
a build can collect all of them before it fails.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import total_ordering
from typing import Any, Literal

Severity = Literal["error", "warning"]


@functools.cache
def _unprintable(lines: bool) -> re.Pattern[str]:
    """C0 and C1 controls, DEL, and the lone surrogates that stand for bytes of a file
    name that is not valid UTF-8 (os.fsdecode): none may reach a terminal raw. Compiled
    on first use (~1 ms of every command's start-up otherwise)."""
    return re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]" if lines
                      else "[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8, as os.fsdecode keeps it
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: str, *, lines: bool = False) -> str:
    """``text`` safe for a terminal: control characters (an ANSI escape sequence in a
    file name, say) and undecodable bytes of a file name shown as ``\\xNN``. With
    ``lines``, newlines and tabs are kept (a multi-line message)."""
    if text.isprintable():  # no control (Cc) or surrogate (Cs) character at all
        return text
    return _unprintable(lines).sub(_escape, text)


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

    def as_dict(self) -> dict[str, Any]:
        """The diagnostic in a JSON report (docs/cli.md): the fields, unescaped."""
        return {"file": self.file, "line": self.line, "key": self.key,
                "severity": self.severity, "code": self.code, "message": self.message}

    def format(self) -> str:
        """``file:line: severity: message [key]``, every part escaped for a terminal."""
        file = printable(self.file)
        where = file if self.line is None else f"{file}:{self.line}"
        key = f" [{printable(self.key)}]" if self.key else ""
        return f"{where}: {self.severity}: {printable(self.message, lines=True)}{key}"


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
            lines.append(d.format() if d.file
                         else f"error: {printable(d.message, lines=True)}")
        return "\n".join(lines)


class BuildError(MagcfgError):
    """The layers, the project file or the schema are not acceptable; nothing was written."""


class UsageError(MagcfgError):
    """The command was called wrongly (unknown environment, bad option value)."""

    exit_code = 2
