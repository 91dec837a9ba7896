"""Each OpenShift pull-secret procedure, done by policy on the real API server.

A vanilla kube-apiserver has no OpenShift API groups, so the objects a procedure relies on
(the ``system:image-puller`` ClusterRole, ``openshift-config/pull-secret``, the
``<sa>-dockercfg-*`` entries OpenShift adds to ServiceAccounts) are created by the tests.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Callable, Iterator

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.e2e.support import (
    INJECT_LABEL,
    SOURCE_NAMESPACE,
    Api,
    ControllerProcess,
    WebhookServer,
    pod,
    pull_secret,
    secret_names,
    unique,
    wait_until,
)
from tools.controlplane import ControlPlane

Policy = Callable[[str], str]
INTERNAL = "image-registry.openshift-image-registry.svc:5000"


@pytest.fixture(scope="module")
def controller(
    control_plane: ControlPlane, webhook: WebhookServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControllerProcess]:
    workdir = tmp_path_factory.mktemp("os-controller")
    with ControllerProcess(control_plane, workdir, "os-controller").running() as process:
        yield process


@pytest.fixture(scope="module")
def image_puller_role(api: Api) -> Iterator[None]:
    """OpenShift's ClusterRole (its real rules: read image layers of image streams)."""
    rbac = client.RbacAuthorizationV1Api(api.api)
    body = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "system:image-puller"},
        "rules": [
            {
                "apiGroups": ["image.openshift.io", ""],
                "resources": ["imagestreams/layers"],
                "verbs": ["get"],
            }
        ],
    }
    with contextlib.suppress(ApiException):
        rbac.create_cluster_role(body)
    yield
    with contextlib.suppress(ApiException):
        rbac.delete_cluster_role("system:image-puller")


@pytest.fixture
def projects(api: Api, control_plane: ControlPlane) -> Iterator[Callable[[str], str]]:
    created: list[str] = []

    def make(prefix: str) -> str:
        name = unique(prefix)
        api.ensure_namespace(name, {INJECT_LABEL: "true"})
        control_plane.wait_for_service_account(name)
        created.append(name)
        return name

    yield make
    for name in created:
        api.core.delete_namespace(name)


def _image_puller_bindings(api: Api, namespace: str) -> list[dict[str, object]]:
    rbac = client.RbacAuthorizationV1Api(api.api)
    items = api.read(rbac.list_namespaced_role_binding, namespace)["items"]
    return [b for b in items if b["roleRef"]["name"] == "system:image-puller"]


