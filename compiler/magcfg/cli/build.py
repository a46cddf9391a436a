"""``magcfg build`` without typer: its options read from the command line as click reads
them, and the command they run.

Importing typer and making the command's click parameters from its annotations costs
a no-op build of a large repository about a sixth of its instructions (docs/
performance.md). ``cli.main`` hands a command line that is a plain build (only options
``build`` takes, in forms click reads them as this module does) to ``build_options``
and ``build_command``, and any other to typer, which declares the same options in
``commands.build`` and calls ``build_command`` with what it read: help, usage errors,
shell completion and every other command stay typer's.
"""

import os
import re
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from ..errors import MagcfgError, printable
from .common import _fail, _print_report, _report_format, _stderr, _top

# The options of ``commands.build`` by each name click knows them by, to the parameter
# of ``build_command`` each sets; the flags take no value, the others one, and --env may
# be repeated (tested against the click command typer makes).
BUILD_FLAGS = {"--check": "check", "--quiet": "quiet", "-q": "quiet", "--strict": "strict",
               "--timings": "timings"}
BUILD_OPTIONS = {"--env": "env", "-e": "env", "--project": "project", "-p": "project",
                 "--format": "output_format", "-f": "output_format", "--since": "since",
                 "--jobs": "jobs", "-j": "jobs"}
_REPEATED = frozenset({"env"})
_JOBS = re.compile(r"[0-9]+")


def build_options(args: list[str]) -> dict[str, Any] | None:
    """The arguments of ``build_command`` that click would give it for ``args`` (the
    words after ``build``), or None when ``args`` hold anything else this does not read
    as click does: then typer runs them, and says what is wrong.

    As click: a flag is its name alone; an option's value is the next word, whatever
    it is (``--env --check`` names the environment ``--check``), or follows ``=`` in a
    long name (``--env=dev``) or the letter of a short one (``-edev``, and ``-e=dev``
    names ``=dev``); the last value of an option given twice counts. --jobs is a
    whole number from 1 up, and --project a path that is missing or readable."""
    given: dict[str, Any] = {}
    words = iter(args)
    for word in words:
        if word in BUILD_FLAGS:
            given[BUILD_FLAGS[word]] = True
            continue
        name, value = word, None
        if word.startswith("--") and "=" in word:
            name, value = word.split("=", 1)
        elif len(word) > 2 and word[0] == "-" and word[1] != "-":
            name, value = word[:2], word[2:]
        parameter = BUILD_OPTIONS.get(name)
        if parameter is None:
            return None
        if value is None:
            value = next(words, None)
            if value is None:
                return None
        if parameter in _REPEATED:
            given.setdefault(parameter, []).append(value)
        else:
            given[parameter] = value
    jobs = given.get("jobs")
    if jobs is not None:
        try:
            count = int(jobs) if _JOBS.fullmatch(jobs) else 0
        except ValueError:  # more digits than int() reads: click says so, as for "x"
            count = 0
        if count < 1:
            return None
        given["jobs"] = count
    project = given.get("project")
    if project is not None:
        # click's Path refuses a path that exists but cannot be read, before the command
        if "\0" in project or (os.path.exists(project) and not os.access(project, os.R_OK)):
            return None
        given["project"] = Path(project)
    return given


def build_command(
    *,
    env: list[str] | None = None,
    check: bool = False,
    project: Path | None = None,
    quiet: bool = False,
    strict: bool = False,
    output_format: str = "text",
    since: str | None = None,
    timings: bool = False,
    jobs: int | None = None,
) -> None:
    """The command ``magcfg build`` runs with these options, typer's or ``build_options``'s
    (``commands.build`` declares them, with their help); ends by ``SystemExit`` when it
    does not exit 0."""
    import gc

    # The process ends through os._exit: nothing the build allocated needs collecting,
    # and the first collection after it would scan its millions of objects (1-2 s); nor
    # do the modules imported next (a collection every few hundred of their objects).
    gc.disable()
    from ..compiler import build as run_build
    from ..project import load_project

    as_json = _report_format(output_format)
    proj = None
    try:
        proj = load_project(project)
        # Only --since reads the artifacts (their manifests): without it, a build whose
        # outputs are what it would write need not compile them (BuildResult.reused).
        result = run_build(proj, envs=env or None, check=check, strict=strict, jobs=jobs,
                           artifacts=since is not None)
    except MagcfgError as exc:
        if as_json and exc.exit_code == 1:
            known = env or (list(proj.environments) if proj is not None else [])
            _print_report("build_report", _top(proj, project), known, None, check,
                          exc.diagnostics)
            raise SystemExit(1) from None
        _fail(exc, _top(proj, project))
    top = _top(proj, project)
    problems = []
    if since is not None:
        from ..review.succession import check_since

        try:
            problems = check_since(proj, result, since)
        except MagcfgError as exc:  # a usage error (no repository, unknown ref) is plain
            if as_json and exc.exit_code == 1:  # a file at the ref that cannot be read
                _print_report("build_report", top, result.environments, result, check,
                              [*result.warnings, *exc.diagnostics])
                raise SystemExit(1) from None
            _fail(exc, top)
    # A warning of the gate's names what it compared (the project at the ref, moved
    # since, or none): no refusal, whatever --strict says of the build's warnings.
    refused = any(d.severity == "error" for d in problems)
    if as_json:
        _print_report("build_report", top, result.environments, result, check,
                      [*result.warnings, *problems])
        raise SystemExit(1 if refused or result.stale else 0)
    reporting: AbstractContextManager[None] = (result.timings.stage("report") if result.timings
                                               else nullcontext())
    with reporting:
        if not quiet:
            for d in result.warnings:
                _stderr(top.diagnostic(d).format())
            for env_name in result.policy_only:  # not a warning: nothing is wrong (--strict)
                manifest = top.name(f"{proj.output}/{env_name}/manifest.json")
                _stderr(f"{printable(manifest)}: note: only the reload policy changed "
                        "(hot_keys, restart_keys): the version stays, as no file a "
                        "service loads changed; a running service has nothing to "
                        "apply, and judges its next version's changes by that "
                        "version's policy (docs/runtime.md)")
    for d in problems:
        if d.severity == "error" or not quiet:
            _stderr(top.diagnostic(d).format())
    if refused:
        raise SystemExit(1)
    if timings and result.timings is not None:
        import json

        _stderr("timings: " + json.dumps({k: round(v, 4)
                                          for k, v in result.timings.report().items()}))
    if check:
        if result.stale:
            for name in result.stale:
                _stderr(f"stale: {printable(top.name(name))}")
            from ..project import project_option

            # Said to whoever runs it at the top, as the hook and CI do: a project below
            # it (a monorepo's) is found there by --project alone.
            _stderr(f"{printable(top.name(proj.output))}/ does not match the layers: run "
                    f"`magcfg build{project_option(proj, top.name)}`")
            raise SystemExit(1)
        if not quiet:
            _stderr(f"up to date: {', '.join(result.environments)}")
        return
    if not quiet:
        for name in result.written:
            # A stale signature or attestation is removed with the manifest it signed.
            gone = not os.path.lexists(proj.root / name)
            _stderr(f"{'removed' if gone else 'wrote'} {printable(top.name(name))}")
        _stderr(f"built {', '.join(result.environments)} "
                f"({len(result.written)} file(s) changed)")
