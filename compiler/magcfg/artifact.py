"""The layout of an artifact directory (``generated/<env>/``): the names of its files.

Every module that writes, signs, ships or verifies an artifact takes the names from
here, so the build, ``sign``, delivery and the runtime kernel agree on them.
"""

from __future__ import annotations

import json

__all__ = ["ATTESTATION", "CONFIG", "CONFIGMAP", "MANIFEST", "SIGNATURE", "SIGNED_FILES",
           "written_names"]

CONFIG = "config.json"
"""The merged configuration (listed in the manifest)."""
MANIFEST = "manifest.json"
"""Environment, version and the sha256 of every listed file (docs/artifact.md)."""
SIGNATURE = "manifest.json.sig"
"""Base64 of the Ed25519 signature over the exact bytes of ``manifest.json``."""
ATTESTATION = "attestation.dsse.json"
"""The in-toto statement over the manifest and its files, in a DSSE envelope."""
CONFIGMAP = "configmap.yaml"
"""The artifact as a Kubernetes ConfigMap (not listed in the manifest)."""

SIGNED_FILES = (SIGNATURE, ATTESTATION)
"""Files ``sign`` makes over the manifest's bytes: they hold only while it is unchanged."""


def written_names(manifest: bytes | None) -> frozenset[str]:
    """The files of an artifact directory that magcfg wrote, judged by its manifest:
    the files it lists, the manifest, and what ``sign`` and delivery add. A build or
    ``sign`` replaces or deletes these and no others. Only plain names count (a
    manifest is hostile input: ``../x`` or ``a/b`` names nothing here)."""
    names = {MANIFEST, CONFIGMAP, *SIGNED_FILES}
    try:
        listed = json.loads(manifest or b"{}").get("files")
    except (ValueError, AttributeError, RecursionError):
        listed = None
    if isinstance(listed, dict):
        names.update(name for name in listed if isinstance(name, str) and name
                     and "/" not in name and "\0" not in name and name not in (".", ".."))
    return frozenset(names)
