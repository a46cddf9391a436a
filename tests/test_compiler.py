"""The build pipeline end to end: output format, determinism, --check, cache, versions."""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import magcfg
from magcfg.pipeline.cache import BuildCache

from .conftest import (
    MAGCFG,
    MINI_BASE,
    MINI_PROJECT,
    MINI_SCHEMA,
    REPO,
    Project,
    calls,
    dies_in_a_child,
    failed_cleanly,
    no_more_tasks,
    overridden_keyed_list,
)


def load(project: Project) -> magcfg.Project:
    return magcfg.load_project(project.root / "magcfg.yaml")


def test_config_json_format(mini: Project) -> None:
    magcfg.build(load(mini))
    raw = (mini.root / "generated/dev/config.json").read_bytes()
    data = json.loads(raw)
    assert raw == (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
    assert data == {"logging": {"level": "info"},
                    "magds": {"host": "localhost", "port": 5433, "pool": {"max": 5, "min": 1}}}


def test_a_stage_is_one_object_that_counts_its_outermost_hold(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``Timings.stage`` hands out one context per stage (a build of a large repository
    enters stages thousands of times: no generator is made per entry); held within
    itself it counts the outermost hold once, and a stage held inside another counts
    in both."""
    from magcfg import compiler as compiler_module

    timings = compiler_module.Timings()
    assert timings.stage("cache") is timings.stage("cache")
    clock = iter(range(100, 200))  # each reading of the clock a second later
    monkeypatch.setattr(compiler_module.time, "perf_counter", lambda: float(next(clock)))
    with timings.stage("cache"):  # 100 .. 103
        with timings.stage("cache"):
            pass
        with timings.stage("schema"):  # 101 .. 102
            pass
    with timings.stage("cache"):  # 104 .. 105
        pass
    with timings.stage("load"), timings.stage("load"), timings.stage("load"):  # 106 .. 107
        pass
    assert (timings.seconds["cache"], timings.seconds["schema"]) == (4.0, 1.0)
    assert timings.seconds["load"] == 1.0


def test_a_build_lists_each_layer_directory_once(mini: Project,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The base layer is one directory in every environment: a build lists it once (a
    walk of all the base files of a large repository per environment), and what a
    listing finds wrong is reported once."""
    from magcfg.pipeline.load import FileSource

    listed: list[str] = []
    real = FileSource.list_layer

    def counted(self: FileSource, directory: str, *rest: Any) -> Any:
        listed.append(directory)
        return real(self, directory, *rest)

    monkeypatch.setattr(FileSource, "list_layer", counted)
    magcfg.build(load(mini), cache=BuildCache(None))
    assert sorted(listed) == ["layers/base", "layers/environments/dev",
                              "layers/environments/prod"]
    outside = mini.root.parent / "outside.yaml"
    outside.write_text("magds:\n  host: elsewhere\n")
    os.symlink(outside, mini.root / "layers/base/outside.yaml")
    with pytest.raises(magcfg.BuildError) as failed:
        magcfg.build(load(mini), cache=BuildCache(None))
    assert [(d.file, d.message) for d in failed.value.diagnostics] == [
        ("layers/base/outside.yaml", "symlink leads outside the repository")]


def test_manifest_fields(mini: Project) -> None:
    magcfg.build(load(mini))
    out = mini.root / "generated/prod"
    manifest = json.loads((out / "manifest.json").read_bytes())
    import hashlib

    digest = "sha256:" + hashlib.sha256((out / "config.json").read_bytes()).hexdigest()
    assert manifest["files"] == {"config.json": digest}
    assert manifest["config_digest"] == digest
    assert manifest["environment"] == "prod"
    assert manifest["version"] == 1
    assert manifest["compiler"] == {"name": "magcfg", "version": magcfg.__version__}
    assert manifest["hot_keys"] == ["logging"]
    assert manifest["restart_keys"] == ["magds"]
    assert manifest["schema"]["path"] == "schemas/schema.json"
    assert manifest["inputs"]["files"] == 4  # project file + 3 layer files of prod


def test_a_config_is_hashed_by_a_thread_while_the_next_environment_is_joined(
        mini: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each environment's config.json is hashed beside the main thread (SHA-256 lets go
    of the GIL), which joins every environment's config before it waits for the first
    digest (``Compiler.compile_each``), and each manifest names its config's digest."""
    import threading

    from magcfg.compiler import _Digest
    from magcfg.pipeline import emit

    events: list[str] = []
    join, hashed, result = emit.config_bytes, emit.sha256, _Digest.result

    def joining(fragments: Any) -> bytes:
        events.append("join")
        return join(fragments)

    def hashing(data: bytes) -> str:
        if data.startswith(b"{\n"):
            events.append(f"hash in {threading.current_thread().name}")
        return hashed(data)

    def waiting(self: _Digest) -> str:
        events.append("wait")
        return result(self)

    monkeypatch.setattr(emit, "config_bytes", joining)
    monkeypatch.setattr(emit, "sha256", hashing)
    monkeypatch.setattr(_Digest, "result", waiting)
    magcfg.build(load(mini))
    hashes = [e for e in events if e.startswith("hash")]
    assert hashes == ["hash in magcfg config digest"] * 2, events
    assert [e for e in events if not e.startswith("hash")][:3] == ["join", "join", "wait"]
    for env in ("dev", "prod"):
        out = mini.root / "generated" / env
        digest = "sha256:" + hashlib.sha256((out / "config.json").read_bytes()).hexdigest()
        assert json.loads((out / "manifest.json").read_bytes())["config_digest"] == digest


def test_a_config_the_last_manifest_names_otherwise_is_written_unread(
        mini: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """A changed config.json of the size of the one it replaces is not read up to its
    first difference when the manifest beside it names another digest: it differs
    (``DirectoryUpdate.differs``). ``build --check`` still compares the bytes, and so
    does a build where the manifest names the digest it makes."""
    from magcfg import durable

    magcfg.build(load(mini))
    mini.write("layers/environments/dev/magds.yaml", "magds:\n  host: localhosu\n")
    config = mini.root / "generated/dev/config.json"
    size = config.stat().st_size
    read = calls(monkeypatch, durable, "held_by", 0)
    changed = [f"generated/dev/{name}"
               for name in ("config.json", "configmap.yaml", "manifest.json")]
    assert magcfg.build(load(mini), check=True).stale == changed
    assert str(config) in map(str, read)
    read.clear()
    assert magcfg.build(load(mini)).written == changed
    assert config.stat().st_size == size and b"localhosu" in config.read_bytes()
    assert str(config) not in map(str, read)
    # Edited where the manifest names the digest a build makes: compared, and built.
    built = config.read_bytes()
    config.write_bytes(built.replace(b"localhosu", b"localhost"))
    read.clear()
    assert magcfg.build(load(mini)).written == ["generated/dev/config.json"]
    assert str(config) in map(str, read) and config.read_bytes() == built


def test_a_config_the_manifest_names_as_it_is_is_known_by_its_status(
        mini: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """An environment a change leaves as it was: its config.json, which the manifest
    beside it names as it is, is compared once (never hashed: the digest is the one the
    build made), then known by its status (``Compiler.output_holding``), not read again,
    build after build. One edited by hand is compared again (its status changed) and
    built again; ``build --check`` compares the bytes."""
    from magcfg import compiler as compiler_module
    from magcfg import durable
    from magcfg.pipeline import cache as cache_module

    monkeypatch.setattr(cache_module, "RACY_NS", 0)  # a written file settles at once
    magcfg.build(load(mini))
    config = mini.root / "generated/prod/config.json"
    built = config.read_bytes()
    opened = calls(monkeypatch, durable, "_open_regular", 0)
    hashed = calls(monkeypatch, compiler_module, "sha256_regular", 0)
    for round, host in enumerate(("localhosu", "localhosv", "localhosw")):
        opened.clear()
        mini.write("layers/environments/dev/magds.yaml", f"magds:\n  host: {host}\n")
        assert magcfg.build(load(mini)).written == [
            f"generated/dev/{name}" for name in ("config.json", "configmap.yaml",
                                                 "manifest.json")]
        assert [str(p) for p in opened].count(str(config)) == (1 if round == 0 else 0)
        assert str(config) not in map(str, hashed)
    opened.clear()
    assert magcfg.build(load(mini), check=True).stale == []
    assert str(config) in map(str, opened)
    config.write_bytes(built.replace(b'"level": "warn"', b'"level": "WARN"'))
    assert magcfg.build(load(mini), check=True).stale == ["generated/prod/config.json"]
    assert magcfg.build(load(mini)).written == ["generated/prod/config.json"]
    assert config.read_bytes() == built


def test_same_tree_same_bytes_anywhere(mini: Project, tmp_path: Path) -> None:
    magcfg.build(load(mini))
    first = mini.snapshot_tree()
    other = Project(tmp_path / "elsewhere" / "deeper")
    shutil.copytree(mini.root, other.root, ignore=shutil.ignore_patterns("generated", ".magcfg-cache"))
    result = other.run("build", env={"TZ": "Pacific/Kiritimati", "LC_ALL": "C", "LANG": "C",
                                     "SOURCE_DATE_EPOCH": "1", "HOSTNAME": "other"})
    assert result.returncode == 0, result.stderr
    assert other.snapshot_tree() == first
    # and again, unchanged: nothing rewritten
    again = magcfg.build(load(mini))
    assert again.written == []
    assert mini.snapshot_tree() == first


def test_check_reports_stale_files_and_writes_nothing(mini: Project) -> None:
    assert mini.run("build").returncode == 0
    assert mini.run("build", "--check").returncode == 0
    mini.write("layers/environments/dev/magds.yaml", "magds:\n  host: changed\n")
    before = mini.snapshot_tree()
    result = mini.run("build", "--check")
    assert result.returncode == 1
    assert "stale: generated/dev/config.json" in result.stderr
    assert "stale: generated/dev/manifest.json" in result.stderr
    assert "generated/prod" not in result.stderr
    assert mini.snapshot_tree() == before


def test_a_file_no_reader_would_accept_is_never_written(
        mini: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    import magcfg.compiler

    magcfg.build(load(mini))
    before = mini.snapshot_tree()
    mini.write("layers/environments/dev/magds.yaml", "magds:\n  host: a-longer-host-name\n")
    size = len((mini.root / "generated/dev/config.json").read_bytes()) + len("a-longer-")
    # The real bound is 256 MiB (every reader's; tests/signing/test_directory.py).
    monkeypatch.setattr(magcfg.compiler, "MAX_FILE_BYTES", size - 1)
    with pytest.raises(magcfg.BuildError) as info:
        magcfg.build(load(mini))
    assert [(d.file, d.message) for d in info.value.diagnostics] == [
        ("generated/dev/config.json", f"would be {size} bytes, more than the {size - 1} "
         "every reader of an artifact accepts")]
    mini.write("layers/environments/dev/magds.yaml", "magds:\n  host: localhost\n")
    assert mini.snapshot_tree() == before


def test_check_on_missing_output(mini: Project) -> None:
    result = mini.run("build", "--check")
    assert result.returncode == 1
    assert not (mini.root / "generated").exists()


def test_incremental_build_equals_cold_build(mini: Project, tmp_path: Path) -> None:
    magcfg.build(load(mini))  # warms the cache
    mini.write("layers/base/magds.yaml",
               "magds:\n  host: db2\n  port: 6000\n  pool:\n    min: 2\n    max: 5\n")
    mini.write("layers/environments/prod/magds.yaml", "magds:\n  pool:\n    max: 9\n")
    warm = magcfg.build(load(mini))
    cold = magcfg.build(load(mini), check=True, cache=BuildCache(None))
    assert cold.stale == []
    assert warm.artifacts["prod"].config["magds"] == {"host": "db2", "port": 6000,
                                                      "pool": {"max": 9, "min": 2}}


def test_corrupt_cache_is_a_miss(mini: Project) -> None:
    magcfg.build(load(mini))
    before = mini.snapshot_tree()
    for entry in (mini.root / ".magcfg-cache").rglob("*"):
        if entry.is_file():
            entry.write_bytes(b"garbage")
    shutil.rmtree(mini.root / "generated")
    magcfg.build(load(mini))
    assert mini.snapshot_tree() == before


def test_version_is_monotonic_and_deterministic(mini: Project) -> None:
    def version(env: str) -> int:
        return int(json.loads((mini.root / f"generated/{env}/manifest.json").read_bytes())["version"])

    magcfg.build(load(mini))
    assert (version("dev"), version("prod")) == (1, 1)
    magcfg.build(load(mini))
    assert (version("dev"), version("prod")) == (1, 1)
    mini.write("layers/environments/dev/magds.yaml", "magds:\n  host: other\n")
    magcfg.build(load(mini))
    assert (version("dev"), version("prod")) == (2, 1)
    mini.write("layers/environments/dev/magds.yaml", "magds:\n  host: localhost\n")
    magcfg.build(load(mini))
    assert version("dev") == 3  # back to old content is still a new version


def test_new_manifest_drops_stale_signature(mini: Project) -> None:
    magcfg.build(load(mini))
    sig = mini.root / "generated/dev/manifest.json.sig"
    sig.write_text("c2lnbmF0dXJl\n")
    magcfg.build(load(mini))
    assert sig.exists()  # manifest unchanged: the signature still belongs to it
    mini.write("layers/environments/dev/magds.yaml", "magds:\n  host: other\n")
    magcfg.build(load(mini))
    assert not sig.exists()


def test_only_chosen_environments(mini: Project) -> None:
    result = mini.run("build", "--env", "prod")
    assert result.returncode == 0
    assert (mini.root / "generated/prod/config.json").exists()
    assert not (mini.root / "generated/dev").exists()
    bad = mini.run("build", "--env", "prd")
    assert bad.returncode == 2
    assert "unknown environment 'prd' (did you mean 'prod'?)" in bad.stderr


def test_bundled_build_is_up_to_date_in_the_repo() -> None:
    """generated/ in the repository matches its layers (what CI's build --check enforces)."""
    result = magcfg.build(magcfg.load_project(REPO / "magcfg.yaml"), check=True,
                          cache=BuildCache(None))
    assert result.stale == []


def test_outputs_no_longer_produced_are_removed(mini: Project) -> None:
    """A file the previous manifest lists that the build no longer produces (an old
    vault-policy-direct-<app>.hcl, say) is removed; a file it does not list is not
    magcfg's to delete (tests/test_hostile_paths.py)."""
    magcfg.build(load(mini))
    leftover = mini.root / "generated/dev/vault-policy-direct-old.hcl"
    leftover.write_text("path \"secret/data/k3s/old\" {}\n")
    manifest_path = mini.root / "generated/dev/manifest.json"
    manifest = json.loads(manifest_path.read_bytes())
    manifest["files"][leftover.name] = "sha256:" + hashlib.sha256(leftover.read_bytes()).hexdigest()
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    sig = mini.root / "generated/dev/manifest.json.sig"
    sig.write_text("c2ln\n")
    result = mini.run("build", "--check")
    assert result.returncode == 1
    assert "stale: generated/dev/vault-policy-direct-old.hcl" in result.stderr
    assert "stale: generated/dev/manifest.json.sig" in result.stderr  # signs the old manifest
    magcfg.build(load(mini))
    assert not leftover.exists() and not sig.exists()
    assert mini.run("build", "--check").returncode == 0




def test_compile_only_some_fragments_checks_just_them_and_emits_nothing(mini: Project) -> None:
    from magcfg.compiler import Compiler

    mini.write("layers/base/logging.yaml", "logging:\n  level: verbose\n")
    mini.write("layers/environments/dev/magds.yaml", "magds:\n  port: 0\n")
    compiler = Compiler(magcfg.load_project(mini.root / "magcfg.yaml"), cache=BuildCache(None))
    stack = compiler.load_stack("dev")
    artifact, diagnostics = compiler.compile("dev", stack, None, only={"logging"})
    assert artifact is None
    # The required key magds is not in this partial document: that is not reported.
    assert [(d.file, d.line, d.key, d.code) for d in diagnostics] == [
        ("layers/base/logging.yaml", 2, "logging.level", "schema-enum")]
    artifact, diagnostics = compiler.compile("dev", stack, None, only={"magds"})
    assert [(d.key, d.code) for d in diagnostics] == [("magds.port", "schema-minimum")]
    mini.write("layers/base/logging.yaml", "logging:\n  level: info\n")
    mini.write("layers/environments/dev/magds.yaml", "magds:\n  host: localhost\n")
    compiler = Compiler(magcfg.load_project(mini.root / "magcfg.yaml"), cache=BuildCache(None))
    artifact, diagnostics = compiler.compile("dev", compiler.load_stack("dev"), None,
                                             only={"logging"})
    assert (artifact, diagnostics) == (None, [])


# -- incremental builds are full builds ------------------------------------------------

_EDITS = st.one_of(
    st.tuples(st.just("port"), st.sampled_from(["base", "dev", "prod"]),
              st.integers(min_value=0, max_value=70000)),
    st.tuples(st.just("level"), st.sampled_from(["base", "dev", "prod"]),
              st.sampled_from(["debug", "info", "warn", "loud"])),
    st.tuples(st.just("drop"), st.sampled_from(["dev", "prod"]), st.just(0)),
    st.tuples(st.just("describe"), st.sampled_from(["magds", "logging"]),
              st.integers(min_value=0, max_value=3)),
    st.tuples(st.just("maximum"), st.just("magds"), st.integers(min_value=1, max_value=70000)),
    st.tuples(st.just("password"), st.sampled_from(["dev", "prod"]),
              st.sampled_from(["vault://kv/db#pw", "env://DB_PW", "hunter2"])),
    st.tuples(st.just("nothing"), st.just(""), st.just(0)),
    st.tuples(st.just("output"), st.sampled_from(["dev", "prod"]), st.just(0)),
)


def _apply(project: Project, schema: dict[str, Any], edit: tuple[str, str, Any]) -> None:
    kind, where, value = edit
    layer = "layers/base" if where == "base" else f"layers/environments/{where}"
    if kind in ("port", "password"):
        project.write(f"{layer}/magds.yaml", f"magds:\n  {kind}: {json.dumps(value)}\n")
    elif kind == "level":
        project.write(f"{layer}/logging.yaml", f"logging:\n  level: {value}\n")
    elif kind == "drop":
        for path in (project.root / layer).glob("*.yaml"):
            path.unlink()
    elif kind == "output":  # edited in place, its size and times as they were
        config = project.root / "generated" / where / "config.json"
        if config.exists():
            before = config.stat()
            config.write_bytes(config.read_bytes()[::-1])
            os.utime(config, ns=(before.st_atime_ns, before.st_mtime_ns))
    elif kind == "nothing":
        pass
    else:
        target = schema["properties"][where]
        if kind == "describe":
            target["description"] = f"{where}, take {value}"
        else:
            target["properties"]["port"]["maximum"] = value
        project.write("schemas/schema.json", json.dumps(schema, indent=2))


def _outcome(project: Project, cache: BuildCache | None) -> tuple[list[str], dict[str, str]]:
    try:
        # With a cache, as the command line builds: outputs as recorded are not compiled
        # again (``Compiler.recorded_outputs``).
        result = magcfg.build(load(project), cache=cache, artifacts=cache is not None)
        said = [d.format() for d in result.warnings]
    except magcfg.BuildError as exc:
        said = [d.format() for d in exc.diagnostics]
    return said, project.snapshot_tree()


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(_EDITS, min_size=1, max_size=6))
def test_any_sequence_of_edits_builds_what_a_full_build_builds(
        tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch,
        edits: list[tuple[str, str, Any]]) -> None:
    """Two copies of a project take the same edits; after each, one builds with its
    cache (kept across the builds) and the other with none: same messages, same bytes."""
    import time

    from magcfg.pipeline import cache as cache_module

    # So that the cache vouches for the files by their status between edits
    # (``BuildCache.held_digests``, ``file_sha256``): a settling time longer than any
    # tick of the file system's clock, waited out before each build with the cache.
    monkeypatch.setattr(cache_module, "RACY_NS", 20_000_000)
    settle = functools.partial(time.sleep, 0.03)
    base = tmp_path_factory.mktemp("edits")
    monkeypatch.setenv("XDG_STATE_HOME", str(base / "state"))
    monkeypatch.delenv("MAGCFG_NO_CACHE", raising=False)
    copies = []
    for name in ("cached", "full"):
        project = Project(base / name)
        project.write("magcfg.yaml", MINI_PROJECT)
        project.write("schemas/schema.json", json.dumps(MINI_SCHEMA, indent=2))
        for rel, text in MINI_BASE.items():
            project.write(rel, text)
        copies.append((project, copy.deepcopy(MINI_SCHEMA)))
    (cached, cached_schema), (full, full_schema) = copies
    settle()
    assert _outcome(cached, None) == _outcome(full, BuildCache(None))
    for edit in edits:
        _apply(cached, cached_schema, edit)
        _apply(full, full_schema, edit)
        settle()
        expected = _outcome(full, BuildCache(None))
        # Outside git a version is numbered from the manifest in generated/, which a
        # build writes: the record of the second build is what the third one finds.
        for _ in range(3):
            assert _outcome(cached, None) == expected, edit
            settle()
    assert (cached.root / ".magcfg-cache").is_dir()


# -- compiling in several processes (Compiler.prepare) ---------------------------------


@pytest.fixture(scope="module")
def realistic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated repository of 24 services of distinct shapes (benchmarks/synth.py):
    more top-level keys than ``MIN_PARALLEL_KEYS``."""
    root = tmp_path_factory.mktemp("realistic") / "repo"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "synth.py"), str(root),
                    "--shape", "realistic", "--services", "24", "--keys", "40", "--envs", "3"],
                   check=True, capture_output=True)
    return root


def _build_in(jobs: int, source: Path, where: Path, cache: BuildCache | None = None
              ) -> tuple[list[str], dict[str, str], set[str]]:
    """(messages, generated tree, stages timed) of building a copy of ``source``."""
    shutil.copytree(source, where)
    project = Project(where)
    stages: set[str] = set()
    try:
        result = magcfg.build(load(project), cache=cache or BuildCache(None), jobs=jobs)
        said = [d.format() for d in result.warnings]
        assert result.timings is not None
        stages = set(result.timings.seconds)
    except magcfg.BuildError as exc:
        said = [d.format() for d in exc.diagnostics]
    return said, project.snapshot_tree(), stages


@pytest.mark.parametrize("aside", [0, 1 << 40], ids=["schema split aside", "not"])
def test_two_processes_build_what_one_builds(realistic: Path, tmp_path: Path, aside: int,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Two processes, one process key by key (``prepare``) and one process environment
    by environment (``compile`` alone) build the same bytes and say the same."""
    from magcfg import compiler as compiler_module

    monkeypatch.setattr(compiler_module, "MIN_ASIDE_SCHEMA_BYTES", aside)
    said_one, tree_one, stages_one = _build_in(1, realistic, tmp_path / "one")
    said_two, tree_two, stages_two = _build_in(2, realistic, tmp_path / "two")
    monkeypatch.setattr(compiler_module, "MIN_PARALLEL_KEYS", 1 << 30)
    said_plain, tree_plain, _ = _build_in(1, realistic, tmp_path / "plain")
    assert "workers" in stages_two and "workers" not in stages_one  # it did fork
    assert tree_one and tree_two == tree_one == tree_plain
    assert said_two == said_one == said_plain


def test_a_build_that_can_start_no_thread_nor_process_builds_the_same(
        realistic: Path, tmp_path: Path) -> None:
    """Where the system starts no more threads or processes (the limit on processes
    reached: ``ulimit -u``, a container's pids limit), a build of two processes outside
    git (nothing to ask git) does each thread's and each child's work itself: the
    configs' digests, the schema's, the staging of each directory, the other process's
    share. It failed with a traceback (RuntimeError: can't start new thread)."""
    trees = []
    for limited in (False, True):
        copy = Project(tmp_path / f"limited {limited}")
        shutil.copytree(realistic, copy.root)
        with no_more_tasks() as limit:
            done = subprocess.run([str(MAGCFG), "build"], cwd=copy.root, capture_output=True,
                                  text=True, timeout=300, check=False,
                                  env={**os.environ, "MAGCFG_JOBS": "2"},
                                  preexec_fn=limit if limited else None)
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
        trees.append(copy.snapshot_tree())
    assert trees[0] and trees[1] == trees[0]


def test_one_process_releases_each_piece_once_compiled(realistic: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    """A cold build in one process compiles key by key and lets go of each key's schema
    piece once its fragments are cached, as each of several processes does: it never
    holds the whole schema's pieces at once, and indexes none of them (each is a plain
    tree, whose summary and policy table are read from its document)."""
    from magcfg.schema.index import Schema, SchemaIndex

    released = calls(monkeypatch, Schema, "release", arg=1)
    depths = calls(monkeypatch, SchemaIndex, "_build", arg=3)
    said, tree, _ = _build_in(1, realistic, tmp_path / "one")
    assert tree and not [s for s in said if ": error:" in s]
    services = sorted(json.loads((realistic / "schemas" / "platform.schema.json").read_bytes())
                      ["properties"])
    assert sorted(released) == services
    # What is asked of a released piece later (the secret scan) comes from the policy
    # table its summary cached.
    assert depths.count(0) == 0


def test_a_cold_build_reads_no_piece_back_for_the_schemas_summary(
        realistic: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The summary of a split schema is made of its pieces' summaries, which a cold
    build cached as it compiled each key: it reads back from the cache one piece (the
    root's ``required``), not every piece it let go of (the 40.7 MB of the realistic
    large schema's, read and hashed again)."""
    from magcfg import compiler as compiler_module

    read = calls(monkeypatch, compiler_module._PieceCache, "get_bytes", arg=1)
    said, tree, _ = _build_in(1, realistic, tmp_path / "one")
    assert tree and not [s for s in said if ": error:" in s]
    assert len([name for name in read if name.startswith("schema-piece:")]) == 1


def _break(root: Path, services: list[str]) -> None:
    """Give each service, in dev, a string where its schema wants an object."""
    schema = json.loads((root / "schemas" / "platform.schema.json").read_text())
    for name in services:
        shape = schema["properties"][name]["properties"]
        group = next(k for k, v in shape.items() if v.get("type") == "object")
        (root / "layers" / "environments" / "dev" / f"{name}.yaml").write_text(
            f"{name}:\n  {group}: not-an-object\n", encoding="utf-8")


def test_errors_are_reported_as_by_one_process(realistic: Path, tmp_path: Path) -> None:
    source = tmp_path / "source"
    shutil.copytree(realistic, source)
    _break(source, ["svc_003", "svc_011", "svc_020"])
    said_one, tree_one, _ = _build_in(1, source, tmp_path / "one")
    said_two, tree_two, _ = _build_in(2, source, tmp_path / "two")
    assert len([s for s in said_one if "svc_0" in s and "dev" in s]) >= 3, said_one
    assert said_two == said_one
    assert tree_one == tree_two == {}


def test_a_worker_that_fails_is_made_up_for(realistic: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A child that dies mid-way hands back nothing: this process compiles its share."""
    from magcfg.compiler import Compiler

    said_one, tree_one, _ = _build_in(1, realistic, tmp_path / "one")
    dies_in_a_child(monkeypatch, Compiler, "_piece_summary")
    said_two, tree_two, stages = _build_in(2, realistic, tmp_path / "two")
    assert "workers" in stages
    assert (said_two, tree_two) == (said_one, tree_one)


def test_parallel_cold_build_then_cached_builds_agree(realistic: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """What the workers put in the cache is what a later build reads as its own."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("MAGCFG_NO_CACHE", raising=False)
    shutil.copytree(realistic, tmp_path / "repo")
    project = Project(tmp_path / "repo")
    cold = magcfg.build(load(project), jobs=2)
    assert cold.timings is not None and "workers" in cold.timings.seconds
    tree = project.snapshot_tree()
    shutil.rmtree(project.root / "generated")
    again = magcfg.build(load(project), jobs=2)
    assert again.timings is not None and "workers" not in again.timings.seconds  # all cached
    assert project.snapshot_tree() == tree


def test_a_rebuild_asks_merge_keys_of_the_cached_policy_tables(
        realistic: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After a build, a rebuild of a file whose keyed list an environment overrides
    asks each merge key (and each secret flag) of the policy tables the build cached:
    no piece of the schema is indexed. It merges by item name, and builds what a
    build without a cache builds."""
    from magcfg.schema.index import PolicyIndex, SchemaIndex

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("MAGCFG_NO_CACHE", raising=False)
    shutil.copytree(realistic, tmp_path / "repo")
    project = Project(tmp_path / "repo")
    service, env = overridden_keyed_list(project.root)
    magcfg.build(load(project))
    base = project.root / "layers" / "base" / f"{service}.yaml"
    text = base.read_text()
    assert "weight: 10}" in text
    base.write_text(text.replace("weight: 10}", "weight: 11}"))
    indexed = calls(monkeypatch, SchemaIndex, "_build", arg=1)
    asked = calls(monkeypatch, PolicyIndex, "merge_key", arg=1)
    magcfg.build(load(project))
    assert indexed == []
    assert (service, "endpoints") in asked
    config = json.loads((project.root / "generated" / env / "config.json").read_bytes())
    items = config[service]["endpoints"]
    # Merged by name: every item of the base's list, each with the base's new weight.
    assert len(items) == text.count("{name: ep-") > 1
    assert [item["weight"] for item in items] == [11] * len(items)
    assert magcfg.build(load(project), check=True, cache=BuildCache(None)).stale == []
    # Without the cache, the tables are made afresh, from the pieces' documents (plain
    # trees): no index either.
    assert indexed == []


def test_the_schema_is_split_in_another_process(realistic: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from magcfg import compiler as compiler_module
    from magcfg.compiler import Compiler

    monkeypatch.setattr(compiler_module, "MIN_ASIDE_SCHEMA_BYTES", 0)
    compiler = Compiler(load(Project(realistic)), cache=BuildCache(None))
    with compiler.schema_aside(2):
        compiler.load_stacks(["dev"])
    schema = compiler.schema()
    assert schema is not None
    assert len(schema.piece_digests()) == 24
    assert schema._document is None  # this process never parsed the whole file
    alone = Compiler(load(Project(realistic)), cache=BuildCache(None)).schema()
    assert alone is not None and alone.piece_digests() == schema.piece_digests()


def test_the_schema_is_hashed_while_the_layers_are_read(mini: Project,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from magcfg.compiler import Compiler
    from magcfg.pipeline.load import FileSource

    hashed_in: list[str] = []
    real = FileSource.sha256

    def sha256(self: FileSource, path: str) -> tuple[str, int]:
        hashed_in.append(threading.current_thread().name)
        return real(self, path)

    monkeypatch.setattr(FileSource, "sha256", sha256)
    compiler = Compiler(load(mini), cache=BuildCache(None))
    compiler.load_stacks(["dev", "prod"])
    schema = compiler.schema()
    assert hashed_in == ["magcfg schema digest"]  # once, in its thread, not again here
    assert schema is not None and schema.digest == hashlib.sha256(
        (mini.root / "schemas/schema.json").read_bytes()).hexdigest()
    assert not [t for t in threading.enumerate() if t.name == "magcfg schema digest"]


def test_a_schema_hashed_meanwhile_is_refused_as_read_in_turn(mini: Project) -> None:
    from magcfg.compiler import Compiler

    (mini.root / "schemas/schema.json").unlink()
    (mini.root / "schemas/schema.json").mkdir()
    compiler = Compiler(load(mini), cache=BuildCache(None))
    with pytest.raises(magcfg.BuildError) as raised:
        compiler.load_stacks(["dev"])
    assert [(d.file, d.message) for d in raised.value.diagnostics] == [
        ("schemas/schema.json", "is a directory, not a regular file")]
    with pytest.raises(magcfg.BuildError) as again:  # asked again: read again, same error
        compiler.schema()
    assert again.value.diagnostics == raised.value.diagnostics


def test_a_rebuild_takes_the_digest_of_an_unchanged_schema_from_the_cache(
        mini: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import time

    from magcfg.pipeline import cache as cache_module
    from magcfg.pipeline.load import FileSource

    # The fixture wrote the schema a moment ago: a shorter settling time than a real
    # build's, still longer than any tick of the file system's clock, is waited out.
    monkeypatch.setattr(cache_module, "RACY_NS", 50_000_000)
    time.sleep(0.1)
    hashed = calls(monkeypatch, FileSource, "sha256", 1)
    schema = mini.root / "schemas/schema.json"

    def schema_digest() -> str:
        manifest = json.loads((mini.root / "generated/dev/manifest.json").read_bytes())
        digest: str = manifest["schema"]["digest"]
        return digest

    magcfg.build(load(mini))
    magcfg.build(load(mini))
    assert hashed == ["schemas/schema.json"]  # once: the rebuild took it from the cache
    assert schema_digest() == "sha256:" + hashlib.sha256(schema.read_bytes()).hexdigest()
    # Edited in place to the same size, its times put back: its change time tells.
    before = schema.stat()
    edited = schema.read_bytes().replace(b'"description": "host"', b'"description": "HOST"')
    assert len(edited) == before.st_size
    schema.write_bytes(edited)
    os.utime(schema, ns=(before.st_atime_ns, before.st_mtime_ns))
    magcfg.build(load(mini))
    assert hashed == ["schemas/schema.json"] * 2
    assert schema_digest() == "sha256:" + hashlib.sha256(edited).hexdigest()


def test_a_rebuild_reads_no_layer_file_whose_status_is_unchanged(
        mini: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import time

    from magcfg.pipeline import cache as cache_module
    from magcfg.pipeline.load import FileSource

    monkeypatch.setattr(cache_module, "RACY_NS", 50_000_000)  # as in the test above
    time.sleep(0.1)
    magcfg.build(load(mini))
    read = calls(monkeypatch, FileSource, "read_examined", 1)
    built = mini.snapshot_tree()
    magcfg.build(load(mini))
    assert read == []  # every digest from the cache, every fragment too
    assert mini.snapshot_tree() == built
    # Edited in place to the same size, its times put back: read again, and built.
    magds = mini.root / "layers/environments/dev/magds.yaml"
    before = magds.stat()
    text = magds.read_bytes()
    edited = text.replace(b"localhost", b"127.0.0.1")
    assert len(edited) == len(text) and edited != text
    magds.write_bytes(edited)
    os.utime(magds, ns=(before.st_atime_ns, before.st_mtime_ns))
    magcfg.build(load(mini))
    assert "layers/environments/dev/magds.yaml" in read
    assert mini.snapshot_tree() != built
    fresh = magcfg.build(load(mini), check=True, cache=BuildCache(None))
    assert fresh.stale == []


def test_a_rebuild_whose_outputs_are_as_recorded_compiles_nothing(
        mini: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """With nothing changed since the build that wrote them, the outputs are what a
    build would write (``Compiler.recorded_outputs``): no fragment is read, nothing is
    compiled or written, and the warnings are those of the build that compiled. An
    output edited in place, its times put back, is built again, and an entry magcfg
    did not write stops the build as it always did."""
    import os
    import time

    from magcfg.artifact import SIGNATURE, size_limit
    from magcfg.compiler import Compiler
    from magcfg.pipeline import cache as cache_module

    monkeypatch.setattr(cache_module, "RACY_NS", 50_000_000)  # as in the tests above
    mini.write("layers/environments/dev/logging.yaml", "logging:\n  level: info\n")
    time.sleep(0.1)
    # Twice: outside git a version is numbered from the manifest in generated/, which
    # the first build writes, so the second is the first with the inputs of the next.
    magcfg.build(load(mini))
    first = magcfg.build(load(mini))
    assert [d.code for d in first.warnings] == ["redundant"]  # on every build
    built = mini.snapshot_tree()
    time.sleep(0.1)  # the outputs settle, so that their digests can be kept by status
    read = calls(monkeypatch, BuildCache, "serialized", 1)
    compiled = calls(monkeypatch, Compiler, "compile_each", 1)
    for _ in range(2):  # the first hashes the outputs, the second takes their digests
        again = magcfg.build(load(mini), artifacts=False)
        assert (again.reused, again.artifacts, again.written) == (True, {}, [])
        assert again.warnings == first.warnings
        assert read == [] and compiled == []
    assert mini.snapshot_tree() == built
    assert magcfg.build(load(mini), check=True, artifacts=False).stale == []
    config = mini.root / "generated/dev/config.json"
    before = config.stat()
    planted = config.read_bytes().replace(b"localhost", b"127.0.0.1")
    assert len(planted) == before.st_size
    config.write_bytes(planted)
    os.utime(config, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert magcfg.build(load(mini), check=True, artifacts=False).stale == [
        "generated/dev/config.json"]
    assert not magcfg.build(load(mini), artifacts=False).reused
    assert compiled and mini.snapshot_tree() == built
    # A signature a build would keep, but one no reader accepts: refused as a build
    # that writes refuses it.
    signature = mini.root / "generated/dev" / SIGNATURE
    signature.write_bytes(b"x" * (size_limit(SIGNATURE) + 1))
    with pytest.raises(magcfg.BuildError, match="larger than"):
        magcfg.build(load(mini), artifacts=False)
    signature.unlink()
    assert magcfg.build(load(mini), artifacts=False).reused
    (mini.root / "generated/dev/notes.txt").write_text("mine\n")
    with pytest.raises(magcfg.BuildError, match="not written by magcfg"):
        magcfg.build(load(mini), artifacts=False)


def test_a_signature_added_or_removed_beside_recorded_outputs_is_built_again(
        mini: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """``configmap.yaml`` carries the signature beside an unchanged manifest
    (``delivery.emitter.configmap_emitter``), so the signature is an input of the
    build: one copied in beside the recorded outputs, or deleted, makes the ConfigMap a
    build writes another, and a build that reused the record passed ``build --check``
    where a cold one names configmap.yaml stale."""
    import time

    from magcfg.artifact import SIGNATURE
    from magcfg.pipeline import cache as cache_module

    monkeypatch.setattr(cache_module, "RACY_NS", 50_000_000)  # as in the tests above
    magcfg.build(load(mini))
    magcfg.build(load(mini))  # numbered from the first's manifests: recorded
    time.sleep(0.1)
    assert magcfg.build(load(mini), artifacts=False).reused
    signature = mini.root / "generated/dev" / SIGNATURE
    configmap = "generated/dev/configmap.yaml"
    for change in (lambda: signature.write_bytes(b"c2lnbmF0dXJl\n"), signature.unlink):
        change()
        cold = magcfg.build(load(mini), check=True, cache=BuildCache(None))
        assert cold.stale == [configmap]
        warm = magcfg.build(load(mini), check=True, artifacts=False)
        assert (warm.reused, warm.stale) == (False, [configmap])
        magcfg.build(load(mini), artifacts=False)
        assert magcfg.build(load(mini), check=True, cache=BuildCache(None)).stale == []
        time.sleep(0.1)
        assert magcfg.build(load(mini), artifacts=False).reused


def test_a_record_written_by_magcfg_of_other_code_is_not_reused(
        mini: Project, tmp_path: Path) -> None:
    """A record vouches for every check the build that wrote it made: a magcfg of other
    code under the same ``__version__`` (here a copy with one more secret rule) found
    the last build's record and passed, build and ``build --check`` alike, what a cold
    build of its own fails."""
    import time

    package = tmp_path / "other"
    shutil.copytree(Path(magcfg.__file__).parent, package / "magcfg",
                    ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "PYTHONPATH": str(package), "XDG_STATE_HOME": str(tmp_path / "state")}
    env.pop("MAGCFG_NO_CACHE", None)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "magcfg", *args], cwd=mini.root, env=env,
                              capture_output=True, text=True, timeout=120, check=False)

    for _ in range(2):  # the second numbers from the first's manifests, and records
        assert run("build").returncode == 0
    time.sleep(2.2)  # the outputs settle (cache.RACY_NS): the record is all that is read
    again = run("build")
    assert again.returncode == 0 and "(0 file(s) changed)" in again.stderr, again.stderr
    rules = package / "magcfg/secrets/rules.py"
    text = rules.read_text()
    assert text.count("    settings, errors = load_secret_settings(context.project)\n") == 1
    rules.write_text(text.replace(
        "    settings, errors = load_secret_settings(context.project)\n",
        "    settings, errors = load_secret_settings(context.project)\n"
        "    errors = [*errors, Diagnostic(context.project.file, None, 'magds',\n"
        "                                  'a rule this magcfg has', code='secret')]\n"))
    for args in (("build",), ("build", "--check")):
        done = run(*args)
        assert done.returncode == 1, (args, done.stderr)
        assert "a rule this magcfg has" in done.stderr and "Traceback" not in done.stderr


def test_a_record_written_by_magcfg_of_other_code_from_an_archive_is_not_reused(
        mini: Project, tmp_path: Path) -> None:
    """Imported from an archive (a zipapp), magcfg's files are in no directory
    ``code_identity`` can list: every archive had one identity, so one of other code
    under the same ``__version__`` found the last build's record and passed, build and
    ``build --check`` alike, what a cold build of its own fails."""
    import time
    import zipfile

    def archive(name: str, edit: bool) -> Path:
        package = Path(magcfg.__file__).parent
        path = tmp_path / name
        with zipfile.ZipFile(path, "w") as zipped:
            for file in sorted(package.rglob("*.py")) + sorted(package.rglob("*.json")):
                if "__pycache__" in file.parts:
                    continue
                text = file.read_bytes()
                if edit and file.name == "rules.py" and file.parent.name == "secrets":
                    line = b"    settings, errors = load_secret_settings(context.project)\n"
                    assert text.count(line) == 1
                    text = text.replace(line, line + (
                        b"    errors = [*errors, Diagnostic(context.project.file, None, "
                        b"'magds', 'a rule this magcfg has', code='secret')]\n"))
                zipped.writestr(f"magcfg/{file.relative_to(package).as_posix()}", text)
        return path

    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    env.pop("MAGCFG_NO_CACHE", None)

    def run(zipped: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "magcfg", *args], cwd=mini.root,
                              env={**env, "PYTHONPATH": str(zipped)}, capture_output=True,
                              text=True, timeout=120, check=False)

    ours, other = archive("ours.zip", False), archive("other.zip", True)
    for _ in range(2):  # the second numbers from the first's manifests, and records
        assert run(ours, "build").returncode == 0
    time.sleep(2.2)  # the outputs settle (cache.RACY_NS): the record is all that is read
    again = run(ours, "build", "--timings")
    assert again.returncode == 0 and '"merge": 0.0,' in again.stderr, again.stderr
    for args in (("build",), ("build", "--check")):
        done = run(other, *args)
        assert done.returncode == 1, (args, done.stderr)
        assert "a rule this magcfg has" in done.stderr and "Traceback" not in done.stderr


def test_a_build_outside_git_asks_where_the_top_is_once(
        mini: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside a work tree each git question fails and then asks whether there is one,
    a process each: loading the project asks git's top once for its two questions, and
    a build once for its three and the versions; it builds as before. (A ``.git`` that
    is no repository: without one above, git is not asked at all.)"""
    import time

    import magcfg.durable
    from magcfg.pipeline import cache as cache_module

    monkeypatch.setattr(cache_module, "RACY_NS", 50_000_000)  # as in the tests above
    mini.write(".git", "gitdir: nowhere\n")
    magcfg.build(load(mini))
    built = magcfg.build(load(mini))
    time.sleep(0.1)  # the outputs settle: the next build finds the record
    asked = calls(monkeypatch, magcfg.durable, "_ask_git_root")
    project = load(mini)
    assert asked == [mini.root]
    again = magcfg.build(project, artifacts=False)
    assert asked == [mini.root, mini.root]
    assert again.reused and again.warnings == built.warnings
    magcfg.build(project)
    assert asked == [mini.root] * 3


def test_a_build_that_reuses_its_outputs_imports_nothing_of_compiling(
        mini: Project, tmp_path: Path) -> None:
    """A build whose outputs are as recorded compiles nothing, and its process imports
    nothing that only compiling uses (the validator, the emitters, the redaction, CUE:
    ~5% of a no-op's instructions), locating a key's line (the line index) or writing the
    cache (``secrets``, for its files' names), nor collects garbage while it imports
    the build's modules (it ends through os._exit). It still prints and exits as a
    build."""
    import time

    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    env.pop("MAGCFG_NO_CACHE", None)
    compiling = ["magcfg.cue.binary", "magcfg.cue.layers", "magcfg.pipeline.context",
                 "magcfg.pipeline.emit", "magcfg.pipeline.redact", "magcfg.pipeline.validate",
                 "magcfg.schema.validator", "magcfg.secrets.redaction",
                 "magcfg.syntax.keylines", "secrets", "jsonschema_rs", "orjson"]
    probe = (
        "import gc, sys\n"
        "from magcfg.pipeline import cache\n"
        "cache.RACY_NS = 50_000_000  # as in the tests above\n"
        "collected = []\n"
        "gc.callbacks.append(lambda phase, info: phase == 'start'\n"
        "                    and collected.append('magcfg.project' in sys.modules))\n"
        "from magcfg.cli import main\n"
        "code = main(sys.argv[1:])\n"
        f"print(code, [m for m in {compiling!r} if m in sys.modules], any(collected))\n")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", probe, *args], cwd=mini.root, env=env,
                              capture_output=True, text=True, timeout=120, check=False)

    for _ in range(2):  # the second numbers from the first's manifests, and records
        assert run("build").stdout.startswith("0 ")
    time.sleep(0.1)  # the outputs settle: the next build keeps their digests (it writes)
    assert run("build").stdout.startswith("0 ")
    for args in (("build",), ("build", "--check")):
        done = run(*args)
        assert done.stdout == "0 [] False\n", (args, done.stdout, done.stderr)
        assert done.stderr.endswith(("(0 file(s) changed)\n", "up to date: dev, prod\n"))


def test_a_cold_build_imports_only_what_compiling_its_project_uses(
        mini: Project, tmp_path: Path) -> None:
    """A cold build of a YAML project with a JSON Schema, outside git, in a fresh
    process: no other command's stack (typer, the linter, review, signing, the runtime,
    PyYAML, the pure-Python jsonschema, DeepDiff, GitPython, cryptography), nothing of
    CUE, no thread pool, no question file for a git that is not there, and no "did you
    mean" matcher. Each is a few ms of
    a small build's ~100, where a plain pipeline of PyYAML, jsonschema-rs and orjson
    takes ~65 (docs/performance.md)."""
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    env.pop("MAGCFG_NO_CACHE", None)
    unused = ["concurrent.futures", "tempfile", "subprocess", "shutil", "difflib", "shlex",
              "magcfg.cue.binary", "magcfg.cue.layers", "magcfg.cue.schema", "typer",
              "click", "yaml", "jsonschema", "deepdiff", "git", "cryptography",
              "magcfg.lint", "magcfg.review", "magcfg.signing", "magcfg.runtime",
              "magcfg.oci"]
    probe = ("import sys\n"
             "from magcfg.cli import main\n"
             "code = main(sys.argv[1:])\n"
             f"print(code, [m for m in {unused!r} if m in sys.modules])\n")
    done = subprocess.run([sys.executable, "-c", probe, "build"], cwd=mini.root, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.stdout == "0 []\n", done.stderr
    assert done.stderr.endswith("built dev, prod (8 file(s) changed)\n")
    assert (mini.root / "generated/dev/config.json").is_file()


def test_a_layer_file_whose_verdict_asks_git_is_read_by_every_build(
        mini: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from magcfg.pipeline import cache as cache_module
    from magcfg.pipeline.load import FileSource

    # One line without a line end: a symlink's target that a checkout without symlinks
    # wrote as a file, or not, as git's index says (project.Checkout), which may change
    # while the file does not.
    mini.write("layers/environments/dev/logging.yaml", "logging: {level: warn}")
    monkeypatch.setattr(cache_module, "RACY_NS", 50_000_000)
    time.sleep(0.1)
    magcfg.build(load(mini))
    read = calls(monkeypatch, FileSource, "read_examined", 1)
    magcfg.build(load(mini))
    assert read == ["layers/environments/dev/logging.yaml"]


def test_a_layer_file_read_late_must_hold_the_bytes_of_its_digest(mini: Project) -> None:
    from magcfg.compiler import Compiler

    compiler = Compiler(load(mini), cache=BuildCache(None))
    raw = (mini.root / "layers/base/logging.yaml").read_bytes()
    assert compiler._read_as("layers/base/logging.yaml",
                             hashlib.sha256(raw).hexdigest()) == raw
    with pytest.raises(magcfg.BuildError) as raised:
        compiler._read_as("layers/base/logging.yaml", hashlib.sha256(b"other").hexdigest())
    assert [(d.file, d.message) for d in raised.value.diagnostics] == [
        ("layers/base/logging.yaml", "the file changed while magcfg was reading it; "
         "build again")]


def test_a_schema_changed_just_before_a_build_is_hashed_by_the_next_one_too(
        mini: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    from magcfg.pipeline.load import FileSource

    hashed = calls(monkeypatch, FileSource, "sha256", 1)
    magcfg.build(load(mini))  # the fixture wrote it a moment ago: it may change again
    magcfg.build(load(mini))  # within the same tick of the file system's clock
    assert hashed == ["schemas/schema.json"] * 2


@pytest.mark.parametrize("damage", [
    lambda text: text.replace('"type": "object"', '"type": "objekt"', 1),
    lambda text: text[:-2],
    lambda text: text.replace('"properties": {', '"properties": {"a": 1, "a": 2, ', 1),
])
def test_schema_errors_are_reported_as_by_one_process(realistic: Path, tmp_path: Path,
                                                      damage: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from magcfg import compiler as compiler_module

    monkeypatch.setattr(compiler_module, "MIN_ASIDE_SCHEMA_BYTES", 0)  # split aside too
    source = tmp_path / "source"
    shutil.copytree(realistic, source)
    schema = source / "schemas" / "platform.schema.json"
    schema.write_text(damage(json.dumps(json.loads(schema.read_text()), indent=1)))
    said_one, tree_one, _ = _build_in(1, source, tmp_path / "one")
    said_two, tree_two, _ = _build_in(2, source, tmp_path / "two")
    assert said_one and all("platform.schema.json" in s for s in said_one), said_one
    assert said_two == said_one
    assert tree_one == tree_two == {}


def test_a_schema_that_is_not_split_is_compiled_in_one_process(mini: Project) -> None:
    """Two processes would each compile the whole schema: no workers."""
    schema = json.loads((mini.root / "schemas" / "schema.json").read_text())
    schema["allOf"] = [{"required": ["magds"]}]  # relates top-level keys: not split
    schema["additionalProperties"] = {"type": "object"}
    mini.write("schemas/schema.json", json.dumps(schema))
    for i in range(40):
        mini.write(f"layers/base/k{i}.yaml", f"k{i}:\n  v: {i}\n")
    result = magcfg.build(load(mini), cache=BuildCache(None), jobs=2)
    assert result.timings is not None and "workers" not in result.timings.seconds


def test_workers_keep_no_piece_of_the_schema_they_are_done_with(
        realistic: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once a key's fragments and summary are cached, its parsed piece, index and
    validator are dropped (they are several times the schema's bytes); a piece asked
    for again is read back from the cache."""
    from magcfg import compiler as compiler_module
    from magcfg.compiler import Compiler

    monkeypatch.setattr(compiler_module, "MIN_ASIDE_SCHEMA_BYTES", 0)
    compiler = Compiler(load(Project(realistic)), cache=BuildCache(None))
    with compiler.schema_aside(2):
        stacks = compiler.load_stacks(["dev", "staging", "production"])
    compiler.prepare(stacks, 2)
    schema = compiler.schema()
    assert schema is not None and len(schema.piece_digests()) == 24
    assert compiler._validators == {}
    assert all(piece._document is None for piece in schema._pieces.values())
    assert schema.piece("svc_003").document["properties"].keys() == {"svc_003"}


def test_compile_environment_reads_the_build_cache_and_never_writes_it(
        mini: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    from magcfg.compiler import Compiler

    project = magcfg.load_project(mini.root / "magcfg.yaml")
    magcfg.build(project)
    cache = {p.name: p.read_bytes() for p in (mini.root / ".magcfg-cache").iterdir()}
    mini.write("layers/environments/dev/magds.yaml", "magds:\n  host: edited\n")
    merged = calls(monkeypatch, Compiler, "_merge_fragment", arg=1)
    artifact = magcfg.compile_environment(magcfg.load_project(mini.root / "magcfg.yaml"),
                                          "dev")
    assert artifact.config["magds"]["host"] == "edited"
    assert merged == ["magds"]  # logging came from the cache
    assert {p.name: p.read_bytes() for p in (mini.root / ".magcfg-cache").iterdir()} == cache


@pytest.mark.parametrize("command", [("build",), ("build", "--check")])
def test_a_huge_previous_manifest_is_refused_unread(mini: Project,
                                                    command: tuple[str, ...]) -> None:
    from magcfg.artifact import MAX_MANIFEST_BYTES

    from .conftest import tree_state

    assert mini.run("build", "-q").returncode == 0
    with open(mini.root / "generated/dev/manifest.json", "r+b") as fh:
        fh.truncate(MAX_MANIFEST_BYTES + 1)  # sparse
    before = tree_state(mini.root / "generated")
    stderr = failed_cleanly(mini.run(*command), 1)
    assert stderr == (f"generated/dev/manifest.json: error: is larger than {MAX_MANIFEST_BYTES} "
                      "bytes\n")
    assert tree_state(mini.root / "generated") == before


@pytest.mark.parametrize(("first", "second", "how"), [
    ("layers/base/Logging.yaml", "layers/environments/prod/logging.yaml", None),
    ("layers/base/Logging.yaml", "layers/base/logging.yaml", "in case"),
    ("layers/base/\u00dcber.yaml", "layers/base/\u00fcber.yaml", "in case"),
    # One letter folded to one, as file systems fold: final sigma, long s, capital ß.
    ("layers/base/\u03c2.yaml", "layers/base/\u03c3.yaml", "in case"),
    ("layers/base/\u017fx.yaml", "layers/base/sx.yaml", "in case"),
    ("layers/base/stra\u1e9ee.yaml", "layers/base/stra\u00dfe.yaml", "in case"),
    ("layers/base/caf\u00e9.yaml", "layers/base/cafe\u0301.yaml",
     "in Unicode normalization ('layers/base/cafe\\u0301.yaml' and "
     "'layers/base/caf\\xe9.yaml': NFC and NFD spell the same name)"),
    ("layers/base/sub/logging.yaml", "layers/base/sub./logging.yaml",
     "in a trailing dot or space of a name, which Windows drops"),
    ("layers/base/sub/logging.yaml", "layers/base/sub /logging.yaml",
     "in a trailing dot or space of a name, which Windows drops"),
    ("layers/base/logging.yaml", "layers/base/log\u200dging.yaml",
     "in code points macOS (HFS+) ignores ('layers/base/logging.yaml' and "
     "'layers/base/log\\u200dging.yaml')"),
])
def test_layer_files_one_file_on_macos_or_windows_are_refused(
        mini: Project, first: str, second: str, how: str | None) -> None:
    """Two names that macOS and Windows file systems take for one file: a checkout there
    holds one of them, and its build, digests and signature would differ from Linux's."""
    (mini.root / "layers/base/logging.yaml").unlink()
    mini.write(first, "logging:\n  level: debug\n")
    mini.write(second, "logging:\n  level: error\n")
    done = mini.run("build")
    if how is None:  # different directories: two files everywhere
        assert done.returncode == 0, done.stderr
        return
    stderr = failed_cleanly(done)
    later, earlier = sorted((first, second), key=str.encode, reverse=True)
    where = "on Windows" if "Windows drops" in how else "on macOS" if "HFS+" in how \
        else "on macOS and Windows"
    shown = later.replace("\u200d", "\\u200d")  # as every file name is printed
    assert f"{shown}: error: differs from {earlier} only {how}: {where} they are one " \
        "file; rename or merge them\n" in stderr
    assert mini.snapshot_tree() == {}


@pytest.mark.parametrize(("rel", "device"), [
    ("layers/base/con.yaml", "con.yaml"), ("layers/base/NUL.yaml", "NUL.yaml"),
    ("layers/base/Com1.tar.yaml", "Com1.tar.yaml"), ("layers/base/aux/logging.yaml", "aux"),
    ("layers/base/lpt\u00b9.yaml", "lpt\u00b9.yaml"), ("layers/base/prn .yaml", "prn .yaml"),
    ("layers/base/console.yaml", None), ("layers/base/com10.yaml", None),
])
def test_a_layer_file_named_as_a_windows_device_is_refused(
        mini: Project, rel: str, device: str | None) -> None:
    """``con.yaml`` is no file on Windows (CON, PRN, AUX, NUL, COM0-9, LPT0-9, any case,
    any extension): a checkout there lacks it and builds, and signs, other bytes."""
    mini.write(rel, "magds:\n  tags: [a]\n")
    done = mini.run("build")
    if device is None:
        assert done.returncode == 0, done.stderr
        return
    assert failed_cleanly(done) == (
        f"{rel}: error: has the name '{device}', which Windows keeps for a device (CON, "
        "PRN, AUX, NUL, COM0-9, LPT0-9, with any extension): a checkout on Windows cannot "
        "hold it; rename it\n")
    assert mini.snapshot_tree() == {}


@pytest.mark.parametrize("names", [("stra\u00dfe", "strasse"), ("\ufb01le", "file")])
def test_layer_files_only_full_case_folding_makes_one_are_two(
        mini: Project, names: tuple[str, str]) -> None:
    """Full case folding takes ß for ss and the ligature ﬁ for fi; no file system
    does (macOS and Windows fold letter by letter), so both files are built."""
    mini.write(f"layers/base/{names[0]}.yaml", "magds:\n  tags: [a]\n")
    mini.write(f"layers/base/{names[1]}.yaml", "magds:\n  password: env://DB_PASSWORD\n")
    done = mini.run("build")
    assert done.returncode == 0, done.stderr


_IGNORED_TAIL = ("so a clone of the repository, as CI builds, lacks it: commit it with "
                 "`git add -f`, or take it out of that rule")


def _ignored(path: str, rule: str) -> str:
    """The build's error for an input git ignores by ``rule``."""
    return f"{path}: error: is ignored by git ({rule}), {_IGNORED_TAIL}"


def test_inputs_git_ignores_are_named_with_the_rule(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A layer or schema that git ignores is never committed: this checkout built with
    it, and a clone (CI) without it, so the two disagreed and nothing said why."""
    top = tmp_path / "repo"
    project = Project(top / "platform")
    project.write("magcfg.yaml", MINI_PROJECT)
    for rel, text in MINI_BASE.items():
        project.write(rel, text)
    run = functools.partial(subprocess.run, cwd=top, check=True, capture_output=True)
    run(["git", "init", "-q"])
    run(["git", "add", "-A"])
    project.write("schemas/schema.json", json.dumps(MINI_SCHEMA, indent=2))
    # Matched by a rule, but tracked: in every clone, so no error.
    (top / ".gitignore").write_text("# generated by hand\nplatform/layers/base/magds.yaml\n"
                                    "*.json\n")
    project.write("layers/.gitignore", "*.local.yaml\n")
    project.write("layers/environments/dev/mine.local.yaml", "logging:\n  level: debug\n")
    excludes = tmp_path / "global-ignore"  # a rule of this machine alone
    excludes.write_text("prod-only.yaml\n")
    (tmp_path / "gitconfig").write_text(f"[core]\n\texcludesFile = {excludes}\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "gitconfig"))
    project.write("layers/environments/prod/prod-only.yaml", "magds:\n  port: 6000\n")
    spawned = calls(monkeypatch, subprocess, "Popen")
    with pytest.raises(magcfg.BuildError) as raised:
        magcfg.build(load(project))
    tail = _IGNORED_TAIL
    assert [d.format() for d in raised.value.diagnostics] == [
        f"layers/environments/dev/mine.local.yaml: error: is ignored by git "
        f"(layers/.gitignore:1:*.local.yaml), {tail}",
        f"layers/environments/prod/prod-only.yaml: error: is ignored by git "
        f"({excludes}:1:prod-only.yaml), {tail}",
        f"schemas/schema.json: error: is ignored by git (../.gitignore:3:*.json), {tail}",
    ]
    assert sum(args[:2] == ["git", "check-ignore"] for args in spawned) == 1
    assert project.snapshot_tree() == {}
    # Committed all the same: the build passes.
    run(["git", "add", "-f", "platform"])
    magcfg.build(load(project))


def test_inputs_a_negated_rule_takes_back_are_not_ignored(mini: Project) -> None:
    """``git check-ignore -v`` names the last rule that matched, a ``!`` one included,
    for a path that rule takes back: such an input is committed like any other, and
    calling it ignored failed a build that CI builds alike."""
    subprocess.run(["git", "init", "-q"], cwd=mini.root, check=True)
    mini.write(".gitignore", "*.yaml\n!layers/**\n!magcfg.yaml\nlayers/base/magds.yaml\n")
    with pytest.raises(magcfg.BuildError) as raised:
        magcfg.build(load(mini))
    assert [d.format() for d in raised.value.diagnostics] == [
        _ignored("layers/base/magds.yaml", ".gitignore:4:layers/base/magds.yaml")]
    mini.write(".gitignore", "*.yaml\n!layers/**\n!magcfg.yaml\n")
    magcfg.build(load(mini))


@pytest.mark.parametrize("name", [":(exclude)extra", ":!extra", ":/extra"])
def test_a_layer_path_that_reads_as_pathspec_magic_leaves_the_ignore_check_on(
        mini: Project, name: str) -> None:
    """git reads a path beginning with ":" as pathspec magic, and refused the whole
    question for it: every other input went unchecked, an ignored one built as well."""
    mini.write("magcfg.yaml", MINI_PROJECT.replace(
        "schema:", f"  - name: extra\n    path: '{name}'\nschema:"))
    mini.write(f"{name}/extra.yaml", "logging:\n  level: warn\n")
    subprocess.run(["git", "init", "-q"], cwd=mini.root, check=True)
    mini.write(".gitignore", "layers/base/magds.yaml\n")
    with pytest.raises(magcfg.BuildError) as raised:
        magcfg.build(load(mini))
    assert [d.format() for d in raised.value.diagnostics] == [
        _ignored("layers/base/magds.yaml", ".gitignore:1:layers/base/magds.yaml")]
    mini.write(".gitignore", f"/{name}/\n".replace("!", "\\!"))
    with pytest.raises(magcfg.BuildError) as raised:
        magcfg.build(load(mini))
    assert [d.file for d in raised.value.diagnostics] == [f"{name}/extra.yaml"]


def test_a_git_that_cannot_answer_about_the_inputs_fails_the_build(
        mini: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ignored-input check fails closed: git hung (a FIFO .gitignore), failed, or
    answered more than is read is a located error, never a check silently skipped."""
    import os

    import magcfg.project

    subprocess.run(["git", "init", "-q"], cwd=mini.root, check=True)
    os.mkfifo(mini.root / ".gitignore")
    monkeypatch.setattr(magcfg.project, "GIT_ANSWER_SECONDS", 1)
    with pytest.raises(magcfg.BuildError) as raised:
        magcfg.build(load(mini))
    [d] = raised.value.diagnostics
    assert d.format().startswith(
        "magcfg.yaml: error: git could not say whether the files the build reads are "
        "ignored, left out of this checkout or converted in it (`git check-ignore` gave no "
        "answer in 1 s: "
        "is something it reads, such as a .gitignore, a FIFO")
    assert mini.snapshot_tree() == {}
    (mini.root / ".gitignore").unlink()
    loaded = load(mini)
    (mini.root / ".git/index").write_bytes(b"DIRC not an index")
    with pytest.raises(magcfg.BuildError) as raised:
        magcfg.build(loaded)
    # The versions' base is asked of git too, and fails as closed, with the rest.
    manifests, ignored = raised.value.diagnostics
    assert manifests.format() == (
        "generated/dev/manifest.json: error: git could not give the manifests committed "
        "here, from which versions are numbered (git cat-file stopped answering): fix "
        "what stops git, then build again")
    assert "(`git check-ignore` failed with exit status 128: fatal: " in ignored.message
    # Loading the project asks git's index about the project file: as closed.
    with pytest.raises(magcfg.BuildError) as raised:
        load(mini)
    [d] = raised.value.diagnostics
    assert d.format().startswith(
        "magcfg.yaml: error: may be a symlink in git held as a file of its target (a "
        "checkout without symlink support), or in Git LFS, and git, which would tell, "
        "did not answer "
        "(`git ls-files` failed with exit status 128: fatal: "), d.format()
    (mini.root / ".git/index").unlink()
    # Room for git's answers about the project file alone (index, attributes).
    monkeypatch.setattr(magcfg.project, "MAX_GIT_ANSWER", 128)
    with pytest.raises(magcfg.BuildError) as raised:
        magcfg.build(load(mini))
    assert "(`git check-ignore` answered more than 128 bytes)" in \
        raised.value.diagnostics[0].message
    monkeypatch.setattr(magcfg.project, "MAX_GIT_ANSWER", 64 << 20)
    magcfg.build(load(mini))


@pytest.mark.parametrize(("encoding", "committed", "read"), [
    ("UTF-7", "db-café+x", b"db-caf+AOkAKw-x"),
    ("ISO-8859-1", "dbÃ©", "dbé".encode()),
])
def test_inputs_git_checks_out_in_another_encoding_are_refused(
        tmp_path: Path, encoding: str, committed: str, read: bytes) -> None:
    """A ``working-tree-encoding`` that writes text which reads as UTF-8 (UTF-7, or
    Latin-1 for a file of Latin-1's letters) leaves no mark in the bytes: a pull request
    adding one in a layer directory had every clone build, and sign, other values than
    the commit holds. The attribute is asked; a value git converts nothing for builds."""
    run = functools.partial(subprocess.run, check=True, capture_output=True)
    commit = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "c"]
    top = Project(tmp_path / "origin")
    top.write("magcfg.yaml", MINI_PROJECT)
    top.write("schemas/schema.json", json.dumps(MINI_SCHEMA, indent=2))
    for rel, text in MINI_BASE.items():
        top.write(rel, text)
    top.write("layers/base/magds.yaml", f"magds:\n  host: {committed}\n")
    run(["git", "init", "-q"], cwd=top.root)
    run(["git", "add", "-A"], cwd=top.root)
    run(commit, cwd=top.root)
    # Added after the file: git would convert the file from that encoding if added with it.
    top.write("layers/base/.gitattributes", f"magds.yaml working-tree-encoding={encoding}\n")
    run(["git", "add", "layers/base/.gitattributes"], cwd=top.root)
    run(commit, cwd=top.root)
    clone = Project(tmp_path / "clone")
    run(["git", "clone", "-q", str(top.root), str(clone.root)])
    assert (clone.root / "layers/base/magds.yaml").read_bytes() == \
        f"magds:\n  host: {read.decode()}\n".encode()
    stderr = failed_cleanly(clone.run("build"))
    assert stderr == (
        f"layers/base/magds.yaml: error: is checked out in {encoding} (a "
        "working-tree-encoding in .gitattributes), not the UTF-8 the commit holds, so the "
        "build may read other bytes than the commit's; give its path "
        "`-working-tree-encoding` in the deepest .gitattributes that sets it and check it "
        "out again\n")
    assert clone.snapshot_tree() == {}
    clone.write("layers/base/.gitattributes", "magds.yaml working-tree-encoding=utf8\n")
    done = clone.run("build")
    assert done.returncode == 0, done.stderr


def test_inputs_are_checked_beside_a_layer_in_a_submodule(mini: Project, tmp_path: Path) -> None:
    """git refuses a path in a submodule (`fatal: Pathspec ... is in submodule`) and
    answered nothing for the whole build: one layer directory shared as a submodule
    hid every ignored input. Its files are the submodule's, left out of the question."""
    run = functools.partial(subprocess.run, check=True, capture_output=True)
    shared = tmp_path / "shared"
    (shared / "layer").mkdir(parents=True)
    (shared / "layer/pool.yaml").write_text("magds:\n  pool:\n    max: 7\n")
    run(["git", "init", "-q"], cwd=shared)
    run(["git", "add", "-A"], cwd=shared)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "s"], cwd=shared)
    run(["git", "init", "-q"], cwd=mini.root)
    run(["git", "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(shared),
         "layers/shared"], cwd=mini.root)
    mini.write("magcfg.yaml", MINI_PROJECT.replace(
        "    path: layers/base\n", "    path: layers/base\n  - name: shared\n"
        "    path: layers/shared/layer\n"))
    mini.write(".gitignore", "*.local.yaml\n")
    mini.write("layers/environments/dev/mine.local.yaml", "logging:\n  level: debug\n")
    with pytest.raises(magcfg.BuildError) as raised:
        magcfg.build(load(mini))
    assert [d.format() for d in raised.value.diagnostics] == [
        _ignored("layers/environments/dev/mine.local.yaml", ".gitignore:1:*.local.yaml")]


def test_an_output_git_ignores_is_a_warning_naming_the_rule(mini: Project) -> None:
    """generated/ is committed: CI's `build --check` and every delivery read it from a
    clone. A rule that ignores it keeps it out of every commit, and the clone's check
    would say only that the files are stale."""
    run = functools.partial(subprocess.run, cwd=mini.root, check=True, capture_output=True)
    run(["git", "init", "-q"])
    mini.write(".gitignore", "generated/\n")
    done = mini.run("build")
    assert done.returncode == 0, done.stderr
    assert ("generated/dev/manifest.json: warning: is ignored by git (.gitignore:1:"
            "generated/): the build writes it to be committed, and a clone of the "
            "repository, as CI checks and delivers it, lacks it: take it out of that rule "
            "(a `!` rule after it)\n") in done.stderr
    strict = mini.run("build", "--strict")
    assert strict.returncode == 1 and "Traceback" not in strict.stderr
    mini.write(".gitignore", "generated/\n!generated/\n")
    assert "ignored by git" not in mini.run("build").stderr


def test_inputs_reached_through_symlinks_are_checked_where_they_are(
        mini: Project) -> None:
    """git refuses a path beyond a symlink (``fatal: ... is beyond a symbolic link``) and
    answered nothing for the whole build: a layer directory linked in hid every ignored
    input. A linked file is committed apart from its target, so both are asked."""
    run = functools.partial(subprocess.run, cwd=mini.root, check=True, capture_output=True)
    run(["git", "init", "-q"])
    mini.write(".gitignore", "private/\n")
    (mini.root / "layers/environments/prod").rename(mini.root / "shared-prod")
    (mini.root / "layers/environments/prod").symlink_to("../../shared-prod")
    mini.write("private/magds.yaml", "magds:\n  port: 6000\n")
    (mini.root / "layers/environments/dev/magds.yaml").unlink()
    (mini.root / "layers/environments/dev/magds.yaml").symlink_to("../../../private/magds.yaml")
    mini.write("shared-prod/ignored.yaml", "magds:\n  host: x\n")
    mini.write("shared-prod/.gitignore", "ignored.yaml\n")
    with pytest.raises(magcfg.BuildError) as raised:
        magcfg.build(load(mini))
    tail = _IGNORED_TAIL
    assert [d.format() for d in raised.value.diagnostics] == [
        "layers/environments/dev/magds.yaml: error: is ignored by git (.gitignore:1:"
        f"private/, at private/magds.yaml, where it leads), {tail}",
        "layers/environments/prod/ignored.yaml: error: is ignored by git (shared-prod/"
        f".gitignore:1:ignored.yaml, at shared-prod/ignored.yaml, where it leads), {tail}",
    ]


def test_layer_files_a_sparse_checkout_left_out_are_named(mini: Project) -> None:
    """A sparse checkout (a CI fetching part of a monorepo) leaves committed files out of
    the work tree: a layer file of an environment built went missing, and the build went
    on without its values, signing other bytes than a full clone."""
    mini.write("layers/environments/prod/magds.yaml", "magds:\n  port: 6000\n")
    run = functools.partial(subprocess.run, cwd=mini.root, check=True, capture_output=True)
    run(["git", "init", "-q"])
    run(["git", "add", "-A"])
    run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "i"])
    run(["git", "sparse-checkout", "set", "--no-cone", "/*",
         "!/layers/environments/prod/magds.yaml"])
    assert not (mini.root / "layers/environments/prod/magds.yaml").exists()
    stderr = failed_cleanly(mini.run("build"))
    assert stderr == (
        "layers/environments/prod/magds.yaml: error: is committed but left out of this "
        "sparse checkout (skip-worktree), so the build would go without it where a full "
        "clone has it: run `git sparse-checkout disable`, or add its directory to the "
        "sparse checkout\n")
    assert mini.snapshot_tree() == {}
    # An environment not built, or a file kept in the work tree: nothing to say.
    assert mini.run("build", "--env", "dev").returncode == 0
    run(["git", "sparse-checkout", "disable"])
    run(["git", "update-index", "--skip-worktree", "layers/environments/prod/magds.yaml"])
    done = mini.run("build")
    assert done.returncode == 0, done.stderr


def test_the_index_is_asked_for_the_layer_files_of_a_directory_holding_others(
        mini: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """A monorepo's layer directory (``services`` for ``services/{service}/config.yaml``)
    holds its code too: git listed every file below it, each with its mode and object
    (``git ls-files -t -s``), and the answer's bound (``MAX_GIT_ANSWER``) failed the
    build for the code's size. Only what could be a layer file is asked about; a layer
    directory named as glob syntax is that directory."""
    mini.write("magcfg.yaml", MINI_PROJECT.replace("path: layers/base", "path: 'layers/b*se'"))
    (mini.root / "layers/base").rename(mini.root / "layers/b*se")
    for i in range(300):
        mini.write(f"layers/b*se/src/module{i:03}.py", "x = 1\n")
    mini.write("layers/base/decoy.yaml", "logging:\n  level: nonsense\n")
    run = functools.partial(subprocess.run, cwd=mini.root, check=True, capture_output=True)
    run(["git", "init", "-q"])
    run(["git", "add", "-A"])
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "i"])
    run(["git", "sparse-checkout", "set", "--no-cone", "/*", "!/layers/b*se/magds.yaml",
         "!/layers/base/decoy.yaml"])
    monkeypatch.setattr(magcfg.project, "MAX_GIT_ANSWER", 8192)
    with pytest.raises(magcfg.BuildError) as raised:
        magcfg.build(load(mini))
    found = {d.file: d.message for d in raised.value.diagnostics}
    assert "left out of this sparse checkout" in found["layers/b*se/magds.yaml"], found
    assert not {"magcfg.yaml", "layers/base/decoy.yaml"} & set(found), found


def test_a_build_outside_any_repository_starts_no_git(
        mini: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each question a build asks git about its inputs fails outside a work tree, and
    then asks git whether it is in one: eight processes of ~4 ms in a build outside
    git. Where no repository can be found (``outside_any_repository``) none is
    started; the build writes the same, its versions numbered from generated/."""
    from magcfg.durable import outside_any_repository

    # Git looks no higher than the project's parent, wherever the temporary directory is.
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(mini.root.parent))
    assert outside_any_repository(mini.root)
    magcfg.build(load(mini))
    built = mini.snapshot_tree()
    mini.write("layers/environments/dev/magds.yaml", "magds:\n  host: db.local\n")
    started = calls(monkeypatch, subprocess.Popen, "__init__", 1)
    result = magcfg.build(load(mini))
    assert started == []
    assert result.written and mini.snapshot_tree() != built
    version = json.loads((mini.root / "generated/dev/manifest.json").read_bytes())["version"]
    assert version == 2  # numbered from the manifest in generated/, as outside git


def test_git_answers_about_ignored_inputs_while_the_build_compiles(
        mini: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """``git check-ignore`` takes ~15 ms for a large repository, a one-file rebuild's
    budget ~0.25 s: the build compiles while git answers, and waits for it after."""
    from magcfg.compiler import Compiler

    subprocess.run(["git", "init", "-q"], cwd=mini.root, check=True)
    events: list[str] = []
    init, wait, compile_ = (subprocess.Popen.__init__, subprocess.Popen.wait,
                            Compiler.compile_each)

    def started(self: subprocess.Popen[bytes], args: list[str], *rest: Any, **kw: Any) -> None:
        events.append(f"start {args[1]}")
        init(self, args, *rest, **kw)

    def waited(self: subprocess.Popen[bytes], timeout: float | None = None) -> int:
        if self.returncode is None:
            events.append(f"wait {self.args[1]}")  # type: ignore[index]
        return wait(self, timeout)

    def compiling(self: Compiler, *args: Any, **kw: Any) -> Any:
        events.append("compile")
        return compile_(self, *args, **kw)

    monkeypatch.setattr(subprocess.Popen, "__init__", started)
    monkeypatch.setattr(subprocess.Popen, "wait", waited)
    monkeypatch.setattr(Compiler, "compile_each", compiling)
    magcfg.build(load(mini))
    ignore = [e for e in events if e.endswith("check-ignore") or e == "compile"]
    assert ignore == ["start check-ignore", "compile", "wait check-ignore"]


def test_a_secret_reached_through_an_alias_is_masked_in_another_keys_error(
        tmp_path: Path) -> None:
    """``port: *p`` quotes the password the anchor ``&p`` set: a diagnostic under a key
    that is not secret masks the text of every literal under a secret key."""
    canary = "canary-Yt7r-alias"
    project = Project(tmp_path / "p")
    project.write("magcfg.yaml", "version: 1\nenvironments: [dev]\nlayers:\n  - name: base\n"
                  "    path: layers/base\nschema:\n  json: schemas/s.json\n")
    project.write("schemas/s.json", json.dumps({"type": "object", "properties": {"db": {
        "type": "object", "properties": {
            "password": {"type": "string", "x-magcfg-secret": True},
            "port": {"type": "integer"}}}}}))
    project.write("layers/base/a.yaml", f"db:\n  password: &p {canary}\n  port: *p\n")
    for args in (("build",), ("build", "--format", "json"), ("build", "--check")):
        result = project.run(*args)
        assert result.returncode == 1, args
        assert "<redacted>" in result.stdout + result.stderr
        assert canary not in result.stdout + result.stderr
    assert 'layers/base/a.yaml:3: error: "<redacted>" is not of type "integer"' \
        in project.run("build").stderr
    for path in project.root.rglob("*"):
        if path.is_file() and path.name != "a.yaml":
            assert canary.encode() not in path.read_bytes(), path


@pytest.mark.parametrize("written", [
    '"canary\\\\Yt7r-alias"', '"canary\\nYt7r-alias"', '"canary\\u200bYt7r-alias"',
    '"' + "canary-Yt7r-" * 30 + '"',
])
def test_a_secret_another_key_s_error_quotes_escaped_or_cut_is_masked(
        tmp_path: Path, written: str) -> None:
    """The schema's message quotes a value as a JSON string (a backslash doubled, a
    newline or a zero-width space escaped) and is cut at 240 characters: the password
    reached through ``port: *p`` was shown, or its first 230 characters, where the
    literal's text matched nothing."""
    project = Project(tmp_path / "p")
    project.write("magcfg.yaml", "version: 1\nenvironments: [dev]\nlayers:\n  - name: base\n"
                  "    path: layers/base\nschema:\n  json: schemas/s.json\n")
    project.write("schemas/s.json", json.dumps({"type": "object", "properties": {"db": {
        "type": "object", "properties": {
            "password": {"type": "string", "x-magcfg-secret": True},
            "port": {"type": "integer"}}}}}))
    project.write("layers/base/a.yaml", f"db:\n  password: &p {written}\n  port: *p\n")
    for args in (("build",), ("build", "--format", "json")):
        result = project.run(*args)
        assert result.returncode == 1, args
        assert "Yt7r" not in result.stdout + result.stderr
    assert project.run("build").stderr.startswith(
        'layers/base/a.yaml:3: error: "<redacted>" is not of type "integer"'
        if len(written) < 200 else 'layers/base/a.yaml:3: error: "... (schema: type)')


def test_masking_a_rebuild_s_diagnostics_walks_the_changed_file_alone(
        mini: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """The secret literals of each layer file are kept by its digest: an editor's
    keystroke, which loads the layers again, walks the file it changed alone."""
    from magcfg.compiler import Compiler
    from magcfg.errors import Diagnostic
    from magcfg.secrets.redaction import Redactor

    walked: list[Any] = []
    secret_texts = Redactor.secret_texts

    def counted(self: Redactor, tree: Any, keypath: tuple[str, ...] = ()) -> set[str]:
        walked.append(tree)
        return secret_texts(self, tree, keypath)

    monkeypatch.setattr(Redactor, "secret_texts", counted)
    compiler = Compiler(load(mini))
    warning = [Diagnostic("layers/base/logging.yaml", 1, "logging", "x", "warning", "t")]
    compiler.load_stacks(["dev", "prod"])
    compiler._redacted(warning)
    files = len(walked)
    assert files == len(compiler._prefixes) > 1
    mini.write("layers/base/logging.yaml", "logging:\n  level: debug\n")
    compiler.forget(["layers/base/logging.yaml"])
    compiler.load_stacks(["dev", "prod"])
    compiler._redacted(warning)
    assert walked[files:] == [{"logging": {"level": "debug"}}]


def test_an_artifact_of_no_environment_is_named_escaped_and_links_are_not_followed(
        mini: Project, tmp_path: Path) -> None:
    """A directory of the output holding a manifest that no environment of the project
    builds is a warning naming it, its name escaped in the text and in the command that
    removes it; a link there, a directory without a manifest, or one named as an
    environment but for case, is no artifact."""
    assert mini.run("build", "-q").returncode == 0
    for name in ("gone\nx", "plain"):
        shutil.copytree(mini.root / "generated/dev", mini.root / "generated" / name)
    (mini.root / "generated/empty").mkdir()
    # prod's own directory where the filesystem folds case (macOS): never to remove.
    shutil.copytree(mini.root / "generated/prod", mini.root / "generated/PROD")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside/manifest.json").write_text("{}")
    (mini.root / "generated/linked").symlink_to(tmp_path / "outside")
    done = mini.run("build", "--check")
    assert done.returncode == 0, done.stderr
    told = ("which is no environment of the project (renamed or removed?): no build "
            "replaces it, and the deploy branch and whatever reads it keep serving it; "
            "remove it at the repository's top")
    assert done.stderr.splitlines() == [
        f"generated/gone\\x0ax/manifest.json: warning: an artifact of 'gone\\x0ax', {told} "
        "(`git rm -r -q 'generated/gone\\x0ax'/`)",
        f"generated/plain/manifest.json: warning: an artifact of 'plain', {told} "
        "(`git rm -r -q generated/plain/`)",
        "up to date: dev, prod"]
