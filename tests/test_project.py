"""``project``'s readers of what git streams: ``committed_blobs`` and ``blob_sha256``
take a blob only as git gave it whole, on a real git stopped in the middle."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from magcfg import project
from magcfg.errors import UsageError

from .conftest import MAGCFG, Project

BLOB = bytes(range(256)) * 400
"""A blob larger than a pipe holds (64 KiB): git is still writing it when it is cut."""
HEADER = f"blob {len(BLOB)}\n".encode()

_CUT_GIT = f"""#!{sys.executable}
import os, subprocess, sys, time
if os.environ.get("GIT_CUT_ONLY", sys.argv[1]) != sys.argv[1]:  # another command: git's own
    os.execv(os.environ["REAL_GIT"], [os.environ["REAL_GIT"], *sys.argv[1:]])
# git's answer passed on as it comes, up to GIT_CUT_AT bytes; then this git ends, or hangs.
real = subprocess.Popen([os.environ["REAL_GIT"], *sys.argv[1:]], stdout=subprocess.PIPE)
left = int(os.environ["GIT_CUT_AT"])
while left > 0:
    chunk = os.read(real.stdout.fileno(), min(left, 1 << 16))
    if not chunk:  # all of it passed on: git's own end
        sys.exit(real.wait())
    os.write(1, chunk)
    left -= len(chunk)
if not real.stdout.read(1):
    sys.exit(real.wait())
if os.environ["GIT_CUT_THEN"] == "hang":
    time.sleep(600)
real.kill()
os._exit(1)
"""


def cut_git_on_path(directory: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Puts a ``git`` first on PATH, in ``directory``, that passes the real git's answer
    on only as far as ``GIT_CUT_AT`` bytes (``GIT_CUT_THEN``: ``end`` or ``hang``
    after), for every git command or the one ``GIT_CUT_ONLY`` names; the real git's
    path."""
    real = shutil.which("git")
    assert real is not None
    directory.mkdir()
    (directory / "git").write_text(_CUT_GIT)
    (directory / "git").chmod(0o755)
    monkeypatch.setenv("REAL_GIT", real)
    monkeypatch.setenv("GIT_CUT_THEN", "end")
    monkeypatch.setenv("GIT_CUT_AT", str(1 << 30))
    monkeypatch.setenv("PATH", f"{directory}:{sys.prefix}/bin:/usr/bin:/bin")
    return real


@pytest.fixture
def cut_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository holding ``BLOB`` as ``blob.bin``, with ``cut_git_on_path``."""
    real = cut_git_on_path(tmp_path / "bin", monkeypatch)
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "blob.bin").write_bytes(BLOB)
    for args in (["init", "-q"], ["add", "blob.bin"],
                 ["-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "i"]):
        subprocess.run([real, *args], cwd=repo, check=True, capture_output=True)
    return repo


@pytest.mark.parametrize("cut", [
    3,  # in the line naming the object's type and size
    len(HEADER) + len(BLOB) // 2,
    len(HEADER) + len(BLOB),  # all of the blob, not the line end after it
])
def test_a_blob_git_stops_in_the_middle_of_is_no_blob(
        cut_git: Path, cut: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A git stopped while it streams (its timer's kill, or one from outside) ends its
    output early: part of a blob was taken for the blob (lint's gate read the half it
    got), and a cut line for a name with nothing there."""
    monkeypatch.setenv("GIT_CUT_AT", str(cut))
    with pytest.raises(OSError, match=r"^git cat-file stopped"):
        project.committed_blobs(cut_git, ["HEAD:blob.bin"], 1 << 20)


