"""CUE through the real ``cue`` CLI: schemas (cue vet), layers (cue export), the binary
look-up and version check. Nothing here mocks cue: every check runs the pinned binary
(./scripts/dev test puts .tools/bin on PATH). The only stand-ins are a counting shim
that execs the real cue (to count processes) and scripts that print an old or foreign
version (to test our version check, not cue's work)."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

import magcfg
from magcfg.cue.binary import (
    MIN_CUE_VERSION,
    CueBinary,
    find_cue,
    merge_disjunctions,
    parse_errors,
    split_path,
)
from magcfg.cue.layers import written_literals
from magcfg.errors import BuildError
from magcfg.pipeline.cache import BuildCache
from magcfg.syntax.locate import locate_cue

from ..conftest import (
    MAGCFG,
    REPO,
    Project,
    failed_cleanly,
    finishes_in_a_child,
    no_more_tasks,
    tree_state,
)

# Found the way magcfg finds it: PATH (./scripts/dev test puts .tools/bin first), else
# the repository's .tools/bin. Missing cue fails the suite loudly; it never skips.
REAL_CUE = shutil.which("cue") or shutil.which("cue", path=str(REPO / ".tools/bin"))
assert REAL_CUE is not None, "cue not found: run the tests with ./scripts/dev test"

SCHEMA = """\
package app

// An app's config.
#Config: {
	env: "dev" | "prod"
	magds: {
		host: string
		port: int & >0 & <65536
		pool: {
			min: int
			max: >=min | error("pool.max must not be below pool.min")
		}
		password?: string
	}
	if env == "prod" {
		magds: host: !="localhost" | error("prod must not use localhost")
	}
	logging?: level: "debug" | "info" | "warn"
}
"""

PROJECT = """\
version: 1
environments: [dev, prod]
layers:
  - name: base
    path: layers/base
  - name: environment
    path: "layers/environments/{env}"
schema:
  cue: schemas/app.cue
  cue_definition: "#Config"
output: generated
redact: ["magds.password"]
"""

BASE = {
    "layers/base/magds.yaml": "magds:\n  host: db\n  port: 5433\n  pool:\n    min: 1\n    max: 5\n",
    "layers/environments/dev/env.yaml": "env: dev\n",
    "layers/environments/dev/magds.yaml": "magds:\n  host: localhost\n",
    "layers/environments/prod/env.yaml": "env: prod\n",
    "layers/environments/prod/logging.yaml": "logging:\n  level: warn\n",
}


@pytest.fixture
def app(tmp_path: Path) -> Project:
    """A valid project whose only schema is CUE."""
    project = Project(tmp_path / "app")
    project.write("magcfg.yaml", PROJECT)
    project.write("schemas/app.cue", SCHEMA)
    for rel, text in BASE.items():
        project.write(rel, text)
    return project


def _script(directory: Path, name: str, body: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\n" + body, encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def _counting_cue(directory: Path) -> tuple[Path, Path]:
    """A shim that logs each call's subcommand and execs the real cue."""
    log = directory / "calls.log"
    shim = _script(directory, "cue", f'echo "$1" >> "{log}"\nexec "{REAL_CUE}" "$@"\n')
    return shim, log


def _calls(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def _build(project: Project) -> magcfg.BuildResult:
    return magcfg.build(magcfg.load_project(project.root / "magcfg.yaml"))


# --------------------------------------------------------------------------- schemas


def test_good_cue_schema_builds_and_is_in_the_manifest(app: Project) -> None:
    result = app.run("build")
    assert result.returncode == 0, result.stderr
    manifest = json.loads((app.root / "generated/prod/manifest.json").read_text())
    digest = "sha256:" + __import__("hashlib").sha256(SCHEMA.encode()).hexdigest()
    assert manifest["schema"] == {"cue": {"definition": "#Config", "digest": digest,
                                          "path": "schemas/app.cue"},
                                  "digest": None, "path": None}
    config = json.loads((app.root / "generated/dev/config.json").read_text())
    assert config["magds"]["host"] == "localhost"


def test_violation_is_mapped_to_the_layer_file_line_and_key(app: Project) -> None:
    app.write("layers/environments/prod/magds.yaml", "magds:\n  pool:\n    max: 0\n")
    before = app.snapshot_tree()
    result = app.run("build")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "layers/environments/prod/magds.yaml:3: error: pool.max must not be below pool.min "
        "(CUE: schemas/app.cue:11) [magds.pool.max]")
    assert "Traceback" not in result.stderr
    assert app.snapshot_tree() == before


def test_environment_rule_and_errors_of_every_environment_in_one_build(app: Project) -> None:
    app.write("layers/base/magds.yaml",
              "magds:\n  host: localhost\n  port: 70000\n  pool:\n    min: 1\n    max: 5\n")
    with pytest.raises(BuildError) as caught:
        _build(app)
    got = [(d.file, d.line, d.key, d.message.split(" (CUE:")[0]) for d in caught.value.diagnostics]
    assert ("layers/base/magds.yaml", 2, "magds.host", "prod must not use localhost") in got
    # The port rule fails in both environments, from the same base line: one diagnostic.
    port = [g for g in got if g[2] == "magds.port"]
    assert len(port) == 1 and port[0][:2] == ("layers/base/magds.yaml", 3)
    assert "70000" in port[0][3]


def test_missing_required_key_points_at_its_parent(app: Project) -> None:
    app.write("layers/base/magds.yaml", "magds:\n  host: db\n  pool:\n    min: 1\n    max: 5\n")
    with pytest.raises(BuildError) as caught:
        _build(app)
    d = caught.value.diagnostics[0]
    assert (d.file, d.line, d.key) == ("layers/base/magds.yaml", 1, "magds.port")
    assert "required by the CUE schema but not set" in d.message


def test_closed_definition_rejects_unknown_keys(app: Project) -> None:
    app.write("layers/environments/dev/extra.yaml", "magds:\n  hots: x\n")
    with pytest.raises(BuildError) as caught:
        _build(app)
    d = caught.value.diagnostics[0]
    assert (d.file, d.line, d.key) == ("layers/environments/dev/extra.yaml", 2, "magds.hots")
    assert "field not allowed" in d.message


