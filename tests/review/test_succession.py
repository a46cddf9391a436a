"""`magcfg build --check --since REF`: the CI gate against version rollbacks."""

from __future__ import annotations

import json
import subprocess

from ..conftest import Project


def git(project: Project, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=project.root, check=True, capture_output=True,
                          text=True).stdout


def first_commit(project: Project) -> None:
    """The project built and committed as ``v1`` on ``main`` of a new repository."""
    git(project, "init", "-q", "-b", "main")
    git(project, "config", "user.email", "ci@example.com")
    git(project, "config", "user.name", "CI")
    (project.root / ".gitignore").write_text(".magcfg-cache/\n")
    assert project.run("build").returncode == 0
    commit_all(project, "v1")


def commit_all(project: Project, message: str) -> None:
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", message)


def test_plain_revert_is_caught_and_rebuild_fixes_it(mini: Project) -> None:
    first_commit(mini)
    mini.write("layers/environments/dev/magds.yaml", "magds:\n  host: changed\n")
    assert mini.run("build").returncode == 0
    commit_all(mini, "v2")
    ok = mini.run("build", "--check", "--since", "HEAD~1")
    assert ok.returncode == 0, ok.stderr

    git(mini, "revert", "--no-edit", "HEAD")  # brings back dev's manifest version 1
    assert mini.run("build", "--check").returncode == 0  # consistent tree...
    gate = mini.run("build", "--check", "--since", "HEAD~1")  # ...but a rollback
    assert gate.returncode == 1
    assert "generated/dev/manifest.json: error: version 1 after 2 at HEAD~1: rollback_refused" \
        in gate.stderr
    assert "generated/prod" not in gate.stderr

    # The runbook's fix: keep the reverted layers, rebuild on top of the newer manifest.
    git(mini, "checkout", "HEAD~1", "--", "generated/")
    assert mini.run("build").returncode == 0
    fixed = mini.run("build", "--check", "--since", "HEAD~1")
    assert fixed.returncode == 0, fixed.stderr


def test_a_revert_is_caught_where_the_project_or_its_output_moved(mini: Project) -> None:
    """The manifests the built ones succeed are where the ref's project held them: a pull
    request that reverts a change and moves the project into a directory below, or
    renames its output directory, compared nothing (the ref held no manifest at the new
    path: a new environment to the gate) and passed."""
    first_commit(mini)
    mini.write("layers/environments/dev/magds.yaml", "magds:\n  host: changed\n")
    assert mini.run("build").returncode == 0
    commit_all(mini, "v2")
    git(mini, "revert", "--no-edit", "HEAD")
    git(mini, "switch", "-q", "-c", "renamed")
    project = mini.root / "magcfg.yaml"
    project.write_text(project.read_text().replace("output: generated", "output: out"))
    git(mini, "mv", "generated", "out")
    assert mini.run("build").returncode == 0  # the project file is an input of each
    commit_all(mini, "out")
    gate = mini.run("build", "--check", "--since", "HEAD~2")
    assert gate.returncode == 1, gate.stderr
    assert "out/dev/manifest.json: error: version 1 after 2 at HEAD~2: rollback_refused" \
        in gate.stderr
    git(mini, "switch", "-q", "-")
    git(mini, "switch", "-q", "-c", "moved")
    (mini.root / "svc").mkdir()
    git(mini, "mv", "magcfg.yaml", "layers", "schemas", "generated", "svc/")
    commit_all(mini, "moved")
    top = Project(mini.root)
    assert top.run("build", "--check", "--project", "svc/magcfg.yaml").returncode == 0
    gate = top.run("build", "--check", "--project", "svc/magcfg.yaml", "--since", "HEAD~2")
    assert gate.returncode == 1, gate.stderr
    assert "svc/generated/dev/manifest.json: error: version 1 after 2 at HEAD~2: " \
        "rollback_refused" in gate.stderr


def test_same_version_other_config_is_caught(mini: Project) -> None:
    git(mini, "init", "-q", "-b", "main")
    git(mini, "config", "user.email", "ci@example.com")
    git(mini, "config", "user.name", "CI")
    assert mini.run("build").returncode == 0
    commit_all(mini, "v1")
    git(mini, "checkout", "-q", "-b", "other", "HEAD")
    mini.write("layers/environments/dev/magds.yaml", "magds:\n  host: a\n")
    assert mini.run("build").returncode == 0
    commit_all(mini, "other v2")
    git(mini, "checkout", "-q", "main")
    mini.write("layers/environments/dev/magds.yaml", "magds:\n  host: b\n")
    assert mini.run("build").returncode == 0
    gate = mini.run("build", "--check", "--since", "other")
    assert gate.returncode == 1
    assert "version_conflict" in gate.stderr


