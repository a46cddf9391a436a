"""Benchmark of the runtime kernel. Prints figures and ratios; asserts nothing.

    PYTHONPATH=compiler python benchmarks/runtime_bench.py [--large DIR] [--changes 200]
        [--reloads 30] [--baseline OLD/compiler] [--only import,reload]

1. ``Kernel.get`` against a plain nested dict lookup and a flat dict lookup.
2. Import time of ``magcfg.runtime`` against the compiler's CLI module (median of runs);
   with ``--baseline`` (the ``compiler/`` directory of another version, e.g. from
   ``git archive``), that version's import time too, interleaved, and the ratio.
3. Change-to-applied latency: from the ``..data`` symlink swap (as the kubelet does it)
   to the ``config.reloaded`` subscriber, median and p99 over N changes; inotify and the
   poll fallback.
4. Reload of a large config (one hot key changed per version): p50/p99 of the
   ``duration_ms`` of ``config.reloaded`` (read, verify, parse, freeze, diff), with
   subtree sharing (``kernel.SHARE_SUBTREES``) and without it, interleaved, and the ratio.
5. Memory per snapshot (tracemalloc) of the bundled config and of the large synthetic
   config (``benchmarks/synth.py``, 200 services x 1000 keys, then ``magcfg build``),
   against the plain ``json.loads`` dict of the same bytes.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import timeit
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "compiler"))

from magcfg.runtime import RELOADED, Kernel  # noqa: E402
from magcfg.runtime.snapshot import Snapshot, freeze  # noqa: E402
from magcfg.signing.keys import Ed25519PrivateKey, public_key_pem  # noqa: E402
from magcfg.signing.signatures import sha256_digest, sign_manifest  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": str(ROOT / "compiler")}


def _artifact(config_bytes: bytes, version: int, key: Ed25519PrivateKey) -> dict[str, bytes]:
    manifest = {
        "compiler": {"name": "magcfg", "version": "bench"},
        "config_digest": sha256_digest(config_bytes), "environment": "bench",
        "files": {"config.json": sha256_digest(config_bytes)}, "format": 1,
        "hot_keys": ["features", "logging.level"],
        "inputs": {"digest": sha256_digest(b""), "files": 0}, "reload_default": "restart",
        "restart_keys": ["magds"], "schema": {"digest": None, "path": None},
        "version": version,
    }
    manifest_bytes = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    return {"config.json": config_bytes, "manifest.json": manifest_bytes,
            "manifest.json.sig": sign_manifest(manifest_bytes, key)}


class KubeletSwap:
    """The kubelet's atomic writer; returns the perf_counter of the ..data rename."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.n = 0
        directory.mkdir(parents=True, exist_ok=True)

    def write(self, files: dict[str, bytes]) -> float:
        self.n += 1
        new = self.dir / f"..bench_{self.n:06d}"
        new.mkdir()
        for name, data in files.items():
            (new / name).write_bytes(data)
        link = self.dir / "..data"
        old = os.readlink(link) if link.is_symlink() else None
        os.symlink(new.name, self.dir / "..data_tmp")
        swapped = time.perf_counter()
        os.rename(self.dir / "..data_tmp", link)
        for name in files:
            if not (self.dir / name).is_symlink():
                os.symlink(f"..data/{name}", self.dir / name)
        if old:
            shutil.rmtree(self.dir / old)
        return swapped


def _config(counter: int) -> dict[str, Any]:
    bundled = json.loads((ROOT / "generated/production/config.json").read_bytes())
    bundled.setdefault("features", {})["counter"] = counter
    return bundled


