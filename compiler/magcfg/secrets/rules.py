"""The build's secret rules, run on each merged, schema-valid environment.

* A key the schema marks ``x-magcfg-secret`` holds a reference (or null), never a
  literal; any other key never holds a reference.
* References are well-formed and name an allowed mount; when the project names path
  prefixes, the path is ``<prefix><app>[/...]`` and the app segment is the top-level key
  that uses it: an app reads only its own Vault path (``secret/data/k3s/<app>`` and
  below), so its policy grant and its Kubernetes Secret stay its own.
* ``vault+direct://`` needs the app's Direct-Vault opt-in (with justification) in the
  project file; External Secrets references use the store's mount.
* A reference on a dynamic-secret mount (``secrets.vault.dynamic_mounts``) is
  ``vault+direct://`` only (External Secrets delivery is KV v2 only) and names the
  engine's own path (no path prefix applies).
* Two secret keys never map to the same env var name.

No message quotes a value: a literal or a malformed reference may be the secret itself.
Every problem names the file and line that set the key (its provenance).
"""

from __future__ import annotations

import functools
import re
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ..errors import Diagnostic
from ..keyglob import parse_keypath
from ..schema.index import WILDCARD
from ..syntax.strict_yaml import REPLACE_TAG
from .references import (
    SCHEMES,
    SecretRef,
    env_var_name,
    looks_like_reference,
    parse_reference,
    syntax_problem,
)
from .settings import SecretSettings, load_secret_settings

if TYPE_CHECKING:
    from ..pipeline.context import CompileContext
    from ..pipeline.load import ParsedFile
    from ..pipeline.merge import LayerStack
    from ..schema.index import PolicyIndex


class SecretScan:
    """Where an environment's config holds secrets: every leaf under a secret key, and
    every reference-looking string anywhere else (each one an error)."""

    def __init__(self) -> None:
        self.secret_leaves: list[tuple[tuple[str, ...], Any]] = []
        self.stray: list[tuple[tuple[str, ...], str]] = []

    def references(self) -> list[tuple[tuple[str, ...], SecretRef]]:
        out = []
        for keypath, value in self.secret_leaves:
            ref = parse_reference(value) if isinstance(value, str) else None
            if ref is not None:
                out.append((keypath, ref))
        return out


# How each scheme starts a JSON string in config.json (orjson does not escape "/").
_MARKERS = tuple(f'"{scheme}'.encode() for scheme in SCHEMES)
_MARKER_RE = re.compile(b"|".join(re.escape(m) for m in _MARKERS))
_SECRET_PATTERNS: dict[str, list[tuple[str, ...]]] = {}
_HEADS: dict[int, dict[str, list[tuple[str, ...]]]] = {}


def _by_head(patterns: list[tuple[str, ...]]) -> dict[str, list[tuple[str, ...]]]:
    """Secret path patterns grouped by their first segment (built once per schema)."""
    heads = _HEADS.get(id(patterns))
    if heads is None:
        heads = {}
        for p in patterns:
            if p:
                heads.setdefault(p[0], []).append(p)
        _HEADS[id(patterns)] = heads
    return heads
_scans: dict[int, tuple[weakref.ref[CompileContext], SecretScan]] = {}


def scan(context: CompileContext) -> SecretScan:
    """Find the secret leaves by the schema's secret paths (a few lookups), not by a walk
    of every key: the large benchmark repo has a million leaves and a few hundred
    secrets. Strays are looked for only when the config's bytes hold more
    reference-looking strings than the secret keys do. The check, the emitter and the
    isolation check of one environment share one scan (kept while the context lives)."""
    key = id(context)
    hit = _scans.get(key)
    if hit is not None and hit[0]() is context:
        return hit[1]
    out = _scan(context)

    def forget(_: weakref.ref[CompileContext]) -> None:
        _scans.pop(key, None)

    _scans[key] = (weakref.ref(context, forget), out)
    return out


def _scan(context: CompileContext) -> SecretScan:
    out = SecretScan()
    schema = context.schema
    if schema is None:  # no JSON Schema: every reference-looking string is taken as a secret
        _walk(context.config, (), lambda k, v: out.secret_leaves.append((k, v)) if _looks(v) else None)
        return out
    index = schema.index
    patterns = _SECRET_PATTERNS.get(schema.digest)
    if patterns is None:
        paths = (context.schema_summary["secret_paths"] if context.schema_summary
                 else index.secret_paths())
        patterns = [parse_keypath(p) for p in paths]
        _SECRET_PATTERNS[schema.digest] = patterns
    keys = sorted(context.fragments) if context.fragments else sorted(context.config)
    for key in keys:
        # Per top-level key, cached with its fragment: a rebuild scans only what changed.
        leaves, stray = context.memo("secret-scan", key,
                                     functools.partial(_scan_top, context, key, patterns))
        out.secret_leaves.extend((tuple(k), v) for k, v in leaves)
        out.stray.extend((tuple(k), v) for k, v in stray)
    out.secret_leaves.sort(key=lambda item: item[0])
    return out


