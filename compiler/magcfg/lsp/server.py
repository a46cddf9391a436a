"""``magcfg lsp``: the language server (pygls, stdio).

Each project (the nearest ``magcfg.yaml`` above an opened file, so several in a
multi-root workspace) gets a ``Session``; this module only translates between the
Language Server Protocol and the sessions: positions (the client's UTF-16 units and
0-based lines), URIs, and diagnostics, which are published for every file with a finding
(and cleared when it has none left).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol, lsp_method
from pygls.uris import from_fs_path, to_fs_path

from ..durable import MAX_INPUT_BYTES, FileTooLarge, read_regular
from ..errors import BuildError, MagcfgError, UsageError, printable
from ..project import (
    find_project_file,
    load_project,
    may_be_project_text,
    nearest_project_file,
)
from ..version import __version__
from .overlay import buffer_bytes
from .session import Finding, Place, Session

_SEVERITY = {"error": types.DiagnosticSeverity.Error,
             "warning": types.DiagnosticSeverity.Warning}


def document_path(uri: Any) -> str | None:
    """The path a document URI from the client names: only an absolute ``file:`` URI
    (no host but localhost, no NUL) names one. Any other (``untitled:``, a relative
    ``file:relative/x.yaml``, one read against the server's working directory, a
    Windows drive on POSIX) names none, and its document is never read."""
    if not isinstance(uri, str) or "\0" in unquote(uri):
        return None
    parts = urlsplit(uri)
    if parts.scheme.lower() != "file" or parts.netloc.lower() not in ("", "localhost") \
            or not parts.path.startswith("/"):
        return None
    # localhost is this host (RFC 8089): pygls would keep it, as `//localhost/...`.
    path = to_fs_path(urlunsplit(parts._replace(netloc="")))
    return path if path and os.path.isabs(path) else None


class _Dropped:
    """A message that was answered (or ignored) while it was read."""


_DROPPED = _Dropped()


class MagcfgProtocol(LanguageServerProtocol):
    """pygls' protocol, with what the client sends checked before it is kept."""

    def structure_message(self, data: dict[str, Any]) -> Any:
        try:
            return super().structure_message(data)
        except Exception:
            # pygls drops a message it cannot read: a request would wait for ever.
            msg_id = data.get("id")
            if (isinstance(data.get("method"), str) and isinstance(msg_id, int | str)
                    and not isinstance(msg_id, bool)):
                error = JsonRpcInvalidParams(f"invalid params for {data['method']}")
                self._send_response(msg_id, None, error.to_response_error())
            return _DROPPED

    def handle_message(self, message: Any) -> None:
        if message is not _DROPPED:
            super().handle_message(message)

    @lsp_method(types.TEXT_DOCUMENT_DID_OPEN)
    def lsp_text_document__did_open(self, params: types.DidOpenTextDocumentParams
                                    ) -> Iterator[Any]:
        if document_path(params.text_document.uri) is None:
            return
        if buffer_bytes(params.text_document.text) > MAX_INPUT_BYTES:
            # Not kept: the handler finds no document, and reports the buffer refused.
            handler = self.fm.features.get(types.TEXT_DOCUMENT_DID_OPEN)
            if handler is not None:
                yield handler, (params,), None
            return
        yield from super().lsp_text_document__did_open(params)

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: types.DidChangeTextDocumentParams
                                      ) -> Iterator[Any]:
        if unquote(params.text_document.uri) not in self.workspace.text_documents:
            return  # never opened (or refused): there is nothing to change
        if any(buffer_bytes(change.text) > MAX_INPUT_BYTES
               for change in params.content_changes):
            # Closed, not changed: the handler finds no document, as for didOpen.
            self.workspace.remove_text_document(params.text_document.uri)
            params.content_changes = []
        yield from super().lsp_text_document__did_change(params)


