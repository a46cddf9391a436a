"""Benchmark of `magcfg lint` on a generated 10,000-file repository.

Generates a git repository of mixed files (Kubernetes manifests, compose files, Helm
values, Python, TypeScript, Go, JSON, env files, Vault policies, Markdown), with a few
seeded findings, then times, in one run, on the same tree:

* `magcfg lint` (all rules, a real process, as CI runs it);
* `detect-secrets scan` (the alternative users would run for the secret rule alone).

Usage: python benchmarks/lint_bench.py [--files 10000] [--runs 3] [--keep DIR] [--ab BASE]
Prints wall-clock medians and the ratio. Not a test: never asserts times.

With ``--ab BASE`` (a ``compiler/`` directory of another commit, e.g. from ``git archive
COMMIT compiler | tar -x -C /tmp/base``), only ``magcfg lint`` is timed, BASE and this
tree alternating, ``--runs`` runs each on the same repository: CPU (user+sys) and
wall-clock medians, their ratios, and whether the two reports are identical.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import statistics
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

K8S = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: svc-{i}
  labels: {{app: svc-{i}, tier: backend}}
spec:
  replicas: 2
  selector:
    matchLabels: {{app: svc-{i}}}
  template:
    metadata:
      labels: {{app: svc-{i}}}
    spec:
      containers:
        - name: app
          image: registry.local/svc-{i}:1.{i}.0
          ports: [{{containerPort: 8080}}]
          env:
            - name: LOG_LEVEL
              value: info
            - name: DB_PASSWORD
              valueFrom:
                secretKeyRef: {{name: svc-{i}, key: db_password}}
            - name: REGION
              value: ${{REGION:?REGION is required}}
          resources:
            limits: {{cpu: 500m, memory: 256Mi}}
"""
COMPOSE = """\
services:
  svc{i}:
    image: svc{i}:latest
    environment:
      DB_HOST: db
      DB_PASSWORD: ${{DB_PASSWORD:?set DB_PASSWORD}}
      LOG_LEVEL: ${{LOG_LEVEL:-info}}  # safe-default: log level is not sensitive
    ports: ["80{i2}:8080"]
"""
VALUES = """\
replicaCount: 2
image:
  repository: registry.local/chart-{i}
  tag: "1.{i}.0"
existingSecret: chart-{i}-credentials
passwordKey: db-password
service: {{type: ClusterIP, port: 80}}
ingress:
  enabled: false
"""
PY = '''\
"""Service module {i}."""

import logging
import os

log = logging.getLogger(__name__)
PASSWORD_FIELD = "password"


def connect(host: str = "db", port: int = 5432) -> dict[str, object]:
    password = os.environ["DB_PASSWORD"]
    token = os.environ.get("API_TOKEN", "")
    log.info("connecting to %s:%d", host, port)
    return {{"host": host, "port": port, "password": password, "token": token}}


def handler_{i}(event: dict[str, object]) -> int:
    total = 0
    for key, value in sorted(event.items()):
        total += len(str(key)) + len(str(value))
    return total
'''
TS = """\
import {{ readFileSync }} from "fs";

export interface Config{i} {{
  apiUrl: string;
  apiKey: string | undefined;
  retries: number;
}}

export function load{i}(): Config{i} {{
  return {{
    apiUrl: process.env.API_URL ?? "https://api.internal",
    apiKey: process.env.API_KEY,
    retries: 3,
  }};
}}

export const banner{i} = readFileSync("banner.txt", "utf8");
"""
GO = """\
package svc{i}

import (
	"fmt"
	"os"
)

// Config of service {i}.
type Config struct {{
	Addr  string
	Token string
}}

func Load() Config {{
	return Config{{Addr: fmt.Sprintf(":%d", 8000+{i}), Token: os.Getenv("TOKEN")}}
}}
"""
JSON = """\
{{
  "name": "pkg-{i}",
  "version": "1.{i}.0",
  "private": true,
  "scripts": {{"build": "tsc -p .", "test": "node --test"}},
  "config": {{"apiKeyHeader": "X-Api-Key", "token": "vault://secret/k3s/pkg-{i}#token"}}
}}
"""
ENV = "LOG_LEVEL=info\nAPI_URL=${{API_URL:?required}}\nDB_PASSWORD=\nREGION=eu-{i}\n"
HCL = """\
path "secret/data/k3s/app{i}" {{
  capabilities = ["read"]
}}
path "secret/data/k3s/app{i}/*" {{
  capabilities = ["read"]
}}
"""
MD = """\
# Component {i}

Configuration lives in layers; secrets are references such as
`vault://secret/k3s/app{i}#db_password`. Run `magcfg build` after a change.

| key | default |
|---|---|
| log_level | info |
| replicas | 2 |
"""
KINDS = [("k8s/{d}/deploy-{i}.yaml", K8S), ("services/{d}/compose-{i}.yaml", COMPOSE),
         ("charts/{d}/values-{i}.yaml", VALUES), ("src/{d}/mod_{i}.py", PY),
         ("web/{d}/config{i}.ts", TS), ("go/{d}/svc{i}.go", GO), ("pkgs/{d}/pkg{i}.json", JSON),
         ("config/{d}/app{i}.env", ENV), ("policies/{d}/app{i}.hcl", HCL),
         ("docs/{d}/component-{i}.md", MD)]
