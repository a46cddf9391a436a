"""The language server on layouts as they are: layers whose files map under a key
(``files: services/{service}/base.yaml``, ``key: "{service}"``, docs/layers.md). A key
as written in such a file (``pool`` under ``db`` in ``services/magds/env/prod.yaml``)
names the merged key behind the file's prefix (``magds.db.pool``): hover, definition,
references, completion, diagnostics and fixes all answer for that key, in the real
``magcfg lsp`` over stdio."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.uris import from_fs_path
from pytest_lsp import LanguageClient

from tests.conftest import Project
from tests.lsp.test_server import CONFIG, applied, barrier, change, fixes, hover, open_doc, uri_of

SERVICES_PROJECT = """\
version: 1
environments: [dev, prod]
layers:
  - name: base
    files: "services/{service}/base.yaml"
    key: "{service}"
  - name: environment
    files: "services/{service}/env/{env}.yaml"
    key: "{service}"
schema:
  json: schemas/schema.json
output: generated
"""

SERVICES_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object", "additionalProperties": False,
    "properties": {
        "magds": {"type": "object", "additionalProperties": False, "properties": {
            "db": {"type": "object", "additionalProperties": False, "properties": {
                "host": {"type": "string", "description": "Where the database runs."},
                "pool": {"type": "integer", "minimum": 1, "maximum": 100,
                         "description": "Connections open at once."},
                "sslmode": {"type": "string", "enum": ["disable", "require", "verify-full"]},
                "password": {"type": "string", "pattern": "^(vault|env)://",
                             "x-magcfg-secret": True}}},
            "replicas": {"type": "integer", "minimum": 1},
            "port": {"type": "integer"}}},
        "web": {"type": "object", "additionalProperties": False, "properties": {
            "host": {"type": "string"}, "port": {"type": "integer"}}},
    },
}

MAGDS_BASE = "services/magds/base.yaml"
MAGDS_DEV = "services/magds/env/dev.yaml"
MAGDS_PROD = "services/magds/env/prod.yaml"
WEB_BASE = "services/web/base.yaml"
WEB_PROD = "services/web/env/prod.yaml"

SERVICES_FILES = {
    MAGDS_BASE: ("# MagDS, the database service\n"
                 "db:\n"
                 "  host: db\n"
                 "  pool: 5\n"
                 "  sslmode: require\n"
                 '  password: "env://MAGDS_DB_PASSWORD"\n'
                 "replicas: 1\n"),
    MAGDS_DEV: "db:\n  host: localhost\n  pool: 2\n",
    MAGDS_PROD: "replicas: 3\ndb:\n  pool: 20\n",
    WEB_BASE: "port: 80\nhost: web\n",
    WEB_PROD: "host: web.example\n",
    "services/README.md": "not a layer file\n",
}


@pytest.fixture
def services(tmp_path: Path) -> Project:
    """Per-service files mapped under the service's key, in two environments."""
    project = Project(tmp_path / "svc")
    project.write("magcfg.yaml", SERVICES_PROJECT)
    project.write("schemas/schema.json", json.dumps(SERVICES_SCHEMA, indent=2))
    for rel, text in SERVICES_FILES.items():
        project.write(rel, text)
    return project


@pytest_lsp.fixture(config=CONFIG)
async def client(lsp_client: LanguageClient, services: Project) -> Any:
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=types.ClientCapabilities(),
        workspace_folders=[types.WorkspaceFolder(uri_of(services, ""), "services")],
        root_uri=from_fs_path(str(services.root))))
    yield
    await lsp_client.shutdown_session()


async def places(client: LanguageClient, project: Project, locations: Any) -> list[Any]:
    assert locations is not None
    root = uri_of(project, "")
    return sorted((loc.uri.removeprefix(root).lstrip("/"), loc.range.start.line,
                   loc.range.start.character, loc.range.end.character) for loc in locations)


async def complete(client: LanguageClient, uri: str, line: int, character: int
                   ) -> list[types.CompletionItem]:
    found = await client.text_document_completion_async(types.CompletionParams(
        types.TextDocumentIdentifier(uri), types.Position(line, character)))
    assert isinstance(found, types.CompletionList)
    return found.items


