"""The MAG002 detectors borrowed from detect-secrets: its token-format plugins (AWS,
GitHub, GitLab, Slack, Stripe, private keys, JWTs, basic-auth URLs, ...) and its
high-entropy string measure with its false-positive heuristics; and gitleaks' patterns for
the token formats detect-secrets lacks (fine-grained GitHub, Google, Hugging Face, ...).

Each plugin's (and pattern's) regexes run on the whole text only when the text contains
one of its trigger substrings, and the plugin itself then decides on the matching lines.
That keeps a 10,000-file repository under a second (benchmarks/lint_bench.py).
"""

from __future__ import annotations

import base64
import contextlib
import importlib
import itertools
import re
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .findings import REDACTED
from .literals import is_literal
from .walk import SourceFile

_LOCK_FILES = frozenset({"package-lock.json", "yarn.lock", "pnpm-lock.yaml", "go.sum",
                         "poetry.lock", "Cargo.lock", "Pipfile.lock", "composer.lock",
                         "uv.lock", "Gemfile.lock"})


@dataclass(frozen=True)
class Hit:
    """A candidate MAG002 finding on one line."""

    column: int
    message: str
    priority: int  # lower wins when several detectors hit one line
    fingerprint: str | None = None
    """What the baseline knows the finding by when the secret is not all on its line (a
    block scalar's value, a PEM key's block): an edited secret is then a new finding."""
    fix: str | None = None
    """What to do about it, where MAG002's general fix does not fit (a key store's bytes)."""


# The plugin modules lint does not import, each with the one detector it defines (a test
# pins them). KeywordDetector: our key rule replaces it (and sees unquoted KEY=value).
# IPPublicDetector: an address is not a secret. The IBM Cloud / COS, SoftLayer and
# Cloudant detectors are keyword-context regexes that cost 5x the rest of the scan together
# on a 10,000-file repo (benchmarks/lint_bench.py); the key rule covers keyword
# assignments. The IBM modules' functions are annotated with `requests.Response`, which
# importing them would ask `requests` for (see _ImportedOnUse).
_SKIPPED_PLUGINS = {"keyword": "KeywordDetector", "ip_public": "IPPublicDetector",
                    "ibm_cloud_iam": "IbmCloudIamDetector", "ibm_cos_hmac": "IbmCosHmacDetector",
                    "softlayer": "SoftlayerDetector", "cloudant": "CloudantDetector"}


# Substrings at least one of which a plugin's patterns need (case as the patterns have it):
# a file without any of them skips the plugin's regexes, which is most files for most
# plugins. A plugin missing here (a new detect-secrets version) always runs.
_TRIGGERS: dict[str, tuple[str, ...]] = {
    "ArtifactoryDetector": ("AKC", "AP"),
    "AWSKeyDetector": ("AKIA", "ASIA", "ABIA", "ACCA", "A3T", "aws", "AWS", "Aws"),
    "AzureStorageKeyDetector": ("AccountKey=",),
    "BasicAuthDetector": ("://",),
    "DiscordBotTokenDetector": (".",),  # a token's three parts are dot-separated
    "GitHubTokenDetector": ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
    "GitLabTokenDetector": ("glpat-", "gldt-", "glft-", "glsoat-", "glrt-", "GR1348941",
                            "glcbt-", "glimt-", "glptt-", "glagent-", "gloas-"),
    "JwtTokenDetector": ("eyJ",),
    "MailchimpDetector": ("-us",),
    "NpmDetector": (":_authToken=",),
    "OpenAIDetector": ("T3BlbkFJ",),
    "PrivateKeyDetector": ("PRIVATE KEY", "PuTTY-User-Key-File"),
    "PypiTokenDetector": ("pypi-",),
    "SendGridDetector": ("SG.",),
    "SlackDetector": ("xox", "XOX", "hooks.slack.com", "HOOKS.SLACK.COM"),
    "SquareOAuthDetector": ("sq0csp-",),
    "StripeDetector": ("k_live_",),
    "TelegramBotTokenDetector": (":",),  # the bot's id, a colon, its key
    "TwilioKeyDetector": ("AC", "SK"),
}
# A pattern every text some regex of a plugin's matches also matches, for the plugins
# whose triggers most texts hold (`:`, `.`, `AP`) and whose regexes begin with no
# literal, which ``re`` then tries at every place: this one begins with a literal
# (looking back from it), found by a fast search, and a text without a match skips the
# plugin's regexes. The lines the plugin reads are its own regexes' still. A gate holds
# for the patterns it was written for, which a test pins (another detect-secrets version
# may change them).
_GATES: dict[str, re.Pattern[str]] = {
    "ArtifactoryDetector": re.compile(r"AKC[a-zA-Z0-9]{10}|AP[\dABCDEF][a-zA-Z0-9]{8}"),
    # [MNO] is one of the class's: a token has 24 of them at least before its first dot.
    "DiscordBotTokenDetector": re.compile(
        r"\.(?<=[a-zA-Z\d_-]{24}\.)[a-zA-Z\d_-]{6}\.[a-zA-Z\d_-]{27}"),
    "TelegramBotTokenDetector": re.compile(r":(?<=\d{8}:)[0-9A-Za-z_-]{35}"),
}


