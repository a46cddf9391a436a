"""The pytest plugin (snapshot tests of every magcfg project, no test code in the
project) and `magcfg promote` refreshing the snapshot it affects. Real pytest processes on
real projects."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from ..conftest import MAGCFG, REPO, Project, own_pytest_env
from .promotion_repo import git, make_repo


def pytest_in(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-W", "ignore::DeprecationWarning", *args], cwd=root,
                          env=own_pytest_env(os.environ),
                          capture_output=True, text=True, timeout=300)


def test_any_project_gets_snapshot_tests(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "shop")
    collected = pytest_in(repo.root, "--collect-only")
    assert [line for line in collected.stdout.splitlines() if "::" in line] == [
        f"magcfg.yaml::test_compiled_config[{env}]" for env in ("dev", "staging", "production")]

    created = pytest_in(repo.root, "--snapshot-update")
    assert created.returncode == 0, created.stdout
    assert "3 snapshots generated" in created.stdout
    assert pytest_in(repo.root).returncode == 0

    repo.write("layers/environments/staging/db.yaml", "db:\n  pool:\n    max: 99\n")
    failed = pytest_in(repo.root)
    assert failed.returncode == 1
    assert "FAILED magcfg.yaml::test_compiled_config[staging]" in failed.stdout
    assert "test_compiled_config[dev]" not in failed.stdout.split("short test summary")[-1]


def test_promotion_commit_passes_its_snapshot_tests(tmp_path: Path) -> None:
    repo: Project = make_repo(tmp_path / "shop")
    assert pytest_in(repo.root, "--snapshot-update").returncode == 0
    git(repo.root, "add", "-A")
    git(repo.root, "commit", "-qm", "snapshots")
    snapshot_file = repo.root / "__snapshots__/magcfg.ambr"
    before = snapshot_file.read_text()

    done = repo.run("promote", "staging", "production", "--key", "db.pool.max")
    assert done.returncode == 0, done.stderr
    changed = git(repo.root, "diff", "--name-only", "main", "HEAD").split()
    assert "__snapshots__/magcfg.ambr" in changed
    # The PR body lists every file the commit changes (it left the snapshots out).
    listed = [line.split("`")[1] for line in
              done.stdout.split("Files changed:\n\n")[1].split("\n\n")[0].splitlines()]
    assert all(any(c == f or c.startswith(f) for f in listed) for c in changed), (
        changed, listed)
    assert "- `__snapshots__/magcfg.ambr` (`production`'s snapshot refreshed)\n" in done.stdout
    assert git(repo.root, "status", "--porcelain") == ""
    after = snapshot_file.read_text()
    # Only production's entry changed.
    assert after != before
    for env in ("dev", "staging"):
        entry = f"# name: test_compiled_config[{env}]"
        assert before.split(entry)[1].split("# ---")[0] == after.split(entry)[1].split("# ---")[0]
    tests = pytest_in(repo.root)
    assert tests.returncode == 0, tests.stdout


def test_the_pytest_these_tests_start_has_the_plugins_of_magcfg_s_test_extra(
        tmp_path: Path) -> None:
    """A repository that installs ``magcfg[test]`` has magcfg's plugin and syrupy, none of
    the others this suite's environment holds (Hypothesis, pytest-lsp, xdist)."""
    done = pytest_in(tmp_path, "--version", "--version")
    assert done.returncode == 0, done.stderr
    listed = done.stdout.split("registered third-party plugins:\n")[1].splitlines()
    assert sorted(line.split()[0].rsplit("-", 1)[0] for line in listed) == ["magcfg", "syrupy"]


