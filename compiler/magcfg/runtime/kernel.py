"""The runtime kernel: serve a verified config, swap in new ones atomically, or keep the
last known-good one and say why.

Pipeline, on start and on every change of the artifact directory::

    read -> verify (signature, digests) -> version (no rollback, no conflict)
         -> parse -> validate -> reload policy -> snapshot -> persist (the floor)
         -> swap -> subscribers

A failure before the swap leaves the served snapshot untouched; so does a last
known-good (with its version floor) that cannot be saved. A ``config.reloaded``
subscriber that raises :class:`ConfigRejected` gets the previous snapshot restored.
A change to a ``restart`` key is not applied: it becomes :attr:`Kernel.pending`.

The artifact directory is hostile (docs/runtime.md, "What the kernel trusts"): only
regular files are read, a manifest names no file to read until its signature verifies,
and it must be made for the environment the kernel is configured with.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping

from ..errors import MagcfgError
from ..record import Record
from .events import (
    LOADED,
    RELOAD_FAILED,
    RELOADED,
    RUNTIME_SOURCE,
    STATE_CORRUPT,
    WATCH_FAILED,
    EventBus,
    check_seconds,
    log,
    make_event,
    passes_on,
)
from .snapshot import MISSING, Snapshot

# Every service pays this module's import at start, before it has a config to load:
# what only loading, verifying and watching need (cryptography, json, hashlib, pathlib,
# threading, typing, the signing and reading modules) is imported by the methods that
# use it, the first time a Kernel is made or started (docs/performance.md, "Runtime
# kernel"). mypy reads TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import tempfile
    from collections.abc import Callable, Iterable, Sequence
    from typing import Any, AnyStr

    from ..secrets.check_env import EnvCheck
    from ..secrets.references import SecretRef
    from ..signing.keys import Ed25519PublicKey
    from .events import Event, Subscriber
    from .metrics import KernelMetrics
    from .policy import Change, ReloadPolicy
    from .registry import RegistrySource
    from .snapshot import Member
    from .source import RawArtifact
    from .vault import DirectVault
    from .watcher import DirectoryWatcher

    Validator = Callable[[Mapping[str, Any]], None]
    """A user check of a candidate config: raise (any exception) to refuse it."""

    _Reference = tuple[tuple[str, ...], SecretRef]
else:
    def __getattr__(name: str) -> object:
        # The type alias, made when first asked for (annotations never evaluate it).
        if name != "Validator":
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        from collections.abc import Callable
        from typing import Any

        globals()["Validator"] = validator = Callable[[Mapping[str, Any]], None]
        return validator

_MAX_CHANGES = 1000
STOP_TIMEOUT = 5.0
"""The seconds :meth:`Kernel.stop` waits, by default, for the watcher's (or the registry
poller's) thread: a subscriber that does not return holds it no longer."""
MAX_HANDED_OUT = 1024
"""The most values handed out by :meth:`Kernel.secret` kept to mask: the most recent."""


class KernelStartError(MagcfgError):
    """The kernel cannot start: neither the artifact nor a last known-good state could
    be loaded, or a file it was configured with (schema, audit log) is unusable."""


class _Refused(Exception):
    def __init__(self, stage: str, reason: str, error: str, version: int | None = None,
                 **extra: Any) -> None:
        super().__init__(error)
        self.stage, self.reason, self.error, self.version = stage, reason, error, version
        self.extra = extra


_RESULT_FIELDS = ("status", "version", "reason", "event")


class ReloadResult(Record):
    """What one reload attempt did: ``applied``, ``unchanged`` or ``refused``; or
    ``deferred``: asked for by a subscriber while an attempt delivers its event, it runs
    once that attempt is done (its outcome comes as events). Immutable; equal when its
    fields are."""

    __slots__ = _RESULT_FIELDS

    status: str
    version: int
    reason: str | None
    event: Event | None

    def __init__(self, status: str, version: int, reason: str | None = None,
                 event: Event | None = None) -> None:
        self._set_fields((status, version, reason, event))


SHARE_SUBTREES = True
"""Build each snapshot from the unchanged top-level subtrees of the previous one
(:func:`~magcfg.runtime.snapshot.build_config`). Off only to measure what it saves
(``benchmarks/runtime_bench.py``): the frozen trees are equal either way."""


def _build(body: bytes, previous: Snapshot | None, plain: bool,
           ) -> tuple[Any, Mapping[str, Any] | Any, tuple[Member, ...] | None]:
    """(parsed config, frozen config, top-level members) of ``body``; the parsed config
    is a plain dict when ``plain`` or when the layout does not split (the frozen config
    otherwise). Raises :class:`NestedTooDeep` for a config nested deeper than
    ``MAX_CONFIG_DEPTH``, ``ValueError``/``RecursionError`` for invalid JSON; a parsed
    value that is not an object is returned for the caller to refuse."""
    from ..artifact import parse_config
    from ..heap import gc_paused
    from .snapshot import build_config, freeze

    with gc_paused():
        built = build_config(body, parse_config, previous) if SHARE_SUBTREES else None
        if built is None:
            config = parse_config(body)
            return config, freeze(config), None
        frozen, members = built
        return (parse_config(body) if plain else frozen), frozen, members


