"""Ed25519 signing keys: generating, loading (file, PEM text, environment) and naming them.

Imports only ``cryptography`` and the standard library (the runtime kernel loads public
keys). A private key is written with mode 0600 set before any byte, and no message
ever quotes a key's content.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from cryptography.exceptions import UnsupportedAlgorithm

# The encodings live in the small module that ed25519 imports anyway; the PEM loaders
# of ``serialization`` (SSH, PKCS#12, ciphers: ~10 ms) are imported where they are used.
from cryptography.hazmat.primitives._serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from ..durable import FileTooLarge, NotRegularFile, read_regular, replace_file
from ..errors import Diagnostic, MagcfgError

__all__ = [
    "KEY_ID_LENGTH",
    "SIGNING_KEY_ENV",
    "Ed25519PrivateKey",
    "Ed25519PublicKey",
    "GeneratedKeyPair",
    "KeyLoadError",
    "SigningError",
    "generate_key_pair",
    "key_id",
    "load_private_key",
    "load_private_key_pem",
    "load_public_key",
    "load_public_key_pem",
    "private_key_from_env",
    "public_key_pem",
    "write_atomic",
]

SIGNING_KEY_ENV = "MAGCFG_SIGNING_KEY"
KEY_ID_LENGTH = 16
_MAX_KEY_FILE = 64 * 1024


class SigningError(MagcfgError):
    """A key could not be generated or used, or an artifact could not be signed."""


class KeyLoadError(SigningError):
    """A key file, PEM text or environment variable does not hold a usable Ed25519 key.

    Messages name the source but never quote its content: it may be a private key.
    """



class GeneratedKeyPair(NamedTuple):
    """Where :func:`generate_key_pair` wrote the keys, and the public key's id."""

    private_key_path: Path
    public_key_path: Path
    key_id: str


def key_id(public_key: Ed25519PublicKey) -> str:
    """Short id of a public key: the first 16 hex digits of sha256 over its DER SPKI.

    The same value ``openssl pkey -pubin -in pub.pem -outform DER | sha256sum`` starts with.
    """
    der = public_key.public_bytes(Encoding.DER,
                                  PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()[:KEY_ID_LENGTH]


def public_key_pem(public_key: Ed25519PublicKey) -> bytes:
    """The SubjectPublicKeyInfo PEM of ``public_key``."""
    return public_key.public_bytes(Encoding.PEM,
                                   PublicFormat.SubjectPublicKeyInfo)


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
    private_pem = private_key.private_bytes(Encoding.PEM,
                                            PrivateFormat.PKCS8,
                                            NoEncryption())
    public_key = private_key.public_key()
    _write_private(private_path, private_pem)
    write_atomic(public_path, public_key_pem(public_key), 0o644)
    return GeneratedKeyPair(private_path, public_path, key_id(public_key))


def _write_private(path: Path, data: bytes) -> None:
    # The file is created 0600 before any key byte is written to it, whatever the umask,
    # and renamed into place so a reader never sees a partial key.
    write_atomic(path, data, 0o600)


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` atomically with ``data`` (file ``mode``); ``SigningError`` if not."""
    try:
        replace_file(path, data, mode)
    except OSError as exc:
        raise SigningError([Diagnostic(str(path), None, None,
                                       f"cannot write: {exc.strerror}")]) from None


def load_private_key_pem(pem: bytes | str, source: str) -> Ed25519PrivateKey:
    """Parse a PKCS#8 PEM Ed25519 private key; ``source`` names it in errors."""
    data = _pem_bytes(pem)
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(data, password=None)
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
    canonical = _canonical_public_key(data)
    if canonical is not None:
        return canonical
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        key = load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise KeyLoadError([Diagnostic(source, None, None,
                                       "not a PEM public key")]) from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyLoadError([Diagnostic(source, None, None, "not an Ed25519 public key")])
    return key


_ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")
"""The DER of an Ed25519 SubjectPublicKeyInfo (RFC 8410) before the key's 32 bytes."""


def _canonical_public_key(data: bytes) -> Ed25519PublicKey | None:
    """The key of a PEM exactly as :func:`public_key_pem` writes it (three lines, the
    DER of an Ed25519 SubjectPublicKeyInfo), else ``None`` for ``cryptography``'s PEM
    loader to read. The loader's module pulls in SSH, PKCS#12 and every cipher, more
    than Ed25519's own import (the runtime kernel loads its keys at its first start); the
    form it would parse here is one fixed byte string and the key."""
    lines = data.split(b"\n")
    if len(lines) != 4 or lines[0] != b"-----BEGIN PUBLIC KEY-----" or lines[2] != \
            b"-----END PUBLIC KEY-----" or lines[3] != b"":
        return None
    import binascii

    try:
        der = binascii.a2b_base64(lines[1], strict_mode=True)
    except binascii.Error:
        return None
    if len(der) != 44 or not der.startswith(_ED25519_SPKI_PREFIX):
        return None
    return Ed25519PublicKey.from_public_bytes(der[len(_ED25519_SPKI_PREFIX):])


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
        return read_regular(path, limit=_MAX_KEY_FILE, follow_symlinks=True)
    except FileNotFoundError:
        raise KeyLoadError([Diagnostic(str(path), None, None, "key file not found")]) from None
    except NotRegularFile as exc:
        raise KeyLoadError([Diagnostic(str(path), None, None,
                                       f"is {exc.kind}, not a key file")]) from None
    except FileTooLarge:
        raise KeyLoadError([Diagnostic(str(path), None, None, "too large to be a PEM key")]) from None
    except OSError as exc:
        raise KeyLoadError([Diagnostic(str(path), None, None,
                                       f"cannot read key file: {exc.strerror}")]) from None
