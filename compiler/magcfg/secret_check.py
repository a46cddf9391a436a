"""The build's secret rules, run on each merged, schema-valid environment.

* A key the schema marks ``x-magcfg-secret`` holds a reference (or null), never a
  literal; any other key never holds a reference.
* References are well-formed, name an allowed mount and an allowed path prefix, and the
  app segment after the prefix is the top-level key that uses it: an app reads only its
  own Vault path (``secret/data/k3s/<app>`` and below), so its policy grant and its
  Kubernetes Secret stay its own.
* ``vault+direct://`` needs the app's Direct-Vault opt-in (with justification) in the
  project file; External Secrets references use the store's mount.
* Two secret keys never map to the same env var name.

No message quotes a value: a literal or a malformed reference may be the secret itself.
Every problem names the file and line that set the key (its provenance).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import Diagnostic
from .secret_settings import SecretSettings, load_secret_settings
from .secrets import SecretRef, env_var_name, looks_like_reference, parse_reference, syntax_problem

if TYPE_CHECKING:
    from .compiler import CompileContext


def check_secrets(context: CompileContext) -> list[Diagnostic]:
    """Document check (compiler extension point): every secret rule, located."""
    settings, errors = load_secret_settings(context.project)
    index = context.schema.index if context.schema is not None else None
    found: list[tuple[tuple[str, ...], str, str]] = []  # (keypath, message, code)
    env_vars: dict[str, tuple[str, ...]] = {}

    def leaf(keypath: tuple[str, ...], value: Any, secret: bool) -> None:
        dotted = ".".join(keypath)
        if secret:
            if value is None:
                return
            if not isinstance(value, str) or not looks_like_reference(value):
                found.append((keypath, "a secret key holds a literal value: write a reference "
                              "instead (vault://<mount>/<path>#<key> or env://VAR); the value "
                              "is not shown", "secret-literal"))
                return
        elif not isinstance(value, str) or not looks_like_reference(value):
            return
        ref = parse_reference(value)
        if ref is None:
            found.append((keypath, syntax_problem(value), "secret-syntax"))
            return
        if index is not None and not secret:
            found.append((keypath, f"a {ref.scheme}:// secret reference in a key the schema does "
                          "not mark x-magcfg-secret: mark the key secret in the schema, or put "
                          "a plain value here", "secret-misplaced"))
            return
        for message in _reference_problems(ref, keypath, settings):
            found.append((keypath, message, "secret-reference"))
        if ref.scheme == "vault":
            name = env_var_name(keypath)
            other = env_vars.setdefault(name, keypath)
            if other != keypath:
                found.append((keypath, f"keys {'.'.join(other)} and {dotted} both map to the "
                              f"env var {name}: rename one", "secret-env-clash"))

    def walk(value: Any, keypath: tuple[str, ...], secret: bool) -> None:
        secret = secret or (index is not None and bool(keypath) and index.is_secret(keypath))
        if isinstance(value, dict):
            for k in sorted(value):
                walk(value[k], (*keypath, k), secret)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, (*keypath, str(i)), secret)
        else:
            leaf(keypath, value, secret)

    walk(context.config, (), False)
    for keypath, message, code in found:
        errors.append(_located(context, keypath, message, code))
    return errors


def _reference_problems(ref: SecretRef, keypath: tuple[str, ...],
                        settings: SecretSettings) -> list[str]:
    if not ref.is_vault:
        return []
    out = []
    if ref.mount not in settings.mounts:
        out.append(f"Vault mount {ref.mount!r} is not allowed here (secrets.vault.mounts: "
                   f"{', '.join(settings.mounts)})")
    owner = settings.app_of(ref.path)
    if owner is None:
        shown = ", ".join(repr(p) for p in settings.path_prefixes)
        out.append(f"the Vault path must be <prefix><app>[/...] with a prefix of "
                   f"secrets.vault.path_prefixes ({shown})")
    elif owner[1] != keypath[0]:
        out.append(f"the reference reads the Vault path of app {owner[1]!r} from a key of "
                   f"{keypath[0]!r}: an app reads only {owner[0]}{keypath[0]} and below")
    if ref.direct and keypath[0] not in settings.direct_vault:
        out.append(f"vault+direct:// needs the project file to opt {keypath[0]!r} in to "
                   "Direct-Vault reads: secrets.direct_vault: [{app: ..., justification: ...}]")
    if ref.scheme == "vault" and ref.mount in settings.mounts and ref.mount != settings.store_mount:
        out.append(f"External Secrets reads mount {settings.store_mount!r} through store "
                   f"{settings.store_name!r}; a reference to mount {ref.mount!r} cannot be delivered")
    return out


def _located(context: CompileContext, keypath: tuple[str, ...], message: str, code: str) -> Diagnostic:
    chain = context.stack.provenance(keypath)
    dotted = ".".join(keypath)
    if chain:
        where = chain[-1]
        return Diagnostic(where.file, where.line, dotted, message, code=code)
    return Diagnostic(context.project.file, None, dotted,
                      f"{message} (environment {context.env})", code=code)
