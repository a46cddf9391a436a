"""Packaging as a release builds it: the sdist and wheel (LICENSE, SPDX license, URLs,
classifiers, no test suite in the sdist, on purpose), and the slim runtime install: the
built wheel in a fresh venv with nothing but what it declares, running the kernel."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tarfile
import zipfile
from email.parser import HeaderParser
from pathlib import Path

import pytest

from .conftest import REPO, Project
from .ports import PortTaken, on_a_free_port


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sdist and wheel built by `python -m build` from a copy of the working tree."""
    base = tmp_path_factory.mktemp("packaging")
    source = base / "src"
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=REPO, check=True,
                            capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        if (REPO / rel).is_file() and not (REPO / rel).is_symlink():
            (source / rel).parent.mkdir(parents=True, exist_ok=True)
            (source / rel).write_bytes((REPO / rel).read_bytes())
    out = base / "dist"
    subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(source)],
                   check=True, capture_output=True, timeout=600)
    return out


def _metadata(text: str) -> dict[str, list[str]]:
    message = HeaderParser().parsestr(text)
    return {key: message.get_all(key) or [] for key in set(message.keys())}


def test_sdist_and_wheel_metadata(dist: Path) -> None:
    sdist = next(dist.glob("magcfg-*.tar.gz"))
    with tarfile.open(sdist) as tar:
        names = [n.split("/", 1)[1] for n in tar.getnames() if "/" in n]
        pkg_info = tar.extractfile(f"{sdist.name.removesuffix('.tar.gz')}/PKG-INFO")
        assert pkg_info is not None
        meta = _metadata(pkg_info.read().decode())
    assert "LICENSE" in names
    assert "compiler/magcfg/data/magcfg-project.schema.json" in names
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "layers/"))]
    assert meta["License-Expression"] == ["Apache-2.0"]
    assert meta["License-File"] == ["LICENSE"]
    assert "Homepage, https://github.com/magflock/magcfg" in meta["Project-URL"]
    assert "Typing :: Typed" in meta["Classifier"]
    assert meta["Requires-Dist"][0] == "cryptography>=42"
    assert all("extra ==" in r for r in meta["Requires-Dist"][1:]), meta["Requires-Dist"]
    # pytest reaches users only through the `test` extra (the snapshot plugin's); the
    # project's own development tools never do.
    assert not [r for r in meta["Requires-Dist"] if "mypy" in r or "hypothesis" in r
                or ("pytest" in r and 'extra == "test"' not in r)]
    wheel = next(dist.glob("magcfg-*.whl"))
    with zipfile.ZipFile(wheel) as zipped:
        assert "magcfg-0.1.0.dist-info/licenses/LICENSE" in zipped.namelist()
        assert "magcfg/py.typed" in zipped.namelist()


def _signed_and_installed(dist: Path, mini: Project, venv: Path, extras: str) -> Path:
    """``mini`` built and signed (keys/magcfg.*), and a fresh ``venv`` holding the built
    wheel with ``extras`` (``""`` or ``"[sidecar]"``) and nothing else."""
    assert mini.run("build").returncode == 0
    assert mini.run("keys", "generate", "--out", "keys").returncode == 0
    assert mini.run("sign", "--key", "keys/magcfg.key").returncode == 0
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    wheel = next(dist.glob("magcfg-*.whl"))
    subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "--quiet",
                    f"{wheel}{extras}"], check=True, timeout=600)
    return venv


