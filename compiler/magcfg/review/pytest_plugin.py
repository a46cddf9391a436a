"""pytest plugin (entry point ``pytest11: magcfg``): snapshot tests of every magcfg
project pytest finds, with no test code in the project.

pytest collects each ``magcfg.yaml`` it meets as a test module holding
``test_compiled_config[<env>]`` for each environment; the test compiles the environment
in memory (nothing is written) and compares its config with the snapshot that syrupy
keeps in ``__snapshots__/magcfg.ambr`` beside the project file. Update the snapshots with
``pytest --snapshot-update``; ``magcfg promote`` refreshes the ones it affects.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

PROJECT_FILE = "magcfg.yaml"


class ProjectSnapshots(pytest.Module):
    """A project file collected as the module of its snapshot tests."""

    def _getobj(self) -> ModuleType:
        from . import snapshot_tests

        return snapshot_tests


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    if file_path.name != PROJECT_FILE:
        return None
    try:
        # The runtime-only install (`pip install magcfg`) registers this plugin too but
        # cannot compile: snapshot tests need `magcfg[test]`.
        import syrupy  # noqa: F401

        from .. import project  # noqa: F401
    except ImportError:
        return None
    module: pytest.Module = ProjectSnapshots.from_parent(parent, path=file_path)
    return module
