"""The ``lint:`` section of the project file (lint/config.py): a misspelt key is an
error, located and with the key it probably meant, for lint and for the build."""

from __future__ import annotations

from pathlib import Path

from ..conftest import Project, failed_cleanly
from .conftest import MakeRepo, run_cli

TYPOS = 'lint:\n  exclud: ["layers/**"]\n  disabel: [MAG002]\n'


def test_lint_reports_unknown_lint_keys(make_repo: MakeRepo) -> None:
    repo = make_repo({"magcfg.yaml": "version: 1\n" + TYPOS,
                      "app.py": 'password = "CANARYc1"\n'})
    proc = run_cli(repo.root, "lint")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert ("magcfg.yaml:3: error: unknown key 'exclud' (did you mean 'exclude'?) "
            "[lint.exclud]") in proc.stderr
    assert ("magcfg.yaml:4: error: unknown key 'disabel' (did you mean 'disable'?) "
            "[lint.disabel]") in proc.stderr
    assert proc.stdout == ""  # no report from settings it could not read
    assert "CANARY" not in proc.stderr


def test_lint_names_the_known_keys_when_none_is_close(make_repo: MakeRepo) -> None:
    repo = make_repo({"magcfg.yaml": "lint:\n  zzz: 1\n"})
    proc = run_cli(repo.root, "lint")
    assert proc.returncode == 1, proc.stderr
    assert ("magcfg.yaml:2: error: unknown key 'zzz'; known: deploy_paths, disable, exclude "
            "[lint.zzz]") in proc.stderr


def test_build_check_reports_unknown_lint_keys(mini: Project) -> None:
    assert mini.run("build").returncode == 0
    project = mini.root / "magcfg.yaml"
    project.write_text(project.read_text() + TYPOS)
    lines = len(project.read_text().splitlines())
    for args in (["build", "--check"], ["build"]):
        stderr = failed_cleanly(mini.run(*args))
        assert (f"magcfg.yaml:{lines - 1}: error: unknown key 'exclud' (did you mean "
                "'exclude'?) [lint.exclud]") in stderr
        assert f"magcfg.yaml:{lines}: error: unknown key 'disabel'" in stderr


def test_known_lint_keys_pass_the_build(mini: Project, tmp_path: Path) -> None:
    project = mini.root / "magcfg.yaml"
    project.write_text(project.read_text() + "lint:\n  exclude: [x]\n  disable: [MAG004]\n"
                       "  deploy_paths: [k8s]\n")
    assert mini.run("build").returncode == 0


def test_lint_refuses_a_project_file_nested_too_deep(make_repo: MakeRepo) -> None:
    """PyYAML composes recursively: 20,000 nested flow sequences are a located error,
    exit 1, not a RecursionError traceback."""
    repo = make_repo({"magcfg.yaml": "lint: " + "[" * 20_000 + "]" * 20_000 + "\n"})
    proc = run_cli(repo.root, "lint")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "magcfg.yaml: error: project file is not valid YAML: nested too deep" in \
        proc.stderr, proc.stderr
    assert proc.stdout == ""


def test_lint_names_a_project_file_it_cannot_read_from_the_lint_root(
        make_repo: MakeRepo, tmp_path: Path) -> None:
    """As every finding and the build name a file: a project file that is not UTF-8 was a
    usage error, exit 2, naming the absolute path and Python's codec, and one that does
    not parse, or is a link (to a file outside: its target resolved), was named by its
    absolute path, the target's for a link. Exit 1, line and file as the build gives."""
    outside = tmp_path / "runner-secret.yaml"
    outside.write_text("lint: {}\n", encoding="utf-8")
    cases = {"lint:\n  exclude: [a]\n\xff\n".encode("latin-1"):
             "magcfg.yaml:3: error: invalid UTF-8 (byte 0xff at column 1)\n",
             b"lint: [\n": "magcfg.yaml:2: error: project file is not valid YAML: expected "
                          "the node content, but found '<stream end>'\n",
             b"- lint\n": "magcfg.yaml:1: error: project file must be a mapping\n",
             b"": "magcfg.yaml: error: is a symlink here; magcfg reads only regular files\n"}
    for raw, error in cases.items():
        repo = make_repo({"README.md": "demo\n", "app/main.py": "x = 1\n"})
        project = repo.root / "magcfg.yaml"
        if raw:
            project.write_bytes(raw)
        else:
            project.symlink_to(outside)
        for cwd in (repo.root, repo.root / "app"):
            proc = run_cli(cwd, "lint")
            assert (proc.returncode, proc.stdout, proc.stderr) == (1, "", error)
