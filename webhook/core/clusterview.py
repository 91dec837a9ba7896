"""What the core may know about the cluster: a read-only view, and an in-memory store of it.

The admission path must never wait on the API server, so everything the decision needs
(source secrets and their ``auths`` keys, whether a copy already exists and who owns it,
namespace labels) lives in memory. Watches at the edge (``webhook.k8s``) feed
``ClusterStore``; the pure core reads it only through the ``ClusterView`` protocol, so unit
tests pass a store filled by hand and production passes the same class filled by watches.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from webhook.core.conventions import (
    HASH_ANNOTATION,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    SOURCE_ANNOTATION,
)
from webhook.core.dockerconfig import DockerConfig, InvalidPullSecret, parse_secret

__all__ = [
    "ClusterStore",
    "ClusterView",
    "SourceSecret",
    "TargetSecret",
    "ViewStore",
    "source_from_object",
    "target_from_object",
]


@dataclass(frozen=True, slots=True)
class SourceSecret:
    """A Secret in a source namespace, decoded once when it is seen."""

    namespace: str
    name: str
    config: DockerConfig | None
    """Decoded credentials; ``None`` when the Secret is not a usable pull secret."""
    problem: str | None = None
    """Why it is not usable (never contains secret data)."""
    data: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    """The Secret's base64 ``data`` as stored, for copies that carry everything verbatim."""
    secret_type: str = ""
    resource_version: str = ""


@dataclass(frozen=True, slots=True)
class TargetSecret:
    """A Secret with a managed name in some namespace: only what ownership checks need."""

    namespace: str
    name: str
    managed: bool
    """Carries our managed-by label: we may update or delete it."""
    source: str = ""
    """``namespace/name`` it was copied from (our annotation)."""
    content_hash: str = ""
    """Our content-hash annotation: equal to the desired hash means up to date."""
    uid: str = ""
    """Deletes carry it as a precondition: never delete a Secret recreated by someone else."""
    secret_type: str = ""
    """Type is immutable: a copy whose source changed type must be recreated."""


class ClusterView(Protocol):
    """Read-only access used by the pure core."""

    def namespace_labels(self, namespace: str) -> Mapping[str, str] | None:
        """Labels of a namespace, or ``None`` when it has not been seen (yet)."""
        ...

    def source_secret(self, namespace: str, name: str) -> SourceSecret | None:
        """A source secret, or ``None`` when it does not exist."""
        ...

    def target_secret(self, namespace: str, name: str) -> TargetSecret | None:
        """What holds ``name`` in ``namespace``, or ``None`` when nothing does (as far as known)."""
        ...

    def target_secrets(
        self, namespace: str, names: Sequence[str]
    ) -> tuple[TargetSecret | None, ...]:
        """``target_secret`` for each of ``names``: one call per decision, not one per copy
        (every admitted pod checks all the copies it is given; a shared store answers them
        from one read transaction)."""
        ...

    def source_denied(self, namespace: str, name: str) -> str | None:
        """Why a source Secret cannot be read (a missing permission), or ``None``: tells
        "not found" apart from "not allowed to look"."""
        ...

    @property
    def sources_version(self) -> int:
        """Changes whenever any source secret changes (cache key for derived indexes)."""
        ...


class ViewStore(ClusterView, Protocol):
    """A view the watches write into: ``ClusterStore`` in one process, or the pod's shared
    store (``webhook.sharedview``) that every webhook worker reads."""

    def put_namespace(self, name: str, labels: Mapping[str, str]) -> None: ...

    def delete_namespace(self, name: str) -> None: ...

    def replace_namespaces(self, items: Mapping[str, Mapping[str, str]]) -> None: ...

    def put_source(self, secret: SourceSecret) -> None: ...

    def delete_source(self, namespace: str, name: str) -> None: ...

    def replace_named_source(
        self, namespace: str, name: str, items: Iterable[SourceSecret]
    ) -> None: ...

    def replace_namespace_sources(self, namespace: str, items: Iterable[SourceSecret]) -> None: ...

    def set_denied(self, denied: dict[tuple[str, str], str]) -> None: ...

    def put_target(self, secret: TargetSecret) -> None: ...

    def delete_target(self, namespace: str, name: str) -> None: ...

    def replace_targets(self, name: str, items: Iterable[TargetSecret]) -> None: ...

    def sizes(self) -> dict[str, int]: ...

    def namespaces(self) -> dict[str, Mapping[str, str]]: ...

    def targets(self) -> list[TargetSecret]: ...

    def sources(self) -> list[SourceSecret]: ...


def source_from_object(obj: Mapping[str, Any]) -> SourceSecret:
    """Decode an API Secret object into a ``SourceSecret``, recording why it is unusable."""
    metadata = obj.get("metadata") or {}
    data = _merged_data(obj)
    try:
        config: DockerConfig | None = parse_secret(obj)
        problem = None
    except InvalidPullSecret as exc:
        config, problem = None, str(exc)
    return SourceSecret(
        namespace=str(metadata.get("namespace", "")),
        name=str(metadata.get("name", "")),
        config=config,
        problem=problem,
        data=data,
        secret_type=str(obj.get("type") or "Opaque"),
        resource_version=str(metadata.get("resourceVersion", "")),
    )


