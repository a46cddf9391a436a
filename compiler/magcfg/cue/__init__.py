"""CUE through the ``cue`` CLI: finding and version-checking the binary (``binary``),
``.cue`` layer files (``layers``, ``cue eval`` of them all in one process) and CUE schemas (``schema``,
``cue vet`` of every environment in one process)."""

CUE_SUFFIX = ".cue"
"""The suffix of a CUE layer file. Here, not in ``layers``: a build that reads no CUE
(every YAML-only build, and any build that reuses its outputs) asks for it without
importing ``layers`` and what evaluating CUE needs."""
