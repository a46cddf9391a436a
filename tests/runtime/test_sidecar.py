"""`magcfg watch` as a real process: publishing, notification, kill -9 mid-swap, recovery."""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from magcfg.durable import FAULT_ENV
from magcfg.runtime.events import LOADED, PUBLISHED, RELOAD_FAILED, RELOADED
from magcfg.runtime.publish import (
    DATA_LINK,
    TMP_LINK,
    current_target,
    publish,
    published_bytes,
    recover,
)
from magcfg.signing.keys import Ed25519PrivateKey, public_key_pem
from magcfg.signing.signatures import verify_files
from tests.conftest import failed_cleanly
from tests.ports import PortTaken, on_a_free_port

from .fixtures import KubeletWriter, artifact_files, base_config, wait_for
from .hostile import HostileRegistry

if TYPE_CHECKING:
    from magcfg.runtime.sidecar import Sidecar as InProcessSidecar

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO / "compiler")}
CANARY = "CANARY-sidecar-5b2a91"


FSIZE = ("import os, resource, sys; n = int(sys.argv[1]); "
         "resource.setrlimit(resource.RLIMIT_FSIZE, (n, n)); "
         "os.execv(sys.executable, [sys.executable, '-m', 'magcfg', *sys.argv[2:]])")
"""Runs magcfg (its arguments after the limit) unable to write a file past ``n`` bytes:
a write fails as on a full disk (EFBIG), for real."""


def _watch(args: list[str], fsize: int | None) -> list[str]:
    if fsize is None:
        return [sys.executable, "-m", "magcfg", "watch", *args]
    return [sys.executable, "-c", FSIZE, str(fsize), "watch", *args]


