"""A real git repository holding a small three-environment project, for diff and promote.

Secret references carry canary strings: no output may ever contain them.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from ..conftest import Project

CANARIES = ("CANARY_user_7f3a",)

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["app", "db"],
    "properties": {
        "app": {
            "type": "object", "additionalProperties": False, "description": "app",
            "properties": {
                "name": {"type": "string", "description": "name"},
                "environment": {"type": "string", "enum": ["dev", "staging", "production"],
                                "description": "env"},
                "debug": {"type": "boolean", "description": "debug"},
            },
        },
        "db": {
            "type": "object", "additionalProperties": False, "description": "db",
            "properties": {
                "host": {"type": "string", "description": "host"},
                "port": {"type": "integer", "description": "port"},
                "password": {"type": "string", "pattern": "^(vault|env)://",
                             "x-magcfg-secret": True, "description": "secret"},
                "user": {"type": "string", "description": "user (redacted by the project)"},
                "pool": {"type": "object", "additionalProperties": False,
                         "x-magcfg-reload": "hot", "description": "pool",
                         "properties": {"min": {"type": "integer", "description": "min"},
                                        "max": {"type": "integer", "description": "max"}}},
                "tls": {"type": "object", "additionalProperties": False, "description": "tls",
                        "dependentRequired": {"ca": ["ca_check"]},
                        "properties": {"mode": {"type": "string", "description": "mode"},
                                       "ca": {"type": "string", "description": "ca"},
                                       "ca_check": {"type": "boolean", "description": "c"}}},
                "replicas": {"type": "array", "items": {"type": "string"},
                             "description": "replicas"},
            },
        },
        "logging": {
            "type": "object", "x-magcfg-reload": "hot", "additionalProperties": False,
            "description": "logging",
            "properties": {"level": {"type": "string",
                                     "enum": ["debug", "info", "warn", "error"],
                                     "description": "level"}},
        },
    },
}

PROJECT = """\
version: 1
environments: [dev, staging, production]
layers:
  - name: base
    path: layers/base
  - name: environment
    path: "layers/environments/{env}"
  - name: secrets
    path: "layers/secrets/{env}"
schema:
  json: schemas/schema.json
output: generated
promote:
  allow_differences:
    "*": [app.environment]
    dev: [app.debug]
# Separate Vaults: references may read the same paths in every environment.
secrets:
  vault:
    addresses:
      dev: "http://vault.dev.internal:8200"
      staging: "https://vault.staging.internal:8200"
      production: "https://vault.prod.internal:8200"
