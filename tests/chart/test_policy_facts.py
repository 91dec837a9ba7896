"""The chart's reading of the policy, checked against Python's for every policy in the repository.

Helm derives the RBAC and the admission policies from the ``policy`` value at render time (the
``policyFacts`` helper in ``_policy.tpl``); ``pullsecret-injector validate-policy --output
json`` (``webhook/core/policyfacts.py``) derives the same facts from the parsed policy, applying
defaults exactly as the webhook does. For each valid policy fixture (``policy_fixtures``), the
chart is rendered with that policy as values and what a user would notice is compared: which
namespaces get a source Role and which Secrets it names, which copy names the components may
read and write, whether backfill and image-puller grants are there.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.conftest import RELEASE, Chart, RenderResult
from tests.chart.policy_fixtures import PolicyFixture, collect
from webhook.cli import main as cli
from webhook.core.policy import load_policy
from webhook.core.policyfacts import policy_facts

FULLNAME = f"{RELEASE}-pullsecret-injector"
FIXTURES = collect()
IDS = [f"{i:02d} {f.origin}" for i, f in enumerate(FIXTURES)]


def test_the_fixtures_cover_the_repository() -> None:
    """A collector that silently found nothing would make the comparison vacuous."""
    origins = {f.origin.split(" ")[0] for f in FIXTURES}
    assert {"README", "values.yaml", "values-openshift.yaml", "tools.demo"} <= origins
    assert sum(f.origin.startswith("tests.unit") for f in FIXTURES) >= 40
    facts = [_python_facts(yaml.safe_dump(f.document)) for f in FIXTURES]
    # The shapes that matter for RBAC all occur: several source namespaces, renamed copies,
    # backfill, image-puller grants, and no rules at all.
    assert any(len(f["sourceNamespaces"]) > 1 for f in facts)
    assert any(f["backfill"] for f in facts)
    assert any(f["imagePullerGrants"] for f in facts)
    assert any(not f["managedNames"] for f in facts)
    assert any(
        set(f["managedNames"]) - {n for names in f["sourceSecrets"].values() for n in names}
        for f in facts
    )


def _python_facts(text: str) -> dict[str, Any]:
    """What ``validate-policy --output json`` prints for a policy text."""
    path = Path(f"/dev/shm/psi-facts-{abs(hash(text))}.yaml")
    path.write_text(text)
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            code = cli(["validate-policy", "--output", "json", str(path)])
    finally:
        path.unlink()
    assert code == 0, out.getvalue()
    facts: dict[str, Any] = json.loads(out.getvalue())
    return facts


def _as_values(document: Mapping[str, Any]) -> dict[str, Any]:
    """The fixture as the `policy` value, exactly: Helm merges it into the chart's default
    policy key by key, so keys the fixture lacks but the default has are set to null."""
    policy = json.loads(json.dumps(document, default=str))
    if policy.get("rules") is None:
        # `rules:` with nothing after it is null, which Helm deletes along with the default
        # (the chart refuses that with a message); the policy means the same as `rules: []`.
        policy["rules"] = []
    defaults = policy.get("defaults")
    if defaults is None:
        policy["defaults"] = None
    elif "sourceNamespace" not in defaults:
        defaults["sourceNamespace"] = None
    # By name everywhere, so the Roles show which source Secrets the chart found. (The pure
    # function, not the CLI: this runs in render threads, and the CLI prints to sys.stdout.)
    sources = policy_facts(load_policy(yaml.safe_dump(document))).source_namespaces
    return {"policy": policy, "rbac": {"sourceSecretsByName": list(sources)}}


@pytest.fixture(scope="session")
def renders(chart: Chart) -> dict[int, RenderResult]:
    """All fixtures rendered up front, two at a time (each render is one helm process)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = pool.map(lambda f: chart.run(_as_values(f.document)), FIXTURES)
        return dict(enumerate(results))


def _rules(objects: list[dict[str, Any]], kind: str, name: str) -> list[dict[str, Any]]:
    role = next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)
    rules: list[dict[str, Any]] = role["rules"]
    return rules


def _secret_names(rules: list[dict[str, Any]], verb: str) -> list[str] | None:
    """resourceNames of the rule granting ``verb`` on Secrets by name (None: no such rule)."""
    for rule in rules:
        if "secrets" in rule["resources"] and verb in rule["verbs"] and rule.get("resourceNames"):
            names: list[str] = rule["resourceNames"]
            return names
    return None


def _grants(rules: list[dict[str, Any]], verb: str, resource: str) -> bool:
    return any(resource in r["resources"] and verb in r["verbs"] for r in rules)


@pytest.mark.parametrize("index", range(len(FIXTURES)), ids=IDS)
def test_the_chart_derives_what_python_derives(
    renders: dict[int, RenderResult], index: int
) -> None:
    fixture: PolicyFixture = FIXTURES[index]
    result = renders[index]
    assert result.returncode == 0, result.stderr
    objects = result.objects
    configmap = next(o for o in objects if o["kind"] == "ConfigMap")
    rendered = configmap["data"]["policy.yaml"]
    # The chart installs the fixture itself, not a merge of it with the chart's defaults.
    assert load_policy(rendered) == load_policy(yaml.safe_dump(fixture.document))
    facts = _python_facts(rendered)

    for component in ("webhook", "controller"):
        name = f"{FULLNAME}-{component}-source"
        roles = {
            o["metadata"]["namespace"]: o
            for o in objects
            if o["kind"] == "Role" and o["metadata"]["name"] == name
        }
        assert sorted(roles) == facts["sourceNamespaces"], component
        for namespace, role in roles.items():
            assert _secret_names(role["rules"], "get") == facts["sourceSecrets"][namespace]

    managed = facts["managedNames"] or None
    webhook = _rules(objects, "ClusterRole", f"{FULLNAME}-webhook")
    controller = _rules(objects, "ClusterRole", f"{FULLNAME}-controller")
    assert _secret_names(webhook, "watch") == managed
    assert _secret_names(controller, "delete") == managed
    assert _grants(controller, "patch", "serviceaccounts") is facts["backfill"]
    assert _grants(controller, "create", "rolebindings") is bool(facts["imagePullerGrants"])

    secrets_policy = next(
        o
        for o in objects
        if o["kind"] == "ValidatingAdmissionPolicy"
        and o["metadata"]["name"] == f"{FULLNAME}-secrets"
    )
    names = next(v for v in secrets_policy["spec"]["variables"] if v["name"] == "managedNames")
    # `<controller?> ? [controller names] : [webhook names]`; no ledger under helm template.
    lists = [json.loads(part) for part in _json_lists(names["expression"])]
    assert lists == [facts["managedNames"], facts["managedNames"]]


def _json_lists(expression: str) -> list[str]:
    out, depth, start = [], 0, 0
    for position, char in enumerate(expression):
        if char == "[":
            depth, start = depth + 1, (position if depth == 0 else start)
        elif char == "]":
            depth -= 1
            if depth == 0:
                out.append(expression[start : position + 1])
    return out
