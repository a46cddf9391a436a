"""The build's side of signing and GitOps delivery: ``configmap.yaml``.

``build`` never holds the private key, but it keeps ``generated/<env>/`` coherent with
what ``sign`` wrote before:

* if the build leaves ``manifest.json``'s bytes unchanged, the existing signature still
  holds: ``configmap.yaml`` carries the existing ``manifest.json.sig`` exactly as
  ``sign`` rendered it, so ``build --check`` stays clean after ``sign``;
* if the manifest changes, the compiler deletes the old signature and attestation
  (:data:`STALE_WHEN_MANIFEST_CHANGES`) and ``configmap.yaml`` carries no signature
  until ``sign`` runs again.

An artifact too large for a ConfigMap (Kubernetes' 1 MiB) gets a warning and no
``configmap.yaml``, rather than a file the cluster would refuse. One too large for
client-side apply (its last-applied annotation, capped at 256 KiB) gets a warning
naming the fix.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson

from ..artifact import ATTESTATION, SIGNED_FILES, size_limit
from ..artifact import MANIFEST as MANIFEST_NAME
from ..artifact import SIGNATURE as SIGNATURE_NAME
from ..durable import read_if_present, real_directory
from ..errors import Diagnostic
from .configmap import CONFIGMAP_NAME, MAX_CONFIGMAP_BYTES, configmap_files, render_configmap

if TYPE_CHECKING:
    from ..pipeline.context import CompileContext

__all__ = ["LAST_APPLIED_BYTES", "STALE_WHEN_MANIFEST_CHANGES", "configmap_emitter",
           "configmap_size_check", "fits_client_side_apply", "fits_configmap"]

LAST_APPLIED_BYTES = 256 * 1024
"""Kubernetes caps an object's annotations at 256 KiB in total. Client-side ``kubectl
apply`` (and Argo CD's default sync) stores the whole object, as JSON, in the
``kubectl.kubernetes.io/last-applied-configuration`` annotation."""

ATTESTATION_NAME = ATTESTATION
STALE_WHEN_MANIFEST_CHANGES = SIGNED_FILES

_RESERVED = 64 * 1024
# Room kept in the ConfigMap for the manifest, the signature and the other emitted
# files, so that whether configmap.yaml is written depends on config.json alone and the
# warning (issued before the manifest exists) always agrees with the emitter.
_RESERVED_SMALL = 16 * 1024
# The same for the last-applied annotation: the manifest, the signature, the other files
# and the object's metadata, as a JSON document.


def fits_configmap(config_json: bytes) -> bool:
    """Whether an artifact with this ``config.json`` is delivered as a ConfigMap."""
    return len(config_json) <= MAX_CONFIGMAP_BYTES - _RESERVED


def fits_client_side_apply(config_json: bytes) -> bool:
    """Whether the ConfigMap of an artifact with this ``config.json`` stays under the
    last-applied annotation's cap: config.json as a JSON string (escaped, as the
    annotation carries it) plus the room kept for the rest."""
    if len(config_json) + _RESERVED_SMALL <= LAST_APPLIED_BYTES // 2:
        return True  # even if every byte were escaped to two: no need to measure
    escaped = len(orjson.dumps(config_json.decode("utf-8", "replace")))
    return escaped + _RESERVED_SMALL <= LAST_APPLIED_BYTES


def configmap_size_check(context: CompileContext) -> list[Diagnostic]:
    """Document check: warn when the environment is too large for a ConfigMap, or for
    applying that ConfigMap client-side."""
    base = f"{context.project.output}/{context.env}"
    if fits_configmap(context.config_json):
        if fits_client_side_apply(context.config_json):
            return []
        return [Diagnostic(
            f"{base}/{CONFIGMAP_NAME}", None, None,
            f"config.json is {len(context.config_json)} bytes: the ConfigMap is too large for "
            "client-side `kubectl apply` and Argo CD's default sync (its last-applied-"
            f"configuration annotation holds at most {LAST_APPLIED_BYTES} bytes); apply it "
            "server-side (`kubectl apply --server-side`, Argo CD's ServerSideApply=true; Flux "
            "always does) or deliver it as an OCI artifact (`magcfg publish`)",
            severity="warning", code="configmap_client_side_apply")]
    return [Diagnostic(
        f"{base}/{CONFIGMAP_NAME}", None, None,
        f"not written: config.json is {len(context.config_json)} bytes and a Kubernetes "
        f"ConfigMap holds at most {MAX_CONFIGMAP_BYTES} with the manifest; deliver "
        f"{base}/ another way", severity="warning", code="configmap_too_large")]


def configmap_emitter(context: CompileContext, files: dict[str, bytes]) -> dict[str, bytes]:
    """Delivery emitter: ``configmap.yaml`` for the built ``files`` (manifest included)."""
    if not fits_configmap(context.config_json):
        return {}
    members = dict(files)
    rel = f"{context.project.output}/{context.env}"
    directory = real_directory(context.project.root, rel)
    if read_if_present(directory / MANIFEST_NAME, f"{rel}/{MANIFEST_NAME}",
                       size_limit(MANIFEST_NAME)) == files[MANIFEST_NAME]:
        signature = read_if_present(directory / SIGNATURE_NAME, f"{rel}/{SIGNATURE_NAME}",
                                    size_limit(SIGNATURE_NAME))
        if signature is not None:
            members[SIGNATURE_NAME] = signature
    return {CONFIGMAP_NAME: render_configmap(context.env, configmap_files(members))}
