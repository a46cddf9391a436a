"""``magcfg check-env``: at service start-up, is every secret of the artifact resolvable?

Reads ``config.json`` of ``generated/<env>/`` (after checking its digest against
``manifest.json``), finds every secret reference in it and checks that what delivers the
value is there:

* ``vault://`` (External Secrets delivery): the env var ``env_var_name(key)`` that the
  Deployment injects with ``secretKeyRef`` is set and non-empty;
* ``env://VAR``: ``VAR`` is set and non-empty;
* ``vault+direct://``: the app reads Vault itself, so ``VAULT_ADDR`` is set.

A value that is there must also meet what the schema's ``x-magcfg-secret-value`` states
for its key (``minLength``, ``maxLength``, ``pattern``, ``const``, ``enum``): the build
writes those constraints to ``value-constraints.json``, listed (with its digest) in the
manifest, so they travel with the artifact and are trusted as far as the manifest is.
A failing value is reported by its env var, key and the constraint it fails.

Only names are reported, never values (nor their lengths). Light on purpose (standard
library only): a service embedding magcfg, or the runtime kernel, can call ``check_env``
at boot.

    >>> result = check_env("generated/production", os.environ)
    >>> if not result.ok: sys.exit("missing secrets: " + ", ".join(result.missing_names))
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..artifact import (
    CONFIG,
    DATA_LINK,
    MANIFEST,
    VALUE_CONSTRAINTS,
    DataLinkError,
    JSONRefused,
    ManifestError,
    data_root,
    load_manifest,
    load_secret_constraints,
    parse_config,
    size_limit,
    value_pattern,
)
from ..durable import FileTooLarge, read_regular
from ..errors import Diagnostic, MagcfgError, UsageError
from ..keyglob import KeyGlobs, format_keypath
from .references import SecretRef, env_var_name, reference_paths, references

VAULT_ADDR = "VAULT_ADDR"


class ArtifactError(MagcfgError):
    """The artifact directory cannot be read or does not agree with its manifest."""


Constraints = dict[str, dict[str, Any]]
"""Key glob -> constraints on the value of the secret there (``value-constraints.json``)."""


@dataclass(frozen=True)
class RequiredSecret:
    """One secret the artifact needs: its config key, reference scheme and the name of
    the env var that must carry it (or ``VAULT_ADDR`` for Direct-Vault); ``failed``:
    (keyword, message) of each constraint its value fails (never the value)."""

    key: str
    scheme: str
    name: str
    present: bool
    failed: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class EnvCheck:
    """The verdict of ``check_env``."""

    environment: str
    required: tuple[RequiredSecret, ...]

    @property
    def missing(self) -> tuple[RequiredSecret, ...]:
        return tuple(r for r in self.required if not r.present)

    @property
    def missing_names(self) -> list[str]:
        """Sorted, unique names of the env vars that are missing or empty."""
        return sorted({r.name for r in self.missing})

    @property
    def invalid(self) -> tuple[RequiredSecret, ...]:
        """The secrets that are there but fail a constraint of the schema."""
        return tuple(r for r in self.required if r.present and r.failed)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.invalid

    def as_json(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "ok": self.ok,
            "required": len(self.required),
            "missing": [{"key": r.key, "name": r.name, "scheme": r.scheme} for r in self.missing],
            "invalid": [{"key": r.key, "name": r.name, "scheme": r.scheme,
                         "failed": [{"constraint": k, "message": m} for k, m in r.failed]}
                        for r in self.invalid],
        }


def value_failures(value: str, rules: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(keyword, message) of each constraint of ``rules`` that ``value`` fails. The
    messages name the constraint, never the value or its length."""
    out: list[tuple[str, str]] = []
    if "minLength" in rules and len(value) < rules["minLength"]:
        out.append(("minLength", f"shorter than minLength {rules['minLength']}"))
    if "maxLength" in rules and len(value) > rules["maxLength"]:
        out.append(("maxLength", f"longer than maxLength {rules['maxLength']}"))
    if "pattern" in rules and not value_pattern(rules["pattern"]).search(value):
        out.append(("pattern", f"does not match pattern {rules['pattern']!r}"))
    if "const" in rules and value != rules["const"]:
        out.append(("const", "is not the value const requires"))
    if "enum" in rules and value not in rules["enum"]:
        out.append(("enum", f"is not one of the {len(rules['enum'])} values enum allows"))
    return out


