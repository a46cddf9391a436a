"""The ``cue`` CLI as a subprocess: finding it, checking its version, reading its errors.

magcfg never reimplements CUE: schemas (``cue vet``, see cue_schema.py) and layers
(``cue eval``, see cue_layers.py) are evaluated by the real binary. It is looked up
in this order: ``$MAGCFG_CUE`` (a path), ``cue`` on ``PATH``, then the project-local
``.tools/bin/cue`` that ``./scripts/dev setup`` installs, but only if git tracks nothing
under ``.tools/`` (a pull request must not be able to commit the binary magcfg runs).
A project that has no ``.cue`` file in play never needs it.

``cue version`` costs a process start (~10 ms); its answer is remembered in the build
cache per binary (path, size, mtime), so a build whose CUE verdicts are all cached
starts no process at all.
"""

from __future__ import annotations

import os
import re
import selectors
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from ..durable import MAX_INPUT_BYTES, git_env
from ..errors import NO_NEW_TASK, BuildError, Diagnostic, no_new_task, no_new_task_said
from ..pipeline.cache import BuildCache

LOCAL_CUE = ".tools/bin/cue"
"""Where ``./scripts/dev setup`` installs cue; used only while git does not track it."""
MIN_CUE_VERSION = (0, 14, 1)
"""Oldest ``cue`` accepted. Keep in step with CUE_VERSION in scripts/dev."""
CUE_ENV_VAR = "MAGCFG_CUE"
_PINNED = "v{}.{}.{}".format(*MIN_CUE_VERSION)
INSTALL_HINT = (f"install cue {_PINNED} or newer with `go install cuelang.org/go/cmd/cue@{_PINNED}`, "
                "a release binary (https://github.com/cue-lang/cue/releases) or your package "
                "manager (`brew install cue-lang/tap/cue`), then put it on PATH or point "
                f"{CUE_ENV_VAR} at it (in magcfg's own repository `./scripts/dev setup` "
                "installs it into .tools/bin/)")
_VERSION = re.compile(r"\bv?(\d+)\.(\d+)\.(\d+)")
TIMEOUT_SECONDS = 300


class CueBinary(NamedTuple):
    """A ``cue`` executable that passed the version check."""

    path: str
    version: str

    def run(self, args: Sequence[str], cwd: Path, limit: int = MAX_INPUT_BYTES
            ) -> subprocess.CompletedProcess[str]:
        """Run ``cue ARGS`` in ``cwd``; output is text (UTF-8), at most ``limit`` bytes on
        each stream: what cue prints is read whole, like a file of the repository (a
        small .cue file can print gigabytes), so the same limit holds. Both streams are
        read as they come, and cue is stopped once one passes the limit or the time is
        up (no ``preexec_fn``: the build runs threads, and a child forked among them
        may deadlock before it runs cue)."""
        with tempfile.TemporaryDirectory(prefix="magcfg-cue-cache-") as cache:
            return self._run(args, cwd, limit, hermetic_env(cache))

    def _run(self, args: Sequence[str], cwd: Path, limit: int, env: dict[str, str]
             ) -> subprocess.CompletedProcess[str]:
        try:
            proc = subprocess.Popen([self.path, *args], cwd=cwd, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, env=env)
        except OSError as exc:
            if no_new_task(exc):
                raise
            raise BuildError(f"cannot run {self.path}: {exc.strerror}") from None
        with proc:
            assert proc.stdout is not None and proc.stderr is not None
            streams = {proc.stdout.fileno(): bytearray(), proc.stderr.fileno(): bytearray()}
            deadline = time.monotonic() + TIMEOUT_SECONDS
            with selectors.DefaultSelector() as selector:
                for fd in streams:
                    selector.register(fd, selectors.EVENT_READ)
                while selector.get_map():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        proc.kill()
                        raise BuildError(f"cue {args[0]} did not finish within "
                                         f"{TIMEOUT_SECONDS} s")
                    for key, _ in selector.select(left):
                        data = os.read(key.fd, 1 << 16)
                        if not data:
                            selector.unregister(key.fd)
                            continue
                        streams[key.fd] += data
                        if len(streams[key.fd]) > limit:
                            proc.kill()
                            raise BuildError(f"cue {args[0]} printed more than {limit} bytes")
            try:
                code = proc.wait(max(deadline - time.monotonic(), 0.0))
            except subprocess.TimeoutExpired:
                proc.kill()
                raise BuildError(f"cue {args[0]} did not finish within "
                                 f"{TIMEOUT_SECONDS} s") from None
        out, err = (bytes(b).decode("utf-8", errors="replace") for b in streams.values())
        if code != 0 and no_new_task_said(err):  # a crash dump, no error of the input
            raise BuildError(NO_NEW_TASK)
        return subprocess.CompletedProcess(proc.args, code, out, err)


