"""SharedBackend: a worker builds its planner when the policy or a source changes, not in a review.

Building it (the rule index) in the first review after a change queued every review behind it
on a busy machine (BENCHMARKS.md §7: the first pods of the scale benchmark waited up to
0.4 s); these tests check that the review finds the planner already built for what it sees.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from tests.unit.factories import pull_secret
from webhook.core.clusterview import source_from_object
from webhook.core.plan import Planner
from webhook.core.policy import load_policy
from webhook.k8s.backend import SharedBackend
from webhook.k8s.rest import RestClient
from webhook.metrics import Metrics
from webhook.settings import Settings
from webhook.sharedview import PublishedPolicy, SharedStore

POLICY = """\
apiVersion: pullsecret-injector.io/v1
kind: PullSecretPolicy
defaults: {sourceNamespace: pull-secrets}
rules:
  - {name: corp, registries: [registry.corp.example], secrets: [corp-pull]}
"""


@pytest.fixture
def backend(tmp_path: Path) -> SharedBackend:
    store = SharedStore(tmp_path / "view")
    api = RestClient("https://127.0.0.1:9", ssl.create_default_context())  # never called here
    return SharedBackend(store, Settings(cluster=False), Metrics(), api)


def built_planners(monkeypatch: pytest.MonkeyPatch) -> list[Planner]:
    """Every Planner built from now on, in order."""
    built: list[Planner] = []
    original = Planner.__init__

    def recording(self: Planner, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)  # type: ignore[arg-type]
        built.append(self)

    monkeypatch.setattr(Planner, "__init__", recording)
    return built


def test_a_new_policy_is_swapped_in_with_its_planner_built(
    backend: SharedBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = built_planners(monkeypatch)
    policy = load_policy(POLICY, "3")
    backend.store.publish_policy(PublishedPolicy("3", policy))

    backend.follow_policy()

    assert len(built) == 1
    assert built[0].policy == policy
    assert backend.planner() is built[0]  # the review builds nothing
    assert len(built) == 1


def test_a_changed_source_gets_its_planner_before_the_next_review(
    backend: SharedBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend.store.publish_policy(PublishedPolicy("3", load_policy(POLICY, "3")))
    backend.follow_policy()
    before = backend.planner()
    built = built_planners(monkeypatch)

    backend.warm_planner()
    assert built == []  # nothing changed: the planner in place still serves

    secret = pull_secret("corp-pull", "pull-secrets", ["registry.corp.example"])
    backend.store.put_source(source_from_object(secret))
    backend.warm_planner()

    assert len(built) == 1
    assert built[0] is not before
    assert backend.planner() is built[0]
    assert built[0].sources_version == backend.store.sources_version


def test_a_worker_keeps_one_api_connection_open_with_a_request_a_minute(
    backend: SharedBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Admission's rare API calls (a missing copy, a new namespace) then skip the handshake.
    asked: list[tuple[str, str]] = []

    def request(method: str, path: str, **kwargs: object) -> None:
        asked.append((method, path))
        if len(asked) == 2:
            raise OSError("connection refused")  # a failure is the next review's to meet

    monkeypatch.setattr(backend._api, "request", request)
    for now in (100.0, 130.0, 159.9, 160.0, 200.0, 220.5):
        backend.keep_connection_warm(now)

    assert asked == [("GET", "/version")] * 3  # at 100, 160 (refused) and 220.5
