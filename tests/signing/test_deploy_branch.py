"""The GitOps loop end to end, with real git: a bare origin, a developer clone, CI clones
that run the commands of `.woodpecker.yml`'s steps (read from the file, chosen by step
name), an operator's promotion, signing with a test key and publishing to the deploy
branch; then the published ref is checked with openssl, `magcfg verify` and a Kernel.

Steps are chosen by name (PR_STEPS, MAIN_STEPS) so that steps other work adds to the
pipeline and that need tools or servers this machine lacks do not run here. `setup` is
replaced by linking this checkout's .venv/ and .tools/ into each clone, and `test` (the
whole suite, which this test is part of) is left out. Each command runs as Woodpecker
runs it: `sh -e -c` in the clone, `$$` unescaped to `$`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from magcfg.runtime.kernel import Kernel

from ..conftest import REPO
from ..delivery.tools import tool
from ..oci.test_examples import example_of_kind

PR_STEPS = ("lint", "build-check", "diff")
MAIN_STEPS = ("build-check", "sign", "publish")
IDENTITY = {"GIT_AUTHOR_NAME": "Dana Dev", "GIT_AUTHOR_EMAIL": "dana@example.com",
            "GIT_COMMITTER_NAME": "Dana Dev", "GIT_COMMITTER_EMAIL": "dana@example.com",
            "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def sh(cwd: Path, command: str, env: dict[str, str] | None = None
       ) -> subprocess.CompletedProcess[str]:
    path = f"{REPO / '.tools/bin'}:{REPO / '.venv/bin'}:{os.environ['PATH']}"
    return subprocess.run(["sh", "-e", "-c", command], cwd=cwd, capture_output=True,
                          text=True, timeout=600,
                          env={**os.environ, **IDENTITY, "PATH": path, **(env or {})})


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env={**os.environ, **IDENTITY})
    assert done.returncode == 0, done.stderr
    return done.stdout


def step_commands(pipeline: dict[str, Any], names: tuple[str, ...], event: str,
                  ) -> list[tuple[str, str]]:
    """(step, command) for the named steps that run on ``event``, in pipeline order; the
    image's package installation (the `*python` anchor) is left out."""
    install = pipeline["variables"][1]
    steps = {s["name"]: s for s in pipeline["steps"]}
    assert set(names) <= set(steps), f"no step {sorted(set(names) - set(steps))}"
    out = []
    for step in pipeline["steps"]:
        if step["name"] not in names:
            continue
        whens = step.get("when") or [{"event": event}]
        events = {e for w in whens for e in ([w["event"]] if isinstance(w["event"], str)
                                             else w["event"])}
        if event in events:
            out += [(step["name"], c.replace("$$", "$")) for c in step["commands"]
                    if c != install]
    return out


def ci(origin: Path, ref: str, names: tuple[str, ...], event: str, workdir: Path,
       env: dict[str, str] | None = None) -> Path:
    """A fresh CI clone of ``ref`` that runs the named steps; every command must pass."""
    clone = workdir / f"ci-{len(list(workdir.iterdir()))}"
    git(workdir, "clone", "-q", "--branch", ref, str(origin), str(clone))
    for name in (".venv", ".tools"):
        os.symlink(REPO / name, clone / name)
    with open(clone / ".git/info/exclude", "a") as fh:
        fh.write(".venv\n.tools\n")
    pipeline = yaml.safe_load((clone / ".woodpecker.yml").read_text())
    commands = step_commands(pipeline, names, event)
    assert {s for s, _ in commands} == set(names)
    for step, command in commands:
        done = sh(clone, command, env)
        assert done.returncode == 0, f"step {step}: {command}\n{done.stdout}\n{done.stderr}"
        assert "PRIVATE KEY" not in done.stdout + done.stderr
    return clone


