"""MAG002: hardcoded secrets in committed files.

Two detectors:

* our own key rule: a secret-like key (password, secret, token, api_key, private_key, ...)
  assigned a literal in YAML, JSON, env files, shell/Dockerfiles, TOML/INI, Python, JS/TS
  and Go; unquoted ``KEY=value`` included, which detect-secrets' keyword plugin misses
  outside a few file types. References (``vault://``, ``env://``, ``${VAR}``,
  ``secretKeyRef``/``valueFrom``, templating) are never findings;
* detect-secrets' maintained token-format plugins and its high-entropy measure
  (``token_formats``), gated so a clean file costs a few substring checks.

Findings show ``<redacted>`` where the value would be: the value is never printed.
"""

from __future__ import annotations

import ast
import base64
import bisect
import itertools
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass, replace
from typing import Any

from ..errors import printable
from .context import LintContext, finding
from .findings import REDACTED, Finding
from .keystores import key_store
from .literals import is_literal
from .manifests import DataEntry, sealed_lines, secret_data
from .token_formats import (
    Hit,
    encoded_private_key_hits,
    entropy_hits,
    format_hits,
    load_plugins,
    shannon_entropy,
)
from .walk import SourceFile, source

RULE = "MAG002"
FIX = ("move the value to Vault and reference it (`vault://<mount>/<path>#<key>`, "
       "`${VAR}` or a `secretKeyRef`), then rotate the exposed secret")
KEY_STORE_FIX = ("remove the store from the repository and its history, keep it in Vault "
                 "as base64 (`base64 -w0 <file> | vault kv put <mount>/<path> keystore=-`) "
                 "and have the deployment write it to a file from there (an ExternalSecret, "
                 "the Vault agent), then replace the keys it holds and revoke their "
                 "certificates: a new store password does not protect the copies in history")

# Cheap whole-file and per-line gate for the key rule.
def _has_secret_word(text: str) -> bool:
    """The cheap gate of the key rule: a word every secret-like key name contains.
    Substring tests on the lowered text are several times faster than a regex here."""
    low = text.lower()
    return ("pass" in low or "pwd" in low or "secret" in low or "token" in low
            or "credential" in low or "key" in low or "auth" in low or "bearer" in low
            or "salt" in low)
_SECRET_TOKENS = frozenset({
    "password", "passwd", "pwd", "passphrase", "secret", "token", "apikey", "credential",
    "credentials", "privatekey", "secretkey", "accesstoken", "authtoken", "clientsecret",
    "pass"})
_SECRET_PAIRS = frozenset({("api", "key"), ("private", "key"), ("signing", "key"),
                           ("encryption", "key"), ("master", "key"), ("ssh", "key"),
                           ("hmac", "key")})
# WordPress' keys and salts (wp-config.php), secrets by these whole names alone: a
# `NONCE_SALT` signs cookies, while `WP_CACHE_KEY_SALT` prefixes cache keys.
_WORDPRESS_SECRETS = frozenset(
    (*prefix, last) for prefix in (("auth",), ("secure", "auth"), ("logged", "in"), ("nonce",))
    for last in ("key", "salt"))
# Secret-like only as a name's last word: `basic_auth` and `bearer` hold a credential,
# `auth_method` and `bearer_format` say how one is used.
_CREDENTIAL_LAST = frozenset({"auth", "bearer"})
# A key ending in one of these names where a secret is, not the secret itself.
_NOT_SECRET_LAST = frozenset({
    "file", "files", "path", "dir", "name", "names", "ref", "reference", "url", "uri",
    "endpoint", "env", "var", "variable", "type", "length", "len", "ttl", "expiry", "expires",
    "expiration", "policy", "mode", "enabled", "enable", "disabled", "required", "header",
    "field", "id", "hash", "count", "size", "format", "provider", "store", "source", "prefix",
    "suffix", "label", "lifetime", "timeout", "rotation", "version", "class", "kind",
    "backend", "method", "template", "pattern", "regex", "placeholder", "hint",
    "description", "help", "title", "message", "error", "min", "max", "tokens", "secrets",
    "passwords", "mount", "key_ref", "location", "annotation", "audience", "issuer",
    "scope", "scopes", "realm", "selector", "manager", "generator", "check", "validator",
    "algorithm", "algo", "scheme", "strategy", "cipher", "pub", "public", "re", "rx",
    "regexp", "arn"})
# Anywhere in a key, these make it a setting about a secret (`access_token_ttl_seconds`).
_NOT_SECRET_ANY = frozenset({"ttl", "timeout", "expiry", "expires", "lifetime", "interval",
                             "seconds", "secs", "ms", "minutes", "hours", "days", "length",
                             "count", "limit", "retries", "enabled", "rotation"})
_NOT_SECRET_FIRST = frozenset({"from",
    "existing", "max", "min", "num", "use", "enable", "require", "has", "is", "no", "show",
    "automount", "generate", "rotate", "allow", "reset", "forgot", "validate", "verify",
    "hash", "hashed", "check", "on", "get", "set", "new", "old", "confirm", "create"})
_NAMES_A_KEY = frozenset({"password", "passwd", "pwd", "passphrase", "token", "credential",
                          "credentials"})
# A last word ending in one of these is a secret run together with what it is for
# (`PGPASSWORD`, `GITHUBTOKEN`); `tokenizer` and `passwordless` do not end in one.
_SECRET_ENDINGS = ("password", "passwd", "secret", "token")
_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def _words(name: str) -> list[str]:
    """A name's words, lower-case and without trailing digits, in any case or separator
    style (``apiKey``, ``API_KEY2``, ``api-key`` are all ``api``, ``key``)."""
    words = (t.lower().rstrip("0123456789") for t in _SPLIT.split(name))
    return [w for w in words if w]


def _about_a_secret(words: list[str]) -> bool:
    """Whether a name's words say its value is something about a secret, not the secret:
    where it is, its type, its ``ttl``, its ``description``."""
    return bool(words) and (words[-1] in _NOT_SECRET_LAST
                            or any(w in _NOT_SECRET_ANY for w in words))


def key_is_secret(key: str) -> bool:
    """Whether a key name says its value is a secret (``DB_PASSWORD``, ``apiKey``, ...)."""
    if not _has_secret_word(key):
        return False  # each secret-like name has one of its words: the cheap test first
    tokens = _words(key)
    if not tokens or tokens[0] in _NOT_SECRET_FIRST or _about_a_secret(tokens):
        return False
    if len(tokens) > 1 and tokens[-1] == "key" and tokens[-2] in _NAMES_A_KEY:
        return False  # `passwordKey: db-password` names the key of a k8s Secret
    if any(t in _SECRET_TOKENS for t in tokens) or tokens[-1].endswith(_SECRET_ENDINGS) \
            or tokens[-1] in _CREDENTIAL_LAST or tuple(tokens) in _WORDPRESS_SECRETS:
        return True
    return any(pair in _SECRET_PAIRS for pair in itertools.pairwise(tokens))


# --- assignment shapes, by file kind --------------------------------------------------------

_YAML_KV = re.compile(r"""^\s*(?:-\s+)?(["']?)([A-Za-z_][\w.-]*)\1\s*:(?:\s+|$)(.*)$""")
# No value group ends in a lazy `(.*?)\s*$` or a backreference: those try the rest of the
# line at each character, and a line of 20,000 spaces took seconds per pattern. A value
# group stops at the last character that is not a space, or is stripped where it is used.
_YAML_LIST_ENV = re.compile(r"^\s*-\s++([\"']?)([A-Za-z_][\w.]*+)=(.*)$")
_YAML_NAME = re.compile(r"""^(\s*)-\s+name:\s*["']?([A-Za-z_][\w.-]*)["']?\s*$""")
_YAML_VALUE = re.compile(r"^(\s*)(value|valueFrom):(.*)$")
_JSON_KV = re.compile(r'"([A-Za-z_][\w.-]*)"\s*:\s*("(?:[^"\\]|\\.)*")')
_ENV_KV = re.compile(r"^\s*(?:export\s+|ENV\s+|ARG\s+)?([A-Za-z_][\w.]*)\s*=\s*((?:.*\S)?)\s*$")
# make's `VAR = value`, `VAR := value`, `VAR ?= value`, `VAR += value` (`export`,
# `override`); a recipe's line begins with a tab.
_MAKE_KV = re.compile(r"^(?:(?:export|override)[ \t]++)*+([A-Za-z_][\w.]*+)[ \t]*+(?:[:?+!]|::)?+="
                      r"[ \t]*+((?:.*\S)?)")
_DOCKER_ENV_SPACE = re.compile(r"^\s*ENV\s++([A-Za-z_][\w.]*+)\s++([^=\s][^=]*+)$")
_INI_KV = re.compile(r"""^\s*["']?([A-Za-z_][\w.-]*)["']?\s*[=:]\s*((?:.*\S)?)\s*$""")
# A string literal in code: quoted, backquoted, Python's with a prefix (`f"..."`,
# `rb'...'`) or triple quotes on one line, C#'s verbatim `@"..."` (`""` is a quote in it)
# and Rust's raw `r#"..."#`.
_CODE_STRING = (r"""((?:[rRbBuUfF]{1,2}+(?=["']))?+(?:\"\"\"(?:[^"\\\n]|\\.|"(?!""))*+\"\"\"|"""
                r"""'''(?:[^'\\\n]|\\.|'(?!''))*+'''|"(?:[^"\\\n]|\\.)*+"|"""
                r"""'(?:[^'\\\n]|\\.)*+'|`[^`\n]*+`|"""
                r"""(?:\$?+@|@\$)"(?:[^"\n]|"")*+"|[bB]?+[rR]#"(?:[^"\n]|"(?!#))*+"#))""")
# A type annotation comes before `=` (`const x: string = `, `val x: String = `), never
# before a colon: `db: password: "..."` (CUE) and `config :app, password: "..."` (Elixir)
# are keys. Jsonnet's hidden fields are `key::` and `key:::`.
_CODE_KEY = (  # `$env:` and `$script:` qualify a PowerShell variable
    r"""(?:^|[\s,({\[;])["'`]?(?:\$[A-Za-z]+:)?([A-Za-z_$][\w$.-]*+)["'`]?"""
    r"""\s*+(?:(?::\s*[A-Za-z_][\w\[\], .|]*+)?\s*+(?::=|(?<![=!<>:])=(?!=))|:{1,3}+)\s*+""")
_CODE_KV = re.compile(_CODE_KEY + _CODE_STRING)
# A DSL's call with one string, a line of its own: Gradle's and Groovy's `storePassword
# "..."`, Ruby's (Chef's, Vagrant's) `password "..."`.
_DSL_CALL = re.compile(r"^\s*+([A-Za-z_]\w*+)[ \t]++" + _CODE_STRING + r"\s*+;?+\s*+$")
# Go's declaration with a type, `const apiKey string = "..."`, whose name _CODE_KV would
# take to be the type's; in a `var (...)` block without the keyword; and Bicep's
# `param adminPassword string = '...'`.
_GO_TYPED_KEY = (r"""^\s*+(?:(?:const|var|param)\s++)?([A-Za-z_]\w*+)\s++[A-Za-z_][\w.]*+"""
                 r"""\s*+=(?!=)\s*+""")
_GO_TYPED = re.compile(_GO_TYPED_KEY + r"""("(?:[^"\\\n]|\\.)*+"|`[^`\n]*+`|'(?:[^'\\\n]|\\.)*+')""")
# A string that goes on below its line: triple quotes (Python, Kotlin, Java's text
# blocks), C#'s verbatim and Rust's raw strings, and where backquotes quote (JS/TS, Go) a
# template literal or a raw string.
_OPENS_BELOW = (r"""((?:[rRbBuUfF]{1,2}+)?+(?:\"\"\"|''')|`|(?:\$?+@|@\$)"|[bB]?+[rR]#")"""
                r"""(.*+)$""")
_CODE_KV_BELOW = (re.compile(_CODE_KEY + _OPENS_BELOW), re.compile(_GO_TYPED_KEY + _OPENS_BELOW))
_BACKQUOTED_EXT = (".js", ".mjs", ".cjs", ".jsx", ".ts", ".mts", ".cts", ".tsx", ".vue",
                   ".svelte", ".go")
_MAX_STRING_LINES = 8
"""How far below its line a string is followed: a secret is one word, on a line of its
own at most, between blank ones."""

# A whole value that is a shell/compose fallback: `${VAR:-default}`, `${VAR-default}`,
# `${VAR:=default}`, `${VAR=default}`.
_FALLBACK_VALUE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*):?[-=]([^}]*)\}")
# Spring's (and Quarkus', Micronaut's) property placeholder with a default,
# `${jwt.secret:default}`, in properties, YAML, JSON and code; not the shell's substring
# `${TOKEN:0:8}`, nor its `:-`, `:=`, `:?` and `:+`.
_PROPERTY_DEFAULT = re.compile(
    r"\$\{([A-Za-z_][\w.-]*+):(?![-=?+])(?!\s*+-?\d++(?::\s*+-?\d++)?+\})([^}]*+)\}")
_PROPERTY_KINDS = ("yaml", "json", "ini", "code")
# The same placeholder as a whole string in code: `@Value("${jwt.secret:...}")`.
_PROPERTY_DEFAULT_STRING = re.compile(r"""(["'])(""" + _PROPERTY_DEFAULT.pattern + r""")\1""")
# `process.env.API_TOKEN || "..."` and `?? "..."` (and Vite's `import.meta.env`).
_JS_ENV_DEFAULT = re.compile(
    r"""(?:process\.env|import\.meta\.env)(?:\.([A-Za-z_$][\w$]*+)|\[\s*+["'`]([A-Za-z_]\w*+)"""
    r"""["'`]\s*+\])\s*+(?:\|\||\?\?)\s*+("(?:[^"\\\n]|\\.)*+"|'(?:[^'\\\n]|\\.)*+'|`[^`\n]*+`)""")
# `os.getenv("API_TOKEN", "...")`, `os.environ.get(...)`, `env.get(...)`, Ruby's
# `ENV.fetch(...)`, Java's `System.getenv().getOrDefault(...)` with a default.
_GETENV_DEFAULT = re.compile(
    r"""(?:getenv|environ\.get|env\.get|ENV\.fetch|getenv\(\)\.getOrDefault)\(\s*["']"""
    r"""([A-Za-z_]\w*)["']\s*,\s*("(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')""")
# An env var read, then the literal that runs when it is unset or empty: Python's
# `os.getenv("API_TOKEN") or "..."` (`os.environ.get(...)`, `os.environ[...]`), Ruby's
# `ENV["API_TOKEN"] || "..."` and `ENV.fetch("API_TOKEN") { "..." }`, PHP's
# `getenv('API_TOKEN') ?: '...'` and `$_ENV['API_TOKEN'] ?? '...'`, Kotlin's
# `System.getenv("API_TOKEN") ?: "..."`, C#'s `Environment.GetEnvironmentVariable(...) ??`
# and Rust's `env::var("API_TOKEN").unwrap_or("...")` (`unwrap_or_else(|_| "...")`).
_ENV_OR = re.compile(
    r"""(?:(?:getenv|environ\.get|env\.get|ENV\.fetch|GetEnvironmentVariable|env::var)\("""
    r"""\s*+["']([A-Za-z_]\w*+)["']\s*+(?:,[^()\n]*+)?\)"""
    r"""|(?:environ|ENV|\$_ENV)\[\s*+["']([A-Za-z_]\w*+)["']\s*+\])"""
    r"""\s*+(?:or\s|\|\||\?\?|\?:|\{|\.unwrap_or(?:_else)?+\(\s*+(?:\|_\|)?+)\s*+"""
    + _CODE_STRING)

# `Server=db;User Id=app;Password=...;` (ADO.NET, ODBC, JDBC properties), a URL's query
# (`jdbc:postgresql://db/app?user=app&password=...`), libpq's `host=db user=app
# password=...` (after another `key=value` and a space: a keyword argument `f(user=u,
# password=p)` is code), a URL with a password but no user name (`redis://:<password>@host`;
# detect-secrets' basic-auth plugin needs a user) and Oracle's `jdbc:oracle:thin:user/
# <password>@host`. A string's escaped line end ends the value (`password=%s\n` is a
# format field).
_CONNECTION_PASSWORD = re.compile(
    r"""(?i)(?:[;"'?&]|\b\w+=[^\s;,()"']+\s+)(?:password|pwd)=((?:[^;"'\s&\\]|\\(?![nrt]))++)""")
