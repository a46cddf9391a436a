"""The JSON Schema is hostile input too: a build never touches the network, never reads
outside the repository, never ignores an annotation it does not understand, and answers
a schema it refuses with a located error (schema file, line, JSON pointer), exit 1, no
traceback, and generated/ exactly as it was."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import magcfg
from magcfg.errors import BuildError
from magcfg.schema.index import Schema
from magcfg.schema.validator import Validator
from magcfg.secrets.redaction import Redactor

from ..conftest import MINI_SCHEMA, Project, failed_cleanly, tree_state

SCHEMA = "schemas/schema.json"
DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _line_of(text: str, needle: str) -> int:
    """1-based line of the first occurrence of ``needle`` (the test's own oracle)."""
    index = text.index(needle)
    return text.count("\n", 0, index) + 1


def _mutated(mutate: Callable[[dict[str, Any]], None]) -> str:
    schema = copy.deepcopy(MINI_SCHEMA)
    mutate(schema)
    return json.dumps(schema, indent=2)


def _password(schema: dict[str, Any]) -> dict[str, Any]:
    node: dict[str, Any] = schema["properties"]["magds"]["properties"]["password"]
    return node


def _host(schema: dict[str, Any]) -> dict[str, Any]:
    node: dict[str, Any] = schema["properties"]["magds"]["properties"]["host"]
    return node


@pytest.fixture
def built(mini: Project) -> Project:
    """``mini`` after one good build: its generated/ is what a refused build must keep."""
    assert mini.run("build").returncode == 0
    return mini


def _refused(project: Project, schema_text: str, *args: str) -> str:
    """Write the schema, run the real CLI, assert a clean failure that left generated/
    untouched; returns stderr."""
    before = tree_state(project.root / "generated")
    project.write(SCHEMA, schema_text)
    done = project.run(*(args or ("build",)))
    stderr = failed_cleanly(done, 1)
    assert tree_state(project.root / "generated") == before
    return stderr


class _Listener:
    """A TCP server on 127.0.0.1 that counts the connections it accepts."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port: int = self.sock.getsockname()[1]
        self.accepted = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            with conn:
                conn.sendall(b'HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n'
                             b'{"type": "string"}')

    def prove_it_counts(self) -> None:
        """A connection made on purpose is counted: zero meant nobody came."""
        before = self.accepted
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as conn:
            conn.recv(1)
        for _ in range(500):
            if self.accepted > before:
                return
            threading.Event().wait(0.01)
        raise AssertionError("the listener did not count a connection")

    def close(self) -> None:
        # close() alone does not wake a thread blocked in accept() on Linux; shutdown does.
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join(timeout=5)
        assert not self._thread.is_alive()


@pytest.fixture
def listener() -> Iterator[_Listener]:
    server = _Listener()
    yield server
    server.close()


# -- references: nothing outside the schema file, never the network --------------------

NETWORK_CASES = {
    "http-ref": lambda base: (lambda s: _host(s).__setitem__("$ref", f"{base}/x.json"),
                              '"$ref": "http://', "#/properties/magds/properties/host/$ref",
                              f'$ref "{base}/x.json" is not a JSON pointer into this file '
                              "(a build never fetches anything over the network); write "
                              '"#/$defs/<name>"'),
    "https-ref": lambda base: (lambda s: _host(s).__setitem__(
                                   "$ref", base.replace("http:", "https:") + "/x.json"),
                               '"$ref": "https://', "#/properties/magds/properties/host/$ref",
                               f'$ref "{base.replace("http:", "https:")}/x.json" is not a '
                               "JSON pointer into this file (a build never fetches anything "
                               'over the network); write "#/$defs/<name>"'),
    "remote-$schema": lambda base: (lambda s: s.__setitem__("$schema", f"{base}/meta.json"),
                                    '"$schema"', "#/$schema",
                                    f'$schema must be "{DIALECT}" (or left out), not '
                                    f'"{base}/meta.json" (a string): magcfg schemas are JSON '
                                    "Schema 2020-12, and no other meta-schema is ever fetched"),
    "$id-relative-ref": lambda base: (
        lambda s: (s.__setitem__("$id", f"{base}/root.json"),
                   _host(s).__setitem__("$ref", "other.json")),
        '"$ref": "other.json"', "#/properties/magds/properties/host/$ref",
        '$ref "other.json" is not a JSON pointer into this file (a magcfg schema is one '
        'file: move the definition under $defs); write "#/$defs/<name>"'),
    "embedded-$id": lambda base: (
        lambda s: _host(s).__setitem__("$id", f"{base}/host.json"),
        '"$id"', "#/properties/magds/properties/host/$id",
        "$id is allowed only at the top of the schema: below it, it would change what the "
        "$refs under it point to"),
}


@pytest.mark.parametrize("case", sorted(NETWORK_CASES))
def test_schema_reaching_the_network_is_refused_without_a_connection(
        built: Project, listener: _Listener, case: str) -> None:
    base = f"http://127.0.0.1:{listener.port}"
    mutate, needle, pointer, message = NETWORK_CASES[case](base)
    text = _mutated(mutate)
    stderr = _refused(built, text)
    assert stderr == f"{SCHEMA}:{_line_of(text, needle)}: error: {message} [{pointer}]\n"
    assert listener.accepted == 0
    listener.prove_it_counts()


def test_docs_and_explain_refuse_the_same_schema_without_a_connection(
        built: Project, listener: _Listener) -> None:
    text = _mutated(lambda s: _host(s).__setitem__("$ref", f"http://127.0.0.1:{listener.port}/x"))
    for args in (("docs",), ("explain", "magds.host", "--env", "dev")):
        stderr = _refused(built, text, *args)
        assert "is not a JSON pointer into this file" in stderr, (args, stderr)
    assert listener.accepted == 0
    listener.prove_it_counts()


def test_compiled_validator_refuses_retrieval_even_without_the_check(
        listener: _Listener) -> None:
    """The second line of defence: resolution itself cannot leave the file, even for a
    document that never went through the dialect check."""
    schema = Schema(SCHEMA, b"{}")
    schema._document = {"type": "object", "properties": {
        "a": {"$ref": f"http://127.0.0.1:{listener.port}/x.json"}}}
    with pytest.raises(BuildError) as info:
        Validator(schema, Redactor(None))
    assert [d.message for d in info.value.diagnostics] == [
        f"schema cannot be compiled: Resource 'http://127.0.0.1:{listener.port}/x.json' is "
        "not present in a registry and retrieving it failed: RetrievalRefused: magcfg does "
        f"not retrieve http://127.0.0.1:{listener.port}/x.json"]
    assert listener.accepted == 0
    listener.prove_it_counts()


def test_file_url_ref_is_refused(built: Project) -> None:
    text = _mutated(lambda s: _host(s).__setitem__("$ref", "file:///etc/passwd"))
    stderr = _refused(built, text)
    assert stderr == (
        f"{SCHEMA}:{_line_of(text, 'file:///etc/passwd')}: error: $ref \"file:///etc/passwd\" "
        "is not a JSON pointer into this file (a build never reads anything outside the "
        "repository); write \"#/$defs/<name>\" [#/properties/magds/properties/host/$ref]\n")


def test_file_url_ref_is_refused_without_being_opened(built: Project, tmp_path: Path) -> None:
    """A FIFO outside the repository: whoever opens it for reading releases the writer
    waiting on it, so an open is seen, not guessed."""
    fifo = tmp_path / "outside" / "canary.json"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    opened = threading.Event()

    def wait_for_a_reader() -> None:
        fd = os.open(fifo, os.O_WRONLY)  # blocks until someone opens it for reading
        opened.set()
        os.close(fd)

    writer = threading.Thread(target=wait_for_a_reader, daemon=True)
    writer.start()
    text = _mutated(lambda s: _host(s).__setitem__("$ref", fifo.as_uri()))
    stderr = _refused(built, text)
    assert stderr.startswith(f"{SCHEMA}:{_line_of(text, 'file://')}: error: $ref \"file:///")
    assert stderr.endswith("is not a JSON pointer into this file (a build never reads anything "
                           "outside the repository); write \"#/$defs/<name>\" "
                           "[#/properties/magds/properties/host/$ref]\n")
    assert not opened.is_set()
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # release the writer: it counts
    writer.join(timeout=5)
    os.close(reader)
    assert opened.is_set()


def test_relative_file_ref_is_refused_even_inside_the_repository(built: Project) -> None:
    built.write("schemas/host.json", json.dumps({"type": "string"}))
    text = _mutated(lambda s: _host(s).__setitem__("$ref", "host.json#/"))
    stderr = _refused(built, text)
    assert stderr == (
        f"{SCHEMA}:{_line_of(text, 'host.json')}: error: $ref \"host.json#/\" is not a JSON "
        "pointer into this file (a magcfg schema is one file: move the definition under "
        "$defs); write \"#/$defs/<name>\" [#/properties/magds/properties/host/$ref]\n")


def test_anchor_and_dynamic_refs_are_refused(built: Project) -> None:
    def mutate(s: dict[str, Any]) -> None:
        s["$defs"] = {"host": {"$anchor": "host", "type": "string"}}
        _host(s)["$ref"] = "#host"
        _password(s)["$dynamicRef"] = "#meta"

    text = _mutated(mutate)
    stderr = _refused(built, text)
    assert stderr.splitlines() == [
        f"{SCHEMA}:{_line_of(text, '#host')}: error: $ref \"#host\" is not a JSON pointer "
        "into this file (anchors are not supported: point at the definition); write "
        "\"#/$defs/<name>\" [#/properties/magds/properties/host/$ref]",
        f"{SCHEMA}:{_line_of(text, '$dynamicRef')}: error: $dynamicRef and $recursiveRef are "
        "not supported: use $ref with a JSON pointer (\"#/$defs/<name>\") "
        "[#/properties/magds/properties/password/$dynamicRef]",
    ]


@pytest.mark.parametrize("ref", ["#/$defs/missing", "#/required", "#/required/0"])
def test_ref_to_no_schema_is_a_located_error(built: Project, ref: str) -> None:
    text = _mutated(lambda s: _host(s).__setitem__("$ref", ref))
    stderr = _refused(built, text)
    assert stderr == (
        f"{SCHEMA}:{_line_of(text, ref)}: error: $ref {ref!r} points to no schema in this "
        "file [#/properties/magds/properties/host/$ref]\n")


def test_ref_to_nothing_where_the_index_does_not_look(built: Project) -> None:
    """Under ``not`` only jsonschema-rs follows the pointer: its error says the same."""
    text = _mutated(lambda s: _host(s).__setitem__("not", {"$ref": "#/$defs/missing"}))
    stderr = _refused(built, text)
    assert stderr == (
        f"{SCHEMA}:{_line_of(text, '#/$defs/missing')}: error: $ref '#/$defs/missing' points "
        "to no schema in this file [#/properties/magds/properties/host/not/$ref]\n")


def test_local_refs_still_work_percent_encoded_and_with_a_root_id(mini: Project) -> None:
    def mutate(s: dict[str, Any]) -> None:
        s["$id"] = "https://magflock.invalid/schema.json"
        s["$defs"] = {"a secret": {"type": "string", "pattern": "^(vault|env)://",
                                   "x-magcfg-secret": True}}
        _password(s).clear()
        _password(s)["$ref"] = "#/$defs/a%20secret"

    mini.write(SCHEMA, _mutated(mutate))
    mini.write("layers/base/secret.yaml", "magds:\n  password: env://DB_PASSWORD\n")
    result = magcfg.build(magcfg.load_project(mini.root / "magcfg.yaml"))
    manifest = json.loads(result.artifacts["dev"].files["manifest.json"])
    assert manifest["secret_keys"] == ["magds.password"]
    mini.write("layers/base/secret.yaml", "magds:\n  password: hunter2-literal\n")
    done = mini.run("build")
    stderr = failed_cleanly(done, 1)
    assert "hunter2" not in stderr and "magds.password" in stderr


def test_not_a_json_schema_is_located(built: Project) -> None:
    text = _mutated(lambda s: _host(s).__setitem__("type", "objekt"))
    stderr = _refused(built, text)
    assert stderr == (
        f"{SCHEMA}:{_line_of(text, 'objekt')}: error: not a valid JSON Schema: \"objekt\" is "
        "not valid under any of the schemas listed in the 'anyOf' keyword "
        "[#/properties/magds/properties/host/type]\n")


def test_regex_that_cannot_compile_is_located(built: Project) -> None:
    text = _mutated(lambda s: _host(s).__setitem__("pattern", "(unclosed"))
    stderr = _refused(built, text)
    assert stderr == (
        f"{SCHEMA}:{_line_of(text, '(unclosed')}: error: schema cannot be compiled: "
        "\"(unclosed\" is not a \"regex\" [#/properties/magds/properties/host/pattern]\n")


# -- annotations: exactly what the docs allow, or an error ------------------------------

ANNOTATION_CASES = [
    ("secret-string", "x-magcfg-secret", "true",
     'x-magcfg-secret must be true or false, not "true" (a string)'),
    ("secret-one", "x-magcfg-secret", 1, "x-magcfg-secret must be true or false, not 1 (a number)"),
    ("secret-null", "x-magcfg-secret", None,
     "x-magcfg-secret must be true or false, not null (null)"),
    ("reload-case", "x-magcfg-reload", "Hot",
     'x-magcfg-reload must be "hot" or "restart", not "Hot" (a string)'),
    ("reload-list", "x-magcfg-reload", ["hot"],
     'x-magcfg-reload must be "hot" or "restart", not ["hot"] (a list)'),
    ("merge-key-empty", "x-magcfg-merge-key", "",
     'x-magcfg-merge-key must name the key of the list\'s items (a non-empty string), '
     'not "" (a string)'),
    ("merge-key-number", "x-magcfg-merge-key", 5,
     "x-magcfg-merge-key must name the key of the list's items (a non-empty string), "
     "not 5 (a number)"),
    ("unknown-typo", "x-magcfg-secrte", True,
     "unknown annotation 'x-magcfg-secrte' (did you mean 'x-magcfg-secret'?)"),
    ("unknown-far", "x-magcfg-vault-path", "kv/x",
     "unknown annotation 'x-magcfg-vault-path'; magcfg's annotations are x-magcfg-merge-key, "
     "x-magcfg-reload, x-magcfg-secret, x-magcfg-secret-value"),
]


@pytest.mark.parametrize(("name", "annotation", "value", "message"), ANNOTATION_CASES,
                         ids=[c[0] for c in ANNOTATION_CASES])
def test_annotation_that_is_not_exactly_documented_is_an_error(
        built: Project, name: str, annotation: str, value: Any, message: str) -> None:
    def mutate(s: dict[str, Any]) -> None:
        _password(s).pop("x-magcfg-secret")
        _password(s)[annotation] = value

    text = _mutated(mutate)
    stderr = _refused(built, text)
    assert stderr == (f"{SCHEMA}:{_line_of(text, annotation)}: error: {message} "
                      f"[#/properties/magds/properties/password/{annotation}]\n")


def test_annotation_under_a_combinator_or_a_definition_is_checked_too(built: Project) -> None:
    def mutate(s: dict[str, Any]) -> None:
        s["$defs"] = {"token": {"type": "string", "x-magcfg-secret": "yes"}}
        _host(s)["anyOf"] = [{"type": "string", "x-magcfg-reload": "live"}]

    text = _mutated(mutate)
    stderr = _refused(built, text)
    assert stderr.splitlines() == [
        f"{SCHEMA}:{_line_of(text, 'live')}: error: x-magcfg-reload must be \"hot\" or "
        "\"restart\", not \"live\" (a string) "
        "[#/properties/magds/properties/host/anyOf/0/x-magcfg-reload]",
        f"{SCHEMA}:{_line_of(text, 'yes')}: error: x-magcfg-secret must be true or false, "
        "not \"yes\" (a string) [#/$defs/token/x-magcfg-secret]",
    ]


BESIDE_REF_CASES = [
    ("pattern", {"x-magcfg-secret": True, "x-magcfg-secret-value": {"pattern": "(a)\\1"}},
     "x-magcfg-secret-value/pattern", "(a)",
     "pattern '(a)\\\\1' is not a regular expression magcfg can check"),
    ("not-secret", {"x-magcfg-secret-value": {"minLength": 3}}, "x-magcfg-secret-value",
     "x-magcfg-secret-value", "x-magcfg-secret-value on magds.password, which is not secret"),
    ("not-boolean", {"x-magcfg-secret": "yes"}, "x-magcfg-secret", "yes",
     "x-magcfg-secret must be true or false"),
]


@pytest.mark.parametrize(("name", "beside", "key", "needle", "message"), BESIDE_REF_CASES,
                         ids=[c[0] for c in BESIDE_REF_CASES])
def test_annotation_beside_a_ref_is_located_at_its_own_line(
        built: Project, name: str, beside: dict[str, Any], key: str, needle: str,
        message: str) -> None:
    """The index reads the keywords beside a ``$ref`` apart from it; an error about one
    of them names its own line and pointer, not the top of the file."""
    def mutate(s: dict[str, Any]) -> None:
        s["$defs"] = {"password": {"type": "string"}}
        s["properties"]["magds"]["properties"]["password"] = {
            "$ref": "#/$defs/password", **beside}

    text = _mutated(mutate)
    stderr = _refused(built, text)
    start = text.index('"password": {\n')
    line = text.count("\n", 0, text.index(needle, start)) + 1
    assert stderr.startswith(f"{SCHEMA}:{line}: error: {message}"), stderr
    assert stderr.endswith(f" [#/properties/magds/properties/password/{key}]\n"), stderr
    assert stderr.count("\n") == 1


def test_annotation_names_as_property_names_or_data_are_not_annotations(mini: Project) -> None:
    """A key *named* x-magcfg-secret, or one inside a default, is data, not an annotation."""
    def mutate(s: dict[str, Any]) -> None:
        s["properties"]["magds"]["properties"]["x-magcfg-secret"] = {"type": "string"}
        _host(s)["default"] = "db"
        s["properties"]["magds"]["default"] = {"x-magcfg-reload": 5}
        _password(s)["x-magcfg-secret"] = True
        s["properties"]["logging"]["x-magcfg-reload"] = "restart"

    mini.write(SCHEMA, _mutated(mutate))
    mini.write("layers/base/odd.yaml", "magds:\n  x-magcfg-secret: plain\n")
    result = magcfg.build(magcfg.load_project(mini.root / "magcfg.yaml"))
    assert result.artifacts["dev"].config["magds"]["x-magcfg-secret"] == "plain"


def test_false_secret_annotation_is_allowed(mini: Project) -> None:
    mini.write(SCHEMA, _mutated(lambda s: _host(s).__setitem__("x-magcfg-secret", False)))
    magcfg.build(magcfg.load_project(mini.root / "magcfg.yaml"))


def test_many_bad_annotations_are_counted_past_twenty(built: Project) -> None:
    def mutate(s: dict[str, Any]) -> None:
        s["$defs"] = {f"d{i:03}": {"x-magcfg-secret": "true"} for i in range(150)}

    text = _mutated(mutate)
    stderr = _refused(built, text)
    # Sorted by line: the count (at line 1) comes first.
    lines = stderr.splitlines()
    assert len(lines) == 21
    assert lines[0] == f"{SCHEMA}:1: error: 130 more schema errors not shown"
    assert lines[1] == (f"{SCHEMA}:{_line_of(text, 'd000') + 1}: error: x-magcfg-secret must be "
                        "true or false, not \"true\" (a string) [#/$defs/d000/x-magcfg-secret]")
    assert lines[20].endswith("[#/$defs/d019/x-magcfg-secret]")


# -- size and depth --------------------------------------------------------------------


def _deep_text(levels: int) -> str:
    text = json.dumps(MINI_SCHEMA, indent=2)
    deep = '{"type": "object", "properties": {"a": ' * levels + "{}" + "}}" * levels
    return text.replace('"properties": {', '"properties": {\n"deep": ' + deep + ",\n", 1)


@pytest.mark.parametrize("levels", [70, 130, 3000])
def test_deeply_nested_schema_is_a_located_error(built: Project, levels: int) -> None:
    """70 levels of properties are 140 of JSON (past the limit, parsed by json); 130 are
    past what jsonschema-rs converts (it raised ValueError: Recursion limit reached);
    3,000 are past json's own recursion limit. All give the same error."""
    text = _deep_text(levels)
    stderr = _refused(built, text)
    line = _line_of(text, '"deep"')
    assert stderr == f"{SCHEMA}:{line}: error: nesting deeper than 128 levels\n"


def test_the_depth_rule_admits_exactly_its_levels_of_any_kind() -> None:
    """The schema file's check admits JSON nested ``MAX_DEPTH`` levels, of objects,
    arrays or both, with scalars anywhere, and refuses one level more of either kind;
    one subschema a level, no ``anyOf`` (twice the time to compile, on every cold
    build)."""
    import jsonschema_rs

    from magcfg.schema.dialect import _SCALAR, MAX_DEPTH, _nesting

    rules = _nesting(MAX_DEPTH)
    assert rules["magcfg-depth-0"] == _SCALAR
    assert all(set(rule) == {"additionalProperties", "items"}
               for name, rule in rules.items() if name != "magcfg-depth-0")
    check = jsonschema_rs.Draft202012Validator(
        {"$ref": f"#/$defs/magcfg-depth-{MAX_DEPTH}", "$defs": rules})

    def nested(levels: int, kinds: str) -> Any:
        """``levels`` containers deep, each beside a scalar and (but the innermost) an
        empty container of the other kind, which is no deeper than the value."""
        value: Any = "leaf"
        for level in range(levels):
            if kinds[level % len(kinds)] == "a":
                value = [1, value, *([{}] if level else [])]
            else:
                value = {"x": 1, "y": value, **({"z": []} if level else {})}
        return value

    for kinds in ("o", "a", "oa", "aao"):
        assert check.is_valid(nested(MAX_DEPTH, kinds)), kinds
        assert not check.is_valid(nested(MAX_DEPTH + 1, kinds)), kinds
    assert check.is_valid(None) and check.is_valid({"a": [True, 1.5, None]})


def test_long_chain_of_refs_is_a_located_error(built: Project) -> None:
    def mutate(s: dict[str, Any]) -> None:
        s["$defs"] = {f"d{i}": {"type": "object", "properties": {"next": {"$ref": f"#/$defs/d{i + 1}"}}}
                      for i in range(3000)}
        s["$defs"]["d3000"] = {"type": "string"}
        s["properties"]["chain"] = {"$ref": "#/$defs/d0"}

    text = _mutated(mutate)
    stderr = _refused(built, text)
    assert stderr.startswith(f"{SCHEMA}:")
    assert stderr.endswith(" the schema nests deeper than 256 levels where its $refs are "
                           "followed [#/$defs/d127/properties/next]\n"), stderr
    line = int(stderr.split(":")[1])
    assert line == _line_of(text, '"d127"') + 3  # "type", "properties", then "next"



def test_shapes_reused_deeper_and_deeper_are_a_located_error(built: Project) -> None:
    """Each definition nests 60 keys and then reuses the previous one, already indexed:
    no single walk recurses deep, but the keys nest 300 levels."""
    def nested(levels: int, leaf: dict[str, Any]) -> dict[str, Any]:
        for _ in range(levels):
            leaf = {"type": "object", "properties": {"a": leaf}}
        return leaf

    def mutate(s: dict[str, Any]) -> None:
        s["$defs"] = {"d0": nested(60, {"type": "string"})}
        for k in range(1, 5):
            s["$defs"][f"d{k}"] = nested(60, {"$ref": f"#/$defs/d{k - 1}"})
        for k in range(5):
            s["properties"][f"p{k}"] = {"$ref": f"#/$defs/d{k}"}

    text = _mutated(mutate)
    stderr = _refused(built, text)
    # Heights: d0 61 levels, d1 121, ..., d4 301: the first node past 256 is 44 down d4.
    assert stderr.startswith(f"{SCHEMA}:")
    assert stderr.endswith(": error: the keys below this point nest deeper than 256 levels "
                           "where the $refs are followed "
                           f"[#/$defs/d4{'/properties/a' * 44}]\n"), stderr

def _doubling(s: dict[str, Any], links: int) -> None:
    """A chain of definitions, each using the one before twice: 2**links keys."""
    s["$defs"] = {"zz0": {"type": "string"}}
    for i in range(1, links + 1):
        s["$defs"][f"zz{i}"] = {"type": "object", "properties": {
            "a": {"$ref": f"#/$defs/zz{i - 1}"}, "b": {"$ref": f"#/$defs/zz{i - 1}"}}}


@pytest.mark.parametrize(("command", "combined"), [("build", True), ("docs", False)])
def test_a_schema_that_doubles_through_refs_is_a_located_error(
        built: Project, command: str, combined: bool) -> None:
    """6 KB of definitions: combining allOf the chain with itself took 20 s and ran out of
    memory; ``magcfg docs`` walked the 2**20 keys for minutes. Refused in seconds."""
    def mutate(s: dict[str, Any]) -> None:
        _doubling(s, 20)
        s["properties"]["magds"]["properties"]["doubled"] = (
            {"allOf": [{"$ref": "#/$defs/zz20"}, {"$ref": "#/$defs/zz20"}]} if combined
            else {"$ref": "#/$defs/zz20"})

    text = _mutated(mutate)
    before = tree_state(built.root / "generated")
    built.write(SCHEMA, text)
    stderr = failed_cleanly(built.run(command, timeout=30), 1)
    assert tree_state(built.root / "generated") == before
    line = _line_of(text, '"zz19"')
    assert stderr == (f"{SCHEMA}:{line}: error: the schema expands to "
                      "more than 1,000,000 subschemas through $ref here (a definition used "
                      "twice in one that is used twice ...) [#/$defs/zz19]\n"), stderr


def test_a_shape_combined_with_itself_is_indexed_once(mini: Project) -> None:
    """allOf of a doubling chain with itself: the same keys as the chain, and each pair of
    shared nodes combined once (it was 2**16 combinations here)."""
    def mutate(s: dict[str, Any]) -> None:
        _doubling(s, 16)
        s["properties"]["magds"]["properties"]["doubled"] = {
            "allOf": [{"$ref": "#/$defs/zz16"}, {"$ref": "#/$defs/zz16"}]}

    schema = Schema("s.json", _mutated(mutate).encode())
    entries = [e.path for e in schema.index.entries() if "doubled" in e.path]
    assert len(entries) == 2 ** 17 - 1
    assert entries[:3] == ["magds.doubled", "magds.doubled.a", "magds.doubled.a.a"]
    doubled = schema.index._root.children["magds"].children["doubled"]
    for _ in range(15):
        assert doubled.children["a"] is doubled.children["b"]
        doubled = doubled.children["a"]


def test_schema_document_that_is_not_an_object(built: Project) -> None:
    stderr = _refused(built, "[1, 2]\n")
    assert stderr == f"{SCHEMA}:1: error: a schema must be a JSON object\n"


# -- many unknown keys: linear, and capped --------------------------------------------


def test_many_unknown_keys_report_twenty_and_count_the_rest(built: Project) -> None:
    keys = 3000
    before = tree_state(built.root / "generated")
    built.write("layers/environments/dev/unknown.yaml",
                "magds:\n" + "".join(f"  unknown_key_{i}: {i}\n" for i in range(keys)))
    done = built.run("build")
    stderr = failed_cleanly(done, 1)
    assert tree_state(built.root / "generated") == before
    # Sorted by line: the count, at the line of the map they are in, comes first.
    lines = stderr.splitlines()
    assert len(lines) == 21
    assert lines[0] == (f"layers/environments/dev/unknown.yaml:1: error: {keys - 20} more "
                        "schema errors not shown [magds]")
    assert lines[1] == ("layers/environments/dev/unknown.yaml:2: error: unknown key "
                        "'unknown_key_0'; known keys here: host, password, pool, port, tags "
                        "[magds.unknown_key_0]")
    assert lines[20].startswith("layers/environments/dev/unknown.yaml:21: error: unknown key "
                                "'unknown_key_19';")


def test_unknown_keys_across_many_fragments_are_capped_per_environment(built: Project) -> None:
    built.write("layers/environments/dev/top.yaml",
                "".join(f"top_{i}: {i}\n" for i in range(500)))
    done = built.run("build")
    stderr = failed_cleanly(done, 1)
    lines = stderr.splitlines()
    assert len(lines) == 21
    assert lines[-1] == "magcfg.yaml: error: 480 more schema errors not shown (environment dev)"


# -- the schema's strings in messages: one line each, whatever they hold -----------------

_FORGED = "\n::error file=README.md,line=1::pwned\rlayers/base/magds.yaml:1: error: fake [x]\n"


def test_a_pattern_with_newlines_forges_no_line_of_build_output(built: Project) -> None:
    # A CI log (GitHub Actions' workflow commands) reads each line of it; a pattern the
    # pull request wrote is quoted on one.
    def mutate(schema: dict[str, Any]) -> None:
        _host(schema)["pattern"] = f"^({_FORGED})$"
        _password(schema)["pattern"] = f"^({_FORGED})$"
        schema["properties"]["magds"]["properties"][f"k{_FORGED}"] = {"type": "string"}

    built.write("layers/base/extra.yaml", "magds:\n  password: x\n  zzzzzzzz: 1\n")
    stderr = _refused(built, _mutated(mutate))
    forged = "\\x0a::error file=README.md,line=1::pwned\\x0dlayers/base/magds.yaml:1: error: fake [x]\\x0a"
    lines = stderr.splitlines()
    assert all(line.startswith("layers/") for line in lines), stderr
    assert (f'layers/base/magds.yaml:2: error: "db" does not match "^({forged})$" (schema: '
            "pattern) (environment prod) [magds.host]") in lines, stderr
    assert any(f"<redacted> does not match {f'^({_FORGED})$'!r} (a secret key" in line
               for line in lines), stderr
    assert any(f"known keys here: host, k{forged}, password" in line for line in lines), stderr


def test_a_regex_with_newlines_that_cannot_compile_is_one_line(built: Project) -> None:
    text = _mutated(lambda s: _host(s).__setitem__("pattern", f"({_FORGED}"))
    stderr = _refused(built, text)
    assert stderr.count("\n") == 1 and "::error" in stderr and "\r" not in stderr, stderr
