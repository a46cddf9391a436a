"""``magcfg check-env`` (the real console script) and its Python API."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from magcfg.secrets.check_env import ArtifactError, check_env, resolve
from magcfg.secrets.references import parse_reference

from ..conftest import MAGCFG, Project, failed_cleanly
from .project import PROJECT, make

PROD_VARS = {"MAGCFG_MAGDS_PASSWORD": "CANARY-pw-1", "MAGCFG_MAGDS_REPLICA_PASSWORD": "CANARY-pw-2",
             "MAGCFG_MAGWS_APP_SECRET": "CANARY-pw-3"}


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without any MAGCFG_/VAULT_ variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MAGCFG_", "VAULT_", "DEV_DB"))}
    env.update(extra)
    return env


def run(cwd: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(MAGCFG), *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=60)


@pytest.fixture
def built(tmp_path: Path) -> Project:
    project = make(tmp_path / "sp")
    assert project.run("build").returncode == 0
    return project


def test_all_present_exits_0(built: Project) -> None:
    result = run(built.root, "check-env", "--env", "prod", env=clean_env(**PROD_VARS))
    assert result.returncode == 0, result.stderr
    assert "all 3 secret(s) resolvable" in result.stderr
    assert "CANARY" not in result.stdout + result.stderr


def test_missing_and_empty_are_listed_by_name(built: Project) -> None:
    env = clean_env(MAGCFG_MAGDS_PASSWORD="CANARY-pw-1", MAGCFG_MAGWS_APP_SECRET="")
    result = run(built.root, "check-env", "--env", "prod", env=env)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[0] == "check-env: prod: 2 secret env var(s) missing or empty:"
    assert "MAGCFG_MAGDS_REPLICA_PASSWORD  (for magds.replica_password, vault://)" in lines[1]
    assert "MAGCFG_MAGWS_APP_SECRET  (for magws.app_secret, vault://)" in lines[2]
    assert "MAGCFG_MAGDS_PASSWORD " not in result.stderr
    assert "CANARY" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_json_format(built: Project) -> None:
    result = run(built.root, "check-env", "--env", "prod", "--format", "json",
                 env=clean_env(MAGCFG_MAGDS_PASSWORD="CANARY-pw-1"))
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert data == {"environment": "prod", "ok": False, "required": 3, "missing": [
        {"key": "magds.replica_password", "name": "MAGCFG_MAGDS_REPLICA_PASSWORD", "scheme": "vault"},
        {"key": "magws.app_secret", "name": "MAGCFG_MAGWS_APP_SECRET", "scheme": "vault"}]}
    assert "CANARY" not in result.stdout + result.stderr


def test_env_scheme_needs_the_named_variable(built: Project) -> None:
    result = run(built.root, "check-env", "--env", "dev", env=clean_env())
    assert result.returncode == 1
    assert "DEV_DB_PASSWORD  (for magds.password, env://)" in result.stderr
    ok = run(built.root, "check-env", "--env", "dev", env=clean_env(DEV_DB_PASSWORD="CANARY-dev"))
    assert ok.returncode == 0 and "CANARY" not in ok.stdout + ok.stderr


def test_container_without_project_file(built: Project, tmp_path: Path) -> None:
    """An image ships only generated/<env>/: point at it with --artifact or MAGCFG_ARTIFACT."""
    image = tmp_path / "image" / "etc" / "magcfg"
    shutil.copytree(built.root / "generated/prod", image)
    result = run(tmp_path / "image", "check-env", "--env", "prod", "--artifact", str(image),
                 env=clean_env(**PROD_VARS))
    assert result.returncode == 0, result.stderr
    result = run(tmp_path / "image", "check-env", "--env", "prod",
                 env=clean_env(MAGCFG_ARTIFACT=str(image)))
    assert result.returncode == 1 and "MAGCFG_MAGWS_APP_SECRET" in result.stderr


def test_artifact_for_another_environment(built: Project) -> None:
    result = run(built.root, "check-env", "--env", "dev", "--artifact", "generated/prod",
                 env=clean_env(**PROD_VARS))
    assert result.returncode == 1
    assert "this artifact is for environment 'prod', not 'dev'" in result.stderr


def test_tampered_config_is_refused(built: Project) -> None:
    config = built.root / "generated/prod/config.json"
    config.write_text(config.read_text().replace("k3s/magws#app_secret", "k3s/magws#other"))
    result = run(built.root, "check-env", "--env", "prod", env=clean_env(**PROD_VARS))
    assert result.returncode == 1
    assert "does not match the digest in manifest.json" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_artifact_and_usage_errors(built: Project, tmp_path: Path) -> None:
    result = run(built.root, "check-env", "--env", "prod", "--artifact", str(tmp_path / "nope"),
                 env=clean_env())
    assert result.returncode == 1 and "cannot read the artifact" in result.stderr
    assert run(built.root, "check-env", "--env", "qa", env=clean_env()).returncode == 2
    assert run(built.root, "check-env", "--env", "prod", "--format", "xml",
               env=clean_env()).returncode == 2
    assert run(built.root, "check-env", env=clean_env()).returncode == 2


def test_direct_vault_needs_vault_addr(tmp_path: Path) -> None:
    project = make(tmp_path / "sp", PROJECT.replace("redact:", (
        "  direct_vault:\n    - {app: magbackup, justification: rotates its own S3 keys in Vault}\n"
        "redact:")))
    project.write("layers/secrets/prod/magbackup.yaml",
                  'magbackup:\n  key: "vault+direct://secret/k3s/magbackup#s3"\n')
    assert project.run("build").returncode == 0
    result = check_env(project.root / "generated/prod", PROD_VARS)
    assert result.missing_names == ["VAULT_ADDR"]
    assert check_env(project.root / "generated/prod", {**PROD_VARS, "VAULT_ADDR": "https://v"}).ok


def test_python_api(built: Project) -> None:
    result = check_env(built.root / "generated/prod", {"MAGCFG_MAGWS_APP_SECRET": "x"}, env="prod")
    assert not result.ok
    assert result.missing_names == ["MAGCFG_MAGDS_PASSWORD", "MAGCFG_MAGDS_REPLICA_PASSWORD"]
    assert [r.key for r in result.required] == ["magds.password", "magds.replica_password",
                                                "magws.app_secret"]
    with pytest.raises(ArtifactError):
        check_env(built.root / "generated/prod", {}, env="dev")
    ref = parse_reference("vault://secret/k3s/magds#db_password")
    assert ref is not None
    assert resolve(("magds", "password"), ref, {"MAGCFG_MAGDS_PASSWORD": "v"}) == "v"
    assert resolve(("magds", "password"), ref, {"MAGCFG_MAGDS_PASSWORD": ""}) is None


def test_api_imports_nothing_heavy() -> None:
    code = ("import sys, magcfg.secrets.check_env; "
            "heavy = {'typer', 'yaml', 'jsonschema', 'jsonschema_rs', 'deepdiff', 'git', 'orjson'}; "
            "print(sorted(heavy & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ})
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", ["manifest.json", "config.json"])
def test_a_fifo_in_the_artifact_is_refused_not_waited_on(built: Project, name: str) -> None:
    path = built.root / "generated/prod" / name
    path.unlink()
    os.mkfifo(path)
    result = run(built.root, "check-env", "--env", "prod", env=clean_env(**PROD_VARS))
    assert failed_cleanly(result, 1) == (
        f"{path}: error: cannot read the artifact: is a FIFO, not a regular file\n")


def test_another_environments_or_a_malformed_manifest_is_refused(built: Project) -> None:
    dev = built.root / "generated/dev"
    result = run(built.root, "check-env", "--env", "prod", "--artifact", str(dev),
                 env=clean_env(**PROD_VARS))
    assert failed_cleanly(result, 1) == (
        f"{dev}/manifest.json: error: this artifact is for environment 'dev', not 'prod' "
        "[environment]\n")
    manifest = built.root / "generated/prod/manifest.json"
    manifest.write_text(manifest.read_text().replace('"version": 1', '"version": "1"'))
    result = run(built.root, "check-env", "--env", "prod", env=clean_env(**PROD_VARS))
    assert failed_cleanly(result, 1) == (
        f"{manifest}: error: must be an integer, not a string [version]\n")


def test_delivered_values_are_what_resolve_returns_for_every_reference() -> None:
    from magcfg.runtime.snapshot import freeze
    from magcfg.secrets.check_env import delivered_values
    from magcfg.secrets.references import reference_paths, references

    config = json.loads((Path(__file__).resolve().parents[2]
                         / "generated/production/config.json").read_bytes())
    config["extra"] = {"list": ["env://EXTRA_TOKEN", {"deep": "vault://secret/k3s/x#y"}]}
    found = sorted(references(config), key=lambda item: item[0])
    assert found and sorted(reference_paths(config), key=lambda item: item[0]) == found
    assert sorted(reference_paths(freeze(config)), key=lambda item: item[0]) == found
    environ = {"EXTRA_TOKEN": "CANARY-t", "MAGCFG_EXTRA_LIST_1_DEEP": "CANARY-d", "OTHER": "x"}
    assert delivered_values(config, environ) == {"CANARY-t", "CANARY-d"}


def test_a_configmap_volume_is_read_through_its_data_link(built: Project, tmp_path: Path) -> None:
    from tests.runtime.fixtures import KubeletWriter

    volume = tmp_path / "volume"
    prod = built.root / "generated/prod"
    KubeletWriter(volume).write({name: (prod / name).read_bytes()
                                 for name in ("config.json", "manifest.json")})
    assert (volume / "config.json").is_symlink()
    result = run(built.root, "check-env", "--env", "prod", "--artifact", str(volume),
                 env=clean_env(**PROD_VARS))
    assert result.returncode == 0, result.stderr
    assert "all 3 secret(s) resolvable" in result.stderr
