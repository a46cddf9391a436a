"""`magcfg publish`: a real registry, real cosign, real crane; the artifact as Flux reads it."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from magcfg.oci import cosign, flux
from magcfg.oci.reference import parse_reference
from magcfg.oci.registry import Registry
from tests.conftest import Project, failed_cleanly, tree_state
from tests.delivery.tools import tool
from tests.net.slow import serve
from tests.oci.conftest import LocalRegistry, _Forward, crane

GIT = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
       "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                          env={**os.environ, **GIT}, check=True)
    return done.stdout.strip()


@pytest.fixture
def signed(bundled: Project, tmp_path: Path) -> Project:
    """The bundled project, trusting a fresh key, built, signed and committed."""
    keys = tmp_path / "keys"
    assert bundled.run("keys", "generate", "--out", str(keys)).returncode == 0
    bundled.write("keys/magcfg.pub", (keys / "magcfg.pub").read_bytes())
    text = (bundled.root / "magcfg.yaml").read_text()
    bundled.write("magcfg.yaml", text + "signing:\n  public_keys: [keys/magcfg.pub]\n")
    assert bundled.run("build").returncode == 0
    done = bundled.run("sign", "--key", str(keys / "magcfg.key"))
    assert done.returncode == 0, done.stderr
    _git(bundled.root, "init", "-q", "-b", "main")
    _git(bundled.root, "add", "-A")
    _git(bundled.root, "commit", "-q", "-m", "config")
    return bundled


def _key(project: Project) -> str:
    return str(project.root.parent / "keys/magcfg.key")


def _publish(project: Project, target: str, *extra: str,
             env: str = "production") -> subprocess.CompletedProcess[str]:
    return project.run("publish", "--env", env, "--key", _key(project), "--insecure", target,
                       *extra)


def _cosign(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    # No network here: cosign's TUF fetch fails and it goes on with the key it was given.
    env = {**os.environ, "HOME": str(home), "TUF_ROOT": str(home / "tuf")}
    return subprocess.run([tool("cosign"), *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_publish_pushes_a_flux_artifact_tagged_with_the_version(
        signed: Project, registry: LocalRegistry) -> None:
    repo = registry.repository()
    done = _publish(signed, f"oci://{repo}:latest")
    assert done.returncode == 0, done.stderr
    manifest_json = json.loads((signed.root / "generated/production/manifest.json").read_text())
    version = str(manifest_json["version"])
    digest = done.stdout.strip().split("@")[1]
    assert done.stdout.strip() == f"{repo}@{digest}"
    tags = crane("ls", repo).split()
    assert version in tags and "latest" in tags
    assert crane("digest", f"{repo}:{version}").strip() == digest
    manifest = json.loads(crane("manifest", f"{repo}@{digest}"))
    assert manifest["config"]["mediaType"] == "application/vnd.cncf.flux.config.v1+json"
    (layer,) = manifest["layers"]
    assert layer["mediaType"] == "application/vnd.cncf.flux.content.v1.tar+gzip"
    head = _git(signed.root, "rev-parse", "HEAD")
    annotations = manifest["annotations"]
    assert annotations["org.opencontainers.image.revision"] == f"main@sha1:{head}"
    assert annotations["org.opencontainers.image.version"] == version
    blob = subprocess.run([tool("crane"), "blob", f"{repo}@{layer['digest']}"],
                          capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as tar:
        packed = {m.name: tar.extractfile(m).read() for m in tar}  # type: ignore[union-attr]
    env_dir = signed.root / "generated/production"
    assert packed == {p.name: p.read_bytes() for p in env_dir.iterdir()}
    assert {"manifest.json.sig", "kustomization.yaml", "configmap.yaml"} <= set(packed)


def test_publishing_twice_creates_nothing(signed: Project, registry: LocalRegistry) -> None:
    repo = registry.repository()
    first = _publish(signed, f"oci://{repo}:latest")
    assert first.returncode == 0, first.stderr
    before = {tag: crane("digest", f"{repo}:{tag}") for tag in crane("ls", repo).split()}
    again = _publish(signed, f"oci://{repo}:latest", "--revision", "other@sha1:" + "0" * 40)
    assert again.returncode == 0, again.stderr
    assert again.stdout == first.stdout
    assert "already published" in again.stderr and "pushed" not in again.stderr
    after = {tag: crane("digest", f"{repo}:{tag}") for tag in crane("ls", repo).split()}
    assert after == before


def test_cosign_refuses_a_retagged_or_tampered_artifact(
        signed: Project, registry: LocalRegistry, tmp_path: Path) -> None:
    repo = registry.repository()
    assert _publish(signed, f"oci://{repo}:latest").returncode == 0
    pub = str(signed.root / "keys/magcfg.pub")
    # Re-tagged: `latest` now names an artifact nobody signed (same files, one more byte).
    crane("append", "-f", "/dev/null", "-b", f"{repo}:latest", "-t", f"{repo}:latest")
    refused = _cosign("verify", "--key", pub, "--insecure-ignore-tlog", f"{repo}:latest",
                      home=tmp_path)
    assert refused.returncode != 0
    assert "no signatures found" in refused.stderr or "no matching signatures" in refused.stderr
    # Tampered: the signature image of the real digest carries a changed signature.
    version = json.loads((signed.root / "generated/production/manifest.json").read_text())["version"]
    digest = crane("digest", f"{repo}:{version}").strip()
    assert _cosign("verify", "--key", pub, "--insecure-ignore-tlog", f"{repo}@{digest}",
                   home=tmp_path).returncode == 0
    sig_tag = f"{repo}:{digest.replace(':', '-')}.sig"
    sig = json.loads(crane("manifest", sig_tag))
    annotations = sig["layers"][0]["annotations"]
    signature = annotations["dev.cosignproject.cosign/signature"]
    annotations["dev.cosignproject.cosign/signature"] = (
        signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:])
    client = Registry(parse_reference(f"oci://{sig_tag}"), insecure=True)
    client.put_manifest(client.reference.repository, str(client.reference.tag),
                        json.dumps(sig).encode())
    tampered = _cosign("verify", "--key", pub, "--insecure-ignore-tlog", f"{repo}@{digest}",
                       home=tmp_path)
    assert tampered.returncode != 0
    assert "signature" in tampered.stderr


def test_publish_refuses_an_unsigned_artifact(signed: Project, registry: LocalRegistry) -> None:
    repo = registry.repository()
    (signed.root / "generated/production/manifest.json.sig").unlink()
    before = tree_state(signed.root)
    err = failed_cleanly(_publish(signed, f"oci://{repo}:latest"), 1)
    assert err == ("generated/production/manifest.json.sig: error: not found: the artifact is "
                   "not signed (run `magcfg sign`)\n")
    assert tree_state(signed.root) == before
    assert subprocess.run([tool("crane"), "ls", repo], capture_output=True).returncode != 0


def test_publish_refuses_a_tampered_artifact(signed: Project, registry: LocalRegistry) -> None:
    repo = registry.repository()
    config = signed.root / "generated/production/config.json"
    config.write_bytes(config.read_bytes() + b"\n")
    err = failed_cleanly(_publish(signed, f"oci://{repo}"), 1)
    assert err.startswith("generated/production/config.json: error: sha256 does not match the "
                          "signed manifest (manifest sha256:")
    assert subprocess.run([tool("crane"), "ls", repo], capture_output=True).returncode != 0


def test_publish_refuses_a_file_the_manifest_does_not_list(
        signed: Project, registry: LocalRegistry) -> None:
    """The kustomization Flux applies is no listed file: one edited after signing was
    pushed, and signed in cosign's format with the rest."""
    repo = registry.repository()
    kustomization = signed.root / "generated/production/kustomization.yaml"
    kustomization.write_bytes(kustomization.read_bytes() + b"  - https://example.com/x.yaml\n")
    err = failed_cleanly(_publish(signed, f"oci://{repo}"), 1)
    assert err.startswith("generated/production/kustomization.yaml: error: is not what magcfg "
                          "makes of the signed files"), err
    assert subprocess.run([tool("crane"), "ls", repo], capture_output=True).returncode != 0


