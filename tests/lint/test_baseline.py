"""The baseline file (lint/baseline.py): read as every repository file is (a pull request
commits it), written atomically and only into a directory that exists."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

from magcfg.lint.baseline import MAX_BASELINE_BYTES

from . import fixtures as fx
from .conftest import REPO, MakeRepo, run_cli

BASELINE = ".magcfg-lint-baseline.json"
EMPTY = '{"format": 1, "findings": []}\n'


def _lint_bounded(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``magcfg lint`` with 1 GB of address space and 60 s: a reader that does not stop
    at a device's end fails the test instead of taking the shared machine's memory."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    env = {**os.environ, "PYTHONPATH": str(REPO / "compiler")}
    return subprocess.run([sys.executable, "-m", "magcfg", "lint", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, check=False, timeout=60,
                          preexec_fn=limit)


def _refused(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr, proc.stderr


def test_a_fifo_baseline_is_refused_without_blocking(make_repo: MakeRepo) -> None:
    repo = make_repo(fx.VAULT_POLICY)
    os.mkfifo(repo.root / BASELINE)
    _refused(_lint_bounded(repo.root, "--baseline", BASELINE), f"{BASELINE}: error: is a FIFO")


def test_a_baseline_linked_to_a_device_is_refused(make_repo: MakeRepo) -> None:
    repo = make_repo(fx.VAULT_POLICY)
    os.symlink("/dev/zero", repo.root / BASELINE)
    _refused(_lint_bounded(repo.root, "--baseline", BASELINE),
             f"{BASELINE}: error: symlink leads outside the repository")
    # Named by the operator, outside the repository: still only a regular file.
    _refused(_lint_bounded(repo.root, "--baseline", "/dev/zero"),
             "/dev/zero: error: is a character device, not a regular file")


def test_a_baseline_linked_out_of_the_repository_is_not_read(make_repo: MakeRepo,
                                                             tmp_path: Path) -> None:
    repo = make_repo(fx.VAULT_POLICY)
    assert run_cli(repo.root, "lint", "--write-baseline").returncode == 0
    outside = tmp_path / "outside.json"
    (repo.root / BASELINE).rename(outside)
    os.symlink(outside, repo.root / BASELINE)
    _refused(run_cli(repo.root, "lint", "--baseline", BASELINE),
             f"{BASELINE}: error: symlink leads outside the repository")
    # However the path reaches the checkout: through the operator's own link to it.
    os.symlink(repo.root, tmp_path / "checkout")
    via = tmp_path / "checkout" / BASELINE
    _refused(run_cli(repo.root, "lint", "--baseline", str(via)),
             f"{via}: error: symlink leads outside the repository")


def test_a_baseline_linked_into_git_is_not_read(make_repo: MakeRepo) -> None:
    repo = make_repo(fx.VAULT_POLICY)
    os.symlink(".git/config", repo.root / BASELINE)
    _refused(run_cli(repo.root, "lint", "--baseline", BASELINE), f"{BASELINE}: error:", ".git")


def test_a_baseline_over_the_size_cap_is_refused(make_repo: MakeRepo) -> None:
    repo = make_repo(fx.VAULT_POLICY)
    # Valid JSON, so only the cap can refuse it.
    (repo.root / BASELINE).write_text(EMPTY + " " * MAX_BASELINE_BYTES)
    _refused(run_cli(repo.root, "lint", "--baseline", BASELINE),
             f"{BASELINE}: error: is larger than {MAX_BASELINE_BYTES} bytes")


def test_an_operator_baseline_outside_the_repository_is_read(make_repo: MakeRepo,
                                                             tmp_path: Path) -> None:
    repo = make_repo(fx.VAULT_POLICY)
    outside = tmp_path / "ci" / "lint-baseline.json"
    outside.parent.mkdir()
    proc = run_cli(repo.root, "lint", "--write-baseline", "--baseline", str(outside))
    assert proc.returncode == 0, proc.stderr
    proc = run_cli(repo.root, "lint", "--baseline", str(outside))
    assert proc.returncode == 0, proc.stderr
    assert "baselined" in proc.stderr


def test_write_baseline_into_a_missing_directory_is_refused(make_repo: MakeRepo,
                                                           tmp_path: Path) -> None:
    repo = make_repo(fx.VAULT_POLICY)
    for target in ("ci/lint-baseline.json", str(tmp_path / "nodir" / "x" / "bl.json")):
        proc = run_cli(repo.root, "lint", "--write-baseline", "-b", target)
        _refused(proc, f"{target}: error: cannot write: directory ", "does not exist")
    assert not (repo.root / "ci").exists()
    assert not (tmp_path / "nodir").exists()


def test_write_baseline_onto_a_directory_is_refused(make_repo: MakeRepo) -> None:
    repo = make_repo(fx.VAULT_POLICY)
    (repo.root / "generated").mkdir()
    before = sorted(os.listdir(repo.root))
    _refused(run_cli(repo.root, "lint", "--write-baseline", "-b", "generated"),
             "generated: error: is a directory; give a file name")
    assert sorted(os.listdir(repo.root)) == before  # no temp file left beside it
    assert os.listdir(repo.root / "generated") == []


def test_write_baseline_never_writes_through_a_symlink(make_repo: MakeRepo,
                                                       tmp_path: Path) -> None:
    repo = make_repo(fx.VAULT_POLICY)
    outside = tmp_path / "victim.json"
    outside.write_text("keep\n")
    os.symlink(outside, repo.root / BASELINE)
    _refused(run_cli(repo.root, "lint", "--write-baseline"),
             f"error: cannot write: {BASELINE} is a symlink in the checkout, which magcfg "
             "never writes through")
    assert outside.read_text() == "keep\n"
    assert (repo.root / BASELINE).is_symlink()



def _entry(**fields: object) -> str:
    entry = {"file": "a.py", "rule": "MAG002", "fingerprint": "0" * 32, "count": 1, **fields}
    return json.dumps({"format": 1, "tool": "magcfg lint", "findings": [entry]})


def test_a_baseline_holds_only_what_write_baseline_writes(make_repo: MakeRepo) -> None:
    """No field of the baseline in use may hold anything but what --write-baseline
    writes: a secret in an extra field or in place of a fingerprint is
    refused, located, and never printed."""
    token = "ghp_" + "Zq8XwT4vB7nM2kLp9RsD3fGh6JcY1aEoUi5V"
    cases = {
        json.dumps({"format": 1, "findings": [], "note": {"token": token}}): "note",
        json.dumps({"format": 1, "findings": [], "tool": {"token": token}}): "tool",
        json.dumps({"format": 1, "findings": [], "tool": token}): "tool",
        _entry(fingerprint=token): "findings[0]",
        _entry(note=token): "findings[0]",
        _entry(rule="MAG999"): "findings[0]",
        _entry(count=0): "findings[0]",
        _entry(count=True): "findings[0]",
    }
    for text, key in cases.items():
        repo = make_repo({"README.md": "x\n", BASELINE: text + "\n"})
        proc = run_cli(repo.root, "lint", "--baseline", BASELINE)
        _refused(proc, f"{BASELINE}: error: ", f"[{key}]")
        assert token not in proc.stdout + proc.stderr
    good = make_repo({"README.md": "x\n", BASELINE: _entry() + "\n"})
    assert run_cli(good.root, "lint", "--baseline", BASELINE).returncode == 0


def test_a_baseline_file_not_in_use_is_linted(make_repo: MakeRepo) -> None:
    token = "ghp_" + "Zq8XwT4vB7nM2kLp9RsD3fGh6JcY1aEoUi5V"
    repo = make_repo({BASELINE: json.dumps({"format": 1, "findings": [],
                                            "note": token}) + "\n"})
    proc = run_cli(repo.root, "lint")
    assert proc.returncode == 1 and f"{BASELINE}:1:" in proc.stdout, proc.stdout
    assert token not in proc.stdout + proc.stderr
    # A baseline that --write-baseline wrote has nothing lint reports.
    clean = make_repo({"a.py": "password = 'CANARYbl1'\n"})
    assert run_cli(clean.root, "lint", "--write-baseline").returncode == 0
    found = run_cli(clean.root, "lint")
    assert found.returncode == 1 and BASELINE not in found.stdout, found.stdout


def test_a_secret_in_a_baseline_entry_s_file_is_found(make_repo: MakeRepo) -> None:
    """An entry's ``file`` is text of any form: the baseline in use is linted too, so a
    token committed there, in a baseline that is otherwise what --write-baseline
    writes, is a finding (it passed the gate, and the history merged held it)."""
    token = "ghp_" + "Zq8XwT4vB7nM2kLp9RsD3fGh6JcY1aEoUi5V"
    repo = make_repo({"README.md": "x\n", BASELINE: _entry(file=token) + "\n"})
    proc = run_cli(repo.root, "lint", "--baseline", BASELINE, "-f", "json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert [(f["file"], f["rule"]) for f in json.loads(proc.stdout)["findings"]] == [
        (BASELINE, "MAG002")]
    assert token not in proc.stdout + proc.stderr


def test_a_baseline_nested_past_the_parser_s_depth_is_refused(make_repo: MakeRepo) -> None:
    """JSON nested 100,000 deep exhausts Python's recursion: a located error, exit 1,
    not a traceback."""
    deep = "[" * 100_000 + "]" * 100_000 + "\n"
    repo = make_repo({"README.md": "x\n", BASELINE: deep})
    proc = run_cli(repo.root, "lint", "--baseline", BASELINE)
    _refused(proc, f"{BASELINE}: error: not a magcfg lint baseline", "nested too deep")
