"""``POST /mutate``: decode, decide, ensure copies, encode — and never block a pod by accident.

Edge guards come first, in the order controller-runtime's ``ServeHTTP`` applies them: content
type, size (Flask's ``MAX_CONTENT_LENGTH`` answers 413), empty body, JSON, envelope. After
that every path answers 200 with ``allowed: true`` unless the *policy* says deny; an
unexpected exception in our code is logged with the request uid and answered with a warning,
because our bug must not stop a pod.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Blueprint, Response, current_app, request

from webhook.core.plan import Plan, Planner, drop_names
from webhook.core.review import (
    AdmissionRequest,
    BadReview,
    allow,
    decode_request,
    deny,
    encode,
    parse_body,
    read_uid,
)
from webhook.http.backend import AdmissionBackend
from webhook.metrics import Metrics

__all__ = [
    "blueprint",
    "mutate",
    "review",
]

log = logging.getLogger("webhook.admission")

blueprint = Blueprint("admission", __name__)

NO_POLICY_WARNING = "pullsecret-injector: no valid policy is loaded yet; nothing was injected"
INTERNAL_ERROR_WARNING = (
    "pullsecret-injector: internal error, admitted unchanged (see the webhook log for uid)"
)


@blueprint.post("/mutate")
def mutate() -> Response:
    backend: AdmissionBackend = current_app.extensions["pullsecret.backend"]
    metrics: Metrics = current_app.extensions["pullsecret.metrics"]
    content_type = (request.mimetype or "").lower()
    if content_type != "application/json":
        return _error(415, f"Content-Type must be application/json, got {content_type or 'none'!r}")
    body = request.get_data(cache=False)
    status, document = review(backend, metrics, body)
    return Response(encode(document), status=status, mimetype="application/json")


def _error(status: int, message: str) -> Response:
    return Response(encode({"error": message}), status=status, mimetype="application/json")


def review(backend: AdmissionBackend, metrics: Metrics, body: bytes) -> tuple[int, Any]:
    """The whole admission exchange minus Flask: (HTTP status, JSON document)."""
    started = time.perf_counter()
    if not body:
        return 400, {"error": "empty body: expected an AdmissionReview"}
    try:
        document = parse_body(body)
    except ValueError as exc:
        return 400, {"error": f"body is not valid JSON: {str(exc)[:200]}"}
    try:
        request_ = decode_request(document)
    except BadReview as exc:
        log.warning(
            "bad admission review",
            extra={"event": "admission.bad_request", "uid": read_uid(document), "error": str(exc)},
        )
        return 400, {"error": str(exc), "uid": read_uid(document)}
    uid = request_.uid
    kind, operation = request_.kind, request_.operation
    result = "error"
    try:
        planner = backend.planner()
        if planner is None:
            result = "no_policy"
            return 200, allow(uid, warnings=[NO_POLICY_WARNING])
        decided = _decide(backend, planner, request_)
        warnings = list(decided.warnings)
        if decided.deny:
            result = "denied"
            _count_warnings(metrics, kind, warnings)
            _log_decision(request_, decided, result, started)
            return 200, deny(uid, decided.deny, warnings)
        ops, refused = decided.ops, frozenset[str]()
        if decided.copies and not request_.dry_run:
            ensured = backend.ensure_copies(decided, uid)
            warnings.extend(ensured.warnings)
            refused = ensured.refused
            if refused:
                ops = drop_names(ops, refused)
                metrics.copies_refused.inc(len(ensured.refused))
        result = "patched" if ops else "unchanged"
        for injection in (i for i in decided.injections if i.secret not in refused):
            metrics.injections.labels(injection.rule, injection.registry, kind).inc()
        _count_warnings(metrics, kind, warnings)
        _log_decision(request_, decided, result, started)
        return 200, allow(uid, ops, warnings)
    except Exception:
        log.exception(
            "admission failed; admitting unchanged",
            extra={"event": "admission.internal_error", "uid": uid, "kind": kind},
        )
        return 200, allow(uid, warnings=[f"{INTERNAL_ERROR_WARNING} {uid}"])
    finally:
        metrics.admissions.labels(kind, operation, result).inc()
        metrics.admission_seconds.labels(kind, operation).observe(time.perf_counter() - started)


def _decide(backend: AdmissionBackend, planner: Planner, request_: AdmissionRequest) -> Plan:
    decided = planner.plan(request_)
    # A namespace created a moment ago may not have reached the watch yet: one lookup, so
    # that its labels (selectors, opt-out) are known and its copies can be created now.
    if not decided.namespace_known and backend.refresh_namespace(decided.namespace):
        decided = planner.plan(request_)
    return decided


def _count_warnings(metrics: Metrics, kind: str, warnings: list[str]) -> None:
    # Most reviews carry none; a zero increment would still write the multiprocess file.
    if warnings:
        metrics.warnings.labels(kind).inc(len(warnings))


def _log_decision(request_: AdmissionRequest, decided: Plan, result: str, started: float) -> None:
    log.info(
        decided.reason,
        extra={
            "event": "admission.decided",
            "uid": request_.uid,
            "namespace": decided.namespace or request_.namespace,
            "kind": request_.kind,
            "operation": request_.operation,
            "dry_run": request_.dry_run,
            "result": result,
            "injected": [f"{i.secret}<-{i.rule}" for i in decided.injections],
            "copies": [c.name for c in decided.copies],
            "warnings": len(decided.warnings),
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
        },
    )