class _ImportedOnUse(types.ModuleType):
    """A stand-in for the module of its name, which imports that module when first asked
    for an attribute and answers from it: a module imported while the stand-in is in
    ``sys.modules`` holds it, and reaches the real module only when it uses it."""

    def __getattr__(self, name: str) -> Any:
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), name)


_UNUSED_BY_LINT = ("requests", "multiprocessing")
"""What detect-secrets' modules import for what lint never asks of them: `requests`, to
verify a secret with its issuer (with urllib3, charset_normalizer, idna, ...: ~40 ms of
each lint run, more than every plugin's import), and `multiprocessing`, to scan files in
a pool (with pickle and socket: ~4 ms)."""


@contextlib.contextmanager
def _unused_modules_stood_in() -> Iterator[None]:
    """While open, each module of ``_UNUSED_BY_LINT`` not imported yet is an
    ``_ImportedOnUse`` in ``sys.modules``; after, ``sys.modules`` holds what it held, and
    the modules imported meanwhile hold the stand-ins."""
    stand_ins = {name: _ImportedOnUse(name) for name in _UNUSED_BY_LINT
                 if name not in sys.modules}
    sys.modules.update(stand_ins)
    try:
        yield
    finally:
        for name, stand_in in stand_ins.items():
            if sys.modules.get(name) is stand_in:
                del sys.modules[name]


@lru_cache(maxsize=1)
def _detect_secrets_modules() -> list[types.ModuleType]:
    """detect-secrets' plugin modules lint reads, sorted by name, ``_SKIPPED_PLUGINS``'
    left out. Every module of detect-secrets lint uses is imported here (its high-entropy
    plugins' and its heuristics' too): every other import of one follows a call of this,
    and finds the module imported."""
    import pkgutil

    with _unused_modules_stood_in():
        importlib.import_module("detect_secrets.filters.heuristic")
        import detect_secrets.plugins as pkg

        return [importlib.import_module(f"{pkg.__name__}.{info.name}")
                for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name)
                if info.name not in _SKIPPED_PLUGINS]


@lru_cache(maxsize=1)
def _format_plugins() -> list[tuple[Any, tuple[str, ...] | None]]:
    """detect-secrets' token-format plugins (sorted by name), each with its triggers."""
    import inspect

    modules = _detect_secrets_modules()
    from detect_secrets.plugins.base import RegexBasedDetector

    plugins: list[tuple[Any, tuple[str, ...] | None]] = []
    for module in modules:
        for _, cls in sorted(inspect.getmembers(module, inspect.isclass)):
            if (issubclass(cls, RegexBasedDetector) and not inspect.isabstract(cls)
                    and cls.__module__ == module.__name__):
                plugins.append((cls(), _TRIGGERS.get(cls.__name__)))
    return plugins


@lru_cache(maxsize=1)
def _entropy_plugins() -> tuple[Any, Any]:
    _detect_secrets_modules()
    from detect_secrets.plugins.high_entropy_strings import (
        Base64HighEntropyString,
        HexHighEntropyString,
    )

    return Base64HighEntropyString(), HexHighEntropyString()


def shannon_entropy(text: str) -> float:
    """detect-secrets' (and gitleaks') Shannon entropy of ``text``, in bits a character."""
    return float(_entropy_plugins()[0].calculate_shannon_entropy(text))


def load_plugins() -> None:
    """Import and instantiate detect-secrets' plugins (what the first file's check would)."""
    _format_plugins()
    _entropy_plugins()


