"""Content-hash cache of compiled fragments, authenticated so it can never steer a build.

What is cached: a fragment (one top-level key of one environment, merged, validated and
serialized) under a digest of everything it was made from: compiler version, the
libraries it reads and writes with as installed (``_LIBRARIES``), schema digest, the
key, and the path, layer and content digest of each file that contributed to it;
results computed from a fragment (``CompileContext.memo``), CUE verdicts, the schema
summary; per layer file digest, the file's top-level keys; and, per layer file
content, the line of each key path it writes (``syntax.keylines``, kept by ``magcfg
diff``). An entry can therefore only be reused for exactly the same inputs. The
*values* of layer files are never written to disk: a layer may hold a literal secret
that the build rejects, or that a higher layer overrides, and the cache must not keep
it once the layer is fixed. Only a build that succeeds writes (a failed build may have
merged a literal secret into a fragment), and warnings are cached redacted; a diff
writes only key lines (``flush(only=...)``: key paths and line numbers, no values),
and only once it compiled both sides.

Threat model: the cache directory is hostile. It sits in the checkout, so a pull request
can commit files into it, and CI systems persist it between jobs, so a job of one
branch can plant entries that a job of another branch (main, which signs) reads. A
checksum would stop corruption, not forgery. Every entry therefore carries an
HMAC-SHA256 under a key that lives outside the repository and outside the cache
(``$XDG_STATE_HOME/magcfg/cache.key``, default ``~/.local/state/magcfg/cache.key``:
created 0600 with O_EXCL, used only if it is a regular file of this user that nobody
else may read). The tag covers the format, the lookup key and the value, so a
corrupted, forged or foreign entry, or a valid entry moved under another key, fails
the check and is a miss, exactly as if it were absent; nothing read is unmarshalled
before it is checked. The index is authenticated the same way. An old entry replayed
under its own lookup key is harmless: lookup keys digest every input, so its value is
still the right one. Without a usable key location, or with ``MAGCFG_NO_CACHE`` set,
the cache lives in memory only. Whoever can read the key can forge entries: its
directory must not be shared with untrusted jobs either.

Checking every tag of a no-op build of the large benchmark repo hashes the 37 MB of
fragments it reads: ~25 ms, 5-8% of that build. So, as git's index trusts a file's
stat data to skip re-hashing it, a pack's tags are not checked again while the pack is
provably the file this user wrote: the authenticated index records the pack's device,
inode, owner, mode, size, modification and change times, taken once its data was on
disk (fsync). Writing the file, or changing its times, owner or mode, sets its change
time to the current time, which only root can set back (by setting the clock); only
this user and root may write a file of this user's with mode 0600, and both can read
the key anyway; anyone else can only replace the file, which gives it another inode
(or, if the number is reused, their owner and a later change time). A pack that does
not match (restored from a CI cache, copied, edited, on a file system without
sub-millisecond change times) has every entry it serves checked.

The same stat data spares a rebuild hashing the schema file (40 MB, ~28 ms of CPU on the
large realistic repo, every build): its SHA-256 and size are kept under the file's path
and fingerprint (``file_sha256``), recorded only for a file that held still, the same
before and after the hashing, and last changed ``RACY_NS`` before the hashing began.
A write after that moves the change time past the recorded one, however coarsely the
file system's clock ticks (git's racy-timestamp rule, which ``git status`` trusts), and
the file is hashed again; so is any file of another inode, size, owner or mode. The
layer files' digests are kept so too, in one entry (``held_digests``), for the files
whose checkout verdict is their bytes' alone (``project.Checkout.examine``).

Storage: an entry is its tag, a ``marshal`` head and a raw body (a compiled fragment's
bytes, read back into the bytes object the build keeps, or, from a pack this user wrote,
a view of the pack mapped into memory that the build copies once, into its config.json:
``serialized_view``); entries are appended to *pack*
files, one new pack per build, with one index file mapping lookup keys to (pack, offset,
head size, body size); a file per entry cost more than the whole parse on the large
benchmark repo. Packs and the index are replaced atomically, through the directory's
file descriptor, never through a symlink and never into anything but a regular file;
an unreadable entry is a miss, never an error; writes are best effort (a read-only
checkout still builds). When more than ``MAX_PACKS`` packs exist, the entries the last
build used are compacted into one pack (the largest pack kept as it is while that build
used most of it: ``_compact``); a pack the index does not name is deleted.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import marshal
import mmap
import os
import re
import stat
import sys
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..durable import real_directory, write_all, write_new
from ..version import __version__

if TYPE_CHECKING:
    from ..project import Project

__all__ = ["KEY_FILE_NAME", "MAX_PACKS", "NO_CACHE_ENV", "RACY_NS", "BuildCache",
           "cache_key_file", "fingerprint", "settled"]

_FORMAT = 6
"""The format of the entries and what a cached fragment vouches for: bumped when either
changes, so that no entry an older magcfg wrote (a fragment that passed fewer checks, 3:
before layer files' literal secrets were checked, 4: before git's conflict markers in a
quoted string were refused; 5: a compiled fragment's entry without the SHA-256 of its
bytes) is taken as this one's."""
_LIBRARIES = ("yaml_rs", "yaml", "jsonschema_rs", "orjson")
"""The libraries a build reads its inputs and writes its outputs with: what the cache
holds is what they made of the inputs (a parse, a verdict, a serialization)."""


