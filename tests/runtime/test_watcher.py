"""The directory watcher on its own: what a process around it may be like."""

from __future__ import annotations

import os
import resource
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from magcfg.runtime.watcher import DirectoryWatcher

from .fixtures import wait_for


@pytest.fixture
def many_descriptors() -> Iterator[None]:
    """1100 descriptors held open, as by a server's connections: the watcher's own are
    numbered above 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # The machines this runs on allow far more; a lower hard limit fails, not skips.
    assert hard == resource.RLIM_INFINITY or hard >= 2048, f"open files limited to {hard}"
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2048), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        yield
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.parametrize("use_inotify", [True, False], ids=["inotify", "poll"])
def test_a_watcher_with_descriptors_above_1024_watches(
        tmp_path: Path, many_descriptors: None, use_inotify: bool) -> None:
    seen: list[str] = []
    changed = threading.Event()

    def on_change(trigger: str) -> None:
        seen.append(trigger)
        changed.set()

    watcher = DirectoryWatcher(tmp_path, on_change, poll_interval=0.2,
                               use_inotify=use_inotify)
    assert watcher._stop_r > 1024
    watcher.start()
    try:
        (tmp_path / "config.json").write_text("{}\n")
        assert changed.wait(30), "no change seen"
        assert watcher.failure is None and watcher.mode == (
            "inotify" if use_inotify else "poll")
    finally:
        watcher.stop()
    assert wait_for(lambda: watcher._thread is not None and not watcher._thread.is_alive())
    assert watcher.failure is None


def test_a_directory_inotify_cannot_watch_is_reported_as_polled(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A watch that could not be added (the watch limit, a directory not there yet) was
    ignored: mode said inotify while only the poll saw changes."""
    directory = tmp_path / "later"
    watcher = DirectoryWatcher(directory, lambda trigger: None, poll_interval=0.05)
    assert watcher.mode == "inotify"  # Linux, where the sidecar runs
    watcher.start()
    try:
        assert watcher.mode == "poll"
        assert f"{directory}: cannot watch it with inotify (No such file or directory)" \
            in caplog.text
        directory.mkdir()
        assert wait_for(lambda: watcher.mode == "inotify")  # the poll adds it again
    finally:
        watcher.stop()


@pytest.mark.parametrize(("option", "value", "message"), [
    ("poll_interval", float("inf"), "the poll interval is a finite number of seconds above 0, "
                                    "not inf"),
    ("poll_interval", float("nan"), "the poll interval is a finite number of seconds above 0, "
                                    "not nan"),
    ("poll_interval", 0, "the poll interval is a finite number of seconds above 0, not 0"),
    ("poll_interval", -1.0, "the poll interval is a finite number of seconds above 0, "
                            "not -1.0"),
    ("debounce", float("nan"), "the debounce is a finite number of seconds of at least 0, "
                               "not nan"),
    ("debounce", float("inf"), "the debounce is a finite number of seconds of at least 0, "
                               "not inf"),
    ("max_delay", float("inf"), "the debounce's upper bound is a finite number of seconds "
                                "of at least 0, not inf"),
    ("max_delay", -0.5, "the debounce's upper bound is a finite number of seconds of at "
                        "least 0, not -0.5"),
])
def test_an_interval_that_is_no_finite_number_of_seconds_is_refused(
        tmp_path: Path, option: str, value: float, message: str) -> None:
    """Taken, an infinite or NaN interval ended the watcher's thread at its first wait
    (OverflowError, ValueError) and one of 0 or below polled in a busy loop."""
    opened = len(os.listdir("/proc/self/fd"))
    with pytest.raises(ValueError) as info:
        DirectoryWatcher(tmp_path, lambda trigger: None, **{option: value})
    assert str(info.value) == message
    assert len(os.listdir("/proc/self/fd")) == opened  # no pipe nor inotify left open
