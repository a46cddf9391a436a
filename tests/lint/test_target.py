"""``magcfg lint --since REF`` honours the exemptions REF holds (lint/target.py): a pull
request's own ``lint.exclude``, ``lint.disable`` and baseline entries apply once it is
merged, in real git repositories of a project ``magcfg init`` started."""

from __future__ import annotations

import json
import re
from pathlib import Path

from .conftest import MakeRepo, git, run_cli
from .test_history import _commit

TOKEN = "AKIA" + "Q7XK3JZP5WRM2NBT"  # an AWS access key id's form: a canary, no key
SECRET = f'aws_key = "{TOKEN}"\n'
BASELINE = ".magcfg-lint-baseline.json"
AFTER_MERGE = "not in base: exemptions apply after merge"


def _project(make_repo: MakeRepo, lint: str = "") -> Path:
    """A repository whose first commit is a project ``magcfg init`` started, with
    ``lint`` (a ``lint:`` section) added to its project file; branch ``base`` there,
    and the pull request's branch checked out."""
    root = make_repo({"README.md": "demo\n"}).root
    done = run_cli(root, "init", ".", "--env", "dev", "--ci", "github")
    assert done.returncode == 0, done.stderr
    if lint:
        with (root / "magcfg.yaml").open("a") as project:
            project.write(lint)
    _commit(root, {}, "start the project")
    git(root, "branch", "base")
    git(root, "checkout", "-q", "-b", "pr")
    return root


def _lint(root: Path, *args: str) -> tuple[int, list[dict[str, str]], str]:
    """``lint --since base ARGS`` as JSON: the exit code, the findings, and all it wrote,
    which never holds the token."""
    proc = run_cli(root, "lint", "--since", "base", "-f", "json", *args)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    assert TOKEN not in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    findings: list[dict[str, str]] = json.loads(proc.stdout)["findings"]
    return proc.returncode, findings, proc.stdout + proc.stderr


def _line(root: Path, name: str, text: str) -> int:
    """The line of ``name`` in the work tree that holds ``text``."""
    lines = (root / name).read_text().splitlines()
    return next(n for n, line in enumerate(lines, 1) if text in line)


def test_a_glob_the_pull_request_adds_to_lint_exclude_passes_none_of_its_files(
        make_repo: MakeRepo) -> None:
    root = _project(make_repo)
    _commit(root, {"app/creds.py": SECRET}, "add the key")
    with (root / "magcfg.yaml").open("a") as project:
        project.write('lint:\n  exclude:\n    - "docs/**"\n    - "**"\n')
    _commit(root, {}, "exempt it")
    code, findings, _ = _lint(root)
    assert code == 1
    where = f"magcfg.yaml:{_line(root, 'magcfg.yaml', '- ' + json.dumps('**'))}"
    assert [(f["file"], f["rule"]) for f in findings] == [("app/creds.py", "MAG002")]
    assert findings[0]["message"].endswith(
        f"(excluded by lint.exclude in the pull request ({where}), {AFTER_MERGE})")
    # SARIF and text say it too.
    sarif = json.loads(run_cli(root, "lint", "--since", "base", "-f", "sarif").stdout)
    message = sarif["runs"][0]["results"][0]["message"]["text"]
    assert f"({where}), {AFTER_MERGE})" in message
    text = run_cli(root, "lint", "--since", "base")
    assert text.returncode == 1 and f"({where}), {AFTER_MERGE})" in text.stdout
    # Merged, the exclusion is the target's: the next pull request's gate honours it.
    git(root, "branch", "-f", "base", "HEAD")
    assert _lint(root)[0] == 0
    # Without --since, the work tree's own settings apply, as they always did.
    assert run_cli(root, "lint").returncode == 0


