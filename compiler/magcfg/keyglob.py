"""Glob patterns over dotted key paths: the redaction map, ``promote --key`` and the
promotion allow-list.

Syntax: ``*`` matches within one segment, ``**`` any number of
segments, and a pattern also matches everything below what it names (``magds.pool``
covers ``magds.pool.max_size``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable


def _regex(pattern: str) -> re.Pattern[str]:
    parts = []
    for segment in pattern.split("."):
        if segment == "**":
            parts.append(r"(?:[^.]+\.)*[^.]+")
        else:
            parts.append("[^.]*".join(re.escape(s) for s in segment.split("*")))
    return re.compile(r"\.".join(parts) + r"(?:\..*)?")


class KeyGlobs:
    """A set of key globs; ``matches`` is true when any of them covers the key path."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(patterns)
        self._regexes = [_regex(p) for p in self.patterns]

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def matches(self, keypath: tuple[str, ...]) -> bool:
        dotted = ".".join(keypath)
        return any(r.fullmatch(dotted) for r in self._regexes)

    def matching(self, keypath: tuple[str, ...]) -> list[str]:
        """The patterns that cover ``keypath``."""
        dotted = ".".join(keypath)
        return [p for p, r in zip(self.patterns, self._regexes, strict=True) if r.fullmatch(dotted)]
