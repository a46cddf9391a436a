"""``oci://REGISTRY/REPOSITORY[:TAG][@sha256:DIGEST]``: what names an artifact in a registry."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from ..errors import UsageError
from ..secrets.redaction import REDACTED

__all__ = ["LOOPBACK", "Reference", "bare_reference", "collapsed_reference",
           "misspelled_reference", "parse_reference"]

LOOPBACK = frozenset({"127.0.0.1", "localhost", "[::1]"})
"""Hosts that may be reached over plain HTTP (``--insecure``): this machine only."""

_SCHEME = "oci://"
_HOST = re.compile(r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
                   r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])"
                   r"(?::[0-9]{1,5})?")
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
# The distribution spec's tag: ASCII only (Python's \w would take any letter or digit,
# which no registry serves and no URL carries).
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class Reference:
    """A parsed ``oci://`` reference. ``tag`` and ``digest`` may both be absent."""

    host: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """``HOST/REPOSITORY``, as cosign and docker name the repository."""
        return f"{self.host}/{self.repository}"

    @property
    def hostname(self) -> str:
        return self.host.rsplit(":", 1)[0] if not self.host.endswith("]") else self.host

    @property
    def loopback(self) -> bool:
        return self.hostname in LOOPBACK

    def __str__(self) -> str:
        text = _SCHEME + self.name
        if self.tag:
            text += ":" + self.tag
        if self.digest:
            text += "@" + self.digest
        return text


def parse_reference(text: str) -> Reference:
    """Parse ``oci://HOST[:PORT]/REPO[:TAG][@sha256:HEX]``; a :class:`UsageError` says
    which part is wrong."""
    def bad(why: str) -> UsageError:
        return UsageError(f"{text!r} is not an OCI reference: {why} "
                          "(expected oci://REGISTRY/REPOSITORY[:TAG])")

    if not text.startswith(_SCHEME):
        raise bad("it does not start with oci://")
    rest = text[len(_SCHEME):]
    _, at, after = rest.rpartition("@")
    if at and ("@" in rest.split("/", 1)[0] or "/" in after):
        # USER:PASSWORD@ as a URL holds its login: the refusal goes to CI's log and the
        # Kernel's events, so what comes before the host is not shown.
        text = f"{_SCHEME}{REDACTED}@{after}"
        raise bad("it holds credentials before its host, which go in the docker "
                  "configuration (docker login), never in a reference")
    digest = None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST.fullmatch(digest):
            raise bad("the digest is not sha256:<64 lowercase hex digits>")
    host, slash, path = rest.partition("/")
    if not slash or not _HOST.fullmatch(host):
        raise bad("no registry host")
    tag = None
    last = path.rsplit("/", 1)[-1]
    if ":" in last:
        path, tag = path.rsplit(":", 1)
        if not _TAG.fullmatch(tag):
            raise bad(f"the tag {tag!r} is not a valid tag")
    if not path or not all(_COMPONENT.fullmatch(part) for part in path.split("/")) \
            or len(path) > 255:
        raise bad("the repository must be lowercase path components")
    return Reference(host, path, tag, digest)


def bare_reference(text: str) -> Reference | None:
    """The registry reference ``text`` spells without ``oci://`` (cosign's and docker's
    form, ``HOST[:PORT]/REPO[:TAG][@sha256:HEX]``, as ``publish`` prints it on stdout),
    or None. Its first component must name a host as docker tells one from a repository
    (a ``.`` or a port in it, or ``localhost``): for an option that takes a directory or
    an ``oci://`` reference, to say which form to give rather than that no such
    directory exists."""
    host = text.split("/", 1)[0]
    if text.startswith(_SCHEME) or "/" not in text or not (
            "." in host or ":" in host or host == "localhost" or host.startswith("[")):
        return None
    try:
        return parse_reference(_SCHEME + text)
    except UsageError:
        return None


def collapsed_reference(text: str) -> Reference | None:
    """The registry reference ``text`` spells as a path keeps ``oci://HOST/REPO...``
    (``oci:/HOST/REPO...``: ``pathlib`` collapses ``//``), or None."""
    collapsed = _SCHEME[:-1]
    if not text.startswith(collapsed) or text.startswith(_SCHEME):
        return None
    try:
        return parse_reference(_SCHEME + text[len(collapsed):])
    except UsageError:
        return None


def misspelled_reference(given: str) -> tuple[Reference, str] | None:
    """(reference, what to say) for ``given``, a directory that does not exist, where it
    spells a registry reference without ``oci://``: cosign's form, which ``publish``
    prints on stdout, or ``oci:/...``, what a path made of an ``oci://`` reference keeps
    (``Path`` collapses ``//``, so the reference itself is lost: ``Path("oci://h/r")`` is
    ``Path("oci:/h/r")``, a relative directory). Read as a directory, either would fail
    as a missing manifest. None where ``given`` exists or spells no reference."""
    if os.path.lexists(given):
        return None
    reference = collapsed_reference(given)
    if reference is not None:
        return reference, (f"no such directory; a registry artifact is named by the string "
                           f"{str(reference)!r}, not a path (a path keeps one of oci://'s "
                           "two slashes)")
    reference = bare_reference(given)
    if reference is not None:
        return reference, (f"no such directory; a registry artifact is named with oci:// "
                           f"({reference}), as publish names it beside cosign's form")
    return None
