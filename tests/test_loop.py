"""The loop users run, end to end, with the real tools: a project ``magcfg init`` made,
a bare origin, pull requests gated by the GitHub workflow ``init`` wrote (its commands
run as written, on the merge GitHub checks out), the advice the gate prints followed
as written, and what goes out to a registry and the runtime that follows it."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from magcfg.runtime import RELOADED, Kernel

from .conftest import MAGCFG, Project, own_pytest_env
from .oci.conftest import LocalRegistry

WORKFLOW = ".github/workflows/magcfg.yml"


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True,
                          text=True, timeout=120).stdout


def shell(root: Path, command: str) -> subprocess.CompletedProcess[str]:
    """A command as a user or a runner runs it: by a shell, with ``magcfg`` on PATH."""
    # The pytest it starts (the workflow's snapshot step) has magcfg's test extra alone.
    env = {**own_pytest_env(os.environ),
           "PATH": f"{MAGCFG.parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "GITHUB_EVENT_NAME": "pull_request", "GITHUB_BASE_REF": "main"}
    return subprocess.run(["sh", "-c", command], cwd=root, env=env, capture_output=True,
                          text=True, timeout=300, check=False)


class Loop:
    """A bare origin whose ``main`` holds a project ``magcfg init --ci github`` made
    (environments dev and prod unless told), and a developer's clone of it."""

    def __init__(self, tmp_path: Path, environments: tuple[str, ...] = ("dev", "prod")
                 ) -> None:
        self.tmp = tmp_path
        self.runs = 0
        self.origin = tmp_path / "origin.git"
        git(tmp_path, "init", "-q", "--bare", "-b", "main", str(self.origin))
        self.work = tmp_path / "work"
        git(tmp_path, "clone", "-q", str(self.origin), str(self.work))
        self.identify(self.work)
        git(self.work, "switch", "-q", "-c", "main")
        named = [arg for env in environments for arg in ("--env", env)]
        assert self.magcfg("init", *named, "--ci", "github").returncode == 0
        self.commit("init")
        git(self.work, "push", "-q", "-u", "origin", "main")

    @staticmethod
    def identify(root: Path) -> None:
        git(root, "config", "user.email", "dev@example.com")
        git(root, "config", "user.name", "Dev")

    def magcfg(self, *args: str) -> subprocess.CompletedProcess[str]:
        return Project(self.work).run(*args)

    def trusted_keys(self, keys: Path) -> Path:
        """A key pair generated into ``keys`` (CI's), its public key committed to the
        work tree's ``keys/`` and trusted by the project file; ``keys``."""
        assert self.magcfg("keys", "generate", "--out", str(keys)).returncode == 0
        (self.work / "keys").mkdir()
        (self.work / "keys/magcfg.pub").write_bytes((keys / "magcfg.pub").read_bytes())
        project_file = self.work / "magcfg.yaml"
        project_file.write_text(project_file.read_text()
                                + "signing:\n  public_keys: [keys/magcfg.pub]\n")
        return keys

    def commit(self, message: str) -> None:
        git(self.work, "add", "-A")
        git(self.work, "commit", "-q", "-m", message)

    def merge(self, branch: str) -> None:
        """The pull request of ``branch`` merged into main, as GitHub merges it."""
        git(self.work, "switch", "-q", "main")
        git(self.work, "merge", "-q", "--no-ff", branch, "-m", f"Merge {branch}")
        git(self.work, "push", "-q", "origin", "main")

    def gate(self, branch: str) -> list[tuple[str, subprocess.CompletedProcess[str]]]:
        """The workflow's steps for the pull request of ``branch`` into main, on the
        merge GitHub checks out (the whole history: ``fetch-depth: 0``), each in a shell
        of its own, up to the first that fails (the install aside: magcfg is on PATH)."""
        git(self.work, "push", "-q", "-f", "origin", branch)
        self.runs += 1
        clone = self.tmp / f"ci-{self.runs}"
        git(self.tmp, "clone", "-q", str(self.origin), str(clone))
        self.identify(clone)
        git(clone, "checkout", "-q", "--detach", "origin/main")
        git(clone, "merge", "-q", "--no-ff", f"origin/{branch}", "-m", f"Merge {branch}")
        steps = yaml.safe_load((clone / WORKFLOW).read_text())["jobs"]["config"]["steps"]
        ran = []
        for step in steps:
            if "run" not in step or step["run"].startswith("pip install"):
                continue
            assert step.get("if", "github.event_name == 'pull_request'") == \
                "github.event_name == 'pull_request'", step
            done = shell(clone, step["run"])
            ran.append((step["run"], done))
            if done.returncode:
                break
        return ran


