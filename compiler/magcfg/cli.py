"""The ``magcfg`` command line: a thin typer shell over the Python API.

Exit codes everywhere: 0 ok, 1 a check failed (bad input, stale output, findings,
differences), 2 usage error. Errors are printed as ``file:line: error: message [key]``
without a traceback. Heavy modules are imported inside the commands so that ``--help``
and small commands start fast.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from .errors import MagcfgError

app = typer.Typer(
    name="magcfg",
    help="Compile layered MagFlock configuration into validated, redacted, signed artifacts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

ProjectOption = Annotated[
    Path | None,
    typer.Option("--project", "-p", help="Project file (default: magcfg.yaml in the current "
                 "directory or its parents).", show_default=False),
]
EnvsOption = Annotated[
    list[str] | None,
    typer.Option("--env", "-e", help="Environment (repeatable; default: all).", show_default=False),
]


def _fail(exc: MagcfgError) -> NoReturn:
    print(exc.format(), file=sys.stderr)
    raise typer.Exit(exc.exit_code)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


# ---------------------------------------------------------------- build / explain (core)

@app.command()
def build(
    env: EnvsOption = None,
    check: Annotated[bool, typer.Option("--check", help="Write nothing; exit 1 naming stale "
                                        "files if generated/ does not match the layers.")] = False,
    project: ProjectOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print errors only.")] = False,
) -> None:
    """Compile the layers of each environment into generated/<env>/."""
    from .compiler import build as run_build
    from .project import load_project

    try:
        proj = load_project(project)
        result = run_build(proj, envs=env or None, check=check)
    except MagcfgError as exc:
        _fail(exc)
    for d in result.warnings:
        _stderr(d.format())
    if check:
        if result.stale:
            for name in result.stale:
                _stderr(f"stale: {name}")
            _stderr("generated/ does not match the layers: run `magcfg build`")
            raise typer.Exit(1)
        if not quiet:
            _stderr(f"up to date: {', '.join(result.environments)}")
        return
    if not quiet:
        for name in result.written:
            _stderr(f"wrote {name}")
        _stderr(f"built {', '.join(result.environments)} "
                f"({len(result.written)} file(s) changed)")


@app.command()
def explain(
    key: Annotated[str, typer.Argument(help="Dotted key, e.g. magds.port.")],
    env: Annotated[str, typer.Option("--env", "-e", help="Environment.")],
    project: ProjectOption = None,
) -> None:
    """Print KEY's value and every layer that set it, as file:line, lowest first."""
    from .explanation import explain as run_explain
    from .explanation import format_explanation
    from .project import load_project

    try:
        proj = load_project(project)
        explanation = run_explain(proj, env, key)
    except MagcfgError as exc:
        _fail(exc)
    print(format_explanation(explanation))


# ---------------------------------------------------------------- docs (core)

# ---------------------------------------------------------------- secrets: check-env (issue 3)


@app.command("check-env")
def check_env(
    env: Annotated[str, typer.Option("--env", "-e", help="Environment the service runs as.")],
    artifact: Annotated[Path | None, typer.Option(
        "--artifact", "-a", envvar="MAGCFG_ARTIFACT", show_default=False,
        help="Directory with config.json and manifest.json (default: generated/<env>/ of "
             "the project).")] = None,
    output_format: Annotated[str, typer.Option("--format", "-f",
                                               help="text or json.")] = "text",
    project: ProjectOption = None,
) -> None:
    """Container entrypoint check: exit 1 listing the env vars of secrets that are missing
    or empty (names only, never values)."""
    from .check_env import check_env as run_check

    if output_format not in ("text", "json"):
        _stderr(f"error: unknown format {output_format!r} (text or json)")
        raise typer.Exit(2)
    try:
        if artifact is None:
            from .project import load_project

            proj = load_project(project)
            proj.check_envs([env])
            artifact = proj.root / proj.output / env
        result = run_check(artifact, env=env)
    except MagcfgError as exc:
        _fail(exc)
    if output_format == "json":
        import json

        print(json.dumps(result.as_json(), indent=2, sort_keys=True))
    elif result.ok:
        _stderr(f"check-env: {env}: all {len(result.required)} secret(s) resolvable")
    else:
        _stderr(f"check-env: {env}: {len(result.missing_names)} secret env var(s) missing or empty:")
        for r in result.missing:
            _stderr(f"  {r.name}  (for {r.key}, {r.scheme}://)")
    if not result.ok:
        raise typer.Exit(1)

# ---------------------------------------------------------------- keys / sign / verify (issue 4)

# ---------------------------------------------------------------- diff / promote (issue 5)

# ---------------------------------------------------------------- lint (issue 7)

# ---------------------------------------------------------------- watch (issue 8)


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point. Returns the exit code."""
    try:
        app(args=argv, prog_name="magcfg", standalone_mode=True)
        code = 0
    except SystemExit as exc:  # click's standalone mode: usage errors are 2
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except MagcfgError as exc:
        print(exc.format(), file=sys.stderr)
        code = exc.exit_code
    return code


def run() -> NoReturn:
    """``python -m magcfg`` and the console script: exit without tearing down the heap.

    After a large build the interpreter spends 0.6-1.1 s freeing objects at shutdown
    (docs/performance.md); everything has been written and flushed by then.
    """
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
