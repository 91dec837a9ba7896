"""`helm upgrade` without a gap, and rendering GitOps can diff (issue 17 §4).

Argo CD renders with `helm template` (no cluster access) and applies the result; Helm
upgrades with a three-way merge. So: the same values render the same bytes (no random or
looked-up certificate), a no-op upgrade changes nothing (the caBundle the controller owns is
never rendered, so no upgrade touches it), and upgrades of the policy, the replica counts and
the chart version, made while pods are being created, fail no creation; once the new policy
is in force every pod gets its new secret.

The chart's processes run from the rendered Deployments (tools/local_release): they are not
restarted by an upgrade (there is no kubelet here), so a rollout's hand-over between webhook
pods is not part of this test; the Deployments' own strategy (maxUnavailable 0) covers it.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from tests.e2e.reliability import PodLoop
from tests.e2e.support import Api, pull_secret, unique, wait_until
from tools.controlplane import REPO, ControlPlane
from tools.local_release import LocalRelease

NAMESPACE = "psi-upgrade"
SOURCES = "psi-upgrade-src"
LABEL = "e2e.pullsecret-injector.io/upgrade"
RULE = {"name": "first", "registries": ["first.example.com"], "secrets": ["first-pull"]}
SECOND = {"name": "second", "registries": ["second.example.com"], "secrets": ["second-pull"]}


def values(*rules: dict[str, Any]) -> dict[str, Any]:
    return {
        "policy": {"defaults": {"sourceNamespace": SOURCES}, "rules": list(rules)},
        "admissionWebhook": {
            "timeoutSeconds": 10,
            "namespaceSelector": {
                "matchExpressions": [{"key": LABEL, "operator": "In", "values": ["true"]}]
            },
        },
    }


def ca_bundle(api: Api, name: str) -> tuple[str, str]:
    """(resourceVersion, caBundle) of our webhook configuration."""
    config = client.AdmissionregistrationV1Api(api.api).read_mutating_webhook_configuration(name)
    return config.metadata.resource_version, config.webhooks[0].client_config.ca_bundle or ""


def generations(api: Api) -> dict[str, int]:
    apps = client.AppsV1Api(api.api)
    return {
        d.metadata.name: d.metadata.generation
        for d in apps.list_namespaced_deployment(NAMESPACE).items
    }


def test_the_same_values_render_the_same_bytes(control_plane: ControlPlane, tmp_path: Path) -> None:
    release = LocalRelease(control_plane, "psr", "psi-render", tmp_path, values(RULE))
    rendered = []
    for attempt in range(2):
        path = tmp_path / f"values-{attempt}.yaml"
        path.write_text(yaml.safe_dump(release.local_values()))
        chart = str(REPO / "charts" / "pullsecret-injector")
        rendered.append(
            release.helm("template", "psr", chart, "-n", "psi-render", "-f", str(path)).stdout
        )
    assert rendered[0] == rendered[1]
    (configuration,) = [
        d
        for d in yaml.safe_load_all(rendered[0])
        if d and d["kind"] == "MutatingWebhookConfiguration"
    ]
    assert "caBundle" not in configuration["webhooks"][0]["clientConfig"], "owned by the controller"


def test_upgrades_under_pod_creation_fail_nothing_and_the_new_policy_reaches_every_pod(
    control_plane: ControlPlane, api: Api, tmp_path: Path
) -> None:
    api.ensure_namespace(SOURCES)
    for name, host in (("first-pull", "first.example.com"), ("second-pull", "second.example.com")):
        api.apply_secret(pull_secret(name, SOURCES, {host: "x"}))
    release = LocalRelease(control_plane, "psup", NAMESPACE, tmp_path / "release", values(RULE))
    namespace = unique("upgrade")
    release.install()
    try:
        release.start("-controller")
        release.start("-webhook")
        configuration = release.find("MutatingWebhookConfiguration", "")["metadata"]["name"]
        wait_until(
            lambda: ca_bundle(api, configuration)[1], "the controller's caBundle", timeout=60
        )
        api.ensure_namespace(namespace, {LABEL: "true"})
        control_plane.wait_for_service_account(namespace)

        before, deployments = ca_bundle(api, configuration), generations(api)
        release.upgrade()
        assert ca_bundle(api, configuration) == before, "a no-op upgrade touched the configuration"
        assert generations(api) == deployments, "a no-op upgrade would restart pods"

        bumped = tmp_path / "chart"
        shutil.copytree(REPO / "charts" / "pullsecret-injector", bumped)
        chart_yaml = yaml.safe_load((bumped / "Chart.yaml").read_text())
        chart_yaml["version"] = chart_yaml["version"] + "-next"
        (bumped / "Chart.yaml").write_text(yaml.safe_dump(chart_yaml))

        loop = PodLoop(control_plane, namespace, "first.example.com/app:1", "first-pull").start()
        try:
            loop.wait_for(5)
            edited = values(RULE, SECOND)
            release.upgrade(edited)  # a policy change
            scaled = copy.deepcopy(edited)
            scaled["webhook"] = {"replicaCount": 4}
            scaled["controller"] = {"replicaCount": 3}
            release.upgrade(scaled)  # a replica change
            loop.wait_for(5)
            release.upgrade(scaled, chart=bumped)  # a chart version change
            loop.wait_for(5)
        finally:
            loop.stop()
        assert loop.failures == [], loop.failures[:5]
        assert loop.patched == loop.created, "a pod was admitted without its secret"
        assert ca_bundle(api, configuration)[1] == before[1], "the caBundle survived the upgrades"

        def second_in_force() -> bool:
            stored, _ = api.create_pod(
                namespace, pod_for("probe", "second.example.com/app"), dry_run=True
            )
            return "second-pull" in [
                e["name"] for e in stored["spec"].get("imagePullSecrets") or []
            ]

        wait_until(second_in_force, "the edited policy in force", timeout=60)
        after = PodLoop(
            control_plane, namespace, "second.example.com/app:1", "second-pull", max_pods=20
        ).start()
        after.wait_for(20)
        after.stop()
        assert after.failures == []
        assert after.created >= 20
        assert after.patched == after.created
    finally:
        release.stop()
        release.uninstall()
        api.core.delete_namespace(namespace)


def pod_for(name: str, image: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": image}]},
    }
