"""A fleet on one machine: N watcher processes following one registry tag, and N on one
directory; a new version is published and each reports when it serves it.

    PYTHONPATH=compiler python benchmarks/fleet_bench.py --watchers 100 --interval 2 --steady 20

Reports, per source: time from publish to each watcher serving the new version
(p50/p99/max) and, for the registry, the requests the fleet makes per minute at steady
state (counted by each watcher's client). The registry is go-containerregistry's (the
pinned `crane registry serve`, .tools/bin), on 127.0.0.1. Every watcher is a process of
its own running the real Kernel (signature, digests, swap); nothing is simulated but the
number of machines. docs/runtime.md extrapolates the figures to 10,000 pods.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "compiler"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from runtime_bench import KubeletSwap, _artifact, _config  # noqa: E402

from magcfg.oci import cosign, flux  # noqa: E402
from magcfg.oci.reference import parse_reference  # noqa: E402
from magcfg.oci.registry import Registry  # noqa: E402
from magcfg.signing.keys import Ed25519PrivateKey, public_key_pem  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": str(ROOT / "compiler")}
WATCHER = r"""
import json, signal, sys, time, threading
from magcfg.runtime import Kernel
source, key, state, interval = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
def say(**data):
    sys.stdout.write(json.dumps(data) + "\n"); sys.stdout.flush()
extra = dict(insecure_registry=True, registry_interval=interval) if source.startswith("oci://") else {}
kernel = Kernel(source, [key], state, environment="bench", **extra)
kernel.subscribe("config.reloaded", lambda e: say(version=e["data"]["version"], t=time.time()))
kernel.start()
say(ready=kernel.version, t=time.time())
def count(*_):
    registry = kernel.status()["registry"]
    say(requests=registry["requests"] if registry else 0, t=time.time())
signal.signal(signal.SIGUSR1, count)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
while not stop.wait(1.0):
    pass
kernel.stop()
"""


class Watcher:
    def __init__(self, source: str, key: Path, state: Path, interval: float) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", WATCHER, source, str(key),
                                      str(state), str(interval)], env=ENV,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.lines: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(json.loads(line))

    def seen(self, field: str) -> list[dict[str, Any]]:
        return [line for line in list(self.lines) if field in line]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


def push(client: Registry, repo: str, tag: str, files: dict[str, bytes],
         key: Ed25519PrivateKey) -> str:
    """What `magcfg publish` pushes: the Flux artifact and its cosign signature."""
    layer = flux.pack(files)
    for blob in (flux.CONFIG_BLOB, layer):
        client.put_blob(repo, blob)
    digest = client.put_manifest(repo, tag, flux.image_manifest(layer, {}))
    blob, descriptor = cosign.signature_layer(f"{client.reference.host}/{repo}", digest, key)
    config, manifest = cosign.image_manifest([descriptor])
    client.put_blob(repo, blob)
    client.put_blob(repo, config)
    client.put_manifest(repo, cosign.tag_for(digest, "sig"), manifest)
    return digest


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"p50": round(statistics.median(ordered), 3), "p99": round(p99, 3),
            "max": round(ordered[-1], 3)}


def run_fleet(name: str, source: str, publish: Any, tmp: Path, key_file: Path, n: int,
              interval: float, steady: float) -> dict[str, Any]:
    watchers = [Watcher(source, key_file, tmp / f"state-{name}-{i}", interval) for i in range(n)]
    try:
        wait(lambda: all(w.seen("ready") for w in watchers), 60 + n, f"{n} {name} watchers")
        result: dict[str, Any] = {"watchers": n}
        if source.startswith("oci://"):
            for w in watchers:
                w.proc.send_signal(signal.SIGUSR1)
            wait(lambda: all(len(w.seen("requests")) >= 1 for w in watchers), 60, "counts")
            begin = time.time()
            time.sleep(steady)
            for w in watchers:
                w.proc.send_signal(signal.SIGUSR1)
            wait(lambda: all(len(w.seen("requests")) >= 2 for w in watchers), 60, "counts")
            minutes = (time.time() - begin) / 60
            made = sum(w.seen("requests")[1]["requests"] - w.seen("requests")[0]["requests"]
                       for w in watchers)
            result["requests_per_minute"] = round(made / minutes)
            result["requests_per_minute_per_watcher"] = round(made / minutes / n, 2)
        published = publish()
        wait(lambda: all(w.seen("version") for w in watchers), 120 + 4 * interval, "convergence")
        result["convergence_s"] = percentiles([w.seen("version")[0]["t"] - published
                                               for w in watchers])
        return result
    finally:
        for w in watchers:
            w.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--watchers", type=int, default=50, help="processes per source")
    parser.add_argument("--interval", type=float, default=2.0, help="registry poll interval (s)")
    parser.add_argument("--steady", type=float, default=20.0,
                        help="seconds of steady state over which requests are counted")
    args = parser.parse_args()
    crane = shutil.which("crane") or str(ROOT / ".tools/bin/crane")
    tmp = Path(tempfile.mkdtemp(prefix="magcfg-fleet-"))
    server = subprocess.Popen([crane, "registry", "serve", "--address", "127.0.0.1:0"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert server.stdout is not None
        seen = b""
        while not (found := re.search(rb"serving on port (\d+)", seen)):
            seen += server.stdout.readline()
        threading.Thread(target=server.stdout.read, daemon=True).start()
        host = f"127.0.0.1:{found.group(1).decode()}"
        key = Ed25519PrivateKey.generate()
        key_file = tmp / "bench.pub"
        key_file.write_bytes(public_key_pem(key.public_key()))
        v1 = _artifact(json.dumps(_config(1), indent=2).encode(), 1, key)
        v2 = _artifact(json.dumps(_config(2), indent=2).encode(), 2, key)

        client = Registry(parse_reference(f"oci://{host}/bench/fleet:live"), insecure=True)
        push(client, "bench/fleet", "live", v1, key)

        def publish_registry() -> float:
            published = time.time()
            push(client, "bench/fleet", "live", v2, key)
            return published

        directory = KubeletSwap(tmp / "volume")
        directory.write(v1)

        def publish_directory() -> float:
            published = time.time()
            directory.write(v2)
            return published

        report = {
            "cores": os.cpu_count(),
            "interval_s": args.interval,
            "registry": run_fleet("registry", f"oci://{host}/bench/fleet:live",
                                  publish_registry, tmp, key_file, args.watchers,
                                  args.interval, args.steady),
            "directory": run_fleet("directory", str(tmp / "volume"), publish_directory, tmp,
                                   key_file, args.watchers, args.interval, 0),
        }
        print(json.dumps(report, indent=2))
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
