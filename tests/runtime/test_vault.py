"""Direct-Vault at run time (magcfg.runtime.vault) against a real OpenBao dev server: token
and AppRole auth, KV rotation, leases of dynamic database credentials (a real
PostgreSQL) renewed and revoked, and every failure a clear, bounded, value-free error.
Canary values seeded in the server must never appear in an event, a log line, an error or
a file."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from magcfg.runtime import Kernel
from magcfg.runtime import vault as direct_vault_module
from magcfg.runtime.vault import (
    SECRET_FAILED,
    SECRET_RENEWED,
    SECRET_ROTATED,
    DirectVault,
)
from magcfg.secrets.references import SecretRef, parse_reference
from magcfg.secrets.vault import (
    VaultDenied,
    VaultError,
    VaultTokenRefused,
    VaultUsageError,
    vault_config,
)
from magcfg.signing.keys import Ed25519PrivateKey

from ..ports import refusing_port
from ..vault_dev import DevPostgres, DevVault, database_engine, kubernetes_auth
from .fixtures import artifact_files, base_config, rename_write, wait_for

CANARY = "CANARY-direct-vault-3e9b77"


def ref(text: str) -> SecretRef:
    found = parse_reference(text)
    assert found is not None
    return found


def unique(name: str) -> str:
    return f"{name}-{secrets.token_hex(4)}"


class Recorder:
    """Collects DirectVault events (type, data) from any thread."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        with self.lock:
            self.events.append((kind, dict(data)))

    def of(self, kind: str) -> list[dict[str, Any]]:
        with self.lock:
            return [d for k, d in self.events if k == kind]

    def text(self) -> str:
        with self.lock:
            return json.dumps(self.events)


def files_text(root: Path) -> str:
    return "".join(p.read_bytes().decode(errors="replace")
                   for p in root.rglob("*") if p.is_file())


@pytest.fixture
def kv(dev_vault: DevVault) -> Iterator[tuple[str, str]]:
    """A fresh KV v2 secret (path, reader token) holding canary values, and a token
    whose policy reads it and nothing else."""
    path = unique("k3s/magbackup")
    root = dev_vault.client()
    root.secrets.kv.v2.create_or_update_secret(
        path, secret={"api_key": CANARY + "-v1", "region": "eu-west-1"}, mount_point="secret")
    policy = unique("read")
    root.sys.create_or_update_policy(policy, f'path "secret/data/{path}" {{ capabilities = ["read"] }}')
    yield path, dev_vault.token_with_policies(policy)


def direct(dev_vault: DevVault, token: str, **kw: Any) -> DirectVault:
    config = vault_config({"VAULT_ADDR": dev_vault.addr, "VAULT_TOKEN": token,
                           "VAULT_CLIENT_TIMEOUT": "5"})
    return DirectVault(config, **kw)


# ---------------------------------------------------------------- reading and rotation