def test_cross_project_pulls_are_granted_and_revoked_by_policy(
    api: Api,
    controller: ControllerProcess,
    image_puller_role: None,
    policy: Policy,
    projects: Callable[[str], str],
) -> None:
    images, puller, stranger = projects("images"), projects("frontend"), projects("stranger")
    grant = (
        f"defaults: {{sourceNamespace: {SOURCE_NAMESPACE}, internalRegistry: '{INTERNAL}'}}\n"
        "rules: []\n"
        f"imagePullerGrants:\n  - {{name: shared, imageProjects: [{images}], "
        f"pullers: {{include: [{puller}]}}}}\n"
    )
    policy(grant)
    bindings = wait_until(
        lambda: _image_puller_bindings(api, images), "the image-puller RoleBinding", timeout=60
    )
    assert len(bindings) == 1
    assert bindings[0]["subjects"] == [
        {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Group",
            "name": f"system:serviceaccounts:{puller}",
        }
    ]
    assert (
        bindings[0]["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "pullsecret-injector"
    )  # type: ignore[index]

    image = f"{INTERNAL}/{images}/app:1"
    _, granted_warnings = api.create_pod(puller, pod("granted", image))
    _, stranger_warnings = api.create_pod(stranger, pod("stranger", image))
    assert granted_warnings == []
    assert any("no imagePullerGrants entry lets" in w and images in w for w in stranger_warnings)

    defaults = f"defaults: {{sourceNamespace: {SOURCE_NAMESPACE}, internalRegistry: '{INTERNAL}'}}"
    policy(defaults + "\nrules: []\n")
    wait_until(
        lambda: _image_puller_bindings(api, images) == [], "the RoleBinding to go", timeout=60
    )


def test_the_global_pull_secret_is_a_source_and_namespaces_get_only_their_registries(
    api: Api, controller: ControllerProcess, policy: Policy, projects: Callable[[str], str]
) -> None:
    api.ensure_namespace("openshift-config")
    api.apply_secret(
        pull_secret(
            "pull-secret",
            "openshift-config",
            {
                "cloud.openshift.com": "cloud",
                "quay.io": "quay",
                "registry.redhat.io": "redhat",
                "registry.connect.redhat.com": "connect",
            },
        )
    )
    target = projects("rh")
    policy(
        "rules:\n  - name: redhat\n    registries: [registry.redhat.io]\n"
        "    secrets: [{name: pull-secret, namespace: openshift-config, targetName: redhat-pull}]\n"
        f"    namespaces: {{include: ['{target}']}}\n    credentialSubset: true\n"
    )
    stored, warnings = api.create_pod(target, pod("rh", "registry.redhat.io/ubi9/ubi:latest"))
    assert "redhat-pull" in secret_names(stored)
    assert warnings == []
    copy = api.secret(target, "redhat-pull")
    assert copy is not None
    auths = json.loads(base64.b64decode(copy["data"][".dockerconfigjson"]))["auths"]
    assert sorted(auths) == ["registry.redhat.io"], "only the granted registry's credentials"


def test_delegated_authentication_injects_both_secrets_of_one_rule(
    api: Api, policy: Policy, projects: Callable[[str], str], webhook: WebhookServer
) -> None:
    api.apply_secret(pull_secret("registry-pull", SOURCE_NAMESPACE, {"registry.example.com": "r"}))
    api.apply_secret(pull_secret("sso-pull", SOURCE_NAMESPACE, {"sso.example.com": "s"}))
    policy(
        "rules:\n  - {name: delegated, registries: [registry.example.com], "
        "secrets: [registry-pull, sso-pull]}\n"
    )
    target = projects("delegated")
    stored, warnings = api.create_pod(target, pod("d", "registry.example.com/app:1"))
    assert secret_names(stored)[-2:] == ["registry-pull", "sso-pull"]
    assert warnings == []
    assert api.secret(target, "sso-pull") is not None


def test_secrets_link_for_pull_keeps_openshifts_own_dockercfg_entries(
    api: Api, controller: ControllerProcess, policy: Policy, projects: Callable[[str], str]
) -> None:
    api.apply_secret(pull_secret("link-pull", SOURCE_NAMESPACE, {"link.example.com": "l"}))
    target = projects("link")
    builder = unique("builder")
    api.core.create_namespaced_service_account(
        target,
        {
            "metadata": {"name": builder},
            "imagePullSecrets": [{"name": f"{builder}-dockercfg-x7k2p"}],
        },
    )
    policy(
        "rules:\n  - {name: link, secrets: [link-pull], "
        f"namespaces: {{include: ['{target}']}}, "
        "serviceAccounts: {names: ['builder-*', default], backfill: true}}\n"
    )

    def linked() -> list[str]:
        account = api.read(api.core.read_namespaced_service_account, builder, target)
        names = secret_names(account, ("imagePullSecrets",))
        return names if "link-pull" in names else []

    names = wait_until(linked, "the existing ServiceAccount to be backfilled", timeout=60)
    assert names == [f"{builder}-dockercfg-x7k2p", "link-pull"]
    created = unique("builder")
    api.core.create_namespaced_service_account(
        target,
        {
            "metadata": {"name": created},
            "imagePullSecrets": [{"name": f"{created}-dockercfg-abcde"}],
        },
    )
    account = api.read(api.core.read_namespaced_service_account, created, target)
    assert secret_names(account, ("imagePullSecrets",)) == [
        f"{created}-dockercfg-abcde",
        "link-pull",
    ]
