"""MAG003: ``.env`` files where they do not belong.

A ``.env`` in a deploy path (``deploy/``, ``k8s/``, ``docker/``, ``helm/``, ... or the
``lint.deploy_paths`` of the project file) ships local secrets with the deployment. Any
other ``.env`` the walker sees is one git does not ignore (the walker lists only tracked
and not-ignored files), so it is one ``git add .`` away from being committed.
Example files (``.env.example``, ``.sample``, ``.template``, ``.dist``) are fine.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator

from ..errors import printable
from .context import LintContext, finding
from .findings import Finding
from .walk import SourceFile, listed_name

RULE = "MAG003"
EXAMPLE_SUFFIXES = frozenset({"example", "sample", "template", "tpl", "dist", "defaults"})


def is_dotenv(name: str) -> bool:
    """``.env`` or ``.env.<stage>``, but not an example file."""
    if name == ".env":
        return True
    if not name.startswith(".env."):
        return False
    return name.rsplit(".", 1)[-1].lower() not in EXAMPLE_SUFFIXES


def deploy_path_of(path: str, deploy_paths: tuple[str, ...]) -> str | None:
    """The configured deploy path that ``path`` lies in, matched as whole directory names
    at any depth (``services/api/k8s/.env`` is in ``k8s``)."""
    parts = path.split("/")[:-1]
    for deploy in deploy_paths:
        want = [p for p in deploy.split("/") if p]
        for i in range(len(parts) - len(want) + 1):
            if parts[i:i + len(want)] == want:
                return deploy
    return None


def check(src: SourceFile, ctx: LintContext) -> Iterator[Finding]:
    """Yield a finding if ``src`` is a ``.env`` in a deploy path or not git-ignored."""
    # A link holds no values: a `.env -> config/dev.env` commits a path, and the file it
    # leads to is linted under its own name.
    if not is_dotenv(src.name) or src.link:
        return
    deploy = deploy_path_of(src.path, ctx.config.deploy_paths)
    if deploy is not None:
        yield finding(src, 1, 1, RULE, f"`{src.name}` file in deploy path `{deploy}/`",
                      f"remove it; commit a `{src.name.split('.')[0]}.env.example` with "
                      "placeholders and deliver values as secret references "
                      "(ExternalSecret / secretKeyRef)")
    elif ctx.in_git:
        # The name is the pull request's: quoted, a space or a `$(...)` in it is no
        # second path or command for whoever runs the advice as it stands.
        named = printable(shlex.quote(listed_name(src.path)))
        yield finding(src, 1, 1, RULE, f"`{src.path}` is not git-ignored",
                      f"add `{src.name}` to .gitignore (and `git rm --cached -- {named}` if "
                      "it is tracked); commit a `.env.example` instead")