def parse_constraints(data: bytes, file: str) -> Constraints:
    """``value-constraints.json`` bytes, checked; else ``ArtifactError`` at ``file``."""
    try:
        return load_secret_constraints(data)
    except ManifestError as exc:
        raise ArtifactError([Diagnostic(file, None, exc.field or None, exc.message,
                                        code="artifact")]) from None


def delivery_name(keypath: tuple[str, ...], ref: SecretRef) -> str:
    """The env var that carries the value of ``ref`` used at ``keypath``."""
    if ref.scheme == "env":
        return ref.var
    if ref.direct:
        return VAULT_ADDR
    return env_var_name(keypath)


def resolve(keypath: tuple[str, ...], ref: SecretRef, environ: Mapping[str, str]) -> str | None:
    """The secret's value from the environment, or None (missing, empty, or Direct-Vault,
    which the app reads from Vault itself)."""
    if ref.direct:
        return None
    return environ.get(delivery_name(keypath, ref)) or None


def delivered_values(config: Any, environ: Mapping[str, str]) -> set[str]:
    """The secret values ``environ`` delivers for the references of ``config`` (what
    :func:`resolve` returns for each): to mask them in any text that leaves the process."""
    return {value for keypath, ref in reference_paths(config)
            if (value := resolve(keypath, ref, environ))}


def read_config(artifact_dir: str | os.PathLike[str], env: str | None = None, *,
                volume: bool = True) -> tuple[str, Any]:
    """(environment, config) of an artifact directory (:func:`read_artifact`)."""
    environment, config, _ = read_artifact(artifact_dir, env, volume=volume)
    return environment, config


def read_artifact(artifact_dir: str | os.PathLike[str], env: str | None = None, *,
                  volume: bool = True, display: str | None = None
                  ) -> tuple[str, Any, Constraints]:
    """(environment, config, constraints) of an artifact directory; config.json (and
    value-constraints.json, when the manifest lists it) must match the digests in
    manifest.json, and the manifest's environment must be ``env`` when given. Only
    regular files are read (a FIFO or a device there is refused, never waited on).
    With ``volume`` (the default: a directory given explicitly, such as a mounted
    ConfigMap) the files are read through ``..data``, which must name a version
    directory beside it; without it (the repository's output) a ``..data`` entry is
    refused (:func:`magcfg.artifact.data_root`). ``display`` is how ``artifact_dir`` is
    named in errors (default: the path as given)."""
    base = Path(artifact_dir)

    def fail(file: Path, message: str, key: str | None = None,
             line: int | None = None) -> ArtifactError:
        return ArtifactError([Diagnostic(str(file), line, key, message, code="artifact")])

    try:
        root = data_root(base, volume=volume)
    except DataLinkError as exc:
        raise fail(Path(display or base) / DATA_LINK, exc.message) from None
    # Errors name the file read: through the link, not the visible name beside it.
    shown = Path(display or base) if root == base else Path(display or base) / DATA_LINK

    raw: dict[str, bytes] = {}
    for name in (MANIFEST, CONFIG):
        try:
            raw[name] = read_regular(root / name, size_limit(name))
        except FileTooLarge as exc:
            raise fail(shown / name, exc.message) from None
        except OSError as exc:  # NotRegularFile too: "is a FIFO, not a regular file"
            raise fail(shown / name, f"cannot read the artifact: {exc.strerror}") from None
    try:
        manifest = load_manifest(raw[MANIFEST])
    except ManifestError as exc:
        raise fail(shown / MANIFEST, exc.message, exc.field) from None
    try:
        config = parse_config(raw[CONFIG])
    except JSONRefused as exc:
        raise fail(shown / CONFIG, f"artifact is not valid JSON: {exc}") from None
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        # Where, never what: the text around the error may be a secret's neighbour.
        where = (f" at column {exc.colno}" if isinstance(exc, json.JSONDecodeError)
                 else "")
        raise fail(shown / CONFIG, f"artifact is not valid JSON{where}: {type(exc).__name__}",
                   line=exc.lineno if isinstance(exc, json.JSONDecodeError) else None
                   ) from None
    if not isinstance(config, dict):
        raise fail(shown / CONFIG, "artifact files must be JSON objects")
    digest = "sha256:" + hashlib.sha256(raw[CONFIG]).hexdigest()
    if manifest["config_digest"] != digest:
        raise fail(shown / CONFIG, "config.json does not match the digest in manifest.json "
                   "(torn or tampered artifact)")
    environment = str(manifest["environment"])
    if env is not None and environment != env:
        raise fail(shown / MANIFEST, f"this artifact is for environment {environment!r}, "
                   f"not {env!r}", "environment")
    constraints: Constraints = {}
    listed = manifest["files"].get(VALUE_CONSTRAINTS)
    if listed is not None:
        file = shown / VALUE_CONSTRAINTS
        try:
            data = read_regular(root / VALUE_CONSTRAINTS, size_limit(VALUE_CONSTRAINTS))
        except FileTooLarge as exc:
            raise fail(file, exc.message) from None
        except OSError as exc:
            raise fail(file, f"cannot read the artifact: {exc.strerror}") from None
        if "sha256:" + hashlib.sha256(data).hexdigest() != listed:
            raise fail(file, f"{VALUE_CONSTRAINTS} does not match the digest in "
                       "manifest.json (torn or tampered artifact)")
        constraints = parse_constraints(data, str(file))
    return environment, config, constraints


