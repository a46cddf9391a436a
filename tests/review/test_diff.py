"""``magcfg diff``: two environments, an environment at a git ref, formats, redaction."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from magcfg.errors import printable
from magcfg.review.diff import compare, compare_deepdiff, flatten, show
from magcfg.secrets.redaction import REDACTED

from ..conftest import Project, calls, failed_cleanly
from .promotion_repo import CANARIES, git, make_repo, no_canary, tree


@pytest.fixture
def repo(tmp_path: Path) -> Project:
    return make_repo(tmp_path / "shop")


# ------------------------------------------------------------------ two environments


def test_two_environments_json_shape(repo: Project) -> None:
    result = repo.run("diff", "staging", "production", "--format", "json")
    assert result.returncode == 1, result.stderr
    doc = json.loads(result.stdout)
    assert set(doc) == {"added", "changed", "command", "format", "identical", "new", "ok",
                        "old", "removed", "summary"}
    assert (doc["format"], doc["command"], doc["ok"], doc["identical"]) == (1, "diff", False,
                                                                          False)
    assert doc["old"]["label"] == "staging" and doc["new"]["label"] == "production"
    changed = {c["key"]: c for c in doc["changed"]}
    pool = changed["db.pool.max"]
    assert pool == {
        "key": "db.pool.max", "old": 15, "new": 50, "secret": False, "reload": "hot",
        "old_source": {"file": "layers/environments/staging/db.yaml", "line": 5,
                       "layer": "environment"},
        "new_source": {"file": "layers/environments/production/db.yaml", "line": 6,
                       "layer": "environment"},
    }
    assert changed["db.host"]["reload"] == "restart"
    assert changed["db.replicas"]["old"] == ["r1.internal"]
    assert changed["db.replicas"]["old_source"]["layer"] == "base"
    assert doc["summary"] == {"added": 0, "changed": len(doc["changed"]), "removed": 0,
                              "restart": sum(c["reload"] == "restart" for c in doc["changed"])}


def test_added_and_removed_keys(repo: Project) -> None:
    doc = json.loads(repo.run("diff", "dev", "staging", "-f", "json").stdout)
    removed = {c["key"]: c for c in doc["removed"]}
    assert set(removed) == {"db.tls.ca", "db.tls.ca_check"}
    assert removed["db.tls.ca"]["new"] is None and removed["db.tls.ca"]["new_source"] is None
    assert removed["db.tls.ca"]["old_source"]["file"] == "layers/environments/dev/db.yaml"
    back = json.loads(repo.run("diff", "staging", "dev", "-f", "json").stdout)
    assert {c["key"] for c in back["added"]} == set(removed)


def test_identical_exits_zero(repo: Project) -> None:
    result = repo.run("diff", "staging", "staging")
    assert result.returncode == 0
    assert result.stdout == "staging and staging are identical\n"
    doc = json.loads(repo.run("diff", "dev", "dev", "-f", "json").stdout)
    assert doc["identical"] is True and doc["changed"] == doc["added"] == doc["removed"] == []


@pytest.mark.parametrize("args", [
    ("diff",),
    ("diff", "dev"),
    ("diff", "dev", "staging", "--against", "HEAD"),
    ("diff", "--env", "dev"),
    ("diff", "dev", "staging", "--format", "yaml"),
    ("diff", "dev", "staging", "--color", "sometimes"),
    ("diff", "dev", "prod"),
    ("diff", "--against", "HEAD"),
])
def test_usage_errors_exit_two(repo: Project, args: tuple[str, ...]) -> None:
    result = repo.run(*args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_unknown_environment_lists_known(repo: Project) -> None:
    result = repo.run("diff", "dev", "prod")
    assert ("unknown environment 'prod' (did you mean 'production'?); "
            "known: dev, staging, production") in result.stderr


def test_invalid_layer_is_a_located_error(repo: Project) -> None:
    repo.write("layers/environments/staging/db.yaml", "db:\n  port: \"x\"\n")
    result = repo.run("diff", "dev", "staging")
    assert result.returncode == 1
    assert "layers/environments/staging/db.yaml:2" in result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr


# ------------------------------------------------------------------ against a git ref


def _worktree(root: Path) -> dict[str, bytes]:
    """Every file outside .git and the build cache."""
    return {k: v for k, v in tree(root, ".").items()
            if not k.startswith((".git/", ".magcfg-cache/"))}


def test_against_ref_uses_git_objects_and_leaves_worktree(repo: Project) -> None:
    git(repo.root, "checkout", "-q", "-b", "feature")
    repo.write("layers/environments/dev/db.yaml",
               (repo.root / "layers/environments/dev/db.yaml").read_text()
               .replace("max: 20", "max: 30"))
    git(repo.root, "commit", "-qam", "Dev: pool 30")
    repo.write("layers/environments/dev/logging.yaml", "logging:\n  level: \"warn\"\n")
    (repo.root / "layers/environments/dev/app.yaml").unlink()
    repo.write("layers/environments/dev/app.yaml", "app:\n  environment: \"dev\"\n")
    before_files = _worktree(repo.root)
    before_status = git(repo.root, "status", "--porcelain")
    head = git(repo.root, "rev-parse", "HEAD")

    result = repo.run("diff", "--env", "dev", "--against", "main", "-f", "json")
    assert result.returncode == 1, result.stderr
    doc = json.loads(result.stdout)
    assert doc["old"]["ref"] == "main" and doc["old"]["label"] == "dev@main"
    assert doc["old"]["commit"] == git(repo.root, "rev-parse", "main").strip()
    changed = {c["key"]: c for c in doc["changed"]}
    assert changed["db.pool.max"]["old"] == 20 and changed["db.pool.max"]["new"] == 30
    assert changed["logging.level"]["new"] == "warn"
    assert changed["logging.level"]["reload"] == "hot"
    # app.debug: true at main (dev layer), false now (base).
    assert changed["app.debug"]["old_source"]["file"] == "layers/environments/dev/app.yaml"
    assert changed["app.debug"]["new_source"]["file"] == "layers/base/app.yaml"
    # Against HEAD only the uncommitted edits show.
    doc = json.loads(repo.run("diff", "-e", "dev", "--against", "HEAD", "-f", "json").stdout)
    assert {c["key"] for c in doc["changed"]} == {"app.debug", "logging.level"}
    # Nothing in the working tree, the index or HEAD moved.
    assert _worktree(repo.root) == before_files
    assert git(repo.root, "status", "--porcelain") == before_status
    assert git(repo.root, "rev-parse", "HEAD") == head


def test_against_ref_compiles_only_what_changed_since_the_build(
        repo: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both sides read the build cache (the ref side's files are named by content, as
    the working tree's): only the top-level key edited since the build is merged."""
    from magcfg.compiler import Compiler, build
    from magcfg.pipeline.cache import NO_CACHE_ENV
    from magcfg.project import load_project
    from magcfg.review.diff import diff_against

    repo.write("layers/environments/dev/db.yaml",
               (repo.root / "layers/environments/dev/db.yaml").read_text()
               .replace("max: 20", "max: 30"))
    assert tree(repo.root, ".magcfg-cache")
    merged = calls(monkeypatch, Compiler, "_merge_fragment", arg=1)
    found = diff_against(load_project(repo.root / "magcfg.yaml"), "dev", "HEAD")
    assert merged == ["db"]
    assert [c.key for c in found.changes] == ["db.pool.max"]
    # Of what it merged, nothing was written (only a build writes fragments): the next
    # build merges db again, and only db.
    merged.clear()
    build(load_project(repo.root / "magcfg.yaml"))
    assert merged == ["db"]
    monkeypatch.setenv(NO_CACHE_ENV, "1")
    merged.clear()
    assert diff_against(load_project(repo.root / "magcfg.yaml"), "dev", "HEAD") == found
    assert len(merged) > 2  # without the cache, every key of both sides is merged


