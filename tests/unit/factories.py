"""Small builders shared by the unit tests: Secrets, Pods, ServiceAccounts and a ClusterStore.

Every credential here is made up (user ``fake-user``, password ``fake-pass-<n>``); nothing
resembles a real token. Objects are plain dicts shaped like the API server's JSON, because
that is what the core receives.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from webhook.core.clusterview import (
    ClusterStore,
    TargetSecret,
    source_from_object,
    target_from_object,
)
from webhook.core.conventions import (
    HASH_ANNOTATION,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    SOURCE_ANNOTATION,
)

__all__ = [
    "ABSENT",
    "DOCKERCFG",
    "DOCKERCONFIGJSON",
    "auth_entry",
    "b64",
    "cluster",
    "decoded_auths",
    "dockercfg_secret",
    "pod",
    "pull_secret",
    "raw_secret",
    "service_account",
    "target_secret",
]

DOCKERCONFIGJSON = "kubernetes.io/dockerconfigjson"
DOCKERCFG = "kubernetes.io/dockercfg"


class _Absent:
    """Marker for "leave the field out" (``None`` means an explicit JSON null)."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()


def b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode()


def auth_entry(n: int = 1, user: str = "fake-user") -> dict[str, str]:
    """One ``auths`` entry with made-up credentials ``fake-user:fake-pass-<n>``."""
    return {"auth": b64(f"{user}:fake-pass-{n}")}


def _entries(keys: Sequence[str] | Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    if isinstance(keys, Mapping):
        return dict(keys)
    return {key: auth_entry(index + 1) for index, key in enumerate(keys)}


def raw_secret(
    name: str,
    namespace: str,
    *,
    secret_type: str | None,
    data: Mapping[str, str],
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A Secret object with exactly the given ``type`` and base64 ``data``."""
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "resourceVersion": "1"}
    if labels:
        metadata["labels"] = dict(labels)
    if annotations:
        metadata["annotations"] = dict(annotations)
    secret: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "data": dict(data),
    }
    if secret_type is not None:
        secret["type"] = secret_type
    return secret


def pull_secret(
    name: str,
    namespace: str,
    keys: Sequence[str] | Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    """A ``kubernetes.io/dockerconfigjson`` Secret whose ``auths`` has ``keys``.

    ``keys`` is either a list of ``auths`` keys (entry ``i`` gets ``fake-pass-<i+1>``) or a
    mapping of key to entry for full control.
    """
    payload = json.dumps({"auths": _entries(keys)})
    return raw_secret(
        name, namespace, secret_type=DOCKERCONFIGJSON, data={".dockerconfigjson": b64(payload)}
    )


def dockercfg_secret(
    name: str, namespace: str, keys: Sequence[str] | Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """A legacy ``kubernetes.io/dockercfg`` Secret (a bare map of entries)."""
    payload = json.dumps(_entries(keys))
    return raw_secret(name, namespace, secret_type=DOCKERCFG, data={".dockercfg": b64(payload)})


def decoded_auths(secret: Mapping[str, Any]) -> dict[str, Any]:
    """The ``auths`` map of a rendered dockerconfigjson/dockercfg Secret."""
    data = secret["data"]
    if ".dockerconfigjson" in data:
        document = json.loads(base64.b64decode(data[".dockerconfigjson"]))
        auths: dict[str, Any] = document["auths"]
        return auths
    legacy: dict[str, Any] = json.loads(base64.b64decode(data[".dockercfg"]))
    return legacy


def _containers(images: Iterable[str | None], prefix: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for index, image in enumerate(images):
        container: dict[str, Any] = {"name": f"{prefix}{index}"}
        if image is not None:
            container["image"] = image
        out.append(container)
    return out


def pod(
    images: Sequence[str | None] = (),
    *,
    init: Sequence[str | None] = (),
    ephemeral: Sequence[str | None] = (),
    pull_secrets: Any = ABSENT,
    name: str | None = "app",
    namespace: str | None = "team-a",
    generate_name: str | None = None,
) -> dict[str, Any]:
    """A Pod; ``pull_secrets`` is a list of names, ``None`` (JSON null) or ``ABSENT``."""
    metadata: dict[str, Any] = {}
    if name is not None:
        metadata["name"] = name
    if generate_name is not None:
        metadata["generateName"] = generate_name
    if namespace is not None:
        metadata["namespace"] = namespace
    spec: dict[str, Any] = {"containers": _containers(images, "c")}
    if init:
        spec["initContainers"] = _containers(init, "init")
    if ephemeral:
        spec["ephemeralContainers"] = _containers(ephemeral, "debug")
    if pull_secrets is not ABSENT:
        spec["imagePullSecrets"] = _pull_secret_list(pull_secrets)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def _pull_secret_list(names: Sequence[str] | None) -> list[dict[str, str]] | None:
    if names is None:
        return None
    return [{"name": n} for n in names]


def service_account(
    name: str = "default", namespace: str = "team-a", pull_secrets: Any = ABSENT
) -> dict[str, Any]:
    """A ServiceAccount; ``pull_secrets`` as for ``pod``."""
    account: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": namespace},
    }
    if pull_secrets is not ABSENT:
        account["imagePullSecrets"] = _pull_secret_list(pull_secrets)
    return account


def target_secret(
    name: str, namespace: str, *, managed: bool, source: str = "", content_hash: str = ""
) -> dict[str, Any]:
    """A Secret already sitting at a copy's name in a target namespace."""
    labels = {MANAGED_BY_LABEL: MANAGED_BY_VALUE} if managed else {"owner": "someone-else"}
    annotations = {}
    if source:
        annotations[SOURCE_ANNOTATION] = source
    if content_hash:
        annotations[HASH_ANNOTATION] = content_hash
    return raw_secret(
        name,
        namespace,
        secret_type=DOCKERCONFIGJSON,
        data={".dockerconfigjson": b64('{"auths":{}}')},
        labels=labels,
        annotations=annotations,
    )


def cluster(
    sources: Iterable[Mapping[str, Any]] = (),
    namespaces: Mapping[str, Mapping[str, str]] | None = None,
    targets: Iterable[Mapping[str, Any] | TargetSecret] = (),
) -> ClusterStore:
    """A ClusterStore filled by hand, as the watches would fill it.

    Each namespace gets the ``kubernetes.io/metadata.name`` label the API server always sets,
    unless the given labels already carry it.
    """
    store = ClusterStore()
    for name, labels in (namespaces or {}).items():
        store.put_namespace(name, {"kubernetes.io/metadata.name": name, **labels})
    for secret in sources:
        store.put_source(source_from_object(secret))
    for target in targets:
        store.put_target(target if isinstance(target, TargetSecret) else target_from_object(target))
    return store
