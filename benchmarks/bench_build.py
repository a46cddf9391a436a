"""Benchmark `magcfg build` on a synthetic layered repo, against a naive pipeline.

    python benchmarks/bench_build.py                    # large: 200 services x 1000 keys x 3 envs
    python benchmarks/bench_build.py --services 10 --keys 50 --runs 5

Measures, as whole processes (what a user waits for):
  * cold build (no cache, no generated/): median of --runs, with per-stage times
    (load, merge, validate, emit, write) reported by `magcfg build --timings`;
  * rebuild after one layer file changed (a different file each run);
  * no-op rebuild (nothing changed) and `build --check`;
  * the naive pipeline on the same inputs: PyYAML's C loader, a recursive merge,
    jsonschema with one reused validator, json.dumps(sort_keys, indent=2).
and prints the ratios. Figures go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from synth import generate  # noqa: E402

MAGCFG = [sys.executable, "-m", "magcfg"]

NAIVE = r'''
import json, sys, time
from pathlib import Path
import yaml, jsonschema
root = Path(sys.argv[1]); envs = sys.argv[2].split(",")
t = {"load": 0.0, "merge": 0.0, "validate": 0.0, "emit": 0.0}
def merge(a, b):
    if isinstance(a, dict) and isinstance(b, dict):
        out = dict(a)
        for k, v in b.items():
            out[k] = merge(a[k], v) if k in a else v
        return out
    return b
s = time.perf_counter()
parsed = {}
for p in sorted(root.joinpath("layers").rglob("*.yaml")):
    parsed[p] = yaml.load(p.read_bytes(), Loader=yaml.CSafeLoader) or {}
t["load"] += time.perf_counter() - s
schema = json.loads((root / "schemas/platform.schema.json").read_text())
validator = jsonschema.Draft202012Validator(schema)
for env in envs:
    s = time.perf_counter()
    doc = {}
    for layer in ("layers/base", f"layers/environments/{env}", f"layers/secrets/{env}"):
        for p in sorted(root.joinpath(layer).glob("*.yaml")):
            doc = merge(doc, parsed[p])
    t["merge"] += time.perf_counter() - s; s = time.perf_counter()
    errors = list(validator.iter_errors(doc))
    assert not errors, errors[0]
    t["validate"] += time.perf_counter() - s; s = time.perf_counter()
    out = root / "naive" / env
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n")
    t["emit"] += time.perf_counter() - s
print(json.dumps(t))
'''


# Installed software runs from compiled bytecode: keep a bytecode cache for every
# process measured here (outside the repo), even where PYTHONDONTWRITEBYTECODE is set.
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
_ENV["PYTHONPYCACHEPREFIX"] = os.path.join(tempfile.gettempdir(), "magcfg-bench-pycache")


def run(cmd: list[str], cwd: Path) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=_ENV)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return elapsed, proc.stdout + proc.stderr


def stage_times(output: str) -> dict[str, float]:
    for line in output.splitlines():
        if line.startswith("timings: "):
            return dict(json.loads(line[len("timings: "):]))
    return {}


def median_stages(samples: list[dict[str, float]]) -> dict[str, float]:
    keys = samples[0].keys() if samples else []
    return {k: statistics.median(s.get(k, 0.0) for s in samples) for k in keys}


def fmt(seconds: float) -> str:
    return f"{seconds * 1000:8.0f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="benchmark magcfg build")
    parser.add_argument("--services", type=int, default=200)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--envs", type=int, default=3)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--naive-runs", type=int, default=1)
    parser.add_argument("--exhaustive-schema", action="store_true")
    parser.add_argument("--keep", type=Path, help="generate into this directory and keep it")
    args = parser.parse_args(argv)

    work = args.keep or Path(tempfile.mkdtemp(prefix="magcfg-bench-"))
    if not (work / "magcfg.yaml").exists():
        generate(work, args.services, args.keys, args.envs, args.exhaustive_schema)
    size = sum(p.stat().st_size for p in (work / "layers").rglob("*.yaml"))
    files = sum(1 for _ in (work / "layers").rglob("*.yaml"))
    schema_size = (work / "schemas/platform.schema.json").stat().st_size
    envs = ["dev", "staging", "production", "qa", "perf", "dr"][: args.envs]
    print(f"repo: {args.services} services x {args.keys} keys x {args.envs} envs; "
          f"{files} YAML files, {size / 1e6:.1f} MB; schema {schema_size / 1e6:.2f} MB; "
          f"{os.cpu_count()} CPUs; Python {sys.version.split()[0]}")

    def clean() -> None:
        shutil.rmtree(work / "generated", ignore_errors=True)
        shutil.rmtree(work / ".magcfg-cache", ignore_errors=True)

    run([*MAGCFG, "--help"], work)  # fills the bytecode cache
    cold, cold_stages = [], []
    for _ in range(args.runs):
        clean()
        elapsed, out = run([*MAGCFG, "build", "-q", "--timings"], work)
        cold.append(elapsed)
        cold_stages.append(stage_times(out))
    one, one_stages = [], []
    base_files = sorted((work / "layers/base").glob("*.yaml"))
    for i in range(args.runs):
        target = base_files[(i * 37) % len(base_files)]
        with target.open("a") as fh:
            fh.write(f"# touched {i}\n")
        text = target.read_text()
        target.write_text(re.sub(r"key_000: \d+", f"key_000: {50_000 + i}", text, count=1))
        elapsed, out = run([*MAGCFG, "build", "-q", "--timings"], work)
        one.append(elapsed)
        one_stages.append(stage_times(out))
    noop = [run([*MAGCFG, "build", "-q"], work)[0] for _ in range(args.runs)]
    check = [run([*MAGCFG, "build", "--check", "-q"], work)[0] for _ in range(args.runs)]
    helptime = [run([*MAGCFG, "--help"], work)[0] for _ in range(args.runs)]

    naive, naive_stages = [], []
    script = work / "naive_pipeline.py"
    script.write_text(NAIVE)
    for _ in range(args.naive_runs):
        elapsed, out = run([sys.executable, str(script), str(work), ",".join(envs)], work)
        naive.append(elapsed)
        naive_stages.append(json.loads(out.strip().splitlines()[-1]))

    med = statistics.median
    rows = [
        ("magcfg build, cold (whole process)", med(cold)),
        ("magcfg build, one file changed", med(one)),
        ("magcfg build, nothing changed", med(noop)),
        ("magcfg build --check, warm cache", med(check)),
        ("magcfg --help", med(helptime)),
        ("naive pipeline (PyYAML C + merge + jsonschema + json)", med(naive)),
    ]
    print(f"\n{'what':58} {'median':>11}   (runs: {args.runs}, naive: {args.naive_runs})")
    for name, value in rows:
        print(f"{name:58} {fmt(value)}")
    print("\nper stage (median seconds, summed over environments):")
    print(f"  {'stage':10} {'magcfg cold':>12} {'magcfg 1-file':>14} {'naive':>10}")
    mc, mo, nv = median_stages(cold_stages), median_stages(one_stages), median_stages(naive_stages)
    for stage in ("load", "merge", "validate", "emit", "write"):
        print(f"  {stage:10} {mc.get(stage, 0):12.3f} {mo.get(stage, 0):14.3f} {nv.get(stage, 0):10.3f}")
    print(f"\nratio naive / magcfg cold: {med(naive) / med(cold):.1f}x; "
          f"naive / magcfg one-file rebuild: {med(naive) / med(one):.1f}x")
    print(f"cold min/max: {min(cold):.3f}/{max(cold):.3f} s; "
          f"one-file min/max: {min(one):.3f}/{max(one):.3f} s")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
