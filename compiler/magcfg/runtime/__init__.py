"""magcfg's runtime kernel: serve a signed, verified config and swap in new ones safely.

    from magcfg.runtime import RELOADED, Kernel

    with Kernel("/etc/magflock", public_keys=["/etc/magcfg/magcfg.pub"],
                state_dir="/var/lib/magflock/config", environment="production") as kernel:
        port = kernel.get("maggate.port", 8080)
        kernel.subscribe(RELOADED, on_reload)  # "io.magflock.magcfg.config.reloaded"

This package imports only the standard library, ``cryptography`` (signatures) and, if
present, ``orjson``; schema validation (jsonschema-rs) and metrics (prometheus-client)
are imported only when asked for. Importing it loads a few standard modules only; what
loading and verifying a config need is imported by the first ``Kernel`` made. See
docs/runtime.md and docs/performance.md.
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
    make_event,
)
from .kernel import Kernel, KernelStartError, ReloadResult
from .snapshot import Snapshot, freeze, thaw

# The two type aliases are made of typing's Any: given when asked for, as typing is a
# quarter of this package's import time (mypy reads TYPE_CHECKING as true).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from .events import Event
    from .kernel import Validator
else:
    def __getattr__(name: str) -> object:
        if name == "Event":
            from .events import Event

            return Event
        if name == "Validator":
            from .kernel import Validator

            return Validator
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

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