_QUOTED_LONG = re.compile(r"""(["'])([A-Za-z0-9+/=_\\-]{20,})\1""")
_DIGEST_CONTEXT = re.compile(r"(?:sha\d+|md5|integrity|digest|checksum|hash|sum|etag|commit|"
                             r"rev|revision|fingerprint|uuid|nonce_hash)\W*$", re.IGNORECASE)
# Signatures are public by design (whoever verifies one holds it), and a DSSE envelope's
# `payload` is the base64 of the statement it signs: magcfg's own attestation.dsse.json.
_PUBLIC_SIGNATURE = re.compile(r"""(?:^|[\s{,"'])(?:sig|signature|[\w-]*_signature)["']?\s*[:=]\s*$""",
                               re.IGNORECASE)
# The envelope's `payload` key, on a line of its own or within the line (a Sigstore
# bundle's or an `.intoto.jsonl`'s envelope is one JSON line).
_DSSE_PAYLOAD = re.compile(r"""(?:^|[\s{,])"payload"\s*:\s*$""")
# A Google Cloud resource's name (AIP-122: collections and ids from a project, an
# organization or a folder), which names what IAM grants, never grants it: a GitHub
# workflow's `workload_identity_provider: projects/123.../providers/github`.
_RESOURCE_NAME = re.compile(
    r"(?:projects|organizations|folders|billingAccounts)/[\w-]++(?:/[a-z][A-Za-z]*+/[\w-]++)++")
_RESOURCE_PREFIXES = ("projects/", "organizations/", "folders/", "billingAccounts/")
_CONTEXT = 80
"""How far before a string its key is looked for: the context patterns end at the string,
and searched from the line's start they would make a minified JSON line of n strings
take n times its length."""
_CREDENTIAL_KEY = re.compile(r"key|auth|secret|token|pass|salt|signature|hmac|cookie|session|"
                             r"credential|bearer", re.IGNORECASE)




@dataclass(frozen=True)
class _Format:
    """A token format detect-secrets has no plugin for."""

    name: str
    triggers: tuple[str, ...]  # as _TRIGGERS: substrings a token always contains
    pattern: re.Pattern[str]  # the token is group 1 where the pattern bounds it
    entropy: float  # the least Shannon entropy of a real token; below it, a placeholder
    starts_a_word: bool = False
    """Whether the token's group must follow no word character (gitleaks' ``\\b``), asked
    of the match: a pattern led by ``\\b`` has no literal prefix for ``re`` to search by,
    which over a common trigger's text costs twenty times the search."""


