"""A seeded generator of hostile YAML layer files, and the differential oracle.

Used by tests/syntax/test_differential.py (a fixed corpus in CI) and by
benchmarks/fuzz_loader.py (for as long as it is given). Documents are built from a
grammar of fragments: block and flow collections, keys of odd shapes, scalars of every
style, numbers in every base and spelling, block scalars with chomping and indentation
indicators, tags, anchors and aliases, comments (with ``!``), then mutated byte-wise
with control characters, YAML 1.1 line breaks, tabs, carriage returns and indicators.
Half the documents are drawn from the bytes the fast path accepts, so that most of them
reach both parsers.

``disagreement(raw)`` is the oracle: ``None`` when both paths read ``raw`` alike (both
refuse with located errors, or both accept identical data, types included), else a
description of the difference.
"""

from __future__ import annotations

import math
import random
import traceback
from collections.abc import Iterator
from typing import Any

from magcfg.errors import BuildError
from magcfg.syntax.strict_yaml import (
    LoadFailed,
    _parse_fast,
    decode_text,
    fast_path_eligible,
    parse_layer,
    parse_reference,
)

WORDS = ["a", "b", "key", "name", "x y", "café", "k-1", "_x", "a.b", "a/b", "k_01"]
YAML_WORDS = ["true", "True", "TRUE", "false", "FALSE", "tRUE", "null", "Null", "NULL", "nULL",
              "~", "yes", "No", "ON", "off", "y", "N", "=", "<<", "inf", "nan", ".inf",
              "-.Inf", ".NaN", ".nAn", "+.inf", "2024-01-02", "2024-01-02T10:00:00Z",
              "10:30:00", "1:30", "09:30", "1:30.5"]
ODD_PLAIN = ["-", "--", "---", "...", ":", "::", "a:b", "a :b", "a#b", "a #b", "#", "%x",
             "@x", "`x", "-x", "?x", "? x", "[x", "x]", "{x", "x}", "a,b", ">", "|", "*x",
             "&x", "!x", "!", "a: b", "'x", '"x', "x'", 'x"', "\\", "\\n", "-1-", "1.2.3",
             "10.0.0.1", "5m", "8080/tcp", "0x", "0b", "0o", "1e", "1e-", ".e3", ". 5",
             "é", "\u00a0", "\u3000x", "x\u200b", "💥"]
HOSTILE = ["\x00", "\x07", "\x08", "\x0b", "\x0c", "\x1b", "\x7f", "\x80", "\x85", "\x9f",
           "\u2028", "\u2029", "\ufeff", "\ufffe", "\uffff", "\t", "\r", "\r\n", "\n",
           " ", "  ", "!", "#", ":", "-", "?", "&", "*", "|", ">", "%", "@", "`", "'",
           '"', "\\", "[", "]", "{", "}", ",", "<<", "---", "...", "\n---\n", "\n...\n"]
TAGS = ["!unset", "!replace", "!!str", "!!int", "!!float", "!!bool", "!!null", "!!map",
        "!!seq", "!!binary", "!!set", "!!omap", "!!timestamp", "!", "!b", "!<tag:yaml.org,2002:str>",
        "!<x>", "!!python/object", "!e!x"]
ESCAPES = ["\\n", "\\t", "\\\\", '\\"', "\\x41", "\\u00e9", "\\U0001F600", "\\0", "\\a",
           "\\e", "\\N", "\\_", "\\L", "\\P", "\\/", "\\ ", "\\\t", "\\q", "\\x4", "\\u12",
           "\\\n"]
