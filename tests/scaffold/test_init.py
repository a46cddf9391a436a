"""``magcfg init``: from nothing (or an existing repository) to a green ``build --check``."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ..conftest import REPO, Project, failed_cleanly, own_pytest_env, tree_state


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True,
                          text=True).stdout


def _repo(tmp_path: Path) -> Project:
    project = Project(tmp_path / "repo")
    project.root.mkdir()
    _git(project.root, "init", "-q")
    return project


def test_init_in_an_empty_repository_builds_and_checks_green(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    done = repo.run("init", "--env", "dev", "--env", "prod")
    assert done.returncode == 0, done.stderr
    assert "built dev, prod: refine schemas/config.schema.json, then commit" in done.stderr
    for rel in ("magcfg.yaml", "layers/base/app.yaml", "layers/environments/dev/app.yaml",
                "layers/secrets/prod/.gitkeep", "schemas/config.schema.json",
                ".github/workflows/magcfg.yml", ".pre-commit-config.yaml",
                "generated/dev/config.json", "generated/prod/manifest.json"):
        assert (repo.root / rel).is_file(), rel
    check = repo.run("build", "--check")
    assert check.returncode == 0, check.stderr
    assert json.loads((repo.root / "generated/prod/config.json").read_text()) == {
        "app": {"environment": "prod", "log_level": "info", "name": "repo"}}
    # The pipeline and hook files are what their tools read; they run the check.
    ci = yaml.safe_load((repo.root / ".github/workflows/magcfg.yml").read_text())
    assert [s for s in ci["jobs"]["config"]["steps"] if "run" in s][1:3] == [
        {"run": "magcfg build --check"}, {"run": "magcfg lint"}]
    hook = yaml.safe_load((repo.root / ".pre-commit-config.yaml").read_text())
    assert [h["entry"] for h in hook["repos"][0]["hooks"]] == [
        "magcfg build --check --quiet", "magcfg lint"]
    # Committed as git sees it: the build cache is ignored, generated/ is not.
    _git(repo.root, "add", "-A")
    tracked = _git(repo.root, "ls-files").split()
    assert "generated/dev/config.json" in tracked
    assert not [p for p in tracked if p.startswith(".magcfg-cache")]
    assert (repo.root / ".magcfg-cache").is_dir()


def test_init_writes_names_yaml_would_read_otherwise_as_text(tmp_path: Path) -> None:
    """A directory named ``yes`` and environments named ``on``, ``n`` or ``1`` are text:
    written plain, the first three are refused (YAML 1.1 reads a boolean, 1.2 text) and
    ``1`` is a number. init stopped on its own starter layers, or wrote the project file
    and stopped at the first build, so that a second init refused the project file."""
    top = tmp_path / "repo"
    (top / "yes").mkdir(parents=True)
    _git(top, "init", "-q")
    done = Project(top / "yes").run("init", "--env", "on", "--env", "1", "--env", "n",
                                    "--env", "dev", "--ci", "none")
    assert done.returncode == 0, done.stderr
    for env in ("on", "1", "n", "dev"):
        assert json.loads((top / f"yes/generated/{env}/config.json").read_text()) == {
            "app": {"environment": env, "log_level": "info", "name": "yes"}}
    text = (top / "yes/magcfg.yaml").read_text()
    assert 'environments: ["on", "1", "n", dev]\n' in text
    assert Project(top / "yes").run("build", "--check").returncode == 0


def test_init_infers_the_schema_of_existing_layers(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    repo.write(".gitignore", "node_modules/")
    repo.write("layers/base/db.yaml", "db:\n  host: db\n  port: 5432\n  tags: [a, b]\n")
    repo.write("layers/environments/dev/db.yaml", "db:\n  host: localhost\n")
    repo.write("layers/secrets/dev/db.yaml", "db:\n  password: env://DB_PASSWORD\n")
    repo.write("layers/secrets/prod/db.yaml", "db:\n  password: vault://secret/db#password\n")
    done = repo.run("init", "--env", "dev", "--env", "prod", "--ci", "gitlab")
    assert done.returncode == 0, done.stderr
    assert "wrote layers/base/app.yaml" not in done.stderr
    schema = json.loads((repo.root / "schemas/config.schema.json").read_text())
    db = schema["properties"]["db"]
    assert db["additionalProperties"] is False
    assert db["properties"]["password"] == {"$ref": "#/$defs/secret_ref"}
    assert schema["$defs"]["secret_ref"]["x-magcfg-secret"] is True
    assert db["properties"]["port"] == {"type": "integer"}
    assert db["properties"]["tags"] == {"type": "array", "items": {"type": "string"}}
    assert (repo.root / ".gitignore").read_text() == (
        "node_modules/\n# magcfg's build cache (authenticated, local to each checkout)\n"
        ".magcfg-cache/\n")
    assert (repo.root / ".gitlab-ci.yml").is_file()
    assert repo.run("build", "--check").returncode == 0
    manifest = json.loads((repo.root / "generated/prod/manifest.json").read_text())
    assert manifest["secret_keys"] == ["db.password"]


def test_init_refuses_an_existing_project_and_writes_nothing(mini: Project) -> None:
    before = tree_state(mini.root)
    done = mini.run("init")
    assert failed_cleanly(done, 1) == (
        "magcfg.yaml: error: a project file exists already: magcfg init starts a new "
        "project only\n")
    assert tree_state(mini.root) == before


def test_init_with_layers_that_do_not_merge_writes_nothing(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    repo.write("layers/base/a.yaml", "db:\n  host: a\n")
    repo.write("layers/base/b.yaml", "db:\n  host: b\n")
    before = tree_state(repo.root)
    done = repo.run("init")
    assert failed_cleanly(done, 1) == (
        "layers/base/b.yaml:2: error: set twice in layer 'base' (layers/base/a.yaml, "
        "layers/base/b.yaml): one file per value [db.host]\n")
    assert tree_state(repo.root) == before


def test_init_with_inputs_git_ignores_writes_nothing(tmp_path: Path) -> None:
    """The first build refuses an input git ignores: init wrote every file first, and
    a second init then stopped at the project file it had written."""
    repo = _repo(tmp_path)
    repo.write(".gitignore", "*.json\n")
    repo.write("layers/base/db.local.yaml", "db:\n  host: a\n")
    repo.write("layers/.gitignore", "*.local.yaml\n")
    before = tree_state(repo.root)
    done = repo.run("init", "--env", "dev")
    tail = ("so a clone of the repository, as CI builds, lacks it: commit it with `git add "
            "-f`, or take it out of that rule\n")
    out = ("is ignored by git (.gitignore:1:*.json): the build writes it to be committed, "
           "and a clone of the repository, as CI checks and delivers it, lacks it: take it "
           "out of that rule (a `!` rule after it)\n")
    assert failed_cleanly(done, 1) == (
        f"generated/dev/config.json: error: {out}"
        f"generated/dev/manifest.json: error: {out}"
        "layers/base/db.local.yaml: error: is ignored by git (layers/.gitignore:1:"
        f"*.local.yaml), {tail}"
        f"schemas/config.schema.json: error: is ignored by git (.gitignore:1:*.json), {tail}")
    assert tree_state(repo.root) == before


def test_init_with_a_file_it_adds_to_that_it_cannot_write_writes_nothing(
        tmp_path: Path) -> None:
    """.gitignore, .gitattributes and the editor settings get init's lines when they
    exist, and a symlink is never written through: one of them a link stopped init
    after the project file and the layers were written, and a second init stopped at
    the project file."""
    repo = _repo(tmp_path)
    repo.write("attributes", "* text=auto\n")
    (repo.root / ".gitattributes").symlink_to("attributes")
    repo.write(".vscode/real.json", "{}\n")
    (repo.root / ".vscode/settings.json").symlink_to("real.json")
    before = tree_state(repo.root)
    done = repo.run("init", "--env", "dev")
    assert failed_cleanly(done, 1) == (
        ".gitattributes: error: is a symbolic link; magcfg writes only regular files\n"
        ".vscode/settings.json: error: is a symbolic link; magcfg writes only regular "
        "files\n")
    assert tree_state(repo.root) == before


def test_init_where_git_ignores_the_output_writes_nothing(tmp_path: Path) -> None:
    # A repository that ignores generated/ would never commit the artifact: its first CI
    # run would fail `build --check` with "stale", which `magcfg build` cannot mend.
    repo = _repo(tmp_path)
    repo.write(".gitignore", "generated/\n")
    before = tree_state(repo.root)
    err = failed_cleanly(repo.run("init", "--env", "dev"))
    assert err.startswith("generated/dev/config.json: error: is ignored by git "
                          "(.gitignore:1:generated/): the build writes it to be committed")
    assert tree_state(repo.root) == before


def test_init_refuses_a_bad_environment_name(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    before = tree_state(repo.root)
    done = repo.run("init", "--env", "Prod")
    assert failed_cleanly(done, 2) == (
        "error: environment names must match ^[a-z0-9][a-z0-9_-]*$, not 'Prod'\n")
    assert tree_state(repo.root) == before


def test_init_refuses_a_directory_that_does_not_exist(tmp_path: Path) -> None:
    """Created by neither: a mistyped path would leave a stray directory, and the
    project's repository is made by ``git init`` anyway."""
    done = Project(tmp_path).run("init", "no/such")
    assert failed_cleanly(done, 2) == (
        "error: no/such does not exist: create it first (git init no/such)\n")
    assert not (tmp_path / "no").exists()
    # In a repository, the project goes below its top, as README's `magcfg init
    # platform/config`: git init there would make another repository.
    repo = _repo(tmp_path)
    done = repo.run("init", "team a/config")
    assert failed_cleanly(done, 2) == (
        "error: team a/config does not exist: create it first (mkdir -p 'team a/config')\n")
    assert _shell(repo.root, "mkdir -p 'team a/config'", dict(os.environ)).returncode == 0
    assert repo.run("init", "team a/config", "--ci", "none").returncode == 0
    assert (repo.root / ".pre-commit-config.yaml").exists()
    (tmp_path / "file").write_text("")
    assert failed_cleanly(Project(tmp_path).run("init", "file"), 2) == (
        "error: file is not a directory\n")


def test_the_overlay_hashes_what_it_reads(tmp_path: Path) -> None:
    """The files about to be written stand in for the disk, for the schema's digest as
    for its bytes."""
    import hashlib

    from magcfg.scaffold.init import _Overlay

    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas/on-disk.json").write_bytes(b"{}")
    overlay = _Overlay(tmp_path, {"schemas/new.json": b'{"type": "object"}',
                                  "schemas/on-disk.json": b"[]"})
    for path in ("schemas/new.json", "schemas/on-disk.json"):
        data = overlay.read(path)
        assert overlay.sha256(path) == (hashlib.sha256(data).hexdigest(), len(data))


# ---------------------------------------------------------------- a project below the top

ODD = "odd/my dir#1: x"  # a space, a ` #` and a `: `: YAML comments and keys, shell words


def _repo_with_origin(tmp_path: Path, where: str = ".") -> tuple[Path, Path]:
    """A bare origin and a work tree whose remote it is, with ``where`` made below the
    top, as a CI runner's repository has them."""
    origin = tmp_path / "origin.git"
    _git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    top = tmp_path / "repo"
    (top / where).mkdir(parents=True)
    _git(top, "init", "-q", "-b", "main")
    _committer(top)
    _git(top, "remote", "add", "origin", str(origin))
    return origin, top


def _committer(root: Path) -> None:
    _git(root, "config", "user.email", "a@b.c")
    _git(root, "config", "user.name", "A")


