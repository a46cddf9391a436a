"""The build's ConfigMap size warnings, through real builds of growing configs."""

from __future__ import annotations

import json

import pytest

from magcfg.delivery.emitter import LAST_APPLIED_BYTES, fits_client_side_apply
from tests.conftest import Project


def _tags(mini: Project, count: int, width: int = 100) -> None:
    tags = "".join(f"    - {'t' * (width - 8)}{i:06d}\n" for i in range(count))
    mini.write("layers/environments/prod/tags.yaml", "magds:\n  tags:\n" + tags)


def _config_size(mini: Project) -> int:
    return len((mini.root / "generated/prod/config.json").read_bytes())


def test_a_small_configmap_gets_no_warning(mini: Project) -> None:
    _tags(mini, 1000)  # ~110 KB
    done = mini.run("build")
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr
    assert (mini.root / "generated/prod/configmap.yaml").is_file()


def test_a_configmap_too_large_for_client_side_apply_is_written_with_a_warning(
        mini: Project) -> None:
    _tags(mini, 2600)  # ~290 KB: over the 256 KiB last-applied annotation
    done = mini.run("build")
    assert done.returncode == 0, done.stderr
    size = _config_size(mini)
    assert f"generated/prod/configmap.yaml: warning: config.json is {size} bytes: the ConfigMap is " \
           "too large for client-side `kubectl apply` and Argo CD's default sync (its " \
           "last-applied-configuration annotation holds at most 262144 bytes); apply it " \
           "server-side (`kubectl apply --server-side`, Argo CD's ServerSideApply=true; Flux " \
           "always does) or deliver it as an OCI artifact (`magcfg publish`)\n" in done.stderr
    assert "generated/dev/configmap.yaml: warning" not in done.stderr
    assert (mini.root / "generated/prod/configmap.yaml").is_file()


def test_a_config_too_large_for_any_configmap_is_not_written(mini: Project) -> None:
    _tags(mini, 10000)  # ~1.1 MB
    done = mini.run("build")
    assert done.returncode == 0, done.stderr
    assert "generated/prod/configmap.yaml: warning: not written: config.json is " in done.stderr
    assert "client-side" not in done.stderr
    assert not (mini.root / "generated/prod/configmap.yaml").exists()
    assert (mini.root / "generated/prod/kustomization.yaml").read_text().endswith(
        "resources: []\n")


@pytest.mark.parametrize("text", ["a" * 200_000, '"' * 130_000, "x\n" * 70_000])
def test_the_estimate_counts_the_escapes(text: str) -> None:
    config = (json.dumps({"k": text}) + "\n").encode()
    annotation = len(json.dumps(config.decode()))
    assert fits_client_side_apply(config) == (annotation + 16 * 1024 <= LAST_APPLIED_BYTES)