def test_secret_values_never_appear_in_cue_errors(app: Project) -> None:
    canary = "canary-Zq8vX-not-a-ref"
    app.write("schemas/app.cue", SCHEMA.replace("password?: string",
                                                'password?: =~"^vault://"'))
    app.write("layers/environments/dev/secret.yaml", f"magds:\n  password: {canary}\n")
    result = app.run("build")
    assert result.returncode == 1
    assert "layers/environments/dev/secret.yaml:2: error:" in result.stderr
    assert "<redacted>" in result.stderr
    assert canary not in result.stderr + result.stdout


def test_a_cue_error_under_another_key_masks_the_secret_it_quotes(app: Project) -> None:
    """cue's error about ``port`` quotes the value ``password`` gave it: every text of
    a literal under a secret key is masked in every message, whoever's key it is under."""
    canary = "canary-Wm3qP-in-cue"
    app.write("layers/environments/dev/magds.cue",
              f'magds: {{\n\tpassword: "{canary}"\n\tport: password & 1\n}}\n')
    app.write("layers/environments/prod/magds.cue",
              f'magds: password: "{canary}-prod"\nmagds: port: int & "x\\(magds.password)"\n')
    before = app.snapshot_tree()
    plain = app.run("build")
    report = app.run("build", "--format", "json")
    assert plain.returncode == report.returncode == 1
    assert "layers/environments/dev/magds.cue:2: error: cue export: conflicting values 1 " \
           'and "<redacted>"' in plain.stderr
    assert "layers/environments/prod/magds.cue:2: error: cue export: conflicting values int " \
           'and "x<redacted>"' in plain.stderr
    assert "<redacted>" in report.stdout
    for result in (plain, report):
        assert canary not in result.stdout + result.stderr
    assert app.snapshot_tree() == before
    layers = app.root / "layers/environments"
    for path in app.root.rglob("*"):
        if path.is_file() and ".git" not in path.parts and layers not in path.parents:
            assert canary.encode() not in path.read_bytes(), path


@pytest.mark.parametrize("written", [
    '"canary\\\\Wm3qP-in-cue"', '"canary\\nWm3qP-in-cue"', '"' + "canary-Wm3qP-" * 30 + '"',
    '"canary\\aWm3qP-in-cue"', '"canary\\vWm3qP-in-cue"', '"canaryé\\u0085Wm3qP-in-cue"',
    '"canaryé\\x7fWm3qP-in-cue"', '"canaryé\\u00a0Wm3qP-in-cue"',
])
def test_a_cue_schema_error_masks_a_secret_it_quotes_escaped_or_cut(
        app: Project, written: str) -> None:
    """cue quotes a string as Go does (a backslash doubled, a newline escaped, a bell
    ``\\a``, a vertical tab ``\\v``, a DEL, C1 control or no-break space ``\\u007f``
    beside ``é``), and its message is cut at 240 characters: the password ``port: *p``
    reached was shown, or its start, where the literal's text matched nothing."""
    app.write("layers/environments/prod/magds.yaml",
              f"magds:\n  password: &p {written}\n  port: *p\n")
    result = app.run("build")
    assert result.returncode == 1
    assert "Wm3qP" not in result.stdout + result.stderr
    assert "layers/environments/prod/magds.yaml:3: error: conflicting values " + (
        '"<redacted>" and int' if len(written) < 200 else '"... (CUE: schemas/app.cue:') \
        in result.stderr


def test_broken_schema_is_located_in_the_schema_file(app: Project) -> None:
    app.write("schemas/app.cue", "package app\n\n#Config: {\n\tenv: string\n")
    result = app.run("build")
    assert result.returncode == 1
    assert result.stderr.startswith("schemas/app.cue:4: error: CUE schema error:")
    assert "Traceback" not in result.stderr


def test_unknown_definition_is_a_clear_error(app: Project) -> None:
    app.write("magcfg.yaml", PROJECT.replace('"#Config"', '"#Settings"'))
    result = app.run("build")
    assert result.returncode == 1
    assert "definition #Settings not found in this CUE schema" in result.stderr
    app.write("magcfg.yaml", PROJECT.replace('"#Config"', '"Config"'))
    result = app.run("build")
    assert result.returncode == 1
    assert ("magcfg.yaml:10: error: cue_definition must name a CUE definition like '#Config', "
            "not 'Config' [schema.cue_definition]") in result.stderr
    app.write("magcfg.yaml", PROJECT.replace("  cue: schemas/app.cue\n", "  json: s.json\n"))
    result = app.run("build")
    assert result.returncode == 1
    assert "magcfg.yaml:10: error: cue_definition needs schema.cue" in result.stderr


def test_one_cue_process_per_build_and_none_when_cached(app: Project, tmp_path: Path) -> None:
    shim, log = _counting_cue(tmp_path / "shim")
    os.environ["MAGCFG_CUE"] = str(shim)
    try:
        _build(app)
        assert _calls(log) == ["version", "vet"]  # two environments, one vet
        log.unlink()
        result = _build(app)
        assert _calls(log) == [] and result.written == []  # verdicts and version cached
        app.write("layers/environments/prod/logging.yaml", "logging:\n  level: info\n")
        _build(app)
        assert _calls(log) == ["vet"]  # only prod changed: one vet, of prod only
    finally:
        del os.environ["MAGCFG_CUE"]


