"""Key paths as text and key globs: matching works on segments, never on dotted strings."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from magcfg.keyglob import KeyGlobs, _tokens, format_keypath, parse_keypath


@pytest.mark.parametrize(("keypath", "text"), [
    (("magds", "port"), "magds.port"),
    (("apps", "eu.west", "dsn"), "apps.eu\\.west.dsn"),
    (("a", "x*y"), "a.x\\*y"),
    (("a", "back\\slash"), "a.back\\\\slash"),
    (("a", "", "b"), "a..b"),
])
def test_text_form_escapes_what_would_be_ambiguous(keypath: tuple[str, ...], text: str) -> None:
    assert format_keypath(keypath) == text
    assert parse_keypath(text) == keypath


@given(st.lists(st.text(alphabet=st.sampled_from("ab.*\\ é"), max_size=6), min_size=1,
                max_size=5))
def test_text_form_round_trips(segments: list[str]) -> None:
    assert parse_keypath(format_keypath(segments)) == tuple(segments)


def test_a_wildcard_segment_of_the_schema_is_written_bare() -> None:
    assert format_keypath(("apps", "*", "dsn"), wildcard="*") == "apps.*.dsn"
    assert format_keypath(("apps", "*", "dsn")) == "apps.\\*.dsn"


def test_a_star_matches_one_whole_segment_even_with_a_dot_inside() -> None:
    globs = KeyGlobs(["apps.*.dsn"])
    assert globs.matches(("apps", "eu.west", "dsn"))
    assert globs.matches(("apps", "plain", "dsn"))
    assert globs.matches(("apps", "eu.west", "dsn", "below"))
    assert not globs.matches(("apps", "eu", "west", "dsn"))
    assert not globs.matches(("apps", "eu.west", "dsn2"))


def test_escaped_dots_and_stars_in_patterns_are_literal() -> None:
    globs = KeyGlobs(["apps.eu\\.west.dsn", "hosts.\\*\\.example\\.com"])
    assert globs.matches(("apps", "eu.west", "dsn"))
    assert not globs.matches(("apps", "euxwest", "dsn"))
    assert globs.matches(("hosts", "*.example.com"))
    assert not globs.matches(("hosts", "www.example.com"))


def test_double_star_spans_segments() -> None:
    globs = KeyGlobs(["**.password"])
    assert globs.matches(("a", "b.c", "password"))
    assert not globs.matches(("password",))
    assert globs.matching(("x", "password")) == ["**.password"]


_SEGMENT = st.text(alphabet=st.sampled_from("ab.*\\"), max_size=3)
_GLOB_SEGMENT = st.one_of(st.just("**"), st.just("*"), st.lists(
    st.sampled_from(["a", "b", "*", "\\.", "\\*", "\\\\"]), max_size=3).map("".join))


@given(st.lists(_GLOB_SEGMENT, min_size=1, max_size=3).map(".".join),
       st.lists(_SEGMENT, min_size=1, max_size=4).map(tuple))
def test_a_glob_that_covers_a_key_path_may_cover_below_its_first_segment(
        pattern: str, keypath: tuple[str, ...]) -> None:
    globs = KeyGlobs([pattern])
    if globs.matches(keypath):
        assert globs.may_cover_below(keypath[0])


def test_may_cover_below_rules_out_other_top_level_keys() -> None:
    globs = KeyGlobs(["svc_002.**", "apps.*.dsn"])
    assert globs.may_cover_below("svc_002") and globs.may_cover_below("apps")
    assert not globs.may_cover_below("svc_003")
    assert not globs.may_cover_below("svc_002x")
    assert KeyGlobs(["**.password"]).may_cover_below("anything")
    assert KeyGlobs(["svc_*"]).may_cover_below("svc_9") and not KeyGlobs(
        ["svc_*"]).may_cover_below("db")
    assert KeyGlobs(["eu\\.west.x"]).may_cover_below("eu.west")
    assert not KeyGlobs(["eu\\.west.x"]).may_cover_below("eu")


def _regex_matches(pattern: str, keypath: tuple[str, ...]) -> bool:
    """The regex translation key globs had before (exponential on ``*a*a*a...b``), kept
    as the reference for what a glob means."""
    char = r"(?:[^.\\]|\\.)"

    def segment(tokens: list[str | None]) -> str:
        if tokens == [None, None]:
            return rf"(?:{char}+\.)*{char}+"
        return "".join(f"{char}*" if c is None else re.escape(format_keypath([c]))
                       for c in tokens)

    regex = re.compile(r"\.".join(map(segment, _tokens(pattern))) + r"(?:\..*)?", re.DOTALL)
    return regex.fullmatch(format_keypath(keypath)) is not None


@given(st.lists(_GLOB_SEGMENT, min_size=1, max_size=4).map(".".join),
       st.lists(_SEGMENT, max_size=4).map(tuple))
def test_matching_means_what_the_regex_translation_meant(
        pattern: str, keypath: tuple[str, ...]) -> None:
    assert KeyGlobs([pattern]).matches(keypath) == _regex_matches(pattern, keypath)


def test_many_stars_against_a_long_segment_take_polynomial_time() -> None:
    # Each star a regex quantifier, this backtracked for minutes (a build killed at 60 s
    # with nine stars against 40 characters); a redaction glob comes from a pull request.
    script = ("from magcfg.keyglob import KeyGlobs\n"
              "globs = KeyGlobs(['kernel.' + '*a' * 12 + '*b', '**.' + '*a' * 12 + '*b.**'])\n"
              "assert not globs.matches(('kernel', 'a' * 60))\n"
              "assert not globs.matches(('x', 'a' * 60, 'y'))\n"
              "assert globs.matches(('kernel', 'a' * 60 + 'b'))\n")
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
