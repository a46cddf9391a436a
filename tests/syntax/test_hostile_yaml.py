"""Hostile layer files through the real CLI: each gets exactly the located error below,
exit 1, no traceback, and generated/ stays as it was. The same text reads the same on
both parser paths (a comment with '!' used to send a file to the other parser and
change what its numbers meant)."""

from __future__ import annotations

import subprocess

import pytest

from ..conftest import Project, failed_cleanly, tree_state

DEV = "layers/environments/dev/magds.yaml"
TAG_FIX = "only !unset and !replace are accepted (write the value without a tag)"
RANGE = "is outside the 64-bit integer range (-9223372036854775808 to 9223372036854775807)"

# (name, content of DEV, the exact lines expected on stderr)
CASES: list[tuple[str, str | bytes, list[str]]] = [
    ("underscore-number", "magds:\n  port: 1_000\n",
     [f"{DEV}:2: error: '1_000' means different things in YAML 1.1 and 1.2 (the number 1000 "
      "in 1.1, text in 1.2): write 1000, or quote it if it is text [magds.port]"]),
    ("binary-number", "magds:\n  port: 0b101\n",
     [f"{DEV}:2: error: '0b101' means different things in YAML 1.1 and 1.2 (the number 5 in "
      "1.1, text in 1.2): write 5, or quote it if it is text [magds.port]"]),
    ("hex-underscore", "magds:\n  port: 0x_1F\n",
     [f"{DEV}:2: error: '0x_1F' means different things in YAML 1.1 and 1.2 (the number 31 in "
      "1.1, text in 1.2): write 31, or quote it if it is text [magds.port]"]),
    ("yaml12-octal", "magds:\n  port: 0o17\n",
     [f"{DEV}:2: error: '0o17' means different things in YAML 1.1 and 1.2 (text in 1.1, the "
      "number 15 in 1.2): write 15, or quote it if it is text [magds.port]"]),
    ("unsigned-exponent", "magds:\n  port: 1e3\n",
     [f"{DEV}:2: error: '1e3' means different things in YAML 1.1 and 1.2 (text in 1.1, the "
      "number 1000.0 in 1.2): write 1000.0, or quote it if it is text [magds.port]"]),
    ("yaml11-key", "magds:\n  on: x\n",
     [f"{DEV}:2: error: key 'on' means different things in YAML 1.1 and 1.2 (true in 1.1, "
      "text in 1.2): quote the key [magds]"]),
    *[(f"tag-{name}", f"magds:\n  port: {text}\n",
       [f"{DEV}:2: error: unsupported tag {tag}: {TAG_FIX} [magds.port]"])
      for name, text, tag in [
          ("bool-maybe", "!!bool maybe", "!!bool"), ("null-foo", "!!null foo", "!!null"),
          ("str", "!!str 5", "!!str"), ("int", "!!int 5", "!!int"),
          ("verbatim", "!<tag:yaml.org,2002:str> 5", "!!str"), ("int-abc", "!!int abc", "!!int"),
          ("float-x", "!!float x", "!!float"), ("int-float", "!!int 1.5", "!!int"),
          ("non-specific", "! 5", "!"), ("local", "!port 5", "!port")]],
    ("tag-on-map", "magds: !!map\n  port: 5\n",
     [f"{DEV}:1: error: unsupported tag !!map: {TAG_FIX} [magds]"]),
    ("nul", b"magds:\n  host: d\x00b\n",
     [f"{DEV}:2: error: control character U+0000 at column 10 is not allowed in YAML: write "
      'it as an escape ("\\u0000") in a double-quoted string']),
    ("bel", b"magds:\n  host: d\x07b\n",
     [f"{DEV}:2: error: control character U+0007 at column 10 is not allowed in YAML: write "
      'it as an escape ("\\u0007") in a double-quoted string']),
    ("nel-in-value", "magds:\n  host: \"d\u0085b\"\n  port: yes\n",
     [f"{DEV}:2: error: U+0085 (NEL, next line, column 11) is a line break in YAML 1.1 and "
      "text in YAML 1.2: remove it, or write \\N in a double-quoted string"]),
    ("line-separator", "magds:\n  host: d\u2028b\n",
     [f"{DEV}:2: error: U+2028 (LS, line separator, column 10) is a line break in YAML 1.1 "
      "and text in YAML 1.2: remove it, or write \\L in a double-quoted string"]),
    ("lone-carriage-return", b"magds:\n  host: db\r  port: 1\n",
     [f"{DEV}:2: error: carriage return without a line feed (column 11): end lines with \\n "
      "or \\r\\n"]),
    ("huge-int-reference-path", "# !\nmagds:\n  port: " + "7" * 5000 + "\n",
     [f"{DEV}:3: error: '77777777777777777777'... (5000 characters) {RANGE}: quote it if it "
      "is text [magds.port]"]),
    ("int-beyond-64-bits", "magds:\n  port: 9223372036854775808\n",
     [f"{DEV}:2: error: '9223372036854775808' {RANGE}: quote it if it is text [magds.port]"]),
    ("int-below-64-bits", "magds:\n  pool:\n    min: -9223372036854775809\n",
     [f"{DEV}:3: error: '-9223372036854775809' {RANGE}: quote it if it is text "
      "[magds.pool.min]"]),
    ("unset-in-list", "magds:\n  tags:\n    - !unset\n",
     [f"{DEV}:3: error: !unset as a list item names the item to delete by its merge key: "
      "`- !unset {name: ITEM}` (in a list whose schema has x-magcfg-merge-key) "
      "[magds.tags.0]"]),
    ("replace-in-list", "magds:\n  tags:\n    - a\n    - !replace b\n",
     [f"{DEV}:4: error: !replace marks the value of a key; it cannot stand as a list item "
      "[magds.tags.1]"]),
    ("marker-on-key", "magds:\n  !unset port: 1\n",
     [f"{DEV}:2: error: !unset marks the value of a key, not a key [magds]"]),
    ("top-level-tag-and-value-error", "!b {magds: .inf}\n",
     [f"{DEV}:1: error: unsupported tag !b: {TAG_FIX}",
      f"{DEV}:1: error: '.inf' is not representable in JSON [magds]"]),
    ("top-level-marker", "!replace {magds: {port: 1}}\n",
     [f"{DEV}:1: error: !replace marks the value of a key; it cannot stand as the top level"]),
    # A rebase or merge left git's markers: YAML's own words ("could not find expected
    # ':'", a line below them) do not say what to do.
    ("merge-conflict", "magds:\n<<<<<<< HEAD\n  port: 1\n=======\n  port: 2\n>>>>>>> x\n",
     [f"{DEV}:2: error: an unresolved merge conflict (git's <<<<<<< marker): resolve it, "
      "then build again"]),
    # Between the markers of a conflict inside a quoted string or a flow collection is
    # text YAML accepts: it built, and was signed, with both sides in the value.
    ("merge-conflict-in-a-quoted-string",
     'magds:\n  host: "db\n<<<<<<< HEAD\n    .ours\n=======\n    .theirs\n>>>>>>> x\n    "\n',
     [f"{DEV}:3: error: an unresolved merge conflict (git's <<<<<<< marker): resolve it, "
      "then build again"]),
    ("merge-conflict-in-a-flow-list",
     "magds:\n  tags: [a,\n<<<<<<< HEAD\n    b,\n=======\n    c,\n>>>>>>> x\n    d]\n",
     [f"{DEV}:3: error: an unresolved merge conflict (git's <<<<<<< marker): resolve it, "
      "then build again"]),
    # Half resolved: the top of the conflict removed, the rest left.
    ("merge-conflict-half-resolved",
     "magds:\n  tags: [a,\n    b,\n=======\n    c,\n>>>>>>> x\n    d]\n",
     [f"{DEV}:4: error: an unresolved merge conflict (git's ======= marker): resolve it, "
      "then build again"]),
    ("merge-conflict-diff3-crlf",
     b"magds:\r\n  host: 'db\r\n||||||| base\r\n    .x'\r\n",
     [f"{DEV}:3: error: an unresolved merge conflict (git's ||||||| marker): resolve it, "
      "then build again"]),
    ("merge-conflict-end-marker",
     'magds:\n  host: "db\n>>>>>>>\n  "\n',
     [f"{DEV}:3: error: an unresolved merge conflict (git's >>>>>>> marker): resolve it, "
      "then build again"]),
    ("directive", "%YAML 1.1\n---\nmagds: {port: 1}\n",
     [f"{DEV}:1: error: directives (%YAML, %TAG) are not supported: magcfg reads YAML 1.2; "
      "remove the directive"]),
    ("duplicate-anchor", "magds:\n  host: &h a\n  tags: [&h b, *h]\n",
     [f"{DEV}:3: error: anchor &h is defined twice (YAML 1.1 refuses that, YAML 1.2 rebinds "
      "it): rename one"]),
    ("alias-cycle", "magds:\n  tags: &t [a, *t]\n",
     [f"{DEV}:2: error: alias *t refers to the node that contains it (a cycle JSON cannot "
      "hold)"]),
    ("flow-indicator-scalar", "magds:\n  tags: [>]\n",
     [f"{DEV}:2: error: YAML syntax error: found character that cannot start any token "
      "(while scanning for the next token)"]),
    ("flow-colon-key", "magds:\n  pool: {:: 1}\n",
     [f"{DEV}:2: error: YAML syntax error: did not find expected node content (while parsing "
      "a flow node)"]),
    ("flow-colon-before-indicator", "magds:\n  pool: {min:}\n",
     [f"{DEV}:2: error: YAML syntax error: found unexpected ':' (while scanning a plain "
      "scalar)"]),
    ("flow-key-over-two-lines", "magds:\n  pool: {min\n    max: 1}\n",
     [f"{DEV}:3: error: YAML syntax error: did not find expected ',' or '}}' (while parsing "
      "a flow mapping)"]),
    ("huge-base-60", "magds:\n  host: 1" + ":0" * 175 + "\n",  # it was an OverflowError
     [f"{DEV}:2: error: '1:0:0:0:0:0:0:0:0:0:'... (351 characters) means different things "
      "in YAML 1.1 and 1.2 (an integer beyond 64 bits in 1.1, text in 1.2): quote it if it "
      "is text [magds.host]"]),
    # yaml-rs overflowed the C stack on this (signal 11) before any depth check
    ("deep-compact-sequence", "magds:\n  tags:\n    " + "- " * 20_000 + "1\n",
     [f"{DEV}:3: error: nesting deeper than 64 levels"]),
    ("document-end-only", "...\n",
     [f"{DEV}:1: error: YAML syntax error: did not find expected node content (while parsing "
      "a block node)"]),
]


