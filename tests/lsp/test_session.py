"""A project's state in the language server: incremental re-checks, overlay, findings."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from magcfg.lsp.session import Session
from magcfg.pipeline.merge import LayerStack
from magcfg.project import load_project
from tests.conftest import Project, tree_state

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
