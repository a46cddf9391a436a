"""``ParsedFile.line``: the line of a key path as ``keylines.line_of`` gives it, with the
file's lines read once for all the key paths asked about."""

from __future__ import annotations

import pytest

from magcfg.pipeline import load
from magcfg.pipeline.load import ParsedFile
from magcfg.syntax.keylines import line_of
from magcfg.syntax.strict_yaml import parse_layer

from ..conftest import calls
from ..syntax.test_keylines import LOADABLE, _asked


@pytest.mark.parametrize("text", [*LOADABLE, "", "# only a comment\n"])
def test_line_answers_as_line_of_reading_the_file_once(
        text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = text.encode()
    data, markers = parse_layer("x.yaml", raw)
    read = calls(monkeypatch, load, "simple_lines", arg=1)
    parsed = ParsedFile("x.yaml", "digest", tuple(data), markers, data)
    for keypath in _asked(data):
        assert parsed.line(raw, keypath) == line_of("x.yaml", raw, keypath), keypath
    assert read == [raw]
    # Other bytes (the file edited in memory, as a promotion does) are read again.
    edited = b"# edited\n" + raw
    for keypath in _asked(data):
        assert parsed.line(edited, keypath) == line_of("x.yaml", edited, keypath), keypath
    assert read == [raw, edited]


_compared = [0]


class _Compared(bytes):
    """Bytes that count how often they are compared by content (``_compared``)."""

    def __eq__(self, other: object) -> bool:
        _compared[0] += 1
        return bytes(self) == other

    def __ne__(self, other: object) -> bool:
        _compared[0] += 1
        return bytes(self) != other

    __hash__ = bytes.__hash__


def test_the_same_bytes_read_again_are_compared_by_content_once() -> None:
    # Each finding's line compared a whole file anew (a megabyte for each of 80,000
    # redundant overrides) when the file was read again after the first index.
    raw = b"m:\n" + b"".join(b"  k%d: 1\n" % i for i in range(100))
    data, markers = parse_layer("x.yaml", raw)
    parsed = ParsedFile("x.yaml", "digest", tuple(data), markers, data)
    parsed.line(_Compared(raw), ("m",))
    again = bytes(raw)
    _compared[0] = 0
    assert [parsed.line(again, ("m", f"k{i}")) for i in range(100)] == list(range(2, 102))
    assert _compared[0] <= 1


def test_line_of_a_prefixed_file_and_of_bytes_that_are_not_text() -> None:
    raw = b"host: db\npool:\n  max: 5\n"
    data, _ = parse_layer("x.yaml", raw)
    parsed = ParsedFile("x.yaml", "digest", tuple(data), False, data).under(("magds",))
    assert parsed.line(raw, ("magds", "pool", "max")) == 3
    assert parsed.line(raw, ("magds",)) == line_of("x.yaml", raw, ()) == 1
    assert parsed.line(b"\xff\xfe", ("magds", "host")) is None