def test_publish_refuses_a_data_link_to_a_signed_copy_outside(
        signed: Project, registry: LocalRegistry, tmp_path: Path) -> None:
    repo = registry.repository()
    production = signed.root / "generated/production"
    pristine = tmp_path / "pristine"
    shutil.copytree(production, pristine)  # validly signed, outside the repository
    config = production / "config.json"
    config.write_bytes(config.read_bytes() + b"\n")
    os.symlink(pristine, production / "..data")
    before = tree_state(signed.root)
    err = failed_cleanly(_publish(signed, f"oci://{repo}"), 1)
    assert err == ("generated/production/..data: error: not written by magcfg: a ..data link "
                   "is read only in an artifact directory given explicitly (a ConfigMap "
                   "volume)\n")
    assert tree_state(signed.root) == before
    assert subprocess.run([tool("crane"), "ls", repo], capture_output=True).returncode != 0


def test_publish_refuses_a_key_the_project_does_not_trust(
        signed: Project, registry: LocalRegistry, tmp_path: Path) -> None:
    other = tmp_path / "other"
    assert signed.run("keys", "generate", "--out", str(other)).returncode == 0
    repo = registry.repository()
    done = signed.run("publish", "--env", "production", "--key", str(other / "magcfg.key"),
                      "--insecure", f"oci://{repo}")
    err = failed_cleanly(done, 1)
    assert err.startswith("magcfg.yaml: error: the signing key (key id ")
    assert err.endswith("is not one of the project's trusted keys: nothing signed with it "
                        "would verify [signing.public_keys]\n")


