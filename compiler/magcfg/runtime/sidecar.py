"""``magcfg watch``: the kernel as a sidecar for applications that are not Python.

The sidecar runs a :class:`~magcfg.runtime.Kernel` on the delivered artifact (e.g. a
ConfigMap volume), publishes every accepted config into an output directory with the
kubelet's ``..data`` symlink swap (:mod:`.publish`), then runs a command or signals the
application. Each event is one JSON line on stdout; diagnostics go to stderr.

A publish that fails (disk full, read-only volume) rejects the new config, so the kernel
rolls back and the output keeps the previous version. If the kernel's watcher dies
(``config.watch_failed``), the sidecar exits 1 so that its supervisor restarts it
rather than leave it serving a config that no longer follows deploys.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..errors import no_new_task
from .events import (
    LOADED,
    PUBLISHED,
    RELOADED,
    WATCH_FAILED,
    WATCH_SOURCE,
    ConfigRejected,
    Event,
    log,
    make_event,
)
from .kernel import Kernel, KernelStartError
from .publish import failure, publish, recover

MAX_PID = 4194304
"""Linux's PID_MAX_LIMIT: no process id is higher."""


def parse_signal(spec: str) -> tuple[int, signal.Signals]:
    """``PID:SIG`` (``1234:HUP``, ``1234:SIGUSR1``, ``1234:10``) -> (pid, signal).

    ``ValueError`` with the message to show for anything else, checked before the
    sidecar serves: a pid of 0 (the sidecar's own process group) or beyond
    :data:`MAX_PID`, an unknown signal."""
    pid_text, sep, sig_text = spec.partition(":")
    pid_text = pid_text.strip()
    if not sep or not (pid_text.isascii() and pid_text.isdigit()) or not sig_text.strip():
        raise ValueError(f"--signal {spec!r}: expected PID:SIGNAL, e.g. 1234:HUP")
    if len(pid_text) > len(str(MAX_PID)) or not 1 <= int(pid_text) <= MAX_PID:
        raise ValueError(f"--signal {spec!r}: the process id must be from 1 to {MAX_PID}")
    name = sig_text.strip().upper()
    try:
        sig = signal.Signals(int(name)) if name.isascii() and name.isdigit() else \
            signal.Signals[name if name.startswith("SIG") else f"SIG{name}"]
    except (KeyError, ValueError, OverflowError):
        raise ValueError(f"--signal {spec!r}: unknown signal {sig_text.strip()!r}") from None
    return int(pid_text), sig


