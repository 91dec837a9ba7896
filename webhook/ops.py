"""Health and metrics endpoints on a plain-HTTP port, apart from the TLS webhook port.

Probes must not depend on the serving certificate (readiness is what *reports* a missing
certificate), and Prometheus should not need the webhook's CA. The gunicorn master (for the
webhook) and the controller each serve them from a small WSGI server in a thread; the webhook's
Flask app exposes the same answers so ``app.test_client()`` tests see what a probe sees.
Nothing here imports Flask or gunicorn: the controller needs neither.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from webhook.metrics import CONTENT_TYPE_LATEST, exposition

__all__ = ["PATHS", "OpsAnswer", "Readiness", "answer", "start_ops_server"]

Readiness = Callable[[], tuple[bool, str]]
"""``(ready, why not)``."""
OpsAnswer = tuple[int, str, bytes]
"""HTTP status, content type, body."""

PATHS = ("/healthz", "/livez", "/readyz", "/metrics")

_JSON = "application/json"
_STATUS_LINES = {200: "200 OK", 404: "404 Not Found", 503: "503 Service Unavailable"}


def answer(path: str, readiness: Readiness, metrics_text: Callable[[], bytes]) -> OpsAnswer:
    """The response for one ops path (404 for anything else)."""
    if path in ("/healthz", "/livez"):
        return 200, _JSON, json.dumps({"status": "ok"}).encode()
    if path == "/readyz":
        ready, why = readiness()
        body = {"status": "ready" if ready else "not ready", "reason": why}
        return (200 if ready else 503), _JSON, json.dumps(body).encode()
    if path == "/metrics":
        return 200, CONTENT_TYPE_LATEST, metrics_text()
    return 404, _JSON, json.dumps({"error": f"no such endpoint: {path}"}).encode()


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Probes every few seconds would drown the log."""


def start_ops_server(
    host: str,
    port: int,
    readiness: Readiness,
    metrics_text: Callable[[], bytes] = lambda: exposition(None),
) -> WSGIServer:
    """Serve the ops paths over plain HTTP from a daemon thread."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        status, content_type, body = answer(
            str(environ.get("PATH_INFO", "")), readiness, metrics_text
        )
        start_response(
            _STATUS_LINES.get(status, str(status)),
            [("Content-Type", content_type), ("Content-Length", str(len(body)))],
        )
        return [body]

    server = make_server(
        host, port, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, name="ops-server", daemon=True)
    thread.start()
    logging.getLogger("webhook.ops").info(
        "ops server listening", extra={"event": "ops.listening", "host": host, "port": port}
    )
    return server
