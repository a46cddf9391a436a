"""read_regular: the one reader of files that may be hostile (artifact and state
directories, key files); sha256_regular hashes what it would read, with its checks;
replace_directories stages several directories at once, all or none."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from magcfg.durable import (
    DirectoryUpdate,
    FileTooLarge,
    NotRegularFile,
    PathError,
    Tree,
    changed_entries,
    operator_cwd,
    operator_name_in_checkout,
    read_regular,
    regular_status,
    replace_directories,
    sha256_regular,
)

from .conftest import calls

READERS = [read_regular, sha256_regular, regular_status]


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


@pytest.mark.parametrize("reader", [read_regular, regular_status])
def test_refuses_more_than_the_limit(tmp_path: Path, reader: Callable[..., object]) -> None:
    path = tmp_path / "big"
    path.write_bytes(b"x" * 1025)
    with pytest.raises(FileTooLarge, match="is larger than 1024 bytes"):
        reader(path, limit=1024)


def test_the_status_is_of_the_file_it_would_hash(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 1024)
    status = regular_status(path, limit=1024)
    assert (status.st_ino, status.st_size, status.st_ctime_ns) == (
        os.stat(path).st_ino, 1024, os.stat(path).st_ctime_ns)


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


def test_replaces_several_directories_staged_at_once(tmp_path: Path) -> None:
    updates = [DirectoryUpdate(f"out/{env}", {"a.json": env.encode() * 1000, "b": b"x"})
               for env in ("dev", "staging", "prod")]
    assert replace_directories(tmp_path, updates) == [
        f"out/{env}/{name}" for env in ("dev", "staging", "prod") for name in ("a.json", "b")]
    for env in ("dev", "staging", "prod"):
        assert (tmp_path / f"out/{env}/a.json").read_bytes() == env.encode() * 1000
    assert sorted(os.listdir(tmp_path / "out")) == ["dev", "prod", "staging"]


def test_many_directories_are_staged_by_a_few_threads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A thread each: with 2,000 environments one could not start, and the build failed
    # with RuntimeError: cannot join thread before it is started.
    started = calls(monkeypatch, threading.Thread, "start")
    envs = [f"env{i}" for i in range(40)]
    updates = [DirectoryUpdate(f"out/{env}", {"a": env.encode()}) for env in envs]
    assert replace_directories(tmp_path, updates) == [f"out/{env}/a" for env in envs]
    assert all((tmp_path / f"out/{env}/a").read_bytes() == env.encode() for env in envs)
    assert 1 <= len(started) <= 8


def test_no_staging_thread_outlives_an_interrupted_share_of_the_work(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C in the calling thread while it takes its share of the directories to
    stage: the helper threads finish what they took before the interruption goes on up
    (what they staged is then removed or recovered, never written into later)."""
    import time

    import magcfg.durable as durable

    def interrupted(items: object, default: object) -> object:
        if threading.current_thread() is threading.main_thread():
            raise KeyboardInterrupt
        return next(items, default)  # type: ignore[call-overload]

    def slow(item: int) -> None:
        time.sleep(0.2)
        finished.append(item)

    finished: list[int] = []
    monkeypatch.setattr(durable, "next", interrupted, raising=False)
    with pytest.raises(KeyboardInterrupt):
        durable._at_once(slow, [1, 2, 3])
    assert not [t for t in threading.enumerate() if t.name == "magcfg stage"]
    assert sorted(finished) == [1, 2, 3]  # the helpers took what this thread did not


