"""Version succession: which verified artifact may replace the running one.

Versions only go up (docs/versioning.md): an older version is a rollback attack unless
allowed explicitly, and a different config claiming the running version is a conflict.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..artifact import MAX_VERSION, is_version
from .signatures import MANIFEST_NAME, VerificationError

__all__ = ["SuccessionError", "check_succession"]


class SuccessionError(VerificationError):
    """A verified candidate may not replace the running artifact (docs/versioning.md).

    ``reason`` is ``rollback_refused`` (older version), ``version_conflict`` (same version,
    different config) or ``environment_mismatch``.
    """


def check_succession(running: Mapping[str, Any], candidate: Mapping[str, Any], *,
                     allow_rollback: bool = False, file: str = MANIFEST_NAME) -> str:
    """Decide whether the manifest ``candidate`` may replace ``running``.

    Both manifests must already be verified. Returns ``"newer"`` (apply it) or
    ``"same"`` (same version and config digest: nothing to do). Raises
    :class:`SuccessionError` for an older version (a rollback attack, unless
    ``allow_rollback``), for a different config claiming the running version, or for
    another environment's artifact.
    """
    if running.get("environment") != candidate.get("environment"):
        raise SuccessionError(file, f"is for environment {candidate.get('environment')!r}, "
                              f"not {running.get('environment')!r}", "environment_mismatch")
    old, new = running.get("version"), candidate.get("version")
    if not is_version(old) or not is_version(new):
        raise VerificationError(file, f"has no valid version (an integer from 1 to "
                                f"{MAX_VERSION})", "malformed_manifest")
    if new > old:
        return "newer"
    if new == old:
        if candidate.get("config_digest") != running.get("config_digest"):
            raise SuccessionError(file, f"claims version {new}, which is running with a "
                                  "different config_digest: two builds of one version "
                                  "(rebuild after merging) or a forged artifact",
                                  "version_conflict")
        return "same"
    if allow_rollback:
        return "newer"
    raise SuccessionError(file, f"version {new} is older than the running version {old}: "
                          "refused as a rollback (allow rollbacks explicitly to go back)",
                          "rollback_refused")

