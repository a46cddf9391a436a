"""An OCI registry tag as the kernel's source (``Kernel("oci://REGISTRY/REPO:TAG", ...)``).

A poller follows the tag: one ``HEAD`` of the tag per poll (the registry's digest is the
ETag: an unchanged tag costs one small request), and on a new digest it pulls that
digest: the manifest (Flux's artifact format), the cosign signature image, which must
hold a signature by a trusted key over exactly that digest, then the layer, checked
against its digest. The files go into a local mirror directory in the kubelet's
``..data`` layout, from which the kernel reads, verifies (manifest signature, file
digests), validates and swaps exactly as for a mounted ConfigMap; a re-tagged older
digest therefore meets the kernel's ``rollback_refused``.

A poll is bounded as a whole (``timeout``, 120 s by default): a registry that answers a
byte now and then is an outage once that time has passed, not a poll (or a
``Kernel.start()``) that never ends.

Errors never stop the poller: the current config stays served, the outage is in
``status()``, in the metrics (``magcfg_config_source_up``) and in one
``config.source_failed`` event per outage (``config.source_restored`` when it ends).
Polls back off exponentially on errors (with jitter, so a fleet does not retry in step),
up to ``max_backoff``. Only what is not an ``Exception`` (``GeneratorExit``, asyncio's
``CancelledError``, a library's own ``BaseException``) ends the poller's thread, and
never in silence: ``failure`` holds it and ``on_failure`` is called on the dying thread
(the kernel's ``config.watch_failed``).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..errors import MagcfgError
from ..oci import cosign, flux
from ..oci.reference import Reference, parse_reference
from ..oci.registry import Registry, RegistryError, digest_of, is_digest
from ..signing.keys import key_id
from .events import SOURCE_FAILED, SOURCE_RESTORED, check_seconds
from .publish import current_target, failure, own_directory, publish

__all__ = ["MAX_SIGNATURE_LAYERS", "RegistrySource", "SourceRefused", "pull"]

log = logging.getLogger("magcfg.runtime")

MAX_SIGNATURE_LAYERS = 256
"""Signature layers of a digest's cosign ``.sig`` image whose payloads are fetched in the
search for a trusted signature, besides the one ``magcfg publish`` signs for the
reference's own name (checked first, with no request). Whoever may push can add layers,
each a request of the poll, so the search is bounded."""


class SourceRefused(Exception):
    """The registry answered, but with nothing the kernel may load (``reason``).

    ``where`` names what was refused (``oci://REGISTRY/REPO@sha256:...``), ``what`` says
    why: a report names the one as its file and gives the other as its message; the
    exception's text is both, for an event."""

    def __init__(self, reason: str, what: str, *, where: str | None = None) -> None:
        super().__init__(f"{where}: {what}" if where else what)
        self.reason = reason
        self.where = where
        self.what = what


def pull(client: Registry, reference: Reference, digest: str,
         public_keys: Sequence[Ed25519PublicKey]) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The OCI manifest and the files of the artifact ``reference`` names at ``digest``:
    a Flux artifact whose cosign signature, by one of ``public_keys``, is over exactly
    that digest (its files are for the caller to verify). Raises :class:`SourceRefused`
    or the registry's error."""
    repo = reference.repository
    found = client.manifest(repo, digest)
    if found is None:
        raise SourceRefused("missing_file", "no such digest in the registry", where=str(
            Reference(reference.host, repo, reference.tag, digest)))
    try:
        manifest = found.json()
        layer = flux.content_layer(manifest)
    except (ValueError, flux.ArtifactFormatError) as exc:
        raise SourceRefused("malformed_manifest", str(exc), where=f"{reference}@{digest}") from None
    _check_signature(client, reference, digest, public_keys)
    size = layer["size"]
    assert isinstance(size, int)  # flux.content_layer checked it
    blob = client.blob(repo, str(layer["digest"]), size)
    try:
        files = flux.unpack(blob)
    except flux.ArtifactFormatError as exc:
        raise SourceRefused("malformed_manifest", str(exc), where=f"{reference}@{digest}") from None
    return manifest, files


def _check_signature(client: Registry, reference: Reference, digest: str,
                     public_keys: Sequence[Ed25519PublicKey]) -> None:
    repo = reference.repository
    signatures = client.manifest(repo, cosign.tag_for(digest, "sig"))
    if signatures is None:
        raise SourceRefused("unsigned", "no cosign signature (publish it with `magcfg "
                            "publish`)", where=f"{reference}@{digest}")
    try:
        doc = signatures.json()
    except ValueError:
        doc = {}
    # The payload magcfg publish signs for this name is known: a layer of its digest holds
    # exactly these bytes, so wherever cosign appended it among other signers' layers it
    # is checked without fetching it, and without fetching theirs.
    own = cosign.simple_signing_payload(reference.name, digest)
    payloads = {digest_of(own): own}
    if cosign.verify_signatures(doc, payloads, digest, public_keys):
        return
    layers = doc.get("layers")
    fetched = 0
    # The .sig image is fetched by tag: the registry controls all of it. A layer of
    # another shape (no digest, a digest that is not sha256:HEX) holds no signature.
    for layer in layers if isinstance(layers, list) else []:
        if fetched == MAX_SIGNATURE_LAYERS:
            break
        if isinstance(layer, dict) and layer.get("mediaType") == cosign.SIMPLE_SIGNING_MEDIA_TYPE \
                and is_digest(found := layer.get("digest")) and found not in payloads:
            payloads[found] = client.blob(repo, found, 64 * 1024)
            fetched += 1
    if not cosign.verify_signatures(doc, payloads, digest, public_keys):
        trusted = ", ".join(key_id(key) for key in public_keys)
        raise SourceRefused("bad_signature", "no cosign signature by a trusted key over this "
                            f"digest (trusted: {trusted}): it was published with another key "
                            "(trust that key's public half), or is not what `magcfg publish` "
                            "signed", where=f"{reference}@{digest}")


class RegistrySource:
    """Follows ``reference``'s tag into ``mirror`` (see the module)."""

    def __init__(self, reference: str, mirror: Path,
                 public_keys: Sequence[Ed25519PublicKey], *, insecure: bool = False,
                 interval: float = 30.0, max_backoff: float = 300.0, timeout: float = 120.0,
                 on_change: Callable[[], None] = lambda: None,
                 on_event: Callable[[str, dict[str, Any]], None] = lambda kind, data: None,
                 on_failure: Callable[[BaseException], None] | None = None,
                 ) -> None:
        try:
            self.reference: Reference = parse_reference(reference)
        except MagcfgError as exc:
            # The message alone: whoever reports a ValueError adds its own "error:".
            raise ValueError("; ".join(d.message for d in exc.diagnostics)) from None
        if not self.reference.tag and not self.reference.digest:
            self.reference = Reference(self.reference.host, self.reference.repository, "latest")
        self.mirror = mirror
        self.public_keys = list(public_keys)
        for what, seconds in (("registry interval", interval),
                              ("registry backoff", max_backoff),
                              ("registry timeout", timeout)):
            check_seconds(what, seconds, None)
        self.timeout = timeout
        """Most seconds one poll may take, all its requests together."""
        # The Kernel's insecure_registry, which watch gives as --insecure-registry.
        self.client = Registry(self.reference, insecure=insecure, deadline=timeout,
                               insecure_option="--insecure-registry")
        self.interval = interval
        self.max_backoff = max(max_backoff, interval)
        self.on_change = on_change
        self.on_event = on_event
        self.on_failure = on_failure
        self.failure: BaseException | None = None
        """What ended the poller's thread before :meth:`stop`, if anything did."""
        # What the mirror holds (pulled, not yet accepted) and what the kernel serves: a
        # pulled artifact the kernel refuses must not be reported as served.
        self.pulled: tuple[str, str | None] | None = None
        # The mirror's version directory this source wrote last and the digest pulled
        # into it: what the files the kernel reads there are named after.
        self._pulled_into: tuple[str, str] | None = None
        # The pulled digest whose attempt by the kernel failed unexpectedly (on_change
        # raised: a MemoryError reading a large deploy), given to it again at the next
        # poll; a refusal by a stage returns, and its digest is attempted once.
        self._attempt_again: str | None = None
        self.digest: str | None = None
        self.revision: str | None = None
        self.failures = 0
        self.last_error: str | None = None
        self.last_success: float | None = None
        self._down_since: float | None = None
        self._lock = threading.Lock()
        # Held while the mirror is written: stop() waits for a write in progress (a poll
        # of reload() runs on its caller's thread, which stop() does not join), so that
        # the kernel removes the mirror after it, never while it is being written.
        self._writing = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # -- one poll ------------------------------------------------------------------------

    def poll(self) -> bool:
        """Check the tag now; pull and mirror a new digest. Whether the mirror holds
        something for the kernel to attempt: a new pull, or the last one again after its
        attempt failed unexpectedly (:meth:`_attempt_failed`). Never raises for the
        registry's sake: failures are recorded and reported. Ends within ``timeout`` of
        the call, a poll in progress (the poller's, when ``reload()`` asks) waited for
        included."""
        started = time.monotonic()
        if not self._lock.acquire(timeout=self.timeout):
            return False  # held past its deadline: by a slow listener of its events
        try:
            try:
                with self.client.within(self.timeout, since=started):
                    changed = self._pull()
            except (RegistryError, SourceRefused) as exc:
                if not self._stop.is_set():  # a poll ended by stop() is no outage
                    self._failed(exc)
                return False
            self._succeeded()
            return changed
        finally:
            self._lock.release()

    def _pull(self) -> bool:
        with self._writing:
            if self._stop.is_set():
                return False
            try:
                # Before anything is read from the mirror: its path is the kernel's own.
                planted = own_directory(self.mirror)
            except OSError as exc:
                raise SourceRefused("mirror_unwritable", failure(self.mirror, exc)) from None
            if planted is not None:
                self.pulled = None
                log.warning("magcfg: removed %s, a symbolic link (to %r) where the registry "
                            "mirror goes: the mirror is never followed elsewhere",
                            self.mirror, planted)
        repo = self.reference.repository
        # A digest the reference pins is the one pulled: the registry's answer to a HEAD
        # of it names a digest of its choosing (another version, as signed).
        digest = self.reference.digest or self.client.manifest_digest(
            repo, str(self.reference.tag))
        if digest is None:
            raise SourceRefused("missing_file", "no such tag in the registry",
                                where=str(self.reference))
        if self.pulled is not None and digest == self.pulled[0]:
            again, self._attempt_again = self._attempt_again == digest, None
            return again
        manifest, files = pull(self.client, self.reference, digest, self.public_keys)
        with self._writing:
            if self._stop.is_set():
                # A stopped source writes nothing: its kernel may have removed the mirror.
                return False
            self.pulled = None  # while the mirror changes, nothing is known of what it holds
            self._pulled_into = None
            try:
                publish(self.mirror, files)
                target = current_target(self.mirror)
            except OSError as exc:
                # The state directory's trouble (a full disk, a file where the mirror
                # goes), not the registry's: the same outage, reported, and the config kept.
                raise SourceRefused("mirror_unwritable", failure(self.mirror, exc)) from None
            if target is not None:
                self._pulled_into = (target.name, digest)
        annotations = manifest.get("annotations")
        revision = annotations.get(flux.ANNOTATION_REVISION) if isinstance(annotations, dict) else None
        self.pulled = (digest, revision if isinstance(revision, str) else None)
        self._attempt_again = None
        return True

    def _attempt_failed(self, pulled: tuple[str, str | None] | None) -> None:
        """The kernel's attempt on ``pulled`` (what the mirror held when it began) failed
        in a way no stage names: the next poll gives that digest again, unless the tag
        has moved on. A failure of the moment (memory, a bug's exception) may pass, and
        the tag may not move for days."""
        with self._lock:
            if pulled is not None and pulled == self.pulled:
                self._attempt_again = pulled[0]

    def pulled_as(self, version_directory: Path) -> str | None:
        """``oci://REGISTRY/REPO@sha256:...``, the pull this source wrote into the mirror's
        ``version_directory`` (the one a read of the mirror went through), or None: a
        mirror left by an earlier process, read while the registry is down, is named as
        the mirror it is."""
        found = self._pulled_into
        if found is None or version_directory.name != found[0]:
            return None
        ref = self.reference
        return str(Reference(ref.host, ref.repository, None, found[1]))

    def served(self, pulled: tuple[str, str | None] | None) -> None:
        """The kernel serves what it read from the mirror when ``pulled`` was what the
        mirror held (taken before the read): report it as served, unless a pull has
        changed the mirror since (the kernel reloads for that one; a read that overlapped
        it may hold either digest, so neither is claimed)."""
        with self._lock:
            if pulled is not None and pulled == self.pulled:
                self.digest, self.revision = pulled

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        reason = exc.reason if isinstance(exc, SourceRefused) else "unreachable"
        text = ("; ".join(d.located() for d in exc.diagnostics)
                if isinstance(exc, MagcfgError) else str(exc))
        first = self.last_error is None
        self.last_error = text
        if first:
            # The monotonic clock: the wall clock may be stepped (NTP) during an outage.
            self._down_since = time.monotonic()
            self.on_event(SOURCE_FAILED, {
                "reference": str(self.reference), "reason": reason, "error": text,
                "digest": self.digest})

    def _succeeded(self) -> None:
        if self.last_error is not None:
            down = time.monotonic() - (self._down_since or time.monotonic())
            self.on_event(SOURCE_RESTORED, {
                "reference": str(self.reference), "digest": self.digest,
                "down_seconds": round(down, 3), "failed_polls": self.failures})
        self.failures = 0
        self.last_error = None
        self._down_since = None
        self.last_success = time.time()

    # -- following the tag --------------------------------------------------------------

    def delay(self) -> float:
        """Seconds to the next poll: the interval, or after errors an exponential backoff
        (capped), with +-20% jitter."""
        base = self.interval if not self.failures else min(
            self.interval * 2 ** min(self.failures, 30), self.max_backoff)
        return float(base * random.uniform(0.8, 1.2))

    def start(self) -> None:
        thread = threading.Thread(target=self._run, name="magcfg-registry", daemon=True)
        thread.start()
        self._thread = thread  # only a thread that runs is ever joined (stop)

    def wake(self) -> None:
        """Poll at once (SIGHUP, ``Kernel.reload()``)."""
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop polling, ending a poll in progress (its requests) at once; on return no
        write of the mirror is in progress, and none starts. Waits at most ``timeout``
        seconds for the poller's thread (a subscriber that does not return holds it);
        returns whether it has ended."""
        self._stop.set()
        self._wake.set()
        self.client.abort()
        with self._writing:
            pass
        # Not from the poller's own thread (a subscriber stopping the kernel runs there).
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # not an Exception: the thread ends; say so
            if self._stop.is_set():
                return
            self.failure = exc
            log.error("magcfg: the poller of %s stopped: %s; the tag is no longer "
                      "followed", self.reference, type(exc).__name__)
            if self.on_failure is not None:
                try:
                    self.on_failure(exc)
                except BaseException as report:
                    log.error("magcfg: reporting the poller's failure failed: %s",
                              type(report).__name__)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.delay())
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                changed = self.poll()
            except Exception as exc:
                # A last resort against a bug (every answer of the registry is handled in
                # poll()): reported like an outage, and the poller goes on. The exception's
                # text is not shown: it may quote what the registry sent.
                log.error("magcfg: registry poll of %s failed: %s", self.reference,
                          type(exc).__name__)
                with self._lock:
                    self._failed(SourceRefused(
                        "internal_error", "the poll failed unexpectedly "
                        f"({type(exc).__name__}); the poller goes on", where=str(self.reference)))
                continue
            if changed:
                pulled = self.pulled
                try:
                    self.on_change()
                except Exception as exc:
                    # The kernel's attempt on the pull, which reports its own failure
                    # (config.reload_failed): no outage of the registry's, which answered.
                    log.error("magcfg: applying the pull of %s failed: %s", self.reference,
                              type(exc).__name__)
                    self._attempt_failed(pulled)

    def status(self) -> dict[str, Any]:
        return {"reference": str(self.reference), "digest": self.digest,
                "revision": self.revision, "up": self.last_error is None,
                "error": self.last_error, "failed_polls": self.failures,
                "last_success": self.last_success, "requests": self.client.requests}

