"""``keylines.line_of``: the line of a key path as ``locate`` gives it, from the lines of
a plain file (no parser), from ``locate`` otherwise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from magcfg.syntax.keylines import _index_simple, line_of
from magcfg.syntax.locate import locate
from magcfg.syntax.strict_yaml import parse_layer

from ..conftest import finishes_in_a_child
from ..review.test_diff_fast import DECLINED, SIMPLE
from .yaml_corpus import accepted

REPO = Path(__file__).resolve().parents[2]


def _asked(data: object, keypath: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every key path of ``data``, one missing child of each, and the root."""
    out = [keypath, (*keypath, "not-there")]
    if isinstance(data, dict):
        for k, v in data.items():
            out += _asked(v, (*keypath, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += _asked(v, (*keypath, str(i)))
    elif isinstance(data, tuple) and len(data) > 1:  # !replace and what it holds
        out += _asked(data[1], keypath)
    return out


def _agrees(path: str, raw: bytes) -> bool:
    """Whether ``line_of`` answers as ``locate`` for every key path of the file;
    returns whether the file was read without the parser."""
    data, _ = parse_layer(path, raw)
    for keypath in _asked(data):
        assert line_of(path, raw, keypath) == locate(path, raw, keypath), (raw, keypath)
    return _index_simple(raw.decode("utf-8-sig")) is not None


# The line reader's own cases, as the strict loader accepts them ('y' is ambiguous).
LOADABLE = [t.replace("name: y", "name: z") for t in SIMPLE + DECLINED[:7]]


@pytest.mark.parametrize("text", LOADABLE)
def test_line_of_answers_as_locate(text: str) -> None:
    _agrees("x.yaml", text.encode())


@pytest.mark.parametrize("text", [
    "a:\n  password: vault://secret/app#password\n  b: x#y # a comment\nc: 1#2\n",
    "a: x #c#d\nb:\n  c: '#'\n  d: z ## z\n",
])
def test_a_hash_inside_a_plain_scalar_is_read_from_lines(text: str) -> None:
    assert _agrees("x.yaml", text.encode())


def test_line_of_answers_as_locate_on_hostile_documents() -> None:
    read = sum(_agrees("x.yaml", raw) for raw, _ in accepted(21, 600))
    assert read > 15


def test_line_of_answers_as_locate_on_generated_layers(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "synth.py"), str(root),
                    "--shape", "realistic", "--services", "4", "--keys", "80"],
                   check=True, capture_output=True)
    files = sorted((root / "layers").rglob("*.yaml"))
    assert sum(_agrees(p.name, p.read_bytes()) for p in files) > len(files) // 2


def test_long_lines_are_read_in_linear_time() -> None:
    """Lines a pattern could retry at each offset, or at each length of a lazy part: so
    retried, 50,000 characters would take minutes each (in ``magcfg build``, which
    locates findings)."""
    script = (
        "from magcfg.syntax.keylines import _index_simple, line_of\n"
        "n = 50_000\n"
        "for text in ['a: 1\\n' + ' ' * n + 'x\\n', 'a' * n + '\\n', 'a: 1\\n' + '#' * n,\n"
        "             'a: [{b: c' + ' ' * n + 'd}]\\n']:\n"
        "    print(_index_simple(text), line_of('x.yaml', text.encode(), ('a', 'b')))\n")
    assert finishes_in_a_child(script).splitlines() == [
        "None 1", "None 1", "(1, {('a',): 1}) 1",
        "(1, {('a',): 1, ('a', '0'): 1, ('a', '0', 'b'): 1}) 1"]