def _monorepo(tmp_path: Path) -> Path:
    """A repository (``mono``) whose project ``magcfg init`` made below its top, in
    ``platform/config``, with environment ``dev`` and no CI files."""
    top = tmp_path / "mono"
    (top / "platform/config").mkdir(parents=True)
    _git(top, "init", "-q", "-b", "main")
    _committer(top)
    assert Project(top).run("init", "platform/config", "--env", "dev", "--ci",
                            "none").returncode == 0
    return top


def _tool_env(tmp_path: Path) -> dict[str, str]:
    # pre-commit offline (a `repo: local` hook of `language: system` installs nothing),
    # and the hook's `magcfg` on PATH, as for a user who installed it.
    from ..conftest import MAGCFG

    return {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"),
            "PRE_COMMIT_COLOR": "never",
            "PATH": f"{MAGCFG.parent}{os.pathsep}{os.environ.get('PATH', '')}"}


_EVENTS = {
    "push": {"GITHUB_EVENT_NAME": "push", "CI_DEFAULT_BRANCH": "main",
             "CI_PIPELINE_SOURCE": "push", "CI_PIPELINE_EVENT": "push",
             "CI_REPO_DEFAULT_BRANCH": "main"},
    "pull_request": {"GITHUB_EVENT_NAME": "pull_request", "GITHUB_BASE_REF": "main",
                     "CI_DEFAULT_BRANCH": "main", "CI_PIPELINE_SOURCE": "merge_request_event",
                     "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
                     "CI_COMMIT_TARGET_BRANCH": "main", "CI_PIPELINE_EVENT": "pull_request",
                     "CI_REPO_DEFAULT_BRANCH": "main"},
}
"""What GitHub, GitLab and Woodpecker set for a pipeline of a push to main or of a pull
(merge) request into main (each runner reads only its own)."""


def _runner_env(tmp_path: Path, event: str | None = "pull_request", **extra: str
                ) -> dict[str, str]:
    """The environment a runner gives a pipeline of ``event`` (none: a user's shell),
    over ``_tool_env``'s; the pytest it runs is a process of its own."""
    return {**own_pytest_env(_tool_env(tmp_path)), **(_EVENTS[event] if event else {}),
            **extra}


def _commit(root: Path, env: dict[str, str], message: str) -> subprocess.CompletedProcess[str]:
    _git(root, "add", "-A")
    return subprocess.run(["git", "commit", "-qm", message], cwd=root, env=env,
                          capture_output=True, text=True, timeout=600, check=False)


