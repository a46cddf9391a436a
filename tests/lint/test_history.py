"""``magcfg lint --since REF`` (lint/history.py): each file a commit in ``REF..HEAD``
added or changed is checked as that commit holds it, in real git repositories."""


from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from magcfg.lint.walk import display_name

from .conftest import REPO, MakeRepo, git, run_cli
from .test_output import SARIF_MULTITOOL

CANARY = "CANARYhist5151"
SECRET = f'DB_PASSWORD = "{CANARY}"\n'
CLEAN = 'DB_PASSWORD = os.environ["DB_PASSWORD"]\n'


def _commit(root: Path, files: dict[str, str], message: str) -> str:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)
    return git(root, "rev-parse", "--short=7", "HEAD").strip()


def _added_then_removed(make_repo: MakeRepo, name: str = "app/settings.py") -> tuple[Path, str]:
    """A repository whose branch adds a secret in one commit and removes it in the
    next; the short id of the commit that holds it."""
    root = make_repo({"README.md": "demo\n"}).root
    git(root, "branch", "base")
    added = _commit(root, {name: SECRET}, "add settings")
    _commit(root, {name: CLEAN}, "read it from the environment")
    return root, added


def _no_canary(*outputs: str) -> None:
    for out in outputs:
        assert CANARY not in out


def test_a_secret_added_then_removed_is_found_naming_its_commit(make_repo: MakeRepo) -> None:
    root, added = _added_then_removed(make_repo)
    assert run_cli(root, "lint").returncode == 0  # the work tree alone is clean
    proc = run_cli(root, "lint", "--since", "base")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    line = proc.stdout.splitlines()[0]
    assert line.startswith("app/settings.py:1:")
    assert f"(commit {added[:7]}" in line
    assert "MAG002" in line
    assert "2 commits" in proc.stderr
    _no_canary(proc.stdout, proc.stderr)


def test_a_graft_hides_no_commit_since_the_base(make_repo: MakeRepo) -> None:
    """A graft (``.git/info/grafts``) is this repository's alone, never fetched, as a
    replace ref is: one that made the last commit's parent the base hid the commit that
    added the secret from ``--since``."""
    root, added = _added_then_removed(make_repo)
    head, base = (git(root, "rev-parse", rev).strip() for rev in ("HEAD", "base"))
    (root / ".git/info").mkdir(exist_ok=True)
    (root / ".git/info/grafts").write_text(f"{head} {base}\n")
    proc = run_cli(root, "lint", "--since", "base")
    assert proc.returncode == 1, proc.stderr
    assert f"(commit {added[:7]}" in proc.stdout
    assert "2 commits" in proc.stderr and "grafts" not in proc.stderr
    _no_canary(proc.stdout, proc.stderr)


def _merged_into_target(root: Path) -> str:
    """HEAD made the pull request's merge into ``main``, as CI checks it out (GitHub's
    ``refs/pull/N/merge``); the merge's short id."""
    git(root, "checkout", "-q", "--detach", "main")
    git(root, "merge", "-q", "--no-ff", "--no-edit", "pr")
    return git(root, "rev-parse", "--short=7", "HEAD").strip()


def _target_leaks_meanwhile(root: Path) -> None:
    """``main`` commits a secret, the pull request ``pr`` merges ``main``, ``main``
    removes the secret again; then HEAD is the pull request's merge into ``main``."""
    git(root, "checkout", "-q", "main")
    _commit(root, {"app/leak.py": SECRET}, "the target leaks")
    git(root, "checkout", "-q", "pr")
    git(root, "merge", "-q", "--no-edit", "main")
    git(root, "checkout", "-q", "main")
    git(root, "rm", "-q", "app/leak.py")
    git(root, "commit", "-q", "-m", "the target removes it")
    _merged_into_target(root)


def test_a_merge_of_the_target_brings_no_finding_of_the_target_s_history(
        make_repo: MakeRepo) -> None:
    """A pull request that merged its target while the target held a secret (removed
    there since, and rotated) failed the gate, the finding naming the pull request's
    merge, which it cannot mend: a merge was read against its first parent, and the
    target's files were the change. The target's history is the target's to gate."""
    root = make_repo({"README.md": "demo\n"}).root
    git(root, "checkout", "-qb", "pr")
    _commit(root, {"feature.txt": "f\n"}, "feature")
    _target_leaks_meanwhile(root)
    proc = run_cli(root, "lint", "--since", "main")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr.rstrip().endswith("3 commits"), proc.stderr
    _no_canary(proc.stdout, proc.stderr)


