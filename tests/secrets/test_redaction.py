"""The one redactor, on keys that contain a dot: `redact` globs match key by key, in
`explain` and in build diagnostics alike (the real console script)."""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from magcfg.secrets.redaction import REDACTED, Redactor

from ..conftest import Project, failed_cleanly, tree_state

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {"apps": {"type": "object", "additionalProperties": {
        "type": "object", "properties": {"dsn": {"type": "string"}}}}},
}
PROJECT = """\
version: 1
environments: [dev]
layers:
  - name: base
    path: layers/base
schema:
  json: schemas/schema.json
output: generated
redact: ["apps.*.dsn"]
"""
DOTTED = "postgres://CANARY-dotted-4f1a@db/app"
PLAIN = "postgres://CANARY-plain-4f1a@db/app"


@pytest.fixture
def dotted(tmp_path: Path) -> Project:
    project = Project(tmp_path / "dotted")
    project.write("magcfg.yaml", PROJECT)
    project.write("schemas/schema.json", json.dumps(SCHEMA))
    project.write("layers/base/apps.yaml", f'apps:\n  "eu.west":\n    dsn: "{DOTTED}"\n'
                                           f'  plain:\n    dsn: "{PLAIN}"\n')
    return project


def test_explain_masks_the_value_under_a_key_with_a_dot(dotted: Project) -> None:
    done = dotted.run("explain", "apps", "--env", "dev")
    assert done.returncode == 0, done.stderr
    shown = '{"eu.west": {"dsn": "<redacted>"}, "plain": {"dsn": "<redacted>"}}'
    assert done.stdout == (f"apps = {shown}    [dev; reload: restart]\n"
                           f"  => layers/base/apps.yaml:1  (base)  {shown}\n")
    assert "CANARY" not in done.stdout + done.stderr


def test_explain_takes_an_escaped_dot_in_a_key(dotted: Project) -> None:
    done = dotted.run("explain", "apps.eu\\.west.dsn", "--env", "dev")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ('apps.eu\\.west.dsn = "<redacted>"    [dev; reload: restart; '
                           'secret]\n  => layers/base/apps.yaml:3  (base)  "<redacted>"\n')


def test_a_build_diagnostic_masks_a_quoted_value_under_a_key_with_a_dot(
        dotted: Project) -> None:
    dotted.write("layers/base/apps.yaml", 'apps:\n  "eu.west":\n    dsn: off\n')
    before = tree_state(dotted.root)
    stderr = failed_cleanly(dotted.run("build"), 1)
    assert stderr == ("layers/base/apps.yaml:3: error: <redacted> means different things in "
                      "YAML 1.1 and 1.2 (false in 1.1, text in 1.2): write false, or quote it "
                      "if it is text [apps.eu\\.west.dsn]\n")
    assert tree_state(dotted.root) == before


def test_the_manifest_carries_the_glob_for_the_runtime(dotted: Project) -> None:
    assert dotted.run("build", "-q").returncode == 0
    manifest = json.loads((dotted.root / "generated/dev/manifest.json").read_bytes())
    assert manifest["secret_keys"] == ["apps.*.dsn"]
    assert DOTTED.encode() not in (dotted.root / "generated/dev/manifest.json").read_bytes()


def test_redactor_works_on_key_paths() -> None:
    redactor = Redactor(None, ["apps.*.dsn"])
    assert redactor.is_secret(("apps", "eu.west", "dsn"))
    assert not redactor.is_secret(("apps", "eu", "west", "dsn"))
    assert redactor.value(("apps",), {"eu.west": {"dsn": DOTTED, "pool": 3}}) == {
        "eu.west": {"dsn": REDACTED, "pool": 3}}
    change = redactor.change(("apps", "eu.west", "dsn"), DOTTED, PLAIN)
    assert change is not None and change.key == "apps.eu\\.west.dsn"
    assert (change.old, change.new, change.secret) == (REDACTED, REDACTED, True)


def test_secret_texts_are_the_scalars_under_secret_keys_but_references() -> None:
    r = Redactor(None, ["db.password", "tokens"])
    tree = {"db": {"password": "hunter2", "host": "h"},
            "tokens": ["t1", {"deep": 42}, "vault://kv/app#token", None, True],
            "other": ("!replace", {"x": "shown"})}
    assert r.secret_texts(tree) == {"hunter2", "t1", "42"}
    assert r.secret_texts({"password": ("!replace", "p")}, ("db",)) == {"p"}
    assert r.secret_texts({"password": ("!unset",)}, ("db",)) == set()


