"""Environment isolation: no environment's Vault policy may read another's secrets.

A reference that another environment's policy would also grant is an error unless the
project isolates them: ``{env}`` in a path prefix or a mount, or a Vault per environment
(``secrets.vault.addresses``)."""

from __future__ import annotations

from pathlib import Path

from ..conftest import Project, failed_cleanly, tree_state
from .project import SCHEMA

HEAD = """\
version: 1
environments: [staging, prod]
layers:
  - name: secrets
    path: "layers/{env}"
schema:
  json: schemas/schema.json
output: generated
secrets:
"""


def _project(root: Path, vault: str, staging: str, prod: str) -> Project:
    import json

    p = Project(root)
    p.write("magcfg.yaml", HEAD + vault)
    p.write("schemas/schema.json", json.dumps(SCHEMA))
    p.write("layers/staging/magds.yaml", f'magds:\n  password: "{staging}"\n')
    p.write("layers/prod/magds.yaml", f'magds:\n  password: "{prod}"\n')
    return p


SHARED = '  vault:\n    path_prefixes: ["k3s/"]\n'


def test_shared_paths_are_refused(tmp_path: Path) -> None:
    p = _project(tmp_path / "p", SHARED, "vault://secret/k3s/magds#db_password",
                 "vault://secret/k3s/magds#db_password")
    before = tree_state(p.root)
    err = failed_cleanly(p.run("build"), 1)
    advice = ("share a Vault, so a role of one could read the other's secret; isolate them with "
              "{env} in secrets.vault.path_prefixes or secrets.vault.mounts, or give each its Vault "
              "under secrets.vault.addresses (docs/secrets.md, \"Environments\") [magds.password]")
    assert err.splitlines() == [
        "layers/prod/magds.yaml:2: error: the Vault policy of staging also grants "
        f"secret/data/k3s/magds: prod and staging {advice}",
        "layers/staging/magds.yaml:2: error: the Vault policy of prod also grants "
        f"secret/data/k3s/magds: staging and prod {advice}",
    ]
    assert tree_state(p.root) == before


def test_a_build_of_one_environment_checks_it_against_the_others(tmp_path: Path) -> None:
    # build -e compiles the other environments for the check, and writes none of them.
    p = _project(tmp_path / "p", SHARED, "vault://secret/k3s/magds#db_password",
                 "vault://secret/k3s/magds#db_password")
    before = tree_state(p.root)
    for env in ("prod", "staging"):
        err = failed_cleanly(p.run("build", "-e", env), 1)
        assert [line.split(": error: ")[0] for line in err.splitlines()] == [
            "layers/prod/magds.yaml:2", "layers/staging/magds.yaml:2"]
        assert "also grants secret/data/k3s/magds" in err
        assert failed_cleanly(p.run("build", "--check", "-e", env), 1) == err
    assert tree_state(p.root) == before
    # A conflict between environments the build does not write is theirs to report.
    p.write("magcfg.yaml", HEAD.replace("[staging, prod]", "[staging, prod, dev]") + SHARED
            + "    addresses:\n      dev: https://vault-dev.example:8200\n")
    p.write("layers/dev/magds.yaml",
            'magds:\n  password: "vault://secret/k3s/magds#db_password"\n')
    done = p.run("build", "-e", "dev")
    assert done.returncode == 0, done.stderr
    assert sorted(path.name for path in (p.root / "generated").iterdir()) == ["dev"]


def test_a_promotion_that_would_share_a_secret_is_refused(tmp_path: Path) -> None:
    # Each environment reads its own path: the build passes. Promoting staging's reference
    # into prod would let staging's role read prod's secret: refused before any write.
    from ..review.promotion_repo import git

    p = _project(tmp_path / "p", "  vault:\n    mounts: [secret]\n",
                 "vault://secret/k3s/staging/magds#db_password",
                 "vault://secret/k3s/prod/magds#db_password")
    assert p.run("build").returncode == 0
    git(p.root, "init", "-q", "-b", "main")
    git(p.root, "add", "-A")
    git(p.root, "commit", "-q", "-m", "init")
    before = tree_state(p.root)
    err = failed_cleanly(p.run("promote", "staging", "prod", "--key", "magds.password",
                               "--include-secrets"), 1)
    assert err.startswith(
        "layers/prod/magds.yaml:2: error: the Vault policy of staging also grants "
        "secret/data/k3s/staging/magds: prod and staging share a Vault")
    assert "(promoting staging into prod would make prod invalid; nothing was written)" in err
    assert tree_state(p.root) == before
    assert git(p.root, "branch", "--list") == "* main\n"


