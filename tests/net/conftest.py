"""The fixtures of the network tests."""

from .slow import resolver  # noqa: F401  (fixture)
