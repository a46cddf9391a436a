"""CloudEvents-style events on an in-process bus.

Every event is a plain JSON-serializable dict in the CloudEvents 1.0 structured form::

    {"specversion": "1.0", "id": "...", "source": "urn:magcfg:runtime",
     "type": "io.magflock.magcfg.config.reloaded",
     "subject": "production", "time": "2026-11-22T14:00:00.123456Z",
     "datacontenttype": "application/json", "data": {...}}

Subscribers run synchronously on the thread that reloads, in subscription order. A
subscriber that raises never stops the kernel or the other subscribers; only
:class:`ConfigRejected`, raised from a ``config.reloaded`` subscriber, has a meaning
(the kernel restores the previous snapshot). That holds for ``SystemExit``,
``KeyboardInterrupt`` and ``GeneratorExit`` too: raised on the watcher thread they
would end it silently, so they are counted and logged like any failure. Only on the
main thread (an application calling ``reload()``) are ``SystemExit`` and
``KeyboardInterrupt`` passed on, as Ctrl-C or ``sys.exit`` mean there.
"""

from __future__ import annotations

import math
import os
import time

# What a process pays to import magcfg.runtime, every service pays at start: typing,
# threading and copy are imported where they are first needed (mypy reads TYPE_CHECKING
# as true).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

TYPE_PREFIX = "io.magflock.magcfg."
"""Reverse-DNS prefix of every event type, as the CloudEvents spec recommends."""
LOADED = TYPE_PREFIX + "config.loaded"
RELOADED = TYPE_PREFIX + "config.reloaded"
RELOAD_FAILED = TYPE_PREFIX + "config.reload_failed"
STATE_CORRUPT = TYPE_PREFIX + "config.state_corrupt"
WATCH_FAILED = TYPE_PREFIX + "config.watch_failed"
PUBLISHED = TYPE_PREFIX + "config.published"
SOURCE_FAILED = TYPE_PREFIX + "config.source_failed"
SOURCE_RESTORED = TYPE_PREFIX + "config.source_restored"
SECRET_ROTATED = TYPE_PREFIX + "config.secret_rotated"
SECRET_RENEWED = TYPE_PREFIX + "config.secret_renewed"
SECRET_FAILED = TYPE_PREFIX + "config.secret_failed"
"""Direct-Vault (magcfg.runtime.vault): a secret read again and changed, a lease renewed,
a read, renewal or login failed."""
ALL = "*"
_TYPES_01 = (LOADED, RELOADED, RELOAD_FAILED, STATE_CORRUPT, WATCH_FAILED, PUBLISHED,
             SOURCE_FAILED, SOURCE_RESTORED)
EVENT_TYPES = (*_TYPES_01, SECRET_ROTATED, SECRET_RENEWED, SECRET_FAILED)
LEGACY_TYPES = {name.removeprefix(TYPE_PREFIX): name for name in _TYPES_01}
"""The names of 0.1 (``config.reloaded``...): ``subscribe`` still accepts them, with a
DeprecationWarning, until the release after next; events carry the new names."""
RUNTIME_SOURCE = "urn:magcfg:runtime"
WATCH_SOURCE = "urn:magcfg:watch"
"""Event sources: absolute URIs (URNs), as the spec recommends."""

if TYPE_CHECKING:
    Event = dict[str, Any]
    Subscriber = Callable[[Event], Any]
else:
    def __getattr__(name: str) -> object:
        # The type aliases, made when first asked for (annotations never evaluate them).
        if name not in ("Event", "Subscriber"):
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        from collections.abc import Callable
        from typing import Any

        event = dict[str, Any]
        globals().update(Event=event, Subscriber=Callable[[event], Any])
        return globals()[name]


class _LazyLogger:
    """``logging.getLogger("magcfg.runtime")``, imported at the first message: ``logging``
    (with ``traceback``, ``string``, ...) is a fifth of this package's import time, and
    most processes never log from here."""

    def __getattr__(self, name: str) -> Any:
        import logging

        return getattr(logging.getLogger("magcfg.runtime"), name)


log: Any = _LazyLogger()


class ConfigRejected(Exception):
    """Raised by a ``config.reloaded`` subscriber that cannot accept the new config.

    The kernel restores the previous snapshot and publishes ``config.reload_failed``
    with reason ``subscriber_rejected`` and this exception's message (which must not
    contain secret values).
    """


