"""`status`, `explain pod/NAME` and `kubectl pullsecret` against a real control plane.

One Helm release runs its controller (as its own ServiceAccount, with the chart's RBAC),
which copies pull secrets and publishes the status document. Namespaces are set up in each
state an operator asks about — healthy, a stale copy, a foreign Secret at a managed name, a
missing source, opted out, excluded by label — and `status` must report each as it is:
as admin, as a user who may only read, and not at all (exit 2) for a user without rights.
The release's webhook is not started: `status` reads the cluster, not the webhook.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.e2e.support import Api, pod, pull_secret, unique, wait_until
from tools.controlplane import ControlPlane
from tools.local_release import LocalRelease

NAMESPACE = "psi-status"
SOURCES = "psi-status-src"
RELEASE = "pst"
CONFIGURATION = "pst-pullsecret-injector"
STATUS_CONFIGMAP = f"{CONFIGURATION}-status"
POLICY_CONFIGMAP = f"{CONFIGURATION}-policy"
LABEL = "e2e.pullsecret-injector.io/status"
OPT_OUT = "pullsecret-injector.io/inject"
CORP, VENDOR = "st-corp-pull", "st-vendor-pull"
CLI = str(Path(sys.executable).with_name("pullsecret-injector"))
READER_ROLE = "st-status-reader"


@dataclass(frozen=True)
class Cluster:
    release: LocalRelease
    healthy: str
    stale: str
    foreign: str
    vendor: str
    opted_out: str
    unlabelled: str


def _rules() -> list[dict[str, Any]]:
    reached = {"include": ["st-*"], "selector": {"matchLabels": {LABEL: "true"}}}
    return [
        {"name": "corp", "registries": ["corp.example.com"], "secrets": [CORP],
         "namespaces": reached},
        {"name": "vendor", "registries": ["vendor.example.com"], "secrets": [VENDOR],
         "namespaces": {"include": ["st-vendor-*"], "selector": reached["selector"]}},
    ]  # fmt: skip


@pytest.fixture(scope="module")
def setup(
    control_plane: ControlPlane, api: Api, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    api.ensure_namespace(SOURCES)
    api.apply_secret(pull_secret(CORP, SOURCES, {"corp.example.com": "corp"}))
    values = {
        "policy": {"defaults": {"sourceNamespace": SOURCES}, "rules": _rules()},
        "admissionWebhook": {
            "timeoutSeconds": 2,
            "namespaceSelector": {
                "matchExpressions": [{"key": LABEL, "operator": "In", "values": ["true"]}]
            },
        },
    }
    release = LocalRelease(
        control_plane, RELEASE, NAMESPACE, tmp_path_factory.mktemp("status-release"), values
    )
    release.install()
    created: list[str] = []

    def namespace(prefix: str, labels: Mapping[str, str] | None = None) -> str:
        name = unique(prefix)
        api.ensure_namespace(name, labels)
        created.append(name)
        return name

    try:
        release.start("-controller")
        reached = {LABEL: "true"}
        foreign = namespace("st-foreign")  # not reached yet: the foreign Secret comes first
        api.apply_secret(pull_secret(CORP, foreign, {"corp.example.com": "someone-else"}))
        api.core.patch_namespace(foreign, {"metadata": {"labels": reached}})
        state = Cluster(
            release=release,
            healthy=namespace("st-ok", reached),
            stale=namespace("st-stale", reached),
            foreign=foreign,
            vendor=namespace("st-vendor", reached),
            opted_out=namespace("st-out", {**reached, OPT_OUT: "false"}),
            unlabelled=namespace("st-plain"),
        )
        for target in (state.healthy, state.stale, state.vendor):
            wait_until(lambda t=target: api.secret(t, CORP), f"the copy in {target}", timeout=60)
        wait_until(lambda: published(api), "the status document", timeout=60)
        yield state
    finally:
        release.stop()
        release.uninstall()
        for name in created:
            api.core.delete_namespace(name)
        api.core.delete_namespace(NAMESPACE)


def published(api: Api) -> dict[str, Any] | None:
    try:
        configmap = api.read(api.core.read_namespaced_config_map, STATUS_CONFIGMAP, NAMESPACE)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    document: dict[str, Any] = json.loads(configmap["data"]["status.json"])
    return document


def status(
    *args: str, kubeconfig: Path, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, "status", "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


def lines_by_namespace(output: str) -> dict[str, list[str]]:
    table = output.split("\nNAMESPACE ", 1)[1].splitlines()[1:]
    return {line.split()[0]: line.split(None, 6) for line in table}


def test_the_controller_publishes_the_policy_and_its_sources(setup: Cluster, api: Api) -> None:
    document = published(api)
    policy_cm = api.read(api.core.read_namespaced_config_map, POLICY_CONFIGMAP, NAMESPACE)

    assert document is not None
    assert document["policy"]["configMap"] == f"{NAMESPACE}/{POLICY_CONFIGMAP}"
    assert document["policy"]["generation"] == policy_cm["metadata"]["resourceVersion"]
    assert (document["policy"]["valid"], document["policy"]["rules"]) == (True, 2)
    assert {s["name"]: s["state"] for s in document["sources"]} == {
        CORP: "present",
        VENDOR: "missing",
    }
    assert document["reporter"].startswith("pst-pullsecret-injector-controller")


def test_status_reports_each_namespace_as_it_is(
    setup: Cluster, control_plane: ControlPlane
) -> None:
    result = status("-o", "wide", kubeconfig=control_plane.admin_kubeconfig)

    assert result.returncode == 1, result.stderr  # the vendor source is missing
    assert "In force:    generation " in result.stdout
    assert f"  {SOURCES}/{VENDOR}   missing" in result.stdout
    rows = lines_by_namespace(result.stdout)
    assert rows[setup.healthy][1:3] == ["OK", "1/1"]
    vendor = rows[setup.vendor]
    assert vendor[1:3] == ["Degraded", "1/2"]
    assert f"cannot copy {VENDOR}: source {SOURCES}/{VENDOR} not found" in vendor[6]
    foreign = rows[setup.foreign]
    assert foreign[1:5] == ["Degraded", "1/1", "0", "1"]
    assert f"not ours: {CORP}" in foreign[6]
    assert rows[setup.opted_out][1] == "OutOfScope"
    assert f"opted out (webhook configuration: label {OPT_OUT}=false)" in rows[setup.opted_out][6]
    assert rows[setup.unlabelled][1] == "OutOfScope"
    assert (
        f"excluded by label (webhook configuration: selector {LABEL} in (true) not matched"
        in (rows[setup.unlabelled][6])
    )


def test_one_namespace_can_be_asked_about_alone(
    setup: Cluster, control_plane: ControlPlane
) -> None:
    result = status("-n", setup.healthy, "-o", "json", kubeconfig=control_plane.admin_kubeconfig)

    document = json.loads(result.stdout)
    # The missing source is a problem of the release, reported above the namespaces.
    assert document["problems"] == [f"source {SOURCES}/{VENDOR}: missing"]
    assert result.returncode == 1
    (only,) = document["namespaces"]
    assert (only["name"], only["ok"], only["copies"]["present"]) == (setup.healthy, True, [CORP])


@pytest.fixture(scope="module")
def reader(control_plane: ControlPlane, api: Api) -> Iterator[Path]:
    """A user who may get and list what status reports, and nothing else."""
    rbac = client.RbacAuthorizationV1Api(api.api)
    role = {
        "metadata": {"name": READER_ROLE},
        "rules": [
            {"apiGroups": [""], "verbs": ["get", "list"],
             "resources": ["namespaces", "secrets", "serviceaccounts", "configmaps", "pods"]},
            {"apiGroups": ["admissionregistration.k8s.io"], "verbs": ["get", "list"],
             "resources": ["mutatingwebhookconfigurations"]},
        ],
    }  # fmt: skip
    binding = {
        "metadata": {"name": READER_ROLE},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": READER_ROLE},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                      "name": "st-reader"}],
    }  # fmt: skip
    rbac.create_cluster_role(role)
    rbac.create_cluster_role_binding(binding)
    try:
        yield control_plane.kubeconfig_for_user("st-reader")
    finally:
        rbac.delete_cluster_role_binding(READER_ROLE)
        rbac.delete_cluster_role(READER_ROLE)


def test_a_user_who_may_only_read_gets_the_same_answer(
    setup: Cluster, control_plane: ControlPlane, reader: Path
) -> None:
    as_admin = status("-n", setup.foreign, kubeconfig=control_plane.admin_kubeconfig)
    as_reader = wait_until(
        lambda: (r := status("-n", setup.foreign, kubeconfig=reader)).returncode != 2 and r,
        "the reader's ClusterRoleBinding to take effect",
        timeout=30,
    )

    assert as_reader.returncode == 1, as_reader.stderr
    assert as_reader.stdout == as_admin.stdout


def test_a_user_without_rights_cannot_ask_and_is_told_why(
    setup: Cluster, control_plane: ControlPlane
) -> None:
    result = status(kubeconfig=control_plane.kubeconfig_for_user("st-nobody"))

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: cannot read mutatingwebhookconfigurations: ")
    assert 'User "st-nobody" cannot list resource "mutatingwebhookconfigurations"' in (
        result.stderr
    )


# -- kubectl pullsecret ------------------------------------------------------------------------


def kubectl(
    plane: ControlPlane, *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The real kubectl, finding our plugin on PATH (nothing else of the venv is on it)."""
    plugin_dir = Path(sys.executable).parent
    path = f"{plugin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    return subprocess.run(
        [str(plane.bin_dir / "kubectl"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PATH": path, **(env or {})},
    )


def test_kubectl_lists_the_plugin(setup: Cluster, control_plane: ControlPlane) -> None:
    result = kubectl(control_plane, "plugin", "list")

    assert "kubectl-pullsecret" in result.stdout, result.stdout + result.stderr


def two_contexts(plane: ControlPlane, tmp_path: Path) -> Path:
    """A kubeconfig whose current context points nowhere, and a context called `real`."""
    config = yaml.safe_load(plane.admin_kubeconfig.read_text())
    cluster = config["clusters"][0]
    dead = {"name": "dead", "cluster": {**cluster["cluster"], "server": "https://127.0.0.1:1"}}
    user = config["users"][0]["name"]
    config["clusters"].append(dead)
    config["contexts"] = [
        {"name": "nowhere", "context": {"cluster": "dead", "user": user}},
        {"name": "real", "context": {"cluster": cluster["name"], "user": user}},
    ]
    config["current-context"] = "nowhere"
    path = tmp_path / "two-contexts.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def test_kubectl_pullsecret_status_follows_kubectl_flags(
    setup: Cluster, control_plane: ControlPlane, tmp_path: Path
) -> None:
    kubeconfig = two_contexts(control_plane, tmp_path)

    nowhere = kubectl(control_plane, "pullsecret", "status", "--kubeconfig", str(kubeconfig))
    real = kubectl(control_plane, "pullsecret", "status", "-n", setup.healthy, "-o", "yaml",
                   "--kubeconfig", str(kubeconfig), "--context", "real")  # fmt: skip
    from_env = kubectl(control_plane, "pullsecret", "status", "--namespace", setup.healthy,
                       "--context", "real", env={"KUBECONFIG": str(kubeconfig)})  # fmt: skip

    assert nowhere.returncode == 2
    assert "cannot reach the API server" in nowhere.stderr
    assert real.returncode == 1, real.stderr
    document = yaml.safe_load(real.stdout)
    assert [n["name"] for n in document["namespaces"]] == [setup.healthy]
    assert from_env.returncode == 1, from_env.stderr
    assert lines_by_namespace(from_env.stdout)[setup.healthy][1] == "OK"


