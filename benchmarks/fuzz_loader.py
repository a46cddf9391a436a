"""Fuzz the layer loader, the merge and the whole build for a given time.

    python benchmarks/fuzz_loader.py --seconds 600 --seed 1 --out /tmp/fuzz-findings
    nice -n 10 python benchmarks/fuzz_loader.py --seconds 3600   # on a shared machine

Inputs are the generated hostile documents of tests/syntax/yaml_corpus.py, and the real
layer files of this repository mutated byte-wise. Each input runs in a worker process
(killed and counted as a hang after --timeout seconds) through:

* both parser paths (``yaml_corpus.disagreement``): any exception other than the
  located-error type, a refusal without a line, or a fast/reference difference;
* the merge, over the previous accepted input as the layer below, and the serializer
  of config.json: any exception, or a marker left in the merged document;
* every --build-every inputs, the real ``magcfg build`` on a small project with the input
  as a layer file: a traceback, an exit code other than 0 or 1, a refusal whose first
  error differs from the loader's, or a failed build that touched generated/.

Prints the figures (inputs tried, crashes, hangs, disagreements, builds) and saves each
finding's input and description under --out. Exit status 1 when there is a finding.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import random
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.syntax.yaml_corpus import HOSTILE, disagreement, generate, mutate  # noqa: E402

MAGCFG = Path(sys.executable).with_name("magcfg")
PROJECT = """\
version: 1
environments: [dev]
layers:
  - name: base
    path: layers/base
  - name: environment
    path: "layers/environments/{env}"
schema:
  json: schemas/schema.json
output: generated
"""
SCHEMA = {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object"}
BASE = "a: 1\nkey: {b: [1, 2], c: text}\nname: base\n"
FUZZ_FILE = "layers/environments/dev/fuzz.yaml"


def inputs(seed: int) -> Any:
    """Endless inputs: mostly generated documents, a fifth mutated real layer files."""
    rng = random.Random(seed)
    real = [p.read_text(encoding="utf-8") for p in sorted((ROOT / "layers").rglob("*.yaml"))]
    while True:
        if real and rng.random() < 0.2:
            yield mutate(rng, rng.choice(real), HOSTILE).encode("utf-8", "surrogatepass")
        else:
            yield generate(rng)


Parsed = tuple[dict[str, Any], bool]


def check_merge(raw: bytes, below: Parsed | None) -> tuple[str | None, Parsed | None]:
    """Merge the input over ``below`` (an earlier input: data and whether it holds
    markers) and serialize the result. Returns (problem, the input parsed when the
    loader accepts it)."""
    from magcfg.pipeline.emit import fragment_bytes
    from magcfg.pipeline.load import ParsedFile
    from magcfg.pipeline.merge import ABSENT, Layer, LayerStack
    from magcfg.syntax.strict_yaml import LoadFailed, parse_layer

    try:
        data, markers = parse_layer("fuzz.yaml", raw)
    except LoadFailed:
        return None, None

    class Source:
        def read(self, path: str) -> bytes:
            return raw if path == "fuzz.yaml" else b""

    layers = []
    if below is not None:
        layers.append(Layer("base", "base", (ParsedFile("base.yaml", "0", tuple(below[0]),
                                                        below[1], data=below[0]),)))
    layers.append(Layer("env", "env", (ParsedFile("fuzz.yaml", "1", tuple(data), markers,
                                                  data=data),)))
    try:
        merged, diagnostics = LayerStack("dev", layers, Source()).merge()
        if not any(d.severity == "error" for d in diagnostics):
            for key, value in merged.items():
                if _has_marker(value) or value is ABSENT:
                    return f"merged value of {key!r} holds a marker: {value!r}", (data, markers)
                fragment_bytes(key, value)
    except Exception:
        return "merge or serialization crashed:\n" + traceback.format_exc(), (data, markers)
    return None, (data, markers)


def _has_marker(value: Any) -> bool:
    if type(value) is tuple:
        return True
    if type(value) is dict:
        return any(_has_marker(v) for v in value.values())
    if type(value) is list:
        return any(_has_marker(v) for v in value)
    return False


def worker(conn: Connection) -> None:
    """Answers (kind, problem) for each input received; kind: "disagree", "crash" or ""."""
    below: Parsed | None = None
    while True:
        raw = conn.recv()
        problem = disagreement(raw)
        if problem is not None:
            kind = "crash" if "crashed" in problem or "without a line" in problem else "disagree"
            conn.send((kind, problem))
            continue
        problem, data = check_merge(raw, below)
        if data is not None:
            below = data
        conn.send(("crash", problem) if problem else ("", None))


class Project:
    """A small real project; the input goes in as an environment layer file."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "schemas").mkdir(parents=True)
        (root / "layers/base").mkdir(parents=True)
        (root / "layers/environments/dev").mkdir(parents=True)
        (root / "magcfg.yaml").write_text(PROJECT)
        (root / "schemas/schema.json").write_text(json.dumps(SCHEMA))
        (root / "layers/base/base.yaml").write_text(BASE)
        done = self.build()
        assert done.returncode == 0, done.stderr

    def build(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(MAGCFG), "build"], cwd=self.root, capture_output=True,
                              text=True, timeout=120)

    def state(self) -> dict[str, str]:
        out = {}
        for path in sorted((self.root / "generated").rglob("*")):
            if path.is_file():
                out[str(path.relative_to(self.root))] = hashlib.sha256(path.read_bytes()).hexdigest()
        return out

    def check(self, raw: bytes) -> str | None:
        from magcfg.syntax.strict_yaml import LoadFailed, parse_layer

        before = self.state()
        (self.root / FUZZ_FILE).write_bytes(raw)
        try:
            done = self.build()
        finally:
            (self.root / FUZZ_FILE).unlink()
        output = done.stdout + done.stderr
        if "Traceback" in output or done.returncode not in (0, 1):
            return f"build exit {done.returncode}:\n{output}"
        try:
            parse_layer(FUZZ_FILE, raw)
            loader_error = None
        except LoadFailed as exc:
            loader_error = sorted(exc.diagnostics)[0].format()
        if loader_error is not None and (done.returncode != 1 or loader_error not in output):
            return f"loader refuses ({loader_error}) but build exit {done.returncode}:\n{output}"
        if done.returncode == 1 and self.state() != before:
            return "a failed build changed generated/"
        if done.returncode == 0:
            restored = self.build()  # back to the base layer alone
            if restored.returncode != 0:
                return f"rebuild without the input failed:\n{restored.stderr}"
        return None


