"""``oci.reference``: what names an artifact in a registry, with and without ``oci://``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from magcfg.oci.reference import Reference, bare_reference, collapsed_reference, parse_reference

DIGEST = "sha256:" + "0" * 64


@pytest.mark.parametrize(("text", "expected"), [
    (f"127.0.0.1:5000/acme/cfg@{DIGEST}", Reference("127.0.0.1:5000", "acme/cfg", None, DIGEST)),
    ("ghcr.io/acme/cfg:production", Reference("ghcr.io", "acme/cfg", "production")),
    ("localhost/cfg", Reference("localhost", "cfg")),
    (f"[::1]:5000/cfg@{DIGEST}", Reference("[::1]:5000", "cfg", None, DIGEST)),
])
def test_cosigns_form_reads_as_the_reference_it_names(text: str, expected: Reference) -> None:
    assert bare_reference(text) == expected
    assert str(bare_reference(text)) == f"oci://{text}"


@pytest.mark.parametrize("text", [
    # Directories as an artifact option is given them: no host first.
    "generated/production", "/config/live", "./generated/production", "../out", "config",
    "acme/cfg@" + DIGEST,  # docker's own hub, which magcfg does not assume
    "oci://ghcr.io/acme/cfg",  # already a reference
    "ghcr.io/Acme/cfg", "ghcr.io/acme/cfg@sha256:short",  # not one
])
def test_what_names_no_registry_is_no_reference(text: str) -> None:
    assert bare_reference(text) is None


@pytest.mark.parametrize("reference", [
    f"oci://127.0.0.1:5000/acme/cfg@{DIGEST}", "oci://ghcr.io/acme/cfg:production"])
def test_a_path_made_of_a_reference_reads_as_the_reference(reference: str) -> None:
    """``Path`` collapses ``oci://`` to ``oci:/``: what it spells is still told apart,
    for an option that takes a directory to say which form to give."""
    assert collapsed_reference(os.fspath(Path(reference))) == parse_reference(reference)
    assert collapsed_reference(reference) is None
    for directory in ("oci:", "oci:/", "oci:/host/Not-a-repository", "generated/production"):
        assert collapsed_reference(directory) is None


@pytest.mark.parametrize(("text", "shown"), [
    ("oci://bot:s3cretPass@127.0.0.1:5000/acme/cfg:prod", "oci://<redacted>@127.0.0.1:5000/acme/cfg:prod"),
    ("oci://bot:s3/cretPass@ghcr.io/acme/cfg", "oci://<redacted>@ghcr.io/acme/cfg"),
    ("oci://bot:s3@cretPass@ghcr.io/acme/cfg", "oci://<redacted>@ghcr.io/acme/cfg"),
    (f"oci://bot:s3cretPass@ghcr.io/acme/cfg@{DIGEST}", f"oci://<redacted>@{DIGEST}"),
])
def test_credentials_written_into_a_reference_are_refused_unshown(text: str, shown: str) -> None:
    """``oci://USER:PASSWORD@HOST/...``, the form of a URL with its login: the refusal
    names the reference without them (it goes to CI's log, the Kernel's events), and
    says where credentials go."""
    from magcfg.errors import UsageError

    with pytest.raises(UsageError) as info:
        parse_reference(text)
    message = info.value.diagnostics[0].message
    assert "cretPass" not in message and "s3" not in message, message
    assert message == (f"{shown!r} is not an OCI reference: it holds credentials before its "
                       "host, which go in the docker configuration (docker login), never in "
                       "a reference (expected oci://REGISTRY/REPOSITORY[:TAG])")


@pytest.mark.parametrize("tag", ["prod\u00fcction", "\u0663", "v1\u00b2"])
def test_a_tag_of_letters_or_digits_beyond_ascii_is_no_tag(tag: str) -> None:
    # Read as one, it went as far as the request, refused there as "registry ...
    # unreachable: ordinal not in range(128)".
    from magcfg.errors import UsageError

    with pytest.raises(UsageError) as info:
        parse_reference(f"oci://127.0.0.1:5000/acme/cfg:{tag}")
    assert info.value.diagnostics[0].message == (
        f"'oci://127.0.0.1:5000/acme/cfg:{tag}' is not an OCI reference: the tag {tag!r} is "
        "not a valid tag (expected oci://REGISTRY/REPOSITORY[:TAG])")
