"""What the target of a pull request accepted (``lint --since REF``): the exemptions that
come from the repository's files, the ``lint:`` settings of the project file and the
baseline in use, as REF holds them.

A pull request controls its own versions of both files: an exemption honoured as it
holds it would let a pull request pass its own secret (``lint.exclude: ["**"]``, an
entry for its new token in the baseline). The gate honours an exemption that both REF
and the pull request hold: one the pull request adds applies once it is merged, to the
next pull request; one it takes away (an entry removed, a glob narrowed, a rule enabled)
applies at once. Where REF holds no such file (the pull request adopts the project file
or the baseline), that file's exemptions reach the files REF holds as the pull request
leaves them (what the project is adopted over: fixtures, vendored code), never one the
pull request adds or changes, nor a version a commit since REF holds: neither a glob nor
a baseline the pull request writes tells the lines REF held from those it puts beside
them. ``--exclude`` and a project file or baseline outside the repository are the
operator's, and apply as given. Inline suppressions sit on the line they cover, in the
diff a reviewer reads, and apply as written (docs/lint.md, "A pull request's
exemptions")."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from ..errors import BuildError, printable
from . import baseline as baseline_mod
from . import history
from .config import LintConfig, excluded, parse_config
from .findings import Finding
from .walk import SourceFile, listed_name

AFTER_MERGE = "exemptions apply after merge"
"""What a finding an exemption of the pull request's alone would pass says of it."""


@dataclass(frozen=True)
class Target:
    """The exemptions REF holds, for a run whose own are ``own`` (the work tree's project
    file, with ``--exclude``)."""

    ref: str
    """REF as given: what the notes name."""
    own: LintConfig
    config: LintConfig | None
    """The settings of REF's version of the project file (those of no setting where it
    does not load, is too large to read, or is not there); None where the project file
    is outside the repository, or none is in use: the run's own apply."""
    accepted: Counter[str] | None
    """REF's version of the baseline in use (none accepted where it does not load, or is
    not there); None where none in the repository is in use."""
    project_adopted: bool = False
    """REF holds no version of the project file: its exemptions reach ``unchanged``."""
    baseline_adopted: bool = False
    """REF holds no version of the baseline: its entries reach ``unchanged``."""
    unchanged: frozenset[str] = frozenset()
    """Where a file is adopted: the files (as listed) REF holds as the work tree does."""

    def excludes(self, name: str, committed: bool = False) -> bool:
        """Whether the gate passes over ``name`` (as listed; ``committed``: a version a
        commit since REF holds): a glob of ``--exclude`` names it, or one of the project
        file's does and one of REF's version does too, or REF holds no version and the
        file is one it holds as the pull request leaves it."""
        if excluded(name, self.own.command_exclude):
            return True
        if not excluded(name, self.own.exclude):
            return False
        if self.config is None or excluded(name, self.config.exclude):
            return True
        return self.project_adopted and self._unchanged(name, committed)

    def _unchanged(self, name: str, committed: bool) -> bool:
        """Whether ``name`` is a file REF holds as the work tree does, as read here: a
        version a commit since REF holds is the pull request's, whatever its name."""
        return not committed and name in self.unchanged

    def disabled(self, finding: Finding) -> bool:
        """Whether a rule of the project file's ``lint.disable`` passes ``finding`` where
        REF holds no version of it (``applied`` runs every rule then): in a file REF holds
        as the pull request leaves it."""
        return (self.project_adopted and finding.rule in self.own.disable
                and self._unchanged(listed_name(finding.file), bool(finding.commit)))

    def applied(self) -> LintConfig:
        """``own`` with the rules disabled that REF disables too (none where REF holds no
        version: ``disabled`` passes the findings of the files they reach). Its other
        settings exempt nothing: a tracked ``.env`` is MAG003 in a deploy path or not,
        and a Direct-Vault declaration is the project's, reviewed with its
        justification."""
        if self.config is None:
            return self.own
        return replace(self.own, disable=tuple(r for r in self.own.disable
                                               if r in self.config.disable))

    def new_findings(self, found: Sequence[Finding], accepted: Counter[str]
                     ) -> tuple[list[Finding], int]:
        """``baseline.new_findings`` of ``found``, the baseline in use accepting as many
        of each fingerprint as REF's version accepts too, or, where REF holds no version,
        those of the files REF holds as the pull request leaves them."""
        if self.accepted is None:
            return baseline_mod.new_findings(found, accepted)
        if not self.baseline_adopted:
            return baseline_mod.new_findings(found, accepted & self.accepted)
        reached = [f for f in found if self._unchanged(listed_name(f.file), bool(f.commit))]
        new, matched = baseline_mod.new_findings(reached, accepted)
        passed = set(reached).difference(new)
        return [f for f in found if f not in passed], matched

    def noted(self, findings: Sequence[Finding], own_new: set[Finding],
              baseline: SourceFile | None) -> list[Finding]:
        """``findings`` (those failing the gate), each that an exemption of the pull
        request's alone would pass saying which, where, and that it applies after merge.
        ``own_new``: those the pull request's baseline fails (all without one);
        ``baseline``: that baseline, as read."""
        out = []
        for f in findings:
            notes = []
            name = listed_name(f.file)
            if excluded(name, self.own.exclude) and not self.excludes(name, bool(f.commit)):
                index = next(i for i, glob in enumerate(self.own.exclude)
                             if excluded(name, [glob]))
                notes.append(f"excluded by lint.exclude in the pull request "
                             f"({self._where(('lint', 'exclude', str(index)))})")
            if f.rule in self.own.disable and self.config is not None \
                    and f.rule not in self.config.disable:
                where = self._where(("lint", "disable", str(self.own.disable.index(f.rule))))
                notes.append(f"{f.rule} is disabled by lint.disable in the pull request "
                             f"({where})")
            if baseline is not None and f not in own_new:
                notes.append(f"accepted by the baseline in the pull request "
                             f"({_entry(baseline, baseline_mod.fingerprint(f))})")
            if notes:
                f = replace(f, message=f"{f.message} ({'; '.join(notes)}, not in "
                                       f"{printable(self.ref)}: {AFTER_MERGE})")
            out.append(f)
        return out

    def _where(self, key: tuple[str, ...]) -> str:
        """``file:line`` of the setting ``key`` in the pull request's project file."""
        from ..syntax.locate import locate

        rel = self.own.project_file or ""
        line = locate(rel, self.own.project_bytes, key)
        return f"{printable(rel)}:{line}" if line is not None else printable(rel)


