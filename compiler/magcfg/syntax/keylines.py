"""Line numbers of every key of a YAML file, from one pass over the parser's events.

``load.locate`` composes the file into a node tree to find one key's line; composing
resolves the tag of every scalar in Python, about 20 ms for a 50 KB file. A diff that
locates thousands of keys in hundreds of files needs the line of many keys per file, so
this index reads the C parser's events once per file (no node tree, no tag resolution)
and answers with the same lines as ``locate``. Files with aliases or complex keys fall
back to ``locate``.
"""

from __future__ import annotations

from typing import Any

from .locate import locate
from .strict_yaml import decode_text

KeyPath = tuple[str, ...]


class _Unsupported(Exception):
    pass


def _index(text: str) -> tuple[int, dict[KeyPath, int]]:
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


class KeyLines:
    """Lines of keys in files read through ``source`` (each file indexed once)."""

    def __init__(self, source: Any) -> None:
        self.source = source
        self._files: dict[str, tuple[bytes, tuple[int, dict[KeyPath, int]] | None]] = {}

    def line(self, path: str, keypath: KeyPath) -> int | None:
        """What ``load.locate`` answers: the line of ``keypath`` or of its deepest
        existing ancestor; ``None`` when the file cannot be read."""
        entry = self._files.get(path)
        if entry is None:
            try:
                raw = self.source.read(path)
            except OSError:
                return None
            try:
                entry = (raw, _index(decode_text(path, raw)))
            except Exception:  # aliases, complex keys, or text locate handles its own way
                entry = (raw, None)
            self._files[path] = entry
        raw, indexed = entry
        if indexed is None:
            return locate(path, raw, keypath)
        root, index = indexed
        for n in range(len(keypath), 0, -1):
            found = index.get(keypath[:n])
            if found is not None:
                return found
        return root