def test_a_published_version_is_never_replaced(signed: Project, registry: LocalRegistry) -> None:
    repo = registry.repository()
    version = json.loads((signed.root / "generated/production/manifest.json").read_text())["version"]
    # Another artifact already sits at this version's tag.
    staging = _publish(signed, f"oci://{repo}:{version}", env="staging")
    assert staging.returncode == 0, staging.stderr
    err = failed_cleanly(_publish(signed, f"oci://{repo}"), 1)
    assert err.startswith(f"{repo}:{version}: error: already holds another artifact (sha256:")
    assert err.endswith("a version is published once; build a new version\n")


@pytest.mark.parametrize(("target", "message"), [
    ("oci://registry.example.com/magcfg", "--insecure (plain HTTP) is allowed for a registry "
     "on this machine only (127.0.0.1, localhost), not registry.example.com"),
    ("https://127.0.0.1/magcfg", "'https://127.0.0.1/magcfg' is not an OCI reference: it does "
     "not start with oci:// (expected oci://REGISTRY/REPOSITORY[:TAG])"),
    ("oci://127.0.0.1:5000/Magcfg", "'oci://127.0.0.1:5000/Magcfg' is not an OCI reference: "
     "the repository must be lowercase path components (expected "
     "oci://REGISTRY/REPOSITORY[:TAG])"),
])
def test_publish_usage_errors(signed: Project, target: str, message: str) -> None:
    before = tree_state(signed.root)
    err = failed_cleanly(_publish(signed, target), 2)
    assert err == f"error: {message}\n"
    assert tree_state(signed.root) == before


def test_publish_unreachable_registry(signed: Project) -> None:
    err = failed_cleanly(_publish(signed, "oci://127.0.0.1:9/magcfg"), 1)
    assert err.startswith("oci://127.0.0.1:9/magcfg: error: registry 127.0.0.1:9 unreachable: ")


def test_a_plain_http_registry_without_insecure_says_so(signed: Project,
                                                        registry: LocalRegistry) -> None:
    # The local registry the delivery docs use answers plain HTTP: TLS's own words for
    # that ("wrong version number") do not tell what to do.
    repo = registry.repository()
    done = signed.run("publish", "--env", "production", "--key", _key(signed),
                      f"oci://{repo}:production")
    err = failed_cleanly(done, 1)
    assert err.startswith(f"oci://{repo}:production: error: registry {registry.host} "
                          "unreachable: ")
    assert err.endswith(": it answers plain HTTP, not HTTPS (plain HTTP only for a registry "
                        "on this machine: --insecure)\n")
    # Each command that talks to a registry names its own flag.
    done = signed.run("verify", "--artifact", f"oci://{repo}:production", "--env",
                      "production", "--public-key", "keys/magcfg.pub")
    err = failed_cleanly(done, 1)
    assert err.endswith(": it answers plain HTTP, not HTTPS (plain HTTP only for a registry "
                        "on this machine: --insecure-registry)\n"), err


@pytest.mark.parametrize(("args", "message"), [
    (["--env", "dev", "--env", "staging", "oci://127.0.0.1:9/magcfg"],
     "an oci:// reference publishes one environment: pass --env once"),
    (["oci://127.0.0.1:9/magcfg"],
     "an oci:// reference publishes one environment: pass --env once"),
    (["--env", "dev", "--push", "origin", "oci://127.0.0.1:9/magcfg"],
     "--branch, --push and --public-key go without an oci:// reference"),
    (["--insecure"], "--key, --revision, --source and --insecure go with an oci:// reference"),
])
def test_publish_options_belong_to_one_destination(signed: Project, args: list[str],
                                                   message: str) -> None:
    before = tree_state(signed.root)
    err = failed_cleanly(signed.run("publish", *args), 2)
    assert err == f"error: {message}\n"
    assert tree_state(signed.root) == before


