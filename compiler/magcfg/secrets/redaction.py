"""The one redactor: which keys are secret, and their values masked wherever shown.

A key is secret when the schema marks it (or an ancestor) ``x-magcfg-secret`` or when
its key path matches a glob of the project's ``redact:`` list (``*`` matches within one
segment, ``**`` any number of segments; :mod:`magcfg.keyglob`). Key paths are tuples
of segments here: ``apps.*.dsn`` covers the ``dsn`` of the key ``"eu.west"``. Redacted values show
as the fixed marker ``<redacted>``; callers that compare (diff, runtime events) compare
the real values first and show *that* a secret changed without showing either side.
Build, review commands and the runtime kernel all use this one class.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from typing import Any, NamedTuple, Protocol

from ..errors import printable
from ..keyglob import KeyGlobs, format_keypath
from .references import parse_reference

REDACTED = "<redacted>"

_URL_LOGIN = re.compile(r"\A([A-Za-z][A-Za-z0-9+.-]*://).*@", re.DOTALL)


def without_login(url: str) -> str:
    """``url`` as magcfg names it in what it prints: its login (``https://USER:TOKEN@HOST/
    ...``, the way CI pushes with a token and reaches a server behind a proxy's basic
    auth) as ``REDACTED``, up to the URL's last ``@`` (a token may hold ``/``)."""
    return _URL_LOGIN.sub(lambda m: f"{m.group(1)}{REDACTED}@", url, count=1)


_AUTHORITY = re.compile(r"\A[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)")
_HOST_PORT = re.compile(r"(?:\[[0-9A-Za-z:.]+\]|[^\s:@\[\]]+)(?::[0-9]*)?")


def login_dropped(url: str) -> str:
    """``url`` with no login at all: where the URL is data others read and parse, such
    as an artifact's source annotation. The login is what comes before the last ``@``
    of the authority, as git and curl read it, so that an ``@`` of the path stays
    (``https://forge.example/@team/repo``); an authority that is no host and port with
    what comes before (``https://USER:TO/KEN@HOST``) loses everything up to the URL's last
    ``@``, as ``without_login`` masks it."""
    authority = _AUTHORITY.match(url)
    if authority is not None:
        host = authority.group(1).rpartition("@")[2]
        if _HOST_PORT.fullmatch(host):
            return url[:authority.start(1)] + host + url[authority.end(1):]
    return _URL_LOGIN.sub(lambda m: m.group(1), url, count=1)


@lru_cache(maxsize=8)
def _forms(values: frozenset[str]) -> tuple[str, ...]:
    """Every ``quoted_forms`` of ``values``, the longest first (a secret that holds
    another is masked whole). Kept for the last few sets: a build masks each of its
    diagnostics, and the runtime each event, with one set."""
    return tuple(sorted({f for v in values for f in quoted_forms(v)}, key=len, reverse=True))


def quoted_forms(value: str) -> set[str]:
    """``value`` as a message may quote it: as it is, as the body of a JSON string (the
    schema engine's quotes, which escape a backslash, a quote, a newline or a control
    character; non-ASCII kept or escaped), as the body of a CUE string (``_cue_body``),
    as ``printable`` shows it, and HTML-escaped (a server's error page an HTTP client
    quotes: ``&amp;``, ``&lt;``)."""
    import html  # here: its entity tables cost a runtime kernel's start, which masks nothing

    forms = {value, printable(value), _cue_body(value),
             html.escape(value), html.escape(value, quote=False)}
    for ascii_only in (False, True):
        body = json.dumps(value, ensure_ascii=ascii_only)[1:-1]
        forms |= {body, printable(body)}
    return forms


