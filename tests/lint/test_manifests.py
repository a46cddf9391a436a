"""Kubernetes manifests read by their structure (lint/manifests.py): a Secret's base64
``data`` checked as what it decodes to, each finding at its key's line."""

from __future__ import annotations

import base64
import json
import random
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from magcfg.lint import hardcoded, lint, manifests
from magcfg.lint.config import LintConfig
from magcfg.lint.context import LintContext
from magcfg.lint.manifests import MAX_DATA_BYTES, secret_data
from magcfg.lint.walk import SourceFile, source

from .conftest import MakeRepo, run_cli


def b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


DOCKER = json.dumps({"auths": {"ghcr.io": {"auth": b64("deploy:CANARYdock1-x9")}}})
PEM_KEY = ("-----BEGIN EC PRIVATE KEY-----\n"
           "MHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk5oA+FOzp4bwP3oAoGCCqGSM49\n"
           "-----END EC PRIVATE KEY-----\n")

SECRET = f"""\
apiVersion: v1
kind: Secret
metadata:
  name: app
data:
  .dockerconfigjson: {b64(DOCKER)} «MAG002»
  app.env: {b64("LOG_LEVEL=info" + chr(10) + "DB_PASSWORD=CANARYenv2-x9" + chr(10))} «MAG002»
  password: {b64("CANARYpw3-x9")} «MAG002»
  tls.key: |- «MAG002»
    {b64(PEM_KEY)[:60]}
    {b64(PEM_KEY)[60:]}
  config.yaml: {b64("db:" + chr(10) + "  password: CANARYyaml4-x9" + chr(10))} «MAG002»
  api_token: {b64(bytes(range(200, 232)))} «MAG002»
  username: {b64("CANARYadmin")}
  db_password: {b64("vault://secret/k3s/app#db_password")}
  empty_token: ""
  tls.crt: {b64("-----BEGIN CERTIFICATE-----" + chr(10) + "MIIB" + chr(10))}
  settings.json: {b64(json.dumps({"passwordMinLength": 12, "logLevel": "info"}))}
  plain_password: CANARYnotbase64 «MAG002»
stringData:
  token: CANARYstring5-x9 «MAG002»
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: app
data:
  app.env: {b64("DB_PASSWORD=CANARYcm6-x9")}
"""


def test_secret_data_is_read_as_what_it_decodes_to(make_repo: MakeRepo) -> None:
    repo = make_repo({"k8s/secret.yaml": SECRET})
    found = {(f.file, f.line, f.rule) for f in lint(repo.root).findings}
    assert found == repo.expected
    done = run_cli(repo.root, "lint")
    assert "k8s/secret.yaml:6:3: MAG002 error: the Secret's `.dockerconfigjson`, " \
           "base64-decoded: `auth` is assigned a literal value (<redacted>)" in done.stdout
    assert "CANARY" not in done.stdout + done.stderr


def test_secret_lists_json_and_limits(make_repo: MakeRepo) -> None:
    """`kubectl get -o yaml`'s List and a JSON Secret are decoded; a value over 1 MiB,
    a template and a SealedSecret are not."""
    listed = (f"apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Secret\n"
              f"  data:\n    app.env: {b64('API_TOKEN=CANARYlist1-x9')} «MAG002»\n")
    as_json = ('{"apiVersion": "v1", "kind": "Secret", "data": {\n'
               f'  "app.env": "{b64("API_TOKEN=CANARYjson2-x9")}"}}}} «MAG002»\n')
    big = b64("API_TOKEN=CANARYbig3-x9\n" + "#" * MAX_DATA_BYTES)
    repo = make_repo({
        "k8s/list.yaml": listed, "k8s/secret.json": as_json,
        "k8s/big.yaml": f"kind: Secret\ndata:\n  app.env: {big}\n",
        "chart/templates/secret.yaml": "kind: Secret\ndata:\n"
                                       "  password: {{ .Values.password | b64enc }}\n",
        "k8s/sealed.yaml": "kind: SealedSecret\nspec:\n  encryptedData:\n"
                           f"    app.env: {b64('API_TOKEN=CANARYsealed-x9')}\n",
        # An example file: the key rule is off, a private key still is a finding.
        "k8s/secret.example.yaml": f"kind: Secret\ndata:\n  password: {b64('CANARYex-x9')}\n"
                                   f"  tls.key: {b64(PEM_KEY)} «MAG002»\n"})
    found = {(f.file, f.line, f.rule) for f in lint(repo.root).findings}
    assert found == repo.expected


