"""The manifest format, defined once in magcfg/artifact.py: what it accepts and refuses,
that the build's emitter keeps to it, and that docs/artifact.md describes every field."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from magcfg.artifact import (
    MAX_CONFIG_DEPTH,
    MAX_VERSION,
    DataLinkError,
    JSONRefused,
    ManifestError,
    check_manifest,
    check_secret_constraints,
    data_root,
    is_version,
    load_manifest,
    parse_config,
    refused_at,
    value_pattern,
)

from .conftest import REPO, Project, failed_cleanly, tree_state


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def good() -> dict[str, Any]:
    config = _digest(b"{}\n")
    return {
        "compiler": {"name": "magcfg", "version": "0.1.0"},
        "config_digest": config,
        "environment": "production",
        "files": {"config.json": config, "vault-policy.hcl": _digest(b"")},
        "format": 1,
        "hot_keys": ["logging.level"],
        "inputs": {"digest": _digest(b"inputs"), "files": 3},
        "reload_default": "restart",
        "restart_keys": ["magds", "apps.eu\\.west"],
        "schema": {"digest": _digest(b"schema"), "path": "schemas/s.json",
                   "cue": {"definition": "#Config", "digest": _digest(b"cue"),
                           "path": "schemas/s.cue"}},
        "secret_keys": ["magds.password", "apps.*.dsn"],
        "version": 7,
    }


def test_the_manifests_the_build_writes_are_valid() -> None:
    for path in sorted((REPO / "generated").glob("*/manifest.json")):
        manifest = load_manifest(path.read_bytes())
        assert manifest["environment"] == path.parent.name
    assert check_manifest(good())["version"] == 7


def _with(**changes: Any) -> dict[str, Any]:
    manifest = good()
    for key, value in changes.items():
        if value is ...:
            del manifest[key]
        else:
            manifest[key] = value
    return manifest


@pytest.mark.parametrize(("manifest", "message"), [
    (_with(version="7"), "version: must be an integer, not a string"),
    (_with(version=7.0), "version: must be an integer, not a number with a fraction or exponent"),
    (_with(version=True), "version: must be an integer, not a boolean"),
    (_with(version=None), "version: must be an integer, not null"),
    (_with(version=0), f"version: must be from 1 to {MAX_VERSION}, not 0"),
    (_with(version=MAX_VERSION + 1), f"version: must be from 1 to {MAX_VERSION}, "
                                     f"not {MAX_VERSION + 1}"),
    (_with(version=10**30), f"version: must be from 1 to {MAX_VERSION}, "
                            "not a 31-digit number"),
    (_with(version=...), "version: is missing"),
    (_with(format=2), "format: must be 1 (this magcfg reads format 1), not 2"),
    (_with(format=1.0), "format: must be 1 (this magcfg reads format 1), not 1.0"),
    (_with(environment="Prod!"), "environment: must match [a-z0-9][a-z0-9_-]*"),
    (_with(environment=["production"]), "environment: must be a non-empty string, not an array"),
    (_with(extra=1), "extra: is not a field of format 1 manifests (fields: compiler, "
                     "config_digest, environment, files, format, hot_keys, inputs, "
                     "reload_default, restart_keys, schema, secret_keys, version)"),
    (_with(config_digest=_digest(b"other")),
     "config_digest: differs from the digest of config.json in files"),
    (_with(files={"../x": _digest(b"")}), 'files["../x"]: is not a safe file name '
                                          "(relative, no '..', '.', '\\' or control characters)"),
    (_with(files={"manifest.json.sig": _digest(b"")}),
     'files["manifest.json.sig"]: manifest.json.sig is never listed in the manifest'),
    (_with(files={"config.json": "md5:00"}),
     "files[\"config.json\"]: must be 'sha256:' and 64 lowercase hex digits"),
    (_with(files={"vault-policy.hcl": _digest(b"")}), "files: does not list config.json"),
    (_with(hot_keys="magds"), "hot_keys: must be an array of key paths, not a string"),
    (_with(restart_keys=["ok", 3]), "restart_keys[1]: must be a non-empty string, "
                                    "not an integer"),
    (_with(secret_keys=[""]), "secret_keys[0]: must be a non-empty string"),
    (_with(reload_default="sometimes"), "reload_default: must be 'hot' or 'restart'"),
    (_with(inputs={"digest": _digest(b"")}), "inputs: has no 'files'"),
    (_with(inputs={"digest": _digest(b""), "files": -1}),
     f"inputs.files: must be from 0 to {MAX_VERSION}, not -1"),
    (_with(compiler={"name": "magcfg", "version": "1", "host": "ci-7"}),
     "compiler: has an unknown field 'host' (known: name, version)"),
    (_with(schema={"path": None}), "schema: has no 'digest'"),
    (_with(schema={"digest": None, "path": None, "cue": {"digest": 1}}),
     "schema.cue.digest: must be a non-empty string, not an integer"),
    ([], ": must be an object, not an array"),
])
def test_malformed_manifests_are_refused_naming_the_field(manifest: Any, message: str) -> None:
    with pytest.raises(ManifestError) as info:
        check_manifest(manifest)
    assert str(info.value).removeprefix(": ") == message.removeprefix(": ")


@pytest.mark.parametrize(("text", "message"), [
    (b'{"version": 1, "version": 2}', "the key 'version' appears twice in one object "
                                      "(JSON readers disagree on which one counts)"),
    (b'{"version": NaN}', "NaN is not JSON"),
    (b'{"version": Infinity}', "Infinity is not JSON"),
    (b"\xff{}", "is not UTF-8"),
    (b"[" * 100000, "is nested too deeply"),
    (b"{", "is not valid JSON (Expecting property name enclosed in double quotes: "
           "line 1 column 2 (char 1))"),
])
def test_ambiguous_json_is_refused(text: bytes, message: str) -> None:
    with pytest.raises(ManifestError) as info:
        load_manifest(text)
    assert str(info.value) == message


_DISAGREED = "(JSON readers disagree on its value)"
_TWICE = "appears twice in one object (JSON readers disagree on which one counts)"


@pytest.fixture(params=["orjson", "json only"])
def installed(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """parse_config as with orjson, and as a runtime-only install (no orjson) reads."""
    if request.param == "json only":
        monkeypatch.setitem(sys.modules, "orjson", None)  # import orjson: ImportError
    return str(request.param)


@pytest.mark.parametrize(("text", "message"), [
    (b'{"a": NaN}', "NaN is not JSON"),
    (b'{"a": {"b": [Infinity]}}', "Infinity is not JSON"),
    (b'{"a": -Infinity}', "-Infinity is not JSON"),
    (b'{"a": 1e400}', f"a number beyond the range of a double is not JSON {_DISAGREED}"),
    (b'{"a": -2.5E+999}', f"a number beyond the range of a double is not JSON {_DISAGREED}"),
    (b'{"a": -9223372036854775809}', f"an integer beyond 64 bits (signed) is refused "
                                     f"{_DISAGREED}"),
    (b'{"a": 9223372036854775808}', f"an integer beyond 64 bits (signed) is refused "
                                    f"{_DISAGREED}"),
    (b'{"a": [18446744073709551615]}', f"an integer beyond 64 bits (signed) is refused "
                                       f"{_DISAGREED}"),
    (b'{"a": 1' + b"0" * 400 + b"}", f"an integer beyond 64 bits (signed) is refused "
                                      f"{_DISAGREED}"),
    (b'{"a": 1, "a": 2}', f"the key 'a' {_TWICE}"),
    (b'{"a": {"b": 1, "c": {"d": [], "d": []}}}', f"the key 'd' {_TWICE}"),
    (b'{"a": 1, "\\u0061": 2}', f"the key 'a' {_TWICE}"),  # equal once unescaped
    (b'{"a:": 1, "a\\u003a": 2}', f"the key 'a:' {_TWICE}"),  # ":" written two ways
    (b'{"a\\u003a": 1, "a\\u003a": 2}', f"the key 'a:' {_TWICE}"),  # as many ":" as read
    (b"[" * (MAX_CONFIG_DEPTH * 10) + b"]" * (MAX_CONFIG_DEPTH * 10),
     f"nested deeper than {MAX_CONFIG_DEPTH} levels"),
])
def test_what_json_readers_disagree_on_is_refused_whatever_is_installed(
        installed: str, text: bytes, message: str) -> None:
    """json reads NaN, Infinity and 1e400 (as inf) and a wide integer exactly; orjson
    refuses the first three and reads a wide integer as a float; both take the last of
    two equal keys. A service must not take, or serve, another value by what is
    installed: each is refused, with the same message either way."""
    with pytest.raises(JSONRefused) as info:
        parse_config(text)
    assert str(info.value) == message


@pytest.mark.parametrize(("text", "refused"), [
    ('{"a": [1, NaN]}', "NaN]}"),
    ('{\n  "a": {"b": -Infinity}}', "-Infinity}}"),
    ('[1, 2, 1e400, 3]', "1e400, 3]"),
    ('{"a": "99999999999999999999", "b": 99999999999999999999}', "99999999999999999999}"),
    ('{"a": 1, "b": {"c": 2, "c": 3}}', '{"c": 2, "c": 3}}'),  # the object holding it
    ('{"a": 1, "a": 2}', '{"a": 1, "a": 2}'),
    ('  {"a": [{"x": 1}, {"y": 1, "y": 2}]}', '{"y": 1, "y": 2}]}'),
    ('{"a": 1}', None),  # nothing refused
    ('{"a": ', None),  # not JSON: json.JSONDecodeError says where
    ("[" * 10000 + "NaN" + "]" * 10000, None),  # deeper than Python's reader recurses
])
def test_refused_at_is_where_strict_json_refuses_a_value(text: str, refused: str | None
                                                         ) -> None:
    at = refused_at(text)
    assert (None if at is None else text[at:]) == refused

@pytest.mark.parametrize(("text", "value"), [
    (b'{"a": 9223372036854775807}', {"a": 2**63 - 1}),
    (b'{"a": -9223372036854775808}', {"a": -(2**63)}),
    (b'{"a": 0.0012345678901234567}', {"a": 0.0012345678901234567}),  # 19 digits after "."
    (b'{"a": 1.00000000000000000000001}', {"a": 1.0}),
    (b'{"a": "12345678901234567890123", "b": "x:y"}', {"a": "12345678901234567890123",
                                                          "b": "x:y"}),
    (b'{"a": "\\u003a", "b": 1e-400, "c": -0}', {"a": ":", "b": 0.0, "c": 0}),
    (b'{"a": {"a": {"a": 1}}, "b": [{"a": 1}, {"a": 1}]}',
     {"a": {"a": {"a": 1}}, "b": [{"a": 1}, {"a": 1}]}),
])
def test_what_every_reader_agrees_on_is_read_exactly_whatever_is_installed(
        installed: str, text: bytes, value: Any) -> None:
    parsed = parse_config(text)
    assert parsed == value
    assert json.dumps(parsed) == json.dumps(value)  # int stays int, float float, -0.0 kept


def _pairs_json(value: Any, escaped: bool) -> str:
    """JSON text of ``value``, an object given as a list of pairs (a key may repeat),
    its keys written as ``\\u`` escapes when ``escaped`` ("a:" then holds no ":")."""
    if isinstance(value, tuple):
        return "{" + ",".join(
            ('"' + "".join(f"\\u{ord(c):04x}" for c in k) + '"' if escaped else json.dumps(k))
            + ":" + _pairs_json(v, escaped) for k, v in value[0]) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_pairs_json(v, escaped) for v in value) + "]"
    return json.dumps(value)  # NaN, Infinity and 1e400's inf are written as json does


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
    | st.sampled_from(["a:b", "\u0000", "é"]),
    lambda inner: st.lists(inner, max_size=4) | st.tuples(st.lists(
        st.tuples(st.sampled_from(["a", "b", "a:", "\u00e9"]), inner), max_size=4)),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(_JSON_VALUES, st.booleans())
def test_orjson_and_json_take_and_refuse_the_same_configs(value: Any, escaped: bool) -> None:
    text = _pairs_json(value, escaped)
    outcomes = []
    for hidden in (False, True):
        saved = sys.modules.get("orjson")
        if hidden:
            sys.modules["orjson"] = None  # type: ignore[assignment]
        try:
            outcomes.append(("read", json.dumps(parse_config(text.encode()))))
        except (ValueError, RecursionError) as exc:
            outcomes.append((type(exc).__name__, str(exc)))
        finally:
            if saved is not None:
                sys.modules["orjson"] = saved
    assert outcomes[0] == outcomes[1]


def test_versions_are_bounded_so_every_json_reader_agrees() -> None:
    assert MAX_VERSION == 2**53 - 1
    assert is_version(1) and is_version(MAX_VERSION)
    assert not any(is_version(v) for v in (0, MAX_VERSION + 1, True, 1.0, "1", None))


def test_the_format_is_documented_field_by_field() -> None:
    doc = (REPO / "docs/artifact.md").read_text()
    section = doc[doc.index("## manifest.json"):]
    for field in ("compiler", "config_digest", "environment", "files", "format", "hot_keys",
                  "inputs", "reload_default", "restart_keys", "schema", "secret_keys",
                  "version"):
        assert re.search(rf"^\| (`[a-z_]+`, )*`{field}`[ ,]", section, re.MULTILINE), field
    assert str(MAX_VERSION) in section


# ---------------------------------------------------------------- the build's emitter

def _built(mini: Project) -> Path:
    done = mini.run("build", "-q")
    assert done.returncode == 0, done.stderr
    return mini.root / "generated/dev/manifest.json"


def test_build_refuses_a_previous_manifest_with_a_string_version(mini: Project) -> None:
    path = _built(mini)
    manifest = json.loads(path.read_bytes())
    manifest["version"] = "3"
    path.write_text(json.dumps(manifest))
    mini.write("layers/base/logging.yaml", "logging:\n  level: debug\n")
    before = tree_state(mini.root / "generated")
    stderr = failed_cleanly(mini.run("build"), 1)
    assert stderr == ("generated/dev/manifest.json: error: cannot read the previous version "
                      "from this manifest (must be an integer, not a string); restore it from "
                      "git (the version must never go down) [version]\n")
    assert tree_state(mini.root / "generated") == before


def test_build_stops_at_the_highest_version(mini: Project) -> None:
    path = _built(mini)
    manifest = json.loads(path.read_bytes())
    manifest["version"] = MAX_VERSION
    path.write_text(json.dumps(manifest))
    assert mini.run("build", "-q", "-e", "dev").returncode == 0  # unchanged: no new version
    assert json.loads(path.read_bytes())["version"] == MAX_VERSION
    mini.write("layers/environments/dev/magds.yaml", "magds:\n  host: elsewhere\n")
    before = tree_state(mini.root / "generated")
    stderr = failed_cleanly(mini.run("build"), 1)
    assert stderr == (f"generated/dev/manifest.json: error: version {MAX_VERSION} is the "
                      f"highest a manifest may have ({MAX_VERSION}); no newer version can be "
                      "built [version]\n")
    assert tree_state(mini.root / "generated") == before


# ---------------------------------------------------------------- ..data (ConfigMap volumes)

def _volume(base: Path) -> Path:
    """The kubelet's layout: ``..data -> ..<stamp>`` beside it, the files in there."""
    stamp = base / "..2026_11_22_14_00_00.123456789"
    stamp.mkdir(parents=True)
    (stamp / "config.json").write_bytes(b"{}\n")
    os.symlink(stamp.name, base / "..data")
    return stamp


