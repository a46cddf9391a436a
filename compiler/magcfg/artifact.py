"""The layout of an artifact directory (``generated/<env>/``): the names of its files, and
the format of its ``manifest.json``.

Every module that writes, signs, ships or verifies an artifact takes the names from
here, so the build, ``sign``, delivery and the runtime kernel agree on them. The
manifest format is defined once, by :func:`check_manifest` (docs/artifact.md
describes it field by field): the build checks what it emits and what it reads back
as the previous version, ``verify`` and the runtime kernel check what they were given,
and all of them refuse the same manifests. Standard library only (the runtime uses it).
"""

from __future__ import annotations

import functools
import importlib
import json
import math
import os
import re
import stat
import string
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar, NoReturn, TypeGuard

__all__ = [
    "ATTESTATION",
    "CONFIG",
    "CONFIGMAP",
    "DATA_LINK",
    "ENVIRONMENT_NAME",
    "KUSTOMIZATION",
    "MANIFEST",
    "MANIFEST_FORMAT",
    "MAX_ATTESTATION_BYTES",
    "MAX_CONFIG_DEPTH",
    "MAX_FILES",
    "MAX_FILE_BYTES",
    "MAX_MANIFEST_BYTES",
    "MAX_SIGNATURE_BYTES",
    "MAX_VERSION",
    "SIGNATURE",
    "SIGNED_FILES",
    "VALUE_CONSTRAINTS",
    "VALUE_CONSTRAINTS_FORMAT",
    "VALUE_KEYWORDS",
    "DataLinkError",
    "JSONRefused",
    "ManifestError",
    "ValuePattern",
    "check_manifest",
    "check_secret_constraints",
    "data_root",
    "is_version",
    "listed_files",
    "load_manifest",
    "load_secret_constraints",
    "parse_config",
    "refused_at",
    "safe_file_name",
    "size_limit",
    "value_pattern",
    "written_names",
]

CONFIG = "config.json"
"""The merged configuration (listed in the manifest)."""
MANIFEST = "manifest.json"
"""Environment, version and the sha256 of every listed file (docs/artifact.md)."""
SIGNATURE = "manifest.json.sig"
"""Base64 of the Ed25519 signature over the exact bytes of ``manifest.json``."""
ATTESTATION = "attestation.dsse.json"
"""The in-toto statement over the manifest and its files, in a DSSE envelope."""
CONFIGMAP = "configmap.yaml"
"""The artifact as a Kubernetes ConfigMap (not listed in the manifest)."""
KUSTOMIZATION = "kustomization.yaml"
"""The Kustomize entry point listing the directory's Kubernetes objects (not listed in
the manifest), so ``kustomize build`` and ``kubectl apply -k`` apply exactly those."""

VALUE_CONSTRAINTS = "value-constraints.json"
"""What the schema's ``x-magcfg-secret-value`` says each secret's value must be (listed
in the manifest; written only when the schema states such constraints)."""

SIGNED_FILES = (SIGNATURE, ATTESTATION)
"""Files ``sign`` makes over the manifest's bytes: they hold only while it is unchanged."""
DATA_LINK = "..data"
"""In a Kubernetes ConfigMap volume (and the sidecar's output), the symlink to the
directory that holds the files of the current version."""

MAX_MANIFEST_BYTES = 16 * 1024 * 1024
"""The largest ``manifest.json`` (and ``value-constraints.json``) a reader accepts and
the build writes: ~100 times the manifest of a large repository (thousands of keys and
files, ~150 KB). Files are checked against it before they are read, so a planted huge
file costs nothing."""
MAX_SIGNATURE_BYTES = 1024
"""The largest ``manifest.json.sig``: 88 bytes of base64 and a newline, with room for
line endings an editor or a transport might add."""
MAX_ATTESTATION_BYTES = 64 * 1024 * 1024
"""The largest ``attestation.dsse.json``: base64 of a statement with one subject per
file the manifest lists, ~2.5 times the manifest's ``files`` at most."""

MAX_FILE_BYTES = 256 * 1024 * 1024
"""The largest file a manifest lists (``config.json`` above all) that a reader accepts
and the build writes: ~30 times the 8 MB ``config.json`` of the large benchmark
repository (200 services of ~1,000 keys). Only its signed digest says a file is the
right one, and that needs every byte: without a bound a planted file of any size would
be read whole first."""

MAX_FILES = 1000
"""The most entries an artifact directory, or an artifact layer pulled from a registry,
may hold: a build writes a handful (the manifest, its signature and attestation, the
ConfigMap and kustomization, and the four files it lists). Past it the directory is
refused before its entries are listed whole: one of a million planted entries would cost
a second and ~130 MB to list and sort first."""