def test_what_a_merge_holds_unlike_each_of_its_parents_is_checked(
        make_repo: MakeRepo) -> None:
    """A merge's own change (a conflict's resolution, a file added while merging) is in
    no parent: a secret it adds, removed by a later commit, is found naming the merge;
    what the merge took from a parent is checked where that parent's history is."""
    root = make_repo({"README.md": "demo\n", "app/settings.py": CLEAN}).root
    git(root, "checkout", "-qb", "pr")
    _commit(root, {"feature.txt": "f\n"}, "feature")
    git(root, "checkout", "-q", "main")
    _commit(root, {"other.txt": "o\n"}, "the target moves")
    git(root, "checkout", "-q", "pr")
    git(root, "merge", "-q", "--no-commit", "main")
    _commit(root, {"app/settings.py": SECRET}, "merge the target, and a secret")
    merge = git(root, "rev-parse", "--short=7", "HEAD").strip()
    _commit(root, {"app/settings.py": CLEAN}, "read it from the environment")
    _merged_into_target(root)
    proc = run_cli(root, "lint", "--since", "main", "-f", "json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert [(f["file"], f["line"], f["rule"], f["commit"][:7])
            for f in json.loads(proc.stdout)["findings"]] == [
        ("app/settings.py", 1, "MAG002", merge)]
    _no_canary(proc.stdout, proc.stderr)


