"""The console script: help, exit codes, explain, human output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
from typer.core import TyperGroup
from typer.testing import CliRunner

from magcfg.cli.commands import app, app_for

from .conftest import MAGCFG, REPO, Project, no_more_tasks, threadless, tree_state


def test_help_lists_commands(mini: Project) -> None:
    result = mini.run("--help")
    assert result.returncode == 0
    for command in ("build", "explain"):
        assert command in result.stdout


def test_no_arguments_shows_help(mini: Project) -> None:
    result = mini.run()
    assert "Usage" in result.stdout + result.stderr


def test_unknown_option_is_usage_error(mini: Project) -> None:
    result = mini.run("build", "--frobnicate")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_build_human_output(mini: Project, snapshot) -> None:  # type: ignore[no-untyped-def]
    mini.write("layers/environments/prod/magds.yaml", "magds:\n  port: 5433\n")
    result = mini.run("build")
    assert result.returncode == 0
    assert result.stderr == snapshot


def test_explain(mini: Project, snapshot) -> None:  # type: ignore[no-untyped-def]
    assert mini.run("build").returncode == 0
    result = mini.run("explain", "magds.host", "--env", "dev")
    assert result.returncode == 0, result.stderr
    assert result.stdout == snapshot
    lines = result.stdout.splitlines()
    assert "layers/base/magds.yaml:2" in lines[1]
    assert lines[2].lstrip().startswith("=> layers/environments/dev/magds.yaml:2")


def test_explain_unset_and_map(mini: Project) -> None:
    mini.write("layers/environments/dev/magds.yaml", "magds:\n  host: localhost\n  pool: !unset\n")
    result = mini.run("explain", "magds.pool.min", "--env", "dev")
    assert result.returncode == 0, result.stderr
    assert "(not set)" in result.stdout
    assert "layers/environments/dev/magds.yaml:3  (environment)  !unset" in result.stdout


def test_explain_shows_references_and_redacts_secret_values(mini: Project) -> None:
    # A reference says where the secret lives (as config.json does): shown.
    ref = "vault://secret/k3s/magds#db_password"
    mini.write("layers/environments/prod/magds.yaml", f"magds:\n  password: \"{ref}\"\n")
    result = mini.run("explain", "magds.password", "--env", "prod")
    assert result.returncode == 0, result.stderr
    assert f'"{ref}"' in result.stdout and "secret]" in result.stdout
    # Anything else under a secret key (a pasted value) is not.
    mini.write("layers/environments/prod/magds.yaml", "magds:\n  password: \"CANARY_db_password\"\n")
    result = mini.run("explain", "magds.password", "--env", "prod")
    assert "<redacted>" in result.stdout and "CANARY" not in result.stdout
    whole = mini.run("explain", "magds", "--env", "prod")
    assert "CANARY" not in whole.stdout and "<redacted>" in whole.stdout


def test_explain_unknown_key(mini: Project) -> None:
    result = mini.run("explain", "magds.hots", "--env", "dev")
    assert result.returncode == 2
    assert "did you mean 'magds.host'?" in result.stderr
    deeper = mini.run("explain", "magdss.pol.max", "--env", "dev")
    assert deeper.returncode == 2
    assert "did you mean 'magds.pool.max'?" in deeper.stderr


def test_docs_reference_is_up_to_date() -> None:
    """docs/config-reference.md is what `magcfg docs` renders from the bundled schema."""
    import subprocess

    from .conftest import MAGCFG, REPO

    result = subprocess.run([str(MAGCFG), "docs", "--check", "--out", "docs/config-reference.md"],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_docs_lists_every_key_with_policy(mini: Project) -> None:
    result = mini.run("docs")
    assert result.returncode == 0
    assert "| `logging.level` | string | one of `\"debug\"`, `\"info\"`, `\"warn\"`, " \
           "`\"error\"` | hot |" in result.stdout
    assert "| `magds.password` | string | pattern `^(vault\\|env)://` | restart | yes |" \
        in result.stdout


def test_build_jobs(tmp_path: Path) -> None:
    """``--jobs``/``MAGCFG_JOBS``: the same files from one process and from two; the
    second waits for its workers (``--timings`` names the stage)."""
    outputs = []
    for name, args, env in (("one", ["--jobs", "1"], {}), ("two", ["-j", "2"], {}),
                            ("env", [], {"MAGCFG_JOBS": "2"})):
        root = tmp_path / name
        subprocess.run([sys.executable, str(REPO / "benchmarks" / "synth.py"), str(root),
                        "--shape", "realistic", "--services", "20", "--keys", "12"],
                       check=True, capture_output=True)
        project = Project(root)
        done = project.run("build", "-q", "--timings", *args, env=env)
        assert done.returncode == 0, done.stderr
        timings = json.loads(done.stderr.split("timings: ", 1)[1])
        assert ("workers" in timings) == (name != "one")
        outputs.append(project.snapshot_tree())
    assert outputs[0] and outputs[0] == outputs[1] == outputs[2]
    bad = Project(tmp_path / "one").run("build", "--jobs", "0")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_a_run_is_handed_only_its_command_and_behaves_the_same(
        monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    every = typer.main.get_command(app)
    assert isinstance(every, TyperGroup) and len(every.commands) == 18
    for name in sorted(every.commands):
        one = app_for([name])
        alone_group = typer.main.get_command(one)
        assert isinstance(alone_group, TyperGroup) and list(alone_group.commands) == [name]
        for args in ([name, "--help"], [name, "--no-such-option"]):
            whole = runner.invoke(app, args, prog_name="magcfg", env={"COLUMNS": "100"})
            alone = runner.invoke(one, args, prog_name="magcfg", env={"COLUMNS": "100"})
            assert (alone.exit_code, alone.output) == (whole.exit_code, whole.output)
            assert whole.exit_code == (0 if args[1] == "--help" else 2) and whole.output
    # The whole app's help, a name that is no command (suggestions), a leading option.
    for args in ([], ["--help"], ["buil"], ["--version", "build"]):
        assert app_for(args) is app
    monkeypatch.setenv("_MAGCFG_COMPLETE", "complete_bash")  # shell completion
    assert app_for(["build"]) is app


def test_help_shows_the_extras_to_install(mini: Project) -> None:
    """Rich help reads ``[word]`` as a style tag: ``magcfg[lsp]`` must not become
    ``magcfg``."""
    wide = {"COLUMNS": "200", "TERMINAL_WIDTH": "200"}
    assert "(needs magcfg[metrics])" in mini.run("watch", "--help", env=wide).stdout
    # Listed on one line: every docstring is unwrapped, the last command's too.
    assert "hover, definition, references, completion, quick fixes); needs magcfg[lsp]." \
        in mini.run("--help", env=wide).stdout
    assert "needs magcfg[lsp]." in mini.run("lsp", "--help", env=wide).stdout
    plain = mini.run("lsp", "--help", env={**wide, "TYPER_USE_RICH": "0"})
    assert "needs magcfg[lsp]." in plain.stdout


def test_no_help_text_holds_a_tag_rich_would_eat() -> None:
    """Every help string, as typer hands it to rich: a ``[word]`` in it is escaped."""
    from rich.markup import RE_TAGS

    def texts(command: typer.core.TyperCommand | TyperGroup) -> list[str]:
        found = [command.help or ""]
        found += [getattr(p, "help", None) or "" for p in command.params]
        for sub in getattr(command, "commands", {}).values():
            found += texts(sub)
        return found

    every = texts(typer.main.get_command(app))
    assert len(every) > 100
    eaten = [text for text in every for match in RE_TAGS.finditer(text)
             if len(match.group(2)) % 2 == 0]
    assert eaten == []


@pytest.mark.parametrize("key", ["magds.pool.", ".magds.pool", "magds..pool", "."])
def test_explain_refuses_a_key_with_an_empty_segment(mini: Project, key: str) -> None:
    done = mini.run("explain", key, "--env", "dev")
    assert done.returncode == 2, done.stdout
    assert done.stdout == ""
    assert done.stderr == (f"error: {key!r} has an empty segment: give a dotted key, "
                           "e.g. magds.port\n")


NOT_UTF8 = {"LC_ALL": "C", "LANG": "C", "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0"}
"""A locale whose encoding is ASCII, which Python does not turn into UTF-8 on its own."""


@pytest.mark.parametrize("how", [["magcfg"], [sys.executable, "-m", "magcfg"]],
                         ids=["script", "module"])
def test_a_non_utf8_locale_builds_the_same_bytes(mini: Project, tmp_path: Path,
                                                 how: list[str]) -> None:
    """Python decodes file names and arguments in the locale's encoding: under an ASCII
    one, a layer named ``café.yaml`` was refused as "not valid UTF-8" and a key path
    with an ``é`` in it was not found."""
    import shutil

    from .conftest import MAGCFG

    schema = json.loads((mini.root / "schemas/schema.json").read_text())
    schema["properties"]["café"] = {"type": "object"}
    mini.write("schemas/schema.json", json.dumps(schema))
    mini.write("layers/base/café.yaml", "café:\n  naïve: déjà\n")
    other = Project(tmp_path / "other")
    shutil.copytree(mini.root, other.root)
    assert mini.run("build").returncode == 0
    command = [str(MAGCFG)] if how == ["magcfg"] else how
    env = {**os.environ, **NOT_UTF8}
    done = subprocess.run([*command, "build"], cwd=other.root, env=env, capture_output=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert other.snapshot_tree() == mini.snapshot_tree()
    said = subprocess.run([*command, "explain", "-e", "dev", "café.naïve"], cwd=other.root,
                          env=env, capture_output=True, timeout=120, check=False)
    assert said.returncode == 0, said.stderr
    assert said.stdout.startswith('café.naïve = "déjà"'.encode())


def test_the_command_runs_itself_again_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A later ``-X utf8=0`` of the caller's may keep the process run again out of UTF-8
    mode: it must not run itself again, and again."""
    from magcfg import cli
    from magcfg.cli import utf8_command

    monkeypatch.setattr(cli, "_utf8_mode", lambda: False)
    monkeypatch.setattr(sys, "getfilesystemencoding", lambda: "ascii")
    monkeypatch.setattr("locale.getpreferredencoding", lambda _do_setlocale: "ascii")
    monkeypatch.setattr(sys, "orig_argv", [sys.executable, "/bin/magcfg", "build"])
    assert utf8_command() == [sys.executable, "-X", "utf8", "/bin/magcfg", "build"]
    monkeypatch.setattr(sys, "orig_argv", [sys.executable, "-X", "utf8", "-X", "utf8=0",
                                           "-m", "magcfg", "build"])
    assert utf8_command() is None