MAX_CONFIG_DEPTH = 128
"""The deepest nesting of ``config.json`` (its top-level object is level 1) that the
runtime kernel serves: twice the nesting a layer file may have
(``syntax.strict_yaml.MAX_DEPTH``), so every build's config is served. The kernel's
walks of a config (freezing, the diff, redaction, the copy of an event for each
subscriber) recurse a few frames per level: a config past this bound is refused before
the first of them, where a deeper one ran out of Python's recursion limit half-way
through a reload, the version served but no event sent."""

MANIFEST_FORMAT = 1
"""The ``format`` this module reads and the build writes."""
MAX_VERSION = 2**53 - 1
"""The highest ``version``: every JSON reader (JavaScript's numbers, jq) reads integers up
to here exactly, so no two tools disagree on which of two versions is newer."""
ENVIRONMENT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
"""What an environment is called (the project file enforces the same)."""

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_NOT_LISTED = frozenset({MANIFEST, SIGNATURE, ATTESTATION, CONFIGMAP, KUSTOMIZATION})
_MAX_NAME = 255
_REQUIRED = ("compiler", "config_digest", "environment", "files", "format", "hot_keys",
             "inputs", "reload_default", "restart_keys", "schema", "version")
_OPTIONAL = ("secret_keys",)
_LIMITS = {MANIFEST: MAX_MANIFEST_BYTES, SIGNATURE: MAX_SIGNATURE_BYTES,
           ATTESTATION: MAX_ATTESTATION_BYTES, VALUE_CONSTRAINTS: MAX_MANIFEST_BYTES}


class ManifestError(ValueError):
    """A ``manifest.json`` that is not in the format of docs/artifact.md.

    ``field`` is the offending field's JSON path (``files.config.json`` is written
    ``files["config.json"]``), ``None`` for the document as a whole.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


class DataLinkError(ValueError):
    """A ``..data`` entry that a reader will not follow; ``message`` says why. The
    offending entry is always ``<directory>/..data``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def size_limit(name: str) -> int:
    """The most bytes a reader accepts for the artifact file ``name`` before verifying
    it: the manifest's own files have bounds of their kind, the files it lists
    :data:`MAX_FILE_BYTES`."""
    return _LIMITS.get(name, MAX_FILE_BYTES)


def data_root(directory: Path, *, volume: bool) -> Path:
    """Where an artifact directory's files really are: the version directory ``..data``
    names if there is such a link, else the directory itself. Resolved once, so one read
    cannot mix two versions.

    ``volume``: the directory may be a ConfigMap volume (given with ``--artifact``, or
    the runtime kernel's). Its ``..data`` must be a symlink to a ``..<something>`` entry
    beside it that is a real directory: one hop that stays in the artifact directory,
    as the kubelet writes it. Without ``volume`` (the repository's ``generated/<env>/``,
    which magcfg writes and which never holds one) any ``..data`` is refused. Raises
    :class:`DataLinkError`.
    """
    link = directory / DATA_LINK
    try:
        mode = os.lstat(link).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return directory
    except OSError as exc:
        raise DataLinkError(f"cannot read: {(exc.strerror or str(exc)).lower()}") from None
    if not volume:
        # A committed link would make verify and publish read (and vouch for) files
        # other than the ones the branch ships: only a mounted volume has one.
        raise DataLinkError("not written by magcfg: a ..data link is read only in an "
                            "artifact directory given explicitly (a ConfigMap volume)")
    if not stat.S_ISLNK(mode):
        raise DataLinkError("is not a symbolic link (in a ConfigMap volume it links to the "
                            "version directory beside it)")
    try:
        target = os.readlink(link)
    except OSError as exc:
        raise DataLinkError(f"cannot read: {(exc.strerror or str(exc)).lower()}") from None
    # The kubelet links to a sibling by its bare name; anything with a separator (an
    # absolute path, ../x, a/b) could lead out of the directory the caller vouches for.
    if ("/" in target or not target.startswith("..")
            or target in ("..", DATA_LINK)):
        raise DataLinkError(f"links to {target!r}, not to a '..<version>' directory beside "
                            "it: a ..data link must stay in the artifact directory")
    root = directory / target
    try:
        target_mode = os.lstat(root).st_mode
    except FileNotFoundError:
        raise DataLinkError(f"links to {target!r}, which does not exist") from None
    except OSError as exc:
        raise DataLinkError(f"links to {target!r}, which cannot be read: "
                            f"{(exc.strerror or str(exc)).lower()}") from None
    if not stat.S_ISDIR(target_mode):
        kind = "a symbolic link" if stat.S_ISLNK(target_mode) else "not a directory"
        raise DataLinkError(f"links to {target!r}, which is {kind}; it must be a directory")
    return root


