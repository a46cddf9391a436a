"""read_regular: the one reader of files that may be hostile (artifact and state
directories, key files); sha256_regular hashes what it would read, with its checks."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from magcfg.durable import FileTooLarge, NotRegularFile, read_regular, sha256_regular

READERS = [read_regular, sha256_regular]


def test_reads_a_regular_file(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 70000)
    assert read_regular(path) == b"x" * 70000
    assert read_regular(path, limit=70000) == b"x" * 70000


def test_hashes_what_it_would_read(tmp_path: Path) -> None:
    path = tmp_path / "f"
    data = os.urandom(600_000)  # several chunks, the last one partial
    path.write_bytes(data)
    assert sha256_regular(path) == (hashlib.sha256(data).hexdigest(), len(data))
    path.write_bytes(b"")
    assert sha256_regular(path) == (hashlib.sha256(b"").hexdigest(), 0)


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize(("make", "kind"), [
    (lambda p: os.mkfifo(p), "a FIFO"),
    (lambda p: p.mkdir(), "a directory"),
    (lambda p: p.symlink_to("/etc/hostname"), "a symbolic link"),
])
def test_refuses_what_is_not_a_regular_file(tmp_path: Path, make: Callable[[Path], None],
                                            kind: str, reader: Callable[[Path], object]
                                            ) -> None:
    path = tmp_path / "member"
    make(path)
    with pytest.raises(NotRegularFile) as info:
        reader(path)
    assert info.value.message == f"is {kind}, not a regular file"


@pytest.mark.parametrize("reader", READERS)
def test_refuses_a_device_without_opening_it(reader: Callable[[str], object]) -> None:
    with pytest.raises(NotRegularFile, match="is a character device, not a regular file"):
        reader("/dev/zero")  # opened, it would never end


def test_refuses_more_than_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "big"
    path.write_bytes(b"x" * 1025)
    with pytest.raises(FileTooLarge, match="is 1025 bytes, more than the 1024 accepted"):
        read_regular(path, limit=1024)


@pytest.mark.parametrize("reader", READERS)
def test_a_missing_file_is_file_not_found(tmp_path: Path,
                                          reader: Callable[[Path], object]) -> None:
    with pytest.raises(FileNotFoundError):
        reader(tmp_path / "nope")


def test_a_configured_path_may_be_a_symlink_to_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "..data").mkdir()
    (tmp_path / "..data/magcfg.pub").write_bytes(b"key")
    (tmp_path / "magcfg.pub").symlink_to("..data/magcfg.pub")  # a mounted volume's layout
    assert read_regular(tmp_path / "magcfg.pub", follow_symlinks=True) == b"key"
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "to-fifo").symlink_to("fifo")
    with pytest.raises(NotRegularFile, match="is a FIFO"):
        read_regular(tmp_path / "to-fifo", follow_symlinks=True)
