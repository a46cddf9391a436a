"""``magcfg publish``: push an environment's signed artifact to an OCI registry.

The artifact goes out in Flux's ``OCIRepository`` format (``flux``), tagged with its
manifest version (and the reference's tag, if one is given), annotated with the source
revision, and signed in cosign's format with the project's key (``cosign``). Only an
artifact that verifies with the project's trusted keys is published, and only with a
signing key the project trusts. Publishing is idempotent: each piece is pushed only if
the registry lacks it, so publishing the same artifact again creates nothing.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..artifact import MANIFEST, SIGNATURE
from ..durable import git_env, real_directory
from ..errors import Diagnostic, MagcfgError, UsageError, no_new_task
from ..project import Project, project_option
from ..secrets.redaction import login_dropped
from ..signing.directory import verify_artifact
from ..signing.keys import key_id
from ..signing.signatures import VerificationError, VerifiedArtifact, verify_files
from ..signing.trust import project_public_keys
from ..signing.versions import SuccessionError, check_succession
from . import cosign, flux
from .reference import Reference
from .registry import OCI_MANIFEST, Manifest, Registry, digest_of, is_descriptor

__all__ = ["PublishError", "Published", "publish", "source_revision"]


class PublishError(MagcfgError):
    """The artifact may not be published (untrusted key, a version already published
    with other content)."""


@dataclass(frozen=True)
class Published:
    """Where the artifact is (``reference`` carries the digest) and what was pushed
    (empty when everything was already there)."""

    reference: Reference
    version: int
    key_id: str
    revision: str
    pushed: tuple[str, ...] = field(default=())
    rebuilt: bool = False
    """The registry holds this version with the same files under another manifest, which
    differs only in what the build read (a layer's comment, a reload policy): that
    changes no version (docs/versioning.md), so there is nothing new to publish."""

    @property
    def cosign_form(self) -> str:
        """``HOST/REPO@sha256:...``: the digest as cosign, crane, oras and docker take it
        (no scheme)."""
        return f"{self.reference.name}@{self.reference.digest}"

    @property
    def pinned(self) -> Reference:
        """``oci://HOST/REPO@sha256:...``: this version only, for watch and the Kernel."""
        ref = self.reference
        return Reference(ref.host, ref.repository, None, ref.digest)

    @property
    def follow(self) -> Reference | None:
        """``oci://HOST/REPO:TAG``: the tag a deployment follows, each version published
        to it; None for the version's own tag alone, which is published once and never
        moves."""
        ref = self.reference
        if ref.tag is None or ref.tag == str(self.version):
            return None
        return Reference(ref.host, ref.repository, ref.tag)


def source_revision(root: Path) -> str:
    """The checkout's revision in Flux's form: ``<branch>@sha1:<commit>`` (``sha1:<commit>``
    on a detached HEAD)."""
    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                              timeout=30, check=False, env=git_env())

    try:
        commit = git("rev-parse", "--verify", "-q", "HEAD^{commit}")
        branch = git("symbolic-ref", "-q", "--short", "HEAD")
    except (OSError, subprocess.TimeoutExpired) as exc:
        if no_new_task(exc):  # git is there and could not start: --revision is no fix
            raise
        raise UsageError(f"cannot tell the source revision (git: {exc}); pass --revision") from None
    if commit.returncode != 0:
        raise UsageError(f"cannot tell the source revision: {root} is not a git checkout with "
                         "a commit; pass --revision")
    sha = "sha1:" + commit.stdout.strip()
    name = branch.stdout.strip() if branch.returncode == 0 else ""
    return f"{name}@{sha}" if name else sha


