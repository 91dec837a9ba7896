"""The controller's status document: written by the leader when it changes, never otherwise.

The publisher reads only the controller's memory; the API is an in-memory stand-in that
records every write, so "not on every pass" is checked by counting writes.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from tests.unit.factories import cluster, pull_secret
from webhook.core.conventions import STATUS_DATA_KEY
from webhook.core.permissions import source_secret_need
from webhook.core.policy import load_policy
from webhook.k8s.rest import ApiError
from webhook.k8s.status import StatusPublisher
from webhook.settings import Settings

PS = "pull-secrets"
POLICY = load_policy(
    f"""\
apiVersion: pullsecret-injector.io/v1
kind: PullSecretPolicy
defaults: {{sourceNamespace: {PS}}}
rules:
  - {{name: corp, registries: [registry.example.com], secrets: [corp-pull]}}
  - {{name: vendor, registries: [vendor.example.com], secrets: [vendor-pull]}}
""",
    generation="42",
)
SETTINGS = Settings(
    policy_namespace="psi",
    policy_configmap="psi-pullsecret-injector-policy",
    webhook_configuration="psi-pullsecret-injector",
    pod_name="controller-0",
)
STATUS_NAME = "psi-pullsecret-injector-status"


@dataclass
class _Response:
    data: bytes


@dataclass
class FakeCore:
    """ConfigMaps in memory; every write is recorded."""

    configmaps: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    writes: list[str] = field(default_factory=list)

    def read_namespaced_config_map(self, name: str, namespace: str, **_: Any) -> _Response:
        if (namespace, name) not in self.configmaps:
            raise ApiError(404, "Not Found")
        return _Response(json.dumps(self.configmaps[(namespace, name)]).encode())

    def patch_namespaced_config_map(
        self, name: str, namespace: str, body: dict[str, Any], **_: Any
    ) -> None:
        if (namespace, name) not in self.configmaps:
            raise ApiError(404, "Not Found")
        self.configmaps[(namespace, name)]["data"].update(body["data"])
        self.writes.append("patch")

    def create_namespaced_config_map(self, namespace: str, body: dict[str, Any], **_: Any) -> None:
        self.configmaps[(namespace, body["metadata"]["name"])] = body
        self.writes.append("create")

    def document(self) -> dict[str, Any]:
        text = self.configmaps[("psi", STATUS_NAME)]["data"][STATUS_DATA_KEY]
        loaded: dict[str, Any] = json.loads(text)
        return loaded


@dataclass
class FakeWatch:
    name: str
    last_error: str = ""
    synced: threading.Event = field(default_factory=threading.Event)


def live_state(core: FakeCore, watches: list[FakeWatch] | None = None) -> Any:
    """What the publisher reads of a ``LiveState``."""
    return SimpleNamespace(
        policy=lambda: POLICY,
        source=SimpleNamespace(error="", rejected=None),
        store=cluster([pull_secret("corp-pull", PS, ["registry.example.com"])]),
        watches=SimpleNamespace(all=lambda: list(watches or [])),
        core=core,
        stopped=threading.Event(),
    )


def publisher(state: Any, leader: list[bool] | None = None) -> StatusPublisher:
    leading = leader if leader is not None else [True]
    return StatusPublisher(SETTINGS, state, lambda: leading[0])


def test_the_leader_creates_the_document_once_and_not_on_every_pass() -> None:
    core = FakeCore()
    publishing = publisher(live_state(core))

    assert publishing.publish_once() is True
    assert publishing.publish_once() is False
    assert publishing.publish_once() is False

    assert core.writes == ["create"]
    document = core.document()
    assert document["kind"] == "PullSecretInjectorStatus"
    assert document["policy"] == {
        "configMap": "psi/psi-pullsecret-injector-policy",
        "key": "policy.yaml",
        "generation": "42",
        "valid": True,
        "error": "",
        "rejectedGeneration": "",
        "rules": 2,
    }
    assert {s["name"]: s["state"] for s in document["sources"]} == {
        "corp-pull": "present",
        "vendor-pull": "missing",
    }
    assert document["reporter"] == "controller-0"
    assert document["updated"]


def test_a_change_is_written_when_it_happens() -> None:
    core = FakeCore()
    state = live_state(core)
    publishing = publisher(state)
    publishing.publish_once()

    state.store.put_source(
        cluster([pull_secret("vendor-pull", PS, ["vendor.example.com"])]).sources()[0]
    )

    assert publishing.publish_once() is True
    assert core.writes == ["create", "patch"]
    assert {s["state"] for s in core.document()["sources"]} == {"present"}


def test_a_rejected_edit_makes_the_document_invalid_with_its_errors() -> None:
    core = FakeCore()
    state = live_state(core)
    state.source.rejected = ("43", "rules[0].registires: unknown field")

    publisher(state).publish_once()

    policy = core.document()["policy"]
    assert (policy["generation"], policy["valid"], policy["rejectedGeneration"]) == (
        "42",
        False,
        "43",
    )
    assert policy["error"] == "rules[0].registires: unknown field"


def test_a_follower_writes_nothing() -> None:
    core = FakeCore()

    assert publisher(live_state(core), leader=[False]).publish_once() is False
    assert core.writes == []


def test_a_new_leader_finding_the_same_document_leaves_it_alone() -> None:
    core = FakeCore()
    publisher(live_state(core)).publish_once()
    written = core.document()["updated"]

    successor = publisher(live_state(core))

    assert successor.publish_once() is False
    assert core.writes == ["create"]
    assert core.document()["updated"] == written


def test_leadership_regained_reads_again_before_deciding() -> None:
    core = FakeCore()
    leader = [True]
    publishing = publisher(live_state(core), leader)
    publishing.publish_once()
    leader[0] = False
    publishing.publish_once()
    core.configmaps.clear()  # meanwhile deleted by someone

    leader[0] = True

    assert publishing.publish_once() is True
    assert core.writes == ["create", "create"]


def test_a_source_the_controller_may_not_read_is_reported_forbidden() -> None:
    core = FakeCore()
    watch = FakeWatch(f"sources/{PS}/vendor-pull", last_error="HTTP 403: forbidden")
    state = live_state(core, [watch])
    denied = source_secret_need(POLICY, "controller", PS, "vendor-pull").brief()
    state.store.set_denied({(PS, "vendor-pull"): denied})  # what LiveState.report_access does

    publisher(state).publish_once()

    states = {s["name"]: (s["state"], s["reason"]) for s in core.document()["sources"]}
    state, reason = states["vendor-pull"]
    assert state == "forbidden"
    assert 'may not get/list/watch secrets "vendor-pull" in namespace' in reason


def test_nothing_is_published_without_a_name() -> None:
    state = live_state(FakeCore())
    publishing = StatusPublisher(Settings(policy_namespace="psi"), state, lambda: True)

    assert publishing.name == ""
    publishing.start()  # starts no thread: nothing to write to
    assert not [t for t in threading.enumerate() if t.name == "status"]
