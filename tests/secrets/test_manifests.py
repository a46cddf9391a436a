"""The emitted Vault policies, proven on a real OpenBao dev server (tests/vault_dev.py).

Each policy is loaded as it was emitted, a token gets that policy only, and the token
reads exactly its apps' KV v2 paths (``<mount>/data/<prefix><app>`` and below): not
another app, not a prefix sibling (``<app>-evil``), not another environment, and it can
neither write, delete, list nor read metadata."""

from __future__ import annotations

import secrets
from pathlib import Path

import hvac
import hvac.exceptions
import pytest
from hypothesis import given
from hypothesis import strategies as st

import magcfg
from magcfg.pipeline.cache import BuildCache
from magcfg.secrets.manifests import grants

from ..conftest import REPO
from ..vault_dev import DevVault
from .project import make

APPS = ("magauth", "magbackup", "magds", "magmqtt", "magsentinel", "magws")
CANARY = "CANARY-policy-91ab"
pytestmark = pytest.mark.filterwarnings("ignore:The raise_on_deleted_version:DeprecationWarning")


def _artifacts(root: Path) -> dict[str, dict[str, bytes]]:
    result = magcfg.build(magcfg.load_project(root / "magcfg.yaml"), check=True,
                          cache=BuildCache(None))
    return {env: a.files for env, a in result.artifacts.items()}


def _token_for(vault: DevVault, hcl: bytes) -> hvac.Client:
    name = f"emitted-{secrets.token_hex(4)}"
    vault.client().sys.create_or_update_policy(name, hcl.decode())
    return vault.client(vault.token_with_policies(name))


def _seed(vault: DevVault, path: str) -> None:
    vault.client().secrets.kv.v2.create_or_update_secret(
        path, secret={"value": f"{CANARY}-{secrets.token_hex(4)}"})


def _readable(client: hvac.Client, path: str) -> bool:
    try:
        client.secrets.kv.v2.read_secret_version(path, raise_on_deleted_version=True)
    except hvac.exceptions.Forbidden:
        return False
    return True


def _denied(call: object) -> None:
    with pytest.raises(hvac.exceptions.Forbidden):
        call()  # type: ignore[operator]


def _assert_only_writes_denied(client: hvac.Client, path: str, parent: str) -> None:
    kv = client.secrets.kv.v2
    _denied(lambda: kv.create_or_update_secret(path, secret={"value": "x"}))
    _denied(lambda: kv.patch(path, secret={"value": "x"}))
    _denied(lambda: kv.delete_latest_version_of_secret(path))
    _denied(lambda: kv.read_secret_metadata(path))
    _denied(lambda: kv.list_secrets(parent))
    _denied(lambda: client.read(f"secret/metadata/{path}"))


@pytest.mark.parametrize("env", ["staging", "production"])
def test_bundled_policy_reads_exactly_its_apps_paths(dev_vault: DevVault, env: str) -> None:
    other = "production" if env == "staging" else "staging"
    for app in APPS:
        for path in (f"k3s/{env}/{app}", f"k3s/{env}/{app}/rotated", f"k3s/{env}/{app}-evil",
                     f"k3s/{other}/{app}", f"k3s/{app}"):
            _seed(dev_vault, path)
    _seed(dev_vault, f"k3s/{env}/magunknown")
    client = _token_for(dev_vault, _artifacts(REPO)[env]["vault-policy.hcl"])
    for app in APPS:
        assert _readable(client, f"k3s/{env}/{app}")
        assert _readable(client, f"k3s/{env}/{app}/rotated")
        assert not _readable(client, f"k3s/{env}/{app}-evil")  # prefix sibling
        assert not _readable(client, f"k3s/{other}/{app}")  # the other environment
        assert not _readable(client, f"k3s/{app}")
        _assert_only_writes_denied(client, f"k3s/{env}/{app}", f"k3s/{env}")
    assert not _readable(client, f"k3s/{env}/magunknown")  # an app without references


