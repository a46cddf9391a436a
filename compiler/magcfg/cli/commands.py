"""The commands of ``magcfg``, declared for typer: each parses its options and calls the
Python API (``cli.main`` runs a plain ``magcfg build`` without this module: ``build``).
"""

import inspect
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from ..errors import Diagnostic, MagcfgError, UsageError, no_new_task, printable
from .build import build_command
from .common import _fail, _print_report, _report_format, _stderr, _top

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

    from ..project import FromTop, Project

app = typer.Typer(
    name="magcfg",
    help="Compile layered MagFlock configuration into validated, redacted, signed artifacts.",
    no_args_is_help=True,
    add_completion=True,
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


# What rich markup reads as a style tag (rich.markup.RE_TAGS), and drops from the help
# screen: "magcfg[lsp]" would tell users to install "magcfg".
_RICH_TAG = re.compile(r"(?<!\\)\[(?=[a-z#/@][^\[]*?\])")


def _help(text: str) -> str:
    """``text`` shown as written on the help screen (``TYPER_USE_RICH=0``: no markup)."""
    from typer.core import HAS_RICH

    return _RICH_TAG.sub(r"\\[", text) if HAS_RICH else text


# ---------------------------------------------------------------- conventions: reports, version

ReportFormatOption = Annotated[
    str, typer.Option("--format", "-f", help="Output format: text, or json (a versioned "
                      "report on stdout, docs/cli.md).")]


def _private_key(key: Path | None) -> "tuple[Ed25519PrivateKey, Diagnostic | None]":
    """The private key of ``sign`` and ``publish``: the file the operator named (named
    as given in errors, with a warning when others may read it), else the one in the
    environment; a usage error for neither."""
    from ..signing.keys import SIGNING_KEY_ENV, load_private_key, private_key_from_env

    if key is not None:
        private_key = load_private_key(key)
        warning = None
        if key.stat().st_mode & 0o077:
            warning = Diagnostic(str(key), None, None, "private key is readable by group or "
                                 f"others (chmod 600 {key})", severity="warning",
                                 code="key-permissions")
        return private_key, warning
    if os.environ.get(SIGNING_KEY_ENV):
        return private_key_from_env(), None
    raise UsageError(f"no signing key: pass --key FILE or set {SIGNING_KEY_ENV}")


def _signing_key(key: Path | None) -> "Ed25519PrivateKey":
    """``_private_key``, its warning on stderr and its error the command's end."""
    try:
        private_key, warning = _private_key(key)
    except MagcfgError as exc:
        _fail(exc)
    if warning is not None:
        _stderr(warning.format())
    return private_key


def _fail_report(command: str, exc: MagcfgError, top: "FromTop | None",
                 given: "Iterable[Diagnostic]" = (), **fields: Any) -> NoReturn:
    """``exc`` as the ``--format json`` report of a run that failed before it had one of
    its own to print: ``format``, ``command``, ``ok`` false and the diagnostics (named
    as ``_fail`` names them, and ``given``'s, of files the operator named, as given),
    with ``fields`` (the rest of the command's report, empty). A usage error stays a
    plain message (docs/cli.md)."""
    if exc.exit_code != 1:
        _fail(exc, top)
    from ..review import reports

    found = exc.diagnostics if top is None else top.error(exc).diagnostics
    sys.stdout.write(reports.render({
        "format": reports.REPORT_FORMAT, "command": command, **fields, "ok": False,
        "diagnostics": reports.diagnostic_list([*found, *given], str)}))
    raise typer.Exit(1)


def _print_json(command: str, report: dict[str, Any]) -> None:
    """A report made outside review/reports (``as_json`` of check-env and secrets verify)
    with the fields every report has."""
    import json

    from ..review.reports import REPORT_FORMAT

    print(json.dumps({"format": REPORT_FORMAT, "command": command, **report}, indent=2,
                     sort_keys=True))


def _version(value: bool) -> None:
    if value:
        from ..version import __version__

        print(f"magcfg {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", "-V", callback=_version, is_eager=True,
                                          help="Print magcfg's version and exit.")] = False,
) -> None:
    """Compile layered configuration into validated, redacted, signed artifacts."""



# ---------------------------------------------------------------- build / explain (core)

@app.command()
def build(
    env: EnvsOption = None,
    check: Annotated[bool, typer.Option("--check", help="Write no output; exit 1 naming "
                                        "stale files if generated/ does not match the layers "
                                        "(the build cache is filled as by any build).")] = False,
    project: ProjectOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print errors only (no "
                                        "warnings, no summary).")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Warnings are errors: exit 1 and "
                                         "write nothing if there is any.")] = False,
    output_format: ReportFormatOption = "text",
    since: Annotated[str | None, typer.Option("--since", help="Also fail if a manifest's "
                                              "version goes back (or changes its config "
                                              "under the same version) relative to this "
                                              "git ref, e.g. origin/main.")] = None,
    timings: Annotated[bool, typer.Option("--timings", help="Print seconds per stage "
                                          "(startup, schema, cache, load, merge, validate, "
                                          "emit, write, ...) and the process's total as "
                                          "JSON on stderr.")
                       ] = False,
    jobs: Annotated[int | None, typer.Option("--jobs", "-j", min=1, help="Processes to "
                                             "compile in (default: $MAGCFG_JOBS, else one "
                                             "per core); the output is the same with any "
                                             "number.", show_default=False)] = None,
) -> None:
    """Compile the layers of each environment into generated/<env>/."""
    build_command(env=env, check=check, project=project, quiet=quiet, strict=strict,
                  output_format=output_format, since=since, timings=timings, jobs=jobs)


