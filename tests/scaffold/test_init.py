"""``magcfg init``: from nothing (or an existing repository) to a green ``build --check``."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from ..conftest import Project, failed_cleanly, tree_state


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
    assert ci["jobs"]["config"]["steps"][-1] == {"run": "magcfg build --check"}
    hook = yaml.safe_load((repo.root / ".pre-commit-config.yaml").read_text())
    assert hook["repos"][0]["hooks"][0]["entry"] == "magcfg build --check --quiet"
    # Committed as git sees it: the build cache is ignored, generated/ is not.
    _git(repo.root, "add", "-A")
    tracked = _git(repo.root, "ls-files").split()
    assert "generated/dev/config.json" in tracked
    assert not [p for p in tracked if p.startswith(".magcfg-cache")]
    assert (repo.root / ".magcfg-cache").is_dir()


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
