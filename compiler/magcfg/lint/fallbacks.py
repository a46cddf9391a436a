"""MAG001: fallback defaults that hide a missing required value.

``${V:-x}``, ``${V-x}``, ``${V:=x}`` and ``${V=x}`` in compose files, Kubernetes
manifests, Helm values and committed env files. A deliberate default carries
``# safe-default: <reason>`` on the same line. The fix is ``${V:?message}``, except
under Flux post-build substitution, which has no ``:?``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from .context import LintContext, finding
from .findings import Finding
from .walk import SourceFile

RULE = "MAG001"
# `$${V:-x}` is compose's escape for a literal `${`: not a substitution.
_FALLBACK = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-=])[^}]*\}")
_SAFE_DEFAULT = re.compile(r"#\s*safe-default:[ \t]*(\S?)")
_COMPOSE = re.compile(r"(?:docker-)?compose(?:[.-][\w.-]+)?\.ya?ml")
_HELM_VALUES = re.compile(r"values(?:[.-][\w.-]+)?\.ya?ml")
_API_VERSION = re.compile(r"^apiVersion:\s*\S", re.MULTILINE)
_KIND = re.compile(r"^kind:\s*\S", re.MULTILINE)
_FLUX_API = "kustomize.toolkit.fluxcd.io"


def is_env_file(name: str) -> bool:
    """``.env``, ``.env.<stage>`` and ``<name>.env``."""
    return name == ".env" or name.startswith(".env.") or name.endswith(".env")


def is_target(src: SourceFile) -> bool:
    """Whether the file is a compose file, a Kubernetes manifest, Helm values or an env file."""
    name = src.name
    if is_env_file(name):
        return True
    if not name.endswith((".yaml", ".yml")):
        return False
    if _COMPOSE.fullmatch(name) or _HELM_VALUES.fullmatch(name):
        return True
    text = src.text
    return ("apiVersion" in text and _API_VERSION.search(text) is not None
            and _KIND.search(text) is not None)


def flux_contexts(files: dict[str, SourceFile]) -> tuple[frozenset[str], tuple[str, ...]]:
    """Flux Kustomization manifests, and the directories their ``postBuild`` substitutes."""
    import posixpath

    import yaml

    manifests: set[str] = set()
    dirs: set[str] = set()
    for path, src in files.items():
        if _FLUX_API not in src.text or not path.endswith((".yaml", ".yml")):
            continue
        try:
            docs = list(yaml.safe_load_all(src.text))
        except (yaml.YAMLError, RecursionError):
            continue  # not a manifest Flux reads (nested past any parser's depth)
        for doc in docs:
            if not (isinstance(doc, dict) and doc.get("kind") == "Kustomization"
                    and str(doc.get("apiVersion", "")).startswith(_FLUX_API)):
                continue
            manifests.add(path)
            spec = doc.get("spec")
            post = spec.get("postBuild") if isinstance(spec, dict) else None
            if isinstance(post, dict) and (post.get("substitute") or post.get("substituteFrom")):
                target = posixpath.normpath(str(spec.get("path") or "."))  # type: ignore[union-attr]
                dirs.add("" if target in (".", "/") else target.lstrip("./").strip("/"))
    return frozenset(manifests), tuple(sorted(dirs))


def check(src: SourceFile, ctx: LintContext) -> Iterator[Finding]:
    """Yield a finding for each fallback default in a target file."""
    if "${" not in src.text or not is_target(src):
        return
    flux = ctx.in_flux_substitution(src.path)
    for number, line in enumerate(src.lines, 1):
        if "${" not in line or line.lstrip().startswith("#"):
            continue
        code_end = _comment_start(line)
        safe = _SAFE_DEFAULT.search(line, code_end) if code_end < len(line) else None
        for m in _FALLBACK.finditer(line, 0, code_end):
            var, op = m.group(1), m.group(2)
            if safe is not None and safe.group(1):
                continue
            shown = "${" + var + op + "...}"
            if safe is not None:
                message = (f"`{shown}`: `# safe-default:` needs a reason after the colon")
            else:
                message = (f"fallback default `{shown}` hides a missing value of {var}")
            yield finding(src, number, m.start() + 1, RULE, message, _fix(var, flux))


def _comment_start(line: str) -> int:
    # YAML, and env files as compose reads them: `#` after whitespace starts a comment.
    for i, ch in enumerate(line):
        if ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return i
    return len(line)


def _fix(var: str, flux: bool) -> str:
    if flux:
        return (f"Flux post-build substitution does not support `${{{var}:?message}}`: write "
                f"`${{{var}}}`, list {var} in postBuild.substitute/substituteFrom and enable "
                "the kustomize-controller feature gate StrictPostBuildSubstitutions so a "
                "missing variable fails the reconciliation; or keep the default and add "
                "`# safe-default: <reason>`")
    return (f"use `${{{var}:?{var} is required}}` so a missing value fails loudly, or add "
            "`# safe-default: <reason>` if the default is deliberate")
