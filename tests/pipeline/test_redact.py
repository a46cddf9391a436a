"""The redact stage: what a build reports quotes no secret value."""

from __future__ import annotations

from magcfg.errors import Diagnostic
from magcfg.pipeline.redact import MIN_QUOTED_SECRET, redact_diagnostics
from magcfg.secrets.redaction import Redactor


def test_a_secret_literal_is_masked_in_messages_about_other_keys_from_its_minimum() -> None:
    """cue's error about ``port`` quotes the value ``password`` gave it; a text shorter
    than the minimum (an app's name under a secret ``user``, ``x``) is in most messages
    by chance and stays, or no message could be read."""
    long_enough = "k" * MIN_QUOTED_SECRET
    short = long_enough[1:]
    d = Diagnostic("layers/a.cue", 2, "db.port",
                   f'conflicting values 1 and "{long_enough}" (x: {short})', code="cue")
    [masked] = redact_diagnostics(Redactor(None, ["db.password"]), [d],
                                  {long_enough, short})
    assert masked.message == f'conflicting values 1 and "<redacted>" (x: {short})'
