"""Python heap tuning shared by the build and the runtime kernel."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while a large config is parsed, merged or frozen.

    That allocates millions of containers, none of them in a cycle; the collector would
    re-scan them (and the rest of the heap) several times: 20-45% of a large build's
    time (docs/performance.md).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
