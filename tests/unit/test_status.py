"""status: each namespace's copies, and the status document, decided from a cluster view.

Each case is one namespace in a cluster view filled by hand, checked the way an operator
reads the line: what is expected and present, what is wrong, and why a namespace is out of
scope. Copies that are "up to date" are rendered by ``render_copy`` itself, so a case cannot
pass by agreeing with a made-up hash.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from tests.unit.factories import cluster, pull_secret, raw_secret, service_account
from webhook.core.clusterview import ClusterStore
from webhook.core.conventions import HASH_ANNOTATION
from webhook.core.copies import desired_copies, render_copy
from webhook.core.policy import load_policy
from webhook.core.reach import webhook_scope
from webhook.core.status import (
    ClusterStatus,
    NamespaceReport,
    PolicyReport,
    SourceState,
    assess,
    parse_status_document,
    policy_report,
    render_document,
    render_table,
    source_states,
    status_document,
)
from webhook.core.sync import service_account_state

PS = "pull-secrets"

POLICY = load_policy(
    f"""\
apiVersion: pullsecret-injector.io/v1
kind: PullSecretPolicy
defaults: {{sourceNamespace: {PS}}}
rules:
  - name: corp
    registries: [registry.example.com]
    secrets: [corp-pull]
    namespaces: {{include: ["team-*"], exclude: ["team-sandbox"]}}
    serviceAccounts: {{names: [default], backfill: true}}
  - name: builders
    registries: [builds.example.com]
    secrets: [builds-pull]
    namespaces: {{include: ["team-*"]}}
    serviceAccounts: {{names: ["builder-*"]}}
  - name: vendor
    registries: [vendor.example.com]
    secrets: [vendor-pull]
    namespaces: {{selector: {{matchLabels: {{vendor: "yes"}}}}}}
  - name: broken
    registries: [broken.example.com]
    secrets: [broken-pull]
    namespaces: {{include: ["broken-*"]}}
""",
    generation="42",
)

SOURCES = [
    pull_secret("corp-pull", PS, ["registry.example.com"]),
    pull_secret("builds-pull", PS, ["builds.example.com"]),
    raw_secret("broken-pull", PS, secret_type="Opaque", data={"token": "ZmFrZQ=="}),
]  # vendor-pull is missing

CONFIGURATION = webhook_scope(
    {
        "metadata": {"name": "psi-pullsecret-injector"},
        "webhooks": [
            {
                "name": "psi-pullsecret-injector.psi.pullsecret-injector.io",
                "namespaceSelector": {
                    "matchExpressions": [
                        {
                            "key": "kubernetes.io/metadata.name",
                            "operator": "NotIn",
                            "values": ["psi", "kube-system"],
                        },
                        {
                            "key": "pullsecret-injector.io/inject",
                            "operator": "NotIn",
                            "values": ["false"],
                        },
                    ]
                },
            }
        ],
    }
)


def good_copy(name: str, namespace: str, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The copy the controller would write, byte for byte."""
    store = cluster(SOURCES, {namespace: dict(labels or {})})
    spec = desired_copies(POLICY, namespace, store.namespace_labels(namespace) or {}, store)[name]
    source = store.source_secret(spec.source_namespace, spec.source_name)
    assert source is not None
    return render_copy(spec, source)


def stale_copy(name: str, namespace: str) -> dict[str, Any]:
    """Ours, but written from an older version of the source."""
    copy = good_copy(name, namespace)
    copy["metadata"]["annotations"][HASH_ANNOTATION] = "0" * 32
    return copy


def moved(secret: dict[str, Any], namespace: str) -> dict[str, Any]:
    """The same Secret in another namespace (a copy left behind by an earlier scope)."""
    return {**secret, "metadata": {**secret["metadata"], "namespace": namespace}}


def foreign(name: str, namespace: str) -> dict[str, Any]:
    return pull_secret(name, namespace, ["registry.example.com"])


@dataclass(frozen=True)
class Case:
    it: str
    namespace: str
    labels: Mapping[str, str] = field(default_factory=dict)
    targets: Sequence[dict[str, Any]] = ()
    accounts: Sequence[dict[str, Any]] = ()
    expected: Mapping[str, Any] = field(default_factory=dict)
    """NamespaceReport attributes (and ``problems``/``reason``) and their values."""