def test_against_ref_parses_each_directory_of_the_commit_once(
        repo: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """GitPython parses a tree object again for every lookup by name; the ref side
    reads each directory's entries once, however many layer files sit in it."""
    from git.objects import fun

    from magcfg.project import load_project
    from magcfg.review.diff import diff_against

    trees = int(git(repo.root, "ls-tree", "-r", "-t", "HEAD").count(" tree ")) + 1
    parsed = calls(monkeypatch, fun, "tree_entries_from_data")
    found = diff_against(load_project(repo.root / "magcfg.yaml"), "dev", "HEAD")
    assert found.identical
    assert 0 < len(parsed) <= trees  # at most every tree of the commit, once


def test_against_ref_of_several_environments_reads_shared_files_once(
        repo: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ref side of several environments (``report --against``) is one: a base file
    every environment shares is read from git as often as for one environment, not once
    per environment, and each diff is the one a diff of that environment alone gives."""
    from collections import Counter

    from magcfg.pipeline.gitsource import GitSource
    from magcfg.project import load_project
    from magcfg.review.diff import diff_against, diffs_against

    repo.write("layers/environments/dev/db.yaml",
               (repo.root / "layers/environments/dev/db.yaml").read_text()
               .replace("max: 20", "max: 30"))
    project = load_project(repo.root / "magcfg.yaml")
    read = calls(monkeypatch, GitSource, "read", arg=1)
    alone: dict[str, Any] = {}
    reads_alone: dict[str, Counter[str]] = {}
    for env in ("dev", "staging"):
        read.clear()
        alone[env] = diff_against(project, env, "HEAD")
        reads_alone[env] = Counter(read)
    read.clear()
    both = diffs_against(project, ["dev", "staging"], "HEAD")
    assert both == alone and both["dev"].changes and not both["staging"].changes
    shared = [p for p in reads_alone["dev"] if p.startswith("layers/base/")]
    assert shared
    for path in shared:
        assert Counter(read)[path] == max(reads_alone[env][path] for env in alone), path


def test_against_ref_sees_files_added_since(repo: Project) -> None:
    repo.write("layers/environments/staging/logging.yaml", "logging:\n  level: \"error\"\n")
    doc = json.loads(repo.run("diff", "-e", "staging", "--against", "HEAD", "-f", "json").stdout)
    assert [(c["key"], c["old"], c["new"]) for c in doc["changed"]] == [
        ("logging.level", "info", "error")]
    assert doc["changed"][0]["new_source"]["file"] == "layers/environments/staging/logging.yaml"


def test_against_a_ref_without_the_project_everything_is_added(repo: Project) -> None:
    """A new user's first pull request adds the project: the target branch holds none.
    It is the empty config there, as for a commit of no layers, and the diff lists every
    key as added (the working tree's project file was read at the ref, whose schema the
    ref lacks: `magcfg.yaml@main: error: cannot read schema ...`)."""
    empty = git(repo.root, "hash-object", "-t", "tree", "/dev/null").strip()
    start = git(repo.root, "commit-tree", empty, "-m", "readme").strip()
    git(repo.root, "branch", "start", start)
    result = repo.run("diff", "--env", "dev", "--against", "start", "-f", "json")
    assert result.returncode == 1, result.stderr
    doc = json.loads(result.stdout)
    assert (doc["changed"], doc["removed"]) == ([], [])
    added = {c["key"]: c for c in doc["added"]}
    assert added["db.pool.max"]["new"] == 20 and added["db.pool.max"]["old_source"] is None
    assert added["db.password"]["new"] == "vault://secret/k3s/shop#db_password_dev"
    assert added["db.user"]["new"] == REDACTED
    assert doc["old"]["label"] == "dev@start" and doc["old"]["commit"] == start
    report = repo.run("report", "--html", "report.html", "--against", "start")
    assert report.returncode == 0, report.stderr
    assert "change(s) since start" in report.stderr
    for done in (result, report):
        assert no_canary(done.stdout, done.stderr)


def test_against_a_ref_without_the_environment_everything_is_added(repo: Project) -> None:
    """A pull request that adds an environment: the ref's project has none of its name
    (an unknown environment to it), and the new one is compared with an empty config."""
    repo.write("magcfg.yaml", (repo.root / "magcfg.yaml").read_text().replace(
        "environments: [dev, staging, production]",
        "environments: [dev, staging, production, qa]"))
    repo.write("layers/environments/qa/db.yaml", "db:\n  host: \"db.qa.internal\"\n")
    repo.write("layers/secrets/qa/db.yaml",
               "db:\n  password: \"vault://secret/k3s/shop#db_password_qa\"\n")
    result = repo.run("diff", "--env", "qa", "--against", "HEAD", "-f", "json")
    assert result.returncode == 1, result.stderr
    doc = json.loads(result.stdout)
    assert (doc["changed"], doc["removed"]) == ([], [])
    assert {c["key"]: c["new"] for c in doc["added"]}["db.host"] == "db.qa.internal"
    report = repo.run("report", "--html", "report.html", "--against", "HEAD")
    assert report.returncode == 0, report.stderr
    same = repo.run("diff", "--env", "dev", "--against", "HEAD")
    assert (same.returncode, same.stdout) == (0, "dev@HEAD and dev are identical\n")


def _changed_since(repo: Project, where: Path, *args: str) -> tuple[str, dict[str, Any]]:
    """``diff --env dev --against HEAD`` run in ``where``: its stderr and JSON."""
    done = Project(where).run("diff", "--env", "dev", "--against", "HEAD", "-f", "json", *args)
    assert done.returncode == 1, done.stderr
    assert no_canary(done.stdout, done.stderr)
    return done.stderr, json.loads(done.stdout)


def test_against_a_ref_before_the_project_file_was_renamed(repo: Project) -> None:
    """A pull request that renames magcfg.yaml to magcfg.yml (and changes a value): the
    ref's project is the file of the other name, and the diff is the one change, with a
    warning naming the file it compared with. Every key was added: the ref holds no
    magcfg.yml."""
    git(repo.root, "mv", "magcfg.yaml", "magcfg.yml")
    layer = repo.root / "layers/environments/dev/db.yaml"
    layer.write_text(layer.read_text().replace("max: 20", "max: 21"))
    for staged in (True, False):  # a plain mv, not added: git holds the old name alone
        if not staged:
            git(repo.root, "rm", "-q", "--cached", "magcfg.yml")
        stderr, doc = _changed_since(repo, repo.root)
        assert (doc["added"], doc["removed"]) == ([], [])
        assert [(c["key"], c["old"], c["new"], c["old_source"]["file"])
                for c in doc["changed"]] == [
            ("db.pool.max", 20, 21, "layers/environments/dev/db.yaml")]
        assert stderr == ("magcfg.yml: warning: the project at HEAD is magcfg.yaml (renamed "
                          "or moved since): each environment is compared with its build\n")
    report = repo.run("report", "--html", "report.html", "--against", "HEAD")
    assert report.returncode == 0, report.stderr
    assert "1 change(s) since HEAD" in report.stderr
    assert report.stderr.count("the project at HEAD is magcfg.yaml") == 1, report.stderr


def test_against_a_ref_before_the_project_moved_sideways(repo: Project) -> None:
    """A pull request moves the project from ``shop/`` to ``platform/shop/``: the ref's
    project is the one project file it holds that the working tree does not, read where
    it was, and the diff is the one change, with a warning naming it."""
    names = [n for n in git(repo.root, "ls-files").split() if n != ".gitignore"]
    (repo.root / "shop").mkdir()
    git(repo.root, "mv", *sorted({n.split("/")[0] for n in names}), "shop/")
    git(repo.root, "commit", "-qm", "into shop/")
    (repo.root / "platform").mkdir()
    git(repo.root, "mv", "shop", "platform/")
    layer = repo.root / "platform/shop/layers/environments/dev/db.yaml"
    layer.write_text(layer.read_text().replace("max: 20", "max: 21"))
    stderr, doc = _changed_since(repo, repo.root, "--project", "platform/shop/magcfg.yaml")
    assert (doc["added"], doc["removed"]) == ([], [])
    assert [(c["key"], c["old_source"]["file"], c["new_source"]["file"])
            for c in doc["changed"]] == [
        ("db.pool.max", "shop/layers/environments/dev/db.yaml",
         "platform/shop/layers/environments/dev/db.yaml")]
    assert stderr == ("platform/shop/magcfg.yaml: warning: the project at HEAD is "
                      "../../shop/magcfg.yaml (renamed or moved since): each environment "
                      "is compared with its build\n")


def test_against_a_ref_before_the_project_moved_into_a_directory(repo: Project) -> None:
    """A monorepo's first pull request moves the project from the top into ``shop/``:
    the ref's project is the one at the top, read where it was, and the ref side's files
    are named where the ref holds them (from the top), the working tree's where it does."""
    names = [n for n in git(repo.root, "ls-files").split() if n != ".gitignore"]
    (repo.root / "shop").mkdir()
    git(repo.root, "mv", *sorted({n.split("/")[0] for n in names}), "shop/")
    layer = repo.root / "shop/layers/environments/dev/db.yaml"
    layer.write_text(layer.read_text().replace("max: 20", "max: 21"))
    for where, args in ((repo.root, ("--project", "shop/magcfg.yaml")),
                        (repo.root / "shop", ())):
        stderr, doc = _changed_since(repo, where, *args)
        assert (doc["added"], doc["removed"]) == ([], [])
        assert [(c["key"], c["old_source"]["file"], c["new_source"]["file"])
                for c in doc["changed"]] == [
            ("db.pool.max", "layers/environments/dev/db.yaml",
             "shop/layers/environments/dev/db.yaml")]
        assert stderr == ("shop/magcfg.yaml: warning: the project at HEAD is ../magcfg.yaml "
                          "(renamed or moved since): each environment is compared with its "
                          "build\n")
    # A project file the working tree still holds is another project, never this one's.
    (repo.root / "magcfg.yaml").write_text(git(repo.root, "show", "HEAD:magcfg.yaml"))
    stderr, doc = _changed_since(repo, repo.root / "shop")
    assert doc["changed"] == [] and doc["added"], doc
    assert stderr.startswith("shop/magcfg.yaml: warning: HEAD holds no project file here"), \
        stderr


def test_against_identical_ref_exits_zero(repo: Project) -> None:
    result = repo.run("diff", "--env", "production", "--against", "HEAD")
    assert result.returncode == 0
    assert result.stdout == "production@HEAD and production are identical\n"


def test_against_unknown_ref_is_usage_error(repo: Project) -> None:
    result = repo.run("diff", "--env", "dev", "--against", "no-such-branch")
    assert result.returncode == 2
    assert "unknown git ref 'no-such-branch'" in result.stderr


def test_against_outside_git_is_usage_error(tmp_path: Path, mini: Project) -> None:
    result = mini.run("diff", "--env", "dev", "--against", "HEAD")
    assert result.returncode == 2
    assert "not inside a git repository" in result.stderr


def test_against_invalid_ref_names_ref(repo: Project) -> None:
    repo.write("layers/environments/dev/db.yaml", "db:\n  port: \"x\"\n")
    git(repo.root, "commit", "-qam", "broken")
    git(repo.root, "checkout", "-q", "HEAD~1", "--", "layers")
    result = repo.run("diff", "-e", "dev", "--against", "HEAD")
    assert result.returncode == 1
    assert "layers/environments/dev/db.yaml@HEAD:2: error: " in result.stderr, result.stderr
    assert "(at HEAD)" not in result.stderr


def test_against_errors_name_the_file_at_the_ref(repo: Project) -> None:
    """A file broken at the ref and fixed since: the error names the revision, whose
    line it gives, not the working-tree file (which has no such line)."""
    path = "layers/environments/dev/db.yaml"
    with (repo.root / path).open("a") as fh:
        fh.write("  replicas: [1, 2\n")
    git(repo.root, "commit", "-qam", "broken")
    git(repo.root, "revert", "--no-edit", "HEAD")
    for args in (("diff", "-e", "dev"), ("report", "-e", "dev", "--html", "r.html")):
        result = repo.run(*args, "--against", "HEAD~1")
        assert result.returncode == 1, result.stderr
        assert result.stderr.startswith(f"{path}@HEAD~1:11: error: YAML syntax error"), \
            result.stderr
    (repo.root / "magcfg.yaml").write_text(
        (repo.root / "magcfg.yaml").read_text().replace("version: 1", "version: 7"))
    git(repo.root, "commit", "-qam", "broken project file")
    git(repo.root, "revert", "--no-edit", "HEAD")
    result = repo.run("diff", "-e", "dev", "--against", "HEAD~1")
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("magcfg.yaml@HEAD~1:1: error: this magcfg reads project "
                                    "files of version 1"), result.stderr
    assert not (repo.root / "r.html").exists()


def test_against_a_ref_whose_layer_hides_a_literal_secret(repo: Project) -> None:
    """The change that removes a literal secret a higher layer hides can be diffed
    against the ref that holds it: the ref's layer files are its own build's to judge."""
    canary = "CANARYhidden-5d1e"
    repo.write("layers/base/zz.yaml", f'db:\n  password: "{canary}"\n')
    git(repo.root, "add", "-A")
    git(repo.root, "commit", "-qm", "a literal under the references")
    assert canary not in failed_cleanly(repo.run("build", "--check"), 1)
    (repo.root / "layers/base/zz.yaml").unlink()
    warning = ("layers/base/zz.yaml@HEAD:2: warning: a secret key holds a literal value: "
               "write a reference instead (vault://<mount>/<path>#<key> or env://VAR); the "
               "value is not shown (a higher layer overrides it, but the literal is "
               "committed here) [db.password]")
    for args in (("diff", "-e", "dev"), ("diff", "-e", "dev", "--format", "json"),
                 ("report", "-e", "dev", "-e", "staging", "--html", "r.html")):
        result = repo.run(*args, "--against", "HEAD")
        assert result.returncode == 0, result.stderr
        assert canary not in result.stdout + result.stderr
        # Said once, at the ref's file and line, however many environments read it.
        assert result.stderr.splitlines().count(warning) == 1, result.stderr
        assert warning not in result.stdout
    assert canary not in (repo.root / "r.html").read_text()


def test_against_ref_in_subdirectory_project(tmp_path: Path) -> None:
    outer = tmp_path / "mono"
    project = make_repo(outer / "config")
    # Re-home the repository one level up: the project is now in a sub-directory.
    (project.root / ".git").rename(outer / ".git")
    git(outer, "add", "-A")
    git(outer, "commit", "-qm", "move into config/")
    project.write("layers/environments/dev/logging.yaml", "logging:\n  level: \"error\"\n")
    doc = json.loads(project.run("diff", "-e", "dev", "--against", "HEAD", "-f", "json").stdout)
    assert [(c["key"], c["old"], c["new"]) for c in doc["changed"]] == [
        ("logging.level", "debug", "error")]


# ------------------------------------------------------------------ redaction


def test_changed_secret_reference_is_shown_as_its_reference(repo: Project) -> None:
    outputs = []
    for fmt in ("text", "json", "markdown"):
        result = repo.run("diff", "staging", "production", "-f", fmt, "--color", "always")
        assert result.returncode == 1
        outputs += [result.stdout, result.stderr]
    doc = json.loads(outputs[2])
    password = next(c for c in doc["changed"] if c["key"] == "db.password")
    # Where the value lives is shown (mount, path, key), as config.json holds it.
    assert password["old"] == "vault://secret/k3s/shop#db_password_staging"
    assert password["new"] == "vault://secret/k3s/shop#db_password_production"
    assert password["secret"] is True
    assert password["new_source"]["file"] == "layers/secrets/production/db.yaml"
    assert "~ db.password" in outputs[0] and "secret" in outputs[0]
    assert '"vault://secret/k3s/shop#db_password_production"' in outputs[0]
    assert "`db.password`" in outputs[4]
    assert no_canary(*outputs)


def test_secret_against_ref_redacted(repo: Project) -> None:
    repo.write("layers/secrets/dev/db.yaml",
               "db:\n  password: \"vault://secret/k3s/other#db_password\"\n"
               "  user: \"CANARY_user_7f3a_rotated\"\n")
    result = repo.run("diff", "-e", "dev", "--against", "HEAD", "-f", "json")
    assert no_canary(result.stdout, result.stderr)
    doc = json.loads(result.stdout)
    assert [(c["key"], c["old"], c["new"]) for c in doc["changed"]] == [
        ("db.password", "vault://secret/k3s/shop#db_password_dev", "vault://secret/k3s/other#db_password"),
        ("db.user", "<redacted>", "<redacted>")]


# ------------------------------------------------------------------ text and markdown


def test_text_plain_when_piped_colour_when_asked(repo: Project) -> None:
    piped = repo.run("diff", "staging", "production")
    assert "\x1b[" not in piped.stdout
    coloured = repo.run("diff", "staging", "production", "--color", "always")
    assert "\x1b[33m~ db.host" in coloured.stdout
    assert repo.run("diff", "staging", "production", "--color", "never").stdout == piped.stdout


def test_output_is_deterministic(repo: Project) -> None:
    for fmt in ("text", "json", "markdown"):
        first = repo.run("diff", "dev", "production", "-f", fmt).stdout
        assert repo.run("diff", "dev", "production", "-f", fmt).stdout == first


def test_text_snapshot(repo: Project, snapshot: Any) -> None:
    assert repo.run("diff", "staging", "production").stdout == snapshot


def test_markdown_snapshot(repo: Project, snapshot: Any) -> None:
    assert repo.run("diff", "dev", "staging", "-f", "markdown").stdout == snapshot


def test_the_bundled_project_s_diff_shows_each_change_its_report_holds(
        bundled: Project) -> None:
    """`diff staging production` of the repository's own project, as text and Markdown,
    shows every change the JSON report holds, with its counts, flags and sources. Its
    config is the one operators promote here (docs/ops/Runbook_ConfigPromotion.md), so
    what it holds is not pinned: a snapshot of this output failed every promotion of
    it, and the repository's CI with it (the output's form is pinned by the snapshots
    of the frozen project above)."""
    report = json.loads(bundled.run("diff", "staging", "production", "-f", "json").stdout)
    text = bundled.run("diff", "staging", "production")
    markdown = bundled.run("diff", "staging", "production", "-f", "markdown")
    assert text.returncode == markdown.returncode == 1
    summary = report["summary"]
    counts = (f"{summary['changed']} changed, {summary['added']} added, "
              f"{summary['removed']} removed ({summary['restart']} restart-only)")
    assert text.stdout.splitlines()[2] == counts
    assert f"**{counts}**" in markdown.stdout.splitlines()
    lines, rows = text.stdout.splitlines(), markdown.stdout.splitlines()
    for kind, mark in (("changed", "~"), ("added", "+"), ("removed", "-")):
        for change in report[kind]:
            flags = (["restart"] if change["reload"] == "restart" else []) + (
                ["secret"] if change["secret"] else [])
            shown = f"{mark} {change['key']}" + (f"  [{', '.join(flags)}]" if flags else "")
            assert shown in lines, shown
            (row,) = [r for r in rows if r.startswith(f"| {mark} | `{change['key']}` |")]
            for side in ("old_source", "new_source"):
                if change[side] is not None:
                    where = f"{change[side]['file']}:{change[side]['line']}"
                    assert where in text.stdout and f"`{where}`" in row, (where, row)
    assert summary["changed"] + summary["added"] + summary["removed"] > 20


# ------------------------------------------------------------------ the engines


def test_json_types_are_distinct() -> None:
    changes = compare({"a": 1, "b": True, "c": [1], "d": {}}, {"a": 1.0, "b": 1, "c": [1.0],
                                                             "d": {}})
    assert [(c[0], c[1]) for c in changes] == [("changed", ("a",)), ("changed", ("b",)),
                                               ("changed", ("c",))]


def test_bool_and_int_differ_inside_lists() -> None:
    old, new = {"r": [None, True]}, {"r": [None, 1]}
    assert compare(old, new) == compare_deepdiff(old, new) == [
        ("changed", ("r",), [None, True], [None, 1])]


def test_map_replaced_by_scalar_counts_leaf_by_leaf() -> None:
    changes = compare({"a": {"x": 1, "y": 2}}, {"a": 3})
    assert [(c[0], c[1]) for c in changes] == [("added", ("a",)), ("removed", ("a", "x")),
                                               ("removed", ("a", "y"))]
    assert compare_deepdiff({"a": {"x": 1, "y": 2}}, {"a": 3}) == changes


def test_flatten_keeps_empty_maps_and_lists() -> None:
    assert flatten({"a": {}, "b": [1], "c": {"d": None}}) == {
        ("a",): {}, ("b",): [1], ("c", "d"): None}


_scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from([0.5, 1.0]),
                     st.sampled_from(["x", "y", ""]))
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.sampled_from("abcd"), inner, max_size=4)),
    max_leaves=12)