def test_a_staged_directory_is_written_whole_before_its_files_are_fsynced(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One journal commit for the files of a directory, not one each; each file is
    durable before its directory is, and the directory before it is swapped in."""
    import magcfg.durable as durable

    events: list[tuple[str, str]] = []
    write_all, fsync = durable.write_all, os.fsync

    def writing(fd: int, data: bytes) -> None:
        events.append(("write", os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))))
        write_all(fd, data)

    def syncing(fd: int) -> None:
        events.append(("fsync", os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))))
        fsync(fd)

    monkeypatch.setattr(durable, "write_all", writing)
    monkeypatch.setattr(os, "fsync", syncing)
    files = {"a.json": b"a" * 100_000, "b": b"b", "c.yaml": b"c: 1\n"}
    assert replace_directories(tmp_path, [DirectoryUpdate("out/dev", files)]) == [
        "out/dev/a.json", "out/dev/b", "out/dev/c.yaml"]
    staged = [name for kind, name in events if kind == "fsync" and ".magcfg-new-" in name]
    assert events[:7] == [("write", "a.json"), ("write", "b"), ("write", "c.yaml"),
                          ("fsync", "a.json"), ("fsync", "b"), ("fsync", "c.yaml"),
                          ("fsync", staged[0])]
    assert events[7:] == [("fsync", "out")]  # the swap's parent, once
    assert {name: (tmp_path / "out/dev" / name).read_bytes() for name in files} == files


def test_the_old_directories_are_deleted_together_once_all_are_swapped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Deleting an old directory waits on the disk: the old ones are deleted at once,
    after the last swap, and none is left behind."""
    import magcfg.durable as durable

    envs = ("dev", "staging", "prod")
    replace_directories(tmp_path, [DirectoryUpdate(f"out/{env}", {"a": b"old", "b": b"1"})
                                   for env in envs])
    events: list[str] = []
    exchange, rmdir = durable.exchange, os.rmdir

    def exchanging(a: Path, b: Path) -> bool:
        events.append("swap")
        return exchange(a, b)

    def removing(path: str | os.PathLike[str], *args: object, **kwargs: object) -> None:
        events.append("remove")
        rmdir(path)

    monkeypatch.setattr(durable, "exchange", exchanging)
    monkeypatch.setattr(os, "rmdir", removing)
    assert replace_directories(tmp_path, [DirectoryUpdate(f"out/{env}", {"a": b"new"},
                                                          frozenset({"a", "b"}))
                                          for env in envs]) == [
        f"out/{env}/{name}" for env in envs for name in ("a", "b")]
    assert events == ["swap"] * 3 + ["remove"] * 3
    assert sorted(os.listdir(tmp_path / "out")) == ["dev", "prod", "staging"]
    assert all(os.listdir(tmp_path / "out" / env) == ["a"] for env in envs)


def test_one_directory_that_cannot_be_staged_changes_none(tmp_path: Path) -> None:
    replace_directories(tmp_path, [DirectoryUpdate(f"out/{env}", {"a": b"old"})
                                   for env in ("dev", "staging", "prod")])
    before = {p: p.read_bytes() for p in sorted((tmp_path / "out").rglob("*")) if p.is_file()}
    # A name with a directory the staged copy lacks: only staging's write fails.
    updates = [DirectoryUpdate("out/dev", {"a": b"new"}),
               DirectoryUpdate("out/staging", {"a": b"new", "missing/b": b"x"}),
               DirectoryUpdate("out/prod", {"a": b"new"})]
    with pytest.raises(PathError) as raised:
        replace_directories(tmp_path, updates)
    assert [d.file for d in raised.value.diagnostics] == ["out/staging"]
    assert "nothing was changed" in raised.value.diagnostics[0].message
    after = {p: p.read_bytes() for p in sorted((tmp_path / "out").rglob("*")) if p.is_file()}
    assert after == before
    assert sorted(os.listdir(tmp_path / "out")) == ["dev", "prod", "staging"]  # no copies


def test_a_located_read_over_its_limit_names_the_file_and_reads_nothing(tmp_path: Path) -> None:
    from magcfg.durable import read_if_present, read_located

    path = tmp_path / "manifest.json"
    with open(path, "wb") as fh:
        fh.truncate(3 << 30)  # sparse: read whole, it would need gigabytes of memory
    for read in (read_located, read_if_present):
        with pytest.raises(PathError) as info:
            read(path, "generated/dev/manifest.json", 1024)
        assert info.value.format() == (
            "generated/dev/manifest.json: error: is larger than 1024 bytes")


def test_a_file_larger_than_its_new_bytes_is_changed_without_being_read(
        tmp_path: Path) -> None:
    import subprocess
    import sys

    (tmp_path / "out").mkdir()
    with open(tmp_path / "out/manifest.json", "wb") as fh:
        fh.truncate(3 << 30)  # sparse
    # In a child capped at 1 GiB of address space: reading the file would fail there.
    script = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
        "from magcfg.durable import DirectoryUpdate, changed_entries\n"
        "update = DirectoryUpdate('out', {'manifest.json': b'{}'}, frozenset({'manifest.json'}))\n"
        "print(changed_entries(sys.argv[1], [update]))\n")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert (done.returncode, done.stdout) == (0, "['out/manifest.json']\n"), done.stderr


