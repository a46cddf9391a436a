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

    python benchmarks/ab_build.py /tmp/large --a /tmp/main/compiler --b compiler --one-file

``--one-file``: only builds after one base file changed, each version's copy built cold
once first and the edit made ``SETTLE_SECONDS`` before the build, as an editor saves
before a build is asked for (the one-file build of a round above follows a cold build,
whose outputs and cache are still being settled); with the median seconds of each stage
``magcfg build --timings`` names, and whether both versions wrote the same outputs.

    python benchmarks/ab_build.py /tmp/large --larger /tmp/xlarge --a /tmp/main/compiler \
        --b compiler --one-file --rounds 15

``--larger``: the same for a larger repo of the same shape, its copies built in the same
rounds (all four in alternating order), and what it costs more than the first repo: a
one-file rebuild should cost what changed, not what the repository holds.
``--comment``: the edit is a comment line alone (the configs stay as they are; each
manifest names the new input digest).
"""

from __future__ import annotations

import argparse
import json
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
    wall, cpu, _ = run_timed(cmd, cwd, env)
    return wall, cpu


def run_timed(cmd: list[str], cwd: Path, env: dict[str, str]
              ) -> tuple[float, float, dict[str, float]]:
    """Wall and CPU seconds of one process, and the stages it printed (``--timings``)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} in {cwd} failed:\n{proc.stderr[-2000:]}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    stages = {}
    for line in proc.stderr.splitlines():
        if line.startswith("timings: "):
            stages = {k: float(v) for k, v in json.loads(line[len("timings: "):]).items()}
    return wall, cpu, stages


def touch_base_file(repo: Path, r: int) -> None:
    """Change one value of one base file, a different file for each round ``r``."""
    base = sorted((repo / "layers/base").glob("*.yaml"))
    target = base[(r * 37) % len(base)]
    text = target.read_text() + f"# touched {r}\n"
    text = re.sub(r"key_000: \d+", f"key_000: {50_000 + r}", text, count=1)
    # the realistic shape (synth.py --shape realistic) has no key_000
    target.write_text(re.sub(r"weight: \d+", f"weight: {r % 90 + 1}", text, count=1))


def touch_comment(repo: Path, r: int) -> None:
    """Add a comment line to one base file, a different file for each round ``r``."""
    base = sorted((repo / "layers/base").glob("*.yaml"))
    target = base[(r * 37) % len(base)]
    target.write_text(target.read_text() + f"# touched {r}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A/B timings of magcfg build")
    parser.add_argument("repo", type=Path, help="a repo made by benchmarks/synth.py")
    parser.add_argument("--larger", type=Path,
                        help="with --one-file: a larger repo of the same shape, timed alike")
    parser.add_argument("--comment", action="store_true",
                        help="with --one-file: the edit is a comment line alone")
    parser.add_argument("--a", required=True, help="baseline: directory holding magcfg/")
    parser.add_argument("--b", required=True, help="candidate: directory holding magcfg/")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--settled", action="store_true",
                        help="also time a no-op build once the outputs settled")
    parser.add_argument("--one-file", action="store_true",
                        help="only one-file rebuilds of warm copies, with each stage's median")
    args = parser.parse_args(argv)
    if (args.larger or args.comment) and not args.one_file:
        parser.error("--larger and --comment go with --one-file")

    work = Path(tempfile.mkdtemp(prefix="magcfg-ab-"))
    repos: dict[str, Path] = {}
    envs: dict[str, dict[str, str]] = {}
    copies = [("A", args.a, args.repo), ("B", args.b, args.repo)]
    if args.larger:
        copies += [("A+", args.a, args.larger), ("B+", args.b, args.larger)]
    for name, src, source in copies:
        repos[name] = work / name.replace("+", "-larger")
        shutil.copytree(source, repos[name],
                        ignore=shutil.ignore_patterns(".magcfg-cache", "generated"))
        env = {k: v for k, v in os.environ.items()
               if k not in ("PYTHONDONTWRITEBYTECODE", "MAGCFG_NO_CACHE")}
        env["PYTHONPATH"] = str(Path(src).resolve())
        version = name.rstrip("+")
        env["PYTHONPYCACHEPREFIX"] = str(work / f"pycache-{version}")  # bytecode, as installed
        env["XDG_STATE_HOME"] = str(work / f"state-{version}")  # the cache key
        envs[name] = env
        run([sys.executable, "-m", "magcfg", "--help"], repos[name], env)
    build = [sys.executable, "-m", "magcfg", "build", "-q"]
    if args.one_file:
        one_file(args, repos, envs, build)
        shutil.rmtree(work, ignore_errors=True)
        return 0
    samples: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for r in range(args.rounds):
        for name in ("A", "B") if r % 2 == 0 else ("B", "A"):
            repo, env = repos[name], envs[name]
            shutil.rmtree(repo / ".magcfg-cache", ignore_errors=True)
            shutil.rmtree(repo / "generated", ignore_errors=True)
            samples.setdefault(("cold", name), []).append(run(build, repo, env))
            touch_base_file(repo, r)
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


