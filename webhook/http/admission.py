"""``POST /mutate``: decode, decide, ensure copies, encode — and never block a pod by accident.

Edge guards come first, in the order controller-runtime's ``ServeHTTP`` applies them: method,
content type, size (413), empty body, JSON, envelope. After that every path answers 200 with
``allowed: true`` unless the *policy* says deny; an unexpected exception in our code is
logged with the request uid and answered with a warning, because our bug must not stop a pod.

``MutateEndpoint`` is plain WSGI in front of the Flask app: every pod creation in the cluster
waits on this one route, and Flask's request context, routing and response objects were a
fifth of a worker's CPU at saturation (BENCHMARKS.md §2) for a route that needs none of them.
Everything else (probes on the app, 404s) stays Flask's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

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
    "MutateEndpoint",
    "review",
]

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger("webhook.admission")

NO_POLICY_WARNING = "pullsecret-injector: no valid policy is loaded yet; nothing was injected"
INTERNAL_ERROR_WARNING = (
    "pullsecret-injector: internal error, admitted unchanged (see the webhook log for uid)"
)


MUTATE_PATH = "/mutate"


class MutateEndpoint:
    """WSGI middleware: answers ``/mutate`` itself, hands every other path to ``app``."""

    def __init__(
        self, app: WSGIApplication, backend: AdmissionBackend, metrics: Metrics, max_body_bytes: int
    ) -> None:
        self._app = app
        self._backend = backend
        self._metrics = metrics
        self._max_body_bytes = max_body_bytes

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != MUTATE_PATH:
            return self._app(environ, start_response)
        status, document = self._answer(environ)
        payload = encode(document)
        start_response(
            f"{status} {HTTPStatus(status).phrase}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))],
        )
        return [payload]

    def _answer(self, environ: WSGIEnvironment) -> tuple[int, Any]:
        if environ.get("REQUEST_METHOD") != "POST":
            return 405, {"error": "method not allowed: POST an AdmissionReview"}
        content_type = str(environ.get("CONTENT_TYPE", "")).split(";", 1)[0].strip().lower()
        if content_type != "application/json":
            shown = content_type or "none"
            return 415, {"error": f"Content-Type must be application/json, got {shown!r}"}
        body = self._body(environ)
        if body is None:
            return 413, {"error": f"body larger than {self._max_body_bytes} bytes"}
        return review(self._backend, self._metrics, body)

    def _body(self, environ: WSGIEnvironment) -> bytes | None:
        """The request body, or None when it is over the limit (never read past it)."""
        stream = environ["wsgi.input"]
        try:
            length = int(environ.get("CONTENT_LENGTH") or -1)
        except ValueError:
            length = -1
        if length > self._max_body_bytes:
            return None
        if length >= 0:
            return bytes(stream.read(length))
        if not environ.get("wsgi.input_terminated"):
            return b""  # no length and no end marker: nothing can be read safely
        body = bytes(stream.read(self._max_body_bytes + 1))  # chunked: the server ends it
        return None if len(body) > self._max_body_bytes else body


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
