"""Background reconciliation, decided purely: (policy, view) -> the writes that make it true.

The controller calls ``reconcile`` after every relevant change and on a timer; the writes it
returns are what a cluster operator would expect from a careful replicator:

* a namespace a rule reaches gets each copy before its first pod (``CreateCopy``);
* a copy whose source rotated is rewritten (``UpdateCopy``; recreated if the type changed);
* a copy we own that no rule wants any more is deleted (``DeleteCopy``, with the uid as
  precondition) — a Secret we do not own is never updated or deleted, only reported
  (``Conflict``), and neither is a policy source that carries our label (``ProtectedSource``);
* ServiceAccounts named by ``serviceAccounts.backfill`` rules get missing entries appended
  (``LinkServiceAccount``), keeping every entry already there.

The copies' content comes from ``copies.render_copy``, the same function the admission path
uses, so a pod-time copy and a controller copy are identical.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from webhook.core.clusterview import ViewStore
from webhook.core.conventions import HASH_ANNOTATION
from webhook.core.copies import CopySpec, applicable_rules, desired_copies, render_copy
from webhook.core.policy import Policy
from webhook.core.registry import glob_match

__all__ = [
    "Action",
    "Conflict",
    "CopySpec",
    "CreateCopy",
    "DeleteCopy",
    "LinkServiceAccount",
    "ProtectedSource",
    "ServiceAccountState",
    "UpdateCopy",
    "reconcile",
    "service_account_state",
]


@dataclass(frozen=True, slots=True)
class CreateCopy:
    spec: CopySpec


@dataclass(frozen=True, slots=True)
class UpdateCopy:
    spec: CopySpec
    uid: str
    recreate: bool = False
    """The source's type changed; Secret types are immutable, so delete and create."""


@dataclass(frozen=True, slots=True)
class DeleteCopy:
    namespace: str
    name: str
    uid: str


@dataclass(frozen=True, slots=True)
class Conflict:
    """A Secret with a managed name that we do not own: reported, never touched."""

    namespace: str
    name: str
    uid: str
    wanted_source: str


@dataclass(frozen=True, slots=True)
class ProtectedSource:
    """A policy source that looks like one of our copies (it carries our label, e.g. because
    it was made by cloning a copy) where no rule wants a copy: reported, never deleted."""

    namespace: str
    name: str
    uid: str


@dataclass(frozen=True, slots=True)
class LinkServiceAccount:
    namespace: str
    name: str
    add: tuple[str, ...]
    resource_version: str
    had_list: bool
    """Whether ``imagePullSecrets`` exists (append to it) or must be created."""


Action = CreateCopy | UpdateCopy | DeleteCopy | Conflict | ProtectedSource | LinkServiceAccount


@dataclass(frozen=True, slots=True)
class ServiceAccountState:
    namespace: str
    name: str
    pull_secrets: tuple[str, ...]
    has_list: bool
    resource_version: str


def service_account_state(obj: Mapping[str, Any]) -> ServiceAccountState:
    """What ``reconcile`` needs of a ServiceAccount object (odd entries read as absent)."""
    metadata = obj.get("metadata") or {}
    entries = obj.get("imagePullSecrets")
    names = tuple(
        str(e.get("name")) for e in entries or [] if isinstance(e, Mapping) and e.get("name")
    )
    return ServiceAccountState(
        namespace=str(metadata.get("namespace", "")),
        name=str(metadata.get("name", "")),
        pull_secrets=names,
        has_list=isinstance(entries, list),
        resource_version=str(metadata.get("resourceVersion", "")),
    )


