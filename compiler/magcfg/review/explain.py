"""``magcfg explain``: a key's value and every layer that set it, lowest first."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..compiler import Compiler
from ..errors import UsageError, printable
from ..keyglob import format_keypath, parse_keypath
from ..pipeline.merge import ABSENT, Provenance
from ..project import Project
from ..syntax.strict_yaml import UNSET, is_unset_item


@dataclass(frozen=True)
class Explanation:
    """The effective value (redacted) and its provenance chain (values redacted)."""

    env: str
    key: str
    value: Any
    present: bool
    chain: tuple[Provenance, ...]
    reload: str
    secret: bool


def explain(project: Project, env: str, key: str) -> Explanation:
    """Explain ``key`` (dotted) in ``env``. Unknown keys are a usage error."""
    env = project.check_envs([env])[0]
    keypath = tuple(p for p in parse_keypath(key) if p)
    if not keypath:
        raise UsageError("give a dotted key, e.g. magds.port")
    compiler = Compiler(project)
    stack = compiler.load_stack(env)
    schema = compiler.schema()
    redactor = compiler.redactor()
    policies = compiler.policies()
    value = stack.value_at(keypath)
    chain = stack.provenance(keypath)
    if value is ABSENT and not chain:
        import difflib

        # Correct the path segment by segment (magds.conection.port -> ...connection.port).
        fixed: list[str] = []
        for part in keypath:
            known = schema.index.known_keys(tuple(fixed)) if schema else []
            if part in known or not known:
                fixed.append(part)
                continue
            close = difflib.get_close_matches(part, known, n=1)
            fixed.append(close[0] if close else part)
        extra = (f" (did you mean {format_keypath(fixed)!r}?)" if tuple(fixed) != keypath
                 else "")
        raise UsageError(f"no layer of {env} sets {key!r}{extra}")
    secret = redactor.is_secret(keypath)
    files = {p.file for p in chain}
    shown = tuple(
        Provenance(p.file, p.line, p.layer, p.value if p.value == UNSET
                   else compiler.masked_literals(redactor.shown(keypath, p.value), files))
        for p in chain)
    return Explanation(
        env=env, key=key,
        value=None if value is ABSENT
        else compiler.masked_literals(redactor.shown(keypath, value), files),
        present=value is not ABSENT, chain=shown,
        reload=policies.reload_policy(keypath) if policies else "restart",
        secret=secret)


def format_explanation(e: Explanation, name: Callable[[str], str]) -> str:
    """The text of ``explain``, each file named by ``name`` (``Provenance.where``)."""
    import json

    def show(v: Any) -> str:
        # JSON, except the markers, written as in the layer file (`- !unset {name: x}`
        # items of a keyed list included): explain points at them, so it names them.
        # JSON escapes control characters; printable, the format characters it leaves.
        if v == UNSET:
            return "!unset"
        if is_unset_item(v):
            return "!unset " + show(v[1])
        if type(v) is list:
            return "[" + ", ".join(show(x) for x in v) + "]"
        if type(v) is dict:
            return "{" + ", ".join(f"{printable(json.dumps(k, ensure_ascii=False))}: {show(x)}"
                                   for k, x in sorted(v.items())) + "}"
        return printable(json.dumps(v, ensure_ascii=False, sort_keys=True))

    lines = [f"{printable(e.key)} = {show(e.value) if e.present else '(not set)'}"
             f"    [{e.env}; reload: {e.reload}{'; secret' if e.secret else ''}]"]
    for i, p in enumerate(e.chain):
        mark = "=>" if i == len(e.chain) - 1 and e.present else "  "
        lines.append(f"  {mark} {p.where(name)}  ({p.layer})  {show(p.value)}")
    return "\n".join(lines)
