"""Diagnostics sort by file, line and key, a missing line or key first (a file-level
error and a keyed error on one line used to crash the sort)."""

from __future__ import annotations

from magcfg.errors import BuildError, Diagnostic


def test_missing_line_and_key_sort_first() -> None:
    keyed = Diagnostic("a.yaml", 1, "e", "'.inf' is not representable in JSON")
    unkeyed = Diagnostic("a.yaml", 1, None, "unsupported tag !b")
    unlocated = Diagnostic("a.yaml", None, None, "symlink leads outside the repository")
    later = Diagnostic("a.yaml", 2, None, "x")
    other = Diagnostic("b.yaml", None, "k", "y")
    assert sorted([other, later, keyed, unlocated, unkeyed]) == [
        unlocated, unkeyed, keyed, later, other]
    assert BuildError([keyed, unkeyed]).diagnostics == [unkeyed, keyed]
