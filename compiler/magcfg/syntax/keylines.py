"""Line numbers of every key of a YAML file, from one pass over the parser's events.

``load.locate`` composes the file into a node tree to find one key's line; composing
resolves the tag of every scalar in Python, about 20 ms for a 50 KB file. A diff that
locates thousands of keys in hundreds of files needs the line of many keys per file, so
this index reads the C parser's events once per file (no node tree, no tag resolution)
and answers with the same lines as ``locate``. Files with aliases or complex keys fall
back to ``locate``.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Protocol

from .locate import locate
from .strict_yaml import LoadFailed, decode_text

KeyPath = tuple[str, ...]
Indexed = tuple[int, dict[KeyPath, int]]
"""(line of the root node, {key path: line})."""


class _Unsupported(Exception):
    pass


def _index(text: str) -> Indexed:
    """(line of the root node, {key path: line}) for mapping keys and sequence items."""
    import yaml

    loader_cls = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loader = loader_cls(text)
    index: dict[KeyPath, int] = {}
    root = 1
    # Frames: [is_map, path, expecting_key, current_key_path, next_index]
    stack: list[list[Any]] = []
    scalar, map_start, seq_start = yaml.ScalarEvent, yaml.MappingStartEvent, yaml.SequenceStartEvent
    ends = {yaml.MappingEndEvent, yaml.SequenceEndEvent}
    nodes = {scalar, map_start, seq_start}
    get_event = loader.get_event
    try:
        while True:
            ev = get_event()
            cls = ev.__class__
            if cls in ends:
                stack.pop()
                continue
            if cls not in nodes:
                if cls is yaml.AliasEvent:
                    raise _Unsupported
                if cls is yaml.StreamEndEvent:
                    break
                continue  # stream / document start and end
            line = ev.start_mark.line + 1
            if not stack:
                root = line
                path: KeyPath = ()
            else:
                frame = stack[-1]
                if frame[0]:
                    if frame[2]:
                        if cls is not scalar:
                            raise _Unsupported
                        key_path = (*frame[1], ev.value)
                        if key_path not in index:
                            index[key_path] = line
                        frame[2] = False
                        frame[3] = key_path
                        continue
                    path = frame[3]
                    frame[2] = True
                else:
                    path = (*frame[1], str(frame[4]))
                    frame[4] += 1
                    if path not in index:
                        index[path] = line
            if cls is map_start:
                stack.append([True, path, True, None, 0])
            elif cls is seq_start:
                stack.append([False, path, False, None, 0])
    finally:
        loader.dispose()
    return root, index


# A plain scalar, then maybe a comment; '#' starts a comment only after a space
# (vault://secret/app#password is one scalar). No class crosses a line break, so that
# one pattern can read a whole file's lines (``_LINES``).
_PLAIN = (r"(?:[^\[\]{}\"'|>&*!#%@`?,:\- \n]|-?[0-9])(?:[^#\n]|(?<! )#)*(?: +#.*)?")
_PLAIN_VALUE = re.compile(_PLAIN)
# One line: indent, key, and its value when that is a plain scalar (group 3), else
# whatever follows the colon (group 4, checked further; None: nothing follows); or a
# blank or comment line (group 2 None).
_LINES = re.compile(
    r"( *)(?:([A-Za-z0-9_][A-Za-z0-9_./-]*):(?: +(?:(" + _PLAIN + r")|(.*)))?|(?:#.*)?)"
    r"(?:\n|\Z)")
_QUOTED_VALUE = re.compile(r"(?:\"(?:[^\"\\]|\\.)*\"|'(?:[^']|'')*')(?: +#.*)?")
_FLOW_LIST = re.compile(r"\[([^\[\]{}\"'#,:]*(?:,[^\[\]{}\"'#,:]*)*)\](?: +#.*)?")
_FLOW_MAPS = re.compile(r"\[ *(\{[^\[\]{}\"'#]*\}(?: *, *\{[^\[\]{}\"'#]*\})*) *\](?: +#.*)?")
# A value's spaces are its own only before more of it: a lazy value before " *" would
# try the trailing spaces at each of its lengths (quadratic in a long run of spaces).
_FLOW_PAIR = re.compile(r" *([A-Za-z0-9_][A-Za-z0-9_./-]*): +"
                        r"([^\[\]{}\"'#,:&*!|>%@`?\- ](?:[^\[\]{}\"'#,: ]| +(?=[^\[\]{}\"'#,: ]))*)"
                        r" *")
_EMPTY_MAP = re.compile(r"\{ *\}(?: +#.*)?")
_TAG_VALUE = re.compile(r"!(?:unset|replace)(?: +#.*)?")


def _index_simple(text: str) -> Indexed | None:
    """What ``_index`` answers, by reading lines, for the plain block shape most layer
    files have (``key: scalar``, ``key:`` with a nested block mapping, one-line lists
    of plain scalars, comments); ``None`` for anything else (sequences in block form,
    flow maps, block or multi-line scalars, anchors, tabs, document markers), which
    ``_index`` reads through the parser. The text is one the strict loader accepted."""
    index: dict[KeyPath, int] = {}
    root = 0
    # The indent of each open block mapping, outermost first, and the path of the
    # innermost one's keys' parent.
    indents: list[int] = []
    parents: list[KeyPath] = []
    top = -1
    parent: KeyPath = ()
    keypath: KeyPath = ()  # the last key's
    open_value = False  # the last key had no value on its line: a nested map may follow
    if "\t" in text or "\r" in text:
        return None
    # Each match is one line, matched where the last one ended: a line the pattern does
    # not read ends the reading (the file is read by ``_index``). A search for the next
    # match would try every later offset of the line, each up to its end: quadratic in
    # a long line (a line of 50,000 spaces takes minutes).
    end = 0
    number = 0
    while True:
        found = _LINES.match(text, end)
        if found is None:
            return None
        if found.end() == end:  # the empty match at the end of the text
            break
        end = found.end()
        number += 1
        spaces, name, plain, value = found.groups()
        if name is None:
            continue
        indent = len(spaces)
        if indent != top:
            if indent > top:
                if not indents:
                    root = number
                elif not open_value:
                    return None
                parent = keypath if indents else ()
                indents.append(indent)
                parents.append(parent)
            else:
                while indents and indents[-1] > indent:
                    indents.pop()
                    parents.pop()
                if not indents or indents[-1] != indent:
                    return None
                parent = parents[-1]
            top = indent
        keypath = (*parent, name)
        if index.setdefault(keypath, number) != number:
            return None
        if plain is not None:
            open_value = False
            continue
        if value is None or value == "" or value.startswith("#"):
            open_value = True
            continue
        open_value = False
        if value.startswith("["):
            flow = _FLOW_LIST.fullmatch(value)
            if flow is None:
                maps = _FLOW_MAPS.fullmatch(value)
                if maps is None:
                    return None
                for i, body in enumerate(re.findall(r"\{([^{}]*)\}", maps.group(1))):
                    item = (*keypath, str(i))
                    index[item] = number
                    if not body.strip():
                        continue
                    for pair in body.split(","):
                        kv = _FLOW_PAIR.fullmatch(pair)
                        if kv is None or (*item, kv.group(1)) in index:
                            return None
                        index[(*item, kv.group(1))] = number
                continue
            inner = flow.group(1)
            if inner.strip():
                items = inner.split(",")
                if any(not item.strip() for item in items):
                    return None
                for i in range(len(items)):
                    index[(*keypath, str(i))] = number
        elif value.startswith("{"):
            if _EMPTY_MAP.fullmatch(value) is None:
                return None
        elif value.startswith("!"):
            if _TAG_VALUE.fullmatch(value) is None:
                return None
            open_value = value.startswith("!replace")
        elif value[0] in "\"'":
            if _QUOTED_VALUE.fullmatch(value) is None:
                return None
        elif _PLAIN_VALUE.fullmatch(value) is None:
            return None
    return (root or 1), index


class IndexStore(Protocol):
    """Where ``KeyLines`` keeps files' indexes between processes, by the hex SHA-256 of
    the file's content (the build cache, for ``magcfg diff``)."""

    def get(self, digest: str) -> Indexed | None: ...

    def put(self, digest: str, indexed: Indexed) -> None: ...


