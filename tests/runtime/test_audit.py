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
