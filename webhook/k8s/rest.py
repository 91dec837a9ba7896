"""The product's own Kubernetes client: a few JSON calls over ``urllib3``, no ``kubernetes``.

Why not the official client: importing ``kubernetes`` costs ~56 MiB of resident memory (1,336
modules, most of it the code objects of 768 generated model modules; BENCHMARKS.md §4) and
about half a second of CPU at every start, while the webhook pod and the controller make a
few dozen kinds of request and already read every answer as raw JSON. This module speaks
exactly those requests, under the method names and keyword arguments of the official client's
``CoreV1Api``, ``CoordinationV1Api``, ``RbacAuthorizationV1Api`` and
``AdmissionregistrationV1Api``. The controller starts beside the API server and the webhook
on the same nodes, so its start-up CPU is admission latency there (BENCHMARKS.md §7). The
command line keeps the official client: a user's kubeconfig may authenticate by an exec
plugin. What this one does not do is refused loudly: a kubeconfig user that authenticates by
an exec plugin or an auth provider is a ``SettingsError`` at start-up, not an anonymous client.

Credentials are read where the official client reads them: the pod's ServiceAccount (token
file re-read every minute, because the kubelet rotates the projected token; CA file; the
``KUBERNETES_SERVICE_*`` address), or the current context of a kubeconfig (the harness's:
client certificate or bearer token, CA data or file).
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import orjson
import urllib3
import yaml

from webhook.settings import SettingsError

__all__ = [
    "POOL_SIZE",
    "AdmissionregistrationV1",
    "ApiError",
    "CoordinationV1",
    "CoreV1",
    "RbacAuthorizationV1",
    "RestClient",
    "in_cluster_client",
    "kubeconfig_client",
]

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_REREAD_SECONDS = 60.0
POOL_SIZE = 16
"""Idle connections a client keeps by default (the webhook pod's; the controller asks for more)."""


class ApiError(Exception):
    """The API server answered with an error status. The attributes are those of the official
    client's ``ApiException``, so one ``except ApiError`` serves both clients (the controller's
    translates, ``webhook.k8s.client``)."""

    status: int
    reason: str
    body: str
    headers: Mapping[str, str]

    def __init__(
        self, status: int, reason: str, body: str = "", headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(f"({status}) {reason}")
        self.status = status
        self.reason = reason
        self.body = body
        self.headers = headers or {}


class _Token:
    """A bearer token, from a string or from a file re-read when it may have been rotated."""

    def __init__(self, value: str = "", path: Path | None = None) -> None:
        self._value = value
        self._path = path
        self._read_at = float("-inf")
        self._lock = threading.Lock()

    def header(self) -> str:
        if self._path is not None:
            with self._lock:
                if time.monotonic() - self._read_at >= TOKEN_REREAD_SECONDS:
                    self._value = self._path.read_text(encoding="utf-8").strip()
                    self._read_at = time.monotonic()
        return f"Bearer {self._value}" if self._value else ""


class RestClient:
    """One API server, one TLS context, one connection pool; JSON in, raw responses out."""

    def __init__(
        self,
        server: str,
        context: ssl.SSLContext,
        token: _Token | None = None,
        pool_size: int = POOL_SIZE,
    ) -> None:
        self.server = server.rstrip("/")
        self._token = token
        self.before_request: Callable[[], None] | None = None
        """Called before every request (``webhook.k8s.ratelimit``: the controller's bound)."""
        # Connections beyond the pool's size (each watch holds one) are opened and closed as
        # needed rather than waited for (block=False, as the official client's pool does).
        self._pool = urllib3.PoolManager(
            num_pools=4,
            maxsize=pool_size,
            block=False,
            ssl_context=context,
            retries=urllib3.Retry(total=2, connect=2, read=0, status=0, other=0, redirect=0),
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        timeout: float | tuple[float, float] | None = None,
        stream: bool = False,
        content_type: str = "application/json",
    ) -> urllib3.BaseHTTPResponse:
        """Send one request. A non-2xx answer raises ``ApiError`` (its body read and kept);
        with ``stream`` the caller reads the body (a watch) and must release the response."""
        if self.before_request is not None:
            self.before_request()
        url = self.server + path
        if query:
            url += "?" + urlencode({key: _query_value(value) for key, value in query.items()})
        headers = {"Accept": "application/json", "User-Agent": "pullsecret-injector"}
        if self._token is not None and (authorization := self._token.header()):
            headers["Authorization"] = authorization
        data = None
        if body is not None:
            data = orjson.dumps(body)
            headers["Content-Type"] = content_type
        response = self._pool.request(
            method,
            url,
            body=data,
            headers=headers,
            timeout=_timeout(timeout),
            preload_content=not stream,
            redirect=False,
        )
        if not 200 <= response.status < 300:
            text = response.data.decode("utf-8", "replace")
            response.release_conn()
            raise ApiError(response.status, response.reason or "", text, dict(response.headers))
        return response

    def close(self) -> None:
        self._pool.clear()


class _ApiGroup:
    """Calls named and keyworded as in the official client's ``*Api`` classes (always as if
    ``_preload_content=False``: the answer is the raw response, read with ``.data``)."""

    def __init__(self, client: RestClient) -> None:
        self.client = client

    def _get(self, path: str, options: dict[str, Any]) -> urllib3.BaseHTTPResponse:
        timeout, query = _split(options)
        return self.client.request(
            "GET", path, query=query, timeout=timeout, stream=bool(query.get("watch"))
        )

    def _send(
        self, method: str, path: str, body: Any, options: dict[str, Any]
    ) -> urllib3.BaseHTTPResponse:
        content_type = options.pop("_content_type", None)
        if content_type is None and method == "PATCH":
            # A list is a JSON patch (RFC 6902), a mapping a JSON merge patch (RFC 7386).
            content_type = _JSON_PATCH if isinstance(body, list) else _MERGE_PATCH
        timeout, query = _split(options)
        return self.client.request(
            method,
            path,
            query=query,
            body=body,
            timeout=timeout,
            content_type=content_type or "application/json",
        )


class CoreV1(_ApiGroup):
    """``CoreV1Api``'s calls the pod and the controller make."""

    def list_namespace(self, **options: Any) -> urllib3.BaseHTTPResponse:
        return self._get("/api/v1/namespaces", options)

    def read_namespace(self, name: str, **options: Any) -> urllib3.BaseHTTPResponse:
        return self._get(f"/api/v1/namespaces/{_segment(name)}", options)

    def list_namespaced_secret(self, namespace: str, **options: Any) -> urllib3.BaseHTTPResponse:
        return self._get(_namespaced("", "v1", namespace, "secrets"), options)

    def list_secret_for_all_namespaces(self, **options: Any) -> urllib3.BaseHTTPResponse:
        return self._get("/api/v1/secrets", options)

    def read_namespaced_secret(
        self, name: str, namespace: str, **options: Any
    ) -> urllib3.BaseHTTPResponse:
        return self._get(_namespaced("", "v1", namespace, "secrets", name), options)

    def create_namespaced_secret(
        self, namespace: str, body: Mapping[str, Any], **options: Any
    ) -> urllib3.BaseHTTPResponse:
        return self._send("POST", _namespaced("", "v1", namespace, "secrets"), body, options)

    def replace_namespaced_secret(
        self, name: str, namespace: str, body: Mapping[str, Any], **options: Any
    ) -> urllib3.BaseHTTPResponse:
        path = _namespaced("", "v1", namespace, "secrets", name)
        return self._send("PUT", path, body, options)

    def patch_namespaced_secret(
        self, name: str, namespace: str, body: Any, **options: Any
    ) -> urllib3.BaseHTTPResponse:
        path = _namespaced("", "v1", namespace, "secrets", name)
        return self._send("PATCH", path, body, options)

    def delete_namespaced_secret(
        self, name: str, namespace: str, body: Mapping[str, Any] | None = None, **options: Any
    ) -> urllib3.BaseHTTPResponse:
        path = _namespaced("", "v1", namespace, "secrets", name)
        return self._send("DELETE", path, body, options)

    def list_service_account_for_all_namespaces(self, **options: Any) -> urllib3.BaseHTTPResponse:
        return self._get("/api/v1/serviceaccounts", options)

    def patch_namespaced_service_account(
        self, name: str, namespace: str, body: Any, **options: Any
    ) -> urllib3.BaseHTTPResponse:
        path = _namespaced("", "v1", namespace, "serviceaccounts", name)
        return self._send("PATCH", path, body, options)

    def list_namespaced_config_map(
        self, namespace: str, **options: Any
    ) -> urllib3.BaseHTTPResponse:
        return self._get(_namespaced("", "v1", namespace, "configmaps"), options)

    def read_namespaced_config_map(
        self, name: str, namespace: str, **options: Any
    ) -> urllib3.BaseHTTPResponse:
        return self._get(_namespaced("", "v1", namespace, "configmaps", name), options)

    def create_namespaced_config_map(
        self, namespace: str, body: Mapping[str, Any], **options: Any
    ) -> urllib3.BaseHTTPResponse:
        return self._send("POST", _namespaced("", "v1", namespace, "configmaps"), body, options)

    def patch_namespaced_config_map(
        self, name: str, namespace: str, body: Any, **options: Any
    ) -> urllib3.BaseHTTPResponse:
        path = _namespaced("", "v1", namespace, "configmaps", name)
        return self._send("PATCH", path, body, options)

    def create_namespaced_event(
        self, namespace: str, body: Mapping[str, Any], **options: Any
    ) -> urllib3.BaseHTTPResponse:
        return self._send("POST", _namespaced("", "v1", namespace, "events"), body, options)


class CoordinationV1(_ApiGroup):
    """``CoordinationV1Api``'s calls of the controller's leader election."""

    def read_namespaced_lease(
        self, name: str, namespace: str, **options: Any
    ) -> urllib3.BaseHTTPResponse:
        return self._get(_namespaced(_COORDINATION, "v1", namespace, "leases", name), options)

    def create_namespaced_lease(
        self, namespace: str, body: Mapping[str, Any], **options: Any
    ) -> urllib3.BaseHTTPResponse:
        path = _namespaced(_COORDINATION, "v1", namespace, "leases")
        return self._send("POST", path, body, options)

    def replace_namespaced_lease(
        self, name: str, namespace: str, body: Mapping[str, Any], **options: Any
    ) -> urllib3.BaseHTTPResponse:
        path = _namespaced(_COORDINATION, "v1", namespace, "leases", name)
        return self._send("PUT", path, body, options)


class RbacAuthorizationV1(_ApiGroup):
    """``RbacAuthorizationV1Api``'s calls of the controller's image-puller grants."""

    def list_role_binding_for_all_namespaces(self, **options: Any) -> urllib3.BaseHTTPResponse:
        return self._get(f"/apis/{_RBAC}/v1/rolebindings", options)

    def create_namespaced_role_binding(
        self, namespace: str, body: Mapping[str, Any], **options: Any
    ) -> urllib3.BaseHTTPResponse:
        path = _namespaced(_RBAC, "v1", namespace, "rolebindings")
        return self._send("POST", path, body, options)

    def delete_namespaced_role_binding(
        self, name: str, namespace: str, body: Mapping[str, Any] | None = None, **options: Any
    ) -> urllib3.BaseHTTPResponse:
        path = _namespaced(_RBAC, "v1", namespace, "rolebindings", name)
        return self._send("DELETE", path, body, options)


class AdmissionregistrationV1(_ApiGroup):
    """``AdmissionregistrationV1Api``'s calls of the controller's certificate management."""

    def list_mutating_webhook_configuration(self, **options: Any) -> urllib3.BaseHTTPResponse:
        return self._get(f"/apis/{_ADMISSION}/v1/mutatingwebhookconfigurations", options)

    def read_mutating_webhook_configuration(
        self, name: str, **options: Any
    ) -> urllib3.BaseHTTPResponse:
        path = f"/apis/{_ADMISSION}/v1/mutatingwebhookconfigurations/{_segment(name)}"
        return self._get(path, options)

    def patch_mutating_webhook_configuration(
        self, name: str, body: Any, **options: Any
    ) -> urllib3.BaseHTTPResponse:
        path = f"/apis/{_ADMISSION}/v1/mutatingwebhookconfigurations/{_segment(name)}"
        return self._send("PATCH", path, body, options)


_COORDINATION = "coordination.k8s.io"
_RBAC = "rbac.authorization.k8s.io"
_ADMISSION = "admissionregistration.k8s.io"
_JSON_PATCH = "application/json-patch+json"
_MERGE_PATCH = "application/merge-patch+json"


def _namespaced(group: str, version: str, namespace: str, plural: str, name: str = "") -> str:
    """The path of a namespaced collection, or of one object in it."""
    root = f"/apis/{group}/{version}" if group else f"/api/{version}"
    path = f"{root}/namespaces/{_segment(namespace)}/{plural}"
    return f"{path}/{_segment(name)}" if name else path


_QUERY_NAMES = {
    "limit": "limit",
    "_continue": "continue",
    "resource_version": "resourceVersion",
    "watch": "watch",
    "allow_watch_bookmarks": "allowWatchBookmarks",
    "timeout_seconds": "timeoutSeconds",
    "field_selector": "fieldSelector",
    "label_selector": "labelSelector",
    "dry_run": "dryRun",
}


def _split(options: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """``_request_timeout`` and the query, from ``CoreV1Api``-style keyword arguments; an
    argument this client does not know is a programming error, raised at once."""
    options = dict(options)
    timeout = options.pop("_request_timeout", None)
    options.pop("_preload_content", None)
    unknown = set(options) - set(_QUERY_NAMES)
    if unknown:
        raise TypeError(f"unsupported argument(s): {', '.join(sorted(unknown))}")
    return timeout, {
        _QUERY_NAMES[key]: value for key, value in options.items() if value is not None
    }


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _segment(name: str) -> str:
    return quote(name, safe="")


def _timeout(timeout: float | tuple[float, float] | None) -> urllib3.Timeout:
    if timeout is None:
        return urllib3.Timeout(connect=10.0, read=60.0)
    if isinstance(timeout, tuple):
        return urllib3.Timeout(connect=timeout[0], read=timeout[1])
    return urllib3.Timeout(total=timeout)


# -- credentials ------------------------------------------------------------------------------


def in_cluster_client(
    environ: Mapping[str, str] = os.environ,
    directory: Path = SERVICE_ACCOUNT_DIR,
    *,
    pool_size: int = POOL_SIZE,
) -> RestClient:
    """The pod's ServiceAccount, as ``kubernetes.config.load_incluster_config`` finds it."""
    host = environ.get("KUBERNETES_SERVICE_HOST", "")
    port = environ.get("KUBERNETES_SERVICE_PORT", "")
    token_file, ca_file = directory / "token", directory / "ca.crt"
    if not host or not port:
        raise SettingsError(
            "not in a cluster: KUBERNETES_SERVICE_HOST/PORT are not set (set PSI_KUBECONFIG)"
        )
    if not token_file.is_file() or not ca_file.is_file():
        raise SettingsError(f"no ServiceAccount token or CA in {directory}")
    if ":" in host:
        host = f"[{host}]"
    context = ssl.create_default_context(cafile=str(ca_file))
    return RestClient(f"https://{host}:{port}", context, _Token(path=token_file), pool_size)


def kubeconfig_client(path: str, *, pool_size: int = POOL_SIZE) -> RestClient:
    """The current context of the kubeconfig at ``path``: a token or a client certificate."""
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise SettingsError(f"cannot read kubeconfig {path}: {exc}") from None
    if not isinstance(document, dict):
        raise SettingsError(f"kubeconfig {path} is not a mapping")
    base = Path(path).parent
    context = _named(document, "contexts", str(document.get("current-context") or ""), path)
    cluster = _named(document, "clusters", str(context.get("cluster") or ""), path)
    user = _named(document, "users", str(context.get("user") or ""), path)
    server = str(cluster.get("server") or "")
    if not server.startswith("https://"):
        raise SettingsError(f"kubeconfig {path}: the webhook talks to an https:// server only")
    tls = ssl.create_default_context()
    if cluster.get("insecure-skip-tls-verify"):
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
    elif cluster.get("certificate-authority-data"):
        tls.load_verify_locations(
            cadata=base64.b64decode(cluster["certificate-authority-data"]).decode("ascii")
        )
    elif cluster.get("certificate-authority"):
        tls.load_verify_locations(cafile=str(base / str(cluster["certificate-authority"])))
    for unsupported in ("exec", "auth-provider", "username"):
        if user.get(unsupported):
            raise SettingsError(
                f"kubeconfig {path}: user authentication by {unsupported!r} is not supported by "
                "the webhook's client; use a token, a token file or a client certificate"
            )
    _load_client_certificate(tls, user, base)
    token = None
    if user.get("token"):
        token = _Token(value=str(user["token"]))
    elif user.get("tokenFile"):
        token = _Token(path=base / str(user["tokenFile"]))
    return RestClient(server, tls, token, pool_size)


def _named(document: dict[str, Any], section: str, name: str, path: str) -> dict[str, Any]:
    key = section[:-1]
    for entry in document.get(section) or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            value = entry.get(key)
            return value if isinstance(value, dict) else {}
    raise SettingsError(f"kubeconfig {path}: no {key} named {name!r}")


def _load_client_certificate(tls: ssl.SSLContext, user: dict[str, Any], base: Path) -> None:
    if user.get("client-certificate-data") and user.get("client-key-data"):
        # ``load_cert_chain`` reads files only: a private file, removed once loaded.
        with tempfile.TemporaryDirectory(prefix="psi-client-") as directory:
            cert, key = Path(directory) / "tls.crt", Path(directory) / "tls.key"
            cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
            key.touch(mode=0o600)
            key.write_bytes(base64.b64decode(user["client-key-data"]))
            tls.load_cert_chain(str(cert), str(key))
    elif user.get("client-certificate") and user.get("client-key"):
        tls.load_cert_chain(
            str(base / str(user["client-certificate"])), str(base / str(user["client-key"]))
        )
