"""The JSON Schema validator (2020-12) of a project's merged config.

Engine: jsonschema-rs (Rust). On the large benchmark repo it validates the three
environments in ~0.4 s where the pure-Python ``jsonschema`` takes ~6 s
(docs/performance.md); its messages carry the same information. The schema itself has
been checked against magcfg's meta-schema when it was parsed (``dialect.py``); the
validators are compiled with a retriever that refuses everything, so resolving a
reference can never leave the schema file.

Validation is done per top-level key ("fragment": ``{key: value}`` against the root
schema without its ``required``), so the build can cache the verdict of fragments
whose inputs did not change; the root's ``required`` is checked on the key set. When
the root schema uses keywords that relate top-level keys to each other, fragment
validation would not be equivalent: fragments are checked against the root without
those keywords (``index.fragment_schema``), and the whole document is validated too
(``Validator.fragment_safe``).

Messages never show a secret's value: instance values are masked in every message about
a key the redactor calls secret (``x-magcfg-secret`` or a ``redact:`` glob) or about a
map or list that holds one.

One validation reports at most ``MAX_VIOLATIONS`` violations and counts the rest in one
more (``SchemaViolation.errors``): 100,000 unknown keys are one message's worth of work
to write and to locate, not 100,000.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import unquote

from ..errors import BuildError, close_match, cut, printable
from .dialect import dangling_ref, located, refuse_retrieval
from .index import Schema, fragment_safe, fragment_schema

if TYPE_CHECKING:
    from ..secrets.redaction import Redactor

MASK = "<redacted>"
MAX_VIOLATIONS = 20


class SchemaViolation(NamedTuple):
    """One schema error, before it is given a file and line; or, with ``errors`` > 1,
    the errors past ``MAX_VIOLATIONS`` under ``keypath``, counted but not described."""

    keypath: tuple[str, ...]
    message: str
    code: str
    errors: int = 1


def more_violations(keypath: tuple[str, ...], count: int) -> SchemaViolation:
    """The violation that stands for ``count`` more that are not shown."""
    return SchemaViolation(keypath, f"{count} more schema errors not shown", "schema-more",
                           count)


class Validator:
    """A compiled validator for one schema, reused for every environment of a build."""

    def __init__(self, schema: Schema, redactor: Redactor) -> None:
        self.schema = schema
        self.redactor = redactor
        document = schema.document
        self.fragment_safe = fragment_safe(document)
        self.required: tuple[str, ...] = tuple(document.get("required") or ())
        relaxed = fragment_schema(document)
        self._relaxed = relaxed
        self._compiled: dict[tuple[bool, bool], Any] = {}
        self._fragment = self._validator(whole=False, masked=False)

    def _validator(self, *, whole: bool, masked: bool) -> Any:
        """Compiled on first use: most builds need only the fragment validator."""
        import jsonschema_rs

        key = (whole, masked)
        if key not in self._compiled:
            document = self.schema.document if whole else self._relaxed
            try:
                self._compiled[key] = jsonschema_rs.Draft202012Validator(
                    document, mask=MASK if masked else None, retriever=refuse_retrieval)
            except jsonschema_rs.ValidationError as exc:
                raise self._uncompilable(exc.message, list(exc.instance_path)) from None
            except ValueError as exc:
                raise self._uncompilable(str(exc), []) from None
        return self._compiled[key]

    def _uncompilable(self, message: str, pointer: list[str | int]) -> BuildError:
        """The located error of a schema jsonschema-rs cannot compile (a bad regex, a
        pointer to nothing under a keyword the annotation index does not read)."""
        first = message.split("\n\n", 1)[0]  # the rest repeats the instance
        message = f"schema cannot be compiled: {printable(first)}"
        if not pointer and message.startswith("schema cannot be compiled: Pointer '"):
            found = _ref_to(self.schema.document, message.split("'")[1])
            if found is not None:
                pointer, ref = found
                message = dangling_ref(ref)
        return located(self.schema.path, self.schema.file_raw, [(pointer, message)])

    def check_fragment(self, key: str, value: Any) -> list[SchemaViolation]:
        """Violations of the top-level ``key``'s value (fragment validation)."""
        instance = {key: value}
        if self._fragment.is_valid(instance):
            return []
        return self._violations(instance, self._fragment,
                                self._validator(whole=False, masked=True))

    def check_document(self, document: dict[str, Any]) -> list[SchemaViolation]:
        """Violations of the whole document (what fragment checks cannot see)."""
        if self.fragment_safe:
            return [SchemaViolation((), f"required key {name!r} is missing", "required")
                    for name in self.required if name not in document]
        whole = self._validator(whole=True, masked=False)
        if whole.is_valid(document):
            return []
        return self._violations(document, whole, self._validator(whole=True, masked=True))

    def _violations(self, instance: Any, plain: Any, masked: Any) -> list[SchemaViolation]:
        """The first ``MAX_VIOLATIONS`` violations, and one that counts the rest under
        the longest key path they share."""
        index = self.schema.index
        out: list[SchemaViolation] = []
        masked_errors: list[Any] | None = None  # only a message about a secret needs them
        rest = 0
        rest_path: tuple[str, ...] | None = None
        for i, error in enumerate(plain.iter_errors(instance)):
            keypath = tuple(str(p) for p in error.instance_path)
            kind = error.kind
            name = getattr(kind, "name", "schema")
            unexpected = [str(k) for k in getattr(kind, "unexpected", None) or ()] if (
                name == "additionalProperties") else []
            shown = max(0, min(MAX_VIOLATIONS - len(out), len(unexpected) or 1))
            hidden = (len(unexpected) or 1) - shown
            if hidden:
                rest += hidden
                rest_path = common_keypath(rest_path, keypath)
            if not shown:
                continue
            if name == "additionalProperties":
                known = index.known_keys(keypath)
                for key in unexpected[:shown]:
                    hint = close_match(key, known)
                    msg = f"unknown key {key!r}"
                    msg += f" (did you mean {hint!r}?)" if hint else (
                        f"; known keys here: {printable(', '.join(known))}"
                        if 0 < len(known) <= 12 else "")
                    out.append(SchemaViolation((*keypath, key), msg, "unknown-key"))
                continue
            if name == "required":
                prop = getattr(kind, "property", "?")
                out.append(SchemaViolation(keypath, f"required key {prop!r} is missing",
                                           "required"))
                continue
            secret = self.redactor.contains_secret(keypath, error.instance)
            message = error.message
            if secret:
                if masked_errors is None:
                    masked_errors = list(masked.iter_errors(instance))
                message = _secret_message(kind, name, masked_errors[i].message
                                          if i < len(masked_errors) else MASK,
                                          index.is_secret(keypath))
            # The engine quotes the schema's own strings (a pattern) as they are: a
            # newline there would print a line of the schema's choosing into a CI log.
            message = cut(printable(message))
            out.append(SchemaViolation(keypath, f"{message} (schema: {name})", f"schema-{name}"))
        if rest:
            out.append(more_violations(rest_path or (), rest))
        return out


