"""The file walker (lint/walk.py): lines as the files' readers break them, and what a
file too large to check is fingerprinted by."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from magcfg.lint import lint
from magcfg.lint.walk import (
    MAX_FILE_BYTES,
    SourceFile,
    display_name,
    list_files,
    listed_name,
    read_files,
)

from .conftest import MakeRepo, git, run_cli


@pytest.mark.parametrize(("text", "lines"), [
    ("", []), ("a", ["a"]), ("a\n", ["a"]), ("a\n\nb", ["a", "", "b"]), ("\n", [""]),
    ("a\r\nb\rc\n", ["a", "b", "c"]),
    ("a\x0cb\x0bc\x1cd\x85e\u2028f\n", ["a\x0cb\x0bc\x1cd\x85e\u2028f"]),
])
def test_lines_break_where_git_and_editors_break_them(text: str, lines: list[str]) -> None:
    assert SourceFile("x", text).lines == lines


def test_a_file_s_name_is_taken_from_its_path_once() -> None:
    """The rules ask each file's name dozens of times: it is cut from the path once."""
    src = SourceFile("deploy/prod/values.yaml", "a: 1\n")
    assert src.name == "values.yaml"
    assert src.name is src.name
    assert SourceFile("values.yaml", "").name == "values.yaml"


def test_a_form_feed_between_a_key_and_its_value_hides_nothing(make_repo: MakeRepo) -> None:
    """Python reads a form feed as a space; ``str.splitlines`` broke the line there."""
    repo = make_repo({"a.py": 'import os\nDB_PASSWORD =\x0c"CANARYff1"\n'})
    assert [(f.file, f.line, f.rule) for f in lint(repo.root).findings] == [
        ("a.py", 2, "MAG002")]


def test_files_are_read_by_their_names_joined_as_strings(
        make_repo: MakeRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each listed name is joined to the root once, as a string: a Path made of each name
    (twice, to ask whether it is gone and to read it) cost more than reading the files
    of a 10,000-file repository. Every kind of file is read as before."""
    files = {f"svc/app{i}.env": f"DB_PASSWORD=CANARYjn{i}-x9\n" for i in range(20)}
    repo = make_repo(files, {"notes/local.env": "API_TOKEN=CANARYjnu-x9\n"})
    os.symlink("CANARYjnl-x9", repo.root / "svc/link.txt")
    git(repo.root, "add", "svc/link.txt")
    (repo.root / "svc/app0.env").unlink()  # committed, gone from the work tree
    joined = []
    join = Path.__truediv__

    def counted(self: Path, key: str) -> Path:
        joined.append(key)
        return join(self, key)

    monkeypatch.setattr(Path, "__truediv__", counted)
    names = list_files(repo.root)
    read = {name: src.text for name, src in read_files(repo.root, names)
            if isinstance(src, SourceFile)}
    assert len(joined) < len(names)
    assert sorted(read) == sorted([*files, "svc/link.txt", "notes/local.env"])
    assert read["svc/app0.env"] == "DB_PASSWORD=CANARYjn0-x9\n"
    assert read["svc/link.txt"] == "CANARYjnl-x9"
    assert read["notes/local.env"] == "API_TOKEN=CANARYjnu-x9\n"


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


@pytest.mark.parametrize("encoding", ["IBM037", "UTF-7"])
def test_a_file_git_checks_out_in_another_encoding_is_read_as_committed(
        make_repo: MakeRepo, tmp_path: Path, encoding: str) -> None:
    """A pull request's ``.gitattributes`` giving a file ``working-tree-encoding=IBM037``
    (EBCDIC) after it was committed: CI's clone held it converted, lint read no secret
    there, and the gate passed a commit holding two in the open. The index's bytes,
    what is committed, are read."""
    repo = make_repo({"app.env": "DB_PASSWORD=Zx8!qLm2#pR7vT4w+\n"
                                 "GITHUB_TOKEN=ghp_Zq8XwT4vB7nM2kLp9RsD3fGh6JcY1aEoUi5V\n"})
    (repo.root / ".gitattributes").write_text(f"app.env working-tree-encoding={encoding}\n")
    git(repo.root, "add", ".gitattributes")
    git(repo.root, "commit", "-q", "-m", "attributes")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo.root), str(clone))
    assert b"DB_PASSWORD=Zx8!qLm2#pR7vT4w+" not in (clone / "app.env").read_bytes()
    assert [(f.file, f.line) for f in lint(clone).findings] == [("app.env", 1), ("app.env", 2)]
    done = run_cli(clone, "lint")
    assert done.returncode == 1 and "magcfg lint: 2 finding(s)" in done.stderr, done.stderr


def test_a_repository_whose_attributes_answer_is_over_the_bound_is_asked_in_parts(
        make_repo: MakeRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``git check-attr``'s answer for every file is bounded (``MAX_GIT_ANSWER``, 64 MiB;
    lowered here): a monorepo of a million files failed the gate, closed, for its size
    alone. Its paths are asked in parts, each answer bounded, and a converted file in
    the last is still read as committed. A part whose answer is over the bound (a
    value longer than any encoding's name) fails the gate as before."""
    from magcfg import project
    from magcfg.errors import BuildError

    files = {f"services/svc{i:04}/config.yaml": "level: info\n" for i in range(200)}
    repo = make_repo({**files, "zz/app.env": "DB_PASSWORD=Zx8!qLm2#pR7vT4w+\n"})
    (repo.root / ".gitattributes").write_text("zz/app.env working-tree-encoding=IBM037\n")
    git(repo.root, "add", ".gitattributes")
    git(repo.root, "commit", "-q", "-m", "attributes")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo.root), str(clone))
    listed = len(git(clone, "ls-files", "-z").encode())
    monkeypatch.setattr(project, "MAX_GIT_ANSWER", listed + 1024)
    assert [(f.file, f.line) for f in lint(clone).findings] == [("zz/app.env", 1)]
    # git reads no longer line of a .gitattributes than 2,048 bytes.
    (clone / ".gitattributes").write_text(f"services/** working-tree-encoding={'x' * 1900}\n")
    with pytest.raises(BuildError) as raised:
        lint(clone)
    assert [d.format() for d in raised.value.diagnostics] == [
        ".: error: git could not say which files it checks out converted (`git check-attr` "
        f"answered more than {listed + 1024} bytes): fix what stops git, then lint again"]


