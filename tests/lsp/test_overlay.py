"""Open buffers over the files, read under the build's rules (docs/security.md)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from magcfg.durable import FileTooLarge, PathError
from magcfg.lsp import overlay
from magcfg.lsp.overlay import OverlaySource
from tests.conftest import Project


def test_a_buffer_wins_over_the_file_until_it_is_closed(mini: Project) -> None:
    source = OverlaySource(mini.root)
    rel = "layers/base/logging.yaml"
    source.open(rel, "logging:\n  level: debug\n")
    assert source.read(rel) == b"logging:\n  level: debug\n"
    assert (mini.root / rel).read_text() == "logging:\n  level: info\n"  # unsaved
    source.close(rel)
    assert source.read(rel) == b"logging:\n  level: info\n"


def test_a_buffer_for_a_path_the_build_refuses_is_not_read(mini: Project, tmp_path: Path) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text("logging: {}\n")
    os.symlink(outside, mini.root / "layers/base/out.yaml")
    source = OverlaySource(mini.root, ("generated",))
    source.open("layers/base/out.yaml", "logging:\n  level: debug\n")
    with pytest.raises(PathError, match="symlink leads outside the repository"):
        source.read("layers/base/out.yaml")
    mini.write("generated/dev/config.json", "{}\n")
    source.open("generated/dev/config.json", "{}\n")
    with pytest.raises(PathError, match="which magcfg does not read"):
        source.read("generated/dev/config.json")
    source.open("layers/base/unsaved.yaml", "logging: {}\n")  # not on disk
    with pytest.raises(PathError, match="not found"):
        source.read("layers/base/unsaved.yaml")


def test_listings_are_kept_until_files_change(mini: Project) -> None:
    source = OverlaySource(mini.root)
    files, problems = source.list_layer("layers/base")
    assert (files, problems) == (["layers/base/logging.yaml", "layers/base/magds.yaml"], [])
    mini.write("layers/base/cache.yaml", "cache: {}\n")
    assert source.list_layer("layers/base")[0] == files  # no walk per keystroke
    source.forget_listings()
    assert source.list_layer("layers/base")[0] == [
        "layers/base/cache.yaml", "layers/base/logging.yaml", "layers/base/magds.yaml"]


def test_a_buffer_larger_than_a_file_the_build_reads_is_refused(
        mini: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """Counted in UTF-8 bytes, as a file is: fewer characters may be more bytes."""
    monkeypatch.setattr(overlay, "MAX_INPUT_BYTES", 10)
    source = OverlaySource(mini.root)
    rel = "layers/base/logging.yaml"
    source.open(rel, "a: 1\n")
    with pytest.raises(FileTooLarge):
        source.open(rel, "a: " + "é" * 4)  # 7 characters, 11 bytes
    assert source.buffer(rel) is None
    assert source.read(rel) == (mini.root / rel).read_bytes()
