"""Shared pieces of the serving benchmarks: the cluster, the three servers, wrk, ``/proc``.

Everything runs on 127.0.0.1 and every process is started here and stopped by its PID:

* :class:`Cluster` — a real control plane (``tools.controlplane``) with the policy ConfigMap,
  the source pull secrets and a namespace the webhook acts on, set up as the e2e suite does;
* :class:`Ours` — the webhook exactly as the container runs it (``tests.e2e.support``);
* :class:`NoopFlask` — ``tests.bench.noop_app`` under the same ``gunicorn.conf.py`` and TLS;
* :class:`GoWebhook` — ``tests/bench/gowebhook``, built with ``go build`` into a temp dir;
* :func:`run_wrk` — Debian's ``wrk`` with ``wrk_post.lua``: keep-alive connections posting
  recorded AdmissionReviews, as fast as possible or paced to a fixed rate.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import math
import os
import platform
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from certs.files import write_atomic
from certs.pki import issue, new_ca, service_hosts
from tests.e2e.reliability import process_name
from tests.e2e.support import (
    INJECT_LABEL,
    POLICY_NAMESPACE,
    SOURCE_NAMESPACE,
    Api,
    WebhookServer,
    pull_secret,
    register_webhook,
    set_policy,
    unregister_webhook,
    wait_until,
    webhook_configuration,
)
from tools.controlplane import REPO, ControlPlane, free_port, resolve_bin_dir
from webhook.http.viewkeeper import KEEPER_NAME, SUPERVISOR_NAME

BENCH_DIR = Path(__file__).resolve().parent
WRK_SCRIPT = BENCH_DIR / "wrk_post.lua"
BENCH_NAMESPACE = "bench"
CORP_REGISTRY = "registry.example.com"
CORP_SECRET = "corp-pull"

# -- statistics ----------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of unsorted ``values``; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def spread(values: Sequence[float], fmt: str = "{:.0f}") -> str:
    """``median (min..max)`` of repeated measurements, for tables."""
    good = sorted(v for v in values if not math.isnan(v))
    if not good:
        return "n/a"
    if len(good) == 1:
        return fmt.format(good[0])
    return f"{fmt.format(median(good))} ({fmt.format(good[0])}..{fmt.format(good[-1])})"


def median(values: Sequence[float]) -> float:
    good = sorted(v for v in values if not math.isnan(v))
    if not good:
        return math.nan
    mid = len(good) // 2
    return good[mid] if len(good) % 2 else (good[mid - 1] + good[mid]) / 2


# -- the machine ---------------------------------------------------------------------------


def machine_summary() -> str:
    """One markdown paragraph: what these numbers were measured on, and under what load."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with contextlib.suppress(OSError, ValueError):
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    go = _first_line(["go", "version"])
    wrk = _first_line(["wrk", "-v"]).split(" Copyright")[0]
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return (
        f"{os.cpu_count()} CPUs ({cpu}), {mem_kib / 1024 / 1024:.1f} GiB RAM, "
        f"Linux {platform.release()}, Python {platform.python_version()}, {go}, {wrk}; "
        f"load average at start {load}"
    )


def _first_line(argv: list[str]) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return f"{argv[0]}: not found"
    return (result.stdout or result.stderr).strip().splitlines()[0]


# -- /proc: memory and CPU of a process tree -------------------------------------------------


def tree_pids(pid: int) -> list[int]:
    """``pid`` and all its descendants (gunicorn: the master and its workers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            raw = (entry / "stat").read_text()
            parent = int(raw[raw.rindex(")") + 2 :].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(children.get(current, []))
    return out


def process_role(pid: int, master: int) -> str:
    """What a process of the webhook pod is: the gunicorn master, a worker, the view keeper
    or the zygote that forks it (told apart by ``/proc/<pid>/comm``)."""
    if pid == master:
        return "master"
    name = process_name(pid)
    if not name:
        return "gone"
    return {KEEPER_NAME: "view keeper", SUPERVISOR_NAME: "keeper's zygote"}.get(name, "worker")


def threads_of(pid: int) -> int:
    """``Threads`` of one process (0 if it is gone)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0