@pytest.mark.parametrize(("name", "content", "expected"), CASES, ids=[c[0] for c in CASES])
def test_hostile_layer_is_refused_located(mini: Project, name: str, content: str | bytes,
                                          expected: list[str]) -> None:
    assert mini.run("build").returncode == 0
    before = tree_state(mini.root / "generated")
    mini.write(DEV, content)
    stderr = failed_cleanly(mini.run("build"))
    assert stderr.splitlines()[:len(expected)] == expected, stderr
    assert tree_state(mini.root / "generated") == before


@pytest.mark.parametrize("comment", ["", "# reviewed!\n", "# !!str\n"])
def test_a_comment_with_bang_changes_no_meaning(mini: Project, comment: str) -> None:
    """The same numbers with and without a '!' in a comment: refused alike (each on its
    own line), and canonical numbers accepted alike."""
    mini.write(DEV, comment + "magds:\n  port: 1_000\n  pool: {min: 0b101, max: 0x_1F}\n")
    stderr = failed_cleanly(mini.run("build"))
    first = 2 + comment.count("\n")
    assert [line.split(": error: ")[0] + " " + line.rsplit(" ", 1)[-1]
            for line in stderr.splitlines()[:3]] == [
        f"{DEV}:{first} [magds.port]", f"{DEV}:{first + 1} [magds.pool.max]",
        f"{DEV}:{first + 1} [magds.pool.min]"]
    mini.write(DEV, comment + "magds:\n  port: 1000\n  pool: {min: 5, max: 0x1F}\n")
    assert mini.run("build").returncode == 0
    config = (mini.root / "generated/dev/config.json").read_text()
    assert '"port": 1000' in config and '"min": 5' in config and '"max": 31' in config


