"""The language server end to end: the real ``magcfg lsp`` over stdio, driven by pytest-lsp.

Requests are answered in order after the notifications sent before them, so a request
(hover at the top of a file) is the barrier after which the diagnostics of an edit have
been published.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.uris import from_fs_path
from pytest_lsp import ClientServerConfig, LanguageClient, LanguageClientProtocol

from magcfg.durable import MAX_INPUT_BYTES
from tests.conftest import MAGCFG, MINI_BASE, MINI_PROJECT, MINI_SCHEMA, REPO, Project, tree_state

CANARY = "canary-Zq7hunter2-secret-value"
PROD_MAGDS = "layers/environments/production/magds.yaml"
SECRET_MAGDS = "layers/secrets/production/magds.yaml"


class RecordingProtocol(LanguageClientProtocol):
    """Keeps every message the server sent, as JSON text."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.received: list[str] = []

    def structure_message(self, data: dict[str, Any]) -> Any:
        if "jsonrpc" in data:
            self.received.append(json.dumps(data))
        return super().structure_message(data)


def recording_client() -> LanguageClient:
    from pygls.protocol import default_converter
    from pytest_lsp.client import register_lsp_features

    client = LanguageClient(protocol_cls=RecordingProtocol, converter_factory=default_converter)
    register_lsp_features(client)
    return client


CONFIG = ClientServerConfig(server_command=[str(MAGCFG), "lsp"], client_factory=recording_client,
                            server_env={**os.environ, "MAGFLOCK_MAGDS_DB_PASSWORD": CANARY})


@pytest_lsp.fixture(config=CONFIG)
async def client(lsp_client: LanguageClient, bundled: Project) -> Any:
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=types.ClientCapabilities(),
        workspace_folders=[types.WorkspaceFolder(from_fs_path(str(bundled.root)) or "", "bundled")],
        root_uri=from_fs_path(str(bundled.root))))
    yield
    await lsp_client.shutdown_session()


def uri_of(project: Project, rel: str) -> str:
    uri = from_fs_path(str(project.root / rel))
    assert uri is not None
    return uri


def open_doc(client: LanguageClient, project: Project, rel: str, text: str | None = None) -> str:
    uri = uri_of(project, rel)
    client.text_document_did_open(types.DidOpenTextDocumentParams(types.TextDocumentItem(
        uri, "yaml", 1, text if text is not None else (project.root / rel).read_text())))
    return uri


def change(client: LanguageClient, uri: str, version: int, text: str) -> None:
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        types.VersionedTextDocumentIdentifier(version=version, uri=uri),
        [types.TextDocumentContentChangeWholeDocument(text=text)]))


async def barrier(client: LanguageClient, uri: str) -> None:
    await client.text_document_hover_async(types.HoverParams(
        types.TextDocumentIdentifier(uri), types.Position(0, 0)))


async def hover(client: LanguageClient, uri: str, line: int, character: int) -> str:
    found = await client.text_document_hover_async(types.HoverParams(
        types.TextDocumentIdentifier(uri), types.Position(line, character)))
    assert found is not None
    assert isinstance(found.contents, types.MarkupContent)
    return found.contents.value


@pytest.mark.asyncio
async def test_diagnostics_from_an_unsaved_buffer_are_located(client: LanguageClient,
                                                               bundled: Project) -> None:
    before = tree_state(bundled.root)
    text = (bundled.root / PROD_MAGDS).read_text()
    uri = open_doc(client, bundled, PROD_MAGDS)
    await barrier(client, uri)
    assert not client.diagnostics[uri]
    change(client, uri, 2, text.replace("max_size: 50", "max_size: 5000"))
    await barrier(client, uri)
    [found] = client.diagnostics[uri]
    assert found.message == "5000 is greater than the maximum of 500 (schema: maximum)"
    assert found.code == "schema-maximum"
    assert found.severity == types.DiagnosticSeverity.Error
    assert found.range.start == types.Position(7, 4)  # line 8, the key max_size
    assert found.data == {"code": "schema-maximum", "key": "magds.pool.max_size"}
    change(client, uri, 3, text)
    await barrier(client, uri)
    assert not client.diagnostics[uri]
    assert tree_state(bundled.root) == before  # nothing saved, built or cached


