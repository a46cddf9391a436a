"""The key path at a cursor in YAML being typed, a key's column, a key's block."""

from __future__ import annotations

from magcfg.lsp.cursor import cursor_at, key_column, removal
from tests.conftest import finishes_in_a_child

TEXT = """\
# MagDS
magds:
  connection:
    host: db
    "port": 5433
  listeners:
  - name: a
    port: 1
  - plain
  pool:
    min: 1

kernel:
  debug: tr
"""


def test_the_key_path_of_keys_quoted_keys_and_list_items() -> None:
    lines = TEXT.split("\n")

    def at(line: int) -> tuple[tuple[str, ...], str | None]:
        c = cursor_at(TEXT, line, len(lines[line]))
        return c.keypath, c.key

    assert at(1) == (("magds",), "magds")
    assert at(3) == (("magds", "connection", "host"), "host")
    assert at(4) == (("magds", "connection", "port"), "port")
    assert at(6) == (("magds", "listeners", "0", "name"), "name")
    assert at(7) == (("magds", "listeners", "0", "port"), "port")
    assert at(8) == (("magds", "listeners", "1"), None)
    assert at(9) == (("magds", "pool"), "pool")
    assert at(13) == (("kernel", "debug"), "debug")


def test_a_blank_line_belongs_to_the_keys_open_at_the_cursors_column() -> None:
    text = TEXT.replace("    min: 1\n", "    min: 1\n    \n")
    assert cursor_at(text, 11, 4).parent == ("magds", "pool")
    assert cursor_at(text, 11, 2).parent == ("magds",)
    assert cursor_at(text, 11, 0).parent == ()


def test_value_or_key_and_the_word_typed() -> None:
    c = cursor_at(TEXT, 13, 11)
    assert (c.in_value, c.prefix, c.key_start, c.key_end) == (True, "tr", 2, 7)
    c = cursor_at(TEXT, 13, 4)
    assert (c.in_value, c.prefix) == (False, "de")


def test_key_column_finds_plain_quoted_and_list_item_keys() -> None:
    assert key_column('    "port": 5', "port") == 4
    assert key_column("  - name: a", "name") == 4
    assert key_column("    host: db", "host") == 4
    assert key_column("  unrelated", "host") == 2


def test_removing_a_key_removes_ancestors_it_would_leave_empty() -> None:
    assert removal(TEXT, 3) == (3, 4)  # host: port stays
    assert removal(TEXT, 10) == (9, 11)  # min is pool's only key: pool goes too
    assert removal(TEXT, 13) == (12, 14)  # debug is kernel's only key


def test_long_lines_are_read_in_linear_time() -> None:
    """A key before a long run of spaces, a long word before the cursor, a line of list
    markers, a run of spaces before no key: read more than once, 200,000 characters
    would take minutes each."""
    script = (
        "from magcfg.lsp.cursor import cursor_at, key_column, removal\n"
        "n = 200_000\n"
        "c = cursor_at('k:\\n  a' + ' ' * n + 'x: 1\\n', 1, 3)\n"
        "print(c.parent, c.key_end == n + 4, c.prefix)\n"
        "print(repr(cursor_at('k:\\n  ' + 'a' * n + ' ', 1, n + 3).prefix))\n"
        "print(cursor_at('- ' * n + 'x: 1\\n', 0, 0).keypath[-2:])\n"
        "print(key_column(' ' * n + 'x', '') == n)\n"
        "print(removal('k:\\n  a' + ' \\t' * n + 'x: 1\\n', 1))\n")
    assert finishes_in_a_child(script).splitlines() == [
        "('k',) True a", "''", "('0', 'x')", "True", "(0, 2)"]


def test_removing_a_key_deep_in_a_chain_of_only_children_reads_the_lines_once() -> None:
    """Each of 3,000 ancestors left empty goes too: reading the block of each again line
    by line would take minutes for this file (4.5 MB)."""
    script = (
        "from magcfg.lsp.cursor import removal\n"
        "n = 3000\n"
        "text = ''.join(' ' * i + f'k{i}:\\n' for i in range(n)) + ' ' * n + 'leaf: 1\\n'\n"
        "print(removal(text, n), removal(text + 'k: 2\\n', n))\n"
        "print(removal(text.replace('k5:\\n', 'k5:\\n      x: 1\\n'), n + 1))\n")
    assert finishes_in_a_child(script).splitlines() == [
        "(0, 3001) (0, 3001)", "(7, 3002)"]
