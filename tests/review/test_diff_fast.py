"""The fast pieces ``magcfg diff`` relies on answer exactly as the reference ones.

* ``keylines._index_simple`` (a line reader for plain block YAML) gives the same key
  lines as the parser-event index ``keylines._index``, or declines (``None``);
* the schema index computes a node's ``constraints`` on first use, with the same result
  as computing them while building;
* a whole ``magcfg diff`` on a generated repository with many changes is the same with
  the line reader and the origins from key lines switched off (the reference path:
  parser events, parsed values) as with them on; and with the schema's policy tables
  as with its index;
* the key lines a diff keeps in the build cache give the next diff the same answer
  (an edited file is indexed again).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from magcfg.project import load_project
from magcfg.review import diff as diffs
from magcfg.schema.index import SchemaIndex, constraints, load_schema
from magcfg.syntax import keylines
from magcfg.syntax.keylines import _index, _index_simple

from ..conftest import calls, dies_in_a_child, overridden_keyed_list

REPO = Path(__file__).resolve().parents[2]

SIMPLE = [
    "a: 1\nb:\n  c: x\n  d: [1, 2]\n",
    "# comment\n\na:\n  b:\n    c: 1\n  e: 'q'\nf: \"x y\"  # trailing\n",
    "a: []\nb: {}\nc: [{name: x, port: 1}, {name: y, port: 2}]\n",
    "a: !unset\nb: !replace\n  c: 1\n",
    "  a: 1\n  b: 2\n",
    "",
    "# only a comment\n",
    "a:\nb: 2\n",
    "a: 1",                           # no line break at the end
    "a: 1\n\n\n# c",
    "a:\n  b: x\n\n  # c\n  c: w\nd: 1\n",
]

DECLINED = [
    "a:\n  - 1\n  - 2\n",            # block sequence
    "a: |\n  text\n",                # block scalar
    "a: &x 1\nb: *x\n",              # anchors
    "a: \"multi\n  line\"\n",        # multi-line quoted scalar
    "---\na: 1\n",                   # document marker
    "a: {b: 1}\n",                   # flow map
    "a: [x, ]\n",                    # trailing comma
    "'quoted key': 1\n",
    "a:\tb\n",
    "a: x\n  continued\n",            # multi-line plain scalar
    "a: 1\nb: |",                     # the last line, without a line break
    "a: 1\nb",
    "a: 1\n? b\n: 2\n",               # complex key
]


@pytest.mark.parametrize("text", SIMPLE)
def test_line_reader_agrees_with_parser_events(text: str) -> None:
    got = _index_simple(text)
    assert got is not None
    assert got == _index(text)


@pytest.mark.parametrize("text", DECLINED)
def test_line_reader_declines_other_shapes(text: str) -> None:
    assert _index_simple(text) is None


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A realistic generated repository (benchmarks/synth.py), built once."""
    root = tmp_path_factory.mktemp("synth") / "repo"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "synth.py"), str(root),
                    "--shape", "realistic", "--services", "6", "--keys", "120",
                    "--envs", "3"], check=True, capture_output=True)
    return root


