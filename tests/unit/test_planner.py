"""Planner: its caches never change an answer.

A ``Planner`` memoises pod decisions under their ``PodInput``, scopes under (namespace,
labels) and keyrings under the injected secret set. The property: any sequence of requests
answered by ONE planner gives exactly what a fresh planner gives for each request alone,
for random policies, secrets, namespaces (with labels) and pods of every shape.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.factories import ABSENT, pod, pull_secret, target_secret
from webhook.core.clusterview import ClusterStore, source_from_object, target_from_object
from webhook.core.plan import Planner, PlannerSlot, plan
from webhook.core.policy import load_policy
from webhook.core.review import AdmissionRequest

HOSTS = ["registry.example.com", "quay.io", "*.example.com", "docker.io", "index.docker.io"]
IMAGES = [
    "registry.example.com/team/app:1",
    "registry.example.com/other:2",
    "a.example.com/x",
    "quay.io/team/app",
    "quay.io/teamx/app",
    "nginx",
    "library/busybox:1",
    "INVALID//image",
    "",
]
SECRETS = ["corp-pull", "quay-pull", "hub-pull", "missing-pull"]
NAMESPACES = ["team-a", "team-b", "payments", "pull-secrets"]

rules = st.lists(
    st.fixed_dictionaries(
        {
            "registries": st.lists(st.sampled_from(HOSTS), max_size=2, unique=True),
            "secrets": st.lists(st.sampled_from(SECRETS), min_size=1, max_size=2, unique=True),
            "include": st.sampled_from(["*", "team-*", "payments"]),
            "selector": st.sampled_from([None, "team=a", "team=b"]),
            "accounts": st.sampled_from([[], ["default"], ["build*"]]),
            "deny": st.booleans(),
        }
    ),
    min_size=1,
    max_size=4,
)


def policy_text(raw_rules: list[dict[str, Any]]) -> str:
    lines = [
        "apiVersion: pullsecret-injector.io/v1",
        "kind: PullSecretPolicy",
        "defaults: {sourceNamespace: pull-secrets}",
        "rules:",
    ]
    for index, rule in enumerate(raw_rules):
        lines.append(f"  - name: r{index}")
        if rule["registries"]:
            lines.append(f"    registries: {rule['registries']!r}")
        lines.append(f"    secrets: {rule['secrets']!r}")
        scope = f"include: [{rule['include']!r}]"
        if rule["selector"]:
            key, value = rule["selector"].split("=")
            scope += f", selector: {{matchLabels: {{{key}: {value}}}}}"
        lines.append(f"    namespaces: {{{scope}}}")
        if rule["accounts"]:
            lines.append(f"    serviceAccounts: {{names: {rule['accounts']!r}}}")
        if rule["deny"]:
            lines.append("    onFailure: Deny")
    return "\n".join(lines) + "\n"


def store() -> ClusterStore:
    view = ClusterStore()
    view.put_source(source_from_object(pull_secret("corp-pull", "pull-secrets", HOSTS[:1])))
    view.put_source(source_from_object(pull_secret("quay-pull", "pull-secrets", ["quay.io/team"])))
    view.put_source(source_from_object(pull_secret("hub-pull", "pull-secrets", [HOSTS[4]])))
    view.put_namespace("team-a", {"kubernetes.io/metadata.name": "team-a", "team": "a"})
    view.put_namespace("payments", {"kubernetes.io/metadata.name": "payments", "team": "b"})
    view.put_target(
        target_from_object(target_secret("corp-pull", "team-a", managed=False, source="x/y"))
    )
    return view


requests = st.lists(
    st.tuples(
        st.sampled_from(["Pod", "ServiceAccount", "ephemeral"]),
        st.sampled_from(NAMESPACES),
        st.lists(st.sampled_from(IMAGES), max_size=4),
        st.sampled_from([None, [], ["corp-pull"], ["own"], "absent"]),
        st.sampled_from(["default", "builder", ""]),
    ),
    min_size=1,
    max_size=12,
)


def as_request(kind: str, namespace: str, images: list[str], listed: Any, account: str) -> Any:
    pull_secrets = listed if listed != "absent" else ABSENT
    if kind == "ServiceAccount":
        obj: dict[str, Any] = {"metadata": {"name": account or "default"}}
        if listed != "absent":
            obj["imagePullSecrets"] = None if listed is None else [{"name": n} for n in listed]
        return AdmissionRequest("ServiceAccount", "CREATE", namespace, obj)
    obj = pod(images, pull_secrets=pull_secrets, namespace=namespace)
    if account:
        obj["spec"]["serviceAccountName"] = account
    if kind == "ephemeral":
        old = pod(images[:1], namespace=namespace)
        obj["spec"]["ephemeralContainers"] = obj["spec"].pop("containers")
        return AdmissionRequest(
            "Pod", "UPDATE", namespace, obj, old_object=old, sub_resource="ephemeralcontainers"
        )
    return AdmissionRequest("Pod", "CREATE", namespace, obj)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules, requests)
def test_a_planner_with_warm_caches_answers_as_a_fresh_one(
    raw_rules: list[dict[str, Any]], sequence: list[tuple[Any, ...]]
) -> None:
    policy = load_policy(policy_text(raw_rules))
    view = store()
    shared = Planner(policy, view)
    for item in sequence + sequence:  # the second pass is answered from the memo
        request = as_request(*item)
        assert shared.plan(request) == plan(policy, request, view)


def test_the_slot_keeps_a_planner_until_the_policy_or_a_source_secret_changes() -> None:
    policy = load_policy(policy_text([{**_RULE, "registries": ["registry.example.com"]}]))
    view = store()
    slot = PlannerSlot()
    first = slot.get(policy, view)
    assert slot.get(policy, view) is first
    view.put_source(source_from_object(pull_secret("corp-pull", "pull-secrets", ["quay.io"])))
    rotated = slot.get(policy, view)
    assert rotated is not first
    edited = load_policy(policy_text([_RULE]))
    assert slot.get(edited, view) is not rotated


def test_a_rotated_source_changes_the_answer_of_the_same_pod() -> None:
    """The memo of a stale planner is never consulted: the slot hands out a new planner."""
    policy = load_policy(policy_text([{**_RULE, "registries": []}]))
    view = store()
    slot = PlannerSlot()
    request = AdmissionRequest("Pod", "CREATE", "team-b", pod(["registry.example.com/a"]))
    assert slot.get(policy, view).plan(request).ops
    view.put_source(source_from_object(pull_secret("corp-pull", "pull-secrets", ["quay.io"])))
    assert not slot.get(policy, view).plan(request).ops


def test_a_memoised_pod_follows_the_copies_its_namespace_holds_now() -> None:
    """The memo answers for the pod, never for the namespace's Secrets: a copy deleted,
    recreated by us, or taken by someone else's Secret changes the next answer at once."""
    policy = load_policy(policy_text([_RULE]))
    view = store()
    planner = Planner(policy, view)
    request = AdmissionRequest("Pod", "CREATE", "payments", pod(["registry.example.com/a"]))

    def answer() -> tuple[list[str], list[str]]:
        decided = planner.plan(request)
        assert decided == plan(policy, request, view)
        foreign = [w for w in decided.warnings if "not managed by pullsecret-injector" in w]
        return [copy.name for copy in decided.copies], foreign

    assert answer() == (["corp-pull"], [])  # none there yet: create it
    view.put_target(target_from_object(target_secret("corp-pull", "payments", managed=True)))
    assert answer() == ([], [])  # ours now: nothing to create
    view.put_target(target_from_object(target_secret("corp-pull", "payments", managed=False)))
    copies, foreign = answer()
    assert copies == []  # someone else's: injected by name ...
    assert len(foreign) == 1  # ... with a warning
    view.delete_target("payments", "corp-pull")
    assert answer() == (["corp-pull"], [])


_RULE: dict[str, Any] = {
    "registries": [],
    "secrets": ["corp-pull"],
    "include": "*",
    "selector": None,
    "accounts": [],
    "deny": False,
}


def test_namespaces_the_policy_treats_alike_share_one_rule_set() -> None:
    """Memoised namespaces reached by the same rules hold one rule set between them, not one
    each: with 1,000 rules reaching every namespace that was ~40 KiB per namespace."""
    policy = load_policy(policy_text([_RULE, {**_RULE, "secrets": ["quay-pull"]}]))
    planner = Planner(policy, store())
    first, second = planner.scope("team-x", {"team": "x"}), planner.scope("team-y", {})
    assert first.ordered_rules == ("r0", "r1")
    assert first.applicable == {"r0", "r1"}
    assert first.ordered_rules is second.ordered_rules
    assert first.applicable is second.applicable
    assert first.copies["corp-pull"].rules is second.copies["corp-pull"].rules
    assert first.copies["corp-pull"].namespace == "team-x"
    assert second.copies["corp-pull"].namespace == "team-y"
