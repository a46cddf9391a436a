"""``magcfg report --html``: the config matrix as one self-contained static page.

Rows are the leaves of every environment's compiled config (grouped by top-level key),
columns the environments. Each cell holds the effective value, the layer and file:line
that set it (``diff``'s provenance), and markers: the key differs between environments,
the override repeats the value below (the merge's ``redundant`` warning), the key is
restart-only (the schema index), the key is on the promotion allow-list. With
``against`` each environment is also compared with a git ref (``diff_against``: the same
data as ``diff --format json``), listed at the top and highlighted in the matrix.

Values pass through the project's one ``Redactor``; a secret leaf shows its reference
(``vault://...``, ``env://...``) when it is one, and ``<redacted>`` otherwise, so the page
never holds a secret value.

The page is static and carries its own CSS and script (package data beside this module);
nothing is fetched. Each section's rows are a JSON block that the script turns into a
table only when the section is opened (or a filter matches it), so a repository with
hundreds of thousands of keys loads as text and renders what is looked at. The bytes
depend only on the inputs: keys, files and sections are sorted, and nothing records a
time, a host or a path outside the repository. A large matrix is filled by several
processes, each writing the JSON of whole sections; the page is the same with any
number.
"""

from __future__ import annotations

import html
import json
import marshal
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from json.encoder import encode_basestring as encode_string
from pathlib import Path
from typing import Any

from ..compiler import Compiler
from ..durable import write_operator_file
from ..errors import BuildError, Diagnostic
from ..keyglob import format_keypath, parse_keypath
from ..pipeline.merge import LayerStack
from ..project import FromTop, Project
from ..secrets.redaction import REDACTED, Redactor
from ..secrets.references import parse_reference
from ..syntax.keylines import KeyLines
from ..workers import available_jobs, run_shares, weighted_runs
from .diff import (
    KEY_LINES,
    ConfigDiff,
    KeyPath,
    Origins,
    StoredKeyLines,
    diffs_against,
    flatten,
    same,
    show,
)
from .promote import promote_settings

_ABSENT: Any = object()

_SLOT = re.compile(r"@([A-Z]+)@")
FORMAT = 1
"""Of the page's embedded data (``#magcfg-data`` and the ``#rows-N`` blocks)."""
OPEN_BELOW = 2000
"""Sections start open when the whole matrix has fewer rows than this."""

# Bits of a row's flags (mirrored in report.js).
DIFFERS, RESTART, ALLOWED, CHANGED, REDUNDANT, SECRET = 1, 2, 4, 8, 16, 32


@dataclass
class _Cell:
    value: str
    file: str | None
    line: int
    layer: int
    redundant: bool = False
    change: str = ""  # "", "added", "changed"
    was: str | None = None


@dataclass
class _Row:
    keypath: KeyPath
    cells: list[_Cell | None]
    flags: int = 0
    allowed: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Report:
    """The page (``html``, UTF-8 bytes) and what it counted."""

    html: bytes
    environments: tuple[str, ...]
    keys: int
    sections: int
    changes: int
    warnings: tuple[Diagnostic, ...] = ()
    """The ref side's (``ConfigDiff.warnings``), each once."""


def _text(value: Any) -> str:
    """``diff.show`` of a leaf, with the common scalars spelled out directly."""
    kind = type(value)
    if kind is str:
        return REDACTED if value == REDACTED else encode_string(value)
    if kind is int:
        return str(value)
    if kind is bool:
        return "true" if value else "false"
    if value is None:
        return "null"
    return show(value)


class _Values:
    """Leaves as shown on the page: redacted, a secret as its reference."""

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor
        self._secret: dict[KeyPath, bool] = {}

    def shown(self, keypath: KeyPath, value: Any) -> tuple[str, bool]:
        """(text of the value for the page, whether it is or holds a secret)."""
        secret = self._secret.get(keypath)
        if secret is None:
            secret = self._secret[keypath] = self.redactor.is_secret(keypath)
        if secret:
            reference = parse_reference(value) if type(value) is str else None
            # Shown as parsed, so nothing but a well-formed reference reaches the page.
            return (_text(str(reference)) if reference is not None else REDACTED), True
        if type(value) is list or type(value) is dict:
            redacted = self.redactor.value(keypath, value)
            return _text(redacted), not same(redacted, value)
        return _text(value), False


def _compile(compiler: Compiler, env: str
             ) -> tuple[dict[str, Any], list[Diagnostic], LayerStack]:
    stack = compiler.load_stack(env)
    artifact, diagnostics = compiler.compile(env, stack, None)
    if artifact is None:
        raise BuildError([d for d in diagnostics if d.severity == "error"])
    return artifact.config, artifact.warnings, stack


