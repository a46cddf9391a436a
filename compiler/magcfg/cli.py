"""The ``magcfg`` command line: a thin typer shell over the Python API.

Exit codes everywhere: 0 ok, 1 a check failed (bad input, stale output, findings,
differences), 2 usage error. Errors are printed as ``file:line: error: message [key]``
without a traceback. Heavy modules are imported inside the commands so that ``--help``
and small commands start fast.
"""

import os
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from .errors import MagcfgError, printable

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
    since: Annotated[str | None, typer.Option("--since", help="Also fail if a manifest's "
                                              "version goes back (or changes its config "
                                              "under the same version) relative to this "
                                              "git ref, e.g. origin/main.")] = None,
    timings: Annotated[bool, typer.Option("--timings", help="Print seconds per stage "
                                          "(load, merge, validate, emit, write) as JSON on stderr.")
                       ] = False,
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
    if since is not None:
        from .review.succession import check_since

        try:
            problems = check_since(proj, result, since)
        except MagcfgError as exc:
            _fail(exc)
        for d in problems:
            _stderr(d.format())
        if problems:
            raise typer.Exit(1)
    if timings and result.timings is not None:
        import json

        _stderr("timings: " + json.dumps({k: round(v, 4) for k, v in result.timings.seconds.items()}))
    if check:
        if result.stale:
            for name in result.stale:
                _stderr(f"stale: {printable(name)}")
            _stderr("generated/ does not match the layers: run `magcfg build`")
            raise typer.Exit(1)
        if not quiet:
            _stderr(f"up to date: {', '.join(result.environments)}")
        return
    if not quiet:
        for name in result.written:
            _stderr(f"wrote {printable(name)}")
        _stderr(f"built {', '.join(result.environments)} "
                f"({len(result.written)} file(s) changed)")


@app.command()
def explain(
    key: Annotated[str, typer.Argument(help="Dotted key, e.g. magds.port.")],
    env: Annotated[str, typer.Option("--env", "-e", help="Environment.")],
    project: ProjectOption = None,
) -> None:
    """Print KEY's value and every layer that set it, as file:line, lowest first."""
    from .project import load_project
    from .review.explain import explain as run_explain
    from .review.explain import format_explanation

    try:
        proj = load_project(project)
        explanation = run_explain(proj, env, key)
    except MagcfgError as exc:
        _fail(exc)
    print(format_explanation(explanation))


# ---------------------------------------------------------------- docs (core)

@app.command()
def docs(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write to this file "
                                             "(default: stdout).")] = None,
    check: Annotated[bool, typer.Option("--check", help="Exit 1 if --out is not up to date.")
                     ] = False,
    project: ProjectOption = None,
) -> None:
    """Render a Markdown reference of every configuration key from the schema."""
    from .compiler import Compiler
    from .project import load_project
    from .schema.reference import render_reference

    try:
        proj = load_project(project)
        schema = Compiler(proj).schema()
    except MagcfgError as exc:
        _fail(exc)
    if schema is None:
        _stderr("error: the project names no JSON Schema")
        raise typer.Exit(1)
    text = render_reference(schema.index)
    if out is None:
        print(text, end="")
        return
    current = out.read_text(encoding="utf-8") if out.exists() else None
    if check:
        if current != text:
            _stderr(f"stale: {out} (run `magcfg docs --out {out}`)")
            raise typer.Exit(1)
        return
    if current != text:
        out.write_text(text, encoding="utf-8")

# ---------------------------------------------------------------- secrets: check-env


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
    from .secrets.check_env import check_env as run_check

    if output_format not in ("text", "json"):
        _stderr(f"error: unknown format {output_format!r} (text or json)")
        raise typer.Exit(2)
    try:
        if artifact is None:
            from .durable import real_directory
            from .project import load_project

            proj = load_project(project)
            proj.check_envs([env])
            artifact = real_directory(proj.root, f"{proj.output}/{env}")
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

# ---------------------------------------------------------------- keys / sign / verify

keys_app = typer.Typer(name="keys", help="Manage Ed25519 signing keys.", no_args_is_help=True)
app.add_typer(keys_app)


