"""Benchmark `magcfg build` against two plain pipelines and Kapitan, in one interleaved run.

    python benchmarks/bench_build.py                            # large, both shapes
    python benchmarks/bench_build.py --sizes small,medium,large --runs 5 --kapitan
    python benchmarks/bench_build.py --shapes realistic --sizes large,xlarge --keep /tmp/b

Repos come from ``benchmarks/synth.py`` in two shapes: ``shared`` (services share one
shape through ``$defs``) and ``realistic`` (every service its own shape, an exhaustive
schema without shared definitions, 10-20% of leaves overridden per environment, secret
references). Sizes: small 10 services x 50 keys, medium 50 x 200, large 200 x 1,000,
xlarge 400 x 1,000 (2x large, for linearity); 3 environments each.

Every round runs every tool on every repo before the next round starts, so a change in
the machine's load hits all of them alike (the machine is shared: compare the ratios of
one run). Measured as whole processes, wall time, CPU time (user and system: less
sensitive to other work on the machine than wall time) and peak RSS (the process and
its children, from ``wait4``):

  * magcfg: cold (no cache, no generated/), also in one process (``MAGCFG_JOBS=1``)
    against the default of one per core, one base file changed (a different file each
    round), nothing changed; the stages of ``--timings`` and the share of the wall time
    they account for;
  * ``pyyaml+jsonschema``: PyYAML's C loader, a recursive merge, ``jsonschema`` with one
    validator, ``json.dumps(sort_keys=True, indent=2)``;
  * ``pyyaml+jsonschema-rs``: the same with ``jsonschema_rs`` and ``orjson``;
  * ``kapitan`` (with ``--kapitan``): the layers as reclass classes, one target per
    environment, a jinja2 template writing the merged parameters as JSON. Kapitan does
    not validate against the JSON Schema. It runs from ``.tools/kapitan-venv`` and is
    installed there (pinned, from PyPI) when missing.
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
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


MAGCFG = [sys.executable, "-m", "magcfg"]
SIZES = {"small": (10, 50), "medium": (50, 200), "large": (200, 1000), "xlarge": (400, 1000)}
ENVS = ("dev", "staging", "production")
KAPITAN_PIN = "kapitan==0.36.3"
KAPITAN_VENV = ROOT / ".tools" / "kapitan-venv"

PIPELINE = r'''
import json, sys, time
from pathlib import Path
import yaml
engine = sys.argv[3]
root = Path(sys.argv[1]); envs = sys.argv[2].split(",")
def merge(a, b):
    if isinstance(a, dict) and isinstance(b, dict):
        out = dict(a)
        for k, v in b.items():
            out[k] = merge(a[k], v) if k in a else v
        return out
    return b
parsed = {}
for p in sorted(root.joinpath("layers").rglob("*.yaml")):
    parsed[p] = yaml.load(p.read_bytes(), Loader=yaml.CSafeLoader) or {}
raw = (root / "schemas/platform.schema.json").read_bytes()
if engine == "jsonschema":
    import jsonschema
    validator = jsonschema.Draft202012Validator(json.loads(raw))
    def dump(doc):
        return (json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()
else:
    import jsonschema_rs, orjson
    validator = jsonschema_rs.Draft202012Validator(orjson.loads(raw))
    def dump(doc):
        return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n"
for env in envs:
    doc = {}
    for layer in ("layers/base", f"layers/environments/{env}", f"layers/secrets/{env}"):
        for p in sorted(root.joinpath(layer).glob("*.yaml")):
            doc = merge(doc, parsed[p])
    errors = list(validator.iter_errors(doc))
    assert not errors, errors[0]
    out = root / "pipeline" / env
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_bytes(dump(doc))
'''

PIPELINES = {"pyyaml+jsonschema": "jsonschema", "pyyaml+jsonschema-rs": "jsonschema-rs"}

# Installed software runs from compiled bytecode: keep a bytecode cache for every
# process measured here (outside the repo), even where PYTHONDONTWRITEBYTECODE is set.
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
_ENV["PYTHONPYCACHEPREFIX"] = os.path.join(tempfile.gettempdir(), "magcfg-bench-pycache")


@dataclass
class Samples:
    wall: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    stages: list[dict[str, float]] = field(default_factory=list)


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None
        ) -> tuple[float, float, str, float]:
    """Wall seconds, peak RSS (MB, the process and its children), output and CPU seconds
    (user and system, the process and its children)."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                env={**_ENV, **(env or {})})
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        elapsed = time.perf_counter() - start
        out.seek(0)
        text = out.read().decode(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} in {cwd} failed:\n{text[-2000:]}")
    return elapsed, usage.ru_maxrss / 1024, text, usage.ru_utime + usage.ru_stime


