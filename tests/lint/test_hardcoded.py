"""MAG002 edge cases: key material under a `*KEY` name, Secret key names, signatures."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest

from magcfg.lint import hardcoded, lint
from magcfg.lint.walk import source

from ..conftest import failed_cleanly, tree_state
from .conftest import REPO, Fixture, MakeRepo, run_cli

BASELINE = ".magcfg-lint-baseline.json"


def test_api_key_literals_in_python_are_found(make_repo: MakeRepo) -> None:
    # The example of docs/secrets.md's policy, and a value that reads like a word.
    repo = make_repo({"app/settings.py": 'API_KEY = "sk-live-abc123def456"\n'
                                         'api_key = "qwerty987zz"\n'})
    before = tree_state(repo.root)
    done = run_cli(repo.root, "lint")
    err = failed_cleanly(done, 1)
    assert done.stdout.splitlines()[0::2] == [
        "app/settings.py:1:11: MAG002 error: `API_KEY` is assigned a literal value (<redacted>)",
        "app/settings.py:2:11: MAG002 error: `api_key` is assigned a literal value (<redacted>)"]
    assert "sk-live" not in done.stdout + err and "qwerty" not in done.stdout + err
    assert tree_state(repo.root) == before


@pytest.mark.parametrize(("text", "found"), [
    ("- secretKey: MAGCFG_DB_PASSWORD\n", False),    # External Secrets: an env var name
    ("- secretKey: db-password\n", False),           # a Secret's key, kebab-case
    ("- secretKey: s3_secret_access_key\n", False),  # snake-case words, short `s3`
    ("- secretKey: TOKEN\n", False),
    ("- secretKey: sk-live-abc123def456\n", True),   # long letter-digit run: material
    ("api_key: qwerty987zz\n", True),
    ("apiKey: Production\n", True),                  # mixed case is not a name
])
def test_secret_key_names_in_manifests(make_repo: MakeRepo, text: str, found: bool) -> None:
    repo = make_repo({"k8s/es.yaml": "data:\n" + text})
    assert [(f.line, f.rule) for f in lint(repo.root).findings] == ([(2, "MAG002")] if found
                                                                     else [])


@pytest.mark.parametrize(("text", "found"), [
    ('SECRET_KEY = "MAGFLOCK_SECRET_KEY"\n', False),  # names the env var that holds it
    ('signing_key = "correct-horse-battery\"\n', True),  # in code, words are material too
])
def test_key_names_in_code(make_repo: MakeRepo, text: str, found: bool) -> None:
    repo = make_repo({"a.py": text})
    assert bool(lint(repo.root).findings) is found


def test_signatures_and_dsse_payload_are_not_secrets(make_repo: MakeRepo) -> None:
    sig = "M2tdlHiX8FjQY+F+VmPn0qEV9Lmmlqo5jf1YZBTjRJkgMiJQqsJaGnWN7poy9SUDPoqMeThhQ3hCGT9i9edeDQ=="
    payload = "eyJfdHlwZSI6Imh0dHBzOi8vaW4tdG90by5pby9TdGF0ZW1lbnQvdjEiLCJwcmVkaWNhdGUiOnt9fQ=="
    envelope = (f'{{\n  "payload": "{payload}",\n  "payloadType": "application/vnd.in-toto+json",'
                f'\n  "signatures": [{{"keyid": "9172892a21666d30", "sig": "{sig}"}}]\n}}\n')
    # A Sigstore bundle's envelope is one JSON line, its `payload` within it.
    bundle = ('{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json", "dsseEnvelope": '
              f'{{"payloadType": "application/vnd.in-toto+json", "payload": "{payload}", '
              f'"signatures": [{{"keyid": "", "sig": "{sig}"}}]}}}}\n')
    repo = make_repo({"attestation.dsse.json": envelope, "app.sigstore.json": bundle,
                      # Outside a DSSE envelope a high-entropy `payload` still counts, and
                      # so does a `webhook_sig` that only ends in `sig`.
                      "other.json": f'{{"payload": "{payload}",\n "webhook_sig": "{sig}"}}\n'})
    assert [(f.file, f.line) for f in lint(repo.root).findings] == [
        ("other.json", 1), ("other.json", 2)]


def test_a_google_cloud_resource_name_is_no_secret(make_repo: MakeRepo) -> None:
    """A workload identity provider's resource name (`projects/<number>/locations/...`),
    which GitHub's Google auth action is given, names what IAM grants: no entropy finding,
    where a random string of its length beside it is one."""
    provider = ("projects/123456789012/locations/global/workloadIdentityPools/gh7Pool2x/"
                "providers/gh9Prov4k")
    repo = make_repo({".github/workflows/deploy.yml": f"""\
jobs:
  deploy:
    steps:
      - uses: google-github-actions/auth@v2
        with:
          workload_identity_provider: '{provider}'
          service_account: 'deployer@shop-123.iam.gserviceaccount.com'
      - run: ./deploy.sh
        env:
          BLOB: "CANARYk2mQ7xR4tY8wPz3LkT5nVb9" «MAG002»
"""})
    expected, found = expected_and_found(repo)
    assert found == expected


def test_a_syntax_highlighter_s_token_types_are_no_tokens(make_repo: MakeRepo) -> None:
    """ace's and CodeMirror's rules name a token type (`token: "constant.numeric"`, ace's
    `defaultToken: "text"`): lower-case words, no credential; a token of another shape
    under the same key is one."""
    repo = make_repo({"web/mode-shop.js": """\
var rules = {
    start: [
        { token: "keyword", regex: "\\\\b(?:if|else)\\\\b" },
        { token : "constant.numeric", regex : "0[xX][0-9a-fA-F]+" },
        { token: "empty_line", regex: "^$" },
        { defaultToken: "text" },
    ]
};
var session = { token: "CANARYk2mQ7xR4tY8" }; «MAG002»
"""})
    expected, found = expected_and_found(repo)
    assert found == expected


def test_a_url_login_in_a_comment_is_one_unless_it_shows_a_login_s_shape(
        make_repo: MakeRepo) -> None:
    """A comment leaks a URL's login as code does (detect-secrets reads comments; the
    login works wherever its host is); a login of generic words, `user:pass`,
    `username:password`, `USER:TOKEN`, shows the shape of one and is none, in a comment
    or a string."""
    repo = make_repo({"scripts/catalog.sh": """\
#!/bin/sh
# curl https://admin:CANARYu1-x9@registry.internal/v2/_catalog «MAG002»
# curl https://user:pass@registry.internal/v2/_catalog
# the URL's shape: https://username:password@host/path
echo "usage: $0 https://USER:PASSWORD@host"
# a URL's login, as CI pushes with a token: https://USER:TOKEN@HOST/org/repo.git
curl "https://${REGISTRY_USER}:${REGISTRY_PASSWORD}@registry.internal/v2/_catalog"
"""})
    expected, found = expected_and_found(repo)
    assert found == expected
    done = run_cli(repo.root, "lint")
    assert "CANARY" not in done.stdout + done.stderr


def test_an_openssl_config_s_password_sources(make_repo: MakeRepo) -> None:
    """An OpenSSL config's `secret` takes a password source as its options do: `pass:`'s
    password is a finding; `env:VAR` and `file:path` say where it is, and the Insta Demo
    CA's `pass:insta`, in OpenSSL's own openssl.cnf as distributions ship it, is a demo
    password OpenSSL publishes."""
    repo = make_repo({"etc/ssl/openssl.cnf": """\
[insta] # CMP using Insta Demo CA
server = pki.certificate.fi:8700
ref = 3078 # user identification
secret = pass:insta # can be used for both client and server side
[shop]
secret = pass:CANARYssl1-x9 «MAG002»
[ci]
secret = env:CMP_SECRET
[prod]
secret = file:/run/secrets/cmp
"""})
    expected, found = expected_and_found(repo)
    assert found == expected
    done = run_cli(repo.root, "lint")
    assert "CANARY" not in done.stdout + done.stderr


def test_an_aws_key_id_within_base64_data_is_none(make_repo: MakeRepo) -> None:
    """An access key id is a whole word, as gitleaks reads one: base64 data that holds
    `AKIA` and 16 capitals by chance (a wasm module inlined in a JS bundle) is none, the
    same id standing alone is one."""
    key_id = "AKIAQ3EGUK7ZXTW2MN4B"
    blob = "AGFzbQEAAAAB" + "AAAAAAAAAAAAAAAA" + key_id + "ABIAAAAAAAAAAAAAAAA" + "A" * 40
    repo = make_repo({"web/llhttp-wasm.js": f"""\
module.exports = Buffer.from("{blob}", "base64");
const deployKey = ["{key_id}"]; «MAG002»
"""})
    expected, found = expected_and_found(repo)
    assert found == expected


def test_a_pygments_style_of_its_root_token_is_no_token(make_repo: MakeRepo) -> None:
    """Pygments' styles give the root token type its style (`Token: "#f8f8f2"`, `"bold
    bg:#000 #fff"`), as every style Pygments ships does: no token; a token of another shape
    under the name is one."""
    repo = make_repo({"docs/_themes/shop_style.py": """\
from pygments.style import Style
from pygments.token import Keyword, Token


class ShopStyle(Style):
    styles = {
        Token:                  '#f8f8f2',
        Keyword:                'bold #66d9ef',
    }
    background = {Token: "bold bg:#272822 #f8f8f2"}

Token = "CANARYk2mQ7xR4tY8" «MAG002»
"""})
    expected, found = expected_and_found(repo)
    assert found == expected


def test_the_shell_s_working_directory_set_by_name_is_no_password(
        make_repo: MakeRepo) -> None:
    """`PWD` and `OLDPWD` set to a directory's path (GitPython's
    `update_environment(PWD='/tmp')`, a Dockerfile's `ENV PWD=/app`) are the shell's
    working directory; `PWD` set to anything else, and `DB_PWD`, stay passwords."""
    repo = make_repo({
        "lib/run.py": "old = self.update_environment(PWD='/tmp')\n"
                      "env = dict(os.environ, OLDPWD=\"./build\")\n"
                      "login(PWD='CANARYpwd1-x9') «MAG002»\n",
        "Dockerfile": "FROM alpine\nENV PWD=/app\nENV DB_PWD=/CANARYpwd2-x9 «MAG002»\n",
    })
    expected, found = expected_and_found(repo)
    assert found == expected
    done = run_cli(repo.root, "lint")
    assert "CANARY" not in done.stdout + done.stderr


YAML_SHAPES = """\
block:
  password: |
    CANARYblock1xyz
folded:
  password: >-
    CANARYfold1xyz
below:
  password:
    CANARYnext1xyz
flow: {password: CANARYflow1xyz}
quoted:
  "pass\\x77ord": CANARYesc1xyz
complex:
  ? password
  : CANARYcplx1xyz
defaults: &pw CANARYalias1xyz
aliased:
  token: *pw
prose:
  private_key: |
    see vault
tagged:
  password: !vault secret/db#password
ref: &ref vault://secret/db#password
refs:
  password: *ref
nested:
  secret:
    name: db-credentials
"""


def test_yaml_and_json_values_where_only_a_parser_sees_them(make_repo: MakeRepo) -> None:
    """A secret-like key's value in a block or folded scalar, on the line below it, in a
    flow mapping, under an escaped or complex key, or through an alias: read as a YAML
    parser reads it, each found at its value's line; references, tags and prose not."""
    repo = make_repo({"k8s/values.yaml": YAML_SHAPES,
                      "conf/app.json": '{"db": {"password":\n   "CANARYjson1xyz"},\n'
                                       ' "\\u0070assword": "CANARYjson2xyz"}\n',
                      # Not YAML (a Helm template): the line rule's findings only.
                      "chart/templates/s.yaml": "{{- if .Values.x }}\npassword: CANARYtpl1\n"
                                                "{{- end }}\n"})
    done = run_cli(repo.root, "lint")
    found = [line.split(": MAG002")[0] for line in done.stdout.splitlines()[0::2]]
    assert found == ["chart/templates/s.yaml:2:11", "conf/app.json:2:4", "conf/app.json:3:19",
                     "k8s/values.yaml:2:13", "k8s/values.yaml:5:13", "k8s/values.yaml:9:5",
                     "k8s/values.yaml:10:18", "k8s/values.yaml:12:18", "k8s/values.yaml:15:5",
                     "k8s/values.yaml:18:10"]
    assert "CANARY" not in done.stdout + done.stderr


def expected_and_found(repo: Fixture) -> tuple[set[tuple[str, int, str]], set[tuple[str, int, str]]]:
    """The fixture's marked findings, and what lint finds."""
    return repo.expected, {(f.file, f.line, f.rule) for f in lint(repo.root).findings}


def test_permission_levels_are_not_secrets(make_repo: MakeRepo) -> None:
    repo = make_repo({".github/workflows/ci.yml": """\
permissions:
  id-token: write
  contents: read
jobs:
  deploy:
    permissions: {id-token: write, contents: none}
    env:
      API_TOKEN: CANARYgha1 «MAG002»
"""})
    expected, found = expected_and_found(repo)
    assert found == expected


SOPS = "ENC[AES256_GCM,data:Q0FOQVJZc29wczE=,iv:q2Jk8nD4wV0xYz+/AbC=,tag:Ab3dQ9xZ+w==,type:str]"
SEALED = "AgCANARYs3aL1q9vTz4Kx8mN2pR7wB5yH0jF6dG3cE1uQ8oI4tL7nM9kV2bX5zS0aW"


def test_encrypted_values_are_not_literals(make_repo: MakeRepo) -> None:
    """SOPS values and a SealedSecret's encryptedData are ciphertext; a token format there
    is still a finding, and so is a literal in any other document or field."""
    repo = make_repo({
        "secrets/db.enc.yaml": f"db:\n  password: {SOPS}\n  token: ENC[CANARYnotsops1] «MAG002»\n",
        "secrets/app.enc.json": f'{{"api_key": "{SOPS}"}}\n',
        "secrets/app.enc.env": f"DB_PASSWORD={SOPS}\n",
        "k8s/sealed.yaml": f"""\
apiVersion: bitnami.com/v1alpha1
kind: SealedSecret
metadata:
  name: db
spec:
  encryptedData:
    password: {SEALED}
    api_token: "{SEALED}"
    private_key: >-
      {SEALED}
    github: ghp_CANARY0abcdefghijklmnopqrstuvwxyz1234 «MAG002»
  template:
    metadata:
      name: db
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: not-sealed
data:
  password: CANARYplain1 «MAG002»
spec:
  encryptedData:
    password: CANARYplain2 «MAG002»
""",
        "k8s/sealed.json": '{"kind": "SealedSecret", "spec": {"encryptedData": {\n'
                           f'  "token": "{SEALED}"}}}}}}\n'})
    expected, found = expected_and_found(repo)
    assert found == expected


def test_prose_and_labels_are_not_secrets(make_repo: MakeRepo) -> None:
    """UI and i18n text under a secret-like key: several words of letters, or the key's own
    words. A passphrase of plain words reads as prose too (docs/lint.md's trade-off)."""
    repo = make_repo({
        "web/locales/en.json": '{"password": "Password", "token": "Access token",\n'
                               ' "apiKey": "API key", "secret": "Contraseña secreta",\n'
                               ' "db_password": "password"} «MAG002»\n',
        "config/locales/en.yml": 'en:\n  password_confirmation: "Password confirmation"\n'
                                 '  session_token: "CANARY two2 words" «MAG002»\n',
        "app/errors.py": 'INVALID_TOKEN = "Invalid or expired token"\n'
                         'API_TOKEN = "CANARYtok1 expired" «MAG002»\n'
                         'PASSPHRASE = "correct horse battery staple"\n'})
    expected, found = expected_and_found(repo)
    assert found == expected


def test_prose_of_sentences_is_not_a_secret(make_repo: MakeRepo) -> None:
    """Words that end a sentence or a clause (`expression.`, `side,`) are prose's words:
    babel's messages under names that hold `Token`; a value of one word with a mark, or
    a word that mixes in digits, is not prose."""
    repo = make_repo({"dist/babel.js": """\
var m={UnexpectedTokenUnaryExponentiation:"Illegal expression. Wrap it in parentheses.",
InvalidTokenType:"Unexpected token, expected one of: string, number!"};
var s={sessionToken:"CANARYtk7. done", apiToken:"CANARYtk8."}; «MAG002»
"""})
    expected, found = expected_and_found(repo)
    assert found == expected


def test_an_http_authorization_header_s_credential(make_repo: MakeRepo) -> None:
    """An Authorization header's credential a command sends or code sets (gitleaks'
    curl-auth-header) is a finding; a variable, an expression, a placeholder and a name
    are none."""
    repo = make_repo({
        "scripts/call.sh": """\
curl -H "Authorization: Bearer CANARYq8vR2mX9wLt4Zn7" https://api.internal/v1 «MAG002»
curl --header 'Authorization: token CANARYw8vR2mX9wLt4Zn' https://api.internal/v1 «MAG002»
curl -H "Authorization: Bearer $API_TOKEN" https://api.internal/v1
curl -H "Authorization: Bearer ${{ secrets.API_TOKEN }}" https://api.internal/v1
curl -H "Authorization: Bearer <token>" https://api.internal/v1
curl -H "Authorization: Bearer YOUR_API_TOKEN" https://api.internal/v1
""",
        "app/client.py": 'HEADERS = {"Authorization": "Bearer CANARYp8vR2mX9wLt4Zn"} «MAG002»\n'
                         'AUTH = {"Authorization": f"Bearer {token}"}\n',
    })
    expected, found = expected_and_found(repo)
    assert found == expected
    done = run_cli(repo.root, "lint")
    assert "CANARY" not in done.stdout + done.stderr