def _scan_top(context: CompileContext, key: str, patterns: list[tuple[str, ...]]
              ) -> tuple[list[tuple[tuple[str, ...], Any]], list[tuple[tuple[str, ...], Any]]]:
    index = context.secret_index()
    assert index is not None
    mine = _by_head(patterns).get(key, []) + _by_head(patterns).get(WILDCARD, [])
    leaves: list[tuple[tuple[str, ...], Any]] = []
    stray: list[tuple[tuple[str, ...], Any]] = []
    raw = context.fragments[key][1] if key in context.fragments else None
    markers = len(_MARKER_RE.findall(raw)) if raw is not None else None
    if not mine and markers == 0:
        return leaves, stray
    value = context.top(key)
    seen: set[tuple[str, ...]] = set()
    for pattern in mine:
        for keypath, found in _matches(value, pattern[1:], (key,)):
            if keypath not in seen and index.is_secret(keypath):
                seen.add(keypath)
                _walk(found, keypath, lambda k, v: leaves.append((k, v)))
    expected = sum(1 for _, v in leaves if _looks(v))
    if markers is None or markers > expected:
        def visit(keypath: tuple[str, ...], item: Any) -> None:
            if _looks(item) and not index.is_secret(keypath):
                stray.append((keypath, item))

        _walk(value, (key,), visit)
    return leaves, stray


def _looks(value: Any) -> bool:
    return isinstance(value, str) and looks_like_reference(value)


def _walk(value: Any, keypath: tuple[str, ...],
          visit: Callable[[tuple[str, ...], Any], None]) -> None:
    if isinstance(value, dict):
        for k in sorted(value):
            _walk(value[k], (*keypath, k), visit)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _walk(item, (*keypath, str(i)), visit)
    else:
        visit(keypath, value)


def _matches(value: Any, pattern: tuple[str, ...], keypath: tuple[str, ...]
             ) -> Iterator[tuple[tuple[str, ...], Any]]:
    if not pattern:
        yield keypath, value
        return
    head, rest = pattern[0], pattern[1:]
    if isinstance(value, dict):
        if head == WILDCARD:
            for k in sorted(value):
                yield from _matches(value[k], rest, (*keypath, k))
        elif head in value:
            yield from _matches(value[head], rest, (*keypath, head))
    elif isinstance(value, list) and head == WILDCARD:
        for i, item in enumerate(value):
            yield from _matches(item, rest, (*keypath, str(i)))


LITERAL = ("a secret key holds a literal value: write a reference instead "
           "(vault://<mount>/<path>#<key> or env://VAR); the value is not shown")
LITERAL_CODE = "secret-literal"


def check_layer_literals(stack: LayerStack, key: str, value: Any, index: PolicyIndex
                         ) -> list[Diagnostic]:
    """Fragment check (compiler extension point): a literal under a secret key in a layer
    file that is not the merged ``value`` (a higher layer overrides it, or `!replace`s
    or `!unset`s what holds it). It never reaches the merged config that
    ``check_secrets`` reads, but it is committed, which is what the rule is about. The
    literal that is served is left to ``check_secrets`` (one message per value)."""
    from ..syntax.strict_yaml import iter_leaves

    found: list[tuple[ParsedFile, tuple[str, ...], Any]] = []
    last: dict[tuple[str, ...], ParsedFile] = {}  # who sets each secret leaf last
    for f in stack.files_of(key):
        data = _unmarked(f.data[key]) if f.has_markers else f.data[key]
        for path, subtree in index.secret_subtrees({key: data}):
            for keypath, leaf in iter_leaves(subtree, path):
                last[keypath] = f
                if (leaf is not None and not isinstance(leaf, tuple)
                        and not _looks(leaf)):  # not null, a marker or a reference
                    found.append((f, keypath, leaf))
    out = []
    for f, keypath, leaf in found:
        if last[keypath] is f and _merged_at(value, keypath[1:]) == leaf:
            continue
        line = f.line(stack.source.read(f.path), keypath)
        out.append(Diagnostic(f.path, line, ".".join(keypath),
                              f"{LITERAL} (a higher layer overrides it, but the literal is "
                              "committed here)", code=LITERAL_CODE))
    return out