@contextmanager
def workdir() -> Iterator[Path]:
    """A temporary directory for the files of one cue run. cue takes the nearest
    directory above its own holding a ``cue.mod`` for the module it evaluates in, and
    resolves a file's imports from there: one above the temporary directory (a
    ``/tmp/cue.mod`` left on a shared runner, a ``TMPDIR`` inside a CUE module) would
    give a layer's ``import "example.com/x"`` files no commit holds, so it is refused."""
    with tempfile.TemporaryDirectory(prefix="magcfg-cue-") as tmp:
        base = Path(tmp)
        # cue searches from the directory the system names its working directory, the
        # real one: a TMPDIR that is a symlink has other parents there than as spelt.
        real = Path(os.path.realpath(base))
        module = next((p / "cue.mod" for p in (*base.parents, *real.parents)
                       if os.path.lexists(p / "cue.mod")), None)
        if module is not None:
            where = base.parent if real == base else f"{base.parent}, really {real.parent}"
            raise BuildError(f"{module} is above the temporary directory cue runs in "
                             f"({where}), and cue would read imports from it: remove "
                             "it, or set TMPDIR to a directory outside any CUE module")
        yield base


def hermetic_env(cache: str | None = None) -> dict[str, str]:
    """The environment for ``cue``: ours without ``CUE_*`` variables, which change how
    cue evaluates (CUE_EXPERIMENT, ...); builds must not depend on the caller's shell.
    With ``cache``, that is cue's ``CUE_CACHE_DIR``: cue wants one before it evaluates
    anything, and finds none of its own without ``HOME`` (a CI container)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUE_")}
    if cache is not None:
        env["CUE_CACHE_DIR"] = cache
    return env


def find_cue(needed_by: str, root: Path | None = None,
             cache: BuildCache | None = None) -> CueBinary:
    """The ``cue`` binary to use, version-checked.

    ``needed_by`` names the ``.cue`` file (or project file entry) that needs it; the
    error for a missing or too old ``cue`` names it, says why, and how to install."""
    configured = os.environ.get(CUE_ENV_VAR)
    if configured:
        path = shutil.which(configured)
        if path is None:
            _missing(needed_by, f"{CUE_ENV_VAR}={configured} is not an executable file")
    else:
        path = shutil.which("cue")
        why = "the `cue` command was not found on PATH"
        if path is None and root is not None:
            local = root / LOCAL_CUE
            if os.access(local, os.X_OK) and local.is_file():
                refused = _committed(root)
                if refused is None:
                    path = str(local)
                else:
                    why += f", and {LOCAL_CUE} is not used: {refused}"
        if path is None:
            _missing(needed_by, why)
    assert path is not None
    version = _version_of(path, cache)
    if version is None:
        _missing(needed_by, f"{path} does not answer `cue version` like cue does")
    assert version is not None
    if _parse(version) < MIN_CUE_VERSION:
        raise BuildError([Diagnostic(
            needed_by, None, None,
            f"cue {version} at {path} is too old: magcfg needs cue {_PINNED} or newer; "
            f"{INSTALL_HINT}", code="cue-version")])
    return CueBinary(path, version)


def _committed(root: Path) -> str | None:
    """Why ``<root>/.tools/bin/cue`` may not be run, or None. A pull request can commit
    an executable there, or a symlink on the way to one (``.tools`` itself, say): only
    while git tracks nothing under ``.tools/`` is the binary the one ``./scripts/dev
    setup`` installed (outside a git repository there is no pull request)."""
    top = Path(os.path.realpath(root))
    if not any(os.path.lexists(d / ".git") for d in (top, *top.parents)):
        return None
    try:
        done = subprocess.run(["git", "ls-files", "-z", "--", LOCAL_CUE.split("/")[0]],
                              cwd=root, capture_output=True, timeout=30, check=False,
                              env={**git_env(hermetic_env()), "LC_ALL": "C"})
    except (OSError, subprocess.TimeoutExpired) as exc:
        if no_new_task(exc):
            raise
        return "git is not available to tell whether the repository commits it"
    if done.returncode == 0 and done.stdout:
        return "the repository commits files under .tools/ (a commit could plant the binary)"
    if done.returncode != 0 and b"not a git repository" not in done.stderr:
        return "git cannot tell whether the repository commits it"
    return None


def _missing(needed_by: str, why: str) -> None:
    raise BuildError([Diagnostic(needed_by, None, None,
                                 f"this file needs the cue CLI ({_PINNED} or newer), but {why}; "
                                 f"{INSTALL_HINT}", code="cue-missing")])


def _parse(version: str) -> tuple[int, int, int]:
    m = _VERSION.search(version)
    assert m is not None
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def _version_of(path: str, cache: BuildCache | None) -> str | None:
    """``vX.Y.Z`` from ``cue version``, remembered per (path, size, mtime)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    key = BuildCache.fragment_key("cue-version", os.path.realpath(path), str(st.st_size),
                                  str(st.st_mtime_ns))
    if cache is not None:
        known = cache.fragment(key)
        if isinstance(known, str):
            return known
    try:
        done = subprocess.run([path, "version"], capture_output=True, text=True,
                              encoding="utf-8", errors="replace", timeout=30, check=False,
                              env=hermetic_env())
    except (OSError, subprocess.TimeoutExpired) as exc:
        if no_new_task(exc):  # cue is there, and could not start
            raise
        return None
    if done.returncode != 0 and no_new_task_said(done.stderr):
        raise BuildError(NO_NEW_TASK)
    first = (done.stdout.strip().splitlines() or [""])[0]
    m = re.match(r"cue version (\S+)", first)
    if done.returncode != 0 or m is None or _VERSION.search(m.group(1)) is None:
        return None
    version = m.group(1)
    if cache is not None:
        cache.put_fragment(key, version)
    return version