_END = r"""(?:[\x60'"\s;]|\\[nr]|$)"""
_WORD = re.compile(r"\w", re.ASCII)
# Token formats detect-secrets 1.5 has no plugin for (a fine-grained GitHub token, a Google
# API key, ... passed the gate), as gitleaks v8.30.1's default rules match them, with their
# least entropy (its config/gitleaks.toml; the rule id after each, where the name does not
# say it).
_FORMATS = tuple(_Format(name, triggers, re.compile(pattern, re.ASCII), entropy, *bounded) for
                 name, triggers, pattern, entropy, *bounded in (
    ("GitHub Fine-Grained Token", ("github_pat_",),  # github-fine-grained-pat
     r"github_pat_\w{82}", 3),
    ("Google API Key", ("AIza",), rf"\b(AIza[\w-]{{35}}){_END}", 4),  # gcp-api-key
    ("Hugging Face Token", ("hf_",),  # huggingface-access-token
     rf"\b(hf_(?i:[a-z]{{34}})){_END}", 2),
    ("OpenAI Token", ("T3BlbkFJ",),  # openai-api-key
     r"\b(sk-(?:proj|svcacct|admin)-(?:[A-Za-z0-9_-]{74}|[A-Za-z0-9_-]{58})T3BlbkFJ"
     r"(?:[A-Za-z0-9_-]{74}|[A-Za-z0-9_-]{58})\b|sk-[a-zA-Z0-9]{20}T3BlbkFJ[a-zA-Z0-9]{20})"
     + _END, 3),
    ("Anthropic API Key", ("sk-ant-api03",),  # anthropic-api-key
     rf"\b(sk-ant-api03-[a-zA-Z0-9_\-]{{93}}AA){_END}", 0),
    ("Anthropic Admin API Key", ("sk-ant-admin01",),  # anthropic-admin-api-key
     rf"\b(sk-ant-admin01-[a-zA-Z0-9_\-]{{93}}AA){_END}", 0),
    ("DigitalOcean Token", ("dop_v1_",),  # digitalocean-pat
     rf"\b(dop_v1_[a-f0-9]{{64}}){_END}", 3),
    ("Shopify Token", ("shpat_",), r"shpat_[a-fA-F0-9]{32}", 2),  # shopify-access-token
    # The Slack plugin knows a webhook of `services/` alone (slack-webhook-url). The least
    # entropy of this and of Teams' webhook is ours, of the whole URL: a real one's is
    # above 4.3, a placeholder's (`T00000000/.../XXXX`) below 3.2.
    ("Slack Webhook", ("hooks.slack.com/workflows/", "hooks.slack.com/triggers/"),
     r"((?:https?://)?hooks\.slack\.com/(?:workflows|triggers)/[A-Za-z0-9+/]{43,56})", 4),
    # The Stripe plugin knows live keys alone (stripe-access-token).
    ("Stripe Key", ("k_test_", "k_prod_"), rf"\b((?:sk|rk)_(?:test|prod)_[a-zA-Z0-9]{{10,99}}){_END}",
     2),
    # age's identity, which decrypts a SOPS file's values (age-secret-key); the least
    # entropy is ours: a placeholder of one letter repeated is no key.
    ("Age Secret Key", ("AGE-SECRET-KEY-1",),
     r"(AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58})", 3),
    ("Vault Token", ("hvs.",), rf"\b(hvs\.[\w-]{{90,120}}){_END}", 3.5),  # vault-service-token
    ("Vault Token", ("hvb.",), rf"\b(hvb\.[\w-]{{138,300}}){_END}", 4),  # vault-batch-token
    # Vault's service token before 1.10 (`s.` and 24 letters and digits, vault-service-token),
    # valid until it expires, of any age on a server not upgraded; gitleaks' allowlist of
    # 24 letters alone (a dotted name: `s.RenameClientCapabilities`) is the lookahead.
    ("Vault Token", ("s.",), rf"(s\.(?=[A-Za-z]*+[0-9])[A-Za-z0-9]{{24}}){_END}", 3.5, True),
    ("Terraform Cloud Token", (".atlasv1.",),  # hashicorp-tf-api-token
     r"((?i:[a-z0-9]{14})\.atlasv1\.(?i:[a-z0-9_=-]{60,70}))", 3.5),
    ("npm Token", ("npm_",), rf"\b(npm_[A-Za-z0-9]{{36}}){_END}", 2),  # npm-access-token
    ("Pulumi Token", ("pul-",), rf"\b(pul-[a-f0-9]{{40}}){_END}", 2),  # pulumi-api-token
    ("Doppler Token", ("dp.pt.",), r"(dp\.pt\.(?i:[a-z0-9]{43}))", 2),  # doppler-api-token
    ("Grafana Service Account Token", ("glsa_",),  # grafana-service-account-token
     rf"\b(glsa_[A-Za-z0-9]{{32}}_[A-Fa-f0-9]{{8}}){_END}", 3),
    ("Databricks Token", ("dapi",), rf"\b(dapi[a-f0-9]{{32}}(?:-\d)?+){_END}", 3),
    ("Heroku Token", ("HRKU-AA",), rf"\b(HRKU-AA[0-9a-zA-Z_-]{{58}}){_END}", 4),
    ("Linear API Key", ("lin_api_",), r"(lin_api_(?i:[a-z0-9]{40}))", 2),
    ("Postman API Key", ("PMAK-",), rf"\b(PMAK-(?i:[a-f0-9]{{24}}-[a-f0-9]{{34}})){_END}", 3),
    ("Dynatrace Token", ("dt0c01.",), r"(dt0c01\.(?i:[a-z0-9]{24}\.[a-z0-9]{64}))", 4),
    ("1Password Service Account Token", ("ops_eyJ",), r"(ops_eyJ[a-zA-Z0-9+/]{250,}+={0,3})",
     4),
    ("Azure AD Client Secret", ("Q~",),  # azure-ad-client-secret
     r"""(?:^|[\\'"\x60\s>=:(,)])([a-zA-Z0-9_~.]{3}\dQ~[a-zA-Z0-9_~.-]{31,34})"""
     r"""(?:$|[\\'"\x60\s<),])""", 3),
    # A Service Bus', Event Hubs' or IoT Hub's connection string: the Azure plugin knows a
    # storage account's `AccountKey=...` alone, and gitleaks' generic rule finds this one.
    ("Azure Shared Access Key", ("SharedAccessKey=",),
     r"(SharedAccessKey=[A-Za-z0-9+/]{42,43}=)", 3),
    ("Microsoft Teams Webhook", (".webhook.office.com/webhookb2/",),  # microsoft-teams-webhook
     r"(https://[a-z0-9]+\.webhook\.office\.com/webhookb2/[a-z0-9]{8}-(?:[a-z0-9]{4}-){3}"
     r"[a-z0-9]{12}@[a-z0-9]{8}-(?:[a-z0-9]{4}-){3}[a-z0-9]{12}/IncomingWebhook/[a-z0-9]{32}/"
     r"[a-z0-9]{8}-(?:[a-z0-9]{4}-){3}[a-z0-9]{12})", 4),
    ("Sentry Token", ("sntryu_",), rf"\b(sntryu_[a-f0-9]{{64}}){_END}", 3.5),  # sentry-user-token
    # PKCS#8's encrypted key, which PrivateKeyDetector's list of BEGIN lines lacks: a
    # passphrase guards it, and a weak one is guessed offline (private-key). Named and
    # placed as the plugin's hits are, so a key's finding reads alike whatever its kind.
    # Its base64 follows, on the next line or after an escaped line end: text that names
    # the BEGIN line (`-----BEGIN ENCRYPTED PRIVATE KEY-----` in a doc) holds no key.
    ("Private Key", ("ENCRYPTED PRIVATE KEY",),
     r"-----(BEGIN ENCRYPTED PRIVATE KEY)-----(?:\\[nr]|\s)*+[A-Za-z0-9+/]{16}", 0),
    # PuTTY's key file of format 3 (PuTTY 0.75 on), which the plugin's list lacks (it
    # has format 2's line); its `Encryption:` line follows, where a text naming the
    # first line holds no key.
    ("Private Key", ("PuTTY-User-Key-File-",),
     r"(PuTTY-User-Key-File-[3-9]): [^\s\\]++(?:\\[nr]|\s)++Encryption: ", 0),
))