def test_the_runbook_s_recipe_for_a_promotion_main_moved_under_passes_the_snapshots(
        tmp_path: Path) -> None:
    """The runbook's commands for a promotion PR that main moved under, run as written
    where the snapshot tests run: the rebase conflicts in the artifact (the snapshots
    merged or not), and after the recipe the branch passes the snapshot tests and CI's
    build check, its version above main's."""
    text = (REPO / "docs/ops/Runbook_ConfigPromotion.md").read_text()
    section = text[text.index("### A promotion PR that main moved under"):]
    (block,) = re.findall(r"```console\n(.*?)```", section, re.S)[:1]
    commands = [line[2:].split("  #")[0].strip() for line in block.splitlines()
                if line.startswith("$ ")]
    assert commands[0].startswith("git switch -q promote/")
    repo = make_repo(tmp_path / "shop")
    env = {**own_pytest_env(os.environ), "GIT_AUTHOR_NAME": "A", "GIT_AUTHOR_EMAIL": "a@b.c",
           "GIT_COMMITTER_NAME": "A", "GIT_COMMITTER_EMAIL": "a@b.c",
           "PATH": f"{MAGCFG.parent}{os.pathsep}{os.environ['PATH']}"}
    assert pytest_in(repo.root, "--snapshot-update").returncode == 0
    git(repo.root, "add", "-A")
    git(repo.root, "commit", "-qm", "snapshots")
    assert repo.run("promote", "staging", "production", "--key", "db.pool.max",
                    "--branch", "promote-pool").returncode == 0
    git(repo.root, "switch", "-q", "main")
    base = repo.root / "layers/base/db.yaml"
    base.write_text(base.read_text().replace("port: 5432", "port: 6432"))
    assert repo.run("build", "-q").returncode == 0
    assert pytest_in(repo.root, "--snapshot-update").returncode == 0
    git(repo.root, "commit", "-qam", "Base: port 6432")
    git(repo.root, "switch", "-q", "promote-pool")
    conflicted = ""
    for command in commands[1:]:
        done = subprocess.run(["sh", "-c", command], cwd=repo.root, env=env,
                              capture_output=True, text=True, timeout=300)
        if command == "git rebase main":
            assert done.returncode == 1, done.stdout + done.stderr
            conflicted = done.stdout
            continue
        assert done.returncode == 0, (command, done.stdout + done.stderr)
    assert "Merge conflict in generated/production/manifest.json" in conflicted, conflicted
    assert git(repo.root, "status", "--porcelain") == ""
    tests = pytest_in(repo.root)
    assert tests.returncode == 0, tests.stdout


def test_the_runbook_s_roll_back_after_a_later_change_passes_the_snapshots(
        tmp_path: Path) -> None:
    """The runbook's roll back (step 7), run as written where the snapshot tests run,
    of a promotion whose environment a later commit changed too: the revert conflicts
    in the artifact and in the snapshots, and after the recipe the commit passes the
    snapshot tests and CI's build check (it committed the snapshots with git's conflict
    markers, and production's test failed)."""
    text = (REPO / "docs/ops/Runbook_ConfigPromotion.md").read_text()
    section = text[text.index("## 7. Roll back by revert"):]
    (block,) = re.findall(r"```console\n(.*?)```", section, re.S)[:1]
    commands = [line[2:].split("  #")[0].strip() for line in block.splitlines()
                if line.startswith("$ ")]
    repo = make_repo(tmp_path / "shop")
    env = {**own_pytest_env(os.environ), "GIT_AUTHOR_NAME": "A", "GIT_AUTHOR_EMAIL": "a@b.c",
           "GIT_COMMITTER_NAME": "A", "GIT_COMMITTER_EMAIL": "a@b.c",
           "PATH": f"{MAGCFG.parent}{os.pathsep}{os.environ['PATH']}"}
    assert pytest_in(repo.root, "--snapshot-update").returncode == 0
    git(repo.root, "add", "-A")
    git(repo.root, "commit", "-qm", "snapshots")
    assert repo.run("promote", "staging", "production", "--key", "db.pool.max",
                    "--branch", "promote-pool").returncode == 0
    git(repo.root, "switch", "-q", "main")
    git(repo.root, "merge", "-q", "--no-ff", "promote-pool", "-m", "Merge PR #103")
    merge = git(repo.root, "rev-parse", "HEAD").strip()
    # The line beside production's promoted one in its snapshot entry.
    base = repo.root / "layers/base/db.yaml"
    base.write_text(base.read_text().replace("min: 1", "min: 3"))
    assert repo.run("build", "-q").returncode == 0
    assert pytest_in(repo.root, "--snapshot-update").returncode == 0
    git(repo.root, "commit", "-qam", "Base: pools of 3 at least")
    reverted = ""
    for command in commands:
        if "magcfg sign" in command:
            break
        command = re.sub(r"(git revert --no-commit -m 1) [0-9a-f]{40}", rf"\1 {merge}", command)
        done = subprocess.run(["sh", "-c", command], cwd=repo.root, env=env,
                              capture_output=True, text=True, timeout=300)
        if command.startswith("git revert"):
            assert done.returncode == 1, done.stdout + done.stderr
            reverted = done.stdout + done.stderr
            continue
        if command.startswith("magcfg diff"):
            assert done.returncode == 1, done.stdout + done.stderr  # differences
            continue
        assert done.returncode == 0, (command, done.stdout + done.stderr)
    assert "Merge conflict in __snapshots__/magcfg.ambr" in reverted, reverted
    assert git(repo.root, "status", "--porcelain") == ""
    tests = pytest_in(repo.root)
    assert tests.returncode == 0, tests.stdout
    assert repo.run("build", "--check", "--since", "HEAD~1").returncode == 0