def bench_get(tmp: Path, key: Ed25519PrivateKey) -> None:
    data = (json.dumps(_config(1), indent=2, sort_keys=True) + "\n").encode()
    KubeletSwap(tmp / "get").write(_artifact(data, 1, key))
    kernel = Kernel(tmp / "get", [key.public_key()], watch=False,
                    environment="bench").start()
    plain = json.loads(data)
    flat = {"maggate.port": plain["maggate"]["port"]}
    n = 2_000_000
    results = {
        "plain dict d['maggate']['port']": min(timeit.repeat(
            "d['maggate']['port']", globals={"d": plain}, number=n, repeat=5)),
        "flat dict f.get('maggate.port')": min(timeit.repeat(
            "f.get('maggate.port')", globals={"f": flat}, number=n, repeat=5)),
        "kernel.get('maggate.port')": min(timeit.repeat(
            "k.get('maggate.port')", globals={"k": kernel}, number=n, repeat=5)),
        "kernel.config['maggate']['port']": min(timeit.repeat(
            "k.config['maggate']['port']", globals={"k": kernel}, number=n, repeat=5)),
    }
    base = results["plain dict d['maggate']['port']"]
    print("\n## get cost (ns per lookup, best of 5 x 2M)")
    for name, seconds in results.items():
        print(f"  {name:36s} {seconds / n * 1e9:7.1f} ns   x{seconds / base:4.2f} of plain dict")
    kernel.stop()


def bench_import(tmp: Path, key: Ed25519PrivateKey, baseline: Path | None = None) -> None:
    # Deployed services import from bytecode: measure with a warm pycache (kept out of the
    # tree), even where PYTHONDONTWRITEBYTECODE is set for development.
    env = {k: v for k, v in ENV.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
    if baseline is not None:
        bench_import_against(env, baseline.resolve(), tmp, key)

    def median_wall(code: str) -> float:
        subprocess.run([sys.executable, "-c", code], env=env, check=True)  # warm the cache
        samples = []
        for _ in range(9):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], env=env, check=True)
            samples.append((time.perf_counter() - started) * 1000)
        return statistics.median(samples)

    def median_cumulative(module: str) -> float:
        samples = []
        for _ in range(9):
            out = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"],
                                 capture_output=True, text=True, env=env, check=True)
            last = [line for line in out.stderr.splitlines() if line.endswith(f"| {module}")]
            samples.append(int(last[-1].split("|")[1]) / 1000)
        return statistics.median(samples)

    base = median_wall("pass")
    stdlib = "import logging, typing, dataclasses, pathlib, json, re, hashlib, threading"
    service = median_wall(stdlib)
    rows = {
        "magcfg.runtime": median_wall("import magcfg.runtime") - base,
        "magcfg.compiler (the build stack)": median_wall("import magcfg.compiler") - base,
        "typer+deepdiff+git+jsonschema": median_wall(
            "import typer, deepdiff, git, jsonschema") - base,
    }
    print("\n## import time (ms over a bare interpreter, median of 9 fresh processes, "
          "warm bytecode cache)")
    runtime = rows["magcfg.runtime"]
    for name, ms in rows.items():
        print(f"  {name:36s} {ms:7.1f} ms   runtime is x{runtime / ms:4.2f}")
    on_top = median_wall(f"{stdlib}; import magcfg.runtime") - service
    print(f"  magcfg.runtime in a process that already has logging, typing, dataclasses, "
          f"pathlib, json, re, hashlib: {on_top:.1f} ms")
    print(f"  -X importtime cumulative: magcfg.runtime {median_cumulative('magcfg.runtime'):.1f} ms;"
          f" cryptography ed25519 (imported by the first Kernel) "
          f"{median_cumulative('cryptography.hazmat.primitives.asymmetric.ed25519'):.1f} ms")


# A service's start, timed inside a fresh process: the import, then the first Kernel
# (made, started on a signed artifact with a state dir, watching, then stopped). Prints
# "<import ms> <first load ms>".
_FIRST_LOAD = """\
import sys, time
if sys.argv[4] == "no-orjson":
    sys.modules["orjson"] = None  # a runtime-only install (cryptography alone): json parses
started = time.perf_counter()
from magcfg.runtime import RELOADED, Kernel
imported = time.perf_counter()
kernel = Kernel(sys.argv[1], [sys.argv[2]], sys.argv[3], environment="bench").start()
loaded = time.perf_counter()
kernel.stop()
print((imported - started) * 1000, (loaded - imported) * 1000)
"""