@app.command()
def explain(
    key: Annotated[str, typer.Argument(help="Dotted key, e.g. magds.port.")],
    env: Annotated[str, typer.Option("--env", "-e", help="Environment.")],
    project: ProjectOption = None,
    output_format: ReportFormatOption = "text",
) -> None:
    """Print KEY's value and every layer that set it, as file:line, lowest first."""
    from ..keyglob import parse_keypath
    from ..project import load_project
    from ..review.explain import explain as run_explain
    from ..review.explain import format_explanation

    as_json = _report_format(output_format)
    if key and "" in parse_keypath(key):
        # Empty segments would be dropped, and the answer would be about another key.
        _fail(UsageError(f"{key!r} has an empty segment: give a dotted key, e.g. magds.port"))
    top = _top(None, project)
    try:
        proj = load_project(project)
        explanation = run_explain(proj, env, key)
    except MagcfgError as exc:
        if as_json:
            _fail_report("explain", exc, top)
        _fail(exc, top)
    if as_json:
        _print_report("explain_report", top, explanation, ok=True)
        return
    print(format_explanation(explanation, top.name))


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
    import shlex

    from ..compiler import Compiler, held_links
    from ..errors import BuildError
    from ..project import given_project_option, load_project
    from ..schema.reference import render_reference

    top = _top(None, project)
    try:
        proj = load_project(project)
        compiler = Compiler(proj)
        # Asked of git as every command asks of the files it reads (a symlink held as
        # a file, Git LFS), answered while the schema loads.
        held = held_links(compiler.source, [proj.json_schema] if proj.json_schema else [])
        schema = compiler.schema()
        # The index is read when first asked for: a schema that does not load fails here.
        text = render_reference(schema.index) if schema is not None else None
        problems = held()
        if problems:
            raise BuildError(problems)
    except MagcfgError as exc:
        _fail(exc, top)
    if text is None:
        _stderr("error: the project names no JSON Schema")
        raise typer.Exit(1)
    if out is None:
        print(text, end="")
        return
    from ..durable import operator_path_to_read, read_regular

    real: str | None = None
    try:
        # Read as it would be written (no committed link out of the checkout), and one
        # byte more than the page at most: a larger file differs, and is not read whole.
        real = operator_path_to_read(out, os.path.realpath(proj.root))
        current = read_regular(real, len(text.encode("utf-8")) + 1)
    except (OSError, MagcfgError):
        current = None
    if check:
        if current != text.encode("utf-8"):
            # The page is the operator's file, named as given, so the command runs where
            # this one ran: the project named as the page is (at the top, where the hook
            # and CI run, a project below it is found by --project alone). A write
            # refuses `..` (it would undo a link's detour): such a page is named by
            # where the read found it.
            page = real if real is not None and ".." in out.parts else str(out)
            _stderr(f"stale: {printable(str(out))} (run `magcfg docs"
                    f"{printable(given_project_option(proj, page))} "
                    f"--out {printable(shlex.quote(page))}`)")
            raise typer.Exit(1)
        return
    if current != text.encode("utf-8"):
        _write_output(out, text.encode("utf-8"), proj.root)

# ---------------------------------------------------------------- secrets: check-env


@app.command("check-env")
def check_env(
    env: Annotated[str, typer.Option("--env", "-e", help="Environment the service runs as.")],
    artifact: Annotated[str | None, typer.Option(
        "--artifact", "-a", envvar="MAGCFG_ARTIFACT", show_default=False,
        help="Directory with config.json and manifest.json (default: generated/<env>/ of "
             "the project).")] = None,
    key: Annotated[list[str] | None, typer.Option(
        "--key", show_default=False,
        help="Key or glob the service reads (repeatable; default: every key): only the "
             "secrets it covers are checked, e.g. --key magds in magds's pod.")] = None,
    output_format: Annotated[str, typer.Option("--format", "-f",
                                               help="text or json.")] = "text",
    project: ProjectOption = None,
) -> None:
    """Container entrypoint check: exit 1 listing the env vars of secrets that are missing
    or empty, or whose values fail the schema's x-magcfg-secret-value constraints (names
    only, never values). --key: only the secrets of the keys the service reads."""
    from ..secrets.check_env import check_env as run_check

    if output_format not in ("text", "json"):
        _stderr(f"error: unknown format {output_format!r} (text or json)")
        raise typer.Exit(2)
    # An artifact given is named as given; the project's, as the project's files.
    top = _top(None, project) if artifact is None else None
    try:
        if artifact is None:
            from ..durable import real_directory
            from ..project import load_project

            proj = load_project(project)
            proj.check_envs([env])
            display = f"{proj.output}/{env}"
            result = run_check(real_directory(proj.root, display), env=env, volume=False,
                               display=display, keys=key or ())
        else:
            result = run_check(_artifact_directory(artifact, "check-env"), env=env,
                               keys=key or ())
    except MagcfgError as exc:
        if output_format == "json":
            _fail_report("check-env", exc, top)
        _fail(exc, top)
    if output_format == "json":
        _print_json("check-env", result.as_json())
    elif result.ok:
        _stderr(f"check-env: {env}: all {len(result.required)} secret(s) resolvable")
    else:
        if result.missing:
            _stderr(f"check-env: {env}: {len(result.missing_names)} secret env var(s) "
                    "missing or empty:")
            for r in result.missing:
                _stderr(f"  {r.name}  (for {r.key}, {r.scheme}://)")
        if result.invalid:
            _stderr(f"check-env: {env}: {len(result.invalid)} secret(s) fail the schema's "
                    "constraints on their value:")
            for r in result.invalid:
                _stderr(f"  {r.name} (for {r.key}, {r.scheme}://): "
                        + "; ".join(message for _, message in r.failed))
    if not result.ok:
        raise typer.Exit(1)

