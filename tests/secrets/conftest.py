from ..vault_dev import dev_postgres, dev_vault, dev_vault_tls

__all__ = ["dev_postgres", "dev_vault", "dev_vault_tls"]
