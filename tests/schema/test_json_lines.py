"""Lines of JSON pointers and of deep nesting, checked against PyYAML's own marks (JSON
is YAML: the composer records where every key and element starts)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from magcfg.schema.json_lines import nesting_line, pointer_line

_KEYS = st.text(alphabet="ab/~\"\\ é{[", min_size=0, max_size=4)
_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.text(alphabet='a"\\{}[]\n', max_size=5))
_DOCUMENTS = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(_KEYS, inner, max_size=4)),
    max_leaves=30)


def _marks(node: yaml.Node, pointer: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], int]]:
    """(pointer, 1-based line) of every member and element, from YAML's composer."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            here = (*pointer, key.value)
            yield here, key.start_mark.line + 1
            yield from _marks(value, here)
    elif isinstance(node, yaml.SequenceNode):
        for i, value in enumerate(node.value):
            here = (*pointer, i)
            yield here, value.start_mark.line + 1
            yield from _marks(value, here)


@settings(max_examples=150, deadline=None)
@given(_DOCUMENTS, st.sampled_from([None, 2]))
def test_pointer_line_matches_the_yaml_composer(document: Any, indent: int | None) -> None:
    text = json.dumps(document, indent=indent, ensure_ascii=False)
    for pointer, line in _marks(yaml.compose(text, Loader=yaml.SafeLoader), ()):
        assert pointer_line(text, pointer) == line, (text, pointer)


def test_pointer_line_of_a_missing_member_is_its_deepest_ancestor() -> None:
    text = '{\n  "a": {\n    "b": 1\n  },\n  "c": [\n    0\n  ]\n}'
    assert pointer_line(text, ["a", "nope", "x"]) == 2
    assert pointer_line(text, ["c", 5]) == 5
    assert pointer_line(text, []) == 1
    assert pointer_line("not json", ["a"]) == 1
    assert pointer_line('{"a": ', ["a", "b"]) is None


def test_nesting_line_ignores_brackets_in_strings() -> None:
    text = '{"a": "[[[[{{{{",\n "b": [[\n[1]]]}'
    assert nesting_line(text, 3) == 3
    assert nesting_line(text, 4) is None
    assert nesting_line('{"x": "\\"[[["}', 1) is None
