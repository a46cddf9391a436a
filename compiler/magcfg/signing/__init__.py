"""Signed artifacts: Ed25519 keys (``keys``), manifest signatures and file digests
(``signatures``), the in-toto attestation (``attestation``), versions that only go up
(``versions``), the project's trusted keys (``trust``), and an artifact directory signed
or verified as a whole (``directory``). All but ``directory`` and ``trust`` import only
``cryptography`` and the standard library: the runtime kernel uses them."""
