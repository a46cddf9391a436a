"""Secrets are references, never values: the reference grammar (``references``), the one
redactor (``redaction``), the project file's ``secrets:`` settings (``settings``), the
build's secret rules (``rules``), the ExternalSecret and Vault policy files
(``manifests``), and the start-up check that every secret was delivered (``check_env``).
``references``, ``redaction`` and ``check_env`` are shared with the runtime kernel."""
