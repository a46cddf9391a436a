"""MAG001's view of Flux (lint/fallbacks.py) on a hostile manifest."""

from __future__ import annotations

from .conftest import MakeRepo, run_cli


def test_a_flux_manifest_nested_past_any_parser_is_not_a_crash(make_repo: MakeRepo) -> None:
    """The Flux contexts are read with PyYAML, which recurses per level: a manifest nested
    deeper than the interpreter's limit is not one Flux reads, never a traceback."""
    deep = "[" * 5000 + "]" * 5000
    repo = make_repo({"flux.yaml": "apiVersion: kustomize.toolkit.fluxcd.io/v1\n"
                                   f"kind: Kustomization\na: {deep}\n",
                      "docker-compose.yml": "services:\n  api:\n    environment:\n"
                                            "      DB_HOST: ${DB_HOST:-localhost}\n"})
    done = run_cli(repo.root, "lint")
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 1 and "docker-compose.yml:4:" in done.stdout, done.stdout
