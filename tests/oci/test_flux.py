"""Reading a Flux layer (magcfg.oci.flux.unpack): the size bound holds while the layer
is decompressed, not after (a gzip bomb never expands in memory)."""

from __future__ import annotations

import gzip
import io
import tarfile
import tracemalloc
import zlib

import pytest

from magcfg.oci import flux


def _bomb(mebibytes: int) -> bytes:
    """A gzip stream of ``mebibytes`` MiB of zeros (about 1/1000 of that compressed)."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = b"\0" * (1 << 20)
    return b"".join(deflate.compress(zeros) for _ in range(mebibytes)) + deflate.flush()


def test_a_layer_is_refused_as_soon_as_it_unpacks_past_the_bound(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flux, "MAX_BLOB_BYTES", 1 << 20)
    layer = _bomb(128)
    tracemalloc.start()
    try:
        with pytest.raises(flux.ArtifactFormatError, match=r"unpacks to more than 1048576 bytes"):
            flux.unpack(layer)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # A few times the bound at most, never the 128 MiB the layer expands to.
    assert peak < 16 << 20, peak


def test_what_gzip_reads_unpacks_the_same() -> None:
    files = {"config.json": b'{"a": 1}\n', "manifest.json": b"{}\n"}
    layer = flux.pack(files)
    assert flux.unpack(layer) == files
    # Two members in a row and trailing zeros, as gzip.decompress reads them.
    raw = gzip.decompress(layer)
    split = gzip.compress(raw[:700], mtime=0) + gzip.compress(raw[700:], mtime=0) + b"\0" * 8
    assert flux.unpack(split) == files


@pytest.mark.parametrize("layer", [b"", b"not gzip", b"\x1f\x8b\x08\x00", None],
                         ids=["empty", "not-gzip", "truncated-header", "truncated-body"])
def test_a_layer_that_is_not_gzip_is_refused(layer: bytes | None) -> None:
    if layer is None:
        layer = flux.pack({"config.json": b"{}" * 1000})[:-12]
    with pytest.raises(flux.ArtifactFormatError, match=r"not gzip|not a tar archive"):
        flux.unpack(layer)


def _sparse(form: str, name: str, size: int) -> bytes:
    """A tar of one sparse member of ``size`` bytes, all of it a hole: a header, and no
    data at all."""
    info = tarfile.TarInfo(name)
    info.mode = 0o644
    if form == "pax":  # GNU's sparse format 0.1, in a pax header
        info.pax_headers = {"GNU.sparse.map": "0,0", "GNU.sparse.size": str(size)}
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
            tar.addfile(info)
        return raw.getvalue()
    info.type = tarfile.GNUTYPE_SPARSE  # GNU's old sparse header: its map and real size
    header = bytearray(info.tobuf(format=tarfile.GNU_FORMAT))
    header[386:410] = b"%011o\0" % 0 + b"%011o\0" % 0  # one hole from 0: no data
    header[483:495] = b"%011o\0" % size
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header) + b"\0" * 1024


@pytest.mark.parametrize("form", ["gnu", "pax"])
def test_a_sparse_member_is_refused_unexpanded(form: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # A sparse member's holes read as zeros up to the size its header claims: a layer
    # of 100 bytes held a config.json of any size, past the bound on what the layer
    # unpacks to (and publish unpacks what a followed tag holds before verifying it).
    monkeypatch.setattr(flux, "MAX_BLOB_BYTES", 1 << 20)
    layer = gzip.compress(_sparse(form, "config.json", 128 << 20), mtime=0)
    assert len(layer) < 1024
    tracemalloc.start()
    try:
        with pytest.raises(flux.ArtifactFormatError) as info:
            flux.unpack(layer)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(info.value) == "'config.json' in the layer is a sparse file, which no artifact is"
    assert peak < 16 << 20, peak


def _tar(*members: tuple[str, bytes, str]) -> bytes:
    """A gzipped tar of (kind, name, link target or data) members."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for kind, name, what in members:
            info = tarfile.TarInfo(name)
            info.type = {"file": tarfile.REGTYPE, "symlink": tarfile.SYMTYPE,
                         "hardlink": tarfile.LNKTYPE, "directory": tarfile.DIRTYPE,
                         "fifo": tarfile.FIFOTYPE, "device": tarfile.CHRTYPE}[kind]
            data = what.encode()
            if kind == "file":
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                info.linkname = what
                tar.addfile(info)
    return gzip.compress(raw.getvalue(), mtime=0)


@pytest.mark.parametrize(("members", "refusal"), [
    ([("symlink", "config.json", "../../outside")],
     "'config.json' in the layer is not a regular file"),
    ([("hardlink", "config.json", "manifest.json")], "is not a regular file"),
    ([("directory", "sub", "")], "'sub' in the layer is not a regular file"),
    ([("fifo", "config.json", "")], "is not a regular file"),
    ([("device", "config.json", "")], "is not a regular file"),
    ([("file", "../x", "{}")], "'../x' in the layer is not a plain file name"),
    ([("file", "/tmp/x", "{}")], "'/tmp/x' in the layer is not a plain file name"),
    ([("file", "sub/config.json", "{}")], "is not a plain file name"),
    ([("file", "..", "{}")], "is not a plain file name"),
    ([("file", "config.json", "{}"), ("file", "./config.json", "{}")],
     "'config.json' is twice in the layer"),
], ids=["symlink", "hardlink", "directory", "fifo", "device", "dot-dot", "absolute",
        "subdirectory", "parent", "twice"])
def test_a_layer_member_other_than_a_plain_regular_file_is_refused(
        members: list[tuple[str, str, str]], refusal: str) -> None:
    with pytest.raises(flux.ArtifactFormatError) as info:
        flux.unpack(_tar(*members))
    assert refusal in str(info.value), str(info.value)


def test_a_layer_of_more_files_than_an_artifact_holds_is_refused() -> None:
    members = [("file", f"f{i}.json", "{}") for i in range(flux.MAX_FILES + 1)]
    with pytest.raises(flux.ArtifactFormatError, match=f"more than {flux.MAX_FILES} files"):
        flux.unpack(_tar(*members))
