"""``magcfg schema infer``: a strict starting JSON Schema from a project's layers.

Every environment is merged without a schema; the schema describes the union of what
they hold: each value's JSON type (a key whose type differs between environments gets
all of them), ``additionalProperties: false`` on every object, ``required`` for the keys
every environment sets, list items from all items seen, and every string that is a
secret reference (``vault://``, ``env://``) as a ``$ref`` to one ``secret_ref``
definition marked ``x-magcfg-secret``. It is a start for the user to refine
(descriptions, ranges, enums, reload policy), never a substitute for one.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from ..compiler import Compiler
from ..errors import BuildError, Diagnostic
from ..pipeline.cache import BuildCache
from ..pipeline.merge import Source
from ..project import Project
from ..secrets.references import SCHEMES

__all__ = ["SECRET_REF", "infer_schema", "schema_bytes"]

DIALECT = "https://json-schema.org/draft/2020-12/schema"
SECRET_REF = {
    "description": "A secret reference (vault://<mount>/<path>#<key> or env://VAR); "
                   "never a literal secret.",
    "type": ["string", "null"],
    "pattern": "^(vault|vault\\+direct|env)://",
    "x-magcfg-secret": True,
}
_REFERENCE_DEFINITION = "#/$defs/secret_ref"


def infer_schema(project: Project, source: Source | None = None, title: str | None = None
                 ) -> dict[str, Any]:
    """The schema inferred from the merged layers of every environment of ``project``
    (its own schemas are neither read nor needed). Raises ``BuildError`` with the
    layers' load and merge errors."""
    bare = dataclasses.replace(project, json_schema=None, cue_schema=None)
    compiler = Compiler(bare, source, BuildCache(None))
    stacks = compiler.load_stacks(project.environments)
    documents: list[dict[str, Any]] = []
    errors: list[Diagnostic] = []
    for env in project.environments:
        document, diagnostics = stacks[env].merge()
        errors.extend(d for d in diagnostics if d.severity == "error")
        documents.append(document)
    if errors:
        raise BuildError(sorted(set(errors)))
    inferred = _merged_schema(documents)
    inferred.pop("description", None)
    schema: dict[str, Any] = {"$schema": DIALECT}
    schema["title"] = title or f"Configuration of {project.root.name}"
    schema["description"] = ("Inferred by `magcfg schema infer` from the layers of "
                             f"{', '.join(project.environments)}; refine it.")
    schema.update(inferred)
    if _uses_secret_ref(inferred):
        schema["$defs"] = {"secret_ref": dict(SECRET_REF)}
    return schema


def schema_bytes(schema: dict[str, Any]) -> bytes:
    """The schema as the files ``init`` and ``schema infer``/``layer`` write: its own key
    order, 2-space indent, raw UTF-8, numbers as in config.json (orjson; ``json``'s
    indenting encoder is Python, ~30x slower on a large schema); ``json`` for integers
    beyond 64 bits, which orjson does not write."""
    import orjson

    try:
        return orjson.dumps(schema, option=orjson.OPT_INDENT_2) + b"\n"
    except TypeError:
        return (json.dumps(schema, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _merged_schema(values: list[Any]) -> dict[str, Any]:
    """A schema that every value of ``values`` satisfies (all of them describe one key)."""
    if values and all(_is_secret(v) for v in values) and any(v is not None for v in values):
        return {"$ref": _REFERENCE_DEFINITION}
    types = sorted({_json_type(v) for v in values})
    schema: dict[str, Any] = {"type": types[0] if len(types) == 1 else types}
    objects = [v for v in values if isinstance(v, dict)]
    if objects:
        keys = sorted({k for o in objects for k in o})
        schema["additionalProperties"] = False
        schema["properties"] = {k: _merged_schema([o[k] for o in objects if k in o])
                                for k in keys}
        required = [k for k in keys if all(k in o for o in objects)]
        if required:
            schema["required"] = required
    lists = [v for v in values if isinstance(v, list)]
    items = [item for v in lists for item in v]
    if items:
        schema["items"] = _merged_schema(items)
    return schema


def _is_secret(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.startswith(SCHEMES))


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _uses_secret_ref(schema: Any) -> bool:
    if isinstance(schema, dict):
        return schema.get("$ref") == _REFERENCE_DEFINITION or any(
            _uses_secret_ref(v) for v in schema.values())
    return False