def save(out: Path, kind: str, raw: bytes, problem: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    name = f"{kind}-{hashlib.sha256(raw).hexdigest()[:12]}"
    (out / f"{name}.yaml").write_bytes(raw)
    (out / f"{name}.txt").write_text(problem + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=5.0, help="per input, seconds")
    parser.add_argument("--build-every", type=int, default=200,
                        help="run the real build on every Nth input (0: never)")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "magcfg-fuzz")
    args = parser.parse_args(argv)

    context = multiprocessing.get_context("fork")
    counts = {"inputs": 0, "crash": 0, "hang": 0, "disagree": 0, "builds": 0, "build": 0}

    def start() -> tuple[Any, Connection]:
        mine, theirs = context.Pipe()
        process = context.Process(target=worker, args=(theirs,), daemon=True)
        process.start()
        return process, mine

    process, conn = start()
    workdir = Path(tempfile.mkdtemp(prefix="magcfg-fuzz-"))
    project = Project(workdir / "project") if args.build_every else None
    deadline = time.monotonic() + args.seconds
    try:
        for raw in inputs(args.seed):
            if time.monotonic() >= deadline:
                break
            counts["inputs"] += 1
            conn.send(raw)
            if not conn.poll(args.timeout):
                counts["hang"] += 1
                save(args.out, "hang", raw, f"no answer within {args.timeout} s")
                process.kill()
                process.join()
                process, conn = start()
                continue
            kind, problem = conn.recv()
            if kind:
                counts[kind] += 1
                save(args.out, kind, raw, problem)
            if project is not None and counts["inputs"] % args.build_every == 0:
                counts["builds"] += 1
                problem = project.check(raw)
                if problem is not None:
                    counts["build"] += 1
                    save(args.out, "build", raw, problem)
    finally:
        process.kill()
        shutil.rmtree(workdir, ignore_errors=True)
    findings = counts["crash"] + counts["hang"] + counts["disagree"] + counts["build"]
    print(f"seed {args.seed}, {args.seconds:.0f} s: {counts['inputs']} inputs tried, "
          f"{counts['crash']} crashes, {counts['hang']} hangs, {counts['disagree']} "
          f"fast/reference disagreements; {counts['builds']} full builds, "
          f"{counts['build']} build findings"
          + (f"; reproducers in {args.out}" if findings else ""))
    return 1 if findings else 0


if __name__ == "__main__":
    raise SystemExit(main())
