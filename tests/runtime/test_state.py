"""The last known-good state file: what a writer killed mid-write leaves, and what start
removes (real processes, real kill -9); a state file larger than any the kernel writes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import magcfg
from magcfg.durable import FileTooLarge
from magcfg.runtime import Kernel, state
from magcfg.runtime.events import RELOADED, STATE_CORRUPT, ConfigRejected
from magcfg.runtime.kernel import KernelStartError
from magcfg.runtime.state import (
    MAX_STATE_BYTES,
    STATE_FILE,
    load_state,
    remove_stale_state_temps,
    save_state,
)
from magcfg.signing.keys import Ed25519PrivateKey

from .fixtures import artifact_files, base_config, rename_write, wait_for

PACKAGE = str(Path(magcfg.__file__).resolve().parents[1])

# Writes the state over and over, each time large enough that a kill lands mid-write.
WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from magcfg.runtime.state import save_state

    state = Path(sys.argv[1])
    big = {"config.json": b"x" * (32 * 1024 * 1024)}
    while True:
        save_state(state, b"{}", b"sig", big, 1, 1)
""")


NO_PID = 2**22
"""A pid no process has: Linux gives pids below PID_MAX_LIMIT (2**22) whatever pid_max
says. A dead writer's own pid may be given to a new process before start looks at its
temp file, and a temp file of a live pid is rightly kept."""


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _kill_mid_write(state: Path) -> str:
    """Start a writer, kill -9 it while its temp file exists; the temp file's name."""
    for _ in range(20):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(state)],
                                  env={**os.environ, "PYTHONPATH": PACKAGE})
        temp = f".{STATE_FILE}.tmp-{writer.pid}"
        try:
            assert wait_for(lambda t=temp: _size(state / t) > 0, timeout=60)
        finally:
            writer.send_signal(signal.SIGKILL)
            writer.wait()
        if (state / temp).exists():
            return temp
    pytest.fail("never caught the writer mid-write")


def test_kill_9_mid_write_leaves_a_temp_file_that_start_removes(tmp_path: Path) -> None:
    state = tmp_path / "state"
    left = state / f".{STATE_FILE}.tmp-{NO_PID}"  # as if no process took the writer's pid
    (state / _kill_mid_write(state)).rename(left)
    assert left.stat().st_size > 0
    key = Ed25519PrivateKey.generate()
    rename_write(tmp_path / "artifact", artifact_files(base_config(1), 1, key))
    kernel = Kernel(tmp_path / "artifact", [key.public_key()], state, watch=False,
                    environment="production").start()
    try:
        assert kernel.version == 1
        assert sorted(os.listdir(state)) == [STATE_FILE]
    finally:
        kernel.stop()