SECRETS_PROJECT = """\
version: 1
environments: [dev, prod]
layers:
  - name: base
    path: layers/base
  - name: secrets
    path: "layers/secrets/{env}"
schema:
  json: schemas/schema.json
output: generated
secrets:
  vault:
    mounts: [secret]
    path_prefixes: ["k3s/{env}/"]
  direct_vault:
    - app: magbackup
      justification: "Rotates its S3 credentials through Vault on its own schedule."
"""


def test_direct_vault_and_store_policies_are_disjoint(tmp_path: Path, dev_vault: DevVault) -> None:
    project = make(tmp_path / "p", SECRETS_PROJECT)
    project.write("layers/secrets/prod/magds.yaml",
                  'magds:\n  password: "vault://secret/k3s/prod/magds#db_password"\n')
    project.write("layers/secrets/prod/magws.yaml",
                  'magws:\n  app_secret: "vault://secret/k3s/prod/magws#app_secret"\n')
    project.write("layers/secrets/prod/magbackup.yaml",
                  'magbackup:\n  key: "vault+direct://secret/k3s/prod/magbackup#s3_key"\n')
    files = _artifacts(project.root)["prod"]
    assert sorted(n for n in files if n.startswith("vault-policy")) == [
        "vault-policy-direct-magbackup.hcl", "vault-policy.hcl"]
    for path in ("k3s/prod/magds", "k3s/prod/magws", "k3s/prod/magbackup",
                 "k3s/prod/magbackup/extra", "k3s/prod/magbackup-evil", "k3s/dev/magbackup"):
        _seed(dev_vault, path)
    store = _token_for(dev_vault, files["vault-policy.hcl"])
    direct = _token_for(dev_vault, files["vault-policy-direct-magbackup.hcl"])
    assert _readable(store, "k3s/prod/magds") and _readable(store, "k3s/prod/magws")
    assert not _readable(store, "k3s/prod/magbackup")  # the app reads it itself
    assert _readable(direct, "k3s/prod/magbackup")
    assert _readable(direct, "k3s/prod/magbackup/extra")
    for path in ("k3s/prod/magds", "k3s/prod/magws", "k3s/prod/magbackup-evil",
                 "k3s/dev/magbackup"):
        assert not _readable(direct, path), path
    _assert_only_writes_denied(direct, "k3s/prod/magbackup", "k3s/prod")
    _assert_only_writes_denied(store, "k3s/prod/magds", "k3s/prod")
    for name, data in files.items():
        assert CANARY.encode() not in data, name


def test_grants_a_root_and_what_is_below_it_only() -> None:
    roots = frozenset({"secret/data/k3s/prod/magbackup", "kv/"})
    assert grants(roots, "secret/data/k3s/prod/magbackup")
    assert grants(roots, "secret/data/k3s/prod/magbackup/extra")
    assert not grants(roots, "secret/data/k3s/prod/magbackup-evil")
    assert not grants(roots, "secret/data/k3s/prod")
    assert grants(roots, "kv//x") and not grants(roots, "kv/x")
    assert grants(frozenset(), "database/creds/app", exact=frozenset({"database/creds/app"}))
    assert not grants(frozenset(), "database/creds/app/x",
                      exact=frozenset({"database/creds/app"}))


_SEGMENTS = st.text(alphabet="ab/-", max_size=8)


@given(st.frozensets(_SEGMENTS, max_size=6), _SEGMENTS, st.frozensets(_SEGMENTS, max_size=3))
def test_grants_is_the_prefix_rule(roots: frozenset[str], path: str,
                                   exact: frozenset[str]) -> None:
    # The rule as a policy reads it: the root itself, or under ``root/*``.
    expected = path in exact or any(path == root or path.startswith(root + "/")
                                    for root in roots)
    assert grants(roots, path, exact) == expected