class KeyLines:
    """Lines of keys in files read through ``source`` (each file indexed once, or
    found in ``store``)."""

    def __init__(self, source: Any, store: IndexStore | None = None) -> None:
        self.source = source
        self.store = store
        self._files: dict[str, tuple[bytes, Indexed | None]] = {}

    def indexed(self, path: str) -> dict[KeyPath, int] | None:
        """Every key path the file writes (mapping keys and sequence items) and its
        line; None when the file cannot be read or is read by ``locate``."""
        if self.line(path, ()) is None:
            return None
        found = self._files[path][1]
        return found[1] if found is not None else None

    def line(self, path: str, keypath: KeyPath) -> int | None:
        """What ``load.locate`` answers: the line of ``keypath`` or of its deepest
        existing ancestor; ``None`` when the file cannot be read."""
        entry = self._files.get(path)
        if entry is None:
            try:
                raw = self.source.read(path)
            except OSError:
                return None
            digest = hashlib.sha256(raw).hexdigest() if self.store is not None else ""
            found = self.store.get(digest) if self.store is not None else None
            if found is None:
                try:
                    text = decode_text(path, raw)
                    found = _index_simple(text) or _index(text)
                except Exception:  # aliases, complex keys, or text locate handles its own way
                    pass
                else:
                    if self.store is not None:
                        self.store.put(digest, found)
            entry = (raw, found)
            self._files[path] = entry
        raw, indexed = entry
        if indexed is None:
            return locate(path, raw, keypath)
        return _line_in(indexed, keypath)


def line_of(path: str, raw: bytes, keypath: KeyPath) -> int | None:
    """What ``locate`` answers for one key path of a file the strict loader accepted:
    read from its lines when it has the plain block shape (``_index_simple``: no YAML
    parser to import, no node tree to compose), else by ``locate``."""
    return line_in(path, raw, simple_lines(path, raw), keypath)


def simple_lines(path: str, raw: bytes) -> Indexed | bool:
    """The file's key lines for ``line_in``, when its lines tell them; ``False`` when
    the file cannot be decoded (no line), ``True`` when ``locate`` must answer (CUE, a
    shape the line reader declines, an empty document). Keep it to ask about several
    key paths of one file."""
    if path.endswith(".cue"):
        return True
    try:
        text = decode_text(path, raw)
    except LoadFailed:
        return False  # what locate answers: None
    indexed = _index_simple(text)
    return indexed if indexed is not None and indexed[1] else True


def line_in(path: str, raw: bytes, lines: Indexed | bool, keypath: KeyPath) -> int | None:
    """``line_of(path, raw, keypath)`` given ``simple_lines(path, raw)``."""
    if lines is True:
        return locate(path, raw, keypath)
    return None if lines is False else _line_in(lines, keypath)


def _line_in(indexed: Indexed, keypath: KeyPath) -> int:
    """The line of ``keypath`` or of its deepest indexed ancestor, else of the root."""
    root, index = indexed
    for n in range(len(keypath), 0, -1):
        found = index.get(keypath[:n])
        if found is not None:
            return found
    return root
