"""Delivery through OCI registries: references (``reference``), a registry client
(``registry``), Flux's artifact format (``flux``), cosign's signatures and attestations
(``cosign``) and ``magcfg publish`` (``publish``).

All but ``publish`` use only the standard library and ``cryptography``, so the runtime
kernel can pull and verify with them.
"""
