"""Secret references, the build's secret rules, and the emitted ExternalSecret / Vault policy."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

import magcfg
from magcfg.errors import BuildError, Diagnostic
from magcfg.pipeline.cache import BuildCache
from magcfg.secrets.redaction import REDACTED, Redactor
from magcfg.secrets.references import (
    SecretRef,
    env_var_name,
    looks_like_reference,
    parse_reference,
    references,
)

from ..conftest import REPO, Project
from .project import PROJECT, make

ESO_SCHEMA = json.loads((Path(__file__).parent / "data/externalsecret-v1.schema.json").read_text())
CANARY = "CANARY-9f8e7d-s3cr3t"


@pytest.fixture
def sp(tmp_path: Path) -> Project:
    return make(tmp_path / "sp")


def build_errors(project: Project) -> list[Diagnostic]:
    with pytest.raises(BuildError) as info:
        magcfg.build(magcfg.load_project(project.root / "magcfg.yaml"), cache=BuildCache(None))
    return info.value.diagnostics


def one_error(project: Project) -> Diagnostic:
    errors = build_errors(project)
    assert len(errors) == 1, errors
    return errors[0]


# -- references ---------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("vault://secret/k3s/magds#db_password",
     SecretRef("vault", mount="secret", path="k3s/magds", key="db_password")),
    ("vault://kv-2/a/b.c/d_e#k.e-y",
     SecretRef("vault", mount="kv-2", path="a/b.c/d_e", key="k.e-y")),
    ("vault+direct://secret/k3s/magbackup#token",
     SecretRef("vault+direct", mount="secret", path="k3s/magbackup", key="token")),
    ("env://MAGFLOCK_DB_PASSWORD", SecretRef("env", var="MAGFLOCK_DB_PASSWORD")),
    ("env://_X1", SecretRef("env", var="_X1")),
])
def test_parse_reference(text: str, expected: SecretRef) -> None:
    ref = parse_reference(text)
    assert ref == expected
    assert str(ref) == text
    assert looks_like_reference(text)


@pytest.mark.parametrize("text", [
    "vault://secret/k3s/magds", "vault://secret#key", "vault://Secret/k3s#k", "vault://secret/#k",
    "vault://secret/k3s/magds#", "vault://secret/k3s/magds#a#b", "vault://secret/k 3s#k",
    "env://lower", "env://1X", "env://", "env://A-B", "vault+direct://secret#k",
    "hunter2", "", "https://example.com/x#y",
    "vault://secret/k3s/../x#k", "vault://secret/./x#k", "vault://secret/k3s/..#k",
    "vault+direct://secret/..#k",
])
def test_malformed_references_are_none(text: str) -> None:
    assert parse_reference(text) is None


@given(st.from_regex(r"[a-z0-9][a-z0-9_-]{0,8}", fullmatch=True),
       st.lists(st.from_regex(r"[A-Za-z0-9._-]{1,8}", fullmatch=True).filter(
           lambda segment: segment not in (".", "..")), min_size=1, max_size=4),
       st.from_regex(r"[A-Za-z0-9._-]{1,8}", fullmatch=True), st.booleans())
def test_vault_reference_round_trip(mount: str, path: list[str], key: str, direct: bool) -> None:
    scheme = "vault+direct" if direct else "vault"
    text = f"{scheme}://{mount}/{'/'.join(path)}#{key}"
    ref = parse_reference(text)
    assert ref is not None and str(ref) == text
    assert ref.kv_data_path == f"{mount}/data/{'/'.join(path)}"


def test_env_var_names_are_deterministic_and_valid() -> None:
    assert env_var_name(("magds", "connection", "password")) == "MAGCFG_MAGDS_CONNECTION_PASSWORD"
    assert env_var_name(("my-app", "api.key", "0")) == "MAGCFG_MY_APP_API_KEY_0"
    assert re.fullmatch(r"[A-Z_][A-Z0-9_]*", env_var_name(("a-b", "c__d", "é")))


def test_references_walks_only_well_formed_refs_in_key_order() -> None:
    config = {"b": {"x": "vault://secret/k3s/b#k"}, "a": ["env://A", "plain", "vault://bad"]}
    assert [(".".join(k), str(r)) for k, r in references(config)] == [
        ("a.0", "env://A"), ("b.x", "vault://secret/k3s/b#k")]


# -- the build's rules --------------------------------------------------------------------

def test_literal_in_secret_key_is_located_and_never_echoed(sp: Project) -> None:
    sp.write("layers/secrets/prod/magws.yaml", f"magws:\n  app_secret: {CANARY}\n")
    before = sp.snapshot_tree()
    d = one_error(sp)
    assert (d.file, d.line, d.key, d.code) == (
        "layers/secrets/prod/magws.yaml", 2, "magws.app_secret", "secret-literal")
    assert CANARY not in d.message
    result = sp.run("build")
    assert result.returncode == 1
    assert "layers/secrets/prod/magws.yaml:2: error:" in result.stderr
    assert CANARY not in result.stdout + result.stderr
    assert sp.snapshot_tree() == before


@pytest.mark.parametrize("value", [f"vault://{CANARY}", f"vault://secret/{CANARY}",
                                   f"env://{CANARY}", f"vault+direct://secret/k3s/magws#{CANARY}#x"])
def test_malformed_reference_is_refused_without_quoting_it(sp: Project, value: str) -> None:
    sp.write("layers/secrets/prod/magws.yaml", f'magws:\n  app_secret: "{value}"\n')
    d = one_error(sp)
    assert (d.file, d.line, d.key, d.code) == (
        "layers/secrets/prod/magws.yaml", 2, "magws.app_secret", "secret-syntax")
    assert CANARY not in d.message


def test_literal_inside_a_secret_map(sp: Project) -> None:
    sp.write("layers/secrets/prod/magbackup.yaml",
             'magbackup:\n  creds:\n    id: "vault://secret/k3s/magbackup#id"\n    pin: 4242\n')
    d = one_error(sp)
    assert (d.file, d.line, d.key, d.code) == (
        "layers/secrets/prod/magbackup.yaml", 4, "magbackup.creds.pin", "secret-literal")
    assert "4242" not in d.message


@pytest.mark.parametrize("higher", [
    'magbackup:\n  creds:\n    pin: "vault://secret/k3s/magbackup#pin"\n',
    'magbackup: !replace\n  creds:\n    id: "vault://secret/k3s/magbackup#id"\n',
    "magbackup:\n  creds: !unset\n"])
def test_a_literal_a_higher_layer_hides_is_still_refused(sp: Project, higher: str) -> None:
    # Overridden, replaced with its parent, or unset: no environment serves the literal,
    # but it is committed in the lower layer, where the build names it.
    sp.write("layers/base/magbackup.yaml", "magbackup:\n  creds:\n    pin: 4242\n")
    for env in ("dev", "prod"):
        sp.write(f"layers/secrets/{env}/magbackup.yaml", higher)
    errors = [d for d in build_errors(sp) if d.code == "secret-literal"]
    assert [(d.file, d.line, d.key) for d in errors] == [
        ("layers/base/magbackup.yaml", 3, "magbackup.creds.pin")]
    assert ("(a higher layer overrides it, but the literal is committed here) "
            "(environments dev, prod)") in errors[0].message
    assert "4242" not in errors[0].message


def test_a_literal_inside_a_replace_is_still_refused(sp: Project) -> None:
    # What a !replace holds is committed like any value.
    sp.write("layers/base/magbackup.yaml", "magbackup:\n  creds: !replace\n    pin: 4242\n")
    for env in ("dev", "prod"):
        sp.write(f"layers/secrets/{env}/magbackup.yaml",
                 'magbackup:\n  creds:\n    pin: "vault://secret/k3s/magbackup#pin"\n')
    errors = [d for d in build_errors(sp) if d.code == "secret-literal"]
    assert [(d.file, d.line, d.key) for d in errors] == [
        ("layers/base/magbackup.yaml", 3, "magbackup.creds.pin")]
    assert "4242" not in errors[0].message


def test_reference_in_a_plain_key(sp: Project) -> None:
    sp.write("layers/secrets/prod/magws.yaml", 'magws:\n  url: "vault://secret/k3s/magws#url"\n')
    d = one_error(sp)
    assert (d.line, d.key, d.code) == (2, "magws.url", "secret-misplaced")
    assert "x-magcfg-secret" in d.message


@pytest.mark.parametrize(("ref", "fragment"), [
    ("vault://kv/k3s/magws#k", "mount 'kv' is not allowed"),
    ("vault://secret/apps/magws#k", "path must be <prefix><app>"),
    ("vault://secret/k3s/#k", "malformed vault:// reference"),
    ("vault://secret/k3s#k", "path must be <prefix><app>"),
    ("vault://secret/k3s/magds#db_password", "Vault path of app 'magds' from a key of 'magws'"),
    ("vault://other/k3s/magws#k", "through store 'vault-backend'"),
    ("vault+direct://secret/k3s/magws#k", "opt 'magws' in to Direct-Vault"),
])
def test_reference_rules(sp: Project, ref: str, fragment: str) -> None:
    sp.write("layers/secrets/prod/magws.yaml", f'magws:\n  app_secret: "{ref}"\n')
    d = one_error(sp)
    assert (d.file, d.line, d.key) == ("layers/secrets/prod/magws.yaml", 2, "magws.app_secret")
    assert fragment in d.message


@pytest.mark.parametrize("ref", [
    "vault://secret/k3s/magws/../magds#db_password",  # magds's secret, from magws's key
    "vault://secret/k3s/magws/./x#k", "vault://secret/k3s/magws/..#k",
    "vault+direct://secret/k3s/magws/../magds#db_password",
])
def test_a_path_segment_of_dots_is_refused(sp: Project, ref: str) -> None:
    # Vault resolves `..` (OpenBao's dev server serves k3s/magds for k3s/magws/../magds):
    # a store token that reads k3s/* would deliver magds's password into magws's Secret,
    # past the rule that an app reads only <prefix><app> and below.
    sp.write("layers/secrets/prod/magws.yaml", f'magws:\n  app_secret: "{ref}"\n')
    before = sp.snapshot_tree()
    d = one_error(sp)
    scheme = ref.split(":", 1)[0]
    assert (d.file, d.line, d.key, d.code) == (
        "layers/secrets/prod/magws.yaml", 2, "magws.app_secret", "secret-syntax")
    assert d.message == (f"a {scheme}:// path has no '.' or '..' segment: Vault reads the "
                         "path they lead to, not the one written, which the app and "
                         "isolation rules and the policies judge")
    assert sp.snapshot_tree() == before


def test_env_var_name_clash(sp: Project) -> None:
    sp.write("layers/secrets/prod/magbackup.yaml",
             'magbackup:\n  creds:\n    a-b: "vault://secret/k3s/magbackup#x"\n'
             '    a_b: "vault://secret/k3s/magbackup#y"\n')
    d = one_error(sp)
    assert d.code == "secret-env-clash" and "MAGCFG_MAGBACKUP_CREDS_A_B" in d.message


def test_direct_vault_opt_in(sp: Project) -> None:
    sp.write("layers/secrets/prod/magbackup.yaml",
             'magbackup:\n  key: "vault+direct://secret/k3s/magbackup/s3#secret_key"\n')
    assert "opt 'magbackup' in" in one_error(sp).message
    sp.write("magcfg.yaml", PROJECT.replace("redact:", (
        "  direct_vault:\n    - app: magbackup\n"
        "      justification: rotates its S3 keys itself through Vault's AWS engine\n"
        "redact:")))
    result = magcfg.build(magcfg.load_project(sp.root / "magcfg.yaml"), cache=BuildCache(None))
    files = result.artifacts["prod"].files
    direct = files["vault-policy-direct-magbackup.hcl"].decode()
    assert 'path "secret/data/k3s/magbackup" {' in direct
    assert 'path "secret/data/k3s/magbackup/*" {' in direct
    assert "rotates its S3 keys" in direct
    # neither the store's policy nor the ExternalSecret carries the Direct-Vault path
    assert "magbackup" not in files["vault-policy.hcl"].decode()
    assert "magbackup" not in files["externalsecret.yaml"].decode()
    manifest = json.loads(files["manifest.json"])
    assert "vault-policy-direct-magbackup.hcl" in manifest["files"]


@pytest.mark.parametrize(("section", "key", "fragment"), [
    ("secrets:\n  vault: {mounts: [Bad!]}\n", "secrets.vault.mounts", "mount names"),
    ("secrets:\n  vault: {path_prefixes: [k3s]}\n", "secrets.vault.path_prefixes", "ending in '/'"),
    ('secrets:\n  vault: {path_prefixes: ["k3s/{env}/../"]}\n', "secrets.vault.path_prefixes",
     "is never '.' or '..'"),
    ('secrets:\n  vault: {path_prefixes: ["./k3s/"]}\n', "secrets.vault.path_prefixes",
     "is never '.' or '..'"),
    ("secrets:\n  store: {kind: Vault}\n", "secrets.store.kind", "ClusterSecretStore"),
    ("secrets:\n  refresh_interval: hourly\n", "secrets.refresh_interval", "Go duration"),
    ("secrets:\n  target_name: fixed\n", "secrets.target_name", "{app}"),
    ("secrets:\n  stor: {}\n", "secrets.stor", "did you mean 'store'"),
    ("secrets:\n  direct_vault:\n    - app: magds\n", "secrets.direct_vault.0.justification",
     "needs a written justification"),
    ("redact: magds.user\n", "redact", "list of strings"),
])
def test_bad_secrets_section_is_located(tmp_path: Path, section: str, key: str, fragment: str) -> None:
    base = PROJECT.split("secrets:\n")[0]
    p = make(tmp_path / "p", base + section)
    errors = build_errors(p)
    ours = [d for d in errors if d.key == key]
    assert ours, errors
    assert ours[0].file == "magcfg.yaml" and ours[0].line is not None
    assert fragment in ours[0].message


# -- emitted files ------------------------------------------------------------------------

def _bundled_artifacts() -> dict[str, dict[str, bytes]]:
    result = magcfg.build(magcfg.load_project(REPO / "magcfg.yaml"), check=True, cache=BuildCache(None))
    return {env: a.files for env, a in result.artifacts.items()}


def test_bundled_external_secrets_match_the_eso_crd_schema() -> None:
    artifacts = _bundled_artifacts()
    for env in ("staging", "production"):
        docs = [d for d in yaml.safe_load_all(artifacts[env]["externalsecret.yaml"]) if d]
        assert len(docs) == 6  # one per app with secrets
        keys = {}
        for doc in docs:
            jsonschema.validate(doc, ESO_SCHEMA)
            assert doc["spec"]["secretStoreRef"] == {"kind": "ClusterSecretStore", "name": "vault-backend"}
            assert doc["spec"]["refreshInterval"] == "1h"
            assert doc["spec"]["target"]["name"] == doc["metadata"]["name"]
            for item in doc["spec"]["data"]:
                keys[item["secretKey"]] = item["remoteRef"]
        assert keys["MAGCFG_MAGDS_CONNECTION_PASSWORD"] == {"key": f"k3s/{env}/magds",
                                                            "property": "db_password"}
        assert keys["MAGCFG_MAGSENTINEL_NOTIFY_WEBHOOK_URL"] == {
            "key": f"k3s/{env}/magsentinel", "property": "slack_webhook_url"}
        assert len(keys) == 7
        assert all(not r["key"].startswith(("secret/", "data/")) and "/data/" not in r["key"]
                   for r in keys.values())
    dev = artifacts["dev"]["externalsecret.yaml"].decode()
    assert [d for d in yaml.safe_load_all(dev) if d] == []
    assert "no vault:// references" in dev


def test_eso_schema_rejects_what_eso_would_reject() -> None:
    doc = next(d for d in yaml.safe_load_all(_bundled_artifacts()["staging"]["externalsecret.yaml"]) if d)
    bad = json.loads(json.dumps(doc))
    bad["spec"]["data"][0]["secretKey"] = "has space"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, ESO_SCHEMA)
    bad = json.loads(json.dumps(doc))
    bad["apiVersion"] = "external-secrets.io/v1beta1"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, ESO_SCHEMA)


def _deployment(external_secret: dict) -> dict:  # type: ignore[type-arg]
    """The Deployment docs/secrets.md shows: one env var per data entry via secretKeyRef."""
    target = external_secret["spec"]["target"]["name"]
    app = external_secret["metadata"]["labels"]["app.kubernetes.io/name"]
    env = [{"name": item["secretKey"],
            "valueFrom": {"secretKeyRef": {"name": target, "key": item["secretKey"]}}}
           for item in external_secret["spec"]["data"]]
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": app},
        "spec": {"selector": {"matchLabels": {"app": app}}, "template": {
            "metadata": {"labels": {"app": app}},
            "spec": {"containers": [{
                "name": app, "image": f"registry.example/{app}:1",
                "command": ["sh", "-c", "magcfg check-env --env production && exec serve"],
                "env": env}]}}},
    }


def test_secret_and_deployment_built_from_the_manifests_are_valid_kubernetes() -> None:
    manifests = _bundled_artifacts()["production"]["externalsecret.yaml"]
    for doc in (d for d in yaml.safe_load_all(manifests) if d):
        secret = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                  "metadata": {"name": doc["spec"]["target"]["name"]},
                  "stringData": {item["secretKey"]: "x" for item in doc["spec"]["data"]}}
        kubernetes_validate.validate(secret, "1.33", strict=True)
        kubernetes_validate.validate(_deployment(doc), "1.33", strict=True)
        kubernetes_validate.validate({"apiVersion": "v1", "kind": "ConfigMap",
                                      "metadata": doc["metadata"], "data": {}}, "1.33", strict=True)


def test_vault_policy_grants_exact_and_subpaths_only() -> None:
    for env in ("staging", "production"):
        hcl = _bundled_artifacts()[env]["vault-policy.hcl"].decode()
        paths = re.findall(r'^path "([^"]+)" \{\n  capabilities = \["read"\]\n\}$', hcl, re.MULTILINE)
        assert len(paths) == 12 and len(set(paths)) == 12
        apps = {"magds", "magws", "magauth", "magmqtt", "magbackup", "magsentinel"}
        assert set(paths) == ({f"secret/data/k3s/{env}/{a}" for a in apps}
                              | {f"secret/data/k3s/{env}/{a}/*" for a in apps})
        assert not re.search(r'"[^"]*[^/]\*"', hcl)  # never "<app>*"
        assert hcl.count("path ") == hcl.count('capabilities = ["read"]')


def test_secret_files_are_deterministic(sp: Project, tmp_path: Path) -> None:
    assert sp.run("build").returncode == 0
    first = sp.snapshot_tree()
    other = Project(tmp_path / "else" / "where")
    shutil.copytree(sp.root, other.root, ignore=shutil.ignore_patterns("generated", ".magcfg-cache"))
    # Reordered layer files give the same bytes: emission is sorted, not in file order.
    text = (other.root / "layers/secrets/prod/magds.yaml").read_text().splitlines()
    (other.root / "layers/secrets/prod/magds.yaml").write_text("\n".join([text[0], text[2], text[1]]) + "\n")
    result = other.run("build", env={"TZ": "Asia/Tokyo", "HOSTNAME": "x", "LC_ALL": "C"})
    assert result.returncode == 0, result.stderr
    second = other.snapshot_tree()
    for name in ("prod/externalsecret.yaml", "prod/vault-policy.hcl", "dev/externalsecret.yaml"):
        assert first[name] == second[name]


def test_project_without_secrets_gets_no_secret_files(mini: Project) -> None:
    assert mini.run("build").returncode == 0
    names = {p.name for p in (mini.root / "generated/dev").iterdir()}
    assert "config.json" in names
    assert not names & {"externalsecret.yaml", "vault-policy.hcl"}


def test_config_json_keeps_references(sp: Project) -> None:
    result = magcfg.build(magcfg.load_project(sp.root / "magcfg.yaml"), cache=BuildCache(None))
    assert result.artifacts["prod"].config["magds"]["password"] == "vault://secret/k3s/magds#db_password"


# -- redaction ----------------------------------------------------------------------------

def test_redactor_globs_and_schema_secrets(sp: Project) -> None:
    project = magcfg.load_project(sp.root / "magcfg.yaml")
    from magcfg.compiler import Compiler

    redactor = Compiler(project, cache=BuildCache(None)).redactor()
    assert redactor.is_secret(("magds", "password"))          # schema
    assert redactor.is_secret(("magds", "user"))              # redact: glob
    assert redactor.is_secret(("magbackup", "creds", "any"))  # secret ancestor
    assert not redactor.is_secret(("magds", "host"))
    shown = redactor.value(("magds",), {"host": "db", "user": "u", "password": "vault://x/y#z"})
    assert shown == {"host": "db", "user": REDACTED, "password": REDACTED}


def test_changed_secret_shows_that_it_changed() -> None:
    r = Redactor(None, ["**.password"])
    change = r.change(("db", "password"), "vault://secret/k3s/db#v1", "vault://secret/k3s/db#v2")
    assert change is not None and change.secret
    assert (change.old, change.new) == (REDACTED, REDACTED)
    assert r.change(("db", "password"), "vault://a/b#c", "vault://a/b#c") is None
    plain = r.change(("db", "host"), "a", "b")
    assert plain is not None and (plain.old, plain.new, plain.secret) == ("a", "b", False)
    nested = r.change(("db",), {"password": "x"}, {"password": "y"})
    assert nested is not None and nested.secret and nested.new == {"password": REDACTED}


def test_explain_redacts_glob_keys(sp: Project) -> None:
    result = sp.run("explain", "magds.user", "--env", "prod")
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert first.startswith(f'magds.user = "{REDACTED}"') and "; secret]" in first
    assert '"magds"' not in result.stdout


def test_schema_errors_on_glob_keys_do_not_echo(sp: Project) -> None:
    sp.write("layers/base/magds.yaml", f"magds:\n  host: db\n  user: [{CANARY}]\n")
    errors = build_errors(sp)
    assert any(d.key == "magds.user" for d in errors)
    assert all(CANARY not in d.message for d in errors)


def test_schema_error_on_a_map_holding_a_secret_does_not_echo(sp: Project) -> None:
    sp.write("layers/secrets/prod/magbackup.yaml", f"magbackup:\n  creds:\n    token: [{CANARY}]\n")
    errors = build_errors(sp)
    assert errors and all(CANARY not in d.message for d in errors)


@pytest.mark.parametrize(("value", "code"), [("0755123", "ambiguous"), ("yes", "ambiguous")])
def test_load_errors_on_secret_keys_do_not_echo(sp: Project, value: str, code: str) -> None:
    sp.write("layers/secrets/prod/magws.yaml", f"magws:\n  app_secret: {value}\n")
    errors = build_errors(sp)
    d = next(e for e in errors if e.key == "magws.app_secret")
    assert d.code == code and d.line == 2
    assert value not in d.message and REDACTED in d.message


def test_names_kubernetes_cannot_take_are_refused(tmp_path: Path) -> None:
    long_name = PROJECT.replace('target_name: "{app}-secrets"', f'target_name: "{"x" * 250}-{{app}}"')
    d = next(e for e in build_errors(make(tmp_path / "a", long_name)) if e.key == "magws.app_secret")
    assert "not a Kubernetes object name" in d.message and d.line == 2
    bad_app = PROJECT.replace("redact:", "  direct_vault:\n    - app: ../etc\n"
                              "      justification: a justification long enough\nredact:")
    errors = build_errors(make(tmp_path / "b", bad_app))
    assert any(e.key == "secrets.direct_vault.0.app" and e.file == "magcfg.yaml" for e in errors)


def test_without_a_json_schema_references_are_still_checked(tmp_path: Path) -> None:
    """A CUE-only project: magcfg cannot tell secret keys, but every reference it finds is
    checked and delivered."""
    p = make(tmp_path / "cue", PROJECT.replace("  json: schemas/schema.json", "  cue: schemas/schema.cue"))
    p.write("schemas/schema.cue", "#Config: {\n\tmagds: {...}\n\tmagws: {...}\n\t...\n}\n")
    result = magcfg.build(magcfg.load_project(p.root / "magcfg.yaml"), cache=BuildCache(None))
    assert b"MAGCFG_MAGWS_APP_SECRET" in result.artifacts["prod"].files["externalsecret.yaml"]
    p.write("layers/secrets/prod/magws.yaml", 'magws:\n  app_secret: "vault://kv/k3s/magws#x"\n')
    d = one_error(p)
    assert (d.line, d.key) == (2, "magws.app_secret") and "mount 'kv'" in d.message