@keys_app.command("generate")
def keys_generate(
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the key pair "
                                      "(created with mode 0700 if missing).")],
    name: Annotated[str, typer.Option("--name", help="File name stem: NAME.key (private, "
                                      "mode 0600) and NAME.pub.")] = "magcfg",
    force: Annotated[bool, typer.Option("--force", help="Replace an existing key pair.")]
    = False,
) -> None:
    """Write a new Ed25519 key pair (PKCS#8 / SPKI PEM) and print the public key's id."""
    from .signing.keys import generate_key_pair

    try:
        pair = generate_key_pair(out, name, overwrite=force)
    except MagcfgError as exc:
        _fail(exc)
    _stderr(f"wrote {pair.private_key_path} (private: keep it in a secret store, "
            "never commit it)")
    _stderr(f"wrote {pair.public_key_path} (public: list it under signing.public_keys)")
    print(pair.key_id)


@app.command()
def sign(
    env: EnvsOption = None,
    key: Annotated[Path | None, typer.Option("--key", "-k", help="Private key PEM file "
                                             "(default: the PEM in $MAGCFG_SIGNING_KEY).",
                                             show_default=False)] = None,
    attestation: Annotated[bool, typer.Option("--attestation/--no-attestation",
                                              help="Also write attestation.dsse.json "
                                              "(in-toto SLSA provenance).")] = True,
    project: ProjectOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print errors only.")] = False,
) -> None:
    """Sign generated/<env>/manifest.json (writes manifest.json.sig and configmap.yaml)."""
    from .durable import real_directory
    from .errors import UsageError
    from .project import load_project
    from .signing.directory import sign_artifact
    from .signing.keys import SIGNING_KEY_ENV, load_private_key, private_key_from_env

    try:
        if key is not None:
            private_key = load_private_key(key)
            if key.stat().st_mode & 0o077:
                _stderr(f"{key}: warning: private key is readable by group or others "
                        f"(chmod 600 {key})")
        elif os.environ.get(SIGNING_KEY_ENV):
            private_key = private_key_from_env()
        else:
            raise UsageError(f"no signing key: pass --key FILE or set {SIGNING_KEY_ENV}")
        proj = load_project(project)
        envs = proj.check_envs(env)
        results = [(e, sign_artifact(real_directory(proj.root, f"{proj.output}/{e}"), e,
                                     private_key,
                                     display=f"{proj.output}/{e}", attestation=attestation))
                   for e in envs]
    except MagcfgError as exc:
        _fail(exc)
    if not quiet:
        for e, result in results:
            for name in result.written:
                _stderr(f"wrote {printable(name)}")
            _stderr(f"signed {proj.output}/{e} (version {result.version}) "
                    f"with key {result.key_id}")


@app.command()
def verify(
    env: EnvsOption = None,
    public_key: Annotated[list[Path] | None, typer.Option(
        "--public-key", "-k", help="Trusted public key PEM (repeatable; default: the "
        "project file's signing.public_keys).", show_default=False)] = None,
    project: ProjectOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print errors only.")] = False,
) -> None:
    """Check each artifact's signature, that its manifest is well formed and made for that
    environment, and the sha256 of every file it lists.

    Exit 1 naming the file on any mismatch, a missing signature, an untrusted signer,
    another environment's artifact or a file that is not a regular file.
    """
    from .durable import real_directory
    from .errors import UsageError
    from .project import load_project
    from .signing.directory import verify_artifact
    from .signing.keys import load_public_key
    from .signing.trust import project_public_keys

    try:
        proj = load_project(project)
        envs = proj.check_envs(env)
        keys = ([load_public_key(p) for p in public_key] if public_key
                else project_public_keys(proj))
        if not keys:
            raise UsageError("no trusted public key: pass --public-key FILE or list "
                             "signing.public_keys in the project file")
    except MagcfgError as exc:
        _fail(exc)
    failed = False
    for e in envs:
        display = f"{proj.output}/{e}"
        try:
            result = verify_artifact(real_directory(proj.root, display), keys, environment=e,
                                     display=display)
        except MagcfgError as exc:
            print(exc.format(), file=sys.stderr)
            failed = True
            continue
        if not quiet:
            extra = ", attestation ok" if result.attestation_checked else ""
            _stderr(f"verified {display}: version {result.version}, "
                    f"{len(result.files)} file(s), key {result.key_id}{extra}")
    if failed:
        raise typer.Exit(1)


# ---------------------------------------------------------------- publish (delivery)