def both(namespace: str) -> list[dict[str, Any]]:
    return [good_copy("corp-pull", namespace), good_copy("builds-pull", namespace)]


CASES = [
    Case(
        "a namespace holding every copy, up to date, is all good",
        "team-a",
        targets=both("team-a"),
        expected={
            "rules": ("corp", "builders"),
            "expected": ("corp-pull", "builds-pull"),
            "present": ("corp-pull", "builds-pull"),
            "problems": (),
        },
    ),
    Case(
        "a copy not created yet is missing",
        "team-a",
        targets=[good_copy("corp-pull", "team-a")],
        expected={"present": ("corp-pull",), "missing": ("builds-pull",)},
    ),
    Case(
        "a copy whose content hash differs from the desired copy's is stale",
        "team-a",
        targets=[stale_copy("corp-pull", "team-a"), good_copy("builds-pull", "team-a")],
        expected={"stale": ("corp-pull",), "problems": ("stale corp-pull",)},
    ),
    Case(
        "a Secret we do not own holding a managed name is foreign, and counts as present",
        "team-a",
        targets=[foreign("corp-pull", "team-a"), good_copy("builds-pull", "team-a")],
        expected={
            "present": ("corp-pull", "builds-pull"),
            "foreign": ("corp-pull",),
            "stale": (),
            "problems": ("not ours: corp-pull",),
        },
    ),
    Case(
        "a copy no rule wants here any more is a leftover",
        "team-sandbox",
        labels={"vendor": "yes"},
        targets=[moved(good_copy("corp-pull", "team-a"), "team-sandbox")],
        expected={"rules": ("builders", "vendor"), "leftover": ("corp-pull",)},
    ),
    Case(
        "a rule whose source is missing cannot be copied, and says which source",
        "other",
        labels={"vendor": "yes"},
        expected={
            "expected": ("vendor-pull",),
            "missing": (),
            "unsourced": (("vendor-pull", "source pull-secrets/vendor-pull not found"),),
            "problems": ("cannot copy vendor-pull: source pull-secrets/vendor-pull not found",),
        },
    ),
    Case(
        "a malformed source cannot be copied either",
        "broken-1",
        expected={
            "unsourced": (
                ("broken-pull", "source pull-secrets/broken-pull is not a usable pull secret"),
            ),
        },
    ),
    Case(
        "a backfilled ServiceAccount lacking its secret is a problem",
        "team-a",
        targets=both("team-a"),
        accounts=[service_account("default", "team-a")],
        expected={
            "problems": ("serviceaccounts not linked: default (corp-pull)",),
            "remarks": (),
        },
    ),
    Case(
        "a ServiceAccount linked at creation only is a remark, not a problem",
        "team-a",
        targets=both("team-a"),
        accounts=[
            service_account("default", "team-a", pull_secrets=["corp-pull"]),
            service_account("builder-1", "team-a"),
            service_account("other", "team-a"),
        ],
        expected={
            "problems": (),
            "remarks": (
                "serviceaccount builder-1 lacks builds-pull (its rule links at creation only; "
                "set serviceAccounts.backfill to link existing ones)",
            ),
        },
    ),
    Case(
        "a namespace excluded by the webhook configuration is out of scope, by name",
        "kube-system",
        expected={
            "in_scope": False,
            "reason": "excluded by name (webhook configuration: "
            "kubernetes.io/metadata.name notin (kube-system,psi))",
            "problems": (),
        },
    ),
    Case(
        "an opted-out namespace is out of scope, whatever its copies",
        "team-b",
        labels={"pullsecret-injector.io/inject": "false"},
        targets=[stale_copy("corp-pull", "team-b")],
        expected={
            "in_scope": False,
            "reason": "opted out (webhook configuration: "
            "label pullsecret-injector.io/inject=false)",
            "problems": (),
        },
    ),
    Case(
        "a namespace no rule reaches is out of scope, with every rule's reason",
        "billing",
        expected={
            "in_scope": False,
            "reason": "no rule reaches it: corp not included by name (include 'team-*'); "
            "builders not included by name (include 'team-*'); "
            "vendor excluded by label (selector vendor in (yes) not matched: no label vendor); "
            "broken not included by name (include 'broken-*')",
        },
    ),
]


