"""A real OCI registry on 127.0.0.1 (go-containerregistry's, pinned in scripts/tools.sh),
started for the session and stopped at its end; tests use a repository of their own."""

from __future__ import annotations

import itertools
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.delivery.tools import tool

_PORT = re.compile(rb"serving on port (\d+)")
_names = itertools.count()


class LocalRegistry:
    """``crane registry serve`` bound to 127.0.0.1 (in memory, or on ``disk`` so that it
    can be stopped and started again with the same content and port)."""

    def __init__(self, disk: Path | None = None) -> None:
        self.disk = disk
        self.port: int | None = None
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> LocalRegistry:
        address = f"127.0.0.1:{self.port or 0}"
        args = [tool("crane"), "registry", "serve", "--address", address]
        if self.disk is not None:
            args += ["--disk", str(self.disk)]
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        found = _PORT.search(line)
        assert found, line
        self.port = int(found.group(1))
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
            self.process = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def repository(self, stem: str = "magcfg") -> str:
        """A fresh ``HOST/REPO`` for one test."""
        return f"{self.host}/{stem}-{next(_names)}"


@pytest.fixture(scope="session")
def registry() -> Iterator[LocalRegistry]:
    served = LocalRegistry().start()
    try:
        yield served
    finally:
        served.stop()


def crane(*args: str) -> str:
    done = subprocess.run([tool("crane"), *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def wait_for(predicate: object, timeout: float = 30.0) -> None:
    """Poll ``predicate`` until true (the deadline is a safety net, never the assertion)."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)