def test_kubectl_pullsecret_explains_a_live_pod(
    setup: Cluster, api: Api, control_plane: ControlPlane
) -> None:
    api.create_pod(setup.healthy, pod("web", "corp.example.com/team/web:1", "nginx:1.27"))
    kubeconfig = str(control_plane.admin_kubeconfig)

    text = kubectl(control_plane, "pullsecret", "explain", "pod/web", "-n", setup.healthy,
                   "--kubeconfig", kubeconfig)  # fmt: skip
    as_json = kubectl(control_plane, "pullsecret", "explain", "po/web", "-n", setup.healthy,
                      "-o", "json", "--kubeconfig", kubeconfig)  # fmt: skip

    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith(f"Pod web in namespace {setup.healthy} (labels: ")
    assert f"{LABEL}=true" in text.stdout.splitlines()[0]  # read from the cluster
    assert "  rule corp: matched corp.example.com (from its registries)" in text.stdout
    document = json.loads(as_json.stdout)
    # The release's webhook is not running here, so the pod was admitted without its secret.
    assert document["imagePullSecrets"] == [CORP]
    assert document["copies"] == []  # the controller's copy is already there
    assert document["notes"] == []


def test_kubectl_pullsecret_explains_kubectl_debug_on_a_live_pod(
    setup: Cluster, api: Api, control_plane: ControlPlane
) -> None:
    api.create_pod(setup.vendor, pod("db", "nginx:1.27"))

    result = kubectl(control_plane, "pullsecret", "explain", "pod/db", "-n", setup.vendor,
                     "--debug-image", "corp.example.com/tools/debug:1", "-o", "json",
                     "--kubeconfig", str(control_plane.admin_kubeconfig))  # fmt: skip

    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["operation"] == "ephemeral"
    assert [i["image"] for i in document["images"]] == ["corp.example.com/tools/debug:1"]
    assert any(f"needs {CORP}, which this running pod lacks" in w for w in document["warnings"])