def _libraries() -> str:
    """The files of ``_LIBRARIES`` as installed: each one's real path (the one file
    whatever symlinked directory it is imported through), size, modification and
    change times (an upgrade writes them anew), found without importing it (~0.1 ms
    each). An entry another version of one wrote is then a miss, as one another magcfg
    version wrote is."""
    import importlib.util

    parts = []
    for name in _LIBRARIES:
        try:
            spec = importlib.util.find_spec(name)
            origin = (os.path.realpath(spec.origin) if spec is not None and spec.origin
                      else None)
            st = os.stat(origin) if origin else None
        except (ImportError, ValueError, OSError):
            origin, st = None, None
        parts.append(f"{name}\0{origin}\0" + (f"{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}"
                                             if st is not None else ""))
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


_SALT = (f"magcfg-{__version__}-{_FORMAT}-{sys.version_info[0]}.{sys.version_info[1]}-"
         f"{_libraries()}").encode()
MAX_PACKS = 8
NO_CACHE_ENV = "MAGCFG_NO_CACHE"
KEY_FILE_NAME = "cache.key"
_KEY_BYTES = 32
_TAG_BYTES = 32  # HMAC-SHA256
_GITIGNORE = b"# magcfg's build cache: local to each checkout, never committed\n*\n"
_INDEX = "index.bin"
_MAX_INDEX_BYTES = 1 << 28  # the large benchmark repo's is 0.2 MB: a bigger one is planted
_PACK = re.compile(r"pack-[0-9a-f]{20}\.bin\Z")
_TEMP = re.compile(r"\.(?:index|pack-[0-9a-f]{20})\.bin\.[0-9]+\.[0-9a-f]{8}\.tmp\Z")
# Without O_NOFOLLOW (not POSIX) there is no safe way to open a file in a hostile
# directory: the cache then stays in memory.
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)

RACY_NS = 2_000_000_000
"""How long before it is hashed a file must have last changed for its digest to be kept
by its fingerprint (``put_file_sha256``): longer than any clock tick of a file system
with sub-millisecond change times."""

Location = tuple[str, int, int, int]  # pack, offset, head size, body size
_MISS = object()
"""``BuildCache._get_mapped``'s value of an entry of a mapped pack that cannot be taken."""
LayerKeys = tuple[tuple[str, ...], bool]
Fingerprint = tuple[int, ...]


