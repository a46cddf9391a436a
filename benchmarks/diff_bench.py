"""Benchmark ``magcfg diff`` and ``magcfg promote`` on the large synthetic repository.

    python benchmarks/diff_bench.py [DIR]        # DIR default /tmp/large (generated if absent)
    python benchmarks/diff_bench.py DIR --ab BASE [--runs N]

With ``--ab BASE`` (a ``compiler/`` directory of another commit, e.g. from ``git
archive``), only the whole processes ``magcfg diff staging production`` and ``magcfg
explain KEY --env staging`` (KEY, and KEY mistyped) are timed, BASE and this tree alternating, N runs each
(each in its own copy of DIR, built by it first: DIR-before for BASE; bytecode writing
on): medians, peak RSS, the ratio, and whether the two outputs are byte-identical.

Prints, in one run: the comparison of two compiled environments by the flat engine and by
DeepDiff (same changes, checked) with their ratio; the cost of describing the changes
(provenance, redaction, reload policy) and of each output format; the whole ``magcfg diff``
process; and a promotion of 100 keys (plan with in-memory validation, then write +
rebuild + commit) in a git copy of the repository.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "compiler"))

from magcfg.compiler import Compiler  # noqa: E402
from magcfg.pipeline.cache import BuildCache  # noqa: E402
from magcfg.project import load_project  # noqa: E402
from magcfg.review.diff import (  # noqa: E402
    ConfigDiff,
    Side,
    compare,
    compare_deepdiff,
    describe,
    format_json,
    format_markdown,
    format_text,
)


def timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best * 1000, result


def process_ab(root: Path, base: Path, runs: int) -> None:
    """Whole-process medians of diff and explain, BASE against this tree."""
    import statistics

    trees = {"before": str(base), "after": str(HERE.parent / "compiler")}
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    # Each tree in a copy of its own, built by that tree: their caches may differ in
    # format, and a diff reads what the build cached.
    repos = {"before": root.parent / f"{root.name}-before", "after": root}
    if not repos["before"].exists():
        shutil.copytree(root, repos["before"],
                        ignore=shutil.ignore_patterns(".magcfg-cache", "generated"))
    for side, tree in trees.items():
        subprocess.run([sys.executable, "-m", "magcfg", "build", "-q"], cwd=repos[side],
                       check=True, env={**clean, "PYTHONPATH": tree})
    config = (root / "generated" / "staging" / "config.json").read_bytes()
    import orjson

    service = sorted(orjson.loads(config))[0]
    first = orjson.loads(config)[service]
    keypath = [service]
    node = first
    while isinstance(node, dict) and node:
        name = sorted(node)[0]
        keypath.append(name)
        node = node[name]
    key = ".".join(keypath)
    commands = {"diff": ["diff", "staging", "production"],
                "explain": ["explain", key, "--env", "staging"],
                # A mistyped top-level key: the did-you-mean path.
                "explain-typo": ["explain", key.replace("_", "", 1), "--env", "staging"]}
    for args in commands.values():
        times: dict[str, list[float]] = {"before": [], "after": []}
        rss: dict[str, float] = {}
        outputs: dict[str, bytes] = {}
        for _ in range(runs):
            for side, tree in trees.items():
                start = time.perf_counter()
                # Peak RSS by /usr/bin/time: magcfg ends through os._exit.
                done = subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, "-m",
                                       "magcfg", *args],
                                      cwd=repos[side],
                                      env={**clean, "PYTHONPATH": tree},
                                      capture_output=True)
                times[side].append(time.perf_counter() - start)
                rss[side] = max(rss.get(side, 0.0),
                                float(done.stderr.decode().strip().splitlines()[-1]) / 1024)
                outputs[side] = done.stdout
        med = {side: statistics.median(v) for side, v in times.items()}
        same = "identical" if outputs["before"] == outputs["after"] else "DIFFERENT"
        print(f"`magcfg {' '.join(args)}`: before {med['before']:.2f} s "
              f"({rss['before']:.0f} MB), after {med['after']:.2f} s ({rss['after']:.0f} MB), "
              f"ratio {med['before'] / med['after']:.2f}x, median of {runs}; output {same}")


def main() -> int:
    if "--ab" in sys.argv:
        at = sys.argv.index("--ab")
        runs = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 5
        process_ab(Path(sys.argv[1]), Path(sys.argv[at + 1]), runs)
        return 0
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/large")
    if not (root / "magcfg.yaml").exists():
        subprocess.run([sys.executable, str(HERE / "synth.py"), str(root)], check=True)
    project = load_project(root / "magcfg.yaml")
    compiler = Compiler(project, cache=BuildCache(None))
    ms, stacks = timed(lambda: compiler.load_stacks(["staging", "production"]))
    print(f"load both environments: {ms:,.0f} ms")
    docs = {}
    for env in ("staging", "production"):
        ms, artifact = timed(lambda env=env: compiler.compile(env, stacks[env], None)[0])
        docs[env] = artifact.config
        print(f"compile {env}: {ms:,.0f} ms")
    old, new = docs["staging"], docs["production"]

    flat_ms, flat = timed(lambda: compare(old, new), repeat=3)
    deep_ms, deep = timed(lambda: compare_deepdiff(old, new), repeat=1)
    assert flat == deep, "engines disagree"
    print(f"compare, flat engine:     {flat_ms:,.0f} ms ({len(flat):,} changed leaves)")
    print(f"compare, DeepDiff engine: {deep_ms:,.0f} ms (same {len(deep):,} changes)")
    print(f"ratio DeepDiff / flat:    {deep_ms / flat_ms:.1f}x")

    schema = compiler.schema()
    ms, changes = timed(lambda: describe(flat, stacks["staging"], stacks["production"],
                                         compiler.redactor(), schema.index if schema else None))
    print(f"describe (provenance, redaction, reload) of {len(changes):,} changes: {ms:,.0f} ms")
    result = ConfigDiff(Side("staging"), Side("production"), changes)
    for name, fmt in (("text", lambda: format_text(result, str)),
                      ("json", lambda: format_json(result, str)),
                      ("markdown", lambda: format_markdown(result, str))):
        ms, out = timed(fmt)
        print(f"format {name}: {ms:,.0f} ms ({len(out) / 1e6:.1f} MB)")

    env = {**os.environ, "PYTHONPATH": str(HERE.parent / "compiler")}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "magcfg", "diff", "staging", "production",
                           "-f", "json"], cwd=root, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    print(f"whole process `magcfg diff staging production -f json` (cache warm or cold as "
          f"found): {(time.perf_counter() - start) * 1000:,.0f} ms, exit {done.returncode}")

    promote_bench(root, env)
    return 0


def promote_bench(root: Path, env: dict[str, str]) -> None:
    """Promote 100 keys staging -> production in a git copy of the repository."""
    from magcfg.review.diff import flatten
    from magcfg.review.promote import apply_promotion, plan_promotion, pr_body
    from magcfg.syntax.strict_yaml import iter_leaves

    with tempfile.TemporaryDirectory(prefix="magcfg-promote-bench-") as tmp:
        repo = Path(tmp) / "repo"
        shutil.copytree(root, repo, ignore=shutil.ignore_patterns(".magcfg-cache", ".git"))
        (repo / ".gitignore").write_text(".magcfg-cache/\n")
        git_env = {**env, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "b@example.com",
                   "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "b@example.com"}
        subprocess.run([sys.executable, "-m", "magcfg", "build", "-q"], cwd=repo, env=env,
                       check=True)
        for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "init"]):
            subprocess.run(["git", *args], cwd=repo, env=git_env, check=True)
        os.environ.update({k: v for k, v in git_env.items() if k.startswith("GIT_")})
        project = load_project(repo / "magcfg.yaml")
        compiler = Compiler(project, cache=BuildCache(None))
        stacks = compiler.load_stacks(["staging", "production"])
        production = flatten(compiler.compile("production", stacks["production"], None)[0].config)
        keys: list[str] = []
        for layer in stacks["staging"].layers[1:2]:
            for f in layer.files:
                for keypath, value in iter_leaves(f.data):
                    if production.get(keypath) != value and keypath[-1] != "level":
                        keys.append(".".join(keypath))
                if len(keys) >= 100:
                    break
        keys = keys[:100]
        ms, plan = timed(lambda: plan_promotion(project, "staging", "production", keys))
        print(f"promote 100 keys: plan + in-memory validation of production: {ms:,.0f} ms "
              f"({len(plan.edits)} edits in {len(plan.texts)} files)")
        ms, done = timed(lambda: apply_promotion(project, plan, "promote/bench"))
        print(f"promote 100 keys: write + rebuild production + branch + commit: {ms:,.0f} ms "
              f"(commit {done.commit[:10]})")
        ms, body = timed(lambda: pr_body(project, plan, str, done))
        print(f"promote 100 keys: PR body (git blame per file): {ms:,.0f} ms "
              f"({len(body):,} bytes)")


if __name__ == "__main__":
    raise SystemExit(main())