@pytest.fixture
def registry() -> Iterator[LocalRegistry]:
    served = LocalRegistry().start()
    yield served
    served.stop()


def failures(ran: list[tuple[str, subprocess.CompletedProcess[str]]]) -> list[str]:
    return [f"{command}: {done.stderr}" for command, done in ran if done.returncode]


SNAPSHOTS = ("pytest -c /dev/null --rootdir . --noconftest -p magcfg -p syrupy "
             "--snapshot-update ./magcfg.yaml")
"""The update of the snapshot tests the workflow's comment gives."""


def test_a_change_goes_from_a_pull_request_to_a_service_that_follows_the_registry(
        tmp_path: Path, registry: LocalRegistry) -> None:
    """The loop as the docs give it, on a project ``init`` made, with snapshot tests: a
    pull request that edits dev's layer, its promotion to prod, each passing the
    workflow's gate on GitHub's merge; CI on main signing, verifying and publishing to
    the deploy branch and a registry (docs/signing.md, docs/delivery.md); a service
    following the registry's tag reloads the promoted value."""
    loop = Loop(tmp_path)
    keys = loop.trusted_keys(tmp_path / "keys")
    schema = loop.work / "schemas/config.schema.json"
    document = json.loads(schema.read_text())
    document["properties"]["app"]["properties"]["log_level"]["x-magcfg-reload"] = "hot"
    schema.write_text(json.dumps(document, indent=2) + "\n")
    assert loop.magcfg("build", "-q").returncode == 0
    assert shell(loop.work, SNAPSHOTS).returncode == 0
    loop.commit("snapshot tests, CI's key, hot log level")
    git(loop.work, "push", "-q", "origin", "main")
    target = f"oci://{registry.host}/acme/config:prod"

    def ci_on_main() -> None:
        loop.runs += 1
        clone = tmp_path / f"ci-{loop.runs}"
        git(tmp_path, "clone", "-q", "--depth", "1", f"file://{loop.origin}", str(clone))
        loop.identify(clone)
        for command in (f"magcfg sign --key {keys}/magcfg.key", "magcfg verify",
                        "magcfg publish --branch deploy --push origin",
                        f"magcfg publish --env prod --key {keys}/magcfg.key --insecure "
                        f"{target}"):
            done = shell(clone, command)
            assert done.returncode == 0, (command, done.stderr)

    ci_on_main()
    service = Kernel(target, [keys / "magcfg.pub"], tmp_path / "state", environment="prod",
                     insecure_registry=True, registry_interval=3600)
    reloaded: list[dict[str, Any]] = []
    service.subscribe(RELOADED, reloaded.append)
    with service:
        assert service.get("app.log_level") == "info"
        git(loop.work, "switch", "-q", "-c", "debug")
        layer = loop.work / "layers/environments/dev/app.yaml"
        layer.write_text(layer.read_text() + "  log_level: debug\n")
        assert loop.magcfg("build", "-q").returncode == 0
        assert shell(loop.work, SNAPSHOTS).returncode == 0
        loop.commit("dev: debug logs")
        assert failures(loop.gate("debug")) == []
        loop.merge("debug")
        done = loop.magcfg("promote", "dev", "prod", "--pr-body", str(tmp_path / "pr.md"))
        assert done.returncode == 0, done.stderr
        branch = git(loop.work, "branch", "--show-current").strip()
        ran = loop.gate(branch)
        assert failures(ran) == []
        assert any("2 snapshots passed." in done.stdout for _, done in ran), ran
        loop.merge(branch)
        ci_on_main()
        assert service.reload().status == "applied"
        assert service.get("app.log_level") == "debug"
    assert [(e["data"]["version"], e["data"]["changed_keys"]) for e in reloaded] == [
        (2, ["app.log_level"])]
    deployed = git(loop.origin, "show", "deploy:generated/prod/manifest.json")
    assert json.loads(deployed)["version"] == 2


