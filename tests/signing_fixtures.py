"""Artifact directories in the format of docs/artifact.md, for the signing tests."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from magcfg.sign import MANIFEST_NAME

LISTED = ("config.json", "externalsecret.yaml", "vault-policy.hcl")


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_artifact(directory: Path, env: str = "production", version: int = 7,
                  config: dict[str, object] | None = None) -> Path:
    """An artifact directory in the format of docs/artifact.md."""
    directory.mkdir(parents=True, exist_ok=True)
    members = {
        "config.json": (json.dumps(config or {"kernel": {"port": 8080},
                                              "magds": {"password": "vault://secret/k3s/magds#pw"}},
                                   indent=2, sort_keys=True) + "\n").encode(),
        "externalsecret.yaml": b"apiVersion: external-secrets.io/v1\nkind: ExternalSecret\n",
        "vault-policy.hcl": b'path "secret/data/k3s/magds" {\n  capabilities = ["read"]\n}\n',
    }
    for name, data in members.items():
        (directory / name).write_bytes(data)
    manifest = {
        "compiler": {"name": "magcfg", "version": "0.1.0"},
        "config_digest": _digest(members["config.json"]),
        "environment": env,
        "files": {name: _digest(data) for name, data in sorted(members.items())},
        "format": 1,
        "hot_keys": [],
        "inputs": {"digest": _digest(b"inputs"), "files": 3},
        "reload_default": "restart",
        "restart_keys": [],
        "schema": {"digest": _digest(b"schema"), "path": "schemas/magflock.schema.json"},
        "version": version,
    }
    (directory / MANIFEST_NAME).write_bytes(
        (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
    return directory
