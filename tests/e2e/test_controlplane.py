"""The e2e harness itself, proven on the real API server.

Before any webhook test can mean something, these show that the control plane is the real
thing: the stamped version, kube-controller-manager doing its job, client-certificate and
token authentication with RBAC, and — with a stub webhook served from this process — that the
API server really calls a webhook by URL and by Service (ExternalName → localhost), verifies
its certificate, applies its patch, and fails open when told to.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from certs import pki
from tests.e2e.stubwebhook import STUB_LABEL, STUB_VALUE, StubWebhook
from tools.controlplane import BUILD_SCRIPT, REPO, ControlPlane
from tools.processes import is_running

IMAGE = "registry.example.invalid/team/app:1.0"  # made up; nothing ever pulls it


# --------------------------------------------------------------------------------------------
# Helpers


def wait_until(
    check: Callable[[], bool], what: str, timeout: float = 30.0, interval: float = 0.2
) -> None:
    """Poll ``check`` until true, bounded both in attempts and in time."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / interval) + 1):
        if check():
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "app", "image": IMAGE}]},
    }


def expected_version() -> str:
    """The version tools/build-control-plane.sh stamps into the binaries it builds."""
    match = re.search(r"^K8S_VERSION=(v\S+)", BUILD_SCRIPT.read_text(), re.MULTILINE)
    assert match, f"no K8S_VERSION in {BUILD_SCRIPT}"
    return match.group(1)


@pytest.fixture
def admin_api(control_plane: ControlPlane) -> Iterator[client.ApiClient]:
    with control_plane.api_client() as api_client:
        yield api_client


