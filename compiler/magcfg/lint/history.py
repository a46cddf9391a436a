"""The commits a change brings (``magcfg lint --since REF``): each file a commit in
``REF..HEAD`` added or changed, as that commit holds it. A secret added in one commit and
removed in the next is gone from the work tree, but not from the history merged."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import BuildError, Diagnostic, UsageError
from .walk import (
    SourceFile,
    UncheckedFile,
    Unread,
    display_name,
    link_source,
    read_blobs,
    source,
)

_EMPTY = frozenset({"0" * 40, "0" * 64})
_SUBMODULE = "160000"
"""A submodule's mode: its object is a commit of another repository, no content here."""
_LINK = "120000"
"""A symbolic link's mode: its blob is the target's text, read as the work tree's walk
reads a link (``walk.link_source``)."""


@dataclass(frozen=True)
class CommitFile:
    """A file as one commit holds it: ``name`` as git lists it, ``blob`` its object."""

    commit: str
    short: str
    name: str
    blob: str
    link: bool = False
    """Whether the commit holds a symbolic link there (``blob`` its target)."""


def resolve(root: Path, ref: str) -> str:
    """The id of the commit ``ref`` names. A ``ref`` git does not know is a usage error
    naming it."""
    from ..project import SHALLOW_UNKNOWN_REF, GitUnanswered, git_answer

    try:
        # --end-of-options: a REF such as `--output=x` is a name, never an option.
        found = git_answer(["rev-parse", "--verify", "--quiet", "--end-of-options",
                            f"{ref}^{{commit}}"], root)
    except GitUnanswered:
        why = f"; {SHALLOW_UNKNOWN_REF}" if _shallow(root) else ""
        raise UsageError(f"--since {ref!r}: git knows no commit by that name{why}") from None
    if found is None:
        raise UsageError(f"--since {ref!r}: the lint root is not in a git repository")
    return found.decode("ascii", "replace").strip()


def commits_since(root: Path, ref: str) -> list[tuple[str, str]]:
    """The commits of ``ref..HEAD``, oldest first: each one's id and short id. A ``ref``
    git does not know is a usage error naming it."""
    base = resolve(root, ref)
    answer = git_output(["rev-list", "--reverse", "--format=%h", "--end-of-options",
                   f"^{base}", "HEAD"], root, "list the commits since " + ref)
    lines = answer.decode("ascii", "replace").split("\n")
    # Each commit: "commit <id>", then its short id.
    commits = [(lines[i].removeprefix("commit "), lines[i + 1])
               for i in range(0, len(lines) - 1, 2) if lines[i].startswith("commit ")]
    cut = _shallow(root) & {commit for commit, _ in commits}
    if cut:
        short = next(s for commit, s in commits if commit in cut)
        raise BuildError([Diagnostic(".", None, None, f"the commits since {ref} are not all "
                                     f"in this clone: it is shallow, and its history stops at "
                                     f"commit {short}, whose parents it lacks (git lists no "
                                     "commit below it, nor any file they changed); fetch them "
                                     "(`git fetch --unshallow`, or the whole history in CI: "
                                     "`fetch-depth: 0`), then lint again", code="git")])
    return commits


MAX_SHALLOW_BYTES = 64 << 20
"""The most bytes of a shallow clone's list of cut commits read (41 or 65 a commit)."""


def _shallow(root: Path) -> set[str]:
    """The commits of a shallow clone whose parents it lacks (``.git/shallow``); none in
    a whole one. A commit listed since the base that is one stands for commits, and
    their files, that were never fetched: git lists it as if it were a first commit."""
    from ..durable import read_located

    answer = git_output(["rev-parse", "--is-shallow-repository", "--git-path", "shallow"], root,
                  "say whether the clone is shallow").decode("utf-8", "surrogateescape")
    shallow, _, path = answer.partition("\n")
    if shallow.strip() != "true":
        return set()
    listed = read_located(root / path.removesuffix("\n"), ".git/shallow", MAX_SHALLOW_BYTES)
    return set(listed.decode("ascii", "replace").split())


def changed_files(root: Path, commits: Sequence[tuple[str, str]]) -> list[CommitFile]:
    """Each file that each of ``commits`` added or changed, in their order, symbolic
    links among them; submodules left out. A merge's are those it holds unlike each of
    its parents (git's combined diff: a conflict's resolution, a file added while
    merging): what it holds as a parent does came from that parent's history, which is
    checked where it is in ``commits``, and is the base's own where it is not (a pull
    request that merged its target brought none of the target's files)."""
    if not commits:
        return []
    shorts = dict(commits)
    asked = "".join(f"{c}\n" for c, _ in commits).encode("ascii")
    answer = git_output(["diff-tree", "--stdin", "-r", "-z", "--root", "--no-renames",
                   "--diff-filter=d", "--diff-merges=combined", "--raw"], root,
                  "list the files the commits changed", asked)
    fields = answer.split(b"\0")
    out: list[CommitFile] = []
    commit = ""
    i = 0
    # A commit's id, NUL, then per file a colon per parent, each parent's mode and the
    # commit's, each parent's blob and the commit's, the status ("::<mode> <mode>
    # <mode> <blob> <blob> <blob> <status>" for two parents), NUL, its path, NUL: a
    # path follows its record, whatever it spells.
    while i < len(fields):
        field = fields[i].decode("utf-8", "surrogateescape")
        if field.startswith(":") and i + 1 < len(fields):
            parents = len(field) - len(field.lstrip(":"))
            words = field[parents:].split(" ")
            mode, blob = words[parents], words[2 * parents + 1]
            name = fields[i + 1].decode("utf-8", "surrogateescape")
            if mode != _SUBMODULE and blob not in _EMPTY and commit in shorts:
                out.append(CommitFile(commit, shorts[commit], name, blob, mode == _LINK))
            i += 2
            continue
        if field:
            commit = field
        i += 1
    return out


def read_commit_files(root: Path, files: Sequence[CommitFile]
                      ) -> Iterator[tuple[CommitFile, SourceFile | UncheckedFile]]:
    """Each of ``files`` read once per name and content (a file two commits hold alike is
    read for the first), as the work tree's files are read (``walk.source``)."""
    todo: list[CommitFile] = []
    seen: set[tuple[str, str]] = set()
    for f in files:
        if (f.blob, f.name) not in seen:  # rules read the name too (`.env`, `.pem`)
            seen.add((f.blob, f.name))
            todo.append(f)
    blobs = read_blobs(root, [f.blob for f in todo],
                       [f"{display_name(f.name)} in commit {f.short}" for f in todo],
                       "which a commit since the base holds")
    for f, blob in zip(todo, blobs, strict=True):
        shown = display_name(f.name)
        if isinstance(blob, Unread):
            yield f, UncheckedFile(shown, *blob)
        elif blob is not None:
            yield f, link_source(shown, blob) if f.link else source(shown, blob)


def git_output(args: list[str], root: Path, what: str, question: bytes | None = None
               ) -> bytes:
    """What ``git ARGS`` prints in ``root`` (``project.git_answer``); an error failing
    the gate, saying it could not ``what``, when git gives no answer."""
    from ..project import GitUnanswered, git_answer

    try:
        answer = git_answer(args, root, question)
    except GitUnanswered as exc:
        answer = None
        reason = str(exc)
    else:
        reason = "not a git repository"
    if answer is None:
        raise git_failed(what, reason)
    return answer


def git_failed(what: str, reason: str) -> BuildError:
    """The gate's error for a git that could not ``what``."""
    return BuildError([Diagnostic(".", None, None, f"git could not {what} ({reason}): "
                                  "fix what stops git, then lint again", code="git")])