@lru_cache(maxsize=1)
def _trigger_index() -> tuple[tuple[str, int], ...]:
    """Each trigger with its detector's number: ``_FORMATS``' first, then
    ``_format_plugins()``'s."""
    detectors = [f.triggers for f in _FORMATS] + [t or () for _, t in _format_plugins()]
    return tuple((trigger, i) for i, triggers in enumerate(detectors) for trigger in triggers)


_SHORT_TEXT = 4096
"""Up to this length one search for any trigger costs less than a test for each (over a
long text with none, the search costs as much as the tests)."""


@lru_cache(maxsize=1)
def _untriggered() -> frozenset[int]:
    """The detectors that run on every text: plugins ``_TRIGGERS`` does not know."""
    return frozenset(i for i, (_, triggers) in enumerate(_format_plugins(), len(_FORMATS))
                     if triggers is None)


@lru_cache(maxsize=1)
def _plugin_gates() -> tuple[re.Pattern[str] | None, ...]:
    """Each plugin's gate (``_GATES``), in ``_format_plugins()``' order."""
    return tuple(_GATES.get(type(plugin).__name__) for plugin, _ in _format_plugins())


@lru_cache(maxsize=1)
def _any_trigger() -> re.Pattern[str]:
    return re.compile("|".join(map(re.escape, {trigger for trigger, _ in _trigger_index()})))


