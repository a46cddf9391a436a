"""Where the cursor is in a YAML layer file: the key path, the key's span, its block.

An editor asks about a buffer that is being typed, so it is often not valid YAML (a key
without its value, a half-written line). The parser cannot answer then; the indentation
can. Lines are read top to bottom keeping the chain of open keys, the way a reader does:
block mappings and block sequences (``- item``, also at the key's own indentation), keys
plain or quoted. Flow collections are single values here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# A plain key runs to the first colon followed by a space or the end (its spaces before
# that colon left out), and stops at a comment. Its characters are read in one pass, a
# run of spaces at once and never again: a key read lazily would try the spaces before
# the colon at each of its lengths (quadratic in a long line).
_PLAIN_KEY_REST = r"""(?:[^#: \t]|[ \t]++(?!:(?:[ \t]|$))|:(?![ \t]|$))*+"""
_KEY = re.compile(r"""("(?:[^"\\]|\\.)*"|'(?:[^']|'')*'"""
                  r"""|[^\s#'"\-?:,\[\]{}]""" + _PLAIN_KEY_REST
                  + r"""|-[^\s#]""" + _PLAIN_KEY_REST + r""")[ \t]*:(?=[ \t]|$)""")
# The word before the cursor: one that no word character precedes, so that each start
# is tried once (a search from every offset of a long word would be quadratic).
_WORD_BEFORE = re.compile(r"(?<![\w.\-])[\w.\-]*$")


@dataclass(frozen=True)
class Cursor:
    """What is at a position: ``keypath`` of the key (or list item) on the line, or,
    on a line with no key, the key path a key typed here would get (``parent``)."""

    keypath: tuple[str, ...]
    parent: tuple[str, ...]
    key: str | None
    key_start: int  # columns of the key text on the line (quotes included)
    key_end: int
    in_value: bool  # after the key's colon
    prefix: str  # the word typed before the cursor


@dataclass
class _Open:
    indent: int
    segment: str
    item: bool


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")
    if len(text) >= 2 and text[0] == text[-1] == '"':
        import json

        try:
            value = json.loads(text)
        except ValueError:
            return text[1:-1]
        return value if isinstance(value, str) else text[1:-1]
    return text


def _split(line: str) -> tuple[int, str]:
    stripped = line.lstrip(" ")
    return len(line) - len(stripped), stripped.rstrip("\r")


def _skip(content: str) -> bool:
    return not content or content.startswith("#") or content in ("---", "...")


def _step(chain: list[_Open], indent: int, content: str) -> tuple[int, str]:
    """Feed one line to ``chain``; returns the indentation and content after any ``- ``
    item markers (which open list items)."""
    # An offset into the line, not a copy of its rest at each marker: a line of markers
    # ("- - - ...") would be copied once per marker.
    at = 0
    while content.startswith("- ", at) or (content.startswith("-", at) and at + 1 == len(content)):
        while chain and chain[-1].indent > indent:
            chain.pop()
        index = 0
        if chain and chain[-1].indent == indent and chain[-1].item:
            index = int(chain.pop().segment) + 1
        chain.append(_Open(indent, str(index), True))
        marker = at
        at += 1
        while at < len(content) and content[at] == " ":
            at += 1
        indent += at - marker
    return indent, content[at:]


def _close(chain: list[_Open], indent: int) -> None:
    """A key at ``indent`` ends every key and item opened at or right of it."""
    while chain and chain[-1].indent >= indent:
        chain.pop()


def cursor_at(text: str, line: int, character: int) -> Cursor:
    """The cursor at 0-based ``line`` and ``character`` of ``text``."""
    return cursors(text.split("\n"), {line: character})[line]


def cursors(lines: list[str], wanted: dict[int, int]) -> dict[int, Cursor]:
    """The cursor at each ``{line: character}`` of ``wanted``, from one pass over the
    lines: a cursor per line read from the top each time would be quadratic (quick
    fixes for every finding of a file)."""
    out = {}
    chain: list[_Open] = []
    number = 0
    for line in sorted(wanted):
        while number < min(line, len(lines)):
            indent, content = _split(lines[number])
            number += 1
            if _skip(content):
                continue
            indent, content = _step(chain, indent, content)
            m = _KEY.match(content)
            if m is not None:
                _close(chain, indent)
                chain.append(_Open(indent, _unquote(m.group(1)), False))
        out[line] = _cursor_on(list(chain), lines[line] if line < len(lines) else "",
                               wanted[line])
    return out


def _cursor_on(chain: list[_Open], current: str, character: int) -> Cursor:
    """The cursor at ``character`` of the line ``current``, below the keys ``chain``
    holds open."""
    indent, content = _split(current)
    word = _WORD_BEFORE.search(current[:character])
    prefix = word.group() if word else ""
    if _skip(content):
        # A key typed here belongs to the keys open at the cursor's column.
        _close(chain, min(character, len(current)) if not content else indent)
        parent = tuple(o.segment for o in chain)
        return Cursor(parent, parent, None, character, character, False, prefix)
    indent, content = _step(chain, indent, content)
    m = _KEY.match(content)
    if m is None:
        _close(chain, indent)
        parent = tuple(o.segment for o in chain)
        if chain and chain[-1].item and chain[-1].indent < indent:
            return Cursor(parent, parent[:-1], None, indent, indent, True, prefix)
        return Cursor(parent, parent, None, indent, indent, False, prefix)
    _close(chain, indent)
    parent = tuple(o.segment for o in chain)
    key = _unquote(m.group(1))
    start = indent
    return Cursor((*parent, key), parent, key, start, start + len(m.group(1)),
                  character >= start + m.end(), prefix)


def key_column(line_text: str, segment: str) -> int:
    """Column of ``segment`` written as a key on the line (else its first character)."""
    # Bare, a key has no space at either end (an empty one neither): such a key after
    # each of a run of spaces would be tried to the run's end (quadratic).
    bare = (segment,) if segment.strip(" \t") == segment != "" else ()
    for quoted in (*bare, f'"{segment}"', f"'{segment}'"):
        m = re.search(rf"(?:^|[\s-]){re.escape(quoted)}[ \t]*:", line_text)
        if m is not None:
            return m.start() + (0 if m.group().startswith(quoted) else 1)
    return len(line_text) - len(line_text.lstrip(" -"))


class Outline:
    """Each line's indentation and content, split once, for any number of removals: the
    removal of a key deep in a chain of only children reads the same lines at every
    level of the chain, and the removals of many keys of one map its block."""

    def __init__(self, lines: list[str]) -> None:
        self.split = [_split(line) for line in lines]
        # keys[n]: the lines before n that hold something (not blank, not a comment)
        self.keys = [0]
        for _, content in self.split:
            self.keys.append(self.keys[-1] + (not _skip(content)))
        self._ends: dict[int, tuple[int, int]] = {}
        # The line each line that holds something is nested in (-1: none), from a stack
        # of the lines whose indentation no later line has matched yet.
        self._parents: list[int] = []
        open_lines: list[int] = []
        for number, (own, content) in enumerate(self.split):
            if _skip(content):
                self._parents.append(-2)  # a blank or comment line: walked up from if asked
                continue
            while open_lines and self.split[open_lines[-1]][0] >= own:
                open_lines.pop()
            self._parents.append(open_lines[-1] if open_lines else -1)
            open_lines.append(number)

    def holding(self, first: int, end: int) -> int:
        """How many of the lines [first, end) hold something."""
        return self.keys[end] - self.keys[first] if first < end else 0

    def block_end(self, start: int, resume: tuple[int, int] | None = None
                  ) -> tuple[int, int]:
        """(``block_end(lines, start)``, the line that ended the block or the number of
        lines). ``resume``: that pair for a key nested in ``start``'s block, whose lines
        are all in it: the scan goes on from there."""
        known = self._ends.get(start)
        if known is not None:
            return known
        indent, head = self.split[start]
        # A list may sit at its key's own indentation ("key:" then "- item").
        opens_list = _KEY.match(head) is not None and head.rstrip().endswith(":")
        last, end = resume if resume is not None else (start + 1, start + 1)
        while end < len(self.split):
            own, content = self.split[end]
            if not _skip(content):
                if own <= indent and not (own == indent and content.startswith("- ")
                                          and opens_list):
                    break
                last = end + 1
            end += 1
        self._ends[start] = (last, end)
        return last, end

    def parent(self, line: int) -> int:
        """The line holding the key that ``line`` is nested in (-1: none)."""
        found = self._parents[line]
        if found != -2:
            return found
        indent = self.split[line][0]
        above = line - 1
        while above >= 0 and (_skip(self.split[above][1]) or self.split[above][0] >= indent):
            above -= 1
        return above

    def removal(self, line: int) -> tuple[int, int]:
        """Lines [first, end) to delete to remove the key on ``line``, with every
        ancestor it would leave empty (an empty map in YAML is a null, which would
        override)."""
        # Each ancestor's block holds its child's, so its scan resumes where the child's
        # stopped: the lines are read once, not once for each ancestor (cubic in a deep
        # chain of only children). Not a blank line's: its block ends after itself.
        first = line
        scan = self.block_end(line)
        end = scan[0]
        while True:
            parent = self.parent(first)
            if parent < 0:
                return first, end
            scan = self.block_end(parent, None if _skip(self.split[first][1]) else scan)
            parent_end = scan[0]
            others = (self.holding(parent + 1, parent_end)
                      - self.holding(first, min(end, parent_end)))
            if others or not self.split[parent][1].rstrip().endswith(":"):
                return first, end
            first, end = parent, max(end, parent_end)


def block_end(lines: list[str], start: int) -> int:
    """The line after the block of the key on line ``start`` (its nested lines, blank
    and comment lines inside it included, trailing ones left out)."""
    return Outline(lines).block_end(start)[0]


def removal(text: str, line: int) -> tuple[int, int]:
    """``Outline.removal`` of one key of ``text``."""
    return Outline(text.split("\n")).removal(line)
