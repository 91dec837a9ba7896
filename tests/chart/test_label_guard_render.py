"""The opt-in label guard (issue 16 §6): who may set the labels the policy's scopes select on.

A rule that reaches namespaces by label trusts whoever may label namespaces. With
``labelGuard.enabled`` the chart ships a ValidatingAdmissionPolicy refusing Namespace CREATE and
UPDATE that set, change or remove a guarded label, except for the allowed users and groups. The
guarded keys come from the policy's own selectors, so a new selector in the policy is guarded
by the next ``helm upgrade`` without anyone listing it. tests/e2e/test_label_guard.py runs the
rendered policy on the real API server; here the rendering is checked.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tests.chart.conftest import RELEASE, Chart

Objects = list[dict[str, Any]]
Render = Callable[..., Objects]

FULLNAME = f"{RELEASE}-pullsecret-injector"
GUARD = f"{FULLNAME}-namespace-labels"

POLICY: dict[str, Any] = {
    "defaults": {
        "sourceNamespace": "pull-secrets",
        "namespaces": {"selector": {"matchLabels": {"tenancy": "managed"}}},
    },
    "rules": [
        {
            "name": "payments",
            "registries": ["payments.example.com"],
            "secrets": ["payments-pull"],
            "namespaces": {"selector": {"matchLabels": {"team": "payments"}}},
        },
        {
            "name": "corp",
            "registries": ["registry.example.com"],
            "secrets": ["corp-pull"],
            "namespaces": {
                "include": ["team-*"],
                "selector": {
                    "matchExpressions": [
                        {"key": "env", "operator": "NotIn", "values": ["prod"]},
                        {"key": "kubernetes.io/metadata.name", "operator": "Exists"},
                    ]
                },
            },
        },
        {"name": "public", "registries": ["public.example.com"], "secrets": ["public-pull"]},
    ],
    "imagePullerGrants": [
        {
            "name": "shared",
            "imageProjects": ["shared-images"],
            "pullers": {"selector": {"matchLabels": {"pulls-shared": "yes"}}},
        }
    ],
}
ENABLED = {"policy": POLICY, "labelGuard": {"enabled": True}}


def guard(objects: Objects) -> dict[str, Any]:
    (policy,) = [
        o
        for o in objects
        if o["kind"] == "ValidatingAdmissionPolicy" and o["metadata"]["name"] == GUARD
    ]
    return policy


def variable(policy: dict[str, Any], name: str) -> str:
    expression: str = next(
        v["expression"] for v in policy["spec"]["variables"] if v["name"] == name
    )
    return expression


def guarded_keys(policy: dict[str, Any]) -> list[str]:
    keys: list[str] = json.loads(variable(policy, "guarded"))
    return keys


def test_the_label_guard_is_off_by_default(render: Render) -> None:
    objects = render({"policy": POLICY})
    names = {o["metadata"]["name"] for o in objects}
    assert GUARD not in names


def test_it_guards_every_label_the_policys_scopes_select_on(render: Render) -> None:
    policy = guard(render(ENABLED))
    # defaults, matchLabels, matchExpressions and image-puller pullers; sorted, each once; the
    # name label is the API server's own (it always equals the name) and is left out.
    assert guarded_keys(policy) == ["env", "pulls-shared", "team", "tenancy"]


def test_extra_labels_are_guarded_too(render: Render) -> None:
    values = {**ENABLED, "labelGuard": {"enabled": True, "labels": ["cost-center", "team"]}}
    assert guarded_keys(guard(render(values))) == [
        "cost-center",
        "env",
        "pulls-shared",
        "team",
        "tenancy",
    ]


def test_namespace_creates_and_updates_are_checked_and_refused_with_the_rule_name(
    render: Render,
) -> None:
    objects = render(ENABLED)
    spec = guard(objects)["spec"]
    assert spec["failurePolicy"] == "Fail"
    assert spec["matchConstraints"]["resourceRules"] == [
        {
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "operations": ["CREATE", "UPDATE"],
            "resources": ["namespaces"],
        }
    ]
    (validation,) = spec["validations"]
    assert validation["reason"] == "Forbidden"
    assert "pullsecret-injector rule guarded-namespace-labels: " in validation["messageExpression"]
    # Setting, changing and removing all count: both sides of the label map are compared.
    assert "variables.before[?k] != variables.after[?k]" in variable(guard(objects), "changed")
    (binding,) = [
        o
        for o in objects
        if o["kind"] == "ValidatingAdmissionPolicyBinding" and o["metadata"]["name"] == GUARD
    ]
    assert binding["spec"] == {"policyName": GUARD, "validationActions": ["Deny"]}


def test_cluster_admins_are_allowed_by_default_and_the_lists_are_configurable(
    render: Render,
) -> None:
    (default,) = guard(render(ENABLED))["spec"]["matchConditions"]
    assert '["system:masters"]' in default["expression"]
    values = {
        **ENABLED,
        "labelGuard": {
            "enabled": True,
            "allowedGroups": ["platform-admins"],
            "allowedUsers": ["system:serviceaccount:argocd:argocd-application-controller"],
        },
    }
    (condition,) = guard(render(values))["spec"]["matchConditions"]
    assert '["platform-admins"]' in condition["expression"]
    assert (
        '["system:serviceaccount:argocd:argocd-application-controller"]'
        in (condition["expression"])
    )
    assert "system:masters" not in condition["expression"]


def test_with_nothing_to_guard_the_install_fails_saying_what_to_list(chart: Chart) -> None:
    no_selectors = {
        "policy": {
            "defaults": {"sourceNamespace": "pull-secrets"},
            "rules": [{"name": "corp", "registries": ["r.example.com"], "secrets": ["corp-pull"]}],
        },
        "labelGuard": {"enabled": True},
    }
    assert "labelGuard.enabled but no label to guard" in chart.error(no_selectors)


def test_with_an_existing_policy_configmap_the_labels_are_listed_by_hand(chart: Chart) -> None:
    values = {
        "policy": {"apiVersion": "pullsecret-injector.io/v1", "kind": "PullSecretPolicy"},
        "existingPolicyConfigMap": "my-policy",
        "rbac": {"extraSourceNamespaces": ["pull-secrets"], "managedSecretNames": ["corp-pull"]},
    }
    message = chart.error({**values, "labelGuard": {"enabled": True}})
    assert "existingPolicyConfigMap hides them" in message
    objects = chart.render({**values, "labelGuard": {"enabled": True, "labels": ["team"]}})
    assert guarded_keys(guard(objects)) == ["team"]


def test_the_label_guard_needs_validating_admission_policies(chart: Chart) -> None:
    values = {**ENABLED, "admissionPolicy": {"enabled": False}}
    stderr = chart.error(values, extra_args=("--kube-version", "1.29.0"))
    assert "labelGuard.enabled needs Kubernetes 1.30 or later" in stderr


def test_the_guard_lives_at_cluster_scope_with_the_chart_labels(render: Render) -> None:
    policy = guard(render(ENABLED))
    assert "namespace" not in policy["metadata"]
    assert policy["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE
