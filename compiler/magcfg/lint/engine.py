"""One lint run: walk, read each file once, run every rule family, then apply inline
suppressions and the baseline."""

from __future__ import annotations

import contextlib
import dataclasses
import marshal
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from ..workers import available_jobs, run_shares
from . import baseline as baseline_mod
from . import (
    envfiles,
    fallbacks,
    hardcoded,
    history,
    layer_secrets,
    suppress,
    target,
    unchecked_files,
    vault_clients,
    vault_policy,
)
from .config import LintConfig, load_config
from .context import LintContext
from .findings import Finding
from .walk import SourceFile, UncheckedFile, list_files, narrowed, read_files

Check = Callable[[SourceFile, LintContext], Iterator[Finding]]
CHECKS: dict[str, Check] = {
    fallbacks.RULE: fallbacks.check,
    hardcoded.RULE: hardcoded.check,
    envfiles.RULE: envfiles.check,
    vault_clients.RULE: vault_clients.check,
    vault_policy.RULE: vault_policy.check,
    layer_secrets.RULE: layer_secrets.check,
}
PREPARE: dict[str, Callable[[LintContext], None]] = {
    hardcoded.RULE: hardcoded.prepare,
    layer_secrets.RULE: layer_secrets.prepare,
}
"""What a rule loads once for every file (detect-secrets' plugins, the schema's secret
keys): done before forking, so that processes share it rather than each load it."""

MIN_PARALLEL_BYTES = 1 << 20
"""``lint`` checks files in several processes for at least this much text: checking
takes ~0.3-0.5 s per MB, forking ~10-20 ms (docs/lint.md, "Speed")."""


@dataclass(frozen=True)
class LintResult:
    """What a lint run found. ``findings`` are the ones that fail the run (not suppressed,
    not in the baseline); ``all_findings`` includes baselined ones (for --write-baseline)."""

    findings: list[Finding]
    all_findings: list[Finding]
    files: int
    suppressed: int
    baselined: int
    commits: int | None = None
    """How many commits ``since`` brought (None: the work tree alone was checked)."""

    @property
    def summary(self) -> dict[str, int]:
        counts = {"files": self.files, "findings": len(self.findings),
                  "suppressed": self.suppressed, "baselined": self.baselined}
        if self.commits is not None:
            counts["commits"] = self.commits
        return counts


def find_root(start: Path) -> Path:
    """The lint root: the git work tree containing ``start``, else ``start`` itself."""
    from ..durable import git_root

    start = start if start.is_dir() else start.parent
    return git_root(start) or start.resolve()


def lint(root: Path, paths: Sequence[Path] = (), *, config: LintConfig | None = None,
         baseline: Path | None = None, jobs: int | None = None,
         since: str | None = None,
         baseline_written_by: str = "magcfg lint --write-baseline") -> LintResult:
    """Lint the repository at ``root`` (narrowed to ``paths`` if given). ``jobs``:
    processes to check files in (``workers.available_jobs``); the result is the
    same with any number. ``since``: a git revision; each file a commit in
    ``since..HEAD`` added or changed is checked too, as that commit holds it
    (``history``), and the project file's and a baseline's exemptions are those the
    commit ``since`` holds too (``target``). ``baseline_written_by``: the command that
    writes ``baseline``, which an error for a missing one advises (``baseline.load``)."""
    from ..durable import git_root

    own = config if config is not None else load_config(root)
    loaded = (baseline_mod.load(baseline, root, written_by=baseline_written_by)
              if baseline is not None else None)
    accepted = loaded.accepted if loaded is not None else None
    # A pull request's own exemptions apply once merged (``target``).
    at_ref = target.read(root, since, own, baseline) if since is not None else None
    config = at_ref.applied() if at_ref is not None else own
    excludes = at_ref.excludes if at_ref is not None else own.excludes
    in_git = git_root(root) is not None
    names = list_files(root, ())
    # The baseline in use is checked as baseline.load read it, whatever its size.
    skip = {_rel(root, baseline)} if baseline is not None else set()
    names = [n for n in names if n not in skip and not excludes(n)]
    read: list[tuple[str, SourceFile | UncheckedFile]] = list(read_files(root, names))
    if loaded is not None and loaded.committed is not None \
            and not excludes(loaded.committed[0]):
        read.append(loaded.committed)
    if in_git:
        suppress.hide_unshown(root, [(n, s) for n, s in read if isinstance(s, SourceFile)])
    files = {src.path: src for _, src in read if isinstance(src, SourceFile)}
    flux_files, flux_dirs = fallbacks.flux_contexts(files)
    ctx = LintContext(root=root, config=config, files=files, in_git=in_git,
                      listed={src.path: name for name, src in read
                              if isinstance(src, SourceFile)},
                      flux_files=flux_files, flux_dirs=flux_dirs)
    wanted = set(list_files(root, paths)) if paths else None
    rules = [rule for rule in CHECKS if rule not in config.disable]
    checks = [CHECKS[rule] for rule in rules]
    # Chosen by the names as listed, never as escaped for display: two listings of one
    # file agree on those, and a name the escaping changes is still linted.
    chosen = [src for name, src in read if wanted is None or name in wanted]
    todo = [src for src in chosen if isinstance(src, SourceFile)]
    unchecked = [] if unchecked_files.RULE in config.disable else [
        unchecked_files.finding(src) for src in chosen if isinstance(src, UncheckedFile)]
    shares = _shares(todo, available_jobs(jobs))
    if len(shares) > 1:
        for rule in rules:
            if rule in PREPARE:
                PREPARE[rule](ctx)

    def here(share: list[SourceFile]) -> tuple[list[Finding], int]:
        return _check(share, checks, ctx)

    def dumps(result: tuple[list[Finding], int]) -> bytes:
        found, suppressed = result
        return marshal.dumps(([dataclasses.astuple(f) for f in found], suppressed))

    def loads(data: bytearray) -> tuple[list[Finding], int]:
        rows, suppressed = marshal.loads(data)
        return [Finding(*row) for row in rows], suppressed

    found = unchecked
    suppressed = 0
    for theirs, more in run_shares(shares, here, dumps, loads):
        found += theirs
        suppressed += more
    checked = len(todo)
    found = sorted(set(found))
    commits = None
    if since is not None:
        commits, more_files, more_found, more_suppressed = _history(
            root, since, paths, checks, ctx,
            own.excludes if at_ref is None else partial(at_ref.excludes, committed=True))
        checked += more_files
        suppressed += more_suppressed
        found = _once(found, more_found)
    if at_ref is not None:
        found = [f for f in found if not at_ref.disabled(f)]
    if accepted is not None:
        new, matched = (baseline_mod.new_findings(found, accepted) if at_ref is None
                        else at_ref.new_findings(found, accepted))
    else:
        new, matched = found, 0
    if at_ref is not None:
        own_new = (set(baseline_mod.new_findings(found, accepted)[0])
                   if accepted is not None else set(found))
        in_repository = loaded.committed if loaded is not None else None
        new = at_ref.noted(new, own_new, in_repository[1] if in_repository else None)
    return LintResult(findings=new, all_findings=found, files=checked, suppressed=suppressed,
                      baselined=matched, commits=commits)


