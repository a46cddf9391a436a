"""`magcfg build --check --since REF`: the CI gate against version rollbacks."""

from __future__ import annotations

import json
import re
import shlex
import subprocess

import pytest

from ..conftest import MINI_PROJECT, Project


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


def test_a_version_jump_below_the_top_is_undone_by_the_advice_run_at_the_top(
        mini: Project) -> None:
    """The command the gate gives to restore an environment names its directory from
    the repository's top, where CI and the hook run (it named it from the project's
    directory: at the top of a monorepo, a path git matches to nothing), and the target
    quoted for a shell, as the moved project's `git show` quotes it."""
    top = two_versions_in(mini, "platform/svc")
    project = "platform/svc/magcfg.yaml"
    manifest = mini.root / "platform/svc/generated/dev/manifest.json"
    manifest.write_text(manifest.read_text().replace('"version": 2', '"version": 5000000', 1))
    git(top, "add", "platform/svc/generated/dev/manifest.json")
    assert top.run("build", "--project", project).returncode == 0
    commit_all(top, "jump")
    # A target branch's name may hold what a shell reads: `;` ended the command there.
    git(top, "branch", "base;false", "HEAD~1")
    gate = top.run("build", "--check", "--project", project, "--since", "base;false")
    assert gate.returncode == 1
    advised = re.search(r"\(`(git checkout [^`]*)`\)", gate.stderr)
    assert advised is not None, gate.stderr
    assert advised.group(1) == "git checkout 'base;false' -- platform/svc/generated/dev/"
    subprocess.run(["sh", "-c", advised.group(1)], cwd=top.root, check=True)
    commit_all(top, "restore dev")
    assert top.run("build", "--project", project).returncode == 0
    if git(top, "status", "--porcelain"):
        commit_all(top, "rebuild")
    fixed = top.run("build", "--check", "--project", project, "--since", "HEAD~2")
    assert fixed.returncode == 0, fixed.stderr


def two_versions_in(mini: Project, directory: str) -> Project:
    """``mini``'s project moved into ``directory`` of a new repository at ``mini.root``,
    built and committed twice on ``main`` (dev at version 2); the repository's top as a
    Project to run magcfg in, as CI does."""
    top = Project(mini.root)
    git(top, "init", "-q", "-b", "main")
    git(top, "config", "user.email", "ci@example.com")
    git(top, "config", "user.name", "CI")
    (mini.root / directory).mkdir(parents=True)
    for name in ("magcfg.yaml", "layers", "schemas"):
        (mini.root / name).rename(mini.root / directory / name)
    (mini.root / ".gitignore").write_text(".magcfg-cache/\n")
    project = f"{directory}/magcfg.yaml"
    assert top.run("build", "--project", project).returncode == 0
    commit_all(top, "v1")
    top.write(f"{directory}/layers/environments/dev/magds.yaml", "magds:\n  host: changed\n")
    assert top.run("build", "--project", project).returncode == 0
    commit_all(top, "v2")
    manifest = json.loads((mini.root / directory / "generated/dev/manifest.json").read_text())
    assert manifest["version"] == 2
    return top


def moved(top: Project, old: str, new: str) -> None:
    """``old`` moved to ``new`` with git, parents made as needed."""
    (top.root / new).parent.mkdir(parents=True, exist_ok=True)
    git(top, "mv", old, new)


@pytest.mark.parametrize(("old", "new"), [("svc", "b"), ("platform/svc", "svc"),
                                          ("svc", "platform/svc")])
