"""Generate a synthetic layered magcfg repository for benchmarks and scale tests.

    python benchmarks/synth.py OUT --services 200 --keys 1000 --envs 3

Layout: ``layers/base/<svc>.yaml`` (every key), ``layers/environments/<env>/<svc>.yaml``
(about 4% of the keys overridden), ``layers/secrets/<env>/<svc>.yaml`` (two secret
references, one service in three), a JSON Schema, and ``magcfg.yaml``. Keys of a service
are grouped in sections of 100 whose shapes are shared through ``$defs`` (as the
services of one platform share shapes); ``--exhaustive-schema`` writes every service's
schema inline instead (the worst case: ~30 MB for the large repo).

``--shape realistic`` is what a platform of many teams looks like: every service has a
shape of its own (its own sections, nesting, key names and types), the schema types
every one of them exhaustively with no shared definitions (``additionalProperties:
false`` on every object, a type on every leaf, enums, patterns and bounds, keyed lists
with ``x-magcfg-merge-key``), each environment overrides a random 10-20% of a
service's leaves, and secrets are references (``vault://``) under ``x-magcfg-secret``.
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
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_yaml_scalar(x)}" for k, x in v.items()) + "}"
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
    _write_project(out, env_names)


_WORDS = ("http", "grpc", "database", "cache", "queue", "auth", "metrics", "tracing",
          "features", "limits", "storage", "scheduler", "retry", "pool", "tls", "session",
          "search", "billing", "mail", "upload", "audit", "index", "worker", "proxy",
          "backup", "replica", "shard", "quota", "alert", "export")
_FIELDS = ("timeout", "size", "count", "enabled", "mode", "host", "port", "path", "ratio",
           "level", "name", "window", "budget", "tags", "region", "prefix", "interval",
           "threshold", "strategy", "target")
_MODES = ("fast", "safe", "balanced", "strict", "lenient", "auto")
_REGIONS = ("eu-west-1", "eu-central-1", "us-east-1", "us-west-2", "ap-south-1")


def _realistic_shape(rnd: random.Random, leaves: int) -> dict[str, Any]:
    """A service's own shape: nested sections down to ``leaves`` typed leaves. A leaf
    is ``(kind, spec)``; a section is a dict."""
    shape: dict[str, Any] = {}
    made = 0
    words = list(_WORDS)
    rnd.shuffle(words)
    s = 0
    while made < leaves:
        name = f"{words[s % len(words)]}_{s // len(words)}" if s >= len(words) else words[s]
        s += 1
        section: dict[str, Any] = {}
        for g in range(rnd.randint(1, 4)):
            group = section if g == 0 else section.setdefault(f"group_{g}", {})
            for f in range(rnd.randint(4, 24)):
                if made >= leaves:
                    break
                field = f"{rnd.choice(_FIELDS)}_{f}"
                kind = rnd.choice(("int", "int", "str", "enum", "pattern", "bool", "float",
                                   "list"))
                if kind == "int":
                    low = rnd.choice((0, 1, 10))
                    spec: Any = (low, low + rnd.choice((100, 10_000, 1_000_000)))
                elif kind == "enum":
                    spec = tuple(rnd.sample(_MODES, 3))
                else:
                    spec = None
                group[field] = (kind, spec)
                made += 1
        shape[name] = section
    return shape


def _realistic_value(kind: str, spec: Any, rnd: random.Random) -> Any:
    if kind == "int":
        return rnd.randint(spec[0], spec[1])
    if kind == "str":
        return f"value-{rnd.randrange(16**12):012x}-{rnd.randrange(16**12):012x}"
    if kind == "enum":
        return rnd.choice(spec)
    if kind == "pattern":
        return rnd.choice(_REGIONS)
    if kind == "bool":
        return rnd.random() < 0.5
    if kind == "float":
        return round(rnd.uniform(0, 1000), 3)
    return [f"item-{rnd.randrange(100000)}" for _ in range(rnd.randint(1, 4))]


def _realistic_leaf_schema(kind: str, spec: Any, where: str) -> dict[str, Any]:
    desc = f"{where}."
    if kind == "int":
        return {"type": "integer", "minimum": spec[0], "maximum": spec[1], "description": desc}
    if kind == "str":
        return {"type": "string", "minLength": 1, "maxLength": 200, "description": desc}
    if kind == "enum":
        return {"type": "string", "enum": list(spec), "description": desc}
    if kind == "pattern":
        return {"type": "string", "pattern": "^[a-z]{2}-[a-z]+-[0-9]$", "description": desc}
    if kind == "bool":
        return {"type": "boolean", "description": desc}
    if kind == "float":
        return {"type": "number", "minimum": 0, "maximum": 1000, "description": desc}
    return {"type": "array", "items": {"type": "string", "pattern": "^item-[0-9]+$"},
            "maxItems": 16, "description": desc}


def _realistic_schema(shape: dict[str, Any], where: str) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for name, node in shape.items():
        props[name] = (_realistic_schema(node, f"{where}.{name}") if isinstance(node, dict)
                       else _realistic_leaf_schema(*node, f"{where}.{name}"))
    return {"type": "object", "additionalProperties": False, "description": f"{where}.",
            "required": sorted(props), "properties": props}


def _realistic_tree(shape: dict[str, Any], rnd: random.Random) -> dict[str, Any]:
    return {k: _realistic_tree(v, rnd) if isinstance(v, dict) else _realistic_value(*v, rnd)
            for k, v in shape.items()}


def _realistic_override(shape: dict[str, Any], base: dict[str, Any], rnd: random.Random,
                        share: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, node in shape.items():
        if isinstance(node, dict):
            sub = _realistic_override(node, base[k], rnd, share)
            if sub:
                out[k] = sub
        elif rnd.random() < share:
            new = _realistic_value(*node, rnd)
            if new != base[k]:
                out[k] = new
    return out


def _endpoints_schema(name: str) -> dict[str, Any]:
    item = {"type": "object", "additionalProperties": False, "required": ["name", "port"],
            "description": f"{name} endpoint.",
            "properties": {"name": {"type": "string", "pattern": "^ep-[0-9]+$",
                                    "description": "Endpoint name."},
                           "port": {"type": "integer", "minimum": 1, "maximum": 65535,
                                    "description": "Port."},
                           "weight": {"type": "integer", "minimum": 0, "maximum": 100,
                                      "description": "Weight."}}}
    return {"type": "array", "x-magcfg-merge-key": "name", "items": item,
            "description": f"{name} endpoints, merged by name."}


def generate_realistic(out: Path, services: int, keys: int, envs: int) -> None:
    """The realistic shape (module docstring): distinct, exhaustively typed services."""
    env_names = ["dev", "staging", "production", "qa", "perf", "dr"][:envs]
    rnd = random.Random(4321)
    (out / "layers" / "base").mkdir(parents=True, exist_ok=True)
    for env in env_names:
        (out / "layers" / "environments" / env).mkdir(parents=True, exist_ok=True)
        (out / "layers" / "secrets" / env).mkdir(parents=True, exist_ok=True)
    (out / "schemas").mkdir(parents=True, exist_ok=True)
    root: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object", "additionalProperties": False,
        "description": "Synthetic platform, every service typed exhaustively.",
        "properties": {}}
    for svc in range(services):
        name = f"svc_{svc:03d}"
        shape = _realistic_shape(rnd, keys)
        schema = _realistic_schema(shape, name)
        schema["properties"]["credentials"] = {
            "type": "object", "additionalProperties": False, "x-magcfg-secret": True,
            "description": "Secret references.",
            "properties": {f: {"type": "string", "pattern": "^(vault|env)://",
                               "description": f"{f} reference."}
                           for f in ("password", "token")}}
        schema["properties"]["logging"] = {
            "type": "object", "x-magcfg-reload": "hot", "additionalProperties": False,
            "description": "Logging.", "required": ["level"], "properties": {"level": {
                "type": "string", "enum": ["debug", "info", "warn", "error"],
                "description": "Log level."}}}
        schema["properties"]["endpoints"] = _endpoints_schema(name)
        root["properties"][name] = schema
        tree = _realistic_tree(shape, rnd)
        tree["logging"] = {"level": "info"}
        tree["endpoints"] = [{"name": f"ep-{i}", "port": 8000 + i, "weight": 10}
                             for i in range(rnd.randint(2, 6))]
        (out / "layers" / "base" / f"{name}.yaml").write_text(
            f"# {name}: defaults\n" + _dump({name: tree}) + "\n")
        share = rnd.uniform(0.10, 0.20)
        for env in env_names:
            override = _realistic_override(shape, tree, rnd, share)
            if env != "production":
                override["logging"] = {"level": "debug"}
            if rnd.random() < 0.5:
                override["endpoints"] = [{"name": "ep-0", "port": 9000 + rnd.randrange(999)}]
            (out / "layers" / "environments" / env / f"{name}.yaml").write_text(
                _dump({name: override}) + "\n")
            if svc % 3 == 0:
                refs = {"credentials": {"password": f"vault://secret/{env}/{name}#password",
                                        "token": f"env://{name.upper()}_TOKEN"}}
                (out / "layers" / "secrets" / env / f"{name}.yaml").write_text(
                    _dump({name: refs}) + "\n")
    (out / "schemas" / "platform.schema.json").write_text(json.dumps(root, indent=1) + "\n")
    _write_project(out, env_names)


def _write_project(out: Path, env_names: list[str]) -> None:
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
    parser.add_argument("--shape", choices=("shared", "realistic"), default="shared",
                        help="shared: one service shape, $defs (default); realistic: "
                             "distinct shapes, exhaustive schema, 10-20%% overrides")
    args = parser.parse_args(argv)
    if args.shape == "realistic":
        generate_realistic(args.out, args.services, args.keys, args.envs)
    else:
        generate(args.out, args.services, args.keys, args.envs, args.exhaustive_schema)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
