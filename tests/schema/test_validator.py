"""Schema validation of a build whose root schema relates its top-level keys."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

import magcfg
from magcfg.pipeline.cache import BuildCache

from ..conftest import MINI_SCHEMA, Project

RELATING = [
    {"allOf": [{"required": ["magds"]}]},
    {"dependentRequired": {"logging": ["magds"]}},
    {"anyOf": [{"required": ["magds"]}, {"required": ["nothing"]}]},
]


def _build(project: Project, root: dict[str, Any]) -> list[str]:
    schema = {**copy.deepcopy(MINI_SCHEMA), **root}
    project.write("schemas/schema.json", json.dumps(schema, indent=2))
    try:
        magcfg.build(magcfg.load_project(project.root / "magcfg.yaml"), cache=BuildCache(None))
    except magcfg.BuildError as exc:
        return [d.format() for d in exc.diagnostics]
    return []


@pytest.mark.parametrize("root", RELATING)
def test_a_valid_config_passes_a_root_that_relates_keys(mini: Project,
                                                        root: dict[str, Any]) -> None:
    """Each top-level key is checked without the root's relating keywords (``{"logging":
    ...}`` alone lacks ``magds``), and the whole document with them."""
    assert _build(mini, root) == []
    assert (mini.root / "generated" / "dev" / "config.json").is_file()


def test_what_relates_keys_is_checked_on_the_whole_document(mini: Project) -> None:
    said = _build(mini, {"dependentRequired": {"logging": ["tracing"]}})
    assert said and any("tracing" in s for s in said), said
    assert not (mini.root / "generated").exists()


def test_a_keys_own_violation_is_found_under_a_relating_root(mini: Project) -> None:
    mini.write("layers/environments/dev/magds.yaml", "magds:\n  port: not-a-port\n")
    said = _build(mini, RELATING[0])
    assert any("dev/magds.yaml:2" in s and "port" in s for s in said), said
