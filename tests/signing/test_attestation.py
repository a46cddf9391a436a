"""DSSE envelope with an in-toto Statement v1 / SLSA provenance v1 predicate."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from magcfg.signing.attestation import (
    BUILD_TYPE,
    PAYLOAD_TYPE,
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    pae,
    sign_attestation,
    verify_attestation,
)
from magcfg.signing.directory import sign_artifact, verify_artifact
from magcfg.signing.keys import Ed25519PrivateKey, key_id
from magcfg.signing.signatures import ATTESTATION_NAME, MANIFEST_NAME, VerificationError
from tests.signing.fixtures import LISTED, make_artifact


def _members(env_dir: Path) -> dict[str, bytes]:
    return {name: (env_dir / name).read_bytes() for name in (MANIFEST_NAME, *LISTED)}


def test_pae_matches_the_dsse_spec_example() -> None:
    # From the DSSE v1 protocol description.
    assert pae("http://example.com/HelloWorld", b"hello world") == \
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"


def test_envelope_shape_and_statement(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    env_dir = make_artifact(tmp_path / "production")
    sign_artifact(env_dir, "production", key)
    envelope = json.loads((env_dir / ATTESTATION_NAME).read_bytes())
    assert envelope["payloadType"] == PAYLOAD_TYPE
    [signature] = envelope["signatures"]
    assert signature["keyid"] == key_id(key.public_key())
    payload = base64.b64decode(envelope["payload"])
    key.public_key().verify(base64.b64decode(signature["sig"]), pae(PAYLOAD_TYPE, payload))

    statement = json.loads(payload)
    assert statement["_type"] == STATEMENT_TYPE
    assert statement["predicateType"] == PREDICATE_TYPE
    subjects = {s["name"]: s["digest"]["sha256"] for s in statement["subject"]}
    assert subjects == {name: hashlib.sha256(data).hexdigest()
                        for name, data in _members(env_dir).items()}
    definition = statement["predicate"]["buildDefinition"]
    assert definition["buildType"] == BUILD_TYPE
    assert definition["externalParameters"] == {"environment": "production"}
    manifest = json.loads((env_dir / MANIFEST_NAME).read_bytes())
    deps = {d["name"]: d["digest"]["sha256"] for d in definition["resolvedDependencies"]}
    assert deps == {"inputs": manifest["inputs"]["digest"].removeprefix("sha256:"),
                    "schemas/magflock.schema.json":
                        manifest["schema"]["digest"].removeprefix("sha256:")}
    run = statement["predicate"]["runDetails"]
    assert run["builder"]["version"] == {"magcfg": "0.1.0"}
    # Clock-free: no timestamps anywhere.
    assert "startedOn" not in json.dumps(statement)
    assert "finishedOn" not in json.dumps(statement)


def test_envelope_is_deterministic(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    a = make_artifact(tmp_path / "a")
    members = _members(a)
    files = {n: members[n] for n in LISTED}
    first = sign_attestation(members[MANIFEST_NAME], files, key)
    assert first == sign_attestation(members[MANIFEST_NAME], files, key)
    assert first.endswith(b"}\n")


def test_verify_checks_subjects_and_signer(tmp_path: Path) -> None:
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    env_dir = make_artifact(tmp_path / "p")
    members = _members(env_dir)
    files = {n: members[n] for n in LISTED}
    envelope = sign_attestation(members[MANIFEST_NAME], files, key)
    statement = verify_attestation(envelope, members, [other.public_key(), key.public_key()])
    assert statement["_type"] == STATEMENT_TYPE

    with pytest.raises(VerificationError, match="no signature by a trusted key"):
        verify_attestation(envelope, members, [other.public_key()])
    changed = {**members, "config.json": b"{}\n"}
    with pytest.raises(VerificationError, match=r"sha256 of config\.json"):
        verify_attestation(envelope, changed, [key.public_key()])
    extra = {**members, "new.txt": b"x"}
    with pytest.raises(VerificationError, match=r"does not cover new\.txt"):
        verify_attestation(envelope, extra, [key.public_key()])
    fewer = {n: d for n, d in members.items() if n != "vault-policy.hcl"}
    with pytest.raises(VerificationError, match=r"vault-policy\.hcl"):
        verify_attestation(envelope, fewer, [key.public_key()])


def test_tampered_payload_is_refused(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    env_dir = make_artifact(tmp_path / "p")
    sign_artifact(env_dir, "production", key)
    path = env_dir / ATTESTATION_NAME
    envelope = json.loads(path.read_bytes())
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["predicate"]["buildDefinition"]["externalParameters"]["environment"] = "dev"
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    path.write_text(json.dumps(envelope))
    with pytest.raises(VerificationError) as info:
        verify_artifact(env_dir, [key.public_key()], display="generated/production",
                        environment="production")
    assert info.value.reason == "bad_attestation"
    assert info.value.file == f"generated/production/{ATTESTATION_NAME}"
    # The raw manifest signature alone still verifies when the attestation is skipped.
    assert not verify_artifact(env_dir, [key.public_key()], attestation=False,
                               environment="production")\
        .attestation_checked


@pytest.mark.parametrize("content", [b"not json", b"[]", b'{"payloadType": "x"}',
                                     # Nested past json's parser: RecursionError before.
                                     b"[" * 100_000 + b"]" * 100_000,
                                     b'{"payloadType": "application/vnd.in-toto+json", '
                                     b'"payload": "%%%", "signatures": []}'])
def test_malformed_envelopes(tmp_path: Path, content: bytes) -> None:
    key = Ed25519PrivateKey.generate()
    env_dir = make_artifact(tmp_path / "p")
    sign_artifact(env_dir, "production", key)
    (env_dir / ATTESTATION_NAME).write_bytes(content)
    with pytest.raises(VerificationError, match=ATTESTATION_NAME):
        verify_artifact(env_dir, [key.public_key()], environment="production")


def test_a_signed_payload_nested_past_the_parser_is_refused() -> None:
    key = Ed25519PrivateKey.generate()
    payload = b"[" * 100_000 + b"]" * 100_000
    envelope = json.dumps({
        "payload": base64.b64encode(payload).decode(), "payloadType": PAYLOAD_TYPE,
        "signatures": [{"sig": base64.b64encode(key.sign(pae(PAYLOAD_TYPE, payload))).decode()}],
    }).encode()
    with pytest.raises(VerificationError, match="payload is not JSON"):
        verify_attestation(envelope, {}, [key.public_key()])