def test_a_secret_s_name_as_a_value_names_it(make_repo: MakeRepo) -> None:
    """In YAML and JSON a variable mapped to the name of the secret it is read from
    (Buildkite's secrets, `MY_APP_ACCESS_TOKEN: API_ACCESS_TOKEN`) names it; a value in
    capitals that names no secret, or is not a name, is one, and so is the key's own name
    (a default credential)."""
    repo = make_repo({
        ".buildkite/pipeline.yml": """\
secrets:
  MY_APP_ACCESS_TOKEN: API_ACCESS_TOKEN
  DB_PASSWORD: PROD_DB_PASSWORD
  DEPLOY_TOKEN: CANARY_DEPLOY_7QX «MAG002»
  SEARCH_TOKEN: SEARCH_TOKEN «MAG002»
""",
        "schema/example.json": '{"env": {"MY_APP_ACCESS_TOKEN": "API_ACCESS_TOKEN"}}\n',
    })
    expected, found = expected_and_found(repo)
    assert found == expected


def test_a_flow_collection_is_read_by_the_parser(make_repo: MakeRepo) -> None:
    """A flow mapping under a secret-like key holds settings, not the secret (cert-manager's
    privateKey); what is in it, and a block sequence's items under a secret-like key, are
    read as the parser reads them (`[redacted]` stays a placeholder)."""
    repo = make_repo({"k8s/cert.yaml": """\
apiVersion: cert-manager.io/v1
kind: Certificate
spec:
  privateKey: {algorithm: ECDSA, size: 256}
  keystores: {pkcs12: {create: true, passwordSecretRef: {name: p12, key: password}}}
tls: {privateKey: CANARYflow2} «MAG002»
api_key: [redacted]
password:
  - CANARYseq2 «MAG002»
"""})
    expected, found = expected_and_found(repo)
    assert found == expected


def test_hcl_powershell_vue_and_templates_have_the_key_rule(make_repo: MakeRepo) -> None:
    """Each file kind that assigns a secret-like key: HCL, Terraform state (JSON),
    PowerShell, Vue, and a template, as the file its name has without the suffix. Only an
    explicit example marker exempts a file: `template.yaml` is AWS SAM's default name."""
    repo = make_repo({
        "infra/main.tf": 'resource "aws_db_instance" "db" {\n'
                         '  password = "CANARYtf1" «MAG002»\n'
                         '  master_password = var.db_password\n}\n',
        "infra/prod.tfvars": 'db_password = "CANARYtfv1" «MAG002»\n',
        "infra/terragrunt.hcl": 'inputs = {\n  api_token = "CANARYhcl1" «MAG002»\n}\n',
        "infra/terraform.tfstate": '{"resources": [{"instances": [{"attributes": {\n'
                                   '  "password": "CANARYstate1", «MAG002»\n'
                                   '  "password_wo": null}}]}]}\n',
        "ops/deploy.ps1": '$password = "CANARYps1" «MAG002»\n$env:API_TOKEN = "CANARYps2" «MAG002»\n'
                          '$token = $env:API_TOKEN\n',
        "web/Login.vue": "<script>\nconst apiKey = 'CANARYvue1' «MAG002»\n</script>\n",
        "helmfile/values.yaml.gotmpl": "password: CANARYgo1 «MAG002»\n"
                                       'token: {{ requiredEnv "TOKEN" }}\n',
        "ansible/app.yaml.j2": "password: CANARYj1 «MAG002»\nsecret: '{{ vault_secret }}'\n",
        "ops/app.env.tmpl": "API_TOKEN=CANARYtm1 «MAG002»\n",
        "config/database.yml.erb": "password: CANARYerb1 «MAG002»\ntoken: <%= ENV['T'] %>\n",
        "sam/template.yaml": "Parameters:\n  DbPassword:\n    Default: x\nGlobals:\n"
                             "  Environment:\n    DB_PASSWORD: CANARYsam1 «MAG002»\n",
        "k8s/secret-template.yaml": "stringData:\n  password: CANARYst2 «MAG002»\n",
        # Examples say so in their names.
        ".env.template": "PASSWORD=changeme1\n",
        "config/app.template.yaml": "password: changeme2\n",
        "config/app.tpl": "password = 'changeme3'\n",
        "config/app.example.yaml": "password: changeme4\n",
        "config/app_sample.env": "PASSWORD=changeme5\n",
        "config/.env.dist": "PASSWORD=changeme6\n",
    })
    expected, found = expected_and_found(repo)
    assert found == expected


def test_powershell_steps_and_secure_strings(make_repo: MakeRepo) -> None:
    """A PowerShell step of a CI file (GitHub's `shell: pwsh` run, `pwsh:` and
    `powershell:` steps) assigns as PowerShell does, and a secure string made of a literal
    (`ConvertTo-SecureString '...' -AsPlainText`) is a finding there and in a `.ps1` file;
    a variable, an expression and an encrypted standard string are none."""
    repo = make_repo({
        ".github/workflows/win.yml": """\
on: push
jobs:
  deploy:
    runs-on: windows-latest
    steps:
      - shell: pwsh
        run: |
          $env:DB_PASSWORD = 'CANARYpw1' «MAG002»
          $cred = ConvertTo-SecureString 'CANARYpw2' -AsPlainText -Force «MAG002»
          $env:API_TOKEN = "${{ secrets.API_TOKEN }}"
          $pw = ConvertTo-SecureString $env:DB_PASSWORD -AsPlainText -Force
      - pwsh: $env:API_TOKEN = 'CANARYpw3' «MAG002»
      - powershell: |
          $script:password = "CANARYpw4" «MAG002»
          $password = $env:PASSWORD
      - run: |
          [ "$PASSWORD" = "expected" ] || exit 1
""",
        "ops/login.ps1": """\
$a = ConvertTo-SecureString -String "CANARYpw5" -AsPlainText -Force «MAG002»
$b = convertto-securestring -AsPlainText -Force 'CANARYpw6' «MAG002»
$c = ConvertTo-SecureString "$($secret.Value)" -AsPlainText -Force
$d = ConvertTo-SecureString $encrypted -Key $key
# $e = ConvertTo-SecureString 'not-code' -AsPlainText
""",
    })
    expected, found = expected_and_found(repo)
    assert found == expected
    done = run_cli(repo.root, "lint")
    assert "CANARY" not in done.stdout + done.stderr


def test_xml_text_named_by_its_name_or_key_attribute(make_repo: MakeRepo) -> None:
    """An element's text its `name` or `key` attribute names is that key's value: Android's
    string resources and Java's properties as XML; a UI label (prose, the key's last word
    capitalised) and a positional format field are none."""
    repo = make_repo({
        "app/src/main/res/values/strings.xml": """\
<?xml version="1.0" encoding="utf-8"?>
<resources>
    <string name="app_name">Shop</string>
    <string name="db_password">CANARYand1</string> «MAG002»
    <string name="api_key" translatable="false">CANARYand2</string> «MAG002»
    <string name="password_hint">Enter your password</string>
    <string name="prompt_password">Password</string>
    <string name="pref_password_summary">%1$s</string>
    <string name="auth_token">@string/app_name</string>
</resources>
""",
        "conf/app.properties.xml": """\
<properties>
  <entry key="db.user">shop</entry>
  <entry key="db.password">CANARYprop1</entry> «MAG002»
</properties>
""",
    })
    expected, found = expected_and_found(repo)
    assert found == expected
    done = run_cli(repo.root, "lint")
    assert "CANARY" not in done.stdout + done.stderr


def test_an_example_file_s_key_material_is_a_finding(make_repo: MakeRepo) -> None:
    """An example file (`.env.example`, `setup-sample.sh`) is read as gitleaks reads it:
    a value under a secret-like key that is key material (random, as gitleaks asks of a
    generic secret) is a finding; a placeholder of words, a short one and AWS's
    documented `...EXAMPLEKEY` are none."""
    repo = make_repo({
        "scripts/setup-sample.sh": """\
export DB_PASSWORD=CANARYq8rT2vLm9pXw4Z «MAG002»
export API_TOKEN="CANARYk2mQ7xR4-tY8wPz3L" «MAG002»
export DB_PASSWORD=changeme
export API_TOKEN=your-api-token-here
export SESSION_SECRET=my-super-secret-key-change-in-production
""",
        ".env.example": """\
AWS_SECRET_ACCESS_KEY=CANARYXUtnFEMI/K7MDENG/bPxRfiCYzQWERTYKEY «MAG002»
AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
DB_PASSWORD=s3cr3t
SECRET_KEY=<generate-one>
""",
    })
    expected, found = expected_and_found(repo)
    assert found == expected
    done = run_cli(repo.root, "lint")
    assert "CANARY" not in done.stdout + done.stderr


def test_env_entries_in_any_shape(make_repo: MakeRepo) -> None:
    """A Kubernetes or ECS env entry with a secret-like name and a literal value, however
    it is written: flow, value before name, folded, anchored or aliased, ECS's JSON."""
    repo = make_repo({
        "k8s/deploy.yaml": """\
defaults: &pw CANARYanchor0
env:
  - {name: SECRET_KEY, value: CANARYflow1} «MAG002»
  - value: CANARYbefore1 «MAG002»
    name: DB_PASSWORD
  - name: API_TOKEN
    value: >- «MAG002»
      CANARYfold1
  - name: SIGNING_KEY
    value: &sk CANARYanchor1 «MAG002»
  - name: X_TOKEN
    value: *pw «MAG002»
  - name: DB_PASSWORD
    image: kept-apart
    value: CANARYlater1 «MAG002»
  - {name: SESSION_SECRET, valueFrom: {secretKeyRef: {name: s, key: k}}}
  - name: LOG_LEVEL
    value: CANARYnotsecret
  - value: vault://secret/app#token
    name: API_TOKEN
secretKeyRef:
  name: db-password
  key: password
""",
        "ecs/task.json": '{"containerDefinitions": [{"environment": [\n'
                         '  {"name": "DB_PASSWORD", "value": "CANARYecs1"}, «MAG002»\n'
                         '  {\n    "value": "CANARYecs2", «MAG002»\n    "name": "API_TOKEN"\n  },\n'
                         '  {"name": "REGION", "value": "eu-west-1"}],\n'
                         '  "secrets": [{"name": "DB_TOKEN", "valueFrom": "arn:aws:ssm:x"}]}]}\n'})
    expected, found = expected_and_found(repo)
    assert found == expected
    done = run_cli(repo.root, "lint")
    assert "CANARY" not in done.stdout + done.stderr


