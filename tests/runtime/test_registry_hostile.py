"""The kernel following a registry that answers what a real registry never would: the
answer is a source failure (reported, the config kept), never the poller's end nor a
start that cannot fall back to the last known-good."""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from magcfg.artifact import MAX_FILE_BYTES
from magcfg.oci import cosign
from magcfg.oci.reference import parse_reference
from magcfg.oci.registry import Registry, RegistryError
from magcfg.runtime import Kernel
from magcfg.runtime import publish as publish_module
from magcfg.runtime.events import RELOAD_FAILED, RELOADED, SOURCE_FAILED, WATCH_FAILED
from magcfg.runtime.kernel import KernelStartError
from magcfg.runtime.publish import current_target
from magcfg.runtime.registry import RegistrySource
from magcfg.runtime.state import STATE_FILE
from tests.conftest import failed_cleanly

from ..net.slow import ends_within, self_signed
from .fixtures import KubeletWriter, artifact_files, base_config, wait_for
from .hostile import HostileRegistry

DEEP = b"[" * 200_000 + b"]" * 200_000
"""Valid JSON nested deeper than any parser recurses."""


@pytest.fixture
def hostile() -> Iterator[HostileRegistry]:
    served = HostileRegistry()
    yield served
    served.stop()


def _of(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in list(events) if e["type"] == kind]


def _spoil(registry: HostileRegistry, case: str) -> str:
    """Make the tag's next artifact hostile in the way ``case`` says; the reason the
    kernel must report."""
    if case == "deep-manifest":
        registry.put_manifest(DEEP, tag="production")
        return "malformed_manifest"
    digest = registry.publish(2, sign=False)
    sig = cosign.tag_for(digest, "sig")
    if case == "signature-layer-without-digest":
        registry.put_manifest(b'{"schemaVersion":2,"layers":[{"mediaType":"%s"}]}'
                              % cosign.SIMPLE_SIGNING_MEDIA_TYPE.encode(), tag=sig)
    elif case == "signature-layer-odd-digest":
        registry.put_manifest(b'{"schemaVersion":2,"layers":[{"mediaType":"%s","digest":[1]}]}'
                              % cosign.SIMPLE_SIGNING_MEDIA_TYPE.encode(), tag=sig)
    else:
        assert case == "deep-signature"
        registry.put_manifest(b'{"layers":' + DEEP + b"}", tag=sig)
    return "bad_signature"


CASES = ["deep-manifest", "signature-layer-without-digest", "signature-layer-odd-digest",
         "deep-signature"]


def _poller_alive() -> bool:
    return any(t.name == "magcfg-registry" and t.is_alive() for t in threading.enumerate())


def _polling_kernel(hostile: HostileRegistry, tmp_path: Path, **options: Any
                    ) -> tuple[Kernel, list[dict[str, Any]]]:
    """A started kernel polling ``hostile`` every 50 ms (``options``: more of its
    arguments), and the events it sends."""
    kernel = Kernel(hostile.reference(), [hostile.public_key(tmp_path / "k.pub")],
                    environment="production", insecure_registry=True, registry_interval=0.05,
                    registry_max_backoff=0.2, **options)
    events: list[dict[str, Any]] = []
    kernel.subscribe("*", events.append)
    kernel.start()
    return kernel, events


def _restartable(hostile: HostileRegistry, tmp_path: Path, **options: Any
                 ) -> Callable[[], Kernel]:
    """A kernel of ``hostile``'s artifact with its state in ``tmp_path/state``, made anew
    at each call (a restarted pod keeps its state), polling only when told."""
    public = hostile.public_key(tmp_path / "k.pub")

    def kernel() -> Kernel:
        return Kernel(hostile.reference(), [public], tmp_path / "state",
                      environment="production", insecure_registry=True,
                      registry_interval=3600, **options)

    return kernel


