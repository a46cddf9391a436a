"""The meaning of a plain YAML scalar, one table for both parsers.

A plain (unquoted) scalar is read by the YAML 1.2 core schema (like CUE, Go's yaml.v3
and yaml-rs), but only where YAML 1.1 (as PyYAML, the resolver most 1.1 tools share,
reads it) gives the same value: wherever the two differ (``yes``, ``0755``, ``1_000``,
``0b101``, ``0o17``, ``1e3``, ``1:30``, ``=``...), magcfg refuses the scalar instead of
picking one meaning. Integers must fit in 64 bits (signed), floats must be finite: what
JSON consumers hold without loss.

Quoted and block scalars are always text; this table only decides plain ones.
"""

from __future__ import annotations

import math
import re
import sys
from typing import Any

INT_MIN = -(2**63)
INT_MAX = 2**63 - 1

_NUMERIC_START = frozenset("-+.0123456789")
# Beyond this many digits a number cannot fit in 64 bits; never convert it (Python
# refuses int() of 4,300+ digits, and the value is refused anyway).
_MAX_DIGITS = 40


class _Big:
    """An integer with more digits than any 64-bit value: out of range, never converted."""

    def __repr__(self) -> str:
        return "BIG"


_BIG: Any = _Big()
_FLOAT_MAX = sys.float_info.max

# YAML 1.2 core schema (https://yaml.org/spec/1.2.2/#1032-tag-resolution).
_CORE_WORDS: dict[str, Any] = {
    "": None, "~": None, "null": None, "Null": None, "NULL": None,
    "true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False,
}
_CORE_DEC = re.compile(r"[-+]?[0-9]+")
_CORE_OCT = re.compile(r"0o[0-7]+")
_CORE_HEX = re.compile(r"0x[0-9a-fA-F]+")
_CORE_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_CORE_INF = re.compile(r"[-+]?\.(?:inf|Inf|INF)")
_CORE_NAN = re.compile(r"\.(?:nan|NaN|NAN)")

# YAML 1.1: the spec's bool words (with y/n) and PyYAML's number patterns.
_Y11_WORDS: dict[str, Any] = {
    **_CORE_WORDS,
    **dict.fromkeys(["y", "Y", "yes", "Yes", "YES", "on", "On", "ON"], True),
    **dict.fromkeys(["n", "N", "no", "No", "NO", "off", "Off", "OFF"], False),
}
_Y11_INT = re.compile(r"[-+]?(?:0b[0-1_]+|0[0-7_]+|0|[1-9][0-9_]*|0x[0-9a-fA-F_]+)")
_Y11_INT60 = re.compile(r"[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+")
_Y11_FLOAT = re.compile(r"[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9_]+(?:[eE][-+][0-9]+)?")
_Y11_FLOAT60 = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*")
_Y11_SPECIAL = frozenset(["=", "<<"])  # the value key and the merge key: no data in JSON

SEXAGESIMAL = re.compile(_Y11_INT60.pattern + "|" + _Y11_FLOAT60.pattern)
"""YAML 1.1 base-60 numbers (``1:30`` is 90): the only plain texts containing ``:`` that
this table refuses."""

YAML11_ONLY_WORDS = frozenset(
    [*(w for w in _Y11_WORDS if w not in _CORE_WORDS), *_Y11_SPECIAL])
"""Plain words YAML 1.2 reads as text and YAML 1.1 does not (``yes``, ``off``, ``=``)."""


class _Text:
    def __repr__(self) -> str:
        return "TEXT"


_TEXT: Any = _Text()
"""The plain scalar is text (its own characters)."""


class _Broken:
    def __repr__(self) -> str:
        return "BROKEN"


_BROKEN: Any = _Broken()
"""A YAML 1.1 reader fails on it (``0b_``, ``._``: number patterns without digits)."""


def _int(sign_and_digits: str, base: int) -> Any:
    """Raises ValueError when there are no digits."""
    digits = sign_and_digits.lstrip("+-")
    if len(digits) > _MAX_DIGITS:
        return _BIG
    number = int(digits, base)
    return -number if sign_and_digits.startswith("-") else number


def _yaml12(text: str) -> Any:
    if _CORE_DEC.fullmatch(text):
        return _int(text, 10)
    if _CORE_OCT.fullmatch(text):
        return _int(text[2:], 8)
    if _CORE_HEX.fullmatch(text):
        return _int(text[2:], 16)
    if _CORE_FLOAT.fullmatch(text):
        return float(text)
    if _CORE_INF.fullmatch(text):
        return -math.inf if text[0] == "-" else math.inf
    if _CORE_NAN.fullmatch(text):
        return math.nan
    return _TEXT


def _yaml11(text: str) -> Any:
    try:
        return _yaml11_number(text)
    except ValueError:
        return _BROKEN


def _yaml11_number(text: str) -> Any:
    if _Y11_INT.fullmatch(text):
        sign = "-" if text[0] == "-" else ""
        digits = text.lstrip("+-").replace("_", "")
        if digits == "0":
            return 0
        if digits.startswith("0b"):
            return _int(sign + digits[2:], 2)
        if digits.startswith("0x"):
            return _int(sign + digits[2:], 16)
        if digits.startswith("0"):
            return _int(sign + digits, 8)
        return _int(sign + digits, 10)
    if _Y11_INT60.fullmatch(text) or _Y11_FLOAT60.fullmatch(text):
        total: float = 0
        for part in text.lstrip("+-").replace("_", "").split(":"):
            total = total * 60 + (float(part) if "." in part else int(part))
            # Stop where the value is refused anyway: past 64 bits for an integer, past
            # the floats for a float. Multiplying on was quadratic in the parts (100,000
            # took 3.4 s), and an integer part past 1.8e308 raised OverflowError.
            if "." not in text and total > -INT_MIN:
                return _BIG
            if total > _FLOAT_MAX:
                return -math.inf if text[0] == "-" else math.inf
        return -total if text[0] == "-" else total
    if _Y11_FLOAT.fullmatch(text):
        return float(text.replace("_", ""))
    if _CORE_INF.fullmatch(text):
        return -math.inf if text[0] == "-" else math.inf
    if _CORE_NAN.fullmatch(text):
        return math.nan
    return _TEXT


