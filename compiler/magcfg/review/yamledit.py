"""Minimal edits of YAML layer files that keep comments, key order and formatting.

Edits go through ruamel.yaml's round-trip mode, set up with the file's own indentation
and quoting. Two things ruamel does not do on its own are handled here:

* a comment after the last entry of a map belongs, in ruamel's model, to that entry's
  value, although a reader sees it as the header of the *next* key. When a key is
  appended to the map, the comment's lines (not the entry's end-of-line comment) move
  behind the new key, so they stay above the key they describe;
* a guard compares the result with the original line by line: apart from inserted lines,
  only the lines of the values being replaced may change. Anything else (a reformatted
  line elsewhere) fails the edit instead of producing a noisy diff.
"""

from __future__ import annotations

import copy
import io
import re
from typing import Any

from ..errors import BuildError, Diagnostic

KeyPath = tuple[str, ...]


class EditRefused(BuildError):
    """The file cannot be edited without touching lines other than the edited values."""


def _indentation(text: str) -> tuple[int, int, int]:
    """(mapping indent, sequence indent, sequence dash offset) used by ``text``."""
    from ruamel.yaml.util import load_yaml_guess_indent

    if not text.strip():
        return 2, 4, 2
    mapping = 2
    parent = None
    for line in text.splitlines():
        stripped = line.lstrip(" ")
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(line) - len(stripped)
        if parent is not None and indent > parent and not stripped.startswith("- "):
            mapping = indent - parent
            break
        parent = indent if stripped.rstrip().endswith(":") else None
    _, seq_indent, offset = load_yaml_guess_indent(text)
    if seq_indent is None or offset is None:
        return mapping, mapping + 2, 2
    return mapping, max(int(seq_indent), int(offset) + 2), int(offset)


def _yaml(text: str) -> Any:
    from ruamel.yaml import YAML

    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.width = 4096
    y.representer.add_representer(float, _represent_float)
    mapping, sequence, offset = _indentation(text)
    y.indent(mapping=mapping, sequence=sequence, offset=offset)
    return y


def _represent_float(representer: Any, value: float) -> Any:
    """ruamel writes 1e+16, which YAML 1.1 reads as text (the loader refuses it): write
    the form both versions read as that float."""
    from ..syntax.scalars import canonical_number

    return representer.represent_scalar("tag:yaml.org,2002:float", canonical_number(value))


def _styled(value: Any, like: Any = None) -> Any:
    """``value`` as ruamel nodes: strings double-quoted (no YAML 1.1 surprises), unless the
    value being replaced used another string style; block lists, or flow if replaced was."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq
    from ruamel.yaml.scalarstring import DoubleQuotedScalarString
    from ruamel.yaml.tag import Tag

    from ..syntax.strict_yaml import UNSET_TAG, is_unset_item

    if is_unset_item(value):  # `- !unset {name: x}`: one flow map, tagged
        marker = _styled(value[1])
        marker.fa.set_flow_style()
        marker.yaml_set_ctag(Tag(suffix=UNSET_TAG))
        return marker
    if isinstance(value, str):
        if isinstance(like, str) and type(like) is not str:  # a quoted or block style
            return type(like)(value)
        if isinstance(like, str) and _plain_safe(value):  # plain stays plain when safe
            return value
        return DoubleQuotedScalarString(value)
    if isinstance(value, list):
        seq = CommentedSeq(_styled(v) for v in value)
        if isinstance(like, CommentedSeq) and like.fa.flow_style():
            seq.fa.set_flow_style()
        return seq
    if isinstance(value, dict):
        out = CommentedMap()
        for k, v in value.items():
            out[k] = _styled(v)
        return out
    return value


_PLAIN_SAFE = re.compile(r"[A-Za-z_/][A-Za-z0-9_./-]*")
_PLAIN_WORDS = frozenset({"true", "false", "null", "yes", "no", "on", "off", "y", "n", "~"})


def _plain_safe(s: str) -> bool:
    return bool(_PLAIN_SAFE.fullmatch(s)) and s.lower() not in _PLAIN_WORDS


def _post_comment(node: Any, key: Any) -> tuple[list[Any], int] | None:
    """The ruamel comment slot after ``node[key]``: (slot list, index)."""
    from ruamel.yaml.comments import CommentedMap

    items = node.ca.items
    if key not in items:
        return None
    index = 2 if isinstance(node, CommentedMap) else 0
    slot = items[key]
    return (slot, index) if len(slot) > index and slot[index] is not None else None


def _deepest_last(node: Any, key: Any) -> tuple[Any, Any]:
    """The container and key of the last leaf under ``node[key]`` (where ruamel keeps the
    comment that follows the entry)."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    while True:
        value = node[key]
        if isinstance(value, CommentedMap) and len(value):
            node, key = value, list(value.keys())[-1]
        elif isinstance(value, CommentedSeq) and len(value):
            node, key = value, len(value) - 1
        else:
            return node, key