def passes_on(exc: BaseException) -> bool:
    """Whether a callback's ``exc`` must reach the caller rather than be contained:
    ``SystemExit`` and ``KeyboardInterrupt`` on the main thread only."""
    if not isinstance(exc, (SystemExit, KeyboardInterrupt)):
        return False
    import threading

    return threading.current_thread() is threading.main_thread()


def check_seconds(what: str, seconds: float, least: float | None) -> None:
    """A ``ValueError`` unless ``seconds`` is a finite number above 0 (or at least
    ``least``). The kernel, the directory watcher, the registry source and Direct-Vault
    check each interval with it: an infinity passes ``> 0`` and then ends a thread with
    ``OverflowError`` at its first wait, and a NaN passes a bound written as
    ``< least``."""
    fine = (isinstance(seconds, (int, float)) and not isinstance(seconds, bool)
            and math.isfinite(seconds)
            and (seconds > 0 if least is None else seconds >= least))
    if not fine:
        bound = "above 0" if least is None else f"of at least {least:g}"
        raise ValueError(f"the {what} is a finite number of seconds {bound}, not {seconds!r}")


def make_event(event_type: str, subject: str, data: dict[str, Any],
               source: str = RUNTIME_SOURCE) -> Event:
    """A CloudEvents 1.0 structured event with a fresh id and the current UTC time."""
    # time and os.urandom rather than datetime and uuid: those two imports would cost
    # more than the rest of the event bus.
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"
    return {
        "specversion": "1.0",
        "id": os.urandom(16).hex(),
        "source": source,
        "type": event_type,
        "subject": subject,
        "time": stamp,
        "datacontenttype": "application/json",
        "data": data,
    }


class EventBus:
    """Subscribers by event type (``*`` for all); publishing isolates their failures."""

    def __init__(self) -> None:
        import threading

        self._lock = threading.Lock()
        self._subscribers: dict[str, list[Subscriber]] = {}
        self.failures = 0

    def subscribe(self, event_type: str, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(event)`` for every event of ``event_type``; returns an
        unsubscribe function. A name of 0.1 (``config.reloaded``) is the same type."""
        if event_type in LEGACY_TYPES:
            import warnings

            warnings.warn(f"event type {event_type!r} is now {LEGACY_TYPES[event_type]!r}; "
                          "the old name is accepted until the release after next",
                          DeprecationWarning, stacklevel=2)
            event_type = LEGACY_TYPES[event_type]
        if event_type != ALL and event_type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {event_type!r}; "
                             f"one of {', '.join((*EVENT_TYPES, ALL))}")
        with self._lock:
            self._subscribers.setdefault(event_type, []).append(callback)

        def unsubscribe() -> None:
            with self._lock:
                callbacks = self._subscribers.get(event_type, [])
                if callback in callbacks:
                    callbacks.remove(callback)

        return unsubscribe

    def subscribers(self, event_type: str) -> list[Subscriber]:
        with self._lock:
            return [*self._subscribers.get(event_type, ()), *self._subscribers.get(ALL, ())]

    def publish(self, event: Event, *, rejectable: bool = False) -> ConfigRejected | None:
        """Deliver a copy of ``event``. With ``rejectable``, the first
        :class:`ConfigRejected` stops delivery and is returned; any other exception is
        logged and counted."""
        callbacks = self.subscribers(event["type"])
        if callbacks:
            # Subscribers may change what they are given (enrich it for their own use):
            # the publisher's event stays what the audit log, the metrics, status() and
            # a caller's result record.
            import copy

            event = copy.deepcopy(event)
        for callback in callbacks:
            try:
                callback(event)
            except ConfigRejected as exc:
                if rejectable:
                    return exc
                self._failed(callback, event, exc)
            except BaseException as exc:
                if passes_on(exc):
                    raise
                self._failed(callback, event, exc)
        return None

    def _failed(self, callback: Subscriber, event: Event, exc: BaseException) -> None:
        self.failures += 1
        # The exception type only: its message may quote config values. The callback by
        # its name, never its repr: a functools.partial's shows the arguments bound to
        # it (a password, a client holding a token).
        named = getattr(callback, "__qualname__", None) or getattr(
            getattr(callback, "func", None), "__qualname__", None)
        log.error("magcfg subscriber %s failed on %s: %s",
                  named if isinstance(named, str) else type(callback).__qualname__,
                  event["type"], type(exc).__name__)