_URL_PASSWORD_ONLY = re.compile(r"\b[a-z][a-z0-9+.-]*://:([\w.~!&*+,;=%-]+)@")
_ORACLE_LOGIN = re.compile(r"""(?i)\bjdbc:oracle:(?:thin|oci\d*+):[\w$#]++/([^@\s"'/]++)@""")
_CONNECTION_TRIGGER = re.compile(r"://:|(?:pwd|password)=|jdbc:oracle:", re.IGNORECASE)

# HCL (Terraform, Terragrunt, Nomad, Packer) assigns as code does: `password = "..."`; so
# do the build and configuration languages (Groovy and Gradle, Kotlin scripts, Jsonnet,
# CUE, Nix, Bicep, Elixir).
_CODE_EXT = (".py", ".pyi", ".js", ".mjs", ".cjs", ".jsx", ".ts", ".mts", ".cts", ".tsx",
             ".vue", ".svelte", ".json5", ".go", ".java", ".kt", ".kts", ".rb", ".php", ".cs",
             ".rs", ".swift", ".scala", ".groovy", ".gradle", ".ps1", ".psm1", ".tf", ".tfvars",
             ".hcl", ".jsonnet", ".libsonnet", ".cue", ".nix", ".bicep", ".ex", ".exs")
# Files named for what they are: a Jenkinsfile is Groovy, a Makefile make's.
_NAMED_KINDS = {"Jenkinsfile": "code", "Makefile": "make", "makefile": "make",
                "GNUmakefile": "make"}
# MySQL's option files (`my.cnf`, `.my.cnf`) and s3cmd's `.s3cfg` are INI files too.
_INI_EXT = (".toml", ".ini", ".cfg", ".conf", ".properties", ".cnf", ".s3cfg")
_SHELL_EXT = (".sh", ".bash", ".zsh")
# A template renders to the file its name has without the suffix (`values.yaml.gotmpl`).
_TEMPLATE_SUFFIX = re.compile(r"\.(?:gotmpl|tmpl|j2|jinja2?|erb)$", re.IGNORECASE)
# Explicit example markers only: `template.yaml` is AWS SAM's and CloudFormation's default
# name and `secret-template.yaml` a real manifest, while `.env.template`, `x.tpl` and
# `x.template.yaml` say example by a dotted part.
_EXAMPLE = re.compile(r"(?:^|[._-])(?:example|sample|dist)(?:$|[._-])|\.(?:template|tpl)(?:$|\.)",
                      re.IGNORECASE)


def _kind(name: str) -> str | None:
    if name == "kubeconfig":
        return "yaml"  # kubectl's config (`--kubeconfig`, an Argo CD cluster's Secret)
    if name in _NAMED_KINDS:
        return _NAMED_KINDS[name]
    if "." not in name and not name.startswith(("Dockerfile", "Containerfile")):
        return None  # every other kind is told by a dot (a Secret's `password` key has none)
    name = _TEMPLATE_SUFFIX.sub("", name)
    lower = name.lower()
    if lower.endswith((".yaml", ".yml", ".kubeconfig")):
        return "yaml"
    if lower.endswith((".json", ".tfstate", ".tfstate.backup", ".dockerconfigjson",
                       ".dockercfg")):
        return "json"
    if name == ".env" or name.startswith(".env.") or lower.endswith(".env"):
        return "env"
    if lower.endswith(_CODE_EXT):
        return "code"
    if lower.endswith(".mk"):
        return "make"
    if lower.endswith(_INI_EXT) or name == ".pypirc":
        return "ini"
    if lower.endswith((".xml", ".config")):
        return "xml"  # Maven's settings.xml, NuGet.config, web.config, tomcat-users.xml
    if lower.endswith(_SHELL_EXT) or name.startswith(("Dockerfile", "Containerfile")) \
            or lower.endswith((".dockerfile", ".envrc")):
        return "shell"
    return None


# A kubeconfig's top-level lines (`kind: Config`, `apiVersion: v1`, `users:`).
_KUBECONFIG_LINES = (re.compile(r"^kind:[ \t]*+([\"']?+)Config\1[ \t]*+$", re.MULTILINE),
                     re.compile(r"^apiVersion:[ \t]*+([\"']?+)v1\1[ \t]*+$", re.MULTILINE),
                     re.compile(r"^users:", re.MULTILINE))


def _kind_of(src: SourceFile) -> str | None:
    """``_kind`` of a file's name, or for a name without an extension (``config``,
    ``prod-cluster``, a Secret's entry) what its text is: YAML for kubectl's config
    committed where kubectl keeps it (``.kube/config``) or with a kubeconfig's top-level
    lines, JSON for an object (Argo CD's cluster Secret's ``config``)."""
    kind = _kind(src.name)
    if kind is not None or "." in src.name:
        return kind
    if src.path == ".kube/config" or src.path.endswith("/.kube/config"):
        return "yaml"
    if "Config" in src.text and all(line.search(src.text) for line in _KUBECONFIG_LINES):
        return "yaml"
    # A whole object: a value that only begins with a brace is none (`{noop}...`, Spring's
    # password with its encoder's name).
    if _OBJECT_START.match(src.text) and src.text.rstrip().endswith("}"):
        return "json"
    return None


_OBJECT_START = re.compile(r"\s*+\{")


def _key_hits(src: SourceFile, kind: str, elsewhere: list[int] | None = None
              ) -> Iterator[tuple[int, Hit]]:
    """The key rule, line by line. ``elsewhere`` (YAML and JSON) collects the lines it
    cannot decide alone (``_value_elsewhere``)."""
    lines = src.lines
    backquoted = src.name.lower().endswith(_BACKQUOTED_EXT)
    # OpenSSL's and MySQL's option files begin a comment at `#` anywhere on a line
    # (`secret = # disable PBM`); in .properties, INI and TOML it is the value's.
    hash_comments = src.name.lower().endswith(".cnf")
    for number, line in enumerate(lines, 1):
        if not _has_secret_word(line):
            continue
        stripped = line.lstrip()
        if stripped.startswith(("#", "//", "--", ";", "/*", "*")) and kind != "json":
            continue
        pairs = list(_assignments(line, kind))
        if hash_comments:
            pairs = [_openssl_source(p) for p in pairs if not p[1].startswith("#")]
        entry = _YAML_NAME.match(line) if kind == "yaml" else None
        if entry is not None and key_is_secret(entry.group(2)):
            decided, at = _k8s_env_value(lines, number, len(entry.group(1)), entry.group(2))
            if at is not None:
                yield at[0], Hit(at[1], _env_message(entry.group(2)), 1)
            if not decided and elsewhere is not None:
                elsewhere.append(number)
        elif elsewhere is not None and _value_elsewhere(pairs, kind):
            elsewhere.append(number)
        for key, value, col in pairs:
            below = _quoted_below(lines, number, key, value, col, kind) \
                if kind in ("env", "shell") else None
            if below is not None:
                yield from below  # the whole value decides, not its first line's part
                continue
            whole = value.strip().strip("\"'")
            fallback = _FALLBACK_VALUE.fullmatch(whole) or (
                _PROPERTY_DEFAULT.fullmatch(whole) if kind in _PROPERTY_KINDS else None)
            if fallback is not None:
                # `${API_KEY:-sk-live-...}`: the default is what runs when the variable is
                # missing, a literal secret like any other.
                if (key_is_secret(key) or _secret_variable(fallback.group(1))) \
                        and is_literal(fallback.group(2)) \
                        and not _not_key_material(key, fallback.group(2), kind):
                    yield number, Hit(col, f"`{key}` falls back to a literal value "
                                           f"({REDACTED})", 1)
            elif (key_is_secret(key) and is_literal(value) and not _flow_collection(value, kind)
                  and not _not_key_material(key, value, kind)):
                yield number, Hit(col, f"`{key}` is assigned a literal value ({REDACTED})", 1)
        if kind in ("yaml", "shell", "env") and "${" in line:
            for var, literal, column, message in _defaults_within(line, pairs, kind):
                if is_literal(literal) and not _not_key_material(var, literal, kind):
                    yield number, Hit(column, message, 1)
        if kind == "code":
            for m in _PROPERTY_DEFAULT_STRING.finditer(line) if "${" in line else ():
                name, literal = m.group(3), m.group(4)
                if key_is_secret(name) and is_literal(literal) \
                        and not _not_key_material(name, literal, kind):
                    yield number, Hit(m.start(4) + 1, f"property `{name}` falls back to a "
                                                       f"literal value ({REDACTED})", 1)
            for var, literal, column in _env_defaults(line):
                if key_is_secret(var) and is_literal(literal) \
                        and not _not_key_material(var, literal, kind):
                    yield number, Hit(column, f"env var `{var}` falls back to a literal "
                                              f"value ({REDACTED})", 1)
        if kind in ("code", "ini"):  # TOML has triple quotes too
            for key, value, column in _strings_below(lines, number, backquoted):
                if key_is_secret(key) and is_literal(value) \
                        and not _not_key_material(key, value, kind):
                    # The value is not on its line: it is the fingerprint, with the line.
                    yield number, Hit(column, f"`{key}` is assigned a literal value "
                                              f"({REDACTED})", 1, f"{line}\n{value}")
        if kind == "code":
            continued = _value_below(lines, number, src.name.endswith((".py", ".pyi")))
            if continued is not None:
                key, value, at, fingerprint = continued
                if key_is_secret(key) and is_literal(value) \
                        and not _not_key_material(key, value, kind):
                    yield at[0], Hit(at[1], f"`{key}` is assigned a literal value "
                                            f"({REDACTED})", 1, fingerprint)


# A PEM private key's first line, of any kind (`ENCRYPTED`, `OPENSSH`, PGP's `BLOCK`).
_PEM_PRIVATE_KEY = re.compile(r"-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?+-----")


def _quoted_below(lines: list[str], number: int, key: str, value: str, column: int,
                  kind: str) -> list[tuple[int, Hit]] | None:
    """An env file's (or a script's) quoted value that goes on below its line, as dotenv
    and the shell read it (`KEY="` over its lines and the closing quote), read whole: a
    PEM private key in it is a finding whatever the key is called, at its BEGIN line
    (where the format detectors' is when they know its kind); else the value is the
    key's, at the key's line. None for a value on its line, or not closed within
    ``_MAX_STRING_LINES`` (its first line's part is the key's value then)."""
    quote = value[:1]
    if quote not in ('"', "'", "`") or _closing_quote(value, 1, quote) >= 0:
        return None
    parts = [value[1:]]
    closed = False
    for below in lines[number:number + _MAX_STRING_LINES]:
        end = _closing_quote(below, 0, quote)
        parts.append(below if end < 0 else below[:end])
        if end >= 0:
            closed = True
            break
    for offset, part in enumerate(parts):
        pem = _PEM_PRIVATE_KEY.search(part)
        if pem is not None:
            at = column + 1 + pem.start() if offset == 0 else pem.start() + 1
            return [(number + offset, Hit(at, f"`{key}` holds a private key ({REDACTED})", 1,
                                          "\n".join(lines[number - 1:number + len(parts)])))]
    if not closed:
        return None
    text = "\n".join(parts).strip()
    if key_is_secret(key) and is_literal(text) and not _not_key_material(key, text, kind):
        return [(number, Hit(column, f"`{key}` is assigned a literal value ({REDACTED})", 1,
                             f"{lines[number - 1]}\n{text}"))]
    return []


def _closing_quote(text: str, start: int, quote: str) -> int:
    """Where ``quote`` closes a string in ``text`` from ``start`` (a double quote or a
    backquote escaped with a backslash does not), or -1."""
    at = text.find(quote, start)
    while at > 0 and quote != "'" and text[at - 1] == "\\":
        at = text.find(quote, at + 1)
    return at


# A GitHub Actions expression, `${{ ... }}`; in it, a string literal (quoted with `'`, a
# quote doubled) that an operand falls back to, `secrets.API_TOKEN || '...'`, or that is
# the whole expression, `${{ '...' }}`.
_EXPRESSION = re.compile(r"\$\{\{((?:[^}$]|\}(?!\})|\$(?!\{\{))*+)\}\}")
_EXPRESSION_OR = re.compile(r"([A-Za-z_][\w.-]*+)\s*+\|\|\s*+'((?:[^']|'')*+)'")
_EXPRESSION_LITERAL = re.compile(r"\s*+'((?:[^']|'')*+)'\s*+")
# A string literal an expression may give as its value: an operand of `&&` or `||` that
# no comparison follows (GitHub's conditional, `cond && '...' || '...'`), and an argument
# of `format()` after its format string.
_EXPRESSION_RESULT = re.compile(
    r"(?:&&|\|\||\bformat\(\s*+'(?:[^']|'')*+'\s*+(?:,\s*+'(?:[^']|'')*+'\s*+)*?,)\s*+"
    r"'((?:[^']|'')*+)'(?!\s*+[=!<>])")
# The shell's fallback within a line. Neither pattern reads past where another would
# begin (a `$`): reading on, each would try the rest of the line from each `${` or `${{`
# that no brace closes, hours of work for a line of 40,000 of them.
_FALLBACK_WITHIN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*+):?+[-=]([^}$\n]*+)\}")


# The shell's working directories, whose names read as a password's abbreviation.
_SHELL_DIRECTORIES = frozenset({"PWD", "OLDPWD"})


def _secret_variable(name: str) -> bool:
    """Whether the variable a fallback (`${NAME:-...}`) reads holds a secret by its name:
    not the shell's ``PWD`` and ``OLDPWD``."""
    return name not in _SHELL_DIRECTORIES and key_is_secret(name)


def _defaults_within(line: str, pairs: list[tuple[str, str, int]], kind: str
                     ) -> Iterator[tuple[str, str, int, str]]:
    """The literal defaults a line's value falls back to where they are part of it: the
    shell's `${DB_PASSWORD:-...}` anywhere in a line (a CI step's `run:`, a command in a
    script), and in YAML and a shell script (a CI step's, which GitHub evaluates the
    expressions of before the shell runs it) a GitHub Actions expression's literal,
    `${{ secrets.X || '...' }}` (whatever `X` is called: it is a secret) or `${{ '...' }}`
    under a secret-like key: each as its name, the literal, its column and the finding's
    message. The whole value's fallback is the key rule's."""
    for m in _FALLBACK_WITHIN.finditer(line):
        if line[m.start() - 1:m.start()] != "$" and _secret_variable(m.group(1)):
            yield m.group(1), m.group(2), m.start(2) + 1, \
                f"`{m.group(1)}` falls back to a literal value ({REDACTED})"
    if kind not in ("yaml", "shell") or "${{" not in line:
        return
    keys = [key for key, _, _ in pairs if key_is_secret(key)]
    for expression in _EXPRESSION.finditer(line):
        inner, at = expression.group(1), expression.start(1)
        whole = _EXPRESSION_LITERAL.fullmatch(inner)
        if whole is not None and keys:
            yield keys[0], whole.group(1), at + whole.start(1) + 1, \
                f"`{keys[0]}` is assigned a literal value ({REDACTED})"
            continue
        given: set[int] = set()
        for m in _EXPRESSION_OR.finditer(inner):
            context, _, name = m.group(1).rpartition(".")
            if context == "secrets" or key_is_secret(name) or keys:
                shown = name if context == "secrets" or key_is_secret(name) else keys[0]
                given.add(m.start(2))
                yield shown, m.group(2), at + m.start(2) + 1, \
                    f"`{shown}` falls back to a literal value ({REDACTED})"
        for m in _EXPRESSION_RESULT.finditer(inner) if keys else ():
            if m.start(1) not in given:
                yield keys[0], m.group(1), at + m.start(1) + 1, \
                    f"`{keys[0]}` is assigned a literal value ({REDACTED})"


# A key assigned on a line that ends before its value: at `=` where a newline may follow
# it (JS, Go, Java, a Python dict's `"key":`), at an opening parenthesis (Python's
# `PASSWORD = (`) or at a backslash that continues the line.
_CODE_KEY_ENDS = re.compile(_CODE_KEY + r"(\(|\\)?+$")
_KEY_LINE_ENDS = ("=", ":", "(", "\\")
"""The characters a line ``_CODE_KEY_ENDS`` matches ends in, before its whitespace."""
# A key given a value in parentheses that begins on its line: `API_KEY = ("..."`.
_CODE_KEY_OPENS = re.compile(_CODE_KEY + r"\(")
_STRING_LITERAL = re.compile(_CODE_STRING)
# What may follow the string literals of a line of such a value: a backslash, the closing
# parenthesis (or the dict's brace, the list's bracket, the value its last item), the
# end of a statement or an item, a comment.
_AFTER_STRINGS = re.compile(r"[ \t]*+(\\)?+[ \t]*+([)}\]])?+[ \t]*+([;,])?+[ \t]*+(?:(?:#|//).*+)?+$")


