"""A small real project that uses secrets (shared by the secrets tests)."""

from __future__ import annotations

import json
from pathlib import Path

from ..conftest import Project

# Secret keys carry no pattern here, so the build's own secret rules (not the schema's
# pattern) are what refuses literals and bad references.
SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "magds": {"type": "object", "additionalProperties": False, "properties": {
            "host": {"type": "string"},
            "user": {"type": "string"},
            "password": {"type": "string", "x-magcfg-secret": True},
            "replica_password": {"type": "string", "x-magcfg-secret": True},
            "tags": {"type": "array", "items": {"type": "string"}},
        }},
        "magws": {"type": "object", "additionalProperties": False, "properties": {
            "url": {"type": "string"},
            "app_secret": {"type": "string", "x-magcfg-secret": True},
        }},
        "magbackup": {"type": "object", "additionalProperties": False, "properties": {
            "key": {"type": "string", "x-magcfg-secret": True},
            "creds": {"type": "object", "x-magcfg-secret": True,
                      "additionalProperties": {"type": ["string", "integer"]}},
        }},
    },
}

PROJECT = """\
version: 1
environments: [dev, prod]
layers:
  - name: base
    path: layers/base
  - name: secrets
    path: "layers/secrets/{env}"
schema:
  json: schemas/schema.json
output: generated
secrets:
  vault:
    mounts: [secret, other]
    path_prefixes: ["k3s/"]
  store: {kind: ClusterSecretStore, name: vault-backend}
  refresh_interval: 30m
  target_name: "{app}-secrets"
redact: ["magds.user"]
"""

FILES = {
    "layers/base/magds.yaml": "magds:\n  host: db\n  user: magds\n",
    "layers/base/magws.yaml": "magws:\n  url: https://ws\n",
    "layers/secrets/dev/magds.yaml": 'magds:\n  password: "env://DEV_DB_PASSWORD"\n',
    "layers/secrets/prod/magds.yaml": (
        "magds:\n"
        '  password: "vault://secret/k3s/magds#db_password"\n'
        '  replica_password: "vault://secret/k3s/magds/replica#db_password"\n'),
    "layers/secrets/prod/magws.yaml": 'magws:\n  app_secret: "vault://secret/k3s/magws#app_secret"\n',
}


def make(root: Path, project: str = PROJECT) -> Project:
    p = Project(root)
    p.write("magcfg.yaml", project)
    p.write("schemas/schema.json", json.dumps(SCHEMA, indent=2))
    for rel, text in FILES.items():
        p.write(rel, text)
    return p
