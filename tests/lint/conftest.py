"""Fixture repositories for the lint tests: real git repos in temp dirs.

A fixture is a mapping of path -> text. A line that must produce a finding ends with a
marker ``«MAG00N»``; the marker is stripped before the file is written and recorded as the
expected (file, line, rule). Everything unmarked is a negative case.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

_MARK = re.compile(r"\s*«(MAG\d{3})»")
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Fixture:
    root: Path
    expected: set[tuple[str, int, str]]


def write_tree(root: Path, files: Mapping[str, str]) -> set[tuple[str, int, str]]:
    expected: set[tuple[str, int, str]] = set()
    for rel, text in files.items():
        out_lines = []
        for number, line in enumerate(text.split("\n"), 1):
            if "«" not in line:
                # `\s*«` tried from every space: a line of 80,000 took a minute.
                out_lines.append(line)
                continue
            for m in _MARK.finditer(line):
                expected.add((rel, number, m.group(1)))
            out_lines.append(_MARK.sub("", line))
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(out_lines), encoding="utf-8")
    return expected


def git(root: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True,
                          text=True).stdout


MakeRepo = Callable[..., Fixture]


@pytest.fixture
def make_repo(tmp_path: Path) -> MakeRepo:
    """Create a git repo with ``files`` committed and ``untracked`` left untracked."""
    counter = [0]

    def make(files: Mapping[str, str], untracked: Mapping[str, str] | None = None,
             git_init: bool = True) -> Fixture:
        counter[0] += 1
        root = tmp_path / f"repo{counter[0]}"
        root.mkdir()
        expected = write_tree(root, files)
        if git_init:
            git(root, "init", "-q", "-b", "main")
            git(root, "add", "-A")
            git(root, "commit", "-q", "-m", "fixture")
        if untracked:
            expected |= write_tree(root, untracked)
        return Fixture(root, expected)

    return make


def run_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``magcfg`` as users run it: a real process, started in ``cwd`` as a shell's ``cd``
    leaves it (``PWD`` names ``cwd`` as given, through any symlink on its way)."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "compiler"), "PWD": os.path.abspath(cwd)}
    return subprocess.run([sys.executable, "-m", "magcfg", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, check=False)
