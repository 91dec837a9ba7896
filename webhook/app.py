"""Application factory: ``gunicorn 'webhook.app:create_app()'``; tests call ``create_app(...)``.

Everything process-wide (the backend with its watches, metrics) is created here, per worker,
after gunicorn forks — threads and sockets do not survive a fork.
"""

from __future__ import annotations

from flask import Flask

from webhook import logs
from webhook.http import admission
from webhook.http.backend import AdmissionBackend
from webhook.http.ops import register_ops_routes
from webhook.metrics import Metrics, exposition
from webhook.settings import Settings

__all__ = ["create_app"]


def create_app(
    settings: Settings | None = None,
    backend: AdmissionBackend | None = None,
    metrics: Metrics | None = None,
) -> Flask:
    settings = settings or Settings.from_env()
    logs.configure(settings.log_level)
    metrics = metrics or Metrics()
    if backend is None:
        # Imported here so HTTP unit tests never load the Kubernetes client.
        from webhook.k8s.live import LiveBackend  # noqa: PLC0415

        backend = LiveBackend.start(settings, metrics)
    app = Flask("pullsecret-injector")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.extensions["pullsecret.backend"] = backend
    app.extensions["pullsecret.metrics"] = metrics
    app.extensions["pullsecret.settings"] = settings
    app.register_blueprint(admission.blueprint)
    register_ops_routes(app, backend.readiness, lambda: exposition(metrics))
    return app
