"""Living with GitOps writers (issue 17 §1, §2): what Argo CD and Flux do, with real kubectl.

Reproduced on the landed code: a ServiceAccount applied with ``kubectl apply --server-side``
got the injected secret at creation, and lost it at the next apply of the same manifest (the
webhook saw CREATE only); plain ``kubectl apply`` lost it the same way. Here every way a
GitOps tool writes an account keeps the entry, a server-side diff of the tool's manifest shows
no drift, and copies carry none of the source's tracking metadata.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.support import SOURCE_NAMESPACE, Api, WebhookServer, pull_secret, wait_until
from tools.controlplane import ControlPlane

Policy = Callable[[str], str]
SECRET = "gitops-pull"
RULES = (
    "rules:\n  - {name: gitops, registries: [gitops.example.com], secrets: [gitops-pull],"
    " serviceAccounts: {names: ['gitops-*']}}\n"
)


def account_manifest(namespace: str, name: str, label: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": namespace, "labels": {"revision": label}},
        "imagePullSecrets": [{"name": "own-secret"}],
    }


def stored_names(api: Api, namespace: str, name: str) -> list[str]:
    account = api.read(api.core.read_namespaced_service_account, name, namespace)
    return [entry["name"] for entry in account.get("imagePullSecrets") or []]


def kubectl_apply(plane: ControlPlane, path: Path, *flags: str) -> None:
    result = plane.kubectl("apply", "-f", str(path), *flags)
    assert result.returncode == 0, result.stderr


def test_every_way_a_gitops_tool_writes_a_service_account_keeps_the_injected_secret(
    api: Api,
    control_plane: ControlPlane,
    webhook: WebhookServer,
    policy: Policy,
    namespace: str,
    tmp_path: Path,
) -> None:
    api.apply_secret(pull_secret(SECRET, SOURCE_NAMESPACE, {"gitops.example.com": "x"}))
    policy(RULES)
    ways = {
        "server-side apply": ("gitops-ssa", ("--server-side", "--field-manager=gitops-controller")),
        "client-side apply": ("gitops-csa", ()),
    }
    for how, (name, flags) in ways.items():
        for revision in ("1", "2"):  # the second apply is where the entry used to vanish
            manifest = tmp_path / f"{name}-{revision}.yaml"
            manifest.write_text(yaml.safe_dump(account_manifest(namespace, name, revision)))
            kubectl_apply(control_plane, manifest, *flags)
            assert stored_names(api, namespace, name) == ["own-secret", SECRET], (how, revision)
        diff = control_plane.kubectl(
            "diff", "--server-side", "--field-manager=gitops-controller", "-f", str(manifest)
        )
        if how == "server-side apply":
            assert diff.returncode == 0, f"drift after {how}:\n{diff.stdout}{diff.stderr}"

    # OLM replaces the whole list with its own (a PUT of the object it wants).
    current = api.read(api.core.read_namespaced_service_account, "gitops-ssa", namespace)
    current["imagePullSecrets"] = [{"name": "operator-b"}, {"name": "operator-a"}]
    api.core.replace_namespaced_service_account("gitops-ssa", namespace, current)
    assert stored_names(api, namespace, "gitops-ssa") == ["operator-b", "operator-a", SECRET]

    # Nothing missing: the update goes through as sent (the webhook answers without a patch).
    before = api.read(api.core.read_namespaced_service_account, "gitops-ssa", namespace)
    unchanged = webhook.metric_value(
        "pullsecret_injector_admission_requests_total",
        {"kind": "ServiceAccount", "operation": "UPDATE", "result": "unchanged"},
    )
    before["metadata"]["labels"]["revision"] = "3"
    after = api.core.replace_namespaced_service_account("gitops-ssa", namespace, before)
    assert [e.name for e in after.image_pull_secrets] == ["operator-b", "operator-a", SECRET]
    assert (
        webhook.metric_value(
            "pullsecret_injector_admission_requests_total",
            {"kind": "ServiceAccount", "operation": "UPDATE", "result": "unchanged"},
        )
        or 0
    ) > (unchanged or 0)


def test_an_opted_out_service_account_is_left_alone_on_update(
    api: Api, control_plane: ControlPlane, webhook: WebhookServer, policy: Policy, namespace: str
) -> None:
    api.apply_secret(pull_secret(SECRET, SOURCE_NAMESPACE, {"gitops.example.com": "x"}))
    policy(RULES)
    body = account_manifest(namespace, "gitops-optout", "1")
    body["metadata"]["annotations"] = {"pullsecret-injector.io/inject": "false"}
    api.core.create_namespaced_service_account(namespace, body)
    body["metadata"]["labels"]["revision"] = "2"
    api.core.replace_namespaced_service_account("gitops-optout", namespace, body)
    assert stored_names(api, namespace, "gitops-optout") == ["own-secret"]


def test_a_copy_carries_none_of_the_source_tracking_metadata(
    api: Api, webhook: WebhookServer, policy: Policy, namespace: str
) -> None:
    tracked = pull_secret(SECRET, SOURCE_NAMESPACE, {"gitops.example.com": "x"})
    tracked["metadata"]["labels"] = {
        "app.kubernetes.io/instance": "secrets-app",
        "argocd.argoproj.io/instance": "secrets-app",
        "kustomize.toolkit.fluxcd.io/name": "secrets",
        "helm.toolkit.fluxcd.io/name": "secrets",
        "app.kubernetes.io/managed-by": "Helm",
    }
    tracked["metadata"]["annotations"] = {
        "argocd.argoproj.io/tracking-id": "secrets-app:/Secret:pull-secrets/gitops-pull",
        "kubectl.kubernetes.io/last-applied-configuration": json.dumps({"kind": "Secret"}),
        "meta.helm.sh/release-name": "secrets",
    }
    api.apply_secret(tracked)
    policy(RULES)
    api.create_pod(
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "tracked"},
            "spec": {"containers": [{"name": "c", "image": "gitops.example.com/app:1"}]},
        },
    )
    copy = wait_until(lambda: api.secret(namespace, SECRET), "the copy", timeout=60)
    assert copy["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "pullsecret-injector"}
    assert set(copy["metadata"]["annotations"]) == {
        "pullsecret-injector.io/source",
        "pullsecret-injector.io/content-hash",
        "pullsecret-injector.io/rules",
    }
