"""The ``magcfg lint`` command as users run it: formats, exit codes, suppression, baseline,
determinism, and no secret in any output."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import unquote_to_bytes

import jsonschema
import pytest

from . import fixtures as fx
from .conftest import MakeRepo, git, run_cli

SARIF_SCHEMA = json.loads((Path(__file__).parent / "data" / "sarif-2.1.0-subset.schema.json")
                          .read_text(encoding="utf-8"))


def all_outputs(root: Path, *extra: str) -> dict[str, str]:
    out = {}
    for fmt in ("text", "json", "sarif"):
        proc = run_cli(root, "lint", "--format", fmt, *extra)
        assert proc.returncode == 1, proc.stderr
        assert "Traceback" not in proc.stderr
        out[fmt] = proc.stdout + proc.stderr
    return out


def test_canaries_never_reach_any_output(make_repo: MakeRepo) -> None:
    repo = make_repo(fx.HARDCODED)
    outputs = all_outputs(repo.root)
    baseline = run_cli(repo.root, "lint", "--write-baseline")
    assert baseline.returncode == 0
    outputs["baseline"] = (repo.root / ".magcfg-lint-baseline.json").read_text()
    for name, text in outputs.items():
        assert "CANARY" not in text, f"a canary leaked into the {name} output"
        for canary in fx.CANARIES:
            assert canary not in text
    assert "<redacted>" in outputs["text"]


def test_exit_codes_and_text_format(make_repo: MakeRepo) -> None:
    clean = make_repo({"README.md": "nothing to see\n", "app.py": "password = os.environ['P']\n"})
    proc = run_cli(clean.root, "lint")
    assert (proc.returncode, proc.stdout) == (0, "")
    assert "0 finding(s)" in proc.stderr
    dirty = make_repo({"compose.yaml": "x:\n  y: ${A:-1}\n"})
    proc = run_cli(dirty.root, "lint")
    assert proc.returncode == 1
    assert proc.stdout.startswith("compose.yaml:2:6: MAG001 error: fallback default `${A:-...}`")
    assert "    fix: use `${A:?A is required}`" in proc.stdout


@pytest.mark.parametrize("args", [["--format", "xml"], ["no/such/path"],
                                  ["--baseline", "missing.json"], ["--bogus-option"]])
def test_usage_errors_exit_2_without_traceback(make_repo: MakeRepo, args: list[str]) -> None:
    repo = make_repo({"README.md": "x\n"})
    proc = run_cli(repo.root, "lint", *args)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.strip()


def test_bad_project_lint_section_names_the_file_and_key(make_repo: MakeRepo) -> None:
    repo = make_repo({"magcfg.yaml": "lint:\n  deploy_paths: k8s\n"})
    proc = run_cli(repo.root, "lint")
    assert proc.returncode == 1
    assert "magcfg.yaml" in proc.stderr and "lint.deploy_paths" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_project_file_is_a_json_report_with_json(make_repo: MakeRepo) -> None:
    # As every command's --format json (docs/cli.md): the report on stdout, nothing else.
    repo = make_repo({"magcfg.yaml": "lint:\n  deploy_paths: k8s\n"})
    proc = run_cli(repo.root, "lint", "-f", "json")
    assert (proc.returncode, proc.stderr) == (1, "")
    doc = json.loads(proc.stdout)
    assert (doc["format"], doc["command"], doc["ok"]) == (1, "lint", False)
    (diagnostic,) = doc["diagnostics"]
    assert (diagnostic["file"], diagnostic["key"]) == ("magcfg.yaml", "lint.deploy_paths")


def test_json_format_shape(make_repo: MakeRepo) -> None:
    repo = make_repo(fx.VAULT_POLICY)
    proc = run_cli(repo.root, "lint", "-f", "json")
    assert (proc.returncode, proc.stderr) == (1, "")  # the summary is in the report
    doc = json.loads(proc.stdout)
    assert (doc["format"], doc["command"], doc["ok"]) == (1, "lint", False)
    assert doc["summary"] == {"baselined": 0, "files": 2, "findings": 2, "suppressed": 0}
    first = doc["findings"][0]
    assert set(first) == {"rule", "name", "severity", "file", "line", "column", "message",
                          "fix", "fingerprint"}
    assert (first["rule"], first["name"], first["file"], first["line"], first["column"]) == (
        "MAG005", "vault-policy-wildcard", "policies/magds.hcl", 1, 7)


def test_sarif_is_valid_sarif_2_1_0(make_repo: MakeRepo) -> None:
    files = {**fx.FALLBACKS, **{f"h/{k}": v for k, v in fx.HARDCODED.items()}}
    repo = make_repo(files)
    proc = run_cli(repo.root, "lint", "-f", "sarif")
    assert proc.stderr == ""
    doc = json.loads(proc.stdout)
    validator = jsonschema.Draft7Validator(SARIF_SCHEMA,
                                           format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(doc), key=str)
    assert errors == []
    run = doc["runs"][0]
    assert doc["version"] == "2.1.0" and run["tool"]["driver"]["name"] == "magcfg"
    rules = run["tool"]["driver"]["rules"]
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["locations"][0]["physicalLocation"]["region"]["startLine"] >= 1
    assert len(run["results"]) == len(repo.expected)


def test_a_sarif_location_of_a_dot_segment_names_no_other_file(make_repo: MakeRepo) -> None:
    """A commit git stores with an entry named ``..`` (a tree crafted, which no checkout
    writes) holds a file lint --since reads: its SARIF location, resolved as a URI is
    against the source root, is not that of the file the name would reach
    (``deploy/../values.yaml`` and ``values.yaml`` were one)."""
    from urllib.parse import urljoin

    from .conftest import git

    secret = "db:\n  password: CANARYpw7731\n"
    repo = make_repo({"values.yaml": secret})
    blob = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=repo.root, input=secret,
                          capture_output=True, text=True, check=True).stdout.strip()

    def tree(entries: str) -> str:
        return subprocess.run(["git", "mktree"], cwd=repo.root, input=entries,
                              capture_output=True, text=True, check=True).stdout.strip()

    below = tree(f"100644 blob {blob}\tvalues.yaml\n")
    dots = tree(f"040000 tree {below}\t..\n")
    top = tree(f"100644 blob {blob}\tvalues.yaml\n040000 tree {dots}\tdeploy\n")
    crafted = git(repo.root, "commit-tree", top, "-p", "HEAD", "-m", "dots").strip()
    git(repo.root, "reset", "-q", "--soft", crafted)
    proc = run_cli(repo.root, "lint", "--since", "HEAD~1", "-f", "sarif")
    assert proc.returncode == 1, proc.stderr
    uris = [result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            for result in json.loads(proc.stdout)["runs"][0]["results"]]
    assert sorted(uris) == ["deploy/%2E%2E/values.yaml", "values.yaml"], uris
    assert len({urljoin("file:///src/", uri) for uri in uris}) == 2


def test_a_sarif_location_names_the_file_by_its_bytes(make_repo: MakeRepo) -> None:
    """A finding shows a name escaped (`bad\\xff\\x1b.env`); its SARIF location named a
    file of that escaped name (`bad%5Cxff%5Cx1b.env`), which a code-scanning UI finds in
    no repository, where the file's own bytes, percent-encoded, name it."""
    token = "GITHUB_TOKEN=ghp_Zq8XwT4vB7nM2kLp9RsD3fGh6JcY1aEoUi5V\n"
    names = {os.fsdecode(b"bad\xff\x1b.env"): "bad%FF%1B.env",
             "nel\u0085.env": "nel%C2%85.env", "back\\x1bslash.env": "back%5Cx1bslash.env",
             "deploy/caf\u00e9 \u202e.env": "deploy/caf%C3%A9%20%E2%80%AE.env"}
    repo = make_repo(dict.fromkeys(names, token))
    proc = run_cli(repo.root, "lint", "-f", "sarif")
    assert proc.returncode == 1, proc.stderr
    uris = {result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            for result in json.loads(proc.stdout)["runs"][0]["results"]}
    assert uris == set(names.values())
    assert {unquote_to_bytes(uri) for uri in uris} == {os.fsencode(name) for name in names}


