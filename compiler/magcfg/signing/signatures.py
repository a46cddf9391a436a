"""Stage 6, sign: Ed25519 keys, detached manifest signatures and artifact verification.

Used by the CLI (``keys generate``, ``sign``, ``verify``) and by the runtime kernel, so
this module imports only ``cryptography`` and the standard library.

The signature format is the one stock tools verify: ``manifest.json.sig`` holds the
base64 of the raw 64-byte Ed25519 signature over the exact bytes of ``manifest.json``
(``openssl pkeyutl -verify -rawin``). Ed25519 is deterministic (RFC 8032), so signing
the same manifest with the same key always gives the same bytes and a signed tree stays
reproducible.

Verification order matters: the signature is checked over the manifest bytes *before*
the manifest is parsed, and every file is then compared with the digest the signed
manifest lists. :func:`verify_files` works on bytes already in memory, so a caller can
load exactly the bytes it verified (no check-then-reopen race).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, TypeGuard

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from ..durable import replace_file
from ..errors import Diagnostic, MagcfgError

__all__ = [
    "ATTESTATION_NAME",
    "MANIFEST_NAME",
    "SIGNATURE_NAME",
    "SIGNING_KEY_ENV",
    "Ed25519PrivateKey",
    "Ed25519PublicKey",
    "GeneratedKeyPair",
    "KeyLoadError",
    "SignedArtifact",
    "SigningError",
    "SuccessionError",
    "VerificationError",
    "VerifiedArtifact",
    "check_succession",
    "generate_key_pair",
    "key_id",
    "load_private_key",
    "load_private_key_pem",
    "load_public_key",
    "load_public_key_pem",
    "parse_manifest",
    "private_key_from_env",
    "public_key_pem",
    "sha256_digest",
    "sign_artifact",
    "sign_manifest",
    "verify_artifact",
    "verify_files",
    "verify_manifest",
]

MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.json.sig"
ATTESTATION_NAME = "attestation.dsse.json"
SIGNING_KEY_ENV = "MAGCFG_SIGNING_KEY"
"""Environment variable that may hold the PEM private key (CI secret stores)."""

SIGNATURE_LENGTH = 64
KEY_ID_LENGTH = 16
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


class SigningError(MagcfgError):
    """A key could not be generated or used, or an artifact could not be signed."""


class KeyLoadError(SigningError):
    """A key file, PEM text or environment variable does not hold a usable Ed25519 key.

    Messages name the source but never quote its content: it may be a private key.
    """


class VerificationError(MagcfgError):
    """The artifact is not the one that was signed.

    ``reason`` is machine-readable and matches the runtime's ``config.reload_failed``
    reasons: ``unsigned``, ``bad_signature``, ``digest_mismatch``, ``missing_file``,
    ``malformed_manifest``, ``bad_attestation``, ``no_trusted_key``.
    """

    def __init__(self, file: str, message: str, reason: str) -> None:
        self.reason = reason
        self.file = file
        super().__init__([Diagnostic(file=file, line=None, key=None, message=message,
                                     code=reason)])


# ---------------------------------------------------------------- keys

@dataclass(frozen=True)
class GeneratedKeyPair:
    """Where :func:`generate_key_pair` wrote the keys, and the public key's id."""

    private_key_path: Path
    public_key_path: Path
    key_id: str


def key_id(public_key: Ed25519PublicKey) -> str:
    """Short id of a public key: the first 16 hex digits of sha256 over its DER SPKI.

    The same value ``openssl pkey -pubin -in pub.pem -outform DER | sha256sum`` starts with.
    """
    der = public_key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()[:KEY_ID_LENGTH]


