"""Shared fixtures: small real projects in temp dirs, the console script, canaries."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import resource
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
MAGCFG = Path(sys.executable).with_name("magcfg")

# ------------------------------------------------------------------ nothing left behind

_PRIVATE_TEMP = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    """The suite runs with a temporary directory of its own (TMPDIR, made by the main
    process; pytest-xdist's workers and every tool a test starts inherit it), so that
    what a test leaves behind can be seen: files there, and processes still running
    with that TMPDIR. The path is short: Chromium and the servers put Unix sockets
    under it."""
    if hasattr(config, "workerinput"):
        return
    private = Path(tempfile.mkdtemp(prefix="mt-"))
    private.chmod(0o711)  # tools run as another user (postgres) reach their directories
    os.environ["TMPDIR"] = str(private)
    tempfile.tempdir = None
    config.stash[_PRIVATE_TEMP] = private


def _started_by_the_suite(private: Path) -> list[str]:
    """The live processes whose environment holds the suite's TMPDIR."""
    marker = f"TMPDIR={private}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:  # a zombie's environment reads empty; a process may end meanwhile
            if marker not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        found.append(f"{entry.name} ({b' '.join(argv).decode(errors='replace').strip()})")
    return found


@pytest.hookimpl(trylast=True)  # after pytest's clean-up of its basetemp and xdist's workers
def pytest_sessionfinish(session: pytest.Session) -> None:
    private = session.config.stash.get(_PRIVATE_TEMP, None)
    if private is None:
        return
    deadline = time.monotonic() + 10  # workers and tools being stopped may still be ending
    while (running := _started_by_the_suite(private)) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = sorted(entry.name for entry in private.iterdir()
                  if not entry.name.startswith("pytest-of-"))
    for what, names in (("processes", running), ("files", left)):
        if names:
            print(f"\nerror: the tests left {what} behind: {', '.join(names)} (TMPDIR "
                  f"{private}): a test did not stop or remove what it started",
                  file=sys.stderr)
    if running or left:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    else:
        shutil.rmtree(private, ignore_errors=True)


# ------------------------------------------------------------------ the longest files first

LONGEST_FILES = (
    "tests/scaffold/test_init.py",
    "tests/test_cli_conventions.py",
    "tests/test_compiler.py",
    "tests/runtime/test_registry_hostile.py",
    "tests/signing/test_deploy_branch.py",
    "tests/runtime/test_vault.py",
    "tests/lsp/test_server.py",
    "tests/review/test_promote.py",
    "tests/test_packaging.py",
    "tests/pipeline/test_cache.py",
)
"""The test files whose tests take longest, longest first (``--durations=0`` of the whole
suite on two quiet cores, summed by file: 179 s for test_init.py, 18 s for the last).
With ``--dist loadfile`` a worker runs a file whole; xdist's own order, by number of
tests, gave test_packaging.py's three and test_deploy_branch.py's seven long tests out
near the end, and one worker ran them while the other had nothing left (scripts/dev
passes ``--no-loadscope-reorder`` so that this order holds)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def file_of(item: pytest.Item) -> str:
        return item.nodeid.split("::", 1)[0]

    rank = {path: n for n, path in enumerate(LONGEST_FILES)}
    tests_in = Counter(file_of(item) for item in items)
    # The rest by number of tests, as xdist orders them; a stable sort keeps each file's
    # tests together and in their order.
    items.sort(key=lambda item: (rank.get(file_of(item), len(rank)), -tests_in[file_of(item)]))


MINI_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["magds"],
    "properties": {
        "magds": {
            "type": "object", "additionalProperties": False, "description": "MagDS",
            "properties": {
                "host": {"type": "string", "description": "host"},
                "port": {"type": "integer", "minimum": 1, "maximum": 65535,
                         "description": "port"},
                "pool": {"type": "object", "description": "pool",
                         "additionalProperties": False,
                         "properties": {"min": {"type": "integer", "description": "min"},
                                        "max": {"type": "integer", "description": "max"}}},
                "password": {"type": "string", "pattern": "^(vault|env)://",
                             "x-magcfg-secret": True, "description": "secret"},
                "tags": {"type": "array", "items": {"type": "string"}, "description": "tags"},
            },
        },
        "logging": {
            "type": "object", "x-magcfg-reload": "hot", "additionalProperties": False,
            "description": "logging",
            "properties": {"level": {"type": "string",
                                     "enum": ["debug", "info", "warn", "error"],
                                     "description": "level"}},
        },
    },
}

MINI_PROJECT = """\
version: 1
environments: [dev, prod]
layers:
  - name: base
    path: layers/base
  - name: environment
    path: "layers/environments/{env}"
schema:
  json: schemas/schema.json
output: generated
"""

MINI_BASE = {
    "layers/base/magds.yaml": "magds:\n  host: db\n  port: 5433\n  pool:\n    min: 1\n    max: 5\n",
    "layers/base/logging.yaml": "logging:\n  level: info\n",
    "layers/environments/dev/magds.yaml": "magds:\n  host: localhost\n",
    "layers/environments/prod/logging.yaml": "logging:\n  level: warn\n",
}


class Project:
    """A real project directory for a test."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, rel: str, content: str | bytes) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 120
            ) -> subprocess.CompletedProcess[str]:
        """Run the real console script in the project directory (``TimeoutExpired`` after
        ``timeout`` seconds: a command that must be quick on hostile input)."""
        full_env = {**os.environ, **(env or {})}
        return subprocess.run([str(MAGCFG), *args], cwd=self.root, capture_output=True,
                              text=True, env=full_env, timeout=timeout)

    def snapshot_tree(self, rel: str = "generated") -> dict[str, str]:
        """sha256 of every file under ``rel`` (to prove a failed build wrote nothing)."""
        base = self.root / rel
        if not base.exists():
            return {}
        return {p.relative_to(base).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(base.rglob("*")) if p.is_file()}


