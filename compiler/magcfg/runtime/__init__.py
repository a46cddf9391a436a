"""magcfg's runtime kernel: serve a signed, verified config and swap in new ones safely.

    from magcfg.runtime import RELOADED, Kernel

    with Kernel("/etc/magflock", public_keys=["/etc/magcfg/magcfg.pub"],
                state_dir="/var/lib/magflock/config", environment="production") as kernel:
        port = kernel.get("maggate.port", 8080)
        kernel.subscribe(RELOADED, on_reload)  # "io.magflock.magcfg.config.reloaded"

This package imports only the standard library, ``cryptography`` (signatures) and, if
present, ``orjson``; schema validation (jsonschema-rs) and metrics (prometheus-client)
are imported only when asked for. See docs/runtime.md.
"""

from __future__ import annotations

from .events import (
    LOADED,
    PUBLISHED,
    RELOAD_FAILED,
    RELOADED,
    SECRET_FAILED,
    SECRET_RENEWED,
    SECRET_ROTATED,
    STATE_CORRUPT,
    WATCH_FAILED,
    ConfigRejected,
    Event,
    make_event,
)
from .kernel import Kernel, KernelStartError, ReloadResult, Validator
from .snapshot import Snapshot, freeze, thaw

__all__ = [
    "LOADED",
    "PUBLISHED",
    "RELOADED",
    "RELOAD_FAILED",
    "SECRET_FAILED",
    "SECRET_RENEWED",
    "SECRET_ROTATED",
    "STATE_CORRUPT",
    "WATCH_FAILED",
    "ConfigRejected",
    "Event",
    "Kernel",
    "KernelStartError",
    "ReloadResult",
    "Snapshot",
    "Validator",
    "freeze",
    "make_event",
    "thaw",
]