def test_large_environments_get_a_process_each(app: Project, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import magcfg.cue.schema

    monkeypatch.setattr(magcfg.cue.schema, "MAX_BATCH_BYTES", 10)
    shim, log = _counting_cue(tmp_path / "shim")
    monkeypatch.setenv("MAGCFG_CUE", str(shim))
    app.write("layers/environments/prod/magds.yaml", "magds:\n  pool:\n    max: 0\n")
    app.write("layers/environments/dev/magds.yaml", "magds:\n  host: localhost\n  port: 0\n")
    with pytest.raises(BuildError) as caught:
        _build(app)
    assert _calls(log) == ["version", "vet", "vet"]
    assert {d.key for d in caught.value.diagnostics} == {"magds.pool.max", "magds.port"}


def test_both_schemas_json_first(mini: Project) -> None:
    mini.write("schemas/pool.cue", "#Config: {\n\tmagds: pool: {\n\t\tmin: int\n"
               "\t\tmax: >=min | error(\"pool.max must not be below pool.min\")\n"
               "\t\t...\n\t}\n\tmagds: {...}\n\t...\n}\n")
    text = (mini.root / "magcfg.yaml").read_text()
    mini.write("magcfg.yaml", text.replace("  json: schemas/schema.json\n",
                                           "  json: schemas/schema.json\n"
                                           "  cue: schemas/pool.cue\n"))
    assert mini.run("build").returncode == 0
    mini.write("layers/environments/prod/magds.yaml", "magds:\n  pool:\n    min: 9\n")
    result = mini.run("build")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "layers/base/magds.yaml:6: error: pool.max must not be below pool.min "
        "(CUE: schemas/pool.cue:4) (environment prod) [magds.pool.max]")
    # A JSON Schema error stops that environment before CUE sees it.
    mini.write("layers/environments/prod/magds.yaml", "magds:\n  port: high\n")
    result = mini.run("build")
    assert result.returncode == 1
    assert "CUE" not in result.stderr and "[magds.port]" in result.stderr


def test_bundled_cue_schema_catches_production_debug(bundled: Project) -> None:
    project = magcfg.load_project(bundled.root / "magcfg.yaml")
    assert (project.json_schema, project.cue_schema) == ("schemas/magflock.schema.json",
                                                          "schemas/magflock.cue")
    kernel = bundled.root / "layers/environments/production/kernel.yaml"
    kernel.write_text(kernel.read_text() + "  debug: true\n")
    backup = bundled.root / "layers/environments/dev/magbackup.yaml"
    backup.write_text(backup.read_text().replace("retention_days: 2", "retention_days: 60"))
    before = bundled.snapshot_tree()
    result = bundled.run("build")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("layers/environments/dev/magbackup.yaml:3: error: "
                               "magbackup.retention_days must be between 1 and 7 days in dev")
    assert lines[1].startswith("layers/environments/production/kernel.yaml:4: error: "
                               "production must not enable kernel.debug (CUE: schemas/magflock.cue:")
    assert len(lines) == 2
    assert bundled.snapshot_tree() == before


# --------------------------------------------------------------------------- binary


