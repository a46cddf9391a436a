"""What changed between two configs, which of it may be applied live, and what is secret.

The reload policy comes from the signed manifest (docs/artifact.md): the policy of a key
is the one of the longest prefix listed in ``hot_keys`` or ``restart_keys`` (``*``
matches any one segment); a key under neither gets ``reload_default``.

The runtime has no schema, so a key counts as secret when the manifest lists it in
``secret_keys`` (the schema's ``x-magcfg-secret`` keys and the project's ``redact``
globs, written by the compiler), when either side of a change is a secret reference
(``vault://``, ``env://``), or when its last segment names a credential (``password``,
``token``, ...). Events and logs show *that* such a key changed, never its values.

Key paths are tuples of segments; the manifest's lists and the events' ``key`` fields
carry them in the escaped text form of :mod:`magcfg.keyglob` (``apps.eu\\.west.dsn``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from ..keyglob import format_keypath, parse_keypath
from ..secrets.redaction import REDACTED, Redactor
from ..secrets.references import looks_like_reference
from .snapshot import MISSING

__all__ = ["REDACTED", "Change", "KeyPath", "ReloadPolicy", "changes", "restart_keys"]

KeyPath = tuple[str, ...]

_CREDENTIAL_NAME = re.compile(
    r"(?:^|[_-])(?:password|passwd|passphrase|secret|token|api[_-]?key|private[_-]?key|"
    r"credentials?|client[_-]secret)$", re.IGNORECASE)


class Change(NamedTuple):
    """One changed leaf (or a whole subtree added/removed), by key path."""

    path: KeyPath
    old: Any
    new: Any

    @property
    def key(self) -> str:
        """The key path in its text form (what events carry)."""
        return format_keypath(self.path)

    def redacted(self, policy: ReloadPolicy, *others: ReloadPolicy) -> dict[str, Any]:
        """The change as event data; values of keys secret under ``policy`` or any of
        ``others`` are replaced by ``<redacted>``. The kernel gives the served version's
        rules as ``others``: a value its manifest keeps secret stays masked when the next
        version removes the key together with its ``secret_keys`` entry."""
        rules = (policy, *(other for other in others if other is not policy))
        secret = any(rule.is_secret(self.path, self.old, self.new) for rule in rules)
        out: dict[str, Any] = {"key": self.key, "policy": policy.policy_of(self.path)}
        for side, value in (("old", self.old), ("new", self.new)):
            if value is MISSING:
                continue
            out[side] = REDACTED if secret else _redact_tree(rules, self.path, value)
        return out


def _redact_tree(rules: tuple[ReloadPolicy, ...], path: KeyPath, value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _redact_tree(rules, (*path, k), v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact_tree(rules, (*path, str(i)), v) for i, v in enumerate(value)]
    if any(rule.is_secret(path, value, MISSING) for rule in rules):
        return REDACTED
    return value


class ReloadPolicy:
    """The reload and redaction rules one signed manifest carries."""

    FIELDS = ("reload_default", "hot_keys", "restart_keys", "secret_keys")
    """The manifest fields the rules are read from (nothing else is)."""

    def __init__(self, manifest: Mapping[str, Any]) -> None:
        self.default = "hot" if manifest.get("reload_default") == "hot" else "restart"
        # Large manifests list thousands of subtrees: exact prefixes go in a dict (one
        # lookup per prefix length), only the rare wildcard rules are scanned.
        self._exact: dict[KeyPath, str] = {}
        wild: list[tuple[KeyPath, str]] = []
        for name, policy in (("hot_keys", "hot"), ("restart_keys", "restart")):
            for prefix in _strings(manifest.get(name)):
                parts = parse_keypath(prefix)
                if "*" in parts:
                    wild.append((parts, policy))
                else:
                    self._exact[parts] = policy
        self._wild = sorted(wild, key=lambda r: -len(r[0]))
        self._restart_prefixes = {p[:i] for p, pol in (*self._exact.items(), *wild)
                                  if pol == "restart" for i in range(1, len(p))}
        self._restart_wild = [p for p, pol in wild if pol == "restart"]
        # Plain paths in a set (a large schema lists hundreds); globs go to the compiler's
        # redactor, so both read the `*`/`**` dialect the same way.
        globs = _strings(manifest.get("secret_keys"))
        plain = [g for g in globs if "*" not in g]
        self._secret_exact = {parse_keypath(g) for g in plain}
        self._redactor = Redactor(None, [g for g in globs if g not in plain])

    def policy_of(self, key: KeyPath) -> str:
        """``hot`` or ``restart`` for the key path ``key``."""
        best, policy = 0, self.default
        for n in range(len(key), 0, -1):
            found = self._exact.get(key[:n])
            if found is not None:
                best, policy = n, found
                break
        for prefix, rule in self._wild:
            if len(prefix) <= best:
                break
            if len(prefix) <= len(key) and all(
                    p == "*" or p == k for p, k in zip(prefix, key, strict=False)):
                return rule
        return policy

    def has_restart_below(self, key: KeyPath) -> bool:
        """Whether a restart rule lies strictly beneath ``key``."""
        if key in self._restart_prefixes:
            return True
        return any(len(prefix) > len(key) and all(
            p == "*" or p == k for p, k in zip(prefix, key, strict=False))
            for prefix in self._restart_wild)

    def is_secret(self, key: KeyPath, *values: Any) -> bool:
        """Whether the value of ``key`` must never be shown (see the module docstring)."""
        if any(isinstance(v, str) and looks_like_reference(v) for v in values):
            return True
        if key and _CREDENTIAL_NAME.search(key[-1]):
            return True
        if any(key[:n] in self._secret_exact for n in range(1, len(key) + 1)):
            return True
        return bool(self._redactor.patterns) and self._redactor.is_secret(key)

    def secret_values(self, config: Mapping[str, Any]) -> set[str]:
        """Every string value held under a secret key (to mask them in error texts)."""
        out: set[str] = set()

        def walk(path: KeyPath, value: Any, secret: bool) -> None:
            if isinstance(value, Mapping):
                for k, v in value.items():
                    p = (*path, str(k))
                    walk(p, v, secret or self.is_secret(p))
            elif isinstance(value, (list, tuple)):
                for i, v in enumerate(value):
                    walk((*path, str(i)), v, secret)
            elif isinstance(value, str) and value and (secret or self.is_secret(path, value)):
                out.add(value)

        walk((), config, False)
        return out


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str) and v] if isinstance(value, (list, tuple)) else []


def changes(old: Any, new: Any, path: KeyPath = ()) -> list[Change]:
    """Changed leaves between two configs, in sorted key order.

    Subtrees that two snapshots share (the same object: unchanged bytes, see
    :func:`~magcfg.runtime.snapshot.build_config`) are skipped by ``is``, other equal
    subtrees by one ``==`` (C speed), so a small change in a large config costs little.
    ``==`` holds between ``1``, ``1.0`` and ``True``, so if it finds nothing a strict
    walk (types too) makes sure. A list counts as one value (lists
    replace when merging).
    """
    out: list[Change] = []
    _diff(old, new, path, out, strict=False)
    if not out:
        _diff(old, new, path, out, strict=True)
    return out


def _same(a: Any, b: Any) -> bool:
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, Mapping):
        return a.keys() == b.keys() and all(_same(v, b[k]) for k, v in a.items())
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _diff(old: Any, new: Any, path: KeyPath, out: list[Change], strict: bool) -> None:
    if old is new:  # a subtree the new snapshot shares with the old one
        return
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        if not strict and old == new:
            return
        for key in sorted(set(old) | set(new)):
            child = (*path, str(key))
            a, b = old.get(key, MISSING), new.get(key, MISSING)
            if a is MISSING or b is MISSING:
                out.append(Change(child, a, b))
            else:
                _diff(a, b, child, out, strict)
        return
    if not _same(old, new):
        out.append(Change(path, old, new))


def restart_keys(changed: Iterable[Change], policy: ReloadPolicy) -> list[str]:
    """The changed keys that may not be applied live.

    A whole subtree added or removed is hot only if the policy of its root is hot and no
    listed restart rule lies beneath it.
    """
    out = []
    for change in changed:
        if policy.policy_of(change.path) == "restart" or (
                (change.old is MISSING or change.new is MISSING
                 or isinstance(change.old, Mapping) or isinstance(change.new, Mapping))
                and policy.has_restart_below(change.path)):
            out.append(change.key)
    return out