def test_a_deeply_nested_tree_is_listed_without_recursion(tmp_path: Path) -> None:
    # A pull request can commit a thousand nested directories: the walk is a loop, so
    # it lists them (the build then judges the files) rather than exhaust the stack.
    deep = tmp_path / "layers"
    deep.mkdir()
    for _ in range(1100):  # os.makedirs itself recurses
        deep = deep / "d"
        deep.mkdir()
    (deep / "x.yaml").write_text("a: 1\n")
    try:
        files, problems = Tree(tmp_path).list_files("layers", (".yaml",))
        assert problems == [] and files == ["layers" + "/d" * 1100 + "/x.yaml"]
    finally:  # shutil.rmtree, which removes tmp_path, recurses too
        (deep / "x.yaml").unlink()
        while deep != tmp_path:
            deep.rmdir()
            deep = deep.parent


@pytest.mark.parametrize(("git_at", "project", "message"), [
    (None, "proj", "leads outside the repository"),
    ("", "", "leads outside the repository"),
    ("", ".config/magcfg", "leads outside the project (.config/magcfg/)"),
    # An empty .git is no repository to git, which every command names files by.
    ("", "a/b", "leads outside the project (a/b/)"),
])
def test_a_link_out_of_the_project_names_what_it_leaves(
        tmp_path: Path, git_at: str | None, project: str, message: str) -> None:
    """A project at the top of its repository (or in none) is the repository; one below
    it (a monorepo's ``config/``) is named, since the link may stay in the repository,
    as git places it: a ``.git`` that is no repository (an empty directory here) was
    taken for the top, and the project named from there (``b/``)."""
    import subprocess

    top = tmp_path / "repo"
    root = top / project
    (root / "layers").mkdir(parents=True)
    (top / "other.yaml").write_text("a: 1\n")
    (tmp_path / "away.yaml").write_text("a: 1\n")
    if git_at is not None:
        subprocess.run(["git", "init", "-q", str(top / git_at)], check=True)
    if project == "a/b":
        (top / "a/.git").mkdir()
    os.symlink(top / "other.yaml", root / "layers/in-repo.yaml")
    os.symlink(tmp_path / "away.yaml", root / "layers/away.yaml")
    files, problems = Tree(root).list_files("layers", (".yaml",))
    if root == top:  # the repository's own file is the project's
        assert files == ["layers/in-repo.yaml"]
        assert [d.format() for d in problems] == [f"layers/away.yaml: error: symlink {message}"]
    else:
        assert files == []
        assert sorted(d.format() for d in problems) == [
            f"layers/away.yaml: error: symlink {message}",
            f"layers/in-repo.yaml: error: symlink {message}"]


@pytest.mark.parametrize("other", ["none", "mode 0600", "linked elsewhere", "small"])
def test_a_big_file_a_directory_holds_as_it_is_is_linked_not_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, other: str) -> None:
    """A directory replaced because its manifest changed, its config.json of megabytes
    as it was (a change of another environment's, or one only the manifest names): the
    staged copy links the file there rather than writing, fsyncing and then unlinking
    its bytes again; a file that is not what a write would make (another mode, another
    link to it), or a small one, is written."""
    import magcfg.durable as durable

    config = b"0123456789abcdef" * (1 << 16) if other != "small" else b"{}\n"  # 1 MB
    replace_directories(tmp_path, [DirectoryUpdate("out/dev", {
        "config.json": config, "manifest.json": b'{"version": 1}\n'})])
    there = tmp_path / "out/dev/config.json"
    if other == "mode 0600":
        there.chmod(0o600)
    if other == "linked elsewhere":
        os.link(there, tmp_path / "elsewhere.json")
    before = there.stat()
    written = calls(monkeypatch, durable, "write_all", 1)
    assert replace_directories(tmp_path, [DirectoryUpdate("out/dev", {
        "config.json": config, "manifest.json": b'{"version": 2}\n'})]) == [
        "out/dev/manifest.json"]
    after = there.stat()
    assert there.read_bytes() == config
    assert (tmp_path / "out/dev/manifest.json").read_bytes() == b'{"version": 2}\n'
    assert (stat.S_IMODE(after.st_mode), after.st_nlink) == (0o644, 1)
    assert (after.st_ino == before.st_ino) == (other == "none")
    assert (config in written) == (other != "none")
    assert sorted(os.listdir(tmp_path / "out")) == ["dev"]


