"""The project file (``magcfg.yaml``): environments, ordered layers, schema, output.

Feature sections (``secrets``, ``signing``, ``promote``, ``lint``, ...) are kept raw in
``Project.settings`` and read by the stage that owns them; unknown top-level sections
are errors so a typo never silently disables a rule.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import json
import os
import posixpath
import re
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, NamedTuple

from .artifact import ENVIRONMENT_NAME, MAX_CONFIG_DEPTH
from .durable import (
    GIT_ANSWER_SECONDS,
    MAX_INPUT_BYTES,
    MAX_REPLACED_NAME_BYTES,
    PathError,
    checkout_top,
    git_env,
    git_root,
    git_tops_held,
    operator_cwd,
    operator_name_in_checkout,
    outside_any_repository,
    path_problem,
    read_located,
    read_regular,
    real_directory,
    repository_prefix,
)
from .errors import (
    BuildError,
    Diagnostic,
    MagcfgError,
    NoNewTask,
    UsageError,
    no_new_task,
    printable,
)
from .syntax.locate import locate
from .syntax.strict_yaml import MAX_DEPTH, LoadFailed, decode_text, parse_layer

if TYPE_CHECKING:
    import subprocess

PROJECT_FILE_NAMES = ("magcfg.yaml", "magcfg.yml")
LAYER_SUFFIXES = (".yaml", ".yml", ".cue")
"""Layer files: YAML, and CUE (evaluated as ``cue export`` would, see cue/layers.py)."""

MAX_ENVIRONMENTS = 256
"""The most environments a project may list. Each is merged, validated, checked against
CUE and written on its own, so a pull request listing thousands would take a build's
time and memory many times over; none of ours comes near."""

KNOWN_SECTIONS = frozenset({
    "version", "environments", "layers", "schema", "output", "cache",
    # feature sections, each validated by the stage that owns it
    "secrets", "redact", "signing", "promote", "lint", "cue", "runtime",
})
MAPPING_SECTIONS = ("secrets", "signing", "promote", "lint", "cue", "runtime")
LINT_KEYS = ("deploy_paths", "disable", "exclude")
"""The keys of ``lint:`` (read by lint/config.py). Named here so that every command that
loads the project refuses a misspelt one, as it does a misspelt section, without
importing the linter: a ``lint: {exclud: ...}`` would otherwise pass the build and be
ignored by the gate it was meant to configure."""
# Sections no build reads (verify, promote and lint do): not inputs of an artifact.
_NOT_BUILD_INPUTS = frozenset({"signing", "promote", "lint"})
"""Feature sections that are mappings (checked here for their type; their keys by the
stage that owns them)."""
# What YAML may hold besides text: tab, line ends, NEL and the printable planes; any other
# control character (NUL, BEL, ESC, ...) is refused before the parser sees it. Written
# as the complement of [\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]:
# the negated class took 7 ms to compile, at every start.
_NOT_YAML_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff"
                            "\ufffe\uffff]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
GIT_DIR = ".git"
SNAPSHOT_FILE = "__snapshots__/magcfg.ambr"
"""The snapshot tests' file (syrupy's, of the magcfg pytest plugin), beside the project
file: ``review.snapshots`` reads and writes it, the pipelines ``init`` writes run the tests
when it exists."""


class LayerSpec(NamedTuple):
    """One entry of ``layers:``: a directory (``path``, may contain ``{env}``) whose files
    spell out their full key paths, or a file pattern (``files``) with a key prefix
    (``key``) for repositories laid out their own way (``services/{service}/base.yaml``
    holding the keys under ``{service}``).

    This is the one place that maps a file location to key paths: ``directory`` is what
    is listed, ``key_prefix`` whether a listed file belongs to the layer and under which
    key path its content sits, ``file_for`` the file a new key path would be written to
    (``promote``). ``Project.mapping`` answers the same for any file, in every
    environment (for editors)."""

    name: str
    path: str
    files: str | None = None
    key: str | None = None

    def directory(self, env: str) -> str:
        """The directory listed for ``env``: ``path``, or the literal leading
        directories of ``files``."""
        return self.path.replace("{env}", env)

    @property
    def per_environment(self) -> bool:
        return "{env}" in (self.files or self.path)

    def key_prefix(self, env: str, file: str) -> tuple[str, ...] | None:
        """The key path ``file``'s content sits under in ``env`` (``()`` for a directory
        layer), or None when ``file`` is not one of this layer's files."""
        if self.files is None:
            return () if _below(file, self.directory(env)) else None
        found = _pattern(self.files, env).fullmatch(file)
        if found is None:
            return None
        return tuple(_fill(part, found.groupdict(), env) for part in _key_parts(self.key))

    def file_for(self, env: str, keypath: tuple[str, ...]) -> tuple[str, tuple[str, ...]] | None:
        """(file, key path inside it) where this layer would set ``keypath`` in ``env``
        when no file of the layer sets it yet; None when the pattern cannot name one
        (a ``*`` in it, or a key path outside the key prefix)."""
        if self.files is None:
            return (f"{self.directory(env)}/{keypath[0]}.yaml", keypath) \
                if keypath and file_name(keypath[0]) else None
        parts = _key_parts(self.key)
        if "*" in self.files or len(keypath) <= len(parts):
            return None
        values = {"env": env}
        for template, actual in zip(parts, keypath, strict=False):
            placeholder = _PLACEHOLDER.fullmatch(template)
            if placeholder is None:
                if template != actual:
                    return None
            elif values.setdefault(placeholder.group(1), actual) != actual \
                    or not file_name(actual):
                return None
        try:
            path = _PLACEHOLDER.sub(lambda m: values[m.group(1)], self.files)
        except KeyError:  # a placeholder of the file name that the key does not hold
            return None
        if any(_name_bytes(part) > MAX_REPLACED_NAME_BYTES for part in path.split("/")):
            return None  # a key's text with the pattern's own is too long a name
        return path, keypath[len(parts):]


_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


MAX_KEY_NAME_BYTES = MAX_REPLACED_NAME_BYTES - len(".yaml")
"""The longest key that names a file (``file_name``): ``<key>.yaml`` is a name that
``durable.replace_file`` can write."""


def file_name(key: str) -> bool:
    """Whether a key can name a layer's file or directory (``LayerSpec.file_for``): one
    name, not hidden (a layer lists no hidden entry, so a value written there would be
    lost), of at most ``MAX_KEY_NAME_BYTES``; ``..`` or a ``/`` would name a file of
    another layer or environment, and a longer one no file the system can create."""
    return (bool(key) and "/" not in key and "\0" not in key and not key.startswith(".")
            and _name_bytes(key) <= MAX_KEY_NAME_BYTES)


def _name_bytes(name: str) -> int:
    """The length of ``name`` as the file system stores it (UTF-8)."""
    return len(name.encode("utf-8", "surrogatepass"))


def _key_parts(key: str | None) -> tuple[str, ...]:
    return tuple(key.split(".")) if key else ()


def _fill(template: str, values: dict[str, str | None], env: str) -> str:
    return _PLACEHOLDER.sub(lambda m: env if m.group(1) == "env" else values[m.group(1)] or "",
                            template)


def _below(file: str, directory: str) -> bool:
    return file.startswith(directory.rstrip("/") + "/")


MAX_SEGMENT_WILDCARDS = 2
"""Wildcards (``*``, ``{name}``) a segment of a ``files`` pattern may hold: matching a
segment that fails tries each way its wildcards can split it, a number that grows as the
segment's length to the power of their count (ten take 44 s on one file name)."""

_WILDCARD = re.compile(r"(\*|\{[A-Za-z_][A-Za-z0-9_]*\})")


@lru_cache(maxsize=1024)
def _pattern(files: str, env: str) -> re.Pattern[str]:
    """``files`` as a regular expression over paths: ``{env}`` the environment,
    ``{name}`` one path segment (captured), ``*`` any text inside a segment, ``**/``
    any number of directories."""
    out = []
    captured: set[str] = set()
    segments = files.split("/")
    for i, segment in enumerate(segments):
        if segment == "**":
            out.append(r"(?:[^/]+/)*")
            continue
        parts = []
        names = []
        for token in _WILDCARD.split(segment):
            if token == "*":
                parts.append(r"[^/]*")
            elif token == "{env}":
                parts.append(re.escape(env))
            elif token.startswith("{") and token.endswith("}") and len(token) > 2:
                name = token[1:-1]
                parts.append(f"(?P={name})" if name in captured else f"(?P<{name}>[^/]+)")
                captured.add(name)
                names.append(name)
            else:
                parts.append(re.escape(token))
        last = i == len(segments) - 1
        parts.append(r"\Z" if last else "/")
        # A segment's wildcards cannot reach past its "/", so every way to match it ends
        # there and a later segment fails alike after each: the first way is kept
        # (atomic), or paths of several segments cost the product of their ways. Unless
        # a later segment repeats a name it captured, which another way may satisfy.
        later = "/".join(segments[i + 1:])
        atomic = not any(f"{{{name}}}" in later for name in names)
        out.append(f"(?>{''.join(parts)})" if atomic else "".join(parts))
    return re.compile("".join(out))