def test_a_sub_path_granted_by_the_other_policy_is_refused(tmp_path: Path) -> None:
    # No prefixes: each policy grants its paths and below, so prod's grant of k3s/magds
    # covers staging's k3s/magds/staging.
    p = _project(tmp_path / "p", "  vault:\n    mounts: [secret]\n",
                 "vault://secret/k3s/magds/staging#db_password", "vault://secret/k3s/magds#db_password")
    err = failed_cleanly(p.run("build"), 1)
    assert err.splitlines() == [
        "layers/staging/magds.yaml:2: error: the Vault policy of prod also grants "
        "secret/data/k3s/magds/staging: staging and prod share a Vault, so a role of one could read "
        "the other's secret; isolate them with {env} in secrets.vault.path_prefixes or "
        "secrets.vault.mounts, or give each its Vault under secrets.vault.addresses "
        "(docs/secrets.md, \"Environments\") [magds.password]"]


def test_env_in_the_path_prefix_isolates(tmp_path: Path) -> None:
    vault = '  vault:\n    path_prefixes: ["k3s/{env}/"]\n'
    p = _project(tmp_path / "p", vault, "vault://secret/k3s/staging/magds#db_password",
                 "vault://secret/k3s/prod/magds#db_password")
    done = p.run("build")
    assert done.returncode == 0, done.stderr
    assert 'path "secret/data/k3s/prod/magds" {' in (p.root / "generated/prod/vault-policy.hcl").read_text()
    # staging reading prod's tree is refused by the prefix rule, located.
    p.write("layers/staging/magds.yaml", 'magds:\n  password: "vault://secret/k3s/prod/magds#db_password"\n')
    before = tree_state(p.root)
    err = failed_cleanly(p.run("build"), 1)
    assert err.splitlines() == [
        "layers/staging/magds.yaml:2: error: the Vault path must be <prefix><app>[/...] with a "
        "prefix of secrets.vault.path_prefixes ('k3s/staging/' for staging) [magds.password]"]
    assert tree_state(p.root) == before


def test_a_mount_per_environment_isolates(tmp_path: Path) -> None:
    vault = '  vault:\n    mounts: ["secret-{env}"]\n    path_prefixes: ["k3s/"]\n'
    p = _project(tmp_path / "p", vault, "vault://secret-staging/k3s/magds#db_password",
                 "vault://secret-prod/k3s/magds#db_password")
    done = p.run("build")
    assert done.returncode == 0, done.stderr
    assert "key: k3s/magds" in (p.root / "generated/prod/externalsecret.yaml").read_text()
    p.write("layers/staging/magds.yaml", 'magds:\n  password: "vault://secret-prod/k3s/magds#db_password"\n')
    err = failed_cleanly(p.run("build"), 1)
    assert "layers/staging/magds.yaml:2: error: Vault mount 'secret-prod' is not allowed here " \
           "(secrets.vault.mounts: secret-staging) [magds.password]" in err.splitlines()


def test_a_vault_per_environment_isolates(tmp_path: Path) -> None:
    vault = SHARED + ("    addresses:\n      staging: https://vault-staging.example:8200\n"
                      "      prod: https://vault-prod.example:8200\n")
    p = _project(tmp_path / "p", vault, "vault://secret/k3s/magds#db_password",
                 "vault://secret/k3s/magds#db_password")
    done = p.run("build")
    assert done.returncode == 0, done.stderr


def test_addresses_are_checked(tmp_path: Path) -> None:
    vault = SHARED + ("    addresses:\n      staging: https://vault.example:8200\n"
                      "      prod: https://vault.example:8200\n      qa: vault\n")
    p = _project(tmp_path / "p", vault, "vault://secret/k3s/magds#db_password",
                 "vault://secret/k3s/magds#db_password")
    before = tree_state(p.root)
    err = failed_cleanly(p.run("build"), 1)
    assert err.splitlines() == [
        "magcfg.yaml:12: error: environments listed under addresses each have a Vault of their "
        "own: two of them name the same address [secrets.vault.addresses]",
        "magcfg.yaml:15: error: 'qa' is not an environment of this project (staging, prod) "
        "[secrets.vault.addresses.qa]",
    ]
    assert tree_state(p.root) == before
