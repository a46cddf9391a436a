"""Publishing verified files into a directory the way the kubelet updates a ConfigMap volume.

Layout of the output directory (what applications and their file watchers already know)::

    out/..2026_11_22_14_00_00.123456_ab12cd/   the files of one version
    out/..data -> ..2026_11_22_14_00_00.123456_ab12cd
    out/config.json -> ..data/config.json      (one link per file)

A new version is written into a fresh hidden directory (each file and the directory
fsynced), then a ``..data_tmp`` symlink to it is renamed over ``..data`` (one atomic
rename), then the old directory is removed. A reader that opens ``out/config.json``
sees the old version or the new one, whole. A publisher killed at any point leaves
``..data`` pointing at a complete version; :func:`recover` removes the leftovers.

The directory is this module's own: an entry of a name it writes (``..data``, a file's
link, a temporary link) that it did not write is replaced, never followed nor trusted,
whatever it is: a symlink elsewhere, a real directory (planted, or left by another
tool), a file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from ..artifact import DATA_LINK, DataLinkError, data_root, size_limit
from ..durable import exchange, fsync_dir, os_reason, read_member, write_new

__all__ = ["DATA_LINK", "TMP_LINK", "current_target", "failure", "own_directory", "publish",
           "published_bytes", "recover"]
TMP_LINK = "..data_tmp"


def failure(out_dir: Path, exc: OSError) -> str:
    """The message of a publish into ``out_dir`` that raised ``exc``: the file it failed
    on (:func:`publish` names it on every error it raises) and why."""
    where = os.fsdecode(exc.filename) if isinstance(exc.filename, (str, bytes)) else out_dir
    return f"{where}: cannot publish into {out_dir}: {os_reason(exc)}"


def own_directory(directory: Path) -> str | None:
    """Keep ``directory``, the caller's own by its name (not one an operator named, which
    may be a link), from leading anywhere else: a symlink there is removed, never
    followed, so the next publish makes a real directory in its place and nothing is
    read from, written to or removed in its target. Returns what the link named, if
    there was one; anything else at ``directory`` is left for the publish to meet."""
    with _on(directory):
        try:
            target = os.readlink(directory)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            if exc.errno == errno.EINVAL:  # not a symlink
                return None
            raise
        os.unlink(directory)
    return target


@contextlib.contextmanager
def _on(path: Path) -> Iterator[None]:
    """Name ``path`` as the file of an ``OSError`` raised in the block: a failed write
    names no file, and a failed symlink names the link's text, not the link."""
    try:
        yield
    except OSError as exc:
        exc.filename, exc.filename2 = str(path), None
        raise


def current_target(out_dir: Path) -> Path | None:
    """The version directory ``..data`` points at, if any: a ``..<version>`` directory
    beside it, as this module writes it (``artifact.data_root``). Any other ``..data``
    is never followed (the next publish replaces it): the old version's directory is
    removed after a swap, and that must be one this module made."""
    try:
        root = data_root(out_dir, volume=True)
    except DataLinkError:
        return None
    return None if root == out_dir else root


def recover(out_dir: Path) -> list[str]:
    """Remove what an interrupted publish left behind; returns the names removed."""
    removed: list[str] = []
    if not out_dir.is_dir():
        return removed
    _finish_swap(out_dir)
    target = current_target(out_dir)
    for entry in out_dir.iterdir():
        if entry.name == TMP_LINK:
            _remove(entry)
            removed.append(entry.name)
        elif (entry.name.startswith("..") and entry.name != DATA_LINK and entry.is_dir()
              and not entry.is_symlink() and (target is None or entry.name != target.name)):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry.name)
    return sorted(removed)


def _finish_swap(out_dir: Path) -> None:
    """Where a publish was stopped after moving a real ``..data`` directory aside and
    before renaming its link in (``_link_over`` without ``renameat2``), rename the link
    in: its version is complete (written and fsynced before the link was made), and
    without this the version and the link would be removed as leftovers."""
    tmp, data = out_dir / TMP_LINK, out_dir / DATA_LINK
    if os.path.lexists(data) or not tmp.is_symlink():
        return
    version = os.readlink(tmp)
    if version.startswith("..") and "/" not in version and version not in (".", ".."):
        full = out_dir / version
        if full.is_dir() and not full.is_symlink():
            os.replace(tmp, data)
            fsync_dir(out_dir)


