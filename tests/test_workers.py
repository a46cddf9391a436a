from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest

from magcfg.workers import Forked, available_jobs, run_shares, weighted_runs

from .conftest import Project, failed_cleanly


def _square(n: int) -> bytes:
    return str(n * n).encode()


def test_each_share_runs_in_its_own_process() -> None:
    parent = os.getpid()

    def pid_of(n: int) -> bytes:
        return f"{n}:{os.getpid()}".encode()

    with Forked([1, 2, 3], pid_of) as children:
        mine = pid_of(0)
        theirs = children.results()
    assert mine == f"0:{parent}".encode()
    shares = [r.decode().split(":") for r in theirs if r is not None]
    assert [s[0] for s in shares] == ["1", "2", "3"]
    pids = {int(s[1]) for s in shares}
    assert len(pids) == 3 and parent not in pids


def test_large_results_come_back_whole() -> None:
    big = os.urandom(3 << 20)  # more than a pipe holds: the child blocks until read

    with Forked([0], lambda _: big) as children:
        assert children.results() == [big]


def test_a_failing_child_gives_none() -> None:
    def work(n: int) -> bytes:
        if n == 2:
            raise RuntimeError("boom")
        if n == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        return _square(n)

    with Forked([1, 2, 3, 4], work) as children:
        assert children.results() == [b"1", None, None, b"16"]


def test_leaving_early_stops_the_children() -> None:
    def forever(_: int) -> bytes:
        signal.pause()
        return b""

    with pytest.raises(KeyError), Forked([1, 2], forever) as children:
        pids = [pid for pid, _ in children._children]
        raise KeyError("stop")
    for pid in pids:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reaped already: not our child any more


def test_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    assert available_jobs(3) == 3
    assert available_jobs(0) == 1
    script = "from magcfg.workers import available_jobs; print(available_jobs())"
    env = {k: v for k, v in os.environ.items() if k != "MAGCFG_JOBS"}
    for setting, expected in (("3", 3), (" 2 ", 2), ("", len(os.sched_getaffinity(0))),
                              (None, len(os.sched_getaffinity(0)))):
        if setting is not None:
            env["MAGCFG_JOBS"] = setting
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                              text=True, check=True)
        assert int(done.stdout) == expected, setting


@pytest.mark.parametrize("setting", ["abc", "0", "-1", "2.5", "\u00b2", "9" * 5000],
                         ids=["abc", "0", "-1", "2.5", "superscript", "5000 digits"])
def test_a_bad_jobs_setting_is_a_usage_error(mini: Project, setting: str) -> None:
    """As ``--jobs abc`` is: the build does not run on some other number."""
    done = mini.run("build", env={"MAGCFG_JOBS": setting})
    assert failed_cleanly(done, 2) == (
        f"error: MAGCFG_JOBS={setting!r}: give a whole number of processes, 1 or more\n")
    assert not (mini.root / "generated").exists()


def test_no_fork_by_default_beside_other_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAGCFG_JOBS", "4")
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert available_jobs() == 1
        assert available_jobs(4) == 4
    finally:
        stop.set()
        thread.join()


@pytest.mark.parametrize("jobs", [1, 2, 3, 8])
def test_weighted_runs_are_consecutive_and_about_even(jobs: int) -> None:
    sizes = {"a": 5, "b": 1, "c": 9, "d": 2, "e": 4, "f": 4}
    runs = weighted_runs(sorted(sizes), sizes.__getitem__, jobs)
    assert [k for run in runs for k in run] == sorted(sizes)
    assert 1 <= len(runs) <= jobs and all(runs)
    if jobs == 2:
        assert runs == [["a", "b", "c"], ["d", "e", "f"]]  # 15 and 10 of 25


def test_run_shares_gives_each_result_in_order_and_makes_up_for_a_failed_child() -> None:
    parent = os.getpid()

    def here(n: int) -> tuple[int, int]:
        if n == 2 and os.getpid() != parent:
            os._exit(3)  # this child dies: its share is done again in the parent
        return n * n, os.getpid()

    def dumps(result: tuple[int, int]) -> bytes:
        return f"{result[0]}:{result[1]}".encode()

    def loads(data: bytearray) -> tuple[int, int]:
        square, pid = data.decode().split(":")
        return int(square), int(pid)

    out = run_shares([0, 1, 2, 3], here, dumps, loads)
    assert [square for square, _ in out] == [0, 1, 4, 9]
    pids = [pid for _, pid in out]
    assert pids[0] == parent and pids[2] == parent  # the first share, and the made-up one
    assert parent not in (pids[1], pids[3]) and pids[1] != pids[3]
    assert run_shares([5], here, dumps, loads) == [(25, parent)]  # one share: no fork


def test_a_childs_results_cross_a_wide_pipe_uncopied(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pipe a child writes its results to holds 1 MB where Linux lets it (64 KB by
    default: 16 times the turns of the two processes for tens of megabytes), and the
    child writes its results themselves after their length, never a joined copy."""
    import fcntl
    from pathlib import Path

    from magcfg import workers

    pipes: list[tuple[int, int]] = []
    real_pipe, real_write = os.pipe, workers.write_all
    made: list[bytes] = []

    def pipe() -> tuple[int, int]:
        pipes.append(real_pipe())
        return pipes[-1]

    def write_all(fd: int, data: bytes) -> None:
        if len(data) != 8 and data is not made[-1]:  # in the child: it then fails
            raise AssertionError("a copy of the results")
        real_write(fd, data)

    def work(_: int) -> bytes:
        size = fcntl.fcntl(pipes[-1][1], getattr(fcntl, "F_GETPIPE_SZ", 1032))
        made.append(size.to_bytes(8, "big") + os.urandom(3 << 20))
        return made[-1]

    monkeypatch.setattr(os, "pipe", pipe)
    monkeypatch.setattr(workers, "write_all", write_all)
    with Forked([0], work) as children:
        found = children.results()[0]
    assert found is not None and len(found) == 8 + (3 << 20)
    # Below the system's limit for a user (pipe-max-size), the pipe keeps its size.
    limit = int(Path("/proc/sys/fs/pipe-max-size").read_text())
    assert int.from_bytes(found[:8], "big") == workers.PIPE_BYTES or limit < workers.PIPE_BYTES
