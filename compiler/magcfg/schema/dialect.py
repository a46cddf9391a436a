"""What magcfg accepts as a JSON Schema: 2020-12, one file, annotations as documented.

The schema is input like any layer file, and a build must never touch the network or
read outside the repository. So a schema is checked, before anything reads it, against
one meta-schema (``DIALECT``): the 2020-12 meta-schema that jsonschema-rs bundles (it is
never fetched), extended through its ``$dynamicAnchor`` at every subschema with

* ``$ref``: a JSON pointer into this file (``#/$defs/name``); a URL, a file path and an
  anchor are refused, so nothing is ever retrieved and a multi-file schema is an error;
* ``$id`` only at the top (an embedded ``$id`` would change what the references below it
  mean), ``$schema`` only 2020-12, no ``$dynamicRef``/``$recursiveRef`` (the annotation
  index could not follow them);
* ``x-magcfg-secret`` a boolean, ``x-magcfg-secret-value`` an object of constraints on
  the secret's value (``minLength``, ``maxLength``, ``pattern``, ``const``, ``enum``),
  ``x-magcfg-reload`` ``"hot"`` or ``"restart"``,
  ``x-magcfg-merge-key`` a non-empty string, and no other ``x-magcfg-*`` name: a value
  that is not exactly what docs/layers.md allows would otherwise be ignored, and a key
  meant to be secret would not be (failing open).

The schema document is validated as an *instance* of that meta-schema, so none of its
references is followed while it is checked, and the meta-schema's own validator has a
retriever that refuses everything. The validators compiled from the schema afterwards
(``validator.py``) refuse retrieval too: the check gives the located message, the
retriever makes resolution itself unable to leave the file.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from functools import cache
from typing import Any, NoReturn

from ..errors import BuildError, Diagnostic
from .json_lines import nesting_line, pointer_line

DIALECT_URI = "https://json-schema.org/draft/2020-12/schema"
ANNOTATIONS = ("x-magcfg-merge-key", "x-magcfg-reload", "x-magcfg-secret",
               "x-magcfg-secret-value")
MAX_SHOWN = 20
"""Schema errors reported one by one; the rest are counted."""
MAX_DEPTH = 128
"""JSON nesting of a schema file: a key 64 levels deep (the most a layer file can
nest) is 128 levels down ``properties``, and jsonschema-rs compiles no more than ~250."""

# .invalid never resolves (RFC 2606), and the validator refuses every retrieval anyway.
_DIALECT_ID = "https://magcfg.invalid/schema/2020-12"
_RULE = "magcfg-"  # prefix of this meta-schema's own $defs: tells its errors apart
TOO_DEEP = f"nesting deeper than {MAX_DEPTH} levels"

DIALECT: dict[str, Any] = {
    "$schema": DIALECT_URI,
    "$id": _DIALECT_ID,
    "$dynamicAnchor": "meta",
    "allOf": [{"$ref": DIALECT_URI}],
    "properties": {
        "$schema": {"$ref": "#/$defs/magcfg-schema"},
        "$id": {"$ref": "#/$defs/magcfg-id"},
        "$ref": {"$ref": "#/$defs/magcfg-ref"},
        "$dynamicRef": {"$ref": "#/$defs/magcfg-dynamic-ref"},
        "$recursiveRef": {"$ref": "#/$defs/magcfg-dynamic-ref"},
        "x-magcfg-secret": {"$ref": "#/$defs/magcfg-secret"},
        "x-magcfg-reload": {"$ref": "#/$defs/magcfg-reload"},
        "x-magcfg-merge-key": {"$ref": "#/$defs/magcfg-merge-key"},
        "x-magcfg-secret-value": {"$ref": "#/$defs/magcfg-secret-value"},
    },
    "propertyNames": {"$ref": "#/$defs/magcfg-annotation"},
    "$defs": {
        "magcfg-schema": {"enum": [DIALECT_URI, DIALECT_URI + "#"]},
        "magcfg-id": False,
        "magcfg-ref": {"type": "string", "pattern": "^#(/.*)?$"},
        "magcfg-dynamic-ref": False,
        "magcfg-secret": {"type": "boolean"},
        "magcfg-reload": {"enum": ["hot", "restart"]},
        "magcfg-merge-key": {"type": "string", "minLength": 1},
        "magcfg-secret-value": {
            "type": "object", "minProperties": 1, "additionalProperties": False,
            "properties": {
                "minLength": {"type": "integer", "minimum": 0},
                "maxLength": {"type": "integer", "minimum": 0},
                "pattern": {"type": "string"},
                "const": {"type": "string"},
                "enum": {"type": "array", "minItems": 1, "items": {"type": "string"}},
            }},
        "magcfg-annotation": {"anyOf": [{"not": {"pattern": "^x-magcfg-"}},
                                        {"enum": list(ANNOTATIONS)}]},
    },
}
"""The meta-schema of a magcfg schema (see the module docstring)."""


class RetrievalRefused(Exception):
    """A validator asked for a resource outside the schema file."""


def refuse_retrieval(uri: str) -> NoReturn:
    """The retriever of every validator magcfg compiles: nothing outside the file."""
    raise RetrievalRefused(f"magcfg does not retrieve {uri}")


_SCALAR = {"type": ["string", "number", "boolean", "null"]}


def _nesting(levels: int) -> dict[str, Any]:
    """``$defs`` where ``magcfg-depth-<k>`` admits JSON nested at most ``k`` levels: one
    subschema a level (``additionalProperties`` holds of an object's members and
    ``items`` of an array's, and neither says anything of a scalar), which jsonschema-rs
    compiles in half the time of an ``anyOf`` of the three kinds (~1.2 ms against ~2.6
    of every cold build)."""
    defs: dict[str, Any] = {"magcfg-depth-0": _SCALAR}
    for k in range(1, levels + 1):
        below = {"$ref": f"#/$defs/magcfg-depth-{k - 1}"}
        defs[f"magcfg-depth-{k}"] = {"additionalProperties": below, "items": below}
    return defs


@cache
def _dialect_validator() -> Any:
    """The schema file's check: ``DIALECT``, and JSON nested at most ``MAX_DEPTH`` levels
    (in the same pass: converting a 26 MB document for jsonschema-rs is most of the
    cost, and a Python walk to measure depth would cost more than the check)."""
    import jsonschema_rs

    check = {
        "$schema": DIALECT_URI,
        "$id": "https://magcfg.invalid/schema/check",
        "allOf": [{"$ref": f"#/$defs/magcfg-depth-{MAX_DEPTH}"}, {"$ref": _DIALECT_ID}],
        "$defs": {"dialect": DIALECT, **_nesting(MAX_DEPTH)},
    }
    return jsonschema_rs.Draft202012Validator(check, retriever=refuse_retrieval)


def pointer_text(pointer: Sequence[str | int]) -> str:
    """``#/a/b`` (RFC 6901 escapes): how a ``$ref`` would name the place."""
    return "#" + "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in pointer)


def located(path: str, raw: bytes, problems: Sequence[tuple[Sequence[str | int], str]]
            ) -> BuildError:
    """One error per problem (``(pointer, message)``), at the line of its pointer in the
    schema file; past ``MAX_SHOWN`` they are counted, not located (locating one reads
    the text up to it)."""
    text = raw.decode("utf-8", errors="replace")
    diagnostics = [Diagnostic(path, pointer_line(text, pointer), pointer_text(pointer),
                              message, code="schema")
                   for pointer, message in problems[:MAX_SHOWN]]
    if len(problems) > MAX_SHOWN:
        # At line 1 with an empty key: diagnostics sort by (file, line, key), and None
        # does not compare with the others' numbers and pointers.
        diagnostics.append(Diagnostic(path, 1, "", f"{len(problems) - MAX_SHOWN} more "
                                      "schema errors not shown", code="schema"))
    return BuildError(diagnostics)


def check_dialect(path: str, raw: bytes, document: dict[str, Any]) -> None:
    """Raise a located ``BuildError`` unless ``document`` is a magcfg schema."""
    validator = _dialect_validator()
    try:
        if validator.is_valid(document):
            return
        problems = list(_problems(validator, document))
    except ValueError as exc:
        # jsonschema-rs converts the document recursively and gives up about 255 levels
        # down, before its depth rule can answer (the json parser's limit is further).
        if "Recursion limit" not in str(exc):
            raise
        problems = [((), TOO_DEEP)]
    if problems and not problems[0][0] and problems[0][1] == TOO_DEEP:
        text = raw.decode("utf-8", errors="replace")
        raise BuildError([Diagnostic(path, nesting_line(text, MAX_DEPTH), None, TOO_DEEP,
                                     code="schema")])
    if problems:  # none: only the top's own $id was refused, and it is allowed there
        raise located(path, raw, problems)


def _problems(validator: Any, document: dict[str, Any]
              ) -> Iterator[tuple[tuple[str | int, ...], str]]:
    ours: dict[tuple[str | int, ...], str] = {}
    theirs: dict[tuple[str | int, ...], str] = {}
    for error in validator.iter_errors(document):
        where = tuple(error.instance_path)
        rule = tuple(error.schema_path)
        name = str(rule[1]) if len(rule) > 1 and rule[0] == "$defs" else ""
        if name.startswith("magcfg-depth-"):
            yield (), TOO_DEEP  # nothing else matters, and its place is in the text
            return
        if not name.startswith(_RULE):
            theirs.setdefault(where, f"not a valid JSON Schema: {error.message}")
        elif name == "magcfg-annotation":
            node = _at(document, where)
            for key in node if isinstance(node, dict) else ():
                if key.startswith("x-magcfg-") and key not in ANNOTATIONS:
                    ours[(*where, key)] = _unknown_annotation(key)
        elif name == "magcfg-id" and where == ("$id",):
            continue  # the top of the schema may name it
        else:
            ours[where] = _MESSAGES[name](error.instance)
    for where, message in theirs.items():
        if where not in ours:
            yield where, message
    yield from ours.items()


def _at(document: Any, pointer: Sequence[str | int]) -> Any:
    node = document
    for part in pointer:
        node = node[part]
    return node


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    text = text if len(text) <= 60 else text[:57] + "..."
    kind = {bool: "a boolean", str: "a string", int: "a number", float: "a number",
            list: "a list", dict: "an object"}.get(type(value), "null")
    return f"{text} ({kind})"


def _unknown_annotation(name: str) -> str:
    import difflib

    # Compared without the prefix they all share, which would make any two look alike.
    known = {a.removeprefix("x-magcfg-"): a for a in ANNOTATIONS}
    hint = [known[h] for h in difflib.get_close_matches(name.removeprefix("x-magcfg-"), known,
                                                         n=1, cutoff=0.6)]
    return f"unknown annotation {name!r}" + (
        f" (did you mean {hint[0]!r}?)" if hint else
        f"; magcfg's annotations are {', '.join(ANNOTATIONS)}")


def _ref_message(ref: Any) -> str:
    if not isinstance(ref, str):
        return f"$ref must be a JSON pointer into this file like \"#/$defs/name\", not {_shown(ref)}"
    shown = json.dumps(ref if len(ref) <= 80 else ref[:77] + "...")
    scheme = ref.split(":", 1)[0].lower() if ":" in ref.split("/", 1)[0] else ""
    if scheme in ("http", "https") or ref.startswith("//"):
        why = "a build never fetches anything over the network"
    elif scheme:
        why = "a build never reads anything outside the repository"
    elif ref.startswith("#"):
        why = "anchors are not supported: point at the definition"
    else:
        why = "a magcfg schema is one file: move the definition under $defs"
    return (f"$ref {shown} is not a JSON pointer into this file ({why}); "
            "write \"#/$defs/<name>\"")


def dangling_ref(ref: str) -> str:
    """The message about a ``$ref`` whose pointer names no schema in the file."""
    return f"$ref {ref!r} points to no schema in this file"


_MESSAGES: dict[str, Callable[[Any], str]] = {
    "magcfg-schema": lambda v: (
        f"$schema must be {json.dumps(DIALECT_URI)} (or left out), not {_shown(v)}: magcfg "
        "schemas are JSON Schema 2020-12, and no other meta-schema is ever fetched"),
    "magcfg-id": lambda v: (
        "$id is allowed only at the top of the schema: below it, it would change what the "
        "$refs under it point to"),
    "magcfg-ref": _ref_message,
    "magcfg-dynamic-ref": lambda v: (
        "$dynamicRef and $recursiveRef are not supported: use $ref with a JSON pointer "
        "(\"#/$defs/<name>\")"),
    "magcfg-secret": lambda v: f"x-magcfg-secret must be true or false, not {_shown(v)}",
    "magcfg-reload": lambda v: (
        f"x-magcfg-reload must be \"hot\" or \"restart\", not {_shown(v)}"),
    "magcfg-merge-key": lambda v: (
        "x-magcfg-merge-key must name the key of the list's items (a non-empty string), "
        f"not {_shown(v)}"),
    "magcfg-secret-value": lambda v: (
        "x-magcfg-secret-value must be an object of constraints on the secret's value "
        "(minLength, maxLength: integers >= 0; pattern, const: strings; enum: strings), "
        f"not {_shown(v)}"),
}
