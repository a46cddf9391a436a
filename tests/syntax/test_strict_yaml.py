"""Strict loading: the fast parser (yaml-rs) and the reference parser (PyYAML with
magcfg's YAML 1.2 rules) must read every accepted file identically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from magcfg.syntax.locate import locate
from magcfg.syntax.scalars import YAML11_ONLY_WORDS
from magcfg.syntax.strict_yaml import LoadFailed, _parse_fast, decode_text, parse_layer, parse_reference

from ..conftest import REPO

names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(
    lambda name: name not in YAML11_ONLY_WORDS)
texts = st.from_regex(r"[A-Za-z][A-Za-z0-9 ._/-]{0,20}", fullmatch=True)
scalars = st.one_of(
    st.integers(-10**12, 10**12), st.booleans(), st.none(), texts,
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(lambda f: round(f, 3)),
)
trees = st.recursive(scalars | st.lists(scalars, max_size=4),
                     lambda c: st.dictionaries(names, c, min_size=1, max_size=4), max_leaves=20)
documents = st.dictionaries(names, trees, min_size=1, max_size=5)


def dump(value: Any, indent: int = 0) -> str:
    import json

    pad = " " * indent
    if isinstance(value, dict):
        return "".join(f"{pad}{k}:\n{dump(v, indent + 2)}" if isinstance(v, dict) and v
                       else f"{pad}{k}: {dump(v, 0).strip()}\n" for k, v in value.items())
    if isinstance(value, list):
        return "[" + ", ".join(dump(v).strip() for v in value) + "]\n"
    if isinstance(value, str):
        return json.dumps(value) + "\n"  # quoted: plain YAML words are tested separately
    if value is None:
        return "null\n"
    return json.dumps(value) + "\n"


@settings(max_examples=300, deadline=None)
@given(documents)
def test_fast_and_reference_agree(doc: dict[str, Any]) -> None:
    text = dump(doc)
    fast = _parse_fast(text)
    reference, _ = parse_reference("t.yaml", text)
    assert reference == doc
    assert parse_layer("t.yaml", text.encode())[0] == doc
    if fast is not None:  # None: the fast path declined (a YAML 1.1 look-alike word)
        assert fast == doc


@pytest.mark.parametrize("path", sorted((REPO / "layers").rglob("*.yaml")),
                         ids=lambda p: p.relative_to(REPO).as_posix())
def test_bundled_layers_agree(path: Path) -> None:
    text = decode_text(path.name, path.read_bytes())
    assert parse_layer(path.name, path.read_bytes())[0] == parse_reference(path.name, text)[0]


@pytest.mark.parametrize(("text", "value"), [
    ("a: true", True), ("a: False", False), ("a: 0x1F", 31),
    ("a: 1.5e+3", 1500.0), ("a: 1.e-2", 0.01), ("a: ~", None), ("a:", None), ("a: '0755'", "0755"),
    ("a: \"no\"", "no"), ("a: 2024-01-02", "2024-01-02"), ("a: 12.50", 12.5),
    ("a: -7", -7), ("a: +7", 7), ("a: .5", 0.5), ("a: 'yes'", "yes"),
])
def test_yaml_12_core_meaning(text: str, value: Any) -> None:
    assert parse_layer("t.yaml", text.encode())[0] == {"a": value}
    assert parse_reference("t.yaml", text)[0] == {"a": value}


@pytest.mark.parametrize("word", ["yes", "No", "ON", "off", "y", "N"])
def test_yaml_11_words_are_refused(word: str) -> None:
    with pytest.raises(LoadFailed) as info:
        parse_layer("t.yaml", f"a:\n  b: {word}\n".encode())
    assert info.value.diagnostics[0].line == 2
    assert info.value.diagnostics[0].key == "a.b"


def test_markers() -> None:
    data, markers = parse_layer("t.yaml", b"a: !unset\nb: !replace {x: 1}\nc: !replace 5\n")
    assert markers
    assert data == {"a": ("!unset",), "b": ("!replace", {"x": 1}), "c": ("!replace", 5)}


def test_empty_file_is_empty_layer() -> None:
    assert parse_layer("t.yaml", b"") == ({}, False)
    assert parse_layer("t.yaml", b"# only a comment\n") == ({}, False)
    assert parse_layer("t.yaml", b"\xef\xbb\xbfa: 1\n") == ({"a": 1}, False)


def test_locate() -> None:
    raw = b"a:\n  b:\n    c: 1\n  d: [1, 2]\n"
    assert locate("t.yaml", raw, ("a", "b", "c")) == 3
    assert locate("t.yaml", raw, ("a", "d", "1")) == 4
    assert locate("t.yaml", raw, ("a", "zz")) == 1
