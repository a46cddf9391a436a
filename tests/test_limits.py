"""docs/layers.md's "Limits" tables name every ``MAX_*`` constant of the package with its
value: a bound added to the code without a row, or changed without its row, fails here."""

from __future__ import annotations

import ast
import importlib
import re

from .conftest import REPO

PACKAGE = REPO / "compiler" / "magcfg"
DOCS = REPO / "docs" / "layers.md"
_NAME = re.compile(r"_?MAX_[A-Z0-9_]+\Z")
_ROW = re.compile(r"^\| `(?P<constant>[a-z_.]+\.[A-Za-z0-9_]+)` \| (?P<value>[0-9,.]+)[^|]*\|"
                  r" (?P<bounds>[^|]+) \|$")


def _constants() -> set[str]:
    """``module.NAME`` of every module-level ``MAX_*``/``_MAX_*`` assignment (read from
    the source: importing every module would start what some import)."""
    found = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        module = module.removesuffix(".__init__")
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            targets = (node.targets if isinstance(node, ast.Assign)
                       else [node.target] if isinstance(node, ast.AnnAssign) else [])
            found.update(f"{module}.{t.id}" for t in targets
                         if isinstance(t, ast.Name) and _NAME.match(t.id))
    return found


def _documented() -> dict[str, str]:
    """``module.NAME`` -> the value column's number, from the rows of the Limits section."""
    text = DOCS.read_text(encoding="utf-8")
    assert "\n## Limits\n" in text, "docs/layers.md has no Limits section"
    section = text.split("\n## Limits\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        m = _ROW.match(line)
        if m is not None:
            assert m["constant"] not in rows, f"{m['constant']} is listed twice"
            rows[m["constant"]] = m["value"]
    return rows


def test_every_max_constant_is_in_the_limits_tables() -> None:
    constants = _constants()
    assert len(constants) > 30  # the scan finds them where they are
    missing = sorted(constants - _documented().keys())
    assert not missing, f"docs/layers.md, Limits: no row for {', '.join(missing)}"


def test_each_row_names_a_constant_and_states_its_value() -> None:
    for constant, shown in _documented().items():
        module, _, name = constant.rpartition(".")
        value = getattr(importlib.import_module(f"magcfg.{module}"), name)
        assert float(shown.replace(",", "")) == value, (
            f"docs/layers.md, Limits: {constant} is {value:,}, not {shown}")