def test_an_empty_block_scalar_is_empty_text(mini: Project) -> None:
    """yaml-rs reads an empty literal block as "\\n", libyaml as "": the fast path never
    sees block scalars, so the one meaning is YAML 1.2's (clip chomping of no content)."""
    mini.write(DEV, "magds:\n  host: |\n  port: 5433\n")
    assert mini.run("build").returncode == 0
    assert '"host": ""' in (mini.root / "generated/dev/config.json").read_text()


def test_a_deep_project_file_is_refused_located(mini: Project) -> None:
    """The project file goes through the same parser (it crashed with signal 11)."""
    mini.write("magcfg.yaml", "version: 1\nx:\n  " + "- " * 20_000 + "1\n")
    assert failed_cleanly(mini.run("build")) == (
        "magcfg.yaml:3: error: nesting deeper than 64 levels\n")


def test_a_marker_line_inside_a_block_scalar_is_text(mini: Project) -> None:
    """Git writes its markers from the first column, where no line of a block scalar of
    a layer starts: an indented marker-like line is the scalar's text, and a line of
    seven characters that is not one of git's markers is no conflict."""
    mini.write(DEV, "magds:\n  host: localhost\n  tags:\n    - |\n      above\n      =======\n"
                    "      <<<<<<< HEAD\n    - \"x\n  =======\n  <<<<<<<<\"\n")
    done = mini.run("build")
    assert done.returncode == 0, done.stderr
    config = (mini.root / "generated/dev/config.json").read_text()
    assert '"above\\n=======\\n<<<<<<< HEAD\\n"' in config
    assert '"x ======= <<<<<<<<"' in config


