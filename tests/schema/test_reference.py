"""``magcfg docs``: the reference lists what each key allows, and --out creates its folder."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import magcfg
from magcfg.compiler import Compiler
from magcfg.errors import printable
from magcfg.pipeline.cache import BuildCache
from magcfg.schema import reference
from magcfg.schema.index import SchemaIndex, load_schema
from magcfg.schema.reference import render_reference

from ..conftest import (
    REPO,
    Project,
    code_span,
    dies_in_a_child,
    failed_cleanly,
    table_cells,
    tree_state,
)


def test_reference_rows_show_enums_ranges_patterns_defaults_reload_secrecy(mini: Project
                                                                           ) -> None:
    schema = json.loads((mini.root / "schemas/schema.json").read_text())
    schema["properties"]["magds"]["properties"]["port"]["default"] = 5432
    schema["properties"]["magds"]["properties"]["host"]["format"] = "hostname"
    mini.write("schemas/schema.json", json.dumps(schema))
    done = mini.run("docs", "--out", "docs/reference/config.md")
    assert done.returncode == 0, done.stderr
    rows = {line.split(" | ")[0].strip("| `"): line for line in
            (mini.root / "docs/reference/config.md").read_text().splitlines()
            if line.startswith("| `")}
    assert rows["logging.level"] == (
        '| `logging.level` | string | one of `"debug"`, `"info"`, `"warn"`, `"error"` | hot '
        "|  |  | level |")
    assert rows["magds.port"] == ("| `magds.port` | integer | >= `1`; <= `65535` | restart "
                                  "|  | `5432` | port |")
    assert rows["magds.password"] == ("| `magds.password` | string | pattern `^(vault\\|env)://` "
                                      "| restart | yes |  | secret |")
    assert rows["magds.host"] == ("| `magds.host` | string | format `hostname` | restart |  "
                                  "|  | host |")
    check = mini.run("docs", "--check", "--out", "docs/reference/config.md")
    assert check.returncode == 0, check.stderr


def _rows(mini: Project, mutate: Callable[[dict[str, Any]], None]) -> tuple[str, dict[str, list[str]]]:
    """``magcfg docs`` of the mini schema changed by ``mutate``: the text, and the cells
    of each key's row by the key."""
    schema = json.loads((mini.root / "schemas/schema.json").read_text())
    mutate(schema["properties"]["magds"]["properties"])
    mini.write("schemas/schema.json", json.dumps(schema))
    done = mini.run("docs")
    assert done.returncode == 0, done.stderr
    rows = [table_cells(line) for line in done.stdout.splitlines() if line.startswith("| `")]
    return done.stdout, {code_span(cells[0]): cells for cells in rows}


def test_reference_shows_keys_and_values_with_backticks_as_code(mini: Project) -> None:
    hostile = "x`` ![t](https://evil.example/t.png) @octocat ``"

    def mutate(properties: dict[str, Any]) -> None:
        properties["host"].update(enum=[hostile], default=hostile, pattern=f"^`{hostile}")
        properties["a``b"] = {"type": "string", "description": "odd"}

    _, rows = _rows(mini, mutate)
    assert code_span(rows["magds.host"][5]) == json.dumps(hostile)
    enum, pattern = rows["magds.host"][2].split("; ")
    assert code_span(enum.removeprefix("one of ")) == json.dumps(hostile)
    assert code_span(pattern.removeprefix("pattern ")) == f"^`{hostile}"
    assert "magds.a``b" in rows


def test_reference_escapes_control_characters_and_html_of_descriptions(mini: Project) -> None:
    # A bare CR starts a line for a CI log (a workflow command there); ESC sequences
    # clear a terminal or hide a link; raw HTML would render in the committed reference.
    description = ("Name.\r::error file=README.md,line=1::docs injected\x1b[2J"
                   "\x1b]8;;https://evil.example\x07link\x1b]8;;\x07 \u202e"
                   " <img src=https://evil.example/i.png> &lt; a|b\nc")

    def mutate(properties: dict[str, Any]) -> None:
        properties["host"]["description"] = description

    text, rows = _rows(mini, mutate)
    assert rows["magds.host"][6] == (
        "Name.\\x0d::error file=README.md,line=1::docs injected\\x1b[2J"
        "\\x1b]8;;https://evil.example\\x07link\\x1b]8;;\\x07 \\u202e"
        " &lt;img src=https://evil.example/i.png> &amp;lt; a\\|b c")
    assert printable(text, lines=True) == text  # no control character left raw


def test_docs_out_never_writes_through_a_committed_symlink(mini: Project,
                                                          tmp_path: Path) -> None:
    # CI runs `magcfg docs --out docs/config-reference.md` in a checkout a pull request
    # controls: a symlink there, at the file or in place of a directory, was committed.
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "ref.md").write_text("not yours\n")
    (mini.root / "docs").mkdir()
    os.symlink(outside / "ref.md", mini.root / "docs/ref.md")
    os.symlink(outside, mini.root / "away")
    # However the path reaches the checkout: relatively, through a link of the operator's
    # outside it (absolute), or with `..` after a committed link.
    os.symlink(mini.root, tmp_path / "checkout")
    (outside / "sub").mkdir()
    os.symlink(outside / "sub", mini.root / "docs/deeper")
    before, away = tree_state(mini.root), tree_state(outside)
    suffix = "is a symlink in the checkout, which magcfg never writes through\n"
    for target, message in (
            ("docs/ref.md", f"docs/ref.md: error: cannot write: docs/ref.md {suffix}"),
            ("away/new.md", f"away/new.md: error: cannot write: away {suffix}"),
            (f"{tmp_path}/checkout/away/new.md",
             f"{tmp_path}/checkout/away/new.md: error: cannot write: away {suffix}"),
            ("docs/deeper/../new.md", "docs/deeper/../new.md: error: cannot write: give a "
                                      "path without '..'\n")):
        for command in (["docs", "--out", target], ["schema", "infer", "-o", target],
                        ["schema", "layer", "-o", target]):
            assert failed_cleanly(mini.run(*command), 1) == message, command
    assert (tree_state(mini.root), tree_state(outside)) == (before, away)


