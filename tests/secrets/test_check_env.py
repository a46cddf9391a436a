"""``magcfg check-env`` (the real console script) and its Python API."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

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
    assert data == {"format": 1, "command": "check-env", "environment": "prod", "ok": False,
                    "required": 3, "missing": [
        {"key": "magds.replica_password", "name": "MAGCFG_MAGDS_REPLICA_PASSWORD", "scheme": "vault"},
        {"key": "magws.app_secret", "name": "MAGCFG_MAGWS_APP_SECRET", "scheme": "vault"}],
        "invalid": []}
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


@pytest.mark.parametrize("text", ['{"magds": ', '{"magds": NaN}', "[1, 2]"])
def test_a_config_that_is_not_a_json_object_is_refused(built: Project, text: str) -> None:
    config = built.root / "generated/prod/config.json"
    config.write_text(text)
    result = run(built.root, "check-env", "--env", "prod", env=clean_env(**PROD_VARS))
    # The project's artifact, named as every command names the project's files.
    name = "generated/prod/config.json"
    message = {'{"magds": ': f"{name}:1: error: artifact is not valid JSON at column 11: "
                             "JSONDecodeError",
               # What JSON readers disagree on is refused whatever is installed (json
               # reads NaN, orjson does not): by what it is, without a position.
               '{"magds": NaN}': f"{name}: error: artifact is not valid JSON: NaN is not JSON",
               "[1, 2]": f"{name}: error: artifact files must be JSON objects"}[text]
    assert failed_cleanly(result) == f"{message}\n"


def test_a_registry_reference_is_no_artifact_directory(built: Project) -> None:
    """check-env reads a directory: a registry reference, with oci:// or in cosign's form
    (what publish prints), or made a path (``oci:/...``, ``//`` collapsed), is a usage
    error saying so, not a missing manifest in a directory named after it."""
    pinned = "127.0.0.1:5000/acme/cfg@sha256:" + "a" * 64
    tagged = "127.0.0.1:5000/acme/cfg:production"
    for given, pulled in ((f"oci://{pinned}", pinned), (pinned, pinned),
                          (f"oci://{tagged}", tagged), ("oci://Bad", "REGISTRY/REPO:TAG"),
                          # as a shell's or Path's collapsing of // leaves it
                          (f"oci:/{tagged}", tagged)):
        result = run(built.root, "check-env", "--env", "prod", "--artifact", given,
                     env=clean_env())
        assert failed_cleanly(result, 2) == (
            f"error: --artifact {given}: check-env reads an artifact directory (the --out of "
            "magcfg watch, a ConfigMap volume, or a registry's artifact pulled into one: "
            f"crane export {pulled} - | tar -x -C DIR), not a registry\n")


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
        f"generated/prod/{name}: error: cannot read the artifact: is a FIFO, not a regular "
        "file\n")


def test_a_huge_manifest_or_constraints_file_is_refused_unread(
        strict: Project, tmp_path: Path) -> None:
    from magcfg.artifact import MAX_MANIFEST_BYTES

    for name in ("value-constraints.json", "manifest.json"):
        path = strict.root / "generated/prod" / name
        with open(path, "r+b") as fh:
            fh.truncate(MAX_MANIFEST_BYTES + 1)  # sparse
        result = run(strict.root, "check-env", "--env", "prod",
                     env=clean_env(**CONSTRAINED_VARS))
        assert failed_cleanly(result, 1) == (
            f"generated/prod/{name}: error: is larger than {MAX_MANIFEST_BYTES} bytes\n")


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
        "generated/prod/manifest.json: error: must be an integer, not a string [version]\n")


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


def test_references_come_in_key_order_with_list_items_in_their_order() -> None:
    """Mapping keys sorted as text (``"10"`` before ``"2"``), list items by position
    (item 2 before item 10), on plain JSON and on the runtime's frozen config."""
    from magcfg.runtime.snapshot import freeze
    from magcfg.secrets.references import references

    def walk(node: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
        if isinstance(node, dict):
            return [p for k in sorted(node) for p in walk(node[k], (*path, k))]
        if isinstance(node, list):
            return [p for i, item in enumerate(node) for p in walk(item, (*path, str(i)))]
        return [path] if isinstance(node, str) and node.startswith("env://") else []

    items: list[Any] = [f"env://ITEM_{i}" if i % 4 == 2 else i for i in range(12)]
    config = {"2": {"b": "env://B", "a": ["x", {"z": "env://Z", "10": "env://TEN"}]},
              "10": items, "k": "env://K", "plain": "not a reference"}
    expected = walk(config)
    assert expected[:4] == [("10", "2"), ("10", "6"), ("10", "10"), ("2", "a", "1", "10")]
    for shape in (config, freeze(config)):
        assert [keypath for keypath, _ in references(shape)] == expected


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


def test_a_data_link_in_the_repositorys_output_is_refused(built: Project, tmp_path: Path) -> None:
    pristine = tmp_path / "pristine"
    shutil.copytree(built.root / "generated/prod", pristine)
    os.symlink(pristine, built.root / "generated/prod/..data")
    result = run(built.root, "check-env", "--env", "prod", env=clean_env(**PROD_VARS))
    assert failed_cleanly(result, 1) == (
        "generated/prod/..data: error: not written by magcfg: a ..data link is read only in "
        "an artifact directory given explicitly (a ConfigMap volume)\n")


def test_a_volumes_data_link_must_stay_in_the_volume(built: Project, tmp_path: Path) -> None:
    from tests.runtime.fixtures import KubeletWriter

    volume = tmp_path / "volume"
    prod = built.root / "generated/prod"
    KubeletWriter(volume).write({name: (prod / name).read_bytes()
                                 for name in ("config.json", "manifest.json")})
    stamp = os.readlink(volume / "..data")
    (volume / "..data").unlink()
    os.symlink(tmp_path / "volume" / stamp, volume / "..data")  # absolute: refused
    result = run(built.root, "check-env", "--env", "prod", "--artifact", str(volume),
                 env=clean_env(**PROD_VARS))
    assert failed_cleanly(result, 1) == (
        f"{volume}/..data: error: links to {str(volume / stamp)!r}, not to a '..<version>' "
        "directory beside it: a ..data link must stay in the artifact directory\n")
    (volume / "..data").unlink()
    os.symlink(stamp, volume / "..data")
    (volume / stamp / "config.json").write_bytes(b"{}\n")
    result = run(built.root, "check-env", "--env", "prod", "--artifact", str(volume),
                 env=clean_env(**PROD_VARS))
    assert failed_cleanly(result, 1) == (  # the file read, not the link beside it
        f"{volume}/..data/config.json: error: config.json does not match the digest in "
        "manifest.json (torn or tampered artifact)\n")


# ---------------------------------------------------------------- constraints on the values

SIGNING = "CANARY-Ab3dE" + "f" * 27  # 39 characters: meets minLength 32 and the pattern
CONSTRAINED_VARS = {**PROD_VARS, "MAGCFG_MAGDS_PASSWORD": SIGNING}
CONSTRAINTS = {
    "magds.password": {"minLength": 32, "pattern": "^CANARY-[A-Za-z0-9]+$"},
    "magws.app_secret": {"maxLength": 16},
    "magbackup.creds.*": {"enum": ["CANARY-a", "CANARY-b"]},
}


def constrained(root: Path, constraints: dict[str, dict[str, object]] | None = None) -> Project:
    """The secrets project with ``x-magcfg-secret-value`` on some secret keys, built."""
    from .project import SCHEMA

    schema = json.loads(json.dumps(SCHEMA))
    props = schema["properties"]
    for glob, rules in (CONSTRAINTS if constraints is None else constraints).items():
        app, key, *rest = glob.split(".")
        node = props[app]["properties"][key]
        if rest:
            node = node["additionalProperties"]
        node["x-magcfg-secret-value"] = rules
    project = make(root)
    project.write("schemas/schema.json", json.dumps(schema, indent=2))
    project.write("layers/secrets/prod/magbackup.yaml",
                  'magbackup:\n  creds:\n    token: "vault://secret/k3s/magbackup#token"\n')
    result = project.run("build")
    assert result.returncode == 0, result.stderr
    return project


@pytest.fixture
def strict(tmp_path: Path) -> Project:
    return constrained(tmp_path / "strict")


def _all_output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def test_constraints_travel_in_the_artifact_listed_in_the_manifest(strict: Project) -> None:
    prod = strict.root / "generated/prod"
    data = json.loads((prod / "value-constraints.json").read_text())
    assert data == {"format": 1, "keys": {
        "magbackup.creds.*": {"enum": ["CANARY-a", "CANARY-b"]},
        "magds.password": {"minLength": 32, "pattern": "^CANARY-[A-Za-z0-9]+$"},
        "magws.app_secret": {"maxLength": 16}}}
    manifest = json.loads((prod / "manifest.json").read_text())
    assert "value-constraints.json" in manifest["files"]


def test_conforming_values_pass(strict: Project) -> None:
    env = clean_env(**CONSTRAINED_VARS, MAGCFG_MAGBACKUP_CREDS_TOKEN="CANARY-b")
    result = run(strict.root, "check-env", "--env", "prod", env=env)
    assert result.returncode == 0, result.stderr
    assert "all 4 secret(s) resolvable" in result.stderr
    assert "CANARY" not in _all_output(result)
    assert check_env(strict.root / "generated/prod", env).ok


def test_failing_values_are_named_by_constraint_never_shown(strict: Project) -> None:
    short = "CANARY-short"
    env = clean_env(MAGCFG_MAGDS_PASSWORD=short, MAGCFG_MAGDS_REPLICA_PASSWORD="CANARY-pw-2",
                    MAGCFG_MAGWS_APP_SECRET="CANARY-far-too-long-for-16",
                    MAGCFG_MAGBACKUP_CREDS_TOKEN="CANARY-c")
    result = run(strict.root, "check-env", "--env", "prod", env=env)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "check-env: prod: 3 secret(s) fail the schema's constraints on their value:",
        "  MAGCFG_MAGBACKUP_CREDS_TOKEN (for magbackup.creds.token, vault://): "
        "is not one of the 2 values enum allows",
        "  MAGCFG_MAGDS_PASSWORD (for magds.password, vault://): shorter than minLength 32",
        "  MAGCFG_MAGWS_APP_SECRET (for magws.app_secret, vault://): longer than maxLength 16",
    ]
    as_json = run(strict.root, "check-env", "--env", "prod", "--format", "json", env=env)
    assert as_json.returncode == 1
    data = json.loads(as_json.stdout)
    assert data["ok"] is False and data["missing"] == []
    assert data["invalid"][1] == {
        "key": "magds.password", "name": "MAGCFG_MAGDS_PASSWORD", "scheme": "vault",
        "failed": [{"constraint": "minLength", "message": "shorter than minLength 32"}]}
    for out in (result, as_json):
        text = _all_output(out)
        # The values (canaries) never appear, nor the length of the short one.
        assert "CANARY-short" not in text and "CANARY-far" not in text
        assert "CANARY-c" not in text and str(len(short)) not in text


def test_pattern_mismatch_is_named(strict: Project) -> None:
    wrong = "CANARY-has spaces and is long enough to pass"
    env = clean_env(**{**CONSTRAINED_VARS, "MAGCFG_MAGDS_PASSWORD": wrong})
    result = run(strict.root, "check-env", "--env", "prod", env=env)
    assert result.returncode == 1
    assert ("  MAGCFG_MAGDS_PASSWORD (for magds.password, vault://): does not match pattern "
            "'^CANARY-[A-Za-z0-9]+$'") in result.stderr
    assert wrong not in _all_output(result)


def test_pattern_end_anchor_is_ecma_262s(strict: Project) -> None:
    """``$`` is the end of the value (Python's own ``$`` also matches before a final
    newline): a key with a trailing newline fails ``^...$``."""
    failing = check_env(strict.root / "generated/prod",
                        {**CONSTRAINED_VARS, "MAGCFG_MAGDS_PASSWORD": SIGNING + "\n"})
    assert [(r.key, r.failed) for r in failing.invalid] == [
        ("magds.password", (("pattern", "does not match pattern '^CANARY-[A-Za-z0-9]+$'"),))]


def test_env_scheme_values_are_checked_too(tmp_path: Path) -> None:
    project = constrained(tmp_path / "sp", {"magds.password": {"minLength": 32}})
    dev = project.root / "generated/dev"
    assert check_env(dev, {"DEV_DB_PASSWORD": SIGNING}).ok
    result = run(project.root, "check-env", "--env", "dev",
                 env=clean_env(DEV_DB_PASSWORD="CANARY-dev"))
    assert result.returncode == 1
    assert ("DEV_DB_PASSWORD (for magds.password, env://): shorter than minLength 32"
            in result.stderr)
    assert "CANARY" not in _all_output(result)


@pytest.mark.parametrize("how", ["weakened", "removed", "unlisted"])
def test_tampered_constraints_are_refused(strict: Project, how: str) -> None:
    prod = strict.root / "generated/prod"
    path = prod / "value-constraints.json"
    if how == "weakened":  # a lower minLength would let the short key through
        path.write_text(path.read_text().replace('"minLength": 32', '"minLength": 1'))
    elif how == "removed":
        path.unlink()
    else:  # dropped from the manifest: its config digest still agrees, not its files
        manifest = prod / "manifest.json"
        data = json.loads(manifest.read_text())
        del data["files"]["value-constraints.json"]
        manifest.write_text(json.dumps(data))
    env = clean_env(**{**CONSTRAINED_VARS, "MAGCFG_MAGDS_PASSWORD": "CANARY-short"})
    result = run(strict.root, "check-env", "--env", "prod", env=env)
    assert result.returncode == 1
    if how == "weakened":
        assert failed_cleanly(result, 1) == (
            "generated/prod/value-constraints.json: error: value-constraints.json does not "
            "match the digest in manifest.json "
            "(torn or tampered artifact)\n")
    elif how == "removed":
        assert "cannot read the artifact" in result.stderr
    else:
        # What the manifest no longer lists is not checked: only the signature over the
        # manifest (magcfg verify, the runtime kernel) catches an edited manifest.
        assert "shorter than minLength" not in result.stderr
    assert "CANARY" not in _all_output(result)


def edit_constraints(project: Project, old: str, new: str) -> Path:
    """Edit prod's value-constraints.json and its digest in the (unsigned) manifest, as
    an artifact directory can be edited: check-env does not verify signatures."""
    import hashlib

    prod = project.root / "generated/prod"
    path = prod / "value-constraints.json"
    path.write_text(path.read_text().replace(old, new))
    manifest = prod / "manifest.json"
    data = json.loads(manifest.read_text())
    data["files"]["value-constraints.json"] = "sha256:" + hashlib.sha256(
        path.read_bytes()).hexdigest()
    manifest.write_text(json.dumps(data))
    return path


def test_malformed_constraints_are_refused_clearly(strict: Project) -> None:
    path = edit_constraints(strict, '"minLength": 32', '"minLength": "32"')
    result = run(strict.root, "check-env", "--env", "prod", env=clean_env(**CONSTRAINED_VARS))
    assert failed_cleanly(result, 1) == (
        f"{path.relative_to(strict.root)}: error: must be an integer, not a string "
        '[keys["magds.password"].minLength]\n')


def test_constraints_build_is_deterministic(tmp_path: Path) -> None:
    a = constrained(tmp_path / "a")
    b = constrained(tmp_path / "b")
    for env in ("dev", "prod"):
        for name in ("value-constraints.json", "manifest.json", "configmap.yaml"):
            assert ((a.root / "generated" / env / name).read_bytes()
                    == (b.root / "generated" / env / name).read_bytes()), (env, name)
    before = {p.name: p.read_bytes() for p in (a.root / "generated/prod").iterdir()}
    assert a.run("build").returncode == 0  # a rebuild from the cache: the same bytes
    assert {p.name: p.read_bytes() for p in (a.root / "generated/prod").iterdir()} == before


def test_no_constraints_no_file(built: Project) -> None:
    assert not (built.root / "generated/prod/value-constraints.json").exists()


def _schema_refusal(tmp_path: Path, rules: object, key: str = "password") -> str:
    from .project import SCHEMA

    project = make(tmp_path / "bad")
    schema = json.loads(json.dumps(SCHEMA))
    schema["properties"]["magds"]["properties"][key]["x-magcfg-secret-value"] = rules
    text = json.dumps(schema, indent=2)
    project.write("schemas/schema.json", text)
    result = project.run("build")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    return result.stderr


def _line(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_a_pattern_python_cannot_compile_is_a_located_build_error(tmp_path: Path) -> None:
    stderr = _schema_refusal(tmp_path, {"pattern": "^(?<name>[a-z]+)$"})
    text = (tmp_path / "bad/schemas/schema.json").read_text()
    line = _line(text, "(?<name>")
    assert stderr.startswith(f"schemas/schema.json:{line}: error: pattern '^(?<name>[a-z]+)$' "
                             "is not a regular expression magcfg can check")
    assert "[#/properties/magds/properties/password/x-magcfg-secret-value/pattern]" in stderr


def test_constraints_that_are_not_exactly_documented_are_build_errors(tmp_path: Path) -> None:
    stderr = _schema_refusal(tmp_path, {"minLength": -1})
    assert "x-magcfg-secret-value must be an object of constraints" in stderr
    stderr = _schema_refusal(tmp_path / "2", {"format": "base64"})
    assert "x-magcfg-secret-value must be an object of constraints" in stderr
    stderr = _schema_refusal(tmp_path / "3", {"minLength": 8}, key="host")
    assert "x-magcfg-secret-value on magds.host, which is not secret" in stderr


def test_a_catastrophic_pattern_cannot_hang_check_env(tmp_path: Path) -> None:
    """``^(.+)+Z`` backtracks 2^n times in Python's re on a value without a Z: the check
    at start-up must finish (``run`` gives up after 60 s)."""
    project = constrained(tmp_path / "sp", {"magds.password": {"pattern": "^(.+)+Z"}})
    value = "CANARY-" + "a" * 3000
    result = run(project.root, "check-env", "--env", "prod",
                 env=clean_env(**{**CONSTRAINED_VARS, "MAGCFG_MAGDS_PASSWORD": value}))
    assert failed_cleanly(result, 1).endswith(
        "  MAGCFG_MAGDS_PASSWORD (for magds.password, vault://): does not match pattern "
        "'^(.+)+Z'\n")
    assert "CANARY" not in _all_output(result)


def test_a_backtracking_pattern_in_an_edited_artifact_is_refused(strict: Project) -> None:
    """check-env does not check the signature: an edited value-constraints.json with its
    digest in an edited manifest is read, and a pattern needing backtracking refused."""
    path = edit_constraints(strict, '"^CANARY-[A-Za-z0-9]+$"', '"^(a)\\\\1$"')
    result = run(strict.root, "check-env", "--env", "prod", env=clean_env(**CONSTRAINED_VARS))
    assert failed_cleanly(result, 1) == (
        f"{path.relative_to(strict.root)}: error: is not a regular expression magcfg can "
        "check (uses a backreference, "
        "which magcfg does not check (secret values are checked without backtracking)) "
        '[keys["magds.password"].pattern]\n')


def test_a_pattern_needing_backtracking_is_a_located_build_error(tmp_path: Path) -> None:
    stderr = _schema_refusal(tmp_path, {"pattern": "^(?=[a-z])\\w+$"})
    text = (tmp_path / "bad/schemas/schema.json").read_text()
    line = _line(text, "(?=[a-z])")
    assert stderr.startswith(
        f"schemas/schema.json:{line}: error: pattern '^(?=[a-z])\\\\w+$' is not a regular "
        "expression magcfg can check (uses a lookaround, which magcfg does not check (secret "
        "values are checked without backtracking))")


def test_the_deployment_of_the_docs_starts_with_its_own_app_s_secret_alone(
        tmp_path: Path) -> None:
    """docs/secrets.md's Deployment, as Kubernetes runs it: the ConfigMap it names mounted
    where it says (the kubelet's layout), the env vars its secretKeyRefs take from the
    Secret ESO makes of that app's ExternalSecret, and its container's command. The
    entrypoint's check-env passes and execs the app; it asked for every secret of the
    environment, the other apps' Secrets too, and the pod never started."""
    import re

    import yaml

    from ..conftest import REPO
    from ..runtime.fixtures import KubeletWriter

    text = (REPO / "docs/secrets.md").read_text()
    (deployment,) = [doc for block in re.findall(r"```yaml\n(.*?)```", text, re.S)
                     for doc in yaml.safe_load_all(block)
                     if isinstance(doc, dict) and doc.get("kind") == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    (volume,) = pod["volumes"]
    (mount,) = container["volumeMounts"]
    assert mount["name"] == volume["name"]
    environment = volume["configMap"]["name"].removeprefix("magcfg-")
    generated = REPO / "generated" / environment
    configmap = yaml.safe_load((generated / "configmap.yaml").read_text())
    assert configmap["metadata"]["name"] == volume["configMap"]["name"]
    mounted = tmp_path / "volume"
    KubeletWriter(mounted).write({name: data.encode() for name, data in configmap["data"].items()})
    secrets = {doc["spec"]["target"]["name"]: {item["secretKey"]: f"CANARYdeploy{n}x{i}"
                                               for i, item in enumerate(doc["spec"]["data"])}
               for n, doc in enumerate(yaml.safe_load_all((generated / "externalsecret.yaml")
                                                          .read_text())) if doc}
    given = {var["name"]: secrets[ref["name"]][ref["key"]] for var in container["env"]
             for ref in [var["valueFrom"]["secretKeyRef"]]}
    assert len(secrets) > 1 and len(given) == 1  # the app's own Secret, of several
    app = tmp_path / "bin" / container["name"]
    app.parent.mkdir()
    app.write_text(f"#!/bin/sh\necho {container['name']} started\n")
    app.chmod(0o755)
    *shell, script = container["command"]
    command = [*shell, script.replace(mount["mountPath"], str(mounted))]
    path = f"{app.parent}{os.pathsep}{MAGCFG.parent}{os.pathsep}{os.environ['PATH']}"
    started = subprocess.run(command, capture_output=True, text=True, timeout=60,
                             env=clean_env(PATH=path, **given))
    assert (started.returncode, started.stdout) == (0, f"{container['name']} started\n"), \
        started.stderr
    assert "CANARY" not in started.stderr
    # Its own secret not delivered: the entrypoint stops the pod, naming the variable.
    (name,) = given
    stopped = subprocess.run(command, capture_output=True, text=True, timeout=60,
                             env=clean_env(PATH=path))
    assert stopped.returncode == 1 and stopped.stdout == ""
    assert f"  {name}  (for " in stopped.stderr


def test_a_key_that_covers_no_key_of_the_config_is_a_usage_error(built: Project) -> None:
    result = run(built.root, "check-env", "--env", "prod", "--key", "magsd", "--key", "magds",
                 env=clean_env(**PROD_VARS))
    assert failed_cleanly(result, 2) == (
        "error: --key magsd: covers no key of prod's config (a key path or glob: magds, "
        "'magds.*'; a key covers the keys below it)\n")
    only = run(built.root, "check-env", "--env", "prod", "--key", "magws", "--format", "json",
               env=clean_env(MAGCFG_MAGWS_APP_SECRET="CANARY-pw-3"))
    assert only.returncode == 0, only.stderr
    assert json.loads(only.stdout)["required"] == 1
