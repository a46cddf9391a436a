"""``magcfg promote``: minimal edits, refusals, git branch and commit, PR body."""

from __future__ import annotations

import difflib
import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from magcfg.review.yamledit import EditRefused, set_values

from ..conftest import MAGCFG, Project
from .promotion_repo import CANARIES, FILES, GIT_ENV, git, make_repo, no_canary, tree


@pytest.fixture
def repo(tmp_path: Path) -> Project:
    return make_repo(tmp_path / "shop")


def _state(repo: Project) -> tuple[dict[str, bytes], str, str, str]:
    """Everything a refused promotion must leave as it was."""
    files = {k: v for k, v in tree(repo.root, ".").items()
             if not k.startswith((".git/", ".magcfg-cache/"))}
    return (files, git(repo.root, "branch", "--list"), git(repo.root, "rev-parse", "HEAD"),
            git(repo.root, "status", "--porcelain"))


def _only_replaced(before: str, after: str, replaced: dict[int, str]) -> list[str]:
    """Assert ``after`` is ``before`` with the given 1-based lines replaced and some lines
    inserted; returns the inserted lines."""
    old, new = before.splitlines(keepends=True), after.splitlines(keepends=True)
    inserted: list[str] = []
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        if tag == "insert":
            inserted += new[j1:j2]
            continue
        assert tag == "replace", (tag, old[i1:i2])
        for k, i in enumerate(range(i1, i2)):
            assert i + 1 in replaced, f"line {i + 1} changed: {old[i]!r}"
            assert new[j1 + k] == replaced[i + 1]
        inserted += new[j1 + (i2 - i1):j2]
    return inserted


# ------------------------------------------------------------------ promoting


def test_promote_one_key(repo: Project) -> None:
    before = (repo.root / "layers/environments/production/db.yaml").read_text()
    pr = repo.root.parent / "pr.md"
    result = repo.run("promote", "staging", "production", "--key", "db.pool.max",
                      "--pr-body", str(pr))
    assert result.returncode == 0, result.stderr
    after = (repo.root / "layers/environments/production/db.yaml").read_text()
    assert _only_replaced(before, after, {6: "    max: 15\n"}) == []
    # A new branch with one commit holding the layer file and the rebuilt artifact.
    branch = git(repo.root, "rev-parse", "--abbrev-ref", "HEAD").strip()
    assert branch.startswith("promote/staging-to-production-")
    assert git(repo.root, "status", "--porcelain") == ""
    changed = git(repo.root, "diff", "--name-only", "main", "HEAD").split()
    assert changed == ["generated/production/config.json", "generated/production/configmap.yaml",
                       "generated/production/manifest.json",
                       "layers/environments/production/db.yaml"]
    config = json.loads((repo.root / "generated/production/config.json").read_text())
    assert config["db"]["pool"] == {"max": 15, "min": 1}
    message = git(repo.root, "log", "-1", "--format=%B")
    assert message.startswith("Promote staging -> production: db.pool.max\n")
    assert "db.pool.max: 50 -> 15" in message
    assert repo.run("build", "--check").returncode == 0
    body = pr.read_text()
    assert body.startswith("## Promote `staging` → `production`\n")
    for part in ("### Summary", "### Semantic diff", "### Restart-only changes",
                 "### Where each value comes from", "| ~ | `db.pool.max` | `50` | `15` | hot |",
                 "None: every change is hot-reloadable.",
                 "`layers/environments/staging/db.yaml:5`", "by Dana Dev: Initial config"):
        assert part in body, part
    assert result.stdout == ""


def test_promote_glob_keeps_comments_and_formatting(repo: Project) -> None:
    before = (repo.root / "layers/environments/production/db.yaml").read_text()
    result = repo.run("promote", "dev", "production", "--key", "db.pool.*")
    assert result.returncode == 0, result.stderr
    after = (repo.root / "layers/environments/production/db.yaml").read_text()
    assert _only_replaced(before, after, {6: "    max: 20\n"}) == ["    min: 2\n"]
    assert after.index("    min: 2\n") == after.index("    max: 20\n") + len("    max: 20\n")
    assert "## Promote `dev` → `production`" in result.stdout  # PR body on stdout


def test_promotion_equals_hand_made_tree(repo: Project) -> None:
    expected = {rel: text.encode() for rel, text in FILES.items()}
    expected["layers/environments/staging/db.yaml"] = (
        b"# Staging: shared cluster.\n"
        b"db:\n"
        b"  host: \"db.staging.internal\"\n"
        b"  pool:\n"
        b"    max: 20\n"
        b"    min: 2\n"
        b"  tls:\n"
        b"    mode: \"verify-full\"\n"
        b"    ca: \"/etc/ca.pem\"\n"
        b"    ca_check: true\n"
        b"\n"
        b"# Trailing notes stay put.\n")
    expected["layers/environments/staging/logging.yaml"] = b"logging:\n  level: \"debug\"\n"
    result = repo.run("promote", "dev", "staging", "--branch", "promote/dev-staging")
    assert result.returncode == 0, result.stderr
    assert tree(repo.root) == expected
    assert git(repo.root, "rev-parse", "--abbrev-ref", "HEAD").strip() == "promote/dev-staging"
    body = result.stdout
    assert "- `layers/environments/staging/logging.yaml`" in body
    assert "`app.debug`: intended difference (promote.allow_differences `dev: app.debug`)" in body
    assert "`app.environment`: intended difference" in body
    assert "`db.password`: secret reference" in body
    assert "- `db.tls.mode`" in body  # restart-only section
    assert no_canary(result.stdout, result.stderr)