def test_slim_runtime_install_runs_the_kernel(dist: Path, mini: Project, tmp_path: Path) -> None:
    """A service that embeds the kernel installs the wheel alone: cryptography comes
    with it, nothing of the compiler stack does, and the kernel verifies and serves a
    signed artifact."""
    venv = _signed_and_installed(dist, mini, tmp_path / "service-venv", "")
    python = str(venv / "bin/python")
    installed = {d["name"].lower() for d in json.loads(subprocess.run(
        [python, "-m", "pip", "list", "--format", "json"], check=True, capture_output=True,
        text=True).stdout)}
    assert installed - {"pip", "setuptools"} == {"magcfg", "cryptography", "cffi",
                                                 "pycparser"}
    script = f"""
import importlib.util, sys
from magcfg.runtime import Kernel
with Kernel({str(mini.root / "generated/dev")!r},
            public_keys=[{str(mini.root / "keys/magcfg.pub")!r}],
            state_dir={str(tmp_path / "state")!r}, environment="dev", watch=False) as kernel:
    print(kernel.get("magds.host"), kernel.get("magds.port"), kernel.version)
stack = ["typer", "yaml", "ruamel", "git", "deepdiff", "detect_secrets", "jsonschema", "orjson"]
print(sorted(m for m in stack if importlib.util.find_spec(m) is not None))
"""
    done = subprocess.run([python, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["localhost 5433 1", "[]"]
    cli = subprocess.run([str(venv / "bin/magcfg"), "build"], capture_output=True, text=True,
                         timeout=60)
    assert (cli.returncode, cli.stderr) == (1, "magcfg: the command line needs the compiler: "
                                               "pip install 'magcfg[compiler]' (this "
                                               "installation has the runtime kernel only)\n")


def test_the_sidecar_install_runs_magcfg_watch(dist: Path, mini: Project, tmp_path: Path) -> None:
    """`pip install 'magcfg[sidecar]'` (docs/delivery.md, "Running the sidecar"): the
    command line and metrics without the compiler stack; `magcfg watch` verifies the
    artifact, publishes it into --out, serves metrics and stops cleanly on SIGTERM."""
    venv = _signed_and_installed(dist, mini, tmp_path / "sidecar-venv", "[sidecar]")
    python = str(venv / "bin/python")
    stack = ["yaml", "ruamel", "git", "deepdiff", "detect_secrets", "jsonschema", "orjson"]
    found = subprocess.run([python, "-c", "import importlib.util as u; print([m for m in "
                            f"{stack!r} if u.find_spec(m)])"], capture_output=True, text=True,
                           check=True, timeout=60)
    assert found.stdout == "[]\n"
    # The compiler's commands say what they need, rather than fail on an import.
    build = subprocess.run([str(venv / "bin/magcfg"), "build"], cwd=mini.root,
                           capture_output=True, text=True, timeout=60)
    assert build.returncode == 2 and "Traceback" not in build.stderr, build.stderr
    assert build.stderr.startswith("magcfg: this command needs the compiler: pip install "
                                   "'magcfg[compiler]' (this installation lacks ")
    out = tmp_path / "out"

    def start(port: int) -> tuple[subprocess.Popen[str], str, int]:
        # The metrics server binds its port before the kernel starts: no first event
        # and an exit saying the port is taken start the sidecar again on another one.
        sidecar = subprocess.Popen(
            [str(venv / "bin/magcfg"), "watch", "--artifact", str(mini.root / "generated/dev"),
             "--env", "dev", "--public-key", str(mini.root / "keys/magcfg.pub"), "--out",
             str(out), "--metrics-port", str(port)], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        assert sidecar.stdout is not None
        line = sidecar.stdout.readline()
        if not line:
            _, err = sidecar.communicate(timeout=60)
            if "Address already in use" in err:
                raise PortTaken(err)
            pytest.fail(f"the sidecar exited {sidecar.returncode}: {err}")
        return sidecar, line, port

    sidecar, line, port = on_a_free_port(start)
    try:
        assert sidecar.stdout is not None
        first = json.loads(line)
        assert first["type"].endswith("config.loaded"), first
        published = json.loads(sidecar.stdout.readline())
        assert published["type"].endswith("config.published"), published
        served = json.loads((out / "config.json").read_text())
        assert served["magds"]["port"] == 5433
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as page:
            assert b"magcfg_config_last_reload_successful 1.0" in page.read()
    finally:
        sidecar.send_signal(signal.SIGTERM)
        _, err = sidecar.communicate(timeout=60)
    assert sidecar.returncode == 0, err

