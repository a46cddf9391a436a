"""Dynamic secrets (``secrets.vault.dynamic_mounts``): references on a dynamic-secret
mount are ``vault+direct://`` only, the app's Direct-Vault policy grants exactly the
engine's path plus lease renewal, and the policy is proven on a real OpenBao dev server
with the database engine on a real PostgreSQL (tests/vault_dev.py)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import hvac
import hvac.exceptions
import pytest

import magcfg
from magcfg.errors import BuildError, Diagnostic
from magcfg.pipeline.cache import BuildCache
from magcfg.review.secrets_verify import format_report, role_path, verify_secrets

from ..conftest import Project, failed_cleanly
from ..vault_dev import DevPostgres, DevVault, database_engine
from .project import SCHEMA

CANARY = "CANARY-dynamic-3c7a"
pytestmark = pytest.mark.filterwarnings("ignore:The raise_on_deleted_version:DeprecationWarning")

HEAD = """\
version: 1
environments: [dev, prod]
layers:
  - name: secrets
    path: "layers/{env}"
schema:
  json: schemas/schema.json
output: generated
"""
OPT_IN = ("  direct_vault:\n    - app: magbackup\n"
          "      justification: \"takes short-lived PostgreSQL credentials from Vault\"\n")


def _project(root: Path, vault: str, prod: str, dev: str = "env://DEV_DB_USER",
             direct: str = OPT_IN) -> Project:
    p = Project(root)
    p.write("magcfg.yaml", HEAD + "secrets:\n  vault:\n" + vault + direct)
    p.write("schemas/schema.json", json.dumps(SCHEMA))
    p.write("layers/prod/magbackup.yaml", f"magbackup:\n  creds:\n    username: \"{prod}\"\n")
    p.write("layers/dev/magbackup.yaml", f"magbackup:\n  creds:\n    username: \"{dev}\"\n")
    return p


def _build(p: Project) -> dict[str, dict[str, bytes]]:
    result = magcfg.build(magcfg.load_project(p.root / "magcfg.yaml"), check=True,
                          cache=BuildCache(None))
    return {env: a.files for env, a in result.artifacts.items()}


def _errors(p: Project) -> list[Diagnostic]:
    with pytest.raises(BuildError) as info:
        _build(p)
    return info.value.diagnostics


DYNAMIC = "    mounts: [secret]\n    path_prefixes: [\"k3s/\"]\n    dynamic_mounts: [database]\n"


# -- the project file ---------------------------------------------------------------------

@pytest.mark.parametrize(("vault", "line", "fragment"), [
    ("    dynamic_mounts: database\n", 11, "must be a list of strings"),
    ("    dynamic_mounts: [Data!]\n", 11, "mount names of dynamic-secret engines"),
    ("    dynamic_mounts: [database, database]\n", 11, "names a mount twice"),
    ("    mounts: [secret, database]\n    dynamic_mounts: [database]\n", 12,
     "database is in both secrets.vault.mounts (KV v2) and dynamic_mounts"),
])
def test_bad_dynamic_mounts_are_located(tmp_path: Path, vault: str, line: int, fragment: str) -> None:
    p = _project(tmp_path / "p", vault, "env://PROD_DB_USER")
    errors = [d for d in _errors(p) if d.key == "secrets.vault.dynamic_mounts"]
    assert len(errors) == 1, errors
    assert (errors[0].file, errors[0].line) == ("magcfg.yaml", line)
    assert fragment in errors[0].message
    done = p.run("build")
    assert f"magcfg.yaml:{line}: error: " in failed_cleanly(done, 1)


def test_project_file_schema_knows_dynamic_mounts() -> None:
    import jsonschema

    from magcfg.scaffold.editors import project_schema

    schema = json.loads(project_schema())
    base = {"environments": ["dev"], "layers": [{"name": "a", "path": "a"}],
            "schema": {"json": "s.json"}}
    good = {**base, "secrets": {"vault": {"mounts": ["secret"],
                                          "dynamic_mounts": ["database-{env}"]}}}
    jsonschema.validate(good, schema)
    bad = {**base, "secrets": {"vault": {"dynamic_mounts": ["Database!"]}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


# -- references ---------------------------------------------------------------------------

def test_vault_reference_on_a_dynamic_mount_is_refused(tmp_path: Path) -> None:
    p = _project(tmp_path / "p", DYNAMIC, "vault://database/creds/magbackup#username")
    [d] = _errors(p)
    assert (d.file, d.line, d.key) == ("layers/prod/magbackup.yaml", 3, "magbackup.creds.username")
    assert "dynamic-secret mount (secrets.vault.dynamic_mounts): External Secrets delivery " \
           "here reads KV v2 only" in d.message
    assert "write vault+direct://" in d.message


def test_dynamic_reference_needs_the_opt_in(tmp_path: Path) -> None:
    p = _project(tmp_path / "p", DYNAMIC, "vault+direct://database/creds/magbackup#username",
                 direct="")
    [d] = _errors(p)
    assert d.key == "magbackup.creds.username" and "opt 'magbackup' in to Direct-Vault" in d.message


def test_undeclared_engine_mount_is_refused(tmp_path: Path) -> None:
    p = _project(tmp_path / "p", "    mounts: [secret]\n",
                 "vault+direct://database/creds/magbackup#username")
    [d] = _errors(p)
    assert "Vault mount 'database' is not allowed here (secrets.vault.mounts: secret)" in d.message


def test_direct_policy_grants_exactly_the_engine_path_and_renewal(tmp_path: Path) -> None:
    p = _project(tmp_path / "p", DYNAMIC, "vault+direct://database/creds/magbackup#username")
    p.write("layers/prod/magbackup.yaml", (
        "magbackup:\n  key: \"vault+direct://secret/k3s/magbackup#s3_key\"\n  creds:\n"
        "    username: \"vault+direct://database/creds/magbackup#username\"\n"
        "    password: \"vault+direct://database/creds/magbackup#password\"\n"))
    files = _build(p)["prod"]
    assert files["vault-policy-direct-magbackup.hcl"].decode() == """\