def test_a_secret_a_pull_request_s_commit_held_is_found_in_a_file_it_excludes(
        make_repo: MakeRepo) -> None:
    """A token added, then removed in the commit that adds the glob: the history's
    files are passed over by the target's globs too."""
    root = _project(make_repo)
    added = _commit(root, {"app/creds.py": SECRET}, "add the key")
    with (root / "magcfg.yaml").open("a") as project:
        project.write('lint:\n  exclude: ["app/**"]\n')
    _commit(root, {"app/creds.py": "aws_key = None\n"}, "exempt it, drop the key")
    code, findings, _ = _lint(root)
    assert code == 1
    assert [(f["file"], f.get("commit", "")[:7]) for f in findings] == [
        ("app/creds.py", added)]
    assert AFTER_MERGE in findings[0]["message"]


def test_a_glob_the_pull_request_narrows_applies_at_once(make_repo: MakeRepo) -> None:
    root = _project(make_repo, 'lint:\n  exclude: ["fixtures/**"]\n')
    _commit(root, {"fixtures/bad/creds.py": SECRET, "fixtures/ok/x.py": SECRET}, "fixtures")
    git(root, "branch", "-f", "base", "HEAD")
    assert _lint(root)[0] == 0
    text = (root / "magcfg.yaml").read_text().replace('"fixtures/**"', '"fixtures/ok/**"')
    _commit(root, {"magcfg.yaml": text}, "narrow")
    code, findings, _ = _lint(root)
    assert code == 1
    assert [f["file"] for f in findings] == ["fixtures/bad/creds.py"]
    assert "apply after merge" not in findings[0]["message"]  # no exemption of its own


def test_a_rule_the_pull_request_disables_still_fails_its_own_secret(
        make_repo: MakeRepo) -> None:
    root = _project(make_repo, 'lint:\n  disable: [MAG004]\n')
    text = (root / "magcfg.yaml").read_text().replace("[MAG004]", "[MAG004, MAG002]")
    _commit(root, {"app/creds.py": SECRET, "magcfg.yaml": text}, "add the key, disable")
    code, findings, _ = _lint(root)
    assert code == 1
    where = f"magcfg.yaml:{_line(root, 'magcfg.yaml', 'disable:')}"
    assert [f["rule"] for f in findings] == ["MAG002"]
    assert findings[0]["message"].endswith(
        f"(MAG002 is disabled by lint.disable in the pull request ({where}), {AFTER_MERGE})")


def test_a_project_file_renamed_keeps_the_target_s_settings(make_repo: MakeRepo) -> None:
    root = _project(make_repo)
    text = (root / "magcfg.yaml").read_text() + 'lint:\n  exclude: ["app/**"]\n'
    (root / "magcfg.yaml").unlink()
    _commit(root, {"magcfg.yml": text, "app/creds.py": SECRET}, "rename, exempt")
    code, findings, _ = _lint(root)
    assert code == 1
    assert "excluded by lint.exclude in the pull request (magcfg.yml:" in findings[0]["message"]


def test_a_baseline_entry_the_pull_request_adds_applies_after_merge(
        make_repo: MakeRepo) -> None:
    root = _project(make_repo)
    _commit(root, {"old/creds.py": SECRET.replace("aws_key", "old_key")}, "an old key")
    assert run_cli(root, "lint", "--write-baseline").returncode == 0
    _commit(root, {}, "accept it")
    git(root, "branch", "-f", "base", "HEAD")
    _commit(root, {"app/creds.py": SECRET}, "add the key")
    assert run_cli(root, "lint", "--write-baseline").returncode == 0
    _commit(root, {}, "accept it too")
    code, findings, out = _lint(root, "-b", BASELINE)
    assert code == 1
    assert [f["file"] for f in findings] == ["app/creds.py"]  # the old key stays accepted
    entry = _line(root, BASELINE, findings[0]["fingerprint"])
    assert findings[0]["message"].endswith(
        f"(accepted by the baseline in the pull request ({BASELINE}:{entry}), {AFTER_MERGE})")
    assert '"baselined": 1' in out
    git(root, "branch", "-f", "base", "HEAD")
    assert _lint(root, "-b", BASELINE)[0] == 0


