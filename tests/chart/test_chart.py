"""The Helm chart, rendered with ``helm template`` and checked object by object.

Read it like a helm-unittest suite: each case is a sentence (``it``), the values it sets, and
the paths it expects (``Equal(kind, name, path, value)``). Invariants that must hold for
*every* supported value set (least-privilege RBAC, restricted pods, labels, the PSI_* env
contract) run over the table ``VALUE_SETS``. RBAC is checked by evaluating the rendered
(Cluster)Roles and bindings like the API server's authorizer does, so assertions read like
``kubectl auth can-i``.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.conftest import (
    CHART,
    NAMESPACE,
    OPENSHIFT_VALUES,
    RELEASE,
    REPO,
    Chart,
    load_documents,
)
from webhook.settings import Settings

Objects = list[dict[str, Any]]
Render = Callable[..., Objects]

FULLNAME = f"{RELEASE}-pullsecret-injector"
WEBHOOK = f"{FULLNAME}-webhook"
CONTROLLER = f"{FULLNAME}-controller"
POLICY_CM = f"{FULLNAME}-policy"
TLS_SECRET = f"{FULLNAME}-tls"
WEBHOOK_NAME = f"{FULLNAME}.{NAMESPACE}.pullsecret-injector.io"

# Two rules: a shorthand secret from the default source namespace, and a rule with its own
# source namespace, a renamed copy, and ServiceAccount backfill.
POLICY = {
    "apiVersion": "pullsecret-injector.io/v1",
    "kind": "PullSecretPolicy",
    "defaults": {"sourceNamespace": "pull-secrets"},
    "rules": [
        {
            "name": "corp",
            "registries": ["registry.example.com"],
            "secrets": ["corp-pull"],
            "serviceAccounts": {"names": ["default"]},
        },
        {
            "name": "vendor",
            "registries": ["vendor.example.com"],
            "secrets": [
                {"name": "vendor-pull", "namespace": "vendor-secrets", "targetName": "vendor-copy"},
                {"name": "sso-pull", "namespace": "vendor-secrets"},
            ],
            "serviceAccounts": {"names": ["builder"], "backfill": True},
            "credentialSubset": True,
        },
    ],
}
MANAGED = ["corp-pull", "sso-pull", "vendor-copy"]
SOURCES = ["pull-secrets", "vendor-secrets"]
WITH_POLICY = {"policy": POLICY}

CA_PEM = (
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBszCCAVmgAwIBAgIUfake0000000000000000000000000wCgYIKoZIzj0EAwIw\n"
    "-----END CERTIFICATE-----\n"
)
EXISTING_CM = {
    "policy": {"apiVersion": "pullsecret-injector.io/v1", "kind": "PullSecretPolicy"},
    "existingPolicyConfigMap": "team-policy",
    "rbac": {"extraSourceNamespaces": ["pull-secrets"], "managedSecretNames": ["corp-pull"]},
}
ALL_OPTIONAL = {
    **WITH_POLICY,
    "metrics": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}},
    "networkPolicy": {"enabled": True},
}

# Every value set the invariants below must hold for: (id, values, extra values files).
VALUE_SETS: list[tuple[str, dict[str, Any], tuple[Path, ...]]] = [
    ("default values", {}, ()),
    ("a policy with two rules", WITH_POLICY, ()),
    ("cert-manager mode", {**WITH_POLICY, "certificates": {"mode": "cert-manager"}}, ()),
    (
        "provided certificates",
        {"certificates": {"mode": "provided", "provided": {"caBundle": CA_PEM}}},
        (),
    ),
    ("an existing policy ConfigMap", EXISTING_CM, ()),
    (
        "an ExternalName service for the e2e tests",
        {**WITH_POLICY, "service": {"type": "ExternalName", "externalName": "localhost"}},
        (),
    ),
    ("every optional object enabled", ALL_OPTIONAL, ()),
    ("the OpenShift preset", {}, (OPENSHIFT_VALUES,)),
    (
        "no controller, provided certificates",
        {
            **WITH_POLICY,
            "controller": {"enabled": False},
            "certificates": {"mode": "provided", "provided": {"caBundle": CA_PEM}},
        },
        (),
    ),
]
VALUE_SET_IDS = [case[0] for case in VALUE_SETS]


# -- object access -----------------------------------------------------------------------------

_TOKEN = re.compile(r'\.?([A-Za-z0-9_$-]+)|\[(\d+)\]|\["([^"]+)"\]|\[([A-Za-z]+)=([^\]]+)\]')


def get(obj: Any, path: str) -> Any:
    """``spec.containers[name=webhook].env[0]``, ``metadata.annotations["a.io/b"]``."""
    position = 0
    while position < len(path):
        match = _TOKEN.match(path, position)
        assert match, f"bad path {path!r} at {position}"
        key, index, quoted, field_name, field_value = match.groups()
        if key is not None or quoted is not None:
            assert isinstance(obj, Mapping), f"{path}: {obj!r} is not a mapping"
            obj = obj[key if key is not None else quoted]
        elif index is not None:
            obj = obj[int(index)]
        else:
            matches = [item for item in obj if item.get(field_name) == field_value]
            assert len(matches) == 1, f"{path}: {len(matches)} items with {field_name}"
            obj = matches[0]
        position = match.end()
    return obj


def find(objects: Objects, kind: str, name: str | None = None, namespace: str | None = None) -> Any:
    matches = [
        o
        for o in objects
        if o["kind"] == kind
        and (name is None or o["metadata"]["name"] == name)
        and (namespace is None or o["metadata"].get("namespace") == namespace)
    ]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


def deployment(objects: Objects, component: str) -> Any:
    return find(objects, "Deployment", f"{FULLNAME}-{component}")


def container(objects: Objects, component: str) -> Any:
    return deployment(objects, component)["spec"]["template"]["spec"]["containers"][0]


def env(objects: Objects, component: str) -> dict[str, str]:
    """Plain env values; ``valueFrom`` entries appear as ``<fieldPath>``."""
    result = {}
    for item in container(objects, component)["env"]:
        if "value" in item:
            result[item["name"]] = item["value"]
        else:
            result[item["name"]] = f"<{item['valueFrom']['fieldRef']['fieldPath']}>"
    return result


def webhook_entry(objects: Objects) -> Any:
    config = find(objects, "MutatingWebhookConfiguration", FULLNAME)
    assert len(config["webhooks"]) == 1
    return config["webhooks"][0]


# -- RBAC evaluation (what `kubectl auth can-i --as=system:serviceaccount:...` would say) ----


@dataclass(frozen=True)
class Request:
    verb: str
    resource: str
    namespace: str | None = None  # None: cluster-wide (or a cluster-scoped resource)
    name: str | None = None  # for list/watch: a metadata.name field selector
    group: str = ""


def _rules_for(objects: Objects, account: str) -> list[tuple[str | None, dict[str, Any]]]:
    """(namespace the rule is limited to, rule) for every rule bound to the ServiceAccount."""
    out: list[tuple[str | None, dict[str, Any]]] = []
    for binding in objects:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        subjects = binding.get("subjects") or []
        if not any(
            s["kind"] == "ServiceAccount" and s["name"] == account and s["namespace"] == NAMESPACE
            for s in subjects
        ):
            continue
        ref = binding["roleRef"]
        scope = binding["metadata"].get("namespace") if binding["kind"] == "RoleBinding" else None
        role = find(objects, ref["kind"], ref["name"], scope if ref["kind"] == "Role" else None)
        out.extend((scope, rule) for rule in role.get("rules") or [])
    return out


def can(objects: Objects, account: str, request: Request) -> bool:
    for scope, rule in _rules_for(objects, account):
        if scope is not None and request.namespace != scope:
            continue
        if request.group not in rule.get("apiGroups", []):
            continue
        if request.resource not in rule.get("resources", []):
            continue
        if request.verb not in rule.get("verbs", []):
            continue
        names = rule.get("resourceNames") or []
        if names and request.name not in names:
            continue
        return True
    return False


def rbac_rules(objects: Objects) -> list[dict[str, Any]]:
    return [
        rule
        for o in objects
        if o["kind"] in ("Role", "ClusterRole")
        for rule in o.get("rules") or []
    ]


# -- helm-unittest style table -----------------------------------------------------------------


@dataclass(frozen=True)
class Equal:
    kind: str
    name: str | None
    path: str
    value: Any


@dataclass(frozen=True)
class Absent:
    kind: str
    name: str | None = None


@dataclass(frozen=True)
class Case:
    it: str
    set: dict[str, Any] = field(default_factory=dict)
    asserts: tuple[Equal | Absent, ...] = ()


MWC = "MutatingWebhookConfiguration"


def hook(path: str, value: Any) -> Equal:
    """A field of the (single) webhook entry of our MutatingWebhookConfiguration."""
    return Equal(MWC, FULLNAME, f"webhooks[0].{path}", value)


def webhook_pod(path: str, value: Any) -> Equal:
    return Equal("Deployment", WEBHOOK, f"spec.template.spec.{path}", value)


def webhook_container(path: str, value: Any) -> Equal:
    return webhook_pod(f"containers[0].{path}", value)


def controller_pod(path: str, value: Any) -> Equal:
    return Equal("Deployment", CONTROLLER, f"spec.template.spec.{path}", value)


def controller_container(path: str, value: Any) -> Equal:
    return controller_pod(f"containers[0].{path}", value)


CASES = [
    Case(
        "hostNetwork puts both components on the node's network and keeps cluster DNS",
        set={"webhook": {"hostNetwork": True}, "controller": {"hostNetwork": True}},
        asserts=(
            webhook_pod("hostNetwork", True),
            webhook_pod("dnsPolicy", "ClusterFirstWithHostNet"),
            controller_pod("hostNetwork", True),
            controller_pod("dnsPolicy", "ClusterFirstWithHostNet"),
        ),
    ),
    Case(
        "default install excludes the release namespace and Kubernetes' own namespaces",
        asserts=(
            hook(
                "namespaceSelector.matchExpressions[0]",
                {
                    "key": "kubernetes.io/metadata.name",
                    "operator": "NotIn",
                    "values": [NAMESPACE, "kube-system", "kube-public", "kube-node-lease"],
                },
            ),
        ),
    ),
    Case(
        "default install honours the opt-out label on namespaces and on objects",
        asserts=(
            hook(
                "namespaceSelector.matchExpressions[1]",
                {"key": "pullsecret-injector.io/inject", "operator": "NotIn", "values": ["false"]},
            ),
            hook(
                "objectSelector.matchExpressions",
                [
                    {
                        "key": "pullsecret-injector.io/inject",
                        "operator": "NotIn",
                        "values": ["false"],
                    }
                ],
            ),
        ),
    ),
    Case(
        "default webhook fails open within 3 seconds, is reinvoked if needed and has no "
        "side effects on dry run",
        asserts=(
            hook("failurePolicy", "Ignore"),
            hook("timeoutSeconds", 3),
            hook("reinvocationPolicy", "IfNeeded"),
            hook("sideEffects", "NoneOnDryRun"),
            hook("admissionReviewVersions", ["v1"]),
            hook("name", WEBHOOK_NAME),
        ),
    ),
    Case(
        "the webhook is called for pod creation, ServiceAccount creation and updates, and "
        "ephemeral containers",
        asserts=(
            hook(
                "rules",
                [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods"],
                        "scope": "Namespaced",
                    },
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["serviceaccounts"],
                        "scope": "Namespaced",
                    },
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["UPDATE"],
                        "resources": ["pods/ephemeralcontainers"],
                        "scope": "Namespaced",
                    },
                ],
            ),
            hook(
                "clientConfig.service",
                {"name": WEBHOOK, "namespace": NAMESPACE, "port": 443, "path": "/mutate"},
            ),
        ),
    ),
    Case(
        "failure policy, timeout and reinvocation come from values",
        set={
            "admissionWebhook": {
                "failurePolicy": "Fail",
                "timeoutSeconds": 10,
                "reinvocationPolicy": "Never",
            }
        },
        asserts=(
            hook("failurePolicy", "Fail"),
            hook("timeoutSeconds", 10),
            hook("reinvocationPolicy", "Never"),
            # Half the API server's timeout is the budget for creating copies.
            webhook_container("env[name=PSI_ENSURE_TIMEOUT_SECONDS].value", "5"),
        ),
    ),
    Case(
        "extra excluded namespaces and selector expressions are added to the built-ins",
        set={
            "admissionWebhook": {
                "excludeNamespaces": ["legacy", "kube-system"],
                "namespaceSelector": {
                    "matchExpressions": [{"key": "tier", "operator": "In", "values": ["apps"]}]
                },
                "objectSelector": {
                    "matchExpressions": [{"key": "skip-me", "operator": "DoesNotExist"}]
                },
            }
        },
        asserts=(
            hook(
                "namespaceSelector.matchExpressions[0].values",
                [NAMESPACE, "kube-system", "kube-public", "kube-node-lease", "legacy"],
            ),
            hook(
                "namespaceSelector.matchExpressions[2]",
                {"key": "tier", "operator": "In", "values": ["apps"]},
            ),
            hook(
                "objectSelector.matchExpressions[1]",
                {"key": "skip-me", "operator": "DoesNotExist"},
            ),
        ),
    ),
    Case(
        "a custom opt-out label is used by every selector",
        set={"admissionWebhook": {"optOutLabel": "example.com/pull-secrets"}},
        asserts=(
            hook("namespaceSelector.matchExpressions[1].key", "example.com/pull-secrets"),
            hook(
                "objectSelector.matchExpressions[0].key",
                "example.com/pull-secrets",
            ),
        ),
    ),
    Case(
        "user match conditions follow the built-in opt-out and mirror-pod conditions",
        set={
            "admissionWebhook": {
                "matchConditions": [
                    {
                        "name": "not-system-users",
                        "expression": "!('system:masters' in request.userInfo.groups)",
                    }
                ]
            }
        },
        asserts=(
            hook("matchConditions[0].name", "not-opted-out-by-annotation"),
            hook("matchConditions[1].name", "not-a-mirror-pod"),
            hook("matchConditions[2].name", "not-system-users"),
        ),
    ),
    Case(
        "self-managed mode leaves caBundle empty at install for the controller to patch",
        asserts=(
            hook("clientConfig.service.name", WEBHOOK),
            Absent("Certificate"),
            Absent("Issuer"),
        ),
    ),
    Case(
        "provided mode puts the PEM CA into caBundle, base64 encoded",
        set={"certificates": {"mode": "provided", "provided": {"caBundle": CA_PEM}}},
        asserts=(
            hook(
                "clientConfig.caBundle",
                base64.b64encode(CA_PEM.strip().encode()).decode(),
            ),
            Absent("Certificate"),
        ),
    ),
    Case(
        "provided mode accepts a caBundle that is already base64",
        set={"certificates": {"mode": "provided", "provided": {"caBundle": "Zm9vYmFy"}}},
        asserts=(hook("clientConfig.caBundle", "Zm9vYmFy"),),
    ),
    Case(
        "cert-manager mode asks the cainjector for the serving certificate's CA",
        set={"certificates": {"mode": "cert-manager"}},
        asserts=(
            Equal(
                MWC,
                FULLNAME,
                'metadata.annotations["cert-manager.io/inject-ca-from"]',
                f"{NAMESPACE}/{FULLNAME}-serving",
            ),
            Equal("Issuer", f"{FULLNAME}-selfsigned", "spec", {"selfSigned": {}}),
            Equal("Certificate", f"{FULLNAME}-ca", "spec.isCA", True),
            Equal(
                "Certificate",
                f"{FULLNAME}-ca",
                "spec.issuerRef",
                {"group": "cert-manager.io", "kind": "Issuer", "name": f"{FULLNAME}-selfsigned"},
            ),
            Equal("Issuer", f"{FULLNAME}-ca", "spec.ca.secretName", f"{FULLNAME}-ca"),
            Equal("Certificate", f"{FULLNAME}-serving", "spec.secretName", TLS_SECRET),
            Equal(
                "Certificate",
                f"{FULLNAME}-serving",
                "spec.issuerRef",
                {"group": "cert-manager.io", "kind": "Issuer", "name": f"{FULLNAME}-ca"},
            ),
            Equal(
                "Certificate",
                f"{FULLNAME}-serving",
                "spec.dnsNames",
                [
                    WEBHOOK,
                    f"{WEBHOOK}.{NAMESPACE}",
                    f"{WEBHOOK}.{NAMESPACE}.svc",
                    f"{WEBHOOK}.{NAMESPACE}.svc.cluster.local",
                ],
            ),
            controller_container(
                "env[name=PSI_CERT_MODE].value",
                "cert-manager",
            ),
        ),
    ),
    Case(
        "cert-manager mode with an issuerRef uses it and renders no issuers of its own",
        set={
            "certificates": {
                "mode": "cert-manager",
                "certManager": {"issuerRef": {"kind": "ClusterIssuer", "name": "corp-ca"}},
            }
        },
        asserts=(
            Equal(
                "Certificate",
                f"{FULLNAME}-serving",
                "spec.issuerRef",
                {"kind": "ClusterIssuer", "name": "corp-ca"},
            ),
            Absent("Issuer"),
            Absent("Certificate", f"{FULLNAME}-ca"),
        ),
    ),
    Case(
        "the webhook Service is a ClusterIP Service selecting only webhook pods",
        asserts=(
            Equal("Service", WEBHOOK, "spec.type", "ClusterIP"),
            Equal(
                "Service",
                WEBHOOK,
                "spec.selector",
                {
                    "app.kubernetes.io/name": "pullsecret-injector",
                    "app.kubernetes.io/instance": RELEASE,
                    "app.kubernetes.io/component": "webhook",
                },
            ),
            Equal("Service", WEBHOOK, "spec.ports[name=https].targetPort", "https"),
            Equal("Service", WEBHOOK, "spec.ports[name=https].port", 443),
        ),
    ),
    Case(
        "an ExternalName service sends the API server to the external host and port",
        set={"service": {"type": "ExternalName", "externalName": "localhost", "port": 18443}},
        asserts=(
            Equal("Service", WEBHOOK, "spec.type", "ExternalName"),
            Equal("Service", WEBHOOK, "spec.externalName", "localhost"),
            Equal(
                "Service",
                WEBHOOK,
                "spec.ports",
                [{"name": "https", "port": 18443, "targetPort": "https", "protocol": "TCP"}],
            ),
            hook("clientConfig.service.port", 18443),
        ),
    ),
    Case(
        "the default webhook runs 3 replicas behind a minAvailable 1 disruption budget",
        asserts=(
            Equal("Deployment", WEBHOOK, "spec.replicas", 3),
            Equal("Deployment", WEBHOOK, "spec.strategy.rollingUpdate.maxUnavailable", 0),
            Equal("PodDisruptionBudget", WEBHOOK, "spec.minAvailable", 1),
            Equal("Deployment", CONTROLLER, "spec.replicas", 2),
            Equal("PodDisruptionBudget", CONTROLLER, "spec.minAvailable", 1),
        ),
    ),
    Case(
        "an explicit maxUnavailable replaces the default minAvailable",
        set={"webhook": {"podDisruptionBudget": {"enabled": True, "maxUnavailable": "50%"}}},
        asserts=(
            Equal(
                "PodDisruptionBudget",
                WEBHOOK,
                "spec",
                {
                    "maxUnavailable": "50%",
                    "selector": {
                        "matchLabels": {
                            "app.kubernetes.io/name": "pullsecret-injector",
                            "app.kubernetes.io/instance": RELEASE,
                            "app.kubernetes.io/component": "webhook",
                        }
                    },
                },
            ),
        ),
    ),
    Case(
        "an explicit minAvailable of 0 is kept (hasKey, not truthiness)",
        set={"webhook": {"podDisruptionBudget": {"enabled": True, "minAvailable": 0}}},
        asserts=(Equal("PodDisruptionBudget", WEBHOOK, "spec.minAvailable", 0),),
    ),
    Case(
        "a single replica may keep a budget that allows eviction (minAvailable 0)",
        set={"webhook": {"replicaCount": 1, "podDisruptionBudget": {"minAvailable": 0}}},
        asserts=(
            Equal("Deployment", WEBHOOK, "spec.replicas", 1),
            Equal("PodDisruptionBudget", WEBHOOK, "spec.minAvailable", 0),
        ),
    ),
    Case(
        "disabled disruption budgets are not rendered",
        set={
            "webhook": {"podDisruptionBudget": {"enabled": False}},
            "controller": {"podDisruptionBudget": {"enabled": False}},
        },
        asserts=(Absent("PodDisruptionBudget"),),
    ),
    Case(
        "pods spread softly over nodes and zones by default",
        asserts=(
            webhook_pod(
                "affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0]"
                ".podAffinityTerm.topologyKey",
                "kubernetes.io/hostname",
            ),
            webhook_pod("topologySpreadConstraints[0].whenUnsatisfiable", "ScheduleAnyway"),
            webhook_pod(
                "topologySpreadConstraints[1].whenUnsatisfiable",
                "ScheduleAnyway",
            ),
        ),
    ),
    Case(
        "user affinity, spread constraints and priority class replace the defaults",
        set={
            "webhook": {
                "affinity": {"nodeAffinity": {"x": 1}},
                "topologySpreadConstraints": [{"maxSkew": 2}],
                "priorityClassName": "high",
            }
        },
        asserts=(
            webhook_pod("affinity", {"nodeAffinity": {"x": 1}}),
            webhook_pod(
                "topologySpreadConstraints",
                [{"maxSkew": 2}],
            ),
            webhook_pod("priorityClassName", "high"),
        ),
    ),
    Case(
        "the webhook drains before gunicorn's graceful shutdown, within the grace period",
        asserts=(
            webhook_container("lifecycle.preStop.exec.command", ["sleep", "5"]),
            webhook_pod("terminationGracePeriodSeconds", 30),
            webhook_container(
                "env[name=PSI_GRACEFUL_TIMEOUT_SECONDS].value",
                "20",
            ),
        ),
    ),
    Case(
        "probes use the plain-HTTP health port",
        asserts=(
            webhook_container("livenessProbe.httpGet", {"path": "/livez", "port": "metrics"}),
            webhook_container("readinessProbe.httpGet", {"path": "/readyz", "port": "metrics"}),
            webhook_container("ports[name=metrics].containerPort", 8080),
            controller_container(
                "readinessProbe.httpGet",
                {"path": "/readyz", "port": "metrics"},
            ),
        ),
    ),
    Case(
        "the webhook mounts the TLS Secret and a writable /tmp",
        asserts=(
            webhook_pod("volumes[name=tls].secret.secretName", TLS_SECRET),
            webhook_container(
                "volumeMounts",
                [
                    {"name": "tls", "mountPath": "/tls", "readOnly": True},
                    {"name": "tmp", "mountPath": "/tmp"},
                ],
            ),
        ),
    ),
    Case(
        "an image digest wins over the tag",
        set={"image": {"repository": "registry.example.com/psi", "digest": "sha256:" + "a" * 64}},
        asserts=(
            webhook_container("image", "registry.example.com/psi@sha256:" + "a" * 64),
            controller_container(
                "image",
                "registry.example.com/psi@sha256:" + "a" * 64,
            ),
        ),
    ),
    Case(
        "the image tag defaults to the chart's appVersion",
        asserts=(
            webhook_container(
                "image",
                "ghcr.io/pullsecret-injector/pullsecret-injector:0.1.0",
            ),
        ),
    ),
    Case(
        "the policy ConfigMap carries the policy under policy.yaml",
        set=WITH_POLICY,
        asserts=(Equal("ConfigMap", POLICY_CM, "metadata.namespace", NAMESPACE),),
    ),
    Case(
        "an existing policy ConfigMap is used instead of rendering one",
        set=EXISTING_CM,
        asserts=(
            Absent("ConfigMap"),
            webhook_container("env[name=PSI_POLICY_CONFIGMAP].value", "team-policy"),
            Equal("Role", WEBHOOK, "rules[0].resourceNames", ["team-policy"]),
            Equal("Role", CONTROLLER, "rules[0].resourceNames", ["team-policy"]),
        ),
    ),
    Case(
        "a disabled controller renders no controller objects",
        set={
            "controller": {"enabled": False},
            "certificates": {"mode": "provided", "provided": {"caBundle": CA_PEM}},
        },
        asserts=(
            Absent("Deployment", CONTROLLER),
            Absent("ServiceAccount", CONTROLLER),
            Absent("ClusterRole", CONTROLLER),
            Absent("PodDisruptionBudget", CONTROLLER),
        ),
    ),
    Case(
        "monitoring objects and the NetworkPolicy are off by default",
        asserts=(
            Absent("ServiceMonitor"),
            Absent("PrometheusRule"),
            Absent("NetworkPolicy"),
            Absent("Service", f"{CONTROLLER}-metrics"),
        ),
    ),
    Case(
        "the ServiceMonitor scrapes the metrics port of both components' Services",
        set={"metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}}},
        asserts=(
            Equal("ServiceMonitor", FULLNAME, "spec.endpoints[0].port", "metrics"),
            Equal(
                "ServiceMonitor",
                FULLNAME,
                "spec.selector.matchLabels",
                {
                    "app.kubernetes.io/name": "pullsecret-injector",
                    "app.kubernetes.io/instance": RELEASE,
                },
            ),
            Equal("ServiceMonitor", FULLNAME, "metadata.labels.release", "prom"),
            Equal("Service", f"{CONTROLLER}-metrics", "spec.ports[0].name", "metrics"),
            Equal("Service", WEBHOOK, "spec.ports[name=metrics].port", 8080),
        ),
    ),
    Case(
        "the NetworkPolicy admits only the webhook and metrics ports",
        set={
            "networkPolicy": {
                "enabled": True,
                "metricsFrom": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}],
            }
        },
        asserts=(
            Equal(
                "NetworkPolicy",
                WEBHOOK,
                "spec.ingress",
                [
                    {"ports": [{"port": 8443, "protocol": "TCP"}]},
                    {
                        "ports": [{"port": 8080, "protocol": "TCP"}],
                        "from": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}],
                    },
                ],
            ),
            Equal("NetworkPolicy", WEBHOOK, "spec.policyTypes", ["Ingress"]),
            Equal(
                "NetworkPolicy",
                CONTROLLER,
                "spec.ingress",
                [
                    {
                        "ports": [{"port": 8080, "protocol": "TCP"}],
                        "from": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}],
                    }
                ],
            ),
        ),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.it for c in CASES])
def test_case(render: Render, case: Case) -> None:
    objects = render(case.set)
    for check in case.asserts:
        if isinstance(check, Absent):
            present = [
                o
                for o in objects
                if o["kind"] == check.kind
                and (check.name is None or o["metadata"]["name"] == check.name)
            ]
            assert not present, f"{check.kind} {check.name or ''} should not be rendered"
        else:
            assert get(find(objects, check.kind, check.name), check.path) == check.value, check


# -- alerts ------------------------------------------------------------------------------------


def test_prometheus_rule_alerts_on_fail_open_invalid_policy_misses_and_conflicts(
    render: Render,
) -> None:
    objects = render({"metrics": {"prometheusRule": {"enabled": True}}})
    rules = find(objects, "PrometheusRule", FULLNAME)["spec"]["groups"][0]["rules"]
    exprs = {rule["alert"]: rule["expr"] for rule in rules}
    assert exprs == {
        "PullSecretInjectorWebhookFailingOpen": (
            "sum(increase(apiserver_admission_webhook_fail_open_count"
            f'{{name="{WEBHOOK_NAME}"}}[10m])) > 0'
        ),
        "PullSecretInjectorPolicyInvalid": (
            f'min(pullsecret_injector_policy_valid{{namespace="{NAMESPACE}"}}) == 0'
        ),
        "PullSecretInjectorInjectionMisses": (
            "sum(increase(pullsecret_injector_admission_warnings_total"
            f'{{namespace="{NAMESPACE}"}}[15m])) > 0'
        ),
        "PullSecretInjectorOwnershipConflicts": (
            "sum(increase(pullsecret_injector_ownership_conflicts_total"
            f'{{namespace="{NAMESPACE}"}}[1h])) > 0'
        ),
    }
    # The fail-open alert must name the webhook entry the API server reports on.
    assert webhook_entry(objects)["name"] == WEBHOOK_NAME
    failing_open = next(r for r in rules if r["alert"] == "PullSecretInjectorWebhookFailingOpen")
    assert "{{ $value | humanize }}" in failing_open["annotations"]["description"]


def test_alert_metric_names_exist_in_the_code() -> None:
    """The alerts reference metrics by name; a rename in webhook/metrics.py must fail here."""
    source = (REPO / "webhook" / "metrics.py").read_text()
    for name in ("admission_warnings", "ownership_conflicts", "policy_valid"):
        assert f'"{name}"' in source


# -- RBAC: least privilege, evaluated --------------------------------------------------------


# (sentence, account, request, allowed) for the two-rule policy in the default (self-managed)
# certificate mode.
CAN_I = [
    # webhook: reads
    ("webhook can watch namespaces", WEBHOOK, Request("watch", "namespaces"), True),
    (
        "webhook can list the policy ConfigMap by name",
        WEBHOOK,
        Request("list", "configmaps", NAMESPACE, POLICY_CM),
        True,
    ),
    (
        "webhook cannot list other ConfigMaps",
        WEBHOOK,
        Request("list", "configmaps", NAMESPACE),
        False,
    ),
    (
        "webhook can list a source secret by name",
        WEBHOOK,
        Request("list", "secrets", "pull-secrets", "corp-pull"),
        True,
    ),
    (
        "webhook can watch the rule's own source secret by name",
        WEBHOOK,
        Request("watch", "secrets", "vendor-secrets", "vendor-pull"),
        True,
    ),
    (
        "webhook can list every secret of a source namespace (a new source works live)",
        WEBHOOK,
        Request("list", "secrets", "pull-secrets"),
        True,
    ),
    (
        "webhook can read a source secret the policy does not name yet",
        WEBHOOK,
        Request("get", "secrets", "vendor-secrets", "added-later-pull"),
        True,
    ),
    (
        "controller can watch a whole source namespace too",
        CONTROLLER,
        Request("watch", "secrets", "vendor-secrets"),
        True,
    ),
    (
        "webhook cannot list secrets cluster-wide",
        WEBHOOK,
        Request("list", "secrets"),
        False,
    ),
    (
        "webhook cannot list secrets in a target namespace",
        WEBHOOK,
        Request("list", "secrets", "team-a"),
        False,
    ),
    (
        "webhook can watch a managed copy name cluster-wide",
        WEBHOOK,
        Request("watch", "secrets", None, "vendor-copy"),
        True,
    ),
    (
        "webhook cannot get an unmanaged secret in a target namespace",
        WEBHOOK,
        Request("get", "secrets", "team-a", "db-password"),
        False,
    ),
    (
        "webhook cannot read the source secret's name outside source namespaces",
        WEBHOOK,
        Request("get", "secrets", "team-a", "vendor-pull"),
        False,
    ),
    # webhook: writes
    ("webhook can create copies", WEBHOOK, Request("create", "secrets", "team-a"), True),
    (
        "webhook cannot update secrets, even managed ones",
        WEBHOOK,
        Request("update", "secrets", "team-a", "corp-pull"),
        False,
    ),
    (
        "webhook cannot patch secrets",
        WEBHOOK,
        Request("patch", "secrets", "team-a", "corp-pull"),
        False,
    ),
    (
        "webhook cannot delete secrets",
        WEBHOOK,
        Request("delete", "secrets", "team-a", "corp-pull"),
        False,
    ),
    (
        "webhook can record Events in its namespace",
        WEBHOOK,
        Request("create", "events", NAMESPACE),
        True,
    ),
    (
        "webhook cannot patch its webhook configuration",
        WEBHOOK,
        Request(
            "patch", "mutatingwebhookconfigurations", None, FULLNAME, "admissionregistration.k8s.io"
        ),
        False,
    ),
    (
        "webhook cannot patch service accounts",
        WEBHOOK,
        Request("patch", "serviceaccounts", "team-a", "default"),
        False,
    ),
    (
        "webhook cannot take the Lease",
        WEBHOOK,
        Request("update", "leases", NAMESPACE, CONTROLLER, "coordination.k8s.io"),
        False,
    ),
    # controller
    (
        "controller can update a managed copy",
        CONTROLLER,
        Request("update", "secrets", "team-a", "vendor-copy"),
        True,
    ),
    (
        "controller can delete a managed copy",
        CONTROLLER,
        Request("delete", "secrets", "team-a", "corp-pull"),
        True,
    ),
    (
        "controller cannot update a secret it does not manage",
        CONTROLLER,
        Request("update", "secrets", "team-a", "db-password"),
        False,
    ),
    (
        "controller cannot delete a source secret",
        CONTROLLER,
        Request("delete", "secrets", "vendor-secrets", "vendor-pull"),
        False,
    ),
    (
        "controller cannot list secrets cluster-wide",
        CONTROLLER,
        Request("list", "secrets"),
        False,
    ),
    (
        "controller can record conflict Events in any namespace",
        CONTROLLER,
        Request("create", "events", "team-a"),
        True,
    ),
    (
        "controller can renew its Lease",
        CONTROLLER,
        Request("update", "leases", NAMESPACE, CONTROLLER, "coordination.k8s.io"),
        True,
    ),
    (
        "controller cannot update another Lease",
        CONTROLLER,
        Request("update", "leases", NAMESPACE, "kube-scheduler", "coordination.k8s.io"),
        False,
    ),
    (
        "controller can create its Lease",
        CONTROLLER,
        Request("create", "leases", NAMESPACE, None, "coordination.k8s.io"),
        True,
    ),
    (
        "controller cannot create Leases elsewhere",
        CONTROLLER,
        Request("create", "leases", "kube-system", None, "coordination.k8s.io"),
        False,
    ),
    (
        "controller can patch its own webhook configuration's caBundle",
        CONTROLLER,
        Request(
            "patch", "mutatingwebhookconfigurations", None, FULLNAME, "admissionregistration.k8s.io"
        ),
        True,
    ),
    (
        "controller cannot touch other webhook configurations",
        CONTROLLER,
        Request(
            "patch",
            "mutatingwebhookconfigurations",
            None,
            "gatekeeper",
            "admissionregistration.k8s.io",
        ),
        False,
    ),
    (
        "controller can update the TLS Secret",
        CONTROLLER,
        Request("update", "secrets", NAMESPACE, TLS_SECRET),
        True,
    ),
    (
        "controller can update the CA Secret",
        CONTROLLER,
        Request("update", "secrets", NAMESPACE, f"{TLS_SECRET}-ca"),
        True,
    ),
    (
        "controller cannot update a TLS-named Secret in another namespace",
        CONTROLLER,
        Request("update", "secrets", "team-a", TLS_SECRET),
        False,
    ),
    (
        "controller can backfill service accounts when a rule asks for it",
        CONTROLLER,
        Request("patch", "serviceaccounts", "team-a", "builder"),
        True,
    ),
    (
        "controller cannot delete service accounts",
        CONTROLLER,
        Request("delete", "serviceaccounts", "team-a", "builder"),
        False,
    ),
    (
        "controller cannot create RoleBindings without the OpenShift preset",
        CONTROLLER,
        Request("create", "rolebindings", "team-a", None, "rbac.authorization.k8s.io"),
        False,
    ),
]


@pytest.mark.parametrize(
    ("account", "request_", "allowed"),
    [case[1:] for case in CAN_I],
    ids=[case[0] for case in CAN_I],
)
def test_can_i(render: Render, account: str, request_: Request, allowed: bool) -> None:
    assert can(render(WITH_POLICY), account, request_) is allowed


def test_rbac_derives_source_namespaces_and_managed_names_from_the_policy(
    render: Render,
) -> None:
    objects = render(WITH_POLICY)
    for component in ("webhook", "controller"):
        roles = [
            o
            for o in objects
            if o["kind"] == "Role" and o["metadata"]["name"] == f"{FULLNAME}-{component}-source"
        ]
        assert sorted(r["metadata"]["namespace"] for r in roles) == SOURCES
        for role in roles:
            # Source namespaces exist to hold pull secrets: the whole namespace is readable.
            assert role["rules"] == [
                {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch"]}
            ]
    webhook_secret_reads = [
        r
        for r in find(objects, "ClusterRole", WEBHOOK)["rules"]
        if "secrets" in r["resources"] and "get" in r["verbs"]
    ]
    assert webhook_secret_reads == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": MANAGED,
            "verbs": ["get", "list", "watch"],
        }
    ]
    controller_secret_writes = [
        r
        for r in find(objects, "ClusterRole", CONTROLLER)["rules"]
        if "secrets" in r["resources"] and "delete" in r["verbs"]
    ]
    assert controller_secret_writes == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": MANAGED,
            "verbs": ["get", "list", "watch", "update", "patch", "delete"],
        }
    ]


@pytest.mark.parametrize(
    ("values", "value_files"),
    [(case[1], case[2]) for case in VALUE_SETS],
    ids=VALUE_SET_IDS,
)
def test_no_wildcards_and_secret_access_is_narrow(
    render: Render, values: dict[str, Any], value_files: tuple[Path, ...]
) -> None:
    objects = render(values, value_files=value_files)
    for rule in rbac_rules(objects):
        for key in ("apiGroups", "resources", "verbs", "resourceNames"):
            assert "*" not in (rule.get(key) or []), rule
        # An empty resourceNames list means "all names": never emit one.
        assert rule.get("resourceNames", ["x"]) != [], rule
    for role in (o for o in objects if o["kind"] == "ClusterRole"):
        for rule in role["rules"]:
            if "secrets" not in rule["resources"]:
                continue
            # Cluster-wide, Secrets are only created, or read/written by name.
            assert rule["verbs"] == ["create"] or rule.get("resourceNames"), rule
    # Namespaced Roles that read all Secrets of a namespace exist only in source namespaces.
    for role in (o for o in objects if o["kind"] == "Role"):
        for rule in role["rules"]:
            if "secrets" in rule["resources"] and not rule.get("resourceNames"):
                assert role["metadata"]["name"].endswith("-source"), role["metadata"]
                assert rule["verbs"] == ["get", "list", "watch"]


def test_rbac_grants_no_secret_reads_when_the_policy_has_no_rules(render: Render) -> None:
    objects = render()
    assert not any(
        o["kind"] == "Role" and o["metadata"]["name"].endswith("-source") for o in objects
    )
    assert not can(objects, WEBHOOK, Request("get", "secrets", "team-a", "anything"))
    assert not can(objects, CONTROLLER, Request("delete", "secrets", "team-a", "anything"))
    # The default sourceNamespace alone is not a grant: no rule reads from it yet.
    assert not can(objects, WEBHOOK, Request("list", "secrets", "pull-secrets"))


def test_rbac_overrides_extend_what_the_policy_derives(render: Render) -> None:
    objects = render(
        {
            **WITH_POLICY,
            "rbac": {"extraSourceNamespaces": ["extra-src"], "managedSecretNames": ["old-copy"]},
        }
    )
    assert can(objects, WEBHOOK, Request("list", "secrets", "extra-src"))
    assert can(objects, CONTROLLER, Request("delete", "secrets", "team-a", "old-copy"))
    assert can(objects, CONTROLLER, Request("delete", "secrets", "team-a", "corp-pull"))


BY_NAME = {**WITH_POLICY, "rbac": {"sourceSecretsByName": ["vendor-secrets"]}}

BY_NAME_CAN_I = [
    (
        "a by-name source namespace grants the policy's source secrets",
        Request("get", "secrets", "vendor-secrets", "vendor-pull"),
        True,
    ),
    (
        "a by-name source namespace can be watched secret by secret",
        Request("watch", "secrets", "vendor-secrets", "sso-pull"),
        True,
    ),
    (
        "a by-name source namespace keeps its other secrets unreadable",
        Request("get", "secrets", "vendor-secrets", "identity-provider-secret"),
        False,
    ),
    (
        "a by-name source namespace cannot be listed whole",
        Request("list", "secrets", "vendor-secrets"),
        False,
    ),
    (
        "other source namespaces stay readable whole",
        Request("list", "secrets", "pull-secrets"),
        True,
    ),
]


@pytest.mark.parametrize(
    ("request_", "allowed"),
    [case[1:] for case in BY_NAME_CAN_I],
    ids=[case[0] for case in BY_NAME_CAN_I],
)
def test_source_namespaces_listed_by_name_grant_only_the_policys_secrets(
    render: Render, request_: Request, allowed: bool
) -> None:
    objects = render(BY_NAME)
    for account in (WEBHOOK, CONTROLLER):
        assert can(objects, account, request_) is allowed, account


def test_the_openshift_preset_keeps_openshift_config_secrets_unreadable(render: Render) -> None:
    objects = render(value_files=(OPENSHIFT_VALUES,))
    for account in (WEBHOOK, CONTROLLER):
        assert can(objects, account, Request("get", "secrets", "openshift-config", "pull-secret"))
        assert not can(
            objects, account, Request("get", "secrets", "openshift-config", "htpasswd-secret")
        )
        assert not can(objects, account, Request("list", "secrets", "openshift-config"))


def test_a_by_name_namespace_needs_names_from_the_policy(chart: Chart) -> None:
    stderr = chart.error(
        {
            **EXISTING_CM,
            "rbac": {**EXISTING_CM["rbac"], "sourceSecretsByName": ["pull-secrets"]},
        }
    )
    assert "rbac.sourceSecretsByName lists pull-secrets, but the policy names no source" in stderr


@pytest.mark.parametrize(
    ("values", "allowed"),
    [
        ({}, False),
        ({"policy": {"rules": [], "imagePullerGrants": [
            {"name": "g", "imageProjects": ["shared"], "pullers": {"include": ["web"]}}
        ]}}, True),
        ({"rbac": {"openshiftImagePuller": True}}, True),
        ({"policy": {"rules": [], "imagePullerGrants": [
            {"name": "g", "imageProjects": ["shared"], "pullers": {"include": ["web"]}}
        ]}, "rbac": {"openshiftImagePuller": False}}, False),
    ],
    ids=[
        "no image-puller grants without grants in the policy",
        "a policy with grants gets them",
        "they can be forced on for grants added live",
        "they can be forced off",
    ],
)  # fmt: skip
def test_image_puller_grants_follow_the_policy(
    render: Render, values: dict[str, Any], allowed: bool
) -> None:
    objects = render(values)
    create = Request("create", "rolebindings", "shared", None, "rbac.authorization.k8s.io")
    assert can(objects, CONTROLLER, create) is allowed


@pytest.mark.parametrize(
    ("rbac", "allowed"),
    [({}, False), ({"serviceAccountBackfill": True}, True)],
    ids=["backfill is off when no rule asks for it", "backfill can be forced on"],
)
def test_service_account_backfill_grant_follows_the_policy(
    render: Render, rbac: dict[str, Any], allowed: bool
) -> None:
    policy = json.loads(json.dumps(POLICY))
    policy["rules"][1]["serviceAccounts"]["backfill"] = False
    objects = render({"policy": policy, "rbac": rbac})
    assert can(objects, CONTROLLER, Request("patch", "serviceaccounts", "team-a", "x")) is allowed
    assert can(objects, CONTROLLER, Request("watch", "serviceaccounts")) is allowed


def test_backfill_can_be_forced_off_even_if_the_policy_asks(render: Render) -> None:
    objects = render({**WITH_POLICY, "rbac": {"serviceAccountBackfill": False}})
    assert not can(objects, CONTROLLER, Request("patch", "serviceaccounts", "team-a", "x"))


def test_webhook_without_copy_writes_cannot_create_secrets(render: Render) -> None:
    objects = render({**WITH_POLICY, "webhook": {"writeCopies": False}})
    assert not can(objects, WEBHOOK, Request("create", "secrets", "team-a"))
    assert env(objects, "webhook")["PSI_WRITE_COPIES"] == "false"
    assert can(objects, CONTROLLER, Request("create", "secrets", "team-a"))


@pytest.mark.parametrize(
    "certificates",
    [
        {"mode": "cert-manager"},
        {"mode": "provided", "provided": {"caBundle": CA_PEM}},
    ],
    ids=["cert-manager mode", "provided mode"],
)
def test_controller_gets_no_certificate_grants_outside_self_managed_mode(
    render: Render, certificates: dict[str, Any]
) -> None:
    objects = render({**WITH_POLICY, "certificates": certificates})
    assert not can(
        objects,
        CONTROLLER,
        Request(
            "patch", "mutatingwebhookconfigurations", None, FULLNAME, "admissionregistration.k8s.io"
        ),
    )
    assert not can(objects, CONTROLLER, Request("update", "secrets", NAMESPACE, TLS_SECRET))


def test_openshift_image_puller_grants_only_with_the_preset(render: Render) -> None:
    bind = Request("bind", "clusterroles", None, "system:image-puller", "rbac.authorization.k8s.io")
    bind_admin = Request("bind", "clusterroles", None, "admin", "rbac.authorization.k8s.io")
    create = Request("create", "rolebindings", "team-a", None, "rbac.authorization.k8s.io")
    default = render()
    assert not can(default, CONTROLLER, bind)
    assert not can(default, CONTROLLER, create)
    openshift = render(value_files=(OPENSHIFT_VALUES,))
    assert can(openshift, CONTROLLER, bind)
    assert can(openshift, CONTROLLER, create)
    assert not can(openshift, CONTROLLER, bind_admin)
    assert not can(openshift, WEBHOOK, create)


def test_every_role_a_binding_names_is_rendered(render: Render) -> None:
    objects = render(WITH_POLICY)
    for account in (WEBHOOK, CONTROLLER):
        assert _rules_for(objects, account)  # raises if a referenced role is missing


# -- admission policies: what RBAC cannot say (issue 16 §1) ------------------------------------
# The behaviour (the token-minting attack refused, the product's own writes allowed) is proven on
# the real API server in tests/e2e/test_admission_policy.py; here, which objects render and what
# they are bound to.

VAP = "ValidatingAdmissionPolicy"
WEBHOOK_USER = f"system:serviceaccount:{NAMESPACE}:{WEBHOOK}"
CONTROLLER_USER = f"system:serviceaccount:{NAMESPACE}:{CONTROLLER}"
GUARDS = ("secrets", "webhook-configuration", "serviceaccounts", "rolebindings")


def admission_policies(objects: Objects) -> dict[str, Any]:
    return {
        o["metadata"]["name"].removeprefix(f"{FULLNAME}-"): o for o in objects if o["kind"] == VAP
    }


def guarded_users(policy: Mapping[str, Any]) -> set[str]:
    """The user names a policy's match condition names (it only ever lists literals)."""
    (condition,) = policy["spec"]["matchConditions"]
    return set(re.findall(r'"(system:serviceaccount:[^"]+)"', condition["expression"]))