@pytest.mark.asyncio
async def test_hover_in_a_mapped_file_shows_the_key_behind_its_prefix(
        client: LanguageClient, services: Project) -> None:
    uri = open_doc(client, services, MAGDS_PROD)
    await barrier(client, uri)
    assert not client.diagnostics[uri]
    text = await hover(client, uri, 2, 3)  # pool, under db
    assert text.startswith("**`magds.db.pool`**  reload: `restart`")
    assert "Connections open at once." in text
    assert "type: `integer` · maximum: `100` · minimum: `1`" in text
    assert ("- **dev**: `2`\n"
            "  - set at `services/magds/env/dev.yaml:3` (environment): `2`\n"
            "  - overrides `services/magds/base.yaml:4` (base): `5`") in text
    assert ("- **prod**: `20`\n"
            "  - set at `services/magds/env/prod.yaml:3` (environment): `20`\n"
            "  - overrides `services/magds/base.yaml:4` (base): `5`") in text
    text = await hover(client, uri, 0, 2)  # replicas, at the top of the file
    assert text.startswith("**`magds.replicas`**")
    assert "- **dev**: `1`\n  - set at `services/magds/base.yaml:7` (base): `1`" in text
    # A file only prod's layers hold: dev's value of the same key, from dev's files.
    web = open_doc(client, services, WEB_PROD)
    text = await hover(client, web, 0, 1)
    assert text.startswith("**`web.host`**")
    assert "- **dev**: `\"web\"`\n  - set at `services/web/base.yaml:2` (base)" in text
    assert ("- **prod**: `\"web.example\"`\n"
            "  - set at `services/web/env/prod.yaml:1` (environment): `\"web.example\"`\n"
            "  - overrides `services/web/base.yaml:2` (base): `\"web\"`") in text
    # A secret key in a mapped file shows as one.
    base = open_doc(client, services, MAGDS_BASE)
    text = await hover(client, base, 5, 4)
    assert text.startswith("**`magds.db.password`**  reload: `restart` · secret")
    assert "- **prod**: `\"env://MAGDS_DB_PASSWORD\"`" in text


@pytest.mark.asyncio
async def test_definition_and_references_cross_mapped_files(
        client: LanguageClient, services: Project) -> None:
    uri = open_doc(client, services, MAGDS_PROD)
    found = await client.text_document_definition_async(types.DefinitionParams(
        types.TextDocumentIdentifier(uri), types.Position(2, 3)))
    assert await places(client, services, found) == [(MAGDS_BASE, 3, 2, 6)]
    refs = await client.text_document_references_async(types.ReferenceParams(
        text_document=types.TextDocumentIdentifier(uri), position=types.Position(2, 3),
        context=types.ReferenceContext(include_declaration=True)))
    assert await places(client, services, refs) == [
        (MAGDS_BASE, 3, 2, 6), (MAGDS_DEV, 2, 2, 6), (MAGDS_PROD, 2, 2, 6)]
    dev = open_doc(client, services, MAGDS_DEV)
    found = await client.text_document_definition_async(types.DefinitionParams(
        types.TextDocumentIdentifier(dev), types.Position(1, 3)))  # host
    assert await places(client, services, found) == [(MAGDS_BASE, 2, 2, 6)]
    # web.host is another key than magds.db.host, though both are written `host:`.
    web = open_doc(client, services, WEB_PROD)
    refs = await client.text_document_references_async(types.ReferenceParams(
        text_document=types.TextDocumentIdentifier(web), position=types.Position(0, 1),
        context=types.ReferenceContext(include_declaration=True)))
    assert await places(client, services, refs) == [(WEB_BASE, 1, 0, 4), (WEB_PROD, 0, 0, 4)]
    found = await client.text_document_definition_async(types.DefinitionParams(
        types.TextDocumentIdentifier(web), types.Position(0, 1)))
    assert await places(client, services, found) == [(WEB_BASE, 1, 0, 4)]
    # A key the file sets first has nothing below it.
    base = open_doc(client, services, MAGDS_BASE)
    found = await client.text_document_definition_async(types.DefinitionParams(
        types.TextDocumentIdentifier(base), types.Position(3, 3)))
    assert found == []