def _artifact_directory(given: str, command: str) -> Path:
    """``--artifact``'s directory; a usage error for a registry reference (``oci://``
    for a ``command`` that reads none, or one spelled as a directory that does not
    exist: cosign's form, ``oci:/...``), which a directory's path would mangle
    (``oci:/...``) and report as a missing manifest."""
    from ..errors import UsageError
    from ..oci.reference import misspelled_reference, parse_reference

    misspelled = misspelled_reference(given)
    if command == "verify" and misspelled is not None:
        raise UsageError(f"--artifact {given}: {misspelled[1]}")
    reference = misspelled[0] if misspelled is not None else None
    if given.startswith("oci://") or reference is not None:
        try:
            named = str(reference or parse_reference(given)).removeprefix("oci://")
        except UsageError:
            named = "REGISTRY/REPO:TAG"
        # oras pulls only layers that carry a file name, which a Flux artifact's does not.
        raise UsageError(f"--artifact {given}: {command} reads an artifact directory (the "
                         "--out of magcfg watch, a ConfigMap volume, or a registry's "
                         f"artifact pulled into one: crane export {named} - | tar -x -C "
                         "DIR), not a registry")
    return Path(given)


# ---------------------------------------------------------------- secrets: verify (live Vault)

secrets_app = typer.Typer(name="secrets", help="Check secret references against Vault.",
                          no_args_is_help=True)
app.add_typer(secrets_app)


@secrets_app.command("verify")
def secrets_verify(
    env: Annotated[str, typer.Option("--env", "-e", help="Environment whose references to check.")],
    output_format: Annotated[str, typer.Option("--format", "-f", help="text or json.")] = "text",
    project: ProjectOption = None,
) -> None:
    """Check on a live Vault/OpenBao (VAULT_ADDR, VAULT_TOKEN or AppRole/Kubernetes auth)
    that every Vault reference of ENV resolves; exit 1 locating each that does not.
    Never prints a value."""
    from ..project import load_project
    from ..review.secrets_verify import format_report, verify_secrets

    if output_format not in ("text", "json"):
        _stderr(f"error: unknown format {output_format!r} (text or json)")
        raise typer.Exit(2)
    top = _top(None, project)
    try:
        report = verify_secrets(load_project(project), env, os.environ)
    except MagcfgError as exc:
        if output_format == "json":
            _fail_report("secrets verify", exc, top)
        _fail(exc, top)
    if output_format == "json":
        _print_json("secrets verify", report.as_json(top.name))
    else:
        for line in format_report(report, top.name):
            _stderr(line)
    if not report.ok:
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
    from ..signing.keys import generate_key_pair

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
    from ..durable import real_directory
    from ..project import load_project, project_option
    from ..signing.directory import sign_artifact

    private_key = _signing_key(key)
    top = _top(None, project)
    try:
        proj = load_project(project)
        envs = proj.check_envs(env)
        # The commands its errors advise, said to whoever runs it at the top, as CI does.
        found_by = project_option(proj, top.name)
        results = [(e, sign_artifact(real_directory(proj.root, f"{proj.output}/{e}"), e,
                                     private_key, display=f"{proj.output}/{e}",
                                     attestation=attestation, project=found_by))
                   for e in envs]
    except MagcfgError as exc:
        _fail(exc, top)
    if not quiet:
        for e, result in results:
            for name in result.written:
                _stderr(f"wrote {printable(top.name(name))}")
            _stderr(f"signed {printable(top.name(f'{proj.output}/{e}'))} "
                    f"(version {result.version}) with key {result.key_id}")


def _trusted_keys(proj: "Project", public_key: list[Path] | None
                  ) -> "list[Ed25519PublicKey]":
    """The keys ``--public-key`` names, else the project file's ``signing.public_keys``."""
    from ..signing.keys import load_public_key
    from ..signing.trust import project_public_keys

    keys = ([load_public_key(p) for p in public_key] if public_key
            else project_public_keys(proj))
    if not keys:
        raise UsageError("no trusted public key: pass --public-key FILE or list "
                         "signing.public_keys in the project file")
    return keys


