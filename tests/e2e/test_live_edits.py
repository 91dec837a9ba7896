"""Live policy edits (issue 20): work at once, or say exactly why not, and `helm upgrade` fixes it.

One Helm release (tools/local_release: the chart's Deployments as local processes with the
chart's own tokens, so exactly the chart's RBAC and admission policies apply). The operator
edits the policy ConfigMap as `kubectl edit` would, after asking `validate-policy --cluster`,
and the test checks what the operator is told and what happens:

* a new source secret in a source namespace already in use, copied under a name declared in
  `rbac.managedSecretNames`: live at once, and `validate-policy --cluster` finds nothing missing;
* the same with a new copy name: `validate-policy --cluster` names the missing permissions
  before the edit; after the edit the admission warning, the PermissionMissing Event on the
  policy ConfigMap and the metric name them (never "not found"); `helm upgrade` with the
  edited policy as values fixes it, nothing restarted;
* backfill on a rule: the controller's missing serviceaccounts verbs are named; after the
  upgrade the existing ServiceAccount gets its secret, nothing restarted;
* a new source namespace: named the same way; after the upgrade a pod gets its secret.

The tests run in file order and share the release: each one adds its rule to the policy in
force and leaves it there (as an operator would), so a later upgrade carries earlier edits.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.e2e.support import Api, pod, pull_secret, scrape, secret_names, unique, wait_until
from tests.e2e.test_live_status import kubectl
from tools.controlplane import ControlPlane
from tools.local_release import LocalRelease

NAMESPACE = "psi-live"
SOURCES = "psi-live-src"
FAR_SOURCES = "psi-live-far"
RELEASE = "plv"
POLICY_CONFIGMAP = "plv-pullsecret-injector-policy"
LABEL = "e2e.pullsecret-injector.io/live-edits"
CLI = str(Path(sys.executable).with_name("pullsecret-injector"))
BASE = {"name": "base", "registries": ["base.example.com"], "secrets": ["lv-base-pull"],
        "namespaces": {"include": ["lv-team-*"]}}  # fmt: skip
DECLARED, DECLARED_FAR = "lv-declared", "lv-declared-far"
"""Copy names declared up front in rbac.managedSecretNames (README: the way to keep a future
copy name live)."""
GAUGE = "pullsecret_injector_policy_permission_missing"
TIMINGS: dict[str, float] = {}
"""Measured seconds, printed at the end of the module (for the issue's closing note)."""


@dataclass
class Live:
    release: LocalRelease
    target: str
    workdir: Path
    rules: list[dict[str, Any]] = field(default_factory=lambda: [copy.deepcopy(BASE)])

    def values(self) -> dict[str, Any]:
        return {
            "policy": {"defaults": {"sourceNamespace": SOURCES}, "rules": self.rules},
            "rbac": {"managedSecretNames": [DECLARED, DECLARED_FAR]},
            "admissionWebhook": {
                "timeoutSeconds": 10,
                "namespaceSelector": {
                    "matchExpressions": [{"key": LABEL, "operator": "In", "values": ["true"]}]
                },
            },
        }

    def policy_text(self) -> str:
        document = {
            "apiVersion": "pullsecret-injector.io/v1",
            "kind": "PullSecretPolicy",
            **self.values()["policy"],
        }
        return yaml.safe_dump(document, sort_keys=False)

    def policy_file(self) -> Path:
        path = self.workdir / f"policy-{len(self.rules)}.yaml"
        path.write_text(self.policy_text())
        return path


@pytest.fixture(scope="module")
def live(
    control_plane: ControlPlane, api: Api, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    for namespace in (SOURCES, FAR_SOURCES):
        api.ensure_namespace(namespace)
    api.apply_secret(pull_secret("lv-base-pull", SOURCES, {"base.example.com": "base"}))
    workdir = tmp_path_factory.mktemp("live-edits")
    release = LocalRelease(control_plane, RELEASE, NAMESPACE, workdir / "release")
    state = Live(release, unique("lv-team"), workdir)
    release.values = state.values()
    release.install()
    try:
        release.start("-controller")
        release.start("-webhook")
        api.ensure_namespace(state.target, {LABEL: "true"})
        control_plane.wait_for_service_account(state.target)
        wait_until(lambda: api.secret(state.target, "lv-base-pull"), "the base copy", timeout=60)
        yield state
    finally:
        release.stop()
        release.uninstall()
        api.core.delete_namespace(state.target)
        api.core.delete_namespace(NAMESPACE)
        print("\nmeasured (s):", json.dumps(TIMINGS))


# -- helpers -------------------------------------------------------------------------------------


def validate(
    live: Live, control_plane: ControlPlane, *args: str
) -> subprocess.CompletedProcess[str]:
    """`pullsecret-injector validate-policy --cluster` on the policy as it would be edited."""
    return subprocess.run(
        [CLI, "validate-policy", str(live.policy_file()), "--cluster",
         "--kubeconfig", str(control_plane.admin_kubeconfig), *args],
        capture_output=True, text=True, timeout=120, check=False, env=dict(os.environ),
    )  # fmt: skip


def missing_of(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    document: dict[str, Any] = json.loads(result.stdout)
    missing: list[dict[str, Any]] = document["cluster"]["missing"]
    return missing


def edit_configmap(api: Api, live: Live) -> float:
    """The operator's `kubectl edit` of the policy ConfigMap; returns when it was made."""
    api.core.patch_namespaced_config_map(
        POLICY_CONFIGMAP, NAMESPACE, {"data": {"policy.yaml": live.policy_text()}}
    )
    return time.monotonic()


def upgrade(live: Live) -> float:
    """`helm upgrade` with the edited policy as values; returns when it finished."""
    started = time.monotonic()
    live.release.upgrade(live.values())
    done = time.monotonic()
    TIMINGS.setdefault("helm_upgrade", 0.0)
    TIMINGS["helm_upgrade"] = max(TIMINGS["helm_upgrade"], round(done - started, 1))
    return done


def pod_with_secret(
    api: Api, live: Live, image: str, secret: str, timeout: float = 120.0
) -> tuple[dict[str, Any], list[str]]:
    """Create pods until one is admitted with ``secret`` (each attempt is a real pod)."""
    last: list[Any] = []

    def attempt() -> bool:
        stored, warnings = api.create_pod(live.target, pod("app", image, generate=True))
        last[:] = [stored, warnings]
        return secret in secret_names(stored)

    wait_until(attempt, f"a pod admitted with {secret}", timeout=timeout, interval=0.5)
    return last[0], last[1]


def pod_warnings(api: Api, live: Live, image: str) -> list[str]:
    """The admission warnings a new pod of ``image`` gets."""
    _, warnings = api.create_pod(live.target, pod("app", image, generate=True))
    return warnings


def permission_events(api: Api, *needles: str) -> list[str]:
    """Messages of the PermissionMissing Events on the policy ConfigMap naming ``needles``."""
    items = api.read(api.core.list_namespaced_event, NAMESPACE)["items"]
    return [
        str(e.get("message") or "")
        for e in items
        if e.get("reason") == "PermissionMissing"
        and e["involvedObject"]["name"] == POLICY_CONFIGMAP
        and all(needle in str(e.get("message") or "") for needle in needles)
    ]


def gauge(live: Live, component: str, labels: dict[str, str]) -> float | None:
    port = live.release.metrics_port if component == "controller" else live.release.health_port
    return scrape(f"http://127.0.0.1:{port}/metrics", GAUGE, {"component": component, **labels})


def linked(account: dict[str, Any]) -> list[str]:
    """A ServiceAccount's imagePullSecrets (top level, unlike a pod's)."""
    return secret_names(account, ("imagePullSecrets",))


def processes(live: Live) -> list[int]:
    """The pids of the release's running pods: an upgrade must not need a restart."""
    return [p.child.pid for p in live.release.pods if p.child.exit_code() is None]


# -- a: a new source secret in a source namespace in use ------------------------------------------


def test_a_new_source_secret_under_a_declared_copy_name_is_live_at_once(
    live: Live, api: Api, control_plane: ControlPlane
) -> None:
    api.apply_secret(pull_secret("lv-new-pull", SOURCES, {"new.example.com": "new"}))
    live.rules.append({"name": "new-registry", "registries": ["new.example.com"],
                       "secrets": [{"name": "lv-new-pull", "targetName": DECLARED}]})  # fmt: skip

    before = validate(live, control_plane)
    admin = str(control_plane.admin_kubeconfig)
    plugin = kubectl(control_plane, "pullsecret", "validate-policy", "--cluster", "-n", NAMESPACE,
                     str(live.policy_file()), "--kubeconfig", admin)  # fmt: skip
    edited = edit_configmap(api, live)
    stored, warnings = pod_with_secret(api, live, "new.example.com/app:1", DECLARED)
    TIMINGS["a_live_edit_to_pod"] = round(time.monotonic() - edited, 1)

    assert before.returncode == 0, before.stdout + before.stderr
    assert "every permission the policy needs is held" in before.stdout
    assert plugin.returncode == 0, plugin.stdout + plugin.stderr
    assert plugin.stdout.splitlines()[1:] == before.stdout.splitlines()[1:]
    assert secret_names(stored) == [DECLARED]
    assert not [w for w in warnings if "not found" in w or "may not" in w], warnings
    copied = api.secret(live.target, DECLARED)
    assert copied is not None
    assert copied["type"] == "kubernetes.io/dockerconfigjson"


def test_a_new_copy_name_is_reported_before_and_after_the_edit_and_helm_upgrade_fixes_it(
    live: Live, api: Api, control_plane: ControlPlane
) -> None:
    api.apply_secret(pull_secret("lv-fresh-pull", SOURCES, {"fresh.example.com": "fresh"}))
    live.rules.append({"name": "fresh", "registries": ["fresh.example.com"],
                       "secrets": ["lv-fresh-pull"]})  # fmt: skip
    pids = processes(live)

    before = validate(live, control_plane, "-o", "json")
    text = validate(live, control_plane)
    edit_configmap(api, live)
    warnings = wait_until(
        lambda: [w for w in pod_warnings(api, live, "fresh.example.com/app:1")
                 if "lv-fresh-pull" in w],
        "an admission warning about lv-fresh-pull", timeout=60, interval=0.5,
    )  # fmt: skip
    events = wait_until(
        lambda: permission_events(api, '"lv-fresh-pull"'), "a PermissionMissing Event", timeout=60
    )
    metric = wait_until(
        lambda: gauge(live, "webhook", {"rule": "fresh", "resource": "secrets",
                                        "name": "lv-fresh-pull"}),
        "the webhook's permission_missing gauge", timeout=60,
    )  # fmt: skip

    assert before.returncode == 1, before.stdout + before.stderr
    missing = missing_of(before)
    assert {(m["component"], m["name"]) for m in missing} == {
        ("webhook", "lv-fresh-pull"),
        ("controller", "lv-fresh-pull"),
    }, missing
    assert all(m["rules"] == ["fresh"] for m in missing)
    assert not [m for m in missing if m["namespace"] == SOURCES], "the source is readable"
    assert 'the webhook may not get/list/watch secrets "lv-fresh-pull" in all namespaces' in (
        text.stdout
    )
    assert "helm upgrade plv charts/pullsecret-injector --namespace psi-live" in text.stdout
    # The webhook cannot see copies of that name (RBAC, by name) and the chart's admission
    # policy refuses to let it write one: the warning carries the API server's own reason.
    assert not [w for w in warnings if "not found" in w], warnings
    assert [w for w in warnings if "the API server refused Secret lv-fresh-pull" in w
            and "rule managed-name: the webhook may not write " in w
            and "a new copy name needs helm upgrade" in w], warnings  # fmt: skip
    assert "needed by rule fresh" in events[0]
    assert "fix: helm upgrade" in events[0]
    assert metric == 1

    upgraded = upgrade(live)
    stored, warnings = pod_with_secret(api, live, "fresh.example.com/app:1", "lv-fresh-pull")
    TIMINGS["a_upgrade_to_pod"] = round(time.monotonic() - upgraded, 1)
    after = validate(live, control_plane)

    assert "lv-fresh-pull" in secret_names(stored)
    assert api.secret(live.target, "lv-fresh-pull") is not None
    assert after.returncode == 0, after.stdout + after.stderr
    assert processes(live) == pids, "nothing was restarted"
    wait_until(
        lambda: gauge(live, "webhook", {"rule": "fresh", "name": "lv-fresh-pull"}) == 0,
        "the gauge back at 0", timeout=60,
    )  # fmt: skip


# -- b: backfill of existing ServiceAccounts ---------------------------------------------------


def test_backfill_names_the_controllers_missing_verbs_and_helm_upgrade_patches_the_account(
    live: Live, api: Api, control_plane: ControlPlane
) -> None:
    api.core.create_namespaced_service_account(live.target, {"metadata": {"name": "builder-x"}})
    live.rules[0]["serviceAccounts"] = {"names": ["default", "builder-*"], "backfill": True}
    pids = processes(live)

    before = validate(live, control_plane, "-o", "json")
    edit_configmap(api, live)
    events = wait_until(
        lambda: permission_events(api, "serviceaccounts"), "a PermissionMissing Event", timeout=60
    )
    metric = wait_until(
        lambda: gauge(live, "controller", {"rule": "base", "resource": "serviceaccounts"}),
        "the controller's permission_missing gauge", timeout=60,
    )  # fmt: skip
    account = api.read(api.core.read_namespaced_service_account, "builder-x", live.target)

    assert before.returncode == 1, before.stdout + before.stderr
    (missing,) = missing_of(before)
    assert (missing["component"], missing["resource"], missing["rules"]) == (
        "controller", "serviceaccounts", ["base"],
    )  # fmt: skip
    assert "watch" in missing["verbs"]
    assert "patch" in missing["verbs"]
    assert "rbac.serviceAccountBackfill=true" in missing["fix"]
    assert "the controller may not " in events[0]
    assert "needed by rule base" in events[0]
    assert metric == 1
    assert linked(account) == [], "not backfilled without the permission"

    upgraded = upgrade(live)
    wait_until(
        lambda: "lv-base-pull" in linked(
            api.read(api.core.read_namespaced_service_account, "builder-x", live.target)
        ),
        "builder-x backfilled", timeout=120, interval=0.5,
    )  # fmt: skip
    TIMINGS["b_upgrade_to_backfill"] = round(time.monotonic() - upgraded, 1)
    after = validate(live, control_plane)

    assert after.returncode == 0, after.stdout + after.stderr
    assert processes(live) == pids, "nothing was restarted"


# -- c: a new source namespace -------------------------------------------------------------------


def test_a_new_source_namespace_is_named_and_helm_upgrade_makes_it_work(
    live: Live, api: Api, control_plane: ControlPlane
) -> None:
    api.apply_secret(pull_secret("lv-far-pull", FAR_SOURCES, {"far.example.com": "far"}))
    live.rules.append({"name": "far", "registries": ["far.example.com"],
                       "secrets": [{"name": "lv-far-pull", "namespace": FAR_SOURCES,
                                    "targetName": DECLARED_FAR}]})  # fmt: skip
    pids = processes(live)

    before = validate(live, control_plane, "-o", "json")
    edit_configmap(api, live)
    warnings = wait_until(
        lambda: [w for w in pod_warnings(api, live, "far.example.com/app:1") if FAR_SOURCES in w],
        "an admission warning about the far source", timeout=60, interval=0.5,
    )  # fmt: skip
    events = wait_until(
        lambda: permission_events(api, f"in namespace {FAR_SOURCES}"), "an Event", timeout=60
    )

    assert before.returncode == 1, before.stdout + before.stderr
    missing = missing_of(before)
    assert {(m["component"], m["namespace"], m["resource"]) for m in missing} == {
        ("webhook", FAR_SOURCES, "secrets"),
        ("controller", FAR_SOURCES, "secrets"),
    }, missing
    assert all(m["rules"] == ["far"] and m["name"] == "" for m in missing)
    assert not [w for w in warnings if "not found" in w], warnings
    # Not allowed to list the namespace, the webhook watches (and names) the one secret.
    named = f'may not get/list/watch secrets "lv-far-pull" in namespace {FAR_SOURCES}'
    assert named in warnings[0]
    assert "needed by rule far" in events[0]

    upgraded = upgrade(live)
    stored, _ = pod_with_secret(api, live, "far.example.com/app:1", DECLARED_FAR)
    TIMINGS["c_upgrade_to_pod"] = round(time.monotonic() - upgraded, 1)
    after = validate(live, control_plane)

    assert DECLARED_FAR in secret_names(stored)
    assert after.returncode == 0, after.stdout + after.stderr
    assert processes(live) == pids, "nothing was restarted"


# -- who may ask -------------------------------------------------------------------------------


def test_an_operator_who_may_not_ask_gets_exit_2_and_the_api_servers_words(
    live: Live, control_plane: ControlPlane, api: Api
) -> None:
    """Never "granted" nor "missing" for a question that was not answered: exit 2, as status."""
    rbac = client.RbacAuthorizationV1Api(api.api)
    name = "lv-reviewer"
    rbac.create_cluster_role({"metadata": {"name": name}, "rules": [
        {"apiGroups": ["admissionregistration.k8s.io"], "verbs": ["get", "list"],
         "resources": ["mutatingwebhookconfigurations"]},
        {"apiGroups": [""], "verbs": ["get", "list"], "resources": ["configmaps"]},
        {"apiGroups": ["apps"], "verbs": ["get", "list"], "resources": ["deployments"]},
        {"apiGroups": ["authorization.k8s.io"], "verbs": ["create"],
         "resources": ["subjectaccessreviews"]},
    ]})  # fmt: skip
    rbac.create_cluster_role_binding({
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": name}],
    })  # fmt: skip
    policy = str(live.policy_file())
    try:
        nobody = subprocess.run(
            [CLI, "validate-policy", policy, "--cluster",
             "--kubeconfig", str(control_plane.kubeconfig_for_user("lv-nobody"))],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        reviewer = wait_until(
            lambda: (r := subprocess.run(
                [CLI, "validate-policy", policy, "--cluster",
                 "--kubeconfig", str(control_plane.kubeconfig_for_user(name))],
                capture_output=True, text=True, timeout=120, check=False,
            )) and "impersonate" in r.stderr and r,
            "the reviewer's ClusterRoleBinding to take effect", timeout=30, interval=0.5,
        )  # fmt: skip
    finally:
        rbac.delete_cluster_role_binding(name)
        rbac.delete_cluster_role(name)

    assert nobody.returncode == 2
    assert "error: cannot read mutatingwebhookconfigurations: " in nobody.stderr
    assert 'User "lv-nobody" cannot list resource "mutatingwebhookconfigurations"' in nobody.stderr
    # Access reviews answered, but the dry run of a copy cannot be made as the webhook.
    assert reviewer.returncode == 2, reviewer.stdout + reviewer.stderr
    assert "cannot ask as the webhook whether the admission policy admits its copy" in (
        reviewer.stderr
    )
    assert f'User "{name}" cannot impersonate resource "serviceaccounts"' in reviewer.stderr
