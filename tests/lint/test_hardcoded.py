"""MAG002 edge cases: key material under a `*KEY` name, Secret key names, signatures."""

from __future__ import annotations

import pytest

from magcfg.lint import lint

from ..conftest import failed_cleanly, tree_state
from .conftest import MakeRepo, run_cli


def test_api_key_literals_in_python_are_found(make_repo: MakeRepo) -> None:
    # The example of docs/secrets.md's policy, and a value that reads like a word.
    repo = make_repo({"app/settings.py": 'API_KEY = "sk-live-abc123def456"\n'
                                         'api_key = "qwerty987zz"\n'})
    before = tree_state(repo.root)
    done = run_cli(repo.root, "lint")
    err = failed_cleanly(done, 1)
    assert done.stdout.splitlines()[0::2] == [
        "app/settings.py:1:11: MAG002 error: `API_KEY` is assigned a literal value (<redacted>)",
        "app/settings.py:2:11: MAG002 error: `api_key` is assigned a literal value (<redacted>)"]
    assert "sk-live" not in done.stdout + err and "qwerty" not in done.stdout + err
    assert tree_state(repo.root) == before


@pytest.mark.parametrize(("text", "found"), [
    ("- secretKey: MAGCFG_DB_PASSWORD\n", False),    # External Secrets: an env var name
    ("- secretKey: db-password\n", False),           # a Secret's key, kebab-case
    ("- secretKey: s3_secret_access_key\n", False),  # snake-case words, short `s3`
    ("- secretKey: TOKEN\n", False),
    ("- secretKey: sk-live-abc123def456\n", True),   # long letter-digit run: material
    ("api_key: qwerty987zz\n", True),
    ("apiKey: Production\n", True),                  # mixed case is not a name
])
def test_secret_key_names_in_manifests(make_repo: MakeRepo, text: str, found: bool) -> None:
    repo = make_repo({"k8s/es.yaml": "data:\n" + text})
    assert [(f.line, f.rule) for f in lint(repo.root).findings] == ([(2, "MAG002")] if found
                                                                     else [])


@pytest.mark.parametrize(("text", "found"), [
    ('SECRET_KEY = "MAGFLOCK_SECRET_KEY"\n', False),  # names the env var that holds it
    ('signing_key = "correct-horse-battery\"\n', True),  # in code, words are material too
])
def test_key_names_in_code(make_repo: MakeRepo, text: str, found: bool) -> None:
    repo = make_repo({"a.py": text})
    assert bool(lint(repo.root).findings) is found


def test_signatures_and_dsse_payload_are_not_secrets(make_repo: MakeRepo) -> None:
    sig = "M2tdlHiX8FjQY+F+VmPn0qEV9Lmmlqo5jf1YZBTjRJkgMiJQqsJaGnWN7poy9SUDPoqMeThhQ3hCGT9i9edeDQ=="
    payload = "eyJfdHlwZSI6Imh0dHBzOi8vaW4tdG90by5pby9TdGF0ZW1lbnQvdjEiLCJwcmVkaWNhdGUiOnt9fQ=="
    envelope = (f'{{\n  "payload": "{payload}",\n  "payloadType": "application/vnd.in-toto+json",'
                f'\n  "signatures": [{{"keyid": "9172892a21666d30", "sig": "{sig}"}}]\n}}\n')
    repo = make_repo({"attestation.dsse.json": envelope,
                      # Outside a DSSE envelope a high-entropy `payload` still counts, and
                      # so does a `webhook_sig` that only ends in `sig`.
                      "other.json": f'{{"payload": "{payload}",\n "webhook_sig": "{sig}"}}\n'})
    assert [(f.file, f.line) for f in lint(repo.root).findings] == [
        ("other.json", 1), ("other.json", 2)]