def test_missing_cue_binary_is_a_clear_error(app: Project, tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    before = app.snapshot_tree()
    result = app.run("build", env={"PATH": str(empty), "MAGCFG_CUE": ""})
    assert result.returncode == 1
    assert result.stderr.startswith("schemas/app.cue: error: this file needs the cue CLI "
                                    "(v0.14.1 or newer), but the `cue` command was not found on PATH")
    assert result.stderr.endswith(
        "install cue v0.14.1 or newer with `go install cuelang.org/go/cmd/cue@v0.14.1`, a "
        "release binary (https://github.com/cue-lang/cue/releases) or your package manager "
        "(`brew install cue-lang/tap/cue`), then put it on PATH or point MAGCFG_CUE at it "
        "(in magcfg's own repository `./scripts/dev setup` installs it into .tools/bin/)\n")
    result = app.run("build", env={"MAGCFG_CUE": str(tmp_path / "nowhere/cue")})
    assert result.returncode == 1
    assert f"MAGCFG_CUE={tmp_path / 'nowhere/cue'} is not an executable file" in result.stderr
    assert app.snapshot_tree() == before


def test_a_cue_that_cannot_start_or_start_a_thread_is_the_limit_said(app: Project) -> None:
    """Where the system starts no more processes, cue that does not start is no cue
    missing; where cue starts but can start no thread of its own (the Go runtime stops
    and prints its stacks), its crash is no error of the schema: either way one line,
    exit 1, nothing written. The first said to install cue, the second made each line
    of the crash dump a CUE schema error."""
    from magcfg.errors import NO_NEW_TASK

    env = {**os.environ, "MAGCFG_CUE": str(REAL_CUE)}

    def limited_build(tasks: int) -> None:
        before = tree_state(app.root)
        with no_more_tasks(tasks) as limit:
            done = subprocess.run([str(MAGCFG), "build"], cwd=app.root, env=env,
                                  capture_output=True, text=True, timeout=120, check=False,
                                  preexec_fn=limit)
        assert (done.returncode, done.stdout, done.stderr) == (
            1, "", f"error: {NO_NEW_TASK}\n"), done.stderr[:2000]
        assert tree_state(app.root) == before

    limited_build(1)  # cue's version asked: no process starts
    assert app.run("build", env=env).returncode == 0  # the cache knows cue's version
    app.write("layers/base/magds.yaml", BASE["layers/base/magds.yaml"].replace("max: 5",
                                                                                "max: 6"))
    limited_build(2)  # magcfg and cue, which starts no thread


def test_project_local_tools_bin_is_found(app: Project, tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    (app.root / ".tools/bin").mkdir(parents=True)
    os.symlink(REAL_CUE, app.root / ".tools/bin/cue")
    result = app.run("build", env={"PATH": str(empty), "MAGCFG_CUE": ""})
    assert result.returncode == 0, result.stderr


def test_old_cue_version_is_refused(app: Project, tmp_path: Path) -> None:
    old = _script(tmp_path / "old", "cue", 'echo "cue version v0.4.3"\necho\n')
    result = app.run("build", env={"MAGCFG_CUE": str(old)})
    assert result.returncode == 1
    assert result.stderr.startswith(f"schemas/app.cue: error: cue v0.4.3 at {old} is too old: "
                                    "magcfg needs cue v0.14.1 or newer")
    assert "./scripts/dev setup" in result.stderr
    foreign = _script(tmp_path / "foreign", "cue", 'echo "something else"\n')
    result = app.run("build", env={"MAGCFG_CUE": str(foreign)})
    assert result.returncode == 1
    assert "does not answer `cue version` like cue does" in result.stderr


def test_real_cue_passes_the_version_check() -> None:
    cue = find_cue("x.cue", None, BuildCache(None))
    assert cue.version == "v{}.{}.{}".format(*MIN_CUE_VERSION)


def test_min_version_is_the_one_scripts_dev_installs() -> None:
    text = (REPO / "scripts/dev").read_text()
    pinned = re.search(r'^CUE_VERSION="v(\d+)\.(\d+)\.(\d+)"', text, re.MULTILINE)
    assert pinned is not None
    assert tuple(int(x) for x in pinned.groups()) == MIN_CUE_VERSION


def test_no_cue_needed_without_cue_files(mini: Project, tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    result = mini.run("build", env={"PATH": str(empty), "MAGCFG_CUE": ""})
    assert result.returncode == 0, result.stderr


# --------------------------------------------------------------------------- layers

CUE_LAYER = """\
// Production MagDS in CUE: computed values, standard library.
import "strings"

magds: {
	host: strings.ToLower("DB-PROD")
	pool: {
		min: 4
		max: min * 5
	}
}
"""


def test_cue_layer_is_merged_with_provenance(app: Project) -> None:
    app.write("layers/environments/prod/magds.cue", CUE_LAYER)
    # A *_test.cue name, which cue itself would skip when loading a package.
    app.write("layers/environments/dev/logging_test.cue",
              "// dev logging\npackage dev\n\nlogging: level: \"debug\"\n")
    assert app.run("build").returncode == 0
    prod = json.loads((app.root / "generated/prod/config.json").read_text())
    assert prod["magds"] == {"host": "db-prod", "port": 5433, "pool": {"max": 20, "min": 4}}
    dev = json.loads((app.root / "generated/dev/config.json").read_text())
    assert dev["logging"] == {"level": "debug"}
    out = app.run("explain", "logging.level", "--env", "dev")
    assert "=> layers/environments/dev/logging_test.cue:4  (environment)" in out.stdout
    out = app.run("explain", "magds.pool.max", "--env", "prod")
    assert out.returncode == 0
    assert "layers/base/magds.yaml:6  (base)  5" in out.stdout
    assert "=> layers/environments/prod/magds.cue:8  (environment)  20" in out.stdout
    manifest = json.loads((app.root / "generated/prod/manifest.json").read_text())
    assert manifest["inputs"]["files"] == 5  # project file + 3 YAML + 1 .cue


def test_cue_layers_are_exported_by_one_process_and_cached(app: Project, tmp_path: Path) -> None:
    app.write("layers/environments/prod/magds.cue", CUE_LAYER)
    app.write("layers/environments/dev/a.cue", "logging: level: \"debug\"\n")
    app.write("layers/environments/dev/b.cue", "package x\nmagds: port: 6000\n")
    shim, log = _counting_cue(tmp_path / "shim")
    os.environ["MAGCFG_CUE"] = str(shim)
    try:
        _build(app)
        assert _calls(log) == ["version", "eval", "vet"]
        log.unlink()
        _build(app)
        assert _calls(log) == []
    finally:
        del os.environ["MAGCFG_CUE"]


def test_cached_cue_layer_is_exported_again_when_its_fragment_is_merged(app: Project,
                                                                        tmp_path: Path) -> None:
    """The cache keeps a .cue layer's keys, never its values: when a fragment the layer
    contributes to has to be merged again, the layer is exported then (one process)."""
    app.write("layers/environments/prod/magds.cue", CUE_LAYER)
    shim, log = _counting_cue(tmp_path / "shim")
    os.environ["MAGCFG_CUE"] = str(shim)
    try:
        _build(app)
        log.unlink()
        app.write("layers/base/magds.yaml", BASE["layers/base/magds.yaml"].replace("5433", "5434"))
        result = _build(app)
        assert _calls(log) == ["eval", "vet"]
    finally:
        del os.environ["MAGCFG_CUE"]
    assert result.artifacts["prod"].config["magds"] == {
        "host": "db-prod", "port": 5434, "pool": {"min": 4, "max": 20}}
    cold = magcfg.build(magcfg.load_project(app.root / "magcfg.yaml"), check=True,
                        cache=BuildCache(None))
    assert cold.stale == []


def test_a_warning_beside_a_cached_cue_layer_runs_no_cue_export(app: Project,
                                                                 tmp_path: Path) -> None:
    """A warning's message is masked of the layers' secret literals: a cached .cue
    layer's are read from its text, not exported by a cue process."""
    app.write("layers/environments/prod/magds.cue", CUE_LAYER)
    shim, log = _counting_cue(tmp_path / "shim")
    os.environ["MAGCFG_CUE"] = str(shim)
    try:
        _build(app)
        log.unlink()
        app.write("layers/base/logging.yaml", "logging:\n  level: warn\n")
        result = _build(app)
        assert _calls(log) == ["vet"]
    finally:
        del os.environ["MAGCFG_CUE"]
    assert [d.code for d in result.artifacts["prod"].warnings] == ["redundant"]


def test_cue_layer_errors_are_located(app: Project) -> None:
    app.write("layers/environments/prod/magds.cue", CUE_LAYER.replace("min: 4", "min: 4 & string"))
    app.write("layers/environments/dev/bad.cue", "package dev\n\nx: int\n")
    before = app.snapshot_tree()
    result = app.run("build")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("layers/environments/dev/bad.cue:3: error: cue export: ")
    assert "incomplete value int [x]" in lines[0]
    assert lines[1].startswith("layers/environments/prod/magds.cue:7: error: cue export: "
                               "conflicting values 4 and string")
    assert app.snapshot_tree() == before


def test_a_conflict_left_in_a_cue_layer_is_refused_at_its_marker(app: Project) -> None:
    """A multi-line string closed in the first column holds git's markers as text: cue
    exports both sides; the build refuses the file at the first marker."""
    app.write("layers/environments/prod/notes.cue",
              'magds: host: """\ndb\n<<<<<<< HEAD\n.ours\n=======\n.theirs\n'
              '>>>>>>> other\n"""\n')
    before = app.snapshot_tree()
    result = app.run("build")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr == ("layers/environments/prod/notes.cue:3: error: an unresolved merge "
                             "conflict (git's <<<<<<< marker): resolve it, then build again\n")
    assert app.snapshot_tree() == before


def test_cue_layer_must_be_a_struct(app: Project) -> None:
    app.write("layers/environments/dev/list.cue", "[1, 2]\n")
    result = app.run("build")
    assert result.returncode == 1
    assert "layers/environments/dev/list.cue: error: a .cue layer must evaluate to a struct" \
        in result.stderr


def test_cue_layer_and_schema_violation_points_into_the_cue_file(app: Project) -> None:
    app.write("layers/environments/prod/magds.cue", CUE_LAYER.replace("max: min * 5", "max: min - 1"))
    result = app.run("build")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "layers/environments/prod/magds.cue:8: error: pool.max must not be below pool.min "
        "(CUE: schemas/app.cue:11) [magds.pool.max]")


def test_cue_layer_without_cue_binary(app: Project, tmp_path: Path) -> None:
    app.write("magcfg.yaml", PROJECT.replace("schema:\n  cue: schemas/app.cue\n"
                                             "  cue_definition: \"#Config\"\n",
                                             "schema:\n  json: schemas/s.json\n"))
    app.write("schemas/s.json", '{"type": "object"}')
    app.write("layers/environments/prod/magds.cue", CUE_LAYER)
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    result = app.run("build", env={"PATH": str(empty), "MAGCFG_CUE": ""})
    assert result.returncode == 1
    assert result.stderr.startswith("layers/environments/prod/magds.cue: error: this file needs "
                                    "the cue CLI")


def test_build_with_cue_is_deterministic(app: Project, tmp_path: Path) -> None:
    app.write("layers/environments/prod/magds.cue", CUE_LAYER)
    # The caller's CUE_* variables do not reach cue (this one would make it fail).
    assert app.run("build", env={"CUE_EXPERIMENT": "bogus"}).returncode == 0
    other = Project(tmp_path / "elsewhere" / "copy")
    shutil.copytree(app.root, other.root, ignore=shutil.ignore_patterns("generated", ".magcfg-cache"))
    assert other.run("build").returncode == 0
    assert other.snapshot_tree() == app.snapshot_tree()


# --------------------------------------------------------------------------- pieces


def test_written_literals_names_each_literal_with_its_fields() -> None:
    text = ('package x\n// a: "commented"\nmagds: {\n\tpassword: "p\\u0041" // "c"\n'
            '\tport: password & 1\n}\nl: [1, {k: #"raw"#}]\n"q x": b: 2.5\n'
            'm: """\n\tmulti\n\t"""\n')
    found = list(written_literals(text))
    assert found == [(("magds", "password"), "p\\u0041"), (("magds", "password"), "pA"),
                     (("magds", "port"), "1"), (("l",), "1"), (("l", "k"), "raw"),
                     (("q x", "b"), "2.5"), (("m",), "\n\tmulti\n\t")]


def test_locate_cue() -> None:
    text = ('// magds: not here\nmagds: {\n\t"odd-key": 1\n\tpool: {\n\t\tmin: 4\n'
            '\t\tmax: min * 5 // max: not this\n\t}\n}\nother: a: b: 3\n')
    assert locate_cue(text, ("magds",)) == 2
    assert locate_cue(text, ("magds", "odd-key")) == 3
    assert locate_cue(text, ("magds", "pool", "max")) == 6
    assert locate_cue(text, ("other", "a", "b")) == 9
    assert locate_cue(text, ("magds", "missing")) == 2
    assert locate_cue(text, ("absent",)) is None


def test_locate_cue_finds_a_quoted_label_as_written() -> None:
    """A quoted label is written in UTF-8 (`"my café"`), as cue reads it: it was
    searched for as JSON spells it, `"my caf\\u00e9"`, and found nowhere."""
    text = 'a: 1\n"my café": {\n  x: 2\n}\n"naïve": 3\n"caf\\u00e9": 4\n'
    assert locate_cue(text, ("my café", "x")) == 3
    assert locate_cue(text, ("naïve",)) == 5
    assert locate_cue(text, ("café",)) == 6


def test_parse_errors_of_real_cue_output(tmp_path: Path) -> None:
    import subprocess

    (tmp_path / "s.cue").write_text('#C: {"a-b": [...int], c: 1 | 2}\n')
    (tmp_path / "d.json").write_text('{"a-b": [1, "x"], "c": 3}\n')
    done = subprocess.run([REAL_CUE, "vet", "-d", "#C", "s.cue", "d.json"], cwd=tmp_path,
                          capture_output=True, text=True, check=False)
    errors = parse_errors(done.stderr)
    paths = {e.path for e in errors}
    assert ("a-b", "1") in paths and ("c",) in paths
    merged = merge_disjunctions(errors)
    assert [e.path for e in merged].count(("c",)) == 1
    assert all(e.positions for e in merged)
    assert split_path('a."b.c".0') == ("a", "b.c", "0")


# --------------------------------------------------------------------------- bundled rules

# (file to edit, text, replacement, file and line text the error must point at, message)
BUNDLED_RULES = [
    ("layers/environments/production/logging.yaml", 'level: "warn"', 'level: "debug"',
     "layers/environments/production/logging.yaml", 'level: "debug"',
     "production must not log at debug level"),
    ("layers/base/components.yaml", "    - magauth\n", "",
     "layers/base/boot.yaml", "- magauth", "not in components.enabled"),
    ("layers/base/boot.yaml", "total_timeout_seconds: 300", "total_timeout_seconds: 50",
     "layers/base/boot.yaml", "total_timeout_seconds: 50",
     "must allow boot.order to start one by one (2 x 30 s)"),
    ("layers/base/health.yaml", "retries: 2", "retries: 7",
     "layers/base/health.yaml", "interval_seconds: 30",
     "at least timeout_seconds x (retries + 1) = 40"),
    ("layers/base/recovery.yaml", "initial_seconds: 1", "initial_seconds: 20",
     "layers/base/recovery.yaml", "initial_seconds: 20",
     "initial_seconds must not exceed max_seconds (10)"),
    ("layers/environments/staging/magds.yaml", "max_size: 20", "max_size: 1",
     "layers/environments/staging/magds.yaml", "max_size: 1",
     "max_size must not be below min_size (2)"),
    ("layers/base/magauth.yaml", "refresh_token_ttl_seconds: 604800",
     "refresh_token_ttl_seconds: 3600", "layers/base/magauth.yaml",
     "refresh_token_ttl_seconds: 3600", "refresh tokens must outlive access tokens"),
    ("layers/base/events.yaml", "high: 75", "high: 100", "layers/base/events.yaml",
     "high: 100", "high must be below critical"),
    ("layers/environments/staging/maggate.yaml", '"https://app.staging', '"http://app.staging',
     "layers/environments/staging/maggate.yaml", '"http://app.staging',
     "CORS origins must be https:// outside dev"),
    ("layers/environments/production/magds.yaml", 'sslmode: "verify-full"', 'sslmode: "require"',
     "layers/environments/production/magds.yaml", 'sslmode: "require"',
     "production must verify the MagDS server certificate"),
    ("layers/environments/production/magbackup.yaml", "retention_days: 30", "retention_days: 14",
     "layers/environments/production/magbackup.yaml", "retention_days: 14",
     "between 30 and 3650 days in production"),
    ("layers/base/magbackup.yaml", "level: 6", "level: 15", "layers/base/magbackup.yaml",
     "level: 15", None),  # valid for zstd (1-22)
    ("layers/base/magbackup.yaml", 'algorithm: "zstd"', 'algorithm: "gzip"',
     "layers/base/magbackup.yaml", "level: 6", None),  # valid for gzip (1-9)
    ("layers/base/magbackup.yaml", 'algorithm: "zstd"\n    level: 6',
     'algorithm: "gzip"\n    level: 12', "layers/base/magbackup.yaml", "level: 12",
     "compression level 12 is not valid for gzip"),
    ("layers/environments/dev/magbackup.yaml", "retention_days: 2", "retention_days: 8",
     "layers/environments/dev/magbackup.yaml", "retention_days: 8",
     "between 1 and 7 days in dev"),
]


@pytest.mark.parametrize("case", BUNDLED_RULES, ids=lambda c: f"{c[0].split('/')[-1]}:{c[2][:20]}")
def test_bundled_cue_rules(bundled: Project, case: tuple[str, str, str, str, str, str | None]
                           ) -> None:
    edit, old, new, where, line_text, message = case
    path = bundled.root / edit
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new))
    if message is None:  # a valid edit: lz4 accepts level 6
        _build(bundled)
        return
    with pytest.raises(BuildError) as caught:
        _build(bundled)
    lines = (bundled.root / where).read_text().splitlines()
    line = next(i for i, text in enumerate(lines, 1) if line_text in text)
    got = [(d.file, d.line) for d in caught.value.diagnostics if message in d.message]
    assert got and got[0] == (where, line), caught.value.format()