def test_a_baseline_entry_the_pull_request_removes_applies_at_once(
        make_repo: MakeRepo) -> None:
    root = _project(make_repo)
    _commit(root, {"app/creds.py": SECRET}, "a key")
    assert run_cli(root, "lint", "--write-baseline").returncode == 0
    _commit(root, {}, "accept it")
    git(root, "branch", "-f", "base", "HEAD")
    assert _lint(root, "-b", BASELINE)[0] == 0
    _commit(root, {BASELINE: '{"format": 1, "tool": "magcfg lint", "findings": []}\n'},
            "accept nothing")
    code, findings, _ = _lint(root, "-b", BASELINE)
    assert code == 1
    assert [f["file"] for f in findings] == ["app/creds.py"]
    assert "apply after merge" not in findings[0]["message"]


def _adopting(make_repo: MakeRepo) -> Path:
    """A repository whose branch ``base`` holds no project file, a token in vendored
    code and one in an old file; the pull request's branch checked out."""
    root = make_repo({"README.md": "demo\n", "vendor/creds.py": SECRET,
                      "old.py": SECRET.replace("aws_key", "old_key")}).root
    git(root, "branch", "base")
    git(root, "checkout", "-q", "-b", "pr")
    return root


def test_the_pull_request_that_adopts_the_project_exempts_the_files_the_target_holds(
        make_repo: MakeRepo) -> None:
    """What the project is adopted over (vendored code, an old file): the pull request
    that adds the project file and baseline passes the gate it adds."""
    root = _adopting(make_repo)
    assert run_cli(root, "init", ".", "--env", "dev", "--ci", "github").returncode == 0
    with (root / "magcfg.yaml").open("a") as project:
        project.write('lint:\n  exclude: ["vendor/**"]\n')
    assert run_cli(root, "lint", "--write-baseline").returncode == 0
    _commit(root, {}, "start the project")
    assert _lint(root, "-b", BASELINE)[0] == 0


def test_the_pull_request_that_adopts_the_project_file_exempts_none_of_its_own_files(
        make_repo: MakeRepo) -> None:
    """A glob of a project file REF lacks passed every file, those the pull request adds
    or changes too: ``exclude: ["**"]`` beside a token passed it."""
    root = _adopting(make_repo)
    _commit(root, {"magcfg.yaml": 'lint: {exclude: ["**"]}\n', "app/creds.py": SECRET,
                   "README.md": "demo\n" + SECRET.replace("aws_key", "readme_key")},
            "the gate, a key, a key in the readme")
    code, findings, _ = _lint(root)
    assert code == 1
    # The file it adds and the one it changes; vendored code and the old file are passed.
    assert [f["file"] for f in findings] == ["README.md", "app/creds.py"]
    for f in findings:
        assert f["message"].endswith("(excluded by lint.exclude in the pull request "
                                     f"(magcfg.yaml:1), {AFTER_MERGE})"), f
    # A version a commit since REF holds is the pull request's, whatever the work tree
    # holds: the line REF held is found in it too, a glob telling no line from another.
    git(root, "branch", "-f", "base", "pr~1")
    git(root, "reset", "-q", "--hard", "pr~1")
    added = _commit(root, {"magcfg.yaml": 'lint: {exclude: ["**"]}\n',
                           "vendor/creds.py": SECRET + SECRET.replace("aws_key", "new_key")},
                    "the gate, a key in vendored code")
    _commit(root, {"vendor/creds.py": SECRET}, "the key out again")
    code, findings, _ = _lint(root)
    assert code == 1
    assert [(f["file"], f["line"], f.get("commit", "")[:7]) for f in findings] == [
        ("vendor/creds.py", 1, added), ("vendor/creds.py", 2, added)]
    assert all(AFTER_MERGE in f["message"] for f in findings)


def test_the_pull_request_that_adopts_the_project_file_disables_no_rule_in_its_own_files(
        make_repo: MakeRepo) -> None:
    root = _adopting(make_repo)
    _commit(root, {"magcfg.yaml": "lint:\n  disable: [MAG002]\n", "app/creds.py": SECRET},
            "the gate, a key")
    code, findings, _ = _lint(root)
    assert code == 1
    assert [f["file"] for f in findings] == ["app/creds.py"]
    assert findings[0]["message"].endswith(
        f"(MAG002 is disabled by lint.disable in the pull request (magcfg.yaml:2), "
        f"{AFTER_MERGE})")