def bench_import_against(env: dict[str, str], baseline: Path, tmp: Path,
                         key: Ed25519PrivateKey, runs: int = 21) -> None:
    """``import magcfg.runtime`` of this tree and of ``baseline``, in alternating fresh
    processes (a change in the shared machine's load hits both alike); then a service's
    start (import + first load of the bundled config) in each."""
    trees = {"this tree": str(ROOT / "compiler"), "baseline": str(baseline)}

    def run_env(tree: str | None) -> dict[str, str]:
        if tree is None:
            return {k: v for k, v in env.items() if k != "PYTHONPATH"}
        return {**env, "PYTHONPATH": tree,
                "PYTHONPYCACHEPREFIX": str(tmp / "pycache" / str(abs(hash(tree))))}

    def wall(code: str, tree: str | None) -> float:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], env=run_env(tree), check=True)
        return (time.perf_counter() - started) * 1000

    for tree in trees.values():
        wall("import magcfg.runtime", tree)  # warm both bytecode caches
    samples: dict[str, list[float]] = {"bare": [], **{name: [] for name in trees}}
    for _ in range(runs):
        samples["bare"].append(wall("pass", None))
        for name, tree in trees.items():
            samples[name].append(wall("import magcfg.runtime", tree))
    bare = statistics.median(samples["bare"])
    over = {name: statistics.median(samples[name]) - bare for name in trees}
    print(f"\n## import magcfg.runtime against {baseline} (ms over a bare interpreter of "
          f"{bare:.1f} ms, median of {runs} alternating fresh processes)")
    for name in trees:
        print(f"  {name:36s} {over[name]:7.1f} ms")
    print(f"  ratio baseline / this tree: x{over['baseline'] / over['this tree']:4.2f}  "
          f"(goal: <= 30 ms over a bare interpreter)")

    data = (json.dumps(_config(1), indent=2, sort_keys=True) + "\n").encode()
    KubeletSwap(tmp / "first-load").write(_artifact(data, 1, key))
    public = tmp / "first-load.pub"
    public.write_bytes(public_key_pem(key.public_key()))
    installs = {"with orjson": "orjson", "without orjson": "no-orjson"}
    rows = [(tree, install) for install in installs for tree in trees]
    starts: dict[tuple[str, str], list[float]] = {row: [] for row in rows}
    parts: dict[tuple[str, str], list[tuple[float, float]]] = {row: [] for row in rows}
    bares: list[float] = []
    for n in range(runs + 1):
        bare_ms = wall("pass", None)
        for name, install in rows:
            # Each tree its own state dir: the first start saves the last known-good,
            # the others load it too, as a restarted service does.
            argv = [str(tmp / "first-load"), str(public), str(tmp / f"state-{name}"),
                    installs[install]]
            begun = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", _FIRST_LOAD, *argv],
                                 env=run_env(trees[name]), check=True, capture_output=True,
                                 text=True).stdout.split()
            if n:  # the first round warms the caches and makes the state files
                starts[name, install].append((time.perf_counter() - begun) * 1000)
                parts[name, install].append((float(out[0]), float(out[1])))
        if n:
            bares.append(bare_ms)
    bare = statistics.median(bares)
    print(f"\n## a service's start: import + the first Kernel (made, started on the bundled "
          f"config with a state dir, watching, stopped); ms, median of {runs} alternating "
          "fresh processes; without orjson as a runtime-only install (json parses)")
    for row in rows:
        whole = statistics.median(starts[row]) - bare
        imported = statistics.median(p[0] for p in parts[row])
        loaded = statistics.median(p[1] for p in parts[row])
        print(f"  {row[0]:10s} {row[1]:15s} process over bare {whole:6.1f}   in it: import "
              f"{imported:5.1f}   first Kernel().start() {loaded:5.1f}   both "
              f"{imported + loaded:5.1f}")


