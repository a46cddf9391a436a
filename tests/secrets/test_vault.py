"""The Vault client (magcfg.secrets.vault): settings from the environment, its light
import, and Kubernetes auth against a real OpenBao dev server."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from magcfg.errors import UsageError
from magcfg.secrets.vault import (
    VaultConfig,
    VaultError,
    VaultSession,
    VaultUsageError,
    vault_config,
)

from ..net.slow import Server, ends_within, serve
from ..runtime.test_vault_hostile import FakeVault
from ..vault_dev import DevVault, kubernetes_auth


def test_importing_the_client_and_the_runtime_loads_no_http_stack() -> None:
    code = ("import sys, magcfg.secrets.vault, magcfg.runtime\n"
            "print(sorted(m for m in ('hvac', 'requests', 'urllib3') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout == "[]\n"


def test_settings_from_the_environment() -> None:
    config = vault_config({"BAO_ADDR": "https://bao.example:8200/", "VAULT_TOKEN": "t",
                           "BAO_CLIENT_TIMEOUT": "2.5s", "VAULT_CACERT": "/ca.pem",
                           "VAULT_NAMESPACE": "team"})
    assert config == VaultConfig(addr="https://bao.example:8200", auth="token", token="t",
                                 namespace="team", verify="/ca.pem", timeout=2.5)
    assert "token=" not in repr(config)
    approle = vault_config({"VAULT_ADDR": "http://v:1", "VAULT_ROLE_ID": "r", "VAULT_SECRET_ID": "s",
                            "VAULT_SKIP_VERIFY": "true", "VAULT_APPROLE_MOUNT": "/ci-approle/"})
    assert (approle.auth, approle.approle_mount, approle.verify) == ("approle", "ci-approle", False)
    assert "secret_id" not in repr(approle) and "'s'" not in repr(approle)
    k8s = vault_config({"VAULT_ADDR": "http://v:1", "VAULT_K8S_ROLE": "magbackup"})
    assert (k8s.auth, k8s.k8s_mount, k8s.k8s_token_path) == (
        "kubernetes", "kubernetes", "/var/run/secrets/kubernetes.io/serviceaccount/token")
    # Project address when the environment names none; the environment wins.
    # The project file's address is a pull request's to write: named, never used.
    with pytest.raises(VaultUsageError, match="the project file names https://p:1 for"):
        vault_config({"VAULT_TOKEN": "t"}, "https://p:1")
    assert vault_config({"VAULT_TOKEN": "t", "VAULT_ADDR": "https://e:1"}, "https://p:1").addr == "https://e:1"
    with pytest.raises(UsageError):
        vault_config({"VAULT_ADDR": "http://v:1", "VAULT_TOKEN": "t", "VAULT_CLIENT_TIMEOUT": "0"})


def test_kubernetes_auth_token_file_missing(tmp_path: Path) -> None:
    config = vault_config({"VAULT_ADDR": "http://127.0.0.1:1", "VAULT_K8S_ROLE": "r",
                           "VAULT_K8S_TOKEN_PATH": str(tmp_path / "missing")})
    with pytest.raises(VaultError) as info:
        VaultSession(config).login()
    assert info.value.format() == (
        f"error: cannot read the Kubernetes service-account token {tmp_path / 'missing'}: "
        "No such file or directory (VAULT_K8S_TOKEN_PATH)")


def test_kubernetes_auth_reaches_the_servers_kubernetes_method(tmp_path: Path, dev_vault: DevVault) -> None:
    root = dev_vault.client()
    kubernetes_auth(root, tmp_path)
    jwt = tmp_path / "token"
    jwt.write_text("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQifQ.c2ln\n")
    config = vault_config({"VAULT_ADDR": dev_vault.addr, "VAULT_K8S_ROLE": "magbackup",
                           "VAULT_K8S_TOKEN_PATH": str(jwt), "VAULT_CLIENT_TIMEOUT": "20"})
    with pytest.raises(VaultError) as info:
        VaultSession(config).login()
    message = info.value.format()
    assert message.startswith(f"error: Vault at {dev_vault.addr} refused the Kubernetes login "
                              "(role 'magbackup'): HTTP ")
    assert message.endswith(" on auth/kubernetes/login")
    assert "eyJ" not in message


def test_the_servers_certificate_is_checked_against_vault_cacert(dev_vault_tls: DevVault) -> None:
    assert dev_vault_tls.ca is not None
    base = {"VAULT_ADDR": dev_vault_tls.addr, "VAULT_TOKEN": dev_vault_tls.root_token}
    trusted = VaultSession(vault_config({**base, "VAULT_CACERT": str(dev_vault_tls.ca)}))
    assert trusted.mount_kind("secret") == ("kv", "2")
    with pytest.raises(VaultError) as info:
        VaultSession(vault_config(base)).login()
    assert info.value.format() == (
        f"error: TLS error talking to Vault at {dev_vault_tls.addr}: certificate verify failed "
        "(set VAULT_CACERT to the CA that signed the server's certificate)")
    unchecked = VaultSession(vault_config({**base, "VAULT_SKIP_VERIFY": "true"}))
    with pytest.warns(Warning, match="Unverified HTTPS request"):
        assert unchecked.mount_kind("secret") == ("kv", "2")


def test_a_read_ends_at_the_timeout_however_slowly_vault_answers() -> None:
    fake = FakeVault(keep_alive=True)
    try:
        fake.drip(b"{}", pause=0.2, headers_too=True)
        session = VaultSession(vault_config({"VAULT_ADDR": fake.addr, "VAULT_TOKEN": "t",
                                             "VAULT_CLIENT_TIMEOUT": "1"}))
        session.login()
        failed: list[VaultError] = []

        def read() -> None:
            with pytest.raises(VaultError) as info:
                session.read_kv("secret", "app")
            failed.append(info.value)

        # Each byte comes well within the 1 s a read may wait; the answer would take minutes.
        assert ends_within(read, 25)
        assert failed[0].format() == (f"error: Vault at {fake.addr} did not answer "
                                      "secret/data/app within 1 s (VAULT_CLIENT_TIMEOUT)")
    finally:
        fake.stop()


class Redirecting:
    """A server on 127.0.0.1 that answers every ``/v1/...`` request with a 307 to
    ``target`` + the path, and a request below ``/moved/`` (a path of its own) as Vault
    answers a token's lookup and an AppRole login. ``asked`` holds each request it
    received: (method, path, X-Vault-Token, body)."""

    def __init__(self) -> None:
        self.target = ""
        self.asked: list[tuple[str, str, str | None, bytes]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.asked.append((self.command, self.path, self.headers.get("X-Vault-Token"),
                                    body))
                if self.path.startswith("/moved/"):
                    answer = json.dumps({"data": {"ttl": 0, "renewable": False},
                                         "auth": {"client_token": "t", "lease_duration": 0}})
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer.encode())
                    return
                self.send_response(307)
                self.send_header("Location", outer.target + self.path)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_PUT = do_GET

        self.server: Server = serve(Handler, None)
        self.addr = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def redirecting() -> Iterator[tuple[Redirecting, Redirecting]]:
    """Two redirecting servers: the one VAULT_ADDR names and another."""
    first, second = Redirecting(), Redirecting()
    yield first, second
    first.stop()
    second.stop()


CREDENTIAL = "CANARY-vault-redirect-5d21c0"
LOGINS = {"token": {"VAULT_TOKEN": CREDENTIAL},
          "approle": {"VAULT_ROLE_ID": "role", "VAULT_SECRET_ID": CREDENTIAL}}


@pytest.mark.parametrize("other", ["another port", "another host name"])
@pytest.mark.parametrize("login", list(LOGINS))
def test_a_redirect_to_another_server_is_refused_and_nothing_is_sent_there(
        login: str, other: str, redirecting: tuple[Redirecting, Redirecting]) -> None:
    vault, elsewhere = redirecting
    port = elsewhere.server.server_address[1]
    vault.target = (f"http://127.0.0.1:{port}/moved" if other == "another port"
                    else f"http://localhost:{port}/moved")
    session = VaultSession(vault_config({"VAULT_ADDR": vault.addr, **LOGINS[login]}))
    with pytest.raises(VaultError) as info:
        session.login()
    where = "auth/token/lookup-self" if login == "token" else "auth/approle/login"
    assert info.value.format() == (
        f"error: Vault at {vault.addr} redirected {where} to another server: the token and "
        "the login go only to the server VAULT_ADDR names (set VAULT_ADDR to the server "
        "that answers: its https:// address, or a cluster's active node where the standbys "
        "do not forward requests)")
    assert elsewhere.asked == []  # neither the token nor the secret ID went there
    assert len(vault.asked) == 1


@pytest.mark.parametrize("login", list(LOGINS))
def test_a_redirect_within_the_server_vault_addr_names_is_followed(
        login: str, redirecting: tuple[Redirecting, Redirecting]) -> None:
    vault, _ = redirecting
    vault.target = vault.addr + "/moved"
    session = VaultSession(vault_config({"VAULT_ADDR": vault.addr, **LOGINS[login]}))
    session.login()
    _, path, token, body = vault.asked[-1]
    assert path.startswith("/moved/v1/auth/")
    assert CREDENTIAL in (token or "") + body.decode()
