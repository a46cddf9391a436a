"""Diagnostics: every problem magcfg reports names a file, a line and, where there is one, a key.

One type for errors and warnings of every stage, so the CLI prints them the same way and
a build can collect all of them before it fails.
"""

from __future__ import annotations

from .record import Record

# This module is imported by the runtime kernel at its own import (its errors are
# MagcfgErrors): it imports no module at its top, and ``re`` only where a message needs it.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import re
    from collections.abc import Iterable
    from typing import Any, Literal

    Severity = Literal["error", "warning"]


_FORMAT = ("\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f"
           "\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd"
           "\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
           "\U000e0001\U000e0020-\U000e007f")
"""Unicode's format characters (category Cf, Unicode 15): invisible, and the bidi ones
(U+202A-U+202E, U+2066-U+2069) reorder what a terminal or a browser shows around them, so
a name or value can read as another (Trojan Source). Written out: deriving the class from
``unicodedata`` at run time takes ~0.2 s."""


_UNPRINTABLE: dict[bool, re.Pattern[str]] = {}


def _unprintable(lines: bool) -> re.Pattern[str]:
    """C0 and C1 controls, DEL, format characters, and the lone surrogates that stand for
    bytes of a file name that is not valid UTF-8 (os.fsdecode): none may reach a terminal
    raw. Compiled on first use (~1 ms of every command's start-up otherwise) and kept
    (``re``'s own cache may drop it)."""
    found = _UNPRINTABLE.get(lines)
    if found is None:
        import re

        controls = "\x00-\x08\x0b-\x1f" if lines else "\x00-\x1f"
        found = _UNPRINTABLE[lines] = re.compile(
            f"[{controls}\x7f-\x9f{_FORMAT}\ud800-\udfff]")
    return found


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8, as os.fsdecode keeps it
        return f"\\x{code - 0xDC00:02x}"
    # A character from U+0080 up (a C1 control, the soft hyphen) is never \xNN, which
    # shows such a byte: `a\u0085` and `a\x85` are two files of one repository, which
    # lint reports, and a baseline knows, by these names.
    if code < 0x80:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def printable(text: str, *, lines: bool = False) -> str:
    """``text`` safe for a terminal: control characters (an ANSI escape sequence in a
    file name, say), format characters (a bidi override) and undecodable bytes of a file
    name shown as ``\\xNN``, ``\\uNNNN``. With ``lines``, newlines and tabs are kept (a
    multi-line message)."""
    if text.isprintable():  # no control (Cc), format (Cf) or surrogate (Cs) character
        return text
    return _unprintable(lines).sub(_escape, text)




def report_json(document: Any) -> str:
    """``document`` as every JSON report prints it (sorted keys, two-space indent, one
    newline), valid UTF-8 whatever it holds: a lone surrogate (a byte of a file name
    that is not UTF-8, as ``os.fsdecode`` keeps it, or a ``\\ud800`` escape of a JSON
    input) is written as ``printable`` shows it (``bad\\xff.yaml``), where the raw
    byte would make the report no UTF-8 a JSON reader takes, or stop the writing."""
    import json

    text = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if text.isascii():
        return text
    # Each surrogate stands inside a JSON string: its escape's backslash is escaped too.
    import re

    return re.sub("[\ud800-\udfff]", lambda m: _escape(m).replace("\\", "\\\\"), text)


MAX_QUOTING_MESSAGE = 240
"""The most characters of a message that quotes input (a schema's or cue's error) kept
(``cut``): the engines quote a value of megabytes whole."""


def cut(message: str) -> str:
    """``message``, or its first ``MAX_QUOTING_MESSAGE`` characters and ``...``; a
    quoted value the cut would end inside is left out from its opening quote on, as the
    start of a secret it may be is masked by no whole secret (``Redactor.text``)."""
    if len(message) <= MAX_QUOTING_MESSAGE:
        return message
    import re

    kept = message[:MAX_QUOTING_MESSAGE]
    opened = None
    for found in re.finditer(r'\\.|"', kept):
        if found.group() == '"':
            opened = found.start() if opened is None else None
    return (kept if opened is None else kept[:opened + 1]) + "..."


_HINT_LENGTH = 100
"""The longest name a "did you mean" hint is looked for (a typo of a real name is short)."""
_HINT_WORK = 250_000
"""The most character pairs one hint may compare: difflib's ratio is quadratic in the
lengths, and a name or a schema's keys from a pull request can be kilobytes each."""


def close_match(name: str, known: Iterable[str]) -> str | None:
    """The one of ``known`` that ``name`` is most likely a typo of (difflib's ratio at
    least 0.6), or None: none is close, or comparing would cost too much."""
    if len(name) > _HINT_LENGTH:
        return None
    # The ratio is at most 2*min/(len sum): 0.6 needs the shorter at least 3/7 of the longer.
    candidates = [k for k in known if 3 * max(len(k), len(name)) <= 7 * min(len(k), len(name))]
    if sum(len(k) for k in candidates) * len(name) > _HINT_WORK:
        return None
    import difflib

    found = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return found[0] if found else None


def md_code(text: str, *, in_table: bool = False) -> str:
    """``text`` as Markdown inline code that nothing in it can end: escaped as
    ``printable`` and fenced by one backtick more than its longest run of backticks
    (CommonMark), so no link, image, mention or HTML in it renders. ``in_table``: for a
    table cell, ``|`` escaped (a GFM table splits cells on it even inside code, and
    removes the backslash); elsewhere a backslash in code is shown as written."""
    if not text:
        return ""  # two backticks alone are not a span but text
    import re

    text = printable(text)
    if in_table:
        text = text.replace("|", "\\|")
    fence = "`" * (max(map(len, re.findall("`+", text)), default=0) + 1)
    # CommonMark strips one space off each end of a span, and needs one between a fence
    # and a backtick inside.
    pad = " " if (text[:1] == "`" or text[-1:] == "`"
                  or (text[:1] == " " and text[-1:] == " " and text.strip(" "))) else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def md_cell(text: str) -> str:
    """``md_code`` for a table cell (``in_table``)."""
    return md_code(text, in_table=True)


