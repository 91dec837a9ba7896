"""E2E building blocks: the webhook as a real gunicorn process, its registration, policies.

The webhook runs exactly as the container runs it (``gunicorn --config gunicorn.conf.py``
with ``PSI_*`` environment), serving TLS on 127.0.0.1; the API server calls it through a
MutatingWebhookConfiguration with ``clientConfig.url`` and our generated ``caBundle``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from certs.files import write_atomic
from certs.pki import issue, new_ca, service_hosts
from tools.controlplane import REPO, ControlPlane, free_port
from tools.processes import Child, tail

POLICY_NAMESPACE = "pullsecret-system"
POLICY_CONFIGMAP = "pullsecret-injector-policy"
SOURCE_NAMESPACE = "pull-secrets"
INJECT_LABEL = "e2e.pullsecret-injector.io/inject"
WEBHOOK_NAME = "pullsecret-injector-e2e"


def wait_until(
    check: Callable[[], Any], what: str, timeout: float = 30.0, interval: float = 0.1
) -> Any:
    """Poll ``check`` until it returns something truthy; bounded in time."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as exc:
            last_error = exc
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what}; last error: {last_error!r}"
    )


def pull_secret(
    name: str, namespace: str, registries: Mapping[str, str], kind: str = "dockerconfigjson"
) -> dict[str, Any]:
    """A pull secret with made-up credentials: registry -> fake user name."""
    entries = {
        registry: {"auth": base64.b64encode(f"{user}:fake-password-{user}".encode()).decode()}
        for registry, user in registries.items()
    }
    payload: Mapping[str, Any]
    if kind == "dockerconfigjson":
        payload, secret_type, key = (
            {"auths": entries},
            "kubernetes.io/dockerconfigjson",
            ".dockerconfigjson",
        )
    else:
        payload, secret_type, key = entries, "kubernetes.io/dockercfg", ".dockercfg"
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": secret_type,
        "metadata": {"name": name, "namespace": namespace},
        "data": {key: base64.b64encode(json.dumps(payload).encode()).decode()},
    }


def pod(
    name: str, *images: str, pull_secrets: list[str] | None = None, generate: bool = False
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [{"name": f"c{i}", "image": image} for i, image in enumerate(images)],
    }
    if pull_secrets is not None:
        spec["imagePullSecrets"] = [{"name": n} for n in pull_secrets]
    metadata = {"generateName": f"{name}-"} if generate else {"name": name}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def secret_names(
    obj: Mapping[str, Any], path: tuple[str, ...] = ("spec", "imagePullSecrets")
) -> list[str]:
    value: Any = obj
    for key in path:
        value = (value or {}).get(key)
    return [entry["name"] for entry in value or []]


@dataclass
class Api:
    """Thin raw-JSON access to the API server (dicts in, dicts out), as admin by default."""

    plane: ControlPlane
    kubeconfig: Path | None = None
    api: Any = field(init=False)
    core: Any = field(init=False)

    def __post_init__(self) -> None:
        self.api = self.plane.api_client(self.kubeconfig)
        self.core = client.CoreV1Api(self.api)

    def create_pod(
        self, namespace: str, body: Mapping[str, Any], dry_run: bool = False
    ) -> tuple[dict[str, Any], list[str]]:
        """Create a pod; return (stored object, admission warnings the API server relayed)."""
        kwargs: dict[str, Any] = {"_preload_content": False}
        if dry_run:
            kwargs["dry_run"] = "All"
        response = self.core.create_namespaced_pod(namespace, body, **kwargs)
        return json.loads(response.data), _parse_warnings(response.headers)

    def read(self, call: Callable[..., Any], *args: Any) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(call(*args, _preload_content=False).data)
        return data

    def secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.read(self.core.read_namespaced_secret, name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def apply_secret(self, body: Mapping[str, Any]) -> None:
        namespace = body["metadata"]["namespace"]
        try:
            self.core.create_namespaced_secret(namespace, body, _preload_content=False)
        except ApiException as exc:
            if exc.status != 409:
                raise
            self.core.replace_namespaced_secret(
                body["metadata"]["name"], namespace, body, _preload_content=False
            )

    def ensure_namespace(self, name: str, labels: Mapping[str, str] | None = None) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": dict(labels or {})},
        }
        try:
            self.core.create_namespace(body, _preload_content=False)
        except ApiException as exc:
            if exc.status != 409:
                raise


def _parse_warnings(headers: Any) -> list[str]:
    """RFC 7234 Warning headers as the API server sends them: `299 - "text"`."""
    if headers is None:
        return []
    values = (
        headers.getlist("Warning") if hasattr(headers, "getlist") else [headers.get("Warning", "")]
    )
    out = []
    for value in values:
        for part in _split_warning_header(value or ""):
            text = part.split(" - ", 1)[-1].strip()
            out.append(text.strip('"').replace('\\"', '"'))
    return out


def _split_warning_header(value: str) -> Iterator[str]:
    current, quoted, escaped = "", False, False
    for char in value:
        if escaped:
            current += char
            escaped = False
            continue
        if char == "\\":
            current += char
            escaped = True
            continue
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            if current.strip():
                yield current.strip()
            current = ""
            continue
        current += char
    if current.strip():
        yield current.strip()