def test_admission_policies_guard_both_service_accounts_by_default(render: Render) -> None:
    objects = render(WITH_POLICY)
    policies = admission_policies(objects)
    assert sorted(policies) == sorted(GUARDS)
    assert guarded_users(policies["secrets"]) == {WEBHOOK_USER, CONTROLLER_USER}
    for guard in GUARDS[1:]:  # only the controller holds these verbs
        assert guarded_users(policies[guard]) == {CONTROLLER_USER}, guard
    for name, policy in policies.items():
        # An expression that cannot be evaluated refuses the write.
        assert policy["spec"]["failurePolicy"] == "Fail", name
        assert all(v["reason"] == "Forbidden" for v in policy["spec"]["validations"]), name
        binding = find(objects, "ValidatingAdmissionPolicyBinding", f"{FULLNAME}-{name}")
        assert binding["spec"] == {
            "policyName": f"{FULLNAME}-{name}",
            "validationActions": ["Deny"],
        }
    secrets = policies["secrets"]["spec"]
    assert secrets["matchConstraints"]["resourceRules"] == [
        {
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "operations": ["CREATE", "UPDATE", "DELETE"],
            "resources": ["secrets"],
        }
    ]
    # The first rule checked is the type: a service-account-token Secret is refused by it.
    assert "pullSecretType" in secrets["validations"][0]["expression"]


