"""What a policy implies for RBAC, and ``validate-policy --output json`` that prints it.

The chart's Roles are checked against these facts for every policy fixture (tests/chart), so
the facts themselves must apply the policy's defaults exactly as the webhook does.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from webhook.core.policy import load_policy
from webhook.core.policyfacts import policy_facts

HEAD = "apiVersion: pullsecret-injector.io/v1\nkind: PullSecretPolicy\n"

POLICY = (
    HEAD
    + """\
defaults: {sourceNamespace: pull-secrets}
rules:
  - name: corp
    registries: [registry.example.com]
    secrets: [corp-pull, {name: sso-pull, namespace: sso, targetName: sso-copy}]
  - name: builders
    secrets: [{name: corp-pull}]
    serviceAccounts: {names: ["builder-*"], backfill: true}
imagePullerGrants:
  - name: shared
    imageProjects: [shared-images]
    pullers: {include: ["team-*"], exclude: [team-x], selector: {matchLabels: {tier: web}}}
    serviceAccount: deployer
"""
)


def cli() -> list[str]:
    script = Path(sys.executable).with_name("pullsecret-injector")
    return [str(script)] if script.exists() else [sys.executable, "-m", "webhook.cli"]


def test_facts_apply_the_default_namespace_the_shorthand_and_target_names() -> None:
    facts = policy_facts(load_policy(POLICY))

    assert facts.source_namespaces == ("pull-secrets", "sso")
    assert dict(facts.source_secrets) == {"pull-secrets": ("corp-pull",), "sso": ("sso-pull",)}
    # The copy of sso/sso-pull is called sso-copy in target namespaces, never sso-pull.
    assert facts.managed_names == ("corp-pull", "sso-copy")
    assert facts.backfill is True
    assert [g.name for g in facts.image_puller_grants] == ["shared"]


def test_no_rule_backfills_means_no_backfill_fact() -> None:
    facts = policy_facts(
        load_policy(HEAD + "rules:\n  - {name: a, secrets: [{name: s, namespace: n}]}\n")
    )
    assert facts.backfill is False
    assert facts.image_puller_grants == ()


def test_an_empty_policy_implies_nothing() -> None:
    facts = policy_facts(load_policy(HEAD + "defaults: {sourceNamespace: ps}\nrules: []\n"))
    # A default source namespace alone is not a source: no rule reads from it.
    assert facts.source_namespaces == ()
    assert facts.to_json() == {
        "rules": 0,
        "sourceNamespaces": [],
        "sourceSecrets": {},
        "managedNames": [],
        "backfill": False,
        "imagePullerGrants": [],
    }


def test_validate_policy_json_prints_the_facts(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)

    result = subprocess.run(
        [*cli(), "validate-policy", "--output", "json", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "valid": True,
        "rules": 2,
        "sourceNamespaces": ["pull-secrets", "sso"],
        "sourceSecrets": {"pull-secrets": ["corp-pull"], "sso": ["sso-pull"]},
        "managedNames": ["corp-pull", "sso-copy"],
        "backfill": True,
        "imagePullerGrants": [
            {
                "name": "shared",
                "imageProjects": ["shared-images"],
                "pullers": {
                    "include": ["team-*"],
                    "exclude": ["team-x"],
                    "selector": [{"key": "tier", "operator": "In", "values": ["web"]}],
                },
                "serviceAccount": "deployer",
            }
        ],
    }


@pytest.mark.parametrize("output", [[], ["--output", "text"]], ids=["by default", "when asked"])
def test_validate_policy_text_stays_the_default(tmp_path: Path, output: list[str]) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)

    result = subprocess.run(
        [*cli(), "validate-policy", *output, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    assert result.stdout == (
        f"{path}: valid, 2 rule(s); source namespaces: pull-secrets, sso; "
        "managed secret names: corp-pull, sso-copy\n"
    )


def test_validate_policy_json_reports_errors_as_json_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(
        HEAD + "rules:\n  - {name: a, registires: [x], secrets: [{name: s, namespace: n}]}\n"
    )

    result = subprocess.run(
        [*cli(), "validate-policy", "--output", "json", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 1
    assert json.loads(result.stdout) == {
        "valid": False,
        "errors": [
            {"path": "rules[0].registires", "message": "unknown field (did you mean 'registries'?)"}
        ],
    }
    assert "1 error(s)" in result.stderr
