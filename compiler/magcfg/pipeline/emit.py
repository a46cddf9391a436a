"""Stage 5, emit: deterministic bytes of the artifact, and writing them safely.

``config.json`` is the merged config with sorted keys, 2-space indent, raw UTF-8 and a
trailing newline. It is assembled from per-top-level-key fragments, each serialized by
orjson exactly as it would appear inside the whole document, so a rebuild can reuse the
fragments of unchanged keys; the bytes are identical to serializing the whole document.

Writing is ``durable.replace_directories``: nothing is written unless the whole build
succeeded, and each environment's directory changes as a whole or not at all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import orjson

from ..artifact import (
    CONFIG,
    MANIFEST_FORMAT,
    MAX_MANIFEST_BYTES,
    MAX_VERSION,
    ManifestError,
    check_manifest,
    load_manifest,
)
from ..errors import BuildError, Diagnostic
from ..version import __version__

_OPTIONS = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS


def fragment_bytes(key: str, value: Any) -> bytes:
    """``"key": value`` as it appears (indented) inside config.json."""
    whole = orjson.dumps({key: value}, option=_OPTIONS)
    return whole[2:-2]  # strip "{\n" and "\n}"


def config_bytes(fragments: Iterable[bytes | memoryview]) -> bytes:
    """config.json from fragments given in sorted key order."""
    pieces: list[bytes | memoryview] = [b"{\n"]
    for fragment in fragments:
        pieces.append(fragment)
        pieces.append(b",\n")
    if len(pieces) == 1:
        return b"{}\n"
    pieces[-1] = b"\n}\n"
    return b"".join(pieces)  # one copy of the ~10 MB, not three


def fragment_views(config: bytes, sizes: Iterable[int]) -> Iterator[memoryview]:
    """The fragments ``config_bytes`` joined into ``config``, of ``sizes`` in order, each
    a view of ``config`` (no copy)."""
    view = memoryview(config)
    at = 2  # after b"{\n"
    for size in sizes:
        yield view[at:at + size]
        at += size + 2  # and b",\n"


def json_bytes(value: Any) -> bytes:
    """Any other JSON file magcfg writes: the same canonical form as config.json."""
    return orjson.dumps(value, option=_OPTIONS) + b"\n"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def manifest_bytes(
    *,
    env: str,
    files: Mapping[str, bytes],
    inputs_digest: str,
    input_count: int,
    schema_path: str | None,
    schema_digest: str | None,
    schemas: Mapping[str, Mapping[str, str]] | None = None,
    hot_keys: list[str],
    restart_keys: list[str],
    previous: bytes | None,
    secret_keys: list[str] | None = None,
    manifest_path: str,
    digests: Mapping[str, str] | None = None,
) -> tuple[bytes, bool]:
    """manifest.json (docs/artifact.md), and whether its reload policy (``hot_keys``,
    ``restart_keys``) is all that changed from the previous manifest's: ``version`` is
    the previous manifest's version if the emitted files are unchanged, else one more
    (docs/versioning.md). ``digests``: the ``sha256`` of some of ``files``, already
    known."""
    known = digests or {}
    file_digests = {name: known.get(name) or sha256(data)
                    for name, data in sorted(files.items())}
    version = 1
    policy_only = False
    if previous is not None:
        try:
            old = load_manifest(previous)
        except ManifestError as exc:
            raise BuildError([Diagnostic(
                manifest_path, None, exc.field or None,
                f"cannot read the previous version from this manifest ({exc.message}); "
                "restore it from git (the version must never go down)",
                code="manifest")]) from None
        old_version = old["version"]
        version = old_version if old["files"] == file_digests else old_version + 1
        policy_only = version == old_version and (
            old["hot_keys"], old["restart_keys"]) != (hot_keys, restart_keys)
        if version > MAX_VERSION:
            raise BuildError([Diagnostic(
                manifest_path, None, "version",
                f"version {old_version} is the highest a manifest may have ({MAX_VERSION}); "
                "no newer version can be built", code="manifest")])
    schema: dict[str, Any] = {"digest": schema_digest, "path": schema_path}
    for name, entry in sorted((schemas or {}).items()):
        schema[name] = dict(entry)
    manifest = {
        "compiler": {"name": "magcfg", "version": __version__},
        "config_digest": file_digests.get(CONFIG),
        "environment": env,
        "files": file_digests,
        "format": MANIFEST_FORMAT,
        "hot_keys": hot_keys,
        "inputs": {"digest": inputs_digest, "files": input_count},
        "reload_default": "restart",
        "restart_keys": restart_keys,
        "schema": schema,
        "version": version,
    }
    if secret_keys:
        # For the runtime, which has no schema: whose values events and logs must hide.
        manifest["secret_keys"] = secret_keys
    check_manifest(manifest)  # what verifiers refuse is never written
    data = json_bytes(manifest)
    if len(data) > MAX_MANIFEST_BYTES:  # nor what every reader would refuse to read
        raise BuildError([Diagnostic(
            manifest_path, None, None,
            f"would be {len(data)} bytes, more than the {MAX_MANIFEST_BYTES} every reader of "
            "an artifact accepts (too many files or reload keys)", code="manifest")])
    return data, policy_only


def inputs_digest(entries: Iterable[tuple[str, str]]) -> str:
    """Digest over sorted (path, content digest) pairs."""
    h = hashlib.sha256()
    for path, digest in sorted(entries):
        h.update(path.encode("utf-8") + b"\0" + digest.encode() + b"\n")
    return "sha256:" + h.hexdigest()