def test_the_pull_request_that_adopts_a_baseline_accepts_none_of_its_own_findings(
        make_repo: MakeRepo) -> None:
    """REF holds the project file but no baseline: the pull request's baseline accepts
    what REF holds (the old key), never the key it adds beside it."""
    root = _project(make_repo)
    _commit(root, {"old/creds.py": SECRET.replace("aws_key", "old_key")}, "an old key")
    git(root, "branch", "-f", "base", "HEAD")
    _commit(root, {"app/creds.py": SECRET}, "add the key")
    assert run_cli(root, "lint", "--write-baseline").returncode == 0
    _commit(root, {}, "accept both")
    code, findings, out = _lint(root, "-b", BASELINE)
    assert code == 1
    assert [f["file"] for f in findings] == ["app/creds.py"]
    entry = _line(root, BASELINE, findings[0]["fingerprint"])
    assert findings[0]["message"].endswith(
        f"(accepted by the baseline in the pull request ({BASELINE}:{entry}), {AFTER_MERGE})")
    assert '"baselined": 1' in out
    git(root, "branch", "-f", "base", "HEAD")
    assert _lint(root, "-b", BASELINE)[0] == 0


def test_the_operator_s_exemptions_apply_as_given(make_repo: MakeRepo) -> None:
    """``--exclude``, a baseline and a project file outside the repository are CI's own."""
    root = _project(make_repo)
    _commit(root, {"app/creds.py": SECRET}, "add the key")
    assert _lint(root)[0] == 1
    assert _lint(root, "--exclude", "app/**")[0] == 0
    outside = root.parent / "accepted.json"
    assert run_cli(root, "lint", "--write-baseline", "-b", str(outside)).returncode == 0
    assert _lint(root, "-b", str(outside))[0] == 0
    project = root.parent / "ci" / "magcfg.yaml"
    project.parent.mkdir()
    project.write_text('lint:\n  exclude: ["app/**"]\n')
    assert _lint(root, "--project", str(project))[0] == 0


def test_an_inline_suppression_the_pull_request_adds_applies(make_repo: MakeRepo) -> None:
    """It sits on the line it covers, in the diff a reviewer reads (docs/lint.md)."""
    root = _project(make_repo)
    _commit(root, {"app/creds.py": SECRET.rstrip("\n")
                   + "  # magcfg: ignore[MAG002] reason: the vendor's documented example\n"},
            "add an example key")
    code, findings, out = _lint(root)
    assert (code, findings) == (0, [])
    assert re.search(r'"suppressed": [1-9]', out)


def test_a_target_s_project_file_that_does_not_load_exempts_nothing(
        make_repo: MakeRepo) -> None:
    root = _project(make_repo, 'lint:\n  exclude: ["app/**"]\n  exclud: []\n')
    text = (root / "magcfg.yaml").read_text().replace("  exclud: []\n", "")
    _commit(root, {"magcfg.yaml": text, "app/creds.py": SECRET}, "fix the key, add a key")
    code, findings, _ = _lint(root)
    assert code == 1
    assert AFTER_MERGE in findings[0]["message"]


def test_a_target_s_baseline_that_does_not_load_accepts_nothing(make_repo: MakeRepo) -> None:
    root = _project(make_repo)
    _commit(root, {"app/creds.py": SECRET, BASELINE: "{not json\n"}, "a key, a broken baseline")
    git(root, "branch", "-f", "base", "HEAD")
    assert run_cli(root, "lint", "--write-baseline").returncode == 0
    _commit(root, {}, "accept the key")
    code, findings, _ = _lint(root, "-b", BASELINE)
    assert code == 1
    assert [f["file"] for f in findings] == ["app/creds.py"]
    assert "accepted by the baseline in the pull request" in findings[0]["message"]