def _wildcards_problem(files: str) -> str | None:
    """Why ``files`` holds more wildcards than a path can be matched against in time
    (``MAX_SEGMENT_WILDCARDS`` a segment, one ``**/``), or None."""
    segments = files.split("/")
    crowded = next((segment for segment in segments if segment != "**" and sum(
        1 for token in _WILDCARD.findall(segment) if token != "{env}")
        > MAX_SEGMENT_WILDCARDS), None)
    if crowded is not None:
        return (f"files may hold at most {MAX_SEGMENT_WILDCARDS} wildcards (* or {{name}}) "
                f"in a path segment, {crowded!r} has more: {files!r}")
    if segments.count("**") > 1:
        return f"files may hold one **/ at most: {files!r}"
    return None


def files_directory(files: str) -> str:
    """The literal leading directories of a ``files`` pattern (what is listed)."""
    parts = files.split("/")[:-1]
    fixed = []
    for part in parts:
        if "*" in part or ("{" in part and part != "{env}"):
            break
        fixed.append(part)
    return "/".join(fixed) or "."


@dataclass(frozen=True)
class Project:
    """A loaded project file. Paths are relative to ``root`` with ``/`` separators."""

    root: Path
    file: str
    environments: tuple[str, ...]
    layers: tuple[LayerSpec, ...]
    json_schema: str | None
    cue_schema: str | None
    output: str
    cache_dir: str
    settings: dict[str, Any] = field(default_factory=dict)
    digest: str = ""
    raw: bytes = field(default=b"", repr=False, compare=False)
    """The bytes of the project file as loaded (for locating its keys)."""
    named_as: str = field(default="", compare=False)
    """The project file's absolute path as the operator named it (``--project``, or found
    from the current directory the shell names), symlinks not resolved: where ``--since``
    looks for the ref's project first (``gitsource.ref_project_source``)."""

    def build_digest(self, env: str) -> str:
        """The digest of what in the project file can change ``env``'s artifact: its
        parsed settings without the sections only other commands read (``signing``,
        ``promote``, ``lint``) and with ``environments`` narrowed to ``env``. Trusting
        another key, adding an environment or editing a comment leaves ``env``'s
        manifest, and so its signature, as it was."""
        settings = {k: v for k, v in self.settings.items() if k not in _NOT_BUILD_INPUTS}
        settings["environments"] = [env]
        text = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def path(self, relative: str) -> Path:
        return self.root / relative

    @property
    def fenced(self) -> tuple[str, ...]:
        """Directories no layer or schema may be read from, even through a symlink:
        what magcfg writes (the output, the cache) and the git directory (which holds
        the CI's credentials)."""
        return (self.output, self.cache_dir, GIT_DIR)

    def mapping(self, file: str) -> list[tuple[str, LayerSpec, tuple[str, ...]]]:
        """Where a layer file's content goes: (environment, layer, key prefix) for every
        environment and layer that reads ``file`` (a path relative to the root), in
        project order. A file no layer reads maps nowhere (``[]``)."""
        return [(env, spec, prefix) for env in self.environments for spec in self.layers
                if (prefix := spec.key_prefix(env, file)) is not None]

    def check_envs(self, envs: list[str] | None) -> tuple[str, ...]:
        """The environments asked for, in project order; unknown names are usage errors."""
        if not envs:
            return self.environments
        unknown = [e for e in envs if e not in self.environments]
        if unknown:
            import difflib

            prefixed = [e for e in self.environments if e.startswith(unknown[0])]
            hint = prefixed[:1] or difflib.get_close_matches(unknown[0], self.environments, n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise UsageError(f"unknown environment {unknown[0]!r}{extra}; "
                             f"known: {', '.join(self.environments)}")
        return tuple(e for e in self.environments if e in envs)


def _check_commands_settings(data: dict[str, Any], envs: list[str], root: Path,
                             err: Callable[[tuple[str, ...], str], None]) -> None:
    """The ``promote:`` and ``signing:`` sections, which no build reads, checked by every
    command that loads the project: a broken one would otherwise pass the CI gate
    (``build --check``) and fail only the promotion or the verification it configures."""
    promote = data.get("promote")
    if isinstance(promote, dict):
        for key in promote:
            if key != "allow_differences":
                err(("promote", str(key)), unknown_key(key, ("allow_differences",)))
        allow = promote.get("allow_differences")
        if allow is not None and not isinstance(allow, dict):
            err(("promote", "allow_differences"),
                "allow_differences maps an environment (or \"*\") to a list of key globs")
        for scope, globs in (allow.items() if isinstance(allow, dict) else ()):
            where = ("promote", "allow_differences", str(scope))
            if scope != "*" and scope not in envs:
                err(where, f"unknown environment {scope!r} "
                           f"(known: {', '.join(envs)}, or \"*\")")
            elif not isinstance(globs, list) or not all(isinstance(g, str) and g for g in globs):
                err(where, "give a list of dotted key globs")
    signing = data.get("signing")
    if isinstance(signing, dict):
        for key in signing:
            if key != "public_keys":
                err(("signing", str(key)), unknown_key(key, ("public_keys",)))
        paths = signing.get("public_keys", [])
        if not isinstance(paths, list) or not all(isinstance(p, str) and p for p in paths):
            err(("signing", "public_keys"), "public_keys is a list of file paths")
        else:
            for i, path in enumerate(paths):
                problem = _path_problem(_relative(root, path))
                if problem:  # the project file is a pull request's to edit
                    err(("signing", "public_keys", str(i)),
                        f"public keys are files inside the project: {problem}")


def unknown_key(key: object, known: Sequence[str]) -> str:
    """The message for a key that a section of the project file does not have: the
    known key it most resembles, or all of them."""
    import difflib

    hint = difflib.get_close_matches(str(key), known, n=1)
    return f"unknown key {key!r}" + (f" (did you mean {hint[0]!r}?)" if hint
                                     else f"; known: {', '.join(known)}")


class FromTop:
    """The one rule for a file's name in what any command prints (docs/cli.md, "File
    names in messages"): from the top of the git repository the project is in, as
    ``lint`` names files, so that a name in CI's or a hook's output (both run at the
    top) and a JSON or SARIF report's ``file`` open the file there. A project at the top
    of its repository, or outside git: names as they are. ``project`` is the loaded
    project; ``project_file`` the one a command was given, for the names in the errors
    of a project file that does not load. Git is asked once, only when a name is
    printed."""

    def __init__(self, project: Project | None, project_file: Path | None = None) -> None:
        self.project, self.project_file = project, project_file
        self._prefix: str | None = None

    def _directory(self) -> Path | None:
        if self.project is not None:
            return Path(os.path.realpath(self.project.root))
        try:  # the project file failed to load: its directory is known all the same
            file = (self.project_file if self.project_file is not None
                    else find_project_file())
        except MagcfgError:
            return None
        return Path(os.path.realpath(file.parent))

    def prefix(self) -> str:
        """The project directory from the top, ``/``-terminated (empty at the top)."""
        if self._prefix is None:
            directory = self._directory()
            prefix = repository_prefix(str(directory)) if directory is not None else ""
            self._prefix = f"{prefix}/" if prefix else ""
        return self._prefix

    def name(self, rel: str) -> str:
        """``rel`` (relative to the project directory, or absolute) from the top; a
        registry's reference (``oci://...``, which a normalized path never spells) as
        it is."""
        if not rel or os.path.isabs(rel) or "://" in rel or not self.prefix():
            return rel
        if rel == ".." or rel.startswith("../"):  # a file outside the project's directory
            return posixpath.normpath(self.prefix() + rel)
        return self.prefix() + rel

    def diagnostic(self, d: Diagnostic) -> Diagnostic:
        return d if not d.file else d.replace(file=self.name(d.file))

    def error(self, exc: MagcfgError) -> MagcfgError:
        """``exc`` of the same kind (its exit code), its files named from the top."""
        named = MagcfgError([self.diagnostic(d) for d in exc.diagnostics])
        named.exit_code = exc.exit_code
        return named


MAX_GIT_ANSWER = 64 << 20
"""The most bytes of git's answer about a build's inputs read into memory: a path and a
rule per input, megabytes for the largest repositories."""


class GitUnanswered(Exception):
    """git could not answer a build's question about its inputs; the text says why."""


class _Asked:
    """One git command started by ``_ask``, its question, answer and errors in files
    (none outside any repository, where nothing is asked)."""

    def __init__(self, command: list[str], root: Path, env: dict[str, str],
                 question: bytes | None = None) -> None:
        """Starts ``command`` in ``root`` with ``question`` on its standard input (None:
        nothing), from a file rather than a pipe: nothing has to write it while git
        runs."""
        self.command = command
        self.root = root
        self.git: subprocess.Popen[bytes] | None = None
        if outside_any_repository(root):  # git would fail: no work tree, nothing to ask
            return
        import subprocess
        import tempfile

        self.answer = tempfile.TemporaryFile()  # noqa: SIM115 (closed by result)
        self.errors = tempfile.TemporaryFile()  # noqa: SIM115 (closed by result)
        asked: Any = subprocess.DEVNULL
        if question is not None:
            asked = tempfile.TemporaryFile()  # noqa: SIM115 (closed below)
            asked.write(question)
            asked.seek(0)
        try:
            self.git = subprocess.Popen(
                command, cwd=root, stdin=asked, stdout=self.answer, stderr=self.errors,
                env=env)
        except OSError as exc:  # no git: nothing to ask
            if no_new_task(exc):  # git is there, and the answer is needed
                raise
            self.git = None
            self.answer.close()
            self.errors.close()
        else:
            # A question whose answer nobody waits for (another question failed first)
            # may have git blocked for good on what it reads (a FIFO index): stopped when
            # dropped, or at exit (``stop_unasked``), so no process outlives the command
            # or piles up in a language server.
            weakref.finalize(self, _stop, self.git)
            _ASKED.add(self)
        finally:
            if question is not None:
                asked.close()

    def result(self, codes: tuple[int, ...]) -> bytes | GitUnanswered | None:
        """git's answer, or why there is none (``GitUnanswered``); None outside a work
        tree or without git. An exit status other than ``codes`` is a failure. Waited
        for once."""
        if not hasattr(self, "_result"):
            self._result = self._wait(codes)
        return self._result

    def _wait(self, codes: tuple[int, ...]) -> bytes | GitUnanswered | None:
        if self.git is None:
            return None
        import subprocess

        name = " ".join(self.command[:2])
        with self.answer, self.errors:
            try:
                code = _exit_status(self.git, GIT_ANSWER_SECONDS)
            except subprocess.TimeoutExpired:
                self.git.kill()
                self.git.wait()
                return GitUnanswered(f"`{name}` gave no answer in {GIT_ANSWER_SECONDS} s: "
                                     "is something it reads, such as a .gitignore, a FIFO or "
                                     "on a mount that hangs?")
            self.answer.seek(0)
            data = self.answer.read(MAX_GIT_ANSWER + 1)
            self.errors.seek(0)
            said = self.errors.read(4096).decode("utf-8", errors="replace").strip()
        if code in codes:
            if len(data) > MAX_GIT_ANSWER:
                return GitUnanswered(f"`{name}` answered more than {MAX_GIT_ANSWER} bytes")
            return data
        if git_root(self.root) is None:
            return None  # not a work tree: nothing is committed here to check against
        last = said.splitlines()[-1] if said else ""
        return GitUnanswered(f"`{name}` failed with exit status {code}"
                             + (f": {last}" if last else ""))


def _stop(git: Any) -> None:
    """Kill ``git`` (a ``subprocess.Popen``) if it is still running, and reap it."""
    if git.poll() is None:
        git.kill()
        git.wait()


def _exit_status(process: subprocess.Popen[bytes], seconds: float) -> int:
    """``process``'s exit status, waited for at most ``seconds``
    (``subprocess.TimeoutExpired`` after them) and taken as it exits: its pidfd wakes
    the wait, where ``Popen.wait(seconds)`` looks at growing intervals (1, 2, 4 ms, ...)
    and a git that answers in 3 ms was taken at 7. ``Popen.wait`` itself where the
    system has no pidfd."""
    import select
    import subprocess

    if process.returncode is not None:  # reaped: its pid may be another process's
        return process.returncode
    try:
        exited = os.pidfd_open(process.pid)
    except (AttributeError, OSError):
        return process.wait(seconds)
    try:
        waiting = select.poll()
        waiting.register(exited, select.POLLIN)
        if not waiting.poll(seconds * 1000):
            raise subprocess.TimeoutExpired(process.args, seconds)
    finally:
        os.close(exited)
    return process.wait()


_ASKED: weakref.WeakSet[_Asked] = weakref.WeakSet()
"""Every git question not yet dropped (``_Asked``)."""


def stop_unasked() -> None:
    """Stop every git question still running: what ``weakref.finalize`` does at exit, for
    a process that ends by ``os._exit`` (``cli.run``), which runs no exit handler, with
    the garbage collector off (``build_command``), which drops no question held in a
    cycle (an exception's traceback)."""
    for asked in list(_ASKED):
        if asked.git is not None:
            _stop(asked.git)


def git_answer(args: list[str], root: Path, question: bytes | None = None) -> bytes | None:
    """What ``git ARGS`` run in ``root`` prints, given ``question`` on its standard input
    (None: nothing), bounded as the build's questions are (``GIT_ANSWER_SECONDS``,
    ``MAX_GIT_ANSWER``); None without git or outside a work tree; ``GitUnanswered`` if
    git failed, hung or answered too much."""
    return _answer(_asked_about(args, root, question), (0,))


def _answer(asked: _Asked, codes: tuple[int, ...]) -> bytes | None:
    """``asked``'s answer (None: no git, or not a work tree); ``GitUnanswered`` if git
    failed, hung or answered too much."""
    found = asked.result(codes)
    if isinstance(found, GitUnanswered):
        raise found
    return found


def _asked_about(args: list[str], root: Path, question: bytes | None,
                 unset: tuple[str, ...] = ()) -> _Asked:
    """Starts ``git ARGS`` in ``root`` (``git_env``, but the variables ``unset``) with
    ``question`` on its standard input (``_Asked``)."""
    return _Asked(["git", *args], root, question=question,
                  env={k: v for k, v in git_env().items() if k not in unset})


def _fields_of_paths(asked: _Asked, codes: tuple[int, ...], name: str, count: int,
                     per_path: int) -> list[bytes] | None:
    """The NUL-ended fields of ``asked``'s answer for ``count`` paths, ``per_path`` each
    (None: no git, or not a work tree); ``GitUnanswered`` when git failed, hung, or
    answered for fewer paths."""
    answer = _answer(asked, codes)
    if answer is None:
        return None
    fields = answer.split(b"\0")
    if len(fields) < per_path * count:
        raise GitUnanswered(f"`git {name}` answered for {len(fields) // per_path} of "
                            f"{count} paths")
    return fields


def ignored_by_git(root: Path, paths: Sequence[str]) -> Callable[[], dict[str, str]]:
    """Starts one ``git check-ignore`` for ``paths`` (relative to ``root``) and returns
    what waits for its answer: each path git ignores and does not track, with the rule,
    ``source:line:pattern``, the source relative to ``root`` (or absolute: a global
    excludes file); nothing outside a work tree or without git, and ``GitUnanswered``
    when git fails or hangs (a check that cannot run says so). The caller works
    meanwhile: git takes ~15 ms for the 1,500 files of a large repository, which a
    rebuild (~0.24 s) would otherwise wait for. The question and the answer are files,
    not pipes: nothing has to read or write them while git runs, and no thread is
    started (a build forks its workers only while it runs none)."""
    paths = _outside_submodules(root, paths)
    if not paths:
        return dict
    # check-ignore refuses literal pathspecs outright; "./" in front of each path keeps
    # a leading ":" from reading as pathspec magic, which voided the whole answer.
    # -n answers every path, in order: four NUL-ended fields each, the source empty for
    # a path no rule ignores.
    asked = _asked_about(["check-ignore", "--stdin", "-z", "-v", "-n"], root,
                         b"".join(b"./" + os.fsencode(p) + b"\0" for p in paths),
                         unset=("GIT_LITERAL_PATHSPECS",))

    @lru_cache(maxsize=1)
    def wait() -> dict[str, str]:
        fields = _fields_of_paths(asked, (0, 1), "check-ignore", len(paths), 4)
        if fields is None:
            return {}
        found = {}
        for i, path in enumerate(paths):
            source, line, pattern = (os.fsdecode(f) for f in fields[4 * i:4 * i + 3])
            # -v names the last rule that matched, also a `!` one taking the path back.
            if source and not pattern.startswith("!"):
                found[path] = (source, line, pattern)
        top = git_root(root) if found else None  # git names a .gitignore from the top
        rules = {}
        for path, (source, line, pattern) in found.items():
            if top is not None and not os.path.isabs(source):
                source = os.path.relpath(os.path.join(top, source), root).replace(os.sep, "/")
            rules[path] = f"{source}:{line}:{pattern}"
        return rules

    return wait


_GLOB_SPECIAL = re.compile(r"[*?\[\\]")
"""What git's glob pathspec reads as other than itself, each itself after a backslash."""


def _layer_files_below(directory: str, suffix: str) -> str:
    """git's pathspec for the files ending in ``suffix`` at any depth below
    ``directory`` (``.``: the root), its name read as it is spelt."""
    escaped = "" if directory == "." else _GLOB_SPECIAL.sub(r"\\\g<0>", directory) + "/"
    return f":(glob){escaped}**/*{suffix}"


class IndexAnswer(NamedTuple):
    """What git's index says of the files a build reads (``indexed_by_git``)."""

    skipped: list[str]
    """Files marked skip-worktree (a sparse checkout leaves them out of the work tree)."""
    links: dict[str, str]
    """The object id of each file committed as a symlink (mode 120000)."""


def indexed_by_git(root: Path, directories: Sequence[str], files: Sequence[str] = ()
                   ) -> Callable[[], IndexAnswer]:
    """Starts one ``git ls-files -t -s`` for the layer files (``LAYER_SUFFIXES``) below
    ``directories`` and for ``files`` (relative to ``root``) and returns what waits for
    its answer (``IndexAnswer``), paths relative to ``root``; nothing outside a work tree
    or without git, ``GitUnanswered`` when git fails or hangs. As ``ignored_by_git``, the
    caller works meanwhile."""
    # Below a directory, only what could be a layer file: a monorepo's layer directory
    # (`services`, for services/{service}/config.yaml) holds its code too, and git's
    # answer is bounded. A file a directory's pattern names is in its answer already.
    listed = ("",) if "." in directories else tuple(d.rstrip("/") + "/" for d in directories)
    outside = [file for file in files
               if not (file.endswith(LAYER_SUFFIXES) and file.startswith(listed))]
    asked_for = [*dict.fromkeys(_layer_files_below(d, suffix) for d in directories
                                for suffix in LAYER_SUFFIXES),
                 *(f":(literal){file}" for file in dict.fromkeys(outside))]
    if not asked_for:
        return lambda: IndexAnswer([], {})
    asked = _Asked(["git", "ls-files", "-t", "-s", "-z", "--", *asked_for], root,
                   env={k: v for k, v in git_env().items() if k != "GIT_LITERAL_PATHSPECS"})

    @lru_cache(maxsize=1)
    def wait() -> IndexAnswer:
        answer = _answer(asked, (0,))
        found = IndexAnswer([], {})
        for entry in (answer or b"").split(b"\0"):
            # "<tag> <mode> <object> <stage>\t<path>"; tag "S" is skip-worktree.
            head, _, name = entry.partition(b"\t")
            fields = head.split(b" ")
            if len(fields) != 4 or not name:
                continue
            path = os.fsdecode(name)
            if fields[0] == b"S":
                found.skipped.append(path)
            if fields[1] == SYMLINK_MODE.encode():
                found.links[path] = fields[2].decode("ascii", "replace")
        return found

    return wait


def link_checked_out(root: Path, rel: str, object_id: str) -> bool:
    """Whether ``rel`` (relative to ``root``), committed as a symlink whose target has
    ``object_id``, is a regular file holding that target: what a checkout without
    symlink support writes. Other bytes there are an edit."""
    try:  # a link or a FIFO holds no target; a file holds one of any length (git
        # keeps a target as a blob, and writes it whole where it makes no link)
        held = read_regular(os.path.join(root, rel), MAX_INPUT_BYTES)
    except OSError:
        return False
    return git_object_id(held, object_id) == object_id


class CheckoutAttributes(NamedTuple):
    """What ``.gitattributes`` says git does to the files a command reads
    (``attributes_by_git``), paths relative to the root asked from."""

    encodings: dict[str, str]
    """Each path git writes to the work tree in another encoding than the UTF-8 it
    commits, with that encoding."""
    lfs: list[str]
    """Each path Git LFS tracks (``filter=lfs``): a commit holds its pointer."""


LFS_TRACKED = ("is tracked by Git LFS (filter=lfs in .gitattributes): a commit holds its "
               "pointer, and the bytes a checkout with git-lfs reads come from LFS storage, "
               "which no commit pins (`diff --against` and a clone without git-lfs read the "
               "pointer); keep the inputs out of LFS (drop their filter=lfs in "
               ".gitattributes and commit them again)")
"""Why an input ``.gitattributes`` hands to Git LFS is refused, whatever the checkout
holds (the pointer is refused by its bytes: ``Checkout``)."""


def attributes_by_git(root: Path, paths: Sequence[str]) -> Callable[[], CheckoutAttributes]:
    """Starts ``git check-attr working-tree-encoding filter`` for ``paths`` (relative to
    ``root``; one for each part of them whose answer could come near ``MAX_GIT_ANSWER``,
    the first at once, the others in turn while waiting) and returns what waits for its
    answer (``CheckoutAttributes``); nothing outside a work tree or without git,
    ``GitUnanswered`` when git fails or hangs. As ``ignored_by_git``, the caller works
    meanwhile.

    The attributes are asked, not the bytes judged (``Checkout``): an encoding such as
    UTF-7, or Latin-1 for a file of Latin-1's letters, writes text that reads as UTF-8
    and parses, holding other values than the commit; and git-lfs writes the file a
    pointer stands for, any bytes, where the commit holds the pointer."""
    paths = _outside_submodules(root, paths)
    if not paths:
        return lambda: CheckoutAttributes({}, [])
    parts = _parts(paths, ATTRIBUTE_ANSWER_BYTES, named=2)

    def ask(part: list[str]) -> _Asked:
        return _asked_about(["check-attr", "--stdin", "-z", "working-tree-encoding",
                             "filter"], root, b"".join(os.fsencode(p) + b"\0" for p in part))

    first = ask(parts[0])

    @lru_cache(maxsize=1)
    def wait() -> CheckoutAttributes:
        found = CheckoutAttributes({}, [])
        for n, part in enumerate(parts):
            # Three NUL-ended fields a path and attribute, in order: the path, the
            # attribute, its value; the attributes of a path in the order asked.
            fields = _fields_of_paths(first if n == 0 else ask(part), (0,), "check-attr",
                                      len(part), 6)
            if fields is None:
                return found
            for i, path in enumerate(part):
                encoding = os.fsdecode(fields[6 * i + 2])
                # git converts nothing for these (convert.c): no value, UTF-8 itself,
                # and set or unset (set stops the checkout).
                if encoding.casefold() not in ("", "unspecified", "unset", "set", "utf-8",
                                               "utf8"):
                    found.encodings[path] = encoding
                if fields[6 * i + 5] == b"lfs":
                    found.lfs.append(path)
        return found

    return wait


ATTRIBUTE_ANSWER_BYTES = 2 * 64
"""The bytes of ``git check-attr working-tree-encoding filter``'s answer for a path
besides the path, which it names twice: the attributes' names, values as long as any
encoding's or filter's name, six NULs."""


def _parts(paths: Sequence[str], answer_bytes: int, named: int = 1) -> list[list[str]]:
    """``paths`` in parts, in order, each asked of git apart: for each part, its paths
    (each ``named`` times in the answer) and ``answer_bytes`` a path come to at most
    ``MAX_GIT_ANSWER``, the bound of one answer. A repository of a million files would
    otherwise fail a check for its size alone, while each answer stays bounded against a
    git that says more than asked."""
    parts: list[list[str]] = [[]]
    size = 0
    for path in paths:
        cost = named * len(os.fsencode(path)) + answer_bytes
        if parts[-1] and size + cost > MAX_GIT_ANSWER:
            parts.append([])
            size = 0
        parts[-1].append(path)
        size += cost
    return parts


GIT_BLOB_SECONDS = 60
"""How long ``committed_blobs`` and ``blob_sha256`` let git stream blobs before it is
stopped: a repository's largest blobs come in seconds, and a git that has not answered
in this long waits on something that may never come."""


def committed_blobs(root: Path, names: list[str], limit: int) -> list[bytes | int | None]:
    """What ``git cat-file --batch`` answers for each of ``names`` (``REV:PATH``): the
    blob's bytes, None if there is no blob there, and the size of an object of more
    than ``limit`` bytes, never read (a commit may hold a blob of any size), after
    which nothing more is asked.
    ``OSError`` if git cannot answer (not a work tree, no git, ``GIT_BLOB_SECONDS``
    spent), or stops in the middle of an answer: part of a blob is never taken for it."""
    import subprocess

    # Each answer starts "<type> <size>", never the name asked (a path may hold spaces);
    # a name with nothing there is answered "<name> missing".
    try:
        git = subprocess.Popen(["git", "cat-file", "--batch=%(objecttype) %(objectsize)"],
                               cwd=root, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, env=git_env())
    except OSError as exc:
        if no_new_task(exc):  # git is there and could not start: no answer git gave
            raise NoNewTask(str(exc)) from exc
        raise
    stdin, stdout = git.stdin, git.stdout
    assert stdin is not None and stdout is not None

    def ask() -> None:
        # From another thread: with many environments git's answers fill its pipe
        # before it has read every name.
        with contextlib.suppress(OSError):  # git stopped (not a work tree, or told to)
            stdin.write("".join(f"{name}\n" for name in names).encode())
            stdin.close()

    asking = threading.Thread(target=ask, name="magcfg-cat-file", daemon=True)
    expired = threading.Event()

    def stop() -> None:
        expired.set()  # before the kill: the reader looks as soon as git's output ends
        git.kill()

    timer = threading.Timer(GIT_BLOB_SECONDS, stop)
    answers: list[bytes | int | None] = []
    try:
        # Inside: where no thread can start (errors.no_new_task), git is stopped too.
        asking.start()
        timer.start()
        for name in names:
            line = stdout.readline()
            if not line.endswith(b"\n"):
                # Nothing: not a work tree (git said so on stderr). Part of a line: git
                # was stopped (by the timer, or from outside) while it wrote it.
                raise OSError("git cat-file stopped answering" + _cut_short(expired))
            kind, _, size_text = line.rstrip(b"\n").partition(b" ")
            if kind not in (b"blob", b"tree", b"commit", b"tag") or not size_text.isdigit():
                answers.append(None)  # "<name> missing"
                continue
            size = int(size_text)
            if size > limit:
                answers.append(size)
                break  # the caller stops at this one, or asks for the rest again
            data = stdout.read(size + 1)
            if len(data) <= size or data[size:] != b"\n":
                raise OSError(f"git cat-file stopped in its answer for {name}, after "
                              f"{min(len(data), size)} of its {size} bytes"
                              + _cut_short(expired))
            # A tree or a commit at the path is no file.
            answers.append(data[:size] if kind == b"blob" else None)
    finally:
        timer.cancel()
        git.kill()
        stdout.close()
        git.wait()
        if asking.ident is not None:  # started
            asking.join()
        with contextlib.suppress(OSError):
            stdin.close()
    return answers + [None] * (len(names) - len(answers))


def _cut_short(expired: threading.Event) -> str:
    """Why git's answer ended early, when the timer stopped it (``expired``)."""
    return f" (stopped after {GIT_BLOB_SECONDS} s)" if expired.is_set() else ""


def blob_sha256(root: Path, name: str, limit: int) -> str | None:
    """The hex SHA-256 of the blob git holds at ``name`` (an object id, or ``REV:PATH``
    as ``committed_blobs`` asks), hashed as git streams it, never held whole: what
    ``durable.sha256_regular`` gives for a file. None past ``limit`` bytes, or when git
    does not answer (no blob there, not a work tree, ``GIT_BLOB_SECONDS`` spent)."""
    import subprocess

    try:
        git = subprocess.Popen(["git", "cat-file", "blob", name], cwd=root,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, env=git_env())
    except OSError as exc:  # no git
        if no_new_task(exc):
            raise
        return None
    stdout = git.stdout
    assert stdout is not None
    timer = threading.Timer(GIT_BLOB_SECONDS, git.kill)
    timer.start()
    digest = hashlib.sha256()
    size = 0
    try:
        while chunk := stdout.read(1 << 18):
            size += len(chunk)
            if size > limit:
                git.kill()
                return None
            digest.update(chunk)
        # A git the timer stopped ended its output early: no digest of part of a blob.
        return digest.hexdigest() if git.wait() == 0 else None
    finally:
        timer.cancel()
        stdout.close()
        git.wait()


_LFS_POINTER = re.compile(
    rb"version https://(?:git-lfs|hawser)\.github\.com/spec/v[0-9]+\n"
    rb"(?:ext-[0-9]-[a-z0-9]+ [a-z0-9]+:[0-9a-f]+\n)*oid sha256:[0-9a-f]{64}\nsize [0-9]+\n")
"""A whole pointer file as git-lfs writes one (its spec): the version line, any
extensions, the object's id and size, each line ended, nothing else (hawser is LFS's
first name)."""


def lfs_pointer(data: bytes) -> bool:
    """Whether ``data`` is all of a Git LFS pointer file: less than 1,024 bytes (git-lfs
    reads no larger one as a pointer) holding only a pointer's lines. A file that only
    begins like one may hold anything after its first line."""
    return len(data) < 1024 and _LFS_POINTER.fullmatch(data) is not None


GIT_CRYPT_HEADER = b"\0GITCRYPT\0"
"""How a file git-crypt encrypted begins, as a locked checkout holds it."""

MAX_SYMLINK_TARGET = 4095
"""The longest target a symlink holds (PATH_MAX less its NUL: no symlink on disk holds a
longer one), at a git ref and in a one-line file taken for one a checkout without
symlinks wrote (``_link_shaped``), before git's index is asked (``link_checked_out``
bounds nothing by it: git writes a longer target whole where it makes no link)."""


class Checkout:
    """Whether a file a build reads holds what the commit holds, or what a checkout
    lacking a git feature, or converting on checkout, put there instead: a Git LFS
    pointer (no git-lfs, or ``GIT_LFS_SKIP_SMUDGE``), git-crypt's ciphertext (a locked
    checkout), the target of a committed symlink as text (``core.symlinks=false``, as
    on Windows), or the commit's bytes converted (CRLF line ends, a
    ``working-tree-encoding``, an expanded ``$Id$``: a ``.gitattributes`` deeper than
    init's, or ``core.autocrlf``). Each would build other bytes than the commit's,
    signed all the same.

    git's index is asked (one ``git ls-files`` for every file below ``root``) only when a
    file could be such a link or conversion: one line without a line end, a CRLF, a NUL
    or BOM, a ``$Id:``, which a layer or schema almost never holds, so a build asks
    nothing. A file that differs from the commit in more than git's conversion is an
    edit, and builds. A link's target of more lines is found by the build, which asks
    git's index about every file it reads (``indexed_by_git``, answered after parsing),
    and by ``problem_asked`` for the files every command reads first."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._index: dict[str, tuple[str, str]] | None = None
        self._refused: str | None = None
        self._lock = threading.Lock()

    def problem(self, rel: str, raw: bytes) -> str | None:
        """Why the bytes ``raw`` of ``rel`` (relative to the root, where the file really
        is) are not what the commit holds, or None."""
        return self.examine(rel, raw)[0]

    def examine(self, rel: str, raw: bytes) -> tuple[str | None, bool]:
        """``problem``, and whether ``raw`` is none of the forms named above, so that no
        checkout could have written it for other bytes whatever git's index holds (a
        digest of such bytes may be trusted without reading them again)."""
        if lfs_pointer(raw):
            return ("is a Git LFS pointer, not the file it stands for: this checkout was "
                    "made without git-lfs (or with GIT_LFS_SKIP_SMUDGE), so it would build "
                    "other bytes than one with it; install git-lfs and run `git lfs pull`, "
                    "or keep the inputs out of LFS (drop their filter=lfs in .gitattributes "
                    "and commit them again)"), False
        if raw.startswith(GIT_CRYPT_HEADER):
            return ("is encrypted by git-crypt, and this checkout is locked, so it would "
                    "build other bytes than an unlocked one; run `git-crypt unlock` first"
                    ), False
        link, committed = _link_shaped(raw), _as_checked_in(raw)
        return self._changed(rel, raw, link, committed), not (link or committed)

    def _changed(self, rel: str, raw: bytes, link: bool, committed: list[bytes]
                 ) -> str | None:
        """Why ``raw``, which could be a link's target (``link``) or hold ``committed``
        by git's checkout conversion, is what a checkout made of other bytes, or None."""
        if (link or committed) and self.index() == {} and self._refused is not None:
            # Where git will not answer for the repository (owned by another user, as
            # in a CI container), a changed checkout cannot be told from the commit.
            return ("could hold what a checkout changed (a symlink's target, or the "
                    "commit's bytes with other line ends, encoding or $Id$), and git, which "
                    "would tell, refuses this repository: it belongs to another user; run "
                    f"`{self._refused}` where magcfg runs")
        if link:
            entry = self.index().get(rel)
            if entry is not None and entry[0] == SYMLINK_MODE \
                    and entry[1] == git_object_id(raw, entry[1]):
                return LINK_HELD
        if committed:
            entry = self.index().get(rel)
            if entry is not None and entry[1] != git_object_id(raw, entry[1]) \
                    and any(entry[1] == git_object_id(c, entry[1]) for c in committed):
                return ("holds the commit's bytes with only their line ends, encoding or "
                        "$Id$ changed (git's checkout conversion, by a .gitattributes or "
                        "core.autocrlf, or an editor's), so it would build other bytes than "
                        "the commit's; give its path `-text -ident -working-tree-encoding` "
                        "in the deepest .gitattributes that sets them and check it out "
                        "again, or commit the change")
        return None

    def problem_asked(self, rel: str, raw: bytes) -> str | None:
        """``problem``, whether Git LFS tracks ``rel`` (``LFS_TRACKED``), and for bytes of
        any shape whether it is a committed symlink held as a file of its target, git's
        index and attributes asked about ``rel`` alone: for a file
        that the build's question to the index (``indexed_by_git``) does not reach, or
        only after it is used (the project file, which every command reads; a layer
        directory held as a file). A target of several lines is no shape ``problem``
        asks about, and a target may be any text, the project file's too."""
        found = self.problem(rel, raw)
        if found is not None:
            return found
        attributes = attributes_by_git(self.root, [rel])  # answered while the index is
        link = None
        try:
            # A link-shaped file is asked already, and an empty one holds no target. A
            # target of any length or bytes is a blob git writes whole where it makes
            # no link (``link_checked_out``).
            if not _link_shaped(raw) and raw:
                link = indexed_by_git(self.root, [], [rel])().links.get(rel)
            lfs = attributes().lfs
        except GitUnanswered as exc:
            return ("may be a symlink in git held as a file of its target (a checkout "
                    "without symlink support), or in Git LFS, and git, which would tell, "
                    f"did not answer ({exc}): fix what stops git, then run magcfg again")
        if rel in lfs:
            return LFS_TRACKED
        return LINK_HELD if link is not None and git_object_id(raw, link) == link else None

    def index(self) -> dict[str, tuple[str, str]]:
        """(mode, object id) of each path (relative to the root) in git's index; none
        outside a work tree or without git."""
        with self._lock:
            if self._index is None:
                self._index, self._refused = _index_entries(self.root)
            return self._index