@pytest.fixture
def core(admin_api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(admin_api)


@pytest.fixture
def admission(admin_api: client.ApiClient) -> client.AdmissionregistrationV1Api:
    return client.AdmissionregistrationV1Api(admin_api)


# --------------------------------------------------------------------------------------------


def webhook_name(configuration: str) -> str:
    return f"{configuration}.e2e.pullsecret-injector.invalid"


def webhook_configuration(
    name: str,
    namespace: str,
    client_config: Mapping[str, Any],
    ca_pem: bytes,
    failure_policy: str = "Fail",
) -> dict[str, Any]:
    """A MutatingWebhookConfiguration for Pod CREATE, limited to ``namespace``."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": webhook_name(name),
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": failure_policy,
                "timeoutSeconds": 5,
                "clientConfig": {**client_config, "caBundle": base64.b64encode(ca_pem).decode()},
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": namespace},
                },
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods"],
                        "scope": "Namespaced",
                    }
                ],
            }
        ],
    }


@contextlib.contextmanager
def registered(
    admission: client.AdmissionregistrationV1Api, body: Mapping[str, Any]
) -> Iterator[str]:
    name = body["metadata"]["name"]
    admission.create_mutating_webhook_configuration(body)
    try:
        yield name
    finally:
        admission.delete_mutating_webhook_configuration(name)


def wait_for_first_call(core: client.CoreV1Api, namespace: str, stub: StubWebhook) -> None:
    """Dry-run Pod creations until the API server has picked up the configuration and
    actually called the stub (configurations reach the admission chain asynchronously)."""

    def called() -> bool:
        core.create_namespaced_pod(namespace, pod(unique("probe")), dry_run="All")
        return bool(stub.requests_for(namespace))

    wait_until(called, f"the API server's first admission call for {namespace}", 30, 0.2)
    assert stub.requests_for(namespace)[0]["dryRun"] is True


def labels_of(core: client.CoreV1Api, namespace: str, name: str) -> dict[str, str]:
    return dict(core.read_namespaced_pod(name, namespace).metadata.labels or {})


# --------------------------------------------------------------------------------------------
# The control plane


def test_version_is_the_stamped_release(admin_api: client.ApiClient) -> None:
    info = client.VersionApi(admin_api).get_code()
    assert info.git_version == expected_version()  # v1.36.3 today
    assert (info.major, info.minor) == ("1", expected_version().split(".")[1])
    assert info.git_tree_state == "clean"


def test_new_namespace_gets_default_service_account_and_root_ca_by_itself(
    core: client.CoreV1Api,
) -> None:
    name = unique("e2e-kcm")
    core.create_namespace({"metadata": {"name": name}})
    try:

        def has_default_sa() -> bool:
            return any(
                sa.metadata.name == "default"
                for sa in core.list_namespaced_service_account(name).items
            )

        wait_until(has_default_sa, f"ServiceAccount {name}/default", timeout=60)
        wait_until(
            lambda: bool(
                core.list_namespaced_config_map(
                    name, field_selector="metadata.name=kube-root-ca.crt"
                ).items
            ),
            f"ConfigMap {name}/kube-root-ca.crt",
            timeout=60,
        )
    finally:
        core.delete_namespace(name)

    def gone() -> bool:
        return not core.list_namespace(field_selector=f"metadata.name={name}").items

    wait_until(gone, f"namespace {name} to be finalized by namespace-controller", timeout=60)


def test_admission_chain_includes_service_account_plugin(
    core: client.CoreV1Api, namespace: str
) -> None:
    created = core.create_namespaced_pod(namespace, pod("sa-plugin"))
    assert created.spec.service_account_name == "default"
    assert any(v.name.startswith("kube-api-access-") for v in created.spec.volumes)


def test_client_certificate_user_is_subject_to_rbac(control_plane: ControlPlane) -> None:
    kubeconfig = control_plane.kubeconfig_for_user("e2e-alice", groups=["e2e-team"])
    with config.new_client_from_config(config_file=str(kubeconfig)) as api:
        review = client.AuthenticationV1Api(api).create_self_subject_review({})
        assert review.status.user_info.username == "e2e-alice"
        assert "e2e-team" in review.status.user_info.groups
        with pytest.raises(ApiException) as denied:
            client.CoreV1Api(api).list_namespace()
    assert denied.value.status == 403


def test_service_account_token_authenticates(
    control_plane: ControlPlane, core: client.CoreV1Api, namespace: str
) -> None:
    token = core.create_namespaced_service_account_token(
        "default", namespace, {"spec": {"expirationSeconds": 600}}
    ).status.token
    kubeconfig = control_plane.kubeconfig_for_token(token)
    with config.new_client_from_config(config_file=str(kubeconfig)) as api:
        review = client.AuthenticationV1Api(api).create_self_subject_review({})
    assert review.status.user_info.username == f"system:serviceaccount:{namespace}:default"


def test_cli_up_and_down_manage_detached_processes(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    workdir = tmp_path / "cli-plane"
    env = {**os.environ, "PULLSECRET_BIN_DIR": str(control_plane.bin_dir)}
    command = [sys.executable, "-m", "tools.controlplane"]
    up = subprocess.run(
        [*command, "up", "--dir", str(workdir)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    try:
        assert up.returncode == 0, up.stderr
        assert Path(up.stdout.strip()) == workdir / "admin.kubeconfig"
        state = json.loads((workdir / "state.json").read_text())
        plane = ControlPlane.attach(workdir)
        assert [p.name for p in plane.processes] == [
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
        ]
        for record in plane.processes:
            assert is_running(record), record
            assert os.getsid(record.pid) == record.pid, "up must detach into its own session"
        assert plane.get("/readyz") == (200, b"ok")
        assert state["api_url"] == plane.api_url != control_plane.api_url
    finally:
        down = subprocess.run(
            [*command, "down", "--dir", str(workdir)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert down.returncode == 0, down.stderr
    assert not any(is_running(record) for record in plane.processes)
    assert not (workdir / "state.json").exists()
    again = subprocess.run(
        [*command, "down", "--dir", str(workdir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert again.returncode == 0, again.stderr


# --------------------------------------------------------------------------------------------
# Admission webhooks: the API server calls a webhook served from this test process


def test_url_webhook_is_called_and_its_patch_is_stored(
    core: client.CoreV1Api,
    admission: client.AdmissionregistrationV1Api,
    namespace: str,
    tmp_path: Path,
) -> None:
    with StubWebhook(tmp_path, hosts=["127.0.0.1"]) as stub:
        body = webhook_configuration(
            unique("e2e-stub-url"),
            namespace,
            {"url": f"https://127.0.0.1:{stub.port}/mutate"},
            stub.ca_pem,
        )
        with registered(admission, body):
            wait_for_first_call(core, namespace, stub)
            created = core.create_namespaced_pod(namespace, pod("labelled"))
            # Outside the namespaceSelector: never sent to the webhook.
            core.create_namespaced_pod("default", pod(unique("elsewhere")), dry_run="All")

    assert (created.metadata.labels or {}).get(STUB_LABEL) == STUB_VALUE
    assert labels_of(core, namespace, "labelled").get(STUB_LABEL) == STUB_VALUE
    request = stub.requests_for(namespace)[-1]
    assert request["operation"] == "CREATE"
    assert request["dryRun"] is False
    assert request["kind"] == {"group": "", "version": "v1", "kind": "Pod"}
    assert request["userInfo"]["username"] == "pullsecret-e2e-admin"
    # The API server appends its timeout to the configured URL.
    assert set(stub.paths) == {"/mutate?timeout=5s"}
    assert stub.requests_for("default") == []
    assert stub.errors == []


def test_service_webhook_through_externalname_is_verified_for_the_service_name(
    core: client.CoreV1Api,
    admission: client.AdmissionregistrationV1Api,
    namespace: str,
    tmp_path: Path,
) -> None:
    service = "stub-webhook"
    core.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": service},
            "spec": {"type": "ExternalName", "externalName": "localhost"},
        },
    )
    # A serving certificate for the Service's DNS names only: no 127.0.0.1, no localhost.
    with StubWebhook(tmp_path, hosts=pki.service_hosts(service, namespace)) as stub:
        body = webhook_configuration(
            unique("e2e-stub-svc"),
            namespace,
            {
                "service": {
                    "namespace": namespace,
                    "name": service,
                    "port": stub.port,
                    "path": "/mutate",
                }
            },
            stub.ca_pem,
        )
        with registered(admission, body):
            wait_for_first_call(core, namespace, stub)
            core.create_namespaced_pod(namespace, pod("via-service"))

    assert labels_of(core, namespace, "via-service").get(STUB_LABEL) == STUB_VALUE
    assert set(stub.server_names) == {f"{service}.{namespace}.svc"}
    assert stub.errors == []


def test_service_webhook_with_a_certificate_for_other_names_is_refused(
    core: client.CoreV1Api,
    admission: client.AdmissionregistrationV1Api,
    namespace: str,
    tmp_path: Path,
) -> None:
    service = "stub-webhook"
    core.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": service},
            "spec": {"type": "ExternalName", "externalName": "localhost"},
        },
    )
    with StubWebhook(tmp_path, hosts=["127.0.0.1", "localhost"]) as stub:
        body = webhook_configuration(
            unique("e2e-stub-badcert"),
            namespace,
            {"service": {"namespace": namespace, "name": service, "port": stub.port}},
            stub.ca_pem,
        )
        errors: list[ApiException] = []

        def refused() -> bool:
            try:
                core.create_namespaced_pod(namespace, pod(unique("probe")), dry_run="All")
            except ApiException as exc:
                errors.append(exc)
                return True
            return False

        with registered(admission, body):
            wait_until(refused, "the API server to refuse the webhook's certificate")

    assert errors[-1].status == 500
    assert "failed calling webhook" in errors[-1].body
    assert f"{service}.{namespace}.svc" in errors[-1].body
    assert "x509" in errors[-1].body
    assert stub.reviews == []


def test_failure_policy_ignore_admits_pods_while_the_webhook_is_down(
    control_plane: ControlPlane,
    core: client.CoreV1Api,
    admission: client.AdmissionregistrationV1Api,
    namespace: str,
    tmp_path: Path,
) -> None:
    stub = StubWebhook(tmp_path, hosts=["127.0.0.1"])
    body = webhook_configuration(
        unique("e2e-stub-ignore"),
        namespace,
        {"url": f"https://127.0.0.1:{stub.port}/mutate"},
        stub.ca_pem,
        failure_policy="Ignore",
    )
    with registered(admission, body) as configuration:
        with stub:
            wait_for_first_call(core, namespace, stub)  # proves the configuration is live
        seen = len(stub.reviews)
        with pytest.raises(ConnectionRefusedError):  # the webhook is really down
            socket.create_connection(("127.0.0.1", stub.port), timeout=5).close()
        created = core.create_namespaced_pod(namespace, pod("admitted-anyway"))

    assert STUB_LABEL not in (created.metadata.labels or {})
    assert STUB_LABEL not in labels_of(core, namespace, "admitted-anyway")
    assert len(stub.reviews) == seen
    status, metrics = control_plane.get("/metrics")
    assert status == 200
    assert re.search(
        rf"^apiserver_admission_webhook_fail_open_count\{{[^}}]*"
        rf'name="{re.escape(webhook_name(configuration))}"[^}}]*\}} [1-9]',
        metrics.decode(),
        re.MULTILINE,
    ), "the API server did not record a fail-open call for the stub"
