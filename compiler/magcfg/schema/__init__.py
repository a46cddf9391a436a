"""The project's JSON Schema: checked as hostile input against magcfg's meta-schema
(``dialect``, located by ``json_lines``), indexed for its ``x-magcfg-*`` annotations
(``index``), compiled into a validator (``validator``), rendered as a Markdown
reference of every key (``reference``)."""