def parse_exec(command: str) -> list[str]:
    """The argv of ``--exec COMMAND`` (split like a shell, run without one).

    ``ValueError`` with the message to show if it cannot be split (an unterminated
    quote), is empty, or names a program that is not there: checked before the sidecar
    serves, not at the first publish."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise ValueError(f"--exec {command!r}: cannot split it into words ({exc})") from None
    if not argv:
        raise ValueError("--exec is empty: give the command to run after each publish")
    if shutil.which(argv[0]) is None:
        raise ValueError(f"--exec {command!r}: {argv[0]!r} is not an executable file"
                         + ("" if "/" in argv[0] else " on PATH"))
    return argv


class _Signals:
    """SIGTERM, SIGINT and SIGHUP for the sidecar on the main thread: each handler only
    sets a flag and writes a byte to a pipe, and a thread of its own does the work.

    A handler runs on the main thread between any two of its bytecodes, in the middle
    of a ``threading.Event``'s own (not reentrant) lock included: one that takes a lock
    (``Event.set()``, starting a thread) waits there on the main thread for ever, and
    each further signal nests another handler waiting the same way. A byte written to
    a pipe takes no lock."""

    _SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

    def __init__(self, on_stop: Callable[[], None], on_recheck: Callable[[], None]) -> None:
        self._on_stop = on_stop
        self._on_recheck = on_recheck
        self._stopping = False
        self._rechecking = False
        self._read, self._write = os.pipe()
        # Never blocks a handler: a full pipe holds wake-ups enough, and the flags say what.
        os.set_blocking(self._write, False)
        self._previous = {sig: signal.getsignal(sig) for sig in self._SIGNALS}
        self._thread = threading.Thread(target=self._run, name="magcfg-signals", daemon=True)
        self._thread.start()
        for sig in self._SIGNALS:
            signal.signal(sig, self._caught)
        # `magcfg watch` holds these three from its first line (magcfg.cli): one sent
        # meanwhile is delivered here, to the handler. Threads started past this line,
        # and the commands they run, inherit the mask unblocked.
        self._held = signal.pthread_sigmask(signal.SIG_UNBLOCK, self._SIGNALS) & set(
            self._SIGNALS)

    def _caught(self, signum: int, frame: object) -> None:
        if signum == signal.SIGHUP:
            self._rechecking = True
        else:
            self._stopping = True
        with contextlib.suppress(OSError):
            os.write(self._write, b"\0")

    def _run(self) -> None:
        try:
            while os.read(self._read, 4096):
                # The flags are read after the bytes: a signal caught meanwhile writes
                # another byte, and is seen at the next read at the latest.
                if self._rechecking:
                    self._rechecking = False
                    self._call(self._on_recheck)
                if self._stopping:
                    self._stopping = False
                    self._call(self._on_stop)
        finally:
            os.close(self._read)

    @staticmethod
    def _call(work: Callable[[], None]) -> None:
        # The thread outlives what fails: a later SIGTERM must still be handled.
        try:
            work()
        except Exception as exc:
            log.error("magcfg: handling a signal failed: %s", type(exc).__name__)

    def close(self) -> None:
        """Put the previous signal mask and handlers back, then end the thread (it
        finishes a stop in progress first)."""
        signal.pthread_sigmask(signal.SIG_BLOCK, self._held)
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        os.close(self._write)


class _Line:
    """One event line on its way to stdout; ``done`` once written, or failed."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.done = threading.Event()
        self.error: Exception | None = None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]  # a pipe may take part of it


@dataclass
class SidecarOptions:
    """What ``magcfg watch`` was asked to do."""

    artifact: Path | str
    """A directory, or ``oci://REGISTRY/REPO:TAG`` (a string) to follow a registry tag."""
    public_keys: list[Path]
    out: Path
    environment: str
    exec_command: str | None = None
    signal_target: tuple[int, signal.Signals] | None = None
    state_dir: Path | None = None
    schema: Path | None = None
    allow_rollback: bool = False
    poll_interval: float = 5.0
    audit_log: Path | None = None
    metrics_port: int | None = None
    insecure_registry: bool = False
    registry_interval: float = 30.0
    registry_timeout: float = 120.0
    extra: dict[str, Any] = field(default_factory=dict)


