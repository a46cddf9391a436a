"""MAG004: Vault KV clients in application source without a Direct-Vault declaration.

Apps get secrets through the External Secrets bridge; reading Vault directly is opt-in per
app, with a justification, either in the magcfg project file::

    secrets:
      direct_vault:
        - {app: magbackup, path: services/magbackup, justification: "..."}

or in the app's README, in a "Secrets architecture" section that names Direct-Vault and
gives the reason (a ``Justification:``/``Reason:`` line or a sentence with "because").
Detection: Python ``hvac``/``async_hvac`` imports (parsed with ``ast``), ``node-vault``
required or imported in JS/TS, and the Go packages ``github.com/hashicorp/vault/api`` and
``github.com/openbao/openbao/api``.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

from .context import LintContext, finding
from .findings import Finding
from .walk import SourceFile

RULE = "MAG004"
_PY_MODULES = frozenset({"hvac", "async_hvac"})
_PY_IMPORT_LINE = re.compile(r"^\s*((?:import|from)\s+(hvac|async_hvac))\b")
_JS_EXT = (".js", ".mjs", ".cjs", ".jsx", ".ts", ".mts", ".cts", ".tsx")
_JS_VAULT = re.compile(
    r"""(?:\brequire\s*\(\s*|\bimport\s*\(\s*|\bfrom\s+|\bimport\s+)(["'])node-vault\1""")
_GO_VAULT = re.compile(
    r'"(github\.com/hashicorp/vault/api|github\.com/openbao/openbao/api)(?:/v\d+)?"')
_APP_MARKERS = ("README.md", "package.json", "go.mod", "pyproject.toml", "setup.py",
                "setup.cfg", "Dockerfile", "Cargo.toml")
_SECTION = re.compile(r"^(#{1,6})\s*secrets?\s+architecture\b.*$", re.IGNORECASE | re.MULTILINE)
_DIRECT = re.compile(r"direct[- ]vault", re.IGNORECASE)
_REASON = re.compile(r"(?:justification|reason)\s*:\s*\S|\bbecause\b", re.IGNORECASE)


@dataclass(frozen=True)
class App:
    """The application a source file belongs to: the nearest directory with an app marker."""

    dir: str
    names: frozenset[str]
    declared: bool
    label: str


def client_imports(src: SourceFile) -> list[tuple[int, int, str]]:
    """(line, column, client) for each Vault client import in ``src``."""
    name = src.name
    text = src.text
    if name.endswith((".py", ".pyi")):
        if "hvac" not in text:
            return []
        return _python_imports(text)
    if name.endswith(_JS_EXT):
        if "node-vault" not in text:
            return []
        return _line_matches(src, _JS_VAULT, "node-vault")
    if name.endswith(".go"):
        if "/api" not in text:
            return []
        return [(n, c, "Go " + m) for n, c, m in _line_matches(src, _GO_VAULT, None)]
    return []


def _python_imports(text: str) -> list[tuple[int, int, str]]:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        # Not parseable (Python 2, a template, a work in progress): import statements at
        # the start of a line are still imports.
        return [(n, m.start(1) + 1, m.group(2))
                for n, line in enumerate(text.splitlines(), 1)
                if (m := _PY_IMPORT_LINE.match(line)) is not None]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in _PY_MODULES:
                    out.append((node.lineno, node.col_offset + 1, alias.name.split(".")[0]))
        elif (isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
              and node.module.split(".")[0] in _PY_MODULES):
            out.append((node.lineno, node.col_offset + 1, node.module.split(".")[0]))
    return sorted(out)


def _line_matches(src: SourceFile, pattern: re.Pattern[str],
                  label: str | None) -> list[tuple[int, int, str]]:
    out = []
    for number, line in enumerate(src.lines, 1):
        for m in pattern.finditer(line):
            out.append((number, m.start() + 1, label or m.group(1)))
    return out


def app_of(path: str, ctx: LintContext) -> App:
    """The app owning ``path`` and whether it declared Direct-Vault (cached per directory)."""
    cache: dict[str, App] = ctx.caches.setdefault("apps", {})
    parts = path.split("/")[:-1]
    for depth in range(len(parts), -1, -1):
        d = "/".join(parts[:depth])
        if d in cache:
            return cache[d]
        prefix = f"{d}/" if d else ""
        if any(prefix + m in ctx.files for m in _APP_MARKERS) or depth == 0:
            app = _describe(d, prefix, ctx)
            cache[d] = app
            return app
    raise AssertionError("unreachable: the root is always an app")


def _describe(d: str, prefix: str, ctx: LintContext) -> App:
    # The root app is also known by the checkout's directory name, but messages never show
    # it: output must not depend on where the repository is checked out.
    names = {d.rsplit("/", 1)[-1] if d else ctx.root.resolve().name}
    shown: set[str] = {d.rsplit("/", 1)[-1]} if d else set()
    pkg = ctx.files.get(prefix + "package.json")
    if pkg is not None:
        try:
            data = json.loads(pkg.text)
            if isinstance(data, dict) and isinstance(data.get("name"), str):
                names.add(data["name"])
                shown.add(data["name"])
        except (ValueError, RecursionError):  # no JSON, or nested past Python's limit
            pass
    gomod = ctx.files.get(prefix + "go.mod")
    if gomod is not None:
        m = re.search(r"^module\s+(\S+)", gomod.text, re.MULTILINE)
        if m:
            names.add(m.group(1).rsplit("/", 1)[-1])
            shown.add(m.group(1).rsplit("/", 1)[-1])
    pyproject = ctx.files.get(prefix + "pyproject.toml")
    if pyproject is not None:
        m = re.search(r'^name\s*=\s*"([^"]+)"', pyproject.text, re.MULTILINE)
        if m:
            names.add(m.group(1))
            shown.add(m.group(1))
    declared = any(dv.app in names or _covers(dv.path, d) for dv in ctx.config.direct_vault)
    readme = ctx.files.get(prefix + "README.md")
    if not declared and readme is not None:
        declared = readme_declares_direct_vault(readme.text)
    label = sorted(shown)[0] if shown else "(repository root)"
    return App(d, frozenset(names), declared, label)


def _covers(declared_path: str, app_dir: str) -> bool:
    p = declared_path.strip("/")
    if not declared_path:
        return False
    if p in ("", "."):
        return app_dir == ""
    return app_dir == p or app_dir.startswith(p + "/")


def readme_declares_direct_vault(text: str) -> bool:
    """Whether a README has a "Secrets architecture" section naming Direct-Vault with a
    reason."""
    m = _SECTION.search(text)
    if m is None:
        return False
    level = len(m.group(1))
    body_start = m.end()
    nxt = re.compile(rf"^#{{1,{level}}}\s", re.MULTILINE).search(text, body_start)
    body = text[body_start:nxt.start() if nxt else len(text)]
    return _DIRECT.search(body) is not None and _REASON.search(body) is not None


def check(src: SourceFile, ctx: LintContext) -> Iterator[Finding]:
    """Yield a finding for each Vault client import in an app without Direct-Vault."""
    hits = client_imports(src)
    if not hits:
        return
    app = app_of(src.path, ctx)
    if app.declared:
        return
    app_name = app.label if app.dir or app.label != "(repository root)" else "<app>"
    for number, col, client in hits:
        yield finding(
            src, number, col, RULE,
            f"{client} Vault client in app `{app.label}`, which has not declared Direct-Vault",
            "read secrets from the environment (ExternalSecret + secretKeyRef); if the app "
            f"must read Vault itself, declare it: `secrets.direct_vault: [{{app: {app_name}, "
            f'path: {app.dir or "."}, justification: "..."}}]` in magcfg.yaml, or a "Secrets '
            'architecture" section in its README naming Direct-Vault and the reason')