def build_report(project: Project, envs: list[str] | None = None,
                 against: str | None = None, jobs: int | None = None) -> Report:
    """The report of ``envs`` (default: every environment) of the working tree, compared
    with git ``against`` when given. Raises ``BuildError``/``UsageError`` like ``diff``.

    A large matrix is filled in ``jobs`` processes (default: ``available_jobs``), each
    taking a run of whole top-level keys; the page is the same with any number."""
    chosen = project.check_envs(envs)
    compiler = Compiler(project)
    compiler.load_stacks(chosen)  # every load error of every environment at once

    diffs = diffs_against(project, chosen, against, compiler) if against is not None else {}
    matrix = _Matrix(compiler, chosen, diffs)
    keys = sorted({key for config in matrix.configs for key in config})
    # The first environment's leaves weigh each key: environments share their shape.
    first = matrix.configs[0] if matrix.configs else {}
    weight = {key: _leaf_count(first.get(key, _ABSENT)) for key in keys}
    runs = (weighted_runs(keys, weight.__getitem__, available_jobs(jobs))
            if sum(weight.values()) >= MIN_PARALLEL_ROWS else [keys])
    sections = matrix.sections_of(runs)
    compiler.cache.flush(only=KEY_LINES)
    name = FromTop(project).name
    return _page(chosen, [spec.name for spec in project.layers],
                 [name(file) for file in matrix.files], sections, diffs, against, name)


MIN_PARALLEL_ROWS = 20_000
"""A matrix of fewer rows (leaves of the first environment) is filled in one process: a
fork would cost more than it saves."""


def _leaf_count(node: Any) -> int:
    """The leaves ``flatten`` gives for ``node`` (0 for a key it lacks)."""
    if node is _ABSENT:
        return 0
    count = 0
    stack = [node]
    while stack:
        item = stack.pop()
        if type(item) is dict and item:
            stack.extend(item.values())
        else:
            count += 1
    return count


_Section = tuple[str, int, int, str]
"""A section of the page as it crosses processes: its top-level key, the union of its
rows' flags, its number of rows, and its rows as the JSON of its ``#rows-N`` block."""


