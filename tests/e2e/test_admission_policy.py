"""The chart's admission policies on the real API server: a chart token is not cluster-admin.

Issue 16 §1: RBAC cannot limit `create secrets` by name or type, so without the chart's
ValidatingAdmissionPolicies either ServiceAccount token could create, in kube-system, a Secret
of type ``kubernetes.io/service-account-token`` named like a copy and annotated for
``generic-garbage-collector``; kube-controller-manager (running here with its token controller)
fills in a token, and the chart's RBAC lets the attacker read it back by name. Here the attack
is run with each chart token and refused, no token is minted, every other write outside what
the product does is refused by a named rule, and the product's own writes (copies at admission,
copy create/update/delete, backfill, certificates) still go through. The last test turns the
policies off and shows the same attack succeeding, so the refusal tests can fail.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.e2e.support import Api, pod, pull_secret, secret_names, unique, wait_until
from tools.controlplane import ControlPlane
from tools.local_release import LocalRelease, RunningPod
from webhook.core.conventions import FORCE_RENEWAL_ANNOTATION, MANAGED_BY_LABEL, MANAGED_BY_VALUE

RELEASE = "guard"
NAMESPACE = "psi-guard"
SOURCES = "psi-guard-src"
FULLNAME = f"{RELEASE}-pullsecret-injector"
WEBHOOK_SA = f"{FULLNAME}-webhook"
CONTROLLER_SA = f"{FULLNAME}-controller"
TLS_SECRET = f"{FULLNAME}-tls"
SECRET = "guard-pull"
HOOK_LABEL = "e2e.pullsecret-injector.io/guard"
COPIES_LABEL = "e2e.pullsecret-injector.io/guard-copies"
POLICIES = ("secrets", "webhook-configuration", "serviceaccounts", "rolebindings")
TOKEN_TYPE = "kubernetes.io/service-account-token"
PRIVILEGED_SA = "generic-garbage-collector"  # kube-controller-manager's; may delete anything

VALUES: dict[str, Any] = {
    "policy": {
        "defaults": {"sourceNamespace": SOURCES},
        "rules": [
            {
                "name": "guard",
                "registries": ["guard.example.com"],
                "secrets": [SECRET],
                "namespaces": {
                    "include": ["guard-*"],
                    "selector": {"matchLabels": {COPIES_LABEL: "yes"}},
                },
                "serviceAccounts": {"names": ["default", "builder"], "backfill": True},
            }
        ],
    },
    "admissionWebhook": {
        "timeoutSeconds": 10,
        "namespaceSelector": {
            "matchExpressions": [{"key": HOOK_LABEL, "operator": "In", "values": ["true"]}]
        },
    },
    "controller": {"resyncSeconds": 10},
    # RoleBinding writes granted, so the RoleBinding rule is tried against real RBAC.
    "rbac": {"openshiftImagePuller": True},
}


def _refusal(guard: str, rule: str) -> str:
    """The start of the API server's message for a refusal by one of our rules."""
    return (
        f"ValidatingAdmissionPolicy '{FULLNAME}-{guard}' with binding '{FULLNAME}-{guard}' "
        f"denied request: pullsecret-injector rule {rule}: "
    )


def _attack_secret(namespace: str = "kube-system", name: str = SECRET) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": TOKEN_TYPE,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "annotations": {"kubernetes.io/service-account.name": PRIVILEGED_SA},
        },
    }


def _copy(namespace: str, name: str = SECRET, labelled: bool = True) -> dict[str, Any]:
    body = pull_secret(name, namespace, {"guard.example.com": "attacker"})
    if labelled:
        body["metadata"]["labels"] = {MANAGED_BY_LABEL: MANAGED_BY_VALUE}
    return body


def _guard_in_force(as_webhook: Api) -> bool:
    """The API server enforces the policies (they take effect a moment after creation)."""
    try:
        as_webhook.core.create_namespaced_secret(
            NAMESPACE, _copy(NAMESPACE, "guard-probe", labelled=False), dry_run="All"
        )
    except ApiException as exc:
        return exc.status == 403 and "ValidatingAdmissionPolicy" in str(exc.body)
    return False


