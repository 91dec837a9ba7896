"""Uninstall leaves a working cluster, and cleanup is one command (issue 17 §5).

Install the chart, use it (copies at admission, a ServiceAccount entry), `helm uninstall`:
no webhook configuration remains and pod creation works at once; copies and entries stay
(running pods still pull with them). Then `pullsecret-injector cleanup --dry-run` lists and
changes nothing, `cleanup` removes every copy, entry, grant, the Lease and the certificate
Secrets we made, and every foreign object is intact.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from kubernetes import client

from tests.e2e.support import Api, pod, pull_secret, secret_names, unique, wait_until
from tools.controlplane import ControlPlane
from tools.local_release import LocalRelease

NAMESPACE = "psi-uninstall"
SOURCES = "psi-uninstall-src"
LABEL = "e2e.pullsecret-injector.io/uninstall"
SECRET = "gone-pull"


def cli(plane: ControlPlane, *args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("pullsecret-injector")
    return subprocess.run(
        [str(script), *args, "--kubeconfig", str(plane.admin_kubeconfig)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def ours(api: Api) -> list[str]:
    """Everything carrying our managed-by label, anywhere."""
    selector = "app.kubernetes.io/managed-by=pullsecret-injector"
    secrets = api.core.list_secret_for_all_namespaces(label_selector=selector).items
    configmaps = api.core.list_config_map_for_all_namespaces(label_selector=selector).items
    return sorted(f"{o.metadata.namespace}/{o.metadata.name}" for o in [*secrets, *configmaps])


def test_install_use_uninstall_cleanup_leaves_nothing_of_ours_and_everything_else(
    control_plane: ControlPlane, api: Api, tmp_path: Path
) -> None:
    api.ensure_namespace(SOURCES)
    api.apply_secret(pull_secret(SECRET, SOURCES, {"gone.example.com": "x"}))
    values: dict[str, Any] = {
        "policy": {
            "defaults": {"sourceNamespace": SOURCES},
            "rules": [
                {
                    "name": "gone",
                    "registries": ["gone.example.com"],
                    "secrets": [SECRET],
                    "serviceAccounts": {"names": ["builder"]},
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
    release = LocalRelease(control_plane, "psu", NAMESPACE, tmp_path / "release", values)
    namespace = unique("uninstall")
    release.install()
    try:
        release.start("-controller")
        release.start("-webhook")
        api.ensure_namespace(namespace, {LABEL: "true"})
        control_plane.wait_for_service_account(namespace)
        foreign = pull_secret("foreign-pull", namespace, {"other.example.com": "y"})
        foreign["metadata"]["labels"] = {"app.kubernetes.io/managed-by": "Helm"}
        api.apply_secret(foreign)
        wait_until(lambda: api.secret(namespace, SECRET), "the controller's copy", timeout=60)
        api.core.create_namespaced_service_account(
            namespace,
            {
                "metadata": {"name": "builder"},
                "imagePullSecrets": [{"name": "foreign-pull"}],
            },
        )
        stored, _ = api.create_pod(namespace, pod("before", "gone.example.com/app"))
        assert secret_names(stored) == [SECRET]
    finally:
        release.stop()
        release.uninstall()

    admission = client.AdmissionregistrationV1Api(api.api)
    hooks = [h.metadata.name for h in admission.list_mutating_webhook_configuration().items]
    assert not [h for h in hooks if h.startswith("psu-")], hooks
    after, _ = api.create_pod(namespace, pod("after", "gone.example.com/app"))
    assert secret_names(after) == []  # admitted at once, by nobody
    assert api.secret(namespace, SECRET) is not None, "copies stay after uninstall"

    dry = cli(control_plane, "cleanup", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"secret/{SECRET} in {namespace}: delete (dry run)" in dry.stdout
    assert f"serviceaccount/builder in {namespace}: remove {SECRET} (dry run)" in dry.stdout
    assert f"{namespace}/{SECRET}" in ours(api), "a dry run changes nothing"

    done = cli(control_plane, "cleanup")
    assert done.returncode == 0, done.stdout + done.stderr
    assert ours(api) == []
    builder = api.read(api.core.read_namespaced_service_account, "builder", namespace)
    assert [e["name"] for e in builder["imagePullSecrets"]] == ["foreign-pull"]
    assert api.secret(namespace, "foreign-pull") is not None
    assert api.secret(SOURCES, SECRET) is not None, "the source is never ours"
    leases = client.CoordinationV1Api(api.api).list_namespaced_lease(NAMESPACE).items
    assert [lease.metadata.name for lease in leases] == []
    again = cli(control_plane, "cleanup")
    assert "nothing of pullsecret-injector's is left" in again.stdout
    api.core.delete_namespace(namespace)
