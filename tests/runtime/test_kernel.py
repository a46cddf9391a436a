"""The runtime kernel in process: pipeline, faults, events, state, metrics, concurrency.

Everything is real: signed artifacts on disk, inotify, threads, the state file.
"""

from __future__ import annotations

import copy
import json
import os
import pickle
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

import magcfg.runtime
from magcfg.artifact import MAX_CONFIG_DEPTH
from magcfg.errors import UsageError
from magcfg.runtime import (
    LOADED,
    RELOAD_FAILED,
    RELOADED,
    STATE_CORRUPT,
    ConfigRejected,
    Kernel,
    KernelStartError,
    ReloadResult,
)
from magcfg.runtime import kernel as kernel_module
from magcfg.runtime.kernel import MAX_HANDED_OUT
from magcfg.runtime.state import STATE_FILE, save_state
from magcfg.signing.keys import Ed25519PrivateKey, key_id, public_key_pem
from magcfg.signing.signatures import sign_manifest

from .fixtures import (
    HOT,
    SECRET_KEYS,
    KubeletWriter,
    artifact_files,
    base_config,
    digest,
    inplace_write,
    rename_write,
    wait_for,
)

REPO = Path(__file__).resolve().parents[2]
CANARY = "CANARY-7d1f0e-do-not-leak"