def test_a_rebuild_that_changes_no_file_is_the_version_already_published(
        signed: Project, registry: LocalRegistry) -> None:
    # A comment in a layer changes the manifest (its inputs digest) but no file a service
    # loads, so the version stays (docs/versioning.md) and CI signs the new manifest: the
    # publish step that follows on main finds that version there, with the same files.
    repo = registry.repository()
    first = _publish(signed, f"oci://{repo}:production")
    assert first.returncode == 0, first.stderr
    before = {tag: crane("digest", f"{repo}:{tag}") for tag in crane("ls", repo).split()}
    layer = signed.root / "layers/environments/production/kernel.yaml"
    layer.write_text("# Reviewed for the audit.\n" + layer.read_text())
    manifest = signed.root / "generated/production/manifest.json"
    old = manifest.read_bytes()
    assert signed.run("build", "-q").returncode == 0
    assert signed.run("sign", "-q", "--key", _key(signed)).returncode == 0
    assert manifest.read_bytes() != old
    _git(signed.root, "commit", "-qam", "a comment")
    again = _publish(signed, f"oci://{repo}:production")
    assert again.returncode == 0, again.stderr
    assert again.stdout == first.stdout
    assert "already published" in again.stderr and "pushed" not in again.stderr
    (state,) = (line for line in again.stderr.splitlines()
                if line.startswith("already published"))
    assert state.endswith(": the registry holds this version's files, under a manifest "
                          "that differs only in what the build read")
    after = {tag: crane("digest", f"{repo}:{tag}") for tag in crane("ls", repo).split()}
    assert after == before


