"""The file walker: which files a lint run reads, each read once, whatever its bytes."""

from __future__ import annotations

import bisect
import codecs
import functools
import hashlib
import os
import re
import stat
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from ..durable import (
    MAX_INPUT_BYTES,
    FileTooLarge,
    NotRegularFile,
    os_reason,
    read_regular,
    sha256_regular,
)
from ..errors import BuildError, Diagnostic, printable
from .keystores import MAX_BINARY_BYTES, may_be_key_store, named_key_store

# Directories never worth linting when walking a tree outside git.
_SKIP_DIRS = frozenset({".git", ".hg", ".svn", "node_modules", ".venv", "venv", "__pycache__",
                        ".mypy_cache", ".ruff_cache", ".pytest_cache", ".tox", ".tools"})
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
MAX_FILE_BYTES = 4 * 1024 * 1024
"""Larger files are not checked (each MB costs ~0.3 s) but reported, as MAG007: a secret
must not pass the gate by padding its file."""


@dataclass
class SourceFile:
    """A text file to lint. ``path`` is relative to the lint root, ``/``-separated."""

    path: str
    text: str
    raw: bytes | None = field(default=None, repr=False)
    """The first ``keystores.MAX_BINARY_BYTES`` of a file that may be a key store
    (``source``): what the key store check reads."""
    raw_digest: str | None = None
    """The SHA-256 of the whole file whose ``raw`` is kept: a baseline entry accepts the
    key store by it."""
    link: bool = False
    """A symbolic link, ``text`` its target (``link_source``)."""
    shown_as_text: bool = True
    """Whether a diff shows the file as the text lint reads, where that text may hold a
    suppression (``source``): a reviewer reads a suppression beside the line it covers
    only there (``suppress.parse``)."""
    _lines: list[str] | None = field(default=None, repr=False)
    _starts: list[int] | None = field(default=None, repr=False)

    @property
    def lines(self) -> list[str]:
        """The file's lines without line endings (computed once, on first use), broken
        where git, editors and the languages of the files lint reads break them: at
        ``\n``, ``\r\n`` and ``\r``. ``str.splitlines`` also breaks at a form feed,
        a vertical tab and other separators, which Python and shells read as spaces:
        ``DB_PASSWORD =\f"..."`` would be two lines, neither of them an assignment."""
        if self._lines is None:
            lines = _LINE_BREAK.split(self.text)
            if lines[-1] == "":
                lines.pop()  # the last line's ending ends no line after it
            self._lines = lines
        return self._lines

    def position(self, offset: int) -> tuple[int, int]:
        """The line (as ``lines`` numbers them) and column, 1-based, of the character at
        ``offset``: one numbering for every rule, whatever counted the offset (a regex, a
        YAML parser, which also breaks lines at U+0085, U+2028 and U+2029)."""
        if self._starts is None:
            self._starts = [0, *(m.end() for m in _LINE_BREAK.finditer(self.text))]
        number = bisect.bisect_right(self._starts, offset)
        return number, offset - self._starts[number - 1] + 1

    @functools.cached_property
    def name(self) -> str:
        """The file's own name (its path's last part): the rules ask it of each file
        dozens of times."""
        return self.path.rsplit("/", 1)[-1]


class Unread(NamedTuple):
    """A committed file ``read_blobs`` does not read: why, without a byte of it, and the
    SHA-256 of its content (None past ``MAX_INPUT_BYTES``), as a work tree's file too
    large to check has (``UncheckedFile.digest``)."""

    reason: str
    digest: str | None = None


@dataclass(frozen=True)
class UncheckedFile:
    """A listed file lint could not check: larger than ``MAX_FILE_BYTES``, or unreadable.
    ``reason`` says which, without a byte of the file."""

    path: str
    reason: str
    digest: str | None = None
    """The SHA-256 of a file too large to check, read to ``durable.MAX_INPUT_BYTES``:
    what a baseline entry for it accepts."""


def display_name(name: str) -> str:
    """A listed name as findings and the baseline show it: ``printable``, with a
    backslash doubled first, so that two names never show alike (a literal ``\\x1b`` and
    an ESC byte would both read ``\\x1b``) and a baseline entry accepts one file only."""
    return printable(name.replace("\\", "\\\\"))


_SHOWN_ESCAPE = re.compile(
    r"\\(?:\\|x([0-9a-f]{2})|u([0-9a-f]{4})|U(00(?:0[0-9a-f]|10)[0-9a-f]{4}))")