@app.command()
def verify(
    env: EnvsOption = None,
    public_key: Annotated[list[Path] | None, typer.Option(
        "--public-key", "-k", help="Trusted public key PEM (repeatable; default: the "
        "project file's signing.public_keys).", show_default=False)] = None,
    project: ProjectOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print errors only.")] = False,
    output_format: ReportFormatOption = "text",
    artifact: Annotated[str | None, typer.Option(
        "--artifact", "-a", help="Verify this artifact instead of the project's: a directory "
        "(pulled with crane export, a ConfigMap volume, watch's --out) or "
        "oci://REGISTRY/REPO[:TAG|@sha256:...]; needs one --env and --public-key.",
        show_default=False)] = None,
    insecure_registry: Annotated[bool, typer.Option(
        "--insecure-registry", help="With --artifact oci://...: plain HTTP, to a registry on "
        "127.0.0.1 only.")] = False,
) -> None:
    """Check each artifact's signature, that its manifest is well formed and made for that
    environment, and the sha256 of every file it lists.

    Exit 1 naming the file on any mismatch, a missing signature, an untrusted signer,
    another environment's artifact or a file that is not a regular file. With
    --artifact, also a file the artifact should not hold, a configmap.yaml or
    kustomization.yaml that is not the one its signed files make, and for oci:// a
    missing or untrusted cosign signature.
    """
    from ..durable import real_directory
    from ..project import load_project, project_option
    from ..signing.directory import verify_artifact
    from ..signing.keys import KeyLoadError
    from ..signing.signatures import VerifiedArtifact

    as_json = _report_format(output_format)
    if artifact is not None:
        _verify_given(artifact, env, public_key, project, insecure_registry, quiet, as_json)
        return
    if insecure_registry:
        _fail(UsageError("--insecure-registry goes with --artifact oci://..."))
    top = _top(None, project)
    try:
        proj = load_project(project)
        envs = proj.check_envs(env)
        keys = _trusted_keys(proj, public_key)
    except MagcfgError as exc:
        # A --public-key file as the operator named it; the project's keys are its files.
        named = None if public_key and isinstance(exc, KeyLoadError) else top
        if as_json:
            _fail_report("verify", exc, named, artifacts=[])
        _fail(exc, named)
    failed = False
    verified: list[tuple[str, str, VerifiedArtifact | None]] = []
    problems: list[Diagnostic] = []
    for e in envs:
        display = f"{proj.output}/{e}"
        try:
            result = verify_artifact(real_directory(proj.root, display), keys, environment=e,
                                     display=display,
                                     project=project_option(proj, top.name))
        except MagcfgError as exc:
            if not as_json:
                print(top.error(exc).format(), file=sys.stderr)
            failed = True
            verified.append((e, display, None))
            problems.extend(exc.diagnostics)
            continue
        verified.append((e, display, result))
        if not quiet and not as_json:
            extra = ", attestation ok" if result.attestation_checked else ""
            _stderr(f"verified {printable(top.name(display))}: version {result.version}, "
                    f"{len(result.files)} file(s), key {result.key_id}{extra}")
    if as_json:
        _print_report("verify_report", top, verified, problems)
    if failed:
        raise typer.Exit(1)


def _verify_given(artifact: str, env: list[str] | None, public_key: list[Path] | None,
                  project: Path | None, insecure: bool, quiet: bool, as_json: bool) -> None:
    """``verify --artifact``: an artifact the operator names, every file of it, against
    the keys named (named as given, as the artifact is)."""
    from ..review import reports
    from ..signing.directory import read_whole, verify_whole
    from ..signing.keys import load_public_key

    if not env or len(env) != 1:
        _fail(UsageError("--artifact is the artifact of one environment: pass --env once"))
    if not public_key:
        _fail(UsageError("--artifact needs the keys you trust: pass --public-key FILE"))
    if project is not None:
        _fail(UsageError("--project and --artifact are exclusive: an artifact is verified "
                         "by itself"))
    (environment,) = env
    display = artifact
    try:
        keys = [load_public_key(p) for p in public_key]
    except MagcfgError as exc:
        if as_json:
            _fail_report("verify", exc, None, artifacts=[])
        _fail(exc)
    members: Mapping[str, bytes]
    built_by: str | None = None
    try:
        if artifact.startswith("oci://"):
            members, prefix = _pulled(artifact, keys, insecure)
            display = prefix.rstrip("/")
        else:
            if insecure:
                raise UsageError("--insecure-registry goes with --artifact oci://...")
            _artifact_directory(artifact, "verify")
            members, prefix = read_whole(artifact)
            built_by = _built_by(artifact)
        result = verify_whole(members, keys, environment=environment, prefix=prefix,
                              project=built_by)
    except MagcfgError as exc:
        if not as_json or exc.exit_code != 1:
            _fail(exc)
        sys.stdout.write(reports.render(reports.verify_report(
            [(environment, display, None)], exc.diagnostics, name=str)))
        raise typer.Exit(1) from None
    if as_json:
        sys.stdout.write(reports.render(reports.verify_report(
            [(environment, display, result)], [], name=str)))
    elif not quiet:
        extra = ", attestation ok" if result.attestation_checked else ""
        _stderr(f"verified {printable(display)}: version {result.version}, "
                f"{len(result.files)} file(s), key {result.key_id}{extra}")


def _built_by(directory: str) -> str | None:
    """``project.output_project_option`` of the artifact directory ``directory``: None
    in the sidecar's install, which lacks the libraries that read a project file and
    has no project to sign."""
    from ..version import COMPILER_MODULES

    try:
        from ..project import output_project_option

        return output_project_option(directory)
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] not in COMPILER_MODULES:
            raise
        return None


def _pulled(text: str, keys: "list[Ed25519PublicKey]", insecure: bool
            ) -> tuple[dict[str, bytes], str]:
    """The files of the artifact an ``oci://`` reference names, pulled as the Kernel
    pulls it (a cosign signature by one of ``keys`` over its digest), and the prefix that
    names them: ``oci://REGISTRY/REPO@sha256:.../``."""
    from ..errors import Diagnostic
    from ..oci.reference import Reference, parse_reference
    from ..oci.registry import Registry
    from ..runtime.registry import SourceRefused, pull

    reference = parse_reference(text)
    tag = reference.tag or ("latest" if not reference.digest else None)
    client = Registry(reference, insecure=insecure, insecure_option="--insecure-registry")
    digest = reference.digest or client.manifest_digest(reference.repository, str(tag))
    if digest is None:
        raise MagcfgError([Diagnostic(text, None, None, "no such tag in the registry",
                                      code="missing_file")])
    try:
        _, members = pull(client, Reference(reference.host, reference.repository), digest,
                          keys)
    except SourceRefused as exc:
        raise MagcfgError([Diagnostic(exc.where or text, None, None, exc.what,
                                      code=exc.reason)]) from None
    return members, f"{Reference(reference.host, reference.repository, None, digest)}/"


