"""Helpers for the reliability suites (bad input, faults, leakage): processes, loops, probes.

Everything here acts only on processes the tests started, by PID read from ``/proc``; loops
are bounded in count and in time; all traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import signal
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException

from tests.e2e.support import (
    POLICY_HEADER,
    POLICY_NAMESPACE,
    Api,
    WebhookServer,
    pod,
    register_webhook,
    secret_names,
    set_policy,
    unique,
    unregister_webhook,
    wait_until,
    webhook_configuration,
)
from tools.controlplane import ControlPlane
from webhook.http.viewkeeper import KEEPER_NAME, SUPERVISOR_NAME

# -- processes ---------------------------------------------------------------------------------


def children(pid: int) -> list[int]:
    """Live child PIDs of ``pid`` that are gunicorn workers (not the view keeper's zygote)."""
    return [child for child in all_children(pid) if process_name(child) != SUPERVISOR_NAME]


def view_keeper(pid: int) -> int | None:
    """The view keeper the gunicorn master ``pid`` runs: the child of its zygote."""
    for zygote in all_children(pid):
        if process_name(zygote) == SUPERVISOR_NAME:
            return next((k for k in all_children(zygote) if process_name(k) == KEEPER_NAME), None)
    return None


def process_name(pid: int) -> str:
    """``/proc/<pid>/comm`` ("" once it is gone)."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def all_children(pid: int) -> list[int]:
    """Live child PIDs of ``pid``, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        if int(fields[1]) == pid and fields[0] not in ("Z", "X"):
            found.append(int(entry.name))
    return sorted(found)


def alive(pid: int) -> bool:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return raw[raw.rindex(")") + 2 :].split()[0] not in ("Z", "X")


def rss_kib(pid: int) -> int:
    """VmRSS of ``pid`` in KiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def kill_pid(pid: int, sig: signal.Signals = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def socket_owner(pids: list[int], server_port: int, client_port: int) -> int | None:
    """Which of ``pids`` holds the server side of the loopback connection from ``client_port``."""
    want_local = f"0100007F:{server_port:04X}"
    want_remote = f"0100007F:{client_port:04X}"
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == want_local and fields[2] == want_remote and fields[9] != "0":
            inode = fields[9]
    if inode is None:
        return None
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) == f"socket:[{inode}]":
                        return pid
    return None


def listening_ports(pid: int) -> set[int]:
    """TCP ports ``pid`` holds a listening socket of (IPv4, from /proc/net/tcp)."""
    listening = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A":  # TCP_LISTEN
            listening[fields[9]] = int(fields[1].split(":")[1], 16)
    ports = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                link = os.readlink(fd)
                if link.startswith("socket:[") and link[8:-1] in listening:
                    ports.add(listening[link[8:-1]])
    return ports


# -- talking to a webhook directly --------------------------------------------------------------


def tls_context(server: WebhookServer) -> ssl.SSLContext:
    return ssl.create_default_context(cadata=server.ca_pem.decode())


def post_mutate(server: WebhookServer, body: bytes, timeout: float = 10.0) -> tuple[int, Any]:
    """POST /mutate over TLS like the API server does; (status, parsed JSON or text)."""
    connection = http.client.HTTPSConnection(
        "127.0.0.1", server.port, context=tls_context(server), timeout=timeout
    )
    try:
        connection.request("POST", "/mutate", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        text = response.read().decode(errors="replace")
    finally:
        connection.close()
    try:
        return response.status, json.loads(text)
    except ValueError:
        return response.status, text


def review(
    namespace: str, obj: Mapping[str, Any], *, dry_run: bool = False, uid: str = ""
) -> bytes:
    """An AdmissionReview for creating ``obj`` (a Pod) in ``namespace``."""
    return json.dumps(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": uid or str(uuid.uuid4()),
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "operation": "CREATE",
                "namespace": namespace,
                "object": dict(obj),
                "dryRun": dry_run,
            },
        }
    ).encode()


def patched_secrets(answer: Mapping[str, Any]) -> list[str]:
    """Names the response's patch adds to imagePullSecrets (the patch applies to a pod)."""
    response = answer["response"]
    if "patch" not in response:
        return []
    names: list[str] = []
    for op in json.loads(base64.b64decode(response["patch"])):
        value = op["value"]
        names.extend(v["name"] for v in (value if isinstance(value, list) else [value]))
    return names


# -- a webhook of our own, registered by URL for one labelled set of namespaces ------------------


class ForkSafeWebhookServer(WebhookServer):
    """Probes /readyz only once gunicorn has forked every worker.

    The first /readyz makes the master load its certificate (OpenSSL, in the ops-server
    thread); a worker forked at that moment inherits a held OpenSSL lock and deadlocks in its
    first ``SSLContext()`` (RELIABILITY.md, bug 2). Probing from the first instant, as
    ``WebhookServer`` does, hits that window in a few percent of starts; these suites are
    about other faults, so they stay out of it.
    """

    def ready(self) -> bool:
        if self.process is not None and self.process.poll() is None:
            workers = int(self.env().get("PSI_WORKERS", "2"))
            if len(children(self.process.pid)) < workers:
                return False
        return super().ready()


def write_policy(api: Api, configmap: str, rules_yaml: str) -> str:
    """Create or replace policy ConfigMap ``configmap``; return its resourceVersion."""
    return set_policy(api, POLICY_HEADER + rules_yaml, configmap=configmap)


def wait_policy(server: WebhookServer, version: str, timeout: float = 15.0) -> None:
    wait_until(
        lambda: (server.metric_value("pullsecret_injector_policy_generation") or 0) >= int(version),
        f"policy {version} in force in every worker",
        timeout=timeout,
    )


@dataclass
class OwnWebhook:
    """A WebhookServer with its own policy ConfigMap, registration and namespace label."""

    plane: ControlPlane
    api: Api
    workdir: Path
    tag: str
    rules_yaml: str
    failure_policy: str = "Ignore"
    timeout_seconds: int = 2
    port: int = 0
    """The TLS port, when the test must know it before the webhook starts (0: any)."""
    extra_env: dict[str, str] = field(default_factory=dict)
    server: WebhookServer = field(init=False)

    @property
    def label(self) -> str:
        return f"reliability.pullsecret-injector.io/{self.tag}"

    @property
    def configmap(self) -> str:
        return f"policy-{self.tag}"

    @property
    def registration(self) -> str:
        return f"pullsecret-injector-{self.tag}"

    def start(self) -> OwnWebhook:
        version = write_policy(self.api, self.configmap, self.rules_yaml)
        metrics_dir = self.workdir / "metrics"
        metrics_dir.mkdir(parents=True, exist_ok=True)
        self.server = ForkSafeWebhookServer(self.plane, self.workdir, port=self.port)
        self.server.extra_env.update(
            {
                "PSI_POLICY_CONFIGMAP": self.configmap,
                # Inside the test's directory: a SIGKILLed master cannot clean up /tmp.
                "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
                **self.extra_env,
            }
        )
        self.server.start()
        wait_policy(self.server, version)
        register_webhook(
            self.api,
            webhook_configuration(
                self.registration,
                self.server.ca_pem,
                url=self.server.url,
                failure_policy=self.failure_policy,
                namespace_label=self.label,
                timeout_seconds=self.timeout_seconds,
            ),
        )
        return self

    def namespace(self, prefix: str) -> str:
        """A namespace only this webhook acts on (the session webhook's label is absent)."""
        name = unique(prefix)
        self.api.ensure_namespace(name, {self.label: "true"})
        return name

    def wait_called(self, namespace: str, timeout: float = 30.0) -> None:
        """The API server has picked up the registration and calls us."""

        def called() -> bool:
            stored, _ = self.api.create_pod(namespace, pod(unique("probe"), "nginx"), dry_run=True)
            del stored
            value = self.server.metric_value(
                "pullsecret_injector_admission_requests_total", {"kind": "Pod"}
            )
            return (value or 0) > 0

        wait_until(called, f"the API server to call {self.registration}", timeout, interval=0.5)

    def workers(self) -> list[int]:
        assert self.server.process is not None
        return children(self.server.process.pid)

    def kill_master(self, timeout: float = 10.0) -> list[int]:
        """SIGKILL the gunicorn master, then its workers: what a container runtime does when
        PID 1 dies. (Outside a PID namespace orphaned gthread workers would keep serving, and
        keep the port bound, for up to the graceful timeout.) Returns the worker PIDs."""
        assert self.server.process is not None
        workers = self.workers()
        keeper = view_keeper(self.server.process.pid)
        self.server.kill()
        for worker in workers:
            kill_pid(worker)
        wait_until(
            lambda: not any(alive(w) for w in workers), "the killed workers to be gone", timeout
        )
        if keeper is not None:  # it notices its master is gone and exits by itself
            wait_until(lambda: not alive(keeper), "the orphaned view keeper to exit", 30)
        return workers

    def stop(self) -> None:
        unregister_webhook(self.api, self.registration)
        if self.server.process is not None and self.server.process.poll() is None:
            workers = self.workers()
            self.server.stop()
            for worker in workers:  # never leave one behind (a killed master orphans them)
                if alive(worker):
                    kill_pid(worker)
        with contextlib.suppress(ApiException):
            self.api.core.delete_namespaced_config_map(self.configmap, POLICY_NAMESPACE)


# -- a bounded pod-creation loop -----------------------------------------------------------------


@dataclass
class PodLoop:
    """Create pods from ``threads`` threads until stopped, ``max_pods`` or ``max_seconds``."""

    plane: ControlPlane
    namespace: str
    image: str
    expect_secret: str
    threads: int = 2
    max_pods: int = 2000
    max_seconds: float = 120.0
    pause: float = 0.02
    """Between two creates of one thread: keeps the loop going for the whole scenario."""
    created: int = 0
    patched: int = 0
    failures: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> PodLoop:
        deadline = time.monotonic() + self.max_seconds
        for index in range(self.threads):
            thread = threading.Thread(
                target=self._run, args=(index, deadline), name=f"pod-loop-{index}", daemon=True
            )
            self._threads.append(thread)
            thread.start()
        return self

    def _run(self, index: int, deadline: float) -> None:
        api = Api(self.plane)
        try:
            sequence = 0
            while not self._stop.is_set() and time.monotonic() < deadline:
                with self._lock:
                    if self.created + len(self.failures) >= self.max_pods:
                        return
                sequence += 1
                name = f"loop-{index}-{sequence}-{uuid.uuid4().hex[:6]}"
                started = time.monotonic()
                try:
                    stored, _ = api.create_pod(self.namespace, pod(name, self.image))
                except Exception as exc:
                    with self._lock:
                        self.failures.append(f"{name}: {type(exc).__name__}: {str(exc)[:300]}")
                    self._stop.wait(self.pause)
                    continue
                with self._lock:
                    self.latencies.append(time.monotonic() - started)
                    self.created += 1
                    if self.expect_secret in secret_names(stored):
                        self.patched += 1
                self._stop.wait(self.pause)
        finally:
            api.api.close()

    def wait_for(self, count: int, timeout: float = 60.0) -> None:
        """Until at least ``count`` more pods have been attempted (bounded)."""
        target = self.created + len(self.failures) + count
        wait_until(
            lambda: self.created + len(self.failures) >= target or not self.running(),
            f"{count} more pod creations",
            timeout=timeout,
        )

    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def stop(self, timeout: float = 60.0) -> PodLoop:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        return self

    def summary(self) -> str:
        latencies = sorted(self.latencies) or [0.0]
        return (
            f"{self.created} pods created ({self.patched} patched, "
            f"{self.created - self.patched} admitted unpatched), {len(self.failures)} failed; "
            f"create latency p50 {latencies[len(latencies) // 2] * 1000:.0f} ms, "
            f"max {latencies[-1] * 1000:.0f} ms"
        )


@contextlib.contextmanager
def own_webhook(
    plane: ControlPlane, api: Api, workdir: Path, tag: str, rules_yaml: str, **kwargs: Any
) -> Iterator[OwnWebhook]:
    hook = OwnWebhook(plane, api, workdir, tag, rules_yaml, **kwargs)
    try:
        yield hook.start()
    finally:
        if hasattr(hook, "server"):
            hook.stop()


def measure(check: Callable[[], Any], what: str, timeout: float) -> tuple[Any, float]:
    """``wait_until`` that also returns how long it took (seconds)."""
    started = time.monotonic()
    result = wait_until(check, what, timeout=timeout, interval=0.05)
    return result, time.monotonic() - started
