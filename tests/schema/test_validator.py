"""Schema validation of a build whose root schema relates its top-level keys."""

from __future__ import annotations

import copy
import difflib
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


def test_did_you_mean_compares_a_bounded_number_of_characters(
        mini: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """difflib is quadratic in the lengths: a hint for each of a few unknown 3,000-character
    keys among 400 known ones took minutes. Counted (and not run) here: the character
    pairs the hints ask difflib to compare."""
    asked: list[int] = []

    def close_matches(word: str, possibilities: list[str], *_: Any, **__: Any) -> list[str]:
        asked.append(len(word) * sum(map(len, possibilities)))
        return []

    monkeypatch.setattr(difflib, "get_close_matches", close_matches)
    known = {f"{i:03d}" + "ab" * 1500: {"type": "integer"} for i in range(400)}
    schema: dict[str, Any] = copy.deepcopy(MINI_SCHEMA)
    schema["properties"]["magds"]["properties"].update(known)
    mini.write("schemas/schema.json", json.dumps(schema))
    unknown = [f"x{i}" + "ab" * 1500 for i in range(3)]
    # An explicit key (`? KEY`): a plain one is at most 1,024 characters in YAML.
    mini.write("layers/base/magds.yaml", "magds:\n  host: db\n" + "".join(
        f"  ? {key}\n  : 1\n" for key in unknown))
    with pytest.raises(magcfg.BuildError) as failed:
        magcfg.build(magcfg.load_project(mini.root / "magcfg.yaml"), cache=BuildCache(None))
    assert sorted(str(d.key) for d in failed.value.diagnostics) == sorted(
        f"magds.{key}" for key in unknown)
    assert sum(asked) <= 1_000_000


def test_did_you_mean_still_names_a_typo(mini: Project) -> None:
    mini.write("layers/base/magds.yaml", "magds:\n  host: db\n  prot: 1\n")
    with pytest.raises(magcfg.BuildError) as failed:
        magcfg.build(magcfg.load_project(mini.root / "magcfg.yaml"), cache=BuildCache(None))
    assert [d.message for d in failed.value.diagnostics] == [
        "unknown key 'prot' (did you mean 'port'?) (environments dev, prod)"]
