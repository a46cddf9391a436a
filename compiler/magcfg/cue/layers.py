"""CUE layers: ``.cue`` files in a layer directory, evaluated by ``cue`` as ``cue export``
would export them.

Each ``.cue`` file is one layer file on its own (like a YAML file): it is evaluated
alone, may import CUE's standard library, and must export a struct whose values are
all concrete. Its JSON is merged exactly like a YAML file's data, and provenance names
the ``.cue`` file (with the line of the field, found by ``locate_cue``).

Batching: ``cue`` start-up dominates a small file's cost, so all ``.cue`` files of a
build that are not in the cache are evaluated by ONE process. ``cue export`` of several
files would unify them into one value; instead each file is copied into one temporary
directory as a package of its own (``l0_<token>.cue`` is ``package l0_<token>``, the
token drawn for the run, ...), and ``cue eval --concrete --ignore --out json
.:l0_<token> .:l1_<token> ...`` evaluates those instances separately, each once: it
prints the JSON document of each instance that passed, in order (what ``cue export
--out json`` prints for it), and the errors of every one that failed, each after a
``// :l0_<token>`` line naming it (``cue export`` stops at the first
failure, so the errors of the others took a run each). The package clause is renamed in
place, or added on the first line, so line numbers in cue's errors stay those of the
real file. (One directory, not one per file: on the build machines' disks each
mkdir/rmdir costs about a millisecond.)

Only the top-level keys of an exported file are cached, by (cue version, sha256 of the
file), never its values (``pipeline.cache``): when a fragment a cached file contributes
to has to be merged again, the cached files are exported then, again by one process.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import secrets
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

from ..errors import BuildError, Diagnostic
from ..keyglob import format_keypath
from ..pipeline.cache import BuildCache
from ..pipeline.load import ParsedFile
from ..syntax.locate import locate_cue
from ..syntax.scalars import Refusal, json_number
from ..syntax.strict_yaml import MAX_DEPTH, conflict_marker
from . import CUE_SUFFIX
from .binary import CueBinary, find_cue, merge_disjunctions, parse_errors, workdir

if TYPE_CHECKING:
    from ..pipeline.context import Workspace

EVALUATE = ("eval", "--concrete", "--ignore", "--out", "json")
"""The command (after ``cue``) that evaluates .cue layers, each instance named after it."""
_PACKAGE = re.compile(r"\A(?:\s|//[^\n]*)*package\s+([A-Za-z_][A-Za-z0-9_]*)")


def load_cue_layers(compiler: Workspace, paths: list[str]) -> dict[str, ParsedFile]:
    """ParsedFile of every ``.cue`` layer file in ``paths``; BuildError with every
    located error otherwise."""
    if not paths:
        return {}
    raws = {p: compiler.source.read(p) for p in paths}
    # As for a YAML layer: a conflict inside a multi-line string evaluates, both sides.
    conflicts = [d for p in paths
                 if (found := conflict_marker(p, raws[p].decode("utf-8", errors="replace")))
                 for d in found.diagnostics]
    if conflicts:
        raise BuildError(conflicts)
    cue = find_cue(paths[0], compiler.project.root, compiler.cache)
    digests = {p: hashlib.sha256(raws[p]).hexdigest() for p in paths}
    names = {p: BuildCache.fragment_key("cue-export", cue.version, digests[p]) for p in paths}
    out: dict[str, ParsedFile] = {}
    cached: list[str] = []
    exported: dict[str, dict[str, Any]] = {}

    def data_of(path: str) -> dict[str, Any]:
        if path not in exported:
            # The first cached file needed exports every cached one: one process.
            exported.update(export(cue, {p: raws[p] for p in cached if p not in exported}))
        return exported[path]

    for path in paths:
        known = compiler.cache.layer_keys(names[path])
        if known is not None:
            cached.append(path)
            out[path] = ParsedFile(path, digests[path], known[0], False,
                                   loader=functools.partial(data_of, path))
    todo = [p for p in paths if p not in out]
    if todo:
        exported.update(export(cue, {p: raws[p] for p in todo}))
        for path in todo:
            data = exported[path]
            compiler.cache.put_layer_keys(names[path], tuple(data), False)
            out[path] = ParsedFile(path, digests[path], tuple(data), False, data=data)
    return out


def export(cue: CueBinary, files: dict[str, bytes]) -> dict[str, dict[str, Any]]:
    """One ``cue eval`` for all ``files`` (path -> bytes): the data of each, or a
    ``BuildError`` with the errors of every file that failed."""
    order = list(files)
    documents, diagnostics = _evaluate(cue, files)
    if diagnostics:
        raise BuildError(diagnostics)
    out: dict[str, dict[str, Any]] = {}
    problems = []
    for path, data in zip(order, documents, strict=True):
        if not isinstance(data, dict):
            problems.append(Diagnostic(path, None, None,
                                       "a .cue layer must evaluate to a struct (the top level "
                                       f"is {type(data).__name__})", code="toplevel"))
            continue
        found = list(_beyond_layer_rules(data, (), 1))
        if found:
            text = files[path].decode("utf-8", errors="replace")
            problems.extend(Diagnostic(path, locate_cue(text, keypath),
                                       format_keypath(keypath) or None, message, code=code)
                            for keypath, code, message in found)
            continue
        out[path] = data
    if problems:
        raise BuildError(problems)
    return out


def _evaluate(cue: CueBinary, files: dict[str, bytes]) -> tuple[list[Any], list[Diagnostic]]:
    """``(documents, errors)`` of one ``cue eval`` of ``files``: every instance is
    evaluated once, and the errors of each that failed are printed after its ``// :P``
    line (P its package). An error that stops the run before any instance is evaluated
    (a reference or an import that is not there) is printed alone: the files it names
    are left out and the others run again, which evaluates each of them once. Should
    that run stop too, each file left runs alone: a run of all the rest after each such
    file would cost as many runs of them as there are (quadratic)."""
    documents, diagnostics, stopped = _evaluate_once(cue, files)
    if not stopped:
        return documents, diagnostics
    rest = _unblamed(files, diagnostics)
    if rest:
        _, found, stopped = _evaluate_once(cue, rest)
        diagnostics += found
        if stopped:
            for path, data in _unblamed(rest, diagnostics).items():
                diagnostics += _evaluate_once(cue, {path: data})[1]
    return [], diagnostics


def _unblamed(files: dict[str, bytes], diagnostics: list[Diagnostic]) -> dict[str, bytes]:
    blamed = {d.file for d in diagnostics}
    return {path: data for path, data in files.items() if path not in blamed}


def _evaluate_once(cue: CueBinary, files: dict[str, bytes]
                   ) -> tuple[list[Any], list[Diagnostic], bool]:
    """``_evaluate``'s one run: its documents, its errors and whether cue stopped before
    it evaluated any of several instances (their errors are not all known).

    Packages and file names carry a token drawn for the run (``l0_<token>``): cue prints
    an ``error("...")`` text as written, line ends and all, and a text that wrote the
    label, a position or the file name of another instance put its lines on that file."""
    order = list(files)
    token = secrets.token_hex(8)
    packages = [f"l{i}_{token}" for i in range(len(order))]
    instance = {}  # "lN_<token>.cue" -> project path
    with workdir() as base:
        for package, path in zip(packages, order, strict=True):
            name = f"{package}.cue"
            (base / name).write_bytes(_as_package(files[path], package))
            instance[name] = path
        done = cue.run([*EVALUATE, *(f".:{package}" for package in packages)], base)
    if done.returncode != 0:
        # Text before the first label is about no instance in particular (all of it,
        # when the run stopped before evaluating, or when there is one instance).
        labels = re.compile(rf"^// :(l\d+_{token})$", re.MULTILINE)
        parts = labels.split(done.stderr)
        diagnostics = _diagnostics(parts[0], instance, order, None)
        for label, text in zip(parts[1::2], parts[2::2], strict=True):
            diagnostics += _diagnostics(text, instance, order, instance.get(f"{label}.cue"))
        if not diagnostics:
            diagnostics.append(Diagnostic(order[0], None, None, "cue export failed: cue "
                                          f"exited with status {done.returncode}", code="cue"))
        return [], diagnostics, len(parts) == 1 and len(order) > 1
    try:
        documents = _json_stream(done.stdout)
    except _TooDeep as exc:
        return [], [Diagnostic(order[exc.index], None, None, _TOO_DEEP, code="depth")], False
    if len(documents) != len(order):
        return [], [Diagnostic(order[0], None, None,
                               f"cue eval printed {len(documents)} documents for "
                               f"{len(order)} .cue files", code="cue")], False
    return documents, [], False


def _as_package(raw: bytes, package: str) -> bytes:
    """The file's text as package ``package``, every line where it was: a ``package``
    clause is renamed in place, or one is put in front of the first line."""
    text = raw.decode("utf-8", errors="replace")
    m = _PACKAGE.match(text)
    if m is None:
        return f"package {package}, ".encode() + raw
    return (text[:m.start(1)] + package + text[m.end(1):]).encode("utf-8")


_TOO_DEEP = f"nesting deeper than {MAX_DEPTH} levels"


class _Refused(NamedTuple):
    """A number of cue's output that a layer cannot hold (``json_number``)."""

    refusal: Refusal