@pytest.fixture(scope="module")
def release(
    control_plane: ControlPlane, api: Api, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalRelease]:
    api.ensure_namespace(SOURCES)
    api.apply_secret(pull_secret(SECRET, SOURCES, {"guard.example.com": "guard"}))
    local = LocalRelease(
        control_plane, RELEASE, NAMESPACE, tmp_path_factory.mktemp("guard-release"), VALUES
    )
    local.install()
    try:
        probe = Api(control_plane, local.token_kubeconfig(WEBHOOK_SA))
        wait_until(lambda: _guard_in_force(probe), "the admission policies to be in force", 60)
        # Started only now, so every write they make (certificates first) meets the policies.
        local.start("-controller")
        local.start("-webhook")
        yield local
    finally:
        local.stop()
        local.uninstall()


@pytest.fixture(scope="module")
def tokens(release: LocalRelease, control_plane: ControlPlane) -> dict[str, Api]:
    """API clients authenticated as the chart's two ServiceAccounts (real tokens)."""
    return {
        "webhook": Api(control_plane, release.token_kubeconfig(WEBHOOK_SA)),
        "controller": Api(control_plane, release.token_kubeconfig(CONTROLLER_SA)),
    }


@pytest.fixture
def bare(api: Api, control_plane: ControlPlane) -> Iterator[str]:
    """A namespace no rule reaches: nothing of ours is written there unless a test does."""
    name = unique("bare")
    api.ensure_namespace(name)
    control_plane.wait_for_service_account(name)
    yield name
    api.core.delete_namespace(name)


@pytest.fixture
def target(api: Api, control_plane: ControlPlane) -> Iterator[str]:
    """A namespace the rule reaches and the webhook is called for."""
    name = unique("guard")
    api.ensure_namespace(name, {HOOK_LABEL: "true", COPIES_LABEL: "yes"})
    control_plane.wait_for_service_account(name)
    yield name
    api.core.delete_namespace(name)


def _forbidden(call: Callable[[], object]) -> str:
    """Run a write that must be refused; return the API server's message."""
    with pytest.raises(ApiException) as caught:
        call()
    assert caught.value.status == 403, caught.value.body
    message: str = json.loads(caught.value.body)["message"]
    return message


# -- the policies themselves ---------------------------------------------------------------


def test_every_policy_is_type_checked_clean(release: LocalRelease, api: Api) -> None:
    """kube-controller-manager type-checks each expression against the real schemas."""
    admission = client.AdmissionregistrationV1Api(api.api)
    for guard in POLICIES:
        name = f"{FULLNAME}-{guard}"

        def checked(name: str = name) -> dict[str, Any] | None:
            policy = api.read(admission.read_validating_admission_policy, name)
            status: dict[str, Any] = policy.get("status") or {}
            done = status.get("observedGeneration") == policy["metadata"]["generation"]
            return status if done else None

        status = wait_until(checked, f"the type check of {name}", timeout=60)
        assert status.get("typeChecking") == {}, status


# -- the attack ----------------------------------------------------------------------------


@pytest.mark.parametrize("component", ["webhook", "controller"])
def test_the_token_minting_attack_is_refused_and_no_token_is_minted(
    tokens: dict[str, Api], api: Api, component: str
) -> None:
    attacker = tokens[component]

    message = _forbidden(
        lambda: attacker.core.create_namespaced_secret("kube-system", _attack_secret())
    )

    assert message.startswith(f'secrets "{SECRET}" is forbidden: ')
    assert _refusal("secrets", "pull-secret-type") in message
    assert f"the {component} may only write Secrets of type kubernetes.io/dockerconfigjson" in (
        message
    )
    assert f"kube-system/{SECRET} has type {TOKEN_TYPE}" in message
    # Nothing was stored, so kube-controller-manager has nothing to fill a token into, and
    # the name the attacker may read holds nothing.
    assert api.secret("kube-system", SECRET) is None
    with pytest.raises(ApiException) as caught:
        attacker.core.read_namespaced_secret(SECRET, "kube-system")
    assert caught.value.status == 404
    minted = [
        s["metadata"]["name"]
        for s in api.read(api.core.list_namespaced_secret, "kube-system")["items"]
        if s.get("type") == TOKEN_TYPE
    ]
    assert minted == []