def format_hits(src: SourceFile) -> Iterator[tuple[int, Hit]]:
    text = src.text
    locate = src.position

    # One pass over every trigger: a generator per detector cost more than its checks. A
    # short text (a Secret's decoded value, of which a Secret may have 200,000) is first
    # asked whether it holds any trigger at all, in one search.
    present = set() if len(text) <= _SHORT_TEXT and not _any_trigger().search(text) \
        else {i for trigger, i in _trigger_index() if trigger in text}
    plugins = _format_plugins()
    for i in sorted(present.union(_untriggered())):
        if i < len(_FORMATS):
            fmt = _FORMATS[i]
            for m in fmt.pattern.finditer(text):
                group = m.lastindex or 0
                if fmt.starts_a_word and m.start(group) and _WORD.match(text, m.start(group) - 1):
                    continue
                if shannon_entropy(m.group(group)) < fmt.entropy:
                    continue
                number, column = locate(m.start(group))
                yield number, Hit(column, f"{fmt.name} in a committed file ({REDACTED})", 0,
                                  _key_block(src, number))
            continue
        plugin = plugins[i - len(_FORMATS)][0]
        gate = _plugin_gates()[i - len(_FORMATS)]
        if gate is not None and gate.search(text) is None:
            continue
        numbers: set[int] = set()
        for regex in plugin.denylist:
            for m in regex.finditer(text):
                numbers.add(locate(m.start())[0])
        # The plugin itself decides on each candidate line (its own group logic).
        for number in sorted(numbers):
            line = src.lines[number - 1] if number <= len(src.lines) else ""
            for secret in plugin.analyze_string(line):
                if not secret or not is_literal(str(secret)):
                    continue
                col = line.find(str(secret)) + 1
                if plugin.secret_type == _BASIC_AUTH and _illustrated_login(line, str(secret)):
                    continue
                if shannon_entropy(str(secret)) < _PLUGIN_ENTROPY.get(plugin.secret_type, 0):
                    continue
                if plugin.secret_type == _AWS_KEY and _AWS_KEY_ID_SHAPE.fullmatch(str(secret)):
                    col = _whole_word(line, str(secret)) + 1
                    if not col:
                        continue
                yield number, Hit(max(col, 1), f"{plugin.secret_type} in a committed file "
                                                f"({REDACTED})", 0, _key_block(src, number))


_AWS_KEY = "AWS Access Key"
# An access key id as the plugin matches it, which gitleaks' aws-access-token reads as
# a whole word alone: base64 data that holds `AKIA` and 16 capitals by chance (a wasm
# module or a font inlined in a JS bundle) is none.
_AWS_KEY_ID_SHAPE = re.compile(r"(?:A3T[A-Z0-9]|ABIA|ACCA|AKIA|ASIA)[0-9A-Z]{16}")


def _whole_word(line: str, key_id: str) -> int:
    """Where on ``line`` the access key id ``key_id`` stands as a whole word; -1 when it
    stands nowhere so."""
    at = line.find(key_id)
    while at >= 0:
        end = at + len(key_id)
        if (at == 0 or not _WORD.match(line, at - 1)) and not _WORD.match(line, end):
            return at
        at = line.find(key_id, at + 1)
    return -1


# The least entropy of a plugin's token where the plugin asks none: a Telegram bot's id
# and key are digits, a colon and 35 random characters (above 4), where zeros in a
# search index's data (rustdoc's, `000000000:1000...0`) are below 1.
_PLUGIN_ENTROPY = {"Telegram Bot Token": 3.0}
_BASIC_AUTH = "Basic Auth Credentials"
# A URL's login that shows the shape of one, a generic name for its user and for its
# password (`https://user:pass@...`, `scheme://username:password@host`,
# `https://USER:TOKEN@HOST/...` in a comment or a doc). A real login in a comment is a
# finding, as in code: it works wherever the URL's host is.
_ILLUSTRATED_LOGIN = re.compile(
    r"(?i)://(?:user(?:name)?|login|name):(?:pass(?:word|wd)?|pwd|secret|token)@")


def _illustrated_login(line: str, secret: str) -> bool:
    """Whether the URL of ``line`` whose password is ``secret`` illustrates a login
    (``_ILLUSTRATED_LOGIN``)."""
    at = line.find(f":{secret}@")
    start = line.rfind("://", 0, at)
    return start >= 0 and _ILLUSTRATED_LOGIN.match(line, start) is not None


# Where a private key's block ends: PEM's END line, PuTTY's MAC line.
_BLOCK_ENDS = ("-----END", "Private-MAC:")


def _key_block(src: SourceFile, number: int) -> str | None:
    """The lines of the private key that begins on line ``number``, through its end (or the
    file's): the key is below its BEGIN line. None when the line holds all of it (JSON's
    escaped newlines) or begins none."""
    line = src.lines[number - 1] if number <= len(src.lines) else ""
    begin = max(line.find("-----BEGIN"), line.find("PuTTY-User-Key-File"))
    if begin < 0 or any(end in line[begin:] for end in _BLOCK_ENDS):
        return None
    last = next((i for i in range(number, len(src.lines))
                 if any(end in src.lines[i] for end in _BLOCK_ENDS)), len(src.lines) - 1)
    return "\n".join(src.lines[number - 1:last + 1])


