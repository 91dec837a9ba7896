"""A client-side bound on how fast one process asks the API server: client-go's token bucket.

A full resync of 50,000 namespaces is tens of thousands of requests; without a bound the
controller sends them as fast as the API server answers, and API Priority and Fairness then
throttles *everyone* in our flow schema, the webhook's admission-path writes included.
client-go solves this with ``flowcontrol.NewTokenBucketRateLimiter(qps, burst)`` in front of
every request (watches included); this is the same bucket: ``burst`` requests may go at once,
then one per ``1/qps`` seconds. Waiting is the caller's thread sleeping, so a bounded
controller is slower to converge, never wrong.

The clock and the sleep are parameters so the bucket is tested without waiting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from webhook.k8s.rest import RestClient

__all__ = ["TokenBucket", "rate_limit"]


class TokenBucket:
    """``burst`` tokens, refilled at ``qps`` per second; :meth:`take` blocks for one."""

    def __init__(
        self,
        qps: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if qps <= 0 or burst < 1:
            raise ValueError(f"qps must be > 0 and burst >= 1 (got qps={qps}, burst={burst})")
        self.qps = qps
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._updated = clock()

    def take(self) -> float:
        """Wait until a token is available and spend it; return the seconds waited.

        The token is reserved under the lock (the balance may go negative) and the wait
        happens outside it, so concurrent callers queue in order without holding the lock
        while sleeping, as client-go's reservation does.
        """
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.qps)
            self._updated = now
            self._tokens -= 1.0
            wait = -self._tokens / self.qps if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
        return wait


def rate_limit(
    api: RestClient, bucket: TokenBucket, on_request: Callable[[float], None] = lambda waited: None
) -> RestClient:
    """Make every request of ``api`` take a token first: every typed call and every watch
    goes through ``RestClient.request``. ``on_request`` hears of each request and how long it
    waited (client-go's ``rest_client_requests_total`` and
    ``rest_client_rate_limiter_duration_seconds``)."""
    api.before_request = lambda: on_request(bucket.take())
    return api
