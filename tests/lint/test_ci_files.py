"""The repository's own CI pipeline and the pre-commit hook it publishes."""

from __future__ import annotations

import copy
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import check_jsonschema
import jsonschema
import yaml

from ..conftest import LONGEST_FILES
from . import fixtures as fx
from .conftest import REPO, MakeRepo, git, run_cli


def woodpecker_schema() -> dict[str, Any]:
    # check-jsonschema's vendored copy of the published Woodpecker schema
    # (`check-jsonschema --builtin-schema vendor.woodpecker-ci`).
    path = (Path(check_jsonschema.__file__).parent / "builtin_schemas" / "vendor"
            / "woodpecker-ci.json")
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


def pipeline() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((REPO / ".woodpecker.yml").read_text())
    return doc


def errors(doc: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(woodpecker_schema())
    return sorted(f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc))


def test_woodpecker_pipeline_is_valid_against_the_published_schema() -> None:
    assert errors(pipeline()) == []


def test_the_schema_check_can_fail() -> None:
    doc = pipeline()
    for mutate in (lambda d: d["steps"][0].update(comands=["x"]),
                   lambda d: d["steps"][0].update(when={"event": "pull-request"}),
                   lambda d: d.update(pipeline=d.pop("steps"))):
        bad = copy.deepcopy(doc)
        mutate(bad)
        assert errors(bad) != []


def step(name: str) -> dict[str, Any]:
    (found,) = [s for s in pipeline()["steps"] if s["name"] == name]
    return found


def events(s: dict[str, Any]) -> set[str]:
    out: set[str] = set()
    for cond in s.get("when", [{"event": ["pull_request", "push"]}]):
        ev = cond["event"]
        out |= {ev} if isinstance(ev, str) else set(ev)
    return out


def test_pull_requests_run_lint_build_check_tests_and_the_diff_artifact() -> None:
    doc = pipeline()
    assert {"event": "pull_request"} in doc["when"]
    assert {"event": "push", "branch": "main"} in doc["when"]
    assert any("magcfg lint" in c for c in step("lint")["commands"])
    assert "./scripts/dev build --check" in step("build-check")["commands"]
    assert any(c.startswith("./scripts/dev test") for c in step("test")["commands"])
    diff = step("diff")
    assert events(diff) == {"pull_request"}
    assert any("magcfg diff --env production --against origin/main --format markdown >"
               in c and "diff.md" in c for c in diff["commands"])
    assert all("path" in cond for cond in diff["when"])
    for name in ("lint", "build-check", "test"):
        assert "pull_request" in events(step(name))


def test_every_pull_request_publishes_the_report_next_to_the_diff(tmp_path: Path) -> None:
    report = step("report")
    assert events(report) == {"pull_request"}
    assert all("path" not in cond for cond in report["when"])
    (command,) = [c for c in report["commands"] if "magcfg report" in c]
    args = shlex.split(command)[1:]
    assert args[args.index("--html") + 1] == "ci-artifacts/report.html"
    assert args[args.index("--against") + 1] == "origin/main"
    diff_out = next(c for c in step("diff")["commands"] if "diff.md" in c)
    assert "ci-artifacts/diff.md" in diff_out
    # The step's command, run on this repository (the checkout's HEAD standing in for
    # origin/main), writes the page.
    args[args.index("--html") + 1] = str(tmp_path / "report.html")
    args[args.index("--against") + 1] = "HEAD"
    proc = run_cli(REPO, *args)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "report.html").read_bytes().startswith(b"<!DOCTYPE html>")


def test_push_to_main_signs_with_the_key_from_a_ci_secret() -> None:
    sign = step("sign")
    (cond,) = sign["when"]
    assert (cond["event"], cond["branch"]) == ("push", "main")
    assert "generated/**" in cond["path"]["include"]
    assert sign["environment"]["MAGCFG_SIGNING_KEY"] == {"from_secret": "MAGCFG_SIGNING_KEY"}
    script = "\n".join(sign["commands"])
    assert "magcfg sign --env" in script
    # The key stays in the environment: never echoed, written out or traced.
    assert "MAGCFG_SIGNING_KEY" not in script and "set -x" not in script
    assert set(sign["depends_on"]) == {"lint", "build-check", "test"}


