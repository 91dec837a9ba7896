"""Create the pull-secret copies a decision needs, inside the admission time budget.

Create-only: at admission we never update or delete (that is the sync controller's job, and
it never touches a Secret we do not own). ``AlreadyExists`` means someone — another replica,
the controller, or the namespace owner — got there first, which is fine.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Sequence
from typing import Any

from webhook.core.clusterview import ViewStore, target_from_object
from webhook.core.conventions import WARNING_PREFIX
from webhook.core.copies import CopiesEnsured, CopySpec, render_copy
from webhook.core.messages import MAX_WARNING_LENGTH, shorten
from webhook.k8s.rest import ApiError
from webhook.metrics import Metrics

__all__ = ["create_copies"]

log = logging.getLogger("webhook.k8s.copies")


def create_copies(
    core: Any,
    store: ViewStore,
    copies: Sequence[CopySpec],
    *,
    timeout: float,
    metrics: Metrics,
    uid: str = "",
) -> CopiesEnsured:
    """Create each missing copy; warn for each one that could not be ensured, and name those
    the API server refused outright (as opposed to running out of time)."""
    deadline = time.monotonic() + timeout
    warnings: list[str] = []
    refused: set[str] = set()
    for spec in copies:
        source = store.source_secret(spec.source_namespace, spec.source_name)
        if source is None or source.config is None:
            continue  # the core already warned and did not inject it
        remaining = deadline - time.monotonic()
        if remaining <= 0.05:
            warnings.append(_warning(spec, "out of time"))
            metrics.copies.labels("create", "timeout").inc()
            continue
        body = render_copy(spec, source)
        outcome = "created"
        try:
            core.create_namespaced_secret(
                spec.namespace, body, _request_timeout=remaining, _preload_content=False
            )
            store.put_target(target_from_object(body))
        except ApiError as exc:
            if exc.status == 409:
                outcome = "exists"
            elif exc.status in _REFUSALS:
                outcome = f"http_{exc.status}"
                refused.add(spec.name)
                warnings.append(_refused(spec, _api_message(exc)))
            else:
                outcome = f"http_{exc.status}"
                warnings.append(_warning(spec, f"API server said {exc.status} {exc.reason}"))
        except Exception as exc:
            outcome = "error"
            warnings.append(_warning(spec, type(exc).__name__))
        metrics.copies.labels("create", outcome).inc()
        log.info(
            "copy ensured" if outcome in ("created", "exists") else "copy not ensured",
            extra={
                "event": "copy.create",
                "uid": uid,
                "namespace": spec.namespace,
                "secret": spec.name,
                "source": spec.source,
                "outcome": outcome,
            },
        )
    return CopiesEnsured(tuple(warnings), frozenset(refused))


_REFUSALS = frozenset({400, 403, 404, 422})
"""Answers that will not change on a retry within the budget (forbidden by RBAC or an
admission policy, quota exceeded, namespace gone or terminating, invalid)."""


def _api_message(exc: ApiError) -> str:
    """The API server's own reason (it names the quota or admission policy that refused)."""
    try:
        message = str(json.loads(exc.body or "").get("message") or "")
    except (ValueError, AttributeError):
        message = ""
    # "secrets \"x\" is forbidden: " repeats what the warning says; the rest names the rule
    _, forbidden, rest = message.partition(" is forbidden: ")
    message = rest if forbidden else message
    message = _without_preamble(message)
    text = f"{exc.status}: {message}" if message else f"{exc.status} {exc.reason}"
    return shorten(text, 150)


_ADMISSION_POLICY = re.compile(
    r"^ValidatingAdmissionPolicy '(?P<policy>[^']*)' with binding '[^']*' denied request: "
)


def _without_preamble(message: str) -> str:
    """An admission policy's refusal without the API server's preamble, which would use up
    the warning's length before the part that says why (the chart's own refusals begin
    "pullsecret-injector rule <rule>:"; another policy's are prefixed with its name)."""
    match = _ADMISSION_POLICY.match(message)
    if match is None:
        return message
    rest = message[match.end() :]
    if rest.startswith("pullsecret-injector rule "):
        return rest
    return f"admission policy {match['policy']}: {rest}"


def _refused(spec: CopySpec, why: str) -> str:
    return shorten(
        f"{WARNING_PREFIX}the API server refused Secret {spec.name} in {spec.namespace} "
        f"({why}); not injected",
        MAX_WARNING_LENGTH,
    )


def _warning(spec: CopySpec, why: str) -> str:
    return (
        f"pullsecret-injector: could not create Secret {spec.name} in {spec.namespace} "
        f"({why}); the sync controller will retry, pulls may fail until then"
    )