@app.command()
def publish(
    branch: Annotated[str, typer.Option("--branch", "-b", help="The branch a GitOps "
                                        "controller syncs.")] = "deploy",
    push: Annotated[str | None, typer.Option("--push", help="Remote to push the branch to "
                                             "(default: only commit it locally).",
                                             show_default=False)] = None,
    env: EnvsOption = None,
    public_key: Annotated[list[Path] | None, typer.Option(
        "--public-key", "-k", help="Trusted public key PEM (repeatable; default: the "
        "project file's signing.public_keys).", show_default=False)] = None,
    project: ProjectOption = None,
) -> None:
    """Commit the signed, verified generated/ of HEAD onto the deploy branch (and push it).

    Every environment must verify first; nothing is committed otherwise. The commit's
    message carries [CI SKIP]. Prints the deploy commit.
    """
    from .errors import UsageError
    from .project import load_project
    from .signing.keys import load_public_key
    from .signing.publish import publish as publish_artifacts
    from .signing.trust import project_public_keys

    try:
        proj = load_project(project)
        envs = proj.check_envs(env)
        keys = ([load_public_key(p) for p in public_key] if public_key
                else project_public_keys(proj))
        if not keys:
            raise UsageError("no trusted public key: pass --public-key FILE or list "
                             "signing.public_keys in the project file")
        done = publish_artifacts(proj, envs, keys, branch, remote=push)
    except MagcfgError as exc:
        _fail(exc)
    versions = ", ".join(f"{e} v{v}" for e, v in done.versions.items())
    if done.commit is None:
        _stderr(f"{branch} already holds the signed artifacts of {done.source[:12]} "
                f"({versions}): nothing to publish")
        return
    _stderr(f"published {versions} of {done.source[:12]} to {branch}"
            + (f" and pushed it to {push}" if done.pushed else ""))
    print(done.commit)


# ---------------------------------------------------------------- diff / promote

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
    """Compare two environments (A B) or one at a git ref with the working tree.

    `magcfg diff A B` or `magcfg diff --env E --against REF`. Secrets are redacted (a
    changed reference shows as changed), restart-only keys are flagged, and each change
    names the file:line that set it. Exit 0 identical, 1 different, 2 usage error.
    """
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
        from .project import load_project
        from .review import diff as diffs

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
    """Copy FROM's per-environment values into TO's layer files, on a new branch.

    Writes the values FROM's environment layers set differently into TO's layer files
    (keeping comments and order), checks that TO still compiles, rebuilds TO, commits on
    a new branch and prints a pull-request body. Secret references and the project's
    promote.allow_differences are never copied.
    """
    from .project import load_project
    from .review import promote as promotion

    try:
        if pr_body_file is not None and not dry_run:
            promotion.check_writable(pr_body_file)
        proj = load_project(project)
        plan = promotion.plan_promotion(proj, from_env, to_env, key or None, include_secrets)
        words = ["magcfg promote", from_env, to_env, *(f"--key '{k}'" for k in key or ())]
        if include_secrets:
            words.append("--include-secrets")
        plan.command = " ".join(words)
        if dry_run:
            sys.stdout.write(promotion.format_plan(plan))
            if not plan.diff.identical:
                from .review.diff import format_text

                sys.stdout.write("\n" + format_text(plan.diff, color=_use_color("auto")))
            return
        if plan.empty:
            sys.stdout.write(promotion.format_plan(plan))
            _stderr("nothing to promote: no branch or commit created")
            return
        done = promotion.apply_promotion(proj, plan, branch)
        body = promotion.pr_body(proj, plan, done)
        if pr_body_file is not None:
            promotion.write_text(pr_body_file, body)
    except MagcfgError as exc:
        _fail(exc)
    if pr_body_file is not None:
        _stderr(f"wrote the PR body to {pr_body_file}")
    else:
        sys.stdout.write(body)
    _stderr(f"promoted {len(plan.edits)} value(s) {from_env} -> {to_env} on branch "
            f"{done.branch} (commit {done.commit[:10]}); now on that branch")


# ---------------------------------------------------------------- lint