def _fail(field: str | None, message: str) -> NoReturn:
    raise ManifestError(message, field)


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number with a fraction or exponent"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def is_version(value: object) -> TypeGuard[int]:
    """Whether ``value`` is a valid manifest ``version`` (an integer, 1..MAX_VERSION)."""
    return (isinstance(value, int) and not isinstance(value, bool)
            and 1 <= value <= MAX_VERSION)


def _integer(value: object, field: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        _fail(field, f"must be an integer, not {_type_name(value)}")
    if not low <= value <= high:
        shown = str(value) if len(str(value)) <= 20 else f"a {len(str(value))}-digit number"
        _fail(field, f"must be from {low} to {high}, not {shown}")
    return value


def _string(value: object, field: str) -> str:
    if not isinstance(value, str) or not value:
        _fail(field, f"must be a non-empty string, not {_type_name(value)}"
              if not isinstance(value, str) else "must be a non-empty string")
    return value


def _digest(value: object, field: str) -> str:
    if not isinstance(value, str) or not _DIGEST.fullmatch(value):
        _fail(field, "must be 'sha256:' and 64 lowercase hex digits")
    return value


def _object(value: object, field: str, keys: tuple[str, ...] | None = None) -> dict[str, Any]:
    if not isinstance(value, dict):
        _fail(field, f"must be an object, not {_type_name(value)}")
    if keys is not None:
        for key in sorted(set(value) - set(keys)):
            _fail(field, f"has an unknown field {key!r} (known: {', '.join(keys)})")
        for key in keys:
            if key not in value:
                _fail(field, f"has no {key!r}")
    return value


def _keys(value: object, field: str) -> list[str]:
    if not isinstance(value, list):
        _fail(field, f"must be an array of key paths, not {_type_name(value)}")
    # Thousands of keys per manifest, checked twice per environment and build: a pass
    # in C, and the item-by-item walk only to name the first bad one.
    if set(map(type, value)) <= {str} and "" not in value:
        return value
    for i, item in enumerate(value):
        _string(item, f"{field}[{i}]")
    return value


def safe_file_name(name: str) -> bool:
    """A name relative to the artifact directory that points nowhere outside it."""
    if (not name or len(name) > _MAX_NAME or "\\" in name
            or any(ord(c) < 0x20 or ord(c) == 0x7f for c in name)):
        return False
    return not PurePosixPath(name).is_absolute() and all(
        part not in ("", ".", "..") for part in name.split("/"))


def check_manifest(manifest: object) -> dict[str, Any]:
    """``manifest`` (parsed JSON) if it is in format 1, else :class:`ManifestError`.

    Every field is required but ``secret_keys``; no other field is allowed (a later
    format changes ``format``).
    """
    doc = _object(manifest, "")
    for key in sorted(set(doc) - set(_REQUIRED) - set(_OPTIONAL)):
        _fail(key, f"is not a field of format {MANIFEST_FORMAT} manifests "
              f"(fields: {', '.join(sorted(_REQUIRED + _OPTIONAL))})")
    for key in _REQUIRED:
        if key not in doc:
            _fail(key, "is missing")
    if type(doc["format"]) is not int or doc["format"] != MANIFEST_FORMAT:
        _fail("format", f"must be {MANIFEST_FORMAT} (this magcfg reads format "
              f"{MANIFEST_FORMAT}), not {json.dumps(doc['format'])[:40]}")
    environment = _string(doc["environment"], "environment")
    if not ENVIRONMENT_NAME.fullmatch(environment) or len(environment) > _MAX_NAME:
        _fail("environment", f"must match {ENVIRONMENT_NAME.pattern}")
    _integer(doc["version"], "version", 1, MAX_VERSION)
    files = _object(doc["files"], "files")
    for name, digest in files.items():
        where = f"files[{json.dumps(name)}]"
        if not safe_file_name(name):
            _fail(where, "is not a safe file name (relative, no '..', '.', '\\' or "
                  "control characters)")
        if name in _NOT_LISTED:
            _fail(where, f"{name} is never listed in the manifest")
        _digest(digest, where)
    if CONFIG not in files:
        _fail("files", f"does not list {CONFIG}")
    if _digest(doc["config_digest"], "config_digest") != files[CONFIG]:
        _fail("config_digest", f"differs from the digest of {CONFIG} in files")
    compiler = _object(doc["compiler"], "compiler", ("name", "version"))
    _string(compiler["name"], "compiler.name")
    _string(compiler["version"], "compiler.version")
    inputs = _object(doc["inputs"], "inputs", ("digest", "files"))
    _digest(inputs["digest"], "inputs.digest")
    _integer(inputs["files"], "inputs.files", 0, MAX_VERSION)
    if doc["reload_default"] not in ("hot", "restart"):
        _fail("reload_default", "must be 'hot' or 'restart'")
    _keys(doc["hot_keys"], "hot_keys")
    _keys(doc["restart_keys"], "restart_keys")
    if "secret_keys" in doc:
        _keys(doc["secret_keys"], "secret_keys")
    schema = _object(doc["schema"], "schema")
    for key in ("digest", "path"):
        if key not in schema:
            _fail("schema", f"has no {key!r}")
    if schema["digest"] is not None:
        _digest(schema["digest"], "schema.digest")
    if schema["path"] is not None:
        _string(schema["path"], "schema.path")
    for name, entry in schema.items():
        if name not in ("digest", "path"):
            for key, value in _object(entry, f"schema.{name}").items():
                _string(value, f"schema.{name}.{key}")
    return doc


class JSONRefused(ValueError):
    """JSON that readers disagree on, refused wherever it stands: a key twice in one
    object, ``NaN`` or ``Infinity`` (by every reader of this module), a number beyond a
    double or an integer beyond 64 bits, signed (by :func:`strict_json`; the manifest's
    fields are bounded one by one). The message names no value."""


_INT64 = (-(2**63), 2**63 - 1)
"""The integers config.json holds (the compiler refuses others in a layer): ``json``
reads wider ones exactly, orjson as a float, JavaScript rounds past 2**53 anyway."""


def _one_value_per_key(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):  # the first key seen twice, named
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise JSONRefused(f"the key {key!r} appears twice in one object (JSON "
                                  "readers disagree on which one counts)")
            seen.add(key)
    return out


def _no_constant(name: str) -> NoReturn:
    raise JSONRefused(f"{name} is not JSON")


def _finite(token: str) -> float:
    value = float(token)
    if not math.isfinite(value):
        raise JSONRefused("a number beyond the range of a double is not JSON (JSON readers "
                          "disagree on its value)")
    return value


def _int64(token: str) -> int:
    # More digits than any 64-bit integer: refused unconverted (int() of a long one is slow).
    value = int(token) if len(token) <= 20 else None
    if value is None or not _INT64[0] <= value <= _INT64[1]:
        raise JSONRefused("an integer beyond 64 bits (signed) is refused (JSON readers "
                          "disagree on its value)")
    return value


def strict_json(text: str | bytes) -> Any:
    """``text`` read by ``json`` with every ambiguity refused (:class:`JSONRefused`):
    what each JSON reader reads the same way, or an error. Raises ``ValueError``
    (``json.JSONDecodeError``, :class:`JSONRefused`), ``UnicodeDecodeError`` or
    ``RecursionError``."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    return json.loads(text, object_pairs_hook=_one_value_per_key, parse_constant=_no_constant,
                      parse_float=_finite, parse_int=_int64)


def refused_at(text: str) -> int | None:
    """Where :func:`strict_json` refuses ``text`` (:class:`JSONRefused`): the index of the
    number or constant it refuses, or of the object that holds a key twice; ``None``
    where it refuses nothing, or nests past what Python's reader recurses through.

    ``json``'s reader says where text is not JSON, never where a hook refused what it
    read: this reads ``text`` again with ``json``'s Python reader (several times slower
    than its C one), each value read through a guard that notes where it starts. Only
    for an error's message."""
    from json import decoder, scanner

    found: list[int] = []

    def guarded(scan: Callable[[str, int], tuple[Any, int]]
                ) -> Callable[[str, int], tuple[Any, int]]:
        def scan_at(string: str, at: int) -> tuple[Any, int]:
            try:
                return scan(string, at)
            except JSONRefused:
                if not found:  # the innermost value holding what is refused
                    found.append(at)
                raise

        return scan_at

    class Context:
        strict = True
        parse_string = staticmethod(decoder.scanstring)  # type: ignore[attr-defined]
        parse_float = staticmethod(_finite)
        parse_int = staticmethod(_int64)
        parse_constant = staticmethod(_no_constant)
        object_hook = None
        object_pairs_hook = staticmethod(_one_value_per_key)
        memo: ClassVar[dict[str, str]] = {}

        @staticmethod
        def parse_object(string_and_end: tuple[str, int], strict: bool,
                         scan: Callable[[str, int], tuple[Any, int]],
                         *hooks: Any) -> Any:
            return decoder.JSONObject(string_and_end, strict,  # type: ignore[attr-defined]
                                      guarded(scan), *hooks)

        @staticmethod
        def parse_array(string_and_end: tuple[str, int],
                        scan: Callable[[str, int], tuple[Any, int]]) -> Any:
            return decoder.JSONArray(string_and_end, guarded(scan))  # type: ignore[attr-defined]

    start = len(text) - len(text.lstrip(" \t\n\r"))
    try:
        guarded(scanner.py_make_scanner(Context))(text, start)  # type: ignore[attr-defined]
    except JSONRefused:
        return found[0] if found else None
    except (ValueError, StopIteration, RecursionError):
        return None
    return None


