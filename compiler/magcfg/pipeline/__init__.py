"""The build pipeline's stages, in the order data flows through them.

1. ``load``: list each layer directory and parse its files strictly (``syntax``);
2. ``merge``: deep-merge an environment's layers, keeping every leaf's provenance;
3. ``validate``: check the merged config (schema, capabilities' checks) and locate
   every finding at the layer line that set the value;
4. ``redact``: mask every secret value a diagnostic would quote;
5. ``emit``: deterministic bytes of ``config.json`` and ``manifest.json``, written
   atomically.

``context`` holds what capabilities see (the compile context, the extension points);
``cache`` the content-hash cache of parsed files and compiled fragments; ``gitsource``
the source ``load`` reads at a git ref (``diff --against``, ``lint --since``). The stages
are run by ``magcfg.compiler``.
"""