class MagcfgServer(LanguageServer):
    """The server, with its sessions by project root."""

    def __init__(self) -> None:
        super().__init__("magcfg", __version__, protocol_cls=MagcfgProtocol)
        self.sessions: dict[str, Session] = {}
        # project root -> file -> what was last published for it (files with findings)
        self.published: dict[str, dict[str, list[Finding]]] = {}
        # project file -> its stat when it failed to load: not loaded again until it
        # changes (a request in its tree would otherwise load it each time).
        self.unloadable: dict[str, tuple[int, int, int, int]] = {}

    # -- sessions ---------------------------------------------------------------------

    def session_of(self, uri: str) -> tuple[Session, str] | None:
        """The session of the project holding the document, and its path in it: the
        nearest ``magcfg.yaml`` above the file owns it, also inside another project's
        tree (a project opened first owns no nested project's files)."""
        path = document_path(uri)
        if path is None:
            return None
        best: tuple[Session, str] | None = None
        for session in self.sessions.values():
            rel = session.relative(path)
            if rel is not None and (best is None or len(str(session.source.root))
                                    > len(str(best[0].source.root))):
                best = (session, rel)
        try:
            nearest = nearest_project_file(Path(path).parent)
        except (OSError, RuntimeError):  # Path.resolve's error for a loop of links
            nearest = None
        if nearest is None or (best is not None and not _below(
                os.path.realpath(nearest.parent), str(best[0].source.root))):
            return best
        return self._open_project(nearest.parent, path)

    def _open_project(self, directory: Path, path: str) -> tuple[Session, str] | None:
        try:
            file = find_project_file(directory)
        except UsageError:
            return None  # no project above this file: not ours
        root = Path(os.path.realpath(file.parent))
        stamp = _stamp(file)
        if stamp is not None and self.unloadable.get(str(file)) == stamp:
            return None  # its errors are shown on it already
        try:
            project = load_project(file)
        except BuildError as exc:
            # Shown on the project file until it loads (checked again when it changes).
            if stamp is not None:
                self.unloadable[str(file)] = stamp
            if not _may_be_a_project(file):
                return None  # a CI pipeline of that name (init's): nothing of ours
            found: dict[str, list[Finding]] = {}
            for d in exc.diagnostics:
                found.setdefault(d.file or file.name, []).append(Finding(d, (), 0, 0))
            self._publish_all(root, found, lambda _rel: None)
            return None
        self.unloadable.pop(str(file), None)
        session = Session(project)
        self.sessions[str(session.source.root)] = session
        for uri, document in list(self.workspace.text_documents.items()):
            doc_path = document_path(document.uri)
            rel = session.relative(doc_path) if doc_path else None
            if rel is not None:
                try:
                    session.source.open(rel, document.source)
                except FileTooLarge as exc:
                    refused(self, uri, rel, exc)
        session.full_check()
        self.publish(session)
        rel = session.relative(path)
        return (session, rel) if rel is not None else None

    def drop_sessions_under(self, folder_uri: str) -> None:
        folder = document_path(folder_uri)
        if folder is None:
            return
        real = os.path.realpath(folder)
        for root in [r for r in self.sessions if r == real or r.startswith(real + os.sep)]:
            session = self.sessions.pop(root)
            self._publish_all(session.source.root, {}, session.text)

    # -- diagnostics --------------------------------------------------------------------

    def reload(self, session: Session) -> None:
        """The project file changed: environments, layers and schema may all have."""
        self.sessions.pop(str(session.source.root), None)
        self._open_project(session.source.root, str(session.source.root / session.project.file))

    def publish(self, session: Session, edited: str | None = None) -> None:
        """Diagnostics of every file that has findings or had some, and of the file
        just edited (its version is answered even when it has none)."""
        self._publish_all(session.source.root, session.findings(), session.text, edited)

    def _publish_all(self, root: Path, findings: dict[str, list[Finding]],
                     text_of: Callable[[str], str | None], edited: str | None = None) -> None:
        before = self.published.get(str(root), {})
        for file in sorted(before.keys() | findings.keys()):
            if file != edited and before.get(file) == findings.get(file):
                continue  # unchanged: a keystroke republishes only what it changed
            self._publish_file(root, file, findings.get(file, []), text_of(file))
        if edited is not None and edited not in before.keys() | findings.keys():
            self._publish_file(root, edited, [], text_of(edited))
        self.published[str(root)] = findings

    def _publish_file(self, root: Path, file: str, findings: list[Finding],
                      text: str | None) -> None:
        uri = from_fs_path(str(root / file))
        if uri is None:
            return
        lines = text.split("\n") if text is not None else []
        out = []
        for f in findings:
            d = f.diagnostic
            line = (d.line - 1) if d.line else 0
            rng = types.Range(types.Position(line, f.column),
                              types.Position(line, max(f.column, f.line_length)))
            if lines:
                rng = self.workspace.position_codec.range_to_client_units(lines, rng)
            message = printable(d.message, lines=True)
            if f.envs:
                message += f" (in {', '.join(f.envs)})"
            out.append(types.Diagnostic(
                range=rng, message=message, severity=_SEVERITY[d.severity], code=d.code,
                source="magcfg", data={"code": d.code, "key": d.key}))
        version = None
        document = self.workspace.text_documents.get(uri)
        if document is not None:
            version = document.version
        self.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=uri, diagnostics=out, version=version))

    # -- positions ----------------------------------------------------------------------

    def server_position(self, session: Session, rel: str, position: types.Position
                        ) -> tuple[int, int]:
        text = session.text(rel) or ""
        found = self.workspace.position_codec.position_from_client_units(
            text.split("\n"), position)
        return found.line, found.character

    def location(self, session: Session, place: Place) -> types.Location | None:
        uri = from_fs_path(str(session.source.root / place.file))
        if uri is None:
            return None
        text = session.text(place.file) or ""
        rng = types.Range(types.Position(place.line, place.column),
                          types.Position(place.line, place.column + place.length))
        rng = self.workspace.position_codec.range_to_client_units(text.split("\n"), rng)
        return types.Location(uri=uri, range=rng)