def _proc_kib(path: str, field: str) -> int:
    """A ``<field>: <n> kB`` line of a /proc file, in KiB (0 if the process is gone)."""
    with contextlib.suppress(OSError):
        for line in Path(path).read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def rss_kib(pid: int) -> int:
    """``VmRSS`` of one process in KiB (0 if it is gone)."""
    return _proc_kib(f"/proc/{pid}/status", "VmRSS:")


def tree_rss_kib(pid: int) -> dict[int, int]:
    """``VmRSS`` of ``pid`` and each descendant."""
    return {p: rss_kib(p) for p in tree_pids(pid)}


def pss_kib(pid: int) -> int:
    """Proportional set size in KiB: shared pages divided among the processes sharing them.

    Summed over a process tree it counts every page once, as a container's memory cgroup
    does; summed RSS counts pages the workers share with the master once per process.
    """
    return _proc_kib(f"/proc/{pid}/smaps_rollup", "Pss:")


def tree_pss_kib(pid: int) -> dict[int, int]:
    """PSS of ``pid`` and each descendant."""
    return {p: pss_kib(p) for p in tree_pids(pid)}


_TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> dict[int, float]:
    """User + system CPU seconds consumed so far by ``pid`` and each live descendant."""
    out = {}
    for p in tree_pids(pid):
        with contextlib.suppress(OSError, ValueError, IndexError):
            raw = Path(f"/proc/{p}/stat").read_text()
            fields = raw[raw.rindex(")") + 2 :].split()
            out[p] = (int(fields[11]) + int(fields[12])) / _TICK
    return out


