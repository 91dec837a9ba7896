"""Ask the API server what we may do (SelfSubjectAccessReview), before relying on it.

Used where a choice depends on RBAC rather than on the policy: whether a source namespace
can be watched whole (a new source secret there then works at once) or only secret by
secret. Any failure to ask counts as "no": the narrower choice always works where the wider
one would, only less conveniently.
"""

from __future__ import annotations

import logging
from typing import Any

from kubernetes.client import AuthorizationV1Api

__all__ = ["can_list_secrets"]

log = logging.getLogger("webhook.k8s.access")


def can_list_secrets(api: Any, namespace: str) -> bool:
    """May this process list and watch every Secret in ``namespace``?"""
    authorization = AuthorizationV1Api(api)
    for verb in ("list", "watch"):
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {
                "resourceAttributes": {"verb": verb, "resource": "secrets", "namespace": namespace}
            },
        }
        try:
            answer = authorization.create_self_subject_access_review(review, _request_timeout=5)
        except Exception as exc:
            log.warning(
                "access review failed; watching source secrets one by one",
                extra={"event": "access.review_failed", "namespace": namespace, "error": str(exc)},
            )
            return False
        if not (answer.status and answer.status.allowed):
            return False
    return True