def listed_name(shown: str) -> str:
    """The name ``display_name`` shows as ``shown`` (a byte that is not UTF-8 as
    ``os.fsdecode`` keeps it), which is one name only: what a SARIF report's location
    names, so that a code-scanning UI finds the file. An escape ``display_name`` never
    writes is left as it stands."""

    def unescaped(match: re.Match[str]) -> str:
        byte, char, wide = match.groups()
        if byte is None and char is None and wide is None:
            return "\\"
        code = int(byte or char or wide, 16)
        return chr(0xDC00 + code) if byte is not None and code >= 0x80 else chr(code)

    return _SHOWN_ESCAPE.sub(unescaped, shown)


def list_files(root: Path, paths: Sequence[Path] = ()) -> list[str]:
    """Relative paths of the files to lint under ``root``, sorted.

    In a git work tree: tracked files plus untracked files that are not ignored. Outside
    git: every regular file, minus VCS and tool directories. ``paths`` (absolute or relative
    to the current directory) narrow the set to those files and directories.
    """
    # lazily, as lint's other uses of the module
    from ..durable import git_root
    from ..project import GitUnanswered, git_answer

    listed = None
    if git_root(root) is not None:
        try:
            listed = git_answer(["ls-files", "-co", "--exclude-standard", "-z"], root)
        except GitUnanswered as exc:  # the gate cannot say which files it checked
            raise BuildError([Diagnostic(
                ".", None, None, f"git could not list the repository's files ({exc}): fix "
                "what stops git, then lint again", code="git")]) from None
    if listed is not None:
        names = sorted({n for n in listed.decode("utf-8", "surrogateescape").split("\0")
                        if n})
    else:
        names = sorted(_walk_tree(root))
    return narrowed(root, names, paths)


def narrowed(root: Path, names: list[str], paths: Sequence[str | Path]) -> list[str]:
    """Those of ``names`` (relative to ``root``) in the files and directories ``paths``
    (absolute or relative to the current directory) name; all of them without ``paths``."""
    if not paths:
        return names
    prefixes = [_relative(root, Path(p)) for p in paths]
    return [n for n in names if any(_under(n, pre) for pre in prefixes)]


def _relative(root: Path, p: Path) -> str:
    rel = os.path.relpath(p.resolve(), root.resolve())
    return "" if rel == "." else rel.replace(os.sep, "/")


def _under(name: str, prefix: str) -> bool:
    return not prefix or name == prefix or name.startswith(prefix + "/")


def _walk_tree(root: Path) -> Iterator[str]:
    # A loop over a stack: Python 3.11's os.walk recurses, and a tree a thousand
    # directories deep would exhaust the interpreter's stack.
    pending = [""]
    while pending:
        rel = pending.pop()
        try:
            entries = list(os.scandir(os.path.join(root, rel) if rel else root))
        except OSError:
            continue  # as os.walk: a directory that cannot be listed is skipped
        for entry in entries:
            name = f"{rel}/{entry.name}" if rel else entry.name
            if entry.is_dir(follow_symlinks=False):
                if entry.name not in _SKIP_DIRS:
                    pending.append(name)
            elif not entry.is_dir():  # a link to a directory is neither walked nor a file
                yield name