# ---------------------------------------------------------------- diff / promote

FormatOption = Annotated[
    str, typer.Option("--format", "-f", help="Output format: text, json or markdown.")]


def _use_color(mode: str) -> bool:
    if mode not in ("auto", "always", "never"):
        from ..errors import UsageError

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
    import gc

    from ..errors import UsageError

    # As for build: two large environments are millions of objects, none in a cycle,
    # which the collector would scan again and again; the process ends through os._exit.
    gc.disable()
    top = _top(None, project)
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
        from ..project import load_project
        from ..review import diff as diffs

        proj = load_project(project)
        if against is None and output_format == "text":
            assert old is not None and new is not None
            # Formatted by the processes that describe the changes.
            identical, text = diffs.diff_environments_text(proj, old, new, top.name,
                                                           color=use_color)
            sys.stdout.write(text)
            raise typer.Exit(0 if identical else 1)
        if against is not None:
            assert env is not None
            result = diffs.diff_against(proj, env, against)
        else:
            assert old is not None and new is not None
            result = diffs.diff_environments(proj, old, new)
    except MagcfgError as exc:
        if output_format == "json":
            _fail_report("diff", exc, top)
        _fail(exc, top)
    for d in result.warnings:
        _stderr(top.diagnostic(d).format())
    if output_format == "json":
        sys.stdout.write(diffs.format_json(result, top.name))
    elif output_format == "markdown":
        sys.stdout.write(diffs.format_markdown(result, top.name))
    else:
        sys.stdout.write(diffs.format_text(result, top.name, color=use_color))
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
    from ..durable import check_operator_target
    from ..project import load_project, project_option
    from ..review import promote as promotion

    top = _top(None, project)
    try:
        proj = load_project(project)
    except MagcfgError as exc:
        _fail(exc, top)
    if pr_body_file is not None and not dry_run:
        try:  # the operator's file, as named
            check_operator_target(pr_body_file, proj.root, "--pr-body")
        except MagcfgError as exc:
            _fail(exc)
    try:
        plan = promotion.plan_promotion(proj, from_env, to_env, key or None, include_secrets)
        plan.command = promotion.rerun_command(from_env, to_env, key or (), include_secrets,
                                               project_option(proj, top.name))
        if dry_run:
            sys.stdout.write(promotion.format_plan(plan, top.name))
            if not plan.diff.identical:
                from ..review.diff import format_text

                sys.stdout.write("\n" + format_text(plan.diff, top.name,
                                                    color=_use_color("auto")))
            return
        if plan.empty:
            sys.stdout.write(promotion.format_plan(plan, top.name))
            _stderr("nothing to promote: no branch or commit created")
            return
        done = promotion.apply_promotion(proj, plan, branch)
        body = promotion.pr_body(proj, plan, top.name, done)
    except MagcfgError as exc:
        _fail(exc, top)
    if pr_body_file is not None:
        try:
            promotion.write_text(pr_body_file, body, proj.root)
        except MagcfgError as exc:
            _fail(exc)
    if pr_body_file is not None:
        _stderr(f"wrote the PR body to {pr_body_file}")
    else:
        sys.stdout.write(body)
    _stderr(f"promoted {len(plan.edits)} value(s) {from_env} -> {to_env} on branch "
            f"{done.branch} (commit {done.commit[:10]}); now on that branch")


# ---------------------------------------------------------------- report


@app.command()
def report(
    html_out: Annotated[Path, typer.Option(
        "--html", help="Write the page to this file (self-contained static HTML).",
        show_default=False)],
    env: EnvsOption = None,
    against: Annotated[str | None, typer.Option(
        "--against", help="Git ref (commit, branch, tag): also show what changed since it, "
        "per environment.", show_default=False)] = None,
    project: ProjectOption = None,
) -> None:
    """Write the config matrix as one HTML page: every key by environment, coloured by the
    layer that set it, with differences, redundant overrides, restart-only and
    allow-listed keys marked, and with --against what a change alters where."""
    from ..durable import check_operator_target
    from ..project import load_project
    from ..review import report as reports

    top = _top(None, project)
    try:
        proj = load_project(project)
    except MagcfgError as exc:
        _fail(exc, top)
    try:  # the operator's file, as named
        check_operator_target(html_out, proj.root, "--html")
    except MagcfgError as exc:
        _fail(exc)
    try:
        result = reports.build_report(proj, env, against)
    except MagcfgError as exc:
        _fail(exc, top)
    try:
        reports.write_output(html_out, result.html, proj.root)
    except MagcfgError as exc:
        _fail(exc)
    for d in result.warnings:
        _stderr(top.diagnostic(d).format())
    _stderr(f"wrote {html_out}: {result.keys} keys, {len(result.environments)} environments"
            + (f", {result.changes} change(s) since {against}" if against is not None else "")
            + f" ({len(result.html)} bytes)")


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
    since: Annotated[str | None, typer.Option(
        "--since", help="Also check each file a commit in REF..HEAD added or changed, as "
        "that commit holds it (a pull request's history, not only its result).",
        metavar="REF", show_default=False)] = None,
    project: ProjectOption = None,
) -> None:
    """Check the repository for the secrets rules (MAG001-MAG007); exit 1 on findings."""
    from ..lint.cli import run_lint

    code = run_lint(paths or [], fmt=fmt, baseline=baseline, write_baseline=write_baseline,
                    output=output, project=project, exclude=exclude or [], since=since)
    if code:
        raise typer.Exit(code)

