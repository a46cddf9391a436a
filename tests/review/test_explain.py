"""``magcfg explain`` of secret keys: a reference is shown (where the value lives), any
other secret value is ``<redacted>``."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..conftest import Project
from .promotion_repo import make_repo, no_canary


@pytest.fixture
def repo(tmp_path: Path) -> Project:
    return make_repo(tmp_path / "shop")


def test_explain_shows_a_secret_keys_reference(repo: Project) -> None:
    done = repo.run("explain", "db.password", "-e", "production")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        'db.password = "vault://secret/k3s/shop#db_password_production"    '
        "[production; reload: restart; secret]",
        '  => layers/secrets/production/db.yaml:2  (secrets)  '
        '"vault://secret/k3s/shop#db_password_production"',
    ]


def test_explain_redacts_a_plain_secret_value(repo: Project) -> None:
    done = repo.run("explain", "db", "-e", "dev")
    assert done.returncode == 0, done.stderr
    assert '"user": "<redacted>"' in done.stdout
    assert '"password": "vault://secret/k3s/shop#db_password_dev"' in done.stdout
    assert no_canary(done.stdout, done.stderr)


def test_explain_masks_a_secret_literal_another_key_reaches_by_an_alias(
        mini: Project) -> None:
    """``host: *p`` holds the password the anchor ``&p`` wrote under a secret key: the
    build masks its text in every message, and explain, which runs on a project that
    does not build, showed it as host's value and in its provenance."""
    canary = "canary-Xv4hunter2-alias"
    mini.write("layers/base/magds.yaml", f"magds:\n  password: &p {canary}\n  host: *p\n")
    for args in (("explain", "magds.host", "-e", "prod"),
                 ("explain", "magds.host", "-e", "prod", "--format", "json"),
                 ("explain", "magds", "-e", "prod")):
        done = mini.run(*args)
        assert done.returncode == 0, done.stderr
        assert canary not in done.stdout + done.stderr, args
    assert mini.run("explain", "magds.host", "-e", "prod").stdout.splitlines() == [
        'magds.host = "<redacted>"    [prod; reload: restart]',
        '  => layers/base/magds.yaml:3  (base)  "<redacted>"']
