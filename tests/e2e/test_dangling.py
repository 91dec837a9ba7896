"""No dangling references (issue 17 §6): a pod never names a Secret that will not exist.

Since kubernetes/kubernetes PR #117927 the kubelet warns on every sync of a pod naming a
missing pull secret. The three ways a name could dangle: its source is missing (never
injected); the API server refuses the copy (here a ValidatingAdmissionPolicy refuses every new
Secret in the namespace, as a tenant guard or a quota would: the name is dropped from the
patch and the warning says why); the namespace was just excluded (it is left alone). Only a
copy that could not be created in time keeps its name (the controller
creates it), and the warning says so (see test_faults).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.e2e.support import (
    SOURCE_NAMESPACE,
    Api,
    WebhookServer,
    pod,
    pull_secret,
    secret_names,
    unique,
    wait_until,
)

Policy = Callable[[str], str]
RULES = (
    "rules:\n"
    "  - {name: corp, registries: [corp.example.com], secrets: [corp-pull]}\n"
    "  - {name: gone, registries: [gone.example.com], secrets: [gone-pull]}\n"
)


def test_no_pod_is_given_a_name_whose_secret_will_not_exist(
    api: Api, webhook: WebhookServer, policy: Policy, namespace: str
) -> None:
    api.apply_secret(pull_secret("corp-pull", SOURCE_NAMESPACE, {"corp.example.com": "x"}))
    policy(RULES)

    stored, warnings = api.create_pod(namespace, pod("missing-source", "gone.example.com/app"))
    assert secret_names(stored) == []
    assert any("gone-pull not found" in w for w in warnings), warnings

    with no_new_secrets_in(api, namespace):
        stored, warnings = api.create_pod(namespace, pod("refused-copy", "corp.example.com/app"))
    assert secret_names(stored) == []
    assert any("refused Secret corp-pull" in w for w in warnings), warnings
    assert any("no new Secrets here" in w for w in warnings), "the API server's reason is passed on"
    assert api.secret(namespace, "corp-pull") is None

    namespace_object = api.read(api.core.read_namespace, namespace)
    namespace_object["metadata"]["labels"]["pullsecret-injector.io/inject"] = "false"
    api.core.replace_namespace(namespace, namespace_object)
    stored, _ = api.create_pod(namespace, pod("just-excluded", "corp.example.com/app"))
    assert secret_names(stored) == []
    assert api.secret(namespace, "corp-pull") is None


@contextlib.contextmanager
def no_new_secrets_in(api: Api, namespace: str) -> Iterator[None]:
    """A ValidatingAdmissionPolicy refusing every Secret creation in ``namespace``."""
    admission = client.AdmissionregistrationV1Api(api.api)
    name = unique("no-secrets")
    admission.create_validating_admission_policy(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE"],
                            "resources": ["secrets"],
                        }
                    ]
                },
                "validations": [{"expression": "false", "message": "no new Secrets here"}],
            },
        }
    )
    admission.create_validating_admission_policy_binding(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name},
            "spec": {
                "policyName": name,
                "validationActions": ["Deny"],
                "matchResources": {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
                },
            },
        }
    )

    def refused() -> bool:
        probe = pull_secret(unique("probe"), namespace, {"probe.example.com": "x"})
        try:
            api.core.create_namespaced_secret(namespace, probe, dry_run="All")
        except ApiException as exc:
            return exc.status in (400, 403, 422)
        return False

    try:
        wait_until(refused, "the admission policy to take effect", timeout=60, interval=0.5)
        yield
    finally:
        with contextlib.suppress(ApiException):
            admission.delete_validating_admission_policy_binding(name)
        with contextlib.suppress(ApiException):
            admission.delete_validating_admission_policy(name)
