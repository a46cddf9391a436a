"""Environment isolation: no environment's Vault policy reads another's secrets.

When environments share one Vault, a role of staging must not be able to read a secret
of production. The project file says how they are kept apart (docs/secrets.md,
"Environments"):

* ``{env}`` in ``secrets.vault.path_prefixes`` (``k3s/{env}/``): one path tree per
  environment; the secret rules then accept only the environment's own prefix;
* ``{env}`` in ``secrets.vault.mounts`` (``secret-{env}``): one mount per environment;
* ``secrets.vault.addresses``: a Vault server per environment.

Dynamic secrets (``secrets.vault.dynamic_mounts``) are granted by their exact path
(``database/creds/<role>``): only ``{env}`` in the dynamic mount or ``addresses`` isolates
them, and two environments naming the same role on a shared mount are an error.

A reference that none of these isolates is checked here, across every environment of
the project: it is an error when another environment's policy (the store's or a
Direct-Vault app's) would also grant its path. A build of some environments (``build -e``,
``promote``) compiles the others for the check, without writing them: what it writes
must not grant, or be granted, another environment's secret.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import Diagnostic
from .manifests import dynamic_grants, grant_roots, grants
from .references import SecretRef
from .rules import scan
from .settings import load_secret_settings

if TYPE_CHECKING:
    from ..pipeline.context import CompileContext, Workspace


def check_isolation(workspace: Workspace, contexts: Sequence[CompileContext]) -> list[Diagnostic]:
    """Build check (pipeline extension point): a reference of one environment that the
    policy of another environment sharing its Vault also grants is an error."""
    if not contexts:
        return []
    base, problems = load_secret_settings(workspace.project)
    if problems:
        return []  # reported, located, by the document check
    refs: dict[str, list[tuple[tuple[str, ...], SecretRef]]] = {
        ctx.env: [(k, r) for k, r in scan(ctx).references() if r.is_vault] for ctx in contexts}
    built = set(refs)
    if not any(refs.values()):
        return []  # what is built grants nothing and is granted nothing
    contexts = [*contexts, *workspace.peers(built)]
    roots: dict[str, frozenset[str]] = {}
    exact: dict[str, frozenset[str]] = {}  # dynamic-secret paths, granted without /*
    for ctx in contexts:
        settings = base.for_env(ctx.env)
        if ctx.env not in refs:
            refs[ctx.env] = [(k, r) for k, r in scan(ctx).references() if r.is_vault]
        mine = refs[ctx.env]
        roots[ctx.env] = frozenset(p for paths in grant_roots(mine, settings).values() for p in paths)
        exact[ctx.env] = frozenset(p for paths in dynamic_grants(mine, settings).values()
                                   for p in paths)
    out: list[Diagnostic] = []
    for ctx in contexts:
        settings = base.for_env(ctx.env)
        if ctx.env in settings.addresses:
            continue
        for keypath, ref in refs[ctx.env]:
            if settings.isolated(ctx.env, ref.mount, ref.path):
                continue
            granted = settings.policy_path(ref.mount, ref.path)
            others = sorted(other.env for other in contexts
                            if other.env != ctx.env and other.env not in base.addresses
                            and grants(roots[other.env], granted, exact[other.env]))
            # Between two environments this build does not write: their own build's.
            if others and (ctx.env in built or built.intersection(others)):
                out.append(ctx.locate(keypath, (
                    f"the Vault policy of {', '.join(others)} also grants {granted}: "
                    f"{ctx.env} and {others[0]} share a Vault, so a role of one could read "
                    "the other's secret; isolate them with {env} in secrets.vault.path_prefixes "
                    "or secrets.vault.mounts, or give each its Vault under "
                    "secrets.vault.addresses (docs/secrets.md, \"Environments\")"),
                    "secret-isolation"))
    return out