def test_sarif_schema_rejects_what_sarif_forbids() -> None:
    # The validator must be able to fail: a wrong version, a result without a message,
    # a zero line number, an unknown level.
    bad = [
        {"version": "2.0.0", "runs": []},
        {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": [{}]}]},
        {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": [
            {"message": {"text": "m"}, "locations": [{"physicalLocation": {
                "artifactLocation": {"uri": "a"}, "region": {"startLine": 0}}}]}]}]},
        {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": [
            {"message": {"text": "m"}, "level": "fatal"}]}]},
        {"version": "2.1.0", "runs": [{"tool": {}}]},
    ]
    validator = jsonschema.Draft7Validator(SARIF_SCHEMA)
    for doc in bad:
        assert not validator.is_valid(doc), doc


def test_output_is_deterministic(make_repo: MakeRepo) -> None:
    repo = make_repo({**fx.FALLBACKS, **{f"p/{k}": v for k, v in fx.VAULT_POLICY.items()}})
    for fmt in ("text", "json", "sarif"):
        first = run_cli(repo.root, "lint", "-f", fmt).stdout
        assert first and run_cli(repo.root, "lint", "-f", fmt).stdout == first


def test_output_file_option(make_repo: MakeRepo) -> None:
    repo = make_repo({**fx.VAULT_POLICY, **fx.HARDCODED})
    before = json.loads(run_cli(repo.root, "lint", "-f", "json").stdout)["findings"]
    proc = run_cli(repo.root, "lint", "-f", "sarif", "-o", "report.sarif")
    assert proc.returncode == 1 and proc.stdout == ""
    assert json.loads((repo.root / "report.sarif").read_text())["version"] == "2.1.0"
    # The report lies in the checkout, as CI writes it before it runs the gate again for
    # its status: the gate finds in it nothing it did not find before (the rules' help
    # once advised suppressing MAG000, which is no suppression: a MAG000 finding).
    after = json.loads(run_cli(repo.root, "lint", "-f", "json").stdout)["findings"]
    assert after == before