def view(case: Case) -> ClusterStore:
    store = cluster(SOURCES, {case.namespace: dict(case.labels)}, case.targets)
    store.put_namespace("unrelated", {"kubernetes.io/metadata.name": "unrelated"})
    return store


@pytest.mark.parametrize("case", CASES, ids=[c.it for c in CASES])
def test_a_namespace_is_reported_as_an_operator_reads_it(case: Case) -> None:
    accounts = [service_account_state(a) for a in case.accounts]

    reports = assess(POLICY, view(case), accounts, CONFIGURATION, namespaces={case.namespace})

    assert [r.namespace for r in reports] == [case.namespace]
    report = reports[0]
    for attribute, value in case.expected.items():
        assert getattr(report, attribute) == value, attribute


def test_every_namespace_of_the_view_gets_one_line_in_name_order() -> None:
    store = cluster(SOURCES, {"team-b": {}, "kube-system": {}, "team-a": {}})

    reports = assess(POLICY, store, (), CONFIGURATION)

    assert [r.namespace for r in reports] == ["kube-system", "team-a", "team-b"]


def test_without_the_webhook_configuration_the_releases_own_exclusions_still_decide() -> None:
    store = cluster(
        SOURCES, {"team-a": {"pullsecret-injector.io/inject": "false"}, "kube-system": {}}
    )

    system, opted_out = assess(POLICY, store, (), webhook=None)

    assert not opted_out.in_scope
    assert str(opted_out.out_of_scope[0]) == (
        "opted out (exclusions: namespace team-a is opted out "
        "(pullsecret-injector.io/inject=false))"
    )
    assert not system.in_scope
    assert "kube-system is always excluded" in str(system.out_of_scope[0])


def test_a_policy_without_rules_leaves_every_namespace_out_of_scope_and_says_so() -> None:
    (report,) = assess(load_policy(_EMPTY), cluster(namespaces={"team-a": {}}), ())

    assert not report.in_scope
    assert report.reason == "no rule reaches it: the policy has no rules"


_EMPTY = "apiVersion: pullsecret-injector.io/v1\nkind: PullSecretPolicy\nrules: []\n"


# -- the status document ------------------------------------------------------------------------


def test_source_states_say_present_missing_malformed_and_unseen_without_secret_data() -> None:
    store = cluster(SOURCES)

    states = source_states(
        POLICY,
        store,
        {(PS, "vendor-pull"): ("forbidden", "the controller's RBAC does not allow reading it")},
    )

    by_name = {s.name: s for s in states}
    assert {n: s.state for n, s in by_name.items()} == {
        "corp-pull": "present",
        "builds-pull": "present",
        "broken-pull": "malformed",
        "vendor-pull": "forbidden",
    }
    assert by_name["broken-pull"].reason
    assert "ZmFrZQ" not in json.dumps([s.reason for s in states])


def test_an_unseen_source_not_in_the_unreadable_list_is_missing() -> None:
    states = source_states(POLICY, cluster(SOURCES))

    assert [s.state for s in states if s.name == "vendor-pull"] == ["missing"]


def test_the_document_round_trips_and_carries_no_data() -> None:
    report = policy_report(
        POLICY,
        configmap="psi/psi-pullsecret-injector-policy",
        key="policy.yaml",
        error="rules[0].registires: unknown field",
        rejected_generation="43",
        sources=source_states(POLICY, cluster(SOURCES)),
        reporter="controller-0",
    )

    document = status_document(report)
    text = json.dumps(document)

    assert parse_status_document(text) == report
    assert document["policy"] == {
        "configMap": "psi/psi-pullsecret-injector-policy",
        "key": "policy.yaml",
        "generation": "42",
        "valid": False,
        "error": "rules[0].registires: unknown field",
        "rejectedGeneration": "43",
        "rules": 4,
    }
    for source in SOURCES:
        for value in source["data"].values():
            assert value not in text