def _token(prefix: str, alphabet: str, length: int, suffix: str = "") -> str:
    """A made-up token of a format: ``length`` characters of ``alphabet``, cycled, after
    ``prefix`` (built here so that no scanner of this repository reads one in the file)."""
    body = (alphabet * (length // len(alphabet) + 1))[:length]
    return prefix + body + suffix


_MIXED = "CANARY0aB1cD2eF3gH4iJ5kL6mN7oP8qR9sT_uVwXyZ"
TOKENS = {
    "github_fine_grained": _token("github_pat_", _MIXED, 82),
    "google": _token("AIza", _MIXED.replace("_", "-"), 35),
    "hugging_face": _token("hf_", "CANARYabcdefghijklmnopqrstuvwxyz", 34),
    "openai": _token("sk-proj-", _MIXED, 74) + "T3BlbkFJ" + _token("", _MIXED[::-1], 74),
    "anthropic": _token("sk-ant-api03-", _MIXED, 93, "AA"),
    "digitalocean": _token("dop_v1_", "0123456789abcdef", 64),
    "shopify": _token("shpat_", "0123456789abcdef", 32),
    "slack_workflow": _token("https://hooks.slack.com/workflows/T0CANARY/A0CANARY/",
                             "0123456789", 18, "/" + _token("", _MIXED, 24)),
    "stripe_test": _token("sk_test_", _MIXED.replace("_", ""), 24),
    "stripe_restricted_test": _token("rk_test_", _MIXED.replace("_", ""), 99),
    "age": _token("AGE-SECRET-KEY-1", "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L", 58),
    "vault_service": _token("hvs.", _MIXED + "-", 95),
    "vault_batch": _token("hvb.", _MIXED + "-", 140),
    "terraform_cloud": _token("canary0abc1def.atlasv1.", _MIXED.lower(), 67),
    "npm": _token("npm_", _MIXED.replace("_", ""), 36),
    "pulumi": _token("pul-", "0123456789abcdef", 40),
    "doppler": _token("dp.pt.", _MIXED.replace("_", ""), 43),
    "grafana": _token("glsa_", _MIXED.replace("_", ""), 32, "_0a1b2c3d"),
    "databricks": _token("dapi", "0123456789abcdef", 32),
    "heroku": _token("HRKU-AA", _MIXED, 58),
    "linear": _token("lin_api_", _MIXED.replace("_", ""), 40),
    "postman": _token("PMAK-", "0123456789abcdef", 24, "-" + _token("", "fedcba9876543210", 34)),
    "dynatrace": _token("dt0c01.", "CANARY0123456789", 24,
                        "." + _token("", _MIXED.replace("_", ""), 64)),
    "onepassword": _token("ops_eyJ", _MIXED.replace("_", "+"), 260),
    "azure_ad": _token("Ca_8Q~", _MIXED + "~.-", 34),
    "azure_service_bus": _token("SharedAccessKey=", _MIXED.replace("_", "+"), 43, "="),
    "teams": "https://canary.webhook.office.com/webhookb2/0a1b2c3d-0a1b-0a1b-0a1b-0a1b2c3d4e5f"
             "@0a1b2c3d-0a1b-0a1b-0a1b-0a1b2c3d4e5f/IncomingWebhook/"
             + _token("", "0123456789abcdef", 32) + "/0a1b2c3d-0a1b-0a1b-0a1b-0a1b2c3d4e5f",
    "sentry": _token("sntryu_", "0123456789abcdef", 64),
}
# Each format's placeholder, whose characters are too few to be a token's.
PLACEHOLDERS = ["AIza" + "x" * 35, "sk_test_" + "x" * 24, "AGE-SECRET-KEY-1" + "Q" * 58,
                "hvs." + "x" * 95, "npm_" + "x" * 36, "dapi" + "0" * 32,
                "SharedAccessKey=" + "x" * 43 + "=", "sntryu_" + "0" * 64,
                "https://hooks.slack.com/triggers/T00000000/0000000000000/" + "X" * 32,
                "https://acme.webhook.office.com/webhookb2/" + "0" * 8 + "-0000" * 3 + "-" + "0" * 12
                + "@" + "0" * 8 + "-0000" * 3 + "-" + "0" * 12 + "/IncomingWebhook/" + "0" * 32
                + "/" + "0" * 8 + "-0000" * 3 + "-" + "0" * 12]


def test_token_formats_detect_secrets_lacks(make_repo: MakeRepo) -> None:
    """gitleaks' patterns for the formats detect-secrets 1.5 has no plugin for, in any file
    (here prose, where the key rule does not look); a low-entropy placeholder is none."""
    lines = [f"{name}: {token}" for name, token in TOKENS.items()]
    repo = make_repo({"docs/leak.md": "\n".join(lines) + "\n"
                      + "".join(f"placeholder: {text}\n" for text in PLACEHOLDERS)})
    done = run_cli(repo.root, "lint")
    found = [line.split(": ", 1) for line in done.stdout.splitlines()[0::2]]
    assert [where for where, _ in found] == [f"docs/leak.md:{n}:{len(name) + 3}"
                                             for n, name in enumerate(TOKENS, 1)]
    assert all(what.startswith("MAG002 error: ") and what.endswith(" in a committed file "
                                                                    "(<redacted>)")
               for _, what in found)
    out = done.stdout + done.stderr
    assert "CANARY" not in out and not any(token in out for token in TOKENS.values())


def test_vault_s_legacy_service_token(make_repo: MakeRepo) -> None:
    """Vault's service token before 1.10 (`s.` and 24 letters and digits) is found where it
    begins a word, as gitleaks' vault-service-token finds it; 24 letters alone (a dotted
    name), a placeholder and `s.` inside a word are none."""
    token = _token("s.", _MIXED.replace("_", ""), 24)
    repo = make_repo({"deploy/vault.sh": f"""\
export VAULT_TOKEN="$(cat token)"
curl -H "X-Vault-Token: {token}" https://vault:8200/v1/secret/app «MAG002»
vault login {token} «MAG002»
x = this.s.RenameClientCapabilities
y = s.000000000000000000000000
z = status.{token[2:]}
"""})
    expected, found = expected_and_found(repo)
    assert found == expected
    done = run_cli(repo.root, "lint")
    assert "CANARY" not in done.stdout + done.stderr


def test_passwords_in_a_url_s_query_and_oracle_s_thin_logins(make_repo: MakeRepo) -> None:
    """A password in a URL's query (`?user=app&password=...`: JDBC's PostgreSQL and
    MySQL URLs) and Oracle's `jdbc:oracle:thin:user/<password>@host` are findings at
    their line; a reference, a format field and a URL without a login are not."""
    repo = make_repo({
        "config/application.yaml": """\
spring:
  datasource:
    url: jdbc:postgresql://db:5432/app?user=app&password=CANARYjq1-x9 «MAG002»
    mysql: "jdbc:mysql://db:3306/app?password=CANARYjq2-x9&useSSL=true" «MAG002»
    oracle: jdbc:oracle:thin:app/CANARYjo1-x9@db:1521/XE «MAG002»
    ref: jdbc:postgresql://db:5432/app?user=app&password=${DB_PASSWORD}
    field: jdbc:postgresql://db:5432/app?user=app&password={password}
    oracle_ref: jdbc:oracle:thin:app/${DB_PASSWORD}@db:1521/XE
    oracle_wallet: jdbc:oracle:thin:@//db:1521/XE
"""})
    expected, found = expected_and_found(repo)
    assert found == expected
    done = run_cli(repo.root, "lint")
    assert "CANARY" not in done.stdout + done.stderr


def test_names_run_together_and_libpq_connection_strings(make_repo: MakeRepo) -> None:
    repo = make_repo({
        "ops/pg.env": "PGPASSWORD=CANARYpg1 «MAG002»\nDBPASSWORD=CANARYdb1 «MAG002»\n"
                      "GITHUBTOKEN=CANARYgh1 «MAG002»\npassword2=CANARYp21 «MAG002»\n"
                      "TOKENIZER=bert-base\nPASSWORDLESS=true\n",
        "app/db.py": 'DSN = "host=db user=app password=CANARYdsn1 sslmode=require" «MAG002»\n'
                     'OTHER = "dbname=app password=CANARYdsn2" «MAG002»\n'
                     "conn = connect(user=user, password=password)\n"
                     'TEMPLATE = f"host={host} user={user} password={password}"\n'
                     'PERCENT = "host=%s user=%s password=%s"\n'
                     # A format field before an escaped line end is no password.
                     'LINE = "host=%s user=%s password=%s\\n"\n'
                     'ESCAPED = "host=db user=app password=CANARY\\\\dsn3" «MAG002»\n',
        "ops/env.sh": "printf 'PASSWORD=%s\\n' \"$pw\" >> .env\n",
    })
    expected, found = expected_and_found(repo)
    assert found == expected


KEY_BODY = "MIIEpAIBAAKCAQEAyCANARYkey1"


@pytest.mark.parametrize(("name", "text", "old", "new"), [
    ("k8s/values.yaml", "db:\n  password: |\n    CANARYblock1\n", "CANARYblock1", "CANARYblock2"),
    ("k8s/values.yaml", "db:\n  password: >-\n    CANARYfold1\n", "CANARYfold1", "CANARYfold2"),
    ("k8s/values.yaml", "defaults: &pw CANARYalias1\ndb:\n  token: *pw\n", "CANARYalias1",
     "CANARYalias2"),
    ("k8s/deploy.yaml", "env:\n  - name: API_TOKEN\n    value: >-\n      CANARYenv1\n",
     "CANARYenv1", "CANARYenv2"),
    ("certs/key.pem", f"-----BEGIN RSA PRIVATE KEY-----\n{KEY_BODY}\n-----END RSA PRIVATE KEY-----\n",
     KEY_BODY, KEY_BODY.replace("key1", "key2")),
    ("k8s/tls.yaml", f"tls:\n  key: |\n    -----BEGIN PRIVATE KEY-----\n    {KEY_BODY}\n"
                     "    -----END PRIVATE KEY-----\n", KEY_BODY, KEY_BODY.replace("key1", "key2")),
])
def test_an_edited_secret_below_its_finding_is_not_the_baselined_one(
        make_repo: MakeRepo, name: str, text: str, old: str, new: str) -> None:
    """A finding whose secret is below the line it points at (a block scalar, an alias, a
    PEM key) is known to the baseline by the secret as well: the edited secret is a new
    finding, while the same secret re-indented is still the accepted one."""
    repo = make_repo({name: text})
    assert run_cli(repo.root, "lint", "--write-baseline").returncode == 0
    path = repo.root / name
    path.write_text(text.replace("\n  ", "\n    "))
    assert run_cli(repo.root, "lint", "--baseline", BASELINE).returncode == 0
    path.write_text(text.replace(old, new))
    done = run_cli(repo.root, "lint", "--baseline", BASELINE)
    failed_cleanly(done, 1)
    assert done.stdout.count(" MAG002 ") == 1
    assert "CANARY" not in done.stdout + done.stderr and KEY_BODY[:20] not in done.stdout


def test_a_long_line_is_checked_in_one_pass(make_repo: MakeRepo) -> None:
    """A line of 80,000 spaces between a key and what follows: each line pattern tried
    the rest of the line at each character (20,000 spaces took 7-33 s a pattern), so a
    file of a few such lines held the gate for hours. The run must end, well within the
    timeout, and still find what the lines hold."""
    pad = " " * 80_000
    repo = make_repo({
        "app.py": f"password: b{pad}!\nAPI_KEY = 'CANARYlong1'\n",
        "prod.env": f"PASSWORD=a{pad}x\nDB_PASSWORD=CANARYlong2\n",
        "settings.ini": f"password=a{pad}x\n",
        "Dockerfile": f"ENV PASSWORD a{pad}=\n",
        "compose.yaml": f"env:\n  - PASSWORD=a{pad}x\n",
        "keys.yaml": '"' + "\\" * 80_000 + "\n",
    })
    env = {**os.environ, "PYTHONPATH": str(REPO / "compiler")}
    done = subprocess.run([sys.executable, "-m", "magcfg", "lint"], cwd=repo.root, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    found = {line.split(": MAG")[0] for line in done.stdout.splitlines()[0::2]}
    assert {"app.py:2:11", "prod.env:2:13"} <= found, done.stdout
    assert "CANARY" not in done.stdout + done.stderr


def test_findings_are_numbered_as_the_file_s_lines_whatever_counted_them(
        make_repo: MakeRepo) -> None:
    """YAML also breaks lines at U+2028, and a regex's offsets were numbered by ``\\n``
    alone: a finding moved onto another line (one holding a suppression, or none) and a
    SealedSecret's excluded lines onto a secret's."""
    token = "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh"
    repo = make_repo({
        "a.yaml": 'note: "a\u2028\u2028b"\npassword: |\n  hunter2xyzQ9\n'
                  "fixture: x  # magcfg: ignore[MAG002] reason: test fixture value\n",
        "s.yaml": 'kind: SealedSecret\nnote: "a\u2028\u2028b"\nspec:\n  encryptedData:\n'
                  "    x: AgBy3i4OJSWK+PiTySYZZA\nother: 1\nDB_PASSWORD: hunter2xyzQ9\n",
    })
    (repo.root / "c.py").write_bytes(
        b"x = 1  # magcfg: ignore[MAG002] reason: test fixture\r"
        + f'tok = "{token}"\r'.encode())
    found = lint(repo.root)
    assert sorted((f.file, f.line, f.rule) for f in found.findings) == [
        ("a.yaml", 2, "MAG002"), ("c.py", 2, "MAG002"), ("s.yaml", 7, "MAG002")]
    assert found.suppressed == 0


def test_credential_names_auth_bearer_ssh_and_hmac_keys(make_repo: MakeRepo) -> None:
    """`auth` and `bearer` as a name's last word hold a credential; as another word, or
    over a mechanism's name, they do not, nor over a mapping that sets one up (the
    registry's `REGISTRY_AUTH="{htpasswd: {realm: ..., path: ...}}"`) unless a
    secret-like key in it holds a value. `ssh_key` and `hmac_key` are key material, but
    not over an SSH public key or a key file's path."""
    repo = make_repo({"deploy/values.yaml": """\
registry:
  auth: ZGVwbG95OkNBTkFSWWF1dGgx «MAG002»
  proxyAuth: CANARYauth2-x9 «MAG002»
  bearer: CANARYbearer3-x9 «MAG002»
  authMethod: CANARYnot-a-credential
  bearer_format: JWT
  author: magds-bot
  auth: scram-sha-256
  clientAuth: RequireAndVerifyClientCert
  basic_auth: none
  tls_auth: x509
  enable_auth: 1
  proxy_auth: 42
  registry_auth: 4096CANARY «MAG002»
  REGISTRY_AUTH: "{htpasswd: {realm: localhost, path: /auth/htpasswd}}"
  TOKEN_AUTH: '{token: {realm: "https://auth.example.com/token", service: registry}}'
  PROXY_AUTH: '{"user": "ci", "password": "CANARYauth8-x9"}' «MAG002»
git:
  ssh_key: CANARYssh4-x9 «MAG002»
  ssh_key_path: /home/ci/CANARY
  deploy_ssh_key: ~/.ssh/id_ed25519
  ssh_key_pub: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw deploy@ci
  private_key: /etc/ssl/private/tls.key
webhooks:
  hmac_key: CANARYhmac5-x9 «MAG002»
  HMAC_KEY_ID: CANARYhmac6
""", "app/settings.py": 'SSH_KEY = "CANARYssh7-x9" «MAG002»\nBASIC_AUTH = "basic"\n'
                          'TOKEN_RE = r"ghp_[A-Za-z0-9]{36}"\nAPI_KEY_RX = r"sk-[a-z]+"\n'
                          'connect(password="CANARY-trust-auth") «MAG002»\n',
        "ci/registry.sh": 'docker run -e REGISTRY_AUTH="{htpasswd: {realm: localhost, path: '
                          '/auth/htpasswd}}" -p 5000:5000 registry:2\n'
                          'docker run -e PROXY_AUTH=\'{"password": "CANARYauth9-x9"}\' app «MAG002»\n'})
    expected, found = expected_and_found(repo)
    assert found == expected


def test_code_shapes_typed_go_js_env_defaults_python_prefixes(make_repo: MakeRepo) -> None:
    """Go's typed `const`/`var`, JS's `process.env.X || "..."` and `?? "..."`, Python's
    prefixed and one-line triple-quoted strings; an f-string with a field, an empty
    default and a name are not literals."""
    repo = make_repo({
        "cmd/main.go": """\
package main

const apiKey string = "CANARYgo1-x9" «MAG002»
var dbPassword string = `CANARYgo2-x9` «MAG002»
var (
	authToken  string = "CANARYgo3-x9" «MAG002»
	tokenURL   string = "https://auth.example.com/token"
	passwordOK bool   = true
)
func f() { if token == "CANARYcmp" { return } }
""",
        "web/server.js": """\
const s = process.env.SESSION_SECRET || "CANARYjs1-x9"; «MAG002»
const k = process.env["STRIPE_API_KEY"] ?? 'CANARYjs2-x9'; «MAG002»
const v = import.meta.env.VITE_API_TOKEN || `CANARYjs3-x9`; «MAG002»
const p = process.env.DB_PASSWORD || "";
const h = process.env.API_KEY_HEADER ?? "X-Api-Key";
const u = process.env.PUBLIC_URL || "CANARYnot-secret";
""",
        "app/settings.py": '''\
JWT_SECRET = f"CANARYpy1-x9" «MAG002»
DB_PASSWORD = b"CANARYpy2-x9" «MAG002»
SIGNING_KEY = rb'CANARYpy3-x9' «MAG002»
API_TOKEN = """CANARYpy4-x9""" «MAG002»
API_SECRET = \'\'\'CANARYpy5-x9\'\'\' «MAG002»
AUTH_TOKEN = f"Bearer {GITHUB_TOKEN}"
SESSION_TOKEN = f"{{CANARYpy6-x9}}" «MAG002»
PASSWORD_PROMPT = """Enter the password"""
EMPTY_TOKEN = """"""
SECRET = r'(?=[^\\v\'"]*)[^\\v,\'"`]'
secret_keyword = r'(?:key|pwd|password|token)'
cl_api_key = r'([a-z]{24})'
RAW_TOKEN = r"CANARYraw\\Key-x9" «MAG002»
auth = "Basic " + standard_b64encode(user_pass).decode("ascii")
api_auth = "/v1/auth/{mount_point}/config".format(mount_point=m)
SESSION_SECRET = "%s-CANARY" % prefix
JOINED_TOKEN = "CANARYjoin1-x9".encode("utf-8") «MAG002»
'''})
    expected, found = expected_and_found(repo)
    assert found == expected


def test_python_env_reads_or_a_literal(make_repo: MakeRepo) -> None:
    """`os.getenv("X") or "..."` falls back as `os.getenv("X", "...")` does (and as JS's
    `process.env.X || "..."`): unset or empty, the literal runs. An empty literal, a call,
    a header name and a variable that is not secret-like are not findings."""
    repo = make_repo({"app/settings.py": """\
import os
API_TOKEN = os.getenv("API_TOKEN") or "CANARYor1-x9" «MAG002»
DB_PASSWORD = os.environ.get("DB_PASSWORD", "") or 'CANARYor2-x9' «MAG002»
SESSION = os.environ["SESSION_SECRET"] or f"CANARYor3-x9" «MAG002»
EMPTY = os.getenv("DB_PASSWORD") or ""
CALLED = os.getenv("API_TOKEN") or default_token()
HEADER = os.getenv("API_KEY_HEADER") or "X-Api-Key"
URL = os.getenv("PUBLIC_URL") or "CANARYnot-secret"
"""})
    expected, found = expected_and_found(repo)
    assert found == expected


def test_ruby_and_php_env_reads_with_a_literal_default(make_repo: MakeRepo) -> None:
    """Ruby's `ENV["X"] || "..."`, `ENV.fetch("X", "...")` and `ENV.fetch("X") { "..." }`,
    PHP's `getenv('X') ?: '...'` and `$_ENV['X'] ?? '...'` fall back to the literal."""
    repo = make_repo({
        "config/app.rb": 'API_TOKEN = ENV["API_TOKEN"] || "CANARYrb1-x9" «MAG002»\n'
                         'DB_PASSWORD = ENV.fetch("DB_PASSWORD", "CANARYrb2-x9") «MAG002»\n'
                         'SECRET = ENV.fetch("SESSION_SECRET") { "CANARYrb3-x9" } «MAG002»\n'
                         'NAME = ENV.fetch("APP_NAME") { "CANARYname" }\n'
                         'TOKEN = ENV["API_TOKEN"] || ""\n',
        "web/config.php": "<?php\n$t = getenv('API_TOKEN') ?: 'CANARYphp1-x9'; «MAG002»\n"
                          "$p = $_ENV['DB_PASSWORD'] ?? 'CANARYphp2-x9'; «MAG002»\n"
                          "$h = getenv('API_KEY_HEADER') ?: 'X-Api-Key';\n"})
    expected, found = expected_and_found(repo)
    assert found == expected


def test_define_and_setenv_with_arguments_over_lines(make_repo: MakeRepo) -> None:
    """PHP's `define(` and the calls that set an environment variable by name, with their
    arguments over lines, are read as their one-line forms: the literal is a finding at
    its line; a call, a concatenation and a name of no secret are none."""
    repo = make_repo({
        "web/wp-config.php": """\
<?php
define(
    'DB_PASSWORD',
    'CANARYdef1-x9' «MAG002»
);
define( 'SECURE_AUTH_KEY',
        'CANARYdef2-x9' ); «MAG002»
define(
    'DB_PASSWORD',
    getenv( 'DB_PASSWORD' )
);
define(
    'DB_HOST',
    'db.internal'
);
""",
        "app/settings.py": """\
import os
os.environ.setdefault(
    "DJANGO_SECRET_KEY",
    "CANARYenv1-x9", «MAG002»
)
os.environ.setdefault(
    "API_TOKEN",
    "CANARYpre-" + os.environ["SUFFIX"],
)
""",
    })
    expected, found = expected_and_found(repo)
    assert found == expected


def test_java_kotlin_csharp_and_rust_env_reads_with_a_literal_default(
        make_repo: MakeRepo) -> None:
    """Java's `getOrDefault`, Kotlin's `?:`, C#'s `??` and Rust's `unwrap_or` after an env
    var read fall back to the literal; a variable that is not secret-like does not."""
    repo = make_repo({
        "src/App.java": 'String t = System.getenv().getOrDefault("API_TOKEN", "CANARYjv1-x9"); «MAG002»\n'
                        'String n = System.getenv().getOrDefault("APP_NAME", "CANARYname");\n',
        "src/Main.kt": 'val p = System.getenv("DB_PASSWORD") ?: "CANARYkt1-x9" «MAG002»\n',
        "src/Settings.cs": 'var p = Environment.GetEnvironmentVariable("DB_PASSWORD") '
                           '?? "CANARYcs1-x9"; «MAG002»\n',
        "src/main.rs": 'let t = std::env::var("API_TOKEN").unwrap_or("CANARYrs1-x9".into()); «MAG002»\n'
                       'let s = env::var("SESSION_SECRET")'
                       '.unwrap_or_else(|_| "CANARYrs2-x9".to_string()); «MAG002»\n'
                       'let h = env::var("DB_HOST").unwrap_or("CANARYhost".into());\n'})
    expected, found = expected_and_found(repo)
    assert found == expected


def test_a_value_whose_words_end_in_a_secret_word_is_no_name_in_code(
        make_repo: MakeRepo) -> None:
    """In code, a string naming a field (`"access_token"`, `"clientSecret"`) is a name;
    one whose words are key material (`Fstr1ng`, `x9Kq2zPw`) is a literal, whatever word
    it ends in."""
    repo = make_repo({"app/settings.py": """\
JWT_SECRET = "jwt-CANARYFstr1ng-Secret-9" «MAG002»
API_TOKEN = "x9Kq2zPw-CANARY-token" «MAG002»
SECRET_KEY = "s3ssi0nKeyCANARY_secret_key" «MAG002»
TOKEN = "access_token"
CLIENT_SECRET = "clientSecret"
STORE_SECRET = "s3-secret-key"
OAUTH_TOKEN = "v2_refresh_token"
"""})
    expected, found = expected_and_found(repo)
    assert found == expected


def test_a_string_that_goes_on_below_its_line(make_repo: MakeRepo) -> None:
    """Python's and Kotlin's triple-quoted strings, Go's raw strings and JS's template
    literals over several lines are read as the one value they hold; prose, a field, a
    pattern, a string an expression goes on from and a backquote where it quotes nothing
    are not literals."""
    repo = make_repo({
        "app/settings.py": """\
API_TOKEN = \"\"\" «MAG002»
    CANARYml1-x9
\"\"\"
DB_PASSWORD = b\'\'\'CANARYml2-x9 «MAG002»
\'\'\'
SIGNING_KEY = f\"\"\" «MAG002»
CANARYml3-x9{{x}}\"\"\"
SESSION_SECRET = f\"\"\"
{prefix}-CANARY\"\"\"
PASSWORD_HELP = \"\"\"
Enter the password
of the admin account.
\"\"\"
API_KEY = r\"\"\"
[A-Za-z0-9]{32}
\"\"\"
JOINED_TOKEN = \"\"\"
CANARYjoin-x9
\"\"\" + suffix
OPEN_TOKEN = \"\"\"
""" + "\n" * 10 + "CANARYfar\n\"\"\"\n",
        "app/Config.kt": 'val apiKey = """ «MAG002»\n    CANARYkt1-x9\n    """\n',
        "cmd/main.go": "package main\n\nconst authToken = ` «MAG002»\nCANARYgo-ml1\n`\n"
                       "var dbPassword string = ` «MAG002»\n  CANARYgo-ml2`\n",
        "web/server.js": "const apiToken = ` «MAG002»\nCANARYjs-ml1\n`;\n"
                         "const sessionSecret = `\n${process.env.PREFIX}-CANARY\n`;\n"
                         "const dbPassword = `\nEnter your database password\n`;\n",
        "scripts/run.ps1": "$password = `\nCANARYps1\n`\n"})
    expected, found = expected_and_found(repo)
    assert found == expected
    done = run_cli(repo.root, "lint")
    assert "CANARY" not in done.stdout + done.stderr


def test_build_and_config_languages_have_the_key_rule(make_repo: MakeRepo) -> None:
    """Makefiles (`Makefile`, `*.mk`: `:=`, `?=`, `=`, `export`, and their recipes'
    command lines), Jenkinsfiles, Groovy and Gradle (`storePassword "..."` as well as
    `=`), Kotlin scripts, Jsonnet (`::` fields), CUE, Nix, Bicep (`param x string = ...`)
    and Elixir configs have the key rule; a reference, a make function, Jenkins'
    `credentials(...)`, CUE's interpolation `\\(...)`, a file's path and a hash are not
    literals."""
    repo = make_repo({
        "Makefile": "export API_TOKEN := CANARYmk1-x9 «MAG002»\n"
                    "DB_PASSWORD ?= CANARYmk2-x9 «MAG002»\n"
                    "SIGNING_KEY_FILE := /run/secrets/signing\n"
                    "VAULT_TOKEN ?= $(shell cat ~/.vault-token)\n"
                    "deploy:\n\tdocker login -u ci -p CANARYmk3-x9 r.example.com «MAG002»\n"
                    "\tdocker run -e API_TOKEN=$(API_TOKEN) app\n",
        "build/vars.mk": "DB_PASSWORD = CANARYmk4-x9 «MAG002»\n",
        "Jenkinsfile": "pipeline {\n  environment {\n    API_TOKEN = 'CANARYjk1-x9' «MAG002»\n"
                       "    DEPLOY_TOKEN = credentials('deploy-token')\n  }\n}\n",
        "app/build.gradle": "signingConfigs {\n  release {\n"
                            "    storePassword \"CANARYgr1-x9\" «MAG002»\n"
                            "    keyPassword = 'CANARYgr2-x9' «MAG002»\n"
                            "    storePassword System.getenv(\"STORE_PASSWORD\")\n  }\n}\n",
        "app/build.gradle.kts": 'val apiToken = "CANARYkt1-x9" «MAG002»\n',
        "ci/Deploy.groovy": 'def password = "CANARYgy1-x9" «MAG002»\n',
        "env/prod.libsonnet": '{\n  db: { password: "CANARYjs1-x9" }, «MAG002»\n'
                              '  apiToken:: "CANARYjs2-x9", «MAG002»\n'
                              '  token: std.extVar("token"),\n}\n',
        "env/main.jsonnet": 'local x = { token: "CANARYjs3-x9" }; «MAG002»\nx\n',
        "cue/values.cue": 'db: password: "CANARYcu1-x9" «MAG002»\ndb: passwordFile: "/run/x"\n'
                          'db: token: "\\(#token)"\n'
                          'step: run: "\\(#cueCommand) login --token=\\(#tokenExpression)"\n',
        "nix/configuration.nix": '{\n  users.users.root.password = "CANARYnx1-x9"; «MAG002»\n'
                                 '  users.users.ops.hashedPassword = "$6$CANARYnear1$x";\n}\n',
        "infra/main.bicep": "param adminPassword string = 'CANARYbc1-x9' «MAG002»\n"
                            "param adminUser string = 'azureuser'\n",
        "config/prod.exs": 'config :app, App.Repo, password: "CANARYex1-x9" «MAG002»\n'})
    expected, found = expected_and_found(repo)
    assert found == expected
    done = run_cli(repo.root, "lint")
    assert "CANARY" not in done.stdout + done.stderr


def test_a_key_in_a_strings_prose_is_no_key(make_repo: MakeRepo) -> None:
    """A key a string's prose names, after a word and a space, is text the program prints
    (golang.org/x/oauth2's `fmt.Errorf("... JSON credentials: 'type' field is %q", ...)`);
    YAML or JSON a string holds (its keys quoted, even after a word), and a key in code,
    are keys."""
    repo = make_repo({"google.go": """\
package google
func f(t string) error {
\treturn fmt.Errorf("google: read JWT from JSON credentials: 'type' field is %q", t)
}
var m = map[string]string{"token": "CANARYpr2-x9"} «MAG002»
var n = f("user: 'u'", "token: 'CANARYpr3-x9'") «MAG002»
var samples = []string{
\t`{"facebook access_token":"CANARYpr4-x9Kq7","token_type":"bearer"}`, «MAG002»
}
"""})
    expected, found = expected_and_found(repo)
    assert found == expected
    done = run_cli(repo.root, "lint")
    assert "CANARY" not in done.stdout + done.stderr


def test_csharp_verbatim_and_rust_raw_strings(make_repo: MakeRepo) -> None:
    """C#'s `@"..."` (`""` a quote in it, `$@"..."` with a field an expression) and Rust's
    `r#"..."#` are string literals, on one line or more."""
    repo = make_repo({
        "src/Settings.cs": 'var apiKey = @"CANARYcs1-x9"; «MAG002»\n'
                           'var authToken = @"CANARY""cs2""-x9"; «MAG002»\n'
                           'string dbPassword = @" «MAG002»\nCANARYcs3-x9\n";\n'
                           'var sessionToken = $@"{prefix}-CANARY";\n'
                           'var apiToken = $@"CANARY{{cs4}}-x9"; «MAG002»\n',
        "src/main.rs": 'let api_key = r#"CANARYrs1-x9"#; «MAG002»\n'
                       'let auth_token = br#"CANARYrs2-x9"#; «MAG002»\n'
                       'let db_password = r#" «MAG002»\nCANARYrs3-x9\n"#;\n'
                       'let api_token = r#"[a-z]{3}\\d+"#;\n'})
    expected, found = expected_and_found(repo)
    assert found == expected


def test_toml_triple_quoted_strings(make_repo: MakeRepo) -> None:
    """TOML's triple-quoted strings, on one line or more, are the string they hold; prose
    and an empty string are not literals."""
    q = "'" * 3
    repo = make_repo({"config/app.toml": '[db]\npassword = """CANARYtm1-x9""" «MAG002»\n'
                                         f"api_token = {q}CANARYtm2-x9{q} «MAG002»\n"
                                         'secret = """ «MAG002»\nCANARYtm3-x9\n"""\n'
                                         'token = """\nPaste the token here\n"""\n'
                                         'auth_token = """"""\n'})
    expected, found = expected_and_found(repo)
    assert found == expected


def test_property_placeholders_with_a_default(make_repo: MakeRepo) -> None:
    """Spring's `${name:default}` falls back to its default when the property is unset:
    in properties, YAML and a Java annotation. An empty default, a nested placeholder, a
    port and the shell's substring `${TOKEN:0:8}` are not literals."""
    repo = make_repo({
        "src/main/resources/application.properties":
            "jwt.secret=${JWT_SECRET:CANARYsp1-x9} «MAG002»\n"
            "spring.datasource.password=${DB_PASSWORD:CANARYsp2-x9} «MAG002»\n"
            "server.port=${PORT:8080}\n"
            "api.token=${API_TOKEN:}\n"
            "oauth.client-secret=${CLIENT_SECRET:${VAULT_SECRET}}\n",
        "src/main/resources/application.yml":
            "spring:\n  datasource:\n    password: ${DB_PASSWORD:CANARYsp3-x9} «MAG002»\n"
            'jwt:\n  secret: "${JWT_SECRET:CANARYsp4-x9}" «MAG002»\n'
            "  short_token: ${GITHUB_TOKEN:0:8}\n",
        "src/main/java/App.java":
            'class App {\n  @Value("${jwt.secret:CANARYsp5-x9}") «MAG002»\n'
            "  private String jwtSecret;\n"
            '  @Value("${app.name:CANARYname}")\n  private String name;\n}\n'})
    expected, found = expected_and_found(repo)
    assert found == expected


def test_yaml_s_string_tag_is_the_string(make_repo: MakeRepo) -> None:
    """`!!str` is YAML's tag for a plain string: the value after it is the literal; a
    custom tag (`!vault`) is a reference."""
    repo = make_repo({"config/app.yaml": "db:\n  password: !!str CANARYtag1-x9 «MAG002»\n"
                                         "  token: !!str 'CANARYtag2-x9' «MAG002»\n"
                                         "  secret: !vault secret/app#key\n"
                                         "  api_key: !!str ${API_KEY}\n"})
    expected, found = expected_and_found(repo)
    assert found == expected


def test_credentials_on_a_command_line(make_repo: MakeRepo) -> None:
    """A password, token or key passed as a command's option, in a script, a CI step, a
    compose command and a JSON script; a reference, a metavariable, an option that takes
    none (`--password-stdin`, `adduser --disabled-password`) and an option's declaration
    in code are not."""
    repo = make_repo({
        "deploy.sh": """\
mysql -u root --password=CANARYcl1-x9 app «MAG002»
deploy --api-key CANARYcl2-x9 --region eu «MAG002»
docker login -u ci -p CANARYcl3-x9 registry.example.com «MAG002»
curl -u deploy:CANARYcl4-x9 https://api.example.com «MAG002»
sshpass -p CANARYcl5-x9 ssh host «MAG002»
redis-cli -h cache -a CANARYcl6-x9 ping «MAG002»
mysqldump -uroot -pCANARYcl7-x9 app «MAG002»
echo "usage: $0 --password PASSWORD --api-key KEY"
deploy --token "$TOKEN" --password="${DB_PASSWORD}" --api-key <key>
docker login -u ci --password-stdin registry.example.com
case "$1" in --password) PW="$2";; esac
cli --token-file /run/secrets/token --secret-name db-creds
initdb -U postgres --auth=trust
adduser --uid ${UID} --disabled-password myuser
pgbench --no-password -h db app
curl -u "$USER:$PASS" https://api.example.com
""",
        ".github/workflows/ci.yml": "jobs:\n  d:\n    steps:\n"
                                    "      - run: deploy --token=CANARYci1-x9 «MAG002»\n"
                                    "      - run: deploy --token=${{ secrets.TOKEN }}\n",
        "compose.yaml": 'services:\n  db:\n    command: ["postgres", "--password=CANARYdc1-x9"] «MAG002»\n',
        "package.json": '{"scripts": {"pub": "npm publish --auth-token CANARYjs1-x9"}} «MAG002»\n',
        "tool.py": 'parser.add_argument("--password", help="the password")\n'
                   'subprocess.run(["mysql", "--password=CANARYpy1-x9"]) «MAG002»\n'
                   'subprocess.run(["mysql", "--password=" + pw])\n'
                   'subprocess.run(["mysql", f"--password={pw}"])\n'})
    expected, found = expected_and_found(repo)
    assert found == expected
    done = run_cli(repo.root, "lint")
    assert "CANARY" not in done.stdout + done.stderr


def test_an_htpasswd_file_of_several_logins_in_a_secret(make_repo: MakeRepo) -> None:
    """A Secret's `auth` of several htpasswd logins (ingress-nginx's basic auth), in a
    `stringData` block or base64-encoded in `data`, is a finding at its key; prose of
    several lines under the key is none."""
    import base64

    logins = "admin:$apr1$CANARYa1$IgXLP6ewTrSuBkTrqE8wj/\nbob:$2y$05$CANARYb2" + "x" * 45 + "\n"
    repo = make_repo({"k8s/basic-auth.yaml": f"""\
apiVersion: v1
kind: Secret
metadata:
  name: basic-auth
stringData:
  auth: | «MAG002»
    admin:$apr1$CANARYs1$IgXLP6ewTrSuBkTrqE8wj/
    bob:$2y$05$CANARYs2{"x" * 45}
---
apiVersion: v1
kind: Secret
metadata:
  name: basic-auth-encoded
data:
  auth: {base64.b64encode(logins.encode()).decode()} «MAG002»
---
apiVersion: v1
kind: Secret
metadata:
  name: notes
stringData:
  auth: |
    basic auth for the admin UI,
    see the runbook
"""})
    expected, found = expected_and_found(repo)
    assert found == expected
    done = run_cli(repo.root, "lint")
    assert "CANARY" not in done.stdout + done.stderr


def test_passwords_openssl_keytool_htpasswd_and_smbclient_take(make_repo: MakeRepo) -> None:
    """A password given to OpenSSL (`-passin pass:...`, `-passout`, `-pass`, `enc -k`,
    `passwd`), keytool (`-storepass`, `-keypass`, `-srcstorepass`, ...), `htpasswd -b`
    (its last argument) and Samba's clients (`-U user%...`) is a finding, in a script and
    a CI step; OpenSSL's `env:` and `file:` sources, keytool's `:env` and `:file`, a
    reference, `htpasswd` without `-b` (it asks) and a user alone are not."""
    repo = make_repo({
        "tls.sh": """\
openssl pkcs12 -export -in c.pem -inkey k.pem -out c.p12 -passout pass:CANARYos1-x9 «MAG002»
openssl rsa -in k.pem -passin 'pass:CANARYos2-x9' -out plain.pem «MAG002»
openssl enc -aes-256-cbc -k CANARYos3-x9 -in a -out b «MAG002»
openssl passwd -6 -salt CANARYnear1 CANARYos4-x9 «MAG002»
keytool -genkey -alias app -keystore ks.jks -storepass CANARYkt1-x9 -dname CN=app «MAG002»
keytool -importkeystore -srckeystore a.p12 -srcstorepass CANARYkt2-x9 -destkeystore b.jks «MAG002»
htpasswd -bc .htpasswd admin CANARYht1-x9 «MAG002»
htpasswd -b -B -C 12 /etc/nginx/htpasswd ops CANARYht2-x9 «MAG002»
htpasswd -nb ops CANARYht3-x9 «MAG002»
smbclient //srv/share -U deploy%CANARYsm1-x9 -c ls «MAG002»
openssl pkcs12 -export -in c.pem -out c.p12 -passout env:P12_PASSWORD -passin file:pw.txt
openssl rsa -in k.pem -passin "pass:$KEY_PASSWORD"
keytool -list -keystore ks.jks -storepass:env STORE_PASSWORD -keypass:file kp.txt
htpasswd -c .htpasswd admin
smbclient //srv/share -U deploy -c ls
smbclient //srv/share -U "deploy%$SMB_PASSWORD" -c ls
""",
        ".github/workflows/ci.yml": "jobs:\n  d:\n    steps:\n"
                                    "      - run: keytool -list -keystore ks.jks -storepass "
                                    "CANARYci1-x9 «MAG002»\n"})
    expected, found = expected_and_found(repo)
    assert found == expected
    done = run_cli(repo.root, "lint")
    assert "CANARY" not in done.stdout + done.stderr


def test_secret_variables_and_keys_given_to_a_command(make_repo: MakeRepo) -> None:
    """A secret-like `KEY=value` given to a command is a finding wherever it is on the
    line: `docker run -e`, `--env`, `--build-arg`, `kubectl create secret
    --from-literal`, `vault kv put`, `env KEY=...`, `terraform -var`, gcloud's
    `--set-env-vars=A=1,KEY=...`, quoted or not; so are `gh secret set --body ...` and
    `aws configure set aws_secret_access_key ...`, and such steps of Azure Pipelines
    (`bash:`) and Taskfiles (`cmds:`). A reference, a command's output, a format field,
    a comparison, a key of no secret and the file `--from-file=KEY=path` reads the key
    from are not."""
    repo = make_repo({
        "ops.sh": """\
docker run -e DB_PASSWORD=CANARYkv1-x9 -e LOG_LEVEL=info app «MAG002»
docker run --env "API_TOKEN=CANARYkv2-x9" app «MAG002»
docker build --build-arg NPM_TOKEN='CANARYkv3-x9' . «MAG002»
kubectl create secret generic db --from-literal=password=CANARYkv4-x9 «MAG002»
kubectl create secret generic api --from-literal api-token=CANARYkv5-x9 «MAG002»
vault kv put secret/app db_password=CANARYkv6-x9 user=app «MAG002»
env API_KEY=CANARYkv7-x9 ./run «MAG002»
terraform apply -var db_password=CANARYkv8-x9 «MAG002»
gcloud run deploy api --set-env-vars=LOG=info,SIGNING_SECRET=CANARYkv9-x9 «MAG002»
gh secret set DEPLOY_TOKEN --body "CANARYgh1-x9" «MAG002»
aws configure set aws_secret_access_key CANARYaw1-x9 «MAG002»
docker run -e DB_PASSWORD="$DB_PASSWORD" -e API_TOKEN=${API_TOKEN} app
kubectl create secret generic db --from-literal=password="$(pwgen 32 1)"
env API_KEY=`cat /run/secrets/api` ./run
printf 'API_TOKEN=%s' "$pw" >> .env
[ "$API_TOKEN" = "" ] && exit 1
vault kv put secret/app user=app region=eu
gh secret set DEPLOY_TOKEN --body "$DEPLOY_TOKEN"
aws configure set region eu-west-1
echo -n $MYSQL_PASS | kubectl create secret generic mysql --from-file=mysql-password=/dev/stdin
kubectl create secret generic db --from-file password=./db-password.txt
""",
        "azure-pipelines.yml": "steps:\n- bash: |\n    export API_TOKEN=CANARYaz1-x9 «MAG002»\n"
                               "- bash: export API_TOKEN=$(API_TOKEN)\n",
        "Taskfile.yml": "tasks:\n  deploy:\n    cmds:\n"
                        "      - export DEPLOY_TOKEN=CANARYtf1-x9 «MAG002»\n"
                        "      - docker run -e DEPLOY_TOKEN={{.DEPLOY_TOKEN}} app\n"})
    expected, found = expected_and_found(repo)
    assert found == expected
    done = run_cli(repo.root, "lint")
    assert "CANARY" not in done.stdout + done.stderr


def test_helm_set_values_on_a_command_line(make_repo: MakeRepo) -> None:
    """Helm's `--set` and `--set-string` pairs: a literal under a secret-like last key
    is a credential; a chart's existing-Secret name and a reference are not."""
    repo = make_repo({"ci/deploy.sh": """\
helm upgrade app ./chart --set image.tag=1.2,postgresql.auth.password=CANARYhm1-x9 «MAG002»
helm upgrade app ./chart --set-string auth.apiKey=CANARYhm2-x9 «MAG002»
helm upgrade app ./chart --set=redis.auth.password=CANARYhm3-x9 «MAG002»
helm upgrade app ./chart --set auth.existingSecret=app-db --set auth.password=$DB_PASSWORD
helm upgrade app ./chart --set image.tag=CANARYtag
"""})
    expected, found = expected_and_found(repo)
    assert found == expected


def test_client_credential_files(make_repo: MakeRepo) -> None:
    """`.netrc`, `.pgpass`, `.npmrc` and `.pypirc` hold logins in their own shapes; a
    reference and the other fields are not findings."""
    repo = make_repo({
        ".netrc": "machine api.example.com\n  login deploy\n  password CANARYnrc1-x9 «MAG002»\n"
                  "machine b.example.com login u password CANARYnrc2-x9 «MAG002»\n"
                  "machine c.example.com login u password $NETRC_PASSWORD\n",
        ".pgpass": "db.internal:5432:app:app:CANARYpg1-x9 «MAG002»\n"
                   "# db.internal:5432:app:app:CANARYcomment\n"
                   "*:*:*:replicator:CANARY\\:pg2-x9 «MAG002»\n",
        ".npmrc": "//npm.internal/:_password=Q0FOQVJZbnBtMS14OQ== «MAG002»\n"
                  "//npm.internal/:_authToken=${NPM_TOKEN}\n"
                  "//npm.internal/:username=CANARYuser\nregistry=https://npm.internal/\n",
        ".pypirc": "[internal]\nrepository = https://pypi.internal/\nusername = ci\n"
                   "password = CANARYpypi1-x9 «MAG002»\n"})
    expected, found = expected_and_found(repo)
    assert found == expected


def test_htpasswd_files_hold_logins(make_repo: MakeRepo) -> None:
    """Each `user:hash` line of an `.htpasswd` (`htpasswd`, `*.htpasswd`) is a finding:
    the hash of a password, MD5's `$apr1$` and `{SHA}` guessed offline in moments, bcrypt's
    too for a weak one. A comment, a template's reference and a file of another name are
    not."""
    repo = make_repo({
        "nginx/.htpasswd": "# metrics scrapers\n"
                           "admin:$apr1$CANARY01$Kq2zLm9Wt4Rv8Bn3Xc1Ey. «MAG002»\n"
                           "ops:{SHA}CANARYW6ph5Mm5Pz8GgiULbPg= «MAG002»\n"
                           "ci:$2y$10$CANARYaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa «MAG002»\n"
                           "tmpl:${METRICS_HASH}\n"
                           "tmpl2:{{ metrics_hash }}\n",
        "apache/site.htpasswd": "bob:$6$CANARYsalt$Kq2zLm9Wt4Rv8Bn3Xc1Ey7 «MAG002»\n",
        "htpasswd": "alice:CANARYplain1-x9 «MAG002»\n",
        "docs/users.txt": "admin:$apr1$CANARY02$Kq2zLm9Wt4Rv8Bn3Xc1Ey.\n"})
    expected, found = expected_and_found(repo)
    assert found == expected
    done = run_cli(repo.root, "lint")
    assert "CANARY" not in done.stdout + done.stderr


def test_an_aws_credentials_file_and_a_secret_holding_one(make_repo: MakeRepo) -> None:
    """The AWS CLI's `credentials`, an INI file without an extension, holds a secret
    access key and a session token, under its name in the repository (`.aws/credentials`)
    and as a Secret's `credentials` entry; the key's id, the region and the command
    `credential_process` runs are not secrets."""
    import base64

    ini = ("[default]\naws_access_key_id = CANARYKEYID\n"
           "aws_secret_access_key = CANARYaws1/x9Kq2zLm7Wt4Rv8Bn3Hs6Dp0Fy5Gj1Xc MARK\n"
           "region = eu-west-1\n[ci]\naws_session_token = CANARYaws2+x9Kq2zLm7Wt4Rv8Bn3Hs6 MARK\n"
           "credential_process = /usr/local/bin/aws-vault exec ci --json\n"
           "[old]\naws_secret_access_key = ${AWS_SECRET_ACCESS_KEY}\n")
    encoded = base64.b64encode(ini.replace(" MARK", "").encode()).decode()
    repo = make_repo({
        "ops/.aws/credentials": ini.replace("MARK", "«MAG002»"),
        "k8s/aws.yaml": "apiVersion: v1\nkind: Secret\nmetadata:\n  name: aws\ndata:\n"
                        f"  credentials: {encoded} «MAG002»\n"})
    expected, found = expected_and_found(repo)
    assert found == expected
    done = run_cli(repo.root, "lint")
    assert "CANARY" not in done.stdout + done.stderr


def test_the_aws_cli_s_config_file_holds_keys_as_its_credentials_file_does(
        make_repo: MakeRepo) -> None:
    """The AWS CLI reads a secret access key and a session token from `.aws/config` too,
    under a `[profile ...]`: they passed the gate there, its name having no extension;
    its region, role and the command `credential_process` runs are not secrets, nor is a
    file named `config` elsewhere."""
    repo = make_repo({
        "ops/.aws/config": "[default]\nregion = eu-west-1\naws_access_key_id = CANARYKEYID\n"
                           "aws_secret_access_key = CANARYaws3/x9Kq2zLm7Wt4Rv8Bn3Hs6Dp0Fy5Gj1 "
                           "«MAG002»\n[profile ci]\nrole_arn = arn:aws:iam::123456789012:role/ci\n"
                           "aws_session_token = CANARYaws4+x9Kq2zLm7Wt4Rv8Bn3Hs6 «MAG002»\n"
                           "credential_process = /usr/local/bin/aws-vault exec ci --json\n",
        "tools/config": "[auth]\naws_session_token = CANARYnear8+x9Kq2zLm7Wt4Rv8\n"})
    expected, found = expected_and_found(repo)
    assert found == expected
    done = run_cli(repo.root, "lint")
    assert "CANARY" not in done.stdout + done.stderr


def test_option_files_and_kubeconfigs_are_read_by_their_names(make_repo: MakeRepo) -> None:
    """MySQL's option files (`my.cnf`, `.my.cnf`) and s3cmd's `.s3cfg` are INI files, and
    a kubeconfig (`kubeconfig`, `*.kubeconfig`, a Secret's `kubeconfig` entry) is YAML:
    their secret-like keys' literals are findings; a reference, a path, a comment and the
    other settings are not."""
    import base64

    kubeconfig = ("apiVersion: v1\nkind: Config\nusers:\n- name: admin\n  user:\n"
                  "    token: CANARYkc1-x9Kq2zLm7Wt4Rv8Bn3 MARK\n- name: ci\n  user:\n"
                  "    exec: {command: aws, args: [eks, get-token]}\n")
    encoded = base64.b64encode(kubeconfig.replace(" MARK", "").encode()).decode()
    repo = make_repo({
        "db/my.cnf": "[client]\nuser=app\npassword=CANARYcnf1-x9 «MAG002»\n"
                     "!includedir /etc/mysql/conf.d/\n",
        "ops/.my.cnf": "[client]\npassword = ${MYSQL_PASSWORD}\n",
        # OpenSSL 3's own openssl.cnf: `#` begins a comment anywhere in a .cnf file.
        "ssl/openssl.cnf": "[pbm]\nsecret = # disable PBM\nsecret2 = pass:CANARYos1-x9 «MAG002»\n",
        # In a .properties file a `#` after `=` is the value's first character.
        "app/db.properties": "db.password=#CANARYpr1-x9 «MAG002»\n",
        "ops/.s3cfg": "[default]\naccess_key = CANARYKEYID\nsecret_key = CANARYs3c1-x9 «MAG002»\n",
        "clusters/kubeconfig": kubeconfig.replace("MARK", "«MAG002»"),
        "clusters/prod.kubeconfig": kubeconfig.replace("MARK", "«MAG002»"),
        "k8s/cluster.yaml": "apiVersion: v1\nkind: Secret\nmetadata:\n  name: prod\ndata:\n"
                            f"  kubeconfig: {encoded} «MAG002»\n"})
    expected, found = expected_and_found(repo)
    assert found == expected
    done = run_cli(repo.root, "lint")
    assert "CANARY" not in done.stdout + done.stderr


def test_a_kubeconfig_is_known_by_its_shape_or_its_place(make_repo: MakeRepo) -> None:
    """kubectl's config committed where it keeps it (`.kube/config`) or under a name
    without an extension (`config`, `prod-cluster`) is read as YAML when its text has a
    kubeconfig's shape (`apiVersion: v1`, `kind: Config`, `users:`), and so is a Secret's
    entry holding one. A git config and an SSH config are not."""
    import base64

    kubeconfig = ("apiVersion: v1\nkind: Config\nclusters:\n- name: prod\n  cluster:\n"
                  "    server: https://k8s.example.com\nusers:\n- name: admin\n  user:\n"
                  "    token: CANARYkc1-x9Kq2zLm7Wt4Rv8Bn3 MARK\n    password: CANARYkc2-x9Kq MARK\n"
                  "- name: ci\n  user:\n    tokenFile: /var/run/secrets/token\n")
    encoded = base64.b64encode(kubeconfig.replace(" MARK", "").encode()).decode()
    marked = kubeconfig.replace("MARK", "«MAG002»")
    repo = make_repo({
        "home/.kube/config": marked,
        "ops/config": marked,
        "clusters/prod-cluster": marked,
        "k8s/cluster.yaml": "apiVersion: v1\nkind: Secret\nmetadata:\n  name: prod\ndata:\n"
                            f"  config: {encoded} «MAG002»\n",
        "repo/config": "[core]\n\tbare = false\n[credential]\n\thelper = store\n"
                       "[user]\n\tsigningkey = 3AA5C34371567BD2\n",
        "ssh/config": "Host bastion\n  IdentityFile ~/.ssh/id_ed25519\n  User deploy\n"})
    expected, found = expected_and_found(repo)
    assert found == expected
    done = run_cli(repo.root, "lint")
    assert "CANARY" not in done.stdout + done.stderr


def test_kubectl_s_own_config_file_is_a_kubeconfig(make_repo: MakeRepo) -> None:
    """kubectl's default file, `.kube/config`, is a kubeconfig by its path (its name has
    no extension: its token passed the gate); a file named `config` elsewhere is not."""
    repo = make_repo({
        "ci/.kube/config": "apiVersion: v1\nkind: Config\nusers:\n- name: admin\n  user:\n"
                           "    token: CANARYkc2-x9Kq2zLm7Wt4Rv8Bn3 «MAG002»\n",
        ".kube/config": "users:\n- name: ci\n  user:\n    password: CANARYkc3-x9 «MAG002»\n",
        "git/config": "[user]\n  token: CANARYnear4-x9\n"})
    expected, found = expected_and_found(repo)
    assert found == expected
    done = run_cli(repo.root, "lint")
    assert "CANARY" not in done.stdout + done.stderr


def test_json_without_an_extension_is_read_as_json(make_repo: MakeRepo) -> None:
    """A file without an extension that holds a JSON object, and a Secret's entry that
    decodes to one (Argo CD's cluster Secret keeps its `bearerToken` in `config`), is read
    as JSON; its settings that hold no secret are not findings."""
    import base64

    config = ('{"bearerToken": "CANARYar1-x9Kq2zLm7Wt4", MARK\n'
              ' "tlsClientConfig": {"insecure": false, "caData": "LS0tCg=="},\n'
              ' "awsAuthConfig": {"clusterName": "prod", "roleARN": "arn:aws:iam::1:role/argo"}}\n')
    encoded = base64.b64encode(config.replace(" MARK", "").encode()).decode()
    settings = ('{"awsAuthConfig": {"clusterName": "prod", '
                '"roleARN": "arn:aws:iam::1:role/argo"}}\n')
    repo = make_repo({
        "argocd/prod-cluster.yaml": "apiVersion: v1\nkind: Secret\nmetadata:\n  name: prod\n"
                                    "  labels:\n    argocd.argoproj.io/secret-type: cluster\n"
                                    "data:\n  name: cHJvZA==\n"
                                    f"  config: {encoded} «MAG002»\n"
                                    "  server: aHR0cHM6Ly9rOHMuZXhhbXBsZS5jb20=\n",
        "clusters/prod/config": config.replace("MARK", "«MAG002»"),
        "clusters/stage/config": settings,
        "argocd/stage-cluster.yaml": "apiVersion: v1\nkind: Secret\nmetadata:\n  name: stage\n"
                                     "data:\n"
                                     f"  config: {base64.b64encode(settings.encode()).decode()}\n"
                                     # Spring's `{noop}` names the encoder of a password.
                                     "  password: "
                                     f"{base64.b64encode(b'{noop}CANARYsp1-x9').decode()} «MAG002»\n"})
    expected, found = expected_and_found(repo)
    assert found == expected
    done = run_cli(repo.root, "lint")
    assert "CANARY" not in done.stdout + done.stderr


def test_xml_settings_elements_attributes_and_key_value_pairs(make_repo: MakeRepo) -> None:
    """XML files (`.xml`, `.config`) hold settings as an element's text (Maven's
    `<password>`), an attribute (tomcat-users.xml) and a `key`'s or `name`'s `value`
    (NuGet, .NET's appSettings, Spring's beans), and connection strings: each a finding
    at its line. A reference (`${env.X}`, `%X%`), Maven's encrypted password, a schema's
    element declaration and other settings are not."""
    repo = make_repo({
        ".mvn/settings.xml": """\
<settings>
  <servers>
    <server>
      <id>nexus</id>
      <username>deploy</username>
      <password>CANARYmvn1-x9</password> «MAG002»
      <password>${env.NEXUS_PASSWORD}</password>
      <password>{COQLCE6DU6GtcS5P=}</password>
      <privateKey>${user.home}/.ssh/id_rsa</privateKey>
    </server>
  </servers>
</settings>
""",
        "NuGet.config": """\
<configuration>
  <packageSourceCredentials>
    <internal>
      <add key="Username" value="ci" />
      <add key="ClearTextPassword" value="CANARYnuget1-x9" /> «MAG002»
      <add key="ClearTextPassword" value="%NUGET_PASSWORD%" />
    </internal>
  </packageSourceCredentials>
</configuration>
""",
        "web/Web.config": """\
<configuration>
  <appSettings><add key="ApiKey" value="CANARYweb1-x9" /></appSettings> «MAG002»
  <connectionStrings>
    <add name="db" connectionString="Server=db;User Id=app;Password=CANARYweb2-x9;" /> «MAG002»
  </connectionStrings>
</configuration>
""",
        "conf/tomcat-users.xml": '<tomcat-users>\n  <user username="admin" '
                                 'password="CANARYtc1-x9" roles="manager-gui"/> «MAG002»\n'
                                 "</tomcat-users>\n",
        "src/main/resources/beans.xml": """\
<beans>
  <bean id="ds" class="org.apache.commons.dbcp2.BasicDataSource">
    <property name="password" value="CANARYspr1-x9"/> «MAG002»
    <property name="password" value="${db.password}"/>
  </bean>
  <xs:element name="password" type="xs:string"/>
</beans>
"""})
    expected, found = expected_and_found(repo)
    assert found == expected
    done = run_cli(repo.root, "lint")
    assert "CANARY" not in done.stdout + done.stderr


def test_xml_text_in_cdata_or_over_lines_and_a_value_before_its_key(
        make_repo: MakeRepo) -> None:
    """An element's text is what an XML reader gives, in a CDATA section or over
    lines (Maven trims it), and a `value` may come before its `key` or `name` (XML's
    attributes have no order): each passed the gate. A reference and Maven's encrypted
    password stay silent in those shapes too."""
    repo = make_repo({
        ".mvn/settings.xml": """\
<settings>
  <servers>
    <server>
      <password><![CDATA[CANARYmvn2-x9]]></password> «MAG002»
      <password>
        CANARYmvn3-x9 «MAG002»
      </password>
      <password><![CDATA[${env.NEXUS_PASSWORD}]]></password>
      <password>
        {COQLCE6DU6GtcS5P=}
      </password>
      <description>
        the password of the deploy user, kept in Vault
      </description>
    </server>
  </servers>
</settings>
""",
        "NuGet.config": """\
<configuration>
  <packageSourceCredentials>
    <internal>
      <add value="CANARYnuget2-x9" key="ClearTextPassword" /> «MAG002»
      <add value="%NUGET_PASSWORD%" key="ClearTextPassword" />
      <add value="ci" key="Username" />
    </internal>
  </packageSourceCredentials>
</configuration>
"""})
    expected, found = expected_and_found(repo)
    assert found == expected
    done = run_cli(repo.root, "lint")
    assert "CANARY" not in done.stdout + done.stderr


def test_xml_cdata_section_over_lines(make_repo: MakeRepo) -> None:
    """A CDATA section whose text is on a line of its own, or that opens on its tags'
    line and closes below, is the element's text, at the text's line; a reference there
    and a section of several lines (a script, prose) are no value."""
    repo = make_repo({"conf/app.xml": """\
<config>
  <password><![CDATA[
    CANARYcd1-x9 «MAG002»
  ]]></password>
  <secret>
    <![CDATA[CANARYcd2-x9 «MAG002»
    ]]>
  </secret>
  <password><![CDATA[
    ${env.DB_PASSWORD}
  ]]></password>
  <token><![CDATA[
    if (token) { refresh(token); }
    return token;
  ]]></token>
</config>
"""})
    expected, found = expected_and_found(repo)
    assert found == expected
    done = run_cli(repo.root, "lint")
    assert "CANARY" not in done.stdout + done.stderr


def test_xml_comments_are_not_settings(make_repo: MakeRepo) -> None:
    """Maven's own settings.xml template holds its sample servers in comments, `<!--`
    to `-->` over many lines: their `<password>repopwd</password>` were three findings
    in every settings.xml made from it. A setting after a comment on its line is read."""
    repo = make_repo({".mvn/settings.xml": """\
<settings>
  <servers>
    <!-- server
     | Specifies the authentication information to use when connecting to a server.
    <server>
      <id>deploymentRepo</id>
      <username>repouser</username>
      <password>CANARYnear5-x9</password>
    </server>
    -->
    <!-- <password>CANARYnear6-x9</password> -->
    <server>
      <id>nexus</id>
      <!-- from Vault --> <password>CANARYmvn4-x9</password> «MAG002»
      <password><!-- CANARYnear7-x9 -->
      </password>
    </server>
  </servers>
</settings>
"""})
    expected, found = expected_and_found(repo)
    assert found == expected
    done = run_cli(repo.root, "lint")
    assert "CANARY" not in done.stdout + done.stderr


def test_a_secret_s_arn_names_where_it_is(make_repo: MakeRepo) -> None:
    """An ARN under a secret's name ending in `arn` (`db_password_arn`,
    `apiTokenArn`) says where AWS keeps the secret, in any file kind; the secret's own
    name beside it still counts."""
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:CANARYarn-x9"
    repo = make_repo({
        "infra/prod.auto.tfvars": f'db_password_arn = "{arn}"\n'
                                  'db_password = "CANARYtfv1-x9" «MAG002»\n',
        "deploy/values.yaml": f"apiTokenArn: {arn}\n",
        "deploy/app.env": f"DB_PASSWORD_ARN={arn}\n"})
    expected, found = expected_and_found(repo)
    assert found == expected


def test_php_constants_and_concatenation(make_repo: MakeRepo) -> None:
    """PHP's `define('DB_PASSWORD', '...')` (wp-config.php) gives a constant a literal,
    a finding at its line; an expression (`getenv(...)`, a string PHP's `.` goes on from)
    and a constant of no secret's name are not."""
    repo = make_repo({"wp-config.php": """\
<?php
define('DB_NAME', 'wordpress');
define( 'DB_PASSWORD', 'CANARYwp1-x9' ); «MAG002»
define("API_TOKEN", getenv("API_TOKEN"));
define("SIGNING_SECRET", "CANARYnear1" . $suffix);
$password = "CANARYnear2" . $suffix;
"""})
    expected, found = expected_and_found(repo)
    assert found == expected


def test_wordpress_keys_and_salts_and_django_s_fallback_keys(make_repo: MakeRepo) -> None:
    """WordPress' eight keys and salts (`AUTH_KEY`, ..., `NONCE_SALT`) are secrets by
    their names, whose last words are `key` and `salt`; Django's `SECRET_KEY_FALLBACKS`
    lists old secret keys, each a finding at its line. WordPress' placeholder text, an
    env read, a cache key's salt (`WP_CACHE_KEY_SALT`, a prefix) and an empty or computed
    list of fallbacks are not."""
    repo = make_repo({
        "wp-config.php": """\
<?php
define('AUTH_KEY',         'CANARYwk1-x9:t^Zq'); «MAG002»
define( 'SECURE_AUTH_KEY', 'CANARYwk2-x9:t^Zq' ); «MAG002»
define('LOGGED_IN_KEY',    'CANARYwk3-x9:t^Zq'); «MAG002»
define('NONCE_KEY',        'CANARYwk4-x9:t^Zq'); «MAG002»
define('AUTH_SALT',        'CANARYws1-x9:t^Zq'); «MAG002»
define('SECURE_AUTH_SALT', 'CANARYws2-x9:t^Zq'); «MAG002»
define('LOGGED_IN_SALT',   'CANARYws3-x9:t^Zq'); «MAG002»
define('NONCE_SALT',       'CANARYws4-x9:t^Zq'); «MAG002»
define('AUTH_KEY',         'put your unique phrase here');
define('NONCE_SALT',       getenv('NONCE_SALT'));
define('WP_CACHE_KEY_SALT', 'CANARYnear1_');
""",
        "app/settings.py": """\
SECRET_KEY = os.environ["SECRET_KEY"]
SECRET_KEY_FALLBACKS = ["CANARYdj1-x9Kq2z", «MAG002»
                        "CANARYdj2-x9Kq2z"] «MAG002»
OTHER_SECRET_KEY_FALLBACKS = []
LAST_SECRET_KEY_FALLBACKS = [os.environ["OLD_SECRET_KEY"]]
"""})
    expected, found = expected_and_found(repo)
    assert found == expected
    done = run_cli(repo.root, "lint")
    assert "CANARY" not in done.stdout + done.stderr


def test_an_environment_variable_set_to_a_literal(make_repo: MakeRepo) -> None:
    """Code that sets a secret-like environment variable (or a Java system property) to
    a literal commits the secret: `os.environ["..."] =`, `setdefault`, `putenv`,
    pytest's `monkeypatch.setenv`, JS's `process.env["..."] =`, Go's `os.Setenv`, Java's
    `System.setProperty`, each a finding at its line. A comparison, an expression, an
    f-string with a field and a variable of no secret's name are not."""
    repo = make_repo({
        "tests/conftest.py": """\
os.environ["DB_PASSWORD"] = "CANARYenv1-x9" «MAG002»
os.environ.setdefault("API_TOKEN", "CANARYenv2-x9") «MAG002»
monkeypatch.setenv("SECRET_KEY", "CANARYenv3-x9") «MAG002»
os.putenv("DB_PASSWORD", "CANARYenv4-x9") «MAG002»
os.environ["DB_PASSWORD"] = vault.read("db")
os.environ["LOG_LEVEL"] = "CANARYnear1-x9"
if os.environ["DB_PASSWORD"] == "CANARYnear2-x9":
    monkeypatch.setenv("API_TOKEN", f"{prefix}-CANARYnear3")
""",
        "web/setup.js": 'process.env["API_TOKEN"] = "CANARYenv5-x9"; «MAG002»\n',
        "cmd/main.go": 'os.Setenv("DB_PASSWORD", "CANARYenv6-x9") «MAG002»\n',
        "src/App.java": 'System.setProperty("db.password", "CANARYenv7-x9"); «MAG002»\n'})
    expected, found = expected_and_found(repo)
    assert found == expected


def test_an_environment_variable_set_to_a_literal_in_ruby_and_php(
        make_repo: MakeRepo) -> None:
    """Ruby's `ENV["..."] =` and PHP's `$_ENV['...'] =` set a variable as Python's
    `os.environ[...] =` does: they passed the gate, the line first asked for a lower-case
    `nv` (found only in a value that held one). A comparison and a variable of no
    secret's name are not findings."""
    repo = make_repo({
        "config/boot.rb": 'ENV["API_TOKEN"] = "CANARYset1-x9" «MAG002»\n'
                          'ENV["LOG_LEVEL"] = "CANARYnear4-x9"\n'
                          'raise if ENV["API_TOKEN"] == "CANARYnear5-x9"\n',
        "public/setup.php": "<?php\n$_ENV['DB_PASSWORD'] = 'CANARYset2-x9'; «MAG002»\n"})
    expected, found = expected_and_found(repo)
    assert found == expected


def test_terraform_variable_defaults(make_repo: MakeRepo) -> None:
    """A secret-like variable's literal default is committed; its nested blocks, an
    expression, an empty default and other variables are not."""
    repo = make_repo({"infra/main.tf": """\
variable "db_password" {
  type      = string
  sensitive = true
  default   = "CANARYtf1-x9" «MAG002»
}
variable "api_token" { default = "CANARYtf2-x9" } «MAG002»
variable "signing_key" {
  description = "Key {in braces} # not a comment"
  validation {
    condition = length(var.signing_key) > 0
    default   = "CANARYnested"
  }
  default = var.fallback
}
variable "region" {
  default = "CANARYregion"
}
variable "admin_password" {
  default = ""
}
locals {
  default = "CANARYlocal"
}
""", "packer/build.pkr.hcl": 'variable "ssh_key" {\n  default = "CANARYhcl1-x9" «MAG002»\n}\n'})
    expected, found = expected_and_found(repo)
    assert found == expected


def test_a_value_written_as_its_key_is_a_literal_outside_code(make_repo: MakeRepo) -> None:
    """`password: password` is a default credential; the key's words in another case are a
    label, and in code the same string is a name (an enum member, a field)."""
    repo = make_repo({
        "compose.yaml": "services:\n  mq:\n    environment:\n"
                        "      password: password «MAG002»\n      token: Token\n",
        "config/app.env": "secret=secret «MAG002»\nDB_PASSWORD=DB_PASSWORD «MAG002»\n",
        "web/locales/en.json": '{"password": "Password", "api_token": "API token",\n'
                               ' "token": "token"} «MAG002»\n',
        "app/kinds.py": 'class Grant(str, Enum):\n    password = "password"\n'
                        'PASSWORD_FIELD = "password"\n'})
    expected, found = expected_and_found(repo)
    assert found == expected


def test_a_value_below_its_key_in_parentheses_or_after_a_backslash(make_repo: MakeRepo) -> None:
    """Python's `PASSWORD = (` over its literal (or with it, `API_KEY = ("..."`), a
    backslash before it, literals joined
    across lines, a dict's value below its key (an object's, a hash's, unquoted) and
    JS's `=` at the end of a line: each a
    finding at its literal's line; prose, an expression, an f-string with a field and a
    block under `class Password:` are not (a tuple's strings are, each one)."""
    repo = make_repo({
        "app/settings.py": """\
PASSWORD = (
    "CANARYpar1-x9" «MAG002»
)
API_TOKEN = \\
    "CANARYbs1-x9" «MAG002»
SECRET_KEY = (
    "CANARYcat1-" «MAG002»
    # the second half
    "CANARYcat2"
)
DB_PASSWORD: str = (
    # from the vendor's console
    "CANARYpar2-x9"  # rotated yearly «MAG002»
)
SETTINGS = {
    "api_key":
        "CANARYdict-x9", «MAG002»
}
PASSWORD_HELP = (
    "Enter the password "
    "of the admin account"
)
AUTH_TOKEN = (
    os.environ["AUTH_TOKEN"]
)
SESSION_TOKEN = (
    "CANARYnear1" + suffix
)
SIGNING_KEY = (
    f"{prefix}-CANARYnear2"
)
ADMIN_PASSWORD = (
    "CANARYtuple1", «MAG002»
    "CANARYtuple2", «MAG002»
)
class Password:
    \"\"\"Secret.\"\"\"
if token:
    "CANARYnear3"
API_KEY = ("CANARYone-x9") «MAG002»
SIGNING_SECRET = ("CANARYopen-x9" «MAG002»
                  "CANARYopen-b")
JWT_SECRET = (  # the vendor's
    "CANARYcmt-x9" «MAG002»
)
SESSION_PASSWORD = ("%s-%s" % (a, b))
AUTH_TOKEN_PAIR = ("CANARYnear4", "CANARYnear5")
""",
        "web/app.js": 'const apiToken =\n  "CANARYjs-x9"; «MAG002»\n'
                      "const dbPassword =\n  process.env.DB_PASSWORD;\n"
                      'const config = {\n  apiKey:\n    "CANARYjs2-x9", «MAG002»\n'
                      "  authToken:\n    readToken(),\n};\n"
                      'switch (kind) {\n  case token:\n    return "CANARYjs3";\n}\n',
        "app/config.rb": 'CONFIG = {\n  password:\n    "CANARYrb2-x9", «MAG002»\n}\n'})
    expected, found = expected_and_found(repo)
    assert found == expected
    done = run_cli(repo.root, "lint")
    assert "CANARY" not in done.stdout + done.stderr


def test_a_dict_s_value_below_a_name_as_its_key_or_before_its_brace(make_repo: MakeRepo) -> None:
    """A Python dict's key that is a name (a constant's, `AUTH_TOKEN:`), alone on its
    line or after the dict's brace or another item, has its value below it, and a value
    below its key may end the dict or the object (`"..."}`): each a finding at its
    literal's line. A name and a colon after a keyword (`if token:`, `for t in tokens:`,
    `except E as secret:`, `case token:`), in a slice or in a function's return annotation
    (`-> "PrivateKey":` above its docstring) begin no value."""
    repo = make_repo({
        "app/settings.py": """\
HEADERS = {
    AUTH_TOKEN:
        "CANARYuk1-x9", «MAG002»
}
CONFIG = {"db_password":
          "CANARYbr1-x9"} «MAG002»
CONFIG = {"region": "eu", SECRET_KEY:
          "CANARYuk2-x9"} «MAG002»
OTHER = {
    DB_PASSWORD:
        os.environ["DB_PASSWORD"],
}
if token:
    "CANARYnear1-x9"
for t in tokens:
    "CANARYnear2-x9"
try:
    pass
except KeyError as secret:
    "CANARYnear3-x9"
match kind:
    case token:
        "CANARYnear4-x9"
part = values[token:
              "CANARYnear5-x9"]
def signing_key(path) -> "Ed25519PrivateKey":
    "CANARYnear6-x9 is the function's docstring"
""",
        "web/app.js": 'const config = {region: "eu", apiKey:\n  "CANARYjs1-x9"}; «MAG002»\n'})
    expected, found = expected_and_found(repo)
    assert found == expected
    done = run_cli(repo.root, "lint")
    assert "CANARY" not in done.stdout + done.stderr


def test_collections_of_strings_under_a_secret_name_or_its_plural(make_repo: MakeRepo) -> None:
    """In Python, each string of a tuple, a list, a set or a dict's values under a
    secret-like name or its plural (assigned, annotated, an attribute's or a subscript's,
    a keyword argument, a dict's key) is a finding at its line, and so are those of a
    collection within one. Strings that read as names or numbers (field names, env var
    names, a blocklist of weak passwords, a lexer's token kinds), placeholders,
    expressions, collections under a name of what is done with secrets
    (`PASSWORD_HASHERS`) and of no secret, a dict's values under keys that say what
    they are about a secret (a JSON schema's `type`, `description`, `$ref`), prose,
    records (a lexer's `(r"...", Name)`), a test table's `pass` cases and a file Python
    cannot parse are not."""
    repo = make_repo({
        "app/settings.py": """\
PASSWORDS = ("CANARYtp1-x9", "CANARYtp2-x9") «MAG002»
API_KEYS = [
    "sk-live-CANARYl1x9", «MAG002»
    # the staging key
    "sk-live-CANARYl2x9",  # rotated «MAG002»
]
TOKENS = {"CANARYset1-x9"} «MAG002»
SECRET_KEY = ("CANARYone1-x9",) «MAG002»
CREDENTIALS = {"prod": ("admin", "CANARYdct1-x9"), «MAG002»
               "stage": ("admin", os.environ["STAGE_PW"])}
SERVICES = {"db": {"password": ("CANARYnest1-x9", "CANARYnest2-x9")}} «MAG002»
settings["api_keys"] = ("CANARYsub1-x9",) «MAG002»
self.passwords: tuple[str, ...] = ("CANARYann1-x9",) «MAG002»
session = requests.Session(auth=("deploy", "CANARYkw1-x9")) «MAG002»
PASSWORD_FIELDS = ("password", "password_confirmation")
SECRET_KEYS = ("DB_PASSWORD", "API_TOKEN")
SECRETS = ["db-credentials", "tls-cert"]
COMMON_PASSWORDS = ("password", "123456", "qwerty", "letmein")
tokens = ("NUMBER", "PLUS", "LPAREN")
SPECIAL_TOKENS = ["[CLS]", "<pad>", "</s>"]
API_TOKENS = [f"{prefix}-CANARYnear1", os.environ["API_TOKEN"], "..."]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
TOKEN_TYPES = ("Bearer", "MAC")
HOSTS = ("CANARYnear2-x9", "CANARYnear3-x9")
SCHEMA = {"credentials": {"type": "object", "description": "Secret references.",
                          "x-magcfg-secret": {"$ref": "#/$defs/magcfg-secret"},
                          "password": {"type": "string", "pattern": "^(vault|env)://"}}}
tokens = {"root": [(r"\\s+", Whitespace), (r"[a-z]CANARYnear5+", Name)]}
_ARCH_TOKENS = {"x86_64": "amd64", "arm64": "arm64"}
cases = {"pass": ["runf()", "In [1]: runf()"], "fail": ["CANARYnear6-x9"]}
API_KEYS = ["Paste your key here", "sk-live-CANARYl3x9"] «MAG002»
""",
        "scripts/legacy.py": 'print "hi"\nPASSWORDS = ("CANARYnear4-x9",)\n'})
    expected, found = expected_and_found(repo)
    assert found == expected
    done = run_cli(repo.root, "lint")
    assert "CANARY" not in done.stdout + done.stderr


def test_js_and_ts_arrays_under_a_secret_name_or_its_plural(make_repo: MakeRepo) -> None:
    """In JS, TS and JSON5 an array of string literals under a secret-like name or its
    plural (`const API_KEYS = [...]`, an object's `tokens: [...]`, an array within one)
    holds secrets, each a finding at its line, as Python's collections do; names,
    placeholders, a mark alone (llhttp's `STRICT_TOKEN = ['!', '\\'', ...]`, an escaped
    quote a quote), expressions, a template literal with a field, an array of objects and
    an array under a name of no secret are not."""
    repo = make_repo({
        "src/keys.ts": """\
export const API_KEYS: string[] = ["CANARYjs1-x9Kq", "CANARYjs2-x9Kq"]; «MAG002»
const PASSWORDS = [
  "CANARYjs3-x9Kq", // staging «MAG002»
  /* rotated */ 'CANARYjs4-x9Kq', «MAG002»
  ["CANARYjs5-x9Kq"], «MAG002»
];
const SECRETS = ["db-credentials", "tls-cert"];
const TOKENS = [TOKEN_A, process.env.API_TOKEN, "CANARYnear1-x9Kq"];
const API_TOKENS = [`${prefix}-CANARYnear2`, "<your-token>"];
const CLIENT_KEYS = [{ id: "a", secret: process.env.S }];
const HOSTS = ["CANARYnear3-x9Kq"];
const passwords = [];
exports.STRICT_TOKEN = [
  '!', '#', '$', '%', '&', '\\'',
  '*', '+', '-', '.', '\\\\',
].concat(exports.ALPHANUM);
const DEPLOY_TOKENS = ['CANARY\\'js8-x9Kq']; «MAG002»
""",
        "next.config.js": """\
module.exports = {
  serverRuntimeConfig: { webhookSecrets: ['CANARYjs6-x9Kq'] }, «MAG002»
  env: { STRIPE_SECRET: 'CANARYjs7-x9Kq' }, «MAG002»
};
""",
        "config.json5": """\
{
  // the deploy settings
  password: 'CANARYj51-x9Kq', «MAG002»
  tokens: ["CANARYj52-x9Kq",], «MAG002»
  tokenNames: ["CANARYnear4-x9Kq"],
}
"""})
    expected, found = expected_and_found(repo)
    assert found == expected
    done = run_cli(repo.root, "lint")
    assert "CANARY" not in done.stdout + done.stderr


def test_one_word_passwords_in_a_collection_under_a_password_name(make_repo: MakeRepo) -> None:
    """Under a password's name (`PASSWORDS`, `db_passwords`), a collection's one-word
    string is a password whatever it looks like (`hunter2`, `letmein`), as the same string
    assigned to the name alone is, and as detect-secrets' keyword plugin judges
    `password = "hunter2"`: by the name. Under a name of secrets, tokens or keys such
    words are names (`SECRETS = ["db-credentials"]`); a blocklist's name
    (`COMMON_PASSWORDS`, `WEAK_PASSWORDS`) lists passwords to refuse; a field's name
    (`"password_confirmation"`) is none."""
    repo = make_repo({
        "app/settings.py": """\
PASSWORDS = ["hunter2", "letmein"] «MAG002»
DB_PASSWORDS = {"prod": "admin"} «MAG002»
ADMIN_PASSWORD_FALLBACKS = ("qwerty",) «MAG002»
WEAK_PASSWORDS = ["hunter2", "letmein"]
BANNED_PASSWORDS = ("hunter2",)
SECRETS = ["credentials", "tls-cert"]
TOKENS = ("access", "refresh")
PASSWORDS = ("password", "password_confirmation")
""",
        "src/users.js": """\
const PASSWORDS = ["qwerty"]; «MAG002»
const COMMON_PASSWORDS = ["qwerty"];
"""})
    expected, found = expected_and_found(repo)
    assert found == expected
    done = run_cli(repo.root, "lint")
    assert not {"hunter2", "letmein", "admin", "qwerty"} & set(
        (done.stdout + done.stderr).replace("`", " ").split())


def test_ci_defaults_in_expressions_steps_and_expanded_variables(make_repo: MakeRepo) -> None:
    """A GitHub Actions expression's literal default (`secrets.X || '...'`, whatever X is
    called), a literal it gives as its value (GitHub's conditional `cond && '...' ||
    ...`, an argument of `format()`), an expression that is a literal (in a step's
    script too, which GitHub evaluates before the shell runs it), the shell's
    `${TOKEN:-...}` within a step or a script line, GitLab's expanded variable's `value`
    and a workflow input's `default` under secret-like names: each a finding at the
    literal's line. Another
    expression, a name that is no secret's, the shell's working directory (`${PWD:-.}`),
    an empty default, `:?` and compose's `$${` are not."""
    repo = make_repo({
        ".github/workflows/ci.yml": """\
on:
  workflow_dispatch:
    inputs:
      api_token:
        description: the token to deploy with
        default: 'CANARYin1-x9' «MAG002»
      environment:
        default: staging
env:
  DB_PASSWORD: ${{ 'CANARYgh1-x9' }} «MAG002»
  REGION: ${{ 'eu-west-1' }}
jobs:
  d:
    env:
      API_TOKEN: ${{ secrets.API_TOKEN || 'CANARYgh2-x9' }} «MAG002»
      NPM_TOKEN: ${{ secrets.NPM_TOKEN || github.token }}
      STAGE: ${{ inputs.stage || 'dev' }}
      SMTP_PASSWORD: ${{ secrets.SMTP_PASSWORD || '' }}
      DEPLOY_TOKEN: ${{ github.ref == 'refs/heads/main' && 'CANARYgh7-x9' || secrets.DEV }} «MAG002»
      SIGNING_KEY: ${{ format('{0}', 'CANARYgh8-x9') }} «MAG002»
      RELEASE_TOKEN: ${{ github.ref == 'refs/heads/main' && secrets.PROD || secrets.DEV }}
      STAGE_TOKEN: ${{ format('{0}', inputs.stage) == 'prod' && secrets.PROD || github.token }}
    steps:
      - run: psql "password=${DB_PASSWORD:-CANARYgh3-x9}" «MAG002»
      - run: deploy ${{ secrets.DEPLOY || 'CANARYgh4-x9' }} «MAG002»
      - run: deploy ${{ vars.DEPLOY_TOKEN || 'CANARYgh5-x9' }} «MAG002»
      - run: |
          export DEPLOY_TOKEN=${{ 'CANARYgh6-x9' }} «MAG002»
          export REGION=${{ 'eu-west-1' }}
      - if: ${{ secrets.DEPLOY_KEY != '' }}
        run: echo "${LOG_LEVEL:-info} ${API_KEY:?is required} ${TOKEN:-$CI_TOKEN}"
""",
        ".gitlab-ci.yml": """\
variables:
  DB_PASSWORD:
    value: "CANARYgl1-x9" «MAG002»
    description: the database's password
  API_TOKEN: {value: CANARYgl2-x9, description: the API's token} «MAG002»
  DB_HOST:
    value: db.internal
  SIGNING_KEY:
    value: ""
deploy:
  script:
    - deploy --x "${API_TOKEN:-CANARYgl3-x9}" «MAG002»
""",
        "scripts/run.sh": 'curl -H "Authorization: ${AUTH_TOKEN:-CANARYsh1-x9}" x «MAG002»\n'
                          'echo "${REGION:-eu-west-1}"\n'
                          'ASSET_DIR=${PWD:-"./"}\ncd "${OLDPWD:-/tmp}"\n'
                          'export DB_PWD=${DB_PWD:-CANARYsh2-x9} «MAG002»\n',
        "compose.yaml": "services:\n  a:\n    command: run $${DB_PASSWORD:-CANARYesc}\n"})
    expected, found = expected_and_found(repo)
    assert found == expected
    done = run_cli(repo.root, "lint")
    assert "CANARY" not in done.stdout + done.stderr


def test_here_documents_and_sql_passwords(make_repo: MakeRepo) -> None:
    """A here-document's lines are the file they write (`key: value` and `key = value`
    as well as `KEY=value`), in a shell script, a Dockerfile, Ruby and PHP; a password an
    SQL statement sets is a finding wherever the statement is (a here-document, a `.sql`
    file, a Ruby string). A reference, a psql variable, a path, prose, `<<` as a shift
    and `SELECT password` are not."""
    repo = make_repo({
        "scripts/setup.sh": """\
cat > config.yml <<-'EOF'
\tdb:
\t  password: CANARYhd1-x9 «MAG002»
\t  password_file: /run/secrets/db
\t  token: "{{ vault_token }}"
EOF
cat <<EOF > .env
PASSWORD=${DB_PASSWORD}
EOF
psql -v pw="$PW" <<'SQL'
CREATE ROLE app WITH LOGIN PASSWORD :'pw';
ALTER USER app WITH PASSWORD '${APP_PASSWORD}';
ALTER ROLE app PASSWORD NULL;
GRANT SELECT ON TABLE password TO app;
CREATE ROLE reporter WITH
  LOGIN
  PASSWORD 'CANARYsq1-x9'; «MAG002»
SQL
echo $((1<<3))
cat <<< "password: CANARYherestring" «MAG002»
""",
        "db/init.sql": "CREATE USER 'app'@'%' IDENTIFIED WITH mysql_native_password BY "
                       "'CANARYsq2-x9'; «MAG002»\n"
                       "SET PASSWORD FOR 'app'@'%' = 'CANARYsq3-x9'; «MAG002»\n"
                       "CREATE LOGIN app WITH PASSWORD = 'CANARYsq4-x9'; «MAG002»\n"
                       "CREATE USER scott IDENTIFIED BY CANARYtiger; «MAG002»\n"
                       "CREATE USER ops IDENTIFIED EXTERNALLY;\n"
                       "ALTER USER app WITH PASSWORD $1;\n"
                       "SELECT password FROM users WHERE id = 1;\n",
        "Dockerfile": "FROM alpine\nCOPY <<EOF /app/config.ini\n[db]\n"
                      "password = CANARYdf1-x9 «MAG002»\nuser = app\nEOF\n",
        "app/setup.php": "<?php\n$ini = <<<'INI'\napi_key = CANARYphp1-x9 «MAG002»\n"
                         "export DB_PASSWORD=CANARYphp2-x9 «MAG002»\n"
                         "api_key_file = /run/secrets/api\nINI;\n$shift = 1 << 3;\n",
        "app/setup.rb": "sql = <<~SQL\n  CREATE USER app IDENTIFIED BY 'CANARYrb1-x9'; «MAG002»\n"
                        "SQL\nitems << ITEM\nhelp = <<~MSG\n  Your password: please reset it\n"
                        "MSG\n"})
    expected, found = expected_and_found(repo)
    assert found == expected
    done = run_cli(repo.root, "lint")
    assert "CANARY" not in done.stdout + done.stderr


class _Searched:
    """A pattern that counts the texts (or lines) it is given to search."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern
        self.texts = 0

    def finditer(self, text: str) -> Iterator[re.Match[str]]:
        self.texts += 1
        return self.pattern.finditer(text)

    def search(self, text: str) -> re.Match[str] | None:
        self.texts += 1
        return self.pattern.search(text)


def test_a_text_without_an_sql_verb_is_not_searched_for_statements(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The SQL pattern, led by no literal, is tried at every place of the text it reads:
    a manifest naming `DB_PASSWORD` holds no statement's verb and is not read by it. A
    statement of each verb, in any case, is still found."""
    searched = _Searched(hardcoded._SQL_PASSWORD)
    monkeypatch.setattr(hardcoded, "_SQL_PASSWORD", searched)
    manifest = ("env:\n  - name: DB_PASSWORD\n    valueFrom:\n"
                "      secretKeyRef: {name: app, key: db_password}\n")
    assert list(hardcoded._sql_password_hits(source("deploy.yaml", manifest.encode()))) == []
    assert searched.texts == 0
    for statement in ("grant all on app.* to 'app'@'%' identified by 'CANARYgr1-x9';",
                      "ALTER LOGIN app WITH PASSWORD = 'CANARYal1-x9';",
                      "Create User app Password 'CANARYcr1-x9';",
                      "set password = 'CANARYse1-x9';"):
        found = list(hardcoded._sql_password_hits(source("db/init.sql", statement.encode())))
        assert [number for number, _ in found] == [1], statement


def test_a_code_line_ending_in_no_key_s_end_is_not_searched_for_one_below(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Whether a key's value begins below its line is asked, with a pattern led by no
    literal, of lines ending in `=`, `:`, `(` or `\\` alone; such values are still
    found, whatever whitespace ends the line."""
    searched = _Searched(hardcoded._CODE_KEY_ENDS)
    monkeypatch.setattr(hardcoded, "_CODE_KEY_ENDS", searched)
    assert hardcoded._value_below(['token = os.environ["TOKEN"]  # the API token'], 1,
                                  True) is None
    assert searched.texts == 0
    for line in ("API_TOKEN = (", "API_TOKEN = \\", "const apiToken =\t", "\"token\":\u2003"):
        found = hardcoded._value_below([line, '    "CANARYvb1-x9"', ")"], 1, True)
        assert found is not None and found[1] == '"CANARYvb1-x9"', line


def test_here_strings_are_the_text_they_feed(make_repo: MakeRepo) -> None:
    """A here-string's word is the input of its command, read as a here-document's lines
    are (quoted, unquoted, over several lines, ANSI-C's `$'...\\n...'`), in a script and
    a CI step; given to `--password-stdin` or `--with-token`, the word is the credential.
    A reference, a path and a here-string read by a command that takes no credential from
    its input are not."""
    repo = make_repo({
        "scripts/db.sh": """\
psql <<< password=CANARYhs1-x9 «MAG002»
cat <<<'DB_PASSWORD=CANARYhs2-x9' > .env «MAG002»
mysql -p"$x" -e status <<< "[client]"
cat > app.env <<< $'LOG_LEVEL=info\\nAPI_TOKEN=CANARYhs3-x9' «MAG002»
cat > app.env <<< "
LOG_LEVEL=info
SESSION_SECRET=CANARYhs4-x9 «MAG002»
"
docker login -u ci --password-stdin r.example.com <<< "CANARYhs5-x9" «MAG002»
gh auth login --with-token <<< 'CANARYhs6-x9' «MAG002»
docker login -u ci --password-stdin r.example.com <<< "$REGISTRY_PASSWORD"
cat > .env <<< "DB_PASSWORD=$DB_PASSWORD"
cat <<< "password_file: /run/secrets/db"
read -r user token <<< "$CREDENTIALS"
base64 -d <<< "CANARYnear1-x9" > token.bin
# cat <<< "API_TOKEN=CANARYnear2-x9"
""",
        ".github/workflows/ci.yml": """\
jobs:
  d:
    steps:
      - run: cat > .env <<< 'DB_PASSWORD=CANARYhs7-x9' «MAG002»
      - run: |
          helm registry login r.example.com --password-stdin <<< "CANARYhs8-x9" «MAG002»
          helm registry login r.example.com --password-stdin <<< "${{ secrets.HELM_PW }}"
"""})
    expected, found = expected_and_found(repo)
    assert found == expected
    done = run_cli(repo.root, "lint")
    assert "CANARY" not in done.stdout + done.stderr


def test_a_here_string_against_its_option_is_the_credential(make_repo: MakeRepo) -> None:
    """The shell ends a word at `<<<`: `--password-stdin<<<"..."` gives the option's
    command the word as its input as `--password-stdin <<< "..."` does (it passed the
    gate); an option that goes on past the name is another option."""
    repo = make_repo({"scripts/login.sh": """\
docker login -u ci --password-stdin<<<"CANARYhs9-x9" «MAG002»
gh auth login --with-token<<<CANARYhs10-x9 «MAG002»
docker login -u ci --password-stdin<<<"$REGISTRY_PASSWORD"
tool --password-stdin-file x <<< "CANARYnear3-x9"
"""})
    expected, found = expected_and_found(repo)
    assert found == expected
    done = run_cli(repo.root, "lint")
    assert "CANARY" not in done.stdout + done.stderr


def test_chpasswd_logins_and_ci_steps_read_as_shell_scripts(make_repo: MakeRepo) -> None:
    """`user:password` lines given to `chpasswd` (piped from `echo` or `printf`, in a
    here-string or a here-document) are findings, in a script, a Dockerfile and a CI
    step; so is what a CI step's script (GitHub's `run:`, GitLab's `script:` and
    `before_script:`, a block or a list's items) sets or writes as a shell script does:
    `export KEY=...`, a here-document's lines. A reference, a command substitution, a
    hash given to `chpasswd -e`, a comment and a value that is no step's script are not."""
    repo = make_repo({
        "scripts/users.sh": """\
echo "root:CANARYcp1-x9" | chpasswd «MAG002»
printf 'ops:CANARYcp2-x9\\n' | sudo -n chpasswd «MAG002»
chpasswd <<EOF
backup:CANARYcp3-x9 «MAG002»
EOF
echo "$USER:$(cat /run/secrets/pw)" | chpasswd
echo "app:${APP_PASSWORD}" | chpasswd
echo 'app:$6$rounds=5000$CANARYnear1' | chpasswd -e
# echo 'x:CANARYnear2-x9' | chpasswd
""",
        "Dockerfile": "FROM debian\nRUN echo 'root:CANARYcp4-x9' | chpasswd «MAG002»\n",
        ".github/workflows/ci.yml": """\
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - run: |
          chpasswd <<< "admin:CANARYcp5-x9" «MAG002»
          cat > .env <<EOF
          DB_PASSWORD=CANARYrb1-x9 «MAG002»
          LOG_LEVEL=debug
          EOF
          export API_TOKEN=CANARYrb2-x9 «MAG002»
          export API_TOKEN=${{ secrets.API_TOKEN }}
      - run: export SESSION_SECRET=CANARYrb3-x9 «MAG002»
      - name: export DEPLOY_TOKEN=CANARYnear3-x9
        with:
          args: export DEPLOY_TOKEN=CANARYnear4-x9
""",
        ".gitlab-ci.yml": """\
deploy:
  before_script:
    - export REGISTRY_PASSWORD=CANARYgl1-x9 «MAG002»
    - export REGISTRY_USER=deploy
  script:
  - |
    cat > creds.ini <<END
    password = CANARYgl2-x9 «MAG002»
    password_file = /run/secrets/db
    END
  - export DB_PASSWORD="$CI_DB_PASSWORD"
  variables:
    NOTE: "export API_TOKEN=CANARYnear5-x9"
"""})
    expected, found = expected_and_found(repo)
    assert found == expected
    done = run_cli(repo.root, "lint")
    assert "CANARY" not in done.stdout + done.stderr


def test_a_ci_step_anchored_tagged_quoted_or_below_its_key_is_read_as_a_shell_script(
        make_repo: MakeRepo) -> None:
    """A step's script behind an anchor or a tag (GitLab's `before_script: &setup`, the
    way a job's setup is shared), quoted on its line (a list item quoted for a colon in
    it), a plain scalar on the lines below its key, and the steps of CircleCI's
    `commands:` mapping are scripts as any other: each passed the gate. An alias, a
    `!reference` and a quoted reference are not findings."""
    repo = make_repo({
        ".gitlab-ci.yml": """\
.setup:
  before_script: &setup
    - export REGISTRY_PASSWORD=CANARYan1-x9 «MAG002»
  after_script: !!seq
    - 'export API_TOKEN=CANARYan2-x9' «MAG002»
deploy:
  before_script: *setup
  script: !reference [.setup, before_script]
  after_script:
    - "export DB_PASSWORD=CANARYan3-x9" «MAG002»
    - "export DB_PASSWORD=$CI_DB_PASSWORD"
    - 'curl -H "Accept: text/plain" https://example.com'
""",
        ".github/workflows/ci.yml": """\
jobs:
  d:
    steps:
      - run: &login |
          export SESSION_SECRET=CANARYan4-x9 «MAG002»
      - run: "export VAULT_TOKEN=CANARYan5-x9" «MAG002»
      - run:
          export DEPLOY_TOKEN=CANARYan6-x9 «MAG002»
      - run: *login
""",
        ".circleci/config.yml": """\
version: 2.1
commands:
  login:
    steps:
      - run: |
          export NPM_TOKEN=CANARYan7-x9 «MAG002»
      - run:
          name: setup
          command: export SLACK_TOKEN=CANARYan8-x9 «MAG002»
"""})
    expected, found = expected_and_found(repo)
    assert found == expected
    done = run_cli(repo.root, "lint")
    assert "CANARY" not in done.stdout + done.stderr


def test_a_line_a_backslash_continues_is_read_as_the_shell_joins_it(
        make_repo: MakeRepo) -> None:
    """The shell removes a backslash and the line end after it: `export DB_PASSWORD=\\`
    above the value, and `docker login -u ci \\` above `-p ...`, in a script, a
    Dockerfile's RUN and a CI step, set and give the credential as one line does (each
    passed the gate). Each finding is at the line and column of the value; a reference
    and an escaped backslash (no continuation) are not findings."""
    repo = make_repo({
        "scripts/deploy.sh": """\
export DB_PASSWORD=\\
CANARYbs1-x9 «MAG002»
docker login -u ci \\
  -p CANARYbs2-x9 r.example.com «MAG002»
docker login -u ci \\
  -p "$REGISTRY_PASSWORD" r.example.com
echo done \\\\
-p CANARYnear1-x9
""",
        "Dockerfile": """\
FROM debian
RUN curl -fsS https://example.com/setup \\
 && mysql -u root \\
      --password=CANARYbs3-x9 -e status «MAG002»
""",
        ".github/workflows/ci.yml": """\
jobs:
  d:
    steps:
      - run: |
          helm registry login r.example.com -u ci \\
            --password CANARYbs4-x9 «MAG002»
"""})
    expected, found = expected_and_found(repo)
    assert found == expected
    lines = {(f.file, f.line): f.column for f in lint(repo.root).findings}
    assert lines[("scripts/deploy.sh", 2)] == 1 and lines[("scripts/deploy.sh", 4)] == 6
    done = run_cli(repo.root, "lint")
    assert "CANARY" not in done.stdout + done.stderr


def test_a_ci_step_yaml_folds_is_read_as_the_one_line_the_shell_runs(
        make_repo: MakeRepo) -> None:
    """YAML joins the lines of a folded block (`run: >`) and of a plain scalar below
    its key with a space: a long command split over them, its credential on a line of
    its own (`docker login -u bot -p` above the password), is one command line (it
    passed the gate). A literal block keeps its lines, and a folded block its more
    indented ones: no line there gives the next its value."""
    repo = make_repo({".github/workflows/ci.yml": """\
jobs:
  d:
    steps:
      - run: >
          docker login ghcr.io -u bot -p
          CANARYfold1-x9 «MAG002»
      - run:
          helm registry login r.example.com --password
          CANARYfold2-x9 «MAG002»
      - run: |
          docker login -u bot -p
          echo CANARYnear1-x9
      - run: >-
          curl --token
            CANARYnear2-x9
"""})
    expected, found = expected_and_found(repo)
    assert found == expected
    lines = {(f.file, f.line): f.column for f in lint(repo.root).findings}
    assert lines == {(".github/workflows/ci.yml", 6): 11, (".github/workflows/ci.yml", 9): 11}
    done = run_cli(repo.root, "lint")
    assert "CANARY" not in done.stdout + done.stderr


def test_a_ci_step_quoted_with_escaped_line_ends_is_read_as_its_commands(
        make_repo: MakeRepo) -> None:
    """A double-quoted step holds its script's line ends escaped (`"set -e\\nexport
    ..."`): each ends a command, and an assignment after one is a finding (it passed the
    gate); a reference after one is not."""
    repo = make_repo({".github/workflows/ci.yml": """\
jobs:
  d:
    steps:
      - run: "set -e\\nexport API_TOKEN=CANARYqn1-x9\\n./deploy.sh" «MAG002»
      - run: "echo 'API_TOKEN is set'\\nexport API_TOKEN=$CI_TOKEN"
"""})
    expected, found = expected_and_found(repo)
    assert found == expected
    done = run_cli(repo.root, "lint")
    assert "CANARY" not in done.stdout + done.stderr


def test_a_ci_step_list_in_flow_style_is_read_as_its_commands(make_repo: MakeRepo) -> None:
    """GitLab reads `script: ["...", "..."]` as it reads a block list: each item is a
    command, and an assignment of a literal there is a finding (it passed the gate); a
    reference is not, nor a flow list under a key that holds no script."""
    repo = make_repo({".gitlab-ci.yml": """\
deploy:
  script: ["export API_TOKEN=CANARYfl1-x9", "./deploy.sh"] «MAG002»
  before_script: ['echo hi', "export DB_PASSWORD=$CI_DB_PASSWORD"]
  tags: ["export SESSION_SECRET=CANARYnear1-x9"]
"""})
    expected, found = expected_and_found(repo)
    assert found == expected
    done = run_cli(repo.root, "lint")
    assert "CANARY" not in done.stdout + done.stderr


def test_a_credential_echoed_into_a_command_that_reads_it_is_found(
        make_repo: MakeRepo) -> None:
    """`echo "..." | docker login --password-stdin` is Docker's own way to give a
    password, and gives it on the command's input as a here-string does: a literal
    there passed the gate, as it did through `printf`. A variable, a command that reads
    no credential from its input, and a pipe's second command are not findings."""
    repo = make_repo({
        "scripts/login.sh": """\
echo "CANARYpipe1-x9" | docker login -u ci --password-stdin r.example.com «MAG002»
printf '%s' 'CANARYpipe2-x9' | gh auth login --with-token «MAG002»
echo -n CANARYpipe3-x9|helm registry login r.example.com --password-stdin «MAG002»
echo "$REGISTRY_PASSWORD" | docker login -u ci --password-stdin r.example.com
printf '%s\\n' "${{ secrets.TOKEN }}" | gh auth login --with-token
echo "CANARYnear9-x9" | base64 -d > token.bin
echo "CANARYnear10-x9" | tee a.txt | docker login -u ci --password-stdin r
""",
        ".github/workflows/ci.yml": """\
jobs:
  d:
    steps:
      - run: echo 'CANARYpipe4-x9' | docker login ghcr.io -u ci --password-stdin «MAG002»
"""})
    expected, found = expected_and_found(repo)
    assert found == expected
    done = run_cli(repo.root, "lint")
    assert "CANARY" not in done.stdout + done.stderr


def test_a_here_document_fed_to_a_command_that_reads_a_credential_is_found(
        make_repo: MakeRepo) -> None:
    """A here-document's one line given to `--password-stdin` or `--with-token` is the
    credential, as a here-string's word is (it passed the gate); a reference, and a
    here-document of another command, are not findings."""
    repo = make_repo({"scripts/login.sh": """\
docker login -u ci --password-stdin r.example.com <<EOF
CANARYdoc1-x9 «MAG002»
EOF
gh auth login --with-token<<-'TOKEN'
\tCANARYdoc2-x9 «MAG002»
\tTOKEN
docker login -u ci --password-stdin r.example.com <<EOF
$REGISTRY_PASSWORD
EOF
base64 -d > token.bin <<EOF
CANARYnear11-x9
EOF
"""})
    expected, found = expected_and_found(repo)
    assert found == expected
    done = run_cli(repo.root, "lint")
    assert "CANARY" not in done.stdout + done.stderr


def test_an_sql_password_in_escaped_quotes_is_found(make_repo: MakeRepo) -> None:
    """A statement inside a double-quoted string quotes MySQL's password `\\"...\\"`: in a
    shell script's `mysql -e "..."` and in code's strings it passed the gate; a variable
    there, and an escaped identifier, are not findings."""
    repo = make_repo({
        "scripts/users.sh": 'mysql -e "CREATE USER app IDENTIFIED BY \\"CANARYsq5-x9\\"" '
                            "«MAG002»\n"
                            'mysql -e "CREATE USER ci IDENTIFIED BY \\"$CI_DB_PASSWORD\\""\n'
                            'mysql -e "SET PASSWORD FOR app = \\"CANARYsq6-x9\\"" «MAG002»\n',
        "app/db.py": 'cursor.execute("ALTER USER app IDENTIFIED BY \\"CANARYsq7-x9\\"") '
                     "«MAG002»\n"
                     'cursor.execute("GRANT SELECT ON \\"password\\" TO app")\n'})
    expected, found = expected_and_found(repo)
    assert found == expected
    done = run_cli(repo.root, "lint")
    assert "CANARY" not in done.stdout + done.stderr


def test_env_values_that_go_on_below_their_line(make_repo: MakeRepo) -> None:
    """A quoted env value over several lines is what dotenv reads: one word under a
    secret-like key is a finding at the key's line, and a PEM private key of any kind
    under any key is one at its BEGIN line; a certificate, prose (whose first line alone
    reads as one word) and a reference are not."""
    repo = make_repo({
        "config/app.env": """\
DB_PASSWORD=" «MAG002»
CANARYenv1-x9
"
API_TOKEN=' «MAG002»
CANARYenv2-x9'
SSL_KEY="
-----BEGIN ENCRYPTED PRIVATE KEY----- «MAG002»
MIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkqhkiG9w0BBQwwHAQIp1cKQk2Gg2gCAggA
-----END ENCRYPTED PRIVATE KEY-----
"
TLS_CERT="
-----BEGIN CERTIFICATE-----
MIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkqhkiG9w0BBQwwHAQIp1cKQk2Gg2gCAggA
-----END CERTIFICATE-----
"
WELCOME_TOKEN_TEXT="Hello
your token expires soon"
SESSION_SECRET="
${SESSION_SECRET_FROM_VAULT}
"
""",
        "deploy/signing.env": 'SIGNING_KEY="-----BEGIN OPENSSH PRIVATE KEY----- «MAG002»\n'
                'b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n'
                '-----END OPENSSH PRIVATE KEY-----"\n'})
    expected, found = expected_and_found(repo)
    assert found == expected
    done = run_cli(repo.root, "lint")
    assert "CANARY" not in done.stdout + done.stderr


def test_lines_of_unclosed_fallbacks_statements_and_here_documents_end(
        make_repo: MakeRepo) -> None:
    """40,000 `${` or `${{` that no brace closes on a line, `CREATE USER` with no `;`, and
    `<<N` openers with no end: each was read again from each one (the rest of the line,
    statement or file), hours of work. The run must end, well within the timeout, and
    still find what the files hold."""
    n = 40_000
    repo = make_repo({
        "run.sh": "echo " + "${DB_PASSWORD:-" * n + "\nexport TOKEN=${TOKEN:-CANARYh1-x9}\n",
        "ci.yml": "run: echo " + "${{ secrets.TOKEN " * n
                  + "\nenv:\n  API_TOKEN: ${{ secrets.X || 'CANARYh2-x9' }}\n",
        "init.sql": "CREATE USER a " * n + "\nCREATE USER b PASSWORD 'CANARYh3-x9';\n",
        "shift.sh": "".join(f"x=$((1<<N{i}))\n" for i in range(n))
                    + "cat <<EOF\npassword: CANARYh4-x9\nEOF\n"})
    env = {**os.environ, "PYTHONPATH": str(REPO / "compiler")}
    done = subprocess.run([sys.executable, "-m", "magcfg", "lint"], cwd=repo.root, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    found = {line.split(":")[0] + ":" + line.split(":")[1]
             for line in done.stdout.splitlines()[0::2]}
    assert {"run.sh:2", "ci.yml:3", "init.sql:2", f"shift.sh:{n + 2}"} <= found, done.stdout
    assert "CANARY" not in done.stdout + done.stderr


def test_a_ci_step_nested_past_pyyamls_depth_is_no_script(make_repo: MakeRepo) -> None:
    """A step's one-line flow sequence nested 2,000 deep is read as no script (YAML no
    parser reads so deep): PyYAML's RecursionError went out of lint as a traceback."""
    repo = make_repo({".gitlab-ci.yml": "job:\n  script: " + "[" * 2000 + "]" * 2000
                      + "\n  variables:\n    password_file: /run/secrets/db\n"})
    assert lint(repo.root).findings == []