class _TooDeep(Exception):
    """Document ``index`` of cue's output nests past the JSON decoder's recursion."""

    def __init__(self, index: int) -> None:
        self.index = index


def _number(token: str) -> Any:
    value, refusal = json_number(token)
    return value if refusal is None else _Refused(refusal)


# The layer rules for numbers, while decoding: int() of 4,300+ digits raises.
_DECODER = json.JSONDecoder(parse_int=_number, parse_float=_number)


def _json_stream(text: str) -> list[Any]:
    out: list[Any] = []
    i = 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return out
        try:
            value, i = _DECODER.raw_decode(text, i)
        except RecursionError:
            raise _TooDeep(len(out)) from None
        out.append(value)


def _beyond_layer_rules(node: dict[str, Any] | list[Any], keypath: tuple[str, ...],
                        depth: int) -> Iterator[tuple[tuple[str, ...], str, str]]:
    """``(keypath, code, message)`` where exported data breaks a rule a YAML layer is
    held to: nesting past MAX_DEPTH (jsonschema-rs gives up ~250 levels down, with a
    ValueError), and a number ``json_number`` refuses."""
    if depth > MAX_DEPTH:
        yield keypath, "depth", _TOO_DEEP
        return
    for key, value in node.items() if type(node) is dict else enumerate(node):
        if type(value) is _Refused:
            yield (*keypath, str(key)), *value.refusal
        elif type(value) is dict or type(value) is list:
            yield from _beyond_layer_rules(value, (*keypath, str(key)), depth + 1)


