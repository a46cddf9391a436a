"""One fixture repository per rule, positive cases marked ``«MAG00N»``, the rest negative.

Canary values (``CANARY...``) stand for secrets: tests assert they never reach any output.
"""

from __future__ import annotations

import json

from ..lsp.test_layouts import SERVICES_PROJECT

CANARIES = ("CANARYpw7731", "CANARYtok4412", "CANARYkey9920", "CANARYdb5151", "CANARYjs3030",
            "CANARYgo8080", "CANARYenv6060", "CANARYini1212", "CANARYsh4545", "CANARYk8s3131")

FALLBACKS = {
    "docker-compose.yml": """\
services:
  api:
    image: api:1
    environment:
      DB_HOST: ${DB_HOST:-localhost} «MAG001»
      DB_PORT: ${DB_PORT-5432} «MAG001»
      DB_NAME: ${DB_NAME:=app} «MAG001»
      DB_USER: ${DB_USER=app} «MAG001»
      LOG_LEVEL: ${LOG_LEVEL:-info}  # safe-default: log level is not sensitive
      REGION: ${REGION:-eu}  # safe-default: «MAG001»
      REQUIRED: ${REQUIRED:?REQUIRED must be set}
      PLAIN: ${PLAIN}
      ESCAPED: $${NOT_A_SUBSTITUTION:-x}
      # DOC: ${IN_A_COMMENT:-x}
      TWO: ${A:-1}-${B:?b} «MAG001»
""",
    "compose.prod.yaml": "services:\n  w:\n    command: run --port ${PORT:-80} «MAG001»\n",
    "k8s/deployment.yaml": """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
spec:
  template:
    spec:
      containers:
        - name: api
          image: registry/api:${TAG:-latest} «MAG001»
""",
    "charts/api/values.yaml": "replicas: 2\nimage:\n  tag: ${IMAGE_TAG:-dev} «MAG001»\n",
    "charts/api/values-prod.yaml": "image:\n  tag: ${IMAGE_TAG:?set the tag}\n",
    "config/app.env": "API_URL=${API_URL:-http://localhost} «MAG001»\nX=${X}\n",
    # Not compose, k8s, Helm values or env files: out of scope.
    "scripts/run.sh": "exec api --port ${PORT:-80}\n",
    "ci/pipeline.yaml": "steps:\n  - run: echo ${X:-y}\n",
    "README.md": "Use `${VAR:-default}` only with a safe-default tag.\n",
    # Flux: the manifest itself and the tree its postBuild substitutes.
    "clusters/prod/apps.yaml": """\
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: apps
  namespace: flux-system
spec:
  interval: 10m
  path: ./apps/prod
  sourceRef:
    kind: GitRepository
    name: flux-system
  postBuild:
    substitute:
      cluster_env: prod
      replicas: ${REPLICAS:-2} «MAG001»
""",
    "apps/prod/deploy.yaml": """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    env: ${cluster_env:=dev} «MAG001»
""",
}
FLUX_FILES = {"clusters/prod/apps.yaml", "apps/prod/deploy.yaml"}