def test_explaining_a_pod_that_does_not_exist_cannot_ask(
    setup: Cluster, control_plane: ControlPlane
) -> None:
    result = kubectl(control_plane, "pullsecret", "explain", "pod/absent", "-n", setup.healthy,
                     "--kubeconfig", str(control_plane.admin_kubeconfig))  # fmt: skip

    assert result.returncode == 2
    assert f"pod absent in namespace {setup.healthy}: not found" in result.stderr


# -- the document follows changes; a stale copy is seen (these change the cluster: last) --------


def test_a_source_that_appears_is_published_and_its_copy_made(
    setup: Cluster, api: Api, control_plane: ControlPlane
) -> None:
    api.apply_secret(pull_secret(VENDOR, SOURCES, {"vendor.example.com": "vendor"}))

    wait_until(
        lambda: {s["state"] for s in (published(api) or {}).get("sources", [])} == {"present"},
        "the document to show the new source",
        timeout=60,
    )
    wait_until(lambda: api.secret(setup.vendor, VENDOR), "the vendor copy", timeout=60)
    result = status("-n", setup.vendor, kubeconfig=control_plane.admin_kubeconfig)
    assert result.returncode == 0, result.stdout + result.stderr
    assert lines_by_namespace(result.stdout)[setup.vendor][1:3] == ["OK", "2/2"]


