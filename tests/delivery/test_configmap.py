"""configmap.yaml: a valid, deterministic Kubernetes ConfigMap carrying the artifact."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from magcfg.delivery.configmap import configmap_files, render_configmap
from magcfg.errors import MagcfgError
from magcfg.signing.directory import sign_artifact, verify_artifact
from magcfg.signing.keys import Ed25519PrivateKey
from magcfg.signing.signatures import ATTESTATION_NAME, MANIFEST_NAME, SIGNATURE_NAME
from tests.signing.fixtures import LISTED, make_artifact

# Recent Kubernetes minor with a schema bundled in kubernetes-validate (strict: no unknown
# fields allowed).
K8S_VERSION = "1.37.0"
_QUALIFIED = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                        r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def _load(data: bytes) -> dict[str, Any]:
    doc = yaml.safe_load(data)
    assert isinstance(doc, dict)
    return doc


def _members(env_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(env_dir.iterdir()) if p.is_file()}


def test_signed_artifact_configmap_is_valid_kubernetes(tmp_path: Path) -> None:
    env_dir = make_artifact(tmp_path / "production")
    sign_artifact(env_dir, "production", Ed25519PrivateKey.generate())
    raw = (env_dir / "configmap.yaml").read_bytes()
    doc = _load(raw)
    assert kubernetes_validate.validate(doc, K8S_VERSION, strict=True) == "1.37"
    assert doc["apiVersion"] == "v1" and doc["kind"] == "ConfigMap"
    assert doc["metadata"]["name"] == "magcfg-production"
    for k, v in doc["metadata"]["labels"].items():
        assert _QUALIFIED.match(k) and _LABEL_VALUE.match(v) and len(v) <= 63, (k, v)
    for k in doc["metadata"]["annotations"]:
        assert _QUALIFIED.match(k), k
    assert doc["metadata"]["labels"]["magcfg/environment"] == "production"
    assert doc["metadata"]["annotations"]["magcfg/version"] == "7"
    assert doc["metadata"]["annotations"]["magcfg/signed"] == "true"
    # Every member the runtime verifies, byte for byte; no attestation, no configmap.
    assert sorted(doc["data"]) == sorted([MANIFEST_NAME, SIGNATURE_NAME, *LISTED])
    for name, text in doc["data"].items():
        assert text.encode() == (env_dir / name).read_bytes(), name
    assert ATTESTATION_NAME not in doc["data"]


def test_kubernetes_validate_cli_accepts_the_file(tmp_path: Path) -> None:
    env_dir = make_artifact(tmp_path / "dev", env="dev")
    sign_artifact(env_dir, "dev", Ed25519PrivateKey.generate())
    cli = Path(sys.executable).with_name("kubernetes-validate")
    ok = subprocess.run([str(cli), "--strict", "-k", K8S_VERSION,
                         str(env_dir / "configmap.yaml")], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "configmap/magcfg-dev" in ok.stdout + ok.stderr
    # The validator bites: an unknown field is refused in strict mode.
    broken = tmp_path / "broken.yaml"
    broken.write_text((env_dir / "configmap.yaml").read_text().replace("\ndata:", "\ndatta:"))
    bad = subprocess.run([str(cli), "--strict", "-k", K8S_VERSION, str(broken)],
                         capture_output=True, text=True)
    assert bad.returncode == 1
    assert "datta" in bad.stdout + bad.stderr and "Traceback" not in bad.stderr


def test_pod_can_verify_the_mounted_configmap(tmp_path: Path) -> None:
    """What a pod mounting the ConfigMap sees verifies like generated/<env>/."""
    key = Ed25519PrivateKey.generate()
    env_dir = make_artifact(tmp_path / "generated" / "staging", env="staging")
    sign_artifact(env_dir, "staging", key)
    mount = tmp_path / "mount"
    mount.mkdir()
    for name, text in _load((env_dir / "configmap.yaml").read_bytes())["data"].items():
        (mount / name).write_text(text, encoding="utf-8", newline="")
    assert verify_artifact(mount, [key.public_key()], environment="staging").version == 7


def test_unsigned_configmap_has_no_signature_key() -> None:
    files = {"config.json": b'{\n  "a": 1\n}\n', MANIFEST_NAME: b'{"files": {}, "version": 3}\n'}
    doc = _load(render_configmap("dev", files))
    assert SIGNATURE_NAME not in doc["data"]
    assert doc["metadata"]["annotations"]["magcfg/signed"] == "false"
    assert kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_configmap_is_deterministic(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    a = make_artifact(tmp_path / "a")
    b = make_artifact(tmp_path / "b")
    sign_artifact(a, "production", key)
    sign_artifact(b, "production", key)
    assert (a / "configmap.yaml").read_bytes() == (b / "configmap.yaml").read_bytes()
    members = _members(a)
    reordered = dict(reversed(list(members.items())))
    assert render_configmap("production", configmap_files(members)) == \
        render_configmap("production", configmap_files(reordered))


def test_configmap_is_readable_in_diffs(tmp_path: Path) -> None:
    env_dir = make_artifact(tmp_path / "production")
    text = render_configmap("production", configmap_files(_members(env_dir))).decode()
    assert "  config.json: |\n    {\n      \"kernel\": {\n" in text
    assert text.endswith("\n") and "\t" not in text


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=200))
def test_any_text_round_trips(text: str) -> None:
    doc = _load(render_configmap("dev", {"f.txt": text.encode("utf-8")}))
    assert doc["data"]["f.txt"] == text


@pytest.mark.parametrize("text", ["  indented first\nline\n", "\n\n  x\n", "a\n\n", "tail \n",
                                  "\ttab\n", "no newline", "", "\n", "x\r\ny\n", "\ufeffbom\n",
                                  "nel\x85x\n", "ls\u2028x\n", "😀 astral\n", "- a\n# b\n"])
def test_tricky_texts_round_trip(text: str) -> None:
    raw = render_configmap("dev", {"f.txt": text.encode("utf-8")})
    doc = _load(raw)
    assert doc["data"]["f.txt"] == text
    assert kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


@pytest.mark.parametrize(("env", "files", "message"), [
    ("Prod", {"a": b""}, "not a valid Kubernetes name"),
    ("x" * 60, {"a": b""}, "not a valid Kubernetes name"),
    ("dev", {"bad/name": b""}, "cannot be a ConfigMap data key"),
    ("dev", {"bin": b"\xff\xfe"}, "not UTF-8"),
    ("dev", {"big": b"x" * (1024 * 1024 + 1)}, "Kubernetes allows 1048576"),
])
def test_refusals(env: str, files: dict[str, bytes], message: str) -> None:
    with pytest.raises(MagcfgError, match=message) as info:
        render_configmap(env, files)
    assert "configmap.yaml" in info.value.format()


def test_verify_follows_the_kubelet_symlink_layout(tmp_path: Path) -> None:
    """A ConfigMap volume: files are symlinks into ..data, itself a symlink to a
    timestamped directory that the kubelet swaps atomically."""
    key = Ed25519PrivateKey.generate()
    env_dir = make_artifact(tmp_path / "generated" / "production")
    sign_artifact(env_dir, "production", key)
    data = _load((env_dir / "configmap.yaml").read_bytes())["data"]
    mount = tmp_path / "volume"
    real = mount / "..2026_11_22_14_00_00.000000001"
    real.mkdir(parents=True)
    for name, text in data.items():
        (real / name).write_text(text, encoding="utf-8", newline="")
    (mount / "..data").symlink_to(real.name)
    for name in data:
        (mount / name).symlink_to(f"..data/{name}")
    assert verify_artifact(mount, [key.public_key()], environment="production",
                           volume=True).files["config.json"] == \
        (env_dir / "config.json").read_bytes()
