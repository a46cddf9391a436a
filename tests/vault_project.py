"""A small real project whose prod references live on the test session's dev Vault under
a path prefix of their own (so tests sharing the server never see each other's secrets)."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from .conftest import Project
from .secrets.project import SCHEMA


def vault_project(root: Path, mount: str = "secret") -> tuple[Project, str]:
    """(project, prefix): prod reads ``<prefix>magds``, ``<prefix>magds/replica`` and
    ``<prefix>magws``; dev only env:// references."""
    prefix = f"t{secrets.token_hex(4)}/"
    p = Project(root)
    p.write("magcfg.yaml", f"""\
version: 1
environments: [dev, prod]
layers:
  - name: base
    path: layers/base
  - name: secrets
    path: "layers/secrets/{{env}}"
schema:
  json: schemas/schema.json
output: generated
secrets:
  vault:
    mounts: [{mount}]
    path_prefixes: ["{prefix}"]
""")
    p.write("schemas/schema.json", json.dumps(SCHEMA, indent=2))
    p.write("layers/base/magds.yaml", "magds:\n  host: db\n")
    p.write("layers/secrets/dev/magds.yaml", 'magds:\n  password: "env://DEV_DB_PASSWORD"\n')
    p.write("layers/secrets/prod/magds.yaml", (
        "magds:\n"
        f'  password: "vault://{mount}/{prefix}magds#db_password"\n'
        f'  replica_password: "vault://{mount}/{prefix}magds/replica#db_password"\n'))
    p.write("layers/secrets/prod/magws.yaml",
            f'magws:\n  app_secret: "vault://{mount}/{prefix}magws#app_secret"\n')
    return p, prefix
