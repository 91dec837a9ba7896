"""reach: which gate keeps a namespace out — the webhook configuration, or each rule — and why."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from webhook.core.policy import load_policy
from webhook.core.reach import Miss, rule_miss, webhook_exclusion, webhook_scope

POLICY = load_policy(
    """\
apiVersion: pullsecret-injector.io/v1
kind: PullSecretPolicy
defaults: {sourceNamespace: pull-secrets}
rules:
  - name: payments
    registries: [quay.io/payments]
    secrets: [payments-pull]
    namespaces:
      include: ["payments-*"]
      exclude: ["payments-sandbox-*"]
      selector:
        matchLabels: {team: payments}
        matchExpressions: [{key: env, operator: NotIn, values: [dev]}]
"""
)

# As the chart renders it (release namespace psi, one extra exclusion, an extra selector).
CHART_CONFIGURATION: dict[str, Any] = {
    "metadata": {"name": "psi-pullsecret-injector"},
    "webhooks": [
        {
            "name": "psi-pullsecret-injector.psi.pullsecret-injector.io",
            "namespaceSelector": {
                "matchExpressions": [
                    {
                        "key": "kubernetes.io/metadata.name",
                        "operator": "NotIn",
                        "values": ["psi", "kube-system", "legacy"],
                    },
                    {
                        "key": "pullsecret-injector.io/inject",
                        "operator": "NotIn",
                        "values": ["false"],
                    },
                    {"key": "tier", "operator": "In", "values": ["apps"]},
                ]
            },
        }
    ],
}


@pytest.mark.parametrize(
    ("namespace", "labels", "expected"),
    [
        pytest.param("team-a", {"tier": "apps"}, None, id="a namespace the selector admits"),
        pytest.param(
            "kube-system",
            {"tier": "apps"},
            Miss("excluded-by-name", "kubernetes.io/metadata.name notin (kube-system,legacy,psi)"),
            id="kube-system is excluded by name",
        ),
        pytest.param(
            "legacy",
            {"tier": "apps"},
            Miss("excluded-by-name", "kubernetes.io/metadata.name notin (kube-system,legacy,psi)"),
            id="excludeNamespaces is excluded by name",
        ),
        pytest.param(
            "team-b",
            {"tier": "apps", "pullsecret-injector.io/inject": "false"},
            Miss("opted-out", "label pullsecret-injector.io/inject=false"),
            id="the opt-out label opts out",
        ),
        pytest.param(
            "team-c",
            {},
            Miss("excluded-by-label", "selector tier in (apps) not matched: no label tier"),
            id="an extra selector excludes by label, naming the missing label",
        ),
        pytest.param(
            "team-d",
            {"tier": "batch"},
            Miss("excluded-by-label", "selector tier in (apps) not matched: tier=batch"),
            id="an extra selector excludes by label, naming the label's value",
        ),
    ],
)
def test_the_webhook_configuration_says_why_it_skips_a_namespace(
    namespace: str, labels: Mapping[str, str], expected: Miss | None
) -> None:
    scope = webhook_scope(CHART_CONFIGURATION)

    assert webhook_exclusion(scope, namespace, labels) == expected


def test_a_configuration_without_selector_reaches_every_namespace() -> None:
    scope = webhook_scope({"metadata": {"name": "x"}, "webhooks": [{"name": "w"}]})

    assert webhook_exclusion(scope, "kube-system", {}) is None


def test_an_expression_it_cannot_read_is_reported_not_guessed() -> None:
    scope = webhook_scope(
        {
            "webhooks": [
                {"namespaceSelector": {"matchExpressions": [{"key": "a", "operator": "Gt"}]}}
            ]
        }
    )

    assert scope.requirements == ()
    assert len(scope.unreadable) == 1


@pytest.mark.parametrize(
    ("namespace", "labels", "expected"),
    [
        pytest.param("payments-a", {"team": "payments"}, None, id="the rule reaches it"),
        pytest.param(
            "payments-sandbox-1",
            {"team": "payments"},
            Miss("excluded-by-name", "exclude 'payments-sandbox-*'", "payments"),
            id="an exclude glob wins over everything",
        ),
        pytest.param(
            "billing",
            {"team": "payments"},
            Miss("not-included", "include 'payments-*'", "payments"),
            id="a name no include glob matches",
        ),
        pytest.param(
            "payments-b",
            {},
            Miss(
                "excluded-by-label",
                "selector team in (payments) not matched: no label team",
                "payments",
            ),
            id="matchLabels not met",
        ),
        pytest.param(
            "payments-c",
            {"team": "payments", "env": "dev"},
            Miss("excluded-by-label", "selector env notin (dev) not matched: env=dev", "payments"),
            id="a matchExpression not met",
        ),
    ],
)
def test_a_rule_says_why_it_does_not_reach_a_namespace(
    namespace: str, labels: Mapping[str, str], expected: Miss | None
) -> None:
    assert rule_miss(POLICY.rules[0], namespace, labels) == expected


def test_a_miss_reads_as_one_line_naming_the_gate() -> None:
    assert str(Miss("excluded-by-name", "exclude 'x-*'", "corp")) == (
        "excluded by name (rule corp: exclude 'x-*')"
    )
    assert str(Miss("opted-out", "label pullsecret-injector.io/inject=false")) == (
        "opted out (webhook configuration: label pullsecret-injector.io/inject=false)"
    )