@app.command()
def lint(
    paths: Annotated[list[Path] | None, typer.Argument(
        help="Files or directories to lint (default: the whole repository).",
        show_default=False)] = None,
    fmt: Annotated[str, typer.Option("--format", "-f",
                                     help="Output format: text, json or sarif.")] = "text",
    baseline: Annotated[Path | None, typer.Option(
        "--baseline", "-b", help="Fail only on findings not in this baseline file (with "
        "--write-baseline: the file to write).",
        show_default=False)] = None,
    write_baseline: Annotated[bool, typer.Option(
        "--write-baseline", help="Record the current findings as accepted in the --baseline "
        "file (default: .magcfg-lint-baseline.json at the repository root) and exit 0.")
    ] = False,
    exclude: Annotated[list[str] | None, typer.Option(
        "--exclude", "-x", help="Skip files matching this glob (repeatable; adds to the "
        "project file's lint.exclude).", show_default=False)] = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Write the report to this file instead of stdout.",
        show_default=False)] = None,
    project: ProjectOption = None,
) -> None:
    """Check the repository for the secrets rules (MAG001-MAG006); exit 1 on findings."""
    from .lint.cli import run_lint

    code = run_lint(paths or [], fmt=fmt, baseline=baseline, write_baseline=write_baseline,
                    output=output, project=project, exclude=exclude or [])
    if code:
        raise typer.Exit(code)

# ---------------------------------------------------------------- watch


@app.command()
def watch(
    artifact: Annotated[Path, typer.Option("--artifact", "-a", help="Artifact directory to "
                                           "watch (generated/<env>/ or a ConfigMap volume).")],
    env: Annotated[str, typer.Option("--env", "-e", help="Environment this service runs as: "
                                     "an artifact signed for another one is refused.")],
    public_key: Annotated[list[Path], typer.Option("--public-key", "-k", help="Trusted Ed25519 "
                                                   "public key (PEM; repeat during a rotation).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to publish the verified "
                                      "config into (..data symlink swap).")],
    exec_command: Annotated[str | None, typer.Option("--exec", help="Command to run after each "
                                                     "publish (split like a shell, not run by "
                                                     "one).", show_default=False)] = None,
    signal_target: Annotated[str | None, typer.Option("--signal", help="PID:SIG to signal after "
                                                      "each publish, e.g. 1:HUP.",
                                                      show_default=False)] = None,
    state_dir: Annotated[Path | None, typer.Option("--state-dir", help="Where to keep the last "
                                                   "known-good config.", show_default=False)] = None,
    schema: Annotated[Path | None, typer.Option("--schema", help="JSON Schema to validate each "
                                                "config against.", show_default=False)] = None,
    audit_log: Annotated[Path | None, typer.Option("--audit-log", help="JSON-lines audit log "
                                                   "file.", show_default=False)] = None,
    allow_rollback: Annotated[bool, typer.Option("--allow-rollback", help="Accept versions "
                                                 "older than the running one.")] = False,
    poll_interval: Annotated[float, typer.Option("--poll-interval", help="Seconds between "
                                                 "fallback polls.", min=0.05)] = 5.0,
    metrics_port: Annotated[int | None, typer.Option("--metrics-port", help="Serve Prometheus "
                                                     "metrics on this port (needs "
                                                     "magcfg[metrics]).", min=1, max=65535,
                                                     show_default=False)] = None,
) -> None:
    """Sidecar: verify the artifact, publish it into --out, notify the app; JSON events on stdout."""
    from .artifact import ENVIRONMENT_NAME
    from .errors import UsageError
    from .runtime.kernel import KernelStartError
    from .runtime.sidecar import Sidecar, SidecarOptions, parse_exec, parse_signal

    # Every option is checked before anything is served: a bad one found at the first
    # publish would leave the app un-notified behind a sidecar that looks healthy.
    if exec_command is not None and signal_target is not None:
        _fail(UsageError("--exec and --signal are exclusive: give one"))
    if not ENVIRONMENT_NAME.fullmatch(env):
        _fail(UsageError(f"--env {env!r}: an environment name matches "
                         f"{ENVIRONMENT_NAME.pattern}"))
    try:
        target = parse_signal(signal_target) if signal_target is not None else None
        if exec_command is not None:
            parse_exec(exec_command)
    except ValueError as exc:
        _fail(UsageError(str(exc)))
    options = SidecarOptions(artifact=artifact, public_keys=list(public_key), out=out,
                             environment=env, exec_command=exec_command,
                             signal_target=target, state_dir=state_dir, schema=schema,
                             allow_rollback=allow_rollback, poll_interval=poll_interval,
                             audit_log=audit_log, metrics_port=metrics_port)
    try:
        sidecar = Sidecar(options)
        code = sidecar.run()
    except (KernelStartError, MagcfgError) as exc:
        _fail(exc)
    except RuntimeError as exc:  # optional packages missing
        _fail(MagcfgError(str(exc)))
    raise typer.Exit(code)



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