def public_key_pem(public_key: Ed25519PublicKey) -> bytes:
    """The SubjectPublicKeyInfo PEM of ``public_key``."""
    return public_key.public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def generate_key_pair(out_dir: str | os.PathLike[str], name: str = "magcfg",
                      *, overwrite: bool = False) -> GeneratedKeyPair:
    """Write a new Ed25519 key pair to ``out_dir/<name>.key`` and ``out_dir/<name>.pub``.

    The private key is unencrypted PKCS#8 PEM created with mode 0600 (it is meant for a
    secret store, which does the protecting); the public key is SubjectPublicKeyInfo PEM.
    An existing private key is never replaced unless ``overwrite`` is true.
    """
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise SigningError(f"key name {name!r} must be letters, digits, '.', '_' or '-'")
    directory = Path(out_dir)
    private_path = directory / f"{name}.key"
    public_path = directory / f"{name}.pub"
    if not overwrite:
        for path in (private_path, public_path):
            if path.exists() or path.is_symlink():
                raise SigningError([Diagnostic(str(path), None, None,
                                               "already exists; refusing to replace a key "
                                               "(use --force)")])
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise SigningError([Diagnostic(str(directory), None, None,
                                       f"cannot create directory: {exc.strerror}")]) from None

    private_key = Ed25519PrivateKey.generate()
    private_pem = private_key.private_bytes(serialization.Encoding.PEM,
                                            serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption())
    public_key = private_key.public_key()
    _write_private(private_path, private_pem)
    _write_atomic(public_path, public_key_pem(public_key), 0o644)
    return GeneratedKeyPair(private_path, public_path, key_id(public_key))


def _write_private(path: Path, data: bytes) -> None:
    # The file is created 0600 before any key byte is written to it, whatever the umask,
    # and renamed into place so a reader never sees a partial key.
    _write_atomic(path, data, 0o600)


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    try:
        replace_file(path, data, mode)
    except OSError as exc:
        raise SigningError([Diagnostic(str(path), None, None,
                                       f"cannot write: {exc.strerror}")]) from None


def load_private_key_pem(pem: bytes | str, source: str) -> Ed25519PrivateKey:
    """Parse a PKCS#8 PEM Ed25519 private key; ``source`` names it in errors."""
    data = _pem_bytes(pem)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise KeyLoadError([Diagnostic(source, None, None,
                                       "the private key is encrypted; give an unencrypted "
                                       "PKCS#8 PEM key (keep it in a secret store)")]) from None
    except (ValueError, UnsupportedAlgorithm):
        raise KeyLoadError([Diagnostic(source, None, None,
                                       "not a PEM private key")]) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyLoadError([Diagnostic(source, None, None, "not an Ed25519 private key "
                                       "(magcfg signs with Ed25519 only)")])
    return key


def load_public_key_pem(pem: bytes | str, source: str) -> Ed25519PublicKey:
    """Parse a SubjectPublicKeyInfo PEM Ed25519 public key; ``source`` names it in errors."""
    data = _pem_bytes(pem)
    if b"PRIVATE KEY" in data:
        raise KeyLoadError([Diagnostic(source, None, None,
                                       "holds a private key where a public key belongs; "
                                       "give the .pub file")])
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise KeyLoadError([Diagnostic(source, None, None,
                                       "not a PEM public key")]) from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyLoadError([Diagnostic(source, None, None, "not an Ed25519 public key")])
    return key


def load_private_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    """Read an Ed25519 private key from a PEM file."""
    return load_private_key_pem(_read_key_file(Path(path)), str(path))


def load_public_key(path: str | os.PathLike[str]) -> Ed25519PublicKey:
    """Read an Ed25519 public key from a PEM file."""
    return load_public_key_pem(_read_key_file(Path(path)), str(path))


def private_key_from_env(variable: str = SIGNING_KEY_ENV,
                         environ: Mapping[str, str] | None = None) -> Ed25519PrivateKey:
    """The private key held as PEM text in an environment variable.

    CI secret stores often flatten newlines to a literal ``\\n``; that form is accepted.
    """
    env = os.environ if environ is None else environ
    value = env.get(variable)
    source = f"${variable}"
    if not value or not value.strip():
        raise KeyLoadError([Diagnostic(source, None, None, "is not set")])
    if "\n" not in value.strip() and "\\n" in value:
        value = value.replace("\\n", "\n")
    return load_private_key_pem(value, source)


def _pem_bytes(pem: bytes | str) -> bytes:
    return pem.encode("utf-8", "replace") if isinstance(pem, str) else pem