def test_line_reader_agrees_on_generated_layers(generated: Path) -> None:
    read = 0
    for path in sorted((generated / "layers").rglob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        got = _index_simple(text)
        if got is not None:
            read += 1
            assert got == _index(text), path
    assert read > 0


def test_lazy_constraints_match_eager(generated: Path) -> None:
    project = load_project(generated / "magcfg.yaml")
    assert project.json_schema is not None
    raw = (generated / project.json_schema).read_bytes()
    index = SchemaIndex(load_schema(project.json_schema, raw))
    seen = 0
    for entry in index.entries():
        keypath = tuple(entry.path.split("."))
        full = index.entry(keypath)
        if full is None:
            continue
        nodes = list(index._nodes(keypath))
        sources = nodes[-1].sources
        expected = tuple(dict.fromkeys(
            c for src in (sources if type(sources) is tuple else (sources,))
            if src is not None for c in constraints(src)))
        assert full.constraints == expected
        seen += bool(expected)
    assert seen > 0


def test_diff_same_with_and_without_line_reader(generated: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    project = load_project(generated / "magcfg.yaml")
    fast = diffs.diff_environments(project, "staging", "production")
    assert len(fast.changes) > 100
    monkeypatch.setattr(keylines, "_index_simple", lambda text: None)
    monkeypatch.setattr(diffs.Origins, "_keys", lambda self, f: None)
    slow = diffs.diff_environments(load_project(generated / "magcfg.yaml"), "staging",
                                   "production")
    for fmt in (diffs.format_json, diffs.format_markdown, diffs.format_text):
        assert fmt(fast, str) == fmt(slow, str)


def test_diff_in_two_processes_is_the_diff_in_one(generated: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    project = load_project(generated / "magcfg.yaml")
    one = diffs.diff_environments(project, "staging", "production", jobs=1)
    monkeypatch.setattr(diffs, "MIN_PARALLEL_BYTES", 0)
    described: list[int] = []  # changes described in this process
    real = diffs._describe

    def counted(raw: list[diffs.RawChange], *args: Any) -> tuple[diffs.Change, ...]:
        described.append(len(raw))
        return real(raw, *args)

    monkeypatch.setattr(diffs, "_describe", counted)
    two = diffs.diff_environments(project, "staging", "production", jobs=2)
    assert len(described) == 1 and 0 < described[0] < len(one.changes)  # half was forked
    assert two == one
    for fmt in (diffs.format_json, diffs.format_markdown, diffs.format_text):
        assert fmt(two, str) == fmt(one, str)


def test_a_describing_process_that_dies_is_made_up_for(
        generated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = load_project(generated / "magcfg.yaml")
    one = diffs.diff_environments(project, "staging", "production", jobs=1)
    monkeypatch.setattr(diffs, "MIN_PARALLEL_BYTES", 0)
    dies_in_a_child(monkeypatch, diffs.Origins, "of")
    assert diffs.diff_environments(project, "staging", "production", jobs=2) == one


@pytest.mark.parametrize("color", [False, True])
@pytest.mark.parametrize("jobs", [1, 2])
def test_text_formatted_where_described_is_format_text(
        generated: Path, monkeypatch: pytest.MonkeyPatch, jobs: int, color: bool) -> None:
    project = load_project(generated / "magcfg.yaml")
    expected = diffs.diff_environments(project, "staging", "production", jobs=1)
    text = diffs.format_text(expected, str, color=color)
    monkeypatch.setattr(diffs, "MIN_PARALLEL_BYTES", 0)
    formatted: list[int] = []  # changes formatted in this process
    real = diffs._text_body

    def counted(*args: Any) -> Any:
        body = real(*args)

        def counting(changes: Any) -> str:
            if os.getpid() == parent:
                formatted.append(len(changes))
            return body(changes)

        return counting

    parent = os.getpid()
    monkeypatch.setattr(diffs, "_text_body", counted)
    got = diffs.diff_environments_text(project, "staging", "production", str, color=color,
                                       jobs=jobs)
    assert got == (False, text)
    assert sum(formatted) == len(expected.changes) if jobs == 1 else (
        0 < sum(formatted) < len(expected.changes))  # the other half formatted elsewhere
    assert diffs.diff_environments_text(project, "dev", "dev", str, color=color,
                                        jobs=jobs) == (
        True, "dev and dev are identical\n")


def test_a_formatting_process_that_dies_is_made_up_for(
        generated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = load_project(generated / "magcfg.yaml")
    expected = diffs.format_text(diffs.diff_environments(project, "staging", "production",
                                                         jobs=1), str)
    monkeypatch.setattr(diffs, "MIN_PARALLEL_BYTES", 0)
    dies_in_a_child(monkeypatch, diffs, "show")
    assert diffs.diff_environments_text(project, "staging", "production", str, jobs=2) == (
        False, expected)


def test_a_diff_after_a_diff_takes_key_lines_from_the_cache(
        generated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "repo"
    shutil.copytree(generated, root, ignore=shutil.ignore_patterns(".magcfg-cache"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("MAGCFG_NO_CACHE", raising=False)
    monkeypatch.setattr(diffs, "MIN_PARALLEL_BYTES", 0)
    first = diffs.diff_environments(load_project(root / "magcfg.yaml"), "staging",
                                    "production", jobs=2)
    indexed = calls(monkeypatch, keylines, "_index_simple")
    # One process: the key lines the forked one computed were kept too.
    again = diffs.diff_environments(load_project(root / "magcfg.yaml"), "staging",
                                    "production", jobs=1)
    assert again == first and indexed == []

    edited = root / "layers" / "environments" / "staging" / "svc_000.yaml"
    edited.write_text("# a comment moves every line down\n" + edited.read_text())
    third = diffs.diff_environments(load_project(root / "magcfg.yaml"), "staging",
                                    "production", jobs=1)
    assert len(indexed) == 1
    moved = [(a.old_source, b.old_source) for a, b in zip(first.changes, third.changes,
                                                          strict=True)
             if a.old_source is not None
             and a.old_source.file == "layers/environments/staging/svc_000.yaml"]
    bad = [(a, b) for a, b in moved if b is None or a.line is None or b.line != a.line + 1]
    assert moved and not bad, bad[:3]


def test_describe_in_two_processes_is_describe_in_one(
        generated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``describe`` (what a promotion uses) cuts its changes where the top-level key
    changes; the whole diff cuts the top-level keys before comparing them."""
    from magcfg.compiler import Compiler
    from magcfg.secrets.redaction import Redactor

    compiler = Compiler(load_project(generated / "magcfg.yaml"))
    stacks = compiler.load_stacks(["staging", "production"])
    old, new = (diffs._compile(compiler, env, stacks[env])
                for env in ("staging", "production"))
    assert set(old.tops(["svc_000", "nope"])) == {"svc_000"}
    assert old.tops(sorted(old.fragments)) == old.config
    raw = diffs.compare(old.config, new.config)
    index = compiler.policies()
    redactor = Redactor(index, compiler.redact_globs())
    one = diffs.describe(raw, stacks["staging"], stacks["production"], redactor, index, 1)
    monkeypatch.setattr(diffs, "MIN_PARALLEL_CHANGES", 0)
    two = diffs.describe(raw, stacks["staging"], stacks["production"], redactor, index, 2)
    assert two == one and len(one) == len(raw)


@pytest.mark.parametrize("jobs", [1, 2, 3, 8])
def test_describing_processes_take_whole_top_level_keys(jobs: int) -> None:
    raw: list[diffs.RawChange] = [("changed", (top, str(i)), 1, 2)
                                  for top, n in (("a", 5), ("b", 1), ("c", 9), ("d", 2))
                                  for i in range(n)]
    shares = diffs._shares(raw, jobs)
    assert [c for share in shares for c in share] == raw
    assert 1 <= len(shares) <= jobs and all(shares)
    tops = [{c[1][0] for c in share} for share in shares]
    assert all(not (x & y) for i, x in enumerate(tops) for y in tops[i + 1:])


def test_split_root_known_keys_without_indexing_the_file(generated: Path) -> None:
    """``explain``'s did-you-mean at the top level reads the split's keys, not an index
    of the whole file; the answer is the whole index's."""
    from magcfg.compiler import Compiler
    from magcfg.pipeline.cache import BuildCache

    project = load_project(generated / "magcfg.yaml")
    assert project.json_schema is not None
    raw = (generated / project.json_schema).read_bytes()
    whole = load_schema(project.json_schema, raw).index.known_keys(())
    split = Compiler(project, cache=BuildCache(None)).schema()
    assert split is not None and split.piece_digests()
    assert split.index.known_keys(()) == whole
    assert split.index._tree is None  # the file itself was not indexed


def test_explain_after_a_build_indexes_no_schema(generated: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """``explain`` of a keyed list an environment overrides, after a build: its merge
    key, secret flag and reload policy come from the policy tables the build cached (no
    piece of the schema is indexed), and the explanation is the one the schema's index
    gives without a cache."""
    from magcfg.compiler import build
    from magcfg.review.explain import explain

    project = load_project(generated / "magcfg.yaml")
    build(project)
    service, env = overridden_keyed_list(generated)
    indexed = calls(monkeypatch, SchemaIndex, "_build", arg=1)
    fast = explain(project, env, f"{service}.endpoints")
    assert indexed == []
    assert len(fast.chain) == 2 and len(fast.value) > 1  # merged by item name
    monkeypatch.setenv("MAGCFG_NO_CACHE", "1")
    slow = explain(load_project(generated / "magcfg.yaml"), env, f"{service}.endpoints")
    assert indexed
    assert fast == slow


def test_explain_after_a_build_parses_only_the_files_of_its_key(
        generated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``explain`` after a build parses the layer files that set the key's top-level key
    and no other, masking of secret literals included (a YAML alias quotes its own
    file's anchors alone): one key costs its files, not the repository's."""
    import magcfg.compiler
    from magcfg.compiler import build
    from magcfg.review.explain import explain

    project = load_project(generated / "magcfg.yaml")
    build(project)
    service, env = overridden_keyed_list(generated)
    parsed = calls(monkeypatch, magcfg.compiler, "parse_layer")
    explain(project, env, f"{service}.endpoints")
    layers = sorted(str(p.relative_to(generated)) for p in (generated / "layers").rglob("*.yaml"))
    setting = [f for f in layers if f.rsplit("/", 1)[-1].startswith(service)]
    assert parsed and set(parsed) <= set(setting) and len(layers) > 3 * len(setting)


def test_explain_typo_suggestion(generated: Path) -> None:
    from magcfg.errors import UsageError
    from magcfg.review.explain import explain

    project = load_project(generated / "magcfg.yaml")
    with pytest.raises(UsageError, match=r"did you mean 'svc_000\."):
        explain(project, "staging", "svc000." + "x")


def test_policy_tables_answer_as_the_schema_index(generated: Path) -> None:
    """After a build, merging, redaction and ``magcfg diff`` ask the pieces' cached
    policy tables instead of indexing the schema: for every key path (and a few the
    schema does not have), the same secret flag, reload policy and merge key as the
    index."""
    from magcfg.compiler import Compiler, build
    from magcfg.pipeline.cache import BuildCache
    from magcfg.schema.index import PolicyIndex

    project = load_project(generated / "magcfg.yaml")
    cache = BuildCache(None)
    build(project, cache=cache)
    policies = Compiler(project, cache=cache).policies()
    assert isinstance(policies, PolicyIndex)
    reference = Compiler(project, cache=BuildCache(None)).schema()
    assert reference is not None
    index = reference.index
    paths = [tuple(e.path.split(".")) for e in index.entries()]
    paths += [(*p, "not-in-schema") for p in paths[::7]] + [("nope",), ("nope", "x")]
    assert len(paths) > 100
    import random

    # In document order (siblings after siblings), then in any order: the rows it
    # remembers along parents never answer for another key.
    for order in (paths, random.Random(3).sample(paths, len(paths))):
        for keypath in order:
            assert policies.is_secret(keypath) == index.is_secret(keypath), keypath
            assert policies.reload_policy(keypath) == index.reload_policy(keypath), keypath
            assert policies.merge_key(keypath) == index.merge_key(keypath), keypath
    assert any(index.is_secret(p) for p in paths)
    assert any(index.merge_key(p) for p in paths)


def test_diff_same_with_and_without_policy_tables(generated: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from magcfg.compiler import Compiler, build
    from magcfg.schema.index import PolicyIndex

    project = load_project(generated / "magcfg.yaml")
    build(project)
    assert isinstance(Compiler(project).policies(), PolicyIndex)
    fast = diffs.diff_environments(project, "staging", "production")
    monkeypatch.setattr(Compiler, "policies",
                        lambda self: self.schema().index if self.schema() else None)
    slow = diffs.diff_environments(load_project(generated / "magcfg.yaml"), "staging",
                                   "production")
    assert any(c.secret for c in slow.changes)
    for fmt in (diffs.format_json, diffs.format_markdown, diffs.format_text):
        assert fmt(fast, str) == fmt(slow, str)


def test_line_reader_agrees_on_hostile_documents() -> None:
    """The loader's differential corpus: every document the strict loader accepts and
    the line reader reads gets the parser's key lines."""
    from ..syntax.yaml_corpus import accepted

    read = 0
    for _, text in accepted(14, 3000):
        got = _index_simple(text)
        if got is not None:
            read += 1
            assert got == _index(text), text
    assert read > 50
