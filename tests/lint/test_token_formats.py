"""The detectors borrowed from detect-secrets and gitleaks (lint/token_formats.py)."""

from __future__ import annotations

import importlib
import inspect
import os
import random
import re
import string
import subprocess
import sys
from typing import Any

import pytest
from detect_secrets.filters import heuristic
from detect_secrets.plugins.base import BasePlugin

from magcfg.lint import token_formats
from magcfg.lint.token_formats import entropy_hits
from magcfg.lint.walk import source

from .conftest import REPO, MakeRepo


class _Counted:
    """A pattern that counts the characters it is given to search."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern
        self.chars = 0

    def search(self, text: str, pos: int = 0, endpos: int | None = None) -> Any:
        end = len(text) if endpos is None else min(endpos, len(text))
        self.chars += max(0, end - pos)
        return self.pattern.search(text, pos, end)

    def match(self, text: str, pos: int = 0, endpos: int | None = None) -> Any:
        end = len(text) if endpos is None else min(endpos, len(text))
        self.chars += max(0, end - pos)
        return self.pattern.match(text, pos, end)


def test_a_long_line_of_strings_is_searched_once_for_their_context(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Each string's context (a digest's or a signature's key, `..._id`, a credential's
    key) is looked for near it or in one search of the line, not in the line up to it
    again for each string: a minified JSON line of n strings took n times its length."""
    counted = {name: _Counted(getattr(token_formats, name))
               for name in ("_DIGEST_CONTEXT", "_PUBLIC_SIGNATURE", "_CREDENTIAL_KEY")}
    for name, pattern in counted.items():
        monkeypatch.setattr(token_formats, name, pattern)
    ids = _Counted(heuristic._get_id_detector_regex())
    monkeypatch.setattr(heuristic, "_get_id_detector_regex", lambda: ids)
    draw = random.Random(3)
    alphabet = string.ascii_letters + string.digits

    def work(strings: int) -> int:
        values = ",".join(f'"v{i}":"{"".join(draw.choices(alphabet, k=40))}"'
                          for i in range(strings))
        before = sum(p.chars for p in (*counted.values(), ids))
        found = list(entropy_hits(source("conf/keys.json", f"{{{values}}}\n".encode())))
        assert len(found) > strings * 0.9  # nearly all measured and found
        return sum(p.chars for p in (*counted.values(), ids)) - before

    assert work(800) < 2.3 * work(400)


def test_an_alphabet_is_no_secret() -> None:
    """A string of characters each once, an encoder's or an id generator's alphabet
    (nanoid's in postcss, GitPython's short options in class order), is no entropy
    finding; a random string of the same characters is one."""
    text = ('url_alphabet = "useandom-26T198340PX75pxJACKVERYMINDBUSHWOLF_GQZbfghjklqvwyzrict"\n'
            'short_options = "46abceflmnpqrstuvwzBCDMNRW"\n'
            'session_blob = "q8RzW2mLx7Kv4Tn9PbY3cHs6Jd5Fq8"\n')
    found = [number for number, _ in entropy_hits(source("web/ids.py", text.encode()))]
    assert found == [3]


def test_a_public_key_s_base64_is_no_secret() -> None:
    """The base64 of a DER public key (SubjectPublicKeyInfo: npm's registry keys in
    corepack) is no entropy finding; the same key pair's private key, PKCS#8 in base64,
    is one."""
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    public = base64.b64encode(key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    private = base64.b64encode(key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())).decode()
    text = f'keys: [{{keyid: "SHA256:jl3bwswu80PjjokCgh0o2w5c2U4LhQAE57gj9cz1kzA", key: "{public}"}}]\n' \
           f'signer: {{key: "{private}"}}\n'
    found = [number for number, _ in entropy_hits(source("corepack.cjs", text.encode()))]
    assert found == [2]