@pytest.mark.parametrize("case", CASES)
def test_a_malformed_answer_is_an_outage_and_the_poller_goes_on(
        case: str, hostile: HostileRegistry, tmp_path: Path) -> None:
    hostile.publish(1)
    kernel, events = _polling_kernel(hostile, tmp_path)
    try:
        assert kernel.version == 1
        reason = _spoil(hostile, case)
        assert wait_for(lambda: bool(_of(events, SOURCE_FAILED)))
        failed = _of(events, SOURCE_FAILED)[0]["data"]
        assert failed["reason"] == reason, failed
        assert hostile.reference() in failed["error"]
        status = kernel.status()["registry"]
        assert not status["up"] and status["error"] == failed["error"]
        assert kernel.version == 1 and _poller_alive()
        # The poller still polls: a good artifact published afterwards is applied.
        hostile.sign(hostile.publish(3))
        # Events reach subscribers after the swap: wait for the event, not the version.
        assert wait_for(lambda: any(e["data"].get("trigger") == "registry"
                                    for e in _of(events, RELOADED)))
        assert kernel.version == 3 and kernel.status()["registry"]["up"]
    finally:
        kernel.stop()


@pytest.mark.parametrize("case", CASES)
def test_a_malformed_answer_at_start_boots_the_last_known_good(
        case: str, hostile: HostileRegistry, tmp_path: Path) -> None:
    hostile.publish(1)
    kernel = _restartable(hostile, tmp_path)

    first = kernel().start()
    first.stop()
    # Only the state is left (a new pod): no mirror of the last pull to read from.
    shutil.rmtree(tmp_path / "state/registry-mirror")
    reason = _spoil(hostile, case)
    again = kernel()
    events: list[dict[str, Any]] = []
    again.subscribe("*", events.append)
    again.start()
    try:
        assert (again.version, again.booted_from) == (1, "last_known_good")
        assert [e["data"]["reason"] for e in _of(events, SOURCE_FAILED)] == [reason]
    finally:
        again.stop()


@pytest.mark.parametrize("case", ["deep-manifest", "signature-layer-without-digest"])
def test_watch_first_start_names_the_reference_without_a_traceback(
        case: str, hostile: HostileRegistry, tmp_path: Path) -> None:
    _spoil(hostile, case)
    done = subprocess.run(
        [sys.executable, "-m", "magcfg", "watch", "--artifact", hostile.reference(),
         "--env", "production", "--public-key", str(hostile.public_key(tmp_path / "k.pub")),
         "--out", str(tmp_path / "out"), "--insecure-registry"],
        capture_output=True, text=True, timeout=120, env={**os.environ})
    err = failed_cleanly(done, 1)
    assert hostile.reference() in err, err
    assert "no last known-good state" in err
    assert not (tmp_path / "out").exists()


