"""explain(), called as the command line calls it with what it read from a cluster."""

from __future__ import annotations

from tests.unit.factories import pod, pull_secret
from webhook.core.explain import SecretInput, explain, render_text, resource_kind
from webhook.core.policy import load_policy
from webhook.core.reach import webhook_scope

POLICY = load_policy(
    """\
apiVersion: pullsecret-injector.io/v1
kind: PullSecretPolicy
defaults: {sourceNamespace: pull-secrets}
rules:
  - {name: corp, registries: [registry.example.com], secrets: [corp-pull]}
  - {name: hub, secrets: [hub-pull]}
"""
)
OPTED_OUT = webhook_scope(
    {
        "metadata": {"name": "psi"},
        "webhooks": [
            {
                "namespaceSelector": {
                    "matchExpressions": [
                        {"key": "pullsecret-injector.io/inject", "operator": "NotIn",
                         "values": ["false"]},
                    ]
                }
            }
        ],
    }
)  # fmt: skip
SECRETS = [SecretInput(pull_secret("corp-pull", "pull-secrets", ["registry.example.com"]), "c")]


def test_a_namespace_the_webhook_skips_is_noted_before_what_the_policy_would_do() -> None:
    result = explain(
        POLICY,
        pod(["registry.example.com/app:1"], namespace="sandbox"),
        namespace="sandbox",
        namespace_labels={"pullsecret-injector.io/inject": "false"},
        secrets=SECRETS,
        webhook=OPTED_OUT,
    )

    assert result.notes == (
        "namespace sandbox is opted out (webhook configuration: label "
        "pullsecret-injector.io/inject=false): the API server never calls the webhook for it; "
        "what follows is what the webhook would answer a review posted anyway",
    )
    assert result.image_pull_secrets == ()  # the webhook itself leaves it alone too
    assert "opted out" in result.plan.reason


def test_a_rule_matching_by_secrets_not_given_is_named_as_not_checked() -> None:
    result = explain(
        POLICY, pod(["nginx:1.27"]), namespace="team-a", namespace_labels={}, secrets=SECRETS
    )

    assert "    not checked: hub match(es) by their secrets' auths keys, and those secrets " in (
        render_text(result)
    )


def test_kubectl_resource_names_are_understood() -> None:
    assert [resource_kind(n) for n in ("po", "pods", "pod.v1", "sa", "deploy", "cj", "cm")] == [
        "Pod", "Pod", "Pod", "ServiceAccount", "Deployment", "CronJob", None
    ]  # fmt: skip
