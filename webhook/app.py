"""Application factory: ``gunicorn 'webhook.app:create_app()'``; tests call ``create_app(...)``.

Everything process-wide (the backend with its watches, metrics) is created here, per worker,
after gunicorn forks — threads and sockets do not survive a fork.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from flask import Flask, Response

from webhook import logs
from webhook.core.policy import load_policy
from webhook.http import admission
from webhook.http.backend import AdmissionBackend, StaticBackend
from webhook.metrics import Metrics, exposition
from webhook.ops import PATHS, Readiness, answer
from webhook.settings import Settings, SettingsError

__all__ = ["create_app"]


def create_app(
    settings: Settings | None = None,
    backend: AdmissionBackend | None = None,
    metrics: Metrics | None = None,
) -> Flask:
    settings = settings or Settings.from_env()
    logs.configure(settings.log_level)
    metrics = metrics or Metrics()
    if backend is None and not settings.cluster:
        backend = _offline_backend(settings)
    if backend is None:
        # Imported here so HTTP unit tests never load the Kubernetes client.
        from webhook.k8s.backend import SharedBackend  # noqa: PLC0415

        backend = SharedBackend.start(settings, metrics)
    app = Flask("pullsecret-injector")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.wsgi_app = admission.MutateEndpoint(  # type: ignore[method-assign]
        app.wsgi_app, backend, metrics, settings.max_body_bytes
    )
    _add_ops_routes(app, backend.readiness, lambda: exposition(metrics))
    return app


def _add_ops_routes(app: Flask, readiness: Readiness, metrics_text: Callable[[], bytes]) -> None:
    """The ops server's answers on the app too, so test clients see what probes see."""
    for path in PATHS:

        def view(path: str = path) -> Response:
            status, content_type, body = answer(path, readiness, metrics_text)
            return Response(body, status=status, content_type=content_type)

        app.add_url_rule(path, path.strip("/"), view)


def _offline_backend(settings: Settings) -> StaticBackend:
    """``PSI_CLUSTER=false``: serve a policy file with an empty cluster view (no API server;
    for trying policies and measuring the HTTP path). Nothing is copied."""
    if not settings.policy_file:
        raise SettingsError("PSI_CLUSTER=false needs PSI_POLICY_FILE")
    text = Path(settings.policy_file).read_text()
    return StaticBackend(load_policy(text, exclusions=settings.exclusions))
