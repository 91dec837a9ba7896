"""Carry out ``webhook.core.cleanup``: read what we own, remove it, say what was done.

Reads with the caller's kubeconfig (an operator's, after ``helm uninstall``): Secrets and
RoleBindings by our managed-by label, ServiceAccounts and Leases of every namespace. Every
write is guarded: deletes carry the uid they were decided on, and a ServiceAccount is patched
with a JSON patch that first tests its resourceVersion and the names it removes, so an account
changed meanwhile is left for the next run instead of losing an entry.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from webhook.core.cleanup import Cleanup, Delete, Unlink, plan_cleanup
from webhook.core.conventions import MANAGED_BY_LABEL, MANAGED_BY_VALUE

__all__ = ["CleanupError", "apply_cleanup", "read_cleanup"]

_TIMEOUT = 30
_OURS = f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"


class CleanupError(Exception):
    """The cluster could not be read or written; the message says what and why."""


def read_cleanup(api: Any) -> Cleanup:
    """Read what we own and decide what to remove (no write)."""
    core = client.CoreV1Api(api)
    secrets = _items("secrets", core.list_secret_for_all_namespaces, label_selector=_OURS)
    accounts = _items("serviceaccounts", core.list_service_account_for_all_namespaces)
    bindings = _items(
        "rolebindings",
        client.RbacAuthorizationV1Api(api).list_role_binding_for_all_namespaces,
        label_selector=_OURS,
    )
    leases = _items("leases", client.CoordinationV1Api(api).list_lease_for_all_namespaces)
    configmaps = _items("configmaps", core.list_config_map_for_all_namespaces, label_selector=_OURS)
    return plan_cleanup(secrets, accounts, bindings, leases, configmaps)


def apply_cleanup(api: Any, plan: Cleanup) -> list[str]:
    """Perform every action; return one line per action with its outcome."""
    core = client.CoreV1Api(api)
    deletes: dict[str, Callable[..., Any]] = {
        "Secret": core.delete_namespaced_secret,
        "ConfigMap": core.delete_namespaced_config_map,
        "RoleBinding": client.RbacAuthorizationV1Api(api).delete_namespaced_role_binding,
        "Lease": client.CoordinationV1Api(api).delete_namespaced_lease,
    }
    lines = []
    for action in plan.actions:
        try:
            if isinstance(action, Delete):
                deletes[action.kind](
                    action.name,
                    action.namespace,
                    body={"preconditions": {"uid": action.uid}},
                    _request_timeout=_TIMEOUT,
                )
                outcome = "deleted"
            else:
                core.patch_namespaced_service_account(
                    action.name,
                    action.namespace,
                    _unlink_patch(action),
                    _content_type="application/json-patch+json",
                    _request_timeout=_TIMEOUT,
                )
                outcome = "done"
        except ApiException as exc:
            outcome = {404: "already gone", 409: "changed meanwhile, left alone"}.get(
                exc.status, f"failed: HTTP {exc.status} {exc.reason}"
            )
            if exc.status == 422:
                outcome = "changed meanwhile, left alone"
        except (HTTPError, OSError) as exc:
            raise CleanupError(f"cannot reach the API server: {exc}") from None
        lines.append(f"{action}: {outcome}")
    return lines


def _unlink_patch(action: Unlink) -> list[dict[str, Any]]:
    patch: list[dict[str, Any]] = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": action.resource_version}
    ]
    for index in action.indices:  # highest first: earlier positions stay valid
        patch.append({"op": "remove", "path": f"/imagePullSecrets/{index}"})
    return patch


def _items(what: str, call: Callable[..., Any], **kwargs: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    token = None
    while True:
        try:
            response = call(
                limit=500,
                _continue=token,
                _preload_content=False,
                _request_timeout=_TIMEOUT,
                **kwargs,
            )
        except ApiException as exc:
            raise CleanupError(f"cannot list {what}: HTTP {exc.status} {exc.reason}") from None
        except (HTTPError, OSError) as exc:
            raise CleanupError(f"cannot reach the API server: {exc}") from None
        document = json.loads(response.data)
        items.extend(document.get("items") or [])
        token = (document.get("metadata") or {}).get("continue")
        if not token:
            return items