# ---------------------------------------------------------------- watch


@app.command()
def watch(
    artifact: Annotated[str, typer.Option("--artifact", "-a", help="Artifact directory to "
                                          "watch (generated/<env>/ or a ConfigMap volume), or "
                                          "oci://REGISTRY/REPO:TAG to follow a registry tag.")],
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
                                                      "each publish, e.g. 4242:HUP: a PID that "
                                                      "stays the app's (docs/runtime.md; in a "
                                                      "pod, PID 1 is not the app).",
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
    metrics_port: Annotated[int | None, typer.Option("--metrics-port", help=_help(
        "Serve Prometheus metrics on this port (needs magcfg[metrics])."), min=1, max=65535,
                                                     show_default=False)] = None,
    insecure_registry: Annotated[bool, typer.Option("--insecure-registry", help="Plain HTTP "
                                                    "to an oci:// registry on 127.0.0.1 "
                                                    "only.")] = False,
    registry_interval: Annotated[float, typer.Option("--registry-interval", help="Seconds "
                                                     "between polls of an oci:// tag.",
                                                     min=0.05)] = 30.0,
    registry_timeout: Annotated[float, typer.Option("--registry-timeout", help="Most seconds "
                                                    "one poll of an oci:// tag may take, all "
                                                    "its requests together.",
                                                    min=0.05)] = 120.0,
) -> None:
    """Sidecar: verify the artifact, publish it into --out, notify the app; JSON events on stdout."""
    from ..artifact import ENVIRONMENT_NAME
    from ..errors import UsageError
    from ..runtime.kernel import KernelStartError
    from ..runtime.sidecar import Sidecar, SidecarOptions, parse_exec, parse_signal

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
    source: Path | str = artifact if artifact.startswith("oci://") else Path(artifact)
    options = SidecarOptions(artifact=source, public_keys=list(public_key), out=out,
                             environment=env, exec_command=exec_command,
                             signal_target=target, state_dir=state_dir, schema=schema,
                             allow_rollback=allow_rollback, poll_interval=poll_interval,
                             audit_log=audit_log, metrics_port=metrics_port,
                             insecure_registry=insecure_registry,
                             registry_interval=registry_interval,
                             registry_timeout=registry_timeout)
    try:
        sidecar = Sidecar(options)
        code = sidecar.run()
    except (KernelStartError, MagcfgError) as exc:
        _fail(exc)
    except RuntimeError as exc:  # optional packages missing
        if no_new_task(exc):  # the limit on processes: the CLI's one line says it
            raise
        _fail(MagcfgError(str(exc)))
    except ValueError as exc:  # a bad oci:// reference, --insecure-registry elsewhere
        _fail(UsageError(str(exc)))
    raise typer.Exit(code)

# ---------------------------------------------------------------- adoption: init / schema

@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Repository to start the project in.")
                         ] = Path("."),
    env: Annotated[list[str] | None, typer.Option(
        "--env", "-e", help="Environment (repeatable; default: dev, staging, production).",
        show_default=False)] = None,
    ci: Annotated[str, typer.Option("--ci", help="CI pipeline to write: github, gitlab, "
                                    "woodpecker or none.")] = "github",
) -> None:
    """Start a project that builds: project file, layers, a starting schema, .gitignore,
    CI pipeline and pre-commit hook (at the top of the git repository, for a project
    below it), then the first build."""
    from ..scaffold.init import DEFAULT_ENVIRONMENTS, init_project

    try:
        result = init_project(directory, env or DEFAULT_ENVIRONMENTS, ci)
    except MagcfgError as exc:
        _fail(exc)
    for name in result.written:
        _stderr(f"wrote {printable(name)}")
    for name in result.kept:
        _stderr(f"kept {printable(name)} (exists)")
    for note in result.notes:
        _stderr(printable(note.rstrip("\n"), lines=True))
    _stderr(f"built {', '.join(result.built)}: refine {printable(result.schema)}, then commit")


schema_app = typer.Typer(name="schema", help="Write JSON Schemas: from layers, for editors.",
                         no_args_is_help=True)
app.add_typer(schema_app)


@schema_app.command("infer")
def schema_infer(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write to this file "
                                             "(default: stdout).")] = None,
    project: ProjectOption = None,
) -> None:
    """Infer a strict starting JSON Schema from the layers of every environment."""
    from ..project import load_project
    from ..scaffold.infer import infer_schema, schema_bytes

    top = _top(None, project)
    try:
        proj = load_project(project)
        data = schema_bytes(infer_schema(proj))
    except MagcfgError as exc:
        _fail(exc, top)
    _write_output(out, data, proj.root)


@app.command("version")
def version_command() -> None:
    """Print magcfg's version (as --version does)."""
    _version(True)