def test_the_gitops_loop(tmp_path: Path) -> None:
    # The clones share this checkout's .venv/: `scripts/dev` in a clone must find it
    # current, or it would reinstall the package from the clone.
    stamp = (REPO / ".venv/.magcfg-installed").read_text().strip()
    wanted = hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()[:16]
    assert stamp == wanted, "pyproject.toml changed since the venv was made: ./scripts/dev setup"
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    dev = tmp_path / "dev"
    dev.mkdir()
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                            capture_output=True, check=True).stdout.split(b"\0")
    for rel in filter(None, (p.decode() for p in listed)):
        if (REPO / rel).is_file() and not (REPO / rel).is_symlink():
            (dev / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dev / rel)

    # Set-up (runbook): CI's key pair; the public half is committed and trusted.
    keys = tmp_path / "keys"
    assert sh(dev, f"magcfg keys generate --out {keys} --name ci").returncode == 0
    (dev / "keys").mkdir()
    shutil.copy2(keys / "ci.pub", dev / "keys/ci.pub")
    with open(dev / "magcfg.yaml", "a") as fh:
        fh.write("signing:\n  public_keys: [keys/ci.pub]\n")
    git(dev, "init", "-q", "-b", "main")
    git(dev, "add", "-A")
    git(dev, "commit", "-qm", "magcfg repository")
    git(dev, "remote", "add", "origin", str(origin))
    git(dev, "push", "-q", "origin", "main")
    runs = tmp_path / "ci"
    runs.mkdir()

    # 1. A developer changes a staging value on a branch; CI's PR steps pass.
    git(dev, "checkout", "-qb", "staging-rate")
    with open(dev / "layers/environments/staging/maggate.yaml", "a") as fh:
        fh.write("  rate_limits:\n    requests_per_minute: 450\n")
    for command in ("magcfg build", "python -m pytest -q -p no:cacheprovider "
                    "-W ignore::DeprecationWarning --snapshot-update magcfg.yaml"):
        done = sh(dev, command)
        assert done.returncode == 0, done.stdout + done.stderr
    git(dev, "commit", "-qam", "staging: 450 requests per minute")
    git(dev, "push", "-q", "origin", "staging-rate")
    ci(origin, "staging-rate", PR_STEPS, "pull_request", runs)
    git(dev, "checkout", "-q", "main")
    git(dev, "merge", "-q", "--ff-only", "staging-rate")
    git(dev, "push", "-q", "origin", "main")

    # 2. The operator promotes staging to production on a branch; the PR's steps pass.
    done = sh(dev, "magcfg promote staging production --key "
                   "maggate.rate_limits.requests_per_minute --branch promote-rate")
    assert done.returncode == 0, done.stderr
    changed = git(dev, "diff", "--name-only", "main", "promote-rate").split()
    assert changed == ["__snapshots__/magcfg.ambr", "generated/production/config.json",
                       "generated/production/configmap.yaml",
                       "generated/production/manifest.json",
                       "layers/environments/production/maggate.yaml"]
    git(dev, "push", "-q", "origin", "promote-rate")
    ci(origin, "promote-rate", PR_STEPS, "pull_request", runs)
    git(dev, "checkout", "-q", "main")
    git(dev, "merge", "-q", "--ff-only", "promote-rate")
    git(dev, "push", "-q", "origin", "main")

    # 3. On main, CI signs with the key from its secret store and publishes.
    pem = (keys / "ci.key").read_text()
    ci(origin, "main", MAIN_STEPS, "push", runs, env={"MAGCFG_SIGNING_KEY": pem})
    main_head = git(origin, "rev-parse", "main").strip()
    message = git(origin, "log", "-1", "--format=%B", "deploy")
    assert "[skip ci]" in message and main_head[:12] in message
    # The deploy commit's parent is the main commit it was built from (a first publish).
    assert git(origin, "rev-list", "--parents", "-n", "1", "deploy").split()[1:] == [main_head]

    # 4. What the GitOps controller syncs (docs/delivery.md's Argo CD Application, its
    # revision of origin): complete, verified artifacts per environment.
    source = example_of_kind("Application")["spec"]["source"]
    synced = tmp_path / "synced"
    git(tmp_path, "clone", "-q", "--branch", source["targetRevision"], str(origin), str(synced))
    verified = sh(synced, "magcfg verify")
    assert verified.returncode == 0, verified.stderr
    for env in ("dev", "staging", "production"):
        art = synced / "generated" / env
        (tmp_path / f"{env}.sig").write_bytes(base64.b64decode(
            (art / "manifest.json.sig").read_text()))
        openssl = sh(art, f"openssl pkeyutl -verify -pubin -inkey {keys / 'ci.pub'} -rawin "
                          f"-in manifest.json -sigfile {tmp_path / f'{env}.sig'}")
        assert openssl.returncode == 0 and "Signature Verified Successfully" in openssl.stdout
        assert (art / "attestation.dsse.json").is_file()
        assert 'magcfg/signed: "true"' in (art / "configmap.yaml").read_text()
        kernel = Kernel(art, str(keys / "ci.pub"), environment=env, watch=False).start()
        try:
            assert kernel.version == json.loads((art / "manifest.json").read_text())["version"]
        finally:
            kernel.stop()
    # The ConfigMap Argo CD applies from the Application's path, mounted as the sidecar
    # of docs/runtime.md reads it.
    applied = subprocess.run([tool("kustomize"), "build", str(synced / source["path"])],
                             capture_output=True, text=True, timeout=120, check=True).stdout
    (configmap,) = [d for d in yaml.safe_load_all(applied) if d and d["kind"] == "ConfigMap"]
    volume = tmp_path / "volume"
    volume.mkdir()
    for name, text in configmap["data"].items():
        (volume / name).write_bytes(text.encode("utf-8"))
    watched = sh(tmp_path, f"magcfg verify --artifact {volume} --env production "
                           f"--public-key {keys / 'ci.pub'}")
    assert watched.returncode == 0, watched.stderr
    production = json.loads((synced / "generated/production/config.json").read_text())
    assert production["maggate"]["rate_limits"] == {"requests_per_minute": 450, "burst": 50}
    # Versions count commits: production went from 2 to 3 once, for the promotion.
    assert json.loads((synced / "generated/production/manifest.json").read_text())[
        "version"] == json.loads((REPO / "generated/production/manifest.json").read_text())[
        "version"] + 1

    # Publishing the same main again adds nothing.
    again = ci(origin, "main", ("sign",), "push", runs, env={"MAGCFG_SIGNING_KEY": pem})
    done = sh(again, "magcfg publish --branch deploy --push origin")
    assert done.returncode == 0 and "nothing to publish" in done.stderr, done.stderr
    # The pipeline of main's commit before the promotion, run after (a slow runner, a run
    # again): its production artifact is older than deploy's, which every running service
    # would refuse and a new pod without state serve. Nothing is published.
    deployed = git(origin, "rev-parse", "deploy").strip()
    git(dev, "push", "-q", "origin", "main~1:refs/heads/older")
    older = ci(origin, "older", ("sign",), "push", runs, env={"MAGCFG_SIGNING_KEY": pem})
    late = sh(older, "magcfg publish --branch deploy --push origin")
    held = json.loads(git(origin, "show", "deploy:generated/production/manifest.json"))
    assert late.returncode == 1, late.stderr
    assert late.stderr == (
        f"generated/production/manifest.json: error: version {held['version'] - 1} after "
        f"{held['version']} on deploy: rollback_refused; deploy holds a newer artifact, "
        "published from a later commit (this is an older one's pipeline, run after it): "
        "nothing was published [version]\n")
    assert git(origin, "rev-parse", "deploy").strip() == deployed


