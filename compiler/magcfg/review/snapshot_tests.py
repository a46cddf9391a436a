"""The tests the pytest plugin (``review/pytest_plugin.py``) runs for each project file it
collects: one per environment, against syrupy's snapshot."""

from __future__ import annotations

from typing import Any

import pytest

from ..project import load_project
from .snapshots import compiled_config


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    project = load_project(metafunc.definition.path)
    metafunc.parametrize("magcfg_env", project.environments, ids=list(project.environments))


def test_compiled_config(magcfg_env: str, snapshot: Any, request: pytest.FixtureRequest
                         ) -> None:
    project = load_project(request.node.path)
    assert compiled_config(project, magcfg_env) == snapshot
