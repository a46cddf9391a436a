"""A project's state in the language server: incremental re-checks, overlay, findings."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from magcfg.lsp.session import Session
from magcfg.pipeline.cache import NO_CACHE_ENV
from magcfg.pipeline.merge import LayerStack
from magcfg.project import load_project
from tests.conftest import (
    Project,
    descriptors_on,
    failed_cleanly,
    finishes_in_a_child,
    tree_state,
)

BASE_MAGDS = "layers/base/magds.yaml"
DEV_MAGDS = "layers/environments/dev/magds.yaml"


@pytest.fixture
def merged(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """(environment, top-level key) of every fragment merged from now on."""
    seen: list[tuple[str, str]] = []
    real = LayerStack.merge_top

    def recording(self: LayerStack, key: str) -> Any:
        seen.append((self.env, key))
        return real(self, key)

    monkeypatch.setattr(LayerStack, "merge_top", recording)
    return seen


def session_of(project: Project) -> Session:
    session = Session(load_project(project.root / "magcfg.yaml"))
    session.full_check()
    return session


def test_an_edit_rechecks_only_the_fragments_it_touched(mini: Project,
                                                        merged: list[tuple[str, str]]) -> None:
    session = session_of(mini)
    assert sorted(set(merged)) == [("dev", "logging"), ("dev", "magds"),
                                   ("prod", "logging"), ("prod", "magds")]
    base = (mini.root / BASE_MAGDS).read_text()
    merged.clear()
    session.edit(BASE_MAGDS, base.replace("port: 5433", "port: 5434"))
    assert merged == [("dev", "magds"), ("prod", "magds")]
    merged.clear()
    session.edit(DEV_MAGDS, "magds:\n  host: laptop\n")
    assert merged == [("dev", "magds")]
    merged.clear()
    session.edit(DEV_MAGDS, "# where the database runs\nmagds:\n  host: laptop\n")
    assert merged == []  # the value did not change


def test_findings_name_the_environments_they_are_in(mini: Project) -> None:
    session = session_of(mini)
    assert session.findings() == {}
    session.edit("layers/base/logging.yaml", "logging:\n  level: verbose\n")
    [finding] = session.findings()["layers/base/logging.yaml"]
    # prod overrides the level, so only dev gets the base layer's bad value.
    assert finding.envs == ("dev",)
    assert finding.diagnostic.line == 2
    assert finding.column == 2
    assert finding.diagnostic.message == ('"verbose" is not one of "debug", "info" or 2 other '
                                          "candidates (schema: enum)")
    session.edit("layers/base/logging.yaml", None)  # closed unsaved: the file counts again
    assert session.findings() == {}


def test_a_buffer_never_stands_in_for_a_file_the_build_would_refuse(
        mini: Project, tmp_path: Path) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text("magds:\n  port: 7\n")
    os.symlink(outside, mini.root / "layers/base/zz.yaml")
    before = tree_state(tmp_path)
    session = session_of(mini)
    session.edit("layers/base/zz.yaml", "magds:\n  port: 0\n")
    found = session.findings()["layers/base/zz.yaml"]
    assert [f.diagnostic.message for f in found] == [
        "symlink leads outside the repository"]
    assert session.hover(BASE_MAGDS, 2, 3) is None  # nothing loaded while that stands
    assert tree_state(tmp_path) == before


def test_an_unsaved_layer_file_that_is_not_on_disk_is_not_read(mini: Project) -> None:
    session = session_of(mini)
    session.edit("layers/base/new.yaml", "magds:\n  port: 0\n")
    assert session.findings() == {}


ENV_KEYED_PROJECT = """\
version: 1
environments: [dev, prod]
layers:
  - name: base
    files: "services/{service}/base.yaml"
    key: "sites.{env}.{service}"
  - name: environment
    files: "services/{service}/env/{env}.yaml"
    key: "sites.{env}.{service}"
schema:
  json: schemas/schema.json
