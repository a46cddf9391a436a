"""What counts as a literal value, as opposed to a reference, template or placeholder."""

from __future__ import annotations

import re

_REFERENCE = re.compile(
    r"^(?:vault|env|ref|secretref|awssm|gcpsm|azkv|op|sops)://"  # secret references
    r"|\$\{|\$\(|\{\{|\{%|%\(|#\{|<%"                            # substitution, templates
    r"|\\\("                                                     # CUE's, Swift's \(x)
    r"|^\$[A-Za-z_]"                                              # $VAR
    r"|^%[A-Za-z_][\w.]*%$"                                       # %VAR% (cmd, NuGet)
    r"|^@(?:[\w.]+:)?[a-z]+/\w+$"                                  # Android's @string/name
    r"|^!",                                                       # YAML tags (!unset, !vault)
    re.IGNORECASE)
# <your-token>, xxxx / ****, [redacted], ..., and a bare format field (%s, {}, {0},
# {password}, Java's and Android's positional %1$s).
_PLACEHOLDER = re.compile(r"^<[^<>]*>$|^(.)\1*$|^\[[^\]]*\]$|^\.\.\.$|^%(?:\d+\$)?[sdr]$|^\{\w*\}$")
_NOT_VALUES = frozenset({"true", "false", "yes", "no", "on", "off", "null", "none", "nil",
                         "~", "|", ">", "|-", ">-", "|+", ">+", "{}", "[]", '""', "''",
                         "undefined"})
# Access levels, not secrets (`none` is above): GitHub Actions' `id-token: write` lets a
# job request an OIDC token, and a secret-like name is all that line has.
_PERMISSIONS = frozenset({"read", "write"})
# A SOPS-encrypted value: ciphertext that only the holder of the file's key can read.
_SOPS_CIPHERTEXT = re.compile(
    r"ENC\[AES256_GCM,data:[A-Za-z0-9+/=]*,iv:[A-Za-z0-9+/=]+,tag:[A-Za-z0-9+/=]+,type:[a-z]+\]")


def is_literal(value: str) -> bool:
    """Whether an assigned value is a literal secret (not a reference or placeholder)."""
    v = value.strip()
    if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'`":
        v = v[1:-1].strip()
    if not v or v.lower() in _NOT_VALUES or v.lower() in _PERMISSIONS:
        return False
    if _REFERENCE.search(v) or _PLACEHOLDER.match(v) or _SOPS_CIPHERTEXT.fullmatch(v):
        return False
    return not v.startswith(("&", "*"))  # YAML anchors/aliases point elsewhere