SHALLOW_UNKNOWN_REF = (
    "this clone is shallow (fetched to a depth), so the commit it names may not have been "
    "fetched; fetch the history (`git fetch --unshallow`, and `git fetch origin "
    "BRANCH:refs/remotes/origin/BRANCH` for another branch: a shallow clone fetches its "
    "own branch alone; GitHub Actions: `actions/checkout` with `fetch-depth: 0`; GitLab: "
    "`GIT_DEPTH: 0`)")
"""Why a shallow clone may lack the commit a ref names, and what to fetch."""


SYMLINK_MODE = "120000"
GITLINK_MODE = "160000"
"""A submodule's entry in git's index and trees: a commit of another repository."""
LINK_HELD = ("is a symlink in git (mode 120000) but a regular file in this checkout, "
             "holding the link's target as text: the checkout lacks symlink support "
             "(core.symlinks=false, as on Windows), so it would build other bytes than a "
             "clone with links; run `git config core.symlinks true` and check the file out "
             "again (on Windows, with Developer Mode on)")
"""Why an input that a checkout without symlinks wrote for a committed link is refused
(``Checkout``, ``link_checked_out``)."""
_IDENT = re.compile(rb"\$Id: [^$\n]*\$")
_WIDE = ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"),
         (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))


def _link_shaped(raw: bytes) -> bool:
    """Whether ``raw`` could be a symlink's target as a checkout without symlinks writes
    it, by the shape most targets have: one line, no line end."""
    return bool(raw) and len(raw) <= MAX_SYMLINK_TARGET and b"\n" not in raw