@pytest.mark.asyncio
async def test_a_base_edit_is_reported_in_each_environment_it_breaks(
        client: LanguageClient, bundled: Project) -> None:
    rel = "layers/base/magds.yaml"
    text = (bundled.root / rel).read_text()
    uri = open_doc(client, bundled, rel)
    # min_size above every environment's max_size but production's (50).
    change(client, uri, 2, text.replace("    max_size: 10\n", "    max_size: 10\n    mn_size: 3\n"))
    await barrier(client, uri)
    [found] = client.diagnostics[uri]
    assert found.message == "unknown key 'mn_size' (did you mean 'min_size'?)"
    assert found.range.start == types.Position(17, 4)
    # A finding of some of the file's environments says which ones.
    change(client, uri, 3, text.replace('    sslmode: "require"', '    sslmode: "requires"'))
    await barrier(client, uri)
    [found] = client.diagnostics[uri]
    assert found.message.endswith("(schema: enum) (in staging)")  # the others override it
    # An override made redundant by an edit below is reported in the file above.
    change(client, uri, 4, text.replace("    max_size: 10\n", "    max_size: 4\n"))
    await barrier(client, uri)
    dev_uri = uri_of(bundled, "layers/environments/dev/magds.yaml")
    [redundant] = client.diagnostics[dev_uri]
    assert redundant.message == ("override repeats the value set below: remove it "
                                 "(one source of truth per value)")
    assert redundant.severity == types.DiagnosticSeverity.Warning


@pytest.mark.asyncio
async def test_a_syntax_error_while_typing_is_located_and_then_cleared(
        client: LanguageClient, bundled: Project) -> None:
    text = (bundled.root / PROD_MAGDS).read_text()
    uri = open_doc(client, bundled, PROD_MAGDS)
    change(client, uri, 2, text + "  pool: {\n")
    await barrier(client, uri)
    [found] = client.diagnostics[uri]
    assert found.severity == types.DiagnosticSeverity.Error
    assert found.range.start.line >= 8
    change(client, uri, 3, text)
    await barrier(client, uri)
    assert not client.diagnostics[uri]


@pytest.mark.asyncio
async def test_hover_shows_every_environment_its_origin_and_the_schema(
        client: LanguageClient, bundled: Project) -> None:
    uri = open_doc(client, bundled, PROD_MAGDS)
    text = await hover(client, uri, 7, 6)  # max_size
    assert text.startswith("**`magds.pool.max_size`**  reload: `restart`")
    assert "Most connections open at once." in text
    assert "type: `integer` · maximum: `500` · minimum: `1`" in text
    assert ("- **production**: `50`\n"
            "  - set at `layers/environments/production/magds.yaml:8` (environment): `50`\n"
            "  - overrides `layers/base/magds.yaml:17` (base): `10`") in text
    assert "- **staging**: `20`" in text
    assert "- **dev**: `4`" in text


@pytest.mark.asyncio
async def test_hover_on_a_secret_shows_its_reference_and_never_a_literal(
        client: LanguageClient, bundled: Project) -> None:
    uri = open_doc(client, bundled, SECRET_MAGDS)
    text = await hover(client, uri, 4, 6)
    assert "secret (shown as its reference)" in text
    assert "- **production**: `\"vault://secret/k3s/production/magds#db_password\"`" in text
    source = (bundled.root / SECRET_MAGDS).read_text()
    change(client, uri, 2, source.replace('"vault://secret/k3s/production/magds#db_password"',
                                          f'"{CANARY}"'))
    text = await hover(client, uri, 4, 6)
    assert "- **production**: `\"<redacted>\"`" in text
    assert CANARY not in text


@pytest.mark.asyncio
async def test_definition_goes_to_the_overridden_value_and_references_find_every_layer(
        client: LanguageClient, bundled: Project) -> None:
    uri = open_doc(client, bundled, PROD_MAGDS)
    found = await client.text_document_definition_async(types.DefinitionParams(
        types.TextDocumentIdentifier(uri), types.Position(7, 6)))
    assert isinstance(found, list)
    assert [(loc.uri, loc.range.start.line, loc.range.start.character) for loc in found] == [
        (uri_of(bundled, "layers/base/magds.yaml"), 16, 4)]
    refs = await client.text_document_references_async(types.ReferenceParams(
        text_document=types.TextDocumentIdentifier(uri), position=types.Position(7, 6),
        context=types.ReferenceContext(include_declaration=True)))
    assert refs is not None
    assert sorted((loc.uri.rsplit("/layers/", 1)[1], loc.range.start.line) for loc in refs) == [
        ("base/magds.yaml", 16), ("environments/dev/magds.yaml", 7),
        ("environments/production/magds.yaml", 7), ("environments/staging/magds.yaml", 3)]


