from ..vault_dev import dev_postgres, dev_vault

__all__ = ["dev_postgres", "dev_vault"]