def md_text(text: str) -> str:
    """``text`` as Markdown prose inside one table cell: escaped as ``printable`` with
    newlines made spaces, ``|`` escaped, and no raw HTML (``<`` and ``&`` as entities);
    its Markdown (emphasis, code, links) is kept."""
    text = printable(text.replace("\r\n", " ").replace("\n", " "))
    return text.replace("&", "&amp;").replace("<", "&lt;").replace("|", "\\|")


NO_NEW_TASK = ("a thread or process could not start: the limit on processes is reached "
               "(ulimit -u, RLIMIT_NPROC, a container's pids limit); raise it, or end other "
               "processes, then run magcfg again")
"""What magcfg says where the system lets it start no more threads or processes
(``no_new_task``)."""


class NoNewTask(RuntimeError):
    """A process that could not start (``no_new_task``), raised where the callers take an
    ``OSError`` for the answer a tool could not give (git stopped, not a work tree), so
    that none of them reports the limit as that: the command stops with
    ``NO_NEW_TASK``."""


def no_new_task(exc: BaseException) -> bool:
    """Whether ``exc`` is the system refusing a new thread (``RuntimeError: can't start
    new thread``) or process (``fork`` failing with ``EAGAIN`` under ``subprocess``, or
    a ``NoNewTask``): the limit on a user's processes, or a container's on its tasks, is
    reached. Neither says that git or a tool is missing, nor that the work failed."""
    if isinstance(exc, NoNewTask):
        return True
    if isinstance(exc, RuntimeError):
        return str(exc).startswith("can't start new thread")
    import errno

    if not isinstance(exc, OSError) or exc.errno != errno.EAGAIN:
        return False
    frame = exc.__traceback__
    while frame is not None:
        if frame.tb_frame.f_code.co_name == "_execute_child":  # subprocess's fork
            return True
        frame = frame.tb_next
    return False


_GO_NO_THREAD = ("runtime/cgo: pthread_create failed: Resource temporarily unavailable",
                 "runtime: may need to increase max user processes")
"""How the Go runtime (cue's) starts the lines it prints before it stops where the
system starts no more threads (``EAGAIN``), with cgo and without."""


def no_new_task_said(stderr: str) -> bool:
    """Whether a child's ``stderr`` is the Go runtime's, stopping where the system
    starts no more threads (``no_new_task``): the limit stopped it, not its input. Read
    at a line's start only, where a message quoting input (cue's, of a layer's string)
    never puts it."""
    return any(line.startswith(_GO_NO_THREAD) for line in stderr.splitlines())


_FIELDS = ("file", "line", "key", "message", "severity", "code")
_KEEP: Any = object()


class Diagnostic(Record):
    """One finding. ``file`` is relative to the project root, with ``/`` separators.
    Ordered by file, line and key, a missing line or key first. Immutable; equal,
    hashed and shown by its fields (a :class:`~magcfg.record.Record`: the runtime kernel
    imports this module at its own import)."""

    __slots__ = _FIELDS

    file: str
    line: int | None
    key: str | None
    message: str
    severity: Severity
    code: str

    def __init__(self, file: str, line: int | None, key: str | None, message: str,
                 severity: Severity = "error", code: str = "error") -> None:
        self._set_fields((file, line, key, message, severity, code))

    def replace(self, *, file: str = _KEEP, line: int | None = _KEEP, key: str | None = _KEEP,
                message: str = _KEEP, severity: Severity = _KEEP, code: str = _KEEP,
                ) -> Diagnostic:
        """A copy with the fields given changed (as ``dataclasses.replace`` does)."""
        return Diagnostic(self.file if file is _KEEP else file,
                          self.line if line is _KEEP else line,
                          self.key if key is _KEEP else key,
                          self.message if message is _KEEP else message,
                          self.severity if severity is _KEEP else severity,
                          self.code if code is _KEEP else code)

    def _order(self) -> tuple[Any, ...]:
        return (self.file, self.line is not None, self.line or 0, self.key is not None,
                self.key or "", self.message, self.severity, self.code)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Diagnostic):
            return NotImplemented
        return self._order() < other._order()

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Diagnostic):
            return NotImplemented
        return self._order() <= other._order()

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Diagnostic):
            return NotImplemented
        return self._order() > other._order()

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Diagnostic):
            return NotImplemented
        return self._order() >= other._order()

    def as_dict(self) -> dict[str, Any]:
        """The diagnostic in a JSON report (docs/cli.md): the fields, unescaped."""
        return {"file": self.file, "line": self.line, "key": self.key,
                "severity": self.severity, "code": self.code, "message": self.message}

    def format(self) -> str:
        """``file:line: severity: message [key]``, every part escaped for a terminal."""
        return f"{self._where()}: {self.severity}: {self._said()}"

    def located(self) -> str:
        """``file:line: message [key]`` (no severity; the message alone without a file),
        escaped as ``format``: the diagnostic inside another message (an event's
        ``error``, a start error), which says ``error:`` once itself."""
        return f"{self._where()}: {self._said()}" if self.file else self._said()

    def _where(self) -> str:
        file = printable(self.file)
        return file if self.line is None else f"{file}:{self.line}"

    def _said(self) -> str:
        key = f" [{printable(self.key)}]" if self.key else ""
        return f"{printable(self.message, lines=True)}{key}"


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