@pytest.mark.asyncio
async def test_completion_offers_the_schema_keys_at_the_cursor_and_enum_values(
        client: LanguageClient, bundled: Project) -> None:
    text = (bundled.root / PROD_MAGDS).read_text()
    uri = open_doc(client, bundled, PROD_MAGDS, text + "    \n")
    found = await client.text_document_completion_async(types.CompletionParams(
        types.TextDocumentIdentifier(uri), types.Position(8, 4)))
    assert isinstance(found, types.CompletionList)
    # The pool's keys this file does not set yet.
    assert [i.label for i in found.items] == ["idle_timeout_seconds", "max_lifetime_seconds"]
    assert found.items[0].insert_text == "idle_timeout_seconds: "
    assert found.items[0].detail == "integer"
    found = await client.text_document_completion_async(types.CompletionParams(
        types.TextDocumentIdentifier(uri), types.Position(3, 14)))  # sslmode: "
    assert isinstance(found, types.CompletionList)
    assert [(i.label, i.insert_text) for i in found.items][:2] == [
        ("disable", '"disable"'), ("prefer", '"prefer"')]


async def fixes(client: LanguageClient, uri: str) -> list[types.CodeAction]:
    diagnostics = list(client.diagnostics[uri])
    assert diagnostics
    found = await client.text_document_code_action_async(types.CodeActionParams(
        types.TextDocumentIdentifier(uri), diagnostics[0].range,
        types.CodeActionContext(diagnostics=diagnostics)))
    assert found is not None
    return [a for a in found if isinstance(a, types.CodeAction)]


def applied(text: str, action: types.CodeAction) -> str:
    """``text`` with the action's one edit made (positions are ASCII columns here)."""
    assert action.edit is not None and action.edit.changes is not None
    [[edit]] = action.edit.changes.values()
    lines = text.split("\n")

    def offset(position: types.Position) -> int:
        return sum(len(line) + 1 for line in lines[:position.line]) + position.character

    return text[:offset(edit.range.start)] + edit.new_text + text[offset(edit.range.end):]


@pytest.mark.asyncio
async def test_quick_fixes_remove_a_redundant_override_fix_a_key_and_insert_a_reference(
        client: LanguageClient, bundled: Project) -> None:
    text = (bundled.root / PROD_MAGDS).read_text()
    uri = open_doc(client, bundled, PROD_MAGDS)
    redundant = text.replace("    max_size: 50\n", "    max_size: 50\n  statement_timeout_seconds: 30\n")
    change(client, uri, 2, redundant)
    await barrier(client, uri)
    [action] = await fixes(client, uri)
    assert action.title == "Remove the redundant override of magds.statement_timeout_seconds"
    assert applied(redundant, action) == text

    typo = text.replace("  pool:\n", "  poool:\n")
    change(client, uri, 3, typo)
    await barrier(client, uri)
    [action] = await fixes(client, uri)
    assert action.title == "Change 'poool' to 'pool'"
    assert applied(typo, action) == text

    secret_uri = open_doc(client, bundled, SECRET_MAGDS)
    secret = (bundled.root / SECRET_MAGDS).read_text()
    literal = secret.replace('"vault://secret/k3s/production/magds#db_password"', f'"{CANARY}"  # temp')
    change(client, secret_uri, 2, literal)
    await barrier(client, secret_uri)
    [action] = await fixes(client, secret_uri)
    assert action.title == ("Replace the literal with a reference "
                            "(vault://secret/k3s/production/magds#password)")
    assert applied(literal, action) == secret.replace(
        '"vault://secret/k3s/production/magds#db_password"',
        '"vault://secret/k3s/production/magds#password"  # temp')


@pytest.mark.asyncio
async def test_no_message_of_the_server_carries_a_secret_value(client: LanguageClient,
                                                               bundled: Project) -> None:
    secret = (bundled.root / SECRET_MAGDS).read_text()
    literal = secret.replace('"vault://secret/k3s/production/magds#db_password"', f'"{CANARY}"')
    uri = open_doc(client, bundled, SECRET_MAGDS, literal)
    await barrier(client, uri)
    [found] = client.diagnostics[uri]
    assert found.code == "schema-pattern"
    assert found.message == ("<redacted> does not match '^(vault://|env://)' (a secret key holds a "
                             "reference: vault://<mount>/<path>#<key> or env://VAR) "
                             "(schema: pattern)")
    await hover(client, uri, 4, 6)
    await fixes(client, uri)
    await client.text_document_completion_async(types.CompletionParams(
        types.TextDocumentIdentifier(uri), types.Position(4, 16)))
    await client.text_document_references_async(types.ReferenceParams(
        text_document=types.TextDocumentIdentifier(uri), position=types.Position(4, 6),
        context=types.ReferenceContext(include_declaration=True)))
    # A literal in a non-secret key that the project's redact globs do not cover is
    # not a secret; one in a schema violation message of a secret key is masked.
    change(client, uri, 2, literal.replace(f'"{CANARY}"', f"[{CANARY}]"))
    await barrier(client, uri)
    assert client.diagnostics[uri]
    protocol = client.protocol
    assert isinstance(protocol, RecordingProtocol)
    assert len(protocol.received) > 5
    assert not [m for m in protocol.received if CANARY in m]


