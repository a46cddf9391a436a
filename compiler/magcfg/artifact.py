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

import json
import os
import re
import stat
from pathlib import Path, PurePosixPath
from typing import Any, NoReturn, TypeGuard

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
    "MAX_MANIFEST_BYTES",
    "MAX_SIGNATURE_BYTES",
    "MAX_VERSION",
    "SIGNATURE",
    "SIGNED_FILES",
    "VALUE_CONSTRAINTS",
    "VALUE_CONSTRAINTS_FORMAT",
    "VALUE_KEYWORDS",
    "DataLinkError",
    "ManifestError",
    "check_manifest",
    "check_secret_constraints",
    "data_root",
    "is_version",
    "load_manifest",
    "load_secret_constraints",
    "parse_config",
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


def size_limit(name: str) -> int | None:
    """The most bytes a reader accepts for the artifact file ``name`` before verifying
    it; None for files whose size only their signed digest bounds (``config.json``
    is as large as the configuration)."""
    return _LIMITS.get(name)


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


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            _fail(None, f"the key {key!r} appears twice in one object (JSON readers "
                  "disagree on which one counts)")
        out[key] = value
    return out


def _no_constant(name: str) -> NoReturn:
    _fail(None, f"{name} is not JSON")


def parse_config(data: bytes) -> Any:
    """The document of config.json: by orjson when it is installed (~3x faster on a
    large config; magcfg depends on it, a runtime-only install may lack it), else by
    ``json``. Raises ``ValueError`` (or ``UnicodeDecodeError``, ``RecursionError``) for
    what is not JSON."""
    try:
        import orjson
    except ImportError:
        return json.loads(data.decode("utf-8"))
    return orjson.loads(data)


def load_manifest(data: bytes) -> dict[str, Any]:
    """Parse ``manifest.json`` bytes strictly: UTF-8 JSON without duplicate keys,
    ``NaN`` or ``Infinity``, then :func:`check_manifest`. Raises :class:`ManifestError`."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        _fail(None, "is not UTF-8")
    try:
        parsed = json.loads(text, object_pairs_hook=_no_duplicates,
                            parse_constant=_no_constant)
    except ManifestError:
        raise
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
    names = {MANIFEST, CONFIGMAP, KUSTOMIZATION, *SIGNED_FILES}
    try:
        listed = json.loads(manifest or b"{}").get("files")
    except (ValueError, AttributeError, RecursionError):
        listed = None
    if isinstance(listed, dict):
        names.update(name for name in listed if isinstance(name, str) and name
                     and "/" not in name and "\0" not in name and name not in (".", ".."))
    return frozenset(names)


# -- value-constraints.json ---------------------------------------------------------------

VALUE_CONSTRAINTS_FORMAT = 1
VALUE_KEYWORDS = ("const", "enum", "maxLength", "minLength", "pattern")
"""What ``x-magcfg-secret-value`` may say about a secret's value (all strings)."""


def value_pattern(pattern: str) -> re.Pattern[str]:
    """``pattern`` (JSON Schema, ECMA-262) compiled with Python's ``re`` as ECMA-262 reads
    it where the two differ in ways that matter for a secret: ``$`` outside a character
    class is the end of the value (Python's also matches before a final newline), and
    ``\\d``/``\\w`` are ASCII (so is ``\\s`` here, narrower than ECMA-262's).
    Unanchored, like JSON Schema: use ``re.search``. Raises ``re.error`` when ``re`` cannot compile it."""
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
    return re.compile("".join(out), re.ASCII)


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
                    _fail(at, f"is not a regular expression Python can compile ({exc})")
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
        parsed = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates,
                            parse_constant=_no_constant)
    except ManifestError:
        raise
    except UnicodeDecodeError:
        _fail(None, "is not UTF-8")
    except RecursionError:
        _fail(None, "is nested too deeply")
    except ValueError as exc:
        _fail(None, f"is not valid JSON ({exc})")
    return check_secret_constraints(parsed)