def test_a_bundle_s_names_and_inlined_binaries_are_no_secrets() -> None:
    """Minified JS holds names of joined words (TypeScript's diagnostics) and binaries
    inlined as base64 (a wasm module): neither is an entropy finding; a long base64 whose
    bytes are text (a credentials file's JSON) or DER (a private key) still is one."""
    import base64
    import json

    draw = random.Random(7)
    wasm = base64.b64encode(b"\0asm\1\0\0\0" + bytes(draw.randrange(256) for _ in range(900)))
    credentials = base64.b64encode(json.dumps({
        "type": "service_account", "private_key_id": "".join(draw.choices("0123456789abcdef", k=40)),
        "private_key": "".join(draw.choices(string.ascii_letters + string.digits, k=600)),
    }).encode())
    name = ("ECMAScript_imports_and_exports_cannot_be_written_in_a_CommonJS_file_under_"
            "verbatimModuleSyntax_Adjus_1295")
    text = (f'var d={{{name}:"{name}"}};\n'
            f'module.exports=Buffer.from("{wasm.decode()}","base64");\n'
            f'const creds="{credentials.decode()}";\n')
    found = [number for number, _ in entropy_hits(source("dist/bundle.js", text.encode()))]
    assert found == [3]


def test_a_telegram_token_of_zeros_is_none() -> None:
    """A Telegram bot token's shape in data (`000000000:1000...0` in rustdoc's search
    index) is below a token's least entropy; a real-shaped token is one."""
    zeros = "000000000:1" + "0" * 34
    token = "110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawQ"
    text = f'r_("{zeros}Ba[9331,13]");\nconst bot = "{token}";\n'
    found = [number for number, _ in token_formats.format_hits(source("search.js", text.encode()))]
    assert found == [2]


_ENCRYPTED_KEY = ("-----BEGIN ENCRYPTED PRIVATE KEY-----\n"
                  "MIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkqhkiG9w0BBQwwHAQIk0rX2WqvD8ACAggA\n"
                  "-----END ENCRYPTED PRIVATE KEY-----\n")


@pytest.mark.parametrize(("name", "text", "at"), [
    ("client.pem", _ENCRYPTED_KEY, (1, 6)),
    ("values.yaml", "ingress:\n  bundle: |\n"
     + "".join(f"    {line}\n" for line in _ENCRYPTED_KEY.splitlines()), (3, 10)),
])
def test_an_encrypted_private_key_is_found_as_any_other(
        name: str, text: str, at: tuple[int, int]) -> None:
    """PKCS#8's `BEGIN ENCRYPTED PRIVATE KEY`, which detect-secrets' list lacks, is a
    private key in any file, not in an env file's quoted value alone; its fingerprint is
    the key's block, as an RSA key's is."""
    src = source(name, text.encode())
    hits = list(token_formats.format_hits(src))
    assert [(number, hit.column, hit.message) for number, hit in hits] == [
        (*at, "Private Key in a committed file (<redacted>)")]
    other = source(name, text.replace("k0rX2Wqv", "Zz9yXw8v").encode())
    assert hits[0][1].fingerprint != next(iter(token_formats.format_hits(other)))[1].fingerprint


@pytest.mark.parametrize("text", [
    "A PEM key (`-----BEGIN ENCRYPTED PRIVATE KEY-----` too) is a finding.\n",
    "| `-----BEGIN ENCRYPTED PRIVATE KEY-----` | the BEGIN line |\n",
    "-----BEGIN ENCRYPTED PRIVATE KEY-----\n-----END ENCRYPTED PRIVATE KEY-----\n",
])
def test_text_naming_the_encrypted_key_s_begin_line_holds_no_key(text: str) -> None:
    assert list(token_formats.format_hits(source("docs/lint.md", text.encode()))) == []


def test_an_encrypted_private_key_in_json_is_found() -> None:
    text = '{"key": "' + _ENCRYPTED_KEY.replace("\n", "\\n") + '"}\n'
    hits = list(token_formats.format_hits(source("creds.json", text.encode())))
    assert [(number, hit.column) for number, hit in hits] == [(1, 15)]


_PUTTY_V3 = ("PuTTY-User-Key-File-3: ssh-ed25519\n"
             "Encryption: none\n"
             "Comment: deploy@ci\n"
             "Public-Lines: 2\n"
             "AAAAC3NzaC1lZDI1NTE5AAAAIFj7Xq0Jx1k2b3c4d5e6f7g8h9i0j1k2l3m4n5o6p7q8\n"
             "r9s0\n"
             "Private-Lines: 1\n"
             "AAAAIE1k2l3m4n5o6p7q8r9s0t1u2v3w4x5y6z7A8B9C0D1E2F3G\n"
             "Private-MAC: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n")