# An interpreter without the compiler's libraries, as `pip install 'magcfg[sidecar]'`
# leaves it: importing one of them fails as a missing module does.
_WITHOUT_THE_COMPILER = """
import sys
from magcfg.cli import main
from magcfg.version import COMPILER_MODULES

class Absent:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in COMPILER_MODULES:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Absent())
sys.exit(main(sys.argv[1:]))
"""


def test_the_sidecar_install_verifies_a_given_artifact_and_names_what_it_runs(
        mini: Project) -> None:
    """An init container or an operator in the sidecar's image verifies what it is handed
    with `verify --artifact`, which imports nothing of the compiler; a command that needs
    the compiler names the install that has it, and what this one runs."""
    assert mini.run("build").returncode == 0
    assert mini.run("keys", "generate", "--out", "keys").returncode == 0
    assert mini.run("sign", "--key", "keys/magcfg.key", "--env", "dev").returncode == 0

    def sidecar(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", _WITHOUT_THE_COMPILER, *args],
                              cwd=mini.root, capture_output=True, text=True, timeout=120)

    given = sidecar("verify", "--artifact", "generated/dev", "--env", "dev",
                    "--public-key", "keys/magcfg.pub")
    assert given.returncode == 0 and given.stderr.startswith("verified generated/dev: "), \
        given.stderr
    project = sidecar("verify", "--env", "dev", "--public-key", "keys/magcfg.pub")
    assert project.returncode == 2 and "Traceback" not in project.stderr
    assert project.stderr.startswith("magcfg: this command needs the compiler: pip install "
                                     "'magcfg[compiler]' (this installation lacks ")
    assert project.stderr.endswith("; it runs `magcfg watch` and `magcfg verify "
                                   "--artifact`)\n"), project.stderr


