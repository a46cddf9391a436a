"""The project's JSON Schema: loaded and indexed for its ``x-magcfg-*`` annotations
(``index``), compiled into a validator (``validator``), rendered as a Markdown
reference of every key (``reference``)."""
