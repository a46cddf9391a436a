"""Layouts as they are: layers mapped from file patterns with a key prefix
(``files: services/{service}/base.yaml``, ``key: "{service}"``), end to end: build,
provenance, errors at the real file and line, promote writing back to mapped files, and
the mapping API (``LayerSpec.key_prefix``/``file_for``, ``Project.mapping``)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from magcfg.project import LayerSpec, load_project

from .conftest import Project, failed_cleanly, finishes_in_a_child, tree_state

SERVICE_PROJECT = """\
version: 1
environments: [dev, prod]
layers:
  - name: base
    files: "services/{service}/base.yaml"
    key: "{service}"
  - name: environment
    files: "services/{service}/env/{env}.yaml"
    key: "{service}"
  - name: secrets
    files: "services/{service}/secrets.yaml"
    key: "{service}"
schema:
  json: schemas/schema.json
output: generated
secrets:
  vault:
    addresses:  # one secrets file for every environment: each has a Vault of its own
      dev: https://vault-dev.example:8200
      prod: https://vault-prod.example:8200
"""

SERVICE_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object", "additionalProperties": False, "required": ["billing", "web"],
    "properties": {
        "billing": {"type": "object", "additionalProperties": False, "properties": {
            "replicas": {"type": "integer", "minimum": 1},
            "port": {"type": "integer"},
            "db_password": {"type": "string", "pattern": "^(vault|env)://",
                            "x-magcfg-secret": True}}},
        "web": {"type": "object", "additionalProperties": False, "properties": {
            "host": {"type": "string"}, "port": {"type": "integer"}}},
    },
}

SERVICE_FILES = {
    "services/billing/base.yaml": "# billing\nreplicas: 1\nport: 8080\n",
    "services/billing/env/dev.yaml": "replicas: 2\n",
    "services/billing/env/prod.yaml": "replicas: 3\n",
    "services/billing/secrets.yaml": "db_password: vault://secret/billing#db\n",
    "services/web/base.yaml": "port: 80\nhost: web\n",
    "services/web/env/dev.yaml": "host: localhost\n",
    "services/README.md": "not a layer file\n",
}


@pytest.fixture
def services(tmp_path: Path) -> Project:
    project = Project(tmp_path / "svc")
    project.write("magcfg.yaml", SERVICE_PROJECT)
    project.write("schemas/schema.json", json.dumps(SERVICE_SCHEMA))
    for rel, text in SERVICE_FILES.items():
        project.write(rel, text)
    return project


def test_mapping_api(services: Project) -> None:
    project = load_project(services.root / "magcfg.yaml")
    base, environment, _ = project.layers
    assert environment.directory("prod") == "services"
    assert environment.key_prefix("prod", "services/web/env/prod.yaml") == ("web",)
    assert environment.key_prefix("prod", "services/web/env/dev.yaml") is None
    assert base.key_prefix("dev", "services/web/env/dev.yaml") is None
    assert environment.file_for("prod", ("web", "tls", "on")) == (
        "services/web/env/prod.yaml", ("tls", "on"))
    assert environment.file_for("prod", ("web",)) is None
    assert project.mapping("services/web/env/dev.yaml") == [("dev", environment, ("web",))]
    assert [(env, spec.name, prefix) for env, spec, prefix
            in project.mapping("services/web/base.yaml")] == [
        ("dev", "base", ("web",)), ("prod", "base", ("web",))]
    assert project.mapping("services/README.md") == []
    nested = LayerSpec("x", "apps", "apps/**/{team}/{app}.yaml", "teams.{team}.{app}")
    assert nested.key_prefix("dev", "apps/eu/core/api.yaml") == ("teams", "core", "api")
    assert nested.file_for("dev", ("teams", "core", "api", "port")) is None  # ** names no file
    plain = LayerSpec("base", "layers/base")
    assert plain.key_prefix("dev", "layers/base/a.yaml") == ()
    assert plain.file_for("dev", ("magds", "port")) == ("layers/base/magds.yaml",
                                                      ("magds", "port"))
    # A key that is no file name names no file: ../x would be another layer's, .x one
    # no layer lists.
    for key in ("../../base/x", "a/b", "..", ".", ".hidden", ""):
        assert plain.file_for("dev", (key, "port")) is None, key
        assert environment.file_for("prod", (key, "tls")) is None, key


def test_build_explain_and_provenance(services: Project) -> None:
    done = services.run("build")
    assert done.returncode == 0, done.stderr
    assert json.loads((services.root / "generated/prod/config.json").read_text()) == {
        "billing": {"db_password": "vault://secret/billing#db", "port": 8080, "replicas": 3},
        "web": {"host": "web", "port": 80}}
    explained = services.run("explain", "billing.replicas", "--env", "prod")
    assert explained.stdout.splitlines()[1:] == [
        "     services/billing/base.yaml:2  (base)  1",
        "  => services/billing/env/prod.yaml:1  (environment)  3"]
    manifest = json.loads((services.root / "generated/dev/manifest.json").read_text())
    assert manifest["secret_keys"] == ["billing.db_password"]
    assert services.run("build", "--check").returncode == 0


def test_schema_error_points_at_the_mapped_file(services: Project) -> None:
    services.run("build")
    services.write("services/billing/env/dev.yaml", "# scaled down\nreplicas: 0\n")
    before = tree_state(services.root / "generated")
    done = services.run("build")
    assert failed_cleanly(done, 1) == (
        "services/billing/env/dev.yaml:2: error: 0 is less than the minimum of 1 "
        "(schema: minimum) [billing.replicas]\n")
    assert tree_state(services.root / "generated") == before


def test_conflict_and_syntax_errors_point_at_the_mapped_files(services: Project) -> None:
    services.write("magcfg.yaml", SERVICE_PROJECT.replace(
        'files: "services/{service}/base.yaml"', 'files: "services/{service}/base*.yaml"'))
    services.write("services/web/base-extra.yaml", "other: 1\n\nport: 81\n")
    done = services.run("build")
    assert failed_cleanly(done, 1) == (
        "services/web/base.yaml:1: error: set twice in layer 'base' "
        "(services/web/base-extra.yaml, services/web/base.yaml): one file per value "
        "(environments dev, prod) [web.port]\n")
    services.write("services/web/base-extra.yaml", "port: [\n")
    done = services.run("build")
    assert failed_cleanly(done, 1).startswith("services/web/base-extra.yaml:2: error: YAML ")


def test_changing_the_key_prefix_is_never_served_from_the_cache(services: Project,
                                                                tmp_path: Path) -> None:
    """Same files, same top-level key, another prefix below it: a new output."""
    env = {"XDG_STATE_HOME": str(tmp_path / "state")}
    schema = {"$schema": SERVICE_SCHEMA["$schema"], "type": "object"}
    services.write("schemas/schema.json", json.dumps(schema))
    (services.root / "services/billing/secrets.yaml").unlink()
    project = SERVICE_PROJECT.replace('key: "{service}"', 'key: "apps.{service}"')
    services.write("magcfg.yaml", project)
    assert services.run("build", env=env).returncode == 0
    services.write("magcfg.yaml", project.replace("apps.{service}", "apps.eu.{service}"))
    assert services.run("build", env=env).returncode == 0
    config = json.loads((services.root / "generated/prod/config.json").read_text())
    assert list(config["apps"]) == ["eu"]
    assert config["apps"]["eu"]["billing"]["replicas"] == 3


def test_promote_writes_back_to_the_mapped_files(services: Project) -> None:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=services.root, check=True,
                              capture_output=True, text=True).stdout

    assert services.run("build").returncode == 0
    git("init", "-q")
    git("-c", "user.email=t@example.org", "-c", "user.name=t", "commit", "-q",
        "--allow-empty", "-m", "root")
    git("add", "-A")
    git("-c", "user.email=t@example.org", "-c", "user.name=t", "commit", "-q", "-m", "init")
    done = services.run("promote", "dev", "prod",
                        env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
                             "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"})
    assert done.returncode == 0, done.stderr
    assert "| `web.host` | `\"web\"` | `\"localhost\"` | **restart** | " \
           "`services/web/base.yaml:2` | `services/web/env/prod.yaml:1` |" in done.stdout
    assert (services.root / "services/billing/env/prod.yaml").read_text() == "replicas: 2\n"
    assert (services.root / "services/web/env/prod.yaml").read_text() == 'host: "localhost"\n'
    assert sorted(git("show", "--name-only", "--format=", "HEAD").split()) == [
        "generated/prod/config.json", "generated/prod/configmap.yaml",
        "generated/prod/manifest.json", "services/billing/env/prod.yaml",
        "services/web/env/prod.yaml"]
    assert services.run("build", "--check").returncode == 0


@pytest.mark.parametrize(("layer", "message"), [
    ('  - name: base\n    files: "services/{service}/base.yaml"\n    key: "{svc}"\n',
     "magcfg.yaml:6: error: key '{svc}' uses {svc}, which files "
     "'services/{service}/base.yaml' does not capture [layers.0.key]"),
    ('  - name: base\n    path: services\n    files: "services/{service}/base.yaml"\n',
     "magcfg.yaml:4: error: each layer is a mapping with a string name and either a path "
     "(a directory) or files (a pattern) [layers.0]"),
    ('  - name: base\n    files: "{service}/base.yaml"\n',
     "magcfg.yaml:5: error: files must start with a directory of the project: "
     "'{service}/base.yaml' [layers.0.files]"),
    ('  - name: base\n    files: "services/{service}/base.txt"\n',
     "magcfg.yaml:5: error: files must end in .yaml, .yml, .cue: "
     "'services/{service}/base.txt' [layers.0.files]"),
    ('  - name: base\n    files: "../elsewhere/{service}.yaml"\n    key: "{service}"\n',
     "magcfg.yaml:5: error: layer paths must stay inside the project: it leads outside "
     "the project [layers.0.files]"),
    ('  - name: base\n    files: "services/**/../../../outside/*.yaml"\n',
     "magcfg.yaml:5: error: files may not use . or .. after its first directory: "
     "'services/**/../../../outside/*.yaml' [layers.0.files]"),
    ('  - name: base\n    files: "services/{env}/../*.yaml"\n',
     "magcfg.yaml:5: error: files may not use . or .. after its first directory: "
     "'services/{env}/../*.yaml' [layers.0.files]"),
    ('  - name: base\n    path: layers/base\n    key: app\n',
     "magcfg.yaml:6: error: key needs files (a pattern) [layers.0.key]"),
    ('  - name: base\n    files: "services/{service}/base.yaml"\n    key: "'
     + "x." * 64 + '{service}"\n',
     "magcfg.yaml:6: error: key may have at most 64 parts (a file below it nests up to 64 "
     "levels, and config.json at most 128, the most the runtime kernel serves): "
     "'x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.'... [layers.0.key]"),
    ('  - name: base\n    files: "services/*a*a*a*a*a*a*a*a*a*.yaml"\n',
     "magcfg.yaml:5: error: files may hold at most 2 wildcards (* or {name}) in a path "
     "segment, '*a*a*a*a*a*a*a*a*a*.yaml' has more: 'services/*a*a*a*a*a*a*a*a*a*.yaml' "
     "[layers.0.files]"),
    ('  - name: base\n    files: "services/{service}/{a}-{b}-*.yaml"\n',
     "magcfg.yaml:5: error: files may hold at most 2 wildcards (* or {name}) in a path "
     "segment, '{a}-{b}-*.yaml' has more: 'services/{service}/{a}-{b}-*.yaml' "
     "[layers.0.files]"),
    ('  - name: base\n    files: "services/**/x/**/*.yaml"\n',
     "magcfg.yaml:5: error: files may hold one **/ at most: 'services/**/x/**/*.yaml' "
     "[layers.0.files]"),
    ('  - name: base\n    files: "services/x**/*.yaml"\n',
     "magcfg.yaml:5: error: files is a path with {name} (one path segment), * (any text in "
     "a segment) and **/ (any directories): 'services/x**/*.yaml' [layers.0.files]"),
])
def test_bad_layer_patterns_are_located(services: Project, layer: str, message: str) -> None:
    services.write("magcfg.yaml", "version: 1\nenvironments: [dev]\nlayers:\n" + layer
                   + "schema:\n  json: schemas/schema.json\n")
    before = tree_state(services.root)
    done = services.run("build")
    assert failed_cleanly(done, 1) == message + "\n"
    assert tree_state(services.root) == before


def test_a_path_is_matched_segment_by_segment() -> None:
    """Segments of two wildcards each, against long segments that match but a file name
    that does not: tried as the product of each segment's ways, this takes minutes; the
    ways of an earlier segment are tried again only for a name a later one repeats."""
    script = (
        "from magcfg.project import LayerSpec\n"
        "long = 'x' * 250 + '/'\n"
        "spec = LayerSpec('l', 'd', 'd/*x*/*x*/*x*/*x*/*.yaml', None)\n"
        "print(spec.key_prefix('dev', 'd/' + long * 4 + 'f.yml'))\n"
        "print(spec.key_prefix('dev', 'd/' + long * 4 + 'f.yaml'))\n"
        "spec = LayerSpec('l', 'd', 'd/{a}-{b}/*/{b}.yaml', '{a}.{b}')\n"
        "print(spec.key_prefix('dev', 'd/p-q-r/' + long + 'q-r.yaml'))\n")
    assert finishes_in_a_child(script).splitlines() == ["None", "()", "('p', 'q-r')"]
