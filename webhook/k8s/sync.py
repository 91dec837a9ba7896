"""Carry out ``webhook.core.sync`` actions against the API server, each as one guarded write.

Every write is a single API call whose precondition protects data we do not own:

* updates are JSON patches whose first operation *tests* our managed-by label, so a Secret
  someone replaced between our watch and our write is left alone (422, skipped);
* deletes carry the copy's uid as a precondition (409 if it was recreated by someone else);
* ServiceAccount links test the resourceVersion and only *add* entries (409/422: retried
  on the next reconcile with fresh data).

Conflicts (409), throttling (429) and server errors are retried a few times with backoff;
anything still failing is left for the next reconcile — never half-written, because each
write is atomic.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from webhook.core.clusterview import ViewStore, target_from_object
from webhook.core.conventions import MANAGED_BY_LABEL, MANAGED_BY_VALUE
from webhook.core.copies import render_copy
from webhook.core.sync import (
    Action,
    Conflict,
    CreateCopy,
    DeleteCopy,
    LinkServiceAccount,
    ProtectedSource,
    UpdateCopy,
)
from webhook.k8s.events import record_event
from webhook.k8s.rest import ApiError
from webhook.metrics import Metrics

__all__ = ["apply_action"]

log = logging.getLogger("webhook.k8s.sync")

_RETRYABLE = {409, 429, 500, 502, 503, 504}
_JSON_PATCH = "application/json-patch+json"
_LABEL_PATH = "/metadata/labels/" + MANAGED_BY_LABEL.replace("~", "~0").replace("/", "~1")


def apply_action(core: Any, store: ViewStore, action: Action, metrics: Metrics) -> str:
    """Perform ``action``; return its outcome label (also counted in metrics)."""
    kind = type(action).__name__
    outcome = "error"
    for attempt in range(3):
        try:
            outcome = _apply(core, store, action, metrics)
            break
        except ApiError as exc:
            outcome = f"http_{exc.status}"
            if exc.status not in _RETRYABLE or isinstance(action, Conflict | ProtectedSource):
                break
            time.sleep(0.2 * 2**attempt)
        except Exception as exc:
            outcome = type(exc).__name__
            time.sleep(0.2 * 2**attempt)
    metrics.copies.labels(kind, outcome).inc()
    log.info(
        "sync write",
        extra={"event": "sync.write", "action": kind, "outcome": outcome, **_describe(action)},
    )
    return outcome


def _apply(core: Any, store: ViewStore, action: Action, metrics: Metrics) -> str:
    if isinstance(action, CreateCopy):
        return _create(core, store, action)
    if isinstance(action, UpdateCopy):
        return _update(core, store, action)
    if isinstance(action, DeleteCopy):
        return _delete(core, store, action.namespace, action.name, action.uid)
    if isinstance(action, LinkServiceAccount):
        return _link(core, action)
    if isinstance(action, ProtectedSource):
        metrics.protected_sources.inc()
        _report_protected_source(core, action)
        return "reported"
    metrics.conflicts.inc()
    _report_conflict(core, action)
    return "reported"


def _create(core: Any, store: ViewStore, action: CreateCopy) -> str:
    source = store.source_secret(action.spec.source_namespace, action.spec.source_name)
    if source is None or source.config is None:
        return "source_gone"
    body = render_copy(action.spec, source)
    try:
        response = core.create_namespaced_secret(
            action.spec.namespace, body, _request_timeout=10, _preload_content=False
        )
    except ApiError as exc:
        if exc.status == 409:
            return "exists"
        if exc.status in (403, 404) and _namespace_terminating(exc):
            return "namespace_terminating"
        raise
    store.put_target(target_from_object(json.loads(response.data)))
    return "created"


def _update(core: Any, store: ViewStore, action: UpdateCopy) -> str:
    spec = action.spec
    source = store.source_secret(spec.source_namespace, spec.source_name)
    if source is None or source.config is None:
        return "source_gone"
    body = render_copy(spec, source)
    if action.recreate:
        outcome = _delete(core, store, spec.namespace, spec.name, action.uid)
        if outcome != "deleted":
            return outcome
        return "recreated" if _create(core, store, CreateCopy(spec)) == "created" else "deleted"
    annotations = body["metadata"]["annotations"]
    patch = [
        {"op": "test", "path": _LABEL_PATH, "value": MANAGED_BY_VALUE},
        {"op": "replace", "path": "/data", "value": body["data"]},
        *(
            {"op": "add", "path": "/metadata/annotations/" + _escape(key), "value": value}
            for key, value in annotations.items()
        ),
    ]
    try:
        response = core.patch_namespaced_secret(
            spec.name,
            spec.namespace,
            patch,
            _content_type=_JSON_PATCH,
            _request_timeout=10,
            _preload_content=False,
        )
    except ApiError as exc:
        if exc.status == 422:
            return "not_ours"  # the label test failed: someone else owns it now
        if exc.status == 404:
            return "gone"
        raise
    store.put_target(target_from_object(json.loads(response.data)))
    return "updated"


def _delete(core: Any, store: ViewStore, namespace: str, name: str, uid: str) -> str:
    try:
        core.delete_namespaced_secret(
            name,
            namespace,
            body={"preconditions": {"uid": uid}} if uid else {},
            _request_timeout=10,
            _preload_content=False,
        )
    except ApiError as exc:
        if exc.status == 404:
            store.delete_target(namespace, name)
            return "gone"
        if exc.status == 409:
            return "replaced"  # uid precondition failed: not the copy we knew
        raise
    store.delete_target(namespace, name)
    return "deleted"


def _link(core: Any, action: LinkServiceAccount) -> str:
    patch: list[dict[str, Any]] = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": action.resource_version}
    ]
    if action.had_list:
        patch += [
            {"op": "add", "path": "/imagePullSecrets/-", "value": {"name": n}} for n in action.add
        ]
    else:
        patch.append(
            {"op": "add", "path": "/imagePullSecrets", "value": [{"name": n} for n in action.add]}
        )
    try:
        core.patch_namespaced_service_account(
            action.name,
            action.namespace,
            patch,
            _content_type=_JSON_PATCH,
            _request_timeout=10,
            _preload_content=False,
        )
    except ApiError as exc:
        if exc.status in (404, 422):
            return "stale"  # changed or gone since we looked; the next reconcile sees it
        raise
    return "linked"


def _report_conflict(core: Any, action: Conflict) -> None:
    log.warning(
        "a Secret with a managed name is not ours; left untouched",
        extra={
            "event": "sync.conflict",
            "namespace": action.namespace,
            "secret": action.name,
            "wanted_source": action.wanted_source,
        },
    )
    record_event(
        core,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"namespace": action.namespace, "name": action.name, "uid": action.uid},
        },
        "NotManagedByPullSecretInjector",
        f"Secret {action.name} exists but is not managed by pullsecret-injector, so it was not "
        f"replaced with a copy of {action.wanted_source}. Pods are given it by name. Delete it "
        "(or rename it) to let pullsecret-injector manage it.",
        dedupe_key=action.uid,
    )


def _report_protected_source(core: Any, action: ProtectedSource) -> None:
    log.warning(
        "a policy source carries our managed-by label; it is a source, not a copy: left alone",
        extra={
            "event": "sync.protected_source",
            "namespace": action.namespace,
            "secret": action.name,
        },
    )
    record_event(
        core,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"namespace": action.namespace, "name": action.name, "uid": action.uid},
        },
        "PolicySourceNotDeleted",
        f"Secret {action.name} carries {MANAGED_BY_LABEL}={MANAGED_BY_VALUE} like a copy, but "
        "the policy names it as a source: pullsecret-injector never updates or deletes a "
        "source. Remove the label to silence this (it was probably cloned from a copy).",
        dedupe_key=action.uid,
    )


def _namespace_terminating(exc: ApiError) -> bool:
    return "being terminated" in str(exc.body or "") or "not found" in str(exc.body or "")


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _describe(action: Action) -> dict[str, str]:
    if isinstance(action, CreateCopy | UpdateCopy):
        return {
            "namespace": action.spec.namespace,
            "secret": action.spec.name,
            "source": action.spec.source,
        }
    if isinstance(action, DeleteCopy | Conflict | ProtectedSource):
        return {"namespace": action.namespace, "secret": action.name}
    return {
        "namespace": action.namespace,
        "serviceaccount": action.name,
        "add": ",".join(action.add),
    }
