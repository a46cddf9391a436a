"""What every command shares and a run without typer needs: errors and reports printed
as every command prints them, and the end of a run with its exit code.

A command ends by raising ``SystemExit(code)``: click lets it through as it does its
own ``Exit`` (``main`` gets the code either way), and it needs no typer.
"""

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from ..errors import MagcfgError, UsageError

if TYPE_CHECKING:
    from ..project import FromTop, Project


def _fail(exc: MagcfgError, top: "FromTop | None" = None) -> NoReturn:
    """``exc`` on stderr; with ``top``, its files (the project's) named from the
    repository's top as every command of a project names them (``FromTop``); without,
    as given (a file the operator named, relative to where magcfg runs)."""
    print((exc if top is None else top.error(exc)).format(), file=sys.stderr)
    raise SystemExit(exc.exit_code)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def _report_format(value: str) -> bool:
    """True for json; a usage error for anything but text and json."""
    if value not in ("text", "json"):
        _fail(UsageError(f"--format must be text or json, not {value!r}"))
    return value == "json"


def _top(proj: "Project | None", project: Path | None) -> "FromTop":
    """How a command of the project names files: ``proj`` when it loaded, else the
    project file given (``project``) or found."""
    from ..project import FromTop

    return FromTop(proj, project)


def _print_report(kind: str, top: "FromTop", *args: Any, **fields: Any) -> None:
    from ..review import reports

    sys.stdout.write(reports.render({**getattr(reports, kind)(*args, name=top.name),
                                     **fields}))