def test_a_reverted_change_s_pull_request_passes_the_gate_by_the_fix_it_prints(
        tmp_path: Path) -> None:
    """A plain ``git revert`` of a merged change takes dev's version back: the gate
    refuses the pull request and says how to fix it. Its commands, run as printed at
    the repository's top, give a pull request the gate passes (the fix it gave,
    ``magcfg build`` alone, rebuilt nothing: HEAD's manifest was the older one)."""
    loop = Loop(tmp_path)
    git(loop.work, "switch", "-q", "-c", "debug")
    layer = loop.work / "layers/environments/dev/app.yaml"
    layer.write_text(layer.read_text() + "  log_level: debug\n")
    assert loop.magcfg("build", "-q").returncode == 0
    loop.commit("dev: debug logs")
    assert failures(loop.gate("debug")) == []
    loop.merge("debug")

    git(loop.work, "switch", "-q", "-c", "back")
    git(loop.work, "revert", "--no-edit", "-m", "1", "HEAD")
    ran = loop.gate("back")
    command, refused = ran[-1]
    assert (command, refused.returncode) == ('magcfg build --check --since '
                                             '"origin/$GITHUB_BASE_REF"', 1), failures(ran)
    (message,) = refused.stderr.splitlines()
    assert message.startswith("generated/dev/manifest.json: error: version 1 after 2 at "
                              "origin/main: rollback_refused; "), message
    fix = re.findall(r"`([^`]+)`", message)
    assert fix == ["git checkout origin/main -- generated/dev/", "magcfg build"], message

    git(loop.work, "fetch", "-q", "origin")
    for command in fix:
        done = shell(loop.work, command)
        assert done.returncode == 0, done.stderr
    loop.commit("dev: info logs again, as a newer version")
    assert failures(loop.gate("back")) == []
    assert '"version": 3' in (loop.work / "generated/dev/manifest.json").read_text()