def test_the_controller_cannot_mint_a_token_under_its_certificate_names(
    tokens: dict[str, Api], api: Api
) -> None:
    """Its own TLS Secret is the one non-copy name it may write, and only as kubernetes.io/tls."""
    attacker = tokens["controller"]
    name = f"{TLS_SECRET}-ca"
    before = api.secret(NAMESPACE, name)
    assert before is not None  # the controller made it at startup, under the policies

    message = _forbidden(
        lambda: attacker.core.create_namespaced_secret(NAMESPACE, _attack_secret(NAMESPACE, "x"))
    )

    assert _refusal("secrets", "pull-secret-type") in message
    assert f"its own certificate Secrets {NAMESPACE}/{TLS_SECRET} (kubernetes.io/tls)" in message
    assert api.secret(NAMESPACE, "x") is None


# -- every other write outside what the product does ------------------------------------------


MWC = client.AdmissionregistrationV1Api
JSON_PATCH = "application/json-patch+json"


def _patch_webhook(api: Api, ops: list[dict[str, Any]], dry_run: bool = False) -> object:
    kwargs: dict[str, Any] = {"_content_type": JSON_PATCH}
    if dry_run:
        kwargs["dry_run"] = "All"
    return MWC(api.api).patch_mutating_webhook_configuration(FULLNAME, ops, **kwargs)


def _patch_account(
    api: Api, namespace: str, ops: list[dict[str, Any]], dry_run: bool = False
) -> object:
    kwargs: dict[str, Any] = {"_content_type": JSON_PATCH}
    if dry_run:
        kwargs["dry_run"] = "All"
    return api.core.patch_namespaced_service_account("default", namespace, ops, **kwargs)


def _role_binding(namespace: str, role: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {
            "name": "pulls",
            "namespace": namespace,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE},
        },
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": namespace}],
    }


def _bind(api: Api, namespace: str, role: str, dry_run: bool = False) -> object:
    rbac = client.RbacAuthorizationV1Api(api.api)
    body = _role_binding(namespace, role)
    if dry_run:
        return rbac.create_namespaced_role_binding(namespace, body, dry_run="All")
    return rbac.create_namespaced_role_binding(namespace, body)


Write = Callable[[dict[str, Api], Api, str], object]