def _diagnostics(stderr: str, instance: dict[str, str], order: list[str],
                 labelled: str | None) -> list[Diagnostic]:
    """The errors in ``stderr`` (cue's text about the instance of the file
    ``labelled``, or about none), each at the layer file and line it names."""
    if not stderr.strip() and labelled is None:
        return []
    out = []
    for e in merge_disjunctions(parse_errors(stderr)):
        located = [(instance[f.removeprefix("./")], line) for f, line, _ in e.positions
                   if f.removeprefix("./") in instance]
        if located:
            file, line = located[0]
        else:
            # No position in a layer file: the instance cue printed it under, else the
            # file cue's text names, else the first.
            named = [p for key, p in instance.items() if key in e.message]
            file, line = (labelled or (named[0] if named else order[0])), None
        message = e.message
        for key, path in instance.items():
            message = message.replace(f"./{key}", path).replace(key, path).replace(
                key.removesuffix(CUE_SUFFIX), path)
        out.append(Diagnostic(file, line, format_keypath(e.path) or None,
                              f"cue export: {message}", code="cue"))
    if not out:
        out.append(Diagnostic(labelled or order[0], None, None,
                              f"cue export failed: {stderr.strip()[:500]}", code="cue"))
    return out


# A token of a .cue file as written_literals reads it: a comment, a string's opening
# (raw with any number of #, multi-line, or one-line: its end is looked for apart), a
# number, an identifier, or one character.
_NUMBER = (r"(?<![\w$#.])[-+]?(?:0[xXoObB][0-9a-fA-F_]+"
           r"|[0-9][0-9_]*(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?[KMGTP]?i?)(?![\w$#])")
