"""The Vault client (magcfg.secrets.vault): settings from the environment, its light
import, and Kubernetes auth against a real OpenBao dev server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from magcfg.errors import UsageError
from magcfg.secrets.vault import (
    VaultConfig,
    VaultError,
    VaultSession,
    VaultUsageError,
    vault_config,
)

from ..net.slow import ends_within
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
