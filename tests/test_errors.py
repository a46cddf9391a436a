"""Diagnostics sort by file, line and key, a missing line or key first (a file-level
error and a keyed error on one line used to crash the sort); ``printable`` escapes
exactly the controls and the surrogates."""

from __future__ import annotations

import copy
import os
import pickle
import subprocess
import sys
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from magcfg.errors import (
    MAX_QUOTING_MESSAGE,
    BuildError,
    Diagnostic,
    cut,
    md_cell,
    md_code,
    printable,
)

from .conftest import REPO, code_span, table_cells


def test_missing_line_and_key_sort_first() -> None:
    keyed = Diagnostic("a.yaml", 1, "e", "'.inf' is not representable in JSON")
    unkeyed = Diagnostic("a.yaml", 1, None, "unsupported tag !b")
    unlocated = Diagnostic("a.yaml", None, None, "symlink leads outside the repository")
    later = Diagnostic("a.yaml", 2, None, "x")
    other = Diagnostic("b.yaml", None, "k", "y")
    assert sorted([other, later, keyed, unlocated, unkeyed]) == [
        unlocated, unkeyed, keyed, later, other]
    assert BuildError([keyed, unkeyed]).diagnostics == [unkeyed, keyed]



def test_a_diagnostic_is_a_value_compared_hashed_and_shown_by_its_fields() -> None:
    d = Diagnostic("a.yaml", 3, "db.port", "bad", "warning", "schema")
    same = Diagnostic(file="a.yaml", line=3, key="db.port", message="bad",
                      severity="warning", code="schema")
    assert d == same and hash(d) == hash(same) and len({d, same}) == 1
    assert d != d.replace(code="other") and d != ("a.yaml", 3, "db.port", "bad")
    assert repr(d) == ("Diagnostic(file='a.yaml', line=3, key='db.port', message='bad', "
                       "severity='warning', code='schema')")
    assert Diagnostic("a", None, None, "m").severity == "error"
    assert Diagnostic("a", None, None, "m").code == "error"
    later = Diagnostic("a.yaml", 4, None, "x")
    assert d < later and d <= later and later > d and later >= d and d <= same >= d
    assert not d < same and not later <= d


def test_a_diagnostic_cannot_change_and_replace_makes_a_changed_copy() -> None:
    d = Diagnostic("a.yaml", 3, "db.port", "bad")
    for name in ("file", "line", "message", "other"):
        with pytest.raises(AttributeError):
            setattr(d, name, "x")
        with pytest.raises(AttributeError):
            delattr(d, name)
    moved = d.replace(file="b.yaml", line=None)
    assert moved == Diagnostic("b.yaml", None, "db.port", "bad") and d.file == "a.yaml"
    assert d.replace() == d and d.replace(key=None).key is None
    assert d.replace(severity="warning", code="c").as_dict()["severity"] == "warning"
    for copied in (copy.copy(d), copy.deepcopy(d), pickle.loads(pickle.dumps(d))):
        assert copied == d and copied is not d