_TOKEN = re.compile(r"""(?P<comment>//[^\n]*)|(?P<open>#*(?:"{3}|'{3}|"|'))"""
                    rf"|(?P<number>{_NUMBER})|(?P<ident>[A-Za-z_$#][\w$#]*)|(?P<char>\S)")
_LABEL_END = re.compile(r"\s*[?!]?\s*:(?![=:])")


def written_literals(text: str) -> Iterator[tuple[tuple[str, ...], str]]:
    """``(key path, text)`` of each string or number literal written in a ``.cue`` file,
    under the labels of the fields around it (a list's items under the list's field; a
    one-line ``"..."`` string also as its value). Read from the text, for a file cue
    could not evaluate: its errors may quote any of its literals, and the build masks
    those under secret keys (``Compiler._secret_texts``). Linear in the text: a string
    with no end ends the reading."""
    stack: list[tuple[str, ...]] = [()]
    chain: tuple[str, ...] = ()
    pos = 0
    while (m := _TOKEN.search(text, pos)) is not None:
        if "\n" in text[pos:m.start()]:  # a field ends at its line's end
            chain = ()
        pos = m.end()
        kind = m.lastgroup
        if kind == "open":
            opening = m.group(0)
            hashes = len(opening) - len(opening.lstrip("#"))
            closing = opening[hashes:] + "#" * hashes
            end = _string_end(text, pos, closing, raw=hashes > 0)
            if end is None:
                return
            body, pos = text[pos:end], end + len(closing)
            decoded = _decoded(opening, body)
            if _LABEL_END.match(text, pos):
                chain = (*chain, decoded)[:MAX_DEPTH]
                continue
            yield (*stack[-1], *chain), body
            if decoded != body:
                yield (*stack[-1], *chain), decoded
        elif kind == "ident":
            if _LABEL_END.match(text, pos):
                chain = (*chain, m.group(0))[:MAX_DEPTH]
        elif kind == "number":
            yield (*stack[-1], *chain), m.group(0)
        elif kind == "char":
            char = m.group(0)
            if char in "{[(":
                stack.append((*stack[-1], *chain)[:MAX_DEPTH])
                chain = ()
            elif char in "}])":
                if len(stack) > 1:
                    stack.pop()
                chain = ()
            elif char == ",":
                chain = ()


def _string_end(text: str, start: int, closing: str, raw: bool) -> int | None:
    """Where the string whose body begins at ``start`` closes with ``closing``: on its
    line for a one-line string, never after an escaping backslash unless ``raw``."""
    limit = len(text)
    if closing[:3] not in ('"""', "'''"):
        newline = text.find("\n", start)
        limit = newline if newline >= 0 else limit
    at = start
    while (end := text.find(closing, at, limit)) >= 0:
        backslashes = 0 if raw else end - start - len(text[start:end].rstrip("\\"))
        if backslashes % 2 == 0:
            return end
        at = end + 1
    return None


def _decoded(opening: str, body: str) -> str:
    """A ``"..."`` string's value (its escapes read as JSON's); any other body as is."""
    if opening != '"':
        return body
    try:
        value = json.loads(f'"{body}"')
    except ValueError:
        return body
    return value if isinstance(value, str) else body
