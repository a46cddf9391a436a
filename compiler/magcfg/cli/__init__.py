"""The ``magcfg`` command line: a thin shell over the Python API.

Exit codes everywhere: 0 ok, 1 a check failed (bad input, stale output, findings,
differences), 2 usage error. Errors are printed as ``file:line: error: message [key]``
without a traceback. Heavy modules are imported inside the commands so that ``--help``
and small commands start fast; typer (``commands``) is imported only for a command
line that is not a plain ``magcfg build`` (``build``).
"""

import os
import sys


def _signals_held_for_watch() -> None:
    """SIGTERM, SIGINT and SIGHUP blocked for ``magcfg watch`` until the sidecar's
    handlers take them (``runtime.sidecar._Signals`` unblocks them), which exist ~0.1 s
    after start, past the imports and the set-up. Scripts send a config-management
    sidecar SIGHUP right after starting it, and a supervisor may stop one as soon as it
    started: by their default actions SIGHUP ends the process, SIGTERM ends it without
    the stop's clean-up (a registry mirror left in the temporary directory) and SIGINT
    raises KeyboardInterrupt through whatever runs (a traceback, exit 1). Blocked,
    not ignored: one that arrives meanwhile stays pending, and the handlers take it, a
    SIGHUP as a re-check and the others as a stop (exit 0). The mask survives the
    ``-X utf8`` exec of :func:`run`."""
    if sys.argv[1:2] != ["watch"]:
        return
    import signal

    if hasattr(signal, "pthread_sigmask"):  # POSIX: Windows has none of this
        signal.pthread_sigmask(signal.SIG_BLOCK,
                               {signal.SIGTERM, signal.SIGINT, signal.SIGHUP})


def _the_command() -> bool:
    """Whether this process is the ``magcfg`` command (the console script, ``python -m
    magcfg``) rather than a program that imports this module."""
    program = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return (os.path.basename(program) == "magcfg"
            or program == os.path.join(package, "__main__.py"))


# Before this module's imports (typing alone is ~7 ms): the interpreter's own start is
# the only time before it that a signal takes its default action.
if _the_command():
    _signals_held_for_watch()

import errno  # noqa: E402
from typing import IO, Any, NoReturn, TextIO, cast  # noqa: E402

from ..errors import NO_NEW_TASK, MagcfgError, no_new_task  # noqa: E402
from ..version import COMPILER_MODULES  # noqa: E402

_SLIM = ("magcfg: the command line needs the compiler: pip install 'magcfg[compiler]' "
         "(this installation has the runtime kernel only)")


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point. Returns the exit code."""
    args = sys.argv[1:] if argv is None else argv
    from importlib.util import find_spec

    if find_spec("typer") is None:  # the slim install: the runtime kernel only
        print(_SLIM, file=sys.stderr)
        return 1
    try:
        given = _plain_build(args)
        if given is None:
            from .commands import app_for

            app_for(args)(args=args, prog_name="magcfg", standalone_mode=True)
        else:
            _run_as_click(given)
        code = 0
    except SystemExit as exc:  # click's standalone mode: usage errors are 2
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except MagcfgError as exc:
        print(exc.format(), file=sys.stderr)
        code = exc.exit_code
    except (RuntimeError, OSError) as exc:
        if not no_new_task(exc):
            raise
        # Every output is written whole or not at all: nothing is left half done.
        print(f"error: {NO_NEW_TASK}", file=sys.stderr)
        code = 1
    except ModuleNotFoundError as exc:
        # `magcfg[sidecar]` has the command line but not the compiler's libraries, which
        # the commands import when they run: say which install they need.
        if exc.name is None or exc.name.split(".")[0] not in COMPILER_MODULES:
            raise
        print(f"magcfg: this command needs the compiler: pip install 'magcfg[compiler]' "
              f"(this installation lacks {exc.name}; it runs `magcfg watch` and "
              f"`magcfg verify --artifact`)", file=sys.stderr)
        code = 2
    return code


def _plain_build(args: list[str]) -> dict[str, Any] | None:
    """``build_command``'s arguments when ``args`` are a build that click would run with
    them, and no shell completion is asked for (``build.build_options``); else None."""
    if args[:1] != ["build"] or any(name.startswith("_MAGCFG_COMPLETE") for name in os.environ):
        return None
    from .build import build_options

    return build_options(args[1:])


def _run_as_click(given: dict[str, Any]) -> None:
    """``build_command(**given)``, ended as click's standalone mode ends a command (as
    typer's vendored click does): Ctrl-C exits 130 quietly, end of input says it
    aborted and exits 1, a reader gone from the pipe exits 1 with nothing more
    written."""
    from .build import build_command

    try:
        build_command(**given)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except EOFError:
        print(file=sys.stderr)
        # typer words it, as rich or click does (a rare end: nothing here reads stdin)
        from typer.core import DEFAULT_MARKUP_MODE, HAS_RICH

        if HAS_RICH and DEFAULT_MARKUP_MODE is not None:
            from typer.rich_utils import rich_abort_error

            rich_abort_error()
        else:
            print("Aborted!", file=sys.stderr)
        raise SystemExit(1) from None
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            raise
        sys.stdout = cast(TextIO, _PipeGone(sys.stdout))
        sys.stderr = cast(TextIO, _PipeGone(sys.stderr))
        raise SystemExit(1) from None


class _PipeGone:
    """A stream whose reader left: flushing it says nothing of the broken pipe (click's
    ``PacifyFlushWrapper``)."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            if exc.errno != errno.EPIPE:
                raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _utf8_mode() -> bool:
    """Whether Python runs in UTF-8 mode (a function: ``sys.flags`` cannot be set)."""
    return bool(sys.flags.utf8_mode)