def test_a_revert_is_caught_where_the_project_moved_up_or_sideways(
        mini: Project, old: str, new: str) -> None:
    """A pull request that reverts a version bump and moves the project up or sideways
    (``svc/`` to ``b/``, ``platform/svc/`` to ``svc/``, ``svc/`` to ``platform/svc/``):
    the ref's project is the one project file the ref holds that the working tree does
    not, and the gate compares its manifests, says which, and the fix it gives passes."""
    top = two_versions_in(mini, old)
    git(top, "switch", "-q", "-c", "pr")
    git(top, "revert", "--no-edit", "HEAD")  # dev's manifest back at version 1
    moved(top, old, new)
    commit_all(top, "move and revert")
    project = f"{new}/magcfg.yaml"
    assert top.run("build", "--check", "--project", project).returncode == 0
    gate = top.run("build", "--check", "--project", project, "--since", "main")
    assert gate.returncode == 1, gate.stderr
    from_new = "../" * new.count("/") + "../" + old
    lines = gate.stderr.splitlines()
    assert lines[0] == (
        f"{project}: warning: the project at main is {from_new}/magcfg.yaml (renamed or "
        "moved since): each environment's manifest is compared with the one it kept, "
        f"{from_new}/generated/ENV/manifest.json")
    assert lines[1].startswith(f"{new}/generated/dev/manifest.json: error: version 1 "
                               "after 2 at main: rollback_refused;"), lines
    assert len(lines) == 2, lines
    # The advice, as given, run at the top.
    fix = lines[1].split("`")[1]
    assert fix == (f"git show main:{old}/generated/dev/manifest.json > "
                   f"{new}/generated/dev/manifest.json && git add "
                   f"{new}/generated/dev/manifest.json")
    subprocess.run(["sh", "-c", fix], cwd=top.root, check=True)
    assert top.run("build", "--project", project).returncode == 0
    commit_all(top, "rebuilt on top of main")
    fixed = top.run("build", "--check", "--project", project, "--since", "main")
    assert fixed.returncode == 0, fixed.stderr
    assert "warning: the project at main is" in fixed.stderr


def test_a_symlink_left_where_the_project_was_does_not_hide_the_move(mini: Project) -> None:
    top = two_versions_in(mini, "svc")
    git(top, "revert", "--no-edit", "HEAD")
    moved(top, "svc", "b")
    (top.root / "svc").symlink_to("b")  # svc/magcfg.yaml is there, through a link
    commit_all(top, "move, link and revert")
    gate = top.run("build", "--check", "--project", "b/magcfg.yaml", "--since", "HEAD~2")
    assert gate.returncode == 1, gate.stderr
    assert ("b/generated/dev/manifest.json: error: version 1 after 2 at HEAD~2: "
            "rollback_refused") in gate.stderr


def test_a_project_that_stayed_is_not_the_one_moved(mini: Project) -> None:
    """The ref held two projects; the pull request moved one: the other, where it was,
    is another project's, and the moved one is compared."""
    top = two_versions_in(mini, "a")
    subprocess.run(["cp", "-r", "a", "c"], cwd=top.root, check=True)
    assert top.run("build", "--project", "c/magcfg.yaml").returncode == 0
    commit_all(top, "c")
    git(top, "revert", "--no-edit", "HEAD~1")
    moved(top, "a", "b")
    commit_all(top, "move a, revert")
    gate = top.run("build", "--check", "--project", "b/magcfg.yaml", "--since", "HEAD~2")
    assert gate.returncode == 1, gate.stderr
    assert "the project at HEAD~2 is ../a/magcfg.yaml" in gate.stderr
    assert "b/generated/dev/manifest.json: error: version 1 after 2" in gate.stderr


def test_several_projects_gone_is_refused_naming_them(mini: Project) -> None:
    """Two projects moved in one pull request: which one the working tree's was cannot
    be told, and the gate refuses, naming both and the way out; nothing is written."""
    top = two_versions_in(mini, "a")
    subprocess.run(["cp", "-r", "a", "c"], cwd=top.root, check=True)
    commit_all(top, "c")
    moved(top, "a", "b")
    moved(top, "c", "d")
    commit_all(top, "move both")
    before = top.snapshot_tree("b/generated")
    for args in (("build", "--check", "--since", "HEAD~1"),
                 ("diff", "--env", "dev", "--against", "HEAD~1")):
        gate = top.run(*args, "--project", "b/magcfg.yaml")
        assert gate.returncode == 1, gate.stderr
        assert gate.stderr.splitlines() == [
            "b/magcfg.yaml: error: HEAD~1 holds no project file here, and 2 that the "
            "working tree no longer holds (../a/magcfg.yaml, ../c/magcfg.yaml): this change "
            "moved or removed them, and which one this project was cannot be told, so no "
            "version can be compared with HEAD~1's; move the project in a change of its "
            "own (every other file as it was), then make the rest in the next"], gate.stderr
    assert top.snapshot_tree("b/generated") == before
    # The way out: one move, then the other.
    git(top, "reset", "-q", "--hard", "HEAD~1")
    git(top, "clean", "-qfdx")
    moved(top, "a", "b")
    commit_all(top, "move a")
    assert top.run("build", "--check", "--project", "b/magcfg.yaml", "--since",
                   "HEAD~1").returncode == 0