def stage_times(output: str) -> dict[str, float]:
    for line in output.splitlines():
        if line.startswith("timings: "):
            return dict(json.loads(line[len("timings: "):]))
    return {}


def forget_builds(repo: Path) -> None:
    """Remove the output and the cache of the generated ``repo``: the next build is cold
    (``rmtree`` neither follows nor removes a symlink planted in their place)."""
    shutil.rmtree(repo / "generated", ignore_errors=True)
    shutil.rmtree(repo / ".magcfg-cache", ignore_errors=True)


def make_repo(work: Path, shape: str, size: str) -> Path:
    services, keys = SIZES[size]
    repo = work / f"{shape}-{size}"
    if not (repo / "magcfg.yaml").exists():
        shutil.rmtree(repo, ignore_errors=True)
        # In a process of its own: a child forked from a bench process that grew while
        # generating would report the parent's pages in its peak RSS.
        subprocess.run([sys.executable, str(HERE / "synth.py"), str(repo), "--shape", shape,
                        "--services", str(services), "--keys", str(keys),
                        "--envs", str(len(ENVS))], check=True)
        make_kapitan(repo)
    return repo


def make_kapitan(repo: Path) -> None:
    """The same layers as a Kapitan inventory: a class per layer file, a target per
    environment including them in layer order, a template that writes the result."""
    kap = repo / "kapitan"
    for layer in sorted((repo / "layers").rglob("*.yaml")):
        rel = layer.relative_to(repo / "layers").with_suffix(".yml")
        target = kap / "inventory" / "classes" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        body = "".join("  " + line + "\n" if line else "\n"
                       for line in layer.read_text().splitlines())
        target.write_text("parameters:\n" + body)
    (kap / "templates").mkdir(parents=True, exist_ok=True)
    (kap / "templates" / "config.json").write_text("{{ inventory.parameters | tojson }}\n")
    (kap / "inventory" / "targets").mkdir(parents=True, exist_ok=True)
    for env in ENVS:
        classes = []
        for folder in ("base", f"environments/{env}", f"secrets/{env}"):
            for f in sorted((kap / "inventory" / "classes" / folder).glob("*.yml")):
                classes.append(".".join([*folder.split("/"), f.stem]))
        lines = ["classes:", *(f"  - {c}" for c in classes), "parameters:", "  kapitan:",
                 "    vars:", f"      target: {env}", "    compile:",
                 "      - output_path: .", "        input_type: jinja2",
                 "        input_paths: [templates/config.json]"]
        (kap / "inventory" / "targets" / f"{env}.yml").write_text("\n".join(lines) + "\n")


def kapitan_python() -> Path:
    python = KAPITAN_VENV / "bin" / "python"
    probe = subprocess.run([str(python), "-m", "kapitan", "--version"], capture_output=True,
                           text=True) if python.exists() else None
    if probe is None or probe.returncode != 0 or probe.stdout.strip() != KAPITAN_PIN.split("==")[1]:
        print(f"installing {KAPITAN_PIN} into {KAPITAN_VENV} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(KAPITAN_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q",
                        "--disable-pip-version-check", KAPITAN_PIN], check=True)
    return python


