"""Signed artifacts and the ways they land on disk, for the runtime tests.

Artifacts are made through magcfg.signing.signatures (the same code `magcfg sign` runs). Three
writers put them in a watched directory the way real deliveries do:

- ``KubeletWriter``: a faithful copy of the kubelet's AtomicWriter (ConfigMap volumes):
  a fresh ``..<timestamp>`` directory, then ``..data_tmp -> it`` renamed over ``..data``,
  user-visible ``name -> ..data/name`` links, the old directory removed.
- ``rename_write``: what editors and ``magcfg build`` do: temp file, rename, per file.
- ``inplace_write``: truncate and write in place, in chunks (the torn case).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from magcfg.signing.keys import Ed25519PrivateKey
from magcfg.signing.signatures import sign_manifest

HOT = ["features", "logging.level", "maggate.rate_limits"]
RESTART = ["logging.format", "magds", "maggate.port"]
SECRET_KEYS = ["magds.password"]


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def base_config(version: int = 1) -> dict[str, Any]:
    return {
        "features": {"beta": False, "counter": version},
        "logging": {"format": "json", "level": "info"},
        "magds": {"host": "db.internal", "port": 5432,
                  "password": "vault://secret/k3s/magds#db_password"},
        "maggate": {"port": 8443, "rate_limits": {"per_second": 100}},
    }


def artifact_files(config: dict[str, Any], version: int, key: Ed25519PrivateKey | None,
                   env: str = "production", *, extra_manifest: dict[str, Any] | None = None,
                   config_bytes: bytes | None = None) -> dict[str, bytes]:
    """config.json, manifest.json and (with a key) manifest.json.sig, as bytes."""
    body = config_bytes if config_bytes is not None else (
        json.dumps(config, indent=2, sort_keys=True) + "\n").encode()
    manifest: dict[str, Any] = {
        "compiler": {"name": "magcfg", "version": "0.1.0"},
        "config_digest": digest(body),
        "environment": env,
        "files": {"config.json": digest(body)},
        "format": 1,
        "hot_keys": HOT,
        "inputs": {"digest": digest(b"inputs"), "files": 3},
        "reload_default": "restart",
        "restart_keys": RESTART,
        "schema": {"digest": digest(b"schema"), "path": "schemas/magflock.schema.json"},
        "secret_keys": SECRET_KEYS,
        "version": version,
        **(extra_manifest or {}),
    }
    manifest_bytes = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    files = {"config.json": body, "manifest.json": manifest_bytes}
    if key is not None:
        files["manifest.json.sig"] = sign_manifest(manifest_bytes, key)
    return files


def rename_write(directory: Path, files: dict[str, bytes], order: list[str] | None = None) -> None:
    """Each file replaced by rename; manifest and signature last (as `build` + `sign`)."""
    directory.mkdir(parents=True, exist_ok=True)
    names = order or sorted(files, key=lambda n: (n.startswith("manifest"), n))
    for name in names:
        tmp = directory / f".{name}.swp"
        tmp.write_bytes(files[name])
        os.replace(tmp, directory / name)


def inplace_write(directory: Path, files: dict[str, bytes], chunk: int = 7,
                  pause: float = 0.0) -> None:
    """Truncate and rewrite each file in place, a few bytes per write()."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        with open(directory / name, "wb") as fh:
            for i in range(0, len(data), chunk):
                fh.write(data[i:i + chunk])
                fh.flush()
                if pause:
                    time.sleep(pause)


class KubeletWriter:
    """The kubelet's AtomicWriter (pkg/volume/util/atomic_writer.go), step by step."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.count = 0

    def write(self, files: dict[str, bytes]) -> None:
        self.count += 1
        stamp = time.strftime("..%Y_%m_%d_%H_%M_%S", time.gmtime())
        ts_dir = self.directory / f"{stamp}.{os.getpid()}{self.count:06d}"
        ts_dir.mkdir()
        for name, data in files.items():
            (ts_dir / name).write_bytes(data)
        data_link = self.directory / "..data"
        old = os.readlink(data_link) if data_link.is_symlink() else None
        tmp_link = self.directory / "..data_tmp"
        os.symlink(ts_dir.name, tmp_link)
        os.rename(tmp_link, data_link)
        for name in files:
            visible = self.directory / name
            if not visible.is_symlink():
                os.symlink(f"..data/{name}", visible)
        # Only a version directory this writer made goes, as the kubelet removes only its
        # own: a test that points ``..data`` elsewhere (``/etc``) must not have it removed.
        if old is not None and os.path.basename(old) == old and old.startswith(".."):
            shutil.rmtree(self.directory / old, ignore_errors=True)
        for entry in self.directory.iterdir():
            if entry.is_symlink() and not entry.name.startswith("..") and entry.name not in files:
                entry.unlink()


def wait_for(predicate: Any, timeout: float = 60.0, interval: float = 0.005) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes (no timing asserted)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