@pytest.mark.asyncio
async def test_completion_in_a_mapped_file_offers_the_schema_keys_under_its_prefix(
        client: LanguageClient, services: Project) -> None:
    text = SERVICES_FILES[MAGDS_DEV]
    uri = open_doc(client, services, MAGDS_DEV, text + "  \n")
    items = await complete(client, uri, 3, 2)  # under db
    assert [i.label for i in items] == ["password", "sslmode"]  # not host, pool: set here
    assert items[1].insert_text == "sslmode: "
    assert items[1].detail == "string"
    change(client, uri, 2, text + "\n")
    items = await complete(client, uri, 3, 0)  # the top of the file: magds's keys
    assert [i.label for i in items] == ["port", "replicas"]
    web = open_doc(client, services, WEB_PROD, SERVICES_FILES[WEB_PROD] + "\n")
    assert [i.label for i in await complete(client, web, 1, 0)] == ["port"]
    base = open_doc(client, services, MAGDS_BASE)
    items = await complete(client, base, 4, 11)  # sslmode: |require
    assert [(i.label, i.insert_text) for i in items] == [
        ("disable", '"disable"'), ("require", '"require"'), ("verify-full", '"verify-full"')]


@pytest.mark.asyncio
async def test_diagnostics_of_a_mapped_file_are_located_and_fixed(
        client: LanguageClient, services: Project) -> None:
    text = SERVICES_FILES[MAGDS_PROD]
    uri = open_doc(client, services, MAGDS_PROD)
    await barrier(client, uri)
    assert not client.diagnostics[uri]
    change(client, uri, 2, text.replace("pool: 20", "pool: 500"))
    await barrier(client, uri)
    [found] = client.diagnostics[uri]
    assert found.message == "500 is greater than the maximum of 100 (schema: maximum)"
    assert found.range.start == types.Position(2, 2)
    assert found.data == {"code": "schema-maximum", "key": "magds.db.pool"}

    typo = text.replace("  pool:", "  pol:")
    change(client, uri, 3, typo)
    await barrier(client, uri)
    [found] = client.diagnostics[uri]
    assert found.message == "unknown key 'pol' (did you mean 'pool'?)"
    assert found.range.start == types.Position(2, 2)
    [action] = await fixes(client, uri)
    assert action.title == "Change 'pol' to 'pool'"
    assert applied(typo, action) == text

    redundant = text + "  host: db\n"
    change(client, uri, 4, redundant)
    await barrier(client, uri)
    [found] = client.diagnostics[uri]
    assert found.range.start == types.Position(3, 2)
    assert found.data == {"code": "redundant", "key": "magds.db.host"}
    [action] = await fixes(client, uri)
    assert action.title == "Remove the redundant override of magds.db.host"
    assert applied(redundant, action) == text

    change(client, uri, 5, text)
    await barrier(client, uri)
    assert not client.diagnostics[uri]

    # A base file's finding in the environments whose files do not override it.
    base_text = SERVICES_FILES[MAGDS_BASE]
    base = open_doc(client, services, MAGDS_BASE, base_text.replace("replicas: 1", "replicas: 0"))
    await barrier(client, base)
    [found] = client.diagnostics[base]
    assert found.message == "0 is less than the minimum of 1 (schema: minimum) (in dev)"
    assert found.range.start == types.Position(6, 0)
    assert found.data == {"code": "schema-minimum", "key": "magds.replicas"}

    # A literal in a secret key: its reference names the service the file maps under.
    literal = base_text.replace('"env://MAGDS_DB_PASSWORD"', '"hunter2"')
    change(client, base, 2, literal)
    await barrier(client, base)
    [found] = client.diagnostics[base]
    assert found.range.start == types.Position(5, 2)
    assert found.data == {"code": "schema-pattern", "key": "magds.db.password"}
    assert "hunter2" not in found.message
    [action] = await fixes(client, base)
    assert action.title == "Replace the literal with a reference (vault://secret/magds#password)"
    assert applied(literal, action) == base_text.replace(
        '"env://MAGDS_DB_PASSWORD"', '"vault://secret/magds#password"')
