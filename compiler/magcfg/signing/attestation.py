"""Supply-chain attestation: an in-toto Statement v1 with SLSA provenance v1, in DSSE.

``sign`` writes ``generated/<env>/attestation.dsse.json`` beside the raw manifest
signature so that tooling which speaks in-toto (cosign ``verify-blob-attestation``,
policy engines, SLSA verifiers) can consume the artifact. The envelope is signed with the
same Ed25519 key over the DSSE pre-authentication encoding (PAE).

Everything is derived from the signed manifest and the artifact's bytes, never from the
clock, the host or the commit: the statement has no ``startedOn``/``finishedOn``, so the
same artifact and key give a byte-identical envelope (Ed25519 is deterministic).

Imports only the standard library and ``cryptography`` (the runtime verifies this too).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from .keys import key_id
from .signatures import MANIFEST_NAME, VerificationError, run_advice

__all__ = [
    "BUILDER_ID",
    "BUILD_TYPE",
    "PAYLOAD_TYPE",
    "PREDICATE_TYPE",
    "STATEMENT_TYPE",
    "build_statement",
    "pae",
    "sign_attestation",
    "verify_attestation",
]

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "urn:magcfg:build:v1"
"""What a magcfg build is: the layers of one environment compiled by the compiler named
in ``internalParameters``; ``resolvedDependencies`` carries the input and schema digests."""
BUILDER_ID = "urn:magcfg:compiler"


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what is actually signed."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def _hex(digest: object) -> str | None:
    if isinstance(digest, str) and digest.startswith("sha256:"):
        return digest.removeprefix("sha256:")
    return None


def build_statement(manifest_bytes: bytes, files: Mapping[str, bytes]) -> bytes:
    """The in-toto Statement (canonical JSON bytes) for an artifact.

    Subjects are ``manifest.json`` and every file in ``files`` (the ones the manifest
    lists), named relative to the artifact directory, with their sha256.
    """
    manifest = json.loads(manifest_bytes)
    subjects = {MANIFEST_NAME: manifest_bytes, **files}
    compiler = manifest.get("compiler")
    if not isinstance(compiler, dict):
        compiler = {}
    dependencies: list[dict[str, Any]] = []
    inputs = manifest.get("inputs", {})
    if isinstance(inputs, dict) and _hex(inputs.get("digest")):
        dependencies.append({"name": "inputs", "digest": {"sha256": _hex(inputs["digest"])},
                             "annotations": {"files": inputs.get("files")}})
    schema = manifest.get("schema", {})
    if isinstance(schema, dict) and _hex(schema.get("digest")):
        dependencies.append({"name": str(schema.get("path", "schema")),
                             "digest": {"sha256": _hex(schema["digest"])}})
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": {"sha256": hashlib.sha256(data).hexdigest()}}
                    for name, data in sorted(subjects.items())],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {"environment": manifest.get("environment")},
                "internalParameters": {"compiler": compiler,
                                       "format": manifest.get("format")},
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                "builder": {"id": BUILDER_ID,
                            "version": {str(compiler.get("name", "magcfg")):
                                        str(compiler.get("version", ""))}},
                "metadata": {"invocationId": f"{manifest.get('environment')}"
                                             f"@{manifest.get('version')}"},
            },
        },
    }
    return json.dumps(statement, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True).encode("ascii")


def sign_attestation(manifest_bytes: bytes, files: Mapping[str, bytes],
                     private_key: Ed25519PrivateKey) -> bytes:
    """The DSSE envelope (JSON bytes, trailing newline) of the artifact's statement."""
    payload = build_statement(manifest_bytes, files)
    signature = private_key.sign(pae(PAYLOAD_TYPE, payload))
    envelope = {
        "payload": base64.b64encode(payload).decode("ascii"),
        "payloadType": PAYLOAD_TYPE,
        "signatures": [{"keyid": key_id(private_key.public_key()),
                        "sig": base64.b64encode(signature).decode("ascii")}],
    }
    return (json.dumps(envelope, sort_keys=True, indent=2) + "\n").encode("ascii")


def _b64(value: object) -> bytes | None:
    # DSSE allows standard or URL-safe base64.
    if not isinstance(value, str):
        return None
    try:
        if "-" in value or "_" in value:
            return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def verify_attestation(envelope_bytes: bytes, subjects: Mapping[str, bytes],
                       public_keys: Iterable[Ed25519PublicKey], *,
                       file: str = "attestation.dsse.json", project: str | None = ""
                       ) -> dict[str, Any]:
    """Check a DSSE envelope: a trusted signature over the PAE, and subjects that are
    exactly ``subjects`` (names and sha256). Returns the statement. ``project`` is what
    the command an error advises needs to find the project (``signatures.run_advice``'s)."""

    def fail(message: str) -> VerificationError:
        return VerificationError(file, message, "bad_attestation")

    try:
        envelope = json.loads(envelope_bytes)
    except (UnicodeDecodeError, ValueError, RecursionError):  # nested past the parser
        raise fail("not valid JSON") from None
    if not isinstance(envelope, dict) or envelope.get("payloadType") != PAYLOAD_TYPE:
        raise fail(f"not a DSSE envelope with payloadType {PAYLOAD_TYPE}")
    payload = _b64(envelope.get("payload"))
    if payload is None:
        raise fail("payload is not base64")
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list) or not signatures:
        raise fail("has no signatures")
    message = pae(PAYLOAD_TYPE, payload)
    keys = list(public_keys)
    verified = False
    for entry in signatures:
        raw = _b64(entry.get("sig")) if isinstance(entry, dict) else None
        if raw is None or len(raw) != 64:
            continue
        for key in keys:
            try:
                key.verify(raw, message)
            except InvalidSignature:
                continue
            verified = True
            break
        if verified:
            break
    if not verified:
        raise fail("no signature by a trusted key")
    try:
        statement = json.loads(payload)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise fail("payload is not JSON") from None
    if not isinstance(statement, dict) or statement.get("_type") != STATEMENT_TYPE:
        raise fail(f"payload is not an in-toto Statement ({STATEMENT_TYPE})")
    claimed: dict[str, str] = {}
    for subject in statement.get("subject") or []:
        digest = subject.get("digest") if isinstance(subject, dict) else None
        if not isinstance(digest, dict) or not isinstance(subject.get("name"), str):
            raise fail("malformed subject")
        claimed[subject["name"]] = str(digest.get("sha256"))
    actual = {name: hashlib.sha256(data).hexdigest() for name, data in subjects.items()}
    for name in sorted(set(claimed) | set(actual)):
        if name not in actual:
            raise fail(f"names subject {name!r}, which the artifact does not have")
        if name not in claimed:
            advice = run_advice("sign", project)
            raise fail(f"does not cover {name} (stale attestation: {advice})")
        if claimed[name] != actual[name]:
            raise fail(f"sha256 of {name} does not match the attested subject")
    return statement
