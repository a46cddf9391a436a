"""CUE through the ``cue`` CLI: finding and version-checking the binary (``binary``),
``.cue`` layer files (``layers``, ``cue eval`` of them all in one process) and CUE schemas (``schema``,
``cue vet`` of every environment in one process)."""