def _value_below(lines: list[str], number: int, python: bool
                 ) -> tuple[str, str, tuple[int, int], str | None] | None:
    """A value of string literals that begins below the line of its key, ``number``
    (``PASSWORD = (`` over ``"abc"`` and ``)``, ``API_TOKEN = \\`` over ``"abc"``), or in
    parentheses on it (``API_KEY = ("abc"``, to its ``)`` there or below), the
    literals one after another joined as Python and C join them: the key, the value as one
    quoted string, the first literal's line and column, and what the baseline knows the
    finding by when the value is on more than the first literal's line. None when the
    value is anything else: an expression, an f-string with a field, a tuple. In Python a
    name and a colon after a keyword or a name end a block's first line, not a key's."""
    line = lines[number - 1]
    # The pattern, led by no literal, is tried at every place of the line: a line ending
    # in none of its last characters is not searched.
    m = _CODE_KEY_ENDS.search(line) if line.rstrip().endswith(_KEY_LINE_ENDS) else None
    if m is not None:
        opened, start = m.group(2) == "(", len(line)
        before = line[:m.start(1)].rstrip()
        if python and m.group(2) is None and line.rstrip().endswith(":") \
                and line[m.end(1):m.end(1) + 1] not in ("'", '"') \
                and before and not before.endswith(("{", ",")):
            # `class Password:`, `if token:`: a block, not a dict's key, which begins its
            # line or follows the dict's brace or another item (`AUTH_TOKEN:`)
            return None
        if python and line[:m.start()].rstrip().endswith("->"):
            return None  # `def f() -> "PrivateKey":`: a return annotation, not a key
    else:
        m = _CODE_KEY_OPENS.search(line) if "(" in line else None
        if m is None:
            return None
        opened, start = True, m.end()
    parts: list[str] = []
    first: tuple[int, int] | None = None
    last = number
    for index in range(number - 1, min(number + _MAX_STRING_LINES, len(lines))):
        below = lines[index]
        at = start if index == number - 1 else len(below) - len(below.lstrip())
        strings = 0
        while (string := _STRING_LITERAL.match(below, at)) is not None:
            literal = _code_string(string.group(1))
            if literal is None:
                return None
            parts.append(literal[1:-1])
            first = first or (index + 1, at + 1)
            strings += 1
            at = string.end()
            at += len(below) - at - len(below[at:].lstrip(" \t"))
        after = _AFTER_STRINGS.match(below, at)
        if after is None:
            return None  # an expression
        continued, closed, separator = after.groups()
        if not strings and not closed:
            if at == len(below) or below[at:].lstrip().startswith(("#", "//")):
                continue  # a blank line or a comment within the value
            return None
        last = index + 1
        if opened and separator == "," and not closed:
            return None  # a tuple
        if closed or not (opened or continued):
            break
    else:
        return None
    if first is None:
        return None
    value = "".join(parts)
    return (m.group(1).rsplit(".", 1)[-1], f'"{value}"', first,
            f"{lines[first[0] - 1]}\n{value}" if last > first[0] else None)


def _strings_below(lines: list[str], number: int, backquoted: bool
                   ) -> Iterator[tuple[str, str, int]]:
    """A string assigned on line ``number`` that goes on below it, read to its end
    within ``_MAX_STRING_LINES``: the key, the string as one quoted value, stripped, and
    its column. Nothing for an f-string with a field (an expression; a template
    literal's `${...}` is a reference to ``is_literal``), a raw string in regular
    expression syntax, a string an expression goes on from, or text of more than one
    word (prose, or a PEM block, which the format detectors read)."""
    line = lines[number - 1]
    if not any(opener in line for opener in ('"""', "'''", '@"', '#"')) \
            and not (backquoted and "`" in line):
        return
    for pattern in _CODE_KV_BELOW:
        m = pattern.search(line)
        if m is None:
            continue
        opener, rest = m.group(2), m.group(3)
        quote = '"#' if opener.endswith('#"') else opener.lstrip("rRbBuUfF$@")
        if quote in rest or (quote == "`" and not backquoted):
            continue  # closed on its line: the line rule's
        parts = [rest]
        after: str | None = None
        for below in lines[number:number + _MAX_STRING_LINES]:
            end = below.find(quote)
            if end >= 0:
                parts.append(below[:end])
                after = below[end + len(quote):]
                break
            parts.append(below)
        text = "\n".join(parts)
        if after is None or _JOINED.match(after) or len(text.split()) != 1:
            continue
        literal = _code_string(opener + text.strip() + quote)
        if literal is not None:
            yield m.group(1).rsplit(".", 1)[-1], literal, m.start(2) + 1


# A Python name's value that opens a collection: a tuple, a list, a set or a dict.
_PY_COLLECTION = re.compile(_CODE_KEY + r"[(\[{]")
# The last words that name several secrets of the kind their singular names one.
_SECRET_PLURALS = frozenset({"passwords", "passwds", "pwds", "passphrases", "secrets",
                             "tokens", "keys"})


_FALLBACK_LAST = frozenset({"fallback", "fallbacks"})


def _names_secrets(key: str) -> bool:
    """Whether a name says its collection holds secrets: a secret-like name whose last
    word is the secret's (``DB_PASSWORD``, ``auth``, ``SECRET_KEY``), or its plural
    (``PASSWORDS``, ``api_keys``); not a name of what is done with them
    (``PASSWORD_HASHERS``, ``TOKEN_TYPES``), whose collection lists classes or kinds."""
    words = _words(key)
    if len(words) > 1 and words[-1] in _FALLBACK_LAST:
        words.pop()  # Django's `SECRET_KEY_FALLBACKS`: old keys, each the key it follows
        key = "_".join(words)
    if not words:
        return False
    if words[-1] in _SECRET_PLURALS:
        key = key.rstrip("0123456789")[:-1]
        words[-1] = words[-1][:-1]
    # `pass` names an outcome beside `fail` as often (a test's table of cases).
    return key_is_secret(key) and words[-1] != "pass" and (
        words[-1] in _SECRET_FLAG_LAST or words[-1].endswith(_SECRET_ENDINGS))