def test_a_volume_is_read_from_the_version_directory_its_data_link_names(
        tmp_path: Path) -> None:
    stamp = _volume(tmp_path / "volume")
    assert data_root(tmp_path / "volume", volume=True) == stamp
    plain = tmp_path / "plain"
    plain.mkdir()
    assert data_root(plain, volume=True) == plain
    assert data_root(plain, volume=False) == plain


@pytest.mark.parametrize(("target", "message"), [
    ("OUTSIDE", "links to 'OUTSIDE', not to a '..<version>' directory beside it: a ..data "
                "link must stay in the artifact directory"),
    ("../pristine", "links to '../pristine', not to a '..<version>' directory beside it: a "
                    "..data link must stay in the artifact directory"),
    ("..2026/..", "links to '..2026/..', not to a '..<version>' directory beside it: a "
                  "..data link must stay in the artifact directory"),
    ("..", "links to '..', not to a '..<version>' directory beside it: a ..data link must "
           "stay in the artifact directory"),
    ("..data", "links to '..data', not to a '..<version>' directory beside it: a ..data "
               "link must stay in the artifact directory"),
    ("..gone", "links to '..gone', which does not exist"),
    ("..hop", "links to '..hop', which is a symbolic link; it must be a directory"),
    ("..file", "links to '..file', which is not a directory; it must be a directory"),
])
def test_a_data_link_that_leaves_the_artifact_directory_is_refused(
        tmp_path: Path, target: str, message: str) -> None:
    outside = tmp_path / "pristine"
    outside.mkdir()
    volume = tmp_path / "volume"
    _volume(volume)
    (volume / "..data").unlink()
    os.symlink(outside, volume / "..hop")  # a sibling that is itself a link, out
    (volume / "..file").write_bytes(b"")
    if target == "OUTSIDE":
        target = str(outside)
        message = message.replace("'OUTSIDE'", repr(target))
    os.symlink(target, volume / "..data")
    with pytest.raises(DataLinkError) as info:
        data_root(volume, volume=True)
    assert info.value.message == message


