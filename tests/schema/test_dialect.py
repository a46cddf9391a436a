"""schema.dialect.engine: jsonschema-rs imported without email.utils and its imports."""

from __future__ import annotations

import email.utils
import subprocess
import sys

import pytest

from magcfg.schema.dialect import _build_date

_IMPORTED = """
import sys
from magcfg.schema.dialect import engine

jsonschema_rs = engine()
print(sorted(m for m in ("email.utils", "socket", "calendar", "random") if m in sys.modules))
assert jsonschema_rs.Draft202012Validator({"type": "integer"}).is_valid(1)
dated = jsonschema_rs.jsonschema_rs.__build__["info-time"]
import email.utils
print(email.utils.format_datetime(dated) == email.utils.format_datetime(
    email.utils.parsedate_to_datetime(email.utils.format_datetime(dated))))
print(callable(email.utils.formataddr))
"""


def test_jsonschema_rs_is_imported_without_email_utils() -> None:
    """What the extension imports when it dates its build stays out (~6 ms of each build
    that compiles a piece of the schema); ``email.utils`` is the real module afterwards,
    and the build's date what the real function reads."""
    done = subprocess.run([sys.executable, "-c", _IMPORTED], capture_output=True, text=True,
                          timeout=60, check=False)
    assert (done.returncode, done.stdout) == (0, "[]\nTrue\nTrue\n"), done.stderr


@pytest.mark.parametrize("text", [
    "Thu, 12 Nov 2026 07:50:16 +0000", "Mon, 1 Jan 2024 00:00:00 +0000",
    "Thu, 12 Nov 2026 07:50:16 -0500", "12 Nov 2026 07:50:16 GMT",
    "Thu, 12 Nov 2026 07:50:16 -0000"])
def test_the_stand_in_reads_a_date_as_email_utils_does(text: str) -> None:
    assert _build_date(text) == email.utils.parsedate_to_datetime(text)
    assert _build_date(text).tzinfo == email.utils.parsedate_to_datetime(text).tzinfo


@pytest.mark.parametrize("text", ["Sat, 31 Feb 2026 07:50:16 +0000", "no date", ""])
def test_the_stand_in_fails_as_email_utils_does(text: str) -> None:
    with pytest.raises(ValueError) as real:
        email.utils.parsedate_to_datetime(text)
    with pytest.raises(ValueError) as ours:
        _build_date(text)
    assert str(ours.value) == str(real.value)