class Sidecar:
    """One `magcfg watch` process (its files limited to ``fsize`` bytes when given); its
    stdout events are collected by a thread."""

    def __init__(self, args: list[str], cwd: Path, fsize: int | None = None) -> None:
        self.proc = subprocess.Popen(_watch(args, fsize),
                                     cwd=cwd, env=ENV, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.stderr = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        out = [json.loads(line) for line in list(self.lines)]
        return [e for e in out if kind is None or e["type"] == kind]

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._reader.join(5)

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(10)
        self._reader.join(5)
        assert self.proc.stderr is not None
        self.stderr = self.proc.stderr.read()
        return code


class Setup:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.key = Ed25519PrivateKey.generate()
        self.pub = root / "magcfg.pub"
        self.pub.write_bytes(public_key_pem(self.key.public_key()))
        self.art = root / "volume"
        self.out = root / "out"
        self.state = root / "state"
        self.writer = KubeletWriter(self.art)
        self.sidecars: list[Sidecar] = []

    def write(self, version: int, config: dict[str, Any] | None = None,
              key: Ed25519PrivateKey | None = None) -> None:
        if config is None:
            config = base_config(version)
            config["logging"]["level"] = ["info", "debug"][version % 2]
        self.writer.write(artifact_files(config, version, key or self.key))

    def start(self, *extra: str) -> Sidecar:
        sidecar = Sidecar(["--artifact", str(self.art), "--env", "production",
                           "--public-key", str(self.pub),
                           "--out", str(self.out), "--state-dir", str(self.state),
                           "--poll-interval", "0.2", *extra], self.root)
        self.sidecars.append(sidecar)
        return sidecar

    def published_version(self) -> int | None:
        try:
            return int(json.loads((self.out / "manifest.json").read_bytes())["version"])
        except (OSError, ValueError):
            return None

    def check_published(self) -> int:
        """The published version, after checking it is whole and verifies."""
        target = current_target(self.out)
        assert target is not None
        files = {p.name: p.read_bytes() for p in target.iterdir()}
        verified = verify_files(files.pop("manifest.json"), files.pop("manifest.json.sig"),
                                files, [self.key.public_key()], environment="production")
        assert verified.version is not None
        return verified.version


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    s = Setup(tmp_path)
    yield s
    for sidecar in s.sidecars:
        if sidecar.proc.poll() is None:
            sidecar.kill9()


def test_publishes_with_the_data_swap_and_runs_the_command(setup: Setup) -> None:
    setup.write(1)
    sidecar = setup.start("--exec", "sh -c 'echo $MAGCFG_VERSION >> notified'")
    assert wait_for(lambda: setup.published_version() == 1)
    assert (setup.out / "config.json").is_symlink()
    assert os.readlink(setup.out / "config.json") == f"{DATA_LINK}/config.json"
    assert json.loads((setup.out / "config.json").read_text())["logging"]["level"] == "debug"
    setup.write(2)
    assert wait_for(lambda: setup.published_version() == 2)
    assert wait_for(lambda: (setup.root / "notified").exists()
                    and (setup.root / "notified").read_text().split() == ["1", "2"])
    assert setup.check_published() == 2
    assert sidecar.terminate() == 0
    kinds = [e["type"] for e in sidecar.events()]
    assert kinds == [LOADED, PUBLISHED, RELOADED, PUBLISHED]
    published = sidecar.events("io.magflock.magcfg.config.published")[-1]["data"]
    assert published["version"] == 2 and published["exec"] == {"ok": True, "exit_code": 0}
    assert sorted(p.name for p in setup.out.iterdir() if p.name.startswith("..")) == sorted([
        DATA_LINK, current_target(setup.out).name])  # type: ignore[union-attr]


@pytest.mark.parametrize("tasks", [1, 2, 3])
def test_a_sidecar_that_can_start_no_thread_says_so(setup: Setup, tasks: int) -> None:
    """Where the system starts no more threads (a pids limit of 1, 2 or 3 tasks: the
    process, its signal thread, the stdout writer or the watcher, each refused in
    turn), watch stops with the limit's one line, exit 1: the events it could not write
    from a thread of their own it writes itself. It said `can't start new thread`, or
    `cannot join thread before it is started` (a thread that never ran, joined at the
    stop), which hid the limit."""
    from magcfg.errors import NO_NEW_TASK

    from ..conftest import no_more_tasks

    setup.write(1)
    with no_more_tasks(tasks) as limit:
        done = subprocess.run(
            _watch(["--artifact", str(setup.art), "--env", "production", "--public-key",
                    str(setup.pub), "--out", str(setup.out), "--state-dir", str(setup.state)],
                   None), cwd=setup.root, env=ENV, capture_output=True, text=True,
            timeout=60, check=False, preexec_fn=limit)
    assert (done.returncode, done.stderr) == (1, f"error: {NO_NEW_TASK}\n"), done.stderr
    written = [json.loads(line)["type"] for line in done.stdout.splitlines()]
    assert written in ([], [LOADED], [LOADED, PUBLISHED]), done.stdout
    if os.geteuid() == 0 and tasks > 1:  # root's pids limit: the signal thread started
        assert LOADED in written, done.stdout


def test_a_file_the_manifest_does_not_list_is_never_read_nor_published(setup: Setup) -> None:
    """The runtime's side of an artifact directory's unlisted files (``magcfg verify``
    and ``publish`` refuse them): the kernel reads the manifest's files alone, so the
    service gets the signed files and nothing else."""
    config = base_config(1)
    files = artifact_files(config, 1, setup.key)
    setup.writer.write({**files, ".config.json.tmp-1": b'{"planted": true}\n',
                        "extra.yaml": b"kind: Secret\n"})
    sidecar = setup.start()
    assert wait_for(lambda: setup.published_version() == 1)
    assert setup.check_published() == 1
    target = current_target(setup.out)
    assert target is not None
    assert sorted(p.name for p in target.iterdir()) == sorted(files)
    assert sidecar.terminate() == 0


def test_signals_the_application(setup: Setup) -> None:
    marker = setup.root / "hups"
    app = subprocess.Popen([sys.executable, "-c",
                            "import signal, sys, time\n"
                            "signal.signal(signal.SIGHUP, lambda *a: open(sys.argv[1], 'a')"
                            ".write('hup\\n'))\n"
                            "print('ready', flush=True)\n"
                            "time.sleep(60)\n", str(marker)],
                           stdout=subprocess.PIPE, text=True)
    try:
        assert app.stdout is not None and app.stdout.readline().strip() == "ready"
        setup.write(1)
        sidecar = setup.start("--signal", f"{app.pid}:HUP")
        assert wait_for(lambda: marker.exists() and marker.read_text().count("hup") == 1)
        setup.write(2)
        assert wait_for(lambda: marker.exists() and marker.read_text().count("hup") == 2)
        assert sidecar.terminate() == 0
        assert sidecar.events("io.magflock.magcfg.config.published")[-1]["data"]["signal"] == {
            "ok": True, "pid": app.pid, "signal": "SIGHUP"}
    finally:
        app.kill()
        app.wait()


def test_bad_deploys_are_refused_and_never_published(setup: Setup) -> None:
    setup.write(1)
    sidecar = setup.start()
    assert wait_for(lambda: setup.published_version() == 1)
    setup.write(2, key=Ed25519PrivateKey.generate())
    assert wait_for(lambda: bool(sidecar.events("io.magflock.magcfg.config.reload_failed")))
    setup.write(3, {**base_config(3), "magds": {**base_config(3)["magds"], "port": 1}})
    assert wait_for(lambda: len(sidecar.events("io.magflock.magcfg.config.reload_failed")) == 2)
    assert setup.check_published() == 1
    reasons = [e["data"]["reason"] for e in sidecar.events("io.magflock.magcfg.config.reload_failed")]
    assert reasons == ["bad_signature", "restart_required"]
    sidecar.terminate()
    # A restarted sidecar (a pod restart) boots the pending restart-only version.
    again = setup.start()
    assert wait_for(lambda: setup.published_version() == 3)
    again.terminate()


def test_restart_after_a_bad_deploy_serves_the_last_known_good(setup: Setup) -> None:
    setup.write(1)
    first = setup.start()
    assert wait_for(lambda: setup.published_version() == 1)
    first.terminate()
    setup.write(2, key=Ed25519PrivateKey.generate())
    second = setup.start()
    assert wait_for(lambda: bool(second.events("io.magflock.magcfg.config.loaded")))
    loaded = second.events("io.magflock.magcfg.config.loaded")[0]["data"]
    assert loaded["source"] == "last_known_good" and loaded["reason"] == "bad_signature"
    assert second.terminate() == 0
    assert setup.check_published() == 1


def test_kill_9_mid_swap_then_restart(setup: Setup) -> None:
    setup.write(1)
    setup.start()
    assert wait_for(lambda: setup.published_version() == 1)
    rng = random.Random(8)
    stop = threading.Event()
    torn: list[str] = []
    last = [1]

    def writer() -> None:
        version = 2
        while not stop.is_set():
            setup.write(version)
            last[0] = version
            version += 1

    def reader() -> None:
        # What an application does: open the files through the visible links.
        while not stop.is_set():
            try:
                manifest = json.loads((setup.out / "manifest.json").read_bytes())
                config = (setup.out / "config.json").read_bytes()
                again = json.loads((setup.out / "manifest.json").read_bytes())
            except (OSError, ValueError) as exc:
                torn.append(f"read failed: {exc!r}")
                continue
            from magcfg.signing.signatures import sha256_digest

            # Between two reads of the same version the config must match its manifest.
            if manifest == again and sha256_digest(config) != manifest["config_digest"]:
                torn.append(f"torn at version {manifest['version']}")

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    try:
        for _ in range(6):
            threading.Event().wait(rng.uniform(0.05, 0.4))
            setup.sidecars[-1].kill9()
            setup.check_published()  # whole and verified, whatever the moment of the kill
            setup.start()
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert torn == []
    assert wait_for(lambda: setup.published_version() == last[0], timeout=20)
    assert setup.check_published() == last[0]
    assert setup.sidecars[-1].terminate() == 0
    leftovers = sorted(p.name for p in setup.out.iterdir() if p.name.startswith(".."))
    assert leftovers == sorted([DATA_LINK, current_target(setup.out).name])  # type: ignore[union-attr]


def test_leftovers_of_an_interrupted_publish_are_cleaned(setup: Setup) -> None:
    old = artifact_files(base_config(1), 1, setup.key)
    publish(setup.out, old)
    half = setup.out / "..2026_01_01_00_00_00.half"
    half.mkdir()
    (half / "config.json").write_bytes(b'{"trunc')
    os.symlink(half.name, setup.out / TMP_LINK)
    setup.write(2)
    sidecar = setup.start()
    assert wait_for(lambda: setup.published_version() == 2)
    assert not half.exists() and not (setup.out / TMP_LINK).is_symlink()
    assert sidecar.terminate() == 0


@pytest.mark.parametrize("target", ["absolute", "../victim", "..hop"])
def test_a_data_link_it_did_not_write_is_replaced_never_followed(
        setup: Setup, tmp_path: Path, target: str) -> None:
    # The old version's directory is removed after each swap: through a planted link,
    # that would be any directory the sidecar may write.
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_bytes(b"mine\n")
    setup.out.mkdir(parents=True, exist_ok=True)
    if target == "..hop":
        os.symlink(victim, setup.out / "..hop")
    os.symlink(str(victim) if target == "absolute" else target, setup.out / DATA_LINK)
    assert current_target(setup.out) is None
    assert publish(setup.out, artifact_files(base_config(1), 1, setup.key))
    assert (victim / "keep.txt").read_bytes() == b"mine\n"
    assert current_target(setup.out) is not None
    assert os.readlink(setup.out / DATA_LINK).startswith("..2")
    assert json.loads((setup.out / "config.json").read_bytes()) == base_config(1)


@pytest.mark.parametrize("swap", ["exchange", "two renames"])
def test_entries_it_did_not_write_are_replaced_never_followed(
        setup: Setup, tmp_path: Path, swap: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if swap == "two renames":  # a filesystem without renameat2's exchange
        monkeypatch.setenv(FAULT_ENV, "no-exchange")
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_bytes(b"mine\n")
    planted = setup.out / DATA_LINK
    planted.mkdir(parents=True)  # a real directory where the link to a version belongs
    (planted / "config.json").write_bytes(b'{"planted": true}')
    os.symlink(victim, planted / "escape")  # removing the directory must not follow it
    (setup.out / TMP_LINK).mkdir()
    (setup.out / "config.json").mkdir()
    os.symlink(victim / "keep.txt", setup.out / "manifest.json")
    assert current_target(setup.out) is None
    files = artifact_files(base_config(1), 1, setup.key)
    assert publish(setup.out, files)
    assert (victim / "keep.txt").read_bytes() == b"mine\n"
    target = current_target(setup.out)
    assert target is not None and os.readlink(planted) == target.name
    for name in ("config.json", "manifest.json"):
        assert os.readlink(setup.out / name) == f"{DATA_LINK}/{name}"
    assert json.loads((setup.out / "config.json").read_bytes()) == base_config(1)
    assert setup.check_published() == 1
    assert sorted(p.name for p in setup.out.iterdir() if p.name.startswith("..")) == \
        sorted([DATA_LINK, target.name])
    assert not publish(setup.out, files)  # published already


def test_a_publish_stopped_between_its_two_renames_is_finished_on_recovery(
        setup: Setup) -> None:
    """Without renameat2, a real ``..data`` directory is moved aside before the link is
    renamed in: a publisher stopped between the two left no ``..data``, and recovery
    removed the complete new version with the leftovers."""
    publish(setup.out, artifact_files(base_config(1), 1, setup.key))
    version = current_target(setup.out)
    assert version is not None
    data = setup.out / DATA_LINK
    os.replace(data, setup.out / TMP_LINK)  # the link made, not yet renamed in
    (setup.out / "..data.aside-0123456789ab").mkdir()  # the directory moved aside
    assert recover(setup.out) == ["..data.aside-0123456789ab"]
    assert os.readlink(data) == version.name and current_target(setup.out) == version
    assert json.loads((setup.out / "config.json").read_bytes()) == base_config(1)


def test_a_huge_file_in_the_published_version_is_replaced_unread(setup: Setup) -> None:
    files = artifact_files(base_config(1), 1, setup.key)
    publish(setup.out, files)
    target = current_target(setup.out)
    assert target is not None
    os.truncate(target / "config.json", 3 * 1024**3)  # sparse: no disk, 3 GiB if read
    assert published_bytes(setup.out, "config.json") is None
    assert publish(setup.out, files)  # not what it published: published again
    assert setup.check_published() == 1


def test_files_already_published_are_not_published_again(setup: Setup) -> None:
    # A file below a directory (a manifest may list sub/extra.json) included: published
    # again, the app would be told of a change that is none at every sidecar start.
    files = {**artifact_files(base_config(1), 1, setup.key), "sub/extra.json": b"{}\n"}
    assert publish(setup.out, files)
    published = current_target(setup.out)
    assert not publish(setup.out, files) and current_target(setup.out) == published
    assert publish(setup.out, {**files, "sub/more.json": b"{}\n"})  # one file more
    assert publish(setup.out, files)  # one file fewer
    assert published_bytes(setup.out, "sub/extra.json") == b"{}\n"


@pytest.mark.parametrize("source", ["volume", "registry"])
def test_watch_replaces_a_data_directory_it_did_not_write(setup: Setup, source: str) -> None:
    # The output directory's, or the registry mirror's in the state directory.
    registry = HostileRegistry() if source == "registry" else None
    try:
        if registry is None:
            setup.write(1)
            (setup.out / DATA_LINK).mkdir(parents=True)
            sidecar = setup.start()
        else:
            registry.publish(1)
            (setup.state / "registry-mirror" / DATA_LINK).mkdir(parents=True)
            sidecar = Sidecar(["--artifact", registry.reference(), "--insecure-registry",
                               "--env", "production", "--public-key",
                               str(registry.public_key(setup.root / "registry.pub")),
                               "--out", str(setup.out), "--state-dir", str(setup.state)],
                              setup.root)
            setup.sidecars.append(sidecar)
            setup.key = registry.key
        assert wait_for(lambda: setup.published_version() == 1, timeout=20)
        assert setup.check_published() == 1
        assert sidecar.terminate() == 0, sidecar.stderr
        assert "Traceback" not in sidecar.stderr
    finally:
        if registry is not None:
            registry.stop()


@pytest.mark.parametrize("moment", ["start", "sighup"])
def test_sigterm_ends_a_wait_on_a_slow_registry_at_once(setup: Setup, moment: str) -> None:
    # Kubernetes kills a sidecar 30 s after its SIGTERM: a start, or a SIGHUP's re-check,
    # waiting on a registry that drips its answer must not hold the exit that long.
    registry = HostileRegistry()
    try:
        first = registry.publish(1)
        asked = registry.drip_manifest(first) if moment == "start" else None
        sidecar = Sidecar(["--artifact", registry.reference(), "--insecure-registry",
                           "--env", "production", "--public-key",
                           str(registry.public_key(setup.root / "registry.pub")),
                           "--out", str(setup.out), "--registry-interval", "3600",
                           "--registry-timeout", "60"], setup.root)
        setup.sidecars.append(sidecar)
        if asked is None:
            assert wait_for(lambda: setup.published_version() == 1, timeout=20)
            asked = registry.drip_manifest(registry.publish(2))
            sidecar.proc.send_signal(signal.SIGHUP)
        assert asked.wait(30)  # the sidecar waits on the answer, for up to 60 s
        started = time.monotonic()
        code = sidecar.terminate()
        assert (code, time.monotonic() - started < 8) == (0, True), sidecar.stderr
        # Stopped, not failed: no source_failed, no reload_failed, no error.
        assert sidecar.stderr == ""
        assert [e["type"] for e in sidecar.events()] == (
            [] if moment == "start" else [LOADED, PUBLISHED])
    finally:
        registry.stop()


@pytest.mark.parametrize("moment", ["start", "reload"])
def test_sigterm_ends_an_exec_command_that_runs_on(setup: Setup, moment: str) -> None:
    # The command (a reload script that hangs) runs for as long as it likes: the sidecar
    # ends it and exits at once, well within Kubernetes' 30 s grace period.
    setup.write(1)
    started = setup.root / "exec-started"
    hangs_on = 1 if moment == "start" else 2
    script = (f"echo $MAGCFG_VERSION >> {started}; "
              f"[ $MAGCFG_VERSION = {hangs_on} ] && exec sleep 600; true")
    sidecar = setup.start("--exec", f"sh -c '{script}'")
    if moment == "reload":
        assert wait_for(lambda: bool(sidecar.events(PUBLISHED)), timeout=30)
        setup.write(2)
    # The file is there, empty, before the shell writes the version into it.
    assert wait_for(lambda: started.exists()
                    and started.read_text().split()[-1:] == [str(hangs_on)], timeout=30)
    begun = time.monotonic()
    code = sidecar.terminate()
    assert (code, time.monotonic() - begun < 8) == (0, True), sidecar.stderr
    assert "Traceback" not in sidecar.stderr
    ended = sidecar.events(PUBLISHED)[-1]["data"]
    assert ended["exec"] == {"ok": False, "exit_code": -signal.SIGTERM}


@pytest.mark.parametrize("again", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_a_second_stop_during_the_stop_is_one_more_stop(setup: Setup,
                                                        again: signal.Signals) -> None:
    """The handlers went before the stop's work was done: a second SIGTERM while the
    stop waited (here on a reload's command that ignores SIGTERM, for 3 s) ended the
    process by the signal midway (a Ctrl-C there could exit 130)."""
    setup.write(1)
    started = setup.root / "exec-started"
    # The version is written once SIGTERM is ignored.
    script = ("[ $MAGCFG_VERSION = 2 ] && trap '' TERM; "
              f"echo $MAGCFG_VERSION >> {started}; [ $MAGCFG_VERSION = 2 ] && sleep 3; true")
    sidecar = setup.start("--exec", f"sh -c \"{script}\"")
    assert wait_for(lambda: bool(sidecar.events(PUBLISHED)), timeout=30)
    setup.write(2)
    assert wait_for(lambda: started.read_text().split()[-1:] == ["2"], timeout=30)
    sidecar.proc.send_signal(signal.SIGTERM)
    # The stop waits on the command: sent once the handlers are gone, if they go before.
    wait_for(lambda: (_dispositions(sidecar.proc.pid, signal.SIGTERM) or [(0, False)])[0][1]
             is False, timeout=2)
    assert sidecar.proc.poll() is None
    sidecar.proc.send_signal(again)
    code = sidecar.terminate()  # one more, and the wait for the exit
    assert (code, sidecar.stderr) == (0, "")
    assert sidecar.events(PUBLISHED)[-1]["data"]["exec"] == {"ok": True, "exit_code": 0}


@pytest.mark.parametrize("moment", ["start", "reload"])
def test_sigterm_ends_a_sidecar_whose_stdout_nobody_reads(setup: Setup, moment: str) -> None:
    """A line written to a pipe that nobody reads blocks for ever: on the main thread (a
    start) SIGTERM never ended the sidecar; on the watcher's, the exit's flush of
    stdout waited on it."""
    import fcntl

    setup.write(1)
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)

    def fill() -> None:  # as a reader that stopped reading leaves it
        os.set_blocking(write_end, False)
        with contextlib.suppress(BlockingIOError):
            while True:
                os.write(write_end, b"x" * 4096)
        os.set_blocking(write_end, True)

    if moment == "start":
        fill()
    proc = subprocess.Popen(_watch(["--artifact", str(setup.art), "--env", "production",
                                    "--public-key", str(setup.pub), "--out", str(setup.out),
                                    "--poll-interval", "0.2"], None),
                            cwd=setup.root, env=ENV, stdout=write_end,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: setup.published_version() == 1, timeout=30)
        if moment == "reload":
            said = b""
            while PUBLISHED.encode() not in said:  # the start's lines are out
                said += os.read(read_end, 65536)
            fill()
            setup.write(2)
            assert wait_for(lambda: setup.published_version() == 2, timeout=30)
        time.sleep(0.3)  # the event line of that publish is being written
        begun = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(10)
        except subprocess.TimeoutExpired:
            code = None
        assert (code, time.monotonic() - begun < 10) == (0, True)
        assert proc.stderr is not None and "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(read_end)
        os.close(write_end)


def test_secrets_never_reach_stdout_or_stderr(setup: Setup) -> None:
    setup.write(1)
    sidecar = setup.start()
    assert wait_for(lambda: setup.published_version() == 1)
    config = base_config(2)
    config["logging"]["level"] = "debug"
    config["features"]["api_token"] = CANARY
    setup.write(2, config)
    assert wait_for(lambda: setup.published_version() == 2)
    assert sidecar.terminate() == 0
    said = "".join(sidecar.lines) + sidecar.stderr
    assert CANARY not in said and "<redacted>" in said


@pytest.mark.parametrize(("args", "code", "message"), [
    (["--exec", "true", "--signal", "1:HUP"], 2, "--exec and --signal are exclusive"),
    (["--signal", "1:NOPE"], 2, "unknown signal"),
    (["--signal", "abc"], 2, "expected PID:SIGNAL"),
])
def test_usage_errors(setup: Setup, args: list[str], code: int, message: str) -> None:
    setup.write(1)
    result = subprocess.run([sys.executable, "-m", "magcfg", "watch", "--artifact",
                             str(setup.art), "--env", "production", "--public-key", str(setup.pub), "--out",
                             str(setup.out), *args], env=ENV, capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == code and message in result.stderr
    assert "Traceback" not in result.stderr and not setup.out.exists()


def test_nothing_to_serve_is_a_clear_error(setup: Setup) -> None:
    setup.write(1, key=Ed25519PrivateKey.generate())
    result = subprocess.run([sys.executable, "-m", "magcfg", "watch", "--artifact",
                             str(setup.art), "--env", "production", "--public-key", str(setup.pub), "--out",
                             str(setup.out)], env=ENV, capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    # One "error:" prefix: the refusal inside names its file, not a severity of its own.
    assert re.fullmatch(
        re.escape(f"error: {setup.art}: cannot load the config (bad_signature: {setup.art}/"
                  "..data/manifest.json.sig: signature does not match the manifest under any "
                  "trusted key (trusted: ") + "[0-9a-f]{16}" + re.escape(
            "); the manifest was changed after signing or signed with another key) and "
            "there is no last known-good state (no state_dir given)\n"), result.stderr), \
        result.stderr
    event = json.loads(result.stdout)["data"]
    assert event["reason"] == "bad_signature"
    assert event["error"].startswith(f"{setup.art}/..data/manifest.json.sig: signature ")
    assert not setup.out.exists()


def test_unreadable_key_and_unwritable_out_are_clear_errors(setup: Setup) -> None:
    setup.write(1)
    base = [sys.executable, "-m", "magcfg", "watch", "--artifact", str(setup.art),
            "--env", "production"]
    missing = subprocess.run([*base, "--public-key", str(setup.root / "nope.pub"), "--out",
                              str(setup.out)], env=ENV, capture_output=True, text=True,
                             timeout=30)
    assert missing.returncode == 1 and "nope.pub" in missing.stderr
    assert "key file not found" in missing.stderr and "Traceback" not in missing.stderr
    blocker = setup.root / "a-file"
    blocker.write_text("not a directory\n")
    blocked = subprocess.run([*base, "--public-key", str(setup.pub), "--out", str(blocker)],
                             env=ENV, capture_output=True, text=True, timeout=30)
    assert blocked.returncode == 1 and f"cannot publish into {blocker}" in blocked.stderr
    assert "Traceback" not in blocked.stderr and blocker.read_text() == "not a directory\n"



@pytest.mark.parametrize("value", ["nan", "inf"])
def test_a_poll_interval_of_no_number_is_a_usage_error_before_serving(
        setup: Setup, value: str) -> None:
    # It passes --poll-interval's min=0.05: served, the watcher then died at its first wait.
    setup.write(1)
    done = subprocess.run([sys.executable, "-m", "magcfg", "watch", "--artifact",
                           str(setup.art), "--env", "production", "--public-key",
                           str(setup.pub), "--out", str(setup.out), "--poll-interval", value],
                          env=ENV, capture_output=True, text=True, timeout=30)
    assert failed_cleanly(done, 2) == (f"error: the poll interval is a finite number of "
                                       f"seconds above 0, not {value}\n")
    assert done.stdout == "" and not setup.out.exists()


def test_a_failed_publish_names_its_file_and_leaves_out_as_it_was(setup: Setup) -> None:
    setup.write(1)
    args = ["--artifact", str(setup.art), "--env", "production", "--public-key",
            str(setup.pub), "--out", str(setup.out), "--poll-interval", "0.2"]
    sidecar = Sidecar(args, setup.root, fsize=2000)  # version 1's files are smaller
    setup.sidecars.append(sidecar)
    assert wait_for(lambda: bool(sidecar.events(PUBLISHED)))  # the whole publish done
    before = sorted(os.listdir(setup.out))
    config = base_config(2)
    config["features"]["note"] = "x" * 3000
    setup.write(2, config)
    assert wait_for(lambda: bool(sidecar.events(RELOAD_FAILED)))
    out = re.escape(str(setup.out))
    error = sidecar.events(RELOAD_FAILED)[0]["data"]["error"]
    assert re.fullmatch(rf"a subscriber rejected version 2: {out}/\.\.[^/]+/config\.json: "
                        rf"cannot publish into {out}: file too large", error), error
    assert sorted(os.listdir(setup.out)) == before and setup.check_published() == 1
    assert sidecar.terminate() == 0 and "Traceback" not in sidecar.stderr
    # At start: the same message, exit 1, and nothing of the new version left in --out.
    fresh = setup.root / "fresh"
    done = subprocess.run(_watch([*args[:-4], "--out", str(fresh)], 2000), env=ENV,
                          capture_output=True, text=True, timeout=60)
    message = failed_cleanly(done, 1)
    assert re.fullmatch(rf"error: {re.escape(str(fresh))}/\.\.[^/]+/config\.json: cannot "
                        rf"publish into {re.escape(str(fresh))}: file too large\n", message), message
    assert list(fresh.iterdir()) == []


def test_a_version_whose_state_cannot_be_saved_is_not_published(setup: Setup) -> None:
    """A full disk under --state-dir was only logged: version 2 went into --out with the
    state's floor at 1, and a restart took the older signed artifact and published it."""
    setup.write(1)
    args = ["--artifact", str(setup.art), "--env", "production", "--public-key",
            str(setup.pub), "--out", str(setup.out), "--state-dir", str(setup.state),
            "--poll-interval", "0.2"]
    limit = 9000  # version 1's state is smaller; version 2's state is not, its files are
    sidecar = Sidecar(args, setup.root, fsize=limit)
    setup.sidecars.append(sidecar)
    assert wait_for(lambda: bool(sidecar.events(PUBLISHED)))
    config = base_config(2)
    config["features"]["note"] = "x" * 6000
    setup.write(2, config)
    assert wait_for(lambda: bool(sidecar.events(RELOAD_FAILED)))
    data = sidecar.events(RELOAD_FAILED)[0]["data"]
    assert (data["stage"], data["reason"], data["active_version"]) == (
        "persist", "state_unwritable", 1)
    assert data["error"] == (f"{setup.state}/last-known-good.json: cannot save the last "
                             "known-good state: file too large: version 2 is not served "
                             "until its version floor is saved")
    assert setup.check_published() == 1 and not sidecar.events(RELOADED)
    assert sidecar.terminate() == 0 and "Traceback" not in sidecar.stderr
    # At start: the last known-good is served and published, not version 2.
    again = Sidecar(args, setup.root, fsize=limit)
    setup.sidecars.append(again)
    assert wait_for(lambda: bool(again.events(LOADED)))
    assert again.events(LOADED)[0]["data"]["source"] == "last_known_good"
    assert again.events(RELOAD_FAILED)[0]["data"]["reason"] == "state_unwritable"
    assert setup.check_published() == 1
    assert again.terminate() == 0 and "Traceback" not in again.stderr


def test_leftovers_it_cannot_remove_at_start_are_a_clear_error(setup: Setup) -> None:
    # An --out whose entries cannot be removed: the leftover link of an interrupted
    # publish stays. Root passes over permissions, so there it is made immutable
    # (chattr +i binds root too); anyone else gets a directory without write permission.
    setup.write(1)
    setup.out.mkdir()
    os.symlink("..gone", setup.out / TMP_LINK)
    root = os.geteuid() == 0
    if root:
        subprocess.run(["chattr", "+i", str(setup.out)], check=True, capture_output=True)
    else:
        setup.out.chmod(0o555)
    try:
        done = subprocess.run(_watch(["--artifact", str(setup.art), "--env", "production",
                                      "--public-key", str(setup.pub), "--out", str(setup.out)],
                                     None), env=ENV, capture_output=True, text=True, timeout=60)
    finally:
        if root:
            subprocess.run(["chattr", "-i", str(setup.out)], check=True)
        else:
            setup.out.chmod(0o755)
    assert failed_cleanly(done, 1) == (f"error: {setup.out}/{TMP_LINK}: cannot publish into "
                                       f"{setup.out}: permission denied\n")
    assert os.listdir(setup.out) == [TMP_LINK]


def test_help_lists_the_options() -> None:
    result = subprocess.run([sys.executable, "-m", "magcfg", "watch", "--help"], env=ENV,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    for option in ("--artifact", "--public-key", "--out", "--exec", "--signal", "--state-dir"):
        assert option in result.stdout


def _serving_metrics(setup: Setup) -> tuple[Sidecar, int]:
    """A sidecar serving its metrics, and their port. The sidecar binds the port it is
    given before its kernel starts: its first event says it bound it, and an exit
    saying the port is taken starts it again on another one."""

    def start(port: int) -> tuple[Sidecar, int]:
        sidecar = setup.start("--metrics-port", str(port))
        assert wait_for(lambda: sidecar.lines or sidecar.proc.poll() is not None)
        if not sidecar.lines:
            code = sidecar.terminate()
            if "Address already in use" in sidecar.stderr:
                raise PortTaken(sidecar.stderr)
            pytest.fail(f"the sidecar exited {code}: {sidecar.stderr}")
        return sidecar, port

    return on_a_free_port(start)


def test_metrics_endpoint(setup: Setup) -> None:
    import urllib.request

    setup.write(1)
    sidecar, port = _serving_metrics(setup)
    assert wait_for(lambda: setup.published_version() == 1)
    setup.write(2, key=Ed25519PrivateKey.generate())
    assert wait_for(lambda: bool(sidecar.events("io.magflock.magcfg.config.reload_failed")))

    def scrape() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            return str(r.read().decode())

    text = scrape()
    assert "magcfg_config_last_reload_successful 0.0" in text
    assert 'magcfg_config_reloads_failed_total{stage="verify"} 1.0' in text
    assert 'magcfg_config_info{env="production",version="1"} 1.0' in text
    assert "magcfg_config_last_reload_success_timestamp_seconds" in text
    assert "magcfg_config_rollbacks_total 0.0" in text and "magcfg_config_reloads_total 2.0" in text
    assert sidecar.terminate() == 0


def test_the_documented_deployment_is_valid_kubernetes() -> None:
    import kubernetes_validate
    import yaml

    text = (REPO / "docs/runtime.md").read_text()
    block = text.split("```yaml\napiVersion: apps/v1\n", 1)[1].split("```", 1)[0]
    doc = yaml.safe_load("apiVersion: apps/v1\n" + block)
    assert kubernetes_validate.validate(doc, "1.37", strict=True) == "1.37"
    sidecar = doc["spec"]["template"]["spec"]["initContainers"][0]
    assert sidecar["restartPolicy"] == "Always" and sidecar["args"][0] == "watch"
    assert sidecar["args"][sidecar["args"].index("--env") + 1] == "production"


# ---------------------------------------------------------------- options and identity

@pytest.mark.parametrize(("args", "message"), [
    (["--exec", "'unterminated"], "error: --exec \"'unterminated\": cannot split it into "
                                  "words (No closing quotation)"),
    (["--exec", "   "], "error: --exec is empty: give the command to run after each publish"),
    (["--exec", "no-such-program-5b2a91 --reload"],
     "error: --exec 'no-such-program-5b2a91 --reload': 'no-such-program-5b2a91' is not an "
     "executable file on PATH"),
    (["--exec", "./not-here.sh"], "error: --exec './not-here.sh': './not-here.sh' is not an "
                                  "executable file"),
    (["--signal", "99999999999999999999:HUP"], "error: --signal '99999999999999999999:HUP': "
                                               "the process id must be from 1 to 4194304"),
    (["--signal", "0:HUP"], "error: --signal '0:HUP': the process id must be from 1 to 4194304"),
    (["--signal", "1:99999999999999999999"], "error: --signal '1:99999999999999999999': "
                                             "unknown signal '99999999999999999999'"),
    (["--signal", "1:0"], "error: --signal '1:0': unknown signal '0'"),
    (["--env", "Production"], "error: --env 'Production': an environment name matches "
                              "[a-z0-9][a-z0-9_-]*"),
])
def test_options_are_checked_before_serving(setup: Setup, args: list[str],
                                            message: str) -> None:
    setup.write(1)
    result = subprocess.run([sys.executable, "-m", "magcfg", "watch", "--artifact",
                             str(setup.art), "--env", "production", "--public-key",
                             str(setup.pub), "--out", str(setup.out), "--state-dir",
                             str(setup.state), *args],
                            cwd=setup.root, env=ENV, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2, result.stderr
    assert result.stderr == message + "\n" and result.stdout == ""
    assert not setup.out.exists() and not setup.state.exists()


def test_another_environments_artifact_is_not_served(setup: Setup) -> None:
    setup.writer.write(artifact_files(base_config(1), 1, setup.key, env="staging"))
    result = subprocess.run([sys.executable, "-m", "magcfg", "watch", "--artifact",
                             str(setup.art), "--env", "production", "--public-key",
                             str(setup.pub), "--out", str(setup.out)],
                            env=ENV, capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "environment_mismatch" in result.stderr
    assert "is for environment 'staging', not 'production'" in result.stderr
    assert json.loads(result.stdout)["data"]["reason"] == "environment_mismatch"
    assert not setup.out.exists()


def _run_in_process(setup: Setup, stdout: Any
                    ) -> tuple[InProcessSidecar, threading.Thread, list[int]]:
    """A sidecar of ``setup``'s artifact run on a thread of this process, printing to
    ``stdout``; the list gets its exit code."""
    from magcfg.runtime.sidecar import Sidecar as InProcess
    from magcfg.runtime.sidecar import SidecarOptions

    sidecar = InProcess(SidecarOptions(artifact=setup.art, public_keys=[setup.pub],
                                       out=setup.out, environment="production",
                                       poll_interval=0.2), stdout=stdout)
    codes: list[int] = []
    runner = threading.Thread(target=lambda: codes.append(sidecar.run()), daemon=True)
    runner.start()
    return sidecar, runner, codes


def _break_the_watcher(setup: Setup, sidecar: InProcessSidecar, runner: threading.Thread,
                       timeout: float) -> None:
    """Once ``sidecar`` (run in process by ``runner``) watches with inotify, makes its
    watcher's next read fail for real (a directory where the inotify descriptor was),
    writes version 2 and waits up to ``timeout`` for ``runner`` to end."""
    assert wait_for(lambda: sidecar.kernel.status()["watch"] == "inotify")
    watcher = sidecar.kernel._watcher
    assert watcher is not None and watcher._inotify is not None
    directory = os.open(setup.root, os.O_RDONLY)
    try:
        os.dup2(directory, watcher._inotify.fd)
        setup.write(2)
        runner.join(timeout)
    finally:
        os.close(directory)


def test_the_sidecar_exits_1_when_its_watcher_dies(setup: Setup,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    setup.write(1)
    out = io.StringIO()
    sidecar, runner, codes = _run_in_process(setup, out)
    _break_the_watcher(setup, sidecar, runner, 90)
    assert codes == [1]
    kinds = [json.loads(line)["type"] for line in out.getvalue().splitlines()]
    assert "io.magflock.magcfg.config.watch_failed" in kinds, kinds
    assert capsys.readouterr().err.endswith(
        f"error: {setup.art}: the watcher stopped (IsADirectoryError: [Errno 21] Is a "
        "directory); exiting so that the sidecar is restarted\n")


def test_the_sidecar_exits_1_when_its_watcher_dies_and_stdout_is_gone(setup: Setup) -> None:
    setup.write(1)
    read_end, write_end = os.pipe()
    os.close(read_end)  # whoever read the events (a log collector) has gone: EPIPE
    out = os.fdopen(write_end, "w")
    sidecar, runner, codes = _run_in_process(setup, out)
    try:
        _break_the_watcher(setup, sidecar, runner, 30)
        assert codes == [1], "the sidecar went on with a dead watcher"
    finally:
        sidecar._stop.set()
        runner.join(30)
        with contextlib.suppress(OSError):
            out.close()


def test_the_application_is_told_of_a_publish_when_stdout_is_gone(setup: Setup) -> None:
    from magcfg.runtime.sidecar import Sidecar as InProcess
    from magcfg.runtime.sidecar import SidecarOptions

    setup.write(1)
    told = setup.root / "told"
    read_end, write_end = os.pipe()
    os.close(read_end)  # whoever read the events has gone: every line fails (EPIPE)
    out = os.fdopen(write_end, "w")
    sidecar = InProcess(SidecarOptions(
        artifact=setup.art, public_keys=[setup.pub], out=setup.out, environment="production",
        poll_interval=0.2, exec_command=f"sh -c 'echo $MAGCFG_VERSION >> {told}'"),
        stdout=out)
    stop = threading.Event()
    runner = threading.Thread(target=lambda: sidecar.run(stop), daemon=True)
    runner.start()
    try:
        assert wait_for(lambda: told.exists() and told.read_text() == "1\n", timeout=30)
        setup.write(2)
        assert wait_for(lambda: told.read_text() == "1\n2\n", timeout=30), told.read_text()
        assert setup.published_version() == 2
    finally:
        stop.set()
        runner.join(30)
        with contextlib.suppress(OSError):
            out.close()


def test_a_sidecar_run_in_process_ends_the_thread_writing_its_events(setup: Setup) -> None:
    """run() returns with the thread that writes the event lines ended: a process that
    goes on (an application's, a test's) keeps no thread per sidecar it ran, none
    holding the descriptor of an output closed after it."""
    setup.write(1)
    out = io.StringIO()
    sidecar, runner, codes = _run_in_process(setup, out)
    assert wait_for(lambda: PUBLISHED in out.getvalue())
    writer = sidecar._writer
    assert writer is not None and writer.is_alive()
    sidecar._stop.set()
    runner.join(30)
    assert codes == [0]
    assert not writer.is_alive()


@pytest.mark.parametrize(("option", "message"), [
    ("--audit-log", "cannot open the audit log: is a FIFO, not a regular file"),
    ("--schema", "cannot read the schema: is a FIFO, not a regular file"),
])
def test_a_fifo_as_a_configured_file_is_refused_not_waited_on(setup: Setup, option: str,
                                                               message: str) -> None:
    setup.write(1)
    fifo = setup.root / "configured"
    os.mkfifo(fifo)
    result = subprocess.run([sys.executable, "-m", "magcfg", "watch", "--artifact",
                             str(setup.art), "--env", "production", "--public-key",
                             str(setup.pub), "--out", str(setup.out), option, str(fifo)],
                            env=ENV, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr == f"error: {fifo}: {message}\n"
    assert not setup.out.exists()


# ---------------------------------------------------------------- operating it

def test_sighup_rechecks_the_source_at_once(setup: Setup) -> None:
    setup.write(1)
    sidecar = setup.start("--audit-log", str(setup.root / "audit.jsonl"))
    assert wait_for(lambda: setup.published_version() == 1)
    setup.write(2, {**base_config(2), "magds": {**base_config(2)["magds"], "port": 1}})
    assert wait_for(lambda: len(sidecar.events("io.magflock.magcfg.config.reload_failed")) == 1)
    # Content that was tried is not tried again on its own; SIGHUP re-checks it now, sent
    # as docs/runtime.md says to in a pod (whose PID 1 is the pause container), to this
    # test's own children alone (-P).
    text = (REPO / "docs/runtime.md").read_text()
    (command,) = re.findall(r"kubectl exec POD -c\s+magcfg -- (pkill [^`]*)`", text)
    words = shlex.split(command)
    assert words[:2] == ["pkill", "-HUP"]
    done = subprocess.run([*words[:2], "-P", str(os.getpid()), *words[2:]],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert wait_for(lambda: len(sidecar.events("io.magflock.magcfg.config.reload_failed")) == 2)
    again = sidecar.events("io.magflock.magcfg.config.reload_failed")[-1]["data"]
    assert (again["trigger"], again["reason"]) == ("signal", "restart_required")
    assert sidecar.proc.poll() is None  # still serving: a signal is not a restart
    assert sidecar.terminate() == 0
    lines = [json.loads(line) for line in (setup.root / "audit.jsonl").read_text().splitlines()]
    kid = lines[0]["data"]["key_id"]
    assert len(kid) == 16 and all(line["data"]["key_id"] == kid for line in lines)
    assert all(line["data"]["inputs_digest"].startswith("sha256:") for line in lines)



def _dispositions(pid: int, *signals: signal.Signals) -> list[tuple[bool, bool]] | None:
    """Whether the main thread of ``pid`` blocks each of ``signals`` and whether it
    catches it (``SigBlk``, ``SigCgt`` of one read of /proc/PID/status); None once the
    process is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    masks = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    blocked, caught = int(masks["SigBlk"], 16), int(masks["SigCgt"], 16)
    return [(bool(blocked & 1 << (sig - 1)), bool(caught & 1 << (sig - 1)))
            for sig in signals]


def _disposition(pid: int) -> tuple[bool, bool] | None:
    """:func:`_dispositions` of SIGHUP."""
    found = _dispositions(pid, signal.SIGHUP)
    return None if found is None else found[0]


def test_a_sighup_sent_before_the_handlers_exist_is_held_not_fatal(setup: Setup) -> None:
    # Scripts send a config-management sidecar SIGHUP right after starting it; its
    # default action ended the process during the imports and set-up before the
    # handlers existed. Sent here at the first moment the process is seen holding it.
    setup.write(1)
    sidecar = setup.start("--exec", "sh -c 'grep SigBlk /proc/self/status >> masks'")
    seen: list[tuple[bool, bool] | None] = []

    def held_or_caught() -> bool:
        seen.append(_disposition(sidecar.proc.pid))
        return seen[-1] is None or any(seen[-1])

    assert wait_for(held_or_caught, timeout=30, interval=0.001)
    assert seen[-1] == (True, False), seen[-1]  # held, and no handler of its own yet
    sidecar.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: setup.published_version() == 1, timeout=30)
    assert wait_for(lambda: _disposition(sidecar.proc.pid) == (False, True))
    assert sidecar.proc.poll() is None  # the held SIGHUP went to the handler
    setup.write(2)  # its command run by the watcher's thread, as the first by the main one
    masks = setup.root / "masks"
    assert wait_for(lambda: masks.exists() and len(masks.read_text().splitlines()) == 2)
    # The application's commands never inherit SIGHUP (nor SIGTERM, SIGINT) blocked.
    held = sum(1 << (sig - 1) for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT))
    assert [int(line.split()[1], 16) & held
            for line in masks.read_text().splitlines()] == [0, 0]
    assert sidecar.terminate() == 0, sidecar.stderr
    assert sidecar.stderr == ""


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
@pytest.mark.parametrize("how", ["module", "script"])
def test_a_stop_sent_before_the_handlers_exist_is_held_then_a_clean_stop(
        setup: Setup, stop: signal.Signals, how: str) -> None:
    """A supervisor's SIGTERM (or a Ctrl-C) in the ~0.1 s of imports and set-up before
    the handlers existed ended the process by its default action (a registry mirror
    left in the temporary directory) or raised KeyboardInterrupt through the imports (a
    traceback, exit 1): held from the command's first line, it is a stop like any."""
    setup.write(1)
    command = ([sys.executable, "-m", "magcfg"] if how == "module"
               else [str(Path(sys.executable).with_name("magcfg"))])
    proc = subprocess.Popen(
        [*command, "watch", "--artifact", str(setup.art), "--env", "production",
         "--public-key", str(setup.pub), "--out", str(setup.out), "--state-dir",
         str(setup.state)], cwd=setup.root, env=ENV, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True)
    try:
        seen: list[list[tuple[bool, bool]] | None] = []

        def hup_held_or_caught() -> bool:  # the command's first line has run
            seen.append(_dispositions(proc.pid, signal.SIGHUP, stop))
            return seen[-1] is None or any(seen[-1][0])

        assert wait_for(hup_held_or_caught, timeout=30, interval=0.001)
        assert seen[-1] is not None and seen[-1][0] == (True, False), seen[-1]
        assert seen[-1][1][0], seen[-1]  # the stop is held with SIGHUP
        proc.send_signal(stop)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (proc.returncode, stderr) == (0, "")
    # Nothing half written: the output holds one whole version or none, the state
    # directory no temp file.
    if setup.out.exists():
        assert recover(setup.out) == [] and setup.check_published() == 1
    if setup.state.exists():
        assert [p.name for p in setup.state.iterdir() if ".tmp" in p.name] == []


def test_a_sighup_storm_neither_ends_nor_wedges_the_sidecar(setup: Setup) -> None:
    # A handler that took a lock the main thread held (a threading.Event's) waited for
    # ever, and every further SIGHUP nested one more: the sidecar died of a
    # RecursionError, or sat deaf to SIGTERM until Kubernetes killed it.
    setup.write(1)
    sidecar = setup.start()
    assert wait_for(lambda: setup.published_version() == 1, timeout=30)
    version, sent = 1, 0
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and sidecar.proc.poll() is None:
        sidecar.proc.send_signal(signal.SIGHUP)
        sent += 1
        if sent % 100 == 0:  # deploys meanwhile, applied by the watcher's thread
            version += 1
            setup.write(version)
    assert sidecar.proc.poll() is None, sidecar.proc.stderr and sidecar.proc.stderr.read()
    assert wait_for(lambda: setup.published_version() == version, timeout=30)
    assert setup.check_published() == version
    started = time.monotonic()
    code = sidecar.terminate()
    assert (code, time.monotonic() - started < 8) == (0, True), sidecar.stderr
    assert sidecar.stderr == ""



def test_the_signal_thread_outlives_a_failing_stop(caplog: pytest.LogCaptureFixture) -> None:
    from magcfg.runtime.sidecar import _Signals

    stops: list[int] = []
    rechecks = threading.Event()

    def stop() -> None:
        stops.append(len(stops))
        if len(stops) == 1:
            raise OSError("the first stop fails")

    previous = signal.getsignal(signal.SIGTERM)
    signals = _Signals(stop, rechecks.set)
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        assert wait_for(lambda: stops == [0], timeout=10)
        os.kill(os.getpid(), signal.SIGTERM)  # the second is handled too
        os.kill(os.getpid(), signal.SIGHUP)
        assert wait_for(lambda: stops == [0, 1] and rechecks.is_set(), timeout=10)
    finally:
        signals.close()
    assert signal.getsignal(signal.SIGTERM) is previous
    assert "handling a signal failed: OSError" in caplog.text


def test_a_pending_restart_is_its_own_state_in_the_metrics(setup: Setup) -> None:
    import urllib.request

    setup.write(1)
    sidecar, port = _serving_metrics(setup)
    assert wait_for(lambda: setup.published_version() == 1)
    setup.write(2, {**base_config(2), "magds": {**base_config(2)["magds"], "port": 1}})
    assert wait_for(lambda: bool(sidecar.events("io.magflock.magcfg.config.reload_failed")))
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    assert "magcfg_config_last_reload_successful 1.0" in text  # the alert does not fire
    assert "magcfg_config_restart_pending 1.0" in text
    assert 'magcfg_config_reloads_failed_total{stage="policy"} 0.0' in text
    assert sidecar.terminate() == 0


def test_no_example_signals_pid_1() -> None:
    """Run as shown on a host, ``--signal 1:HUP`` signals init; in a pod that shares its
    PID namespace, PID 1 is the pause container. No example or help text suggests it."""
    import re

    shown = subprocess.run([sys.executable, "-m", "magcfg", "watch", "--help"],
                           env={**ENV, "COLUMNS": "250", "NO_COLOR": "1"}, capture_output=True,
                           text=True, timeout=30)
    assert shown.returncode == 0 and "--signal" in shown.stdout
    texts = {"magcfg watch --help": shown.stdout} | {
        p.relative_to(REPO).as_posix(): p.read_text(encoding="utf-8")
        for p in [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]}
    assert [name for name, text in texts.items()
            if re.search(r"--signal[ =]+1:|e\.g\. 1:", text)] == []