def test_a_decoded_block_value_is_fingerprinted_with_its_line(make_repo: MakeRepo) -> None:
    """A value on lines below its key is the baseline's with the key's line: an edited
    secret there is a new finding."""
    text = f"kind: Secret\ndata:\n  app.env: |\n    {b64('API_TOKEN=CANARYfp1-x9')}\n"
    repo = make_repo({"k8s/s.yaml": text})
    assert run_cli(repo.root, "lint", "--write-baseline").returncode == 0
    assert run_cli(repo.root, "lint", "--baseline", ".magcfg-lint-baseline.json").returncode == 0
    (repo.root / "k8s/s.yaml").write_text(text.replace(b64("API_TOKEN=CANARYfp1-x9"),
                                                       b64("API_TOKEN=CANARYfp2-x9")))
    done = run_cli(repo.root, "lint", "--baseline", ".magcfg-lint-baseline.json")
    assert done.returncode == 1 and done.stdout.startswith("k8s/s.yaml:3:3: MAG002")


def test_the_rest_of_a_minified_secret_s_line_is_read(make_repo: MakeRepo) -> None:
    """Only the decoded value's own text is decided by what it decodes to: a token
    beside it on the line (a minified JSON Secret) is still a finding."""
    token = "ghp_" + "Zq7Xw2Lk9Vb4Nm6Pd1Rt8Yc3Hs5Jf0Ga2Ue7"
    line = ('{"kind": "Secret", "data": {"db_password": "'
            + b64("vault://secret/k3s/app#db") + '"}, "stringData": {"x": "' + token + '"}}')
    repo = make_repo({"k8s/min.json": line + "\n",
                      "k8s/clean.json": line.replace(token, "plain") + "\n"})
    assert [(f.file, f.line, f.column) for f in lint(repo.root).findings] == [
        ("k8s/min.json", 1, line.index(token) + 1)]


def test_a_manifest_s_kind_may_come_after_its_data(make_repo: MakeRepo) -> None:
    """Entries read before `kind` count once it is `Secret` (or `SealedSecret`), and
    only then: a ConfigMap's data and a manifest without a kind are not decoded."""
    entry = f"  app.env: {b64('API_TOKEN=CANARYlate1-x9')}"
    sealed = "  encryptedData:\n    api_token: AgBy3i4OJSWK+PiTySYZZA9rO43cGDEq\n"
    repo = make_repo({
        "k8s/late.yaml": f"apiVersion: v1\ndata:\n{entry} «MAG002»\nkind: Secret\n",
        "k8s/config.yaml": f"apiVersion: v1\ndata:\n{entry}\nkind: ConfigMap\n",
        "k8s/kindless.yaml": f"apiVersion: v1\ndata:\n{entry}\n",
        "k8s/sealed.yaml": f"spec:\n{sealed}kind: SealedSecret\n",
        "k8s/not-sealed.yaml": f"spec:\n{sealed.rstrip()} «MAG002»\nkind: Other\n"})
    found = {(f.file, f.line, f.rule) for f in lint(repo.root).findings}
    assert found == repo.expected


