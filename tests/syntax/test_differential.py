"""The fast path (yaml-rs) and the reference path (libyaml events, magcfg's composer and
scalar table) read every input alike: both refuse it with located errors, or both
accept identical data, types included. Checked on a seeded corpus of hostile documents
(tests/syntax/yaml_corpus.py), on every short input over YAML's syntax characters, and
on every short number-like token; benchmarks/fuzz_loader.py runs the same oracle for
as long as it is given."""

from __future__ import annotations

import itertools
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from .yaml_corpus import disagreement, fast_reading, generate

CORPUS_SEED = 1_2_2024
CORPUS_SIZE = 30_000

SYNTAX = "a:-[]{},#'\" \n1.?"
NUMBER_LIKE = "019._-+eExXoObB:"
CONTEXTS = ["a: {}\n", "a: [{}]\n", "{}: 1\n", "\ufeff{}: 1\n", "a: {{b: {}}}\n", "a:\n  - {}\n"]


# Inputs the two parsers read differently before the fast path's subset excluded them
# (found by this test, the exhaustive runs and benchmarks/fuzz_loader.py).
FOUND = [
    "# !\na: 1_000\nb: 0b101\nc: 0x_1F\n", "a: 1_000\nb: 0b101\nc: 0x_1F\n", "a: x\x00y\n",
    "a: x\x07y\n", "a: |\nb: 1\n", "a: [>]\n", "a: {:: 1}\n", '"x y": ---\n', "...\n",
    "# c\n...\n", '"a" : {key: x , b::}\n', "{a:}\n", "{:a}\n", "a: [x, y:]\n", "{a\n:}\n",
    "{:'}\n", "._: 1\n", "0x_: 1\n", "0b_: 1\n", "\ufeff0b_: 1\n", "\ufeff...\n",
    "b: {.5\na9: x} #\n\n", "x: {'a\nb': 1}\n", 'x: {"a\nb": 1}\n', "x: [a,\nb]\n",
    'a: [x, "]"\n  "[", y]\n', "a: [x, # ]\n  y]\n", "a: 1e3\n", "a: 9223372036854775808\n",
    "a: x\u0085y\n", "on: 1\n", "a: [1:30]\n", "1_000: x\n",
]


def test_found_classes_read_alike() -> None:
    problems = [f"{text!r}: {problem}" for text in FOUND
                if (problem := disagreement(text.encode())) is not None]
    assert not problems, "\n".join(problems)


def test_generated_corpus_reads_alike() -> None:
    rng = random.Random(CORPUS_SEED)
    found: list[str] = []
    fast_answers = 0
    for _ in range(CORPUS_SIZE):
        raw = generate(rng)
        problem = disagreement(raw)
        if problem is not None:
            found.append(f"{raw!r}\n    {problem}")
        elif fast_reading(raw) is not None:
            fast_answers += 1
    assert not found, f"{len(found)} inputs read differently:\n" + "\n".join(found[:10])
    # The corpus must keep reaching the fast path, or it would prove nothing about it.
    assert fast_answers > CORPUS_SIZE // 20, fast_answers


def test_every_short_input_reads_alike() -> None:
    found = []
    for prefix, longest in (("", 4), ("\ufeff", 3), ("k: ", 3), ("k:\n  ", 3)):
        for length in range(1, longest + 1):
            for chars in itertools.product(SYNTAX, repeat=length):
                raw = (prefix + "".join(chars)).encode()
                problem = disagreement(raw)
                if problem is not None:
                    found.append(f"{raw!r}: {problem}")
    assert not found, f"{len(found)} inputs read differently:\n" + "\n".join(found[:10])


def test_every_short_number_like_token_reads_alike() -> None:
    found = []
    for length in range(1, 4):
        for chars in itertools.product(NUMBER_LIKE, repeat=length):
            token = "".join(chars)
            for context in CONTEXTS:
                raw = context.format(token).encode()
                problem = disagreement(raw)
                if problem is not None:
                    found.append(f"{raw!r}: {problem}")
    assert not found, f"{len(found)} inputs read differently:\n" + "\n".join(found[:10])


@settings(max_examples=1500, deadline=None)
@given(st.text(NUMBER_LIKE + "_ +-0123456789", min_size=4, max_size=24),
       st.sampled_from(CONTEXTS))
def test_longer_number_like_tokens_read_alike(token: str, context: str) -> None:
    raw = context.format(token).encode()
    assert disagreement(raw) is None, raw
