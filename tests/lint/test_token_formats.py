"""The detectors borrowed from detect-secrets and gitleaks (lint/token_formats.py)."""

from __future__ import annotations

import random
import re
import string
from typing import Any

import pytest
from detect_secrets.filters import heuristic

from magcfg.lint import token_formats
from magcfg.lint.token_formats import entropy_hits
from magcfg.lint.walk import source


class _Counted:
    """A pattern that counts the characters it is given to search."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern
        self.chars = 0

    def search(self, text: str, pos: int = 0, endpos: int | None = None) -> Any:
        end = len(text) if endpos is None else min(endpos, len(text))
        self.chars += max(0, end - pos)
        return self.pattern.search(text, pos, end)

    def match(self, text: str, pos: int = 0, endpos: int | None = None) -> Any:
        end = len(text) if endpos is None else min(endpos, len(text))
        self.chars += max(0, end - pos)
        return self.pattern.match(text, pos, end)


def test_a_long_line_of_strings_is_searched_once_for_their_context(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Each string's context (a digest's or a signature's key, `..._id`, a credential's
    key) is looked for near it or in one search of the line, not in the line up to it
    again for each string: a minified JSON line of n strings took n times its length."""
    counted = {name: _Counted(getattr(token_formats, name))
               for name in ("_DIGEST_CONTEXT", "_PUBLIC_SIGNATURE", "_CREDENTIAL_KEY")}
    for name, pattern in counted.items():
        monkeypatch.setattr(token_formats, name, pattern)
    ids = _Counted(heuristic._get_id_detector_regex())
    monkeypatch.setattr(heuristic, "_get_id_detector_regex", lambda: ids)
    draw = random.Random(3)
    alphabet = string.ascii_letters + string.digits

    def work(strings: int) -> int:
        values = ",".join(f'"v{i}":"{"".join(draw.choices(alphabet, k=40))}"'
                          for i in range(strings))
        before = sum(p.chars for p in (*counted.values(), ids))
        found = list(entropy_hits(source("conf/keys.json", f"{{{values}}}\n".encode())))
        assert len(found) > strings * 0.9  # nearly all measured and found
        return sum(p.chars for p in (*counted.values(), ids)) - before

    assert work(800) < 2.3 * work(400)
