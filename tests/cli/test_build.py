"""A plain ``magcfg build`` runs without typer (cli.build): for every command line it
prints what typer's path prints and exits with its code, and it reads only what click
reads as it does."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from magcfg.cli import build as cli_build
from magcfg.cli import commands
from magcfg.cli.build import BUILD_FLAGS, BUILD_OPTIONS

from ..conftest import Project

# Runs `magcfg ARGS` as `main` does, by the path asked for: "typer" never takes the
# plain build's; "plain" exits 99 if it took it and imported typer.
_PROBE = """
import os, sys
from magcfg import cli
path, args = sys.argv[1], sys.argv[2:]
if path == "typer":
    cli._plain_build = lambda args: None
code = cli.main(args)
if path == "plain" and cli._plain_build(args) is not None and "typer" in sys.modules:
    code = 99
sys.stdout.flush()
sys.stderr.flush()
os._exit(code)
"""

# Each command line (after `magcfg`) and whether the plain build runs it: every other
# is typer's, and so the same by construction, but listed to hold the edges click draws.
COMMAND_LINES: list[tuple[list[str], bool]] = [
    (["build"], True),
    (["build", "-q"], True),
    (["build", "-q", "-q", "--quiet"], True),
    (["build", "--check"], True),
    (["build", "--check", "--check", "--env", "dev"], True),
    (["build", "-e", "dev", "-e", "prod"], True),
    (["build", "--env=dev", "--check"], True),
    (["build", "-edev", "--check"], True),
    (["build", "-e=dev"], True),  # click: the environment "=dev"
    (["build", "--env="], True),
    (["build", "--env", "--check"], True),  # the environment "--check"
    (["build", "--env", "--help"], True),
    (["build", "--env", "-q"], True),
    (["build", "--env", "nope"], True),
    (["build", "-e", "--"], True),  # the environment "--"
    (["build", "--env", "-"], True),
    (["build", "--project", "--", "--check"], True),
    (["build", "--format", "json"], True),
    (["build", "-f", "json", "--check", "-e", "prod"], True),
    (["build", "-fjson", "--env", "nope"], True),
    (["build", "--format=yaml"], True),
    (["build", "--format", "json", "--format", "text"], True),
    (["build", "--strict", "--check"], True),
    (["build", "--timings"], True),
    (["build", "-j", "1"], True),
    (["build", "--jobs=2", "--check"], True),
    (["build", "-j02"], True),
    (["build", "--project", "magcfg.yaml"], True),
    (["build", "-p", "missing.yaml"], True),
    (["build", "-p", "magcfg.yaml", "--project", "other.yaml"], True),
    (["build", "--project=", "--check"], True),
    (["build", "-pmagcfg.yaml"], True),
    (["build", "--since", "HEAD"], True),
    (["build", "--since=", "--format", "json"], True),
    (["build", "--quiet", "--format", "json", "--env", "dev", "--check", "--strict", "-j", "1",
      "--project", "magcfg.yaml", "--timings"], True),
    (["build", "--jobs", "0"], False),
    (["build", "--jobs", "x"], False),
    (["build", "--jobs", "+1"], False),
    (["build", "-j", "\u0661"], False),  # a digit to int(), not to the plain build
    (["build", "-j", "1" * 5000], False),  # more digits than int() reads
    (["build", "-j", "0" * 5000 + "1"], False),
    (["build", "--jobs"], False),
    (["build", "--env"], False),
    (["build", "-e"], False),
    (["build", "--check", "-p"], False),
    (["build", "--"], False),
    (["build", "--", "--check"], False),
    (["build", "extra"], False),
    (["build", "extra", "--check"], False),
    (["build", "--check", "extra"], False),
    (["build", "--help"], False),
    (["build", "-h"], False),
    (["build", "--check", "--help"], False),
    (["build", "--frobnicate"], False),
    (["build", "--chec"], False),
    (["build", "--envs", "dev"], False),
    (["build", "-qe", "dev"], False),
    (["build", "-qq"], False),
    (["build", "--check=yes"], False),
    (["build", "--no-check"], False),
    (["build", "-"], False),
    (["build", ""], False),
    (["build", "--version"], False),
    (["bui"], False),
    (["Build"], False),
    (["--version", "build"], False),
    (["-q", "build"], False),
    ([], False),
]


def _run(path: str, args: list[str], cwd: Path) -> tuple[int, str, str]:
    done = subprocess.run([sys.executable, "-c", _PROBE, path, *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120, check=False)
    # --timings: the seconds differ from run to run
    stderr = "\n".join(re.sub(r"[0-9][0-9.e-]*", "N", line) if line.startswith("timings: ")
                       else line for line in done.stderr.split("\n"))
    return done.returncode, done.stdout, stderr


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The mini project, built, so that every build of it is a no-op printing the
    same."""
    import json

    from ..conftest import MINI_BASE, MINI_PROJECT, MINI_SCHEMA

    project = Project(tmp_path_factory.mktemp("plain-build") / "proj")
    project.write("magcfg.yaml", MINI_PROJECT)
    project.write("schemas/schema.json", json.dumps(MINI_SCHEMA, indent=2))
    for rel, text in MINI_BASE.items():
        project.write(rel, text)
    for _ in range(2):
        assert _run("typer", ["build"], project.root)[0] == 0
    return project