SEEDED = {
    "k8s/bad/deploy.yaml": "apiVersion: v1\nkind: ConfigMap\ndata:\n  url: ${URL:-http://x}\n",
    "services/bad/settings.py": 'DB_PASSWORD = "BENCHcanary-pw-1"\n',  # magcfg: ignore[MAG002] reason: seeded
    "config/bad/prod.env": "API_TOKEN=BENCHcanary-tok-2\n",  # magcfg: ignore[MAG002] reason: seeded
    "policies/bad/wild.hcl": 'path "secret/data/k3s/bad/*" { capabilities = ["read"] }\n',
    "src/bad/vault.py": "import hvac\n",
    "docs/bad/leak.md": "token ghp_BENCH0" + string.ascii_lowercase + "0123\n",
}

SECRET_SEEDS = ("services/bad/settings.py", "config/bad/prod.env", "docs/bad/leak.md")


def generate(root: Path, n: int) -> None:
    rng = random.Random(7)
    per_kind = (n - len(SEEDED)) // len(KINDS)
    count = 0
    for pattern, template in KINDS:
        for i in range(per_kind):
            d = f"g{rng.randrange(40):02d}"
            path = root / pattern.format(d=d, i=i)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(template.format(i=i, i2=i % 100), encoding="utf-8")
            count += 1
    extra = n - len(SEEDED) - count
    for i in range(extra):
        path = root / "misc" / f"note{i}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(MD.format(i=i), encoding="utf-8")
    for rel, text in SEEDED.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.com",
           "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@example.com"}
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "bench"]):
        subprocess.run(["git", *args], cwd=root, env=env, check=True)


def timed(cmd: list[str], cwd: Path, runs: int, compiler: Path = ROOT / "compiler"
          ) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """Median wall-clock and CPU (user+sys) seconds of ``runs`` runs, and the last run.
    CPU time is the steadier figure on a loaded machine."""
    times = []
    cpu = []
    proc = None
    env = {**os.environ, "PYTHONPATH": str(compiler)}
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    assert proc is not None
    return statistics.median(times), statistics.median(cpu), proc


def lint_ab(root: Path, base: Path, runs: int) -> None:
    """``magcfg lint``'s CPU and wall-clock time with BASE's compiler and this tree's, one
    run of each in turn (a change of the machine's load falls on both alike)."""
    trees = {"before": base, "after": ROOT / "compiler"}
    cpu: dict[str, list[float]] = {side: [] for side in trees}
    wall: dict[str, list[float]] = {side: [] for side in trees}
    reports: dict[str, str] = {}
    for _ in range(runs):
        for side, tree in trees.items():
            elapsed, seconds, proc = timed(
                [sys.executable, "-m", "magcfg", "lint", "-f", "json"], root, 1, tree)
            cpu[side].append(seconds)
            wall[side].append(elapsed)
            reports[side] = proc.stdout
    for measure, times in (("CPU", cpu), ("wall-clock", wall)):
        before, after = (statistics.median(times[side]) for side in trees)
        print(f"magcfg lint {measure}, median of {runs}: before {before:.3f} s, "
              f"after {after:.3f} s, ratio {after / before:.3f}")
    print(f"reports {'identical' if reports['before'] == reports['after'] else 'DIFFER'}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--keep", type=Path, help="generate here and keep the repository")
    ap.add_argument("--ab", type=Path, metavar="BASE",
                    help="another commit's compiler/ directory: time lint alone, BASE and "
                         "this tree alternating")
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="magcfg-lint-bench-"))
    try:
        t0 = time.perf_counter()
        generate(root, args.files)
        nfiles = int(subprocess.run(["git", "ls-files"], cwd=root, capture_output=True,
                                    text=True, check=True).stdout.count("\n"))
        size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and ".git" not in p.parts)
        print(f"repository: {nfiles} files, {size / 1e6:.1f} MB (generated in "
              f"{time.perf_counter() - t0:.1f} s)")
        if args.ab is not None:
            lint_ab(root, args.ab.resolve(), args.runs)
            return 0
        lint_s, lint_cpu, lint = timed([sys.executable, "-m", "magcfg", "lint", "-f", "json"], root,
                             args.runs)
        import json

        found = json.loads(lint.stdout)["findings"]
        rules = sorted({f["rule"] for f in found})
        seeded = sum(1 for f in found if f["file"] in SEEDED)
        print(f"magcfg lint (7 rules):          {lint_s:6.2f} s ({lint_cpu:5.2f} s CPU)   "
              f"exit {lint.returncode}, "
              f"{len(found)} findings ({', '.join(rules)}): {seeded} of {len(SEEDED)} seeded "
              f"problems found, {len(found) - seeded} elsewhere")
        ds_s, ds_cpu, ds = timed([sys.executable, "-m", "detect_secrets", "scan"], root, args.runs)
        results = json.loads(ds.stdout)["results"]
        ds_found = sum(len(v) for v in results.values())
        ds_seeded = sum(1 for f in SECRET_SEEDS if results.get(f))
        print(f"detect-secrets scan (secrets):  {ds_s:6.2f} s ({ds_cpu:5.2f} s CPU)   {ds_found} findings: "
              f"{ds_seeded} of {len(SECRET_SEEDS)} seeded secrets found, "
              f"{ds_found - ds_seeded} elsewhere")
        print(f"ratio detect-secrets / magcfg lint: {ds_s / lint_s:.1f}x wall-clock, "
              f"{ds_cpu / lint_cpu:.1f}x CPU")
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
