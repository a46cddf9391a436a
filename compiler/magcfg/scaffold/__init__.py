"""Adoption: ``magcfg init`` (a new project that builds) and ``magcfg schema infer``
(a strict starting JSON Schema from existing layers). Tools on top of the compiler, like
``review`` and ``lint``."""