# --------------------------------------------------------------------------- errors


class CueError(NamedTuple):
    """One error as ``cue`` prints it: a value path (segments, may be empty), the
    message, and the source positions (file as printed, line, column)."""

    path: tuple[str, ...]
    message: str
    positions: tuple[tuple[str, int, int], ...]


_LABEL = r'(?:"(?:[^"\\]|\\.)*"|[^\s".:]+)'
_HEADER = re.compile(rf"^({_LABEL}(?:\.{_LABEL})*): (.*)$")
POSITION = re.compile(r"^\s+(.+?):(\d+):(\d+)$")
"""A line of cue's errors naming a source position: file, line, column."""
_SEGMENT = re.compile(r'"(?:[^"\\]|\\.)*"|[^.]+')


def split_path(text: str) -> tuple[str, ...]:
    """CUE's printed path (``a."b-c".0``) as segments (``a``, ``b-c``, ``0``)."""
    import json

    out = []
    for token in _SEGMENT.findall(text):
        out.append(json.loads(token) if token.startswith('"') else token)
    return tuple(out)


def parse_errors(stderr: str) -> list[CueError]:
    """The errors of a failed ``cue vet`` / ``cue eval``, in the order printed."""
    errors: list[CueError] = []
    path: tuple[str, ...] = ()
    message = ""
    positions: list[tuple[str, int, int]] = []
    started = False

    def flush() -> None:
        if started:
            # cue ends a header with ":" when positions or sub-errors follow.
            text = message[:-1] if message.endswith(":") else message
            errors.append(CueError(path, text.strip(), tuple(positions)))

    for line in stderr.splitlines():
        if not line.strip():
            continue
        pos = POSITION.match(line)
        if pos and line[0].isspace():
            positions.append((pos.group(1), int(pos.group(2)), int(pos.group(3))))
            continue
        flush()
        started, positions = True, []
        m = _HEADER.match(line)
        if m and not line[0].isspace():
            path, message = split_path(m.group(1)), m.group(2)
        else:
            path, message = (), line.strip()
    flush()
    return errors


def merge_disjunctions(errors: list[CueError]) -> list[CueError]:
    """One error per path where cue printed ``N errors in empty disjunction`` and then
    the alternatives' errors (not always next to it): a single alternative's error (an
    ``error("...")`` rule) speaks for itself; several are joined."""
    disjunction = re.compile(r"\d+ errors in empty disjunction")
    headed = {e.path for e in errors if disjunction.fullmatch(e.message)}
    out: list[CueError] = []
    done: set[tuple[str, ...]] = set()
    for e in errors:
        if e.path not in headed:
            out.append(e)
            continue
        if e.path in done:
            continue
        done.add(e.path)
        group = [g for g in errors if g.path == e.path]
        others = [g for g in group if not disjunction.fullmatch(g.message)]
        positions = tuple(p for g in group for p in g.positions)
        if not others:
            out.append(CueError(e.path, group[0].message, positions))
        elif len(others) == 1:
            out.append(CueError(e.path, others[0].message, positions))
        else:
            details = "; ".join(dict.fromkeys(g.message for g in others))
            out.append(CueError(e.path, f"no alternative matches ({details})", positions))
    return out