def _stamp(file: Path) -> tuple[int, int, int, int] | None:
    """What changes when ``file`` is written (None: it cannot be read)."""
    try:
        st = os.stat(file)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def refused(ls: MagcfgServer, uri: str, rel: str, exc: FileTooLarge) -> None:
    """The buffer of ``uri`` (``rel``) is larger than a file may be: it is not kept
    (memory), and the file counts as saved, as once the buffer closes."""
    ls.workspace.remove_text_document(uri)
    ls.window_show_message(types.ShowMessageParams(
        types.MessageType.Warning,
        f"magcfg: {printable(rel)} {exc.message}: checked as saved, not as typed"))


def _may_be_a_project(file: Path) -> bool:
    """Whether a file of a project file's name that does not load may be a project whose
    errors are shown on it: not a mapping of none of its sections, as the pipelines
    ``magcfg init`` writes (``.github/workflows/magcfg.yml``) are, which lint --since
    tells apart alike."""
    try:
        text = read_regular(file, MAX_INPUT_BYTES).decode("utf-8")
    except (OSError, MagcfgError, UnicodeDecodeError):
        return True  # what cannot be read is reported as the project's error
    return may_be_project_text(text, file.name)


def _below(path: str, root: str) -> bool:
    """Whether ``path`` lies strictly inside the directory ``root``."""
    return path.startswith(root + os.sep)


server = MagcfgServer()


def _changed(ls: MagcfgServer, uri: str) -> None:
    found = ls.session_of(uri)
    if found is None:
        return
    session, rel = found
    document = ls.workspace.text_documents.get(unquote(uri))
    try:
        if document is None:  # refused by MagcfgProtocol: larger than a file may be
            raise FileTooLarge(rel, 0, MAX_INPUT_BYTES)
        session.edit(rel, document.source)
    except FileTooLarge as exc:
        refused(ls, uri, rel, exc)
        session.edit(rel, None)
    ls.publish(session, rel)


@server.feature(types.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: MagcfgServer, params: types.DidOpenTextDocumentParams) -> None:
    _changed(ls, params.text_document.uri)


@server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: MagcfgServer, params: types.DidChangeTextDocumentParams) -> None:
    _changed(ls, params.text_document.uri)


@server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: MagcfgServer, params: types.DidCloseTextDocumentParams) -> None:
    found = ls.session_of(params.text_document.uri)
    if found is None:
        return
    session, rel = found
    session.edit(rel, None)
    ls.publish(session)


@server.feature(types.TEXT_DOCUMENT_DID_SAVE)
def did_save(ls: MagcfgServer, params: types.DidSaveTextDocumentParams) -> None:
    ls.unloadable.clear()  # what a project file failed on may be the file just saved
    found = ls.session_of(params.text_document.uri)
    if found is None:
        return
    session, rel = found
    if rel == session.project.file:
        ls.reload(session)
        return
    session.source.forget_listings()
    session.full_check()
    ls.publish(session)


@server.feature(types.INITIALIZED)
async def initialized(ls: MagcfgServer, params: types.InitializedParams) -> None:
    capabilities = ls.client_capabilities.workspace
    watching = capabilities.did_change_watched_files if capabilities else None
    if watching is not None and watching.dynamic_registration:
        # Files changed behind the editor's back (a checkout, a generator) are read again.
        await ls.client_register_capability_async(types.RegistrationParams([types.Registration(
            "magcfg-layer-files", types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
            types.DidChangeWatchedFilesRegistrationOptions([types.FileSystemWatcher(
                "**/*.{yaml,yml,cue,json}")]))]))