def _unmarked(tree: Any) -> Any:
    """``tree`` as written, without its layer markers: what a ``!replace`` holds is
    committed like any value (and may hold a literal); ``!unset`` holds nothing."""
    if type(tree) is dict:
        return {k: _unmarked(v) for k, v in tree.items()}
    if type(tree) is list:
        return [_unmarked(item) for item in tree]
    if type(tree) is tuple:
        return _unmarked(tree[1]) if tree[0] == REPLACE_TAG else None
    return tree


def _merged_at(value: Any, keypath: tuple[str, ...]) -> Any:
    """What the merged ``value`` holds at ``keypath`` (None where it holds nothing)."""
    for part in keypath:
        if type(value) is not dict or part not in value:
            return None
        value = value[part]
    return value


def check_secrets(context: CompileContext) -> list[Diagnostic]:
    """Document check (compiler extension point): every secret rule, located."""
    settings, errors = load_secret_settings(context.project)
    settings = settings.for_env(context.env)
    found: list[tuple[tuple[str, ...], str, str]] = []  # (keypath, message, code)
    env_vars: dict[str, tuple[str, ...]] = {}
    result = scan(context)
    candidates = [(k, v, True) for k, v in result.secret_leaves] + [
        (k, v, False) for k, v in result.stray]
    for keypath, value, secret in sorted(candidates, key=lambda c: c[0]):
        if secret:
            if value is None:
                continue
            if not _looks(value):
                found.append((keypath, LITERAL, LITERAL_CODE))
                continue
        ref = parse_reference(value)
        if ref is None:
            found.append((keypath, syntax_problem(value), "secret-syntax"))
            continue
        if not secret:
            found.append((keypath, f"a {ref.scheme}:// secret reference in a key the schema does "
                          "not mark x-magcfg-secret: mark the key secret in the schema, or put "
                          "a plain value here", "secret-misplaced"))
            continue
        for message in _reference_problems(ref, keypath, settings):
            found.append((keypath, message, "secret-reference"))
        if ref.scheme == "vault":
            problem = settings.kubernetes_name_problem(keypath[0])
            if problem is not None:
                found.append((keypath, problem, "secret-reference"))
            name = env_var_name(keypath)
            other = env_vars.setdefault(name, keypath)
            if other != keypath:
                found.append((keypath, f"keys {'.'.join(other)} and {'.'.join(keypath)} both map "
                              f"to the env var {name}: rename one", "secret-env-clash"))
    for keypath, message, code in found:
        errors.append(context.locate(keypath, message, code))
    return errors


def _reference_problems(ref: SecretRef, keypath: tuple[str, ...],
                        settings: SecretSettings) -> list[str]:
    if not ref.is_vault:
        return []
    out = []
    if settings.is_dynamic(ref.mount):
        if ref.scheme == "vault":
            out.append(f"mount {ref.mount!r} is a dynamic-secret mount (secrets.vault."
                       "dynamic_mounts): External Secrets delivery here reads KV v2 only, and "
                       "leased credentials must be renewed by the app, so write "
                       "vault+direct:// (the app reads and renews them itself)")
        elif keypath[0] not in settings.direct_vault:
            out.append(f"vault+direct:// needs the project file to opt {keypath[0]!r} in to "
                       "Direct-Vault reads: secrets.direct_vault: [{app: ..., justification: ...}]")
        return out  # the engine's own path: path_prefixes do not apply
    if ref.mount not in settings.mounts:
        allowed = ", ".join(settings.mounts)
        dynamic = (f"; secrets.vault.dynamic_mounts: {', '.join(settings.dynamic_mounts)}"
                   if settings.dynamic_mounts else "")
        out.append(f"Vault mount {ref.mount!r} is not allowed here (secrets.vault.mounts: "
                   f"{allowed}{dynamic})")
    owner = settings.app_of(ref.path)
    if settings.path_prefixes is None:
        pass  # the project does not say how its Vault paths are laid out
    elif owner is None:
        shown = ", ".join(repr(p) for p in settings.path_prefixes)
        out.append(f"the Vault path must be <prefix><app>[/...] with a prefix of "
                   f"secrets.vault.path_prefixes ({shown}"
                   f"{f' for {settings.environment}' if settings.isolated_prefixes else ''})")
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


