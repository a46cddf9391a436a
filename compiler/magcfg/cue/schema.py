"""CUE schemas: ``cue vet`` of every merged environment against a CUE definition.

A project names ``schema: {cue: schemas/x.cue, cue_definition: "#Config"}`` (instead
of, or besides, ``json:``). The check runs after JSON Schema validation, on the
environments that compiled, and costs ONE ``cue`` process per build, whatever the
number of environments: the environments go in as one JSON document
``{"m<token>_<env>": <config>, ...}`` vetted against ``{"m<token>_<env>": #Config &
{#environment: "<env>"}, ...}`` (a wrapper file in the schema's package), so every
error path starts with the environment's key, and rules see its name as
``#environment``. The token is drawn for the run: an ``error("...")`` text cannot write
an environment's key (``_joined``).
A single ``cue vet`` with one data file per environment would not do: cue reports the
errors of only one failing data file. Very large environments are vetted in separate,
concurrent processes (MAX_BATCH_BYTES).

Each error's path is mapped back to the key and to the file:line of the layer that set
the value (``LayerStack.provenance``); the message names where the constraint lives in
the schema. Verdicts are cached by (cue version, schema digest, definition, config
digest): an unchanged environment is never vetted twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, NamedTuple

from ..errors import BuildError, Diagnostic, cut
from ..pipeline.cache import BuildCache
from ..pipeline.validate import name_environments
from .binary import (
    POSITION,
    CueBinary,
    CueError,
    find_cue,
    merge_disjunctions,
    parse_errors,
    workdir,
)

if TYPE_CHECKING:
    from ..pipeline.context import CompileContext, Workspace

DEFAULT_DEFINITION = "#Config"
_DEFINITION = re.compile(r"^#[A-Za-z_][A-Za-z0-9_]*$")
_WRAPPER_DEFINITION = "#MagcfgEnvironments"
ENVIRONMENT_FIELD = "#environment"
"""The environment's name, injected into the definition (a definition field, so it is
never part of the config and a definition that does not declare it is unaffected):
rules write ``#environment: string`` and ``if #environment == "production" {...}``."""
_WRAPPER_FORMAT = "3"  # of the wrapper: 2 injects ENVIRONMENT_FIELD, 3 tokens the names
_WRAPPER_FILE = "magcfg_environments.cue"
_DATA_FILE = "magcfg_environments.json"
_PACKAGE = re.compile(r"^\s*(?:(?://[^\n]*|@[^\n]*)?\n\s*)*package\s+([A-Za-z_#][A-Za-z0-9_]*)")
MAX_BATCH_BYTES = 8_000_000
"""Environments are vetted together while their configs add up to at most this. cue
needs ~60 bytes of memory per byte of JSON (1.9 GB for the 30 MB of the large
benchmark repo's three environments) and evaluates on one core, so big environments
get a process each, run side by side up to one per CPU: less time and, on a machine
with fewer CPUs than environments, less peak memory than one process for all."""


class CueSchema(NamedTuple):
    """The project's CUE schema file and the definition every environment must satisfy."""

    path: str
    definition: str
    raw: bytes
    digest: str

    @property
    def package(self) -> str | None:
        m = _PACKAGE.match(self.raw.decode("utf-8", errors="replace"))
        return m.group(1) if m else None


def definition_of(settings: dict[str, Any]) -> str:
    schema = settings.get("schema")
    value = schema.get("cue_definition") if isinstance(schema, dict) else None
    return DEFAULT_DEFINITION if value is None else value


def project_cue_schema(compiler: Workspace) -> CueSchema | None:
    """The project's CUE schema, read once per compiler."""
    found: CueSchema | None = compiler.once("cue-schema", lambda: load_cue_schema(compiler))
    return found


def manifest_entry(compiler: Workspace) -> tuple[str, dict[str, str]] | None:
    """Schema entry (pipeline extension point): ``schema.cue`` of the manifest."""
    cue = project_cue_schema(compiler)
    if cue is None:
        return None
    return "cue", {"definition": cue.definition, "digest": f"sha256:{cue.digest}", "path": cue.path}


