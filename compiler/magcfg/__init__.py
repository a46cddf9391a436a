"""magcfg: a declarative GitOps configuration compiler for the MagFlock platform.

The public Python API is what this module exports; everything else is private and may
change. The runtime kernel lives in ``magcfg.runtime`` and imports none of this.

    >>> import magcfg
    >>> project = magcfg.load_project("magcfg.yaml")
    >>> result = magcfg.build(project)
"""

from __future__ import annotations

from .version import __version__

# ``typing`` is a quarter of the runtime kernel's import time (every import of
# ``magcfg.runtime`` runs this module first): mypy reads TYPE_CHECKING as true.
TYPE_CHECKING = False

__all__ = [
    "Artifact",
    "BuildError",
    "BuildResult",
    "Diagnostic",
    "Explanation",
    "LayerStack",
    "MagcfgError",
    "Project",
    "Provenance",
    "__version__",
    "build",
    "compile_environment",
    "explain",
    "load_project",
]

if TYPE_CHECKING:
    from typing import Any

    from .compiler import Artifact, BuildResult, build, compile_environment
    from .errors import BuildError, Diagnostic, MagcfgError
    from .pipeline.merge import LayerStack, Provenance
    from .project import Project, load_project
    from .review.explain import Explanation, explain

_LAZY = {
    "Artifact": "compiler",
    "BuildResult": "compiler",
    "build": "compiler",
    "compile_environment": "compiler",
    "BuildError": "errors",
    "Diagnostic": "errors",
    "MagcfgError": "errors",
    "Explanation": "review.explain",
    "explain": "review.explain",
    "LayerStack": "pipeline.merge",
    "Provenance": "pipeline.merge",
    "Project": "project",
    "load_project": "project",
}


def __getattr__(name: str) -> Any:
    # Lazy: `import magcfg.runtime` must not pay for the compiler's imports.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'magcfg' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{module}", __name__), name)
