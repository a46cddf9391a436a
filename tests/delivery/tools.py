"""The pinned delivery tools (scripts/tools.sh): kustomize, cosign, registry, crane.

Found the way the suite finds cue: PATH first (./scripts/dev test puts .tools/bin there),
else the repository's .tools/bin. A missing tool fails the test loudly; it never skips.
"""

from __future__ import annotations

import shutil

from tests.conftest import REPO


def tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(REPO / ".tools/bin"))
    assert found, f"{name} is not installed: run ./scripts/dev tools (scripts/tools.sh)"
    return found