def publish(project: Project, env: str, target: Reference, private_key: Ed25519PrivateKey, *,
            insecure: bool = False, revision: str | None = None, source: str | None = None,
            registry: Registry | None = None) -> Published:
    """Verify ``generated/<env>/`` and publish it to ``target`` (see the module)."""
    if target.digest:
        raise UsageError(f"{target}: publish to a repository or a tag, not a digest")
    display = f"{project.output}/{env}"
    keys = project_public_keys(project)
    if not keys:
        raise UsageError("no trusted public key: list signing.public_keys in the project file")
    signer = key_id(private_key.public_key())
    if signer not in {key_id(k) for k in keys}:
        raise PublishError([Diagnostic(project.file, None, "signing.public_keys",
                                       f"the signing key (key id {signer}) is not one of the "
                                       "project's trusted keys: nothing signed with it would "
                                       "verify")])
    directory = real_directory(project.root, display)
    # The repository's output: verify refuses a ..data link there and every file the
    # signature does not cover, so what goes out is the bytes it verified.
    verified = verify_artifact(directory, keys, environment=env, display=display,
                               project=project_option(project))
    files = dict(sorted(verified.members.items()))
    rev = revision if revision is not None else source_revision(project.root)
    annotations = {
        flux.ANNOTATION_REVISION: rev,
        flux.ANNOTATION_VERSION: str(verified.version),
        flux.ANNOTATION_ENVIRONMENT: env,
        flux.ANNOTATION_MANIFEST: digest_of(verified.manifest_bytes),
        flux.ANNOTATION_KEY_ID: verified.key_id,
    }
    if source:
        # `git config --get remote.origin.url`, Flux's idiom for it, holds the job's
        # token in GitLab CI: the annotation goes to whoever may pull the artifact.
        annotations[flux.ANNOTATION_SOURCE] = login_dropped(source)
    client = registry or Registry(target, insecure=insecure)
    repo = target.repository
    pushed: list[str] = []
    version_tag = str(verified.version)

    if target.tag and target.tag != version_tag:
        _no_step_back(client, target, verified, keys)
    existing = client.manifest(repo, version_tag)
    rebuilt = False
    if existing is not None:
        digest, rebuilt, held_signer = _same_artifact(client, existing, annotations, target,
                                                      version_tag, verified, keys)
        held, media_type = existing.data, existing.media_type or OCI_MANIFEST
    if existing is None or held_signer != verified.key_id:
        # This version signed by another key is a key rotation's re-signing: the files
        # pulled carry the signature a service checks, so the tags move to the artifact
        # re-signed, which a service trusting both keys takes as the same version
        # (docs/signing.md), and one trusting the new key alone can pull.
        rebuilt = False
        layer = flux.pack(files)
        held, media_type = flux.image_manifest(layer, annotations), OCI_MANIFEST
        for blob in (flux.CONFIG_BLOB, layer):
            client.put_blob(repo, blob)
        digest = client.put_manifest(repo, version_tag, held)
        pushed.append(f"{target.name}:{version_tag}")
    if target.tag and target.tag != version_tag and client.manifest_digest(repo, target.tag) != digest:
        # The bytes of `digest` in hand, not asked for again: a registry that serves a
        # manifest a moment after its push (eventually consistent storage) may not yet.
        client.put_manifest(repo, target.tag, held, media_type)
        pushed.append(f"{target.name}:{target.tag}")

    signature = cosign.signature_layer(target.name, digest, private_key)
    attestation = cosign.attestation_layer(target.name, digest, verified.manifest_bytes,
                                           verified.files, private_key)
    # The attestation describes the manifest inside the artifact: a rebuilt manifest's
    # would not describe the one held.
    layers = (("sig", signature),) if rebuilt else (("sig", signature), ("att", attestation))
    for suffix, (blob, descriptor) in layers:
        if _attach(client, repo, cosign.tag_for(digest, suffix), blob, descriptor):
            pushed.append(f"{target.name}:{cosign.tag_for(digest, suffix)}")
    return Published(Reference(target.host, repo, target.tag or version_tag, digest),
                     verified.version, signer, rev, tuple(pushed), rebuilt)