@schema_app.command("layer")
def schema_layer(
    key: Annotated[str | None, typer.Option("--key", "-k", help="Only the content under "
                                            "this dotted key (a layer with a key prefix).",
                                            show_default=False)] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write to this file "
                                             "(default: stdout).")] = None,
    project: ProjectOption = None,
) -> None:
    """Write the JSON Schema one layer file must satisfy (every key optional, !unset and
    !replace allowed), for yaml-language-server and editors."""
    from ..compiler import Compiler
    from ..project import load_project
    from ..scaffold.editors import layer_schema_of
    from ..scaffold.infer import schema_bytes

    top = _top(None, project)
    try:
        proj = load_project(project)
        schema = Compiler(proj).schema()
        if schema is None:
            raise UsageError("the project names no JSON Schema (schema.json)")
        data = schema_bytes(layer_schema_of(schema, key))
    except MagcfgError as exc:
        _fail(exc, top)
    _write_output(out, data, proj.root)


@schema_app.command("project")
def schema_project(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write to this file "
                                             "(default: stdout).")] = None,
) -> None:
    """Write the JSON Schema of magcfg.yaml itself, for editors."""
    from ..scaffold.editors import project_schema

    _write_output(out, project_schema(), Path.cwd())


def _write_output(out: Path | None, data: bytes, checkout: Path) -> None:
    """``data`` on stdout, or into the operator's ``--out`` file: a regular file or
    absent (its missing directories inside ``checkout`` are created); never through a
    symlink, since CI runs these commands in a checkout a pull request controls
    (``write_operator_file``)."""
    if out is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    from ..durable import write_operator_file

    try:
        write_operator_file(out, data, checkout=checkout, create_directories=True)
    except MagcfgError as exc:
        _fail(exc)



def _unwrap_help(*apps: typer.Typer) -> None:
    """Docstrings are hard-wrapped for the source; the help screen re-wraps them to the
    terminal, so each paragraph becomes one line first (or its line ends would leave
    orphan words). Blank lines still separate paragraphs. Brackets are kept (``_help``)."""
    for group in apps:
        for info in group.registered_commands:
            doc = info.help or (info.callback.__doc__ if info.callback else None)
            if doc:
                paragraphs = inspect.cleandoc(doc).split("\n\n")
                info.help = _help("\n\n".join(" ".join(p.split()) for p in paragraphs))

# ---------------------------------------------------------------- publish (delivery)


@app.command()
def publish(
    target: Annotated[str | None, typer.Argument(
        help="oci://REGISTRY/REPOSITORY[:TAG]: push one environment to a registry (tagged "
        "with its manifest version, and TAG too). Without it: commit to --branch.",
        metavar="[OCI_REFERENCE]", show_default=False)] = None,
    env: EnvsOption = None,
    branch: Annotated[str, typer.Option("--branch", "-b", help="Without OCI_REFERENCE: the "
                                        "branch a GitOps controller syncs.")] = "deploy",
    push: Annotated[str | None, typer.Option("--push", help="Without OCI_REFERENCE: remote to "
                                             "push the branch to (default: only commit it "
                                             "locally).", show_default=False)] = None,
    public_key: Annotated[list[Path] | None, typer.Option(
        "--public-key", help="Without OCI_REFERENCE: trusted public key PEM (repeatable; "
        "default: the project file's signing.public_keys).", show_default=False)] = None,
    key: Annotated[Path | None, typer.Option("--key", "-k", help="With OCI_REFERENCE: private "
                                             "key PEM file that signs for cosign (default: "
                                             "$MAGCFG_SIGNING_KEY); one of the project's "
                                             "trusted keys.", show_default=False)] = None,
    revision: Annotated[str | None, typer.Option("--revision", help="With OCI_REFERENCE: source "
                                                 "revision to annotate (default: "
                                                 "<branch>@sha1:<commit> of the checkout).",
                                                 show_default=False)] = None,
    source: Annotated[str | None, typer.Option("--source", help="With OCI_REFERENCE: source "
                                               "repository URL to annotate (a login in "
                                               "it left out).",
                                               show_default=False)] = None,
    insecure: Annotated[bool, typer.Option("--insecure", help="With OCI_REFERENCE: plain HTTP, "
                                           "for a registry on 127.0.0.1 only (tests, local "
                                           "mirrors).")] = False,
    project: ProjectOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print errors only.")] = False,
    output_format: ReportFormatOption = "text",
) -> None:
    """Deliver signed, verified artifacts; nothing leaves unless it verifies.

    With OCI_REFERENCE: push generated/<env>/ of one --env to an OCI registry (Flux
    OCIRepository format) with a cosign signature and attestation; prints the digest
    reference in cosign's form (stderr names the oci:// ones watch --artifact and the
    Kernel take: the tag to follow, the digest pinned). Without: commit the signed
    generated/ of HEAD onto --branch (message carries [skip ci]) and push it with
    --push; prints the deploy commit. --format json: every form in one report.
    """
    as_json = _report_format(output_format)
    top = _top(None, project)

    warnings: list[Diagnostic] = []  # of files the operator named: named as given

    def failed(exc: MagcfgError, named: "FromTop | None") -> NoReturn:
        if as_json:
            _fail_report("publish", exc, named, warnings, target=target,
                         branch=None if target else branch, artifacts=[])
        _fail(exc, named)

    try:
        if target is None:
            if key or revision or source or insecure:
                raise UsageError("--key, --revision, --source and --insecure go with an "
                                 "oci:// reference")
        else:
            if push is not None or public_key or branch != "deploy":
                raise UsageError("--branch, --push and --public-key go without an oci:// "
                                 "reference")
            if not env or len(env) != 1:
                raise UsageError("an oci:// reference publishes one environment: pass "
                                 "--env once")
    except MagcfgError as exc:
        failed(exc, top)
    if target is None:
        _publish_branch(project, env, branch, push, public_key, quiet, as_json, failed)
        return
    assert env is not None  # one --env, checked above
    _publish_oci(project, env[0], target, key, revision, source, insecure, quiet, as_json,
                 failed, warnings)


