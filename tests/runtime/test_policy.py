"""Reload policy, secret detection and change lists of the runtime (pure functions)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from magcfg.keyglob import parse_keypath
from magcfg.runtime.policy import REDACTED, ReloadPolicy, _same, changes, restart_keys
from magcfg.runtime.snapshot import MISSING, freeze, thaw

POLICY = ReloadPolicy({
    "hot_keys": ["a.b", "x.*.y", "f"],
    "restart_keys": ["a", "x", "x.*.y.z", "a.b.c"],
    "reload_default": "restart",
    "secret_keys": ["s.pw", "t.*.key"],
})


@pytest.mark.parametrize(("key", "policy"), [
    ("a.q", "restart"), ("a.b", "hot"), ("a.b.d", "hot"), ("a.b.c.d", "restart"),
    ("x.1.y", "hot"), ("x.1.y.z", "restart"), ("x.1.q", "restart"), ("f.g", "hot"),
    ("unknown", "restart"),
])
def test_policy_is_the_longest_listed_prefix(key: str, policy: str) -> None:
    assert POLICY.policy_of(parse_keypath(key)) == policy


def test_reload_default_hot_applies_to_unknown_keys() -> None:
    assert ReloadPolicy({"reload_default": "hot", "restart_keys": ["db"]}).policy_of(("new",)) == "hot"


def test_restart_rules_below_a_replaced_subtree() -> None:
    assert POLICY.has_restart_below(("a", "b")) and POLICY.has_restart_below(("x", "2", "y"))
    assert not POLICY.has_restart_below(("f",))
    # Replacing the hot subtree a.b wholesale touches a.b.c, a restart key.
    changed = changes(freeze({"a": {"b": {"c": 1}}}), freeze({"a": {"b": 2}}))
    assert [c.key for c in changed] == ["a.b"] and restart_keys(changed, POLICY) == ["a.b"]


@pytest.mark.parametrize(("key", "values", "secret"), [
    ("s.pw", (), True), ("s.pw.inner", (), True), ("t.9.key", (), True), ("s.p", (), False),
    ("svc.db_password", (), True), ("svc.api-key", (), True), ("svc.token", (), True),
    ("svc.tokens_per_second", (), False), ("svc.url", ("vault://secret/k3s/a#b",), True),
    ("svc.url", ("env://DB_URL",), True), ("svc.url", ("https://example",), False),
])
def test_secret_detection(key: str, values: tuple[str, ...], secret: bool) -> None:
    assert POLICY.is_secret(parse_keypath(key), *values) is secret


def test_changes_are_leaf_paths_with_redacted_values() -> None:
    old = freeze({"f": {"level": "info", "list": [1, 2]}, "s": {"pw": "old-canary"},
                  "gone": {"k": 1}})
    new = freeze({"f": {"level": "debug", "list": [1, 2, 3], "added": True},
                  "s": {"pw": "new-canary"}})
    changed = changes(old, new)
    assert [c.key for c in changed] == ["f.added", "f.level", "f.list", "gone", "s.pw"]
    data = {c.key: c.redacted(POLICY) for c in changed}
    assert data["f.added"] == {"key": "f.added", "policy": "hot", "new": True}
    assert data["f.list"]["new"] == [1, 2, 3]
    assert data["gone"] == {"key": "gone", "policy": "restart", "old": {"k": 1}}
    assert data["s.pw"]["old"] == data["s.pw"]["new"] == REDACTED
    assert changed[0].old is MISSING



def test_a_value_secret_under_either_policy_is_redacted() -> None:
    # The served version declared s.license secret; the next drops it, key and rule.
    served = ReloadPolicy({"secret_keys": ["s.license"]})
    changed = changes(freeze({"s": {"license": "old-canary", "n": 1}}), freeze({"s": {"n": 2}}))
    assert changed[0].redacted(POLICY) == {"key": "s.license", "policy": "restart",
                                           "old": "old-canary"}
    assert changed[0].redacted(POLICY, served)["old"] == REDACTED
    whole = changes(freeze({"s": {"license": "old-canary"}}), freeze({}))
    assert whole[0].redacted(POLICY, served)["old"] == {"license": REDACTED}


def test_type_changes_count_even_when_equal() -> None:
    assert [c.key for c in changes(freeze({"a": 1}), freeze({"a": True}))] == ["a"]


def test_secret_values_are_collected_for_masking() -> None:
    config = {"s": {"pw": "p1"}, "svc": {"token": "p2", "url": "vault://x/y#z", "n": "plain"}}
    assert POLICY.secret_values(config) == {"p1", "p2", "vault://x/y#z"}


def test_freeze_and_thaw_round_trip() -> None:
    value = {"a": [1, {"b": [2]}], "c": {"d": None}}
    frozen = freeze(value)
    with pytest.raises(TypeError):
        frozen["a"] = 1  # type: ignore[index]
    assert isinstance(frozen["a"], tuple) and thaw(frozen) == value


def test_type_changes_inside_lists_count() -> None:
    assert [c.key for c in changes(freeze({"a": {"l": [1, 2]}}),
                                   freeze({"a": {"l": [True, 2.0]}}))] == ["a.l"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from([0.0, 1.0, 2.5])
    | st.sampled_from(["a", "b", "vault://s/p#k"]),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(["x", "y", "z"]), inner, max_size=3),
    max_leaves=12)
documents = st.dictionaries(st.sampled_from(["a", "b", "c"]), json_values, max_size=3)


@settings(deadline=None, max_examples=300)
@given(documents, documents)
def test_changes_are_empty_exactly_when_documents_are_the_same(old: Any, new: Any) -> None:
    changed = changes(freeze(old), freeze(new))
    assert (changed == []) == _same(old, new)
    for change in changed:  # every reported path really differs
        assert not _same(thaw(change.old) if change.old is not MISSING else MISSING,
                         thaw(change.new) if change.new is not MISSING else MISSING)