def _entry(baseline: SourceFile, fingerprint: str) -> str:
    """``file:line`` of the entry of ``fingerprint`` in ``baseline``."""
    line = next((n for n, text in enumerate(baseline.lines, 1) if fingerprint in text), None)
    return f"{baseline.path}:{line}" if line is not None else baseline.path


def read(root: Path, ref: str, own: LintConfig, baseline: Path | None) -> Target:
    """The exemptions REF holds: its versions of the project file of ``own`` and of the
    baseline file ``baseline``, where they are in the repository at ``root``, each at the
    name the operator gave it (a directory the pull request makes a link names REF's
    file there, not the one the link leads to)."""
    from ..durable import operator_name_in_checkout

    commit = history.resolve(root, ref)
    project = own.project_named
    config = None
    project_adopted = False
    if project is not None:
        config = _project_at(root, commit, project)
        if config is None:
            config, project_adopted = LintConfig(), True
    accepted = None
    baseline_adopted = False
    rel = (operator_name_in_checkout(baseline, os.path.realpath(root))
           if baseline is not None else None)
    if rel is not None:
        accepted = _baseline_at(root, commit, rel)
        if accepted is None:
            accepted, baseline_adopted = Counter(), True
    unchanged = (_unchanged_since(root, commit) if project_adopted or baseline_adopted
                 else frozenset())
    return Target(ref, own, config, accepted, project_adopted, baseline_adopted, unchanged)


def _unchanged_since(root: Path, commit: str) -> frozenset[str]:
    """The files (as listed) ``commit`` holds as the work tree does: those it holds that
    git's diff of it with the work tree names none of (a file the work tree lacks, or
    holds untracked, is named as deleted)."""
    held = history.git_output(["ls-tree", "-r", "-z", "--full-tree", "--name-only",
                               "--end-of-options", commit], root,
                              "list the files " + commit[:7] + " holds")
    changed = history.git_output(["diff", "--name-only", "-z", "--no-renames", "--no-relative",
                                  "--no-ext-diff", "--no-textconv", "--ignore-submodules=none",
                                  commit, "--"], root,
                                 "list the files changed since " + commit[:7])

    def names(answer: bytes) -> set[str]:
        return {n for n in answer.decode("utf-8", "surrogateescape").split("\0") if n}

    return frozenset(names(held) - names(changed))


def _project_at(root: Path, commit: str, rel: str) -> LintConfig | None:
    """The settings of the project file ``rel`` as ``commit`` holds it, or under the
    other name a project file has in its directory (a pull request renaming
    ``magcfg.yaml`` to ``magcfg.yml`` brings no project of its own); None where it
    holds neither."""
    from ..durable import MAX_INPUT_BYTES
    from ..project import PROJECT_FILE_NAMES, may_be_project_text

    path = PurePosixPath(rel)
    names = [rel, *(str(path.with_name(n)) for n in PROJECT_FILE_NAMES if n != path.name)]
    for name, blob in zip(names, _blobs(root, commit, names, MAX_INPUT_BYTES), strict=True):
        if blob is None:
            continue
        if isinstance(blob, int):
            return LintConfig()  # too large to read: nothing it holds is accepted
        text = blob.decode("utf-8", "replace")
        if name != rel and not may_be_project_text(text, path.name):
            continue
        try:
            return parse_config(blob, name)
        except BuildError:
            return LintConfig()  # does not load: nothing it holds is accepted
    return None


def _baseline_at(root: Path, commit: str, rel: str) -> Counter[str] | None:
    """The fingerprints the baseline ``rel`` accepts as ``commit`` holds it (none where it
    does not load); None where it holds none."""
    blob, = _blobs(root, commit, [rel], baseline_mod.MAX_BASELINE_BYTES)
    if blob is None:
        return None
    if isinstance(blob, int):
        return Counter()
    try:
        return baseline_mod.parse(blob.decode("utf-8"), rel)
    except (UnicodeDecodeError, BuildError):
        return Counter()


def _blobs(root: Path, commit: str, names: list[str], limit: int) -> list[bytes | int | None]:
    """What ``commit`` holds at each of ``names`` (``project.committed_blobs``): a name
    git cannot be asked for (a line end in it) is answered as too large, so that
    nothing is accepted from it."""
    from ..project import committed_blobs

    asked = [n for n in names if "\n" not in n and "\r" not in n]
    answers: list[bytes | int | None] = []
    while len(answers) < len(asked):  # git is asked nothing past a blob too large
        try:
            answers += committed_blobs(root, [f"{commit}:{n}" for n in asked[len(answers):]],
                                       limit)
        except OSError as exc:
            raise history.git_failed(f"read the exemptions {commit[:7]} holds",
                                     str(exc)) from None
    found = dict(zip(asked, answers, strict=True))
    return [found.get(n, limit + 1) for n in names]