def _publish_branch(project: Path | None, env: list[str] | None, branch: str,
                    push: str | None, public_key: list[Path] | None, quiet: bool,
                    as_json: bool, failed: "Callable[[MagcfgError, FromTop | None], NoReturn]"
                    ) -> None:
    from ..project import load_project
    from ..secrets.redaction import without_login
    from ..signing.deploy_branch import publish as publish_artifacts
    from ..signing.keys import KeyLoadError

    top = _top(None, project)
    try:
        proj = load_project(project)
        top = _top(proj, project)
        envs = proj.check_envs(env)
        keys = _trusted_keys(proj, public_key)
        done = publish_artifacts(proj, envs, keys, branch, remote=push)
    except MagcfgError as exc:
        # A --public-key file as the operator named it; the project's keys are its files.
        failed(exc, None if public_key and isinstance(exc, KeyLoadError) else top)
    if as_json:
        _print_report("branch_publish_report", top, proj.output, done,
                      without_login(push) if push else None)
        return
    versions = ", ".join(f"{e} v{v}" for e, v in done.versions.items())
    if done.commit is None:
        if not quiet:
            _stderr(f"{branch} already holds the signed artifacts of {done.source[:12]} "
                    f"({versions}): nothing to publish")
        return
    if not quiet:
        _stderr(f"published {versions} of {done.source[:12]} to {branch}"
                + (f" and pushed it to {printable(without_login(push))}"
                   if push and done.pushed else ""))
    print(done.commit)


def _publish_oci(project: Path | None, env: str, target: str, key: Path | None,
                 revision: str | None, source: str | None, insecure: bool,
                 quiet: bool, as_json: bool,
                 failed: "Callable[[MagcfgError, FromTop | None], NoReturn]",
                 warnings: list[Diagnostic]) -> None:
    from ..oci.publish import publish as publish_artifact
    from ..oci.reference import parse_reference
    from ..project import load_project

    top = _top(None, project)
    try:
        reference = parse_reference(target)
    except MagcfgError as exc:
        failed(exc, top)
    try:
        private_key, warning = _private_key(key)
    except MagcfgError as exc:
        failed(exc, None)  # the operator's file, as named
    if warning is not None:
        if not as_json:
            _stderr(warning.format())
        warnings.append(warning)
    try:
        proj = load_project(project)
        top = _top(proj, project)
        proj.check_envs([env])
        result = publish_artifact(proj, env, reference, private_key, insecure=insecure,
                                  revision=revision, source=source)
    except MagcfgError as exc:
        failed(exc, top)
    directory = f"{proj.output}/{env}"
    if as_json:
        _print_report("oci_publish_report", top, str(reference), env, directory, result,
                      warnings)
        return
    if not quiet:
        for name in result.pushed:
            _stderr(f"pushed {name}")
        state = "published" if result.pushed else "already published"
        same = (": the registry holds this version's files, under a manifest that differs "
                "only in what the build read" if result.rebuilt else "")
        _stderr(f"{state} {printable(top.name(directory))} (version {result.version}, key "
                f"{result.key_id}, revision {result.revision}){same}")
        # stdout is cosign's form (cosign, crane, oras and docker take no scheme); what
        # magcfg watch --artifact and the Kernel take is oci://, named here with what
        # each form is for.
        if result.follow is not None:
            _stderr(f"follow: {result.follow} "
                    "(watch --artifact, Kernel: each version published to the tag)")
        _stderr(f"pinned: {result.pinned} (this version only); cosign's form on stdout")
    print(result.cosign_form)


# ---------------------------------------------------------------- lsp


@app.command()
def lsp(
    stdio: Annotated[bool, typer.Option("--stdio", help="Speak LSP on stdin/stdout (the only "
                                        "transport; accepted because editors pass it).")] = True,
) -> None:
    """Language server for layer files (diagnostics as you type, hover, definition,
    references, completion, quick fixes); needs magcfg[lsp]."""
    try:
        from ..lsp.server import serve
    except ImportError as exc:
        _fail(MagcfgError(f"magcfg lsp needs the lsp extra: pip install 'magcfg[lsp]' ({exc})"))
    serve()
    # The client said exit and pygls closed stdin and stdout: nothing is left to flush.
    os._exit(0)


# After the last command, or the ones below would keep their line ends.
_unwrap_help(app, secrets_app, keys_app, schema_app)


def app_for(args: list[str]) -> typer.Typer:
    """The app with only the command ``args`` start with, when they name one.

    Click is handed every command's parameters, made from their annotations, at each
    start (~8 ms for the 18 commands; 1 ms for one), and a run uses one command. Help of
    the whole app, shell completion and a name that is no command get the whole app, so
    that they list, complete and suggest as before.
    """
    if not args or any(name.startswith("_MAGCFG_COMPLETE") for name in os.environ):
        return app
    from copy import copy

    from typer.main import get_command_name, solve_typer_info_defaults

    commands = [info for info in app.registered_commands
                if (info.name or get_command_name(getattr(info.callback, "__name__", "")))
                == args[0]]
    groups = [info for info in app.registered_groups
              if solve_typer_info_defaults(info).name == args[0]]
    if not commands and not groups:
        return app
    one = copy(app)
    one.registered_commands, one.registered_groups = commands, groups
    return one
