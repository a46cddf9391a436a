"""Prometheus metrics of the kernel (optional: ``pip install magcfg[metrics]``).

Names mirror Prometheus's own ``prometheus_config_last_reload_successful``:

- ``magcfg_config_last_reload_successful`` 1 if the last attempt was applied, else 0 (a
  version held back for a restart is not a failure: it leaves this as it was)
- ``magcfg_config_restart_pending`` 1 while a verified newer version waits for a restart
- ``magcfg_config_last_reload_success_timestamp_seconds`` when a config was last applied
- ``magcfg_config_reloads_total`` attempts on a changed artifact (applied or not)
- ``magcfg_config_reloads_failed_total{stage}`` refused attempts by pipeline stage
- ``magcfg_config_rollbacks_total`` snapshots restored after a subscriber rejected one
- ``magcfg_config_info{env,version}`` 1 for the config being served
- ``magcfg_config_source_up`` for a registry source: 0 while the registry cannot be
  polled or serves nothing loadable (``config.source_failed``), else 1
- ``magcfg_config_source_outages_total`` outages of the registry source
- ``magcfg_config_watching`` 1 while the kernel's watcher (or registry poller) runs, 0
  once it has died (``config.watch_failed``), if the kernel does not watch, or is stopped

Labels carry the environment and version only, never values.
"""

from __future__ import annotations

from typing import Any

from .events import (
    LOADED,
    RELOAD_FAILED,
    RELOADED,
    SOURCE_FAILED,
    SOURCE_RESTORED,
    WATCH_FAILED,
    Event,
)

STAGES = ("read", "verify", "version", "parse", "validate", "policy", "persist", "subscriber",
          "internal")


class KernelMetrics:
    """Keeps the metrics above up to date from the kernel's final events."""

    def __init__(self, registry: Any = None) -> None:
        try:
            import prometheus_client as prom
        except ImportError:
            raise RuntimeError("metrics need the prometheus-client package: "
                               "pip install 'magcfg[metrics]'") from None
        if registry is None:
            registry = prom.REGISTRY
        self.registry = registry
        try:
            self.successful = prom.Gauge(
                "magcfg_config_last_reload_successful",
                "Whether the last configuration reload attempt was applied.", registry=registry)
            self.success_time = prom.Gauge(
                "magcfg_config_last_reload_success_timestamp_seconds",
                "Timestamp of the last applied configuration.", registry=registry)
            self.reloads = prom.Counter(
                "magcfg_config_reloads", "Reload attempts on a changed artifact.",
                registry=registry)
            self.failed = prom.Counter(
                "magcfg_config_reloads_failed", "Refused reload attempts, by pipeline stage.",
                ["stage"], registry=registry)
            self.rollbacks = prom.Counter(
                "magcfg_config_rollbacks",
                "Snapshots restored because a subscriber rejected the new config.",
                registry=registry)
            self.info = prom.Gauge(
                "magcfg_config_info", "The configuration being served.", ["env", "version"],
                registry=registry)
            self.restart_pending = prom.Gauge(
                "magcfg_config_restart_pending",
                "Whether a verified newer version waits for a process restart (it changes "
                "restart-only keys).", registry=registry)
            self.source_up = prom.Gauge(
                "magcfg_config_source_up",
                "Whether the registry the config comes from answers with a loadable "
                "artifact (1 for a directory source).", registry=registry)
            self.source_outages = prom.Counter(
                "magcfg_config_source_outages",
                "Times the registry source stopped answering with a loadable artifact.",
                registry=registry)
            self.watch_up = prom.Gauge(
                "magcfg_config_watching",
                "Whether changes of the artifact directory (or registry tag) are watched "
                "(0: the watcher died, or the kernel does not watch).", registry=registry)
        except ValueError as exc:  # the names are registered already
            raise RuntimeError(f"{exc}: each Kernel with metrics needs its own registry "
                               "(metrics=prometheus_client.CollectorRegistry())") from None
        for stage in STAGES:
            self.failed.labels(stage=stage)
        self.source_up.set(1)
        self._info_labels: tuple[str, str] | None = None

    def watching(self, up: bool) -> None:
        self.watch_up.set(1 if up else 0)

    def observe(self, event: Event) -> None:
        data = event["data"]
        kind = event["type"]
        if kind == WATCH_FAILED:
            self.watching(False)
        elif kind == SOURCE_FAILED:
            self.source_up.set(0)
            self.source_outages.inc()
        elif kind == SOURCE_RESTORED:
            self.source_up.set(1)
        elif kind in (LOADED, RELOADED):
            self.reloads.inc()
            self.successful.set(1)
            self.restart_pending.set(0)
            self.success_time.set_to_current_time()
            self._serve(event["subject"], data["version"])
        elif kind == RELOAD_FAILED and data["reason"] == "restart_required":
            self.reloads.inc()
            self.restart_pending.set(1)
        elif kind == RELOAD_FAILED:
            self.reloads.inc()
            self.successful.set(0)
            self.failed.labels(stage=data["stage"]).inc()
            if data.get("rolled_back"):
                self.rollbacks.inc()
            if data.get("active_version") is not None:
                self._serve(event["subject"], data["active_version"])

    def _serve(self, env: str, version: int) -> None:
        labels = (env, str(version))
        if labels != self._info_labels:
            if self._info_labels is not None:
                self.info.remove(*self._info_labels)
            self.info.labels(*labels).set(1)
            self._info_labels = labels