def test_the_summary_counts_one_commit_as_one(make_repo: MakeRepo) -> None:
    root, _ = _added_then_removed(make_repo)
    proc = run_cli(root, "lint", "--since", "HEAD~1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.rstrip().endswith(", 1 commit"), proc.stderr


def test_the_commit_is_named_in_json_and_sarif(make_repo: MakeRepo) -> None:
    root, added = _added_then_removed(make_repo)
    proc = run_cli(root, "lint", "--since", "base", "-f", "json")
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    [found] = doc["findings"]
    assert (found["file"], found["line"], found["rule"]) == ("app/settings.py", 1, "MAG002")
    assert found["commit"].startswith(added[:7])
    assert doc["summary"]["commits"] == 2
    sarif = run_cli(root, "lint", "--since", "base", "-f", "sarif")
    assert sarif.returncode == 1, sarif.stderr
    [result] = json.loads(sarif.stdout)["runs"][0]["results"]
    assert result["properties"]["commit"] == found["commit"]
    assert found["commit"] in result["message"]["text"]
    _no_canary(proc.stdout, proc.stderr, sarif.stdout, sarif.stderr)


def test_a_line_several_commits_hold_is_reported_once(make_repo: MakeRepo) -> None:
    root = make_repo({"README.md": "demo\n"}).root
    git(root, "branch", "base")
    first = _commit(root, {"app/settings.py": SECRET}, "add")
    _commit(root, {"app/settings.py": "# settings\n" + SECRET}, "move it down")
    _commit(root, {"app/settings.py": CLEAN}, "remove")
    doc = json.loads(run_cli(root, "lint", "--since", "base", "-f", "json").stdout)
    assert [(f["file"], f["line"], f["commit"][:7]) for f in doc["findings"]] == [
        ("app/settings.py", 1, first)]


def test_a_secret_still_in_the_work_tree_is_reported_there_once(make_repo: MakeRepo) -> None:
    root = make_repo({"README.md": "demo\n"}).root
    git(root, "branch", "base")
    _commit(root, {"app/settings.py": SECRET}, "add")
    doc = json.loads(run_cli(root, "lint", "--since", "base", "-f", "json").stdout)
    assert [(f["file"], "commit" in f) for f in doc["findings"]] == [
        ("app/settings.py", False)]


def test_a_merged_branch_s_own_commits_are_checked(make_repo: MakeRepo) -> None:
    root = make_repo({"README.md": "demo\n"}).root
    git(root, "branch", "base")
    git(root, "checkout", "-q", "-b", "side")
    _commit(root, {"side.py": SECRET}, "side")
    _commit(root, {"side.py": CLEAN}, "side clean")
    git(root, "checkout", "-q", "main")
    _commit(root, {"other.txt": "x\n"}, "main")
    git(root, "merge", "-q", "--no-edit", "side")
    doc = json.loads(run_cli(root, "lint", "--since", "base", "-f", "json").stdout)
    assert [f["file"] for f in doc["findings"]] == ["side.py"]  # from side's own commit


def test_a_file_lint_exclude_names_is_not_checked_in_history(make_repo: MakeRepo) -> None:
    root, _ = _added_then_removed(make_repo, "fixtures/settings.py")
    proc = run_cli(root, "lint", "--since", "base", "-x", "fixtures/")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout == ""
    _no_canary(proc.stdout, proc.stderr)


def test_a_baseline_entry_suppresses_a_finding_in_history(make_repo: MakeRepo) -> None:
    root, _ = _added_then_removed(make_repo)
    accepted = str(root.parent / "accepted.json")
    wrote = run_cli(root, "lint", "--since", "base", "--write-baseline", "-b", accepted)
    assert wrote.returncode == 0, wrote.stderr
    proc = run_cli(root, "lint", "--since", "base", "-b", accepted)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 baselined" in proc.stderr
    _no_canary(proc.stdout, proc.stderr, (root.parent / "accepted.json").read_text())


def test_an_unknown_ref_is_a_usage_error_naming_it(make_repo: MakeRepo) -> None:
    root, _ = _added_then_removed(make_repo)
    for ref in ("no-such-branch", "--output=x"):
        proc = run_cli(root, "lint", f"--since={ref}")
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr
        assert f"--since '{ref}'" in proc.stderr
        assert proc.stdout == ""
    assert not (root / "x").exists()


def _shallow_clone(origin: Path, depth: int) -> Path:
    """A clone of ``origin``'s branch of ``depth`` commits, as CI's checkout makes it,
    with the ``base`` branch fetched at depth 1 as ``origin/base``."""
    clone = origin.parent / f"{origin.name}-depth{depth}"
    git(origin.parent, "clone", "-q", f"--depth={depth}", origin.resolve().as_uri(), str(clone))
    git(clone, "fetch", "-q", "--depth=1", "origin", "base:refs/remotes/origin/base")
    return clone


def test_a_shallow_clone_that_holds_the_range_is_checked(make_repo: MakeRepo) -> None:
    """A clone deep enough to reach the base (its history stops at or below it) holds
    every commit of the range: they are checked, with no error."""
    origin, added = _added_then_removed(make_repo)
    clone = _shallow_clone(origin, 3)
    proc = run_cli(clone, "lint", "--since", "origin/base")
    assert proc.returncode == 1, proc.stderr
    assert f"(commit {added[:7]}" in proc.stdout
    assert "shallow" not in proc.stderr


def test_a_ref_a_shallow_clone_lacks_is_a_usage_error_saying_what_to_fetch(
        make_repo: MakeRepo) -> None:
    origin, _ = _added_then_removed(make_repo)
    proc = run_cli(_shallow_clone(origin, 1), "lint", "--since", "origin/release")
    assert proc.returncode == 2, proc.stderr
    assert "--since 'origin/release': git knows no commit by that name; this clone is " \
        "shallow" in proc.stderr
    assert "git fetch --unshallow" in proc.stderr and "fetch-depth: 0" in proc.stderr


def test_since_head_checks_the_work_tree_alone(make_repo: MakeRepo) -> None:
    root, _ = _added_then_removed(make_repo)
    proc = run_cli(root, "lint", "--since", "HEAD")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_file_too_large_in_a_commit_is_reported_and_the_rest_still_read(
        make_repo: MakeRepo) -> None:
    root = make_repo({"README.md": "demo\n"}).root
    git(root, "branch", "base")
    big = _commit(root, {"a/padding.txt": "x" * (4 * 1024 * 1024 + 1),
                         "b/settings.py": SECRET}, "padding beside a secret")
    _commit(root, {"b/settings.py": CLEAN}, "remove")
    git(root, "rm", "-q", "a/padding.txt")
    git(root, "commit", "-q", "-m", "no padding")
    proc = run_cli(root, "lint", "--since", "base", "-f", "json")
    doc = json.loads(proc.stdout)
    assert [(f["file"], f["rule"], f["commit"][:7]) for f in doc["findings"]] == [
        ("a/padding.txt", "MAG007", big), ("b/settings.py", "MAG002", big)]
    _no_canary(proc.stdout, proc.stderr)


def test_a_secret_a_commit_put_in_the_baseline_in_use_is_found(make_repo: MakeRepo) -> None:
    """A version of the baseline in use that a commit since the base holds, and that
    is no baseline, is checked as any file. A token
    there, gone from the baseline the run reads, stayed in the history merged."""
    token = "ghp_" + "Zq8XwT4vB7nM2kLp9RsD3fGh6JcY1aEoUi5V"
    name = ".magcfg-lint-baseline.json"
    root = make_repo({"README.md": "demo\n", name: '{"format": 1, "findings": []}\n'}).root
    git(root, "branch", "base")
    planted = _commit(root, {name: json.dumps({"format": 1, "findings": [],
                                               "note": token}) + "\n"}, "plant")
    _commit(root, {name: '{"format": 1, "tool": "magcfg lint", "findings": []}\n'},
            "restore")
    proc = run_cli(root, "lint", "--since", "base", "-b", name, "-f", "json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert [(f["file"], f["commit"][:7]) for f in json.loads(proc.stdout)["findings"]] == [
        (name, planted)]
    assert token not in proc.stdout + proc.stderr
    # The versions that are baselines, as --write-baseline writes them, report nothing.
    clean = run_cli(root, "lint", "--since", "HEAD~1", "-b", name)
    assert clean.returncode == 0, clean.stdout + clean.stderr


def test_a_secret_in_a_commit_s_baseline_entry_is_found(make_repo: MakeRepo) -> None:
    """A commit's version of the baseline in use is checked as any file, a baseline as
    --write-baseline writes it too: a token as an entry's ``file``, gone from the
    baseline the run reads, stayed in the history merged."""
    token = "ghp_" + "Zq8XwT4vB7nM2kLp9RsD3fGh6JcY1aEoUi5V"
    name = ".magcfg-lint-baseline.json"
    empty = '{"format": 1, "tool": "magcfg lint", "findings": []}\n'
    root = make_repo({"README.md": "demo\n", name: empty}).root
    git(root, "branch", "base")
    entry = {"file": token, "rule": "MAG002", "fingerprint": "0" * 32, "count": 1}
    planted = _commit(root, {name: json.dumps({"format": 1, "tool": "magcfg lint",
                                               "findings": [entry]}) + "\n"}, "plant")
    _commit(root, {name: empty}, "restore")
    proc = run_cli(root, "lint", "--since", "base", "-b", name, "-f", "json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert [(f["file"], f["commit"][:7]) for f in json.loads(proc.stdout)["findings"]] == [
        (name, planted)]
    assert token not in proc.stdout + proc.stderr


def test_a_shallow_clone_whose_history_stops_since_the_base_fails_the_gate(
        make_repo: MakeRepo, tmp_path: Path) -> None:
    """A clone of depth 2 lacks the commit that added a secret and the one that took it
    out: git lists the oldest commit it has as a first one, and lint passed, having
    checked 2 commits of 4. The gate says which commit the history stops at."""
    root, _ = _added_then_removed(make_repo)
    _commit(root, {"c.txt": "c\n"}, "c")
    _commit(root, {"d.txt": "d\n"}, "d")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--depth", "2", f"file://{root}", str(clone))
    git(clone, "fetch", "-q", "origin", "base:base")
    cut = git(clone, "rev-parse", "--short=7", "HEAD~1").strip()
    proc = run_cli(clone, "lint", "--since", "base")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert (f"the commits since base are not all in this clone: it is shallow, and its "
            f"history stops at commit {cut}") in proc.stderr, proc.stderr
    assert proc.stdout == ""
    _no_canary(proc.stdout, proc.stderr)
    # A shallow clone that holds every commit since the base is read as a whole one.
    assert run_cli(clone, "lint", "--since", "HEAD~1").returncode == 0
    git(clone, "fetch", "-q", "--unshallow", "origin")
    whole = run_cli(clone, "lint", "--since", "base")
    assert whole.returncode == 1 and "MAG002" in whole.stdout, whole.stdout + whole.stderr
    _no_canary(whole.stdout, whole.stderr)


def test_a_commit_s_file_too_large_is_known_to_the_baseline_by_its_content(
        make_repo: MakeRepo, tmp_path: Path) -> None:
    """A commit's file too large to check is MAG007, its fingerprint the digest of its
    content, as the work tree's: by its size alone, a baseline entry that accepted the
    file accepted any content of that size, and a commit swapping in other bytes of the
    size, undone by the next, passed the gate."""
    root = make_repo({"README.md": "demo\n"}).root
    git(root, "branch", "base")
    size = 4 * 1024 * 1024 + 1
    _commit(root, {"vendor/big.js": "x" * size}, "vendor")
    accepted = str(tmp_path / "accepted.json")
    wrote = run_cli(root, "lint", "--since", "base", "--write-baseline", "-b", accepted)
    assert wrote.returncode == 0, wrote.stderr
    assert run_cli(root, "lint", "--since", "base", "-b", accepted).returncode == 0
    swapped = _commit(root, {"vendor/big.js": "y" * size}, "other bytes, one size")
    _commit(root, {"vendor/big.js": "x" * size}, "back")
    proc = run_cli(root, "lint", "--since", "base", "-b", accepted, "-f", "json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert [(f["file"], f["rule"], f["commit"][:7]) for f in json.loads(proc.stdout)[
        "findings"]] == [("vendor/big.js", "MAG007", swapped)]