SUPPRESSED = {
    "app.py": """\
password = "CANARYs1"  # magcfg: ignore[MAG002] reason: test double for the login form
token = "CANARYs2"  # magcfg: ignore[MAG002]
secret = "CANARYs3"  # magcfg: ignore[MAG001] reason: wrong rule
api_key = "CANARYs4"  # magcfg: ignore[MAG999] reason: unknown rule
""",
    "compose.yaml": "a: ${A:-1}  # magcfg: ignore[MAG001,MAG002] reason: local dev only\n",
    "web.js": "const apiKey = 'CANARYs5'; // magcfg: ignore[MAG002] reason: public demo key\n",
}


def test_inline_suppression_needs_a_reason_and_a_known_rule(make_repo: MakeRepo) -> None:
    repo = make_repo(SUPPRESSED)
    doc = json.loads(run_cli(repo.root, "lint", "-f", "json").stdout)
    got = sorted((f["file"], f["line"], f["rule"]) for f in doc["findings"])
    assert got == [("app.py", 2, "MAG000"), ("app.py", 2, "MAG002"), ("app.py", 3, "MAG002"),
                   ("app.py", 4, "MAG000"), ("app.py", 4, "MAG002")]
    messages = {f["line"]: f["message"] for f in doc["findings"] if f["rule"] == "MAG000"}
    assert "has no reason" in messages[2] and "MAG999" in messages[4]
    assert doc["summary"]["suppressed"] == 3