def test_a_conflict_git_leaves_in_a_quoted_string_is_refused(mini: Project) -> None:
    """The real flow: two branches change the same line of a multi-line string, git
    merges what it can and leaves the rest between its markers, which YAML reads as
    text; the build refuses the layer at the first marker and writes nothing."""
    from ..review.promotion_repo import git

    mini.write(DEV, 'magds:\n  host: "db\n    .internal\n    .example"\n')
    git(mini.root, "init", "-q", "-b", "main")
    git(mini.root, "config", "user.name", "Dana Dev")
    git(mini.root, "config", "user.email", "dana@example.com")
    assert mini.run("build").returncode == 0
    git(mini.root, "add", "-A")
    git(mini.root, "commit", "-qm", "base")
    git(mini.root, "checkout", "-qb", "other")
    mini.write(DEV, 'magds:\n  host: "db\n    .corp\n    .example"\n')
    git(mini.root, "commit", "-qam", "theirs")
    git(mini.root, "checkout", "-q", "main")
    mini.write(DEV, 'magds:\n  host: "db\n    .lan\n    .example"\n')
    git(mini.root, "commit", "-qam", "ours")
    with pytest.raises(subprocess.CalledProcessError):
        git(mini.root, "merge", "-q", "other")
    assert "<<<<<<< HEAD\n" in (mini.root / DEV).read_text()
    before = tree_state(mini.root / "generated")
    stderr = failed_cleanly(mini.run("build"))
    assert stderr == (f"{DEV}:3: error: an unresolved merge conflict (git's <<<<<<< marker): "
                      "resolve it, then build again\n")
    assert tree_state(mini.root / "generated") == before
