"""Health and metrics endpoints, served on a plain-HTTP port apart from the TLS webhook.

Probes must not depend on the serving certificate (readiness is what *reports* a missing
certificate), and Prometheus should not need the webhook's CA. Under gunicorn the master
process serves these (see ``gunicorn.conf.py``) and derives readiness from what every worker
reports through the multiprocess ``ready`` gauge; in tests the same routes hang off the app.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from flask import Flask, Response

from webhook.metrics import CONTENT_TYPE_LATEST

__all__ = ["Readiness", "register_ops_routes"]

Readiness = Callable[[], tuple[bool, str]]


def register_ops_routes(app: Flask, readiness: Readiness, exposition: Callable[[], bytes]) -> None:
    def healthz() -> Response:
        return Response(json.dumps({"status": "ok"}), mimetype="application/json")

    def readyz() -> Response:
        ready, why = readiness()
        body = {"status": "ready" if ready else "not ready", "reason": why}
        return Response(json.dumps(body), status=200 if ready else 503, mimetype="application/json")

    def metrics() -> Response:
        return Response(exposition(), mimetype=CONTENT_TYPE_LATEST)

    app.add_url_rule("/healthz", "healthz", healthz)
    app.add_url_rule("/livez", "livez", healthz)
    app.add_url_rule("/readyz", "readyz", readyz)
    app.add_url_rule("/metrics", "metrics", metrics)


def create_ops_app(readiness: Readiness, exposition: Callable[[], bytes]) -> Flask:
    app = Flask("pullsecret-injector-ops")
    register_ops_routes(app, readiness, exposition)
    return app
