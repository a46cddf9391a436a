"""magcfg's own committed output passes secret scanners: `magcfg lint` and the real
gitleaks, detect-secrets and trufflehog3 (scripts/tools.sh pins them; `./scripts/dev test`
installs them, and a missing scanner fails these tests, it never skips them) on a repository
with a signed, committed generated/, using the allowlist files shipped at the repository
root (.gitleaks.toml, .secrets.baseline, .trufflehog3.yml).

Each allowlist is also shown not to be a blanket: a real-looking token planted in
generated/ is still reported by the same scanner with the same file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import MAGCFG, REPO, Project
from .conftest import git

ALLOWLISTS = (".gitleaks.toml", ".secrets.baseline", ".trufflehog3.yml")
# A GitHub token shape (not a real token), the kind every scanner knows.
PLANTED = "ghp_" + "Zq7Xw2Lk9Vb4Nm6Pd1Rt8Yc3Hs5Jf0Ga2Ue7"


def _tool(name: str) -> list[str]:
    if name == "trufflehog3":
        # Its own venv (its pins clash with the project's): run that venv's interpreter.
        python = REPO / ".tools/trufflehog3-venv/bin/python"
        assert python.exists(), "trufflehog3 missing: run ./scripts/dev tools"
        return [str(python), "-m", "trufflehog3"]
    found = shutil.which(name, path=str(REPO / ".tools/bin")) or shutil.which(
        name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    assert found, f"{name} missing: run ./scripts/dev tools"
    return [found]


def _run(root: Path, *cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), cwd=root, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_COLOR": "1"})


@pytest.fixture(scope="module")
def signed_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled project with the shipped allowlists, built, signed and committed."""
    root = tmp_path_factory.mktemp("signed") / "repo"
    root.mkdir()
    shutil.copy2(REPO / "magcfg.yaml", root / "magcfg.yaml")
    for name in ("layers", "schemas", "generated"):
        shutil.copytree(REPO / name, root / name)
    for name in ALLOWLISTS:
        shutil.copy2(REPO / name, root / name)
    keys = root.parent / "keys"
    project = Project(root)
    assert project.run("keys", "generate", "--out", str(keys), "--name", "ci").returncode == 0
    signed = project.run("sign", "--key", str(keys / "ci.key"), "-q")
    assert signed.returncode == 0, signed.stderr
    assert sorted(p.name for p in (root / "generated/production").iterdir()) == [
        "attestation.dsse.json", "config.json", "configmap.yaml", "externalsecret.yaml",
        "kustomization.yaml", "manifest.json", "manifest.json.sig", "value-constraints.json",
        "vault-policy.hcl"]
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "signed artifacts")
    return root


def _generated_files(root: Path) -> list[str]:
    return sorted(git(root, "ls-files", "generated").split())


@pytest.fixture
def planted_repo(signed_repo: Path, tmp_path: Path) -> Path:
    """A copy of ``signed_repo`` with a token planted in a generated ConfigMap line."""
    root = tmp_path / "planted"
    shutil.copytree(signed_repo, root, symlinks=True)
    target = root / "generated/production/externalsecret.yaml"
    target.write_text(target.read_text() + f"# key: {PLANTED}\n")
    git(root, "commit", "-q", "-am", "plant a token")
    return root


def test_magcfg_lint_passes_on_signed_committed_output(signed_repo: Path) -> None:
    done = subprocess.run([str(MAGCFG), "lint", "--exclude", "tests/**"], cwd=signed_repo,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 finding(s)" in done.stderr


@pytest.mark.parametrize("mode", [("dir", "generated", "--config", ".gitleaks.toml"),
                                  ("dir", "."), ("git", ".")])
def test_gitleaks_finds_nothing(signed_repo: Path, mode: tuple[str, ...]) -> None:
    done = _run(signed_repo, *_tool("gitleaks"), *mode, "--no-banner", "--exit-code", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no leaks found" in done.stderr


def test_gitleaks_allowlist_is_not_a_blanket(planted_repo: Path) -> None:
    done = _run(planted_repo, *_tool("gitleaks"), "dir", ".", "--no-banner",
                "--report-format", "json", "--report-path", "-")
    assert done.returncode == 1, done.stderr
    found = {(f["File"], f["RuleID"]) for f in json.loads(done.stdout)}
    assert found == {("generated/production/externalsecret.yaml", "github-pat")}


def test_detect_secrets_finds_nothing(signed_repo: Path) -> None:
    files = _generated_files(signed_repo)
    hook = _run(signed_repo, *_tool("detect-secrets-hook"), "--baseline", ".secrets.baseline",
                *files)
    assert hook.returncode == 0, hook.stdout + hook.stderr
    scan = _run(signed_repo, *_tool("detect-secrets"), "scan", "--baseline",
                ".secrets.baseline", *files)
    assert scan.returncode == 0, scan.stderr
    baseline = json.loads((signed_repo / ".secrets.baseline").read_text())
    assert [f for f in baseline["results"] if f.startswith("generated/")] == []


def test_detect_secrets_baseline_is_not_a_blanket(planted_repo: Path) -> None:
    hook = _run(planted_repo, *_tool("detect-secrets-hook"), "--baseline", ".secrets.baseline",
                *_generated_files(planted_repo))
    assert hook.returncode == 1
    assert "generated/production/externalsecret.yaml" in hook.stdout
    assert "GitHub Token" in hook.stdout


def _trufflehog3(root: Path, *args: str) -> list[dict[str, object]]:
    out = root.parent / f"th-{root.name}.json"
    done = _run(root, *_tool("trufflehog3"), "--format", "json", "-o", str(out), *args)
    assert done.returncode in (0, 2), done.stderr  # 2: issues found
    issues: list[dict[str, object]] = json.loads(out.read_text())
    return issues


def test_trufflehog3_finds_nothing(signed_repo: Path) -> None:
    assert _trufflehog3(signed_repo, "--no-history", "-c", ".trufflehog3.yml",
                        "generated") == []
    # From the root (the file is found there), with the git history.
    assert _trufflehog3(signed_repo, ".") == []


def test_trufflehog3_allowlist_is_not_a_blanket(planted_repo: Path) -> None:
    issues = _trufflehog3(planted_repo, "--no-history", "-c", ".trufflehog3.yml", "generated")
    assert {(str(i["path"]), str(i["line"])) for i in issues} == {
        ("production/externalsecret.yaml",  # relative to the scanned directory
         str(len((planted_repo / "generated/production/externalsecret.yaml")
                 .read_text().splitlines())))}