def test_rules_see_the_environment_name(app: Project) -> None:
    """``#environment`` is injected into the definition: a rule on the environment's name
    needs no key of the config to carry it."""
    app.write("schemas/app.cue", SCHEMA.replace(
        "\tlogging?: level:",
        '\t#environment: "dev" | "prod"\n'
        '\tif #environment == "prod" {\n'
        '\t\tlogging: level: "warn" | "error" | error("prod logs warn or above")\n'
        "\t}\n"
        "\tlogging?: level:"))
    _build(app)
    app.write("layers/environments/prod/logging.yaml", "logging:\n  level: info\n")
    before = tree_state(app.root)
    done = app.run("build")
    assert failed_cleanly(done, 1) == (
        "layers/environments/prod/logging.yaml:2: error: prod logs warn or above "
        "(CUE: schemas/app.cue:20) [logging.level]\n")
    assert tree_state(app.root) == before


def test_base_layer_errors_name_the_environments_they_fail_in(app: Project) -> None:
    app.write("layers/base/magds.yaml",
              "magds:\n  host: db\n  port: 70000\n  pool:\n    min: 1\n    max: 5\n")
    done = app.run("build")
    err = failed_cleanly(done, 1)
    assert "layers/base/magds.yaml:3: error: " in err
    assert err.splitlines()[0].endswith("(CUE: schemas/app.cue:8) (environments dev, prod) "
                                        "[magds.port]"), err
    app.write("layers/base/magds.yaml",
              "magds:\n  host: localhost\n  port: 5433\n  pool:\n    min: 1\n    max: 5\n")
    app.write("layers/environments/dev/magds.yaml", "magds:\n  port: 5434\n")
    done = app.run("build")
    assert failed_cleanly(done, 1) == (
        "layers/base/magds.yaml:2: error: prod must not use localhost (CUE: schemas/app.cue:16) "
        "(environment prod) [magds.host]\n")


