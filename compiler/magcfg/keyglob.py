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

TYPE_CHECKING = False  # the runtime kernel imports this module at its own import
if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["KeyGlobs", "format_keypath", "parse_keypath"]

_SPECIAL = frozenset("\\.*")
# A glob's segment (``_tokens``): ``None`` for an unescaped ``*``, a string for one
# literal character.
_Tokens = list[str | None]
_DOUBLE_STAR: _Tokens = [None, None]


def _escape(segment: str) -> str:
    if not _SPECIAL.intersection(segment):
        return segment
    # The backslash first: the others' escapes add backslashes.
    return segment.replace("\\", "\\\\").replace(".", "\\.").replace("*", "\\*")


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


def _segment_matches(tokens: _Tokens, segment: str) -> bool:
    """Whether one glob segment covers one key segment: a ``*`` matches any run of
    characters, the rest literally.

    Greedy two-pointer matching: on a mismatch only the latest ``*`` takes one more
    character, so the steps are at most ``len(tokens) * len(segment)``. (A regex with
    one quantifier per star backtracks exponentially on ``*a*a*a...b``, and the patterns
    come from a pull request.)"""
    t = s = 0
    star = -1  # the token index just after the latest star, -1 before any
    star_s = 0  # where the characters that star takes end
    while s < len(segment):
        if t < len(tokens) and tokens[t] is None:
            star, star_s = t + 1, s
            t += 1
        elif t < len(tokens) and tokens[t] == segment[s]:
            t += 1
            s += 1
        elif star >= 0:
            star_s += 1
            t, s = star, star_s
        else:
            return False
    return all(c is None for c in tokens[t:])


def _covers(pattern: list[_Tokens], keypath: tuple[str, ...]) -> bool:
    """Whether the glob (its segments) covers ``keypath`` or a key path it starts with.

    The set of key positions the pattern's segments read so far can end at, advanced
    one pattern segment at a time: at most ``len(pattern) * len(keypath)`` segment
    matches, whatever the ``**`` and ``*`` in it."""
    # The text form of the empty key path is one empty segment.
    segments = keypath or ("",)
    ends = {0}
    for tokens in pattern:
        if tokens == _DOUBLE_STAR:
            # One or more whole segments, none of them empty.
            ends, start = set(), min(ends)
            for i in range(start, len(segments)):
                if not segments[i]:
                    break
                ends.add(i + 1)
        else:
            ends = {i + 1 for i in ends
                    if i < len(segments) and _segment_matches(tokens, segments[i])}
        if not ends:
            return False
    return True


class KeyGlobs:
    """A set of key globs; ``matches`` is true when any of them covers the key path."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(patterns)
        self._tokens = [_tokens(p) for p in self.patterns]
        # The key path a pattern without wildcards names (None for a glob).
        self._named = [None if any(c is None for seg in tokens for c in seg)
                       else tuple("".join(c for c in seg if c is not None) for seg in tokens)
                       for tokens in self._tokens]

    def may_cover_below(self, top: str) -> bool:
        """Whether any glob can cover a key path that starts with the segment ``top``
        (a file that sets only other top-level keys need not be read)."""
        return any(bool(top) if tokens[0] == _DOUBLE_STAR else _segment_matches(tokens[0], top)
                   for tokens in self._tokens)

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def matches(self, keypath: tuple[str, ...]) -> bool:
        return any(_covers(tokens, keypath) for tokens in self._tokens)

    def matching(self, keypath: tuple[str, ...]) -> list[str]:
        """The patterns that cover ``keypath``."""
        return [p for p, tokens in zip(self.patterns, self._tokens, strict=True)
                if _covers(tokens, keypath)]

    def naming(self, keypath: tuple[str, ...]) -> list[str]:
        """The patterns that name exactly ``keypath``: no wildcard, not a parent of it."""
        return [p for p, named in zip(self.patterns, self._named, strict=True)
                if named == keypath]
