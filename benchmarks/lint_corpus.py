"""Precision and recall of `magcfg lint`, detect-secrets and gitleaks on the labelled
corpus of tests/lint/corpus/ (docs/lint.md, "Measured precision and recall").

    python benchmarks/lint_corpus.py            # a Markdown table
    python benchmarks/lint_corpus.py --misses   # also each scanner's misses and false alarms

Each scanner runs with its default configuration on the corpus written to a temporary
directory (no allowlist file there). A finding counts on the line it names; a line with
several findings counts once.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.lint.secret_corpus import Score, score, write_corpus  # noqa: E402

Found = set[tuple[str, int]]


def _tool(name: str) -> str:
    found = (shutil.which(name, path=str(ROOT / ".tools/bin"))
             or shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name))
    if not found:
        raise SystemExit(f"{name} not found: run ./scripts/dev tools")
    return found


def magcfg_lint(root: Path) -> Found:
    from magcfg.lint import lint

    return {(f.file, f.line) for f in lint(root).findings if f.rule in ("MAG002", "MAG006")}


def detect_secrets(root: Path) -> Found:
    done = subprocess.run([_tool("detect-secrets"), "scan", "--all-files", "."], cwd=root,
                          capture_output=True, text=True, check=True)
    results = json.loads(done.stdout)["results"]
    return {(file, s["line_number"]) for file, found in results.items() for s in found}


def gitleaks(root: Path) -> Found:
    done = subprocess.run([_tool("gitleaks"), "dir", ".", "--no-banner", "--report-format",
                           "json", "--report-path", "-", "--exit-code", "0"], cwd=root,
                          capture_output=True, text=True, check=True)
    return {(f["File"], f["StartLine"]) for f in json.loads(done.stdout)}


SCANNERS: dict[str, Callable[[Path], Found]] = {
    "magcfg lint": magcfg_lint, "detect-secrets 1.5": detect_secrets, "gitleaks 8.30": gitleaks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--misses", action="store_true",
                        help="list each scanner's missed lines and false alarms")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        positives, lines = write_corpus(root)
        print(f"corpus: {lines} lines in {len(list(root.iterdir()))} files, "
              f"{len(positives)} secrets\n")
        print("| scanner | found | true | false alarms | missed | precision | recall |")
        print("|---|---|---|---|---|---|---|")
        details = []
        for name, scan in SCANNERS.items():
            found = scan(root)
            s: Score = score(positives, found, lines)
            print(f"| {name} | {len(found)} | {s.true_positives} | {s.false_positives} | "
                  f"{s.false_negatives} | {s.precision:.3f} | {s.recall:.3f} |")
            details.append((name, sorted(positives - found), sorted(found - positives)))
    if args.misses:
        for name, missed, alarms in details:
            print(f"\n{name}\n  missed: {missed}\n  false alarms: {alarms}")


if __name__ == "__main__":
    main()