def load_cue_schema(compiler: Workspace) -> CueSchema | None:
    """The project's CUE schema, or None when it names none."""
    project = compiler.project
    path = project.cue_schema
    if path is None:
        return None
    definition = definition_of(project.settings)
    if not isinstance(definition, str) or not _DEFINITION.match(definition):
        raise BuildError([Diagnostic(project.file, None, "schema.cue_definition",
                                     f"cue_definition must name a definition like "
                                     f"{DEFAULT_DEFINITION!r}, not {definition!r}",
                                     code="project")])
    try:
        raw = compiler.source.read(path)
    except OSError as exc:
        raise BuildError([Diagnostic(project.file, None, "schema.cue",
                                     f"cannot read CUE schema {path}: {exc.strerror}",
                                     code="schema")]) from None
    return CueSchema(path, definition, raw, hashlib.sha256(raw).hexdigest())


class _Violation(NamedTuple):
    keypath: tuple[str, ...]
    message: str


def check_environments(compiler: Workspace, contexts: Sequence[CompileContext]) -> list[Diagnostic]:
    """Build check (pipeline extension point): vet every compiled environment against
    the CUE schema."""
    schema = project_cue_schema(compiler)
    if schema is None or not contexts:
        return []
    cue = find_cue(schema.path, compiler.project.root, compiler.cache)
    keys = {ctx.env: BuildCache.fragment_key(
        "cue-vet", cue.version, schema.digest, schema.definition, _WRAPPER_FORMAT, ctx.env,
        ctx.config_sha256) for ctx in contexts}
    verdicts: dict[str, list[_Violation]] = {}
    for ctx in contexts:
        cached = compiler.cache.fragment(keys[ctx.env])
        if isinstance(cached, tuple):
            verdicts[ctx.env] = [_Violation(tuple(k), m) for k, m in cached]
    todo = [ctx for ctx in contexts if ctx.env not in verdicts]
    fresh = _vet_batches(cue, schema, _batches(todo))
    for ctx in todo:
        found = fresh.get(ctx.env, [])
        compiler.cache.put_fragment(keys[ctx.env], tuple((v.keypath, v.message) for v in found))
        verdicts[ctx.env] = found
    return name_environments({ctx.env: _locate(ctx, verdicts[ctx.env]) for ctx in contexts},
                             [ctx.stack for ctx in contexts])


def _vet_batches(cue: CueBinary, schema: CueSchema,
                 batches: list[list[CompileContext]]) -> dict[str, list[_Violation]]:
    """Run the batches, at most one per CPU at a time: cue evaluates on one core, so
    two large environments vetted side by side take about half the time."""
    if not batches:
        return {}
    if len(batches) == 1:
        return vet(cue, schema, {ctx.env: ctx.config_json for ctx in batches[0]})
    from concurrent.futures import ThreadPoolExecutor

    workers = min(len(batches), os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(vet, cue, schema, {ctx.env: ctx.config_json for ctx in batch})
                   for batch in batches]
    fresh: dict[str, list[_Violation]] = {}
    for future in futures:  # in batch order: the first error raised is always the same
        fresh.update(future.result())
    return fresh


def _batches(contexts: list[CompileContext]) -> list[list[CompileContext]]:
    """Environments grouped into as few ``cue vet`` runs as fit MAX_BATCH_BYTES each."""
    batches: list[list[CompileContext]] = []
    size = 0
    for ctx in contexts:
        if not batches or size + len(ctx.config_json) > MAX_BATCH_BYTES:
            batches.append([])
            size = 0
        batches[-1].append(ctx)
        size += len(ctx.config_json)
    return batches