@pytest.mark.parametrize(("content", "expected"), [
    # int() of 4,300+ digits raised ValueError while decoding cue's output
    ("magds: port: 1" + "0" * 4400 + "\n",
     "layers/environments/dev/deep.cue:1: error: '10000000000000000000'... (4401 characters) "
     "is outside the 64-bit integer range (-9223372036854775808 to 9223372036854775807): "
     "write a smaller number [magds.port]\n"),
    # jsonschema-rs raised ValueError: Recursion limit reached
    ("magds: pool: " + "{a: " * 300 + "1" + "}" * 300 + "\n",
     "layers/environments/dev/deep.cue:1: error: nesting deeper than 64 levels "
     f"[magds.pool{'.a' * 62}]\n"),
    # the JSON decoder raised RecursionError
    ("magds: pool: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n",
     "layers/environments/dev/deep.cue: error: nesting deeper than 64 levels\n"),
])
def test_cue_layer_is_held_to_the_yaml_layer_rules(mini: Project, content: str,
                                                   expected: str) -> None:
    assert mini.run("build").returncode == 0
    before = tree_state(mini.root / "generated")
    mini.write("layers/environments/dev/deep.cue", content)
    assert failed_cleanly(mini.run("build", timeout=60)) == expected
    assert tree_state(mini.root / "generated") == before


