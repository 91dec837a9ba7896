"""Ask the API server what an identity may do, before relying on it.

* ``can_list_secrets``: our own process (SelfSubjectAccessReview), where a choice depends on
  RBAC rather than on the policy: whether a source namespace can be watched whole (a new
  source secret there then works at once) or only secret by secret. Any failure to ask counts
  as "no": the narrower choice always works where the wider one would.
* ``check_release``: ``validate-policy --cluster`` asks, for a policy file an operator is about
  to apply, whether the running release's ServiceAccounts hold every permission it needs
  (SubjectAccessReview, as the operator), and whether the chart's admission policy would let
  the webhook write its copy names (a server-side dry-run create, impersonating the webhook:
  admission policies are invisible to access reviews).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from urllib3.exceptions import HTTPError

from webhook.core.conventions import MANAGED_BY_LABEL, MANAGED_BY_VALUE
from webhook.core.permissions import Identity, Missing, Need, needs
from webhook.core.policy import Policy
from webhook.k8s.client import self_subject_access_review
from webhook.k8s.rest import RestClient

__all__ = ["AccessReviewFailed", "can_list_secrets", "check_release"]

log = logging.getLogger("webhook.k8s.access")


def can_list_secrets(api: RestClient, namespace: str) -> bool:
    """May this process list and watch every Secret in ``namespace``?"""
    for verb in ("list", "watch"):
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {
                "resourceAttributes": {"verb": verb, "resource": "secrets", "namespace": namespace}
            },
        }
        try:
            answer = self_subject_access_review(api, review, timeout=5)
        except Exception as exc:
            log.warning(
                "access review failed; watching source secrets one by one",
                extra={"event": "access.review_failed", "namespace": namespace, "error": str(exc)},
            )
            return False
        if (answer.get("status") or {}).get("allowed") is not True:
            return False
    return True


class AccessReviewFailed(Exception):
    """The API server could not be asked (refused the review or the impersonation, or was
    unreachable): ``validate-policy --cluster`` exits 2, as ``status`` does."""


def check_release(api: Any, policy: Policy, identities: Sequence[Identity]) -> list[Missing]:
    """Every permission ``policy`` needs that the release's identities do not hold.

    Raises ``AccessReviewFailed`` when a question cannot be asked: an unanswered question
    must never read as "granted", nor as "missing". ``api`` is the official client (the CLI's).
    """
    from kubernetes.client import AuthorizationV1Api  # noqa: PLC0415 - not on the pod's path
    from kubernetes.client.exceptions import ApiException  # noqa: PLC0415

    authorization = AuthorizationV1Api(api)
    missing: list[Missing] = []
    try:
        for identity in identities:
            for need in needs(policy, identity.component):
                refused = tuple(
                    v for v in need.verbs if not _allowed(authorization, identity, need, v)
                )
                if refused:
                    missing.append(Missing(need, refused))
                elif identity.component == "webhook" and need.resource == "secrets" and need.name:
                    detail = _dry_run_copy(api, identity, need.name)
                    if detail:
                        missing.append(Missing(need, ("create",), detail))
    except ApiException as exc:
        raise AccessReviewFailed(f"cannot review access: {_message(exc)}") from None
    except (HTTPError, OSError) as exc:
        raise AccessReviewFailed(f"cannot reach the API server: {exc}") from None
    return missing


def _allowed(authorization: Any, identity: Identity, need: Need, verb: str) -> bool:
    attributes = {"verb": verb, "resource": need.resource, "group": need.group}
    if need.namespace:
        attributes["namespace"] = need.namespace
    if need.name:
        attributes["name"] = need.name
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": identity.user,
            "groups": [
                "system:serviceaccounts",
                f"system:serviceaccounts:{identity.namespace}",
                "system:authenticated",
            ],
            "resourceAttributes": attributes,
        },
    }
    answer = authorization.create_subject_access_review(review, _request_timeout=10)
    return bool(answer.status and answer.status.allowed)


def _dry_run_copy(api: Any, identity: Identity, name: str) -> str:
    """Why the API server would refuse the webhook a copy called ``name`` ("" if it would not):
    the chart's ValidatingAdmissionPolicy allows only the copy names the chart rendered."""
    from kubernetes import client  # noqa: PLC0415 - not on the pod's path
    from kubernetes.client.exceptions import ApiException  # noqa: PLC0415

    impersonating = client.ApiClient(api.configuration)
    impersonating.set_default_header("Impersonate-User", identity.user)
    # One header value only (the client keeps a dict); the admission policy matches the user.
    impersonating.set_default_header("Impersonate-Group", "system:serviceaccounts")
    copy = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"name": name, "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE}},
        "data": {".dockerconfigjson": "eyJhdXRocyI6e319"},  # {"auths":{}}
    }
    try:
        client.CoreV1Api(impersonating).create_namespaced_secret(
            identity.namespace, copy, dry_run="All", _request_timeout=10
        )
    except ApiException as exc:
        if exc.status == 409:
            return ""  # exists: the write itself was allowed
        message = _message(exc)
        if exc.status in (401, 403) and "cannot impersonate" in message:
            raise AccessReviewFailed(
                f"cannot ask as the {identity.component} whether the admission policy admits "
                f"its copy {name!r} (a dry-run create as the webhook needs impersonate on its "
                f"ServiceAccount and on the group system:serviceaccounts): {message}"
            ) from None
        return message
    finally:
        impersonating.close()
    return ""


def _message(exc: Any) -> str:
    """The API server's own words (its Status message), else the HTTP reason."""
    try:
        status = json.loads(exc.body or "")
        if isinstance(status, dict) and status.get("message"):
            return str(status["message"])
    except (ValueError, TypeError):
        pass
    return str(exc.reason or f"HTTP {exc.status}")
