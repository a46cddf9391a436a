"""Stage 3, validate: every finding about the merged config, located at a layer line.

The JSON Schema engine is ``magcfg.schema.validator``; capabilities add their own checks
(secret rules, CUE). What this stage adds to all of them is *where*: a finding about a
key is reported at the file and line of the layer that set its value, or, for a key
that is set nowhere (a missing required key), of its nearest ancestor that is set.
Only when nothing on the path is set does it fall back to the project file, naming
the environment.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..errors import Diagnostic
from ..keyglob import format_keypath

if TYPE_CHECKING:
    from ..schema.validator import SchemaViolation
    from .merge import LayerStack

__all__ = ["locate_key", "locate_violations"]


def locate_key(stack: LayerStack, project_file: str, keypath: tuple[str, ...], message: str,
               code: str) -> Diagnostic:
    """A diagnostic about ``keypath`` of the stack's environment, at the line that set it."""
    key = format_keypath(keypath) or None
    probe = keypath
    chain = stack.provenance(probe)
    while not chain and probe:
        probe = probe[:-1]
        chain = stack.provenance(probe)
    if chain:
        return Diagnostic(chain[-1].file, chain[-1].line, key, message, code=code)
    return Diagnostic(project_file, None, key, f"{message} (environment {stack.env})", code=code)


def locate_violations(stack: LayerStack, project_file: str,
                      violations: Iterable[SchemaViolation]) -> list[Diagnostic]:
    return [locate_key(stack, project_file, v.keypath, v.message, v.code) for v in violations]
