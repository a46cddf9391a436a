"""What a build writes beside the manifest for signing and GitOps delivery.

``build`` never holds the private key, but it must keep ``generated/<env>/`` coherent
with what ``sign`` wrote before:

* if the build leaves ``manifest.json``'s bytes unchanged, the existing signature and
  attestation still hold: ``configmap.yaml`` carries the existing ``manifest.json.sig``,
  byte for byte as ``sign`` rendered it, so ``build --check`` stays clean after ``sign``;
* if the manifest changes, the old signature and attestation no longer match and are
  deleted (the artifact is unsigned until ``sign`` runs again), and ``configmap.yaml``
  carries no signature.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from .configmap import CONFIGMAP_NAME, MAX_CONFIGMAP_BYTES, configmap_files, render_configmap
from .errors import Diagnostic
from .sign import ATTESTATION_NAME, MANIFEST_NAME, SIGNATURE_NAME

__all__ = ["delivery_outputs"]


def delivery_outputs(root: Path, base: str, env: str, files: Mapping[str, bytes]
                     ) -> tuple[dict[str, bytes | None], list[Diagnostic]]:
    """Outputs (path relative to ``root`` -> bytes, or ``None`` to delete) for the built
    artifact ``files`` of ``env`` in directory ``base``, and warnings.

    ``files`` holds ``manifest.json`` and every file it lists, as the build emits them.
    """
    directory = root / base
    outputs: dict[str, bytes | None] = {}
    members = dict(files)
    if _read(directory / MANIFEST_NAME) == files[MANIFEST_NAME]:
        signature = _read(directory / SIGNATURE_NAME)
        if signature is not None:
            members[SIGNATURE_NAME] = signature
    else:
        outputs[f"{base}/{SIGNATURE_NAME}"] = None
        outputs[f"{base}/{ATTESTATION_NAME}"] = None
    carried = configmap_files(members)
    size = sum(len(name) + len(data) for name, data in carried.items())
    if size > MAX_CONFIGMAP_BYTES:
        # Too large for Kubernetes: leave no stale ConfigMap behind, and say so.
        outputs[f"{base}/{CONFIGMAP_NAME}"] = None
        return outputs, [Diagnostic(
            f"{base}/{CONFIGMAP_NAME}", None, None,
            f"not written: the artifact is {size} bytes and a Kubernetes ConfigMap holds "
            f"at most {MAX_CONFIGMAP_BYTES}; deliver {base}/ another way",
            severity="warning", code="configmap_too_large")]
    outputs[f"{base}/{CONFIGMAP_NAME}"] = render_configmap(env, carried)
    return outputs, []


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