_DIGITS_AS_NINES = bytes.maketrans(b"0123456789", b"9" * 10)
_WIDE_NUMBER = b"9" * 19  # 2**63 has 19 digits: a run shorter than this fits in 64 bits
_NOT_A_DIGIT = re.compile(b"[^9]")


def parse_config(data: bytes) -> Any:
    """The document of config.json, as :func:`strict_json` reads it whatever is
    installed: whether a service takes an artifact, and which values it serves, cannot
    depend on orjson. Raises ``ValueError`` (:class:`JSONRefused`, ``JSONDecodeError``),
    ``UnicodeDecodeError`` for what is not JSON, or not JSON every reader agrees on.

    orjson, when installed, reads it first (1.4-5x faster than :func:`strict_json`, which
    calls Python for every object and number, on 5-12 MB configs): its document is taken
    where it is ``json``'s (:func:`read_as_json_reads`), else (and for an error)
    :func:`strict_json` reads it again."""
    try:
        agreed, parsed = read_as_json_reads(data)
    except ImportError:
        return _strict_config(data)
    return parsed if agreed else _strict_config(data)


def read_as_json_reads(data: bytes) -> tuple[bool, Any]:
    """``(True, document)``: orjson's document of ``data``, where it is the one ``json``
    reads, which two scans of the bytes show (~2 ms per MB); else ``(False, None)``,
    for the caller to read ``data`` with ``json`` and its own checks (and word their
    errors): orjson refused it, or it may read otherwise. orjson reads an integer
    beyond 64 bits as a float and takes the last of two equal keys; the scans find
    every run of 19 or more digits outside a fraction (``json`` reads it exactly) and
    compare the ``:`` of the text with those of orjson's document written back by
    orjson (one fewer per key that a duplicate replaced). ``ImportError`` without
    orjson."""
    import orjson

    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        return False, None
    if _may_hold_a_wide_integer(data):
        return False, None
    try:
        written = orjson.dumps(parsed)
    except orjson.JSONEncodeError:  # nested past orjson's writer
        return False, None
    # A ":" of a string written "\u003a" counts in the document, not in the text (most
    # documents hold no backslash: one memchr).
    if data.count(b":") != written.count(b":") or (
            data.find(b"\\") >= 0 and data.find(b"\\u003") >= 0):
        return False, None
    return True, parsed


