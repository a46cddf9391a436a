"""Signature primitives: keys, manifest signatures, artifact verification, openssl interop."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import given
from hypothesis import strategies as st

from magcfg.errors import MagcfgError
from magcfg.signing.directory import sign_artifact, verify_artifact
from magcfg.signing.keys import (
    Ed25519PrivateKey,
    KeyLoadError,
    SigningError,
    generate_key_pair,
    key_id,
    load_private_key,
    load_private_key_pem,
    load_public_key,
    load_public_key_pem,
    private_key_from_env,
)
from magcfg.signing.signatures import (
    ATTESTATION_NAME,
    MANIFEST_NAME,
    SIGNATURE_NAME,
    VerificationError,
    sign_manifest,
    verify_files,
    verify_manifest,
)
from tests.signing.fixtures import LISTED, make_artifact

OPENSSL = "/usr/bin/openssl"


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def artifact(tmp_path: Path, key: Ed25519PrivateKey) -> Path:
    env_dir = make_artifact(tmp_path / "generated" / "production")
    sign_artifact(env_dir, "production", key)
    return env_dir


def _pem_public(key: Ed25519PrivateKey, path: Path) -> Path:
    path.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return path


# ---------------------------------------------------------------- round trip, tampering

def test_round_trip(artifact: Path, key: Ed25519PrivateKey) -> None:
    result = verify_artifact(artifact, [key.public_key()], environment="production")
    assert result.key_id == key_id(key.public_key())
    assert result.version == 7
    assert set(result.files) == set(LISTED)
    assert result.files["config.json"] == (artifact / "config.json").read_bytes()
    assert result.attestation_checked
    sig = (artifact / SIGNATURE_NAME).read_bytes()
    assert sig.endswith(b"\n") and len(base64.b64decode(sig)) == 64


@pytest.mark.parametrize("name", [*LISTED, MANIFEST_NAME])
def test_tampering_any_file_is_refused_naming_it(artifact: Path, key: Ed25519PrivateKey,
                                                 name: str) -> None:
    path = artifact / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(VerificationError) as info:
        verify_artifact(artifact, [key.public_key()], display="generated/production",
                        environment="production")
    expected = SIGNATURE_NAME if name == MANIFEST_NAME else name
    assert info.value.file == f"generated/production/{expected}"
    assert info.value.reason == ("bad_signature" if name == MANIFEST_NAME else "digest_mismatch")
    assert f"generated/production/{expected}" in info.value.format()
    assert isinstance(info.value, MagcfgError) and info.value.exit_code == 1


def test_appending_to_a_file_is_refused(artifact: Path, key: Ed25519PrivateKey) -> None:
    with (artifact / "config.json").open("ab") as f:
        f.write(b" ")
    with pytest.raises(VerificationError, match=r"config\.json.*sha256 does not match"):
        verify_artifact(artifact, [key.public_key()], environment="production")


def test_missing_listed_file(artifact: Path, key: Ed25519PrivateKey) -> None:
    (artifact / "vault-policy.hcl").unlink()
    with pytest.raises(VerificationError) as info:
        verify_artifact(artifact, [key.public_key()], environment="production")
    assert info.value.reason == "missing_file"
    assert info.value.file.endswith("/vault-policy.hcl")


def test_unsigned_artifact(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    env_dir = make_artifact(tmp_path / "dev")
    with pytest.raises(VerificationError) as info:
        verify_artifact(env_dir, [key.public_key()], environment="production")
    assert info.value.reason == "unsigned"
    assert SIGNATURE_NAME in str(info.value)


def test_wrong_key(artifact: Path) -> None:
    other = Ed25519PrivateKey.generate().public_key()
    with pytest.raises(VerificationError) as info:
        verify_artifact(artifact, [other], environment="production")
    assert info.value.reason == "bad_signature"
    assert key_id(other) in str(info.value)


def test_no_trusted_key(artifact: Path) -> None:
    with pytest.raises(VerificationError, match="no trusted public key"):
        verify_artifact(artifact, [], environment="production")


@pytest.mark.parametrize(("signature", "message"), [
    ("truncated", "signature is 32 bytes"),
    ("long", "signature is 65 bytes"),
    ("garbage", "not valid base64"),
    ("empty", "signature is empty"),
    ("flipped", "does not match the manifest"),
    ("zeros", "does not match the manifest"),
])
def test_bad_signatures(artifact: Path, key: Ed25519PrivateKey, signature: str,
                        message: str) -> None:
    path = artifact / SIGNATURE_NAME
    raw = base64.b64decode(path.read_bytes())
    bad = {
        "truncated": base64.b64encode(raw[:32]) + b"\n",
        "long": base64.b64encode(raw + b"\x00") + b"\n",
        "garbage": b"not base64 at all!\n",
        "empty": b"\n",
        "flipped": base64.b64encode(raw[:10] + bytes([raw[10] ^ 0x80]) + raw[11:]) + b"\n",
        "zeros": base64.b64encode(bytes(64)) + b"\n",
    }[signature]
    path.write_bytes(bad)
    with pytest.raises(VerificationError, match=message) as info:
        verify_artifact(artifact, [key.public_key()], environment="production")
    assert info.value.reason == "bad_signature"
    assert info.value.file.endswith(SIGNATURE_NAME)


def test_signature_of_another_manifest(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    a = make_artifact(tmp_path / "a", version=7)
    b = make_artifact(tmp_path / "b", version=8)
    sign_artifact(a, "production", key)
    sign_artifact(b, "production", key)
    (b / SIGNATURE_NAME).write_bytes((a / SIGNATURE_NAME).read_bytes())
    with pytest.raises(VerificationError, match="does not match the manifest"):
        verify_artifact(b, [key.public_key()], environment="production")


def test_signed_manifest_with_unsafe_file_name(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    env_dir = make_artifact(tmp_path / "generated" / "dev")
    (tmp_path / "generated" / "outside").write_bytes(b"x")
    manifest = json.loads((env_dir / MANIFEST_NAME).read_bytes())
    manifest["files"]["../outside"] = "sha256:" + hashlib.sha256(b"x").hexdigest()
    data = json.dumps(manifest).encode()
    (env_dir / MANIFEST_NAME).write_bytes(data)
    (env_dir / SIGNATURE_NAME).write_bytes(sign_manifest(data, key))
    with pytest.raises(VerificationError, match="is not a safe file name") as info:
        verify_artifact(env_dir, [key.public_key()], environment="production")
    assert info.value.reason == "malformed_manifest"


def test_verify_files_in_memory(artifact: Path, key: Ed25519PrivateKey) -> None:
    files: dict[str, bytes | None] = {n: (artifact / n).read_bytes() for n in LISTED}
    manifest = (artifact / MANIFEST_NAME).read_bytes()
    sig = (artifact / SIGNATURE_NAME).read_text()
    assert verify_files(manifest, sig, files, [key.public_key()],
                        environment="production").key_id == \
        key_id(key.public_key())
    files["config.json"] = b"{}\n"
    with pytest.raises(VerificationError, match=r"config\.json"):
        verify_files(manifest, sig, files, [key.public_key()], environment="production")


# ---------------------------------------------------------------- determinism, rotation

def test_signature_is_deterministic(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    manifest = make_artifact(tmp_path / "x").joinpath(MANIFEST_NAME).read_bytes()
    assert sign_manifest(manifest, key) == sign_manifest(manifest, key)
    a = make_artifact(tmp_path / "a")
    b = make_artifact(tmp_path / "b")
    first = sign_artifact(a, "production", key)
    sign_artifact(b, "production", key)
    assert set(first.written) == {f"{a.as_posix()}/{n}" for n in
                                  (SIGNATURE_NAME, ATTESTATION_NAME, "configmap.yaml")}
    for name in (SIGNATURE_NAME, ATTESTATION_NAME, "configmap.yaml"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    again = sign_artifact(a, "production", key)
    assert again.written == ()


def test_rotation_two_trusted_keys(tmp_path: Path) -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    a = make_artifact(tmp_path / "a")
    b = make_artifact(tmp_path / "b", version=8)
    sign_artifact(a, "production", old)
    sign_artifact(b, "production", new)
    trusted = [new.public_key(), old.public_key()]
    assert verify_artifact(a, trusted, environment="production").key_id == key_id(old.public_key())
    assert verify_artifact(b, trusted, environment="production").key_id == key_id(new.public_key())
    # Once the old key is retired, its artifacts are refused.
    with pytest.raises(VerificationError, match="does not match the manifest"):
        verify_artifact(a, [new.public_key()], environment="production")


def test_sign_refuses_an_artifact_edited_after_build(tmp_path: Path,
                                                     key: Ed25519PrivateKey) -> None:
    env_dir = make_artifact(tmp_path / "dev", env="dev")
    (env_dir / "config.json").write_bytes(b'{"edited": true}\n')
    with pytest.raises(SigningError, match=r"config\.json.*does not match manifest\.json"):
        sign_artifact(env_dir, "dev", key)
    assert not (env_dir / SIGNATURE_NAME).exists()


def test_sign_without_manifest(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    with pytest.raises(SigningError, match="run `magcfg build`"):
        sign_artifact(tmp_path, "dev", key)


# ---------------------------------------------------------------- keys

@pytest.fixture
def zero_umask() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_generate_key_pair_modes_and_formats(tmp_path: Path, zero_umask: None) -> None:
    pair = generate_key_pair(tmp_path / "keys")
    assert stat.S_IMODE(pair.private_key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(pair.public_key_path.stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert pair.private_key_path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n")
    assert pair.public_key_path.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----\n")
    private = load_private_key(pair.private_key_path)
    public = load_public_key(pair.public_key_path)
    assert key_id(private.public_key()) == key_id(public) == pair.key_id
    assert len(pair.key_id) == 16 and int(pair.key_id, 16) >= 0
    assert not [p for p in (tmp_path / "keys").iterdir() if p.name.startswith(".")]


def test_generate_refuses_to_replace_a_key(tmp_path: Path) -> None:
    pair = generate_key_pair(tmp_path)
    before = pair.private_key_path.read_bytes()
    with pytest.raises(SigningError, match="already exists"):
        generate_key_pair(tmp_path)
    assert pair.private_key_path.read_bytes() == before
    replaced = generate_key_pair(tmp_path, overwrite=True)
    assert replaced.private_key_path.read_bytes() != before
    assert stat.S_IMODE(replaced.private_key_path.stat().st_mode) == 0o600


def test_key_id_matches_openssl_fingerprint(tmp_path: Path) -> None:
    pair = generate_key_pair(tmp_path)
    der = subprocess.run([OPENSSL, "pkey", "-pubin", "-in", str(pair.public_key_path),
                          "-outform", "DER"], check=True, capture_output=True).stdout
    assert hashlib.sha256(der).hexdigest().startswith(pair.key_id)


def test_private_key_from_environment(tmp_path: Path) -> None:
    pair = generate_key_pair(tmp_path)
    pem = pair.private_key_path.read_text()
    key = private_key_from_env(environ={"MAGCFG_SIGNING_KEY": pem})
    assert key_id(key.public_key()) == pair.key_id
    flattened = pem.replace("\n", "\\n")
    key = private_key_from_env(environ={"MAGCFG_SIGNING_KEY": flattened})
    assert key_id(key.public_key()) == pair.key_id
    with pytest.raises(KeyLoadError, match=r"\$MAGCFG_SIGNING_KEY.*is not set"):
        private_key_from_env(environ={})


CANARY = "Q0FOQVJZLXByaXZhdGUta2V5LW1hdGVyaWFs"


@pytest.mark.parametrize("text", [
    f"-----BEGIN PRIVATE KEY-----\n{CANARY}\n-----END PRIVATE KEY-----\n",
    f"{CANARY}\n",
])
def test_bad_private_key_errors_do_not_echo_the_key(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.key"
    path.write_text(text)
    with pytest.raises(KeyLoadError) as info:
        load_private_key(path)
    assert str(path) in info.value.format()
    assert CANARY not in info.value.format() and CANARY not in str(info.value)
    with pytest.raises(KeyLoadError) as info:
        private_key_from_env(environ={"MAGCFG_SIGNING_KEY": text})
    assert "$MAGCFG_SIGNING_KEY" in info.value.format()
    assert CANARY not in info.value.format()


def test_non_ed25519_and_encrypted_keys(tmp_path: Path) -> None:
    rsa = tmp_path / "rsa.key"
    subprocess.run([OPENSSL, "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024",
                    "-out", str(rsa)], check=True, capture_output=True)
    with pytest.raises(KeyLoadError, match="not an Ed25519 private key"):
        load_private_key(rsa)
    encrypted = tmp_path / "enc.key"
    subprocess.run([OPENSSL, "genpkey", "-algorithm", "ed25519", "-aes-128-cbc",
                    "-pass", "pass:secret", "-out", str(encrypted)],
                   check=True, capture_output=True)
    with pytest.raises(KeyLoadError, match="encrypted"):
        load_private_key(encrypted)
    with pytest.raises(KeyLoadError, match="key file not found"):
        load_private_key(tmp_path / "missing.key")
    pair = generate_key_pair(tmp_path / "k")
    with pytest.raises(KeyLoadError, match="private key where a public key belongs"):
        load_public_key(pair.private_key_path)
    with pytest.raises(KeyLoadError, match="not a PEM private key"):
        load_private_key(pair.public_key_path)
    with pytest.raises(KeyLoadError, match="not a PEM public key"):
        load_public_key_pem(b"nonsense", "inline")
    assert isinstance(load_private_key_pem(pair.private_key_path.read_text(), "x"),
                      Ed25519PrivateKey)


# ---------------------------------------------------------------- openssl interop

def test_openssl_verifies_our_signature_with_the_readme_command(artifact: Path,
                                                                 tmp_path: Path,
                                                                 key: Ed25519PrivateKey) -> None:
    pub = _pem_public(key, tmp_path / "pub.pem")
    work = tmp_path / "verify"
    work.mkdir()
    for name in (MANIFEST_NAME, SIGNATURE_NAME):
        (work / name).write_bytes((artifact / name).read_bytes())
    (work / "pub.pem").write_bytes(pub.read_bytes())
    script = ("base64 -d manifest.json.sig > sig.bin && "
              f"{OPENSSL} pkeyutl -verify -pubin -inkey pub.pem -rawin -in manifest.json "
              "-sigfile sig.bin")
    ok = subprocess.run(["sh", "-c", script], cwd=work, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "Signature Verified Successfully" in ok.stdout
    (work / MANIFEST_NAME).write_bytes((work / MANIFEST_NAME).read_bytes().replace(b"7", b"8"))
    bad = subprocess.run(["sh", "-c", script], cwd=work, capture_output=True, text=True)
    assert bad.returncode != 0
    assert "Signature Verification Failure" in bad.stdout + bad.stderr


def test_we_verify_openssl_signatures_and_keys(tmp_path: Path) -> None:
    private = tmp_path / "openssl.key"
    public = tmp_path / "openssl.pub"
    subprocess.run([OPENSSL, "genpkey", "-algorithm", "ed25519", "-out", str(private)],
                   check=True, capture_output=True)
    subprocess.run([OPENSSL, "pkey", "-in", str(private), "-pubout", "-out", str(public)],
                   check=True, capture_output=True)
    env_dir = make_artifact(tmp_path / "prod")
    sig = subprocess.run([OPENSSL, "pkeyutl", "-sign", "-inkey", str(private), "-rawin",
                          "-in", str(env_dir / MANIFEST_NAME)],
                         check=True, capture_output=True).stdout
    (env_dir / SIGNATURE_NAME).write_bytes(base64.b64encode(sig) + b"\n")
    trusted = load_public_key(public)
    assert verify_artifact(env_dir, [trusted], environment="production").key_id == key_id(trusted)
    # And our signer, given openssl's key, produces the same (deterministic) bytes.
    ours = sign_manifest((env_dir / MANIFEST_NAME).read_bytes(), load_private_key(private))
    assert ours == base64.b64encode(sig) + b"\n"


def test_signature_text_may_be_wrapped(artifact: Path, key: Ed25519PrivateKey) -> None:
    text = (artifact / SIGNATURE_NAME).read_text().strip()
    wrapped = text[:40] + "\n" + text[40:] + "\r\n"
    manifest = (artifact / MANIFEST_NAME).read_bytes()
    assert verify_manifest(manifest, wrapped, [key.public_key()]) == key_id(key.public_key())


def test_runtime_side_imports_nothing_heavy() -> None:
    """magcfg.signing.signatures and magcfg.signing.attestation are used by the runtime kernel."""
    import sys

    code = ("import sys, magcfg.signing.signatures, magcfg.signing.attestation\n"
            "from magcfg.signing.signatures import Ed25519PrivateKey, sign_manifest\n"
            "sign_manifest(b'x', Ed25519PrivateKey.generate())\n"
            "heavy = {'typer', 'click', 'yaml', 'jsonschema', 'jsonschema_rs', 'orjson',\n"
            "         'deepdiff', 'git', 'ruamel', 'yaml_rs'}\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, env={**os.environ})
    assert done.stdout.strip() == "[]"


_PROPERTY_KEY = Ed25519PrivateKey.generate()


@given(st.binary(min_size=1, max_size=512), st.data())
def test_any_bit_flip_in_the_manifest_is_refused(manifest: bytes, data: st.DataObject) -> None:
    public = _PROPERTY_KEY.public_key()
    sig = sign_manifest(manifest, _PROPERTY_KEY)
    assert verify_manifest(manifest, sig, [public]) == key_id(public)
    index = data.draw(st.integers(0, len(manifest) - 1))
    bit = data.draw(st.integers(0, 7))
    flipped = bytearray(manifest)
    flipped[index] ^= 1 << bit
    with pytest.raises(VerificationError):
        verify_manifest(bytes(flipped), sig, [public])
