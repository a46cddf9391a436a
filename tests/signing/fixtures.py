"""Artifact directories in the format of docs/artifact.md, for the signing tests."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import magcfg
from magcfg.signing.signatures import MANIFEST_NAME

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


# ---------------------------------------------------------------- a real small project

MINI_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "magds": {
            "type": "object", "additionalProperties": False,
            "properties": {
                "host": {"type": "string"},
                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                "password": {"type": "string", "pattern": "^(vault|env)://",
                             "x-magcfg-secret": True},
            },
        },
        "logging": {
            "type": "object", "x-magcfg-reload": "hot", "additionalProperties": False,
            "properties": {"level": {"type": "string",
                                     "enum": ["debug", "info", "warn", "error"]}},
        },
    },
}

MINI_FILES = {
    ".gitignore": ".magcfg-cache/\n",
    "magcfg.yaml": (
        "version: 1\n"
        "environments: [dev, prod]\n"
        "layers:\n"
        "  - name: base\n"
        "    path: layers/base\n"
        "  - name: environment\n"
        "    path: \"layers/environments/{env}\"\n"
        "schema:\n"
        "  json: schemas/schema.json\n"
        "output: generated\n"
        # A Vault per environment: both may read the base layer's reference.
        "secrets:\n"
        "  vault:\n"
        "    addresses: {dev: \"https://vault-dev.example:8200\", prod: \"https://vault.example:8200\"}\n"
    ),
    "schemas/schema.json": json.dumps(MINI_SCHEMA, indent=2) + "\n",
    "layers/base/magds.yaml": ("magds:\n  host: db\n  port: 5433\n"
                               "  password: vault://secret/k3s/magds#db_password\n"),
    "layers/base/logging.yaml": "logging:\n  level: info\n",
    "layers/environments/dev/magds.yaml": "magds:\n  host: localhost\n",
    "layers/environments/prod/logging.yaml": "logging:\n  level: warn\n",
}


def make_project(root: Path, extra_project_yaml: str = "") -> Path:
    """Write the mini project under ``root``; ``extra_project_yaml`` is appended to
    magcfg.yaml."""
    for rel, text in MINI_FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + (extra_project_yaml if rel == "magcfg.yaml" else ""))
    return root


def run_magcfg(cwd: Path, *args: str, env: Mapping[str, str] | None = None
               ) -> subprocess.CompletedProcess[str]:
    """``python -m magcfg ARGS`` in ``cwd``, with this checkout's package and without any
    signing key from the caller's environment unless ``env`` gives one."""
    environ = {k: v for k, v in os.environ.items() if k != "MAGCFG_SIGNING_KEY"}
    package_root = str(Path(magcfg.__file__).resolve().parents[1])
    environ["PYTHONPATH"] = os.pathsep.join(
        [package_root, *filter(None, [environ.get("PYTHONPATH")])])
    environ.update(env or {})
    return subprocess.run([sys.executable, "-m", "magcfg", *args], cwd=cwd, env=environ,
                          capture_output=True, text=True, timeout=120)


def build_in_process(root: Path) -> None:
    """A real build through the Python API (faster than a subprocess for set-up steps)."""
    magcfg.build(magcfg.load_project(root / "magcfg.yaml"))