def test_a_baseline_reached_through_a_directory_the_pull_request_links_is_read_at_ref(
        make_repo: MakeRepo) -> None:
    """REF's baseline is the one at the path ``--baseline`` names: a pull request that
    makes its directory a link to a directory of its own (``ci`` -> ``evil``) compares
    its baseline with REF's ``ci/baseline.json``, not with an ``evil/baseline.json``
    REF does not hold (which would let its own entries apply)."""
    root = _project(make_repo)
    named = "ci/baseline.json"
    (root / "ci").mkdir()
    assert run_cli(root, "lint", "--write-baseline", "-b", named).returncode == 0
    _commit(root, {}, "adopt a baseline")
    git(root, "branch", "-f", "base", "HEAD")
    git(root, "mv", "ci", "evil")
    (root / "ci").symlink_to("evil")
    _commit(root, {"app/creds.py": SECRET}, "add the key")
    assert run_cli(root, "lint", "--write-baseline", "-b", "evil/baseline.json"
                   ).returncode == 0
    _commit(root, {}, "accept it")
    code, findings, _ = _lint(root, "-b", named)
    assert code == 1
    assert [f["file"] for f in findings] == ["app/creds.py"]
    # named as the file that holds the entry
    assert "accepted by the baseline in the pull request (evil/baseline.json:" \
        in findings[0]["message"]


def test_a_project_file_reached_through_a_directory_the_pull_request_links_is_read_at_ref(
        make_repo: MakeRepo) -> None:
    """``--project ci/magcfg.yaml`` where the pull request makes ``ci`` a link to a
    directory of its own: REF's ``ci/magcfg.yaml`` decides what is excluded."""
    root = make_repo({"README.md": "demo\n", "ci/magcfg.yaml": "lint:\n  exclude: []\n"}).root
    git(root, "branch", "base")
    git(root, "mv", "ci", "evil")
    (root / "ci").symlink_to("evil")
    _commit(root, {"evil/magcfg.yaml": 'lint:\n  exclude: ["app/**"]\n',
                   "app/creds.py": SECRET}, "add the key, exempt it")
    code, findings, _ = _lint(root, "--project", "ci/magcfg.yaml")
    assert code == 1
    # (MAG006 finds the layers of this project of no environment unchecked too)
    creds = [f for f in findings if f["file"] == "app/creds.py"]
    assert [f["rule"] for f in creds] == ["MAG002"]
    assert AFTER_MERGE in creds[0]["message"]


def test_a_project_file_the_pull_request_links_out_of_the_repository_is_not_the_operator_s(
        make_repo: MakeRepo) -> None:
    """``--project ci/magcfg.yaml`` where the pull request makes ``ci`` a link to a
    directory outside the repository: the file is named in it, REF's ``ci/magcfg.yaml``
    decides, not the link's target as an operator's file outside would."""
    root = make_repo({"README.md": "demo\n", "ci/magcfg.yaml": "lint:\n  exclude: []\n"}).root
    git(root, "branch", "base")
    outside = root.parent / "elsewhere"
    outside.mkdir()
    (outside / "magcfg.yaml").write_text('lint:\n  exclude: ["app/**"]\n')
    git(root, "rm", "-q", "ci/magcfg.yaml")
    (root / "ci").symlink_to(outside)
    _commit(root, {"app/creds.py": SECRET}, "add the key, exempt it")
    code, findings, _ = _lint(root, "--project", "ci/magcfg.yaml")
    assert code == 1
    creds = [f for f in findings if f["file"] == "app/creds.py"]
    assert [f["rule"] for f in creds] == ["MAG002"]


