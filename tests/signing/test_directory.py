"""`magcfg verify` and `magcfg sign` on hostile artifact directories, through the console
script: another environment's signed artifact, signed but malformed manifests, FIFOs and
symlinks where files belong. Each is one exact message, exit 1, no traceback, and
nothing written."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from magcfg.artifact import MAX_VERSION
from magcfg.signing.keys import generate_key_pair, load_private_key
from magcfg.signing.signatures import sign_manifest
from tests.conftest import failed_cleanly, tree_state
from tests.signing.fixtures import build_in_process, make_project, run_magcfg


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    out = tmp_path / "keys"
    generate_key_pair(out)
    return out


@pytest.fixture
def signed(tmp_path: Path, keys: Path) -> Path:
    """A built project whose dev and prod artifacts are signed."""
    root = make_project(tmp_path / "repo")
    build_in_process(root)
    done = run_magcfg(root, "sign", "--key", str(keys / "magcfg.key"))
    assert done.returncode == 0, done.stderr
    return root


def verify(root: Path, keys: Path, env: str = "prod") -> str:
    """Run `verify --env ENV`; assert it failed cleanly and left generated/ alone."""
    before = tree_state(root / "generated")
    stderr = failed_cleanly(run_magcfg(root, "verify", "--env", env, "--public-key",
                                       str(keys / "magcfg.pub")), 1)
    assert tree_state(root / "generated") == before
    return stderr


# ---------------------------------------------------------------- identity

def test_verify_refuses_another_environments_artifact(signed: Path, keys: Path) -> None:
    prod = signed / "generated/prod"
    shutil.rmtree(prod)
    shutil.copytree(signed / "generated/dev", prod)  # validly signed, by the right key
    assert verify(signed, keys) == (
        "generated/prod/manifest.json: error: is for environment 'dev', not 'prod': "
        "another environment's artifact\n")


def test_sign_refuses_another_environments_manifest(signed: Path, keys: Path) -> None:
    prod = signed / "generated/prod"
    for name in ("manifest.json", "config.json", "externalsecret.yaml", "vault-policy.hcl"):
        if (signed / "generated/dev" / name).exists():
            shutil.copy2(signed / "generated/dev" / name, prod / name)
    (prod / "manifest.json.sig").unlink()
    before = tree_state(signed / "generated")
    stderr = failed_cleanly(run_magcfg(signed, "sign", "--env", "prod", "--key",
                                       str(keys / "magcfg.key")), 1)
    assert stderr == ("generated/prod/manifest.json: error: is for environment 'dev', "
                      "not 'prod': another environment's artifact\n")
    assert tree_state(signed / "generated") == before


# ---------------------------------------------------------------- signed but malformed

def _resign(root: Path, keys: Path, manifest_text: bytes) -> None:
    prod = root / "generated/prod"
    (prod / "manifest.json").write_bytes(manifest_text)
    (prod / "manifest.json.sig").write_bytes(
        sign_manifest(manifest_text, load_private_key(keys / "magcfg.key")))


def _edited(root: Path, **changes: Any) -> bytes:
    manifest = json.loads((root / "generated/prod/manifest.json").read_bytes())
    manifest.update(changes)
    return json.dumps(manifest, indent=2).encode()


@pytest.mark.parametrize(("version", "message"), [
    ("7", "version: must be an integer, not a string"),
    (7.5, "version: must be an integer, not a number with a fraction or exponent"),
    (True, "version: must be an integer, not a boolean"),
    (None, "version: must be an integer, not null"),
    (10**30, f"version: must be from 1 to {MAX_VERSION}, not a 31-digit number"),
    (MAX_VERSION + 1, f"version: must be from 1 to {MAX_VERSION}, not {MAX_VERSION + 1}"),
])
def test_verify_refuses_a_signed_manifest_with_a_bad_version(
        signed: Path, keys: Path, version: Any, message: str) -> None:
    _resign(signed, keys, _edited(signed, version=version))
    assert verify(signed, keys) == f"generated/prod/manifest.json: error: {message}\n"


def test_verify_refuses_duplicate_keys_in_a_signed_manifest(signed: Path, keys: Path) -> None:
    text = _edited(signed).replace(b'"version": ', b'"version": 99,\n  "version": ', 1)
    _resign(signed, keys, text)
    assert verify(signed, keys) == (
        "generated/prod/manifest.json: error: the key 'version' appears twice in one object "
        "(JSON readers disagree on which one counts)\n")


def test_verify_refuses_an_unknown_field_in_a_signed_manifest(signed: Path, keys: Path) -> None:
    _resign(signed, keys, _edited(signed, trusted=True))
    assert verify(signed, keys).startswith(
        "generated/prod/manifest.json: error: trusted: is not a field of format 1 manifests")


# ---------------------------------------------------------------- not regular files

@pytest.mark.parametrize("name", ["manifest.json", "manifest.json.sig", "config.json"])
def test_a_fifo_is_refused_not_waited_on(signed: Path, keys: Path, name: str) -> None:
    path = signed / "generated/prod" / name
    path.unlink()
    os.mkfifo(path)
    assert verify(signed, keys) == (
        f"generated/prod/{name}: error: is a FIFO, not a regular file\n")


@pytest.mark.parametrize("name", ["manifest.json", "manifest.json.sig", "attestation.dsse.json",
                                  "config.json"])
def test_a_file_larger_than_its_kind_allows_is_refused_unread(
        signed: Path, keys: Path, name: str) -> None:
    from magcfg.artifact import size_limit

    limit = size_limit(name)
    with open(signed / "generated/prod" / name, "r+b") as fh:
        fh.truncate(limit + 1)  # sparse: nothing is read, so nothing is allocated
    assert verify(signed, keys) == (
        f"generated/prod/{name}: error: is larger than {limit} bytes\n")


def test_the_limits_fit_what_the_build_and_sign_write() -> None:
    from magcfg.artifact import SIGNATURE, size_limit
    from magcfg.signing.keys import Ed25519PrivateKey

    signature = sign_manifest(b"{}", Ed25519PrivateKey.generate())
    assert len(signature) == 89 and size_limit(SIGNATURE) >= 10 * len(signature)
    # The large benchmark repository's config.json is 8 MB.
    assert size_limit("config.json") >= 30 * 8 * 1024 * 1024


def test_a_symlinked_member_is_refused(signed: Path, keys: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.json"
    path = signed / "generated/prod/config.json"
    outside.write_bytes(path.read_bytes())
    path.unlink()
    path.symlink_to(outside)
    assert verify(signed, keys) == (
        "generated/prod/config.json: error: is a symbolic link, not a regular file\n")


def test_a_listed_file_below_a_symlinked_directory_is_refused(
        signed: Path, keys: Path, tmp_path: Path) -> None:
    # Signed for real, by the trusted key: the manifest lists sub/extra.json with the
    # digest of the file outside, which a checkout's planted link `sub` would reach.
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "extra.json").write_bytes(b"{}\n")
    manifest = json.loads((signed / "generated/prod/manifest.json").read_bytes())
    manifest["files"]["sub/extra.json"] = ("sha256:ca3d163bab055381827226140568f3bef7eaac187cebd"
                                           "76878e0b63e9e442356")
    _resign(signed, keys, json.dumps(manifest, indent=2).encode())
    # Made of the old manifest, and the kustomization that lists that ConfigMap.
    for old in ("attestation.dsse.json", "configmap.yaml", "kustomization.yaml"):
        (signed / "generated/prod" / old).unlink(missing_ok=True)
    (signed / "generated/prod/sub").symlink_to(outside)
    assert verify(signed, keys) == (
        "generated/prod/sub/extra.json: error: is below a symbolic link (sub), not a "
        "regular file\n")
    (signed / "generated/prod/sub").unlink()
    (signed / "generated/prod/sub").mkdir()
    (signed / "generated/prod/sub/extra.json").write_bytes(b"{}\n")
    done = run_magcfg(signed, "verify", "--env", "prod", "--public-key",
                      str(keys / "magcfg.pub"))
    assert done.returncode == 0, done.stderr  # a real directory is read


def test_a_fifo_as_the_public_key_is_refused(signed: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "trusted.pub"
    os.mkfifo(fifo)
    stderr = failed_cleanly(run_magcfg(signed, "verify", "--public-key", str(fifo)), 1)
    assert stderr == f"{fifo}: error: is a FIFO, not a key file\n"


def test_a_public_key_mounted_from_a_volume_is_followed(signed: Path, keys: Path,
                                                        tmp_path: Path) -> None:
    from tests.runtime.fixtures import KubeletWriter

    mounted = tmp_path / "mounted-keys"
    KubeletWriter(mounted).write({"magcfg.pub": (keys / "magcfg.pub").read_bytes()})
    assert (mounted / "magcfg.pub").is_symlink()
    done = run_magcfg(signed, "verify", "--public-key", str(mounted / "magcfg.pub"))
    assert done.returncode == 0, done.stderr


# ---------------------------------------------------------------- what the manifest does not list

UNLISTED = ("is not listed in manifest.json, so no signature covers it, and the artifact "
            "directory goes out as a whole (publish commits and pushes it): delete it "
            "(magcfg writes no such file here)")


@pytest.mark.parametrize("name", [".config.json.tmp-1", "extra.yaml", ".hidden"])
def test_a_file_the_manifest_does_not_list_is_refused_by_name(
        signed: Path, keys: Path, name: str) -> None:
    """Named like the build's temporary files or not, a file the manifest does not list
    passed verify, and publish carried it, unsigned, to the deploy branch."""
    (signed / "generated/prod" / name).write_text("kind: Secret\n")
    assert verify(signed, keys) == f"generated/prod/{name}: error: {UNLISTED}\n"


def test_a_directory_no_listed_file_is_below_is_refused_by_name(
        signed: Path, keys: Path) -> None:
    (signed / "generated/prod/extra").mkdir()
    (signed / "generated/prod/extra/x.yaml").write_text("kind: Secret\n")
    assert verify(signed, keys) == f"generated/prod/extra: error: {UNLISTED}\n"


@pytest.mark.parametrize("name", ["kustomization.yaml", "configmap.yaml"])
def test_a_delivery_file_that_is_not_made_of_the_signed_files_is_refused(
        signed: Path, keys: Path, name: str) -> None:
    """``kustomization.yaml`` and ``configmap.yaml`` are made of the signed files and are
    not listed: what a controller applies (a resource or a patch added to the
    kustomization) passed verify unsigned."""
    path = signed / "generated/prod" / name
    path.write_bytes(path.read_bytes() + b"  - https://example.com/more.yaml\n")
    writer = "sign" if name == "configmap.yaml" else "build"
    assert verify(signed, keys) == (
        f"generated/prod/{name}: error: is not what magcfg makes of the signed files, and "
        f"no signature covers it otherwise: run `magcfg {writer}`, which writes it from "
        "them\n")


# ---------------------------------------------------------------- ..data in the output

def _plant_data_link(signed: Path, target: str | Path) -> None:
    """generated/prod/config.json tampered, and a ``..data`` link to ``target``."""
    config = signed / "generated/prod/config.json"
    config.write_bytes(config.read_bytes().replace(b"{", b'{"tampered": true, ', 1))
    os.symlink(target, signed / "generated/prod/..data")


def test_verify_refuses_a_data_link_to_a_signed_copy_outside(
        signed: Path, keys: Path, tmp_path: Path) -> None:
    pristine = tmp_path / "pristine-prod"
    shutil.copytree(signed / "generated/prod", pristine)  # validly signed
    outside = tree_state(pristine)
    _plant_data_link(signed, pristine)
    assert verify(signed, keys) == (
        "generated/prod/..data: error: not written by magcfg: a ..data link is read only in "
        "an artifact directory given explicitly (a ConfigMap volume)\n")
    assert tree_state(pristine) == outside


def test_verify_refuses_a_data_link_to_a_signed_copy_inside(signed: Path, keys: Path) -> None:
    shutil.copytree(signed / "generated/prod", signed / "generated/prod/..pristine")
    _plant_data_link(signed, "..pristine")  # the kubelet's own shape, but in the repository
    assert verify(signed, keys) == (
        "generated/prod/..data: error: not written by magcfg: a ..data link is read only in "
        "an artifact directory given explicitly (a ConfigMap volume)\n")


def test_verify_artifact_reads_a_volume_through_its_data_link(signed: Path, keys: Path,
                                                              tmp_path: Path) -> None:
    from magcfg.signing.directory import verify_artifact
    from magcfg.signing.keys import load_public_key
    from magcfg.signing.signatures import VerificationError
    from tests.runtime.fixtures import KubeletWriter

    prod = signed / "generated/prod"
    volume = tmp_path / "volume"
    files = {p.name: p.read_bytes() for p in prod.iterdir() if p.is_file()}
    KubeletWriter(volume).write(files)
    public = [load_public_key(keys / "magcfg.pub")]
    assert verify_artifact(volume, public, environment="prod", volume=True).version >= 1
    with pytest.raises(VerificationError) as info:
        verify_artifact(volume, public, environment="prod")
    assert info.value.file == f"{volume.as_posix()}/..data"
    stamp = os.readlink(volume / "..data")
    (volume / stamp / "config.json").write_bytes(b"{}\n")
    with pytest.raises(VerificationError) as info:  # names the file read, through ..data
        verify_artifact(volume, public, environment="prod", volume=True)
    assert info.value.file == f"{volume.as_posix()}/..data/config.json"
    os.symlink(prod, volume / "..elsewhere")
    os.symlink("..elsewhere", volume / "..data_tmp")
    os.replace(volume / "..data_tmp", volume / "..data")
    with pytest.raises(VerificationError) as info:
        verify_artifact(volume, public, environment="prod", volume=True)
    assert (info.value.file, info.value.reason) == (f"{volume.as_posix()}/..data",
                                                    "unreadable_file")
    assert info.value.diagnostics[0].message == (
        "links to '..elsewhere', which is a symbolic link; it must be a directory")


# ---------------------------------------------------------------- verify --artifact

def _pulled(signed: Path, tmp_path: Path) -> Path:
    """prod's artifact as a registry carries it (every file of the directory), copied
    out of the project."""
    pulled = tmp_path / "pulled prod"
    shutil.copytree(signed / "generated/prod", pulled)
    return pulled


def test_verify_artifact_checks_every_file_of_a_pulled_directory(
        signed: Path, keys: Path, tmp_path: Path) -> None:
    """``verify --artifact DIR`` verifies an artifact outside any project as a registry
    delivers it: what verify checks, and that it holds no other file and that the files
    kustomize applies and no signature covers are the ones its signed files make. Each
    refusal names the file, exit 1, and changes nothing."""
    pulled = _pulled(signed, tmp_path)
    generate_key_pair(tmp_path / "other")
    pub = str(keys / "magcfg.pub")

    def run(directory: Path, *args: str) -> Any:
        given = {"--env": "prod", "--public-key": pub, **dict(zip(args[::2], args[1::2], strict=True))}
        options = [part for option in given.items() for part in option]
        return run_magcfg(tmp_path, "verify", "--artifact", str(directory), *options)

    done = run(pulled)
    assert (done.returncode, done.stderr) == (0, f"verified {pulled}: version 1, 3 file(s), "
                                                 f"key {done.stderr.split('key ')[1]}")
    edits: list[tuple[str, Any, str]] = [
        ("config.json", lambda path: path.write_text(path.read_text() + "\n"),
         "config.json: error: sha256 does not match the signed manifest"),
        ("extra.yaml", lambda path: path.write_text("kind: Secret\n"),
         "extra.yaml: error: is not listed in manifest.json, so no signature covers it"),
        ("kustomization.yaml",
         lambda path: path.write_text(path.read_text() + "  - https://example.com/x.yaml\n"),
         "kustomization.yaml: error: is not what magcfg makes of the signed files, and no "
         "signature covers it otherwise: run `magcfg build` in the project that built it, "
         "which writes it from them"),
        ("configmap.yaml",
         lambda path: path.write_text(path.read_text().replace("magcfg-prod", "magcfg-x")),
         "configmap.yaml: error: is not what magcfg makes of the signed files"),
    ]
    for number, (name, edit, message) in enumerate(edits):
        changed = tmp_path / f"changed {number}"
        shutil.copytree(pulled, changed)
        edit(changed / name)
        before = tree_state(changed)
        assert failed_cleanly(run(changed), 1).startswith(f"{changed}/{message}"), name
        assert tree_state(changed) == before
    for args, message in [
        (("--env", "dev"), "manifest.json: error: is for environment 'prod', not 'dev': "
         "another environment's artifact"),
        (("--public-key", str(tmp_path / "other/magcfg.pub")), "manifest.json.sig: error: "
         "signature does not match the manifest under any trusted key"),
    ]:
        stderr = failed_cleanly(run(pulled, *args), 1)
        assert stderr.startswith(f"{pulled}/{message}"), stderr
    report = json.loads(run(pulled, "--env", "dev", "-f", "json").stdout)
    assert (report["ok"], report["artifacts"][0]["directory"]) == (False, str(pulled))
    assert [d["file"] for d in report["diagnostics"]] == [f"{pulled}/manifest.json"]
    # Usage errors (exit 2), the artifact named in cosign's form among them.
    for args, message in [
        (("-e", "prod"), "--artifact needs the keys you trust: pass --public-key FILE"),
        (("-k", pub), "--artifact is the artifact of one environment: pass --env once"),
        (("-e", "prod", "-e", "dev", "-k", pub),
         "--artifact is the artifact of one environment: pass --env once"),
        (("-e", "prod", "-k", pub, "--insecure-registry"),
         "--insecure-registry goes with --artifact oci://..."),
    ]:
        done = run_magcfg(tmp_path, "verify", "--artifact", str(pulled), *args)
        assert failed_cleanly(done, 2) == f"error: {message}\n", args
    done = run_magcfg(tmp_path, "verify", "--artifact", "127.0.0.1:5000/cfg:prod", "-e", "prod",
                      "-k", pub)
    assert failed_cleanly(done, 2) == (
        "error: --artifact 127.0.0.1:5000/cfg:prod: no such directory; a registry artifact "
        "is named with oci:// (oci://127.0.0.1:5000/cfg:prod), as publish names it beside "
        "cosign's form\n")


def test_verify_artifact_names_a_planted_file_without_reading_it(
        signed: Path, keys: Path, tmp_path: Path) -> None:
    """A directory handed over may hold any number of files up to the size bound each:
    ``verify --artifact`` names an unlisted one without reading it (a file past the bound,
    sparse here, would otherwise be refused as too large, and a hundred under it read
    whole into memory), and checks the signature before reading any file it lists."""
    pulled = _pulled(signed, tmp_path)
    with open(pulled / "planted.bin", "wb") as planted:
        planted.truncate(300 * 1024 * 1024)
    generate_key_pair(tmp_path / "other")
    for pub, message in [
        (keys / "magcfg.pub", "planted.bin: error: is not listed in manifest.json, so no "
         "signature covers it"),
        (tmp_path / "other/magcfg.pub", "manifest.json.sig: error: signature does not "
         "match the manifest under any trusted key"),
    ]:
        done = run_magcfg(tmp_path, "verify", "--artifact", str(pulled), "--env", "prod",
                          "--public-key", str(pub))
        stderr = failed_cleanly(done, 1)
        assert stderr.startswith(f"{pulled}/{message}"), stderr


def test_verify_artifact_reports_a_name_that_is_not_utf8_in_utf8_json(
        signed: Path, keys: Path, tmp_path: Path) -> None:
    """A file of a handed-over directory whose name is not UTF-8 is named in the JSON
    report as the text names it (``bad\\xff``): the raw byte made the report no JSON a
    CI script's reader takes."""
    import subprocess
    import sys

    pulled = _pulled(signed, tmp_path)
    (Path(os.fsdecode(os.fsencode(pulled) + b"/bad\xff"))).write_text("kind: Secret\n")
    args = ["verify", "--artifact", str(pulled), "-e", "prod", "-k", str(keys / "magcfg.pub")]
    text = failed_cleanly(run_magcfg(tmp_path, *args), 1)
    assert text.startswith(f"{pulled}/bad\\xff: error: is not listed in manifest.json")
    done = subprocess.run([sys.executable, "-m", "magcfg", *args, "-f", "json"], cwd=tmp_path,
                          capture_output=True, check=False, timeout=120)
    assert (done.returncode, done.stderr) == (1, b"")
    report = json.loads(done.stdout.decode("utf-8"))
    assert [d["file"] for d in report["diagnostics"]] == [f"{pulled}/bad\\xff"]


