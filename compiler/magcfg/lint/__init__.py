"""``magcfg lint``: the CI gate for the secrets rules (docs/lint.md).

Rule families live one per module (fallbacks, hardcoded, envfiles, vault_clients,
vault_policy, layer_secrets); ``engine.lint`` runs them over a repository.
"""

from __future__ import annotations

from .config import LintConfig, load_config
from .engine import LintResult, find_root, lint
from .findings import RULES, Finding, Rule

__all__ = ["RULES", "Finding", "LintConfig", "LintResult", "Rule", "find_root", "lint",
           "load_config"]
