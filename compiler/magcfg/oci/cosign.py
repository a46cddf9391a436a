"""Signatures and attestations in the form cosign stores next to an image.

For an artifact at ``REPO@sha256:HEX``, cosign keeps:

* ``REPO:sha256-HEX.sig``: an image whose layers are *simple signing* payloads
  (``application/vnd.dev.cosign.simplesigning.v1+json``: which manifest digest, under
  which repository name), each with its signature in the layer annotation
  ``dev.cosignproject.cosign/signature`` (base64);
* ``REPO:sha256-HEX.att``: an image whose layers are DSSE envelopes
  (``application/vnd.dsse.envelope.v1+json``) of in-toto statements whose subject is the
  artifact, with the statement's ``predicateType`` as a layer annotation.

Both are made here with the project's Ed25519 key (pure Ed25519 over the payload, and
over the DSSE pre-authentication encoding), so ``cosign verify --key magcfg.pub
--insecure-ignore-tlog`` and ``cosign verify-attestation`` accept them, and Flux's
``verify.provider: cosign`` too. No transparency log is involved. Deterministic: the same
artifact, repository and key give the same bytes. Standard library and ``cryptography``
only (the runtime verifies with :func:`verify_signatures`).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..signing.attestation import PAYLOAD_TYPE, build_statement, pae
from .registry import OCI_MANIFEST, digest_of, parse_json

__all__ = ["ATTESTATION_MEDIA_TYPE", "SIGNATURE_ANNOTATION", "SIMPLE_SIGNING_MEDIA_TYPE",
           "attestation_layer", "image_manifest", "signature_layer", "simple_signing_payload",
           "tag_for", "verify_signatures"]

SIMPLE_SIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
ATTESTATION_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
_IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"


def tag_for(digest: str, suffix: str) -> str:
    """cosign's tag for the signatures (``sig``) or attestations (``att``) of ``digest``."""
    return digest.replace(":", "-") + "." + suffix


def simple_signing_payload(name: str, digest: str) -> bytes:
    """What cosign signs for an image: its manifest digest and repository name."""
    payload = {"critical": {"identity": {"docker-reference": name},
                            "image": {"docker-manifest-digest": digest},
                            "type": "cosign container image signature"},
               "optional": None}
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")


def signature_layer(name: str, digest: str,
                    private_key: Ed25519PrivateKey) -> tuple[bytes, dict[str, Any]]:
    """The signature layer's blob and descriptor for the artifact ``name@digest``."""
    payload = simple_signing_payload(name, digest)
    signature = base64.b64encode(private_key.sign(payload)).decode("ascii")
    return payload, {"mediaType": SIMPLE_SIGNING_MEDIA_TYPE, "digest": digest_of(payload),
                     "size": len(payload), "annotations": {SIGNATURE_ANNOTATION: signature}}


def attestation_layer(name: str, digest: str, manifest_bytes: bytes, files: Mapping[str, bytes],
                      private_key: Ed25519PrivateKey) -> tuple[bytes, dict[str, Any]]:
    """The attestation layer: the artifact's provenance (docs/signing.md) restated with
    the OCI artifact as its subject, in a DSSE envelope signed with ``private_key``."""
    statement = json.loads(build_statement(manifest_bytes, files))
    statement["subject"] = [{"name": name, "digest": {"sha256": digest.removeprefix("sha256:")}}]
    payload = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode("utf-8")
    envelope = {"payloadType": PAYLOAD_TYPE,
                "payload": base64.b64encode(payload).decode("ascii"),
                "signatures": [{"keyid": "", "sig": base64.b64encode(
                    private_key.sign(pae(PAYLOAD_TYPE, payload))).decode("ascii")}]}
    blob = json.dumps(envelope, separators=(",", ":")).encode("utf-8")
    return blob, {"mediaType": ATTESTATION_MEDIA_TYPE, "digest": digest_of(blob),
                  "size": len(blob),
                  # cosign reads every layer of its images as a signature; an attestation's
                  # signature is inside the envelope, so the annotation is empty.
                  "annotations": {"predicateType": statement["predicateType"],
                                  SIGNATURE_ANNOTATION: ""}}


def image_manifest(layers: Iterable[Mapping[str, Any]]) -> tuple[bytes, bytes]:
    """The image that holds signature or attestation ``layers``: (config blob, manifest)."""
    descriptors = [dict(layer) for layer in layers]
    config = json.dumps({
        "architecture": "", "config": {}, "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}], "os": "",
        "rootfs": {"type": "layers", "diff_ids": [d["digest"] for d in descriptors]},
    }, sort_keys=True, separators=(",", ":")).encode("utf-8")
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": _IMAGE_CONFIG, "digest": digest_of(config),
                           "size": len(config)},
                "layers": descriptors}
    return config, json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode("utf-8")


def verify_signatures(signature_manifest: Mapping[str, Any], payloads: Mapping[str, bytes],
                      digest: str, public_keys: Iterable[Ed25519PublicKey]) -> bool:
    """Whether one layer of a ``.sig`` image is a signature by a trusted key over a
    simple signing payload naming ``digest``. ``payloads`` maps layer digests to their
    blobs (already checked against those digests)."""
    keys = list(public_keys)
    layers = signature_manifest.get("layers")
    for layer in layers if isinstance(layers, list) else []:
        if not isinstance(layer, dict) or layer.get("mediaType") != SIMPLE_SIGNING_MEDIA_TYPE:
            continue
        payload = payloads.get(str(layer.get("digest")))
        annotations = layer.get("annotations")
        encoded = annotations.get(SIGNATURE_ANNOTATION) if isinstance(annotations, dict) else None
        if payload is None or not isinstance(encoded, str):
            continue
        try:
            raw = base64.b64decode(encoded, validate=True)
            claimed = parse_json(payload)["critical"]["image"]["docker-manifest-digest"]
        except (binascii.Error, ValueError, KeyError, TypeError):
            continue
        if claimed != digest or len(raw) != 64:
            continue
        for key in keys:
            try:
                key.verify(raw, payload)
            except InvalidSignature:
                continue
            return True
    return False