def bench_latency(tmp: Path, key: Ed25519PrivateKey, changes: int, inotify: bool) -> None:
    directory = tmp / f"latency-{'inotify' if inotify else 'poll'}"
    writer = KubeletSwap(directory)

    def payload(i: int) -> dict[str, bytes]:
        config = _config(i)
        config["logging"]["level"] = "debug" if i % 2 else "info"
        return _artifact((json.dumps(config, indent=2, sort_keys=True) + "\n").encode(), i, key)

    writer.write(payload(1))
    applied: dict[int, float] = {}
    arrived = threading.Condition()

    def on_reload(event: dict[str, Any]) -> None:
        with arrived:
            applied[event["data"]["version"]] = time.perf_counter()
            arrived.notify_all()

    kernel = Kernel(directory, [key.public_key()], use_inotify=inotify,
                    poll_interval=0.01 if not inotify else 5.0, environment="bench")
    kernel.subscribe(RELOADED, on_reload)
    kernel.start()
    latencies = []
    for i in range(2, changes + 2):
        files = payload(i)
        swapped = writer.write(files)
        with arrived:
            arrived.wait_for(lambda i=i: i in applied, timeout=10)  # type: ignore[misc]
        latencies.append((applied[i] - swapped) * 1000)
    kernel.stop()
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    mode = "inotify, debounce 10 ms" if inotify else "poll every 10 ms (no inotify)"
    print(f"  {mode:36s} median {statistics.median(latencies):6.1f} ms   p99 {p99:6.1f} ms"
          f"   max {latencies[-1]:6.1f} ms  (n={len(latencies)})")


def _measure(build: Any) -> tuple[int, Any]:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    value = build()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return after - before, value


def bench_memory(name: str, config_path: Path) -> None:
    data = config_path.read_bytes()
    plain_size, plain = _measure(lambda: json.loads(data))
    snap_size, snap = _measure(lambda: Snapshot(freeze(json.loads(data)), freeze({}), b"", b"",
                                                {"config.json": data}, "bench"))
    tree_size = snap_size - len(data) - 33  # minus the verified bytes kept for republishing
    print(f"  {name:8s} config.json {len(data) / 1e3:9.1f} kB: plain dict {plain_size / 1e3:9.1f} kB,"
          f" snapshot {snap_size / 1e3:9.1f} kB = frozen tree {tree_size / 1e3:9.1f} kB"
          f" (x{tree_size / plain_size:4.2f} of the dict) + the verified bytes")
    del plain, snap


def large_config(large: Path | None, tmp: Path) -> Path:
    if large is None:
        large = tmp / "large"
        subprocess.run([sys.executable, str(ROOT / "benchmarks/synth.py"), str(large)],
                       check=True, env=ENV, capture_output=True)
    if not (large / "generated").is_dir():
        subprocess.run([sys.executable, "-m", "magcfg", "build", "-q"], cwd=large, check=True,
                       env=ENV, capture_output=True)
    return sorted((large / "generated").glob("*/config.json"))[-1]