def utf8_command() -> list[str] | None:
    """This command line run again in Python's UTF-8 mode (``-X utf8``), or None when it
    runs in it or the locale is UTF-8 anyway. Under another locale (``LC_ALL=C`` with
    ``PYTHONUTF8=0``, a latin-1 one) Python decodes file names and arguments, and reads
    text, in the locale's encoding: a non-ASCII layer file name would be refused as not
    UTF-8, and a build's bytes would depend on the caller's locale."""
    import codecs
    import locale

    # Run again already (and a later `-X utf8=0` won): once only.
    if _utf8_mode() or not sys.executable or sys.orig_argv[1:3] == ["-X", "utf8"]:
        return None
    encodings = (sys.getfilesystemencoding(), locale.getpreferredencoding(False))
    if all(codecs.lookup(name).name == "utf-8" for name in encodings):
        return None
    return [sys.executable, "-X", "utf8", *sys.orig_argv[1:]]


def run() -> NoReturn:
    """``python -m magcfg`` and the console script: exit without tearing down the heap.

    After a large build the interpreter spends 0.6-1.1 s freeing objects at shutdown
    (docs/performance.md); everything has been written and flushed by then.
    """
    _standard_streams_held()
    _signals_held_for_watch()  # held already where it runs as the command (above)
    again = utf8_command()
    if again is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        if os.name == "nt":  # no exec there: a child, whose exit code is ours
            import subprocess

            os._exit(subprocess.call(again))
        os.execv(again[0], again)
    code = main()
    project = sys.modules.get(f"{__name__.rpartition('.')[0]}.project")
    if project is not None:  # a command that loaded a project may have git running
        project.stop_unasked()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _standard_streams_held() -> None:
    """Each standard descriptor closed at start (``magcfg build >&-``) opened on the null
    device. Python leaves its stream None, where writing a report is a traceback and
    ``print(file=sys.stderr)`` writes to stdout; and the next file opened would take the
    descriptor, which a child process inherits as its own stdout."""
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        try:
            os.fstat(fd)
        except OSError:
            held = os.open(os.devnull, os.O_RDONLY if fd == 0 else os.O_WRONLY)
            if held != fd:  # a lower one was closed too, and is taken by now
                os.dup2(held, fd)
                os.close(held)
            os.set_inheritable(fd, True)
            if getattr(sys, name) is None:
                stream = open(fd, mode, encoding="utf-8", closefd=False)  # noqa: SIM115
                setattr(sys, name, stream)  # the process's own, open until it exits


if __name__ == "__main__":
    run()