def read_files(root: Path, names: Sequence[str]
               ) -> Iterator[tuple[str, SourceFile | UncheckedFile]]:
    """Read each regular file once, and each symbolic link's target (``link_source``;
    a link is never followed); FIFOs and other non-regular files are passed over.
    Whatever its bytes, a file is checked as text: a
    NUL byte or bytes that are not UTF-8 (read as U+FFFD) must not hide the secret on
    the next line from the gate. A file too large to check, or that cannot be read,
    comes back as an ``UncheckedFile``.

    Each file comes with its name as listed: the source's ``path`` is ``display_name``,
    so a name with a terminal escape or bytes that are not UTF-8 is linted and reported,
    never printed raw, and the listed name is what to compare with other listings.

    A file git checks out in another encoding than UTF-8 (``working-tree-encoding``) is
    read as git's index holds it, the bytes committed: the work tree's (EBCDIC, UTF-7)
    showed lint no secret that the commit holds in the open. So is a file git lists that
    the work tree lacks (a sparse checkout's, or one deleted but not yet ``git rm``-ed):
    it is committed all the same, and was passed over unread. So is each of two names a
    case-insensitive file system holds as one file (``case_twins``): each is read once,
    under its own name."""
    from ..durable import git_root

    committed = _committed_encoded(root, names)
    links: set[str] = set()  # of the names read as committed, the symbolic links
    # Each file's path as a string joined once: a Path made of each of ten thousand
    # names cost more than the reading of the files it names.
    top = os.fspath(root)
    gone = [n for n in names if n not in committed
            and not os.path.lexists(os.path.join(top, n))]
    if git_root(root) is not None:  # outside git a name gone is gone, and twins one file
        unread = gone + [n for n in case_twins(root, names) if n not in committed]
        if unread:
            committed.update(_committed(root, unread))
            links = _committed_links(root, unread)
    for name in names:
        full = os.path.join(top, name)
        shown = display_name(name)
        blob = committed.get(name)
        if isinstance(blob, Unread):
            yield name, UncheckedFile(shown, *blob)
            continue
        if blob is not None:
            yield name, link_source(shown, blob) if name in links else source(shown, blob)
            continue
        try:
            info = os.lstat(full)
        except FileNotFoundError:
            continue  # gone since it was listed, and not in git's index: nothing to check
        except OSError as exc:
            yield name, UncheckedFile(shown, f"cannot be read: {os_reason(exc)}")
            continue
        if stat.S_ISLNK(info.st_mode):
            try:
                target = os.readlink(os.fsencode(full))
            except FileNotFoundError:
                continue  # gone since the lstat: as above
            except OSError as exc:
                yield name, UncheckedFile(shown, f"cannot be read: {os_reason(exc)}")
                continue
            yield name, link_source(shown, target)
            continue
        if not stat.S_ISREG(info.st_mode):
            continue
        if info.st_size > MAX_FILE_BYTES:
            yield name, UncheckedFile(shown, f"is {info.st_size} bytes, more than the "
                                             f"{MAX_FILE_BYTES} lint checks", _digest(full))
            continue
        try:
            data = read_regular(full, MAX_FILE_BYTES)
        except (NotRegularFile, FileNotFoundError):
            continue  # swapped for a link or removed since the lstat: as above
        except FileTooLarge:
            yield name, UncheckedFile(shown, f"grew past the {MAX_FILE_BYTES} bytes lint "
                                             "checks while it was read")
            continue
        except OSError as exc:
            yield name, UncheckedFile(shown, f"cannot be read: {os_reason(exc)}")
            continue
        yield name, source(shown, data)


def case_twins(root: Path, names: Sequence[str]) -> list[str]:
    """Those of ``names`` that are one file with another of them, the two names differing
    in case alone: a case-insensitive file system (macOS's, Windows') holds git's
    ``secret.env`` and ``SECRET.env`` as one, whichever was checked out last, so the
    work tree shows one twin's bytes under both names and the other's under none."""
    by_folded: dict[str, list[str]] = {}
    for name in names:
        by_folded.setdefault(unicodedata.normalize("NFC", name).casefold(), []).append(name)
    twins: list[str] = []
    for group in by_folded.values():
        if len(group) < 2:
            continue
        files: dict[tuple[int, int], list[str]] = {}
        for name in group:
            try:
                info = (root / name).lstat()
            except OSError:
                continue  # not there: read as committed or passed over, as any other
            files.setdefault((info.st_dev, info.st_ino), []).append(name)
        twins += [name for same in files.values() if len(same) > 1 for name in same]
    return twins


def _committed_links(root: Path, names: list[str]) -> set[str]:
    """Those of ``names`` that git's index holds as symbolic links (mode 120000), whose
    blobs are targets (``link_source``). Fails the gate as ``list_files`` does when git
    cannot say."""
    from ..project import GitUnanswered, indexed_by_git

    try:
        return set(indexed_by_git(root, [], names)().links)
    except GitUnanswered as exc:
        raise BuildError([Diagnostic(
            ".", None, None, f"git could not say which committed files are symbolic links "
            f"({exc}): fix what stops git, then lint again", code="git")]) from None


def _committed_encoded(root: Path, names: Sequence[str]) -> dict[str, bytes | Unread | None]:
    """``_committed`` for each of ``names`` that git checks out in another encoding than
    UTF-8. Fails the gate as ``list_files`` does when git cannot say which."""
    from ..project import GitUnanswered, attributes_by_git

    try:
        encoded = sorted(attributes_by_git(root, names)().encodings)
    except GitUnanswered as exc:  # the gate cannot say what it would read
        raise BuildError([Diagnostic(
            ".", None, None, f"git could not say which files it checks out converted "
            f"({exc}): fix what stops git, then lint again", code="git")]) from None
    return _committed(root, encoded)


def _committed(root: Path, names: list[str]) -> dict[str, bytes | Unread | None]:
    """What git's index holds for each of ``names`` (``project.committed_blobs``): its
    bytes, None when it holds no file there (an untracked file), or why it is not read
    (too large; a name holding a line end, which git's batch of names would read as
    another name). Fails the gate when git cannot answer."""
    found: dict[str, bytes | Unread | None] = {
        name: Unread("holds a line end in its name, for which git cannot be asked what is "
                     "committed, and the work tree holds it converted or not at all")
        for name in names if "\n" in name or "\r" in name}
    names = [name for name in names if name not in found]
    found.update(zip(names, read_blobs(
        root, [f":./{name}" for name in names], names,
        "which the work tree holds converted or not at all"), strict=True))
    return found