def test_an_unexpected_failure_in_a_poll_is_reported_and_polling_goes_on(
        hostile: HostileRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A last resort against a bug: whatever a poll raises, the poller reports it as a
    # source failure and keeps polling (never a thread that died in silence).
    hostile.publish(1)
    kernel, events = _polling_kernel(hostile, tmp_path)
    try:
        real = RegistrySource._pull

        def broken(self: RegistrySource) -> bool:
            raise RuntimeError("a bug with a message that is not shown")

        monkeypatch.setattr(RegistrySource, "_pull", broken)
        assert wait_for(lambda: bool(_of(events, SOURCE_FAILED)))
        failed = _of(events, SOURCE_FAILED)[0]["data"]
        assert failed["reason"] == "internal_error"
        assert "RuntimeError" in failed["error"] and "not shown" not in failed["error"]
        assert not kernel.status()["registry"]["up"] and _poller_alive()
        monkeypatch.setattr(RegistrySource, "_pull", real)
        hostile.publish(2)
        assert wait_for(lambda: kernel.version == 2)
        assert kernel.status()["registry"]["up"]
    finally:
        kernel.stop()


class _Cancelled(BaseException):
    """What asyncio's CancelledError and a library's own exceptions may be: not an
    ``Exception``, so no handler for errors catches it."""


def test_a_poller_ended_by_an_exception_that_is_not_an_exception_is_loud(
        hostile: HostileRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # magcfg_config_watching == 0 is the documented MagcfgConfigWatcherDead alert.
    hostile.publish(1)
    metrics = CollectorRegistry()
    kernel, events = _polling_kernel(hostile, tmp_path, metrics=metrics)
    try:
        assert metrics.get_sample_value("magcfg_config_watching") == 1

        def cancelled(self: RegistrySource) -> bool:
            raise _Cancelled("the poll was cancelled")

        monkeypatch.setattr(RegistrySource, "_pull", cancelled)
        assert wait_for(lambda: bool(_of(events, WATCH_FAILED)))
        assert wait_for(lambda: not _poller_alive())
        failed = _of(events, WATCH_FAILED)
        assert len(failed) == 1 and failed[0]["data"] == {
            "artifact_dir": str(kernel.artifact_dir), "reference": hostile.reference(),
            "error": "_Cancelled: the poll was cancelled", "active_version": 1}
        status = kernel.status()
        assert (status["watch"], status["watch_error"]) == (
            "dead", "_Cancelled: the poll was cancelled")
        assert metrics.get_sample_value("magcfg_config_watching") == 0
        assert kernel.version == 1  # still served
    finally:
        kernel.stop()
    assert (kernel.status()["watch"], kernel.status()["watch_error"]) == (None, None)


@pytest.mark.parametrize("headers_too", [False, True], ids=["body", "headers"])
def test_a_request_ends_at_its_deadline_however_slowly_the_registry_answers(
        headers_too: bool, hostile: HostileRegistry) -> None:
    digest = hostile.publish(1)
    hostile.drip(hostile.manifest_path(digest), pause=0.2, headers_too=headers_too)
    client = Registry(parse_reference(hostile.reference()), insecure=True, deadline=1.0)
    message = _given_up(client, hostile, digest)
    assert f"registry {hostile.host} unreachable: no whole answer to GET " in message
    assert "within 1 s" in message


def _given_up(client: Registry, hostile: HostileRegistry, digest: str) -> str:
    """The error of a manifest request that must end at its 1 s deadline: each byte
    comes well within the 30 s a read may wait, the whole answer would take minutes."""
    failed: list[RegistryError] = []

    def fetch() -> None:
        with pytest.raises(RegistryError) as info:
            client.manifest(hostile.repository, digest)
        failed.append(info.value)

    assert ends_within(fetch, 25)
    return failed[0].format()


@pytest.mark.parametrize("headers_too", [False, True], ids=["body", "headers"])
def test_a_request_over_tls_ends_at_its_deadline_however_slowly_the_registry_answers(
        headers_too: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # HTTPS, as every registry but a local one: TLS takes over the socket the deadline
    # was given at connect.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert, key = self_signed(tmp_path)
    context.load_cert_chain(cert, key)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # what the client trusts
    hostile = HostileRegistry(tls=context)
    try:
        digest = hostile.publish(1)
        client = Registry(parse_reference(hostile.reference()), deadline=1.0, credentials=None)
        assert client.manifest(hostile.repository, digest) is not None  # TLS as such works
        hostile.drip(hostile.manifest_path(digest), pause=0.2, headers_too=headers_too)
        message = _given_up(client, hostile, digest)
        assert f"no whole answer to GET https://{hostile.host}/" in message, message
        assert "within 1 s" in message
    finally:
        hostile.stop()


def test_a_registry_that_drips_its_answer_does_not_hold_up_start_or_reload(
        hostile: HostileRegistry, tmp_path: Path) -> None:
    hostile.publish(1)
    kernel = _restartable(hostile, tmp_path, registry_timeout=2)

    kernel().start().stop()
    shutil.rmtree(tmp_path / "state/registry-mirror")
    hostile.drip(hostile.manifest_path(hostile.publish(2)), pause=0.5)
    again = kernel()
    events: list[dict[str, Any]] = []
    again.subscribe("*", events.append)
    try:
        assert ends_within(again.start, 60)
        assert (again.version, again.booted_from) == (1, "last_known_good")
        failed = _of(events, SOURCE_FAILED)[0]["data"]
        assert failed["reason"] == "unreachable"
        assert "no whole answer to GET" in failed["error"] and "within the 2 s" in failed["error"]
        assert ends_within(again.reload, 60)
        assert again.version == 1 and not again.status()["registry"]["up"]
    finally:
        again.stop()


def test_a_huge_file_in_the_registry_mirror_is_refused_unread(
        hostile: HostileRegistry, tmp_path: Path) -> None:
    hostile.publish(1)
    kernel = _restartable(hostile, tmp_path)

    kernel().start().stop()
    mirror = tmp_path / "state/registry-mirror"
    target = current_target(mirror)
    assert target is not None
    os.truncate(target / "config.json", 3 * 1024**3)  # sparse: no disk, 3 GiB if read
    again = kernel()
    assert ends_within(again.start, 60)  # the pull replaces the mirror's version, unread
    try:
        assert (again.version, again.booted_from) == (1, "artifact")
    finally:
        again.stop()
    target = current_target(mirror)
    assert target is not None
    os.truncate(target / "config.json", 3 * 1024**3)
    hostile.stop()  # the registry down: the mirror is what there is, then the state
    events: list[dict[str, Any]] = []
    last = kernel()
    last.subscribe("*", events.append)
    assert ends_within(last.start, 60)
    try:
        assert (last.version, last.booted_from) == (1, "last_known_good")
        failed = _of(events, RELOAD_FAILED)[0]["data"]
        assert (failed["reason"], failed["error"]) == (
            "unreadable_file",
            f"{mirror}/..data/config.json: is larger than {MAX_FILE_BYTES} bytes")
    finally:
        last.stop()


def test_a_mirror_that_cannot_be_written_is_an_outage_not_a_crash(
        hostile: HostileRegistry, tmp_path: Path) -> None:
    """A file where the mirror goes (or a full disk) is the state directory's trouble:
    the pull is a source failure, reported, and start boots the last known-good."""
    hostile.publish(1)
    kernel = _restartable(hostile, tmp_path)

    kernel().start().stop()
    mirror = tmp_path / "state/registry-mirror"
    shutil.rmtree(mirror)
    mirror.write_text("not a directory\n")
    hostile.sign(hostile.publish(2))
    again = kernel()
    events: list[dict[str, Any]] = []
    again.subscribe("*", events.append)
    again.start()
    try:
        assert (again.version, again.booted_from) == (1, "last_known_good")
        failed = [e["data"] for e in _of(events, SOURCE_FAILED)]
        assert [f["reason"] for f in failed] == ["mirror_unwritable"], failed
        assert failed[0]["error"] == f"{mirror}: cannot publish into {mirror}: file exists"
    finally:
        again.stop()


def test_stop_during_a_write_of_the_mirror_leaves_no_mirror_behind(
        hostile: HostileRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reload() on another thread is writing a new pull into the kernel's temporary
    mirror when stop() is called: stop() waits for the write, then removes the mirror,
    which the rest of the write would otherwise make again."""
    hostile.publish(1)
    kernel = Kernel(hostile.reference(), [hostile.public_key(tmp_path / "k.pub")],
                    environment="production", insecure_registry=True, registry_interval=3600)
    kernel.start()
    mirror = kernel.artifact_dir
    hostile.sign(hostile.publish(2))
    written, release = threading.Event(), threading.Event()
    real = publish_module.write_new

    def paused(path: Path, data: bytes, mode: int = 0o644) -> None:
        real(path, data, mode)
        if not written.is_set():  # the first file of the new version is on disk
            written.set()
            release.wait(30)

    monkeypatch.setattr(publish_module, "write_new", paused)
    reloading = threading.Thread(target=kernel.reload, daemon=True)
    reloading.start()
    assert written.wait(30)
    stopping = threading.Thread(target=kernel.stop, daemon=True)
    stopping.start()
    stopping.join(0.5)  # a stop() that does not wait for the write is done by now
    release.set()
    reloading.join(30)
    stopping.join(30)
    assert not reloading.is_alive() and not stopping.is_alive()
    assert not mirror.exists(), sorted(p.name for p in mirror.rglob("*"))


def test_a_subscriber_that_stops_the_kernel_on_the_poller_thread_stops_it_whole(
        hostile: HostileRegistry, tmp_path: Path) -> None:
    hostile.publish(1)
    kernel, _ = _polling_kernel(hostile, tmp_path)
    mirror = kernel.artifact_dir
    stopped = threading.Event()

    def stop(event: dict[str, Any]) -> None:
        kernel.stop()
        stopped.set()

    kernel.subscribe(RELOADED, stop)
    hostile.sign(hostile.publish(2))
    assert stopped.wait(30)
    assert kernel.status()["subscriber_failures"] == 0
    assert not mirror.exists() and wait_for(lambda: not _poller_alive())


def test_a_kernel_following_a_tag_counts_as_watching_until_stopped(
        hostile: HostileRegistry, tmp_path: Path) -> None:
    # magcfg_config_watching == 0 is the documented MagcfgConfigWatcherDead alert.
    hostile.publish(1)
    metrics = CollectorRegistry()
    kernel = Kernel(hostile.reference(), [hostile.public_key(tmp_path / "k.pub")],
                    environment="production", insecure_registry=True, registry_interval=3600,
                    metrics=metrics).start()
    try:
        assert metrics.get_sample_value("magcfg_config_watching") == 1
        assert kernel.status()["watch"] == "registry"
    finally:
        kernel.stop()
    assert metrics.get_sample_value("magcfg_config_watching") == 0
    assert kernel.status()["watch"] is None


def test_stop_ends_a_poll_waiting_on_a_slow_registry_at_once(
        hostile: HostileRegistry, tmp_path: Path) -> None:
    hostile.publish(1)
    kernel, events = _polling_kernel(hostile, tmp_path, registry_timeout=60)
    dripping = hostile.drip_manifest(hostile.publish(2))
    assert dripping.wait(30)  # the poller waits on the answer, for up to 60 s
    assert ends_within(kernel.stop, 5)
    assert not _poller_alive() and not _of(events, SOURCE_FAILED)
    assert kernel.version == 1


def test_a_mirror_is_served_at_start_only_above_a_last_known_goods_floor(
        hostile: HostileRegistry, tmp_path: Path) -> None:
    hostile.publish(1)
    kernel = _restartable(hostile, tmp_path)
    first = kernel().start()
    try:
        hostile.publish(2)
        assert first.reload().status == "applied" and first.version == 2
        # The tag moved back to version 1: pulled into the mirror, then refused.
        hostile.publish(1)
        assert first.reload().reason == "rollback_refused" and first.version == 2
    finally:
        first.stop()
    state = tmp_path / "state"
    mirror = state / "registry-mirror"
    assert json.loads((mirror / "manifest.json").read_bytes())["version"] == 1
    hostile.stop()  # an outage: the mirror is what the registry last gave
    second = kernel().start()
    second.stop()
    assert (second.version, second.booted_from) == (2, "last_known_good")
    # Without the last known-good (lost, or damaged and not trusted), nothing shows that
    # the mirror's version is not one refused as a rollback: it is not served.
    (state / STATE_FILE).unlink()
    with pytest.raises(KernelStartError) as info:
        kernel().start()
    message = str(info.value)
    assert f"registry {hostile.host} unreachable" in message, message
    assert message.endswith(
        f"and the registry mirror {mirror} holds version 1, not served without a trusted "
        f"last known-good state in {state}: the highest version accepted before is "
        "unknown, so it may be an older one refused as a rollback")
    # Rollbacks allowed, an older version is no reason to refuse it.
    allowed = _restartable(hostile, tmp_path, allow_rollback=True)().start()
    allowed.stop()
    assert (allowed.version, allowed.booted_from) == (1, "registry_mirror")


def test_a_symlink_where_the_mirror_goes_is_removed_never_followed(
        hostile: HostileRegistry, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Elsewhere: another directory of the pod, with a version directory and a link of
    # its own that a publish into it would remove, and a validly signed newer artifact.
    elsewhere = tmp_path / "elsewhere"
    KubeletWriter(elsewhere).write(artifact_files(base_config(5), 5, hostile.key))
    (elsewhere / "..precious").mkdir()
    os.symlink("somewhere", elsewhere / "app-link")
    before = sorted(os.listdir(elsewhere))
    state = tmp_path / "state"
    mirror = state / "registry-mirror"
    hostile.publish(1)
    kernel = _restartable(hostile, tmp_path)
    kernel().start().stop()
    shutil.rmtree(mirror)
    os.symlink(elsewhere, mirror)
    hostile.stop()  # at start, the mirror is what there is to read
    down = kernel().start()
    down.stop()
    assert (down.version, down.booted_from) == (1, "last_known_good")
    assert sorted(os.listdir(elsewhere)) == before
    assert f"removed {mirror}, a symbolic link (to {str(elsewhere)!r})" in caplog.text
    served = HostileRegistry()  # the registry back (on another port): a pull
    try:
        served.key = hostile.key
        served.publish(2)
        assert not os.path.lexists(mirror)  # removed at the start above
        os.symlink(elsewhere, mirror)
        up = Kernel(served.reference(), [tmp_path / "k.pub"], state,
                    environment="production", insecure_registry=True,
                    registry_interval=3600).start()
        up.stop()
        assert (up.version, up.booted_from) == (2, "artifact")
    finally:
        served.stop()
    assert sorted(os.listdir(elsewhere)) == before
    assert mirror.is_dir() and not mirror.is_symlink()


def test_reload_during_a_poll_on_a_slow_registry_waits_one_timeout_in_all(
        hostile: HostileRegistry, tmp_path: Path) -> None:
    # The poller's own poll waits on a registry that drips its answer: a reload() (the
    # sidecar's SIGHUP) waits for it within its own registry_timeout, not after it.
    hostile.publish(1)
    kernel, _ = _polling_kernel(hostile, tmp_path, registry_timeout=5)
    try:
        asked = hostile.drip_manifest(hostile.publish(2))
        assert asked.wait(30)  # the poller waits on the answer, for up to 5 s
        assert ends_within(kernel.reload, 8), "reload() waited for two timeouts"
        assert kernel.version == 1
    finally:
        kernel.stop()


@pytest.mark.parametrize("form", ["digest", "tag and digest"])
def test_a_pinned_digest_is_pulled_whatever_digest_the_registry_names_for_it(
        form: str, hostile: HostileRegistry, tmp_path: Path) -> None:
    pinned = hostile.publish(1)
    other = hostile.publish(2, tag="next")
    # Asked about the pinned digest, the registry names the other, as signed as it.
    path = hostile.manifest_path(pinned)
    route = hostile.routes[path]
    assert not callable(route)
    hostile.routes[path] = (route[0], {**route[1], "Docker-Content-Digest": other}, route[2])
    tag = ":production" if form == "tag and digest" else ""
    source = RegistrySource(f"oci://{hostile.host}/{hostile.repository}{tag}@{pinned}",
                            tmp_path / "mirror", [hostile.key.public_key()], insecure=True,
                            timeout=10)
    assert source.poll(), source.last_error
    assert source.pulled is not None and source.pulled[0] == pinned
    assert json.loads((tmp_path / "mirror/manifest.json").read_bytes())["version"] == 1