def test_admission_policies_follow_renamed_service_accounts(render: Render) -> None:
    objects = render(
        {
            **WITH_POLICY,
            "webhook": {"serviceAccount": {"name": "hook"}},
            "controller": {"serviceAccount": {"name": "ctl"}},
        }
    )
    policies = admission_policies(objects)
    assert guarded_users(policies["secrets"]) == {
        f"system:serviceaccount:{NAMESPACE}:hook",
        f"system:serviceaccount:{NAMESPACE}:ctl",
    }


def test_without_a_controller_only_the_webhook_is_guarded(render: Render) -> None:
    objects = render(
        {
            **WITH_POLICY,
            "controller": {"enabled": False},
            "certificates": {"mode": "provided", "provided": {"caBundle": CA_PEM}},
        }
    )
    policies = admission_policies(objects)
    assert sorted(policies) == ["secrets"]
    assert guarded_users(policies["secrets"]) == {WEBHOOK_USER}


def own_certificate_rule(objects: Objects) -> str:
    variables = admission_policies(objects)["secrets"]["spec"]["variables"]
    rule: str = next(v["expression"] for v in variables if v["name"] == "ownCertificate")
    return rule


def test_the_controller_may_write_its_own_certificates_only_in_self_managed_mode(
    render: Render,
) -> None:
    self_managed = own_certificate_rule(render(WITH_POLICY))
    assert f'"{TLS_SECRET}"' in self_managed
    assert f'"{TLS_SECRET}-ca"' in self_managed
    assert f'request.namespace == "{NAMESPACE}"' in self_managed
    cert_manager = own_certificate_rule(
        render({**WITH_POLICY, "certificates": {"mode": "cert-manager"}})
    )
    assert cert_manager == "false"


