"""The body of ``magcfg lint``: argument checks, the run, and where the report goes."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from ..durable import operator_cwd, write_operator_file
from ..errors import MagcfgError, UsageError
from . import baseline as baseline_mod
from .config import DEFAULT_BASELINE, find_project_file, load_config
from .engine import find_root, lint
from .formats import FORMATS, render, render_report


def run_lint(paths: list[Path], *, fmt: str, baseline: Path | None,
             write_baseline: bool, output: Path | None,
             project: Path | None, exclude: list[str] | None = None,
             since: str | None = None) -> int:
    """Run the lint command; returns the exit code (0 clean, 1 findings, 2 usage error).
    ``since``: a git revision whose commits up to HEAD are checked too."""
    try:
        return _run(paths, fmt, baseline, write_baseline, output, project, exclude or [],
                    since)
    except MagcfgError as exc:
        if fmt == "json" and exc.exit_code == 1:  # as every command's JSON (docs/cli.md)
            sys.stdout.write(render_report({
                "format": 1, "command": "lint", "ok": False,
                "diagnostics": [d.as_dict() for d in sorted(set(exc.diagnostics))]}))
        else:
            print(exc.format(), file=sys.stderr)
        return exc.exit_code


def _run(paths: list[Path], fmt: str, baseline: Path | None, write_baseline: bool,
         output: Path | None, project: Path | None, exclude: list[str],
         since: str | None) -> int:
    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    for p in paths:
        if not p.exists():
            raise UsageError(f"{p}: no such file or directory")
    if project is not None and not project.is_file():
        raise UsageError(f"{project}: project file not found")
    cwd = operator_cwd()
    root = find_root(paths[0] if paths else cwd)
    # As every command finds its project: from the current directory (pre-commit passes
    # files in any order), bounded by the repository.
    config = load_config(root, project, cwd)
    if exclude:
        config = replace(config, command_exclude=tuple(exclude))
    if write_baseline:
        target = baseline if baseline is not None else root / DEFAULT_BASELINE
        result = lint(root, paths, config=config, baseline=None, since=since)
        baseline_mod.write(target, result.all_findings, root)
        print(f"magcfg lint: wrote {len(result.all_findings)} finding(s) to {target}",
              file=sys.stderr)
        return 0
    result = lint(root, paths, config=config, baseline=baseline, since=since,
                  baseline_written_by=_written_by(baseline, project, exclude, root))
    report = render(result.findings, fmt, result.summary)
    if output is not None:
        # CI writes the report into the checkout that the pull request controls.
        write_operator_file(output, report.encode("utf-8"), checkout=root)
    else:
        sys.stdout.write(report)
    if fmt == "text":  # a machine format holds its summary and leaves stderr empty
        s = result.summary
        extra = "".join(f", {s[k]} {'commit' if k == 'commits' and s[k] == 1 else k}"
                        for k in ("suppressed", "baselined", "commits") if s.get(k))
        print(f"magcfg lint: {s['findings']} finding(s) in {s['files']} file(s){extra}",
              file=sys.stderr)
    return 1 if result.findings else 0


def _written_by(baseline: Path | None, project: Path | None, exclude: list[str],
                root: Path) -> str:
    """The command that writes ``baseline`` as this run reads it, run where this one runs:
    its file as given (``--write-baseline`` alone writes the default one), the project
    whose ``lint:`` settings and the ``--exclude`` globs that decide the findings it
    records (a project given that is not the one found here: a monorepo's, run at the
    top, as the hook and CI run lint)."""
    import shlex

    options = []
    if project is not None:
        found = find_project_file(root, operator_cwd())
        if found is None or found.resolve() != project.resolve():
            options.append(f"--project {shlex.quote(str(project))}")
    options += [f"--exclude {shlex.quote(glob)}" for glob in exclude]
    if baseline is not None:
        options.append(f"--baseline {shlex.quote(str(baseline))}")
    return " ".join(["magcfg lint", *options, "--write-baseline"])