def touch_one(repo: Path, i: int) -> None:
    """Change one value of one base file (a different file each time)."""
    files = sorted((repo / "layers" / "base").glob("*.yaml"))
    target = files[(i * 37) % len(files)]
    text = target.read_text()
    text = re.sub(r"(weight): \d+", rf"\1: {i % 90 + 1}", text, count=1)
    target.write_text(text + f"# touched {i}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="benchmark magcfg build")
    parser.add_argument("--sizes", default="large", help="comma-separated: " + ",".join(SIZES))
    parser.add_argument("--shapes", default="shared,realistic")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--pipeline-runs", type=int, default=3,
                        help="rounds that also run the two pipelines (slow on large)")
    parser.add_argument("--kapitan", action="store_true", help="run Kapitan too")
    parser.add_argument("--kapitan-runs", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="generate into this directory and keep it")
    args = parser.parse_args(argv)

    work = args.keep or Path(tempfile.mkdtemp(prefix="magcfg-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    repos = {(shape, size): make_repo(work, shape, size)
             for shape in args.shapes.split(",") for size in args.sizes.split(",")}
    kapitan = [str(kapitan_python()), "-m", "kapitan"] if args.kapitan else None
    print(f"{os.cpu_count()} CPUs; Python {sys.version.split()[0]}; "
          f"load average at start {os.getloadavg()[0]:.2f}")
    for (shape, size), repo in repos.items():
        layers = list((repo / "layers").rglob("*.yaml"))
        print(f"  {shape}-{size}: {len(layers)} YAML files, "
              f"{sum(p.stat().st_size for p in layers) / 1e6:.1f} MB; schema "
              f"{(repo / 'schemas/platform.schema.json').stat().st_size / 1e6:.1f} MB")
    for repo in repos.values():
        script = repo / "pipeline.py"
        script.write_text(PIPELINE)
        run([*MAGCFG, "--help"], repo)  # fills the bytecode cache

    results: dict[tuple[str, str, str], Samples] = {}

    def record(repo_key: tuple[str, str], what: str, cmd: list[str], cwd: Path,
               env: dict[str, str] | None = None) -> None:
        elapsed, rss, out, cpu = run(cmd, cwd, env)
        s = results.setdefault((*repo_key, what), Samples())
        s.wall.append(elapsed)
        s.rss_mb.append(rss)
        s.cpu.append(cpu)
        if "timings: " in out:
            s.stages.append(stage_times(out))

    loads = []
    for r in range(args.runs):
        loads.append(os.getloadavg()[0])
        for key, repo in repos.items():
            forget_builds(repo)
            # One process (MAGCFG_JOBS=1) against the default (every core this process
            # may use): what compiling in several processes buys, in the same round,
            # in turns first (the build after another one pays for its writes).
            colds = [("cold, 1 process", {"MAGCFG_JOBS": "1"}), ("cold", {})]
            for n, (what, env) in enumerate(colds[::-1] if r % 2 else colds):
                if n:
                    forget_builds(repo)
                record(key, what, [*MAGCFG, "build", "-q", "--timings"], repo, env)
            touch_one(repo, r)
            record(key, "one-file", [*MAGCFG, "build", "-q", "--timings"], repo)
            record(key, "no-op", [*MAGCFG, "build", "-q", "--timings"], repo)
            if r < args.pipeline_runs:
                for name, engine in PIPELINES.items():
                    record(key, name, [sys.executable, "pipeline.py", str(repo),
                                       ",".join(ENVS), engine], repo)
            if kapitan is not None and r < args.kapitan_runs:
                shutil.rmtree(repo / "kapitan" / "compiled", ignore_errors=True)
                record(key, "kapitan", [*kapitan, "compile"], repo / "kapitan")
        print(f"round {r + 1}/{args.runs} done", flush=True)

    med = statistics.median
    print(f"\nload average during the rounds: {min(loads):.2f}-{max(loads):.2f}")
    print(f"\n{'repo':20} {'what':22} {'median':>9} {'min':>8} {'peak RSS':>9} "
          f"{'ratio':>7} {'timings':>8} {'CPU':>8} {'ratio':>7}")
    for (shape, size) in repos:
        base = results.get((shape, size, "cold"))
        for what in ("cold", "cold, 1 process", "one-file", "no-op", *PIPELINES, "kapitan"):
            s = results.get((shape, size, what))
            if s is None or base is None:
                continue
            ratio = med(s.wall) / med(base.wall)
            cpu_ratio = med(s.cpu) / med(base.cpu)
            covered = ""
            if s.stages:
                shares = [sum(v for k, v in st.items() if k != "total") / w
                          for st, w in zip(s.stages, s.wall, strict=True)]
                covered = f"{100 * med(shares):6.0f}%"
            print(f"{shape + '-' + size:20} {what:22} {med(s.wall) * 1000:7.0f}ms "
                  f"{min(s.wall) * 1000:6.0f}ms {med(s.rss_mb):7.0f}MB {ratio:6.2f}x "
                  f"{covered:>8} {med(s.cpu) * 1000:6.0f}ms {cpu_ratio:6.2f}x")
        cold = results.get((shape, size, "cold"))
        if cold and cold.stages:
            stages = {k: med(st.get(k, 0.0) for st in cold.stages) for k in cold.stages[0]}
            print(f"{'':20} cold stages: " + ", ".join(f"{k} {v * 1000:.0f}"
                                                       for k, v in stages.items()) + " ms")
    print("\nratio: median wall (CPU: user and system time, which other work on the machine "
          "slows less) / magcfg cold's of the same repo (>1: slower than magcfg)")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
