"""Canary secrets: known values in the environment and in layers never reach any output.

The bundled MagFlock project is built, explained and checked with every secret env var
set to a canary; then canaries are written into layers where they must be rejected. No
file under generated/, no CLI output and no error message may contain one.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import magcfg
from magcfg.errors import BuildError
from magcfg.pipeline.cache import BuildCache
from magcfg.secrets.check_env import check_env
from magcfg.secrets.references import env_var_name, references

from ..conftest import Project

CANARY = "CANARY-7c1f-d00d"


def _canary_env(project: Project) -> dict[str, str]:
    """A canary value for every variable any environment's secrets are delivered by."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAGCFG_", "MAGFLOCK_"))}
    for i, name in enumerate(sorted(_delivery_names(project))):
        # Long enough for every x-magcfg-secret-value of the bundled schema (minLength 32).
        env[name] = f"{CANARY}-{i}-{'x' * 24}"
    env["VAULT_TOKEN"] = f"{CANARY}-token"
    return env


def _delivery_names(project: Project) -> set[str]:
    result = magcfg.build(magcfg.load_project(project.root / "magcfg.yaml"), check=True,
                          cache=BuildCache(None))
    names = set()
    for artifact in result.artifacts.values():
        for keypath, ref in references(artifact.config):
            names.add(ref.var if ref.scheme == "env" else env_var_name(keypath))
    return names


def _tree_text(root: Path) -> str:
    return "\n".join(p.read_text(encoding="utf-8", errors="replace")
                     for p in sorted(root.rglob("*")) if p.is_file())


def test_canaries_in_the_environment_never_reach_outputs(bundled: Project) -> None:
    env = _canary_env(bundled)
    assert len([k for k in env if env[k].startswith(CANARY)]) >= 14
    outputs = [
        bundled.run("build", env=env),
        bundled.run("build", "--check", env=env),
        bundled.run("explain", "magds.connection.password", "--env", "production", env=env),
        bundled.run("explain", "magds", "--env", "dev", env=env),
        bundled.run("explain", "magbackup.target", "--env", "staging", env=env),
    ]
    for envname in ("dev", "staging", "production"):
        outputs.append(bundled.run("check-env", "--env", envname, env=env))
        outputs.append(bundled.run("check-env", "--env", envname, "--format", "json", env=env))
    for result in outputs:
        assert result.returncode == 0, (result.args, result.stderr)
        assert CANARY not in result.stdout + result.stderr, result.args
    assert CANARY not in _tree_text(bundled.root / "generated")
    # and the check really saw them: every secret resolvable with the canaries set
    for envname in ("dev", "staging", "production"):
        assert check_env(bundled.root / "generated" / envname, env).ok


def test_canary_that_fails_a_value_constraint_is_named_never_shown(bundled: Project) -> None:
    """The bundled schema wants signing keys of 32 characters at least: a shorter canary
    makes check-env fail naming the key and the constraint, in text and JSON, but never
    the value (nor its length)."""
    env = _canary_env(bundled)
    assert bundled.run("build", env=env).returncode == 0
    short = f"{CANARY}-short"
    for envname, var in (("dev", "MAGFLOCK_MAGAUTH_JWT_SIGNING_KEY"),
                         ("production", "MAGCFG_MAGAUTH_JWT_SIGNING_KEY")):
        bad = {**env, var: short}
        text = bundled.run("check-env", "--env", envname, env=bad)
        assert text.returncode == 1
        assert (f"  {var} (for magauth.jwt.signing_key, "
                f"{'env' if envname == 'dev' else 'vault'}://): shorter than minLength 32"
                in text.stderr)
        data = bundled.run("check-env", "--env", envname, "--format", "json", env=bad)
        assert data.returncode == 1
        for result in (text, data):
            assert CANARY not in result.stdout + result.stderr
            assert str(len(short)) not in result.stdout + result.stderr
        assert '"constraint": "minLength"' in data.stdout


# Rejected canaries, each in another secret key of production (a build reports every error
# of every file at once). A load error stops the build before validation, so the YAML 1.1
# case is a build of its own.
REJECTED = {
    "validate": {
        "layers/secrets/production/magds.yaml":
            (3, "magds:\n  connection:\n    password: {c}\n", "magds.connection.password"),
        "layers/secrets/production/magws.yaml":
            (2, 'magws:\n  app_secret: "vault://{c}"\n', "magws.app_secret"),
        "layers/secrets/production/magmqtt.yaml":
            (3, 'magmqtt:\n  connection:\n    password: "env://{lc}"\n', "magmqtt.connection.password"),
        "layers/secrets/production/magauth.yaml":
            (3, "magauth:\n  jwt:\n    signing_key: [{c}]\n", "magauth.jwt.signing_key"),
        "layers/secrets/production/magsentinel.yaml":
            (3, "magsentinel:\n  notify:\n    webhook_url: {{inner: {c}}}\n",
             "magsentinel.notify.webhook_url"),
    },
    "load": {
        "layers/secrets/production/magds.yaml":
            (3, "magds:\n  connection:\n    password: 0741852963\n", "magds.connection.password"),
    },
}


@pytest.mark.parametrize("stage", sorted(REJECTED))
def test_canaries_in_layers_are_rejected_without_echo(bundled: Project, stage: str) -> None:
    env = _canary_env(bundled)
    before = bundled.snapshot_tree()
    for rel, (_line, text, _key) in REJECTED[stage].items():
        bundled.write(rel, text.format(c=CANARY, lc=CANARY.lower()))
    secrets = [CANARY, CANARY.lower(), "0741852963"]
    build = bundled.run("build", env=env)
    assert build.returncode == 1
    for rel, (line, _text, key) in REJECTED[stage].items():
        assert any(f"{rel}:{line}: error:" in row and f"[{key}]" in row
                   for row in build.stderr.splitlines()), (rel, build.stderr)
    check = bundled.run("build", "--check", env=env)
    explain = bundled.run("explain", "magds.connection", "--env", "production", env=env)
    for result in (build, check, explain):
        for secret in secrets:
            assert secret not in result.stdout + result.stderr, result.args
        assert "Traceback" not in result.stderr
    with pytest.raises(BuildError) as info:
        magcfg.build(magcfg.load_project(bundled.root / "magcfg.yaml"), cache=BuildCache(None))
    for secret in secrets:
        assert secret not in str(info.value) and secret not in info.value.format()
    assert bundled.snapshot_tree() == before
    assert CANARY not in _tree_text(bundled.root / "generated")


def test_canary_in_a_redact_glob_key(bundled: Project) -> None:
    """A value the project redacts by glob is shown nowhere, not even in a schema error."""
    text = (bundled.root / "magcfg.yaml").read_text() + 'redact: ["magds.connection.user"]\n'
    bundled.write("magcfg.yaml", text)
    bundled.write("layers/environments/production/extra.yaml",
                  f"magds:\n  connection:\n    user: {CANARY}\n")
    build = bundled.run("build")
    assert build.returncode == 1 and "magds.connection.user" in build.stderr
    assert CANARY not in build.stdout + build.stderr