def test_with_no_policy_in_force_the_document_says_why() -> None:
    report = policy_report(
        None,
        configmap="psi/p",
        key="policy.yaml",
        error="policy ConfigMap psi/p not found",
        rejected_generation="",
        sources=(),
        reporter="c",
    )

    assert (report.generation, report.valid, report.rules) == ("", False, 0)
    assert report.problems == ("policy: policy ConfigMap psi/p not found",)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        pytest.param("{", "not JSON", id="not JSON"),
        pytest.param('{"kind": "ConfigMap"}', "not a PullSecretInjectorStatus", id="another kind"),
        pytest.param(
            '{"kind": "PullSecretInjectorStatus", "apiVersion": "pullsecret-injector.io/v2"}',
            "upgrade this command",
            id="a newer document",
        ),
    ],
)
def test_an_unreadable_document_says_why(text: str, error: str) -> None:
    from webhook.core.status import StatusDocumentError  # noqa: PLC0415

    with pytest.raises(StatusDocumentError, match=error):
        parse_status_document(text)


# -- the whole answer ------------------------------------------------------------------------------


def status_of(
    reports: Sequence[NamespaceReport], reported: PolicyReport | None = None
) -> ClusterStatus:
    return ClusterStatus(
        webhook_configuration="psi-pullsecret-injector",
        policy_configmap="psi/psi-pullsecret-injector-policy",
        policy_generation="42",
        reported=reported,
        status_configmap="psi/psi-pullsecret-injector-status",
        namespaces=tuple(reports),
    )


HEALTHY_REPORT = PolicyReport(
    configmap="psi/psi-pullsecret-injector-policy",
    key="policy.yaml",
    generation="42",
    valid=True,
    rules=4,
    sources=(SourceState(PS, "corp-pull", "present"),),
    reporter="controller-0",
    updated="2026-01-02T03:04:05Z",
)


def test_all_good_means_no_problem_anywhere() -> None:
    store = cluster(SOURCES, {"team-a": {}, "kube-system": {}}, both("team-a"))
    reports = assess(POLICY, store, (), CONFIGURATION)

    assert status_of(reports, HEALTHY_REPORT).ok
    assert not status_of(reports, PolicyReport("a/b", "k", "42", valid=False, error="x")).ok
    stale = assess(POLICY, cluster(SOURCES, {"team-a": {}}, [stale_copy("corp-pull", "team-a")]))
    assert not status_of(stale, HEALTHY_REPORT).ok


def test_a_source_the_controller_reports_missing_is_a_problem() -> None:
    reported = PolicyReport(
        "a/b", "k", "42", valid=True, sources=(SourceState(PS, "vendor-pull", "missing"),)
    )

    assert status_of((), reported).problems == ("source pull-secrets/vendor-pull: missing",)


def test_the_table_reads_like_kubectl_get() -> None:
    store = cluster(
        SOURCES,
        {"team-a": {}, "team-b": {}, "kube-system": {}},
        [*both("team-a"), stale_copy("corp-pull", "team-b"), foreign("builds-pull", "team-b")],
    )
    reports = assess(POLICY, store, (), CONFIGURATION)

    text = render_table(status_of(reports, HEALTHY_REPORT))

    assert text.splitlines() == [
        "Webhook:     psi-pullsecret-injector",
        "Policy:      psi/psi-pullsecret-injector-policy (generation 42)",
        "In force:    generation 42, 4 rule(s), valid",
        "Reported:    by controller-0 at 2026-01-02T03:04:05Z",
        "Sources:",
        "  pull-secrets/corp-pull   present",
        "",
        "NAMESPACE     STATUS       COPIES   STALE   FOREIGN   SA-UNLINKED   REASON",
        "kube-system   OutOfScope   -        -       -         -             excluded by name "
        "(webhook configuration: kubernetes.io/metadata.name notin (kube-system,psi))",
        "team-a        OK           2/2      0       0         0",
        "team-b        Degraded     2/2      1       1         0             "
        "stale corp-pull; not ours: builds-pull",
    ]


def test_wide_output_names_what_the_counts_count() -> None:
    store = cluster(SOURCES, {"team-b": {}}, [stale_copy("corp-pull", "team-b")])
    reports = assess(POLICY, store, (), CONFIGURATION)

    lines = render_table(status_of(reports, HEALTHY_REPORT), wide=True).splitlines()

    header, row = lines[-2].split(), lines[-1].split()
    assert header[6:] == [
        "RULES",
        "MISSING",
        "STALE-NAMES",
        "FOREIGN-NAMES",
        "SERVICEACCOUNTS",
        "REASON",
    ]
    assert row[:10] == [
        "team-b", "Degraded", "1/2", "1", "0", "0", "corp,builders", "builds-pull", "corp-pull", "-"
    ]  # fmt: skip


