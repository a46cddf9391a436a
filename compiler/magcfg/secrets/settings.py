"""The project file's ``secrets:`` and ``redact:`` sections, checked and typed.

```yaml
secrets:
  vault:
    mounts: [secret]             # KV v2 mounts references may name ("secret-{env}": one per env)
    dynamic_mounts: [database]   # dynamic-secret mounts (leased), vault+direct:// only
    path_prefixes: ["k3s/{env}/"]  # a path is <prefix><app>[/<sub>...]; {env}: one tree per env
    addresses: {staging: https://vault-staging.example:8200}   # a Vault per environment
  store: {kind: ClusterSecretStore, name: vault-backend}   # + optional mount (default: first mount)
  refresh_interval: 1h
  target_name: "{app}-secrets"   # ExternalSecret and Kubernetes Secret name per app
  namespace: magflock            # optional metadata.namespace of the ExternalSecrets
  direct_vault:                  # apps allowed vault+direct:// references
    - {app: magbackup, justification: "..."}
redact: ["magds.connection.user", "**.token"]
```
Every section and key is optional; the defaults are the values shown except no
``path_prefixes`` (then paths are not checked against prefixes and apps, and policies
grant each referenced path itself), ``target_name: "{app}-secrets"``, no namespace, no
Direct-Vault app, no globs, no dynamic mounts.

A reference on a dynamic mount (``vault+direct://database/creds/<role>#username``) names
the engine's own path: it is not checked against ``path_prefixes`` and its policy grants
``read`` on exactly ``<mount>/<path>`` (plus lease renewal), never a KV v2 shape.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from ..errors import Diagnostic
from ..keyglob import parse_keypath
from ..project import Project, unknown_key
from ..syntax.locate import locate

_MOUNT = re.compile(r"(?:[a-z0-9]|\{env\})(?:[a-z0-9_-]|\{env\})*")
# No "." or ".." segment, as in a reference's path: Vault resolves them, so the prefix
# ``k3s/{env}/../`` would isolate nothing while it reads as if it did.
_PREFIX = re.compile(r"(?:(?!\.\.?/)(?:[A-Za-z0-9._-]|\{env\})+/)*")
_ADDRESS = re.compile(r"https?://[^\s/?#]+(?:/[^\s?#]*)?")
ENV_FIELD = "{env}"
"""In a mount or path prefix: the environment's name, so each environment's references
(and the policies granting them) live in a tree of their own."""
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
# Go's time.ParseDuration units, as ESO reads refreshInterval.
_DURATION = re.compile(r"0|(?:[0-9]+(?:\.[0-9]+)?(?:ns|us|µs|ms|s|m|h))+")
_STORE_KINDS = ("ClusterSecretStore", "SecretStore")
_DEFAULT_MOUNTS = ("secret",)
_APP = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")
_LABEL_VALUE = re.compile(r"(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_VAULT_KEYS = frozenset({"mounts", "dynamic_mounts", "path_prefixes", "addresses"})
_SECTION_KEYS = ("direct_vault", "namespace", "refresh_interval", "store", "target_name", "vault")


class SecretSettings(NamedTuple):
    """What the project file says about secrets (defaults filled in)."""

    mounts: tuple[str, ...] = _DEFAULT_MOUNTS
    dynamic_mounts: tuple[str, ...] = ()
    """Mounts of dynamic-secret engines (``database``): read through ``vault+direct://``
    only, their paths granted exactly (docs/secrets.md, "Dynamic secrets")."""
    path_prefixes: tuple[str, ...] | None = None
    store_kind: str = "ClusterSecretStore"
    store_name: str = "vault-backend"
    store_mount: str = "secret"
    refresh_interval: str = "1h"
    target_name: str = "{app}-secrets"
    namespace: str | None = None
    direct_vault: Mapping[str, str] = MappingProxyType({})
    redact: tuple[str, ...] = ()
    addresses: Mapping[str, str] = MappingProxyType({})
    environment: str | None = None
    """Set by :meth:`for_env`: ``{env}`` in mounts and prefixes is then filled in."""
    isolated_mounts: frozenset[str] = frozenset()
    isolated_prefixes: frozenset[str] = frozenset()

    def for_env(self, env: str) -> SecretSettings:
        """These settings as environment ``env`` sees them: ``{env}`` replaced in mounts,
        path prefixes and the store's mount. The mounts and prefixes that named ``{env}``
        are recorded as isolating the environment from the others."""
        def fill(text: str) -> str:
            return text.replace(ENV_FIELD, env)

        prefixes = None if self.path_prefixes is None else tuple(map(fill, self.path_prefixes))
        return self._replace(
            mounts=tuple(map(fill, self.mounts)), path_prefixes=prefixes,
            dynamic_mounts=tuple(map(fill, self.dynamic_mounts)),
            store_mount=fill(self.store_mount), environment=env,
            isolated_mounts=frozenset(fill(m) for m in (*self.mounts, *self.dynamic_mounts)
                                      if ENV_FIELD in m),
            isolated_prefixes=frozenset(fill(p) for p in self.path_prefixes or ()
                                        if ENV_FIELD in p))

    def vault_address(self, env: str) -> str | None:
        """The project's Vault address for ``env`` (``secrets.vault.addresses``), if any."""
        return self.addresses.get(env)

    def isolated(self, env: str, mount: str, path: str) -> bool:
        """Whether no other environment's policy can grant ``<mount>/<path>`` of ``env``:
        ``env`` has a Vault of its own, or the mount or the path prefix names ``{env}``
        (settings from :meth:`for_env`)."""
        if env in self.addresses:
            return True
        if mount in self.isolated_mounts:
            return True
        if self.is_dynamic(mount):
            return False  # an engine's own path: no path prefix applies
        owner = self.app_of(path)
        return owner is not None and owner[0] in self.isolated_prefixes

    def is_dynamic(self, mount: str) -> bool:
        """Whether ``mount`` is a dynamic-secret mount (``secrets.vault.dynamic_mounts``)."""
        return mount in self.dynamic_mounts

    def policy_path(self, mount: str, path: str) -> str:
        """The API path a Vault policy names to read ``<mount>/<path>``: the path itself
        on a dynamic mount, ``<mount>/data/<path>`` on a KV v2 one."""
        return f"{mount}/{path}" if self.is_dynamic(mount) else f"{mount}/data/{path}"

    def app_of(self, path: str) -> tuple[str, str] | None:
        """(prefix, app) of a Vault path: the longest allowed prefix it starts with and
        the one segment after it. None when no prefix fits or no app segment follows, or
        when the project names no prefixes."""
        for prefix in sorted(self.path_prefixes or (), key=len, reverse=True):
            if path.startswith(prefix):
                app = path[len(prefix):].split("/", 1)[0]
                return (prefix, app) if app else None
        return None

    def resource_name(self, app: str) -> str:
        """The ExternalSecret's and its Secret's name for ``app`` (a top-level key)."""
        return self.target_name.replace("{app}", label_value(app))

    def kubernetes_name_problem(self, app: str) -> str | None:
        """Why ``app`` cannot name its ExternalSecret, Secret or label, or None."""
        name, label = self.resource_name(app), label_value(app)
        if not _DNS_SUBDOMAIN.fullmatch(name) or len(name) > 253:
            return (f"the ExternalSecret name {name!r} made from secrets.target_name is not a "
                    "Kubernetes object name (lower-case a-z, 0-9, '-', '.')")
        if not _LABEL_VALUE.fullmatch(label) or len(label) > 63:
            return f"{label!r} is not a Kubernetes label value (at most 63 of A-Z a-z 0-9 - _ .)"
        return None