def _may_hold_a_wide_integer(data: bytes) -> bool:
    """Whether ``data`` holds a run of 19 or more digits that is not the fraction of a
    number (orjson reads a fraction's digits as ``float`` does: a double either way)."""
    digits = data.translate(_DIGITS_AS_NINES)
    at = digits.find(_WIDE_NUMBER)
    while at >= 0:
        if at == 0 or digits[at - 1] != 0x2E:  # "."
            return True
        after = _NOT_A_DIGIT.search(digits, at)
        if after is None:
            return False
        at = digits.find(_WIDE_NUMBER, after.end())
    return False


def _strict_config(data: bytes) -> Any:
    try:
        return strict_json(data)
    except RecursionError:
        # Only nesting runs json out of frames, far past what the kernel serves: the
        # error freezing orjson's document would give.
        raise JSONRefused(f"nested deeper than {MAX_CONFIG_DEPTH} levels") from None


def load_manifest(data: bytes) -> dict[str, Any]:
    """Parse ``manifest.json`` bytes strictly: UTF-8 JSON without duplicate keys,
    ``NaN`` or ``Infinity``, then :func:`check_manifest`. Raises :class:`ManifestError`."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        _fail(None, "is not UTF-8")
    try:
        parsed = json.loads(text, object_pairs_hook=_one_value_per_key,
                            parse_constant=_no_constant)
    except JSONRefused as exc:
        _fail(None, str(exc))
    except RecursionError:
        _fail(None, "is nested too deeply")
    except ValueError as exc:
        _fail(None, f"is not valid JSON ({exc})")
    return check_manifest(parsed)


def written_names(manifest: bytes | None) -> frozenset[str]:
    """The files of an artifact directory that magcfg wrote, judged by its manifest:
    the files it lists, the manifest, and what ``sign`` and delivery add. A build or
    ``sign`` replaces or deletes these and no others. Only plain names count (a
    manifest is hostile input: ``../x`` or ``a/b`` names nothing here)."""
    return frozenset({MANIFEST, CONFIGMAP, KUSTOMIZATION, *SIGNED_FILES,
                      *listed_files(manifest)})


def listed_files(manifest: bytes | None) -> dict[str, object]:
    """The files a manifest lists, each with what it says of it (a digest, if the
    manifest is one magcfg wrote): only plain names (a manifest is hostile input:
    ``../x`` or ``a/b`` names nothing here); none if it cannot be read."""
    try:
        listed = json.loads(manifest or b"{}").get("files")
    except (ValueError, AttributeError, RecursionError):
        listed = None
    if not isinstance(listed, dict):
        return {}
    return {name: said for name, said in listed.items() if isinstance(name, str) and name
            and "/" not in name and "\0" not in name and name not in (".", "..")}


# -- value-constraints.json ---------------------------------------------------------------

VALUE_CONSTRAINTS_FORMAT = 1
VALUE_KEYWORDS = ("const", "enum", "maxLength", "minLength", "pattern")
"""What ``x-magcfg-secret-value`` may say about a secret's value (all strings)."""