def test_an_invalid_policy_edit_is_published_with_its_error(
    setup: Cluster, api: Api, control_plane: ControlPlane
) -> None:
    before = published(api)
    assert before is not None
    configmap = api.read(api.core.read_namespaced_config_map, POLICY_CONFIGMAP, NAMESPACE)
    good = configmap["data"]["policy.yaml"]
    broken = good.replace("registries:", "registires:", 1)
    api.core.patch_namespaced_config_map(
        POLICY_CONFIGMAP, NAMESPACE, {"data": {"policy.yaml": broken}}
    )
    try:
        document = wait_until(
            lambda: (d := published(api)) and not d["policy"]["valid"] and d,
            "the rejected edit in the document",
            timeout=60,
        )
        assert document["policy"]["generation"] == before["policy"]["generation"]
        assert "registires: unknown field" in document["policy"]["error"]
        result = status(kubeconfig=control_plane.admin_kubeconfig)
        assert result.returncode == 1
        assert "latest edit rejected: " in result.stdout
        assert "namespaces not assessed: the policy ConfigMap holds no valid policy" in (
            result.stdout
        )
    finally:
        api.core.patch_namespaced_config_map(
            POLICY_CONFIGMAP, NAMESPACE, {"data": {"policy.yaml": good}}
        )
    wait_until(lambda: (published(api) or {}).get("policy", {}).get("valid"), "valid again")


def test_a_stale_copy_is_reported_stale(
    setup: Cluster, api: Api, control_plane: ControlPlane
) -> None:
    setup.release.stop()  # the controller would repair it at once
    api.core.patch_namespaced_secret(
        CORP,
        setup.stale,
        {"metadata": {"annotations": {"pullsecret-injector.io/content-hash": "0" * 32}}},
    )

    result = status("-n", setup.stale, "-o", "json", kubeconfig=control_plane.admin_kubeconfig)

    assert result.returncode == 1
    (only,) = json.loads(result.stdout)["namespaces"]
    assert only["copies"]["stale"] == [CORP]
    assert only["problems"] == [f"stale {CORP}"]
