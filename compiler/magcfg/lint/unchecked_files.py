"""MAG007: a file the gate could not check.

A file over ``walk.MAX_FILE_BYTES``, or one that cannot be read, is not checked for
secrets; passing it over in silence would let a pull request hide a secret by padding its
file. It is reported instead, and accepted by name with ``lint.exclude`` (or the
baseline) once someone knows what it holds.
"""

from __future__ import annotations

from .context import line_hash
from .findings import RULES, Finding
from .walk import UncheckedFile

RULE = "MAG007"
FIX = ("check it yourself; if it holds no secret, add its path to `lint.exclude` in the "
       "project file (or accept it in the baseline)")


def finding(unchecked: UncheckedFile) -> Finding:
    """The finding for ``unchecked``. Its fingerprint is the file's content (else the
    reason: its size, say), so a baseline entry accepts the file as it was when
    accepted, not what it is edited into."""
    return Finding(file=unchecked.path, line=1, column=1, rule=RULE,
                   message=f"not checked for secrets: {unchecked.reason}", fix=FIX,
                   severity=RULES[RULE].severity,
                   line_hash=unchecked.digest or line_hash(unchecked.reason))