_MAX_PROGRAM = 1000
"""The most steps a compiled value pattern may have (``x{1000}`` is a thousand). The
time to check a value grows with its length times this (a few seconds at most for an
8 KB value); lengths are what ``minLength`` and ``maxLength`` are for."""
_MAX_WRITTEN = 100 * _MAX_PROGRAM
"""The most times bodies may be written out while compiling, an empty one included: it
emits no step, yet ``(?:(?:(?:){999}){999}){999}`` writes out a billion of them."""
_TOO_LARGE = (f"is too large to check (more than {_MAX_PROGRAM} steps once its counted "
              "repetitions are written out; use minLength and maxLength for lengths)")
_WORD = frozenset(string.ascii_letters + string.digits + "_")
_SPACE = frozenset(string.whitespace)
_CATEGORIES: dict[str, Callable[[str], bool]] = {
    "CATEGORY_DIGIT": lambda c: "0" <= c <= "9",
    "CATEGORY_NOT_DIGIT": lambda c: not "0" <= c <= "9",
    "CATEGORY_SPACE": lambda c: c in _SPACE,
    "CATEGORY_NOT_SPACE": lambda c: c not in _SPACE,
    "CATEGORY_WORD": lambda c: c in _WORD,
    "CATEGORY_NOT_WORD": lambda c: c not in _WORD,
}
_UNSUPPORTED = {
    "GROUPREF": "a backreference", "GROUPREF_EXISTS": "a conditional group",
    "ASSERT": "a lookaround", "ASSERT_NOT": "a negative lookaround",
    "POSSESSIVE_REPEAT": "a possessive quantifier", "ATOMIC_GROUP": "an atomic group",
}


def _in_range(low: str, high: str, c: str) -> bool:
    return low <= c <= high


def _fold(c: str) -> str:
    return c.lower() if "A" <= c <= "Z" else c  # re.ASCII: only ASCII letters fold


