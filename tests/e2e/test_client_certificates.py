"""Mutual TLS (issue 16 §7): with a client CA set, only the API server can post reviews.

The webhook creates Secrets as a side effect of a review, so whoever can reach its port can
ask it to. With ``PSI_TLS_CLIENT_CA_FILE`` the webhook requires a client certificate from
that CA; the API server presents one from the kubeconfig named in its
``--admission-control-config-file`` (a ``WebhookAdmissionConfiguration``; the user entry is
named after the webhook's ``host:port``). This control plane is started that way: pods are
patched through the API server, and a forged POST without the certificate fails the handshake.
"""

from __future__ import annotations

import http.client
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from certs.files import write_atomic
from certs.pki import issue, new_ca
from tests.e2e.reliability import own_webhook, review, tls_context
from tests.e2e.support import (
    POLICY_NAMESPACE,
    SOURCE_NAMESPACE,
    Api,
    pod,
    pull_secret,
    secret_names,
)
from tools.controlplane import ControlPlane, bin_dir_from_env, free_port

RULES = "rules:\n  - {name: mtls, registries: [mtls.example.com], secrets: [mtls-pull]}\n"


@pytest.fixture
def webhook_port() -> int:
    return free_port()


@pytest.fixture
def client_ca(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(CA file for the webhook, client cert, client key for the API server)."""
    now = datetime.now(UTC)
    ca = new_ca("webhook clients", now, 2)
    leaf = issue(ca, "kube-apiserver", now=now, days=2, server=False, client=True)
    files = tmp_path / "client-ca.crt", tmp_path / "apiserver.crt", tmp_path / "apiserver.key"
    write_atomic(files[0], ca.cert_pem, 0o644)
    write_atomic(files[1], leaf.cert_pem, 0o644)
    write_atomic(files[2], leaf.key_pem, 0o600)
    return files


@pytest.fixture
def mtls_plane(
    tmp_path: Path, webhook_port: int, client_ca: tuple[Path, Path, Path]
) -> Iterator[ControlPlane]:
    _, cert, key = client_ca
    kubeconfig = tmp_path / "webhook-clients.kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "users": [
                    {
                        "name": f"127.0.0.1:{webhook_port}",
                        "user": {"client-certificate": str(cert), "client-key": str(key)},
                    }
                ],
            }
        )
    )
    webhook_admission = {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "WebhookAdmissionConfiguration",
        "kubeConfigFile": str(kubeconfig),
    }
    admission = tmp_path / "admission.yaml"
    admission.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "apiserver.config.k8s.io/v1",
                "kind": "AdmissionConfiguration",
                "plugins": [
                    {"name": name, "configuration": webhook_admission}
                    for name in ("MutatingAdmissionWebhook", "ValidatingAdmissionWebhook")
                ],
            }
        )
    )
    plane = ControlPlane.start(
        tmp_path / "cluster",
        bin_dir_from_env(),
        apiserver_args=[f"--admission-control-config-file={admission}"],
    )
    try:
        yield plane
    finally:
        plane.stop()


def test_with_a_client_ca_the_api_server_gets_answers_and_a_forged_post_is_refused(
    mtls_plane: ControlPlane,
    webhook_port: int,
    client_ca: tuple[Path, Path, Path],
    tmp_path: Path,
) -> None:
    api = Api(mtls_plane)
    api.ensure_namespace(POLICY_NAMESPACE)
    api.ensure_namespace(SOURCE_NAMESPACE)
    api.apply_secret(pull_secret("mtls-pull", SOURCE_NAMESPACE, {"mtls.example.com": "x"}))
    extra = {"PSI_TLS_CLIENT_CA_FILE": str(client_ca[0])}
    with own_webhook(
        mtls_plane, api, tmp_path / "webhook", "mtls", RULES, port=webhook_port, extra_env=extra
    ) as hook:
        namespace = hook.namespace("mtls")
        mtls_plane.wait_for_service_account(namespace)
        hook.wait_called(namespace)
        stored, _ = api.create_pod(namespace, pod("through-the-api-server", "mtls.example.com/a"))
        forged = review(namespace, pod("forged", "mtls.example.com/a"))
        with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
            post_without_certificate(webhook_port, tls_context(hook.server), forged)
        copy = api.secret(namespace, "mtls-pull")
    assert secret_names(stored) == ["mtls-pull"]
    assert copy is not None  # created for the real pod, through the API server


def post_without_certificate(port: int, context: ssl.SSLContext, body: bytes) -> bytes:
    """POST /mutate as anyone on the network could: trusting the CA, with no certificate."""
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        connection.request("POST", "/mutate", body, {"Content-Type": "application/json"})
        return connection.getresponse().read()
    finally:
        connection.close()