def _as_checked_in(raw: bytes) -> list[bytes]:
    """What git's checkin conversions could make of ``raw``, where any applies: UTF-16
    or UTF-32 (a ``working-tree-encoding``) as UTF-8, CRLF as LF, ``$Id: ...$`` as
    ``$Id$``."""
    forms = [raw]
    if b"\0" in raw or raw.startswith(tuple(bom for bom, _ in _WIDE)):
        for bom, codec in _WIDE:
            with contextlib.suppress(UnicodeError):
                forms.append(raw.removeprefix(bom).decode(codec).encode("utf-8"))
    out = []
    for form in forms:
        # Every input of every build comes here: one byte is looked for at memchr's
        # speed (~0.6 ms for 8.6 MB), two or four bytes ten times slower.
        if b"\r" in form and b"\r\n" in form:
            form = form.replace(b"\r\n", b"\n")
        if b"$" in form and b"$Id:" in form:
            form = _IDENT.sub(b"$Id$", form)
        if form != raw:
            out.append(form)
    return out


def git_object_id(data: bytes, like: str) -> str:
    """git's id of a blob of ``data``, in the object format of the id ``like``."""
    digest = hashlib.sha256 if len(like) == 64 else hashlib.sha1
    return digest(b"blob %d\0" % len(data) + data).hexdigest()