class LocalProcess:
    """Start, stop and log helpers shared by the processes the e2e tests run: each is a
    :class:`tools.processes.Child`, signalled only after its identity is checked."""

    child: Child | None
    """The running process (None before :meth:`start`, and after it could not start)."""

    @property
    def log_path(self) -> Path:
        raise NotImplementedError

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        """The process's ``Popen`` (its PID: tests look at a gunicorn master's workers)."""
        return self.child.process if self.child is not None else None

    def _spawn(self, name: str, argv: list[str], env: Mapping[str, str]) -> None:
        # Console scripts run the interpreter: that is the executable the record checks.
        self.child = Child.spawn(
            name, argv, log=self.log_path, cwd=REPO, env=env, exe=sys.executable
        )

    def exited(self) -> bool:
        return self.child is not None and self.child.exit_code() is not None

    def stop(self, timeout: float = 25.0) -> None:
        if self.child is not None:
            self.child.stop(timeout)

    def kill(self) -> None:
        if self.child is not None:
            self.child.kill()

    def log_tail(self, lines: int = 60) -> str:
        return tail(self.log_path, lines)

    def log_records(self) -> list[dict[str, Any]]:
        records = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict):
                    records.append(record)
        return records


def _answers_200(url: str) -> bool:
    """A readiness probe, as the kubelet's httpGet: 200 is ready, anything else is not yet."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def scrape(url: str, name: str, labels: Mapping[str, str] | None = None) -> float | None:
    """Sum of the samples called ``name`` whose labels include ``labels`` (None: none)."""
    from prometheus_client.parser import text_string_to_metric_families  # noqa: PLC0415

    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    values = [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in (labels or {}).items())
    ]
    return float(sum(values)) if values else None


@dataclass
class WebhookServer(LocalProcess):
    """The webhook as a gunicorn process (same command and config as the container)."""

    plane: ControlPlane
    workdir: Path
    port: int = 0
    health_port: int = 0
    child: Child | None = field(default=None, init=False)
    ca_pem: bytes = b""
    extra_env: dict[str, str] = field(default_factory=dict)
    kubeconfig: Path | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / "webhook.log"

    def write_certificates(self, hosts: list[str]) -> None:
        now = datetime.now(UTC)
        ca = new_ca("e2e webhook CA", now, 7)
        leaf = issue(ca, hosts[0], now=now, days=7, hosts=hosts)
        self.ca_pem = ca.cert_pem
        write_atomic(self.workdir / "tls" / "tls.crt", leaf.cert_pem, 0o644)
        write_atomic(self.workdir / "tls" / "tls.key", leaf.key_pem, 0o600)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PSI_")}
        env.update(
            {
                "PSI_BIND_ADDRESS": "127.0.0.1",
                "PSI_PORT": str(self.port),
                "PSI_HEALTH_PORT": str(self.health_port),
                "PSI_TLS_CERT_FILE": str(self.workdir / "tls" / "tls.crt"),
                "PSI_TLS_KEY_FILE": str(self.workdir / "tls" / "tls.key"),
                "PSI_POLICY_NAMESPACE": POLICY_NAMESPACE,
                "PSI_POLICY_CONFIGMAP": POLICY_CONFIGMAP,
                "PSI_KUBECONFIG": str(self.kubeconfig or self.plane.admin_kubeconfig),
                "PSI_WATCH_TIMEOUT_SECONDS": "60",
                "PSI_WORKERS": "2",
                "PSI_THREADS": "4",
                "PROMETHEUS_MULTIPROC_DIR": "",
            }
        )
        env.pop("PROMETHEUS_MULTIPROC_DIR")
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 60.0) -> None:
        self.port = self.port or free_port()
        self.health_port = self.health_port or free_port()
        if not (self.workdir / "tls" / "tls.crt").exists():
            self.write_certificates(
                ["127.0.0.1", *service_hosts("pullsecret-injector", POLICY_NAMESPACE)]
            )
        gunicorn = str(Path(sys.executable).parent / "gunicorn")
        self._spawn("webhook", [gunicorn, "--config", str(REPO / "gunicorn.conf.py")], self.env())
        try:
            wait_until(self.ready, "webhook /readyz", timeout=timeout)
        except BaseException:
            self.stop()  # never leave a half-started server behind
            raise

    def ready(self) -> bool:
        if self.child is not None and self.exited():
            raise AssertionError(
                f"webhook exited with {self.child.exit_code()}:\n{self.log_tail()}"
            )
        return _answers_200(f"http://127.0.0.1:{self.health_port}/readyz")

    def metrics(self) -> str:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.health_port}/metrics", timeout=5
        ) as response:
            return str(response.read().decode())

    def metric_value(self, name: str, labels: Mapping[str, str] | None = None) -> float | None:
        return scrape(f"http://127.0.0.1:{self.health_port}/metrics", name, labels)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/mutate"


def webhook_configuration(
    name: str,
    ca_pem: bytes,
    *,
    url: str | None = None,
    service: Mapping[str, Any] | None = None,
    failure_policy: str = "Ignore",
    namespace_label: str = INJECT_LABEL,
    timeout_seconds: int = 10,
) -> dict[str, Any]:
    client_config: dict[str, Any] = {"caBundle": base64.b64encode(ca_pem).decode()}
    if url:
        client_config["url"] = url
    if service:
        client_config["service"] = dict(service)
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": "pullsecrets.pullsecret-injector.io",
                "admissionReviewVersions": ["v1"],
                "sideEffects": "NoneOnDryRun",
                "failurePolicy": failure_policy,
                "timeoutSeconds": timeout_seconds,
                "reinvocationPolicy": "IfNeeded",
                "clientConfig": client_config,
                "namespaceSelector": {"matchLabels": {namespace_label: "true"}},
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods"],
                    },
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["serviceaccounts"],
                    },
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["UPDATE"],
                        "resources": ["pods/ephemeralcontainers"],
                    },
                ],
            }
        ],
    }


def register_webhook(api: Api, body: Mapping[str, Any]) -> None:
    admission = client.AdmissionregistrationV1Api(api.api)
    name = body["metadata"]["name"]
    with contextlib.suppress(ApiException):
        admission.delete_mutating_webhook_configuration(name)
    admission.create_mutating_webhook_configuration(body, _preload_content=False)


def unregister_webhook(api: Api, name: str) -> None:
    with contextlib.suppress(ApiException):
        client.AdmissionregistrationV1Api(api.api).delete_mutating_webhook_configuration(name)


def set_policy(
    api: Api,
    text: str,
    server: WebhookServer | None = None,
    timeout: float = 10.0,
    configmap: str = POLICY_CONFIGMAP,
) -> str:
    """Write the policy ConfigMap; with ``server``, wait until every worker applied it."""
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": configmap, "namespace": POLICY_NAMESPACE},
        "data": {"policy.yaml": text},
    }
    try:
        response = api.core.replace_namespaced_config_map(
            configmap, POLICY_NAMESPACE, body, _preload_content=False
        )
    except ApiException as exc:
        if exc.status != 404:
            raise
        response = api.core.create_namespaced_config_map(
            POLICY_NAMESPACE, body, _preload_content=False
        )
    version = str(json.loads(response.data)["metadata"]["resourceVersion"])
    if server is not None:
        wait_until(
            lambda: (
                (server.metric_value("pullsecret_injector_policy_generation") or 0) >= int(version)
            ),
            f"policy {version} in force in every worker",
            timeout=timeout,
        )
    return version


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


POLICY_HEADER = f"""apiVersion: pullsecret-injector.io/v1
kind: PullSecretPolicy
defaults:
  sourceNamespace: {SOURCE_NAMESPACE}