# A plain value the project keeps secret: the canary lives there (references are shown).
redact: [db.user]
"""

FILES = {
    "layers/base/app.yaml": "# The application itself.\napp:\n  name: \"shop\"\n  debug: false\n",
    "layers/base/db.yaml": (
        "# Database connection defaults.\n"
        "db:\n"
        "  host: \"db.internal\"\n"
        "  port: 5432\n"
        "  pool:\n"
        "    min: 1\n"
        "    max: 10\n"
        "  tls:\n"
        "    mode: \"require\"\n"
        "  replicas:\n"
        "    - \"r1.internal\"\n"
        "  user: \"CANARY_user_7f3a\"\n"
    ),
    "layers/base/logging.yaml": "logging:\n  level: \"info\"\n",
    "layers/environments/dev/app.yaml": "# Dev: laptops.\napp:\n  environment: \"dev\"\n  debug: true\n",
    "layers/environments/dev/db.yaml": (
        "db:\n"
        "  # Bigger pool for the new batch job.\n"
        "  pool:\n"
        "    max: 20   # measured on the load test\n"
        "    min: 2\n"
        "  tls:\n"
        "    mode: \"verify-full\"\n"
        "    ca: \"/etc/ca.pem\"\n"
        "    ca_check: true\n"
    ),
    "layers/environments/dev/logging.yaml": "logging:\n  level: \"debug\"\n",
    "layers/environments/staging/app.yaml": "app:\n  environment: \"staging\"\n",
    "layers/environments/staging/db.yaml": (
        "# Staging: shared cluster.\n"
        "db:\n"
        "  host: \"db.staging.internal\"\n"
        "  pool:\n"
        "    max: 15\n"
        "\n"
        "# Trailing notes stay put.\n"
    ),
    "layers/environments/production/app.yaml": "app:\n  environment: \"production\"\n",
    "layers/environments/production/db.yaml": (
        "# Production database.\n"
        "db:\n"
        "  host: \"db.prod.internal\"   # primary\n"
        "  pool:\n"
        "    # Sized for peak traffic.\n"
        "    max: 50\n"
        "  replicas: [\"r1.prod\", \"r2.prod\"]\n"
        "# Logging is in logging.yaml.\n"
    ),
    "layers/secrets/dev/db.yaml": "db:\n  password: \"vault://secret/k3s/shop#db_password_dev\"\n",
    "layers/secrets/staging/db.yaml": "db:\n  password: \"vault://secret/k3s/shop#db_password_staging\"\n",
    "layers/secrets/production/db.yaml": "db:\n  password: \"vault://secret/k3s/shop#db_password_production\"\n",
}

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Dana Dev", "GIT_AUTHOR_EMAIL": "dana@example.com",
    "GIT_COMMITTER_NAME": "Dana Dev", "GIT_COMMITTER_EMAIL": "dana@example.com",
    "GIT_AUTHOR_DATE": "2026-01-02T03:04:05Z", "GIT_COMMITTER_DATE": "2026-01-02T03:04:05Z",
    "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
}


def git(root: Path, *args: str, given: str | None = None) -> str:
    """Run real git in ``root`` (``given`` on its stdin); returns stdout."""
    env = {**os.environ, **GIT_ENV}
    done = subprocess.run(["git", *args], cwd=root, input=given, capture_output=True,
                          text=True, env=env, check=True, timeout=60)
    return done.stdout


def graft(root: Path, path: str, entry: str, message: str = "graft") -> str:
    """A commit on top of HEAD whose tree holds ``entry`` (a ``git mktree`` line without
    the name, e.g. ``160000 commit SHA``) at ``path``; the index and the working tree are
    not touched. Git's porcelain will not make some trees a hostile commit can hold (an
    entry named ``..``, a tree naming a million paths with a few objects)."""

    def plumb(*args: str, given: str | None = None) -> str:
        return git(root, *args, given=given).strip()

    def rebuilt(tree: str | None, parts: list[str]) -> str:
        name, rest = parts[0], parts[1:]
        lines = plumb("ls-tree", tree).splitlines() if tree else []
        kept = [line for line in lines if line.split("\t", 1)[1] != name]
        old = next((line.split()[2] for line in lines
                    if line.split("\t", 1)[1] == name and line.split()[1] == "tree"), None)
        kept.append(f"040000 tree {rebuilt(old, rest)}\t{name}" if rest else f"{entry}\t{name}")
        return plumb("mktree", "--missing", given="".join(f"{line}\n" for line in kept))

    tree = rebuilt(plumb("rev-parse", "HEAD^{tree}"), path.split("/"))
    return plumb("commit-tree", tree, "-p", "HEAD", "-m", message)


def make_repo(root: Path) -> Project:
    """The project, built, committed on ``main`` in a fresh repository."""
    project = Project(root)
    project.write("magcfg.yaml", PROJECT)
    project.write(".gitignore", ".magcfg-cache/\n")
    project.write("schemas/schema.json", json.dumps(SCHEMA, indent=2) + "\n")
    for rel, text in FILES.items():
        project.write(rel, text)
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", "Dana Dev")
    git(root, "config", "user.email", "dana@example.com")
    from magcfg.compiler import build
    from magcfg.project import load_project

    build(load_project(root / "magcfg.yaml"))
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "Initial config")
    return project


def tree(root: Path, under: str = "layers") -> dict[str, bytes]:
    """Every file under ``under`` with its bytes."""
    base = root / under
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(base.rglob("*")) if p.is_file()}


def no_canary(*texts: str) -> bool:
    return not any(c in t for c in CANARIES for t in texts)


def tree_bomb(root: Path, path: str) -> str:
    """A commit (``graft``) whose ``path`` is a tree naming a million layer files with
    six small objects: git stores a tree once however often it is named."""
    blob = git(root, "rev-parse", "HEAD:layers/base/app.yaml").strip()
    tree = git(root, "mktree", given="".join(
        f"100644 blob {blob}\tf{i}.yaml\n" for i in range(10))).strip()
    for _ in range(5):
        tree = git(root, "mktree", given="".join(
            f"040000 tree {tree}\td{i}\n" for i in range(10))).strip()
    return graft(root, path, f"040000 tree {tree}")