def test_a_changed_file_is_read_only_up_to_its_first_difference(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rebuild compares each file it would write with the one there: one of another
    size is not read at all, one that differs early is not read to its end (the 8 MB
    config.json of a one-file rebuild was read whole, twice), and one that differs only
    in its last byte is still found."""
    old = b"0123456789abcdef" * (1 << 18)  # 4 MB
    replace_directories(tmp_path, [DirectoryUpdate("out/dev", {"config.json": old})])
    real = os.read
    read: list[int] = []

    def counted(fd: int, n: int) -> bytes:
        data = real(fd, n)
        read.append(len(data))
        return data

    monkeypatch.setattr(os, "read", counted)
    for new, expected in [(b"X" + old[1:], ["out/dev/config.json"]),
                          (old + b"\n", ["out/dev/config.json"]),
                          (old[:-1] + b"X", ["out/dev/config.json"]), (old, [])]:
        read.clear()
        assert changed_entries(tmp_path, [DirectoryUpdate("out/dev", {"config.json": new})]
                               ) == expected
        if new[:1] == b"X":
            assert 0 < sum(read) <= 1 << 20
        elif len(new) != len(old):
            assert read == []
        else:
            assert sum(read) == len(old)


def test_a_changed_directory_is_read_to_its_big_difference_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before its lock, a replacement asks only whether a directory changed, and the
    small file that changes with any other (a manifest naming the config's digest) tells
    it; the big file is compared once, under the lock, for the paths reported."""
    old = b"0123456789abcdef" * (1 << 18)  # 4 MB
    files = {"config.json": old, "manifest.json": b'{"version": 1}\n'}
    replace_directories(tmp_path, [DirectoryUpdate("out/dev", files)])
    real = os.read
    read: list[int] = []

    def counted(fd: int, n: int) -> bytes:
        data = real(fd, n)
        read.append(len(data))
        return data

    monkeypatch.setattr(os, "read", counted)
    new = {"config.json": old[:-1] + b"X", "manifest.json": b'{"version": 2}\n'}
    assert replace_directories(tmp_path, [DirectoryUpdate("out/dev", new)]) == [
        "out/dev/config.json", "out/dev/manifest.json"]
    assert len(old) <= sum(read) < 2 * len(old)
    assert (tmp_path / "out/dev/config.json").read_bytes() == new["config.json"]
    read.clear()
    assert replace_directories(tmp_path, [DirectoryUpdate("out/dev", new)]) == []
    assert sum(read) == len(old) + len(new["manifest.json"])  # unchanged: read whole, once


@pytest.mark.parametrize("command", [["build"], ["diff", "dev", "prod"],
                                     ["explain", "magds.host", "--env", "prod"], ["lint"]])
def test_a_repository_s_fsmonitor_command_is_never_run(
        tmp_path: Path, command: list[str]) -> None:
    """git runs ``core.fsmonitor`` for a command that reads the index (``ls-files``),
    from the repository's own config: every command ran it, a command of whoever made
    the ``.git`` (a repository handed over whole, a runner's cache), and waited on it.
    magcfg's git reads the work tree itself."""
    import json
    import subprocess

    from .conftest import MINI_BASE, MINI_PROJECT, MINI_SCHEMA, Project

    project = Project(tmp_path / "proj")
    project.write("magcfg.yaml", MINI_PROJECT)
    project.write("schemas/schema.json", json.dumps(MINI_SCHEMA, indent=2))
    for rel, text in MINI_BASE.items():
        project.write(rel, text)
    ran = tmp_path / "ran"
    monitor = tmp_path / "monitor"
    monitor.write_text(f"#!/bin/sh\necho \"$@\" >> {ran}\n")
    monitor.chmod(0o755)
    for args in (["init", "-q"], ["add", "-A"],
                 ["-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "i"],
                 ["config", "core.fsmonitor", str(monitor)]):
        subprocess.run(["git", *args], cwd=project.root, check=True, capture_output=True)
    subprocess.run(["git", "status", "--porcelain"], cwd=project.root, check=True,
                   capture_output=True)
    assert ran.exists()  # git itself runs it
    ran.unlink()
    done = project.run(*command)
    assert "Traceback" not in done.stderr, done.stderr
    assert not ran.exists(), ran.read_text()


def test_a_git_that_hangs_reading_its_config_is_a_located_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """git reads its config at every command: an ``include.path`` that is a FIFO (a
    repository handed over whole) held ``git rev-parse --show-toplevel``, which every
    command asks first, and the command with it, for good."""
    import subprocess

    import magcfg.durable
    from magcfg.durable import git_root
    from magcfg.errors import BuildError

    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    fifo = tmp_path / "included"
    os.mkfifo(fifo)
    subprocess.run(["git", "config", "include.path", str(fifo)], cwd=tmp_path, check=True)
    monkeypatch.setattr(magcfg.durable, "GIT_ANSWER_SECONDS", 1)
    with pytest.raises(BuildError) as raised:
        git_root(tmp_path)
    assert raised.value.diagnostics[0].message == (
        "`git rev-parse --show-toplevel` gave no answer in 1 s: is something it reads, such "
        "as a config file git includes, a FIFO or on a mount that hangs? Fix what stops "
        "git, then run magcfg again")


def test_git_root_asks_once_per_directory_while_held(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Within ``git_tops_held`` each directory's top is asked of git once and answered
    again as git answered, a work tree or not, even after it changes; outside, git is
    asked every time."""
    import subprocess

    import magcfg.durable
    from magcfg.durable import git_root, git_tops_held

    plain, tree = tmp_path / "plain", tmp_path / "tree"
    plain.mkdir()
    tree.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=tree, check=True)
    asked = calls(monkeypatch, magcfg.durable, "_ask_git_root")
    with git_tops_held():
        with git_tops_held():
            assert [git_root(plain), git_root(tree)] == [None, tree]
        subprocess.run(["git", "init", "-q"], cwd=plain, check=True)
        assert [git_root(plain), git_root(tree), git_root(plain)] == [None, tree, None]
    assert asked == [plain, tree]
    assert git_root(plain) == git_root(plain) == plain
    assert asked == [plain, tree, plain, plain]


def _windows_name_of_each(path: str) -> str:
    return "/".join(part.rstrip(". ") or part for part in path.split("/"))


_NAME_LETTERS = "aAcCoOnNuUlLpPrRxX0129$¹é. \n\u200d"


def _a_name(device: str, cases: list[bool], spaces: int, rest: str) -> str:
    """``device`` in the case ``cases`` say, ``spaces`` after it, then ``rest``."""
    return "".join(c.lower() if lower else c for c, lower in zip(device, cases, strict=False)
                   ) + device[len(cases):] + " " * spaces + rest


_NAMES = st.one_of(
    st.text(_NAME_LETTERS, max_size=9),
    st.builds(_a_name, st.sampled_from(sorted(__import__("magcfg.durable").durable
                                              .WINDOWS_DEVICES)),
              st.lists(st.booleans(), max_size=6), st.integers(0, 2),
              st.text(_NAME_LETTERS, max_size=5)))


@given(st.lists(_NAMES, min_size=1, max_size=4).map("/".join))
@settings(max_examples=3000, deadline=None)
def test_a_paths_file_name_and_device_are_read_name_by_name(path: str) -> None:
    """``one_file_name`` and ``windows_device`` answer for a path of ASCII names alone
    (the names a build lists) as they do name by name for any: each name without its
    trailing dots and spaces, case folded (``é`` and a joiner take the general way), and
    the first name whose part before its first dot, trailing spaces aside, is a
    device's in any case."""
    import unicodedata

    from magcfg.durable import (
        _HFS_IGNORED,
        WINDOWS_DEVICES,
        _simple_fold,
        one_file_name,
        windows_device,
    )

    name = _windows_name_of_each(path).translate(_HFS_IGNORED)
    folded = name.lower() if name.isascii() else unicodedata.normalize(
        "NFC", "".join(map(_simple_fold, unicodedata.normalize("NFD", name))))
    if path.isascii() and "/" not in path:
        folded = (path.rstrip(". ") or path).lower()
    assert one_file_name(path) == folded
    device = next((part for part in path.split("/")
                   if part.split(".", 1)[0].rstrip(" ").upper() in WINDOWS_DEVICES), None)
    assert windows_device(path) == device


def test_git_is_not_asked_for_the_top_where_no_repository_can_be_found(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without ``GIT_DIR``, and with no ``.git`` or ``HEAD`` in a directory or above it,
    git finds no repository: ``git_root`` says so without starting git (~4 ms each
    time). Anything else is git's answer: a ``.git`` that is no repository, a
    ``GIT_DIR``, a work tree."""
    import subprocess

    from magcfg.durable import git_root, outside_any_repository

    below = tmp_path / "a" / "b"
    below.mkdir(parents=True)
    # Git looks in no directory of GIT_CEILING_DIRECTORIES nor above, wherever the
    # temporary directory is: what tmp_path holds is not looked at either.
    (tmp_path / "HEAD").write_text("ref: refs/heads/main\n")
    assert not outside_any_repository(below)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    assert outside_any_repository(below)
    asked = calls(monkeypatch, subprocess, "run", 0)
    assert git_root(below) is None and asked == []
    (tmp_path / "a" / ".git").write_text("gitdir: nowhere\n")
    assert git_root(below) is None and asked
    (tmp_path / "a" / ".git").unlink()
    asked.clear()
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "nowhere"))
    assert git_root(below) is None and asked
    monkeypatch.delenv("GIT_DIR")
    subprocess.run(["git", "init", "-q", str(tmp_path / "a")], check=True)
    asked.clear()
    assert git_root(below) == (tmp_path / "a").resolve() and asked


def test_a_file_the_operator_names_is_named_through_links_outside_the_checkout_only(
        tmp_path: Path) -> None:
    """A link a checkout commits is not followed (``ci`` -> ``evil`` names ``ci/...``);
    one outside it, the operator's, is; a name that leaves the checkout is none."""
    checkout = tmp_path / "checkout"
    (checkout / "evil").mkdir(parents=True)
    (checkout / "ci").symlink_to("evil")
    (checkout / "up").symlink_to("..")
    (tmp_path / "via").symlink_to(checkout / "evil")
    top = str(checkout)
    assert operator_name_in_checkout(checkout / "ci" / "b.json", top) == "ci/b.json"
    assert operator_name_in_checkout(checkout / "up" / "x" / "b.json", top) == "up/x/b.json"
    assert operator_name_in_checkout(tmp_path / "via" / "b.json", top) == "evil/b.json"
    assert operator_name_in_checkout(checkout / "ci" / ".." / "b.json", top) == "b.json"
    assert operator_name_in_checkout(checkout / ".." / "b.json", top) is None
    assert operator_name_in_checkout(tmp_path / "b.json", top) is None


def test_the_operator_s_directory_is_the_shell_s_name_of_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``$PWD`` where it names the working directory, through a link the checkout holds
    that stays in it; the kernel's name where it is stale or spelt with ``..``; a link
    the checkout (or one nested in it) holds leading out of it, or into its ``.git``, is
    refused, naming it; the operator's own links, above the checkout or that it does not
    hold, are followed."""
    checkout = tmp_path / "checkout"
    (checkout / "evil" / "deep").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(checkout)], check=True)
    (checkout / "svc").symlink_to("evil")
    (checkout / "out").symlink_to(tmp_path)
    (checkout / "mine").symlink_to(tmp_path)
    (checkout / "git").symlink_to(".git")
    (checkout / "nested").mkdir()
    subprocess.run(["git", "init", "-q", str(checkout / "nested")], check=True)
    (checkout / "nested" / "up").symlink_to("..")
    subprocess.run(["git", "add", "svc", "out", "git"], cwd=checkout, check=True)
    subprocess.run(["git", "add", "up"], cwd=checkout / "nested", check=True)
    (tmp_path / "home").symlink_to(checkout)
    monkeypatch.chdir(checkout / "svc")
    for named, found in [(checkout / "svc", checkout / "svc"),
                         (tmp_path / "home" / "svc", tmp_path / "home" / "svc"),
                         (checkout / "evil", checkout / "evil"),
                         (checkout / "evil" / "deep", checkout / "evil"),
                         (checkout / "evil" / "deep" / "..", checkout / "evil"),
                         (checkout / "mine" / "checkout" / "svc",
                          checkout / "mine" / "checkout" / "svc")]:
        monkeypatch.setenv("PWD", str(named))
        assert operator_cwd() == found
    monkeypatch.delenv("PWD")
    assert operator_cwd() == checkout / "evil"
    for where, link in [(checkout / "out", "out"), (checkout / "git", "git"),
                        (checkout / "nested" / "up", "up"),
                        (tmp_path / "home" / "out" / "checkout" / "out", "out")]:
        monkeypatch.chdir(where)
        monkeypatch.setenv("PWD", str(where))
        with pytest.raises(PathError) as raised:
            operator_cwd()
        assert [d.file for d in raised.value.diagnostics] == [link]
