"""`magcfg secrets verify` against a real OpenBao dev server (tests/vault_dev.py).

Every secret the tests write holds a canary; no output, and no file of the project, may
ever contain one. Each case seeds its own path prefix, so cases share the server."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import MAGCFG, failed_cleanly, tree_state
from ..ports import refusing_port
from ..vault_dev import DevVault
from ..vault_project import vault_project

CANARY = "CANARY-vault-5e1d"


def _canary() -> str:
    return f"{CANARY}-{secrets.token_hex(4)}"


def _no_canary(text: str, project_root: Path) -> None:
    assert CANARY not in text
    for path in project_root.rglob("*"):
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path


def _seed_all(vault: DevVault, prefix: str) -> None:
    kv = vault.client().secrets.kv.v2
    kv.create_or_update_secret(f"{prefix}magds", secret={"db_password": _canary()})
    kv.create_or_update_secret(f"{prefix}magds/replica", secret={"db_password": _canary()})
    kv.create_or_update_secret(f"{prefix}magws", secret={"app_secret": _canary()})


def test_every_reference_resolves(tmp_path: Path, dev_vault: DevVault) -> None:
    project, prefix = vault_project(tmp_path / "p")
    _seed_all(dev_vault, prefix)
    before = tree_state(project.root)
    done = project.run("secrets", "verify", "--env", "prod",
                       env=dev_vault.env(VAULT_TOKEN=dev_vault.root_token))
    assert done.returncode == 0, done.stderr
    assert done.stderr == (f"secrets verify: prod: all 3 Vault reference(s) resolve "
                           f"(3 secret(s) at {dev_vault.addr})\n")
    assert tree_state(project.root) == before  # compiled in memory: nothing written
    done = project.run("secrets", "verify", "--env", "prod", "--format", "json",
                       env=dev_vault.env(VAULT_TOKEN=dev_vault.root_token))
    assert done.returncode == 0
    assert json.loads(done.stdout) == {"format": 1, "command": "secrets verify",
                                       "environment": "prod", "vault": dev_vault.addr, "ok": True,
                                       "references": 3, "secrets": 3, "unresolved": [],
                                       "skipped": []}
    _no_canary(done.stdout + done.stderr, project.root)


def test_each_unresolved_reference_is_located(tmp_path: Path, dev_vault: DevVault) -> None:
    project, prefix = vault_project(tmp_path / "p")
    kv = dev_vault.client().secrets.kv.v2
    # magds: the current version is deleted (version 1 still holds the key);
    # magds/replica: destroyed; magws: holds another key only.
    kv.create_or_update_secret(f"{prefix}magds", secret={"db_password": _canary()})
    kv.create_or_update_secret(f"{prefix}magds", secret={"db_password": _canary()})
    kv.delete_latest_version_of_secret(f"{prefix}magds")
    kv.create_or_update_secret(f"{prefix}magds/replica", secret={"db_password": _canary()})
    kv.destroy_secret_versions(f"{prefix}magds/replica", versions=[1])
    kv.create_or_update_secret(f"{prefix}magws", secret={"other": _canary()})
    before = tree_state(project.root)
    done = project.run("secrets", "verify", "--env", "prod",
                       env=dev_vault.env(VAULT_TOKEN=dev_vault.root_token))
    err = failed_cleanly(done, 1)
    assert err.splitlines() == [
        f"layers/secrets/prod/magds.yaml:2: error: vault://secret/{prefix}magds#db_password: "
        f"the current version (2) of secret/{prefix}magds is deleted [magds.password]",
        f"layers/secrets/prod/magds.yaml:3: error: vault://secret/{prefix}magds/replica#db_password: "
        f"the current version (1) of secret/{prefix}magds/replica is destroyed "
        "[magds.replica_password]",
        f"layers/secrets/prod/magws.yaml:2: error: vault://secret/{prefix}magws#app_secret: "
        f"the key 'app_secret' is not in the current version (1) of secret/{prefix}magws "
        "[magws.app_secret]",
        f"secrets verify: prod: 3 of 3 Vault reference(s) do not resolve at {dev_vault.addr}",
    ]
    done = project.run("secrets", "verify", "--env", "prod", "-f", "json",
                       env=dev_vault.env(VAULT_TOKEN=dev_vault.root_token))
    failed_cleanly(done, 1)
    report = json.loads(done.stdout)
    assert [(u["key"], u["problem"], u["file"], u["line"]) for u in report["unresolved"]] == [
        ("magds.password", "deleted", "layers/secrets/prod/magds.yaml", 2),
        ("magds.replica_password", "destroyed", "layers/secrets/prod/magds.yaml", 3),
        ("magws.app_secret", "missing-key", "layers/secrets/prod/magws.yaml", 2),
    ]
    assert tree_state(project.root) == before
    _no_canary(done.stdout + done.stderr + err, project.root)


def test_missing_path(tmp_path: Path, dev_vault: DevVault) -> None:
    project, prefix = vault_project(tmp_path / "p")
    _seed_all(dev_vault, prefix)
    dev_vault.client().secrets.kv.v2.delete_metadata_and_all_versions(f"{prefix}magws")
    done = project.run("secrets", "verify", "--env", "prod",
                       env=dev_vault.env(VAULT_TOKEN=dev_vault.root_token))
    assert failed_cleanly(done, 1).splitlines()[0] == (
        f"layers/secrets/prod/magws.yaml:2: error: vault://secret/{prefix}magws#app_secret: no "
        f"secret at secret/{prefix}magws (KV v2 path secret/data/{prefix}magws) [magws.app_secret]")


def test_denied_path_is_reported_per_reference(tmp_path: Path, dev_vault: DevVault) -> None:
    project, prefix = vault_project(tmp_path / "p")
    _seed_all(dev_vault, prefix)
    name = f"only-magds-{secrets.token_hex(3)}"
    dev_vault.client().sys.create_or_update_policy(name, (
        f'path "secret/data/{prefix}magds" {{ capabilities = ["read"] }}\n'
        f'path "secret/data/{prefix}magds/*" {{ capabilities = ["read"] }}\n'))
    token = dev_vault.token_with_policies(name)
    done = project.run("secrets", "verify", "--env", "prod", env=dev_vault.env(VAULT_TOKEN=token))
    assert failed_cleanly(done, 1).splitlines() == [
        f"layers/secrets/prod/magws.yaml:2: error: vault://secret/{prefix}magws#app_secret: "
        f"permission denied reading secret/data/{prefix}magws: the token's policies do not grant "
        "read there [magws.app_secret]",
        f"secrets verify: prod: 1 of 3 Vault reference(s) do not resolve at {dev_vault.addr}",
    ]


def test_bao_variables_are_read(tmp_path: Path, dev_vault: DevVault) -> None:
    project, prefix = vault_project(tmp_path / "p")
    _seed_all(dev_vault, prefix)
    env = dev_vault.env(BAO_TOKEN=dev_vault.root_token)
    env["BAO_ADDR"] = env.pop("VAULT_ADDR")
    done = project.run("secrets", "verify", "--env", "prod", env=env)
    assert done.returncode == 0, done.stderr


def test_approle_login(tmp_path: Path, dev_vault: DevVault) -> None:
    project, prefix = vault_project(tmp_path / "p")
    _seed_all(dev_vault, prefix)
    root = dev_vault.client()
    if "approle/" not in root.sys.list_auth_methods()["data"]:
        root.sys.enable_auth_method("approle")
    policy = f"verify-{secrets.token_hex(3)}"
    root.sys.create_or_update_policy(policy, f'path "secret/data/{prefix}*" {{ capabilities = ["read"] }}')
    root.auth.approle.create_or_update_approle(policy, token_policies=[policy], token_ttl="5m")
    role_id = root.auth.approle.read_role_id(policy)["data"]["role_id"]
    secret_id = root.auth.approle.generate_secret_id(policy)["data"]["secret_id"]
    done = project.run("secrets", "verify", "--env", "prod",
                       env=dev_vault.env(VAULT_ROLE_ID=role_id, VAULT_SECRET_ID=secret_id))
    assert done.returncode == 0, done.stderr
    done = project.run("secrets", "verify", "--env", "prod",
                       env=dev_vault.env(VAULT_ROLE_ID=role_id, VAULT_SECRET_ID=_canary()))
    err = failed_cleanly(done, 1)
    assert err == (f"error: Vault at {dev_vault.addr} refused the AppRole login (VAULT_ROLE_ID / "
                   "VAULT_SECRET_ID wrong, or the secret ID expired): HTTP 400 on "
                   "auth/approle/login\n")
    assert secret_id not in err and CANARY not in err


def test_wrong_token(tmp_path: Path, dev_vault: DevVault) -> None:
    project, _ = vault_project(tmp_path / "p")
    before = tree_state(project.root)
    token = _canary()
    done = project.run("secrets", "verify", "--env", "prod", env=dev_vault.env(VAULT_TOKEN=token))
    assert failed_cleanly(done, 1) == (f"error: Vault at {dev_vault.addr} refused the token "
                                       "(VAULT_TOKEN): it is wrong, expired or revoked\n")
    assert token not in done.stdout + done.stderr
    assert tree_state(project.root) == before


def test_unreachable_server(tmp_path: Path) -> None:
    project, _ = vault_project(tmp_path / "p")
    with refusing_port() as port:
        addr = f"http://127.0.0.1:{port}"
        done = project.run("secrets", "verify", "--env", "prod",
                           env={"VAULT_ADDR": addr, "VAULT_TOKEN": "t"})
    assert failed_cleanly(done, 1) == (f"error: cannot reach Vault at {addr}: connection refused "
                                       "or no route (check VAULT_ADDR)\n")


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP server that accepts connections and never answers: a hung Vault."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                held.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_hanging_server_times_out(tmp_path: Path, silent_server: str) -> None:
    project, _ = vault_project(tmp_path / "p")
    done = project.run("secrets", "verify", "--env", "prod",
                       env={"VAULT_ADDR": silent_server, "VAULT_TOKEN": "t",
                            "VAULT_CLIENT_TIMEOUT": "1"})
    assert failed_cleanly(done, 1) == (f"error: Vault at {silent_server} did not answer "
                                       "auth/token/lookup-self within 1 s (VAULT_CLIENT_TIMEOUT)\n")


def test_tls_error(tmp_path: Path, dev_vault: DevVault) -> None:
    project, _ = vault_project(tmp_path / "p")
    addr = dev_vault.addr.replace("http://", "https://")  # the dev server speaks plain HTTP
    done = project.run("secrets", "verify", "--env", "prod",
                       env={"VAULT_ADDR": addr, "VAULT_TOKEN": dev_vault.root_token})
    err = failed_cleanly(done, 1)
    assert err == (f"error: TLS error talking to Vault at {addr}: wrong version number (set "
                   "VAULT_CACERT to the CA that signed the server's certificate)\n")
    assert dev_vault.root_token not in err


@pytest.mark.parametrize(("env", "message"), [
    ({}, "error: no Vault address: set VAULT_ADDR (or BAO_ADDR), e.g. https://vault.example:8200"),
    ({"VAULT_ADDR": "vault:8200"}, "error: VAULT_ADDR must be an http:// or https:// URL such as "
     "https://vault.example:8200"),
    ({"VAULT_ADDR": "http://v:1"}, "error: no Vault credentials: set VAULT_TOKEN, or VAULT_ROLE_ID "
     "and VAULT_SECRET_ID (AppRole), or VAULT_K8S_ROLE (Kubernetes auth)"),
    ({"VAULT_ADDR": "http://v:1", "VAULT_TOKEN": "t", "VAULT_CLIENT_TIMEOUT": "forever"},
     "error: VAULT_CLIENT_TIMEOUT is a number of seconds above 0 and at most 300"),
    ({"VAULT_ADDR": "http://v:1", "VAULT_ROLE_ID": "r"},
     "error: AppRole auth needs both VAULT_ROLE_ID and VAULT_SECRET_ID"),
    ({"VAULT_ADDR": "http://v:1", "VAULT_AUTH_METHOD": "ldap"},
     "error: VAULT_AUTH_METHOD must be one of token, approle, kubernetes"),
])
def test_usage_errors(tmp_path: Path, env: dict[str, str], message: str) -> None:
    project, _ = vault_project(tmp_path / "p")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    done = subprocess.run([str(MAGCFG), "secrets", "verify", "--env", "prod"], cwd=project.root,
                          capture_output=True, text=True, env=clean | env, timeout=120)
    assert failed_cleanly(done, 2) == message + "\n"


def test_environment_without_vault_references_needs_no_server(tmp_path: Path) -> None:
    project, _ = vault_project(tmp_path / "p")
    done = project.run("secrets", "verify", "--env", "dev")
    assert done.returncode == 0
    assert done.stderr == "secrets verify: dev: no Vault references to check\n"


def test_unknown_environment_and_format(tmp_path: Path) -> None:
    project, _ = vault_project(tmp_path / "p")
    assert "unknown environment" in failed_cleanly(
        project.run("secrets", "verify", "--env", "qa"), 2)
    assert failed_cleanly(project.run("secrets", "verify", "--env", "prod", "-f", "xml"), 2) == (
        "error: unknown format 'xml' (text or json)\n")


def test_the_project_file_s_vault_gets_no_credentials(tmp_path: Path,
                                                     dev_vault: DevVault) -> None:
    """A pull request writes the project file: where it names the environment's Vault
    and ``VAULT_ADDR`` is unset, the token was sent there (a server of the pull
    request's choosing, in CI or on a reviewer's machine). The address is named, and
    nothing is sent; ``VAULT_ADDR`` says where to verify."""
    import http.server

    heard: list[str] = []

    class Recording(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            heard.append(self.headers.get("X-Vault-Token") or "")
            self.send_response(403)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        do_POST = do_GET

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recording)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    planted = f"http://127.0.0.1:{server.server_address[1]}"
    project, prefix = vault_project(tmp_path / "p")
    text = (project.root / "magcfg.yaml").read_text()
    project.write("magcfg.yaml", text.replace(
        "    path_prefixes:", f"    addresses: {{prod: \"{planted}\"}}\n    path_prefixes:"))
    _seed_all(dev_vault, prefix)
    env = dev_vault.env(VAULT_TOKEN=_canary())
    del env["VAULT_ADDR"]
    try:
        done = project.run("secrets", "verify", "--env", "prod", env=env)
    finally:
        server.shutdown()
        server.server_close()
    assert failed_cleanly(done, 2) == (
        f"error: no Vault address: set VAULT_ADDR (or BAO_ADDR); the project file names "
        f"{planted} for this environment, but the credentials go only to the server the "
        "environment names (a pull request writes the project file)\n")
    assert heard == []
    done = project.run("secrets", "verify", "--env", "prod",
                       env=dev_vault.env(VAULT_TOKEN=dev_vault.root_token))
    assert done.returncode == 0, done.stderr


def test_ci_step_is_guarded_by_vault_addr() -> None:
    import yaml

    from ..conftest import REPO

    steps = {s["name"]: s for s in yaml.safe_load((REPO / ".woodpecker.yml").read_text())["steps"]}
    step = steps["secrets-verify"]
    assert [w["evaluate"] for w in step["when"]] == ['VAULT_ADDR != ""']
    assert step["commands"][-1] == ".venv/bin/magcfg secrets verify --env production"
    assert "secrets-verify" not in steps["sign"]["depends_on"]  # a skipped step must not block signing
    # The shell guard (Woodpecker's "$$" unescaped) exits 0 without a Vault address.
    guard = step["commands"][1].replace("$$", "$")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    done = subprocess.run(["sh", "-c", guard + "; exit 7"], capture_output=True, text=True, env=clean)
    assert (done.returncode, done.stdout) == (0, "VAULT_ADDR not set: skipping secrets verify\n")
    done = subprocess.run(["sh", "-c", guard + "; exit 7"], env=clean | {"VAULT_ADDR": "http://v"})
    assert done.returncode == 7


def test_a_login_in_the_address_is_shown_redacted(tmp_path: Path, dev_vault: DevVault) -> None:
    """``VAULT_ADDR=https://USER:PASSWORD@HOST`` (a Vault behind a proxy's basic auth,
    which requests sends from the URL) is named without its login in every message and
    report: the password went whole into CI's log with the address."""
    project, prefix = vault_project(tmp_path / "p")
    _seed_all(dev_vault, prefix)
    password = _canary()
    scheme, _, host = dev_vault.addr.partition("://")
    addr, shown = f"{scheme}://ci:{password}@{host}", f"{scheme}://<redacted>@{host}"
    done = project.run("secrets", "verify", "--env", "prod",
                       env=dev_vault.env(VAULT_ADDR=addr, VAULT_TOKEN=dev_vault.root_token))
    assert (done.returncode, done.stderr) == (0, "secrets verify: prod: all 3 Vault "
                                              f"reference(s) resolve (3 secret(s) at {shown})\n")
    done = project.run("secrets", "verify", "--env", "prod", "--format", "json",
                       env=dev_vault.env(VAULT_ADDR=addr, VAULT_TOKEN=dev_vault.root_token))
    assert json.loads(done.stdout)["vault"] == shown
    done = project.run("secrets", "verify", "--env", "prod",
                       env=dev_vault.env(VAULT_ADDR=addr, VAULT_TOKEN=_canary()))
    assert failed_cleanly(done, 1) == (f"error: Vault at {shown} refused the token "
                                       "(VAULT_TOKEN): it is wrong, expired or revoked\n")
    with refusing_port() as port:
        done = project.run("secrets", "verify", "--env", "prod",
                           env={"VAULT_ADDR": f"http://ci:{password}@127.0.0.1:{port}",
                                "VAULT_TOKEN": "t"})
    assert failed_cleanly(done, 1) == (f"error: cannot reach Vault at http://<redacted>@127.0.0"
                                       f".1:{port}: connection refused or no route (check "
                                       "VAULT_ADDR)\n")
    _no_canary(done.stdout + done.stderr, project.root)