def test_verify_artifact_of_a_volume_refuses_a_file_beside_its_data_link(
        signed: Path, keys: Path, tmp_path: Path) -> None:
    """A directory with a ``..data`` link is read through it, as a ConfigMap volume is:
    what else the directory itself holds is what a consumer of it reads (``kustomize
    build DIR`` applies its kustomization.yaml), so anything there but the kubelet's
    links into ``..data`` and its ``..`` entries is refused by name, unread."""
    from tests.runtime.fixtures import KubeletWriter

    prod = signed / "generated/prod"
    volume = tmp_path / "volume"
    KubeletWriter(volume).write({p.name: p.read_bytes() for p in prod.iterdir() if p.is_file()})
    args = ["verify", "--artifact", str(volume), "-e", "prod", "-k", str(keys / "magcfg.pub")]
    assert run_magcfg(tmp_path, *args).returncode == 0
    planted = {
        "kustomization.yaml": lambda path: (path.unlink(), path.write_text(
            "resources:\n  - https://example.com/x.yaml\n")),
        "extra.yaml": lambda path: path.write_text("kind: Secret\n"),
        "config.json": lambda path: (path.unlink(), os.symlink("../elsewhere.json", path)),
    }
    for name, plant in planted.items():
        changed = tmp_path / f"changed {name}"
        shutil.copytree(volume, changed, symlinks=True)
        plant(changed / name)
        stderr = failed_cleanly(run_magcfg(tmp_path, *args[:2], str(changed), *args[3:]), 1)
        assert stderr.startswith(f"{changed}/{name}: error: is not a link into ..data, as the "
                                 "kubelet writes each file of a ConfigMap volume"), stderr


