"""Each rule on its fixture repository: every marked line found, nothing else found.

Precision and recall are counted per rule and over all fixtures, and must be 100%.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from magcfg.lint import lint
from magcfg.lint.config import LintConfig
from magcfg.lint.walk import MAX_FILE_BYTES

from ..conftest import calls
from . import fixtures as fx
from .conftest import REPO as ROOT
from .conftest import Fixture, MakeRepo, run_cli

FIXTURES: dict[str, Mapping[str, str]] = {
    "MAG001": fx.FALLBACKS,
    "MAG002": fx.HARDCODED,
    "MAG003": fx.ENVFILES,
    "MAG004": fx.VAULT_CLIENTS,
    "MAG005": fx.VAULT_POLICY,
    "MAG006": fx.LAYER_SECRETS,
}


def found_set(root: Path) -> set[tuple[str, int, str]]:
    return {(f.file, f.line, f.rule) for f in lint(root).findings}


def score(expected: set[tuple[str, int, str]],
          found: set[tuple[str, int, str]]) -> tuple[int, int, int]:
    tp = len(expected & found)
    return tp, len(found - expected), len(expected - found)


def build(make_repo: MakeRepo, rule: str) -> Fixture:
    untracked = fx.ENVFILES_IGNORED if rule == "MAG003" else None
    return make_repo(FIXTURES[rule], untracked=untracked)


@pytest.mark.parametrize("rule", sorted(FIXTURES))
def test_fixture_precision_and_recall(make_repo: MakeRepo, rule: str) -> None:
    repo = build(make_repo, rule)
    found = found_set(repo.root)
    tp, fp, fn = score(repo.expected, found)
    assert tp > 0 and sum(1 for e in repo.expected if e[2] == rule) >= 2
    assert found - repo.expected == set(), f"false positives: {sorted(found - repo.expected)}"
    assert repo.expected - found == set(), f"missed: {sorted(repo.expected - found)}"
    assert (tp / (tp + fp), tp / (tp + fn)) == (1.0, 1.0)


def test_overall_precision_and_recall(make_repo: MakeRepo, capsys: pytest.CaptureFixture[str]
                                      ) -> None:
    totals = [0, 0, 0]
    per_rule = []
    for rule in sorted(FIXTURES):
        repo = build(make_repo, rule)
        tp, fp, fn = score(repo.expected, found_set(repo.root))
        per_rule.append(f"{rule}: tp={tp} fp={fp} fn={fn}")
        totals = [totals[0] + tp, totals[1] + fp, totals[2] + fn]
    tp, fp, fn = totals
    with capsys.disabled():
        print(f"\nlint fixtures: {'; '.join(per_rule)}; precision={tp / (tp + fp):.3f} "
              f"recall={tp / (tp + fn):.3f} over {tp + fn} expected findings")
    assert fp == 0 and fn == 0 and tp >= 40


def test_flux_contexts_say_that_colon_question_is_unsupported(make_repo: MakeRepo) -> None:
    repo = make_repo(fx.FALLBACKS)
    for f in lint(repo.root).findings:
        if f.file in fx.FLUX_FILES:
            assert "does not support" in f.fix and "StrictPostBuildSubstitutions" in f.fix
        else:
            assert ":?" in f.fix and "does not support" not in f.fix


def test_safe_default_without_reason_is_reported_as_such(make_repo: MakeRepo) -> None:
    repo = make_repo({"compose.yaml": "x: ${A:-1}  # safe-default:\n"})
    (f,) = lint(repo.root).findings
    assert "needs a reason" in f.message


def test_root_env_not_ignored_is_a_finding_tracked_or_not(make_repo: MakeRepo) -> None:
    repo = make_repo({"README.md": "x\n"}, untracked={".env": "X=1\n"})
    assert {(f.file, f.rule) for f in lint(repo.root).findings} == {(".env", "MAG003")}
    assert "not git-ignored" in lint(repo.root).findings[0].message
    tracked = make_repo({".env": "X=1\n"})
    assert [f.rule for f in lint(tracked.root).findings] == ["MAG003"]


def test_deploy_paths_come_from_the_project_file(make_repo: MakeRepo) -> None:
    repo = make_repo({
        "magcfg.yaml": "lint:\n  deploy_paths: [ops/deploy]\n",
        "ops/deploy/.env": "X=1\n",
        ".gitignore": "k8s/.env\n",
        "k8s/.env": "X=1\n",
    })
    found = lint(repo.root).findings
    assert [(f.file, f.rule) for f in found] == [("ops/deploy/.env", "MAG003")]
    assert "deploy path `ops/deploy/`" in found[0].message


def test_outside_git_walks_the_tree_without_ignore_semantics(make_repo: MakeRepo) -> None:
    repo = make_repo({".env": "X=1\n", "k8s/.env": "X=1\n", ".git-like/x": "y\n"},
                     git_init=False)
    assert {(f.file, f.rule) for f in lint(repo.root).findings} == {("k8s/.env", "MAG003")}


def test_files_are_checked_whatever_their_bytes(make_repo: MakeRepo) -> None:
    """A NUL byte (the "binary" test of detect-secrets and the like), a byte that is not
    UTF-8 or another Unicode encoding does not hide a secret from the gate: the file is
    checked as text."""
    token = "ghp_" + "Zq8XwT4vB7nM2kLp9RsD3fGh6JcY1aEoUi5V"
    repo = make_repo({"README.md": "x\n"})
    (repo.root / "app.env").write_bytes(b"\0\x01\n" + b"DB_PASSWORD=CANARYnul1\n")
    (repo.root / "latin1.py").write_bytes("password = 'CANARYl\xe91'\n".encode("latin-1"))
    (repo.root / "blob.bin").write_bytes(b"\x89PNG\r\n\x1a\n\0\0" + token.encode() + b"\0\n")
    (repo.root / "deploy").mkdir()
    (repo.root / "deploy" / ".env").write_bytes(b"\0X=1\n")
    # Written with a byte order mark (Notepad's UTF-8, PowerShell's UTF-16), or as
    # UTF-16 without one: read as their writers meant.
    (repo.root / "bom.env").write_bytes(b"\xef\xbb\xbfDB_PASSWORD=CANARYbom1\n")
    (repo.root / "u16.yaml").write_bytes("a: 1\npassword: CANARYu16a\n".encode("utf-16"))
    (repo.root / "u16be.env").write_bytes("API_TOKEN=CANARYu16b\n".encode("utf-16-be"))
    (repo.root / "u32.json").write_bytes('{"secret": "CANARYu32c"}\n'.encode("utf-32"))
    # A real image: checked, and nothing in it reads as a secret.
    (repo.root / "report.png").write_bytes((ROOT / "docs" / "report.png").read_bytes())
    found = lint(repo.root).findings
    assert [(f.file, f.line, f.rule) for f in found] == [
        ("app.env", 2, "MAG002"), ("blob.bin", 3, "MAG002"), ("bom.env", 1, "MAG002"),
        ("deploy/.env", 1, "MAG003"), ("latin1.py", 1, "MAG002"), ("u16.yaml", 2, "MAG002"),
        ("u16be.env", 1, "MAG002"), ("u32.json", 1, "MAG002")]
    assert not any("CANARY" in f.message or "ghp_" in f.message for f in found)


def test_a_file_too_large_to_check_is_a_finding(make_repo: MakeRepo) -> None:
    """Padding a file past the size lint reads does not pass the gate: MAG007 names
    it; ``lint.exclude`` or the baseline accept it by name, and the baseline only as
    large as it was."""
    repo = make_repo({"README.md": "x\n"})
    big = repo.root / "dump.env"
    big.write_text("DB_PASSWORD=CANARYbig1\n")
    os.truncate(big, MAX_FILE_BYTES + 1)
    found = lint(repo.root).findings
    assert [(f.file, f.line, f.rule, f.message) for f in found] == [
        ("dump.env", 1, "MAG007", f"not checked for secrets: is {MAX_FILE_BYTES + 1} bytes, "
                                  f"more than the {MAX_FILE_BYTES} lint checks")]
    out = run_cli(repo.root, "lint")
    assert out.returncode == 1 and "MAG007" in out.stdout
    assert "CANARY" not in out.stdout + out.stderr
    assert lint(repo.root, config=LintConfig(exclude=("*.env",))).findings == []
    assert lint(repo.root, config=LintConfig(disable=("MAG007",))).findings == []
    baseline = repo.root / ".magcfg-lint-baseline.json"
    assert run_cli(repo.root, "lint", "--write-baseline").returncode == 0
    assert lint(repo.root, baseline=baseline).findings == []
    os.truncate(big, MAX_FILE_BYTES + 2)
    assert [f.rule for f in lint(repo.root, baseline=baseline).findings] == ["MAG007"]


def test_names_that_escape_alike_are_reported_apart(make_repo: MakeRepo) -> None:
    """A literal backslash sequence and the control character it spells are two files,
    so two names in findings (and two baseline entries)."""
    repo = make_repo({"README.md": "x\n"})
    (repo.root / "a\\x1b.py").write_text("password = 'CANARYlit1'\n")
    (repo.root / "a\x1b.py").write_text("password = 'CANARYesc1'\n")
    assert sorted(f.file for f in lint(repo.root).findings) == ["a\\\\x1b.py", "a\\x1b.py"]


def test_ignored_files_are_not_read_and_untracked_ones_are(make_repo: MakeRepo) -> None:
    repo = make_repo({".gitignore": "secret.env\n"},
                     untracked={"secret.env": "DB_PASSWORD=CANARYx1\n",
                                "new.env": "DB_PASSWORD=CANARYx2\n"})
    assert [f.file for f in lint(repo.root).findings] == ["new.env"]


def test_paths_narrow_the_files_checked(make_repo: MakeRepo) -> None:
    repo = make_repo({"a/x.py": "password = 'CANARYa'\n", "b/y.py": "password = 'CANARYb'\n"})
    result = lint(repo.root, [repo.root / "b"])
    assert [f.file for f in result.findings] == ["b/y.py"] and result.files == 1


def test_project_file_disables_and_excludes(make_repo: MakeRepo) -> None:
    repo = make_repo({
        "magcfg.yaml": "lint:\n  disable: [MAG005]\n  exclude: ['vendor/**']\n",
        "p.hcl": 'path "secret/data/a/*" { capabilities = ["read"] }\n',
        "vendor/lib/x.py": "password = 'CANARYv'\n",
    })
    assert lint(repo.root).findings == []


@pytest.mark.parametrize("key", ["DB_PASSWORD", "apiKey", "client_secret", "private_key",
                                 "GITHUB_TOKEN", "passwd", "SECRET_KEY", "authToken",
                                 "PGPASSWORD", "DBPASSWORD", "GITHUBTOKEN", "password2",
                                 "DB_PASSWORD_2", "apiKey2", "appsecret"])
def test_secret_like_keys(key: str) -> None:
    from magcfg.lint.hardcoded import key_is_secret

    assert key_is_secret(key)


@pytest.mark.parametrize("key", ["passwordFile", "secretKeyRef", "secretName", "tokenUrl",
                                 "existingSecret", "max_tokens", "passwordKey", "username",
                                 "automountServiceAccountToken", "token_ttl", "secrets",
                                 "tokenizer", "TOKENIZER_PATH", "passwordless",
                                 "PGPASSWORD_FILE", "password2_file"])
def test_not_secret_keys(key: str) -> None:
    from magcfg.lint.hardcoded import key_is_secret

    assert not key_is_secret(key)


@pytest.mark.parametrize("value", ["vault://secret/k3s/a#b", "env://DB_PASSWORD", "${DB_PASS}",
                                   "$DB_PASS", "{{ .Values.x }}", "<your-token>", '""', "null",
                                   "xxxxxx", "!unset", "'{{ secret }}'", "{db_password}"])
def test_references_and_placeholders_are_not_literals(value: str) -> None:
    from magcfg.lint.literals import is_literal

    assert not is_literal(value)


def test_layer_rule_agrees_with_the_compiler(make_repo: MakeRepo) -> None:
    # What MAG006 flags, `magcfg build` refuses; after fixing those values the build passes.
    from .conftest import run_cli

    repo = make_repo(fx.LAYER_SECRETS)
    build = run_cli(repo.root, "build", "--check")
    assert build.returncode == 1 and "CANARY" not in build.stderr
    dev = repo.root / "layers/env/dev/db.yaml"
    fixed = (dev.read_text().replace("CANARYlayer1", "env://DB_PASSWORD")
             .replace('"CANARYlayer2"', "env://STRIPE").replace('"vault://no-key-part"',
                                                               "env://BROKEN")
             .replace("123456", "env://NUMERIC"))
    dev.write_text(fixed)
    assert [f for f in lint(repo.root).findings if f.rule == "MAG006"] == []
    build = run_cli(repo.root, "build")
    assert build.returncode == 0, build.stderr


def test_secrets_parse_reference() -> None:
    from magcfg.secrets.references import SecretRef, parse_reference

    assert parse_reference("vault://secret/k3s/magds#db_password") == SecretRef(
        "vault", mount="secret", path="k3s/magds", key="db_password")
    assert parse_reference("env://DB_PASSWORD") == SecretRef("env", var="DB_PASSWORD")
    assert str(parse_reference("vault://secret/k3s/magds#db_password")) == \
        "vault://secret/k3s/magds#db_password"
    for bad in ("vault://secret#k", "vault://secret/k3s/magds", "env://lower", "hunter2",
                "vault://Secret/x#k", " env://X"):
        assert parse_reference(bad) is None, bad


def test_suppression_works_in_every_comment_syntax(make_repo: MakeRepo) -> None:
    repo = make_repo({
        "a.go": 'var token = "CANARYg1" // magcfg: ignore[MAG002] reason: test double\n',
        "b.hcl": 'path "secret/data/x/*" { capabilities = ["read"] } '
                 "# magcfg: ignore[MAG005] reason: legacy path, removal tracked\n",
        "c.ts": "const apiKey = 'CANARYt1'; /* magcfg: ignore[MAG002] reason: demo key */\n",
        "d.yaml": "password: CANARYy1  # magcfg: ignore[mag002] reason: lower-case id\n",
    })
    result = lint(repo.root)
    assert result.findings == [] and result.suppressed == 4


def test_suppression_works_in_prose_and_examples_of_it_are_no_finding(make_repo: MakeRepo
                                                                       ) -> None:
    token = "ghp_CANARY0abcdefghijklmnopqrstuvwxyz1234"
    repo = make_repo({
        "docs/incident.md": f"The leaked key was {token} "
                            "<!-- magcfg: ignore[MAG002] reason: revoked, kept for the record -->\n"
                            "Without a reason, `magcfg: ignore[MAG002]` suppresses nothing.\n"
                            f"And {token} here is not suppressed. «MAG002»\n",
        "docs/incident.rst": f"Key ``{token}`` (magcfg: ignore[MAG002] reason: revoked)\n"
                             "Unknown ids: ``magcfg: ignore[MAG999] reason: x``.\n",
        "notes.txt": f"{token}  # magcfg: ignore[MAG002] reason: revoked\n",
    })
    result = lint(repo.root)
    assert {(f.file, f.line, f.rule) for f in result.findings} == repo.expected
    assert result.suppressed == 3


def test_env_file_inline_safe_default(make_repo: MakeRepo) -> None:
    repo = make_repo({"config/app.env": "A=${A:-1} # safe-default: harmless\nB=${B:-2}\n"})
    assert [(f.line, f.rule) for f in lint(repo.root).findings] == [(2, "MAG001")]


def test_vault_client_in_nested_app_uses_the_nearest_app_dir(make_repo: MakeRepo) -> None:
    repo = make_repo({
        "README.md": "# mono\n\n## Secrets architecture\n\nDirect-Vault because reasons.\n",
        "apps/api/pyproject.toml": '[project]\nname = "api"\n',
        "apps/api/src/api/vault.py": "import hvac\n",
        "tools/rotate.py": "import hvac\n",
    })
    found = lint(repo.root).findings
    # The root README declares Direct-Vault for the root app only; `api` has its own dir.
    assert [(f.file, f.rule) for f in found] == [("apps/api/src/api/vault.py", "MAG004")]
    assert "app `api`" in found[0].message


def test_findings_never_contain_the_value(make_repo: MakeRepo) -> None:
    repo = make_repo(fx.HARDCODED)
    for f in lint(repo.root).findings:
        assert "CANARY" not in f.message + f.fix


def test_messages_do_not_depend_on_the_checkout_directory(make_repo: MakeRepo) -> None:
    files = {"tool.py": "import hvac\n", "svc/package.json": '{"name": "svc"}\n',
             "svc/i.js": "require('node-vault')\n"}
    a, b = make_repo(files), make_repo(files)
    fa, fb = lint(a.root).findings, lint(b.root).findings
    assert fa == fb and len(fa) == 2
    assert "`(repository root)`" in fa[1].message and a.root.name not in fa[1].message + fa[1].fix
    assert "path: svc" in fa[0].fix


def test_a_package_json_nested_too_deep_names_no_app(make_repo: MakeRepo) -> None:
    """A package.json of 100,000 nested arrays names no app, as one that is no JSON:
    the client is still found, and lint exits 1 without a RecursionError traceback."""
    repo = make_repo({"svc/package.json": "[" * 100_000 + "]" * 100_000 + "\n",
                      "svc/i.js": "require('node-vault')\n"})
    proc = run_cli(repo.root, "lint")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout.startswith("svc/i.js:1:"), proc.stdout


def test_direct_vault_declared_by_path(make_repo: MakeRepo) -> None:
    repo = make_repo({
        "magcfg.yaml": "secrets:\n  direct_vault:\n"
                       "    - {app: backup-tools, path: ops/backup, justification: restores}\n"
                       "    - {app: root-tools, path: ., justification: rotation script}\n",
        "ops/backup/tool/go.mod": "module x/tool\n",
        "ops/backup/tool/main.go": 'import "github.com/hashicorp/vault/api"\n',
        "rotate.py": "import hvac\n",
        "other/package.json": '{"name": "other"}\n',
        "other/x.js": "import v from 'node-vault'\n",
    })
    assert [f.file for f in lint(repo.root).findings] == ["other/x.js"]


def test_direct_vault_without_justification_is_a_project_file_error(make_repo: MakeRepo
                                                                     ) -> None:
    from magcfg.errors import MagcfgError

    repo = make_repo({"magcfg.yaml": "secrets:\n  direct_vault:\n    - app: a\n"})
    with pytest.raises(MagcfgError) as err:
        lint(repo.root)
    assert "justification" in err.value.format() and "magcfg.yaml:3" in err.value.format()


def test_unparseable_python_still_shows_its_vault_import(make_repo: MakeRepo) -> None:
    repo = make_repo({"legacy.py": "import hvac\nprint 'python 2'\n",
                      "ok.py": "text = '''\nimport hvac\n'''\n"})
    assert [(f.file, f.line) for f in lint(repo.root).findings] == [("legacy.py", 1)]


def test_layer_rule_reads_secret_keys_from_the_build_cache(
        make_repo: MakeRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    """After a build, MAG006 asks the policy tables the build cached (the schema is not
    indexed) and flags the same values as without a cache; it writes nothing there."""
    import shutil

    import magcfg
    from magcfg.schema.index import SchemaIndex

    repo = make_repo(fx.LAYER_SECRETS)
    expected = {e for e in repo.expected if e[2] == "MAG006"}
    dev = repo.root / "layers/env/dev/db.yaml"
    literal = dev.read_text()
    dev.write_text(literal.replace("CANARYlayer1", "env://DB_PASSWORD")
                   .replace('"CANARYlayer2"', "env://STRIPE")
                   .replace('"vault://no-key-part"', "env://BROKEN")
                   .replace("123456", "env://NUMERIC"))
    magcfg.build(magcfg.load_project(repo.root / "magcfg.yaml"))
    dev.write_text(literal)
    cache = repo.root / ".magcfg-cache"
    stored = {p.name: p.read_bytes() for p in cache.iterdir()}
    indexed = calls(monkeypatch, SchemaIndex, "_build", arg=1)
    assert {f for f in found_set(repo.root) if f[2] == "MAG006"} == expected
    assert indexed == []
    assert {p.name: p.read_bytes() for p in cache.iterdir()} == stored
    shutil.rmtree(cache)
    assert {f for f in found_set(repo.root) if f[2] == "MAG006"} == expected
    assert indexed  # without the cache, the schema's index answers
    assert not cache.exists()


def test_layer_rule_reads_mapped_layers_as_the_compiler_does(make_repo: MakeRepo) -> None:
    """In layers whose files map under a key (``files:``/``key:``), MAG006 checks each
    file's keys behind its prefix, as the build merges them, and only the layers'
    files: a literal under ``dsn`` in services/magds/base.yaml is ``magds.db.dsn``."""
    from .conftest import run_cli

    repo = make_repo(fx.LAYER_SECRETS_MAPPED)
    found = [f for f in lint(repo.root).findings if f.rule == "MAG006"]
    assert {(f.file, f.line, f.rule) for f in found} == repo.expected
    assert sorted(f.message.split("`")[1] for f in found) == ["magds.db.dsn",
                                                               "web.tokens.upstream"]
    assert not any("CANARY" in f.message for f in found)
    build = run_cli(repo.root, "build", "--check")
    assert build.returncode == 1 and "CANARY" not in build.stderr
    assert "[magds.db.dsn]" in build.stderr and "[web.tokens.upstream]" in build.stderr


def test_layer_rule_finds_a_project_in_a_subdirectory(make_repo: MakeRepo) -> None:
    """A monorepo keeps its magcfg project below the repository root: MAG006 reads its
    layers there, from the root (with ``--project`` or without) or from the project's
    directory, and names files from the repository root."""
    from .conftest import run_cli

    repo = make_repo({"README.md": "A monorepo.\n",
                      **{f"config/{rel}": text for rel, text in fx.LAYER_SECRETS_MAPPED.items()}})
    assert len(repo.expected) == 2
    for cwd, args in ((repo.root, []), (repo.root, ["--project", "config/magcfg.yaml"]),
                      (repo.root / "config", []),
                      (repo.root / "config/services", ["--format", "text"]),
                      (repo.root / "config", ["../README.md", "services"])):
        out = run_cli(cwd, "lint", *args)
        assert out.returncode == 1, (cwd, args, out.stderr)
        assert "CANARY" not in out.stdout + out.stderr and "Traceback" not in out.stderr
        found = {(line.split(":")[0], int(line.split(":")[1]), "MAG006")
                 for line in out.stdout.splitlines() if " MAG006 " in line}
        assert found == repo.expected, (cwd, args)


CUE_BASE = """\
db: {
	host:     "db.internal"
	password: "CANARYcue1"
}
"""


def test_layer_rule_reads_cue_layers(make_repo: MakeRepo, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A literal secret in a ``.cue`` layer file that a higher layer overrides with a
    reference is committed: the build refuses it at its line, and MAG006 exports CUE
    layers as the build does and flags it at the same line. Without a usable ``cue``,
    lint says the file was not checked and fails, rather than pass."""
    from .conftest import REPO, run_cli

    files = {**fx.LAYER_SECRETS, "layers/base/db.cue": CUE_BASE,
             "layers/env/dev/db.yaml": "db:\n  password: env://DB_PASSWORD\n",
             "layers/env/prod/db.yaml": "db:\n  password: env://DB_PASSWORD\n"}
    del files["layers/base/db.yaml"]
    repo = make_repo(files)
    built = run_cli(repo.root, "build")
    assert built.returncode == 1 and built.stderr.startswith(
        "layers/base/db.cue:3: error: a secret key holds a literal value"), built.stderr
    assert "CANARY" not in built.stdout + built.stderr
    from magcfg.cue import layers as cue_layers

    exported = calls(monkeypatch, cue_layers, "load_cue_layers", arg=1)
    assert lint(repo.root, [repo.root / "layers/env"]).findings == []
    assert exported == []  # CUE layers are exported only when one is checked
    found = [f for f in lint(repo.root).findings if f.rule == "MAG006"]
    assert exported == [["layers/base/db.cue"]]
    assert [(f.file, f.line) for f in found] == [("layers/base/db.cue", 3)]
    assert "`db.password`" in found[0].message and "CANARY" not in found[0].message
    out = run_cli(repo.root, "lint")
    assert out.returncode == 1 and "layers/base/db.cue:3:" in out.stdout
    assert "CANARY" not in out.stdout + out.stderr
    env = {**os.environ, "MAGCFG_CUE": str(tmp_path / "no-cue"),
           "PYTHONPATH": str(REPO / "compiler")}
    blind = subprocess.run([sys.executable, "-m", "magcfg", "lint"], cwd=repo.root, env=env,
                           capture_output=True, text=True, check=False)
    assert blind.returncode == 1 and "Traceback" not in blind.stderr
    assert "layers/base/db.cue:1:1: MAG006 error: not checked for literal secrets" in blind.stdout
    assert "CANARY" not in blind.stdout + blind.stderr
    # Linting other files does not need cue (pre-commit passes the files a commit touches).
    yaml_only = subprocess.run([sys.executable, "-m", "magcfg", "lint", "layers/env/dev/db.yaml"],
                               cwd=repo.root, env=env, capture_output=True, text=True,
                               check=False)
    assert yaml_only.returncode == 0, yaml_only.stdout + yaml_only.stderr


def test_layer_rule_reads_every_project_of_a_monorepo(make_repo: MakeRepo) -> None:
    """From the root, each project of the repository has its layer files checked against
    its own schema, and a project file that cannot be read is a finding (the gate fails
    rather than skip its layers), without quoting it."""
    broken = "version: 1 «MAG006»\nlayers: [\n  password: CANARYbroken1\n"
    repo = make_repo({**{f"config/{rel}": text for rel, text in fx.LAYER_SECRETS_MAPPED.items()},
                      **{f"team2/{rel}": text for rel, text in fx.LAYER_SECRETS.items()},
                      "team3/magcfg.yaml": broken})
    result = lint(repo.root)
    found = {(f.file, f.line, f.rule) for f in result.findings if f.rule == "MAG006"}
    assert found == {e for e in repo.expected if e[2] == "MAG006"}
    assert {f[0].split("/")[0] for f in found} == {"config", "team2", "team3"}
    unread = [f for f in result.findings if f.file == "team3/magcfg.yaml"]
    assert "layers not checked" in unread[0].message and "not valid YAML" in unread[0].message
    assert not any("CANARY" in f.message for f in result.findings)
