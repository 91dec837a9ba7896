"""The sync controller on the real control plane: pre-provisioning, rotation, ownership."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.support import (
    SOURCE_NAMESPACE,
    Api,
    ControllerProcess,
    WebhookServer,
    pull_secret,
    unique,
    wait_until,
)
from tools.controlplane import ControlPlane

Policy = Callable[[str], str]
MANAGED_BY = "app.kubernetes.io/managed-by"


@pytest.fixture(scope="module")
def controller(
    control_plane: ControlPlane, webhook: WebhookServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControllerProcess]:
    process = ControllerProcess(
        control_plane, tmp_path_factory.mktemp("controller"), "controller-a"
    )
    process.start()
    wait_until(
        lambda: process.metric_value("pullsecret_injector_ready") == 1 or process.ready(), "ready"
    )
    yield process
    process.stop()


@pytest.fixture
def namespaces(api: Api) -> Iterator[Callable[..., str]]:
    created: list[str] = []

    def make(prefix: str, labels: dict[str, str] | None = None) -> str:
        name = unique(prefix)
        api.ensure_namespace(name, labels)
        created.append(name)
        return name

    yield make
    for name in created:
        api.core.delete_namespace(name)


def copy_of(api: Api, namespace: str, name: str) -> dict[str, object] | None:
    return api.secret(namespace, name)


def test_a_matching_namespace_gets_its_copy_before_any_pod(
    api: Api, controller: ControllerProcess, policy: Policy, namespaces: Callable[..., str]
) -> None:
    prefix = unique("pre")
    api.apply_secret(pull_secret("pre-pull", SOURCE_NAMESPACE, {"pre.example.com": "pre"}))
    policy(
        f"rules:\n  - {{name: pre, secrets: [pre-pull], namespaces: {{include: ['{prefix}-*']}}}}\n"
    )
    started = time.monotonic()
    target = namespaces(prefix)
    copy = wait_until(
        lambda: copy_of(api, target, "pre-pull"), "the pre-provisioned copy", timeout=60
    )
    assert copy["metadata"]["labels"][MANAGED_BY] == "pullsecret-injector"  # type: ignore[index]
    print(f"\npre-provisioned {time.monotonic() - started:.1f}s after the namespace appeared")
    outside = namespaces(unique("other"))
    time.sleep(1.5)
    assert copy_of(api, outside, "pre-pull") is None


def test_a_rotated_source_reaches_every_copy(
    api: Api, controller: ControllerProcess, policy: Policy, namespaces: Callable[..., str]
) -> None:
    prefix = unique("rot")
    api.apply_secret(pull_secret("rot-pull", SOURCE_NAMESPACE, {"rot.example.com": "before"}))
    policy(
        f"rules:\n  - {{name: rot, secrets: [rot-pull], namespaces: {{include: ['{prefix}-*']}}}}\n"
    )
    targets = [namespaces(prefix) for _ in range(12)]
    wait_until(lambda: all(copy_of(api, t, "rot-pull") for t in targets), "12 copies", timeout=60)
    rotated = pull_secret("rot-pull", SOURCE_NAMESPACE, {"rot.example.com": "after"})
    api.apply_secret(rotated)
    wait_until(
        lambda: all(
            (copy_of(api, t, "rot-pull") or {}).get("data") == rotated["data"] for t in targets
        ),
        "every copy to carry the rotated credentials",
        timeout=60,
    )


def test_a_secret_we_do_not_own_is_never_touched_and_is_reported(
    api: Api, controller: ControllerProcess, policy: Policy, namespaces: Callable[..., str]
) -> None:
    api.apply_secret(pull_secret("own-pull", SOURCE_NAMESPACE, {"own.example.com": "ours"}))
    prefix = unique("own")
    target = namespaces(prefix)
    theirs = pull_secret("own-pull", target, {"own.example.com": "theirs"})
    api.apply_secret(theirs)
    before = api.secret(target, "own-pull")
    policy(
        f"rules:\n  - {{name: own, secrets: [own-pull], namespaces: {{include: ['{prefix}-*']}}}}\n"
    )

    def event() -> dict[str, object] | None:
        items = api.read(api.core.list_namespaced_event, target)["items"]
        return next((e for e in items if e["reason"] == "NotManagedByPullSecretInjector"), None)

    wait_until(event, "an Event on the Secret we do not own", timeout=60)
    after = api.secret(target, "own-pull")
    assert before is not None
    assert after is not None
    assert after["data"] == before["data"]
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert controller.metric_value("pullsecret_injector_ownership_conflicts_total") >= 1


def test_removing_a_rule_removes_exactly_our_copies(
    api: Api, controller: ControllerProcess, policy: Policy, namespaces: Callable[..., str]
) -> None:
    prefix = unique("rm")
    api.apply_secret(pull_secret("keep-pull", SOURCE_NAMESPACE, {"keep.example.com": "k"}))
    api.apply_secret(pull_secret("drop-pull", SOURCE_NAMESPACE, {"drop.example.com": "d"}))
    scope = f"namespaces: {{include: ['{prefix}-*']}}"
    policy(
        "rules:\n"
        f"  - {{name: keep, secrets: [keep-pull], {scope}}}\n"
        f"  - {{name: drop, secrets: [drop-pull], {scope}}}\n"
    )
    target = namespaces(prefix)
    bystander = pull_secret("bystander", target, {"drop.example.com": "user"})
    api.apply_secret(bystander)
    wait_until(
        lambda: copy_of(api, target, "drop-pull") and copy_of(api, target, "keep-pull"), "copies"
    )
    policy(f"rules:\n  - {{name: keep, secrets: [keep-pull], {scope}}}\n")
    wait_until(
        lambda: copy_of(api, target, "drop-pull") is None, "our copy to be deleted", timeout=60
    )
    assert copy_of(api, target, "keep-pull") is not None
    assert copy_of(api, target, "bystander") is not None


def test_namespaces_outside_the_policy_never_receive_a_copy(
    api: Api, controller: ControllerProcess, policy: Policy, namespaces: Callable[..., str]
) -> None:
    seed = random.randrange(1_000_000)
    chooser = random.Random(seed)
    prefix = unique("rnd")
    teams = ["red", "blue", "green"]
    api.apply_secret(pull_secret("rnd-pull", SOURCE_NAMESPACE, {"rnd.example.com": "r"}))
    granted = chooser.sample(teams, 2)
    policy(
        "rules:\n  - name: rnd\n    secrets: [rnd-pull]\n"
        f"    namespaces: {{include: ['{prefix}-*'], selector: {{matchExpressions: "
        f"[{{key: team, operator: In, values: [{', '.join(granted)}]}}]}}}}\n"
    )
    created = {}
    for _ in range(10):
        team = chooser.choice([*teams, "none"])
        labels = {} if team == "none" else {"team": team}
        created[namespaces(prefix, labels)] = team in granted
    wait_until(
        lambda: all(copy_of(api, ns, "rnd-pull") for ns, wanted in created.items() if wanted),
        f"copies in granted namespaces (seed {seed})",
        timeout=60,
    )
    time.sleep(1.0)
    leaked = [ns for ns, wanted in created.items() if not wanted and copy_of(api, ns, "rnd-pull")]
    assert leaked == [], f"seed {seed}: copies outside the policy in {leaked}"


def test_two_controllers_never_fight_and_one_takes_over(
    api: Api,
    control_plane: ControlPlane,
    controller: ControllerProcess,
    policy: Policy,
    namespaces: Callable[..., str],
    tmp_path: Path,
) -> None:
    second = ControllerProcess(control_plane, tmp_path, "controller-b")
    second.start()
    try:
        prefix = unique("lease")
        api.apply_secret(pull_secret("lease-pull", SOURCE_NAMESPACE, {"lease.example.com": "1"}))
        scope = f"namespaces: {{include: ['{prefix}-*']}}"
        policy(f"rules:\n  - {{name: lease, secrets: [lease-pull], {scope}}}\n")
        targets = [namespaces(prefix) for _ in range(5)]
        wait_until(
            lambda: all(copy_of(api, t, "lease-pull") for t in targets), "copies", timeout=60
        )
        writes_b = [r for r in second.log_records() if r.get("event") == "sync.write"]
        assert writes_b == [], "the follower must not write"
        controller.kill()  # the leader dies without releasing its Lease
        rotated = pull_secret("lease-pull", SOURCE_NAMESPACE, {"lease.example.com": "2"})
        api.apply_secret(rotated)
        wait_until(
            lambda: all(
                (copy_of(api, t, "lease-pull") or {}).get("data") == rotated["data"]
                for t in targets
            ),
            "the follower to take over and update every copy",
            timeout=30,
        )
        assert [r for r in second.log_records() if r.get("event") == "lease.acquired"]
    finally:
        second.stop()
        controller.start()


def test_a_rotation_updates_copies_in_place_and_a_wrong_typed_copy_of_ours_is_recreated(
    api: Api, controller: ControllerProcess, policy: Policy, namespaces: Callable[..., str]
) -> None:
    """The kubelet's KEP-2535 pulled-image records key on the Secret's uid: a rotation must
    keep it. A Secret's type is immutable: a copy of ours with the wrong one is replaced."""
    prefix = unique("uid")
    api.apply_secret(pull_secret("uid-pull", SOURCE_NAMESPACE, {"uid.example.com": "before"}))
    policy(
        f"rules:\n  - {{name: uid, secrets: [uid-pull], namespaces: {{include: ['{prefix}-*']}}}}\n"
    )
    kept, retyped = namespaces(prefix), namespaces(prefix)
    first = wait_until(lambda: copy_of(api, kept, "uid-pull"), "the copy", timeout=60)
    wrong = wait_until(lambda: copy_of(api, retyped, "uid-pull"), "the other copy", timeout=60)
    api.core.delete_namespaced_secret("uid-pull", retyped)
    api.core.create_namespaced_secret(
        retyped,
        {
            "metadata": {"name": "uid-pull", "labels": {MANAGED_BY: "pullsecret-injector"}},
            "type": "Opaque",
            "data": {"token": "ZmFrZQ=="},
        },
    )
    rotated = pull_secret("uid-pull", SOURCE_NAMESPACE, {"uid.example.com": "after"})
    api.apply_secret(rotated)
    updated = wait_until(
        lambda: (c := copy_of(api, kept, "uid-pull")) and c.get("data") == rotated["data"] and c,
        "the rotated copy",
        timeout=60,
    )
    assert updated["metadata"]["uid"] == first["metadata"]["uid"]  # type: ignore[index]
    replaced = wait_until(
        lambda: (
            (c := copy_of(api, retyped, "uid-pull"))
            and c.get("type") == "kubernetes.io/dockerconfigjson"
            and c
        ),
        "the wrong-typed copy recreated",
        timeout=60,
    )
    assert replaced["data"] == rotated["data"]  # type: ignore[index]
    assert replaced["metadata"]["uid"] != wrong["metadata"]["uid"]  # type: ignore[index]