def _signed_and_added(tmp_path: Path) -> Path:
    """The small project in a new repository under ``tmp_path``, built, signed with a key
    made in ``tmp_path / "keys"``, and added to git's index (not committed)."""
    from magcfg.signing.keys import generate_key_pair

    from .fixtures import build_in_process, make_project, run_magcfg

    root = make_project(tmp_path / "repo")
    git(root, "init", "-q", "-b", "main")
    build_in_process(root)
    generate_key_pair(tmp_path / "keys")
    assert run_magcfg(root, "sign", "--key", str(tmp_path / "keys/magcfg.key")).returncode == 0
    git(root, "add", "-A")
    return root


def test_publish_refuses_a_committed_data_link_and_commits_nothing(tmp_path: Path) -> None:
    from magcfg.signing.keys import generate_key_pair
    from tests.conftest import failed_cleanly
    from tests.signing.fixtures import build_in_process, make_project, run_magcfg

    keys = tmp_path / "keys"
    generate_key_pair(keys)
    root = make_project(tmp_path / "repo")
    build_in_process(root)
    assert run_magcfg(root, "sign", "--key", str(keys / "magcfg.key")).returncode == 0
    prod = root / "generated/prod"
    shutil.copytree(prod, root / "pristine-prod")  # validly signed, committed
    config = prod / "config.json"
    config.write_bytes(config.read_bytes().replace(b"{", b'{"tampered": true, ', 1))
    os.symlink("../../pristine-prod", prod / "..data")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "config")
    stderr = failed_cleanly(run_magcfg(root, "publish", "--env", "prod", "--public-key",
                                       str(keys / "magcfg.pub")), 1)
    assert stderr == (
        "generated/prod/..data: error: not written by magcfg: a ..data link is read only in "
        "an artifact directory given explicitly (a ConfigMap volume)\n")
    refused = run_magcfg(root, "publish", "--env", "prod", "--public-key",
                         str(keys / "magcfg.pub"), "--format", "json")
    assert (failed_cleanly(refused, 1), json.loads(refused.stdout)) == ("", {
        "format": 1, "command": "publish", "ok": False, "target": None, "branch": "deploy",
        "artifacts": [], "diagnostics": [{
            "file": "generated/prod/..data", "line": None, "key": None, "severity": "error",
            "code": "unreadable_file", "message": stderr.split(": error: ", 1)[1].rstrip("\n")}]})
    assert git(root, "branch", "--list", "deploy") == ""