_SAFE_DIRECTORY = re.compile(rb"^\s*(git config --global --add safe\.directory .+?)\s*$",
                             re.MULTILINE)


def _index_entries(root: Path) -> tuple[dict[str, tuple[str, str]], str | None]:
    """The index's entries (``Checkout.index``), and the command git asks for when it
    refuses a repository another user owns (``safe.directory``), or None."""
    import subprocess

    try:
        out = subprocess.run(["git", "ls-files", "--stage", "-z"], cwd=root, env=git_env(),
                             capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        if no_new_task(exc):  # an index unread is no empty one
            raise
        return {}, None
    if out.returncode != 0:
        asked = _SAFE_DIRECTORY.search(out.stderr) if b"dubious ownership" in out.stderr \
            else None
        return {}, os.fsdecode(asked.group(1)) if asked else None
    entries = {}
    for entry in out.stdout.split(b"\0"):
        # "<mode> <object> <stage>\t<path>", the path relative to root.
        head, _, path = entry.partition(b"\t")
        fields = head.split(b" ")
        if len(fields) == 3 and path:
            entries[os.fsdecode(path)] = (fields[0].decode("ascii", "replace"),
                                          fields[1].decode("ascii", "replace"))
    return entries, None


def _outside_submodules(root: Path, paths: Sequence[str]) -> list[str]:
    """``paths`` (relative to ``root``) but those below a directory holding a ``.git``
    entry, a submodule's work tree (or a repository of its own): git refuses to answer
    for a path in a submodule, and then answers for none of the others."""
    nested: dict[str, bool] = {"": False}  # by directory: the paths of one share it

    def below_one(directory: str) -> bool:
        unknown = []  # from this directory up to the first one known (a loop: any depth)
        while directory not in nested:
            unknown.append(directory)
            directory = directory.rpartition("/")[0]
        found = nested[directory]
        for directory in reversed(unknown):
            found = found or os.path.lexists(os.path.join(root, directory, ".git"))
            nested[directory] = found
        return found

    return [path for path in paths if not below_one(path.rpartition("/")[0])]


def find_project_file(start: Path | None = None) -> Path:
    """The nearest ``magcfg.yaml`` here or above (``nearest_project_file``), here being
    the directory as the operator named it (``durable.operator_cwd``), never above the
    top of the git checkout it is in, and named from there as the operator named the
    directory (``svc/magcfg.yaml`` where ``svc`` is a symlink the checkout holds)."""
    named = start or operator_cwd()
    here = named.resolve()
    top = checkout_top(str(here))
    found = (nearest_project_file(named, Path(top)) if top is not None
             else nearest_project_file(here))
    if found is None:
        raise UsageError(f"no {PROJECT_FILE_NAMES[0]} in {printable(str(here))} or its parents "
                         "(use --project FILE)")
    return found


def may_be_project_text(text: str, name: str) -> bool:
    """Whether ``text``, of a file named as a project file is (``name``), may be a magcfg
    project file: anything but a YAML mapping none of whose keys is a section of one. A
    CI pipeline of that name (the ``.github/workflows/magcfg.yml`` and
    ``.woodpecker/magcfg.yml`` that init writes: ``name``, ``on``, ``jobs``; ``steps``)
    is none; a project file with a misspelt section, or that is not YAML, may be one,
    and is loaded, to fail as such."""
    import yaml

    try:
        raw = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError):  # RecursionError: nested past the parser
        return True
    return not isinstance(raw, dict) or any(str(key) in KNOWN_SECTIONS for key in raw)


