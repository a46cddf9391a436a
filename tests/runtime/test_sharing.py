"""Snapshots share the unchanged top-level subtrees of the previous one.

A reload parses and freezes only the top-level members whose bytes changed; the others
are the previous snapshot's objects (``is``). The split of ``config.json`` into members
is checked to give exactly what parsing the whole document gives, whatever its layout.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from magcfg.artifact import MAX_CONFIG_DEPTH
from magcfg.runtime import RELOADED, Kernel, Snapshot, freeze
from magcfg.runtime import kernel as kernel_module
from magcfg.runtime.snapshot import NestedTooDeep, build_config
from magcfg.signing.keys import Ed25519PrivateKey

from .fixtures import KubeletWriter, artifact_files, base_config


class Rig:
    def __init__(self, root: Path) -> None:
        self.key = Ed25519PrivateKey.generate()
        self.art = root / "artifact"
        self.state = root / "state"
        self.writer = KubeletWriter(self.art)
        self.kernels: list[Kernel] = []
        self.events: list[dict[str, Any]] = []

    def write(self, version: int, config: dict[str, Any], **kw: Any) -> None:
        self.writer.write(artifact_files(config, version, self.key, **kw))

    def kernel(self, **kw: Any) -> Kernel:
        kernel = Kernel(self.art, [self.key.public_key()], self.state, watch=False,
                        environment="production", **kw)
        kernel.subscribe("*", self.events.append)
        self.kernels.append(kernel)
        return kernel.start()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    yield r
    for k in r.kernels:
        k.stop()


def _plain(value: Any) -> Any:
    """A frozen tree back as JSON-like data, with the types kept apart (tuple != list)."""
    if isinstance(value, Mapping):
        return {"{}": [(k, _plain(v)) for k, v in value.items()]}
    if isinstance(value, tuple):
        return {"()": [_plain(v) for v in value]}
    if isinstance(value, list):
        return {"[]": [_plain(v) for v in value]}
    return (type(value).__name__, value)


def _as_parsed(body: bytes) -> Any:
    return _plain(freeze(json.loads(body)))


def test_a_reload_keeps_the_unchanged_subtrees_of_the_previous_snapshot(rig: Rig) -> None:
    rig.write(1, base_config(1))
    kernel = rig.kernel()
    old = kernel.snapshot
    config = base_config(1)
    config["logging"]["level"] = "debug"
    rig.write(2, config)
    assert kernel.reload().status == "applied"
    new = kernel.snapshot
    assert new is not old and new.version == 2
    # Untouched top-level keys: the same objects; the changed one: a new object.
    for key in ("features", "magds", "maggate"):
        assert new.config[key] is old.config[key]
    assert new.config["logging"] is not old.config["logging"]
    assert new.config["logging"]["level"] == "debug" and old.config["logging"]["level"] == "info"
    assert _plain(new.config) == _as_parsed(new.files["config.json"])
    # The event still lists exactly what changed.
    event = [e for e in rig.events if e["type"] == RELOADED][-1]
    assert event["data"]["changed_keys"] == ["logging.level"]


def test_sharing_follows_moved_added_and_removed_keys(rig: Rig) -> None:
    config = base_config(1)
    rig.write(1, config)
    kernel = rig.kernel()
    old = kernel.snapshot
    # "aaa" sorts first: every member moves down one place; "maggate" removed.
    changed = {"aaa": {"new": [1, 2]}, **{k: v for k, v in config.items() if k != "maggate"}}
    rig.write(2, changed, extra_manifest={"reload_default": "hot", "restart_keys": [],
                                          "hot_keys": []})
    assert kernel.reload().status == "applied"
    new = kernel.snapshot
    for key in ("features", "logging", "magds"):
        assert new.config[key] is old.config[key]
    assert "maggate" not in new.config and new.config["aaa"] == {"new": (1, 2)}
    assert list(new.config) == ["aaa", "features", "logging", "magds"]
    event = [e for e in rig.events if e["type"] == RELOADED][-1]
    assert event["data"]["changed_keys"] == ["aaa", "maggate"]


def test_a_restart_key_change_is_still_held_back(rig: Rig) -> None:
    rig.write(1, base_config(1))
    kernel = rig.kernel()
    config = base_config(1)
    config["maggate"]["port"] = 9443  # restart key, in a subtree that is otherwise the same
    rig.write(2, config)
    result = kernel.reload()
    assert result.status == "refused" and result.reason == "restart_required"
    assert kernel.version == 1 and kernel.pending is not None
    assert kernel.pending.config["magds"] is kernel.config["magds"]


def test_a_saved_state_and_the_artifact_share_subtrees_at_boot(rig: Rig) -> None:
    rig.write(1, base_config(1))
    rig.kernel().stop()
    config = base_config(1)
    config["logging"]["level"] = "debug"
    rig.write(2, config)
    kernel = rig.kernel()
    assert kernel.version == 2
    assert _plain(kernel.config) == _as_parsed(kernel.snapshot.files["config.json"])


def test_validators_still_get_a_plain_parsed_dict(rig: Rig) -> None:
    seen: list[Any] = []
    rig.write(1, base_config(1))
    kernel = rig.kernel(validators=[seen.append])
    old = kernel.snapshot
    config = base_config(1)
    config["features"]["beta"] = True
    config["features"]["list"] = [1, {"a": 2}]
    rig.write(2, config)
    assert kernel.reload().status == "applied"
    assert type(seen[-1]) is dict and seen[-1] == json.loads(json.dumps(config))
    assert type(seen[-1]["features"]["list"]) is list
    assert kernel.config["magds"] is old.config["magds"]


@pytest.mark.parametrize("layout", ["compact", "indent4", "crlf"])
def test_other_layouts_load_and_reload_as_before(rig: Rig, layout: str) -> None:
    def body(config: dict[str, Any]) -> bytes:
        if layout == "compact":
            return json.dumps(config, sort_keys=True).encode()
        if layout == "indent4":
            return (json.dumps(config, indent=4, sort_keys=True) + "\n").encode()
        return json.dumps(config, indent=2, sort_keys=True).replace("\n", "\r\n").encode()

    rig.write(1, {}, config_bytes=body(base_config(1)))
    kernel = rig.kernel()
    config = base_config(1)
    config["logging"]["level"] = "debug"
    rig.write(2, {}, config_bytes=body(config))
    assert kernel.reload().status == "applied"
    assert _plain(kernel.config) == _as_parsed(body(config))


def test_invalid_json_is_refused_with_the_same_message(rig: Rig) -> None:
    rig.write(1, base_config(1))
    kernel = rig.kernel()
    good = (json.dumps(base_config(2), indent=2, sort_keys=True) + "\n").encode()
    for bad, why in ((good.replace(b'"info"', b'"info'), "not valid JSON"),
                     (b"[\n  1,\n  2\n]\n", "not a JSON object")):
        rig.write(2, {}, config_bytes=bad)
        result = kernel.reload()
        assert result.status == "refused" and result.reason == "invalid"
        assert result.event is not None and why in result.event["data"]["error"]
    assert kernel.version == 1



def _lists(levels: int) -> Any:
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    return value


def test_freeze_takes_values_nested_to_the_bound_and_no_deeper() -> None:
    assert freeze(_lists(MAX_CONFIG_DEPTH)) == freeze(_lists(MAX_CONFIG_DEPTH))
    with pytest.raises(NestedTooDeep, match=f"nested deeper than {MAX_CONFIG_DEPTH} levels"):
        freeze(_lists(MAX_CONFIG_DEPTH + 1))
    # A member's value sits one level below the config's top-level object.
    member = (b'{\n  "a": ' + json.dumps(_lists(MAX_CONFIG_DEPTH - 1)).encode()
              + b',\n  "b": 1\n}\n')
    built = build_config(member, orjson.loads)
    assert built is not None and len(built[1]) == 2
    with pytest.raises(NestedTooDeep):
        build_config(member.replace(b'"a": [', b'"a": [[').replace(b'],', b']],'),
                     orjson.loads)


@pytest.mark.parametrize("share", [True, False])
def test_a_config_nested_past_the_bound_is_refused_split_or_whole(
        rig: Rig, monkeypatch: pytest.MonkeyPatch, share: bool) -> None:
    monkeypatch.setattr(kernel_module, "SHARE_SUBTREES", share)
    rig.write(1, base_config(1))
    kernel = rig.kernel()
    config = base_config(2)
    config["features"]["beta"] = _lists(MAX_CONFIG_DEPTH - 1)  # level 3 to level 129
    rig.write(2, config)
    result = kernel.reload()
    assert (result.status, kernel.version) == ("refused", 1)
    assert result.event is not None
    assert re.search(r"/config\.json: line \d+: nested deeper than "
                     f"{MAX_CONFIG_DEPTH} levels$", result.event["data"]["error"])


def test_sharing_off_builds_an_equal_tree(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    rig.write(1, base_config(1))
    kernel = rig.kernel()
    shared = kernel.snapshot
    monkeypatch.setattr(kernel_module, "SHARE_SUBTREES", False)
    config = base_config(1)
    config["logging"]["level"] = "debug"
    rig.write(2, config)
    assert kernel.reload().status == "applied"
    assert kernel.config["magds"] is not shared.config["magds"]
    assert kernel.config["magds"] == shared.config["magds"]


def test_masking_walks_only_the_subtrees_that_changed(rig: Rig,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from magcfg.secrets import references

    canary = "CANARY-3b9e-do-not-leak"
    monkeypatch.setenv("MAGCFG_MAGDS_PASSWORD", canary + "-delivered")
    monkeypatch.setenv("UPSTREAM_TOKEN", canary + "-env-ref")
    walked: list[list[str]] = []
    real = references.reference_paths

    def counting(config: Any) -> Any:
        walked.append(list(config))
        return real(config)

    monkeypatch.setattr(references, "reference_paths", counting)
    config = base_config(1)
    config["features"]["upstream"] = "env://UPSTREAM_TOKEN"
    rig.write(1, config)
    kernel = rig.kernel()

    def leaky(config: Any) -> None:
        if config["logging"]["level"] == "error":
            raise ValueError(f"{canary}-delivered and {canary}-env-ref")

    kernel.validators.append(leaky)
    config["logging"]["level"] = "debug"
    rig.write(2, config)
    assert kernel.reload().status == "applied"
    config["logging"]["level"] = "error"
    rig.write(3, config)
    result = kernel.reload()
    assert result.status == "refused" and result.event is not None
    assert result.event["data"]["error"].endswith("leaky: <redacted> and <redacted>")
    first = [key for keys in walked for key in keys]
    assert sorted(first) == sorted(base_config(1))  # the served config, walked once
    walked.clear()
    config["logging"]["level"] = "warning"
    rig.write(3, config)  # version 3 again, now valid: applied
    assert kernel.reload().status == "applied"
    config["logging"]["level"] = "error"
    rig.write(4, config)
    result = kernel.reload()
    assert result.event is not None and canary not in json.dumps(result.event)
    # Only "logging" changed since the last walk: the other subtrees were not walked again.
    assert [key for keys in walked for key in keys] == ["logging"]


# ---------------------------------------------------------------- the split, in isolation

def _snapshot(body: bytes) -> Snapshot | None:
    built = build_config(body, orjson.loads)
    if built is None:
        return None
    return Snapshot(built[0], freeze({}), b"", b"", {"config.json": body}, "k",
                    _members=built[1])


@pytest.mark.parametrize("body", [
    b'{\n  "a": [\n  "b",\n  "c"\n  ],\n  "d": 1\n}\n',  # a separator inside a list
    b'{\n  "a": "x,\\n  \\"y"\n}',  # an escaped newline inside a string
    b'{\n  "a": 1,\n  "a": 2\n}\n',  # a key twice: the whole parse decides
    b'{}', b'{\n}\n', b'{ }',
    b'{\n  "a": {\n  "b": 1,\n  "c": 2\n  }\n}',
])
def test_awkward_layouts_split_soundly_or_not_at_all(body: bytes) -> None:
    built = build_config(body, orjson.loads)
    if built is not None:
        assert _plain(built[0]) == _as_parsed(body)
    if b'"a": 2' in body:
        assert built is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10) | st.floats(allow_nan=False)
    | st.text(alphabet=',\n "\\{}[]:ab', max_size=6),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(alphabet=',\n "ab', max_size=3), inner, max_size=3),
    max_leaves=12)
json_objects = st.dictionaries(st.text(alphabet=',\n "ab{', max_size=4), json_values,
                               max_size=6)


def _dump(value: Any, layout: int) -> bytes:
    if layout == 0:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    if layout == 1:
        return json.dumps(value, indent=2).encode() + b"\n"
    return json.dumps(value, separators=(",", ":")).encode()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_objects, json_objects, st.integers(0, 2), st.integers(0, 2))
def test_a_split_build_is_the_whole_parse(before: dict[str, Any], after: dict[str, Any],
                                          layout_before: int, layout_after: int) -> None:
    """Whatever the previous config, the layouts and the keys (with separators, quotes
    and braces in them), a built tree is exactly the parse of the whole document."""
    after = {**before, **after} if layout_after == 0 and after else after  # overlap often
    old_body, new_body = _dump(before, layout_before), _dump(after, layout_after)
    previous = _snapshot(old_body)
    built = build_config(new_body, orjson.loads, previous)
    if built is None:
        return
    assert _plain(built[0]) == _as_parsed(new_body)
    if previous is not None:
        for key, value in built[0].items():
            if isinstance(value, Mapping | tuple) and key in previous.config and (
                    value is previous.config[key]):
                assert value == previous.config[key]
