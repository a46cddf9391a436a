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
