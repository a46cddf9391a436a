"""Snapshots of each environment's compiled config, in syrupy's amber format.

The pytest plugin (``review/pytest_plugin.py``, a ``pytest11`` entry point) makes one
test per environment of a project, ``magcfg.yaml::test_compiled_config[<env>]``, whose
snapshot syrupy keeps in ``__snapshots__/magcfg.ambr`` beside the project file.
``magcfg promote`` rewrites the entry of the environment it changed with the same
serializer, so a promotion commit passes the snapshot tests as it is.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..durable import Tree
from ..project import SNAPSHOT_FILE, Project

TEST_NAME = "test_compiled_config"
_HEADER = "# serializer version: "
_NAME = "# name: "
_DIVIDER = "# ---"


def snapshot_name(env: str) -> str:
    return f"{TEST_NAME}[{env}]"


def snapshot_path(project: Project) -> str:
    """The snapshot file, relative to the project root (beside the project file)."""
    folder = project.file.rpartition("/")[0]
    return f"{folder}/{SNAPSHOT_FILE}" if folder else SNAPSHOT_FILE


def compiled_config(project: Project, env: str) -> dict[str, Any]:
    """What a snapshot holds: the environment's compiled config (config.json), which
    holds secret references only, never values."""
    from ..compiler import compile_environment

    return compile_environment(project, env).config


def _entries(text: str) -> tuple[str, dict[str, str]]:
    """The version line and each entry's raw text (``# name:`` to ``# ---``)."""
    lines = text.split("\n")
    version = lines[0] if lines and lines[0].startswith(_HEADER) else ""
    entries: dict[str, str] = {}
    name: str | None = None
    body: list[str] = []
    for line in lines[1:]:
        if line.startswith(_NAME):
            name, body = line[len(_NAME):], [line]
        elif name is not None:
            body.append(line)
            if line == _DIVIDER:
                entries[name] = "\n".join(body)
                name = None
    return version, entries


def _entry(name: str, data: Any) -> str:
    from syrupy.extensions.amber.serializer import AmberDataSerializer as Amber

    serialized = str(Amber.serialize(data))
    parts = serialized.split("\n")
    lines = [Amber.with_indent(part, 1) for part in parts[:-1]]
    lines.append(Amber.with_indent(parts[-1], 1) if parts[-1] else "")
    if serialized.endswith("\n"):
        lines[-1] = Amber.with_indent("", 1)
    return "\n".join([f"{_NAME}{name}", *lines, _DIVIDER])


def refresh_snapshots(project: Project, envs: Iterable[str]) -> str | None:
    """Rewrite the snapshot entries of ``envs`` from what they compile to now; other
    entries stay byte for byte. Returns the snapshot file's path when the project has
    one (None: the project keeps no snapshots, nothing is written)."""
    rel = snapshot_path(project)
    tree = Tree(project.root, project.fenced)
    current = tree.read_optional(rel)
    if current is None:
        return None
    from syrupy.extensions.amber.serializer import AmberDataSerializer as Amber

    version, entries = _entries(current.decode("utf-8"))
    for env in envs:
        entries[snapshot_name(env)] = _entry(snapshot_name(env), compiled_config(project, env))
    text = (version or f"{_HEADER}{Amber.VERSION}") + "\n" + "".join(
        entries[name] + "\n" for name in sorted(entries))
    if text.encode("utf-8") != current:
        tree.replace(rel, text.encode("utf-8"))
    return rel
