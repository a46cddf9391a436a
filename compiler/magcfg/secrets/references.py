"""Secret references: what a layer writes where a secret belongs (docs/secrets.md).

Forms:

* ``vault://<mount>/<path>#<key>``: Vault KV v2, delivered by the External Secrets
  Operator (ExternalSecret -> Kubernetes Secret -> env var through ``secretKeyRef``);
* ``vault+direct://<mount>/<path>#<key>``: the same secret, read by the app itself from
  Vault at run time; allowed only for apps the project file opts in with a justification;
* ``env://<VAR>``: an environment variable the platform sets (local development).

This module is the light part shared by the compiler, ``magcfg lint`` and the runtime
(``check-env``): it imports nothing beyond the standard library. Nothing here ever puts
the text of a value into a message: a malformed reference may be a pasted secret.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

Scheme = Literal["vault", "vault+direct", "env"]
SCHEMES = ("vault://", "vault+direct://", "env://")
ENV_VAR_PREFIX = "MAGCFG_"
"""Prefix of the env var (and Kubernetes Secret key) that carries an ESO-delivered secret."""

# A path segment is never "." or "..": Vault resolves them (a server's path cleaning),
# so `k3s/magws/../magds` reads magds's secret, while the app rule, the isolation check
# and the policies judge the path as written.
_VAULT = re.compile(r"(vault|vault\+direct)://([a-z0-9][a-z0-9_-]*)"
                    r"((?:/(?!\.\.?[/#])[A-Za-z0-9._-]+)+)#([A-Za-z0-9._-]+)")
_ENV = re.compile(r"env://([A-Z_][A-Z0-9_]*)")
_NOT_NAME = re.compile(r"[^A-Za-z0-9]+")


class SecretRef(NamedTuple):
    """A parsed reference. Vault forms: ``mount``, ``path`` (no leading slash, no
    ``data/`` segment), ``key``; env form: ``var``."""

    scheme: Scheme
    mount: str = ""
    path: str = ""
    key: str = ""
    var: str = ""

    def __str__(self) -> str:
        if self.scheme == "env":
            return f"env://{self.var}"
        return f"{self.scheme}://{self.mount}/{self.path}#{self.key}"

    @property
    def is_vault(self) -> bool:
        return self.scheme != "env"

    @property
    def direct(self) -> bool:
        """Read from Vault by the app itself (not through External Secrets)."""
        return self.scheme == "vault+direct"

    @property
    def kv_data_path(self) -> str:
        """The KV v2 API path Vault policies name: ``<mount>/data/<path>``."""
        return f"{self.mount}/data/{self.path}"


def parse_reference(text: str) -> SecretRef | None:
    """The reference ``text`` spells, or None if it is not a well-formed reference."""
    m = _VAULT.fullmatch(text)
    if m is not None:
        scheme: Scheme = "vault" if m.group(1) == "vault" else "vault+direct"
        return SecretRef(scheme, mount=m.group(2), path=m.group(3)[1:], key=m.group(4))
    m = _ENV.fullmatch(text)
    if m is not None:
        return SecretRef("env", var=m.group(1))
    return None


def looks_like_reference(text: str) -> bool:
    """Whether ``text`` starts with a reference scheme (well-formed or not)."""
    return text.startswith(SCHEMES)


def syntax_problem(text: str) -> str:
    """Why ``text`` (which looks like a reference) is not one, without quoting it."""
    if text.startswith("env://"):
        return ("an env:// reference names one variable: env://NAME with A-Z, 0-9 and _ "
                "(not starting with a digit)")
    scheme = "vault+direct" if text.startswith("vault+direct://") else "vault"
    rest = text[len(scheme) + 3:]
    if "#" not in rest:
        return f"a {scheme}:// reference needs the secret's key after '#': {scheme}://<mount>/<path>#<key>"
    where, _, key = rest.partition("#")
    if "/" not in where:
        return f"a {scheme}:// reference needs a mount and a path: {scheme}://<mount>/<path>#<key>"
    if not key or "#" in key:
        return "the key after '#' must be one name of A-Z, a-z, 0-9, '.', '_' or '-'"
    if any(segment in (".", "..") for segment in where.split("/")[1:]):
        return (f"a {scheme}:// path has no '.' or '..' segment: Vault reads the path they "
                "lead to, not the one written, which the app and isolation rules and the "
                "policies judge")
    return (f"malformed {scheme}:// reference: the mount is lower-case [a-z0-9_-], path segments "
            "and the key use A-Z, a-z, 0-9, '.', '_' or '-'")


def env_var_name(keypath: tuple[str, ...]) -> str:
    """The env var (and Kubernetes Secret key) carrying the secret of config key
    ``keypath`` under External Secrets delivery: ``MAGCFG_`` + the dotted path in upper
    case, every run of other characters as one ``_``. ``magds.connection.password`` ->
    ``MAGCFG_MAGDS_CONNECTION_PASSWORD``.

    It depends on the key, not on the reference, so moving or rotating a secret in Vault
    changes the ExternalSecret only, never the Deployments that read the variable.
    """
    return ENV_VAR_PREFIX + "_".join(_NOT_NAME.sub("_", part).strip("_").upper()
                                     for part in keypath if part)


def references(config: Any) -> list[tuple[tuple[str, ...], SecretRef]]:
    """Every (key path, reference) in a compiled config, in order: a mapping's keys
    sorted, a list's items as they stand.

    A compiled config holds references only under secret keys (the build refuses any
    other place), so this needs no schema: it is what the runtime and ``check-env`` use
    (on plain JSON or on the runtime's frozen mappings and tuples). Found by
    :func:`reference_paths` (a config of 10^5 leaves holds a few hundred references),
    then ordered.
    """
    found = reference_paths(config)
    found.sort(key=lambda item: _order(config, item[0]))
    return found


def _order(config: Any, keypath: tuple[str, ...]) -> tuple[str | int, ...]:
    """``keypath`` with each list index as a number: two key paths first differ under
    one container, where both parts are keys or both are indices."""
    out: list[str | int] = []
    node = config
    for part in keypath:
        if isinstance(node, Mapping):
            out.append(part)
            node = node[part]
        else:
            out.append(int(part))
            node = node[int(part)]
    return tuple(out)


def reference_paths(config: Any) -> list[tuple[tuple[str, ...], SecretRef]]:
    """Every (key path, reference) in ``config``, in no particular order: what
    :func:`references` finds, several times faster on a large config (no recursion, no
    sorting, one ``startswith`` per string)."""
    out: list[tuple[tuple[str, ...], SecretRef]] = []
    stack: list[tuple[tuple[str, ...], Any]] = [((), config)]
    while stack:
        path, node = stack.pop()
        items = node.items() if isinstance(node, Mapping) else enumerate(node)
        for key, value in items:
            if type(value) is str:
                if value.startswith(SCHEMES) and (ref := parse_reference(value)) is not None:
                    out.append(((*path, str(key)), ref))
            elif isinstance(value, (Mapping, list, tuple)):
                stack.append(((*path, str(key)), value))
    return out
