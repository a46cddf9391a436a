"""Binary private key stores for MAG002: PKCS#12 (``.p12``/``.pfx``), Java's JKS and
JCEKS, and DER private keys, told by their content; and the names such stores go by
(``.jks``, ``.keystore``, ``.bks``, ...) where the content does not say otherwise.

Text rules cannot see them: a key store is bytes, with no line to match. A store is
read at most ``MAX_BINARY_BYTES`` into (key stores are a few KiB).
"""

from __future__ import annotations

import struct

MAX_BINARY_BYTES = 256 * 1024
"""How much of a binary file the key store check reads."""

_NAMES = (".p12", ".pfx", ".jks", ".jceks", ".keystore", ".bks")
_JKS_MAGIC = b"\xfe\xed\xfe\xed"
_JCEKS_MAGIC = b"\xce\xce\xce\xce"
# PKCS#12's PFX: SEQUENCE { INTEGER 3, ContentInfo { OID pkcs7-data or pkcs7-signedData ...
_PKCS7_DATA = bytes.fromhex("06092a864886f70d010701")
_PKCS7_SIGNED = bytes.fromhex("06092a864886f70d010702")


def named_key_store(name: str) -> bool:
    """Whether a file's name is one key stores go by."""
    return name.lower().endswith(_NAMES)


def may_be_key_store(name: str, data: bytes) -> bool:
    """Whether ``key_store`` could find one in ``data``: named as one, or beginning as a
    Java store or a DER structure (SEQUENCE) does. Other binary files (images, archives)
    are not kept for it."""
    return data[:1] == b"\x30" or data[:4] in (_JKS_MAGIC, _JCEKS_MAGIC) \
        or named_key_store(name)


def key_store(name: str, data: bytes) -> str | None:
    """What private key store ``data`` (a file or a Secret's value named ``name``) is,
    or None. A JKS or JCEKS store of certificates only (a trust store) holds nothing
    secret; one cut short at ``MAX_BINARY_BYTES`` before a key is seen counts as a key
    store. A file named as a key store is one unless its content says otherwise (a
    trust store, all of it a Git LFS pointer, nothing at all)."""
    head = data[:MAX_BINARY_BYTES]
    for magic, kind in ((_JKS_MAGIC, "JKS"), (_JCEKS_MAGIC, "JCEKS")):
        if head.startswith(magic):
            return None if _java_store_has_key(head) is False else f"{kind} key store"
    if _pkcs12(head):
        return "PKCS#12 key store"
    if _der_private_key(head):
        return "DER private key"
    if named_key_store(name) and head.strip():
        from ..project import lfs_pointer  # here: lint's start-up does without it

        if not lfs_pointer(data):
            return "key store (by its file name)"
    return None


def _java_store_has_key(data: bytes) -> bool | None:
    """Whether a JKS/JCEKS store holds a private or secret key entry (tags 1 and 3):
    False when every entry is a trusted certificate (tag 2), None when its entries
    cannot all be read (cut short, or not as the format says)."""
    try:
        version, count = struct.unpack_from(">II", data, 4)
        at = 12
        for _ in range(count):
            (tag,) = struct.unpack_from(">I", data, at)
            if tag in (1, 3):
                return True
            if tag != 2:
                return None
            (alias,) = struct.unpack_from(">H", data, at + 4)
            at += 4 + 2 + alias + 8  # tag, alias, timestamp
            if version == 2:
                (cert_type,) = struct.unpack_from(">H", data, at)
                at += 2 + cert_type
            (length,) = struct.unpack_from(">I", data, at)
            at += 4 + length
            if at > len(data):
                return None
    except struct.error:
        return None
    return False


def _der_header(data: bytes, at: int) -> tuple[int, int, int | None] | None:
    """A DER (or BER) element's tag, where its content starts and its length (None:
    indefinite), at offset ``at``; None if the bytes are no such header."""
    if at + 2 > len(data):
        return None
    tag, first = data[at], data[at + 1]
    if first < 0x80:
        return tag, at + 2, first
    if first == 0x80:
        return tag, at + 2, None
    size = first & 0x7F
    if size > 4 or at + 2 + size > len(data):
        return None
    return tag, at + 2 + size, int.from_bytes(data[at + 2:at + 2 + size], "big")


def _pkcs12(data: bytes) -> bool:
    outer = _der_header(data, 0)
    if outer is None or outer[0] != 0x30 or data[outer[1]:outer[1] + 3] != b"\x02\x01\x03":
        return False
    content = _der_header(data, outer[1] + 3)
    if content is None or content[0] != 0x30:
        return False
    oid = data[content[1]:content[1] + len(_PKCS7_DATA)]
    return oid in (_PKCS7_DATA, _PKCS7_SIGNED)


def _der_private_key(data: bytes) -> bool:
    """Whether ``data`` begins with a DER private key (PKCS#8, encrypted or not, PKCS#1
    RSA, SEC 1 EC), as ``cryptography`` reads it: the SEQUENCE it begins with is tried,
    and what follows it left out, as OpenSSL reads a key (a newline after it, or any
    bytes, leave it a key)."""
    outer = _der_header(data, 0)
    if outer is None or outer[0] != 0x30 or outer[2] is None or outer[1] + outer[2] > len(data):
        return False
    data = data[:outer[1] + outer[2]]
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.serialization import load_der_private_key

    try:
        # Parsed, never used: the RSA check costs time a pull request's key could choose.
        load_der_private_key(data, password=None, unsafe_skip_rsa_key_validation=True)
    except TypeError:
        return True  # "password was not given but private key is encrypted"
    except (ValueError, UnsupportedAlgorithm):
        return False
    return True