def test_a_file_git_would_commit_converted_is_not_published(tmp_path: Path) -> None:
    """``git add`` applies the clean side of ``.gitattributes``: a pull request's
    ``generated/** ident`` had the deploy branch hold ``$Id$`` where the signed
    config.json holds ``$Id: abc $``, published as verified all the same. The deploy
    branch holds the bytes verified, or nothing is published."""
    from magcfg.signing.keys import generate_key_pair

    from .fixtures import build_in_process, make_project, run_magcfg

    root = make_project(tmp_path / "repo")
    (root / "layers/base/magds.yaml").write_text('magds:\n  host: "db $Id: abc $"\n')
    git(root, "init", "-q", "-b", "main")
    build_in_process(root)
    generate_key_pair(tmp_path / "keys")
    assert run_magcfg(root, "sign", "--key", str(tmp_path / "keys/magcfg.key")).returncode == 0
    (root / ".gitattributes").write_text("generated/** ident\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "c")
    done = run_magcfg(root, "publish", "--public-key", str(tmp_path / "keys/magcfg.pub"))
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.splitlines() == [
        f"generated/prod/{name}: error: git would commit other bytes than the verified "
        "ones, converted by a .gitattributes (ident, text or eol, working-tree-encoding, or "
        "a filter), so the deploy branch would not hold the signed artifact: give "
        "generated/** `-text -ident -working-tree-encoding -filter` in the deepest "
        ".gitattributes that sets them" for name in ("config.json", "configmap.yaml")]
    assert not git(root, "branch", "--list", "deploy")
    (root / ".gitattributes").write_text("generated/** ident\ngenerated/** -ident\n")
    done = run_magcfg(root, "publish", "--public-key", str(tmp_path / "keys/magcfg.pub"))
    assert done.returncode == 0, done.stderr
    assert git(root, "show", "deploy:generated/prod/config.json").encode() == \
        (root / "generated/prod/config.json").read_bytes()


def test_a_file_the_commit_holds_as_a_symlink_is_not_published(tmp_path: Path) -> None:
    """A commit holding ``generated/prod/config.json`` as a symlink whose target is the
    signed file's text: a checkout without symlinks (``core.symlinks=false``) writes the
    file, which verifies, and ``git add`` keeps the link's mode, so the deploy branch
    held a link (its target the JSON text) where consumers read the artifact."""

    from .fixtures import run_magcfg

    root = _signed_and_added(tmp_path)
    config = root / "generated/prod/config.json"
    blob = git(root, "hash-object", "-w", str(config)).strip()
    git(root, "update-index", "--cacheinfo", f"120000,{blob},generated/prod/config.json")
    git(root, "commit", "-q", "-m", "c")
    git(root, "config", "core.symlinks", "false")
    assert not config.is_symlink() and git(root, "status", "--porcelain") == ""
    done = run_magcfg(root, "publish", "--public-key", str(tmp_path / "keys/magcfg.pub"))
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr == (
        "generated/prod/config.json: error: git would commit a symlink (mode 120000, as "
        "the commit holds it) where verified files are, so the deploy branch would not "
        "hold the signed artifact: commit the files themselves\n")
    assert not git(root, "branch", "--list", "deploy")


def test_a_directory_the_commit_holds_as_a_submodule_is_not_published(tmp_path: Path) -> None:
    """A commit holding ``generated/prod`` as a gitlink (mode 160000) over the directory
    the build writes: ``git add`` keeps the gitlink, so the deploy branch held a pointer
    to another commit (a controller that fetches submodules reads an older signed
    artifact, or any) where the verified files were."""

    from .fixtures import run_magcfg

    root = _signed_and_added(tmp_path)
    git(root, "commit", "-q", "-m", "signed")
    older = git(root, "rev-parse", "HEAD").strip()
    git(root, "rm", "-rq", "--cached", "generated/prod")
    git(root, "update-index", "--add", "--cacheinfo", f"160000,{older},generated/prod")
    git(root, "commit", "-q", "-m", "c")
    assert (root / "generated/prod/manifest.json.sig").is_file()
    done = run_magcfg(root, "publish", "--public-key", str(tmp_path / "keys/magcfg.pub"))
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr == (
        "generated/prod: error: git would commit a submodule (mode 160000, as the commit "
        "holds it) where verified files are, so the deploy branch would not hold the "
        "signed artifact: commit the files themselves\n")
    assert not git(root, "branch", "--list", "deploy")


def test_a_file_the_manifest_does_not_list_is_not_published(tmp_path: Path) -> None:
    """``git add`` takes the whole directory: a file named like the build's temporary
    files, which the build passes over, went to the deploy branch unsigned."""
    from .fixtures import run_magcfg

    root = _signed_and_added(tmp_path)
    git(root, "commit", "-q", "-m", "signed")
    (root / "generated/prod/.config.json.tmp-1").write_text("kind: Secret\n")
    done = run_magcfg(root, "publish", "--public-key", str(tmp_path / "keys/magcfg.pub"))
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith(
        "generated/prod/.config.json.tmp-1: error: is not listed in manifest.json"), done.stderr
    assert not git(root, "branch", "--list", "deploy")


def test_a_git_that_hangs_stops_publish_with_a_located_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A git command that gives no answer (a remote that hangs, a lock held) ended the
    publish with a ``TimeoutExpired`` traceback; it is an error naming the command, and
    the deploy branch is not moved."""
    import magcfg
    from magcfg.signing import deploy_branch
    from magcfg.signing.keys import load_public_key
    from tests.test_project import cut_git_on_path


    root = _signed_and_added(tmp_path)
    git(root, "commit", "-q", "-m", "c")
    cut_git_on_path(tmp_path / "bin", monkeypatch)
    monkeypatch.setenv("GIT_CUT_ONLY", "write-tree")
    monkeypatch.setenv("GIT_CUT_AT", "0")
    monkeypatch.setenv("GIT_CUT_THEN", "hang")
    monkeypatch.setattr(deploy_branch, "GIT_SECONDS", 2)
    project = magcfg.load_project(root / "magcfg.yaml")
    with pytest.raises(magcfg.BuildError) as raised:
        deploy_branch.publish(project, ["dev", "prod"],
                              [load_public_key(tmp_path / "keys/magcfg.pub")], "deploy")
    assert [d.message for d in raised.value.diagnostics] == [
        "git write-tree gave no answer in 2 s: nothing was published past it; fix "
        "what stops git, then publish again"]
    assert not git(root, "branch", "--list", "deploy")


def test_an_environment_not_published_stays_as_the_commit_holds_it(tmp_path: Path) -> None:
    """``publish --env prod`` verifies prod alone: dev, built again and not signed since
    (its signature removed with the manifest it signed), stays on the deploy branch as
    the source commit holds it, signed, where the work tree's unverified build was
    committed."""

    from .fixtures import build_in_process, run_magcfg

    root = _signed_and_added(tmp_path)
    git(root, "commit", "-q", "-m", "signed")
    (root / "layers/environments/dev/magds.yaml").write_text("magds:\n  host: elsewhere\n")
    build_in_process(root)
    assert not (root / "generated/dev/manifest.json.sig").exists()
    done = run_magcfg(root, "publish", "--env", "prod",
                      "--public-key", str(tmp_path / "keys/magcfg.pub"), "-f", "json")
    assert (done.returncode, done.stderr) == (0, "")
    version = json.loads((root / "generated/prod/manifest.json").read_bytes())["version"]
    assert json.loads(done.stdout) == {
        "format": 1, "command": "publish", "ok": True, "target": None, "branch": "deploy",
        "commit": git(root, "rev-parse", "deploy").strip(),
        "source": git(root, "rev-parse", "HEAD").strip(), "remote": None,
        "artifacts": [{"environment": "prod", "directory": "generated/prod",
                       "version": version}], "diagnostics": []}
    for name in ("config.json", "manifest.json", "manifest.json.sig"):
        assert git(root, "show", f"deploy:generated/dev/{name}") == \
            git(root, "show", f"HEAD:generated/dev/{name}"), name
    assert git(root, "show", "deploy:generated/prod/config.json").encode() == \
        (root / "generated/prod/config.json").read_bytes()


def test_a_branch_tip_whose_tree_names_a_billion_paths_stops_publish_at_the_bound(
        tmp_path: Path) -> None:
    """Git stores a tree once however often it is named: eleven small objects on the
    deploy branch name ten billion paths, which publish listed whole into memory (30 GB
    in a minute and a half). The listing stops at ``MAX_TREE_PATHS``, naming the commit,
    and the branch is left as it was."""
    from magcfg.signing.deploy_branch import MAX_TREE_PATHS

    from .fixtures import run_magcfg

    root = _signed_and_added(tmp_path)
    git(root, "commit", "-q", "-m", "signed")
    blob = sh(root, "echo x | git hash-object -w --stdin").stdout.strip()
    entry = f"100644 blob {blob}"
    for _ in range(10):
        listing = "".join(f"{entry}\tn{number}\n" for number in range(10))
        entry = "040000 tree " + subprocess.run(
            ["git", "mktree"], cwd=root, input=listing, capture_output=True, text=True,
            check=True).stdout.strip()
    tree = subprocess.run(["git", "mktree"], cwd=root, capture_output=True, text=True,
                          check=True, input=git(root, "ls-tree", "HEAD") + f"{entry}\tbomb\n"
                          ).stdout.strip()
    tip = git(root, "commit-tree", "-m", "planted", tree).strip()
    git(root, "update-ref", "refs/heads/deploy", tip)
    done = run_magcfg(root, "publish", "--env", "prod",
                      "--public-key", str(tmp_path / "keys/magcfg.pub"))
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith(f"error: the tree of commit {tip} names more than "
                                  f"{MAX_TREE_PATHS} paths"), done.stderr
    assert git(root, "rev-parse", "deploy").strip() == tip


def test_an_artifact_signed_on_the_branch_is_not_replaced_by_its_unsigned_commit(
        tmp_path: Path) -> None:
    """CI signs in its workspace and commits no signature: the source commit holds each
    artifact unsigned. Two projects of one repository (one in a directory with a space)
    publishing to one deploy branch, each in its own CI run, and then one environment
    published alone: the branch keeps what it holds signed and the source unsigned, and
    verifies whole after each publish."""
    from magcfg.signing.directory import sign_artifact, verify_artifact
    from magcfg.signing.keys import generate_key_pair, load_private_key, load_public_key

    from .fixtures import build_in_process, make_project, run_magcfg

    repo = tmp_path / "repo"
    projects = [make_project(repo / "a"), make_project(repo / "team b")]
    for root in projects:
        build_in_process(root)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "two projects")
    generate_key_pair(tmp_path / "keys")
    key, pub = str(tmp_path / "keys/magcfg.key"), str(tmp_path / "keys/magcfg.pub")

    def ci(root: Path, *envs: str) -> None:
        """A CI run: sign, publish, and leave the workspace as the commit holds it."""
        for env in envs or ("dev", "prod"):
            sign_artifact(root / "generated" / env, env, load_private_key(key))
        done = run_magcfg(root, "publish", "--public-key", pub,
                          *[part for env in envs for part in ("--env", env)])
        assert done.returncode == 0, done.stderr
        git(repo, "checkout", "-q", "--", ".")
        git(repo, "clean", "-fdq")

    def deployed() -> dict[str, str]:
        shown = git(repo, "ls-tree", "-r", "--name-only", "deploy").split("\n")
        return {name: git(repo, "show", f"deploy:{name}") for name in shown
                if name.endswith("manifest.json.sig")}

    ci(projects[0])
    signed_a = deployed()
    assert sorted(signed_a) == ["a/generated/dev/manifest.json.sig",
                                "a/generated/prod/manifest.json.sig"]
    ci(projects[1])
    both = deployed()
    assert {k: v for k, v in both.items() if k.startswith("a/")} == signed_a
    assert sorted(both) == [*sorted(signed_a), "team b/generated/dev/manifest.json.sig",
                            "team b/generated/prod/manifest.json.sig"]
    (projects[0] / "layers/environments/prod/logging.yaml").write_text("logging:\n  level: error\n")
    build_in_process(projects[0])
    git(repo, "commit", "-qam", "a: prod logs errors only")
    ci(projects[0], "prod")
    after = deployed()
    assert after.keys() == both.keys()
    assert after["a/generated/prod/manifest.json.sig"] != both["a/generated/prod/manifest.json.sig"]
    assert {k: v for k, v in after.items() if "/prod/" not in k or k.startswith("team")} == {
        k: v for k, v in both.items() if "/prod/" not in k or k.startswith("team")}
    synced = tmp_path / "synced"
    git(tmp_path, "clone", "-q", "--branch", "deploy", str(repo), str(synced))
    for name in ("a", "team b"):
        for env in ("dev", "prod"):
            verify_artifact(synced / name / "generated" / env, [load_public_key(pub)],
                            environment=env)


# What each CI documents as the marker that skips the pipeline of a pushed commit:
# GitHub Actions lists its strings in lowercase; GitLab takes `[ci skip]`/`[skip ci]` in any
# capitalization; Woodpecker matches `\[(?i:ci *skip|skip *ci)\]`; Azure Pipelines takes
# `[skip ci]`, `[ci skip]`, `***NO_CI***` and more.
SKIP_MARKERS = {
    "github": lambda m: any(s in m for s in ("[skip ci]", "[ci skip]", "[no ci]",
                                              "[skip actions]", "[actions skip]")),
    "gitlab": lambda m: "[skip ci]" in m.lower() or "[ci skip]" in m.lower(),
    "woodpecker": lambda m: re.search(r"\[(?i:ci *skip|skip *ci)\]", m) is not None,
    "azure": lambda m: any(s in m.lower() for s in ("[skip ci]", "[ci skip]", "***no_ci***")),
}


def test_no_scaffolded_pipeline_runs_on_the_deploy_branch_s_commit() -> None:
    from magcfg.scaffold.init import CI_PIPELINES
    from magcfg.signing.deploy_branch import SKIP_CI

    assert all(skips(f"magcfg publish: ...\n\n{SKIP_CI}\n") for skips in SKIP_MARKERS.values())
    # Each scaffolded pipeline runs on every push, the deploy branch's included: the marker
    # is what keeps it from the deploy commit, which it skips only on the events it
    # documents it for (GitHub: push and pull_request, not pull_request_target) and with
    # no rule of the pipeline's own deciding instead.
    github = yaml.safe_load(CI_PIPELINES["github"])
    assert github[True] == ["push", "pull_request"]  # YAML 1.1 reads `on` as true
    gitlab = yaml.safe_load(CI_PIPELINES["gitlab"])
    assert "workflow" not in gitlab and all(
        not {"rules", "only", "except"} & set(job) for job in gitlab.values())
    woodpecker = yaml.safe_load(CI_PIPELINES["woodpecker"].replace("$$", "$"))
    assert "when" not in woodpecker and all("when" not in s for s in woodpecker["steps"])


def test_a_manifest_at_the_top_of_the_repository_stops_no_publish(tmp_path: Path) -> None:
    """A ``manifest.json`` and its signature at the top, committed, then the signature
    deleted: the top is no artifact directory to keep as the branch holds it (its path
    is the empty one, which git refuses as a pathspec), and publish goes on as for any
    other file of the source."""
    from magcfg.signing.directory import sign_artifact
    from magcfg.signing.keys import generate_key_pair, load_private_key

    from .fixtures import build_in_process, make_project, run_magcfg

    root = make_project(tmp_path / "repo")
    build_in_process(root)
    generate_key_pair(tmp_path / "keys")
    key, pub = str(tmp_path / "keys/magcfg.key"), str(tmp_path / "keys/magcfg.pub")
    (root / "manifest.json").write_text("{}\n")
    (root / "manifest.json.sig").write_text("not a signature\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "a manifest at the top")
    sign_artifact(root / "generated/dev", "dev", load_private_key(key))
    done = run_magcfg(root, "publish", "--env", "dev", "--public-key", pub)
    assert done.returncode == 0, done.stderr
    git(root, "checkout", "-q", "--", ".")
    git(root, "rm", "-q", "manifest.json.sig")
    git(root, "commit", "-qm", "no signature at the top")
    sign_artifact(root / "generated/dev", "dev", load_private_key(key))
    done = run_magcfg(root, "publish", "--env", "dev", "--public-key", pub)
    assert done.returncode == 0, done.stderr
    assert git(root, "ls-tree", "--name-only", "deploy", "--", "manifest.json.sig") == ""


def test_a_remote_given_as_a_url_with_its_login_is_named_without_it(tmp_path: Path) -> None:
    """``--push https://USER:TOKEN@HOST/REPO.git`` (CI's way to push with a token) is
    named without the login in what publish prints, text and JSON: CI keeps its log.
    The URL leads to a bare repository here through git's own ``insteadOf``."""
    from magcfg.signing.directory import sign_artifact
    from magcfg.signing.keys import generate_key_pair, load_private_key

    from .fixtures import build_in_process, make_project, run_magcfg

    root = make_project(tmp_path / "repo")
    build_in_process(root)
    generate_key_pair(tmp_path / "keys")
    key, pub = str(tmp_path / "keys/magcfg.key"), str(tmp_path / "keys/magcfg.pub")
    for env in ("dev", "prod"):
        sign_artifact(root / "generated" / env, env, load_private_key(key))
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "signed")
    url = "https://ci-bot:s3cretTok3n@git.example.invalid/acme/deploy.git"
    for number, fmt in enumerate(("text", "json")):
        bare = tmp_path / f"remote{number}.git"
        git(tmp_path, "init", "-q", "--bare", str(bare))
        git(root, "config", f"url.{bare}.insteadOf", url)
        done = run_magcfg(root, "publish", "--public-key", pub, "--push", url, "-f", fmt)
        assert done.returncode == 0, done.stderr
        assert "s3cretTok3n" not in done.stdout + done.stderr, (done.stdout, done.stderr)
        assert git(bare, "rev-parse", "deploy").strip() == git(root, "rev-parse", "deploy").strip()
        shown = "https://<redacted>@git.example.invalid/acme/deploy.git"
        if fmt == "json":
            assert json.loads(done.stdout)["remote"] == shown
        else:
            assert done.stderr.endswith(f" and pushed it to {shown}\n"), done.stderr
        git(root, "config", "--unset", f"url.{bare}.insteadOf")