def test_text_masks_a_secret_as_messages_quote_it() -> None:
    """The schema engine and cue quote a string escaped as JSON or Go do; printable()
    escapes what a terminal must not get raw. Every string of an event is masked alike
    (one quoting a secret of a tab or an escape as JSON or printable() writes it showed
    it)."""
    r = Redactor()
    for secret, quoted in [("a\tb-long-secret", '"a\\tb-long-secret"'),
                           ("a\x1bb-long-secret", '"a\\x1bb-long-secret"'),
                           ("a\\b-long-secret", '"a\\\\b-long-secret"'),
                           ("a\nb-long-secret", '"a\\nb-long-secret"'),
                           ('a"b-long-secret', '"a\\"b-long-secret"'),
                           ("a\u200bb-long-secret", '"a\\u200bb-long-secret"'),
                           ("é-long-secret", '"\\u00e9-long-secret"'),
                           ("a\ab-long-secret", '"a\\ab-long-secret"'),
                           ("é\x7fb-long-secret", '"é\\u007fb-long-secret"')]:
        assert r.text(f"x {quoted} y", [secret]) == f'x "{REDACTED}" y', secret
        assert r.masked({"e": [f"x {quoted} y"]}, [secret]) == {"e": [f'x "{REDACTED}" y']}, \
            secret


def test_masked_replaces_secret_values_in_every_string() -> None:
    data = {"error": f"login with {DOTTED} failed", "changes": [{"key": "k", "new": PLAIN}],
            f"{PLAIN}": 1, "version": 3}
    assert Redactor().masked(data, [DOTTED, PLAIN, ""]) == {
        "error": f"login with {REDACTED} failed", "changes": [{"key": "k", "new": REDACTED}],
        REDACTED: 1, "version": 3}


def test_shown_keeps_references_and_redacts_everything_else() -> None:
    from magcfg.secrets.redaction import REDACTED, Redactor

    r = Redactor(None, ["db.password", "db.creds", "db.user"])
    ref = "vault://secret/k3s/db#pw"
    assert r.shown(("db", "password"), ref) == ref
    assert r.shown(("db", "password"), "hunter2-CANARY") == REDACTED
    assert r.shown(("db", "password"), "vault://secret#not-a-reference") == REDACTED
    assert r.shown(("db", "creds"), {"a": "env://DB_A", "b": "literal", "c": [1, "vault+direct://db/creds/app#u"]}
                   ) == {"a": "env://DB_A", "b": REDACTED, "c": [REDACTED, "vault+direct://db/creds/app#u"]}
    assert r.shown(("db",), {"host": "h", "user": "CANARY", "password": ref}) == {
        "host": "h", "user": REDACTED, "password": ref}
    assert r.value(("db", "password"), ref) == REDACTED  # errors and events still redact


_leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.sampled_from(
    ["x", "vault://secret/k3s/db#pw", "env://DB_A", "CANARY-hunter2"]))
_trees = st.recursive(_leaves, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["db", "password", "a"]),
                                                 inner, max_size=3)), max_leaves=10)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([(), ("db",), ("db", "password"), ("a", "0")]), _trees)
def test_shown_secret_is_shown_and_contains_secret_in_one_walk(
        keypath: tuple[str, ...], value: object) -> None:
    r = Redactor(None, ["db.password", "*.password", "a.*.0"])
    shown, secret = r.shown_secret(keypath, value)
    assert secret == r.contains_secret(keypath, value)
    # A literal under a secret key never shows; without a secret, nothing is hidden.
    if r.is_secret(keypath):
        assert "CANARY" not in json.dumps(shown)
    assert secret or shown == value



_ENCODED_SECRET = "hunter2-Zq8v&<x>"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize("shown", [
    _b64(f"app:{_ENCODED_SECRET}"),
    _b64(f"app:{_ENCODED_SECRET}").rstrip("="),
    base64.urlsafe_b64encode(f"{_ENCODED_SECRET}?".encode()).decode(),
    "xyz" + _b64(json.dumps({"pw": _ENCODED_SECRET})),
    _b64(f"hunter{_ENCODED_SECRET}")[:8] + "\n    " + _b64(f"hunter{_ENCODED_SECRET}")[8:],
], ids=["basic", "unpadded", "base64url", "glued document", "wrapped"])
def test_a_secret_quoted_in_base64_is_masked(shown: str) -> None:
    """The forms an HTTP client or server quotes a secret in: base64 of it alone, of a
    login or of a document holding it; padded or not, base64url, wrapped, glued to
    letters before it. Masked in a message and in every string of an event alike."""
    text = f"refused: {shown} (sent)"
    assert Redactor().text(text, [_ENCODED_SECRET]) == f"refused: {REDACTED} (sent)"
    assert Redactor().masked({"error": [text]}, [_ENCODED_SECRET]) == {
        "error": [f"refused: {REDACTED} (sent)"]}


