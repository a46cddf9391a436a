"""MAG006: a literal value for a secret key in a magcfg layer.

Uses the compiler's own pieces: the project file (``magcfg.project``), the strict layer
loader (``magcfg.load``), the schema index that knows which dotted keys are
``x-magcfg-secret`` (``magcfg.schema``) and the reference grammar (``magcfg.secrets``).
So lint flags exactly the values a build would refuse as non-references, but in every layer
file at once, with its line, before anyone runs a build.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .context import LintContext, finding
from .findings import REDACTED, Finding
from .walk import SourceFile

RULE = "MAG006"


@dataclass(frozen=True)
class _Layers:
    # Each layer file -> the key paths its content sits under (``()`` in a directory
    # layer; a layer of ``files:`` maps a file under its ``key:``, per environment).
    prefixes: dict[str, frozenset[tuple[str, ...]]]
    index: Any  # magcfg.schema's PolicyIndex; None without a JSON schema
    compiler: Any  # the project's Compiler, which reads CUE layer files (``_cue``)
    here: str  # the project's directory from the lint root: "" or "dir/"


def _layers(ctx: LintContext) -> _Layers:
    cached = ctx.caches.get("layers")
    if isinstance(cached, _Layers):
        return cached
    result = _load_layers(ctx)
    ctx.caches["layers"] = result
    return result


def _load_layers(ctx: LintContext) -> _Layers:
    empty = _Layers({}, None, None, "")
    cfg = ctx.config
    if cfg.project_file is None or not cfg.raw_project.get("layers"):
        return empty  # not a magcfg layer repository
    from ..compiler import Compiler
    from ..project import load_project

    project = load_project(ctx.root / cfg.project_file)
    if project.json_schema is None:
        return empty
    try:  # layer paths are the project's; lint's are its root's (a monorepo's subdirectory)
        below = Path(project.root).resolve().relative_to(ctx.root.resolve()).as_posix()
    except ValueError:
        return empty  # none of the layer files is linted
    here = "" if below == "." else f"{below}/"
    # The build cache is read, never written: "secret?" comes from the policy tables a
    # build cached (the schema is neither parsed nor indexed), else from the schema's
    # index, as for diff.
    compiler = Compiler(project)
    prefixes: dict[str, set[tuple[str, ...]]] = {}
    for env in project.environments:
        listed, _ = compiler.layer_files(env)
        for _, files in listed:
            for path, prefix in files:
                prefixes.setdefault(path, set()).add(prefix)
    return _Layers({here + path: frozenset(found) for path, found in prefixes.items()},
                   compiler.policies(), compiler, here)


def _cue(ctx: LintContext) -> dict[str, dict[str, Any] | str]:
    """Each CUE layer file (from the lint root) -> its exported data, or why lint cannot
    read it; exported when the first is checked."""
    found = ctx.caches.get("cue")
    if not isinstance(found, dict):
        layers = _layers(ctx)
        paths = sorted(p.removeprefix(layers.here) for p in layers.prefixes
                       if p.endswith(".cue"))
        exported = _exported(layers.compiler, paths) if paths else {}
        found = ctx.caches["cue"] = {layers.here + p: data for p, data in exported.items()}
    return found


def _exported(compiler: Any, paths: list[str]) -> dict[str, dict[str, Any] | str]:
    """The data of each CUE layer file of ``paths`` as the build loads it (one ``cue``
    process for all), or, without a usable ``cue``, why it cannot be checked. A file
    that does not export is left out (the build reports it at its line); after an error
    each file is exported alone, so one bad file hides no other's values."""
    from ..cue.layers import load_cue_layers
    from ..errors import BuildError

    try:
        return {path: parsed.data for path, parsed in load_cue_layers(compiler, paths).items()}
    except BuildError as exc:
        unusable = [d.message for d in exc.diagnostics if d.code in ("cue-missing", "cue-version")]
        if unusable:
            return dict.fromkeys(paths, unusable[0])
        if len(paths) == 1:
            return {}
        return {path: data for one in paths for path, data in _exported(compiler, [one]).items()}


def prepare(ctx: LintContext) -> None:
    """Load what every layer file's check reads (the project, its layer files, the
    schema's secret keys, the CUE layers' data) once."""
    _cue(ctx)


def check(src: SourceFile, ctx: LintContext) -> Iterator[Finding]:
    """Yield a finding for each secret key of a layer file that holds no reference."""
    if not src.name.endswith((".yaml", ".yml", ".cue")):
        return
    layers = _layers(ctx)
    prefixes = layers.prefixes.get(src.path)
    if not prefixes or layers.index is None:
        return
    from ..secrets.references import looks_like_reference, parse_reference
    from ..syntax.locate import locate
    from ..syntax.strict_yaml import LoadFailed, iter_leaves, parse_layer

    raw = src.text.encode("utf-8")
    data: Any
    if src.name.endswith(".cue"):
        data = _cue(ctx).get(src.path)
        if isinstance(data, str):  # fail closed: a gate that cannot read says so
            yield finding(src, 1, 1, RULE, f"not checked for literal secrets: {data}",
                          "install the cue CLI where lint runs (docs/cue.md)")
            return
        if data is None:
            return  # `magcfg build` reports export errors with their own file:line
    else:
        try:
            data, _ = parse_layer(src.path, raw)
        except LoadFailed:
            return  # `magcfg build` reports load errors with their own file:line
    for prefix in sorted(prefixes):
        for path, subtree in layers.index.secret_subtrees(data, prefix):
            for keypath, value in iter_leaves(subtree, path):
                if value is None or isinstance(value, tuple) or not keypath:
                    continue  # null, or a layer marker (!unset, !replace)
                if isinstance(value, str) and parse_reference(value) is not None:
                    continue
                key = ".".join((*prefix, *keypath))
                line = locate(src.path, raw, keypath) or 1
                column = _value_column(src, line, keypath[-1])
                if isinstance(value, str) and looks_like_reference(value):
                    message = f"`{key}` holds a malformed secret reference ({REDACTED})"
                else:
                    message = (f"`{key}` is marked x-magcfg-secret but holds a literal value "
                               f"({REDACTED})")
                yield finding(src, line, column, RULE, message,
                              "replace the value with a reference: "
                              "`vault://<mount>/<path>#<key>` (e.g. "
                              "vault://secret/k3s/<app>#<key>) or `env://VAR`; then rotate "
                              "the exposed secret")


def _value_column(src: SourceFile, line: int, key: str) -> int:
    text = src.lines[line - 1] if 0 < line <= len(src.lines) else ""
    at = text.find(key)
    if at < 0:
        return 1
    colon = text.find(":", at + len(key))
    if colon < 0:
        return at + 1
    rest = text[colon + 1:]
    return colon + 2 + (len(rest) - len(rest.lstrip()))