def test_a_remote_given_as_a_url_is_published_to_again(tmp_path: Path) -> None:
    """``--push URL`` names no remote-tracking ref to fetch the branch into: each publish
    after the first builds on the tip the URL holds, fetched then, and pushes on top."""
    from magcfg.signing.directory import sign_artifact
    from magcfg.signing.keys import generate_key_pair, load_private_key

    from .fixtures import build_in_process, make_project, run_magcfg

    root = make_project(tmp_path / "repo")
    generate_key_pair(tmp_path / "keys")
    key, pub = str(tmp_path / "keys/magcfg.key"), str(tmp_path / "keys/magcfg.pub")
    git(root, "init", "-q", "-b", "main")
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    url = "https://git.example.invalid/acme/deploy.git"
    git(root, "config", f"url.{bare}.insteadOf", url)
    pushed = []
    for level in ("info", "debug"):
        (root / "layers/base/logging.yaml").write_text(f"logging:\n  level: {level}\n")
        build_in_process(root)
        for env in ("dev", "prod"):
            sign_artifact(root / "generated" / env, env, load_private_key(key))
        git(root, "add", "-A")
        git(root, "commit", "-qm", f"logs at {level}")
        done = run_magcfg(root, "publish", "--public-key", pub, "--push", url)
        assert done.returncode == 0, done.stderr
        pushed.append(git(bare, "rev-parse", "deploy").strip())
    assert git(bare, "rev-parse", "deploy^1").strip() == pushed[0]


