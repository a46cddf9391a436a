"""``magcfg lint -o FILE`` (lint/cli.py): a report that cannot be written is a plain
error naming the file, and nothing is left half-written or written elsewhere."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

from . import fixtures as fx
from .conftest import MakeRepo, run_cli


def _refused(root: Path, target: str, *fragments: str) -> None:
    proc = run_cli(root, "lint", "-f", "sarif", "-o", target)
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stdout == ""
    for fragment in fragments:
        assert fragment in proc.stderr, proc.stderr


def test_output_onto_a_directory_is_refused(make_repo: MakeRepo) -> None:
    repo = make_repo(fx.VAULT_POLICY)
    (repo.root / "generated").mkdir()
    before = sorted(os.listdir(repo.root))
    _refused(repo.root, "generated", "generated: error: is a directory; give a file name")
    assert sorted(os.listdir(repo.root)) == before
    assert os.listdir(repo.root / "generated") == []


def test_output_into_a_missing_directory_is_refused(make_repo: MakeRepo, tmp_path: Path) -> None:
    repo = make_repo(fx.VAULT_POLICY)
    for target in ("reports/lint.sarif", str(tmp_path / "nodir" / "lint.sarif")):
        _refused(repo.root, target, f"{target}: error: cannot write: directory ",
                 "does not exist")
    assert not (repo.root / "reports").exists()
    assert not (tmp_path / "nodir").exists()


def test_output_onto_a_device_is_refused(make_repo: MakeRepo) -> None:
    repo = make_repo(fx.VAULT_POLICY)
    # /dev/full fails every write as a full disk does.
    _refused(repo.root, "/dev/full", "/dev/full: error: is a character device; give a file name")


def test_output_never_writes_through_a_committed_symlink(make_repo: MakeRepo,
                                                         tmp_path: Path) -> None:
    repo = make_repo(fx.VAULT_POLICY)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep\n")
    os.symlink(victim, repo.root / "lint.sarif")
    _refused(repo.root, "lint.sarif", "lint.sarif: error: cannot write: lint.sarif is a "
             "symlink in the checkout, which magcfg never writes through")
    assert victim.read_text() == "keep\n"


def test_output_never_writes_into_a_committed_directory_symlink(make_repo: MakeRepo,
                                                                tmp_path: Path) -> None:
    repo = make_repo(fx.VAULT_POLICY)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, repo.root / "reports")
    _refused(repo.root, "reports/lint.sarif",
             "reports/lint.sarif: error: cannot write: reports is a symlink in the checkout, "
             "which magcfg never writes through")
    assert os.listdir(elsewhere) == []


def test_output_replaces_a_file_whole(make_repo: MakeRepo) -> None:
    repo = make_repo(fx.VAULT_POLICY)
    report = repo.root / "out" / "lint.txt"
    report.parent.mkdir()
    report.write_text("old report\n" * 1000)
    proc = run_cli(repo.root, "lint", "-o", "out/lint.txt")
    assert proc.returncode == 1, proc.stderr  # the fixture's findings
    assert "Traceback" not in proc.stderr
    assert report.read_text().startswith("policies/magds.hcl:1:")
    assert "old report" not in report.read_text()
    assert os.listdir(report.parent) == ["lint.txt"]


def test_a_missing_baseline_is_written_by_the_command_it_advises(tmp_path: Path) -> None:
    """The command that writes a missing baseline is the run that reads it with
    --write-baseline, where it runs: the file as given, the project given that is not
    the one found there (a monorepo's, at the top, where the hook and CI run lint) and
    the --exclude globs, all of which decide what it records. It advised
    `magcfg lint --write-baseline`, which writes .magcfg-lint-baseline.json at the top
    with no project's settings, and the run still found no baseline."""
    top = tmp_path / "mono"
    (top / "svc").mkdir(parents=True)
    committer = ["git", "-c", "user.email=a@b.c", "-c", "user.name=A"]
    subprocess.run(["git", "init", "-q"], cwd=top, check=True)
    assert run_cli(top, "init", "svc", "--env", "dev", "--ci", "none").returncode == 0
    layer = top / "svc/layers/base/app.yaml"
    layer.write_text(layer.read_text() + '  password: "hunter2-CANARYbase"\n')
    (top / "scratch").mkdir()
    (top / "scratch/notes.env").write_text("API_PASSWORD=hunter2-CANARYnote\n")
    subprocess.run(["git", "add", "-A"], cwd=top, check=True)
    subprocess.run([*committer, "commit", "-qm", "init"], cwd=top, check=True)
    run = ("lint", "--project", "svc/magcfg.yaml", "--exclude", "scratch/*",
           "--baseline", "svc/accepted lint.json")
    missing = run_cli(top, *run)
    assert missing.returncode == 2, missing.stderr
    command = re.findall(r"create it with `([^`]*)`", missing.stderr)
    assert command == ["magcfg lint --project svc/magcfg.yaml --exclude 'scratch/*' "
                       "--baseline 'svc/accepted lint.json' --write-baseline"], missing.stderr
    written = run_cli(top, *shlex.split(command[0])[1:])
    assert written.returncode == 0, written.stderr
    accepted = run_cli(top, *run)
    assert (accepted.returncode, accepted.stdout) == (0, ""), accepted.stderr
    assert accepted.stderr.endswith(", 1 baselined\n"), accepted.stderr
    for done in (missing, written, accepted):
        assert "CANARY" not in done.stdout + done.stderr
    # A name holding a line end shows escaped, in the error and its command: no line
    # of CI's log forged (both printed it raw).
    forged = run_cli(top, "lint", "--baseline", "x\nsvc/app.yaml:1:1: ok.json")
    assert forged.returncode == 2 and len(forged.stderr.splitlines()) == 1, forged.stderr
    assert "--baseline 'x\\x0asvc/app.yaml:1:1: ok.json' --write-baseline" in forged.stderr
    # Run where the project is the one found: no --project.
    below = run_cli(top / "svc", "lint", "--baseline", "none.json")
    assert "(create it with `magcfg lint --baseline none.json --write-baseline`)" in \
        below.stderr, below.stderr