@pytest.mark.asyncio
async def test_each_root_of_a_multi_root_workspace_is_its_own_project(
        client: LanguageClient, bundled: Project, mini: Project) -> None:
    client.workspace_did_change_workspace_folders(types.DidChangeWorkspaceFoldersParams(
        types.WorkspaceFoldersChangeEvent(
            added=[types.WorkspaceFolder(uri_of(mini, ""), "mini")], removed=[])))
    mini_uri = open_doc(client, mini, "layers/environments/dev/magds.yaml",
                        "magds:\n  host: localhost\n  port: 0\n")
    bundled_uri = open_doc(client, bundled, PROD_MAGDS)
    await barrier(client, mini_uri)
    [found] = client.diagnostics[mini_uri]
    # The file is a layer of dev only: no need to say where.
    assert found.message == "0 is less than the minimum of 1 (schema: minimum)"
    assert not client.diagnostics[bundled_uri]
    text = await hover(client, mini_uri, 1, 3)
    assert "- **dev**: `\"localhost\"`" in text
    assert "- **prod**: `\"db\"`" in text
    client.workspace_did_change_workspace_folders(types.DidChangeWorkspaceFoldersParams(
        types.WorkspaceFoldersChangeEvent(
            added=[], removed=[types.WorkspaceFolder(uri_of(mini, ""), "mini")])))
    await barrier(client, bundled_uri)
    assert not client.diagnostics[mini_uri]


@pytest.fixture
def large(tmp_path: Path) -> Project:
    """A generated project (benchmarks/synth.py), smaller than the benchmark's."""
    root = tmp_path / "large"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "synth.py"), str(root),
                    "--services", "12", "--keys", "300", "--envs", "3"], check=True,
                   capture_output=True)
    return Project(root)


@pytest.mark.asyncio
async def test_a_generated_large_project_is_checked_as_you_type(client: LanguageClient,
                                                                large: Project) -> None:
    rel = sorted(p.relative_to(large.root).as_posix()
                 for p in (large.root / "layers" / "base").glob("*.yaml"))[0]
    text = (large.root / rel).read_text()
    uri = open_doc(client, large, rel)
    await barrier(client, uri)
    assert not client.diagnostics[uri]
    lines = text.split("\n")
    # The first leaf of the file: its key gets a value of the wrong type.
    index = next(i for i, line in enumerate(lines) if line.startswith("    ") and ": " in line)
    key = lines[index].split(":")[0].strip()
    broken = [*lines[:index], f"    {key}: {{}}", *lines[index + 1:]]
    change(client, uri, 2, "\n".join(broken))
    await barrier(client, uri)
    found = client.diagnostics[uri]
    assert found
    assert {(d.range.start.line, d.range.start.character, d.severity) for d in found} == {
        (index, 4, types.DiagnosticSeverity.Error)}
    shown = await hover(client, uri, index - 1 if lines[index - 1].startswith("    ")
                        else index + 1, 6)
    assert "- **" in shown and "set at `" in shown


@pytest.mark.asyncio
async def test_files_changed_on_disk_are_read_again(client: LanguageClient,
                                                    bundled: Project) -> None:
    uri = open_doc(client, bundled, SECRET_MAGDS)
    changed = bundled.root / PROD_MAGDS  # not open in the editor
    changed.write_text(changed.read_text().replace("max_size: 50", "max_size: 0"))
    client.workspace_did_change_watched_files(types.DidChangeWatchedFilesParams(
        [types.FileEvent(uri_of(bundled, PROD_MAGDS), types.FileChangeType.Changed)]))
    await barrier(client, uri)
    [found] = client.diagnostics[uri_of(bundled, PROD_MAGDS)]
    assert found.message == "0 is less than the minimum of 1 (schema: minimum)"