"""


@dataclass
class ControllerProcess(LocalProcess):
    """``pullsecret-injector controller`` as a real process (the chart's second Deployment)."""

    plane: ControlPlane
    workdir: Path
    identity: str
    extra_env: dict[str, str] = field(default_factory=dict)
    metrics_port: int = 0
    child: Child | None = field(default=None, init=False)
    kubeconfig: Path | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / f"controller-{self.identity}.log"

    @contextlib.contextmanager
    def running(self) -> Iterator[ControllerProcess]:
        """Started for the ``with`` block, stopped after it, also when the block fails."""
        self.start()
        try:
            yield self
        finally:
            self.stop()

    def start(self, wait_ready: bool = True) -> None:
        self.metrics_port = self.metrics_port or free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PSI_")}
        env.update(
            {
                "PSI_BIND_ADDRESS": "127.0.0.1",
                "PSI_METRICS_PORT": str(self.metrics_port),
                "PSI_POLICY_NAMESPACE": POLICY_NAMESPACE,
                "PSI_POLICY_CONFIGMAP": POLICY_CONFIGMAP,
                "PSI_KUBECONFIG": str(self.kubeconfig or self.plane.admin_kubeconfig),
                "PSI_POD_NAME": self.identity,
                "PSI_LEASE_DURATION_SECONDS": "6",
                "PSI_RESYNC_SECONDS": "30",
                "PSI_WATCH_TIMEOUT_SECONDS": "60",
            }
        )
        env.update(self.extra_env)
        command = str(Path(sys.executable).parent / "pullsecret-injector")
        self._spawn(f"controller-{self.identity}", [command, "controller"], env)
        if wait_ready:
            try:
                wait_until(self.ready, f"controller {self.identity} ready", timeout=60)
            except BaseException:
                self.stop()
                raise

    def ready(self) -> bool:
        if self.child is not None and self.exited():
            raise AssertionError(
                f"controller exited with {self.child.exit_code()}:\n{self.log_tail()}"
            )
        return _answers_200(f"http://127.0.0.1:{self.metrics_port}/readyz")

    def metric_value(self, name: str, labels: Mapping[str, str] | None = None) -> float:
        return scrape(f"http://127.0.0.1:{self.metrics_port}/metrics", name, labels) or 0.0
