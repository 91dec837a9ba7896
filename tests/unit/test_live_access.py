"""Permissions the API server refuses: reported exactly, never mistaken for "not found".

LiveState with stand-in watches (nothing talks to an API server): a source namespace the
process may list is watched whole, so a secret added there later needs no new watch; where
it may not, each source Secret is watched by name, and a refused one turns into a denial in
the view (decisions then say which permission is missing and how to get it), a metric and
a report that clears itself once the permission is granted.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry

from tests.unit.factories import pod, pull_secret
from webhook.core.clusterview import source_from_object
from webhook.core.plan import plan
from webhook.core.review import AdmissionRequest
from webhook.k8s.live import LiveState
from webhook.metrics import Metrics
from webhook.settings import Settings

HEAD = (
    "apiVersion: pullsecret-injector.io/v1\nkind: PullSecretPolicy\n"
    "defaults: {sourceNamespace: pull-secrets}\nrules:\n"
)
OLD = HEAD + "  - {name: old, secrets: [old-pull], registries: [old.example.com]}\n"
NEW = OLD + "  - {name: new-registry, secrets: [new-pull], registries: [new.example.com]}\n"


class StandInWatch:
    def __init__(self, name: str) -> None:
        self.name = name
        self.synced = threading.Event()
        self.synced.set()  # listed at once, unless the test says it was refused
        self.last_error = ""
        self.forbidden = False

    def start(self) -> StandInWatch:
        return self

    def stop(self, timeout: float = 0) -> None:
        STOPS.append((self.name, timeout))


STOPS: list[tuple[str, float]] = []
"""``(watch, timeout)`` of every ``stop`` call, in order."""


def live(can_list: bool) -> tuple[LiveState, dict[str, StandInWatch], Metrics]:
    watches: dict[str, StandInWatch] = {}

    def stand_in(name: str, *_: Callable[..., Any], **__: Any) -> StandInWatch:
        watches[name] = StandInWatch(name)
        return watches[name]

    metrics = Metrics(CollectorRegistry())
    state = LiveState(
        Settings(policy_namespace="psi", policy_configmap="policy"),
        metrics,
        api=None,
        reflectors=stand_in,
        can_list_secrets=lambda namespace: can_list,
    )
    state.watches.start()
    return state, watches, metrics


def test_a_namespace_that_may_be_listed_is_watched_whole_so_a_new_secret_needs_no_watch() -> None:
    state, watches, _ = live(can_list=True)
    assert state.apply_policy_text(OLD, "1")
    before = set(watches)
    assert state.apply_policy_text(NEW, "2")
    assert "sources/pull-secrets" in watches
    assert set(watches) - before == {"copies/new-pull"}  # no watch per source secret


def test_a_refused_source_watch_is_reported_with_the_permission_and_the_fix() -> None:
    state, watches, metrics = live(can_list=False)
    assert state.apply_policy_text(OLD, "1")
    assert state.apply_policy_text(NEW, "2")
    refused = watches["sources/pull-secrets/new-pull"]
    refused.forbidden = True
    refused.last_error = 'HTTP 403: secrets "new-pull" is forbidden'
    assert state.readiness() == (True, ""), "one refused grant must not unready every replica"

    missing = state.report_access()

    assert [n.permission for n in missing] == [
        'get/list/watch secrets "new-pull" in namespace pull-secrets'
    ]
    policy = state.policy()
    assert policy is not None
    request = AdmissionRequest("Pod", "CREATE", "team-a", pod(["new.example.com/app:1"]))
    warnings = " ".join(plan(policy, request, state.store).warnings)
    assert 'may not get/list/watch secrets "new-pull" in namespace pull-secrets' in warnings
    assert "not found" not in warnings
    assert "RBAC: see the PermissionMissing Event on the policy ConfigMap" in warnings
    labels = {
        "component": "webhook",
        "rule": "new-registry",
        "verb": "get/list/watch",
        "resource": "secrets",
        "namespace": "pull-secrets",
        "name": "new-pull",
    }
    gauge = "pullsecret_injector_policy_permission_missing"
    assert metrics.registry.get_sample_value(gauge, labels) == 1

    refused.forbidden = False  # `helm upgrade` granted it; the watch's retry listed the secret
    state.store.put_source(
        source_from_object(pull_secret("new-pull", "pull-secrets", ["new.example.com"]))
    )
    assert state.report_access() == []
    assert metrics.registry.get_sample_value(gauge, labels) == 0
    assert plan(policy, request, state.store).ops, "the same pod now gets its secret"


def test_stopping_signals_every_watch_before_waiting_for_any() -> None:
    """A watch whose request is still open ends only at its deadline: signalled one by one,
    five watches made a controller's shutdown outlast its 30 s grace period on a real node
    (tests/e2e/test_chart_on_node.py). All are told first; then one deadline is shared."""
    state, watches, _ = live(can_list=False)
    assert state.apply_policy_text(NEW, "1")
    STOPS.clear()

    state.watches.stop(timeout=5.0)

    assert len(watches) >= 4
    signalled = [timeout for _, timeout in STOPS[: len(watches)]]
    waited = [timeout for _, timeout in STOPS[len(watches) :]]
    assert signalled == [0] * len(watches), STOPS
    assert {name for name, _ in STOPS} == set(watches)
    assert len(waited) == len(watches)
    assert all(0 <= t <= 5.0 for t in waited)


def test_a_watch_refused_while_its_edit_waits_is_reported_with_the_edits_rule() -> None:
    """An edit waits (bounded) for its new watches to list; a refused one never does, and the
    access report that runs meanwhile must name the rule of the edit, not of the old policy."""
    state, watches, _ = live(can_list=True)
    assert state.apply_policy_text(OLD, "1")
    reported: list[list[tuple[str, ...]]] = []

    class RefusedMeanwhile(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            watches["copies/new-pull"].forbidden = True
            reported.append([n.rules for n in state.report_access()])
            return False

    original = state.watches.follow

    def follow(policy: Any, extra: frozenset[str]) -> list[Any]:
        started = original(policy, extra)
        for watch in started:
            watch.synced = RefusedMeanwhile()
        return started

    state.watches.follow = follow  # type: ignore[method-assign]
    state.source.record_event = lambda reason, message: None  # type: ignore[method-assign]

    assert state.apply_policy_text(NEW, "2")

    assert reported == [[("new-registry",)]]