def published_bytes(out_dir: Path, name: str) -> bytes | None:
    """The bytes of ``name`` in the published version, or ``None`` (nothing there, or
    nothing this module would have written: not a regular file, below a symlink, larger
    than an artifact's file may be, which is not read)."""
    target = current_target(out_dir)
    if target is None:
        return None
    try:
        return read_member(target, name, size_limit(name))
    except OSError:
        return None


def publish(out_dir: Path, files: Mapping[str, bytes]) -> bool:
    """Publish ``files`` (name -> bytes) atomically; False if they are already published.

    An ``OSError`` names the file it failed on (:func:`failure` makes its message); one
    raised before the swap leaves ``out_dir`` as it was, the new version removed."""
    with _on(out_dir):
        out_dir.mkdir(parents=True, exist_ok=True)
    recover(out_dir)  # its errors name the leftover it could not remove
    old = current_target(out_dir)
    if old is not None and all(published_bytes(out_dir, n) == d for n, d in files.items()) \
            and _listing(old) == set(files):
        return False
    stamp = time.strftime("..%Y_%m_%d_%H_%M_%S", time.gmtime())
    with _on(out_dir):
        new = Path(tempfile.mkdtemp(prefix=f"{stamp}.", dir=out_dir))
    tmp = out_dir / TMP_LINK
    try:
        with _on(new):
            os.chmod(new, 0o755)
        for name, data in sorted(files.items()):
            path = new / name
            with _on(path):
                path.parent.mkdir(parents=True, exist_ok=True)
                write_new(path, data, 0o644)
        with _on(new):
            fsync_dir(new)
        with _on(tmp):
            os.symlink(new.name, tmp)
    except BaseException:
        with contextlib.suppress(OSError):
            if os.readlink(tmp) == new.name:
                os.unlink(tmp)
        shutil.rmtree(new, ignore_errors=True)
        raise
    with _on(out_dir / DATA_LINK):
        _link_over(tmp, out_dir / DATA_LINK)
    with _on(out_dir):
        fsync_dir(out_dir)
    top = {name.split("/", 1)[0] for name in files}
    for name in sorted(top):
        visible = out_dir / name
        if not (visible.is_symlink() and os.readlink(visible) == f"{DATA_LINK}/{name}"):
            link_tmp = out_dir / f"..{name}.link"
            with _on(visible):
                _remove(link_tmp)
                os.symlink(f"{DATA_LINK}/{name}", link_tmp)
                _link_over(link_tmp, visible)
    with _on(out_dir):
        for entry in out_dir.iterdir():
            if entry.is_symlink() and not entry.name.startswith("..") and entry.name not in top:
                entry.unlink()
        if old is not None and old.name != new.name:
            shutil.rmtree(old, ignore_errors=True)
        fsync_dir(out_dir)
    return True


def _listing(version: Path) -> set[str]:
    """The names a version directory holds as ``publish`` lists files (``a/b.json``
    for a file below a directory), a symlink to a directory as a name of its own."""
    names: set[str] = set()
    for top, dirs, found in os.walk(version):  # links to directories are not followed
        below = Path(top).relative_to(version)
        names.update((below / name).as_posix() for name in found)
        names.update((below / name).as_posix() for name in dirs
                     if os.path.islink(os.path.join(top, name)))
    return names


def _link_over(link: Path, dest: Path) -> None:
    """Rename the symlink ``link`` over ``dest``, whatever ``dest`` is. A real directory
    there, which a rename cannot replace, is swapped with the link in one step where the
    filesystem can (else moved aside first: a moment without ``dest``), then removed."""
    try:
        os.replace(link, dest)
        return
    except IsADirectoryError:
        pass
    if exchange(link, dest):
        _remove(link)  # the directory, now
        return
    # Named as recover() removes it, should the publisher be killed before it does.
    aside = dest.with_name(f"..{dest.name.lstrip('.')}.aside-{os.urandom(6).hex()}")
    os.rename(dest, aside)
    os.replace(link, dest)
    _remove(aside)


def _remove(path: Path) -> None:
    """Remove whatever ``path`` is, a real directory with all it holds included, as far
    as it can (what is left is removed next time, as an old version's directory is); no
    symlink is followed (``shutil.rmtree`` removes a link in the tree, not its target)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        shutil.rmtree(path, ignore_errors=True)
    else:
        os.unlink(path)