def _hex(text: str) -> str:
    return text.encode().hex()


@pytest.mark.parametrize("shown", [
    _hex(_ENCODED_SECRET),
    _hex(_ENCODED_SECRET).upper(),
    "0x" + _hex(f"app:{_ENCODED_SECRET}"),
    _hex(json.dumps({"pw": _ENCODED_SECRET}))[:40] + "\n    "
    + _hex(json.dumps({"pw": _ENCODED_SECRET}))[40:],
    " ".join(f"{byte:02x}" for byte in f"app:{_ENCODED_SECRET}".encode()),
    ":".join(f"{byte:02X}" for byte in _ENCODED_SECRET.encode()),
    " ".join(_hex(_ENCODED_SECRET)[at:at + 4] for at in range(0, 32, 4)),
    "".join(f"\\x{byte:02x}" for byte in _ENCODED_SECRET.encode()),
], ids=["lower", "upper", "glued login", "wrapped document", "bytes apart", "colons",
        "groups of two bytes", "escaped bytes"])
def test_a_secret_quoted_in_hex_is_masked(shown: str) -> None:
    """A client's dump of the bytes it sent quotes a secret in hex, in either case, or
    the login or document that holds it, its bytes together or set apart (a space, a
    colon, `\\x`: each of those was shown as it was): the run is masked whole, in a
    message and in every string of an event alike."""
    text = f"refused: {shown} (sent)"
    assert Redactor().text(text, [_ENCODED_SECRET]) == f"refused: {REDACTED} (sent)"
    assert Redactor().masked({"error": [text], _hex(_ENCODED_SECRET): 1},
                             [_ENCODED_SECRET]) == {
        "error": [f"refused: {REDACTED} (sent)"], REDACTED: 1}


def test_a_secret_quoted_html_escaped_is_masked() -> None:
    assert Redactor().text("refused: hunter2-Zq8v&amp;&lt;x&gt; (sent)", [_ENCODED_SECRET]
                           ) == f"refused: {REDACTED} (sent)"


@pytest.mark.parametrize("shown", [
    "postgres://app:hunter2-Zq8v%26%3Cx%3E@db/app",  # urllib.parse.quote(..., safe="")
    "hunter2-Zq8v%26%3cx%3e",  # lower-case hex
    "next=%2Flogin%3Fpw%3Dhunter2-Zq8v%2526%253Cx%253E",  # a URL inside a URL
    "hunter2-Zq8v\\u0026\\u003cx\\u003e",  # Go's encoding/json
    "hunter2-Zq8v&#38;&#x3c;x&gt;",  # HTML character references
    "hunter2-Zq8v%26\n    %3Cx%3E",  # wrapped
    "".join(f"\\u{ord(char):04X}" for char in _ENCODED_SECRET),  # every letter escaped
    "".join(f"&#{ord(char)}" for char in _ENCODED_SECRET),  # references without `;`
    "hunter2-Zq8v&#37;26&#37;3Cx&#37;3E",  # percent-encoded, its `%` an HTML reference
], ids=["url", "lower hex", "url in url", "go json", "html references", "wrapped",
        "json every letter", "html without semicolons", "url in html"])
def test_a_secret_quoted_escaped_is_masked(shown: str) -> None:
    """What a driver's or a server's error quotes a secret as: percent-encoded in a
    URL, escaped in JSON or HTML, wrapped; in a message and in every string of an
    event alike, and the rest of the text kept. A form the masking pattern has none of
    (each letter a JSON escape) is masked in the text decoded: it was found there and
    shown as it was."""
    text = f"refused: {shown} (sent)"
    for masked in (Redactor().text(text, [_ENCODED_SECRET]),
                   Redactor().masked({"error": [text]}, [_ENCODED_SECRET])["error"][0]):
        assert "hunter2" not in masked and masked.startswith("refused: ")
        assert masked.endswith(" (sent)") and REDACTED in masked


@pytest.mark.parametrize("text", ["refused: HUNTER2-ZQ8V-CANARY (sent)",
                                  "refused: HUNTER2-ZQ8V-CANARY (sent) 100%"])
def test_a_secret_in_another_case_is_masked_whatever_else_the_text_holds(text: str) -> None:
    """A secret's letters in another case are masked as its escapes are, in a text of
    no escape as in one of a `%` elsewhere (it was masked in the second alone)."""
    secret = "hunter2-Zq8v-canary"
    for masked in (Redactor().text(text, [secret]),
                   Redactor().masked({"error": [text]}, [secret])["error"][0]):
        assert masked.startswith(f"refused: {REDACTED} (sent)"), masked


