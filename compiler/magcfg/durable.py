"""Contained paths and durable writes: the one place where magcfg opens, lists, writes
and deletes files of a repository (docs/security.md).

magcfg runs in CI on untrusted pull requests, so every path and byte of the repository,
its cache and an artifact directory may be hostile: a committed symlink, a FIFO, a file
name with terminal escapes or bytes that are not UTF-8. The rules, all enforced here:

- **Reads are contained.** A path is resolved (every symlink followed, ``realpath``) and
  must lie inside its allowed root (``os.path.commonpath`` of resolved paths, never a
  string prefix) and outside the *fenced* areas of that root (``.git``, the output, the
  cache), and it must be a regular file: opened with ``O_NOFOLLOW | O_NONBLOCK`` (a FIFO
  cannot hang the open) and checked with ``fstat`` before a byte is read.
- **Writes go only into real directories.** Every directory from the root down to the
  one written is a directory, not a symlink (``real_directory``).
- **An output directory changes as a whole** (``replace_directories``): its new files are
  written into a staged sibling directory, fsynced, and swapped in with one
  ``renameat2(RENAME_EXCHANGE)``; an interrupted run leaves either the old directory or
  the new one, and the next run removes what it staged (``_recover``).
- **Only known files are deleted.** A directory is replaced only if every entry in it is
  a file the caller owns (``owned``, e.g. the names the previous manifest lists); any
  other entry is an error naming it, and nothing is deleted recursively.

``os.write`` and ``fsync`` make each file durable before its rename, so after a crash a
file is either complete on disk or not there.

:func:`read_regular` is the one reader of files that may be hostile, for the runtime
too (artifact and state directories may hold a FIFO, a device or a symlink where a
file belongs); :func:`read_located` is the same with a located error for the build.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import stat
import sys
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, NamedTuple, NoReturn, TypeVar

from .errors import BuildError, Diagnostic, UsageError, no_new_task, printable

if TYPE_CHECKING:
    import threading

T = TypeVar("T")

__all__ = [
    "DANGLING",
    "FAULT_ENV",
    "GIT_PATH_VARIABLES",
    "LOOP",
    "MAX_INPUT_BYTES",
    "NOT_UTF8",
    "OUTSIDE",
    "SYMLINK_HERE",
    "DirectoryUpdate",
    "FileIdentity",
    "FileTooLarge",
    "NotRegularFile",
    "PathError",
    "Tree",
    "changed_entries",
    "checkout_top",
    "colliding_paths",
    "exchange",
    "fenced_problem",
    "file_kind",
    "fsync_dir",
    "git_env",
    "git_root",
    "held_by",
    "listed_already",
    "operator_cwd",
    "operator_name_in_checkout",
    "outside_any_repository",
    "outside_project",
    "read_if_present",
    "read_located",
    "read_member",
    "read_regular",
    "real_directory",
    "recover_directories",
    "regular_entries",
    "regular_status",
    "remove_stale_temps",
    "replace_directories",
    "replace_file",
    "repository_prefix",
    "sha256_located",
    "sha256_regular",
    "status_located",
    "temp_path",
    "write_all",
    "write_new",
]

FAULT_ENV = "MAGCFG_FAULT_INJECTION"
"""Tests only: ``kill@POINT`` (SIGKILL this process at POINT), ``enospc@POINT`` (fail the
write there as a full disk would), ``no-exchange`` (take the two-rename path). Points:
``staged`` (an environment's files written and fsynced, nothing swapped yet),
``aside`` (two-rename path: the old directory moved aside, the new one not yet in
place), ``write`` (each file written into a staged directory)."""

_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_STAGED = re.compile(r"^\.(?P<name>.+)\.magcfg-(?P<kind>new|old)-[0-9a-f]{12}$")
_TEMP_FILE = re.compile(r"^\..+\.tmp-\d+$")


class PathError(BuildError):
    """A path magcfg will not read or write (outside its root, a symlink where a real
    directory belongs, not a regular file, unreadable, a full disk); located at the
    path, relative to the project root."""


def path_problem(display: str, message: str) -> Diagnostic:
    return Diagnostic(display, None, None, message, code="path")


_HFS_IGNORED = dict.fromkeys([*range(0x200C, 0x2010), *range(0x202A, 0x202F),
                              *range(0x206A, 0x2070), 0xFEFF])
"""Code points HFS+ leaves out of a file name when it compares two (the joiners,
direction marks and BOM git's ``is_hfs_dotgit`` skips too)."""


def _windows_name(path: str) -> str:
    """``path`` as Windows opens it: each name without its trailing dots and spaces."""
    if not path.endswith((".", " ")) and "./" not in path and " /" not in path:
        return path  # no name ends in either
    return "/".join(part.rstrip(". ") or part for part in path.split("/"))


def one_file_name(path: str) -> str:
    """``path`` as macOS and Windows file systems compare names: two paths with one
    answer are one file there (case, Unicode normalization, a trailing dot or space, a
    code point HFS+ ignores)."""
    if path.isascii():  # every name of a walk and most paths: no code point HFS+ drops
        if "/" not in path:
            return (path.rstrip(". ") or path).lower()
        return _windows_name(path).lower()
    import unicodedata

    name = _windows_name(path).translate(_HFS_IGNORED)
    return name.lower() if name.isascii() else unicodedata.normalize(
        "NFC", "".join(map(_simple_fold, unicodedata.normalize("NFD", name))))


def _simple_fold(char: str) -> str:
    """``char`` case-folded one letter to one, as file systems fold names (Unicode's
    simple folding): final sigma is sigma, capital sharp s is ``ß``, but ``ß`` stays
    ``ß`` and a ligature stays one (full folding, ``casefold()``, makes ``ß`` ``ss``)."""
    folded = char.casefold()
    if len(folded) == 1:
        return folded
    lower = char.lower()
    return lower if len(lower) == 1 else char


WINDOWS_DEVICES = frozenset({"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$",
                             *(f"{port}{n}" for port in ("COM", "LPT")
                               for n in "0123456789\u00b9\u00b2\u00b3")})
"""Names Windows keeps for devices, in any case and with any extension (``nul.yaml``,
``Com1.tar.gz``): a file or directory of such a name cannot be checked out there."""


_ASCII_DEVICE = re.compile(
    r"(?:^|/)(?:" + "|".join(re.escape(name) for name in sorted(WINDOWS_DEVICES)
                            if name.isascii()) + r") *(?:\.[^/]*)?(?=/|\Z)",
    re.IGNORECASE | re.ASCII)
"""A name of ``WINDOWS_DEVICES`` in an ASCII path, as ``windows_device`` reads names:
what precedes the first dot, trailing spaces aside, in any case."""


def windows_device(path: str) -> str | None:
    """The first name in ``path`` that Windows keeps for a device, or None."""
    if path.isascii() and _ASCII_DEVICE.search(path) is None:
        return None  # what a build lists, a path at a time
    for part in path.split("/"):
        if part.split(".", 1)[0].rstrip(" ").upper() in WINDOWS_DEVICES:
            return part
    return None


def colliding_paths(paths: Iterable[str]) -> list[Diagnostic]:
    """A problem for each of ``paths`` that differs from another only in case, in
    Unicode normalization (``é`` as one code point or as ``e`` and a combining accent),
    in a trailing dot or space of a name (Windows drops them) or in a code point HFS+
    ignores (a zero-width joiner): macOS or Windows file systems hold one file for both,
    so a checkout there would build from other bytes than one on Linux. The later path
    in byte order is named. So is each path with a name Windows keeps for a device
    (``WINDOWS_DEVICES``): a checkout there lacks the file, and builds without it."""
    import unicodedata

    first: dict[str, str] = {}
    problems = []
    for path in sorted(set(paths), key=lambda p: p.encode("utf-8", "surrogateescape")):
        device = windows_device(path)
        if device is not None:
            problems.append(path_problem(path, f"has the name {device!r}, which Windows "
                                         "keeps for a device (CON, PRN, AUX, NUL, COM0-9, "
                                         "LPT0-9, with any extension): a checkout on "
                                         "Windows cannot hold it; rename it"))
        other = first.setdefault(one_file_name(path), path)
        if other == path:
            continue
        where = "on macOS and Windows they are one file"
        if _windows_name(other) == _windows_name(path):
            how = "in a trailing dot or space of a name, which Windows drops"
            where = "on Windows they are one file"
        elif other.translate(_HFS_IGNORED) == path.translate(_HFS_IGNORED):
            how = (f"in code points macOS (HFS+) ignores ({other!a} and {path!a})")
            where = "on macOS they are one file"
        elif unicodedata.normalize("NFC", other) == unicodedata.normalize("NFC", path):
            how = (f"in Unicode normalization ({other!a} and {path!a}: NFC and "
                   "NFD spell the same name)")
        else:
            how = "in case"
        problems.append(path_problem(path, f"differs from {other} only {how}: {where}; "
                                     "rename or merge them"))
    return problems


# What a read is refused for, worded once: ``pipeline.gitsource`` refuses the same things in
# a git commit's tree and must say so in the same words.
OUTSIDE = "leads outside the repository"
DANGLING = "dangling symlink: its target does not exist"
LOOP = "symlink loop: it leads to a directory that contains it"
NOT_UTF8 = "file name is not valid UTF-8; rename it"
SYMLINK_HERE = "is a symlink here; magcfg reads only regular files"


def outside_project(prefix: str) -> str:
    """Why a path that leads out of the project is not read, for a project at
    ``prefix`` in its repository (``/``-separated, ``""`` at the top): in a monorepo
    (``config/``) the path may stay in the repository, so the message names the project's
    directory, where a project at the top is its repository."""
    return f"leads outside the project ({prefix}/)" if prefix else OUTSIDE


GIT_PATH_VARIABLES = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
                      "GIT_COMMON_DIR")
"""git's variables that hold a path, which git reads relative to its working directory."""


def git_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for every git command magcfg runs: ``base`` (default: ours) with
    each of ``GIT_PATH_VARIABLES`` made absolute from our working directory, when
    ``GIT_DIR`` is given without ``GIT_WORK_TREE``, the work tree git finds from there,
    replace refs and grafts ignored (``GIT_NO_REPLACE_OBJECTS``, ``GIT_GRAFT_FILE``),
    ``GIT_CONFIG_SET`` over the repository's config, and every pathspec read as the
    path it spells (``GIT_LITERAL_PATHSPECS``): a layer file named ``:(exclude)x.yaml``
    is that file, never git's pathspec magic for every other file.

    A hook gets them relative to the top of the work tree (``GIT_INDEX_FILE=.git/index``;
    ``GIT_DIR=.git`` and ``GIT_WORK_TREE=.`` under ``git --git-dir``), or ``GIT_DIR`` alone
    (in a linked worktree), which makes git take its working directory for the top: git
    run in a project below the top would find no repository, or the project's directory
    as the work tree, and number versions from manifests that are not there."""
    env = dict(os.environ if base is None else base)
    # A replace ref (`git replace`) is this repository's alone, never fetched: objects
    # are read as committed, or a replaced manifest numbered versions here alone.
    env["GIT_NO_REPLACE_OBJECTS"] = "1"
    # A graft (.git/info/grafts) is as much this repository's alone: one hid commits
    # from a walk (`lint --since`). A file that cannot exist holds none, and git says
    # nothing of it (an empty one it reads, and warns that grafts are deprecated).
    env["GIT_GRAFT_FILE"] = os.path.join(os.devnull, "no-grafts")
    env["GIT_LITERAL_PATHSPECS"] = "1"
    _set_config(env, GIT_CONFIG_SET)
    for name in GIT_PATH_VARIABLES:
        value = env.get(name)
        if value and not os.path.isabs(value):
            env[name] = os.path.abspath(value)
    if env.get("GIT_DIR") and not env.get("GIT_WORK_TREE"):
        top = _work_tree_here(env["GIT_DIR"], os.getcwd())
        if top is not None:
            env["GIT_WORK_TREE"] = top
    return env


GIT_CONFIG_SET = (("core.fsmonitor", "false"),)
"""git settings every git command magcfg runs is given, over the repository's own:
``core.fsmonitor`` names a command git runs, and waits on, whenever it reads the index
(``git ls-files``, every command's question), taken from the ``.git/config`` of
whoever made the repository (one handed over whole, a CI runner's cache). Without it
git looks at the work tree itself, as a clone's first command does."""


def _set_config(env: dict[str, str], settings: Sequence[tuple[str, str]]) -> None:
    """``settings`` added to ``env``'s ``GIT_CONFIG_COUNT`` list (git 2.31), after any
    it holds: the last value of a key is the one git takes. Once: a list that ends with
    them already (an environment made by ``git_env``) is left as it is."""
    count = env.get("GIT_CONFIG_COUNT", "0")
    if not count.isdigit():
        return  # git refuses every command so, saying why: nothing to add to
    n = int(count)
    if n >= len(settings) and all(
            (env.get(f"GIT_CONFIG_KEY_{n - len(settings) + i}"),
             env.get(f"GIT_CONFIG_VALUE_{n - len(settings) + i}")) == setting
            for i, setting in enumerate(settings)):
        return
    for key, value in settings:
        env[f"GIT_CONFIG_KEY_{n}"] = key
        env[f"GIT_CONFIG_VALUE_{n}"] = value
        n += 1
    env["GIT_CONFIG_COUNT"] = str(n)


@functools.lru_cache(maxsize=4)
def _work_tree_here(git_dir: str, cwd: str) -> str | None:
    """The top of the work tree that git run in ``cwd`` with ``GIT_DIR=git_dir`` uses
    (None for a bare repository, or without git)."""
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=cwd,
                             env={**os.environ, "GIT_DIR": git_dir}, capture_output=True,
                             text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        if no_new_task(exc):
            raise
        return None
    return out.stdout.removesuffix("\n") if out.returncode == 0 and out.stdout.strip() else None


GIT_ANSWER_SECONDS = 30
"""How long magcfg waits for git's answer to a question (the repository's top,
``project.ignored_by_git``, ``project.indexed_by_git``): git answers in milliseconds,
and one that has not in this long waits on something that may never come (a FIFO where
a ``.gitignore`` or an included config file is, a hung mount)."""


_held_tops: dict[str, Path | None] | None = None
"""``git_root``'s answers while ``git_tops_held`` holds them, by directory."""


@contextlib.contextmanager
def git_tops_held() -> Iterator[None]:
    """Within, ``git_root`` asks git once per directory and answers again as it did.
    A build asks of its project's root up to four times (outside a work tree, each of
    its git questions fails and then asks whether there is one; the versions ask where
    the top is), a process each, in turn; one answer serves all of them, as the files
    it reads are read once. Nested, the outermost holds."""
    global _held_tops
    if _held_tops is not None:
        yield
        return
    _held_tops = {}
    try:
        yield
    finally:
        _held_tops = None


def git_root(start: Path) -> Path | None:
    """The top of the git work tree containing ``start``, or None outside git (or without
    git). Here, below every command, because the name of any file it prints depends on
    it (``repository_prefix``). Once per directory within ``git_tops_held``."""
    held = _held_tops
    if held is not None and str(start) in held:
        return held[str(start)]
    top = _ask_git_root(start)
    if held is not None:
        held[str(start)] = top
    return top


def _ask_git_root(start: Path) -> Path | None:
    if outside_any_repository(start):
        return None
    import subprocess  # only the commands that ask pay for it at startup

    try:
        out = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=start,
                             capture_output=True, text=True, check=False, env=git_env(),
                             timeout=GIT_ANSWER_SECONDS)
    except FileNotFoundError:
        return None
    except subprocess.TimeoutExpired:
        raise BuildError([Diagnostic(
            "", None, None, f"`git rev-parse --show-toplevel` gave no answer in "
            f"{GIT_ANSWER_SECONDS} s: is something it reads, such as a config file git "
            "includes, a FIFO or on a mount that hangs? Fix what stops git, then run magcfg "
            "again", code="git")]) from None
    if out.returncode != 0:
        return None
    # One line end taken off, not stripped: a directory's name may end in a space.
    return Path(out.stdout.removesuffix("\n"))


def outside_any_repository(start: Path) -> bool:
    """Whether git finds no repository from the directory ``start``, told without
    running it: no ``GIT_DIR``, and neither ``start`` nor a directory above it holds a
    ``.git`` or a ``HEAD`` (a git directory itself), up to a directory of
    ``GIT_CEILING_DIRECTORIES``, which git does not look in either. Anything else is
    git's to answer. git takes ~4 ms to start and say so, and a build outside git would
    start it eight times: each question about its inputs (``project._Asked``, the
    manifests committed) fails there, and the top is asked for the project file and the
    build."""
    if "GIT_DIR" in os.environ:
        return False
    here = os.path.realpath(start)
    if not os.path.isdir(here):
        return False
    ceilings = {os.path.realpath(entry) for entry
                in os.environ.get("GIT_CEILING_DIRECTORIES", "").split(os.pathsep)
                if os.path.isabs(entry)}
    while True:
        if os.path.lexists(os.path.join(here, ".git")) \
                or os.path.lexists(os.path.join(here, "HEAD")):
            return False
        parent = os.path.dirname(here)
        if parent == here or parent in ceilings:
            return True
        here = parent


def repository_prefix(root: str) -> str:
    """Where the directory ``root`` is in the git work tree around it, ``/``-separated;
    ``""`` at its top, or outside any (or without git). git is asked (``git_root``), as
    for every other question about the repository: ``lint`` names files from the top git
    answers, and a ``.git`` git does not take for a repository (an empty directory, a
    dead worktree's file) is no top."""
    real = os.path.realpath(root)
    top = git_root(Path(real)) if os.path.isdir(real) else None
    if top is None:
        return ""
    try:
        prefix = Path(real).relative_to(os.path.realpath(top)).as_posix()
    except ValueError:  # a work tree elsewhere (GIT_WORK_TREE): not the project's top
        return ""
    return "" if prefix == "." else prefix


def fenced_problem(fence: str) -> str:
    """Why nothing in ``fence`` (relative to the root) is read."""
    return (f"leads into {fence}, which magcfg does not read "
            "(.git, the output and the cache are off limits)")


def listed_already(rel: str) -> str:
    return f"symlink to a directory listed already (as {rel})"


def os_reason(exc: OSError) -> str:
    """What went wrong, for a message: the few cases a hostile tree produces named
    plainly, anything else as the system says it."""
    if exc.errno == errno.ELOOP:
        return "symlink loop (too many levels of symbolic links)"
    if exc.errno == errno.ENOSPC:
        return "no space left on device"
    if exc.errno == errno.EDQUOT:
        return "disk quota exceeded"
    if exc.errno == errno.EROFS:
        return "read-only file system"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return (exc.strerror or str(exc)).lower()


def _fault(point: str) -> None:
    """The test hook of ``FAULT_ENV`` (unset outside tests: one dict lookup)."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    for item in spec.split(","):
        action, _, where = item.partition("@")
        if where != point:
            continue
        if action == "kill":
            import signal

            os.kill(os.getpid(), signal.SIGKILL)
        if action == "enospc":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _fault_set(flag: str) -> bool:
    return flag in (os.environ.get(FAULT_ENV) or "").split(",")


# ---------------------------------------------------------------- reading


_KINDS = ((stat.S_ISREG, "a file"), (stat.S_ISDIR, "a directory"), (stat.S_ISLNK, "a symbolic link"),
          (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


MAX_INPUT_BYTES = 256 * 1024 * 1024
"""The largest file magcfg reads from a repository (a layer file, a schema, the project
file), in the working tree or at a git ref: ~6 times the 40.7 MB exhaustive schema of
the large benchmark repository, whose largest layer file is ~30 KB. A larger one is
refused before a byte of it is read: a pull request could plant a file of any size."""


class NotRegularFile(OSError):
    """``path`` exists but is not a regular file (``kind`` says what it is)."""

    def __init__(self, path: str | os.PathLike[str], kind: str) -> None:
        self.message = f"is {kind}, not a regular file"
        super().__init__(errno.EINVAL, self.message, str(path))
        self.kind = kind


class FileTooLarge(OSError):
    """``path`` is larger than the reader accepts."""

    def __init__(self, path: str | os.PathLike[str], size: int, limit: int) -> None:
        self.message = f"is larger than {limit} bytes"
        super().__init__(errno.EFBIG, self.message, str(path))
        self.limit = limit


def file_kind(mode: int) -> str:
    """What a file of ``mode`` is, for messages: ``a FIFO``, ``a directory``, ..."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def read_regular(path: str | os.PathLike[str], limit: int | None = None, *,
                 follow_symlinks: bool = False, dir_fd: int | None = None) -> bytes:
    """The bytes of the regular file ``path``, which may be hostile.

    Never opens a device, never blocks on a FIFO and, unless ``follow_symlinks`` (for a
    path the operator configured, such as a key mounted from a Kubernetes volume),
    never follows a symlink in the last component: ``lstat`` (or ``stat``) first, so
    nothing but a regular file is opened, then open with ``O_NONBLOCK`` (and
    ``O_NOFOLLOW``) and ``fstat`` the descriptor (the file may have been swapped in
    between). Raises :class:`NotRegularFile`, :class:`FileTooLarge` (more than
    ``limit`` bytes), ``FileNotFoundError`` or another ``OSError``. ``dir_fd``: a
    directory descriptor a relative ``path`` is resolved from.
    """
    fd, size = _open_regular(path, follow_symlinks, dir_fd)
    try:
        if limit is not None and size > limit:
            raise FileTooLarge(path, size, limit)
        # Read to the end, whatever fstat said (the file may grow meanwhile), and no
        # further than one byte past the limit. Plain reads on the descriptor: a build
        # reads a thousand small files, and a buffered file object per file cost more
        # than the reading.
        left = sys.maxsize if limit is None else limit + 1
        chunks: list[bytes] = []
        while chunk := os.read(fd, min(size + 1 if not chunks else 1 << 20, left)):
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    if limit is not None and len(data) > limit:  # grew after the fstat
        raise FileTooLarge(path, len(data), limit)
    return data


def sha256_regular(path: str | os.PathLike[str], limit: int | None = None
                   ) -> tuple[str, int]:
    """The hex SHA-256 and the size of what :func:`read_regular` would return, with the
    same checks (``limit`` included), read in chunks: a file of tens of megabytes is
    never held whole."""
    import hashlib

    fd, size = _open_regular(path, False, None)
    try:
        if limit is not None and size > limit:
            raise FileTooLarge(path, size, limit)
        digest = hashlib.sha256()
        size = 0
        buffer = bytearray(1 << 18)
        view = memoryview(buffer)
        while n := os.readv(fd, [buffer]):
            digest.update(view[:n])
            size += n
            if limit is not None and size > limit:  # grew after the fstat
                raise FileTooLarge(path, size, limit)
    finally:
        os.close(fd)
    return digest.hexdigest(), size


def regular_status(path: str | os.PathLike[str], limit: int | None = None) -> os.stat_result:
    """The status of the file :func:`sha256_regular` would hash, with its checks
    (``limit`` included; a symlink is not followed). Nothing is opened: a thousand
    layer files are asked about on every build."""
    status = os.stat(path, follow_symlinks=False)
    if not stat.S_ISREG(status.st_mode):
        raise NotRegularFile(path, file_kind(status.st_mode))
    if limit is not None and status.st_size > limit:
        raise FileTooLarge(path, status.st_size, limit)
    return status


def _open_regular(path: str | os.PathLike[str], follow_symlinks: bool,
                  dir_fd: int | None) -> tuple[int, int]:
    """A descriptor open for reading on ``path`` if it is a regular file (see
    :func:`read_regular`), and the file's size then."""
    mode = os.stat(path, dir_fd=dir_fd, follow_symlinks=follow_symlinks).st_mode
    if not stat.S_ISREG(mode):
        raise NotRegularFile(path, file_kind(mode))
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    if not follow_symlinks:
        flags |= os.O_NOFOLLOW
    try:
        fd = os.open(path, flags, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # became a symlink after the lstat
            raise NotRegularFile(path, "a symbolic link") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(path, file_kind(st.st_mode))
    except BaseException:
        os.close(fd)
        raise
    return fd, st.st_size


def read_member(directory: str | os.PathLike[str], name: str,
                limit: int | None = None, *, dir_fd: int | None = None) -> bytes:
    """:func:`read_regular` of ``directory/name``, where ``name`` (an artifact's listed
    file) may name sub-directories: each is opened without following a symlink, so a
    planted link in the middle of the name cannot lead out of ``directory``. Raises
    :class:`NotRegularFile` for such a link (or a file where a directory belongs) and
    whatever ``read_regular`` raises. ``dir_fd``: ``directory`` open already (its path
    then only names it in errors), so that reads of several members stay in the one
    directory it was when opened, whatever is renamed in its place meanwhile."""
    head, _, last = name.rpartition("/")
    if not head:
        if dir_fd is not None:
            return read_regular(name, limit, dir_fd=dir_fd)
        return read_regular(os.path.join(directory, name), limit)
    fd = (os.dup(dir_fd) if dir_fd is not None
          else os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
    try:
        for part in head.split("/"):
            try:
                inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
                                | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=fd)
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                mode = os.stat(part, dir_fd=fd, follow_symlinks=False).st_mode
                raise NotRegularFile(os.path.join(directory, name),
                                     f"below {file_kind(mode)} ({part})") from None
            os.close(fd)
            fd = inner
        return read_regular(last, limit, dir_fd=fd)
    finally:
        os.close(fd)


def read_located(path: str | os.PathLike[str], display: str, limit: int | None = None) -> bytes:
    """:func:`read_regular` for the build: the last component must not be a symlink
    (resolve first); ``PathError`` naming ``display`` otherwise (a FIFO, device, socket
    or directory, more than ``limit`` bytes, or a file that cannot be read)."""
    if limit is None:
        return _located(display, read_regular, path)
    return _located(display, lambda p: read_regular(p, limit), path)


def sha256_located(path: str | os.PathLike[str], display: str,
                   limit: int | None = None) -> tuple[str, int]:
    """:func:`sha256_regular` with the errors of :func:`read_located`."""
    return _located(display, lambda p: sha256_regular(p, limit), path)


def status_located(path: str | os.PathLike[str], display: str,
                   limit: int | None = None) -> os.stat_result:
    """:func:`regular_status` with the errors of :func:`read_located`."""
    return _located(display, lambda p: regular_status(p, limit), path)


def _located(display: str, reader: Callable[[str | os.PathLike[str]], T],
             path: str | os.PathLike[str]) -> T:
    try:
        return reader(path)
    except NotRegularFile as exc:
        message = SYMLINK_HERE if exc.kind == "a symbolic link" else exc.message
        raise PathError([path_problem(display, message)]) from None
    except FileTooLarge as exc:
        raise PathError([path_problem(display, exc.message)]) from None
    except OSError as exc:
        raise PathError([path_problem(display, f"cannot read: {os_reason(exc)}")]) from None


def read_if_present(path: str | os.PathLike[str], display: str,
                    limit: int | None = None) -> bytes | None:
    """:func:`read_located`, or None if nothing is at ``path`` (or its directory is
    missing)."""
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise PathError([path_problem(display, f"cannot read: {os_reason(exc)}")]) from None
    return read_located(path, display, limit)


def _inside(path: str, root: str) -> bool:
    """``path`` is ``root`` or below it; both resolved, absolute."""
    return os.path.commonpath((path, root)) == root


class Tree:
    """Files below ``root`` that magcfg may read: symlinks are followed only while they
    stay inside ``root`` and out of the ``fenced`` directories (relative paths, e.g. the
    output, the cache, ``.git``); only regular files are read.

    ``list_files`` remembers where each listed file really is, so reading a listed file
    costs one ``open`` and no path resolution."""

    def __init__(self, root: str | os.PathLike[str], fenced: Iterable[str] = ()) -> None:
        self.root = os.path.realpath(root)
        self.fenced = tuple(os.path.join(self.root, f) for f in fenced if f)
        self._cut = len(self.root) + 1
        self._real: dict[str, str] = {}

    @functools.cached_property
    def _outside(self) -> str:
        return outside_project(repository_prefix(self.root))

    def _problem_of(self, rel: str, real: str) -> str | None:
        if not _inside(real, self.root):
            return self._outside
        for fence in self.fenced:
            if _inside(real, fence):
                return fenced_problem(fence[self._cut:])
        return None

    def resolve(self, rel: str) -> str:
        """The real path of ``rel`` (which must exist), checked as the class says."""
        full = os.path.join(self.root, rel)
        try:
            real = os.path.realpath(full, strict=True)
        except FileNotFoundError:
            if os.path.lexists(full):
                raise PathError([path_problem(rel, DANGLING)]) from None
            raise PathError([path_problem(rel, "not found")]) from None
        except OSError as exc:
            raise PathError([path_problem(rel, os_reason(exc))]) from None
        problem = self._problem_of(rel, real)
        if problem is not None:
            # A path that climbs out by itself (`../x`) is not a symlink's doing.
            raise PathError([path_problem(rel, problem if os.path.normpath(full) == real
                                          else f"symlink {problem}")])
        return real

    def real_relative(self, rel: str) -> str:
        """Where below the root the file ``rel`` really is: ``rel`` itself unless a
        symlink on its way leads elsewhere (``rel`` when that is outside the root)."""
        real = self._real.get(rel) or os.path.realpath(os.path.join(self.root, rel))
        # A prefix test, not _inside: asked for every file of every build.
        return real[self._cut:] if real.startswith(os.path.join(self.root, "")) else rel

    def read(self, rel: str, limit: int | None = None) -> bytes:
        """The bytes of the regular file ``rel`` (relative to the root), at most
        ``limit`` (:data:`MAX_INPUT_BYTES` unless given)."""
        real = self._real.get(rel)
        return read_located(real if real is not None else self.resolve(rel), rel,
                            MAX_INPUT_BYTES if limit is None else limit)

    def sha256(self, rel: str) -> tuple[str, int]:
        """The hex SHA-256 and size of what ``read(rel)`` returns, not held in memory."""
        real = self._real.get(rel)
        return sha256_located(real if real is not None else self.resolve(rel), rel,
                              MAX_INPUT_BYTES)

    def status(self, rel: str) -> os.stat_result:
        """The status of the file ``sha256(rel)`` hashes, with its checks."""
        real = self._real.get(rel)
        return status_located(real if real is not None else self.resolve(rel), rel,
                              MAX_INPUT_BYTES)

    def read_optional(self, rel: str, limit: int | None = None) -> bytes | None:
        """``read``, or None if nothing is at ``rel``."""
        if not os.path.lexists(os.path.join(self.root, rel)):
            return None
        return self.read(rel, limit)

    def replace(self, rel: str, data: bytes) -> None:
        """Write ``rel`` atomically (``replace_file``), creating its directories, where
        :meth:`writable` allows it."""
        target = self.writable(rel)
        try:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            replace_file(Path(target), data)
        except OSError as exc:
            raise PathError([path_problem(rel, f"cannot write: {os_reason(exc)}")]) from None

    def writable(self, rel: str) -> str:
        """Where :meth:`replace` would write ``rel``, or ``PathError``: the directory must
        resolve inside the root and out of the fenced areas, and ``rel`` itself must be
        a regular file or absent (a symlink is never written through). Nothing is
        created: a caller writing several files asks for each before it writes any."""
        parent_rel, _, name = rel.rpartition("/")
        existing = parent_rel
        missing: list[str] = []
        while existing and not os.path.lexists(os.path.join(self.root, existing)):
            existing, _, part = existing.rpartition("/")
            missing.insert(0, part)
        real_parent = self.resolve(existing) if existing else self.root
        if missing and (".." in missing or "." in missing):
            raise PathError([path_problem(rel, "must not contain '.' or '..'")])
        target = os.path.join(real_parent, *missing, name)
        try:
            mode = os.lstat(target).st_mode
        except FileNotFoundError:
            mode = None
        if mode is not None and not stat.S_ISREG(mode):
            raise PathError([path_problem(rel, f"is {file_kind(mode)}; magcfg writes only "
                                          "regular files")])
        return target

    def list_files(self, directory: str, suffixes: tuple[str, ...]
                   ) -> tuple[list[str], list[Diagnostic]]:
        """Files ending in ``suffixes`` below ``directory`` (recursive, hidden entries
        skipped, sorted by path bytes), and the problems met: symlinks leading outside
        or into a fenced area, loops, dangling links, entries that are not regular files,
        names that are not UTF-8. A missing directory lists nothing. A symlinked
        directory inside the root is listed under the link's name, once."""
        rel = directory.strip("/")
        if not os.path.lexists(os.path.join(self.root, rel)):
            return [], []
        try:
            real = self.resolve(rel)
        except PathError as exc:
            return [], exc.diagnostics
        if not os.path.isdir(real):
            return [], [path_problem(rel, "is not a directory")]
        walk = _Walk(self, suffixes)
        walk.run(real, rel)
        walk.files.sort(key=lambda p: p.encode("utf-8"))
        return walk.files, walk.problems


class _Walk:
    """One ``Tree.list_files``: what it found so far."""

    def __init__(self, tree: Tree, suffixes: tuple[str, ...]) -> None:
        self.tree = tree
        self.suffixes = suffixes
        self.files: list[str] = []
        self.problems: list[Diagnostic] = []
        self.listed: dict[str, str] = {}  # real directory -> its rel
        # Directories still to list: a loop, not recursion, so that a pull request's
        # thousand nested directories cannot exhaust Python's stack.
        self.pending: list[tuple[str, str]] = []

    def run(self, real_dir: str, rel_dir: str) -> None:
        self.push(real_dir, rel_dir)
        while self.pending:
            self.directory(*self.pending.pop())

    def push(self, real_dir: str, rel_dir: str) -> None:
        self.listed[real_dir] = rel_dir
        self.pending.append((real_dir, rel_dir))

    def directory(self, real_dir: str, rel_dir: str) -> None:
        # os.scandir, not os.walk and lstat: the entry types come with the listing, so
        # the ~1,500 files of a large repository cost no system call each.
        try:
            entries = list(os.scandir(real_dir))
        except OSError as exc:
            self.problems.append(path_problem(rel_dir, f"cannot list: {os_reason(exc)}"))
            return
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            rel = f"{rel_dir}/{name}"
            wanted = name.endswith(self.suffixes)
            try:
                if not name.isascii() and not utf8_name(name):
                    if wanted or entry.is_dir():
                        self.problems.append(path_problem(rel, NOT_UTF8))
                elif entry.is_symlink():
                    self.link(rel, real_dir, wanted)
                elif entry.is_dir(follow_symlinks=False):
                    self.push(entry.path, rel)
                elif wanted and entry.is_file(follow_symlinks=False):
                    self.files.append(rel)
                    self.tree._real[rel] = entry.path
                elif wanted:
                    mode = entry.stat(follow_symlinks=False).st_mode
                    self.problems.append(path_problem(rel, f"is {file_kind(mode)}, not a "
                                                      "regular file"))
            except OSError as exc:
                self.problems.append(path_problem(rel, os_reason(exc)))
        self.collisions(entries, rel_dir)

    def collisions(self, entries: list[os.DirEntry[str]], rel_dir: str) -> None:
        """A problem for two entries of one directory that macOS or Windows hold as one
        (``one_file_name``) where that one is a layer file or a directory: only the walk
        sees them, as a name whose suffix matches in another case alone (``DB.YAML``
        beside ``db.yaml``) is no layer file here, and a directory's files are listed
        under two names here (``Sub/a.yaml``, ``sub/b.yaml``), one there."""
        first: dict[str, os.DirEntry[str]] = {}
        for entry in entries:
            if entry.name.startswith(".") or (not entry.name.isascii()
                                              and not utf8_name(entry.name)):
                continue
            key = one_file_name(entry.name)
            other = first.setdefault(key, entry)
            if other is entry:
                continue
            try:
                listed = key.endswith(self.suffixes) or entry.is_dir() or other.is_dir()
            except OSError:
                listed = True
            if listed:
                self.problems += colliding_paths([f"{rel_dir}/{other.name}",
                                                  f"{rel_dir}/{entry.name}"])

    def link(self, rel: str, real_dir: str, wanted: bool) -> None:
        """A symlink met in the walk (in ``real_dir``): followed if it stays inside;
        reported if it does not and would matter (a layer file, or a directory). Each
        directory is listed once, so links cannot make the walk loop or multiply."""
        try:
            real = self.tree.resolve(rel)
        except PathError as exc:
            if wanted or os.path.isdir(os.path.join(self.tree.root, rel)):
                self.problems.extend(exc.diagnostics)
            return
        if os.path.isdir(real):
            if _inside(real_dir, real):
                self.problems.append(path_problem(rel, LOOP))
            elif real in self.listed:
                self.problems.append(path_problem(rel, listed_already(self.listed[real])))
            else:
                self.push(real, rel)
        elif wanted and os.path.isfile(real):
            self.files.append(rel)
            self.tree._real[rel] = real
        elif wanted:
            mode = os.stat(real).st_mode
            self.problems.append(path_problem(rel, f"symlink to {file_kind(mode)}, not a "
                                              "regular file"))


def utf8_name(name: str) -> bool:
    """Whether a file name holds only UTF-8 (os and GitPython keep a byte that is not
    as a lone surrogate, which does not encode)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# ---------------------------------------------------------------- writing one file


def write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is written (it may write less than asked)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def fsync_dir(path: Path | str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_new(path: Path | str, data: bytes, mode: int = 0o644) -> None:
    """Create ``path`` (it must not exist) with ``mode`` and ``data``, fsynced."""
    fd = _written(path, data, mode)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _written(path: Path | str, data: bytes, mode: int = 0o644) -> int:
    """Create ``path`` (it must not exist) with ``mode`` and ``data``, not yet fsynced;
    returns its open descriptor, the caller's to fsync and close."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 mode)
    try:
        os.fchmod(fd, mode)  # whatever the umask
        write_all(fd, data)
    except BaseException:
        os.close(fd)
        raise
    return fd


MAX_NAME_BYTES = 255
"""The longest name of a file or directory Linux holds (NAME_MAX), in bytes."""
MAX_REPLACED_NAME_BYTES = MAX_NAME_BYTES - len("..tmp-") - 10
"""The longest name of a file :func:`replace_file` writes: its :func:`temp_path` (a
pid of up to ten digits) is a name too."""


def temp_path(path: Path) -> Path:
    """Where :func:`replace_file` writes ``path`` before the rename: ``.<name>.tmp-<pid>``."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def remove_stale_temps(path: Path, stale_after: float = 600.0) -> list[str]:
    """Remove the temp files that writers of ``path`` killed mid-write (``kill -9``,
    power loss) left beside it; returns their names.

    Only names of :func:`temp_path`'s pattern for ``path``, only regular files (a
    symlink is never followed), only in ``path``'s directory, and only when the writer
    cannot still be writing: the pid in the name is ours, is no process, or the file
    is older than ``stale_after`` seconds (a replace takes milliseconds; in a fresh
    container another process may have been given the dead writer's pid). Call it
    before this process writes ``path``.
    """
    pattern = re.compile(re.escape(f".{path.name}.tmp-") + r"([0-9]{1,10})")
    removed: list[str] = []
    try:
        names = os.listdir(path.parent)
    except OSError:
        return removed
    for name in sorted(names):
        match = pattern.fullmatch(name)
        if match is None:
            continue
        candidate = path.parent / name
        try:
            st = os.lstat(candidate)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        if not (_writer_gone(int(match.group(1)))
                or time.time() - st.st_mtime > stale_after):
            continue
        try:
            os.unlink(candidate)
        except FileNotFoundError:
            continue
        removed.append(name)
    return removed


def _writer_gone(pid: int) -> bool:
    if pid == os.getpid() or not 0 < pid < 2**31:
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, under another user
        return False
    return False


def replace_file(path: Path, data: bytes, mode: int = 0o644, sync_dir: bool = True) -> None:
    """Atomically replace ``path`` with ``data``; the directory is fsynced unless the
    caller does it once for many files (``sync_dir=False``)."""
    tmp = temp_path(path)
    try:
        write_new(tmp, data, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if sync_dir:
        fsync_dir(path.parent)



def write_operator_file(path: Path, data: bytes, *, checkout: Path | None = None,
                        create_directories: bool = False) -> None:
    """Write ``data`` to a file the operator named on the command line (``--out``),
    creating its directories: the operator's choice of place, but only ever a regular
    file (a symlink to one is the operator's too), replaced atomically.

    ``checkout``: the name is the operator's, but the place may be this checkout, which
    a pull request controls (``lint -o`` and the lint baseline are written in CI's
    workspace; ``docs --out``). A symlink inside it was committed, not chosen: one met
    on the way to ``path`` (however ``path`` reaches the checkout: relatively, through
    a link of the operator's outside it, with ``..``), or at ``path`` itself, is refused
    rather than written through; symlinks outside the checkout are the operator's and
    followed. A missing directory is an error rather than created, so a mistyped path
    makes no directories anywhere (as ``report --html`` and ``promote --pr-body``),
    unless ``create_directories`` (``docs --out docs/reference/x.md``): then they are
    created, as real directories."""
    if checkout is None:
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            mode = None
        except OSError as exc:
            raise PathError([path_problem(str(path), os_reason(exc))]) from None
        if mode is not None and not stat.S_ISREG(mode):
            raise PathError([path_problem(str(path), f"is {file_kind(mode)}; give a file "
                                          "name")])
        target = Path(os.path.realpath(path)) if mode is not None else path
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PathError([path_problem(str(path), f"cannot write: {os_reason(exc)}")]
                            ) from None
    else:
        target = operator_path_to_write(path, os.path.realpath(checkout), create_directories)
    try:
        replace_file(target, data)
    except OSError as exc:
        raise PathError([path_problem(str(path), f"cannot write: {os_reason(exc)}")]) from None


def operator_cwd() -> Path:
    """The working directory as the operator named it: ``$PWD``, where that is an
    absolute name without ``.`` or ``..`` of the directory ``os.getcwd()`` is (a shell's
    ``cd svc`` keeps ``svc`` where it is a symlink; the kernel names where it leads),
    else ``os.getcwd()``. A file the operator names and the nearest project file are
    found from here: a directory a pull request commits as a symlink is named as the
    operator named it, not as where the pull request points it. ``PathError`` naming
    the symlink where one a checkout holds on the way leads out of that checkout, or
    into its ``.git``: what is found there is no file of the repository."""
    here = os.getcwd()
    named = os.environ.get("PWD", "")
    if named == here or not os.path.isabs(named) or {".", ".."} & set(named.split("/")):
        return Path(here)
    try:
        if not os.path.samestat(os.stat(named), os.stat(here)):
            return Path(here)
    except OSError:
        return Path(here)
    _check_checkout_links(named)
    return Path(named)


def _check_checkout_links(named: str) -> None:
    """``PathError`` where a symlink on the way of the absolute directory ``named``
    (without ``.`` or ``..``), below the top of the innermost git checkout entered
    before it and held in its index (a pull request's), leads out of that checkout or
    into its ``.git``. Symlinks above any checkout, or that it does not hold (a dotfiles
    repository's ``~/work`` leading to the operator's checkouts), are the operator's."""
    current = "/"
    top: str | None = None
    below: list[str] = []  # the names walked below ``top``, as the operator gave them
    crossed = False  # a symlink of the checkout's: no checkout below it is the operator's
    for part in named.split("/")[1:]:
        if not part:
            continue
        step = os.path.join(current, part)
        below.append(part)
        if os.path.islink(step):
            target = os.path.realpath(step)
            outside = top is not None and not _inside(target, top)
            fenced = top is not None and _inside(target, os.path.join(top, ".git"))
            if top is not None and (outside or fenced) and _held(top, "/".join(below)):
                why = OUTSIDE if outside else fenced_problem(".git")
                raise PathError([path_problem("/".join(below), f"symlink {why}")])
            if top is not None and not outside and not fenced:
                crossed = True
            else:
                top = checkout_top(target)
                below = (os.path.relpath(target, top).split(os.sep)
                         if top is not None and top != target else [])
                crossed = False
            current = target
            continue
        current = step
        if not crossed and os.path.lexists(os.path.join(current, ".git")):
            top, below = current, []


def _held(top: str, rel: str) -> bool:
    """Whether the index of the git checkout at ``top`` holds ``rel``: committed, or
    staged. True where git cannot tell: such a link is taken for a pull request's."""
    import subprocess  # only a current directory reached through such a link pays for it

    try:
        listed = subprocess.run(["git", "--literal-pathspecs", "ls-files", "-z", "--", rel],
                                cwd=top, capture_output=True, check=False, env=git_env(),
                                timeout=GIT_ANSWER_SECONDS)
    except (OSError, subprocess.TimeoutExpired):
        return True
    return listed.returncode != 0 or bool(listed.stdout)


def checkout_top(directory: str) -> str | None:
    """The nearest of the real ``directory`` and the directories above it holding a
    ``.git``: the top of the git checkout it is in; None in none."""
    while True:
        if os.path.lexists(os.path.join(directory, ".git")):
            return directory
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent


def operator_path_to_read(path: Path, root: str, fenced: Sequence[str] = (".git",)) -> str:
    """The real path of a file the operator named that may lie in the checkout ``root``
    (real), walked from ``/`` one component at a time: a symlink inside the checkout
    (committed, not chosen) is followed only while it stays inside and out of the
    ``fenced`` directories, however the path reaches the checkout; one outside is the
    operator's and followed. ``PathError`` naming ``path`` otherwise; a missing
    component is left to the reader (``FileNotFoundError``)."""
    current = "/"
    hops = 0
    pending = list((path if path.is_absolute() else operator_cwd() / path).parts[1:])
    while pending:
        part = pending.pop(0)
        if part == "..":
            current = os.path.dirname(current)  # `current` is real: its parent is too
            continue
        step = os.path.join(current, part)
        try:
            is_link = stat.S_ISLNK(os.lstat(step).st_mode)
        except FileNotFoundError:
            return os.path.join(step, *pending)
        except OSError as exc:
            raise PathError([path_problem(str(path), os_reason(exc))]) from None
        if not is_link:
            current = step
            continue
        hops += 1
        target = os.path.realpath(step)
        if _inside(current, root):
            fence = next((f for f in fenced if _inside(target, os.path.join(root, f))), None)
            if not _inside(target, root) or fence is not None:
                why = OUTSIDE if fence is None else fenced_problem(fence)
                raise PathError([path_problem(str(path), f"symlink {why}")])
        if hops > 40:
            raise PathError([path_problem(str(path), LOOP)])
        current = target
    return current


def operator_name_in_checkout(path: Path, root: str) -> str | None:
    """The name, from the top of the checkout ``root`` (real), of a file the operator
    named, as the operator spelled it below the top: a symlink outside the checkout is
    the operator's and followed, one inside is committed (a pull request's) and is not,
    so a directory a pull request makes a link names no other file. None outside it."""
    current = "/"
    hops = 0
    pending = list((path if path.is_absolute() else operator_cwd() / path).parts[1:])
    while pending:
        if _inside(current, root):
            rel = os.path.normpath(os.path.join(os.path.relpath(current, root), *pending))
            return None if rel == ".." or rel.startswith(f"..{os.sep}") else \
                rel.replace(os.sep, "/")
        part = pending.pop(0)
        step = os.path.dirname(current) if part == ".." else os.path.join(current, part)
        try:
            is_link = stat.S_ISLNK(os.lstat(step).st_mode)
        except OSError:
            is_link = False
        hops += is_link
        if hops > 40:
            return None
        current = os.path.realpath(step) if is_link else step
    return None


def check_operator_target(path: Path, checkout: Path, option: str) -> None:
    """Refuse, before any work, a file the operator named for ``option`` (``--html``,
    ``--pr-body``) that ``write_operator_file`` could not write into ``checkout``: not a
    regular file, in no directory, not writable, or reached through a symlink inside
    the checkout."""
    where = path.parent if str(path.parent) else Path(".")
    # Named by the operator, perhaps from a directory a pull request named: a line end
    # printed raw would forge a line of CI's log.
    shown = f"{option} {printable(str(path))}"
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise UsageError(f"{shown}: {os_reason(exc)}") from None
    if mode is not None and stat.S_ISDIR(mode):
        raise UsageError(f"{shown}: is a directory; give a file name")
    if mode is not None and not stat.S_ISREG(mode) and not stat.S_ISLNK(mode):
        raise UsageError(f"{shown}: not a regular file")
    if not where.is_dir():
        raise UsageError(f"{shown}: directory {printable(str(where))} does not exist")
    if not os.access(where, os.W_OK) or (mode is not None and not os.access(path, os.W_OK)):
        raise UsageError(f"{shown}: not writable")
    operator_path_to_write(path, os.path.realpath(checkout), create=False)


def operator_path_to_write(path: Path, root: str, create: bool) -> Path:
    """Where ``write_operator_file`` writes ``path`` given the checkout ``root`` (real):
    walked from ``/`` one component at a time on real directories, so that no symlink
    inside the checkout is followed whichever way the path is spelt."""
    def refuse(message: str) -> NoReturn:
        raise PathError([path_problem(str(path), message)])

    if ".." in path.parts:  # resolved by the text, `..` would undo a symlink's detour
        refuse("cannot write: give a path without '..'")
    parts = (path if path.is_absolute() else Path.cwd() / path).parts
    current = parts[0]  # "/"
    for i, part in enumerate(parts[1:], start=1):
        last = i == len(parts) - 1
        step = os.path.join(current, part)
        try:
            mode: int | None = os.lstat(step).st_mode
        except FileNotFoundError:
            mode = None
        except OSError as exc:
            refuse(f"cannot write: {os_reason(exc)}")
        if mode is not None and stat.S_ISLNK(mode):
            if _inside(current, root):
                shown = os.path.relpath(step, root)
                refuse(f"cannot write: {shown} is a symlink in the checkout, which magcfg "
                       "never writes through")
            step = os.path.realpath(step)  # the operator's link, outside the checkout
            try:
                mode = os.stat(step).st_mode
            except FileNotFoundError:
                mode = None
            except OSError as exc:
                refuse(f"cannot write: {os_reason(exc)}")
        if last:
            if mode is not None and not stat.S_ISREG(mode):
                refuse(f"is {file_kind(mode)}; give a file name")
            return Path(step)
        if mode is None:
            if not create:
                where = str(path.parent) if str(path.parent) else "."
                refuse(f"cannot write: directory {where} does not exist")
            try:
                os.mkdir(step)
            except FileExistsError:
                pass
            except OSError as exc:
                refuse(f"cannot write: {os_reason(exc)}")
        elif not stat.S_ISDIR(mode):
            refuse(f"cannot write: {os.path.relpath(step, root) if _inside(step, root) else step}"
                   f" is {file_kind(mode)}, not a directory")
        current = step
    refuse("give a file name")


# ---------------------------------------------------------------- writing a directory


def real_directory(root: str | os.PathLike[str], rel: str) -> Path:
    """``root/rel`` after checking that each of its components below ``root`` is a real
    directory or absent (then it is created when written): never a symlink, whatever it
    points to, and never a file. ``root`` itself is resolved."""
    base = os.path.realpath(root)
    current = base
    shown: list[str] = []
    for part in [p for p in rel.split("/") if p]:
        if part in (".", ".."):
            raise PathError([path_problem(rel, "must not contain '.' or '..'")])
        current = os.path.join(current, part)
        shown.append(part)
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            break
        except OSError as exc:
            raise PathError([path_problem("/".join(shown), os_reason(exc))]) from None
        if stat.S_ISLNK(mode):
            raise PathError([path_problem("/".join(shown),
                                          "is a symlink; magcfg writes only into real "
                                          "directories inside the repository")])
        if not stat.S_ISDIR(mode):
            raise PathError([path_problem("/".join(shown),
                                          f"is {file_kind(mode)}; magcfg writes into a "
                                          "directory here")])
    return Path(base, *[p for p in rel.split("/") if p])


FileIdentity = tuple[int, int]
"""A file's device and inode numbers: which file a name led to when it was read."""


class DirectoryUpdate(NamedTuple):
    """The complete new content of one output directory (``rel``, relative to the
    root): ``files`` by name. ``owned`` names the files magcfg may replace or delete
    there besides ``files`` (those it wrote before); any other entry stops the update."""

    rel: str
    files: Mapping[str, bytes]
    owned: Collection[str] = frozenset()
    display: str = ""
    """How errors name the directory (default: ``rel``)."""
    differs: Collection[str] = frozenset()
    """Names of ``files`` the caller knows to differ from the directory's (the manifest
    it wrote there names other bytes): written without being compared, where a changed
    8 MB ``config.json`` of the same size is otherwise read up to its first difference."""
    same: Mapping[str, FileIdentity] = MappingProxyType({})
    """Names of ``files`` the caller knows the directory to hold as they are, each with
    the identity of the file it vouches for (the digest of the file as it stands, kept
    by its status, is theirs): not read to be compared while that file is the one
    there, where an unchanged 8 MB ``config.json`` is otherwise read whole."""

    @property
    def shown(self) -> str:
        return self.display or self.rel


def _entries(directory: Path, update: DirectoryUpdate) -> dict[str, os.stat_result]:
    """Name -> ``lstat`` status of every entry (magcfg's own temp files left out);
    ``PathError`` naming each entry magcfg did not write."""
    try:
        scanned = list(os.scandir(directory))
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise PathError([path_problem(update.shown, f"cannot list: {os_reason(exc)}")]) from None
    found: dict[str, os.stat_result] = {}
    unknown: list[Diagnostic] = []
    for entry in scanned:
        name = entry.name
        if _TEMP_FILE.match(name):
            continue
        status = entry.stat(follow_symlinks=False)
        if name not in update.files and name not in update.owned:
            unknown.append(path_problem(
                f"{update.shown}/{name}",
                "not written by magcfg: move or delete it yourself (magcfg replaces "
                f"{update.shown} as a whole and deletes only the files it wrote)"))
        elif stat.S_ISDIR(status.st_mode):
            unknown.append(path_problem(f"{update.shown}/{name}",
                                        "is a directory where magcfg writes a file: "
                                        "move or delete it yourself"))
        found[name] = status
    if unknown:
        raise PathError(unknown)
    return found


_COMPARED_CHUNK = 1 << 20

def held_by(path: str | os.PathLike[str], data: bytes) -> FileIdentity | None:
    """The identity of the regular file ``path`` (see :func:`read_regular`: no symlink
    followed, no FIFO opened) if it holds exactly ``data``, else None. Not read when its
    size differs (a planted multi-gigabyte file is never read), else read a chunk at a
    time and only up to its first difference: the changed ``config.json`` of a rebuild,
    8 MB on the large benchmark repo, is read that far once, under
    ``replace_directories``'s lock (asked before the lock only whether its directory
    changed, the manifest beside it tells: ``_changes``)."""
    fd, size = _open_regular(path, False, None)
    try:
        if size != len(data):
            return None
        at = 0
        while chunk := os.read(fd, _COMPARED_CHUNK):
            if not data.startswith(chunk, at):  # compared in place, no slice copied
                return None
            at += len(chunk)
        if at != len(data):
            return None
        status = os.fstat(fd)
        return status.st_dev, status.st_ino
    finally:
        os.close(fd)


def _changes(directory: Path, update: DirectoryUpdate, first: bool = False,
             equal: dict[str, FileIdentity] | None = None) -> list[str]:
    """Names whose bytes differ from ``update.files``, or that a write would remove.

    With ``first``, only whether anything does: the first such name found, the files
    compared smallest first. A build's manifest names every other file's digest, so it
    changes with any of them and is read before the config beside it (148 KB before
    ~4 MB, on average, of an 8 MB ``config.json`` read up to its first difference).
    ``equal`` is given the identity of each file found to hold its bytes."""
    entries = _entries(directory, update)
    changed = [name for name in entries if name not in update.files]
    if first and changed:
        return changed[:1]
    for name, data in sorted(update.files.items(), key=lambda item: len(item[1])) if first \
            else update.files.items():
        status = entries.get(name)
        held: FileIdentity | None = None
        if status is not None and stat.S_ISREG(status.st_mode):
            if update.same.get(name) == (status.st_dev, status.st_ino):
                held = status.st_dev, status.st_ino
            elif name not in update.differs:
                held = _located(f"{update.shown}/{name}",
                                functools.partial(held_by, data=data), directory / name)
        if held is None:
            changed.append(name)
            if first:
                break
        elif equal is not None:
            equal[name] = held
    return sorted(changed)


def regular_entries(directory: Path) -> dict[str, os.stat_result] | None:
    """The status of each entry of ``directory`` (magcfg's own temp files left out, as
    ``replace_directories`` leaves them), or None when it cannot be listed or holds
    anything but regular files: what a caller that vouches for the directory's bytes
    without writing them must see (``compiler.Compiler.recorded_outputs``)."""
    try:
        scanned = list(os.scandir(directory))
    except OSError:
        return None
    found: dict[str, os.stat_result] = {}
    for entry in scanned:
        if _TEMP_FILE.match(entry.name):
            continue
        try:
            status = entry.stat(follow_symlinks=False)
        except OSError:
            return None
        if not stat.S_ISREG(status.st_mode):
            return None
        found[entry.name] = status
    return found


def changed_entries(root: str | os.PathLike[str], updates: Sequence[DirectoryUpdate]
                    ) -> list[str]:
    """Paths (``rel/name``) a write of ``updates`` would change; writes nothing.
    ``PathError`` for what would stop the write (symlinks, unknown entries)."""
    out = []
    for update in updates:
        # What is stale is told by the bytes, not by what the last manifest says.
        names = _changes(real_directory(root, update.rel),
                         update._replace(differs=(), same={}))
        out += [f"{update.shown}/{name}" for name in names]
    return out


def replace_directories(root: str | os.PathLike[str], updates: Sequence[DirectoryUpdate]
                        ) -> list[str]:
    """Give each directory of ``updates`` exactly its ``files``, each directory all at
    once or not at all; directories whose bytes are unchanged are not touched. Every
    changed directory is staged before the first is swapped in, so an error while
    writing (a full disk) leaves all of them as they were. Returns the paths changed."""
    todo = [(update, directory) for update in updates
            if _changes(directory := real_directory(root, update.rel), update, first=True)]
    if not todo:
        return []
    changed: list[str] = []
    wanted: list[tuple[str, Path, DirectoryUpdate, dict[str, FileIdentity]]] = []
    staged: list[tuple[str, Path, Path]] = []  # (rel, directory, its staged copy)
    with contextlib.ExitStack() as locks:
        locked: list[Path] = []
        rel = todo[0][0].shown
        try:
            for update, directory in todo:
                rel = update.shown
                parent = directory.parent
                if parent not in locked:
                    parent.mkdir(parents=True, exist_ok=True)
                    locks.enter_context(_locked(parent))
                    locked.append(parent)
                _recover(parent, directory.name, rel)
                equal: dict[str, FileIdentity] = {}
                # again: under the lock, recovered
                names = _changes(directory, update, equal=equal)
                if names:
                    wanted.append((rel, directory, update, equal))
                    changed += [f"{rel}/{name}" for name in names]
            staged, failed = _stage_all(wanted)
            if failed is not None:
                rel, error = failed
                raise error
        except BaseException as exc:
            if isinstance(exc, OSError):
                raise PathError([path_problem(rel, f"cannot write: {os_reason(exc)}; "
                                              "nothing was changed")]) from None
            raise
        old: list[tuple[str, Path]] = []  # where each old directory's files are now
        for i, (rel, directory, copy) in enumerate(staged):
            try:
                replaced = _swap(directory, copy)
            except OSError as exc:
                for _, _, rest in staged[i:]:
                    _remove_staged(rest)
                _remove_all(old)
                with contextlib.suppress(OSError):  # what was swapped in stays
                    for parent in locked:
                        fsync_dir(parent)
                raise PathError([path_problem(rel, "cannot replace: "
                                              f"{os_reason(exc)}")]) from None
            if replaced is not None:
                old.append((rel, replaced))
        failed = _remove_all(old)
        for parent in locked:  # once for all the renames in it
            try:
                fsync_dir(parent)
            except OSError as exc:
                raise PathError([path_problem(rel, "cannot replace: "
                                              f"{os_reason(exc)}")]) from None
        if failed is not None:
            rel, error = failed
            raise PathError([path_problem(rel, f"cannot replace: {os_reason(error)}")])
    return changed


_STAGE_THREADS = 8
"""Directories staged at once: enough for their fsyncs to share the journal's commits;
a thread for each could not start with a few thousand environments."""


def started(thread: threading.Thread) -> bool:
    """Start ``thread``; False where the system starts no more threads (the limit on
    processes reached: ``errors.no_new_task``), for the caller to do the thread's work
    itself, to the same end."""
    try:
        thread.start()
    except RuntimeError as exc:
        if not no_new_task(exc):
            raise
        return False
    return True


def _at_once(work: Callable[[T], Path | None], items: Sequence[T]
             ) -> list[Path | BaseException | None]:
    """``work`` on each of ``items``, by this thread and up to ``_STAGE_THREADS - 1``
    more (a thread each could not start with a few thousand environments), each taking
    the next item left: what each returned or raised, in order. Their waits on the disk
    overlap, and the filesystem's journal commits their changes in fewer writes. Where
    the system starts no more threads, the ones that started and this one share the
    items. Plain threads, not ``concurrent.futures``: its import (with ``logging``) is
    ~4 ms of a small build's ~100."""
    import threading

    outcomes: list[Path | BaseException | None] = [None] * len(items)
    done = [False] * len(items)
    left = iter(range(len(items)))
    taking = threading.Lock()

    def one(i: int) -> None:
        try:
            outcomes[i] = work(items[i])
        except BaseException as exc:  # handed to the caller's thread
            outcomes[i] = exc
        done[i] = True

    def share() -> None:
        while True:
            with taking:
                i = next(left, None)
            if i is None:
                return
            one(i)

    helpers: list[threading.Thread] = []
    for _ in range(min(_STAGE_THREADS, len(items)) - 1):
        helper = threading.Thread(target=share, name="magcfg stage", daemon=True)
        if not started(helper):
            break
        helpers.append(helper)
    try:
        share()
    finally:  # interrupted or not, no helper outlives the call (it may be staging)
        for helper in helpers:
            helper.join()
    for i in range(len(items)):
        if not done[i]:
            one(i)
    return outcomes


def _stage_all(wanted: list[tuple[str, Path, DirectoryUpdate, dict[str, FileIdentity]]]
               ) -> tuple[list[tuple[str, Path, Path]], tuple[str, BaseException] | None]:
    """``_stage`` each of ``wanted`` (rel, directory, update, the files it holds as they
    are), several at once (``_at_once``: staging three 8 MB environments took 0.7x the
    time of one after the other). Returns [(rel, directory, staged copy)] and None; or,
    if one failed, [] and (its rel, the error) of the first in order, the others'
    copies removed."""
    copies = _at_once(lambda item: _stage(item[1], item[2], item[3]), wanted)
    outcomes = list(zip(wanted, copies, strict=True))
    staged = [(rel, directory, copy) for (rel, directory, _, _), copy in outcomes
              if isinstance(copy, Path)]
    for (rel, _, _, _), copy in outcomes:
        if isinstance(copy, BaseException):
            for _, _, done in staged:
                _remove_staged(done)
            return [], (rel, copy)
    return staged, None


def recover_directories(root: str | os.PathLike[str], rels: Iterable[str]) -> None:
    """Finish interrupted replacements of these directories (``_recover``) before
    anything reads them: after a crash between the two renames of a filesystem without
    an atomic exchange, the old directory is aside, and a build that did not put it back
    would find no previous manifest."""
    scanned: dict[Path, set[str]] = {}
    for rel in rels:
        directory = real_directory(root, rel)
        parent = directory.parent
        if parent not in scanned:
            try:
                scanned[parent] = {m.group("name") for entry in os.scandir(parent)
                                   if (m := _STAGED.match(entry.name))}
            except (FileNotFoundError, NotADirectoryError):
                scanned[parent] = set()
        if directory.name in scanned[parent]:
            try:
                with _locked(parent):
                    _recover(parent, directory.name, rel)
            except OSError as exc:
                raise PathError([path_problem(rel, "cannot recover from an interrupted "
                                              f"build: {os_reason(exc)}")]) from None


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``directory``: two builds never stage or recover in
    the same place at once."""
    import fcntl

    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


MIN_LINKED_BYTES = 1 << 20
"""The smallest file ``_stage`` links from the directory it replaces rather than writes,
where the directory holds it as it is: a config.json of megabytes a change left as it
was (another environment's change, one only its manifest names) is then neither
written, fsynced and unlinked whole, nor held twice on disk."""


def _stage(directory: Path, update: DirectoryUpdate,
           equal: Mapping[str, FileIdentity] | None = None) -> Path:
    """A sibling of ``directory`` holding ``update.files``, written and fsynced. A file
    of ``MIN_LINKED_BYTES`` or more that ``directory`` holds as it is (``equal``: the
    identity of the file found to hold its bytes) is a hard link to that file instead
    (``_linked``), where it is the file magcfg would write.

    Every file is written before the first is fsynced: the first fsync then commits
    the journal transaction that holds all of them, where a fsync after each write
    waited for a commit per file (an 8 MB environment of five files: ~51 -> ~26 ms of
    wall time, the median of ten). Each is fsynced before the directory is, and the
    directory before anything is swapped in."""
    copy = directory.parent / f".{directory.name}.magcfg-new-{os.urandom(6).hex()}"
    os.mkdir(copy)
    try:
        with contextlib.suppress(FileNotFoundError):
            os.chmod(copy, stat.S_IMODE(os.stat(directory, follow_symlinks=False).st_mode))
        written: list[int] = []
        try:
            for name, data in sorted(update.files.items()):
                _fault("write")
                held = (equal or {}).get(name) if len(data) >= MIN_LINKED_BYTES else None
                linked = _linked(directory / name, copy / name, held, len(data)) \
                    if held is not None else None
                written.append(linked if linked is not None else _written(copy / name, data))
            for fd in written:
                os.fsync(fd)
        finally:
            for fd in written:
                os.close(fd)
        fsync_dir(copy)
        _fault("staged")
    except BaseException:
        _remove_staged(copy)
        raise
    return copy


def _linked(source: Path, target: Path, held: FileIdentity, size: int) -> int | None:
    """A read descriptor of ``target``, made a hard link to ``source``, if the link leads
    to the file of identity ``held`` (the one found to hold the bytes: not one renamed
    into its place since) and that file is what :func:`_written` would write: a regular
    file of ``size`` bytes, mode 0644, of this user, with no other link; else None, and
    no link. The caller fsyncs the descriptor (the file may never have been)."""
    try:
        os.link(source, target, follow_symlinks=False)
    except OSError:  # no hard links on this file system, too many links: written instead
        return None
    try:
        fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        os.unlink(target)
        return None
    status = os.fstat(fd)
    if ((status.st_dev, status.st_ino) == held and stat.S_ISREG(status.st_mode)
            and stat.S_IMODE(status.st_mode) == 0o644 and status.st_uid == os.geteuid()
            and status.st_nlink == 2 and status.st_size == size):
        return fd
    os.close(fd)
    os.unlink(target)
    return None


def _swap(directory: Path, copy: Path) -> Path | None:
    """Put ``copy`` in the place of ``directory`` in one step. Returns where the old
    directory is now, for the caller to delete (``_remove_all``; the next run's
    ``_recover`` deletes what a crash left), or None when there was none. The caller
    fsyncs the parent, once for all the directories it swaps there."""
    parent = directory.parent
    if not os.path.lexists(directory):
        os.rename(copy, directory)
        return None
    if exchange(copy, directory):
        return copy  # holds the old files now
    # No atomic exchange on this filesystem: two renames; a crash between them
    # leaves the old directory aside, which the next run puts back (_recover).
    aside = parent / f".{directory.name}.magcfg-old-{os.urandom(6).hex()}"
    os.rename(directory, aside)
    _fault("aside")
    os.rename(copy, directory)
    return aside


def _remove_all(old: list[tuple[str, Path]]) -> tuple[str, OSError] | None:
    """Delete the old directories ``_swap`` left (rel, where it is), several at once
    (``_at_once``): unlinking a file of 8 MB waits on the filesystem's journal, and the
    three environments of the realistic large repo took 34 ms instead of 56 (medians of
    16 alternating rounds). Returns (rel, error) of the first that could not be."""
    outcomes = _at_once(lambda item: _removed(item[1]), old)
    for (rel, _), outcome in zip(old, outcomes, strict=True):
        if isinstance(outcome, OSError):
            return rel, outcome
        if isinstance(outcome, BaseException):
            raise outcome
    return None


def _removed(path: Path) -> None:
    """``_remove_staged`` for ``_at_once``: what stops it is left for ``_recover``."""
    _remove_staged(path)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def exchange(a: Path, b: Path) -> bool:
    """Swap two entries of a filesystem atomically, of whatever kind (two directories, a
    symlink and a directory), with Linux ``renameat2``; False where unsupported."""
    if _fault_set("no-exchange"):
        return False
    import ctypes  # here: the runtime kernel imports this module and never swaps directories

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _recover(parent: Path, name: str, rel: str) -> None:
    """Finish what an interrupted run left in ``parent`` for directory ``name``: an old
    directory moved aside is put back if nothing replaced it; staged copies are removed."""
    try:
        found = [(entry.name, m.group("kind")) for entry in os.scandir(parent)
                 if (m := _STAGED.match(entry.name)) and m.group("name") == name]
    except FileNotFoundError:
        return
    if not found:
        return
    target = parent / name
    for entry, kind in sorted(found):
        path = parent / entry
        if kind == "old" and not os.path.lexists(target) and not os.path.islink(path):
            os.rename(path, target)
    above = rel.rpartition("/")[0]
    for entry, _ in sorted(found):
        path = parent / entry
        problem = _remove_staged(path) if os.path.lexists(path) else None
        if problem is not None:
            raise PathError([path_problem(f"{above}/{entry}" if above else entry, problem)])
    fsync_dir(parent)


def _remove_staged(path: Path) -> str | None:
    """Delete a directory magcfg staged: its files, then itself; never recursively (a
    subdirectory was not made by magcfg: returns what stopped it)."""
    try:
        if os.path.islink(path) or not os.path.isdir(path):
            os.unlink(path)
            return None
        for entry in os.scandir(path):
            if entry.is_dir(follow_symlinks=False):
                return f"holds a directory ({entry.name!r}) that magcfg did not make: " \
                       "delete it yourself"
            os.unlink(entry.path)
        os.rmdir(path)
    except FileNotFoundError:
        pass
    return None