def test_what_cue_prints_is_read_up_to_the_file_limit(tmp_path: Path) -> None:
    """cue's output is read whole, like a file: it had no limit (a small .cue file can
    print gigabytes into memory). Past the limit cue is stopped, and the build fails."""
    chatty = CueBinary(str(_script(tmp_path / "bin", "cue",
                                   'head -c "$2" /dev/zero | tr "\\0" x\n'
                                   'head -c 10 /dev/zero >&2\n')), "v0.14.1")
    done = chatty.run(["export", "1000"], tmp_path, limit=1000)
    assert (done.returncode, done.stdout, done.stderr) == (0, "x" * 1000, "\0" * 10)
    with pytest.raises(BuildError) as refused:
        chatty.run(["export", "50000000"], tmp_path, limit=1000)
    assert str(refused.value) == ": error: cue export printed more than 1000 bytes"


def _logged_runs(app: Project, tmp_path: Path) -> tuple[str, list[list[str]]]:
    """Build ``app`` through a shim that logs cue's arguments: the build's stderr, and
    the instances (``.:lN``) of each run that evaluated layers."""
    directory = tmp_path / "shim"
    log = directory / "calls.log"
    shim = _script(directory, "cue", f'echo "$@" >> "{log}"\nexec "{REAL_CUE}" "$@"\n')
    os.environ["MAGCFG_CUE"] = str(shim)
    try:
        result = app.run("build")
    finally:
        del os.environ["MAGCFG_CUE"]
    runs = [[arg for arg in line.split() if arg.startswith(".:l")]
            for line in log.read_text().splitlines()]
    return failed_cleanly(result), [run for run in runs if run]


def test_failing_cue_layers_are_each_evaluated_once(app: Project, tmp_path: Path) -> None:
    """One cue run evaluates every layer and reports the errors of each that fails:
    ``cue export`` stopped at the first failure, so the others took a run each and
    were evaluated twice (8 files here were evaluated 35 times with the rest exported
    together after each failure, then 14 with each exported alone)."""
    for i in range(6):
        app.write(f"layers/base/bad{i}.cue", f"package base\n\nbad{i}: int\n")
    for i in range(2):
        app.write(f"layers/base/good{i}.cue", f"good{i}: {i}\n")
    stderr, runs = _logged_runs(app, tmp_path)
    assert stderr.splitlines() == [
        f"layers/base/bad{i}.cue:3: error: cue export: incomplete value int [bad{i}]"
        for i in range(6)]
    assert len(runs) == 1 and len(runs[0]) == 8, runs


def test_a_layer_that_stops_the_run_leaves_the_others_to_one_more(app: Project,
                                                                  tmp_path: Path) -> None:
    """A reference to nothing stops cue before it evaluates any instance, and is printed
    alone: the other layers run again together, and their errors are reported too."""
    app.write("layers/base/a.cue", "a: 1\n")
    app.write("layers/base/b.cue", "b: nowhere\n")
    app.write("layers/base/c.cue", "c: 1 & 2\n")
    app.write("layers/base/d.cue", "d: \"x\" | *\"y\"\n")
    stderr, runs = _logged_runs(app, tmp_path)
    assert stderr.splitlines() == [
        'layers/base/b.cue:1: error: cue export: reference "nowhere" not found [b]',
        "layers/base/c.cue:1: error: cue export: conflicting values 2 and 1 [c]"]
    assert len(runs) == 2 and len(runs[1]) == 3, runs


def test_layers_that_each_stop_the_run_cost_a_run_each_at_most(app: Project,
                                                                tmp_path: Path) -> None:
    """cue prints one import failure before it evaluates anything: the other layers ran
    again together after each, n runs of all the rest (quadratic: 200 such layers took
    41 s, 4.7 s alone each) and as deep a recursion (1,000 of them a traceback). Past
    one more run together, each layer runs alone."""
    n = 12
    for i in range(n):
        app.write(f"layers/base/i{i:02}.cue", f'import "nope.example/x{i}"\n\ni{i}: x{i}.b\n')
    app.write("layers/base/zgood.cue", "zgood: 1\n")
    stderr, runs = _logged_runs(app, tmp_path)
    assert stderr.splitlines() == [
        f"layers/base/i{i:02}.cue:1: error: cue export: import failed: imports are "
        "unavailable because there is no cue.mod/module.cue file" for i in range(n)]
    assert [len(run) for run in runs] == [n + 1, n, *([1] * (n - 1))], runs


@pytest.mark.parametrize("forged", [
    "// :l1\\nx: fake",  # the label cue prints before the next instance's errors
    "x: fake:\\n    ./l1.cue:1:1",  # a position in the next instance's file
    "see l1.cue",  # the next instance's file, named
])
def test_a_crafted_error_text_stays_on_its_own_file(app: Project, tmp_path: Path,
                                                    forged: str) -> None:
    """An ``error("...")`` text is printed as written, line ends and all: one that wrote
    the label or the file name cue gives another layer's instance put a line of it, an
    error without a position, on that layer's file (a pull request's error on a file it
    does not touch)."""
    app.write("layers/base/a.cue", f'a: error("boom\\n{forged}\\ny: more")\n')
    app.write("layers/base/b.cue", "b: 1\n")
    app.write("layers/base/c.cue", "c: 1 & 2\n")
    stderr, _ = _logged_runs(app, tmp_path)
    files = {line.split(":")[0] for line in stderr.splitlines() if ": error: " in line}
    assert files == {"layers/base/a.cue", "layers/base/c.cue"}, stderr
    assert "b.cue" not in stderr, stderr