def test_importing_errors_loads_no_other_module() -> None:
    """The runtime kernel imports this module at its own import: what it loads, every
    service pays at start."""
    code = ("import sys; before = set(sys.modules); import magcfg.errors; "
            "print(sorted(set(sys.modules) - before))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, env={**os.environ, "PYTHONPATH": str(REPO / "compiler")})
    # __future__: the annotations import of every module (a few hundred bytes of code).
    assert done.stdout.strip() == str(
        ["__future__", "magcfg", "magcfg.errors", "magcfg.record", "magcfg.version"])


def _escaped(code: int) -> str:
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x80:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def test_printable_escapes_exactly_controls_format_characters_and_surrogates() -> None:
    # Every code point, alone and inside text: controls (Cc), format characters (Cf: a
    # bidi override reorders what a terminal shows) and surrogates (Cs) are escaped; the
    # other characters str.isprintable refuses (spaces, private use) are left as they
    # are. An unassigned code point (Cn) may be either: the table is Unicode 15's, this
    # Python's may be older.
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        category = unicodedata.category(char)
        if category == "Cn":
            continue
        want = _escaped(code) if category in ("Cc", "Cf", "Cs") else char
        assert printable(f"a{char}b") == f"a{want}b", hex(code)
        kept = char in "\n\t"
        assert printable(char, lines=True) == (char if kept else want), hex(code)
    assert printable("evil\u202elmay.txt.yaml") == "evil\\u202elmay.txt.yaml"
    assert printable("\u2066x\u2069\U000e0041", lines=True) == "\\u2066x\\u2069\\U000e0041"
    assert printable(os.fsdecode(b"x\xff\x1b[31m.yaml")) == "x\\xff\\x1b[31m.yaml"
    # A C1 control, or the soft hyphen, and the byte of its number show differently.
    for code in (0x85, 0x9B, 0xAD):
        assert printable(chr(code)) == f"\\u{code:04x}" != printable(os.fsdecode(bytes([code])))


@given(st.text(alphabet=st.sampled_from("`| a\n\x1b\u202e![]()@<!-")))
def test_md_code_is_one_span_that_shows_the_text_escaped(text: str) -> None:
    # Backticks end a span only in a run as long as its fence: whatever runs the text
    # holds, the span ends where md_code ends it, in a table cell as on a line.
    span, cell = md_code(text), md_cell(text)
    if not text:
        assert span == cell == ""
        return
    assert code_span(span, in_table=False) == printable(text)
    assert code_span(cell) == printable(text)
    assert table_cells(f"| {cell} | x |") == [cell, "x"]


def test_md_code_fences_past_the_longest_run_of_backticks() -> None:
    assert md_code("plain") == "`plain`"
    assert md_code(" a ") == "`  a  `"  # CommonMark takes one space off each end
    assert md_code("x`` ![t](https://evil.example/t.png) ``") == (
        "``` x`` ![t](https://evil.example/t.png) `` ```")
    assert md_code("`a`") == "`` `a` ``"
    # A backslash in a code span outside a table is shown as written: no escape there.
    assert md_code("a|b\nc") == "`a|b\\x0ac`"
    assert md_cell("a|b\nc") == "`a\\|b\\x0ac`"


def test_a_located_diagnostic_says_where_and_what_without_a_severity() -> None:
    """The text a diagnostic gives inside another message (an event's error, a start
    error): that message says "error:" once itself."""
    assert Diagnostic("a.yaml", 3, "db.port", "bad\x1b[31m").located() == \
        r"a.yaml:3: bad\x1b[31m [db.port]"
    assert Diagnostic("a.yaml", None, None, "gone").located() == "a.yaml: gone"
    assert Diagnostic("", None, None, "no file").located() == "no file"
    assert Diagnostic("a.yaml", 3, None, "bad").format() == "a.yaml:3: error: bad"


def test_a_cut_message_keeps_no_start_of_a_quoted_value() -> None:
    """A value cut inside its quotes may be a secret's start, which masking the whole
    secret misses: it is left out from its opening quote."""
    assert cut("short") == "short"
    whole = "x" * MAX_QUOTING_MESSAGE
    assert cut(whole) == whole and cut(whole + "y") == whole + "..."
    assert cut('"' + "s" * 300 + '" is not') == '"...'
    escaped = '{"k": "v\\"x", "p": "' + "s" * 300
    assert cut(escaped) == '{"k": "v\\"x", "p": "...'
    closed = '"' + "a" * 100 + '" then ' + "b" * 200
    assert cut(closed) == closed[:MAX_QUOTING_MESSAGE] + "..."


def test_a_json_report_is_utf8_whatever_names_it_holds() -> None:
    """A name that is not UTF-8 (``os.fsdecode``'s surrogates) and a lone surrogate of a
    JSON input are written as ``printable`` shows them: the report stays UTF-8 that a
    JSON reader takes, and reads back as the text form names them."""
    import json

    from magcfg.errors import report_json

    name = os.fsdecode(b"layers/bad\xff\xfe.yaml")
    text = report_json({"file": name, "key": "a\ud800b", "message": "caf\u00e9 \x1b"})
    assert json.loads(text.encode("utf-8")) == {
        "file": "layers/bad\\xff\\xfe.yaml", "key": "a\\ud800b", "message": "caf\u00e9 \x1b"}
    assert json.loads(text)["file"] == printable(name)
