"""The webhook pod's own API client (webhook.k8s.rest), against a real TLS server on loopback.

What the pod relies on: the credentials a kubeconfig or the ServiceAccount gives reach the
server (client certificate, bearer token, a rotated token file), the CoreV1Api-style calls
become the API server's paths and query names, an error answer is an ``ApiError`` carrying the
server's Status, a watch streams, and the pod never imports ``kubernetes``. The e2e suite runs
the same client against the real API server (every webhook pod the harness starts).
"""

from __future__ import annotations

import base64
import http.server
import inspect
import json
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest
import yaml

from certs import pki
from webhook.k8s import client as k8s_client
from webhook.k8s import reflector, rest
from webhook.settings import SettingsError


@dataclass
class Seen:
    """What the server received, one entry per request."""

    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    peer_certificates: list[str] = field(default_factory=list)


@dataclass
class Server:
    url: str
    ca_pem: bytes
    client_cert: pki.Issued
    seen: Seen


def _handler(seen: Seen) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            seen.requests.append((self.command, self.path, dict(self.headers), body))
            peer = self.connection.getpeercert()
            if peer:
                seen.peer_certificates.append(dict(x[0] for x in peer["subject"])["commonName"])
            if "/namespaces/missing" in self.path:
                self._json(404, {"kind": "Status", "code": 404, "message": 'namespaces "missing"'})
            elif "watch=true" in self.path:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                events = [
                    {"type": "ADDED", "object": {"metadata": {"name": "a"}}},
                    {"type": "DELETED", "object": {"metadata": {"name": "b"}}},
                ]
                for event in events:
                    line = json.dumps(event).encode() + b"\n"
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                self.wfile.write(b"0\r\n\r\n")
            elif self.command == "POST" and "selfsubjectaccessreviews" in self.path:
                self._json(201, {"status": {"allowed": True}})
            else:
                self._json(200, {"items": [{"metadata": {"name": "a"}}], "metadata": {}})

        def _json(self, status: int, document: dict[str, Any]) -> None:
            data = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer  # noqa: N815 - stdlib's names

    return Handler


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    now = datetime.now(UTC)
    ca = pki.new_ca("test-ca", now, 1)
    leaf = pki.issue(ca, "localhost", now=now, days=1, hosts=["127.0.0.1"])
    client_cert = pki.issue(ca, "pod-user", now=now, days=1, server=False, client=True)
    directory = tmp_path_factory.mktemp("tls")
    (directory / "tls.crt").write_bytes(leaf.cert_pem)
    (directory / "tls.key").write_bytes(leaf.key_pem)
    (directory / "ca.crt").write_bytes(ca.cert_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "tls.crt", directory / "tls.key")
    context.load_verify_locations(directory / "ca.crt")
    context.verify_mode = ssl.CERT_OPTIONAL
    seen = Seen()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(seen))
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield Server(f"https://127.0.0.1:{httpd.server_address[1]}", ca.cert_pem, client_cert, seen)
    finally:
        httpd.shutdown()
        httpd.server_close()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _kubeconfig(path: Path, server: Server, user: dict[str, Any]) -> str:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "c",
                "cluster": {
                    "server": server.url,
                    "certificate-authority-data": _b64(server.ca_pem),
                },
            }
        ],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path.write_text(yaml.safe_dump(config))
    return str(path)


def _cert_user(server: Server) -> dict[str, str]:
    return {
        "client-certificate-data": _b64(server.client_cert.cert_pem),
        "client-key-data": _b64(server.client_cert.key_pem),
    }


def test_a_kubeconfig_client_certificate_reaches_the_server_and_the_query_has_the_api_names(
    server: Server, tmp_path: Path
) -> None:
    core = rest.CoreV1(
        rest.kubeconfig_client(_kubeconfig(tmp_path / "kc", server, _cert_user(server)))
    )
    response = core.list_namespaced_secret(
        "team-a",
        limit=500,
        _continue="tok en",
        field_selector="metadata.name=corp-pull",
        _request_timeout=10,
        _preload_content=False,
    )
    assert json.loads(response.data)["items"] == [{"metadata": {"name": "a"}}]
    method, path, _, _ = server.seen.requests[-1]
    assert method == "GET"
    assert path == (
        "/api/v1/namespaces/team-a/secrets?limit=500&continue=tok+en"
        "&fieldSelector=metadata.name%3Dcorp-pull"
    )
    assert server.seen.peer_certificates[-1] == "pod-user"


