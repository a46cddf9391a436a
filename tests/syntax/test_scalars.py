"""The one table for plain scalars: YAML 1.2 core where YAML 1.1 agrees, refused where
they differ, checked against PyYAML (a real YAML 1.1 reader) as the independent oracle."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from magcfg.syntax.scalars import INT_MAX, INT_MIN, canonical_number, resolve_plain, resolve_plain_key

from .yaml_corpus import YAML_WORDS, number


@pytest.mark.parametrize(("text", "value"), [
    ("", None), ("~", None), ("null", None), ("Null", None), ("NULL", None),
    ("true", True), ("True", True), ("TRUE", True), ("false", False), ("FALSE", False),
    ("0", 0), ("-0", 0), ("+7", 7), ("-12", -12), ("0x1F", 31), ("0xff", 255),
    (str(INT_MAX), INT_MAX), (str(INT_MIN), INT_MIN),
    ("0.5", 0.5), ("-1.25", -1.25), ("1.", 1.0), (".5", 0.5), ("00.5", 0.5), ("1.5e+3", 1500.0),
    ("2.5E-1", 0.25), ("-0.0", -0.0),
    ("nULL", "nULL"), ("tRUE", "tRUE"), ("inf", "inf"), ("nan", "nan"), ("0X1F", "0X1F"),
    ("_1", "_1"), ("1.2.3", "1.2.3"), ("10.0.0.1", "10.0.0.1"), ("2024-01-02", "2024-01-02"),
    ("09:30", "09:30"), ("5m", "5m"), ("0x", "0x"), ("1e", "1e"), (".", "."), ("-", "-"),
])
def test_accepted(text: str, value: Any) -> None:
    resolved, refusal = resolve_plain(text)
    assert refusal is None
    assert type(resolved) is type(value) and resolved == value
    if type(value) is float:
        assert math.copysign(1, resolved) == math.copysign(1, value)


@pytest.mark.parametrize(("text", "code", "message"), [
    ("yes", "ambiguous", "'yes' means different things in YAML 1.1 and 1.2 (true in 1.1, "
     "text in 1.2): write true, or quote it if it is text"),
    ("n", "ambiguous", "'n' means different things in YAML 1.1 and 1.2 (false in 1.1, text "
     "in 1.2): write false, or quote it if it is text"),
    ("=", "ambiguous", "'=' means different things in YAML 1.1 and 1.2 (a value key in 1.1, "
     "text in 1.2): quote it"),
    ("<<", "ambiguous", "'<<' means different things in YAML 1.1 and 1.2 (a merge key in "
     "1.1, text in 1.2): quote it"),
    ("0755", "ambiguous", "'0755' is octal in YAML 1.1 and decimal in 1.2 (493 and 755): "
     "write 755 (or 493, the octal value), or quote it"),
    ("007", "ambiguous", "'007' is octal in YAML 1.1 and decimal in 1.2 (both 7 here): "
     "write 7, or quote it"),
    ("09", "ambiguous", "'09' means different things in YAML 1.1 and 1.2 (text in 1.1, the "
     "number 9 in 1.2): write 9, or quote it if it is text"),
    ("0o17", "ambiguous", "'0o17' means different things in YAML 1.1 and 1.2 (text in 1.1, "
     "the number 15 in 1.2): write 15, or quote it if it is text"),
    ("1_000", "ambiguous", "'1_000' means different things in YAML 1.1 and 1.2 (the number "
     "1000 in 1.1, text in 1.2): write 1000, or quote it if it is text"),
    ("-0x1F", "ambiguous", "'-0x1F' means different things in YAML 1.1 and 1.2 (the number "
     "-31 in 1.1, text in 1.2): write -31, or quote it if it is text"),
    ("1e+20", "ambiguous", "'1e+20' means different things in YAML 1.1 and 1.2 (text in "
     "1.1, the number 1.0e+20 in 1.2): write 1.0e+20, or quote it if it is text"),
    ("+.5", "ambiguous", "'+.5' means different things in YAML 1.1 and 1.2 (text in 1.1, "
     "the number 0.5 in 1.2): write 0.5, or quote it if it is text"),
    ("1:30", "ambiguous", "'1:30' means different things in YAML 1.1 and 1.2 (the number 90 "
     "in 1.1, text in 1.2): write 90, or quote it if it is text"),
    ("0b_", "ambiguous", "'0b_' means different things in YAML 1.1 and 1.2 (an error in "
     "1.1, text in 1.2): quote it if it is text"),
    (".inf", "float", "'.inf' is not representable in JSON"),
    ("-.Inf", "float", "'-.Inf' is not representable in JSON"),
    (".NaN", "float", "'.NaN' is not representable in JSON"),
    ("1.0e+400", "float", "'1.0e+400' is not representable in JSON"),
    (str(INT_MAX + 1), "int-range", f"'{INT_MAX + 1}' is outside the 64-bit integer range "
     f"({INT_MIN} to {INT_MAX}): quote it if it is text"),
    ("0xFFFFFFFFFFFFFFFF", "int-range", "'0xFFFFFFFFFFFFFFFF' is outside the 64-bit integer "
     f"range ({INT_MIN} to {INT_MAX}): quote it if it is text"),
    ("9" * 5000, "int-range", "'99999999999999999999'... (5000 characters) is outside the "
     f"64-bit integer range ({INT_MIN} to {INT_MAX}): quote it if it is text"),
    # base 60 past 64 bits or past the floats (OverflowError; 100,000 parts took 3.4 s)
    ("1" + ":0" * 11, "ambiguous", f"'1{':0' * 11}' means different "
     "things in YAML 1.1 and 1.2 (an integer beyond 64 bits in 1.1, text in 1.2): quote it "
     "if it is text"),
    ("1" + ":0" * 175, "ambiguous", f"'1{':0' * 9}:'... (351 characters) means different "
     "things in YAML 1.1 and 1.2 (an integer beyond 64 bits in 1.1, text in 1.2): quote it "
     "if it is text"),
    ("-1" + ":0" * 175 + ".5", "ambiguous", f"'-1{':0' * 9}'... (354 characters) means "
     "different things in YAML 1.1 and 1.2 (the number -inf in 1.1, text in 1.2): quote it "
     "if it is text"),
    ("1" + ":0" * 100_000, "ambiguous", f"'1{':0' * 9}:'... (200001 characters) means "
     "different things in YAML 1.1 and 1.2 (an integer beyond 64 bits in 1.1, text in "
     "1.2): quote it if it is text"),
])
def test_refused(text: str, code: str, message: str) -> None:
    assert resolve_plain(text) == (text, (code, message))


def test_keys_are_told_to_quote() -> None:
    assert resolve_plain_key("on") == ("on", (
        "ambiguous", "key 'on' means different things in YAML 1.1 and 1.2 (true in 1.1, "
        "text in 1.2): quote the key"))
    assert resolve_plain_key("a") == ("a", None)


def _yaml11(text: str) -> Any:
    """PyYAML's reading of a plain value, the YAML 1.1 oracle."""
    return yaml.load(f"v: {text}\n", Loader=yaml.SafeLoader)["v"]


tokens = st.one_of(
    st.builds(lambda seed: number(random.Random(seed)), st.integers(0, 2**32)),
    st.sampled_from(YAML_WORDS),
    st.text("0123456789._+-eExXoObB:", min_size=1, max_size=12),
)


@settings(max_examples=3000, deadline=None)
@given(tokens)
def test_what_is_accepted_reads_the_same_in_yaml_11(text: str) -> None:
    value, refusal = resolve_plain(text)
    if refusal is not None:
        return
    try:
        oracle = _yaml11(text)
    except yaml.YAMLError:
        return  # not a plain scalar at all (a ':' or '-' indicator): the parser decides
    if isinstance(oracle, str) or type(oracle).__name__ in ("date", "datetime"):
        assert value == text  # timestamps stay text: YAML 1.1's optional type is not applied
    else:
        assert type(value) is type(oracle) and value == oracle, (text, value, oracle)


@settings(max_examples=1000, deadline=None)
@given(st.one_of(st.integers(INT_MIN, INT_MAX),
                 st.floats(allow_nan=False, allow_infinity=False)))
def test_canonical_numbers_read_back(value: float) -> None:
    text = canonical_number(value)
    assert resolve_plain(text) == (value, None)
    assert _yaml11(text) == value
