"""The corpus of malformed inputs: each gives one exact, located error and leaves
generated/ byte-for-byte as it was."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import magcfg
from magcfg.errors import BuildError

from .conftest import Project, failed_cleanly, tree_state

BOMB = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)
DEEP = "magds:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(80)) + "  " * 81 + "x: 1\n"

# (name, file written, content, expected file, line, key, message fragment)
CASES: list[tuple[str, str, str | bytes, str, int | None, str | None, str]] = [
    ("duplicate-key", "layers/base/magds.yaml", "magds:\n  host: a\n  host: b\n",
     "layers/base/magds.yaml", 3, "magds.host", "duplicate key 'host'"),
    ("syntax", "layers/base/magds.yaml", "magds:\n  host: [a, b\n  port: 1\n",
     "layers/base/magds.yaml", 3, None, "YAML syntax error"),
    ("tab", "layers/base/magds.yaml", "magds:\n\thost: a\n",
     "layers/base/magds.yaml", 2, None, "tab character in indentation"),
    ("utf8", "layers/base/magds.yaml", b"magds:\n  host: caf\xe9\n",
     "layers/base/magds.yaml", 2, None, "invalid UTF-8"),
    ("top-list", "layers/base/extra.yaml", "- a\n- b\n",
     "layers/base/extra.yaml", 1, None, "top level of a layer file must be a mapping"),
    ("top-scalar", "layers/base/extra.yaml", "just text\n",
     "layers/base/extra.yaml", 1, None, "top level of a layer file must be a mapping"),
    ("alias-bomb", "layers/base/extra.yaml", BOMB,
     "layers/base/extra.yaml", 2, "d.2.1", "aliases expand to more than 10000 nodes"),
    ("deep", "layers/base/extra.yaml", DEEP,
     "layers/base/extra.yaml", 65, None, "nesting deeper than 64"),
    ("yaml11-bool", "layers/environments/dev/logging.yaml", "logging:\n  level: off\n",
     "layers/environments/dev/logging.yaml", 2, "logging.level", "YAML 1.1 and 1.2"),
    ("octal", "layers/environments/dev/magds.yaml", "magds:\n  port: 05433\n",
     "layers/environments/dev/magds.yaml", 2, "magds.port", "octal in YAML 1.1"),
    ("sexagesimal", "layers/environments/dev/magds.yaml", "magds:\n  host: 1:30\n",
     "layers/environments/dev/magds.yaml", 2, "magds.host", "YAML 1.1 and 1.2"),
    ("merge-key", "layers/environments/dev/magds.yaml",
     "magds:\n  <<: {host: x}\n  port: 1\n",
     "layers/environments/dev/magds.yaml", 2, "magds", "merge keys (<<)"),
    ("int-key", "layers/environments/dev/magds.yaml", "magds:\n  8080: x\n",
     "layers/environments/dev/magds.yaml", 2, "magds", "keys must be strings"),
    ("nan", "layers/environments/dev/magds.yaml", "magds:\n  port: .nan\n",
     "layers/environments/dev/magds.yaml", 2, "magds.port", "not representable in JSON"),
    ("unknown-tag", "layers/environments/dev/magds.yaml", "magds:\n  port: !!binary aGk=\n",
     "layers/environments/dev/magds.yaml", 2, "magds.port", "unsupported tag"),
    ("unset-with-value", "layers/environments/dev/magds.yaml", "magds:\n  port: !unset 5\n",
     "layers/environments/dev/magds.yaml", 2, "magds.port", "!unset takes no value"),
    ("two-documents", "layers/environments/dev/magds.yaml", "magds: {}\n---\nmagds: {}\n",
     "layers/environments/dev/magds.yaml", 2, None, "expected a single document"),
    ("type-change", "layers/environments/dev/magds.yaml", "magds:\n  pool: 5\n",
     "layers/environments/dev/magds.yaml", 2, "magds.pool", "type change"),
    ("same-layer-conflict", "layers/base/magds2.yaml", "magds:\n  port: 1\n",
     "layers/base/magds2.yaml", 2, "magds.port", "set twice in layer 'base'"),
    ("schema-type", "layers/environments/dev/magds.yaml", "magds:\n  host: h\n  port: abc\n",
     "layers/environments/dev/magds.yaml", 3, "magds.port", 'is not of type "integer"'),
    ("schema-unknown-key", "layers/environments/dev/magds.yaml", "magds:\n  host: h\n  prot: 1\n",
     "layers/environments/dev/magds.yaml", 3, "magds.prot", "did you mean 'port'?"),
    ("schema-range", "layers/environments/dev/magds.yaml", "magds:\n  host: h\n  port: 70000\n",
     "layers/environments/dev/magds.yaml", 3, "magds.port", "maximum of 65535"),
    ("schema-enum", "layers/environments/dev/logging.yaml", "logging:\n  level: verbose\n",
     "layers/environments/dev/logging.yaml", 2, "logging.level", "verbose"),
    ("schema-unknown-top", "layers/environments/dev/extra.yaml", "magdss:\n  host: h\n",
     "layers/environments/dev/extra.yaml", 1, "magdss", "did you mean 'magds'?"),
    ("list-over-map", "layers/environments/dev/magds.yaml", "magds:\n  pool: [1, 2]\n",
     "layers/environments/dev/magds.yaml", 2, "magds.pool", "type change"),
]


def _first_build(project: Project) -> dict[str, str]:
    magcfg.build(magcfg.load_project(project.root / "magcfg.yaml"))
    return project.snapshot_tree()


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_located_and_writes_nothing(mini: Project, case: tuple) -> None:  # type: ignore[type-arg]
    _name, rel, content, file, line, key, fragment = case
    before = _first_build(mini)
    mini.write(rel, content)
    with pytest.raises(BuildError) as info:
        magcfg.build(magcfg.load_project(mini.root / "magcfg.yaml"))
    errors = [d for d in info.value.diagnostics if d.severity == "error"]
    assert any(d.file == file and d.line == line and d.key == key and fragment in d.message
               for d in errors), [d.format() for d in errors]
    assert mini.snapshot_tree() == before


def test_cli_reports_without_traceback_and_exit_1(mini: Project) -> None:
    before = _first_build(mini)
    mini.write("layers/base/magds.yaml", "magds:\n  host: a\n  host: b\n")
    result = mini.run("build")
    assert result.returncode == 1
    assert "layers/base/magds.yaml:3: error: duplicate key 'host' [magds.host]" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert mini.snapshot_tree() == before


def test_all_errors_of_a_build_are_collected(mini: Project) -> None:
    mini.write("layers/base/a.yaml", "a:\n\tb: 1\n")
    mini.write("layers/base/b.yaml", "b: [1\n")
    mini.write("layers/environments/prod/c.yaml", "c: yes\n")
    with pytest.raises(BuildError) as info:
        magcfg.build(magcfg.load_project(mini.root / "magcfg.yaml"))
    files = {d.file for d in info.value.diagnostics}
    assert files == {"layers/base/a.yaml", "layers/base/b.yaml",
                     "layers/environments/prod/c.yaml"}


def test_schema_errors_of_every_environment_are_collected(mini: Project) -> None:
    mini.write("layers/environments/dev/magds.yaml", "magds:\n  port: x\n")
    mini.write("layers/environments/prod/logging.yaml", "logging:\n  level: loud\n")
    with pytest.raises(BuildError) as info:
        magcfg.build(magcfg.load_project(mini.root / "magcfg.yaml"))
    keys = sorted(d.key or "" for d in info.value.diagnostics)
    assert keys == ["logging.level", "magds.port"]


def test_symlink_leaving_the_repo(mini: Project, tmp_path: Path) -> None:
    before = _first_build(mini)
    outside = tmp_path / "outside.yaml"
    outside.write_text("magds:\n  host: evil\n")
    os.symlink(outside, mini.root / "layers/base/link.yaml")
    with pytest.raises(BuildError) as info:
        magcfg.build(magcfg.load_project(mini.root / "magcfg.yaml"))
    assert [(d.file, d.message) for d in info.value.diagnostics] == [
        ("layers/base/link.yaml", "symlink leads outside the repository")]
    assert mini.snapshot_tree() == before


def test_symlink_inside_the_repo_is_fine(mini: Project) -> None:
    mini.write("shared/logging.yaml", "logging:\n  level: error\n")
    os.symlink(mini.root / "shared/logging.yaml", mini.root / "layers/environments/dev/logging.yaml")
    result = magcfg.build(magcfg.load_project(mini.root / "magcfg.yaml"))
    assert result.artifacts["dev"].config["logging"]["level"] == "error"


def test_missing_required_key(mini: Project) -> None:
    (mini.root / "layers/base/magds.yaml").unlink()
    (mini.root / "layers/environments/dev/magds.yaml").unlink()
    with pytest.raises(BuildError) as info:
        magcfg.build(magcfg.load_project(mini.root / "magcfg.yaml"))
    assert any("required key 'magds' is missing" in d.message for d in info.value.diagnostics)


def test_secret_literal_is_never_echoed(mini: Project) -> None:
    canary = "CANARY-s3cr3t-9f8e7d"
    mini.write("layers/environments/prod/magds.yaml", f"magds:\n  password: {canary}\n")
    result = mini.run("build")
    assert result.returncode == 1
    assert "layers/environments/prod/magds.yaml:2" in result.stderr
    assert "magds.password" in result.stderr
    assert canary not in result.stderr + result.stdout


@pytest.mark.parametrize(("content", "fragment"), [
    ("environments: [dev]\nlayers: []\nschema: {json: s.json}\n", "layers must be a non-empty"),
    ("environments: [dev]\nlayers:\n  - {name: b, path: l}\nschema: {json: s.json}\nlayres: 1\n",
     "unknown section 'layres' (did you mean 'layers'?)"),
    ("environments: [Dev!]\nlayers:\n  - {name: b, path: l}\nschema: {json: s.json}\n",
     "environment name"),
    ("environments: [dev]\nlayers:\n  - {name: b, path: ../x}\nschema: {json: s.json}\n",
     "inside the project"),
    # Each a build of its own: 2,000 took the memory of thousands of builds, and a
    # thread each to write.
    ("environments: [" + ", ".join(f"e{i}" for i in range(2000)) + "]\nlayers:\n"
     "  - {name: b, path: l}\nschema: {json: s.json}\n",
     "magcfg.yaml:1: error: environments lists 2000 names; at most 256 (each is a build of "
     "its own) [environments]"),
    ("- dev\n- prod\n", "magcfg.yaml:1: error: the top level of a project file must be "
     "a mapping\n"),
    ("just text\n", "magcfg.yaml:1: error: the top level of a project file must be a "
     "mapping\n"),
])
def test_bad_project_file(tmp_path: Path, content: str, fragment: str) -> None:
    project = Project(tmp_path)
    project.write("magcfg.yaml", content)
    result = project.run("build")
    assert result.returncode == 1, result.stderr
    assert "magcfg.yaml" in result.stderr and fragment in result.stderr


@pytest.mark.parametrize(("section", "message"), [
    ("promote:\n  allow_difference: {}\n",
     "magcfg.yaml:{line}: error: unknown key 'allow_difference' (did you mean "
     "'allow_differences'?) [promote.allow_difference]"),
    ("promote:\n  allow_differences:\n    stagin: [a.b]\n",
     "magcfg.yaml:{line2}: error: unknown environment 'stagin' (known: dev, prod, or \"*\") "
     "[promote.allow_differences.stagin]"),
    ("promote:\n  allow_differences:\n    dev: [5]\n",
     "magcfg.yaml:{line2}: error: give a list of dotted key globs "
     "[promote.allow_differences.dev]"),
    ("signing:\n  public_key: keys/x.pub\n",
     "magcfg.yaml:{line}: error: unknown key 'public_key' (did you mean 'public_keys'?) "
     "[signing.public_key]"),
    ("signing:\n  public_keys: keys/x.pub\n",
     "magcfg.yaml:{line}: error: public_keys is a list of file paths [signing.public_keys]"),
])
def test_the_ci_gate_checks_the_sections_other_commands_read(
        mini: Project, section: str, message: str) -> None:
    # promote: and signing: configure promote and verify; build --check (the CI gate)
    # refuses a broken one, rather than the promotion or verification failing later.
    text = (mini.root / "magcfg.yaml").read_text()
    assert mini.run("build").returncode == 0
    mini.write("magcfg.yaml", text + section)
    line = text.count("\n") + 2
    expected = message.format(line=line, line2=line + 1) + "\n"
    for command in (["build", "--check"], ["build"]):
        assert failed_cleanly(mini.run(*command), 1) == expected


def test_bad_schema_file(mini: Project) -> None:
    mini.write("schemas/schema.json", '{"type": "object",\n "properties": {,}}\n')
    result = mini.run("build")
    assert result.returncode == 1
    assert "schemas/schema.json:2: error: invalid JSON" in result.stderr


@pytest.mark.parametrize(("value", "token", "where"), [
    ("NaN", "NaN", "maximum"), ("-Infinity", "-Infinity", "maximum"),
    ("1e400", "1e400", "maximum"), ("[1, 2.5, Infinity]", "Infinity", "maximum/2"),
])
def test_schema_number_that_json_does_not_have(mini: Project, value: str, token: str,
                                               where: str) -> None:
    """Python's json reads NaN, Infinity and 1e400 (as inf); none is JSON, and the schema
    check (which refused them as "nesting deeper than 128 levels") never sees them."""
    assert mini.run("build").returncode == 0
    before = tree_state(mini.root)
    mini.write("schemas/schema.json", '{"type": "object",\n "properties": {"magds": {\n'
               f'  "properties": {{"port": {{"type": "integer", "maximum": {value}}}}}}}}}}}\n')
    before["schemas/schema.json"] = tree_state(mini.root)["schemas/schema.json"]
    assert failed_cleanly(mini.run("build")) == (
        f"schemas/schema.json:3: error: invalid JSON: {token} is not a finite number "
        f"[#/properties/magds/properties/port/{where}]\n")
    assert tree_state(mini.root) == before


def test_schema_that_is_not_a_schema(mini: Project) -> None:
    mini.write("schemas/schema.json", '{"type": "objekt"}\n')
    result = mini.run("build")
    assert result.returncode == 1
    assert "not a valid JSON Schema" in result.stderr


@pytest.mark.parametrize(("pattern", "allowed"), [
    ("magcfg.project._NOT_YAML_TEXT",
     "[\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"),
    ("magcfg.delivery.configmap._NOT_BLOCK_SAFE",
     "[\t\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]"),
])
def test_refused_characters_are_the_complement_of_the_allowed(pattern: str, allowed: str
                                                              ) -> None:
    """The character classes are written as what is refused (cheap to compile); every
    code point is refused exactly when it is not in the class of what is allowed."""
    import importlib
    import re

    module, name = pattern.rsplit(".", 1)
    refused = getattr(importlib.import_module(module), name)
    ok = re.compile(allowed)
    text = "".join(map(chr, range(0x110000)))
    assert [m.start() for m in refused.finditer(text)] == [
        i for i in range(0x110000) if not ok.match(text, i)]