def test_dry_run_changes_nothing(repo: Project) -> None:
    state = _state(repo)
    result = repo.run("promote", "dev", "staging", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert _state(repo) == state
    assert result.stdout.startswith("promote dev -> staging: 6 value(s) to write, 3 skipped\n")
    assert "  logging.level = \"debug\"\n" in result.stdout
    assert ("into layers/environments/staging/logging.yaml (new file); replaces \"info\" set in "
            "layers/base/logging.yaml:2") in result.stdout
    assert "--- staging\n+++ staging (promoted)\n" in result.stdout
    assert no_canary(result.stdout, result.stderr)


def test_same_plan_same_output(repo: Project) -> None:
    first = repo.run("promote", "dev", "production", "-n").stdout
    assert repo.run("promote", "dev", "production", "-n").stdout == first


# ------------------------------------------------------------------ refusals


def test_refuses_to_make_target_invalid(repo: Project) -> None:
    state = _state(repo)
    # dev sets db.tls.ca together with ca_check; promoting ca alone breaks the schema.
    result = repo.run("promote", "dev", "production", "--key", "db.tls.ca")
    assert result.returncode == 1
    assert "would make production invalid; nothing was written" in result.stderr
    assert "layers/environments/production/db.yaml" in result.stderr
    assert "Traceback" not in result.stderr
    assert _state(repo) == state


def test_secrets_not_promoted_unless_asked(repo: Project) -> None:
    result = repo.run("promote", "dev", "staging", "--key", "db.password")
    assert result.returncode == 0
    assert "db.password: secret reference (use --include-secrets" in result.stdout
    assert "nothing to promote" in result.stderr
    assert git(repo.root, "rev-parse", "--abbrev-ref", "HEAD").strip() == "main"

    asked = repo.run("promote", "dev", "staging", "--key", "db.password", "--include-secrets")
    assert asked.returncode == 0, asked.stderr
    assert (repo.root / "layers/secrets/staging/db.yaml").read_text() == FILES[
        "layers/secrets/dev/db.yaml"]
    # A reference is not a secret: the body and the commit say where the value now lives.
    assert '| `db.password` | `"vault://secret/k3s/shop#db_password_dev"` |' in asked.stdout
    message = git(repo.root, "log", "-1", "--format=%B")
    assert ('db.password: "vault://secret/k3s/shop#db_password_staging" -> '
            '"vault://secret/k3s/shop#db_password_dev"') in message
    assert no_canary(result.stdout, result.stderr, asked.stdout, asked.stderr, message)


def test_allow_listed_difference_is_skipped(repo: Project) -> None:
    state = _state(repo)
    result = repo.run("promote", "staging", "production", "--key", "app.*")
    assert result.returncode == 0
    assert ("app.environment: intended difference (promote.allow_differences *: "
            "app.environment)") in result.stdout
    assert _state(repo) == state


def test_refuses_uncommitted_target(repo: Project) -> None:
    target = repo.root / "layers/environments/production/db.yaml"
    target.write_text(target.read_text() + "# local note\n")
    state = _state(repo)
    result = repo.run("promote", "staging", "production", "--key", "db.pool.max")
    assert result.returncode == 1
    assert "uncommitted changes" in result.stderr
    assert "layers/environments/production/db.yaml" in result.stderr
    assert _state(repo) == state


def test_refuses_uncommitted_input(repo: Project) -> None:
    # The rebuild reads the base layer: committing it dirty would commit an artifact
    # that the committed layers do not build.
    base = repo.root / "layers/base/db.yaml"
    base.write_text(base.read_text().replace("port: 5432", "port: 5433"))
    state = _state(repo)
    result = repo.run("promote", "staging", "production", "--key", "db.pool.max")
    assert result.returncode == 1
    assert "uncommitted changes in files the promotion reads or writes" in result.stderr
    assert "layers/base/db.yaml" in result.stderr
    assert _state(repo) == state


def test_a_local_signing_is_dropped_as_the_refusal_says_then_the_promotion_passes_ci(
        repo: Project, tmp_path: Path) -> None:
    """The runbook signs by hand (step 5), and main never holds the signatures: the
    refusal of the next promotion said to commit them. It says to drop them, with the
    command that does, from where promote runs; run there, the promotion goes through and
    its branch passes CI's build check."""
    from magcfg.signing.keys import generate_key_pair

    generate_key_pair(tmp_path / "keys")
    assert repo.run("sign", "--key", str(tmp_path / "keys/magcfg.key")).returncode == 0
    where = repo.root / "layers"
    env = {**os.environ, **GIT_ENV}

    def promote() -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(MAGCFG), "promote", "staging", "production", "--key",
                               "db.pool.max"], cwd=where, capture_output=True, text=True,
                              env=env, timeout=120)

    refused = promote()
    assert refused.returncode == 1, refused.stderr
    lines = refused.stderr.splitlines()
    assert lines[:4] == ["error: uncommitted changes in files the promotion reads or writes:",
                         " M generated/production/configmap.yaml",
                         "?? generated/production/attestation.dsse.json",
                         "?? generated/production/manifest.json.sig"]
    command = ("git checkout -- ../generated/production/configmap.yaml && git clean -f -- "
               "../generated/production/attestation.dsse.json "
               "../generated/production/manifest.json.sig")
    assert lines[4:] == [f"drop what a local `magcfg sign` wrote (CI signs and publishes, and "
                         f"main holds each artifact unsigned) with `{command}`"]
    dropped = subprocess.run(["sh", "-c", command], cwd=where, capture_output=True,
                             text=True, env=env, timeout=60)
    assert dropped.returncode == 0, dropped.stderr
    done = promote()
    assert done.returncode == 0, done.stderr
    assert repo.run("build", "--check", "--since", "main").returncode == 0
    # A change of one's own beside the signatures is still one's to commit or stash.
    promoted = git(repo.root, "branch", "--show-current").strip()
    git(repo.root, "switch", "-q", "main")
    git(repo.root, "branch", "-q", "-D", promoted)
    assert repo.run("sign", "--key", str(tmp_path / "keys/magcfg.key")).returncode == 0
    layer = repo.root / "layers/environments/production/db.yaml"
    layer.write_text(layer.read_text() + "# mine\n")
    assert promote().stderr.endswith("; commit or stash the rest first\n")


def test_refuses_existing_branch(repo: Project) -> None:
    git(repo.root, "branch", "promote/taken")
    state = _state(repo)
    result = repo.run("promote", "staging", "production", "-k", "db.pool.max", "-b",
                      "promote/taken")
    assert result.returncode == 1
    assert "branch 'promote/taken' already exists" in result.stderr
    assert _state(repo) == state


def test_refuses_file_it_would_reformat(repo: Project) -> None:
    # Another map of the file is indented by 4: ruamel would re-indent it.
    repo.write("layers/environments/production/db.yaml",
               "db:\n  pool:\n    max: 50\nlogging:\n    level: \"warn\"\n")
    git(repo.root, "commit", "-qam", "mixed indentation")
    state = _state(repo)
    result = repo.run("promote", "staging", "production", "--key", "db.pool.max")
    assert result.returncode == 1, result.stderr
    assert ("layers/environments/production/db.yaml:5: error: editing this file would "
            "reformat lines other than the promoted values") in result.stderr
    assert _state(repo) == state