def test_a_ci_script_takes_every_reference_from_the_json_report(
        signed: Project, registry: LocalRegistry, tmp_path: Path) -> None:
    """What a CI script does with ``publish -f json``: one report on stdout, nothing on
    stderr; its cosign form goes to stock cosign (signature and attestation) and crane,
    its oci:// forms to verify and watch --artifact. Publishing again reports nothing
    pushed; a refused artifact is a report naming the file, nothing pushed."""
    import base64
    import sys

    from magcfg.signing.keys import generate_key_pair
    from tests.oci.conftest import wait_for

    repo = registry.repository()
    done = _publish(signed, f"oci://{repo}:latest", "--format", "json")
    assert (done.returncode, done.stderr) == (0, "")
    report = json.loads(done.stdout)
    version = json.loads((signed.root / "generated/production/manifest.json").read_text())[
        "version"]
    digest = crane("digest", f"{repo}:latest").strip()
    (artifact,) = report["artifacts"]
    assert {k: report[k] for k in ("format", "command", "ok", "target", "branch",
                                   "diagnostics")} == {
        "format": 1, "command": "publish", "ok": True, "target": f"oci://{repo}:latest",
        "branch": None, "diagnostics": []}
    head = _git(signed.root, "rev-parse", "HEAD")
    assert {k: v for k, v in artifact.items() if k not in ("key_id", "pushed")} == {
        "environment": "production", "directory": "generated/production",
        "version": version, "revision": f"main@sha1:{head}", "published": True,
        "rebuilt": False, "digest": digest, "reference": f"{repo}@{digest}",
        "pinned": f"oci://{repo}@{digest}", "follow": f"oci://{repo}:latest"}
    sig = f"{repo}:{digest.replace(':', '-')}"
    assert artifact["pushed"] == [f"{repo}:{version}", f"{repo}:latest", f"{sig}.sig",
                                  f"{sig}.att"]

    ref = artifact["reference"]
    pub = str(signed.root / "keys/magcfg.pub")
    verified = _cosign("verify", "--key", pub, "--insecure-ignore-tlog", ref, home=tmp_path)
    assert verified.returncode == 0, verified.stderr
    payload = json.loads(verified.stdout)[0]
    assert payload["critical"]["image"]["docker-manifest-digest"] == digest
    assert payload["critical"]["identity"]["docker-reference"] == repo
    attested = _cosign("verify-attestation", "--key", pub, "--insecure-ignore-tlog",
                       "--type", "slsaprovenance1", ref, home=tmp_path)
    assert attested.returncode == 0, attested.stderr
    statement = json.loads(base64.b64decode(json.loads(attested.stdout)["payload"]))
    assert statement["subject"] == [{"name": repo, "digest": {"sha256": ref.split(":")[-1]}}]
    assert statement["predicate"]["buildDefinition"]["externalParameters"] == {
        "environment": "production"}

    # Pulled as the docs and check-env's error give it, or named by reference: verify
    # --artifact checks it as a service would take it.
    pulled = tmp_path / "pulled"
    pulled.mkdir()
    subprocess.run(f"{tool('crane')} export {ref} - | tar -x -C {pulled}", shell=True,
                   check=True)
    for given, extra in ((str(pulled), ()), (artifact["pinned"], ("--insecure-registry",)),
                         (artifact["follow"], ("--insecure-registry",))):
        checked = signed.run("verify", "--artifact", given, "-e", "production", "-k", pub,
                             *extra)
        assert checked.returncode == 0, checked.stderr
        assert checked.stderr.startswith(f"verified {given.split(':latest')[0]}"), checked.stderr
    # Checked with a key publish did not sign with: the artifact is the file of the error,
    # in the text and the JSON report, and the keys trusted are named.
    other = generate_key_pair(tmp_path / "other")
    refusal = (f"no cosign signature by a trusted key over this digest (trusted: "
               f"{other.key_id}): it was published with another key (trust that key's "
               "public half), or is not what `magcfg publish` signed")
    untrusted = signed.run("verify", "--artifact", artifact["pinned"], "-e", "production", "-k",
                           str(tmp_path / "other/magcfg.pub"), "--insecure-registry")
    assert failed_cleanly(untrusted, 1) == f"{artifact['pinned']}: error: {refusal}\n"
    reported = signed.run("verify", "--artifact", artifact["pinned"], "-e", "production", "-k",
                          str(tmp_path / "other/magcfg.pub"), "--insecure-registry", "-f", "json")
    assert failed_cleanly(reported, 1) == ""
    assert json.loads(reported.stdout)["diagnostics"] == [{
        "file": artifact["pinned"], "line": None, "key": None, "severity": "error",
        "code": "bad_signature", "message": refusal}]
    out = tmp_path / "out"
    watcher = subprocess.Popen(
        [sys.executable, "-m", "magcfg", "watch", "--artifact", artifact["follow"], "--env",
         "production", "--public-key", pub, "--out", str(out), "--insecure-registry"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (out / "manifest.json").is_file())
    finally:
        watcher.terminate()
        watcher.communicate(timeout=30)
    assert (out / "config.json").read_bytes() == (
        signed.root / "generated/production/config.json").read_bytes()

    again = json.loads(_publish(signed, f"oci://{repo}:latest", "-f", "json").stdout)
    assert (again["artifacts"][0]["published"], again["artifacts"][0]["pushed"]) == (False, [])
    assert again["artifacts"][0]["reference"] == ref

    config = signed.root / "generated/production/config.json"
    config.write_bytes(config.read_bytes() + b"\n")
    other = registry.repository()
    refused = _publish(signed, f"oci://{other}", "-f", "json")
    failed_cleanly(refused, 1)
    assert refused.stderr == ""
    report = json.loads(refused.stdout)
    assert {k: v for k, v in report.items() if k != "diagnostics"} == {
        "format": 1, "command": "publish", "ok": False, "target": f"oci://{other}",
        "branch": None, "artifacts": []}
    assert [(d["file"], d["severity"]) for d in report["diagnostics"]] == [
        ("generated/production/config.json", "error")]
    assert subprocess.run([tool("crane"), "ls", other], capture_output=True).returncode != 0


def test_a_source_url_with_a_login_is_annotated_without_it(
        signed: Project, registry: LocalRegistry) -> None:
    """``--source "$(git config --get remote.origin.url)"``, Flux's own idiom, gives in
    GitLab CI ``https://gitlab-ci-token:TOKEN@HOST/...``: the job's token went into the
    artifact's ``org.opencontainers.image.source``, for whoever may pull it to read. The
    annotation is the repository's URL alone."""
    repo = registry.repository()
    token = "glcbt-canary-7f3a9e1d"
    done = _publish(signed, f"oci://{repo}:latest", "--source",
                    f"https://gitlab-ci-token:{token}@gitlab.example/acme/cfg.git")
    assert done.returncode == 0, done.stderr
    digest = done.stdout.strip().split("@")[1]
    manifest = crane("manifest", f"{repo}@{digest}")
    assert json.loads(manifest)["annotations"]["org.opencontainers.image.source"] == \
        "https://gitlab.example/acme/cfg.git"
    assert token not in manifest + done.stdout + done.stderr


def test_a_version_tag_holding_a_lookalike_is_never_signed(
        signed: Project, registry: LocalRegistry) -> None:
    # Whoever may push to the repository copies the published artifact's annotations
    # (its manifest digest among them) onto a layer of their own at the version's tag:
    # a publish run again took the annotation for the content and signed that layer,
    # which Flux, verifying with cosign, would then apply.
    repo = registry.repository()
    assert _publish(signed, f"oci://{repo}").returncode == 0
    version = json.loads((signed.root / "generated/production/manifest.json").read_text())["version"]
    client = Registry(parse_reference(f"oci://{repo}:{version}"), insecure=True)
    name = client.reference.repository
    held = json.loads(crane("manifest", f"{repo}:{version}"))
    layer = flux.pack({"evil.yaml": b"apiVersion: v1\nkind: Namespace\n"})
    client.put_blob(name, flux.CONFIG_BLOB)
    client.put_blob(name, layer)
    lookalike = client.put_manifest(name, str(version),
                                    flux.image_manifest(layer, held["annotations"]))
    err = failed_cleanly(_publish(signed, f"oci://{repo}"), 1)
    assert err.startswith(f"{repo}:{version}: error: already holds another artifact "
                          f"({lookalike}, not manifest sha256:"), err
    assert cosign.tag_for(lookalike, "sig") not in crane("ls", repo).split()
    assert cosign.tag_for(lookalike, "att") not in crane("ls", repo).split()


def test_a_rebuild_signed_with_the_next_key_is_published_for_that_key(
        signed: Project, registry: LocalRegistry, tmp_path: Path) -> None:
    # A key rotation (docs/signing.md) meets a rebuild that changed no file a service
    # loads: the registry's artifact of the version, signed with the old key, is
    # replaced by the one signed with the new key, which a service trusting the new
    # key alone pulls; that version's files are the same.
    repo = registry.repository()
    first = _publish(signed, f"oci://{repo}:production")
    assert first.returncode == 0, first.stderr
    new = tmp_path / "new"
    assert signed.run("keys", "generate", "--out", str(new)).returncode == 0
    signed.write("keys/new.pub", (new / "magcfg.pub").read_bytes())
    text = (signed.root / "magcfg.yaml").read_text()
    signed.write("magcfg.yaml", text.replace("public_keys: [keys/magcfg.pub]",
                                             "public_keys: [keys/magcfg.pub, keys/new.pub]"))
    layer = signed.root / "layers/environments/production/kernel.yaml"
    layer.write_text("# Reviewed for the audit.\n" + layer.read_text())
    assert signed.run("build", "-q").returncode == 0
    assert signed.run("sign", "-q", "--key", str(new / "magcfg.key")).returncode == 0
    _git(signed.root, "add", "-A")
    _git(signed.root, "commit", "-qm", "a comment, the next key")
    again = signed.run("publish", "--env", "production", "--key", str(new / "magcfg.key"),
                       "--insecure", f"oci://{repo}:production")
    assert again.returncode == 0, again.stderr
    version = json.loads((signed.root / "generated/production/manifest.json").read_text())[
        "version"]
    assert f"pushed {repo}:{version}\n" in again.stderr
    assert again.stdout != first.stdout
    checked = signed.run("verify", "--artifact", f"oci://{repo}:production", "-e", "production",
                         "-k", str(new / "magcfg.pub"), "--insecure-registry")
    assert checked.returncode == 0, checked.stderr


def test_a_git_that_cannot_start_for_the_source_revision_is_the_limit(tmp_path: Path) -> None:
    """Where the system starts no more processes, the git that tells the source
    revision does not start: that is the limit reached, which the command stops at with
    its one line, not a revision git could not tell (a usage error, exit 2, that
    advised --revision)."""

    from tests.conftest import python_under_limit

    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    script = f"""
from pathlib import Path
from magcfg.errors import no_new_task
from magcfg.oci.publish import source_revision
try:
    source_revision(Path({str(tmp_path)!r}))
except Exception as exc:
    print(type(exc).__name__, no_new_task(exc))
"""
    done = python_under_limit(script)
    assert done.stdout.split(" ")[-1] == "True\n", done.stdout + done.stderr


def test_a_version_tag_holding_its_manifest_written_otherwise_gets_no_attestation(
        signed: Project, registry: LocalRegistry) -> None:
    # The same manifest as JSON, written with other white space (another magcfg's
    # writer) and signed with the project's key: the attestation, which names the
    # manifest by its bytes' digest, would describe a manifest the artifact does not hold.
    from magcfg.artifact import ATTESTATION, MANIFEST, SIGNATURE
    from magcfg.signing.keys import load_private_key
    from magcfg.signing.signatures import sign_manifest

    repo = registry.repository()
    directory = signed.root / "generated/production"
    ours = (directory / MANIFEST).read_bytes()
    version = json.loads(ours)["version"]
    files = {p.name: p.read_bytes() for p in directory.iterdir()
             if p.name not in (MANIFEST, SIGNATURE, ATTESTATION)}
    written = json.dumps(json.loads(ours), indent=1).encode()
    assert written != ours
    files[MANIFEST] = written
    files[SIGNATURE] = sign_manifest(written, load_private_key(_key(signed)))
    client = Registry(parse_reference(f"oci://{repo}:{version}"), insecure=True)
    name = client.reference.repository
    layer = flux.pack(files)
    client.put_blob(name, flux.CONFIG_BLOB)
    client.put_blob(name, layer)
    held = client.put_manifest(name, str(version), flux.image_manifest(layer, {}))
    done = _publish(signed, f"oci://{repo}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{repo}@{held}"
    assert "differs only in what the build read" in done.stderr
    tags = crane("ls", repo).split()
    assert cosign.tag_for(held, "sig") in tags and cosign.tag_for(held, "att") not in tags


@pytest.mark.parametrize("layer", [{"mediaType": "x"}, {"digest": 7, "size": "big"}])
def test_a_signature_image_of_layers_no_descriptor_is_published_over_cleanly(
        signed: Project, registry: LocalRegistry, layer: dict[str, object]) -> None:
    # The image at cosign's tag is whoever pushed it last: its other signers' layers are
    # kept, but one with no sha256 digest and size is no layer, and made publish fail
    # with a KeyError's traceback (the new image's config lists each layer's digest).
    repo = registry.repository()
    first = _publish(signed, f"oci://{repo}")
    assert first.returncode == 0, first.stderr
    digest = first.stdout.strip().split("@")[1]
    client = Registry(parse_reference(f"oci://{repo}"), insecure=True)
    name = client.reference.repository
    config, manifest = cosign.image_manifest([])
    spoiled = json.loads(manifest)
    spoiled["layers"] = [layer]
    client.put_blob(name, config)
    client.put_manifest(name, cosign.tag_for(digest, "sig"), json.dumps(spoiled).encode())
    again = _publish(signed, f"oci://{repo}")
    assert again.returncode == 0, again.stderr
    held = json.loads(crane("manifest", f"{repo}:{cosign.tag_for(digest, 'sig')}"))
    assert [found["mediaType"] for found in held["layers"]] == [
        cosign.SIMPLE_SIGNING_MEDIA_TYPE]


class _NoManifestByDigest(_Forward):
    """A registry that serves no manifest by its digest yet (storage that is
    eventually consistent): a moment after its push, a GET of it is a 404."""

    def _any(self) -> None:
        if self.command in ("GET", "HEAD") and "/manifests/sha256:" in self.path:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super()._any()

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = _any


def test_the_followed_tag_is_pushed_from_the_manifest_in_hand(
        signed: Project, registry: LocalRegistry) -> None:
    # publish asked for the manifest it had just pushed, by its digest, to tag it again,
    # and took a 404 for an impossibility: an AssertionError's traceback.
    front = serve(type("Front", (_NoManifestByDigest,), {"upstream": registry.host}), None)
    try:
        host = f"127.0.0.1:{front.server_address[1]}"
        done = _publish(signed, f"oci://{host}/magcfg/lagging:latest")
    finally:
        front.shutdown()
        front.server_close()
    assert done.returncode == 0, done.stderr
    digest = done.stdout.strip().split("@")[1]
    assert crane("digest", f"{registry.host}/magcfg/lagging:latest").strip() == digest
