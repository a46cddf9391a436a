"""Reading a change before it lands: ``diff`` of two environments or of a git ref,
``explain`` of one key, ``promote`` between environments (with minimal ``yamledit``s),
layer files from git objects (``gitsource``) and the version gate against a ref
(``succession``)."""