def dump_stacks(pid: int) -> str:
    """Every thread's Python stack in ``pid``'s tree (py-spy), for reports of a stuck server."""
    py_spy = Path(sys.executable).parent / "py-spy"
    out = []
    for p in tree_pids(pid):
        result = subprocess.run(
            [str(py_spy), "dump", "--pid", str(p)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        out.append(f"--- pid {p}\n{result.stdout}{result.stderr}")
    return "\n".join(out)


def socket_report(port: int) -> str:
    """``ss``: listener backlog and connections on ``port`` (which process holds which)."""
    out = []
    for argv in (
        ["ss", "-tlnpi", "sport", "=", f":{port}"],
        ["ss", "-tnpi", "sport", "=", f":{port}"],
    ):
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        out.append(result.stdout + result.stderr)
    return "\n".join(out)


# -- policy and cluster ----------------------------------------------------------------------


def filler_registry(i: int) -> str:
    """The registry pattern of filler rule ``i``: a literal host, or every tenth a glob."""
    return f"'{i}.dkr.ecr.*.amazonaws.com'" if i % 10 == 0 else f"registry-{i}.example.com"


def policy_text(rules: int, pool: int, extra: str = "") -> str:
    """``corp`` (the rule the benchmark pod hits) plus ``rules - 1`` filler rules sharing
    ``pool`` source secrets ``s0..``; ``extra`` is appended as a comment (forces a new
    resourceVersion without changing what is managed)."""
    lines = [
        "apiVersion: pullsecret-injector.io/v1",
        "kind: PullSecretPolicy",
        f"defaults: {{sourceNamespace: {SOURCE_NAMESPACE}}}",
        "rules:",
        f"  - {{name: corp, registries: [{CORP_REGISTRY}], secrets: [{CORP_SECRET}]}}",
    ]
    for i in range(1, rules):
        lines.append(
            f"  - {{name: r{i}, registries: [{filler_registry(i)}], secrets: [s{i % pool}]}}"
        )
    if extra:
        lines.append(f"# {extra}")
    return "\n".join(lines) + "\n"


def source_secrets(pool: int) -> list[dict[str, Any]]:
    """``corp-pull`` and ``s0..s{pool-1}`` in the source namespace (made-up credentials)."""
    out = [pull_secret(CORP_SECRET, SOURCE_NAMESPACE, {CORP_REGISTRY: "corp"})]
    for s in range(pool):
        out.append(
            pull_secret(f"s{s}", SOURCE_NAMESPACE, {f"registry-{s}.example.com": f"user{s}"})
        )
    return out


class RawApi:
    """Keep-alive HTTPS to the API server as admin, one connection per thread, JSON in/out.

    Cheaper per call than the generated client, so the load generator steals less CPU from
    the servers it measures.
    """

    def __init__(self, plane: ControlPlane) -> None:
        self.port = plane.ports.apiserver
        context = ssl.create_default_context(cafile=str(plane.pki_dir / "ca.crt"))
        context.load_cert_chain(plane.pki_dir / "admin.crt", plane.pki_dir / "admin.key")
        self.context = context
        self._local = threading.local()

    def _connection(self) -> http.client.HTTPSConnection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = http.client.HTTPSConnection(
                "127.0.0.1", self.port, timeout=30, context=self.context
            )
            self._local.connection = connection
        return connection

    def request(
        self, method: str, path: str, body: Mapping[str, Any] | bytes | None = None
    ) -> tuple[int, dict[str, Any]]:
        payload = body if isinstance(body, bytes | None) else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        for attempt in range(2):  # a keep-alive connection the server closed: reconnect once
            connection = self._connection()
            try:
                connection.request(method, path, body=payload, headers=headers)
                response = connection.getresponse()
                data = response.read()
                return response.status, (json.loads(data) if data else {})
            except (OSError, http.client.HTTPException):
                connection.close()
                self._local.connection = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def create(self, path: str, body: Mapping[str, Any]) -> None:
        status, document = self.request("POST", path, body)
        if status not in (201, 409):
            raise RuntimeError(f"POST {path}: {status} {document.get('message', document)}")


def bulk(calls: Sequence[Any], worker: Any, threads: int = 8, timeout: float = 900) -> None:
    """Run ``worker(item)`` for every item on ``threads`` threads; bounded by ``timeout``."""
    items = list(calls)
    lock = threading.Lock()
    errors: list[BaseException] = []
    deadline = time.monotonic() + timeout

    def run() -> None:
        while time.monotonic() < deadline and not errors:
            with lock:
                if not items:
                    return
                item = items.pop()
            try:
                worker(item)
            except BaseException as exc:  # reported below, the run stops
                errors.append(exc)

    pool = [threading.Thread(target=run, daemon=True) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(max(0.0, deadline - time.monotonic()) + 1)
    if errors:
        raise errors[0]
    if items:
        raise TimeoutError(f"bulk: {len(items)} items left after {timeout}s")


@dataclass
class Cluster:
    """A real control plane with the webhook's policy, sources and a namespace to act on."""

    workdir: Path
    plane: ControlPlane
    api: Api
    raw: RawApi

    @classmethod
    def start(
        cls, workdir: Path, *, rules: int, pool: int, controller_manager: bool = True
    ) -> Cluster:
        plane = ControlPlane.start(workdir / "cluster", resolve_bin_dir(), controller_manager)
        try:
            api = Api(plane)
            cluster = cls(workdir, plane, api, RawApi(plane))
            for name in (POLICY_NAMESPACE, SOURCE_NAMESPACE):
                api.ensure_namespace(name)
            api.ensure_namespace(BENCH_NAMESPACE, {INJECT_LABEL: "true"})
            bulk(source_secrets(pool), api.apply_secret)
            set_policy(api, policy_text(rules, pool))
            if controller_manager:
                plane.wait_for_service_account(BENCH_NAMESPACE)
        except BaseException:
            plane.stop()
            raise
        return cluster

    def stop(self) -> None:
        self.plane.stop()


# -- certificates ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Certificates:
    cert: Path
    key: Path
    ca_pem: bytes

    @classmethod
    def write(cls, directory: Path) -> Certificates:
        """One serving certificate for 127.0.0.1, shared by all servers under test."""
        now = datetime.now(UTC)
        ca = new_ca("bench webhook CA", now, 7)
        hosts = ["127.0.0.1", *service_hosts("pullsecret-injector", POLICY_NAMESPACE)]
        leaf = issue(ca, hosts[0], now=now, days=7, hosts=hosts)
        write_atomic(directory / "tls.crt", leaf.cert_pem, 0o644)
        write_atomic(directory / "tls.key", leaf.key_pem, 0o600)
        return cls(directory / "tls.crt", directory / "tls.key", ca.cert_pem)

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cadata=self.ca_pem.decode())
        context.check_hostname = False  # the leaf names 127.0.0.1 as an IP SAN; keep it simple
        return context


def post_review(
    url: str, body: bytes, certificates: Certificates, timeout: float = 10
) -> tuple[int, dict[str, Any]]:
    """POST one AdmissionReview to ``https://127.0.0.1:<port>/mutate``."""
    port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
    connection = http.client.HTTPSConnection(
        "127.0.0.1", port, timeout=timeout, context=certificates.client_context()
    )
    try:
        connection.request(
            "POST", "/mutate", body=body, headers={"Content-Type": "application/json"}
        )
        response = connection.getresponse()
        data = response.read()
        return response.status, (json.loads(data) if data else {})
    finally:
        connection.close()


def response_patch(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The JSONPatch of an AdmissionReview response (empty list if none)."""
    patch = (document.get("response") or {}).get("patch")
    return json.loads(base64.b64decode(patch)) if patch else []


# -- the servers under test ------------------------------------------------------------------


class Server:
    """A server under test: a name, an HTTPS ``/mutate`` URL and a PID to measure and stop."""

    name = ""
    port = 0

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/mutate"

    @property
    def pid(self) -> int:
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


def gunicorn_env(
    certificates: Certificates, port: int, health_port: int, workers: int, threads: int
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PSI_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(
        {
            "PSI_BIND_ADDRESS": "127.0.0.1",
            "PSI_PORT": str(port),
            "PSI_HEALTH_PORT": str(health_port),
            "PSI_TLS_CERT_FILE": str(certificates.cert),
            "PSI_TLS_KEY_FILE": str(certificates.key),
            "PSI_WORKERS": str(workers),
            "PSI_THREADS": str(threads),
        }
    )
    return env


@dataclass
class Ours(Server):
    """The webhook, started by ``tests.e2e.support.WebhookServer`` (the container's command)."""

    cluster: Cluster
    workdir: Path
    certificates: Certificates
    workers: int = 2
    threads: int = 4
    extra_env: dict[str, str] = field(default_factory=dict)
    server: WebhookServer = field(init=False)

    def __post_init__(self) -> None:
        self.name = f"ours {self.workers}x{self.threads}"
        self.workdir.mkdir(parents=True, exist_ok=True)
        tls = self.workdir / "tls"
        tls.mkdir(exist_ok=True)
        for path in (self.certificates.cert, self.certificates.key):
            shutil.copy2(path, tls / path.name)
        self.server = WebhookServer(
            self.cluster.plane,
            self.workdir,
            extra_env={
                "PSI_WORKERS": str(self.workers),
                "PSI_THREADS": str(self.threads),
                **self.extra_env,
            },
        )
        self.server.ca_pem = self.certificates.ca_pem

    @property
    def pid(self) -> int:
        assert self.server.process is not None
        return self.server.process.pid

    def start(self) -> None:
        self.server.port = self.server.health_port = 0
        self.server.start(timeout=120)
        self.port = self.server.port

    def stop(self) -> None:
        self.server.stop()


@dataclass
class NoopFlask(Server):
    """``tests.bench.noop_app:app`` under ``gunicorn --config gunicorn.conf.py``."""

    workdir: Path
    certificates: Certificates
    patch_file: Path
    workers: int = 2
    threads: int = 4
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.name = f"no-op Flask {self.workers}x{self.threads}"
        self.workdir.mkdir(parents=True, exist_ok=True)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        self.port = free_port()
        env = gunicorn_env(self.certificates, self.port, free_port(), self.workers, self.threads)
        env["BENCH_NOOP_PATCH_FILE"] = str(self.patch_file)
        gunicorn = str(Path(sys.executable).parent / "gunicorn")
        config = str(REPO / "gunicorn.conf.py")
        self.process = _spawn(
            [gunicorn, "--config", config, "tests.bench.noop_app:app"],
            env,
            self.workdir / "noop.log",
        )
        _wait_serving(self, self.certificates)

    def stop(self) -> None:
        _stop(self.process)


@dataclass
class GoWebhook(Server):
    """``tests/bench/gowebhook``: Go net/http over TLS returning a fixed patch."""

    workdir: Path
    certificates: Certificates
    patch_file: Path | None
    record_file: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.name = "Go net/http"
        self.workdir.mkdir(parents=True, exist_ok=True)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        binary = build_go_webhook(self.workdir)
        self.port = free_port()
        argv = [
            str(binary),
            f"-listen=127.0.0.1:{self.port}",
            f"-cert={self.certificates.cert}",
            f"-key={self.certificates.key}",
        ]
        if self.patch_file:
            argv.append(f"-patch={self.patch_file}")
        if self.record_file:
            argv.append(f"-record={self.record_file}")
        self.process = _spawn(argv, dict(os.environ), self.workdir / "gowebhook.log")
        _wait_serving(self, self.certificates)

    def stop(self) -> None:
        _stop(self.process)


def build_go_webhook(directory: Path) -> Path:
    """``go build`` the baseline into ``directory`` (once per directory)."""
    binary = directory / "gowebhook"
    if not binary.exists():
        env = {**os.environ, "GOTOOLCHAIN": "local", "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"}
        subprocess.run(
            ["go", "build", "-trimpath", "-o", str(binary), "."],
            cwd=BENCH_DIR / "gowebhook",
            env=env,
            check=True,
            timeout=600,
        )
    return binary


def _spawn(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen(
            argv, env=env, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )


def _wait_serving(server: Server, certificates: Certificates, timeout: float = 60) -> None:
    """Until ``/mutate`` answers a minimal review with 200 (or the process dies)."""
    probe = json.dumps(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {"uid": "probe", "kind": {"kind": "Pod"}, "operation": "CREATE"},
        }
    ).encode()
    process = getattr(server, "process", None)

    def serving() -> bool:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{server.name} exited with {process.returncode}")
        try:
            return post_review(server.url, probe, certificates, timeout=2)[0] == 200
        except OSError:
            return False

    wait_until(serving, f"{server.name} serving", timeout=timeout, interval=0.2)


def _stop(process: subprocess.Popen[bytes] | None, timeout: float = 25) -> None:
    """SIGTERM our child by PID, wait, SIGKILL if it lingers."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    server.start()
    try:
        yield server
    finally:
        server.stop()


# -- recording a real AdmissionReview --------------------------------------------------------


def bench_pod(name: str = "bench") -> dict[str, Any]:
    """A Deployment-like pod: one image our policy covers, a public sidecar, an init container."""
    probe = {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 10}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": f"{name}-",
            "labels": {"app": "checkout", "pod-template-hash": "7d9c6b5f4"},
            "annotations": {"prometheus.io/scrape": "true"},
        },
        "spec": {
            "initContainers": [{"name": "migrate", "image": f"{CORP_REGISTRY}/shop/migrate:2.4"}],
            "containers": [
                {
                    "name": "app",
                    "image": f"{CORP_REGISTRY}/shop/checkout:2.4.1",
                    "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                    "env": [{"name": "MODE", "value": "production"}],
                    "resources": {
                        "requests": {"cpu": "100m", "memory": "128Mi"},
                        "limits": {"memory": "256Mi"},
                    },
                    "readinessProbe": probe,
                    "livenessProbe": probe,
                },
                {"name": "proxy", "image": "docker.io/envoyproxy/envoy:v1.31.0"},
            ],
        },
    }


def record_review(cluster: Cluster, workdir: Path, certificates: Certificates) -> bytes:
    """Have the API server send :func:`bench_pod` to a recording Go webhook; return the body.

    The pod is really created (not dry-run), so the body is exactly what a production
    admission looks like, ServiceAccount admission and defaults included.
    """
    record = workdir / "review.json"
    record.unlink(missing_ok=True)
    recorder = GoWebhook(workdir / "recorder", certificates, None, record_file=record)
    name = "bench-recorder"
    with running(recorder):
        register_webhook(
            cluster.api,
            webhook_configuration(
                name, certificates.ca_pem, url=recorder.url, failure_policy="Fail"
            ),
        )
        try:
            status, document = cluster.raw.request(
                "POST", f"/api/v1/namespaces/{BENCH_NAMESPACE}/pods", bench_pod("recorded")
            )
            if status != 201:
                raise RuntimeError(f"recording pod: {status} {document}")
            wait_until(record.exists, "the recorded AdmissionReview", timeout=30)
        finally:
            unregister_webhook(cluster.api, name)
    return record.read_bytes()


def review_variant(body: bytes, **changes: Any) -> bytes:
    """The recorded review with request-level fields replaced (``uid``, ``dryRun``, ...)."""
    document = json.loads(body)
    document["request"].update(changes)
    return json.dumps(document, separators=(",", ":")).encode()


def learn_patch(ours: Server, body: bytes, certificates: Certificates) -> list[dict[str, object]]:
    """What ours answers for the recorded pod (also creates the namespace copy, once)."""
    status, document = post_review(ours.url, body, certificates)
    patch = response_patch(document)
    if status != 200 or CORP_SECRET not in json.dumps(patch):
        raise RuntimeError(f"ours did not inject {CORP_SECRET}: {status} {document}")
    return patch


def check_same_answer(
    server: Server, body: bytes, certificates: Certificates, patch: list[dict[str, object]]
) -> None:
    try:
        status, document = post_review(server.url, body, certificates)
    except OSError as exc:
        report = f"{socket_report(server.port)}\n{dump_stacks(server.pid)}"
        raise RuntimeError(f"{server.name}: {exc!r}\n{report}") from exc
    uid = json.loads(body)["request"]["uid"]
    response = document.get("response") or {}
    if status != 200 or response.get("uid") != uid or response_patch(document) != patch:
        raise RuntimeError(f"{server.name} answers differently: {status} {document}")


# -- wrk ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    cpu_seconds: float = math.nan
    """CPU time (user + system) the server's process tree used during the run."""
    cpu_by_pid: tuple[tuple[int, float], ...] = ()
    """The same, per process (gunicorn: the master first, then the workers)."""

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu_seconds / self.requests * 1e6 if self.requests else math.nan

    @property
    def balanced(self) -> bool:
        """Every worker used at least 60% of an even share of the workers' CPU (2 workers:
        each ≥ 30%); always true for a single process."""
        workers = [cpu for _, cpu in self.cpu_by_pid[1:]]
        total = sum(workers)
        if len(workers) < 2 or total <= 0:
            return True
        return min(workers) / total >= 0.6 / len(workers)

    @property
    def worker_split(self) -> str:
        """Each worker's share of the workers' CPU, e.g. ``"52/48"`` (one worker idle: 100/0)."""
        workers = [cpu for _, cpu in self.cpu_by_pid[1:]]
        total = sum(workers)
        if len(workers) < 2 or total <= 0:
            return "-"
        return "/".join(f"{cpu / total * 100:.0f}" for cpu in workers)


def ensure_wrk() -> str:
    path = shutil.which("wrk")
    if not path:
        raise SystemExit(
            "wrk not found: apt-get install -y wrk (Debian's package; see BENCHMARKS.md)"
        )
    return path


def run_wrk(
    server: Server,
    bodies: Path,
    seconds: float,
    connections: int,
    rate: float = 0,
    threads: int = 1,
) -> WrkResult:
    """Drive ``server`` with wrk; ``rate`` 0 means as fast as the connections allow.

    ``bodies`` holds one request body per line; connections cycle through them.
    """
    argv = [
        ensure_wrk(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(WRK_SCRIPT),
        server.url,
    ]
    env = {
        **os.environ,
        "BENCH_BODIES": str(bodies),
        "BENCH_RATE": str(rate),
        "BENCH_THREADS": str(threads),
    }
    cpu_before = tree_cpu_seconds(server.pid)
    result = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    cpu_after = tree_cpu_seconds(server.pid)
    cpu = {p: cpu_after[p] - cpu_before.get(p, 0.0) for p in cpu_after}
    match = re.search(r"^BENCH_RESULT (\{.*\})$", result.stdout, re.MULTILINE)
    if result.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    data = json.loads(match.group(1))
    return WrkResult(
        requests=int(data["requests"]),
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        errors=int(data["errors"]),
        cpu_seconds=sum(cpu.values()),
        # The master first, then the workers; the view keeper's (and its zygote's) CPU counts
        # in the total (part of the pod) but not in the workers' split, where it reads ~0.
        cpu_by_pid=tuple(
            sorted(
                (
                    (p, c)
                    for p, c in cpu.items()
                    if process_role(p, server.pid) in ("master", "worker")
                ),
                key=lambda item: item[0] != server.pid,
            )
        ),
    )


def write_bodies(path: Path, bodies: Sequence[bytes]) -> Path:
    """One compact JSON body per line, for ``wrk_post.lua``."""
    lines = [json.dumps(json.loads(b), separators=(",", ":")) for b in bodies]
    path.write_text("\n".join(lines) + "\n")
    return path


def scratch_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"psi-bench-{prefix}-"))