output: generated
"""


def test_a_key_prefix_that_names_the_environment(tmp_path: Path) -> None:
    """``key: sites.{env}.{service}``: one file, a key path of its own per environment."""
    service = {"type": "object", "additionalProperties": False,
               "properties": {"pool": {"type": "integer"}, "host": {"type": "string"}}}
    prod = {**service, "properties": {**service["properties"], "replicas": {"type": "integer"}}}
    schema = {"type": "object", "properties": {"sites": {"type": "object", "properties": {
        "dev": {"type": "object", "properties": {"magds": service}},
        "prod": {"type": "object", "properties": {"magds": prod}}}}}}
    project = Project(tmp_path / "proj")
    project.write("magcfg.yaml", ENV_KEYED_PROJECT)
    project.write("schemas/schema.json", json.dumps(schema))
    project.write("services/magds/base.yaml", "pool: 5\n")
    project.write("services/magds/env/dev.yaml", "pool: 2\n")
    session = session_of(project)
    assert session.findings() == {}
    assert session.keypaths("services/magds/base.yaml", ("pool",)) == {
        "dev": ("sites", "dev", "magds", "pool"), "prod": ("sites", "prod", "magds", "pool")}
    # A file of dev's only: prod's key path is the one the file would have there.
    assert session.keypaths("services/magds/env/dev.yaml", ("pool",)) == {
        "dev": ("sites", "dev", "magds", "pool"), "prod": ("sites", "prod", "magds", "pool")}
    text = session.hover("services/magds/env/dev.yaml", 0, 1)
    assert text is not None
    assert text.startswith("**`sites.dev.magds.pool`**")
    assert ("- **prod** (`sites.prod.magds.pool`): `5`\n"
            "  - set at `services/magds/base.yaml:1` (base): `5`") in text
    assert [p.file for p in session.references("services/magds/base.yaml", 0, 1)] == [
        "services/magds/base.yaml", "services/magds/env/dev.yaml"]
    # Completion: the keys of every environment's prefix the file sits under.
    assert [c.label for c in session.complete("services/magds/base.yaml", 1, 0)] == [
        "host", "replicas"]
    assert [c.label for c in session.complete("services/magds/env/dev.yaml", 1, 0)] == ["host"]


CANARY = "canary-Zq7hunter2-unsaved-literal"


def _answers(session: Session) -> tuple[Any, ...]:
    """What an editor gets: findings, a hover, completion."""
    return (session.findings(), session.hover(BASE_MAGDS, 2, 3),
            [c.label for c in session.complete(BASE_MAGDS, 1, 0)])


def test_a_built_project_opens_from_the_build_cache(
        mini: Project, merged: list[tuple[str, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    """After a build, the first check reads the build cache (nothing merged, the schema
    file not parsed) and answers as a session without it; edits are checked as ever, and
    nothing a buffer holds reaches the cache."""
    mini.write(DEV_MAGDS, "magds:\n  host: localhost\n  port: 5433\n")  # a warning
    assert mini.run("build").returncode == 0
    cache = mini.root / load_project(mini.root / "magcfg.yaml").cache_dir
    before = tree_state(cache)
    assert before
    session = session_of(mini)
    assert merged == []
    schema = session.compiler.schema()
    assert schema is not None and schema._document is None
    with monkeypatch.context() as without:
        without.setenv(NO_CACHE_ENV, "1")
        cold = session_of(mini)
    merged.clear()
    assert _answers(session) == _answers(cold)
    [warning] = session.findings()[DEV_MAGDS]
    assert "repeats the value set below" in warning.diagnostic.message
    base = (mini.root / BASE_MAGDS).read_text()
    for text in (base.replace("port: 5433", "port: 0"),
                 base + f"  password: {CANARY}\n", None):
        session.edit(BASE_MAGDS, text)
        cold.edit(BASE_MAGDS, text)
        assert _answers(session) == _answers(cold)
    assert merged  # the edits were merged
    assert tree_state(cache) == before


def test_a_session_outlives_the_packs_it_read(mini: Project) -> None:
    """A build compacts packs (or someone empties the cache) while the editor is open:
    what the session read stays valid, what it can no longer read is compiled."""
    assert mini.run("build").returncode == 0
    cache = mini.root / load_project(mini.root / "magcfg.yaml").cache_dir
    session = session_of(mini)
    for pack in cache.glob("*.bin"):
        pack.unlink()
    session.edit(BASE_MAGDS, "magds:\n  host: db\n  port: 0\n")
    [finding] = session.findings()[BASE_MAGDS]
    assert finding.diagnostic.key == "magds.port" and finding.envs == ()
    session.files_changed([BASE_MAGDS])
    assert [f.diagnostic.key for f in session.findings()[BASE_MAGDS]] == ["magds.port"]


def test_a_new_schema_lets_go_of_the_cache_it_replaced(mini: Project) -> None:
    assert mini.run("build").returncode == 0
    session = session_of(mini)
    schema = (mini.root / "schemas/schema.json").read_text()
    root = str(mini.root.resolve()) + os.sep

    def in_the_project() -> int:  # the cache and its packs
        return descriptors_on(lambda target: target.startswith(root))

    opened = in_the_project()
    for n in range(5):
        session.edit("schemas/schema.json", schema.replace('"MagDS"', f'"MagDS {n}"'))
        assert session.findings() == {}
    assert 0 < in_the_project() <= opened


@pytest.mark.parametrize("planted", ["symlink", "file"])
def test_a_cache_directory_planted_under_an_open_session_is_left_alone(
        mini: Project, tmp_path: Path, planted: str) -> None:
    """A checkout replaces the cache directory by a symlink (or a file) while the editor
    is open (the project file refuses it on the next load; the build refuses it): the
    session goes on checking, through a new schema too, without reading or writing
    anything there."""
    session = session_of(mini)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "index.bin").write_bytes(b"planted")
    cache = mini.root / load_project(mini.root / "magcfg.yaml").cache_dir
    shutil.rmtree(cache, ignore_errors=True)
    if planted == "symlink":
        os.symlink(elsewhere, cache)
    else:
        cache.write_bytes(b"planted")
    before = tree_state(tmp_path)
    assert "magcfg-cache" in failed_cleanly(mini.run("build"))
    schema = (mini.root / "schemas/schema.json").read_text()
    session.edit("schemas/schema.json", schema.replace('"MagDS"', '"MagDS!"'))
    session.edit(BASE_MAGDS, "magds:\n  host: db\n  port: 0\n")
    assert [f.diagnostic.key for f in session.findings()[BASE_MAGDS]] == ["magds.port"]
    assert tree_state(tmp_path) == before


def test_a_value_before_a_long_run_of_spaces_is_spanned_in_linear_time() -> None:
    """The span a secret-literal fix replaces, after 400,000 spaces: a search from each
    of them would take minutes."""
    script = ("from magcfg.lsp.session import _value_span\n"
              "print(_value_span('a: b' + ' ' * 400_000 + 'x # c', 1))\n")
    assert finishes_in_a_child(script) == "(3, 400005)\n"


@pytest.mark.parametrize("schema", ["{not json", "[]", '{"$ref": "#/nowhere"}', "{" * 10_000])
def test_a_schema_that_cannot_be_read_answers_nothing_and_says_why(mini: Project,
                                                                   schema: str) -> None:
    """The schema is read when first asked about a key: then no question fails."""
    session = session_of(mini)
    assert session.hover(BASE_MAGDS, 1, 3)
    session.edit("schemas/schema.json", schema)
    assert session.hover(BASE_MAGDS, 1, 3) is None
    assert session.complete(BASE_MAGDS, 1, 2) == []
    assert session.fixes(BASE_MAGDS, 1, "schema-type", "magds.host", "m") == []
    [found] = session.findings()["schemas/schema.json"]
    assert found.diagnostic.severity == "error"


def test_the_fixes_of_every_finding_of_a_file_read_it_once(mini: Project) -> None:
    """An editor asks for the fixes of every finding in a selection: 20,000 redundant
    overrides of one map, each read from the top, would take minutes."""
    script = (
        "from magcfg.lsp.session import Session\n"
        "from magcfg.project import load_project\n"
        f"session = Session(load_project({str(mini.root / 'magcfg.yaml')!r}))\n"
        "session.full_check()\n"
        "n = 20_000\n"
        "text = 'magds:\\n' + ''.join(f'  k{i}: 1\\n' for i in range(n))\n"
        f"session.source.open({DEV_MAGDS!r}, text)\n"
        f"fixes = session.fixes_of({DEV_MAGDS!r}, [(n - i, 'redundant', 'm') for i in range(n)])\n"
        "print(len(fixes), fixes[0][0].title, fixes[-1][0].first_line, fixes[-1][0].end_line)\n")
    assert finishes_in_a_child(script) == (
        "20000 Remove the redundant override of magds.k19999 1 2\n")


def test_a_hover_masks_a_secret_literal_its_key_reaches_by_an_alias(mini: Project) -> None:
    """As explain: ``host: *p`` shows no text of the literal ``&p`` wrote under a
    secret key, in any environment or its provenance."""
    canary = "canary-Wb2hunter2-hover"
    mini.write(BASE_MAGDS, f"magds:\n  password: &p {canary}\n  host: *p\n  port: 5433\n")
    session = session_of(mini)
    text = session.hover(BASE_MAGDS, 2, 3)
    assert text is not None and "magds.host" in text
    assert canary not in text
    assert "- **prod**: `\"<redacted>\"`" in text, text


def _commit_all(root: Path) -> None:
    for args in (["init", "-q"], ["add", "-A"],
                 ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c"]):
        subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def _lfs_pointer(mini: Project) -> None:
    mini.write(BASE_MAGDS, "version https://git-lfs.github.com/spec/v1\noid sha256:"
               + "ab" * 32 + "\nsize 1234\n")


def _directory_twin(mini: Project) -> None:
    mini.write("layers/environments/Dev/magds.yaml", "magds:\n  port: 7\n")


def _expanded_ident(mini: Project) -> None:
    mini.write("layers/base/logging.yaml", "# $Id$\nlogging:\n  level: info\n")
    mini.write("layers/base/.gitattributes", "* ident\n")
    _commit_all(mini.root)
    (mini.root / "layers/base/logging.yaml").unlink()
    subprocess.run(["git", "checkout", "--", "."], cwd=mini.root, check=True)


def _latin1_encoding(mini: Project) -> None:
    _commit_all(mini.root)
    mini.write("layers/base/.gitattributes", "magds.yaml working-tree-encoding=ISO-8859-1\n")


def _link_held_as_a_file(mini: Project) -> None:
    (mini.root / BASE_MAGDS).unlink()
    (mini.root / BASE_MAGDS).symlink_to("magds:\n  host: planted\n")
    _commit_all(mini.root)
    subprocess.run(["git", "config", "core.symlinks", "false"], cwd=mini.root, check=True)
    (mini.root / BASE_MAGDS).unlink()
    subprocess.run(["git", "checkout", "--", "."], cwd=mini.root, check=True)
    assert not (mini.root / BASE_MAGDS).is_symlink()


def _schema_converted_in_a_warm_cache(mini: Project) -> None:
    schema = mini.root / "schemas/schema.json"
    schema.write_bytes(schema.read_bytes().replace(b"\n", b"\r\n"))
    subprocess.run(["git", "init", "-q"], cwd=mini.root, check=True)
    assert mini.run("build").returncode == 0  # not yet in the index: an edit
    mini.write(".gitattributes", "*.json text eol=crlf\n")
    subprocess.run(["git", "add", "-A"], cwd=mini.root, check=True)


@pytest.mark.parametrize("planted", [_lfs_pointer, _directory_twin, _expanded_ident,
                                     _latin1_encoding, _link_held_as_a_file,
                                     _schema_converted_in_a_warm_cache])
@pytest.mark.parametrize("opened", [False, True])
def test_what_the_build_refuses_in_the_checkout_the_editor_reports(
        mini: Project, planted: Any, opened: bool) -> None:
    """The editor's buffer stands for the file, and the checkout's checks were the
    build's alone: an LFS pointer, a layer directory beside its case twin, a file git
    converted on checkout (an expanded ``$Id$``, a ``working-tree-encoding``) or a
    committed symlink held as a file of its target was checked as a layer, found sound
    or refused for something else, where the build refuses it saying why. The open
    buffer of such a file, unedited, is refused alike."""
    planted(mini)
    refused = {tuple(line.split(": error: ", 1))
               for line in failed_cleanly(mini.run("build")).splitlines()}
    assert refused
    session = Session(load_project(mini.root / "magcfg.yaml"))
    if opened and (mini.root / BASE_MAGDS).exists():
        session.edit(BASE_MAGDS, (mini.root / BASE_MAGDS).read_bytes().decode("latin-1"))
    session.full_check()
    found = {(file, f.diagnostic.message) for file, findings in session.findings().items()
             for f in findings if f.diagnostic.severity == "error"}
    assert found == refused
