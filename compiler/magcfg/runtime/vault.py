"""Direct-Vault at run time: the app reads its ``vault+direct://`` references from Vault
or OpenBao itself (docs/secrets.md, "Direct-Vault"; docs/runtime.md).

:class:`DirectVault` logs in (token, AppRole or Kubernetes auth, from ``VAULT_*`` /
``BAO_*`` variables as :mod:`magcfg.secrets.vault` reads them), keeps what it read in
memory only, and keeps it current:

* a KV v2 secret is re-read every ``refresh_interval`` seconds (and on
  :meth:`DirectVault.refresh`), so a new version (a rotation) is picked up;
* a leased secret (a dynamic one, ``vault+direct://database/creds/<role>#username``: any
  reference on a mount that is not KV v2) is renewed in the background when two thirds
  of its lease have passed, and read again when the renewal fails (revoked, past its max
  TTL) or the lease is about to end. A value is never served past its lease: a read
  after that goes to the server;
* the login token of AppRole and Kubernetes auth is renewed the same way, and a new
  login is made when it is refused (revoked, expired).

Every problem is a :class:`~magcfg.secrets.vault.VaultError` whose message says what
failed (address, path, HTTP status, timeout) and never holds a value, a token or server
text; the background thread reports it as an event (``on_event``) and in the log.

hvac is imported only when a connection is made: ``pip install 'magcfg[vault]'``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import Diagnostic
from ..secrets.references import SecretRef
from ..secrets.vault import (
    Leased,
    VaultConfig,
    VaultError,
    VaultSession,
    VaultTokenRefused,
    vault_config,
)
from .events import SECRET_FAILED, SECRET_RENEWED, SECRET_ROTATED, check_seconds, passes_on

__all__ = ["SECRET_FAILED", "SECRET_RENEWED", "SECRET_ROTATED", "DirectVault",
           "DirectVaultError"]

log = logging.getLogger("magcfg.runtime")
EventSink = Callable[[str, dict[str, Any]], None]
_MIN_WAIT = 0.05
_KEEP_REPLACED = 256


class DirectVaultError(VaultError):
    """A Direct-Vault reference cannot be resolved (the message holds no value)."""


def _problem(message: str) -> list[Diagnostic]:
    return [Diagnostic("", None, None, message, code="vault")]


@dataclass
class _Entry:
    """One secret as last read: ``data`` (memory only), when to read it again."""

    data: Mapping[str, Any] = field(repr=False)
    kv: bool
    version: int | None
    fetched: float
    expires: float  # monotonic: no value served at or after this
    renew_at: float  # monotonic: renew (leases) or re-read (KV) from then on
    lease_id: str = field(default="", repr=False)
    lease_duration: int = 0
    renewable: bool = False


class DirectVault:
    """Resolves ``vault+direct://`` references against one Vault or OpenBao server.

    ``config``: a :class:`~magcfg.secrets.vault.VaultConfig` (else read from
    ``environ``, by default ``os.environ``). ``refresh_interval``: seconds a KV v2 value
    is served before it is read again. ``kv_mounts``: mounts known to be KV v2 (others
    are read as leased secrets); by default the server is asked once per mount.
    ``on_event(type, data)``: called for rotations, renewals and failures (the kernel
    publishes them). ``background``: renew and refresh in a thread after :meth:`start`.
    """

    def __init__(self, config: VaultConfig | None = None, *,
                 environ: Mapping[str, str] | None = None,
                 refresh_interval: float = 300.0,
                 kv_mounts: set[str] | frozenset[str] | None = None,
                 on_event: EventSink | None = None,
                 background: bool = True) -> None:
        if config is None:
            config = vault_config(os.environ if environ is None else environ)
        check_seconds("refresh interval", refresh_interval, None)
        self.config = config
        self.refresh_interval = float(refresh_interval)
        self.on_event = on_event
        self._kv_mounts = dict.fromkeys(kv_mounts or (), True)
        self._fixed_mounts = kv_mounts is not None
        self._session: VaultSession | None = None
        self._token_renew_at: float | None = None
        self._token_ttl = 0
        self._cache: dict[tuple[str, str], _Entry] = {}
        self._seen: dict[str, None] = {}  # insertion-ordered: the oldest replaced first
        self._lock = threading.RLock()
        self._background = background
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._closed = False

    # ---------------------------------------------------------------- reading

    def value(self, ref: SecretRef) -> str:
        """The value of ``ref`` (a ``vault+direct://`` reference), from memory while it
        is fresh, else read from the server. Raises :class:`VaultError`."""
        if not ref.direct:
            raise ValueError("DirectVault reads vault+direct:// references only")
        with self._lock:
            entry = self._cache.get((ref.mount, ref.path))
            now = time.monotonic()
            if entry is None or now >= entry.expires - _margin(entry) \
                    or (entry.kv and now >= entry.renew_at):
                entry = self._read(ref.mount, ref.path, "read" if entry is None else "expired")
            found = entry.data.get(ref.key)
            if found is None:
                raise DirectVaultError(_problem(
                    f"{_where(ref.mount, ref.path)}: the secret has no key {ref.key!r}"
                    + (f" (version {entry.version})" if entry.version is not None else "")))
            text = found if isinstance(found, str) else str(found)
            return text

    def refresh(self, ref: SecretRef | None = None) -> None:
        """Read ``ref``'s secret (or every cached one) again now: picks up a rotation
        without waiting for ``refresh_interval``. Raises :class:`VaultError`."""
        with self._lock:
            keys = [(ref.mount, ref.path)] if ref is not None else list(self._cache)
            for mount, path in keys:
                self._read(mount, path, "refresh")

    def values(self) -> set[str]:
        """Every value read so far (current and replaced), for masking: kept in memory
        only, never shown."""
        with self._lock:
            return set(self._seen)

    def forget(self) -> None:
        """Drop every cached value (the next read goes to the server)."""
        with self._lock:
            self._cache.clear()

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> DirectVault:
        """Start the background renewal and refresh (with ``background``)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("a closed DirectVault cannot be started again")
            if self._background and self._thread is None:
                thread = threading.Thread(target=self._run, name="magcfg-direct-vault",
                                          daemon=True)
                thread.start()
                self._thread = thread  # only a thread that runs is ever joined (close)
        return self

    def close(self, timeout: float | None = None) -> None:
        """Stop the background thread (waiting at most ``timeout``, by default the
        client's timeout and a second) and forget every value."""
        self._closed = True
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.config.timeout + 1 if timeout is None else timeout)
        with self._lock:
            self._cache.clear()

    def __enter__(self) -> DirectVault:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def maintain(self) -> float:
        """One round of upkeep (what the background thread runs): renew the token and
        the leases that are due, re-read what must be. Failures become ``secret.failed``
        events, never exceptions. Returns the seconds until the next round is due."""
        now = time.monotonic()
        with self._lock:
            if self._session is not None and self._token_renew_at is not None \
                    and now >= self._token_renew_at:
                self._renew_token()
            for (mount, path), entry in list(self._cache.items()):
                if now < entry.renew_at:
                    continue
                try:
                    if not entry.kv and entry.renewable and entry.lease_id:
                        self._renew(mount, path, entry)
                    else:
                        self._read(mount, path, "refresh" if entry.kv else "lease_ending")
                except VaultError:
                    pass  # reported as an event; the entry is gone: never served stale
            due = [e.renew_at for e in self._cache.values()]
            due += [e.expires - _margin(e) for e in self._cache.values() if not e.kv]
            if self._token_renew_at is not None:
                due.append(self._token_renew_at)
        wait = min(due, default=now + self.refresh_interval) - time.monotonic()
        return max(_MIN_WAIT, min(wait, self.refresh_interval))

    def _run(self) -> None:
        try:
            self._upkeep()
        except BaseException as exc:  # not an Exception: the thread ends; say so
            if not self._closed:
                log.error("magcfg: Direct-Vault upkeep stopped: %s; leases and the login "
                          "token are no longer renewed in the background",
                          type(exc).__name__)

    def _upkeep(self) -> None:
        while not self._closed:
            # Cleared before the round: a secret read (or a login) meanwhile, with a
            # deadline sooner than the one computed, wakes the thread at once.
            self._wake.clear()
            try:
                wait = self.maintain()
            except Exception as exc:  # upkeep must not die of a bug in a callback
                log.error("magcfg: Direct-Vault upkeep failed: %s", type(exc).__name__)
                wait = min(self.refresh_interval, 5.0)
            self._wake.wait(wait)

    # ---------------------------------------------------------------- server

    def _client(self) -> VaultSession:
        if self._session is None:
            self._login()
        assert self._session is not None
        return self._session

    def _login(self) -> None:
        session = VaultSession(self.config)
        session.login()
        ttl, renewable = session.token_ttl()
        self._session = session
        self._token_ttl = ttl
        # A token that can be renewed is renewed at two thirds of its TTL; one that
        # cannot (or never expires) is used until the server refuses it, then (AppRole,
        # Kubernetes) a new login is made.
        self._token_renew_at = (time.monotonic() + ttl * 2 / 3
                                if ttl > 0 and (renewable or self.config.auth != "token")
                                else None)
        self._wake.set()

    def _renew_token(self) -> None:
        session = self._session
        assert session is not None
        try:
            if self.config.auth != "token" and self._token_ttl <= 0:
                raise VaultError(_problem("the login token cannot be renewed"))
            ttl = session.renew_token()
            if ttl < max(2, self._token_ttl // 3) and self.config.auth != "token":
                raise VaultError(_problem("the login token reached its max TTL"))
            self._token_renew_at = time.monotonic() + ttl * 2 / 3 if ttl > 0 else None
            self._emit(SECRET_RENEWED, {"reference": f"auth/{self.config.auth}",
                                        "lease_duration": ttl})
        except VaultError as exc:
            if self.config.auth == "token":
                self._token_renew_at = None
                self._failed("auth", "token", "renew", exc)
                return
            try:
                self._login()
            except VaultError as again:
                self._session = None
                self._failed("auth", self.config.auth, "login", again)

    def _fetch(self, mount: str, path: str) -> Leased | tuple[dict[str, Any], int | None]:
        """Read once from the server: a KV v2 read or a logical (leased) one."""
        session = self._client()
        if self._is_kv(session, mount):
            found = session.read_kv(mount, path)
            if found.status == "denied":
                raise session.denied(f"{mount}/data/{path}")
            if found.status != "ok":
                raise DirectVaultError(_problem(f"{_where(mount, path)}: {found.describe()}"))
            return dict(found.data), found.version
        return session.read(f"{mount}/{path}")

    def _is_kv(self, session: VaultSession, mount: str) -> bool:
        known = self._kv_mounts.get(mount)
        if known is None:
            if self._fixed_mounts:
                return False
            kind = session.mount_kind(mount)
            # A mount the server does not describe is taken for KV v2, what the
            # reference form stands for.
            known = kind is None or kind == ("kv", "2")
            self._kv_mounts[mount] = known
        return known

    def _read(self, mount: str, path: str, reason: str) -> _Entry:
        """Read ``mount/path`` and cache it; a refused token is replaced by a new
        login (AppRole, Kubernetes) once. Raises :class:`VaultError`."""
        try:
            try:
                found = self._fetch(mount, path)
            except VaultTokenRefused:
                if self.config.auth == "token" or self._session is None:
                    raise
                self._session = None  # revoked or expired login token: log in again
                found = self._fetch(mount, path)
        except VaultError as exc:
            if reason != "read":
                self._cache.pop((mount, path), None)
            self._failed(mount, path, reason, exc)
            if isinstance(exc, DirectVaultError):
                raise
            # The same class (VaultDenied, VaultTokenRefused, ...), naming the reference.
            raise type(exc)(_problem(f"{_where(mount, path)}: {_first(exc)}")) from None
        now = time.monotonic()
        old = self._cache.get((mount, path))
        if isinstance(found, Leased):
            duration = found.lease_duration
            entry = _Entry(dict(found.data), False, None, now,
                           now + duration if duration else now + self.refresh_interval,
                           now + (duration * 2 / 3 if duration else self.refresh_interval),
                           found.lease_id, duration, found.renewable)
        else:
            data, version = found
            entry = _Entry(data, True, version, now, float("inf"), now + self.refresh_interval)
        self._cache[mount, path] = entry
        self._wake.set()  # the upkeep thread recomputes its next deadline
        self._remember(entry)
        if old is not None and (old.data != entry.data or old.version != entry.version):
            log.info("magcfg: Direct-Vault secret %s changed (%s)", _where(mount, path), reason)
            self._emit(SECRET_ROTATED, {"reference": _where(mount, path),
                                        "version": entry.version, "reason": reason})
        return entry

    def _remember(self, entry: _Entry) -> None:
        """Keep ``entry``'s values for masking: every current one, and the last
        ``_KEEP_REPLACED`` replaced ones (an error may still quote an old password)."""
        for text in _maskable(entry):
            self._seen.pop(text, None)
            self._seen[text] = None
        if len(self._seen) > 2 * _KEEP_REPLACED:
            current = {t for e in self._cache.values() for t in _maskable(e)}
            old = [v for v in self._seen if v not in current][-_KEEP_REPLACED:]
            self._seen = dict.fromkeys([*old, *current])

    def _renew(self, mount: str, path: str, entry: _Entry) -> None:
        try:
            duration = self._client().renew_lease(entry.lease_id, entry.lease_duration)
        except VaultError as exc:
            self._failed(mount, path, "renew", exc)
            self._read(mount, path, "renew_failed")
            return
        now = time.monotonic()
        if duration < max(2, entry.lease_duration // 3):
            # Near its max TTL: the lease cannot be stretched, take new credentials.
            self._read(mount, path, "lease_ending")
            return
        entry.expires = now + duration
        entry.renew_at = now + duration * 2 / 3
        self._emit(SECRET_RENEWED, {"reference": _where(mount, path),
                                    "lease_duration": duration})

    # ---------------------------------------------------------------- events

    def _failed(self, mount: str, path: str, stage: str, exc: VaultError) -> None:
        message = _first(exc)
        log.warning("magcfg: Direct-Vault %s of %s failed: %s", stage, _where(mount, path),
                    message)
        self._emit(SECRET_FAILED, {"reference": _where(mount, path), "stage": stage,
                                   "error": message})

    def _emit(self, kind: str, data: dict[str, Any]) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(kind, data)
        except BaseException as exc:  # a callback's SystemExit must not end the upkeep
            if passes_on(exc):
                raise
            log.error("magcfg: Direct-Vault event sink failed: %s", type(exc).__name__)


def _where(mount: str, path: str) -> str:
    return f"vault+direct://{mount}/{path}"


def _first(exc: VaultError) -> str:
    return "; ".join(d.message for d in exc.diagnostics)


def _maskable(entry: _Entry) -> list[str]:
    """The strings of ``entry`` worth masking before they are asked for: not numbers or
    flags (``ttl: 3600``), nor strings so short that masking them would garble every
    event (``"1"``); a value :meth:`DirectVault.value` hands out is masked regardless."""
    return [v for v in entry.data.values() if isinstance(v, str) and len(v) >= 4]


def _margin(entry: _Entry) -> float:
    """How long before its lease ends a leased value is no longer served."""
    return min(2.0, entry.lease_duration / 10) if not entry.kv else 0.0

