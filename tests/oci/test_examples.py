"""The Flux and Argo CD examples of docs/delivery.md: valid against their schemas, and in
agreement with what `magcfg publish` pushes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from magcfg.oci import flux
from tests.conftest import REPO

DATA = Path(__file__).parent / "data"
SCHEMAS = {
    ("source.toolkit.fluxcd.io/v1beta2", "OCIRepository"): "ocirepository-v1beta2.schema.json",
    ("kustomize.toolkit.fluxcd.io/v1", "Kustomization"): "kustomization-v1.schema.json",
    ("argoproj.io/v1alpha1", "Application"): "application-v1alpha1.schema.json",
}


def _examples() -> list[dict[str, Any]]:
    text = (REPO / "docs/delivery.md").read_text()
    docs: list[dict[str, Any]] = []
    for block in re.findall(r"```yaml\n(.*?)```", text, re.S):
        docs += [d for d in yaml.safe_load_all(block) if d and "metadata" in d]
    return docs


def _by_kind(kind: str) -> dict[str, Any]:
    (found,) = [d for d in _examples() if d["kind"] == kind]
    return found


def test_every_example_has_a_schema_and_validates() -> None:
    seen = set()
    for doc in _examples():
        key = (doc["apiVersion"], doc["kind"])
        seen.add(key)
        if key == ("v1", "Secret"):
            assert kubernetes_validate.validate(doc, "1.37.0", strict=True) == "1.37"
            continue
        schema = json.loads((DATA / SCHEMAS[key]).read_text())
        jsonschema.Draft202012Validator(schema).validate(doc)
    assert seen == {("v1", "Secret"), *SCHEMAS}


@pytest.mark.parametrize(("kind", "path", "value"), [
    ("OCIRepository", ("spec", "verify", "provider"), "sigstore"),
    ("OCIRepository", ("spec", "url"), "ghcr.io/acme/magcfg"),
    ("OCIRepository", ("spec", "layerSelector", "mediatype"), "x"),
    ("Kustomization", ("spec", "sourceRef", "kind"), "OCIRepo"),
    ("Kustomization", ("spec", "prune"), "yes"),
    ("Application", ("spec", "source", "repoUrl"), "https://x"),
    ("Application", ("spec", "syncPolicy", "automated", "prune"), "true"),
])
def test_the_schemas_catch_mistakes(kind: str, path: tuple[str, ...], value: object) -> None:
    doc = json.loads(json.dumps(_by_kind(kind)))
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    schema = json.loads((DATA / SCHEMAS[(doc["apiVersion"], kind)]).read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(doc)


def test_the_examples_agree_with_publish() -> None:
    source = _by_kind("OCIRepository")
    assert source["spec"]["layerSelector"]["mediaType"] == flux.CONTENT_MEDIA_TYPE
    assert source["spec"]["verify"] == {"provider": "cosign",
                                        "secretRef": {"name": _by_kind("Secret")["metadata"]["name"]}}
    kustomization = _by_kind("Kustomization")
    assert kustomization["spec"]["sourceRef"] == {"kind": "OCIRepository",
                                                  "name": source["metadata"]["name"]}
    assert kustomization["spec"]["path"] == "./"  # the files are at the layer's root
    (pem,) = _by_kind("Secret")["stringData"].values()
    assert isinstance(load_pem_public_key(pem.encode()), Ed25519PublicKey)
    application = _by_kind("Application")
    assert application["spec"]["source"]["path"] == "generated/production"
    assert (REPO / "generated/production/kustomization.yaml").is_file()