def test_only_dead_writers_temp_files_are_removed(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    alive, stuck = subprocess.Popen(sleeper), subprocess.Popen(sleeper)
    try:
        live_temp = state / f".{STATE_FILE}.tmp-{alive.pid}"
        live_temp.write_bytes(b"being written")
        dead_temp = state / f".{STATE_FILE}.tmp-{NO_PID}"
        dead_temp.write_bytes(b"left behind")
        # Its pid lives, but no write takes an hour: another process got the dead one's pid.
        old_temp = state / f".{STATE_FILE}.tmp-{stuck.pid}"
        old_temp.write_bytes(b"ancient")
        an_hour_ago = time.time() - 3600
        os.utime(old_temp, (an_hour_ago, an_hour_ago))
        outside = tmp_path / "precious"
        outside.write_bytes(b"not ours")
        link = state / f".{STATE_FILE}.tmp-{NO_PID + 1}"
        link.symlink_to(outside)
        others = [state / f".{STATE_FILE}.tmp-x{NO_PID}", state / "notes.txt",
                  state / f".other.json.tmp-{NO_PID}"]
        for path in others:
            path.write_bytes(b"keep")
        removed = remove_stale_state_temps(state)
        assert sorted(removed) == sorted([dead_temp.name, old_temp.name])
        assert live_temp.exists() and link.is_symlink() and outside.read_bytes() == b"not ours"
        assert all(path.exists() for path in others)
    finally:
        for process in (alive, stuck):
            process.kill()
            process.wait()


HUGE = 3 * 1024**3
"""A planted file's size: sparse (os.truncate), so it costs no disk, but read whole it
would take 3 GiB of memory."""


def test_a_huge_state_file_is_refused_unread(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    saved = tmp_path / "state"
    saved.mkdir()
    (saved / STATE_FILE).touch()
    os.truncate(saved / STATE_FILE, HUGE)
    corrupt: list[dict[str, object]] = []

    def kernel(artifact: Path) -> Kernel:
        made = Kernel(artifact, [key.public_key()], saved, watch=False,
                      environment="production")
        made.subscribe(STATE_CORRUPT, lambda event: corrupt.append(event["data"]))
        return made

    refused = f"{saved / STATE_FILE}: cannot read: is larger than {MAX_STATE_BYTES} bytes"
    with pytest.raises(KernelStartError) as info:
        kernel(tmp_path / "nothing").start()
    assert "no last known-good state in" in info.value.format()
    assert corrupt == [{"state_dir": str(saved), "error": refused}]
    rename_write(tmp_path / "artifact", artifact_files(base_config(1), 1, key))
    served = kernel(tmp_path / "artifact").start()
    try:
        assert (served.version, served.booted_from) == (1, "artifact")
        assert corrupt[-1]["error"] == refused
        assert (saved / STATE_FILE).stat().st_size < MAX_STATE_BYTES  # the new state
    finally:
        served.stop()


def test_a_state_larger_than_the_bound_is_not_written(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    path = save_state(tmp_path, b"{}", b"sig", {"config.json": b"{}"}, 1, 1)
    kept = path.read_bytes()
    monkeypatch.setattr(state, "MAX_STATE_BYTES", len(kept) + 64)
    with pytest.raises(FileTooLarge):
        save_state(tmp_path, b"{}", b"sig", {"config.json": b"x" * 1024}, 2, 2)
    assert path.read_bytes() == kept  # what load_state() would refuse is never written


def test_a_state_that_cannot_be_saved_names_its_file(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    rename_write(tmp_path / "artifact", artifact_files(base_config(1), 1, key))
    state_dir = tmp_path / "state"
    (state_dir / STATE_FILE).mkdir(parents=True)  # no file can be renamed over it
    kernel = Kernel(tmp_path / "artifact", [key.public_key()], state_dir, watch=False,
                    environment="production")
    with pytest.raises(KernelStartError) as info:
        kernel.start()
    assert (f"(state_unwritable: {state_dir / STATE_FILE}: cannot save the last known-good "
            "state: is a directory: version 1 is not served until its version floor is "
            "saved)") in info.value.format()
    assert not [name for name in os.listdir(state_dir) if name != STATE_FILE]


def test_a_state_directory_that_cannot_be_made_is_named(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    rename_write(tmp_path / "artifact", artifact_files(base_config(1), 1, key))
    (tmp_path / "file").write_text("a file where the state's parent goes\n")
    state_dir = tmp_path / "file/state"
    kernel = Kernel(tmp_path / "artifact", [key.public_key()], state_dir, watch=False,
                    environment="production")
    with pytest.raises(KernelStartError) as info:
        kernel.start()
    assert (f"{state_dir}: cannot save the last known-good state: not a directory"
            in info.value.format())


def test_a_version_whose_floor_cannot_be_saved_is_not_served(tmp_path: Path) -> None:
    """A save that failed was only logged, the new version served and published with
    the state's floor below it: after a restart the older signed artifact was accepted."""
    key = Ed25519PrivateKey.generate()
    artifact, state_dir = tmp_path / "artifact", tmp_path / "state"
    rename_write(artifact, artifact_files(base_config(1), 1, key))
    kernel = Kernel(artifact, [key.public_key()], state_dir, watch=False,
                    environment="production").start()
    seen: list[int] = []
    kernel.subscribe(RELOADED, lambda event: seen.append(event["data"]["version"]))
    try:
        (state_dir / STATE_FILE).unlink()
        (state_dir / STATE_FILE).mkdir()  # as a full disk: no state can be written
        rename_write(artifact, artifact_files(base_config(2), 2, key))
        result = kernel.reload()
        assert (result.status, result.reason, kernel.version) == (
            "refused", "state_unwritable", 1)
        assert result.event is not None and result.event["data"]["stage"] == "persist"
        assert seen == []  # no subscriber (the sidecar's publish) saw version 2
        (state_dir / STATE_FILE).rmdir()
        assert kernel.reload().status == "applied"  # retried once the state can be saved
        assert seen == [2]
    finally:
        kernel.stop()
    rename_write(artifact, artifact_files(base_config(1), 1, key))
    restarted = Kernel(artifact, [key.public_key()], state_dir, watch=False,
                       environment="production").start()
    try:
        assert (restarted.version, restarted.booted_from) == (2, "last_known_good")
    finally:
        restarted.stop()


def test_the_floor_is_saved_before_subscribers_see_a_version(tmp_path: Path) -> None:
    """The state was written after the subscribers ran: a crash while they ran (the
    sidecar's publish done) left the floor of the version before."""
    key = Ed25519PrivateKey.generate()
    artifact, state_dir = tmp_path / "artifact", tmp_path / "state"
    rename_write(artifact, artifact_files(base_config(1), 1, key))
    kernel = Kernel(artifact, [key.public_key()], state_dir, watch=False,
                    environment="production").start()
    floors: list[int] = []

    def reloaded(event: dict[str, object]) -> None:
        saved = load_state(state_dir)
        assert saved is not None
        floors.append(saved.highest_version)
        if len(floors) == 2:
            raise ConfigRejected("not this one")

    kernel.subscribe(RELOADED, reloaded)
    try:
        rename_write(artifact, artifact_files(base_config(2), 2, key))
        assert kernel.reload().status == "applied"
        rename_write(artifact, artifact_files(base_config(3), 3, key))
        assert kernel.reload().reason == "subscriber_rejected"
        assert floors == [2, 3]
        saved = load_state(state_dir)
        assert saved is not None
        # The version served again is the last known-good; the floor stays at the
        # version that was served while its subscribers ran.
        assert (json.loads(saved.manifest_bytes)["version"], saved.highest_version) == (2, 3)
    finally:
        kernel.stop()


def test_a_state_of_another_format_is_refused_without_quoting_it(tmp_path: Path) -> None:
    """Whatever planted a state file chose its values: the format named in it was quoted
    in the error of config.state_corrupt, its checksum made to match."""
    canary = "CANARY-51c0e2-do-not-leak"
    body: dict[str, object] = {"format": canary, "version": 1, "highest_version": 1,
                               "manifest": "", "signature": "", "files": {}}
    body["checksum"] = state._checksum(body)
    (tmp_path / STATE_FILE).write_text(json.dumps(body))
    with pytest.raises(state.StateCorrupt) as info:
        load_state(tmp_path)
    assert str(info.value) == (f"{tmp_path / STATE_FILE}: unreadable state (ValueError: not "
                               "of format 1)")
