"""A policy edit naming a new secret goes into force once that secret's watch has listed.

Put in force at once, a rule naming a new secret would answer "source secret not found" on
every worker for the moment its watch takes to list. The watches here are stand-ins whose
first list completes when the test says so; nothing talks to an API server.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from webhook.k8s import live
from webhook.k8s.live import LiveState
from webhook.metrics import Metrics
from webhook.settings import Settings

HEAD = (
    "apiVersion: pullsecret-injector.io/v1\nkind: PullSecretPolicy\n"
    "defaults: {sourceNamespace: pull-secrets}\n"
)
OLD = HEAD + "rules:\n  - {name: old, secrets: [old-pull], registries: [old.example.com]}\n"
NEW = HEAD + "rules:\n  - {name: new, secrets: [new-pull], registries: [new.example.com]}\n"


class StandInWatch:
    """Has ``synced``, ``start`` and ``stop`` like ``Reflector``; lists when told to."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.synced = threading.Event()
        self.last_error = ""
        self.forbidden = False
        self.stopped = False

    def start(self) -> StandInWatch:
        return self

    def stop(self, timeout: float = 0) -> None:
        self.stopped = True


@pytest.fixture
def state() -> tuple[LiveState, dict[str, StandInWatch]]:
    watches: dict[str, StandInWatch] = {}

    def stand_in(name: str, *_: Callable[..., Any], **__: Any) -> StandInWatch:
        watches[name] = StandInWatch(name)
        return watches[name]

    settings = Settings(policy_namespace="psi", policy_configmap="policy")
    live_state = LiveState(
        settings, Metrics(), api=None, reflectors=stand_in, can_list_secrets=lambda ns: False
    )
    assert live_state.apply_policy_text(_synced_at_once(watches, OLD), "1")
    return live_state, watches


def _synced_at_once(watches: dict[str, StandInWatch], text: str) -> str:
    """Let every watch started for ``text`` list at once (setting up the old policy)."""

    def release() -> None:
        for watch in list(watches.values()):
            watch.synced.set()

    threading.Timer(0.05, release).start()
    return text


def test_the_new_policy_waits_for_its_new_secrets_watch(
    state: tuple[LiveState, dict[str, StandInWatch]],
) -> None:
    live_state, watches = state
    applying = threading.Thread(target=live_state.apply_policy_text, args=(NEW, "2"))
    applying.start()
    try:
        assert _wait_for(lambda: "sources/pull-secrets/new-pull" in watches or None)
        applying.join(0.3)
        assert applying.is_alive(), "the policy went into force before its secret was listed"
        policy = live_state.policy()
        assert policy is not None
        assert policy.generation == "1"
        assert not watches["sources/pull-secrets/old-pull"].stopped, "old rule still served"
    finally:
        for watch in list(watches.values()):
            watch.synced.set()
        applying.join(5)
    policy = live_state.policy()
    assert policy is not None
    assert policy.generation == "2"
    assert watches["sources/pull-secrets/old-pull"].stopped


def test_a_watch_that_never_lists_holds_the_policy_back_only_briefly(
    state: tuple[LiveState, dict[str, StandInWatch]], monkeypatch: pytest.MonkeyPatch
) -> None:
    live_state, _ = state
    monkeypatch.setattr(live, "NEW_WATCH_SYNC_SECONDS", 0.2)
    assert live_state.apply_policy_text(NEW, "2")  # returns after the bound, applied
    policy = live_state.policy()
    assert policy is not None
    assert policy.generation == "2"


def _wait_for(check: Callable[[], object], timeout: float = 5.0) -> object:
    done = threading.Event()
    for _ in range(int(timeout / 0.01)):
        result = check()
        if result:
            return result
        done.wait(0.01)
    return None
