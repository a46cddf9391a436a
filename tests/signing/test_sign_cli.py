"""`magcfg keys generate`, `sign`, `verify` through the console script, on real builds."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import stat
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

import magcfg
from magcfg.signing.keys import generate_key_pair
from tests.conftest import MAGCFG, REPO
from tests.signing.fixtures import build_in_process, make_project, run_magcfg

OPENSSL = "/usr/bin/openssl"
ENVS = ("dev", "prod")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = make_project(tmp_path / "repo")
    build_in_process(root)
    return root


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    out = tmp_path / "keys"
    generate_key_pair(out)
    return out


def _key_body(private_key: Path) -> str:
    """The base64 body of a PEM private key: what must never be printed."""
    lines = private_key.read_text().splitlines()
    return "".join(line for line in lines if not line.startswith("-----"))


def test_keys_generate(tmp_path: Path) -> None:
    out = tmp_path / "k"
    done = run_magcfg(tmp_path, "keys", "generate", "--out", str(out))
    assert done.returncode == 0, done.stderr
    key_id = done.stdout.strip()
    assert len(key_id) == 16 and done.stdout == key_id + "\n"
    assert stat.S_IMODE((out / "magcfg.key").stat().st_mode) == 0o600
    body = _key_body(out / "magcfg.key")
    assert body[:20] not in done.stdout + done.stderr
    der = subprocess.run([OPENSSL, "pkey", "-pubin", "-in", str(out / "magcfg.pub"),
                          "-outform", "DER", "-pubout"], check=True, capture_output=True)
    assert hashlib.sha256(der.stdout).hexdigest().startswith(key_id)

    again = run_magcfg(tmp_path, "keys", "generate", "--out", str(out))
    assert again.returncode == 1
    assert f"{out}/magcfg.key" in again.stderr and "already exists" in again.stderr
    assert "Traceback" not in again.stderr
    assert run_magcfg(tmp_path, "keys", "generate").returncode == 2


def test_build_sign_verify_round_trip(project: Path, keys: Path) -> None:
    signed = run_magcfg(project, "sign", "--key", str(keys / "magcfg.key"))
    assert signed.returncode == 0, signed.stderr
    for env in ENVS:
        assert f"wrote generated/{env}/manifest.json.sig" in signed.stderr
        assert (project / "generated" / env / "attestation.dsse.json").is_file()
    body = _key_body(keys / "magcfg.key")
    assert body[:20] not in signed.stdout + signed.stderr

    verified = run_magcfg(project, "verify", "--public-key", str(keys / "magcfg.pub"))
    assert verified.returncode == 0, verified.stderr
    assert "verified generated/dev" in verified.stderr
    assert "attestation ok" in verified.stderr

    # `build --check` stays clean after `sign`.
    check = run_magcfg(project, "build", "--check")
    assert check.returncode == 0, check.stderr
    # And re-signing changes nothing (Ed25519 is deterministic).
    before = {p: p.read_bytes() for p in (project / "generated").rglob("*")
              if p.is_file()}
    again = run_magcfg(project, "sign", "--key", str(keys / "magcfg.key"))
    assert again.returncode == 0 and "wrote" not in again.stderr
    assert before == {p: p.read_bytes() for p in (project / "generated").rglob("*")
                      if p.is_file()}


def test_openssl_verifies_a_cli_signed_artifact(project: Path, keys: Path) -> None:
    assert run_magcfg(project, "sign", "--key", str(keys / "magcfg.key")).returncode == 0
    prod = project / "generated" / "prod"
    (prod / "pub.pem").write_bytes((keys / "magcfg.pub").read_bytes())
    script = ("base64 -d manifest.json.sig > sig.bin && "
              f"{OPENSSL} pkeyutl -verify -pubin -inkey pub.pem -rawin -in manifest.json "
              "-sigfile sig.bin")
    done = subprocess.run(["sh", "-c", script], cwd=prod, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Signature Verified Successfully" in done.stdout


@pytest.mark.parametrize("name", ["config.json", "manifest.json", "manifest.json.sig"])
def test_verify_names_the_tampered_file(project: Path, keys: Path, name: str) -> None:
    assert run_magcfg(project, "sign", "--key", str(keys / "magcfg.key")).returncode == 0
    path = project / "generated" / "prod" / name
    if name == "manifest.json.sig":
        raw = base64.b64decode(path.read_bytes())
        path.write_bytes(base64.b64encode(raw[:-1] + bytes([raw[-1] ^ 1])) + b"\n")
    else:
        path.write_bytes(path.read_bytes().replace(b'"', b"'", 1))
    done = run_magcfg(project, "verify", "--public-key", str(keys / "magcfg.pub"))
    assert done.returncode == 1
    shown = "manifest.json.sig" if name != "config.json" else name
    assert f"generated/prod/{shown}: error:" in done.stderr
    assert "verified generated/dev" in done.stderr  # the other environment still checked
    assert "Traceback" not in done.stderr


def test_sign_with_key_from_environment(project: Path, keys: Path) -> None:
    pem = (keys / "magcfg.key").read_text()
    done = run_magcfg(project, "sign", "--env", "prod", env={"MAGCFG_SIGNING_KEY": pem})
    assert done.returncode == 0, done.stderr
    assert (project / "generated" / "prod" / "manifest.json.sig").is_file()
    assert not (project / "generated" / "dev" / "manifest.json.sig").exists()
    assert _key_body(keys / "magcfg.key")[:20] not in done.stdout + done.stderr
    verified = run_magcfg(project, "verify", "-e", "prod", "-k", str(keys / "magcfg.pub"))
    assert verified.returncode == 0, verified.stderr


def test_sign_errors(project: Path, keys: Path) -> None:
    none = run_magcfg(project, "sign")
    assert none.returncode == 2 and "MAGCFG_SIGNING_KEY" in none.stderr
    missing = run_magcfg(project, "sign", "--key", "nope.key")
    assert missing.returncode == 1 and "nope.key: error: key file not found" in missing.stderr
    public = run_magcfg(project, "sign", "--key", str(keys / "magcfg.pub"))
    assert public.returncode == 1 and "not a PEM private key" in public.stderr
    canary = "-----BEGIN PRIVATE KEY-----\nQ0FOQVJZLWtleS1ib2R5LW5ldmVyLXByaW50ZWQ=\n" \
             "-----END PRIVATE KEY-----\n"
    bad_env = run_magcfg(project, "sign", env={"MAGCFG_SIGNING_KEY": canary})
    assert bad_env.returncode == 1 and "$MAGCFG_SIGNING_KEY" in bad_env.stderr
    assert "Q0FOQVJZ" not in bad_env.stdout + bad_env.stderr
    unknown = run_magcfg(project, "sign", "--env", "qa", "--key", str(keys / "magcfg.key"))
    assert unknown.returncode == 2 and "unknown environment 'qa'" in unknown.stderr
    for env in ENVS:
        assert not (project / "generated" / env / "manifest.json.sig").exists()


def test_unsigned_and_no_trusted_key(project: Path, keys: Path) -> None:
    unsigned = run_magcfg(project, "verify", "--public-key", str(keys / "magcfg.pub"))
    assert unsigned.returncode == 1
    assert "generated/dev/manifest.json.sig: error: not found" in unsigned.stderr
    nokey = run_magcfg(project, "verify")
    assert nokey.returncode == 2 and "signing.public_keys" in nokey.stderr


def test_rotation_with_keys_from_the_project_file(tmp_path: Path) -> None:
    root = make_project(tmp_path / "repo", "signing:\n  public_keys:\n"
                        "    - keys/old.pub\n    - keys/new.pub\n")
    for name in ("old", "new"):
        generate_key_pair(tmp_path / "secret", name)
        (root / "keys").mkdir(exist_ok=True)
        (root / "keys" / f"{name}.pub").write_bytes(
            (tmp_path / "secret" / f"{name}.pub").read_bytes())
    build_in_process(root)
    assert run_magcfg(root, "sign", "-e", "dev", "--key",
                      str(tmp_path / "secret" / "old.key")).returncode == 0
    assert run_magcfg(root, "sign", "-e", "prod", "--key",
                      str(tmp_path / "secret" / "new.key")).returncode == 0
    both = run_magcfg(root, "verify")
    assert both.returncode == 0, both.stderr

    # Retire the old key: what it signed is no longer trusted.
    project_file = root / "magcfg.yaml"
    project_file.write_text(project_file.read_text().replace("    - keys/old.pub\n", ""))
    # Trusting a key is no build input: the artifacts and their signatures stay as they are.
    assert run_magcfg(root, "build", "--check").returncode == 0
    retired = run_magcfg(root, "verify")
    assert retired.returncode == 1
    assert "generated/dev/manifest.json.sig: error: signature does not match" in retired.stderr
    assert "verified generated/prod" in retired.stderr


def test_bad_signing_section_names_the_line(tmp_path: Path) -> None:
    root = make_project(tmp_path / "repo", "signing:\n  public_keys: keys/one.pub\n")
    done = run_magcfg(root, "verify")
    assert done.returncode == 1
    assert "magcfg.yaml:15: error: public_keys is a list of file paths" in done.stderr
    root2 = make_project(tmp_path / "repo2", "signing:\n  public_keys: [keys/missing.pub]\n")
    done = run_magcfg(root2, "verify")
    assert done.returncode == 1 and "keys/missing.pub: error: key file not found" in done.stderr


def test_build_drops_a_stale_signature(project: Path, keys: Path) -> None:
    assert run_magcfg(project, "sign", "--key", str(keys / "magcfg.key")).returncode == 0
    (project / "layers/environments/prod/logging.yaml").write_text("logging:\n  level: error\n")
    check = run_magcfg(project, "build", "--check")
    assert check.returncode == 1
    for name in ("config.json", "manifest.json", "manifest.json.sig",
                 "attestation.dsse.json", "configmap.yaml"):
        assert f"stale: generated/prod/{name}" in check.stderr
    assert "generated/dev" not in check.stderr
    built = run_magcfg(project, "build")
    assert built.returncode == 0, built.stderr
    # What the build removed is said so, not "wrote".
    assert built.stderr.splitlines()[:5] == [
        "removed generated/prod/attestation.dsse.json", "wrote generated/prod/config.json",
        "wrote generated/prod/configmap.yaml", "wrote generated/prod/manifest.json",
        "removed generated/prod/manifest.json.sig"]
    prod = project / "generated" / "prod"
    assert not (prod / "manifest.json.sig").exists()
    assert not (prod / "attestation.dsse.json").exists()
    configmap = yaml.safe_load((prod / "configmap.yaml").read_bytes())
    assert "manifest.json.sig" not in configmap["data"]
    assert configmap["metadata"]["annotations"]["magcfg/signed"] == "false"
    # dev was untouched: still signed, its ConfigMap still carries the signature.
    dev = yaml.safe_load((project / "generated/dev/configmap.yaml").read_bytes())
    assert dev["data"]["manifest.json.sig"] == \
        (project / "generated/dev/manifest.json.sig").read_text()
    verified = run_magcfg(project, "verify", "-k", str(keys / "magcfg.pub"))
    assert verified.returncode == 1
    assert "generated/prod/manifest.json.sig: error: not found" in verified.stderr


def test_built_and_signed_configmaps_are_valid_kubernetes(project: Path, keys: Path) -> None:
    for signed in (False, True):
        if signed:
            run_magcfg(project, "sign", "--key", str(keys / "magcfg.key"))
        for env in ENVS:
            raw = (project / "generated" / env / "configmap.yaml").read_bytes()
            doc = yaml.safe_load(raw)
            kubernetes_validate.validate(doc, "1.37.0", strict=True)
            assert ("manifest.json.sig" in doc["data"]) is signed
            manifest = json.loads((project / "generated" / env / "manifest.json").read_bytes())
            assert set(doc["data"]) - {"manifest.json", "manifest.json.sig"} == \
                set(manifest["files"])


def test_too_large_for_a_configmap_is_a_warning_and_no_file(project: Path, keys: Path) -> None:
    assert (project / "generated/prod/configmap.yaml").is_file()
    (project / "layers/environments/prod/magds.yaml").write_text(
        "magds:\n  host: " + "h" * (1024 * 1024) + "\n")
    done = run_magcfg(project, "build")
    assert done.returncode == 0, done.stderr
    assert "generated/prod/configmap.yaml: warning: not written: config.json is" in done.stderr
    assert not (project / "generated/prod/configmap.yaml").exists()
    assert (project / "generated/dev/configmap.yaml").is_file()
    signed = run_magcfg(project, "sign", "--key", str(keys / "magcfg.key"))
    assert signed.returncode == 0, signed.stderr
    assert not (project / "generated/prod/configmap.yaml").exists()
    assert run_magcfg(project, "verify", "-k", str(keys / "magcfg.pub")).returncode == 0
    assert run_magcfg(project, "build", "--check").returncode == 0


def test_file_names_agree_across_modules() -> None:
    from magcfg import artifact as emit
    from magcfg.delivery import emitter as delivery
    from magcfg.signing import signatures as sign

    assert sign.MANIFEST_NAME == emit.MANIFEST
    assert sign.SIGNATURE_NAME == emit.SIGNATURE
    assert sign.ATTESTATION_NAME == delivery.ATTESTATION_NAME


def test_sign_warns_about_a_readable_private_key(project: Path, keys: Path) -> None:
    key = keys / "magcfg.key"
    quiet = run_magcfg(project, "sign", "-q", "--key", str(key))
    assert quiet.returncode == 0 and quiet.stderr == ""
    key.chmod(0o644)
    loud = run_magcfg(project, "sign", "-q", "--key", str(key))
    assert loud.returncode == 0
    assert f"{key}: warning: private key is readable by group or others" in loud.stderr


def test_publish_warns_about_a_readable_private_key_as_sign_does(project: Path,
                                                                  keys: Path) -> None:
    """``publish`` signs too, and reads its key through the one helper ``sign`` does."""
    key = keys / "magcfg.key"
    key.chmod(0o644)
    done = run_magcfg(project, "publish", "oci://127.0.0.1:1/magcfg/dev:1", "--env", "dev",
                      "--key", str(key), "--insecure")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert f"{key}: warning: private key is readable by group or others" in done.stderr


def test_the_readme_s_signing_block_runs_as_written(tmp_path: Path) -> None:
    """The commands of the README's "Signing and verification", in order, in a project,
    as a shell runs them: the key pair in the user's home, the public half committed
    where verify is told to read it (it was not: verify found no keys/magcfg.pub)."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Signing and verification"):]
    (block,) = re.findall(r"```sh\n(.*?)```", section, re.S)[:1]
    root = make_project(tmp_path / "repo")
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "MAGCFG_SIGNING_KEY"}
    env.update(HOME=str(home), PATH=f"{MAGCFG.parent}{os.pathsep}{env['PATH']}",
               PYTHONPATH=str(Path(magcfg.__file__).resolve().parents[1]))
    done = subprocess.run(["sh", "-e", "-c", block], cwd=root, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verified generated/prod: version 1" in done.stderr
    assert (root / "keys/magcfg.pub").read_bytes() == (home / ".magcfg-keys/magcfg.pub").read_bytes()
    assert "PRIVATE KEY" not in done.stdout + done.stderr
