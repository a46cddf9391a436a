"""Binary private key stores (lint/keystores.py): PKCS#12, JKS, JCEKS and DER keys by
content, key store names by name; trust stores and public keys are not findings."""

from __future__ import annotations

import base64
import datetime
import shutil
import struct
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from magcfg.lint import lint
from magcfg.lint.hardcoded import FIX, KEY_STORE_FIX
from magcfg.lint.keystores import MAX_BINARY_BYTES, key_store

from ..conftest import failed_cleanly
from .conftest import MakeRepo, run_cli

BASELINE = ".magcfg-lint-baseline.json"
POINTER = ("version https://git-lfs.github.com/spec/v1\n"
           f"oid sha256:{'4d7a' * 16}\nsize 12345\n")


def _certificate(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "magds")])
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))


def _stores(root: Path) -> None:
    """Key stores and look-alikes made by `cryptography` (and `openssl`'s formats)."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate(key)
    der = serialization.Encoding.DER
    (root / "tls").mkdir()
    (root / "tls/client.p12").write_bytes(pkcs12.serialize_key_and_certificates(
        b"client", key, cert, None, serialization.BestAvailableEncryption(b"changeit")))
    (root / "tls/bundle").write_bytes(pkcs12.serialize_key_and_certificates(
        b"client", key, cert, None, serialization.NoEncryption()))
    (root / "tls/ed25519.der").write_bytes(ed25519.Ed25519PrivateKey.generate().private_bytes(
        der, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (root / "tls/rsa.key").write_bytes(rsa.generate_private_key(65537, 2048).private_bytes(
        der, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))
    (root / "tls/enc.der").write_bytes(key.private_bytes(
        der, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"changeit")))
    # Public: a certificate and a public key in DER; an LFS pointer named as a store.
    (root / "tls/cert.der").write_bytes(cert.public_bytes(der))
    (root / "tls/pub.der").write_bytes(key.public_key().public_bytes(
        der, serialization.PublicFormat.SubjectPublicKeyInfo))
    (root / "tls/big.p12").write_text(POINTER)
    (root / "android").mkdir()
    (root / "android/release.bks").write_bytes(b"\x00\x00\x00\x02" + bytes(range(40)))


def test_key_stores_by_content_and_name(make_repo: MakeRepo) -> None:
    repo = make_repo({"README.md": "keys\n"}, git_init=False)
    _stores(repo.root)
    found = {(f.file, f.line, f.message) for f in lint(repo.root).findings}
    assert found == {
        ("tls/client.p12", 1, "PKCS#12 key store in a committed file (<redacted>)"),
        ("tls/bundle", 1, "PKCS#12 key store in a committed file (<redacted>)"),
        ("tls/ed25519.der", 1, "DER private key in a committed file (<redacted>)"),
        ("tls/rsa.key", 1, "DER private key in a committed file (<redacted>)"),
        ("tls/enc.der", 1, "DER private key in a committed file (<redacted>)"),
        ("android/release.bks", 1,
         "key store (by its file name) in a committed file (<redacted>)")}


def test_a_key_store_has_its_own_fix(make_repo: MakeRepo) -> None:
    """A key store is bytes, not a value to move into a reference: its fix says to take
    the file out of the repository and replace its keys, in a file and in a Secret."""
    key = ec.generate_private_key(ec.SECP256R1())
    store = pkcs12.serialize_key_and_certificates(
        b"client", key, _certificate(key), None, serialization.NoEncryption())
    encoded = base64.b64encode(store).decode()
    repo = make_repo({"k8s/secret.yaml": "apiVersion: v1\nkind: Secret\nmetadata:\n"
                      f"  name: tls\ndata:\n  keystore.p12: {encoded}\n",
                      "app/settings.py": 'API_KEY = "CANARYks1-x9"\n'}, git_init=False)
    (repo.root / "client.p12").write_bytes(store)
    fixes = {f.file: f.fix for f in lint(repo.root).findings}
    assert fixes.keys() == {"client.p12", "k8s/secret.yaml", "app/settings.py"}
    assert fixes["client.p12"] == fixes["k8s/secret.yaml"] == KEY_STORE_FIX
    assert "revoke" in KEY_STORE_FIX and "move the value" not in KEY_STORE_FIX
    assert fixes["app/settings.py"] == FIX


def _keytool(*args: str) -> None:
    subprocess.run(["keytool", *args, "-storepass", "changeit", "-noprompt"], check=True,
                   capture_output=True, timeout=120)


def test_java_key_stores_and_trust_stores(make_repo: MakeRepo, tmp_path: Path) -> None:
    """keytool's own JKS and JCEKS stores: with a private or secret key they are
    findings, under any name; a JKS trust store of certificates is public."""
    repo = make_repo({"README.md": "keys\n"}, git_init=False)
    app, sec, trust = (repo.root / "app.jks", repo.root / "conf/secrets.jceks",
                       repo.root / "truststore.jks")
    sec.parent.mkdir()
    _keytool("-genkeypair", "-alias", "app", "-keyalg", "EC", "-groupname", "secp256r1",
             "-dname", "CN=app", "-storetype", "JKS", "-keystore", str(app))
    _keytool("-genseckey", "-alias", "s", "-keyalg", "AES", "-keysize", "128",
             "-storetype", "JCEKS", "-keystore", str(sec))
    _keytool("-exportcert", "-alias", "app", "-keystore", str(app),
             "-file", str(tmp_path / "app.crt"))
    _keytool("-importcert", "-alias", "ca", "-file", str(tmp_path / "app.crt"),
             "-storetype", "JKS", "-keystore", str(trust))
    shutil.copy(app, repo.root / "app.bin")
    found = {(f.file, f.message) for f in lint(repo.root).findings}
    assert found == {("app.jks", "JKS key store in a committed file (<redacted>)"),
                     ("app.bin", "JKS key store in a committed file (<redacted>)"),
                     ("conf/secrets.jceks", "JCEKS key store in a committed file (<redacted>)")}
    # A trust store read only in part is not known to hold no key.
    data = trust.read_bytes()
    assert key_store("t.jks", data) is None
    entry, count = data[12:-20], MAX_BINARY_BYTES // (len(data) - 32) + 2
    many = data[:8] + struct.pack(">I", count) + entry * count + data[-20:]
    assert key_store("t.jks", many) == "JKS key store"
    assert key_store("t.jks", many[:8] + struct.pack(">I", 3) + many[12:]) is None


def test_the_baseline_accepts_a_key_store_by_its_digest(make_repo: MakeRepo) -> None:
    repo = make_repo({"README.md": "keys\n"})
    key = ec.generate_private_key(ec.SECP256R1())
    store = repo.root / "client.pfx"
    store.write_bytes(pkcs12.serialize_key_and_certificates(
        b"c", key, _certificate(key), None, serialization.NoEncryption()))
    assert run_cli(repo.root, "lint", "--write-baseline").returncode == 0
    assert run_cli(repo.root, "lint", "--baseline", BASELINE).returncode == 0
    # Another key store under the name is a new finding.
    other = ec.generate_private_key(ec.SECP256R1())
    store.write_bytes(pkcs12.serialize_key_and_certificates(
        b"c", other, _certificate(other), None, serialization.NoEncryption()))
    done = run_cli(repo.root, "lint", "--baseline", BASELINE)
    failed_cleanly(done, 1)
    assert done.stdout.startswith("client.pfx:1:1: MAG002 error: PKCS#12 key store")


def test_only_what_may_be_a_key_store_keeps_its_bytes() -> None:
    """Every file lint reads is held for the run: an image or archive keeps its text
    only, not also its first 256 KiB."""
    from magcfg.lint.walk import source

    key = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    assert source("img.png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(300)).raw is None
    assert source("a.tar.gz", b"\x1f\x8b\x08\0" + bytes(300)).raw is None
    assert source("app.yaml", b"password: x\n").raw is None
    assert source("key", key).raw == key
    assert source("ptr.p12", b"version https://git-lfs.github.com/spec/v1\n").raw is not None


def test_a_der_key_with_bytes_after_it_is_one() -> None:
    """OpenSSL reads a DER key and ignores what follows it (`openssl pkey -inform DER`):
    a newline or any bytes appended hid it, as only a SEQUENCE that was all of the file
    was tried. A certificate with bytes after it stays public."""
    key = ed25519.Ed25519PrivateKey.generate()
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    for tail in (b"\n", b"\0" * 100, b"\xff" * MAX_BINARY_BYTES):
        assert key_store("x.bin", der + tail) == "DER private key", tail[:4]
    ec_key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate(ec_key).public_bytes(serialization.Encoding.DER)
    assert key_store("x.bin", cert + b"\n") is None
    assert key_store("x.bin", der[:-1]) is None  # cut short: no key


def test_a_store_after_an_lfs_pointer_line_is_still_a_key_store() -> None:
    """Only a file that is all of a well-formed pointer is one: a real store after a
    pointer's first line (or its lines) passed as a pointer."""
    key = ec.generate_private_key(ec.SECP256R1())
    store = pkcs12.serialize_key_and_certificates(
        b"client", key, _certificate(key), None, serialization.NoEncryption())
    assert key_store("big.p12", POINTER.encode()) is None
    assert key_store("big.pfx", POINTER.replace("spec/v1", "spec/v2").encode()) is None
    for planted in (POINTER.encode() + store, POINTER.splitlines(True)[0].encode() + store,
                    POINTER.encode() + b"x" * 2000,
                    POINTER.replace("size 12345", "size 12345 and more").encode(),
                    POINTER.replace("\n", "\r\n").encode()):
        assert key_store("big.p12", planted) == "key store (by its file name)", planted[:60]
        assert key_store("big.pfx", planted) == "key store (by its file name)"
