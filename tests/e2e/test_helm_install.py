"""`helm install` into the real control plane, and the chart's pods run with only its RBAC.

The webhook and the controller run from the rendered Deployments' own command and
environment, authenticated with tokens of the chart's ServiceAccounts (tools/local_release),
with self-managed certificates and the API server calling through the chart's Service.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.e2e.support import Api, pod, pull_secret, secret_names, unique, wait_until
from tools.controlplane import ControlPlane
from tools.local_release import LocalRelease

NAMESPACE = "psi-chart"
SOURCES = "psi-chart-src"
LABEL = "e2e.pullsecret-injector.io/chart"
SECRET = "chart-pull"


@pytest.fixture(scope="module")
def release(
    control_plane: ControlPlane, api: Api, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalRelease]:
    api.ensure_namespace(SOURCES)
    api.apply_secret(pull_secret(SECRET, SOURCES, {"chart.example.com": "chart"}))
    values = {
        "policy": {
            "defaults": {"sourceNamespace": SOURCES},
            "rules": [
                {
                    "name": "chart",
                    "registries": ["chart.example.com"],
                    "secrets": [{"name": SECRET}],
                    "serviceAccounts": {"names": ["default"]},
                    "namespaces": {"include": ["chart-*"]},
                }
            ],
        },
        "admissionWebhook": {
            "timeoutSeconds": 10,
            "namespaceSelector": {
                "matchExpressions": [{"key": LABEL, "operator": "In", "values": ["true"]}]
            },
        },
    }
    local = LocalRelease(
        control_plane, "psi", NAMESPACE, tmp_path_factory.mktemp("release"), values
    )
    local.install()
    try:
        local.start("-controller")  # self-managed mode: creates the TLS Secret, patches caBundle
        local.start("-webhook")  # waits for the TLS Secret, like a pod in ContainerCreating
        yield local
    finally:
        local.stop()
        local.uninstall()


def _labelled_namespace(api: Api, control_plane: ControlPlane) -> str:
    name = unique("chart")
    api.ensure_namespace(name, {LABEL: "true"})
    control_plane.wait_for_service_account(name)
    return name


def test_every_rendered_object_passes_server_side_validation(
    release: LocalRelease, control_plane: ControlPlane, tmp_path: Path
) -> None:
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(yaml.safe_dump_all(release.manifest()))
    result = control_plane.kubectl("apply", "--dry-run=server", "-f", str(manifest))
    assert result.returncode == 0, result.stderr
    assert (
        "created (server dry run)" in result.stdout
        or "configured (server dry run)" in result.stdout
    )


def test_pods_and_serviceaccounts_are_injected_by_the_chart_running_with_its_own_rbac(
    release: LocalRelease, api: Api, control_plane: ControlPlane
) -> None:
    namespace = _labelled_namespace(api, control_plane)
    try:
        account = wait_until(
            lambda: secret_names(
                api.read(api.core.read_namespaced_service_account, "default", namespace),
                ("imagePullSecrets",),
            ),
            "the default ServiceAccount to be linked",
            timeout=60,
        )
        assert account == [SECRET]
        stored, warnings = api.create_pod(namespace, pod("app", "chart.example.com/team/app:1"))
        assert SECRET in secret_names(stored)
        assert warnings == []
        copy = api.secret(namespace, SECRET)
        assert copy is not None
        assert copy["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "pullsecret-injector"
    finally:
        api.core.delete_namespace(namespace)


def test_the_controller_keeps_copies_current_with_the_chart_rbac(
    release: LocalRelease, api: Api, control_plane: ControlPlane
) -> None:
    namespace = _labelled_namespace(api, control_plane)
    try:
        wait_until(lambda: api.secret(namespace, SECRET), "the pre-provisioned copy", timeout=60)
        rotated = pull_secret(SECRET, SOURCES, {"chart.example.com": "rotated"})
        api.apply_secret(rotated)
        wait_until(
            lambda: (api.secret(namespace, SECRET) or {}).get("data") == rotated["data"],
            "the copy to follow the rotated source",
            timeout=60,
        )
    finally:
        api.core.delete_namespace(namespace)


def _can(control_plane: ControlPlane, account: str, *query: str) -> bool:
    result = control_plane.kubectl(
        "auth", "can-i", *query, f"--as=system:serviceaccount:{NAMESPACE}:{account}"
    )
    answer = result.stdout.strip()
    assert answer in ("yes", "no"), (result.stdout, result.stderr)
    return answer == "yes"


WEBHOOK_SA = "psi-pullsecret-injector-webhook"
CONTROLLER_SA = "psi-pullsecret-injector-controller"


@pytest.mark.parametrize(
    ("account", "query", "allowed"),
    [
        pytest.param(
            WEBHOOK_SA,
            ("list", "secrets", "-A"),
            False,
            id="webhook cannot list secrets cluster-wide",
        ),
        pytest.param(
            WEBHOOK_SA,
            ("get", "secret/other", "-n", "default"),
            False,
            id="webhook cannot read unmanaged secrets",
        ),
        pytest.param(
            WEBHOOK_SA,
            ("update", f"secret/{SECRET}", "-n", "default"),
            False,
            id="webhook cannot update secrets",
        ),
        pytest.param(
            WEBHOOK_SA,
            ("delete", f"secret/{SECRET}", "-n", "default"),
            False,
            id="webhook cannot delete secrets",
        ),
        pytest.param(
            WEBHOOK_SA, ("create", "secrets", "-n", "default"), True, id="webhook may create copies"
        ),
        pytest.param(
            WEBHOOK_SA,
            ("get", f"secret/{SECRET}", "-n", "default"),
            True,
            id="webhook may read managed names",
        ),
        pytest.param(
            WEBHOOK_SA,
            ("get", f"secret/{SECRET}", "-n", SOURCES),
            True,
            id="webhook may read the policy's source secret",
        ),
        pytest.param(
            WEBHOOK_SA,
            ("list", "secrets", "-n", SOURCES),
            True,
            id="webhook may list the source namespace (a source secret added live is readable)",
        ),
        pytest.param(
            WEBHOOK_SA,
            ("patch", "mutatingwebhookconfigurations/other"),
            False,
            id="webhook cannot touch webhook configurations",
        ),
        pytest.param(
            CONTROLLER_SA,
            ("list", "secrets", "-A"),
            False,
            id="controller cannot list secrets cluster-wide",
        ),
        pytest.param(
            CONTROLLER_SA,
            ("update", "secret/someone-elses", "-n", "default"),
            False,
            id="controller cannot update secrets it does not manage",
        ),
        pytest.param(
            CONTROLLER_SA,
            ("update", f"secret/{SECRET}", "-n", "default"),
            True,
            id="controller may update managed copies",
        ),
        pytest.param(
            CONTROLLER_SA,
            ("delete", f"secret/{SECRET}", "-n", "default"),
            True,
            id="controller may delete managed copies",
        ),
        pytest.param(
            CONTROLLER_SA,
            ("patch", "mutatingwebhookconfigurations/other"),
            False,
            id="controller cannot touch other webhook configurations",
        ),
        pytest.param(
            CONTROLLER_SA,
            ("patch", "mutatingwebhookconfigurations/psi-pullsecret-injector"),
            True,
            id="controller may patch its own caBundle",
        ),
        pytest.param(
            CONTROLLER_SA,
            ("create", "pods", "-n", "default"),
            False,
            id="controller cannot create pods",
        ),
    ],
)
def test_rbac_grants_exactly_what_each_component_needs(
    release: LocalRelease,
    control_plane: ControlPlane,
    account: str,
    query: tuple[str, ...],
    allowed: bool,
) -> None:
    assert _can(control_plane, account, *query) is allowed


def test_helm_lint_is_clean_against_this_api_server(release: LocalRelease) -> None:
    result = release.helm(
        "lint",
        "--strict",
        str(Path(__file__).resolve().parents[2] / "charts" / "pullsecret-injector"),
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_processes_ran_as_the_charts_service_accounts(release: LocalRelease) -> None:
    for running in release.pods:
        command = subprocess.run(
            ["cat", f"/proc/{running.child.pid}/environ"], capture_output=True, check=True
        )
        environ = command.stdout.split(b"\0")
        kubeconfig = next(e for e in environ if e.startswith(b"PSI_KUBECONFIG=")).split(b"=", 1)[1]
        config = yaml.safe_load(Path(kubeconfig.decode()).read_text())
        assert "token" in config["users"][0]["user"], "authenticated by a ServiceAccount token"
        assert "client-certificate-data" not in config["users"][0]["user"]