def test_baseline_accepts_existing_findings_and_fails_new_ones(make_repo: MakeRepo) -> None:
    repo = make_repo({**fx.VAULT_POLICY, "app.py": 'import os\npassword = "CANARYb1"\n'})
    assert run_cli(repo.root, "lint", "--write-baseline").returncode == 0
    baseline = repo.root / ".magcfg-lint-baseline.json"
    first = baseline.read_text()
    assert run_cli(repo.root, "lint", "--write-baseline").returncode == 0
    assert baseline.read_text() == first  # deterministic
    git(repo.root, "add", "-A")
    proc = run_cli(repo.root, "lint", "--baseline", ".magcfg-lint-baseline.json")
    assert proc.returncode == 0, proc.stdout
    assert "3 baselined" in proc.stderr
    # Lines move (code inserted above, re-indented): still accepted.
    app = repo.root / "app.py"
    app.write_text('"""Docs."""\n\nimport os\n\n\n    password   =  "CANARYb1"\n')
    assert run_cli(repo.root, "lint", "-b", ".magcfg-lint-baseline.json").returncode == 0
    # A new finding, and a second copy of an accepted one, fail.
    app.write_text(app.read_text() + 'password = "CANARYb1"\ntoken = "CANARYb2"\n')
    proc = run_cli(repo.root, "lint", "-b", ".magcfg-lint-baseline.json", "-f", "json")
    assert proc.returncode == 1
    new = sorted((f["line"], f["rule"]) for f in json.loads(proc.stdout)["findings"])
    assert new == [(7, "MAG002"), (8, "MAG002")]


def test_baseline_file_errors(make_repo: MakeRepo) -> None:
    repo = make_repo({"bad.json": "{not json\n", "other.json": '{"format": 9}\n'})
    for name in ("bad.json", "other.json"):
        proc = run_cli(repo.root, "lint", "--baseline", name)
        assert proc.returncode == 1 and name in proc.stderr and "Traceback" not in proc.stderr


def test_write_baseline_to_a_named_file(make_repo: MakeRepo) -> None:
    repo = make_repo(fx.VAULT_POLICY)
    (repo.root / "ci").mkdir()
    proc = run_cli(repo.root, "lint", "--write-baseline", "--baseline", "ci/lint-baseline.json")
    assert proc.returncode == 0
    assert json.loads((repo.root / "ci/lint-baseline.json").read_text())["findings"]
    assert run_cli(repo.root, "lint", "-b", "ci/lint-baseline.json").returncode == 0


SARIF_MULTITOOL = shutil.which("sarif-multitool") or shutil.which(
    "sarif-multitool", path=str(Path(__file__).resolve().parents[2] / ".tools/bin"))


def test_sarif_passes_githubs_ingestion_rules(make_repo: MakeRepo, tmp_path: Path) -> None:
    """Microsoft's validator with GitHub's rules (GH*) and SARIF's own: no error, no
    warning. It exits 0 whatever it finds, so its own SARIF log is what is checked."""
    assert SARIF_MULTITOOL is not None, "sarif-multitool not found: run ./scripts/dev tools"
    files = {**fx.FALLBACKS, **{f"h/{k}": v for k, v in fx.HARDCODED.items()}}
    repo = make_repo(files)
    report = tmp_path / "lint.sarif"
    report.write_text(run_cli(repo.root, "lint", "-f", "sarif").stdout, encoding="utf-8")
    log = tmp_path / "validation.sarif"
    subprocess.run([SARIF_MULTITOOL, "validate", "--rule-kind", "Gh;Sarif", "-o", str(log),
                    str(report)], check=True, capture_output=True, timeout=300)
    findings = [(r["ruleId"], r["message"]) for run in json.loads(log.read_text())["runs"]
                for r in run.get("results", [])]
    assert findings == []
    # The validator can fail: the report as it was before GitHub's fields were added.
    doc = json.loads(report.read_text())
    for rule in doc["runs"][0]["tool"]["driver"]["rules"]:
        del rule["fullDescription"]
    report.write_text(json.dumps(doc), encoding="utf-8")
    log.unlink()
    subprocess.run([SARIF_MULTITOOL, "validate", "--rule-kind", "Gh;Sarif", "-o", str(log),
                    str(report)], check=True, capture_output=True, timeout=300)
    rule_ids = {r["ruleId"] for run in json.loads(log.read_text())["runs"]
                for r in run.get("results", [])}
    assert rule_ids == {"GH2012"}
    driver = json.loads(run_cli(repo.root, "lint", "-f", "sarif").stdout)["runs"][0]["tool"][
        "driver"]
    hardcoded = next(r for r in driver["rules"] if r["id"] == "MAG002")
    assert hardcoded["properties"]["security-severity"] == "8.8"
    assert "security" in hardcoded["properties"]["tags"]
    assert hardcoded["helpUri"].endswith("docs/lint.md#mag002-hardcoded-secret")