def test_a_data_entry_that_is_not_a_link_is_refused(tmp_path: Path) -> None:
    (tmp_path / "..data").mkdir()
    with pytest.raises(DataLinkError, match=r"^is not a symbolic link"):
        data_root(tmp_path, volume=True)


def test_the_repositorys_own_output_never_follows_a_data_link(tmp_path: Path) -> None:
    _volume(tmp_path / "generated/dev")
    with pytest.raises(DataLinkError) as info:
        data_root(tmp_path / "generated/dev", volume=False)
    assert info.value.message == (
        "not written by magcfg: a ..data link is read only in an artifact directory given "
        "explicitly (a ConfigMap volume)")


# ---------------------------------------------------------------- value patterns

PATTERNS = [
    "^CANARY-[A-Za-z0-9]+$", "abc", "^a*$", "a|b|cd", "^(ab|a)*c$", "x{2,4}y", "^.{3}$",
    "[^a-c]+", "(?i)AbC", "(?i)[a-c]+$", "\\d{2}-\\w+", "\\s", "\\bfoo\\b", "\\Bo", "^$",
    "a$", "(?m)^b$", "(?s)a.b", "a.b", "^(a|b)+?c", "[\\d\\s]+z", "[-a]", "^(?:a{0,2}b)*$",
    "\\Aab\\Z", "^(.+)+Z", "(x*)*y", "[A-Fa-f0-9]{4,}", "(?i)[^x]", "é+", "^\\W+$",
]
VALUES = ["", "a", "ab", "abc", "ABC", "aab", "abab", "ac", "xxy", "xxxxy", "12-ab_c",
          "a b", "foo", "a foo!", "foobar", "b\n", "a\nb", "a\nb\n", "axb", "a\nb ", "xyz",
          "-", "CANARY-Ab3", "CANARY-a b", "éé", "!!", "AZ", "xxxxxxxxy", "0aF9", "\n"]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_value_patterns_match_what_pythons_re_matches(pattern: str) -> None:
    compiled = value_pattern(pattern)
    python = re.compile(compiled.source, re.ASCII)
    for value in VALUES:
        assert compiled.search(value) == bool(python.search(value)), (pattern, value)


