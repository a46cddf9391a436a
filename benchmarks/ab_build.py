"""A/B whole-process timings of `magcfg build` for two source trees, interleaved.

    git archive main compiler | tar -x -C /tmp/main     # the baseline's sources
    python benchmarks/synth.py /tmp/large               # the large benchmark repo
    python benchmarks/ab_build.py /tmp/large --a /tmp/main/compiler --b compiler --rounds 15

Each version gets its own copy of the repo (its own cache, generated/ and cache key).
Every round runs, for A and B in alternating order: a cold build (no cache, no
generated/), a build after one base file changed (a different file each round) and a
no-op build; with ``--settled``, then once the outputs settled (2 s: until then a build
hashes them again, ``cache.RACY_NS``) another no-op build, which takes their digests
from the cache. Prints the median wall and CPU (user + system) times and the ratios B/A.
On a shared machine compare ratios from one run, not figures from different runs.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KINDS = ("cold", "one-file", "no-op", "settled")
SETTLE_SECONDS = 2.1
"""Longer than ``cache.RACY_NS``: a file last changed within it is hashed again."""


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} in {cwd} failed:\n{proc.stderr[-2000:]}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return wall, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A/B timings of magcfg build")
    parser.add_argument("repo", type=Path, help="a repo made by benchmarks/synth.py")
    parser.add_argument("--a", required=True, help="baseline: directory holding magcfg/")
    parser.add_argument("--b", required=True, help="candidate: directory holding magcfg/")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--settled", action="store_true",
                        help="also time a no-op build once the outputs settled")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="magcfg-ab-"))
    repos: dict[str, Path] = {}
    envs: dict[str, dict[str, str]] = {}
    for name, src in (("A", args.a), ("B", args.b)):
        repos[name] = work / name
        shutil.copytree(args.repo, repos[name],
                        ignore=shutil.ignore_patterns(".magcfg-cache", "generated"))
        env = {k: v for k, v in os.environ.items()
               if k not in ("PYTHONDONTWRITEBYTECODE", "MAGCFG_NO_CACHE")}
        env["PYTHONPATH"] = str(Path(src).resolve())
        env["PYTHONPYCACHEPREFIX"] = str(work / f"pycache-{name}")  # bytecode, as installed
        env["XDG_STATE_HOME"] = str(work / f"state-{name}")  # the cache key
        envs[name] = env
        run([sys.executable, "-m", "magcfg", "--help"], repos[name], env)
    build = [sys.executable, "-m", "magcfg", "build", "-q"]
    samples: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for r in range(args.rounds):
        for name in ("A", "B") if r % 2 == 0 else ("B", "A"):
            repo, env = repos[name], envs[name]
            shutil.rmtree(repo / ".magcfg-cache", ignore_errors=True)
            shutil.rmtree(repo / "generated", ignore_errors=True)
            samples.setdefault(("cold", name), []).append(run(build, repo, env))
            base = sorted((repo / "layers/base").glob("*.yaml"))
            target = base[(r * 37) % len(base)]
            text = target.read_text() + f"# touched {r}\n"
            text = re.sub(r"key_000: \d+", f"key_000: {50_000 + r}", text, count=1)
            # the realistic shape (synth.py --shape realistic) has no key_000
            target.write_text(re.sub(r"weight: \d+", f"weight: {r % 90 + 1}", text, count=1))
            samples.setdefault(("one-file", name), []).append(run(build, repo, env))
            samples.setdefault(("no-op", name), []).append(run(build, repo, env))
        if args.settled:
            time.sleep(SETTLE_SECONDS)
            for name in ("A", "B") if r % 2 == 0 else ("B", "A"):
                samples.setdefault(("settled", name), []).append(
                    run(build, repos[name], envs[name]))
    print(f"{args.rounds} rounds; A = {args.a}; B = {args.b}; {os.cpu_count()} CPUs")
    print(f"{'':9} {'wall A':>8} {'wall B':>8} {'B/A':>6}   {'cpu A':>8} {'cpu B':>8} {'B/A':>6}")
    for kind in (k for k in KINDS if (k, "A") in samples):
        wall = [statistics.median(s[0] for s in samples[(kind, n)]) for n in ("A", "B")]
        cpu = [statistics.median(s[1] for s in samples[(kind, n)]) for n in ("A", "B")]
        print(f"{kind:9} {wall[0] * 1000:6.0f}ms {wall[1] * 1000:6.0f}ms {wall[1] / wall[0]:6.3f}"
              f"   {cpu[0] * 1000:6.0f}ms {cpu[1] * 1000:6.0f}ms {cpu[1] / cpu[0]:6.3f}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