# Generated by magcfg for environment prod: read access to the Vault paths
# its references name (KV v2 and dynamic secrets) and renewal of the leases
# of the dynamic ones (docs/secrets.md). Do not edit: run `magcfg build`.
# For the Vault role of app 'magbackup' (Direct-Vault: takes short-lived PostgreSQL credentials from Vault).

# magbackup
path "secret/data/k3s/magbackup" {
  capabilities = ["read"]
}
path "secret/data/k3s/magbackup/*" {
  capabilities = ["read"]
}

# magbackup: dynamic secret (each read issues new leased credentials)
path "database/creds/magbackup" {
  capabilities = ["read"]
}

# Renewal of the leases of the dynamic secrets above (by lease ID).
path "sys/leases/renew" {
  capabilities = ["update"]
}
"""
    assert "database" not in files["vault-policy.hcl"].decode()
    assert "database" not in files["externalsecret.yaml"].decode()


def test_a_kv_only_policy_grants_no_lease_renewal(tmp_path: Path) -> None:
    p = _project(tmp_path / "p", DYNAMIC, "vault+direct://secret/k3s/magbackup#username")
    text = _build(p)["prod"]["vault-policy-direct-magbackup.hcl"].decode()
    assert "sys/leases" not in text and "read access to the Vault KV v2 paths" in text


# -- environment isolation ----------------------------------------------------------------

def test_a_shared_dynamic_role_is_refused(tmp_path: Path) -> None:
    ref = "vault+direct://database/creds/magbackup#username"
    p = _project(tmp_path / "p", DYNAMIC, ref, dev=ref)
    errors = sorted((d.file, d.line, d.message) for d in _errors(p))
    assert [(f, line) for f, line, _ in errors] == [("layers/dev/magbackup.yaml", 3),
                                                   ("layers/prod/magbackup.yaml", 3)]
    assert errors[1][2].startswith("the Vault policy of dev also grants database/creds/magbackup: "
                                   "prod and dev share a Vault")
    # Different roles on one shared mount are granted exactly: no overlap.
    p.write("layers/dev/magbackup.yaml",
            "magbackup:\n  creds:\n    username: \"vault+direct://database/creds/magbackup-dev#username\"\n")
    _build(p)


def test_a_dynamic_mount_per_environment_isolates(tmp_path: Path) -> None:
    vault = "    mounts: [secret]\n    dynamic_mounts: [\"database-{env}\"]\n"
    p = _project(tmp_path / "p", vault, "vault+direct://database-prod/creds/magbackup#username",
                 dev="vault+direct://database-dev/creds/magbackup#username")
    files = _build(p)
    assert 'path "database-prod/creds/magbackup" {' in \
        files["prod"]["vault-policy-direct-magbackup.hcl"].decode()
    p.write("layers/dev/magbackup.yaml",
            "magbackup:\n  creds:\n    username: \"vault+direct://database-prod/creds/magbackup#username\"\n")
    [d] = _errors(p)
    assert d.file == "layers/dev/magbackup.yaml"
    assert "Vault mount 'database-prod' is not allowed here" in d.message


# -- proven on OpenBao + PostgreSQL -------------------------------------------------------

def _unique(name: str) -> str:
    return f"{name}-{secrets.token_hex(3)}"


@pytest.fixture
def database(dev_vault: DevVault, dev_postgres: DevPostgres) -> Iterator[tuple[str, str]]:
    """The database engine at ``database/`` on a real PostgreSQL with two roles:
    (the app's role, another role)."""
    root = dev_vault.client()
    database_engine(root, dev_postgres)
    roles = (_unique("magbackup"), _unique("magds"))
    for role in roles:
        root.write(f"database/roles/{role}", db_name="pg", default_ttl="60s", max_ttl="300s",
                   creation_statements=["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD "
                                        "'{{password}}' VALID UNTIL '{{expiration}}';"])
    yield roles
    for role in roles:  # revoked while PostgreSQL still runs
        root.sys.revoke_prefix(f"database/creds/{role}")
        root.delete(f"database/roles/{role}")


def _denied(call: object) -> None:
    with pytest.raises(hvac.exceptions.Forbidden):
        call()  # type: ignore[operator]


def test_generated_direct_policy_reads_and_renews_only_its_role(
        tmp_path: Path, dev_vault: DevVault, database: tuple[str, str]) -> None:
    mine, other = database
    prefix = f"t{secrets.token_hex(4)}/"
    vault = (f"    mounts: [secret]\n    path_prefixes: [\"{prefix}\"]\n"
             "    dynamic_mounts: [database]\n")
    p = _project(tmp_path / "p", vault, f"vault+direct://database/creds/{mine}#username")
    p.write("layers/prod/magbackup.yaml", (
        "magbackup:\n"
        f"  key: \"vault+direct://secret/{prefix}magbackup#s3_key\"\n"
        "  creds:\n"
        f"    username: \"vault+direct://database/creds/{mine}#username\"\n"
        f"    password: \"vault+direct://database/creds/{mine}#password\"\n"))
    p.write("layers/prod/magds.yaml", f"magds:\n  password: \"vault://secret/{prefix}magds#pw\"\n")
    files = _build(p)["prod"]
    root = dev_vault.client()
    for app in ("magbackup", "magds"):
        root.secrets.kv.v2.create_or_update_secret(f"{prefix}{app}", secret={"v": CANARY})
    name = _unique("direct")
    root.sys.create_or_update_policy(name, files["vault-policy-direct-magbackup.hcl"].decode())
    client = dev_vault.client(dev_vault.token_with_policies(name))

    creds = client.read(f"database/creds/{mine}")
    assert creds["data"]["username"] and creds["lease_duration"] > 0 and creds["renewable"]
    renewed = client.sys.renew_lease(creds["lease_id"], increment=120)
    assert renewed["lease_id"] == creds["lease_id"] and renewed["lease_duration"] > 0
    assert client.secrets.kv.v2.read_secret_version(
        f"{prefix}magbackup", raise_on_deleted_version=True)["data"]["data"] == {"v": CANARY}

    _denied(lambda: client.read(f"database/creds/{other}"))  # another role
    _denied(lambda: client.read(f"database/roles/{mine}"))  # the role's definition
    _denied(lambda: client.read(f"database/static-creds/{mine}"))
    _denied(lambda: client.secrets.kv.v2.read_secret_version(  # another app's KV path
        f"{prefix}magds", raise_on_deleted_version=True))
    _denied(lambda: client.write(f"database/roles/{mine}", db_name="pg",
                                 creation_statements=["SELECT 1"]))
    _denied(lambda: client.write("database/config/pg", plugin_name="postgresql-database-plugin"))
    _denied(lambda: client.write(f"database/rotate-role/{mine}"))
    _denied(lambda: client.sys.revoke_lease(creds["lease_id"]))
    _denied(lambda: client.sys.list_leases(f"database/creds/{mine}"))
    _denied(lambda: client.secrets.kv.v2.create_or_update_secret(
        f"{prefix}magbackup", secret={"v": "x"}))
    root.sys.revoke_lease(creds["lease_id"])


# -- magcfg secrets verify ----------------------------------------------------------------

def test_role_path() -> None:
    assert role_path("creds/magbackup") == "roles/magbackup"
    assert role_path("static-creds/magbackup") == "static-roles/magbackup"
    assert role_path("creds/a/b") is None and role_path("issue/web") is None


def test_verify_checks_the_role_and_never_reads_credentials(
        tmp_path: Path, dev_vault: DevVault, database: tuple[str, str]) -> None:
    mine, _ = database
    p = _project(tmp_path / "p", DYNAMIC, f"vault+direct://database/creds/{mine}#username")
    project = magcfg.load_project(p.root / "magcfg.yaml")
    root = dev_vault.client()
    report = verify_secrets(project, "prod", {"VAULT_ADDR": dev_vault.addr,
                                              "VAULT_TOKEN": dev_vault.root_token})
    assert report.ok and report.checked == 1 and report.secrets == 1 and not report.skipped
    with pytest.raises(hvac.exceptions.InvalidPath):  # no credentials were issued
        root.sys.list_leases(f"database/creds/{mine}/")
    issued = root.read(f"database/creds/{mine}")  # the control: a read does issue one
    assert len(root.sys.list_leases(f"database/creds/{mine}/")["data"]["keys"]) == 1
    root.sys.revoke_lease(issued["lease_id"])

    p.write("layers/prod/magbackup.yaml",
            "magbackup:\n  creds:\n    username: \"vault+direct://database/creds/no-such-role#username\"\n")
    report = verify_secrets(magcfg.load_project(p.root / "magcfg.yaml"), "prod",
                            {"VAULT_ADDR": dev_vault.addr, "VAULT_TOKEN": dev_vault.root_token})
    [u] = report.unresolved
    assert (u.problem, u.diagnostic.file, u.diagnostic.line) == (
        "missing-role", "layers/prod/magbackup.yaml", 3)
    assert "the dynamic-secret role database/roles/no-such-role does not exist" in u.diagnostic.message

    # A token that may not read the role: skipped with a note, not an error.
    name = _unique("nothing")
    root.sys.create_or_update_policy(name, 'path "secret/data/none" { capabilities = ["read"] }\n')
    report = verify_secrets(magcfg.load_project(p.root / "magcfg.yaml"), "prod",
                            {"VAULT_ADDR": dev_vault.addr,
                             "VAULT_TOKEN": dev_vault.token_with_policies(name)})
    assert report.ok and len(report.skipped) == 1
    lines = format_report(report, str)
    assert lines[0].startswith("note: magbackup.creds.username: vault+direct://database/creds/"
                               "no-such-role#username: dynamic secret not checked")
    assert lines[-1].endswith("(1 secret(s) at " + dev_vault.addr + ", 1 not checked)")
    assert report.as_json(str)["skipped"] == list(report.skipped)
