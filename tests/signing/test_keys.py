"""Public keys in the form magcfg writes them load without cryptography's PEM module;
every other form goes to that module and loads, or fails, as it does there."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)

from magcfg.signing.keys import (
    Ed25519PrivateKey,
    KeyLoadError,
    load_public_key,
    load_public_key_pem,
    public_key_pem,
)

REPO = Path(__file__).resolve().parents[2]


def test_a_written_public_key_loads_as_cryptography_loads_it() -> None:
    for _ in range(100):
        public = Ed25519PrivateKey.generate().public_key()
        pem = public_key_pem(public)
        loaded = load_public_key_pem(pem, "k.pub")
        assert loaded == public == load_pem_public_key(pem)
        assert load_public_key_pem(pem.decode(), "k.pub") == public


def test_other_forms_of_a_public_key_go_to_cryptography() -> None:
    public = Ed25519PrivateKey.generate().public_key()
    pem = public_key_pem(public)
    for variant in (pem.replace(b"\n", b"\r\n"), pem.rstrip(b"\n"), b"a comment\n" + pem,
                    pem + b"\n", pem.replace(b"\n", b"\n\n", 1)):
        assert load_public_key_pem(variant, "k.pub") == public


@pytest.mark.parametrize("body", [
    # Another algorithm's key (X25519: the same length, another OID).
    "x25519",
    # The Ed25519 prefix with a byte too many or too few, or broken base64.
    "long", "short", "base64",
])
def test_keys_the_canonical_form_does_not_hold_fail_as_before(body: str) -> None:
    x25519 = X25519PrivateKey.generate().public_key().public_bytes(
        Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    line = public_key_pem(Ed25519PrivateKey.generate().public_key()).split(b"\n")[1]
    der = base64.b64decode(line)
    pem = {"x25519": x25519,
           "long": _pem(base64.b64encode(der + b"\0")),
           "short": _pem(base64.b64encode(der[:-1])),
           "base64": _pem(line[:-2] + b"!=")}[body]
    want = "not an Ed25519 public key" if body == "x25519" else "not a PEM public key"
    with pytest.raises(KeyLoadError, match=want):
        load_public_key_pem(pem, "k.pub")


def _pem(body: bytes) -> bytes:
    return b"-----BEGIN PUBLIC KEY-----\n" + body + b"\n-----END PUBLIC KEY-----\n"


def test_loading_a_written_key_imports_no_pem_loader(tmp_path: Path) -> None:
    """The runtime kernel loads its trusted keys at its first start: cryptography's
    ``serialization`` module (SSH, PKCS#12, the ciphers) is most of what it costs."""
    public = Ed25519PrivateKey.generate().public_key()
    (tmp_path / "k.pub").write_bytes(public_key_pem(public))
    assert load_public_key(tmp_path / "k.pub") == public
    code = ("import sys\n"
            "from magcfg.signing.keys import load_public_key\n"
            f"load_public_key({str(tmp_path / 'k.pub')!r})\n"
            "print(sorted(m for m in sys.modules if m.startswith("
            "'cryptography.hazmat.primitives.serialization')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, env={**os.environ, "PYTHONPATH": str(REPO / "compiler")})
    assert done.stdout.strip() == "[]"
