"""MAG005: Vault KV v2 policies with wildcard grants that miss the exact path.

In KV v2 a secret at ``secret/data/k3s/magds`` is read through exactly that path; the
``secret/data/k3s/magds/*`` grant does not cover it. A prefix glob without a slash
(``secret/data/k3s/magds*``) also grants ``magds-backup`` and every other sibling.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from .context import LintContext, finding
from .findings import Finding
from .walk import SourceFile

RULE = "MAG005"
_PATH = re.compile(r'^\s*path\s+"([^"]+)"\s*\{?')
_DENY_ONLY = re.compile(r'capabilities\s*=\s*\[\s*"deny"\s*\]')


def _is_kv2(path: str) -> bool:
    return "/data/" in path or path.startswith("data/")


def check(src: SourceFile, ctx: LintContext) -> Iterator[Finding]:
    """Yield findings for the wildcard grants of one ``.hcl`` policy file."""
    if not src.name.endswith(".hcl") or "path" not in src.text:
        return
    grants: list[tuple[int, int, str]] = []
    lines = src.lines
    for number, line in enumerate(lines, 1):
        m = _PATH.match(line)
        if m is None:
            continue
        if _DENY_ONLY.search(_block(lines, number - 1)):
            continue
        grants.append((number, m.start(1) + 1, m.group(1)))
    exact = {p for _, _, p in grants}
    for number, col, path in grants:
        if not _is_kv2(path):
            continue
        if path.endswith("/*"):
            base = path[:-2]
            if base not in exact:
                yield finding(src, number, col, RULE,
                              f'policy grants "{path}" without the exact path "{base}"; '
                              "KV v2 reads of the secret itself are denied",
                              f'add `path "{base}" {{ capabilities = ["read"] }}` next to it')
        elif path.endswith("*"):
            stem = path[:-1].rstrip("/")
            yield finding(src, number, col, RULE,
                          f'prefix glob "{path}" also grants every sibling path that starts '
                          f'with "{stem.rsplit("/", 1)[-1]}"',
                          f'grant the exact path "{stem}" and "{stem}/*" instead')


def _block(lines: list[str], start: int) -> str:
    """The text of the policy block that opens at ``start`` (up to its closing brace)."""
    depth = 0
    out = []
    for line in lines[start:]:
        out.append(line)
        depth += line.count("{") - line.count("}")
        if depth <= 0 and "{" in "".join(out):
            break
    return "\n".join(out)
