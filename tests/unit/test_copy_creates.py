"""Reviews that need the same missing copy at once send one create, and each is told its fate.

A Deployment's first replicas in a new namespace arrive together; each review finds the copy
missing. One POST goes out; the others wait for its answer (within their own budget), so a
refusal reaches every one of them and a success is reported once as "created".
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from tests.unit.factories import pull_secret
from webhook.core.clusterview import ClusterStore, source_from_object
from webhook.core.copies import CopiesEnsured, CopySpec
from webhook.k8s.copies import CopyCreates, create_copies
from webhook.k8s.rest import ApiError
from webhook.metrics import Metrics

SPEC = CopySpec("team-a", "corp-pull", "pull-secrets", "corp-pull", ("fresh",), None)
KEY = (SPEC.namespace, SPEC.name)


class HeldCreate:
    """A core/v1 client whose creates are held until released, then answer ``status``."""

    def __init__(self, status: int = 201) -> None:
        self.status = status
        self.posts = 0
        self.started = threading.Event()
        self.release = threading.Event()

    def create_namespaced_secret(self, *args: Any, **kwargs: Any) -> None:
        self.posts += 1
        self.started.set()
        self.release.wait(30)
        if self.status == 403:
            body = json.dumps({"kind": "Status", "message": "exceeded quota: q"})
            raise ApiError(403, "Forbidden", body)


def _store() -> ClusterStore:
    store = ClusterStore()
    store.put_source(
        source_from_object(pull_secret("corp-pull", "pull-secrets", ["corp.example.com"]))
    )
    return store


def _review_all(core: HeldCreate, reviews: int, timeout: float) -> list[CopiesEnsured]:
    """``reviews`` concurrent reviews; the first one's create is held until all others wait."""
    store, creates = _store(), CopyCreates()
    metrics = Metrics(CollectorRegistry())
    results: list[CopiesEnsured] = []

    def review() -> None:
        ensured = create_copies(
            core, store, [SPEC], timeout=timeout, metrics=metrics, creates=creates
        )
        results.append(ensured)

    threads = [threading.Thread(target=review)]
    threads[0].start()
    assert core.started.wait(10)
    threads += [threading.Thread(target=review) for _ in range(reviews - 1)]
    for thread in threads[1:]:
        thread.start()
    deadline = time.monotonic() + 10
    while creates.waiting(KEY) < reviews - 1 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert creates.waiting(KEY) == reviews - 1
    core.release.set()
    for thread in threads:
        thread.join(10)
    return results


def test_concurrent_reviews_of_one_missing_copy_send_one_create() -> None:
    core = HeldCreate()

    results = _review_all(core, reviews=4, timeout=5)

    assert core.posts == 1
    assert [r.warnings for r in results] == [(), (), (), ()]
    assert all(not r.refused for r in results)


def test_a_refusal_reaches_every_review_that_waited_for_it() -> None:
    core = HeldCreate(status=403)

    results = _review_all(core, reviews=3, timeout=5)

    assert core.posts == 1
    assert all(r.refused == {"corp-pull"} for r in results)
    assert all("exceeded quota: q" in r.warnings[0] for r in results)


def test_a_review_stops_waiting_at_its_own_deadline() -> None:
    store, creates, core = _store(), CopyCreates(), HeldCreate()
    metrics = Metrics(CollectorRegistry())
    leader = threading.Thread(
        target=create_copies,
        args=(core, store, [SPEC]),
        kwargs={"timeout": 30, "metrics": metrics, "creates": creates},
    )
    leader.start()
    assert core.started.wait(10)
    try:
        ensured = create_copies(core, store, [SPEC], timeout=0.2, metrics=metrics, creates=creates)
    finally:
        core.release.set()
        leader.join(10)

    assert core.posts == 1
    (warning,) = ensured.warnings
    assert "out of time" in warning
    assert not ensured.refused  # not a refusal: the name stays, the controller creates it


@pytest.mark.parametrize("status", [201, 403])
def test_after_a_create_is_answered_the_next_review_sends_its_own(status: int) -> None:
    store, creates, core = _store(), CopyCreates(), HeldCreate(status)
    core.release.set()
    metrics = Metrics(CollectorRegistry())
    for _ in range(2):
        create_copies(core, store, [SPEC], timeout=5, metrics=metrics, creates=creates)
    assert core.posts == 2
    assert creates.waiting(KEY) == 0