def _same(a: Any, b: Any) -> bool:
    if type(a) in (_Text, _Big, _Broken) or type(b) in (_Text, _Big, _Broken):
        return a is b
    if type(a) is not type(b):
        return False
    if type(a) is float and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


def _describe(value: Any) -> str:
    if value is _TEXT:
        return "text"
    if value is None:
        return "null"
    if type(value) is bool:
        return "true" if value else "false"
    if value is _BIG:
        return "an integer beyond 64 bits"
    if value is _BROKEN:
        return "an error"
    return f"the number {canonical_number(value)}"


def canonical_number(value: int | float) -> str:
    """How to write ``value`` so that YAML 1.1 and 1.2 both read exactly it."""
    if type(value) is int:
        return str(value)
    text = repr(value)
    if "e" in text:
        mantissa, exponent = text.split("e")
        if "." not in mantissa:
            mantissa += ".0"
        return f"{mantissa}e{exponent}"
    return text


def _shown(text: str) -> str:
    return repr(text) if len(text) <= 40 else f"{text[:20]!r}... ({len(text)} characters)"


Refusal = tuple[str, str]
"""``(code, message)``: why a plain scalar is refused."""


def _out_of_json(text: str, value: Any, fix: str) -> Refusal | None:
    """The number rule: integers in 64 bits (signed), floats finite."""
    if value is _BIG or (type(value) is int and not INT_MIN <= value <= INT_MAX):
        return ("int-range", f"{_shown(text)} is outside the 64-bit integer range "
                f"({INT_MIN} to {INT_MAX}): {fix}")
    if type(value) is float and not math.isfinite(value):
        return ("float", f"{_shown(text)} is not representable in JSON")
    return None


def json_number(token: str) -> tuple[int | float, Refusal | None]:
    """A JSON number as another tool printed it (``cue export``), under the rule plain
    scalars follow: ``(value, None)``, or ``(0, refusal)``, never converting a number of
    more digits than any 64-bit integer has."""
    if token.lstrip("-").isdigit():
        value: Any = _int(token, 10)
    else:
        value = float(token)
    refusal = _out_of_json(token, value, "write a smaller number")
    return (0, refusal) if refusal is not None else (value, None)


def resolve_plain_key(text: str) -> tuple[Any, Refusal | None]:
    """``resolve_plain`` for a mapping key, whose fix is always to quote it."""
    return _resolve(text, key=True)


def resolve_plain(text: str) -> tuple[Any, Refusal | None]:
    """``(value, None)``, or ``(text, (code, message))`` when magcfg refuses the plain
    scalar."""
    return _resolve(text, key=False)


def _resolve(text: str, key: bool) -> tuple[Any, Refusal | None]:
    def ambiguous(reading: str, fix: str) -> tuple[Any, Refusal]:
        if key:
            return text, ("ambiguous", f"key {reading}: quote the key")
        return text, ("ambiguous", f"{reading}: {fix}")

    if text in _CORE_WORDS:
        return _CORE_WORDS[text], None
    if text in YAML11_ONLY_WORDS:
        if text in _Y11_SPECIAL:
            kind = "merge" if text == "<<" else "value"
            return ambiguous(f"{text!r} means different things in YAML 1.1 and 1.2 (a {kind} "
                             "key in 1.1, text in 1.2)", "quote it")
        meaning = _describe(_Y11_WORDS[text])
        return ambiguous(f"{text!r} means different things in YAML 1.1 and 1.2 ({meaning} in "
                         "1.1, text in 1.2)", f"write {meaning}, or quote it if it is text")
    if text[0] not in _NUMERIC_START:
        return text, None
    v12, v11 = _yaml12(text), _yaml11(text)
    refusal = _out_of_json(text, v12, "quote it if it is text")
    if refusal is not None:
        return text, refusal
    digits = text.lstrip("+-")
    leading_zero = type(v12) is int and digits[:1] == "0" and digits[1:2].isdigit()
    if _same(v11, v12) and not leading_zero:
        return (text if v12 is _TEXT else v12), None
    if type(v11) is int and type(v12) is int:
        if v11 != v12:
            return ambiguous(f"{text!r} is octal in YAML 1.1 and decimal in 1.2 ({v11} and "
                             f"{v12})", f"write {v12} (or {v11}, the octal value), or quote it")
        return ambiguous(f"{text!r} is octal in YAML 1.1 and decimal in 1.2 (both {v12} here)",
                         f"write {v12}, or quote it")
    number = v12 if v12 is not _TEXT else v11
    if type(number) in (int, float) and math.isfinite(number):
        fix = f"write {canonical_number(number)}, or quote it if it is text"
    else:
        fix = "quote it if it is text"
    return ambiguous(f"{_shown(text)} means different things in YAML 1.1 and 1.2 "
                     f"({_describe(v11)} in 1.1, {_describe(v12)} in 1.2)", fix)