# A PEM private key, base64-encoded again (a Kubernetes Secret's `data:`, a CI variable):
# "-----BEGIN" encodes to "LS0tLS1CRUdJT".
_BASE64_PEM = re.compile(r"LS0tLS1CRUdJT[A-Za-z0-9+/]{20,}")


def encoded_private_key_hits(src: SourceFile) -> Iterator[tuple[int, Hit]]:
    if "LS0tLS1CRUdJT" not in src.text:
        return
    for number, line in enumerate(src.lines, 1):
        for m in _BASE64_PEM.finditer(line):
            head = m.group(0)[:60]
            try:
                decoded = base64.b64decode(head[:len(head) - len(head) % 4]).decode("ascii")
            except (ValueError, UnicodeDecodeError):
                continue
            if "PRIVATE KEY" in decoded:
                yield number, Hit(m.start() + 1, f"base64-encoded private key ({REDACTED})", 0)


def _der_length(data: bytes, at: int) -> tuple[int, int] | None:
    """A DER length at ``data[at]``: the length and where its content starts."""
    if at >= len(data):
        return None
    first = data[at]
    if first < 0x80:
        return first, at + 1
    size = first & 0x7F
    if not 0 < size <= 4 or at + 1 + size > len(data):
        return None
    return int.from_bytes(data[at + 1:at + 1 + size], "big"), at + 1 + size


def _public_key(value: str) -> bool:
    """Whether ``value`` is the base64 of a public key, DER's SubjectPublicKeyInfo (a
    SEQUENCE of the algorithm's SEQUENCE and the key's BIT STRING, what a PEM `PUBLIC KEY`
    block holds): npm's registry signing keys in corepack, `MFkwEwYHKoZIzj0...`. A
    private key's PKCS#8 has a version INTEGER first and is no such thing."""
    try:
        data = base64.b64decode(value[:4 * 64], validate=True)
    except ValueError:
        return False
    outer = _der_length(data, 1) if data[:1] == b"\x30" else None
    if outer is None or data[outer[1]:outer[1] + 1] != b"\x30":
        return False
    algorithm = _der_length(data, outer[1] + 1)
    if algorithm is None or data[algorithm[1]:algorithm[1] + 1] != b"\x06":
        return False
    key_at = algorithm[1] + algorithm[0]
    return data[key_at:key_at + 1] == b"\x03"


def _looks_generated(value: str, after_an_id: bool) -> bool:
    # detect-secrets' own false-positive heuristics: alphabet runs, UUIDs, and its
    # is_likely_id_string (`..._id = ...`: ``after_an_id``), which searched the line up to
    # the string for each string, asked of a ``_Before`` here.
    from detect_secrets.filters.heuristic import is_potential_uuid, is_sequential_string

    return is_sequential_string(value) or is_potential_uuid(value) or after_an_id \
        or _an_alphabet(value) or _joined_words(value) or _binary_data(value)


_DATA_LENGTH = 512
"""The base64 of 384 bytes: longer than a token or a symmetric key, which is where an
inlined binary's base64 (a wasm module, a font, a search index) is told apart."""


def _binary_data(value: str) -> bool:
    """Whether ``value`` is the base64 of a binary that is no key: ``_DATA_LENGTH`` or
    longer, its bytes not text (a credentials file's JSON in base64 is one) and not DER
    (a private key's PKCS#8 is one), as undici's llhttp wasm and rustdoc's search index
    inline in JS."""
    if len(value) < _DATA_LENGTH:
        return False
    try:
        head = base64.b64decode(value[:_DATA_LENGTH], validate=True)
    except ValueError:
        try:
            head = base64.urlsafe_b64decode(value[:_DATA_LENGTH])
        except ValueError:
            return False
    if head[:1] == b"\x30":
        return False
    controls = sum(byte < 0x20 and byte not in b"\t\n\r" for byte in head)
    return controls * 100 > len(head)


_JOINED_WORDS = 4


def _joined_words(value: str) -> bool:
    """Whether ``value`` is ``_JOINED_WORDS`` or more words joined by ``_`` or ``-``, each
    of letters or of digits alone: a name (TypeScript's diagnostic
    `ECMAScript_imports_and_exports_cannot_be_written_in_a_CommonJS_file_1295`), where
    random text mixes letters and digits within its parts."""
    parts = re.split(r"[_-]", value)
    return len(parts) >= _JOINED_WORDS and all(p.isalpha() or p.isdigit() for p in parts)