# What the fast path's byte check lets through (see strict_yaml._FAST_BYTES).
FAST_ALPHABET = set(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 \n-_.:,[]{}#'\"~+/=$^();?é")


def number(rng: random.Random) -> str:
    """A number-like token in any base, spelling, sign and underscore placement."""
    sign = rng.choice(["", "", "-", "+"])
    kind = rng.randrange(7)
    digits = "".join(rng.choice("0123456789") for _ in range(rng.choice([1, 1, 2, 3, 5, 19, 20, 25])))
    if kind == 0:
        body = digits
    elif kind == 1:
        body = rng.choice(["0x", "0X", "0o", "0O", "0b", "0B"]) + "".join(
            rng.choice("0123456789abcdefABCDEF") for _ in range(rng.randrange(0, 18)))
    elif kind == 2:
        body = digits + "." + "".join(rng.choice("0123456789") for _ in range(rng.randrange(0, 4)))
    elif kind == 3:
        body = rng.choice(["", digits, digits + "."]) + rng.choice([".5", "", "5"]) + \
            rng.choice(["e", "E"]) + rng.choice(["", "+", "-"]) + str(rng.randrange(0, 400))
    elif kind == 4:
        body = "0" + digits
    elif kind == 5:
        body = "." + digits
    else:
        body = ":".join(str(rng.randrange(0, 99)) for _ in range(rng.randrange(2, 4)))
    if rng.random() < 0.25 and body:
        at = rng.randrange(len(body) + 1)
        body = body[:at] + "_" * rng.choice([1, 1, 2]) + body[at:]
    return sign + body


def usual(rng: random.Random) -> str:
    """A scalar as layers usually have them."""
    return rng.choice([str(rng.randrange(-10**6, 10**6)), f"{rng.uniform(-1e3, 1e3):.3f}",
                       "true", "false", "null", "~", "", rng.choice(WORDS), "http://x.org/a?b",
                       "'quoted: text'", '"double # quoted"', "2024-01-02", "v1.2.3", "10.0.0.1",
                       "a b c", "5m", "-x", "key=value", "a,b"])


def plain(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.15:
        return rng.choice([str(rng.randrange(-10**6, 10**6)), f"{rng.uniform(-1e3, 1e3):.3f}",
                           f"{rng.uniform(0, 1):.1f}", str(rng.randrange(10)), "0", "-0", "+1",
                           "1.", ".5", "0x1F", "0xff", "1.5e+3", str(2**63 - 1), str(-2**63),
                           str(2**63), str(10**25)])
    if roll < 0.35:
        return number(rng)
    if roll < 0.6:
        return rng.choice(YAML_WORDS)
    if roll < 0.8:
        return rng.choice(WORDS)
    return rng.choice(ODD_PLAIN)


def scalar(rng: random.Random, indent: int) -> str:
    """An inline scalar of any style (block scalars open lines below ``indent``)."""
    roll = rng.random()
    text = plain(rng)
    if roll < 0.55:
        return text
    if roll < 0.7:
        return "'" + text.replace("'", rng.choice(["''", "'"])) + "'"
    if roll < 0.85:
        inner = "".join(rng.choice([text, rng.choice(ESCAPES), " ", "'"]) for _ in range(rng.randrange(1, 4)))
        return '"' + inner + '"'
    if roll < 0.9:  # a quoted scalar over several lines
        quote = rng.choice(["'", '"'])
        pad = " " * (indent + rng.choice([0, 1, 2]))
        return quote + text + "\n" + pad + plain(rng) + rng.choice(["", "\n" + pad]) + quote
    header = rng.choice(["|", ">", "|-", ">-", "|+", ">+", "|2", ">1-", "|-1", "|+2", "|0"])
    pad = " " * (indent + rng.choice([0, 1, 2, 2, 4]))
    lines = [rng.choice(["", pad + plain(rng), pad + " " + plain(rng), pad + "#x", pad[:-1] + "x"])
             for _ in range(rng.randrange(0, 4))]
    trailer = rng.choice(["", "\n", "\n\n", "\n" + pad + "\n"])
    return header + rng.choice(["", " #c"]) + "".join("\n" + line for line in lines) + trailer


def key(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.6:
        return rng.choice(WORDS[:4]) + rng.choice(["", "", str(rng.randrange(10))])
    if roll < 0.8:
        return plain(rng)
    if roll < 0.9:
        return rng.choice(["'", '"']) + rng.choice(WORDS) + rng.choice(["'", '"'])
    return rng.choice(["? a", "? [a, b]", "[a]", "{a: 1}", "", "- a", "a b", "*x", "&x a",
                       "!!str a", "!unset", "a:", '"a"', "'a'"])


def flow(rng: random.Random, depth: int) -> str:
    items = []
    mapping = rng.random() < 0.4
    for _ in range(rng.randrange(0, 4)):
        if depth < 3 and rng.random() < 0.25:
            item = flow(rng, depth + 1)
        else:
            item = scalar(rng, 0) if rng.random() < 0.8 else rng.choice(["", ":", ": x", "?", "- x"])
            item = item.replace("\n", " ")
        if mapping or rng.random() < 0.1:
            item = f"{key(rng)}{rng.choice([': ', ': ', ': ', ':', ' : '])}{item}"
        items.append(item)
    sep = rng.choice([", ", ", ", ",", " , ", ",\n  "])
    body = sep.join(items) + rng.choice(["", "", ",", ", "])
    return ("{" + body + "}") if mapping else ("[" + body + "]")


def value(rng: random.Random, indent: int, depth: int) -> str:
    """What follows ``key:`` (or ``- ``): an inline value, or a nested block below."""
    roll = rng.random()
    prefix = ""
    if rng.random() < 0.08:
        prefix = rng.choice(TAGS) + " "
    if rng.random() < 0.05:
        prefix += f"&{rng.choice(['x', 'y', 'a1'])} "
    if roll < 0.08:
        return " " + prefix.strip() if prefix else ""
    if roll < 0.12:
        return " *" + rng.choice(["x", "y", "a1", "zz"])
    if roll < 0.3 and depth < 5:
        child = indent + rng.choice([2, 2, 1, 4, 0])
        return (" " + prefix.strip() if prefix else "") + "\n" + block(rng, child, depth + 1)
    if roll < 0.45:
        return " " + prefix + flow(rng, 0)
    return " " + prefix + scalar(rng, indent + 1)


def block(rng: random.Random, indent: int, depth: int) -> str:
    pad = " " * indent
    lines = []
    sequence = rng.random() < (0.3 if depth else 0.05)
    for _ in range(rng.randrange(1, 5)):
        if rng.random() < 0.1:
            lines.append(pad + rng.choice(["# c!", "#!x", "# !!str", "", "  # x"]))
            continue
        lead = pad + ("- " if sequence else "")
        if sequence and rng.random() < 0.3:
            lines.append(lead + key(rng) + ":" + value(rng, indent + 2, depth))
        elif sequence:
            lines.append(lead.rstrip() + value(rng, indent + 2, depth))
        else:
            lines.append(lead + key(rng) + rng.choice([":"] * 9 + [" :"]) + value(rng, indent, depth))
        if rng.random() < 0.1:
            lines[-1] += rng.choice([" # x!", " #", "#x", " # 1_000"])
    return "\n".join(lines)


def mutate(rng: random.Random, text: str, alphabet: list[str]) -> str:
    for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
        at = rng.randrange(len(text) + 1)
        roll = rng.random()
        if roll < 0.5:
            text = text[:at] + rng.choice(alphabet) + text[at:]
        elif roll < 0.75:
            text = text[:at] + text[at + 1:]
        else:
            lines = text.split("\n")
            i = rng.randrange(len(lines))
            lines.insert(i, lines[i] if rng.random() < 0.5 else " " + lines[i])
            text = "\n".join(lines)
    return text


def benign(rng: random.Random, indent: int, depth: int) -> str:
    """A well-formed block mapping in the fast path's subset, with realistic scalars
    and now and then one odd fragment: what most layers look like."""
    pad = " " * indent
    lines = []
    for i in range(rng.randrange(1, 6)):
        name = rng.choice([*WORDS[:4], "svc_01", "port", "url", "café", "x y"]) + str(i)
        roll = rng.random()
        if roll < 0.2 and depth < 4:
            lines.append(f"{pad}{name}:\n" + benign(rng, indent + rng.choice([2, 4]), depth + 1))
            continue
        if roll < 0.3:
            item_pad = pad + rng.choice(["", "  "])
            items = [f"{item_pad}- {rng.choice(WORDS)}" for _ in range(rng.randrange(1, 4))]
            lines.append(f"{pad}{name}:\n" + "\n".join(items))
            continue
        if roll < 0.4:
            lines.append(f"{pad}{name}: [{', '.join(usual(rng) for _ in range(rng.randrange(4)))}]")
            continue
        if roll < 0.45:
            lines.append(f"{pad}{name}: {{a: {usual(rng)}, b: {plain(rng)}}}")
            continue
        text = rng.choice([usual(rng), usual(rng), usual(rng), plain(rng), scalar(rng, indent + 1)])
        comment = rng.choice(["", "", "", " # note", "  # 1_000 yes"])
        lines.append(f"{pad}{name}: {text}{comment}")
        if rng.random() < 0.05:
            lines.append(pad + "  " + rng.choice(WORDS))  # a plain scalar over two lines
    return "\n".join(lines) + "\n"


def generate(rng: random.Random) -> bytes:
    """One document. A quarter are well-formed layers in the fast path's subset; half
    of the rest use only bytes the fast path accepts (and fewer mutations, so that many
    of those parse)."""
    if rng.random() < 0.25:
        text = "".join(c for c in benign(rng, 0, 0) if c in FAST_ALPHABET)
        return (rng.choice(["", "", "", "\ufeff"]) + text).encode()
    fast_only = rng.random() < 0.5
    text = ""
    if rng.random() < 0.05:
        text += rng.choice(["---\n", "%YAML 1.2\n---\n", "--- ", "\ufeff", "# !x\n"])
    text += block(rng, 0, 0)
    text += rng.choice(["\n", "\n", "", "\n\n", "\n...\n", "\n---\n", "\n# end!\n"])
    hostile = [c for c in HOSTILE if not fast_only or set(c) <= FAST_ALPHABET]
    if not fast_only or rng.random() < 0.3:
        text = mutate(rng, text, hostile)
    if fast_only:
        text = "".join(c for c in text if c in FAST_ALPHABET)
    if rng.random() < 0.03:
        text = text.replace("\n", "\r\n")
    if rng.random() < 0.03:
        text = "\ufeff" + text
    return text.encode("utf-8", "surrogatepass")


def typed(value: Any) -> Any:
    """A form of parsed data where equal means identical, types included (1, 1.0, True,
    -0.0 and 0.0 all differ; a NaN equals a NaN)."""
    if type(value) is dict:
        return ("map", [(k, typed(v)) for k, v in value.items()])
    if type(value) is list:
        return ("seq", [typed(v) for v in value])
    if type(value) is tuple:
        return ("marker", [typed(v) for v in value])
    if type(value) is float:
        return ("float", "nan" if math.isnan(value) else repr(value))
    return (type(value).__name__, value)


def disagreement(raw: bytes) -> str | None:
    """``None`` if both paths read ``raw`` alike; else what differs (or crashed)."""
    try:
        text = decode_text("t.yaml", raw)
    except LoadFailed:
        return None
    try:
        reference: Any = parse_reference("t.yaml", text)[0]
    except LoadFailed as exc:
        unlocated = [d.format() for d in exc.diagnostics if d.line is None]
        if unlocated:
            return f"reference error without a line: {unlocated}"
        reference = exc
    except Exception:
        return "reference path crashed:\n" + traceback.format_exc()
    try:
        layer: Any = parse_layer("t.yaml", raw)[0]
    except LoadFailed as exc:
        layer = exc
    except Exception:
        return "parse_layer crashed:\n" + traceback.format_exc()
    if isinstance(reference, LoadFailed) != isinstance(layer, LoadFailed):
        return f"parse_layer {_show(layer)} but reference {_show(reference)}"
    if not isinstance(reference, LoadFailed) and typed(layer) != typed(reference):
        return f"parse_layer {_show(layer)} but reference {_show(reference)}"
    try:
        fast = fast_reading(raw)
    except Exception:
        return "fast path crashed:\n" + traceback.format_exc()
    if fast is not None:
        if isinstance(reference, LoadFailed):
            return f"fast path accepts {fast!r} but reference {_show(reference)}"
        if typed(fast) != typed(reference):
            return f"fast path reads {fast!r} but reference {reference!r}"
    return None


def fast_reading(raw: bytes) -> dict[str, Any] | None:
    """What the fast path answers for ``raw``, or None when it leaves it to the
    reference path."""
    try:
        text = decode_text("t.yaml", raw)
    except LoadFailed:
        return None
    return _parse_fast(text) if fast_path_eligible(raw, text) else None


def _show(outcome: Any) -> str:
    if isinstance(outcome, LoadFailed):
        return "refuses: " + "; ".join(d.format() for d in outcome.diagnostics)
    return f"reads {outcome!r}"


def accepted(seed: int, count: int) -> Iterator[tuple[bytes, str]]:
    """Of ``count`` generated documents, those the strict loader accepts: (bytes, text)."""
    rng = random.Random(seed)
    for _ in range(count):
        raw = generate(rng)
        try:
            parse_layer("x.yaml", raw)
        except (LoadFailed, BuildError):
            continue
        yield raw, decode_text("x.yaml", raw)