def test_token_auth_reads_kv_through_the_kernel_and_masks_the_value_everywhere(
        dev_vault: DevVault, kv: tuple[str, str], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    path, token = kv
    key = Ed25519PrivateKey.generate()
    config = base_config(1)
    config["magbackup"] = {"api_key": f"vault+direct://secret/{path}#api_key"}
    art = tmp_path / "artifact"
    rename_write(art, artifact_files(config, 1, key))
    events: list[dict[str, Any]] = []
    # Off by default: no client, no network, None as before.
    with Kernel(art, [key.public_key()], tmp_path / "state", environment="production",
                watch=False) as plain:
        assert plain.secret("magbackup.api_key") is None
    vault = direct(dev_vault, token)
    kernel = Kernel(art, [key.public_key()], tmp_path / "state", environment="production",
                    watch=False, audit_log=tmp_path / "audit.jsonl", direct_vault=vault)
    kernel.subscribe("*", events.append)
    with kernel:
        assert kernel.secret("magbackup.api_key") == CANARY + "-v1"

        def quotes_it(candidate: Any) -> None:
            raise ValueError(f"upstream refused key {kernel.secret('magbackup.api_key')}")

        kernel.validators.append(quotes_it)
        config2 = base_config(2)
        config2["magbackup"] = config["magbackup"]
        config2["logging"]["level"] = "debug"
        rename_write(art, artifact_files(config2, 2, key))
        result = kernel.reload()
        assert result.status == "refused" and result.event is not None
        assert result.event["data"]["error"].endswith("upstream refused key <redacted>")
        said = json.dumps(events) + caplog.text + json.dumps(kernel.status())
    assert CANARY not in said + files_text(tmp_path)
    assert "<redacted>" in said


def test_direct_vault_true_configures_the_client_from_the_environment(
        dev_vault: DevVault, kv: tuple[str, str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    path, token = kv
    key = Ed25519PrivateKey.generate()
    config = base_config(1)
    config["magbackup"] = {"region": f"vault+direct://secret/{path}#region"}
    rename_write(tmp_path / "artifact", artifact_files(config, 1, key))
    for name in [n for n in os.environ if n.startswith(("VAULT_", "BAO_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("BAO_ADDR", dev_vault.addr)
    (tmp_path / "token").write_text(token + "\n")
    monkeypatch.setenv("VAULT_TOKEN_FILE", str(tmp_path / "token"))
    with Kernel(tmp_path / "artifact", [key.public_key()], environment="production",
                watch=False, direct_vault=True) as kernel:
        assert kernel.secret("magbackup.region") == "eu-west-1"
    monkeypatch.delenv("VAULT_TOKEN_FILE")
    with pytest.raises(VaultUsageError, match="no Vault credentials"):
        Kernel(tmp_path / "artifact", [key.public_key()], environment="production",
               watch=False, direct_vault=True)


def test_approle_auth_from_files_reads_and_logs_in_again_after_revocation(
        dev_vault: DevVault, kv: tuple[str, str], tmp_path: Path) -> None:
    path, _ = kv
    root = dev_vault.client()
    if "approle/" not in root.sys.list_auth_methods()["data"]:
        root.sys.enable_auth_method("approle")
    policy = unique("approle-read")
    root.sys.create_or_update_policy(policy, f'path "secret/data/{path}" {{ capabilities = ["read"] }}')
    role = unique("magbackup")
    root.auth.approle.create_or_update_approle(role, token_policies=[policy], token_ttl="1m")
    role_id = root.auth.approle.read_role_id(role)["data"]["role_id"]
    secret_id = root.auth.approle.generate_secret_id(role)["data"]["secret_id"]
    (tmp_path / "role-id").write_text(role_id + "\n")
    (tmp_path / "secret-id").write_text(secret_id + "\n")
    config = vault_config({"VAULT_ADDR": dev_vault.addr,
                           "VAULT_ROLE_ID_FILE": str(tmp_path / "role-id"),
                           "VAULT_SECRET_ID_FILE": str(tmp_path / "secret-id")})
    assert config.auth == "approle"
    events = Recorder()
    with DirectVault(config, on_event=events, background=False) as vault:
        reference = ref(f"vault+direct://secret/{path}#api_key")
        assert vault.value(reference) == CANARY + "-v1"
        # The login token is revoked: the next read logs in again and succeeds.
        assert vault._session is not None and vault._session.client.token
        root.auth.token.revoke(vault._session.client.token)
        vault.refresh(reference)
        assert vault.value(reference) == CANARY + "-v1"
    assert CANARY not in events.text()


def test_the_approle_login_token_is_renewed_then_replaced_at_its_max_ttl(
        dev_vault: DevVault, kv: tuple[str, str]) -> None:
    path, _ = kv
    root = dev_vault.client()
    if "approle/" not in root.sys.list_auth_methods()["data"]:
        root.sys.enable_auth_method("approle")
    policy = unique("approle-read")
    root.sys.create_or_update_policy(policy, f'path "secret/data/{path}" {{ capabilities = ["read"] }}')
    role = unique("short")
    root.auth.approle.create_or_update_approle(role, token_policies=[policy], token_ttl="3s",
                                               token_max_ttl="6s")
    config = vault_config({
        "VAULT_ADDR": dev_vault.addr,
        "VAULT_ROLE_ID": root.auth.approle.read_role_id(role)["data"]["role_id"],
        "VAULT_SECRET_ID": root.auth.approle.generate_secret_id(role)["data"]["secret_id"]})
    events = Recorder()
    reference = ref(f"vault+direct://secret/{path}#api_key")
    with DirectVault(config, on_event=events, refresh_interval=3600).start() as vault:
        assert vault.value(reference) == CANARY + "-v1"
        assert vault._session is not None
        first = vault._session.client.token
        assert wait_for(lambda: {"reference": "auth/approle", "lease_duration": 3}
                        in events.of(SECRET_RENEWED), timeout=20)
        # Past its max TTL the token cannot be stretched: a new login replaces it.
        assert wait_for(lambda: vault._session is not None
                        and vault._session.client.token != first, timeout=20)
        assert vault.value(reference) == CANARY + "-v1"
    assert CANARY not in events.text()


def test_kv_rotation_is_picked_up_on_the_interval_and_on_demand(
        dev_vault: DevVault, kv: tuple[str, str]) -> None:
    path, token = kv
    root = dev_vault.client()
    events = Recorder()
    reference = ref(f"vault+direct://secret/{path}#api_key")
    with direct(dev_vault, token, refresh_interval=0.5, on_event=events).start() as vault:
        assert vault.value(reference) == CANARY + "-v1"
        root.secrets.kv.v2.create_or_update_secret(
            path, secret={"api_key": CANARY + "-v2", "region": "eu-west-1"}, mount_point="secret")
        # The background refresh reads version 2 and says so (without the value).
        assert wait_for(lambda: vault.value(reference) == CANARY + "-v2", timeout=15)
        assert wait_for(lambda: events.of(SECRET_ROTATED) != [], timeout=5)
        rotated = events.of(SECRET_ROTATED)[0]
        assert rotated == {"reference": f"vault+direct://secret/{path}", "version": 2,
                           "reason": rotated["reason"]}
    # On demand, with no interval in sight.
    with direct(dev_vault, token, refresh_interval=3600, background=False) as vault:
        assert vault.value(reference) == CANARY + "-v2"
        root.secrets.kv.v2.create_or_update_secret(
            path, secret={"api_key": CANARY + "-v3", "region": "eu-west-1"}, mount_point="secret")
        assert vault.value(reference) == CANARY + "-v2"  # cached in memory
        vault.refresh()
        assert vault.value(reference) == CANARY + "-v3"
        assert {CANARY + "-v2", CANARY + "-v3"} <= vault.values()
    assert CANARY not in events.text()


# ---------------------------------------------------------------- leases (dynamic secrets)


SPEED = 10
"""How many times faster than real time Direct-Vault's clock runs in the lease tests."""


@pytest.fixture
def fast_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Direct-Vault's clock runs SPEED times real time; the server's does not. A lease of
    60 s is due for renewal after 4 real seconds and stays valid on the server for a
    minute, so that a renewal a loaded machine runs late still reaches a live lease."""
    started = time.monotonic()
    clock = SimpleNamespace(monotonic=lambda: started + (time.monotonic() - started) * SPEED)
    monkeypatch.setattr(direct_vault_module, "time", clock)


@pytest.fixture
def database(dev_vault: DevVault, dev_postgres: DevPostgres,
             fast_clock: None) -> Iterator[tuple[str, str]]:
    """The database engine on a real PostgreSQL: a role with 60 s leases (max 10 min),
    6 s of Direct-Vault's clock (:func:`fast_clock`), and a token whose policy reads its
    credentials and renews leases."""
    root = dev_vault.client()
    database_engine(root, dev_postgres)
    role = unique("magbackup")
    root.write(f"database/roles/{role}", db_name="pg", default_ttl="60s", max_ttl="10m",
               creation_statements=["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD "
                                    "'{{password}}' VALID UNTIL '{{expiration}}';"])
    policy = unique("db")
    root.sys.create_or_update_policy(policy, f'path "database/creds/{role}" {{ capabilities = ["read"] }}\n'
                                     'path "sys/leases/renew" { capabilities = ["update"] }\n')
    # The token outlives the test on the fast clock: its renewal (which its policy does
    # not grant) is never due.
    yield role, dev_vault.token_with_policies(policy, ttl="2h")
    # Revoked while PostgreSQL still runs: else the server retries it at shutdown.
    root.sys.revoke_prefix(f"database/creds/{role}")


def test_dynamic_credentials_are_leased_renewed_and_read_again_after_revocation(
        dev_vault: DevVault, database: tuple[str, str], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    role, token = database
    root = dev_vault.client()
    events = Recorder()
    user_ref = ref(f"vault+direct://database/creds/{role}#username")
    password_ref = ref(f"vault+direct://database/creds/{role}#password")
    # The upkeep thread waits in real seconds: it wakes at least every half second.
    with direct(dev_vault, token, on_event=events, refresh_interval=0.5).start() as vault:
        user = vault.value(user_ref)
        password = vault.value(password_ref)  # the same lease: one read, one credential pair
        assert user.startswith("v-") and password
        entry = vault._cache["database", f"creds/{role}"]
        assert (entry.kv, entry.renewable, entry.lease_duration) == (False, True, 60)
        # Renewed in the background at two thirds of the lease; same credentials (the
        # entry renewed in place, none read again, however late this thread looks).
        assert wait_for(lambda: events.of(SECRET_RENEWED) != [], timeout=60)
        assert events.of(SECRET_RENEWED)[0] == {
            "reference": f"vault+direct://database/creds/{role}", "lease_duration": 60}
        assert vault._cache["database", f"creds/{role}"] is entry
        assert not events.of(SECRET_ROTATED) and not events.of(SECRET_FAILED)
        # The lease is revoked on the server (the credentials are dropped): the next
        # renewal fails, and new credentials are read.
        root.sys.revoke_lease(entry.lease_id)
        assert wait_for(lambda: events.of(SECRET_FAILED) != [], timeout=60)
        assert events.of(SECRET_FAILED)[0]["stage"] == "renew"
        assert "refused to renew the lease" in events.of(SECRET_FAILED)[0]["error"]
        assert wait_for(lambda: events.of(SECRET_ROTATED) != [], timeout=60)
        assert vault.value(user_ref) != user
        said = events.text() + caplog.text
    assert user not in said and password not in said


def test_a_leased_value_is_never_served_past_its_lease(
        dev_vault: DevVault, database: tuple[str, str]) -> None:
    role, token = database
    user_ref = ref(f"vault+direct://database/creds/{role}#username")
    # No background upkeep: only the lease's end sends value() to the server.
    with direct(dev_vault, token, background=False) as vault:
        user = vault.value(user_ref)
        assert vault.value(user_ref) == user
        time.sleep(60 / SPEED)  # the lease's 60 s on Direct-Vault's clock
        assert vault.value(user_ref) != user


# ---------------------------------------------------------------- failures


def test_a_revoked_token_is_a_clear_error_and_the_value_is_dropped(
        dev_vault: DevVault, kv: tuple[str, str]) -> None:
    path, token = kv
    events = Recorder()
    reference = ref(f"vault+direct://secret/{path}#api_key")
    with direct(dev_vault, token, on_event=events, background=False) as vault:
        assert vault.value(reference) == CANARY + "-v1"
        dev_vault.client().auth.token.revoke(token)
        with pytest.raises(VaultTokenRefused) as info:
            vault.refresh(reference)
        assert "refused the token" in info.value.format()
        assert events.of(SECRET_FAILED)[0]["stage"] == "refresh"
        with pytest.raises(VaultTokenRefused):  # not the old value
            vault.value(reference)
    assert CANARY not in events.text() + info.value.format()


def test_kernel_publishes_a_direct_vault_failure_as_an_event(
        dev_vault: DevVault, tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    config = base_config(1)
    config["magbackup"] = {"api_key": "vault+direct://secret/nowhere/magbackup#api_key"}
    rename_write(tmp_path / "artifact", artifact_files(config, 1, key))
    failed: list[dict[str, Any]] = []
    with Kernel(tmp_path / "artifact", [key.public_key()], environment="production",
                watch=False, audit_log=tmp_path / "audit.jsonl",
                direct_vault=direct(dev_vault, dev_vault.root_token)) as kernel:
        kernel.subscribe(SECRET_FAILED, failed.append)
        with pytest.raises(VaultError) as info:
            kernel.secret("magbackup.api_key")
    assert "no secret at secret/nowhere/magbackup" in info.value.format()
    assert [e["data"]["reference"] for e in failed] == ["vault+direct://secret/nowhere/magbackup"]
    assert failed[0]["type"] == "io.magflock.magcfg.config.secret_failed"
    assert failed[0]["data"]["stage"] == "read"
    assert "config.secret_failed" in (tmp_path / "audit.jsonl").read_text()


def test_kubernetes_auth_with_a_projected_token_reaches_the_server(
        dev_vault: DevVault, tmp_path: Path) -> None:
    root = dev_vault.client()
    kubernetes_auth(root, tmp_path)
    # The kubelet's layout: token -> ..data/token.
    (tmp_path / "sa" / "..data").mkdir(parents=True)
    (tmp_path / "sa" / "..data" / "token").write_text(
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQifQ.c2ln\n")
    (tmp_path / "sa" / "token").symlink_to("..data/token")
    events = Recorder()
    vault = DirectVault(environ={"VAULT_ADDR": dev_vault.addr, "VAULT_K8S_ROLE": "magbackup",
                                 "VAULT_K8S_TOKEN_PATH": str(tmp_path / "sa" / "token"),
                                 "VAULT_CLIENT_TIMEOUT": "20"}, on_event=events)
    # No Kubernetes API here to review the token: the server refuses the login, and says
    # so without the token.
    with vault, pytest.raises(VaultError) as info:
        vault.value(ref("vault+direct://secret/k3s/magbackup#api_key"))
    message = info.value.format()
    assert "refused the Kubernetes login (role 'magbackup'): HTTP " in message
    assert "eyJ" not in message + events.text()


def hanging_server() -> tuple[socket.socket, str]:
    """A socket that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    return server, f"http://127.0.0.1:{server.getsockname()[1]}"


@pytest.mark.parametrize("case", ["unreachable", "wrong-token", "denied", "hangs", "tls"])
def test_bad_input_is_a_clear_bounded_error_without_values(
        case: str, dev_vault: DevVault, kv: tuple[str, str],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    path, token = kv
    addr, timeout = dev_vault.addr, "2"
    reference = ref(f"vault+direct://secret/{path}#api_key")
    held = contextlib.ExitStack()  # what the case's address needs while it is asked
    if case == "unreachable":
        addr = f"http://127.0.0.1:{held.enter_context(refusing_port())}"
    elif case == "wrong-token":
        token = CANARY + "-not-a-token"
    elif case == "denied":
        reference = ref("vault+direct://secret/k3s/someone-else#api_key")
    elif case == "hangs":
        hang, addr = hanging_server()
        held.callback(hang.close)
    elif case == "tls":
        addr = addr.replace("http://", "https://")
    events = Recorder()
    config = vault_config({"VAULT_ADDR": addr, "VAULT_TOKEN": token, "VAULT_CLIENT_TIMEOUT": timeout})
    started = time.monotonic()
    with held, DirectVault(config, on_event=events, background=False) as vault, \
            pytest.raises(VaultError) as info:
        vault.value(reference)
    took = time.monotonic() - started
    message = info.value.format()
    expected = {
        "unreachable": f"cannot reach Vault at {addr}: connection refused or no route",
        "wrong-token": f"Vault at {addr} refused the token (VAULT_TOKEN): it is wrong, expired or revoked",
        "denied": "permission denied reading secret/data/k3s/someone-else: the token's "
                  "policies do not grant read there",
        "hangs": f"Vault at {addr} did not answer auth/token/lookup-self within 2 s (VAULT_CLIENT_TIMEOUT)",
        "tls": f"TLS error talking to Vault at {addr}: wrong version number",
    }[case]
    assert expected in message, message
    assert message.startswith(f"error: {reference.scheme}://{reference.mount}/{reference.path}: ")
    assert took < 10
    if case == "denied":
        assert isinstance(info.value, VaultDenied)
    assert events.of(SECRET_FAILED)[0]["error"] in message
    said = message + events.text() + caplog.text
    assert CANARY not in said


def test_configuration_errors_name_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(VaultUsageError) as info:
        DirectVault(environ={"VAULT_ADDR": "http://127.0.0.1:1"})
    assert "no Vault credentials" in info.value.format()
    with pytest.raises(VaultUsageError) as info:
        vault_config({"VAULT_ADDR": "http://127.0.0.1:1", "VAULT_ROLE_ID": "r",
                      "VAULT_SECRET_ID_FILE": str(tmp_path / "missing")})
    assert info.value.format() == (f"error: cannot read VAULT_SECRET_ID_FILE {tmp_path / 'missing'}: "
                                   "No such file or directory")


@pytest.mark.parametrize("seconds", [float("inf"), float("nan"), 0, -1.0])
def test_a_refresh_interval_that_is_not_a_finite_number_above_0_is_refused(
        seconds: float) -> None:
    """An infinite interval passes ``> 0``; the upkeep thread's first wait would then die
    of OverflowError, leaving values to expire with nobody refreshing them."""
    config = vault_config({"VAULT_ADDR": "http://127.0.0.1:1", "VAULT_TOKEN": "t"})
    with pytest.raises(ValueError) as info:
        DirectVault(config, refresh_interval=seconds)
    assert str(info.value) == ("the refresh interval is a finite number of seconds above 0, "
                               f"not {seconds!r}")


def test_without_hvac_the_error_says_which_extra_to_install() -> None:
    code = ("import sys; sys.modules['hvac'] = None\n"
            "from magcfg.runtime.vault import DirectVault\n"
            "from magcfg.secrets.references import parse_reference\n"
            "from magcfg.secrets.vault import VaultError\n"
            "vault = DirectVault(environ={'VAULT_ADDR': 'http://127.0.0.1:1', 'VAULT_TOKEN': 't'})\n"
            "try:\n"
            "    vault.value(parse_reference('vault+direct://secret/a#b'))\n"
            "except VaultError as exc:\n"
            "    print(exc.format())\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'magcfg[vault]'" in done.stdout


def test_importing_the_direct_vault_module_loads_no_http_stack() -> None:
    code = ("import sys, magcfg.runtime.vault\n"
            "print(sorted(m for m in ('hvac', 'requests', 'urllib3') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout == "[]\n"


class _Cancelled(BaseException):
    """Not an Exception, as asyncio's CancelledError: no handler for errors catches it."""


def test_an_event_callback_that_raises_what_is_not_an_exception_leaves_the_upkeep_running(
        dev_vault: DevVault, kv: tuple[str, str], caplog: pytest.LogCaptureFixture) -> None:
    path, token = kv
    root = dev_vault.client()
    versions: list[int] = []

    def cancelled(kind: str, data: dict[str, Any]) -> None:
        if kind == SECRET_ROTATED:
            versions.append(data["version"])
            raise _Cancelled

    reference = ref(f"vault+direct://secret/{path}#api_key")
    with direct(dev_vault, token, refresh_interval=0.3, on_event=cancelled).start() as vault:
        assert vault.value(reference) == CANARY + "-v1"
        for version in (2, 3):  # each rotation seen by the upkeep thread, not by value()
            root.secrets.kv.v2.create_or_update_secret(
                path, secret={"api_key": f"{CANARY}-v{version}", "region": "eu-west-1"},
                mount_point="secret")
            assert wait_for(lambda v=version: v in versions, timeout=15), versions
    assert "Direct-Vault event sink failed: _Cancelled" in caplog.text
    assert "upkeep stopped" not in caplog.text
