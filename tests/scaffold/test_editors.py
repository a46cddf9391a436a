"""Editors: the project file's schema, ``magcfg schema layer``, and the real
yaml-language-server (over stdio, as an editor runs it) checking and completing layer
files and the project file with what ``magcfg init`` writes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import yaml

import magcfg
from magcfg.compiler import Compiler
from magcfg.errors import UsageError
from magcfg.pipeline.cache import BuildCache
from magcfg.scaffold.editors import layer_schema, layer_schema_of, project_schema
from magcfg.scaffold.infer import schema_bytes

from ..conftest import REPO, Project, failed_cleanly
from ..test_layouts import SERVICE_PROJECT
from .lsp_client import LspClient

YAML_LANGUAGE_SERVER = shutil.which("yaml-language-server") or shutil.which(
    "yaml-language-server", path=str(REPO / ".tools/bin"))


def test_project_schema_accepts_real_project_files_and_refuses_mistakes() -> None:
    schema = json.loads(project_schema())
    validator = jsonschema.Draft7Validator(schema)
    for text in ((REPO / "magcfg.yaml").read_text(), SERVICE_PROJECT):
        assert list(validator.iter_errors(yaml.safe_load(text))) == []
    project = yaml.safe_load(SERVICE_PROJECT)
    project["layers"][0]["path"] = "services"  # path and files at once
    project["frobnicate"] = 1
    project["lint"] = {"exclude": ["tests/**"], "exclud": ["vendor/**"]}
    messages = sorted(e.message for e in validator.iter_errors(project))
    assert any("frobnicate" in m for m in messages), messages
    assert any("'exclud' was unexpected" in m for m in messages), messages
    assert any("is not valid under any of the given schemas" in m for m in messages), messages


def test_layer_schema_makes_every_key_optional(mini: Project) -> None:
    schema = json.loads((mini.root / "schemas/schema.json").read_text())
    layer = layer_schema(schema)
    validator = jsonschema.Draft7Validator(layer)
    assert list(validator.iter_errors({"logging": {"level": "warn"}})) == []  # magds missing
    assert list(validator.iter_errors({"magds": {"port": None}})) == []  # !unset
    unknown = list(validator.iter_errors({"magds": {"prot": 1}}))
    assert [c.message for e in unknown for c in e.context] == [
        "Additional properties are not allowed ('prot' was unexpected)",
        "{'prot': 1} is not of type 'null'"]
    under = layer_schema(schema, "magds")
    assert list(jsonschema.Draft7Validator(under).iter_errors({"port": 5432})) == []
    assert list(jsonschema.Draft7Validator(under).iter_errors({"port": 0}))


def test_schema_layer_command_and_unknown_key(mini: Project) -> None:
    assert mini.run("build").returncode == 0  # the split of the schema is in the cache
    done = mini.run("schema", "layer", "--key", "magds", "-o", "schemas/magds.layer.json")
    assert done.returncode == 0, done.stderr
    written = (mini.root / "schemas/magds.layer.json").read_bytes()
    document = json.loads((mini.root / "schemas/schema.json").read_text())
    assert written == (json.dumps(layer_schema(document, "magds"), indent=2) + "\n").encode()
    assert "port" in json.loads(written)["properties"]
    assert failed_cleanly(mini.run("schema", "layer", "--key", "nope"), 2) == (
        "error: the schema has no key 'nope' (at 'nope')\n")
    assert mini.run("schema", "project").stdout.encode() == project_schema()


def _settings(root: Path) -> dict[str, Any]:
    """What VS Code's YAML extension sends, from the .vscode/settings.json init wrote."""
    vscode = json.loads((root / ".vscode/settings.json").read_text())
    return {"schemas": {str(root / path): [str(root / glob) for glob in globs]
                        for path, globs in vscode["yaml.schemas"].items()},
            "customTags": vscode["yaml.customTags"], "validate": True, "completion": True,
            "hover": True}


