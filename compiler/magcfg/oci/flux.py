"""The artifact as Flux's ``OCIRepository`` consumes it (``flux push artifact`` format).

One OCI image manifest with Flux's config media type (an empty JSON object as config)
and one layer, a gzipped tar of the artifact directory's files at its root. The tar is
deterministic (sorted names, no times, owners or modes but 0644), so the same files give
the same layer; gzip output can differ between zlib versions, which is why ``publish``
recognises an artifact it already pushed by the files its layer holds, verified, not by
the layer's bytes.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import zlib
from collections.abc import Mapping

from ..artifact import MAX_FILES
from .registry import MAX_BLOB_BYTES, OCI_MANIFEST, digest_of, is_descriptor

__all__ = ["ANNOTATION_ENVIRONMENT", "ANNOTATION_KEY_ID", "ANNOTATION_MANIFEST",
           "ANNOTATION_REVISION", "ANNOTATION_SOURCE", "ANNOTATION_VERSION", "CONFIG_MEDIA_TYPE",
           "CONTENT_MEDIA_TYPE", "ArtifactFormatError", "content_layer", "image_manifest", "pack",
           "unpack"]

CONFIG_MEDIA_TYPE = "application/vnd.cncf.flux.config.v1+json"
CONTENT_MEDIA_TYPE = "application/vnd.cncf.flux.content.v1.tar+gzip"
ANNOTATION_REVISION = "org.opencontainers.image.revision"
"""The source revision, in Flux's form ``<branch>@sha1:<commit>``."""
ANNOTATION_SOURCE = "org.opencontainers.image.source"
ANNOTATION_VERSION = "org.opencontainers.image.version"
ANNOTATION_ENVIRONMENT = "dev.magcfg.environment"
ANNOTATION_MANIFEST = "dev.magcfg.manifest-digest"
"""sha256 of the artifact's ``manifest.json``, for whoever lists the repository: a claim
of whoever pushed, never what identifies the artifact (its layer, verified, does)."""
ANNOTATION_KEY_ID = "dev.magcfg.key-id"
"""The signer's key id (docs/signing.md)."""
CONFIG_BLOB = b"{}"


class ArtifactFormatError(ValueError):
    """A layer or manifest that is not a magcfg artifact in Flux's format."""


def pack(files: Mapping[str, bytes]) -> bytes:
    """The gzipped tar of ``files`` (plain names), deterministic for given files."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), compresslevel=9, mtime=0)


def unpack(layer: bytes) -> dict[str, bytes]:
    """The files of a layer: regular files with plain names at the root, nothing else
    (a link, a directory, a sparse file, ``..`` or a path is refused, never written
    anywhere)."""
    raw = _gunzip(layer, MAX_BLOB_BYTES)
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
            for info in tar:
                if not info.isreg():
                    raise ArtifactFormatError(f"{info.name!r} in the layer is not a regular file")
                if info.sparse is not None:
                    # Its holes read as zeros up to the size its header claims, which
                    # the bound on what the layer unpacks to never sees.
                    raise ArtifactFormatError(f"{info.name!r} in the layer is a sparse file, "
                                              "which no artifact is")
                name = info.name.removeprefix("./")
                if not name or "/" in name or name in (".", "..") or "\0" in name:
                    raise ArtifactFormatError(f"{info.name!r} in the layer is not a plain file name")
                if name in files:
                    raise ArtifactFormatError(f"{name!r} is twice in the layer")
                if len(files) >= MAX_FILES:
                    raise ArtifactFormatError(f"the layer has more than {MAX_FILES} files")
                handle = tar.extractfile(info)
                assert handle is not None
                files[name] = handle.read()
    except tarfile.TarError as exc:
        raise ArtifactFormatError(f"the layer is not a tar archive: {exc}") from None
    return files


def _gunzip(data: bytes, limit: int) -> bytes:
    """``data`` decompressed (gzip, one member or several in a row, as
    :func:`gzip.decompress` reads it), refused as soon as it passes ``limit`` bytes: the
    bound holds during decompression, so a small layer that would expand to gigabytes
    never does."""
    parts: list[bytes] = []
    size = 0
    rest = data
    while True:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip header and trailer
        try:
            part = inflater.decompress(rest, limit - size + 1)
        except zlib.error as exc:
            raise ArtifactFormatError(f"the layer is not gzip: {exc}") from None
        size += len(part)
        if size > limit:
            raise ArtifactFormatError(f"the layer unpacks to more than {limit} bytes")
        parts.append(part)
        if not inflater.eof:
            # Input left (unconsumed_tail) means the output bound was reached; none left
            # means the member ends early.
            if inflater.unconsumed_tail:
                raise ArtifactFormatError(f"the layer unpacks to more than {limit} bytes")
            raise ArtifactFormatError("the layer is not gzip: it ends before its last block")
        rest = inflater.unused_data
        if not rest.strip(b"\0"):  # gzip.decompress, too, ignores trailing zeros
            return b"".join(parts)


def image_manifest(layer: bytes, annotations: Mapping[str, str]) -> bytes:
    """The OCI image manifest (canonical JSON bytes) of one Flux content layer."""
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": digest_of(CONFIG_BLOB),
                   "size": len(CONFIG_BLOB)},
        "layers": [{"mediaType": CONTENT_MEDIA_TYPE, "digest": digest_of(layer),
                    "size": len(layer)}],
        "annotations": dict(sorted(annotations.items())),
    }
    return json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode("utf-8")


def content_layer(manifest: Mapping[str, object]) -> dict[str, object]:
    """The Flux content layer's descriptor of an image manifest, with a ``sha256:``
    digest and a size (checked: the manifest is a registry's answer)."""
    layers = manifest.get("layers")
    config = manifest.get("config")
    if not isinstance(config, dict) or config.get("mediaType") != CONFIG_MEDIA_TYPE:
        raise ArtifactFormatError(f"not a Flux artifact (config media type is not "
                                  f"{CONFIG_MEDIA_TYPE})")
    if not isinstance(layers, list) or len(layers) != 1 or not isinstance(layers[0], dict) \
            or layers[0].get("mediaType") != CONTENT_MEDIA_TYPE:
        raise ArtifactFormatError(f"not a Flux artifact (one {CONTENT_MEDIA_TYPE} layer)")
    layer = layers[0]
    if not is_descriptor(layer):
        raise ArtifactFormatError("the content layer's descriptor has no sha256 digest and size")
    return layer