def test_docs_out_that_is_a_directory_is_refused_cleanly(mini: Project) -> None:
    (mini.root / "docs").mkdir()
    before = tree_state(mini.root)
    done = mini.run("docs", "--out", "docs")
    assert failed_cleanly(done, 1) == "docs: error: is a directory; give a file name\n"
    assert tree_state(mini.root) == before


_SPLIT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "x-magcfg-reload": "hot",
    "$defs": {"port": {"type": "integer", "minimum": 1, "maximum": 65535,
                       "description": "A port."}},
    # Every piece repeats this: the root's `*`, listed once.
    "additionalProperties": {"type": "object", "description": "Any other service.",
                             "properties": {"enabled": {"type": "boolean", "default": True}}},
    "properties": {
        "b": {"type": "object", "description": "B " * 200, "properties": {
            "port": {"$ref": "#/$defs/port", "default": 80},
            "mode": {"enum": ["a", "b"], "x-magcfg-reload": "restart"},
            "ratio": {"type": "number", "exclusiveMaximum": 1.5, "multipleOf": 0.25}}},
        "a": {"type": "object", "x-magcfg-secret": True, "description": "A " * 200,
              "properties": {"token": {"type": "string", "pattern": "^vault://"}}},
        # A key named like the wildcard: its piece has both.
        "*": {"type": "object", "description": "Star " * 100,
              "properties": {"extra": {"type": "integer", "const": 7}}},
        # Sorts before `*`.
        " early": {"type": "string", "description": "Early " * 100},
    },
}


@pytest.mark.parametrize("schema", ["mixed", "no key named *", "realistic"])
def test_reference_of_a_split_schema_is_the_whole_files(mini: Project, schema: str) -> None:
    """``docs`` of a split schema reads its pieces one at a time, never indexing the file
    itself, and renders what the file's own index renders."""
    document = copy.deepcopy(_SPLIT_SCHEMA)
    if schema == "no key named *":
        del document["properties"]["*"]
    if schema != "realistic":
        raw = json.dumps(document, indent=2).encode()
    else:
        synth = mini.root.parent / "synth"
        subprocess.run([sys.executable, str(REPO / "benchmarks" / "synth.py"), str(synth),
                        "--shape", "realistic", "--services", "5", "--keys", "60",
                        "--envs", "1"], check=True, capture_output=True)
        raw = (synth / "schemas" / "platform.schema.json").read_bytes()
    (mini.root / "schemas" / "schema.json").write_bytes(raw)
    whole = render_reference(load_schema("schemas/schema.json", raw).index)
    split = Compiler(magcfg.load_project(mini.root / "magcfg.yaml"),
                     cache=BuildCache(None)).schema()
    assert split is not None and split.piece_digests()
    assert render_reference(split.index) == whole
    assert split.index._tree is None  # the file itself was not indexed
    assert not split._pieces  # each piece let go once read
    if schema != "realistic":
        rows = [line.split(" | ")[0] for line in whole.splitlines() if line.startswith("| `")]
        star = ["| `*.extra`"] if schema == "mixed" else []
        assert rows == ["| ` early`", "| `*`", "| `*.enabled`", *star, "| `a`",
                        "| `a.token`", "| `b`", "| `b.mode`", "| `b.port`", "| `b.ratio`"]


@pytest.mark.parametrize("split_file", [True, False])
def test_reference_in_two_processes_is_the_same(
        mini: Project, monkeypatch: pytest.MonkeyPatch, split_file: bool) -> None:
    raw = json.dumps(_SPLIT_SCHEMA, indent=2).encode()
    (mini.root / "schemas" / "schema.json").write_bytes(raw)
    whole = render_reference(load_schema("schemas/schema.json", raw).index, jobs=1)
    split = Compiler(magcfg.load_project(mini.root / "magcfg.yaml"),
                     cache=BuildCache(None)).schema()
    assert split is not None
    index = split.index if split_file else load_schema("schemas/schema.json", raw).index
    monkeypatch.setattr(reference, "MIN_PARALLEL_KEYS", 0)
    parent = os.getpid()
    here: list[str] = []  # the top-level keys rendered in this process
    real = SchemaIndex.entries

    def counted(self: SchemaIndex, keys: Any = None) -> Any:
        if os.getpid() == parent:
            here.extend(keys)
        return real(self, keys)

    monkeypatch.setattr(SchemaIndex, "entries", counted)
    assert render_reference(index, jobs=2) == whole
    assert 0 < len(here) < len(index.entry_keys())  # the other keys rendered elsewhere


def test_a_rendering_process_that_dies_is_made_up_for(
        mini: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = json.dumps(_SPLIT_SCHEMA, indent=2).encode()
    whole = render_reference(load_schema("schemas/schema.json", raw).index, jobs=1)
    monkeypatch.setattr(reference, "MIN_PARALLEL_KEYS", 0)
    dies_in_a_child(monkeypatch, reference, "_row")
    assert render_reference(load_schema("schemas/schema.json", raw).index, jobs=3) == whole