class Sidecar:
    """Publishes the kernel's accepted configs and notifies the application."""

    def __init__(self, options: SidecarOptions, stdout: IO[str] | None = None) -> None:
        self.options = options
        self.stdout = stdout if stdout is not None else sys.stdout
        self._exec_argv = parse_exec(options.exec_command) if options.exec_command else None
        self._print_lock = threading.Lock()
        # Event lines are written by a thread of their own: see emit(). None ends it.
        self._lines: queue.SimpleQueue[_Line | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._stalled = False
        self._changed = False
        self._stop = threading.Event()
        self._recheck = threading.Event()
        # The --exec command running, if one is: a stop ends it rather than wait for it.
        self._child: subprocess.Popen[bytes] | None = None
        self._child_lock = threading.Lock()
        self.start_error: str | None = None
        self.watch_error: str | None = None
        self._signals: _Signals | None = None
        registry = None
        if options.metrics_port is not None:
            try:
                from prometheus_client import CollectorRegistry
            except ImportError:
                raise RuntimeError("--metrics-port needs the prometheus-client package: "
                                   "pip install 'magcfg[metrics]'") from None
            registry = CollectorRegistry()
        self.kernel = Kernel(options.artifact, [*options.public_keys], options.state_dir,
                             environment=options.environment, schema=options.schema,
                             allow_rollback=options.allow_rollback,
                             poll_interval=options.poll_interval, audit_log=options.audit_log,
                             metrics=registry, source=WATCH_SOURCE,
                             insecure_registry=options.insecure_registry,
                             registry_interval=options.registry_interval,
                             registry_timeout=options.registry_timeout, **options.extra)
        self.kernel.subscribe(LOADED, self._publish)
        self.kernel.subscribe(RELOADED, self._publish)
        self.kernel.subscribe("*", self._print_and_notify)

    def _publish(self, event: Event) -> None:
        snapshot = self.kernel.snapshot
        files = {"manifest.json": snapshot.manifest_bytes,
                 "manifest.json.sig": snapshot.signature, **snapshot.files}
        try:
            self._changed = publish(self.options.out, files)
        except OSError as exc:
            self._changed = False
            if event["type"] == RELOADED:
                raise ConfigRejected(failure(self.options.out, exc)) from None
            self.start_error = failure(self.options.out, exc)

    def _print_and_notify(self, event: Event) -> None:
        if event["type"] == WATCH_FAILED:
            # Before the line is printed: a stdout that fails (a log collector gone)
            # must not keep a sidecar that follows no deploys running.
            self.watch_error = str(event["data"]["error"])
            self._stop.set()
        try:
            self.emit(event)
        finally:
            # The application is told of a publish whether or not the line was printed.
            if event["type"] in (LOADED, RELOADED) and self._changed:
                self._changed = False
                self.emit(make_event(PUBLISHED, event["subject"], {
                    "version": event["data"]["version"], "out": str(self.options.out),
                    **self._notify()}, WATCH_SOURCE))

    def _notify(self) -> dict[str, Any]:
        # Whatever happens, the outcome goes into config.published: never raise here.
        if self._exec_argv is not None:
            try:
                code = self._exec(self._exec_argv)
            except (OSError, ValueError, subprocess.SubprocessError) as exc:
                return {"exec": {"ok": False, "error": type(exc).__name__}}
            return {"exec": {"ok": code == 0, "exit_code": code}}
        if self.options.signal_target is not None:
            pid, sig = self.options.signal_target
            try:
                os.kill(pid, sig)
            except (OSError, OverflowError) as exc:
                return {"signal": {"ok": False, "pid": pid, "signal": sig.name,
                                   "error": getattr(exc, "strerror", None)
                                   or type(exc).__name__}}
            return {"signal": {"ok": True, "pid": pid, "signal": sig.name}}
        return {}

    def _exec(self, argv: list[str]) -> int:
        """Run the --exec command for at most 300 s, or until the sidecar stops; its exit
        code (negative: the signal that ended it)."""
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=sys.stderr,
                                 stderr=sys.stderr,
                                 env={**os.environ, "MAGCFG_VERSION": str(self.kernel.version),
                                      "MAGCFG_CONFIG_DIR": str(self.options.out)})
        with self._child_lock:
            self._child = child
            stopping = self._stop.is_set()
        try:
            if stopping:
                child.terminate()
            try:
                return child.wait(timeout=300)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
                raise
        finally:
            with self._child_lock:
                self._child = None

    def _end_exec(self) -> None:
        """End the --exec command running, if one is: SIGTERM and SIGINT end the sidecar at
        once, and the publish that ran it (at start, or on the watcher's thread, which
        stop() joins) would otherwise hold the exit for as long as the command runs."""
        with self._child_lock:
            child = self._child
        if child is not None:
            with contextlib.suppress(OSError):
                child.terminate()

    def _stopping(self) -> None:
        self._end_exec()
        self.kernel.stop()

    def emit(self, event: Event) -> None:
        """Write ``event`` as one line on stdout and wait until it is written (raising
        what the write raised), as a plain write would; but once the sidecar stops, wait
        at most a second more: a reader that stalls (a pipe nobody reads) blocks the
        write for ever, and SIGTERM would wait on it."""
        line = _Line(json.dumps(event, sort_keys=True, separators=(",", ":"),
                                default=str) + "\n")
        with self._print_lock:
            if self._writer is None:
                writer = threading.Thread(target=self._write_lines, name="magcfg-stdout",
                                          daemon=True)
                try:
                    writer.start()
                except RuntimeError as exc:
                    if not no_new_task(exc):
                        raise
                    # No thread to write with (the limit on processes reached): this one
                    # writes the line, as the writer does, the lock keeping their order.
                    self._lines.put(line)
                    self._lines.put(None)
                    self._write_lines()
                    if line.error is not None:
                        raise line.error from None
                    return
                self._writer = writer  # only a thread that runs is ever joined
        self._lines.put(line)
        while not line.done.wait(0.1):
            # Stopping: a second more for the line, none once one has not gone out.
            if self._stop.is_set() and (self._stalled or not line.done.wait(1.0)):
                self._stalled = True
                return
        if line.error is not None:
            raise line.error

    def _write_lines(self) -> None:
        # Straight to the descriptor where there is one: a write blocked in the stream's
        # buffer would hold its lock, and the CLI's flush of stdout at exit with it.
        try:
            fd: int | None = self.stdout.fileno()
        except (OSError, ValueError, AttributeError):  # a StringIO, pytest's capture
            fd = None
        else:
            with contextlib.suppress(OSError, ValueError):
                self.stdout.flush()  # anything written to the stream before, first
        while True:
            line = self._lines.get()
            if line is None:
                return
            try:
                if fd is None:
                    self.stdout.write(line.text)
                    self.stdout.flush()
                else:
                    _write_all(fd, line.text.encode())
            except Exception as exc:  # EPIPE, a closed stream: the emitter raises it
                line.error = exc
            finally:
                line.done.set()

    def _stderr(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def recheck(self) -> None:
        """Have the serving loop check the source at once (what SIGHUP does)."""
        self._recheck.set()

    def run(self, stop: threading.Event | None = None) -> int:
        """Start, then serve until SIGTERM/SIGINT (or ``stop``). Returns the exit code."""
        # The kernel is stopped on every way out, a failed start included: it may hold a
        # temporary registry mirror, and the CLI's process ends through os._exit.
        try:
            return self._serve(stop)
        finally:
            self._end_exec()
            self.kernel.stop()
            self._end_writer()
            # Once the stop's work is done: a second SIGTERM or Ctrl-C meanwhile (the
            # wait for a command or a callback that runs on) is one more stop, not the
            # default action in the middle of it.
            if self._signals is not None:
                self._signals.close()
                self._signals = None

    def _end_writer(self) -> None:
        """End the thread that writes the event lines, the kernel's last line written:
        a sidecar run in a process that goes on (an application's, a test's) leaves no
        thread behind. Waits as emit() does once stopping: one blocked on a reader that
        stalled is left to the process's exit, as its line is."""
        with self._print_lock:
            writer, self._writer = self._writer, None
        if writer is not None:
            self._lines.put(None)
            writer.join(0 if self._stalled else 1.0)

    def _serve(self, stop: threading.Event | None) -> int:
        if self.options.out.is_dir():
            try:
                recover(self.options.out)
            except OSError as exc:
                self._stderr(f"error: {failure(self.options.out, exc)}")
                return 1
        stop = stop or self._stop
        self._stop = stop
        if threading.current_thread() is threading.main_thread():
            def stopping() -> None:
                stop.set()
                self._recheck.set()  # wakes the serving loop
                # A start or a re-check waiting on the registry ends now, not at its
                # deadline: stop() ends its requests.
                self._stopping()

            # SIGHUP: re-check the source now (a retry of what failed, a poll of a
            # registry) without a restart; the serving loop below does it.
            self._signals = _Signals(stopping, self.recheck)
        if self.options.metrics_port is not None and self.kernel.metrics is not None:
            from prometheus_client import start_http_server

            try:
                start_http_server(self.options.metrics_port,
                                  registry=self.kernel.metrics.registry)
            except OSError as exc:
                self._stderr(f"error: --metrics-port {self.options.metrics_port}: "
                             f"{exc.strerror}")
                return 1
        try:
            self.kernel.start()
        except (KernelStartError, RuntimeError):  # RuntimeError: stopped before it started
            if stop.is_set():  # SIGTERM or SIGINT during the start: a stop, not a failure
                return 0
            raise
        if self.start_error is not None:
            self._stderr(f"error: {self.start_error}")
            return 1
        while not stop.is_set():
            # The signal handlers set _recheck too, so that this wakes at once.
            if self._recheck.wait(1.0) and not stop.is_set():
                self._recheck.clear()
                self.kernel.reload(trigger="signal")
        if self.watch_error is not None:
            self._stderr(f"error: {self.options.artifact}: the watcher stopped "
                         f"({self.watch_error}); exiting so that the sidecar is restarted")
            return 1
        return 0