class Rig:
    """An artifact directory fed by the kubelet writer, a key, a state dir and kernels."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.key = Ed25519PrivateKey.generate()
        self.art = root / "artifact"
        self.state = root / "state"
        self.audit = root / "audit.jsonl"
        self.writer = KubeletWriter(self.art)
        self.kernels: list[Kernel] = []
        self.events: list[dict[str, Any]] = []

    def write(self, version: int, config: dict[str, Any] | None = None,
              key: Ed25519PrivateKey | None = None, **kw: Any) -> dict[str, bytes]:
        files = artifact_files(config or base_config(version), version, key or self.key, **kw)
        self.writer.write(files)
        return files

    def kernel(self, start: bool = True, **kw: Any) -> Kernel:
        kw.setdefault("audit_log", self.audit)
        kw.setdefault("poll_interval", 0.2)
        kernel = Kernel(self.art, [self.key.public_key()], self.state,
                        **{"environment": "production", **kw})
        kernel.subscribe("*", self.events.append)
        self.kernels.append(kernel)
        return kernel.start() if start else kernel

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]

    def everything_said(self) -> str:
        audit = self.audit.read_text() if self.audit.exists() else ""
        return json.dumps(self.events) + audit


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    yield r
    for k in r.kernels:
        k.stop()


def hot_change(version: int, level: str = "debug") -> dict[str, Any]:
    config = base_config(version)
    config["logging"]["level"] = level
    return config


# ---------------------------------------------------------------- loading and API

def test_real_build_and_sign_loads_and_is_immutable(tmp_path: Path) -> None:
    # The bundled project, built and signed by the real CLI.
    for name in ("layers", "schemas"):
        subprocess.run(["cp", "-r", str(REPO / name), str(tmp_path / name)], check=True)
    (tmp_path / "magcfg.yaml").write_bytes((REPO / "magcfg.yaml").read_bytes())
    cli = [sys.executable, "-m", "magcfg"]
    env = {**os.environ, "PYTHONPATH": str(REPO / "compiler")}
    for args in (["build", "-q"], ["keys", "generate", "--out", "keys"],
                 ["sign", "-e", "production", "-k", "keys/magcfg.key"]):
        subprocess.run(cli + args, cwd=tmp_path, env=env, check=True, capture_output=True)
    expected = json.loads((tmp_path / "generated/production/config.json").read_text())
    with Kernel(tmp_path / "generated/production", str(tmp_path / "keys/magcfg.pub"),
                schema=tmp_path / "schemas/magflock.schema.json", watch=False,
                environment="production") as kernel:
        assert kernel.version == 1 and kernel.booted_from == "artifact"
        assert kernel.get("maggate.port") == expected["maggate"]["port"]
        assert kernel.get("boot.order.0") == expected["boot"]["order"][0]
        assert kernel.get("no.such.key", "fallback") == "fallback"
        assert kernel.config["kernel"] == kernel.get("kernel")
        with pytest.raises(TypeError):
            kernel.config["maggate"]["port"] = 1  # type: ignore[index]
        assert isinstance(kernel.get("boot.order"), tuple)
        assert kernel.reload().status == "unchanged"
    # GitOps delivery: the ConfigMap's data, mounted by the kubelet, verifies byte for byte.
    import yaml

    configmap = yaml.safe_load((tmp_path / "generated/production/configmap.yaml").read_text())
    volume = tmp_path / "volume"
    KubeletWriter(volume).write({n: v.encode() for n, v in configmap["data"].items()})
    with Kernel(volume, str(tmp_path / "keys/magcfg.pub"), watch=False,
                environment="production") as mounted:
        assert mounted.version == 1 and dict(mounted.config) == dict(kernel.config)


def test_hot_change_through_the_kubelet_swap_is_applied_with_an_event(rig: Rig) -> None:
    rig.write(1)
    kernel = rig.kernel()
    assert rig.of_type(LOADED)[0]["data"]["source"] == "artifact"
    rig.write(2, hot_change(2))
    assert wait_for(lambda: bool(rig.of_type(RELOADED)))
    assert kernel.version == 2 and kernel.get("logging.level") == "debug"
    event = rig.of_type(RELOADED)[-1]
    assert event["specversion"] == "1.0" and event["subject"] == "production"
    data = event["data"]
    assert (data["previous_version"], data["version"]) == (1, 2)
    assert data["changed_keys"] == ["features.counter", "logging.level"]
    assert {"key": "logging.level", "policy": "hot", "old": "info", "new": "debug"} in data["changes"]
    assert data["duration_ms"] >= 0 and data["trigger"] == "watch"
    # Persisted once every subscriber accepted it.
    assert wait_for(lambda: json.loads((rig.state / STATE_FILE).read_text())["version"] == 2)
    assert json.loads((rig.state / STATE_FILE).read_text())["highest_version"] == 2


def test_editor_rename_writes_are_picked_up(rig: Rig) -> None:
    rename_write(rig.art / "plain", artifact_files(base_config(1), 1, rig.key))
    kernel = Kernel(rig.art / "plain", [rig.key.public_key()], poll_interval=0.2,
                    environment="production")
    rig.kernels.append(kernel.start())
    rename_write(rig.art / "plain", artifact_files(hot_change(2), 2, rig.key))
    assert wait_for(lambda: kernel.version == 2)
    assert kernel.get("logging.level") == "debug"


def test_inplace_partial_writes_end_on_the_whole_new_version(rig: Rig) -> None:
    plain = rig.art / "plain"
    inplace_write(plain, artifact_files(base_config(1), 1, rig.key))
    kernel = Kernel(plain, [rig.key.public_key()], poll_interval=0.2, debounce=0.001,
                    environment="production")
    failures: list[dict[str, Any]] = []
    kernel.subscribe(RELOAD_FAILED, failures.append)
    rig.kernels.append(kernel.start())
    inplace_write(plain, artifact_files(hot_change(2), 2, rig.key), chunk=5, pause=0.0005)
    assert wait_for(lambda: kernel.version == 2)
    assert kernel.get("logging.level") == "debug"
    # Torn intermediate states may have been seen and refused, never served.
    assert {f["data"]["reason"] for f in failures} <= {"digest_mismatch", "bad_signature",
                                                      "missing_file", "malformed_manifest"}


def test_poll_fallback_without_inotify(rig: Rig) -> None:
    rig.write(1)
    kernel = rig.kernel(use_inotify=False, poll_interval=0.05)
    assert kernel.status()["watch"] == "poll"
    rig.write(2, hot_change(2))
    assert wait_for(lambda: kernel.version == 2)


# ---------------------------------------------------------------- refused artifacts

def _refusal(rig: Rig, kernel: Kernel) -> dict[str, Any]:
    result = kernel.reload()
    assert result.status == "refused" and result.event is not None
    assert kernel.version == 1 and kernel.get("logging.level") == "info"
    return result.event["data"]



def _nested(version: int, levels: int) -> bytes:
    """config.json of ``base_config(version)`` nested ``levels`` deep (the top-level
    object is level 1): ``features.beta`` holds ``levels - 2`` lists, one in another."""
    lists = levels - 2
    text = json.dumps(base_config(version), indent=2, sort_keys=True)
    return (text.replace('"beta": false', '"beta": ' + "[" * lists + "]" * lists)
            + "\n").encode()


def test_a_config_nested_to_the_bound_is_served_and_announced(rig: Rig) -> None:
    rig.write(1)
    kernel = rig.kernel(watch=False)
    rig.write(2, config_bytes=_nested(2, MAX_CONFIG_DEPTH))
    result = kernel.reload()
    assert result.status == "applied" and rig.of_type(RELOADED)[-1]["data"]["version"] == 2
    lists = kernel.get("features.beta")
    for _ in range(MAX_CONFIG_DEPTH - 3):
        lists = lists[0]
    assert lists == ()
    restarted = rig.kernel(watch=False)
    assert (restarted.booted_from, restarted.version) == ("artifact", 2)


def test_a_config_nested_past_the_bound_is_refused_at_every_depth(rig: Rig) -> None:
    # Deeper configs ran out of the recursion limit somewhere in the reload: past a
    # few hundred levels the version was saved and served with no event, or its floor
    # saved though the previous version stayed served.
    rig.write(1)
    kernel = rig.kernel(watch=False)
    for version, levels in enumerate(range(MAX_CONFIG_DEPTH + 1, 1100), start=2):
        rig.write(version, config_bytes=_nested(version, levels))
        result = kernel.reload()
        assert (result.status, kernel.version) == ("refused", 1), levels
        assert result.event is not None and result.event["data"]["stage"] == "parse"
        # base_config's "beta", on line 3, holds every list.
        assert result.event["data"]["error"] == (
            f"{rig.art}/..data/config.json: line 3: nested deeper than {MAX_CONFIG_DEPTH} "
            "levels")
    assert [e["type"] for e in rig.events].count(RELOADED) == 0
    assert rig.kernel(watch=False).version == 1  # the floor saved is still version 1


def test_truncated_config_is_refused_and_the_old_config_kept(rig: Rig) -> None:
    rig.write(1)
    kernel = rig.kernel(watch=False)
    files = artifact_files(hot_change(2), 2, rig.key)
    files["config.json"] = files["config.json"][: len(files["config.json"]) // 2]
    rig.writer.write(files)
    data = _refusal(rig, kernel)
    assert (data["stage"], data["reason"]) == ("verify", "digest_mismatch")
    assert data["active_version"] == 1 and "config.json" in data["error"]


def test_truncated_manifest_fails_the_signature(rig: Rig) -> None:
    rig.write(1)
    kernel = rig.kernel(watch=False)
    files = artifact_files(hot_change(2), 2, rig.key)
    files["manifest.json"] = files["manifest.json"][:40]
    rig.writer.write(files)
    assert _refusal(rig, kernel)["reason"] == "bad_signature"


def test_tampered_config_and_manifest_are_refused(rig: Rig) -> None:
    rig.write(1)
    kernel = rig.kernel(watch=False)
    files = artifact_files(hot_change(2), 2, rig.key)
    files["config.json"] = files["config.json"].replace(b'"debug"', b'"error"')
    rig.writer.write(files)
    refusal = _refusal(rig, kernel)
    # Named as `magcfg verify --volume` names them: the file read, through ..data.
    assert refusal["reason"] == "digest_mismatch"
    assert refusal["error"].startswith(f"{rig.art}/..data/config.json: ")
    files = artifact_files(hot_change(2), 2, rig.key)
    files["manifest.json"] = files["manifest.json"].replace(b'"version": 2', b'"version": 9')
    rig.writer.write(files)
    refusal = _refusal(rig, kernel)
    assert refusal["reason"] == "bad_signature"
    assert refusal["error"].startswith(f"{rig.art}/..data/manifest.json.sig: ")


def test_wrong_key_and_unsigned_are_refused(rig: Rig) -> None:
    rig.write(1)
    kernel = rig.kernel(watch=False)
    rig.write(2, hot_change(2), key=Ed25519PrivateKey.generate())
    data = _refusal(rig, kernel)
    assert (data["stage"], data["reason"]) == ("verify", "bad_signature")
    rig.writer.write(artifact_files(hot_change(3), 3, None))
    assert _refusal(rig, kernel)["reason"] == "unsigned"


def test_older_version_is_refused_unless_rollback_is_allowed(rig: Rig) -> None:
    rig.write(5)
    kernel = rig.kernel(watch=False)
    rig.write(4, hot_change(4))
    result = kernel.reload()
    assert result.reason == "rollback_refused" and kernel.version == 5
    assert result.event is not None and result.event["data"]["stage"] == "version"
    lenient = rig.kernel(watch=False, allow_rollback=True, audit_log=None)
    assert lenient.version == 4 and lenient.get("logging.level") == "debug"


def test_same_version_with_other_content_is_refused(rig: Rig) -> None:
    rig.write(3)
    kernel = rig.kernel(watch=False)
    rig.write(3, hot_change(3))
    result = kernel.reload()
    assert result.reason == "version_conflict" and kernel.get("logging.level") == "info"


def test_schema_invalid_config_is_refused_without_quoting_secrets(rig: Rig) -> None:
    schema = rig.root / "schema.json"
    schema.write_text(json.dumps({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "magds": {"type": "object", "properties": {
                "port": {"type": "integer", "maximum": 65535},
                "password": {"type": "string", "pattern": "^(vault|env)://",
                             "x-magcfg-secret": True}}},
            "logging": {"type": "object", "properties": {
                "level": {"enum": ["debug", "info", "warn", "error"]}}},
        },
    }))
    rig.write(1)
    kernel = rig.kernel(watch=False, schema=schema)
    bad = hot_change(2, level="loud")
    bad["magds"]["password"] = CANARY
    rig.write(2, bad)
    data = _refusal(rig, kernel)
    assert (data["stage"], data["reason"]) == ("validate", "invalid")
    assert "logging.level" in data["error"] and "magds.password" in data["error"]
    assert CANARY not in rig.everything_said()


def test_user_validator_refuses(rig: Rig) -> None:
    def no_debug(config: Any) -> None:
        if config["logging"]["level"] == "debug":
            raise ValueError("debug logging is not allowed in production")

    rig.write(1)
    kernel = rig.kernel(watch=False, validators=[no_debug])
    rig.write(2, hot_change(2))
    data = _refusal(rig, kernel)
    assert data["reason"] == "invalid" and "not allowed" in data["error"]



class _Untellable(Exception):
    """An exception whose own text fails, as a ``__str__`` reading an attribute never set."""

    def __str__(self) -> str:
        raise AttributeError("detail")


class _UntellableRejection(ConfigRejected):
    def __str__(self) -> str:
        raise AttributeError("detail")


def test_a_refusal_whose_exception_cannot_be_told_is_still_reported(rig: Rig) -> None:
    def validator(config: Any) -> None:
        if config["features"]["counter"] == 2:
            raise _Untellable()

    rig.write(1)
    kernel = rig.kernel(validators=[validator])  # watched: the watcher's attempt too
    rig.write(2, hot_change(2))
    assert wait_for(lambda: rig.of_type(RELOAD_FAILED) != [], timeout=30)
    data = rig.of_type(RELOAD_FAILED)[-1]["data"]
    assert data["error"] == f"{rig.art}/..data/config.json: validator: _Untellable"
    assert kernel.status()["state"] == "reload_failed" and kernel.version == 1

    def reject(event: dict[str, Any]) -> None:
        raise _UntellableRejection()

    kernel.subscribe(RELOADED, reject)
    rig.write(3, hot_change(3))
    result = kernel.reload()
    assert (result.status, result.reason, kernel.version) == ("refused", "subscriber_rejected", 1)
    assert result.event is not None
    assert result.event["data"]["error"] == "a subscriber rejected version 3: _UntellableRejection"


def test_restart_only_change_is_pending_not_applied(rig: Rig) -> None:
    rig.write(1)
    kernel = rig.kernel()
    config = hot_change(2)
    config["magds"]["port"] = 6543
    rig.write(2, config)
    assert wait_for(lambda: kernel.pending is not None and bool(rig.of_type(RELOAD_FAILED)))
    assert kernel.version == 1 and kernel.get("magds.port") == 5432
    assert kernel.get("logging.level") == "info"  # hot keys of that version wait too
    assert kernel.pending is not None and kernel.pending.get("magds.port") == 6543
    data = rig.of_type(RELOAD_FAILED)[-1]["data"]
    assert (data["stage"], data["reason"]) == ("policy", "restart_required")
    assert data["restart_keys"] == ["magds.port"] and data["attempted_version"] == 2
    assert data["key_id"] == kernel.snapshot.key_id
    assert data["error"] == (f"{rig.art}/..data/config.json: 1 changed key(s) take effect "
                             "only after a restart: magds.port")
    status = kernel.status()
    assert (status["state"], status["pending_version"]) == ("restart_pending", 2)
    assert status["pending_restart_keys"] == ["magds.port"] and status["last_error"] is None
    # A restart boots the pending version.
    kernel.stop()
    restarted = rig.kernel()
    assert restarted.version == 2 and restarted.get("magds.port") == 6543


def test_a_failure_while_a_restart_is_pending_is_a_failure(rig: Rig) -> None:
    rig.write(1)
    kernel = rig.kernel(watch=False)
    config = hot_change(2)
    config["magds"]["port"] = 6543
    rig.write(2, config)
    assert kernel.reload().reason == "restart_required"
    assert kernel.status()["state"] == "restart_pending"
    rig.write(3, hot_change(3), key=Ed25519PrivateKey.generate())
    assert kernel.reload().reason == "bad_signature"
    status = kernel.status()
    assert (status["state"], status["pending_version"]) == ("reload_failed", 2)
    assert status["last_error"]["reason"] == "bad_signature"


# ---------------------------------------------------------------- subscribers

def test_failing_subscriber_breaks_nothing(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    rig.write(1)
    kernel = rig.kernel()
    seen: list[int] = []

    def broken(event: dict[str, Any]) -> None:
        raise RuntimeError(f"boom {CANARY}")

    kernel.subscribe(RELOADED, broken)
    kernel.subscribe(RELOADED, lambda e: seen.append(e["data"]["version"]))
    rig.write(2, hot_change(2))
    assert wait_for(lambda: seen == [2])
    assert kernel.version == 2
    rig.write(3, hot_change(3, "warn"))
    assert wait_for(lambda: seen == [2, 3])
    assert CANARY not in caplog.text and "RuntimeError" in caplog.text
    assert kernel.status()["subscriber_failures"] == 2


def test_rejecting_subscriber_rolls_back(rig: Rig) -> None:
    registry = CollectorRegistry()
    rig.write(1)
    kernel = rig.kernel(metrics=registry)
    observed: list[str] = []

    def picky(event: dict[str, Any]) -> None:
        observed.append(kernel.get("logging.level"))  # the new snapshot is live here
        if kernel.get("logging.level") == "debug":
            raise ConfigRejected(f"pool cannot switch to debug ({CANARY})")

    kernel.subscribe(RELOADED, picky)
    later: list[int] = []
    kernel.subscribe(RELOADED, lambda e: later.append(e["data"]["version"]))
    rig.write(2, hot_change(2))
    assert wait_for(lambda: bool(rig.of_type(RELOAD_FAILED)))
    assert kernel.version == 1 and kernel.get("logging.level") == "info"
    data = rig.of_type(RELOAD_FAILED)[-1]["data"]
    assert (data["stage"], data["reason"], data["rolled_back"]) == (
        "subscriber", "subscriber_rejected", True)
    assert observed == ["debug"] and later == []
    assert registry.get_sample_value("magcfg_config_rollbacks_total") == 1
    state = json.loads((rig.state / STATE_FILE).read_text())
    assert state["version"] == 1
    rig.write(3, hot_change(3, "warn"))
    assert wait_for(lambda: later == [3])
    assert kernel.version == 3


def test_a_subscribers_reload_runs_after_the_attempt_that_called_it(rig: Rig) -> None:
    """A reload() from a subscriber ran nested: it served version 3, then a later
    subscriber's rejection of version 2 restored version 1 over it."""
    rig.write(1)
    kernel = rig.kernel(watch=False)
    nested: list[str] = []

    def reloading(event: dict[str, Any]) -> None:
        if event["data"]["version"] == 2:
            rig.write(3, hot_change(3, "warn"))
            nested.append(kernel.reload().status)

    def rejecting(event: dict[str, Any]) -> None:
        if event["data"]["version"] == 2:
            raise ConfigRejected("not version 2")

    kernel.subscribe(RELOADED, reloading)
    kernel.subscribe(RELOADED, rejecting)
    rig.write(2, hot_change(2))
    result = kernel.reload()
    assert kernel.version == 3 and kernel.get("logging.level") == "warn"
    assert (result.status, result.reason, nested) == (
        "refused", "subscriber_rejected", ["deferred"])
    # Version 2's delivery stopped at its rejection; version 3's reached every subscriber.
    assert [e["data"]["version"] for e in rig.of_type(RELOADED)] == [3]
    assert [e["data"]["attempted_version"] for e in rig.of_type(RELOAD_FAILED)] == [2]