@pytest.mark.parametrize(("args", "plain"), COMMAND_LINES,
                         ids=[" ".join(word if len(word) < 40 else f"{word[:4]}...({len(word)})"
                                       for word in args) or "(none)"
                              for args, _ in COMMAND_LINES])
def test_a_command_line_prints_and_exits_as_typers_path(
        built: Project, args: list[str], plain: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(built.root)
    monkeypatch.delenv("_MAGCFG_COMPLETE", raising=False)
    from magcfg import cli

    assert (cli._plain_build(args) is not None) == plain
    assert _run("plain", args, built.root) == _run("typer", args, built.root)


def test_the_plain_build_reads_the_options_typer_declares() -> None:
    """Every name click knows build's options by is read, as a flag or as an option
    taking one value (only --env repeated), into the parameter typer sets; typer's
    function and ``build_command`` take the same parameters with the same defaults."""
    group = typer.main.get_command(commands.app_for(["build"]))
    command = group.commands["build"]  # type: ignore[attr-defined]
    flags, options = {}, {}
    for param in command.params:
        names = [*param.opts, *param.secondary_opts]
        assert param.nargs == 1 and param.multiple == (param.name == "env"), param.name
        for name in names:
            (flags if param.is_flag else options)[name] = param.name
    assert {k: v for k, v in flags.items() if k not in ("--help", "-h")} == BUILD_FLAGS
    assert options == BUILD_OPTIONS
    declared = inspect.signature(commands.build).parameters
    taken = inspect.signature(cli_build.build_command).parameters
    assert [(p.name, p.default) for p in declared.values()] == \
        [(p.name, p.default) for p in taken.values()]


@pytest.mark.parametrize("raised", [KeyboardInterrupt(), EOFError(),
                                    BrokenPipeError(32, "Broken pipe")])
def test_an_interrupted_plain_build_ends_as_clicks_does(
        mini: Project, raised: BaseException, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Ctrl-C, the end of input and a reader gone from the pipe end the run with the
    code and the words typer's click gives them; after a broken pipe, flushing the
    streams says nothing of it."""
    import gc

    from magcfg import cli, project

    class Gone:
        def write(self, text: str) -> int:
            return len(text)

        def flush(self) -> None:
            raise BrokenPipeError(32, "Broken pipe")

    def interrupted(*_args: object) -> None:
        raise raised

    monkeypatch.chdir(mini.root)
    monkeypatch.setattr(project, "load_project", interrupted)
    ended = []
    for plain in (True, False):
        if not plain:
            monkeypatch.setattr(cli, "_plain_build", lambda args: None)
        monkeypatch.setattr(sys, "stdout", sys.stdout)
        monkeypatch.setattr(sys, "stderr", sys.stderr)
        try:
            code = cli.main(["build", "-q"])
        finally:
            gc.enable()
        said = capsys.readouterr()
        if isinstance(raised, OSError):
            sys.stdout._stream = Gone()  # type: ignore[attr-defined]
            sys.stdout.flush()
        ended.append((code, said.out, said.err))
    assert ended[0] == ended[1]
    assert ended[0][0] == {KeyboardInterrupt: 130, EOFError: 1, BrokenPipeError: 1}[type(raised)]