def test_a_blob_git_gives_whole_is_the_blob(cut_git: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The same git, cut after all of its answer: the blob it holds."""
    monkeypatch.setenv("GIT_CUT_AT", str(len(HEADER) + len(BLOB) + 1))
    assert project.committed_blobs(cut_git, ["HEAD:blob.bin"], 1 << 20) == [BLOB]
    assert project.blob_sha256(cut_git, "HEAD:blob.bin", 1 << 20) \
        == hashlib.sha256(BLOB).hexdigest()


def test_a_git_that_hangs_in_the_middle_of_a_blob_is_stopped_and_no_blob(
        cut_git: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(project, "GIT_BLOB_SECONDS", 1)
    monkeypatch.setenv("GIT_CUT_THEN", "hang")
    monkeypatch.setenv("GIT_CUT_AT", str(len(HEADER) + len(BLOB) // 2))
    with pytest.raises(OSError, match=rf"^git cat-file stopped in its answer for "
                                      rf"HEAD:blob.bin, after {len(BLOB) // 2} "
                                      rf"of its {len(BLOB)} bytes \(stopped after 1 s\)$"):
        project.committed_blobs(cut_git, ["HEAD:blob.bin"], 1 << 20)
    # Hashed as it streams: no digest of the part it gave.
    monkeypatch.setenv("GIT_CUT_AT", str(len(BLOB) // 2))
    assert project.blob_sha256(cut_git, "HEAD:blob.bin", 1 << 20) is None


def _children() -> list[str]:
    """The command lines of this process's running children."""
    import glob
    import os

    found = []
    for listed in glob.glob(f"/proc/{os.getpid()}/task/*/children"):
        with open(listed) as fh:
            for child in fh.read().split():
                try:
                    with open(f"/proc/{child}/cmdline", "rb") as cmdline:
                        found.append(cmdline.read().replace(b"\0", b" ").decode())
                except FileNotFoundError:
                    continue
    return found


def test_no_git_asked_outlives_a_question_that_failed_before_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A repository handed over whole whose index is a FIFO: loading the project asks git
    two questions at once, and the first to give no answer fails the load; the other git,
    blocked on the FIFO as well, was left running for good (one more in a language server
    at each try, and after the command's exit)."""
    import gc

    from magcfg.errors import MagcfgError

    from .conftest import fifo_index_project

    fifo_index_project(tmp_path)
    monkeypatch.setattr(project, "GIT_ANSWER_SECONDS", 1)
    before = _children()
    with pytest.raises(MagcfgError, match="gave no answer in 1 s"):
        project.load_project(tmp_path / "magcfg.yaml")
    gc.collect()
    assert [c for c in _children() if c not in before and c.startswith("git ")] == []


def test_paths_below_a_work_tree_of_their_own_are_left_out_at_any_depth(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``_outside_submodules`` leaves out each path below a directory holding ``.git``
    (a file, as a submodule's, or a directory), asking the file system once per
    directory, however many paths share it and however deep it is."""
    import os

    from .conftest import calls

    (tmp_path / "a/b").mkdir(parents=True)
    (tmp_path / "a/b/.git").write_text("gitdir: ../../.git/modules/b\n")
    (tmp_path / "c/d").mkdir(parents=True)
    (tmp_path / "c/d/.git").mkdir()
    deep = "e/" * 2000 + "f.yaml"
    paths = ["a/b/c/x.yaml", "a/y.yaml", "a/b/z.yaml", "c/d.yaml", "c/d/e/f.yaml", "top.yaml",
             "a/b2/w.yaml", deep]
    asked = calls(monkeypatch, os.path, "lexists")
    assert project._outside_submodules(tmp_path, paths) == [
        "a/y.yaml", "c/d.yaml", "top.yaml", "a/b2/w.yaml", deep]
    directories = ["a", "a/b", "c", "c/d", "a/b2",
                   *(("e/" * depth).rstrip("/") for depth in range(1, 2001))]
    assert sorted(asked) == sorted(os.path.join(tmp_path, d, ".git") for d in directories)


def test_git_is_waited_for_until_it_exits_and_not_past_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A git question's answer is taken as git exits (its pidfd wakes the wait), where
    ``Popen.wait(timeout)`` slept 1, 2, 4 ms... between looks and overshot it; a git
    that hangs is still given up after ``GIT_ANSWER_SECONDS`` (tests/lint/test_walk.py)."""
    import time

    from .conftest import calls

    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    slept = calls(monkeypatch, time, "sleep")
    for _ in range(5):
        top = project.git_answer(["rev-parse", "--show-toplevel"], tmp_path)
        assert top is not None and top.endswith(b"\n")
    assert slept == []
    # A process reaped already is not looked for by its pid, which a process started
    # since may hold.
    done = subprocess.Popen(["git", "--version"], stdout=subprocess.DEVNULL)
    assert done.wait() == 0
    opened = calls(monkeypatch, os, "pidfd_open")
    assert project._exit_status(done, 1) == 0 and opened == []


def test_a_file_nested_past_pyyamls_depth_may_be_a_project() -> None:
    """And so is loaded, to fail as a project file (PyYAML's RecursionError went out of
    lint --since and the language server as a traceback)."""
    assert project.may_be_project_text("[" * 2000 + "]" * 2000, "magcfg.yml")
    assert project.may_be_project_text("on: " + "[" * 2000, "magcfg.yml")


def test_magcfg_run_in_init_s_workflow_directory_finds_the_project_above(
        tmp_path: Path) -> None:
    """A user runs magcfg where the file they edit is: in ``.github/workflows/``, whose
    ``magcfg.yml`` init wrote is the nearest file of a project file's name, and no
    project (a mapping of none of its sections). It was taken for the project:
    ``.github/workflows/magcfg.yml:6: error: key 'on' means different things ...``."""
    repo = Project(tmp_path / "repo")
    repo.root.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo.root, check=True)
    assert repo.run("init", "--env", "dev").returncode == 0
    workflows = repo.root / ".github/workflows"
    done = Project(workflows).run("build", "--check")
    assert (done.returncode, done.stderr) == (0, "up to date: dev\n")
    assert project.find_project_file(workflows) == repo.root / "magcfg.yaml"
    # A pipeline's keys in any YAML spelling, and Woodpecker's, are no project either.
    for text in ("{name: magcfg, on: [push], jobs: {}}\n", "steps:\n  - name: build\n"):
        (workflows / "magcfg.yml").write_text(text)
        assert project.nearest_project_file(workflows) == repo.root / "magcfg.yaml"
    # What may be a project file is found, to fail as one: a misspelt section, no
    # mapping, not YAML, a symlink (never followed to decide).
    (workflows / "pipeline.yml").write_text("jobs: {}\n")
    large = "jobs:\n" + "".join(f"  k{i}: [a]\n" for i in range(
        project.MAX_PIPELINE_BYTES // 10))
    for text in ("verison: 1\nenvironments: [dev]\n", "- dev\n", "a: [\n", large, None):
        (workflows / "magcfg.yml").unlink()
        if text is None:
            (workflows / "magcfg.yml").symlink_to("pipeline.yml")
        else:
            (workflows / "magcfg.yml").write_text(text)
        assert project.nearest_project_file(workflows) == workflows / "magcfg.yml", \
            (text or "")[:40]
    failed = Project(workflows).run("build", "--check")
    assert failed.returncode == 1 and "Traceback" not in failed.stderr, failed.stderr


def test_a_git_that_cannot_start_for_committed_blobs_is_the_limit_to_each_caller(
        tmp_path: Path) -> None:
    """Where the system starts no more processes, the git that would give committed
    bytes does not start: that is the limit reached, not git failing to answer, for
    each caller (lint --since's reads of a commit's files and of the target's
    exemptions), so the command stops with the limit's one line. Each said git could
    not give the bytes (`[Errno 11] Resource temporarily unavailable`): fix what stops
    git."""
    from .conftest import python_under_limit

    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "a.txt").write_text("a\n")
    subprocess.run(["git", "add", "a.txt"], cwd=tmp_path, check=True)
    script = f"""
from pathlib import Path
from magcfg.errors import no_new_task
from magcfg.lint import target, walk
root = Path({str(tmp_path)!r})
for read in (lambda: walk.read_blobs(root, [":./a.txt"], ["a.txt"], "committed"),
             lambda: target._blobs(root, "HEAD", ["a.txt"], 100)):
    try:
        read()
        print("read")
    except Exception as exc:
        print(type(exc).__name__, no_new_task(exc))
"""
    done = python_under_limit(script)
    assert done.stdout.splitlines() == ["NoNewTask True"] * 2, done.stdout + done.stderr


def test_the_project_file_found_is_never_above_the_checkout_and_named_as_the_shell_does(
        tmp_path: Path) -> None:
    """Run in a git checkout that holds none, no project file above the checkout is
    taken for its own (one a CI runner's workspace holds); run in ``svc``, a link the
    checkout holds to ``evil``, the project file is ``svc/magcfg.yaml``, through it."""
    (tmp_path / "magcfg.yaml").write_text("environments: [dev]\n")
    checkout = Project(tmp_path / "checkout")
    (checkout.root / "evil").mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=checkout.root, check=True)
    (checkout.root / "svc").symlink_to("evil")
    (checkout.root / "evil" / "magcfg.yaml").write_text("environments: [dev]\n")
    (checkout.root / "app").mkdir()
    with pytest.raises(UsageError, match=r"no magcfg\.yaml in "):
        project.find_project_file(checkout.root / "app")
    done = Project(checkout.root / "app").run("build", "--check")
    assert done.returncode == 2 and "no magcfg.yaml in " in done.stderr, done.stderr
    assert project.find_project_file(checkout.root / "svc") == \
        checkout.root / "svc" / "magcfg.yaml"
    # Outside any checkout, the search goes up as far as it finds one.
    (tmp_path / "elsewhere").mkdir()
    assert project.find_project_file(tmp_path / "elsewhere") == tmp_path / "magcfg.yaml"


def test_a_path_named_in_a_one_line_error_is_escaped(tmp_path: Path) -> None:
    """A directory a pull request names (a monorepo's CI runs magcfg in each) may hold a
    line end: the error that names it, missing project or unwritable report, keeps to
    one line, so nothing it prints reads as a line of its own in CI's log."""
    forged = tmp_path / "app\n::error::forged"
    forged.mkdir()
    for args in (["build"], ["build", "--project", "x\n::error::forged/magcfg.yaml"]):
        done = subprocess.run([str(MAGCFG), *args], cwd=forged,
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 2, done.stderr
        assert "\n::error::forged" not in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    with pytest.raises(UsageError) as raised:
        from magcfg.durable import check_operator_target
        check_operator_target(forged / "no\n::error::dir" / "r.html", tmp_path, "--html")
    assert "\n" not in raised.value.format(), raised.value.format()
