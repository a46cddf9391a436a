"""kustomization.yaml: `kustomize build generated/<env>` gives exactly the Kubernetes
objects, and the ConfigMap it prints still carries an artifact that verifies."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from magcfg.artifact import KUSTOMIZATION
from magcfg.delivery.kustomization import render_kustomization
from magcfg.signing.directory import verify_artifact
from magcfg.signing.keys import load_public_key
from tests.conftest import Project
from tests.delivery.tools import tool


def _kustomize(directory: Path) -> list[dict[str, Any]]:
    done = subprocess.run([tool("kustomize"), "build", str(directory)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def _objects_in(path: Path) -> list[tuple[str, str]]:
    return sorted((doc["kind"], doc["metadata"]["name"])
                  for doc in yaml.safe_load_all(path.read_text()) if doc)


@pytest.fixture
def signed_bundled(bundled: Project, tmp_path: Path) -> tuple[Project, Path]:
    keys = tmp_path / "keys"
    assert bundled.run("keys", "generate", "--out", str(keys)).returncode == 0
    assert bundled.run("build").returncode == 0
    done = bundled.run("sign", "--key", str(keys / "magcfg.key"))
    assert done.returncode == 0, done.stderr
    return bundled, keys / "magcfg.pub"


def test_kustomize_build_applies_exactly_the_kubernetes_objects(
        signed_bundled: tuple[Project, Path]) -> None:
    project, _ = signed_bundled
    for env_dir in sorted((project.root / "generated").iterdir()):
        built = _kustomize(env_dir)
        expected = _objects_in(env_dir / "configmap.yaml") + _objects_in(env_dir / "externalsecret.yaml")
        assert sorted((d["kind"], d["metadata"]["name"]) for d in built) == sorted(expected)
        assert ("ConfigMap", f"magcfg-{env_dir.name}") in expected


def test_configmap_from_kustomize_build_still_verifies(
        signed_bundled: tuple[Project, Path], tmp_path: Path) -> None:
    project, public = signed_bundled
    built = _kustomize(project.root / "generated/production")
    configmap = next(d for d in built if d["kind"] == "ConfigMap")
    volume = tmp_path / "volume"
    volume.mkdir()
    for name, text in configmap["data"].items():
        (volume / name).write_bytes(text.encode("utf-8"))
    verified = verify_artifact(volume, [load_public_key(public)], environment="production")
    assert verified.manifest["environment"] == "production"


def test_kustomization_lists_only_object_files() -> None:
    files = {"config.json": b"{}\n", "configmap.yaml": b"", "vault-policy.hcl": b"",
             "externalsecret.yaml": b"", "manifest.json": b"{}"}
    text = render_kustomization("dev", files).decode()
    assert text.endswith("resources:\n  - configmap.yaml\n  - externalsecret.yaml\n")
    empty = yaml.safe_load(render_kustomization("dev", {"config.json": b"{}"}))
    assert empty["resources"] == [] and empty["kind"] == "Kustomization"


def test_sign_keeps_the_kustomization(signed_bundled: tuple[Project, Path]) -> None:
    project, _ = signed_bundled
    for env_dir in (project.root / "generated").iterdir():
        assert (env_dir / KUSTOMIZATION).is_file()
    assert project.run("build", "--check").returncode == 0
