"""Detached manifest signatures, and verification of an artifact's files against them.

Used by the CLI (``sign``, ``verify``) and by the runtime kernel, so this module
imports only ``cryptography`` and the standard library.

The signature format is the one stock tools verify: ``manifest.json.sig`` holds the
base64 of the raw 64-byte Ed25519 signature over the exact bytes of ``manifest.json``
(``openssl pkeyutl -verify -rawin``). Ed25519 is deterministic (RFC 8032), so signing
the same manifest with the same key always gives the same bytes and a signed tree stays
reproducible.

Verification order matters: the signature is checked over the manifest bytes *before*
the manifest is parsed, and every file is then compared with the digest the signed
manifest lists. :func:`verify_files` works on bytes already in memory, so a caller can
load exactly the bytes it verified (no check-then-reopen race).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from ..artifact import ATTESTATION, MANIFEST, SIGNATURE, ManifestError, load_manifest
from ..errors import Diagnostic, MagcfgError
from .keys import key_id

__all__ = ["ATTESTATION_NAME", "MANIFEST_NAME", "SIGNATURE_LENGTH", "SIGNATURE_NAME",
           "VerificationError", "VerifiedArtifact", "check_digests", "check_environment",
           "parse_manifest", "run_advice", "sha256_digest",
           "sign_manifest", "verify_files", "verify_manifest"]

MANIFEST_NAME = MANIFEST
SIGNATURE_NAME = SIGNATURE
ATTESTATION_NAME = ATTESTATION
SIGNATURE_LENGTH = 64


class VerificationError(MagcfgError):
    """The artifact is not the one that was signed.

    ``reason`` is machine-readable and matches the runtime's ``config.reload_failed``
    reasons: ``unsigned``, ``bad_signature``, ``digest_mismatch``, ``missing_file``,
    ``unreadable_file``, ``malformed_manifest``, ``environment_mismatch``,
    ``bad_attestation``, ``no_trusted_key``; and, of an artifact directory alone
    (``directory.verify_artifact``), ``unlisted_file``.
    """

    def __init__(self, file: str, message: str, reason: str) -> None:
        self.reason = reason
        self.file = file
        super().__init__([Diagnostic(file=file, line=None, key=None, message=message,
                                     code=reason)])



def run_advice(command: str, project: str | None) -> str:
    """What an error says to run to make an artifact's file again: ``magcfg COMMAND``
    with what it needs to find the project (``project``: ``project.project_option``'s),
    or, for an artifact of no project found here (``None``: pulled from a registry, a
    deploy branch's), in the project that built it: ``magcfg COMMAND`` run where it is
    read finds no project, or another one."""
    if project is None:
        return f"run `magcfg {command}` in the project that built it"
    return f"run `magcfg {command}{project}`"


def sha256_digest(data: bytes) -> str:
    """``sha256:<hex>``, the digest form manifests use."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sign_manifest(manifest_bytes: bytes, private_key: Ed25519PrivateKey) -> bytes:
    """The content of ``manifest.json.sig``: base64 of the raw signature, then a newline."""
    return base64.b64encode(private_key.sign(manifest_bytes)) + b"\n"


def _decode_signature(signature_text: bytes | str, file: str) -> bytes:
    text = signature_text.encode("ascii", "replace") if isinstance(signature_text, str) \
        else signature_text
    compact = b"".join(text.split())
    if not compact:
        raise VerificationError(file, "signature is empty", "bad_signature")
    try:
        raw = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise VerificationError(file, "signature is not valid base64",
                                "bad_signature") from None
    if len(raw) != SIGNATURE_LENGTH:
        raise VerificationError(file, f"signature is {len(raw)} bytes; an Ed25519 "
                                f"signature is {SIGNATURE_LENGTH}", "bad_signature")
    return raw


def _trusted(public_keys: Iterable[Ed25519PublicKey]) -> list[tuple[str, Ed25519PublicKey]]:
    keys = [(key_id(k), k) for k in public_keys]
    if not keys:
        raise VerificationError("", "no trusted public key given", "no_trusted_key")
    return keys


def _verify_raw(message: bytes, raw: bytes,
                keys: list[tuple[str, Ed25519PublicKey]]) -> str | None:
    for kid, key in keys:
        try:
            key.verify(raw, message)
        except InvalidSignature:
            continue
        return kid
    return None


def verify_manifest(manifest_bytes: bytes, signature_text: bytes | str,
                    public_keys: Iterable[Ed25519PublicKey], *,
                    signature_file: str = SIGNATURE_NAME) -> str:
    """Check a detached manifest signature against any of the trusted keys.

    Returns the id of the key that signed. Raises :class:`VerificationError` naming
    ``signature_file`` if the signature is malformed or made by no trusted key (several
    trusted keys at once allow rotation).
    """
    keys = _trusted(public_keys)
    raw = _decode_signature(signature_text, signature_file)
    kid = _verify_raw(manifest_bytes, raw, keys)
    if kid is None:
        trusted = ", ".join(k for k, _ in keys)
        raise VerificationError(signature_file,
                                "signature does not match the manifest under any trusted "
                                f"key (trusted: {trusted}); the manifest was changed after "
                                "signing or signed with another key", "bad_signature")
    return kid


class VerifiedArtifact(NamedTuple):
    """An artifact whose signature and file digests were checked.

    ``files`` holds the exact bytes that were verified (manifest excluded), keyed by the
    names the manifest lists.
    """

    key_id: str
    manifest: dict[str, Any]
    manifest_bytes: bytes
    files: dict[str, bytes]
    attestation_checked: bool = False
    members: Mapping[str, bytes] = MappingProxyType({})
    """Of an artifact directory (``directory.verify_artifact``): every file it holds, as
    verified (the manifest, its signature, the attestation, the listed files, and the
    ConfigMap and kustomization checked to be made of them): what goes out with it."""

    @property
    def version(self) -> int:
        """The manifest's version (checked: an integer from 1 to ``MAX_VERSION``)."""
        return int(self.manifest["version"])

    @property
    def environment(self) -> str:
        return str(self.manifest["environment"])

    @property
    def config_digest(self) -> str:
        return str(self.manifest["config_digest"])


def parse_manifest(manifest_bytes: bytes, file: str = MANIFEST_NAME) -> dict[str, Any]:
    """Parse manifest JSON strictly in the format of docs/artifact.md
    (:func:`magcfg.artifact.load_manifest`); ``VerificationError`` naming ``file`` and
    the field if it is not."""
    try:
        return load_manifest(manifest_bytes)
    except ManifestError as exc:
        raise VerificationError(file, str(exc), "malformed_manifest") from None


def check_environment(manifest: Mapping[str, Any], environment: str,
                      file: str = MANIFEST_NAME) -> None:
    """Refuse a verified manifest made for another environment than ``environment``: a
    valid signature says CI built it, not for whom (staging's artifact copied into
    production's directory verifies)."""
    if manifest.get("environment") != environment:
        raise VerificationError(file, f"is for environment {manifest.get('environment')!r}, "
                                f"not {environment!r}: another environment's artifact",
                                "environment_mismatch")


def verify_files(manifest_bytes: bytes, signature_text: bytes | str,
                 files: Mapping[str, bytes | None],
                 public_keys: Iterable[Ed25519PublicKey], *, environment: str,
                 prefix: str = "") -> VerifiedArtifact:
    """Verify an artifact held in memory, made for ``environment``.

    ``files`` maps names to bytes (``None`` for a missing file); every name the manifest
    lists must be present with the listed sha256. ``prefix`` is put before file names
    in errors (e.g. ``generated/production/``).
    """
    kid = verify_manifest(manifest_bytes, signature_text, public_keys,
                          signature_file=prefix + SIGNATURE_NAME)
    manifest = parse_manifest(manifest_bytes, prefix + MANIFEST_NAME)
    check_environment(manifest, environment, prefix + MANIFEST_NAME)
    checked = check_digests(manifest, files, prefix)
    return VerifiedArtifact(kid, manifest, manifest_bytes, checked)


def check_digests(manifest: dict[str, Any], files: Mapping[str, bytes | None],
                   prefix: str) -> dict[str, bytes]:
    checked: dict[str, bytes] = {}
    for name, expected in sorted(manifest["files"].items()):
        data = files.get(name)
        if data is None:
            raise VerificationError(prefix + name, "listed in the manifest but missing",
                                    "missing_file")
        actual = sha256_digest(data)
        if actual != expected:
            raise VerificationError(prefix + name,
                                    f"sha256 does not match the signed manifest "
                                    f"(manifest {expected[:19]}..., file {actual[:19]}...)",
                                    "digest_mismatch")
        checked[name] = data
    return checked


