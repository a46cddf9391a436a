"""The labelled secret-detection corpus (tests/lint/corpus/, see its README): write it
without its markers, and score a scanner's findings against the labels, line by line.

The files are stored as `<name>.corpus` so that no tool of this repository (ruff, mypy,
pre-commit hooks) reads them as what they imitate; they are written out under `<name>`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "corpus"
MARK = "«secret»"


@dataclass(frozen=True)
class Score:
    true_positives: int
    false_positives: int
    false_negatives: int
    lines: int

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        positives = self.true_positives + self.false_negatives
        return self.true_positives / positives if positives else 1.0


def write_corpus(out: Path) -> tuple[set[tuple[str, int]], int]:
    """Write the corpus files into ``out`` without markers; return the labelled
    (file, line) positives and the number of lines written."""
    positives: set[tuple[str, int]] = set()
    lines = 0
    for path in sorted(CORPUS.glob("*.corpus")):
        name = path.name.removesuffix(".corpus")
        text = path.read_text(encoding="utf-8").split("\n")
        for number, line in enumerate(text, 1):
            if line.rstrip().endswith(MARK):
                positives.add((name, number))
                text[number - 1] = line.rstrip()[:-len(MARK)].rstrip()
        lines += len(text) - (text[-1] == "")
        (out / name).write_text("\n".join(text), encoding="utf-8")
    return positives, lines


def score(positives: set[tuple[str, int]], found: set[tuple[str, int]], lines: int) -> Score:
    return Score(len(positives & found), len(found - positives), len(positives - found), lines)