class ValuePattern:
    """A ``pattern`` of ``x-magcfg-secret-value``, checked in time linear in the value
    (a Thompson NFA run over the parse of Python's own ``re``: no backtracking, so a
    pattern such as ``^(.+)+Z`` cannot hang ``check-env`` at start-up, where it would
    run on real secrets). Python's ``re`` is exponential on such patterns and the
    runtime promises no other dependency; it matches what ``re`` matches for every
    construct it accepts, and refuses (as ``re.error``) backreferences, lookarounds,
    possessive quantifiers and atomic groups, which need backtracking."""

    def __init__(self, pattern: str, text: str) -> None:
        self.pattern = pattern
        self.source = text  # the pattern as Python's re reads it (``$`` made ``\\Z``)
        # The program: ("char", test) | ("split", a, b) | ("jmp", a) | ("at", code) |
        # ("match",). Every instruction is at most one entry of the thread list.
        self._program: list[tuple[Any, ...]] = []
        self._written = 0  # bodies written out so far (_MAX_WRITTEN)
        try:  # re's own parser, so the syntax accepted is exactly re's
            parser: Any = importlib.import_module("re._parser")
        except ImportError:
            raise re.error("cannot be checked by this Python (no re._parser)") from None
        self._maxrepeat = parser.MAXREPEAT
        parsed = parser.parse(text, re.ASCII)
        self._emit(list(parsed), int(parsed.state.flags))
        self._program.append(("match",))

    def _add(self, *instruction: Any) -> int:
        if len(self._program) >= _MAX_PROGRAM:
            raise re.error(_TOO_LARGE)
        self._program.append(instruction)
        return len(self._program) - 1

    def _emit(self, items: list[tuple[Any, Any]], flags: int) -> None:
        self._written += 1
        if self._written > _MAX_WRITTEN:
            raise re.error(_TOO_LARGE)
        for op, av in items:
            self._emit_one(str(op), av, flags)

    def _emit_one(self, op: str, av: Any, flags: int) -> None:
        fold = bool(flags & re.IGNORECASE)
        if op in _UNSUPPORTED:
            raise re.error(f"uses {_UNSUPPORTED[op]}, which magcfg does not check (secret "
                           "values are checked without backtracking)")
        if op == "LITERAL" or op == "NOT_LITERAL":
            want, same = chr(av), op == "LITERAL"
            if fold:
                want = _fold(want)
                self._add("char", lambda c: (_fold(c) == want) is same)
            else:
                self._add("char", lambda c: (c == want) is same)
        elif op == "ANY":
            self._add("char", (lambda c: True) if flags & re.DOTALL else (lambda c: c != "\n"))
        elif op == "IN":
            self._add("char", self._class(av, fold))
        elif op == "AT":
            self._add("at", str(av), bool(flags & re.MULTILINE))
        elif op == "BRANCH":
            jumps: list[int] = []
            alternatives = av[1]
            for i, alternative in enumerate(alternatives):
                if i < len(alternatives) - 1:
                    split = self._add("split", 0, 0)
                    self._emit(list(alternative), flags)
                    jumps.append(self._add("jmp", 0))
                    self._program[split] = ("split", split + 1, len(self._program))
                else:
                    self._emit(list(alternative), flags)
            for jump in jumps:
                self._program[jump] = ("jmp", len(self._program))
        elif op == "SUBPATTERN":
            _, add_flags, del_flags, body = av
            self._emit(list(body), (flags | add_flags) & ~del_flags)
        elif op in ("MAX_REPEAT", "MIN_REPEAT"):  # greedy or lazy: the same for a yes/no
            low, high, body = av
            # Counted against the budget whatever the body emits: an empty body
            # (`(?:){4294967294}`) adds no step, and the loop alone would run for ages.
            if low + (0 if high == self._maxrepeat else high - low) > _MAX_PROGRAM:
                raise re.error(_TOO_LARGE)
            for _ in range(low):
                self._emit(list(body), flags)
            if high == self._maxrepeat:
                loop = self._add("split", 0, 0)
                self._emit(list(body), flags)
                self._add("jmp", loop)
                self._program[loop] = ("split", loop + 1, len(self._program))
            else:
                splits = []
                for _ in range(high - low):
                    splits.append(self._add("split", 0, 0))
                    self._emit(list(body), flags)
                for split in splits:
                    self._program[split] = ("split", split + 1, len(self._program))
        else:
            raise re.error(f"uses {op}, which magcfg does not check")

    @staticmethod
    def _class(items: list[tuple[Any, Any]], fold: bool) -> Callable[[str], bool]:
        negate = False
        chars: set[str] = set()
        tests: list[Callable[[str], bool]] = []
        for op, av in items:
            kind = str(op)
            if kind == "NEGATE":
                negate = True
            elif kind == "LITERAL":
                chars.add(chr(av))
            elif kind == "RANGE":
                tests.append(functools.partial(_in_range, chr(av[0]), chr(av[1])))
            elif kind == "CATEGORY" and str(av) in _CATEGORIES:
                tests.append(_CATEGORIES[str(av)])
            else:
                raise re.error(f"uses {kind} {av} in a character class, which magcfg does "
                               "not check")
        members = frozenset(chars)

        def inside(c: str) -> bool:
            return c in members or any(test(c) for test in tests)

        def test(c: str) -> bool:
            found = inside(c) or (fold and c.isascii() and c.isalpha() and (
                inside(c.lower()) or inside(c.upper())))
            return found is not negate

        return test

    @staticmethod
    def _at(code: str, multiline: bool, value: str, pos: int) -> bool:
        size = len(value)
        if code == "AT_BEGINNING":
            return pos == 0 or (multiline and value[pos - 1] == "\n")
        if code == "AT_BEGINNING_STRING":
            return pos == 0
        if code == "AT_END":
            return (pos == size or (pos == size - 1 and value[pos] == "\n")
                    or (multiline and value[pos] == "\n"))
        if code == "AT_END_STRING":
            return pos == size
        before = pos > 0 and value[pos - 1] in _WORD
        after = pos < size and value[pos] in _WORD
        if code == "AT_BOUNDARY":
            return before != after
        if code == "AT_NON_BOUNDARY":  # as re before 3.14: never in an empty value
            return size > 0 and before == after
        raise re.error(f"uses {code}, which magcfg does not check")

    def search(self, value: str) -> bool:
        """Whether the pattern matches anywhere in ``value`` (JSON Schema's rule)."""
        program = self._program
        seen = [-1] * len(program)
        current: list[int] = []
        for pos in range(len(value) + 1):
            # Threads at this position: those that read the last character, and a new
            # one starting here (the pattern is unanchored). Each instruction at most once.
            starts = [*current, 0]
            current = []
            stack = list(reversed(starts))
            while stack:
                pc = stack.pop()
                if seen[pc] == pos:
                    continue
                seen[pc] = pos
                kind = program[pc][0]
                if kind == "char":
                    current.append(pc)
                elif kind == "match":
                    return True
                elif kind == "jmp":
                    stack.append(program[pc][1])
                elif kind == "split":
                    stack += (program[pc][2], program[pc][1])
                elif self._at(program[pc][1], program[pc][2], value, pos):
                    stack.append(pc + 1)
            if pos == len(value):
                break
            c = value[pos]
            current = [pc + 1 for pc in current if program[pc][1](c)]
        return False


