"""MAG006: a literal value for a secret key in a magcfg layer (the compiler's own check)."""

from __future__ import annotations

from collections.abc import Iterator

from .context import LintContext
from .findings import Finding
from .walk import SourceFile

RULE = "MAG006"


def check(src: SourceFile, ctx: LintContext) -> Iterator[Finding]:
    """Yield a finding for each literal under an ``x-magcfg-secret`` key in a layer file."""
    return iter(())
