"""Key paths as text, and glob patterns over key paths: the redaction map, the manifest's
``secret_keys``/``hot_keys``/``restart_keys``, ``promote --key`` and the promotion
allow-list.

A key path is a tuple of segments everywhere in magcfg; text is only how it crosses a
boundary (a project file, a manifest, a message). The text form joins the segments
with ``.`` and escapes, inside a segment, ``\\``, ``.`` and ``*`` with a backslash: the
key ``"eu.west"`` under ``apps`` is ``apps.eu\\.west``. :func:`format_keypath` and
:func:`parse_keypath` are exact inverses.

Glob syntax (the same text form): ``*`` matches within one segment, a segment that is
exactly ``**`` matches any number (one or more) of segments, ``\\*`` is a literal star,
and a pattern also matches everything below what it names (``magds.pool`` covers
``magds.pool.max_size``). Matching works on the segments, so ``apps.*.dsn`` covers the
``dsn`` of the key ``eu.west``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["KeyGlobs", "format_keypath", "parse_keypath"]

_ESCAPE = re.compile(r"([\\.*])")
_SPECIAL = frozenset("\\.*")
# One character of a segment in the text form: anything but a separator or a
# backslash, or a backslash and the character it escapes.
_CHAR = r"(?:[^.\\]|\\.)"


def _escape(segment: str) -> str:
    return _ESCAPE.sub(r"\\\1", segment) if _SPECIAL.intersection(segment) else segment


def format_keypath(keypath: Iterable[str], wildcard: str | None = None) -> str:
    """The text form of ``keypath``; a segment equal to ``wildcard`` (if given) is written
    as a bare ``*`` glob (the schema index's any-key marker)."""
    return ".".join("*" if segment == wildcard else _escape(segment) for segment in keypath)


def _tokens(text: str) -> list[list[str | None]]:
    """Segments of a text key path or glob; in each, ``None`` stands for an unescaped
    ``*`` and a string for literal characters."""
    segments: list[list[str | None]] = [[]]
    chars = iter(text)
    for char in chars:
        if char == "\\":
            segments[-1].append(next(chars, "\\"))  # a trailing backslash is itself
        elif char == ".":
            segments.append([])
        elif char == "*":
            segments[-1].append(None)
        else:
            segments[-1].append(char)
    return segments


def parse_keypath(text: str) -> tuple[str, ...]:
    """The key path whose text form is ``text`` (an unescaped ``*`` is kept as ``*``)."""
    return tuple("".join("*" if c is None else c for c in segment)
                 for segment in _tokens(text))


def _segment(tokens: list[str | None]) -> str:
    """The regex of one segment of a glob (``_tokens``): a ``*`` within the segment, the
    rest literal; a segment that is exactly ``**``, one or more whole segments."""
    if tokens == [None, None]:
        return rf"(?:{_CHAR}+\.)*{_CHAR}+"
    return "".join(f"{_CHAR}*" if c is None else re.escape(_escape(c)) for c in tokens)


def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(r"\.".join(map(_segment, _tokens(pattern))) + r"(?:\..*)?", re.DOTALL)


def _head_regex(pattern: str) -> re.Pattern[str]:
    """What the first segment of a key path must be for ``pattern`` to cover it."""
    return re.compile(_segment(_tokens(pattern)[0]), re.DOTALL)


class KeyGlobs:
    """A set of key globs; ``matches`` is true when any of them covers the key path."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(patterns)
        self._regexes = [_regex(p) for p in self.patterns]
        self._heads = [_head_regex(p) for p in self.patterns]
        # The key path a pattern without wildcards names (None for a glob).
        self._named = [None if any(c is None for seg in tokens for c in seg)
                       else tuple("".join(c for c in seg if c is not None) for seg in tokens)
                       for tokens in map(_tokens, self.patterns)]

    def may_cover_below(self, top: str) -> bool:
        """Whether any glob can cover a key path that starts with the segment ``top``
        (a file that sets only other top-level keys need not be read)."""
        text = _escape(top)
        return any(r.fullmatch(text) for r in self._heads)

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def matches(self, keypath: tuple[str, ...]) -> bool:
        if not self._regexes:
            return False  # no globs: nothing to format (a diff asks for every change)
        # Matched against the escaped text form: a dot inside a segment is "\." there,
        # which no separator in a pattern matches.
        text = format_keypath(keypath)
        return any(r.fullmatch(text) for r in self._regexes)

    def matching(self, keypath: tuple[str, ...]) -> list[str]:
        """The patterns that cover ``keypath``."""
        text = format_keypath(keypath)
        return [p for p, r in zip(self.patterns, self._regexes, strict=True) if r.fullmatch(text)]

    def naming(self, keypath: tuple[str, ...]) -> list[str]:
        """The patterns that name exactly ``keypath``: no wildcard, not a parent of it."""
        return [p for p, named in zip(self.patterns, self._named, strict=True)
                if named == keypath]
