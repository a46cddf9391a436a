"""Command-line conventions: --version, shell completion, versioned JSON reports of
build/verify/explain, a quiet --quiet and --strict."""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from magcfg.version import __version__

from .conftest import (
    MAGCFG,
    MINI_BASE,
    MINI_PROJECT,
    MINI_SCHEMA,
    Project,
    failed_cleanly,
    tree_state,
)


def test_version(mini: Project) -> None:
    for args in (("--version",), ("-V",), ("version",)):
        done = mini.run(*args)
        assert (done.returncode, done.stdout) == (0, f"magcfg {__version__}\n")


def test_bash_completion_completes_commands_and_options(mini: Project) -> None:
    """The script typer prints, sourced into a real bash and asked as bash asks. Typer
    picks the shell from the process that runs magcfg, so bash runs it, as a user's does
    (``; exit``: bash would otherwise replace itself with magcfg)."""
    script = subprocess.run(["bash", "--norc", "--noprofile", "-c",
                             f"'{MAGCFG}' --show-completion; exit $?"], cwd=mini.root,
                            capture_output=True, text=True, timeout=60)
    assert script.returncode == 0, script.stderr
    assert "complete -o default -F _magcfg_completion magcfg" in script.stdout
    probe = (f"{script.stdout}\nPATH={MAGCFG.parent}:$PATH\n"
             "COMP_WORDS=(magcfg bu); COMP_CWORD=1; _magcfg_completion magcfg\n"
             'printf "%s\\n" "${COMPREPLY[@]}"\n'
             "COMP_WORDS=(magcfg build --st); COMP_CWORD=2; _magcfg_completion magcfg\n"
             'printf "%s\\n" "${COMPREPLY[@]}"\n')
    done = subprocess.run(["bash", "--norc", "--noprofile", "-c", probe], cwd=mini.root,
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["build", "--strict"], done.stderr


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_completion_scripts(mini: Project, shell: str) -> None:
    # Neither shell is installed here to run magcfg from: typer's switch that takes the
    # shell from the command line instead.
    script = mini.run("--show-completion", shell,
                      env={"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"})
    assert script.returncode == 0, script.stderr
    assert {"zsh": "compdef _magcfg_completion magcfg",
            "fish": "complete --command magcfg"}[shell] in script.stdout
    assert f"_MAGCFG_COMPLETE=complete_{shell}" in script.stdout
    done = mini.run(env={"_MAGCFG_COMPLETE": f"complete_{shell}",
                         "_TYPER_COMPLETE_ARGS": "magcfg schema ",
                         "_TYPER_COMPLETE_FISH_ACTION": "get-args"})
    assert "infer" in done.stdout


def test_build_json_report(mini: Project) -> None:
    mini.write("layers/environments/prod/logging.yaml", "logging:\n  level: info\n")
    done = mini.run("build", "--format", "json")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    report = json.loads(done.stdout)
    assert report == {
        "format": 1, "command": "build", "check": False, "environments": ["dev", "prod"],
        "ok": True, "stale": [], "written": report["written"],
        "diagnostics": [{"file": "layers/environments/prod/logging.yaml", "line": 2,
                         "key": "logging.level", "severity": "warning", "code": "redundant",
                         "message": "override repeats the value set below: remove it "
                                    "(one source of truth per value)"}]}
    assert "generated/dev/config.json" in report["written"]
    mini.write("layers/base/magds.yaml", "magds:\n  port: 0\n")
    before = tree_state(mini.root / "generated")
    failed = mini.run("build", "--format", "json", "--check")
    failed_cleanly(failed, 1)
    report = json.loads(failed.stdout)
    assert (report["ok"], report["check"]) == (False, True)
    assert {"file": "layers/base/magds.yaml", "line": 2, "key": "magds.port",
            "severity": "error", "code": "schema-minimum",
            "message": "0 is less than the minimum of 1 (schema: minimum) "
                       "(environments dev, prod)"} \
        in report["diagnostics"]
    assert tree_state(mini.root / "generated") == before


def test_quiet_prints_nothing_and_strict_fails_on_warnings(mini: Project) -> None:
    mini.write("layers/environments/prod/logging.yaml", "logging:\n  level: info\n")
    quiet = mini.run("build", "--quiet")
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")
    mini.write("layers/environments/dev/magds.yaml", "magds:\n  host: db\n")
    before = tree_state(mini.root / "generated")
    strict = mini.run("build", "--strict")
    assert failed_cleanly(strict, 1) == (
        "layers/environments/dev/magds.yaml:2: error: override repeats the value set "
        "below: remove it (one source of truth per value) (--strict: warnings are errors) "
        "[magds.host]\n"
        "layers/environments/prod/logging.yaml:2: error: override repeats the value set "
        "below: remove it (one source of truth per value) (--strict: warnings are errors) "
        "[logging.level]\n")
    assert tree_state(mini.root / "generated") == before


def test_explain_json_report(mini: Project) -> None:
    mini.write("layers/environments/prod/magds.yaml",
               "magds:\n  password: vault://secret/db#prod_pw\n")
    done = mini.run("explain", "magds.password", "--env", "prod", "-f", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "format": 1, "command": "explain", "environment": "prod", "key": "magds.password",
        "present": True, "value": "vault://secret/db#prod_pw", "reload": "restart",
        "secret": True, "ok": True,
        "provenance": [{"file": "layers/environments/prod/magds.yaml", "line": 2,
                        "layer": "environment", "unset": False,
                        "value": "vault://secret/db#prod_pw",
                        "in_effect": True}]}


def test_verify_json_report(mini: Project) -> None:
    assert mini.run("build").returncode == 0
    assert mini.run("keys", "generate", "--out", "keys").returncode == 0
    assert mini.run("sign", "--key", "keys/magcfg.key").returncode == 0
    done = mini.run("verify", "--public-key", "keys/magcfg.pub", "--format", "json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["format"], report["command"], report["ok"]) == (1, "verify", True)
    assert [(a["environment"], a["ok"], a["attestation"]) for a in report["artifacts"]] == [
        ("dev", True, True), ("prod", True, True)]
    (mini.root / "generated/prod/config.json").write_text("{}\n")
    failed = mini.run("verify", "--public-key", "keys/magcfg.pub", "--format", "json")
    failed_cleanly(failed, 1)
    report = json.loads(failed.stdout)
    assert [(a["environment"], a["ok"]) for a in report["artifacts"]] == [
        ("dev", True), ("prod", False)]
    assert [d["file"] for d in report["diagnostics"]] == ["generated/prod/config.json"]


def test_unknown_report_format_is_a_usage_error(mini: Project) -> None:
    assert failed_cleanly(mini.run("build", "--format", "yaml"), 2) == (
        "error: --format must be text or json, not 'yaml'\n")


def test_help_text_has_no_orphan_words(mini: Project) -> None:
    """Hard-wrapped docstrings are re-wrapped whole: no help line holds a lone word
    left over from the source's line ends."""
    for command in ("promote", "verify", "diff", "watch", "init"):
        done = mini.run(command, "--help", env={"COLUMNS": "80", "TERMINAL_WIDTH": "80"})
        assert done.returncode == 0, done.stderr
        prose = [line.strip() for line in done.stdout.splitlines()
                 if line.strip() and not line.lstrip().startswith(("│", "╭", "╰", "Usage"))]
        assert [line for line in prose if len(line.split()) == 1] == [], (command, prose)


def _json_report(done: subprocess.CompletedProcess[str], command: str) -> dict[str, object]:
    """A failed ``--format json`` run: exit 1, one report on stdout, nothing on stderr."""
    failed_cleanly(done, 1)
    assert done.stderr == "", (command, done.stderr)
    report = json.loads(done.stdout)
    assert (report["format"], report["command"], report["ok"]) == (1, command, False), report
    return report


@pytest.mark.parametrize(("command", "args"), [
    ("build", ("build",)),
    ("verify", ("verify", "--public-key", "missing.pub")),
    ("explain", ("explain", "magds.host", "--env", "dev")),
    ("check-env", ("check-env", "--env", "dev")),
    ("secrets verify", ("secrets", "verify", "--env", "dev")),
    ("diff", ("diff", "dev", "prod")),
])
def test_a_broken_project_file_is_a_json_report(mini: Project, command: str,
                                               args: tuple[str, ...]) -> None:
    """The project file is read before anything else: its error is still the report."""
    mini.write("magcfg.yaml", (mini.root / "magcfg.yaml").read_text().replace(
        "version: 1", "version: 2"))
    report = _json_report(mini.run(*args, "--format", "json"), command)
    assert report["diagnostics"] == [{
        "file": "magcfg.yaml", "line": 1, "key": "version", "severity": "error",
        "code": "project",
        "message": "this magcfg reads project files of version 1 (the integer 1), not 2"}]


def test_verify_reports_a_bad_key_file_as_json(mini: Project) -> None:
    assert mini.run("build").returncode == 0
    mini.write("garbage.pub", "not a key\n")
    for key in ("garbage.pub", "missing.pub"):
        report = _json_report(mini.run("verify", "-k", key, "-f", "json"), "verify")
        assert report["artifacts"] == []
        assert [d["file"] for d in report["diagnostics"]] == [key]  # type: ignore[union-attr]


def test_explain_reports_a_layer_error_as_build_does(mini: Project) -> None:
    mini.write("layers/environments/dev/magds.yaml", "magds:\n  host: a\n  host: b\n")
    explained = _json_report(mini.run("explain", "magds.host", "-e", "dev", "-f", "json"),
                             "explain")
    built = _json_report(mini.run("build", "-e", "dev", "-f", "json"), "build")
    assert explained["diagnostics"] == built["diagnostics"] == [{
        "file": "layers/environments/dev/magds.yaml", "line": 3, "key": "magds.host",
        "severity": "error", "code": "duplicate-key", "message": "duplicate key 'host'"}]


def test_usage_errors_stay_plain_messages_with_json(mini: Project) -> None:
    for args in (("verify", "-e", "nope"), ("explain", "magds.hots", "-e", "dev"),
                 ("check-env", "-e", "nope"), ("build", "--since", "HEAD")):
        done = mini.run(*args, "-f", "json")
        assert failed_cleanly(done, 2).startswith("error: "), args
        assert done.stdout == ""


def test_every_json_report_names_its_format_and_command(mini: Project) -> None:
    """docs/cli.md: every report has "format", "command" and "ok" (true exactly when the
    exit code is 0); SARIF and lint's own report are documented apart."""
    assert mini.run("build").returncode == 0
    runs = {"check-env": (("check-env", "-e", "dev"), 0),
            "secrets verify": (("secrets", "verify", "-e", "dev"), 0),
            "diff": (("diff", "dev", "prod"), 1),
            "explain": (("explain", "magds.host", "-e", "dev"), 0)}
    for command, (args, code) in runs.items():
        done = mini.run(*args, "--format", "json")
        assert (done.returncode, done.stderr) == (code, ""), (command, done.stderr)
        report = json.loads(done.stdout)
        assert (report["format"], report["command"], report["ok"]) == (1, command, code == 0)
    same = json.loads(mini.run("diff", "dev", "dev", "-f", "json").stdout)
    assert (same["identical"], same["ok"]) == (True, True)


# ------------------------------------------------------------------ file names in messages
# docs/cli.md, "File names in messages": every command names a file of the project from
# the top of its repository, where CI and the hooks run, in its text and in its JSON and
# SARIF reports alike: joined with the top, each name is the file.

LAYOUTS = {"single": ("", ""), "monorepo, from the top": ("config/", ""),
           "monorepo, from config/": ("config/", "config")}


class Layout:
    """The mini project, built and committed on ``main`` in a real repository: at its
    top, or in ``config/`` of a monorepo run from the top (``--project``) or from
    ``config/``."""

    def __init__(self, tmp_path: Path, layout: str) -> None:
        self.prefix, here = LAYOUTS[layout]
        self.top = tmp_path / "repo"
        self.project = Project(self.top / self.prefix)
        self.project.write("magcfg.yaml", MINI_PROJECT)
        self.project.write("schemas/schema.json", json.dumps(MINI_SCHEMA, indent=2))
        self.project.write(".gitignore", ".magcfg-cache/\n")
        for rel, text in MINI_BASE.items():
            self.project.write(rel, text)
        self.git("init", "-q", "-b", "main")
        self.git("config", "user.email", "dana@example.com")
        self.git("config", "user.name", "Dana")
        self.where = Project(self.top / here)
        self.given = (("--project", f"{self.prefix}magcfg.yaml") if self.prefix and not here
                      else ())
        assert self.run("build", "-q").returncode == 0
        self.commit("init")

    def git(self, *args: str) -> str:
        return subprocess.run(["git", *args], cwd=self.top, check=True, capture_output=True,
                              text=True, timeout=60).stdout

    def commit(self, message: str) -> None:
        self.git("add", "-A")
        self.git("commit", "-qm", message)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``magcfg ARGS`` where the layout runs it; ``--project`` after the command's
        words (the options before it)."""
        words = list(itertools.takewhile(lambda a: not a.startswith("-"), args))
        return self.where.run(*words, *self.given, *args[len(words):])

    def named(self, rel: str) -> str:
        """``rel`` of the project as every command names it; asserting it is a file (or
        directory) at the top."""
        name = self.prefix + rel
        assert os.path.lexists(self.top / name.split("@")[0]), name
        return name


@pytest.fixture(params=list(LAYOUTS))
def layout(request: pytest.FixtureRequest, tmp_path: Path) -> Layout:
    return Layout(tmp_path, request.param)


def _located(layout: Layout, *args: str) -> str:
    """The stderr of a text run that failed on a layer, without a traceback."""
    return failed_cleanly(layout.run(*args))


def _diagnostics(layout: Layout, *args: str) -> list[str]:
    done = layout.run(*args, "-f", "json")
    failed_cleanly(done)
    return [f"{d['file']}:{d['line']}" for d in json.loads(done.stdout)["diagnostics"]]


def test_every_command_names_a_layer_error_from_the_top(layout: Layout) -> None:
    layout.project.write("layers/base/magds.yaml", "magds:\n  host: db\n  host: x\n")
    where = f"{layout.named('layers/base/magds.yaml')}:3"
    for args in (("build",), ("explain", "magds.host", "-e", "dev"), ("diff", "dev", "prod"),
                 ("diff", "-e", "dev", "--against", "main"), ("promote", "dev", "prod", "-n"),
                 ("report", "--html", str(layout.top.parent / "r.html")),
                 ("schema", "infer"), ("secrets", "verify", "-e", "dev")):
        assert _located(layout, *args).startswith(f"{where}: error: "), args
    for args in (("build",), ("explain", "magds.host", "-e", "dev"), ("diff", "dev", "prod"),
                 ("secrets", "verify", "-e", "dev")):
        assert _diagnostics(layout, *args) == [where], args
    # The project file itself, and the schema.
    layout.project.write("schemas/schema.json", "{\n")
    schema = f"{layout.named('schemas/schema.json')}:2: error: invalid JSON"
    for args in (("docs",), ("schema", "layer"), ("build",)):
        assert _located(layout, *args).startswith(schema), args
    project_file = layout.project.root / "magcfg.yaml"
    project_file.write_text(project_file.read_text() + "bogus: 1\n")
    for args in (("build",), ("explain", "magds.host", "-e", "dev"), ("docs",),
                 ("check-env", "-e", "dev"), ("verify",)):
        assert _located(layout, *args).startswith(f"{layout.named('magcfg.yaml')}:"), args


def test_every_command_names_where_a_value_was_set_from_the_top(layout: Layout) -> None:
    dev, base = (f"{layout.named(f'layers/{rel}/magds.yaml')}:2"
                 for rel in ("environments/dev", "base"))
    explained = layout.run("explain", "magds.host", "-e", "dev")
    assert f"=> {dev}  (environment)" in explained.stdout, explained.stdout
    report = json.loads(layout.run("explain", "magds.host", "-e", "dev", "-f", "json").stdout)
    assert [f"{p['file']}:{p['line']}" for p in report["provenance"]] == [base, dev]
    diff = layout.run("diff", "dev", "prod", "--color", "never").stdout
    assert f'- dev   "localhost"  {dev} (environment)' in diff, diff
    assert f'+ prod  "db"  {base} (base)' in diff, diff
    markdown = layout.run("diff", "dev", "prod", "-f", "markdown").stdout
    assert f"| `{dev}` | `{base}` |" in markdown, markdown
    changed = json.loads(layout.run("diff", "dev", "prod", "-f", "json").stdout)["changed"]
    assert [(f"{c['old_source']['file']}:{c['old_source']['line']}",
             f"{c['new_source']['file']}:{c['new_source']['line']}")
            for c in changed if c["key"] == "magds.host"] == [(dev, base)]
    page = layout.top.parent / "r.html"
    assert layout.run("report", "--html", str(page)).returncode == 0
    files = json.loads(re.findall(r'"files":(\[[^]]*\])', page.read_text())[0])
    assert base.removesuffix(":2") in files and all(map(layout.named, (
        f.removeprefix(layout.prefix) for f in files)))

    prod = layout.named("layers/environments/prod") + "/magds.yaml"
    plan = layout.run("promote", "dev", "prod", "-n", "--key", "magds.host").stdout
    assert f"from {dev} (environment)\n      into {prod} (new file); replaces" in plan, plan
    assert f"files:\n  {prod}\n" in plan, plan
    done = layout.run("promote", "dev", "prod", "--key", "magds.host")
    assert done.returncode == 0, done.stderr
    assert f"| `magds.host` | `\"localhost\"` | `{dev}` |" in done.stdout, done.stdout
    assert f"- `{layout.named('generated/prod')}/` (rebuilt)" in done.stdout, done.stdout
    message = layout.git("log", "-1", "--format=%B")
    assert f"from {dev}, into {layout.named('layers/environments/prod/magds.yaml')}" \
        in message, message
    # Against the commit before: the new file, named from the top, at the working tree.
    against = layout.run("diff", "-e", "prod", "--against", "main", "--color", "never").stdout
    assert '+ prod@main   "localhost"' not in against  # the ref is the old side
    assert f"{layout.named('layers/environments/prod/magds.yaml')}:2 (environment)" \
        in against, against


def test_every_command_names_an_artifact_from_the_top(layout: Layout,
                                                      tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    assert layout.where.run("keys", "generate", "--out", str(keys)).returncode == 0
    signed = layout.run("sign", "--key", str(keys / "magcfg.key"), "-e", "dev")
    assert f"wrote {layout.named('generated/dev/manifest.json.sig')}\n" in signed.stderr
    assert f"signed {layout.named('generated/dev')} (version 1)" in signed.stderr
    public = ("-k", str(keys / "magcfg.pub"))
    verified = layout.run("verify", "-e", "dev", *public)
    assert verified.stderr.startswith(f"verified {layout.named('generated/dev')}: version 1")
    config = layout.named("generated/dev/config.json")
    (layout.top / config).write_text("[]\n")
    assert _located(layout, "verify", "-e", "dev", *public).startswith(
        f"{config}: error: sha256 does not match")
    report = json.loads(layout.run("verify", "-e", "dev", *public, "-f", "json").stdout)
    assert [a["directory"] for a in report["artifacts"]] == [layout.named("generated/dev")]
    assert [d["file"] for d in report["diagnostics"]] == [config]
    layout.commit("tampered")  # publish delivers what HEAD holds
    assert _located(layout, "publish", "-e", "dev", "--public-key", public[1]).startswith(
        f"{config}: error: sha256 does not match")
    assert _located(layout, "check-env", "-e", "dev").startswith(
        f"{config}: error: artifact files must be JSON objects")
    assert [d.split(":")[0] for d in _diagnostics(layout, "check-env", "-e", "dev")] == [config]
    # A file the operator names is named as given, from where magcfg runs.
    for command in ("verify", "publish"):
        assert _located(layout, command, "-e", "dev", "--public-key", "nosuch.pub").startswith(
            "nosuch.pub: error: "), command
    assert failed_cleanly(layout.where.run("check-env", "-e", "dev", "-a", "nosuch"),
                          1).startswith("nosuch/manifest.json: error: ")
    # build's JSON report names what it writes, and what is stale, as its text does.
    (layout.project.root / "layers/base/logging.yaml").write_text("logging:\n  level: warn\n")
    configmap = layout.named("generated/dev/configmap.yaml")
    stale = json.loads(layout.run("build", "--check", "-f", "json").stdout)["stale"]
    assert {config, configmap} <= set(stale), stale
    written = json.loads(layout.run("build", "-e", "dev", "-f", "json").stdout)["written"]
    assert {config, configmap} <= set(written), written


def test_a_registry_is_named_by_its_reference_in_every_layout(layout: Layout,
                                                              tmp_path: Path) -> None:
    """An oci:// reference is no file of the project: a monorepo's publish named the
    registry it could not reach ``config/oci://...``."""
    keys = tmp_path / "keys"
    assert layout.where.run("keys", "generate", "--out", str(keys)).returncode == 0
    layout.project.write("keys.pub", (keys / "magcfg.pub").read_text())
    with (layout.project.root / "magcfg.yaml").open("a") as project:
        project.write("signing:\n  public_keys: [keys.pub]\n")
    assert layout.run("build", "-q").returncode == 0
    assert layout.run("sign", "--key", str(keys / "magcfg.key"), "-e", "dev").returncode == 0
    reference = "oci://127.0.0.1:1/acme/cfg:dev"
    assert _located(layout, "publish", reference, "-e", "dev", "--key",
                    str(keys / "magcfg.key"), "--insecure", "--revision",
                    "main@sha1:" + "0" * 40).startswith(
        f"{reference}: error: registry 127.0.0.1:1 unreachable")


def test_lint_and_build_name_a_secret_alike_in_text_json_and_sarif(layout: Layout) -> None:
    layer = layout.project.write("layers/base/magds.yaml",
                                 "magds:\n  host: db\n  password: hunter2-CANARYnames\n")
    where = f"{layout.named('layers/base/magds.yaml')}:3"
    built = _located(layout, "build")
    linted = layout.run("lint")
    assert built.startswith(f"{where}: error: ") and linted.stdout.startswith(f"{where}:"), \
        (built, linted.stdout)
    assert _diagnostics(layout, "build") == [where]
    found = json.loads(layout.run("lint", "-f", "json").stdout)["findings"]
    assert {f"{f['file']}:{f['line']}" for f in found} == {where}
    sarif = json.loads(layout.run("lint", "-f", "sarif").stdout)
    assert {(loc["physicalLocation"]["artifactLocation"]["uri"],
             loc["physicalLocation"]["region"]["startLine"])
            for result in sarif["runs"][0]["results"] for loc in result["locations"]} == {
        (where.split(":")[0], 3)}
    assert "CANARYnames" not in built + linted.stdout + linted.stderr
    assert layer.is_file()
