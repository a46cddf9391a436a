"""Where a key is written: the line of a key path in a YAML or CUE layer file.

Only errors, warnings and ``explain`` need lines, so they are recovered lazily from the
file's text rather than recorded for every leaf while loading.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

from .strict_yaml import LoadFailed, compose, decode_text

__all__ = ["locate", "locate_cue"]


@lru_cache(maxsize=256)
def _composed(path: str, text: str) -> Any:
    try:
        return compose(path, text)
    except LoadFailed:
        return None


def locate(path: str, raw: bytes, keypath: tuple[str, ...]) -> int | None:
    """Line (1-based) where ``keypath`` is set in the file, or of its deepest existing
    ancestor; ``None`` when the file cannot be read."""
    import yaml

    try:
        text = decode_text(path, raw)
    except LoadFailed:
        return None
    if path.endswith(".cue"):
        return locate_cue(text, keypath)
    node = _composed(path, text)
    if node is None:
        return None
    line: int = node.start_mark.line + 1
    for part in keypath:
        if isinstance(node, yaml.MappingNode):
            for knode, vnode in node.value:
                if knode.value == part:
                    line = knode.start_mark.line + 1
                    node = vnode
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
            node = node.value[int(part)]
            line = node.start_mark.line + 1
        else:
            return line
    return line


_COMMENT = re.compile(r"(?:^|(?<=\s))//[^\n]*", re.MULTILINE)


def locate_cue(text: str, keypath: tuple[str, ...]) -> int | None:
    """Line (1-based) of the field ``keypath`` in a ``.cue`` file, or of its deepest
    ancestor found. A textual search for each label in turn (after the previous one):
    exact for the usual ``a: b: c: 1`` and nested-struct styles; ``None`` when even the
    first label is not written out (a comprehension or embedding made it)."""
    text = _COMMENT.sub(lambda m: " " * len(m.group()), text)
    pos, line = 0, None
    for part in keypath:
        if part.isdigit():
            break
        # Bare, a label has no space at either end (an empty one neither): such a label
        # after each of a run of spaces would be tried to the run's end (quadratic).
        # Quoted in UTF-8 as a file writes it, or with JSON's \u escapes.
        written = "|".join(dict.fromkeys(
            re.escape(json.dumps(part, ensure_ascii=escaped)) for escaped in (False, True)))
        if part.strip() == part != "":
            written += "|" + re.escape(part)
        m = re.compile(rf"(?:^|(?<=[\s{{,]))(?:{written})[?!]?\s*:(?!=)",
                       re.MULTILINE).search(text, pos)
        if m is None:
            break
        pos = m.end()
        line = text.count("\n", 0, m.start()) + 1
    return line