@pytest.mark.parametrize("form", ["project", "pulled", "volume", "volume's version"])
def test_a_directory_of_more_entries_than_any_artifact_is_refused_unlisted(
        signed: Path, keys: Path, tmp_path: Path, form: str) -> None:
    """An artifact directory holds a handful of files: one filled with more than
    ``MAX_FILES`` entries is refused, naming the directory, once that many are listed
    (a million planted ones took 1.4 s and 163 MB to list and sort before the first was
    named), in a project's output, a pulled directory, and either level of a volume."""
    from magcfg.artifact import DATA_LINK, MAX_FILES
    from tests.runtime.fixtures import KubeletWriter

    prod = signed / "generated/prod"
    if form == "project":
        filled = directory = prod
        args = ["verify", "--env", "prod"]
    elif form == "pulled":
        filled = directory = _pulled(signed, tmp_path)
        args = ["verify", "--artifact", str(directory), "--env", "prod"]
    else:
        directory = tmp_path / "volume"
        KubeletWriter(directory).write({p.name: p.read_bytes() for p in prod.iterdir()})
        filled = directory if form == "volume" else directory / os.readlink(
            directory / DATA_LINK)
        args = ["verify", "--artifact", str(directory), "--env", "prod"]
    for number in range(MAX_FILES + 1):
        (filled / f"planted-{number:04d}").touch()
    done = run_magcfg(signed, *args, "--public-key", str(keys / "magcfg.pub"))
    shown = "generated/prod" if form == "project" else str(filled)
    if form == "volume's version":
        shown = f"{directory}/{DATA_LINK}"
    assert failed_cleanly(done, 1) == (
        f"{shown}: error: holds more than {MAX_FILES} entries, more than any artifact "
        "(magcfg writes a handful): the rest are not listed, and none is read; delete what "
        "magcfg did not write\n")
