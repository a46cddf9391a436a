"""Secret references: ``vault://<mount>/<path>#<key>`` (Vault KV v2) and ``env://<VAR>``.

The grammar is the schema's ``secret_ref`` (schemas/magflock.schema.json): lint and the
compiler agree on what a reference is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

_VAULT = re.compile(r"vault://([a-z0-9][a-z0-9_-]*)((?:/[A-Za-z0-9._-]+)+)#([A-Za-z0-9._-]+)")
_ENV = re.compile(r"env://([A-Z_][A-Z0-9_]*)")
SCHEMES = ("vault://", "env://")


@dataclass(frozen=True)
class SecretRef:
    """A parsed reference. Vault: ``mount``, ``path`` (without leading slash), ``key``;
    env: ``var``."""

    scheme: Literal["vault", "env"]
    mount: str = ""
    path: str = ""
    key: str = ""
    var: str = ""

    def __str__(self) -> str:
        if self.scheme == "env":
            return f"env://{self.var}"
        return f"vault://{self.mount}/{self.path}#{self.key}"


def parse_reference(text: str) -> SecretRef | None:
    """The reference ``text`` spells, or None if it is not a well-formed reference."""
    m = _VAULT.fullmatch(text)
    if m is not None:
        return SecretRef("vault", mount=m.group(1), path=m.group(2)[1:], key=m.group(3))
    m = _ENV.fullmatch(text)
    if m is not None:
        return SecretRef("env", var=m.group(1))
    return None


def looks_like_reference(text: str) -> bool:
    """Whether ``text`` starts with a reference scheme (well-formed or not)."""
    return text.startswith(SCHEMES)