def _move_following_comment(mapping: Any, previous_last: Any, new_key: str) -> None:
    src_node, src_key = _deepest_last(mapping, previous_last)
    found = _post_comment(src_node, src_key)
    if found is None:
        return
    slot, index = found
    token = slot[index]
    value: str = token.value
    cut = value.find("\n")
    if cut < 0 or cut == len(value) - 1:
        return  # only an end-of-line comment: it stays on its line
    own, following = value[: cut + 1], value[cut + 1:]
    if own.strip():
        token.value = own
    else:
        slot[index] = None
    dst_node, dst_key = _deepest_last(mapping, new_key)
    moved = copy.copy(token)
    moved.value = "\n" + following
    from ruamel.yaml.comments import CommentedMap

    width = 4 if isinstance(dst_node, CommentedMap) else 1
    slots = dst_node.ca.items.setdefault(dst_key, [None] * width)
    slots[2 if isinstance(dst_node, CommentedMap) else 0] = moved


def _spans(path: str, text: str, keypaths: list[KeyPath]) -> set[int]:
    """0-based line numbers of the key lines and values that ``keypaths`` set already."""
    import yaml

    from ..syntax.strict_yaml import compose

    root = compose(path, text)
    lines: set[int] = set()
    for keypath in keypaths:
        node = root
        for depth, part in enumerate(keypath):
            if isinstance(node, yaml.SequenceNode) and part.isdigit() \
                    and int(part) < len(node.value):
                node = node.value[int(part)]
                if depth == len(keypath) - 1:
                    end = node.end_mark.line - (1 if node.end_mark.column == 0 else 0)
                    lines.update(range(node.start_mark.line, max(end, node.start_mark.line) + 1))
                continue
            if not isinstance(node, yaml.MappingNode):
                break
            for knode, vnode in node.value:
                if knode.value == part:
                    if depth == len(keypath) - 1:
                        end = vnode.end_mark.line - (1 if vnode.end_mark.column == 0 else 0)
                        lines.update(range(knode.start_mark.line, max(end, knode.start_mark.line) + 1))
                    node = vnode
                    break
            else:
                break
    return lines


class _Remove:
    """The value of an assignment that removes its key (and maps left empty above it)."""

    def __repr__(self) -> str:
        return "REMOVE"


REMOVE: Any = _Remove()