def test_schema_layer_of_a_split_schema_reads_one_piece(mini: Project) -> None:
    """``schema layer --key`` of a split schema reads the key's piece from the build
    cache, not the file, and writes what the whole file gives, refusals included."""
    synth = mini.root.parent / "synth"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "synth.py"), str(synth),
                    "--shape", "realistic", "--services", "5", "--keys", "60", "--envs", "1"],
                   check=True, capture_output=True)
    raw = (synth / "schemas" / "platform.schema.json").read_bytes()
    (mini.root / "schemas" / "schema.json").write_bytes(raw)
    whole = json.loads(raw)
    services = list(whole["properties"])
    nested = next(k for k, v in whole["properties"][services[2]]["properties"].items()
                  if "properties" in v)
    project = magcfg.load_project(mini.root / "magcfg.yaml")
    cache = BuildCache(None)
    first = Compiler(project, cache=cache).schema()
    assert first is not None and list(first.piece_digests()) == services
    for key in (services[0], f"{services[2]}.{nested}", f"{services[2]}.{nested}.nope",
                "nope"):
        try:
            expected = schema_bytes(layer_schema(whole, key))
        except UsageError as exc:
            expected = str(exc).encode()
        schema = Compiler(project, cache=cache).schema()
        assert schema is not None
        try:
            got = schema_bytes(layer_schema_of(schema, key))
        except UsageError as exc:
            got = str(exc).encode()
        assert got == expected, key
        assert schema._raw is None and schema._document is None  # the file: hashed only
    assert b"has no key 'nope'" in got
    layer = json.loads(schema_bytes(layer_schema_of(schema, services[0])))
    assert list(layer["properties"]) == list(whole["properties"][services[0]]["properties"])


def test_schema_layer_follows_any_pointer_the_schema_check_accepts(mini: Project) -> None:
    """Through a list, percent-encoded, to a boolean schema: resolved as the schema's
    index resolves them (a list item was an AttributeError, a boolean a TypeError)."""
    port = {"type": "integer", "minimum": 1}
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
              "$defs": {"pick": {"anyOf": [{"type": "object", "properties": {"port": port}},
                                           {"type": "null"}]},
                        "a b": {"type": "object", "properties": {"host": {"type": "string"}}},
                        "never": False},
              "properties": {"magds": {"$ref": "#/$defs/pick/anyOf/0"},
                             "logging": {"$ref": "#/$defs/a%20b"},
                             "gone": {"$ref": "#/$defs/never"}}}
    mini.write("schemas/schema.json", json.dumps(schema))
    mini.write("layers/base/logging.yaml", "logging:\n  host: h\n")
    mini.write("layers/environments/prod/logging.yaml", "logging:\n  host: p\n")
    mini.write("layers/base/magds.yaml", "magds:\n  port: 5433\n")
    assert mini.run("build").returncode == 0, mini.run("build").stderr
    for key, valid, invalid in (("magds", {"port": 5}, {"port": 0}),
                                ("logging", {"host": "h"}, {"host": 1}),
                                ("gone", None, {})):
        done = mini.run("schema", "layer", "--key", key)
        assert done.returncode == 0, done.stderr
        validator = jsonschema.Draft7Validator(json.loads(done.stdout))
        if valid is not None:
            assert list(validator.iter_errors(valid)) == [], key
        assert list(validator.iter_errors(invalid)), key


