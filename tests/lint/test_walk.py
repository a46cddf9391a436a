"""The file walker (lint/walk.py): lines as the files' readers break them, and what a
file too large to check is fingerprinted by."""

from __future__ import annotations

import os

import pytest

from magcfg.lint import lint
from magcfg.lint.walk import MAX_FILE_BYTES, SourceFile

from .conftest import MakeRepo, run_cli


@pytest.mark.parametrize(("text", "lines"), [
    ("", []), ("a", ["a"]), ("a\n", ["a"]), ("a\n\nb", ["a", "", "b"]), ("\n", [""]),
    ("a\r\nb\rc\n", ["a", "b", "c"]),
    ("a\x0cb\x0bc\x1cd\x85e\u2028f\n", ["a\x0cb\x0bc\x1cd\x85e\u2028f"]),
])
def test_lines_break_where_git_and_editors_break_them(text: str, lines: list[str]) -> None:
    assert SourceFile("x", text).lines == lines


def test_a_form_feed_between_a_key_and_its_value_hides_nothing(make_repo: MakeRepo) -> None:
    """Python reads a form feed as a space; ``str.splitlines`` broke the line there."""
    repo = make_repo({"a.py": 'import os\nDB_PASSWORD =\x0c"CANARYff1"\n'})
    assert [(f.file, f.line, f.rule) for f in lint(repo.root).findings] == [
        ("a.py", 2, "MAG002")]


def test_a_baselined_file_too_large_to_check_is_reported_once_edited(
        make_repo: MakeRepo) -> None:
    """A baseline entry for MAG007 holds the file's content digest: the same size with a
    byte changed is a new finding."""
    repo = make_repo({"README.md": "x\n"})
    big = repo.root / "dump.json"
    big.write_text('{"a": 1}\n')
    os.truncate(big, MAX_FILE_BYTES + 10)
    assert run_cli(repo.root, "lint", "--write-baseline").returncode == 0
    baseline = repo.root / ".magcfg-lint-baseline.json"
    assert lint(repo.root, baseline=baseline).findings == []
    with open(big, "r+b") as f:
        f.seek(MAX_FILE_BYTES // 2)
        f.write(b"ghp_Zq8XwT4vB7nM2kLp9RsD3fGh6JcY1aEoUi5V")
    assert os.path.getsize(big) == MAX_FILE_BYTES + 10
    assert [f.rule for f in lint(repo.root, baseline=baseline).findings] == ["MAG007"]


def test_a_git_that_cannot_list_the_files_fails_the_gate(
        make_repo: MakeRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    """A FIFO `.gitignore` held `git ls-files` for ever, and with it the CI gate; a git
    that failed was a traceback. Both are an error saying why, as the build's are."""
    from magcfg import project
    from magcfg.errors import BuildError

    repo = make_repo({"app.py": "x = 1\n"})
    monkeypatch.setattr(project, "GIT_ANSWER_SECONDS", 1)
    os.mkfifo(repo.root / ".gitignore")
    with pytest.raises(BuildError) as raised:
        lint(repo.root)
    assert [d.format() for d in raised.value.diagnostics] == [
        ".: error: git could not list the repository's files (`git ls-files` gave no answer "
        "in 1 s: is something it reads, such as a .gitignore, a FIFO or on a mount that "
        "hangs?): fix what stops git, then lint again"]
    (repo.root / ".gitignore").unlink()
    (repo.root / ".git/index").write_bytes(b"DIRC broken")
    done = run_cli(repo.root, "lint")
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    assert "git could not list the repository's files (`git ls-files` failed" in done.stderr