def nearest_project_file(start: Path, top: Path | None = None) -> Path | None:
    """The nearest ``magcfg.yaml`` in ``start`` or a parent, none above ``top`` (a
    repository's root; ``start`` outside it starts there). Any entry of that name counts
    (a symlink or FIFO is refused when read, never skipped for one further up) but a
    file that is certainly no project (``_no_project``): the pipeline ``magcfg init``
    writes as ``.github/workflows/magcfg.yml``, where a user runs magcfg to check it.
    Below ``top`` the directories are those ``start`` names, a symlink the repository
    holds on the way not followed (``durable.operator_name_in_checkout``): run in
    ``svc``, the file found is ``svc/magcfg.yaml`` whichever directory a pull request
    makes ``svc`` a link to, and it is named so."""
    if top is None:
        here = start.resolve()
        return _nearest_in((here, *here.parents), None)
    real_top = Path(os.path.realpath(top))
    named = operator_name_in_checkout(start, str(real_top))
    directories = [real_top]
    if named is not None and named != ".":
        parts = named.split("/")
        directories = [real_top.joinpath(*parts[:n]) for n in range(len(parts), -1, -1)]
    return _nearest_in(directories, real_top)


def _nearest_in(directories: Iterable[Path], top: Path | None) -> Path | None:
    """The first project file of ``directories`` (``nearest_project_file``), none past
    ``top``."""
    for directory in directories:
        for name in PROJECT_FILE_NAMES:
            candidate = directory / name
            if os.path.lexists(candidate) and not _no_project(candidate):
                return candidate
        if directory == top:
            break
    return None


