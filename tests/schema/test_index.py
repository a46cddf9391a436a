"""Schema pieces: each top-level key's subschema is split out once per schema digest and
compiled, indexed and cached on its own; what the build says is what the whole schema
says."""

from __future__ import annotations

import contextlib
import copy
import json
from pathlib import Path
from typing import Any

import pytest

import magcfg
import magcfg.schema.index
import magcfg.schema.validator
from magcfg.pipeline.cache import MAX_PACKS, NO_CACHE_ENV, BuildCache
from magcfg.schema.index import Schema, load_schema

from ..conftest import MINI_SCHEMA, Project, calls, failed_cleanly, tree_state

SCHEMA = "schemas/schema.json"


@pytest.fixture
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(home))
    monkeypatch.delenv(NO_CACHE_ENV, raising=False)
    return home


def load(project: Project) -> magcfg.Project:
    return magcfg.load_project(project.root / "magcfg.yaml")


def compiled_pieces(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The top-level keys whose schema piece a build compiles (in order)."""
    compiled: list[str] = []
    real = magcfg.schema.validator.Validator

    def counted(schema: Schema, redactor: Any) -> Any:
        compiled.append(",".join(schema.document.get("properties") or ()))
        return real(schema, redactor)

    monkeypatch.setattr(magcfg.schema.validator, "Validator", counted)
    return compiled


def write_schema(project: Project, schema: dict[str, Any]) -> None:
    project.write(SCHEMA, json.dumps(schema, indent=2))


def _line_of(project: Project, text: str) -> int:
    lines = (project.root / SCHEMA).read_text().splitlines()
    return next(n for n, line in enumerate(lines, 1) if text in line)


class _MemoryStore:
    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, name: str) -> Any:
        return self.values.get(name)

    def put(self, name: str, value: Any) -> None:
        self.values[name] = value

    def get_bytes(self, name: str) -> bytes | None:
        found = self.values.get(name)
        return found if isinstance(found, bytes) else None

    def put_bytes(self, name: str, data: bytes) -> None:
        self.values[name] = data

    def keep_bytes(self, name: str) -> None:
        assert name in self.values


def test_pieces_answer_like_the_whole_schema() -> None:
    raw = json.dumps(MINI_SCHEMA).encode()
    whole = Schema(SCHEMA, raw)
    split = Schema(SCHEMA, raw)
    split.use_store(_MemoryStore())
    assert sorted(split.piece_digests()) == ["logging", "magds"]
    for keypath in [("magds", "password"), ("magds", "pool", "min"), ("logging", "level"),
                    ("magds",), ("nope", "x"), ()]:
        assert split.index.is_secret(keypath) == whole.index.is_secret(keypath)
        assert split.index.known_keys(keypath) == whole.index.known_keys(keypath)
        assert split.index.reload_policy(keypath) == whole.index.reload_policy(keypath)
    assert split.index.secret_paths() == whole.index.secret_paths()
    assert split.index.reload_partition() == whole.index.reload_partition()
    # A piece is a standalone schema with the file's pointers: the root and one key.
    piece = split.piece("logging")
    assert piece.document["properties"] == {"logging": MINI_SCHEMA["properties"]["logging"]}
    assert piece.document["required"] == ["magds"]
    assert split.piece("unknown") is split


def test_a_released_piece_is_freed_without_the_cyclic_collector() -> None:
    """A build pauses the cyclic collector: releasing a piece lets go of its document
    and index at once, and a holder of the piece that asks again still gets the same
    answers."""
    import gc

    from magcfg.schema.index import _Node

    def nodes() -> int:
        return sum(type(o) is _Node for o in gc.get_objects())

    raw = json.dumps(MINI_SCHEMA).encode()
    split = Schema(SCHEMA, raw)
    split.use_store(_MemoryStore())
    split.piece_digests()
    enabled = gc.isenabled()
    gc.disable()
    try:
        before = nodes()
        piece = split.piece("magds")
        answers = [piece.index.is_secret(("magds", "password")), piece.index.entry(("magds",))]
        assert nodes() > before
        split.release("magds")
        assert nodes() == before
        assert [piece.index.is_secret(("magds", "password")),
                piece.index.entry(("magds",))] == answers
        assert piece.document == split.piece("magds").document
    finally:
        if enabled:
            gc.enable()


def test_piece_from_the_store_is_the_same_as_from_the_file() -> None:
    raw = json.dumps(MINI_SCHEMA).encode()
    store = _MemoryStore()
    first = Schema(SCHEMA, raw)
    first.use_store(store)
    digests = first.piece_digests()
    again = Schema(SCHEMA, raw)
    again.use_store(store)
    assert again.piece_digests() == digests
    assert again._document is None  # the file was not parsed: the split was stored
    assert again.piece("magds").document == first.piece("magds").document
    assert again._document is None


@pytest.mark.parametrize("ref", ["#/properties/magds", "#", "#/%70roperties/magds"])
def test_a_ref_into_the_root_keeps_the_schema_whole(ref: str) -> None:
    schema = copy.deepcopy(MINI_SCHEMA)
    schema["properties"]["other"] = {"$ref": ref}
    split = Schema(SCHEMA, json.dumps(schema).encode())
    split.use_store(_MemoryStore())
    assert split.piece_digests() == {}
    assert split.piece("magds") is split


@pytest.mark.parametrize(("other", "whole"), [
    ('{"\\u0024ref": "#/properties/magds"}', True),  # the member's name escaped
    ('{"$ref": "#/properties/\\u006dagds"}', True),  # the pointer escaped
    ('{"pattern": "^\\\\d+$", "$ref": "#/properties/magds"}', True),  # a backslash elsewhere
    ('{"const": "$ref", "$ref": "#"}', True),  # "$ref" also as a value
    ('{"const": "$ref", "$ref": "#/$defs/x"}', False),
    ('{"pattern": "^\\\\d+$", "$ref": "#/$defs/x"}', False),
])
def test_refs_into_the_root_are_found_however_written(other: str, whole: bool) -> None:
    schema = copy.deepcopy(MINI_SCHEMA)
    schema["$defs"] = {"x": {"type": "string"}}
    schema["properties"]["other"] = "OTHER"
    raw = json.dumps(schema).replace('"OTHER"', other).encode()
    assert json.loads(raw)["properties"]["other"]  # the text is JSON
    split = Schema(SCHEMA, raw)
    split.use_store(_MemoryStore())
    assert (split.piece_digests() == {}) is whole


def test_a_root_relating_its_keys_keeps_the_schema_whole() -> None:
    schema = {**copy.deepcopy(MINI_SCHEMA), "dependentRequired": {"logging": ["magds"]}}
    split = Schema(SCHEMA, json.dumps(schema).encode())
    split.use_store(_MemoryStore())
    assert split.piece_digests() == {}


def test_editing_one_keys_schema_recompiles_only_that_key(
        mini: Project, state_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    magcfg.build(load(mini))
    schema = copy.deepcopy(MINI_SCHEMA)
    schema["properties"]["logging"]["description"] = "logging, described anew"
    write_schema(mini, schema)
    compiled = compiled_pieces(monkeypatch)
    magcfg.build(load(mini))
    assert compiled == ["logging"]
    reference = mini.snapshot_tree()
    magcfg.build(load(mini), cache=BuildCache(None))
    assert mini.snapshot_tree() == reference


def _refuse_schema_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Makes parsing the schema, or compiling a validator, fail the test."""
    def refused(*args: Any) -> Any:
        raise AssertionError("the schema was parsed")

    monkeypatch.setattr(magcfg.schema.index, "_parse_schema", refused)
    monkeypatch.setattr(magcfg.schema.validator, "Validator", refused)


def test_nothing_changed_does_no_schema_work(
        mini: Project, state_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A redundant override: its warning is cached, and reported again without reading
    # the schema to mask it.
    mini.write("layers/environments/prod/logging.yaml", "logging:\n  level: info\n")
    first = magcfg.build(load(mini))
    assert [d.code for d in first.warnings] == ["redundant"]

    _refuse_schema_work(monkeypatch)
    again = magcfg.build(load(mini))
    assert again.warnings == first.warnings


def test_a_warning_about_an_output_reads_no_schema_to_mask_it(
        mini: Project, state_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A config too large for a ConfigMap is reported by every build, no-ops included:
    it quotes no layer's value, and masking it parsed the large repository's schema
    and walked every layer (2.8 s of a 3.3 s no-op)."""
    mini.write("layers/environments/prod/hosts.yaml", "magds:\n  host: " + "h" * (1 << 20) + "\n")
    first = magcfg.build(load(mini))
    assert {d.code for d in first.warnings} == {"configmap_too_large"}

    _refuse_schema_work(monkeypatch)
    again = magcfg.build(load(mini))
    assert again.warnings == first.warnings


def test_uncompilable_piece_that_no_layer_sets_is_an_error(mini: Project) -> None:
    schema = copy.deepcopy(MINI_SCHEMA)
    schema["properties"]["unused"] = {"type": "string", "pattern": "(unclosed"}
    write_schema(mini, schema)
    before = tree_state(mini.root)
    done = mini.run("build")
    stderr = failed_cleanly(done)
    line = _line_of(mini, '"pattern": "(unclosed"')
    assert stderr == (f"{SCHEMA}:{line}: error: schema cannot be compiled: \"(unclosed\" is "
                      "not a \"regex\" [#/properties/unused/pattern]\n"), stderr
    assert tree_state(mini.root) == before


def test_schema_error_in_a_piece_is_located_in_the_file(mini: Project) -> None:
    schema = copy.deepcopy(MINI_SCHEMA)
    schema["properties"]["logging"]["properties"]["level"]["$ref"] = "#/$defs/missing"
    write_schema(mini, schema)
    before = tree_state(mini.root)
    stderr = failed_cleanly(mini.run("build"))
    line = _line_of(mini, '"$ref": "#/$defs/missing"')
    assert stderr == (f"{SCHEMA}:{line}: error: $ref '#/$defs/missing' points to no schema in "
                      "this file [#/properties/logging/properties/level/$ref]\n"), stderr
    assert tree_state(mini.root) == before


def test_pieces_outlive_cache_compaction(mini: Project, state_home: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    magcfg.build(load(mini))
    for n in range(MAX_PACKS + 2):  # a new pack per build, then a compaction
        mini.write("layers/environments/dev/logging.yaml",
                   f"# build {n}\nlogging:\n  level: debug\n")
        magcfg.build(load(mini))
    whole = (mini.root / SCHEMA).read_bytes()
    parsed: list[bytes] = []
    real = magcfg.schema.index._parse_schema
    real_piece = magcfg.schema.index._parse_piece

    def recorded(path: str, raw: bytes) -> Any:
        parsed.append(raw)
        return real(path, raw)

    def recorded_piece(raw: bytes) -> Any:  # a piece is parsed by orjson first
        parsed.append(raw)
        return real_piece(raw)

    monkeypatch.setattr(magcfg.schema.index, "_parse_schema", recorded)
    monkeypatch.setattr(magcfg.schema.index, "_parse_piece", recorded_piece)
    mini.write("layers/environments/dev/magds.yaml", "magds:\n  host: elsewhere\n")
    magcfg.build(load(mini))
    assert parsed and whole not in parsed  # the magds piece, from the cache


def test_definitions_shared_by_many_keys_keep_the_schema_whole() -> None:
    shape = {"type": "object", "description": "x" * 2000,
             "properties": {f"k{i}": {"type": "integer"} for i in range(50)}}
    schema = {"$defs": {"shape": shape}, "type": "object",
              "properties": {f"svc{i}": {"$ref": "#/$defs/shape"} for i in range(20)}}
    split = Schema(SCHEMA, json.dumps(schema).encode())
    split.use_store(_MemoryStore())
    assert split.piece_digests() == {}  # 20 copies of the definitions cost more than one


# -- one key's entry (editors' hover and completion) ------------------------------------

def test_entry_gives_description_types_bounds_enum_and_policy() -> None:
    index = load_schema("schemas/schema.json", json.dumps(MINI_SCHEMA).encode()).index
    port = index.entry(("magds", "port"))
    assert port is not None
    assert (port.path, port.description, port.types, port.reload, port.secret) == (
        "magds.port", "port", ("integer",), "restart", False)
    assert port.bounds == {"minimum": 1, "maximum": 65535}
    level = index.entry(("logging", "level"))
    assert level is not None
    assert (level.reload, dict(level.bounds)) == (
        "hot", {"enum": ["debug", "info", "warn", "error"]})
    password = index.entry(("magds", "password"))
    assert password is not None and password.secret
    assert index.entry(("magds", "nope")) is None


def _schema_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths whose bytes the build reads through the working tree."""
    from magcfg.pipeline.load import FileSource

    return calls(monkeypatch, FileSource, "read_examined", arg=1)


def test_a_rebuild_hashes_the_schema_without_reading_it(
        mini: Project, state_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    magcfg.build(load(mini))
    reads = _schema_reads(monkeypatch)
    mini.write("layers/environments/dev/magds.yaml", "magds:\n  host: elsewhere\n")
    magcfg.build(load(mini))  # one piece compiled again, from the cache's copy
    magcfg.build(load(mini))  # nothing changed
    assert SCHEMA not in reads and any(r.startswith("layers/") for r in reads)
    # The digest still decides: another schema is read, split and compiled.
    schema = copy.deepcopy(MINI_SCHEMA)
    schema["properties"]["magds"]["properties"]["host"]["maxLength"] = 3
    write_schema(mini, schema)
    with pytest.raises(magcfg.BuildError, match="longer than 3 characters"):
        magcfg.build(load(mini))
    assert reads.count(SCHEMA) == 1


def test_a_schema_that_changes_while_it_is_read_stops_the_build(
        mini: Project, state_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from magcfg.pipeline.load import FileSource

    real = FileSource.sha256

    def then_edited(self: FileSource, path: str) -> tuple[str, int]:
        found = real(self, path)
        if path == SCHEMA:  # an editor saves the file between the hash and the read
            mini.write(SCHEMA, json.dumps(MINI_SCHEMA, indent=4))
        return found

    monkeypatch.setattr(FileSource, "sha256", then_edited)
    before = tree_state(mini.root / "generated")
    with pytest.raises(magcfg.BuildError) as info:
        magcfg.build(load(mini))
    assert [d.format() for d in info.value.diagnostics] == [
        f"{SCHEMA}: error: the file changed while magcfg was reading it; build again"]
    assert tree_state(mini.root / "generated") == before


_SECRET_SHAPES: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "$defs": {
        "node": {"type": "object", "properties": {
            "child": {"$ref": "#/$defs/node"},
            "key": {"type": "string", "x-magcfg-secret": True},
            "label": {"type": "string"}}},
        "cred": {"type": "object", "properties": {
            "token": {"type": "string", "x-magcfg-secret": True},
            "name": {"type": "string"}}},
    },
    "properties": {
        "svc": {"type": "object", "properties": {
            "db": {"type": "object", "properties": {
                "dsn": {"type": "string", "x-magcfg-secret": True},
                "host": {"type": "string"}}},
            "tokens": {"type": "object", "x-magcfg-secret": True,
                       "additionalProperties": {"type": "string"}},
            "items": {"type": "object",
                      "properties": {"fixed": {"type": "object", "properties": {
                          "token": {"type": "string"}}}},
                      "additionalProperties": {"$ref": "#/$defs/cred"}},
            "backup": {"type": "object", "properties": {"cred": {"$ref": "#/$defs/cred"}}},
            "list": {"type": "array", "items": {"$ref": "#/$defs/cred"}},
            "plain_list": {"type": "array", "items": {"type": "object"}},
            "mirror": {"type": "object", "properties": {"cred": {"$ref": "#/$defs/cred"}}}}},
        "tree": {"$ref": "#/$defs/node"},
        "shared_a": {"$ref": "#/$defs/cred"},
        "shared_b": {"$ref": "#/$defs/cred"},
        "plain": {"type": "object", "properties": {
            "db": {"type": "object", "properties": {"host": {"type": "string"}}}}},
    },
}


def _random_tree(rng: Any, depth: int) -> Any:
    words = ["svc", "tree", "plain", "shared_a", "shared_b", "db", "dsn", "host", "tokens", "list",
             "plain_list",
             "items", "fixed", "token", "name", "child", "key", "label", "other", "backup",
             "mirror", "cred"]
    if depth == 0 or rng.random() < 0.25:
        return rng.choice([1, "text", None, [1, {"token": "x"}], {}, ("!unset", None),
                           [{"token": "vault://secret/k3s/a#t", "name": "n"}, [{"key": 2}]]])
    return {rng.choice(words): _random_tree(rng, depth - 1)
            for _ in range(rng.randint(1, 4))}


def secret_shapes(mini: Project) -> tuple[Any, Any]:
    """(policies from the tables a build cached, policies from the schema's index) of a
    project with ``_SECRET_SHAPES``."""
    from magcfg.compiler import Compiler, build
    from magcfg.schema.index import PolicyIndex

    write_schema(mini, _SECRET_SHAPES)
    for rel in list((mini.root / "layers").rglob("*.yaml")):
        rel.unlink()
    mini.write("layers/base/svc.yaml", "svc:\n  db:\n    host: db\n")
    cache = BuildCache(None)
    build(load(mini), cache=cache)
    cached = Compiler(load(mini), cache=cache).policies()
    fallback = Compiler(load(mini), cache=BuildCache(None)).policies()
    assert isinstance(cached, PolicyIndex) and isinstance(fallback, PolicyIndex)
    assert cached._table(("svc",)) is not None and fallback._table(("svc",)) is None
    return cached, fallback


def random_trees(count: int) -> list[tuple[tuple[str, ...], Any]]:
    """(prefix, tree) pairs over ``_SECRET_SHAPES``' keys, two hand-made ones first."""
    import random

    rng = random.Random(14)
    prefixes: list[tuple[str, ...]] = [(), ("svc",), ("svc", "items"), ("svc", "mirror"),
                                       ("tree", "child"), ("plain",), ("svc", "tokens"),
                                       ("svc", "list"), ("nope", "x")]
    every = {"svc": {"backup": {"cred": {"token": "a", "name": "b"}},
                     "mirror": {"cred": {"token": "c"}},
                     "items": {"fixed": {"token": "d"}, "other": {"token": "e", "name": "f"}},
                     "list": [{"token": "g", "name": "h"}, {"name": "i"}],
                     "plain_list": [{"token": "j"}],
                     "tokens": {"x": {"deep": 1}}, "db": {"dsn": {"beyond": [1]}, "host": "h"}},
             "tree": {"child": {"child": {"key": "k", "label": "l"}}},
             "plain": {"db": {"host": "x"}}, "nope": {"token": "z"}}
    cases: list[tuple[tuple[str, ...], Any]] = [((), every),
                                                (("svc", "mirror"), {"cred": {"token": "c"}})]
    return cases + [(rng.choice(prefixes), _random_tree(rng, 6)) for _ in range(count)]


def test_a_schema_file_is_read_by_orjson_where_json_reads_it_alike(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The schema file's document is orjson's where ``json`` would read the same (~3x
    faster, and a first build of a schema reads it whole); anything orjson reads
    otherwise or refuses (a key twice, an integer beyond 64 bits, NaN, a number beyond
    a double, a lone surrogate) is read by ``json`` with every check, as it was."""
    from magcfg.errors import BuildError
    from magcfg.schema.index import _parse_schema

    plain = (b'{"type": "object", "properties": {"a": {"type": "integer", "maximum": 5,\n'
             b'  "minimum": -922337203685477580, "x": 1.5e3, "s": "a:b", "d": -0.0}}}')
    expected = json.loads(plain)
    by_json = calls(monkeypatch, magcfg.schema.index.json, "loads")
    assert _parse_schema("s.json", plain) == expected
    assert not by_json
    wide = b'{"maximum": 123456789012345678901234, "minimum": -9223372036854775809}'
    assert _parse_schema("s.json", wide) == {"maximum": 123456789012345678901234,
                                             "minimum": -9223372036854775809}
    assert _parse_schema("s.json", b'{"\\u003a": 1, "s": "\\ud800"}') == {
        ":": 1, "s": "\ud800"}
    assert len(by_json) == 2
    for raw, message in ((b'{"a": {"b": 1, "b": 2}}', "duplicate key 'b'"),
                         (b'{"maximum": NaN}', "NaN is not a finite number"),
                         (b'{"maximum": 1e400}', "1e400 is not a finite number"),
                         (b'[1]', "a schema must be a JSON object")):
        with pytest.raises(BuildError, match=message):
            _parse_schema("s.json", raw)


def test_secret_subtrees_hold_exactly_the_secret_leaves(mini: Project) -> None:
    """``PolicyIndex.secret_subtrees`` (what ``magcfg lint`` walks) skips what leads to no
    secret, yet yields every leaf ``is_secret`` names, in order: from the policy tables a
    build cached (a recursive ``$ref``, shared definitions, a secret object, a named key
    beside ``additionalProperties``, keys the schema does not have, values below where
    the schema ends) and, without them, from the schema's index; behind any prefix."""
    from magcfg.syntax.strict_yaml import iter_leaves

    cached, fallback = secret_shapes(mini)
    cases = random_trees(1000)
    secret = 0
    for prefix, tree in cases:
        expected = [(kp, v) for kp, v in iter_leaves(tree)
                    if (prefix or kp) and fallback.fallback.is_secret((*prefix, *kp))]
        secret += len(expected)
        for index in (cached, fallback):
            got = [(kp, v) for path, subtree in index.secret_subtrees(tree, prefix)
                   for kp, v in iter_leaves(subtree, path)]
            assert got == expected, (prefix, tree)
    assert secret > 200


def _schema_objects() -> Any:
    """Random schema objects: nested properties (one named ``*`` now and then), maps,
    lists, objects that are both, ``patternProperties``, ``allOf``, now and then a
    ``$ref`` to ``#/$defs/d``, and magcfg's annotations anywhere (a secret value rarely:
    where no ancestor is secret, it is an error; a pattern magcfg cannot check too)."""
    from hypothesis import strategies as st

    marks = st.lists(st.sampled_from([
        ("x-magcfg-secret", True), ("x-magcfg-secret", False), ("x-magcfg-reload", "hot"),
        ("x-magcfg-reload", "restart"), ("x-magcfg-reload", "hot"),
        ("x-magcfg-merge-key", "name"), ("x-magcfg-secret-value", {"minLength": 1}),
        ("x-magcfg-secret-value", {"pattern": "(?<=a)b"}), ("description", "plain"),
        ("description", "plain")]), max_size=2).map(dict)
    leaf = st.integers(0, 5).flatmap(lambda n: st.just({"$ref": "#/$defs/d"}) if n == 0
                                     else st.just(True) if n == 1
                                     else st.builds(lambda m: {"type": "string", **m}, marks))

    def objects(inner: Any) -> Any:
        return st.builds(
            lambda props, extra, items, patterns, m: {
                "type": "object", "properties": props,
                **({"additionalProperties": extra} if extra else {}),
                **({"items": items} if items else {}),
                **({"patternProperties": {"^x": patterns}} if patterns else {}), **m},
            st.dictionaries(st.sampled_from("abcd*"), inner, max_size=4),
            st.none() | inner, st.none() | st.none() | st.none() | inner,
            st.none() | st.none() | st.none() | inner, marks)

    return st.recursive(leaf, lambda inner: st.one_of(
        objects(inner), objects(inner),
        st.builds(lambda items, m: {"type": "array", "items": items, **m}, inner, marks),
        st.builds(lambda a, b: {"allOf": [a, b]}, inner, inner)),
        max_leaves=25)


def _summary(index: Any) -> Any:
    """What a build's summary of the schema reads from ``index``, or the error it meets."""
    try:
        return (index.reload_partition(), index.secret_paths(), index.secret_values(),
                index.policy_table())
    except magcfg.BuildError as exc:
        return [d.format() for d in exc.diagnostics]


def test_the_summary_walks_only_what_leads_to_an_annotation_yet_finds_all() -> None:
    """The reload partition, the secret paths and the secret values of a schema read
    only the keys above an annotation, and the rows of a plain tree are read from the
    document without the index: the same as walking every node of the index, for
    random schemas (plain trees; shared ``$ref`` targets, combinators and the rest,
    where the index is made and every row walked), errors included."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=400, deadline=None)
    @given(st.dictionaries(st.sampled_from(["svc", "db", "x"]), _schema_objects(),
                           min_size=1, max_size=3),
           _schema_objects(), st.sampled_from([None, "hot", "restart"]))
    def check(properties: dict[str, Any], shared: dict[str, Any], root_reload: str | None
              ) -> None:
        document = {"type": "object", "properties": properties, "$defs": {"d": shared},
                    **({"x-magcfg-reload": root_reload} if root_reload else {})}
        nonlocal plain
        read = Schema(SCHEMA, json.dumps(document, indent=1).encode())
        walked = Schema(SCHEMA, json.dumps(document, indent=1).encode())
        # Rows of the index's nodes, every row walked (an error is met again by _summary).
        with contextlib.suppress(magcfg.BuildError):
            walked.index._walked = walked.index._node_rows()._replace(parents=None)
        assert _summary(read.index) == _summary(walked.index)
        plain += read.index._tree is None  # read from the document

    plain = 0
    check()
    assert plain > 100


def test_the_summary_of_a_large_plain_shape_reads_few_keys() -> None:
    """A piece of ~1,000 keys of which one is secret, one hot and one has a secret value:
    the summary's walks read the few keys above them, not every key (walking every key
    of the realistic large schema's 200 pieces costs 0.4-0.8 s of a cold build: "Schema
    pieces" in docs/performance.md)."""
    import sys

    def plain(depth: int) -> dict[str, Any]:
        if depth == 0:
            return {"type": "integer"}
        return {"type": "object", "properties": {f"k{i}": plain(depth - 1) for i in range(10)}}

    service = plain(3)
    service["properties"]["k0"]["properties"]["k0"]["properties"]["k1"] = {
        "type": "string", "x-magcfg-secret": True,
        "x-magcfg-secret-value": {"minLength": 8}}
    service["properties"]["k2"]["x-magcfg-reload"] = "hot"
    schema = Schema(SCHEMA, json.dumps({"type": "object",
                                         "properties": {"svc": service}}).encode())
    assert schema.index.policy_table()  # the index and its rows, made before counting
    walks = 0
    here = magcfg.schema.index.__file__

    def count(frame: Any, event: str, _: Any) -> None:
        nonlocal walks
        if event == "call" and frame.f_code.co_filename == here and (
                frame.f_code.co_name in ("walk", "policy_of", "collect")):
            walks += 1

    sys.setprofile(count)
    try:
        summary = (schema.index.reload_partition(), schema.index.secret_paths(),
                   schema.index.secret_values())
    finally:
        sys.setprofile(None)
    assert summary == (
        (["svc.k2"], ["svc.k0", "svc.k1", *(f"svc.k{i}" for i in range(3, 10))]),
        ["svc.k0.k0.k1"], {"svc.k0.k0.k1": {"minLength": 8}})
    assert 0 < walks < 60, walks


def test_secret_subtrees_without_tables_find_the_schema_once_per_subtree(
        mini: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the policy tables (a cold build, which asks this of every layer file) the
    schema's nodes are looked up once along the subtree's own key path, then walked
    beside it: not once per key below, each from the root."""
    from magcfg.schema.index import SchemaIndex

    _, fallback = secret_shapes(mini)
    tree = {"backup": {"cred": {"token": "a", "name": "b"}},
            "items": {f"item{i}": {"token": str(i), "name": "n"} for i in range(50)},
            "db": {"host": "h", "dsn": {"beyond": {"deep": 1}}}}
    looked_up = calls(monkeypatch, SchemaIndex, "_nodes", 1)
    found = list(fallback.secret_subtrees(tree, ("svc",)))
    assert found == [(("backup", "cred", "token"), "a"),
                     *((("items", f"item{i}", "token"), str(i)) for i in range(50)),
                     (("db", "dsn"), {"beyond": {"deep": 1}})]
    # (a split schema's index hands the look-up to its piece's: two calls, one path)
    assert set(looked_up) == {("svc",)} and len(looked_up) <= 2


def test_a_piece_is_hashed_once_when_split_and_once_when_read_back(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Splitting hashes each piece once (its name in the store and its digest), and so
    does reading it back from the store (checked against the name it is stored under):
    the pieces of a large schema add up to its tens of megabytes."""
    import hashlib

    hashed: list[bytes] = []

    class Counting:
        @staticmethod
        def sha256(data: bytes) -> Any:
            hashed.append(bytes(data))
            return hashlib.sha256(data)

    monkeypatch.setattr(magcfg.schema.index, "hashlib", Counting)
    raw = json.dumps(MINI_SCHEMA).encode()
    store = _MemoryStore()
    split = Schema(SCHEMA, raw)
    split.use_store(store)
    digests = split.piece_digests()
    pieces = {store.values[f"schema-piece:{d}"] for d in digests.values()}
    assert len(pieces) == 2 and all(hashed.count(p) == 1 for p in pieces), hashed
    assert [split.piece(key).digest for key in digests] == list(digests.values())
    hashed.clear()
    again = Schema(SCHEMA, raw)
    again.use_store(store)
    assert [again.piece(key).digest for key in digests] == list(digests.values())
    assert sorted(hashed) == sorted([*pieces, raw]), hashed  # the file, named by its digest