@functools.lru_cache(maxsize=256)
def value_pattern(pattern: str) -> ValuePattern:
    """``pattern`` (JSON Schema, ECMA-262) compiled as ECMA-262 reads it where it and
    Python's ``re`` differ in ways that matter for a secret: ``$`` outside a character
    class is the end of the value (Python's also matches before a final newline), and
    ``\\d``/``\\w`` are ASCII (so is ``\\s`` here, narrower than ECMA-262's). Unanchored,
    like JSON Schema: ``.search(value)``. Checked in linear time (:class:`ValuePattern`).
    Raises ``re.error`` when ``re`` cannot compile it, or it needs backtracking."""
    out: list[str] = []
    i, in_class = 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(pattern[i:i + 2])
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
        elif c == "$":
            c = r"\Z"
        out.append(c)
        i += 1
    text = "".join(out)
    re.compile(text, re.ASCII)  # re's syntax errors, as before
    return ValuePattern(pattern, text)


def _length(value: object, field: str) -> int:
    return _integer(value, field, 0, MAX_VERSION)


def check_secret_constraints(document: object) -> dict[str, dict[str, Any]]:
    """The key glob -> constraints of ``value-constraints.json`` (parsed), checked:
    ``{"format": 1, "keys": {glob: {keyword: value}}}`` with ``VALUE_KEYWORDS`` only.
    Raises :class:`ManifestError` (``field`` names the offending place)."""
    doc = _object(document, "", ("format", "keys"))
    if type(doc["format"]) is not int or doc["format"] != VALUE_CONSTRAINTS_FORMAT:
        _fail("format", f"must be {VALUE_CONSTRAINTS_FORMAT}")
    keys = _object(doc["keys"], "keys")
    for glob, entry in keys.items():
        where = f"keys[{json.dumps(glob)}]"
        _string(glob, where)
        rules = _object(entry, where)
        if not rules:
            _fail(where, "states no constraint")
        for keyword, value in rules.items():
            at = f"{where}.{keyword}"
            if keyword in ("minLength", "maxLength"):
                _length(value, at)
            elif keyword == "pattern":
                try:
                    value_pattern(_string(value, at))
                except re.error as exc:
                    _fail(at, f"is not a regular expression magcfg can check ({exc})")
            elif keyword == "const":
                if not isinstance(value, str):
                    _fail(at, f"must be a string, not {_type_name(value)}")
            elif keyword == "enum":
                if not isinstance(value, list) or not value or not all(
                        isinstance(v, str) for v in value):
                    _fail(at, "must be a non-empty array of strings")
            else:
                _fail(at, f"is not a constraint magcfg checks ({', '.join(VALUE_KEYWORDS)})")
    return keys


def load_secret_constraints(data: bytes) -> dict[str, dict[str, Any]]:
    """Parse ``value-constraints.json`` bytes strictly (as :func:`load_manifest`), then
    :func:`check_secret_constraints`. Raises :class:`ManifestError`."""
    try:
        parsed = json.loads(data.decode("utf-8"), object_pairs_hook=_one_value_per_key,
                            parse_constant=_no_constant)
    except JSONRefused as exc:
        _fail(None, str(exc))
    except UnicodeDecodeError:
        _fail(None, "is not UTF-8")
    except RecursionError:
        _fail(None, "is nested too deeply")
    except ValueError as exc:
        _fail(None, f"is not valid JSON ({exc})")
    return check_secret_constraints(parsed)
