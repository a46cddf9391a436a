"""Stage 4, redact: the one redactor used by every output that shows values.

A key is secret when the schema marks it (or an ancestor) ``x-magcfg-secret`` or when
its dotted path matches a glob of the project's ``redact:`` list (``fnmatch`` syntax,
``*`` matches within one segment, ``**`` any number of segments). Redacted values show
as the fixed marker ``<redacted>``; callers that compare (diff, runtime events) compare
the real values first and show *that* a secret changed without showing either side.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import Diagnostic
from ..keyglob import KeyGlobs
from ..schema.index import SchemaIndex

REDACTED = "<redacted>"
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'" + r'|"(?:[^"\\]|\\.)*"')

# Codes of stages that mask values themselves: the schema validator (masked messages) and
# the secret check (it quotes parts of well-formed references only).
_SELF_MASKED = ("schema-", "secret-")


@dataclass(frozen=True)
class Change:
    """One changed key, fit to show: ``old``/``new`` are redacted (``REDACTED`` on both
    sides for a secret, whose change is still reported); ``None`` with ``added`` /
    ``removed`` for a key only one side has."""

    key: str
    old: Any
    new: Any
    secret: bool
    added: bool = False
    removed: bool = False


class Redactor:
    """Decides which key paths are secret and replaces their values by ``REDACTED``."""

    def __init__(self, index: SchemaIndex | None = None, patterns: Iterable[str] = ()) -> None:
        self.index = index
        self.patterns = tuple(patterns)
        self._globs = KeyGlobs(self.patterns)

    def is_secret(self, keypath: tuple[str, ...]) -> bool:
        if self.index is not None and self.index.is_secret(keypath):
            return True
        return self._globs.matches(keypath)

    def value(self, keypath: tuple[str, ...], value: Any) -> Any:
        """``value`` with every secret inside it (or itself) replaced by ``REDACTED``."""
        if self.is_secret(keypath):
            return REDACTED
        if isinstance(value, dict):
            return {k: self.value((*keypath, k), v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value((*keypath, str(i)), v) for i, v in enumerate(value)]
        return value

    def contains_secret(self, keypath: tuple[str, ...], value: Any) -> bool:
        """Whether ``value`` at ``keypath`` is, or holds anywhere inside it, a secret."""
        if self.is_secret(keypath):
            return True
        if isinstance(value, dict):
            return any(self.contains_secret((*keypath, k), v) for k, v in value.items())
        if isinstance(value, list):
            return any(self.contains_secret((*keypath, str(i)), v) for i, v in enumerate(value))
        return False

    def change(self, keypath: tuple[str, ...], old: Any, new: Any,
               missing: Any = None) -> Change | None:
        """Compare the real values; None when equal, else a ``Change`` without secrets.

        ``missing`` is the caller's marker for "this side has no such key". A secret that
        changed shows as ``REDACTED`` -> ``REDACTED`` with the change still listed (diff,
        promotion bodies, reload events say *that* it changed, never from or to what).
        """
        if old == new and type(old) is type(new):
            return None
        key = ".".join(keypath)
        added, removed = old is missing, new is missing
        return Change(key,
                      None if added else self.value(keypath, old),
                      None if removed else self.value(keypath, new),
                      self.contains_secret(keypath, new if removed else old)
                      or self.contains_secret(keypath, old if added else new),
                      added, removed)

    def diagnostic(self, d: Diagnostic) -> Diagnostic:
        """``d`` with any value it quotes masked when its key is secret. Messages of
        earlier stages quote the offending scalar (``'0755' is octal in YAML 1.1 ...``);
        the key's own name may stay."""
        if not d.key or d.code.startswith(_SELF_MASKED):
            return d
        keypath = tuple(d.key.split("."))
        if not self.is_secret(keypath):
            return d
        own = {repr(keypath[-1]), f'"{keypath[-1]}"'}
        message = _QUOTED.sub(lambda m: m.group(0) if m.group(0) in own else REDACTED, d.message)
        if d.code == "float":
            message = REDACTED + message[message.find(" is not representable"):]
        return d if message == d.message else dataclasses.replace(d, message=message)

    def text(self, text: str, values: Iterable[str]) -> str:
        """``text`` with every occurrence of the given secret strings masked (for error
        messages that may quote input)."""
        for v in sorted({v for v in values if v}, key=len, reverse=True):
            text = text.replace(v, REDACTED)
        return text