def _key_paths(node: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every key path of a parsed config, lists' items by index, parents first."""
    children = (node.items() if isinstance(node, dict)
                else enumerate(node) if isinstance(node, list) else ())
    for name, child in children:
        path = (*prefix, str(name))
        yield path
        yield from _key_paths(child, path)


def check_config(environment: str, config: Any, environ: Mapping[str, str],
                 constraints: Mapping[str, Mapping[str, Any]] | None = None,
                 keys: Sequence[str] = ()) -> EnvCheck:
    """Check a loaded config against ``environ`` (no files read): every secret is
    delivered, and meets the ``constraints`` (key glob -> constraints) that cover its key.
    ``keys``: key globs of what the service reads (``magds``: its keys and below); only
    the secrets they cover are checked, as a pod is given its own app's secrets alone.
    A glob that covers no key of the config is a ``UsageError`` (a misspelt app would
    pass with nothing checked)."""
    wanted = KeyGlobs(keys)
    if wanted:
        unused = set(wanted.patterns)
        for path in _key_paths(config):
            unused.difference_update(wanted.matching(path))
            if not unused:
                break
        if unused:
            named = ", ".join(f"--key {glob}" for glob in sorted(unused))
            raise UsageError(f"{named}: {'covers' if len(unused) == 1 else 'cover'} no key "
                             f"of {environment}'s config (a key path or glob: magds, "
                             "'magds.*'; a key covers the keys below it)")
    globs = [(KeyGlobs([glob]), rules) for glob, rules in sorted((constraints or {}).items())]
    required = []
    for keypath, ref in references(config):
        if wanted and not wanted.matches(keypath):
            continue
        name = delivery_name(keypath, ref)
        value = resolve(keypath, ref, environ)
        failed: list[tuple[str, str]] = []
        if value is not None:
            for glob, rules in globs:
                if glob.matches(keypath):
                    failed.extend(f for f in value_failures(value, rules) if f not in failed)
        required.append(RequiredSecret(format_keypath(keypath), ref.scheme, name,
                                       bool(environ.get(name)), tuple(failed)))
    return EnvCheck(environment, tuple(required))


def check_env(artifact_dir: str | os.PathLike[str], environ: Mapping[str, str] | None = None,
              env: str | None = None, *, volume: bool = True,
              display: str | None = None, keys: Sequence[str] = ()) -> EnvCheck:
    """Is every secret of the artifact in ``artifact_dir`` (of the ``keys`` given, as
    :func:`check_config`) resolvable from ``environ`` (default: ``os.environ``), and does
    it meet its constraints? Raises ``ArtifactError`` for an unreadable artifact;
    ``volume`` and ``display`` as :func:`read_artifact`."""
    environment, config, constraints = read_artifact(artifact_dir, env, volume=volume,
                                                     display=display)
    return check_config(environment, config, os.environ if environ is None else environ,
                        constraints, keys)
