"""``magcfg watch``: the kernel as a sidecar for applications that are not Python.

The sidecar runs a :class:`~magcfg.runtime.Kernel` on the delivered artifact (e.g. a
ConfigMap volume), publishes every accepted config into an output directory with the
kubelet's ``..data`` symlink swap (:mod:`.publish`), then runs a command or signals the
application. Each event is one JSON line on stdout; diagnostics go to stderr.

A publish that fails (disk full, read-only volume) rejects the new config, so the kernel
rolls back and the output keeps the previous version.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .events import LOADED, PUBLISHED, RELOADED, ConfigRejected, Event, make_event
from .kernel import Kernel
from .publish import publish, recover


def parse_signal(spec: str) -> tuple[int, signal.Signals]:
    """``PID:SIG`` (``1234:HUP``, ``1234:SIGUSR1``, ``1234:10``) -> (pid, signal)."""
    pid_text, sep, sig_text = spec.partition(":")
    if not sep or not pid_text.strip().isdigit() or not sig_text.strip():
        raise ValueError(f"--signal {spec!r}: expected PID:SIGNAL, e.g. 1234:HUP")
    name = sig_text.strip().upper()
    try:
        sig = signal.Signals(int(name)) if name.isdigit() else signal.Signals[
            name if name.startswith("SIG") else f"SIG{name}"]
    except (KeyError, ValueError):
        raise ValueError(f"--signal {spec!r}: unknown signal {sig_text!r}") from None
    return int(pid_text), sig


@dataclass
class SidecarOptions:
    """What ``magcfg watch`` was asked to do."""

    artifact: Path
    public_keys: list[Path]
    out: Path
    exec_command: str | None = None
    signal_target: tuple[int, signal.Signals] | None = None
    state_dir: Path | None = None
    schema: Path | None = None
    allow_rollback: bool = False
    poll_interval: float = 5.0
    audit_log: Path | None = None
    metrics_port: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Sidecar:
    """Publishes the kernel's accepted configs and notifies the application."""

    def __init__(self, options: SidecarOptions, stdout: IO[str] | None = None) -> None:
        self.options = options
        self.stdout = stdout if stdout is not None else sys.stdout
        self._print_lock = threading.Lock()
        self._changed = False
        self.start_error: str | None = None
        registry = None
        if options.metrics_port is not None:
            try:
                from prometheus_client import CollectorRegistry
            except ImportError:
                raise RuntimeError("--metrics-port needs the prometheus-client package: "
                                   "pip install 'magcfg[metrics]'") from None
            registry = CollectorRegistry()
        self.kernel = Kernel(options.artifact, [*options.public_keys], options.state_dir,
                             schema=options.schema, allow_rollback=options.allow_rollback,
                             poll_interval=options.poll_interval, audit_log=options.audit_log,
                             metrics=registry, source="magcfg/watch", **options.extra)
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
                raise ConfigRejected(f"cannot publish into {self.options.out}: "
                                     f"{exc.strerror}") from None
            self.start_error = f"cannot publish into {self.options.out}: {exc.strerror}"

    def _print_and_notify(self, event: Event) -> None:
        self.emit(event)
        if event["type"] in (LOADED, RELOADED) and self._changed:
            self._changed = False
            self.emit(make_event(PUBLISHED, event["subject"], {
                "version": event["data"]["version"], "out": str(self.options.out),
                **self._notify()}, "magcfg/watch"))

    def _notify(self) -> dict[str, Any]:
        if self.options.exec_command:
            try:
                result = subprocess.run(shlex.split(self.options.exec_command),
                                        stdin=subprocess.DEVNULL, stdout=sys.stderr,
                                        stderr=sys.stderr, check=False, timeout=300,
                                        env={**os.environ, "MAGCFG_VERSION":
                                             str(self.kernel.version),
                                             "MAGCFG_CONFIG_DIR": str(self.options.out)})
            except (OSError, subprocess.TimeoutExpired) as exc:
                return {"exec": {"ok": False, "error": type(exc).__name__}}
            return {"exec": {"ok": result.returncode == 0, "exit_code": result.returncode}}
        if self.options.signal_target is not None:
            pid, sig = self.options.signal_target
            try:
                os.kill(pid, sig)
            except OSError as exc:
                return {"signal": {"ok": False, "pid": pid, "signal": sig.name,
                                   "error": exc.strerror}}
            return {"signal": {"ok": True, "pid": pid, "signal": sig.name}}
        return {}

    def emit(self, event: Event) -> None:
        line = json.dumps(event, sort_keys=True, separators=(",", ":"), default=str)
        with self._print_lock:
            self.stdout.write(line + "\n")
            self.stdout.flush()

    def _stderr(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def run(self, stop: threading.Event | None = None) -> int:
        """Start, then serve until SIGTERM/SIGINT (or ``stop``). Returns the exit code."""
        if self.options.out.is_dir():
            recover(self.options.out)
        stop = stop or threading.Event()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stop.set())
        if self.options.metrics_port is not None and self.kernel.metrics is not None:
            from prometheus_client import start_http_server

            try:
                start_http_server(self.options.metrics_port,
                                  registry=self.kernel.metrics.registry)
            except OSError as exc:
                self._stderr(f"error: --metrics-port {self.options.metrics_port}: "
                             f"{exc.strerror}")
                return 1
        self.kernel.start()
        if self.start_error is not None:
            self.kernel.stop()
            self._stderr(f"error: {self.start_error}")
            return 1
        try:
            while not stop.wait(1.0):
                pass
        finally:
            self.kernel.stop()
        return 0
