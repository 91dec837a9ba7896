"""The one place that turns settings into an authenticated Kubernetes API client.

The webhook pod and the controller both use ``webhook.k8s.rest`` (no ``kubernetes`` import:
~56 MiB and half a second of CPU less at every start); the controller's is bounded by a token
bucket and keeps more idle connections. The command line keeps the official client
(``webhook.k8s.secretcreate.connect``): an operator's kubeconfig may authenticate by an exec
plugin, which ``webhook.k8s.rest`` refuses.
"""

from __future__ import annotations

from typing import Any

import orjson

from webhook.k8s.ratelimit import TokenBucket, rate_limit
from webhook.k8s.rest import POOL_SIZE, RestClient, in_cluster_client, kubeconfig_client
from webhook.metrics import Metrics
from webhook.settings import Settings

__all__ = ["api_client", "controller_api_client", "self_subject_access_review"]

_SELF_REVIEWS = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
_CONTROLLER_POOL_SIZE = 32


def api_client(settings: Settings, pool_size: int = POOL_SIZE) -> RestClient:
    """Kubeconfig when ``settings.kubeconfig`` is set, else the pod's ServiceAccount."""
    if settings.kubeconfig:
        return kubeconfig_client(settings.kubeconfig, pool_size=pool_size)
    return in_cluster_client(pool_size=pool_size)


def controller_api_client(settings: Settings, metrics: Metrics) -> RestClient:
    """The controller's client: bounded to ``controller_qps``/``controller_burst``.

    Only the controller is bounded: its resyncs are bulk work that may take longer, while the
    webhook's requests sit on the admission path of one pod each and are already bounded by
    the pods being created. It keeps 32 idle connections (the pod's 16): its writers, reconcile
    loop and the lists of its starting watches return more at once, and each one discarded is
    a new TLS handshake on the next request (33 in the scale bench's first seconds with 10).
    """
    bucket = TokenBucket(settings.controller_qps, settings.controller_burst)

    def count(waited: float) -> None:
        metrics.client_requests.inc()
        if waited:
            metrics.client_rate_limited_seconds.inc(waited)

    return rate_limit(api_client(settings, _CONTROLLER_POOL_SIZE), bucket, count)


def self_subject_access_review(
    api: RestClient, review: dict[str, Any], timeout: float
) -> dict[str, Any]:
    """Post a SelfSubjectAccessReview; the answer as a dict (its ``status.allowed``)."""
    response = api.request("POST", _SELF_REVIEWS, body=review, timeout=timeout)
    answer = orjson.loads(response.data)
    return answer if isinstance(answer, dict) else {}
