"""The Flux and Argo CD examples of docs/delivery.md: accepted by the real CRDs of the
pinned releases (scripts/tools.sh copies them into .tools/crds/), and in agreement with
what `magcfg publish` pushes."""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Iterable
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from magcfg.oci import flux
from tests.conftest import REPO

CRDS = REPO / ".tools/crds"
CRD_FILES = ("source.toolkit.fluxcd.io_ocirepositories.yaml",
             "kustomize.toolkit.fluxcd.io_kustomizations.yaml",
             "application-crd.yaml")
KUBERNETES = "1.37.0"
# metadata.name of a custom resource is a DNS-1123 subdomain, metadata.namespace a label
# (the API server's ValidateObjectMeta; the OpenAPI schema does not carry these rules).
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


@functools.cache
def _crds() -> tuple[dict[str, Any], ...]:
    found = []
    for name in CRD_FILES:
        path = CRDS / name
        assert path.is_file(), f"{path} is missing: run ./scripts/dev tools (scripts/tools.sh)"
        crd = yaml.load(path.read_text(), Loader=yaml.CSafeLoader)
        # apiextensions.k8s.io/v1 requires structural schemas with pruning: a field the
        # schema does not name is unknown unless x-kubernetes-preserve-unknown-fields says
        # otherwise (spec.preserveUnknownFields: true is refused in v1).
        assert crd["apiVersion"] == "apiextensions.k8s.io/v1", path
        assert not crd["spec"].get("preserveUnknownFields"), path
        found.append(crd)
    return tuple(found)


def _served_version(doc: dict[str, Any]) -> dict[str, Any] | None:
    """The CRD version entry the API server would serve `doc` with (None: "no matches
    for kind ... in version ...")."""
    group, _, version = str(doc.get("apiVersion")).rpartition("/")
    for crd in _crds():
        if (crd["spec"]["group"], crd["spec"]["names"]["kind"]) == (group, doc.get("kind")):
            for entry in crd["spec"]["versions"]:
                if entry["name"] == version and entry["served"]:
                    return dict(entry)
    return None


def _as_strict_field_validation(schema: dict[str, Any]) -> dict[str, Any]:
    """An openAPIV3Schema as the API server applies it under field validation Strict
    (kubectl's default): an object's unknown fields are refused ("strict decoding error:
    unknown field ...") unless it is marked x-kubernetes-preserve-unknown-fields or is a
    map (additionalProperties); with Warn or Ignore they would be pruned, silently lost.
    A required field that has a default is filled in before validation. The other
    x-kubernetes-* keywords stay annotations (x-kubernetes-int-or-string fields carry
    their anyOf; x-kubernetes-validations CEL rules are not evaluated)."""
    node = dict(schema)
    for key in ("properties", "patternProperties"):
        if key in schema:
            node[key] = {name: _as_strict_field_validation(sub) for name, sub in schema[key].items()}
    for key in ("items", "additionalProperties", "not"):
        if isinstance(schema.get(key), dict):
            node[key] = _as_strict_field_validation(schema[key])
    for key in ("anyOf", "allOf", "oneOf"):
        if key in schema:
            node[key] = [_as_strict_field_validation(sub) for sub in schema[key]]
    if node.get("type") == "object" and not node.get("x-kubernetes-preserve-unknown-fields"):
        node.setdefault("additionalProperties", False)
    if "required" in node:
        properties = node.get("properties", {})
        node["required"] = [name for name in node["required"]
                            if "default" not in properties.get(name, {})]
    return node


def _dotted(path: Iterable[str | int]) -> str:
    return ".".join(str(part) for part in path) or "(document)"


def api_server_refusals(doc: dict[str, Any]) -> list[str]:
    """Why the API server would refuse to create `doc` ("<field>: <what>"), as far as the
    CRD's schema and ObjectMeta's rules tell; empty when it would accept it."""
    version = _served_version(doc)
    if version is None:
        return [f"apiVersion, kind: no matches for kind {doc.get('kind')!r} in version "
                f"{doc.get('apiVersion')!r}"]
    root = version["schema"]["openAPIV3Schema"]
    # metadata is ObjectMeta whatever the CRD says (its schema there is a bare object)
    schema = _as_strict_field_validation({**root, "properties": {
        name: sub for name, sub in root["properties"].items() if name != "metadata"}})
    schema["properties"]["metadata"] = {"type": "object"}
    # OpenAPI 3.0 schema objects are a JSON Schema draft-04 dialect
    refusals = sorted(f"{_dotted(error.absolute_path)}: {error.validator}"
                      for error in jsonschema.Draft4Validator(schema).iter_errors(doc))
    metadata = doc.get("metadata")
    if not isinstance(metadata, dict):
        return [*refusals, "metadata: required"]
    try:
        # ObjectMeta as Kubernetes defines it, carried by an object that has nothing else
        kubernetes_validate.validate({"apiVersion": "v1", "kind": "ConfigMap",
                                      "metadata": metadata}, KUBERNETES, strict=True)
    except kubernetes_validate.ValidationError as error:
        refusals.append(f"{_dotted(error.absolute_path)}: {error.validator}")
    name, namespace = metadata.get("name"), metadata.get("namespace", "default")
    if not (isinstance(name, str) and len(name) <= 253 and DNS_SUBDOMAIN.fullmatch(name)):
        refusals.append("metadata.name: not a DNS-1123 subdomain")
    if not (isinstance(namespace, str) and len(namespace) <= 63 and DNS_LABEL.fullmatch(namespace)):
        refusals.append("metadata.namespace: not a DNS-1123 label")
    return refusals


