"""``promote``, ``diff --against`` and ``build --since`` on a hostile repository: refused
with a located message, nothing changed (files, branches, HEAD), nothing outside touched."""

from __future__ import annotations

import json
import os
import posixpath
import shlex
import shutil
from pathlib import Path

import pytest

from magcfg.errors import md_code
from magcfg.review import promote

from ..conftest import Project, code_span, failed_cleanly, table_cells, tree_state
from .promotion_repo import PROJECT, SCHEMA, git, graft, make_repo, tree_bomb


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


def test_report_and_pr_body_never_write_through_a_committed_link(repo: Project,
                                                                 tmp_path: Path) -> None:
    # CI runs `mkdir -p ci-artifacts; magcfg report --html ci-artifacts/report.html` on a
    # pull request's checkout: a committed `ci-artifacts` link would take the page out.
    away = tmp_path / "away"
    away.mkdir()
    os.symlink(away, repo.root / "ci-artifacts")
    git(repo.root, "add", "-A")
    git(repo.root, "commit", "-q", "-m", "a link")
    state = _state(repo)
    message = ("ci-artifacts/x: error: cannot write: ci-artifacts is a symlink in the checkout, "
               "which magcfg never writes through")
    done = repo.run("report", "--html", "ci-artifacts/x")
    assert failed_cleanly(done, 1).splitlines() == [message]
    done = repo.run("promote", "staging", "production", "--key", "db.pool.max",
                    "--pr-body", "ci-artifacts/x")
    assert failed_cleanly(done, 1).splitlines() == [message]
    assert list(away.iterdir()) == []
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


def test_diff_and_explain_escape_bidi_overrides(repo: Project) -> None:
    # U+202E shows "ok exe.txt" as "ok txt.exe", and a file name reordered likewise.
    repo.write("layers/environments/dev/\u202ered.yaml", 'app:\n  name: "ok \u202etxt.exe"\n')
    done = repo.run("diff", "dev", "production", "--color", "never")
    assert done.returncode == 1, done.stderr
    assert '"ok \\u202etxt.exe"  layers/environments/dev/\\u202ered.yaml:2' in done.stdout
    markdown = repo.run("diff", "dev", "production", "--format", "markdown")
    assert '`"ok \\u202etxt.exe"`' in markdown.stdout, markdown.stdout
    explained = repo.run("explain", "app.name", "--env", "dev")
    assert explained.returncode == 0, explained.stderr
    assert ('=> layers/environments/dev/\\u202ered.yaml:2  (environment)  "ok \\u202etxt.exe"'
            in explained.stdout), explained.stdout
    assert "\u202e" not in done.stdout + markdown.stdout + explained.stdout


# ------------------------------------------------------------------ the tree of a ref
# `diff --against` and `report --against` read the ref from git objects: a pull request
# controls that tree as it controls the working tree, and more (git stores a tree that
# no checkout could hold). Each refusal is the working tree's, with the file named at
# the ref (`file@REF`), quickly, and nothing is written.

def _against(repo: Project, ref: str, html: Path) -> list[str]:
    """The stderr lines of ``diff --against`` and of ``report --against`` (the same),
    each of which must fail cleanly, quickly, writing no page."""
    done = repo.run("diff", "-e", "dev", "--against", ref, timeout=30)
    lines = failed_cleanly(done).splitlines()
    assert done.stdout == ""  # exit 1 is also a diff that found changes
    done = repo.run("report", "-e", "dev", "--against", ref, "--html", str(html), timeout=30)
    assert failed_cleanly(done).splitlines() == lines
    assert not html.exists()
    return lines


