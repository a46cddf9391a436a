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
from magcfg.syntax.strict_yaml import (
    LoadFailed,
    _parse_fast,
    decode_text,
    fast_path_eligible,
    is_unset_item,
    parse_layer,
    parse_reference,
)

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


def test_unset_item_marker() -> None:
    data, markers = parse_layer("t.yaml", b"a:\n  - !unset {name: orders}\n  - name: x\n")
    assert markers
    assert data == {"a": [("!unset", {"name": "orders"}), {"name": "x"}]}
    assert is_unset_item(data["a"][0]) and not is_unset_item(("!unset",))


@pytest.mark.parametrize("text", ["a:\n  - x\n  - !unset\n", "a:\n  - x\n  - !unset [x]\n",
                                  "a:\n  - x\n  - !unset {name: x, v: 1}\n",
                                  "a:\n  - x\n  - !unset {name: [x]}\n"])
def test_unset_item_names_one_scalar_key(text: str) -> None:
    with pytest.raises(LoadFailed) as info:
        parse_layer("t.yaml", text.encode())
    [d] = info.value.diagnostics
    assert (d.file, d.line, d.key, d.code) == ("t.yaml", 3, "a.1", "marker")
    assert d.message.startswith("!unset as a list item names the item to delete by its merge key")


def test_empty_file_is_empty_layer() -> None:
    assert parse_layer("t.yaml", b"") == ({}, False)
    assert parse_layer("t.yaml", b"# only a comment\n") == ({}, False)
    assert parse_layer("t.yaml", b"\xef\xbb\xbfa: 1\n") == ({"a": 1}, False)


def test_locate() -> None:
    raw = b"a:\n  b:\n    c: 1\n  d: [1, 2]\n"
    assert locate("t.yaml", raw, ("a", "b", "c")) == 3
    assert locate("t.yaml", raw, ("a", "d", "1")) == 4
    assert locate("t.yaml", raw, ("a", "zz")) == 1


@pytest.mark.parametrize("text", [
    "a: 12\nb: -3\nc: 0.5\nd: .5\ne: 1.\nf: [1, 2.5, x]\ng: {h: +7}\n", "a: http://x/y?q=1\n",
    "a: value-0001-3e5f\nb: 1.2.3\nc: x_1\n", "a: 'x # y'\nb: \"q\"\n", "a: café\n",
    # an underscore after a digit inside a word (secret references name variables so)
    "a: vault://secret/staging/svc_000#password\nb: env://SVC_000_TOKEN\nv1_2: [x1_0]\n",
])
def test_usual_layers_take_the_fast_path(text: str) -> None:
    raw = text.encode()
    assert fast_path_eligible(raw, text)
    assert _parse_fast(text) == parse_reference("t.yaml", text)[0]


@pytest.mark.parametrize("text", [
    "a: 1_000\n", "a: _1\n", "a: [1, 0b1]\n", "a: 0X1F\n", "a: -0x1F\n", "a: 0o7\n",
    "a: 0755\n", "a: 1e3\n", "a: [1.5E+3]\n", "a: +.5\n", "a: {b: -.inf}\n", "_1: x\n",
    "0b_: x\n", "\ufeff0b_: x\n", "\ufeff...\n", "...\n", "a: 1\n...\n", "a: {b:}\n",
    "a: [:b]\n", "a: {:: 1}\n", "a: [b, :c]\n", "a: !x 1\n", "a: &x 1\n", "a: *x\n", "a: |\n",
    "a: >\n", "a: \"\\n\"\n", "a:\tb\n", "a: b\r\n", "%YAML 1.2\n---\na: 1\n", "? a\n: b\n",
    "a: x\x07\n", "a: x\u0085\n", "a: x\u2028\n", "a: x\ufeff\n", "a: x\x9f\n",
    "a: {b\nc: 1}\n", "a: [x,\n y]\n", 'a: [x, "]"\n  "[", y]\n', "a: [x, # ]\n  y]\n",
    "a: [x] # [\n", "a: [x,1_0]\n", "a: 1._5\n", "a: -_1\n", "a: x 1_0\n", "a: 1:2_0\n",
])
def test_the_fast_path_leaves_these_to_the_reference(text: str) -> None:
    assert not fast_path_eligible(text.encode(), text.lstrip("\ufeff"))


def _nested(levels: int) -> str:
    return "".join("  " * i + f"k{i}:\n" for i in range(levels)) + "  " * levels + "x: 1\n"


@pytest.mark.parametrize(("text", "eligible"), [
    (_nested(30), True), (_nested(70), False),
    ("a:\n  " + "- " * 70 + "1\n", False), ("a:\n  " + "- " * 20 + "1\n", True),
    ("a: " + "- " * 70 + "1\n", True),  # text, not a sequence
    ("a: " + "[" * 70 + "]" * 70 + "\n", False),
    # a sequence at its key's column is a level more on the same column
    ("".join(" " * i + f"k{i}:\n" + " " * i + "-\n" for i in range(33)) + " " * 33 + "x\n",
     False),
    # a quoted scalar that dedents closes no level yaml-rs keeps open
    (_nested(30) + "  " * 30 + 'q: "a\n b"\n' + "".join(
        "  " * (30 + i) + f"m{i}:\n" for i in range(40)) + "  " * 70 + "x: 1\n", False),
])
def test_the_fast_path_sees_the_depth_before_parsing(text: str, eligible: bool) -> None:
    """yaml-rs recurses natively: a text that may nest deeper than MAX_DEPTH must not
    reach it (20,000 compact "- " overflowed the C stack)."""
    assert fast_path_eligible(text.encode(), text) is eligible


def test_a_byte_order_mark_changes_no_meaning() -> None:
    for text in ["0b_: 1\n", "...\n", "a: 1_000\n"]:
        with pytest.raises(LoadFailed) as plain:
            parse_layer("t.yaml", text.encode())
        with pytest.raises(LoadFailed) as marked:
            parse_layer("t.yaml", b"\xef\xbb\xbf" + text.encode())
        assert marked.value.diagnostics == plain.value.diagnostics


def test_unicode_line_breaks_do_not_shift_lines() -> None:
    """libyaml counts NEL/LS/PS as line breaks; refusing them keeps every line number
    the count of '\\n' before it, as locate and the diagnostics assume."""
    with pytest.raises(LoadFailed) as info:
        parse_layer("t.yaml", "a:\n  b: \"x\u2029y\"\n  c: 1\n".encode())
    assert [(d.line, d.code) for d in info.value.diagnostics] == [(2, "control-char")]