def _history(root: Path, since: str, paths: Sequence[Path], checks: Sequence[Check],
             ctx: LintContext, excludes: Callable[[str], bool]
             ) -> tuple[int, int, list[Finding], int]:
    """The commits of ``since..HEAD``, the files of theirs checked, their findings (each
    naming its commit), and how many were suppressed: by the rules and suppressions of
    the work tree's files, ``excludes`` passing over a file by its name. A commit's
    version of the baseline in use is checked as any file: a commit's is not read as a
    baseline at all. MAG006 reads the layers of each commit's own project files and
    schemas (``layer_secrets.CommitLayers``)."""
    commits = history.commits_since(root, since)
    changed = [f for f in history.changed_files(root, commits) if not excludes(f.name)]
    if paths:
        chosen = set(narrowed(root, [f.name for f in changed], paths))
        changed = [f for f in changed if f.name in chosen]
    found: list[Finding] = []
    suppressed = 0
    checked = 0
    skipped = unchecked_files.RULE in ctx.config.disable
    with contextlib.ExitStack() as stack:
        layers = None if layer_secrets.RULE in ctx.config.disable else stack.enter_context(
            layer_secrets.CommitLayers(ctx, [c for c, _ in commits], changed))
        if layers is not None:
            found += [x for c, short in commits for x in layers.problems(c, short)]
        for f, src in history.read_commit_files(root, changed):
            if isinstance(src, SourceFile):
                suppress.hide_unshown(root, [(f.name, src)])
            if isinstance(src, UncheckedFile):
                theirs = [] if skipped else [unchecked_files.finding(src)]
            else:
                checked += 1
                theirs, more = _check([src], checks,
                                      ctx if layers is None else layers.context(f.commit))
                suppressed += more
            found += [dataclasses.replace(x, commit=f.short) for x in theirs]
    return len(commits), checked, found, suppressed


def _once(found: list[Finding], more: list[Finding]) -> list[Finding]:
    """``found`` (the work tree's) with each of ``more`` (the commits', oldest first)
    whose rule, file and line none before it had: a secret several commits hold is
    reported once, in the work tree if it is there, else in the first commit."""
    seen = {(f.rule, f.file, f.line_hash) for f in found}
    out = list(found)
    for f in more:
        if (f.rule, f.file, f.line_hash) not in seen:
            seen.add((f.rule, f.file, f.line_hash))
            out.append(f)
    return out


def _check(sources: Sequence[SourceFile], checks: Sequence[Check], ctx: LintContext
           ) -> tuple[list[Finding], int]:
    """The findings of ``sources`` that no inline suppression covers (invalid
    suppressions included), and how many were suppressed."""
    found: list[Finding] = []
    suppressed = 0
    for src in sources:
        file_findings = _without_overlaps([f for check in checks for f in check(src, ctx)])
        sup = suppress.parse(src)
        for f in file_findings:
            if sup.covers(f):
                suppressed += 1
            else:
                found.append(f)
        found.extend(sup.invalid)
        found.extend(sup.not_shown(file_findings))
    return found, suppressed


def _shares(sources: list[SourceFile], jobs: int) -> list[list[SourceFile]]:
    """``sources`` cut into up to ``jobs`` runs of about equal text, by file name then
    path: a service's files in every layer (``svc_007.yaml``) fall in one share, whose
    process then reads that service's policy tables alone. One share below
    ``MIN_PARALLEL_BYTES``."""
    total = sum(len(src.text) for src in sources)
    if jobs < 2 or total < MIN_PARALLEL_BYTES:
        return [sources]
    shares: list[list[SourceFile]] = [[]]
    done = 0
    for src in sorted(sources, key=lambda s: (s.name, s.path)):
        if (done >= total * len(shares) / jobs and len(shares) < jobs
                and shares[-1] and src.name != shares[-1][-1].name):
            shares.append([])
        shares[-1].append(src)
        done += len(src.text)
    return shares


def _without_overlaps(findings: list[Finding]) -> list[Finding]:
    # A literal secret in a layer is MAG006 (the schema says so); the generic MAG002 on the
    # same line would report it twice.
    layer_lines = {f.line for f in findings if f.rule == layer_secrets.RULE}
    return [f for f in findings if not (f.rule == hardcoded.RULE and f.line in layer_lines)]


def _rel(root: Path, path: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)