def test_a_directory_the_pull_request_links_brings_no_first_pull_request_s_exemptions(
        make_repo: MakeRepo) -> None:
    """REF holds ``ci/magcfg.yaml`` and ``ci/baseline.json``, neither exempting a key REF
    holds (one older than the gate, or of a form a newer magcfg finds): a pull request
    that makes ``ci`` a link to a directory of its own holding no such file at REF is
    compared with REF's, not let in as the one that adopts them, whose exemptions reach
    every file REF holds unchanged."""
    root = make_repo({"README.md": "demo\n", "ci/magcfg.yaml": "lint:\n  exclude: []\n",
                      "ci/baseline.json": "", "old/creds.py": SECRET}).root
    (root / "ci" / "baseline.json").unlink()
    assert run_cli(root, "lint", "--write-baseline", "-b", "ci/baseline.json",
                   "--exclude", "old/**").returncode == 0
    _commit(root, {}, "a baseline accepting nothing")
    git(root, "branch", "base")
    git(root, "mv", "ci", "evil")
    (root / "ci").symlink_to("evil")
    (root / "evil" / "magcfg.yaml").write_text('lint:\n  exclude: ["old/**"]\n')
    _commit(root, {}, "exempt REF's key")
    code, findings, _ = _lint(root, "--project", "ci/magcfg.yaml")
    assert code == 1
    assert [f["file"] for f in findings if f["rule"] == "MAG002"] == ["old/creds.py"]
    (root / "evil" / "magcfg.yaml").write_text("lint:\n  exclude: []\n")
    assert run_cli(root, "lint", "--write-baseline", "-b", "evil/baseline.json"
                   ).returncode == 0
    _commit(root, {}, "accept REF's key")
    code, findings, _ = _lint(root, "--project", "ci/magcfg.yaml", "-b", "ci/baseline.json")
    assert code == 1
    assert [f["file"] for f in findings if f["rule"] == "MAG002"] == ["old/creds.py"]


def test_run_in_a_directory_the_pull_request_links_reads_ref_s_files_there(
        make_repo: MakeRepo) -> None:
    """CI runs the gate in ``svc`` (``cd svc``), whose project file and baseline REF
    holds, exempting nothing; the pull request makes ``svc`` a link to a directory of its
    own whose files exempt a key REF holds: the nearest project file, and ``-b
    baseline.json``, are ``svc``'s as the shell names the directory, REF's decide."""
    root = make_repo({"README.md": "demo\n", "svc/magcfg.yaml": "lint:\n  exclude: []\n",
                      "old/creds.py": SECRET}).root
    assert run_cli(root / "svc", "lint", "--write-baseline", "-b", "baseline.json",
                   "--exclude", "old/**").returncode == 0
    _commit(root, {}, "a baseline accepting nothing")
    git(root, "branch", "base")
    assert _lint(root / "svc", "-b", "baseline.json")[0] == 1
    git(root, "mv", "svc", "evil")
    (root / "svc").symlink_to("evil")
    (root / "evil" / "magcfg.yaml").write_text('lint:\n  exclude: ["old/**"]\n')
    _commit(root, {}, "exempt REF's key")
    code, findings, _ = _lint(root / "svc")
    assert code == 1
    assert [f["file"] for f in findings if f["rule"] == "MAG002"] == ["old/creds.py"]
    (root / "evil" / "magcfg.yaml").write_text("lint:\n  exclude: []\n")
    assert run_cli(root / "svc", "lint", "--write-baseline", "-b", "baseline.json"
                   ).returncode == 0
    _commit(root, {}, "accept REF's key")
    code, findings, _ = _lint(root / "svc", "-b", "baseline.json")
    assert code == 1
    assert [f["file"] for f in findings if f["rule"] == "MAG002"] == ["old/creds.py"]


def test_run_in_a_directory_the_pull_request_links_out_of_the_repository_is_refused(
        make_repo: MakeRepo) -> None:
    """``cd svc`` where the pull request makes ``svc`` a link to another repository's
    directory (a clean one, with a ``base`` of its own): the gate would check that
    repository and pass; it refuses, naming the link, and checks nothing."""
    root = make_repo({"README.md": "demo\n", "svc/magcfg.yaml": "lint:\n  exclude: []\n"}).root
    git(root, "branch", "base")
    other = make_repo({"README.md": "other\n", "svc/magcfg.yaml": "lint: {}\n"}).root
    git(other, "branch", "base")
    git(root, "rm", "-rq", "svc")
    (root / "svc").symlink_to(other / "svc")
    _commit(root, {"app/creds.py": SECRET}, "add the key, leave")
    proc = run_cli(root / "svc", "lint", "--since", "base")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr == "svc: error: symlink leads outside the repository\n"
    assert "Traceback" not in proc.stderr and TOKEN not in proc.stdout + proc.stderr
