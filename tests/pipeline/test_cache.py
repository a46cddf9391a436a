"""The build cache can never steer the output: whatever is in ``.magcfg-cache/``
(corrupted, truncated, forged with another key, entries moved, symlinks), a build
behaves exactly as with no cache; a failed build or a fixed layer leaves no literal
secret in it; the key lives outside the repository."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import magcfg
import magcfg.pipeline.emit
from magcfg.errors import BuildError
from magcfg.pipeline.cache import KEY_FILE_NAME, MAX_PACKS, NO_CACHE_ENV, BuildCache

from ..conftest import Project, calls, failed_cleanly, tree_state

CACHE = ".magcfg-cache"
CANARY = "CANARY-5e1f-c0ffee"


@pytest.fixture
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """$XDG_STATE_HOME of this test (the key lives in <it>/magcfg/cache.key)."""
    home = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(home))
    monkeypatch.delenv(NO_CACHE_ENV, raising=False)
    return home


def load(project: Project) -> magcfg.Project:
    return magcfg.load_project(project.root / "magcfg.yaml")


def cache_files(project: Project) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((project.root / CACHE).iterdir())}


def restore(project: Project, files: dict[str, bytes]) -> None:
    cache = project.root / CACHE
    for p in cache.iterdir():
        p.unlink()
    for name, data in files.items():
        (cache / name).write_bytes(data)


def assert_like_no_cache(project: Project, reference: dict[str, str]) -> None:
    """A build with the cache as it is: no error, nothing stale, the same bytes as the
    build without a cache that made ``reference``."""
    result = magcfg.build(load(project), check=True)
    assert result.stale == []
    assert project.snapshot_tree() == reference


def counting_fragments(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Top-level keys serialized (that is: compiled, not taken from the cache)."""
    calls: list[str] = []
    real = magcfg.pipeline.emit.fragment_bytes

    def counted(key: str, value: Any) -> bytes:
        calls.append(key)
        return real(key, value)

    monkeypatch.setattr(magcfg.pipeline.emit, "fragment_bytes", counted)
    return calls


def warm(project: Project) -> dict[str, str]:
    """Build with no cache (the reference output), then once more to fill the cache."""
    magcfg.build(load(project), cache=BuildCache(None))
    reference = project.snapshot_tree()
    magcfg.build(load(project))
    assert (project.root / CACHE / "index.bin").is_file()
    return reference


# ------------------------------------------------------------------ the reported case


def test_same_length_value_swap_in_a_pack_is_a_miss(bundled: Project, state_home: Path) -> None:
    """`"max_size": 4` changed to 7 inside a pack and an unrelated layer touched: the
    build exits 0 and writes 4, as the layers say."""
    assert bundled.run("build", "-q").returncode == 0
    reference = bundled.snapshot_tree()
    swapped = 0
    for pack in (bundled.root / CACHE).glob("pack-*.bin"):
        data = pack.read_bytes()
        swapped += data.count(b'"max_size": 4')
        pack.write_bytes(data.replace(b'"max_size": 4', b'"max_size": 7'))
    assert swapped >= 1
    kernel = bundled.root / "layers/base/kernel.yaml"
    kernel.write_text(kernel.read_text() + "# touched\n")
    done = bundled.run("build", "-q")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    config = json.loads((bundled.root / "generated/dev/config.json").read_bytes())
    assert config["magds"]["pool"]["max_size"] == 4
    after = bundled.snapshot_tree()
    assert after["dev/config.json"] == reference["dev/config.json"]


# ------------------------------------------------------------------ corruption


def test_random_corruptions_of_packs_and_index_are_plain_misses(mini: Project,
                                                                state_home: Path) -> None:
    reference = warm(mini)
    # A second pack: a one-file change built, then undone in the layers only.
    original = (mini.root / "layers/environments/dev/magds.yaml").read_text()
    mini.write("layers/environments/dev/magds.yaml", "magds:\n  host: elsewhere\n")
    magcfg.build(load(mini), check=True)
    mini.write("layers/environments/dev/magds.yaml", original)
    pristine = cache_files(mini)
    assert len([n for n in pristine if n.startswith("pack-")]) == 2
    rng = random.Random(20240611)
    names = sorted(pristine)
    for _ in range(200):
        name = rng.choice(names)
        data = bytearray(pristine[name])
        at = rng.randrange(len(data))
        for i in range(at, min(at + rng.randint(1, 3), len(data))):
            data[i] ^= rng.randint(1, 255)
        restore(mini, pristine)
        if rng.random() < 0.5:  # edited in place (same inode) or replaced
            with (mini.root / CACHE / name).open("r+b") as fh:
                fh.write(bytes(data))
        else:
            (mini.root / CACHE / name).unlink()
            (mini.root / CACHE / name).write_bytes(bytes(data))
        assert_like_no_cache(mini, reference)