def _same_artifact(client: Registry, existing: Manifest, annotations: dict[str, str],
                   target: Reference, tag: str, verified: VerifiedArtifact,
                   keys: list[Ed25519PublicKey]) -> tuple[str, bool, str]:
    """The digest of what ``tag`` holds if it is this very artifact (False), or this
    version of the same files under a manifest rebuilt since (True), with the id of the
    key whose signature over it verified; judged by what its layer holds, verified as a
    service would verify it (the trusted keys, this environment) and listing the same
    files with the same digests, as a running service sees it (docs/runtime.md, "same
    version, same config_digest"); else refuse: a version is published once. Its
    annotations are never taken for its content or its signer: whoever may push to the
    repository can copy them onto another layer, which this publish would then sign."""
    try:
        layer = flux.content_layer(existing.json())
    except (ValueError, flux.ArtifactFormatError):
        layer = {}
    held = (_held_artifact(client, target.repository, layer, keys, verified.environment)
            if layer else None)
    if held is not None and held.manifest["files"] == verified.manifest["files"]:
        # The attestation describes the manifest's bytes: they must be these.
        return existing.digest, held.manifest_bytes != verified.manifest_bytes, held.key_id
    ours = annotations[flux.ANNOTATION_MANIFEST]
    raise PublishError([Diagnostic(f"{target.name}:{tag}", None, None,
                                   f"already holds another artifact ({existing.digest}, "
                                   f"not manifest {ours}): a version is published once; "
                                   "build a new version")])


def _held_artifact(client: Registry, repo: str, layer: dict[str, object],
                   keys: list[Ed25519PublicKey], environment: str) -> VerifiedArtifact | None:
    """The artifact a content layer holds, verified as a service would verify it
    (signature, digests, environment); None when it does not verify."""
    digest, size = layer["digest"], layer["size"]
    assert isinstance(digest, str) and isinstance(size, int)  # checked by content_layer
    try:
        files = flux.unpack(client.blob(repo, digest, size))
        held = verify_files(files.get(MANIFEST) or b"", files.get(SIGNATURE) or b"", files,
                            keys, environment=environment)
    except (flux.ArtifactFormatError, VerificationError):
        return None
    return held


def _no_step_back(client: Registry, target: Reference, verified: VerifiedArtifact,
                  keys: list[Ed25519PublicKey]) -> None:
    """A ``PublishError`` when the tag a deployment follows holds a newer version of this
    environment's artifact (or its version with another config): the pipeline of an
    older commit run after a newer one's (a slow runner, a run again) would move it
    back, which every service following it refuses and a new one without state serves
    (``versions.check_succession``, as the runtime judges). What the tag holds that does
    not verify as this environment's artifact is replaced."""
    held = client.manifest(target.repository, str(target.tag))
    if held is None:
        return
    try:
        layer = flux.content_layer(held.json())
    except (ValueError, flux.ArtifactFormatError):
        return
    held_artifact = _held_artifact(client, target.repository, layer, keys,
                                   verified.environment)
    if held_artifact is None:
        return
    before = held_artifact.manifest
    shown = f"{target.name}:{target.tag}"
    try:
        check_succession(before, verified.manifest, file=shown)
    except SuccessionError as exc:
        raise PublishError([Diagnostic(
            shown, None, None,
            f"holds version {before.get('version')}, and this is version "
            f"{verified.version}: {exc.reason}; it was published from a later commit (this "
            "is an older one's pipeline, run after it): nothing was pushed")]) from None


def _attach(client: Registry, repo: str, tag: str, blob: bytes,
            descriptor: dict[str, object]) -> bool:
    """Add a signature or attestation layer to cosign's image at ``tag`` unless it is
    there; other layers (other signers) are kept. Whether anything was pushed."""
    layers: list[dict[str, object]] = []
    current = client.manifest(repo, tag)
    if current is not None:
        try:
            found = current.json().get("layers")
        except ValueError:
            found = None
        # Whoever pushed the image last wrote it: a layer that is no descriptor is no
        # other signer's signature, and the new image's config lists each one's digest.
        layers = [layer for layer in found if is_descriptor(layer)] if isinstance(found, list) else []
        if any(layer == descriptor for layer in layers):
            return False
    client.put_blob(repo, blob)
    config, manifest = cosign.image_manifest([*layers, descriptor])
    client.put_blob(repo, config)
    client.put_manifest(repo, tag, manifest)
    return True