def test_a_converted_file_whose_name_holds_a_line_end_is_not_read_as_another(
        make_repo: MakeRepo, tmp_path: Path) -> None:
    """git reads a batch of names a line each, a CR before the LF dropped: the committed
    bytes asked for ``app.env<CR>`` were ``app.env``'s, and its own secrets passed."""
    repo = make_repo({"app.env": "LOG_LEVEL=info\n",
                      "app.env\r": "GITHUB_TOKEN=ghp_Zq8XwT4vB7nM2kLp9RsD3fGh6JcY1aEoUi5V\n",
                      "a\nb": "x\n"})
    (repo.root / ".gitattributes").write_text("app.env* working-tree-encoding=IBM037\n"
                                              "a* working-tree-encoding=IBM037\n")
    git(repo.root, "add", ".gitattributes")
    git(repo.root, "commit", "-q", "-m", "attributes")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo.root), str(clone))
    found = {(f.file, f.rule) for f in lint(clone).findings}
    assert found == {("app.env\\x0d", "MAG007"), ("a\\x0ab", "MAG007")}, found


def test_a_name_holding_a_c1_control_and_one_holding_that_byte_are_two_names(
        make_repo: MakeRepo) -> None:
    """U+0085 (NEL, UTF-8's C2 85) and the byte 85 that is no UTF-8 both showed as
    `\\x85`: two files of one repository were reported under one name, and a baseline
    entry for one accepted the other's line."""
    nel, byte = "a\u0085.env", os.fsdecode(b"a\x85.env")
    token = "GITHUB_TOKEN=ghp_Zq8XwT4vB7nM2kLp9RsD3fGh6JcY1aEoUi5V\n"
    repo = make_repo({nel: token, byte: token})
    found = sorted((f.file, f.rule) for f in lint(repo.root).findings)
    assert found == [("a\\u0085.env", "MAG002"), ("a\\x85.env", "MAG002")], found


@given(st.binary(max_size=40) | st.text(max_size=40).filter(lambda t: not any(
    0xD800 <= ord(c) <= 0xDFFF for c in t)))
def test_the_name_a_display_name_shows_is_the_name(name: bytes | str) -> None:
    listed = os.fsdecode(name) if isinstance(name, bytes) else name
    assert listed_name(display_name(listed)) == listed


def test_a_committed_file_the_work_tree_lacks_is_read_as_committed(
        make_repo: MakeRepo, tmp_path: Path) -> None:
    """A sparse checkout (CI checking out one directory of a monorepo) leaves committed
    files out of the work tree: lint passed them over unread, and the gate passed the
    secrets they hold. git's index holds them; so does a file deleted but not yet
    ``git rm``-ed, which is committed all the same."""
    repo = make_repo({"config/app.yaml": "level: info\n",
                      "services/api/.env": "GITHUB_TOKEN=ghp_Zq8XwT4vB7nM2kLp9RsD3fGh6JcY1aEoUi5V\n",
                      "old.env": "DB_PASSWORD=Zx8!qLm2#pR7vT4w\n"})
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--no-checkout", str(repo.root), str(clone))
    git(clone, "sparse-checkout", "set", "--no-cone", "/config/")
    git(clone, "checkout", "-q", "main")
    assert not (clone / "services").exists() and not (clone / "old.env").exists()
    found = {(f.file, f.rule) for f in lint(clone).findings}
    assert found == {("old.env", "MAG002"), ("services/api/.env", "MAG002"),
                     ("services/api/.env", "MAG003")}, found
    (repo.root / "old.env").unlink()  # deleted, not git rm-ed: committed all the same
    assert "old.env" in {f.file for f in lint(repo.root).findings}
    git(repo.root, "rm", "-q", "--cached", "old.env")
    assert "old.env" not in {f.file for f in lint(repo.root).findings}


