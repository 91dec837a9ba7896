"""One rule decides where the policy reaches, for the webhook, the controller and explain.

The webhook configuration's selectors are not the guarantee: a review posted straight to the
webhook port, or the controller's pre-provisioning, never passes through them. Each case plans
a pod (as a forged review would present it) and reconciles the cluster, and both must agree.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.factories import cluster, pod, pull_secret, service_account
from webhook.core.copies import desired_copies
from webhook.core.plan import plan
from webhook.core.policy import load_policy
from webhook.core.review import AdmissionRequest
from webhook.core.scope import Exclusions
from webhook.core.sync import CreateCopy, reconcile
from webhook.settings import Settings

POLICY_TEXT = (
    "apiVersion: pullsecret-injector.io/v1\nkind: PullSecretPolicy\n"
    "defaults: {sourceNamespace: pull-secrets}\n"
    "rules:\n  - {name: corp, registries: [registry.example.com], secrets: [corp-pull]}\n"
)
IMAGE = "registry.example.com/team/app:1"
RELEASE = Exclusions.of("pullsecret-injector", ["legacy", "batch"], "")
OPTED_OUT = {"pullsecret-injector.io/inject": "false"}


@pytest.mark.parametrize(
    ("namespace", "labels", "why"),
    [
        pytest.param("kube-system", {}, "kube-system is always excluded", id="kube-system"),
        pytest.param("kube-public", {}, "kube-public is always excluded", id="kube-public"),
        pytest.param("kube-node-lease", {}, "kube-node-lease is always", id="kube-node-lease"),
        pytest.param("pullsecret-injector", {}, "own namespace", id="the release namespace"),
        pytest.param("batch", {}, "batch is in excludeNamespaces", id="excludeNamespaces"),
        pytest.param("team-a", OPTED_OUT, "namespace team-a is opted out", id="opted-out ns"),
    ],
)
def test_an_excluded_namespace_gets_nothing_from_the_webhook_or_the_controller(
    namespace: str, labels: dict[str, str], why: str
) -> None:
    policy = load_policy(POLICY_TEXT, exclusions=RELEASE)
    view = cluster(
        sources=[pull_secret("corp-pull", "pull-secrets", ["registry.example.com"])],
        namespaces={namespace: labels, "team-ok": {}},
    )
    forged = AdmissionRequest("Pod", "CREATE", namespace, pod([IMAGE], namespace=namespace))
    decided = plan(policy, forged, view)
    assert decided.ops == ()
    assert decided.copies == ()
    assert why in decided.reason
    assert desired_copies(policy, namespace, labels, view) == {}
    assert [a.spec.namespace for a in reconcile(policy, view) if isinstance(a, CreateCopy)] == [
        "team-ok"
    ]


@pytest.mark.parametrize(
    ("kind", "metadata"),
    [
        pytest.param("Pod", {"labels": OPTED_OUT}, id="a pod opted out by label"),
        pytest.param("Pod", {"annotations": OPTED_OUT}, id="a pod opted out by annotation"),
        pytest.param("ServiceAccount", {"labels": OPTED_OUT}, id="a ServiceAccount by label"),
        pytest.param("ServiceAccount", {"annotations": OPTED_OUT}, id="an SA by annotation"),
    ],
)
def test_an_opted_out_object_is_left_alone_even_when_posted_directly(
    kind: str, metadata: dict[str, Any]
) -> None:
    policy = load_policy(
        POLICY_TEXT.replace("corp-pull]}", "corp-pull], serviceAccounts: {names: ['*']}}")
    )
    view = cluster(
        sources=[pull_secret("corp-pull", "pull-secrets", ["registry.example.com"])],
        namespaces={"team-a": {}},
    )
    obj = pod([IMAGE]) if kind == "Pod" else service_account()
    obj["metadata"].update(metadata)
    decided = plan(policy, AdmissionRequest(kind, "CREATE", "team-a", obj), view)
    assert decided.ops == ()
    assert decided.copies == ()
    assert "opted out" in decided.reason


def test_an_opt_out_value_other_than_false_does_not_opt_out() -> None:
    policy = load_policy(POLICY_TEXT)
    view = cluster(
        sources=[pull_secret("corp-pull", "pull-secrets", ["registry.example.com"])],
        namespaces={"team-a": {"pullsecret-injector.io/inject": "true"}},
    )
    decided = plan(policy, AdmissionRequest("Pod", "CREATE", "team-a", pod([IMAGE])), view)
    assert decided.ops


def test_settings_carry_the_release_namespace_and_the_chart_exclusions() -> None:
    settings = Settings.from_env(
        {
            "PSI_POLICY_NAMESPACE": "psi",
            "PSI_EXCLUDE_NAMESPACES": "a, b,",
            "PSI_OPT_OUT_LABEL": "example.com/skip",
        }
    )
    exclusions = settings.exclusions
    assert {"psi", "a", "b", "kube-system"} <= set(exclusions.namespaces)
    assert exclusions.namespace("c", {"example.com/skip": "false"}) is not None
    assert exclusions.namespace("c", OPTED_OUT) is None  # only the configured key counts