@pytest.mark.asyncio
async def test_a_broken_project_file_is_reported_on_it_until_it_is_saved_fixed(
        client: LanguageClient, bundled: Project) -> None:
    project_file = bundled.root / "magcfg.yaml"
    good = project_file.read_text()
    project_file.write_text(good.replace("environments: [dev, staging, production]",
                                         "environments: [dev, staging, production]\nlayres: []"))
    uri = open_doc(client, bundled, PROD_MAGDS)
    await barrier(client, uri)
    project_uri = uri_of(bundled, "magcfg.yaml")
    [found] = client.diagnostics[project_uri]
    assert found.message == "unknown section 'layres' (did you mean 'layers'?)"
    assert found.range.start.line == 4
    project_file.write_text(good)
    client.text_document_did_save(types.DidSaveTextDocumentParams(
        types.TextDocumentIdentifier(project_uri)))
    await barrier(client, uri)
    assert not client.diagnostics[project_uri]
    assert "- **production**: `50`" in await hover(client, uri, 7, 6)


def test_the_lsp_command_is_listed(bundled: Project) -> None:
    done = bundled.run("lsp", "--help")
    assert done.returncode == 0, done.stderr
    assert "Language server for layer files" in done.stdout


@pytest.mark.asyncio
async def test_a_keystroke_republishes_only_what_it_changed(client: LanguageClient,
                                                           bundled: Project) -> None:
    rel = "layers/base/magds.yaml"
    text = (bundled.root / rel).read_text().replace("    max_size: 10\n", "    max_size: 4\n")
    uri = open_doc(client, bundled, rel, text)
    await barrier(client, uri)
    dev_uri = uri_of(bundled, "layers/environments/dev/magds.yaml")
    assert client.diagnostics[dev_uri]  # the dev override is now redundant
    protocol = client.protocol
    assert isinstance(protocol, RecordingProtocol)
    seen = len(protocol.received)
    change(client, uri, 2, text.replace("connect_timeout_seconds: 10", "connect_timeout_seconds: 11"))
    await barrier(client, uri)
    published = [json.loads(m)["params"]["uri"] for m in protocol.received[seen:]
                 if json.loads(m).get("method") == "textDocument/publishDiagnostics"]
    assert published == [uri]


@pytest.mark.asyncio
async def test_a_document_uri_names_an_absolute_local_file_or_nothing(
        client: LanguageClient, bundled: Project) -> None:
    # The server runs in the repository, whose own project has this file: a relative
    # URI would read it there.
    assert (Path.cwd() / "layers/base/magds.yaml").is_file()
    bad = ["file:layers/base/magds.yaml", "file:///C:/layers/base/magds.yaml",
           uri_of(bundled, "layers/base/magds.yaml").replace("file://", "file://elsewhere"),
           uri_of(bundled, "layers/base/magds.yaml").replace("/magds", "/%00magds"),
           "untitled:magds.yaml"]
    for uri in bad:
        client.text_document_did_open(types.DidOpenTextDocumentParams(types.TextDocumentItem(
            uri, "yaml", 1, "magds:\n  pool:\n    max_size: 5000\n")))
        found = await client.text_document_hover_async(types.HoverParams(
            types.TextDocumentIdentifier(uri), types.Position(2, 6)))
        assert found is None, uri
    good = open_doc(client, bundled, PROD_MAGDS)
    await barrier(client, good)
    assert not any(client.diagnostics.get(uri) for uri in bad)
    assert not client.messages


def test_a_localhost_file_uri_names_the_file_on_this_host(bundled: Project) -> None:
    """``file://localhost/x`` is ``file:///x`` (RFC 8089); the host was kept in the path,
    ``//localhost/x``, which names ``/localhost/x`` on POSIX: no project's file."""
    from magcfg.lsp.server import document_path

    path = str(bundled.root / PROD_MAGDS)
    assert document_path(f"file://localhost{path}") == path
    assert document_path(f"file://LocalHost{path}") == path
    assert document_path("file:tmp/x.yaml") is None  # relative, whatever the host
    assert document_path("file://localhost") is None


@pytest.mark.asyncio
async def test_a_document_below_a_symlink_loop_is_no_project_s(
        client: LanguageClient, bundled: Project, tmp_path: Path) -> None:
    """A repository may commit a link to itself: the project above a document under it
    cannot be looked for (Path.resolve raises RuntimeError, not OSError, for a loop),
    and the request failed in the server, as a new one did before any project opened."""
    (bundled.root / "layers/base/loop").symlink_to("loop")
    (tmp_path / "alone").symlink_to("alone")
    for path in (bundled.root / "layers/base/loop/x.yaml", tmp_path / "alone/x.yaml"):
        uri = from_fs_path(str(path))
        assert uri is not None
        client.text_document_did_open(types.DidOpenTextDocumentParams(types.TextDocumentItem(
            uri, "yaml", 1, "magds:\n  pool:\n    max_size: 5000\n")))
        found = await client.text_document_hover_async(types.HoverParams(
            types.TextDocumentIdentifier(uri), types.Position(2, 6)))
        assert found is None, path
    assert not client.messages