def tree_state(base: Path) -> dict[str, str]:
    """Every entry below ``base`` without following symlinks: a file's sha256 and mode, a
    symlink's target, a directory's (or FIFO's) mode. To prove that a command left a tree (an
    output, or a directory outside the repository) exactly as it was."""
    if not os.path.lexists(base):
        return {}
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, base)
            st = os.lstat(full)
            if os.path.islink(full):
                out[rel] = "link:" + os.readlink(full)
            elif os.path.isdir(full):
                out[rel] = f"dir:{st.st_mode:o}"
            elif not stat.S_ISREG(st.st_mode):  # a FIFO, socket or device: never opened
                out[rel] = f"special:{st.st_mode:o}"
            else:
                with open(full, "rb") as fh:
                    out[rel] = f"file:{st.st_mode:o}:" + hashlib.sha256(fh.read()).hexdigest()
    return out


def fifo_index_project(root: Path) -> None:
    """A one-layer project in a new git repository at ``root`` whose index is a FIFO (a
    repository handed over whole): every git question about the index waits for good."""
    (root / "layers/base").mkdir(parents=True)
    (root / "layers/base/a.yaml").write_text("a: 1\n")
    (root / "magcfg.yaml").write_text(
        "version: 1\nenvironments: [dev]\nlayers:\n  - name: base\n    path: layers/base\n")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    os.mkfifo(root / ".git/index")


def failed_cleanly(done: subprocess.CompletedProcess[str], code: int = 1) -> str:
    """Assert a CLI run failed with ``code`` and a plain message (no Python traceback);
    returns its stderr for the caller's own assertions."""
    text = done.stdout + done.stderr
    assert done.returncode == code, (done.returncode, text)
    assert "Traceback" not in text, text
    return done.stderr


# What `pip install magcfg[test]` brings pytest: a repository's CI and its users have
# these plugins and no others.
_TEST_EXTRA_PLUGINS = frozenset({"magcfg", "syrupy"})


