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

# ---------------------------------------------------------------- keys / sign / verify (issue 4)

# ---------------------------------------------------------------- diff / promote (issue 5)

FormatOption = Annotated[
    str, typer.Option("--format", "-f", help="Output format: text, json or markdown.")]


def _use_color(mode: str) -> bool:
    if mode not in ("auto", "always", "never"):
        from .errors import UsageError

        raise UsageError(f"--color must be auto, always or never, not {mode!r}")
    if mode == "auto":
        return sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    return mode == "always"


@app.command()
def diff(
    old: Annotated[str | None, typer.Argument(help="Environment on the old side.",
                                              show_default=False)] = None,
    new: Annotated[str | None, typer.Argument(help="Environment on the new side.",
                                              show_default=False)] = None,
    env: Annotated[str | None, typer.Option("--env", "-e", help="With --against: the "
                                            "environment to compare.", show_default=False)] = None,
    against: Annotated[str | None, typer.Option("--against", help="Git ref (commit, branch, "
                                                "tag) to compare the working tree with.",
                                                show_default=False)] = None,
    output_format: FormatOption = "text",
    color: Annotated[str, typer.Option("--color", help="auto (on a terminal), always or "
                                       "never.")] = "auto",
    project: ProjectOption = None,
) -> None:
    """Show what differs between two environments (A B), or between an environment at a
    git ref and the working tree (--env E --against REF). Secrets are redacted; each
    change names the file:line that set it. Exit 0 identical, 1 different, 2 usage."""
    from .errors import UsageError

    try:
        if output_format not in ("text", "json", "markdown"):
            raise UsageError(f"--format must be text, json or markdown, not {output_format!r}")
        use_color = _use_color(color)
        if against is not None:
            if new is not None or (old is not None and env is not None):
                raise UsageError("give either two environments or --env E --against REF")
            env = env or old
            if env is None:
                raise UsageError("--against needs --env E")
        elif env is not None:
            raise UsageError("--env needs --against REF (or give two environments: A B)")
        elif old is None or new is None:
            raise UsageError("give two environments (magcfg diff A B) or --env E --against REF")
        from . import diff as diffs
        from .project import load_project

        proj = load_project(project)
        if against is not None:
            assert env is not None
            result = diffs.diff_against(proj, env, against)
        else:
            assert old is not None and new is not None
            result = diffs.diff_environments(proj, old, new)
    except MagcfgError as exc:
        _fail(exc)
    if output_format == "json":
        sys.stdout.write(diffs.format_json(result))
    elif output_format == "markdown":
        sys.stdout.write(diffs.format_markdown(result))
    else:
        sys.stdout.write(diffs.format_text(result, color=use_color))
    raise typer.Exit(0 if result.identical else 1)


@app.command()
def promote(
    from_env: Annotated[str, typer.Argument(metavar="FROM", help="Environment to copy from.")],
    to_env: Annotated[str, typer.Argument(metavar="TO", help="Environment to write into.")],
    key: Annotated[list[str] | None, typer.Option(
        "--key", "-k", help="Only keys matching this dotted glob (repeatable; * one "
        "segment, ** any; a key covers its children).", show_default=False)] = None,
    include_secrets: Annotated[bool, typer.Option(
        "--include-secrets", help="Also promote secret references (never values).")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", "-n", help="Show the plan and the "
                                          "diff of TO; change nothing.")] = False,
    branch: Annotated[str | None, typer.Option("--branch", "-b", help="Branch to create "
                                               "(default: promote/FROM-to-TO-<digest>).",
                                               show_default=False)] = None,
    pr_body_file: Annotated[Path | None, typer.Option(
        "--pr-body", help="Write the pull-request body (Markdown) to this file instead of "
        "stdout.", show_default=False)] = None,
    project: ProjectOption = None,
) -> None:
    """Copy the values FROM's environment layers set differently into TO's layer files
    (keeping comments and order), rebuild TO, and commit on a new branch with a PR body.
    Secret references and allow-listed differences are never copied."""
    from . import promote as promotion
    from .project import load_project

    try:
        proj = load_project(project)
        plan = promotion.plan_promotion(proj, from_env, to_env, key or None, include_secrets)
        words = ["magcfg promote", from_env, to_env, *(f"--key '{k}'" for k in key or ())]
        if include_secrets:
            words.append("--include-secrets")
        plan.command = " ".join(words)
        if dry_run:
            sys.stdout.write(promotion.format_plan(plan))
            if not plan.diff.identical:
                from .diff import format_text

                sys.stdout.write("\n" + format_text(plan.diff, color=_use_color("auto")))
            return
        if plan.empty:
            sys.stdout.write(promotion.format_plan(plan))
            _stderr("nothing to promote: no branch or commit created")
            return
        done = promotion.apply_promotion(proj, plan, branch)
        body = promotion.pr_body(proj, plan, done)
    except MagcfgError as exc:
        _fail(exc)
    if pr_body_file is not None:
        promotion.write_text(pr_body_file, body)
        _stderr(f"wrote the PR body to {pr_body_file}")
    else:
        sys.stdout.write(body)
    _stderr(f"promoted {len(plan.edits)} value(s) {from_env} -> {to_env} on branch "
            f"{done.branch} (commit {done.commit[:10]}); now on that branch")


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
