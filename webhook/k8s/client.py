"""The one place that turns settings into an authenticated Kubernetes API client."""

from __future__ import annotations

from typing import Any

from kubernetes import client, config

from webhook.settings import Settings

__all__ = ["api_client", "core_api"]


def api_client(settings: Settings) -> Any:
    """Kubeconfig when ``settings.kubeconfig`` is set, else the pod's ServiceAccount."""
    if settings.kubeconfig:
        return config.new_client_from_config(config_file=settings.kubeconfig)
    configuration = client.Configuration()
    config.load_incluster_config(client_configuration=configuration)
    return client.ApiClient(configuration)


def core_api(api: Any) -> Any:
    return client.CoreV1Api(api)
