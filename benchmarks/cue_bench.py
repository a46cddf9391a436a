"""Cost of magcfg's CUE step (cue vet of the merged environments, cue eval of .cue
layers) on the bundled MagFlock repo and on the large synthetic repo.

    python benchmarks/cue_bench.py [--large DIR] [--repeat N]

Prints, for each repo: the CUE step as magcfg runs it (one process for all
environments), against the alternatives it replaces (one process per environment,
sequential and in parallel), the cached path (no process), and the whole build with
and without the CUE schema. ``--large DIR`` generates the synthetic repo there (via
synth.py) unless it already exists, and gives it a CUE schema mirroring its JSON Schema.
Needs ``cue`` on PATH (./scripts/dev setup) and the package importable.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import magcfg
from magcfg.cue.binary import CueBinary, find_cue
from magcfg.cue.layers import EVALUATE, export
from magcfg.cue.schema import CueSchema, vet
from magcfg.pipeline.cache import BuildCache

REPO = Path(__file__).resolve().parents[1]

# The synthetic repo's schema in CUE: the same types as its JSON Schema (key_NNN's kind
# is NNN % 5: int, str, bool, float, list), closed: the cost of vetting every value.
SYNTH_CUE = r"""package synth

#Config: [=~"^svc_[0-9]+$"]: #Service

#Service: {
	logging: level: "debug" | "info" | "warn" | "error"
	credentials?: {
		password?: =~"^(vault|env)://"
		token?:    =~"^(vault|env)://"
	}
	[=~"^section_[0-9]+$"]: #Section
}

#Section: {
	[=~"^key_[0-9][0-9][05]$"]: int & >=0 & <=1000000
	[=~"^key_[0-9][0-9][16]$"]: string & !=""
	[=~"^key_[0-9][0-9][27]$"]: bool
	[=~"^key_[0-9][0-9][38]$"]: number
	[=~"^key_[0-9][0-9][49]$"]: [...string]
}
"""


def _time(fn: Callable[[], object], repeat: int) -> float:
    """Best wall time in ms (the least disturbed by other load on the machine)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return min(times)


def _vet_each(cue: CueBinary, schema: CueSchema, configs: dict[str, bytes]) -> None:
    for env, config in configs.items():
        vet(cue, schema, {env: config})


def _vet_parallel(cue: CueBinary, schema: CueSchema, configs: dict[str, bytes]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(configs)) as pool:
        list(pool.map(lambda item: vet(cue, schema, {item[0]: item[1]}), configs.items()))


def _configs(root: Path) -> dict[str, bytes]:
    project = magcfg.load_project(root / "magcfg.yaml")
    plain = _without_cue(project)
    result = magcfg.build(plain, check=True, cache=BuildCache(None))
    return {env: a.files["config.json"] for env, a in result.artifacts.items()}


def _without_cue(project: magcfg.Project) -> magcfg.Project:
    from dataclasses import replace

    settings = dict(project.settings)
    settings["schema"] = {k: v for k, v in settings["schema"].items() if not k.startswith("cue")}
    return replace(project, cue_schema=None, settings=settings)


def bench_repo(label: str, root: Path, repeat: int) -> None:
    project = magcfg.load_project(root / "magcfg.yaml")
    assert project.cue_schema, f"{root}: the project names no CUE schema"
    raw = (root / project.cue_schema).read_bytes()
    import hashlib

    schema = CueSchema(project.cue_schema, "#Config", raw, hashlib.sha256(raw).hexdigest())
    cue = find_cue(project.cue_schema, root, None)
    configs = _configs(root)
    size = sum(len(c) for c in configs.values())
    print(f"\n== {label}: {len(configs)} environments, {size / 1e6:.2f} MB of merged JSON, "
          f"cue {cue.version}")
    one = _time(lambda: vet(cue, schema, configs), repeat)
    each = _time(lambda: _vet_each(cue, schema, configs), repeat)
    par = _time(lambda: _vet_parallel(cue, schema, configs), repeat)
    startup = _time(lambda: subprocess.run([cue.path, "version"], capture_output=True, check=True),
                    max(repeat, 5))
    print(f"cue start-up (cue version)               {startup:9.1f} ms")
    print(f"cue vet, one process for all envs        {one:9.1f} ms   (magcfg, up to 8 MB)")
    print(f"cue vet, one process per env, sequential {each:9.1f} ms   ({each / one:.2f}x; "
          "magcfg above 8 MB)")
    print(f"cue vet, one process per env, parallel   {par:9.1f} ms   ({par / one:.2f}x)")

    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        cold_cue = _time(lambda: _build_cold(project, Path(tmp)), repeat)
        cold_plain = _time(lambda: _build_cold(_without_cue(project), Path(tmp)), repeat)
        magcfg.build(project, check=True, cache=_cache(cache))
        warm_cue = _time(lambda: magcfg.build(project, check=True, cache=_cache(cache)), repeat)
        magcfg.build(_without_cue(project), check=True, cache=_cache(cache))
        warm_plain = _time(lambda: magcfg.build(_without_cue(project), check=True,
                                                cache=_cache(cache)), repeat)
        step = _cue_step_ms(project, cache)
    print(f"build --check, no cache: JSON Schema only {cold_plain:9.1f} ms; "
          f"+ CUE {cold_cue:9.1f} ms  (CUE step +{cold_cue - cold_plain:.1f} ms)")
    print(f"build --check, warm cache: JSON Schema only {warm_plain:7.1f} ms; "
          f"+ CUE {warm_cue:9.1f} ms")
    print(f"CUE step alone, warm cache (verdicts cached, no process) {step:6.2f} ms")