def cache_key_file() -> Path | None:
    """Where the cache key lives: ``$XDG_STATE_HOME/magcfg/cache.key``, by default
    ``~/.local/state/magcfg/cache.key``. A state directory, not a cache one: CI
    systems persist and share ``~/.cache`` far more often, and whoever can read the key
    can forge entries."""
    base = os.environ.get("XDG_STATE_HOME", "")
    if not os.path.isabs(base):
        try:
            base = str(Path.home() / ".local" / "state")
        except (RuntimeError, KeyError):
            return None
        if not os.path.isabs(base):
            return None
    return Path(base) / "magcfg" / KEY_FILE_NAME


class BuildCache:
    """A directory of authenticated packs; ``directory=None`` keeps everything in memory.

    ``key_file`` holds the secret the entries are authenticated with (see the module
    docstring); without one the directory is neither read nor written."""

    def __init__(self, directory: Path | None, key_file: Path | None = None) -> None:
        if directory is not None and (key_file is None or not _NOFOLLOW or not _DIRECTORY):
            directory = None
        self.directory = directory
        self._key_file = key_file
        self._key: bytes | None = None
        self._mac: Any = None  # HMAC-SHA256 under the key, fed the salt: copied per tag
        self._loaded = False
        self._locations: dict[str, Location] = {}
        self._layer_keys: dict[str, LayerKeys] = {}
        self._fingerprints: dict[str, Fingerprint] = {}  # pack -> as written
        self._layer_keys_used: set[str] = set()
        self._index_changed = False
        self._pending: dict[str, tuple[bytes, bytes]] = {}  # lookup key -> (head, body)
        self._used: set[str] = set()  # hits and new entries
        self._dir_fd: int | None = None
        self._packs: dict[str, tuple[int, bool] | None] = {}  # name -> (fd, unchanged)
        self._maps: dict[str, tuple[mmap.mmap, memoryview] | None] = {}  # unchanged packs

    @classmethod
    def for_project(cls, project: Project) -> BuildCache:
        """The project's cache (its ``cache`` directory), or an in-memory one when
        ``MAGCFG_NO_CACHE`` is set or the key would live inside the repository."""
        if os.environ.get(NO_CACHE_ENV, "") not in ("", "0"):
            return cls(None)
        key_file = cache_key_file()
        if key_file is None or _within(key_file, project.root):
            return cls(None)
        return cls(real_directory(project.root, project.cache_dir), key_file)

    # -- top-level keys of layer files ----------------------------------------------------

    def layer_keys(self, name: str) -> LayerKeys | None:
        """(top-level keys, has markers) of the layer file ``name`` (a content digest)."""
        self._load_index()
        found = self._layer_keys.get(name)
        if found is not None:
            self._layer_keys_used.add(name)
        return found

    def put_layer_keys(self, name: str, keys: tuple[str, ...], has_markers: bool) -> None:
        self._load_index()
        self._layer_keys[name] = (keys, has_markers)
        self._layer_keys_used.add(name)
        self._index_changed = True

    # -- fragments ------------------------------------------------------------------------

    @staticmethod
    def fragment_key(*parts: str) -> str:
        h = hashlib.sha256(_SALT)
        for part in parts:
            h.update(b"\0")
            h.update(part.encode("utf-8"))
        return h.hexdigest()

    def fragment(self, key: str) -> Any:
        """A marshal-able value cached under ``key``, or None."""
        found = self._get(f"f-{key}")
        return found[0] if found is not None else None

    def put_fragment(self, key: str, value: Any) -> None:
        self._put(f"f-{key}", marshal.dumps(value), b"")

    def serialized(self, key: str) -> tuple[bytes, Any] | None:
        """A compiled fragment: its serialized bytes and the value that goes with them.
        The bytes are stored as they are and read back without a copy (a no-op build of
        the large benchmark repo reads 37 MB of them)."""
        found = self._get(f"s-{key}")
        return (found[1], found[0]) if found is not None else None

    def serialized_view(self, key: str) -> tuple[bytes | memoryview, Any] | None:
        """``serialized``, but where the entry's pack is the file this user wrote (its
        tags unchecked: see the module docstring) its bytes are a read-only view of the
        pack mapped into memory, valid until ``close``: for a caller that copies them
        once, into the config.json they are joined into, where ``serialized`` reads
        them into one more copy first (the fragments of the large realistic repo's
        three environments, 24 MB, ~10 ms of CPU of a one-file rebuild in page faults
        and copying). A pack truncated in place while it is mapped, which only this
        user or root can do, ends the process with SIGBUS."""
        name = f"s-{key}"
        found = self._get_mapped(name) if name not in self._pending else None
        if found is None:
            return self.serialized(key)
        value, view = found
        return (view, value) if value is not _MISS else None

    def _mapped(self, name: str) -> memoryview | None:
        """The pack ``name`` mapped into memory, read-only, if it is the very file this
        user wrote (``_pack``); None otherwise, or if it cannot be mapped."""
        if name not in self._maps:
            pack = self._pack(name)
            self._maps[name] = None
            if pack is not None and pack[1]:
                with contextlib.suppress(OSError, ValueError):  # ValueError: empty
                    region = mmap.mmap(pack[0], 0, access=mmap.ACCESS_READ)
                    self._maps[name] = (region, memoryview(region))
        found = self._maps[name]
        return found[1] if found is not None else None

    def put_serialized(self, key: str, data: bytes, value: Any) -> None:
        self._put(f"s-{key}", marshal.dumps(value), data)

    def holds_serialized(self, key: str) -> bool:
        """Whether a compiled fragment is cached under ``key`` (not read, not checked:
        an entry that turns out not to check out is compiled again when it is read)."""
        self._load_index()
        return f"s-{key}" in self._pending or f"s-{key}" in self._locations

    def new_entries(self, before: Collection[str]) -> dict[str, tuple[bytes, bytes]]:
        """The entries put since ``before`` (``pending_names()`` then), as stored: what
        a worker process hands back to the build (``adopt``)."""
        return {k: v for k, v in self._pending.items() if k not in before}

    def pending_names(self) -> frozenset[str]:
        return frozenset(self._pending)

    def adopt(self, entries: dict[str, tuple[bytes, bytes]]) -> None:
        """Take entries another process of this build put (``new_entries``)."""
        for key, (head, body) in entries.items():
            self._put(key, head, body)

    def keep(self, fragment: str | None = None, serialized: str | None = None) -> None:
        """Count an entry as used by this build without reading it, so that compaction
        keeps it (what a build needs only when something changes, like the pieces of
        the schema)."""
        if fragment is not None:
            self._used.add(f"f-{fragment}")
        if serialized is not None:
            self._used.add(f"s-{serialized}")

    # -- digests of files by their status ------------------------------------------------

    def file_sha256(self, path: str, status: os.stat_result) -> tuple[str, int] | None:
        """The (hex SHA-256, size) recorded for the file ``path`` while it has
        ``status`` (``put_file_sha256``), or None."""
        name = self._status_name(path, status)
        found = self.fragment(name) if name is not None else None
        if (isinstance(found, tuple) and len(found) == 2 and isinstance(found[0], str)
                and isinstance(found[1], int)):
            return found[0], found[1]
        return None

    def put_file_sha256(self, path: str, before: os.stat_result, after: os.stat_result,
                        began_ns: int, found: tuple[str, int]) -> None:
        """Keep ``found``, the (hex SHA-256, size) of the file ``path``, hashed after
        ``began_ns`` (``time.time_ns``) between its statuses ``before`` and ``after``, if
        it held still (``settled``)."""
        name = self._status_name(path, before)
        if name is not None and settled(before, after, began_ns):
            self.put_fragment(name, found)

    def held_digests(self, kind: str) -> dict[str, tuple[Fingerprint, str]]:
        """Path -> (fingerprint, hex SHA-256) of the files of ``kind`` (the layer files)
        as ``put_held_digests`` recorded them: one entry for a thousand files, read
        once."""
        found = self.fragment(self.fragment_key("held-digests", kind))
        return found if isinstance(found, dict) else {}

    def put_held_digests(self, kind: str, digests: dict[str, tuple[Fingerprint, str]]
                         ) -> None:
        """Record ``digests`` (``held_digests``), each of a file that held still while
        it was read (``settled``) and whose bytes alone vouch for it."""
        self.put_fragment(self.fragment_key("held-digests", kind), digests)

    def _status_name(self, path: str, status: os.stat_result) -> str | None:
        found = fingerprint(status)
        if not found:  # a coarse file system: two writes may leave the same status
            return None
        return self.fragment_key("file-sha256", path, *map(str, found))

    # -- authentication -------------------------------------------------------------------

    def _tag(self, kind: bytes, name: str, head: bytes | memoryview, body: bytes = b"") -> bytes:
        """HMAC-SHA256 of an entry (``E``) or the index (``I``) under the key: over the
        format, the lookup key and the entry's parts, each with its length."""
        if self._mac is None:
            assert self._key is not None
            self._mac = hmac.new(self._key, _SALT + b"\0", hashlib.sha256)
        mac = self._mac.copy()
        label = name.encode()
        mac.update(b"%s%d:%s%d:" % (kind, len(label), label, len(head)))
        mac.update(head)
        mac.update(body)
        digest: bytes = mac.digest()
        return digest

    def _open_key(self, create: bool) -> bytes | None:
        if self._key is None and self._key_file is not None:
            self._key = _read_key(self._key_file)
            if self._key is None and create:
                self._key = _create_key(self._key_file)
        return self._key

    # -- reading --------------------------------------------------------------------------

    def _load_index(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        if self.directory is None or self._open_key(create=False) is None:
            return
        raw = self._read_file(_INDEX)
        if raw is None:
            return
        header = _SALT + b"\n"
        start = len(header) + _TAG_BYTES
        if not raw.startswith(header) or len(raw) < start:
            return
        payload = memoryview(raw)[start:]
        if not hmac.compare_digest(raw[len(header):start], self._tag(b"I", "", payload)):
            return
        try:
            locations, layer_keys, fingerprints = marshal.loads(payload)
        except (ValueError, EOFError, TypeError):  # tagged, so ours: another format
            return
        if (isinstance(locations, dict) and isinstance(layer_keys, dict)
                and isinstance(fingerprints, dict)):
            self._locations, self._layer_keys = locations, layer_keys
            self._fingerprints = fingerprints

    def _put(self, key: str, head: bytes, body: bytes) -> None:
        self._used.add(key)
        self._pending[key] = (head, body)

    def _get(self, key: str) -> tuple[Any, bytes] | None:
        """(value, body) of ``key``'s entry if there is one and it checks out."""
        pending = self._pending.get(key)
        if pending is not None:
            return marshal.loads(pending[0]), pending[1]
        mapped = self._get_mapped(key)
        if mapped is not None:
            found, view = mapped
            return (found, bytes(view)) if found is not _MISS else None
        stored = self._read(key)
        if stored is None:
            return None
        tag, head, body, unchanged = stored
        if not (unchanged or hmac.compare_digest(tag, self._tag(b"E", key, head, body))):
            return None
        try:
            value = marshal.loads(head)
        except (ValueError, EOFError, TypeError):  # ours (checked): another format
            return None
        self._used.add(key)
        return value, body

    def _get_mapped(self, key: str) -> tuple[Any, memoryview] | None:
        """(value, body) of ``key``'s entry read from its pack mapped into memory, where
        the pack is the file this user wrote (its tags unchecked: see the module
        docstring): no read into a copy, where a build looks up a cached result of each
        of its thousands of fragments (``CompileContext.memo``). ``_MISS`` for the value
        when the entry cannot be taken; None when its pack is not mapped."""
        self._load_index()
        location = self._locations.get(key)
        mapped = self._mapped(location[0]) if location is not None else None
        if mapped is None or location is None:
            return None
        _, offset, head_size, body_size = location
        start = offset + _TAG_BYTES + head_size
        if start + body_size > len(mapped):
            return _MISS, mapped[:0]
        try:
            value = marshal.loads(mapped[offset + _TAG_BYTES:start])
        except (ValueError, EOFError, TypeError):  # ours (its pack unchanged): another format
            return _MISS, mapped[:0]
        self._used.add(key)
        return value, mapped[start:start + body_size]

    def _read(self, key: str) -> tuple[memoryview, memoryview, bytes, bool] | None:
        """Tag, head and body of ``key``'s entry as stored, and whether its pack is
        unchanged since this user wrote it. The body is read on its own, into the
        bytes object the caller keeps."""
        self._load_index()
        location = self._locations.get(key)
        if location is None:
            return None
        name, offset, head_size, body_size = location
        pack = self._pack(name)
        if pack is None:
            return None
        fd, unchanged = pack
        try:
            front = os.pread(fd, _TAG_BYTES + head_size, offset)
            body = os.pread(fd, body_size, offset + len(front)) if body_size else b""
        except OSError:
            return None
        if len(front) != _TAG_BYTES + head_size or len(body) != body_size:
            return None
        view = memoryview(front)
        return view[:_TAG_BYTES], view[_TAG_BYTES:], body, unchanged

    def _pack(self, name: str) -> tuple[int, bool] | None:
        """A read descriptor of the pack ``name``, and whether it is the very file this
        user wrote (see the module docstring)."""
        if name not in self._packs:
            fd = self._open_regular(name) if _PACK.match(name) else None
            if fd is None:
                self._packs[name] = None
            else:
                recorded = self._fingerprints.get(name)
                try:
                    unchanged = bool(recorded) and fingerprint(os.fstat(fd)) == recorded
                except OSError:
                    unchanged = False
                self._packs[name] = (fd, unchanged)
        return self._packs[name]

    def _open_regular(self, name: str) -> int | None:
        """A read descriptor of ``name`` in the cache directory, if it is a regular file
        (a symlink is not followed, a FIFO or device not opened for real)."""
        dir_fd = self._directory_fd(create=False)
        if dir_fd is None:
            return None
        try:
            fd = os.open(name, os.O_RDONLY | _NOFOLLOW | _CLOEXEC | os.O_NONBLOCK,
                         dir_fd=dir_fd)
        except OSError:
            return None
        try:
            if stat.S_ISREG(os.fstat(fd).st_mode):
                return fd
        except OSError:
            pass
        os.close(fd)
        return None

    def _read_file(self, name: str) -> bytes | None:
        fd = self._open_regular(name)
        if fd is None:
            return None
        try:
            if os.fstat(fd).st_size > _MAX_INDEX_BYTES:
                return None
            with open(fd, "rb", closefd=False) as fh:
                return fh.read(_MAX_INDEX_BYTES + 1)
        except OSError:
            return None
        finally:
            os.close(fd)

    def _directory_fd(self, create: bool) -> int | None:
        if self._dir_fd is None and self.directory is not None:
            if create and not self.directory.is_dir():
                try:
                    self.directory.mkdir(parents=True, exist_ok=True)
                    # The cache is local to each checkout: git ignores it wherever the
                    # project file put it, with no entry in the user's own .gitignore.
                    with contextlib.suppress(FileExistsError):  # a concurrent build's
                        write_new(self.directory / ".gitignore", _GITIGNORE)
                except OSError:
                    return None
            try:
                self._dir_fd = os.open(self.directory,
                                       os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC)
            except OSError:
                return None
        return self._dir_fd

    # -- writing --------------------------------------------------------------------------

    def flush(self, only: str | None = None) -> None:
        """Write this build's new entries as one pack and the index; compact if needed.
        Call it only after a build that succeeded.

        ``only``: write just the new fragments whose keys start with it (and the index),
        never compacting: what another command keeps for the next one (``diff``'s key
        lines), which must neither store what only a build that succeeds may, nor drop
        the entries builds use. With ``MAX_PACKS`` packs, it writes nothing."""
        if only is not None:
            self._pending = {k: v for k, v in self._pending.items()
                             if k.startswith(f"f-{only}")}
            if not self._pending:
                return
        if self.directory is None or not (self._pending or self._index_changed):
            return
        self._load_index()
        if self._open_key(create=True) is None or self._directory_fd(create=True) is None:
            return
        try:
            packs = {loc[0] for loc in self._locations.values()}
            if len(packs) >= MAX_PACKS:
                if only is not None:
                    return
                self._compact()
            elif self._pending:
                self._write_pack({k: self._entry(k, head, body)
                                  for k, (head, body) in self._pending.items()})
            self._pending = {}
            self._index_changed = False
            named = {loc[0] for loc in self._locations.values()}
            self._fingerprints = {k: v for k, v in self._fingerprints.items() if k in named}
            payload = marshal.dumps((self._locations, self._layer_keys, self._fingerprints))
            self._write_atomic(_INDEX, [_SALT + b"\n", self._tag(b"I", "", payload), payload])
            self._delete_leftovers(named)
        except OSError:
            pass

    def _entry(self, key: str, head: bytes, body: bytes) -> tuple[int, bytes, bytes]:
        return len(head), self._tag(b"E", key, head, body) + head, body

    def _write_pack(self, entries: dict[str, tuple[int, bytes, bytes]]) -> None:
        """A new pack of ``entries`` (lookup key -> head size, tag and head, body), named
        in the index with its fingerprint."""
        import secrets  # here, not at import: a build that writes nothing needs none

        name = f"pack-{secrets.token_hex(10)}.bin"
        offset = 0
        parts: list[bytes] = []
        for key, (head_size, front, body) in entries.items():
            self._locations[key] = (name, offset, head_size, len(body))
            offset += len(front) + len(body)
            parts += (front, body)
        self._fingerprints[name] = fingerprint(self._write_atomic(name, parts,
                                                                   durable=True))

    def _compact(self) -> None:
        """Keep only what this build used (hits and new entries), in one new pack; but
        the largest pack stays as it is, all it holds still named, while it is the file
        this user wrote and this build used at least half of its bytes. Rewriting it
        would copy the whole cache (the 37 MB of fragments of the large benchmark repo)
        once every ``MAX_PACKS`` builds, however little each of them changed."""
        kept = self._kept_pack()
        live: dict[str, tuple[int, bytes, bytes]] = {}
        for key in sorted(self._used):
            if key in self._pending:
                live[key] = self._entry(key, *self._pending[key])
            elif kept is not None and self._locations.get(key, ("",))[0] == kept:
                continue
            elif (stored := self._read(key)) is not None:
                # Checked again unless its pack is unchanged: the new pack is trusted.
                tag, head, body, unchanged = stored
                if unchanged or hmac.compare_digest(tag, self._tag(b"E", key, head, body)):
                    live[key] = len(head), bytes(tag) + bytes(head), body
        self._locations = {k: v for k, v in self._locations.items() if v[0] == kept}
        self._layer_keys = {k: v for k, v in self._layer_keys.items()
                            if k in self._layer_keys_used}
        self._write_pack(live)

    def _kept_pack(self) -> str | None:
        """The pack ``_compact`` keeps as it is (see there), or None."""
        size: dict[str, int] = {}
        used: dict[str, int] = {}
        for key, (name, _offset, head_size, body_size) in self._locations.items():
            entry = _TAG_BYTES + head_size + body_size
            size[name] = size.get(name, 0) + entry
            if key in self._used:
                used[name] = used.get(name, 0) + entry
        if not size:
            return None
        largest = max(size, key=lambda name: (size[name], name))
        pack = self._pack(largest)
        if pack is None or not pack[1] or 2 * used.get(largest, 0) < size[largest]:
            return None
        return largest

    def _delete_leftovers(self, named: set[str]) -> None:
        """Remove the packs the index does not name (compacted, or not ours) and temp
        files of writers that died (a live writer's rename then fails: a lost flush)."""
        assert self._dir_fd is not None
        for name in os.listdir(self._dir_fd):
            if (_PACK.match(name) and name not in named) or _TEMP.match(name):
                pack = self._packs.pop(name, None)
                if pack is not None:
                    os.close(pack[0])
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=self._dir_fd)

    def _write_atomic(self, name: str, parts: list[bytes], durable: bool = False
                      ) -> os.stat_result:
        """Replace ``name`` in the cache directory: a new temp file (never an existing
        file or a symlink's target), renamed over it; its stat once in place. A pack
        is fsynced (its fingerprint vouches for its bytes); the index is not: torn, it
        fails its tag and is a miss. The bytes come in parts (a pack is tens of megabytes:
        written part by part, never joined into one more copy)."""
        assert self._dir_fd is not None
        import secrets

        tmp = f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o600,
                     dir_fd=self._dir_fd)
        try:
            try:
                for part in parts:
                    write_all(fd, part)
                if durable:
                    os.fsync(fd)
                os.rename(tmp, name, src_dir_fd=self._dir_fd, dst_dir_fd=self._dir_fd)
                return os.fstat(fd)
            finally:
                os.close(fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=self._dir_fd)
            raise

    def close(self) -> None:
        for mapped in self._maps.values():
            if mapped is not None:
                with contextlib.suppress(BufferError):  # a caller's view: unmapped with it
                    mapped[1].release()
                    mapped[0].close()
        self._maps = {}
        for pack in self._packs.values():
            if pack is not None:
                os.close(pack[0])
        self._packs = {}
        if self._dir_fd is not None:
            os.close(self._dir_fd)
            self._dir_fd = None

    def __del__(self) -> None:
        self.close()


