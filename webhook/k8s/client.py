"""The one place that turns settings into an authenticated Kubernetes API client."""

from __future__ import annotations

from typing import Any

from kubernetes import client, config

from webhook.k8s.ratelimit import TokenBucket, rate_limit
from webhook.metrics import Metrics
from webhook.settings import Settings

__all__ = ["api_client", "controller_api_client", "core_api"]


def api_client(settings: Settings) -> Any:
    """Kubeconfig when ``settings.kubeconfig`` is set, else the pod's ServiceAccount."""
    if settings.kubeconfig:
        return config.new_client_from_config(config_file=settings.kubeconfig)
    configuration = client.Configuration()
    config.load_incluster_config(client_configuration=configuration)
    return client.ApiClient(configuration)


def controller_api_client(settings: Settings, metrics: Metrics) -> Any:
    """The controller's client: bounded to ``controller_qps``/``controller_burst``.

    Only the controller is bounded: its resyncs are bulk work that may take longer, while the
    webhook's requests sit on the admission path of one pod each and are already bounded by
    the pods being created.
    """
    bucket = TokenBucket(settings.controller_qps, settings.controller_burst)

    def count(waited: float) -> None:
        metrics.client_requests.inc()
        if waited:
            metrics.client_rate_limited_seconds.inc(waited)

    return rate_limit(api_client(settings), bucket, count)


def core_api(api: Any) -> Any:
    return client.CoreV1Api(api)