def label_value(app: str) -> str:
    """``app`` as Kubernetes names it: lower case, ``_`` as ``-``."""
    return app.replace("_", "-").lower()


def load_secret_settings(project: Project) -> tuple[SecretSettings, list[Diagnostic]]:
    """The typed settings and every problem of the two sections (located in the file)."""
    raw: bytes | None = None
    errors: list[Diagnostic] = []

    def err(keypath: tuple[str, ...], message: str) -> None:
        nonlocal raw
        if raw is None:
            raw = project.raw
        errors.append(Diagnostic(project.file, locate(project.file, raw, keypath) if raw else None,
                                 ".".join(keypath), message, code="project-secrets"))

    def strings(value: Any, keypath: tuple[str, ...]) -> list[str] | None:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            err(keypath, "must be a list of strings")
            return None
        return list(value)

    section = project.settings.get("secrets")
    out: dict[str, Any] = {}
    redact = project.settings.get("redact")
    if redact is not None:
        patterns = strings(redact, ("redact",))
        if patterns is not None:
            for i, p in enumerate(patterns):
                if not p or any(not seg for seg in parse_keypath(p)):
                    err(("redact", str(i)), "a redact glob is a dotted key path with * or ** "
                        "segments (a dot inside a key is written \\.)")
            out["redact"] = tuple(patterns)
    if section is None:
        return SecretSettings(**out), errors
    if not isinstance(section, dict):
        err(("secrets",), "secrets must be a mapping")
        return SecretSettings(**out), errors
    for key in section:
        if key not in _SECTION_KEYS:
            err(("secrets", str(key)), unknown_key(key, _SECTION_KEYS))

    vault = section.get("vault", {})
    if not isinstance(vault, dict) or set(vault) - _VAULT_KEYS:
        err(("secrets", "vault"), "vault is a mapping with mounts, dynamic_mounts, path_prefixes "
            "and addresses")
    else:
        addresses = vault.get("addresses", {})
        if not isinstance(addresses, dict):
            err(("secrets", "vault", "addresses"),
                "addresses maps environment names to Vault URLs (https://vault.example:8200)")
        else:
            for env_name, url in addresses.items():
                at: tuple[str, ...] = ("secrets", "vault", "addresses", str(env_name))
                if env_name not in project.environments:
                    err(at, f"{env_name!r} is not an environment of this project "
                        f"({', '.join(project.environments)})")
                elif not isinstance(url, str) or not _ADDRESS.fullmatch(url):
                    err(at, "a Vault address is an http:// or https:// URL such as "
                        "https://vault.example:8200")
            shared = [u for u in set(addresses.values()) if list(addresses.values()).count(u) > 1]
            if shared:
                err(("secrets", "vault", "addresses"),
                    "environments listed under addresses each have a Vault of their own: "
                    "two of them name the same address")
            elif not any(d.key and d.key.startswith("secrets.vault.addresses") for d in errors):
                out["addresses"] = {str(k): str(v).rstrip("/") for k, v in addresses.items()}
        for name, pattern, rule in (
                ("mounts", _MOUNT, "a non-empty list of Vault mount names ([a-z0-9_-], "
                 "and {env} for the environment's name)"),
                ("path_prefixes", _PREFIX,
                 "a non-empty list of paths ending in '/' (or \"\"); a segment may contain "
                 "{env}, and is never '.' or '..'")):
            if name not in vault:
                continue
            values = strings(vault[name], ("secrets", "vault", name))
            if values is None:
                continue
            if not values or not all(pattern.fullmatch(v) for v in values):
                err(("secrets", "vault", name), f"{name} is {rule}")
            else:
                out[name] = tuple(values)
        if "dynamic_mounts" in vault:
            at = ("secrets", "vault", "dynamic_mounts")
            values = strings(vault["dynamic_mounts"], at)
            if values is not None:
                kv = set(out.get("mounts", _DEFAULT_MOUNTS))
                if not all(_MOUNT.fullmatch(v) for v in values):
                    err(at, "dynamic_mounts is a list of Vault mount names of dynamic-secret "
                        "engines ([a-z0-9_-], and {env} for the environment's name), e.g. "
                        "[database]")
                elif len(set(values)) != len(values):
                    err(at, "dynamic_mounts names a mount twice")
                elif kv & set(values):
                    both = ", ".join(sorted(kv & set(values)))
                    err(at, f"{both} is in both secrets.vault.mounts (KV v2) and dynamic_mounts: "
                        "a mount is one or the other")
                else:
                    out["dynamic_mounts"] = tuple(values)

    store = section.get("store", {})
    if not isinstance(store, dict) or set(store) - {"kind", "name", "mount"}:
        err(("secrets", "store"), "store is a mapping with kind, name and optional mount")
    else:
        kind = store.get("kind", "ClusterSecretStore")
        if kind not in _STORE_KINDS:
            err(("secrets", "store", "kind"), f"store kind must be one of {', '.join(_STORE_KINDS)}")
        else:
            out["store_kind"] = kind
        name = store.get("name", "vault-backend")
        if not isinstance(name, str) or not _DNS_SUBDOMAIN.fullmatch(name) or len(name) > 253:
            err(("secrets", "store", "name"), "store name must be a Kubernetes object name")
        else:
            out["store_name"] = name
        mounts = out.get("mounts", _DEFAULT_MOUNTS)
        mount = store.get("mount", mounts[0])
        if mount not in mounts:
            err(("secrets", "store", "mount"), "store mount must be one of secrets.vault.mounts")
        else:
            out["store_mount"] = mount
    # A store that is missing or invalid still needs a mount that is allowed.
    out.setdefault("store_mount", out.get("mounts", _DEFAULT_MOUNTS)[0])

    interval = section.get("refresh_interval", "1h")
    if not isinstance(interval, str) or not _DURATION.fullmatch(interval):
        err(("secrets", "refresh_interval"), "refresh_interval is a Go duration such as 1h, 15m or 1h30m")
    else:
        out["refresh_interval"] = interval

    template = section.get("target_name", "{app}-secrets")
    if (not isinstance(template, str) or "{app}" not in template
            or not _DNS_SUBDOMAIN.fullmatch(template.replace("{app}", "app"))):
        err(("secrets", "target_name"),
            "target_name is a Kubernetes object name containing {app}, e.g. \"{app}-secrets\"")
    else:
        out["target_name"] = template

    namespace = section.get("namespace")
    if namespace is not None:
        if not isinstance(namespace, str) or not _DNS_LABEL.fullmatch(namespace) or len(namespace) > 63:
            err(("secrets", "namespace"), "namespace must be a Kubernetes namespace name")
        else:
            out["namespace"] = namespace

    direct = section.get("direct_vault", [])
    apps: dict[str, str] = {}
    if not isinstance(direct, list):
        err(("secrets", "direct_vault"), "direct_vault is a list of {app, justification}")
    else:
        for i, entry in enumerate(direct):
            where = ("secrets", "direct_vault", str(i))
            # `path` belongs to `magcfg lint` (the app's source tree it scans for Vault clients).
            if (not isinstance(entry, dict) or set(entry) - {"app", "justification", "path"}
                    or not isinstance(entry.get("app"), str) or not entry["app"]):
                err(where, "each direct_vault entry is {app, justification} (and lint's optional path)")
                continue
            justification = entry.get("justification")
            if not isinstance(justification, str) or len(justification.strip()) < 10:
                err((*where, "justification"),
                    f"Direct-Vault for app {entry['app']!r} needs a written justification "
                    "(why External Secrets delivery does not fit)")
                continue
            if not _APP.fullmatch(entry["app"]):
                err((*where, "app"), "app is a top-level key name of [A-Za-z0-9_.-], not starting with '.'")
                continue
            if entry["app"] in apps:
                err(where, f"app {entry['app']!r} is listed twice")
                continue
            apps[entry["app"]] = " ".join(justification.split())  # one line: it goes into comments
    out["direct_vault"] = apps
    return SecretSettings(**out), errors