_docs = st.dictionaries(st.sampled_from("pqrs"), _values, max_size=4)


@settings(max_examples=500, deadline=None)
@given(_docs, _docs)
def test_flat_engine_matches_deepdiff(old: dict[str, Any], new: dict[str, Any]) -> None:
    assert compare(old, new) == compare_deepdiff(old, new)


@settings(max_examples=300, deadline=None)
@given(st.one_of(_values, st.floats(), st.lists(st.one_of(st.integers(), st.text(),
                                                         st.booleans(), st.floats()))))
def test_show_writes_values_as_json_does(value: Any) -> None:
    # Scalars and lists of strings and integers take a path of their own; the format
    # characters JSON leaves raw (a bidi override) are escaped for a terminal.
    assert show(value) == printable(json.dumps(value, ensure_ascii=False, sort_keys=True))


def test_show_escapes_format_characters_as_json_reads_them() -> None:
    assert show("ok \u202etxt.exe") == '"ok \\u202etxt.exe"'
    assert json.loads(show(["\u2066x\u2069", "\u200f"])) == ["\u2066x\u2069", "\u200f"]


def test_show_leaves_the_redaction_marker_bare_only_on_its_own() -> None:
    assert show(REDACTED) == REDACTED
    assert show([REDACTED, 1]) == json.dumps([REDACTED, 1])


