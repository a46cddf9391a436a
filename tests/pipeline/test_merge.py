"""Merge semantics, property-based (hypothesis) and by example."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from magcfg.pipeline.load import ParsedFile
from magcfg.pipeline.merge import ABSENT, Layer, LayerStack
from magcfg.syntax.strict_yaml import UNSET

keys = st.sampled_from(["a", "b", "c", "d"])
scalars = st.one_of(st.integers(-5, 5), st.booleans(), st.text("xyz", max_size=3), st.none())
trees = st.recursive(
    scalars | st.lists(scalars, max_size=3),
    lambda children: st.dictionaries(keys, children, max_size=4),
    max_leaves=12,
)
top = st.dictionaries(keys, trees, max_size=4)


class _NoSource:
    def read(self, path: str) -> bytes:
        return b""


def stack_of(*layers: dict[str, Any], markers: bool = False) -> LayerStack:
    """The stack of ``layers``, each one file; ``markers``: every file flagged as holding
    tags (as the loader flags one with ``!unset`` or ``!replace``), not only those that
    hold ``UNSET``."""
    built = []
    for i, data in enumerate(layers):
        marker = markers or any(v == UNSET for v in _walk(data))
        built.append(Layer(f"l{i}", f"l{i}", (ParsedFile(f"l{i}/f.yaml", str(i), tuple(data),
                                                          marker, data=data),)))
    return LayerStack("env", built, _NoSource())


def _walk(data: Any) -> list[Any]:
    if isinstance(data, dict):
        return [x for v in data.values() for x in [v, *_walk(v)]]
    return []


def merged(*layers: dict[str, Any]) -> dict[str, Any]:
    out, _ = stack_of(*layers).merge()
    return out


def leaves(data: Any, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    if isinstance(data, dict) and data:
        out: dict[tuple[str, ...], Any] = {}
        for k, v in data.items():
            out.update(leaves(v, (*prefix, k)))
        return out
    return {prefix: data}


@settings(max_examples=200, deadline=None)
@given(top)
def test_single_layer_is_itself(a: dict[str, Any]) -> None:
    assert merged(a) == a


@settings(max_examples=200, deadline=None)
@given(top)
def test_an_empty_layer_changes_nothing(a: dict[str, Any]) -> None:
    assert merged(a, {}) == a
    assert merged({}, a) == a


@settings(max_examples=300, deadline=None)
@given(top, top)
def test_last_layer_wins_on_every_leaf_it_sets(a: dict[str, Any], b: dict[str, Any]) -> None:
    stack = stack_of(a, b)
    out, diags = stack.merge()
    if any(d.severity == "error" for d in diags):
        return  # a kind change (map vs scalar) is refused; tested below
    flat = leaves(out)
    for path, value in leaves(b).items():
        if path and not (isinstance(value, dict) and not value):
            assert flat[path] == value


@settings(max_examples=300, deadline=None)
@given(top, top)
def test_keys_only_below_survive(a: dict[str, Any], b: dict[str, Any]) -> None:
    out, diags = stack_of(a, b).merge()
    if any(d.severity == "error" for d in diags):
        return
    flat = leaves(out)
    for path, value in leaves(a).items():
        covered = any(path[: len(p)] == p for p in leaves(b)) or any(
            p[: len(path)] == path for p in leaves(b))
        if path and not covered:
            assert flat[path] == value


@settings(max_examples=200, deadline=None)
@given(top, st.data())
def test_unset_removes(a: dict[str, Any], data: st.DataObject) -> None:
    if not a:
        return
    key = data.draw(st.sampled_from(sorted(a)))
    out = merged(a, {key: UNSET})
    assert key not in out
    assert {k: v for k, v in out.items()} == {k: v for k, v in a.items() if k != key}


@settings(max_examples=200, deadline=None)
@given(top, top)
def test_provenance_points_at_the_winning_layer(a: dict[str, Any], b: dict[str, Any]) -> None:
    stack = stack_of(a, b)
    out, diags = stack.merge()
    if any(d.severity == "error" for d in diags):
        return
    for path, value in leaves(out).items():
        if not path:
            continue
        chain = stack.provenance(path)
        assert chain, path
        winner = chain[-1]
        expected = "l1" if _under_leaf(path, b) else "l0"
        assert winner.layer == expected, (path, chain)
        assert winner.file == f"{expected}/f.yaml"
        if not isinstance(value, dict):
            assert winner.value == value


def _under_leaf(path: tuple[str, ...], tree: dict[str, Any]) -> bool:
    node: Any = tree
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def test_type_change_is_an_error_unless_replaced() -> None:
    out, diags = stack_of({"a": {"x": 1}}, {"a": 5}).merge()
    assert [d.code for d in diags] == ["type-change"]
    out, diags = stack_of({"a": {"x": 1}}, {"a": ("!replace", 5)}).merge()
    assert out == {"a": 5} and diags == []


def test_replace_does_not_merge_maps() -> None:
    out, _ = stack_of({"a": {"x": 1, "y": 2}}, {"a": ("!replace", {"z": 3})}).merge()
    assert out == {"a": {"z": 3}}


def test_lists_replace() -> None:
    out, _ = stack_of({"a": [1, 2, 3]}, {"a": [4]}).merge()
    assert out == {"a": [4]}


def test_redundant_override_is_a_warning() -> None:
    _, diags = stack_of({"a": {"x": 1, "y": 2}}, {"a": {"x": 1}}).merge()
    assert [(d.severity, d.key, d.code) for d in diags] == [("warning", "a.x", "redundant")]


def test_keyed_list_merge() -> None:
    stack = stack_of({"a": [{"name": "x", "v": 1}, {"name": "y", "v": 2}]},
                     {"a": [{"name": "y", "v": 3}, {"name": "z", "v": 4}]})
    stack._merge_key = lambda path: "name" if path == ("a",) else None  # schema's choice
    out, _ = stack.merge()
    assert out == {"a": [{"name": "x", "v": 1}, {"name": "y", "v": 3}, {"name": "z", "v": 4}]}


def test_keyed_list_merge_key_is_not_a_redundant_override() -> None:
    stack = stack_of({"a": [{"name": "x", "v": 1}, {"name": "y", "v": 2}]},
                     {"a": [{"name": "y", "v": 3}, {"name": "x", "v": 1}]})
    stack._merge_key = lambda path: "name" if path == ("a",) else None
    out, diags = stack.merge()
    assert out == {"a": [{"name": "x", "v": 1}, {"name": "y", "v": 3}]}
    # `name` repeats the item's name by necessity; `v: 1` on x really is redundant.
    assert [(d.severity, d.key, d.code) for d in diags] == [("warning", "a.0.v", "redundant")]


def _keyed(*layers: dict[str, Any]) -> LayerStack:
    stack = stack_of(*layers, markers=True)
    stack._merge_key = lambda path: "name" if path == ("a",) else None
    return stack


def test_unset_item_deletes_the_keyed_item_below() -> None:
    out, diags = _keyed({"a": [{"name": "x", "v": 1}, {"name": "y", "v": 2}]},
                        {"a": [("!unset", {"name": "x"}), {"name": "y", "v": 3}]}).merge()
    assert out == {"a": [{"name": "y", "v": 3}]}
    assert diags == []


def test_unset_item_of_nothing_warns_at_the_marker() -> None:
    out, diags = _keyed({"a": [{"name": "x", "v": 1}]},
                        {"a": [{"name": "x", "v": 2}, ("!unset", {"name": "zz"})]}).merge()
    assert out == {"a": [{"name": "x", "v": 2}]}
    assert [(d.severity, d.file, d.key, d.code, d.message) for d in diags] == [
        ("warning", "l1/f.yaml", "a.1", "unset-nothing",
         "!unset of list item name='zz' that no lower layer has")]


def test_unset_item_in_the_lowest_layer_warns() -> None:
    out, diags = _keyed({"a": [("!unset", {"name": "x"}), {"name": "y"}]}).merge()
    assert out == {"a": [{"name": "y"}]}
    assert [(d.key, d.code) for d in diags] == [("a.0", "unset-nothing")]


def test_unset_item_naming_another_key_is_an_error() -> None:
    out, diags = _keyed({"a": [{"name": "x", "v": 1}]},
                        {"a": [("!unset", {"v": 1})]}).merge()
    assert out == {"a": [{"name": "x", "v": 1}]}
    assert [(d.severity, d.file, d.key, d.code) for d in diags] == [
        ("error", "l1/f.yaml", "a.0", "unset-item")]
    assert "this list merges on 'name'" in diags[0].message


def test_unset_item_in_a_list_without_merge_key_is_an_error() -> None:
    stack = _keyed({"b": [{"name": "x"}]}, {"b": [("!unset", {"name": "x"})]})
    out, diags = stack.merge()
    assert out == {"b": []}
    assert [(d.severity, d.file, d.key, d.code) for d in diags] == [
        ("error", "l1/f.yaml", "b.0", "unset-item")]
    assert "without x-magcfg-merge-key" in diags[0].message


def test_unset_item_then_readd_in_a_higher_layer() -> None:
    out, _ = _keyed({"a": [{"name": "x", "v": 1}]}, {"a": [("!unset", {"name": "x"})]},
                    {"a": [{"name": "x", "v": 5}]}).merge()
    assert out == {"a": [{"name": "x", "v": 5}]}


def test_unset_of_nothing_warns() -> None:
    out, diags = stack_of({"a": 1}, {"b": UNSET}).merge()
    assert out == {"a": 1}
    assert [d.code for d in diags] == ["unset-nothing"]


def test_absent_is_not_none() -> None:
    value, _ = stack_of({"a": None}).merge_top("a")
    assert value is None and value is not ABSENT


# -- layers as the loader produces them: markers only as values of keys ----------------

plain_values = st.one_of(st.integers(-5, 5), st.booleans(), st.none(),
                         st.sampled_from(['"x"', '"y"', "text"]))
marked_trees = st.recursive(
    plain_values | st.lists(plain_values, max_size=3).map(lambda items: ("list", items)),
    lambda children: st.dictionaries(keys, children | st.sampled_from(["!unset", "!replace 1"])
                                     | children.map(lambda c: ("!replace", c)), max_size=3),
    max_leaves=10)


def to_yaml(tree: Any, indent: int = 0) -> str:
    """Block YAML for a generated tree (maps below keys, everything else inline)."""
    pad = " " * indent
    if isinstance(tree, dict):
        lines = []
        for k, v in tree.items():
            if isinstance(v, tuple) and v[0] == "!replace":
                lines.append(f"{pad}{k}: !replace" + ("\n" + to_yaml(v[1], indent + 2)
                                                       if isinstance(v[1], dict) and v[1]
                                                       else " " + _inline(v[1])))
            elif isinstance(v, dict) and v:
                lines.append(f"{pad}{k}:\n{to_yaml(v, indent + 2)}")
            else:
                lines.append(f"{pad}{k}: {_inline(v)}")
        return "\n".join(lines)
    return pad + _inline(tree)


def _inline(value: Any) -> str:
    if isinstance(value, tuple) and value[0] == "list":
        return "[" + ", ".join(_inline(v) for v in value[1]) + "]"
    if isinstance(value, tuple):
        return _inline(value[1])
    if isinstance(value, dict):
        return "{}" if not value else "{" + ", ".join(f"{k}: {_inline(v)}" for k, v in value.items()) + "}"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _holds_marker(value: Any) -> bool:
    if type(value) is tuple or value is ABSENT:
        return True
    if type(value) is dict:
        return any(_holds_marker(v) for v in value.values())
    if type(value) is list:
        return any(_holds_marker(v) for v in value)
    return False


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(keys, marked_trees, max_size=4), st.dictionaries(keys, marked_trees, max_size=4))
def test_loaded_layers_merge_into_plain_json(below: dict[str, Any], above: dict[str, Any]) -> None:
    """Whatever the loader accepts, markers included, merges into data without a marker
    left over, which config.json can hold."""
    from magcfg.pipeline.emit import fragment_bytes
    from magcfg.syntax.strict_yaml import parse_layer

    layers = []
    for i, tree in enumerate((below, above)):
        data, markers = parse_layer(f"l{i}/f.yaml", to_yaml(tree).encode())
        layers.append(Layer(f"l{i}", f"l{i}", (ParsedFile(f"l{i}/f.yaml", str(i), tuple(data),
                                                          markers, data=data),)))
    out, diags = LayerStack("env", layers, _NoSource(), lambda path: "name").merge()
    if any(d.severity == "error" for d in diags):
        return
    for key, value in out.items():
        assert not _holds_marker(value), (key, value)
        fragment_bytes(key, value)


def test_a_merge_key_that_is_a_list_is_an_error_where_it_is_set() -> None:
    # A list cannot name an item: the merge looked items up by it and raised TypeError.
    out, diags = _keyed({"a": [{"name": [1], "v": 1}]}, {"a": [{"name": "x"}]}).merge()
    assert out == {"a": [{"name": [1], "v": 1}, {"name": "x"}]}
    assert [(d.severity, d.file, d.key, d.code) for d in diags] == [
        ("error", "l0/f.yaml", "a.0.name", "merge-key")]
    assert "must be a scalar" in diags[0].message
    out, diags = _keyed({"a": [{"name": "x"}]},
                        {"a": [{"name": {"m": 1}}, ("!unset", {"name": [2]})]}).merge()
    assert out == {"a": [{"name": "x"}]}
    assert [(d.severity, d.file, d.key, d.code) for d in diags] == [
        ("error", "l1/f.yaml", "a.0.name", "merge-key"), ("error", "l1/f.yaml", "a.1", "unset-item")]


class _CountingSource:
    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.reads: list[str] = []

    def read(self, path: str) -> bytes:
        self.reads.append(path)
        return self.files[path]


def test_findings_read_their_file_once() -> None:
    # Each redundant override read the file again (80,000 of them in 1 MB: 25 s).
    data = {"m": {f"k{i}": 1 for i in range(500)}}
    text = "m:\n" + "".join(f"  k{i}: 1\n" for i in range(500))
    stack = stack_of(data, data)
    source = _CountingSource({"l0/f.yaml": text.encode(), "l1/f.yaml": text.encode()})
    stack.source = source
    _, diags = stack.merge()
    assert len(diags) == 500 and {d.code for d in diags} == {"redundant"}
    assert [d.line for d in diags[:3]] == [2, 3, 4]
    assert source.reads == ["l1/f.yaml"]


def test_a_key_merged_without_findings_lists_no_files(monkeypatch: Any) -> None:
    """Merging a top-level key with nothing to report looks up no file (a cold build
    merges hundreds of keys in stacks of hundreds of files); one with a finding names
    its file."""
    stack = stack_of({"a": {"x": 1}, "b": 1}, {"a": {"x": 2}, "b": 1})
    listed = 0
    real = LayerStack.files

    def counted(self: LayerStack) -> list[ParsedFile]:
        nonlocal listed
        listed += 1
        return real(self)

    monkeypatch.setattr(LayerStack, "files", counted)
    assert stack.merge_top("a") == ({"x": 2}, [])
    assert listed == 0
    value, diags = stack.merge_top("b")
    assert value == 1 and [(d.file, d.code) for d in diags] == [("l1/f.yaml", "redundant")]
