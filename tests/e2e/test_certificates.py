"""Self-managed certificates: the API server calls the webhook through a Service, trusting a
caBundle the controller patched, and a forced renewal under load fails no admission."""

from __future__ import annotations

import base64
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from kubernetes import client

from certs.files import write_atomic
from tests.e2e.support import (
    POLICY_HEADER,
    POLICY_NAMESPACE,
    SOURCE_NAMESPACE,
    Api,
    ControllerProcess,
    WebhookServer,
    pod,
    pull_secret,
    register_webhook,
    secret_names,
    set_policy,
    unique,
    unregister_webhook,
    wait_until,
    webhook_configuration,
)
from tools.controlplane import ControlPlane, free_port

SERVICE = "pullsecret-injector-certs"
TLS_SECRET = "pullsecret-injector-certs-tls"
CONFIGURATION = "pullsecret-injector-certs-e2e"
LABEL = "e2e.pullsecret-injector.io/certs"
FORCE = "pullsecret-injector.io/force-renewal"


class KubeletProjection:
    """Stands in for the kubelet: keeps a Secret's files current in a directory, atomically
    (there is no kubelet here; the real one swaps a ..data symlink)."""

    def __init__(self, api: Api, directory: Path) -> None:
        self.api = api
        self.directory = directory
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def sync(self) -> bool:
        secret = self.api.secret(POLICY_NAMESPACE, TLS_SECRET)
        if secret is None:
            return False
        for key in ("tls.crt", "tls.key"):
            data = base64.b64decode(secret["data"][key])
            path = self.directory / key
            if not path.exists() or path.read_bytes() != data:
                write_atomic(path, data, 0o600)
        return True

    def _run(self) -> None:
        while not self.stop.wait(0.5):
            self.sync()


@pytest.fixture(scope="module")
def served_by_service(
    control_plane: ControlPlane,
    api: Api,
    webhook: WebhookServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[WebhookServer, ControllerProcess, KubeletProjection]]:
    workdir = tmp_path_factory.mktemp("certs")
    port = free_port()
    api.core.create_namespaced_service(
        POLICY_NAMESPACE,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": SERVICE},
            "spec": {
                "type": "ExternalName",
                "externalName": "localhost",
                "ports": [{"port": port}],
            },
        },
    )
    register_webhook(
        api,
        webhook_configuration(
            CONFIGURATION,
            b"",
            service={
                "namespace": POLICY_NAMESPACE,
                "name": SERVICE,
                "port": port,
                "path": "/mutate",
            },
            failure_policy="Fail",  # a TLS failure must be visible, not silently ignored
            namespace_label=LABEL,
        ),
    )
    controller = ControllerProcess(
        control_plane,
        workdir,
        "cert-controller",
        extra_env={
            "PSI_LEASE_NAME": "pullsecret-injector-certs-e2e",
            "PSI_CERT_MODE": "self-managed",
            "PSI_CERT_SECRET": TLS_SECRET,
            "PSI_SERVICE_NAME": SERVICE,
            "PSI_WEBHOOK_CONFIGURATION": CONFIGURATION,
            "PSI_CERT_CHECK_SECONDS": "1",
        },
    )
    controller.start()
    tls_dir = workdir / "webhook" / "tls"
    tls_dir.mkdir(parents=True)
    projection = KubeletProjection(api, tls_dir)
    wait_until(projection.sync, "the controller to create the TLS Secret", timeout=30)
    projection.thread.start()
    server = WebhookServer(control_plane, workdir / "webhook", port=port)
    server.start()
    yield server, controller, projection
    projection.stop.set()
    unregister_webhook(api, CONFIGURATION)
    server.stop()
    controller.stop()
    api.core.delete_namespaced_service(SERVICE, POLICY_NAMESPACE)


def _ca_bundle(api: Api) -> bytes:
    admission = client.AdmissionregistrationV1Api(api.api)
    config = api.read(admission.read_mutating_webhook_configuration, CONFIGURATION)
    return base64.b64decode(config["webhooks"][0]["clientConfig"].get("caBundle") or "")


def _serving_serial(api: Api) -> int:
    secret = api.secret(POLICY_NAMESPACE, TLS_SECRET)
    assert secret is not None
    return x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"])).serial_number


def _served_serial(server: WebhookServer) -> int:
    """Serial of the certificate a fresh TLS connection to the webhook is given."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # only reading which certificate is presented
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw,
        context.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def test_the_api_server_calls_the_webhook_through_the_service_with_the_patched_bundle(
    api: Api,
    control_plane: ControlPlane,
    served_by_service: tuple[WebhookServer, ControllerProcess, KubeletProjection],
) -> None:
    server, _, _ = served_by_service
    bundle = wait_until(lambda: _ca_bundle(api), "the controller to patch the caBundle", timeout=60)
    assert b"BEGIN CERTIFICATE" in bundle
    api.apply_secret(pull_secret("certs-pull", SOURCE_NAMESPACE, {"certs.example.com": "c"}))
    set_policy(
        api,
        POLICY_HEADER
        + "rules:\n  - {name: certs, registries: [certs.example.com], secrets: [certs-pull]}\n",
        server,
    )
    namespace = unique("certs")
    api.ensure_namespace(namespace, {LABEL: "true"})
    try:
        control_plane.wait_for_service_account(namespace)
        stored, _ = api.create_pod(namespace, pod("via-service", "certs.example.com/app"))
        assert secret_names(stored) == ["certs-pull"]
    finally:
        api.core.delete_namespace(namespace)


def test_a_forced_renewal_under_load_fails_no_admission(
    api: Api,
    control_plane: ControlPlane,
    served_by_service: tuple[WebhookServer, ControllerProcess, KubeletProjection],
) -> None:
    server, _, _ = served_by_service
    wait_until(lambda: _ca_bundle(api), "caBundle", timeout=60)
    api.apply_secret(pull_secret("certs-pull", SOURCE_NAMESPACE, {"certs.example.com": "c"}))
    set_policy(
        api,
        POLICY_HEADER
        + "rules:\n  - {name: certs, registries: [certs.example.com], secrets: [certs-pull]}\n",
        server,
    )
    namespace = unique("renew")
    api.ensure_namespace(namespace, {LABEL: "true"})
    control_plane.wait_for_service_account(namespace)
    before = _serving_serial(api)
    failures: list[str] = []
    created = 0
    stop = threading.Event()

    def load() -> None:
        nonlocal created
        local = Api(control_plane)
        while not stop.is_set() and created < 2000:
            try:
                stored, _ = local.create_pod(
                    namespace, pod(unique("load"), "certs.example.com/app")
                )
                if secret_names(stored) != ["certs-pull"]:
                    failures.append(f"not patched: {stored['metadata']['name']}")
                created += 1
            except Exception as exc:
                failures.append(repr(exc)[:300])

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    try:
        time.sleep(2)
        api.core.patch_namespaced_secret(
            TLS_SECRET, POLICY_NAMESPACE, {"metadata": {"annotations": {FORCE: "e2e"}}}
        )
        wait_until(
            lambda: _serving_serial(api) != before, "a renewed serving certificate", timeout=60
        )
        renewed = _serving_serial(api)
        # New connections (the API server opens some as it goes) must get the new
        # certificate from every worker, without a restart.
        wait_until(
            lambda: all(_served_serial(server) == renewed for _ in range(8)),
            "new connections to be served the renewed certificate",
            timeout=60,
        )
        time.sleep(3)  # keep creating pods on connections that use the new certificate
    finally:
        stop.set()
        worker.join(30)
        api.core.delete_namespace(namespace)
    assert created > 20
    assert failures == []