@given(st.sampled_from(PATTERNS), st.text(alphabet="abcxyzAZ019 \n-_é!", max_size=12))
@settings(max_examples=400, deadline=None)
def test_value_patterns_agree_with_re_on_any_value(pattern: str, value: str) -> None:
    compiled = value_pattern(pattern)
    assert compiled.search(value) == bool(re.search(compiled.source, value, re.ASCII))


def test_catastrophic_patterns_are_checked_in_linear_time() -> None:
    """Patterns Python's re takes 2^n steps on. Run in a child with a time limit: a
    backtracking engine would never finish."""
    script = (
        "from magcfg.artifact import value_pattern\n"
        "for p in ['^(.+)+Z', '^(a+)+$', '^(a|a)*$', '^(a|aa)+$', '^.*.*.*.*.*Z']:\n"
        "    assert not value_pattern(p).search('a' * 3000 + '!')\n"
        "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=False)
    assert (done.returncode, done.stdout) == (0, "ok\n"), done.stderr


def test_nested_counted_repeats_are_refused_without_writing_them_out() -> None:
    """Each count within bounds, the product a billion: run in a child with a time limit,
    the compiler wrote each empty body out in turn."""
    script = (
        "import re\n"
        "from magcfg.artifact import value_pattern\n"
        "try:\n"
        "    value_pattern('(?:(?:(?:){999}){999}){999}')\n"
        "except re.error as error:\n"
        "    print(error.msg)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=False)
    assert (done.returncode, done.stdout) == (0, (
        "is too large to check (more than 1000 steps once its counted repetitions are "
        "written out; use minLength and maxLength for lengths)\n")), done.stderr


@pytest.mark.parametrize(("pattern", "message"), [
    ("^(a)\\1$", "uses a backreference, which magcfg does not check (secret values are "
                 "checked without backtracking)"),
    ("^(?=a)", "uses a lookaround, which magcfg does not check (secret values are checked "
               "without backtracking)"),
    ("^(?!a)", "uses a negative lookaround, which magcfg does not check (secret values are "
               "checked without backtracking)"),
    ("a++", "uses a possessive quantifier, which magcfg does not check (secret values are "
            "checked without backtracking)"),
    ("(?>a)", "uses an atomic group, which magcfg does not check (secret values are checked "
              "without backtracking)"),
    ("[a-z]{2000}", "is too large to check (more than 1000 steps once its counted "
                    "repetitions are written out; use minLength and maxLength for lengths)"),
    # An empty body emits no step: the count itself is what is too large.
    ("(?:){4294967294}", "is too large to check (more than 1000 steps once its counted "
                         "repetitions are written out; use minLength and maxLength for "
                         "lengths)"),
    # Each count within bounds, their product not: empty bodies written out a million
    # times (three levels took minutes).
    ("(?:(?:){999}){999}", "is too large to check (more than 1000 steps once its counted "
                           "repetitions are written out; use minLength and maxLength for "
                           "lengths)"),
    ("a(?:){500,1500}", "is too large to check (more than 1000 steps once its counted "
                        "repetitions are written out; use minLength and maxLength for "
                        "lengths)"),
])
def test_patterns_that_need_backtracking_are_refused(pattern: str, message: str) -> None:
    with pytest.raises(re.error) as info:
        value_pattern(pattern)
    assert info.value.msg == message
    with pytest.raises(ManifestError) as refused:
        check_secret_constraints({"format": 1, "keys": {"k": {"pattern": pattern}}})
    assert refused.value.message == f"is not a regular expression magcfg can check ({message})"


def test_the_bytes_depend_on_the_inputs_alone(bundled: Project, tmp_path: Path) -> None:
    """docs/artifact.md, "What the bytes depend on": another checkout of the same commit,
    built under every change there that the build must not see at once, writes the very
    same bytes."""
    import shutil

    from .conftest import MAGCFG

    shutil.rmtree(bundled.root / "generated")
    (bundled.root / ".gitignore").write_text(".magcfg-cache/\n")

    def run(*args: str, cwd: Path = bundled.root) -> None:
        subprocess.run(["git", "-c", "user.name=A", "-c", "user.email=a@b.c", *args],
                       cwd=cwd, check=True, capture_output=True)

    run("init", "-q", "-b", "main")
    run("add", "-A")
    run("commit", "-qm", "inputs")
    other = tmp_path / "elsewhere é #1" / "deeper"
    run("clone", "-q", str(bundled.root), str(other), cwd=tmp_path)
    run("checkout", "-q", "-b", "release/v9-é", cwd=other)
    for path in other.rglob("*"):
        if path.is_file() and ".git" not in path.parts:
            path.chmod(0o755)
            os.utime(path, (1, 1))
    gitconfig = tmp_path / "gitconfig"
    gitconfig.write_text("[core]\n\tautocrlf = true\n\tquotePath = false\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("HOME", "LANG") and not k.startswith(("XDG_", "LC_"))}
    env.update({"LC_ALL": "C", "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0",
                "TZ": "Pacific/Kiritimati", "SOURCE_DATE_EPOCH": "1", "PYTHONHASHSEED": "4242",
                "GIT_CONFIG_GLOBAL": str(gitconfig), "CUE_EXPERIMENT": "evalv3=0"})
    plain = bundled.run("build", "-j", "1")
    assert plain.returncode == 0, plain.stderr
    odd = subprocess.run(["sh", "-c", 'umask 077 && exec "$@"', "sh", str(MAGCFG), "build",
                          "-j", "2", "--project", str(other / "magcfg.yaml")],
                         cwd=other / "layers", env=env, capture_output=True, text=True,
                         timeout=300, check=False)
    assert odd.returncode == 0, odd.stderr
    assert Project(other).snapshot_tree() == bundled.snapshot_tree()
    assert len(bundled.snapshot_tree()) > 10