def test_the_repository_passes_its_own_lint_gate() -> None:
    lint_cmd = [c for c in step("lint")["commands"] if "magcfg lint" in c][-1]
    args = shlex.split(lint_cmd)[1:]
    proc = run_cli(REPO, *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_files_the_suite_runs_first_are_test_files() -> None:
    # A file renamed or removed would drop out of the order silently.
    assert [p for p in LONGEST_FILES if not (REPO / p).is_file()] == []
    assert len(set(LONGEST_FILES)) == len(LONGEST_FILES)


def hook() -> dict[str, Any]:
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    (only,) = hooks
    assert isinstance(only, dict)
    return only


def test_pre_commit_hook_definition() -> None:
    h = hook()
    assert h["id"] == "magcfg-lint" and h["language"] == "python"
    assert h["entry"] == "magcfg lint" and h["pass_filenames"] is True
    assert set(h) <= {"id", "name", "entry", "language", "files", "exclude", "types",
                      "types_or", "exclude_types", "always_run", "fail_fast", "verbose",
                      "pass_filenames", "require_serial", "description",
                      "language_version", "minimum_pre_commit_version", "args", "stages",
                      "additional_dependencies"}


def test_pre_commit_hook_runs_on_the_staged_files(make_repo: MakeRepo) -> None:
    # What pre-commit does: run the entry with the changed files as arguments.
    repo = make_repo(fx.VAULT_POLICY)
    (repo.root / "ok.yaml").write_text("a: 1\n")
    git(repo.root, "add", "ok.yaml")
    entry = shlex.split(hook()["entry"])[1:]
    assert run_cli(repo.root, *entry, "ok.yaml").returncode == 0
    proc = run_cli(repo.root, *entry, "ok.yaml", "policies/magds.hcl")
    assert proc.returncode == 1 and "MAG005" in proc.stdout


def _this_checkout_committed(dest: Path) -> str:
    """A clone of this repository at ``dest`` with its tracked files as the work tree
    holds them, committed on top of HEAD (what ``pre-commit try-repo`` hands pre-commit),
    and that commit's name."""
    git(dest.parent, "clone", "-q", str(REPO), str(dest))
    changes = subprocess.run(["git", "diff", "--binary", "HEAD"], cwd=REPO, check=True,
                             capture_output=True).stdout
    if changes:
        subprocess.run(["git", "apply", "--index"], cwd=dest, input=changes, check=True,
                       capture_output=True)
        git(dest, "commit", "-qm", "the work tree's changes")
    return git(dest, "rev-parse", "HEAD").strip()


def test_the_published_hook_runs_under_pre_commit(tmp_path: Path) -> None:
    # The real pre-commit, as another repository uses the hook: its config names this
    # repository at a commit, and pre-commit installs that into a virtualenv of its own
    # (from PyPI's packages) once, then runs the entry at each commit.
    # Installed without the compiler's extra, the entry failed every commit.
    source = tmp_path / "magcfg"
    rev = _this_checkout_committed(source)
    repo = tmp_path / "other"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "ok.yaml").write_text("a: 1\n")
    (repo / "policy.hcl").write_text(
        'path "secret/data/k3s/magds/*" {\n  capabilities = ["read"]\n}\n')
    (repo / ".pre-commit-config.yaml").write_text(yaml.safe_dump(
        {"repos": [{"repo": str(source), "rev": rev, "hooks": [{"id": "magcfg-lint"}]}]}))
    git(repo, "add", "-A")
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"),
           "PRE_COMMIT_COLOR": "never"}
    tool = Path(sys.executable).with_name("pre-commit")

    def run(*files: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(tool), "run", "magcfg-lint", "--files", *files], cwd=repo,
                              env=env, capture_output=True, text=True, timeout=600,
                              check=False)

    clean = run("ok.yaml")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "magcfg lint (secrets rules)" in clean.stdout and "Passed" in clean.stdout
    found = run("ok.yaml", "policy.hcl")
    assert found.returncode == 1, found.stdout + found.stderr
    assert "MAG005" in found.stdout and "needs the compiler" not in found.stdout