def _cue_step_ms(project: magcfg.Project, cache: Path) -> float:
    """Time spent in the CUE build check during a warm build (best of 5)."""
    import magcfg.cue.schema as module

    real = module.check_environments
    spent: list[float] = []

    def timed(compiler: Any, contexts: Any) -> Any:
        start = time.perf_counter()
        try:
            return real(compiler, contexts)
        finally:
            spent.append((time.perf_counter() - start) * 1000)

    module.check_environments = timed
    try:
        for _ in range(5):
            magcfg.build(project, check=True, cache=_cache(cache))
    finally:
        module.check_environments = real
    return min(spent)


def _cache(directory: Path) -> BuildCache:
    """A build cache in ``directory`` with its key next to it (not in the user's home)."""
    return BuildCache(directory, directory.with_name("cache.key"))


def _build_cold(project: magcfg.Project, tmp: Path) -> None:
    magcfg.build(project, check=True, cache=BuildCache(None))


def bench_layers(root: Path, repeat: int) -> None:
    """The bundled environment layers rewritten as .cue files (JSON is valid CUE)."""
    files: dict[str, bytes] = {}
    from magcfg.syntax.strict_yaml import parse_layer

    for path in sorted((root / "layers").rglob("*.yaml")):
        data, _ = parse_layer(str(path), path.read_bytes())
        files[str(path.relative_to(root).with_suffix(".cue"))] = json.dumps(data).encode()
    cue = find_cue("x.cue", root, None)
    batched = _time(lambda: export(cue, files), repeat)
    each = _time(lambda: [export(cue, {p: b}) for p, b in files.items()], repeat)
    # Named as the build runs it (layers.EVALUATE), which export() times.
    command = f"cue {' '.join(EVALUATE[:3])}"
    print(f"\n== .cue layers: the bundled repo's {len(files)} layer files as .cue")
    print(f"{command}, one process for all files  {batched:9.1f} ms   (magcfg)")
    print(f"{command}, one process per file       {each:9.1f} ms   ({each / batched:.2f}x)")


def prepare_large(out: Path) -> Path:
    if not (out / "magcfg.yaml").exists():
        subprocess.run([sys.executable, str(REPO / "benchmarks/synth.py"), str(out)], check=True)
    (out / "schemas" / "platform.cue").write_text(SYNTH_CUE)
    text = (out / "magcfg.yaml").read_text()
    if "cue:" not in text:
        text = text.replace("schema:\n  json: schemas/platform.schema.json\n",
                            "schema:\n  json: schemas/platform.schema.json\n"
                            "  cue: schemas/platform.cue\n")
        (out / "magcfg.yaml").write_text(text)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", type=Path, help="synthetic repo directory (generated if absent)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    if shutil.which("cue") is None:
        print("cue is not on PATH: run ./scripts/dev setup and add .tools/bin to PATH",
              file=sys.stderr)
        return 2
    bench_repo("bundled MagFlock repo", REPO, args.repeat)
    bench_layers(REPO, args.repeat)
    if args.large:
        bench_repo("large synthetic repo", prepare_large(args.large), max(1, args.repeat // 2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