@pytest.mark.parametrize(("args", "message"), [
    (("promote", "dev", "staging", "--key", "nope.*"),
     "--key 'nope.*' matches no key that dev's per-environment layers set"),
    (("promote", "dev", "dev"), "FROM and TO are the same environment"),
    (("promote", "dev", "qa"), "unknown environment 'qa'"),
    (("promote", "dev", "staging", "-b", "bad..name"), "'bad..name' is not a valid branch name"),
])
def test_usage_errors(repo: Project, args: tuple[str, ...], message: str) -> None:
    state = _state(repo)
    result = repo.run(*args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert _state(repo) == state


def test_bad_allow_list_names_project_line(repo: Project) -> None:
    text = (repo.root / "magcfg.yaml").read_text().replace("dev: [app.debug]", "qa: [app.debug]")
    repo.write("magcfg.yaml", text)
    result = repo.run("promote", "dev", "staging", "-n")
    assert result.returncode == 1
    assert "magcfg.yaml:16: error: unknown environment 'qa'" in result.stderr


# ------------------------------------------------------------------ the YAML editor


def test_appended_key_goes_above_the_next_keys_comment() -> None:
    text = ("events:\n  workers: 8  # eight\n# Production: the cluster.\nkernel:\n  x: 1\n")
    out = set_values("f.yaml", text, [(("events", "sync"), True)])
    assert out == ("events:\n  workers: 8  # eight\n  sync: true\n"
                   "# Production: the cluster.\nkernel:\n  x: 1\n")


def test_editor_quotes_yaml11_lookalikes_and_keeps_styles() -> None:
    out = set_values("f.yaml", "a:\n  b: 'x'\n  l: [1, 2]\n",
                     [(("a", "b"), "no"), (("a", "l"), [3]), (("a", "c"), "on")])
    assert out == "a:\n  b: 'no'\n  l: [3]\n  c: \"on\"\n"
    out = set_values("f.yaml", "a:\n  b: plain\n", [(("a", "b"), "still-plain")])
    assert out == "a:\n  b: still-plain\n"
    out = set_values("f.yaml", "a:\n  b: plain\n", [(("a", "b"), "off")])
    assert out == "a:\n  b: \"off\"\n"


def test_editor_refuses_reformatting() -> None:
    with pytest.raises(EditRefused) as caught:
        set_values("f.yaml", "a:\n  b: 1\nz:\n    y: 2\n", [(("a", "b"), 9)])
    assert "f.yaml:4" in str(caught.value)


def test_canaries_present_in_layers(repo: Project) -> None:
    text = "".join(b.decode() for b in tree(repo.root).values())
    assert all(c in text for c in CANARIES)


def test_failed_commit_restores_everything(repo: Project) -> None:
    # A real pre-commit hook refuses the commit after files were written and rebuilt.
    unrelated = repo.root / "NOTES.md"
    unrelated.write_text("notes\n")
    git(repo.root, "add", "NOTES.md")
    git(repo.root, "commit", "-qm", "notes")
    hook = repo.root / ".git/hooks/pre-commit"
    hook.write_text("#!/bin/sh\necho 'hook: no commits today' >&2\nexit 1\n")
    hook.chmod(0o755)
    unrelated.write_text("notes\nwork in progress\n")
    state = _state(repo)
    result = repo.run("promote", "dev", "staging")
    assert result.returncode != 0
    assert result.returncode == 1
    assert "error: git failed (git commit): hook: no commits today; nothing was changed" in \
        result.stderr
    assert "Traceback" not in result.stderr
    assert _state(repo) == state  # files, branches, HEAD, and the unrelated edit
    assert not (repo.root / "layers/environments/staging/logging.yaml").exists()


def test_a_failed_promotion_removes_the_directories_it_made(repo: Project) -> None:
    """``git clean`` took back the files of a failed promotion, and left the directory
    it made for a new layer file: empty, and in no ``git status``."""
    (repo.root / "magcfg.yaml").write_text((repo.root / "magcfg.yaml").read_text().replace(
        '    path: "layers/secrets/{env}"\n',
        '    path: "layers/secrets/{env}"\n  - name: overrides\n'
        '    path: "layers/overrides/{env}"\n'))
    (repo.root / "layers/overrides/dev").mkdir(parents=True)
    git(repo.root, "mv", "layers/environments/dev/logging.yaml", "layers/overrides/dev/")
    assert repo.run("build").returncode == 0
    git(repo.root, "add", "-A")
    git(repo.root, "commit", "-qm", "overrides")
    (repo.root / "layers/overrides/production").mkdir()  # not the promotion's: kept
    hook = repo.root / ".git/hooks/pre-commit"
    hook.write_text("#!/bin/sh\nexit 1\n")
    hook.chmod(0o755)
    state = _state(repo)
    result = repo.run("promote", "dev", "staging")
    assert result.stderr.endswith("error: git failed (git commit): exit status 1; nothing "
                                  "was changed\n"), result.stderr
    assert _state(repo) == state
    assert sorted(p.name for p in (repo.root / "layers/overrides").iterdir()) == [
        "dev", "production"]


def test_the_pr_body_links_the_report_only_where_ci_publishes_it(repo: Project) -> None:
    pr = repo.root.parent / "pr.md"
    done = repo.run("promote", "staging", "production", "--key", "db.pool.max",
                    "--pr-body", str(pr))
    assert done.returncode == 0, done.stderr
    git(repo.root, "checkout", "-q", "main")
    # No remote: the branch the promotion was made from is what it is reviewed against.
    assert ("### Config matrix\n\nEvery key by environment, with this change highlighted: "
            "`magcfg report --html report.html --against main` (docs/report.md).\n"
            ) in pr.read_text()
    assert "ci-artifacts" not in pr.read_text()
    workflows = repo.root / ".github/workflows"
    workflows.mkdir(parents=True)
    (workflows / "pr.yml").write_text(
        "steps:\n  - run: magcfg report --html ci-artifacts/report.html --against origin/main\n")
    done = repo.run("promote", "staging", "production", "--key", "db.pool.max",
                    "--branch", "promote/again", "--pr-body", str(pr))
    assert done.returncode == 0, done.stderr
    assert ("highlighted: [`report.html`](ci-artifacts/report.html), published by CI for this "
            "pull request next to `diff.md` (locally: `magcfg report --html report.html "
            "--against main`).\n") in pr.read_text()


def test_the_pr_body_s_commands_run_at_the_top_of_a_monorepo(tmp_path: Path) -> None:
    """The PR body names files from the repository's top, and its commands are run there
    (by a reviewer, as by CI): for a project below it they name the project. They had no
    ``--project``, and at the top found no project file."""
    import shlex
    import shutil

    top = tmp_path / "mono"
    repo = make_repo(top / "platform/config")
    shutil.rmtree(repo.root / ".git")
    git(top, "init", "-q", "-b", "main")
    git(top, "config", "user.name", "Dana Dev")
    git(top, "config", "user.email", "dana@example.com")
    git(top, "add", "-A")
    git(top, "commit", "-qm", "Initial config")
    pr = tmp_path / "pr.md"
    done = repo.run("promote", "staging", "production", "--key", "db.pool.max",
                    "--pr-body", str(pr))
    assert done.returncode == 0, done.stderr
    body = pr.read_text()
    assert "- `platform/config/layers/environments/production/db.yaml`" in body, body
    rerun = ("magcfg promote staging production --key 'db.pool.max' "
             "--project platform/config/magcfg.yaml")
    report = ("magcfg report --html report.html --against main "
              "--project platform/config/magcfg.yaml")
    assert f"```\n{rerun}\n```\n" in body, body
    assert f"`{report}`" in body, body
    git(top, "checkout", "-q", "main")
    env = {**os.environ, "PATH": f"{MAGCFG.parent}{os.pathsep}{os.environ['PATH']}"}
    again = subprocess.run([*shlex.split(rerun), "--dry-run"], cwd=top, env=env,
                           capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("promote staging -> production: 1 value(s) to write")
    made = subprocess.run(shlex.split(report), cwd=top, env=env, capture_output=True,
                          text=True, check=False)
    assert made.returncode == 0, made.stderr
    assert (top / "report.html").is_file()


def test_the_pr_body_s_commands_name_a_project_file_of_another_name(repo: Project) -> None:
    """At the top, a project file that is not magcfg.yaml (or .yml) is found by
    ``--project`` alone: the PR body's commands left it out, and found no project."""
    import shlex

    git(repo.root, "mv", "magcfg.yaml", "deploy.yaml")
    git(repo.root, "commit", "-qm", "rename the project file")
    pr = repo.root.parent / "pr.md"
    done = repo.run("promote", "staging", "production", "--key", "db.pool.max",
                    "--pr-body", str(pr), "--project", "deploy.yaml")
    assert done.returncode == 0, done.stderr
    body = pr.read_text()
    rerun = "magcfg promote staging production --key 'db.pool.max' --project deploy.yaml"
    assert f"```\n{rerun}\n```\n" in body, body
    assert "magcfg report --html report.html --against main --project deploy.yaml" in body
    git(repo.root, "checkout", "-q", "main")
    env = {**os.environ, "PATH": f"{MAGCFG.parent}{os.pathsep}{os.environ['PATH']}"}
    again = subprocess.run([*shlex.split(rerun), "--dry-run"], cwd=repo.root, env=env,
                           capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stderr


def test_the_pr_body_names_the_branch_the_promotion_goes_into(repo: Project) -> None:
    """A clone of an origin whose default branch is not main: the PR body's base and its
    report command name origin's branch, from that branch and from a detached HEAD."""
    origin = repo.root.parent / "origin.git"
    git(repo.root.parent, "clone", "-q", "--bare", str(repo.root), str(origin))
    git(origin, "branch", "-m", "main", "trunk")
    git(origin, "symbolic-ref", "HEAD", "refs/heads/trunk")
    git(origin, "branch", "release", "trunk")
    clone = Project(repo.root.parent / "clone")
    git(repo.root.parent, "clone", "-q", str(origin), str(clone.root))
    git(clone.root, "config", "user.name", "Dana Dev")
    git(clone.root, "config", "user.email", "dana@example.com")
    pr = repo.root.parent / "pr.md"

    def promoted(*args: str) -> str:
        done = clone.run("promote", "staging", "production", "--key", "db.pool.max",
                         "--pr-body", str(pr), *args)
        assert done.returncode == 0, done.stderr
        return pr.read_text()

    body = promoted()
    assert "for a pull request into `origin/trunk`." in body
    assert "`magcfg report --html report.html --against origin/trunk`" in body
    assert "origin/main" not in body
    git(clone.root, "checkout", "-q", "-b", "release", "origin/release")
    body = promoted("--branch", "promote/release")
    assert "for a pull request into `origin/release`." in body
    assert "--against origin/release`" in body
    git(clone.root, "checkout", "-q", "--detach", "origin/trunk")
    body = promoted("--branch", "promote/detached")
    assert "--against origin/trunk`" in body


def test_a_failed_rollback_says_what_failed_and_what_is_left(repo: Project) -> None:
    # The hook refuses the commit and spoils git's index, so the rollback's own git
    # commands fail too: the error says both, and how to restore by hand.
    hook = repo.root / ".git/hooks/pre-commit"
    hook.write_text("#!/bin/sh\necho 'hook: no commits today' >&2\n"
                    "printf 'not an index' > \"$(git rev-parse --git-dir)/index\"\nexit 1\n")
    hook.chmod(0o755)
    result = repo.run("promote", "dev", "staging")
    lines = result.stderr.splitlines()
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0] == "error: git failed (git commit): hook: no commits today"
    assert lines[1].startswith("and undoing the promotion failed too (git failed (git ")
    assert "nothing was changed" not in result.stderr
    hook.unlink()
    (repo.root / ".git/index").unlink()
    git(repo.root, "reset", "-q")
    branch = git(repo.root, "rev-parse", "--abbrev-ref", "HEAD").strip()
    assert branch.startswith("promote/dev-to-staging-")
    assert lines[-1].endswith(f"restore it with `git checkout -f main && git branch -D {branch}`")
    git(repo.root, "checkout", "-q", "-f", "main")
    git(repo.root, "clean", "-q", "-f", "--", "layers")
    git(repo.root, "branch", "-q", "-D", branch)
    assert git(repo.root, "status", "--porcelain") == ""


def test_a_hook_that_fails_the_branch_checkout_leaves_nothing(repo: Project) -> None:
    """git runs post-checkout after it made the branch and switched to it, and returns
    the hook's status: the branch and HEAD are taken back (without the hook, which
    would fail the undo's own checkout), so "nothing was changed" holds."""
    hook = repo.root / ".git/hooks/post-checkout"
    hook.write_text("#!/bin/sh\nexit 1\n")
    hook.chmod(0o755)
    state = _state(repo)
    result = repo.run("promote", "dev", "staging")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr == ("error: git failed (git checkout): exit status 1; "
                             "nothing was changed\n")
    assert _state(repo) == state


def test_a_failed_undo_says_what_git_shows_is_left(repo: Project) -> None:
    # The hook refuses the commit and holds HEAD's lock: the undo restores the files
    # but cannot move HEAD back, and the error says so, as git tells it afterwards.
    hook = repo.root / ".git/hooks/pre-commit"
    hook.write_text("#!/bin/sh\necho 'hook: no commits today' >&2\n"
                    ": > \"$(git rev-parse --git-dir)/HEAD.lock\"\nexit 1\n")
    hook.chmod(0o755)
    state = _state(repo)
    result = repo.run("promote", "dev", "staging")
    lines = result.stderr.splitlines()
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0] == "error: git failed (git commit): hook: no commits today"
    branch = git(repo.root, "rev-parse", "--abbrev-ref", "HEAD").strip()
    assert branch.startswith("promote/dev-to-staging-")
    assert lines[1].startswith("and undoing the promotion failed too (git failed (git "
                               "checkout): ")
    assert lines[-1].endswith(f"HEAD is on {branch!r}, not 'main'; branch {branch!r} exists; "
                              f"restore it with `git checkout -f main && git branch -D "
                              f"{branch}`")
    assert "nothing was changed" not in result.stderr
    hook.unlink()
    (repo.root / ".git/HEAD.lock").unlink()
    git(repo.root, "checkout", "-q", "-f", "main")
    git(repo.root, "branch", "-q", "-D", branch)
    assert _state(repo) == state


def test_a_failed_undo_advises_a_restore_that_runs_whatever_the_branch_is_named(
        repo: Project) -> None:
    """Promote run on a branch whose name holds what a shell reads (`rel;false`, a name
    git takes): the restore a failed undo advises, run as it stands by a shell, takes
    HEAD back to that branch and deletes the promotion's (it named the branch unquoted:
    `git checkout -f rel` failed, and the `;` ended the command)."""
    git(repo.root, "checkout", "-q", "-b", "rel;false")
    state = _state(repo)
    hook = repo.root / ".git/hooks/pre-commit"
    hook.write_text("#!/bin/sh\n: > \"$(git rev-parse --git-dir)/HEAD.lock\"\nexit 1\n")
    hook.chmod(0o755)
    result = repo.run("promote", "dev", "staging")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    advised = re.search(r"restore it with `([^`]*)`", result.stderr.splitlines()[-1])
    assert advised is not None, result.stderr
    hook.unlink()
    (repo.root / ".git/HEAD.lock").unlink()
    done = subprocess.run(["sh", "-c", advised.group(1)], cwd=repo.root, capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, (advised.group(1), done.stderr)
    assert git(repo.root, "rev-parse", "--abbrev-ref", "HEAD").strip() == "rel;false"
    assert _state(repo) == state


@pytest.mark.parametrize("value", [1e16, 1e-07, 1.5, -2.5e-300, 0.1])
def test_editor_writes_floats_the_loader_reads_back(value: float) -> None:
    from magcfg.syntax.strict_yaml import parse_layer

    out = set_values("f.yaml", "a:\n  b: 1.0\n", [(("a", "b"), value)])
    assert parse_layer("f.yaml", out.encode())[0] == {"a": {"b": value}}


def test_promote_removes_an_override_that_from_does_not_have(repo: Project) -> None:
    # production overrides db.replicas; staging inherits base's. Making production equal
    # staging means removing production's line, not copying base's value into it.
    before = (repo.root / "layers/environments/production/db.yaml").read_text()
    dry = repo.run("promote", "staging", "production", "--key", "db.replicas", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert '  db.replicas = ["r1.internal"]  [restart]\n      from layers/base/db.yaml:10' \
        in dry.stdout
    assert ('      by removing ["r1.prod", "r2.prod"] set in '
            "layers/environments/production/db.yaml:7 (production then inherits the shared "
            "value, as staging does)\n") in dry.stdout
    assert (repo.root / "layers/environments/production/db.yaml").read_text() == before

    pr = repo.root.parent / "pr.md"
    done = repo.run("promote", "staging", "production", "--key", "db.replicas",
                    "--key", "db.pool.max", "--pr-body", str(pr))
    assert done.returncode == 0, done.stderr
    after = (repo.root / "layers/environments/production/db.yaml").read_text()
    assert after == before.replace('  replicas: ["r1.prod", "r2.prod"]\n', "").replace(
        "    max: 50\n", "    max: 15\n")
    config = json.loads((repo.root / "generated/production/config.json").read_text())
    assert config["db"]["replicas"] == ["r1.internal"]
    # The commit and the PR body say what was removed and what was copied.
    message = git(repo.root, "log", "-1", "--format=%B")
    assert ("magcfg promote copied 1 value(s) from staging's layers into production's and "
            "removed 1 override(s) of production's that staging leaves to the shared "
            "layers:\n") in message
    assert ('  db.replicas: ["r1.prod", "r2.prod"] -> ["r1.internal"] [restart]\n'
            "    removed from layers/environments/production/db.yaml, inherits "
            "layers/base/db.yaml:10\n") in message
    assert ("1 value(s) that `staging` sets are copied into `production`'s layer files, "
            "1 override(s) of `production` removed (`staging` leaves them to the shared "
            "layers); 0 skipped.") in pr.read_text()


def test_removing_the_only_key_leaves_an_empty_file() -> None:
    from magcfg.review.yamledit import REMOVE

    assert set_values("c.yaml", "cache:\n  max_entries: 100000\n",
                      [(("cache", "max_entries"), REMOVE)]) == ""
    assert set_values("c.yaml", "cache:\n  max_entries: 1\n  ttl: 2\n",
                      [(("cache", "max_entries"), REMOVE)]) == "cache:\n  ttl: 2\n"


# ------------------------------------------------------------------ keyed lists

ROUTES_SCHEMA = {
    "type": "object", "additionalProperties": False, "description": "api",
    "properties": {"routes": {
        "type": "array", "x-magcfg-merge-key": "name", "description": "routes",
        "items": {"type": "object", "additionalProperties": False, "required": ["name"],
                  "properties": {"name": {"type": "string", "description": "name"},
                                 "path": {"type": "string", "description": "path"},
                                 "rate_limit": {"type": "integer", "description": "rps"}}}}},
}
ROUTES = {
    "layers/base/api.yaml": (
        "api:\n  routes:\n"
        "    - name: orders\n      path: /orders\n      rate_limit: 100\n"
        "    - name: users\n      path: /users\n      rate_limit: 100\n"
        "    - name: legacy\n      path: /v0\n      rate_limit: 10\n"),
    "layers/environments/dev/api.yaml": (
        "api:\n  routes:\n"
        "    - name: orders\n      path: /v2/orders\n"
        "    - !unset {name: legacy}\n"
        "    - name: search\n      path: /search\n      rate_limit: 5\n"),
    "layers/environments/production/api.yaml": (
        "# Production routes.\napi:\n  routes:\n"
        "    - name: orders   # peak traffic\n      rate_limit: 1000\n"
        "    - name: users\n      rate_limit: 500\n"),
}


@pytest.fixture
def routes_repo(tmp_path: Path) -> Project:
    """The promotion repo with a keyed list (api.routes, merged on `name`)."""
    from magcfg.compiler import build
    from magcfg.project import load_project

    project = make_repo(tmp_path / "shop")
    schema = json.loads((project.root / "schemas/schema.json").read_text())
    schema["properties"]["api"] = ROUTES_SCHEMA
    project.write("schemas/schema.json", json.dumps(schema, indent=2) + "\n")
    for rel, text in ROUTES.items():
        project.write(rel, text)
    build(load_project(project.root / "magcfg.yaml"))
    git(project.root, "add", "-A")
    git(project.root, "commit", "-q", "-m", "Routes")
    return project


def _routes(project: Project, env: str) -> list[dict[str, object]]:
    config = json.loads((project.root / f"generated/{env}/config.json").read_text())
    routes: list[dict[str, object]] = config["api"]["routes"]
    return routes


def test_keyed_list_merge_and_unset_item_in_a_build(routes_repo: Project) -> None:
    assert _routes(routes_repo, "dev") == [
        {"name": "orders", "path": "/v2/orders", "rate_limit": 100},
        {"name": "users", "path": "/users", "rate_limit": 100},
        {"name": "search", "path": "/search", "rate_limit": 5}]
    assert [r["name"] for r in _routes(routes_repo, "production")] == ["orders", "users",
                                                                       "legacy"]


def test_promote_keyed_list_item_by_item(routes_repo: Project) -> None:
    prod = routes_repo.root / "layers/environments/production/api.yaml"
    before = prod.read_text()
    dry = routes_repo.run("promote", "dev", "production", "--key", "api.routes", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert prod.read_text() == before
    out = dry.stdout
    assert out.startswith("promote dev -> production: 3 value(s) to write, 0 skipped\n")
    assert '  api.routes[name="legacy"] = (deleted: - !unset)' in out
    assert '  api.routes[name="orders"] = {"name": "orders", "path": "/v2/orders", ' \
        '"rate_limit": 100}' in out
    assert ("      into layers/environments/production/api.yaml; replaces {\"name\": "
            "\"orders\", \"path\": \"/orders\", \"rate_limit\": 1000} set in "
            "layers/environments/production/api.yaml:4") in out
    assert ("kept:\n  api.routes: production's own items kept (name=\"users\"): dev's "
            "per-environment layer does not mention them\n") in out

    done = routes_repo.run("promote", "dev", "production", "--key", "api.routes")
    assert done.returncode == 0, done.stderr
    # orders: only the differing field (production's rate_limit 1000 becomes dev's 100,
    # which base has: the override goes, path is written); users stays; search and the
    # legacy delete marker are appended.
    assert prod.read_text() == (
        "# Production routes.\napi:\n  routes:\n"
        "    - name: orders   # peak traffic\n      path: \"/v2/orders\"\n"
        "    - name: users\n      rate_limit: 500\n"
        "    - !unset {name: \"legacy\"}\n"
        "    - name: \"search\"\n      path: \"/search\"\n      rate_limit: 5\n")
    assert _routes(routes_repo, "production") == [
        {"name": "orders", "path": "/v2/orders", "rate_limit": 100},
        {"name": "users", "path": "/users", "rate_limit": 500},
        {"name": "search", "path": "/search", "rate_limit": 5}]
    assert "### Kept in `production`" in done.stdout
    assert routes_repo.run("build", "--check").returncode == 0


def test_promote_keyed_list_keeps_to_override_from_does_not_touch(routes_repo: Project) -> None:
    # staging sets no routes: production's own items are all kept, nothing is written.
    routes_repo.write("layers/environments/staging/api.yaml",
                      "api:\n  routes:\n    - name: users\n      rate_limit: 500\n")
    git(routes_repo.root, "add", "-A")
    git(routes_repo.root, "commit", "-q", "-m", "staging users")
    dry = routes_repo.run("promote", "staging", "production", "--key", "api.routes", "-n")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith("promote staging -> production: 0 value(s) to write")
    assert "production's own items kept (name=\"orders\")" in dry.stdout
    # Nothing to write: the promoted TO is TO.
    from magcfg.project import load_project
    from magcfg.review.promote import plan_promotion

    plan = plan_promotion(load_project(routes_repo.root / "magcfg.yaml"), "staging",
                          "production", ["api.routes"])
    assert plan.texts == {} and plan.edits == [] and plan.diff.identical


def test_promote_keyed_list_from_an_environment_without_it_keeps_to_items(
        routes_repo: Project) -> None:
    # staging's per-environment layer sets no routes at all: production's are all kept.
    dry = routes_repo.run("promote", "staging", "production", "--key", "api.routes", "-n")
    assert dry.returncode == 0, dry.stderr
    assert "Traceback" not in dry.stderr
    assert dry.stdout.startswith("promote staging -> production: 0 value(s) to write")
    assert ("api.routes: production's own items kept (name=\"orders\", name=\"users\"): "
            "staging's per-environment layer does not mention them") in dry.stdout
    # A list production replaces whole is named the same way.
    routes_repo.write("layers/environments/production/api.yaml",
                      "api:\n  routes: !replace\n    - name: orders\n      path: /o\n")
    dry = routes_repo.run("promote", "staging", "production", "--key", "api.routes", "-n")
    assert dry.returncode == 0, dry.stderr
    assert "api.routes: production's own items kept (name=\"orders\")" in dry.stdout


def test_unset_item_diagnostics_and_explain_name_the_marker(routes_repo: Project) -> None:
    routes_repo.write("layers/environments/production/api.yaml",
                      "api:\n  routes:\n    - name: orders\n      rate_limit: 1000\n"
                      "    - !unset {name: nothere}\n")
    built = routes_repo.run("build", "--env", "production")
    assert built.returncode == 0, built.stderr
    assert ("layers/environments/production/api.yaml:5: warning: !unset of list item "
            "name='nothere' that no lower layer has [api.routes.1]") in built.stderr
    explained = routes_repo.run("explain", "api.routes", "--env", "production")
    assert ('  => layers/environments/production/api.yaml:2  (environment)  '
            '[{"name": "orders", "rate_limit": 1000}, !unset {"name": "nothere"}]'
            ) in explained.stdout
    routes_repo.write("layers/environments/staging/db.yaml",
                      "db:\n  replicas:\n    - a\n    - !unset {name: x}\n")
    refused = routes_repo.run("build", "--env", "staging")
    assert refused.returncode == 1
    assert ("layers/environments/staging/db.yaml:4: error: !unset item in a list without "
            "x-magcfg-merge-key") in refused.stderr
    assert "[db.replicas.1]" in refused.stderr and "Traceback" not in refused.stderr


def test_promote_keyed_list_into_an_environment_without_the_list(routes_repo: Project) -> None:
    # staging has no api.yaml: the list is written whole, with only what base lacks.
    done = routes_repo.run("promote", "dev", "staging", "--key", "api.routes")
    assert done.returncode == 0, done.stderr
    assert (routes_repo.root / "layers/environments/staging/api.yaml").read_text() == (
        "api:\n  routes:\n"
        "    - name: \"orders\"\n      path: \"/v2/orders\"\n"
        "    - !unset {name: \"legacy\"}\n"
        "    - name: \"search\"\n      path: \"/search\"\n      rate_limit: 5\n")
    assert _routes(routes_repo, "staging") == _routes(routes_repo, "dev")


def test_promoted_delete_of_an_item_only_to_adds_removes_it(routes_repo: Project) -> None:
    prod = routes_repo.root / "layers/environments/production/api.yaml"
    prod.write_text(prod.read_text() + "    - name: search\n      path: /s\n"
                    "    - name: beta\n      path: /beta\n")
    routes_repo.write("layers/environments/dev/api.yaml",
                      "api:\n  routes:\n    - !unset {name: beta}\n")
    git(routes_repo.root, "add", "-A")
    git(routes_repo.root, "commit", "-q", "-m", "beta")
    done = routes_repo.run("promote", "dev", "production", "--key", "api.routes")
    assert done.returncode == 0, done.stderr
    assert prod.read_text().endswith("    - name: search\n      path: /s\n")
    assert "beta" not in prod.read_text()
    assert [r["name"] for r in _routes(routes_repo, "production")] == [
        "orders", "users", "legacy", "search"]


def test_promote_a_whole_service_of_the_realistic_shape(tmp_path: Path) -> None:
    """Hundreds of values of one file promoted at once (a generated service of 1,000
    keys): only the promoted lines change. A diff's alignment of the two texts paired
    lines wrongly here and refused the edit (`svc_000.yaml:111`)."""
    import subprocess
    import sys

    root = tmp_path / "repo"
    subprocess.run([sys.executable, str(Path(__file__).resolve().parents[2] / "benchmarks"
                                        / "synth.py"), str(root), "--shape", "realistic",
                    "--services", "1", "--keys", "1000", "--envs", "3"],
                   check=True, capture_output=True)
    project = Project(root)
    project.write(".gitignore", ".magcfg-cache/\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", "Dana Dev")
    git(root, "config", "user.email", "dana@example.com")
    assert project.run("build", "-q").returncode == 0
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "init")
    prod = root / "layers/environments/production/svc_000.yaml"
    before = prod.read_text()
    cache = tree(root, ".magcfg-cache")
    assert cache
    plan = project.run("promote", "staging", "production", "--key", "svc_000.**", "-n")
    assert plan.returncode == 0, plan.stderr
    assert tree(root, ".magcfg-cache") == cache  # the check reads the cache, never writes it
    done = project.run("promote", "staging", "production", "--key", "svc_000.**")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert prod.read_text() != before
    assert project.run("build", "--check").returncode == 0
    # Production's per-environment values of svc_000 are now staging's: the two compiled
    # configs agree on every key except what the promotion reported it skipped and what
    # production sets on its own (a glob never removes those: they are listed as kept).
    compared = project.run("diff", "staging", "production", "--format", "json")
    changed = {c["key"] for kind in ("added", "changed", "removed")
               for c in json.loads(compared.stdout)[kind]}

    def section(name: str) -> set[str]:
        text = plan.stdout.split(f"\n{name}:\n")[1].split("\n\n")[0]
        return {line.split(":")[0].strip() for line in text.splitlines()}

    skipped, kept = section("skipped"), section("kept")
    assert skipped == {"svc_000.credentials.password", "svc_000.credentials.token"}
    assert kept and all(k.startswith("svc_000.") for k in kept)
    assert "by removing" not in plan.stdout
    assert changed <= skipped | kept, sorted(changed - skipped - kept)[:5]
    assert changed & kept == kept  # what production sets on its own is still its own


@pytest.mark.parametrize("pattern", ["db", "db.*", "db.**"])
def test_a_glob_keeps_the_overrides_to_sets_on_its_own(repo: Project, pattern: str) -> None:
    # production's replicas are its own (staging leaves them to the base): a glob over
    # the service promotes what staging sets and leaves them, as the docs promise.
    before = (repo.root / "layers/environments/production/db.yaml").read_text()
    dry = repo.run("promote", "staging", "production", "--key", pattern, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "by removing" not in dry.stdout
    assert ("kept:\n  db.replicas: production's own override kept (staging leaves it to the "
            "base): name the key exactly with --key to remove it\n") in dry.stdout
    done = repo.run("promote", "staging", "production", "--key", pattern)
    assert done.returncode == 0, done.stderr
    after = (repo.root / "layers/environments/production/db.yaml").read_text()
    assert '  replicas: ["r1.prod", "r2.prod"]\n' in after
    assert after != before
    config = json.loads((repo.root / "generated/production/config.json").read_text())
    assert config["db"]["replicas"] == ["r1.prod", "r2.prod"]


def test_a_key_that_covers_only_to_s_own_overrides_is_refused(repo: Project) -> None:
    state = _state(repo)
    result = repo.run("promote", "staging", "production", "--key", "db.replicas.*")
    assert result.returncode == 2
    assert result.stderr == ("error: --key 'db.replicas.*' matches no key that staging's "
                             "per-environment layers set\n")
    prefix = repo.run("promote", "staging", "production", "--key", "db.rep*")
    assert prefix.returncode == 2
    assert prefix.stderr == (
        "error: --key 'db.rep*' matches no key that staging's per-environment layers set "
        "(production's own overrides under it are kept: name one exactly to remove it, "
        "e.g. --key db.replicas)\n")
    assert _state(repo) == state


def test_a_value_to_sets_in_a_cue_file_is_skipped_by_name(repo: Project) -> None:
    # magcfg writes no CUE (docs/cue.md): a value TO sets in a `.cue` layer file is left
    # for a hand edit, named, and the rest of the promotion goes ahead.
    repo.write("layers/environments/production/logging.cue", 'logging: level: "warn"\n')
    repo.write("layers/environments/production/flags.cue", "app: debug: true\n")
    assert repo.run("build").returncode == 0
    git(repo.root, "add", "-A")
    git(repo.root, "commit", "-q", "-m", "CUE layers in production")
    cue_files = {rel: text for rel, text in tree(repo.root).items() if rel.endswith(".cue")}

    removal = repo.run("promote", "staging", "production", "--key", "app.debug", "--dry-run")
    assert removal.returncode == 0, removal.stderr
    assert ("app.debug: set in layers/environments/production/flags.cue, a CUE file: "
            "promote writes YAML only, so change it there by hand") in removal.stdout

    done = repo.run("promote", "dev", "production", "--key", "logging.level",
                    "--key", "db.pool.max")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert ("`logging.level`: set in `layers/environments/production/logging.cue`, a CUE "
            "file: promote writes YAML only, so change it there by hand") in done.stdout
    assert {rel: text for rel, text in tree(repo.root).items()
            if rel.endswith(".cue")} == cue_files
    config = json.loads((repo.root / "generated/production/config.json").read_text())
    assert config["db"]["pool"]["max"] == 20
    assert config["logging"]["level"] == "warn"
    assert repo.run("build", "--check").returncode == 0


def test_a_promotion_rebased_over_a_concurrent_change_is_rebuilt_above_both(
        repo: Project) -> None:
    # The runbook's recipe for a promotion PR that main moved under: rebase, rebuild the
    # conflicted artifact, continue. The result checks clean and its version is above
    # main's, as CI's `build --check --since main` asks.
    def version(ref: str) -> int:
        manifest = git(repo.root, "show", f"{ref}:generated/production/manifest.json")
        return int(json.loads(manifest)["version"])

    assert repo.run("promote", "staging", "production", "--key", "db.pool.max",
                    "--branch", "promote-pool").returncode == 0
    git(repo.root, "switch", "-q", "main")
    base = repo.root / "layers/base/db.yaml"
    base.write_text(base.read_text().replace("port: 5432", "port: 6432"))
    assert repo.run("build", "-q").returncode == 0
    git(repo.root, "commit", "-qam", "Base: port 6432")
    git(repo.root, "switch", "-q", "promote-pool")
    rebase = subprocess.run(["git", "rebase", "main"], cwd=repo.root, capture_output=True,
                            text=True, env={**os.environ, **GIT_ENV}, check=False)
    assert rebase.returncode == 1
    assert "CONFLICT (content): Merge conflict in generated/production/manifest.json" in (
        rebase.stdout)
    assert repo.run("build", "-q").returncode == 0
    git(repo.root, "add", "-A")
    git(repo.root, "-c", "core.editor=true", "rebase", "--continue")
    assert repo.run("build", "--check").returncode == 0
    assert repo.run("build", "--check", "--since", "main").returncode == 0
    assert version("HEAD") == version("main") + 1
    config = json.loads((repo.root / "generated/production/config.json").read_text())
    assert (config["db"]["port"], config["db"]["pool"]["max"]) == (6432, 15)


def test_what_a_failed_undo_leaves_is_named_from_the_top(repo: Project) -> None:
    """git's porcelain names a file from the top of the work tree, octal-escaped and
    quoted when it is not plain ASCII; the messages name each as written, from the top
    of the repository as every command names files (docs/cli.md), wherever promote
    runs; only a path in a command to paste is given from where it runs, as git reads
    it there."""
    git(repo.root, "mv", "layers/environments/staging/db.yaml",
        "layers/environments/staging/db café.yaml")
    git(repo.root, "commit", "-q", "-m", "rename")

    def promote() -> str:
        done = subprocess.run([str(MAGCFG), "promote", "dev", "staging"],
                              cwd=repo.root / "layers", capture_output=True, text=True,
                              env={**os.environ, **GIT_ENV}, timeout=120)
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        return done.stderr

    edited = repo.root / "layers/environments/staging/db café.yaml"
    edited.write_text(edited.read_text() + "# mine\n")
    assert promote() == ("error: uncommitted changes in files the promotion reads or "
                         "writes:\n M layers/environments/staging/db café.yaml\ncommit or "
                         "stash them first\n")
    git(repo.root, "checkout", "--", ".")
    # The hook refuses the commit and holds the index's lock: the undo cannot reset.
    hook = repo.root / ".git/hooks/pre-commit"
    hook.write_text("#!/bin/sh\n: > \"$(git rev-parse --git-dir)/index.lock\"\nexit 1\n")
    hook.chmod(0o755)
    last = promote().splitlines()[-1]
    assert (
        "; generated/staging/config.json, generated/staging/configmap.yaml, "
        "generated/staging/manifest.json, layers/environments/staging/db café.yaml, "
        "layers/environments/staging/logging.yaml changed; restore it with `git checkout "
        "-f main && git branch -D promote/dev-to-staging-") in last and "\\303" not in last, last
    hook.unlink()
    (repo.root / ".git/index.lock").unlink()


def test_what_a_failed_undo_gives_to_paste_runs_no_branch_name(repo: Project) -> None:
    """A branch may be named `fix;touch${IFS}pwned`: the restore a failed undo gives,
    pasted into a shell at the top, checks that branch out again and runs nothing else
    (unquoted, the shell checked out `fix` and ran `touch`)."""
    original = "fix;touch${IFS}pwned"
    git(repo.root, "switch", "-q", "-c", original)
    # The hook refuses the commit and holds the index's lock: the undo cannot reset.
    hook = repo.root / ".git/hooks/pre-commit"
    hook.write_text("#!/bin/sh\n: > \"$(git rev-parse --git-dir)/index.lock\"\nexit 1\n")
    hook.chmod(0o755)
    done = subprocess.run([str(MAGCFG), "promote", "dev", "staging"], cwd=repo.root,
                          capture_output=True, text=True, env={**os.environ, **GIT_ENV},
                          timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    hook.unlink()
    (repo.root / ".git/index.lock").unlink()
    restore = done.stderr.splitlines()[-1].split("restore it with `")[1].rstrip("`")
    assert restore.startswith(f"git checkout -f {shlex.quote(original)} && "), restore
    subprocess.run(["sh", "-c", restore], cwd=repo.root, check=True, capture_output=True,
                   env={**os.environ, **GIT_ENV}, timeout=60)
    assert not (repo.root / "pwned").exists()
    assert git(repo.root, "branch", "--show-current").strip() == original
