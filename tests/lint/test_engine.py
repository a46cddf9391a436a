"""One lint run over many files: in several processes it finds exactly what one process
finds (findings, suppressions, counts), and a process that fails costs only time."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from magcfg.lint import engine, lint
from magcfg.lint.walk import SourceFile

from . import fixtures as fx
from .conftest import MakeRepo
from .test_rules import FIXTURES as BY_RULE

FIXTURES = [*BY_RULE.values(), fx.LAYER_SECRETS_MAPPED]

SUPPRESSED = """\
API_PASSWORD = "CANARYsuppressed1"  # magcfg: ignore[MAG002] reason: a test vector
x = 1  # magcfg: ignore[MAG002]
"""


@pytest.mark.parametrize("number", range(len(FIXTURES)))
def test_forked_lint_finds_what_one_process_finds(make_repo: MakeRepo, number: int,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    clean = {f"docs/page_{n:02}.txt": "Nothing to see here.\n" * 20 for n in range(20)}
    repo = make_repo({**FIXTURES[number], **clean, "suppressed.py": SUPPRESSED})
    monkeypatch.setattr(engine, "MIN_PARALLEL_BYTES", 0)
    checked: list[str] = []
    parent = os.getpid()
    real = engine._check

    def noted(sources: list[SourceFile], *args: object) -> tuple[list[object], int]:
        if os.getpid() == parent:
            checked.extend(src.path for src in sources)
        return real(sources, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(engine, "_check", noted)
    forked = lint(repo.root, jobs=2)
    here = list(checked)  # this process's share
    assert forked == lint(repo.root, jobs=1)
    assert forked.suppressed >= 1 and any(f.file == "suppressed.py" for f in forked.findings)
    assert 0 < len(here) < forked.files  # the other share was checked in a child


def test_a_failed_child_share_is_checked_again(make_repo: MakeRepo,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo({**fx.HARDCODED, **fx.LAYER_SECRETS})
    monkeypatch.setattr(engine, "MIN_PARALLEL_BYTES", 0)
    parent = os.getpid()
    real = engine._check

    here: list[str] = []

    def failing(sources: list[SourceFile], *args: object) -> object:
        if os.getpid() != parent:
            raise MemoryError
        here.extend(src.path for src in sources)
        return real(sources, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(engine, "_check", failing)
    result = lint(repo.root, jobs=2)
    assert {(f.file, f.line, f.rule) for f in result.findings} == repo.expected
    assert len(here) == len(set(here)) == result.files  # its own share, then the child's
    assert result == lint(repo.root, jobs=1)


def test_shares_cut_by_file_name_and_size() -> None:
    sources = [SourceFile(f"layers/{layer}/svc_{n:03}.yaml", "x" * (100 + n))
               for layer in ("base", "dev", "prod") for n in range(40)]
    assert engine._shares(sources, 2) == [sources]  # below MIN_PARALLEL_BYTES
    big = [SourceFile(s.path, s.text * 2000) for s in sources]
    shares = engine._shares(big, 2)
    assert len(shares) == 2 and sorted(s.path for share in shares for s in share) == \
        sorted(s.path for s in big)
    names = [{s.name for s in share} for share in shares]
    assert not names[0] & names[1]  # a service's files in one share
    sizes = [sum(len(s.text) for s in share) for share in shares]
    assert abs(sizes[0] - sizes[1]) < max(len(s.text) for s in big) * 3
    assert engine._shares(big, 1) == [big]


def test_outside_git_a_deep_tree_is_walked_without_recursion(tmp_path: Path) -> None:
    # Outside git the files are found by walking: a loop, since Python 3.11's os.walk
    # recurses and a thousand nested directories exhausted its stack.
    from magcfg.lint.walk import list_files

    deep = tmp_path
    for _ in range(1100):
        deep = deep / "d"
        deep.mkdir()
    (deep / "policy.hcl").write_text('path "secret/data/k3s/magds/*" {\n}\n')
    (tmp_path / "top.yaml").write_text("a: 1\n")
    (tmp_path / ".git-like").mkdir()
    (tmp_path / "node_modules").mkdir()
    (tmp_path / "node_modules/skip.yaml").write_text("a: 1\n")
    os.symlink(tmp_path / "node_modules", tmp_path / "linked")  # as os.walk: not walked
    try:
        assert list_files(tmp_path) == ["d" * 1 + "/d" * 1099 + "/policy.hcl", "top.yaml"]
    finally:  # shutil.rmtree, which removes tmp_path, recurses too
        (deep / "policy.hcl").unlink()
        while deep != tmp_path:
            deep.rmdir()
            deep = deep.parent