@pytest.mark.parametrize(("name", "text", "at"), [
    ("deploy.ppk", _PUTTY_V3, (1, 1)),
    ("values.yaml", "ssh:\n  key: |\n"
     + "".join(f"    {line}\n" for line in _PUTTY_V3.splitlines()), (3, 5)),
    ("creds.json", '{"key": "' + _PUTTY_V3.replace("\n", "\\n") + '"}\n', (1, 10)),
])
def test_a_putty_key_of_format_3_is_found_as_one_of_format_2(
        name: str, text: str, at: tuple[int, int]) -> None:
    """PuTTY 0.75 and later write `PuTTY-User-Key-File-3`, which detect-secrets' list
    lacks (it has format 2's line): a .ppk key, unencrypted here, passed the gate."""
    hits = list(token_formats.format_hits(source(name, text.encode())))
    assert [(number, hit.column, hit.message) for number, hit in hits] == [
        (*at, "Private Key in a committed file (<redacted>)")]
    format_2 = text.replace("PuTTY-User-Key-File-3", "PuTTY-User-Key-File-2")
    assert len(list(token_formats.format_hits(source(name, format_2.encode())))) == 1


def test_text_naming_the_putty_header_holds_no_key() -> None:
    text = "PuTTY 0.75 writes `PuTTY-User-Key-File-3: ssh-ed25519` on a key's first line.\n"
    assert list(token_formats.format_hits(source("docs/keys.md", text.encode()))) == []


class _Searched:
    """A plugin's regex that counts the texts it is given to search."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern
        self.texts = 0

    def finditer(self, text: str) -> Any:
        self.texts += 1
        return self.pattern.finditer(text)


_GATED = ("ArtifactoryDetector", "DiscordBotTokenDetector", "TelegramBotTokenDetector")


def test_a_text_of_common_triggers_skips_the_plugins_gated_by_a_literal(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A manifest holds `:`, `.` and `AP` (the triggers of the Telegram, Discord and
    Artifactory plugins), but nothing their tokens' literal parts lead: their regexes,
    which begin with no literal and are tried at every place, never read it."""
    plugins = {type(p).__name__: p for p, _ in token_formats._format_plugins()}
    searched = {}
    for name in _GATED:
        cls = type(plugins[name])
        searched[name] = [_Searched(r) for r in cls.denylist]
        monkeypatch.setattr(cls, "denylist", searched[name])
    text = ("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: APP.frontend}\n"
            "spec:\n  image: registry.local/APIGW:1.2.3\n  port: 8080\n")
    assert list(token_formats.format_hits(source("deploy.yaml", text.encode()))) == []
    assert {name: sum(r.texts for r in regexes) for name, regexes in searched.items()} \
        == dict.fromkeys(_GATED, 0)


@pytest.mark.parametrize("token", [
    "110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawQ",  # Telegram, 9 digits
    "11020154:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawQ",  # 8 digits
    "1102015433:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawQ",  # 10 digits
    "MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.ZnCjm1XVW7vRze4b7Cq4se7kKWs",  # Discord, 24 and 27
    "NzkyNzE1NDU0MTk2MDg4ODQ0.X-hvzA.Ovy4MCQywSkoMRRclStW4xAYK7I",
    "OTQ2NDE4NzYzMTc2OTY1NDUw0.YhLxBw.d8fXo0pOQw3LcuTQhUzzCx1Gd1s",  # 25 before the dot
    "AKCp8jQ8vC6K3t2HfNwq7RxyZb4LmT9sD2e",  # Artifactory API key
    "AP6xDxZqrN3hVw7pLkT2mQ9eF4",  # Artifactory reference token
])
def test_a_gated_plugin_s_token_is_found(token: str) -> None:
    """The gate of a plugin (a pattern led by a literal that every match of its regexes
    matches) passes each of its tokens' shapes on to the plugin: none is lost."""
    text = f"name: bot\nsettings:\n  value: {token}\n"
    found = list(token_formats.format_hits(source("bot.yaml", text.encode())))
    assert [number for number, _ in found] == [3]


