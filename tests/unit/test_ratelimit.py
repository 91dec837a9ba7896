"""The controller's client-side request bound: client-go's token bucket, on a fake clock."""

from __future__ import annotations

import ssl
import threading
from types import SimpleNamespace
from typing import Any

import pytest

from webhook.k8s.client import controller_api_client
from webhook.k8s.ratelimit import TokenBucket, rate_limit
from webhook.k8s.rest import CoreV1, RestClient
from webhook.metrics import Metrics
from webhook.settings import Settings

SERVER = "https://127.0.0.1:1"


class FakeClock:
    """Time that moves only when the bucket sleeps (or the test advances it)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def bucket(qps: float, burst: int, clock: FakeClock) -> TokenBucket:
    return TokenBucket(qps, burst, clock=clock, sleep=clock.sleep)


def test_a_burst_goes_at_once_then_requests_are_spaced_by_one_over_qps() -> None:
    clock = FakeClock()
    limiter = bucket(qps=20, burst=30, clock=clock)
    waits = [limiter.take() for _ in range(40)]
    assert waits[:30] == [0.0] * 30
    assert waits[30:] == pytest.approx([0.05] * 10)


def test_the_rate_over_a_long_run_is_the_qps() -> None:
    clock = FakeClock()
    limiter = bucket(qps=50, burst=100, clock=clock)
    start = clock.now
    for _ in range(10_100):
        limiter.take()
    # 100 free, then 10,000 at 50/s: 200 s of (fake) time.
    assert clock.now - start == pytest.approx(200.0)


def test_idle_time_refills_up_to_the_burst_only() -> None:
    clock = FakeClock()
    limiter = bucket(qps=10, burst=5, clock=clock)
    for _ in range(5):
        limiter.take()
    clock.now += 3600  # an hour idle earns 5 tokens, not 36,000
    assert [limiter.take() for _ in range(5)] == [0.0] * 5
    assert limiter.take() == pytest.approx(0.1)


@pytest.mark.parametrize(("qps", "burst"), [(0, 10), (-1, 10), (10, 0)])
def test_a_bound_that_admits_nothing_is_refused(qps: float, burst: int) -> None:
    with pytest.raises(ValueError, match="qps must be > 0 and burst >= 1"):
        TokenBucket(qps, burst)


def test_concurrent_callers_share_one_bucket() -> None:
    clock = FakeClock()
    lock = threading.Lock()

    def sleep(seconds: float) -> None:
        with lock:
            clock.slept.append(seconds)

    limiter = TokenBucket(10, 10, clock=clock, sleep=sleep)
    threads = [threading.Thread(target=limiter.take) for _ in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    # Nobody's clock moved: 10 went free, the other 20 each reserved a later slot.
    assert sorted(clock.slept) == pytest.approx([0.1 * n for n in range(1, 21)])


def test_every_request_of_the_client_takes_a_token_first() -> None:
    clock = FakeClock()
    sent: list[str] = []

    def request(method: str, url: str, **_: Any) -> Any:
        sent.append(f"{method} {url.removeprefix(SERVER)} at {clock.now - 100.0:.2f}")
        return SimpleNamespace(status=200)

    api = RestClient(SERVER, ssl.create_default_context())
    api._pool = SimpleNamespace(request=request)  # type: ignore[assignment]  # no server needed
    waits: list[float] = []
    rate_limit(api, bucket(qps=2, burst=1, clock=clock), waits.append)
    core = CoreV1(api)
    assert core.list_namespace().status == 200
    core.list_secret_for_all_namespaces(watch=True)
    core.create_namespaced_secret("a", {"metadata": {"name": "s"}})
    assert sent == [
        "GET /api/v1/namespaces at 0.00",
        "GET /api/v1/secrets?watch=true at 0.50",
        "POST /api/v1/namespaces/a/secrets at 1.00",
    ]
    assert waits == [0.0, 0.5, 0.5]


def test_the_controller_client_is_bounded_by_its_settings(tmp_path: Any) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: made-up}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    settings = Settings(kubeconfig=str(kubeconfig), controller_qps=7.5, controller_burst=3)
    api = controller_api_client(settings, Metrics())
    assert api.before_request is not None
    closure = api.before_request.__closure__ or ()
    buckets = [c.cell_contents for c in closure if isinstance(c.cell_contents, TokenBucket)]
    assert [(b.qps, b.burst) for b in buckets] == [(7.5, 3)]
