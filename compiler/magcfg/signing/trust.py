"""Trusted signing keys named in the project file.

``signing: {public_keys: [path, ...]}`` lists the public keys ``verify`` (and the
runtime, when given the project) accepts; list two during a key rotation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..durable import PathError, Tree
from ..errors import Diagnostic
from .keys import Ed25519PublicKey, KeyLoadError, load_public_key_pem

if TYPE_CHECKING:
    from ..project import Project

__all__ = ["project_public_key_paths", "project_public_keys"]


def project_public_key_paths(project: Project) -> list[str]:
    """The ``signing.public_keys`` paths, relative to the project root (may be empty);
    ``load_project`` has checked the section."""
    section = project.settings.get("signing") or {}
    return list(section.get("public_keys", []))


def project_public_keys(project: Project) -> list[Ed25519PublicKey]:
    """Load the project's trusted public keys; errors name the key file. A key file is
    a regular file inside the repository (the project file is as hostile as the rest)."""
    tree = Tree(project.root, project.fenced)
    keys = []
    for path in project_public_key_paths(project):
        try:
            data = tree.read_optional(path)
        except PathError as exc:
            raise KeyLoadError(exc.diagnostics) from None
        if data is None:
            raise KeyLoadError([Diagnostic(path, None, None, "key file not found")])
        keys.append(load_public_key_pem(data, path))
    return keys