def _merged_data(obj: Mapping[str, Any]) -> dict[str, str]:
    """``data`` with ``stringData`` folded in, as the API server stores it (manifests from
    files may use ``stringData``; copies are always written as base64 ``data``)."""
    data = obj.get("data")
    merged = {str(k): str(v) for k, v in data.items()} if isinstance(data, Mapping) else {}
    string_data = obj.get("stringData")
    if isinstance(string_data, Mapping):
        for key, value in string_data.items():
            merged[str(key)] = base64.b64encode(str(value).encode()).decode()
    return merged


def target_from_object(obj: Mapping[str, Any]) -> TargetSecret:
    metadata = obj.get("metadata") or {}
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    return TargetSecret(
        namespace=str(metadata.get("namespace", "")),
        name=str(metadata.get("name", "")),
        managed=labels.get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE,
        source=str(annotations.get(SOURCE_ANNOTATION, "")),
        content_hash=str(annotations.get(HASH_ANNOTATION, "")),
        uid=str(metadata.get("uid", "")),
        secret_type=str(obj.get("type") or "Opaque"),
    )


class ClusterStore:
    """Thread-safe in-memory ``ClusterView``; watch threads write, request threads read.

    Reads take no lock: each mapping is replaced or mutated by single dict operations, which
    are atomic under the GIL, and readers tolerate seeing an update a moment late.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._namespaces: dict[str, Mapping[str, str]] = {}
        self._sources: dict[tuple[str, str], SourceSecret] = {}
        self._targets: dict[tuple[str, str], TargetSecret] = {}
        self._denied: dict[tuple[str, str], str] = {}
        self._sources_version = 0

    # -- ClusterView -----------------------------------------------------------------------

    def namespace_labels(self, namespace: str) -> Mapping[str, str] | None:
        return self._namespaces.get(namespace)

    def source_secret(self, namespace: str, name: str) -> SourceSecret | None:
        return self._sources.get((namespace, name))

    def target_secret(self, namespace: str, name: str) -> TargetSecret | None:
        return self._targets.get((namespace, name))

    def target_secrets(
        self, namespace: str, names: Sequence[str]
    ) -> tuple[TargetSecret | None, ...]:
        targets = self._targets
        return tuple([targets.get((namespace, name)) for name in names])

    def source_denied(self, namespace: str, name: str) -> str | None:
        return self._denied.get((namespace, name)) or self._denied.get((namespace, ""))

    @property
    def sources_version(self) -> int:
        return self._sources_version

    # -- writers ---------------------------------------------------------------------------

    def put_namespace(self, name: str, labels: Mapping[str, str]) -> None:
        self._namespaces[name] = dict(labels)

    def delete_namespace(self, name: str) -> None:
        self._namespaces.pop(name, None)

    def replace_namespaces(self, items: Mapping[str, Mapping[str, str]]) -> None:
        self._namespaces = {name: dict(labels) for name, labels in items.items()}

    def put_source(self, secret: SourceSecret) -> None:
        with self._lock:
            self._sources[(secret.namespace, secret.name)] = secret
            self._sources_version += 1

    def delete_source(self, namespace: str, name: str) -> None:
        with self._lock:
            if self._sources.pop((namespace, name), None) is not None:
                self._sources_version += 1

    def replace_named_source(
        self, namespace: str, name: str, items: Iterable[SourceSecret]
    ) -> None:
        """Swap in a relist of one source Secret (watched by name)."""
        with self._lock:
            kept = {k: v for k, v in self._sources.items() if k != (namespace, name)}
            kept.update({(s.namespace, s.name): s for s in items})
            self._sources = kept
            self._sources_version += 1

    def replace_namespace_sources(self, namespace: str, items: Iterable[SourceSecret]) -> None:
        """Swap in a relist of every Secret of a source namespace (watched whole)."""
        with self._lock:
            kept = {k: v for k, v in self._sources.items() if k[0] != namespace}
            kept.update({(s.namespace, s.name): s for s in items})
            self._sources = kept
            self._sources_version += 1

    def set_denied(self, denied: dict[tuple[str, str], str]) -> None:
        """Replace what cannot be read and why (``(namespace, "")``: the whole namespace)."""
        with self._lock:
            if denied != self._denied:
                self._denied = dict(denied)
                self._sources_version += 1  # decisions cached on the old answer are stale

    def put_target(self, secret: TargetSecret) -> None:
        self._targets[(secret.namespace, secret.name)] = secret

    def delete_target(self, namespace: str, name: str) -> None:
        self._targets.pop((namespace, name), None)

    def replace_targets(self, name: str, items: Iterable[TargetSecret]) -> None:
        """Swap in a full relist of every Secret called ``name``."""
        with self._lock:
            kept = {k: v for k, v in self._targets.items() if k[1] != name}
            kept.update({(t.namespace, t.name): t for t in items})
            self._targets = kept

    # -- introspection (metrics) -----------------------------------------------------------

    def sizes(self) -> dict[str, int]:
        return {
            "namespaces": len(self._namespaces),
            "source_secrets": len(self._sources),
            "target_secrets": len(self._targets),
        }

    def namespaces(self) -> dict[str, Mapping[str, str]]:
        return dict(self._namespaces)

    def targets(self) -> list[TargetSecret]:
        return list(self._targets.values())

    def sources(self) -> list[SourceSecret]:
        return list(self._sources.values())
