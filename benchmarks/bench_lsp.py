"""Benchmark `magcfg lsp`: latency from a keystroke to its published diagnostics.

    python benchmarks/bench_lsp.py DIR                  # DIR: synth.py's large repo (made if empty)
    python benchmarks/bench_lsp.py DIR --services 10 --keys 50 --edits 30

Starts the real server over stdio (as an editor would), opens a base layer file and an
environment layer file of one service, and sends edits to their unsaved buffers: an
integer leaf changed, set out of the schema's bounds (an error appears), and restored,
in turn. Each latency is from sending ``didChange`` to receiving the
``publishDiagnostics`` of that document version. A base file is in every environment's
layers, an environment file in one.

Interleaved with the edits, in this process, it times what a server without incremental
checking would do on each keystroke: a full check of every environment from the same
buffers (``Session.full_check``), and prints the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from synth import generate  # noqa: E402

_INT_LEAF = re.compile(r"^( +)(\w+): (\d+)$", re.MULTILINE)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def edits(text: str, count: int) -> list[str]:
    """Buffers to send in turn: a leaf changed, out of bounds, restored."""
    m = _INT_LEAF.search(text)
    if m is None:
        raise SystemExit("no integer leaf to edit in the chosen file")
    indent, key, value = m.groups()

    def with_value(v: str) -> str:
        return text[:m.start()] + f"{indent}{key}: {v}" + text[m.end():]

    cycle = [with_value(str(int(value) + 1)), with_value("-1"), text]
    return [cycle[i % 3] for i in range(count)]


async def measure(root: Path, files: list[str], count: int, full_every: int
                  ) -> tuple[dict[str, list[float]], list[float], float]:
    from lsprotocol import types
    from pygls.lsp.client import BaseLanguageClient
    from pygls.uris import from_fs_path

    from magcfg.lsp.session import Session
    from magcfg.project import load_project

    client = BaseLanguageClient("bench", "1")
    waiting: dict[tuple[str, int | None], asyncio.Future[float]] = {}

    @client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def published(params: types.PublishDiagnosticsParams) -> None:
        future = waiting.pop((params.uri, params.version), None)
        if future is not None and not future.done():
            future.set_result(time.perf_counter())

    await client.start_io(sys.executable, "-m", "magcfg", "lsp")
    await client.initialize_async(types.InitializeParams(
        capabilities=types.ClientCapabilities(), root_uri=from_fs_path(str(root))))
    client.initialized(types.InitializedParams())
    loop = asyncio.get_running_loop()

    texts = {rel: (root / rel).read_text() for rel in files}
    uris = {rel: from_fs_path(str(root / rel)) or "" for rel in files}
    start = time.perf_counter()
    for n, rel in enumerate(files):
        done = waiting[(uris[rel], 1)] = loop.create_future()
        client.text_document_did_open(types.DidOpenTextDocumentParams(
            types.TextDocumentItem(uris[rel], "yaml", 1, texts[rel])))
        await asyncio.wait_for(done, 600)
        if n == 0:
            cold = time.perf_counter() - start

    session = Session(load_project(root / "magcfg.yaml"))
    full: list[float] = []
    latencies: dict[str, list[float]] = {rel: [] for rel in files}
    plans = {rel: edits(texts[rel], count) for rel in files}
    for i in range(count):
        for rel in files:
            version = i + 2
            done = waiting[(uris[rel], version)] = loop.create_future()
            sent = time.perf_counter()
            client.text_document_did_change(types.DidChangeTextDocumentParams(
                types.VersionedTextDocumentIdentifier(version=version, uri=uris[rel]),
                [types.TextDocumentContentChangeWholeDocument(text=plans[rel][i])]))
            received = await asyncio.wait_for(done, 600)
            latencies[rel].append(received - sent)
            if i % full_every == 0:
                session.source.open(rel, plans[rel][i])
                session.compiler.forget([rel])
                began = time.perf_counter()
                session.full_check()
                full.append(time.perf_counter() - began)
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    return latencies, full, cold


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="project (made with synth.py if missing)")
    parser.add_argument("--services", type=int, default=200)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--envs", type=int, default=3)
    parser.add_argument("--exhaustive-schema", action="store_true")
    parser.add_argument("--edits", type=int, default=150, help="per file")
    parser.add_argument("--full-every", type=int, default=10,
                        help="time a full check every N edits (interleaved)")
    args = parser.parse_args(argv)
    root: Path = args.dir.resolve()
    if not (root / "magcfg.yaml").exists():
        print(f"generating {root} ({args.services} services x {args.keys} keys x "
              f"{args.envs} environments)", flush=True)
        generate(root, args.services, args.keys, args.envs, args.exhaustive_schema)
    service = sorted(p.name for p in (root / "layers" / "base").glob("*.yaml"))[0]
    envs = sorted(p.name for p in (root / "layers" / "environments").iterdir())
    files = [f"layers/base/{service}", f"layers/environments/{envs[-1]}/{service}"]
    latencies, full, cold = asyncio.run(measure(root, files, args.edits, args.full_every))
    size = sum(p.stat().st_size for p in (root / "layers").rglob("*.yaml"))
    print(f"repo: {root} ({size / 1e6:.1f} MB of YAML)")
    print(f"first diagnostics after opening (full check, cold): {cold * 1000:.0f} ms")
    everything: list[float] = []
    for rel, values in latencies.items():
        everything += values
        print(f"edit -> diagnostics, {rel}: p50 {percentile(values, 50) * 1000:.1f} ms, "
              f"p99 {percentile(values, 99) * 1000:.1f} ms ({len(values)} edits)")
    p50 = percentile(everything, 50)
    print(f"edit -> diagnostics, all: p50 {p50 * 1000:.1f} ms, "
          f"p99 {percentile(everything, 99) * 1000:.1f} ms")
    full_p50 = statistics.median(full)
    print(f"full check per keystroke instead (in process, interleaved): p50 "
          f"{full_p50 * 1000:.0f} ms; incremental is {full_p50 / p50:.0f}x faster")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
