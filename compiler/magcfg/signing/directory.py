"""An artifact directory (``generated/<env>/``) signed and verified as a whole.

``verify_artifact`` checks the manifest's signature, every listed file's digest and the
attestation; ``verify_whole`` checks an artifact held with every file of it (pulled from
a registry) as strictly, and that it holds nothing else; ``sign_artifact`` writes the
signature, the attestation and the ConfigMap that carries the signature, each only if
its bytes change.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from ..artifact import (
    CONFIGMAP,
    DATA_LINK,
    KUSTOMIZATION,
    MAX_FILES,
    DataLinkError,
    data_root,
    size_limit,
    written_names,
)
from ..durable import (
    DirectoryUpdate,
    FileTooLarge,
    NotRegularFile,
    PathError,
    read_member,
    replace_directories,
)
from ..errors import Diagnostic, MagcfgError
from .keys import SigningError, key_id
from .signatures import (
    ATTESTATION_NAME,
    MANIFEST_NAME,
    SIGNATURE_NAME,
    VerificationError,
    VerifiedArtifact,
    check_digests,
    check_environment,
    parse_manifest,
    run_advice,
    sign_manifest,
    verify_files,
    verify_manifest,
)

__all__ = ["SignedArtifact", "read_whole", "sign_artifact", "too_many_entries", "verify_artifact",
           "verify_whole"]


def verify_artifact(env_dir: str | os.PathLike[str],
                    public_keys: Iterable[Ed25519PublicKey], *, environment: str,
                    display: str | None = None, attestation: bool = True,
                    volume: bool = False, project: str = "") -> VerifiedArtifact:
    """Verify ``env_dir``: the manifest signature, that the manifest is made for
    ``environment``, then the sha256 of every listed file.

    If ``attestation`` is true and ``attestation.dsse.json`` is present, its DSSE
    signature and subjects are checked too. ``display`` is how ``env_dir`` is named in
    errors (default: the path as given). Raises :class:`VerificationError` naming the
    offending file. Only regular files are read (a FIFO, device or symlink in the
    directory is refused, never opened or waited on). With ``volume`` (a ConfigMap
    volume given explicitly) the files are read through ``..data``, which must name a
    version directory beside it, and errors name them ``..data/<file>``; without it (the
    repository's output) a ``..data`` entry is refused (:func:`magcfg.artifact.data_root`).
    ``project`` is what the commands an error advises need to find the project
    (``project.project_option``'s).
    """
    directory, prefix = _read_from(env_dir, display, volume=volume)
    keys = list(public_keys)
    manifest_bytes = _read_member(directory, MANIFEST_NAME, prefix)
    if manifest_bytes is None:
        raise VerificationError(prefix + MANIFEST_NAME,
                                f"not found (run `magcfg build{project}`)", "missing_file")
    signature = _read_member(directory, SIGNATURE_NAME, prefix)
    if signature is None:
        raise VerificationError(prefix + SIGNATURE_NAME, "not found: the artifact is not "
                                f"signed ({run_advice('sign', project)})", "unsigned")
    kid = verify_manifest(manifest_bytes, signature, keys,
                          signature_file=prefix + SIGNATURE_NAME)
    manifest = parse_manifest(manifest_bytes, prefix + MANIFEST_NAME)
    check_environment(manifest, environment, prefix + MANIFEST_NAME)
    files = {name: _read_member(directory, name, prefix) for name in manifest["files"]}
    checked = check_digests(manifest, files, prefix)
    envelope = _read_member(directory, ATTESTATION_NAME, prefix) if attestation else None
    if envelope is not None:
        from .attestation import verify_attestation

        verify_attestation(envelope, {MANIFEST_NAME: manifest_bytes, **checked}, keys,
                           file=prefix + ATTESTATION_NAME, project=project)
    members = {MANIFEST_NAME: manifest_bytes, SIGNATURE_NAME: signature, **checked}
    if envelope is not None:
        members[ATTESTATION_NAME] = envelope
    _only_listed(directory, manifest_bytes, prefix)
    members.update(_made_of_signed({name: _read_member(directory, name, prefix)
                                    for name in (CONFIGMAP, KUSTOMIZATION)},
                                   environment, members, prefix, project))
    return VerifiedArtifact(kid, manifest, manifest_bytes, checked,
                            attestation_checked=envelope is not None, members=members)


def _read_from(env_dir: str | os.PathLike[str], display: str | None, *, volume: bool
               ) -> tuple[Path, str]:
    """The directory an artifact's files are read from (through ``..data`` for a
    ``volume``: :func:`magcfg.artifact.data_root`) and the prefix errors name them by:
    the file read, ``..data/<file>``, not the visible link beside it."""
    prefix = (display if display is not None else Path(env_dir).as_posix()).rstrip("/") + "/"
    try:
        directory = data_root(Path(env_dir), volume=volume)
    except DataLinkError as exc:
        raise VerificationError(prefix + DATA_LINK, exc.message, "unreadable_file") from None
    if directory != Path(env_dir):
        prefix += DATA_LINK + "/"
    return directory, prefix


def too_many_entries(shown: str) -> VerificationError:
    """The refusal of an artifact directory (named ``shown``) of more than
    :data:`~magcfg.artifact.MAX_FILES` entries, however it is listed."""
    return VerificationError(shown.rstrip("/") or ".", f"holds more than {MAX_FILES} "
                             "entries, more than any artifact (magcfg writes a handful): the "
                             "rest are not listed, and none is read; delete what magcfg did "
                             "not write", "unlisted_file")


def _entries(directory: Path, shown: str) -> list[os.DirEntry[str]]:
    """The entries of an artifact's ``directory`` (named ``shown`` in errors) by name,
    refused past :data:`~magcfg.artifact.MAX_FILES` before the rest is listed: a
    directory a pull request or a handed-over artifact fills costs no more than that."""
    entries: list[os.DirEntry[str]] = []
    try:
        with os.scandir(directory) as listing:
            for entry in listing:
                if len(entries) == MAX_FILES:
                    raise too_many_entries(shown)
                entries.append(entry)
    except OSError as exc:
        raise VerificationError(shown.rstrip("/") or ".", f"cannot list: {exc.strerror}",
                                "unreadable_file") from None
    return sorted(entries, key=lambda e: e.name)


_UNLISTED = ("is not listed in manifest.json, so no signature covers it, and the artifact "
             "directory goes out as a whole (publish commits and pushes it): delete it "
             "(magcfg writes no such file here)")


def _only_listed(directory: Path, manifest_bytes: bytes, prefix: str) -> None:
    """Refuse, by name, the first entry of ``directory`` (its subdirectories too) that is
    neither a file the manifest lists nor one magcfg writes beside them
    (``written_names``), nor a directory a listed file is below: a controller reads the
    kustomization's list, but a deploy branch and a registry carry the directory, and a
    consumer of either expects nothing unsigned in it. A temporary file of a build
    (``.<name>.tmp-<pid>``, which a build passes over) is one of them."""
    names = written_names(manifest_bytes)
    listed = json.loads(manifest_bytes)["files"]  # parsed and checked already
    directories = {name.rsplit("/", i)[0] for name in listed
                   for i in range(1, name.count("/") + 1)}
    todo = [""]
    while todo:
        below = todo.pop()
        for entry in _entries(directory / below, prefix + below):
            rel = f"{below}{entry.name}"
            if rel in directories and entry.is_dir(follow_symlinks=False):
                todo.append(rel + "/")
            elif rel not in listed and (below or rel not in names):
                raise VerificationError(prefix + rel, _UNLISTED, "unlisted_file")


def _made_of_signed(held: Mapping[str, bytes | None], environment: str,
                    members: dict[str, bytes], prefix: str, project: str | None = ""
                    ) -> dict[str, bytes]:
    """``configmap.yaml`` and ``kustomization.yaml`` where the artifact holds them
    (``held``), each refused by name unless it is what ``sign`` and the build make of the
    signed ``members``: no signature covers them, and a controller applies them.
    ``project``: as ``verify_whole``'s."""
    from ..delivery.configmap import configmap_files, render_configmap
    from ..delivery.kustomization import render_kustomization

    found: dict[str, bytes] = {}
    for name in (CONFIGMAP, KUSTOMIZATION):
        kept = held.get(name)
        if kept is None:
            continue
        try:
            made = (render_configmap(environment, configmap_files(members))
                    if name == CONFIGMAP
                    else render_kustomization(environment, {**members, **found}))
        except MagcfgError:  # made of no such files: the ConfigMap's own checks refused them
            made = None
        if kept != made:
            # sign writes configmap.yaml (it carries the signature), the build the other.
            writer = "sign" if name == CONFIGMAP else "build"
            raise VerificationError(prefix + name, "is not what magcfg makes of the signed "
                                    "files, and no signature covers it otherwise: "
                                    f"{run_advice(writer, project)}, which writes it from "
                                    "them", "unlisted_file")
        found[name] = kept
    return found


def verify_whole(members: Mapping[str, bytes], public_keys: Iterable[Ed25519PublicKey], *,
                 environment: str, prefix: str = "", project: str | None = None
                 ) -> VerifiedArtifact:
    """Verify an artifact held with every file of it (``read_whole`` of a directory
    pulled with ``crane export``, a registry's layer) as ``verify_artifact`` verifies a
    directory, and besides: it holds no file but the ones magcfg writes there, and its
    ``configmap.yaml`` and ``kustomization.yaml``, which no signature covers and which
    ``kustomize build`` applies, are the ones magcfg derives from the signed files.
    ``prefix`` is put before file names in errors. ``project`` is what the command an
    error advises needs to find the project that built the artifact
    (``project.project_option``'s), ``None`` for one of no project found here
    (``signatures.run_advice``)."""
    keys = list(public_keys)
    manifest_bytes = members.get(MANIFEST_NAME)
    if manifest_bytes is None:
        raise VerificationError(prefix + MANIFEST_NAME, "not found: not an artifact of magcfg",
                                "missing_file")
    signature = members.get(SIGNATURE_NAME)
    if signature is None:
        raise VerificationError(prefix + SIGNATURE_NAME,
                                "not found: the artifact is not signed "
                                f"({run_advice('sign', project)})", "unsigned")
    verified = verify_files(manifest_bytes, signature, members, keys, environment=environment,
                            prefix=prefix)
    envelope = members.get(ATTESTATION_NAME)
    if envelope is not None:
        from .attestation import verify_attestation

        verify_attestation(envelope, {MANIFEST_NAME: manifest_bytes, **verified.files}, keys,
                           file=prefix + ATTESTATION_NAME, project=project)
    names = written_names(manifest_bytes)
    for name in sorted(members):
        if name not in verified.files and name not in names:
            raise VerificationError(prefix + name, _UNLISTED, "unlisted_file")
    signed = {MANIFEST_NAME: manifest_bytes, SIGNATURE_NAME: signature, **verified.files}
    if envelope is not None:
        signed[ATTESTATION_NAME] = envelope
    signed.update(_made_of_signed(members, environment, signed, prefix, project))
    return VerifiedArtifact(verified.key_id, verified.manifest, manifest_bytes,
                            verified.files, attestation_checked=envelope is not None,
                            members=signed)


def read_whole(env_dir: str | os.PathLike[str], *, display: str | None = None
               ) -> tuple[Mapping[str, bytes], str]:
    """Every file of an artifact directory given explicitly (pulled, a ConfigMap volume:
    read through its ``..data``, beside which it holds the kubelet's links alone:
    ``_only_data_links``), for ``verify_whole``, and the prefix its errors name them by.
    Its entries are listed here and each is read when ``verify_whole`` first asks for it
    (:class:`_Entries`); anything but a regular file is refused then."""
    directory, prefix = _read_from(env_dir, display, volume=True)
    if directory != Path(env_dir):
        _only_data_links(Path(env_dir), prefix.removesuffix(DATA_LINK + "/"))
    names = [entry.name for entry in _entries(directory, prefix)]
    return _Entries(directory, names, prefix), prefix


_BESIDE_DATA = ("is not a link into ..data, as the kubelet writes each file of a ConfigMap "
                "volume: the directory is verified through ..data, so no signature covers "
                "it, and a consumer of the directory reads it (kustomize build applies its "
                "kustomization.yaml): delete it")


def _only_data_links(volume: Path, prefix: str) -> None:
    """Refuse, by name and unread, an entry of ``volume`` (a directory read through its
    ``..data``) that is not what the kubelet writes there: ``..`` entries (the link, the
    version directories, ``..data_tmp``) and, for each file, a link ``NAME ->
    ..data/NAME``. Whatever else it holds a consumer of the directory reads unverified."""
    for entry in _entries(volume, prefix):
        if entry.name.startswith(".."):
            continue
        try:
            target = os.readlink(entry.path) if entry.is_symlink() else None
        except OSError:
            target = None
        if target != f"{DATA_LINK}/{entry.name}":
            raise VerificationError(prefix + entry.name, _BESIDE_DATA, "unlisted_file")


class _Entries(Mapping[str, bytes]):
    """An artifact directory's entries by name, each read (``_read_member``) when first
    looked up and kept. ``verify_whole`` looks up the manifest and its signature, then,
    once the signature holds, the files the signed manifest names: a directory the
    operator was handed may hold any number of planted files up to the size bound each,
    which are refused by name and never read into memory."""

    def __init__(self, directory: Path, names: Iterable[str], prefix: str) -> None:
        self._directory = directory
        self._names = tuple(names)
        self._known = frozenset(self._names)
        self._prefix = prefix
        self._read: dict[str, bytes | None] = {}

    def __getitem__(self, name: str) -> bytes:
        if name not in self._known:
            raise KeyError(name)
        if name not in self._read:
            self._read[name] = _read_member(self._directory, name, self._prefix)
        data = self._read[name]
        if data is None:  # gone since it was listed
            raise KeyError(name)
        return data

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def _read_member(directory: Path, name: str, prefix: str) -> bytes | None:
    """A member's bytes (None if absent): a regular file (a FIFO would hang) inside the
    directory (a symlink is followed only while it stays inside, as a mounted
    ConfigMap's are), and no larger than its kind allows (checked before it is read)."""
    try:
        return read_member(directory, name, size_limit(name))
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (NotRegularFile, FileTooLarge) as exc:
        raise VerificationError(prefix + name, exc.message, "unreadable_file") from None
    except OSError as exc:
        raise VerificationError(prefix + name, f"cannot read: {exc.strerror}",
                                "unreadable_file") from None


# ---------------------------------------------------------------- signing an artifact

@dataclass(frozen=True)
class SignedArtifact:
    """What :func:`sign_artifact` did: the signer's key id and the files it changed."""

    key_id: str
    version: int
    written: tuple[str, ...]


def sign_artifact(env_dir: str | os.PathLike[str], env: str,
                  private_key: Ed25519PrivateKey, *, display: str | None = None,
                  attestation: bool = True, project: str = "") -> SignedArtifact:
    """Sign the built artifact in ``env_dir``.

    Refuses (naming the file) if a file the manifest lists is missing or differs from
    its digest: only what the build produced gets signed. Writes ``manifest.json.sig``,
    the DSSE attestation (unless ``attestation`` is false) and ``configmap.yaml`` with
    the new signature (unless the artifact is too large for a ConfigMap), each
    atomically and only if its bytes change. ``project``: as ``verify_artifact``'s.
    """
    from ..delivery.configmap import CONFIGMAP_NAME, configmap_files, render_configmap
    from ..delivery.emitter import fits_configmap

    directory = Path(env_dir)
    prefix = (display if display is not None else directory.as_posix()).rstrip("/") + "/"
    manifest_bytes = _read_member(directory, MANIFEST_NAME, prefix)
    if manifest_bytes is None:
        raise SigningError([Diagnostic(prefix + MANIFEST_NAME, None, None,
                                       f"not found: run `magcfg build{project}` before "
                                       f"`magcfg sign{project}`")])
    manifest = parse_manifest(manifest_bytes, prefix + MANIFEST_NAME)
    try:
        check_environment(manifest, env, prefix + MANIFEST_NAME)
    except VerificationError as exc:
        raise SigningError(exc.diagnostics) from None
    files = {name: _read_member(directory, name, prefix) for name in manifest["files"]}
    try:
        checked = check_digests(manifest, files, prefix)
    except VerificationError as exc:
        raise SigningError([Diagnostic(exc.file, None, None,
                                       "does not match manifest.json (edited after the "
                                       f"build?); run `magcfg build{project}` before "
                                       "signing")]) from None

    signature = sign_manifest(manifest_bytes, private_key)
    outputs: dict[str, bytes] = {SIGNATURE_NAME: signature}
    if attestation:
        from .attestation import sign_attestation

        outputs[ATTESTATION_NAME] = sign_attestation(manifest_bytes, checked, private_key)
    if fits_configmap(checked.get("config.json", b"")):
        members = {MANIFEST_NAME: manifest_bytes, SIGNATURE_NAME: signature, **checked}
        outputs[CONFIGMAP_NAME] = render_configmap(env, configmap_files(members))

    # The directory changes as a whole (signature, attestation and ConfigMap together),
    # like a build: the signed files are the members just checked plus the new outputs.
    members = {MANIFEST_NAME: manifest_bytes, **checked, **outputs}
    for name in (CONFIGMAP_NAME, ATTESTATION_NAME, KUSTOMIZATION):
        if name not in members and (kept := _read_member(directory, name, prefix)) is not None:
            members[name] = kept  # not made by sign, or not this time (--no-attestation): kept
    try:
        changed = replace_directories(directory.parent, [DirectoryUpdate(
            directory.name, members, written_names(manifest_bytes), display=prefix.rstrip("/"))])
    except PathError as exc:
        raise SigningError(exc.diagnostics) from None
    written = [path for path in changed if path.rpartition("/")[2] in outputs]
    return SignedArtifact(key_id(private_key.public_key()), int(manifest["version"]),
                          tuple(written))


