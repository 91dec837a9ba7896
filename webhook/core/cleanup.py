"""What ``pullsecret-injector cleanup`` removes after ``helm uninstall``, decided purely.

Uninstalling the chart removes the webhook configuration and the workloads, but not what they
made: copies in every namespace, entries in ServiceAccounts, image-puller RoleBindings, the
controller's Lease and its certificate Secrets. Running pods still need the copies (a pull
secret is read at every image pull), so they stay until an operator says otherwise; then this
decides what goes, from what we marked as ours:

* a Secret carrying our managed-by label is ours, unless a copy names it as its source (a
  source made by cloning a copy carries our label too, and is never ours to delete);
* a ServiceAccount entry is ours to remove only when it names a Secret being deleted in its
  namespace (it would dangle otherwise); every other entry stays, in order;
* a RoleBinding (an image-puller grant) or a ConfigMap (the status document) carrying our
  label is ours;
* a Lease carrying the ledger annotation is the controller's.

Nothing is deleted without the uid it was seen with, so a Secret recreated meanwhile by
someone else is left alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from webhook.core.conventions import (
    LEDGER_ANNOTATION,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    SOURCE_ANNOTATION,
)

__all__ = ["Cleanup", "Delete", "Unlink", "plan_cleanup"]


@dataclass(frozen=True, slots=True)
class Delete:
    """Delete one object we own (``uid`` as the precondition)."""

    kind: str
    """``Secret``, ``ConfigMap``, ``RoleBinding`` or ``Lease``."""
    namespace: str
    name: str
    uid: str

    def __str__(self) -> str:
        return f"{self.kind.lower()}/{self.name} in {self.namespace}: delete"


@dataclass(frozen=True, slots=True)
class Unlink:
    """Remove entries naming deleted copies from a ServiceAccount's ``imagePullSecrets``."""

    namespace: str
    name: str
    remove: tuple[str, ...]
    indices: tuple[int, ...]
    """Positions of the removed entries, highest first (each removed by its own JSON-patch
    ``remove``, so every other entry stays exactly as it was)."""
    resource_version: str

    def __str__(self) -> str:
        return f"serviceaccount/{self.name} in {self.namespace}: remove {', '.join(self.remove)}"


@dataclass(frozen=True, slots=True)
class Cleanup:
    actions: tuple[Delete | Unlink, ...]
    kept: tuple[str, ...] = ()
    """Objects that look like ours but stay, with the reason (shown to the operator)."""


def plan_cleanup(
    secrets: Iterable[Mapping[str, Any]],
    service_accounts: Iterable[Mapping[str, Any]],
    role_bindings: Iterable[Mapping[str, Any]],
    leases: Iterable[Mapping[str, Any]],
    configmaps: Iterable[Mapping[str, Any]] = (),
) -> Cleanup:
    """Everything to remove, from what the cluster holds (any superset will do: only what
    carries our marks is chosen)."""
    ours = [s for s in secrets if _labels(s).get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE]
    sources = {_annotations(s).get(SOURCE_ANNOTATION, "") for s in ours} - {""}
    deleted: dict[str, set[str]] = {}
    actions: list[Delete | Unlink] = []
    kept: list[str] = []
    for secret in sorted(ours, key=_key):
        namespace, name = _key(secret)
        if f"{namespace}/{name}" in sources:
            kept.append(f"secret/{name} in {namespace}: kept, it is the source of other copies")
            continue
        deleted.setdefault(namespace, set()).add(name)
        actions.append(Delete("Secret", namespace, name, _uid(secret)))
    for account in sorted(service_accounts, key=_key):
        namespace, name = _key(account)
        entries = _entries(account)
        gone = deleted.get(namespace, set())
        indices = tuple(i for i, n in reversed(list(enumerate(entries))) if n in gone)
        if indices:
            remove = tuple(dict.fromkeys(str(entries[i]) for i in reversed(indices)))
            version = str(_metadata(account).get("resourceVersion", ""))
            actions.append(Unlink(namespace, name, remove, indices, version))
    for kind, objects in (("RoleBinding", role_bindings), ("ConfigMap", configmaps)):
        for obj in sorted(objects, key=_key):
            if _labels(obj).get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE:
                actions.append(Delete(kind, *_key(obj), _uid(obj)))
    for lease in sorted(leases, key=_key):
        if LEDGER_ANNOTATION in _annotations(lease):
            actions.append(Delete("Lease", *_key(lease), _uid(lease)))
    return Cleanup(tuple(actions), tuple(kept))


def _metadata(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = obj.get("metadata")
    return metadata if isinstance(metadata, Mapping) else {}


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return _metadata(obj).get("labels") or {}


def _annotations(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return _metadata(obj).get("annotations") or {}


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    metadata = _metadata(obj)
    return str(metadata.get("namespace", "")), str(metadata.get("name", ""))


def _uid(obj: Mapping[str, Any]) -> str:
    return str(_metadata(obj).get("uid", ""))


def _entries(account: Mapping[str, Any]) -> Sequence[str | None]:
    """Each entry's name (``None`` for an entry without one: kept, as everything else)."""
    entries = account.get("imagePullSecrets")
    if not isinstance(entries, list):
        return []
    return [
        str(entry["name"])
        if isinstance(entry, Mapping) and isinstance(entry.get("name"), str)
        else None
        for entry in entries
    ]