def test_a_bearer_token_is_sent_and_a_token_file_is_read_again_after_rotation(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("first-made-up-token\n")
    core = rest.CoreV1(
        rest.kubeconfig_client(_kubeconfig(tmp_path / "kc", server, {"tokenFile": "token"}))
    )
    core.read_namespace("team-a")
    assert server.seen.requests[-1][2]["Authorization"] == "Bearer first-made-up-token"
    token_file.write_text("second-made-up-token\n")
    monkeypatch.setattr(rest, "TOKEN_REREAD_SECONDS", 0.0)
    core.read_namespace("team-a")
    assert server.seen.requests[-1][2]["Authorization"] == "Bearer second-made-up-token"


def test_an_error_answer_is_an_api_error_with_the_servers_status(
    server: Server, tmp_path: Path
) -> None:
    core = rest.CoreV1(rest.kubeconfig_client(_kubeconfig(tmp_path / "kc", server, {"token": "t"})))
    with pytest.raises(rest.ApiError) as caught:
        core.read_namespace("missing")
    assert caught.value.status == 404
    assert json.loads(caught.value.body)["message"] == 'namespaces "missing"'
    assert reflector._describe(caught.value) == 'HTTP 404: namespaces "missing"'


def test_a_watch_streams_its_events(server: Server, tmp_path: Path) -> None:
    core = rest.CoreV1(rest.kubeconfig_client(_kubeconfig(tmp_path / "kc", server, {"token": "t"})))
    response = core.list_namespace(
        watch=True, resource_version="7", allow_watch_bookmarks=True, timeout_seconds=5
    )
    try:
        events = list(reflector._events(response))
    finally:
        response.release_conn()
    assert [e["type"] for e in events] == ["ADDED", "DELETED"]
    path = server.seen.requests[-1][1]
    assert (
        path == "/api/v1/namespaces?watch=true&resourceVersion=7&allowWatchBookmarks=true"
        "&timeoutSeconds=5"
    )


def test_a_self_access_review_is_answered_as_a_dict(server: Server, tmp_path: Path) -> None:
    api = rest.kubeconfig_client(_kubeconfig(tmp_path / "kc", server, {"token": "t"}))
    review = {"kind": "SelfSubjectAccessReview", "spec": {}}
    answer = k8s_client.self_subject_access_review(api, review, timeout=5)
    assert answer == {"status": {"allowed": True}}
    method, path, headers, body = server.seen.requests[-1]
    assert (method, path) == ("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews")
    assert json.loads(body) == review
    assert headers["Content-Type"] == "application/json"


LEASE = {"metadata": {"name": "l"}}
PATCH = [{"op": "test", "path": "/metadata/resourceVersion", "value": "1"}]
JSON, JSON_PATCH, MERGE_PATCH = (
    "application/json",
    "application/json-patch+json",
    "application/merge-patch+json",
)
CORE, LEASES = "/api/v1/namespaces/n", "/apis/coordination.k8s.io/v1/namespaces/n/leases"
RBAC = "/apis/rbac.authorization.k8s.io/v1"
WEBHOOKS = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
AS_JSON_PATCH = {"_content_type": JSON_PATCH}


@pytest.mark.parametrize(
    ("group", "call", "args", "options", "expected"),
    [
        (rest.CoreV1, "read_namespaced_secret", ("s", "n"), {}, f"GET {CORE}/secrets/s"),
        (
            rest.CoreV1,
            "replace_namespaced_secret",
            ("s", "n", LEASE),
            {},
            f"PUT {CORE}/secrets/s {JSON}",
        ),
        (
            rest.CoreV1,
            "patch_namespaced_secret",
            ("s", "n", PATCH),
            AS_JSON_PATCH,
            f"PATCH {CORE}/secrets/s {JSON_PATCH}",
        ),
        (
            rest.CoreV1,
            "delete_namespaced_secret",
            ("s", "n"),
            {"body": {"preconditions": {}}},
            f"DELETE {CORE}/secrets/s {JSON}",
        ),
        (
            rest.CoreV1,
            "patch_namespaced_service_account",
            ("a", "n", PATCH),
            {},
            f"PATCH {CORE}/serviceaccounts/a {JSON_PATCH}",
        ),
        (
            rest.CoreV1,
            "patch_namespaced_config_map",
            ("c", "n", {"data": {}}),
            {},
            f"PATCH {CORE}/configmaps/c {MERGE_PATCH}",
        ),
        (
            rest.CoreV1,
            "create_namespaced_config_map",
            ("n", LEASE),
            {},
            f"POST {CORE}/configmaps {JSON}",
        ),
        (rest.CoordinationV1, "read_namespaced_lease", ("l", "n"), {}, f"GET {LEASES}/l"),
        (rest.CoordinationV1, "create_namespaced_lease", ("n", LEASE), {}, f"POST {LEASES} {JSON}"),
        (
            rest.CoordinationV1,
            "replace_namespaced_lease",
            ("l", "n", LEASE),
            {},
            f"PUT {LEASES}/l {JSON}",
        ),
        (
            rest.RbacAuthorizationV1,
            "list_role_binding_for_all_namespaces",
            (),
            {"label_selector": "a=b"},
            f"GET {RBAC}/rolebindings?labelSelector=a%3Db",
        ),
        (
            rest.RbacAuthorizationV1,
            "create_namespaced_role_binding",
            ("n", LEASE),
            {},
            f"POST {RBAC}/namespaces/n/rolebindings {JSON}",
        ),
        (
            rest.RbacAuthorizationV1,
            "delete_namespaced_role_binding",
            ("r", "n"),
            {"body": {}},
            f"DELETE {RBAC}/namespaces/n/rolebindings/r {JSON}",
        ),
        (
            rest.AdmissionregistrationV1,
            "read_mutating_webhook_configuration",
            ("w",),
            {},
            f"GET {WEBHOOKS}/w",
        ),
        (
            rest.AdmissionregistrationV1,
            "patch_mutating_webhook_configuration",
            ("w", PATCH),
            AS_JSON_PATCH,
            f"PATCH {WEBHOOKS}/w {JSON_PATCH}",
        ),
    ],
)
def test_the_controllers_calls_become_the_api_servers_methods_paths_and_content_types(
    server: Server,
    tmp_path: Path,
    group: type[Any],
    call: str,
    args: tuple[Any, ...],
    options: dict[str, Any],
    expected: str,
) -> None:
    api = rest.kubeconfig_client(_kubeconfig(tmp_path / "kc", server, {"token": "t"}))
    response = getattr(group(api), call)(*args, _request_timeout=5, **options)
    assert response.status == 200
    method, path, headers, body = server.seen.requests[-1]
    assert f"{method} {path} {headers.get('Content-Type', '')}".strip() == expected
    sent = options.get("body", args[-1] if method in ("POST", "PUT", "PATCH") else None)
    assert (json.loads(body) if body else None) == sent


@pytest.mark.parametrize(
    "group",
    [rest.CoreV1, rest.CoordinationV1, rest.RbacAuthorizationV1, rest.AdmissionregistrationV1],
)
def test_every_call_has_the_official_clients_name_and_positional_parameters(
    group: type[Any],
) -> None:
    """The shell modules call either client's methods the same way (the command line's is the
    official one); a misnamed or reordered parameter here would send the wrong request."""
    official = getattr(kubernetes.client, group.__name__ + "Api")
    calls = [name for name in vars(group) if not name.startswith("_")]
    assert calls
    for name in calls:
        ours = list(inspect.signature(getattr(group, name)).parameters)
        theirs = list(inspect.signature(getattr(official, name)).parameters)
        positional = [p for p in ours if p not in ("options", "body")] + (
            ["body"] if "body" in ours and "body" in theirs[:4] else []
        )
        assert theirs[: len(positional)] == positional, name


def test_an_error_answer_of_a_write_is_an_api_error(server: Server, tmp_path: Path) -> None:
    api = rest.kubeconfig_client(_kubeconfig(tmp_path / "kc", server, {"token": "t"}))
    with pytest.raises(rest.ApiError) as caught:
        rest.CoordinationV1(api).create_namespaced_lease("missing", LEASE)
    assert caught.value.status == 404


@pytest.mark.parametrize(
    ("user", "refusal"),
    [
        ({"exec": {"command": "aws"}}, "'exec' is not supported"),
        ({"auth-provider": {"name": "gcp"}}, "'auth-provider' is not supported"),
    ],
)
def test_a_kubeconfig_user_the_client_cannot_authenticate_is_refused_at_start(
    server: Server, tmp_path: Path, user: dict[str, Any], refusal: str
) -> None:
    with pytest.raises(SettingsError, match=refusal):
        rest.kubeconfig_client(_kubeconfig(tmp_path / "kc", server, user))


def test_a_kubeconfig_without_its_current_context_says_which_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "kc"
    path.write_text(yaml.safe_dump({"contexts": [], "current-context": "gone"}))
    with pytest.raises(SettingsError, match="no context named 'gone'"):
        rest.kubeconfig_client(str(path))


def test_in_cluster_credentials_come_from_the_service_account(
    server: Server, tmp_path: Path
) -> None:
    (tmp_path / "token").write_text("made-up-sa-token")
    (tmp_path / "ca.crt").write_bytes(server.ca_pem)
    port = server.url.rsplit(":", 1)[1]
    environ = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": port}
    core = rest.CoreV1(rest.in_cluster_client(environ, tmp_path))
    core.read_namespace("team-a")
    assert server.seen.requests[-1][2]["Authorization"] == "Bearer made-up-sa-token"
    with pytest.raises(SettingsError, match="not in a cluster"):
        rest.in_cluster_client({}, tmp_path)


def test_an_argument_the_client_does_not_speak_is_an_error_not_silently_dropped(
    server: Server, tmp_path: Path
) -> None:
    core = rest.CoreV1(rest.kubeconfig_client(_kubeconfig(tmp_path / "kc", server, {"token": "t"})))
    with pytest.raises(TypeError, match="pretty"):
        core.list_namespace(pretty="true")


def test_neither_the_webhook_pod_nor_the_controller_imports_the_kubernetes_package() -> None:
    """What the pod's master preloads (gunicorn.conf.py) and so every worker and the keeper,
    and what ``pullsecret-injector controller`` runs."""
    code = (
        "import sys, webhook.app, webhook.k8s.backend, webhook.k8s.viewkeeper, "
        "webhook.http.viewkeeper, webhook.http.serving, webhook.ops, webhook.commands, "
        "webhook.k8s.controller\n"
        "print(sorted({m.split('.')[0] for m in sys.modules if m.startswith('kubernetes')}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
