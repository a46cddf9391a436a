"""The package's architecture (docs/architecture.md): layers, runtime independence, no cycles."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import grimp

from .conftest import REPO

PACKAGE = REPO / "compiler" / "magcfg"


def test_import_contracts_hold() -> None:
    """The contracts of pyproject.toml, checked by the real `lint-imports`."""
    done = subprocess.run([str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
                          cwd=REPO, capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO / "compiler"), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.find_modules_directly_imported_by(node)):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_module_imports_itself_even_through_type_only_imports() -> None:
    sys.path.insert(0, str(REPO / "compiler"))
    try:
        graph = grimp.build_graph("magcfg", cache_dir=None)
    finally:
        sys.path.remove(str(REPO / "compiler"))
    assert _cycles(graph) == []


def test_at_most_a_dozen_modules_sit_at_the_top_of_the_package() -> None:
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 12, top


def test_code_speaks_of_itself_not_of_its_history() -> None:
    """Comments and docstrings name what code does, not the issue that asked for it."""
    history = re.compile(r"\bissues? #?\d", re.IGNORECASE)
    offenders = [f"{path.relative_to(REPO)}:{n}"
                 for root in ("compiler", "tests", "benchmarks")
                 for path in sorted((REPO / root).rglob("*.py"))
                 for n, line in enumerate(path.read_text().splitlines(), 1)
                 if history.search(line)]
    assert offenders == []


def test_every_git_command_runs_with_the_callers_git_variables_made_absolute() -> None:
    """``durable.git_env`` is the one place that reads ``GIT_DIR``, ``GIT_WORK_TREE``
    and ``GIT_INDEX_FILE`` as git does from where magcfg was started (a hook's are
    relative): a git command run without it in a project below the top numbers
    versions from the wrong repository or work tree."""
    import ast

    without = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        # git_env's own helper asks git with the variables it is given.
        inside = {id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)
                  and f.name == "_work_tree_here" for n in ast.walk(f)}
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and id(node) not in inside and node.args
                    and isinstance(node.args[0], ast.List) and node.args[0].elts
                    and isinstance(node.args[0].elts[0], ast.Constant)
                    and node.args[0].elts[0].value == "git"):
                continue
            env = next((k.value for k in node.keywords if k.arg == "env"), None)
            if env is None or "git_env(" not in ast.unparse(env):
                without.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert without == []
    # GitPython runs git with the environment its repository is given in open_repo.
    assert [p.relative_to(PACKAGE).as_posix() for p in sorted(PACKAGE.rglob("*.py"))
            if "git.Repo(" in p.read_text(encoding="utf-8")] == ["pipeline/gitsource.py"]