def test_without_a_published_document_the_header_says_so_and_shows_sources_as_read() -> None:
    status = ClusterStatus(
        webhook_configuration="w",
        policy_configmap="psi/p",
        policy_generation="7",
        status_configmap="psi/w-status",
        sources=(SourceState(PS, "corp-pull", "missing"),),
    )

    text = render_table(status)

    assert "no status published (psi/w-status not found" in text
    assert "pull-secrets/corp-pull   missing" in text
    assert not status.ok


def test_the_document_output_has_every_fact_of_the_table() -> None:
    store = cluster(SOURCES, {"team-b": {}, "kube-system": {}}, [stale_copy("corp-pull", "team-b")])
    status = status_of(assess(POLICY, store, (), CONFIGURATION), HEALTHY_REPORT)

    document = render_document(status)

    assert document["ok"] is False
    assert document["reported"]["policy"]["generation"] == "42"
    by_name = {n["name"]: n for n in document["namespaces"]}
    assert by_name["kube-system"]["inScope"] is False
    assert by_name["kube-system"]["outOfScope"][0]["reason"] == "excluded-by-name"
    assert by_name["team-b"]["copies"]["stale"] == ["corp-pull"]
    assert by_name["team-b"]["copies"]["missing"] == ["builds-pull"]
    json.dumps(document)  # serialisable as is


# -- the README's example ----------------------------------------------------------------------

README_POLICY = load_policy(
    f"""\
apiVersion: pullsecret-injector.io/v1
kind: PullSecretPolicy
defaults: {{sourceNamespace: {PS}}}
rules:
  - {{name: corp, registries: [registry.example.com], secrets: [corp-pull],
     namespaces: {{include: ["team-*"]}}}}
  - {{name: vendor, registries: [vendor.example.com], secrets: [vendor-pull],
     namespaces: {{include: ["team-vendor"]}}}}
""",
    generation="232",
)


def readme_status() -> ClusterStatus:
    """The README's `status` example: one namespace of each kind an operator asks about."""
    corp = [pull_secret("corp-pull", PS, ["registry.example.com"])]
    namespaces = {"kube-system": {}, "sandbox": {"pullsecret-injector.io/inject": "false"}}
    namespaces |= {"team-a": {}, "team-b": {}, "team-vendor": {}}
    store = cluster(corp, namespaces)
    for namespace in ("team-a", "team-vendor"):
        spec = desired_copies(README_POLICY, namespace, {}, store)["corp-pull"]
        source = store.source_secret(PS, "corp-pull")
        assert source is not None
        store.put_target(cluster(targets=[render_copy(spec, source)]).targets()[0])
    store.put_target(cluster(targets=[foreign("corp-pull", "team-b")]).targets()[0])
    configuration = webhook_scope({"metadata": {"name": "psi-pullsecret-injector"}, "webhooks": [{
        "namespaceSelector": {"matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "NotIn",
             "values": ["pullsecret-injector", "kube-system"]},
            {"key": "pullsecret-injector.io/inject", "operator": "NotIn", "values": ["false"]},
        ]}}]})  # fmt: skip
    reported = policy_report(
        README_POLICY,
        configmap="pullsecret-injector/psi-pullsecret-injector-policy",
        key="policy.yaml",
        error="",
        rejected_generation="",
        sources=source_states(README_POLICY, store),
        reporter="psi-pullsecret-injector-controller-6d9f-x2x",
    )
    return ClusterStatus(
        webhook_configuration="psi-pullsecret-injector",
        policy_configmap="pullsecret-injector/psi-pullsecret-injector-policy",
        policy_generation="232",
        reported=replace(reported, updated="2026-12-01T23:24:44Z"),
        namespaces=assess(README_POLICY, store, (), configuration),
    )


def test_the_readme_status_example_is_what_status_prints() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    command = "$ pullsecret-injector status            # or: kubectl pullsecret status\n"
    shown = readme.split(command, 1)[1].split("```", 1)[0]

    assert render_table(readme_status()) == shown
    assert not readme_status().ok
