"""Diagnostics sort by file, line and key, a missing line or key first (a file-level
error and a keyed error on one line used to crash the sort); ``printable`` escapes
exactly the controls and the surrogates."""

from __future__ import annotations

import os
import sys

from magcfg.errors import BuildError, Diagnostic, printable


def test_missing_line_and_key_sort_first() -> None:
    keyed = Diagnostic("a.yaml", 1, "e", "'.inf' is not representable in JSON")
    unkeyed = Diagnostic("a.yaml", 1, None, "unsupported tag !b")
    unlocated = Diagnostic("a.yaml", None, None, "symlink leads outside the repository")
    later = Diagnostic("a.yaml", 2, None, "x")
    other = Diagnostic("b.yaml", None, "k", "y")
    assert sorted([other, later, keyed, unlocated, unkeyed]) == [
        unlocated, unkeyed, keyed, later, other]
    assert BuildError([keyed, unkeyed]).diagnostics == [unkeyed, keyed]


def test_printable_escapes_exactly_controls_and_surrogates() -> None:
    # Every code point of the BMP, alone and inside text: the characters str.isprintable
    # refuses besides these (spaces, format characters, unassigned ones) are left as
    # they are.
    for code in range(0x10000):
        char = chr(code)
        control = code < 0x20 or 0x7F <= code <= 0x9F
        surrogate = 0xD800 <= code <= 0xDFFF
        if 0xDC80 <= code <= 0xDCFF:
            want = f"\\x{code - 0xDC00:02x}"
        elif control or surrogate:
            want = f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"
        else:
            want = char
        assert printable(f"a{char}b") == f"a{want}b", hex(code)
        kept = char in "\n\t"
        assert printable(char, lines=True) == (char if kept else want), hex(code)
    assert printable(chr(sys.maxunicode)) == chr(sys.maxunicode)
    assert printable(os.fsdecode(b"x\xff\x1b[31m.yaml")) == "x\\xff\\x1b[31m.yaml"