LINE_WRAP = r"\r?\n[ \t]*"
"""A line break inside a value a message quotes: a long line wrapped, the next one
indented or not."""
_BASE64_RUN = re.compile(f"[A-Za-z0-9+/_-]+(?:{LINE_WRAP}[A-Za-z0-9+/_-]+)*=*")
"""A run of base64 (or base64url) text, padded or not, wrapped or not (MIME wraps it at 76
characters); hex digits are such a run too."""
_HEX_APART = re.compile(rf"[ :]|\\x|{LINE_WRAP}")
_SPACED_HEX = re.compile(
    rf"(?<![0-9A-Za-z])(?:\\x)?(?:[0-9A-Fa-f]{{2}})+"
    rf"(?:(?:{_HEX_APART.pattern})(?:[0-9A-Fa-f]{{2}})+)+(?![0-9A-Za-z])")
"""Hex digits in bytes or groups of bytes set apart by a space or a colon, or each
escaped ``\\xNN``, wrapped or not: a dump of bytes (``68 75 6e``, ``68:75:6E``,
``6875 6e74``, ``\\x68\\x75``), which no run of ``_BASE64_RUN`` holds whole."""
_URL_SAFE = str.maketrans("-_", "+/")
_MIN_ENCODED = 4
"""The fewest bytes of a secret looked for inside base64 or hex: a shorter one is found
by chance in the bytes a digest or a random token decodes to."""


class _Needle(NamedTuple):
    """What a run of base64 or hex holds where it encodes ``value``: ``text``, the part
    of the encoding its bytes alone decide. For base64, ``value`` starts ``align`` bytes
    into a group of three, whose four characters start ``lead`` characters before
    ``text``; for hex (``lead`` -1), ``text`` is its lower-case hex, whole."""

    text: str
    lead: int
    align: int
    value: bytes