def test_a_new_project_is_compared_with_nothing_and_says_so(mini: Project) -> None:
    top = two_versions_in(mini, "svc")
    subprocess.run(["cp", "-r", "svc", "new"], cwd=top.root, check=True)
    commit_all(top, "a second project")
    gate = top.run("build", "--check", "--project", "new/magcfg.yaml", "--since", "HEAD~1")
    assert gate.returncode == 0, gate.stderr
    assert gate.stderr.splitlines() == [
        "new/magcfg.yaml: warning: HEAD~1 holds no project file here, nor one this change "
        "moved or removed: each environment is new to the gate, no version compared with "
        "HEAD~1's",
        "up to date: dev, prod"]
    report = top.run("build", "--check", "--project", "new/magcfg.yaml", "--since", "HEAD~1",
                     "-f", "json")
    assert report.returncode == 0, report.stderr
    doc = json.loads(report.stdout)
    assert doc["ok"] is True
    assert [(d["file"], d["severity"], d["code"]) for d in doc["diagnostics"]] == [
        ("new/magcfg.yaml", "warning", "since_no_project")]
    quiet = top.run("build", "--check", "--quiet", "--project", "new/magcfg.yaml",
                    "--since", "HEAD~1")
    assert (quiet.returncode, quiet.stderr) == (0, "")


def test_manifests_the_ref_holds_without_a_project_file_are_compared(mini: Project) -> None:
    """The ref holds the manifests where the working tree keeps them but no project file:
    they are compared, and no warning says nothing was."""
    first_commit(mini)
    mini.write("layers/environments/dev/magds.yaml", "magds:\n  host: changed\n")
    assert mini.run("build").returncode == 0
    commit_all(mini, "v2")
    git(mini, "rm", "-q", "--cached", "magcfg.yaml")
    git(mini, "commit", "-qm", "no project file")
    git(mini, "checkout", "-q", "HEAD~2", "--", "layers/", "generated/")  # dev at version 1
    commit_all(mini, "the project file back, dev reverted")
    gate = mini.run("build", "--check", "--since", "HEAD~1")
    assert gate.returncode == 1, gate.stderr
    assert gate.stderr.splitlines() == [
        "generated/dev/manifest.json: error: version 1 after 2 at HEAD~1: rollback_refused; "
        "restore the environment from HEAD~1 at the repository's top (`git checkout HEAD~1 "
        "-- generated/dev/`), then rebuild (`magcfg build`) so the version only goes up "
        "[version]"]


@pytest.mark.parametrize("decoy", ["", "# moved to b/\n", "version: 1\n", None,
                                   MINI_PROJECT.replace("[dev, prod]", "[qa]")])
def test_what_is_no_project_left_where_the_project_was_does_not_hide_the_move(
        mini: Project, decoy: str | None) -> None:
    """What is left where the project was under its file's name that loads as no
    project (an empty file, a comment, a project file that does not load, a directory),
    or as a project of other environments than the ref's there, is not the ref's project
    staying: the moved project is still the ref's, and its revert is caught (a project
    of other environments put in its place passed the gate, nothing compared)."""
    top = two_versions_in(mini, "svc")
    git(top, "revert", "--no-edit", "HEAD")
    moved(top, "svc", "b")
    if decoy is None:
        (top.root / "svc" / "magcfg.yaml").mkdir(parents=True)
        (top.root / "svc" / "magcfg.yaml" / "README").write_text("moved to b/\n")
    else:
        top.write("svc/magcfg.yaml", decoy)
    commit_all(top, "move, leave a file and revert")
    gate = top.run("build", "--check", "--project", "b/magcfg.yaml", "--since", "HEAD~2")
    assert gate.returncode == 1, gate.stderr
    assert ("b/generated/dev/manifest.json: error: version 1 after 2 at HEAD~2: "
            "rollback_refused") in gate.stderr


def test_a_project_that_stayed_and_dropped_an_environment_is_no_move(mini: Project) -> None:
    """The ref's project at the top drops an environment the new project below it does
    not build: the top project stayed, as far as the new one can tell, and the new one
    is compared with nothing (it was taken for the top project moved, and its dev at
    version 1 refused after the top's 2)."""
    first_commit(mini)
    mini.write("layers/environments/dev/magds.yaml", "magds:\n  host: changed\n")
    assert mini.run("build").returncode == 0
    commit_all(mini, "v2")
    mini.write("magcfg.yaml", MINI_PROJECT.replace("[dev, prod]", "[dev]"))
    (mini.root / "new").mkdir()
    for name in ("layers", "schemas"):
        subprocess.run(["cp", "-r", name, "new/"], cwd=mini.root, check=True)
    mini.write("new/magcfg.yaml", MINI_PROJECT.replace("[dev, prod]", "[dev]"))
    assert mini.run("build").returncode == 0
    assert mini.run("build", "--project", "new/magcfg.yaml").returncode == 0
    commit_all(mini, "top drops prod, new project below")
    gate = mini.run("build", "--check", "--project", "new/magcfg.yaml", "--since", "HEAD~1")
    assert gate.returncode == 0, gate.stderr
    assert "holds no project file here, nor one this change moved or removed" in gate.stderr


