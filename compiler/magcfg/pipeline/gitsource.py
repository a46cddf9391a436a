"""Layer files as they are in a git commit, read from git objects (never the working tree).

``GitSource`` has the interface of ``load.FileSource`` (``read``, ``list_layer``) and its
containment (``durable.Tree``), so the ``Compiler`` builds an environment at any commit
without a checkout: ``magcfg diff --against REF`` uses it. Paths are relative to the
project root, which may be a sub-directory of the repository.

A commit is as hostile as the working tree, and git lets it hold what no checkout can:
a tree named a million times over by a few objects, a submodule, an entry named ``..``.
Symlinks are resolved as ``realpath`` resolves them (every component, ``..`` after the
link before it) and the result must lie inside the project and outside its fenced
directories; a walk lists each directory once, refuses links to a directory containing
them, and stops at ``MAX_ENTRIES`` entries and ``MAX_STEPS`` resolution steps. Every
refusal is the working tree's, in its words (``durable``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import posixpath
import stat
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from ..durable import (
    DANGLING,
    LOOP,
    MAX_INPUT_BYTES,
    NOT_UTF8,
    SYMLINK_HERE,
    PathError,
    fenced_problem,
    file_kind,
    git_env,
    git_root,
    listed_already,
    operator_name_in_checkout,
    os_reason,
    outside_project,
    path_problem,
    repository_prefix,
    utf8_name,
)
from ..errors import BuildError, Diagnostic, MagcfgError, UsageError, printable
from ..project import (
    MAX_PIPELINE_BYTES,
    MAX_SYMLINK_TARGET,
    PROJECT_FILE_NAMES,
    SHALLOW_UNKNOWN_REF,
    Project,
    lfs_pointer,
    load_project,
    no_project_bytes,
)
from .load import LAYER_SUFFIXES

MAX_ENTRIES = 100_000
"""Tree entries one source lists, for all its layer directories together: a hundred
times the largest repository benchmarked (1,001 layer files), and listed in well under
a second. Git stores a tree once however often it is named, so seven objects of ten
entries each name a million paths."""

MAX_STEPS = 1_000_000
"""Path components one source resolves, symlink targets included, all paths together:
each link target may be ``MAX_SYMLINK_TARGET`` bytes long and a walk may meet
``MAX_ENTRIES`` links; a repository without symlinks spends a few per layer directory."""

_MAX_LINK_HOPS = 40  # Linux's MAXSYMLINKS: what the working tree could follow
# A tree object of MAX_ENTRIES entries with names of 255 bytes (NAME_MAX) is ~28 MB: a
# larger one names more than a walk would list.
_MAX_TREE = 32 * 1024 * 1024
_GITLINK = 0o160000
_TREE = stat.S_IFDIR
_NOT_OTHER_REPOSITORIES = "magcfg reads no layer files from other repositories"
SUBMODULE = f"is a git submodule; {_NOT_OTHER_REPOSITORIES}"
LFS_AT_COMMIT = ("is a Git LFS pointer at this commit: git holds the file's bytes in LFS "
                 "storage, which magcfg does not read, and a pointer is no input; keep the "
                 "inputs out of LFS (drop their filter=lfs in .gitattributes and commit them "
                 "again)")
"""Why a file whose blob is an LFS pointer is refused (``project.lfs_pointer``): at a
commit every LFS file is its pointer, whatever a checkout holds."""
TOO_MANY = (f"the layer directories at this commit hold more than {MAX_ENTRIES} files and "
            "directories (git names that many with a few objects); magcfg stops listing here")
BAD_TREE = ("git tree holds an entry git refuses (a name such as '..' or '.git', or a bad "
            "mode); magcfg does not read it")


def open_repo(root: Path) -> Any:
    """The git repository containing ``root``, the one git finds from there as for every
    other command (``durable.git_root``); a usage error if there is none."""
    import git

    outside = UsageError(f"{root} is not inside a git repository")
    top = git_root(Path(os.path.abspath(root)))
    if top is None:
        raise outside
    env = git_env()
    try:
        # The git directory git was given (GIT_DIR, which may be apart from the work
        # tree), else the one at the top git names: GitPython looks for a `.git` above
        # the path it is given and finds none for a GIT_DIR elsewhere. A path as it is:
        # GitPython would expand a `$HOME` or `${X}` in a directory's name (and a leading
        # `~`), and open another directory, or none.
        repo = git.Repo(env.get("GIT_DIR") or top, expand_vars=False)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise outside from None
    # GitPython passes our environment on to the git it runs in the work tree's top:
    # what ``git_env`` sets or changes in it goes on top, for every git it runs (the
    # paths a promotion adds, resets and cleans are paths, never pathspec magic; its
    # status, add and commit read the index; a ref's objects are read as committed,
    # whatever replace refs and grafts say).
    repo.git.update_environment(**{name: value for name, value in env.items()
                                   if os.environ.get(name) != value})
    return repo


def unknown_ref(repo: Any, ref: str) -> str:
    """Why ``ref`` names no commit of ``repo``: in a shallow clone (CI checks out one
    commit by default) the branch or the older commit was most likely never fetched."""
    import git

    try:
        shallow = repo.git.rev_parse("--is-shallow-repository") == "true"
    except git.GitCommandError:
        shallow = False
    if not shallow:
        return f"unknown git ref {ref!r} (give a commit, branch or tag)"
    return (f"unknown git ref {ref!r}: {SHALLOW_UNKNOWN_REF}, or give a commit, branch or "
            "tag the clone has")



class _Entry(NamedTuple):
    """A tree entry: its object and mode (``git ls-tree``'s first two columns)."""

    sha: bytes
    mode: int


class _Refused(Exception):
    """A path resolution refused: ``message`` for the path asked for; ``directory``
    when what it names is, or may be (outside the commit's tree: out of the repository,
    in ``.git``), a directory, which a walk reports even where its name is no layer
    file's (as ``durable._Walk``)."""

    def __init__(self, message: str, directory: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.directory = directory


class _Missing(Exception):
    """Nothing at the path; ``heading`` is where resolution was going (a repository
    path), ``linked`` whether it followed a symlink to get there."""

    def __init__(self, heading: str, linked: bool = False) -> None:
        super().__init__(heading)
        self.heading = heading
        self.linked = linked


class _Oversized(Exception):
    """A git object larger than its reader accepts; ``size`` its size."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


class _TooMuch(Exception):
    """A bound of the source (``MAX_ENTRIES``, ``MAX_STEPS``) is spent."""


def _inside(path: str, root: str) -> bool:
    """``path`` is ``root`` or below it (repository paths, ``""`` the top)."""
    return not root or path == root or path.startswith(root + "/")


class _Watchdog:
    """Stops the ``git cat-file`` processes GitPython keeps for ``repo`` when one answer
    takes more than ``project.GIT_BLOB_SECONDS``: git waits for good on an object file
    that is a FIFO (a repository handed over whole), and GitPython with it."""

    def __init__(self, repo: Any, ref: str) -> None:
        self._repo = repo
        self._ref = ref
        self._since: float | None = None
        self._seconds = 0.0
        self.expired = False
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        """Run the block, which asks GitPython's ``cat-file`` for objects, watched: a
        located error if it was stopped, whatever the block raised then."""
        from ..project import GIT_BLOB_SECONDS

        if self._thread is None:
            self._seconds = GIT_BLOB_SECONDS
            thread = threading.Thread(target=self._run, name="magcfg-git-watchdog",
                                      daemon=True)
            thread.start()
            self._thread = thread  # a watchdog that did not start is started again
        self._since = time.monotonic()
        try:
            yield
        except Exception:
            if self.expired:
                raise self._unanswered() from None
            raise
        finally:
            self._since = None
        if self.expired:
            raise self._unanswered()

    def _unanswered(self) -> BuildError:
        return BuildError([Diagnostic(".", None, None, f"git gave no answer in "
                                      f"{self._seconds:g} s reading the objects of {self._ref} "
                                      "(is an object file of the repository a FIFO, or on a "
                                      "mount that hangs?): fix what stops git, then run "
                                      "magcfg again", code="git")])

    def _run(self) -> None:
        while not self._stopped.wait(min(1.0, self._seconds / 4)):
            since = self._since
            if since is not None and time.monotonic() - since > self._seconds:
                self.expired = True
                for name in ("cat_file_header", "cat_file_all"):
                    process: Any = getattr(self._repo.git, name, None)
                    with contextlib.suppress(Exception):  # gone already
                        process.proc.kill()
                return

    def stop(self) -> None:
        self._stopped.set()


class GitSource:
    """Files of the project at commit ``ref`` of the repository around ``project_root``:
    in the directory ``prefix`` from the top where given (the project there at the
    commit, moved since: ``project_file_at``), else the project root's."""

    def __init__(self, project_root: Path, ref: str, repo: Any | None = None,
                 prefix: str | None = None) -> None:
        import git

        self._owns_repo = repo is None
        self.repo = repo if repo is not None else open_repo(project_root)
        self._here = repository_prefix(os.fspath(project_root))
        self.prefix = self._here if prefix is None else prefix
        self._outside = outside_project(self.prefix)
        self.ref = ref
        # git resolves the name (GitPython's own parser fails on `HEAD:../..`, `@{-1}`,
        # ...); `^{commit}` refuses what names no commit, `--end-of-options` a ref
        # that looks like an option.
        from ..project import GIT_BLOB_SECONDS

        self._watchdog = _Watchdog(self.repo, ref)
        try:
            with self._watchdog.watching():
                sha = self.repo.git.rev_parse("--verify", "--quiet", "--end-of-options",
                                              f"{ref}^{{commit}}",
                                              kill_after_timeout=GIT_BLOB_SECONDS)
                self.commit = self.repo.commit(sha)
                self._top = _Entry(self.commit.tree.binsha, _TREE)
        except (git.GitCommandError, git.BadName, git.BadObject, ValueError):
            why = unknown_ref(self.repo, ref)
            self.close()
            raise UsageError(why) from None
        except BuildError:
            self.close()
            raise
        self._fenced: tuple[str, ...] = ()
        # Each tree's entries by name, by object: GitPython parses a tree object again
        # for every lookup by name, and a layer file's path crosses three or four trees
        # of up to hundreds of entries. None: a tree git itself would refuse.
        self._trees: dict[bytes, dict[str, _Entry] | None] = {}
        self._base: tuple[str, list[_Entry]] | None = None
        self._real: dict[str, _Entry] = {}  # a listed layer file -> what it is
        self._listings: dict[tuple[str, tuple[str, ...]], tuple[list[str], list[Diagnostic]]] = {}
        self._entries_left = MAX_ENTRIES
        self._steps_left = MAX_STEPS

    def close(self) -> None:
        """Stop the git processes GitPython keeps running for a repository this source
        opened (``git cat-file``): a long-lived caller would collect them otherwise."""
        self._watchdog.stop()
        if self._owns_repo:
            self.repo.close()

    def __enter__(self) -> GitSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def hexsha(self) -> str:
        return str(self.commit.hexsha)

    def fence(self, fenced: Iterable[str]) -> None:
        """Refuse from now on what resolves into ``fenced`` (directories relative to the
        project root: the output, the cache, ``.git``), as ``FileSource`` does. The
        project file at the commit says which they are, so it is read before this."""
        self._fenced = tuple(f.strip("/") for f in fenced if f.strip("/"))
        self._listings.clear()
        self._real.clear()

    # -- naming the revision ------------------------------------------------------------

    def name(self, rel: str) -> str:
        """``rel``, a path of this source's project directory, named from the project
        root's in the working tree, as every name there is: the same, but for a project
        in another directory at the commit (``../layers/base/app.yaml`` where the
        commit's project was at the top and the working tree's is below it)."""
        if self.prefix == self._here:
            return rel
        return self.name_from_top(posixpath.join(self.prefix, rel))

    def name_from_top(self, path: str) -> str:
        """``path``, from the top of the repository, named from the project root's
        directory in the working tree, as every name there is."""
        return posixpath.relpath(path, self._here or ".")

    def at_ref(self, diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
        """``diagnostics`` about files of this commit, each naming it (``file@REF``, as
        ``diff`` names its side ``env@REF``): their lines are the commit's, which the
        working-tree file of that name need not have."""
        return [d.replace(file=f"{self.name(d.file)}@{self.ref}") if d.file
                else d.replace(message=f"{d.message} (at {self.ref})")
                for d in diagnostics]

    @contextlib.contextmanager
    def errors_at_ref(self) -> Iterator[None]:
        """A ``BuildError`` raised in the block is about this commit: ``at_ref``."""
        try:
            yield
        except BuildError as exc:
            raise BuildError(self.at_ref(exc.diagnostics)) from None

    # -- git objects --------------------------------------------------------------------

    def _object(self, sha: bytes, kind: bytes, limit: int) -> bytes:
        """The content of object ``sha`` if it is a ``kind``; ``ValueError`` if it is
        not (or is missing), ``_Oversized`` if it holds more than ``limit`` bytes, never
        read (a commit may hold a blob of any size)."""
        with self._watchdog.watching():
            return self._watched_object(sha, kind, limit)

    def _watched_object(self, sha: bytes, kind: bytes, limit: int) -> bytes:
        # Asked apart (~60 us): an object streamed but not read would be read whole when
        # GitPython drops the stream, to keep git's next answer in step.
        size = self.repo.odb.info(sha).size
        if size > limit:
            raise _Oversized(size)
        stream = self.repo.odb.stream(sha)
        data: bytes = stream.read()  # to the end: a stream left half read garbles git's next answer
        if len(data) != size:  # the stream ends where git's output did, short of the size
            # Dropped here, while git's output is open: GitPython reads the rest when a
            # stream goes, and the error's frames would keep it past the repository's close.
            del stream
            raise ValueError("git stopped in the middle of the object")
        if stream.type != kind:
            raise ValueError(f"a {stream.type.decode()} where git expects a {kind.decode()}")
        return data

    def _tree(self, entry: _Entry) -> dict[str, _Entry] | None:
        """The entries of tree ``entry`` by name (parsed once per tree object)."""
        if entry.sha in self._trees:
            return self._trees[entry.sha]
        from git.objects import fun  # the module: tests count the calls of its parser

        try:
            data = self._object(entry.sha, b"tree", _MAX_TREE)
            found: dict[str, _Entry] | None = {
                name: _Entry(sha, mode) for sha, mode, name in fun.tree_entries_from_data(data)}
        except ValueError:  # a name or mode git refuses, a missing or mistyped object
            found = None
        except _Oversized:
            raise _TooMuch(TOO_MANY) from None
        self._trees[entry.sha] = found
        return found

    # -- resolving a path ---------------------------------------------------------------

    def _spend_step(self) -> None:
        self._steps_left -= 1
        if self._steps_left < 0:
            raise _TooMuch(f"the symlinks at this commit take more than {MAX_STEPS} steps "
                           "to resolve; magcfg stops here")

    def _walk(self, parts: list[str], start: tuple[str, list[_Entry]], follow_last: bool = True
              ) -> tuple[str, list[_Entry], bool]:
        """``realpath`` in the commit: from ``start`` (a repository path and the entries
        down to it) through ``parts``, every symlink followed. Returns the repository
        path reached, the entries down to it and whether a symlink was followed.
        ``_Missing`` if nothing is there; ``_Refused`` for what cannot be followed (a
        link out of the repository, a loop, a tree git refuses) and, unless
        ``follow_last``, a symlink as the last part."""
        names = start[0].split("/") if start[0] else []
        nodes = list(start[1])
        todo = [p for p in reversed(parts) if p not in ("", ".")]
        hops = 0
        while todo:
            self._spend_step()
            name = todo.pop()
            if name == "..":
                if not names:
                    raise _Refused(f"symlink {self._outside}" if hops else self._outside,
                                  directory=True)
                names.pop()
                nodes.pop()
                continue
            entries = self._tree(nodes[-1]) if stat.S_ISDIR(nodes[-1].mode) else {}
            if entries is None:
                raise _Refused(BAD_TREE)
            child = entries.get(name)
            if child is None:
                raise _Missing("/".join([*names, name, *reversed(todo)]), hops > 0)
            if stat.S_ISLNK(child.mode):
                if not todo and not follow_last:
                    raise _Refused(SYMLINK_HERE)
                hops += 1
                if hops > _MAX_LINK_HOPS:
                    raise _Refused(os_reason(OSError(errno.ELOOP, os.strerror(errno.ELOOP))))
                try:
                    target = self._object(child.sha, b"blob", MAX_SYMLINK_TARGET).decode(
                        "utf-8", "surrogateescape")
                except _Oversized:  # as the working tree's readlink would say
                    raise _Refused(os_reason(OSError(errno.ENAMETOOLONG,
                                                     os.strerror(errno.ENAMETOOLONG)))) from None
                except ValueError:  # a link the commit names but the repository lacks
                    raise _Missing("/".join(names), linked=True) from None
                if target.startswith("/"):
                    raise _Refused(f"symlink {self._outside}", directory=True)
                todo.extend(p for p in reversed(target.split("/")) if p not in ("", "."))
                continue
            names.append(name)
            nodes.append(child)
        return "/".join(names), nodes, hops > 0

    def _project(self) -> tuple[str, list[_Entry]]:
        """The project directory in the commit, resolved (the working tree's root is a
        ``realpath`` too); ``_Missing`` if the commit has none."""
        if self._base is None:
            try:
                self._base = self._walk(self.prefix.split("/"), ("", [self._top]))[:2]
            except _Refused:
                raise _Missing(self.prefix) from None
            if not stat.S_ISDIR(self._base[1][-1].mode):
                raise _Missing(self.prefix)
        return self._base

    def _problem_of(self, real: str) -> str | None:
        """Why a path that resolves to ``real`` (a repository path) is not read."""
        base = self._project()[0]
        if not _inside(real, base):
            return self._outside
        rel = real[len(base) + 1:] if base else real
        for fence in self._fenced:
            if _inside(rel, fence):
                return fenced_problem(fence)
        return None

    def _resolve(self, rel: str, follow_last: bool = True) -> tuple[str, _Entry]:
        """The repository path and entry ``rel`` (relative to the project) leads to,
        checked as ``durable.Tree.resolve`` checks: ``_Refused``, or ``_Missing``."""
        try:
            real, nodes, linked = self._walk(rel.split("/"), self._project(), follow_last)
        except _Missing as exc:
            # A link may lead into a fenced directory that is absent from the commit
            # (`.git` never is in a tree): the working tree refuses it for that.
            problem = self._problem_of(posixpath.normpath(exc.heading)) if exc.linked else None
            if problem is not None and problem != self._outside:
                raise _Refused(f"symlink {problem}", directory=True) from None
            raise
        problem = self._problem_of(real)
        if problem is not None:
            raise _Refused(f"symlink {problem}" if linked else problem,
                           stat.S_ISDIR(nodes[-1].mode))
        return real, nodes[-1]

    def _lexists(self, rel: str) -> bool:
        """Something (a dangling symlink, say) is at ``rel`` itself, link or not."""
        parent, _, name = rel.rpartition("/")
        try:
            _, nodes, _ = self._walk(parent.split("/"), self._project())
            entries = self._tree(nodes[-1]) if stat.S_ISDIR(nodes[-1].mode) else None
        except (_Missing, _Refused, _TooMuch):
            return False
        return entries is not None and name in entries

    def _entry_at_top(self, path: str) -> _Entry | None:
        """The entry at ``path`` from the top of the commit's tree, not followed if it
        is a symlink (the directories above it are); None if there is none."""
        parent, _, name = path.rpartition("/")
        try:
            _, nodes, _ = self._walk(parent.split("/"), ("", [self._top]))
            entries = self._tree(nodes[-1]) if stat.S_ISDIR(nodes[-1].mode) else None
        except (_Missing, _Refused, _TooMuch):
            return None
        return None if entries is None else entries.get(name)

    def _located(self, rel: str, follow_last: bool = True) -> tuple[str, _Entry]:
        """``_resolve`` with its refusals as the working tree's ``PathError``; a path
        with nothing there is ``FileNotFoundError``, a dangling link a ``PathError``."""
        try:
            return self._resolve(rel.strip("/"), follow_last)
        except _Refused as exc:
            raise PathError([path_problem(rel, exc.message)]) from None
        except _Missing:
            if self._lexists(rel.strip("/")):
                raise PathError([path_problem(rel, DANGLING)]) from None
            raise FileNotFoundError(2, f"not in {self.ref}", rel) from None
        except _TooMuch as exc:
            raise PathError([path_problem(rel, str(exc))]) from None

    # -- the Source interface -----------------------------------------------------------

    def read(self, path: str, follow_symlinks: bool = True) -> bytes:
        """The bytes of the regular file ``path`` at the commit: ``FileNotFoundError`` if
        nothing is there, ``PathError`` for what the working tree refuses (a symlink
        out of the project or into a fenced directory, a directory, a submodule; any
        symlink as the last component, unless ``follow_symlinks``)."""
        entry = self._real.get(path) if follow_symlinks else None
        if entry is None:
            entry = self._located(path, follow_symlinks)[1]
        if entry.mode == _GITLINK:
            raise PathError([path_problem(path, SUBMODULE)])
        if not stat.S_ISREG(entry.mode):
            raise PathError([path_problem(path, f"is {file_kind(entry.mode)}, not a regular "
                                          "file")])
        try:
            data = self._object(entry.sha, b"blob", MAX_INPUT_BYTES)
        except _Oversized:
            raise PathError([path_problem(path, f"is larger than {MAX_INPUT_BYTES} bytes")]
                            ) from None
        except ValueError as exc:  # a blob the commit names but the repository lacks
            raise PathError([path_problem(path, f"cannot read: {exc}")]) from None
        if lfs_pointer(data):
            raise PathError([path_problem(path, LFS_AT_COMMIT)])
        return data

    def list_layer(self, directory: str, suffixes: tuple[str, ...] = LAYER_SUFFIXES
                   ) -> tuple[list[str], list[Diagnostic]]:
        """Layer files under ``directory`` at the commit and the problems met, as
        ``FileSource.list_layer`` gives them for the working tree (hidden entries
        skipped, sorted by path bytes, each directory listed once); also a submodule,
        a tree git refuses and a walk past ``MAX_ENTRIES`` are problems."""
        key = (directory, suffixes)
        if key not in self._listings:
            self._listings[key] = self._list(directory.strip("/"), suffixes)
        files, problems = self._listings[key]
        return list(files), list(problems)

    def _list(self, rel: str, suffixes: tuple[str, ...]) -> tuple[list[str], list[Diagnostic]]:
        try:
            real, entry = self._located(rel)
        except FileNotFoundError:
            return [], []
        except PathError as exc:
            return [], exc.diagnostics
        if not stat.S_ISDIR(entry.mode):
            return [], [path_problem(rel, SUBMODULE if entry.mode == _GITLINK
                                     else "is not a directory")]
        walk = _Walk(self, suffixes)
        try:
            walk.run(real, rel, entry)
        except _TooMuch as exc:
            return [], [path_problem(rel, str(exc))]
        walk.files.sort(key=lambda p: p.encode("utf-8"))
        self._real.update(walk.real)
        return walk.files, walk.problems


class _Walk:
    """One ``GitSource.list_layer``, as ``durable._Walk`` walks the working tree, with
    a stack of its own (a commit may nest trees deeper than Python recurses)."""

    def __init__(self, source: GitSource, suffixes: tuple[str, ...]) -> None:
        self.source = source
        self.suffixes = suffixes
        self.files: list[str] = []
        self.real: dict[str, _Entry] = {}
        self.problems: list[Diagnostic] = []
        self.listed: dict[str, str] = {}  # repository path of a directory -> its rel
        self.stack: list[tuple[str, str, Iterator[tuple[str, _Entry]]]] = []

    def run(self, real: str, rel: str, entry: _Entry) -> None:
        self.directory(real, rel, entry)
        while self.stack:
            real_dir, rel_dir, entries = self.stack[-1]
            item = next(entries, None)
            if item is None:
                self.stack.pop()
            else:
                self.entry(real_dir, rel_dir, *item)

    def directory(self, real: str, rel: str, entry: _Entry) -> None:
        self.listed[real] = rel
        entries = self.source._tree(entry)
        if entries is None:
            self.problems.append(path_problem(rel, BAD_TREE))
            return
        self.source._entries_left -= len(entries)
        if self.source._entries_left < 0:
            raise _TooMuch(TOO_MANY)
        self.stack.append((real, rel, iter(entries.items())))

    def entry(self, real_dir: str, rel_dir: str, name: str, entry: _Entry) -> None:
        if name.startswith("."):
            return
        rel = f"{rel_dir}/{name}"
        wanted = name.endswith(self.suffixes)
        if not utf8_name(name):
            if wanted or stat.S_ISDIR(entry.mode) or entry.mode == _GITLINK:
                self.problems.append(path_problem(rel, NOT_UTF8))
        elif stat.S_ISLNK(entry.mode):
            self.link(rel, real_dir, wanted)
        elif stat.S_ISDIR(entry.mode):
            self.directory(f"{real_dir}/{name}", rel, entry)
        elif entry.mode == _GITLINK:
            self.problems.append(path_problem(rel, SUBMODULE))
        elif wanted:
            self.files.append(rel)
            self.real[rel] = entry

    def link(self, rel: str, real_dir: str, wanted: bool) -> None:
        """A symlink met in the walk: followed if it stays inside, reported if it does
        not and would matter (a layer file, or a directory)."""
        try:
            real, entry = self.source._resolve(rel)
        except _Refused as exc:
            if wanted or exc.directory:
                self.problems.append(path_problem(rel, exc.message))
            return
        except _Missing:
            if wanted:
                self.problems.append(path_problem(rel, DANGLING))
            return
        if stat.S_ISDIR(entry.mode):
            if _inside(real_dir, real):
                self.problems.append(path_problem(rel, LOOP))
            elif real in self.listed:
                self.problems.append(path_problem(rel, listed_already(self.listed[real])))
            else:
                self.directory(real, rel, entry)
        elif entry.mode == _GITLINK:
            self.problems.append(path_problem(rel, "symlink to a git submodule; "
                                              f"{_NOT_OTHER_REPOSITORIES}"))
        elif wanted:
            self.files.append(rel)
            self.real[rel] = entry


def project_named_at(project: Project, source: GitSource) -> str | None:
    """The project file at ``source``'s commit, from the top, where the operator named
    ``project``'s (``Project.named_as``) through a symlink the working tree holds that
    the commit does not (``svc`` a link to ``evil``): the project whose output the
    operator's name serves, which the pull request has the link's target's take over.
    None where the name is the project's own, or the commit holds no project file
    there."""
    top = git_root(Path(os.path.realpath(project.root)))
    if not project.named_as or top is None:
        return None
    named = operator_name_in_checkout(Path(project.named_as), os.path.realpath(top))
    if named is None or named == posixpath.join(source._here, project.file):
        return None
    entry = source._entry_at_top(named)
    if entry is None or not _may_be_project(source, entry, posixpath.basename(named)):
        return None
    return named


def project_file_at(project: Project, source: GitSource) -> str | None:
    """Where ``project``'s file is at ``source``'s commit, from the top: at its own path;
    else, where the working tree holds nothing, at the nearest of the project file's
    names in its directory and then in each one above it to the top (the project file
    renamed, ``magcfg.yaml`` to ``magcfg.yml``, or the project moved into a directory
    below, since the commit). A file there that is certainly no project (a pipeline of
    that name, ``no_project_bytes``) is passed over, as the search for the project file
    passes over it. None where the commit holds none of these: a pull request that
    starts the project, or one that moved it from elsewhere (``projects_gone_since``)."""
    own = posixpath.join(source.prefix, project.file)
    if source._lexists(project.file):
        return own  # read as the working tree's is, and refused as such if need be
    top = git_root(Path(os.path.realpath(project.root)))
    if top is None:
        return None
    directories = [source.prefix]
    while directories[-1]:
        directories.append(posixpath.dirname(directories[-1]))
    for directory in directories:
        for name in PROJECT_FILE_NAMES:
            path = posixpath.join(directory, name)
            if path == own:
                continue  # the working tree's own project file
            entry = source._entry_at_top(path)
            if entry is not None and _may_be_project(source, entry, name) \
                    and not _held_project(top, path, source, entry, project.environments):
                return path
    return None


def _may_be_project(source: GitSource, entry: _Entry, name: str) -> bool:
    """Whether ``entry``, named ``name`` (a project file's name), may be a project file:
    a regular file that is not certainly none (``no_project_bytes``), as the search for
    the project file in the working tree passes one over. One too large or unreadable
    may be one: loaded, it fails as such."""
    if not stat.S_ISREG(entry.mode):
        return False
    try:
        raw = source._object(entry.sha, b"blob", MAX_PIPELINE_BYTES)
    except (_Oversized, ValueError):
        return True
    return not no_project_bytes(raw, name)


def _held(top: Path, path: str) -> bool:
    """Whether the working tree holds something at ``path`` (from the top), every
    directory on the way a directory, not a symlink to one: a commit's tree holds a file
    below directories alone, and one the working tree reaches through a symlink is
    moved there (a pull request's symlink in its place would hide a move)."""
    here = top
    parts = path.split("/")
    for index, part in enumerate(parts):
        here = here / part
        try:
            mode = os.lstat(here).st_mode
        except OSError:
            return False
        if index < len(parts) - 1 and not stat.S_ISDIR(mode):
            return False
    return True


def _held_project(top: Path, path: str, source: GitSource, entry: _Entry,
                  environments: tuple[str, ...]) -> bool:
    """Whether the working tree holds the project ``source``'s commit holds at ``path``
    (from the top, its tree ``entry``), as far as the project of ``environments`` (the
    one the gate compares) can tell: a project file there (``_held``) that loads and
    lists each of those environments the commit's lists. A file left there that is none
    (empty, a comment, a link), or a project of other environments put where the moved
    one was, would hide the project moved from there, and the gate would compare
    nothing; an environment neither this project nor the commit's there builds says
    nothing of a move. A commit's file that does not load as a project is another
    project's, as it was."""
    if not _held(top, path):
        return False
    try:
        here = load_project(top / path)
    except MagcfgError:
        return False
    try:
        there = committed_project(path.rpartition("/")[2],
                                  source._object(entry.sha, b"blob", MAX_INPUT_BYTES), top)
    except (MagcfgError, _Oversized, ValueError):
        return True
    return set(there.environments) & set(environments) <= set(here.environments)


def _held_directory(top: Path, path: str) -> bool:
    """Whether the working tree holds a directory at ``path`` (from the top), every
    directory on the way one too, none a symlink."""
    return _held(top, path) and stat.S_ISDIR(os.lstat(top / path).st_mode)


def projects_gone_since(project: Project, source: GitSource) -> list[str]:
    """The project files ``source``'s commit holds where the working tree holds nothing
    (``_held``), from the top, sorted: the projects a change moved or removed since, one
    of them the working tree's project where it moved up or sideways (``svc/`` to
    ``platform/svc/``, ``a/`` to ``b/``), which ``project_file_at`` does not look for.
    Passed over as there: what is certainly no project, the working tree's own file.

    Read from git objects alone, never a checkout. A directory whose tree HEAD holds at
    the same path, and the working tree holds as a directory, is not walked: each file
    below it is where the commit held it (CI checks out HEAD), so the walk costs what
    the change moved, not the repository's size; a project file removed from such a
    directory in the working tree alone, not committed, goes unseen. Past
    ``MAX_ENTRIES`` entries walked (the ref's and HEAD's) it stops with a located error:
    what it has not walked may hold the project moved, and a gate that compared nothing
    would pass."""
    top = git_root(Path(os.path.realpath(project.root)))
    if top is None:
        return []
    own = posixpath.join(source._here, project.file)
    head = _head_tree(source)
    found: list[str] = []
    left = MAX_ENTRIES
    stack: list[tuple[str, _Entry, _Entry | None]] = [("", source._top, head)]
    while stack:
        path, tree, at_head = stack.pop()
        try:
            entries = source._tree(tree)
            head_entries = (source._tree(at_head) if at_head is not None
                            and stat.S_ISDIR(at_head.mode) else None)
        except _TooMuch:
            entries, head_entries = {}, None
            left = -1
        if entries is None:
            continue  # a tree git refuses: no project of a checkout is in it
        # HEAD's side counts too: a pull request writes it, a tree as large as it likes
        # at every directory walked.
        left -= len(entries) + len(head_entries or ())
        if left < 0:
            raise BuildError([Diagnostic(project.file, None, None, (
                f"{source.ref} and the working tree differ in directories of more than "
                f"{MAX_ENTRIES} entries, and {source.ref} holds no project file where "
                "this one is: magcfg stops looking for the project this change moved "
                "there, and compares nothing; move the project in a change of its own, "
                "then make the rest in the next"), code="project_moved")])
        for name, entry in entries.items():
            if not utf8_name(name):
                continue  # no path of the working tree's: nothing moved from there
            child = f"{path}/{name}" if path else name
            if stat.S_ISDIR(entry.mode):
                same = head_entries.get(name) if head_entries is not None else None
                if same != entry or not _held_directory(top, child):
                    stack.append((child, entry, same))
            elif (name in PROJECT_FILE_NAMES and child != own
                  and _may_be_project(source, entry, name)
                  and not _held_project(top, child, source, entry, project.environments)):
                found.append(child)
    return sorted(found)


def _head_tree(source: GitSource) -> _Entry | None:
    """The tree of the repository's HEAD, None where there is none (no commit yet)."""
    import git

    from ..project import GIT_BLOB_SECONDS

    try:
        with source._watchdog.watching():
            sha = source.repo.git.rev_parse("--verify", "--quiet", "--end-of-options",
                                            "HEAD^{tree}", kill_after_timeout=GIT_BLOB_SECONDS)
        return _Entry(bytes.fromhex(sha.strip()), _TREE)
    except (git.GitCommandError, ValueError):
        return None


@contextlib.contextmanager
def ref_project_source(project: Project, ref: str) -> Iterator[tuple[GitSource, str | None]]:
    """A ``GitSource`` of ``ref`` in the directory of ``project``'s file there
    (``project_file_at``: renamed or moved since, where it was; else the one project
    file the ref holds that the working tree does not, ``projects_gone_since``: moved up
    or sideways), and the file's name in it; None, and the project root's directory,
    where the ref holds none. A located error where the ref holds several such files:
    which of them this project was cannot be told, and a guess could compare a version
    with another project's, or nothing."""
    with GitSource(project.root, ref) as source:
        with source.errors_at_ref():
            found = project_named_at(project, source) or project_file_at(project, source)
        if found is None:
            gone = projects_gone_since(project, source)
            if len(gone) > 1:
                names = ", ".join(printable(source.name_from_top(g)) for g in gone)
                raise BuildError([Diagnostic(project.file, None, None, (
                    f"{ref} holds no project file here, and {len(gone)} that the working "
                    f"tree no longer holds ({names}): "
                    "this change moved or removed them, and which one this project was "
                    "cannot be told, so no version can be compared with "
                    f"{ref}'s; move the project in a change of its own (every other file "
                    "as it was), then make the rest in the next"), code="project_moved")])
            found = gone[0] if gone else None
        directory, file = posixpath.split(found) if found is not None else (source.prefix, None)
        if directory == source.prefix:
            yield source, file
            return
        with GitSource(project.root, ref, source.repo, directory) as moved:
            yield moved, file


def project_at(project: Project, source: GitSource, file: str | None = None
               ) -> Project | None:
    """The project file ``file`` (default: the working tree's name of it) as it is in
    ``source``'s commit, rooted at the working project's root (so layer paths resolve
    the same way); None where the commit has none under that name (a pull request that
    starts the project: it has nothing there to compare with). It must be a regular file
    there, as in the working tree."""
    name = project.file if file is None else file
    try:
        raw = source.read(name, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if raw == project.raw and name == project.file:
        return project
    return committed_project(name, raw, project.root)


def committed_project(file: str, raw: bytes, root: Path) -> Project:
    """The project of a project file a commit holds as ``raw`` (``file`` from the project
    root), checked as ``load_project`` checks one and rooted at ``root``: what git holds
    is read, never a checkout of it."""
    with tempfile.TemporaryDirectory(prefix="magcfg-ref-") as tmp:
        copy = Path(tmp) / file
        copy.write_bytes(raw)
        loaded = load_project(copy)
    return dataclasses.replace(loaded, root=root)
