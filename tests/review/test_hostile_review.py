"""``promote``, ``diff --against`` and ``build --since`` on a hostile repository: refused
with a located message, nothing changed (files, branches, HEAD), nothing outside touched."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ..conftest import Project, failed_cleanly, tree_state
from .promotion_repo import git, make_repo


@pytest.fixture
def repo(tmp_path: Path) -> Project:
    return make_repo(tmp_path / "shop")


def _state(repo: Project) -> tuple[dict[str, str], str, str, str]:
    """Everything a refused command must leave as it was."""
    files = {k: v for k, v in tree_state(repo.root).items()
             if not k.startswith((".git", ".magcfg-cache"))}
    return (files, git(repo.root, "branch", "--list"), git(repo.root, "rev-parse", "HEAD"),
            git(repo.root, "status", "--porcelain"))


def test_promote_refuses_an_output_symlinked_outside(repo: Project, tmp_path: Path) -> None:
    away = tmp_path / "outside"
    shutil.move(repo.root / "generated/production", away)
    os.symlink(away, repo.root / "generated/production")
    git(repo.root, "add", "-A")
    git(repo.root, "commit", "-q", "-m", "a pull request plants a symlink")
    state, outside = _state(repo), tree_state(away)
    done = repo.run("promote", "staging", "production", "--key", "db.pool.max")
    stderr = failed_cleanly(done)
    assert ("generated/production: error: is a symlink; magcfg writes only into real "
            "directories inside the repository") in stderr.splitlines(), stderr
    assert _state(repo) == state
    assert tree_state(away) == outside


def test_promote_refuses_a_symlinked_layer_file(repo: Project) -> None:
    target = repo.root / "layers/environments/production/db.yaml"
    shutil.move(target, repo.root / "layers/production-db.yaml")
    os.symlink("../../production-db.yaml", target)
    git(repo.root, "add", "-A")
    git(repo.root, "commit", "-q", "-m", "a layer file behind a symlink")
    state = _state(repo)
    done = repo.run("promote", "staging", "production", "--key", "db.pool.max")
    stderr = failed_cleanly(done)
    assert ("layers/environments/production/db.yaml: error: is a symlink; promote edits "
            "only regular layer files") in stderr.splitlines(), stderr
    assert _state(repo) == state


@pytest.mark.parametrize("dry", [True, False])
def test_promote_refuses_a_directory_where_it_would_create_a_file(repo: Project,
                                                                  dry: bool) -> None:
    # Production has no logging.yaml: promote would create one. An (untracked, empty)
    # directory in its way is refused while planning, and kept: the rollback's git clean
    # used to remove it.
    in_the_way = repo.root / "layers/environments/production/logging.yaml"
    in_the_way.mkdir()
    state = _state(repo)
    done = repo.run("promote", "dev", "production", "--key", "logging.level",
                    *(["--dry-run"] if dry else []))
    assert failed_cleanly(done).splitlines() == [
        "layers/environments/production/logging.yaml: error: is a directory; promote edits "
        "only regular layer files"]
    assert in_the_way.is_dir()
    assert _state(repo) == state


def test_promote_checks_the_pr_body_file_before_it_commits(repo: Project) -> None:
    state = _state(repo)
    done = repo.run("promote", "staging", "production", "--key", "db.pool.max",
                    "--pr-body", "/tmp")
    stderr = failed_cleanly(done, 2)
    assert stderr.splitlines() == ["error: --pr-body /tmp: is a directory; give a file name"]
    assert _state(repo) == state
    done = repo.run("promote", "staging", "production", "--key", "db.pool.max",
                    "--pr-body", "/nowhere/pr.md")
    stderr = failed_cleanly(done, 2)
    assert stderr.splitlines() == ["error: --pr-body /nowhere/pr.md: directory /nowhere does "
                                   "not exist"]
    assert _state(repo) == state


@pytest.mark.parametrize("ref", ["HEAD:../..", "@{-1}", "HEAD:layers", "--output=x"])
@pytest.mark.parametrize("command", ["diff", "build"])
def test_a_ref_that_names_no_commit_is_a_usage_error(repo: Project, ref: str,
                                                     command: str) -> None:
    state = _state(repo)
    args = (("diff", "--env", "production", "--against", ref) if command == "diff"
            else ("build", "--check", "--since", ref))
    stderr = failed_cleanly(repo.run(*args), 2)
    assert stderr.splitlines() == [f"error: unknown git ref {ref!r} (give a commit, branch or "
                                   "tag)"]
    assert _state(repo) == state
    assert not (repo.root / "x").exists()


def test_diff_and_explain_escape_file_names(repo: Project) -> None:
    repo.write("layers/environments/dev/\x1b[31mred.yaml", 'db:\n  replicas: ["r9.dev"]\n')
    done = repo.run("diff", "dev", "production", "--color", "never")
    assert done.returncode == 1, done.stderr
    assert "layers/environments/dev/\\x1b[31mred.yaml:2 (environment)" in done.stdout, done.stdout
    explained = repo.run("explain", "db.replicas", "--env", "dev")
    assert explained.returncode == 0, explained.stderr
    assert "=> layers/environments/dev/\\x1b[31mred.yaml:2  (environment)" in explained.stdout
    assert "\x1b" not in done.stdout + done.stderr + explained.stdout + explained.stderr