@pytest.mark.parametrize("closed", [0, 1, 2], ids=["stdin", "stdout", "stderr"])
def test_a_build_with_a_standard_descriptor_closed_runs_as_any_other(
        mini: Project, closed: int) -> None:
    """``magcfg build >&-``: Python starts with that stream None; a good build exited 1
    with a traceback, its JSON report failing to be written, or its summary went to
    stdout where stderr was closed."""
    from .conftest import MAGCFG

    def run(*args: str) -> tuple[int, str, str]:
        done = subprocess.run([str(MAGCFG), *args], cwd=mini.root, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=120,
                              preexec_fn=lambda: os.close(closed), check=False)
        return done.returncode, done.stdout, done.stderr

    code, out, err = run("build", "--format", "json")
    assert (code, err) == (0, "")
    assert out == "" if closed == 1 else json.loads(out)["ok"]
    code, out, err = run("build")
    assert (code, out) == (0, "")
    assert err == "" if closed == 2 else err.startswith("built ")


def test_no_git_a_failed_command_asked_outlives_it(tmp_path: Path) -> None:
    """A repository whose index is a FIFO: the build fails on the first git question to
    give no answer, and the other, blocked on the FIFO too, ran on for good after the
    console script's exit, which runs no exit handler (``os._exit``), with the garbage
    collector off."""
    import signal

    from .conftest import fifo_index_project

    fifo_index_project(tmp_path)
    # The console script as it runs, with git given 1 s rather than 30 to answer.
    script = ("import sys\nfrom magcfg import project\nproject.GIT_ANSWER_SECONDS = 1\n"
              "sys.argv = ['magcfg', 'build']\nfrom magcfg.cli import run\nrun()\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 1 and "gave no answer in 1 s" in done.stderr, done.stderr
    left = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            here = os.readlink(f"/proc/{pid}/cwd") == str(tmp_path)
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                command = cmdline.read().split(b"\0")[0]
        except OSError:  # gone meanwhile
            continue
        if here and command.endswith(b"git"):
            left.append(int(pid))
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert left == []


def test_a_command_that_can_start_no_thread_or_process_says_so(mini: Project) -> None:
    """Where the system starts no more processes (the limit on processes reached), or no
    more threads, a build in git, which needs both (git's answers, the thread that
    bounds how long it waits for one), stops with one line that says so, exit 1,
    nothing written. It ended in a traceback (RuntimeError: can't start new thread,
    BlockingIOError from subprocess)."""
    from magcfg.errors import NO_NEW_TASK

    subprocess.run(["git", "init", "-q"], cwd=mini.root, check=True)
    mini.write("layers/environments/dev/magds.yaml", "magds:\n  host: changed\n")
    before = tree_state(mini.root)
    with no_more_tasks() as limit:
        for preexec in (limit, threadless):
            done = subprocess.run([str(MAGCFG), "build"], cwd=mini.root, capture_output=True,
                                  text=True, timeout=120, check=False, preexec_fn=preexec)
            assert (done.returncode, done.stdout, done.stderr) == (
                1, "", f"error: {NO_NEW_TASK}\n"), done.stderr
            assert tree_state(mini.root) == before


_HELD = ("import signal, sys\n"
         "import magcfg.cli\n"
         "held = signal.pthread_sigmask(signal.SIG_BLOCK, [])\n"
         "print(sorted(s.name for s in held & {signal.SIGHUP, signal.SIGINT, signal.SIGTERM}))\n")


def test_watch_holds_its_stop_and_recheck_signals_from_the_first_line_only_as_the_command(
        tmp_path: Path) -> None:
    """`magcfg watch` holds SIGHUP, SIGINT and SIGTERM when magcfg.cli is first imported,
    before its imports (the sidecar's handlers take them ~0.1 s later): as the command
    only, never in a program that imports magcfg.cli and was given `watch` itself."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "compiler")}
    as_a_program = subprocess.run([sys.executable, "-c", _HELD, "watch"], env=env,
                                  capture_output=True, text=True, timeout=60, check=True)
    assert as_a_program.stdout == "[]\n"
    # A program named magcfg, as the console script is, is the command.
    main = tmp_path / "magcfg"
    main.write_text(_HELD)
    as_the_command = subprocess.run([sys.executable, str(main), "watch"], env=env,
                                    capture_output=True, text=True, timeout=60, check=True)
    assert as_the_command.stdout == "['SIGHUP', 'SIGINT', 'SIGTERM']\n"