def common_keypath(a: tuple[str, ...] | None, b: tuple[str, ...]) -> tuple[str, ...]:
    """The longest key path that ``a`` (None: nothing yet) and ``b`` both start with."""
    if a is None:
        return b
    n = 0
    while n < len(a) and n < len(b) and a[n] == b[n]:
        n += 1
    return a[:n]


def _ref_to(document: Any, pointer: str) -> tuple[list[str | int], str] | None:
    """Where a ``$ref`` to ``pointer`` (``/$defs/x``) is written, and how."""
    wanted = "#" + pointer
    stack: list[tuple[Any, list[str | int]]] = [(document, [])]
    while stack:
        node, where = stack.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and unquote(ref) == wanted:
                return [*where, "$ref"], ref
            stack.extend((v, [*where, k]) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, [*where, i]) for i, v in enumerate(node))
    return None


def _secret_message(kind: Any, name: str, masked: str, reference: bool) -> str:
    """A message about a secret's value that shows the rule but never the value (the
    engine's mask also hides the schema's side: ``<redacted> is not of type <redacted>``)."""
    if name == "type":
        types = getattr(kind, "types", None) or []
        message = f"{MASK} is not of type {' or '.join(str(t) for t in types)}"
    elif name == "pattern":
        message = f"{MASK} does not match {getattr(kind, 'pattern', '?')!r}"
    else:
        return masked
    if reference:
        message += " (a secret key holds a reference: vault://<mount>/<path>#<key> or env://VAR)"
    return message
