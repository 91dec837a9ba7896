"""The one place that turns settings into an authenticated Kubernetes API client.

Two clients, one shape. The webhook pod uses ``webhook.k8s.rest`` (no ``kubernetes`` import:
~56 MiB less per pod); the controller uses the official client for its many APIs, bounded by a
token bucket, with its error answers raised as ``rest.ApiError`` too, so the shell modules both
share (reflectors, copies, events, access reviews) catch one exception type. ``kubernetes`` is
imported only on the controller's path, inside the functions that need it.
"""

from __future__ import annotations

import functools
from typing import Any

import orjson

from webhook.k8s.ratelimit import TokenBucket, rate_limit
from webhook.k8s.rest import ApiError, CoreV1, RestClient, in_cluster_client, kubeconfig_client
from webhook.metrics import Metrics
from webhook.settings import Settings

__all__ = [
    "api_client",
    "controller_api_client",
    "core_api",
    "kubernetes_api_client",
    "self_subject_access_review",
]

_SELF_REVIEWS = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
_POOL_SIZE = 32


def api_client(settings: Settings) -> RestClient:
    """The webhook pod's client: kubeconfig when ``settings.kubeconfig`` is set, else the pod's
    ServiceAccount."""
    if settings.kubeconfig:
        return kubeconfig_client(settings.kubeconfig)
    return in_cluster_client()


def kubernetes_api_client(settings: Settings) -> Any:
    """The official client, from the same credentials, raising ``ApiError`` on error answers."""
    from kubernetes import client, config  # noqa: PLC0415 - not on the webhook pod's path
    from kubernetes.client.exceptions import ApiException  # noqa: PLC0415

    configuration = client.Configuration()
    if settings.kubeconfig:
        config.load_kube_config(config_file=settings.kubeconfig, client_configuration=configuration)
    else:
        config.load_incluster_config(client_configuration=configuration)
    # Idle connections kept (the client's default is 5 per CPU): its writers, reconcile loop and
    # the lists of its starting watches return more at once, and each one discarded is a new
    # TLS handshake on the next request: 33 in the scale bench's first seconds with 10, none
    # with 32.
    configuration.connection_pool_maxsize = _POOL_SIZE
    api = client.ApiClient(configuration)
    rest = api.rest_client
    plain = rest.request
    translated = _translated_exception()

    def request(*args: Any, **kwargs: Any) -> Any:
        try:
            return plain(*args, **kwargs)
        except ApiException as exc:
            raise translated.of(exc) from None

    rest.request = request
    return api


@functools.cache
def _translated_exception() -> Any:
    """``ApiException`` and ``ApiError`` at once: the controller's own modules catch the first,
    the modules it shares with the pod the second."""
    from kubernetes.client.exceptions import ApiException  # noqa: PLC0415

    class TranslatedApiError(ApiException, ApiError):  # type: ignore[misc]
        @classmethod
        def of(cls, exc: Any) -> Any:
            error = cls(status=exc.status, reason=exc.reason)
            error.body = exc.body
            error.headers = exc.headers
            return error

    return TranslatedApiError


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

    return rate_limit(kubernetes_api_client(settings), bucket, count)


def core_api(api: Any) -> Any:
    """Core/v1 calls on either client, with ``CoreV1Api``'s names and keyword arguments."""
    if isinstance(api, RestClient):
        return CoreV1(api)
    from kubernetes import client  # noqa: PLC0415 - the controller's path

    return client.CoreV1Api(api)


def self_subject_access_review(api: Any, review: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Post a SelfSubjectAccessReview; the answer as a dict (its ``status.allowed``)."""
    if isinstance(api, RestClient):
        response = api.request("POST", _SELF_REVIEWS, body=review, timeout=timeout)
    else:
        from kubernetes.client import AuthorizationV1Api  # noqa: PLC0415 - the controller's path

        response = AuthorizationV1Api(api).create_self_subject_access_review(
            review, _request_timeout=timeout, _preload_content=False
        )
    answer = orjson.loads(response.data)
    return answer if isinstance(answer, dict) else {}