def _remove(doc: Any, keypath: KeyPath) -> list[KeyPath]:
    """Delete ``keypath`` from ``doc`` and the maps it leaves empty; returns the key paths
    whose lines go (for the reformatting guard)."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    parent = _container(doc, keypath[:-1])
    if isinstance(parent, CommentedSeq):  # an item of a keyed list
        index = int(keypath[-1]) if keypath[-1].isdigit() else len(parent)
        if index < len(parent):
            del parent[index]
            return [keypath]
        return []
    if any(part.isdigit() for part in keypath[:-1]) and isinstance(parent, CommentedMap):
        # A field of a list item: the item keeps its other fields (its merge key at least).
        if keypath[-1] in parent:
            del parent[keypath[-1]]
            return [keypath]
        return []
    chain = [doc]
    for part in keypath[:-1]:
        child = chain[-1].get(part) if isinstance(chain[-1], CommentedMap) else None
        if not isinstance(child, CommentedMap):
            return []
        chain.append(child)
    if not isinstance(chain[-1], CommentedMap) or keypath[-1] not in chain[-1]:
        return []
    del chain[-1][keypath[-1]]
    removed = [keypath]
    depth = len(keypath) - 1
    while depth > 0 and not chain[depth]:
        del chain[depth - 1][keypath[depth - 1]]
        removed.append(keypath[:depth])
        depth -= 1
    return removed


def _container(doc: Any, keypath: KeyPath) -> Any:
    """The map or list at ``keypath`` (digits index lists), or None."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    node = doc
    for part in keypath:
        if isinstance(node, CommentedMap) and part in node:
            node = node[part]
        elif isinstance(node, CommentedSeq) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def set_values(path: str, text: str, assignments: list[tuple[KeyPath, Any]]) -> str:
    """``text`` with each key path set to its value (maps created as needed, new keys
    appended to their map), or removed when the value is ``REMOVE``. Raises
    ``EditRefused`` if the result would change lines other than the replaced values."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq
    from ruamel.yaml.error import YAMLError

    y = _yaml(text)
    try:
        doc = y.load(text) if text.strip() else None
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise EditRefused([Diagnostic(path, mark.line + 1 if mark else None, None,
                                      "the round-trip editor cannot read this file; "
                                      "make the change by hand", code="promote")]) from None
    if doc is None:
        doc = CommentedMap()
    if not isinstance(doc, CommentedMap):
        raise EditRefused([Diagnostic(path, 1, None, "a layer file must be a mapping",
                                      code="promote")])
    guarded = [k for k, _ in assignments]
    for keypath, value in assignments:
        if value is REMOVE:
            guarded.extend(_remove(doc, keypath))
            continue
        node: Any = doc
        for i, part in enumerate(keypath):
            last = i == len(keypath) - 1
            if isinstance(node, CommentedSeq):
                # An item of a keyed list: its index, or one past the end to append it.
                index = int(part) if part.isdigit() else -1
                if 0 <= index < len(node) and not last:
                    node = node[index]
                    continue
                if 0 <= index < len(node):
                    node[index] = _styled(value, node[index])
                elif index == len(node) and last:
                    node.append(_styled(value))
                else:
                    raise EditRefused([Diagnostic(path, None, ".".join(keypath[: i + 1]),
                                                  "no such list item", code="promote")])
                break
            if part in node and not last:
                child = node[part]
                if isinstance(child, CommentedSeq) and keypath[i + 1].isdigit():
                    node = child
                    continue
                if not isinstance(child, CommentedMap):
                    raise EditRefused([Diagnostic(path, None, ".".join(keypath[: i + 1]),
                                                  "is not a map here; cannot set "
                                                  f"{'.'.join(keypath)} below it",
                                                  code="promote")])
                node = child
                continue
            if part in node:
                node[part] = _styled(value, node[part])
                break
            previous = list(node.keys())[-1] if len(node) else None
            rest = keypath[i + 1:]
            nested: Any = value
            for k in reversed(rest):
                nested = {k: nested}
            node[part] = _styled(nested)
            if previous is not None:
                _move_following_comment(node, previous, part)
            break
    out = io.StringIO()
    if len(doc):
        y.dump(doc, out)
    result = out.getvalue()  # every key removed: an empty file, not `{}`
    if text and not text.endswith("\n") and result.endswith("\n"):
        result = result[:-1]
    _guard(path, text, result, guarded)
    return result


def _guard(path: str, before: str, after: str, keypaths: list[KeyPath]) -> None:
    """Refuse an edit that changes, removes or moves a line the promoted keys do not
    cover: those lines must all be in ``after``, word for word and in order (lines may
    come between them: the values written). A line-by-line check, not a diff's
    alignment, which pairs lines wrongly when many values of a file change."""
    if not before.strip():
        return
    allowed = _spans(path, before, keypaths)
    rest = iter(after.splitlines())
    for n, line in enumerate(before.splitlines()):
        # ``in`` on an iterator consumes it up to the match: the next line must follow.
        if n not in allowed and line not in rest:
            raise EditRefused([Diagnostic(
                path, n + 1, None,
                "editing this file would reformat lines other than the promoted "
                "values; make the change by hand", code="promote")])
