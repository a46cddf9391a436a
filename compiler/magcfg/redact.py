"""Stage 4, redact: the one redactor used by every output that shows values.

A key is secret when the schema marks it (or an ancestor) ``x-magcfg-secret`` or when
its dotted path matches a glob of the project's ``redact:`` list (``fnmatch`` syntax,
``*`` matches within one segment, ``**`` any number of segments). Redacted values show
as the fixed marker ``<redacted>``; callers that compare (diff, runtime events) compare
the real values first and show *that* a secret changed without showing either side.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from .schema import SchemaIndex

REDACTED = "<redacted>"


def _glob_to_regex(pattern: str) -> re.Pattern[str]:
    parts = []
    for segment in pattern.split("."):
        if segment == "**":
            parts.append(r"(?:[^.]+\.)*[^.]+")
        else:
            parts.append("[^.]*".join(re.escape(s) for s in segment.split("*")))
    return re.compile(r"\.".join(parts) + r"(?:\..*)?")


class Redactor:
    """Decides which key paths are secret and replaces their values by ``REDACTED``."""

    def __init__(self, index: SchemaIndex | None = None, patterns: Iterable[str] = ()) -> None:
        self.index = index
        self.patterns = tuple(patterns)
        self._regexes = [_glob_to_regex(p) for p in self.patterns]

    def is_secret(self, keypath: tuple[str, ...]) -> bool:
        if self.index is not None and self.index.is_secret(keypath):
            return True
        dotted = ".".join(keypath)
        return any(r.fullmatch(dotted) for r in self._regexes)

    def value(self, keypath: tuple[str, ...], value: Any) -> Any:
        """``value`` with every secret inside it (or itself) replaced by ``REDACTED``."""
        if self.is_secret(keypath):
            return REDACTED
        if isinstance(value, dict):
            return {k: self.value((*keypath, k), v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value((*keypath, str(i)), v) for i, v in enumerate(value)]
        return value

    def text(self, text: str, values: Iterable[str]) -> str:
        """``text`` with every occurrence of the given secret strings masked (for error
        messages that may quote input)."""
        for v in sorted({v for v in values if v}, key=len, reverse=True):
            text = text.replace(v, REDACTED)
        return text
