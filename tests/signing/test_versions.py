"""The monotonic artifact version (docs/versioning.md), through real builds in real git repos."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from magcfg.signing.signatures import VerificationError
from magcfg.signing.versions import SuccessionError, check_succession
from tests.signing.fixtures import build_in_process, make_project, run_magcfg


def git(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-c", "user.name=Test", "-c", "user.email=test@example.com",
                           "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false",
                           *args], cwd=root, capture_output=True, text=True, check=check)


def build(root: Path) -> None:
    build_in_process(root)


def manifest(root: Path, env: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((root / "generated" / env / "manifest.json").read_bytes())
    return data


def versions(root: Path) -> dict[str, int]:
    return {env: manifest(root, env)["version"] for env in ("dev", "prod")}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = make_project(tmp_path / "repo")
    git(root, "init", "-q")
    build(root)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "first build")
    return root


def test_version_follows_changes_and_never_goes_down(repo: Path) -> None:
    assert versions(repo) == {"dev": 1, "prod": 1}
    first = {env: (repo / "generated" / env / "manifest.json").read_bytes()
             for env in ("dev", "prod")}
    build(repo)
    assert {env: (repo / "generated" / env / "manifest.json").read_bytes()
            for env in ("dev", "prod")} == first

    layer = repo / "layers/environments/prod/logging.yaml"
    original = layer.read_text()
    layer.write_text("logging:\n  level: error\n")
    build(repo)
    assert versions(repo) == {"dev": 1, "prod": 2}
    # Versions count commits, not builds: more edits before the commit stay at 2.
    layer.write_text("logging:\n  level: debug\n")
    build(repo)
    assert versions(repo) == {"dev": 1, "prod": 2}
    layer.write_text("logging:\n  level: error\n")
    build(repo)
    git(repo, "commit", "-qam", "prod: errors only")

    # A comment changes the inputs but not the artifact's files: same version, but a new
    # manifest (inputs digest) that needs signing again.
    base = repo / "layers/base/magds.yaml"
    base.write_text("# the database\n" + base.read_text())
    before = manifest(repo, "dev")
    build(repo)
    after = manifest(repo, "dev")
    assert versions(repo) == {"dev": 1, "prod": 2}
    assert after["inputs"]["digest"] != before["inputs"]["digest"]
    assert after["config_digest"] == before["config_digest"]

    # Going back to the first config is a new version, not the old one.
    layer.write_text(original)
    build(repo)
    assert versions(repo) == {"dev": 1, "prod": 3}
    assert manifest(repo, "prod")["config_digest"] == json.loads(first["prod"])["config_digest"]


def test_same_tree_same_version_anywhere(repo: Path, tmp_path: Path) -> None:
    (repo / "layers/environments/dev/magds.yaml").write_text("magds:\n  host: dev-db\n")
    build(repo)
    git(repo, "commit", "-qam", "dev: own database")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    check = run_magcfg(clone, "build", "--check")
    assert check.returncode == 0, check.stderr
    build(clone)
    assert versions(clone) == versions(repo) == {"dev": 2, "prod": 1}
    assert git(clone, "status", "--porcelain").stdout == ""


def test_merge_of_two_bumps_conflicts_and_is_resolved_by_rebuilding(repo: Path) -> None:
    git(repo, "checkout", "-qb", "a")
    (repo / "layers/environments/dev/magds.yaml").write_text("magds:\n  host: a-db\n")
    build(repo)
    git(repo, "commit", "-qam", "a")
    a_manifest = manifest(repo, "dev")
    git(repo, "checkout", "-q", "main")
    git(repo, "checkout", "-qb", "b")
    (repo / "layers/base/logging.yaml").write_text("logging:\n  level: debug\n")
    build(repo)
    git(repo, "commit", "-qam", "b")
    b_manifest = manifest(repo, "dev")
    assert a_manifest["version"] == b_manifest["version"] == 2

    # Both claim version 2 with different configs: a runtime running one refuses the other.
    with pytest.raises(SuccessionError) as info:
        check_succession(a_manifest, b_manifest)
    assert info.value.reason == "version_conflict"

    git(repo, "checkout", "-q", "a")
    merged = git(repo, "merge", "-q", "b", check=False)
    assert merged.returncode != 0
    conflicted = git(repo, "diff", "--name-only", "--diff-filter=U").stdout.split()
    assert "generated/dev/manifest.json" in conflicted
    assert not any(path.startswith("layers/") for path in conflicted)

    # The build numbers from the newer of HEAD's and MERGE_HEAD's manifests, never from
    # the conflicted file in the working tree: rebuilding resolves generated/.
    build(repo)
    resolved = manifest(repo, "dev")
    assert resolved["version"] == 3
    assert resolved["version"] > max(a_manifest["version"], b_manifest["version"])
    assert check_succession(a_manifest, resolved) == "newer"
    assert check_succession(b_manifest, resolved) == "newer"
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "merge b")
    assert run_magcfg(repo, "build", "--check").returncode == 0


def _m(version: object, digest: str = "sha256:aa", env: str = "prod") -> dict[str, object]:
    return {"environment": env, "version": version, "config_digest": digest}


def test_check_succession() -> None:
    assert check_succession(_m(3), _m(4, "sha256:bb")) == "newer"
    assert check_succession(_m(3), _m(3)) == "same"
    with pytest.raises(SuccessionError, match="older than the running version 3") as info:
        check_succession(_m(3), _m(2, "sha256:bb"))
    assert info.value.reason == "rollback_refused"
    assert check_succession(_m(3), _m(2), allow_rollback=True) == "newer"
    with pytest.raises(SuccessionError) as info:
        check_succession(_m(3), _m(3, "sha256:bb"))
    assert info.value.reason == "version_conflict"
    with pytest.raises(SuccessionError) as info:
        check_succession(_m(3), _m(4, env="dev"))
    assert info.value.reason == "environment_mismatch"
    for bad in (True, 0, "4", None, 2.5):
        with pytest.raises(VerificationError, match="no valid version"):
            check_succession(_m(3), _m(bad))


def test_project_file_edits_that_change_no_output_keep_manifests_and_signatures(
        repo: Path, tmp_path: Path) -> None:
    from magcfg.signing.keys import generate_key_pair

    pair = generate_key_pair(tmp_path / "keys", "ci")
    signed = run_magcfg(repo, "sign", "--key", str(pair.private_key_path))
    assert signed.returncode == 0, signed.stderr
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "signed")
    before = {env: {p.name: p.read_bytes() for p in (repo / "generated" / env).iterdir()}
              for env in ("dev", "prod")}

    project_file = repo / "magcfg.yaml"
    text = project_file.read_text()
    assert "environments: [dev, prod]" in text
    (repo / "keys").mkdir()
    (repo / "keys/ci.pub").write_bytes(pair.public_key_path.read_bytes())
    (repo / "layers/environments/qa").mkdir(parents=True)
    project_file.write_text(
        "# trust CI's key, and a QA environment\n"
        + text.replace("environments: [dev, prod]", "environments: [dev, qa, prod]")
        + "signing:\n  public_keys: [keys/ci.pub]\n")
    done = run_magcfg(repo, "build")
    assert done.returncode == 0, done.stderr
    assert "generated/qa/manifest.json" in done.stderr
    assert "generated/dev" not in done.stderr and "generated/prod" not in done.stderr
    after = {env: {p.name: p.read_bytes() for p in (repo / "generated" / env).iterdir()}
             for env in ("dev", "prod")}
    assert after == before
    verified = run_magcfg(repo, "verify", "--env", "dev", "--env", "prod")
    assert verified.returncode == 0, verified.stderr


def test_unreadable_committed_manifest_is_named(repo: Path) -> None:
    from tests.conftest import failed_cleanly, tree_state

    (repo / "generated/dev/manifest.json").write_text("<<<<<<< HEAD\n")
    git(repo, "commit", "-qam", "a conflict committed by mistake")
    (repo / "layers/environments/dev/magds.yaml").write_text("magds:\n  host: other\n")
    before = tree_state(repo / "generated")
    err = failed_cleanly(run_magcfg(repo, "build"), 1)
    assert "HEAD:generated/dev/manifest.json: error: cannot read the previous version from " \
           "this manifest" in err
    assert "restore it from git" in err
    assert tree_state(repo / "generated") == before


def test_a_committed_manifest_larger_than_any_reader_accepts_is_named_not_read(
        repo: Path) -> None:
    from magcfg.artifact import MAX_MANIFEST_BYTES
    from tests.conftest import failed_cleanly, tree_state

    # Compressed by git to a few kilobytes; handed over whole, it would be read whole.
    size = MAX_MANIFEST_BYTES + 1
    (repo / "generated/prod/manifest.json").write_bytes(b" " * size)
    git(repo, "commit", "-qam", "a planted manifest")
    git(repo, "checkout", "-q", "HEAD~1", "--", "generated/prod/manifest.json")
    git(repo, "reset", "-q")  # the index holds the small one again, HEAD the large one
    before = tree_state(repo / "generated")
    err = failed_cleanly(run_magcfg(repo, "build"), 1)
    assert err == (f"HEAD:generated/prod/manifest.json: error: is {size} bytes, more than "
                   f"the {MAX_MANIFEST_BYTES} a manifest may have; restore it from git\n")
    assert tree_state(repo / "generated") == before


def test_committed_manifests_of_every_environment_are_read_in_one_git_call(
        repo: Path) -> None:
    # dev's HEAD, index and (mid-merge) MERGE_HEAD answers come before prod's: a
    # misread of one answer's length would number prod from dev's manifest.
    (repo / "layers/environments/prod/logging.yaml").write_text("logging:\n  level: error\n")
    build(repo)
    git(repo, "commit", "-qam", "prod 2")
    (repo / "layers/environments/prod/logging.yaml").write_text("logging:\n  level: debug\n")
    build(repo)
    git(repo, "commit", "-qam", "prod 3")
    assert versions(repo) == {"dev": 1, "prod": 3}
    (repo / "layers/environments/dev/magds.yaml").write_text("magds:\n  host: other\n")
    build(repo)
    assert versions(repo) == {"dev": 2, "prod": 3}


def test_an_output_path_with_a_space_and_nothing_committed_there_builds(repo: Path) -> None:
    # git answers "HEAD:./gen out/dev/manifest.json missing": three words, no size.
    text = (repo / "magcfg.yaml").read_text()
    (repo / "magcfg.yaml").write_text(text.replace("output: generated", "output: gen out"))
    assert "output: gen out" in (repo / "magcfg.yaml").read_text()
    build(repo)
    assert json.loads((repo / "gen out/dev/manifest.json").read_bytes())["version"] == 1


def test_many_names_asked_of_git_at_once_do_not_stall_it(repo: Path) -> None:
    """git answers each name as it reads it: thousands of names (~120 KB) outgrow the
    pipe while its answers fill the other one, so the names are written beside the
    reading (written first, both sides waited on each other until the minute's end)."""
    from magcfg.project import committed_blobs

    blob = (repo / "generated/dev/manifest.json").read_bytes()
    names = ["HEAD:./generated/dev/manifest.json"] * 3000
    assert committed_blobs(repo, names, 1 << 20) == [blob] * 3000


def _hooked_monorepo(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A repository whose project is in ``platform/config``, one commit in, with a
    pre-commit hook that runs ``build --check`` from the top, as the hook ``init`` writes
    does; and the environment git runs it with."""
    import os
    import sys

    import magcfg

    top = tmp_path / "mono"
    root = make_project(top / "platform/config")
    git(top, "init", "-q")
    build(root)
    git(top, "add", "-A")
    git(top, "commit", "-qm", "first build")
    hook = top / ".git/hooks/pre-commit"
    hook.write_text(f"#!/bin/sh\nexec {sys.executable} -m magcfg build --check --quiet "
                    "--project platform/config/magcfg.yaml\n")
    hook.chmod(0o755)
    package = str(Path(magcfg.__file__).resolve().parents[1])
    return top, {**os.environ, "PYTHONPATH": package}


def _edit_and_build(root: Path) -> None:
    (root / "layers/environments/prod/logging.yaml").write_text("logging:\n  level: error\n")
    build(root)
    assert versions(root) == {"dev": 1, "prod": 2}


def test_a_hook_in_a_linked_worktree_numbers_a_project_below_the_top_from_the_commits(
        tmp_path: Path) -> None:
    """In a linked worktree git gives a hook ``GIT_DIR`` and no work tree, which makes
    git take its working directory for the top: run in the project's directory, it found
    no manifest committed and numbered version 1, so the check refused every commit."""
    top, env = _hooked_monorepo(tmp_path)
    linked = tmp_path / "linked"
    git(top, "worktree", "add", "-q", str(linked))
    _edit_and_build(linked / "platform/config")
    done = subprocess.run(["git", "-c", "user.name=T", "-c", "user.email=t@e.x", "commit",
                           "-qam", "prod logs errors"], cwd=linked, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("variables", [
    {"GIT_DIR": ".git"},
    {"GIT_DIR": ".git", "GIT_WORK_TREE": "."},  # a hook of `git --git-dir=.git`
    {"GIT_INDEX_FILE": ".git/index", "GIT_WORK_TREE": "."},
], ids=["git-dir", "git-dir-and-work-tree", "work-tree"])
def test_relative_git_variables_are_read_from_where_magcfg_was_started(
        tmp_path: Path, variables: dict[str, str]) -> None:
    """Variables relative to the top, as git gives a hook, with magcfg started there: git
    run in the project's directory found no repository (and the build numbered from the
    working tree, one more per build) or took that directory for the work tree (and
    numbered version 1)."""
    top, _env = _hooked_monorepo(tmp_path)
    root = top / "platform/config"
    _edit_and_build(root)
    for level in ("debug", "info"):
        (root / "layers/environments/prod/logging.yaml").write_text(
            f"logging:\n  level: {level}\n")
        done = run_magcfg(top, "build", "--project", "platform/config/magcfg.yaml",
                          env=variables)
        assert done.returncode == 0, done.stderr
        assert versions(root) == {"dev": 1, "prod": 2}


def test_a_replace_ref_does_not_number_versions(repo: Path, tmp_path: Path) -> None:
    """``git replace`` stands one object for another in this repository alone (replace
    refs are not fetched): a replacement for a committed manifest numbered the build
    from it, and the same commit built other bytes here than in CI."""
    committed = (repo / "generated/dev/manifest.json").read_bytes()
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps({**manifest(repo, "dev"), "version": 99}))
    blob = git(repo, "hash-object", "-w", str(forged)).stdout.strip()
    git(repo, "replace", git(repo, "rev-parse", "HEAD:generated/dev/manifest.json").stdout.strip(),
        blob)
    (repo / "generated/dev/manifest.json").unlink()
    build(repo)
    assert (repo / "generated/dev/manifest.json").read_bytes() == committed


def test_a_reload_policy_change_alone_keeps_the_version_and_says_so(repo: Path) -> None:
    """``x-magcfg-reload`` changed and nothing a service loads: the version stays (a new
    one would reload services for nothing), and the build says why, as a note that
    ``--strict`` does not refuse: nothing is wrong."""
    schema = repo / "schemas/schema.json"
    schema.write_text(schema.read_text().replace('"x-magcfg-reload": "hot"',
                                                 '"x-magcfg-reload": "restart"'))
    before = {env: manifest(repo, env) for env in ("dev", "prod")}
    done = run_magcfg(repo, "build", "--strict")
    assert done.returncode == 0, done.stderr
    assert versions(repo) == {"dev": 1, "prod": 1}
    after = manifest(repo, "prod")
    assert (after["hot_keys"], after["restart_keys"]) != (before["prod"]["hot_keys"],
                                                          before["prod"]["restart_keys"])
    assert after["config_digest"] == before["prod"]["config_digest"]
    note = ("generated/{env}/manifest.json: note: only the reload policy changed (hot_keys, "
            "restart_keys): the version stays, as no file a service loads changed; a running "
            "service has nothing to apply, and judges its next version's changes by that "
            "version's policy (docs/runtime.md)\n")
    assert note.format(env="dev") in done.stderr and note.format(env="prod") in done.stderr
    assert "warning" not in done.stderr
    assert run_magcfg(repo, "build", "--quiet").stderr == ""
    # Committed, the policy is the base's: nothing more to say; a change of config with
    # it is a new version as any.
    git(repo, "commit", "-qam", "logging restarts")
    assert "note:" not in run_magcfg(repo, "build").stderr
    (repo / "layers/environments/prod/logging.yaml").write_text("logging:\n  level: error\n")
    done = run_magcfg(repo, "build")
    assert done.returncode == 0 and "note:" not in done.stderr, done.stderr
    assert versions(repo) == {"dev": 1, "prod": 2}


def test_a_git_that_stops_in_the_middle_of_a_committed_manifest_fails_the_build(
        repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The version is numbered from the manifest HEAD holds: a git that stopped while it
    gave it (killed, out of memory, its minute spent) was taken for no repository, and
    the version numbered from the work tree's manifest, or from 1 where it has none,
    below a version already signed."""
    from magcfg.errors import BuildError
    from tests.test_project import cut_git_on_path

    (repo / "layers/environments/prod/logging.yaml").write_text("logging:\n  level: error\n")
    build(repo)
    git(repo, "commit", "-qam", "prod 2")
    (repo / "generated/prod/manifest.json").unlink()  # the work tree's: none
    cut_git_on_path(tmp_path / "bin", monkeypatch)
    monkeypatch.setenv("GIT_CUT_ONLY", "cat-file")
    monkeypatch.setenv("GIT_CUT_AT", "3")
    with pytest.raises(BuildError) as raised:
        build(repo)
    assert [d.format() for d in raised.value.diagnostics] == [
        "generated/dev/manifest.json: error: git could not give the manifests committed "
        "here, from which versions are numbered (git cat-file stopped answering): fix "
        "what stops git, then build again"]
    assert not (repo / "generated/prod/manifest.json").exists()
    monkeypatch.delenv("GIT_CUT_ONLY")
    monkeypatch.setenv("GIT_CUT_AT", str(1 << 30))
    build(repo)
    assert versions(repo) == {"dev": 1, "prod": 2}


def test_a_manifest_committed_and_staged_alike_is_read_once(
        repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Versions are numbered from the manifests in HEAD and in the index, which hold the
    same bytes until one is staged: each is read once, and the versions are as ever."""
    from magcfg import artifact

    from ..conftest import calls

    read = calls(monkeypatch, artifact, "load_manifest")
    build(repo)
    assert versions(repo) == {"dev": 1, "prod": 1}
    assert len(read) == 2  # dev's and prod's, each in HEAD and in the index
    layer = repo / "layers/environments/prod/logging.yaml"
    layer.write_text("logging:\n  level: error\n")
    build(repo)
    git(repo, "add", "-A")  # the index holds prod's version 2, HEAD its version 1
    read.clear()
    build(repo)
    assert versions(repo) == {"dev": 1, "prod": 2}
    assert sorted(json.loads(m)["version"] for m in read) == [1, 1, 2]