def one_file(args: argparse.Namespace, repos: dict[str, Path], envs: dict[str, dict[str, str]],
             build: list[str]) -> None:
    """``--one-file``: one-file rebuilds of warm copies, A and B (and their copies of the
    larger repo) in alternating order; the medians of wall and CPU time and of each
    stage, whether the outputs agree, and what the larger repo costs more."""
    names = list(repos)
    touch = touch_comment if args.comment else touch_base_file
    for name in names:
        run(build, repos[name], envs[name])  # cold, once
    samples: dict[str, list[tuple[float, float, dict[str, float]]]] = {n: [] for n in names}
    for r in range(args.rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            touch(repos[name], r)
        time.sleep(SETTLE_SECONDS)
        for name in order:
            samples[name].append(run_timed([*build, "--timings"], repos[name], envs[name]))
    print(f"{args.rounds} rounds of one file changed ({'a comment' if args.comment else 'a value'}"
          f"); A = {args.a}; B = {args.b}; {os.cpu_count()} CPUs; "
          f"load {os.getloadavg()[0]:.1f}")
    medians = {name: _medians(samples[name]) for name in names}
    tables = [(args.repo, "A", "B")]
    if args.larger:
        tables.append((args.larger, "A+", "B+"))
    for repo, a, b in tables:
        print(f"{repo.name}: outputs equal: {_same_outputs(repos[a], repos[b])}")
        _table(medians[a], medians[b], "A", "B")
    if args.larger:
        print(f"what {args.larger.name} costs more than {args.repo.name}")
        _table({k: v - medians["A"].get(k, 0.0) for k, v in medians["A+"].items()},
               {k: v - medians["B"].get(k, 0.0) for k, v in medians["B+"].items()}, "A", "B")


def _medians(samples: list[tuple[float, float, dict[str, float]]]) -> dict[str, float]:
    """The median wall and CPU seconds of ``samples``, and of each stage they name."""
    stages = dict.fromkeys(k for s in samples for k in s[2])
    return {"wall": statistics.median(s[0] for s in samples),
            "cpu": statistics.median(s[1] for s in samples),
            **{stage: statistics.median(s[2].get(stage, 0.0) for s in samples)
               for stage in stages}}


def _same_outputs(a: Path, b: Path) -> bool:
    written = {repo: sorted(p.relative_to(repo) for p in (repo / "generated").rglob("*"))
               for repo in (a, b)}
    return written[a] == written[b] and all(
        (a / rel).read_bytes() == (b / rel).read_bytes() for rel in written[a]
        if (a / rel).is_file())


def _table(a: dict[str, float], b: dict[str, float], label_a: str, label_b: str) -> None:
    print(f"{'':13} {label_a:>9} {label_b:>9} {'B/A':>6}")
    for label in dict.fromkeys([*a, *b]):
        va, vb = a.get(label, 0.0), b.get(label, 0.0)
        ratio = f"{vb / va:6.3f}" if va > 0 else "     -"
        print(f"{label:13} {va * 1000:7.1f}ms {vb * 1000:7.1f}ms {ratio}")


if __name__ == "__main__":
    raise SystemExit(main())
