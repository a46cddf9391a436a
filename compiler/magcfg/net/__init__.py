"""What every client of a server shares: a whole-request deadline (``deadline``), used by
the OCI registry client and the Vault client alike. Standard library only (the runtime
kernel talks to both)."""
