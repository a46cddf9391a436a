"""Stage 3, validate: every finding about the merged config, located at a layer line.

The JSON Schema engine is ``magcfg.schema.validator``; capabilities add their own checks
(secret rules, CUE). What this stage adds to all of them is *where*: a finding about a
key is reported at the file and line of the layer that set its value, or, for a key
that is set nowhere (a missing required key), of its nearest ancestor that is set.
Only when nothing on the path is set does it fall back to the project file, naming
the environment.

Locating a finding reads the layer file that set it, so an environment's schema
violations are located one by one only up to ``MAX_VIOLATIONS``; the rest are counted
in one finding (``ViolationLocator``): 100,000 unknown keys cost one read of their file,
not 100,000.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from ..errors import Diagnostic
from ..keyglob import format_keypath
from ..schema.validator import MAX_VIOLATIONS, SchemaViolation, common_keypath

if TYPE_CHECKING:
    from .merge import LayerStack

__all__ = ["ViolationLocator", "locate_key", "name_environments"]


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


def name_environments(found: Mapping[str, Iterable[Diagnostic]], stacks: Iterable[LayerStack]
                      ) -> list[Diagnostic]:
    """The errors of several environments (env -> its diagnostics), each once; an error
    located in a file that more than one of ``stacks`` reads (a base layer) names the
    environments it fails in, since the file alone does not say."""
    readers = Counter(f.path for stack in stacks for f in stack.files())
    envs_of: dict[Diagnostic, list[str]] = {}
    for env, diagnostics in found.items():
        for d in diagnostics:
            envs_of.setdefault(d, []).append(env)
    out = []
    for d, envs in envs_of.items():
        if d.severity == "error" and readers[d.file] > 1:
            plural = "s" if len(envs) > 1 else ""
            d = d.replace(message=f"{d.message} (environment{plural} {', '.join(envs)})")
        out.append(d)
    return out


class ViolationLocator:
    """The schema violations of one environment, as findings at the lines that set
    them: the first ``MAX_VIOLATIONS``, then one that counts the rest."""

    def __init__(self, stack: LayerStack, project_file: str) -> None:
        self.stack = stack
        self.project_file = project_file
        self._shown = 0
        self._hidden = 0
        self._hidden_path: tuple[str, ...] | None = None

    def locate(self, violations: Iterable[SchemaViolation]) -> list[Diagnostic]:
        """Findings for ``violations`` while the budget lasts; the rest are counted."""
        out = []
        for v in violations:
            if self._shown < MAX_VIOLATIONS:
                self._shown += 1
                out.append(locate_key(self.stack, self.project_file, v.keypath, v.message,
                                      v.code))
                continue
            self._hidden += v.errors
            self._hidden_path = common_keypath(self._hidden_path, v.keypath)
        return out

    def not_shown(self) -> list[Diagnostic]:
        """The finding that counts the violations past the budget (none: ``[]``)."""
        if not self._hidden:
            return []
        message = f"{self._hidden} more schema errors not shown"
        if not self._hidden_path:
            return [Diagnostic(self.project_file, None, None,
                               f"{message} (environment {self.stack.env})", code="schema-more")]
        return [locate_key(self.stack, self.project_file, self._hidden_path, message,
                           "schema-more")]
