"""Machine-readable reports of ``build``, ``verify`` and ``explain`` (``--format json``).

Every report is one JSON object with ``"format": 1`` (the version of its shape: a field
is only ever added within a version; a change of meaning or a removal bumps it) and
``"command"``; ``diagnostics`` are ``{file, line, key, severity, code, message}`` as the
text output prints them (redacted like it). Every file is named as the text names it,
by ``name`` (``project.FromTop.name``: from the repository's top). docs/cli.md documents
each shape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..errors import Diagnostic, report_json
from ..syntax.strict_yaml import UNSET

if TYPE_CHECKING:
    from ..compiler import BuildResult
    from ..oci.publish import Published as PublishedOci
    from ..signing.deploy_branch import Published as PublishedBranch
    from ..signing.signatures import VerifiedArtifact
    from .explain import Explanation

__all__ = ["REPORT_FORMAT", "branch_publish_report", "build_report", "diagnostic_list",
           "explain_report", "oci_publish_report", "render", "verify_report"]

REPORT_FORMAT = 1


def diagnostic_list(found: Iterable[Diagnostic], name: Callable[[str], str]
                    ) -> list[dict[str, Any]]:
    """The diagnostics of a report: each once, in order."""
    return [d.replace(file=name(d.file)).as_dict() if d.file else d.as_dict()
            for d in sorted(set(found))]


def render(report: dict[str, Any]) -> str:
    """Deterministic text of a report (sorted keys, one trailing newline)."""
    return report_json(report)


def build_report(environments: Iterable[str], result: BuildResult | None, check: bool,
                 diagnostics: Iterable[Diagnostic], *, name: Callable[[str], str]
                 ) -> dict[str, Any]:
    """``ok`` is what the exit code says: no error, and with ``check`` nothing stale."""
    found = diagnostic_list(diagnostics, name)
    stale = [name(file) for file in result.stale] if result is not None else []
    return {
        "format": REPORT_FORMAT, "command": "build", "check": check,
        "environments": list(environments),
        "ok": result is not None and not stale
              and not any(d["severity"] == "error" for d in found),
        "written": [name(file) for file in result.written] if result is not None else [],
        "stale": stale,
        "diagnostics": found,
    }


def verify_report(artifacts: list[tuple[str, str, VerifiedArtifact | None]],
                  diagnostics: Iterable[Diagnostic], *, name: Callable[[str], str]
                  ) -> dict[str, Any]:
    """``artifacts``: (environment, directory, result or None when it failed)."""
    return {
        "format": REPORT_FORMAT, "command": "verify",
        "ok": all(result is not None for _, _, result in artifacts),
        "artifacts": [{
            "environment": env, "directory": name(directory), "ok": result is not None,
            "version": result.version if result else None,
            "files": sorted(result.files) if result else [],
            "key_id": result.key_id if result else None,
            "attestation": result.attestation_checked if result else False,
        } for env, directory, result in artifacts],
        "diagnostics": diagnostic_list(diagnostics, name),
    }


def oci_publish_report(target: str, environment: str, directory: str,
                       published: PublishedOci, given: Iterable[Diagnostic], *,
                       name: Callable[[str], str]) -> dict[str, Any]:
    """``publish OCI_REFERENCE``: where the artifact of ``environment`` (in
    ``directory``) is, in each form its consumers take, and what was pushed;
    ``given``: warnings about files the operator named, named as given."""
    follow = published.follow
    return {
        "format": REPORT_FORMAT, "command": "publish", "ok": True, "target": target,
        "branch": None,
        "artifacts": [{
            "environment": environment, "directory": name(directory),
            "version": published.version, "key_id": published.key_id,
            "revision": published.revision, "published": bool(published.pushed),
            "rebuilt": published.rebuilt, "pushed": list(published.pushed),
            "digest": published.reference.digest, "reference": published.cosign_form,
            "pinned": str(published.pinned),
            "follow": str(follow) if follow is not None else None,
        }],
        "diagnostics": diagnostic_list(given, str),
    }


def branch_publish_report(output: str, published: PublishedBranch, remote: str | None, *,
                          name: Callable[[str], str]) -> dict[str, Any]:
    """``publish`` to a deploy branch: the commit (None when the branch held these
    artifacts already), its source commit, and each environment's version."""
    return {
        "format": REPORT_FORMAT, "command": "publish", "ok": True, "target": None,
        "branch": published.branch, "commit": published.commit, "source": published.source,
        "remote": remote if published.pushed else None,
        "artifacts": [{"environment": env, "directory": name(f"{output}/{env}"),
                       "version": version} for env, version in published.versions.items()],
        "diagnostics": [],
    }


def explain_report(e: Explanation, *, name: Callable[[str], str]) -> dict[str, Any]:
    """Values as the text output shows them (secrets masked); an ``!unset`` is
    ``{"unset": true, "value": null}``."""
    def value(v: Any) -> dict[str, Any]:
        return {"unset": True, "value": None} if v == UNSET else {"unset": False, "value": v}

    return {
        "format": REPORT_FORMAT, "command": "explain", "environment": e.env, "key": e.key,
        "present": e.present, "value": e.value, "reload": e.reload, "secret": e.secret,
        "provenance": [{"file": name(p.file), "line": p.line, "layer": p.layer, **value(p.value),
                        "in_effect": i == len(e.chain) - 1 and e.present}
                       for i, p in enumerate(e.chain)],
    }