def test_a_link_out_of_the_repository_is_never_followed(
        make_repo: MakeRepo, tmp_path: Path) -> None:
    """A pull request's link to a file outside the checkout (a runner's secret, a FIFO
    that blocks whoever opens it), in the work tree and in a commit since the base: lint
    reads the target's text, never the file it names."""
    fifo = tmp_path / "blocks"
    os.mkfifo(fifo)
    root = make_repo({"README.md": "demo\n"}).root
    git(root, "branch", "base")
    for name in ("kept.env", "dropped.env"):
        (root / name).symlink_to(fifo)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "links")
    git(root, "rm", "-q", "dropped.env")
    git(root, "commit", "-qm", "one link")
    env = {**os.environ, "PYTHONPATH": str(REPO / "compiler")}
    done = subprocess.run([sys.executable, "-m", "magcfg", "lint", "--since", "base"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=60,
                          check=False)
    assert (done.returncode, done.stdout) == (0, ""), done.stderr
    assert done.stderr == "magcfg lint: 0 finding(s) in 4 file(s), 2 commits\n"


def test_a_secret_committed_as_a_symlink_target_is_found_in_history(
        make_repo: MakeRepo) -> None:
    """A link whose target is a token, added and then removed since the base: its blob
    is the target (``walk.link_source``), passed over as no file's content."""
    from .test_walk import ORDINARY_LINKS, PLANTED_LINKS, _linked

    root = make_repo({"README.md": "demo\n"}).root
    git(root, "branch", "base")
    _linked(root, {**PLANTED_LINKS, **ORDINARY_LINKS})
    git(root, "add", "-A")
    git(root, "commit", "-qm", "links")
    added = git(root, "rev-parse", "--short=7", "HEAD").strip()
    git(root, "rm", "-q", *PLANTED_LINKS)
    git(root, "commit", "-qm", "no links")
    proc = run_cli(root, "lint", "--since", "base")
    assert proc.returncode == 1, proc.stderr
    found = sorted(line.split(":")[0] for line in proc.stdout.splitlines()
                   if f"(commit {added}" in line)
    assert found == sorted(PLANTED_LINKS), proc.stdout
    assert "Zx8qLm2pR7vT4w" not in proc.stdout + proc.stderr
    assert "MAG002" in proc.stdout and "Traceback" not in proc.stderr


def test_a_layer_file_a_commit_added_and_the_next_removed_is_checked_against_the_schema(
        make_repo: MakeRepo) -> None:
    """MAG006 knew a layer file by the work tree's listing alone: one a commit since the
    base added, with a literal under a key the schema marks secret (no secret-like name
    that MAG002 reads), and the next commit removed, was checked as no layer file."""
    from . import fixtures as fx

    root = make_repo({name: fx.LAYER_SECRETS[name] for name in (
        "magcfg.yaml", "schemas/app.schema.json", "layers/base/db.yaml")}).root
    git(root, "branch", "base")
    added = _commit(root, {"layers/env/prod/extra.yaml":
                           f'api_keys:\n  stripe: "{CANARY}"\n'}, "add a key")
    git(root, "rm", "-q", "layers/env/prod/extra.yaml")
    git(root, "commit", "-q", "-m", "take it out")
    proc = run_cli(root, "lint", "--since", "base", "-f", "json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert [(f["file"], f["line"], f["rule"], f["commit"][:7])
            for f in json.loads(proc.stdout)["findings"]] == [
        ("layers/env/prod/extra.yaml", 2, "MAG006", added)]
    _no_canary(proc.stdout, proc.stderr)
    # A file of a layer's name that no layer lists (hidden, or of another suffix) is none.
    _commit(root, {"layers/env/prod/.extra.yaml": f'api_keys:\n  stripe: "{CANARY}"\n',
                   "layers/env/prod/extra.txt": f'api_keys:\n  stripe: "{CANARY}"\n',
                   "layers/env/staging/extra.yaml": f'api_keys:\n  stripe: "{CANARY}"\n'},
            "not layers")
    assert run_cli(root, "lint", "--since", "HEAD~1").returncode == 0


def test_a_commit_s_cue_layer_is_checked_as_that_commit_holds_it(
        make_repo: MakeRepo) -> None:
    """MAG006 exported the work tree's CUE layers: a commit's version of one (a literal
    set in one commit and taken out in the next) was checked as the work tree holds it,
    and a commit's CUE layer file the work tree lacks not at all."""
    from . import fixtures as fx

    clean = 'db: {\n\thost:     "db.internal"\n\tpassword: "vault://secret/app#db"\n}\n'
    files = {name: fx.LAYER_SECRETS[name] for name in ("magcfg.yaml",
                                                        "schemas/app.schema.json")}
    root = make_repo({**files, "layers/base/db.cue": clean}).root
    git(root, "branch", "base")
    literal = _commit(root, {"layers/base/db.cue": clean.replace("vault://secret/app#db",
                                                                 CANARY)}, "literal")
    _commit(root, {"layers/base/db.cue": clean}, "reference")
    added = _commit(root, {"layers/env/prod/extra.cue": f'api_keys: stripe: "{CANARY}"\n'},
                    "add")
    git(root, "rm", "-q", "layers/env/prod/extra.cue")
    git(root, "commit", "-q", "-m", "take it out")
    proc = run_cli(root, "lint", "--since", "base", "-f", "json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert sorted((f["file"], f["line"], f["rule"], f["commit"][:7])
                  for f in json.loads(proc.stdout)["findings"]) == [
        ("layers/base/db.cue", 3, "MAG006", literal),
        ("layers/env/prod/extra.cue", 1, "MAG006", added)]
    _no_canary(proc.stdout, proc.stderr)


def _layer_project(make_repo: MakeRepo) -> Path:
    from . import fixtures as fx

    root = make_repo({name: fx.LAYER_SECRETS[name] for name in (
        "magcfg.yaml", "schemas/app.schema.json", "layers/base/db.yaml")}).root
    git(root, "branch", "base")
    return root


def test_a_commit_s_files_are_judged_by_that_commit_s_project_file(
        make_repo: MakeRepo) -> None:
    """The work tree's project file said which files were layers: a commit that listed
    a layer directory and put a literal under a secret key in it, undone by the next
    commit, was checked as no layer at all."""
    from . import fixtures as fx

    root = _layer_project(make_repo)
    listed = fx.LAYER_SECRETS["magcfg.yaml"].replace(
        "schema:", "  - name: extra\n    path: extra\nschema:")
    added = _commit(root, {"magcfg.yaml": listed,
                           "extra/keys.yaml": f'api_keys:\n  stripe: "{CANARY}"\n'},
                    "an extra layer")
    git(root, "rm", "-q", "extra/keys.yaml")
    _commit(root, {"magcfg.yaml": fx.LAYER_SECRETS["magcfg.yaml"]}, "no extra layer")
    proc = run_cli(root, "lint", "--since", "base", "-f", "json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert [(f["file"], f["line"], f["rule"], f["commit"][:7])
            for f in json.loads(proc.stdout)["findings"]] == [
        ("extra/keys.yaml", 2, "MAG006", added)]
    _no_canary(proc.stdout, proc.stderr)


def test_a_commit_s_files_are_judged_by_that_commit_s_schema(make_repo: MakeRepo) -> None:
    """A key the commit's schema marks secret is one in that commit's layers, whatever
    the work tree's schema says of it."""
    from . import fixtures as fx

    root = _layer_project(make_repo)
    marked = fx.LAYER_SCHEMA.replace('"notes": {"type": "string"}',
                                     '"notes": {"type": "string", "x-magcfg-secret": true}')
    added = _commit(root, {"schemas/app.schema.json": marked,
                           "layers/base/notes.yaml": f'notes: "{CANARY}"\n'}, "a secret note")
    git(root, "rm", "-q", "layers/base/notes.yaml")
    _commit(root, {"schemas/app.schema.json": fx.LAYER_SCHEMA}, "notes are no secret")
    proc = run_cli(root, "lint", "--since", "base", "-f", "json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert [(f["file"], f["line"], f["rule"], f["commit"][:7])
            for f in json.loads(proc.stdout)["findings"]] == [
        ("layers/base/notes.yaml", 1, "MAG006", added)]
    _no_canary(proc.stdout, proc.stderr)


@pytest.mark.parametrize("section", ["environments", "layers"])
def test_a_commit_whose_project_file_does_not_load_fails_the_gate_naming_it(
        make_repo: MakeRepo, section: str) -> None:
    """Its layers cannot be told from other files: the gate says so, at that commit's
    project file, rather than pass what it could not judge; a project file whose
    ``layers`` is misspelt is one, not a file of that name that is no project (a CI
    pipeline: tests/scaffold/test_init.py)."""
    from . import fixtures as fx

    root = _layer_project(make_repo)
    assert f"\n{section}:" in fx.LAYER_SECRETS["magcfg.yaml"]
    broken = fx.LAYER_SECRETS["magcfg.yaml"].replace(f"\n{section}:", f"\n{section[:-1]}z:")
    added = _commit(root, {"magcfg.yaml": broken,
                           "layers/base/more.yaml": f'api_keys:\n  stripe: "{CANARY}"\n'},
                    "broken")
    git(root, "rm", "-q", "layers/base/more.yaml")
    _commit(root, {"magcfg.yaml": fx.LAYER_SECRETS["magcfg.yaml"]}, "mended")
    proc = run_cli(root, "lint", "--since", "base", "-f", "json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    found = json.loads(proc.stdout)["findings"]
    assert ("magcfg.yaml", "MAG006", added) in [
        (f["file"], f["rule"], f["commit"][:7]) for f in found], found
    assert "Traceback" not in proc.stderr
    _no_canary(proc.stdout, proc.stderr)


def test_a_commit_s_file_of_a_project_file_s_name_nested_past_the_parser_fails_closed(
        make_repo: MakeRepo) -> None:
    """Whether a magcfg.yml is a project is asked of its YAML: one nested deeper than
    the parser goes (a pull request's), in the work tree and at a commit, fails the gate
    as a project file that does not load, not the command (lint, --since or not, ended
    in a RecursionError's traceback)."""
    root = _layer_project(make_repo)
    added = _commit(root, {"deep/magcfg.yml": "[" * 100_000, "deep/app.yaml": "a: 1\n"},
                    "deep")
    proc = run_cli(root, "lint", "--since", "base", "-f", "json")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    found = json.loads(proc.stdout)["findings"]
    # The work tree's file, and the commit's.
    assert sorted((f["file"], f["rule"], f.get("commit", "")[:7]) for f in found) == [
        ("deep/magcfg.yml", "MAG006", ""), ("deep/magcfg.yml", "MAG006", added)], found
    assert "layers not checked for literal secrets: deep/magcfg.yml: not valid YAML: " \
           "nested too deeply to read" in [f["message"] for f in found]
    # The command each names, as run where lint runs: the project below is named.
    assert {f["fix"].split("`")[1] for f in found} == {"magcfg build --project deep/magcfg.yml"}


_TOKEN_LINE = "API_TOKEN=ghp_CANARYhist5151Zq7Wx2Lk9Xv4Rb8Tn3Yp6Q\n"


def _tree(root: Path, commit: str) -> dict[bytes, bytes]:
    """Each path of ``commit`` with its mode, type and object."""
    listed = subprocess.run(["git", "ls-tree", "-r", "-z", "--full-tree", commit], cwd=root,
                            check=True, capture_output=True).stdout
    entries = (entry.split(b"\t", 1) for entry in listed.split(b"\0") if entry)
    return {path: meta for meta, path in entries}


def _changed(root: Path, commit: str) -> set[str]:
    """The names ``commit`` holds unlike each of its parents, as lint shows them."""
    parents = git(root, "rev-list", "--parents", "-n", "1", commit).split()[1:]
    mine = _tree(root, commit)
    theirs = [_tree(root, parent) for parent in parents]
    return {display_name(path.decode("utf-8", "surrogateescape")) for path, entry in mine.items()
            if all(tree.get(path) != entry for tree in theirs)}


def _findings(proc: subprocess.CompletedProcess[str]) -> set[tuple[str, int, int, str, str]]:
    return {(f["file"], f["line"], f["column"], f["rule"], f["message"])
            for f in json.loads(proc.stdout)["findings"]}


def test_a_pull_request_s_commits_give_what_linting_each_of_them_gives_on_its_changes(
        make_repo: MakeRepo, tmp_path: Path) -> None:
    """The gate on a pull request, as CI checks it out (its merge into the target): a
    file renamed, deleted, changed in mode alone, a binary, a link to a file outside the
    repository (never read), CRLF, byte order marks, a name that is not UTF-8, and a
    merge of the target. What ``lint --since`` finds is what ``lint`` finds in the work
    tree and, at each commit since the base, in the files it changed; exit 1, the SARIF
    report valid."""
    assert SARIF_MULTITOOL is not None, "sarif-multitool not found: run ./scripts/dev tools"
    outside = tmp_path / "outside.env"
    outside.write_text("PASSWORD=CANARYoutside5151\n", encoding="utf-8")
    root = make_repo({"README.md": "demo\n", "config/old.env": _TOKEN_LINE,
                      "config/gone.env": _TOKEN_LINE, "app/settings.py": CLEAN}).root
    bad_name = b"bad\xff\x1b.env".decode("utf-8", "surrogateescape")
    git(root, "checkout", "-qb", "pr")
    git(root, "mv", "config/old.env", "config/new.env")
    git(root, "commit", "-qm", "rename")
    git(root, "rm", "-q", "config/gone.env")
    git(root, "commit", "-qm", "delete")
    (root / "config/new.env").chmod(0o755)
    git(root, "commit", "-qam", "mode")
    (root / "bin").mkdir()
    (root / "bin/blob.bin").write_bytes(b"\0\1\2PK\3\4\n" + _TOKEN_LINE.encode() + bytes(256))
    (root / "link.env").symlink_to(outside)
    (root / "win.py").write_bytes(b"x = 1\r\n" + SECRET.replace("\n", "\r\n").encode())
    (root / "bom.py").write_bytes(b"\xef\xbb\xbf" + SECRET.encode())
    (root / "bom16.py").write_bytes(("\ufeffx = 1\n" + SECRET).encode("utf-16-le"))
    (root / os.fsencode(bad_name).decode("utf-8", "surrogateescape")).write_text(_TOKEN_LINE)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "shapes")
    git(root, "rm", "-q", "bin/blob.bin", "win.py", "bom.py", "bom16.py", bad_name)
    git(root, "commit", "-qm", "take the secrets out")
    _target_leaks_meanwhile(root)
    head = git(root, "rev-parse", "HEAD").strip()

    expected = _findings(run_cli(root, "lint", "-f", "json"))
    for commit in git(root, "rev-list", "--reverse", f"main..{head}").split():
        git(root, "checkout", "-q", "--detach", commit)
        changed = _changed(root, commit)
        expected |= {f for f in _findings(run_cli(root, "lint", "-f", "json")) if f[0] in changed}
    git(root, "checkout", "-q", "--detach", head)
    proc = run_cli(root, "lint", "--since", "main", "-f", "json")
    assert proc.returncode == 1, proc.stderr
    assert _findings(proc) == expected
    assert {f[0] for f in expected} == {
        "config/new.env", "bin/blob.bin", "win.py", "bom.py", "bom16.py", r"bad\xff\x1b.env"}
    sarif = run_cli(root, "lint", "--since", "main", "-f", "sarif")
    assert sarif.returncode == 1, sarif.stderr
    report, log = tmp_path / "lint.sarif", tmp_path / "validation.sarif"
    report.write_text(sarif.stdout, encoding="utf-8")
    subprocess.run([SARIF_MULTITOOL, "validate", "--rule-kind", "Gh;Sarif", "-o", str(log),
                    str(report)], check=True, capture_output=True, timeout=300)
    assert [r["ruleId"] for run in json.loads(log.read_text())["runs"]
            for r in run.get("results", [])] == []
    assert len(json.loads(sarif.stdout)["runs"][0]["results"]) == len(expected)
    _no_canary(proc.stdout, proc.stderr, sarif.stdout, sarif.stderr)
    assert "CANARYoutside" not in proc.stdout + sarif.stdout