def _big_secret(entries: int, *, token: bool = False) -> SourceFile:
    """A Secret of ``entries`` data entries; with ``token``, each value is base64 that is
    also an AWS key id, a token-format hit on every line."""
    value = "AKIAQ3EGUK7ZXTW2MN4B" if token else b64("value")
    lines = ["apiVersion: v1", "kind: Secret", "metadata:", "  name: big", "data:",
             *(f"  k{i}: {value}" for i in range(entries))]
    return source("k8s/big.yaml", ("\n".join(lines) + "\n").encode())


def test_secret_data_is_read_in_memory_bounded_by_the_text() -> None:
    """A Secret's entries are read one at a time, not held as the parser's events or a
    tree: the peak is about the text's size (the parser's UTF-8 copy of it), whatever
    the number of entries."""
    sum(1 for _ in secret_data(_big_secret(10)))  # the parser's first-use allocations
    src = _big_secret(40_000)
    src.position(0)
    tracemalloc.start()
    try:
        read = sum(1 for _ in secret_data(src))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert read == 40_000
    assert peak < 2 * len(src.text.encode()) + (256 << 10)


def _lines_run(run: Callable[[], object]) -> int:
    """How many lines of lint's own code ``run`` executes: its work, whatever the
    machine's speed."""
    lint_dir = str(Path(manifests.__file__).parent)
    count = 0

    def local(frame: FrameType, event: str, arg: object) -> Any:
        nonlocal count
        count += event == "line"
        return local

    def trace(frame: FrameType, event: str, arg: object) -> Any:
        return local if frame.f_code.co_filename.startswith(lint_dir) else None

    sys.settrace(trace)
    try:
        run()
    finally:
        sys.settrace(None)
    return count


def test_the_work_on_a_secret_s_data_grows_linearly_with_its_entries() -> None:
    """Every line of a big Secret has a hit on its base64 (an AWS key id is valid base64):
    each hit looks at its own line's entries, not at all of them, and twice the entries
    take about twice the work."""
    ctx = LintContext(root=Path("."), config=LintConfig(), files={}, in_git=False)
    hardcoded.prepare(ctx)  # the plugins, loaded once, outside the count

    def work(entries: int) -> int:
        src = _big_secret(entries, token=True)
        return _lines_run(lambda: list(hardcoded.check(src, ctx)))

    assert work(800) < 2.3 * work(400)


def _minified_secret(entries: int) -> SourceFile:
    """A JSON Secret on one line, as `kubectl get -o json | jq -c` writes it, each value
    high-entropy base64 (of random bytes, the same each time)."""
    bytes_of = random.Random(7).randbytes
    data = {f"k{i}": b64(bytes_of(30)) for i in range(entries)}
    text = json.dumps({"apiVersion": "v1", "kind": "Secret", "data": data},
                      separators=(",", ":"))
    return source("k8s/big.json", text.encode())


def test_the_work_on_a_minified_secret_grows_linearly_with_its_entries() -> None:
    """All of a minified Secret's entries are on one line: a hit there is asked of its
    own entry's span, not of each entry's, and twice the entries take about twice the
    work."""
    ctx = LintContext(root=Path("."), config=LintConfig(), files={}, in_git=False)
    hardcoded.prepare(ctx)

    def work(entries: int) -> int:
        src = _minified_secret(entries)
        return _lines_run(lambda: list(hardcoded.check(src, ctx)))

    assert work(800) < 2.3 * work(400)


def test_a_secret_s_plain_values_cost_little_each() -> None:
    """A decoded value that holds no token format's trigger, under a name that is no
    secret's and no file's, is decided in a few dozen lines of lint's code (a 200,000-entry
    Secret took 7-10 s of them)."""
    ctx = LintContext(root=Path("."), config=LintConfig(), files={}, in_git=False)
    hardcoded.prepare(ctx)

    def work(entries: int) -> int:
        src = _big_secret(entries)
        return _lines_run(lambda: list(hardcoded.check(src, ctx)))

    assert (work(1200) - work(200)) / 1000 < PER_ENTRY_LINES


PER_ENTRY_LINES = 200  # 155 at the time of writing