def own_pytest_env(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` for a pytest process of its own, as a repository's pipeline or user runs
    it: none of this pytest's ``PYTEST_`` variables, and of the plugins installed here
    only those of magcfg's ``test`` extra. The others (Hypothesis, pytest-lsp: ~2 s of
    imports a process) are not where it runs; blocked, the process starts as it would
    there, and a command that would need them there fails here too."""
    others = sorted({ep.name for ep in entry_points(group="pytest11")} - _TEST_EXTRA_PLUGINS)
    return {**{k: v for k, v in env.items() if not k.startswith("PYTEST_")},
            "PYTEST_ADDOPTS": " ".join(f"-p no:{name}" for name in others)}


def table_cells(row: str) -> list[str]:
    """The cells of a GFM table row, split as GitHub splits them: at each ``|`` that no
    backslash escapes."""
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", row.strip())[1:-1]]


def code_span(text: str, in_table: bool = True) -> str:
    """What ``text``, which must be exactly one CommonMark code span, shows (with
    ``in_table``, ``\\|`` as ``|``, as GFM shows it in a table cell). Fails where the span
    ends before the text does: the rest would render as Markdown (a link, an image, a
    mention)."""
    opening = re.match("`+", text)
    assert opening, text
    n = len(opening.group())
    close = next((n + m.start() for m in re.finditer("`+", text[n:]) if len(m.group()) == n),
                 None)
    assert close is not None and close + n == len(text), f"the code span ends early: {text!r}"
    shown = text[n:close].replace("\\|", "|") if in_table else text[n:close]
    if shown.startswith(" ") and shown.endswith(" ") and shown.strip(" "):
        shown = shown[1:-1]
    return shown


def descriptors_on(target: Callable[[str], bool]) -> int:
    """How many of this process's descriptors are open on what ``target`` accepts (what
    /proc names: a path, ``socket:[inode]``). Never all of them: the worker's other
    threads (a server of an earlier test still ending, a lookup) open and close
    descriptors of their own at any time."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        # Closed meanwhile: the listing's own descriptor, or another thread's.
        with contextlib.suppress(OSError):
            count += target(os.readlink(f"/proc/self/fd/{fd}"))
    return count


def finishes_in_a_child(script: str, timeout: float = 60) -> str:
    """The output of ``script`` run by this Python in a child, which must finish within
    ``timeout`` seconds (far more than it needs): a quadratic or worse pattern runs
    inside one call into ``re``, where no thread of this process could stop it."""
    try:
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"did not finish in {timeout} s") from None
    assert done.returncode == 0, done.stderr
    return done.stdout


def threadless() -> None:
    """A ``preexec_fn`` after which the process starts no thread and still starts
    processes: each new thread's stack is as large as ``RLIMIT_STACK``, set larger than
    all the address space the process may map (``RLIMIT_AS``, which leaves a Python and
    a git room enough)."""
    resource.setrlimit(resource.RLIMIT_STACK, (4 << 30, 4 << 30))
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))


@contextlib.contextmanager
def no_more_tasks(tasks: int = 1) -> Iterator[Callable[[], None]]:
    """A ``preexec_fn`` after which the process starts no thread nor process, as where
    the limit on processes is reached: ``RLIMIT_NPROC`` of 1 for a user other than root
    (whom it does not bind), for root a pids cgroup of one task, as a container's pids
    limit. Fails where root can make no such cgroup: machines of this project's kind
    can (cgroup v1's pids controller or v2), and the test must run, not skip. With
    ``tasks``, root's cgroup holds that many: the process and a child it starts, say,
    which then starts no thread (a user's limit counts all of its processes, and stays
    1)."""
    if os.geteuid() != 0:
        hard = resource.getrlimit(resource.RLIMIT_NPROC)[1]
        yield lambda: resource.setrlimit(resource.RLIMIT_NPROC, (1, hard))
        return
    group = None
    for parent in (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup")):
        candidate = parent / f"magcfg-test-{os.getpid()}-{time.monotonic_ns()}"
        try:
            candidate.mkdir()
        except OSError:
            continue
        if (candidate / "pids.max").exists():
            group = candidate
            break
        candidate.rmdir()
    assert group is not None, "root here can make no pids cgroup to limit a process's tasks"
    try:
        (group / "pids.max").write_text(str(tasks))
        yield lambda: (group / "cgroup.procs").write_text(str(os.getpid()))
    finally:
        for _ in range(100):  # empty once its process is reaped
            try:
                group.rmdir()
                break
            except OSError:
                time.sleep(0.05)


def python_under_limit(script: str) -> subprocess.CompletedProcess[str]:
    """``script`` run by a fresh interpreter of this checkout's magcfg, after which it
    starts no thread nor process (``no_more_tasks``): what it prints, for the test to
    read."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "compiler")}
    with no_more_tasks() as limit:
        return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                              text=True, timeout=60, check=False, preexec_fn=limit)


def dies_in_a_child(monkeypatch: pytest.MonkeyPatch, owner: object, name: str) -> None:
    """From now on ``owner.name`` ends the process it runs in (exit 3) when that is a
    process forked from this one: a worker that dies mid-way."""
    parent = os.getpid()
    real = getattr(owner, name)

    def dying(*args: Any, **kwargs: Any) -> Any:
        if os.getpid() != parent:
            os._exit(3)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, dying)


def calls(monkeypatch: pytest.MonkeyPatch, owner: object, name: str, arg: int = 0
          ) -> list[Any]:
    """The calls to ``owner.name`` from now on, each as its positional argument ``arg``
    (``1`` for a method's first argument after ``self``); the real one still runs."""
    real = getattr(owner, name)
    seen: list[Any] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(args[arg])
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, spy)
    return seen


def overridden_keyed_list(root: Path) -> tuple[str, str]:
    """(service, environment) of a repository made by ``benchmarks/synth.py --shape
    realistic`` where an environment's layer overrides the service's keyed list
    ``endpoints`` by item name."""
    for path in sorted((root / "layers" / "environments").glob("*/*.yaml")):
        if "\n  endpoints: [{name:" in path.read_text():
            return path.stem, path.parent.name
    raise AssertionError("the generated repository overrides no keyed list")


@pytest.fixture
def mini(tmp_path: Path) -> Project:
    """A small valid project (two environments) with a JSON Schema."""
    project = Project(tmp_path / "proj")
    project.write("magcfg.yaml", MINI_PROJECT)
    project.write("schemas/schema.json", json.dumps(MINI_SCHEMA, indent=2))
    for rel, text in MINI_BASE.items():
        project.write(rel, text)
    return project


@pytest.fixture
def bundled(tmp_path: Path) -> Project:
    """A copy of the repository's own MagFlock project (layers, schemas, generated)."""
    root = tmp_path / "bundled"
    root.mkdir()
    for name in ("magcfg.yaml",):
        shutil.copy2(REPO / name, root / name)
    for name in ("layers", "schemas", "generated"):
        if (REPO / name).exists():
            shutil.copytree(REPO / name, root / name)
    return Project(root)


MakeProject = Callable[[dict[str, str | bytes]], Project]