def test_canaries_are_really_in_the_layers(repo: Project) -> None:
    # The redaction tests mean something only if the canaries are there to leak.
    text = "".join(b.decode() for b in tree(repo.root).values())
    assert all(c in text for c in CANARIES)


# ------------------------------------------------------------------ key lines


def _keypaths(data: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = [prefix]
    if isinstance(data, dict):
        for k, v in data.items():
            out += _keypaths(v, (*prefix, k))
        out.append((*prefix, "no_such_key"))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += _keypaths(v, (*prefix, str(i)))
    return out


_ODD_YAML = [
    "a:\n  b: [1, {c: 2}]\n  d: {e: {f: 3}}\n",
    "# c\n\n---\na:\n  - x: 1\n    y:\n      - 2\n      - 3\n  - z\n",
    "a: &x\n  b: 1\nc: *x\n",
    "a:\n  ? b\n  : 1\n  'q': |\n    text\n  \"w\": >-\n    t\n",
    "a: 1\n",
]


def test_key_lines_match_locate() -> None:
    from magcfg.pipeline.load import FileSource
    from magcfg.syntax.keylines import KeyLines
    from magcfg.syntax.locate import locate
    from magcfg.syntax.strict_yaml import parse_layer

    root = Path(__file__).resolve().parents[2]
    source = FileSource(root)
    lines = KeyLines(source)
    files = sorted(p.relative_to(root).as_posix() for p in (root / "layers").rglob("*.yaml"))
    assert len(files) > 50
    checked = 0
    for rel in files:
        raw = source.read(rel)
        data, _ = parse_layer(rel, raw)
        for keypath in _keypaths(data):
            assert lines.line(rel, keypath) == locate(rel, raw, keypath), (rel, keypath)
            checked += 1
    assert checked > 500

    class Texts:
        def read(self, path: str) -> bytes:
            return _ODD_YAML[int(path)].encode()

    odd = KeyLines(Texts())
    import yaml

    for i, text in enumerate(_ODD_YAML):
        data = yaml.safe_load(text.split("---")[-1])
        for keypath in _keypaths(data):
            assert odd.line(str(i), keypath) == locate(str(i), text.encode(), keypath), (i, keypath)


def test_colour_on_a_terminal(repo: Project) -> None:
    import os
    import subprocess

    from ..conftest import MAGCFG

    def on_tty(extra: dict[str, str]) -> str:
        leader, follower = os.openpty()
        env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
        proc = subprocess.run([str(MAGCFG), "diff", "staging", "production"], cwd=repo.root,
                              stdout=follower, stderr=subprocess.PIPE, env={**env, **extra},
                              timeout=60)
        os.close(follower)
        chunks = []
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        os.close(leader)
        assert proc.returncode == 1
        return b"".join(chunks).decode()

    assert "\x1b[33m~ db.host" in on_tty({})
    assert "\x1b[" not in on_tty({"NO_COLOR": "1"})


def test_against_ref_follows_symlinks_inside_the_repo(repo: Project) -> None:
    import os

    shared = repo.root / "shared"
    shared.mkdir()
    (shared / "logging.yaml").write_text("logging:\n  level: \"error\"\n")
    (shared / "extra").mkdir()
    (shared / "extra" / "pool.yaml").write_text("db:\n  port: 6000\n")
    staging = repo.root / "layers/environments/staging"
    os.symlink("../../../shared/logging.yaml", staging / "logging.yaml")
    os.symlink("../../../shared/extra", staging / "extra")
    os.symlink("/etc", repo.root / "layers/environments/production/outside")
    git(repo.root, "add", "-A")
    git(repo.root, "commit", "-qm", "symlinked layers")
    # Working tree back to no symlinks: the ref side must read them from git objects.
    git(repo.root, "rm", "-q", "layers/environments/staging/logging.yaml",
        "layers/environments/staging/extra", "layers/environments/production/outside")
    result = repo.run("diff", "-e", "staging", "--against", "HEAD", "-f", "json")
    assert result.returncode == 1, result.stderr
    doc = json.loads(result.stdout)
    assert [(c["key"], c["old"], c["new"]) for c in doc["changed"]] == [
        ("db.port", 6000, 5432), ("logging.level", "error", "info")]
    assert doc["changed"][0]["old_source"]["file"] == "layers/environments/staging/extra/pool.yaml"
    outside = repo.run("diff", "-e", "production", "--against", "HEAD")
    assert outside.returncode == 1
    assert "layers/environments/production/outside@HEAD: error: symlink leads outside the " \
        "repository" in outside.stderr


def test_against_a_ref_whose_project_s_name_holds_a_line_end(mini: Project) -> None:
    """The project moved from a directory whose name holds a line end and an escape
    sequence: diff --against's warning names it escaped, on one line."""
    from .test_succession import commit_all, moved, two_versions_in

    old = "a\nsvc/magcfg.yaml: error: forged\x1b[2K"
    top = two_versions_in(mini, old)
    moved(top, old, "svc")
    commit_all(top, "move")
    done = top.run("diff", "--env", "dev", "--project", "svc/magcfg.yaml", "--against",
                   "HEAD~1")
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        "svc/magcfg.yaml: warning: the project at HEAD~1 is ../a\\x0asvc/magcfg.yaml: "
        "error: forged\\x1b[2K/magcfg.yaml (renamed or moved since): each environment is "
        "compared with its build"]
