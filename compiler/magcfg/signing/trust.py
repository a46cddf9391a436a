"""Trusted signing keys named in the project file.

``signing: {public_keys: [path, ...]}`` lists the public keys ``verify`` (and the
runtime, when given the project) accepts; list two during a key rotation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..durable import PathError, Tree
from ..errors import BuildError, Diagnostic
from .keys import Ed25519PublicKey, KeyLoadError, load_public_key_pem

if TYPE_CHECKING:
    from ..project import Project

__all__ = ["project_public_key_paths", "project_public_keys"]


def project_public_key_paths(project: Project) -> list[str]:
    """The ``signing.public_keys`` paths, relative to the project root (may be empty)."""
    from ..syntax.locate import locate

    section = project.settings.get("signing")
    if section is None:
        return []
    raw = project.raw

    def error(keypath: tuple[str, ...], message: str) -> BuildError:
        return BuildError([Diagnostic(project.file, locate(project.file, raw, keypath),
                                      ".".join(keypath), message, code="project")])

    if not isinstance(section, dict) or set(section) - {"public_keys"}:
        raise error(("signing",), "signing is a mapping with the key public_keys")
    paths = section.get("public_keys", [])
    if not isinstance(paths, list) or not all(isinstance(p, str) and p for p in paths):
        raise error(("signing", "public_keys"), "public_keys is a list of file paths")
    return list(paths)


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