def test_each_gate_is_of_the_plugin_s_patterns_it_was_written_for() -> None:
    """A gate must match whatever its plugin's patterns match: a detect-secrets version
    whose patterns differ fails here, for its gate to be written again."""
    plugins = {type(p).__name__: p for p, _ in token_formats._format_plugins()}
    assert {name: [(r.pattern, r.flags) for r in plugins[name].denylist] for name in _GATED} == {
        "ArtifactoryDetector": [
            (r'(?:\s|=|:|"|^)AKC[a-zA-Z0-9]{10,}(?:\s|"|$)', re.UNICODE),
            (r'(?:\s|=|:|"|^)AP[\dABCDEF][a-zA-Z0-9]{8,}(?:\s|"|$)', re.UNICODE)],
        "DiscordBotTokenDetector": [
            (r"[MNO][a-zA-Z\d_-]{23,25}\.[a-zA-Z\d_-]{6}\.[a-zA-Z\d_-]{27}", re.UNICODE)],
        "TelegramBotTokenDetector": [(r"\d{8,10}:[0-9A-Za-z_-]{35}", re.UNICODE)],
    }
    assert sorted(token_formats._GATES) == sorted(_GATED)


_UNUSED_MODULES = frozenset({"requests", "urllib3", "charset_normalizer", "idna", "certifi",
                             "multiprocessing", "pickle", "socket"})
_LINT_THEN_LOADED = f"""\
import sys
from magcfg.cli import main

code = main(["lint"])
sys.stdout.flush()
print(sorted(m for m in sys.modules if m.partition(".")[0] in {sorted(_UNUSED_MODULES)!r}),
      file=sys.stderr)
sys.exit(code)
"""


def test_a_lint_run_imports_no_http_stack_nor_process_pool(make_repo: MakeRepo) -> None:
    """detect-secrets' plugins import `requests` to verify a secret with its issuer, and
    its scanner `multiprocessing` for a pool, which lint never uses: a lint run that finds
    what the plugins, the entropy measure and its heuristics find imports no module of
    requests' stack (~40 ms of each run) nor multiprocessing's (~4 ms)."""
    repo = make_repo({
        "deploy/aws.yaml": "aws_access_key_id: AKIAQ3EGUK7ZXTW2MN4B\n",
        "notify.py": 'SLACK = "xoxb-2048596114-4096818245-CANARYlint9Qx7"\n',
        "conf/app.json": '{"signingMaterial": "CANARYq7Wz2Lk9Xv4Rb8Tn3Yp6Hs1Jd5Fg0Mc"}\n',
        "conf/id.json": '{"client_id": "CANARYa1B2c3D4e5F6g7H8i9J0kLmNoPqRs"}\n',
    })
    env = {**os.environ, "PYTHONPATH": str(REPO / "compiler")}
    done = subprocess.run([sys.executable, "-c", _LINT_THEN_LOADED], cwd=repo.root, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    found = {line.split(": MAG")[0] for line in done.stdout.splitlines() if ": MAG" in line}
    assert (done.returncode, found) == (
        1, {"deploy/aws.yaml:1:20", "notify.py:1:10", "conf/app.json:1:22"}), done.stdout
    assert "CANARY" not in done.stdout + done.stderr
    assert done.stderr.splitlines()[-1] == "[]"


def test_a_plugin_reaches_requests_when_it_uses_it() -> None:
    """The stand-in the plugins import for `requests` imports it when a plugin first uses
    it (detect-secrets' verification, which lint never asks for), and leaves the process's
    modules as they were: whoever imports requests after has the one real module."""
    code = ("import sys\n"
            "from magcfg.lint import token_formats\n"
            "token_formats.load_plugins()\n"
            "print('requests' in sys.modules)\n"
            "import detect_secrets.plugins.base as base\n"
            "error = base.requests.exceptions.RequestException\n"
            "import requests\n"
            "print(error is requests.exceptions.RequestException,"
            " sys.modules['requests'] is requests, type(requests) is type(sys))\n")
    env = {**os.environ, "PYTHONPATH": str(REPO / "compiler")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=60, check=True)
    assert done.stdout == "False\nTrue True True\n"


def test_each_plugin_module_lint_skips_defines_the_detector_it_is_skipped_for() -> None:
    """Lint does not import the modules of the detectors it skips (``_SKIPPED_PLUGINS``):
    a detect-secrets version that moves a detector or adds one to such a module fails
    here, for the list to be written again."""
    defined = {}
    for name in token_formats._SKIPPED_PLUGINS:
        module = importlib.import_module(f"detect_secrets.plugins.{name}")
        defined[name] = [cls.__name__ for _, cls in inspect.getmembers(module, inspect.isclass)
                         if cls.__module__ == module.__name__
                         and issubclass(cls, BasePlugin)]
    assert defined == {name: [cls] for name, cls in token_formats._SKIPPED_PLUGINS.items()}