def reconcile(
    policy: Policy,
    store: ViewStore,
    service_accounts: Iterable[ServiceAccountState] = (),
    managed_names: Iterable[str] = (),
    only_namespaces: Collection[str] | None = None,
) -> list[Action]:
    """Every write needed for the cluster to match ``policy``; empty when it already does.

    ``managed_names`` adds names from earlier policies whose leftover copies must go;
    ``only_namespaces`` limits the work to namespaces known to have changed.
    """
    actions: list[Action] = []
    namespaces = store.namespaces()
    if only_namespaces is not None:
        namespaces = {n: labels for n, labels in namespaces.items() if n in only_namespaces}
    desired: dict[str, Mapping[str, CopySpec]] = {
        namespace: desired_copies(policy, namespace, labels, store)
        for namespace, labels in namespaces.items()
    }
    for copies in desired.values():
        for spec in copies.values():
            action = _copy_action(spec, store)
            if action is not None:
                actions.append(action)
    names = set(policy.managed_names()) | set(managed_names)
    sources = policy.source_refs()
    for target in store.targets():
        if only_namespaces is not None and target.namespace not in only_namespaces:
            continue
        if not target.managed or target.name not in names:
            continue
        wanted = desired.get(target.namespace, {})
        if target.name not in wanted and target.namespace in namespaces:
            if (target.namespace, target.name) in sources:
                actions.append(ProtectedSource(target.namespace, target.name, target.uid))
            else:
                actions.append(DeleteCopy(target.namespace, target.name, target.uid))
    actions.extend(_link_actions(policy, store, namespaces, service_accounts))
    return actions


def _copy_action(spec: CopySpec, store: ViewStore) -> Action | None:
    if spec.is_source_itself:
        return None
    source = store.source_secret(spec.source_namespace, spec.source_name)
    if source is None or source.config is None or (spec.subset is not None and not spec.subset):
        return None  # nothing valid to copy; the admission path warns, keep what exists
    target = store.target_secret(spec.namespace, spec.name)
    if target is None:
        return CreateCopy(spec)
    if not target.managed:
        return Conflict(spec.namespace, spec.name, target.uid, spec.source)
    rendered = render_copy(spec, source)
    if target.content_hash != rendered["metadata"]["annotations"][HASH_ANNOTATION]:
        return UpdateCopy(spec, target.uid, recreate=target.secret_type != rendered["type"])
    return None


def _link_actions(
    policy: Policy,
    store: ViewStore,
    namespaces: Mapping[str, Mapping[str, str]],
    service_accounts: Iterable[ServiceAccountState],
) -> list[Action]:
    backfill_rules = [r for r in policy.rules if r.service_accounts.backfill]
    if not backfill_rules:
        return []
    actions: list[Action] = []
    copies_by_namespace: dict[str, Mapping[str, CopySpec]] = {}
    for account in service_accounts:
        labels = namespaces.get(account.namespace)  # None: namespace gone or not in scope
        if labels is None:
            continue
        applicable = {r.name for r in applicable_rules(policy, account.namespace, labels)}
        if account.namespace not in copies_by_namespace:
            copies_by_namespace[account.namespace] = desired_copies(
                policy, account.namespace, labels, store
            )
        copies = copies_by_namespace[account.namespace]
        wanted: list[str] = []
        for rule in backfill_rules:
            if rule.name not in applicable:
                continue
            if not any(glob_match(p, account.name) for p in rule.service_accounts.names):
                continue
            wanted.extend(
                ref.target_name
                for ref in rule.secrets
                if _providable(store, copies[ref.target_name])
            )
        missing = _missing(wanted, account.pull_secrets)
        if missing:
            actions.append(
                LinkServiceAccount(
                    account.namespace,
                    account.name,
                    missing,
                    account.resource_version,
                    account.has_list,
                )
            )
    return actions


def _providable(store: ViewStore, spec: CopySpec) -> bool:
    """Will this copy exist? (A usable source, and a subset that grants something.)"""
    source = store.source_secret(spec.source_namespace, spec.source_name)
    usable = source is not None and source.config is not None
    return usable and (spec.subset is None or bool(spec.subset))


def _missing(wanted: Sequence[str], present: Sequence[str]) -> tuple[str, ...]:
    return tuple(name for name in dict.fromkeys(wanted) if name not in present)