def _needles(value: bytes) -> list[_Needle]:
    """``value``'s base64 at each of the three places it may start in a group of three
    bytes (the characters that take bits of the bytes around it left out), and its hex."""
    import base64  # here: a runtime kernel's start masks nothing (as html, above)

    found = [_Needle(value.hex(), -1, 0, value)]
    for align in range(3):
        encoded = base64.b64encode(bytes(align) + value + bytes(2)).decode("ascii")
        first = -(-8 * align // 6)  # the first character of the value's bits alone
        found.append(_Needle(encoded[first:8 * (align + len(value)) // 6], first, align, value))
    return found


def _decodes_to_it(run: str, at: int, needle: _Needle) -> bool:
    """Whether base64 ``run`` decodes to ``needle``'s value where its text stands at
    ``at``: the groups of four that hold it, whole or cut short at the run's end."""
    start = at - needle.lead
    if start < 0:  # the group's first characters are not in the run
        return False
    body = run[start:start + 4 * -(-(needle.align + len(needle.value)) // 3)]
    body = body[:len(body) - (len(body) % 4 == 1)]
    import base64

    decoded = base64.b64decode(body + "=" * (-len(body) % 4))
    return decoded[needle.align:needle.align + len(needle.value)] == needle.value


_GRAM = 8
"""The characters of a text looked up at once, every ``_GRAM``-th place (``_Finder``)."""


class _Finder:
    """Where a text holds any of many strings, at a cost of the text's length, not of
    its length times their number: the text is looked up every ``_GRAM`` places,
    ``_GRAM`` characters at a time, in the table of each long string's first ``_GRAM``
    windows of ``_GRAM`` characters (an occurrence of ``2 * _GRAM - 1`` or more covers
    one such place); a shorter string is looked up at each place by its first
    ``_MIN_ENCODED`` characters, one shorter still searched for. A few strings, or a
    short text, are searched for each in turn, which then costs less."""

    def __init__(self, strings: Iterable[str]) -> None:
        self.long: list[str] = []
        self.windows: dict[str, list[tuple[int, str]]] = {}
        self.short: list[str] = []
        self.by_start: dict[str, list[str]] = {}
        self.tiny: list[str] = []
        for string in set(strings):
            if len(string) >= 2 * _GRAM - 1:
                self.long.append(string)
                for offset in range(_GRAM):
                    self.windows.setdefault(string[offset:offset + _GRAM], []).append(
                        (offset, string))
            elif len(string) >= _MIN_ENCODED:
                self.short.append(string)
                self.by_start.setdefault(string[:_MIN_ENCODED], []).append(string)
            elif string:
                self.tiny.append(string)

    def found(self, text: str) -> Iterator[tuple[int, str]]:
        """Each (place, string) of the text's occurrences; a few may come twice."""
        n = len(text)
        # One search (str.find) of a text costs about as much as looking up a place of
        # it 4096 times over.
        searches = 1 + n // 4096
        yield from _each_found(text, self.tiny)
        if len(self.long) * searches < n // _GRAM:
            yield from _each_found(text, self.long)
        elif self.long:
            windows = self.windows
            for place in range(0, n - _GRAM + 1, _GRAM):
                for offset, string in windows.get(text[place:place + _GRAM], ()):
                    at = place - offset
                    if at >= 0 and text.startswith(string, at):
                        yield at, string
        if len(self.short) * searches < n:
            yield from _each_found(text, self.short)
            return
        by_start = self.by_start
        for at in range(n - _MIN_ENCODED + 1):
            for string in by_start.get(text[at:at + _MIN_ENCODED], ()):
                if text.startswith(string, at):
                    yield at, string

    def present(self, text: str) -> set[str]:
        """The strings ``text`` holds."""
        return {string for _, string in self.found(text)}


@lru_cache(maxsize=16)
def _finder(strings: frozenset[str]) -> _Finder:
    """The ``_Finder`` of ``strings``, made once for the many strings of an event or a
    report (a set of forms, of values, of folded values)."""
    return _Finder(strings)


def _each_found(text: str, strings: list[str]) -> Iterator[tuple[int, str]]:
    """Each (place, string) of ``strings`` in ``text``, each searched for in turn."""
    for string in strings:
        at = text.find(string)
        while at >= 0:
            yield at, string
            at = text.find(string, at + 1)


@lru_cache(maxsize=8)
def _masker(given: frozenset[str]) -> Callable[[str], str]:
    """``Redactor.text`` for one set of values, made once for the many strings of an
    event or a report."""
    forms = _forms(given)
    finder = _finder(frozenset(forms))
    encoded = _encoded_masker(given)

    def mask(text: str) -> str:
        held = finder.present(text)  # one pass, however many
        for form in forms:
            if form in held and form in text:  # not inside a longer one masked already
                text = text.replace(form, REDACTED)
        return encoded(escapes_masked(text, given))

    return mask


def encoded_masked(text: str, values: Iterable[str]) -> str:
    """``text`` with each run of base64 that decodes to bytes holding one of ``values``
    masked whole: an ``Authorization: Basic`` header's ``user:password`` padded or not,
    the password alone, or a document holding it, from wherever in the run the encoding
    starts (a run may begin with other letters glued to it); and each run holding one in
    hex, in either case, its bytes together or set apart (a client's dump of what it
    sent: ``68 75 6e``, ``68:75:6E``). Its cost is the text's length, however many the
    values."""
    return _encoded_masker(frozenset(values))(text)


@lru_cache(maxsize=8)
def _encoded_masker(values: frozenset[str]) -> Callable[[str], str]:
    """``encoded_masked`` for one set of values, made once for the many strings of an
    event or a report (the runtime masks with up to ``MAX_HANDED_OUT`` values)."""
    wanted = [encoded for encoded in (value.encode("utf-8", "surrogatepass")
                                      for value in values) if len(encoded) >= _MIN_ENCODED]
    if not wanted:
        return lambda text: text
    cores: dict[str, list[_Needle]] = {}
    hexes = []
    for value in wanted:
        for needle in _needles(value):
            if needle.lead < 0:
                hexes.append(needle.text)
            else:
                cores.setdefault(needle.text, []).append(needle)
    in_base64, in_hex = _Finder(cores), _Finder(hexes)
    shortest = min(map(len, wanted))

    def holds(run: str) -> bool:
        if any(_decodes_to_it(run, at, needle)
               for at, core in in_base64.found(run) for needle in cores[core]):
            return True
        return any(True for _ in in_hex.found(run.lower()))

    def masked(match: re.Match[str]) -> str:
        run = re.sub(r"\s", "", match.group()).rstrip("=").translate(_URL_SAFE)
        if len(run) * 3 // 4 < shortest:
            return match.group()
        return REDACTED if holds(run) else match.group()

    def masked_apart(match: re.Match[str]) -> str:
        digits = _HEX_APART.sub("", match.group()).lower()
        if len(digits) // 2 < shortest or not any(True for _ in in_hex.found(digits)):
            return match.group()
        return REDACTED

    return lambda text: _BASE64_RUN.sub(masked, _SPACED_HEX.sub(masked_apart, text))


@lru_cache(maxsize=4)
def _percent_encoded(values: frozenset[str]) -> re.Pattern[str]:
    """Each of ``values`` as a URL may hold it (a registry's token realm, a driver's
    DSN): any of its bytes may be percent-encoded, the hex digits in either case (RFC
    3986 makes ``%2b``, ``%2B`` and an escaped unreserved byte equivalent), a space as
    ``+``, and encoded again where the URL carries a URL (``%2540``: the inner URL's
    ``%40``); each character may be a JSON escape too (``\\u0026``, ``\\/``: a Go
    service's JSON carried in the query), itself so encoded, or an HTML character
    reference (``&amp;``, ``&#38;``, ``&#x26;``: a proxy's error page); and a line break
    may come between any two (a long message wrapped). What a server or a client
    encodes is its choice: one form per encoder would miss the others."""
    alternatives = []
    for value in sorted(values, key=len, reverse=True):
        parts = []
        for char in value:
            forms = ([_in_url(char)]
                     + ["".join(map(_in_url, escape)) for escape in _json_escapes(char)]
                     + [re.escape(escape) for escape in _html_escapes(char)])
            parts.append(f"(?:{'|'.join(forms)})")
        alternatives.append(f"(?:{LINE_WRAP})?".join(parts))
    # Case folded throughout: a secret's letters in another case masked too costs
    # nothing, and the hex digits must match in any case.
    return re.compile("|".join(alternatives) or r"(?!)", re.IGNORECASE)


def _in_url(char: str) -> str:
    """A pattern of ``char`` as a URL may hold it: itself, or its UTF-8 bytes each
    percent-encoded any number of times (``%2B``, ``%252B``); a space as ``+`` too."""
    escaped = "".join(f"%(?:25)*{byte:02x}" for byte in char.encode("utf-8", "surrogatepass"))
    return f"(?:{'|'.join([re.escape(char), escaped] + ([r'[+]'] if char == ' ' else []))})"


_JSON_ESCAPED = frozenset("\"\\/<>&'")
"""The printable ASCII characters a JSON encoder escapes: JSON's own, and Go's and
others' for HTML (``\\u0026``); none escapes a letter or a digit."""


def _json_escapes(char: str) -> list[str]:
    """How a JSON string may escape ``char``: ``\\uXXXX`` (a surrogate pair beyond
    the BMP), and ``\\/``, ``\\"`` or ``\\\\`` for those three; nothing for
    the printable ASCII no encoder escapes (a pattern of every form of each letter would
    cost twenty times as much to compile)."""
    if char.isascii() and char.isprintable() and char not in _JSON_ESCAPED:
        return []
    units = char.encode("utf-16-be", "surrogatepass")
    forms = ["".join(f"\\u{units[i]:02x}{units[i + 1]:02x}" for i in range(0, len(units), 2))]
    if char in '/"\\':
        forms.append("\\" + char)
    return forms


_WRAPPED = re.compile(LINE_WRAP)


def _html_escapes(char: str) -> list[str]:
    """How HTML may write ``char``: a decimal or hexadecimal character reference (any
    leading zeros: ``_in_url``'s case folding takes ``&#X26;`` too), and the named one of
    the five characters HTML escapes."""
    named = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;"}
    return [f"&#{ord(char)};", f"&#x{ord(char):x};", *([named[char]] if char in named else [])]


_JSON_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})|\\([/\"\\])")


_DECODED_LAYERS = 4
"""The most layers of escapes undone (``_decoded``): a URL in a URL, JSON in a URL."""


def _decoded(text: str) -> list[str]:
    """``text`` and what it reads as with its line breaks, percent-encoding, JSON escapes
    and HTML character references undone, layer after layer (a URL in a URL, JSON in a
    URL), ``_DECODED_LAYERS`` layers at most."""
    import html

    found = [text]
    for _ in range(_DECODED_LAYERS):
        step = urllib.parse.unquote(_WRAPPED.sub("", found[-1]))
        step = _JSON_ESCAPE.sub(lambda m: m.group(2) or chr(int(m.group(1), 16)), step)
        step = html.unescape(step)
        step = step.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        if step == found[-1]:
            break
        found.append(step)
    return found


def _folded(text: str) -> str:
    """``text`` as ``_percent_encoded`` tells its forms apart: case folded, a space and a
    ``+`` alike."""
    return text.replace("+", " ").casefold()


_ESCAPE_MARKS = ("%", "\\", "&", "\n", "+")
"""What a text holds where a value in it may be escaped or wrapped (``_decoded``)."""


def escapes_masked(text: str, values: Iterable[str]) -> str:
    """``text`` with each of ``values`` masked where it is percent-encoded, JSON- or
    HTML-escaped or wrapped over lines, any mix of them, its letters in any case
    (``_percent_encoded``): a URL a driver's error quotes (``%40`` for ``@``), Go's
    JSON (``\\u0026``), a registry's token realm. A text of no escape is looked
    through for the values in any case too, as one of escapes is."""
    # The pattern of every encoding costs ~0.08 s per KB of values to compile (0.3 s
    # for an ECR login's 4 KB): made for the values the text, its escapes decoded,
    # holds, and only then.
    pairs = _folded_values(frozenset(values))
    finder = _finder(frozenset(folded for _, folded in pairs))

    def held(layers: list[str]) -> frozenset[str]:
        present = set().union(*(finder.present(_folded(layer)) for layer in layers))
        return frozenset(value for value, folded in pairs if folded in present)

    escaped = any(mark in text for mark in _ESCAPE_MARKS)
    found = held(_decoded(text) if escaped else [text])
    if not found:
        return text
    text = _percent_encoded(found).sub(REDACTED, text)
    # What the pattern has no form of, and decoding undoes (each letter a JSON escape,
    # an HTML reference without its `;`, a percent sign written as `&#37;`), is masked
    # in the text decoded as far as it shows a value, which is then what is shown.
    for _ in range(_DECODED_LAYERS):
        layers = _decoded(text)
        left = held(layers)
        if not left:
            return text
        layer = next(layer for layer in layers if held([layer]))
        text = _as_written(left).sub(REDACTED, layer)
    return REDACTED if held(_decoded(text)) else text


def _as_written(values: frozenset[str]) -> re.Pattern[str]:
    """Each of ``values`` as written, its letters in any case and a space or a ``+``
    for either (as ``_folded`` tells them)."""
    return re.compile("|".join(
        "".join("[ +]" if char in " +" else re.escape(char) for char in value)
        for value in sorted(values, key=len, reverse=True)), re.IGNORECASE)


@lru_cache(maxsize=8)
def _folded_values(values: frozenset[str]) -> tuple[tuple[str, str], ...]:
    """Each of ``values`` with its ``_folded`` form, made once for the many strings of
    an event."""
    return tuple((value, _folded(value)) for value in values if value)


_CUE_ESCAPES = {'"': '\\"', "\\": "\\\\", "\a": "\\a", "\b": "\\b", "\f": "\\f",
                "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def _cue_body(value: str) -> str:
    """``value`` as cue quotes a string in its messages: Go's escapes (a bell ``\\a``, a
    vertical tab ``\\v``, which JSON writes ``\\u0007`` and ``\\u000b``), and any other
    character that is not printable as ``\\uNNNN`` whatever the rest (DEL, a C1 control,
    a no-break space, which JSON keeps raw beside non-ASCII text)."""
    if value.isprintable() and '"' not in value and "\\" not in value:
        return value
    return "".join(_CUE_ESCAPES.get(char) or (
        char if char.isprintable() else f"\\u{ord(char):04x}" if ord(char) <= 0xFFFF
        else f"\\U{ord(char):08x}") for char in value)


class Change(NamedTuple):
    """One changed key, fit to show: ``old``/``new`` are redacted (``REDACTED`` on both
    sides for a secret, whose change is still reported); ``None`` with ``added`` /
    ``removed`` for a key only one side has."""

    key: str
    old: Any
    new: Any
    secret: bool
    added: bool = False
    removed: bool = False


def _references_only(value: Any) -> Any:
    """A secret subtree with every well-formed reference kept and every other leaf
    ``REDACTED`` (a subtree's shape, keys and list lengths are not secret)."""
    if isinstance(value, str) and parse_reference(value) is not None:
        return value
    if isinstance(value, dict):
        return {k: _references_only(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_references_only(v) for v in value]
    return REDACTED


class SecretIndex(Protocol):
    """What marks keys secret besides the globs: the schema's ``x-magcfg-secret`` index
    (``magcfg.schema.index.SchemaIndex``)."""

    def is_secret(self, keypath: tuple[str, ...]) -> bool: ...


class Redactor:
    """Decides which key paths are secret and replaces their values by ``REDACTED``."""

    def __init__(self, index: SecretIndex | None = None, patterns: Iterable[str] = ()) -> None:
        self.index = index
        self.patterns = tuple(patterns)
        self._globs = KeyGlobs(self.patterns)

    def is_secret(self, keypath: tuple[str, ...]) -> bool:
        if self.index is not None and self.index.is_secret(keypath):
            return True
        return self._globs.matches(keypath)

    def value(self, keypath: tuple[str, ...], value: Any) -> Any:
        """``value`` with every secret inside it (or itself) replaced by ``REDACTED``."""
        if self.is_secret(keypath):
            return REDACTED
        if isinstance(value, dict):
            return {k: self.value((*keypath, k), v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value((*keypath, str(i)), v) for i, v in enumerate(value)]
        return value

    def shown(self, keypath: tuple[str, ...], value: Any) -> Any:
        """``value`` as review output shows it (diff, explain, promotion bodies): like
        :meth:`value`, except that a secret key holding a well-formed reference
        (``vault://...``, ``vault+direct://...``, ``env://...``) shows the reference, as
        ``config.json`` holds it in the open. A reference names where the secret lives,
        never what it is; anything else under a secret key is still ``REDACTED``."""
        return self.shown_secret(keypath, value)[0]

    def shown_secret(self, keypath: tuple[str, ...], value: Any) -> tuple[Any, bool]:
        """``(shown(keypath, value), contains_secret(keypath, value))`` in one walk."""
        if self.is_secret(keypath):
            return _references_only(value), True
        if isinstance(value, dict):
            pairs = {k: self.shown_secret((*keypath, k), v) for k, v in value.items()}
            return ({k: p[0] for k, p in pairs.items()},
                    any(p[1] for p in pairs.values()))
        if isinstance(value, list):
            items = [self.shown_secret((*keypath, str(i)), v) for i, v in enumerate(value)]
            return [p[0] for p in items], any(p[1] for p in items)
        return value, False

    def contains_secret(self, keypath: tuple[str, ...], value: Any) -> bool:
        """Whether ``value`` at ``keypath`` is, or holds anywhere inside it, a secret."""
        if self.is_secret(keypath):
            return True
        if isinstance(value, dict):
            return any(self.contains_secret((*keypath, k), v) for k, v in value.items())
        if isinstance(value, list):
            return any(self.contains_secret((*keypath, str(i)), v) for i, v in enumerate(value))
        return False

    def change(self, keypath: tuple[str, ...], old: Any, new: Any,
               missing: Any = None) -> Change | None:
        """Compare the real values; None when equal, else a ``Change`` without secrets.

        ``missing`` is the caller's marker for "this side has no such key". A secret that
        changed shows as ``REDACTED`` -> ``REDACTED`` with the change still listed (diff,
        promotion bodies, reload events say *that* it changed, never from or to what).
        """
        if old == new and type(old) is type(new):
            return None
        key = format_keypath(keypath)
        added, removed = old is missing, new is missing
        return Change(key,
                      None if added else self.value(keypath, old),
                      None if removed else self.value(keypath, new),
                      self.contains_secret(keypath, new if removed else old)
                      or self.contains_secret(keypath, old if added else new),
                      added, removed)

    def secret_texts(self, tree: Any, keypath: tuple[str, ...] = ()) -> set[str]:
        """The text of every scalar at or under a secret key of ``tree`` (which sits at
        ``keypath``), to mask wherever a message may quote it (:meth:`text`). A
        well-formed reference is not secret (:meth:`shown` shows it) and is left out."""
        out: set[str] = set()

        def walk(node: Any, at: tuple[str, ...], secret: bool) -> None:
            # The root is no key (as ``secret_subtrees`` has it), and asking a policy
            # index about it would index the whole schema, which a cached build avoids.
            secret = secret or (bool(at) and self.is_secret(at))
            if isinstance(node, dict):
                for k, v in node.items():
                    walk(v, (*at, str(k)), secret)
            elif isinstance(node, list):
                for i, v in enumerate(node):
                    walk(v, (*at, str(i)), secret)
            elif isinstance(node, tuple):  # a layer marker: its tag, then any value
                for v in node[1:]:
                    walk(v, at, secret)
            elif secret and node is not None and not isinstance(node, bool):
                text = str(node)
                if text and not (isinstance(node, str) and parse_reference(node) is not None):
                    out.add(text)

        walk(tree, keypath, False)
        return out

    def text(self, text: str, values: Iterable[str]) -> str:
        """``text`` with every occurrence of the given secret strings masked (for error
        messages that may quote input), as written or as a message quotes one
        (``quoted_forms``), percent-encoded, escaped or wrapped (``escapes_masked``), and
        every run of base64 or hex holding one (``encoded_masked``). A
        message cut to its bound keeps no start of a quoted value (``errors.cut``), which
        no whole secret would match."""
        return _masker(frozenset(v for v in values if v))(text)

    def masked(self, data: Any, values: Iterable[str]) -> Any:
        """``data`` (JSON-like: mappings, lists, scalars) with every occurrence of the
        given secret strings masked in every string, keys included, as :meth:`text`
        masks a message: as written or quoted (``quoted_forms``: a JSON string's ``\\t``
        too), percent-encoded, escaped or wrapped (``escapes_masked``), and inside base64
        or hex (``encoded_masked``)."""
        given = frozenset(v for v in values if v)
        if not given:
            return data
        mask = _masker(given)

        def walk(value: Any) -> Any:
            if isinstance(value, str):
                return mask(value)
            if isinstance(value, dict):
                return {mask(k) if isinstance(k, str) else k: walk(v) for k, v in value.items()}
            if isinstance(value, list):
                return [walk(v) for v in value]
            if isinstance(value, tuple):  # a layer's marker (!unset) stays one
                return tuple(walk(v) for v in value)
            return value

        return walk(data)