_SECTION_LINE = re.compile(
    rf"^(?:{'|'.join(sorted(KNOWN_SECTIONS))})[ \t]*:", re.MULTILINE)
"""A line that starts a project file's section: a file that holds one may be a project
file, without parsing it (every command finds its project file so)."""


MAX_PIPELINE_BYTES = 64 * 1024
"""The largest file of a project file's name that the search for the project file reads
to tell a pipeline from a project (``_no_project``; init's is under 3 KB): PyYAML reads
about 200 KB a second, and a command run in that directory pays it. A larger one is
taken for the project, to fail as one."""


def _no_project(file: Path) -> bool:
    """Whether ``file``, of a project file's name, is certainly no project file: a
    regular file whose text is a YAML mapping of none of its sections
    (``may_be_project_text``). Anything else may be one, and is loaded, to fail as such:
    a symlink or FIFO, a file larger than ``MAX_PIPELINE_BYTES``, unreadable or not
    UTF-8."""
    try:
        raw = read_regular(file, MAX_PIPELINE_BYTES)
    except OSError:
        return False
    return no_project_bytes(raw, file.name)


def no_project_bytes(raw: bytes, name: str) -> bool:
    """Whether ``raw``, the bytes of a regular file named ``name`` (a project file's
    name), are certainly no project file (``_no_project``): UTF-8 text of no section's
    line that is a YAML mapping of none of its sections."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return _SECTION_LINE.search(text) is None and not may_be_project_text(text, name)


def project_option(project: Project, name: Callable[[str], str] | None = None) -> str:
    """What a command magcfg advises (a PR body's, an error's "run `magcfg sign`") needs
    to find the project where its names are from (``name``, ``FromTop.name``): at the
    repository's top, where a reviewer runs it, as the hook and CI do, a project below
    it (a monorepo's), or of a file that is not the one a command finds there by itself
    (``deploy.yaml``), is found by ``--project`` alone. ``name`` defaults to a
    ``FromTop`` of ``project``."""
    named = (name or FromTop(project).name)(project.file)
    own = project.root / project.file
    if "/" not in named and nearest_project_file(project.root) in (own, own.resolve()):
        return ""
    import shlex

    # A directory's name is the repository's: a line end in it printed raw would forge a
    # line of CI's log.
    return f" --project {printable(shlex.quote(named))}"


def output_project_option(directory: str) -> str | None:
    """What a command magcfg advises about the artifact directory ``directory``, named as
    the operator gave it, needs to find the project whose ``<output>/<env>`` it is, run
    where magcfg runs: ``project_option``'s, the project file named as ``directory`` is
    (relative to here, or absolute). ``None`` where it is no output of the nearest
    project file at or above it (an artifact pulled from a registry), or that project
    does not load."""
    found = nearest_project_file(Path(directory))
    if found is None:
        return None
    try:
        project = load_project(found)
    except MagcfgError:
        return None
    real = Path(os.path.realpath(directory))
    if real.name not in project.environments or \
            real.parent != Path(os.path.realpath(project.root / project.output)):
        return None
    return given_project_option(project, directory)


def given_project_option(project: Project, given: str) -> str:
    """``project_option`` for a command advised beside ``given``, a path named as the
    operator gave it (relative to here, or absolute), run where magcfg runs: the project
    file named as ``given`` is, so that the command finds both from one place."""

    def named(file: str) -> str:
        path = project.root / file
        return os.path.abspath(path) if os.path.isabs(given) else os.path.relpath(path)

    return project_option(project, named)


def check_project_bytes(file: Path, raw: bytes, shown: str) -> None:
    """``PathError`` naming ``shown`` when ``raw``, the bytes of the project file
    ``file``, are not what the commit holds (``Checkout.problem_asked``: an LFS pointer,
    a committed symlink's target, ...): every reader of a project file asks, before it
    takes a setting from it."""
    directory = Path(os.path.realpath(file.parent))
    problem = Checkout(directory).problem_asked(file.name, raw)
    if problem is not None:
        raise PathError([path_problem(shown, problem)])


def load_project(path: str | os.PathLike[str] | None = None) -> Project:
    """Read and check a project file (default: ``magcfg.yaml`` here or in a parent).

    The file must be a regular file (not a symlink: its directory is the project root,
    the boundary of everything magcfg reads and writes)."""
    file = Path(path) if path is not None else find_project_file()
    if not os.path.lexists(file):
        raise UsageError(f"project file {printable(str(file))} not found")
    named_as = str(file if file.is_absolute() else operator_cwd() / file)
    root = Path(os.path.realpath(file.parent))
    name = file.name
    raw = read_located(root / name, name, MAX_INPUT_BYTES)
    with git_tops_held():  # each of its questions that fails asks where the top is
        check_project_bytes(root / name, raw, name)
    try:
        _check_text(name, raw)
        data, _ = parse_layer(name, raw, "project file")
    except LoadFailed as exc:
        raise BuildError(exc.diagnostics) from None

    errors: list[Diagnostic] = []

    def err(keypath: tuple[str, ...], message: str) -> None:
        errors.append(Diagnostic(name, locate(name, raw, keypath), ".".join(keypath) or None,
                                 message, code="project"))

    for key in data:
        if key not in KNOWN_SECTIONS:
            import difflib

            hint = difflib.get_close_matches(key, sorted(KNOWN_SECTIONS), n=1)
            err((key,), f"unknown section {key!r}" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
    for key in MAPPING_SECTIONS:
        if data.get(key) is not None and not isinstance(data[key], dict):
            err((key,), f"{key} must be a mapping, not {_type_name(data[key])}")
    if isinstance(data.get("lint"), dict):
        for key in data["lint"]:
            if key not in LINT_KEYS:
                err(("lint", str(key)), unknown_key(key, LINT_KEYS))
    version = data.get("version", 1)
    if type(version) is not int or version != 1:
        err(("version",), f"this magcfg reads project files of version 1 (the integer 1), "
                          f"not {version!r}")

    envs = data.get("environments")
    if not isinstance(envs, list) or not envs or not all(isinstance(e, str) for e in envs):
        err(("environments",), "environments must be a non-empty list of names")
        envs = []
    elif len(envs) > MAX_ENVIRONMENTS:
        err(("environments",), f"environments lists {len(envs)} names; at most "
                               f"{MAX_ENVIRONMENTS} (each is a build of its own)")
    for e in envs:
        if isinstance(e, str) and not ENVIRONMENT_NAME.fullmatch(e):
            err(("environments",), f"environment name {e!r} must match {ENVIRONMENT_NAME.pattern}")
    if len(set(envs)) != len(envs):
        err(("environments",), "environment names must be unique")
    env_names = [e for e in envs if ENVIRONMENT_NAME.fullmatch(e)] or ["x"]
    _check_commands_settings(data, [e for e in envs if isinstance(e, str)], root, err)

    layers: list[LayerSpec] = []
    raw_layers = data.get("layers")
    if not isinstance(raw_layers, list) or not raw_layers:
        err(("layers",), "layers must be a non-empty list of {name, path}")
        raw_layers = []
    read_areas: list[tuple[tuple[str, ...], str]] = []  # (key path, path) of what is read
    for i, entry in enumerate(raw_layers):
        if (not isinstance(entry, dict) or set(entry) - {"name", "path", "files", "key"}
                or not isinstance(entry.get("name"), str)
                or ("path" in entry) == ("files" in entry)
                or not isinstance(entry.get("path", entry.get("files")), str)):
            err(("layers", str(i)), "each layer is a mapping with a string name and either a "
                                    "path (a directory) or files (a pattern)")
            continue
        files = entry.get("files")
        where = ("layers", str(i), "path" if files is None else "files")
        found = _files_problem(files, entry.get("key")) if files is not None else (
            ("key", "key needs files (a pattern)") if "key" in entry else None)
        if found:
            err(("layers", str(i), found[0]), found[1])
            continue
        path = entry["path"] if files is None else files_directory(files)
        directories = [_relative(root, path.replace("{env}", e)) for e in env_names]
        problem = next((p for p in map(_path_problem, directories) if p), None)
        if problem:
            err(where, f"layer paths must stay inside the project: {problem}")
            continue
        read_areas += [(where, d) for d in directories]
        layers.append(LayerSpec(entry["name"], posixpath.normpath(path),
                                None if files is None else posixpath.normpath(files),
                                entry.get("key")))
    if len({spec.name for spec in layers}) != len(layers):
        err(("layers",), "layer names must be unique")

    schema = data.get("schema", {})
    json_schema = cue_schema = None
    if not isinstance(schema, dict) or set(schema) - {"json", "cue", "cue_definition"}:
        err(("schema",), "schema is a mapping with keys json and/or cue")
    else:
        json_schema = schema.get("json")
        cue_schema = schema.get("cue")
        for key, value in (("json", json_schema), ("cue", cue_schema)):
            if value is None:
                continue
            problem = _path_problem(_relative(root, value)) if isinstance(value, str) \
                else "not a string"
            if problem:
                err(("schema", key), f"schema paths are files inside the project: {problem}")
            else:
                read_areas.append((("schema", key), _relative(root, value)))
        if json_schema is None and cue_schema is None:
            err(("schema",), "name a schema: schema.json and/or schema.cue")
        definition = schema.get("cue_definition")
        if definition is not None and cue_schema is None:
            err(("schema", "cue_definition"), "cue_definition needs schema.cue")
        elif definition is not None and (not isinstance(definition, str)
                                         or not re.fullmatch(r"#[A-Za-z_][A-Za-z0-9_]*", definition)):
            err(("schema", "cue_definition"),
                f"cue_definition must name a CUE definition like '#Config', not {definition!r}")

    # Where magcfg writes: each must be a directory of its own, overlapping nothing it
    # reads, the project file, .git or the other (a build replaces output/<env> whole).
    written: dict[str, str] = {}
    for key, default, what in (("output", "generated", "artifacts"),
                               ("cache", ".magcfg-cache", "the build cache")):
        value = data.get(key, default)
        relative = _relative(root, value) if isinstance(value, str) else ""
        problem = _path_problem(relative) if isinstance(value, str) else "not a string"
        if not problem and relative == ".":
            problem = "it is the project root itself"
        if not problem:
            problem = _overlap(relative, [*read_areas, ((), name)], name)
        if not problem:
            other = next((v for v in written.values() if _overlapping(v, relative)), None)
            if other is not None:
                problem = f"it overlaps {other}, where magcfg writes too"
        if not problem:
            problem = _not_a_real_directory(root, relative)
        if problem and key not in data:  # the default: no line of the file is to blame
            errors.append(Diagnostic(name, None, key, f"{key} (not set: the default "
                                     f"{default}) must be a directory of its own inside the "
                                     f"project for {what}: {problem}", code="project"))
        elif problem:
            err((key,), f"{key} must be a directory of its own inside the project for "
                        f"{what}: {problem}")
        else:
            written[key] = relative

    if errors:
        raise BuildError(errors)

    return Project(
        root=root,
        file=name,
        environments=tuple(envs),
        layers=tuple(layers),
        json_schema=json_schema,
        cue_schema=cue_schema,
        output=written["output"],
        cache_dir=written["cache"],
        settings=data,
        digest=hashlib.sha256(raw).hexdigest(),
        raw=raw,
        named_as=named_as,
    )


def _files_problem(files: str, key: Any) -> tuple[str, str] | None:
    """(the field, why) a ``files`` pattern and its ``key`` cannot be used, or None."""
    names = _PLACEHOLDER.findall(files)
    if not files.endswith(LAYER_SUFFIXES):
        return "files", f"files must end in {', '.join(LAYER_SUFFIXES)}: {files!r}"
    if files_directory(files) == ".":
        return "files", f"files must start with a directory of the project: {files!r}"
    parts = files.split("/")
    lead = next(i for i, part in enumerate(parts) if part not in (".", ".."))
    if any(part in (".", "..") for part in parts[lead:]):
        # Only the directory before the first wildcard is checked to stay inside the
        # project (a leading `..` is refused there, by name); one further on would climb
        # out of what was checked, or out of {env}.
        return "files", f"files may not use . or .. after its first directory: {files!r}"
    if re.search(r"\*\*(?!/)|(?<=[^/])\*\*|[?\[\]]|\{(?![A-Za-z_][A-Za-z0-9_]*\})", files):
        return "files", (f"files is a path with {{name}} (one path segment), * (any text in a "
                f"segment) and **/ (any directories): {files!r}")
    crowded = _wildcards_problem(files)
    if crowded is not None:
        return "files", crowded
    if key is None:
        return None
    if not isinstance(key, str) or not key:
        return "key", "key must be a dotted key path, e.g. '{service}'"
    # A file's content sits below its key and nests up to MAX_DEPTH levels itself: with
    # this bound config.json never nests deeper than the runtime kernel serves.
    most = MAX_CONFIG_DEPTH - MAX_DEPTH
    if key.count(".") >= most:
        return "key", (f"key may have at most {most} parts (a file below it nests up to "
                       f"{MAX_DEPTH} levels, and config.json at most {MAX_CONFIG_DEPTH}, "
                       f"the most the runtime kernel serves): {key[:40]!r}...")
    for part in key.split("."):
        placeholder = _PLACEHOLDER.fullmatch(part)
        if not part or ("{" in part and placeholder is None):
            return "key", f"key parts are names or one {{placeholder}} each: {key!r}"
        if placeholder is not None and placeholder.group(1) not in (*names, "env"):
            return "key", (f"key {key!r} uses {{{placeholder.group(1)}}}, which files "
                    f"{files!r} does not capture")
    return None


def _check_text(name: str, raw: bytes) -> None:
    """A located error for a control character (NUL, BEL, an escape sequence...)."""
    text = decode_text(name, raw)
    found = _NOT_YAML_TEXT.search(text)
    if found is not None:
        line = text.count("\n", 0, found.start()) + 1
        raise LoadFailed([Diagnostic(name, line, None,
                                     f"control character U+{ord(found.group()):04X} is not "
                                     "allowed in the project file", code="project")])


def _type_name(value: Any) -> str:
    return {list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number"}.get(type(value), type(value).__name__)


def _relative(root: Path, path: str) -> str:
    """``path`` normalized, relative to the project root, ``/``-separated (``..`` left in
    where it leads out, for ``_path_problem``)."""
    if "\0" in path or os.path.isabs(path):
        return path
    full = os.path.normpath(os.path.join(root, path))
    return os.path.relpath(full, root).replace(os.sep, "/")


def _path_problem(relative: str) -> str | None:
    """Why a normalized relative path may not be used, or None."""
    if _CONTROL.search(relative):
        return "it contains a control character"
    if os.path.isabs(relative):
        return "it is absolute"
    parts = PurePosixPath(relative).parts
    if parts and parts[0] == "..":
        return "it leads outside the project"
    if any(part.casefold() == GIT_DIR for part in parts):
        return "it is inside .git"
    if any(part.endswith((".", " ")) for part in parts):
        return ("a name in it ends in a dot or space, which Windows drops: a checkout "
                "there would use another path")
    return None


def _overlapping(a: str, b: str) -> bool:
    first, second = PurePosixPath(a), PurePosixPath(b)
    return first == second or first.is_relative_to(second) or second.is_relative_to(first)


def _overlap(relative: str, areas: list[tuple[tuple[str, ...], str]], project_file: str
             ) -> str | None:
    for keypath, other in areas:
        if _overlapping(relative, other):
            what = "the project file" if other == project_file else \
                f"{other} ({'.'.join(keypath)})"
            return f"it overlaps {what}, which magcfg reads"
    return None


def _not_a_real_directory(root: Path, relative: str) -> str | None:
    try:
        real_directory(root, relative)
    except PathError as exc:
        found = exc.diagnostics[0]
        return f"{found.file} {found.message}"
    return None
