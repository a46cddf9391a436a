"""The version of magcfg, written into every manifest and cache key."""

__version__ = "0.1.0"

PROJECT_URL = "https://github.com/magflock/magcfg"
"""The project's home (SARIF ``informationUri``/``helpUri``, CloudEvents ``source``
prefix, the package metadata's URLs)."""

COMPILER_MODULES = frozenset({"yaml", "yaml_rs", "jsonschema", "jsonschema_rs", "orjson",
                              "deepdiff", "git", "ruamel", "detect_secrets", "hvac"})
"""What the ``compiler`` extra installs (pyproject.toml), by import name: a command that
imports one of them needs that install (``magcfg[sidecar]`` lacks them)."""