HARDCODED = {
    "deploy/values.yaml": """\
db:
  host: db.internal
  password: CANARYpw7731 «MAG002»
  passwordFile: /run/secrets/db
  existingSecret: db-credentials
  passwordKey: db-password
  secretKey: MAGCFG_DB_PASSWORD
  secret_key: Zx9kQ2pLm8vR4tW7yB1nC6dF3gH5jK0s «MAG002»
  user_password: ""
api:
  token: "CANARYtok4412" «MAG002»
  tokenUrl: https://auth.example.com/token
  api_key: vault://secret/k3s/api#api_key
  apiKey: env://API_KEY
  client_secret: ${CLIENT_SECRET}
  secret: '{{ .Values.global.secret }}'
  signing_key: <your-signing-key>
  max_tokens: 4096
  automountServiceAccountToken: false
  secretName: api-tls
  tls:
    private_key: |
      see vault
""",
    "k8s/pod.yaml": """\
apiVersion: v1
kind: Pod
metadata:
  name: p
spec:
  automountServiceAccountToken: false
  containers:
    - name: app
      image: app@sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
      env:
        - name: DB_PASSWORD
          value: "CANARYk8s3131" «MAG002»
        - name: API_TOKEN
          valueFrom:
            secretKeyRef:
              name: api
              key: token
        - name: LOG_LEVEL
          value: debug
""",
    "docker-compose.yml": """\
services:
  api:
    environment:
      - DB_PASSWORD=CANARYdb5151 «MAG002»
      - DB_USER=app
      - API_TOKEN=${API_TOKEN:?required}
""",
    "config/settings.json": """\
{
  "apiKey": "CANARYkey9920", «MAG002»
  "apiKeyHeader": "X-Api-Key",
  "password": null,
  "token": "vault://secret/k3s/web#token"
}
""",
    "app/settings.py": """\
import os

DB_PASSWORD = "CANARYpw7731" «MAG002»
API_TOKEN = os.environ["API_TOKEN"]
PASSWORD_FIELD = "password"
def login(user, password=None):
    if password == "guest":
        return None
    return connect(user=user, password=password)
client = Client(api_key="CANARYkey9920") «MAG002»
""",
    "web/src/config.ts": """\
export const config = {
  apiKey: process.env.API_KEY,
  clientSecret: "CANARYjs3030", «MAG002»
};
const token = 'CANARYtok4412'; «MAG002»
""",
    "svc/main.go": """\
package main

import "os"

const dbPassword = "CANARYgo8080" «MAG002»

func main() {
	token := os.Getenv("TOKEN")
	secret := "CANARYgo8080" «MAG002»
	_ = token
	_ = secret
}
""",
    "config/prod.env": "DB_PASSWORD=CANARYenv6060 «MAG002»\nDB_HOST=db\nAPI_TOKEN=\n",
    ".env.example": "DB_PASSWORD=changeme\nAPI_TOKEN=<token>\n",
    "config/app.toml": '[db]\npassword = "CANARYini1212" «MAG002»\nhost = "db"\n',
    "Dockerfile": "FROM alpine\nENV API_TOKEN=CANARYsh4545 «MAG002»\nENV PATH=/bin\n",
    "scripts/deploy.sh": "#!/bin/sh\nexport SECRET_KEY=CANARYsh4545 «MAG002»\nexport HOME_DIR=/x\n",
    # Well-known token formats, wherever they are (detect-secrets plugins).
    "notes/incident.md": """\
The leaked key was ghp_CANARY0abcdefghijklmnopqrstuvwxyz1234 «MAG002»
and AKIAIOSFODNN7CANARY9 «MAG002»
""",
    "certs/key.pem": "-----BEGIN RSA PRIVATE KEY----- «MAG002»\nMIIB\n-----END RSA PRIVATE KEY-----\n",
    "config/db.yaml": "url: postgres://app:CANARYdb5151@db:5432/app «MAG002»\n"
                      "ref_url: postgres://app:${DB_PASSWORD}@db:5432/app\n",
    # Digests and lock files are not secrets.
    "package-lock.json": '{"integrity": "sha512-Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZg9XyZ=="}\n',
    "generated/manifest.json": '{"config_digest": "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf'
                               '4f1b2b0b822cd15d6c15b0f00a08"}\n',
}

ENVFILES = {
    "k8s/.env": "X=1 «MAG003»\n",
    "deploy/.env.production": "X=1 «MAG003»\n",
    "docker/.env": "X=1 «MAG003»\n",
    "helm/.env.local": "X=1 «MAG003»\n",
    "services/api/k8s/.env": "X=1 «MAG003»\n",
    "k8s/.env.example": "X=\n",
    "docker/.env.sample": "X=\n",
    "src/.env.template": "X=\n",
    "src/app.env": "X=1\n",
    "docs/deploy-notes.md": "Never commit k8s/.env.\n",
    # The root .env is ignored: the walker never sees it.
    ".gitignore": "/.env\n",
}
ENVFILES_IGNORED = {".env": "X=1\n"}

VAULT_CLIENTS = {
    "services/billing/README.md": "# billing\n",
    "services/billing/app.py": """\
\"\"\"Billing. Not `import hvac` in a docstring.\"\"\"
import json
import hvac «MAG004»
from hvac.api import secrets_engines «MAG004»
import hvac_helpers
""",
    "services/billing/worker.py": "from async_hvac import AsyncClient «MAG004»\n",
    "services/web/package.json": '{"name": "web"}\n',
    "services/web/src/vault.js": """\
const vault = require('node-vault')({ endpoint: process.env.VAULT_ADDR }); «MAG004»
const notVault = require('node-vault-helper');
""",
    "services/web/src/vault.ts": 'import vault from "node-vault"; «MAG004»\n',
    "services/gw/go.mod": "module example.com/platform/gw\n",
    "services/gw/main.go": """\
package main

import (
	"fmt"
	vault "github.com/hashicorp/vault/api" «MAG004»
	bao "github.com/openbao/openbao/api/v2" «MAG004»
)
""",
    # Declared through the README section.
    "services/backup/README.md": """\
# backup

## Secrets architecture

backup uses Direct-Vault.
Justification: it rotates its own credentials and must read them at restore time.

## Other
""",
    "services/backup/main.py": "import hvac\n",
    # A README that names Direct-Vault without a reason does not count.
    "services/sync/README.md": "# sync\n\n## Secrets architecture\n\nUses Direct-Vault.\n",
    "services/sync/sync.py": "import hvac «MAG004»\n",
    # Declared in the project file.
    "services/audit/package.json": '{"name": "audit"}\n',
    "services/audit/index.js": "const vault = require('node-vault')();\n",
    "magcfg.yaml": """\
version: 1
secrets:
  direct_vault:
    - app: audit
      path: services/audit
      justification: "audit must read the KV audit trail directly"
""",
}