class _Matrix:
    """The environments' compiled configs and what marks their cells, read once; the
    rows of any run of top-level keys (``rows``) are filled from them."""

    def __init__(self, compiler: Compiler, chosen: tuple[str, ...],
                 diffs: dict[str, ConfigDiff]) -> None:
        self.compiler = compiler
        # As for diff: "secret?" and "reload policy?" from the policy tables the build
        # cached, so the page neither parses nor indexes the schema's pieces.
        self.index = compiler.policies()
        self.values = _Values(compiler.redactor())
        self.allow = promote_settings(compiler.project).allow_differences
        self.layer_number = {spec.name: i for i, spec in enumerate(compiler.project.layers)}
        # Key lines as diff keeps them in the build cache: a page after a diff (or a
        # page) indexes only the files that changed since.
        lines = KeyLines(compiler.source, StoredKeyLines(compiler.cache))
        # Cells name their file by its number in the page's list of every layer file of
        # the environments, known before any cell is: each process writes its sections'
        # JSON whole, and the page is the same with any number of processes.
        self.files: list[str] = []
        self.configs: list[dict[str, Any]] = []
        self.origins: list[Origins] = []
        self.redundant: list[set[KeyPath]] = []
        self.changed: list[dict[KeyPath, Any]] = []
        for env in chosen:
            config, warnings, stack = _compile(compiler, env)
            self.configs.append(config)
            self.files += [f.path for layer in stack.layers for f in layer.files]
            self.origins.append(Origins(stack, lines))
            self.redundant.append({parse_keypath(d.key) for d in warnings
                                   if d.code == "redundant" and d.key is not None})
            self.changed.append({c.keypath: c for c in diffs[env].changes}
                                if env in diffs else {})
        self.files = sorted(set(self.files))
        self.file_number = {f: i for i, f in enumerate(self.files)}

    def sections_of(self, runs: list[list[str]]) -> list[_Section]:
        """The sections of every run of keys, in order, each run in a process of its own
        (``run_shares``). Key lines the other processes index are put in this one's
        cache."""
        cache = self.compiler.cache
        before = cache.pending_names()

        def dumps(sections: list[_Section]) -> bytes:
            return marshal.dumps((sections, cache.new_entries(before)))

        def loads(data: bytearray) -> list[_Section]:
            sections, entries = marshal.loads(data)
            cache.adopt(entries)
            return list(sections)

        return [s for part in run_shares(runs, self.sections, dumps, loads) for s in part]

    def sections(self, keys: list[str]) -> list[_Section]:
        """The page's sections of ``keys`` (sorted), rows sorted by key path."""
        rows = self.rows(keys)
        by_section: dict[str, list[_Row]] = {}
        for keypath in sorted(rows):
            by_section.setdefault(keypath[0], []).append(rows[keypath])
        out: list[_Section] = []
        for name, section_rows in sorted(by_section.items()):
            flags = 0
            block = []
            for row in section_rows:
                flags |= row.flags
                item = [format_keypath(row.keypath[1:]), row.flags,
                        _cells_json(row.cells, self.file_number)]
                if row.allowed:
                    item.append(row.allowed)
                block.append(item)
            out.append((name, flags, len(block), _script_json(block)))
        return out

    def rows(self, keys: list[str]) -> dict[KeyPath, _Row]:
        """The rows of the leaves under ``keys``, by key path."""
        rows: dict[KeyPath, _Row] = {}
        leaves: dict[KeyPath, list[Any]] = {}
        width = len(self.configs)
        values, layer_number = self.values, self.layer_number
        for column, config in enumerate(self.configs):
            origins, redundant = self.origins[column], self.redundant[column]
            changed = self.changed[column]
            part = {key: config[key] for key in keys if key in config}
            for keypath, value in flatten(part).items():
                if not keypath:
                    continue
                row = rows.get(keypath)
                if row is None:
                    row = rows[keypath] = _Row(keypath, [None] * width)
                    leaves[keypath] = [_ABSENT] * width
                seen = leaves[keypath]
                seen[column] = value
                left = row.cells[column - 1] if column else None
                if left is not None and same(seen[column - 1], value):
                    # Most leaves are equal across environments: redact and spell them once.
                    text, secret = left.value, bool(row.flags & SECRET)
                else:
                    text, secret = values.shown(keypath, value)
                origin = origins.of(keypath)
                cell = row.cells[column] = _Cell(
                    text, origin.file if origin else None, (origin.line or 0) if origin else 0,
                    layer_number.get(origin.layer, -1) if origin else -1)
                if secret:
                    row.flags |= SECRET
                if redundant and any(keypath[:n] in redundant
                                     for n in range(1, len(keypath) + 1)):
                    cell.redundant = True
                    row.flags |= REDUNDANT
                change = changed.get(keypath)
                if change is not None:
                    cell.change = change.kind
                    if change.kind == "changed":
                        cell.was = _text(change.old)
                    row.flags |= CHANGED

        index, allow = self.index, self.allow
        for keypath, row in rows.items():
            seen = leaves[keypath]
            first = seen[0]
            if any(v is _ABSENT or first is _ABSENT or not same(v, first) for v in seen[1:]):
                row.flags |= DIFFERS
            if index is None or index.reload_policy(keypath) == "restart":
                row.flags |= RESTART
            for scope in sorted(allow):
                row.allowed += [f"{scope}: {glob}" for glob in allow[scope].matching(keypath)]
            if row.allowed:
                row.flags |= ALLOWED
        return rows


# ------------------------------------------------------------------ the page


def _asset(name: str) -> str:
    return resources.files(__package__ or "magcfg.review").joinpath(
        "report_page", name).read_text(encoding="utf-8")


def _script_json(data: Any) -> str:
    """JSON that is safe inside ``<script type="application/json">``."""
    text = json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _cells_json(cells: list[_Cell | None], files: dict[str, int]) -> list[Any]:
    """A row's cells for report.js: ``0`` not set, ``1`` the same as the cell to its left,
    else ``[value, file, line, layer]`` and, when marked, ``redundant, change[, was]``."""
    out: list[Any] = []
    left: _Cell | None = None
    for cell in cells:
        if cell is None:
            out.append(0)
        elif cell == left and not (cell.redundant or cell.change):
            out.append(1)
        else:
            item: list[Any] = [cell.value, files[cell.file] if cell.file is not None else -1,
                               cell.line, cell.layer]
            if cell.redundant or cell.change:
                item += [int(cell.redundant), cell.change]
                if cell.was is not None:
                    item.append(cell.was)
            out.append(item)
        left = cell
    return out


