"""Where something is written in a JSON file: the line of a JSON Pointer, or of the
first place its nesting passes a limit (for errors about the project's JSON Schema).

The JSON counterpart of ``syntax/locate.py`` (YAML and CUE layers), kept here because
the runtime kernel loads schemas and must not import ``syntax/``. Only errors need
lines, so they are found on demand from the text; the values passed over on the way to
a pointer are skipped by ``json``'s C scanner, not walked in Python.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

__all__ = ["nesting_line", "pointer_line"]

_SPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()
# A string (escapes included) or a bracket: the tokens that decide nesting.
_NESTING_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


def _line(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _skip(text: str, pos: int) -> int:
    match = _SPACE.match(text, pos)
    assert match is not None  # the pattern matches the empty string
    return match.end()


def _member(text: str, pos: int, name: str) -> tuple[int, int] | None:
    """(start of the key, start of its value) of member ``name`` of the object at
    ``pos``; None when the object has no such member."""
    pos = _skip(text, pos + 1)
    while text[pos] == '"':
        key, after = _DECODER.raw_decode(text, pos)
        value = _skip(text, _skip(text, after) + 1)  # past the ':'
        if key == name:
            return pos, value
        _, end = _DECODER.raw_decode(text, value)
        end = _skip(text, end)
        if text[end] != ",":
            return None
        pos = _skip(text, end + 1)
    return None


def _element(text: str, pos: int, index: int) -> int | None:
    """Start of element ``index`` of the array at ``pos``; None when it is shorter."""
    pos = _skip(text, pos + 1)
    if text[pos] == "]":
        return None
    for _ in range(index):
        _, end = _DECODER.raw_decode(text, pos)
        end = _skip(text, end)
        if text[end] != ",":
            return None
        pos = _skip(text, end + 1)
    return pos


def pointer_line(text: str, pointer: Sequence[str | int]) -> int | None:
    """Line (1-based) of the member or element that ``pointer`` (unescaped parts) names,
    or of its deepest ancestor that exists; None when the text is not JSON."""
    try:
        pos = _skip(text, 0)
        found = pos
        for part in pointer:
            if text[pos] == "{":
                member = _member(text, pos, str(part))
                if member is None:
                    break
                found, pos = member
            elif text[pos] == "[" and str(part).isdigit():
                element = _element(text, pos, int(part))
                if element is None:
                    break
                found = pos = element
            else:
                break
    except (ValueError, IndexError, RecursionError):
        return None
    return _line(text, found)


def nesting_line(text: str, limit: int) -> int | None:
    """Line (1-based) of the first bracket nested deeper than ``limit`` levels; None when
    nothing is."""
    depth = 0
    for match in _NESTING_TOKEN.finditer(text):
        token = match.group()
        if token == "{" or token == "[":
            depth += 1
            if depth > limit:
                return _line(text, match.start())
        elif token == "}" or token == "]":
            depth -= 1
    return None
