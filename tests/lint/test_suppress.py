"""Inline suppressions (lint/suppress.py): one applies where the diff a reviewer reads
shows it beside the line it covers."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from magcfg.lint import lint

from .conftest import MakeRepo, git, run_cli

TOKEN = "AKIA" + "Q7XK3JZP5WRM2NBT"  # an AWS access key id's form: a canary, no key
SUPPRESSION = "magcfg: ignore[MAG002] reason: the vendor's documented example"
LINE = f'$key = "{TOKEN}"  # {SUPPRESSION}\r\n'


def _der_key() -> bytes:
    """A DER private key none of whose bytes ends a line: the text lint reads of a file
    that begins with it holds it all on line 1, where the key store's finding is."""
    while True:
        der = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())
        if b"\n" not in der and b"\r" not in der:
            return der


def test_a_suppression_in_a_file_a_diff_shows_as_binary_suppresses_nothing(
        make_repo: MakeRepo) -> None:
    """UTF-16's text (PowerShell 5 writes it), a UTF-8 file with a NUL byte, and a key
    store with a suppression's bytes after it: ``git diff`` shows each as ``Binary files
    differ``, neither the key nor its suppression. Each finding stands, with a MAG000
    saying why; the same line in UTF-8 text is suppressed."""
    repo = make_repo({"README.md": "demo\n"})
    root = repo.root
    git(root, "branch", "base")
    files = {"utf16.ps1": LINE.encode("utf-16"),
             "nul.ps1": LINE.encode() + b"\0\n",
             "key.der": _der_key() + f" {SUPPRESSION}\n".encode(),
             "utf8.ps1": "\ufeff".encode() + LINE.encode()}
    for name, data in files.items():
        (root / name).write_bytes(data)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "suppressed keys")
    diff = git(root, "diff", "base", "--", "utf16.ps1", "nul.ps1", "key.der")
    assert SUPPRESSION not in diff and diff.count("Binary files") == 3
    result = lint(root)
    assert sorted((f.file, f.line, f.rule) for f in result.findings) == [
        ("key.der", 1, "MAG000"), ("key.der", 1, "MAG002"),
        ("nul.ps1", 1, "MAG000"), ("nul.ps1", 1, "MAG002"),
        ("utf16.ps1", 1, "MAG000"), ("utf16.ps1", 1, "MAG002")]
    assert result.suppressed == 1
    assert all("a diff shows as binary" in f.message
               for f in result.findings if f.rule == "MAG000")
    gate = run_cli(root, "lint", "--since", "base")
    assert gate.returncode == 1 and TOKEN not in gate.stdout + gate.stderr
    assert gate.stderr.startswith("magcfg lint: 6 finding(s)"), gate.stderr


def test_a_suppression_in_a_binary_file_that_covers_nothing_is_no_finding(
        make_repo: MakeRepo) -> None:
    """A binary file that holds the syntax and no secret (a compiled copy of these
    docs) is none of the suppressions' business."""
    repo = make_repo({"README.md": "demo\n"})
    (repo.root / "docs.bin").write_bytes(b"\0\x01" + f"# {SUPPRESSION}\n".encode())
    git(repo.root, "add", "-A")
    git(repo.root, "commit", "-q", "-m", "a binary")
    assert lint(repo.root).findings == []


def test_a_suppression_in_a_file_git_attributes_diff_as_binary_suppresses_nothing(
        make_repo: MakeRepo) -> None:
    """A pull request's ``.gitattributes`` that unsets ``diff`` for a UTF-8 file
    (``-diff``, ``binary``) has ``git diff`` show it as ``Binary files differ``: its
    suppressions, in the work tree and in each commit's version, suppress nothing."""
    repo = make_repo({"README.md": "demo\n"})
    root = repo.root
    git(root, "branch", "base")
    line = LINE.replace("\r\n", "\n")
    (root / ".gitattributes").write_text("hidden.ps1 -diff\n*.bin.ps1 binary\n")
    (root / "hidden.ps1").write_text(line)
    (root / "also.bin.ps1").write_text(line)
    (root / "shown.ps1").write_text(line)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "suppressed keys")
    diff = git(root, "diff", "base", "--", "hidden.ps1", "also.bin.ps1")
    assert SUPPRESSION not in diff and diff.count("Binary files") == 2
    result = lint(root)
    assert sorted((f.file, f.rule) for f in result.findings) == [
        ("also.bin.ps1", "MAG000"), ("also.bin.ps1", "MAG002"),
        ("hidden.ps1", "MAG000"), ("hidden.ps1", "MAG002")]
    assert result.suppressed == 1
    # A commit's version, the work tree's file gone: the same.
    git(root, "rm", "-q", "hidden.ps1", "also.bin.ps1")
    git(root, "commit", "-q", "-m", "gone")
    result = lint(root, since="base")
    assert sorted((f.file, f.rule) for f in result.findings) == [
        ("also.bin.ps1", "MAG000"), ("also.bin.ps1", "MAG002"),
        ("hidden.ps1", "MAG000"), ("hidden.ps1", "MAG002")]