REFUSED: list[tuple[str, str, Write, str, str]] = [
    (
        "an Opaque Secret with a copy name",
        "webhook",
        lambda t, a, ns: t["webhook"].core.create_namespaced_secret(
            ns, {**_copy(ns), "type": "Opaque", "data": {"x": "eA=="}}
        ),
        "secrets",
        "pull-secret-type",
    ),
    (
        "a pull secret without our label",
        "webhook",
        lambda t, a, ns: t["webhook"].core.create_namespaced_secret(ns, _copy(ns, labelled=False)),
        "secrets",
        "managed-by-label",
    ),
    (
        "a labelled pull secret under a name the policy does not manage",
        "webhook",
        lambda t, a, ns: t["webhook"].core.create_namespaced_secret(ns, _copy(ns, "db-password")),
        "secrets",
        "managed-name",
    ),
    (
        "taking over a foreign Secret that has a copy name by labelling it",
        "controller",
        lambda t, a, ns: (
            a.core.create_namespaced_secret(ns, _copy(ns, labelled=False)),
            t["controller"].core.patch_namespaced_secret(
                SECRET, ns, {"metadata": {"labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE}}}
            ),
        ),
        "secrets",
        "never-take-over",
    ),
    (
        "deleting a foreign Secret that has a copy name",
        "controller",
        lambda t, a, ns: (
            a.core.create_namespaced_secret(ns, _copy(ns, labelled=False)),
            t["controller"].core.delete_namespaced_secret(SECRET, ns),
        ),
        "secrets",
        "managed-by-label",
    ),
    (
        "the webhook configuration made fail-closed",
        "controller",
        lambda t, a, ns: _patch_webhook(
            t["controller"],
            [{"op": "replace", "path": "/webhooks/0/failurePolicy", "value": "Fail"}],
        ),
        "webhook-configuration",
        "ca-bundle-only",
    ),
    (
        "the webhook configuration pointed at another Service",
        "controller",
        lambda t, a, ns: _patch_webhook(
            t["controller"],
            [{"op": "replace", "path": "/webhooks/0/clientConfig/service/name", "value": "evil"}],
        ),
        "webhook-configuration",
        "ca-bundle-only",
    ),
    (
        "a ServiceAccount given an annotation (e.g. a cloud IAM role)",
        "controller",
        lambda t, a, ns: _patch_account(
            t["controller"],
            ns,
            [{"op": "add", "path": "/metadata/annotations", "value": {"iam.example.com/r": "x"}}],
        ),
        "serviceaccounts",
        "image-pull-secrets-only",
    ),
    (
        "a ServiceAccount given a pull secret that is not a copy",
        "controller",
        lambda t, a, ns: _patch_account(
            t["controller"],
            ns,
            [{"op": "add", "path": "/imagePullSecrets", "value": [{"name": "db-password"}]}],
        ),
        "serviceaccounts",
        "image-pull-secrets-only",
    ),
    (
        "a RoleBinding that hands the controller's own ClusterRole to someone",
        "controller",
        lambda t, a, ns: _bind(t["controller"], ns, CONTROLLER_SA),
        "rolebindings",
        "image-puller-only",
    ),
]


@pytest.mark.parametrize(
    ("component", "write", "guard", "rule"),
    [case[1:] for case in REFUSED],
    ids=[f"the {case[1]} cannot write {case[0]}" for case in REFUSED],
)
def test_writes_beyond_the_product_are_refused_by_a_named_rule(
    tokens: dict[str, Api],
    api: Api,
    bare: str,
    component: str,
    write: Write,
    guard: str,
    rule: str,
) -> None:
    message = _forbidden(lambda: write(tokens, api, bare))
    assert _refusal(guard, rule) in message
    assert f"the {component}" in message


ALLOWED: list[tuple[str, Write]] = [
    (
        "the controller may change its webhook configuration's caBundle",
        lambda t, a, ns: _patch_webhook(
            t["controller"],
            [{"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": "Zm9v"}],
            dry_run=True,
        ),
    ),
    (
        "the controller may add a copy name to a ServiceAccount",
        lambda t, a, ns: _patch_account(
            t["controller"],
            ns,
            [{"op": "add", "path": "/imagePullSecrets", "value": [{"name": SECRET}]}],
            dry_run=True,
        ),
    ),
    (
        "the controller may bind system:image-puller to a ServiceAccount",
        lambda t, a, ns: _bind(t["controller"], ns, "system:image-puller", dry_run=True),
    ),
    (
        "the webhook may create a labelled copy with a managed name",
        lambda t, a, ns: t["webhook"].core.create_namespaced_secret(ns, _copy(ns), dry_run="All"),
    ),
]


@pytest.mark.parametrize("write", [case[1] for case in ALLOWED], ids=[c[0] for c in ALLOWED])
def test_the_same_writes_the_product_makes_are_allowed(
    tokens: dict[str, Api], api: Api, bare: str, write: Write
) -> None:
    write(tokens, api, bare)  # raises ApiException if refused


# -- the product's own behaviour under the policies ---------------------------------------------


@contextlib.contextmanager
def _controller_paused(release: LocalRelease) -> Iterator[None]:
    """Without the controller, a copy that appears was written by the webhook."""
    running = next(p for p in release.pods if p.name.endswith("-controller-local"))
    running.stop()
    try:
        yield
    finally:
        release.start("-controller")


def _log_records(running: RunningPod) -> list[dict[str, Any]]:
    lines = running.log_path.read_text(errors="replace").splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def test_the_webhook_creates_copies_at_admission(release: LocalRelease, api: Api) -> None:
    webhook = next(p for p in release.pods if p.name.endswith("-webhook-local"))
    with _controller_paused(release):
        namespace = unique("guard")
        api.ensure_namespace(namespace, {HOOK_LABEL: "true", COPIES_LABEL: "yes"})
        try:
            stored, warnings = api.create_pod(namespace, pod("app", "guard.example.com/app:1"))

            assert SECRET in secret_names(stored)
            assert warnings == []
            copy = api.secret(namespace, SECRET)
            assert copy is not None
            assert copy["metadata"]["labels"][MANAGED_BY_LABEL] == MANAGED_BY_VALUE
            outcomes = [
                r["outcome"]
                for r in _log_records(webhook)
                if r.get("event") == "copy.create" and r.get("namespace") == namespace
            ]
            assert outcomes == ["created"]
        finally:
            api.core.delete_namespace(namespace)


def test_the_controller_creates_updates_and_deletes_copies(api: Api, target: str) -> None:
    wait_until(lambda: api.secret(target, SECRET), "the pre-provisioned copy", timeout=60)
    rotated = pull_secret(SECRET, SOURCES, {"guard.example.com": "rotated"})
    api.apply_secret(rotated)
    try:
        wait_until(
            lambda: (api.secret(target, SECRET) or {}).get("data") == rotated["data"],
            "the copy to follow the rotated source",
            timeout=60,
        )
        # The rule's selector no longer matches: the copy is ours and unwanted, so it goes.
        api.core.patch_namespace(target, {"metadata": {"labels": {COPIES_LABEL: "no"}}})
        wait_until(
            lambda: api.secret(target, SECRET) is None, "the unwanted copy to be deleted", 60
        )
    finally:
        api.apply_secret(pull_secret(SECRET, SOURCES, {"guard.example.com": "guard"}))


def test_the_controller_backfills_service_accounts(api: Api, target: str) -> None:
    account = api.read(api.core.read_namespaced_service_account, "default", target)
    account["imagePullSecrets"] = [{"name": "kept-by-the-user"}]
    api.core.replace_namespaced_service_account("default", target, account)

    linked = wait_until(
        lambda: (
            secret_names(
                api.read(api.core.read_namespaced_service_account, "default", target),
                ("imagePullSecrets",),
            )
            == ["kept-by-the-user", SECRET]
        ),
        "the default ServiceAccount to be backfilled",
        timeout=60,
    )

    assert linked


def test_the_controller_manages_its_certificates(
    release: LocalRelease, api: Api, control_plane: ControlPlane
) -> None:
    configuration = api.read(MWC(api.api).read_mutating_webhook_configuration, FULLNAME)
    assert configuration["webhooks"][0]["clientConfig"].get("caBundle")  # patched at startup
    before = (api.secret(NAMESPACE, TLS_SECRET) or {})["data"]["tls.crt"]
    api.core.patch_namespaced_secret(
        TLS_SECRET, NAMESPACE, {"metadata": {"annotations": {FORCE_RENEWAL_ANNOTATION: "e2e"}}}
    )

    wait_until(
        lambda: (api.secret(NAMESPACE, TLS_SECRET) or {})["data"]["tls.crt"] != before,
        "the forced renewal",
        timeout=60,
    )


def test_no_write_of_the_product_was_refused(release: LocalRelease) -> None:
    """Everything above happened without one denial in either component's log."""
    for running in release.pods:
        log = running.log_path.read_text(errors="replace")
        assert "ValidatingAdmissionPolicy" not in log, running.log_tail()
        assert "denied request" not in log, running.log_tail()


# -- the control: without the policies, the attack works ----------------------------------------


def test_without_the_policies_the_same_token_becomes_cluster_admin(
    release: LocalRelease, tokens: dict[str, Api], api: Api, control_plane: ControlPlane
) -> None:
    """Proves the refusals above are the policies' doing (and what they prevent)."""
    values = release.workdir / "values.yaml"
    release.helm("upgrade", RELEASE, str(_chart()), "-n", NAMESPACE, "-f", str(values),
                 "--set", "admissionPolicy.enabled=false")  # fmt: skip
    attacker = tokens["webhook"]
    try:
        wait_until(
            lambda: attacker.core.create_namespaced_secret("kube-system", _attack_secret()),
            "the unguarded create to go through",
            timeout=60,
        )
        stolen = wait_until(
            lambda: (
                attacker.read(attacker.core.read_namespaced_secret, SECRET, "kube-system")
                .get("data", {})
                .get("token")
            ),
            "kube-controller-manager to mint the token",
            timeout=60,
        )
        as_stolen = Api(
            control_plane, control_plane.kubeconfig_for_token(base64.b64decode(stolen).decode())
        )
        everything = as_stolen.read(as_stolen.core.list_secret_for_all_namespaces)["items"]
        assert any(s["metadata"]["namespace"] == SOURCES for s in everything)
    finally:
        api.core.delete_namespaced_secret(SECRET, "kube-system")
        release.helm("upgrade", RELEASE, str(_chart()), "-n", NAMESPACE, "-f", str(values))
        probe = tokens["webhook"]
        wait_until(lambda: _guard_in_force(probe), "the admission policies back in force", 60)


def _chart() -> Path:
    return Path(__file__).resolve().parents[2] / "charts" / "pullsecret-injector"