VAULT_POLICY = {
    "policies/magds.hcl": """\
path "secret/data/k3s/magds/*" { «MAG005»
  capabilities = ["read"]
}
path "secret/data/k3s/magws*" { «MAG005»
  capabilities = ["read"]
}
path "secret/data/k3s/magauth" {
  capabilities = ["read"]
}
path "secret/data/k3s/magauth/*" {
  capabilities = ["read"]
}
path "secret/data/k3s/denied/*" {
  capabilities = ["deny"]
}
path "sys/leases/*" {
  capabilities = ["read"]
}
""",
    "terraform/main.tf": 'resource "x" "y" {\n  path = "secret/data/k3s/magds/*"\n}\n',
}

LAYER_SCHEMA = """\
{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "additionalProperties": false,
  "$defs": {
    "secret_ref": {"type": "string", "x-magcfg-secret": true,
                   "pattern": "^(vault://|env://)"}
  },
  "properties": {
    "db": {
      "type": "object",
      "additionalProperties": false,
      "properties": {
        "host": {"type": "string"},
        "password": {"$ref": "#/$defs/secret_ref"},
        "password_min_length": {"type": "integer"},
        "replica_password": {"$ref": "#/$defs/secret_ref"}
      }
    },
    "api_keys": {
      "type": "object",
      "additionalProperties": {"$ref": "#/$defs/secret_ref"}
    },
    "notes": {"type": "string"}
  }
}
"""

LAYER_SECRETS = {
    "magcfg.yaml": """\
version: 1
environments: [dev, prod]
layers:
  - name: base
    path: layers/base
  - name: env
    path: "layers/env/{env}"
schema:
  json: schemas/app.schema.json
output: generated
""",
    "schemas/app.schema.json": LAYER_SCHEMA,
    "layers/base/db.yaml": """\
db:
  host: db.internal
  password: "vault://secret/k3s/app#db_password"
  password_min_length: 12
  replica_password: env://REPLICA_PASSWORD
notes: "the password lives in vault"
""",
    "layers/env/dev/db.yaml": """\
db:
  password: CANARYlayer1 «MAG006»
  replica_password: !unset
api_keys:
  github: "vault://secret/k3s/app#github"
  stripe: "CANARYlayer2" «MAG006»
  broken: "vault://no-key-part" «MAG006»
  numeric: 123456 «MAG006»
""",
    "layers/env/prod/db.yaml": """\
db:
  password: !unset
api_keys:
  stripe: env://STRIPE_KEY
""",
    # Not a layer directory: the compiler never reads it, so MAG006 does not apply.
    "examples/db.yaml": "db:\n  host: x\n",
}

_OBJECT = {"type": "object", "additionalProperties": False}
MAPPED_SCHEMA = json.dumps({
    "$schema": "https://json-schema.org/draft/2020-12/schema", **_OBJECT, "properties": {
        "magds": {**_OBJECT, "properties": {"db": {**_OBJECT, "properties": {
            "host": {"type": "string"},
            "dsn": {"type": "string", "x-magcfg-secret": True}}}}},
        "web": {**_OBJECT, "properties": {
            "tokens": {"type": "object", "x-magcfg-secret": True,
                       "additionalProperties": {"type": "string"}},
            "port": {"type": "integer"}}}}}, indent=2)

LAYER_SECRETS_MAPPED = {
    # Layers whose files map under a key (docs/layers.md): a key written in
    # services/magds/base.yaml is the merged key behind `magds`.
    "magcfg.yaml": SERVICES_PROJECT,
    "schemas/schema.json": MAPPED_SCHEMA,
    "services/magds/base.yaml": """\
db:
  host: db.internal
  dsn: CANARYmapped1 «MAG006»
""",
    "services/magds/env/prod.yaml": """\
db:
  dsn: env://MAGDS_DSN
""",
    "services/web/base.yaml": """\
port: 8080
tokens:
  upstream: CANARYmapped2 «MAG006»
  other: vault://secret/k3s/web#other
""",
    "services/web/env/dev.yaml": """\
tokens:
  upstream: env://WEB_UPSTREAM
""",
    # Under the layers' directory but none of their files: the compiler never reads it.
    "services/notes.yaml": """\
magds:
  db:
    dsn: kept-out-of-the-build
""",
}
