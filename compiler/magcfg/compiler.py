"""The compiler: the pipeline's stages run with every capability, for every environment.

Data flows load -> merge -> validate -> redact -> emit (``magcfg.pipeline``); the
capabilities plug in at the extension points of ``pipeline.context``: CUE layers and
schemas (``magcfg.cue``), the secret rules and manifests (``magcfg.secrets``), the
ConfigMap (``magcfg.delivery``).

All errors of a build are collected (every file, every environment) before it fails,
and a failed build writes nothing. The unit of work and of caching is a *fragment*: one
top-level key of one environment. A fragment whose inputs are unchanged is reused
from the cache without loading, merging, validating or serializing anything.
"""

from __future__ import annotations

import functools
import hashlib
import marshal
import os
import posixpath
import stat
import threading
import time
from collections.abc import (
    Callable,
    Collection,
    Generator,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from .artifact import (
    CONFIG,
    CONFIGMAP,
    KUSTOMIZATION,
    MANIFEST,
    MAX_FILE_BYTES,
    SIGNED_FILES,
    listed_files,
    size_limit,
    written_names,
)
from .cue import CUE_SUFFIX
from .durable import (
    DirectoryUpdate,
    FileIdentity,
    changed_entries,
    colliding_paths,
    git_root,
    git_tops_held,
    held_by,
    outside_any_repository,
    read_if_present,
    real_directory,
    recover_directories,
    regular_entries,
    replace_directories,
    sha256_regular,
    started,
)
from .errors import BuildError, Diagnostic
from .heap import gc_paused
from .keyglob import format_keypath
from .pipeline.cache import BuildCache, Fingerprint, fingerprint
from .pipeline.load import LAYER_SUFFIXES, FileSource, ParsedFile
from .pipeline.merge import ABSENT, HashingSource, Layer, LayerStack, Source
from .project import (
    LFS_TRACKED,
    LINK_HELD,
    MAX_ENVIRONMENTS,
    CheckoutAttributes,
    GitUnanswered,
    IndexAnswer,
    Project,
    attributes_by_git,
    committed_blobs,
    ignored_by_git,
    indexed_by_git,
    link_checked_out,
)
from .schema.index import PolicyIndex, PolicyTable, Schema, load_schema
from .syntax.strict_yaml import LoadFailed, parse_layer
from .workers import Forked, available_jobs

if TYPE_CHECKING:
    # What only compiling uses, imported where it does (the functions below): a build
    # whose outputs are what it would write (``BuildResult.reused``) compiles nothing,
    # and its process does not import them (~15 ms of a ~150 ms no-op).
    from .pipeline.context import CompileContext, Extensions, LayerLoader, Workspace
    from .pipeline.validate import ViolationLocator
    from .schema.validator import SchemaViolation, Validator
    from .secrets.redaction import Redactor

T = TypeVar("T")


@dataclass
class Artifact:
    """The compiled files of one environment (names relative to generated/<env>/)."""

    env: str
    files: dict[str, bytes]
    warnings: list[Diagnostic]
    stack: LayerStack
    context: CompileContext | None = field(default=None, repr=False, compare=False)
    policy_only: bool = False
    """Its manifest's reload policy is all that changed: the version stays
    (``emit.manifest_bytes``)."""

    @property
    def config(self) -> dict[str, Any]:
        import orjson

        result: dict[str, Any] = orjson.loads(self.files[CONFIG])
        return result


@dataclass
class _HeldDigests:
    """The layer files' digests by their status (``BuildCache.held_digests``), and
    whether this build changed them."""

    digests: dict[str, tuple[Fingerprint, str]]
    changed: bool = False


@dataclass
class BuildResult:
    environments: tuple[str, ...]
    artifacts: dict[str, Artifact]
    warnings: list[Diagnostic] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    timings: Timings | None = None
    policy_only: list[str] = field(default_factory=list)
    """Environments whose manifest's reload policy is all that changed
    (``Artifact.policy_only``)."""
    reused: bool = False
    """The outputs were found to be what this build would write, by the record of the
    build that wrote them (``Compiler.recorded_outputs``): nothing was compiled, and
    ``artifacts`` is empty."""


class Timings:
    """Seconds spent per stage, summed over environments, and the whole process.

    Stages: ``startup`` (interpreter, imports and reading magcfg.yaml, until the build
    starts), ``schema`` (reading the schema file and what is done with it: the split,
    parsing, meta-validating, compiling, indexing), ``cache`` (look-ups of fragments and
    writing the cache), ``load``, ``merge``, ``validate``, ``emit``, ``redact``,
    ``build_checks``, ``write``, ``report`` (printing the warnings), ``workers`` (waiting
    for the other processes of a build that compiles in several: ``Compiler.prepare``);
    ``total`` is the process's age when they are reported."""

    def __init__(self) -> None:
        age = process_age()
        # The process's start on the perf_counter clock: reading /proc/self/stat again
        # later, in a process of a gigabyte, took up to 0.9 s.
        self._born = time.perf_counter() - age
        self.seconds: dict[str, float] = {"startup": age, "load": 0.0, "merge": 0.0,
                                          "validate": 0.0, "emit": 0.0}
        self._stages: dict[str, _Stage] = {}

    def stage(self, name: str) -> _Stage:
        """The context that counts the time spent in it as ``name``'s; one object per
        stage: a build enters stages several times per fragment, thousands of times in a
        large repository (a generator-based context manager costs ~1 µs an entry)."""
        found = self._stages.get(name)
        if found is None:
            found = self._stages[name] = _Stage(self.seconds, name)
        return found

    def report(self) -> dict[str, float]:
        """Every stage, and ``total``: the process's age now."""
        return {**self.seconds, "total": time.perf_counter() - self._born}


class _Stage:
    """A stage of ``Timings``: adds the seconds it is held to its sum; entered again
    while held (an inner call that names the same stage), it counts once."""

    __slots__ = ("_depth", "_name", "_seconds", "_start")

    def __init__(self, seconds: dict[str, float], name: str) -> None:
        self._seconds = seconds
        self._name = name
        self._depth = 0
        self._start = 0.0

    def __enter__(self) -> None:
        self._depth += 1
        if self._depth == 1:
            self._start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if not self._depth:
            self._seconds[self._name] = (self._seconds.get(self._name, 0.0)
                                         + time.perf_counter() - self._start)


class _Digest:
    """The ``sha256:`` digest of ``data``, computed by a thread meanwhile (SHA-256 lets
    go of the GIL); ``result`` waits for it."""

    def __init__(self, data: bytes) -> None:
        self._data: bytes | None = data
        self._found = ""
        self._thread = threading.Thread(target=self._digest, name="magcfg config digest",
                                        daemon=True)
        self._started = started(self._thread)  # else ``result`` hashes it

    def _digest(self) -> None:
        from .pipeline.emit import sha256

        data = self._data
        if data is not None:
            self._found = sha256(data)

    def result(self) -> str:
        if self._started:
            self._thread.join()
        if not self._found and self._data is not None:  # no thread, or it failed (memory)
            self._digest()
        self._data = None
        return self._found


_CompileSteps = Generator[bytes, Callable[[], str], "tuple[Artifact | None, list[Diagnostic]]"]
"""``Compiler._compile_steps``: it yields a config.json to hash, and is sent the function
that returns the digest."""


def process_age() -> float:
    """Seconds since this process started (0.0 where /proc cannot tell)."""
    try:
        stat = Path("/proc/self/stat").read_bytes()
        start = int(stat.rsplit(b")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
        return max(0.0, time.clock_gettime(time.CLOCK_BOOTTIME) - start)
    except (OSError, ValueError, IndexError, AttributeError):
        return 0.0


MIN_ASIDE_SCHEMA_BYTES = 2 << 20
"""``Compiler.schema_aside`` splits a schema file of at least this size in another
process (about 25 ms per MB to split; starting the process costs ~10 ms)."""

MIN_PARALLEL_KEYS = 16
"""``Compiler.prepare`` forks only for at least this many top-level keys to compile:
below it, starting a process costs about what it saves (docs/performance.md)."""

_SUMMARY_FORMAT = 6
"""Of the cached schema summary; 2: key paths in the escaped text form of keyglob;
3: ``secret_values`` (``x-magcfg-secret-value``); 4: a piece's summary carries its
``policies`` (``SchemaIndex.policy_table``, read by ``magcfg diff``); 5: the policies
are cached beside the piece's summary (a build reads the summaries of every piece, and
the tables only for the keys it asks about); 6: a table's rows carry the merge key
(``x-magcfg-merge-key``), which merging asks for."""

_RECORD_FORMAT = "2"
"""Of the record of a build's outputs (``Compiler.record_build``); 2: the signature and
attestation kept beside the outputs are recorded with them."""


@functools.cache
def code_identity() -> str:
    """A digest of magcfg's own files as installed: each one's path, size and
    modification and change times (~1 ms for the package's ~130 files). A record of a
    build vouches for every check magcfg made (``Compiler.record_name``), and a magcfg
    of other code under the same ``__version__`` (an install from a branch, an edited
    checkout) checks otherwise: its build compiles, as a cold one would. Imported from
    an archive (a zipapp), whose files no directory lists, the archive's path and status
    stand for them; code that cannot be told by either is this process's alone."""
    digest = hashlib.sha256()
    package = os.path.dirname(os.path.abspath(__file__))
    if not os.path.isdir(package):
        archive = package
        while not os.path.lexists(archive) and os.path.dirname(archive) != archive:
            archive = os.path.dirname(archive)
        try:
            st = os.stat(archive)
        except OSError:
            st = None
        if st is None or not stat.S_ISREG(st.st_mode):
            return os.urandom(32).hex()
        digest.update(f"{archive}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0"
                      f"{os.path.relpath(package, archive)}".encode())
        return digest.hexdigest()
    pending = [package]
    while pending:
        directory = pending.pop()
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            entries = []  # fewer files, another digest: no record found
        for entry in entries:
            if entry.name == "__pycache__":
                continue  # written from the sources, by whatever imported them
            try:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                    continue
                st = entry.stat()
            except OSError:
                continue
            digest.update(f"{os.path.relpath(entry.path, package)}\0{st.st_size}\0"
                          f"{st.st_mtime_ns}\0{st.st_ctime_ns}\0".encode())
    return digest.hexdigest()


def _load_cue_layers(workspace: Workspace, paths: list[str]) -> dict[str, ParsedFile]:
    """``cue.layers.load_cue_layers``, imported when a build has CUE layer files."""
    from .cue.layers import load_cue_layers

    return load_cue_layers(workspace, paths)


LAYER_LOADERS = {CUE_SUFFIX: _load_cue_layers}
"""The standard layer loaders besides YAML: every command loads layers."""


def _cue_manifest_entry(workspace: Workspace) -> tuple[str, dict[str, str]] | None:
    """``cue.schema.manifest_entry``, imported when the project names a CUE schema: what
    vetting with ``cue`` needs (``cue.binary``: subprocess, tempfile, shutil) is a few
    ms of a small build's start."""
    if workspace.project.cue_schema is None:
        return None
    from .cue.schema import manifest_entry

    return manifest_entry(workspace)


def _cue_check_environments(workspace: Workspace, contexts: Sequence[CompileContext]
                            ) -> list[Diagnostic]:
    """``cue.schema.check_environments``, imported when the project names a CUE schema
    (``_cue_manifest_entry``)."""
    if workspace.project.cue_schema is None:
        return []
    from .cue.schema import check_environments

    return check_environments(workspace, contexts)


@functools.cache
def standard_extensions() -> Extensions:
    """Every capability of magcfg, at its extension point. Imported on first use: a
    command that loads and merges without compiling (``explain``, ``diff``, the editor's
    hover) does not import the build's checks and emitters."""
    from .delivery.emitter import configmap_emitter, configmap_size_check
    from .delivery.kustomization import kustomization_emitter
    from .pipeline.context import Extensions
    from .secrets.isolation import check_isolation
    from .secrets.manifests import emit_secret_manifests
    from .secrets.rules import check_layer_literals, check_secrets

    return Extensions(
        layer_loaders=LAYER_LOADERS,
        fragment_checks=(check_layer_literals,),
        document_checks=(configmap_size_check, check_secrets),
        artifact_emitters=(emit_secret_manifests,),
        schema_entries=(_cue_manifest_entry,),
        delivery_emitters=(configmap_emitter, kustomization_emitter),
        build_checks=(_cue_check_environments, check_isolation),
    )


class _PieceCache:
    """The build cache as the store of schema pieces (``schema.index.PieceStore``)."""

    def __init__(self, cache: BuildCache) -> None:
        self.cache = cache

    def get(self, name: str) -> Any:
        return self.cache.fragment(name)

    def put(self, name: str, value: Any) -> None:
        self.cache.put_fragment(name, value)

    def get_bytes(self, name: str) -> bytes | None:
        found = self.cache.serialized(name)
        return found[0] if found is not None else None

    def put_bytes(self, name: str, data: bytes) -> None:
        self.cache.put_serialized(name, data, None)

    def keep_bytes(self, name: str) -> None:
        self.cache.keep(serialized=name)


class Compiler:
    """Loads and compiles environments of one project, sharing parsed files and cache."""

    def __init__(self, project: Project, source: Source | None = None,
                 cache: BuildCache | None = None, extensions: Extensions | None = None,
                 *, judge_layers: bool = True) -> None:
        self.project = project
        # False for history (the ref side of ``diff --against``): what its layer files
        # commit is its own build's to judge, so the fragment checks' errors are warnings
        # (the fragments keep their names, and with them the cache's hits).
        self.judge_layers = judge_layers
        self._extensions = extensions  # None: standard_extensions(), on first use
        self.source: Any = source or FileSource(project.root, project.fenced)
        if cache is None:
            cache = BuildCache.for_project(project)
        self.cache = cache
        self._parsed: dict[str, ParsedFile] = {}
        # Each layer file loaded -> the key paths its content sits under; and the texts
        # of the literals under their secret keys (``_secret_texts``), once asked for.
        self._prefixes: dict[str, set[tuple[str, ...]]] = {}
        self._secrets_written: set[str] | None = None
        self._secrets_of: dict[tuple[str, str, tuple[str, ...]], frozenset[str]] = {}
        self._schema: Schema | None = None
        # (digest, size) or the error of the schema file, hashed by a thread while the
        # layers were read (``_schema_hashed_meanwhile``).
        self._schema_digest: tuple[str, int] | Exception | None = None
        self._validators: dict[str, Validator] = {}  # by schema (piece) digest
        self._redactor: Redactor | None = None
        self._policies: PolicyIndex | None = None
        self._from_cache: set[int] = set()  # ids of diagnostics cached already redacted
        self.timings = Timings()
        self._summary: dict[str, Any] | None = None
        self._secret_keys: list[str] | None = None
        self._once: dict[str, Any] = {}
        # Values ``prepare`` merged in this process, by fragment: ``compile`` hands them
        # to the document checks as it does the values it merges itself.
        self._prepared: dict[str, Any] = {}
        # The stacks ``prepare`` last named the fragments of, and those names by (env,
        # key): ``compile`` of the same stack takes them rather than hash them again.
        self._named: tuple[dict[str, LayerStack], dict[tuple[str, str], str]] = ({}, {})

    @property
    def extensions(self) -> Extensions:
        if self._extensions is None:
            self._extensions = standard_extensions()
        return self._extensions

    def _layer_loaders(self) -> Mapping[str, LayerLoader]:
        return self._extensions.layer_loaders if self._extensions is not None else LAYER_LOADERS

    def once(self, name: str, compute: Callable[[], Any]) -> Any:
        """``compute()`` run at most once per compiler (``pipeline.context.Workspace``)."""
        if name not in self._once:
            self._once[name] = compute()
        return self._once[name]

    def peers(self, compiled: Collection[str]) -> list[CompileContext]:
        """``pipeline.context.Workspace.peers``: the other environments, loaded and
        compiled as a build compiles them (from the cache where it can), not written."""
        out = []
        for env in self.project.environments:
            if env in compiled:
                continue
            try:
                artifact, _ = self.compile(env, self.load_stack(env), None)
            except BuildError:
                continue  # its own build reports it
            if artifact is not None and artifact.context is not None:
                out.append(artifact.context)
        return out

    # -- schema -----------------------------------------------------------------------

    def schema(self) -> Schema | None:
        if self._schema is None and self.project.json_schema:
            with self.timings.stage("schema"):
                self._schema = self._read_schema(self.project.json_schema)
        return self._schema

    def _read_schema(self, path: str) -> Schema:
        # The digest first where the source can hash without reading (the working
        # tree); the bytes are then read only if the cache lacks what they give.
        if isinstance(self.source, HashingSource):
            known, self._schema_digest = self._schema_digest, None
            if isinstance(known, Exception):
                raise known
            digest, size = known or self._from_schema_file(path, self.source.sha256)
            schema = Schema.of_file(path, digest, size, lambda: self._from_schema_file(
                path, lambda rel: self._schema_bytes(rel, digest)))
        else:
            schema = load_schema(path, self._from_schema_file(path, self.source.read))
        schema.use_store(_PieceCache(self.cache))
        return schema

    def _schema_bytes(self, path: str, digest: str) -> bytes:
        """The bytes of the schema file of ``digest``: bytes no checkout could have
        written for others (``FileSource.read_examined``) are remembered so by their
        digest (``schema_as_committed``)."""
        source: Source = self.source
        if not isinstance(source, FileSource):
            return source.read(path)
        raw, plain = source.read_examined(path)
        if plain:  # bytes of another digest fail the schema's own check, and the build
            self.cache.put_fragment(f"schema-as-committed:{digest}", True)
        return raw

    def schema_as_committed(self) -> list[Diagnostic]:
        """Why the JSON schema file is not what the commit holds, as reading it finds
        (``FileSource.read``: ``project.Checkout``), or nothing. A rebuild hashes the
        schema and reads it only for what the cache lacks: it is read here unless the
        cache knows its digest for bytes no checkout could have written for others, or
        a schema the checkout holds converted would be refused by a cold build alone,
        CI's, and built by a warm one."""
        schema = self._schema
        if schema is None or not isinstance(self.source, FileSource) \
                or self.cache.fragment(f"schema-as-committed:{schema.digest}") is True:
            return []
        try:
            schema.raw  # noqa: B018 (read for its check)
        except BuildError as exc:
            return exc.diagnostics
        return []

    @contextmanager
    def _schema_hashed_meanwhile(self) -> Iterator[None]:
        """Run the block (reading the layer files) while a thread hashes the schema
        file. Both wait on the disk and on SHA-256, which let go of the GIL, so a
        rebuild pays for the longer of the two rather than their sum. The thread is
        over when the block is; ``_read_schema`` takes what it found. No thread when
        the cache knows the digest of the file as it stands (``BuildCache.file_sha256``:
        its status unchanged since a build hashed it)."""
        path = self.project.json_schema
        source = self.source
        if self._schema is not None or not path or not isinstance(source, HashingSource):
            yield
            return
        began = time.time_ns()
        before = self._disk_status(path)
        known = self.cache.file_sha256(path, before) if before is not None else None
        if known is not None:  # unchanged since a build hashed it (BuildCache.file_sha256)
            self._schema_digest = known
            yield
            return
        found: list[tuple[str, int] | Exception] = []

        def digest() -> None:
            try:
                found.append(self._from_schema_file(path, source.sha256))
            except Exception as exc:  # raised where the schema is needed, as unthreaded
                found.append(exc)

        thread = threading.Thread(target=digest, name="magcfg schema digest", daemon=True)
        threaded = started(thread)
        if not threaded:  # no more threads: hashed before the block instead
            digest()
        try:
            yield
        finally:
            if threaded:
                thread.join()
        if found:
            self._schema_digest = found[0]
            after = self._disk_status(path) if before is not None else None
            if after is not None and before is not None and isinstance(found[0], tuple):
                self.cache.put_file_sha256(path, before, after, began, found[0])

    def _disk_status(self, path: str) -> os.stat_result | None:
        """The status of the file ``path`` on disk when that is what the source hashes
        (a ``FileSource``, not one that lays other bytes over the disk's), else None."""
        if type(self.source) is not FileSource:
            return None
        try:
            return self.source.status(path)
        except BuildError:  # hashed anyway, to be refused as the file is read
            return None

    def _from_schema_file(self, path: str, read: Callable[[str], T]) -> T:
        """``read(path)``, its ``OSError`` a located error about the project's schema."""
        try:
            return read(path)
        except OSError as exc:
            raise BuildError([Diagnostic(self.project.file, None, "schema.json",
                                         f"cannot read schema {path}: {exc.strerror}",
                                         code="schema")]) from None

    def redactor(self) -> Redactor:
        """The project's one redactor (schema secrets + the project's ``redact`` globs)."""
        if self._redactor is None:
            from .secrets.redaction import Redactor

            self._redactor = Redactor(self.policies(), self.redact_globs())
        return self._redactor

    def redact_globs(self) -> list[str]:
        """The project's ``redact`` globs (a malformed setting is reported by the secrets
        check)."""
        patterns = self.project.settings.get("redact") or ()
        if not isinstance(patterns, list):
            patterns = ()
        return [p for p in patterns if isinstance(p, str) and p]

    def validator(self, key: str | None = None) -> Validator | None:
        """The validator of the top-level ``key``'s piece of the schema (of the whole
        schema when it is not split, or for ``key=None``): compiled once per build."""
        schema = self.schema()
        if schema is None:
            return None
        return self._validator_of(schema.piece(key) if key is not None else schema)

    def _validator_of(self, target: Schema) -> Validator:
        found = self._validators.get(target.digest)
        if found is None:
            from .schema.validator import Validator

            with self.timings.stage("schema"):
                found = self._validators[target.digest] = Validator(target, self.redactor())
        return found

    # -- load -------------------------------------------------------------------------

    def layer_files(self, env: str,
                    listed: dict[str, tuple[list[str], list[Diagnostic]]] | None = None
                    ) -> tuple[list[tuple[str, list[tuple[str, tuple[str, ...]]]]],
                               list[Diagnostic]]:
        """Each layer's (name, [(file, key prefix)]) in ``env``, and the listing's problems
        (the mapping of files to key paths: ``LayerSpec.key_prefix``). ``listed``: the
        listings of directories already made for the other environments of one load,
        by directory (a layer without ``{env}`` in its path, all of a repository's base
        files, is the same directory in each environment), and where this one's go."""
        out: list[tuple[str, list[tuple[str, tuple[str, ...]]]]] = []
        problems: list[Diagnostic] = []
        no_prefix: tuple[str, ...] = ()
        for spec in self.project.layers:
            directory = spec.directory(env)
            known = listed.get(directory) if listed is not None else None
            files, found = known or self.source.list_layer(directory)
            if listed is not None:
                listed[directory] = (files, found)
            if spec.files is None:
                out.append((spec.name, [(p, no_prefix) for p in files]))
            else:
                out.append((spec.name, [(p, prefix) for p in files
                                        if (prefix := spec.key_prefix(env, p)) is not None]))
            problems.extend(found)
        problems += colliding_paths(p for _, files in out for p, _prefix in files)
        return out, problems

    def load_stack(self, env: str) -> LayerStack:
        """The environment's LayerStack; raises BuildError with every load error."""
        stacks = self.load_stacks([env])
        return stacks[env]

    def load_stacks(self, envs: Iterable[str], jobs: int = 1, links_asked: bool = False
                    ) -> dict[str, LayerStack]:
        """The LayerStack of each of ``envs``; raises BuildError with every load error.

        Every layer file is read and hashed first (the schema hashed meanwhile), but
        those whose digest the cache knows by their unchanged status
        (``BuildCache.held_digests``), then what the cache does not know is parsed.
        With ``jobs`` > 1 the schema is split in another process while this one parses
        (``schema_aside``). git's index is asked meanwhile which of the files read are
        symlinks this checkout holds as files of their targets (``held_links``), but
        where the caller asks it (``links_asked``: ``ignored_inputs``, the build's)."""
        envs = list(envs)
        listing: dict[str, list[tuple[str, list[tuple[str, tuple[str, ...]]]]]] = {}
        errors: list[Diagnostic] = []
        read: dict[str, tuple[bytes | None, str]] = {}  # None: not read, its digest held
        loaders = self._layer_loaders()
        began = time.time_ns()
        with self._schema_hashed_meanwhile(), self.timings.stage("load"):
            if isinstance(self.source, FileSource):
                for path in filter(None, (self.project.file, self.project.json_schema,
                                          self.project.cue_schema)):
                    errors.extend(self.source.elsewhere_there(path))
            listed: dict[str, tuple[list[str], list[Diagnostic]]] = {}
            for env in envs:
                listing[env], problems = self.layer_files(env, listed)
                errors.extend(problems)
                for _, files in listing[env]:
                    for path, prefix in files:
                        self._prefixes.setdefault(path, set()).add(prefix)
            self._secrets_written = None
            wanted = sorted({p for layers in listing.values() for _, files in layers
                             for p, _prefix in files})
            links = (lambda: []) if links_asked else held_links(self.source, [
                *filter(None, (self.project.json_schema, self.project.cue_schema)), *wanted])
            held = self._held_layer_files()
            for path in wanted:
                if path in self._parsed or path.endswith(tuple(loaders)):
                    continue
                try:
                    read[path] = self._layer_file(path, began, held)
                except BuildError as exc:  # unreadable
                    errors.extend(exc.diagnostics)
            if held is not None and set(envs) == set(self.project.environments):
                # Every layer file was listed: those gone need no record.
                for path in set(held.digests) - set(wanted):
                    del held.digests[path]
                    held.changed = True
            if held is not None and held.changed:
                self.cache.put_held_digests("layers", held.digests)
        with self.schema_aside(jobs), self.timings.stage("load"):
            for suffix, loader in sorted(loaders.items()):
                todo = [p for p in wanted if p.endswith(suffix) and p not in self._parsed]
                if todo:
                    try:
                        self._parsed.update(loader(self, todo))
                    except BuildError as exc:
                        errors.extend(exc.diagnostics)
            for path, (raw, digest) in read.items():
                try:
                    self._load_file(path, raw, digest)
                except (LoadFailed, BuildError) as exc:  # BuildError: read, it changed
                    errors.extend(exc.diagnostics)
        links_found = links()
        if links_found:  # what a file's text said is no matter: it is a link's target
            held_paths = {d.file for d in links_found}
            errors = [*links_found, *(d for d in errors if d.file not in held_paths)]
        if errors:
            raise BuildError(sorted(set(self._redacted(errors))))
        policies = self.policies()
        merge_key = policies.merge_key if policies is not None else None
        stacks = {}
        for env, layers in listing.items():
            stack_layers = [
                Layer(name, self.project.layers[i].directory(env),
                      tuple(self._parsed[p].under(prefix) for p, prefix in files))
                for i, (name, files) in enumerate(layers)
            ]
            stacks[env] = LayerStack(env, stack_layers, self.source, merge_key)
        return stacks

    def _held_layer_files(self) -> _HeldDigests | None:
        """The digests of the layer files the cache knows by their status
        (``BuildCache.held_digests``), when the source is the disk's own files (not one
        that lays other bytes over them)."""
        if type(self.source) is not FileSource:
            return None
        return _HeldDigests(self.cache.held_digests("layers"))

    def _layer_file(self, path: str, began: int, held: _HeldDigests | None
                    ) -> tuple[bytes | None, str]:
        """The bytes of the layer file ``path`` and their digest; ``None`` for the bytes
        when ``held`` knows the digest of the file as it stands (its status unchanged
        since a build read it: the bytes are read, and checked against the digest,
        only if the file must be parsed)."""
        if held is None:
            raw = self.source.read(path)
            return raw, hashlib.sha256(raw).hexdigest()
        assert isinstance(self.source, FileSource)
        try:
            found = fingerprint(self.source.status(path))
        except BuildError:
            found = ()
        known = held.digests.get(path)
        if found and known is not None and tuple(known[0]) == found:
            return None, known[1]
        raw, status = self.source.read_settled(path, began)
        digest = hashlib.sha256(raw).hexdigest()
        if status is not None:
            held.digests[path] = (fingerprint(status), digest)
            held.changed = True
        elif held.digests.pop(path, None) is not None:
            held.changed = True
        return raw, digest

    def _read_as(self, path: str, digest: str) -> bytes:
        """The bytes of ``path``, which must be those of ``digest``: what the build
        knows of the file (its keys, its fragments) is keyed by it."""
        raw: bytes = self.source.read(path)
        if hashlib.sha256(raw).hexdigest() != digest:
            raise BuildError([Diagnostic(path, None, None, "the file changed while magcfg "
                                         "was reading it; build again", code="path")])
        return raw

    def forget(self, paths: Iterable[str]) -> None:
        """Parse ``paths`` again on the next load: their bytes changed (an editor's
        unsaved buffer). Fragments keep their cache entries, which are keyed by digest."""
        for path in paths:
            self._parsed.pop(path, None)
        self._secrets_written = None

    def _load_file(self, path: str, raw: bytes | None, digest: str) -> ParsedFile:
        """``path``, read as ``raw`` (of SHA-256 ``digest``; None: not read yet): its
        top-level keys from the cache when it knows the digest, else parsed."""
        known = self.cache.layer_keys(digest)
        parsed: ParsedFile | None = None
        if known is not None:
            # Only the keys are cached, never a layer's values: the data is parsed again
            # if a fragment it contributes to has to be merged.
            keys, markers = known
            parsed = ParsedFile(path, digest, keys, markers, loader=lambda: parse_layer(
                path, raw if raw is not None else self._read_as(path, digest))[0])
        else:
            data, markers = parse_layer(path, raw if raw is not None
                                        else self._read_as(path, digest))
            self.cache.put_layer_keys(digest, tuple(data), markers)
            parsed = ParsedFile(path, digest, tuple(data), markers, data=data)
        self._parsed[path] = parsed
        return parsed

    # -- compile ----------------------------------------------------------------------

    def _fragment_name(self, stack: LayerStack, key: str, layer_of: dict[str, str],
                       redact: str) -> str:
        """The cache key of ``key``'s fragment in ``stack``: its piece of the schema (a
        change to another key's schema leaves it cached), the redact globs, the fragment
        checks it passed (a compiler without one must not vouch for a fragment to one
        with it) and every file that contributes to it."""
        schema = self.schema()
        with self.timings.stage("schema"):
            schema_digest = schema.piece_digest(key) if schema else ""
        checks = ",".join(f"{c.__module__}.{c.__qualname__}"
                          for c in self.extensions.fragment_checks)
        return self.cache.fragment_key(
            "fragment", schema_digest, key, redact, checks,
            *(f"{layer_of[f.path]}\0{f.path}\0{f.digest}"
              + (f"\0{format_keypath(f.prefix)}" if f.prefix else "")
              for f in stack.contributors(key)))

    def _known_config_sha256(self, fragment_digests: list[str]) -> tuple[str, str | None]:
        """The cache key of config.json's ``sha256``, kept under the digests of the bytes
        of the fragments it is joined from (in order: they make its bytes), and the
        digest if it is there: a build whose fragments hold the bytes of an earlier
        build's does not hash the megabytes again, whether they were cached or merged
        afresh from files whose edit changed no value (a comment, a reformatting)."""
        name = self.cache.fragment_key("config-sha256", *fragment_digests)
        found = self.cache.fragment(name)
        return name, found if isinstance(found, str) and found.startswith("sha256:") else None

    def _merge_fragment(self, key: str, stack: LayerStack, violations_at: ViolationLocator
                        ) -> tuple[Any, list[Diagnostic], bool]:
        """``key`` merged in ``stack`` and validated against its piece of the schema:
        (value, diagnostics, whether it failed)."""
        with self.timings.stage("merge"):
            value, diags = stack.merge_top(key)
        index = self.policies() if self.extensions.fragment_checks else None
        if index is not None:
            with self.timings.stage("validate"):
                found = [d for check in self.extensions.fragment_checks
                         for d in check(stack, key, value, index)]
            if not self.judge_layers:
                found = [Diagnostic(d.file, d.line, d.key, d.message, "warning", d.code)
                         for d in found]
            diags = diags + found
        errors = [d for d in diags if d.severity == "error"]
        violations: list[SchemaViolation] = []
        validator = self.validator(key)
        if not errors and value is not ABSENT and validator is not None:
            with self.timings.stage("validate"):
                violations = validator.check_fragment(key, value)
                errors = violations_at.locate(violations)
            diags = diags + errors
        return value, diags, bool(errors or violations)

    def _store_fragment(self, fkey: str, key: str, value: Any, diags: list[Diagnostic]
                        ) -> tuple[bytes, str]:
        """Cache a fragment that merged and validated, with the hex SHA-256 of its bytes;
        returns both."""
        from .pipeline.emit import fragment_bytes

        with self.timings.stage("emit"):
            data = fragment_bytes(key, value) if value is not ABSENT else b""
        # Cached as reported: redacted, so the cache never quotes a secret value.
        with self.timings.stage("redact"):
            warnings = [(d.file, d.line, d.key, d.message, d.severity, d.code)
                        for d in (self._redacted(diags) if diags else ())]
        digest = hashlib.sha256(data).hexdigest()
        self.cache.put_serialized(fkey, data, (warnings, value is ABSENT, digest))
        return data, digest

    @contextmanager
    def schema_aside(self, jobs: int) -> Iterator[None]:
        """Split the schema into its pieces in another process while this one runs the
        block (reading and parsing the layers): on a cold build of a large repository
        both take about as long. The split lands in the cache, where ``piece_digests``
        finds it as a later build would; a split that fails (a schema error) hands
        back nothing, and this process meets the error where it always did. Nothing is
        done with one job, no schema or a small one, or a split already cached."""
        if jobs < 2:
            yield
            return
        try:
            schema = self.schema()
        except BuildError:  # reported where the schema is needed, as without this
            schema = None
        if schema is None or schema.size < MIN_ASIDE_SCHEMA_BYTES:
            yield
            return
        with self.timings.stage("cache"):
            cached = schema.split_stored()
        if cached:
            yield
            return

        def split(_: None) -> bytes:
            before = self.cache.pending_names()
            schema.piece_digests()
            return marshal.dumps(self.cache.new_entries(before))

        with Forked([None], split) as child:
            yield
            with self.timings.stage("workers"):
                found = child.results()[0]
        if found is not None:
            self.cache.adopt(marshal.loads(found))

    def prepare(self, stacks: dict[str, LayerStack], jobs: int) -> None:
        """Compile, in ``jobs`` processes at once, the fragments of ``stacks`` that no
        cache holds and the summaries of the schema's pieces that are not cached: the
        work of a cold build that is independent per top-level key. What each process
        compiles lands in the cache, where ``compile`` finds it as it would find a
        fragment compiled by an earlier build; what fails is left for ``compile`` to
        compile again and report (so errors are reported exactly as without workers).
        Nothing is done with fewer than ``MIN_PARALLEL_KEYS`` keys to compile, or with a
        schema that is not split into pieces.

        With one job the same work runs here, key by key: ``compile`` goes environment
        by environment and would hold every piece of the schema at once, while this
        releases each key's piece once its fragments are cached (less than half the
        peak memory of a large cold build in one process: docs/performance.md)."""
        schema = self.schema()
        with self.timings.stage("schema"):  # a cold split parses the file
            split = schema is not None and bool(schema.piece_digests())
        if (schema is None and jobs < 2) or (schema is not None and not split):
            # A schema that is not split would be compiled whole in every process;
            # without a schema, one process has nothing to release.
            return
        todo: dict[str, list[tuple[str, str]]] = {}  # top-level key -> [(env, fragment)]
        named: set[str] = set()
        redact = "\0".join(self.redact_globs())
        names: dict[tuple[str, str], str] = {}
        self._named = (stacks, names)
        for env, stack in stacks.items():
            layer_of = {f.path: layer.name for layer in stack.layers for f in layer.files}
            for key in stack.top_keys():
                fkey = names[env, key] = self._fragment_name(stack, key, layer_of, redact)
                with self.timings.stage("cache"):
                    if fkey in named or self.cache.holds_serialized(fkey):
                        continue
                named.add(fkey)
                todo.setdefault(key, []).append((env, fkey))
        summaries = False
        if schema is not None and todo:
            with self.timings.stage("cache"):
                summaries = self.cache.fragment(f"schema-summary:{schema.digest}") is None
            if summaries:
                for key in schema.piece_digests():
                    todo.setdefault(key, [])
        if len(todo) < MIN_PARALLEL_KEYS:
            return
        # Each key's cost grows with its piece of the schema (compiled, indexed, checked
        # once per fragment): the largest first, each to the least loaded process.
        with self.timings.stage("schema"):
            cost = {key: (1 + len(frags)) * (len(schema.piece(key).raw) if schema else 1)
                    for key, frags in todo.items()}
        shares: list[list[str]] = [[] for _ in range(min(jobs, len(todo)))]
        loads = [0] * len(shares)
        for key in sorted(todo, key=lambda k: (-cost[k], k)):
            i = loads.index(min(loads))
            shares[i].append(key)
            loads[i] += cost[key]

        from .pipeline.validate import ViolationLocator

        def compile_share(keys: list[str]) -> None:
            locators = {env: ViolationLocator(stack, self.project.file)
                        for env, stack in stacks.items()}
            for key in keys:
                try:
                    # The summary first: it caches the piece's policy table, from which
                    # the merge's questions about single keys (is it secret?) are
                    # answered without walking the whole schema's index.
                    if summaries and schema is not None and key in schema.piece_digests():
                        self._piece_summary(schema, key)
                    for env, fkey in todo[key]:
                        value, diags, bad = self._merge_fragment(key, stacks[env],
                                                                 locators[env])
                        if bad:
                            break
                        self._store_fragment(fkey, key, value, diags)
                        if value is not ABSENT:
                            self._prepared[fkey] = value
                except BuildError:
                    continue  # compile() meets it again and reports it
                finally:
                    self._release_piece(key)

        def hand_back(keys: list[str]) -> bytes:
            before = self.cache.pending_names()
            compile_share(keys)
            return marshal.dumps(self.cache.new_entries(before))

        if len(shares) == 1:
            compile_share(shares[0])
            return
        with Forked(shares[1:], hand_back) as children:
            compile_share(shares[0])
            with self.timings.stage("workers"):
                theirs = children.results()
        with self.timings.stage("cache"):
            while theirs:  # each child's bytes freed once taken
                found = theirs.pop()
                if found is not None:
                    self.cache.adopt(marshal.loads(found))
                del found
        self._new_policy_tables()

    def _release_piece(self, key: str) -> None:
        """Drop what this process holds of ``key``'s piece of the schema (its parsed
        document, index and validator: several times the piece's bytes). Once its
        fragments and summary are cached, nothing else needs them, and a piece asked
        for again is read back from the cache."""
        schema = self.schema()
        if schema is not None and key in schema.piece_digests():
            # Freeing a piece's millions of objects is part of the schema's cost.
            with self.timings.stage("schema"):
                self._validators.pop(schema.piece_digest(key), None)
                schema.release(key)

    def compile(self, env: str, stack: LayerStack, version_base: VersionBase | None,
                only: Collection[str] | None = None
                ) -> tuple[Artifact | None, list[Diagnostic]]:
        """Merge, validate and emit one environment, numbering its version from
        ``version_base`` (``version_bases``; None: version 1). Returns (artifact,
        diagnostics); the artifact is None when there are errors. No diagnostic quotes a
        secret.

        With ``only`` (top-level keys), just those fragments are merged and validated and
        the document checks see a document of only them; nothing is emitted (an editor
        re-checking what a keystroke touched). Checks of the whole document (required
        keys, schema rules across fragments, build checks) need a full compile."""
        return self.compile_each([(env, stack, version_base)], only)[0]

    def compile_each(self, todo: Sequence[tuple[str, LayerStack, VersionBase | None]],
                     only: Collection[str] | None = None
                     ) -> list[tuple[Artifact | None, list[Diagnostic]]]:
        """``compile`` of each (environment, stack, version base) of ``todo``, in order.
        Each environment's config.json is hashed by a thread while this one joins the
        next environment's (SHA-256 lets go of the GIL; the join of views of the cache's
        pack does not): a rebuild of several environments pays for the hashing of
        megabytes beside the rest rather than after it."""
        begun: list[tuple[_CompileSteps, _Digest | None,
                          tuple[Artifact | None, list[Diagnostic]] | None]] = []
        try:
            for env, stack, version_base in todo:
                steps = self._compile_steps(env, stack, version_base, only)
                try:
                    begun.append((steps, _Digest(next(steps)), None))
                except StopIteration as done:  # failed, or needs no digest
                    begun.append((steps, None, done.value))
            return [self._redacted_result(*self._finished(steps, digest, done))
                    for steps, digest, done in begun]
        finally:
            for _, digest, _ in begun:  # no thread outlives the compile, whatever happened
                if digest is not None:
                    digest.result()
            self._from_cache.clear()

    def _finished(self, steps: _CompileSteps, digest: _Digest | None,
                  done: tuple[Artifact | None, list[Diagnostic]] | None
                  ) -> tuple[Artifact | None, list[Diagnostic]]:
        """What ``steps`` return once handed ``digest``, their config.json's."""
        if done is not None:
            return done
        assert digest is not None
        try:
            steps.send(digest.result)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        raise AssertionError("compile steps ask for one digest")

    def _redacted_result(self, artifact: Artifact | None, diagnostics: list[Diagnostic]
                         ) -> tuple[Artifact | None, list[Diagnostic]]:
        """``compile``'s (artifact, diagnostics) with the fresh diagnostics redacted."""
        if diagnostics:
            # Cached diagnostics were redacted when cached, under the same redact globs
            # (they are part of the fragment key): masking them again would mean
            # reading the schema on a build that compiles nothing.
            fresh = [d for d in diagnostics if id(d) not in self._from_cache]
            with self.timings.stage("redact"):
                masked = iter(self._redacted(fresh))
            diagnostics = [d if id(d) in self._from_cache else next(masked)
                           for d in diagnostics]
            if artifact is not None:
                artifact.warnings = [d for d in diagnostics if d.severity == "warning"]
        return artifact, diagnostics

    def _compile_steps(self, env: str, stack: LayerStack, version_base: VersionBase | None,
                       only: Collection[str] | None = None) -> _CompileSteps:
        """Merge, validate and emit one environment (``compile``, unredacted). Once its
        config.json is joined, if its digest is not cached, the steps yield its bytes
        and go on (the document checks, the emitters) until they need the digest: they
        are sent the function that waits for it (``compile_each``)."""
        from .pipeline.context import CompileContext
        from .pipeline.emit import config_bytes, fragment_views, inputs_digest, manifest_bytes
        from .pipeline.validate import ViolationLocator
        from .schema.validator import SchemaViolation

        schema = self.schema()
        diagnostics: list[Diagnostic] = []
        fragments: list[bytes | memoryview] = []
        by_key: dict[str, tuple[str, bytes | memoryview]] = {}
        digests: list[str] = []  # of the fragments of by_key, in order
        present: dict[str, Any] = {}
        failed = False
        layer_of = {f.path: layer.name for layer in stack.layers for f in layer.files}
        violations_at = ViolationLocator(stack, self.project.file)
        redact = "\0".join(self.redact_globs())
        named_stacks, names = self._named
        if named_stacks.get(env) is not stack:
            names = {}
        for key in stack.top_keys() if only is None else sorted(only):
            fkey = (names.get((env, key))
                    or self._fragment_name(stack, key, layer_of, redact))
            with self.timings.stage("cache"):
                cached = self.cache.serialized_view(fkey)
            if cached is not None:
                data, (warnings, absent, fragment_digest) = cached
                for w in warnings:
                    diagnostic = Diagnostic(*w)
                    self._from_cache.add(id(diagnostic))
                    diagnostics.append(diagnostic)
                if not absent:
                    fragments.append(data)
                    present[key] = self._prepared.pop(fkey, True)
                    by_key[key] = (fkey, data)
                    digests.append(fragment_digest)
                continue
            value, diags, bad = self._merge_fragment(key, stack, violations_at)
            diagnostics.extend(diags)
            if bad:
                failed = True
                continue
            data, fragment_digest = self._store_fragment(fkey, key, value, diags)
            if value is not ABSENT:
                fragments.append(data)
                present[key] = value
                by_key[key] = (fkey, data)
                digests.append(fragment_digest)
        if failed:
            return None, diagnostics + violations_at.not_shown()
        with self.timings.stage("emit"):
            config = config_bytes(fragments)
        # What the checks below read of a fragment is what config.json holds, and no
        # view of the cache's packs outlives the join.
        views = fragment_views(config, [len(data) for _, data in by_key.values()])
        by_key = {key: (fkey, next(views)) for key, (fkey, _) in by_key.items()}
        fragments.clear()
        digest_name, known_digest = (self._known_config_sha256(digests) if only is None
                                     else ("", None))
        config_digest: Callable[[], str] = lambda: known_digest or ""  # noqa: E731
        if only is None and not known_digest:
            config_digest = yield config
        files = {CONFIG: config}
        summary = self.schema_summary()
        context = CompileContext(self.project, env, stack, schema, config, self.redactor(),
                                 by_key, self.cache,
                                 {k: v for k, v in present.items() if v is not True},
                                 schema_summary=summary,
                                 policies=self.policies)
        extensions = self.extensions
        with self.timings.stage("validate"):
            if summary is not None and only is None:
                if summary["fragment_safe"]:
                    violations = [SchemaViolation((), f"required key {name!r} is missing",
                                                  "required")
                                  for name in summary["required"] if name not in present]
                else:
                    validator = self.validator()
                    assert validator is not None
                    violations = validator.check_document(context.config)
                if violations:
                    return None, (diagnostics + violations_at.locate(violations)
                                  + violations_at.not_shown())
            check_errors = [d for check in extensions.document_checks for d in check(context)]
        diagnostics.extend(check_errors)
        if only is not None or any(d.severity == "error" for d in check_errors):
            return None, diagnostics
        with self.timings.stage("emit"):
            for emitter in extensions.artifact_emitters:
                files.update(emitter(context))
            # Nor a file every reader of the artifact would refuse unread.
            too_large = [Diagnostic(f"{self.project.output}/{env}/{name}", None, None,
                                    f"would be {len(data)} bytes, more than the "
                                    f"{MAX_FILE_BYTES} every reader of an artifact accepts",
                                    code="artifact")
                         for name, data in sorted(files.items()) if len(data) > MAX_FILE_BYTES]
            if too_large:
                return None, diagnostics + too_large
            if known_digest:
                digest = known_digest
            else:
                digest = config_digest()
                self.cache.put_fragment(digest_name, digest)
            hot, restart = self.reload_partition()
            inputs = [(self.project.file, self.project.build_digest(env))]
            inputs += [(f.path, f.digest) for f in stack.files()]
            manifest, policy_only = manifest_bytes(
                env=env, files=files, inputs_digest=inputs_digest(inputs),
                input_count=len(inputs), schema_path=schema.path if schema else None,
                schema_digest=f"sha256:{schema.digest}" if schema else None,
                schemas=self._schema_entries(),
                hot_keys=hot, restart_keys=restart,
                previous=version_base.manifest if version_base else None,
                secret_keys=self.secret_keys(),
                manifest_path=(version_base.display if version_base
                               else f"{self.project.output}/{env}/{MANIFEST}"),
                digests={CONFIG: digest})
            files[MANIFEST] = manifest
            context._config_sha256 = digest.removeprefix("sha256:")
            for delivery in extensions.delivery_emitters:
                files.update(delivery(context, files))
        return Artifact(env, files, [d for d in diagnostics if d.severity == "warning"],
                        stack, context, policy_only), diagnostics

    # -- the record of a build's outputs --------------------------------------------------

    def record_name(self, chosen: Sequence[str], stacks: Mapping[str, LayerStack],
                    bases: Mapping[str, VersionBase]) -> str | None:
        """The cache key of the record of what a build of ``chosen`` writes
        (``record_build``): a digest of everything the outputs are made from, so that a
        record is found only for exactly these inputs, and one planted or moved under
        another key fails the cache's tag. It binds magcfg's version (the cache's salt)
        and its files as installed (``code_identity``), the project file's bytes, the
        JSON schema's path and digest, the environments, each one's layers (name,
        directory, and each file's path, digest and key prefix) and the manifest its
        version is numbered from. None where a build depends on
        more than that: another source than the disk's files, other extensions, a build
        of some of the environments (the build checks compile the others), or CUE (a
        schema or layer files that ``cue``, of whatever version is installed, evaluates)."""
        project = self.project
        if (type(self.source) is not FileSource or self._extensions is not None
                or not self.judge_layers or project.cue_schema
                or set(chosen) != set(project.environments)):
            return None
        schema = self.schema()
        parts = ["build-record", _RECORD_FORMAT, code_identity(), project.file, project.digest,
                 project.json_schema or "", schema.digest if schema is not None else "",
                 "\0".join(chosen)]
        for env in chosen:
            base = bases[env]
            parts += [env, base.display, hashlib.sha256(base.manifest).hexdigest()
                      if base.manifest is not None else ""]
            for layer in stacks[env].layers:
                parts.append(f"{layer.name}\0{layer.directory}")
                for f in layer.files:
                    if f.path.endswith(CUE_SUFFIX):
                        return None
                    parts.append(f"{f.path}\0{f.digest}\0{format_keypath(f.prefix)}")
        return self.cache.fragment_key(*parts)

    def record_build(self, name: str, artifacts: Mapping[str, Artifact],
                     updates: Sequence[DirectoryUpdate]) -> None:
        """Record under ``name`` (``record_name``) what this build writes: each
        environment's files by name (SHA-256 and size), the signature and attestation
        it keeps among them (``updates``: ``configmap.yaml`` carries the signature), its
        warnings (redacted, as reported) and whether only its reload policy changed."""
        record: dict[str, Any] = {}
        kept = {update.rel: update.files for update in updates}
        for env, artifact in artifacts.items():
            files = {}
            for file, data in kept[f"{self.project.output}/{env}"].items():
                known = (artifact.context._config_sha256
                         if file == CONFIG and artifact.context is not None else "")
                files[file] = (known or hashlib.sha256(data).hexdigest(), len(data))
            record[env] = (files, [(d.file, d.line, d.key, d.message, d.severity, d.code)
                                   for d in artifact.warnings], artifact.policy_only)
        if self.cache.fragment(name) != record:  # a build that changed nothing writes nothing
            self.cache.put_fragment(name, record)

    def recorded_outputs(self, name: str, chosen: Sequence[str]
                         ) -> dict[str, tuple[list[Diagnostic], bool]] | None:
        """Each environment's (warnings, policy only) as recorded under ``name``
        (``record_build``), when each output directory holds what that build wrote, so
        what a build would write now: exactly the recorded files, the signature and
        attestation it kept included (a signature added or removed since is another
        ``configmap.yaml``), each of its recorded SHA-256. A file's digest comes from the
        cache while its status is what it was when a build hashed it
        (``BuildCache.file_sha256``), else it is hashed. None if anything differs or
        cannot be told: the build then compiles and writes."""
        found = self.cache.fragment(name)
        if not isinstance(found, dict) or set(found) != set(chosen):
            return None
        out: dict[str, tuple[list[Diagnostic], bool]] = {}
        for env in chosen:
            try:  # authenticated, so this magcfg's: only another layout could fail here
                files, warnings, policy_only = found[env]
                sizes = {file: (str(digest), int(size)) for file, (digest, size) in files.items()}
                out[env] = ([Diagnostic(*w) for w in warnings], bool(policy_only))
            except (TypeError, ValueError, AttributeError):
                return None
            rel = f"{self.project.output}/{env}"
            try:
                directory = real_directory(self.project.root, rel)
            except BuildError:
                return None
            entries = regular_entries(directory)
            if entries is None or set(entries) != set(sizes):
                return None
            for file, (digest, size) in sizes.items():
                if entries[file].st_size != size \
                        or self._output_sha256(f"{rel}/{file}", directory / file,
                                               entries[file], size) != digest:
                    return None
        return out

    def output_holding(self, rel: str, path: Path, data: bytes, digest: str
                       ) -> FileIdentity | None:
        """The identity of the output file ``path`` (``rel`` from the root) if it holds
        exactly ``data``, of hex SHA-256 ``digest``: by the digest the cache keeps for
        its status, else compared byte for byte (``durable.held_by``, as a write would
        compare it), the digest then kept for that status if the file held still; None
        if it does not hold them or cannot be read."""
        try:
            status = os.stat(path, follow_symlinks=False)
        except OSError:
            return None
        if not stat.S_ISREG(status.st_mode) or status.st_size != len(data):
            return None
        identity = status.st_dev, status.st_ino
        known = self.cache.file_sha256(rel, status)
        if known is not None:
            return identity if known == (digest, len(data)) else None
        began = time.time_ns()
        try:
            held = held_by(path, data)
            after = os.stat(path, follow_symlinks=False)
        except OSError:
            return None
        if held != identity:
            return None
        self.cache.put_file_sha256(rel, status, after, began, (digest, len(data)))
        return held

    def _output_sha256(self, rel: str, path: Path, status: os.stat_result, size: int
                       ) -> str | None:
        """The SHA-256 of the output file ``path`` of ``status`` (``rel`` from the root),
        from the cache by its status or hashed (no more than ``size`` bytes); None when
        it cannot be read."""
        known = self.cache.file_sha256(rel, status)
        if known is not None:
            return known[0]
        began = time.time_ns()
        try:
            found = sha256_regular(path, size)
            after = os.stat(path, follow_symlinks=False)
        except OSError:
            return None
        self.cache.put_file_sha256(rel, status, after, began, found)
        return found[0]

    def build_checks(self, artifacts: list[Artifact]) -> list[Diagnostic]:
        """Errors of the build checks (e.g. CUE) over the compiled environments."""
        contexts = [a.context for a in artifacts if a.context is not None]
        with self.timings.stage("build_checks"):
            return [d for check in self.extensions.build_checks for d in check(self, contexts)
                    if d.severity == "error"]

    def _schema_entries(self) -> dict[str, dict[str, str]]:
        """Further schemas for the manifest's ``schema`` section (``cue``)."""
        return dict(entry for make in self.extensions.schema_entries
                    if (entry := make(self)) is not None)

    def _redacted(self, diagnostics: list[Diagnostic]) -> list[Diagnostic]:
        """Diagnostics with quoted values of secret keys masked (the load stage quotes
        scalars before anyone knows which keys are secret), and any text of a literal
        under a secret key of a layer masked wherever a message quotes it (cue's errors
        quote the values an expression of another key reached)."""
        if not any(d.key or not self._written_here(d.file) for d in diagnostics):
            # Nothing that can quote a layer's value (a ConfigMap too large to write,
            # which every no-op build reports again): no schema or layer to read for it.
            return list(diagnostics)
        from .pipeline.redact import redact_diagnostics
        from .secrets.redaction import Redactor

        try:
            redactor = self.redactor()
        except BuildError:  # an unreadable schema is reported on its own
            redactor = Redactor(None, self.project.settings.get("redact") or ())
        return redact_diagnostics(redactor, diagnostics, self._secret_texts(redactor))

    def masked_literals(self, value: Any, files: Collection[str]) -> Any:
        """``value``, shown where a key's value is (``explain``, an editor's hover), with
        the text of each literal under a secret key masked in its strings, as in every
        diagnostic: a key that is not secret may hold one through an alias
        (``host: *password``). ``files``, the layer files ``value`` comes from (its
        provenance), are the ones whose literals it can hold: a YAML alias names an
        anchor of its own file, and a ``.cue`` file, which may refer to any other, brings
        every ``.cue`` file's. One key's value costs its files, not the repository's."""
        from .pipeline.redact import quotable_secret_texts

        redactor = self.redactor()
        texts = quotable_secret_texts(self._secret_texts(redactor, files))
        return redactor.masked(value, texts) if texts else value

    def _written_here(self, path: str) -> bool:
        """Whether ``path`` (relative to the project) is below the output directory."""
        output = self.project.output.rstrip("/")
        return path == output or path.startswith(f"{output}/")

    def _secret_texts(self, redactor: Redactor, files: Collection[str] | None = None
                      ) -> set[str]:
        """The text of every literal under a secret key in the layer files loaded (or in
        ``files`` and every ``.cue`` file: ``masked_literals``): from a file's data, or,
        for a ``.cue`` file cue could not evaluate or whose data the build did not need
        (a ``cue`` process to get it), as written. Each file's are kept by its digest:
        an editor's keystroke walks the file it changed alone."""
        if files is None and self._secrets_written is not None:
            return self._secrets_written
        known = self._secrets_of
        if files is None:
            self._secrets_of = {}  # what a file held before its edit is dropped
        found: set[str] = set()
        for path, prefixes in sorted(self._prefixes.items()):
            if files is not None and path not in files and not path.endswith(CUE_SUFFIX):
                continue
            parsed = self._parsed.get(path)
            for prefix in sorted(prefixes):
                key = (path, parsed.digest if parsed is not None else "", prefix)
                texts = known.get(key) if parsed is not None else None
                if texts is None:
                    texts = frozenset(self._file_secret_texts(redactor, path, parsed, prefix))
                    if files is not None:  # an earlier edit's entry of this file goes
                        for stale in [k for k in known if k[0] == path and k[2] == prefix]:
                            del known[stale]
                if parsed is not None:
                    self._secrets_of[key] = texts
                found |= texts
        if files is None:
            self._secrets_written = found
        return found

    def _file_secret_texts(self, redactor: Redactor, path: str, parsed: ParsedFile | None,
                           prefix: tuple[str, ...]) -> set[str]:
        if parsed is not None and (parsed.loaded or not path.endswith(CUE_SUFFIX)):
            try:
                return redactor.secret_texts(parsed.data, prefix)
            except (BuildError, LoadFailed):  # its own error is reported
                return set()
        if not path.endswith(CUE_SUFFIX):
            return set()  # not loaded: its own error is reported, and no data to quote
        try:
            text = self.source.read(path).decode("utf-8", errors="replace")
        except BuildError:
            return set()
        from .cue.layers import written_literals

        found = set()
        for keypath, literal in written_literals(text):
            full = (*prefix, *keypath)
            if literal and any(redactor.is_secret(full[:i]) for i in range(1, len(full) + 1)):
                found.add(literal)
        return found

    def schema_summary(self) -> dict[str, Any] | None:
        """What every build needs from the JSON Schema, cached by the schema's digest:
        a rebuild whose fragments all hit the cache never parses, meta-validates,
        compiles or walks the schema. Computing it meta-validates the schema and
        compiles every piece, so a schema error is reported by the first build of that
        schema, whichever fragments it compiles; a split schema's summary is made of
        its pieces' summaries, each cached by the piece's digest."""
        schema = self.schema()
        if schema is None:
            return None
        if self._summary is None:
            name = f"schema-summary:{schema.digest}"
            with self.timings.stage("cache"):
                found = self.cache.fragment(name)
            if not (isinstance(found, dict) and found.get("format") == _SUMMARY_FORMAT):
                with self.timings.stage("schema"):
                    keys = list(schema.piece_digests())
                if keys:
                    # Each piece is read only if its summary is not cached: a cold build
                    # cached each piece's summary and let go of the piece as it compiled
                    # the piece's key.
                    parts = [self._piece_summary(schema, key) for key in keys]
                    with self.timings.stage("schema"):
                        root = schema.piece(keys[0]).document  # each piece has the root's
                        found = {"format": _SUMMARY_FORMAT, "fragment_safe": True,
                                 "required": list(root.get("required") or ()),
                                 **{k: sorted({p for part in parts for p in part[k]})
                                    for k in ("hot", "restart", "secret_paths")},
                                 "secret_values": dict(sorted(
                                     (k, v) for part in parts
                                     for k, v in part["secret_values"].items()))}
                else:
                    validator = self.validator()
                    assert validator is not None
                    with self.timings.stage("schema"):
                        hot, restart = schema.index.reload_partition()
                        found = {"format": _SUMMARY_FORMAT,
                                 "fragment_safe": validator.fragment_safe,
                                 "required": list(validator.required), "hot": hot,
                                 "restart": restart,
                                 "secret_paths": schema.index.secret_paths(),
                                 "secret_values": schema.index.secret_values()}
                with self.timings.stage("cache"):
                    self.cache.put_fragment(name, found)
            else:
                with self.timings.stage("cache"):
                    for digest in schema.piece_digests().values():
                        self.cache.keep(fragment=f"schema-piece-summary:{digest}")
                        self.cache.keep(fragment=f"schema-piece-policies:{digest}")
            self._summary = found
        return self._summary

    def _piece_summary(self, schema: Schema, key: str) -> dict[str, Any]:
        """The reload partition and secret paths of ``key``'s piece of ``schema``, once
        the piece is known to compile (it is read only to make them); its policy table
        (``policies``) is cached beside it, read only by whoever asks about single
        keys."""
        name = f"schema-piece-summary:{schema.piece_digest(key)}"
        with self.timings.stage("cache"):
            found = self.cache.fragment(name)
        if not (isinstance(found, dict) and found.get("format") == _SUMMARY_FORMAT):
            with self.timings.stage("schema"):
                piece = schema.piece(key)
            self._validator_of(piece)
            with self.timings.stage("schema"):
                hot, restart = piece.index.reload_partition()
                found = {"format": _SUMMARY_FORMAT, "hot": hot, "restart": restart,
                         "secret_paths": piece.index.secret_paths(),
                         "secret_values": piece.index.secret_values()}
                table = piece.index.policy_table()
            with self.timings.stage("cache"):
                self.cache.put_fragment(f"schema-piece-policies:{piece.digest}",
                                        {"format": _SUMMARY_FORMAT, "policies": table})
                self.cache.put_fragment(name, found)
            self._new_policy_tables()
        return found

    def _new_policy_tables(self) -> None:
        """The cache holds policy tables it did not: ``policies()`` asks again where it
        found none (or it would index pieces that were released since)."""
        if self._policies is not None:
            self._policies.forget_missing()

    def policies(self) -> PolicyIndex | None:
        """What merging, redaction, ``magcfg diff`` and the secret rules ask of the
        schema about single keys (is it secret, its reload policy, its merge key): from
        the policy tables the build cached beside each piece's summary, read per
        top-level key when a key under it is asked about, when the schema is split;
        else (and for a key whose table is not cached) the schema's index. A rebuild,
        a diff or an explain then neither parses nor indexes the pieces it does not
        compile. Nothing is read before the first question."""
        schema = self.schema()
        if schema is None:
            return None
        if self._policies is None:
            self._policies = PolicyIndex(lambda key: self._policy_table(schema, key),
                                         schema.index)
        return self._policies

    def _policy_table(self, schema: Schema, key: str) -> PolicyTable | None:
        """The policy table the build cached for ``key``'s piece of ``schema``."""
        digest = schema.piece_digests().get(key)
        if digest is None:
            return None
        with self.timings.stage("cache"):
            found = self.cache.fragment(f"schema-piece-policies:{digest}")
        if not (isinstance(found, dict) and found.get("format") == _SUMMARY_FORMAT
                and isinstance(found.get("policies"), list)):
            return None
        table: PolicyTable = found["policies"]
        return table

    def reload_partition(self) -> tuple[list[str], list[str]]:
        summary = self.schema_summary()
        return (list(summary["hot"]), list(summary["restart"])) if summary else ([], [])

    def secret_keys(self) -> list[str]:
        """Secret key globs for manifest.json: schema secrets and the ``redact`` globs."""
        if self._secret_keys is None:
            summary = self.schema_summary()
            self._secret_keys = sorted({*(summary["secret_paths"] if summary else ()),
                                        *self.redactor().patterns})
        return self._secret_keys

def compile_environment(project: Project, env: str, source: Source | None = None) -> Artifact:
    """Compile one environment in memory: no files written, the build cache read but
    never written (only ``build`` writes it), so a large repository's unchanged keys are
    not compiled again."""
    compiler = Compiler(project, source)
    stack = compiler.load_stack(env)
    base = version_bases(project, [env], {env: _read_previous(project, env)})[env]
    artifact, diagnostics = compiler.compile(env, stack, base)
    if artifact is None:
        raise BuildError([d for d in diagnostics if d.severity == "error"])
    errors = compiler.build_checks([artifact])
    if errors:
        raise BuildError(errors)
    return artifact


def _read_previous(project: Project, env: str) -> bytes | None:
    """The manifest of the last build of ``env`` (None before the first)."""
    rel = f"{project.output}/{env}"
    return read_if_present(real_directory(project.root, rel) / MANIFEST, f"{rel}/{MANIFEST}",
                           size_limit(MANIFEST))


class VersionBase(NamedTuple):
    """The manifest a build numbers its version from, and how errors name it."""

    manifest: bytes | None
    display: str


def version_bases(project: Project, envs: Iterable[str],
                  working: dict[str, bytes | None]) -> dict[str, VersionBase]:
    """Versions count commits, not builds (docs/versioning.md). In a git work tree an
    environment's version is numbered from the newest of its manifests in HEAD, in
    MERGE_HEAD (while a merge is in progress) and in the index (a manifest restored with
    `git checkout REF -- generated/` is staged); a build writes only the working tree, so
    any number of local builds bump the version at most once. Nothing committed yet:
    version 1. Outside git the working tree's manifest is the base. One ``git cat-file``
    for all environments."""
    from .artifact import MAX_MANIFEST_BYTES, ManifestError, load_manifest

    envs = list(envs)
    rels = {env: f"{project.output}/{env}/{MANIFEST}" for env in envs}
    revisions = ("HEAD", "MERGE_HEAD", "")  # "" is the index (stage 0)
    request = [f"{rev}:./{rels[env]}" for env in envs for rev in revisions]
    if outside_any_repository(project.root):  # git would fail, and find no repository
        return working_bases(project, working)
    try:
        answers = iter(committed_blobs(project.root, request, MAX_MANIFEST_BYTES))
    except OSError as exc:
        if git_root(project.root) is None:  # no repository (or no git): nothing committed
            return working_bases(project, working)
        # A git that stopped answering is no empty repository: the versions HEAD holds
        # would go unseen, and one already signed be numbered again.
        raise BuildError([Diagnostic(
            rels[envs[0]] if envs else ".", None, None, "git could not give the manifests "
            f"committed here, from which versions are numbered ({exc}): fix what stops "
            "git, then build again", code="git")]) from None
    bases: dict[str, VersionBase] = {}
    # The index holds HEAD's manifest until a manifest is staged: each one read once.
    read: dict[bytes, int] = {}
    for env in envs:
        best: tuple[int, VersionBase] | None = None
        for rev in revisions:
            blob = next(answers)
            if blob is None:
                continue  # not committed, no merge in progress, or a conflict in the index
            display = f"{rev or '(index)'}:{rels[env]}"
            if isinstance(blob, int):
                raise BuildError([Diagnostic(
                    display, None, None, f"is {blob} bytes, more than the "
                    f"{MAX_MANIFEST_BYTES} a manifest may have; restore it from git",
                    code="manifest")])
            candidate = VersionBase(blob, display)
            if blob not in read:
                try:
                    read[blob] = int(load_manifest(blob)["version"])
                except ManifestError:
                    read[blob] = 1 << 62  # unreadable: the build names it and stops
            version = read[blob]
            if best is None or version > best[0]:
                best = (version, candidate)
        bases[env] = best[1] if best else VersionBase(None, f"HEAD:{rels[env]}")
    return bases


def working_bases(project: Project, working: Mapping[str, bytes | None]
                  ) -> dict[str, VersionBase]:
    """The base of each environment of ``working`` outside git: its manifest in the
    working tree (``working``'s bytes)."""
    return {env: VersionBase(manifest, f"{project.output}/{env}/{MANIFEST}")
            for env, manifest in working.items()}


def build(project: Project, envs: list[str] | None = None, check: bool = False,
          cache: BuildCache | None = None, strict: bool = False, jobs: int | None = None,
          artifacts: bool = True) -> BuildResult:
    """Compile the environments (default: all) into ``project.output``.

    With ``check``, write nothing and report in ``stale`` the files that differ; with
    ``strict``, warnings are errors. Raises ``BuildError`` with every error of every
    environment; then nothing is written. ``jobs``: processes to compile in (default
    ``$MAGCFG_JOBS``, else the cores this process may use); the output is the same
    with any number. Without ``artifacts``, a build whose outputs are what it would
    write, by the record of the build that wrote them (``Compiler.recorded_outputs``),
    compiles nothing and returns no artifacts (``BuildResult.reused``); its warnings,
    errors and exit are those of a build that compiles.
    """
    chosen = project.check_envs(envs)
    compiler = Compiler(project, cache=cache)
    with gc_paused(), git_tops_held():
        result = _build(compiler, chosen, check, strict, available_jobs(jobs), artifacts)
        # Only a build that succeeded is cached: a failed one may have merged a literal
        # secret into a fragment (the secret rules reject it after the merge). One that
        # compiled nothing writes only the digests it learnt, and never compacts: that
        # would drop every fragment the next build that compiles needs.
        with compiler.timings.stage("cache"):
            compiler.cache.flush(only="" if result.reused else None)
        return result


def _build(compiler: Compiler, chosen: tuple[str, ...], check: bool, strict: bool = False,
           jobs: int = 1, artifacts: bool = True) -> BuildResult:
    project = compiler.project
    stacks = compiler.load_stacks(chosen, jobs, links_asked=True)
    ignored = ignored_inputs(
        compiler.source, build_inputs(project, stacks),
        [f"{project.output}/{env}/{name}" for env in chosen for name in OUTPUT_FILES],
        project, chosen)
    try:
        return _compile_and_write(compiler, chosen, check, strict, jobs, stacks, ignored,
                                  not artifacts)
    finally:
        ignored()  # git is waited for whatever happened meanwhile (a second call is free)


def _compile_and_write(compiler: Compiler, chosen: tuple[str, ...], check: bool, strict: bool,
                       jobs: int, stacks: dict[str, LayerStack],
                       ignored: Callable[[], list[Diagnostic]], reusable: bool = False
                       ) -> BuildResult:
    project = compiler.project
    with compiler.timings.stage("write"):
        if not check:
            recover_directories(project.root, [f"{project.output}/{env}" for env in chosen])
        previous = {env: _read_previous(project, env) for env in chosen}
        try:
            bases = version_bases(project, chosen, previous)
            errors: list[Diagnostic] = []
        except BuildError as exc:  # failed whatever else is found, and reported with it
            errors = list(exc.diagnostics)
            bases = working_bases(project, previous)
    with compiler.timings.stage("cache"):
        record = compiler.record_name(chosen, stacks, bases) if not errors else None
    if record is not None and reusable:
        with compiler.timings.stage("write"):
            recorded = compiler.recorded_outputs(record, chosen)
        if recorded is not None:
            return _reused(compiler, chosen, strict, recorded, ignored)
    from .pipeline.validate import name_environments

    compiler.prepare(stacks, jobs)
    artifacts: dict[str, Artifact] = {}
    warnings: list[Diagnostic] = []
    errors_of: dict[str, list[Diagnostic]] = {}
    compiled = compiler.compile_each([(env, stacks[env], bases[env]) for env in chosen])
    for env, (artifact, diagnostics) in zip(chosen, compiled, strict=True):
        errors_of[env] = [d for d in diagnostics if d.severity == "error"]
        warnings.extend(d for d in diagnostics if d.severity == "warning")
        if artifact is not None:
            artifacts[env] = artifact
    errors.extend(name_environments(errors_of, stacks.values()))
    errors.extend(compiler.build_checks(list(artifacts.values())))
    _settle(compiler, errors, warnings, ignored, strict)
    # Each generated/<env>/ is replaced as a whole: the files built now, plus the
    # signature and attestation while the manifest they sign is unchanged. Besides those,
    # only files magcfg wrote before (the previous manifest's) are removed; any other
    # entry stops the build (durable.replace_directories).
    with compiler.timings.stage("write"):
        updates = _updates(compiler, artifacts, previous, compared=check)
    result = BuildResult(chosen, artifacts, sorted(set(warnings)), timings=compiler.timings,
                         policy_only=[env for env, a in artifacts.items() if a.policy_only])
    with compiler.timings.stage("write"):
        if check:
            result.stale = changed_entries(project.root, updates)
        else:
            result.written = replace_directories(project.root, updates)
    if record is not None:
        compiler.record_build(record, artifacts, updates)
    return result


def artifacts_of_no_environment(project: Project) -> list[Diagnostic]:
    """A warning for each directory of the output that holds a manifest but is no
    environment of the project: one renamed or removed, its artifact left behind. No
    build touches it, and everything downstream goes on serving it: the deploy branch
    keeps it signed, and a controller syncing it, or a service reading it, never learns
    that it is gone."""
    import unicodedata

    output = project.root / project.output
    try:
        if not stat.S_ISDIR(os.lstat(output).st_mode):
            return []
        names = sorted(os.listdir(output))
    except OSError:  # no output yet, or one the build itself reports
        return []

    def folded(name: str) -> str:
        return unicodedata.normalize("NFC", name).casefold()

    # A name an environment's differs from in case or normalization alone is that
    # environment's own directory where the filesystem folds them (macOS, Windows):
    # the removal the warning gives would delete its artifact.
    known = {folded(env) for env in project.environments}
    found: list[Diagnostic] = []
    for name in names:
        if folded(name) in known or name.startswith("."):  # a build's own staging entries
            continue
        try:
            held = (stat.S_ISDIR(os.lstat(output / name).st_mode)
                    and stat.S_ISREG(os.lstat(output / name / MANIFEST).st_mode))
        except OSError:
            held = False
        if not held:
            continue
        # Imported here: a build that finds none (nearly every one) loads none of them.
        import shlex

        from .errors import printable
        from .project import FromTop

        directory = f"{project.output}/{name}"
        found.append(Diagnostic(
            f"{directory}/{MANIFEST}", None, None,
            f"an artifact of '{printable(name)}', which is no environment of the "
            "project (renamed or removed?): no build replaces it, and the deploy branch "
            "and whatever reads it keep serving it; remove it at the repository's top "
            f"(`git rm -r -q {printable(shlex.quote(FromTop(project).name(directory)))}/`)",
            severity="warning", code="orphan_artifact"))
        if len(found) >= MAX_ENVIRONMENTS:  # as many as a project may list: enough to act on
            break
    return found


def _settle(compiler: Compiler, errors: list[Diagnostic], warnings: list[Diagnostic],
            ignored: Callable[[], list[Diagnostic]], strict: bool) -> None:
    """The checks every build makes last, whether it compiled or reused its outputs:
    the schema as committed and git's answers about the inputs (``ignored``), added to
    ``errors`` and ``warnings``; ``strict`` makes warnings errors. Raises
    ``BuildError`` with every error."""
    errors.extend(compiler.schema_as_committed())
    warnings.extend(artifacts_of_no_environment(compiler.project))
    for found in ignored():
        (warnings if found.severity == "warning" else errors).append(found)
    if strict:
        errors.extend(Diagnostic(d.file, d.line, d.key, f"{d.message} (--strict: warnings "
                                 "are errors)", "error", d.code) for d in warnings)
    if errors:
        raise BuildError(sorted(set(errors)))


def _reused(compiler: Compiler, chosen: tuple[str, ...], strict: bool,
            recorded: dict[str, tuple[list[Diagnostic], bool]],
            ignored: Callable[[], list[Diagnostic]]) -> BuildResult:
    """The result of a build whose outputs are what it would write
    (``Compiler.recorded_outputs``): the recorded warnings, and every check that asks
    more than the inputs' bytes (git's verdicts, the schema as committed) made again."""
    warnings = [w for env in chosen for w in recorded[env][0]]
    _settle(compiler, [], warnings, ignored, strict)
    return BuildResult(chosen, {}, sorted(set(warnings)), timings=compiler.timings,
                       policy_only=[env for env in chosen if recorded[env][1]], reused=True)


OUTPUT_FILES = (CONFIG, CONFIGMAP, KUSTOMIZATION, MANIFEST)
"""The files every build writes in ``<output>/<env>/``, committed for CI and delivery."""


def build_inputs(project: Project, stacks: Mapping[str, LayerStack]) -> list[str]:
    """The files a build of ``stacks`` reads: the project file, the schemas, then the
    layer files."""
    read = [project.file, *filter(None, (project.json_schema, project.cue_schema))]
    return [*read, *sorted({f.path for stack in stacks.values() for f in stack.files()}
                           - set(read))]


def held_links(source: Source, paths: list[str]) -> Callable[[], list[Diagnostic]]:
    """Asks git's index (``indexed_by_git``, which answers while the caller works) about
    ``paths``, files the caller reads; returns what waits for a ``LINK_HELD`` for each
    committed as a symlink that this checkout holds as a file of its target
    (``link_checked_out``): any text, YAML or JSON of several lines too, may be a
    target, which ``Checkout`` judges by its shape alone. Asks git's attributes too
    (``attributes_by_git``) for each that Git LFS tracks (``_in_lfs``), as a build does.
    Nothing to ask of a commit's objects (not a ``FileSource``)."""
    if not isinstance(source, FileSource) or not paths:
        return list
    real = {path: source.real_relative(path) for path in paths}
    indexed = indexed_by_git(source.root, [], list(dict.fromkeys(real.values())))
    attributes = attributes_by_git(source.root, list(dict.fromkeys(real.values())))

    def found() -> list[Diagnostic]:
        try:
            index, attributed = indexed(), attributes()
        except GitUnanswered as exc:  # a check that cannot run fails the command
            return [Diagnostic(paths[0], None, None, "git could not say whether the files "
                               f"read are symlinks this checkout holds as files, or in Git "
                               f"LFS ({exc}): fix what stops git, then run magcfg again",
                               code="path")]
        return [*_in_lfs(paths, real, attributed), *_links_held(source, paths, real, index)]

    return found


def _in_lfs(paths: Sequence[str], real: Mapping[str, str], attributes: CheckoutAttributes
            ) -> list[Diagnostic]:
    """``LFS_TRACKED`` for each of ``paths`` (where it really is: ``real``) that Git LFS
    tracks: the bytes read are not the commit's, whichever the checkout holds."""
    lfs = set(attributes.lfs)
    return [Diagnostic(path, None, None, LFS_TRACKED, code="path") for path in paths
            if real[path] in lfs]


def _links_held(source: FileSource, paths: Sequence[str], real: Mapping[str, str],
                index: IndexAnswer) -> list[Diagnostic]:
    """``LINK_HELD`` for each of ``paths`` (where it really is: ``real``) that ``index``
    holds as a symlink and this checkout as a file of its target."""
    return [Diagnostic(path, None, None, LINK_HELD, code="path") for path in paths
            if real[path] in index.links
            and link_checked_out(source.root, real[path], index.links[real[path]])]


def ignored_inputs(source: Source, paths: list[str], outputs: Sequence[str] = (),
                   project: Project | None = None, envs: Sequence[str] = (),
                   encoding_decided: Callable[[str], bool] = lambda path: False,
                   ) -> Callable[[], list[Diagnostic]]:
    """Asks git (``ignored_by_git``, which answers while the caller works) about the files
    a build reads, ``paths``; returns what waits for an error for each that git ignores
    and does not track: a clone lacks it, so CI would build other bytes, or fail, where
    this checkout passes. Asked where it is and where a symlink on its way leads: git
    commits a link apart from its target, and answers nothing for a path beyond a link.
    ``outputs``, files the build writes, are asked too: one git ignores is never
    committed, so a clone's ``build --check`` fails and delivery from git lacks it (a
    warning: the build itself is sound).

    With the ``project`` and the environments built, ``envs``, git's index is asked too
    (``indexed_by_git``) for the committed layer files of theirs that a sparse checkout
    left out, which the build would go without where a full clone has them, and for the
    paths committed as symlinks that this checkout holds as files of their targets
    (``link_checked_out``): any text, YAML or JSON too, may be a link's target.

    Each is asked too whether git checks it out in another encoding than UTF-8
    (``attributes_by_git``), but for the paths ``encoding_decided`` names: those whose
    encoding lines the caller is about to write decide (``init``'s), and whether Git LFS
    tracks it (``_in_lfs``)."""
    if not isinstance(source, FileSource):
        return list  # read from git objects: committed
    real = {path: source.real_relative(path) for path in paths}
    asked: dict[str, None] = {}
    for path in paths:
        parent = posixpath.dirname(path)
        if real[path] == path or source.real_relative(parent) == parent:
            asked[path] = None  # not beyond a symlink: itself committed, or not
        asked[real[path]] = None
    # Only outputs git can answer for: a path beyond a symlink would void its whole answer.
    outputs = [p for p in outputs
               if source.real_relative(posixpath.dirname(p)) == posixpath.dirname(p)]
    asked.update(dict.fromkeys(outputs))
    answer = ignored_by_git(source.root, list(asked))
    attributes = attributes_by_git(source.root, list(dict.fromkeys(real[p] for p in paths)))
    indexed = indexed_by_git(source.root, sorted({
        spec.directory(env) for env in envs for spec in project.layers}), list(real.values())) \
        if project is not None else lambda: IndexAnswer([], {})

    def errors() -> list[Diagnostic]:
        try:
            rules, index, attributed = answer(), indexed(), attributes()
        except GitUnanswered as exc:  # a check that cannot run fails the build
            return [Diagnostic((paths or ["."])[0], None, None, "git could not say whether "
                               "the files the build reads are ignored, left out of this "
                               f"checkout or converted in it ({exc}), so a clone of the "
                               "repository, as CI builds, may lack some of them or hold "
                               "other bytes: fix what stops git, then build again",
                               code="ignored")]
        found = [Diagnostic(path, None, None, "is committed but left out of this sparse "
                            "checkout (skip-worktree), so the build would go without it "
                            "where a full clone has it: run `git sparse-checkout disable`, "
                            "or add its directory to the sparse checkout", code="ignored")
                 for path in index.skipped if project is not None
                 and _layer_file(project, path, envs)
                 and not os.path.lexists(source.root / path)]
        found += _links_held(source, paths, real, index)
        found += _in_lfs(paths, real, attributed)
        encodings = attributed.encodings
        found += [Diagnostic(path, None, None, f"is checked out in {encodings[real[path]]} "
                             "(a working-tree-encoding in .gitattributes), not the UTF-8 the "
                             "commit holds, so the build may read other bytes than the "
                             "commit's; give its path `-working-tree-encoding` in the deepest "
                             ".gitattributes that sets it and check it out again",
                             code="path")
                  for path in paths if real[path] in encodings
                  and not encoding_decided(real[path])]
        for path in paths:
            rule = rules.get(path)
            if rule is None and real[path] in rules:
                rule = f"{rules[real[path]]}, at {real[path]}, where it leads"
            if rule is not None:
                found.append(Diagnostic(
                    path, None, None, f"is ignored by git ({rule}), so a clone of the "
                    "repository, as CI builds, lacks it: commit it with `git add -f`, or "
                    "take it out of that rule", code="ignored"))
        for path in outputs:
            if path in rules:
                found.append(Diagnostic(
                    path, None, None, f"is ignored by git ({rules[path]}): the build writes "
                    "it to be committed, and a clone of the repository, as CI checks and "
                    "delivers it, lacks it: take it out of that rule (a `!` rule after it)",
                    "warning", code="ignored"))
        return found

    return errors


def _layer_file(project: Project, path: str, envs: Sequence[str]) -> bool:
    """``path`` is a file a layer of one of ``envs`` reads (``LayerSpec.key_prefix``;
    listed as a layer directory is: a layer suffix, no hidden name)."""
    if not path.endswith(LAYER_SUFFIXES) or any(part.startswith(".")
                                                 for part in path.split("/")):
        return False
    return any(env in envs for env, _spec, _prefix in project.mapping(path))


def _updates(compiler: Compiler, artifacts: dict[str, Artifact],
             previous: dict[str, bytes | None], compared: bool = False
             ) -> list[DirectoryUpdate]:
    """What to write: each environment's files, and what to keep of the last build's.
    A config.json whose digest the last build's manifest names otherwise is known to
    differ (``DirectoryUpdate.differs``): it is written without being read first. One
    the manifest there names as it is (the manifest unchanged), whose digest the cache
    keeps for the file's status (``Compiler.output_holding``), is known to be the same
    (``DirectoryUpdate.same``): an environment a change left as it was is not read whole
    to be compared, but the first time. ``compared``: the updates are compared byte by
    byte (``build --check``), none is known the same."""
    project = compiler.project
    updates = []
    for env, artifact in artifacts.items():
        rel = f"{project.output}/{env}"
        files = dict(artifact.files)
        digest = artifact.context._config_sha256 if artifact.context is not None else None
        same: dict[str, FileIdentity] = {}
        if previous[env] == files[MANIFEST]:
            directory = real_directory(project.root, rel)
            for name in SIGNED_FILES:
                signed = read_if_present(directory / name, f"{rel}/{name}", size_limit(name))
                if signed is not None:
                    files[name] = signed
            held = compiler.output_holding(f"{rel}/{CONFIG}", directory / CONFIG,
                                           files[CONFIG], digest) \
                if digest and not compared else None
            if held is not None:
                same[CONFIG] = held
        listed = listed_files(previous[env])
        differs = frozenset({CONFIG} if digest and CONFIG in listed
                            and listed[CONFIG] != f"sha256:{digest}" else ())
        # written_names(previous[env]), from the one reading of the manifest above
        owned = written_names(None) | frozenset(listed)
        updates.append(DirectoryUpdate(rel, files, owned, differs=differs, same=same))
    return updates
