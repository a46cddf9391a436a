"""`magcfg lint` on the labelled corpus: every secret found, at most 2% false alarms."""

from __future__ import annotations

from pathlib import Path

from magcfg.lint import lint

from .secret_corpus import score, write_corpus

SECRET_RULES = ("MAG002", "MAG006")


def test_corpus_is_big_and_mixed(tmp_path: Path) -> None:
    positives, lines = write_corpus(tmp_path)
    assert lines >= 200 and len(positives) >= 40
    suffixes = {p.suffix for p in tmp_path.iterdir()}
    assert {".py", ".js", ".go", ".yaml", ".yml", ".env", ".json"} <= suffixes
    assert "«" not in "".join(p.read_text() for p in tmp_path.iterdir())


def test_magcfg_lint_recall_and_precision(tmp_path: Path) -> None:
    positives, lines = write_corpus(tmp_path)
    found = {(f.file, f.line) for f in lint(tmp_path).findings if f.rule in SECRET_RULES}
    result = score(positives, found, lines)
    assert sorted(positives - found) == [], "missed"
    assert result.recall == 1.0
    assert result.precision >= 0.98, f"false positives: {sorted(found - positives)}"
