"""Image-puller grants: policy schema, the RoleBindings they mean, and admission warnings."""

from __future__ import annotations

import pytest

from webhook.core.clusterview import ClusterStore
from webhook.core.grants import (
    BindImagePuller,
    RoleBindingState,
    UnbindImagePuller,
    grant_actions,
    role_binding_state,
)
from webhook.core.plan import plan
from webhook.core.policy import PolicyInvalid, load_policy
from webhook.core.review import AdmissionRequest

HEAD = "apiVersion: pullsecret-injector.io/v1\nkind: PullSecretPolicy\nrules: []\n"
INTERNAL = "image-registry.openshift-image-registry.svc:5000"
NAMESPACES = {
    "shared": {"kubernetes.io/metadata.name": "shared"},
    "frontend": {"kubernetes.io/metadata.name": "frontend", "tier": "web"},
    "backend": {"kubernetes.io/metadata.name": "backend"},
}


def grants(body: str) -> str:
    return HEAD + "imagePullerGrants:\n" + body


def test_a_grant_becomes_a_group_rolebinding_in_the_image_project() -> None:
    policy = load_policy(
        grants("  - {name: g, imageProjects: [shared], pullers: {include: [frontend]}}\n")
    )
    assert grant_actions(policy, NAMESPACES, []) == [
        BindImagePuller(
            "shared",
            "pullsecret-injector-image-puller-frontend",
            "g",
            "Group",
            "system:serviceaccounts:frontend",
        )
    ]


def test_a_grant_for_one_service_account_binds_only_it() -> None:
    policy = load_policy(
        grants(
            "  - {name: g, imageProjects: [shared], "
            "pullers: {selector: {matchLabels: {tier: web}}}, serviceAccount: deployer}\n"
        )
    )
    (action,) = grant_actions(policy, NAMESPACES, [])
    assert isinstance(action, BindImagePuller)
    assert (action.subject_kind, action.subject_name, action.subject_namespace) == (
        "ServiceAccount",
        "deployer",
        "frontend",
    )


def _state(name: str, subject: str, managed: bool = True) -> RoleBindingState:
    return role_binding_state(
        {
            "metadata": {
                "namespace": "shared",
                "name": name,
                "uid": "u-1",
                "labels": {"app.kubernetes.io/managed-by": "pullsecret-injector"}
                if managed
                else {},
            },
            "subjects": [
                {"kind": "Group", "name": subject, "apiGroup": "rbac.authorization.k8s.io"}
            ],
        }
    )


@pytest.mark.parametrize(
    ("existing", "expected"),
    [
        pytest.param(
            [
                _state(
                    "pullsecret-injector-image-puller-frontend", "system:serviceaccounts:frontend"
                )
            ],
            [],
            id="an existing matching binding needs nothing",
        ),
        pytest.param(
            [_state("pullsecret-injector-image-puller-backend", "system:serviceaccounts:backend")],
            [
                UnbindImagePuller("shared", "pullsecret-injector-image-puller-backend", "u-1"),
                BindImagePuller(
                    "shared",
                    "pullsecret-injector-image-puller-frontend",
                    "g",
                    "Group",
                    "system:serviceaccounts:frontend",
                ),
            ],
            id="a binding no grant wants is removed and the wanted one created",
        ),
        pytest.param(
            [
                _state(
                    "pullsecret-injector-image-puller-backend",
                    "system:serviceaccounts:backend",
                    managed=False,
                ),
                _state(
                    "pullsecret-injector-image-puller-frontend", "system:serviceaccounts:frontend"
                ),
            ],
            [],
            id="a binding we did not create is never removed",
        ),
    ],
)
def test_grants_reconcile_only_our_bindings(
    existing: list[RoleBindingState], expected: list[object]
) -> None:
    policy = load_policy(
        grants("  - {name: g, imageProjects: [shared], pullers: {include: [frontend]}}\n")
    )
    assert grant_actions(policy, NAMESPACES, existing) == expected


def test_removing_every_grant_removes_every_binding_we_made() -> None:
    policy = load_policy(HEAD)
    existing = [
        _state("pullsecret-injector-image-puller-frontend", "system:serviceaccounts:frontend")
    ]
    assert grant_actions(policy, NAMESPACES, existing) == [
        UnbindImagePuller("shared", "pullsecret-injector-image-puller-frontend", "u-1")
    ]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        pytest.param(
            "  - {name: g, pullers: {include: [a]}}\n",
            "imagePullerGrants[0].imageProjects",
            id="image projects are required",
        ),
        pytest.param(
            "  - {name: g, imageProjects: [a]}\n",
            "imagePullerGrants[0].pullers: is required",
            id="pullers are required",
        ),
        pytest.param(
            "  - {name: G, imageProjects: [a], pullers: {}}\n",
            "imagePullerGrants[0].name",
            id="grant names are DNS labels",
        ),
        pytest.param(
            "  - {name: g, imageProjects: [a], pullers: {}}\n"
            "  - {name: g, imageProjects: [b], pullers: {}}\n",
            "imagePullerGrants[1].name: duplicate grant name",
            id="grant names are unique",
        ),
    ],
)
def test_grant_errors_are_located(body: str, error: str) -> None:
    with pytest.raises(PolicyInvalid) as caught:
        load_policy(grants(body))
    assert any(error in str(e) for e in caught.value.errors), caught.value.errors


@pytest.mark.parametrize(
    ("namespace", "image", "account", "warned"),
    [
        pytest.param(
            "frontend",
            f"{INTERNAL}/shared/app:1",
            "default",
            False,
            id="a granted project pulls quietly",
        ),
        pytest.param(
            "backend",
            f"{INTERNAL}/shared/app:1",
            "default",
            True,
            id="an ungranted project is warned",
        ),
        pytest.param(
            "backend",
            f"{INTERNAL}/backend/app:1",
            "default",
            False,
            id="a project's own images need no grant",
        ),
        pytest.param(
            "backend",
            "quay.io/shared/app:1",
            "default",
            False,
            id="other registries are not checked",
        ),
    ],
)
def test_cross_project_pulls_without_a_grant_are_warned(
    namespace: str, image: str, account: str, warned: bool
) -> None:
    policy = load_policy(
        grants("  - {name: g, imageProjects: [shared], pullers: {include: [frontend]}}\n")
    )
    store = ClusterStore()
    for name, labels in NAMESPACES.items():
        store.put_namespace(name, labels)
    pod = {"spec": {"serviceAccountName": account, "containers": [{"name": "c", "image": image}]}}
    decided = plan(policy, AdmissionRequest("Pod", "CREATE", namespace, pod), store)
    assert decided.ops == ()
    assert any("no imagePullerGrants entry lets" in w for w in decided.warnings) is warned