@pytest.mark.parametrize("planted", ["another key", "changed config", "a link beside it",
                                     "more files than any artifact"])
def test_an_artifact_on_the_branch_no_trusted_key_verifies_stops_publish(
        tmp_path: Path, planted: str) -> None:
    """The deploy branch's tip holds dev signed, the source commit unsigned (CI signs
    without committing): publish keeps the branch's dev only if it verifies with the
    trusted keys. One signed by another key, one whose config was changed after signing,
    one holding a symlink beside the signed files, or more entries than any artifact
    (``MAX_FILES``, not read one by one) stops the publish, naming it, and the branch is
    left as it was."""
    from magcfg.signing.directory import sign_artifact
    from magcfg.signing.keys import generate_key_pair, load_private_key

    from .fixtures import build_in_process, make_project, run_magcfg

    root = make_project(tmp_path / "repo")
    build_in_process(root)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "unsigned, as CI commits it")
    generate_key_pair(tmp_path / "keys")
    generate_key_pair(tmp_path / "other")
    pub = str(tmp_path / "keys/magcfg.pub")
    # What a writer of the branch other than publish commits there: dev, signed.
    git(root, "checkout", "-q", "-b", "deploy")
    if planted == "another key":
        sign_artifact(root / "generated/dev", "dev",
                      load_private_key(str(tmp_path / "other/magcfg.key")))
    else:
        sign_artifact(root / "generated/dev", "dev",
                      load_private_key(str(tmp_path / "keys/magcfg.key")))
    if planted == "changed config":
        config = root / "generated/dev/config.json"
        config.write_bytes(config.read_bytes().replace(b"{", b'{"planted": 1, ', 1))
    elif planted == "a link beside it":
        os.symlink("/etc/passwd", root / "generated/dev/secrets.json")
    elif planted == "more files than any artifact":
        from magcfg.artifact import MAX_FILES

        for number in range(MAX_FILES):
            (root / f"generated/dev/planted-{number:04d}").touch()
    git(root, "add", "-A")
    git(root, "commit", "-qm", "planted")
    tip = git(root, "rev-parse", "deploy").strip()
    git(root, "checkout", "-q", "main")
    sign_artifact(root / "generated/prod", "prod",
                  load_private_key(str(tmp_path / "keys/magcfg.key")))
    done = run_magcfg(root, "publish", "--env", "prod", "--public-key", pub)
    assert done.returncode == 1, done.stdout + done.stderr
    named = {"another key": "deploy:generated/dev/manifest.json.sig: error: signature does "
             "not match", "changed config": "deploy:generated/dev/config.json: error: sha256 "
             "does not match", "a link beside it": "deploy:generated/dev/secrets.json: error: "
             "is not a plain file (mode 120000, where git writes 100644 or 100755)",
             "more files than any artifact": "deploy:generated/dev: error: holds more than "
             "1000 entries"}[planted]
    assert done.stderr.startswith(named) and "Traceback" not in done.stderr, done.stderr
    assert "only if it verifies with the trusted keys" in done.stderr
    assert git(root, "rev-parse", "deploy").strip() == tip


def test_a_git_that_cannot_start_for_a_listing_is_the_limit(tmp_path: Path) -> None:
    """Where the system starts no more processes, the git that lists a tree for publish
    does not start: that is the limit reached, which the command stops at with its one
    line, not git failing (`git ls-tree failed: Resource temporarily unavailable`)."""

    from ..conftest import python_under_limit

    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    script = f"""
from magcfg.errors import no_new_task
from magcfg.signing.deploy_branch import _git_listed
try:
    list(_git_listed({str(tmp_path)!r}, "ls-tree", "-r", "-z", "HEAD"))
except Exception as exc:
    print(type(exc).__name__, no_new_task(exc))
"""
    done = python_under_limit(script)
    assert done.stdout.split(" ")[-1] == "True\n", done.stdout + done.stderr