_SHUFFLED_ALPHABET = 40
"""Characters, each once, that make an alphabet whatever their order: of 40 drawn at
random from base64's 64, some repeat but once in 200,000."""


def _an_alphabet(value: str) -> bool:
    """Whether ``value`` is a set of characters, each once, as an encoder's or an id
    generator's alphabet is (nanoid's `useandom-26T198340PX75px...`, in postcss; GitPython's
    `clusterable_short_options="46abcef..."`): in their code points' order, or too many
    to be drawn at random without a repeat (``_SHUFFLED_ALPHABET``). In order is each
    class of character in order, one class after another (digits, then lower case,
    then upper case): at most three rising runs."""
    if len(set(value)) != len(value):
        return False
    return len(value) >= _SHUFFLED_ALPHABET \
        or sum(a > b for a, b in itertools.pairwise(value)) <= 2


class _Before:
    """Whether a pattern matches a line before a place in it, asked for each string of
    the line in turn: the line is searched once, not from its start again for each
    string (which would make a minified JSON line of n strings n times its length of
    work)."""

    def __init__(self, pattern: re.Pattern[str], line: str) -> None:
        self.pattern, self.line = pattern, line
        self.first: re.Match[str] | bool | None = False  # False: not searched yet

    def __call__(self, at: int) -> bool:
        """Whether a match lies wholly in ``line[:at]``. None starts before the first
        match, and the patterns asked are of bounded length: past the first match's end
        there is one; before it, one search of the few characters from its start decides."""
        if self.first is False:
            self.first = self.pattern.search(self.line)
        first = self.first
        if not isinstance(first, re.Match) or at <= first.start():
            return False
        return first.end() <= at or self.pattern.search(self.line, first.start(), at) is not None


def entropy_hits(src: SourceFile, decided: Callable[[int, int], bool] | None = None
                 ) -> Iterator[tuple[int, Hit]]:
    """High-entropy quoted strings. ``decided(line, column)``: whether the string there
    is one another check decides for (a Secret's base64, by what it decodes to), and is
    not measured (a measure is a hundred counts of its characters)."""
    if src.name in _LOCK_FILES or src.name.endswith((".lock", ".min.js", ".svg", ".map")):
        return
    if not _QUOTED_LONG.search(src.text):
        return
    b64, hexa = _entropy_plugins()
    dsse = '"payloadType"' in src.text
    from detect_secrets.filters.heuristic import _get_id_detector_regex

    for number, line in enumerate(src.lines, 1):
        credential_before = _Before(_CREDENTIAL_KEY, line)
        id_before = _Before(_get_id_detector_regex(), line)
        for m in _QUOTED_LONG.finditer(line):
            value = m.group(2)
            if decided is not None and decided(number, m.start(2) + 1):
                continue
            # Each context is looked for within _CONTEXT before the string, not from the
            # line's start: see _CONTEXT.
            at = m.start()
            near = max(0, at - _CONTEXT)
            if _DIGEST_CONTEXT.search(line, near, at) or "data:" in line[max(0, at - 12):at]:
                continue
            if _PUBLIC_SIGNATURE.search(line, near, at) \
                    or (dsse and _DSSE_PAYLOAD.search(line, near, at)):
                continue
            if value.startswith(_RESOURCE_PREFIXES) and _RESOURCE_NAME.fullmatch(value):
                continue
            if value.startswith("M") and _public_key(value):
                continue
            if re.fullmatch(r"[0-9a-fA-F]+", value):
                # Hex strings are mostly digests and ids: only under a credential-like key.
                if (hexa.calculate_shannon_entropy(value) > hexa.entropy_limit
                        and credential_before(at)):
                    yield number, Hit(m.start(2) + 1,
                                       f"high-entropy hex string under a credential-like key "
                                       f"({REDACTED})", 2)
            elif (b64.calculate_shannon_entropy(value) > b64.entropy_limit
                  and re.search(r"[0-9]", value) and re.search(r"[A-Za-z]", value)
                  and not _looks_generated(value, id_before(m.start(2)))):
                yield number, Hit(m.start(2) + 1,
                                   f"high-entropy string that looks like a secret ({REDACTED})",
                                   2)