@server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
def did_change_watched_files(ls: MagcfgServer, params: types.DidChangeWatchedFilesParams
                             ) -> None:
    paths = [path for change in params.changes if (path := document_path(change.uri))]
    for session in list(ls.sessions.values()):
        changed = [rel for path in paths if (rel := session.relative(path)) is not None]
        if not changed:
            continue
        if session.project.file in changed:
            ls.reload(session)
            continue
        session.files_changed(changed)
        ls.publish(session)


@server.feature(types.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)
def did_change_folders(ls: MagcfgServer, params: types.DidChangeWorkspaceFoldersParams
                       ) -> None:
    for folder in params.event.removed:
        ls.drop_sessions_under(folder.uri)


@server.feature(types.TEXT_DOCUMENT_HOVER)
def hover(ls: MagcfgServer, params: types.HoverParams) -> types.Hover | None:
    found = ls.session_of(params.text_document.uri)
    if found is None:
        return None
    session, rel = found
    line, character = ls.server_position(session, rel, params.position)
    text = session.hover(rel, line, character)
    if text is None:
        return None
    return types.Hover(contents=types.MarkupContent(types.MarkupKind.Markdown, text))


@server.feature(types.TEXT_DOCUMENT_DEFINITION)
def definition(ls: MagcfgServer, params: types.DefinitionParams) -> list[types.Location]:
    found = ls.session_of(params.text_document.uri)
    if found is None:
        return []
    session, rel = found
    line, character = ls.server_position(session, rel, params.position)
    return [loc for p in session.definition(rel, line, character)
            if (loc := ls.location(session, p)) is not None]


@server.feature(types.TEXT_DOCUMENT_REFERENCES)
def references(ls: MagcfgServer, params: types.ReferenceParams) -> list[types.Location]:
    found = ls.session_of(params.text_document.uri)
    if found is None:
        return []
    session, rel = found
    line, character = ls.server_position(session, rel, params.position)
    return [loc for p in session.references(rel, line, character)
            if (loc := ls.location(session, p)) is not None]


@server.feature(types.TEXT_DOCUMENT_COMPLETION,
                types.CompletionOptions(trigger_characters=[" ", ":"]))
def completion(ls: MagcfgServer, params: types.CompletionParams) -> types.CompletionList:
    found = ls.session_of(params.text_document.uri)
    if found is None:
        return types.CompletionList(is_incomplete=False, items=[])
    session, rel = found
    line, character = ls.server_position(session, rel, params.position)
    items = []
    for c in session.complete(rel, line, character):
        items.append(types.CompletionItem(
            label=c.label, detail=c.detail or None,
            documentation=types.MarkupContent(types.MarkupKind.Markdown, c.documentation)
            if c.documentation else None,
            kind=types.CompletionItemKind.Value if c.is_value
            else types.CompletionItemKind.Property,
            insert_text=c.insert))
    return types.CompletionList(is_incomplete=False, items=items)


@server.feature(types.TEXT_DOCUMENT_CODE_ACTION,
                types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix]))
def code_action(ls: MagcfgServer, params: types.CodeActionParams) -> list[types.CodeAction]:
    found = ls.session_of(params.text_document.uri)
    if found is None:
        return []
    session, rel = found
    text = session.text(rel) or ""
    lines = text.split("\n")
    actions = []
    ours = [(d, data) for d in params.context.diagnostics
            if d.source == "magcfg" and isinstance(data := d.data, dict)]
    fixes = session.fixes_of(rel, [(d.range.start.line, str(data.get("code")), d.message)
                                   for d, data in ours])
    for (diagnostic, _), edits in zip(ours, fixes, strict=True):
        for fix in edits:
            rng = ls.workspace.position_codec.range_to_client_units(lines, types.Range(
                types.Position(fix.first_line, fix.first_column),
                types.Position(fix.end_line, fix.end_column)))
            uri = params.text_document.uri
            actions.append(types.CodeAction(
                title=fix.title, kind=types.CodeActionKind.QuickFix,
                diagnostics=[diagnostic], is_preferred=True,
                edit=types.WorkspaceEdit(changes={uri: [types.TextEdit(rng, fix.text)]})))
    return actions


def serve() -> None:
    """Serve the Language Server Protocol on stdin/stdout until the client exits."""
    server.start_io()
