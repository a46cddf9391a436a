"""The version of magcfg, written into every manifest and cache key."""

__version__ = "0.1.0"