def bench_large_reload(tmp: Path, key: Ed25519PrivateKey, config_path: Path,
                       reloads: int = 30) -> None:
    """Whole-pipeline cost for a 10 MB config: one hot key changed per version, applied
    by a kernel that shares unchanged subtrees and by one that does not, alternately."""
    from magcfg.runtime import kernel as kernel_module

    config = json.loads(config_path.read_bytes())
    manifest = json.loads((config_path.parent / "manifest.json").read_bytes())
    service = sorted(config)[0]
    hot = next(k for k in manifest["hot_keys"] if k.startswith(service + "."))

    def payload(i: int) -> dict[str, bytes]:
        node = config
        for part in hot.split("."):
            node = node[part]
        node["bench_counter"] = i  # type: ignore[index]
        body = (json.dumps(config, indent=2, sort_keys=True) + "\n").encode()
        files = _artifact(body, i, key)
        m = json.loads(files["manifest.json"])
        m.update(hot_keys=manifest["hot_keys"], restart_keys=manifest["restart_keys"])
        mb = (json.dumps(m, indent=2, sort_keys=True) + "\n").encode()
        return {"config.json": body, "manifest.json": mb,
                "manifest.json.sig": sign_manifest(mb, key)}

    modes = {"shared subtrees": True, "no sharing (a full parse and freeze)": False}
    writers = {mode: KubeletSwap(tmp / f"large-reload-{n}") for n, mode in enumerate(modes)}
    kernels: dict[str, Kernel] = {}
    boot: dict[str, float] = {}
    first = payload(1)
    for mode, share in modes.items():
        writers[mode].write(first)
        kernel_module.SHARE_SUBTREES = share
        kernels[mode] = Kernel(writers[mode].dir, [key.public_key()], watch=False,
                               environment="bench")
        started = time.perf_counter()
        kernels[mode].start()
        boot[mode] = (time.perf_counter() - started) * 1000
    durations: dict[str, list[float]] = {mode: [] for mode in modes}
    for i in range(2, reloads + 2):
        files = payload(i)
        for mode, share in modes.items():
            writers[mode].write(files)
            kernel_module.SHARE_SUBTREES = share
            gc.collect()
            previous = kernels[mode].snapshot
            result = kernels[mode].reload()
            assert result.status == "applied", result
            other = sorted(config)[-1]  # not the changed service: shared, or equal only
            assert (kernels[mode].config[other] is previous.config[other]) == share
            durations[mode].append(result.event["data"]["duration_ms"])  # type: ignore[index]
    kernel_module.SHARE_SUBTREES = True
    for kernel in kernels.values():
        kernel.stop()
    print(f"\n## reload of a large config ({config_path.stat().st_size / 1e6:.1f} MB, "
          f"{len(config)} top-level keys), one hot key changed per version; "
          f"config.reloaded duration_ms (read, verify, parse, freeze, diff), n={reloads}")
    p50 = {}
    for mode, values in durations.items():
        values.sort()
        p50[mode] = statistics.median(values)
        p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
        print(f"  {mode:40s} p50 {p50[mode]:7.1f} ms   p99 {p99:7.1f} ms   "
              f"min {values[0]:6.1f} ms   start {boot[mode]:6.0f} ms")
    ratio = p50["no sharing (a full parse and freeze)"] / p50["shared subtrees"]
    print(f"  p50 ratio no sharing / shared: x{ratio:4.1f}   (goal: shared p50 <= 50 ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--large", type=Path, help="a synth.py repository (built or not); "
                        "default: generate one in a temp dir")
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--reloads", type=int, default=30,
                        help="reloads of the large config per mode")
    parser.add_argument("--baseline", type=Path, help="the compiler/ directory of another "
                        "version, to compare import times with (interleaved)")
    parser.add_argument("--only", default="get,import,latency,reload,memory",
                        help="comma-separated sections to run")
    args = parser.parse_args()
    only = set(args.only.split(","))
    key = Ed25519PrivateKey.generate()
    with tempfile.TemporaryDirectory(prefix="magcfg-runtime-bench-") as name:
        tmp = Path(name)
        print(f"# magcfg runtime benchmark (python {sys.version.split()[0]}, "
              f"{os.cpu_count()} cpus)")
        if "get" in only:
            bench_get(tmp, key)
        if "import" in only:
            bench_import(tmp, key, args.baseline)
        if "latency" in only:
            print(f"\n## change-to-applied latency (..data swap -> config.reloaded subscriber, "
                  f"{args.changes} changes)")
            bench_latency(tmp, key, args.changes, inotify=True)
            bench_latency(tmp, key, min(args.changes, 100), inotify=False)
        if only & {"reload", "memory"}:
            large = large_config(args.large, tmp)
            if "reload" in only:
                bench_large_reload(tmp, key, large, args.reloads)
            if "memory" in only:
                print("\n## memory per snapshot (tracemalloc)")
                bench_memory("bundled", ROOT / "generated/production/config.json")
                bench_memory("large", large)


if __name__ == "__main__":
    main()
