"""What the schema index says about one key (editors' hover and completion)."""

from __future__ import annotations

import json

from magcfg.schema.index import load_schema
from tests.conftest import MINI_SCHEMA


def test_entry_gives_description_types_bounds_enum_and_policy() -> None:
    index = load_schema("schemas/schema.json", json.dumps(MINI_SCHEMA).encode()).index
    port = index.entry(("magds", "port"))
    assert port is not None
    assert (port.path, port.description, port.types, port.reload, port.secret) == (
        "magds.port", "port", ("integer",), "restart", False)
    assert port.bounds == {"minimum": 1, "maximum": 65535}
    level = index.entry(("logging", "level"))
    assert level is not None
    assert (level.reload, dict(level.bounds)) == (
        "hot", {"enum": ["debug", "info", "warn", "error"]})
    password = index.entry(("magds", "password"))
    assert password is not None and password.secret
    assert index.entry(("magds", "nope")) is None