def test_schema_bytes_are_jsons_indented_text() -> None:
    """orjson writes what ``json.dumps(indent=2, ensure_ascii=False)`` writes, but for
    numbers below 1e-4 (``0.00001`` for ``1e-05``, as in config.json); integers beyond 64
    bits, which orjson refuses, are written by ``json``."""
    document = {"z": "é\u2028\x7f\x1f\"\\/", "a": [], "b": {}, "c": [1, {"d": None}],
                "e": True, "f": 0.5, "g": -0.0, "h": 1e300, "i": 2 ** 63 - 1}
    assert schema_bytes(document) == (
        json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode()
    assert schema_bytes({"small": 1e-05}) == b'{\n  "small": 0.00001\n}\n'
    big = {"big": 2 ** 64, "x": [1e-05]}
    assert schema_bytes(big) == (json.dumps(big, indent=2) + "\n").encode()


def _yaml_language_server(workspace: Path, settings: dict[str, Any]) -> LspClient:
    """The real server, as an editor opened on ``workspace`` runs it with ``settings``."""
    assert YAML_LANGUAGE_SERVER is not None, "yaml-language-server: run ./scripts/dev tools"
    client = LspClient([YAML_LANGUAGE_SERVER, "--stdio"], workspace,
                       settings=lambda params: [settings for _ in params["items"]])
    try:
        client.request("initialize", {
            "processId": None, "rootUri": workspace.as_uri(),
            "capabilities": {"workspace": {"configuration": True},
                             "textDocument": {"publishDiagnostics": {}, "completion": {}}}})
        client.notify("initialized", {})
        client.notify("workspace/didChangeConfiguration", {"settings": {"yaml": settings}})
    except BaseException:
        client.close()
        raise
    return client


def _diagnostics(client: LspClient, path: Path, text: str, some: bool = True
                 ) -> list[tuple[int, str]]:
    """What the server reports on ``path`` opened with ``text`` (with ``some``: once it
    reports something)."""
    uri = path.as_uri()
    client.notify("textDocument/didOpen", {"textDocument": {
        "uri": uri, "languageId": "yaml", "version": 1, "text": text}})
    found = client.wait_for(lambda m: m["method"] == "textDocument/publishDiagnostics"
                            and m["params"]["uri"] == uri
                            and (bool(m["params"]["diagnostics"]) or not some))
    return [(d["range"]["start"]["line"], d["message"]) for d in found["params"]["diagnostics"]]


def test_yaml_language_server_checks_and_completes_layer_files(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    assert Project(root).run("init", "--env", "dev", "--env", "prod").returncode == 0
    client = _yaml_language_server(root, _settings(root))
    try:
        layer = root / "layers/environments/dev/app.yaml"
        assert _diagnostics(client, layer,
                            "app:\n  log_level: 3\n  bogus: x\n  name: !unset\n  \n") == [
            (1, 'Incorrect type. Expected "string | null".'),
            (2, "Property bogus is not allowed.")]
        completion = client.request("textDocument/completion", {
            "textDocument": {"uri": layer.as_uri()}, "position": {"line": 4, "character": 2}})
        items = completion["items"] if isinstance(completion, dict) else completion
        assert "environment" in [item["label"] for item in items]
        project_file = root / "magcfg.yaml"
        found = _diagnostics(client, project_file, project_file.read_text() + "frobnicate: 1\n")
        assert [m for _, m in found] == ["Property frobnicate is not allowed."]
    finally:
        client.close()


def test_yaml_language_server_at_a_monorepos_top_checks_each_project(tmp_path: Path) -> None:
    """VS Code opened at a monorepo's top reads the settings there alone, and its YAML
    server resolves the schemas' paths from there: ``init`` of a project below the top
    wrote them into the project directory, where no editor read them."""
    top = tmp_path / "mono"
    (top / "platform/config").mkdir(parents=True)
    billing = Project(top / "services/billing")
    billing.write("layers/base/billing.yaml", "billing:\n  rate: 1\n")
    subprocess.run(["git", "init", "-q"], cwd=top, check=True)
    for project in ("platform/config", "services/billing"):
        assert Project(top).run("init", project, "--env", "dev").returncode == 0
    assert not (top / "platform/config/.vscode").exists()
    vscode = json.loads((top / ".vscode/settings.json").read_text())
    # As VS Code's YAML extension passes them: the paths as written, the server's to resolve.
    client = _yaml_language_server(top, {
        "schemas": vscode["yaml.schemas"], "customTags": vscode["yaml.customTags"],
        "validate": True, "completion": True, "hover": True})
    try:
        layer = top / "platform/config/layers/environments/dev/app.yaml"
        assert _diagnostics(client, layer, "app:\n  log_level: 3\n  bogus: x\n") == [
            (1, 'Incorrect type. Expected "string | null".'),
            (2, "Property bogus is not allowed.")]
        project_file = top / "services/billing/magcfg.yaml"
        found = _diagnostics(client, project_file, project_file.read_text() + "frobnicate: 1\n")
        assert [m for _, m in found] == ["Property frobnicate is not allowed."]
        # Each project's layer files get its own layer schema, not the other's too.
        assert _diagnostics(client, top / "services/billing/layers/base/billing.yaml",
                            "billing:\n  rate: 2\n", some=False) == []
        assert _diagnostics(client, top / "services/billing/layers/base/app.yaml",
                            "billing:\n  rate: x\n") == [
            (1, 'Incorrect type. Expected "integer | null".')]
    finally:
        client.close()