TOKEN = "ghp_Zq8XwT4vB7nM2kLp9RsD3fGh6JcY1aEoUi5V"
PLANTED_LINKS = {"deploy/token": TOKEN, "app/db.env": "password=Zx8qLm2pR7vT4w",
                 "mirror": "https://ci:Zx8qLm2pR7vT4w@git.example.com/x.git"}
"""Committed symbolic links whose targets are secrets, each found at line 1 of the link."""
ORDINARY_LINKS = {
    "layers/base/magds.yaml": "../../shared/magds.yaml", ".env": "config/dev.env",
    "certs/server.p12": "../vault/server.p12", "kustomization.yaml": "base/kustomization.yaml",
    "id_rsa": "/home/ci/.ssh/id_rsa", "secret.env": "/run/secrets/db_password",
    "current": "releases/2026-12-03", "policy.hcl": "../policies/app.hcl"}
"""Committed symbolic links as repositories hold them: paths, nothing to find."""


def _linked(root: Path, links: dict[str, str]) -> None:
    for name, target in links.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, root / name)


def test_a_secret_committed_as_a_symlink_target_is_found_naming_the_link(
        make_repo: MakeRepo) -> None:
    """git commits a link's target as its blob (mode 120000), and a checkout without
    links writes it as a file: lint passed a link over, and a token planted as one
    passed the gate. Its target is linted as the link's one line; a path stays silent."""
    repo = make_repo({"README.md": "demo\n"})
    _linked(repo.root, {**PLANTED_LINKS, **ORDINARY_LINKS})
    git(repo.root, "add", "-A")
    git(repo.root, "commit", "-qm", "links")
    found = {(f.file, f.line, f.rule) for f in lint(repo.root).findings}
    assert found == {(name, 1, "MAG002") for name in PLANTED_LINKS}, found
    proc = run_cli(repo.root, "lint")
    assert proc.returncode == 1
    assert "Zx8qLm2pR7vT4w" not in proc.stdout + proc.stderr
    assert TOKEN not in proc.stdout + proc.stderr


@pytest.mark.parametrize("checked_out_last", ["secret.env", "SECRET.env"])
def test_names_a_case_insensitive_checkout_holds_as_one_file_are_each_read_as_committed(
        make_repo: MakeRepo, tmp_path: Path, checked_out_last: str) -> None:
    """macOS's and Windows' file systems hold ``secret.env`` and ``SECRET.env`` as one
    file, the twin git wrote last: lint read it under both names, the secret twice or
    not at all. Simulated here (Linux's file systems tell case, and this kernel mounts
    none that folds it): a clone with ``core.ignorecase=true``, as git sets it on such a
    file system, whose two names are one file (a hard link), as ``lstat`` shows them."""
    repo = make_repo({"secret.env": "DB_PASSWORD=Zx8qLm2pR7vT4w\n",
                      "SECRET.env": "LOG_LEVEL=info\n"})
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "-c", "core.ignorecase=true", str(repo.root), str(clone))
    other = ({"secret.env", "SECRET.env"} - {checked_out_last}).pop()
    (clone / other).unlink()
    os.link(clone / checked_out_last, clone / other)
    found = [(f.file, f.line, f.rule) for f in lint(clone).findings]
    assert found == [("secret.env", 1, "MAG002")]
    # Two files, as a file system that tells case holds them: read from the work tree,
    # their edits with them.
    (clone / other).unlink()
    (clone / "SECRET.env").write_text("API_TOKEN=Qw3rT7yU1iO5pA9s\n")
    (clone / "secret.env").write_text("DB_PASSWORD=Zx8qLm2pR7vT4w\n")
    found = [(f.file, f.line, f.rule) for f in lint(clone).findings]
    assert found == [("SECRET.env", 1, "MAG002"), ("secret.env", 1, "MAG002")]


def test_a_committed_symlink_the_work_tree_lacks_is_read_as_a_link(
        make_repo: MakeRepo, tmp_path: Path) -> None:
    """A link a sparse checkout leaves out is read from git's index, its blob the target:
    read as a file's content, `certs/server.p12 -> ../vault/server.p12` was a key store
    by its name and `.env -> config/dev.env` a `.env` file."""
    repo = make_repo({"config/app.yaml": "level: info\n"})
    _linked(repo.root / "links", {**PLANTED_LINKS, **ORDINARY_LINKS})
    git(repo.root, "add", "-A")
    git(repo.root, "commit", "-qm", "links")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--no-checkout", str(repo.root), str(clone))
    git(clone, "sparse-checkout", "set", "--no-cone", "/config/")
    git(clone, "checkout", "-q", "main")
    assert not (clone / "links").exists()
    found = {(f.file, f.line, f.rule) for f in lint(clone).findings}
    assert found == {(f"links/{name}", 1, "MAG002") for name in PLANTED_LINKS}, found