def test_the_admission_policies_can_be_turned_off(render: Render) -> None:
    objects = render({**WITH_POLICY, "admissionPolicy": {"enabled": False}})
    assert not admission_policies(objects)
    assert not [o for o in objects if o["kind"] == "ValidatingAdmissionPolicyBinding"]


# -- invariants over every value set -----------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "value_files"),
    [(case[1], case[2]) for case in VALUE_SETS],
    ids=VALUE_SET_IDS,
)
def test_pods_are_restricted_without_a_fixed_uid(
    render: Render, values: dict[str, Any], value_files: tuple[Path, ...]
) -> None:
    objects = render(values, value_files=value_files)
    deployments = [o for o in objects if o["kind"] == "Deployment"]
    assert deployments
    for item in deployments:
        pod = item["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for key in ("runAsUser", "runAsGroup", "fsGroup"):
            assert key not in pod["securityContext"]
        for c in pod["containers"]:
            ctx = c["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False
            assert ctx["readOnlyRootFilesystem"] is True
            assert ctx["capabilities"] == {"drop": ["ALL"]}
            assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}
            assert "runAsUser" not in ctx
            assert c["resources"]["requests"]
            assert {m["mountPath"] for m in c["volumeMounts"]} >= {"/tmp"}
        assert pod.get("hostNetwork") is not True


@pytest.mark.parametrize(
    ("values", "value_files"),
    [(case[1], case[2]) for case in VALUE_SETS],
    ids=VALUE_SET_IDS,
)
def test_labels_come_from_one_helper_and_selectors_use_name_and_instance(
    render: Render, values: dict[str, Any], value_files: tuple[Path, ...]
) -> None:
    objects = render(values, value_files=value_files)
    expected = {
        "app.kubernetes.io/name": "pullsecret-injector",
        "app.kubernetes.io/instance": RELEASE,
        "app.kubernetes.io/version": "0.1.0",
        "app.kubernetes.io/managed-by": "Helm",
        "helm.sh/chart": "pullsecret-injector-0.1.0",
    }
    for obj in objects:
        labels = obj["metadata"]["labels"]
        assert expected.items() <= labels.items(), obj["metadata"]["name"]
        assert "app.kubernetes.io/component" in labels
    allowed = {
        "app.kubernetes.io/name",
        "app.kubernetes.io/instance",
        "app.kubernetes.io/component",
    }
    for obj in objects:
        selector = None
        if obj["kind"] in ("Deployment", "PodDisruptionBudget"):
            selector = obj["spec"]["selector"]["matchLabels"]
        elif obj["kind"] == "Service" and obj["spec"]["type"] != "ExternalName":
            selector = obj["spec"]["selector"]
        elif obj["kind"] == "NetworkPolicy":
            selector = obj["spec"]["podSelector"]["matchLabels"]
        if selector is not None:
            assert set(selector) <= allowed, obj["metadata"]["name"]
            assert {"app.kubernetes.io/name", "app.kubernetes.io/instance"} <= set(selector)
    for item in (o for o in objects if o["kind"] == "Deployment"):
        selector = item["spec"]["selector"]["matchLabels"]
        assert selector.items() <= item["spec"]["template"]["metadata"]["labels"].items()


@pytest.mark.parametrize(
    ("values", "value_files"),
    [(case[1], case[2]) for case in VALUE_SETS],
    ids=VALUE_SET_IDS,
)
def test_objects_live_in_the_release_namespace_unless_cluster_scoped_or_source_roles(
    render: Render, values: dict[str, Any], value_files: tuple[Path, ...]
) -> None:
    cluster_scoped = {
        "ClusterRole",
        "ClusterRoleBinding",
        "MutatingWebhookConfiguration",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    }
    for obj in render(values, value_files=value_files):
        namespace = obj["metadata"].get("namespace")
        if obj["kind"] in cluster_scoped:
            assert namespace is None
        elif obj["metadata"]["name"].endswith("-source"):
            assert obj["kind"] in ("Role", "RoleBinding")
        else:
            assert namespace == NAMESPACE, obj["metadata"]["name"]


@pytest.mark.parametrize(
    ("values", "value_files"),
    [(case[1], case[2]) for case in VALUE_SETS],
    ids=VALUE_SET_IDS,
)
def test_component_env_is_accepted_by_the_settings_parser(
    render: Render, values: dict[str, Any], value_files: tuple[Path, ...]
) -> None:
    """Unknown PSI_* variables stop the process at startup: every name must be a setting."""
    objects = render(values, value_files=value_files)
    for component in ("webhook", "controller"):
        if not any(
            o["kind"] == "Deployment" and o["metadata"]["name"].endswith(component) for o in objects
        ):
            continue
        variables = {
            name: ("psi-pod-0" if value == "<metadata.name>" else value)
            for name, value in env(objects, component).items()
        }
        settings = Settings.from_env(variables)
        assert settings.policy_namespace == NAMESPACE
        assert settings.policy_configmap
        assert settings.pod_name == "psi-pod-0"


def test_webhook_env_contract(render: Render) -> None:
    objects = render(WITH_POLICY)
    assert container(objects, "webhook")["command"] == [
        "gunicorn",
        "--config",
        "/app/gunicorn.conf.py",
    ]
    assert container(objects, "webhook").get("args") is None
    assert env(objects, "webhook") == {
        "PSI_POLICY_NAMESPACE": NAMESPACE,
        "PSI_POLICY_CONFIGMAP": POLICY_CM,
        "PSI_POLICY_KEY": "policy.yaml",
        "PSI_POD_NAME": "<metadata.name>",
        "PSI_LOG_LEVEL": "INFO",
        "PSI_EXCLUDE_NAMESPACES": "",
        "PSI_OPT_OUT_LABEL": "pullsecret-injector.io/inject",
        "TMPDIR": "/tmp",
        "PSI_PORT": "8443",
        "PSI_HEALTH_PORT": "8080",
        "PSI_TLS_CERT_FILE": "/tls/tls.crt",
        "PSI_TLS_KEY_FILE": "/tls/tls.key",
        "PSI_WORKERS": "2",
        "PSI_THREADS": "4",
        "PSI_GRACEFUL_TIMEOUT_SECONDS": "20",
        "PSI_WRITE_COPIES": "true",
        "PSI_ENSURE_TIMEOUT_SECONDS": "1.5",
    }


def test_controller_env_contract(render: Render) -> None:
    objects = render(WITH_POLICY)
    assert container(objects, "controller")["command"] == ["pullsecret-injector", "controller"]
    assert env(objects, "controller") == {
        "PSI_POLICY_NAMESPACE": NAMESPACE,
        "PSI_POLICY_CONFIGMAP": POLICY_CM,
        "PSI_POLICY_KEY": "policy.yaml",
        "PSI_POD_NAME": "<metadata.name>",
        "PSI_LOG_LEVEL": "INFO",
        "PSI_EXCLUDE_NAMESPACES": "",
        "PSI_OPT_OUT_LABEL": "pullsecret-injector.io/inject",
        "TMPDIR": "/tmp",
        "PSI_METRICS_PORT": "8080",
        "PSI_LEASE_NAME": CONTROLLER,
        "PSI_LEASE_DURATION_SECONDS": "15",
        "PSI_RESYNC_SECONDS": "300",
        "PSI_CONTROLLER_QPS": "40",
        "PSI_CONTROLLER_BURST": "50",
        "PSI_CERT_MODE": "self-managed",
        "PSI_CERT_SECRET": TLS_SECRET,
        "PSI_WEBHOOK_CONFIGURATION": FULLNAME,
        "PSI_SERVICE_NAME": WEBHOOK,
        "PSI_CERT_VALIDITY_DAYS": "90",
        "PSI_CA_VALIDITY_DAYS": "3650",
    }


def test_env_names_match_the_objects_they_point_at(render: Render) -> None:
    objects = render(WITH_POLICY)
    variables = env(objects, "controller")
    find(objects, "MutatingWebhookConfiguration", variables["PSI_WEBHOOK_CONFIGURATION"])
    find(objects, "Service", variables["PSI_SERVICE_NAME"])
    find(objects, "ConfigMap", variables["PSI_POLICY_CONFIGMAP"])
    assert (
        webhook_entry(objects)["clientConfig"]["service"]["name"] == variables["PSI_SERVICE_NAME"]
    )
    volume = get(deployment(objects, "webhook"), "spec.template.spec.volumes[name=tls]")
    assert volume["secret"]["secretName"] == variables["PSI_CERT_SECRET"]
    # The Lease the controller renews is the one its Role names.
    role = find(objects, "Role", CONTROLLER, NAMESPACE)
    lease_rule = next(
        r for r in role["rules"] if r.get("resourceNames") and "leases" in r["resources"]
    )
    assert lease_rule["resourceNames"] == [variables["PSI_LEASE_NAME"]]


# test_policy_facts.py renders every policy fixture (these value files' included) and checks
# the chart's RBAC against `validate-policy --output json`.


# -- values validation -------------------------------------------------------------------------

FAILURES = [
    (
        "certificate mode provided without a caBundle is refused",
        {"certificates": {"mode": "provided"}},
        "certificates.mode=provided needs certificates.provided.caBundle",
    ),
    (
        "a caBundle outside provided mode is refused rather than ignored",
        {"certificates": {"provided": {"caBundle": CA_PEM}}},
        'certificates.provided.caBundle is set but certificates.mode is "self-managed"',
    ),
    (
        "self-managed certificates need the controller",
        {"controller": {"enabled": False}},
        "certificates.mode=self-managed needs controller.enabled=true",
    ),
    (
        "an ExternalName service needs a host",
        {"service": {"type": "ExternalName"}},
        "service.type=ExternalName needs service.externalName",
    ),
    (
        "an existing ConfigMap needs RBAC hints for its source namespaces and copy names",
        {"existingPolicyConfigMap": "team-policy"},
        "existingPolicyConfigMap needs rbac.extraSourceNamespaces",
    ),
    (
        "an existing ConfigMap and inline rules are mutually exclusive",
        {**EXISTING_CM, "policy": POLICY},
        "both existingPolicyConfigMap and policy.rules are set",
    ),
    (
        "a grace period shorter than preStop plus gunicorn's graceful timeout is refused",
        {"webhook": {"terminationGracePeriodSeconds": 20}},
        "webhook.terminationGracePeriodSeconds (20) must exceed",
    ),
    (
        "a disruption budget cannot set both minAvailable and maxUnavailable",
        {
            "webhook": {
                "podDisruptionBudget": {"enabled": True, "minAvailable": 1, "maxUnavailable": 1}
            }
        },
        "webhook.podDisruptionBudget: set minAvailable or maxUnavailable, not both",
    ),
    (
        "a single replica with minAvailable 1 would block node drains",
        {"controller": {"replicaCount": 1}},
        "controller.replicaCount=1 with a PodDisruptionBudget of minAvailable 1",
    ),
    (
        "a copy name may not be the webhook's own TLS Secret",
        {
            "policy": {
                **POLICY,
                "rules": [{"name": "x", "secrets": [{"name": "a", "targetName": TLS_SECRET}]}],
            }
        },
        f'copy name "{TLS_SECRET}"',
    ),
    (
        # null removes the chart's default `defaults` (Helm merges maps into the defaults).
        "a secret without a namespace needs defaults.sourceNamespace",
        {"policy": {"defaults": None, "rules": [{"name": "x", "secrets": ["a"]}]}},
        "policy.rules[0].secrets[0] (a) needs policy.defaults.sourceNamespace",
    ),
    (
        # Helm deletes a null value and the chart's default with it: the ConfigMap would hold a
        # policy without rules, which the webhook refuses.
        "a null rules list is refused at render time",
        {"policy": {"rules": None}},
        "policy.rules is missing: a policy needs a rules list",
    ),
    (
        "extraEnv cannot override a setting the chart derives",
        {"webhook": {"extraEnv": [{"name": "PSI_PORT", "value": "9443"}]}},
        "webhook.extraEnv: PSI_PORT is already set by the chart",
    ),
    (
        "the Service's webhook port may not collide with its metrics port",
        {"service": {"port": 8080}},
        "service.port (8080) collides with the Service's metrics port",
    ),
    (
        "commonLabels cannot override the chart's own labels",
        {"commonLabels": {"app.kubernetes.io/name": "other"}},
        "commonLabels.app.kubernetes.io/name: the chart sets this label itself",
    ),
    (
        "the schema rejects unknown keys",
        {"webhook": {"replicas": 2}},
        "additional properties 'replicas' not allowed",
    ),
    (
        "the schema rejects an unknown failure policy",
        {"admissionWebhook": {"failurePolicy": "Sometimes"}},
        "failurePolicy",
    ),
    (
        "the schema rejects an unknown certificate mode",
        {"certificates": {"mode": "letsencrypt"}},
        "mode",
    ),
]


@pytest.mark.parametrize(
    ("values", "message"),
    [case[1:] for case in FAILURES],
    ids=[case[0] for case in FAILURES],
)
def test_invalid_values_fail_with_a_clear_message(
    chart: Chart, values: dict[str, Any], message: str
) -> None:
    assert message in chart.error(values)


def test_all_value_errors_are_reported_at_once(chart: Chart) -> None:
    stderr = chart.error(
        {
            "certificates": {"mode": "provided"},
            "service": {"type": "ExternalName"},
            "webhook": {"terminationGracePeriodSeconds": 10},
        }
    )
    assert "VALUES VALIDATION" in stderr
    assert stderr.count("\n  - ") == 3, stderr


def test_extra_env_for_settings_the_chart_does_not_derive_is_allowed(render: Render) -> None:
    objects = render({"webhook": {"extraEnv": [{"name": "PSI_KEEPALIVE_SECONDS", "value": "30"}]}})
    assert env(objects, "webhook")["PSI_KEEPALIVE_SECONDS"] == "30"


# -- helm lint, kubeVersion, NOTES -------------------------------------------------------------


@pytest.mark.parametrize(
    "value_files",
    [(), (OPENSHIFT_VALUES,)],
    ids=["helm lint --strict passes with default values", "and with the OpenShift preset"],
)
def test_helm_lint_strict(helm_bin: Path, value_files: tuple[Path, ...]) -> None:
    args = [str(helm_bin), "lint", "--strict", str(CHART), "--namespace", NAMESPACE]
    for path in value_files:
        args += ["--values", str(path)]
    result = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout
    assert "[WARNING]" not in result.stdout
    assert "[ERROR]" not in result.stdout


@pytest.mark.parametrize(
    ("values", "value_files"),
    [(case[1], case[2]) for case in VALUE_SETS],
    ids=VALUE_SET_IDS,
)
def test_rendered_manifests_pass_yamllint_with_chart_testing_rules(
    chart: Chart, tmp_path: Path, values: dict[str, Any], value_files: tuple[Path, ...]
) -> None:
    """`make lint` lints the chart's own YAML; this lints what the templates produce (stray
    whitespace, duplicated keys, tabs) for every supported value set."""
    args = [str(chart.helm), "template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    for path in value_files:
        args += ["--values", str(path)]
    if values:
        args += ["--values", str(_write(tmp_path / "values.yaml", values))]
    rendered = subprocess.run(args, capture_output=True, text=True, timeout=60, check=True)
    lint = subprocess.run(
        [str(REPO / ".venv" / "bin" / "yamllint"), "--strict", "-c",
         str(REPO / "charts" / "lintconf.yaml"), "-"],
        input=rendered.stdout, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert lint.returncode == 0, lint.stdout


@pytest.mark.parametrize(
    ("kube_version", "values", "ok"),
    [
        ("1.30.0", {}, True),
        ("1.36.0", {}, True),
        ("1.29.0", {"admissionPolicy": {"enabled": False}}, True),
        ("1.28.9", {"admissionPolicy": {"enabled": False}}, False),
    ],
    ids=[
        "Kubernetes 1.30 is supported with the admission policies",
        "Kubernetes 1.36 is supported",
        "Kubernetes 1.29 is supported without them",
        "1.28 is refused",
    ],
)
def test_kube_version_constraint(
    chart: Chart, kube_version: str, values: dict[str, Any], ok: bool
) -> None:
    result = chart.run(values, extra_args=("--kube-version", kube_version))
    assert (result.returncode == 0) is ok, result.stderr


def test_admission_policies_on_a_cluster_without_them_fail_with_the_way_out(chart: Chart) -> None:
    stderr = chart.error(extra_args=("--kube-version", "1.29.0"))
    assert "admissionPolicy.enabled needs Kubernetes 1.30 or later" in stderr
    assert "set admissionPolicy.enabled=false" in stderr


def test_chart_metadata() -> None:
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert meta["apiVersion"] == "v2"
    assert meta["appVersion"] == "0.1.0"
    assert meta["kubeVersion"] == ">=1.29.0-0"


# The schema's own tests (generated, strict, anchored patterns) are in test_values_schema.py.


def render_notes(chart: Chart, tmp_path: Path, values: Mapping[str, Any]) -> str:
    """NOTES.txt as `helm install` would print it, without a cluster.

    `helm template` never prints NOTES and `helm install --dry-run` wants a reachable cluster,
    so a copy of the chart wraps NOTES.txt in a define and renders it into a ConfigMap.
    """
    copy = tmp_path / "chart"
    shutil.copytree(CHART, copy)
    notes = (copy / "templates" / "NOTES.txt").read_text()
    (copy / "templates" / "_notes_under_test.tpl").write_text(
        '{{- define "notes-under-test" -}}\n' + notes + "\n{{- end }}\n"
    )
    (copy / "templates" / "notes-under-test.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes-under-test\ndata:\n"
        '  notes: |\n    {{- include "notes-under-test" . | nindent 4 }}\n'
    )
    values_file = _write(tmp_path / "values.yaml", values)
    result = subprocess.run(
        [
            str(chart.helm),
            "template",
            RELEASE,
            str(copy),
            "--namespace",
            NAMESPACE,
            "--values",
            str(values_file),
            "--show-only",
            "templates/notes-under-test.yaml",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    text: str = load_documents(result.stdout)[0]["data"]["notes"]
    return text


def test_notes_give_next_steps(chart: Chart, tmp_path: Path) -> None:
    notes = render_notes(chart, tmp_path, WITH_POLICY)
    assert f"kubectl -n {NAMESPACE} rollout status deploy/{WEBHOOK}" in notes
    assert "/readyz" in notes
    assert "kubectl -n pull-secrets create secret docker-registry" in notes
    assert "(source namespaces: pull-secrets, vendor-secrets)" in notes
    assert "pullsecret-injector validate-policy policy.yaml" in notes
    assert "pullsecret-injector explain pod.yaml --policy policy.yaml" in notes
    assert f"kubectl -n {NAMESPACE} logs deploy/{WEBHOOK}" in notes
    assert f"kubectl -n {NAMESPACE} logs deploy/{CONTROLLER}" in notes
    assert "no rules yet" not in notes


def test_notes_warn_loudly_when_the_admission_policies_are_off(
    chart: Chart, tmp_path: Path
) -> None:
    on = render_notes(chart, tmp_path / "on", WITH_POLICY)
    off = render_notes(
        chart, tmp_path / "off", {**WITH_POLICY, "admissionPolicy": {"enabled": False}}
    )
    assert "WARNING" not in on
    assert f"Admission policies {FULLNAME}-* limit what" in on
    # The warning comes first, before any next step, and says what is at stake.
    assert off.startswith("#" * 20)
    assert "THE CHART'S SERVICEACCOUNT TOKENS ARE NOT GUARDED" in off
    assert "that is cluster-admin" in off
    assert "--set admissionPolicy.enabled=true" in off


def test_notes_name_the_guarded_labels_and_who_may_set_them(chart: Chart, tmp_path: Path) -> None:
    selector = {"selector": {"matchLabels": {"team": "payments"}}}
    rules = [{**POLICY["rules"][0], "namespaces": selector}]
    values = {"policy": {**POLICY, "rules": rules}, "labelGuard": {"enabled": True}}
    notes = render_notes(chart, tmp_path / "on", values)
    assert f"Label guard {FULLNAME}-namespace-labels: only groups system:masters and " in notes
    assert "users (none)\nmay set, change or remove the namespace labels team." in notes
    assert "Label guard" not in render_notes(chart, tmp_path / "off", WITH_POLICY)


def test_notes_say_when_nothing_is_injected_yet(chart: Chart, tmp_path: Path) -> None:
    notes = render_notes(chart, tmp_path, {"logLevel": "INFO"})
    assert "The policy has no rules yet, so nothing is injected." in notes
    assert "creates Secret psi-pullsecret-injector-tls" in notes


def _write(path: Path, values: Mapping[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(dict(values)))
    return path


def test_the_loader_refuses_duplicate_keys() -> None:
    """Every render goes through this loader, so no template emits a key twice."""
    with pytest.raises(yaml.constructor.ConstructorError, match="duplicate key"):
        load_documents("a: 1\na: 2\n")


CLIENT_CA = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"


def test_client_certificates_are_required_only_when_a_client_ca_is_given(render: Render) -> None:
    plain = render({})
    assert "PSI_TLS_CLIENT_CA_FILE" not in env(plain, "webhook")
    mutual = render({"webhook": {"clientAuth": {"caBundle": CLIENT_CA}}})
    assert env(mutual, "webhook")["PSI_TLS_CLIENT_CA_FILE"] == "/client-ca/ca.crt"
    configmap = find(mutual, "ConfigMap", f"{WEBHOOK}-client-ca")
    assert configmap["data"]["ca.crt"].strip() == CLIENT_CA.strip()
    mounts = {m["name"]: m["mountPath"] for m in container(mutual, "webhook")["volumeMounts"]}
    assert mounts["client-ca"] == "/client-ca"


def test_a_client_ca_that_is_not_pem_is_refused_at_install(chart: Chart) -> None:
    assert "caBundle" in chart.error({"webhook": {"clientAuth": {"caBundle": "not a PEM"}}})


def test_the_exclusions_of_the_selectors_reach_both_components(render: Render) -> None:
    objects = render(
        {"admissionWebhook": {"excludeNamespaces": ["legacy", "batch"], "optOutLabel": "x.io/skip"}}
    )
    for component in ("webhook", "controller"):
        assert env(objects, component)["PSI_EXCLUDE_NAMESPACES"] == "legacy,batch"
        assert env(objects, component)["PSI_OPT_OUT_LABEL"] == "x.io/skip"
