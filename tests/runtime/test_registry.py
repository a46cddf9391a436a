"""The kernel following an OCI registry tag: a real registry (stopped and started again),
artifacts published by `magcfg publish`, re-tagging for a rollback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from magcfg.oci import cosign
from magcfg.oci.reference import parse_reference
from magcfg.oci.registry import Registry
from magcfg.runtime import Kernel
from magcfg.runtime.events import (
    LOADED,
    PUBLISHED,
    RELOAD_FAILED,
    RELOADED,
    SOURCE_FAILED,
    SOURCE_RESTORED,
)
from magcfg.runtime.kernel import KernelStartError
from magcfg.runtime.publish import current_target
from magcfg.runtime.registry import MAX_SIGNATURE_LAYERS, RegistrySource, SourceRefused, pull
from magcfg.runtime.state import STATE_FILE
from magcfg.signing.keys import Ed25519PrivateKey, load_public_key
from tests.conftest import Project, failed_cleanly
from tests.oci.conftest import Front, LocalRegistry, crane
from tests.oci.test_publish import signed  # noqa: F401  (fixture)

from .fixtures import wait_for


@pytest.fixture
def local() -> Any:
    served = LocalRegistry().start()
    yield served
    served.stop()


@pytest.fixture
def front(local: LocalRegistry) -> Iterator[Front]:
    """A front to ``local``, not started; its port is held until the test ends."""
    served = Front(local.host)
    yield served
    served.close()


def _publish(project: Project, target: str) -> str:
    done = project.run("publish", "--env", "production", "--key",
                       str(project.root.parent / "keys/magcfg.key"), "--insecure", target)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().split("@")[1]


def _new_version(project: Project, level: str) -> int:
    project.write("layers/environments/production/logging.yaml", f"logging:\n  level: {level}\n")
    assert project.run("build").returncode == 0
    done = project.run("sign", "--key", str(project.root.parent / "keys/magcfg.key"))
    assert done.returncode == 0, done.stderr
    return int(json.loads((project.root / "generated/production/manifest.json").read_text())
               ["version"])


def _kernel(project: Project, target: str, tmp_path: Path,
            **extra: Any) -> tuple[Kernel, list[dict[str, Any]]]:
    kernel = Kernel(target, [project.root / "keys/magcfg.pub"], tmp_path / "state",
                    environment="production", insecure_registry=True, registry_interval=0.05,
                    registry_max_backoff=0.2, **extra)
    events: list[dict[str, Any]] = []
    kernel.subscribe("*", events.append)
    return kernel.start(), events


def _of(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in list(events) if e["type"] == kind]


def test_the_kernel_follows_a_tag_and_refuses_a_rollback(
        signed: Project, local: LocalRegistry, tmp_path: Path) -> None:  # noqa: F811
    target = f"oci://{local.repository()}:production"
    first = _publish(signed, target)
    kernel, events = _kernel(signed, target, tmp_path)
    try:
        old = kernel.version
        assert kernel.get("logging.level") == "warn"
        assert kernel.status()["registry"]["digest"] == first
        assert kernel.status()["registry"]["revision"].startswith("main@sha1:")
        assert kernel.status()["watch"] == "registry"
        artifact = signed.root / "generated/production"
        shutil.copytree(artifact, tmp_path / "first")
        newer = _new_version(signed, "info")
        second = _publish(signed, target)
        # Events reach subscribers after the swap (and after metrics and audit): wait
        # for the event, not only for the version.
        assert wait_for(lambda: any(e["data"].get("trigger") == "registry"
                                    for e in _of(events, RELOADED)))
        assert kernel.version == newer
        assert kernel.get("logging.level") == "info"
        assert _of(events, RELOADED)[-1]["data"]["trigger"] == "registry"
        # The pipeline of the first commit, run after (a slow runner, a run again): its
        # older artifact would move the tag back. Nothing is pushed.
        shutil.rmtree(artifact)
        shutil.copytree(tmp_path / "first", artifact)
        late = signed.run("publish", "--env", "production", "--key",
                          str(signed.root.parent / "keys/magcfg.key"), "--insecure", target)
        assert failed_cleanly(late, 1) == (
            f"{target[6:]}: error: holds version {newer}, and this is version {old}: "
            "rollback_refused; it was published from a later commit (this is an older "
            "one's pipeline, run after it): nothing was pushed\n")
        assert crane("digest", target[6:]).strip() == second
        # Someone moves the tag back to the older digest: a validly signed older version.
        crane("tag", f"{target[6:].rsplit(':', 1)[0]}@{first}", "production")
        assert wait_for(lambda: bool(_of(events, RELOAD_FAILED)))
        refused = _of(events, RELOAD_FAILED)[-1]["data"]
        assert (refused["reason"], refused["attempted_version"]) == ("rollback_refused", old)
        # The digest reported is the one served, not the refused one the tag names.
        assert second != first
        assert kernel.version == newer and kernel.status()["registry"]["digest"] == second
    finally:
        kernel.stop()


def test_an_outage_keeps_the_config_and_is_visible(
        signed: Project, front: Front, tmp_path: Path,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    front.start()
    target = f"oci://{front.host}/magcfg/outage:production"
    _publish(signed, target)
    metrics = CollectorRegistry()
    kernel, events = _kernel(signed, target, tmp_path, metrics=metrics)
    try:
        served = kernel.version
        front.stop()
        # The status changes first; the metric and then the event follow it.
        assert wait_for(lambda: bool(_of(events, SOURCE_FAILED)))
        assert not kernel.status()["registry"]["up"]
        status = kernel.status()["registry"]
        assert "unreachable" in status["error"] and kernel.version == served
        assert metrics.get_sample_value("magcfg_config_source_up") == 0
        failed = _of(events, SOURCE_FAILED)
        assert len(failed) == 1 and failed[0]["data"]["reason"] == "unreachable"
        assert wait_for(lambda: kernel.status()["registry"]["failed_polls"] >= 3)
        assert len(_of(events, SOURCE_FAILED)) == 1  # one event per outage
        # The wall clock stepped back an hour meanwhile (an NTP correction): the outage
        # lasted -3600 s by it.
        wall = time.time
        monkeypatch.setattr(time, "time", lambda: wall() - 3600)
        front.start()  # same port, same content
        assert wait_for(lambda: bool(_of(events, SOURCE_RESTORED)))
        assert 0 < _of(events, SOURCE_RESTORED)[-1]["data"]["down_seconds"] < 600
        assert kernel.status()["registry"]["up"]
        assert _of(events, SOURCE_RESTORED)[-1]["data"]["failed_polls"] >= 3
        assert metrics.get_sample_value("magcfg_config_source_up") == 1
        assert metrics.get_sample_value("magcfg_config_source_outages_total") == 1
        newer = _new_version(signed, "error")
        _publish(signed, target)
        assert wait_for(lambda: kernel.version == newer)
    finally:
        kernel.stop()


def _mirrored(project: Project, front: Front, tmp_path: Path) -> tuple[str, str]:
    """``front`` started, holding a published artifact that a kernel with its state in
    ``tmp_path/state`` has pulled into its mirror once and stopped; (target, digest)."""
    front.start()
    target = f"oci://{front.host}/magcfg/mirror:production"
    digest = _publish(project, target)
    kernel, _ = _kernel(project, target, tmp_path)
    kernel.stop()
    return target, digest


def test_a_registry_down_at_start_boots_the_verified_mirror(
        signed: Project, front: Front, tmp_path: Path) -> None:  # noqa: F811
    target, _ = _mirrored(signed, front, tmp_path)
    front.stop()
    state = tmp_path / "state"
    mirror = state / "registry-mirror"
    version = json.loads((mirror / "manifest.json").read_bytes())["version"]
    # The last known-good (of the same version) bounds the mirror's version from below.
    kernel, events = _kernel(signed, target, tmp_path)
    try:
        assert (kernel.version, kernel.booted_from) == (version, "registry_mirror")
        assert kernel.get("logging.level") == "warn"
        status = kernel.status()
        assert (status["booted_from"], status["source"]) == ("registry_mirror", "registry_mirror")
        assert not status["registry"]["up"] and status["registry"]["digest"] is None
        assert [e["data"]["source"] for e in _of(events, LOADED)] == ["registry_mirror"]
        assert [e["data"]["reason"] for e in _of(events, SOURCE_FAILED)] == ["unreachable"]
    finally:
        kernel.stop()
    # Without a last known-good, rollbacks allowed, the mirror is all there is.
    (state / STATE_FILE).unlink()
    kernel, _ = _kernel(signed, target, tmp_path, allow_rollback=True)
    kernel.stop()
    assert (kernel.version, kernel.booted_from) == (version, "registry_mirror")
    # The mirror is checked as any artifact: a changed file is not served.
    (state / STATE_FILE).unlink()
    served = current_target(mirror)
    assert served is not None
    (served / "config.json").write_text('{"logging": {"level": "debug"}}\n')
    with pytest.raises(KernelStartError) as info:
        _kernel(signed, target, tmp_path)
    message = str(info.value)
    assert "unreachable" in message and "digest_mismatch" in message, message
    assert f"{mirror}/..data/config.json" in message and "no last known-good state" in message


def test_the_registry_back_after_a_mirror_boot_is_reported_as_served(
        signed: Project, front: Front, tmp_path: Path) -> None:  # noqa: F811
    target, digest = _mirrored(signed, front, tmp_path)
    front.stop()
    kernel, events = _kernel(signed, target, tmp_path)
    try:
        assert kernel.booted_from == "registry_mirror"
        assert kernel.status()["registry"]["digest"] is None
        front.start()  # the same digest at the tag: the config served comes from there
        assert wait_for(lambda: kernel.status()["registry"]["digest"] == digest)
        status = kernel.status()
        assert (status["source"], status["booted_from"]) == ("artifact", "registry_mirror")
        assert status["registry"]["revision"].startswith("main@sha1:")
        assert not _of(events, RELOADED) and not _of(events, RELOAD_FAILED)
    finally:
        kernel.stop()
    # Booted from the last known-good (no mirror left), the same holds once it is pulled.
    front.stop()
    shutil.rmtree(tmp_path / "state/registry-mirror")
    kernel, _ = _kernel(signed, target, tmp_path)
    try:
        assert (kernel.booted_from, kernel.status()["registry"]["digest"]) == (
            "last_known_good", None)
        front.start()
        assert wait_for(lambda: kernel.status()["registry"]["digest"] == digest)
        assert kernel.status()["source"] == "artifact"
    finally:
        kernel.stop()


def test_an_unsigned_artifact_at_the_tag_is_not_loaded(
        signed: Project, local: LocalRegistry, tmp_path: Path) -> None:  # noqa: F811
    target = f"oci://{local.repository()}:production"
    _publish(signed, target)
    kernel, events = _kernel(signed, target, tmp_path)
    try:
        served = kernel.version
        # The same files under another digest (one annotation changed), never signed.
        manifest = json.loads(crane("manifest", target[6:]))
        manifest["annotations"]["org.opencontainers.image.revision"] = "main@sha1:" + "1" * 40
        client = Registry(parse_reference(target), insecure=True)
        client.put_manifest(client.reference.repository, "production",
                            json.dumps(manifest).encode())
        assert wait_for(lambda: bool(_of(events, SOURCE_FAILED)))
        data = _of(events, SOURCE_FAILED)[0]["data"]
        assert data["reason"] == "unsigned" and "no cosign signature" in data["error"]
        assert kernel.version == served and not kernel.status()["registry"]["up"]
    finally:
        kernel.stop()


def test_no_registry_and_no_state_is_a_start_error(signed: Project, tmp_path: Path) -> None:  # noqa: F811
    with pytest.raises(KernelStartError, match="unreachable"):
        Kernel("oci://127.0.0.1:9/magcfg:production", [signed.root / "keys/magcfg.pub"],
               tmp_path / "state", environment="production", insecure_registry=True).start()


def test_watch_from_a_registry_that_is_not_there(signed: Project, tmp_path: Path) -> None:  # noqa: F811
    temp = tmp_path / "temp"
    temp.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "magcfg", "watch", "--artifact", "oci://127.0.0.1:9/magcfg:prod",
         "--env", "production", "--public-key", str(signed.root / "keys/magcfg.pub"),
         "--out", str(tmp_path / "out"), "--insecure-registry"], capture_output=True, text=True,
        timeout=60, env={**os.environ, "TMPDIR": str(temp)})
    err = failed_cleanly(done, 1)
    # One "error:" prefix, the reference located in the text as an artifact directory is.
    assert err.startswith("error: oci://127.0.0.1:9/magcfg:prod: registry 127.0.0.1:9 "
                          "unreachable: "), err
    assert err.endswith("; and there is no last known-good state (no state_dir given)\n"), err
    assert err.count("error:") == 1, err
    assert not (tmp_path / "out").exists()
    # Without --state-dir the mirror was a temporary directory: gone with the process.
    assert list(temp.iterdir()) == []
    remote = subprocess.run(
        [sys.executable, "-m", "magcfg", "watch", "--artifact", "oci://registry.example.com/m:p",
         "--env", "production", "--public-key", str(signed.root / "keys/magcfg.pub"),
         "--out", str(tmp_path / "out"), "--insecure-registry"], capture_output=True, text=True,
        timeout=60)
    assert failed_cleanly(remote, 2) == (
        "error: --insecure-registry (plain HTTP) is allowed for a registry on this machine "
        "only (127.0.0.1, localhost), not registry.example.com\n")
    verified = subprocess.run(
        [sys.executable, "-m", "magcfg", "verify", "--artifact", "oci://registry.example.com/m:p",
         "--env", "production", "--public-key", str(signed.root / "keys/magcfg.pub"),
         "--insecure-registry"], capture_output=True, text=True, timeout=60)
    assert failed_cleanly(verified, 2) == failed_cleanly(remote, 2)
    # A reference that does not parse: one message, said once.
    bad = subprocess.run(
        [sys.executable, "-m", "magcfg", "watch", "--artifact", "oci://",
         "--env", "production", "--public-key", str(signed.root / "keys/magcfg.pub"),
         "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=60)
    assert failed_cleanly(bad, 2) == (
        "error: 'oci://' is not an OCI reference: no registry host (expected "
        "oci://REGISTRY/REPOSITORY[:TAG])\n")


def test_what_publish_prints_is_what_the_kernel_and_watch_take(
        signed: Project, local: LocalRegistry, tmp_path: Path) -> None:  # noqa: F811
    """publish prints cosign's form on stdout and, labelled on stderr, the oci://
    references a deployment follows (the tag) and pins (the digest): each, pasted as
    printed, is one the Kernel loads, the followed one reloading the next publish. Cosign's
    form pasted where magcfg wants a reference says which to give, not that no such
    directory exists."""
    repo = local.repository()
    done = signed.run("publish", "--env", "production", "--key",
                      str(signed.root.parent / "keys/magcfg.key"), "--insecure",
                      f"oci://{repo}:production")
    assert done.returncode == 0, done.stderr
    printed = done.stdout.strip()
    labelled = dict(line.split(": ", 1) for line in done.stderr.splitlines()
                    if line.startswith(("follow: ", "pinned: ")))
    follow, pinned = (labelled[label].split(" ", 1)[0] for label in ("follow", "pinned"))
    assert (follow, pinned) == (f"oci://{repo}:production", f"oci://{printed}")
    kernel, _ = _kernel(signed, follow, tmp_path)
    held = Kernel(pinned, [signed.root / "keys/magcfg.pub"], environment="production",
                  insecure_registry=True, watch=False).start()
    try:
        first = kernel.version
        assert held.version == first
        assert held.status()["registry"]["digest"] == printed.split("@")[1]
        newer = _new_version(signed, "info")
        _publish(signed, f"oci://{repo}:production")
        assert wait_for(lambda: kernel.version == newer)
        held.reload()
        assert held.version == first
    finally:
        kernel.stop()
        held.stop()
    with pytest.raises(ValueError, match=f"no such directory; .*\\(oci://{printed}\\)"):
        Kernel(printed, [signed.root / "keys/magcfg.pub"], environment="production")
    watched = subprocess.run(
        [sys.executable, "-m", "magcfg", "watch", "--artifact", printed, "--env", "production",
         "--public-key", str(signed.root / "keys/magcfg.pub"), "--out", str(tmp_path / "out"),
         "--insecure-registry"], capture_output=True, text=True, timeout=60)
    assert failed_cleanly(watched, 2) == (
        f"error: {printed}: no such directory; a registry artifact is named with oci:// "
        f"(oci://{printed}), as publish names it beside cosign's form\n")
    assert not (tmp_path / "out").exists()
    # The tag followed for another environment: the error names the pull as verify
    # --artifact oci:// does, not the temporary mirror it went into (gone once watch exits).
    other = subprocess.run(
        [sys.executable, "-m", "magcfg", "watch", "--artifact", follow, "--env", "staging",
         "--public-key", str(signed.root / "keys/magcfg.pub"), "--out", str(tmp_path / "out"),
         "--insecure-registry"], capture_output=True, text=True, timeout=60)
    manifest = f"oci://{repo}@{crane('digest', f'{repo}:production').strip()}/manifest.json"
    refused = (f"{manifest}: is for environment 'production', not 'staging': another "
               "environment's artifact")
    assert failed_cleanly(other, 1) == (
        f"error: {follow}: cannot load the config (environment_mismatch: {refused}) and "
        "there is no last known-good state (no state_dir given)\n")
    assert json.loads(other.stdout.splitlines()[0])["data"]["error"] == refused
    verified = signed.run("verify", "--artifact", follow, "--env", "staging", "--public-key",
                          str(signed.root / "keys/magcfg.pub"), "--insecure-registry")
    assert failed_cleanly(verified, 1) == f"{manifest}: error: is for environment " \
        "'production', not 'staging': another environment's artifact\n"


def test_a_path_made_of_a_reference_is_refused_naming_the_string(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``Path("oci://...")`` is ``oci:/...``, a relative directory: where none is, the
    Kernel says to give the reference as a string rather than fail at start on a
    missing manifest; a directory of that name is one."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    monkeypatch.chdir(tmp_path)
    key = Ed25519PrivateKey.generate().public_key()
    reference = "oci://127.0.0.1:5000/magcfg@sha256:" + "0" * 64
    with pytest.raises(ValueError) as raised:
        Kernel(Path(reference), [key], environment="production")
    assert str(raised.value) == (
        f"oci:/{reference[6:]}: no such directory; a registry artifact is named by the "
        f"string '{reference}', not a path (a path keeps one of oci://'s two slashes)")
    # verify --artifact, which pulls an oci:// reference as the Kernel does, says the same.
    pem = tmp_path / "trusted.pub"
    pem.write_bytes(key.public_bytes(serialization.Encoding.PEM,
                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    verified = subprocess.run(
        [sys.executable, "-m", "magcfg", "verify", "--artifact", str(Path(reference)), "--env",
         "production", "--public-key", str(pem)],
        capture_output=True, text=True, timeout=60)
    assert failed_cleanly(verified, 2) == (
        f"error: --artifact oci:/{reference[6:]}: no such directory; a registry artifact is "
        f"named by the string '{reference}', not a path (a path keeps one of oci://'s two "
        "slashes)\n")
    (tmp_path / Path(reference)).mkdir(parents=True)
    kernel = Kernel(Path(reference), [key], environment="production", watch=False)
    assert kernel.artifact_dir == Path(reference) and kernel.status()["watch"] is None


def test_a_pull_that_fails_to_apply_is_no_outage_of_the_registry(
        signed: Project, local: LocalRegistry, tmp_path: Path) -> None:  # noqa: F811
    """The kernel's attempt on a pull failing unexpectedly (a MemoryError reading a large
    deploy; it reports config.reload_failed itself) was reported as the registry's
    outage, config.source_failed then config.source_restored at the next poll, though
    the registry answered every one."""
    target = f"oci://{local.repository()}:production"
    _publish(signed, target)
    applied: list[int] = []

    def apply() -> None:
        applied.append(len(applied))
        raise MemoryError

    events: list[str] = []
    source = RegistrySource(target, tmp_path / "mirror",
                            [load_public_key(signed.root / "keys/magcfg.pub")], insecure=True,
                            interval=0.05, on_change=apply,
                            on_event=lambda kind, data: events.append(kind))
    source.start()
    try:
        assert wait_for(lambda: applied)
        polls = source.client.requests
        assert wait_for(lambda: source.client.requests >= polls + 3)  # polls more
        assert (events, source.status()["up"], source.failure) == ([], True, None)
    finally:
        source.stop()


def test_a_pull_whose_attempt_failed_unexpectedly_is_attempted_again_at_the_next_poll(
        signed: Project, local: LocalRegistry, tmp_path: Path) -> None:  # noqa: F811
    """The kernel's attempt on a pull failing unexpectedly (a MemoryError of the moment)
    left the digest untried until the tag moved, which may be days; an attempt that
    returns (a refusal by a stage, which reports itself) is not made again."""
    target = f"oci://{local.repository()}:production"
    _publish(signed, target)
    applied: list[int] = []

    def apply() -> None:
        applied.append(len(applied))
        if len(applied) == 1:
            raise MemoryError

    source = RegistrySource(target, tmp_path / "mirror",
                            [load_public_key(signed.root / "keys/magcfg.pub")], insecure=True,
                            interval=0.05, on_change=apply)
    source.start()
    try:
        assert wait_for(lambda: len(applied) == 2)
        polls = source.client.requests
        assert wait_for(lambda: source.client.requests >= polls + 5)  # polls more
        assert applied == [0, 1] and source.failure is None
    finally:
        source.stop()


def _signed_by_others_first(local: LocalRegistry, target: str, digest: str, count: int) -> None:
    """Put ``count`` signature layers of other keys before magcfg's in the ``.sig`` image
    of ``digest``, as other signers (anyone who may push) signing before it leave it."""
    reference = parse_reference(target)
    client = Registry(reference, insecure=True)
    repo, tag = reference.repository, cosign.tag_for(digest, "sig")
    held = client.manifest(repo, tag)
    assert held is not None
    others = []
    for i in range(count):
        # Each signer's own payload (cosign's -a annotations make theirs differ too).
        payload, layer = cosign.signature_layer(f"{local.host}/other-{i}", digest,
                                                Ed25519PrivateKey.generate())
        client.put_blob(repo, payload)
        others.append(layer)
    config, manifest = cosign.image_manifest([*others, *held.json()["layers"]])
    client.put_blob(repo, config)
    client.put_manifest(repo, tag, manifest)


def test_a_signature_after_many_other_signers_layers_verifies(
        signed: Project, local: LocalRegistry, tmp_path: Path) -> None:  # noqa: F811
    """magcfg's layer after 17 others' was reported bad_signature (16 layers were read)."""
    target = f"oci://{local.repository()}:production"
    digest = _publish(signed, target)
    _signed_by_others_first(local, target, digest, 17)
    keys = [load_public_key(signed.root / "keys/magcfg.pub")]
    # The name publish signed, whose layer is checked first; and the same registry named
    # otherwise, where the others' payloads are fetched to find it.
    for name in (target, target.replace("127.0.0.1", "localhost")):
        reference = parse_reference(name)
        client = Registry(reference, insecure=True)
        _, files = pull(client, reference, digest, keys)
        assert "manifest.json" in files
    kernel, _ = _kernel(signed, target, tmp_path)
    try:
        assert kernel.status()["registry"]["digest"] == digest
    finally:
        kernel.stop()


def test_the_others_layers_searched_for_a_signature_are_bounded(
        signed: Project, local: LocalRegistry) -> None:  # noqa: F811
    target = f"oci://{local.repository()}:production"
    digest = _publish(signed, target)
    _signed_by_others_first(local, target, digest, MAX_SIGNATURE_LAYERS)
    keys = [load_public_key(signed.root / "keys/magcfg.pub")]
    reference = parse_reference(target.replace("127.0.0.1", "localhost"))
    client = Registry(reference, insecure=True)
    with pytest.raises(SourceRefused) as refused:
        pull(client, reference, digest, keys)
    assert refused.value.reason == "bad_signature"
    # The manifest, the .sig image and the bound's payloads: magcfg's is not reached.
    assert client.requests == 2 + MAX_SIGNATURE_LAYERS
    reference = parse_reference(target)
    _, files = pull(Registry(reference, insecure=True), reference, digest, keys)
    assert "manifest.json" in files


def test_a_pull_a_stage_refuses_is_attempted_once(
        signed: Project, local: LocalRegistry, tmp_path: Path) -> None:  # noqa: F811
    target = f"oci://{local.repository()}:production"
    _publish(signed, target)
    checked: list[object] = []

    def refuse_info(config: dict[str, Any]) -> None:
        checked.append(config["logging"]["level"])
        if config["logging"]["level"] == "info":
            raise ValueError("info is refused here")

    kernel, events = _kernel(signed, target, tmp_path, validators=[refuse_info])
    try:
        _new_version(signed, "info")
        _publish(signed, target)
        assert wait_for(lambda: bool(_of(events, RELOAD_FAILED)))
        polls = kernel.status()["registry"]["requests"]
        assert wait_for(lambda: kernel.status()["registry"]["requests"] >= polls + 5)
        assert checked == ["warn", "info"] and len(_of(events, RELOAD_FAILED)) == 1
    finally:
        kernel.stop()


def test_polls_back_off_on_errors(tmp_path: Path) -> None:
    source = RegistrySource("oci://127.0.0.1:9/m:t", tmp_path, [], insecure=True,
                            interval=1.0, max_backoff=30.0)
    assert 0.8 <= source.delay() <= 1.2
    source.failures = 3
    assert 6.4 <= source.delay() <= 9.6
    source.failures = 40
    assert 24.0 <= source.delay() <= 36.0


@pytest.mark.parametrize("option", ["interval", "max_backoff", "timeout"])
def test_an_interval_that_is_not_a_finite_number_above_0_is_refused(
        tmp_path: Path, option: str) -> None:
    """As the Kernel refuses them: an infinite interval or backoff would end the poller
    with OverflowError at its first wait."""
    what = {"interval": "interval", "max_backoff": "backoff", "timeout": "timeout"}[option]
    for seconds in (float("inf"), float("nan"), 0.0):
        with pytest.raises(ValueError) as info:
            RegistrySource("oci://127.0.0.1:9/m:t", tmp_path, [], insecure=True,
                           **{option: seconds})
        assert str(info.value) == (f"the registry {what} is a finite number of seconds "
                                   f"above 0, not {seconds!r}")


def test_served_claims_only_the_digest_the_kernel_read(tmp_path: Path) -> None:
    # The kernel takes `pulled` before it reads the mirror and hands it back once it
    # serves what it read: a pull in between (an explicit reload beside the poller)
    # leaves the claim to the reload that follows it, rather than name the wrong digest.
    source = RegistrySource("oci://127.0.0.1:9/m:t", tmp_path, [], insecure=True)
    source.pulled = ("sha256:aaa", "main@sha1:1")
    taken = source.pulled
    source.served(taken)
    assert (source.digest, source.revision) == ("sha256:aaa", "main@sha1:1")
    taken = source.pulled
    source.pulled = ("sha256:bbb", "main@sha1:2")  # a pull finished after the read began
    source.served(taken)
    assert source.digest == "sha256:aaa"
    source.served(None)  # taken while a pull was writing the mirror
    assert source.digest == "sha256:aaa"
    source.served(source.pulled)
    assert (source.digest, source.revision) == ("sha256:bbb", "main@sha1:2")


def test_a_layer_that_is_not_a_flux_artifact_is_refused(
        signed: Project, local: LocalRegistry, tmp_path: Path) -> None:  # noqa: F811
    target = f"oci://{local.repository()}:production"
    _publish(signed, target)
    kernel, events = _kernel(signed, target, tmp_path)
    try:
        crane("append", "-f", "/dev/null", "-b", target[6:], "-t", target[6:])
        assert wait_for(lambda: bool(_of(events, SOURCE_FAILED)))
        data = _of(events, SOURCE_FAILED)[0]["data"]
        assert data["reason"] == "malformed_manifest"
        assert "not a Flux artifact" in data["error"]
    finally:
        kernel.stop()


def test_watch_publishes_what_the_tag_holds(
        signed: Project, local: LocalRegistry, tmp_path: Path) -> None:  # noqa: F811
    target = f"oci://{local.repository()}:production"
    _publish(signed, target)
    out = tmp_path / "out"
    watcher = subprocess.Popen(
        [sys.executable, "-m", "magcfg", "watch", "--artifact", target, "--env", "production",
         "--public-key", str(signed.root / "keys/magcfg.pub"), "--out", str(out),
         "--state-dir", str(tmp_path / "state"), "--insecure-registry",
         "--registry-interval", "0.1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        served = signed.root / "generated/production/config.json"
        assert wait_for(lambda: (out / "config.json").exists()
                        and (out / "config.json").read_bytes() == served.read_bytes())
        newer = _new_version(signed, "info")
        _publish(signed, target)
        assert wait_for(lambda: json.loads((out / "manifest.json").read_bytes())["version"]
                        == newer)
    finally:
        watcher.terminate()
        out_text, err_text = watcher.communicate(timeout=30)
    assert watcher.returncode == 0, err_text
    types = [json.loads(line)["type"] for line in out_text.splitlines()]
    assert types.count(PUBLISHED) == 2 and RELOADED in types


def test_a_kernel_without_state_removes_its_mirror_on_stop(
        signed: Project, local: LocalRegistry) -> None:  # noqa: F811
    target = f"oci://{local.repository()}:production"
    _publish(signed, target)
    kernel = Kernel(target, [signed.root / "keys/magcfg.pub"], environment="production",
                    insecure_registry=True, registry_interval=0.05).start()
    mirror = kernel.artifact_dir
    try:
        assert mirror.name.startswith("magcfg-registry-")
        assert (mirror / "config.json").read_bytes() == (
            signed.root / "generated/production/config.json").read_bytes()
        assert kernel.get("logging.level") == "warn"
    finally:
        kernel.stop()
    assert not mirror.exists()
    assert kernel.get("logging.level") == "warn"  # the served config stays readable
    # A stopped kernel's source writes nothing, even for a newer digest at the tag, and
    # checks nothing: no refusal of a mirror that is gone.
    _new_version(signed, "info")
    _publish(signed, target)
    events: list[dict[str, Any]] = []
    kernel.subscribe("*", events.append)
    assert kernel.reload().status == "unchanged" and events == []
    assert not mirror.exists() and kernel.get("logging.level") == "warn"
