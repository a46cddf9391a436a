"""Reading a candidate artifact (magcfg/runtime/source.py): a ConfigMap volume's
``..data`` is followed one hop, to a real directory beside it, and nowhere else."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from magcfg.runtime.source import read_artifact, stat_signature
from magcfg.signing.keys import Ed25519PrivateKey

from .fixtures import KubeletWriter, artifact_files, base_config


def _listed(manifest: bytes, signature: bytes) -> tuple[str, ...]:
    return ("config.json",)


@pytest.fixture
def volume(tmp_path: Path) -> Path:
    KubeletWriter(tmp_path / "volume").write(
        artifact_files(base_config(1), 1, Ed25519PrivateKey.generate()))
    return tmp_path / "volume"


def test_a_volume_is_read_from_the_directory_its_data_link_names(volume: Path) -> None:
    raw = read_artifact(volume, _listed)
    assert raw.root == volume / os.readlink(volume / "..data")
    assert raw.manifest_bytes and raw.signature and raw.files["config.json"]
    assert raw.unreadable == {}


@pytest.mark.parametrize("shape", ["absolute", "parent", "sibling link"])
def test_a_data_link_out_of_the_volume_is_unreadable_and_nothing_is_read(
        volume: Path, tmp_path: Path, shape: str) -> None:
    elsewhere = tmp_path / "elsewhere"
    KubeletWriter(elsewhere).write(
        artifact_files(base_config(2), 2, Ed25519PrivateKey.generate()))
    version_dir = elsewhere / os.readlink(elsewhere / "..data")
    target = {"absolute": str(version_dir),
              "parent": f"../elsewhere/{version_dir.name}",
              "sibling link": "..hop"}[shape]
    os.symlink(version_dir, volume / "..hop")
    os.symlink(target, volume / "..data_tmp")
    os.replace(volume / "..data_tmp", volume / "..data")
    raw = read_artifact(volume, _listed)
    assert (raw.manifest_bytes, raw.signature, raw.files) == (None, None, {})
    assert list(raw.unreadable) == ["..data"]
    assert raw.unreadable["..data"].startswith(f"links to {target!r}")
    assert stat_signature(volume, ("config.json",))[0] == "..data"


@pytest.mark.parametrize("name", ["manifest.json", "manifest.json.sig"])
def test_a_file_larger_than_its_kind_allows_is_unreadable_and_not_read(
        volume: Path, name: str) -> None:
    from magcfg.artifact import size_limit

    with open(volume / name, "r+b") as fh:  # through the visible link, into ..data
        fh.truncate(3 << 30)  # sparse: read whole, it would need gigabytes of memory
    raw = read_artifact(volume, _listed)
    assert raw.unreadable == {name: f"is larger than {size_limit(name)} bytes"}
    assert raw.files == {}


def test_a_listed_file_larger_than_any_artifact_holds_is_unreadable_and_not_read(
        volume: Path) -> None:
    from magcfg.artifact import MAX_FILE_BYTES

    with open(volume / "config.json", "r+b") as fh:
        fh.truncate(3 << 30)
    raw = read_artifact(volume, _listed)
    assert raw.unreadable == {"config.json": f"is larger than {MAX_FILE_BYTES} bytes"}
    assert raw.files == {"config.json": None}


def test_a_listed_file_below_a_symlinked_directory_is_unreadable(
        volume: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "extra.json").write_bytes(b"{}\n")
    version_dir = volume / os.readlink(volume / "..data")
    (version_dir / "sub").symlink_to(outside)
    raw = read_artifact(volume, lambda manifest, signature: ("config.json", "sub/extra.json"))
    assert raw.files["sub/extra.json"] is None
    assert raw.unreadable == {
        "sub/extra.json": "is below a symbolic link (sub), not a regular file"}
    (version_dir / "sub").unlink()
    (version_dir / "sub").mkdir()
    (version_dir / "sub/extra.json").write_bytes(b"{}\n")
    raw = read_artifact(volume, lambda manifest, signature: ("config.json", "sub/extra.json"))
    assert raw.files["sub/extra.json"] == b"{}\n" and raw.unreadable == {}


def test_a_version_directory_swapped_for_a_link_mid_read_leads_nowhere_else(
        volume: Path, tmp_path: Path) -> None:
    # Whoever writes the volume replaces the version directory ..data names with a link
    # elsewhere between the read of the manifest and that of the files it lists.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "config.json").write_text('{"read": "from elsewhere"}\n')
    version = volume / os.readlink(volume / "..data")

    def swaps(manifest: bytes, signature: bytes) -> tuple[str, ...]:
        version.rename(tmp_path / "moved")
        os.symlink(elsewhere, version)
        return ("config.json",)

    raw = read_artifact(volume, swaps)
    assert raw.files["config.json"] == (tmp_path / "moved/config.json").read_bytes()


def test_a_kubelet_swap_that_overtakes_the_read_is_read_again_from_the_new_version(
        tmp_path: Path) -> None:
    # The kubelet's swap to version 2 lands between the read of version 1's manifest
    # and that of its config, and removes version 1's directory: a read that ended
    # there found no config.json, and the kernel refused a version nobody had torn.
    key = Ed25519PrivateKey.generate()
    writer = KubeletWriter(tmp_path / "volume")
    writer.write(artifact_files(base_config(1), 1, key))
    second = artifact_files(base_config(2), 2, key)
    reads: list[bytes] = []

    def swapped_meanwhile(manifest: bytes, signature: bytes) -> tuple[str, ...]:
        reads.append(manifest)
        if len(reads) == 1:
            writer.write(second)
        return ("config.json",)

    raw = read_artifact(writer.directory, swapped_meanwhile)
    assert (raw.manifest_bytes, raw.signature, raw.files, raw.unreadable) == (
        second["manifest.json"], second["manifest.json.sig"],
        {"config.json": second["config.json"]}, {})
    assert raw.root == writer.directory / os.readlink(writer.directory / "..data")


def test_a_volume_swapped_at_every_read_is_read_a_bounded_number_of_times(
        tmp_path: Path) -> None:
    from magcfg.runtime.source import SWAP_READS

    key = Ed25519PrivateKey.generate()
    writer = KubeletWriter(tmp_path / "volume")
    writer.write(artifact_files(base_config(1), 1, key))
    reads: list[bytes] = []

    def swapped_every_time(manifest: bytes, signature: bytes) -> tuple[str, ...]:
        reads.append(manifest)
        writer.write(artifact_files(base_config(len(reads) + 1), len(reads) + 1, key))
        return ("config.json",)

    raw = read_artifact(writer.directory, swapped_every_time)
    assert len(reads) == SWAP_READS
    assert raw.files == {"config.json": None}  # the last read stands, torn: refused