def test_a_crafted_schema_error_text_stays_in_its_environment(app: Project) -> None:
    """A line of an ``error("...")`` text (which may hold a config's value) that wrote
    ``prod.magds.host: ...`` was taken for an error of prod: dev's error was put on
    prod's key and file, and cached as prod's verdict."""
    rule = ('\tif #environment == "dev" {\n\t\tmagds: port: <1000 | error("dev port too '
            'high\\nprod.magds.host: fake\\n    ./app.cue:1:1\\nlogging.level: more")\n\t}\n')
    app.write("schemas/app.cue", SCHEMA.replace("\tlogging?: level", rule + "\tlogging?: level")
              .replace("#Config: {", "#Config: {\n\t#environment: string"))
    stderr = failed_cleanly(app.run("build"))
    assert stderr.splitlines() == [
        "layers/base/magds.yaml:3: error: dev port too high prod.magds.host: fake ./app.cue:1:1 "
        "logging.level: more (CUE: schemas/app.cue:20) (environment dev) [magds.port]"]


def test_the_layer_benchmark_names_the_command_it_times(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """benchmarks/cue_bench.py labelled its layer timings ``cue export``, while what it
    times (``layers.export``, the build's step) runs ``cue eval --concrete --ignore``."""
    import importlib.util

    from magcfg.cue.binary import CueBinary

    spec = importlib.util.spec_from_file_location("cue_bench", REPO / "benchmarks/cue_bench.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    ran: list[str] = []
    real = CueBinary.run

    def run(self: CueBinary, args: list[str], *rest: Any) -> Any:
        ran.append(" ".join(["cue", *(a for a in args if not a.startswith(".:"))]))
        return real(self, args, *rest)

    monkeypatch.setattr(CueBinary, "run", run)
    bench.bench_layers(REPO, 1)
    timed = capsys.readouterr().out.splitlines()[-2:]
    assert set(ran) == {"cue eval --concrete --ignore --out json"}
    assert [line.split(",")[0] for line in timed] == ["cue eval --concrete --ignore"] * 2


def test_a_cue_module_above_the_temporary_directory_is_refused(app: Project,
                                                              tmp_path: Path) -> None:
    """cue takes the nearest ``cue.mod`` above the directory it runs in for its module:
    with one above ``TMPDIR`` (a ``/tmp/cue.mod`` left on a shared runner), a layer's
    ``import "example.com/x/planted"`` read files no commit holds, and built."""
    temp = tmp_path / "tmp"
    (temp / "cue.mod").mkdir(parents=True)
    (temp / "cue.mod/module.cue").write_text(
        'module: "example.com/x@v0"\nlanguage: version: "v0.14.0"\n')
    (temp / "planted").mkdir()
    (temp / "planted/p.cue").write_text('package planted\nport: 7000\n')
    app.write("layers/environments/prod/port.cue",
              'import "example.com/x/planted"\n\nmagds: port: planted.port\n')
    stderr = failed_cleanly(app.run("build", env={"TMPDIR": str(temp)}))
    assert stderr == (f"error: {temp}/cue.mod is above the temporary directory cue runs in "
                      f"({temp}), and cue would read imports from it: remove it, or set TMPDIR "
                      "to a directory outside any CUE module\n")
    assert app.snapshot_tree() == {}


def test_a_cue_module_above_the_real_temporary_directory_is_refused(
        app: Project, tmp_path: Path) -> None:
    """A ``TMPDIR`` that is a symlink into a CUE module: cue, in the real directory,
    took the module above it for its own and a layer's import read its planted files,
    where the parents of the path as spelt held no ``cue.mod``."""
    real = tmp_path / "real"
    (real / "cue.mod").mkdir(parents=True)
    (real / "cue.mod/module.cue").write_text(
        'module: "example.com/x@v0"\nlanguage: version: "v0.14.0"\n')
    (real / "planted").mkdir()
    (real / "planted/p.cue").write_text('package planted\nport: 7000\n')
    (real / "inner").mkdir()
    temp = tmp_path / "tmp"
    temp.symlink_to(real / "inner")
    app.write("layers/environments/prod/port.cue",
              'import "example.com/x/planted"\n\nmagds: port: planted.port\n')
    stderr = failed_cleanly(app.run("build", env={"TMPDIR": str(temp)}))
    assert stderr == (f"error: {real}/cue.mod is above the temporary directory cue runs in "
                      f"({temp}, really {real}/inner), and cue would read imports from it: "
                      "remove it, or set TMPDIR to a directory outside any CUE module\n")
    assert app.snapshot_tree() == {}


def test_cue_runs_without_a_home(app: Project) -> None:
    """cue asks for a cache directory, under ``$XDG_CACHE_HOME`` or ``$HOME``, before it
    evaluates anything: in a CI container without ``HOME`` every CUE file failed with
    "cannot determine system cache directory". A ``CUE_CACHE_DIR`` of the caller's is
    not used (builds must not depend on the caller's shell)."""
    app.write("layers/environments/prod/limits.cue", "magds: pool: max: 7\n")
    env = {k: v for k, v in os.environ.items() if k not in ("HOME", "XDG_CACHE_HOME")}
    env["CUE_CACHE_DIR"] = "/nonexistent/cue-cache"
    done = subprocess.run([str(MAGCFG), "build"], cwd=app.root, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    config = json.loads((app.root / "generated/prod/config.json").read_text())
    assert config["magds"]["pool"]["max"] == 7


def test_locate_cue_reads_a_long_run_of_spaces_in_linear_time() -> None:
    """An empty label is only ever quoted: tried bare, it would match after each space
    of a run and scan the rest of the run (minutes for 200,000 spaces)."""
    script = ("from magcfg.syntax.locate import locate_cue\n"
              "text = ' ' * 200_000 + 'x\\n\"\": 1\\n'\n"
              "print(locate_cue(text, ('',)), locate_cue(text, ('x',)))\n")
    assert finishes_in_a_child(script) == "2 None\n"