def test_unknown_ref_is_a_usage_error(mini: Project) -> None:
    git(mini, "init", "-q", "-b", "main")
    result = mini.run("build", "--check", "--since", "nope")
    assert result.returncode == 2
    assert "unknown git ref 'nope'" in result.stderr


def test_a_manifest_at_the_ref_is_read_as_the_working_tree_reads(mini: Project) -> None:
    """A manifest the ref holds as a symlink out of the repository is refused, named at
    the ref, not taken for a new environment (which would skip the gate)."""
    first_commit(mini)
    git(mini, "checkout", "-q", "-b", "other")
    manifest = mini.root / "generated/dev/manifest.json"
    manifest.unlink()
    manifest.symlink_to("/etc/hostname")
    commit_all(mini, "a manifest from outside")
    git(mini, "checkout", "-q", "main")
    gate = mini.run("build", "--check", "--since", "other")
    assert gate.returncode == 1, gate.stderr
    assert gate.stderr.splitlines() == [
        "generated/dev/manifest.json@other: error: symlink leads outside the repository"]
    # With --format json, the report: the error as a diagnostic, nothing on stderr.
    report = mini.run("build", "--check", "--since", "other", "-f", "json")
    assert (report.returncode, report.stderr) == (1, "")
    doc = json.loads(report.stdout)
    assert (doc["command"], doc["ok"]) == ("build", False)
    assert [(d["file"], d["message"]) for d in doc["diagnostics"]] == [
        ("generated/dev/manifest.json@other", "symlink leads outside the repository")]


def test_a_manifest_nested_past_the_parser_is_not_json(mini: Project) -> None:
    first_commit(mini)
    git(mini, "checkout", "-q", "-b", "deep")
    (mini.root / "generated/dev/manifest.json").write_text("[" * 200_000)
    commit_all(mini, "a manifest nested 200,000 deep")
    git(mini, "checkout", "-q", "main")
    gate = mini.run("build", "--check", "--since", "deep")
    assert gate.returncode == 1 and "Traceback" not in gate.stderr, gate.stderr
    assert gate.stderr.splitlines() == [
        "generated/dev/manifest.json: error: the manifest at deep is not JSON [version]"]


def test_a_version_jumped_far_ahead_is_caught_and_the_advice_fixes_it(mini: Project) -> None:
    """A pull request that hand-edits a manifest's version near the highest a manifest
    may have, stages it and rebuilds leaves a consistent tree (`build --check` passes);
    two changes after it merged, every build would be refused, and every kernel refuses
    any lower version."""
    first_commit(mini)
    manifest = mini.root / "generated/dev/manifest.json"
    text = manifest.read_text()
    assert '"version": 1' in text
    manifest.write_text(text.replace('"version": 1', f'"version": {2**53 - 2}', 1))
    git(mini, "add", "generated/dev/manifest.json")
    assert mini.run("build").returncode == 0
    commit_all(mini, "jump")
    assert json.loads(manifest.read_text())["version"] == 2**53 - 2
    assert mini.run("build", "--check").returncode == 0  # consistent...
    gate = mini.run("build", "--check", "--since", "HEAD~1")  # ...but no build made it
    assert gate.returncode == 1
    assert (f"generated/dev/manifest.json: error: version {2**53 - 2} after 1 at HEAD~1: "
            f"a jump of {2**53 - 3}, more than the 1000000") in gate.stderr
    assert "generated/prod" not in gate.stderr
    # The advice, as given.
    git(mini, "checkout", "HEAD~1", "--", "generated/dev/")
    commit_all(mini, "restore dev")
    assert mini.run("build").returncode == 0
    if git(mini, "status", "--porcelain"):
        commit_all(mini, "rebuild")
    fixed = mini.run("build", "--check", "--since", "HEAD~2")
    assert fixed.returncode == 0, fixed.stderr
    assert json.loads(manifest.read_text())["version"] <= 2
