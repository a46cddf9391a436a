"""The version gate for CI: no environment's manifest may go back, or change its
config under the same version, relative to a git ref (the target branch).

A plain ``git revert`` of a commit that touched ``generated/`` brings back an older
``version``, which ``build --check`` accepts (the tree is consistent) but every
running kernel refuses as a rollback. ``magcfg build --check --since origin/main``
catches it before it merges, and a version that jumps far ahead as well: a manifest
hand-edited to a version near ``MAX_VERSION`` and rebuilt is consistent too, and after
it every build would soon be refused while every kernel refuses any lower version.
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
from typing import TYPE_CHECKING

from ..artifact import MANIFEST, MAX_MANIFEST_BYTES
from ..compiler import BuildResult
from ..errors import Diagnostic, printable
from ..project import Project, project_option

if TYPE_CHECKING:
    from ..pipeline.gitsource import GitSource


MAX_VERSION_STEP = 1_000_000
"""The most an environment's version may rise over the ref's in one pull request: a
build raises it by one over what git holds (``compiler.version_bases``), so no history
of builds comes near, and at this step ``MAX_VERSION`` is 9 * 10^9 pull requests away."""


def check_since(project: Project, result: BuildResult, ref: str) -> list[Diagnostic]:
    """Compare each built environment's manifest with the one committed at ``ref``: an
    error for each that may not follow it, and a warning naming the project at ``ref``
    compared with where it is not the working tree's (renamed or moved since), or
    saying ``ref`` holds none (nothing compared)."""
    from ..pipeline.gitsource import ref_project_source
    from ..signing.signatures import VerificationError
    from ..signing.versions import SuccessionError, check_succession

    with ref_project_source(project, ref) as (source, file):
        output = _output_at(project, source, file)
        committed = {env: _committed(source, f"{output}/{env}/{MANIFEST}")
                     for env in result.artifacts}
        moved = file is not None and (file != project.file or source.name(".") != ".")
        ref_manifests = {env: posixpath.normpath(posixpath.join(source.prefix, output, env,
                                                                MANIFEST))
                         for env in result.artifacts}
        # No project file at the ref, but manifests where the working tree keeps them:
        # compared, as a project file's rename alone would leave them.
        unseen = file is None and all(raw is None for raw in committed.values())
        problems = _project_noted(project, source, file, output) if moved or unseen else []
    for env, artifact in sorted(result.artifacts.items()):
        path = f"{project.output}/{env}/{MANIFEST}"
        raw = committed[env]
        if raw is None:
            continue  # a new environment
        try:
            if len(raw) > MAX_MANIFEST_BYTES:
                raise ValueError("too large")
            before = json.loads(raw)
        except (ValueError, RecursionError):  # RecursionError: nested past the parser
            problems.append(Diagnostic(path, None, "version",
                                       f"the manifest at {ref} is not JSON", code="version"))
            continue
        after = json.loads(artifact.files[MANIFEST])
        try:
            check_succession(before, after, file=path)
            step = after["version"] - before["version"]
            if step > MAX_VERSION_STEP:
                restore = (f"{_restore(project, ref, env)}, commit it" if not moved
                           else f"{_restore_moved(project, ref, ref_manifests[env], path)}, "
                           "commit it")
                problems.append(Diagnostic(
                    path, None, "version",
                    f"version {after['version']} after {before['version']} at {ref}: a "
                    f"jump of {step}, more than the {MAX_VERSION_STEP} any history of builds "
                    f"makes (a build raises it by one), as a hand-edited manifest does: "
                    f"{restore}, then rebuild (`magcfg build{project_option(project)}`)",
                    code="version"))
        except (SuccessionError, VerificationError) as exc:
            reason = getattr(exc, "reason", "version")
            # A build numbers the version from the manifest HEAD or the index holds at
            # the working tree's path (compiler.version_bases): HEAD's is the older one
            # here, so the ref's goes into the index (where a move left it behind, at
            # the new path) for the build to number the version above it.
            rebuild = (f"{_restore(project, ref, env)}, then rebuild" if not moved else
                       f"{_restore_moved(project, ref, ref_manifests[env], path)}, then rebuild")
            problems.append(Diagnostic(
                path, None, "version",
                f"version {after.get('version')} after {before.get('version')} at {ref}: "
                f"{reason}; {rebuild} (`magcfg build{project_option(project)}`) "
                "so the version only goes up",
                code="version"))
    return problems


def _from_top(project: Project, *parts: str) -> str:
    """The project's path ``parts`` named from the repository's top, for a command run
    there, as CI and the hook run (quoted for a shell)."""
    from ..project import FromTop

    return shlex.quote(FromTop(project).name("/".join(parts)))


def _restore(project: Project, ref: str, env: str) -> str:
    """How to put back the artifact of ``env`` that ``ref`` holds, at the top of the
    repository, as CI and the hook run: the ref quoted, as a branch may be named
    ``a;b`` or ``$(x)``, which a shell would run."""
    # `HEAD~1` and `origin/main` as written: nothing in them is the shell's.
    shown = ref if re.fullmatch(r"[\w./@^+-][\w./@^~+-]*", ref) else shlex.quote(ref)
    return (f"restore the environment from {ref} at the repository's top (`git checkout "
            f"{printable(shown)} -- {_from_top(project, project.output, env)}/`)")


def _restore_moved(project: Project, ref: str, ref_manifest: str, path: str) -> str:
    """How to put the manifest ``ref`` holds at ``ref_manifest`` (from the top) where
    the working tree's project keeps it (``path``, in the project), staged: a command
    run at the top of the repository, as CI and the hook run."""
    here = printable(_from_top(project, path))
    return (f"put {ref}'s manifest in its place, at the repository's top (`git show "
            f"{printable(shlex.quote(f'{ref}:{ref_manifest}'))} > {here} && git add {here}`)")


def _project_noted(project: Project, source: GitSource, file: str | None, output: str
                   ) -> list[Diagnostic]:
    """A warning naming the project at the source's commit the manifests are compared
    with (``file``, renamed or moved since: ``ref_project_source``), or saying the
    commit holds none, nothing compared: CI's log says what the gate compared. A name
    in its text is from the project's directory, as the working tree's names are."""
    ref = source.ref
    if file is None:
        return [Diagnostic(project.file, None, None, (
            f"{ref} holds no project file here, nor one this change moved or removed: "
            f"each environment is new to the gate, no version compared with {ref}'s"),
            severity="warning", code="since_no_project")]
    return [Diagnostic(project.file, None, None, (
        f"the project at {ref} is {printable(source.name(file))} (renamed or moved since): "
        "each environment's manifest is compared with the one it kept, "
        f"{printable(source.name(output))}/ENV/{MANIFEST}"), severity="warning",
        code="since_project_moved")]


def _output_at(project: Project, source: GitSource, file: str | None) -> str:
    """The output directory of the project at the source's commit (``file`` in its
    directory, renamed or moved since, or none): where that commit holds the manifests
    the built ones succeed, whatever the working tree's project file says (a pull
    request that moves the project, or renames its output, compared nothing). The
    working tree's where the ref holds no project, or one that does not load there: its
    build's to judge, and a pull request mends it."""
    from ..errors import MagcfgError
    from ..pipeline.gitsource import project_at

    if file is None:
        return project.output
    try:
        at_ref = project_at(project, source, file)
    except MagcfgError:
        return project.output
    return project.output if at_ref is None else at_ref.output


def _committed(source: GitSource, path: str) -> bytes | None:
    """The bytes of ``path`` at the source's commit, None if it has none there."""
    try:
        with source.errors_at_ref():
            return source.read(path)
    except FileNotFoundError:
        return None