def test_random_in_place_corruptions_of_our_own_packs_are_plain_misses(
        mini: Project, state_home: Path) -> None:
    """Packs this user wrote (not hashed again while unchanged), corrupted in place with
    their modification time put back."""
    reference = warm(mini)
    rng = random.Random(20240612)
    for _ in range(60):
        for path in (mini.root / CACHE).iterdir():
            path.unlink()
        magcfg.build(load(mini), check=True)  # a fresh cache of our own
        (pack,) = (mini.root / CACHE).glob("pack-*.bin")
        st = pack.stat()
        data = bytearray(pack.read_bytes())
        at = rng.randrange(len(data))
        for i in range(at, min(at + rng.randint(1, 3), len(data))):
            data[i] ^= rng.randint(1, 255)
        with pack.open("r+b") as fh:
            fh.write(bytes(data))
        os.utime(pack, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert_like_no_cache(mini, reference)


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage", "missing"])
@pytest.mark.parametrize("which", ["index.bin", "pack-*.bin"])
def test_damaged_index_or_pack_is_a_miss(mini: Project, state_home: Path, damage: str,
                                         which: str) -> None:
    reference = warm(mini)
    for path in (mini.root / CACHE).glob(which):
        data = path.read_bytes()
        if damage == "missing":
            path.unlink()
        else:
            path.write_bytes({"empty": b"", "truncated": data[: len(data) // 2],
                              "garbage": random.Random(7).randbytes(len(data))}[damage])
    assert_like_no_cache(mini, reference)
    assert_like_no_cache(mini, reference)  # and after that build rewrote the cache


def test_huge_planted_index_is_not_read(mini: Project, state_home: Path) -> None:
    reference = warm(mini)
    index = mini.root / CACHE / "index.bin"
    with index.open("r+b") as fh:
        fh.truncate(1 << 40)  # sparse: a terabyte on paper
    assert_like_no_cache(mini, reference)
    assert index.stat().st_size < 1 << 20


def test_cache_path_that_is_a_file_is_refused_and_left_alone(mini: Project,
                                                             state_home: Path) -> None:
    magcfg.build(load(mini), cache=BuildCache(None))
    (mini.root / CACHE).write_bytes(b"not a directory")
    before = tree_state(mini.root)
    stderr = failed_cleanly(mini.run("build"), 1)
    assert stderr == ("magcfg.yaml: error: cache (not set: the default .magcfg-cache) must "
                      "be a directory of its own inside the project for the build cache: "
                      ".magcfg-cache is a file; magcfg writes into a directory here [cache]\n")
    assert tree_state(mini.root) == before


def test_corrupt_pack_is_recompiled_and_the_cache_repaired(mini: Project, state_home: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    reference = warm(mini)
    compiled = counting_fragments(monkeypatch)
    magcfg.build(load(mini), check=True)
    assert compiled == []  # everything from the cache
    for pack in (mini.root / CACHE).glob("pack-*.bin"):
        pack.write_bytes(pack.read_bytes().replace(b'"host": "localhost"', b'"host": "evilhost1"'))
    assert_like_no_cache(mini, reference)
    assert compiled == ["magds"]  # the tampered fragment (dev) was compiled again
    compiled.clear()
    assert_like_no_cache(mini, reference)
    assert compiled == []


def counting_entry_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Lookup keys whose tag was computed (checked on read, or made on write)."""
    checked: list[str] = []
    real = BuildCache._tag

    def counted(self: BuildCache, kind: bytes, name: str, *rest: Any) -> bytes:
        if kind == b"E":
            checked.append(name)
        return real(self, kind, name, *rest)

    monkeypatch.setattr(BuildCache, "_tag", counted)
    return checked


def test_pack_edited_in_place_with_its_times_restored_is_checked(
        mini: Project, state_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pack this user wrote and nobody changed is not hashed again; the same bytes
    edited in place, even with the modification time put back, are (the change time
    moved), and the edit is a miss."""
    reference = warm(mini)
    checked = counting_entry_checks(monkeypatch)
    assert_like_no_cache(mini, reference)
    assert checked == []
    (pack,) = (mini.root / CACHE).glob("pack-*.bin")
    st = pack.stat()
    with pack.open("r+b") as fh:
        data = fh.read()
        at = data.index(b'"host": "localhost"')
        fh.seek(at)
        fh.write(b'"host": "evilhost1"')
    os.utime(pack, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (pack.stat().st_ino, pack.stat().st_size) == (st.st_ino, st.st_size)
    compiled = counting_fragments(monkeypatch)
    assert_like_no_cache(mini, reference)
    assert checked and compiled == ["magds"]


def test_fragments_of_our_own_packs_are_joined_from_the_mapped_pack(
        mini: Project, state_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rebuild copies a cached fragment of a pack this user wrote once, into its
    config.json, from the pack mapped into memory: no read into a copy of its own. A
    copied pack's (not provably ours) are read and checked as before; both build the
    bytes a build without a cache builds."""
    reference = warm(mini)
    real = os.pread
    read: list[bytes] = []

    def counted(fd: int, n: int, offset: int) -> bytes:
        data = real(fd, n, offset)
        read.append(data)
        return data

    monkeypatch.setattr(os, "pread", counted)
    compiled = counting_fragments(monkeypatch)
    for host, copied in (("edited", False), ("again", True)):
        if copied:  # other inodes: not provably ours, every entry read is checked
            restore(mini, cache_files(mini))
        mini.write("layers/environments/dev/magds.yaml", f"magds:\n  host: {host}\n")
        magcfg.build(load(mini), cache=BuildCache(None))
        reference = mini.snapshot_tree()
        compiled.clear()
        read.clear()
        magcfg.build(load(mini))
        assert compiled == ["magds"]  # dev's; prod's and both logging fragments cached
        assert bool([data for data in read if b'"logging":' in data]) == copied
        assert_like_no_cache(mini, reference)


def test_every_entry_of_our_own_packs_is_read_from_the_mapped_pack(
        mini: Project, state_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rebuild takes each entry of a pack this user wrote (the fragments, the results
    cached with each of them, the config's digest) from the pack mapped into memory,
    with no read of its own: thousands of look-ups in a large repository. A copied
    pack's entries are read and checked; the cached results are hits either way."""
    reference = warm(mini)
    real_pread = os.pread
    read: list[int] = []

    def counted(fd: int, n: int, offset: int) -> bytes:
        read.append(n)
        return real_pread(fd, n, offset)

    monkeypatch.setattr(os, "pread", counted)
    real_put = BuildCache.put_fragment
    computed: list[str] = []

    def put(self: BuildCache, key: str, value: Any) -> None:
        computed.append(key.partition(":")[0])
        real_put(self, key, value)

    monkeypatch.setattr(BuildCache, "put_fragment", put)
    for copied in (False, True):
        if copied:  # other inodes: not provably ours, every entry read is checked
            restore(mini, cache_files(mini))
        read.clear()
        computed.clear()
        assert_like_no_cache(mini, reference)
        assert bool(read) == copied
        assert "secret-scan" not in computed  # each fragment's scan was cached


def test_cache_copied_elsewhere_is_checked_entry_by_entry(
        mini: Project, state_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A restored CI cache: the same files, copied (new inodes). Every entry read is
    checked, and all of them are still hits."""
    reference = warm(mini)
    restore(mini, cache_files(mini))
    checked = counting_entry_checks(monkeypatch)
    compiled = counting_fragments(monkeypatch)
    assert_like_no_cache(mini, reference)
    assert compiled == [] and len(checked) >= 4


# ------------------------------------------------------------------ forgery


def test_foreign_cache_made_with_another_key_is_a_miss(mini: Project, state_home: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    """A cache planted by someone with a key of their own (a pull request's CI job, a
    committed .magcfg-cache/): well-formed, every tag valid under *their* key, and the
    pool size poisoned. It steers a build with their key, never one with ours."""
    reference = warm(mini)
    attacker_key = tmp_path / "attacker" / KEY_FILE_NAME
    real = magcfg.pipeline.emit.fragment_bytes

    def poisoned(key: str, value: Any) -> bytes:
        return real(key, value).replace(b'"max": 5', b'"max": 7')

    with monkeypatch.context() as patch:
        patch.setattr(magcfg.pipeline.emit, "fragment_bytes", poisoned)
        magcfg.build(load(mini), check=True,
                     cache=BuildCache(mini.root / CACHE, attacker_key))
    # The poisoned cache would steer a build that trusts the attacker's key ...
    steered = magcfg.build(load(mini), check=True,
                           cache=BuildCache(mini.root / CACHE, attacker_key))
    assert steered.artifacts["dev"].config["magds"]["pool"]["max"] == 7
    # ... and is a plain miss for ours.
    assert_like_no_cache(mini, reference)
    ours = magcfg.build(load(mini), check=True)
    assert ours.artifacts["dev"].config["magds"]["pool"]["max"] == 5


def test_valid_entry_moved_under_another_key_is_a_miss(mini: Project, state_home: Path) -> None:
    """The dev and prod ``logging`` fragments have the same length: swapping their bytes
    in the pack (both tags valid under our key) must not swap the outputs."""
    reference = warm(mini)
    key_file = state_home / "magcfg" / KEY_FILE_NAME
    reader = BuildCache(mini.root / CACHE, key_file)
    reader.layer_keys("")  # loads the index
    located: dict[bytes, tuple[str, int, int]] = {}
    for name, (pack, offset, head, body) in reader._locations.items():  # as an attacker sees them
        found = reader.serialized(name.removeprefix("s-"))
        if found is not None and found[0] in (b'  "logging": {\n    "level": "info"\n  }',
                                              b'  "logging": {\n    "level": "warn"\n  }'):
            located[found[0]] = (pack, offset, 32 + head + body)
    reader.close()
    assert len(located) == 2
    (pack_a, off_a, len_a), (pack_b, off_b, len_b) = located.values()
    assert pack_a == pack_b and len_a == len_b
    path = mini.root / CACHE / pack_a
    data = bytearray(path.read_bytes())
    entry_a, entry_b = data[off_a:off_a + len_a], data[off_b:off_b + len_b]
    data[off_a:off_a + len_a], data[off_b:off_b + len_b] = entry_b, entry_a
    path.write_bytes(bytes(data))
    assert_like_no_cache(mini, reference)
    result = magcfg.build(load(mini), check=True)
    assert result.artifacts["dev"].config["logging"] == {"level": "info"}


def test_a_planted_pack_is_deleted_and_never_read(mini: Project, state_home: Path) -> None:
    reference = warm(mini)
    planted = mini.root / CACHE / ("pack-" + "0" * 20 + ".bin")
    planted.write_bytes(b"anything")
    mini.write("layers/environments/dev/magds.yaml", "magds:\n  host: elsewhere\n")
    magcfg.build(load(mini))
    assert not planted.exists()
    mini.write("layers/environments/dev/magds.yaml", "magds:\n  host: localhost\n")
    magcfg.build(load(mini))
    after = mini.snapshot_tree()
    assert [after[f"{env}/config.json"] for env in ("dev", "prod")] == \
        [reference[f"{env}/config.json"] for env in ("dev", "prod")]


# ------------------------------------------------------------------ symlinks


def test_symlinked_pack_and_index_are_not_followed(mini: Project, state_home: Path,
                                                   tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Valid copies of the index and a pack outside the repository, linked into the
    cache: neither is read (everything is compiled) nor written through."""
    reference = warm(mini)
    outside = tmp_path / "outside"
    outside.mkdir()
    for path in sorted((mini.root / CACHE).glob("*.bin")):
        (outside / path.name).write_bytes(path.read_bytes())
        path.unlink()
        path.symlink_to(outside / path.name)
    before = tree_state(outside)
    compiled = counting_fragments(monkeypatch)
    assert_like_no_cache(mini, reference)
    assert sorted(set(compiled)) == ["logging", "magds"]
    assert tree_state(outside) == before
    assert not any(p.is_symlink() for p in (mini.root / CACHE).iterdir())
    compiled.clear()
    assert_like_no_cache(mini, reference)
    assert compiled == []  # the cache written in their place is a real one


def test_symlinked_cache_directory_is_neither_read_nor_written(tmp_path: Path) -> None:
    key = tmp_path / "state" / KEY_FILE_NAME
    outside = tmp_path / "outside"
    writer = BuildCache(outside, key)
    writer.put_fragment("k", "value")
    writer.flush()
    writer.close()
    assert BuildCache(outside, key).fragment("k") == "value"
    link = tmp_path / "repo" / CACHE
    link.parent.mkdir()
    link.symlink_to(outside)
    before = tree_state(outside)
    through_link = BuildCache(link, key)
    assert through_link.fragment("k") is None
    through_link.put_fragment("k2", "other")
    through_link.flush()
    through_link.close()
    assert tree_state(outside) == before


def test_fifo_in_place_of_the_index_is_not_opened_for_real(mini: Project, state_home: Path) -> None:
    reference = warm(mini)
    index = mini.root / CACHE / "index.bin"
    index.unlink()
    os.mkfifo(index)
    assert_like_no_cache(mini, reference)  # would block forever on a FIFO
    assert stat.S_ISREG(index.lstat().st_mode)


# ------------------------------------------------------------------ secrets


SECRET_PROJECT_LAYER = "magds:\n  password: {value}\n"


def test_failed_build_leaves_no_literal_secret_in_the_cache(mini: Project, state_home: Path) -> None:
    warm(mini)
    cache_before = tree_state(mini.root / CACHE)
    outside_before = tree_state(state_home)
    mini.write("layers/environments/dev/secret.yaml", SECRET_PROJECT_LAYER.format(value=CANARY))
    done = mini.run("build")
    err = failed_cleanly(done, 1)
    assert "layers/environments/dev/secret.yaml:2: error:" in err
    assert "[magds.password]" in err
    assert CANARY not in done.stdout + done.stderr
    assert tree_state(mini.root / CACHE) == cache_before  # a failed build writes nothing
    assert tree_state(state_home) == outside_before
    mini.write("layers/environments/dev/secret.yaml",
               SECRET_PROJECT_LAYER.format(value='"vault://secret/k3s/magds#password"'))
    assert mini.run("build").returncode == 0
    assert_no_canary(mini.root / CACHE)


def test_overridden_literal_secret_never_reaches_the_cache(mini: Project, state_home: Path) -> None:
    """A literal in a lower layer that a higher one overrides with a reference: the build
    fails at the literal (it is committed, though no output would hold it), and the
    literal is in no cache file, before or after the layer is fixed."""
    mini.write("layers/base/secret.yaml", SECRET_PROJECT_LAYER.format(value=CANARY))
    for env in ("dev", "prod"):  # each environment its own path: one Vault, isolated
        mini.write(f"layers/environments/{env}/secret.yaml",
                   SECRET_PROJECT_LAYER.format(value=f'"vault://secret/k3s/{env}/magds#password"'))
    done = mini.run("build")
    assert failed_cleanly(done, 1) == (
        "layers/base/secret.yaml:2: error: a secret key holds a literal value: write a "
        "reference instead (vault://<mount>/<path>#<key> or env://VAR); the value is not "
        "shown (a higher layer overrides it, but the literal is committed here) "
        "(environments dev, prod) [magds.password]\n")
    assert CANARY not in done.stdout + done.stderr
    assert not (mini.root / CACHE).exists()  # a failed build writes no cache
    (mini.root / "layers/base/secret.yaml").unlink()
    assert mini.run("build").returncode == 0
    assert_no_canary(mini.root / CACHE)


def test_a_fragment_cached_without_a_check_is_not_taken_as_checked(mini: Project,
                                                                   state_home: Path) -> None:
    """A compiler that runs fewer fragment checks (an older magcfg) caches fragments that
    did not pass the layer-literal check: a build that runs it does not reuse them."""
    from magcfg.compiler import Compiler, standard_extensions

    mini.write("layers/base/secret.yaml", SECRET_PROJECT_LAYER.format(value=CANARY))
    for env in ("dev", "prod"):
        mini.write(f"layers/environments/{env}/secret.yaml",
                   SECRET_PROJECT_LAYER.format(value=f'"vault://secret/k3s/{env}/magds#password"'))
    project = load(mini)
    older = Compiler(project, extensions=standard_extensions()._replace(fragment_checks=()))
    stacks = older.load_stacks(project.environments)
    for env in project.environments:
        artifact, diagnostics = older.compile(env, stacks[env], None)
        assert artifact is not None, diagnostics
    older.cache.flush()
    assert (mini.root / CACHE).is_dir()
    done = mini.run("build")
    assert "layers/base/secret.yaml:2: error: a secret key holds a literal value" in \
        failed_cleanly(done, 1)


def assert_no_canary(directory: Path) -> None:
    files = [p for p in directory.rglob("*") if p.is_file()]
    assert files
    for path in files:
        assert CANARY.encode() not in path.read_bytes(), path


def test_failed_build_creates_no_key_and_no_cache(mini: Project, state_home: Path) -> None:
    mini.write("layers/environments/dev/bad.yaml", "magds:\n  port: [\n")
    done = mini.run("build")
    failed_cleanly(done, 1)
    assert not (mini.root / CACHE).exists()
    assert not state_home.exists()


# ------------------------------------------------------------------ determinism, opt-out


def test_warm_cold_and_no_cache_builds_are_byte_identical(mini: Project, state_home: Path) -> None:
    assert mini.run("build", env={NO_CACHE_ENV: "1"}).returncode == 0
    no_cache = mini.snapshot_tree()
    assert not (mini.root / CACHE).exists()
    assert not state_home.exists()
    for _ in range(2):  # cold cache, then warm
        for env in ("dev", "prod"):
            for path in (mini.root / "generated" / env).iterdir():
                path.unlink()
        assert mini.run("build").returncode == 0
        assert mini.snapshot_tree() == no_cache
    assert (mini.root / CACHE / "index.bin").is_file()


def test_no_cache_env_reads_no_cache(mini: Project, state_home: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    warm(mini)
    before = tree_state(mini.root / CACHE)
    monkeypatch.setenv(NO_CACHE_ENV, "1")
    compiled = counting_fragments(monkeypatch)
    magcfg.build(load(mini))
    assert sorted(set(compiled)) == ["logging", "magds"]
    assert tree_state(mini.root / CACHE) == before


# ------------------------------------------------------------------ the key


def test_key_is_created_private_outside_the_repository(mini: Project, state_home: Path) -> None:
    assert mini.run("build").returncode == 0
    key = state_home / "magcfg" / KEY_FILE_NAME
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    assert key.stat().st_size == 32
    first = key.read_bytes()
    assert mini.run("build").returncode == 0
    assert key.read_bytes() == first


@pytest.mark.parametrize("problem", ["readable by others", "symlink", "wrong length"])
def test_unusable_key_means_no_cache_on_disk(mini: Project, state_home: Path, tmp_path: Path,
                                             problem: str) -> None:
    key = state_home / "magcfg" / KEY_FILE_NAME
    key.parent.mkdir(parents=True)
    if problem == "symlink":
        target = tmp_path / "elsewhere.key"
        target.write_bytes(b"k" * 32)
        target.chmod(0o600)
        key.symlink_to(target)
    else:
        key.write_bytes(b"k" * (32 if problem == "readable by others" else 31))
        key.chmod(0o644 if problem == "readable by others" else 0o600)
    before = tree_state(tmp_path / "state")
    done = mini.run("build")
    assert done.returncode == 0, done.stderr
    assert not (mini.root / CACHE).exists()
    assert tree_state(tmp_path / "state") == before


def test_key_location_inside_the_repository_is_not_used(mini: Project,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """$XDG_STATE_HOME (or $HOME) inside the checkout: a key there could be committed."""
    monkeypatch.setenv("XDG_STATE_HOME", str(mini.root / ".state"))
    assert mini.run("build").returncode == 0
    assert not (mini.root / ".state").exists()
    assert not (mini.root / CACHE).exists()


# ------------------------------------------------------------------ housekeeping


def test_packs_are_compacted(mini: Project, state_home: Path) -> None:
    for i in range(MAX_PACKS + 3):
        mini.write("layers/environments/dev/magds.yaml", f"magds:\n  port: {6000 + i}\n")
        magcfg.build(load(mini))
        assert len(list((mini.root / CACHE).glob("pack-*.bin"))) <= MAX_PACKS
    reference = mini.snapshot_tree()
    magcfg.build(load(mini), cache=BuildCache(None), check=True)
    assert_like_no_cache(mini, reference)
    assert [p.name for p in (mini.root / CACHE).iterdir() if p.name.startswith(".")] == [
        ".gitignore"]


def test_git_ignores_the_cache_without_a_gitignore_entry(mini: Project, state_home: Path
                                                          ) -> None:
    """The cache directory ignores itself, so a user's repository never commits it."""
    subprocess.run(["git", "init", "-q"], cwd=mini.root, check=True)
    magcfg.build(load(mini))
    assert (mini.root / CACHE / ".gitignore").read_bytes().endswith(b"\n*\n")
    subprocess.run(["git", "add", "-A"], cwd=mini.root, check=True)
    tracked = subprocess.run(["git", "ls-files"], cwd=mini.root, check=True,
                             capture_output=True, text=True).stdout.split()
    assert "generated/dev/config.json" in tracked
    assert [p for p in tracked if p.startswith(CACHE)] == []


def test_compaction_copies_only_entries_that_still_check_out(tmp_path: Path) -> None:
    """An entry read from a pack that is not ours (a restored copy), then changed in
    that pack before the compaction copies it into a pack of ours: not copied."""
    directory, key = tmp_path / "repo" / CACHE, tmp_path / "state" / KEY_FILE_NAME
    for i in range(MAX_PACKS):
        cache = BuildCache(directory, key)
        cache.put_fragment(f"k{i}", f"value-{i}")
        cache.flush()
        cache.close()
    for path in directory.iterdir():  # copied back: new inodes, checked entry by entry
        data = path.read_bytes()
        path.unlink()
        path.write_bytes(data)
    cache = BuildCache(directory, key)
    assert cache.fragment("k0") == "value-0"
    for path in directory.glob("pack-*.bin"):
        path.write_bytes(path.read_bytes().replace(b"value-0", b"forged-0"))
    cache.put_fragment("new", "entry")
    cache.flush()  # MAX_PACKS packs: compacts what this build used
    cache.close()
    assert len(list(directory.glob("pack-*.bin"))) == 1
    after = BuildCache(directory, key)
    assert after.fragment("new") == "entry"
    assert after.fragment("k0") is None


def test_compaction_keeps_the_largest_pack_while_the_build_used_most_of_it(
        tmp_path: Path) -> None:
    """The fragments of a cold build, then small packs of one build each: the compaction
    copies what the build used of the small packs and leaves the large pack as it is
    (rewriting it cost as much as the whole cache, once every MAX_PACKS builds). Once a
    build uses less than half of it, it is compacted with the rest."""
    directory, key = tmp_path / "repo" / CACHE, tmp_path / "state" / KEY_FILE_NAME
    big = [f"fragment-{i}" for i in range(100)]
    cache = BuildCache(directory, key)
    for name in big:
        cache.put_serialized(name, name.encode() * 100, None)
    cache.flush()
    cache.close()
    (large,) = directory.glob("pack-*.bin")
    inode = large.stat().st_ino
    for i in range(MAX_PACKS):  # the last one compacts
        cache = BuildCache(directory, key)
        assert all(cache.serialized(name) is not None for name in big)
        assert i < 2 or cache.fragment(f"k{i - 1}") == i - 1  # used: kept
        cache.put_fragment(f"k{i}", i)
        cache.flush()
        cache.close()
    packs = sorted(directory.glob("pack-*.bin"))
    assert len(packs) == 2 and large in packs and large.stat().st_ino == inode
    cache = BuildCache(directory, key)
    assert cache.fragment("k0") is None  # unused by the compacting build: dropped
    assert [cache.fragment(f"k{i}") for i in range(MAX_PACKS - 2, MAX_PACKS)] == [
        MAX_PACKS - 2, MAX_PACKS - 1]
    for i in range(MAX_PACKS):  # builds that use a third of it
        assert all(cache.serialized(name) is not None for name in big[:33])
        cache.put_fragment(f"m{i}", i)
        cache.flush()
        cache.close()
        cache = BuildCache(directory, key)
    assert not large.exists()
    assert all(cache.serialized(name) is not None for name in big[:33])
    assert cache.serialized(big[50]) is None


def test_build_error_is_the_same_with_a_cache(mini: Project, state_home: Path) -> None:
    warm(mini)
    mini.write("layers/environments/prod/magds.yaml", "magds:\n  port: 70000\n")
    errors: list[list[str]] = []
    caches: list[Callable[[], BuildCache | None]] = [lambda: BuildCache(None), lambda: None]
    for make in caches:
        with pytest.raises(BuildError) as exc:
            magcfg.build(load(mini), check=True, cache=make())
        errors.append([d.format() for d in exc.value.diagnostics])
    assert errors[0] == errors[1]
    assert "layers/environments/prod/magds.yaml:2" in errors[0][0]


def test_flush_of_only_some_entries_writes_those_and_never_compacts(tmp_path: Path) -> None:
    """What ``magcfg diff`` keeps (key lines): only the named entries are written, and
    at ``MAX_PACKS`` packs nothing is, so that no entry a build uses is compacted away."""
    directory, key = tmp_path / "repo" / CACHE, tmp_path / "state" / KEY_FILE_NAME
    cache = BuildCache(directory, key)
    cache.put_fragment("kept-1", "line index")
    cache.put_fragment("fragment", "a value only a build may store")
    cache.flush(only="kept-")
    cache.close()
    after = BuildCache(directory, key)
    assert after.fragment("kept-1") == "line index"
    assert after.fragment("fragment") is None
    after.close()
    for i in range(MAX_PACKS - 1):
        cache = BuildCache(directory, key)
        cache.put_fragment(f"k{i}", f"value-{i}")
        cache.flush()
        cache.close()
    packs = sorted(directory.glob("pack-*.bin"))
    assert len(packs) == MAX_PACKS
    cache = BuildCache(directory, key)
    cache.put_fragment("kept-2", "another index")
    cache.flush(only="kept-")
    cache.close()
    assert sorted(directory.glob("pack-*.bin")) == packs
    after = BuildCache(directory, key)
    assert [after.fragment(f"k{i}") for i in range(MAX_PACKS - 1)] == [
        f"value-{i}" for i in range(MAX_PACKS - 1)]
    assert after.fragment("kept-2") is None


def test_config_digest_of_cached_fragments_comes_from_the_cache(
        mini: Project, state_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A build whose fragments are all cached takes config.json's digest from the cache
    (it does not hash the config again), and every manifest names the digest of the
    config.json next to it: after an edit, and after the edit is undone."""

    def manifest_names_its_config() -> None:
        for env in ("dev", "prod"):
            out = mini.root / "generated" / env
            manifest = json.loads((out / "manifest.json").read_text())
            digest = "sha256:" + hashlib.sha256((out / "config.json").read_bytes()).hexdigest()
            assert manifest["config_digest"] == manifest["files"]["config.json"] == digest

    magcfg.build(load(mini))
    manifest_names_its_config()
    original = (mini.root / "layers/environments/dev/magds.yaml").read_text()
    mini.write("layers/environments/dev/magds.yaml", "magds:\n  host: edited\n")
    magcfg.build(load(mini))
    manifest_names_its_config()
    mini.write("layers/environments/dev/magds.yaml", original)
    hashed = calls(monkeypatch, magcfg.pipeline.emit, "sha256")
    magcfg.build(load(mini))
    manifest_names_its_config()
    configs = [(mini.root / "generated" / env / "config.json").read_bytes()
               for env in ("dev", "prod")]
    assert not [data for data in hashed if data in configs]
    # Without the cache's entries, the digest is computed, and is the same.
    shutil.rmtree(mini.root / CACHE)
    magcfg.build(load(mini))
    assert sorted(hashed) == sorted(configs)
    manifest_names_its_config()


def test_a_config_joined_from_the_same_fragment_bytes_is_not_hashed_again(
        mini: Project, state_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An edit that changes no value (a comment) merges the fragments of the keys its
    file sets again, into the bytes they held: config.json's digest is the one the cache
    keeps under the digests of its fragments' bytes, not hashed again, and every
    manifest names the digest of the config beside it, as a build without a cache."""
    magcfg.build(load(mini))
    hashed = calls(monkeypatch, magcfg.pipeline.emit, "sha256")
    compiled = counting_fragments(monkeypatch)
    rel = "layers/base/magds.yaml"
    mini.write(rel, (mini.root / rel).read_text() + "# a comment, no value\n")
    magcfg.build(load(mini))
    assert compiled == ["magds", "magds"]  # merged again, in both environments
    configs = {env: (mini.root / "generated" / env / "config.json").read_bytes()
               for env in ("dev", "prod")}
    assert not [data for data in hashed if data in configs.values()]
    for env, config in configs.items():
        manifest = json.loads((mini.root / "generated" / env / "manifest.json").read_text())
        assert manifest["files"]["config.json"] == (
            "sha256:" + hashlib.sha256(config).hexdigest())
    reference = mini.snapshot_tree()
    magcfg.build(load(mini), cache=BuildCache(None))
    assert mini.snapshot_tree() == reference


def test_a_file_digest_is_kept_only_for_a_file_that_held_still(tmp_path: Path) -> None:
    from magcfg.pipeline.cache import RACY_NS

    cache = BuildCache(None)
    path = tmp_path / "schema.json"
    path.write_bytes(b"{}")
    before = os.stat(path)
    settled = max(before.st_mtime_ns, before.st_ctime_ns) + RACY_NS + 1  # hashed after
    found = (hashlib.sha256(b"{}").hexdigest(), 2)
    # Changed less than RACY_NS before the hashing: a later write may keep its status.
    cache.put_file_sha256("schema.json", before, before, settled - 1, found)
    assert cache.file_sha256("schema.json", before) is None
    path.write_bytes(b"{ }")  # changed while it was hashed
    after = os.stat(path)
    cache.put_file_sha256("schema.json", before, after, settled, found)
    assert cache.file_sha256("schema.json", before) is None
    cache.put_file_sha256("schema.json", before, before, settled, found)
    assert cache.file_sha256("schema.json", before) == found
    assert cache.file_sha256("schema.json", after) is None  # another status
    assert cache.file_sha256("other.json", before) is None  # another path


def test_the_libraries_reached_through_a_symlink_are_the_same_libraries(
        tmp_path: Path) -> None:
    """One installation of the libraries, imported through a symlinked directory (a
    virtual environment whose path holds a link: the console script's interpreter
    named by one path, ``python -m magcfg`` run from another), salts the cache as it
    does imported where it is: the two commands read each other's entries."""
    import sys

    import yaml_rs

    site = Path(yaml_rs.__file__).resolve().parent.parent
    (tmp_path / "linked").symlink_to(site, target_is_directory=True)
    given = [os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []

    def salt(*first: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", "from magcfg.pipeline.cache import _SALT; print(_SALT)"],
            env={**os.environ, "PYTHONPATH": os.pathsep.join([*first, *given])},
            capture_output=True, text=True, timeout=60, check=True)
        return done.stdout

    assert salt(str(tmp_path / "linked")) == salt()


def test_a_cache_written_with_other_libraries_is_not_read(mini: Project, tmp_path: Path) -> None:
    """What the cache holds is what the libraries a build reads its inputs with made of
    them (yaml-rs, PyYAML, jsonschema-rs, orjson): with another version of one (here a
    yaml-rs that reads a host otherwise), the fragments and the record of the last build
    were taken, and build --check passed where a cold build writes other bytes."""
    import sys
    import time

    import yaml_rs

    shim = tmp_path / "shim"
    shutil.copytree(Path(yaml_rs.__file__).parent, shim / "yaml_rs",
                    ignore=shutil.ignore_patterns("__pycache__"))
    with (shim / "yaml_rs/__init__.py").open("a") as init:
        init.write("\n_loads = loads\n\n\ndef loads(text, **options):  # noqa\n"
                   "    return _loads(text.replace('localhost', 'elsewhere'), **options)\n")
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    env.pop(NO_CACHE_ENV, None)

    def run(*args: str, other: bool = False) -> subprocess.CompletedProcess[str]:
        given = [env["PYTHONPATH"]] if env.get("PYTHONPATH") else []
        path = os.pathsep.join([*([str(shim)] if other else []), *given])
        return subprocess.run([sys.executable, "-m", "magcfg", *args], cwd=mini.root,
                              env={**env, "PYTHONPATH": path}, capture_output=True,
                              text=True, timeout=120, check=False)

    for _ in range(2):  # the second numbers from the first's manifests, and records
        assert run("build").returncode == 0
    time.sleep(2.2)  # the outputs settle (cache.RACY_NS): the record is all that is read
    assert run("build", "--check").returncode == 0
    done = run("build", "--check", other=True)
    assert done.returncode == 1 and "stale: generated/dev/config.json" in done.stderr, \
        done.stderr
    assert run("build", other=True).returncode == 0
    assert b"elsewhere" in (mini.root / "generated/dev/config.json").read_bytes()