class Kernel:
    """Serves the config of one artifact directory (``generated/<env>/`` or a ConfigMap
    volume) to the process.

    ``public_keys``: trusted Ed25519 public keys (objects or PEM file paths; several
    during a rotation). ``environment``: the environment this process runs as; an
    artifact (or a saved state) signed for another one is refused, however valid its
    signature. ``state_dir``: where the last known-good is kept (recommended).
    ``schema``: a JSON Schema file to validate candidates with (imports jsonschema-rs).
    ``validators``: callables that raise to refuse a candidate. ``allow_rollback``:
    accept versions older than the running one. ``watch``: watch the directory after
    :meth:`start` (else call :meth:`reload`). ``audit_log``: a JSON-lines file.
    ``metrics``: ``True`` for the default Prometheus registry, or a registry.
    ``direct_vault``: resolve ``vault+direct://`` references in :meth:`secret`: a
    :class:`~magcfg.runtime.vault.DirectVault`, or ``True`` for one configured from
    ``VAULT_*`` variables (needs ``magcfg[vault]``). Off by default: the kernel makes no
    network request unless asked to.
    """

    def __init__(self, artifact_dir: str | os.PathLike[str],
                 public_keys: Sequence[Ed25519PublicKey | str | os.PathLike[str]]
                 | Ed25519PublicKey | str | os.PathLike[str],
                 state_dir: str | os.PathLike[str] | None = None, *,
                 environment: str,
                 schema: str | os.PathLike[str] | None = None,
                 validators: Iterable[Validator] = (),
                 allow_rollback: bool = False,
                 watch: bool = True,
                 debounce: float = 0.01,
                 poll_interval: float = 5.0,
                 use_inotify: bool = True,
                 audit_log: str | os.PathLike[str] | None = None,
                 metrics: Any = None,
                 source: str = RUNTIME_SOURCE,
                 insecure_registry: bool = False,
                 registry_interval: float = 30.0,
                 registry_max_backoff: float = 300.0,
                 registry_timeout: float = 120.0,
                 direct_vault: DirectVault | bool | None = None) -> None:
        import threading
        from pathlib import Path

        from ..artifact import ENVIRONMENT_NAME
        from ..signing.keys import Ed25519PublicKey, load_public_key
        from .audit import AuditLog

        if not isinstance(environment, str) or not ENVIRONMENT_NAME.fullmatch(environment):
            raise ValueError(f"environment {environment!r} is not an environment name "
                             f"({ENVIRONMENT_NAME.pattern})")
        self.environment = environment
        # Checked here, before anything is served: a NaN or an infinity passes a bound
        # (`--poll-interval nan` passes min=0.05) and ends the watcher at its first wait.
        for what, seconds, least in (("debounce", debounce, 0.0),
                                     ("poll interval", poll_interval, None),
                                     ("registry interval", registry_interval, None),
                                     ("registry backoff", registry_max_backoff, None),
                                     ("registry timeout", registry_timeout, None)):
            check_seconds(what, seconds, least)
        if isinstance(public_keys, (str, os.PathLike, Ed25519PublicKey)):
            public_keys = [public_keys]  # one key given bare: not a sequence of characters
        self.public_keys = [k if isinstance(k, Ed25519PublicKey) else load_public_key(k)
                            for k in public_keys]
        if not self.public_keys:
            raise ValueError("Kernel needs at least one trusted public key")
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self._registry: RegistrySource | None = None
        # A mirror directory the kernel made for itself: removed on stop(), or when the
        # kernel is collected or the process exits (a start() that failed is never stopped).
        self._own_mirror: tempfile.TemporaryDirectory[str] | None = None
        _refuse_bare_reference(artifact_dir)
        if isinstance(artifact_dir, str) and artifact_dir.startswith("oci://"):
            from .registry import RegistrySource

            # The registry's files are mirrored into a directory of the kernel's own and
            # read from there like a ConfigMap volume.
            if self.state_dir is not None:
                mirror = self.state_dir / "registry-mirror"
            else:
                import tempfile

                self._own_mirror = tempfile.TemporaryDirectory(prefix="magcfg-registry-",
                                                               ignore_cleanup_errors=True)
                mirror = Path(self._own_mirror.name)
            self._registry = RegistrySource(
                artifact_dir, mirror, self.public_keys, insecure=insecure_registry,
                interval=registry_interval, max_backoff=registry_max_backoff,
                timeout=registry_timeout,
                on_change=lambda: self._on_change("registry"), on_event=self._source_event,
                on_failure=self._watch_failed)
            artifact_dir = mirror
        self.artifact_dir = Path(artifact_dir)
        self.allow_rollback = allow_rollback
        self.validators = list(validators)
        self.source = source
        self._schema_path = Path(schema) if schema is not None else None
        self._schema_check: Callable[[Mapping[str, Any]], list[str]] | None = None
        self._schema_secrets: list[str] = []
        self._watch = watch
        self._watcher_options = {"debounce": debounce, "poll_interval": poll_interval,
                                 "use_inotify": use_inotify}
        self._bus = EventBus()
        self._sinks: list[Callable[[Event], None]] = []
        try:
            self._audit = AuditLog(audit_log) if audit_log is not None else None
        except OSError as exc:
            raise KernelStartError(f"{audit_log}: cannot open the audit log: "
                                   f"{exc.strerror or exc}") from None
        if self._audit is not None:
            self._sinks.append(self._audit.write)
        self.metrics: KernelMetrics | None = None
        if metrics is not None and metrics is not False:
            from .metrics import KernelMetrics

            self.metrics = KernelMetrics(None if metrics is True else metrics)
            self._sinks.append(self.metrics.observe)
        self._lock = threading.RLock()
        self._current: Snapshot | None = None
        self._pending: Snapshot | None = None
        self._pending_keys: tuple[str, ...] = ()
        self._highest = 0
        # The highest version the state file holds: what a restart refuses to go below.
        self._saved_floor = 0
        self._last_raw: RawArtifact | None = None
        # The keys whose signatures of the served manifest were served (_candidate).
        self._signed_by: set[str] = set()
        self._last_stat: tuple[object, ...] | None = None
        self._watcher: DirectoryWatcher | None = None
        self._stopped = False
        self._stop_lock = threading.Lock()
        self._attempting = False
        # Whether the attempt in progress served its candidate, then the version before.
        self._rolled_back = False
        self._deferred: tuple[str, bool] | None = None
        # Values secret() handed out, the most recent last: kept in memory only, to mask
        # them wherever text leaves the kernel (a validator's message may quote one).
        self._handed_out: dict[str, None] = {}
        self._handed_lock = threading.Lock()
        self._direct_vault: DirectVault | None = None
        if direct_vault is True:
            from .vault import DirectVault

            direct_vault = DirectVault(on_event=self._source_event)
        if direct_vault is not None and direct_vault is not False:
            if direct_vault.on_event is None:
                direct_vault.on_event = self._source_event
            self._direct_vault = direct_vault
        self._verified: tuple[bytes, bytes, str, dict[str, Any]] | None = None
        self._delivered_refs: tuple[Snapshot, list[_Reference]] | None = None
        self._subtree_refs: dict[tuple[str, int], tuple[Any, list[_Reference]]] = {}
        # The rules of the served version and of the last candidate, by the manifest
        # fields they are made of (_policy_for).
        self._policy_memo: dict[tuple[Any, ...], ReloadPolicy] = {}
        self.last_error: Event | None = None
        """The last ``config.reload_failed`` event (``None`` after a successful reload)."""
        self.booted_from: str | None = None
        """What :meth:`start` served first: ``artifact``, ``registry_mirror`` (the
        registry's last verified pull, the registry being down) or ``last_known_good``."""

    # ---------------------------------------------------------------- reading

    @property
    def snapshot(self) -> Snapshot:
        """The snapshot being served (raises before :meth:`start`)."""
        current = self._current
        if current is None:
            raise RuntimeError("the kernel is not started")
        return current

    @property
    def config(self) -> Mapping[str, Any]:
        """The served config: an immutable mapping (maps read-only, lists as tuples)."""
        return self.snapshot.config

    @property
    def version(self) -> int:
        """The served config's manifest version."""
        return self.snapshot.version

    @property
    def pending(self) -> Snapshot | None:
        """A verified newer config that changes ``restart`` keys and waits for a restart."""
        return self._pending

    def get(self, path: str | tuple[str, ...], default: Any = None) -> Any:
        """The value at ``path`` of the served config, or ``default``. ``path`` is dotted
        text (a dot inside a key escaped, ``apps.eu\\.west``) or a tuple of keys."""
        current = self._current
        if current is None:
            raise RuntimeError("the kernel is not started")
        value = current._memo.get(path, MISSING)
        if value is MISSING:
            value = current.lookup(path)
            if value is MISSING:
                return default
        return value

    def secret(self, path: str | tuple[str, ...],
               environ: Mapping[str, str] | None = None) -> str | None:
        """The value of the secret that the reference at ``path`` names, read where the
        platform delivers it (docs/secrets.md): the env var ``env_var_name(path)`` that
        the Deployment injects for ``vault://``, the named variable for ``env://``;
        ``vault+direct://`` from Vault itself when the kernel has a Direct-Vault client
        (``direct_vault=``; raises :class:`~magcfg.secrets.vault.VaultError` if Vault
        cannot give it), else ``None``. ``None`` too if it is not delivered. The value
        is never written, logged or put in an event: the kernel keeps it in memory only
        to mask it in every event, log line and result."""
        from ..keyglob import format_keypath, parse_keypath
        from ..secrets.check_env import resolve
        from ..secrets.references import parse_reference

        keypath = parse_keypath(path) if isinstance(path, str) else tuple(path)
        value = self.get(keypath)
        ref = parse_reference(value) if isinstance(value, str) else None
        if ref is None:
            raise KeyError(f"{format_keypath(keypath)} does not hold a secret reference")
        if ref.direct and self._direct_vault is not None:
            direct = self._direct_vault.value(ref)
            self._hand_out(direct)
            return direct
        found = resolve(keypath, ref, os.environ if environ is None else environ)
        if found:
            self._hand_out(found)
        return found

    def _hand_out(self, value: str) -> None:
        """Remember ``value`` for masking; only the last :data:`MAX_HANDED_OUT` distinct
        ones: a secret that changes at every read (leases of seconds) would otherwise
        grow the set, and the time every event takes to mask, for the process's life."""
        with self._handed_lock:
            self._handed_out.pop(value, None)
            self._handed_out[value] = None
            while len(self._handed_out) > MAX_HANDED_OUT:
                del self._handed_out[next(iter(self._handed_out))]

    def check_env(self, environ: Mapping[str, str] | None = None,
                  keys: Sequence[str] = ()) -> EnvCheck:
        """``magcfg check-env`` for the served config: an ``EnvCheck`` whose ``ok`` says
        whether every secret it references (under ``keys``, the key globs this service
        reads, when given) is delivered and meets the constraints of its
        ``value-constraints.json`` (names only, never values)."""
        from ..artifact import VALUE_CONSTRAINTS
        from ..secrets.check_env import check_config, parse_constraints
        from .snapshot import thaw

        snapshot = self.snapshot
        data = snapshot.files.get(VALUE_CONSTRAINTS)  # verified with the manifest
        constraints = (parse_constraints(data, f"{self.artifact_dir}/{VALUE_CONSTRAINTS}")
                       if data is not None else None)
        return check_config(snapshot.environment, thaw(snapshot.config),
                            os.environ if environ is None else environ, constraints, keys)

    def subscribe(self, event_type: str, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(event)`` on every event of ``event_type`` (``config.loaded``,
        ``config.reloaded``, ``config.reload_failed``, ``config.state_corrupt``,
        ``config.watch_failed``, ``*``). Returns a function that unsubscribes."""
        return self._bus.subscribe(event_type, callback)

    def status(self) -> dict[str, Any]:
        """A small JSON-able summary for health endpoints."""
        current = self._current
        watcher = self._watcher
        failure = self._watch_failure()
        return {
            "version": current.version if current else None,
            "environment": current.environment if current else None,
            "source": current.source if current else None,
            "booted_from": self.booted_from,
            "state": ("reload_failed" if self.last_error is not None
                      else "restart_pending" if self._pending is not None else "serving"),
            "pending_version": self._pending.version if self._pending else None,
            "pending_restart_keys": list(self._pending_keys) if self._pending else [],
            "last_error": self.last_error["data"] if self.last_error else None,
            "watch": ("dead" if failure is not None
                      else "registry" if self._registry is not None and self._watch
                      and self._current is not None and not self._stopped
                      else watcher.mode if watcher else None),
            "registry": self._registry.status() if self._registry is not None else None,
            "watch_error": self._mask(_describe(failure)) if failure is not None else None,
            "subscriber_failures": self._bus.failures,
        }

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> Kernel:
        """Load the artifact (or the last known-good), then watch for changes.

        Raises :class:`KernelStartError` if there is nothing trustworthy to serve.
        """
        from ..artifact import CONFIG
        from .source import read_artifact, stat_signature
        from .state import remove_stale_state_temps

        with self._lock:
            if self._stopped:
                raise RuntimeError("a stopped Kernel cannot be started again; create a new one")
            if self._current is not None:
                return self
            started = time.perf_counter()
            try:
                self._load_schema()
            except OSError as exc:
                raise KernelStartError(f"{self._schema_path}: cannot read the schema: "
                                       f"{exc.strerror}") from None
            if self.state_dir is not None:
                for name in remove_stale_state_temps(self.state_dir):
                    log.warning("magcfg: removed %s, left in %s by a writer killed "
                                "mid-write", name, self.state_dir)
            saved = self._load_saved()
            # With the registry down (or answering nothing loadable), the mirror holds
            # the last artifact pulled: read and verified like any artifact, it is what
            # there is to serve, before the last known-good.
            outage: str | None = None
            if self._registry is not None:
                self._registry.poll()
                if self._stopped:  # stop() on another thread ended the poll
                    raise self._stopped_starting()
                outage = self._registry.last_error
            self._last_stat = stat_signature(self.artifact_dir, (CONFIG,))
            pulled = self._registry.pulled if self._registry is not None else None
            raw = read_artifact(self.artifact_dir, self._listed)
            booted_from = "artifact" if outage is None else "registry_mirror"
            try:
                try:
                    snapshot = self._candidate(raw, saved, boot=True, source=booted_from)
                except _Refused:
                    raise
                except BaseException as exc:
                    # A refusal like any at start (a deploy too large for the memory
                    # left): the last known-good is served, or start says why it cannot.
                    if passes_on(exc):
                        raise
                    raise self._unexpected(raw, exc) from None
                assert snapshot is not None  # at boot "same" still yields the snapshot
                if outage is not None and saved is None and not self.allow_rollback:
                    # The mirror holds the last pull, not the last version accepted: a
                    # tag moved back to an older digest is pulled, then refused. Only the
                    # last known-good's highest version tells the two apart.
                    raise KernelStartError(
                        f"{outage}; and the registry mirror {self.artifact_dir} holds "
                        f"version {snapshot.version}, not served without a trusted last "
                        f"known-good state in {self.state_dir}: the highest version "
                        "accepted before is unknown, so it may be an older one refused "
                        "as a rollback")
                self._persist(snapshot)
            except _Refused as refused:
                self._last_raw = raw
                if saved is None:
                    no_state = ("there is no last known-good state"
                                + (f" in {self.state_dir}" if self.state_dir else
                                   " (no state_dir given)"))
                    if outage is not None and raw.manifest_bytes is None and not raw.unreadable:
                        # An empty mirror (a first start, or no state_dir): nothing was refused.
                        raise KernelStartError(f"{outage}; and {no_state}") from None
                    self._publish_final(self._failed_event(refused, None, "start", started))
                    what = ("the registry mirror holds no config it can serve" if outage
                            else "cannot load the config")
                    # A registry's pull is named by the reference followed; the mirror,
                    # read with the registry down, as the directory it is.
                    subject = (self._registry.reference
                               if self._registry is not None and outage is None
                               else self.artifact_dir)
                    raise KernelStartError(
                        (f"{outage}; and " if outage else "")
                        + f"{subject}: {what} ({refused.reason}: {refused.error}) "
                        f"and {no_state}") from None
                self._install(saved)
                self.booted_from = "last_known_good"
                self._publish_final(self._failed_event(refused, saved.version, "start", started))
                self._publish_final(self._loaded_event(saved, started, refused))
            else:
                self._install(snapshot)
                self._last_raw = raw
                self.booted_from = booted_from
                if self._registry is not None:
                    self._registry.served(pulled)
                self._publish_final(self._loaded_event(snapshot, started, None))
            # stop() takes no _lock (it ends a poll this holds it through): what it
            # stops is started under _stop_lock, and not at all once it has run.
            with self._stop_lock:
                if self._stopped:
                    raise self._stopped_starting()
                self._start_watching()
            if self._watcher is not None:
                # Anything that changed between the read above and the first watch.
                self._on_change("poll")
        return self

    def _stopped_starting(self) -> KernelStartError:
        source = self._registry.reference if self._registry is not None else self.artifact_dir
        return KernelStartError(f"{source}: stopped while starting")

    def _start_watching(self) -> None:
        if self._direct_vault is not None:
            self._direct_vault.start()
        if self._watch and self._registry is not None:
            self._registry.start()
            if self.metrics is not None:
                self.metrics.watching(True)
        elif self._watch:
            from .watcher import DirectoryWatcher

            self._watcher = DirectoryWatcher(self.artifact_dir, self._on_change,
                                             on_failure=self._watch_failed,
                                             **self._watcher_options)  # type: ignore[arg-type]
            self._watcher.start()
            if self.metrics is not None:
                self.metrics.watching(True)

    def stop(self, timeout: float | None = None) -> None:
        """Stop watching, close the audit log and remove the registry mirror the kernel
        made itself (the served config stays readable). A :meth:`start` in progress on
        another thread raises :class:`KernelStartError` (once its poll has ended), having
        started no watcher, poller or Vault refresh. Waits at most ``timeout`` seconds
        (:data:`STOP_TIMEOUT` unless given) for the watcher's thread: a subscriber
        running there that does not return is left running (logged), and its thread
        ends when it returns, checking nothing more."""
        self._stopped = True
        with self._stop_lock:  # two at once (a signal's and the caller's): one after the other
            self._stop(STOP_TIMEOUT if timeout is None else timeout)

    def _stop(self, timeout: float) -> None:
        ended = True
        if self._registry is not None:
            ended = self._registry.stop(timeout)
            if self.metrics is not None:
                self.metrics.watching(False)
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            ended = watcher.stop(timeout)
            if self.metrics is not None:
                self.metrics.watching(False)
        if not ended:
            log.warning("magcfg: stopped without waiting for the watcher's thread, still in "
                        "a callback after %s s (a subscriber that does not return); it "
                        "ends when that returns", timeout)
        if self._direct_vault is not None:
            self._direct_vault.close()
        if self._audit is not None:
            self._audit.close()
        if self._own_mirror is not None:
            self._own_mirror.cleanup()

    def __enter__(self) -> Kernel:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reload(self, trigger: str = "explicit") -> ReloadResult:
        """Check the artifact now and apply it if it is a valid newer config. ``trigger``
        (``explicit``, or ``signal`` for the sidecar's SIGHUP) is reported in the events."""
        if trigger not in ("explicit", "signal"):
            raise ValueError(f"trigger must be 'explicit' or 'signal', not {trigger!r}")
        if self._registry is not None:
            self._registry.poll()
            if self._stopped:
                # A stopped source (its poll ended by stop()) has nothing new, and its
                # mirror may be gone: nothing to check, nothing to report.
                return ReloadResult("unchanged", self.version)
        return self._attempt(trigger, force=True)

    # ---------------------------------------------------------------- pipeline

    def _on_change(self, trigger: str) -> None:
        from .source import stat_signature

        if trigger == "poll":
            with self._lock:
                if stat_signature(self.artifact_dir, self._names()) == self._last_stat:
                    return
        self._attempt(trigger)

    def _names(self) -> tuple[str, ...]:
        # The files of the last read; stat data is taken *before* each read, so a change
        # during the read still differs at the next poll.
        from ..artifact import CONFIG

        return tuple(sorted(self._last_raw.files)) if self._last_raw else (CONFIG,)

    def _watch_failure(self) -> BaseException | None:
        """What ended the watcher's (or the registry poller's) thread, if anything did;
        ``None`` once stopped, when nothing watches."""
        if self._stopped:
            return None
        watcher = self._watcher
        if watcher is not None and watcher.failure is not None:
            return watcher.failure
        return self._registry.failure if self._registry is not None else None

    def _watch_failed(self, exc: BaseException) -> None:
        # The gauge first, on its own: the MagcfgConfigWatcherDead alert must fire even
        # if building or delivering the event fails.
        if self.metrics is not None:
            self.metrics.watching(False)
        data: dict[str, Any] = {
            "artifact_dir": str(self.artifact_dir),
            "error": _describe(exc),
            "active_version": self._current.version if self._current else None,
        }
        if self._registry is not None:
            data["reference"] = str(self._registry.reference)
        self._publish_final(make_event(WATCH_FAILED, self.environment, data, self.source))

    def _attempt(self, trigger: str, force: bool = False) -> ReloadResult:
        with self._lock:
            if self._attempting:
                # A subscriber's reload() (the lock is this thread's): run nested, it
                # would serve a version that a later subscriber's rejection of the outer
                # one then replaces with an older one. It runs once the outer is done.
                deferred = self._deferred
                self._deferred = (trigger, force or (deferred is not None and deferred[1]))
                return ReloadResult("deferred", self.snapshot.version)
            self._attempting = True
            try:
                result = self._attempt_once(trigger, force)
                while self._deferred is not None and not self._stopped:
                    again, self._deferred = self._deferred, None
                    self._attempt_once(*again)
            finally:
                self._attempting = False
                self._deferred = None
            return result

    def _attempt_once(self, trigger: str, force: bool) -> ReloadResult:
        from ..artifact import CONFIG
        from .source import read_artifact, stat_signature

        with self._lock:
            current = self.snapshot
            started = time.perf_counter()
            self._last_stat = stat_signature(self.artifact_dir, self._names())
            pulled = self._registry.pulled if self._registry is not None else None
            raw = read_artifact(self.artifact_dir, self._listed)
            if not force and raw.same_content(self._last_raw):
                if _holds(raw, current):
                    self._confirmed(current, pulled)
                return ReloadResult("unchanged", current.version)
            self._last_raw = raw
            self._rolled_back = False
            candidate: Snapshot | None = None
            try:
                candidate = self._candidate(raw, current, boot=False)
                if candidate is None:
                    self._confirmed(current, pulled)
                    return ReloadResult("unchanged", current.version)
                result = self._apply(current, candidate, trigger, started,
                                     self._prefix(raw) + CONFIG)
                if result.status == "applied" and self._registry is not None:
                    self._registry.served(pulled)
                return result
            except _Refused as refused:
                event = self._failed_event(refused, current.version, trigger, started)
                self._publish_final(event)
                return ReloadResult("refused", current.version, refused.reason, event)
            except BaseException as exc:
                # What no stage refuses by name (a MemoryError reading a large deploy,
                # an error of the schema validator's own, Ctrl-C in a validator or a
                # subscriber on the main thread) goes on to the caller (the watcher
                # logs it), the attempt said to have failed; and the content is not
                # taken as tried: the next change the watcher sees tries it again.
                self._last_raw = None
                unexpected = self._unexpected(raw, exc, candidate.version if candidate
                                              else None, rolled_back=self._rolled_back)
                self._publish_final(self._failed_event(unexpected, current.version, trigger,
                                                       started))
                raise

    def _unexpected(self, raw: RawArtifact, exc: BaseException, version: int | None = None,
                    rolled_back: bool = False) -> _Refused:
        """The refusal of an attempt on ``raw`` that failed on ``exc``, which no stage
        refuses by name: named by its type only (its text may quote a value)."""
        return _Refused("internal", "internal_error",
                        f"{self._prefix(raw).rstrip('/')}: the attempt failed unexpectedly "
                        f"({type(exc).__name__})", version, rolled_back=rolled_back)

    def _confirmed(self, current: Snapshot, pulled: tuple[str, str | None] | None) -> None:
        """The mirror, read when the registry's pull ``pulled`` was what it held, holds
        the served config: the registry's digest is the one served, and a config booted
        from the mirror (or the last known-good) is the registry's artifact."""
        if self._registry is None or pulled is None:
            return
        self._registry.served(pulled)
        if current.source != "artifact" and self._registry.digest == pulled[0]:
            # The same config, named after the source that serves it: no swap, no event.
            self._current = current.with_source("artifact")

    def _verify_manifest(self, manifest_bytes: bytes, signature: bytes,
                         prefix: str = "") -> tuple[str, dict[str, Any]]:
        """(key id, manifest) of a manifest signed by a trusted key, in the documented
        format, for this kernel's environment; the last one is remembered, so the read
        and the check of one attempt verify once. Errors name the files ``prefix``
        + name."""
        from ..artifact import MANIFEST, SIGNATURE
        from ..signing.signatures import check_environment, parse_manifest, verify_manifest

        memo = self._verified
        if memo is not None and memo[0] == manifest_bytes and memo[1] == signature:
            return memo[2], memo[3]
        kid = verify_manifest(manifest_bytes, signature, self.public_keys,
                              signature_file=prefix + SIGNATURE)
        manifest = parse_manifest(manifest_bytes, prefix + MANIFEST)
        check_environment(manifest, self.environment, prefix + MANIFEST)
        self._verified = (manifest_bytes, signature, kid, manifest)
        return kid, manifest

    def _listed(self, manifest_bytes: bytes, signature: bytes) -> tuple[str, ...]:
        # The files to read: none until the manifest's signature verifies.
        from ..signing.signatures import VerificationError

        try:
            _, manifest = self._verify_manifest(manifest_bytes, signature)
        except VerificationError:
            return ()
        return tuple(manifest["files"])

    def _prefix(self, raw: RawArtifact) -> str:
        """What the files of ``raw`` are named after in errors, as `magcfg verify` names
        them: through a volume's link, not the visible names beside it; a registry's
        pull, as `verify --artifact oci://` names it, not the mirror it was written into
        (a temporary directory without state_dir, gone when the sidecar exits)."""
        from ..artifact import DATA_LINK

        pulled = self._registry.pulled_as(raw.root) if self._registry is not None else None
        return (f"{pulled}/" if pulled is not None
                else f"{self.artifact_dir}/" if raw.root == self.artifact_dir
                else f"{self.artifact_dir}/{DATA_LINK}/")

    def _candidate(self, raw: RawArtifact, running: Snapshot | None,
                   boot: bool, source: str = "artifact") -> Snapshot | None:
        """Verify, version-check, parse and validate ``raw``; ``None`` if it is the
        running config already. ``source`` is where the snapshot says it came from."""
        from ..artifact import CONFIG, DATA_LINK, MANIFEST, SIGNATURE
        from ..signing.signatures import VerificationError, VerifiedArtifact, check_digests
        from ..signing.versions import SuccessionError, check_succession
        from .snapshot import freeze

        if DATA_LINK in raw.unreadable:
            raise _Refused("read", "unreadable_file",
                           f"{self.artifact_dir}/{DATA_LINK}: {raw.unreadable[DATA_LINK]}")
        prefix = self._prefix(raw)
        for name in (MANIFEST, SIGNATURE):
            if name in raw.unreadable:
                raise _Refused("read", "unreadable_file",
                               f"{prefix}{name}: {raw.unreadable[name]}")
        if raw.manifest_bytes is None:
            raise _Refused("read", "missing_file", f"{prefix}{MANIFEST} not found")
        if raw.signature is None:
            raise _Refused("read", "unsigned", f"{prefix}{SIGNATURE} not "
                           "found: the artifact is not signed")
        try:
            kid, manifest = self._verify_manifest(raw.manifest_bytes, raw.signature, prefix)
            if raw.unreadable:  # a listed file that is a FIFO, a device, a symlink
                name, why = min(raw.unreadable.items())
                raise VerificationError(prefix + name, why, "unreadable_file")
            verified = VerifiedArtifact(kid, manifest, raw.manifest_bytes,
                                        check_digests(manifest, raw.files, prefix))
        except VerificationError as exc:
            raise _Refused("verify", exc.reason, _message(exc)) from None
        version = verified.version
        if running is not None:
            try:
                verdict = check_succession(running.manifest, manifest,
                                           allow_rollback=self.allow_rollback,
                                           file=prefix + "manifest.json")
            except SuccessionError as exc:
                raise _Refused("version", exc.reason, _message(exc), version) from None
            except VerificationError as exc:
                raise _Refused("verify", exc.reason, _message(exc), version) from None
            # The same manifest signed by another trusted key (a key rotation re-signs
            # each environment) is taken, so that the last known-good holds a signature
            # the next restart, trusting the new key alone, verifies. Once per key: a
            # directory flipped between two signatures of it is no stream of reloads.
            if verdict == "same" and not boot and (
                    kid in self._signed_by or raw.manifest_bytes != running.manifest_bytes):
                return None
        if not self.allow_rollback and version < self._highest:
            raise _Refused("version", "rollback_refused",
                           f"{prefix}{MANIFEST}: version {version} is older than version "
                           f"{self._highest}, the highest ever accepted here: refused as a "
                           "rollback", version)
        config_name = CONFIG  # always listed: the manifest format requires it
        self._load_schema()  # loaded by start() already: a no-op here
        # Validators and the schema see a plain parsed dict, as they always have: the whole
        # document is parsed for them. The frozen tree shares the previous snapshot's
        # unchanged top-level subtrees either way.
        plain = bool(self.validators) or self._schema_check is not None
        body = verified.files[config_name]
        try:
            config, frozen, members = _build(body, running, plain)
        except (ValueError, RecursionError) as exc:
            raise _Refused("parse", "invalid", f"{prefix}{config_name}: "
                           f"{_not_json(body, exc)}", version) from None
        if not isinstance(config, Mapping):
            raise _Refused("parse", "invalid", f"{prefix}{config_name}: not a JSON object",
                           version)
        policy = self._policy_for(manifest)
        self._validate(config, policy, running, version, prefix + config_name)
        return Snapshot(frozen, freeze(manifest), raw.manifest_bytes,
                        raw.signature, freeze_bytes(verified.files), verified.key_id,
                        source=source, _members=members)

    def _policy_for(self, manifest: Mapping[str, Any]) -> ReloadPolicy:
        from .policy import ReloadPolicy

        self._load_schema()
        if self._schema_secrets:
            manifest = {**manifest, "secret_keys": [*manifest.get("secret_keys", ()),
                                                    *self._schema_secrets]}
        # Successive versions nearly always carry the same rules: the last two policies
        # (a reload asks for the served version's and the candidate's) are kept, under
        # the fields they are made of (a large manifest lists thousands of keys, and
        # parsing them is ~30 ms).
        key = _policy_key(manifest)
        memo = self._policy_memo
        found = memo.get(key) if key is not None else None
        if found is not None:
            return found
        policy = ReloadPolicy(manifest)
        if key is not None:
            while len(memo) >= 2:
                del memo[next(iter(memo))]
            memo[key] = policy
        return policy

    def _load_schema(self) -> None:
        if self._schema_path is None or self._schema_check is not None:
            return
        from ..durable import read_regular
        from ..keyglob import format_keypath
        from ..schema.index import load_schema
        from ..schema.validator import Validator as SchemaValidator
        from ..secrets.redaction import Redactor

        schema = load_schema(str(self._schema_path),
                             read_regular(self._schema_path, follow_symlinks=True))
        validator = SchemaValidator(schema, Redactor(schema.index))
        self._schema_secrets = schema.index.secret_paths()

        def check(config: Mapping[str, Any]) -> list[str]:
            document = dict(config)
            found = validator.check_document(document)
            if validator.fragment_safe:
                for key, value in document.items():
                    found.extend(validator.check_fragment(key, value))
            return [f"{format_keypath(v.keypath) or '(root)'}: {v.message}" for v in found]

        self._schema_check = check

    def _validate(self, config: Mapping[str, Any], policy: ReloadPolicy,
                  running: Snapshot | None, version: int, file: str) -> None:
        # Secret values are collected (a walk of the whole config) only to mask an error:
        # the candidate's under its rules, and the running version's under its own.
        def held() -> list[tuple[ReloadPolicy, Mapping[str, Any]]]:
            pairs = [(policy, config)]
            if running is not None:
                pairs.append((self._policy_for(running.manifest), running.config))
            return pairs

        if self._schema_check is not None:
            problems = self._schema_check(config)
            if problems:
                shown = "; ".join(problems[:5]) + (
                    f" (and {len(problems) - 5} more)" if len(problems) > 5 else "")
                raise _Refused("validate", "invalid", self._mask(
                    f"{file}: {shown}", *held()), version)
        for check in self.validators:
            try:
                check(config)
            except BaseException as exc:  # a validator's SystemExit must not end the watcher
                if passes_on(exc):
                    raise
                text = _text_of(exc) if isinstance(exc, Exception) else ""
                raise _Refused("validate", "invalid", self._mask(
                    f"{file}: {getattr(check, '__name__', 'validator')}: "
                    f"{text or type(exc).__name__}",
                    *held()), version) from None

    def _apply(self, current: Snapshot, candidate: Snapshot, trigger: str,
               started: float, file: str) -> ReloadResult:
        from .policy import changes, restart_keys

        policy = self._policy_for(candidate.manifest)
        # The served version's rules too: a value its manifest keeps secret is masked in
        # what this attempt says, though the candidate no longer declares it.
        previous = self._policy_for(current.manifest)
        # Same config.json bytes (a version bump of other files): nothing to compare.
        changed = [] if candidate.config_digest == current.config_digest else changes(
            current.config, candidate.config)
        blocked = restart_keys(changed, policy)
        if blocked:
            self._pending = candidate
            self._pending_keys = tuple(blocked)
            raise _Refused("policy", "restart_required",
                           f"{file}: {len(blocked)} changed key(s) take effect only after "
                           "a restart: "
                           + ", ".join(blocked[:10]) + (" ..." if len(blocked) > 10 else ""),
                           candidate.version, restart_keys=blocked,
                           changes=_change_data(changed, policy, previous),
                           key_id=candidate.key_id,
                           inputs_digest=_inputs_digest(candidate))
        # The floor is durable before any reader or subscriber (the sidecar's publish
        # into --out) sees the version: a crash after that, or a state that cannot be
        # written, must not let a restart accept an older version than one served.
        self._persist(candidate)
        self._install(candidate)
        try:
            return self._announce(current, candidate, trigger, started, changed, policy,
                                  previous)
        except _Refused:  # a subscriber's rejection: restored already
            raise
        except BaseException:  # Ctrl-C or sys.exit() in a subscriber on the main thread
            self._restore(current)
            self._rolled_back = True
            raise

    def _announce(self, current: Snapshot, candidate: Snapshot, trigger: str,
                  started: float, changed: list[Change], policy: ReloadPolicy,
                  previous: ReloadPolicy) -> ReloadResult:
        """Deliver ``config.reloaded`` of ``candidate``, installed in the place of
        ``current``; restore ``current`` if a subscriber rejects it (:class:`_Refused`)."""
        event = self._scrubbed(make_event(RELOADED, candidate.environment, {
            "previous_version": current.version,
            "version": candidate.version,
            "environment": candidate.environment,
            "key_id": candidate.key_id,
            "inputs_digest": _inputs_digest(candidate),
            "trigger": trigger,
            "changed_keys": [c.key for c in changed[:_MAX_CHANGES]],
            "changes": _change_data(changed, policy, previous),
            "changes_truncated": max(0, len(changed) - _MAX_CHANGES),
            "duration_ms": _ms(started),
        }, self.source), thorough=False)
        rejected = self._bus.publish(event, rejectable=True)
        if rejected is not None:
            self._restore(current)
            raise _Refused("subscriber", "subscriber_rejected",
                           self._mask(f"a subscriber rejected version {candidate.version}: "
                                      f"{_text_of(rejected) or type(rejected).__name__}",
                                      (policy, candidate.config),
                                      (previous, current.config)),
                           candidate.version, rolled_back=True)
        self._pending = None
        self.last_error = None
        for sink in self._sinks:
            _safe(sink, event)
        return ReloadResult("applied", candidate.version, None, event)

    # ---------------------------------------------------------------- state

    def _install(self, snapshot: Snapshot) -> None:
        # The swap: one reference assignment, atomic for every reader.
        previous, self._current = self._current, snapshot
        self._highest = max(self._highest, snapshot.version)
        same = previous is not None and previous.manifest_bytes == snapshot.manifest_bytes
        self._signed_by = (self._signed_by if same else set()) | {snapshot.key_id}
        # Keep the references found in the subtrees this snapshot shares, and no others
        # (they would keep the replaced snapshot's subtrees alive).
        config = snapshot.config
        self._subtree_refs = {k: v for k, v in self._subtree_refs.items()
                              if config.get(k[0], MISSING) is v[0]}

    def _restore(self, current: Snapshot) -> None:
        """Serve ``current`` again in place of a version its subscribers did not take,
        and make it the last known-good again; the floor stays where the refused version
        raised it (it was served, however briefly)."""
        self._install(current)
        self._persist(current)

    def _persist(self, snapshot: Snapshot) -> None:
        """Save ``snapshot`` as the last known-good, with the highest version accepted.

        Raises :class:`_Refused` (``state_unwritable``) if it cannot be saved and its
        version is above the floor the state file holds: served, it would leave a floor
        under which a restart accepts (and the sidecar republishes) an older version.
        Otherwise a failure is only logged: the saved floor already covers it."""
        if self.state_dir is None:
            return
        from pathlib import Path

        from ..durable import os_reason
        from .state import STATE_FILE, save_state

        highest = max(self._highest, snapshot.version)
        try:
            save_state(self.state_dir, snapshot.manifest_bytes, snapshot.signature,
                       dict(snapshot.files), snapshot.version, highest)
        except OSError as exc:
            # The state file (its temp file is the writer's own detail), unless what
            # failed is the directory itself or above it (made, or fsynced).
            named = (os.fsdecode(exc.filename) if isinstance(exc.filename, (str, bytes))
                     else None)
            where = (named if named is not None and Path(named).parent != self.state_dir
                     else self.state_dir / STATE_FILE)
            error = f"{where}: cannot save the last known-good state: {os_reason(exc)}"
            if snapshot.version > self._saved_floor:
                raise _Refused("persist", "state_unwritable",
                               f"{error}: version {snapshot.version} is not served until "
                               "its version floor is saved", snapshot.version) from None
            log.error("magcfg: %s", error)
            return
        self._saved_floor = max(self._saved_floor, highest)

    def _load_saved(self) -> Snapshot | None:
        """The last known-good, or None: there is none, or it is not trusted (reported)."""
        try:
            return self._read_saved()
        except BaseException as exc:
            # What no check names (a KeyError of a manifest that verified, a MemoryError
            # reading a large state in a small pod) leaves the state unusable, as a
            # corrupt one is: start goes on to the deploy. Reported once out of the
            # handler, whose traceback holds what the failed read had taken.
            if passes_on(exc):
                raise
            unusable = type(exc).__name__
        self._state_corrupt(f"{self.state_dir}: the saved artifact is unusable ({unusable})")
        return None

    def _read_saved(self) -> Snapshot | None:
        if self.state_dir is None:
            return None
        from ..artifact import CONFIG
        from ..signing.signatures import VerificationError, verify_files
        from .snapshot import freeze
        from .state import StateCorrupt, load_state

        try:
            saved = load_state(self.state_dir)
            if saved is None:
                return None
            verified = verify_files(saved.manifest_bytes, saved.signature, saved.files,
                                    self.public_keys, environment=self.environment,
                                    prefix=f"{saved.path}:")
            body = verified.files[CONFIG]
            try:
                config, frozen, members = _build(body, None, False)
            except (ValueError, RecursionError) as exc:
                raise StateCorrupt(f"{saved.path}:{CONFIG}: {_not_json(body, exc)}") from None
            if not isinstance(config, Mapping):
                raise StateCorrupt(f"{saved.path}:{CONFIG}: not a JSON object")
        except StateCorrupt as exc:
            self._state_corrupt(str(exc))
            return None
        except VerificationError as exc:
            self._state_corrupt(f"{self.state_dir}: the saved artifact fails verification "
                                f"({exc.reason}): {_message(exc)}")
            return None
        self._highest = max(saved.highest_version, verified.version)
        self._saved_floor = self._highest
        return Snapshot(frozen, freeze(verified.manifest), saved.manifest_bytes,
                        saved.signature, freeze_bytes(verified.files), verified.key_id,
                        source="last_known_good", _members=members)

    def _state_corrupt(self, error: str) -> None:
        log.error("magcfg: last known-good state not trusted: %s", self._mask(error))
        event = make_event(STATE_CORRUPT, self.environment, {
            "state_dir": str(self.state_dir), "error": error}, self.source)
        self._publish_final(event)

    # ---------------------------------------------------------------- events

    def _failed_event(self, refused: _Refused, active: int | None, trigger: str,
                      started: float) -> Event:
        data: dict[str, Any] = {
            "stage": refused.stage,
            "reason": refused.reason,
            "error": refused.error,
            "attempted_version": refused.version,
            "active_version": active,
            "trigger": trigger,
            "duration_ms": _ms(started),
            "rolled_back": bool(refused.extra.get("rolled_back", False)),
        }
        for key in ("restart_keys", "changes", "key_id", "inputs_digest"):
            if key in refused.extra:
                data[key] = refused.extra[key]
        return make_event(RELOAD_FAILED, self.environment, data, self.source)

    def _loaded_event(self, snapshot: Snapshot, started: float,
                      refused: _Refused | None) -> Event:
        data: dict[str, Any] = {
            "version": snapshot.version,
            "environment": snapshot.environment,
            "key_id": snapshot.key_id,
            "inputs_digest": _inputs_digest(snapshot),
            "source": snapshot.source,
            "duration_ms": _ms(started),
        }
        if refused is not None:
            data["reason"] = refused.reason
            data["error"] = refused.error
        return make_event(LOADED, snapshot.environment, data, self.source)

    def _source_event(self, kind: str, data: dict[str, Any]) -> None:
        self._publish_final(make_event(kind, self.environment, data, self.source))

    def _publish_final(self, event: Event) -> None:
        event = self._scrubbed(event, thorough="error" in event["data"])
        if event["type"] == RELOAD_FAILED:
            # A version held back for a restart is not a failure: it is the pending state.
            restart = event["data"]["reason"] == "restart_required"
            self.last_error = None if restart else event
        # Metrics and the audit log first: a subscriber woken by the event then reads
        # metrics and an audit log that already count it.
        for sink in self._sinks:
            _safe(sink, event)
        self._bus.publish(event)

    # ---------------------------------------------------------------- masking

    def _delivered(self, config: Mapping[str, Any]) -> set[str]:
        """The values the environment delivers for the secret references of ``config``
        (what ``secret()`` would return for each). The references of the served config
        are found once per snapshot (a walk of a 12 MB config takes ~0.2 s), in the
        top-level subtrees it does not share with the last one walked, and only when an
        error text is to be masked."""
        from ..secrets.check_env import delivered_values, resolve

        current = self._current
        if current is None or config is not current.config:
            return delivered_values(config, os.environ)
        memo = self._delivered_refs
        if memo is None or memo[0] is not current:
            memo = self._delivered_refs = (current, self._references(config))
        return {value for keypath, ref in memo[1]
                if (value := resolve(keypath, ref, os.environ))}

    def _references(self, config: Mapping[str, Any]) -> list[_Reference]:
        """The secret references of ``config``, walking only the top-level subtrees that
        the last walk did not see (the others are shared with its snapshot)."""
        from ..secrets.references import reference_paths

        seen = self._subtree_refs
        found: dict[tuple[str, int], tuple[Any, list[_Reference]]] = {}
        out: list[_Reference] = []
        for key, value in config.items():
            known = seen.get((key, id(value)))
            if known is None or known[0] is not value:
                known = (value, reference_paths({key: value}))
            found[key, id(value)] = known
            out.extend(known[1])
        self._subtree_refs = found  # holds the subtrees, so their ids stay theirs
        return out

    def _secret_texts(self, *held: tuple[ReloadPolicy, Mapping[str, Any]]) -> set[str]:
        """Every secret string known: the values ``secret()`` handed out, the values the
        environment delivers for the references of the configs ``held`` and of the
        served config, and the values at the secret keys of each config ``held`` under
        the policy given with it."""
        texts = self._handed_texts()
        current = self._current
        for policy, config in held:
            texts |= policy.secret_values(config)
            if current is None or config is not current.config:
                texts |= self._delivered(config)
        if current is not None:
            texts |= self._delivered(current.config)
        return texts

    def _handed_texts(self) -> set[str]:
        """The values ``secret()`` handed out, and every value the Direct-Vault client
        read (the password of a dynamic secret whose username alone was asked for)."""
        with self._handed_lock:
            texts = set(self._handed_out)
        if self._direct_vault is not None:
            texts |= self._direct_vault.values()
        return texts

    def _mask(self, text: str, *held: tuple[ReloadPolicy, Mapping[str, Any]]) -> str:
        """``text`` with every string of :meth:`_secret_texts` of ``held`` masked."""
        from ..secrets.redaction import Redactor

        return Redactor().text(text, self._secret_texts(*held))

    def _scrubbed(self, event: Event, thorough: bool) -> Event:
        """``event`` with every secret value masked in its data. Events that carry free
        text (an ``error``) are masked ``thorough``-ly, with everything :meth:`_mask`
        knows; the others (keys, versions, values of non-secret keys, which the policy
        redacted already) with the values handed out, without a walk of the config."""
        texts = self._secret_texts() if thorough else self._handed_texts()
        if texts:
            from ..secrets.redaction import Redactor

            event["data"] = Redactor().masked(event["data"], texts)
        return event


def _refuse_bare_reference(artifact_dir: str | os.PathLike[str]) -> None:
    """A ``ValueError`` for a registry reference given as a directory that does not
    exist (:func:`magcfg.oci.reference.misspelled_reference`)."""
    given = os.fspath(artifact_dir)
    if os.path.lexists(given):
        # What names an existing directory (or file) is no misspelled reference: the
        # registry modules (~10 ms) are imported for a missing one only.
        return
    from ..oci.reference import misspelled_reference

    misspelled = misspelled_reference(given)
    if misspelled is not None:
        raise ValueError(f"{given}: {misspelled[1]}")


def _holds(raw: RawArtifact, snapshot: Snapshot) -> bool:
    """Whether ``raw`` is byte for byte what ``snapshot`` serves (verified with it)."""
    return (not raw.unreadable and raw.manifest_bytes == snapshot.manifest_bytes
            and raw.signature == snapshot.signature and raw.files == snapshot.files)


def freeze_bytes(files: Mapping[str, bytes]) -> Mapping[str, bytes]:
    from types import MappingProxyType

    return MappingProxyType(dict(files))


def _policy_key(manifest: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """The manifest fields a :class:`ReloadPolicy` is made of, hashable (``None`` if a
    field cannot be)."""
    from .policy import ReloadPolicy

    key = tuple(tuple(v) if isinstance(v, (list, tuple)) else v for v in (
        manifest.get(name) for name in ReloadPolicy.FIELDS))
    try:
        hash(key)
    except TypeError:
        return None
    return key


def _change_data(changed: list[Change], policy: ReloadPolicy,
                 previous: ReloadPolicy) -> list[dict[str, Any]]:
    """The first :data:`_MAX_CHANGES` changes as event data, masked under the
    candidate's rules and the served version's (``previous``)."""
    return [c.redacted(policy, previous) for c in changed[:_MAX_CHANGES]]


def _message(exc: MagcfgError) -> str:
    return "; ".join(d.located() for d in exc.diagnostics)


def _text_of(exc: BaseException) -> str:
    """``str(exc)``, or ``""`` for an exception whose own text fails (a ``__str__`` that
    raises): a validator's or a subscriber's, which must not stop the attempt from
    being reported."""
    try:
        return str(exc)
    except Exception:
        return ""


def _not_json(body: bytes, exc: ValueError | RecursionError) -> str:
    """Where and why the config.json ``body`` is not a config, as :func:`_build` refused
    it with ``exc``: the line and column, and what the reader said of the text there,
    never the text (a secret may stand beside the error)."""
    import json

    from ..artifact import MAX_CONFIG_DEPTH, JSONRefused, refused_at
    from ..schema.json_lines import nesting_line

    if isinstance(exc, UnicodeDecodeError):
        line, column = _line_and_column(body, exc.start, b"\n")
        return f"line {line}, column {column}: not UTF-8 ({exc.reason})"
    if isinstance(exc, json.JSONDecodeError):
        return f"line {exc.lineno}, column {exc.colno}: not valid JSON ({exc.msg})"
    text = body.decode("utf-8")
    at = refused_at(text) if isinstance(exc, JSONRefused) else None
    if at is not None:
        line, column = _line_and_column(text, at, "\n")
        return f"line {line}, column {column}: {exc}"
    # Deeper than the bound, a config is refused for that whatever else it holds (and
    # neither reader recurses through it to say where).
    deep = nesting_line(text, MAX_CONFIG_DEPTH)
    if deep is not None:
        return f"line {deep}: nested deeper than {MAX_CONFIG_DEPTH} levels"
    return str(exc) if isinstance(exc, JSONRefused) else f"not valid JSON ({type(exc).__name__})"


def _line_and_column(text: AnyStr, at: int, newline: AnyStr) -> tuple[int, int]:
    """The line and column (both from 1) of index ``at`` of ``text``."""
    return text.count(newline, 0, at) + 1, at - text.rfind(newline, 0, at)


def _describe(exc: BaseException) -> str:
    text = _text_of(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _safe(sink: Callable[[Event], None], event: Event) -> None:
    try:
        sink(event)
    except Exception as exc:
        log.error("magcfg: event sink failed: %s", type(exc).__name__)


def _inputs_digest(snapshot: Snapshot) -> str:
    """Which sources a version was built from (the manifest's digest over its layer and
    project files): with the signer's key id, who and what stand behind it."""
    return str(snapshot.manifest["inputs"]["digest"])