def test_a_name_the_ref_holds_with_a_line_end_or_an_escape_forges_no_line(
        mini: Project) -> None:
    """The project moved from a directory whose name holds a line end and an escape
    sequence: the gate's warning and error name it escaped, each on its own line."""
    old = "a\nsvc/generated/dev/manifest.json: ok\x1b[2K"
    top = two_versions_in(mini, old)
    git(top, "revert", "--no-edit", "HEAD")
    moved(top, old, "svc")
    commit_all(top, "move and revert")
    gate = top.run("build", "--check", "--project", "svc/magcfg.yaml", "--since", "HEAD~2")
    assert gate.returncode == 1, gate.stderr
    lines = gate.stderr.splitlines()
    assert [line.split(": ")[1] for line in lines] == ["warning", "error"], lines
    assert "\x1b" not in gate.stderr
    assert "the project at HEAD~2 is ../a\\x0asvc/generated/dev/manifest.json: " \
        "ok\\x1b[2K/magcfg.yaml (renamed or moved since)" in lines[0]


def test_the_fix_names_a_ref_a_shell_would_run_quoted(mini: Project) -> None:
    """A branch may be named `base;touch${IFS}pwned`: the command the gate gives, pasted
    into a shell at the top, restores the environment from that branch and runs
    nothing else (unquoted, the shell checked out `base` and ran `touch`)."""
    first_commit(mini)
    mini.write("layers/environments/dev/magds.yaml", "magds:\n  host: changed\n")
    assert mini.run("build").returncode == 0
    commit_all(mini, "v2")
    ref = "base;touch${IFS}pwned"
    git(mini, "branch", ref)
    git(mini, "revert", "--no-edit", "HEAD")
    gate = mini.run("build", "--check", "--since", ref)
    assert gate.returncode == 1, gate.stderr
    restore, rebuild = re.findall(r"`([^`]+)`", gate.stderr)
    assert restore == f"git checkout {shlex.quote(ref)} -- generated/dev/"
    subprocess.run(["sh", "-c", restore], cwd=mini.root, check=True, timeout=60)
    assert not (mini.root / "pwned").exists()
    assert git(mini, "branch", "--show-current").strip() == "main"
    assert mini.run(*shlex.split(rebuild)[1:]).returncode == 0
    fixed = mini.run("build", "--check", "--since", ref)
    assert fixed.returncode == 0, fixed.stderr


def test_a_project_named_through_a_directory_the_pull_request_links_is_compared_there(
        mini: Project) -> None:
    """The ref holds ``svc`` (dev at version 2) and ``evil`` (dev at 1); the pull request
    makes ``svc`` a link to ``evil``, so ``svc/generated/dev`` serves version 1. Run on
    ``svc`` (``--project svc/magcfg.yaml``, or ``cd svc``), the gate compares the ref's
    ``svc`` where the operator named it, not the ``evil`` the link leads to."""
    top = two_versions_in(mini, "svc")
    (top.root / "evil").mkdir()
    subprocess.run("git archive HEAD~1 svc | tar -x -C evil --strip-components=1",
                   shell=True, cwd=top.root, check=True)
    commit_all(top, "evil, at svc's first version")
    git(top, "switch", "-q", "-c", "pr")
    git(top, "rm", "-rq", "svc")
    subprocess.run(["rm", "-rf", "svc"], cwd=top.root, check=True)
    (top.root / "svc").symlink_to("evil")
    commit_all(top, "svc is evil")
    svc = Project(top.root / "svc")
    for gate in (top.run("build", "--check", "--project", "svc/magcfg.yaml", "--since", "main"),
                 svc.run("build", "--check", "--since", "main", env={"PWD": str(svc.root)})):
        assert gate.returncode == 1, gate.stderr
        assert "generated/dev/manifest.json: error: version 1 after 2 at main: " \
            "rollback_refused" in gate.stderr
        assert "the project at main is ../svc/magcfg.yaml" in gate.stderr
    # Named where it is, the project is evil's, which the ref holds as it is.
    assert top.run("build", "--check", "--project", "evil/magcfg.yaml", "--since", "main"
                   ).returncode == 0