def test_escaped_text_that_holds_no_secret_is_left_as_it_is() -> None:
    text = "GET /v2/x?scope=repository%3Aapp%3Apull&service=r \\u0026 a\n  b + c"
    assert Redactor().text(text, [_ENCODED_SECRET, "repository:app:push"]) == text


def test_base64_that_holds_no_secret_is_left_as_it_is() -> None:
    """A digest, a random token and a secret too short to tell from chance are shown."""
    import hashlib

    digest = hashlib.sha256(b"x").hexdigest()
    token = base64.b64encode(bytes(range(40))).decode()
    text = (f"sha256:{digest} token {token} {base64.b64encode(b'app:abc').decode()} "
            "mac aa:bb:cc:dd:ee:ff bytes de ad be ef 4869 6e74")
    assert Redactor().text(text, ["hunter2-Zq8v", "abc"]) == text


def _lines_run(run: Callable[[], object]) -> int:
    """How many lines of redaction.py ``run`` executes: its work, whatever the machine's
    speed."""
    from magcfg.secrets import redaction

    count = 0

    def local(frame: FrameType, event: str, arg: object) -> Any:
        nonlocal count
        count += event == "line"
        return local

    def trace(frame: FrameType, event: str, arg: object) -> Any:
        return local if frame.f_code.co_filename == redaction.__file__ else None

    sys.settrace(trace)
    try:
        run()
    finally:
        sys.settrace(None)
    return count


def test_each_word_of_a_text_costs_little_however_many_secrets_are_masked() -> None:
    """The runtime masks an event with every value ``secret()`` handed out (up to
    MAX_HANDED_OUT): with one of a few bytes among them, every word of a long text is
    a run of base64 long enough to hold it (each looked for in every word's bytes, a
    180 KB error text took 12 s)."""
    values = [f"handed-out-{n:04d}" for n in range(1023)] + ["pin1"]

    def work(words: int) -> int:
        text = " ".join(["restarted", "connection"] * (words // 2))
        # A set of its own each: both pay for making the masker of their set once.
        return _lines_run(lambda: Redactor().text(text, [*values, f"run-{words}"]))

    assert (work(1200) - work(200)) / 1000 < PER_WORD_LINES


PER_WORD_LINES = 200  # 82 at the time of writing


def test_a_long_run_costs_its_length_however_many_secrets_are_masked() -> None:
    """A run of base64 or hex is looked through once for every value to mask, not once
    per value: its work does not grow with their number (one 4 MB run took ~5 s with
    the runtime's 1,024, each looked for in the bytes the run decodes to from each of
    four starts). The masker of a set is made once, before."""
    import random

    from magcfg.secrets.redaction import encoded_masked

    chance = random.Random(3)
    run = base64.b64encode(chance.randbytes(48 << 10)).decode()
    hexed = chance.randbytes(16 << 10).hex()

    def work(count: int) -> int:
        values = [f"handed-out-{n:05d}-{chance.randbytes(6).hex()}" for n in range(count)]
        values.append("pin1")
        text = f"sent {run} and {hexed}"
        assert encoded_masked(text, values) == text  # the masker made, and nothing held
        return _lines_run(lambda: encoded_masked(text, values))

    few, many = work(1024), work(4096)
    assert many < few * 1.5, (few, many)
    secret = "hunter2-CANARY-in-a-long-run"
    for held in (base64.b64encode(chance.randbytes(30_001) + secret.encode()).decode(),
                 (chance.randbytes(30_001) + secret.encode()).hex().upper()):
        assert encoded_masked(f"sent {held} .", [secret]) == f"sent {REDACTED} ."


@pytest.mark.parametrize(("url", "dropped"), [
    ("https://gitlab-ci-token:glcbt-x@gitlab.example/acme/cfg.git",
     "https://gitlab.example/acme/cfg.git"),
    ("https://forge.example/@team/cfg", "https://forge.example/@team/cfg"),
    ("https://u:t@forge.example/@team/cfg", "https://forge.example/@team/cfg"),
    ("https://forge.example/cfg?by=ops@example.org", "https://forge.example/cfg?by=ops@example.org"),
    ("ssh://git@[2001:db8::1]:22/cfg@v1", "ssh://[2001:db8::1]:22/cfg@v1"),
    ("https://a@b@forge.example:8443/cfg", "https://forge.example:8443/cfg"),
    ("https://u:to/ken@forge.example/cfg", "https://forge.example/cfg"),
    ("git@forge.example:acme/cfg.git", "git@forge.example:acme/cfg.git"),
])
def test_login_dropped_drops_the_login_of_the_authority_alone(url: str, dropped: str) -> None:
    """An ``@`` of the path or the query stays where it is: the annotation names the
    repository's own host; a token holding ``/`` still goes whole."""
    from magcfg.secrets.redaction import login_dropped

    assert login_dropped(url) == dropped
