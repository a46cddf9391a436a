"""The audit log's lines: whole JSON lines, whatever the disk does under them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import magcfg

PACKAGE = str(Path(magcfg.__file__).resolve().parents[1])

# A full disk in the middle of a line: the file-size limit cuts a write short as ENOSPC
# does (part of it written, then an error), and is lifted as space would come back.
FILLS_UP = """
import resource, signal, sys
from magcfg.runtime.audit import AuditLog

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
log = AuditLog(sys.argv[1])
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (3000, hard))
failed = 0
for n in range(5):
    try:
        log.write({"type": "before", "n": n, "data": {"pad": "x" * 1000}})
    except OSError:
        failed += 1
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
log.write({"type": "after", "n": 5})
log.write({"type": "after", "n": 6})
print(failed)
"""


def test_a_line_cut_short_by_a_full_disk_does_not_swallow_the_next(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    done = subprocess.run([sys.executable, "-c", FILLS_UP, str(path)], capture_output=True,
                          text=True, timeout=60, check=False,
                          env={**os.environ, "PYTHONPATH": PACKAGE})
    assert done.returncode == 0, done.stderr
    assert done.stdout == "3\n"  # the third line cut short, two more refused outright
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""
    assert [json.loads(line)["n"] for line in lines[:2]] == [0, 1]
    assert [json.loads(line) for line in lines[-3:-1]] == [{"type": "after", "n": 5},
                                                           {"type": "after", "n": 6}]
    assert len(lines) == 6  # two whole, the cut one, the two after it, the end


def test_an_audit_log_that_cannot_be_opened_is_named_before_the_artifact_is_read(
        tmp_path: Path) -> None:
    """A missing directory is made; a file where it would be is refused, naming the log
    and saying why, before the artifact (missing here too) is read. mkdir said "File
    exists" of it."""
    keys = tmp_path / "keys"
    done = subprocess.run([sys.executable, "-m", "magcfg", "keys", "generate", "--out",
                           str(keys)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": PACKAGE})
    assert done.returncode == 0, done.stderr
    (tmp_path / "var").write_text("a file\n")

    def watch(log: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "magcfg", "watch", "--artifact", str(tmp_path / "none"),
             "--env", "dev", "--public-key", str(keys / "magcfg.pub"), "--out",
             str(tmp_path / "out"), "--audit-log", str(log)],
            capture_output=True, text=True, timeout=60,
            env={**os.environ, "PYTHONPATH": PACKAGE})

    for log in (tmp_path / "var/audit.jsonl", tmp_path / "var/log/audit.jsonl"):
        refused = watch(log)
        assert (refused.returncode, refused.stderr) == (
            1, f"error: {log}: cannot open the audit log: Not a directory\n")
    made = watch(tmp_path / "log/magcfg/audit.jsonl")
    assert made.returncode == 1 and "/none: cannot load the config" in made.stderr
    assert "reload_failed" in (tmp_path / "log/magcfg/audit.jsonl").read_text()
    assert not (tmp_path / "out").exists()