def _examples() -> list[dict[str, Any]]:
    text = (REPO / "docs/delivery.md").read_text()
    docs: list[dict[str, Any]] = []
    for block in re.findall(r"```yaml\n(.*?)```", text, re.S):
        docs += [d for d in yaml.safe_load_all(block) if d and "metadata" in d]
    return docs


def example_of_kind(kind: str) -> dict[str, Any]:
    """The one example of docs/delivery.md of that kind (tests/signing's GitOps loop
    syncs the Argo CD Application's revision and path)."""
    (found,) = [d for d in _examples() if d["kind"] == kind]
    return found


def test_every_example_is_accepted_by_its_crd() -> None:
    kinds = set()
    for doc in _examples():
        kinds.add(doc["kind"])
        if (doc["apiVersion"], doc["kind"]) == ("v1", "Secret"):
            assert kubernetes_validate.validate(doc, KUBERNETES, strict=True) == "1.37"
            continue
        assert api_server_refusals(doc) == [], doc["kind"]
        version = _served_version(doc)
        assert version is not None
        # a deprecated version is served with a warning ("v1beta2 OCIRepository is
        # deprecated, upgrade to v1"): the examples use the current one
        assert not version.get("deprecated"), version.get("deprecationWarning")
    assert kinds == {"Secret", *(crd["spec"]["names"]["kind"] for crd in _crds())}


def test_the_docs_name_the_crd_versions_checked() -> None:
    pins = (CRDS / ".versions").read_text().split("\n")
    modules = [line.split()[0] for line in pins if line]
    assert len(modules) == len(CRD_FILES)
    text = " ".join((REPO / "docs/delivery.md").read_text().split())
    for module in modules:
        assert f"`{module}`" in text


def _changed(kind: str, path: tuple[str, ...], value: object) -> dict[str, Any]:
    doc = copy.deepcopy(example_of_kind(kind))
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return doc


@pytest.mark.parametrize(("kind", "path", "value", "refusal"), [
    # each: what `kubectl apply` would be told by the API server
    pytest.param("OCIRepository", ("spec", "verify", "provider"), "sigstore",
                 "spec.verify.provider: enum", id="Unsupported value: sigstore"),
    pytest.param("OCIRepository", ("spec", "url"), "ghcr.io/acme/magcfg",
                 "spec.url: pattern", id="url should match '^oci://.*$'"),
    pytest.param("OCIRepository", ("spec", "layerSelector", "mediatype"), "x",
                 "spec.layerSelector: additionalProperties",
                 id="unknown field spec.layerSelector.mediatype"),
    pytest.param("OCIRepository", ("apiVersion",), "source.toolkit.fluxcd.io/v1beta3",
                 "apiVersion, kind: no matches for kind 'OCIRepository' in version "
                 "'source.toolkit.fluxcd.io/v1beta3'", id="no matches for version v1beta3"),
    pytest.param("Kustomization", ("spec", "sourceRef", "kind"), "OCIRepo",
                 "spec.sourceRef.kind: enum", id="Unsupported value: OCIRepo"),
    pytest.param("Kustomization", ("spec", "prune"), "yes",
                 "spec.prune: type", id="prune must be of type boolean"),
    pytest.param("Kustomization", ("spec", "targetNamespce"), "maggate",
                 "spec: additionalProperties", id="unknown field spec.targetNamespce"),
    pytest.param("Kustomization", ("apiVersion",), "source.toolkit.fluxcd.io/v1",
                 "apiVersion, kind: no matches for kind 'Kustomization' in version "
                 "'source.toolkit.fluxcd.io/v1'", id="no Kustomization in the source group"),
    pytest.param("Application", ("spec", "source", "repoUrl"), "https://x",
                 "spec.source: additionalProperties", id="unknown field spec.source.repoUrl"),
    pytest.param("Application", ("spec", "syncPolicy", "automated", "prune"), "true",
                 "spec.syncPolicy.automated.prune: type", id="prune must be of type boolean"),
    pytest.param("Application", ("metadata", "name"), "Magcfg_Production",
                 "metadata.name: not a DNS-1123 subdomain", id="metadata.name invalid"),
    pytest.param("Application", ("metadata", "labelz"), {"a": "b"},
                 "metadata: additionalProperties", id="unknown field metadata.labelz"),
])
def test_the_api_server_refuses_mistakes(kind: str, path: tuple[str, ...], value: object,
                                         refusal: str) -> None:
    assert api_server_refusals(_changed(kind, path, value)) == [refusal]


def test_preserve_unknown_fields_accepts_anything() -> None:
    values = {"replicaCount": 2, "nested": {"any": ["thing", 1, None]}}
    doc = _changed("Application", ("spec", "source", "helm"), {"valuesObject": values})
    assert api_server_refusals(doc) == []
    doc["spec"]["source"]["helm"]["valuesObjekt"] = values  # helm itself is not preserving
    assert api_server_refusals(doc) == ["spec.source.helm: additionalProperties"]


def test_the_examples_agree_with_publish() -> None:
    source = example_of_kind("OCIRepository")
    assert source["spec"]["layerSelector"]["mediaType"] == flux.CONTENT_MEDIA_TYPE
    assert source["spec"]["verify"] == {"provider": "cosign",
                                        "secretRef": {"name": example_of_kind("Secret")["metadata"]["name"]}}
    kustomization = example_of_kind("Kustomization")
    assert kustomization["spec"]["sourceRef"] == {"kind": "OCIRepository",
                                                  "name": source["metadata"]["name"]}
    assert kustomization["spec"]["path"] == "./"  # the files are at the layer's root
    (pem,) = example_of_kind("Secret")["stringData"].values()
    assert isinstance(load_pem_public_key(pem.encode()), Ed25519PublicKey)
    application = example_of_kind("Application")
    assert application["spec"]["source"]["path"] == "generated/production"
    assert (REPO / "generated/production/kustomization.yaml").is_file()
