"""Stage 4, redact: nothing a build reports quotes a secret value.

The load and merge stages quote offending scalars (``'0755' is octal in YAML 1.1``)
before anyone knows which keys are secret; this stage masks every quoted value in a
diagnostic whose key the project's redactor (``magcfg.secrets.redaction``) calls secret,
and masks in every diagnostic the text of each literal the layers hold under a secret
key (the compiler gathers them: ``Compiler._secret_texts``).
The schema validator and the secret rules mask their own messages and are left as
they are.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import TYPE_CHECKING

from ..errors import Diagnostic
from ..keyglob import parse_keypath
from ..secrets.redaction import REDACTED

if TYPE_CHECKING:
    from ..secrets.redaction import Redactor

__all__ = ["redact_diagnostic", "redact_diagnostics"]

_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'" + r'|"(?:[^"\\]|\\.)*"')
# Codes of stages that mask values themselves: the schema validator (masked messages) and
# the secret rules (they quote parts of well-formed references only).
_SELF_MASKED = ("schema-", "secret-")


def redact_diagnostic(redactor: Redactor, d: Diagnostic) -> Diagnostic:
    """``d`` with any value it quotes masked when its key is secret (the key's own name
    may stay)."""
    if not d.key or d.code.startswith(_SELF_MASKED):
        return d
    keypath = parse_keypath(d.key)
    if not redactor.is_secret(keypath):
        return d
    own = {repr(keypath[-1]), f'"{keypath[-1]}"'}
    message = _QUOTED.sub(lambda m: m.group(0) if m.group(0) in own else REDACTED, d.message)
    if d.code == "float":
        message = REDACTED + message[message.find(" is not representable"):]
    return d if message == d.message else d.replace(message=message)


MIN_QUOTED_SECRET = 8
"""Characters a literal under a secret key needs to be masked in messages about other
keys. A shorter text is in most messages by chance (an app's name, ``x``, a port) and
masking it there leaves them unreadable; such a literal is refused in its own file
anyway (a secret key takes a reference), under its own key masked. GitLab's masked
variables have the same minimum."""


def quotable_secret_texts(secret_texts: Collection[str]) -> list[str]:
    """The texts of ``secret_texts`` masked wherever they appear: those of at least
    ``MIN_QUOTED_SECRET`` characters."""
    return [t for t in secret_texts if len(t) >= MIN_QUOTED_SECRET]


def redact_diagnostics(redactor: Redactor, diagnostics: list[Diagnostic],
                       secret_texts: Collection[str] = ()) -> list[Diagnostic]:
    """``diagnostics`` each masked by its own key (``redact_diagnostic``), and with every
    occurrence of ``secret_texts`` (the literals under the layers' secret keys) of at
    least ``MIN_QUOTED_SECRET`` characters masked in every message but the secret rules'
    (they quote well-formed references alone, whose app names a redacted value may
    spell): an error under one key may quote another key's value."""
    secret_texts = quotable_secret_texts(secret_texts)
    out = []
    for d in diagnostics:
        d = redact_diagnostic(redactor, d)
        if secret_texts and not d.code.startswith("secret-"):
            message = redactor.text(d.message, secret_texts)
            if message != d.message:
                d = d.replace(message=message)
        out.append(d)
    return out
