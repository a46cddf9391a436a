"""The compile context and the pipeline's extension points.

Capabilities plug into the pipeline through the types defined here: a capability (the
secret rules, CUE, ConfigMap delivery) is a set of functions of these types, and the
compiler (``magcfg.compiler``) runs them at fixed points of the data flow. This module
sits below both, so a capability never imports the compiler that calls it.

Extension points, in the order the compiler runs them:

* layer loaders read layer files of a suffix other than YAML (``.cue``), all of a
  build at once, into the same ``ParsedFile`` a YAML file gives;
* fragment checks run on each top-level key merged afresh (not on one the build cache
  holds: it passed them when it was merged), with the files behind it;
* document checks run on each merged, schema-valid environment;
* artifact emitters return extra files for ``generated/<env>/``, listed in the manifest;
* schema entries name further schemas in the manifest (``schema.cue``);
* delivery emitters run after the manifest exists and may read it (the ConfigMap);
  their files are not listed in the manifest;
* build checks run once per build on every environment that compiled, so a check
  backed by an external process (``cue vet``) starts it once, not once per environment.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from ..errors import Diagnostic
from .cache import BuildCache
from .validate import locate_key

if TYPE_CHECKING:
    from ..project import Project
    from ..schema.index import PolicyIndex, Schema, SchemaIndex
    from ..secrets.redaction import Redactor
    from .load import ParsedFile
    from .merge import LayerStack

__all__ = ["ArtifactEmitter", "BuildCheck", "CompileContext", "DeliveryEmitter", "DocumentCheck",
           "Extensions", "FragmentCheck", "LayerLoader", "SchemaEntry", "Workspace"]


class Workspace(Protocol):
    """What a capability may use of the compiler that runs it."""

    project: Project
    source: Any
    cache: BuildCache

    def once(self, name: str, compute: Callable[[], Any]) -> Any:
        """``compute()``, run at most once per compiler (e.g. reading a schema file)."""
        ...

    def peers(self, compiled: Collection[str]) -> list[CompileContext]:
        """The project's environments other than ``compiled``, compiled for a check that
        spans environments (never written); one that does not compile is left out."""
        ...


LayerLoader = Callable[[Workspace, list[str]], dict[str, "ParsedFile"]]
SchemaEntry = Callable[[Workspace], tuple[str, dict[str, str]] | None]
FragmentCheck = Callable[["LayerStack", str, Any, "PolicyIndex"], list[Diagnostic]]
"""(stack, top-level key, its merged value, the schema's policies) -> diagnostics."""
DocumentCheck = Callable[["CompileContext"], list[Diagnostic]]
ArtifactEmitter = Callable[["CompileContext"], dict[str, bytes]]
DeliveryEmitter = Callable[["CompileContext", dict[str, bytes]], dict[str, bytes]]
BuildCheck = Callable[[Workspace, Sequence["CompileContext"]], list[Diagnostic]]


class Extensions(NamedTuple):
    """The capabilities a compiler runs, one tuple per extension point."""

    layer_loaders: Mapping[str, LayerLoader] = MappingProxyType({})
    fragment_checks: tuple[FragmentCheck, ...] = ()
    document_checks: tuple[DocumentCheck, ...] = ()
    artifact_emitters: tuple[ArtifactEmitter, ...] = ()
    schema_entries: tuple[SchemaEntry, ...] = ()
    delivery_emitters: tuple[DeliveryEmitter, ...] = ()
    build_checks: tuple[BuildCheck, ...] = ()


@dataclass
class CompileContext:
    """What an extension may read about the environment being compiled."""

    project: Project
    env: str
    stack: LayerStack
    schema: Schema | None
    config_json: bytes
    redactor: Redactor
    fragments: dict[str, tuple[str, bytes | memoryview]] = field(default_factory=dict)
    cache: BuildCache | None = None
    merged: dict[str, Any] = field(default_factory=dict)  # values merged in this build
    schema_summary: dict[str, Any] | None = None  # Compiler.schema_summary()
    policies: Callable[[], PolicyIndex | None] | None = None  # Compiler's
    _config: dict[str, Any] | None = None
    _config_sha256: str | None = None

    @property
    def config_sha256(self) -> str:
        """Hex sha256 of ``config_json`` (the manifest's, once it is made: hashing a
        large config twice costs tens of milliseconds)."""
        if self._config_sha256 is None:
            self._config_sha256 = hashlib.sha256(self.config_json).hexdigest()
        return self._config_sha256

    def secret_index(self) -> PolicyIndex | SchemaIndex | None:
        """What tells which key paths are secret: the policy tables the build cached
        with the schema's pieces, which answer as the schema's index does without
        parsing or indexing a piece (``Compiler.policies``); else that index."""
        found = self.policies() if self.policies is not None else None
        if found is None and self.schema is not None:
            return self.schema.index
        return found

    def top(self, key: str) -> Any:
        """One top-level value, parsed from its fragment alone (cheaper than ``config``)."""
        import orjson

        if self._config is not None:
            return self._config[key]
        if key in self.merged:
            return self.merged[key]
        return orjson.loads(b"{" + self.fragments[key][1] + b"}")[key]

    def tops(self, keys: Iterable[str]) -> dict[str, Any]:
        """The top-level values of those of ``keys`` the config has, as ``config`` holds
        them, parsed from their fragments alone (in one parse)."""
        import orjson

        present = [k for k in keys if k in self.fragments]
        if self._config is not None:
            return {k: self._config[k] for k in present}
        found: dict[str, Any] = orjson.loads(
            b"{" + b",".join(self.fragments[k][1] for k in present) + b"}")
        return found

    def memo(self, kind: str, key: str, compute: Callable[[], Any]) -> Any:
        """A per-fragment result cached with the fragment: ``compute`` runs only when the
        top-level ``key``'s inputs changed. Results must be marshal-able."""
        if self.cache is None or key not in self.fragments:
            return compute()
        name = f"{kind}:{self.fragments[key][0]}"
        found = self.cache.fragment(name)
        if found is None:
            found = compute()
            self.cache.put_fragment(name, found)
        return found

    def locate(self, keypath: tuple[str, ...], message: str, code: str) -> Diagnostic:
        """A finding about ``keypath``, at the layer line that set it."""
        return locate_key(self.stack, self.project.file, keypath, message, code)

    @property
    def config(self) -> dict[str, Any]:
        if self._config is None:
            import orjson

            self._config = orjson.loads(self.config_json)
        return self._config

