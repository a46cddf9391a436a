from ..vault_dev import dev_vault

__all__ = ["dev_vault"]