def settled(before: os.stat_result, after: os.stat_result, began_ns: int) -> bool:
    """Whether a file read or hashed after ``began_ns`` (``time.time_ns``), between its
    statuses ``before`` and ``after``, held still: the two the same, and its last change
    ``RACY_NS`` before ``began_ns`` (a later write could fall in the same tick of the
    file system's clock and leave the change time as it was)."""
    found = fingerprint(before)
    return (bool(found) and fingerprint(after) == found
            and max(before.st_mtime_ns, before.st_ctime_ns) < began_ns - RACY_NS)


def fingerprint(st: os.stat_result) -> Fingerprint:
    """What identifies a file as the one whose bytes were checked or hashed, unchanged
    (a pack this user wrote, a file ``file_sha256`` knows). A change time
    without sub-millisecond digits (a coarse file system) never matches: such a file
    system cannot tell two writes apart."""
    if st.st_ctime_ns % 1_000_000 == 0:
        return ()
    return (st.st_dev, st.st_ino, st.st_uid, st.st_mode, st.st_size, st.st_mtime_ns,
            st.st_ctime_ns)


def _within(path: Path, root: Path) -> bool:
    real, top = os.path.realpath(path), os.path.realpath(root)
    return real == top or real.startswith(top.rstrip(os.sep) + os.sep)


def _read_key(path: Path) -> bytes | None:
    """The key in ``path`` if it is a regular file of this user, unreadable to anyone
    else, of exactly the key's length; None otherwise (no cache is read or written)."""
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if (not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid()
                or st.st_mode & 0o077 or st.st_size != _KEY_BYTES):
            return None
        key = os.read(fd, _KEY_BYTES + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    return key if len(key) == _KEY_BYTES else None


def _create_key(path: Path) -> bytes | None:
    """A new random key in ``path`` (mode 0600, created exclusively); the existing one
    if another process won the race; None if no key can be kept there."""
    import secrets

    key = secrets.token_bytes(_KEY_BYTES)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o600)
    except FileExistsError:
        return _read_key(path)
    except OSError:
        return None
    try:
        try:
            write_all(fd, key)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        path.unlink(missing_ok=True)
        return None
    return key