def read_blobs(root: Path, objects: list[str], shown: list[str], what: str
               ) -> list[bytes | Unread | None]:
    """What git holds for each of ``objects`` (``committed_blobs``' names), shown as
    ``shown``: its bytes, None when git holds no file there, or why it is not read (too
    large), with its content's digest. Fails the gate, naming the file and ``what`` it
    is, when git cannot answer."""
    from ..project import blob_sha256, committed_blobs

    found: list[bytes | Unread | None] = []
    while len(found) < len(objects):
        todo = objects[len(found):]
        try:
            blobs = committed_blobs(root, todo, MAX_FILE_BYTES)
        except OSError as exc:
            raise BuildError([Diagnostic(
                ".", None, None, f"git could not give the committed bytes of "
                f"{shown[len(found)]}, {what} ({exc}): fix what stops git, then lint "
                "again", code="git")]) from None
        # git is asked nothing past a blob too large to read: the rest, again.
        large = next((i for i, blob in enumerate(blobs) if isinstance(blob, int)), None)
        for i, blob in enumerate(blobs if large is None else blobs[:large + 1]):
            found.append(Unread(f"is {blob} bytes, more than the {MAX_FILE_BYTES} lint "
                                "checks", blob_sha256(root, todo[i], MAX_INPUT_BYTES))
                         if isinstance(blob, int) else blob)
    return found


def source(path: str, data: bytes) -> SourceFile:
    """``data`` as lint reads it at ``path``: its text (``decode``), and the bytes the
    key store check reads when it may be one (``keystores.may_be_key_store``) and is not
    text, or is named as one."""
    text = decode(data)
    shown = "ignore[" not in text or shown_as_text(data)
    if may_be_key_store(path, data) and ("\0" in text or "\ufffd" in text
                                         or named_key_store(path)):
        return SourceFile(path, text, data[:MAX_BINARY_BYTES], hashlib.sha256(data).hexdigest(),
                          shown_as_text=shown)
    return SourceFile(path, text, shown_as_text=shown)


def shown_as_text(data: bytes) -> bool:
    """Whether a diff shows the file of ``data`` as text: UTF-8 (after UTF-8's byte order
    mark) without a NUL byte. git shows a file with a NUL in its first 8,000 bytes as
    ``Binary files differ``, UTF-16's text among them, and a viewer shows bytes that are
    not UTF-8 as something other than what lint reads."""
    body = data.removeprefix(codecs.BOM_UTF8)
    if b"\0" in body:
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def link_source(path: str, target: bytes) -> SourceFile:
    """A symbolic link as lint reads it at ``path``: its target's text, which git commits
    as the link's blob (mode 120000) and a checkout without links writes as a file. A
    token committed as a target is committed all the same. Never a key store, whatever
    the link's name: ``cert.p12 -> ../certs/cert.p12`` holds a path."""
    return SourceFile(path, decode(target), link=True)


def _digest(path: str | os.PathLike[str]) -> str | None:
    """The content's digest, hashed in chunks; None past ``MAX_INPUT_BYTES`` (the bound
    of every file magcfg reads from a repository) or when it cannot be read."""
    try:
        return sha256_regular(path, MAX_INPUT_BYTES)[0]
    except OSError:
        return None


# UTF-32's byte order marks first: UTF-32LE's begins with UTF-16LE's.
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"),
         (codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
         (codecs.BOM_UTF16_BE, "utf-16-be"))
_SNIFF = 256


def decode(data: bytes) -> str:
    """A file's text as its writer meant it, so a rule sees the characters a reader of
    the file does: UTF-8, or the Unicode encoding a byte order mark names (Notepad's
    UTF-8 BOM hid the first line's key from every rule; PowerShell 5's ``>`` writes
    UTF-16, which YAML and .NET read), or UTF-16 without a mark when the first bytes of
    ASCII text say so (a NUL byte in every other place). Bytes that do not decode are
    read as U+FFFD."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return data[len(bom):].decode(codec, "replace")
    head = data[:min(len(data), _SNIFF) & ~1]  # whole code units
    if len(head) >= 4 and b"\0" in head:
        even, odd = head[0::2], head[1::2]
        if not any(odd) and all(even):
            return data.decode("utf-16-le", "replace")
        if not any(even) and all(odd):
            return data.decode("utf-16-be", "replace")
    return data.decode("utf-8", "replace")