def _changes_table(diffs: dict[str, ConfigDiff], ref: str, name: Callable[[str], str]) -> str:
    e = html.escape
    total = sum(len(d.changes) for d in diffs.values())
    commit = next((d.old.commit for d in diffs.values() if d.old.commit), None)
    where = e(ref) + (f" <code>{e(commit[:12])}</code>" if commit else "")
    if not total:
        return (f'<section id="changes"><h2>Changes against {where}</h2>'
                "<p>No environment's compiled config changes.</p></section>")
    parts = [f'<section id="changes"><h2>Changes against {where}: {total}</h2>',
             '<table class="changes"><thead><tr><th>Environment</th><th></th><th>Key</th>'
             "<th>Before</th><th>After</th><th>Reload</th><th>Set in</th></tr></thead><tbody>"]
    mark = {"added": "+", "removed": "-", "changed": "~"}
    for env, d in diffs.items():
        for c in d.changes:
            before = e(show(c.old)) if c.kind != "added" else "—"
            after = e(show(c.new)) if c.kind != "removed" else "—"
            src = c.new_source or c.old_source
            reload = '<b class="restart">restart</b>' if c.restart else e(c.reload)
            parts.append(
                f'<tr class="{c.kind}"><td>{e(env)}</td><td>{mark[c.kind]}</td>'
                f"<td><code>{e(c.key)}</code></td><td><code>{before}</code></td>"
                f"<td><code>{after}</code></td><td>{reload}</td>"
                f"<td>{e(src.where(name)) if src else ''}</td></tr>")
    parts.append("</tbody></table></section>")
    return "".join(parts)


def _page(envs: tuple[str, ...], layer_names: list[str], files: list[str],
          sections: list[_Section], diffs: dict[str, ConfigDiff], against: str | None,
          file_name: Callable[[str], str]) -> Report:
    """The page; ``files`` and the files of ``diffs`` named by ``file_name``, as every command
    names files (``project.FromTop``)."""
    e = html.escape
    rows = sum(count for _, _, count, _ in sections)
    open_all = rows < OPEN_BELOW
    data = {"format": FORMAT, "environments": list(envs), "layers": layer_names,
            "files": files, "against": against}
    sections_html, blocks = [], []
    for number, (name, flags, count, block) in enumerate(sections):
        blocks.append(f'<script type="application/json" id="rows-{number}">{block}</script>')
        badges = "".join(
            f'<span class="badge {cls}" title="{e(title)}">{label}</span>'
            for bit, cls, label, title in (
                (DIFFERS, "differs", "≠", "differs between environments"),
                (CHANGED, "changed", "Δ", "changed against the ref"),
                (REDUNDANT, "redundant", "=", "an override repeats the value below"))
            if flags & bit)
        sections_html.append(
            f'<details class="section" data-section="{number}" '
            f'data-name="{e(format_keypath((name,)))}"'
            f'{" open" if open_all else ""}><summary><code>{e(name)}</code> '
            f'<span class="count">{count}</span>{badges}</summary>'
            f'<div class="rows"></div></details>')

    legend = "Set by layer: " + "".join(
        f'<span class="cell layer-{i % 8}" data-layer="{e(name)}">{e(name)}</span>'
        for i, name in enumerate(layer_names))
    legend += '<span class="cell redundant">redundant override</span>'
    if against is not None:
        legend += (f'<span class="cell changed">changed since {e(against)}</span>'
                   f'<span class="cell added">added since {e(against)}</span>')
    changes = _changes_table(diffs, against, file_name) if against is not None else ""
    title = f"magcfg report: {', '.join(envs)}"
    slots = {
        "TITLE": e(title), "CSS": _asset("report.css"), "JS": _asset("report.js"),
        "DATA": _script_json(data), "LEGEND": legend, "CHANGES": changes,
        "COUNTS": f"{rows} keys in {len(sections)} sections, {len(envs)} environments",
        "SECTIONS": "\n".join(sections_html), "ROWS": "\n".join(blocks)}
    # One pass over the template: text put into a slot is never scanned for slots.
    page = _SLOT.sub(lambda m: slots[m.group(1)], _asset("report.html"))
    return Report(page.encode("utf-8"), envs, rows, len(sections),
                  sum(len(d.changes) for d in diffs.values()),
                  tuple(sorted({w for d in diffs.values() for w in d.warnings})))


# ------------------------------------------------------------------ the output file


def write_output(path: Path, page: bytes, checkout: Path) -> None:
    """Write the page to ``path`` atomically (a reader sees the old page or the new),
    through no symlink inside ``checkout``."""
    write_operator_file(path, page, checkout=checkout)
