"""The version of magcfg, written into every manifest and cache key."""

__version__ = "0.1.0"

PROJECT_URL = "https://github.com/magflock/magcfg"
"""The project's home (SARIF ``informationUri``/``helpUri``, CloudEvents ``source``
prefix, the package metadata's URLs)."""
