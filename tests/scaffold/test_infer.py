"""``magcfg schema infer``: a strict starting schema from the layers of every environment."""

from __future__ import annotations

import json

from magcfg.project import load_project
from magcfg.scaffold.infer import infer_schema

from ..conftest import Project, failed_cleanly, tree_state


def test_types_required_and_secrets_across_environments(mini: Project) -> None:
    mini.write("layers/environments/dev/extra.yaml",
               "extra:\n  ratio: 0.5\n  note: null\n  items: [{name: a, size: 1}]\n")
    mini.write("layers/environments/prod/extra.yaml",
               "extra:\n  ratio: 2\n  token: vault://secret/app#token\n"
               "  items: [{name: b}]\n")
    schema = infer_schema(load_project(mini.root / "magcfg.yaml"))
    extra = schema["properties"]["extra"]
    assert extra == {
        "type": "object", "additionalProperties": False,
        "properties": {
            "items": {"type": "array", "items": {
                "type": "object", "additionalProperties": False,
                "properties": {"name": {"type": "string"}, "size": {"type": "integer"}},
                "required": ["name"]}},
            "note": {"type": "null"},
            "ratio": {"type": ["integer", "number"]},
            "token": {"$ref": "#/$defs/secret_ref"},
        },
        "required": ["items", "ratio"],
    }
    assert schema["required"] == ["extra", "logging", "magds"]
    assert schema["$defs"]["secret_ref"]["x-magcfg-secret"] is True


def test_infer_writes_a_schema_the_build_accepts(mini: Project) -> None:
    mini.write("layers/base/magds.yaml",
               "magds:\n  host: db\n  port: 5433\n  password: env://DB_PASSWORD\n")
    done = mini.run("schema", "infer", "--out", "schemas/inferred/schema.json")
    assert done.returncode == 0, done.stderr
    written = (mini.root / "schemas/inferred/schema.json").read_bytes()
    again = mini.run("schema", "infer")
    assert again.stdout.encode() == written  # deterministic, stdout or file alike
    mini.write("magcfg.yaml", (mini.root / "magcfg.yaml").read_text().replace(
        "schemas/schema.json", "schemas/inferred/schema.json"))
    built = mini.run("build")
    assert built.returncode == 0, built.stderr
    assert json.loads((mini.root / "generated/prod/manifest.json").read_text())[
        "secret_keys"] == ["magds.password"]


def test_infer_reports_layer_errors_and_writes_nothing(mini: Project) -> None:
    mini.write("layers/base/bad.yaml", "magds:\n  host: [unclosed\n")
    before = tree_state(mini.root)
    done = mini.run("schema", "infer", "--out", "schemas/out.json")
    assert failed_cleanly(done, 1) == (
        "layers/base/bad.yaml:3: error: YAML syntax error: did not find expected ',' or ']' "
        "(while parsing a flow sequence)\n")
    assert tree_state(mini.root) == before


def test_infer_refuses_a_directory_as_out(mini: Project) -> None:
    before = tree_state(mini.root)
    done = mini.run("schema", "infer", "--out", "schemas")
    assert failed_cleanly(done, 1) == "schemas: error: is a directory; give a file name\n"
    assert tree_state(mini.root) == before
