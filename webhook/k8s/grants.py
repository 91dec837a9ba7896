"""Carry out ``webhook.core.grants`` actions: one RoleBinding created or deleted per call.

Deletes carry the binding's uid as a precondition, so a RoleBinding someone recreated under
our name is never removed; every outcome is counted and logged.
"""

from __future__ import annotations

import logging

from webhook.core.conventions import GRANT_ANNOTATION, MANAGED_BY_LABEL, MANAGED_BY_VALUE
from webhook.core.grants import IMAGE_PULLER_ROLE, BindImagePuller, GrantAction
from webhook.k8s.rest import ApiError, RbacAuthorizationV1
from webhook.metrics import Metrics

__all__ = ["apply_grant_action"]

log = logging.getLogger("webhook.k8s.grants")


def apply_grant_action(rbac: RbacAuthorizationV1, action: GrantAction, metrics: Metrics) -> str:
    """Create or delete one image-puller RoleBinding (one API call, guarded by uid)."""
    kind = type(action).__name__
    try:
        if isinstance(action, BindImagePuller):
            subject: dict[str, str] = {"kind": action.subject_kind, "name": action.subject_name}
            if action.subject_kind == "Group":
                subject["apiGroup"] = "rbac.authorization.k8s.io"
            else:
                subject["namespace"] = action.subject_namespace
            body = {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {
                    "name": action.name,
                    "namespace": action.namespace,
                    "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE},
                    "annotations": {GRANT_ANNOTATION: action.grant},
                },
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": IMAGE_PULLER_ROLE,
                },
                "subjects": [subject],
            }
            rbac.create_namespaced_role_binding(
                action.namespace, body, _request_timeout=10, _preload_content=False
            )
            outcome = "created"
        else:
            rbac.delete_namespaced_role_binding(
                action.name,
                action.namespace,
                body={"preconditions": {"uid": action.uid}},
                _request_timeout=10,
                _preload_content=False,
            )
            outcome = "deleted"
    except ApiError as exc:
        outcome = {404: "gone", 409: "exists_or_replaced"}.get(exc.status, f"http_{exc.status}")
    except Exception as exc:
        outcome = type(exc).__name__
    metrics.copies.labels(kind, outcome).inc()
    log.info(
        "image-puller grant",
        extra={
            "event": "sync.grant",
            "action": kind,
            "outcome": outcome,
            "namespace": action.namespace,
            "rolebinding": action.name,
        },
    )
    return outcome
