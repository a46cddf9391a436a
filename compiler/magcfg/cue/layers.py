"""CUE layers: ``.cue`` files in a layer directory, evaluated by ``cue export``.

Each ``.cue`` file is one layer file on its own (like a YAML file): it is evaluated
alone, may import CUE's standard library, and must export a struct whose values are
all concrete. Its JSON is merged exactly like a YAML file's data, and provenance names
the ``.cue`` file (with the line of the field, found by ``locate_cue``).

Batching: ``cue`` start-up dominates a small file's cost, so all ``.cue`` files of a
build that are not in the cache are exported by ONE process. ``cue export`` of several
files would unify them into one value; instead each file is copied into one temporary
directory as a package of its own (``l0.cue`` is ``package l0``, ...), and
``cue export --out json .:l0 .:l1 ...`` evaluates those instances separately and prints
one JSON document per instance, in order. The package clause is renamed in place, or
added on the first line, so line numbers in cue's errors stay those of the real file.
(One directory, not one per file: on the build machines' disks each mkdir/rmdir costs
about a millisecond.)

Only the top-level keys of an exported file are cached, by (cue version, sha256 of the
file), never its values (``pipeline.cache``): when a fragment a cached file contributes
to has to be merged again, the cached files are exported then, again by one process.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ..errors import BuildError, Diagnostic
from ..keyglob import format_keypath
from ..pipeline.cache import BuildCache
from ..pipeline.load import ParsedFile
from ..syntax.locate import locate_cue
from ..syntax.scalars import Refusal, json_number
from ..syntax.strict_yaml import MAX_DEPTH
from .binary import CueBinary, CueError, find_cue, merge_disjunctions, parse_errors

if TYPE_CHECKING:
    from ..pipeline.context import Workspace

CUE_SUFFIX = ".cue"
_PACKAGE = re.compile(r"\A(?:\s|//[^\n]*)*package\s+([A-Za-z_][A-Za-z0-9_]*)")


def load_cue_layers(compiler: Workspace, paths: list[str]) -> dict[str, ParsedFile]:
    """ParsedFile of every ``.cue`` layer file in ``paths``; BuildError with every
    located error otherwise."""
    if not paths:
        return {}
    raws = {p: compiler.source.read(p) for p in paths}
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
    """One ``cue export`` for all ``files`` (path -> bytes): the data of each.

    cue evaluates every instance it is given, then prints them in order and stops at
    the first that fails: so on errors the files after it are exported again, each
    alone, so that every error is known (cue evaluates in parallel already). Together,
    every run would evaluate all the files still left (K failing files cost K runs of
    each: four slow ones took 38.6 s instead of 17 s); alone, a file is evaluated at
    most twice, and a process costs ~20 ms. One process runs when all is well."""
    order = list(files)
    documents, printed, diagnostics = _export_once(cue, files)
    if diagnostics:
        blamed = {d.file for d in diagnostics}
        # The instances printed before the failure passed: never evaluated again.
        rest = [p for p in order[printed:] if p not in blamed]
        for path in rest:
            diagnostics.extend(_export_once(cue, {path: files[path]})[2])
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


def _export_once(cue: CueBinary, files: dict[str, bytes]
                 ) -> tuple[list[Any], int, list[Diagnostic]]:
    """``(documents, printed, errors)``: on errors, ``printed`` counts the instances cue
    printed (and so passed) before the one that failed."""
    order = list(files)
    instance = {}  # "lN.cue" -> project path
    with tempfile.TemporaryDirectory(prefix="magcfg-cue-") as tmp:
        base = Path(tmp)
        for i, path in enumerate(order):
            raw, name = _as_package(files[path], f"l{i}"), f"l{i}.cue"
            (base / name).write_bytes(raw)
            instance[name] = path
        done = cue.run(["export", "--out", "json", *(f".:l{i}" for i in range(len(order)))], base)
    if done.returncode != 0:
        try:
            printed = len(_json_stream(done.stdout))
        except (ValueError, _TooDeep):
            printed = 0  # only costs exporting them again
        return [], min(printed, len(order)), _diagnostics(
            merge_disjunctions(parse_errors(done.stderr)), instance, order, done.stderr)
    try:
        documents = _json_stream(done.stdout)
    except _TooDeep as exc:
        return [], exc.index, [Diagnostic(order[exc.index], None, None, _TOO_DEEP,
                                          code="depth")]
    if len(documents) != len(order):
        return [], 0, [Diagnostic(order[0], None, None,
                                  f"cue export printed {len(documents)} documents for "
                                  f"{len(order)} .cue files", code="cue")]
    return documents, len(documents), []


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


def _diagnostics(errors: list[CueError], instance: dict[str, str], order: list[str],
                 stderr: str) -> list[Diagnostic]:
    out = []
    for e in errors:
        located = [(instance[f.removeprefix("./")], line) for f, line, _ in e.positions
                   if f.removeprefix("./") in instance]
        if located:
            file, line = located[0]
        else:
            # No position in a layer file: name the file from cue's text if it says.
            named = [p for key, p in instance.items() if key in e.message]
            file, line = (named[0] if named else order[0]), None
        message = e.message
        for key, path in instance.items():
            message = message.replace(f"./{key}", path).replace(key, path)
        out.append(Diagnostic(file, line, format_keypath(e.path) or None,
                              f"cue export: {message}", code="cue"))
    if not out:
        out.append(Diagnostic(order[0], None, None,
                              f"cue export failed: {stderr.strip()[:500]}", code="cue"))
    return out