def _collection_hits(src: SourceFile) -> Iterator[tuple[int, Hit]]:
    """Python's string literals in a tuple, a list, a set or a dict's values (and in such
    collections within them) under a secret-like name or its plural (``PASSWORDS = (...)``,
    ``API_KEYS = [...]``, ``auth=("user", "...")``, ``{"password": ("...", "...")}``), each
    at its line. A string that reads as a name (``_reads_as_name``) is not key material
    in a collection, which lists names more often than secrets; an expression, an
    f-string with a field and a mapping within a mapping are not literals (a mapping's own
    keys are the key rule's). The file is read as Python parses it, once, and only when a
    line opens a collection under such a name; a file Python cannot parse has the line
    rule's findings only."""
    if not any(_has_secret_word(line) and _opens_a_secret_collection(line) for line in src.lines):
        return
    try:
        tree = ast.parse(src.text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return
    for name, value in _named_values(tree):
        if not isinstance(value, (ast.Tuple, ast.List, ast.Set, ast.Dict)) \
                or not _names_secrets(name):
            continue
        for node, text in _collection_values(value):
            if node.lineno > len(src.lines) or not _collection_secret(name, text):
                continue
            # ast counts a line's columns in UTF-8 bytes.
            line = src.lines[node.lineno - 1]
            column = len(line.encode()[:node.col_offset].decode(errors="replace")) + 1
            yield node.lineno, Hit(column, f"`{name}` holds a literal value ({REDACTED})", 1)


def _collection_secret(name: str, text: str) -> bool:
    """Whether a string of a collection under a name that says it holds secrets
    (``_names_secrets``) is one: one word (words apart are prose or code, not key
    material, as in a YAML value), a literal, and not a name (``_reads_as_name``) unless
    the name is a password's (``_names_passwords``)."""
    return len(text.split()) == 1 and is_literal(text) \
        and (not _reads_as_name(text) or _names_passwords(name)) \
        and not _not_key_material(name, text, "code")


_PASSWORD_LAST = frozenset({"password", "passwd", "pwd", "passphrase", "passwords",
                            "passwds", "pwds", "passphrases"})
# What a blocklist of passwords a service refuses is called (`COMMON_PASSWORDS`).
_REFUSED_FIRST = frozenset({"common", "weak", "banned", "forbidden", "blocked", "blocklisted",
                            "blacklisted", "denied", "disallowed", "rejected", "leaked",
                            "breached", "compromised", "pwned", "bad", "invalid", "insecure"})


def _names_passwords(name: str) -> bool:
    """Whether a collection's name says it holds passwords (``PASSWORDS``,
    ``db_passwords``, ``ADMIN_PASSWORD_FALLBACKS``), whose one word is a password
    whatever it looks like (``hunter2``, ``letmein``): as the key rule judges
    ``password = "letmein"``, and as detect-secrets' keyword plugin does, by the name.
    Words that read as names are names under a name of secrets, tokens or keys
    (``SECRETS = ["db-credentials"]``), and a blocklist's name (``COMMON_PASSWORDS``)
    lists passwords to refuse."""
    words = _words(name)
    if len(words) > 1 and words[-1] in _FALLBACK_LAST:
        words.pop()
    return bool(words) and words[-1] in _PASSWORD_LAST \
        and not any(word in _REFUSED_FIRST for word in words)


# JS's and TS's arrays (and JSON5's, which is JS's object syntax): `const API_KEYS = [`,
# an object's `tokens: [`, a typed `const KEYS: string[] = [`.
_JS_ARRAY_EXT = (".js", ".mjs", ".cjs", ".jsx", ".ts", ".mts", ".cts", ".tsx", ".vue",
                 ".svelte", ".json5")
_JS_ARRAY = re.compile(_CODE_KEY + r"\[")
_MAX_ARRAY_LINES = 50
"""How far below its line an array is read: one of more lines than that is data."""
# A mark escaped in a JS string is the mark (`'\''` is a quote, as `'!'` is a `!`).
_JS_ESCAPED_MARK = re.compile(r"\\([^\w\s])")


def _array_hits(src: SourceFile) -> Iterator[tuple[int, Hit]]:
    """The strings of a JS or TS array of string literals alone (and of arrays within
    it) under a secret-like name or its plural, each at its line, judged as Python's
    collections' are (``_collection_secret``). An array holding anything else (an
    expression, an object, a template literal with a field) is a record, not secrets."""
    if "[" not in src.text:
        return
    lines = src.lines
    for number, line in enumerate(lines, 1):
        if "[" not in line or not _has_secret_word(line) \
                or line.lstrip().startswith(("//", "/*", "*")):
            continue
        at = 0
        # Each search from the last one's bracket, which may be the next key's start.
        while (m := _JS_ARRAY.search(line, at)) is not None:
            at = m.end() - 1
            name = m.group(1).rsplit(".", 1)[-1]
            if not _names_secrets(name):
                continue
            for item, column, literal in _array_strings(lines, number, m.end()) or ():
                if _collection_secret(name, _JS_ESCAPED_MARK.sub(r"\1", literal[1:-1])):
                    yield item, Hit(column, f"`{name}` holds a literal value ({REDACTED})", 1)


def _array_strings(lines: list[str], number: int, start: int
                   ) -> list[tuple[int, int, str]] | None:
    """The string literals of the array that opens before ``start`` of line ``number``,
    each as its line, its column and the literal (``_code_string``); None when the
    array holds anything but strings, arrays of them, commas and comments, or does not
    close within ``_MAX_ARRAY_LINES``."""
    strings: list[tuple[int, int, str]] = []
    depth = 1
    for index in range(number - 1, min(number - 1 + _MAX_ARRAY_LINES, len(lines))):
        line = lines[index]
        at = start if index == number - 1 else 0
        while at < len(line):
            char = line[at]
            if char in " \t,":
                at += 1
            elif line.startswith("//", at):
                break
            elif line.startswith("/*", at):
                end = line.find("*/", at + 2)
                if end < 0:
                    return None
                at = end + 2
            elif char in "[]":
                depth += 1 if char == "[" else -1
                if depth == 0:
                    return strings
                at += 1
            else:
                string = _STRING_LITERAL.match(line, at)
                literal = _code_string(string.group(1)) if string is not None else None
                if string is None or literal is None:
                    return None
                strings.append((index + 1, at + 1, literal))
                at = string.end()
    return None


def _opens_a_secret_collection(line: str) -> bool:
    """Whether a line of Python gives a collection to a secret-like name or its plural."""
    if "(" not in line and "[" not in line and "{" not in line:
        return False
    at = 0
    # Each search from the last one's bracket, which may be the next key's start.
    while (m := _PY_COLLECTION.search(line, at)) is not None:
        if _names_secrets(m.group(1).rsplit(".", 1)[-1]):
            return True
        at = m.end() - 1
    return False


def _reads_as_name(value: str) -> bool:
    """Whether a string reads as a name or a number, not key material: words in one case
    (``db-password``, ``NUMBER``, ``qwerty``), words each perhaps with a few digits
    after it, as a mechanism's (``amd64``, ``x86_64``, ``Password1``), or digits
    (``123456``)."""
    return value.isdigit() or ((value.islower() or value.isupper())
                               and _names_a_key(value.lower())) \
        or (len(value) <= 32 and bool(_MECHANISM.fullmatch(value)))


def _named_values(tree: ast.AST) -> Iterator[tuple[str, ast.expr]]:
    """Each value a Python module gives a name: assigned (``X = ``, ``x.y = ``,
    ``x["y"] = ``, annotated or not), as a keyword argument, and under a dict's key (a
    string or a name)."""
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        elif isinstance(node, ast.keyword) and node.arg is not None:
            yield node.arg, node.value
        elif isinstance(node, ast.Dict):
            for key, item in zip(node.keys, node.values, strict=True):
                name = _name_of(key) if key is not None else None
                if name is not None:
                    yield name, item
        for target in targets:
            name = _name_of(target)
            if name is not None:
                yield name, value


def _name_of(node: ast.expr) -> str | None:
    """The name an expression stands for as a target or a key: a name's, an attribute's,
    a string's, a subscript's string."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Subscript):
        return _name_of(node.slice) if isinstance(node.slice, ast.Constant) else None
    return None


def _collection_values(node: ast.expr) -> Iterator[tuple[ast.Constant, str]]:
    """The string literals of a tuple, a list or a set of string literals alone, and of a
    dict's values, and of such collections within them, each with its text. A
    collection holding anything else is a record (a lexer's `(r"...", Name)`), not
    secrets; a dict's value under a key that names what it is about a secret (`"type"`,
    `"description"`, `"$ref"`: a schema's, a setting's) is not one."""
    if isinstance(node, ast.Dict):
        items = [item for key, item in zip(node.keys, node.values, strict=True)
                 if not _about_a_secret(_words(_name_of(key) or "") if key is not None else [])]
    elif isinstance(node, (ast.Tuple, ast.List, ast.Set)) and all(map(_of_strings, node.elts)):
        items = node.elts
    else:
        return
    for item in items:
        if isinstance(item, ast.Constant) and isinstance(item.value, str):
            yield item, item.value
        elif isinstance(item, ast.Constant) and isinstance(item.value, bytes):
            yield item, item.value.decode(errors="replace")
        elif isinstance(item, (ast.Tuple, ast.List, ast.Set)):
            yield from _collection_values(item)


def _of_strings(node: ast.expr) -> bool:
    """Whether ``node`` is a string literal, or a tuple, a list or a set of them alone."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, (str, bytes))
    return isinstance(node, (ast.Tuple, ast.List, ast.Set)) and all(map(_of_strings, node.elts))


def _env_defaults(line: str) -> Iterator[tuple[str, str, int]]:
    """The environment variables a line of code reads with a string literal as their
    default: each variable's name, the literal and its column."""
    for m in _GETENV_DEFAULT.finditer(line):
        yield m.group(1), m.group(2), m.start(2) + 1
    if "env" not in line.lower():
        return
    for m in _JS_ENV_DEFAULT.finditer(line):
        yield m.group(1) or m.group(2), m.group(3), m.start(3) + 1
    for m in _ENV_OR.finditer(line):
        literal = _code_string(m.group(3))
        if literal is not None:
            yield m.group(1) or m.group(2), literal, m.start(3) + 1


# What a line of YAML or JSON can hold that the line rule does not read, so that the file
# is read by a YAML parser as well: a secret-like key's value on a later line (a block or
# folded scalar, a value below its key) or behind an anchor or alias, a flow collection, a
# complex key (`? key`), an escape in a quoted key (`"p\u0061ssword"` has no secret word
# to find).
_LATER_VALUES = frozenset({"", "|", ">", "|-", ">-", "|+", ">+"})
_QUOTED_KEY_ESCAPE = re.compile(r"""["'][^"'\n\\]*+\\[^"'\n]*+["']\s*:""")
_FLOW_KEY = re.compile(r"""[{\[,]\s*["']?([^\s"',:{}\[\]]+)["']?\s*:""")
_COMPLEX_KEY = re.compile(r"^\s*(?:-\s+)?\?(?:\s|$)", re.MULTILINE)


def _flow_collection(value: str, kind: str) -> bool:
    """A YAML flow mapping or sequence (``{algorithm: ECDSA, size: 256}``): not one value
    but several, which the parser reads (``_value_elsewhere``)."""
    return kind == "yaml" and value.startswith(("{", "["))


def _value_elsewhere(pairs: list[tuple[str, str, int]], kind: str) -> bool:
    """Whether a YAML or JSON line with a secret word may set a secret-like key in a way
    only a parser sees: no key and value the line rule reads, a secret-like key whose
    value is on a later line, behind an anchor or alias or in a flow collection, a flow
    collection with a secret-like key, or the secret-like ``name`` of an env entry whose
    ``value`` the line rule does not read (ECS's JSON, ``value:`` before ``name:``)."""
    if not pairs:
        return True
    for key, value, _ in pairs:
        if key == "name" and key_is_secret(value.strip("\"'")):
            return True
        if value.startswith(("{", "[")) and any(map(key_is_secret, _FLOW_KEY.findall(value))):
            return True
        if key_is_secret(key) and ((kind == "yaml" and value in _LATER_VALUES)
                                   or value.startswith(("*", "&"))
                                   or _flow_collection(value, kind)):
            return True
    return False


def _keys_only_a_parser_reads(text: str) -> bool:
    """A quoted key with an escape or a complex key (``? key``): the line rule's secret
    words may not be written out in the text at all."""
    return bool(_QUOTED_KEY_ESCAPE.search(text) or ("?" in text and _COMPLEX_KEY.search(text)))


@dataclass
class _Open:
    """A collection the YAML parser is inside."""

    mapping: bool
    key: str | None = None
    """A mapping's: the key its next value is under; a sequence's: the key it is the value
    of, which its items are under (None: no plain string key)."""
    at_key: bool = True
    """A mapping's: whether its next node is a key."""
    env_name: str | None = None
    env_value: tuple[str, Any] | None = None
    """A mapping's ``name`` and ``value`` (with its event), read as an env entry:
    Kubernetes' ``env`` and ECS's ``environment`` list ``{name: ..., value: ...}`` in any
    order."""
    under: str | None = None
    """A mapping's: the key it is the value of (None: no plain string key)."""


def _parsed_hits(src: SourceFile, kind: str) -> Iterator[tuple[int, Hit]]:
    """The key rule over what a YAML parser reads from ``src`` (JSON is YAML): each
    scalar or alias under a secret-like key (an item of a block sequence there included),
    wherever its value is written. A file that is not YAML (a Helm template) has the line
    rule's findings only."""
    import yaml

    def secret_value(key: str, value: str) -> bool:
        # Words apart are prose (`private_key: |` over "see vault"), not key material,
        # unless they are an htpasswd file's logins; a key block in PEM is the format
        # detectors'.
        return (key_is_secret(key) and (len(value.split()) == 1 or _htpasswd_logins(value))
                and is_literal(value) and not _not_key_material(key, value, kind))

    def hit(event: Any, value: str, message: str) -> tuple[int, Hit]:
        """A finding at the value's event; a value not all on that line (a block, folded
        or multi-line scalar, an alias's anchored value) is its fingerprint, with the line,
        so that an edited secret is not the baseline's accepted one."""
        # Lines as the file's readers count them (src.position), not as YAML does: it
        # also breaks at U+2028, which would move a finding onto another line.
        number, column = src.position(event.start_mark.index)
        last, _ = src.position(event.end_mark.index)
        elsewhere = isinstance(event, yaml.AliasEvent) or last > number
        line = src.lines[number - 1] if number <= len(src.lines) else ""
        return number, Hit(column, message, 1, f"{line}\n{value}" if elsewhere else None)

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    anchors: dict[str, str | None] = {}
    stack: list[_Open] = []
    try:
        for event in yaml.parse(src.text, Loader=loader):
            if isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                done = stack.pop()
                if done.env_name is not None and done.env_value is not None \
                        and secret_value(done.env_name, done.env_value[0]):
                    yield hit(done.env_value[1], done.env_value[0], _env_message(done.env_name))
                continue
            if not isinstance(event, yaml.NodeEvent):
                continue
            value: str | None = None
            if isinstance(event, yaml.ScalarEvent):
                # A tagged scalar (`!vault ...`) is a reference by convention, not a value.
                value = event.value if event.tag in (None, "!", _STR_TAG) else None
            elif isinstance(event, yaml.AliasEvent):
                value = anchors.get(event.anchor or "")
            if event.anchor is not None and not isinstance(event, yaml.AliasEvent):
                anchors[event.anchor] = value
            top = stack[-1] if stack else None
            under: str | None = None  # the key this node is the value (or an item) of
            if top is not None and top.mapping:
                if top.at_key:
                    top.key = value if isinstance(event, yaml.ScalarEvent) else None
                else:
                    under = top.key
                    if under == "name":
                        top.env_name = value
                    elif under == "value" and value is not None:
                        top.env_value = (value, event)
                top.at_key = not top.at_key
            elif top is not None:
                under = top.key
            if under is not None and value is not None and secret_value(under, value):
                yield hit(event, value, f"`{printable(under)}` is assigned a literal value "
                                        f"({REDACTED})")
            elif under in _VALUE_KEYS and value is not None and top is not None \
                    and top.under is not None and secret_value(top.under, value):
                # GitLab's `DB_PASSWORD: {value: ..., description: ...}`, a GitHub
                # workflow input's `api_token: {default: ...}`: the key's value.
                yield hit(event, value, f"`{printable(top.under)}` is assigned a literal "
                                        f"value ({REDACTED})")
            if isinstance(event, yaml.MappingStartEvent):
                stack.append(_Open(mapping=True, under=under))
            elif isinstance(event, yaml.SequenceStartEvent):
                # `[redacted]` is a placeholder in any file kind, not a list of one value.
                stack.append(_Open(mapping=False, key=None if event.flow_style else under))
    except yaml.YAMLError:
        return


_STR_TAG = "tag:yaml.org,2002:str"
# The keys of a mapping that hold the value of the key the mapping is under.
_VALUE_KEYS = frozenset({"value", "default"})


# Terraform's (and Packer's) `variable "db_password" { default = "..." }`: the default is
# what runs when no value is passed, a literal like any other.
_HCL_VARIABLE = re.compile(r'^\s*+variable\s++"([^"\n]++)"\s*+\{')
_HCL_DEFAULT = re.compile(r'(?:^|[\s{;])default\s*+=\s*+("(?:[^"\\\n]|\\.)*+")')
# What does not count in the braces of a block: strings and comments.
_HCL_NOT_CODE = re.compile(r'"(?:[^"\\\n]|\\.)*+"|(?:#|//).*+')


def _variable_default_hits(src: SourceFile) -> Iterator[tuple[int, Hit]]:
    """The literal ``default`` of a variable block with a secret-like name, at its line."""
    if "variable" not in src.text or "default" not in src.text:
        return
    name: str | None = None
    depth = 0
    for number, line in enumerate(src.lines, 1):
        start = 0
        if name is None:
            m = _HCL_VARIABLE.match(line)
            if m is None or not key_is_secret(m.group(1)):
                continue
            name, depth, start = m.group(1), 1, m.end()
        for default in _HCL_DEFAULT.finditer(line, start):
            before = _HCL_NOT_CODE.sub("", line[start:default.start()])
            value = default.group(1)
            if depth + before.count("{") - before.count("}") == 1 and is_literal(value) \
                    and not _not_key_material(name, value, "code"):
                yield number, Hit(default.start(1) + 1, f"variable `{printable(name)}` defaults "
                                                         f"to a literal value ({REDACTED})", 1)
        code = _HCL_NOT_CODE.sub("", line[start:])
        depth += code.count("{") - code.count("}")
        if depth <= 0:
            name = None


def _connection_hits(src: SourceFile) -> Iterator[tuple[int, Hit]]:
    text = src.text
    # Plain substring tests first (`Password=`, `PWD=`, `://:`): most files have none.
    if not any(t in text for t in ("rd=", "RD=", "wd=", "WD=", "://:", "oracle:")) \
            or not _CONNECTION_TRIGGER.search(text):
        return
    for number, line in enumerate(src.lines, 1):
        if line.lstrip().startswith(("#", "//", "--", ";", "/*", "*")):
            continue
        m = _CONNECTION_PASSWORD.search(line) or _URL_PASSWORD_ONLY.search(line) \
            or _ORACLE_LOGIN.search(line)
        if m is not None and is_literal(m.group(1)):
            yield number, Hit(m.start(1) + 1, f"a password in a connection string or URL "
                                               f"({REDACTED})", 1)


# A command line's words: quotes, commas and brackets apart (a compose `command:` or a
# JSON array lists them one string each).
_COMMAND_WORD = re.compile(r"""[^\s"',\[\]]++""")
_LONG_FLAG = re.compile(r"--([A-Za-z][\w-]*+)(?:=(.*+))?+")
# A word an option's value cannot be: another option, a metavariable (`--token TOKEN`).
_NOT_AN_OPTION_VALUE = re.compile(r"-.*|[A-Z][A-Z0-9_]*+")
_SECRET_FLAG_LAST = _SECRET_TOKENS | _CREDENTIAL_LAST | {"key"}
# An option's first word that makes it a switch: `adduser --disabled-password NAME`,
# `--no-password`, `--without-password`, `--skip-password` take no password.
_SWITCH_FLAG_FIRST = frozenset({"disabled", "disable", "no", "without", "skip"})
# Short options that take a password, by the command they belong to: `docker login -p`,
# `sshpass -p`, `redis-cli -a`, and `mysql -p<password>` written as one word.
_SHORT_PASSWORD_FLAGS = {"login": "-p", "sshpass": "-p", "redis-cli": "-a"}
_MYSQL = frozenset({"mysql", "mysqldump", "mysqladmin", "mariadb"})
_HELM_SET_VALUE = re.compile(r"""[^\s"'\]]++""")
# OpenSSL's options that take a password source: `pass:<password>` is the password
# itself (`env:VAR`, `file:path`, `fd:N` and `stdin` say where it is).
_OPENSSL_PASSWORD_FLAGS = frozenset({"-passin", "-passout", "-pass"})
_OPENSSL_SOURCES = re.compile(r"(?:env|file|fd):\S|stdin$")
# Demo credentials their publisher ships for anyone to use, no repository's secret:
# the Insta Demo CA's shared secret, in OpenSSL's own openssl.cnf (Debian's
# /etc/ssl/openssl.cnf: `secret = pass:insta`), which OpenSSL's CMP docs publish.
_PUBLISHED_DEMO_PASSWORDS = frozenset({"insta"})


def _openssl_source(pair: tuple[str, str, int]) -> tuple[str, str, int]:
    """An OpenSSL config's password source (`secret = pass:...`, as its options take
    one) read as what it is: `pass:`'s password, and a source elsewhere (`env:VAR`,
    `file:path`) or a published demo password as no value."""
    key, value, column = pair
    if _OPENSSL_SOURCES.match(value):
        return key, "", column
    if value.startswith("pass:"):
        password = value[5:]
        return key, "" if password in _PUBLISHED_DEMO_PASSWORDS else password, column + 5
    return pair
# keytool's options that take a password (`-storepass:env VAR` and `:file` say where it is).
_KEYTOOL_PASSWORD_FLAGS = frozenset({"-storepass", "-keypass", "-srcstorepass",
                                     "-deststorepass", "-srckeypass", "-destkeypass", "-new"})
# Samba's clients take `-U user%password`.
_SAMBA = frozenset({"smbclient", "rpcclient"})
# What a line with any of the above has: most lines and files have none.
_COMMAND_TRIGGERS = ("--", "login", "curl", "sshpass", "redis-cli", "mysql", "mariadb",
                     "openssl", "keytool", "htpasswd", "smbclient", "rpcclient", "configure")


def _command_line_hits(src: SourceFile, kind: str) -> Iterator[tuple[int, Hit]]:
    """A credential given as a command's option: `--password=...`, `--api-key ...` (any
    option whose last word is secret-like), `docker login -p ...`, `curl -u user:...`,
    `sshpass -p`, `redis-cli -a`, `mysql -p...`, Helm's `--set auth.password=...`, in
    shell scripts, YAML (CI steps, compose commands, container args) and JSON; and in
    shell scripts a secret-like `KEY=value` word (``_given_pair``). In code
    only `--option=...` within one string counts: `add_argument("--password", help=...)`
    declares an option, it passes none."""
    # A YAML or JSON value is no command line but where a script is (_ci_script_hits):
    # `name: set API_TOKEN=...` describes one.
    pairs = kind in ("shell", "make") and "=" in src.text
    if not pairs and not any(trigger in src.text for trigger in _COMMAND_TRIGGERS):
        return
    for number, line in enumerate(src.lines, 1):
        if not (any(trigger in line for trigger in _COMMAND_TRIGGERS)
                or (pairs and "=" in line and _has_secret_word(line))) \
                or line.lstrip().startswith(("#", "//", "/*", "*")):
            continue
        words = [(m.group(), m.start()) for m in _COMMAND_WORD.finditer(line)]
        names = {word.rsplit("/", 1)[-1] for word, _ in words}
        for i, (word, at) in enumerate(words):
            following = words[i + 1] if i + 1 < len(words) else None
            value: tuple[str, int] | None = None
            flag = _LONG_FLAG.fullmatch(word)
            name = flag.group(1) if flag is not None else "password"
            if flag is not None and key_is_secret(name) and _words(name)[-1] in _SECRET_FLAG_LAST \
                    and _words(name)[0] not in _SWITCH_FLAG_FIRST:
                if flag.group(2) is not None:
                    value = (flag.group(2), at + flag.start(2))
                elif kind != "code" and following is not None \
                        and not _NOT_AN_OPTION_VALUE.fullmatch(following[0]):
                    value = following
            elif kind == "code":
                continue
            elif flag is not None and name in ("set", "set-string"):
                # Helm's `--set a.b=x,auth.password=y`: a value of a secret-like last key.
                start = at + flag.start(2) if flag.group(2) is not None else \
                    following[1] if following is not None else len(line)
                # The pairs run on past the commas a command word stops at.
                given = _HELM_SET_VALUE.match(line, start)
                offset = start
                for pair in given.group().split(",") if given is not None else ():
                    key, equals, assigned = pair.partition("=")
                    if equals and key_is_secret(key.rsplit(".", 1)[-1]):
                        name, value = key.rsplit(".", 1)[-1], (assigned, offset + len(key) + 1)
                        break
                    offset += len(pair) + 1
            elif word in ("-u", "--user") and "curl" in names and following is not None \
                    and ":" in following[0]:
                user, _, password = following[0].partition(":")
                name, value = "password", (password, following[1] + len(user) + 1)
            elif following is not None and any(
                    word == short and command in names
                    for command, short in _SHORT_PASSWORD_FLAGS.items()):
                value = following
            elif word.startswith("-p") and len(word) > 2 and names & _MYSQL:
                value = (word[2:], at + 2)
            elif word in _OPENSSL_PASSWORD_FLAGS and "openssl" in names \
                    and following is not None and following[0].startswith("pass:"):
                value = (following[0][5:], following[1] + 5)
            elif word == "-k" and "openssl" in names and following is not None:
                value = following  # `openssl enc -k <password>`
            elif word in _KEYTOOL_PASSWORD_FLAGS and "keytool" in names and following is not None:
                value = following
            elif word == "-U" and names & _SAMBA and following is not None \
                    and "%" in following[0]:
                user, _, password = following[0].partition("%")
                value = (password, following[1] + len(user) + 1)
            elif (word == "passwd" and "openssl" in names) or word == "htpasswd":
                value = _password_argument(words[i + 1:], word == "htpasswd")
            elif word in ("--body", "-b") and {"gh", "secret"} <= names and following is not None:
                value = following  # `gh secret set NAME --body ...`
            elif i and words[i - 1][0] == "set" and "configure" in names and key_is_secret(word) \
                    and following is not None:
                name, value = word, following  # `aws configure set aws_secret_access_key ...`
            elif "=" in word and name != "from-file" \
                    and (not i or words[i - 1][0] != "--from-file"):
                # `kubectl create secret --from-file=KEY=path` names a file the key is read from.
                assigned_pair = _given_pair(line, word, at, flag)
                if assigned_pair is not None:
                    name, value = assigned_pair[0], assigned_pair[1:]
            if value is not None and is_literal(value[0]) \
                    and not _not_key_material(name, value[0], "shell"):
                yield number, Hit(value[1] + 1, f"a credential on a command line "
                                                f"({REDACTED})", 1)
                break


# A secret-like `KEY=value` a command is given: a variable (`docker run -e KEY=...`,
# `env KEY=...`, `terraform -var KEY=...`) or a key (`vault kv put path KEY=...`,
# `kubectl create secret --from-literal=KEY=...`); not a comparison (`KEY==...`).
_KEY_VALUE_WORD = re.compile(r"([A-Za-z_][\w.-]*+)=(?!=)")


def _given_pair(line: str, word: str, at: int, flag: re.Match[str] | None
                ) -> tuple[str, str, int] | None:
    """The secret-like key, its value and the value's column (0-based) of a `KEY=value`
    word of a command line that starts at ``at``, or of an option's value that is one
    (``--from-literal=KEY=...``, ``flag``); a value in quotes is the quoted text. None
    for any other word, and for a value a command makes (`` `...` ``)."""
    text, offset = (flag.group(2), at + flag.start(2)) if flag is not None \
        and flag.group(2) is not None else (word, at)
    m = _KEY_VALUE_WORD.match(text)
    if m is None or not key_is_secret(m.group(1).rsplit(".", 1)[-1]):
        return None
    value, column = text[m.end():], offset + m.end()
    quote = line[offset + len(text):offset + len(text) + 1]
    if not value and quote in ("'", '"'):
        end = _closing_quote(line, column + 1, quote)
        value, column = (line[column + 1:end], column + 1) if end > 0 else ("", column)
    # As in a connection string, an escaped line end ends the value (`KEY=%s\n`).
    value = _ESCAPED_LINE_END.split(value, 1)[0]
    if not value or value.startswith("`"):
        return None
    return m.group(1).rsplit(".", 1)[-1], value, column


_ESCAPED_LINE_END = re.compile(r"\\[nrt]")


def _password_argument(words: list[tuple[str, int]], htpasswd: bool) -> tuple[str, int] | None:
    """The password among a command's ``words`` after its name: ``openssl passwd``'s first
    argument (none with ``-stdin`` or ``-in``, which read it), ``htpasswd -b``'s last, after
    the file's (none with ``-n``) and the user's (none without ``-b``: it asks)."""
    flags = {word for word, _ in words if word.startswith("-")}
    arguments = []
    after = ""
    for word, at in words:
        if not word.startswith("-") and after not in ("-salt", "-C", "-in"):
            arguments.append((word, at))
        after = word
    if not htpasswd:
        return arguments[0] if arguments and not flags & {"-stdin", "-in"} else None
    short = "".join(flag[1:] for flag in flags if not flag.startswith("--"))
    wanted = 2 if "n" in short else 3
    return arguments[wanted - 1] if "b" in short and len(arguments) >= wanted else None


# Where a here-document begins, by the language: the shell's `<<EOF` and `<<-'EOF'` (not
# `<<<`, a here-string), Ruby's `<<~SQL`, `<<-EOS` and `<<EOS` (a name in capitals: `<<`
# is also Ruby's append), PHP's `<<<EOT` and `<<<'EOT'`.
_HEREDOC_SHELL = re.compile(r"""(?<!<)<<-?+[ \t]*+(['"]?+)([A-Za-z_]\w*+)\1(?!<)""")
_HEREDOC_CODE = (".rb", ".php")
_HEREDOC_IN_CODE = re.compile(r"""<<[~-]?+(['"`]?+)([A-Z_][A-Z0-9_]*+)\1(?!\w)|<<<[ \t]*+"""
                              r"""(['"]?+)([A-Za-z_]\w*+)\3(?!\w)""")


def _heredoc_bodies(src: SourceFile, kind: str | None) -> Iterator[tuple[int, range]]:
    """The here-documents of a shell script, a Dockerfile or a Ruby or PHP file, each as
    the number of the line that opens it and the numbers of its lines: text a program
    writes or reads (an env file, a config, SQL), not the program's code. A
    here-document whose end is not in the file is none."""
    opener = _HEREDOC_SHELL if kind == "shell" else _HEREDOC_IN_CODE
    if "<<" not in src.text:
        return
    lines = src.lines
    ends: dict[str, list[int]] | None = None
    number = 0
    while number < len(lines):
        m = opener.search(lines[number]) if "<<" in lines[number] else None
        number += 1
        if m is None or lines[number - 1].lstrip().startswith("#"):
            continue
        if ends is None:
            # Every line that could end one, by the name, read once: looking below each
            # opener for its end would read the rest of the file for each `$((1<<N))`.
            ends = {}
            for index, line in enumerate(lines):
                end = _HEREDOC_END.match(line)
                if end is not None:
                    ends.setdefault(end.group(1), []).append(index)
        candidates = ends.get(m.group(2) or m.group(4), [])
        at = bisect.bisect_left(candidates, number)
        if at < len(candidates):
            yield number, range(number + 1, candidates[at] + 1)
            number = candidates[at] + 1


# A line that ends a here-document: its name alone, indented (`<<-`, `<<~`, PHP 7.3's),
# or followed by what ends PHP's statement (`EOT;`).
_HEREDOC_END = re.compile(r"\s*+([A-Za-z_]\w*+)\s*+(?:[;,)].*+)?+$")


def _heredoc_hits(src: SourceFile, kind: str | None) -> Iterator[tuple[int, Hit]]:
    """A secret-like key given a literal in a here-document, in the shapes of the files
    they write: `KEY=value` (`export KEY=value`), `key = value`, `key: value`; and a
    here-document of one line given to an option that reads a credential from the input
    (``_STDIN_CREDENTIAL``), which is the credential, as a here-string's word is."""
    for opener, body in _heredoc_bodies(src, kind):
        if len(body) == 1 and any(
                key_is_secret(option.group(1) or option.group(2))
                for option in _STDIN_CREDENTIAL.finditer(src.lines[opener - 1])):
            line = src.lines[body[0] - 1]
            word = line.strip()
            if word and is_literal(word) and not _not_key_material("password", word, "shell"):
                yield body[0], Hit(len(line) - len(line.lstrip()) + 1, "a credential given "
                                   f"on a command's input ({REDACTED})", 1)
                continue
        for number in body:
            hit = _written_line_hit(src.lines[number - 1], 0)
            if hit is not None:
                yield number, hit


def _written_line_hit(line: str, offset: int) -> Hit | None:
    """A line of text a program is given to read (a here-document's, a here-string's),
    ``offset`` characters into its line of the file, as the files it stands for write a
    secret-like key's literal: `KEY=value` (`export KEY=value`), `key = value`,
    `key: value`."""
    if not _has_secret_word(line) or line.lstrip().startswith(("#", ";", "//")):
        return None
    m = _ENV_KV.match(line) or _INI_KV.match(line)
    if m is None:
        return None
    key, value = m.group(1), _strip_yaml_comment(m.group(2))
    if key_is_secret(key) and is_literal(value) and not _not_key_material(key, value, "env"):
        return Hit(offset + m.start(2) + 1, f"`{key}` is assigned a literal value ({REDACTED})", 1)
    return None


# A here-string, `<<< word`: the shell gives the word, and a newline, to the command as
# its input, the text of a file it reads (`psql <<< "password=..."`, `cat <<<'KEY=...'`).
_HERESTRING = re.compile(r"<<<[ \t]*+(\$?+['\"]|(?=[^\s;|&<>()]))")
_HERESTRING_WORD = re.compile(r"""[^\s;|&<>()'"]++""")
# An option that has a command read a credential from its input (`docker login
# --password-stdin`, `gh auth login --with-token`): the here-string is the credential.
# Its word ends where the shell's does (a space, a redirection, the statement's end).
_STDIN_CREDENTIAL = re.compile(
    r"(?:^|\s)--(?:([A-Za-z][\w-]*?)-stdin|(with-token))(?=[\s<|;&)]|\Z)")


def _herestring_hits(src: SourceFile) -> Iterator[tuple[int, Hit]]:
    """The here-strings of a script or a CI step read as the text they feed a command:
    each of their lines as a here-document's (``_written_line_hit``), and the whole word
    given to an option that reads a credential from the input (``_STDIN_CREDENTIAL``).
    A quoted word goes on below its line to its closing quote, within
    ``_MAX_STRING_LINES``; ANSI-C quoting's (``$'...'``) ``\\n`` breaks its lines."""
    lines = src.lines
    for number, line in enumerate(lines, 1):
        if "<<<" not in line or line.lstrip().startswith("#"):
            continue
        for m in _HERESTRING.finditer(line):
            parts = _herestring_parts(lines, number, m.end(1), m.group(1))
            if not parts:
                continue
            credential = any(key_is_secret(option.group(1) or option.group(2))
                             for option in _STDIN_CREDENTIAL.finditer(line, 0, m.start()))
            word = "\n".join(text for _, _, text in parts).strip()
            if credential and "\n" not in word and is_literal(word) \
                    and not _not_key_material("password", word, "shell"):
                at, offset, text = parts[0]
                column = offset + len(text) - len(text.lstrip()) + 1
                yield at, Hit(column, f"a credential given on a command's input ({REDACTED})", 1)
                continue
            for at, offset, text in parts:
                hit = _written_line_hit(text, offset)
                if hit is not None:
                    yield at, hit


# A word `echo` or `printf` (its format `%s`, perhaps with a line end) writes into a
# pipe, and the command the pipe feeds, to the end of its statement.
_PIPED_WORD = re.compile(
    r"""(?:^|[\s;&|(])(?:echo|printf)(?:[ \t]++-[A-Za-z]++)*+"""
    r"""(?:[ \t]++(["']?+)%s(?:\\n)?+\1(?=[ \t]))?+[ \t]++"""
    r"""("[^"\n]*+"|'[^'\n]*+'|[^\s|;&<>()'"]++)[ \t]*+\|(?!\|)([^|;&\n]*+)""")


def _piped_credential_hits(src: SourceFile) -> Iterator[tuple[int, Hit]]:
    """A word ``echo`` or ``printf`` pipes into a command that reads a credential from
    its input (``_STDIN_CREDENTIAL``: `echo "..." | docker login --password-stdin`, as
    Docker's documentation gives it): the word is the credential, as a here-string's is."""
    for number, line in enumerate(src.lines, 1):
        if "|" not in line or line.lstrip().startswith("#"):
            continue
        for m in _PIPED_WORD.finditer(line):
            if not any(key_is_secret(option.group(1) or option.group(2))
                       for option in _STDIN_CREDENTIAL.finditer(m.group(3) + " ")):
                continue
            word = m.group(2)
            if is_literal(word) and not _not_key_material("password", word, "shell"):
                column = m.start(2) + (2 if word[:1] in ("'", '"') else 1)
                yield number, Hit(column, f"a credential given on a command's input "
                                          f"({REDACTED})", 1)


def _herestring_parts(lines: list[str], number: int, start: int, quote: str
                      ) -> list[tuple[int, int, str]]:
    """The lines of the word of a here-string that starts at ``start`` of line ``number``
    after ``quote`` (empty: unquoted), each as its line, where it starts there and its
    text; none for a quoted word not closed within ``_MAX_STRING_LINES``."""
    if not quote:
        word = _HERESTRING_WORD.match(lines[number - 1], start)
        return [(number, start, word.group())] if word is not None else []
    mark = quote[-1]
    parts: list[tuple[int, int, str]] = []
    for at in range(number, min(number + _MAX_STRING_LINES, len(lines) + 1)):
        line = lines[at - 1]
        begin = start if at == number else 0
        end = _closing_quote(line, begin, mark) if mark == '"' else line.find(mark, begin)
        text = line[begin:] if end < 0 else line[begin:end]
        if quote == "$'":
            offset = begin
            for piece in text.split("\\n"):
                parts.append((at, offset, piece))
                offset += len(piece) + 2
        else:
            parts.append((at, begin, text))
        if end >= 0:
            return parts
    return []


# `chpasswd` reads `user:password` lines from its input: piped from `echo` or `printf`
# (`echo 'root:...' | sudo chpasswd`), a here-string (`chpasswd <<< 'root:...'`) or a
# here-document. With `-e` (`--encrypted`) the line holds a hash, not the password.
_CHPASSWD_PIPE = re.compile(
    r"""\b(?:echo|printf)(?:[ \t]++-[A-Za-z]++)*+[ \t]++(["']?+)([^\s"'|:]++):([^\s"'|]++)\1"""
    r"""[ \t]*+\|[ \t]*+(?:sudo(?:[ \t]++-[A-Za-z]++)*+[ \t]++)?+chpasswd\b(?![ \t]++-(?:e|-encrypted)\b)""")
_CHPASSWD_INPUT = re.compile(
    r"""\bchpasswd\b(?![ \t]++-(?:e|-encrypted)\b)[^<\n]*+<<(?:<[ \t]*+(["']?+)([^\s"':]++):"""
    r"""([^\s"']++)\1|-?+[ \t]*+(["']?+)([A-Za-z_]\w*+)\4)""")
_CHPASSWD_LOGIN = re.compile(r"[ \t]*+([^\s:]++):(\S++)[ \t]*+$")
_MAX_CHPASSWD_LINES = 50
"""How far below its line a here-document given to chpasswd is read for its end."""


def _chpasswd_hits(src: SourceFile) -> Iterator[tuple[int, Hit]]:
    """The passwords of the ``user:password`` lines a script or a CI step gives
    ``chpasswd`` (``_CHPASSWD_PIPE``, ``_CHPASSWD_INPUT``), each at its line."""
    lines = src.lines
    for number, line in enumerate(lines, 1):
        if "chpasswd" not in line or line.lstrip().startswith("#"):
            continue
        # Both patterns' third group is a one-line login's password.
        m = _CHPASSWD_PIPE.search(line) or _CHPASSWD_INPUT.search(line)
        if m is not None and m.group(3) is not None:
            if is_literal(m.group(3)):
                yield number, Hit(m.start(3) + 1, f"a password given to chpasswd "
                                                  f"({REDACTED})", 1)
        elif m is not None:
            # A here-document's lines to the one that ends it: its name alone.
            for at in range(number, min(number + _MAX_CHPASSWD_LINES, len(lines))):
                if lines[at].strip() == m.group(5):
                    break
                login = _CHPASSWD_LOGIN.match(lines[at])
                if login is not None and is_literal(login.group(2)):
                    yield at + 1, Hit(login.start(2) + 1, f"a password given to chpasswd "
                                                          f"({REDACTED})", 1)


# A CI step's shell script: GitHub's `run:`, GitLab's `script:`, `before_script:` and
# `after_script:`, CircleCI's and Buildkite's `command:`/`commands:`, Azure Pipelines'
# `bash:` and a Taskfile's `cmds:`; as a block scalar, a plain or quoted scalar on the
# key's line or below it, or a list's items (each a block, a plain or a quoted line),
# behind an anchor or a tag or not (GitLab's `before_script: &setup` is shared so).
_CI_SCRIPT_KEY = re.compile(
    r"^([ \t]*+)(?:-[ \t]++)?+(?:run|script|before_script|after_script|commands?+|bash|cmds"
    r"|pwsh|powershell)[ \t]*+:(?:[ \t]++(.*+))?+$")
_CI_SCRIPT_WORDS = ("run:", "script:", "command", "bash:", "cmds:", "pwsh:", "powershell:")
# A PowerShell assignment, `$name = ...` or `$env:NAME = ...`, which no POSIX shell reads
# as one (it runs the command the variable names): a script's line of this shape is
# PowerShell, whatever shell the step names (GitHub's `shell: pwsh`, Azure's `pwsh:`).
_POWERSHELL_ASSIGNMENT = re.compile(r"[ \t]*+\$(?:[A-Za-z]++:)?+[A-Za-z_]\w*+[ \t]*+=(?!=)")
_BLOCK_SCALAR = re.compile(r"[|>][-+0-9]*+[ \t]*+(?:#.*+)?+")
_MAPPING_KEY = re.compile(r"[ \t]*+[\w.-]++[ \t]*+:(?:[ \t]|\Z)")
# A node's properties before its value: an anchor (`&name`) and a tag (`!tag`, `!!str`).
_NODE_PROPERTIES = re.compile(r"(?:[&!][^ \t]*+(?:[ \t]++|\Z))*+")


# PowerShell's secure string made of a literal (`ConvertTo-SecureString '...' -AsPlainText
# -Force`, `-String "..."`): a credential's password, whatever the variable is called.
# PowerShell's names are of any case; its double-quoted strings escape with a backquote.
_SECURE_STRING = re.compile(
    r"""(?i)\bConvertTo-SecureString(?:[ \t]++-(?:AsPlainText|Force)\b)*+[ \t]++"""
    r"""(?:-String[ \t]++)?+('(?:[^'\n]|'')*+'|"(?:[^"`\n]|`.)*+")""")
_SECURE_STRING_WORDS = ("SecureString", "securestring", "Securestring", "SECURESTRING")


def _secure_string_hits(src: SourceFile) -> Iterator[tuple[int, Hit]]:
    if not any(word in src.text for word in _SECURE_STRING_WORDS):
        return
    for number, line in enumerate(src.lines, 1):
        if "-asplaintext" not in line.lower() or line.lstrip().startswith("#"):
            continue
        for m in _SECURE_STRING.finditer(line):
            if is_literal(m.group(1)):
                yield number, Hit(m.start(1) + 1, "a secure string is made of a literal "
                                                  f"value ({REDACTED})", 1)


def _ci_script_hits(src: SourceFile) -> Iterator[tuple[int, Hit]]:
    """A YAML file's CI step scripts (``_CI_SCRIPT_KEY``) read as the shell script they
    are: ``export KEY=...`` and the other assignments of the key rule, the `KEY=value`
    words commands are given, here-documents and ``chpasswd``'s input, each at its line
    of the YAML file (options and here-strings are read in every YAML line)."""
    text = src.text
    if not any(word in text for word in _CI_SCRIPT_WORDS) \
            or not (_has_secret_word(text) or "<<" in text):
        return
    found = _ci_scripts(src.lines)
    if found is None:
        return
    script, folded = found
    view = SourceFile(src.path, "\n".join(script))
    yield from _key_hits(view, "shell")
    if "$" in text:
        powershell = [line if _POWERSHELL_ASSIGNMENT.match(line) else "" for line in script]
        yield from _key_hits(SourceFile(src.path, "\n".join(powershell)), "code")
    yield from _command_line_hits(view, "shell")
    yield from _heredoc_hits(view, "shell")
    yield from _continued_hits(view, folded)
    if "chpasswd" in text:
        yield from _chpasswd_hits(view)


def _continued_hits(src: SourceFile, folded: Collection[int] = ()
                    ) -> Iterator[tuple[int, Hit]]:
    """The key rule's and the command line rule's hits in a shell script whose lines a
    backslash at their end continues, read as the shell reads them: one line, the
    backslash and the line end gone (`export DB_PASSWORD=\\` above the value, `docker
    login -u ci \\` above `-p ...`, passed the gate); each at the line and column of
    the file where it is. A line of ``folded`` (by its index) goes on in the next after a
    space: YAML folds a CI step's `>` block and its plain scalar so."""
    lines = src.lines
    if not folded and not any(line.endswith("\\") for line in lines):
        return
    joined = [""] * len(lines)
    # For each joined line (by its first line's index): where each of its lines begins
    # in it, and that line's number.
    pieces: dict[int, list[tuple[int, int]]] = {}
    number = 0
    while number < len(lines):
        first, text = number, lines[number]
        starts = [(0, number + 1)]
        while number + 1 < len(lines) and ((continued := _continues(text))
                                           or number in folded):
            text = text[:-1] if continued else text + " "
            number += 1
            starts.append((len(text), number + 1))
            text += lines[number]
        if len(starts) > 1:  # a line no backslash continues is read as it is already
            joined[first] = text
            pieces[first] = starts
        number += 1
    if not pieces:
        return
    view = SourceFile(src.path, "\n".join(joined))
    for found, hit in itertools.chain(_key_hits(view, "shell"),
                                      _command_line_hits(view, "shell")):
        starts = pieces.get(found - 1, [(0, found)])
        at = bisect.bisect_right(starts, hit.column - 1, key=lambda start: start[0]) - 1
        offset, line = starts[at]
        yield line, replace(hit, column=hit.column - offset)


def _continues(line: str) -> bool:
    """Whether the shell joins the next line to ``line``: it ends in a backslash that
    no other escapes."""
    return (len(line) - len(line.rstrip("\\"))) % 2 == 1


def _ci_scripts(lines: list[str]) -> tuple[list[str], set[int]] | None:
    """The lines of a YAML file with its CI step scripts' text where it is, each other
    line empty and each character before a script's text on its line a space (so that
    a hit's line and column are the YAML file's), and the lines YAML folds into the next
    (``_script_block``); None when it has no script."""
    script = [""] * len(lines)
    folded: set[int] = set()
    found = False
    number = 0
    while number < len(lines):
        line = lines[number]
        m = _CI_SCRIPT_KEY.match(line) if ":" in line else None
        number += 1
        if m is None:
            continue
        indent = len(m.group(1))
        at, value = _script_value(line, m.start(2) if m.group(2) else len(line))
        if _BLOCK_SCALAR.fullmatch(value):
            number = _script_block(lines, number, indent, script,
                                   folded if value.startswith(">") else None)
            found = True
        elif value:
            found = _script_line(line, at, value, number - 1, script) or found
        else:
            below = _next_text(lines, number)
            if below is not None and not lines[below].lstrip().startswith("-") \
                    and len(lines[below]) - len(lines[below].lstrip()) > indent:
                if not _MAPPING_KEY.match(lines[below]):
                    # A plain scalar on the lines below the key (a one-step `run:`).
                    number = _script_block(lines, number, indent, script, folded)
                    found = True
                continue  # a mapping (CircleCI's `commands:`): its keys are read as any
            # A list of steps: its items at the key's indent or deeper.
            while number < len(lines):
                item = lines[number]
                stripped = item.lstrip()
                depth = len(item) - len(stripped)
                if stripped and (depth < indent or (depth == indent
                                                    and not stripped.startswith("-"))):
                    break
                number += 1
                if not stripped.startswith("- "):
                    continue
                at, rest = _script_value(item, depth + 2)
                if _BLOCK_SCALAR.fullmatch(rest):
                    number = _script_block(lines, number, depth, script,
                                           folded if rest.startswith(">") else None)
                elif rest:
                    _script_line(item, at, rest, number - 1, script)
                found = True
    return (script, folded) if found else None


def _script_value(line: str, start: int) -> tuple[int, str]:
    """Where the value that starts at ``start`` of ``line`` begins past its properties
    (an anchor, a tag: ``_NODE_PROPERTIES``), and its text from there, stripped."""
    while start < len(line) and line[start] in " \t":
        start += 1
    properties = _NODE_PROPERTIES.match(line, start)
    at = properties.end() if properties is not None else start
    return at, line[at:].strip()


def _script_line(line: str, at: int, value: str, number: int, script: list[str]) -> bool:
    """Put the script a scalar on one line holds (``value``, at ``at`` of ``line``) at
    its place in ``script``'s line ``number``: a plain scalar as written, a quoted one
    and a flow sequence's items (`script: ["...", "..."]`) as YAML reads them, on one
    line; whether it is a script (not a flow mapping, an alias or a comment, nor a
    quoted scalar or a sequence that goes on to another line)."""
    if value[0] in "\"'[":
        import yaml

        try:
            found = yaml.safe_load(value)
        except (yaml.YAMLError, RecursionError):  # over several lines, or nested past
            return False  # any parser's depth: not read here
        items = found if isinstance(found, list) and value[0] == "[" else [found]
        if not items or not all(isinstance(item, str) for item in items):
            return False
        # Its escaped line ends (`"a\\nexport ..."`) and its items end commands, as
        # `;` does.
        script[number] = " " * (at + 1) + "; ".join(items).replace("\n", "; ")
        return True
    if value[0] in "{*#":
        return False
    script[number] = " " * at + line[at:]
    return True


def _next_text(lines: list[str], number: int) -> int | None:
    """The number of the first line from ``number`` on that holds more than blanks and
    a comment, or None."""
    for at in range(number, len(lines)):
        stripped = lines[at].strip()
        if stripped and not stripped.startswith("#"):
            return at
    return None


def _script_block(lines: list[str], number: int, indent: int, script: list[str],
                  folded: set[int] | None = None) -> int:
    """Copy the block scalar below line ``number`` (its lines deeper than ``indent``,
    blank ones within it) into ``script``; where the block ends. With ``folded``, a
    folded block or a plain scalar: each line YAML joins to the next with a space (two
    lines of text at the block's indentation) is added to it."""
    start = number
    while number < len(lines):
        line = lines[number]
        if line.strip() and len(line) - len(line.lstrip()) <= indent:
            break
        script[number] = line
        number += 1
    if folded is not None:
        depths = [len(line) - len(line.lstrip()) if line.strip() else -1
                  for line in lines[start:number]]
        base = next((depth for depth in depths if depth >= 0), -1)
        folded.update(start + i for i in range(len(depths) - 1)
                      if depths[i] == depths[i + 1] == base)
    return number


# A password an SQL statement sets: `CREATE USER app WITH PASSWORD '...'` (PostgreSQL,
# and over several lines), `CREATE USER 'app'@'%' IDENTIFIED BY '...'` (MySQL; `IDENTIFIED
# WITH plugin BY`, `BY PASSWORD`), Oracle's `IDENTIFIED BY tiger`, SQL Server's `CREATE
# LOGIN app WITH PASSWORD = '...'`, MySQL's `SET PASSWORD FOR ... = '...'`: within the
# statement, to its `;`.
# Unquoted, a password is a name (Oracle's); `$1` and `?` are a statement's parameters.
# A statement in a double-quoted string (a shell's `mysql -e "..."`, code's) escapes
# MySQL's double quotes: `\"...\"`.
_SQL_VALUE = (r"""('(?:[^'\\\n]|''|\\.)*+'|"(?:[^"\\\n]|\\.)*+"|"""
              r'\\"[^"\\\n]*+\\"' r"""|[A-Za-z_][A-Za-z0-9_$#]*+)""")
# A statement's text is read to its `;` or the next statement's start, which bounds the
# reading of text that has no `;` (a file of `CREATE USER a` repeated).
_SQL_STATEMENT = r"""(?:(?!\b(?:CREATE|ALTER|GRANT)\b)[^;]){0,1000}?"""
_SQL_PASSWORD = re.compile(
    r"""(?i)\b(?:CREATE|ALTER)\s++(?:USER|ROLE|LOGIN)\b""" + _SQL_STATEMENT
    + r"""\b(?:IDENTIFIED\s++(?:WITH\s++\w++\s++)?+BY(?:\s++PASSWORD)?+\s++"""
    r"""|PASSWORD\s*+=\s*+|PASSWORD\s++)""" + _SQL_VALUE
    + r"""|\bGRANT\b""" + _SQL_STATEMENT + r"""\bIDENTIFIED\s++BY(?:\s++PASSWORD)?+\s++"""
    + _SQL_VALUE
    + r"""|\bSET\s++PASSWORD\b[^;=]{0,200}=\s*+(?:PASSWORD\s*+\(\s*+)?+""" + _SQL_VALUE)

_SQL_VERBS = ("create", "alter", "grant", "set")


def _sql_password_hits(src: SourceFile) -> Iterator[tuple[int, Hit]]:
    """The passwords SQL statements set (``_SQL_PASSWORD``), each at its line."""
    low = src.text.lower()
    # Each statement begins with one of these verbs: a text holding none (a manifest's
    # `DB_PASSWORD`) skips the pattern, which, led by no literal, is tried at every place.
    if ("password" not in low and "identified" not in low) \
            or not any(verb in low for verb in _SQL_VERBS):
        return
    for m in _SQL_PASSWORD.finditer(src.text):
        group = m.lastindex or 0
        value = m.group(group)
        # `\"...\"` is the quoted value its string stands for.
        if is_literal(value[1:-2] + '"' if value.startswith('\\"') else value):
            number, column = src.position(m.start(group))
            yield number, Hit(column, f"a password set by an SQL statement ({REDACTED})", 1)


# The files clients keep their logins in, each in its own shape: `.netrc`'s `password
# <p>` (curl, git, ftp), `.pgpass`' `host:port:db:user:<p>` (libpq; `\:` is a colon),
# `.npmrc`'s `//registry/:_password=<base64>`, `_auth=` and `_authToken=`, and the AWS
# CLI's and SDKs' `credentials`, an INI file (`aws_secret_access_key = <p>`), which has
# no extension to be read as one by.
_NETRC_PASSWORD = re.compile(r"(?:^|\s)password\s++(\S++)")
_PGPASS_FIELDS = re.compile(r"(?:[^:\\]|\\.)*+")
_NPMRC_CREDENTIAL = re.compile(r"^\s*+(?:\S*?:)?(_authToken|_auth|_password)\s*+=\s*+(.*+)")
# `.htpasswd`'s `user:<hash>` (Apache's and nginx's basic auth): the hash a password is
# guessed from offline, MD5's `$apr1$` and `{SHA}` in moments; crypt's `$id$` form is a
# hash, not the `$VAR` reference it would read as.
_HTPASSWD_LOGIN = re.compile(r"^[^:\s#][^:\s]*+:(\S++)\s*+$")
_CRYPT_HASH = re.compile(r"\$(?:apr1|2[abxy]|[1567]|y|gy)\$")


# An HTTP Authorization header's credential, as a command sends it (`curl -H
# "Authorization: Bearer ..."`) or code sets it (`{"Authorization": "Bearer ..."}`):
# gitleaks' curl-auth-header, whose least entropy is 2.75.
_AUTH_HEADER = re.compile(
    r"""(?i)\bauthorization["']?+[ \t]*+[:=][ \t]*+["']?+(?:bearer|basic|(?:api-)?token)[ \t]++"""
    r"""([\w=~@.+/-]{8,}+)(?![\w$={}<])""")
_AUTH_HEADER_ENTROPY = 2.75


def _auth_header_hits(src: SourceFile) -> Iterator[tuple[int, Hit]]:
    if "uthorization" not in src.text and "UTHORIZATION" not in src.text:
        return
    for number, line in enumerate(src.lines, 1):
        if "uthorization" not in line and "UTHORIZATION" not in line:
            continue
        for m in _AUTH_HEADER.finditer(line):
            value = m.group(1)
            if is_literal(value) and not _reads_as_name(value) \
                    and shannon_entropy(value) >= _AUTH_HEADER_ENTROPY:
                yield number, Hit(m.start(1) + 1, "an HTTP Authorization header's credential "
                                                  f"({REDACTED})", 1)


def _htpasswd_logins(text: str) -> bool:
    """Whether ``text`` is an htpasswd file's lines, each a login with its crypt hash
    (ingress-nginx's basic auth reads a Secret's ``auth`` as one): one secret however
    many lines it has, unlike prose."""
    lines = [line for line in text.splitlines() if line.strip()]
    return bool(lines) and all(
        (m := _HTPASSWD_LOGIN.match(line.strip())) is not None and _CRYPT_HASH.match(m.group(1))
        for line in lines)


def _credential_file_hits(src: SourceFile) -> Iterator[tuple[int, Hit]]:
    """A login in a client's credential file or a server's ``.htpasswd``
    (``_NETRC_PASSWORD`` and below)."""
    name = src.name
    htpasswd = name in (".htpasswd", "htpasswd") or name.endswith(".htpasswd")
    # The AWS CLI reads keys from its `config` too, under a `[profile ...]`.
    aws = name == "credentials" or src.path == ".aws/config" \
        or src.path.endswith("/.aws/config")
    if name not in (".netrc", "_netrc", ".pgpass", ".npmrc") and not aws and not htpasswd:
        return
    for number, line in enumerate(src.lines, 1):
        if line.lstrip().startswith(("#", ";")):
            continue
        found: tuple[str, int] | None = None
        if aws:
            # A secret's own name, not a setting about one (`credential_process` runs
            # the command that gives the keys).
            m = _INI_KV.match(line)
            found = (m.group(2), m.start(2)) if m is not None and key_is_secret(m.group(1)) \
                and _words(m.group(1))[-1] in _SECRET_FLAG_LAST \
                and not _not_key_material(m.group(1), m.group(2), "ini") else None
        elif name == ".npmrc":
            m = _NPMRC_CREDENTIAL.match(line)
            found = (m.group(2).rstrip(), m.start(2)) if m is not None else None
        elif htpasswd:
            m = _HTPASSWD_LOGIN.match(line)
            found = (m.group(1), m.start(1)) if m is not None else None
            if found is not None and _CRYPT_HASH.match(found[0]):
                yield number, Hit(found[1] + 1, f"a login in {name} ({REDACTED})", 1)
                continue
        elif name == ".pgpass":
            fields = [f for f in _PGPASS_FIELDS.finditer(line) if f.start() == 0
                      or line[f.start() - 1] == ":"]
            found = (fields[4].group(), fields[4].start()) if len(fields) == 5 else None
        else:
            m = _NETRC_PASSWORD.search(line)
            found = (m.group(1), m.start(1)) if m is not None else None
        if found is not None and is_literal(found[0]):
            yield number, Hit(found[1] + 1, f"a login in {name} ({REDACTED})", 1)


def _assignments(line: str, kind: str) -> Iterator[tuple[str, str, int]]:
    if kind == "yaml":
        m = _YAML_LIST_ENV.match(line)
        quote, value = (m.group(1), m.group(3).rstrip()) if m else ("", "")
        if m and value.endswith(quote):  # `- "KEY=value"`: the closing quote ends the value
            yield m.group(2), value[:len(value) - len(quote)], m.start(3) + 1
            return
        m = _YAML_KV.match(line)
        if m:
            raw, at = m.group(3), m.start(3)
            if raw.startswith("!!str "):
                # YAML's own string tag: the string itself, not a custom tag (`!vault`).
                rest = raw[len("!!str "):].lstrip()
                raw, at = rest, at + len(raw) - len(rest)
            yield m.group(2), _strip_yaml_comment(raw), at + 1
        return
    if kind == "xml":
        for m in _XML_ELEMENT.finditer(line):
            text = m.group(2)
            if not _MAVEN_ENCRYPTED.fullmatch(text.strip()):
                yield m.group(1), text.strip(), m.start(2) + 1 + len(text) - len(text.lstrip())
        for m in _XML_ATTRIBUTE.finditer(line):
            yield m.group(1), m.group(2), m.start(2) + 1
        for m in _XML_PAIR.finditer(line):
            yield m.group(2), m.group(3), m.start(3) + 1
        for m in _XML_NAMED_TEXT.finditer(line) if "</" in line else ():
            text = m.group(3)
            yield m.group(2), text.strip(), m.start(3) + 1 + len(text) - len(text.lstrip())
        for m in _XML_PAIR_VALUE_FIRST.finditer(line):
            yield m.group(3), m.group(1), m.start(1) + 1
        return
    if kind == "json":
        for m in _JSON_KV.finditer(line):
            yield m.group(1), m.group(2), m.start(2) + 1
        return
    if kind == "make":
        m = _MAKE_KV.match(line)
        if m:
            yield m.group(1), _strip_yaml_comment(m.group(2)), m.start(2) + 1
        return
    if kind in ("env", "shell"):
        m = _ENV_KV.match(line) or _DOCKER_ENV_SPACE.match(line)
        if m:
            value = m.group(2).rstrip()
            if kind == "shell" or " #" in value:
                value = _strip_yaml_comment(value)
            yield m.group(1), value, m.start(2) + 1
        return
    if kind == "ini":
        m = _INI_KV.match(line)
        if m:
            value, triple = m.group(2), m.group(2)[:3]
            end = value.find(triple, 3) if triple in ('"""', "'''") else -1
            # TOML's `"""..."""` on one line is the string between the triples.
            value = f'"{value[3:end]}"' if end >= 3 else _strip_yaml_comment(value)
            yield m.group(1), value, m.start(2) + 1
        return
    prose = _Prose(line)
    for m in _CODE_KV.finditer(line):
        value = _code_string(m.group(2))
        if value is not None and not _JOINED.match(line, m.end()) \
                and not (line[m.end(1)] not in "\"'`" and prose.holds(m.start(1))):
            yield m.group(1).rsplit(".", 1)[-1], value, m.start(2) + 1
    m = _GO_TYPED.match(line)
    if m:
        yield m.group(1), m.group(2), m.start(2) + 1
    m = _DSL_CALL.match(line)
    if m:
        value = _code_string(m.group(2))
        if value is not None:
            yield m.group(1), value, m.start(2) + 1
    for m in _PHP_DEFINE.finditer(line) if "define" in line else ():
        value = _code_string(m.group(3))
        if value is not None and not _JOINED.match(line, m.end()):
            yield m.group(2), value, m.start(3) + 1
    # `environ`, `env`, `Setenv`, `SetEnvironmentVariable`, or Ruby's and PHP's `ENV`.
    for m in _ENV_SET.finditer(line) if "nv" in line or "NV" in line \
            or "etProperty" in line else ():
        value = _code_string(m.group(5))
        if value is not None and not _JOINED.match(line, m.end()):
            yield m.group(2) or m.group(4), value, m.start(5) + 1


# An environment variable (or a Java system property) set to a literal, by name in
# quotes: Python's `os.environ["API_TOKEN"] = "..."`, `os.environ.setdefault(...)`,
# `os.putenv(...)` and pytest's `monkeypatch.setenv(...)`, JS's `process.env["..."] =`,
# Ruby's `ENV["..."] =`, Go's `os.Setenv(...)`, Java's `System.setProperty(...)`, C#'s
# `Environment.SetEnvironmentVariable(...)`.
_ENV_SET = re.compile(
    r"""(?:(?:environ|env|ENV)\[\s*+(["'])([A-Za-z_][\w.]*+)\1\s*+\]\s*+=(?!=)"""
    r"""|(?:setdefault|setenv|putenv|Setenv|setProperty|SetEnvironmentVariable)\(\s*+"""
    r"""(["'])([A-Za-z_][\w.]*+)\3\s*+,)\s*+""" + _CODE_STRING)
# PHP's constant, `define('DB_PASSWORD', '...')` (WordPress' wp-config.php).
_PHP_DEFINE = re.compile(r"""\bdefine\(\s*+(["'])([A-Za-z_]\w*+)\1\s*+,\s*+""" + _CODE_STRING)
_SETTING_CALLS = ("define(", "setdefault(", "setenv(", "putenv(", "Setenv(", "setProperty(",
                  "SetEnvironmentVariable(")


def _calls_over_lines(src: SourceFile) -> Iterator[tuple[int, Hit]]:
    """``define(``, ``setenv(`` and the other calls that set a key by name (``_PHP_DEFINE``,
    ``_ENV_SET``) with their arguments over lines, each on its own: the key rule reads a
    line, where the call's one-line form is."""
    text = src.text
    if not any(call in text for call in _SETTING_CALLS):
        return
    patterns: list[tuple[re.Pattern[str], int, int]] = []
    if "define(" in text:
        patterns.append((_PHP_DEFINE, 2, 3))
    if any(call in text for call in _SETTING_CALLS[1:]):
        patterns.append((_ENV_SET, 4, 5))
    for pattern, key_group, value_group in patterns:
        for m in pattern.finditer(text):
            key, literal = m.group(key_group), m.group(value_group)
            if key is None or "\n" not in m.group(0) or _JOINED.match(text, m.end()):
                continue
            value = _code_string(literal)
            if value is not None and key_is_secret(key) and is_literal(value) \
                    and not _not_key_material(key, value, "code"):
                number, column = src.position(m.start(value_group))
                yield number, Hit(column, f"`{key}` is assigned a literal value ({REDACTED})", 1)


# XML's settings: an element's text (Maven's `<password>...</password>`), an attribute
# (`<user password="..."/>`, tomcat-users.xml), and a `key`'s or `name`'s `value`
# (`<add key="ClearTextPassword" value="..."/>`, NuGet's and .NET's appSettings; Spring's
# `<property name="password" value="..."/>`). A namespace prefix is not the name.
_XML_ELEMENT = re.compile(r"<(?:[\w.-]++:)?+([A-Za-z_][\w.-]*+)(?:\s[^<>]*+)?+>([^<]*+)</")
_XML_ATTRIBUTE = re.compile(
    r"""(?<![\w.:-])(?:[\w.-]++:)?+([A-Za-z_][\w.-]*+)\s*+=\s*+("[^"<\n]*+"|'[^'<\n]*+')""")
_XML_PAIR = re.compile(
    r"""\b(?:key|name)\s*+=\s*+(["'])([^"'<\n]*+)\1\s++value\s*+=\s*+("[^"<\n]*+"|'[^'<\n]*+')""")
# An element's text its `name` or `key` names: Android's string resources (`<string
# name="db_password">...</string>`) and Java's properties as XML (`<entry
# key="db.password">...</entry>`).
_XML_NAMED_TEXT = re.compile(
    r"""<(?:[\w.-]++:)?+[A-Za-z_][\w.-]*+\s(?:[^<>]*?\s)?(?:name|key)\s*+=\s*+(["'])"""
    r"""([^"'<\n]*+)\1[^<>]*+>([^<]*+)</""")
# The same pair with its `value` first: XML's attributes have no order.
_XML_PAIR_VALUE_FIRST = re.compile(
    r"""\bvalue\s*+=\s*+("[^"<\n]*+"|'[^'<\n]*+')\s++(?:key|name)\s*+=\s*+(["'])([^"'<\n]*+)\2""")
# Maven's encrypted password (`mvn --encrypt-password`): ciphertext whose key is the
# master password, kept outside the repository.
_MAVEN_ENCRYPTED = re.compile(r"\{[A-Za-z0-9+/]++=*+\}")
# An element's text that a line alone does not show: in a CDATA section (on its tags'
# line or its own), or on lines of its own between the tags (an XML reader gives both as
# the text; Maven trims it).
_XML_TEXT = re.compile(
    r"<(?:[\w.-]++:)?+([A-Za-z_][\w.-]*+)(?:\s[^<>]*+)?+>"
    r"(?:\s*+<!\[CDATA\[((?:(?!\]\]>)[\s\S])*+)\]\]>\s*+|((?=[^<\n]*+\n)[^<]*+))</")


def _xml_uncommented(src: SourceFile) -> SourceFile:
    """``src`` with each XML comment (``<!--`` to ``-->``, over lines too) blanked, every
    character but a line end a space, the rest where it was: what the key rule reads of
    an XML file (a template's commented samples, Maven's `<password>repopwd</password>`,
    are no settings). Found by plain searches: one pass, however many comments."""
    text = src.text
    start = text.find("<!--")
    if start < 0:
        return src
    parts: list[str] = []
    done = 0
    while start >= 0:
        end = text.find("-->", start + 4)
        if end < 0:
            break  # an unclosed comment: no XML reader gets past it, nor is it blanked
        end += 3
        parts += [text[done:start], _BLANKED.sub(" ", text[start:end])]
        done = end
        start = text.find("<!--", end)
    parts.append(text[done:])
    return SourceFile(src.path, "".join(parts))


_BLANKED = re.compile(r"[^\r\n]")


def _xml_text_hits(src: SourceFile) -> Iterator[tuple[int, Hit]]:
    """A secret-like element's literal text in a CDATA section or between lines of its
    tags (``_XML_TEXT``), at the text's line: what the key rule, line by line, does not
    read as an element's text."""
    if "<" not in src.text:
        return
    for m in _XML_TEXT.finditer(src.text):
        group = 2 if m.group(2) is not None else 3
        raw = m.group(group)
        value = raw.strip()
        if not value or "\n" in value or not key_is_secret(m.group(1)) \
                or _MAVEN_ENCRYPTED.fullmatch(value) or not is_literal(value) \
                or _not_key_material(m.group(1), value, "xml"):
            continue
        number, column = src.position(m.start(group) + len(raw) - len(raw.lstrip()))
        yield number, Hit(column, f"`{m.group(1)}` is assigned a literal value ({REDACTED})", 1)


class _Prose:
    """Whether a key of a line is a word of a string's prose (golang.org/x/oauth2's
    error naming the `type` field of the JSON credentials, the key and its value quoted
    in it): inside a string that opens before it, and after a word and a space (the
    keys of YAML or JSON a string holds begin the string or a line of it, or are quoted).
    Keys are asked for from left to right, and the line is read once for them all."""

    __slots__ = ("_at", "_line", "_quote")

    def __init__(self, line: str) -> None:
        self._line = line
        self._at = 0
        self._quote: str | None = None

    def holds(self, at: int) -> bool:
        line = self._line
        i, quote = self._at, self._quote
        while i < at:
            c = line[i]
            if quote is None:
                quote = c if c in "\"'`" else None
            elif c == "\\":
                i += 1
            elif c == quote:
                quote = None
            i += 1
        self._at, self._quote = i, quote
        word = at
        while word > 0 and line[word - 1] in " \t":
            word -= 1
        return quote is not None and 0 < word < at and line[word - 1].isalpha()


# A literal that an expression goes on from: `"Basic " + creds`, `"{x}".format(...)`,
# `"%s" % x`, PHP's `"..." . $x`; only its other operands could be the secret.
_JOINED = re.compile(r"\s*+(?:\+|%|\.format\(|\.\s)")
# Regular expression syntax in a raw string (`r'(?:key|token)'`, `r'[a-z]{24}'`): a
# pattern, not a value.
_PATTERN = re.compile(r"\(\?|\\[wdsbWDSB]|\][*+?{]|\)[*+?]|\|\)")


def _code_string(literal: str) -> str | None:
    """A string literal as one quoted value (``rb'x'``, ``\"\"\"x\"\"\"``, ``@"x"`` and
    ``r#"x"#`` are ``"x"``), or
    None for an f-string with a replacement field, which is an expression, and a raw
    string in regular expression syntax, which is a pattern."""
    if literal[:1] in ("@", "$"):
        start = literal.index('"')
        inner = literal[start + 1:-1].replace('""', '"')
        if "$" in literal[:start]:  # `$@"..."` has fields as an f-string does
            if "{" in inner.replace("{{", ""):
                return None
            inner = inner.replace("{{", "{").replace("}}", "}")
        return f'"{inner}"'
    body = literal.lstrip("rRbBuUfF")
    prefix = literal[:len(literal) - len(body)].lower()
    if body.startswith('#"'):
        body = body[1:-1]  # Rust's raw string: `r#"x"#` is `r"x"`
    if not prefix and body[:3] not in ('"""', "'''"):
        return literal
    quotes = 3 if body[:3] in ('"""', "'''") else 1
    inner = body[quotes:len(body) - quotes]
    if "r" in prefix and _PATTERN.search(inner):
        return None
    if "f" in prefix:
        if "{" in inner.replace("{{", ""):
            return None
        inner = inner.replace("{{", "{").replace("}}", "}")
    return f'"{inner}"'


def _strip_yaml_comment(value: str) -> str:
    v = value.strip()
    if v[:1] in ("'", '"'):
        end = v.find(v[0], 1)
        return v[:end + 1] if end > 0 else v
    i = v.find(" #")
    return (v[:i] if i >= 0 else v).strip()


_ENV_VAR_NAME = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")
_NAME_OF_A_KEY = re.compile(r"[a-z][a-z0-9]*(?:[._-][a-z0-9]+)*")
_FILE_NAME = re.compile(r"[\w.-]+\.(?:ya?ml|json|hcl|txt|md|toml|cfg|conf|ini|env\.example)")


def _names_a_key(value: str) -> bool:
    """Whether a value reads as the name of a Secret's key (``db-password``,
    ``jwt_signing_key``, ``tls.crt``) rather than key material (``sk-live-abc123def456``,
    ``qwerty987zz``): names are words, and a word mixes letters and digits only when it is
    short (``s3``, ``v2``, ``k8s``)."""
    return bool(_NAME_OF_A_KEY.fullmatch(value)) and _words_of_a_name(value)


def _words_of_a_name(value: str) -> bool:
    """Whether each word of ``value`` is one a name has: letters, digits, or a short mix
    of both (``s3``, ``v2``, ``k8s``); ``Fstr1ng`` and ``x9Kq2z`` are key material."""
    return all(word.isalpha() or word.isdigit() or len(word) <= 3
               for word in _SPLIT.split(value) if word)


def _not_key_material(key: str, value: str, kind: str) -> bool:
    """Whether a literal under a secret-like key is a name or text, not the secret."""
    return (_self_named(key, value, kind) or _is_text(key, value)
            or _about_a_credential(key, value.strip().strip("\"'`").strip())
            or (kind == "code" and _highlighted(key, value.strip().strip("\"'`")))
            or _working_directory(key, value.strip().strip("\"'`")))


def _working_directory(key: str, value: str) -> bool:
    """Whether ``key`` is the shell's ``PWD`` or ``OLDPWD`` set to a directory's path
    (GitPython's ``update_environment(PWD='/tmp')``), not a password's abbreviation."""
    return key in _SHELL_DIRECTORIES and value.startswith(("/", "~/", "./", "../", "$"))


# A syntax highlighter's token type, lower-case words joined by dots (ace's and
# CodeMirror's rules, `{token: "constant.numeric", regex: ...}`, ace's `defaultToken:
# "text"`): a class of text, where a credential is never words.
_LEXER_TOKEN = re.compile(r"[a-z]++(?:[._-][a-z]++)*+")
_LEXER_TOKEN_KEYS = frozenset({"token", "defaultToken"})
# A word of Pygments' style of its root token type (`Token: "#f8f8f2"`, `"bold bg:#000
# #fff"`): style words and colours.
_PYGMENTS_STYLE_WORD = re.compile(
    r"(?:no)?(?:bold|italic|underline|inherit)|roman|sans|mono"
    r"|(?:bg:|border:)?(?:#[0-9A-Fa-f]{3}(?:[0-9A-Fa-f]{3})?|ansi\w+)")


def _highlighted(key: str, value: str) -> bool:
    """Whether ``value`` is a syntax highlighter's token type or style, not a token."""
    if key in _LEXER_TOKEN_KEYS:
        return bool(_LEXER_TOKEN.fullmatch(value))
    return key == "Token" and bool(value) \
        and all(_PYGMENTS_STYLE_WORD.fullmatch(word) for word in value.split())


# How a credential is used, not the credential: `auth: basic`, `auth: scram-sha-256`,
# `clientAuth: RequireAndVerifyClientCert`, `bearer: oauth2`: words in one case or
# capitalised, each perhaps followed by a few digits (`CANARYauth2` is neither), or a
# small number (`auth: 1`).
_MECHANISM_WORD = r"(?:[a-z]++|[A-Z]++|(?:[A-Z][a-z]++)++)[0-9]{0,3}+"
_MECHANISM = re.compile(rf"{_MECHANISM_WORD}(?:[-_.](?:{_MECHANISM_WORD}|[0-9]++))*+|[0-9]{{1,3}}")
_SSH_PUBLIC_KEY = re.compile(
    r"(?:ssh-(?:rsa|dss|ed25519)|ecdsa-sha2-nistp\d+|sk-(?:ssh-ed25519|ecdsa-sha2-nistp256)"
    r"@openssh\.com) AAAA")
# A file's path (`~/.ssh/id_ed25519`, `/etc/ssl/private/tls.key`): at least two parts or
# a file extension, no `+` or `=` (which base64 key material starting with `/` has).
_KEY_FILE_PATH = re.compile(r"(?:~|\.\.?)?(?:/[\w@.-]++){2,}+|(?:~|\.\.?)?/[\w@-]++\.[A-Za-z]\w*+")


def _about_a_credential(key: str, value: str) -> bool:
    """Whether a literal under a credential-like key says where or how the credential is,
    not what: a mechanism under an ``auth``/``bearer`` name (a ``user:password`` in
    base64, Docker's ``auth``, is the credential), a file's path under a ``*_key`` name
    (``ssh_key: ~/.ssh/id_ed25519``), an SSH public key under any name."""
    if _SSH_PUBLIC_KEY.match(value):
        return True
    last = _words(key)[-1:]
    if last and last[0] in _CREDENTIAL_LAST:
        return (len(value) <= 32 and bool(_MECHANISM.fullmatch(value))
                and not _basic_credentials(value)) or _auth_settings(value)
    return last == ["key"] and bool(_KEY_FILE_PATH.fullmatch(value))


def _auth_settings(value: str) -> bool:
    """Whether a mapping on one line under an auth name sets the mechanism up, as the
    registry's ``REGISTRY_AUTH={htpasswd: {realm: ..., path: ...}}`` does: no secret-like
    key in it holds a value but a mapping of its own (``token: {realm: ...}`` names a
    mechanism; ``{"password": "..."}`` is the credential)."""
    if not (value.startswith("{") and value.endswith("}")):
        return False
    keys = list(_FLOW_KEY.finditer(value))
    return bool(keys) and not any(key_is_secret(k.group(1))
                                  and not value[k.end():].lstrip().startswith("{")
                                  for k in keys)


def _basic_credentials(value: str) -> bool:
    """Whether ``value`` is ``user:password`` in base64, as Docker's ``auth`` holds it."""
    try:
        text = base64.b64decode(value, validate=True).decode("ascii")
    except (ValueError, UnicodeDecodeError):
        return False
    return ":" in text and text.isprintable()


# What ends a sentence's word: babel's `UnexpectedTokenUnaryExponentiation: "Illegal
# expression. Wrap left hand side ..."` is prose.
_SENTENCE_MARKS = ".,;:!?"


def _is_text(key: str, value: str) -> bool:
    """Prose or a label: two or more words of letters only (``"Invalid or expired token"``,
    UI and i18n strings), or the key's own words (``"password": "Password"``), or its last
    ones as a capitalised label (Android's ``<string name="prompt_password">Password``). A
    passphrase of plain words (``correct horse battery staple``) reads as prose too and is
    missed: the price of not flagging every message about a password. A value written
    exactly as its key (``password: password``) is no label but the key's name made its
    value, a default credential; in code a name (``_self_named``: an enum member
    ``password = "password"``)."""
    text = value.strip().strip("\"'`")
    words = [word.rstrip(_SENTENCE_MARKS) for word in text.split()]
    if len(words) >= 2 and all(w.isalpha() for w in words):
        return True
    if text == key:
        return False
    said, named = _words(value), _words(key)
    return said == named or (text[:1].isupper() and bool(said)
                             and named[len(named) - len(said):] == said)


def _self_named(key: str, value: str, kind: str) -> bool:
    v = value.strip("\"'`")
    # `secretKey: MAGCFG_DB_PASSWORD` (External Secrets, Helm charts) names the key of a
    # Kubernetes Secret: an env-var name, or in a manifest a kebab/snake-case name; never
    # a value with long letter-digit runs. In code, `API_KEY = "..."` is key material
    # unless it names an env var.
    tokens = _words(key)
    if tokens and tokens[-1] == "key" and (
            _ENV_VAR_NAME.fullmatch(v)
            or (kind != "code" and (v.islower() or v.isupper()) and _names_a_key(v.lower()))):
        return True
    if kind != "code":
        # `MY_APP_ACCESS_TOKEN: API_ACCESS_TOKEN` (Buildkite's secrets, a CI's mapping of
        # a variable to the secret it is read from) names the secret it holds; the key's
        # own name as its value (`DB_PASSWORD=DB_PASSWORD`) is a default credential.
        return v != key and bool(_ENV_VAR_NAME.fullmatch(v)) and key_is_secret(v)
    # In code, `PASSWORD_FIELD = "password"`-style constants name a field, and
    # `EXTERNAL_SECRET = "externalsecret.yaml"` a file, not a secret.
    if _FILE_NAME.fullmatch(v):
        return True
    # A value ending in `auth` names no field: `password="unused-trust-auth"` is one; nor
    # does one whose words are not a name's (`"jwt-Fstr1ng-Secret-9"`), whatever they end in.
    return bool(re.fullmatch(r"[A-Za-z_][\w.-]*", v)) and _words_of_a_name(v) \
        and key_is_secret(v) and _words(v)[-1] not in _CREDENTIAL_LAST


def _k8s_env_value(lines: list[str], number: int, indent: int, name: str
                   ) -> tuple[bool, tuple[int, int] | None]:
    """For ``- name: SECRET_VAR`` on line ``number``: whether the line rule can tell
    if the entry has a literal ``value:`` (not when it is a block, folded, anchored or
    aliased scalar, or comes after another key: the parser's), and that value's line
    and column if it has."""
    for i in range(number, min(number + 4, len(lines))):
        line = lines[i]
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _YAML_VALUE.match(line)
        if m is None:
            # Another key of the entry may come before its value; a line no deeper than
            # the entry's dash is past the entry.
            return len(line) - len(line.lstrip()) <= indent, None
        if len(m.group(1)) <= indent or m.group(2) == "valueFrom":
            return True, None
        raw = m.group(3)
        value = _strip_yaml_comment(raw)
        if value in _LATER_VALUES or value.startswith(("&", "*")):
            return False, None
        column = m.start(3) + 1 + len(raw) - len(raw.lstrip())
        literal = is_literal(value) and not _not_key_material(name, value, "yaml")
        return True, ((i + 1, column) if literal else None)
    return False, None


def _env_message(name: str) -> str:
    return f"env var `{printable(name)}` is given a literal value ({REDACTED}) instead of valueFrom"


def prepare(ctx: LintContext) -> None:
    """Load detect-secrets' plugins once."""
    load_plugins()


def check(src: SourceFile, ctx: LintContext) -> Iterator[Finding]:
    """Yield at most one MAG002 finding per line (the most specific detector wins)."""
    hits = _hits(src, _kind_of(src), bool(_EXAMPLE.search(src.name)), True)
    for number in sorted(hits):
        hit = hits[number]
        yield finding(src, number, hit.column, RULE, hit.message, hit.fix or FIX,
                      hit.fingerprint)


def _hits(src: SourceFile, kind: str | None, example: bool, manifests: bool
          ) -> dict[int, Hit]:
    """Each line's most specific hit. ``manifests``: also read a Secret's ``data`` as
    what it decodes to (never within a decoded value)."""
    hits: dict[int, Hit] = {}
    structured = kind in ("yaml", "json")
    # A Secret's decoded value decides for itself: its base64 is neither a literal, nor
    # entropy, nor (a PEM key's base64 cut across lines) a finding of its own; the rest of
    # its lines (a minified JSON Secret's other fields) is read as any other text. Each
    # entry is read as it is parsed and kept as its verdict and, by line, where its base64
    # is: a hit looks at its own line's entries only.
    verdicts: list[tuple[int, Hit]] = []
    encoded: dict[int, list[tuple[tuple[int, int], tuple[int, int]]]] = {}
    for entry in secret_data(src) if structured and manifests else ():
        for number in entry.lines:
            encoded.setdefault(number, []).append((entry.start, entry.end))
        verdict = _decoded_hit(src, entry, example)
        if verdict is not None:
            verdicts.append((entry.line, verdict))

    def in_encoded(number: int, column: int) -> bool:
        # A line's spans are in the text's order and apart: the one starting last at or
        # before the place is the only one that can hold it (a minified JSON Secret has
        # all its entries on one line, too many to ask each of them for each hit).
        spans = encoded.get(number)
        if spans is None:
            return False
        place = (number, column)
        at = bisect.bisect_right(spans, place, key=lambda span: span[0]) - 1
        return at >= 0 and place <= spans[at][1]

    def keep(number: int, hit: Hit) -> None:
        if in_encoded(number, hit.column):
            return
        old = hits.get(number)
        if old is None or (hit.priority, hit.column) < (old.priority, old.column):
            hits[number] = hit

    for number, hit in _any_file_hits(src, example):
        keep(number, hit)
    if kind is not None:
        ciphertext = sealed_lines(src) if structured else frozenset()
        elsewhere: list[int] = []
        found: list[Iterator[tuple[int, Hit]]] = []
        # An XML file's key rule reads no comment (``_xml_uncommented``).
        keyed = _xml_uncommented(src) if kind == "xml" else src
        if example and _has_secret_word(src.text):
            found.append(_key_material_hits(keyed, _key_hits(keyed, kind)))
        elif _has_secret_word(src.text):
            found.append(_key_hits(keyed, kind, elsewhere if structured else None))
            if src.name.endswith((".tf", ".hcl")):
                found.append(_variable_default_hits(src))
            if kind == "code":
                found.append(_calls_over_lines(src))
            if src.name.endswith((".py", ".pyi")):
                found.append(_collection_hits(src))
            elif src.name.lower().endswith(_JS_ARRAY_EXT):
                found.append(_array_hits(src))
        found.append(entropy_hits(src, in_encoded if encoded else None))
        for number, hit in itertools.chain.from_iterable(found):
            if number not in ciphertext:
                keep(number, hit)
        if not example and structured and (elsewhere or _keys_only_a_parser_reads(src.text)):
            for number, hit in _parsed_hits(src, kind):
                if number not in ciphertext:
                    keep(number, hit)
        for number, hit in _connection_hits(src):
            keep(number, hit)
        if kind in ("shell", "make", "yaml", "json", "code") and not example:
            for number, hit in _command_line_hits(src, kind):
                keep(number, hit)
        if not example and (kind == "shell" or src.name.endswith(_HEREDOC_CODE)):
            for number, hit in _heredoc_hits(src, kind):
                keep(number, hit)
        if not example and kind == "shell":
            for number, hit in _continued_hits(src):
                keep(number, hit)
        if not example and kind in ("shell", "yaml") and "<<<" in src.text:
            for number, hit in _herestring_hits(src):
                keep(number, hit)
        if not example and kind in ("shell", "yaml") and "|" in src.text \
                and ("-stdin" in src.text or "--with-token" in src.text):
            for number, hit in _piped_credential_hits(src):
                keep(number, hit)
        if not example and kind == "xml" and _has_secret_word(src.text):
            for number, hit in _xml_text_hits(keyed):
                keep(number, hit)
        if not example and kind in ("shell", "yaml") and "chpasswd" in src.text:
            for number, hit in _chpasswd_hits(src):
                keep(number, hit)
        if not example and kind == "yaml":
            for number, hit in _ci_script_hits(src):
                keep(number, hit)
        if not example and kind in ("code", "yaml", "shell"):
            for number, hit in _secure_string_hits(src):
                keep(number, hit)
        if not example:
            for number, hit in _auth_header_hits(src):
                keep(number, hit)
    if not example and (kind is not None or src.name.lower().endswith(".sql")):
        for number, hit in _sql_password_hits(src):
            keep(number, hit)
    for number, verdict in verdicts:
        old = hits.get(number)
        if old is None or old.priority > 0:
            hits[number] = verdict
    return hits


# A hit's value, where the key rule puts its column: quoted, or a word.
_VALUE_AT = re.compile(r"""(["'`])([^\n]*?)\1|([^\s"'`;,]++)""")
_SAMPLE_ENTROPY = 3.5
"""gitleaks' least entropy of a generic secret (generic-api-key), which reads an example
file as any other."""


def _key_material_hits(src: SourceFile, found: Iterator[tuple[int, Hit]]
                       ) -> Iterator[tuple[int, Hit]]:
    """Of the key rule's hits in an example file (``.env.example``, ``setup-sample.sh``),
    those whose value is key material, not a placeholder: as random as gitleaks asks of a
    generic secret, not words (``your-api-token-here``, ``changeme``, ``s3cr3t``) and not
    marked as an example (AWS's documented ``...EXAMPLEKEY``). A sample holding a real
    key is the key's leak, whatever the file is called, as gitleaks reads it."""
    for number, hit in found:
        line = src.lines[number - 1] if number <= len(src.lines) else ""
        m = _VALUE_AT.match(line, hit.column - 1)
        value = (m.group(2) if m.group(1) else m.group(3)) if m is not None else ""
        if len(value) >= 10 and not _reads_as_name(value) \
                and "example" not in value.lower() \
                and shannon_entropy(value) >= _SAMPLE_ENTROPY:
            yield number, hit


def _any_file_hits(src: SourceFile, example: bool) -> Iterator[tuple[int, Hit]]:
    """The hits of the detectors that read a file of any kind: token formats, private
    keys, client credential files, key stores."""
    yield from format_hits(src)
    yield from encoded_private_key_hits(src)
    if not example:
        yield from _credential_file_hits(src)
    store = key_store(src.name, src.raw) if src.raw is not None else None
    if store is not None:
        # Bytes have no line to fingerprint: the baseline knows the store by its digest.
        yield 1, Hit(1, f"{store} in a committed file ({REDACTED})", 0,
                     f"sha256:{src.raw_digest}", KEY_STORE_FIX)


def _decoded_hit(src: SourceFile, entry: DataEntry, example: bool) -> Hit | None:
    """What a Secret's ``data`` entry decodes to, read as the file its key names
    (``.dockerconfigjson``, ``app.env``, ``tls.key``, ``keystore.p12``) or, for a key
    naming no kind of file, as the key's value (``password``), at the key's line."""
    inner = source(entry.key, entry.data)
    kind = _kind_of(inner)
    # A value of no kind of file (most are: `password`, `host`) is read by the detectors
    # of any file alone, without the rest of _hits' work (a Secret has up to 200,000).
    found = min(_hits(inner, kind, example, False).items() if kind is not None
                else _any_file_hits(inner, example),
                key=lambda item: (item[1].priority, item[0], item[1].column), default=None)
    message, fix = (found[1].message, found[1].fix) if found is not None else (None, None)
    # Bytes that are not text (a random key) read as U+FFFD, which would look like a
    # placeholder (`xxxx`): their base64 is the literal.
    binary = "\0" in inner.text or "\ufffd" in inner.text
    value = "".join(entry.encoded.split()) if binary else inner.text.strip()
    if message is None and kind is None and not example \
            and ("\n" not in value or _htpasswd_logins(value)) \
            and key_is_secret(entry.key) and is_literal(value) \
            and not _not_key_material(entry.key, value, "yaml"):
        message = f"`{printable(entry.key)}` is a literal value ({REDACTED})"
    if message is None:
        return None
    line = src.lines[entry.line - 1] if entry.line <= len(src.lines) else ""
    return Hit(entry.column, f"the Secret's `{printable(entry.key)}`, base64-decoded: "
                             f"{message}", 1,
               None if len(entry.lines) == 1 else f"{line}\n{entry.encoded}", fix)