@pytest.mark.asyncio
async def test_the_nearest_project_file_owns_a_file_in_a_nested_project(
        client: LanguageClient, bundled: Project) -> None:
    bundled_uri = open_doc(client, bundled, PROD_MAGDS)
    await barrier(client, bundled_uri)  # the outer project is open first
    nested = Project(bundled.root / "nested")
    nested.write("magcfg.yaml", MINI_PROJECT)
    nested.write("schemas/schema.json", json.dumps(MINI_SCHEMA))
    for rel, text in MINI_BASE.items():
        nested.write(rel, text)
    uri = open_doc(client, nested, "layers/environments/dev/magds.yaml",
                   "magds:\n  host: localhost\n  port: 0\n")
    await barrier(client, uri)
    [found] = client.diagnostics[uri]
    assert found.message == "0 is less than the minimum of 1 (schema: minimum)"
    assert "- **prod**: `\"db\"`" in await hover(client, uri, 1, 3)
    assert not client.diagnostics[bundled_uri]


async def raw_request(client: LanguageClient, msg_id: str, method: str, params: Any
                      ) -> dict[str, Any]:
    """The answer to a request sent as written (the client would type its params)."""
    protocol = client.protocol
    assert isinstance(protocol, RecordingProtocol) and protocol.writer is not None
    body = json.dumps({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
    written = protocol.writer.write(f"Content-Length: {len(body)}\r\n\r\n{body}".encode())
    if inspect.isawaitable(written):
        await written
    for _ in range(300):
        for message in map(json.loads, protocol.received):
            if message.get("id") == msg_id:
                return cast(dict[str, Any], message)
        await asyncio.sleep(0.1)
    raise AssertionError(f"no answer to {method} in 30 s")


@pytest.mark.asyncio
async def test_a_request_with_invalid_params_is_answered_invalid_params(
        client: LanguageClient, bundled: Project) -> None:
    uri = open_doc(client, bundled, PROD_MAGDS)
    for i, params in enumerate([
            {"textDocument": {"uri": uri}},  # no position
            {"textDocument": {"uri": uri}, "position": {"line": "x", "character": 0}},
            {"textDocument": {"uri": uri}, "position": {"line": -1, "character": 0}},
            [uri, 0, 0]]):
        answer = await raw_request(client, f"raw-{i}", types.TEXT_DOCUMENT_HOVER, params)
        assert answer["error"] == {"code": -32602,
                                   "message": "invalid params for textDocument/hover"}
    assert "max_size" in await hover(client, uri, 7, 6)  # still serving
    assert not client.messages


@pytest.mark.asyncio
async def test_a_change_to_a_document_never_opened_is_ignored(
        client: LanguageClient, bundled: Project) -> None:
    uri = uri_of(bundled, PROD_MAGDS)
    change(client, uri, 2, "magds:\n  pool:\n    max_size: 5000\n")
    await barrier(client, uri)
    assert not client.messages  # no error in the server
    assert not client.diagnostics.get(uri)  # the file as saved is checked
    assert "- **production**: `50`" in await hover(client, uri, 7, 6)


@pytest.mark.asyncio
async def test_a_buffer_larger_than_a_file_may_be_is_refused(
        client: LanguageClient, bundled: Project) -> None:
    text = (bundled.root / PROD_MAGDS).read_text()
    uri = open_doc(client, bundled, PROD_MAGDS, text.replace("max_size: 50", "max_size: 5000"))
    await barrier(client, uri)
    assert client.diagnostics[uri]
    change(client, uri, 2, text + "#" * MAX_INPUT_BYTES)
    await barrier(client, uri)
    [refused] = client.messages
    assert refused.message == (f"magcfg: {PROD_MAGDS} is larger than {MAX_INPUT_BYTES} "
                               "bytes: checked as saved, not as typed")
    assert not client.diagnostics[uri]  # the file as saved
    change(client, uri, 3, text.replace("max_size: 50", "max_size: 5000"))
    await barrier(client, uri)
    assert not client.diagnostics[uri]  # closed: a change is one to a document not open


@pytest.mark.asyncio
async def test_the_fixes_of_every_finding_in_a_selection_are_answered_at_once(
        client: LanguageClient, bundled: Project) -> None:
    n = 20_000
    text = "magds:\n" + "".join(f"  k{i}: 1\n" for i in range(n))
    uri = open_doc(client, bundled, PROD_MAGDS, text)
    whole = types.Range(types.Position(0, 0), types.Position(n + 1, 0))
    found = await asyncio.wait_for(client.text_document_code_action_async(
        types.CodeActionParams(types.TextDocumentIdentifier(uri), whole, types.CodeActionContext(
            [types.Diagnostic(types.Range(types.Position(i, 2), types.Position(i, 8)), "m",
                              source="magcfg", data={"code": "redundant", "key": None})
             for i in range(1, n + 1)]))), timeout=60)
    assert found is not None and len(found) == n
    last = found[-1]
    assert isinstance(last, types.CodeAction) and last.edit and last.edit.changes
    assert last.edit.changes[uri][0].range == types.Range(types.Position(n, 0),
                                                          types.Position(n + 1, 0))


def _in_process_server(root: Path) -> tuple[Any, list[str]]:
    """The server without a client: the workspace of ``root``, and the messages it
    would show (each published set of diagnostics is dropped)."""
    from pygls.workspace import Workspace

    from magcfg.lsp.server import MagcfgServer

    ls = MagcfgServer()
    ls.protocol._workspace = Workspace(from_fs_path(str(root)), types.TextDocumentSyncKind.Full)
    shown: list[str] = []
    ls.window_show_message = lambda params: shown.append(params.message)  # type: ignore[method-assign]
    ls.text_document_publish_diagnostics = lambda params: None  # type: ignore[method-assign]
    return ls, shown


def test_a_buffer_is_bounded_in_bytes_as_a_file_is(
        mini: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """A buffer of multi-byte characters fewer than the bound but more bytes than it is
    refused when it opens, and one already open when its project is first opened is
    refused there too (FileTooLarge escaped the request)."""
    import magcfg.lsp.overlay
    import magcfg.lsp.server
    from magcfg.lsp.overlay import buffer_bytes

    assert buffer_bytes("é€😀a") == 2 + 3 + 4 + 1
    monkeypatch.setattr(magcfg.lsp.server, "MAX_INPUT_BYTES", 100)
    monkeypatch.setattr(magcfg.lsp.overlay, "MAX_INPUT_BYTES", 100)
    ls, shown = _in_process_server(mini.root)
    text = "# " + "é" * 60 + "\n"  # 63 characters, 123 bytes
    uri = uri_of(mini, "layers/base/logging.yaml")
    item = types.TextDocumentItem(uri, "yaml", 1, text)
    list(ls.protocol.lsp_text_document__did_open(types.DidOpenTextDocumentParams(item)))
    assert uri not in ls.workspace.text_documents
    ls.workspace.put_text_document(item)  # as an earlier bound let it in
    found = ls.session_of(uri)
    assert found is not None and found[1] == "layers/base/logging.yaml"
    assert shown == ["magcfg: layers/base/logging.yaml is larger than 100 bytes: checked "
                     "as saved, not as typed"]
    assert uri not in ls.workspace.text_documents


def test_a_project_file_that_fails_to_load_is_loaded_again_once_it_changes(
        mini: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    import magcfg.lsp.server

    loads: list[Path] = []
    load = magcfg.lsp.server.load_project

    def counted(file: Path) -> Any:
        loads.append(file)
        return load(file)

    monkeypatch.setattr(magcfg.lsp.server, "load_project", counted)
    ls, _ = _in_process_server(mini.root)
    mini.write("magcfg.yaml", MINI_PROJECT + "layres: []\n")
    uri = uri_of(mini, "layers/base/logging.yaml")
    for _ in range(3):
        assert ls.session_of(uri) is None
    assert len(loads) == 1
    mini.write("magcfg.yaml", MINI_PROJECT)
    found = ls.session_of(uri)
    assert found is not None and len(loads) == 2


@pytest.fixture
def monorepo(tmp_path: Path) -> Project:
    """The small project below the top of a git repository (``platform/config``)."""
    top = tmp_path / "mono"
    project = Project(top / "platform/config")
    project.write("magcfg.yaml", MINI_PROJECT)
    project.write("schemas/schema.json", json.dumps(MINI_SCHEMA, indent=2))
    for rel, text in MINI_BASE.items():
        project.write(rel, text)
    subprocess.run(["git", "init", "-q"], cwd=top, check=True)
    return project


@pytest_lsp.fixture(config=CONFIG)
async def monorepo_client(lsp_client: LanguageClient, monorepo: Project) -> Any:
    top = monorepo.root.parents[1]  # the folder an editor opens: the repository
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=types.ClientCapabilities(),
        workspace_folders=[types.WorkspaceFolder(from_fs_path(str(top)) or "", "mono")],
        root_uri=from_fs_path(str(top))))
    yield
    await lsp_client.shutdown_session()


@pytest.mark.asyncio
async def test_hover_names_files_from_the_repository_s_top_as_every_command_does(
        monorepo_client: LanguageClient, monorepo: Project) -> None:
    """In a monorepo, hover named the layer files from the project directory
    (``layers/base/magds.yaml``), a name that opens no file in the repository an editor
    has open, nor where ``explain`` and CI name it."""
    uri = open_doc(monorepo_client, monorepo, "layers/environments/dev/magds.yaml")
    text = await hover(monorepo_client, uri, 1, 3)  # host
    top = monorepo.root.parents[1]
    assert ("  - set at `platform/config/layers/environments/dev/magds.yaml:2` (environment): "
            "`\"localhost\"`\n"
            "  - overrides `platform/config/layers/base/magds.yaml:2` (base): `\"db\"`"
            ) in text, text
    assert (top / "platform/config/layers/base/magds.yaml").is_file()
    explained = monorepo.run("explain", "magds.host", "--env", "dev")
    assert "platform/config/layers/base/magds.yaml:2" in explained.stdout, explained


def test_a_project_file_held_for_a_symlink_is_refused_on_it_as_every_command_does(
        tmp_path: Path) -> None:
    """A project file committed as a link whose target is a project, where a checkout
    lacks symlinks: the server checked the files against the project it spells."""
    from tests.pipeline.test_load import LINK_HELD, _cloned_without_links

    clone = _cloned_without_links(tmp_path, {"magcfg.yaml": MINI_PROJECT})
    ls, _ = _in_process_server(clone.root)
    published: list[types.PublishDiagnosticsParams] = []
    ls.text_document_publish_diagnostics = published.append
    assert ls.session_of(uri_of(clone, "layers/base/logging.yaml")) is None
    assert [(p.uri, [d.message for d in p.diagnostics]) for p in published] == [
        (uri_of(clone, "magcfg.yaml"), [LINK_HELD])]


def test_a_git_lfs_pointer_is_refused_on_it_as_every_command_does(mini: Project) -> None:
    """A layer file a checkout without git-lfs holds as its pointer: shown on it, never
    checked as the layer it is not."""
    from tests.pipeline.test_load import LFS_POINTER

    mini.write("layers/base/magds.yaml", LFS_POINTER)
    ls, _ = _in_process_server(mini.root)
    published: list[types.PublishDiagnosticsParams] = []
    ls.text_document_publish_diagnostics = published.append
    assert ls.session_of(uri_of(mini, "layers/base/logging.yaml")) is not None
    shown = {(p.uri, d.message) for p in published for d in p.diagnostics}
    assert (uri_of(mini, "layers/base/magds.yaml"),
            "is a Git LFS pointer, not the file it stands for: this checkout was made "
            "without git-lfs (or with GIT_LFS_SKIP_SMUDGE), so it would build other bytes "
            "than one with it; install git-lfs and run `git lfs pull`, or keep the inputs "
            "out of LFS (drop their filter=lfs in .gitattributes and commit them again)"
            ) in shown, shown


@pytest.mark.asyncio
async def test_a_pipeline_named_as_a_project_file_is_no_project(client: LanguageClient,
                                                                bundled: Project) -> None:
    """``magcfg init`` writes its GitHub pipeline as .github/workflows/magcfg.yml (its
    Woodpecker one as .woodpecker/magcfg.yml). An editor's client starts the server for
    every YAML file: opened, the pipeline was the nearest file of a project file's name
    to itself, loaded as a project, and its lines marked with the project file's errors
    ("unknown section 'jobs'"). It lists no layers: no project, as lint tells it."""
    workflow = ".github/workflows/magcfg.yml"
    bundled.write(workflow, "name: magcfg\non: [push, pull_request]\npermissions:\n"
                            "  contents: read\njobs:\n  config:\n    runs-on: ubuntu-latest\n"
                            "    steps:\n      - run: magcfg build --check\n")
    bundled.write(".github/workflows/release.yml", "name: release\non: [push]\njobs: {}\n")
    uris = [open_doc(client, bundled, rel) for rel in (workflow, ".github/workflows/release.yml")]
    prod = open_doc(client, bundled, PROD_MAGDS)
    for uri in (*uris, prod):
        await barrier(client, uri)
    assert all(not client.diagnostics.get(uri) for uri in uris), client.diagnostics
    # The project's own files are served as before.
    assert "- **production**: `50`" in await hover(client, prod, 7, 6)
