"""MAG006 (lint/layer_secrets.py) on what only a layer can write."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .conftest import REPO, MakeRepo, git, run_cli


def test_a_literal_under_replace_is_a_finding(tmp_path: Path) -> None:
    """``!replace`` sets its value all the same (replacing instead of merging): a literal
    secret under it, a scalar or in a subtree, is committed as any other, and the build
    refuses it."""
    root = tmp_path / "repo"
    root.mkdir()
    for name in ("magcfg.yaml", "schemas", "layers"):
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy
        copy(REPO / name, root / name)
    (root / "layers/secrets/production/magws.yaml").write_text(
        "magws:\n  app_secret: !replace CANARYrepl1\n")
    (root / "layers/secrets/staging/magds.yaml").write_text(
        "magds: !replace\n  connection:\n    password: CANARYrepl2\n")
    git(root, "init", "-q")
    done = run_cli(root, "lint")
    assert done.returncode == 1, done.stderr
    found = [line.split(" error:")[0] for line in done.stdout.splitlines()[0::2]]
    assert found == ["layers/secrets/production/magws.yaml:2:15: MAG006",
                     "layers/secrets/staging/magds.yaml:3:15: MAG006"]
    assert "CANARY" not in done.stdout + done.stderr


def test_a_project_whose_directory_holds_a_line_end_or_a_backslash_is_checked(
        tmp_path: Path) -> None:
    """Findings name such a file escaped (``display_name``), and MAG006 opened the
    project file by that name: ``project file ... not found`` failed lint on every such
    project, and none of its layer files was checked against its schema."""
    root = tmp_path / "repo"
    where = "conf\\ig\nx"
    for name in ("magcfg.yaml", "schemas", "layers"):
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy
        (root / where).mkdir(parents=True, exist_ok=True)
        copy(REPO / name, root / where / name)
    git(root, "init", "-q")
    project = f"{where}/magcfg.yaml"
    clean = run_cli(root, "lint", "--project", project)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    (root / where / "layers/secrets/staging/magds.yaml").write_text(
        "magds:\n  connection:\n    password: CANARYdir1\n")
    done = run_cli(root, "lint", "--project", project)
    assert done.returncode == 1, done.stderr
    found = [line.split(" error:")[0] for line in done.stdout.splitlines()[0::2]]
    assert found == ["conf\\\\ig\\x0ax/layers/secrets/staging/magds.yaml:3:15: MAG006"]
    assert "CANARY" not in done.stdout + done.stderr


def test_a_project_file_nested_past_pyyamls_depth_is_a_finding(tmp_path: Path) -> None:
    """A file of a project file's name (``ci/magcfg.yml``) nested 2,000 deep: PyYAML's
    RecursionError went out of lint, and of lint --since, as a traceback; each is the
    project file that cannot be read, and its layers not checked."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    git(root, "commit", "-q", "--allow-empty", "-m", "empty")
    (root / "ci").mkdir()
    (root / "ci/magcfg.yml").write_text("[" * 2000 + "]" * 2000 + "\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "deep")
    for args in ((), ("--since", "HEAD~1")):
        done = run_cli(root, "lint", *args)
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        assert done.stdout.startswith("ci/magcfg.yml:1:1: "), done.stdout
        assert "MAG006 error: layers " in done.stdout, done.stdout


@pytest.mark.parametrize("text", ["lint: {}\n", "", 'version: 1\nlint:\n  exclude: ["docs/**"]\n'
                                  "secrets:\n  direct_vault: []\n"])
def test_a_project_file_of_the_secrets_gate_alone_is_judged_alike_at_a_commit(
        make_repo: MakeRepo, text: str) -> None:
    """A repository that uses magcfg only as its secrets gate: its project file lists
    no layers, in the work tree and at each commit since ``--since`` (where it was
    loaded as a layer project: "environments must be a non-empty list of names")."""
    root = make_repo({"magcfg.yaml": "lint: {}\n", "app/main.py": "print('hi')\n"}).root
    (root / "magcfg.yaml").write_text(text)
    git(root, "add", "-A")
    git(root, "commit", "-q", "--allow-empty", "-m", "the gate's settings")
    (root / "app/config.yaml").write_text("log_level: info\n")  # what could be a layer
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "a setting")
    assert run_cli(root, "lint").returncode == 0
    since = run_cli(root, "lint", "--since", "HEAD~2")
    assert (since.returncode, since.stdout) == (0, ""), since.stdout + since.stderr


def test_a_project_file_with_a_misspelt_layers_fails_the_work_tree_as_a_commit(
        make_repo: MakeRepo) -> None:
    """A project file with a section beside the gate's that does not load fails the gate
    in both modes, naming it: the work tree's was passed as no layer project (lint,
    and the pre-commit hook, passed what ``--since`` failed)."""
    misspelt = ("version: 1\nenvironments: [dev]\nlayerz:\n  - name: base\n    path: .\n"
                "schema:\n  json: schema.json\n")
    root = make_repo({"magcfg.yaml": "lint: {}\n"}).root
    git(root, "branch", "base")
    (root / "svc").mkdir()
    (root / "svc/magcfg.yaml").write_text(misspelt)
    (root / "svc/app.yaml").write_text("log_level: info\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "a project")
    for since in ((), ("--since", "base")):
        done = run_cli(root, "lint", *since)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "svc/magcfg.yaml:1:1: MAG006 error: layers not checked for literal secrets: " \
               in done.stdout, done.stdout
    # The project file lint reads its settings from: an error naming its line and key.
    (root / "magcfg.yaml").write_text(misspelt)
    done = run_cli(root, "lint")
    assert done.returncode == 1
    assert "magcfg.yaml:3: error: unknown section 'layerz' (did you mean 'layers'?)" \
           in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