# ---------------------------------------------------------------- last known-good

def test_bad_deploy_after_restart_boots_from_last_known_good(rig: Rig) -> None:
    rig.write(1)
    rig.kernel(watch=False).stop()
    rig.write(2, hot_change(2), key=Ed25519PrivateKey.generate())  # a bad deploy
    kernel = rig.kernel(watch=False)
    assert kernel.booted_from == "last_known_good" and kernel.version == 1
    loaded = rig.of_type(LOADED)[-1]["data"]
    assert loaded["source"] == "last_known_good" and loaded["reason"] == "bad_signature"
    assert rig.of_type(RELOAD_FAILED)[-1]["data"]["active_version"] == 1



def test_a_version_below_the_floor_is_refused_naming_its_manifest(rig: Rig) -> None:
    rig.write(1)
    kernel = rig.kernel(watch=False)

    def reject(event: dict[str, Any]) -> None:
        raise ConfigRejected("not now")

    unsubscribe = kernel.subscribe(RELOADED, reject)
    rig.write(3, hot_change(3))
    assert kernel.reload().reason == "subscriber_rejected"  # served a moment: the floor is 3
    unsubscribe()
    rig.write(2, hot_change(2))  # above the version served, below the floor
    data = _refusal(rig, kernel)
    assert (data["stage"], data["reason"]) == ("version", "rollback_refused")
    assert data["error"] == (f"{rig.art}/..data/manifest.json: version 2 is older than "
                             "version 3, the highest ever accepted here: refused as a rollback")


def test_rollback_is_refused_across_restarts(rig: Rig) -> None:
    rig.write(3)
    rig.kernel(watch=False).stop()
    rig.write(2, hot_change(2))
    kernel = rig.kernel(watch=False)
    assert kernel.version == 3 and kernel.booted_from == "last_known_good"
    assert rig.of_type(RELOAD_FAILED)[-1]["data"]["reason"] == "rollback_refused"



def test_a_key_rotation_leaves_a_last_known_good_the_new_key_verifies(rig: Rig) -> None:
    # docs/signing.md: trust both keys, re-sign every environment with the new one,
    # then trust the new key alone. The re-signed artifact is the same manifest.
    new_key = Ed25519PrivateKey.generate()
    served = rig.write(3)
    kernel = Kernel(rig.art, [rig.key.public_key(), new_key.public_key()], rig.state,
                    environment="production", watch=False).start()
    reloads: list[dict[str, Any]] = []
    kernel.subscribe(RELOADED, reloads.append)
    rig.writer.write({**served, "manifest.json.sig": sign_manifest(served["manifest.json"],
                                                                  new_key)})
    result = kernel.reload()
    assert result.status == "applied" and result.event is not None
    data = result.event["data"]
    assert (data["previous_version"], data["version"], data["changed_keys"]) == (3, 3, [])
    assert data["key_id"] == key_id(new_key.public_key()) == kernel.snapshot.key_id
    assert kernel.reload().status == "unchanged"  # taken once
    # Flipped back and forth between the two signatures, it is taken no more.
    for signed_by in (rig.key, new_key, rig.key):
        rig.writer.write({**served, "manifest.json.sig": sign_manifest(served["manifest.json"],
                                                                      signed_by)})
        assert kernel.reload().status == "unchanged"
    assert kernel.snapshot.key_id == key_id(new_key.public_key()) and len(reloads) == 1
    kernel.stop()
    # The next restart trusts the new key alone, and meets a broken deploy.
    rig.write(4, hot_change(4), key=Ed25519PrivateKey.generate())
    restarted = Kernel(rig.art, [new_key.public_key()], rig.state, environment="production",
                       watch=False)
    restarted.subscribe("*", rig.events.append)
    rig.kernels.append(restarted.start())
    assert (restarted.booted_from, restarted.version) == ("last_known_good", 3)
    assert rig.of_type(STATE_CORRUPT) == []


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage", "resign"])
def test_corrupted_state_is_detected_and_never_trusted(rig: Rig, damage: str) -> None:
    rig.write(1)
    rig.kernel(watch=False).stop()
    path = rig.state / STATE_FILE
    raw = path.read_bytes()
    if damage == "flip":
        body = json.loads(raw)
        body["highest_version"] = 99
        path.write_text(json.dumps(body))
    elif damage == "truncate":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x00\xff" * 10)
    else:  # consistent checksum, but signed by a key nobody trusts
        from magcfg.runtime.state import save_state

        forged = artifact_files(base_config(7), 7, Ed25519PrivateKey.generate())
        save_state(rig.state, forged["manifest.json"], forged["manifest.json.sig"],
                   {"config.json": forged["config.json"]}, 7, 7)
    kernel = rig.kernel(watch=False)
    assert kernel.booted_from == "artifact" and kernel.version == 1
    corrupt = rig.of_type(STATE_CORRUPT)
    assert len(corrupt) == 1 and str(rig.state) in corrupt[0]["data"]["error"]
    kernel.stop()
    # With a bad artifact and an untrusted state there is nothing to serve.
    path.write_bytes(b"{}")
    rig.write(2, hot_change(2), key=Ed25519PrivateKey.generate())
    with pytest.raises(KernelStartError, match="bad_signature"):
        rig.kernel(watch=False)


_TWICE = "appears twice in one object (JSON readers disagree on which one counts)"
# Each saved config.json holds the canary beside what is refused in it.
_SAVED_REFUSED = {
    "twice": (b'{\n  "db": {"password": "%s", "password": "x"}\n}\n',
              f"line 2, column 9: the key 'password' {_TWICE}"),
    "nan": (b'{\n  "password": "%s",\n  "port": NaN\n}\n', "line 3, column 11: NaN is not JSON"),
    "wide": (b'{\n  "password": "%s", "port": 99999999999999999999\n}\n',
             "line 2, column 52: an integer beyond 64 bits (signed) is refused (JSON "
             "readers disagree on its value)"),
    "not json": (b'{\n  "password": "%s"\n  "port": 1\n}\n',
                 "line 3, column 3: not valid JSON (Expecting ',' delimiter)"),
    "not utf-8": (b'{\n  "password": "%s\xff"\n}\n',
                  "line 2, column 41: not UTF-8 (invalid start byte)"),
    "nested": (b'{\n  "password": "%s",\n  "deep": ' + b"[" * MAX_CONFIG_DEPTH
               + b"]" * MAX_CONFIG_DEPTH + b"\n}\n",
               f"line 3: nested deeper than {MAX_CONFIG_DEPTH} levels"),
    "not an object": (b'["%s"]\n', "not a JSON object"),
}


@pytest.mark.parametrize("case", list(_SAVED_REFUSED))
def test_a_saved_config_that_is_no_config_is_named_where_and_why_never_what(
        rig: Rig, caplog: pytest.LogCaptureFixture, case: str) -> None:
    """A signed last known-good whose config.json the kernel refuses (signed by the
    trusted key: a compiler's bug, a hand-made artifact) said only the error's type
    ("the saved artifact is unusable (JSONRefused)"): it names the saved file, the line
    and column, and the reason, never a byte of the text there."""
    body, where_and_why = _SAVED_REFUSED[case]
    body = body.replace(b"%s", CANARY.encode())
    saved = artifact_files({}, 7, rig.key, config_bytes=body)
    save_state(rig.state, saved["manifest.json"], saved["manifest.json.sig"],
               {"config.json": body}, 7, 7)
    rig.write(8)
    kernel = rig.kernel(watch=False)
    assert (kernel.booted_from, kernel.version) == ("artifact", 8)
    [corrupt] = rig.of_type(STATE_CORRUPT)
    assert corrupt["data"]["error"] == f"{rig.state / STATE_FILE}:config.json: {where_and_why}"
    assert CANARY not in rig.everything_said() + caplog.text



@pytest.mark.parametrize(("option", "value", "message"), [
    ("poll_interval", float("nan"), "the poll interval is a finite number of seconds above 0, "
                                    "not nan"),
    ("poll_interval", float("inf"), "the poll interval is a finite number of seconds above 0, "
                                    "not inf"),
    ("poll_interval", 0, "the poll interval is a finite number of seconds above 0, not 0"),
    ("debounce", -0.5, "the debounce is a finite number of seconds of at least 0, not -0.5"),
    ("registry_interval", float("nan"), "the registry interval is a finite number"),
    ("registry_timeout", float("inf"), "the registry timeout is a finite number"),
])
def test_intervals_that_are_no_number_of_seconds_are_refused_at_once(
        rig: Rig, option: str, value: float, message: str) -> None:
    rig.write(1)
    with pytest.raises(ValueError, match=f"^{message}"):
        rig.kernel(start=False, **{option: value})