def _read_key_file(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise KeyLoadError([Diagnostic(str(path), None, None, "key file not found")]) from None
    except IsADirectoryError:
        raise KeyLoadError([Diagnostic(str(path), None, None,
                                       "is a directory, not a key file")]) from None
    except OSError as exc:
        raise KeyLoadError([Diagnostic(str(path), None, None,
                                       f"cannot read key file: {exc.strerror}")]) from None
    if len(data) > 64 * 1024:
        raise KeyLoadError([Diagnostic(str(path), None, None, "too large to be a PEM key")])
    return data


# ---------------------------------------------------------------- signatures

def sha256_digest(data: bytes) -> str:
    """``sha256:<hex>``, the digest form manifests use."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sign_manifest(manifest_bytes: bytes, private_key: Ed25519PrivateKey) -> bytes:
    """The content of ``manifest.json.sig``: base64 of the raw signature, then a newline."""
    return base64.b64encode(private_key.sign(manifest_bytes)) + b"\n"


def _decode_signature(signature_text: bytes | str, file: str) -> bytes:
    text = signature_text.encode("ascii", "replace") if isinstance(signature_text, str) \
        else signature_text
    compact = b"".join(text.split())
    if not compact:
        raise VerificationError(file, "signature is empty", "bad_signature")
    try:
        raw = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise VerificationError(file, "signature is not valid base64",
                                "bad_signature") from None
    if len(raw) != SIGNATURE_LENGTH:
        raise VerificationError(file, f"signature is {len(raw)} bytes; an Ed25519 "
                                f"signature is {SIGNATURE_LENGTH}", "bad_signature")
    return raw


def _trusted(public_keys: Iterable[Ed25519PublicKey]) -> list[tuple[str, Ed25519PublicKey]]:
    keys = [(key_id(k), k) for k in public_keys]
    if not keys:
        raise VerificationError("", "no trusted public key given", "no_trusted_key")
    return keys


def _verify_raw(message: bytes, raw: bytes,
                keys: list[tuple[str, Ed25519PublicKey]]) -> str | None:
    for kid, key in keys:
        try:
            key.verify(raw, message)
        except InvalidSignature:
            continue
        return kid
    return None


def verify_manifest(manifest_bytes: bytes, signature_text: bytes | str,
                    public_keys: Iterable[Ed25519PublicKey], *,
                    signature_file: str = SIGNATURE_NAME) -> str:
    """Check a detached manifest signature against any of the trusted keys.

    Returns the id of the key that signed. Raises :class:`VerificationError` naming
    ``signature_file`` if the signature is malformed or made by no trusted key (several
    trusted keys at once allow rotation).
    """
    keys = _trusted(public_keys)
    raw = _decode_signature(signature_text, signature_file)
    kid = _verify_raw(manifest_bytes, raw, keys)
    if kid is None:
        trusted = ", ".join(k for k, _ in keys)
        raise VerificationError(signature_file,
                                "signature does not match the manifest under any trusted "
                                f"key (trusted: {trusted}); the manifest was changed after "
                                "signing or signed with another key", "bad_signature")
    return kid


@dataclass(frozen=True)
class VerifiedArtifact:
    """An artifact whose signature and file digests were checked.

    ``files`` holds the exact bytes that were verified (manifest excluded), keyed by the
    names the manifest lists.
    """

    key_id: str
    manifest: dict[str, Any]
    manifest_bytes: bytes
    files: dict[str, bytes]
    attestation_checked: bool = False

    @property
    def version(self) -> int | None:
        value = self.manifest.get("version")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def config_digest(self) -> str | None:
        value = self.manifest.get("config_digest")
        return value if isinstance(value, str) else None


def parse_manifest(manifest_bytes: bytes, file: str = MANIFEST_NAME) -> dict[str, Any]:
    """Parse manifest JSON and check the ``files`` table's shape (names and digests)."""
    try:
        manifest = json.loads(manifest_bytes.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise VerificationError(file, f"not valid JSON: {exc}", "malformed_manifest") from None
    if not isinstance(manifest, dict):
        raise VerificationError(file, "is not a JSON object", "malformed_manifest")
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise VerificationError(file, "has no 'files' table", "malformed_manifest")
    for name, digest in files.items():
        if not _safe_name(name):
            raise VerificationError(file, f"lists an unsafe file name {name!r}",
                                    "malformed_manifest")
        if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
            raise VerificationError(file, f"digest of {name!r} is not 'sha256:<64 hex>'",
                                    "malformed_manifest")
    return manifest


def _safe_name(name: str) -> bool:
    # Names are relative to the artifact directory; nothing may point outside it.
    if not name or "\\" in name or "\x00" in name:
        return False
    path = PurePosixPath(name)
    return not path.is_absolute() and all(part not in ("", ".", "..") for part in
                                          name.split("/"))


def verify_files(manifest_bytes: bytes, signature_text: bytes | str,
                 files: Mapping[str, bytes | None],
                 public_keys: Iterable[Ed25519PublicKey], *,
                 prefix: str = "") -> VerifiedArtifact:
    """Verify an artifact held in memory.

    ``files`` maps names to bytes (``None`` for a missing file); every name the manifest
    lists must be present with the listed sha256. ``prefix`` is put before file names
    in errors (e.g. ``generated/production/``).
    """
    kid = verify_manifest(manifest_bytes, signature_text, public_keys,
                          signature_file=prefix + SIGNATURE_NAME)
    manifest = parse_manifest(manifest_bytes, prefix + MANIFEST_NAME)
    checked = _check_digests(manifest, files, prefix)
    return VerifiedArtifact(kid, manifest, manifest_bytes, checked)


def _check_digests(manifest: dict[str, Any], files: Mapping[str, bytes | None],
                   prefix: str) -> dict[str, bytes]:
    checked: dict[str, bytes] = {}
    for name, expected in sorted(manifest["files"].items()):
        data = files.get(name)
        if data is None:
            raise VerificationError(prefix + name, "listed in the manifest but missing",
                                    "missing_file")
        actual = sha256_digest(data)
        if actual != expected:
            raise VerificationError(prefix + name,
                                    f"sha256 does not match the signed manifest "
                                    f"(manifest {expected[:19]}..., file {actual[:19]}...)",
                                    "digest_mismatch")
        checked[name] = data
    return checked


def verify_artifact(env_dir: str | os.PathLike[str],
                    public_keys: Iterable[Ed25519PublicKey], *,
                    display: str | None = None,
                    attestation: bool = True) -> VerifiedArtifact:
    """Verify ``env_dir``: the manifest signature, then the sha256 of every listed file.

    If ``attestation`` is true and ``attestation.dsse.json`` is present, its DSSE
    signature and subjects are checked too. ``display`` is how ``env_dir`` is named in
    errors (default: the path as given). Raises :class:`VerificationError` naming the
    offending file.
    """
    directory = Path(env_dir)
    prefix = (display if display is not None else directory.as_posix()).rstrip("/") + "/"
    keys = list(public_keys)
    manifest_bytes = _read_member(directory, MANIFEST_NAME, prefix)
    if manifest_bytes is None:
        raise VerificationError(prefix + MANIFEST_NAME, "not found (run `magcfg build`)",
                                "missing_file")
    signature = _read_member(directory, SIGNATURE_NAME, prefix)
    if signature is None:
        raise VerificationError(prefix + SIGNATURE_NAME,
                                "not found: the artifact is not signed (run `magcfg sign`)",
                                "unsigned")
    kid = verify_manifest(manifest_bytes, signature, keys,
                          signature_file=prefix + SIGNATURE_NAME)
    manifest = parse_manifest(manifest_bytes, prefix + MANIFEST_NAME)
    files = {name: _read_member(directory, name, prefix) for name in manifest["files"]}
    checked = _check_digests(manifest, files, prefix)
    envelope = _read_member(directory, ATTESTATION_NAME, prefix) if attestation else None
    if envelope is not None:
        from .attestation import verify_attestation

        verify_attestation(envelope, {MANIFEST_NAME: manifest_bytes, **checked}, keys,
                           file=prefix + ATTESTATION_NAME)
    return VerifiedArtifact(kid, manifest, manifest_bytes, checked,
                            attestation_checked=envelope is not None)


def _read_member(directory: Path, name: str, prefix: str) -> bytes | None:
    try:
        return (directory / name).read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except IsADirectoryError:
        raise VerificationError(prefix + name, "is a directory, not a file",
                                "missing_file") from None
    except OSError as exc:
        raise VerificationError(prefix + name, f"cannot read: {exc.strerror}",
                                "missing_file") from None


# ---------------------------------------------------------------- signing an artifact

@dataclass(frozen=True)
class SignedArtifact:
    """What :func:`sign_artifact` did: the signer's key id and the files it changed."""

    key_id: str
    version: int | None
    written: tuple[str, ...]


def sign_artifact(env_dir: str | os.PathLike[str], env: str,
                  private_key: Ed25519PrivateKey, *, display: str | None = None,
                  attestation: bool = True) -> SignedArtifact:
    """Sign the built artifact in ``env_dir``.

    Refuses (naming the file) if a file the manifest lists is missing or differs from
    its digest: only what the build produced gets signed. Writes ``manifest.json.sig``,
    the DSSE attestation (unless ``attestation`` is false) and ``configmap.yaml`` with
    the new signature (unless the artifact is too large for a ConfigMap), each
    atomically and only if its bytes change.
    """
    from ..delivery.configmap import CONFIGMAP_NAME, configmap_files, render_configmap
    from ..delivery.emitter import fits_configmap

    directory = Path(env_dir)
    prefix = (display if display is not None else directory.as_posix()).rstrip("/") + "/"
    manifest_bytes = _read_member(directory, MANIFEST_NAME, prefix)
    if manifest_bytes is None:
        raise SigningError([Diagnostic(prefix + MANIFEST_NAME, None, None,
                                       "not found: run `magcfg build` before `magcfg sign`")])
    manifest = parse_manifest(manifest_bytes, prefix + MANIFEST_NAME)
    files = {name: _read_member(directory, name, prefix) for name in manifest["files"]}
    try:
        checked = _check_digests(manifest, files, prefix)
    except VerificationError as exc:
        raise SigningError([Diagnostic(exc.file, None, None,
                                       "does not match manifest.json (edited after the "
                                       "build?); run `magcfg build` before signing")]) from None

    signature = sign_manifest(manifest_bytes, private_key)
    outputs: dict[str, bytes] = {SIGNATURE_NAME: signature}
    if attestation:
        from .attestation import sign_attestation

        outputs[ATTESTATION_NAME] = sign_attestation(manifest_bytes, checked, private_key)
    if fits_configmap(checked.get("config.json", b"")):
        members = {MANIFEST_NAME: manifest_bytes, SIGNATURE_NAME: signature, **checked}
        outputs[CONFIGMAP_NAME] = render_configmap(env, configmap_files(members))

    written: list[str] = []
    for name, data in outputs.items():
        path = directory / name
        if _read_member(directory, name, prefix) != data:
            _write_atomic(path, data, 0o644)
            written.append(prefix + name)
    version = manifest.get("version")
    return SignedArtifact(key_id(private_key.public_key()),
                          version if isinstance(version, int) else None, tuple(written))


# ---------------------------------------------------------------- version succession

class SuccessionError(VerificationError):
    """A verified candidate may not replace the running artifact (docs/versioning.md).

    ``reason`` is ``rollback_refused`` (older version), ``version_conflict`` (same version,
    different config) or ``environment_mismatch``.
    """


def check_succession(running: Mapping[str, Any], candidate: Mapping[str, Any], *,
                     allow_rollback: bool = False, file: str = MANIFEST_NAME) -> str:
    """Decide whether the manifest ``candidate`` may replace ``running``.

    Both manifests must already be verified. Returns ``"newer"`` (apply it) or
    ``"same"`` (same version and config digest: nothing to do). Raises
    :class:`SuccessionError` for an older version (a rollback attack, unless
    ``allow_rollback``), for a different config claiming the running version, or for
    another environment's artifact.
    """
    if running.get("environment") != candidate.get("environment"):
        raise SuccessionError(file, f"is for environment {candidate.get('environment')!r}, "
                              f"not {running.get('environment')!r}", "environment_mismatch")
    old, new = running.get("version"), candidate.get("version")
    if not _is_version(old) or not _is_version(new):
        raise VerificationError(file, "has no valid version (a positive integer)",
                                "malformed_manifest")
    if new > old:
        return "newer"
    if new == old:
        if candidate.get("config_digest") != running.get("config_digest"):
            raise SuccessionError(file, f"claims version {new}, which is running with a "
                                  "different config_digest: two builds of one version "
                                  "(rebuild after merging) or a forged artifact",
                                  "version_conflict")
        return "same"
    if allow_rollback:
        return "newer"
    raise SuccessionError(file, f"version {new} is older than the running version {old}: "
                          "refused as a rollback (allow rollbacks explicitly to go back)",
                          "rollback_refused")


def _is_version(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1
