"""Kubernetes Events: how an operator running ``kubectl describe`` learns what we decided.

Several workers and replicas observe the same problem (an invalid policy edit); the Event
name is derived from the object and the reason/message, so the first create wins and the
others get 409, which is ignored: one Event per problem, not one per process.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
from collections.abc import Mapping
from typing import Any

from webhook.k8s.rest import ApiError

__all__ = ["record_event"]

log = logging.getLogger("webhook.k8s.events")


def record_event(
    core: Any,
    involved: Mapping[str, Any],
    reason: str,
    message: str,
    *,
    event_type: str = "Warning",
    component: str = "pullsecret-injector",
    dedupe_key: str = "",
) -> None:
    """Create an Event about ``involved`` (an object dict with kind/apiVersion/metadata)."""
    metadata = involved.get("metadata") or {}
    namespace = str(metadata.get("namespace") or "default")
    name = str(metadata.get("name") or "unknown")
    digest = hashlib.sha256(
        f"{reason}|{message}|{dedupe_key or metadata.get('resourceVersion', '')}".encode()
    ).hexdigest()[:12]
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{name[:200]}.{digest}", "namespace": namespace},
        "involvedObject": {
            "apiVersion": involved.get("apiVersion", "v1"),
            "kind": involved.get("kind", ""),
            "name": name,
            "namespace": namespace,
            "uid": metadata.get("uid", ""),
            "resourceVersion": metadata.get("resourceVersion", ""),
        },
        "reason": reason,
        "message": message[:1024],
        "type": event_type,
        "source": {"component": component},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "reportingComponent": component,
    }
    try:
        core.create_namespaced_event(namespace, body, _request_timeout=5, _preload_content=False)
    except ApiError as exc:
        if exc.status != 409:
            log.warning(
                "could not record event",
                extra={"event": "event.failed", "reason": reason, "status": exc.status},
            )
    except Exception as exc:
        log.warning("could not record event", extra={"event": "event.failed", "error": str(exc)})
