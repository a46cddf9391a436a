"""Reading a change before it lands: ``diff`` of two environments or of a git ref,
``explain`` of one key, ``promote`` between environments (with minimal ``yamledit``s)
and the version gate against a ref (``succession``); layer files at a ref are read by
``pipeline.gitsource``."""