def test_no_artifact_and_no_state_fails_to_start(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    with pytest.raises(KernelStartError, match=r"manifest\.json not found"):
        Kernel(tmp_path / "missing", [key.public_key()], tmp_path / "state",
               environment="production").start()


# ---------------------------------------------------------------- metrics and audit

def test_metrics_names_and_values(rig: Rig) -> None:
    registry = CollectorRegistry()
    rig.write(1)
    kernel = rig.kernel(watch=False, metrics=registry)
    value = registry.get_sample_value
    assert value("magcfg_config_last_reload_successful") == 1
    assert value("magcfg_config_info", {"env": "production", "version": "1"}) == 1
    assert (value("magcfg_config_last_reload_success_timestamp_seconds") or 0) > 0
    rig.write(2, hot_change(2), key=Ed25519PrivateKey.generate())
    kernel.reload()
    assert value("magcfg_config_last_reload_successful") == 0
    assert value("magcfg_config_reloads_failed_total", {"stage": "verify"}) == 1
    rig.write(3, hot_change(3))
    kernel.reload()
    assert value("magcfg_config_reloads_total") == 3
    assert value("magcfg_config_info", {"env": "production", "version": "3"}) == 1
    assert value("magcfg_config_info", {"env": "production", "version": "1"}) is None
    assert value("magcfg_config_rollbacks_total") == 0


def test_audit_log_has_one_line_per_attempt(rig: Rig) -> None:
    rig.write(1)
    kernel = rig.kernel(watch=False)
    rig.write(2, hot_change(2))
    kernel.reload()
    rig.write(3, hot_change(3), key=Ed25519PrivateKey.generate())
    kernel.reload()
    assert kernel.reload().status == "refused"  # an explicit reload retries and logs again
    lines = [json.loads(line) for line in rig.audit.read_text().splitlines()]
    assert [(e["type"], e["data"].get("version", e["data"].get("attempted_version")))
            for e in lines] == [(LOADED, 1), (RELOADED, 2), (RELOAD_FAILED, None),
                                (RELOAD_FAILED, None)]  # an unverified version is not reported


# ---------------------------------------------------------------- secrets

def test_canary_secrets_never_appear_in_events_or_logs(rig: Rig,
                                                       caplog: pytest.LogCaptureFixture,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # The value the Deployment injects for magds.password (External Secrets delivery).
    monkeypatch.setenv("MAGCFG_MAGDS_PASSWORD", CANARY + "-env")
    rig.write(1)
    kernel = rig.kernel(watch=False)
    assert kernel.secret("magds.password") == CANARY + "-env"
    assert kernel.check_env().ok
    with pytest.raises(KeyError, match="not hold a secret reference"):
        kernel.secret("magds.host")
    leaking = base_config(2)
    # A literal where a secret belongs (schema-marked key), a credential-named key and a
    # secret reference: all three change, none may be shown.
    leaking["magds"]["password"] = CANARY
    leaking["features"]["api_token"] = CANARY + "-2"
    leaking["features"]["upstream"] = f"vault://secret/k3s/magds#{CANARY}-3"
    rig.write(2, leaking, extra_manifest={"hot_keys": ["features", "magds"],
                                          "restart_keys": []})
    result = kernel.reload()
    assert result.status == "applied"
    changes = {c["key"]: c for c in result.event["data"]["changes"]}  # type: ignore[index]
    assert changes["magds.password"]["new"] == "<redacted>"
    assert changes["features.api_token"]["new"] == "<redacted>"
    assert changes["features.upstream"]["new"] == "<redacted>"
    leaking["magds"]["port"] = "not-a-port"

    def reject(event: dict[str, Any]) -> None:
        raise ConfigRejected(f"cannot use {kernel.get('magds.password')}")

    kernel.subscribe(RELOADED, reject)
    leaking["features"]["counter"] = 3
    rig.write(3, leaking, extra_manifest={"hot_keys": ["features", "magds"],
                                          "restart_keys": []})
    assert kernel.reload().reason == "subscriber_rejected"
    said = rig.everything_said() + caplog.text
    assert CANARY not in said and "<redacted>" in said



def test_a_value_the_served_manifest_keeps_secret_stays_masked_when_the_next_drops_it(
        rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    # Version 1 declares two literal values secret (a project's redact globs); later
    # versions remove the keys together with their declarations, as a change that
    # drops a setting from the schema and the layers does.
    served = base_config(1)
    served["features"]["license"] = CANARY
    served["magds"]["license"] = CANARY + "-restart"
    declared = [*SECRET_KEYS, "features.license", "magds.license"]
    rig.write(1, served, extra_manifest={"secret_keys": declared})
    kernel = rig.kernel(watch=False)
    without_restart_secret = base_config(2)  # magds is a restart key
    without_restart_secret["features"]["license"] = CANARY
    rig.write(2, without_restart_secret,
              extra_manifest={"secret_keys": [*SECRET_KEYS, "features.license"]})
    held = kernel.reload()
    assert held.reason == "restart_required" and held.event is not None
    assert [c["key"] for c in held.event["data"]["changes"]] == ["features.counter",
                                                                 "magds.license"]

    def reject(event: dict[str, Any]) -> None:
        raise ConfigRejected(f"will not drop the license {kernel.get('features.license')}")

    unsubscribe = kernel.subscribe(RELOADED, reject)
    dropped = base_config(3)
    dropped["magds"]["license"] = CANARY + "-restart"
    rig.write(3, dropped, extra_manifest={"secret_keys": [*SECRET_KEYS, "magds.license"]})
    assert kernel.reload().reason == "subscriber_rejected"
    unsubscribe()
    applied = kernel.reload()
    assert applied.status == "applied" and applied.event is not None
    changes = {c["key"]: c for c in applied.event["data"]["changes"]}
    assert changes["features.license"] == {"key": "features.license", "policy": "hot",
                                           "old": "<redacted>"}
    said = rig.everything_said() + caplog.text + json.dumps(kernel.status())
    assert CANARY not in said and "<redacted>" in said


# ---------------------------------------------------------------- load

def test_a_thousand_rapid_updates_end_on_the_newest(rig: Rig) -> None:
    rig.write(1)
    kernel = rig.kernel(audit_log=None)
    for version in range(2, 1001):
        rig.write(version, hot_change(version, "debug" if version % 2 else "info"))
    # The swap comes before the subscribers: wait for the event, then look.
    assert wait_for(lambda: [e["data"]["version"] for e in rig.of_type(RELOADED)][-1:] == [1000],
                    timeout=60)
    assert kernel.version == 1000 and kernel.get("features.counter") == 1000
    assert kernel.status()["last_error"] is None
    # Debouncing applied fewer than 999 versions, and never went backwards.
    applied = [e["data"]["version"] for e in rig.of_type(RELOADED)]
    assert applied == sorted(applied) and len(applied) <= 999


def test_readers_never_see_a_torn_or_mixed_snapshot(rig: Rig) -> None:
    def consistent(version: int) -> dict[str, Any]:
        config = hot_change(version, "debug" if version % 2 else "info")
        config["maggate"]["rate_limits"]["per_second"] = version  # hot, tied to the version
        return config

    rig.write(1, consistent(1))
    kernel = rig.kernel(audit_log=None, debounce=0.0)
    stop = threading.Event()
    problems: list[str] = []
    reads = [0]

    def reader() -> None:
        while not stop.is_set():
            snap = kernel.snapshot
            config = snap.config
            counter = config["features"]["counter"]
            if not (counter == config["maggate"]["rate_limits"]["per_second"]
                    == snap.version == snap.get("features.counter")):
                problems.append(f"mixed snapshot at {snap.version}")
            level = kernel.get("logging.level")
            if level not in ("debug", "info"):
                problems.append(f"torn value {level!r}")
            reads[0] += 1
            if reads[0] % 200 == 0:
                time.sleep(0)  # let the writer and the watcher have the GIL now and then

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for version in range(2, 121):
            rig.write(version, consistent(version))
        assert wait_for(lambda: kernel.version == 120, timeout=30)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert problems == [] and reads[0] > 0
    assert wait_for(lambda: len(rig.of_type(RELOADED)) >= 1)


def test_runtime_imports_nothing_heavy() -> None:
    code = ("import sys, magcfg.runtime; heavy = {'typer', 'deepdiff', 'git', 'jsonschema', "
            "'jsonschema_rs', 'yaml', 'ruamel', 'prometheus_client', 'click'}; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": str(REPO / "compiler")})
    assert out.stdout.strip() == "[]"


# What loading, verifying and watching a config need, imported by the first Kernel:
# every service pays what importing the runtime imports at its start.
DEFERRED_TO_THE_FIRST_KERNEL = (
    "cryptography", "orjson", "json", "hashlib", "base64", "pathlib", "threading",
    "typing", "dataclasses", "inspect", "re", "contextlib", "urllib", "ctypes",
    "magcfg.artifact", "magcfg.durable", "magcfg.heap", "magcfg.secrets", "magcfg.signing",
    "magcfg.runtime.policy", "magcfg.runtime.source", "magcfg.runtime.state",
    "magcfg.runtime.watcher")
# What a start that goes well does not need at all: logging (a message to log), html
# (masking a secret's encoded forms), difflib (a "did you mean" hint), the registry
# modules (an oci:// source) and cryptography's PEM loaders (a key in another form).
NOT_BY_A_FIRST_START = ("logging", "html", "difflib", "magcfg.oci",
                        "cryptography.hazmat.primitives.serialization")


def _loaded(names: tuple[str, ...]) -> str:
    """Python printing which of ``names`` (packages with their modules) are imported
    (a module set to None, as a test blocks one, is not)."""
    return (f"print(sorted(n for n in {names!r} if any((m == n or m.startswith(n + '.')) "
            "and sys.modules[m] is not None for m in list(sys.modules))))\n")


def test_importing_the_runtime_leaves_what_loading_needs_to_the_first_kernel() -> None:
    names = [n for n in magcfg.runtime.__all__ if n not in ("Event", "Validator")]
    code = ("import sys\n"
            f"from magcfg.runtime import {', '.join(names)}\n"
            # copy: when the first event is delivered to a subscriber (its own copy).
            + _loaded(DEFERRED_TO_THE_FIRST_KERNEL + NOT_BY_A_FIRST_START + ("copy",))
            + "print(sorted(m for m in sys.modules if m.startswith('magcfg')))\n"
            # The type aliases (typing's Any) when asked for, and the same as mypy's.
            "from magcfg.runtime import Event, Validator\n"
            "print(Event, 'typing' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, env={**os.environ, "PYTHONPATH": str(REPO / "compiler")})
    loaded, ours, aliases = done.stdout.splitlines()
    assert loaded == "[]"
    assert ours == str(["magcfg", "magcfg.errors", "magcfg.keyglob", "magcfg.record",
                        "magcfg.runtime", "magcfg.runtime.events", "magcfg.runtime.kernel",
                        "magcfg.runtime.snapshot", "magcfg.version"])
    assert aliases == "dict[str, typing.Any] True"


# orjson imports dataclasses (with inspect) itself; magcfg's own classes need neither.
_ORJSONS = ("orjson", "dataclasses", "inspect")


@pytest.mark.parametrize("orjson", [True, False], ids=["orjson", "runtime-only install"])
def test_the_first_start_imports_what_loading_needs_and_no_more(rig: Rig, orjson: bool) -> None:
    """The lists above name modules a start does use, and some it does not. Without
    orjson (``pip install magcfg``: cryptography alone) it parses with json."""
    rig.write(1)
    public = rig.root / "magcfg.pub"
    public.write_bytes(public_key_pem(rig.key.public_key()))
    used = DEFERRED_TO_THE_FIRST_KERNEL if orjson else tuple(
        n for n in DEFERRED_TO_THE_FIRST_KERNEL if n not in _ORJSONS)
    unused = NOT_BY_A_FIRST_START + (() if orjson else _ORJSONS)
    code = ("import sys\n"
            + ("" if orjson else "sys.modules['orjson'] = None\n")
            + "from magcfg.runtime import Kernel\n"
            f"kernel = Kernel({str(rig.art)!r}, [{str(public)!r}], {str(rig.state)!r}, "
            f"audit_log={str(rig.audit)!r}, environment='production').start()\n"
            "assert kernel.get('logging.level') == 'info'\n"
            "kernel.stop()\n"
            + _loaded(used) + _loaded(unused))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, env={**os.environ, "PYTHONPATH": str(REPO / "compiler")})
    loaded, unneeded = done.stdout.splitlines()
    assert loaded == str(sorted(used))
    assert unneeded == "[]"

# Members in the compiler's layout (one per line): each is parsed on its own, then the
# whole document where a piece fails.
_DISAGREED_ON = {
    "nan": (b'  "magds": {"port": NaN}', "line 3, column 21: NaN is not JSON"),
    "1e400": (b'  "magds": {"port": 1e400}', "line 3, column 21: a number beyond the range "
              "of a double is not JSON (JSON readers disagree on its value)"),
    "wide": (b'  "magds": {"port": -9223372036854775809}', "line 3, column 21: an integer "
             "beyond 64 bits (signed) is refused (JSON readers disagree on its value)"),
    "twice": (b'  "magds": {"port": 1, "port": 2}', "line 3, column 12: the key 'port' "
              "appears twice in one object (JSON readers disagree on which one counts)"),
    "twice at the top": (b'  "magds": 1,\n  "magds": 2', "line 1, column 1: the key 'magds' "
                         "appears twice in one object (JSON readers disagree on which one "
                         "counts)"),
    "int64": (b'  "magds": {"port": 9223372036854775807}', None),
}


@pytest.mark.parametrize("orjson", [True, False], ids=["orjson", "runtime-only install"])
def test_a_signed_config_json_readers_disagree_on_is_refused_with_or_without_orjson(
        tmp_path: Path, orjson: bool) -> None:
    """A signed config.json that json and orjson would read differently (json took NaN,
    1e400 and a wide integer, orjson a wide integer as a float) is refused at start as
    at a reload, naming the file and what it holds, whatever is installed; an integer
    within 64 bits is served exact."""
    key = Ed25519PrivateKey.generate()
    public = tmp_path / "magcfg.pub"
    public.write_bytes(public_key_pem(key.public_key()))
    for name, (member, _) in _DISAGREED_ON.items():
        body = b'{\n  "logging": {"level": "info"},\n' + member + b'\n}\n'
        KubeletWriter(tmp_path / name).write(artifact_files({}, 1, key, config_bytes=body))
    code = ("import sys\n"
            + ("" if orjson else "sys.modules['orjson'] = None\n")
            + "from magcfg.runtime import Kernel\n"
            "from magcfg.runtime.kernel import KernelStartError\n"
            f"for name in {list(_DISAGREED_ON)!r}:\n"
            f"    artifact = {str(tmp_path)!r} + '/' + name\n"
            "    try:\n"
            f"        kernel = Kernel(artifact, [{str(public)!r}], environment='production',\n"
            "                        watch=False).start()\n"
            "    except KernelStartError as exc:\n"
            "        print(exc.format())\n"
            "    else:\n"
            "        print(repr(kernel.get('magds.port')))\n"
            "        kernel.stop()\n"
            "assert (sys.modules.get('orjson') is not None) is " + str(orjson) + "\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, env={**os.environ, "PYTHONPATH": str(REPO / "compiler")})
    expected = [repr(2**63 - 1) if message is None else
                f"error: {tmp_path / name}: cannot load the config (invalid: "
                f"{tmp_path / name}/..data/config.json: {message}) and there is no last "
                "known-good state (no state_dir given)"
                for name, (_, message) in _DISAGREED_ON.items()]
    assert done.stdout.splitlines() == expected


def test_results_and_snapshots_are_immutable_values(rig: Rig) -> None:
    rig.write(1)
    kernel = rig.kernel(watch=False)
    result = kernel.reload()
    assert result == ReloadResult("unchanged", 1) == ReloadResult("unchanged", 1, None, None)
    assert result != ReloadResult("unchanged", 2) and hash(result) == hash(
        ReloadResult("unchanged", 1))
    assert repr(result) == "ReloadResult(status='unchanged', version=1, reason=None, event=None)"
    snapshot = kernel.snapshot
    for thing in (result, snapshot):
        with pytest.raises(AttributeError):
            thing.version = 3  # type: ignore[misc]
        with pytest.raises(AttributeError):
            del thing.source  # type: ignore[union-attr]
    assert kernel.get("logging.level") == "info"
    named = snapshot.with_source("last_known_good")
    assert (named.source, snapshot.source) == ("last_known_good", "artifact")
    assert named.config is snapshot.config and named._memo is snapshot._memo
    assert named != snapshot and snapshot == snapshot  # the same object only
    assert repr(snapshot).startswith("Snapshot(config=mappingproxy(")
    assert "_memo" not in repr(snapshot) and "source='artifact'" in repr(snapshot)
    for copied in (copy.copy(result), copy.deepcopy(result), pickle.loads(pickle.dumps(result))):
        assert copied == result
    shallow = copy.copy(snapshot)
    assert shallow.config is snapshot.config and shallow.source == snapshot.source


def test_one_registry_per_kernel_and_no_restart_after_stop(rig: Rig) -> None:
    registry = CollectorRegistry()
    rig.write(1)
    kernel = rig.kernel(watch=False, metrics=registry)
    with pytest.raises(RuntimeError, match="its own registry"):
        rig.kernel(watch=False, metrics=registry)
    kernel.stop()
    assert kernel.get("logging.level") == "info"  # still readable after stop
    with pytest.raises(RuntimeError, match="cannot be started again"):
        kernel.start()


def test_a_stop_while_starting_leaves_no_watcher_running(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """stop() on another thread does not wait for start(): a start past its reading
    started the watcher after stop() had returned, a thread nothing would ever end."""
    rig.write(1)
    registry = CollectorRegistry()
    kernel = rig.kernel(start=False, metrics=registry)
    persist = Kernel._persist
    reading, stopped = threading.Event(), threading.Event()

    def persisting(self: Kernel, snapshot: Any) -> None:
        reading.set()
        stopped.wait(10)
        persist(self, snapshot)

    monkeypatch.setattr(Kernel, "_persist", persisting)
    raised: list[BaseException] = []

    def start() -> None:
        try:
            kernel.start()
        except KernelStartError as exc:
            raised.append(exc)

    starting = threading.Thread(target=start)
    starting.start()
    assert reading.wait(10)
    kernel.stop()
    stopped.set()
    starting.join(10)
    assert not starting.is_alive()
    assert [str(e).endswith(f"{rig.art}: stopped while starting") for e in raised] == [True]
    assert not [t for t in threading.enumerate() if t.name == "magcfg-watch"]
    assert kernel.status()["watch"] is None
    assert registry.get_sample_value("magcfg_config_watching") == 0


def test_only_real_content_changes_are_acted_on(rig: Rig) -> None:
    files = rig.write(1)
    kernel = rig.kernel()
    before = len(rig.events)
    rig.writer.write(files)  # a new ..data target with the same bytes
    for name in files:
        os.utime(rig.art / name)
    rig.write(2, hot_change(2))
    assert wait_for(lambda: bool(rig.of_type(RELOADED)))
    assert [e["type"] for e in rig.events[before:]] == [RELOADED]
    assert kernel.version == 2


def test_a_subscriber_may_stop_the_kernel(rig: Rig) -> None:
    rig.write(1)
    kernel = rig.kernel()
    kernel.subscribe(RELOADED, lambda e: kernel.stop())
    rig.write(2, hot_change(2))
    assert wait_for(lambda: bool(rig.of_type(RELOADED)))
    assert wait_for(lambda: kernel.status()["watch"] is None)
    assert kernel.version == 2 and kernel.get("logging.level") == "debug"


def test_a_subscriber_that_never_returns_does_not_hold_stop(
        rig: Rig, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """stop() joined the watcher's thread with no limit: a subscriber that hangs there
    hung stop(), and with it the sidecar's SIGTERM."""
    rig.write(1)
    kernel = rig.kernel()
    entered, release = threading.Event(), threading.Event()
    done: list[int] = []

    def hanging(event: dict[str, Any]) -> None:
        entered.set()
        release.wait(60)
        done.append(event["data"]["version"])

    kernel.subscribe(RELOADED, hanging)
    rig.write(2, hot_change(2))
    try:
        assert entered.wait(30)
        monkeypatch.setattr(kernel_module, "STOP_TIMEOUT", 0.2)
        stopping = threading.Thread(target=kernel.stop)
        stopping.start()
        stopping.join(10)
        assert not stopping.is_alive()
        assert kernel.status()["watch"] is None
        assert "still in a callback after 0.2 s" in caplog.text
    finally:
        release.set()
    watching = [t for t in threading.enumerate() if t.name == "magcfg-watch"]
    assert wait_for(lambda: not any(t.is_alive() for t in watching))
    assert done == [2]


def test_undelivered_secrets_are_reported_by_name(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MAGCFG_MAGDS_PASSWORD", raising=False)
    rig.write(1)
    kernel = rig.kernel(watch=False)
    assert kernel.secret("magds.password") is None
    check = kernel.check_env()
    assert not check.ok and check.missing_names == ["MAGCFG_MAGDS_PASSWORD"]
    # A service that reads other keys is not asked for magds's secret (its pod is given
    # its own app's Secret alone); a glob that covers no key is a mistake, said so.
    assert kernel.check_env(keys=["maggate"]).ok
    assert not kernel.check_env(keys=["magds.*"]).ok
    with pytest.raises(UsageError, match="--key magsd: covers no key of "):
        kernel.check_env(keys=["magsd"])


def _constrained(rig: Rig, constraints: bytes) -> dict[str, bytes]:
    """Version 1 with ``value-constraints.json`` listed in its signed manifest."""
    body = (json.dumps(base_config(1), indent=2, sort_keys=True) + "\n").encode()
    files = artifact_files(base_config(1), 1, rig.key, extra_manifest={"files": {
        "config.json": digest(body), "value-constraints.json": digest(constraints)}})
    return {**files, "value-constraints.json": constraints}


def test_secret_values_are_checked_against_the_artifacts_constraints(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    constraints = b'{"format": 1, "keys": {"magds.password": {"minLength": 32}}}\n'
    rig.writer.write(_constrained(rig, constraints))
    kernel = rig.kernel(watch=False)
    monkeypatch.setenv("MAGCFG_MAGDS_PASSWORD", CANARY)  # 25 characters: too short
    check = kernel.check_env()
    assert not check.ok and check.missing_names == []
    assert [(r.name, r.key, r.failed) for r in check.invalid] == [
        ("MAGCFG_MAGDS_PASSWORD", "magds.password",
         (("minLength", "shorter than minLength 32"),))]
    assert CANARY not in json.dumps(check.as_json()) + rig.everything_said()
    monkeypatch.setenv("MAGCFG_MAGDS_PASSWORD", CANARY + "-long-enough")
    assert kernel.check_env().ok


def test_tampered_constraints_are_refused_by_the_kernel(rig: Rig) -> None:
    good = b'{"format": 1, "keys": {"magds.password": {"minLength": 32}}}\n'
    files = _constrained(rig, good)
    files["value-constraints.json"] = good.replace(b"32", b"1 ")
    rig.writer.write(files)
    with pytest.raises(KernelStartError) as info:
        rig.kernel(watch=False)
    assert "value-constraints.json" in info.value.format()


def test_a_replaced_artifact_directory_is_found_again(rig: Rig) -> None:
    rig.write(1)
    kernel = rig.kernel(poll_interval=0.05)
    old = rig.art.rename(rig.root / "old-volume")
    assert wait_for(lambda: kernel.status()["last_error"] is not None)
    assert kernel.status()["last_error"]["reason"] == "missing_file" and kernel.version == 1
    fresh = KubeletWriter(rig.root / "staging-volume")
    fresh.write(artifact_files(hot_change(2), 2, rig.key))
    (rig.root / "staging-volume").rename(rig.art)
    assert wait_for(lambda: kernel.version == 2)
    assert old.exists()


# ---------------------------------------------------------------- identity and hostile input

def test_another_environments_artifact_is_refused_without_state(rig: Rig) -> None:
    rig.write(1, env="staging")  # validly signed by the trusted key, for staging
    with pytest.raises(KernelStartError) as info:
        rig.kernel()
    assert info.value.format() == (
        f"error: {rig.art}: cannot load the config (environment_mismatch: {rig.art}/..data/manifest.json: "
        "is for environment 'staging', not 'production': another environment's "
        f"artifact) and there is no last known-good state in {rig.state}")
    assert not (rig.state / STATE_FILE).exists()


def test_another_environments_artifact_is_refused_after_start(rig: Rig) -> None:
    rig.write(1)
    kernel = rig.kernel(watch=False)
    rig.write(2, hot_change(2), env="staging")
    data = _refusal(rig, kernel)
    assert (data["stage"], data["reason"]) == ("verify", "environment_mismatch")
    assert data["attempted_version"] is None


def test_another_environments_saved_state_is_not_trusted(rig: Rig) -> None:
    rig.write(5, env="staging")
    rig.kernel(environment="staging").stop()  # leaves staging's version 5 as state
    rig.write(1)
    kernel = rig.kernel()
    assert kernel.version == 1 and kernel.booted_from == "artifact"
    corrupt = rig.of_type(STATE_CORRUPT)[-1]["data"]
    assert "environment_mismatch" in corrupt["error"]
    assert "is for environment 'staging', not 'production'" in corrupt["error"]


def test_the_environment_must_be_a_name(rig: Rig) -> None:
    with pytest.raises(ValueError, match="is not an environment name"):
        Kernel(rig.art, [rig.key.public_key()], environment="../production")


def test_a_signed_huge_version_is_refused_and_blocks_nothing(rig: Rig) -> None:
    rig.write(1)
    kernel = rig.kernel(watch=False)
    rig.write(10**30, hot_change(2))
    data = _refusal(rig, kernel)
    assert (data["stage"], data["reason"]) == ("verify", "malformed_manifest")
    assert data["error"] == (f"{rig.art}/..data/manifest.json: version: must be from 1 to "
                             "9007199254740991, not a 31-digit number")
    rig.write(2, hot_change(2))
    assert kernel.reload().status == "applied" and kernel.version == 2
    kernel.stop()
    assert rig.kernel(watch=False).version == 2  # the state holds no poisoned version


def test_a_served_file_changed_through_another_hard_link_changes_nothing_served(
        rig: Rig) -> None:
    """A build hard-links an unchanged config.json of 1 MiB or more into the new version
    (durable.MIN_LINKED_BYTES): the served file shares its inode with the old version's
    name, which a writer may change in place, at the size it had, its mtime put back.
    The kernel serves the bytes it read and verified once, never the file again: what
    it serves stays, and the file as it now stands is refused."""
    plain = rig.root / "plain"
    files = artifact_files(base_config(1), 1, rig.key)
    rename_write(plain, files)
    old = rig.root / "old-version"
    old.mkdir()
    os.link(plain / "config.json", old / "config.json")
    kernel = Kernel(plain, [rig.key.public_key()], watch=False, environment="production")
    rig.kernels.append(kernel.start())
    served = kernel.snapshot.files["config.json"]
    before = os.stat(plain / "config.json")
    with open(old / "config.json", "r+b") as writer:  # in place: the inode both names hold
        writer.write(files["config.json"].replace(b'"info"', b'"warn"'))
    os.utime(plain / "config.json", ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (plain / "config.json").read_bytes() != served
    assert kernel.get("logging.level") == "info" and kernel.snapshot.files["config.json"] == served
    result = kernel.reload()
    assert (result.status, result.reason) == ("refused", "digest_mismatch")
    assert kernel.get("logging.level") == "info" and kernel.version == 1


@pytest.mark.parametrize("name", ["manifest.json.sig", "manifest.json", "config.json"])
def test_a_fifo_never_blocks_a_reload(rig: Rig, name: str) -> None:
    plain = rig.root / "plain"
    rename_write(plain, artifact_files(base_config(1), 1, rig.key))
    kernel = Kernel(plain, [rig.key.public_key()], watch=False, environment="production")
    rig.kernels.append(kernel.start())
    rename_write(plain, artifact_files(hot_change(2), 2, rig.key))
    (plain / name).unlink()
    os.mkfifo(plain / name)
    results: list[Any] = []
    worker = threading.Thread(target=lambda: results.append(kernel.reload()), daemon=True)
    worker.start()
    worker.join(30)
    assert results, "reload() blocked on a FIFO"
    result = results[0]
    assert (result.status, result.reason) == ("refused", "unreadable_file")
    error = result.event["data"]["error"]
    assert error.startswith(f"{plain}/{name}: ") and error.endswith(
        "is a FIFO, not a regular file")
    assert kernel.version == 1


def test_a_fifo_in_place_of_the_state_file_is_not_waited_on(rig: Rig) -> None:
    rig.write(1)
    rig.state.mkdir()
    os.mkfifo(rig.state / STATE_FILE)
    kernel = rig.kernel(watch=False)
    assert kernel.version == 1 and kernel.booted_from == "artifact"
    assert rig.of_type(STATE_CORRUPT)[-1]["data"]["error"] == (
        f"{rig.state / STATE_FILE}: cannot read: is a FIFO, not a regular file")


def test_secret_keys_with_dots_are_redacted_in_restart_events(rig: Rig) -> None:
    config = base_config(1)
    config["apps"] = {"eu.west": {"dsn": CANARY + "-eu-1"}, "plain": {"dsn": CANARY + "-pl-1"}}
    secret = {"secret_keys": ["apps.*.dsn"]}
    rig.write(1, config, extra_manifest=secret)
    kernel = rig.kernel(watch=False)
    assert kernel.get("apps.eu\\.west.dsn") == CANARY + "-eu-1"
    assert kernel.get(("apps", "eu.west", "dsn")) == CANARY + "-eu-1"
    changed = base_config(2)
    changed["apps"] = {"eu.west": {"dsn": CANARY + "-eu-2"}, "plain": {"dsn": CANARY + "-pl-2"}}
    rig.write(2, changed, extra_manifest=secret)
    data = _refusal(rig, kernel)
    assert data["reason"] == "restart_required"
    shown = {c["key"]: c for c in data["changes"]}
    assert shown["apps.eu\\.west.dsn"] == {"key": "apps.eu\\.west.dsn", "policy": "restart",
                                           "old": "<redacted>", "new": "<redacted>"}
    assert shown["apps.plain.dsn"]["old"] == shown["apps.plain.dsn"]["new"] == "<redacted>"
    assert "apps.eu\\.west.dsn" in data["restart_keys"]
    assert CANARY not in rig.everything_said()


def test_values_handed_out_are_kept_to_mask_only_the_most_recent(rig: Rig) -> None:
    # A secret that changes at every read (a lease of seconds): each value is kept to
    # mask, and every event is masked with all of them, for the life of the process.
    rig.write(1)
    kernel = rig.kernel(watch=False)
    for i in range(3 * MAX_HANDED_OUT):
        assert kernel.secret("magds.password",
                             {"MAGCFG_MAGDS_PASSWORD": f"{CANARY}-{i:05d}"}) is not None
    assert len(kernel._handed_texts()) == MAX_HANDED_OUT
    latest = f"{CANARY}-{3 * MAX_HANDED_OUT - 1:05d}"

    def quotes(config: Any) -> None:
        raise ValueError(f"login refused for password {latest}")

    kernel.validators.append(quotes)
    rig.write(2, hot_change(2))
    refused = kernel.reload()
    assert refused.event is not None
    assert refused.event["data"]["error"].endswith("quotes: login refused for password "
                                                   "<redacted>")


def test_delivered_secret_values_are_masked_everywhere(rig: Rig,
                                                       caplog: pytest.LogCaptureFixture,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAGCFG_MAGDS_PASSWORD", CANARY + "-delivered")
    monkeypatch.setenv("UPSTREAM_TOKEN", CANARY + "-env-ref")
    rig.write(1)
    kernel = rig.kernel(watch=False)

    def can_connect(config: Any) -> None:
        password = kernel.secret("magds.password")
        raise ValueError(f"login refused for password {password} "
                         f"(token {os.environ['UPSTREAM_TOKEN']})")

    kernel.validators.append(can_connect)
    config = hot_change(2)
    config["features"]["upstream"] = "env://UPSTREAM_TOKEN"
    rig.write(2, config)
    result = kernel.reload()
    assert result.status == "refused" and result.event is not None
    error = result.event["data"]["error"]
    assert error == (f"{rig.art}/..data/config.json: can_connect: login refused for password "
                     "<redacted> (token <redacted>)")
    assert kernel.status()["last_error"]["error"] == error
    said = rig.everything_said() + caplog.text + json.dumps(kernel.status())
    assert CANARY not in said and "<redacted>" in said


@pytest.mark.parametrize("exit_type", [SystemExit, KeyboardInterrupt, GeneratorExit])
def test_a_subscriber_cannot_kill_the_watcher(rig: Rig, exit_type: type[BaseException],
                                              caplog: pytest.LogCaptureFixture) -> None:
    rig.write(1)
    kernel = rig.kernel()

    def leaves(event: dict[str, Any]) -> None:
        raise exit_type(3)

    kernel.subscribe(RELOADED, leaves)
    for version in (2, 3):
        rig.write(version, hot_change(version, ["debug", "warn"][version % 2]))
        assert wait_for(lambda v=version: kernel.version == v), "a later deploy was not applied"
    # The version is live before subscribers hear of it: wait for the second failure.
    assert wait_for(lambda: kernel.status()["subscriber_failures"] == 2)
    status = kernel.status()
    assert (status["watch"], status["watch_error"]) == ("inotify", None)
    assert exit_type.__name__ in caplog.text


def test_a_validator_raising_system_exit_refuses_without_killing_the_watcher(rig: Rig) -> None:
    def leaves(config: Any) -> None:
        if config["logging"]["level"] == "debug":
            raise SystemExit(2)

    rig.write(1)
    kernel = rig.kernel(validators=[leaves])
    rig.write(2, hot_change(2))
    assert wait_for(lambda: bool(rig.of_type(RELOAD_FAILED)))
    assert rig.of_type(RELOAD_FAILED)[-1]["data"]["error"] == (
        f"{rig.art}/..data/config.json: leaves: SystemExit")
    rig.write(3, hot_change(3, "warn"))
    assert wait_for(lambda: kernel.version == 3)


def test_ctrl_c_in_a_subscriber_on_the_main_thread_reaches_the_caller(rig: Rig) -> None:
    rig.write(1)
    kernel = rig.kernel(watch=False)

    def interrupted(event: dict[str, Any]) -> None:
        raise KeyboardInterrupt

    unsubscribe = kernel.subscribe(RELOADED, interrupted)
    rig.write(2, hot_change(2))
    with pytest.raises(KeyboardInterrupt):
        kernel.reload()
    assert kernel.version == 1  # not applied: the previous snapshot is served
    # The subscribers that heard of version 2 hear that it is gone.
    failed = rig.of_type(RELOAD_FAILED)[-1]["data"]
    assert (failed["stage"], failed["reason"], failed["attempted_version"],
            failed["active_version"], failed["rolled_back"]) == (
        "internal", "internal_error", 2, 1, True)
    assert failed["error"] == (f"{rig.art}/..data: the attempt failed unexpectedly "
                               "(KeyboardInterrupt)")
    unsubscribe()
    assert kernel.reload().status == "applied" and kernel.version == 2


# Run in a process of its own: the address-space limit that makes reading the deploy
# fail for real would hold pytest's too.
_OUT_OF_MEMORY = """
import json, resource, sys, time
from pathlib import Path
from magcfg.runtime import Kernel
from magcfg.signing.keys import load_public_key

art, public = Path(sys.argv[1]), load_public_key(sys.argv[2])
events = []
kernel = Kernel(art, [public], environment="production", watch=False)
kernel.subscribe("*", lambda event: events.append(event))
kernel.start()
Path(sys.argv[3]).write_text("started")  # the deploy is written now
while not (art / "deployed").exists():
    time.sleep(0.01)
soft, hard = resource.getrlimit(resource.RLIMIT_AS)
used = int(Path("/proc/self/statm").read_text().split()[0]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_AS, (used + 64 * 2**20, hard))
try:
    kernel.reload()
except MemoryError:
    raised = True
else:
    raised = False
resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
kernel._on_change("watch")  # what the watcher does at the next change it sees
kernel.stop()
print(json.dumps({"raised": raised, "version": kernel.version,
                  "events": [[e["type"].rsplit(".", 1)[1], e["data"]] for e in events[1:]]}))
"""


_START_OUT_OF_MEMORY = """
import json, resource, sys
from pathlib import Path
import magcfg.runtime.kernel, magcfg.runtime.policy, magcfg.runtime.source
import magcfg.runtime.state, magcfg.signing.signatures, magcfg.heap
from magcfg.runtime import Kernel
from magcfg.runtime.kernel import KernelStartError
from magcfg.signing.keys import load_public_key

art, public, state = Path(sys.argv[1]), load_public_key(sys.argv[2]), Path(sys.argv[3])
soft, hard = resource.getrlimit(resource.RLIMIT_AS)
used = int(Path("/proc/self/statm").read_text().split()[0]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_AS, (used + 64 * 2**20, hard))
for state_dir in (state, None):
    events = []
    kernel = Kernel(art, [public], state_dir, environment="production", watch=False)
    kernel.subscribe("*", lambda event: events.append(event))
    try:
        kernel.start()
    except KernelStartError as exc:
        said = exc.format()
    else:
        said = [kernel.booted_from, kernel.version]
        kernel.stop()
    print(json.dumps([said, [[e["type"].rsplit(".", 1)[1], e["data"]] for e in events]]))
"""


def _started_out_of_memory(rig: Rig) -> list[Any]:
    """What ``_START_OUT_OF_MEMORY`` says of starting ``rig``'s kernel, with its state
    and without, each line parsed."""
    done = subprocess.run(
        [sys.executable, "-c", _START_OUT_OF_MEMORY, str(rig.art),
         str(rig.root / "magcfg.pub"), str(rig.state)],
        env={**os.environ, "PYTHONPATH": str(REPO / "compiler")}, capture_output=True,
        text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_a_deploy_too_large_for_the_memory_left_at_start_is_refused_as_any(
        rig: Rig) -> None:
    """A MemoryError reading the deploy at start went out of Kernel.start (magcfg watch:
    a traceback): refused like any deploy, the last known-good is served, or start says
    it cannot."""
    rig.write(1)
    rig.kernel(watch=False).stop()  # version 1 is the last known-good
    (rig.root / "magcfg.pub").write_bytes(public_key_pem(rig.key.public_key()))
    large = hot_change(2)
    large["features"]["blob"] = [[i] for i in range(800_000)]
    rig.write(2, large)  # ~10 MB of JSON: more than 64 MB read into objects
    with_state, without = _started_out_of_memory(rig)
    error = f"{rig.art}/..data: the attempt failed unexpectedly (MemoryError)"
    assert with_state[0] == ["last_known_good", 1]
    (kind, failed), (then, loaded) = with_state[1]
    assert (kind, failed["stage"], failed["reason"], failed["error"], failed["trigger"]) == (
        "reload_failed", "internal", "internal_error", error, "start")
    assert (then, loaded["source"], loaded["version"]) == ("loaded", "last_known_good", 1)
    assert without[0] == (f"error: {rig.art}: cannot load the config (internal_error: "
                          f"{error}) and there is no last known-good state (no state_dir "
                          "given)")


def test_a_saved_state_too_large_for_the_memory_left_at_start_is_unusable_as_a_corrupt_one(
        rig: Rig) -> None:
    """A MemoryError reading the last known-good at start went out of Kernel.start
    (magcfg watch: a traceback): the state is unusable, as a corrupt one is, and the
    deploy is served, or start says it cannot."""
    large = hot_change(1)
    large["features"]["blob"] = [[i] for i in range(800_000)]
    rig.write(1, large)  # ~10 MB of JSON: more than 64 MB read into objects
    rig.kernel(watch=False).stop()  # the large version 1 is the last known-good
    (rig.root / "magcfg.pub").write_bytes(public_key_pem(rig.key.public_key()))

    unusable = ["state_corrupt", {"state_dir": str(rig.state), "error": (
        f"{rig.state}: the saved artifact is unusable (MemoryError)")}]
    rig.write(2, key=Ed25519PrivateKey.generate())  # signed by no trusted key
    said, events = _started_out_of_memory(rig)[0]
    assert said.startswith(f"error: {rig.art}: cannot load the config (bad_signature: ")
    assert said.endswith(f" and there is no last known-good state in {rig.state}")
    assert events[0] == unusable
    rig.write(2)
    said, events = _started_out_of_memory(rig)[0]
    assert said == ["artifact", 2]
    assert events[0] == unusable
    assert [kind for kind, _ in events[1:]] == ["loaded"]


def test_a_deploy_too_large_for_the_memory_left_is_a_failure_said_and_tried_again(
        rig: Rig) -> None:
    """A MemoryError reading a deploy (a large config in a small pod) went out of the
    attempt with no config.reload_failed, and the content was taken as tried: the
    watcher logged "callback failed" and never tried it again, whatever memory was
    freed since."""
    rig.write(1)
    (rig.root / "magcfg.pub").write_bytes(public_key_pem(rig.key.public_key()))
    started = rig.root / "started"
    proc = subprocess.Popen(
        [sys.executable, "-c", _OUT_OF_MEMORY, str(rig.art), str(rig.root / "magcfg.pub"),
         str(started)], env={**os.environ, "PYTHONPATH": str(REPO / "compiler")},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(started.exists, timeout=60)
        large = hot_change(2)
        large["features"]["blob"] = [[i] for i in range(800_000)]
        rig.write(2, large)  # ~10 MB of JSON: more than 64 MB read into objects
        (rig.art / "deployed").write_text("")
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    done = json.loads(out)
    assert done["raised"] is True  # raised on to the caller, as before
    (kind, failed), (then, applied) = done["events"]
    assert (kind, failed["stage"], failed["reason"], failed["attempted_version"],
            failed["rolled_back"]) == ("reload_failed", "internal", "internal_error", None,
                                       False)
    assert failed["error"] == (f"{rig.art}/..data: the attempt failed unexpectedly "
                               "(MemoryError)")
    assert (then, applied["version"], done["version"]) == ("reloaded", 2, 2)


def test_a_dead_watcher_is_loud(rig: Rig) -> None:
    registry = CollectorRegistry()
    rig.write(1)
    kernel = rig.kernel(metrics=registry)
    assert registry.get_sample_value("magcfg_config_watching") == 1
    watcher = kernel._watcher
    assert watcher is not None and watcher._inotify is not None
    # A real fault on the watcher's descriptor: reading a directory fails (EISDIR).
    directory = os.open(rig.root, os.O_RDONLY)
    try:
        os.dup2(directory, watcher._inotify.fd)
        rig.write(2, hot_change(2))
        assert wait_for(lambda: bool(rig.of_type("io.magflock.magcfg.config.watch_failed")))
    finally:
        os.close(directory)
    failed = rig.of_type("io.magflock.magcfg.config.watch_failed")[0]
    assert failed["subject"] == "production"
    assert failed["data"] == {"artifact_dir": str(rig.art),
                              "error": "IsADirectoryError: [Errno 21] Is a directory",
                              "active_version": kernel.version}
    status = kernel.status()
    assert status["watch"] == "dead"
    assert status["watch_error"] == "IsADirectoryError: [Errno 21] Is a directory"
    assert registry.get_sample_value("magcfg_config_watching") == 0
    assert "io.magflock.magcfg.config.watch_failed" in rig.audit.read_text()
    kernel.stop()  # still stops cleanly


class _Unprintable(BaseException):
    """Not an Exception, and its text cannot be made (a library's broken ``__str__``)."""

    def __str__(self) -> str:
        raise ValueError("no text")


def test_a_watcher_ended_by_an_exception_without_text_is_loud(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = CollectorRegistry()
    rig.write(1)
    kernel = rig.kernel(metrics=registry)

    def ended(self: Kernel, trigger: str, force: bool = False) -> Any:
        raise _Unprintable

    monkeypatch.setattr(Kernel, "_attempt", ended)
    rig.write(2, hot_change(2))
    assert wait_for(lambda: bool(rig.of_type("io.magflock.magcfg.config.watch_failed")))
    failed = rig.of_type("io.magflock.magcfg.config.watch_failed")[0]
    assert failed["data"]["error"] == "_Unprintable"
    status = kernel.status()  # what a health endpoint calls: it must not raise
    assert (status["watch"], status["watch_error"]) == ("dead", "_Unprintable")
    assert registry.get_sample_value("magcfg_config_watching") == 0


def test_what_a_subscriber_changes_in_an_event_reaches_no_record_of_the_kernel(
        rig: Rig) -> None:
    # A subscriber that enriches the event it is given for its own use (a password for
    # a downstream call, another version) must not write into the audit log, the
    # metrics, status() or the caller's result.
    registry = CollectorRegistry()
    rig.write(1)
    kernel = rig.kernel(watch=False, metrics=registry)

    def enriches(event: dict[str, Any]) -> None:
        event["data"]["password"] = CANARY
        event["data"]["version"] = event["data"].get("version", 0) + 1000
        event["data"]["error"] = CANARY
        for change in event["data"].get("changes", ()):
            change["new"] = CANARY

    kernel.subscribe("*", enriches)
    rig.write(2, hot_change(2))
    applied = kernel.reload()
    assert applied.status == "applied" and applied.event is not None
    assert applied.event["data"]["version"] == 2 and "password" not in applied.event["data"]
    rig.write(3, hot_change(3), key=Ed25519PrivateKey.generate())  # refused: bad signature
    refused = kernel.reload()
    assert refused.status == "refused" and refused.event is not None
    assert CANARY not in json.dumps([applied.event, refused.event])
    assert CANARY not in json.dumps(kernel.status())
    assert CANARY not in rig.audit.read_text()
    assert registry.get_sample_value("magcfg_config_info",
                                     {"env": "production", "version": "2"}) == 1


def test_a_data_link_out_of_the_volume_is_refused(rig: Rig) -> None:
    rig.write(1)
    kernel = rig.kernel(watch=False)
    elsewhere = KubeletWriter(rig.root / "elsewhere")
    elsewhere.write(artifact_files(hot_change(2), 2, rig.key))  # validly signed
    target = str(rig.root / "elsewhere" / os.readlink(rig.root / "elsewhere/..data"))
    os.symlink(target, rig.art / "..data_tmp")
    os.replace(rig.art / "..data_tmp", rig.art / "..data")
    data = _refusal(rig, kernel)
    assert (data["stage"], data["reason"]) == ("read", "unreadable_file")
    assert data["error"] == (f"{rig.art}/..data: links to {target!r}, not to a "
                             "'..<version>' directory beside it: a ..data link must stay in "
                             "the artifact directory")


def test_a_catastrophic_pattern_cannot_hang_the_kernels_check_env(tmp_path: Path) -> None:
    """In a child with a time limit: Python's re would take 2^n steps on this value."""
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from magcfg.runtime import Kernel\n"
        "from magcfg.signing.keys import Ed25519PrivateKey\n"
        "from tests.runtime.fixtures import KubeletWriter, artifact_files, base_config, digest\n"
        "key = Ed25519PrivateKey.generate()\n"
        "rules = b'{\"format\": 1, \"keys\": {\"magds.password\": {\"pattern\": \"^(.+)+Z\"}}}'\n"
        "body = (json.dumps(base_config(1), indent=2, sort_keys=True) + '\\n').encode()\n"
        "files = artifact_files(base_config(1), 1, key, extra_manifest={'files': {\n"
        "    'config.json': digest(body), 'value-constraints.json': digest(rules)}})\n"
        "KubeletWriter(Path(sys.argv[1])).write({**files, 'value-constraints.json': rules})\n"
        "kernel = Kernel(Path(sys.argv[1]), [key.public_key()], watch=False,\n"
        "                environment='production').start()\n"
        "check = kernel.check_env({'MAGCFG_MAGDS_PASSWORD': 'a' * 3000})\n"
        "print([(r.name, r.failed) for r in check.invalid])\n")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "art")],
                          capture_output=True, text=True, timeout=60, cwd=REPO, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ("[('MAGCFG_MAGDS_PASSWORD', (('pattern', \"does not match pattern "
                           "'^(.+)+Z'\"),))]\n")


def test_a_policy_only_rebuild_changes_nothing_and_the_next_version_is_judged_by_its_own(
        rig: Rig) -> None:
    """What ``build`` says of a change of reload policy alone (the version stays): the
    running service has nothing to apply, and a later version's changes are judged by
    the policy that version's manifest carries, not by the one running."""
    rig.write(1)
    kernel = rig.kernel(watch=False)
    hot_port = {"hot_keys": [*HOT, "maggate.port"], "restart_keys": ["logging.format", "magds"]}
    rig.write(1, extra_manifest=hot_port)  # same version, same config, another policy
    assert kernel.reload().status == "unchanged" and kernel.version == 1
    config = base_config(2)
    config["maggate"]["port"] = 9443  # restart-only under the running manifest's policy
    rig.write(2, config, extra_manifest=hot_port)
    result = kernel.reload()
    assert (result.status, kernel.version) == ("applied", 2), result
    assert kernel.get("maggate.port") == 9443


@pytest.mark.parametrize("quoted", ["basic", "password", "html", "url", "go json"])
def test_a_secret_a_subscriber_quotes_encoded_is_masked(
        rig: Rig, monkeypatch: pytest.MonkeyPatch, quoted: str) -> None:
    """A subscriber's error that quotes a secret it was handed in a form of its own: an
    HTTP client's ``Authorization: Basic`` header (base64 of ``user:password``), the
    password's own base64, its HTML escape (a server's error page), percent-encoded in
    a URL (a driver's DSN) or as Go's JSON escapes it (``\\u0026``): each is masked in
    the event, the status and the log, as the secret itself is."""
    import base64
    import html
    import urllib.parse

    password = CANARY + "-&<delivered>-x"
    monkeypatch.setenv("MAGCFG_MAGDS_PASSWORD", password)
    rig.write(1)
    kernel = rig.kernel(watch=False)
    forms = {"basic": "Basic " + base64.b64encode(f"app:{password}".encode()).decode(),
             "password": base64.b64encode(password.encode()).decode().rstrip("="),
             "html": html.escape(password),
             "url": urllib.parse.quote(password, safe=""),
             "go json": json.dumps(password)[1:-1].replace("&", "\\u0026")
             .replace("<", "\\u003c").replace(">", "\\u003e")}

    def can_connect(config: Any) -> None:
        secret = kernel.secret("magds.password")
        assert secret == password
        raise ValueError(f"401 from upstream: {forms[quoted]} refused")

    kernel.validators.append(can_connect)
    rig.write(2, hot_change(2))
    result = kernel.reload()
    assert result.status == "refused" and result.event is not None
    error = result.event["data"]["error"]
    assert error.endswith("401 from upstream: " + ("Basic " if quoted == "basic" else "")
                          + "<redacted> refused"), error
    said = rig.everything_said() + json.dumps(kernel.status())
    assert CANARY not in said and forms[quoted] not in said