def test_against_refuses_symlink_loops_as_the_working_tree_does(repo: Project,
                                                                tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        os.symlink(".", repo.root / "layers/base" / name)
    here = failed_cleanly(repo.run("build", "--check")).splitlines()
    assert here == [f"layers/base/{name}: error: symlink loop: it leads to a directory that "
                    "contains it" for name in ("a", "b", "c")]
    git(repo.root, "checkout", "-q", "-b", "loops")
    git(repo.root, "add", "-A")
    git(repo.root, "commit", "-qm", "three loops")
    git(repo.root, "checkout", "-q", "main")
    state = _state(repo)
    assert _against(repo, "loops", tmp_path / "r.html") == [
        line.replace(": error:", "@loops: error:", 1) for line in here]
    assert _state(repo) == state


def test_against_refuses_a_tree_naming_a_million_files(repo: Project, tmp_path: Path) -> None:
    from magcfg.pipeline.gitsource import TOO_MANY

    ref = tree_bomb(repo.root, "layers/base/zbomb")
    state = _state(repo)
    # Each layer directory listed after the bound is spent says so as well.
    assert _against(repo, ref, tmp_path / "r.html") == [
        f"{directory}@{ref}: error: {TOO_MANY}"
        for directory in ("layers/base", "layers/environments/dev", "layers/secrets/dev")]
    assert _state(repo) == state


def test_against_refuses_a_submodule_and_a_dotdot_entry(repo: Project, tmp_path: Path) -> None:
    head = git(repo.root, "rev-parse", "HEAD").strip()
    ref = graft(repo.root, "layers/base/sub", f"160000 commit {head}")
    assert _against(repo, ref, tmp_path / "r.html") == [
        f"layers/base/sub@{ref}: error: is a git submodule; magcfg reads no layer files from "
        "other repositories"]
    blob = git(repo.root, "rev-parse", "HEAD:layers/base/app.yaml").strip()
    dotdot = git(repo.root, "mktree", given=f"100644 blob {blob}\tapp.yaml\n").strip()
    ref = graft(repo.root, "layers/environments/dev/..", f"040000 tree {dotdot}")
    assert _against(repo, ref, tmp_path / "r.html") == [
        f"layers/environments/dev@{ref}: error: git tree holds an entry git refuses (a name "
        "such as '..' or '.git', or a bad mode); magcfg does not read it"]


def test_against_reads_nothing_from_the_output_through_a_symlink(repo: Project,
                                                                 tmp_path: Path) -> None:
    os.symlink("../../../generated/dev", repo.root / "layers/environments/dev/gen")
    here = failed_cleanly(repo.run("build", "--check")).splitlines()
    assert here == ["layers/environments/dev/gen: error: symlink leads into generated, which "
                    "magcfg does not read (.git, the output and the cache are off limits)"]
    git(repo.root, "checkout", "-q", "-b", "gen")
    git(repo.root, "add", "-A")
    git(repo.root, "commit", "-qm", "a layer read from the output")
    git(repo.root, "checkout", "-q", "main")
    assert _against(repo, "gen", tmp_path / "r.html") == [
        line.replace(": error:", "@gen: error:", 1) for line in here]


def test_against_reads_nothing_outside_a_project_in_a_subdirectory(tmp_path: Path) -> None:
    outer = tmp_path / "mono"
    repo = make_repo(outer / "config")
    (repo.root / ".git").rename(outer / ".git")
    (outer / "other").mkdir()
    (outer / "other/k.yaml").write_text("db:\n  port: 4242\n")
    git(outer, "add", "-A")
    git(outer, "commit", "-qm", "the project in a subdirectory")
    os.symlink("../../../../other/k.yaml", repo.root / "layers/environments/dev/zz.yaml")
    here = failed_cleanly(repo.run("build", "--check")).splitlines()
    # Every command names files from the repository's top.
    assert here == ["config/layers/environments/dev/zz.yaml: error: symlink leads outside "
                    "the project (config/)"]
    git(outer, "checkout", "-q", "-b", "out")
    git(outer, "add", "-A")
    git(outer, "commit", "-qm", "a layer from outside the project")
    git(outer, "checkout", "-q", "main")
    lines = _against(repo, "out", tmp_path / "r.html")
    assert lines == [line.replace(": error:", "@out: error:", 1) for line in here]
    assert "4242" not in "".join(lines)


# ------------------------------------------------------------------ Markdown for reviewers
# `diff --format markdown` is a PR comment and `promote --pr-body` a PR body: what a pull
# request wrote (values, keys, commit authors and subjects) shows as code, never as a
# link, an image, a mention or an HTML comment.

_HOSTILE = ("x`` ![t](https://evil.example/t.png) [Approved by security]"
            "(https://evil.example/phish) @octocat <!-- ``")


def _hostile_commit(repo: Project, value: str = _HOSTILE) -> None:
    repo.write("layers/environments/staging/app.yaml",
               f'app:\n  environment: "staging"\n  name: {json.dumps(value)}\n')
    assert repo.run("build").returncode == 0
    git(repo.root, "add", "-A")
    git(repo.root, "commit", "-q", "--author", "Mallory ![a](https://evil.example/a.png) "
        "@octocat <m@example.com>", "-m", "tune ![pixel](https://evil.example/p.png) "
        "[Approved](https://evil.example/phish) @security-team <!-- hidden")


def _row(markdown: str, *first: str) -> list[str]:
    """The cells of the one table row of ``markdown`` whose first cells are ``first``."""
    rows = [table_cells(line) for line in markdown.splitlines() if line.startswith("|")]
    found = [cells for cells in rows if cells[:len(first)] == list(first)]
    assert len(found) == 1, markdown
    return found[0]


def test_diff_markdown_shows_a_value_with_backticks_as_code(repo: Project) -> None:
    _hostile_commit(repo)
    done = repo.run("diff", "staging", "production", "--format", "markdown")
    assert done.returncode == 1, done.stderr
    assert code_span(_row(done.stdout, "~", "`app.name`")[2]) == json.dumps(_HOSTILE)


def _pr_body(repo: Project) -> str:
    pr = repo.root.parent / "pr.md"
    done = repo.run("promote", "staging", "production", "--key", "app.name",
                    "--pr-body", str(pr))
    assert done.returncode == 0, done.stderr
    return pr.read_text()


def test_the_pr_body_shows_a_value_with_backticks_as_code(repo: Project) -> None:
    _hostile_commit(repo)
    body = _pr_body(repo)
    assert code_span(_row(body, "~", "`app.name`")[3]) == json.dumps(_HOSTILE)
    _, value, where, _ = _row(body, "`app.name`")
    assert code_span(value) == json.dumps(_HOSTILE)
    assert code_span(where) == "layers/environments/staging/app.yaml:3"


def test_the_pr_body_shows_commit_authors_and_subjects_as_code(repo: Project) -> None:
    _hostile_commit(repo, "shop-staging")
    blame = code_span(_row(_pr_body(repo), "`app.name`")[3])
    assert blame.startswith("commit ")
    assert blame.endswith(" by Mallory ![a](https://evil.example/a.png) @octocat: tune "
                          "![pixel](https://evil.example/p.png) "
                          "[Approved](https://evil.example/phish) @security-team <!-- hidden")


def _rendered_outside_code(markdown: str) -> list[str]:
    """What of ``markdown`` renders as other than text or code, as CommonMark with GFM
    tables reads it (links, images, HTML), and the text that renders outside code."""
    from markdown_it import MarkdownIt

    found = []
    tokens = MarkdownIt("commonmark").enable("table").parse(markdown)
    for token in [t for block in tokens for t in [block, *(block.children or [])]]:
        if token.type in ("link_open", "image", "html_inline", "html_block"):
            found.append(f"{token.type}: {token.attrs or token.content}")
        elif token.type == "text" and ("evil.example" in token.content
                                       or "@octocat" in token.content):
            found.append(f"text: {token.content}")
    return found


def test_the_pr_body_quotes_what_the_project_file_and_schema_name_as_code(
        tmp_path: Path) -> None:
    # A layer's name, a merge key and the output directory come from files a pull
    # request edits, and the PR body quotes them: in "Not promoted" and "Files changed".
    repo = make_repo(tmp_path / "shop")
    evil = "x` ![t](https://evil.example/t.png) [ok](https://evil.example/p) @octocat <b>"
    schema = json.loads(json.dumps(SCHEMA))
    schema["properties"]["db"]["properties"]["replicas"]["x-magcfg-merge-key"] = evil
    repo.write("schemas/schema.json", json.dumps(schema, indent=2) + "\n")
    repo.write("magcfg.yaml", PROJECT.replace(
        '  - name: environment\n    path: "layers/environments/{env}"',
        f'  - name: {json.dumps(evil)}\n    files: "layers/environments/{{env}}/*.yaml"'
    ).replace("output: generated", f"output: {json.dumps('out/' + evil)}"))
    dev_db = repo.root / "layers/environments/dev/db.yaml"
    dev_db.write_text(dev_db.read_text() + "  replicas: [\"r1.dev\"]\n")
    assert repo.run("build").returncode == 0
    git(repo.root, "add", "-A")
    git(repo.root, "commit", "-q", "-m", "hostile names")
    pr = tmp_path / "pr.md"
    done = repo.run("promote", "dev", "production", "--pr-body", str(pr))
    assert done.returncode == 0, done.stderr
    body = pr.read_text()
    assert _rendered_outside_code(body) == [], body
    # Still said, as code: the skipped keys' reasons and the rebuilt output.
    not_promoted = body.split("### Not promoted\n")[1]
    assert (f"- `logging.level`: layer {md_code(evil)} of production has no file for it and "
            "its files pattern names none: add it by hand") in not_promoted
    assert (f"- `db.replicas.0`: list item without its merge key {md_code(evil)}: promote it "
            "by hand") in not_promoted
    output = posixpath.normpath(f"out/{evil}")  # as the project file's paths are read
    assert f"- {md_code(f'{output}/production/')} (rebuilt)" in body
    # The plan as text quotes them as it always did.
    git(repo.root, "checkout", "-q", "main")
    plan = repo.run("promote", "dev", "production", "--dry-run").stdout
    assert (f"  logging.level: layer {evil!r} of production has no file for it") in plan


def test_the_dry_run_shows_a_terminal_escape_in_a_key_as_text(repo: Project) -> None:
    """A terminal escape in a key (the schema and the layers are the pull request's)
    or a layer file's name reaches the terminal as text in the `--dry-run` plan."""
    schema = json.loads((repo.root / "schemas/schema.json").read_text())
    schema["properties"]["app"]["properties"]["\x1b[31mred"] = {"type": "string",
                                                                 "description": "red"}
    repo.write("schemas/schema.json", json.dumps(schema))
    repo.write("layers/environments/staging/\x1b[31mapp.yaml",
               'app:\n  name: "tuned"\n  "\\e[31mred": "x"\n')
    assert repo.run("build").returncode == 0
    git(repo.root, "add", "-A")
    git(repo.root, "commit", "-q", "-m", "tune")
    plan = repo.run("promote", "staging", "production", "--key", "app.*", "--dry-run")
    assert plan.returncode == 0, plan.stderr
    assert "  app.\\x1b[31mred = " in plan.stdout, plan.stdout
    assert "from layers/environments/staging/\\x1b[31mapp.yaml:3" in plan.stdout, plan.stdout
    assert "\x1b" not in plan.stdout + plan.stderr


@pytest.mark.parametrize("glob", ["maggate.*", "it's.*", "a'\\''b", "x y", "$(reboot)"])
def test_the_command_to_run_again_reads_back_as_given(glob: str) -> None:
    """The command a PR body shows: a shell splits it back into the words given."""
    command = promote.rerun_command("staging", "production", [glob, "db"], True)
    assert shlex.split(command) == ["magcfg", "promote", "staging", "production",
                                    "--key", glob, "--key", "db", "--include-secrets"]
    assert promote.rerun_command("dev", "staging", ["maggate.*"]) == (
        "magcfg promote dev staging --key 'maggate.*'")


def test_a_key_that_is_no_file_name_is_not_promoted_into_a_file_it_would_name(
        tmp_path: Path) -> None:
    """A directory layer writes a new key to ``<directory>/<key>.yaml``: the key
    ``../../base/planted`` (a schema that allows any key) was written into the base layer,
    every environment's, by a promotion into production, and ``.hidden`` into a file no
    layer lists, its value lost."""
    repo = make_repo(tmp_path / "shop")
    schema = json.loads(json.dumps(SCHEMA))
    schema["additionalProperties"] = {"type": "object"}
    repo.write("schemas/schema.json", json.dumps(schema, indent=2) + "\n")
    repo.write("layers/environments/staging/extra.yaml",
               '"../../base/planted":\n  x: 1\n".hidden":\n  z: 2\n')
    assert repo.run("build").returncode == 0
    git(repo.root, "add", "-A")
    git(repo.root, "commit", "-q", "-m", "keys that are no file names")
    pr = tmp_path / "pr.md"
    done = repo.run("promote", "staging", "production", "--pr-body", str(pr))
    assert done.returncode == 0, done.stderr
    changed = git(repo.root, "show", "--name-only", "--format=", "HEAD").split()
    assert not any("planted" in p or ".hidden" in p for p in changed), changed
    assert not (repo.root / "layers/base/planted.yaml").exists()
    not_promoted = pr.read_text().split("### Not promoted\n")[1]
    for key in ("../../base/planted", ".hidden"):
        assert (f"layer `environment` of production has no file for it and the key "
                f"{md_code(key)} names none (a name of at most 234 bytes: no /, not "
                "hidden): add it by hand"
                ) in not_promoted, not_promoted


def test_a_key_too_long_for_a_file_name_is_left_for_a_hand_edit(tmp_path: Path) -> None:
    """A new key of a directory layer is written to ``<key>.yaml``, through
    ``.<key>.yaml.tmp-<pid>``: a key of 235 bytes or more can name no file written so
    (Linux holds 255 bytes a name, a pid is up to ten digits), and one of 300 stopped
    promote with a traceback and the file's absolute path; one of 234 is promoted."""
    repo = make_repo(tmp_path / "shop")
    schema = json.loads(json.dumps(SCHEMA))
    schema["additionalProperties"] = {"type": "object"}
    repo.write("schemas/schema.json", json.dumps(schema, indent=2) + "\n")
    fits, too_long = "k" * 234, "é" * 117 + "k"  # 235 bytes in UTF-8, 118 characters
    repo.write("layers/environments/staging/extra.yaml",
               f'"{fits}":\n  x: 1\n"{too_long}":\n  z: 2\n"{"q" * 300}":\n  w: 3\n')
    assert repo.run("build").returncode == 0
    git(repo.root, "add", "-A")
    git(repo.root, "commit", "-q", "-m", "long keys")
    pr = tmp_path / "pr.md"
    done = repo.run("promote", "staging", "production", "--pr-body", str(pr))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    changed = git(repo.root, "show", "--name-only", "--format=", "HEAD").split()
    assert f"layers/environments/production/{fits}.yaml" in changed, changed
    not_promoted = pr.read_text().split("### Not promoted\n")[1]
    for key in (too_long, "q" * 300):
        assert (f"the key {md_code(key)} names none (a name of at most 234 bytes: no /, "
                "not hidden): add it by hand") in not_promoted, not_promoted