def test_a_key_rotation_reaches_the_services_that_follow_a_registry_tag(
        tmp_path: Path, registry: LocalRegistry) -> None:
    """docs/signing.md's rotation, with prod published to a registry: CI signs with the
    new key and publishes again; a service trusting both keys takes the re-signed
    version, and one trusting the new key alone (the rotation's last step, a new pod)
    starts from the tag. The registry kept the artifact the old key signed (the
    publish added only a cosign signature beside it): no service could take the new
    signature, and after the last step every new pod failed to start."""
    loop = Loop(tmp_path)
    keys = tmp_path / "keys"
    keys.mkdir()
    old_key, old_pub = keys / "old.key", loop.work / "keys/old.pub"
    old_pub.parent.mkdir()
    for command in (["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(old_key)],
                    ["openssl", "pkey", "-in", str(old_key), "-pubout", "-out", str(old_pub)]):
        subprocess.run(command, check=True, capture_output=True, timeout=60)
    project_file = loop.work / "magcfg.yaml"
    text = project_file.read_text()
    project_file.write_text(text + "signing:\n  public_keys: [keys/old.pub]\n")
    loop.commit("trust CI's key")
    target = f"oci://{registry.host}/acme/config:prod"

    def sign_and_publish(key: Path) -> None:
        for args in (("sign", "--env", "prod", "--key", str(key)),
                     ("publish", "--env", "prod", "--key", str(key), "--insecure", target)):
            done = loop.magcfg(*args)
            assert done.returncode == 0, done.stderr

    sign_and_publish(old_key)
    new = loop.magcfg("keys", "generate", "--out", str(keys), "--name", "new")
    assert new.returncode == 0, new.stderr
    new_id = new.stdout.strip()
    (loop.work / "keys/new.pub").write_bytes((keys / "new.pub").read_bytes())
    project_file.write_text(text + "signing:\n  public_keys: [keys/old.pub, keys/new.pub]\n")

    both = Kernel(target, [old_pub, keys / "new.pub"], tmp_path / "state", environment="prod",
                  insecure_registry=True, registry_interval=3600)
    reloaded: list[dict[str, object]] = []
    both.subscribe(RELOADED, reloaded.append)
    with both:
        assert both.snapshot.key_id != new_id
        sign_and_publish(keys / "new.key")
        result = both.reload()
        assert (result.status, result.version) == ("applied", 1), result
        assert [(e["data"]["key_id"], e["data"]["changed_keys"]) for e in reloaded] == [
            (new_id, [])]
        again = loop.magcfg("publish", "--env", "prod", "--key", str(keys / "new.key"),
                            "--insecure", target)
        assert again.returncode == 0 and again.stderr.startswith("already published"), \
            again.stderr

    project_file.write_text(text + "signing:\n  public_keys: [keys/new.pub]\n")
    with Kernel(target, [keys / "new.pub"], tmp_path / "new-pod", environment="prod",
                insecure_registry=True, registry_interval=3600) as alone:
        assert (alone.version, alone.snapshot.key_id) == (1, new_id)
    checked = loop.magcfg("verify", "--artifact", target, "--env", "prod", "--public-key",
                          str(keys / "new.pub"), "--insecure-registry")
    assert checked.returncode == 0, checked.stderr


def test_an_environment_renamed_leaves_no_artifact_the_deploy_branch_keeps(
        tmp_path: Path) -> None:
    """staging renamed stage in the project file and its layers (`git mv`), its
    artifact left where it was: the gate says so and how to remove it, and once removed
    CI's publish leaves the deploy branch without it. Unsaid, every build and the gate
    passed, and the deploy branch kept the signed artifact of staging for good, which
    a controller syncing it went on applying."""
    loop = Loop(tmp_path, ("dev", "staging", "prod"))
    keys = loop.trusted_keys(tmp_path / "keys")
    loop.commit("trust CI's key")
    git(loop.work, "push", "-q", "origin", "main")

    def ci_on_main() -> list[str]:
        """The publish job of docs/signing.md on a clone of main: the artifacts the
        deploy branch then holds."""
        loop.runs += 1
        clone = tmp_path / f"ci-{loop.runs}"
        git(tmp_path, "clone", "-q", str(loop.origin), str(clone))
        loop.identify(clone)
        for command in (f"magcfg sign --key {keys}/magcfg.key", "magcfg verify",
                        "magcfg publish --branch deploy --push origin"):
            done = shell(clone, command)
            assert done.returncode == 0, done.stderr
        return git(loop.origin, "ls-tree", "--name-only", "deploy", "generated/").split()

    assert ci_on_main() == ["generated/dev", "generated/prod", "generated/staging"]

    git(loop.work, "switch", "-q", "-c", "rename")
    for layers in ("layers/environments", "layers/secrets"):
        git(loop.work, "mv", f"{layers}/staging", f"{layers}/stage")
    project_file = loop.work / "magcfg.yaml"
    project_file.write_text(project_file.read_text().replace("staging", "stage"))
    stage = loop.work / "layers/environments/stage/app.yaml"
    stage.write_text(stage.read_text().replace("staging", "stage"))
    assert loop.magcfg("build", "-q").returncode == 0
    loop.commit("staging is stage")
    ran = loop.gate("rename")
    assert failures(ran) == []
    (message,) = [line for line in ran[0][1].stderr.splitlines() if "warning" in line]
    assert message.startswith("generated/staging/manifest.json: warning: an artifact of "
                              "'staging', which is no environment of the project"), message
    (fix,) = re.findall(r"`([^`]+)`", message)
    done = shell(loop.work, fix)
    assert done.returncode == 0, done.stderr
    loop.commit("staging's artifact removed")
    ran = loop.gate("rename")
    assert failures(ran) == [] and "warning" not in ran[0][1].stderr, ran[0][1].stderr
    loop.merge("rename")
    assert ci_on_main() == ["generated/dev", "generated/prod", "generated/stage"]