def vet(cue: CueBinary, schema: CueSchema, configs: dict[str, bytes]) -> dict[str, list[_Violation]]:
    """One ``cue vet`` for all ``configs`` (env -> config.json bytes): violations per env.

    Errors that belong to no environment (the schema itself is broken, the definition
    does not exist) raise BuildError located in the schema file.

    The environments' keys and the files carry a token drawn for the run (``m<token>_``):
    cue prints an ``error("...")`` text as written, line ends and all (and a text may
    hold a config's value), so one that wrote ``prod.magds.host: ...`` on a line of its
    own put an error of another environment on prod's key and file."""
    tag = f"m{secrets.token_hex(8)}_"
    name = tag + PurePosixPath(schema.path).name
    package = schema.package
    raw = schema.raw
    if package is None:
        # The wrapper must share the schema's package; on the first line, so that
        # cue's line numbers stay those of the real file.
        package = "magcfgschema"
        raw = f"package {package}, ".encode() + raw
    fields = "".join(f"\t{json.dumps(tag + env)}: {schema.definition} & "
                     f"{{{ENVIRONMENT_FIELD}: {json.dumps(env)}}}\n" for env in configs)
    wrapper = f"package {package}\n{_WRAPPER_DEFINITION}: {{\n{fields}}}\n"
    data = b"{" + b",".join(json.dumps(tag + env).encode() + b":" + config
                            for env, config in configs.items()) + b"}"
    wrapper_file, data_file = tag + _WRAPPER_FILE, tag + _DATA_FILE
    with workdir() as base:
        (base / name).write_bytes(raw)
        (base / wrapper_file).write_text(wrapper, encoding="utf-8")
        (base / data_file).write_bytes(data)
        done = cue.run(["vet", "-c", "-d", _WRAPPER_DEFINITION, name, wrapper_file,
                        data_file], base)
    if done.returncode == 0:
        return {}
    errors = merge_disjunctions(parse_errors(_joined(done.stderr, tag)))
    found: dict[str, list[_Violation]] = {}
    broken: list[Diagnostic] = []
    for e in errors:
        env = e.path[0].removeprefix(tag) if e.path and e.path[0].startswith(tag) else None
        if env in configs:
            found.setdefault(env, []).append(
                _Violation(e.path[1:], _message(e, name, schema.path).replace(tag, "")))
        else:
            diagnostic = _schema_error(e, name, schema)
            broken.append(diagnostic.replace(message=diagnostic.message.replace(tag, "")))
    if broken or not found:
        if not broken:
            text = done.stderr.strip() or f"cue vet exited with status {done.returncode}"
            broken.append(Diagnostic(schema.path, None, None, f"cue vet failed: {text}",
                                     code="cue"))
        raise BuildError(broken)
    return found


def _joined(stderr: str, tag: str) -> str:
    """cue's errors with each line that goes on an environment's error message joined to
    it: before the error's positions, which name the run's files (``tag``), only a line
    naming an environment's key (``tag`` again) begins another error. Any other line is
    the message's (an ``error("...")`` text's line end)."""
    lines: list[str] = []
    going_on = False  # an environment's error whose positions have not begun
    for line in stderr.splitlines():
        if not line.strip():
            continue
        position = POSITION.match(line)
        if position is not None and position.group(1).removeprefix("./").startswith(tag):
            going_on = False
        elif going_on and not line.lstrip('"').startswith(tag):
            lines[-1] += " " + line.strip()
            continue
        else:
            going_on = line.lstrip('"').startswith(tag)
        lines.append(line)
    return "\n".join(lines)


def _in_schema(e: CueError, name: str) -> list[int]:
    return [line for file, line, _ in e.positions if file in (name, f"./{name}")]


def _message(e: CueError, name: str, schema_path: str) -> str:
    message = e.message
    if message.startswith("incomplete value"):
        message = f"required by the CUE schema but not set ({message})"
    message = cut(message)
    lines = _in_schema(e, name)
    if lines:
        message += f" (CUE: {schema_path}:{lines[0]})"
    return message


def _schema_error(e: CueError, name: str, schema: CueSchema) -> Diagnostic:
    lines = _in_schema(e, name)
    wrapper = any(file.endswith(_WRAPPER_FILE) for file, _, _ in e.positions)
    if not lines and wrapper and "not found" in e.message:
        return Diagnostic(schema.path, None, None,
                          f"definition {schema.definition} not found in this CUE schema "
                          "(set schema.cue_definition in the project file)", code="cue-schema")
    where = ".".join(e.path)
    message = f"{where}: {e.message}" if where else e.message
    return Diagnostic(schema.path, lines[0] if lines else None, None,
                      f"CUE schema error: {message}", code="cue-schema")


def _locate(ctx: CompileContext, violations: list[_Violation]) -> list[Diagnostic]:
    secrets = ctx.redactor.secret_texts(ctx.config)
    out = []
    for v in violations:
        message = ctx.redactor.text(v.message, secrets) if secrets else v.message
        out.append(ctx.locate(v.keypath, message, "cue"))
    return out
