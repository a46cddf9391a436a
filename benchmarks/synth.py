"""Generate a synthetic layered magcfg repository for benchmarks and scale tests.

    python benchmarks/synth.py OUT --services 200 --keys 1000 --envs 3

Layout: ``layers/base/<svc>.yaml`` (every key), ``layers/environments/<env>/<svc>.yaml``
(about 4% of the keys overridden), ``layers/secrets/<env>/<svc>.yaml`` (two secret
references, one service in three), a JSON Schema, and ``magcfg.yaml``. Keys of a service
are grouped in sections of 100 whose shapes are shared through ``$defs`` (as the
services of one platform share shapes); ``--exhaustive-schema`` writes every service's
schema inline instead (the worst case: ~30 MB for the large repo).
Deterministic: the same arguments give the same bytes.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

SECTION = 100
KINDS = ("int", "str", "bool", "float", "list")


def _section_names(keys: int) -> list[str]:
    return [f"section_{i:02d}" for i in range((keys + SECTION - 1) // SECTION)]


def _key_kind(i: int) -> str:
    return KINDS[i % len(KINDS)]


def _value(kind: str, rnd: random.Random, svc: int, i: int) -> Any:
    if kind == "int":
        return rnd.randrange(1, 100_000)
    if kind == "str":
        noise = "-".join(f"{rnd.randrange(16**16):016x}" for _ in range(5))
        return f"value-{svc:03d}-{i:04d}-{noise}"
    if kind == "bool":
        return rnd.random() < 0.5
    if kind == "float":
        return round(rnd.uniform(0, 1000), 3)
    return [f"item-{rnd.randrange(100000)}" for _ in range(4)]


def _yaml_scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "[" + ", ".join(_yaml_scalar(x) for x in v) + "]"
    if isinstance(v, str):
        return v if v[0].isalpha() else json.dumps(v)
    return repr(v)


def _dump(tree: dict[str, Any], indent: int = 0) -> str:
    lines = []
    for k, v in tree.items():
        if isinstance(v, dict) and not v:
            lines.append(" " * indent + f"{k}: {{}}")
        elif isinstance(v, dict):
            lines.append(" " * indent + f"{k}:")
            lines.append(_dump(v, indent + 2))
        else:
            lines.append(" " * indent + f"{k}: {_yaml_scalar(v)}")
    return "\n".join(lines)


def _leaf_schema(kind: str, section: int, i: int) -> dict[str, Any]:
    desc = f"Setting {i} of section {section}."
    if kind == "int":
        return {"type": "integer", "minimum": 0, "maximum": 1_000_000, "description": desc}
    if kind == "str":
        return {"type": "string", "minLength": 1, "description": desc}
    if kind == "bool":
        return {"type": "boolean", "description": desc}
    if kind == "float":
        return {"type": "number", "description": desc}
    return {"type": "array", "items": {"type": "string"}, "description": desc}


def generate(out: Path, services: int, keys: int, envs: int, exhaustive: bool = False) -> None:
    env_names = ["dev", "staging", "production", "qa", "perf", "dr"][:envs]
    sections = _section_names(keys)
    rnd = random.Random(1234)
    (out / "layers" / "base").mkdir(parents=True, exist_ok=True)
    for env in env_names:
        (out / "layers" / "environments" / env).mkdir(parents=True, exist_ok=True)
        (out / "layers" / "secrets" / env).mkdir(parents=True, exist_ok=True)
    (out / "schemas").mkdir(parents=True, exist_ok=True)

    section_defs: dict[str, Any] = {}
    for s, name in enumerate(sections):
        props = {}
        for i in range(SECTION):
            if s * SECTION + i >= keys:
                break
            props[f"key_{i:03d}"] = _leaf_schema(_key_kind(i), s, i)
        section_defs[name] = {"type": "object", "additionalProperties": False,
                              "description": f"Section {s}.", "properties": props}
    service_def: dict[str, Any] = {
        "type": "object", "additionalProperties": False, "description": "A service.",
        "properties": {name: {"$ref": f"#/$defs/{name}"} for name in sections}}
    service_def["properties"]["credentials"] = {
        "type": "object", "additionalProperties": False, "x-magcfg-secret": True,
        "description": "Secret references.",
        "properties": {"password": {"type": "string", "pattern": "^(vault|env)://",
                                    "description": "Password reference."},
                       "token": {"type": "string", "pattern": "^(vault|env)://",
                                 "description": "Token reference."}}}
    service_def["properties"]["logging"] = {
        "type": "object", "x-magcfg-reload": "hot", "additionalProperties": False,
        "description": "Logging.", "properties": {"level": {
            "type": "string", "enum": ["debug", "info", "warn", "error"],
            "description": "Log level."}}}
    root: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object", "additionalProperties": False, "description": "Synthetic platform.",
        "properties": {}}
    if exhaustive:
        inline = json.loads(json.dumps(service_def))
        for name in sections:
            inline["properties"][name] = section_defs[name]
        for svc in range(services):
            root["properties"][f"svc_{svc:03d}"] = json.loads(json.dumps(inline))
    else:
        root["$defs"] = {**section_defs, "service": service_def}
        for svc in range(services):
            root["properties"][f"svc_{svc:03d}"] = {"$ref": "#/$defs/service"}
    (out / "schemas" / "platform.schema.json").write_text(json.dumps(root, indent=1) + "\n")

    for svc in range(services):
        name = f"svc_{svc:03d}"
        tree: dict[str, Any] = {"logging": {"level": "info"}}
        for s, section in enumerate(sections):
            tree[section] = {}
            for i in range(SECTION):
                if s * SECTION + i >= keys:
                    break
                tree[section][f"key_{i:03d}"] = _value(_key_kind(i), rnd, svc, i)
        (out / "layers" / "base" / f"{name}.yaml").write_text(
            f"# {name}: defaults\n" + _dump({name: tree}) + "\n")
        for e, env in enumerate(env_names):
            override: dict[str, Any] = {}
            for s, section in enumerate(sections):
                for i in range(SECTION):
                    if s * SECTION + i >= keys or rnd.random() >= 0.04:
                        continue
                    new = _value(_key_kind(i), rnd, svc + 1000 * (e + 1), i)
                    if new != tree[section][f"key_{i:03d}"]:
                        override.setdefault(section, {})[f"key_{i:03d}"] = new
            if env != "production":
                override["logging"] = {"level": "debug"}
            (out / "layers" / "environments" / env / f"{name}.yaml").write_text(
                _dump({name: override}) + "\n")
            if svc % 3 == 0:
                # Each environment its own Vault path tree (docs/secrets.md, "Environments").
                refs = {"credentials": {"password": f"vault://secret/k3s/{env}/{name}#password",
                                        "token": f"vault://secret/k3s/{env}/{name}#token"}}
                (out / "layers" / "secrets" / env / f"{name}.yaml").write_text(
                    _dump({name: refs}) + "\n")
    (out / "magcfg.yaml").write_text(
        "version: 1\n"
        f"environments: [{', '.join(env_names)}]\n"
        "layers:\n"
        "  - name: base\n    path: layers/base\n"
        "  - name: environment\n    path: \"layers/environments/{env}\"\n"
        "  - name: secrets\n    path: \"layers/secrets/{env}\"\n"
        "schema:\n  json: schemas/platform.schema.json\n"
        "output: generated\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--services", type=int, default=200)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--envs", type=int, default=3)
    parser.add_argument("--exhaustive-schema", action="store_true")
    args = parser.parse_args(argv)
    generate(args.out, args.services, args.keys, args.envs, args.exhaustive_schema)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
