"""The language server (``magcfg lsp``): the compiler's answers inside any LSP editor.

``session`` keeps one project's diagnostics current from the editor's unsaved buffers
(``overlay``), re-checking only the fragments an edit touched, and answers questions
about the key at a cursor (``cursor``): hover, definition, references, completion, fixes.
``server`` speaks the protocol (pygls, the optional ``lsp`` extra).
"""

from __future__ import annotations