def _shell(root: Path, command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A pipeline's command as its runner runs it: by a shell, at the repository's top."""
    return subprocess.run(["sh", "-c", command], cwd=root, env=env, capture_output=True,
                          text=True, timeout=300, check=False)


def test_docs_check_advises_a_command_that_runs_where_it_ran(tmp_path: Path) -> None:
    """docs --check names the page as given, from where it runs (the project's
    directory, one below it, the top): the advised command names the project the same
    way, and run there as said, writes the page the check reads. It named the project
    from the top and the page from here: run in a directory below the top, neither
    place had both."""
    top = _monorepo(tmp_path)
    advice = re.compile(r"run `([^`]*)`")
    (top / "platform/config/docs").mkdir()
    (top / "platform/config/docs/sub").mkdir()
    for here, page, given in [
            ("platform/config", "docs/keys.md", ()),
            ("platform/config/docs/sub", "keys.md", ("--project", "../../magcfg.yaml")),
            (".", "platform/config/docs/keys.md", ("--project", "platform/config/magcfg.yaml")),
            ("platform/config/docs/sub", str(tmp_path / "keys.md"), ()),
            # A page named with `..`, which a write refuses (it would undo a link's
            # detour): the advice names it by where it is.
            ("platform/config/docs/sub", "../keys.md", ())]:
        cwd = top / here
        (cwd / page).write_text("old\n")
        stale = Project(cwd).run("docs", "--check", "--out", page, *given)
        assert stale.returncode == 1, stale.stderr
        written = _shell(cwd, advice.findall(stale.stderr)[0], _tool_env(tmp_path))
        assert written.returncode == 0, (here, stale.stderr, written.stderr)
        assert Project(cwd).run("docs", "--check", "--out", page, *given).returncode == 0, \
            (here, stale.stderr)


def test_init_in_a_monorepo_gates_commits_and_ci_from_the_top(tmp_path: Path) -> None:
    """pre-commit and CI read their files at the repository's top and run from there: the
    hook must match the project's paths and both must name the project. Before, they were
    written into the project directory, where neither tool looks, and ran without
    ``--project``: a stale generated/ was committed."""
    top = tmp_path / "mono"
    (top / ODD).mkdir(parents=True)
    _git(top, "init", "-q")
    _committer(top)
    env = _tool_env(tmp_path)
    done = Project(top).run("init", ODD, "--env", "dev", "--env", "prod")
    assert done.returncode == 0, done.stderr
    workflow = ".github/workflows/magcfg-odd-my%20dir%231%3A%20x.yml"
    assert f"wrote {workflow}\n" in done.stderr
    assert "wrote .pre-commit-config.yaml\n" in done.stderr
    assert not (top / ODD / ".github").exists()
    assert not (top / ODD / ".pre-commit-config.yaml").exists()
    # VS Code opened at the top reads the settings there, and resolves paths from there.
    assert "wrote .vscode/settings.json\n" in done.stderr
    assert not (top / ODD / ".vscode").exists()
    assert json.loads((top / ".vscode/settings.json").read_text())["yaml.schemas"] == {
        f"{ODD}/schemas/layer.schema.json": [f"{ODD}/layers/{layer}/**/*.yaml" for layer in (
            "base", "environments", "secrets")],
        f"{ODD}/schemas/magcfg-project.schema.json": [f"{ODD}/magcfg.yaml",
                                                      f"{ODD}/magcfg.yml"]}
    steps = yaml.safe_load((top / workflow).read_text())["jobs"]["config"]["steps"]
    run, lint = [step["run"] for step in steps if "run" in step][1:3]  # after the install
    assert run == "magcfg build --check --project 'odd/my dir#1: x/magcfg.yaml'"
    assert lint == "magcfg lint --project 'odd/my dir#1: x/magcfg.yaml'"
    hook = yaml.safe_load((top / ".pre-commit-config.yaml").read_text())["repos"][0]["hooks"][0]
    assert hook["files"] == r"^odd/my\ dir\#1:\ x/(magcfg\.ya?ml|layers/|schemas/|generated/)"

    install = subprocess.run([str(Path(sys.executable).with_name("pre-commit")), "install"],
                             cwd=top, env=env, capture_output=True, text=True, check=False)
    assert install.returncode == 0, install.stdout + install.stderr
    first = _commit(top, env, "init")
    assert first.returncode == 0, first.stdout + first.stderr
    assert _shell(top, run, env).returncode == 0

    layer = top / ODD / "layers/base/app.yaml"
    layer.write_text(layer.read_text().replace("log_level: info", "log_level: debug"))
    stale = _commit(top, env, "layer edit, no build")
    assert stale.returncode == 1, stale.stdout + stale.stderr
    said = stale.stdout + stale.stderr  # git passes on the hook's output
    # Named from the top, where the hook and CI run, as lint names files.
    assert "Failed" in said and f"stale: {ODD}/generated/dev/config.json" in said, said
    ci = _shell(top, run, env)
    assert ci.returncode == 1 and f"stale: {ODD}/generated/dev/config.json" in ci.stderr, \
        ci.stderr

    # The command the hook says to run, run where the hook runs: at the top.
    (command,) = re.findall(r"does not match the layers: run `(.*)`", said)
    assert command == "magcfg build --project 'odd/my dir#1: x/magcfg.yaml'"
    built = _shell(top, command, env)
    assert built.returncode == 0, built.stderr
    assert _commit(top, env, "layer edit, built").returncode == 0
    assert _shell(top, run, env).returncode == 0
    # A file outside every project is not the build hook's business; lint checks it.
    (top / "NOTES.md").write_text("notes\n")
    other = _commit(top, env, "notes")
    said = other.stdout + other.stderr
    assert other.returncode == 0 and "the layers)...(no files to check)Skipped" in said, said
    assert _shell(top, lint, env).returncode == 0
    # A secret committed anywhere in the repository: the hook and the CI step refuse it,
    # without printing it, whatever its bytes.
    (top / "app").mkdir()
    (top / "app/prod.env").write_bytes(b"\0\nDB_PASSWORD=CANARYinit1\n")
    leak = _commit(top, env, "a secret")
    said = leak.stdout + leak.stderr
    assert leak.returncode == 1 and "app/prod.env:2:13: MAG002 error" in said, said
    ci = _shell(top, lint, env)
    assert ci.returncode == 1 and "app/prod.env:2:13: MAG002" in ci.stdout, ci.stdout
    assert "CANARYinit1" not in said + ci.stdout + ci.stderr


def test_the_build_names_files_from_the_top_as_lint_does(tmp_path: Path) -> None:
    """In a monorepo the build's errors, warnings and file names are from the repository's
    top, wherever it runs, as lint's are: the same file named alike by both hooks, and a
    name the user at the top (pre-commit, CI) can open. At the top, names are as
    written."""
    top = tmp_path / "mono"
    (top / "platform/config").mkdir(parents=True)
    _git(top, "init", "-q")
    _committer(top)
    done = Project(top).run("init", "platform/config", "--ci", "none")
    assert done.returncode == 0, done.stderr
    _git(top, "add", "-A")
    _git(top, "commit", "-qm", "init")
    below = Project(top / "platform/config")
    layer = below.root / "layers/base/app.yaml"
    layer.write_text(layer.read_text() + "  password: hunter2-CANARYtop\n")
    expected = [f"platform/config/layers/base/app.yaml:{len(layer.read_text().splitlines())}"]
    lint = Project(top).run("lint", "--project", "platform/config/magcfg.yaml")
    assert lint.returncode == 1 and lint.stdout.startswith(expected[0] + ":"), lint.stdout
    for where, project in ((Project(top), "platform/config/magcfg.yaml"), (below, "magcfg.yaml")):
        built = where.run("build", "--check", "--quiet", "--project", project)
        assert built.returncode == 1, built.stderr
        assert built.stderr.startswith(expected[0] + ": error: unknown key 'password'"), \
            built.stderr
        assert "CANARYtop" not in built.stderr
    layer.write_text(layer.read_text().replace("  password: hunter2-CANARYtop\n", "")
                     .replace("log_level: info", "log_level: debug"))
    stale = Project(top).run("build", "--check", "--project", "platform/config/magcfg.yaml")
    assert "stale: platform/config/generated/dev/config.json\n" in stale.stderr, stale.stderr
    built = below.run("build", "--env", "dev")
    assert built.returncode == 0, built.stderr
    assert "wrote platform/config/generated/dev/config.json\n" in built.stderr, built.stderr
    # The project file itself, when it does not load.
    project_file = below.root / "magcfg.yaml"
    project_file.write_text(project_file.read_text() + "bogus: 1\n")
    failed = Project(top).run("build", "--project", "platform/config/magcfg.yaml")
    assert failed.stderr.startswith("platform/config/magcfg.yaml:"), failed.stderr
    # A project at the top: its names as written.
    mini = Project(tmp_path / "alone")
    (mini.root).mkdir()
    _git(mini.root, "init", "-q")
    assert mini.run("init", "--ci", "none").returncode == 0
    app = mini.root / "layers/base/app.yaml"
    app.write_text(app.read_text().replace("log_level: info", "log_level: debug"))
    stale = mini.run("build", "--check")
    assert "stale: generated/dev/config.json\n" in stale.stderr, stale.stderr


def test_in_a_monorepo_the_commands_errors_advise_run_at_the_top(tmp_path: Path) -> None:
    """Where the hook and CI run, at the top, a project below it is found by --project
    alone: each command an error advises (sign, build, docs; verify's, sign's, publish's
    and build --since's) names it, and works run there as said. They said `magcfg sign`,
    which at the top finds no project."""
    top = _monorepo(tmp_path)
    _git(top, "add", "-A")
    _git(top, "commit", "-qm", "init")
    keys = tmp_path / "keys"
    assert Project(top).run("keys", "generate", "--out", str(keys)).returncode == 0
    env = {**_tool_env(tmp_path), "MAGCFG_SIGNING_KEY": (keys / "magcfg.key").read_text()}
    project = ("--project", "platform/config/magcfg.yaml")
    found_by = " --project platform/config/magcfg.yaml"
    advice = re.compile(r"run `([^`]*)`")

    def verify() -> subprocess.CompletedProcess[str]:
        return Project(top).run("verify", *project, "--public-key", str(keys / "magcfg.pub"))

    unsigned = verify()
    assert unsigned.returncode == 1
    assert advice.findall(unsigned.stderr) == [f"magcfg sign{found_by}"], unsigned.stderr
    published = Project(top).run("publish", *project, "--branch", "deploy", "--public-key",
                                 str(keys / "magcfg.pub"))
    assert published.returncode == 1
    assert advice.findall(published.stderr) == [f"magcfg sign{found_by}"], published.stderr
    signed = _shell(top, advice.findall(unsigned.stderr)[0], env)
    assert signed.returncode == 0, signed.stderr
    assert verify().returncode == 0
    manifest = top / "platform/config/generated/dev/manifest.json"
    manifest.unlink()
    for failed in (verify(), _shell(top, f"magcfg sign{found_by}", env)):
        assert failed.returncode == 1
        assert advice.findall(failed.stderr)[0] == f"magcfg build{found_by}", failed.stderr
    assert _shell(top, f"magcfg build{found_by}", env).returncode == 0
    # docs --check names the page as given (the operator's file).
    stale = Project(top).run("docs", "--check", "--out", "platform/config/keys.md", *project)
    assert stale.returncode == 1
    assert advice.findall(stale.stderr) == [
        f"magcfg docs{found_by} --out platform/config/keys.md"], stale.stderr
    written = _shell(top, advice.findall(stale.stderr)[0], env)
    assert written.returncode == 0, written.stderr
    assert Project(top).run("docs", "--check", "--out", "platform/config/keys.md",
                            *project).returncode == 0
    # build --check --since: a branch whose version is below the target's.
    _git(top, "add", "-A")
    _git(top, "commit", "-qm", "keys")
    _git(top, "switch", "-qc", "behind")
    layer = top / "platform/config/layers/base/app.yaml"
    layer.write_text(layer.read_text().replace("log_level: info", "log_level: debug"))
    assert Project(top).run("build", *project).returncode == 0
    _git(top, "commit", "-qam", "debug")
    _git(top, "switch", "-q", "main")
    back = Project(top).run("build", "--check", *project, "--since", "behind")
    assert back.returncode == 1
    assert f"(`magcfg build{found_by}`)" in back.stderr, back.stderr


def test_verify_artifact_advises_the_sign_of_the_project_it_is_the_output_of(
        tmp_path: Path) -> None:
    """``verify --artifact DIR`` names DIR as given, from where it runs: the command it
    advises finds, run there, the project whose output DIR is, by ``--project`` where
    that is not the project found there (a monorepo's, at the top); an artifact of no
    project found here (pulled from a registry) is signed in the project that built it.
    It advised `magcfg sign`, which at the top finds no project."""
    top = _monorepo(tmp_path)
    keys = tmp_path / "keys"
    assert Project(top).run("keys", "generate", "--out", str(keys)).returncode == 0
    env = {**_tool_env(tmp_path), "MAGCFG_SIGNING_KEY": (keys / "magcfg.key").read_text()}
    advice = re.compile(r"run `([^`]*)`")
    pulled = tmp_path / "pulled"
    (top / "platform/config/generated/dev").rename(pulled)
    (top / "platform/config/generated/dev").symlink_to(pulled)  # where sign writes

    def verify(where: Path, artifact: str) -> subprocess.CompletedProcess[str]:
        return Project(where).run("verify", "--artifact", artifact, "--env", "dev",
                                  "--public-key", str(keys / "magcfg.pub"))

    unsigned = verify(tmp_path, str(pulled))
    assert unsigned.stderr == (f"{pulled}/manifest.json.sig: error: not found: the artifact "
                               "is not signed (run `magcfg sign` in the project that built "
                               "it)\n"), unsigned.stderr
    (top / "platform/config/generated/dev").unlink()
    pulled.rename(top / "platform/config/generated/dev")
    for where, artifact, command in (
            (top, "platform/config/generated/dev",
             "magcfg sign --project platform/config/magcfg.yaml"),
            (top / "platform/config", "generated/dev", "magcfg sign"),
            (top / "platform", "config/generated/dev",
             "magcfg sign --project config/magcfg.yaml"),
            (tmp_path, str(top / "platform/config/generated/dev"),
             f"magcfg sign --project {top}/platform/config/magcfg.yaml")):
        unsigned = verify(where, artifact)
        assert unsigned.returncode == 1, unsigned.stderr
        assert advice.findall(unsigned.stderr) == [command], unsigned.stderr
    signed = _shell(top, "magcfg sign --project platform/config/magcfg.yaml", env)
    assert signed.returncode == 0, signed.stderr
    assert verify(top, "platform/config/generated/dev").returncode == 0
    # Not made of the signed files: the command that writes it, sign the ConfigMap, the
    # build the kustomization.
    for name, command in (("configmap.yaml", "sign"), ("kustomization.yaml", "build")):
        changed = top / "platform/config/generated/dev" / name
        changed.write_text(changed.read_text() + "# changed\n")
        refused = verify(top, "platform/config/generated/dev")
        assert advice.findall(refused.stderr) == [
            f"magcfg {command} --project platform/config/magcfg.yaml"], refused.stderr
        assert _shell(top, advice.findall(refused.stderr)[0], env).returncode == 0
        assert verify(top, "platform/config/generated/dev").returncode == 0, name


def test_init_below_the_top_names_files_from_the_top(tmp_path: Path) -> None:
    """init names what it writes and keeps, and its errors' files, from the repository's
    top as every other command does (project.FromTop), wherever it runs: a name opens
    the file there. It named them from the project directory
    (``../../.pre-commit-config.yaml``, ``magcfg.yaml``)."""
    top = tmp_path / "mono"
    for project in ("platform/config", "svc", "other"):
        (top / project).mkdir(parents=True)
    _git(top, "init", "-q")
    done = Project(top / "platform").run("init", "config", "--env", "dev", "--ci", "gitlab")
    assert done.returncode == 0, done.stderr
    written = [line.removeprefix("wrote ") for line in done.stderr.splitlines()
               if line.startswith("wrote ")]
    assert {"platform/config/magcfg.yaml", "platform/config/layers/base/app.yaml",
            "platform/config/generated/dev/config.json", ".gitlab-ci.yml",
            ".pre-commit-config.yaml", ".vscode/settings.json"} <= set(written)
    assert all((top / name).is_file() for name in written), written
    assert done.stderr.endswith("built dev: refine platform/config/schemas/config.schema.json,"
                                " then commit\n")
    again = Project(top).run("init", "platform/config")
    assert failed_cleanly(again) == ("platform/config/magcfg.yaml: error: a project file "
                                     "exists already: magcfg init starts a new project only\n")
    Project(top).write("svc/layers/base/a.yaml", "db:\n  host: a\n")
    Project(top).write("svc/layers/base/b.yaml", "db:\n  host: b\n")
    before = tree_state(top)
    # The file of each error from the top; paths in its text, as the build says them.
    assert failed_cleanly(Project(top / "svc").run("init")) == (
        "svc/layers/base/b.yaml:2: error: set twice in layer 'base' (layers/base/a.yaml, "
        "layers/base/b.yaml): one file per value [db.host]\n")
    assert tree_state(top) == before
    # A file at the top it cannot add to: named from the top, not as the project's.
    (top / ".vscode/settings.json").unlink()
    (top / ".vscode/settings.json").symlink_to("nowhere.json")
    before = tree_state(top)
    assert failed_cleanly(Project(top / "other").run("init")) == (
        ".vscode/settings.json: error: dangling symlink: its target does not exist\n")
    assert tree_state(top) == before


def test_a_second_project_gets_its_own_pipeline_and_the_hook_to_add(tmp_path: Path) -> None:
    top = tmp_path / "mono"
    for project in ("platform/config", ODD):
        (top / project).mkdir(parents=True)
    _git(top, "init", "-q")
    assert Project(top).run("init", "platform/config").returncode == 0
    config = (top / ".pre-commit-config.yaml").read_bytes()
    done = Project(top / "platform").run("init", f"../{ODD}")
    assert done.returncode == 0, done.stderr
    assert (top / ".github/workflows/magcfg-platform-config.yml").is_file()
    assert "wrote .github/workflows/magcfg-odd-my%20dir%231%3A%20x.yml\n" in done.stderr
    assert "kept .pre-commit-config.yaml (exists)\n" in done.stderr
    assert (top / ".pre-commit-config.yaml").read_bytes() == config
    # The editor settings, at the top too, are merged: each project's schemas on its files.
    assert "wrote .vscode/settings.json\n" in done.stderr
    schemas = json.loads((top / ".vscode/settings.json").read_text())["yaml.schemas"]
    assert schemas[f"{ODD}/schemas/layer.schema.json"][0] == f"{ODD}/layers/base/**/*.yaml"
    assert schemas["platform/config/schemas/magcfg-project.schema.json"] == [
        "platform/config/magcfg.yaml", "platform/config/magcfg.yml"]
    assert len(schemas) == 4
    note = done.stderr.split("kept .pre-commit-config.yaml (exists)\n")[1]
    assert note.startswith("to check odd/my dir#1: x before each commit, add this under "
                           "`repos:` in .pre-commit-config.yaml (docs/cli.md, init):\n")
    # The block, added as told, gives the repository both projects' hooks.
    block = note.split(":\n", 1)[1].split("built ")[0]
    (top / ".pre-commit-config.yaml").write_bytes(config + block.encode())
    hooks = [h for r in yaml.safe_load((top / ".pre-commit-config.yaml").read_text())["repos"]
             for h in r["hooks"]]
    builds = [h for h in hooks if h["id"] == "magcfg-build"]
    assert [shlex.split(h["entry"])[-1] for h in builds] == [
        "platform/config/magcfg.yaml", f"{ODD}/magcfg.yaml"]
    assert [bool(re.match(h["files"], f"{ODD}/layers/base/app.yaml")) for h in builds] == [
        False, True]
    assert [h["entry"] for h in hooks if h["id"] == "magcfg-lint"] == [
        "magcfg lint --project platform/config/magcfg.yaml",
        f"magcfg lint --project '{ODD}/magcfg.yaml'"]


def test_gitlab_and_woodpecker_in_a_monorepo_run_the_project_from_the_top(
        tmp_path: Path) -> None:
    top = tmp_path / "mono"
    for project in ("a", ODD):
        (top / project).mkdir(parents=True)
    _git(top, "init", "-q")
    env = _tool_env(tmp_path)
    assert Project(top).run("init", "a", "--ci", "woodpecker").returncode == 0
    steps = yaml.safe_load((top / ".woodpecker/magcfg-a.yml").read_text())["steps"]
    assert steps[0]["commands"][1:3] == ["magcfg build --check --project a/magcfg.yaml",
                                         "magcfg lint --project a/magcfg.yaml"]
    for command in steps[0]["commands"][1:3]:
        assert _shell(top, command, env).returncode == 0
    assert Project(top).run("init", "a/../" + ODD, "--ci", "gitlab").returncode == 0
    jobs = yaml.safe_load((top / ".gitlab-ci.yml").read_text())
    assert list(jobs) == ["magcfg-odd-my%20dir%231%3A%20x"]
    for command in jobs["magcfg-odd-my%20dir%231%3A%20x"]["script"][1:3]:
        assert shlex.split(command)[-2:] == ["--project", f"{ODD}/magcfg.yaml"]
        assert _shell(top, command, env).returncode == 0
    (top / ODD / "magcfg.yaml").unlink()
    again = Project(top).run("init", ODD, "--ci", "gitlab")
    assert "kept .gitlab-ci.yml (exists)\nkept .pre-commit-config.yaml" in (
        again.stderr)
    assert ("to check odd/my dir#1: x in CI, add this job to .gitlab-ci.yml "
            "(docs/cli.md, init):\nmagcfg-odd-my%20dir%231%3A%20x:\n") in again.stderr


def _pipelines(top: Path, order: tuple[str, ...], ci: str) -> dict[str, str]:
    """The repository's pipeline files after ``init`` of each project in ``order``: name
    -> the project its command checks."""
    for project in order:
        (top / project).mkdir(parents=True)
    _git(top, "init", "-q")
    for project in order:
        done = Project(top).run("init", project, "--ci", ci)
        assert done.returncode == 0, done.stderr
    return {path.relative_to(top).as_posix(): shlex.split(
        re.findall(r"magcfg build --check .*", path.read_text())[0])[-1]
        for path in sorted((top / ".github/workflows").glob("*.yml"))}


def test_projects_whose_paths_differ_only_in_slashes_and_dashes_get_their_own_pipeline(
        tmp_path: Path) -> None:
    """``a/b`` and ``a-b`` were both ``magcfg-a-b``: the second project's ``init`` kept
    the first's pipeline and reported it, so CI never checked the second."""
    ab, a_dash_b = "a/b", "a-b"
    expected = {".github/workflows/magcfg-a-b.yml": f"{ab}/magcfg.yaml",
                ".github/workflows/magcfg-a--b.yml": f"{a_dash_b}/magcfg.yaml"}
    # The same names, whichever project comes first.
    assert _pipelines(tmp_path / "one", (ab, a_dash_b), "github") == expected
    assert _pipelines(tmp_path / "two", (a_dash_b, ab), "github") == expected
    # GitLab: the job the second project is told to add does not take the first's name.
    top = tmp_path / "gitlab"
    _pipelines(top, (ab,), "gitlab")
    (top / a_dash_b).mkdir()
    done = Project(top).run("init", a_dash_b, "--ci", "gitlab")
    note = done.stderr.split("add this job to .gitlab-ci.yml (docs/cli.md, init):\n")[1]
    with (top / ".gitlab-ci.yml").open("a") as ci:
        ci.write(note.split("to check ")[0])
    jobs = yaml.safe_load((top / ".gitlab-ci.yml").read_text())
    assert {name: shlex.split(job["script"][1])[-1] for name, job in jobs.items()} == {
        "magcfg-a-b": f"{ab}/magcfg.yaml", "magcfg-a--b": f"{a_dash_b}/magcfg.yaml"}


def test_project_slugs_are_one_per_path() -> None:
    from magcfg.scaffold.init import project_slug

    paths = ["a/b", "a-b", "a--b", "a/-b", "a-/b", "a/b-", "-a/b", "a---b", "a/--b",
             "A/b", "a b", "a%20b", "a.b", "a_b", "a/b/c", "a-b/c", "a/b-c", "\u00e9",
             "%C3%A9", "a\udcff"]
    assert len({project_slug(p) for p in paths}) == len(paths)
    assert project_slug("platform/config") == "platform-config"
    assert project_slug("services/user-api") == "services-user--api"
    assert all(re.fullmatch(r"[A-Za-z0-9._%-]+", project_slug(p)) for p in paths)


def test_a_kept_settings_file_at_the_top_comes_with_the_settings_to_add(
        tmp_path: Path) -> None:
    top = tmp_path / "mono"
    (top / "platform/config").mkdir(parents=True)
    _git(top, "init", "-q")
    mine = b'{\n  // the team\'s own: JSON with comments\n  "editor.tabSize": 2\n}\n'
    Project(top).write(".vscode/settings.json", mine)
    done = Project(top).run("init", "platform/config")
    assert done.returncode == 0, done.stderr
    assert (top / ".vscode/settings.json").read_bytes() == mine
    assert not (top / "platform/config/.vscode").exists()
    assert "kept .vscode/settings.json (exists)\n" in done.stderr
    note = done.stderr.split("to give editors the schemas of platform/config, add these "
                             "settings to .vscode/settings.json (docs/editors.md):\n")[1]
    settings = json.loads(note.split("built ")[0])
    assert settings["yaml.schemas"]["platform/config/schemas/layer.schema.json"] == [
        f"platform/config/layers/{layer}/**/*.yaml" for layer in (
            "base", "environments", "secrets")]
    assert settings["yaml.customTags"][0] == "!unset scalar"


def test_init_at_the_top_or_outside_git_writes_the_files_as_before(tmp_path: Path) -> None:
    """The monorepo's files are written only below the top: a project at the top of its
    work tree, or outside git, gets the very files it got before."""
    from magcfg.scaffold.init import CI_PIPELINES

    assert (_repo(tmp_path).run("init").returncode, (tmp_path / "repo/.pre-commit-config.yaml"
                                                      ).read_text()) == (0, PRE_COMMIT_BEFORE)
    assert (tmp_path / "repo/.vscode/settings.json").read_text() == VSCODE_BEFORE
    for ci, path in (("github", ".github/workflows/magcfg.yml"), ("gitlab", ".gitlab-ci.yml"),
                     ("woodpecker", ".woodpecker/magcfg.yml")):
        states = []
        for where in (f"git-{ci}", f"plain-{ci}"):
            root = tmp_path / where / "repo"
            root.mkdir(parents=True)
            if where.startswith("git"):
                _git(root, "init", "-q")
            assert Project(root).run("init", "--ci", ci).returncode == 0
            assert (root / path).read_text() == CI_PIPELINES[ci]
            assert "magcfg build --check\n" in CI_PIPELINES[ci]
            assert "magcfg lint\n" in CI_PIPELINES[ci]
            assert "magcfg build --check --since " in CI_PIPELINES[ci]
            assert "magcfg lint --since " in CI_PIPELINES[ci]
            states.append({k: v for k, v in tree_state(root).items()
                           if not k.startswith((".git", ".magcfg-cache"))})
        assert states[0] == states[1]


PRE_COMMIT_BEFORE = """\
# pre-commit (https://pre-commit.com): `pre-commit install` runs this before each commit.
repos:
  - repo: local
    hooks:
      - id: magcfg-build
        name: magcfg build --check (generated/ matches the layers)
        entry: magcfg build --check --quiet
        language: system
        pass_filenames: false
        files: ^(magcfg\\.ya?ml|layers/|schemas/|generated/)
      - id: magcfg-lint
        name: magcfg lint (secrets rules)
        entry: magcfg lint
        language: system
        types: [file]
        require_serial: true
"""


VSCODE_BEFORE = """\
{
  "yaml.schemas": {
    "schemas/layer.schema.json": [
      "layers/base/**/*.yaml",
      "layers/environments/**/*.yaml",
      "layers/secrets/**/*.yaml"
    ],
    "schemas/magcfg-project.schema.json": [
      "magcfg.yaml",
      "magcfg.yml"
    ]
  },
  "yaml.customTags": [
    "!unset scalar",
    "!replace scalar",
    "!replace mapping",
    "!replace sequence"
  ]
}
"""


def test_yaml_text_reads_back_as_written() -> None:
    from magcfg.scaffold.init import yaml_text

    for text in ("magcfg build --check", "a: b", "a #b", "it's", "-x", "x\ny", "\\d+",
                 "'q'", '"q"', "caf\u00e9", "{a}", "[a]", "* a", "&a", "!a", "%a", "@a",
                 "a\u2028b", "?", "|", ">", "~", "null", "true", "1", "0x1", ""):
        assert yaml.safe_load(f"k: {yaml_text(text)}\n") == {"k": text}, text


# ---------------------------------------------------------------- line ends on checkout

def test_a_checkout_converting_line_ends_still_checks_and_verifies(tmp_path: Path) -> None:
    """A clone with ``core.autocrlf=true`` (Windows' default) turned every LF of the
    layers and of generated/ into CRLF: the bytes hashed, and signed, were no longer
    those in the work tree, and ``build --check`` and ``verify`` failed there alone. So
    did a ``* ident`` line, expanding a layer's ``$Id$`` to the blob's name."""
    from magcfg.signing.keys import generate_key_pair

    repo = _repo(tmp_path)
    _committer(repo.root)
    # Kept, and overridden below it.
    repo.write(".gitattributes",
               "* text=auto ident\n/schemas/*.json working-tree-encoding=UTF-16\n")
    assert repo.run("init", "--env", "dev").returncode == 0
    app = repo.root / "layers/base/app.yaml"
    app.write_text("# $Id$\n" + app.read_text())
    assert repo.run("build").returncode == 0
    assert (repo.root / ".gitattributes").read_text() == (
        "* text=auto ident\n/schemas/*.json working-tree-encoding=UTF-16\n"
        "# magcfg hashes and signs these bytes: no line-end, $Id$ or encoding conversion "
        "on checkout\n"
        + "".join(f"{path} -text -ident -working-tree-encoding\n" for path in (
            "/magcfg.yaml", "/layers/**", "/schemas/**", "/generated/**")))
    generate_key_pair(tmp_path / "keys")
    signed = repo.run("sign", "--key", str(tmp_path / "keys/magcfg.key"))
    assert signed.returncode == 0, signed.stderr
    _git(repo.root, "add", "-A")
    _git(repo.root, "commit", "-qm", "init")
    # The second init finds its lines there: the file is left as it is.
    again = tmp_path / "again"
    again.mkdir()
    (again / ".gitattributes").write_bytes((repo.root / ".gitattributes").read_bytes())
    assert Project(again).run("init", "--env", "dev").returncode == 0
    assert (again / ".gitattributes").read_bytes() == (repo.root / ".gitattributes").read_bytes()

    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "-c", "core.autocrlf=true", str(repo.root),
                    str(clone)], check=True, capture_output=True)
    assert b"\r\n" in (clone / ".github/workflows/magcfg.yml").read_bytes()  # converted
    for rel in ("magcfg.yaml", "layers/base/app.yaml", "generated/dev/configmap.yaml"):
        assert b"\r" not in (clone / rel).read_bytes(), rel
    assert (clone / "layers/base/app.yaml").read_bytes() == app.read_bytes()
    schema = "schemas/config.schema.json"
    assert (clone / schema).read_bytes() == (repo.root / schema).read_bytes()
    cloned = Project(clone)
    check = cloned.run("build", "--check")
    assert check.returncode == 0, check.stderr
    verified = cloned.run("verify", "--public-key", str(tmp_path / "keys/magcfg.pub"))
    assert verified.returncode == 0, verified.stderr


def test_init_keeps_the_bytes_of_the_ignore_and_attributes_files_it_adds_to(
        tmp_path: Path) -> None:
    """git reads .gitignore and .gitattributes as bytes: a pattern in another encoding
    (latin-1's `café`) matches the file name of those bytes. Decoded with replacement
    and written back, it became U+FFFD and matched nothing."""
    repo = _repo(tmp_path)
    ignore, attributes = b"# caf\xe9\ncaf\xe9.log\n", b"caf\xe9.bin binary\r\n"
    (repo.root / ".gitignore").write_bytes(ignore)
    (repo.root / ".gitattributes").write_bytes(attributes)
    done = repo.run("init", "--env", "dev")
    assert done.returncode == 0, done.stderr
    assert (repo.root / ".gitignore").read_bytes().startswith(ignore)
    assert (repo.root / ".gitattributes").read_bytes().startswith(attributes)


def test_the_first_promotion_keeps_each_environment_s_name(tmp_path: Path) -> None:
    # The starter layers set app.environment per environment, a difference by design: the
    # project file lists it, so promoting a change made in dev copies that change only.
    repo = _repo(tmp_path)
    assert repo.run("init", "--env", "dev", "--env", "prod").returncode == 0
    who = {"GIT_AUTHOR_NAME": "Dana", "GIT_AUTHOR_EMAIL": "dana@example.com",
           "GIT_COMMITTER_NAME": "Dana", "GIT_COMMITTER_EMAIL": "dana@example.com"}
    repo.write("layers/environments/dev/app.yaml", "app:\n  environment: dev\n"
                                                   "  log_level: debug\n")
    assert repo.run("build").returncode == 0
    _git(repo.root, "add", "-A")
    subprocess.run(["git", "commit", "-qm", "start"], cwd=repo.root, check=True,
                   env={**os.environ, **who})
    done = repo.run("promote", "dev", "prod", env=who)
    assert done.returncode == 0, done.stderr
    assert "- `app.environment`: intended difference" in done.stdout
    assert json.loads((repo.root / "generated/prod/config.json").read_text()) == {
        "app": {"environment": "prod", "log_level": "debug", "name": "repo"}}


def _woodpecker_substituted(text: str) -> str:
    """A Woodpecker pipeline's text as Woodpecker reads it: each ``$NAME`` or ``${NAME}``
    (with an operator, ``${NAME:-default}``) replaced by the variable's value before the
    YAML is parsed, ``$$`` standing for ``$`` (woodpecker-ci.org/docs/usage/environment).
    None of the variables is set here (a runner's values are the pipeline's metadata):
    each is replaced by nothing, so a ``$`` left unescaped shows."""
    return re.sub(r"\$(\$|\{[^}]*\}|[A-Za-z_][A-Za-z0-9_]*)",
                  lambda m: "$" if m.group(1) == "$" else "", text)


def _ci_commands(top: Path, ci: str, workflow: str) -> list[str]:
    """The shell scripts the scaffolded pipeline runs for a pull request into main, as
    its runner would: GitHub each step in a shell of its own, GitLab and Woodpecker a
    job's commands in one, stopping at the first that fails (the install aside: magcfg
    is on PATH already)."""
    text = (top / workflow).read_text()
    pipeline = yaml.safe_load(_woodpecker_substituted(text) if ci == "woodpecker" else text)
    if ci == "github":
        runs = [s["run"] for s in pipeline["jobs"]["config"]["steps"] if "run" in s
                and s.get("if", "github.event_name == 'pull_request'")
                == "github.event_name == 'pull_request'"]
    elif ci == "gitlab":
        (runs,) = [job["script"] for job in pipeline.values()]
    else:
        runs = pipeline["steps"][0]["commands"]
    runs = [c for c in runs if not c.startswith("pip install")]
    return runs if ci == "github" else ["set -e\n" + "\n".join(runs)]


@pytest.mark.parametrize(("ci", "workflow", "where"), [
    ("github", ".github/workflows/magcfg.yml", "."),
    ("gitlab", ".gitlab-ci.yml", "."),
    ("woodpecker", ".woodpecker/magcfg-config.yml", "config"),
    ("github", ".github/workflows/magcfg-config.yml", "config"),
])
def test_the_scaffolded_ci_refuses_a_pull_request_that_takes_a_version_back(
        tmp_path: Path, ci: str, workflow: str, where: str) -> None:
    # A plain `git revert` of a built change brings back generated/'s older version: the
    # tree is consistent, so `build --check` passes, but every running service refuses an
    # artifact older than the one it runs (docs/versioning.md). The pipeline `init`
    # writes compares the pull request's versions with its target branch.
    origin, top = _repo_with_origin(tmp_path, where)
    env = _runner_env(tmp_path)
    assert Project(top / where).run("init", "--env", "dev", "--ci", ci).returncode == 0
    assert _commit(top, env, "init").returncode == 0
    layer = top / where / "layers/base/app.yaml"
    layer.write_text(layer.read_text().replace("log_level: info", "log_level: debug"))
    assert Project(top / where).run("build", "-q").returncode == 0
    assert _commit(top, env, "debug logs").returncode == 0
    _git(top, "push", "-q", "origin", "main")

    def ci_run(branch: str) -> list[subprocess.CompletedProcess[str]]:
        # GitHub's checkout fetches the whole history (fetch-depth: 0), the others'
        # runners clone shallow.
        clone = tmp_path / f"ci-{branch}"
        _git(tmp_path, "clone", "-q", *(() if ci == "github" else ("--depth", "1")),
             "-b", branch, f"file://{origin}", str(clone))
        return [_shell(clone, command, env)
                for command in _ci_commands(clone, ci, workflow)]

    _git(top, "switch", "-qc", "fine")
    layer.write_text(layer.read_text() + "  region: eu\n")
    schema = top / where / "schemas/config.schema.json"
    document = json.loads(schema.read_text())
    document["properties"]["app"]["properties"]["region"] = {"type": "string"}
    schema.write_text(json.dumps(document, indent=2) + "\n")
    assert Project(top / where).run("build", "-q").returncode == 0
    assert _commit(top, env, "region").returncode == 0
    _git(top, "push", "-q", "origin", "fine")
    fine = ci_run("fine")
    assert [r.returncode for r in fine] == [0] * len(fine), [r.stderr for r in fine]

    _git(top, "switch", "-qc", "back", "main")
    _git(top, "revert", "--no-edit", "HEAD")
    _git(top, "push", "-q", "origin", "back")
    back = ci_run("back")
    # The build's step (GitHub runs each in a shell of its own; lint's passes after it).
    failed = [r for r in back if r.returncode]
    assert [r.returncode for r in failed] == [1], [r.stderr for r in back]
    # GitHub's checkout is the merge into the target; the others compare their merge base.
    at = "origin/main" if ci == "github" else _git(top, "rev-parse", "main").strip()
    assert (f"generated/dev/manifest.json: error: version 1 after 2 at {at}: "
            "rollback_refused") in failed[0].stderr
    assert "Traceback" not in "".join(r.stderr for r in back)


def _leaked_and_removed(tmp_path: Path, ci: str, canary: str, where: str = "."
                        ) -> tuple[Path, Path, dict[str, str], str]:
    """A repository with an origin whose project (at ``where``) ``init --ci ci`` made,
    pushed on main, and a branch ``leak`` whose first commit sets ``canary`` as a
    password and whose second takes it out: (origin, work tree, the runner's
    environment, the first commit's short id)."""
    origin, top = _repo_with_origin(tmp_path, where)
    env = _runner_env(tmp_path)
    assert Project(top / where).run("init", "--env", "dev", "--ci", ci).returncode == 0
    assert _commit(top, env, "init").returncode == 0
    _git(top, "push", "-q", "origin", "main")
    _git(top, "switch", "-qc", "leak")
    (top / "app").mkdir()
    (top / "app/settings.py").write_text(f'DB_PASSWORD = "{canary}"\n')
    assert _commit(top, env, "settings").returncode == 0
    added = _git(top, "rev-parse", "--short=7", "HEAD").strip()
    (top / "app/settings.py").write_text('DB_PASSWORD = os.environ["DB_PASSWORD"]\n')
    assert _commit(top, env, "settings from the environment").returncode == 0
    return origin, top, env, added


@pytest.mark.parametrize(("ci", "workflow", "where"), [
    ("github", ".github/workflows/magcfg.yml", "."),
    ("gitlab", ".gitlab-ci.yml", "."),
    ("woodpecker", ".woodpecker/magcfg-config.yml", "config"),
])
def test_the_scaffolded_ci_lints_each_commit_of_a_pull_request(
        tmp_path: Path, ci: str, workflow: str, where: str) -> None:
    # A secret one commit adds and the next removes is in the history merged; the
    # pipeline passes `lint` the ref `build --check --since` compares with.
    origin, top, env, added = _leaked_and_removed(tmp_path, ci, "CANARYci7070", where)
    _git(top, "push", "-q", "origin", "leak")
    # GitHub's checkout fetches the whole history (fetch-depth: 0); the others' runners
    # clone shallow, and their pipeline deepens it to the merge base.
    clone = tmp_path / "ci-leak"
    _git(tmp_path, "clone", "-q", *(() if ci == "github" else ("--depth", "1")), "-b", "leak",
         f"file://{origin}", str(clone))
    done = [_shell(clone, command, env) for command in _ci_commands(clone, ci, workflow)]
    assert done[-1].returncode == 1, [d.stderr for d in done]
    assert [d.returncode for d in done[:-1]] == [0] * (len(done) - 1), [d.stderr for d in done]
    said = "".join(d.stdout + d.stderr for d in done)
    assert f"app/settings.py:1:15: (commit {added}" in said, said
    assert "CANARYci7070" not in said
    if ci == "github":
        steps = yaml.safe_load((clone / workflow).read_text())["jobs"]["config"]["steps"]
        assert steps[0] == {"uses": "actions/checkout@v4", "with": {"fetch-depth": 0}}
        assert steps[-1]["run"] == 'magcfg lint --since "origin/$GITHUB_BASE_REF"'


@pytest.mark.parametrize(("ci", "workflow"), [
    ("github", ".github/workflows/magcfg.yml"),
    ("woodpecker", ".woodpecker/magcfg.yml"),
    ("gitlab", ".gitlab-ci.yml"),
])
def test_the_pull_request_that_adds_the_project_passes_the_pipeline_it_adds(
        tmp_path: Path, ci: str, workflow: str) -> None:
    """A new user's first pull request: ``init`` on a branch of a repository whose main
    has no project yet, its pipeline run for the request. GitHub's and Woodpecker's
    pipelines are files named magcfg.yml, as a project file is: lint --since read the
    commit's workflow as a project and failed it (MAG006: "key 'on' means different
    things in YAML 1.1 and 1.2"), as it did every later commit that edits the workflow."""
    origin, top = _repo_with_origin(tmp_path)
    env = _runner_env(tmp_path)
    (top / "README.md").write_text("# the application\n")
    assert _commit(top, env, "readme").returncode == 0
    _git(top, "push", "-q", "origin", "main")
    _git(top, "switch", "-qc", "magcfg")
    assert Project(top).run("init", "--env", "dev", "--ci", ci).returncode == 0
    assert _commit(top, env, "magcfg init").returncode == 0
    # A later commit of the request edits the pipeline (a job added: docs/signing.md).
    with open(top / workflow, "a") as fh:
        fh.write("# signed and published on main: docs/signing.md\n")
    layer = top / "layers/base/app.yaml"
    layer.write_text(layer.read_text().replace("log_level: info", "log_level: debug"))
    assert Project(top).run("build", "-q").returncode == 0
    assert _commit(top, env, "debug logs, a note in the pipeline").returncode == 0
    _git(top, "push", "-q", "origin", "magcfg")
    clone = tmp_path / "ci"
    _git(tmp_path, "clone", "-q", *(() if ci == "github" else ("--depth", "1")), "-b",
         "magcfg", f"file://{origin}", str(clone))
    done = [_shell(clone, command, env) for command in _ci_commands(clone, ci, workflow)]
    assert [d.returncode for d in done] == [0] * len(done), [d.stdout + d.stderr for d in done]
    assert "2 commit" in done[-1].stderr, done[-1].stderr


@pytest.mark.parametrize(("ci", "workflow"), [("gitlab", ".gitlab-ci.yml"),
                                              ("woodpecker", ".woodpecker/magcfg.yml")])
def test_the_scaffolded_ci_deepens_a_clone_whose_history_stops_after_the_merge_base(
        tmp_path: Path, ci: str, workflow: str) -> None:
    """A merge request whose last commit merges its target in: a shallow clone holds the
    target's tip, so the merge base is found, but not the commits before the merge. The
    pipeline deepens the clone, and lint reads them (lint alone fails, naming the commit
    where the clone's history stops)."""
    origin, top, env, added = _leaked_and_removed(tmp_path, ci, "CANARYci8080")
    _git(top, "switch", "-q", "main")
    (top / "NOTES.md").write_text("notes\n")
    assert _commit(top, env, "notes").returncode == 0
    _git(top, "switch", "-q", "leak")
    _git(top, "merge", "-q", "--no-edit", "main")
    _git(top, "push", "-q", "origin", "main", "leak")
    clone = tmp_path / "ci-leak"
    _git(tmp_path, "clone", "-q", "--depth", "2", "-b", "leak", f"file://{origin}",
         str(clone))
    done = [_shell(clone, command, env) for command in _ci_commands(clone, ci, workflow)]
    said = "".join(d.stdout + d.stderr for d in done)
    assert done[-1].returncode == 1, said
    assert f"app/settings.py:1:15: (commit {added}" in said, said
    assert "CANARYci8080" not in said and "Traceback" not in said


@pytest.mark.parametrize(("ci", "workflow"), [("gitlab", ".gitlab-ci.yml"),
                                              ("woodpecker", ".woodpecker/magcfg.yml")])
def test_the_scaffolded_ci_compares_a_commit_with_where_it_left_the_target(
        tmp_path: Path, ci: str, workflow: str) -> None:
    """A push pipeline of a commit that the default branch has since moved past (a slow
    runner, a pipeline run again), and a merge request whose target moved on, pass: the
    newer version there is no step back of theirs. Compared with the target's tip, both
    failed ("version 2 after 3 at origin/main")."""
    origin, top = _repo_with_origin(tmp_path)
    push, request = _runner_env(tmp_path, "push"), _runner_env(tmp_path)
    assert Project(top).run("init", "--env", "dev", "--ci", ci).returncode == 0
    assert _commit(top, push, "init").returncode == 0
    layer = top / "layers/base/app.yaml"

    def change(level: str) -> str:
        layer.write_text(re.sub(r"log_level: \w+", f"log_level: {level}", layer.read_text()))
        assert Project(top).run("build", "-q").returncode == 0
        assert _commit(top, push, level).returncode == 0
        return _git(top, "rev-parse", "HEAD").strip()

    def ci_run(commit: str, env: dict[str, str], depth: int) -> list[str]:
        """The pipeline of ``commit`` in a clone as the runners make one: shallow, at the
        commit."""
        clone = tmp_path / f"ci-{commit[:8]}-{depth}"
        _git(tmp_path, "init", "-q", str(clone))
        _git(clone, "remote", "add", "origin", f"file://{origin}")
        _git(clone, "fetch", "-q", f"--depth={depth}", "origin", commit)
        _git(clone, "checkout", "-q", commit)
        done = [_shell(clone, command, env) for command in _ci_commands(clone, ci, workflow)]
        assert "Traceback" not in "".join(d.stderr for d in done)
        return [d.stderr for d in done if d.returncode]

    older = change("debug")
    _git(top, "switch", "-qc", "feature")
    feature = change("warn")
    _git(top, "switch", "-q", "main")
    newer = change("error")
    _git(top, "push", "-q", "origin", "main", "feature")
    for depth in (1, 50):
        assert ci_run(older, push, depth) == []
        assert ci_run(newer, push, depth) == []
        assert ci_run(feature, request, depth) == []
    # A step back from where it left the target still fails, however shallow the clone.
    _git(top, "switch", "-qc", "back")
    _git(top, "revert", "--no-edit", "HEAD")
    _git(top, "push", "-q", "origin", "back")
    back = _git(top, "rev-parse", "HEAD").strip()
    for depth in (1, 50):
        (failed,) = ci_run(back, request, depth)
        assert f"generated/dev/manifest.json: error: version 2 after 3 at {newer}: " \
               "rollback_refused" in failed, failed


def _signing_jobs() -> dict[str, str]:
    """docs/signing.md's jobs that sign and publish on main, as the page gives them to
    add to the pipeline ``init`` writes: GitHub's (a job under ``jobs:``), Woodpecker's
    (a step under ``steps:``) and GitLab's (two jobs, at the top of the file)."""
    text = (REPO / "docs/signing.md").read_text()
    section = text[text.index("## Signing in CI\n"):text.index("## Delivery: the deploy branch")]
    github, woodpecker, gitlab = re.findall(r"```yaml\n(.*?)```", section, re.S)
    return {"github": github, "woodpecker": woodpecker, "gitlab": gitlab}


def _gitlab_schema_errors(pipeline: dict[str, Any]) -> list[str]:
    """Where ``pipeline`` breaks GitLab's published schema of ``.gitlab-ci.yml``
    (check-jsonschema's vendored copy: ``--builtin-schema vendor.gitlab-ci``)."""
    import check_jsonschema
    import jsonschema

    schema = json.loads((Path(check_jsonschema.__file__).parent / "builtin_schemas" / "vendor"
                         / "gitlab-ci.json").read_text(encoding="utf-8"))
    return sorted(f"{list(e.absolute_path)}: {e.message}"
                  for e in jsonschema.Draft7Validator(schema).iter_errors(pipeline))


def test_the_gitlab_signing_jobs_of_the_docs_are_what_gitlab_reads(tmp_path: Path) -> None:
    """GitLab's jobs of docs/signing.md, added to the pipeline ``init`` writes, are valid
    against GitLab's schema (which does refuse a misspelt key), sign on pushes to the
    default branch only and verify on merge requests only."""
    repo = _repo(tmp_path)
    assert repo.run("init", "--env", "dev", "--ci", "gitlab").returncode == 0
    text = (repo.root / ".gitlab-ci.yml").read_text() + _signing_jobs()["gitlab"]
    pipeline = yaml.safe_load(text)
    assert _gitlab_schema_errors(pipeline) == []
    assert _gitlab_schema_errors({**pipeline, "verify": {**pipeline["verify"], "scripts": []}})
    assert pipeline["publish"]["rules"] == [
        {"if": '$CI_PIPELINE_SOURCE == "push" && $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH'}]
    assert pipeline["verify"]["rules"] == [
        {"if": '$CI_PIPELINE_SOURCE == "merge_request_event"'}]
    assert pipeline["publish"]["needs"] == pipeline["verify"]["needs"] == ["magcfg"]


@pytest.mark.parametrize(("ci", "workflow"), [
    ("github", ".github/workflows/magcfg.yml"),
    ("woodpecker", ".woodpecker/magcfg.yml"),
    ("gitlab", ".gitlab-ci.yml"),
])
def test_the_signing_job_of_the_docs_publishes_what_a_controller_verifies(
        tmp_path: Path, ci: str, workflow: str) -> None:
    """A project ``init`` made, with docs/signing.md's job added to its pipeline as the
    page says: the job's commands, run as the runner runs them on two pushes to main
    (a shallow checkout, the key in the variable the secret fills), leave a deploy
    branch whose artifacts verify with the trusted key, the second publish on the first."""
    from magcfg.signing.keys import generate_key_pair

    origin, top = _repo_with_origin(tmp_path)
    push = _runner_env(tmp_path, "push")
    assert Project(top).run("init", "--env", "dev", "--env", "prod", "--ci", ci).returncode == 0
    generate_key_pair(tmp_path / "keys", "ci")
    (top / "keys").mkdir()
    (top / "keys/ci.pub").write_bytes((tmp_path / "keys/ci.pub").read_bytes())
    with open(top / "magcfg.yaml", "a") as fh:
        fh.write("signing:\n  public_keys: [keys/ci.pub]\n")
    # Added as the page says, at the end of the file: jobs: (steps:) is its last key.
    text = (top / workflow).read_text()
    (top / workflow).write_text(text + _signing_jobs()[ci])
    pipeline = yaml.safe_load((top / workflow).read_text())
    if ci == "github":
        (name,) = set(pipeline["jobs"]) - set(yaml.safe_load(text)["jobs"])
        job = pipeline["jobs"][name]
        assert job["needs"] in pipeline["jobs"]
        assert job["if"] == "github.event_name == 'push' && github.ref == 'refs/heads/main'"
    elif ci == "gitlab":
        name = "publish"  # its rules: test_the_gitlab_signing_jobs_of_the_docs_are_...
    else:
        *checks, job = pipeline["steps"]
        name = job["name"]
        assert set(job["depends_on"]) == {s["name"] for s in checks}
        assert job["when"] == [{"event": "push", "branch": "main"}]
    assert _commit(top, push, "init, CI's key trusted").returncode == 0
    _git(top, "push", "-q", "origin", "main")
    pem = (tmp_path / "keys/ci.key").read_text()

    def ci_run(commit: str) -> None:
        clone = tmp_path / f"ci-{commit[:8]}"
        _git(tmp_path, "clone", "-q", "--depth=1", "-b", "main", f"file://{origin}", str(clone))
        assert _git(clone, "rev-parse", "HEAD").strip() == commit
        added = yaml.safe_load((clone / workflow).read_text())
        if ci == "github":
            secrets = {"${{ secrets.MAGCFG_SIGNING_KEY }}": pem}
            commands = [(s["run"], {k: secrets[v] for k, v in s.get("env", {}).items()})
                        for s in added["jobs"][name]["steps"] if "run" in s]
        elif ci == "gitlab":
            # Its CI/CD variable; the runner's origin is this test's: no token to set.
            commands = [(c, {"MAGCFG_SIGNING_KEY": pem}) for c in added[name]["script"]
                        if not c.startswith("git remote set-url")]
        else:
            (step,) = [s for s in added["steps"] if s["name"] == name]
            secrets = {"magcfg_signing_key": pem}
            variables = {k: secrets[v["from_secret"]] for k, v in step["environment"].items()}
            commands = [(c, variables) for c in step["commands"]]
        for command, variables in commands:
            if command.startswith("pip install"):
                continue  # magcfg is on PATH already
            done = _shell(clone, command, {**push, **variables})
            assert done.returncode == 0, (command, done.stderr)
            assert "PRIVATE KEY" not in done.stdout + done.stderr

    ci_run(_git(top, "rev-parse", "HEAD").strip())
    layer = top / "layers/base/app.yaml"
    layer.write_text(layer.read_text().replace("log_level: info", "log_level: debug"))
    assert Project(top).run("build", "-q").returncode == 0
    assert _commit(top, push, "debug logs").returncode == 0
    _git(top, "push", "-q", "origin", "main")
    second = _git(top, "rev-parse", "HEAD").strip()
    ci_run(second)
    # What a GitOps controller syncs: main's second commit, signed; the first publish its
    # other parent. main holds no signature.
    assert _git(origin, "rev-list", "--parents", "-n", "1", "deploy").split()[2:] == [second]
    assert "[skip ci]" in _git(origin, "log", "-1", "--format=%B", "deploy")
    synced = tmp_path / "synced"
    _git(tmp_path, "clone", "-q", "-b", "deploy", f"file://{origin}", str(synced))
    for env in ("dev", "prod"):
        verified = Project(synced).run("verify", "--artifact", f"generated/{env}", "--env", env,
                                       "--public-key", str(tmp_path / "keys/ci.pub"))
        assert verified.returncode == 0, verified.stderr
    assert json.loads((synced / "generated/dev/config.json").read_text())["app"][
        "log_level"] == "debug"
    assert _git(origin, "ls-tree", "-r", "--name-only", "main", "generated/").split() == [
        f"generated/{env}/{name}" for env in ("dev", "prod")
        for name in ("config.json", "configmap.yaml", "kustomization.yaml", "manifest.json")]
    if ci == "gitlab":
        # A merge request's pipeline, which sees no protected variable: its job signs
        # with a key of its own and verifies, in one shell, stopping at the first failure.
        _git(top, "switch", "-qc", "request")
        layer.write_text(layer.read_text().replace("log_level: debug", "log_level: warn"))
        assert Project(top).run("build", "-q").returncode == 0
        assert _commit(top, push, "warn logs").returncode == 0
        script = [c for c in yaml.safe_load((top / workflow).read_text())["verify"]["script"]
                  if not c.startswith("pip install")]
        request = {k: v for k, v in _runner_env(tmp_path).items() if k != "MAGCFG_SIGNING_KEY"}
        (tmp_path / "runner-tmp").mkdir()  # the runner's, gone with its job
        request["TMPDIR"] = str(tmp_path / "runner-tmp")
        done = _shell(top, "set -e\n" + "\n".join(script), request)
        assert done.returncode == 0, done.stderr
        assert "PRIVATE KEY" not in done.stdout + done.stderr
        assert "verified generated/dev: version 3" in done.stderr, done.stderr


def test_a_repository_s_own_hooks_and_pipeline_come_with_what_to_add(tmp_path: Path) -> None:
    # `cd your-repo && magcfg init`: a repository that has its own pre-commit hooks or
    # GitLab pipeline keeps them, and is told what gates the project, as a monorepo is:
    # kept silently, commits and CI would go ungated.
    repo = _repo(tmp_path)
    _committer(repo.root)
    env = _tool_env(tmp_path)
    own = "repos:\n  - repo: local\n    hooks:\n      - id: own\n        name: own\n" \
          "        entry: 'true'\n        language: system\n"
    repo.write(".pre-commit-config.yaml", own)
    repo.write(".gitlab-ci.yml", "test:\n  script:\n    - 'true'\n")
    done = repo.run("init", "--env", "dev", "--ci", "gitlab")
    assert done.returncode == 0, done.stderr
    assert (repo.root / ".pre-commit-config.yaml").read_text() == own
    assert "kept .gitlab-ci.yml (exists)\nkept .pre-commit-config.yaml (exists)\n" in (
        done.stderr)
    job_head = ("to check this project in CI, add this job to .gitlab-ci.yml (docs/cli.md, "
                "init):\n")
    hooks_head = ("to check this project before each commit, add this under `repos:` in "
                  ".pre-commit-config.yaml (docs/cli.md, init):\n")
    job, hooks = done.stderr.split(job_head)[1].split(hooks_head)
    hooks = hooks.split("built ")[0]
    # Added as told, the hooks gate a commit whose generated/ is stale.
    (repo.root / ".pre-commit-config.yaml").write_text(own + hooks)
    jobs = yaml.safe_load(job)
    assert jobs["magcfg"]["script"][1:3] == ["magcfg build --check", "magcfg lint"]
    install = subprocess.run([str(Path(sys.executable).with_name("pre-commit")), "install"],
                             cwd=repo.root, env=env, capture_output=True, text=True, check=False)
    assert install.returncode == 0, install.stdout + install.stderr
    assert _commit(repo.root, env, "init").returncode == 0
    layer = repo.root / "layers/base/app.yaml"
    layer.write_text(layer.read_text().replace("log_level: info", "log_level: debug"))
    stale = _commit(repo.root, env, "layer edit, no build")
    assert stale.returncode == 1, stale.stdout + stale.stderr
    assert "stale: generated/dev/config.json" in stale.stdout + stale.stderr


@pytest.mark.parametrize("name", [".gitignore", ".gitattributes", ".vscode/settings.json"])
def test_init_refuses_a_file_it_adds_to_that_is_larger_than_it_reads(
        tmp_path: Path, name: str) -> None:
    """A file init adds lines to is read whole and split: one past MAX_MERGED_BYTES is
    a located error, read no further, and nothing is written."""
    from magcfg.scaffold.init import MAX_MERGED_BYTES

    repo = _repo(tmp_path)
    repo.write(name, "#" * MAX_MERGED_BYTES + "\n")
    before = tree_state(repo.root)
    done = repo.run("init", "--env", "dev")
    assert failed_cleanly(done, 1) == f"{name}: error: is larger than {MAX_MERGED_BYTES} bytes\n"
    assert tree_state(repo.root) == before


def test_a_layer_encoding_its_own_gitattributes_decides_stops_init(tmp_path: Path) -> None:
    """A ``.gitattributes`` in a layer directory wins over the lines init appends at
    the top: one giving the layers ``working-tree-encoding=UTF-7`` stops init before it
    writes anything, as the build it runs would refuse them; one in the top file, which
    init's lines override, does not."""
    repo = _repo(tmp_path)
    repo.write("layers/base/app.yaml", "app:\n  name: café\n")
    repo.write("layers/base/.gitattributes", "*.yaml working-tree-encoding=UTF-7\n")
    before = tree_state(repo.root)
    done = repo.run("init", "--env", "dev")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("layers/base/app.yaml: error: is checked out in UTF-7 "), \
        done.stderr
    assert tree_state(repo.root) == before
    (repo.root / "layers/base/.gitattributes").unlink()
    repo.write(".gitattributes", "*.yaml working-tree-encoding=UTF-7\n")
    done = repo.run("init", "--env", "dev")
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("ci", ["github", "gitlab", "woodpecker"])
@pytest.mark.parametrize("where", [".", "config"])
def test_the_scaffolded_ci_runs_the_project_s_snapshot_tests(
        tmp_path: Path, ci: str, where: str) -> None:
    """A hand edit that changes an environment's config, rebuilt but with its snapshot
    left as it was, passed every step of the pipeline though the repository's own
    ``pytest`` failed. The pipeline runs the snapshot tests where the project keeps them,
    those added after ``init`` too; a promotion, which updates its entry, passes."""
    from magcfg.scaffold.init import CI_FILES, ci_file

    origin, top = _repo_with_origin(tmp_path, where)
    env = _runner_env(tmp_path, GIT_AUTHOR_NAME="A", GIT_AUTHOR_EMAIL="a@b.c",
                      GIT_COMMITTER_NAME="A", GIT_COMMITTER_EMAIL="a@b.c")
    project = Project(top / where)
    assert project.run("init", "--env", "dev", "--env", "prod", "--ci", ci).returncode == 0
    workflow = CI_FILES[ci] if where == "." else ci_file(ci, where)
    # A repository's own conftest.py, needing what the pipeline does not install.
    (top / "conftest.py").write_text("import a_package_the_pipeline_lacks  # noqa\n")
    assert _commit(top, env, "init").returncode == 0
    _git(top, "push", "-q", "origin", "main")
    named = "magcfg.yaml" if where == "." else f"{where}/magcfg.yaml"

    def ci_run(branch: str) -> list[subprocess.CompletedProcess[str]]:
        # GitHub's checkout fetches the whole history (fetch-depth: 0), the others'
        # runners clone shallow.
        clone = tmp_path / f"ci-{branch.replace('/', '-')}"
        _git(tmp_path, "clone", "-q", *(() if ci == "github" else ("--depth", "1")),
             "-b", branch, f"file://{origin}", str(clone))
        done = [_shell(clone, command, env) for command in _ci_commands(clone, ci, workflow)]
        assert "Traceback" not in "".join(d.stdout + d.stderr for d in done)
        return done

    # (c) No snapshots: nothing to run, the pipeline passes.
    plain = ci_run("main")
    assert [r.returncode for r in plain] == [0] * len(plain), [r.stderr for r in plain]
    assert "test_compiled_config" not in "".join(r.stdout for r in plain)

    # Snapshots added after init, with the command the pipeline's comment names.
    written = _shell(top, f"pytest --noconftest -p no:cacheprovider --snapshot-update {named}",
                     env)
    assert written.returncode == 0 and "2 snapshots generated" in written.stdout, \
        written.stdout
    layer = top / where / "layers/environments/dev/app.yaml"
    layer.write_text(layer.read_text() + "  log_level: debug\n")
    assert project.run("build", "-q").returncode == 0
    assert _shell(top, f"pytest --noconftest -p no:cacheprovider --snapshot-update {named}",
                  env).returncode == 0
    assert _commit(top, env, "snapshots, debug logs in dev").returncode == 0
    _git(top, "push", "-q", "origin", "main")

    # (a) A promotion's commit updates prod's entry: its pipeline passes, having run them.
    promoted = project.run("promote", "dev", "prod", "--branch", "promote/logs", env=env)
    assert promoted.returncode == 0, promoted.stderr
    _git(top, "push", "-q", "origin", "promote/logs")
    promotion = ci_run("promote/logs")
    assert [r.returncode for r in promotion] == [0] * len(promotion), [
        r.stdout + r.stderr for r in promotion]
    assert "2 passed" in "".join(r.stdout for r in promotion)

    # (b) A hand edit of prod's layer, built, its snapshot not updated: the pipeline fails
    # naming the environment.
    _git(top, "switch", "-qc", "hand", "main")
    prod = top / where / "layers/environments/prod/app.yaml"
    prod.write_text(prod.read_text() + "  log_level: warn\n")
    assert project.run("build", "-q").returncode == 0
    assert _commit(top, env, "warn in prod").returncode == 0
    _git(top, "push", "-q", "origin", "hand")
    hand = ci_run("hand")
    (failed,) = [r for r in hand if r.returncode]
    assert failed.returncode == 1
    assert f"FAILED {named}::test_compiled_config[prod]" in failed.stdout, failed.stdout
    assert "test_compiled_config[dev]" not in failed.stdout.split("short test summary")[-1]
    assert (f"#   pytest -c /dev/null --rootdir . --noconftest -p magcfg -p syrupy "
            f"--snapshot-update ./{named}\n") in (top / workflow).read_text()


def test_woodpecker_runs_a_project_whose_path_holds_a_dollar(tmp_path: Path) -> None:
    """Woodpecker substitutes ``$NAME`` and ``${NAME}`` in the pipeline's text before its
    shell runs a command: a project path's ``$`` is escaped (``$$``) in every line. The
    check and lint lines left it as it was, and the pipeline checked a project that was
    not there."""
    from magcfg.scaffold.init import ci_file

    where = "svc$HOME/a ${TAG}"
    origin, top = _repo_with_origin(tmp_path, where)
    env = _runner_env(tmp_path)
    project = Project(top / where)
    assert project.run("init", "--env", "dev", "--ci", "woodpecker").returncode == 0
    workflow = ci_file("woodpecker", where)
    assert workflow == ".woodpecker/magcfg-svc%24HOME-a%20%24%7BTAG%7D.yml"
    # Snapshots, so that the snapshot step runs on the path too.
    assert _shell(top, f"pytest -p no:cacheprovider --snapshot-update {shlex.quote(where)}",
                  env).returncode == 0
    assert _commit(top, env, "init").returncode == 0
    _git(top, "push", "-q", "origin", "main")

    def ci_run(branch: str) -> subprocess.CompletedProcess[str]:
        clone = tmp_path / f"ci-{branch}"
        _git(tmp_path, "clone", "-q", "--depth", "1", "-b", branch,
             f"file://{origin}", str(clone))
        (script,) = _ci_commands(clone, "woodpecker", workflow)
        assert shlex.quote(f"{where}/magcfg.yaml") in script
        return _shell(clone, script, env)

    fine = ci_run("main")
    assert fine.returncode == 0, fine.stdout + fine.stderr
    assert "1 passed" in fine.stdout
    # A layer edited, not built: the check of that project fails, naming its file.
    _git(top, "switch", "-qc", "stale")
    layer = top / where / "layers/base/app.yaml"
    layer.write_text(layer.read_text().replace("log_level: info", "log_level: debug"))
    assert _commit(top, env, "no build").returncode == 0
    _git(top, "push", "-q", "origin", "stale")
    stale = ci_run("stale")
    assert stale.returncode == 1
    assert f"stale: {where}/generated/dev/config.json" in stale.stderr, stale.stderr


@pytest.mark.parametrize(("where", "config", "text"), [
    (".", "pytest.ini", "[pytest]\naddopts = --cov=app\n"),
    ("config", "pyproject.toml", '[tool.pytest.ini_options]\naddopts = "-p no:magcfg"\n'),
    (".", "setup.cfg", "[tool:pytest]\naddopts = --snapshot-update\n"),
    ("config", "config/tox.ini",
     "[pytest]\naddopts = --snapshot-update\nusefixtures = db\nrequired_plugins = pytest-django\n"),
])
def test_the_scaffolded_snapshot_step_reads_no_pytest_configuration_of_the_repository(
        tmp_path: Path, where: str, config: str, text: str) -> None:
    """The snapshot step ran ``pytest`` with the repository's own configuration, found
    from the project's directory up: an application's ``addopts = --cov`` (pytest-cov
    not installed by the pipeline) or ``required_plugins`` failed every pipeline, ``-p
    no:magcfg`` collected nothing, and ``--snapshot-update`` rewrote the snapshot of a
    hand edit and passed it. The step reads none of it, and names the tests from the
    repository's top all the same."""
    from magcfg.scaffold.init import CI_FILES, ci_file

    top = tmp_path / "repo"
    (top / where).mkdir(parents=True)
    _git(top, "init", "-q", "-b", "main")
    env = _runner_env(tmp_path, None)
    project = Project(top / where)
    assert project.run("init", "--env", "dev", "--env", "prod", "--ci", "github").returncode == 0
    named = "magcfg.yaml" if where == "." else f"{where}/magcfg.yaml"
    assert _shell(top, f"pytest --noconftest -p no:cacheprovider --snapshot-update {named}",
                  env).returncode == 0
    workflow = CI_FILES["github"] if where == "." else ci_file("github", where)
    (step,) = [c for c in _ci_commands(top, "github", workflow) if "pytest" in c]
    (top / config).write_text(text)

    clean = _shell(top, step, env)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "2 passed" in clean.stdout, clean.stdout

    prod = top / where / "layers/environments/prod/app.yaml"
    prod.write_text(prod.read_text() + "  log_level: warn\n")
    assert project.run("build", "-q").returncode == 0
    snapshots = top / where / "__snapshots__/magcfg.ambr"
    kept = snapshots.read_bytes()
    edited = _shell(top, step, env)
    assert edited.returncode == 1, edited.stdout + edited.stderr
    assert f"FAILED {named}::test_compiled_config[prod]" in edited.stdout, edited.stdout
    assert snapshots.read_bytes() == kept
    # The update the pipeline's comment names reads none of it either, nor a conftest.py
    # that needs what the pipeline does not install: it writes what the step compares.
    (top / where / "conftest.py").write_text("import the_applications_settings\n")
    (update,) = [line.split("#   ", 1)[1] for line in (top / workflow).read_text().splitlines()
                 if "--snapshot-update" in line]
    updated = _shell(top, update, env)
    assert updated.returncode == 0, updated.stdout + updated.stderr
    assert "1 snapshot updated" in updated.stdout, updated.stdout
    assert _shell(top, step, env).returncode == 0


HOSTILE = "*a &b !c: d #e/q'\"x\ny $HOME ${X} `id` %P {f} ]g"
"""A project path YAML and the shell read otherwise: a leading ``*`` (an alias), ``&``
(an anchor), ``!`` (a tag), ``: `` (a key), `` #`` (a comment), both quotes, a line end,
``$`` (a variable to a shell and to Woodpecker), a backquote, ``{`` and ``]`` (flow
collections), ``%`` (a directive, and the slug's escape)."""


@pytest.mark.parametrize("ci", ["github", "gitlab", "woodpecker"])
def test_every_pipeline_runs_a_project_whose_path_yaml_and_the_shell_read_otherwise(
        tmp_path: Path, ci: str) -> None:
    """Each pipeline, parsed as YAML (Woodpecker's after its substitution) and its
    commands run by a shell as the runner runs them, checks, lints and runs the snapshot
    tests of the project at that exact path: a fresh checkout passes (the snapshot step
    ran, not skipped for a file it looked for elsewhere), a stale one fails naming the
    project's file."""
    from magcfg.errors import printable
    from magcfg.scaffold.init import ci_file

    origin, top = _repo_with_origin(tmp_path, HOSTILE)
    env = _runner_env(tmp_path, X="x", HOME=str(tmp_path))
    project = Project(top / HOSTILE)
    assert project.run("init", "--env", "dev", "--ci", ci).returncode == 0
    workflow = ci_file(ci, HOSTILE)
    assert _shell(top, "pytest -p no:cacheprovider --snapshot-update "
                  + shlex.quote(f"{HOSTILE}/magcfg.yaml"), env).returncode == 0
    assert _commit(top, env, "init").returncode == 0
    _git(top, "push", "-q", "origin", "main")

    def ci_run(branch: str) -> list[subprocess.CompletedProcess[str]]:
        clone = tmp_path / f"ci-{branch}"
        _git(tmp_path, "clone", "-q", "--depth", "1", "-b", branch,
             f"file://{origin}", str(clone))
        commands = _ci_commands(clone, ci, workflow)
        assert shlex.quote(f"{HOSTILE}/magcfg.yaml") in "".join(commands)
        done = [_shell(clone, command, env) for command in commands]
        assert "Traceback" not in "".join(d.stdout + d.stderr for d in done)
        return done

    fine = ci_run("main")
    assert [r.returncode for r in fine] == [0] * len(fine), [r.stdout + r.stderr for r in fine]
    assert "1 passed" in "".join(r.stdout for r in fine)
    _git(top, "switch", "-qc", "stale")
    layer = top / HOSTILE / "layers/base/app.yaml"
    layer.write_text(layer.read_text().replace("log_level: info", "log_level: debug"))
    assert _commit(top, env, "no build").returncode == 0
    _git(top, "push", "-q", "origin", "stale")
    stale = ci_run("stale")
    assert 1 in [r.returncode for r in stale]
    assert (f"stale: {printable(HOSTILE)}/generated/dev/config.json"
            in "".join(r.stderr for r in stale)), [r.stderr for r in stale]


@pytest.mark.parametrize(("ci", "where", "token", "why"), [
    ("github", "svc/${{ github.sha }}", "${{",
     "GitHub replaces it in the pipeline's text, with no escape"),
    ("gitlab", "svc/${{ job.inputs.x }}", "${{",
     "GitLab replaces it in the pipeline's text, with no escape"),
    ("gitlab", "$[[ inputs.x ]]/svc", "$[[",
     "GitLab replaces it in the pipeline's text, with no escape"),
    ("woodpecker", "svc/[g]", "[",
     "pytest refuses it in the snapshot step's argument, where it reads a test's parameters"),
    ("github", "h::i/svc", "::",
     "pytest reads the snapshot step's argument there as a test's name"),
])
def test_init_refuses_a_path_its_pipeline_cannot_name(
        tmp_path: Path, ci: str, where: str, token: str, why: str) -> None:
    """GitHub evaluates ``${{ }}`` anywhere in a workflow, ``run:`` included, and GitLab
    interpolates ``$[[ ]]`` and ``${{ }}``, none with an escape: the pipeline would check
    another path, or run what the path spells. pytest refuses a ``[`` in the snapshot
    step's argument and splits it at ``::``. Refused, naming the path, nothing written;
    with ``--ci none`` no pipeline names it."""
    repo = _repo(tmp_path)
    (repo.root / where).mkdir(parents=True)
    before = tree_state(repo.root)
    name = {"github": "GitHub", "gitlab": "GitLab", "woodpecker": "Woodpecker"}[ci]
    assert failed_cleanly(Project(repo.root / where).run("init", "--ci", ci), 2) == (
        f"error: {where}: a project path holding `{token}` cannot be named in a {name} "
        f"pipeline ({why}): rename the directory, or use --ci none and write the "
        "pipeline's steps yourself (docs/cli.md, init)\n")
    assert tree_state(repo.root) == before
    assert Project(repo.root / where).run("init", "--ci", "none").returncode == 0


def test_woodpecker_names_a_path_that_github_and_gitlab_would_replace(tmp_path: Path) -> None:
    """Woodpecker's substitution is escaped (``$$``): a ``${{`` is no reason to
    refuse its pipeline."""
    from magcfg.scaffold.init import ci_file

    repo = _repo(tmp_path)
    where = "svc/${{ a }}"
    (repo.root / where).mkdir(parents=True)
    assert Project(repo.root / where).run("init", "--ci", "woodpecker").returncode == 0
    text = _woodpecker_substituted((repo.root / ci_file("woodpecker", where)).read_text())
    assert shlex.quote(f"{where}/magcfg.yaml") in "".join(
        yaml.safe_load(text)["steps"][0]["commands"])


def test_init_writes_the_pipeline_at_the_top_git_works_in(tmp_path: Path) -> None:
    """The pipeline and the hook go where git's top is, the checkout CI runs in, and are
    named from there as every command names files: a ``.git`` git takes for no
    repository (an empty directory) between the top and the project was taken for the
    top, and they were written below it, where no CI looks."""
    top = tmp_path / "mono"
    (top / "a/b").mkdir(parents=True)
    _git(top, "init", "-q")
    (top / "a/.git").mkdir()
    done = Project(top / "a/b").run("init", "--env", "dev", "--ci", "github")
    assert done.returncode == 0, done.stderr
    assert "wrote .github/workflows/magcfg-a-b.yml\n" in done.stderr
    assert "wrote .pre-commit-config.yaml\n" in done.stderr
    assert (top / ".github/workflows/magcfg-a-b.yml").is_file()
    assert not (top / "a/.github").exists() and not (top / "a/.pre-commit-config.yaml").exists()


def test_the_snapshot_step_runs_a_project_whose_path_begins_with_a_dash(
        tmp_path: Path) -> None:
    """pytest read the step's argument ``-svc/magcfg.yaml`` as its option ``-s``, and the
    step failed on every change; so did the update command the pipeline's comment gives.
    Both name the file from ``./``."""
    from magcfg.scaffold.init import CI_FILES

    top = tmp_path / "repo"
    (top / "-svc").mkdir(parents=True)
    _git(top, "init", "-q", "-b", "main")
    env = _runner_env(tmp_path, None)
    project = Project(top / "-svc")
    assert Project(top).run("init", "./-svc", "--env", "dev", "--ci", "gitlab"
                            ).returncode == 0
    text = (top / CI_FILES["gitlab"]).read_text()
    (update,) = re.findall(r"#   (pytest .*--snapshot-update .*)\n", text)
    written = _shell(top, update + " -p no:cacheprovider", env)
    assert written.returncode == 0 and "1 snapshot generated" in written.stdout, written.stdout
    (step,) = [c for c in yaml.safe_load(text)["magcfg-%2Dsvc"]["script"] if "pytest" in c]
    clean = _shell(top, step, env)
    assert clean.returncode == 0 and "1 passed" in clean.stdout, clean.stdout + clean.stderr
    layer = top / "-svc/layers/environments/dev/app.yaml"
    layer.write_text(layer.read_text() + "  log_level: warn\n")
    assert project.run("build", "-q").returncode == 0
    edited = _shell(top, step, env)
    assert edited.returncode == 1
    assert "FAILED -svc/magcfg.yaml::test_compiled_config[dev]" in edited.stdout, edited.stdout
