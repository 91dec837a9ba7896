"""The opt-in label guard on the real API server (issue 16 §6): tenants cannot steer credentials.

A rule that selects namespaces by label gives its secrets to every namespace carrying the
label, so a tenant with ``patch`` on its own namespace could set ``team=payments`` and receive
``payments-pull``. With ``labelGuard.enabled`` the chart's ValidatingAdmissionPolicy refuses,
to everyone outside ``labelGuard.allowedUsers``/``allowedGroups``, a Namespace create or update
that sets, changes or removes a label the policy's selectors use. Here a tenant (a client
certificate user whose RBAC allows patching its namespace and creating namespaces) is refused
with the rule's message, an allowed group sets the same label, and a label no selector uses is
untouched by the guard. Without the template the tenant's patch succeeds, so these fail.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.e2e.support import Api, unique, wait_until
from tools.controlplane import ControlPlane
from tools.local_release import LocalRelease

RELEASE = "labels"
NAMESPACE = "psi-labels"
SOURCES = "psi-labels-src"
FULLNAME = f"{RELEASE}-pullsecret-injector"
GUARD = f"{FULLNAME}-namespace-labels"
TEAM = "e2e-guard.example.com/team"  # the label the policy's rule selects on
TIER = "e2e-guard.example.com/tier"  # a NotIn selector: removing it matters as much
FREE = "e2e-guard.example.com/owner"  # no selector uses it
TENANT = "e2e-label-tenant"
PLATFORM = "e2e-label-platform-bot"
PLATFORM_GROUP = "e2e-platform"

VALUES: dict[str, Any] = {
    "policy": {
        "defaults": {"sourceNamespace": SOURCES},
        "rules": [
            {
                "name": "payments",
                "registries": ["payments.example.com"],
                "secrets": ["payments-pull"],
                "namespaces": {
                    "selector": {
                        "matchLabels": {TEAM: "payments"},
                        "matchExpressions": [{"key": TIER, "operator": "NotIn", "values": ["x"]}],
                    }
                },
            }
        ],
    },
    "labelGuard": {"enabled": True, "allowedGroups": ["system:masters", PLATFORM_GROUP]},
}


def _refusal(namespace: str, user: str, labels: str) -> str:
    return (
        f"ValidatingAdmissionPolicy '{GUARD}' with binding '{GUARD}' denied request: "
        f"pullsecret-injector rule guarded-namespace-labels: {user} may not set, change or "
        f"remove {labels} on namespace {namespace}: these labels decide which pull secrets a "
        "namespace receives"
    )


def _patch_labels(api: Api, namespace: str, labels: dict[str, str | None], **kwargs: Any) -> None:
    api.core.patch_namespace(namespace, {"metadata": {"labels": labels}}, **kwargs)


def _forbidden(call: Callable[[], object]) -> str:
    with pytest.raises(ApiException) as caught:
        call()
    assert caught.value.status == 403, caught.value.body
    message: str = json.loads(caught.value.body)["message"]
    return message


def _cluster_role(
    api: Api, name: str, rules: list[dict[str, Any]], subject: dict[str, str]
) -> None:
    rbac = client.RbacAuthorizationV1Api(api.api)
    rbac.create_cluster_role({"metadata": {"name": name}, "rules": rules})
    rbac.create_cluster_role_binding(
        {
            "metadata": {"name": name},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": name,
            },
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", **subject}],
        }
    )


def _delete_cluster_role(api: Api, name: str) -> None:
    rbac = client.RbacAuthorizationV1Api(api.api)
    for call in (rbac.delete_cluster_role_binding, rbac.delete_cluster_role):
        try:
            call(name)
        except ApiException as exc:
            if exc.status != 404:
                raise


@pytest.fixture(scope="module")
def tenant_namespace(api: Api) -> Iterator[str]:
    name = unique("tenant")
    api.ensure_namespace(name, {TIER: "standard"})
    yield name
    api.core.delete_namespace(name)


@pytest.fixture(scope="module")
def users(control_plane: ControlPlane, api: Api, tenant_namespace: str) -> Iterator[dict[str, Api]]:
    """The tenant may read and patch its own namespace and create namespaces (as on a
    self-service platform); the platform bot, in an allowed group, may patch any namespace."""
    tenant_role, platform_role = unique("e2e-label-tenant"), unique("e2e-label-platform")
    _cluster_role(
        api,
        tenant_role,
        [
            {
                "apiGroups": [""],
                "resources": ["namespaces"],
                "resourceNames": [tenant_namespace],
                "verbs": ["get", "patch", "update"],
            },
            {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["create"]},
        ],
        {"kind": "User", "name": TENANT},
    )
    _cluster_role(
        api,
        platform_role,
        [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "patch", "update"]}],
        {"kind": "Group", "name": PLATFORM_GROUP},
    )
    try:
        yield {
            "tenant": Api(control_plane, control_plane.kubeconfig_for_user(TENANT)),
            "platform": Api(
                control_plane, control_plane.kubeconfig_for_user(PLATFORM, [PLATFORM_GROUP])
            ),
        }
    finally:
        _delete_cluster_role(api, tenant_role)
        _delete_cluster_role(api, platform_role)


def _guard_in_force(tenant: Api, namespace: str) -> bool:
    """The API server enforces the policy (it takes effect a moment after creation)."""
    try:
        _patch_labels(tenant, namespace, {TEAM: "probe"}, dry_run="All")
    except ApiException as exc:
        return exc.status == 403 and GUARD in str(exc.body)
    return False


@pytest.fixture(scope="module")
def release(
    control_plane: ControlPlane,
    api: Api,
    users: dict[str, Api],
    tenant_namespace: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LocalRelease]:
    """The chart installed with the label guard; its pods need not run for the guard to act."""
    api.ensure_namespace(SOURCES)
    local = LocalRelease(
        control_plane, RELEASE, NAMESPACE, tmp_path_factory.mktemp("labels-release"), VALUES
    )
    local.install()
    try:
        wait_until(
            lambda: _guard_in_force(users["tenant"], tenant_namespace),
            "the label guard to be in force",
            60,
        )
        yield local
    finally:
        local.uninstall()


def _labels(api: Api, namespace: str) -> dict[str, str]:
    labels: dict[str, str] = api.read(api.core.read_namespace, namespace)["metadata"]["labels"]
    return labels


def test_the_guard_is_type_checked_clean(release: LocalRelease, api: Api) -> None:
    """kube-controller-manager type-checks each expression against the Namespace schema."""
    admission = client.AdmissionregistrationV1Api(api.api)

    def checked() -> dict[str, Any] | None:
        policy = api.read(admission.read_validating_admission_policy, GUARD)
        status: dict[str, Any] = policy.get("status") or {}
        done = status.get("observedGeneration") == policy["metadata"]["generation"]
        return status if done else None

    status = wait_until(checked, f"the type check of {GUARD}", timeout=60)
    assert status.get("typeChecking") == {}, status


def test_a_tenant_cannot_give_its_namespace_the_label_a_rule_selects_on(
    release: LocalRelease, users: dict[str, Api], api: Api, tenant_namespace: str
) -> None:
    message = _forbidden(
        lambda: _patch_labels(users["tenant"], tenant_namespace, {TEAM: "payments"})
    )
    assert _refusal(tenant_namespace, TENANT, TEAM) in message, message
    assert TEAM not in _labels(api, tenant_namespace)


def test_a_tenant_cannot_remove_or_change_a_guarded_label_either(
    release: LocalRelease, users: dict[str, Api], api: Api, tenant_namespace: str
) -> None:
    # Removing the NotIn label could widen what the namespace receives as much as adding one.
    message = _forbidden(lambda: _patch_labels(users["tenant"], tenant_namespace, {TIER: None}))
    assert _refusal(tenant_namespace, TENANT, TIER) in message, message
    message = _forbidden(
        lambda: _patch_labels(users["tenant"], tenant_namespace, {TIER: "other", TEAM: "x"})
    )
    assert _refusal(tenant_namespace, TENANT, f"{TEAM}, {TIER}") in message, message
    assert _labels(api, tenant_namespace)[TIER] == "standard"


def test_a_tenant_cannot_create_a_namespace_carrying_a_guarded_label(
    release: LocalRelease, users: dict[str, Api], api: Api
) -> None:
    name = unique("tenant-new")
    body = {"metadata": {"name": name, "labels": {TEAM: "payments"}}}
    message = _forbidden(lambda: users["tenant"].core.create_namespace(body))
    assert _refusal(name, TENANT, TEAM) in message, message
    # Without the guarded label the same tenant creates namespaces as before.
    users["tenant"].core.create_namespace({"metadata": {"name": name, "labels": {FREE: "me"}}})
    try:
        assert _labels(api, name)[FREE] == "me"
    finally:
        api.core.delete_namespace(name)


def test_labels_no_selector_uses_are_untouched_by_the_guard(
    release: LocalRelease, users: dict[str, Api], api: Api, tenant_namespace: str
) -> None:
    _patch_labels(users["tenant"], tenant_namespace, {FREE: "tenant"})
    assert _labels(api, tenant_namespace)[FREE] == "tenant"
    _patch_labels(users["tenant"], tenant_namespace, {FREE: None})
    assert FREE not in _labels(api, tenant_namespace)


def test_an_allowed_group_may_set_and_remove_the_guarded_label(
    release: LocalRelease, users: dict[str, Api], api: Api, tenant_namespace: str
) -> None:
    _patch_labels(users["platform"], tenant_namespace, {TEAM: "payments"})
    assert _labels(api, tenant_namespace)[TEAM] == "payments"
    # Once set by the platform, the tenant still cannot take it off or repoint it.
    message = _forbidden(lambda: _patch_labels(users["tenant"], tenant_namespace, {TEAM: "ops"}))
    assert _refusal(tenant_namespace, TENANT, TEAM) in message, message
    _patch_labels(users["platform"], tenant_namespace, {TEAM: None})
    assert TEAM not in _labels(api, tenant_namespace)
