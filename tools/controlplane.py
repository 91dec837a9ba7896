"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager.

This is envtest for this project. The e2e tests and the demo run against the same API server
code a cluster runs, with the default admission chain (``ServiceAccount`` included, so
``MutatingAdmissionWebhook`` sees what it would see in production), and kube-controller-manager
creates ``default`` ServiceAccounts and ``kube-root-ca.crt`` ConfigMaps by itself. There is no
kubelet, no node and no kube-proxy, so Pods are stored and never run.

* Binaries come from ``tools/build-control-plane.sh`` (see :func:`resolve_bin_dir`).
* Certificates come from the project's own :mod:`certs.pki`, never from a second generator.
* Every process gets its own log file under ``<workdir>/logs`` and is recorded by PID, executable
  and kernel start time (:mod:`tools.processes`). :meth:`ControlPlane.stop` signals exactly those
  processes (SIGTERM, wait, SIGKILL) after checking each one is still the process we started;
  nothing is ever looked up or killed by name.
* All traffic stays on 127.0.0.1; ports are picked free at start.

From Python (the e2e fixtures)::

    plane = ControlPlane.start(tmp_path / "cp", resolve_bin_dir())
    try:
        with plane.api_client() as api:
            kubernetes.client.CoreV1Api(api).list_namespace()
        kubeconfig = plane.kubeconfig_for_user("alice", groups=["team-a"])
    finally:
        plane.stop()

From a shell (the demo); ``up`` prints the admin kubeconfig path and returns while the
processes keep running in their own session::

    export KUBECONFIG=$(python -m tools.controlplane up --dir .work/cluster)
    python -m tools.controlplane down --dir .work/cluster
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Self

import yaml

from certs import pki
from certs.files import write_atomic
from tools.processes import (
    POLL_INTERVAL,
    STOP_TIMEOUT,
    ProcessError,
    ProcessRecord,
    is_running,
    spawn,
    stop,
    tail,
)

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

__all__ = [
    "CONTROLLERS",
    "WORKLOAD_CONTROLLERS",
    "ControlPlane",
    "ControlPlaneError",
    "Ports",
    "bin_dir_from_env",
    "free_port",
    "main",
    "resolve_bin_dir",
    "running",
]

REPO = Path(__file__).resolve().parent.parent
BUILD_SCRIPT = REPO / "tools" / "build-control-plane.sh"
BIN_DIR_ENV = "PULLSECRET_BIN_DIR"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl")

#: kube-controller-manager controllers we run: ServiceAccounts (and their legacy tokens, which
#: the chart's admission policy must stop its identities from minting), namespace deletion,
#: ownerReference cleanup, the ``kube-root-ca.crt`` ConfigMaps, and the type checking of
#: ValidatingAdmissionPolicies (``status.typeChecking``: a misspelt field in the chart's CEL
#: shows there). Nothing that needs nodes. The API server itself enforces
#: ValidatingAdmissionPolicy with its default admission plugins (GA, on by default since 1.30).
CONTROLLERS = (
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "namespace-controller",
    "garbage-collector-controller",
    "root-ca-certificate-publisher-controller",
    "validatingadmissionpolicy-status-controller",
)
#: Controllers that turn Deployments into ReplicaSets into Pods. Not in :data:`CONTROLLERS`:
#: without a node such pods would only pile up Pending. A test or the demo that has a node
#: (tools/node.py) runs them in a second kube-controller-manager for as long as it needs them
#: (:meth:`ControlPlane.start_workload_controllers`).
WORKLOAD_CONTROLLERS = ("deployment-controller", "replicaset-controller")
WORKLOAD_CONTROLLER_MANAGER = "kube-controller-manager-workloads"
SERVICE_CIDR = "10.0.0.0/24"  # bookkeeping only: nothing ever routes to it
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
CERT_DAYS = 30
CLUSTER_NAME = "pullsecret-e2e"

# Readiness budgets (seconds). Measured on the 2-core dev machine: etcd ~0.3 s, /readyz ~2.5 s,
# default ServiceAccount ~1 s later. The budgets leave room for a loaded CI machine (envtest's
# 20 s default is known to be tight there) while still failing a broken start in bounded time.
ETCD_TIMEOUT = 30.0
APISERVER_TIMEOUT = 90.0
DEFAULT_NAMESPACE_TIMEOUT = 30.0
SERVICE_ACCOUNT_TIMEOUT = 60.0


class ControlPlaneError(RuntimeError):
    """Starting, probing or stopping failed; the message carries the relevant log tails."""


@dataclass(frozen=True)
class Ports:
    """Loopback ports chosen at start."""

    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int


def _free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 (all held open until all are chosen)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for servers the tests start next to the control plane)."""
    return _free_ports(1)[0]


def resolve_bin_dir(explicit: Path | None = None) -> Path:
    """Where the control-plane binaries are: ``explicit``, ``$PULLSECRET_BIN_DIR``, or the
    directory ``tools/build-control-plane.sh`` prints (building them on first use).

    Raises :class:`ControlPlaneError` with the reason if they cannot be had.
    """
    if explicit is None and os.environ.get(BIN_DIR_ENV):
        explicit = Path(os.environ[BIN_DIR_ENV])
    if explicit is None:
        try:
            result = subprocess.run(
                [str(BUILD_SCRIPT)], capture_output=True, text=True, check=False, timeout=3600
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ControlPlaneError(f"{BUILD_SCRIPT} could not run: {exc}") from exc
        if result.returncode != 0 or not result.stdout.strip():
            raise ControlPlaneError(
                f"{BUILD_SCRIPT} failed (exit {result.returncode}):\n{result.stderr[-4000:]}"
            )
        explicit = Path(result.stdout.strip().splitlines()[-1])
    missing = [b for b in BINARIES if not os.access(explicit / b, os.X_OK)]
    if missing:
        raise ControlPlaneError(f"not executable in {explicit}: {', '.join(missing)}")
    return explicit


def bin_dir_from_env() -> Path:
    """Same as ``resolve_bin_dir()``: ``$PULLSECRET_BIN_DIR`` or the build script's output."""
    return resolve_bin_dir()


# --------------------------------------------------------------------------------------------
# The control plane.


class ControlPlane:
    """A running etcd + kube-apiserver (+ kube-controller-manager) on 127.0.0.1.

    Build one with :meth:`start` (or :meth:`attach` to one started by ``up``); it is also a
    context manager that stops on exit. Credentials: ``admin_kubeconfig`` is
    ``system:masters``; :meth:`kubeconfig_for_user` and :meth:`kubeconfig_for_token` make
    least-privilege ones.
    """

    def __init__(self, workdir: Path, bin_dir: Path, ports: Ports) -> None:
        self.workdir = workdir
        self.bin_dir = bin_dir
        self.ports = ports
        self.processes: list[ProcessRecord] = []
        self.apiserver_args: list[str] = []
        """Extra kube-apiserver flags this plane was started with."""
        self.timings: dict[str, float] = {}
        """Seconds from the start of :meth:`start` until each readiness milestone."""
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    # -- layout ----------------------------------------------------------------------------

    @property
    def pki_dir(self) -> Path:
        return self.workdir / "pki"

    @property
    def logs_dir(self) -> Path:
        return self.workdir / "logs"

    @property
    def state_file(self) -> Path:
        return self.workdir / "state.json"

    @property
    def admin_kubeconfig(self) -> Path:
        """Kubeconfig of ``pullsecret-e2e-admin`` (group ``system:masters``)."""
        return self.workdir / "admin.kubeconfig"

    @property
    def controller_manager_kubeconfig(self) -> Path:
        return self.workdir / "kube-controller-manager.kubeconfig"

    @property
    def api_url(self) -> str:
        return f"https://127.0.0.1:{self.ports.apiserver}"

    @property
    def ca_pem(self) -> bytes:
        """The CA that signed the API server's serving certificate."""
        return (self.pki_dir / "ca.crt").read_bytes()

    # -- lifecycle -------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        workdir: Path,
        bin_dir: Path,
        controller_manager: bool = True,
        *,
        detach: bool = False,
        apiserver_args: Sequence[str] = (),
    ) -> ControlPlane:
        """Generate PKI, start the processes and return once the API is usable.

        Ready means: etcd healthy, ``/readyz`` ok, namespace ``default`` present and, with
        ``controller_manager``, ServiceAccount ``default/default`` created by it. Without
        kube-controller-manager the ``ServiceAccount`` admission plugin is disabled (as envtest
        does), since nothing would ever create the ServiceAccounts it requires.

        ``detach`` puts the processes in their own session so they outlive this Python process
        (the ``up`` command); otherwise they share our process group and die with a Ctrl-C.
        ``apiserver_args`` are appended to kube-apiserver's flags (a test's own control plane,
        e.g. ``--admission-control-config-file``); they are kept for restarts.
        On any failure every process started so far is stopped and :class:`ControlPlaneError`
        carries the log tails. ``workdir`` may hold a previous, stopped control plane: its etcd
        data and logs are replaced; a still-running one is refused.
        """
        began = time.monotonic()
        workdir = workdir.resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        if (workdir / "state.json").exists():
            alive = [n for n, up in cls.attach(workdir).running().items() if up]
            if alive:
                raise ControlPlaneError(
                    f"a control plane recorded in {workdir} is still running ({', '.join(alive)})"
                )
        shutil.rmtree(workdir / "etcd", ignore_errors=True)
        etcd_client, etcd_peer, apiserver, kcm = _free_ports(4)
        plane = cls(workdir, bin_dir.resolve(), Ports(etcd_client, etcd_peer, apiserver, kcm))
        plane.apiserver_args = list(apiserver_args)
        plane.logs_dir.mkdir(exist_ok=True)
        try:
            plane._write_pki()
            plane._start_etcd(detach)
            plane.timings["etcd"] = time.monotonic() - began
            plane._start_apiserver(controller_manager, detach)
            plane.timings["kube-apiserver"] = time.monotonic() - began
            plane._wait_for(
                lambda: plane.get("/api/v1/namespaces/default")[0] == 200,
                "namespace default",
                DEFAULT_NAMESPACE_TIMEOUT,
            )
            plane.timings["namespace default"] = time.monotonic() - began
            if controller_manager:
                plane._start_controller_manager(detach)
                plane.wait_for_service_account("default", "default", SERVICE_ACCOUNT_TIMEOUT)
                plane.timings["kube-controller-manager"] = time.monotonic() - began
            plane._save_state()
        except BaseException as exc:
            tails = plane.log_tails()
            with contextlib.suppress(Exception):
                plane.stop()
            if isinstance(exc, ControlPlaneError):
                raise
            if isinstance(exc, Exception):
                raise ControlPlaneError(f"control plane failed to start: {exc!r}\n{tails}") from exc
            raise
        plane.timings["ready"] = time.monotonic() - began
        return plane

    @classmethod
    def attach(cls, workdir: Path) -> ControlPlane:
        """The control plane ``up`` recorded in ``<workdir>/state.json`` (it may have died)."""
        state = json.loads((workdir / "state.json").read_text())
        plane = cls(Path(state["workdir"]), Path(state["bin_dir"]), Ports(**state["ports"]))
        plane.processes = [ProcessRecord(**p) for p in state["processes"]]
        return plane

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop exactly our processes, newest first (kcm, apiserver, etcd). Idempotent."""
        errors = []
        for record in reversed(self.processes):
            try:
                stop(record, self._children.pop(record.pid, None), timeout)
            except ProcessError as exc:
                errors.append(str(exc))
        if errors:
            raise ControlPlaneError("; ".join(errors))
        self.state_file.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def running(self) -> dict[str, bool]:
        """Component name → still running (and still ours)."""
        return {record.name: is_running(record) for record in self.processes}

    def stop_apiserver(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop kube-apiserver only (fault injection); etcd and the rest keep running.

        Its record stays in :attr:`processes` (reported as not running) until
        :meth:`start_apiserver` replaces it.
        """
        record = next(r for r in self.processes if r.name == "kube-apiserver")
        stop(record, self._children.pop(record.pid, None), timeout)

    def start_apiserver(self) -> None:
        """Start kube-apiserver again after :meth:`stop_apiserver`: same port, flags and PKI.

        Returns once ``/readyz`` is ok. The previous run's log is kept next to the new one
        as ``kube-apiserver.log.previous``.
        """
        index, record = next(
            (i, r) for i, r in enumerate(self.processes) if r.name == "kube-apiserver"
        )
        if is_running(record):
            raise ControlPlaneError(f"kube-apiserver (pid {record.pid}) is still running")
        # Same session as the rest: detached (``up``) iff etcd runs in another session.
        etcd = next(r for r in self.processes if r.name == "etcd")
        detach = is_running(etcd) and os.getsid(etcd.pid) != os.getsid(0)
        log = Path(record.log)
        if log.exists():
            log.replace(log.with_name(log.name + ".previous"))
        self.processes.remove(record)
        controller_manager = any(r.name == "kube-controller-manager" for r in self.processes)
        self._start_apiserver(controller_manager, detach)
        # Back in its old place, so that stop() keeps stopping newest-first by role.
        restarted = self.processes.pop()
        self.processes.insert(index, restarted)
        self._save_state()

    def start_workload_controllers(self) -> None:
        """Run :data:`WORKLOAD_CONTROLLERS` (Deployments → ReplicaSets → Pods) in a second
        kube-controller-manager, until :meth:`stop_workload_controllers` or :meth:`stop`.

        For a control plane with a node: the chart's Deployments then make real pods. There
        is still no scheduler; whoever starts this binds the pods (tools/node_release.py).
        Idempotent; returns once the process runs (it needs no further readiness: the
        controllers act on their first list).
        """
        if any(r.name == WORKLOAD_CONTROLLER_MANAGER and is_running(r) for r in self.processes):
            return
        self.processes = [r for r in self.processes if r.name != WORKLOAD_CONTROLLER_MANAGER]
        etcd = next(r for r in self.processes if r.name == "etcd")
        detach = is_running(etcd) and os.getsid(etcd.pid) != os.getsid(0)
        self._start_controller_manager(
            detach, WORKLOAD_CONTROLLERS, WORKLOAD_CONTROLLER_MANAGER, free_port()
        )

    def stop_workload_controllers(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the process :meth:`start_workload_controllers` started. Idempotent."""
        for record in [r for r in self.processes if r.name == WORKLOAD_CONTROLLER_MANAGER]:
            stop(record, self._children.pop(record.pid, None), timeout)
            self.processes.remove(record)
        self._save_state()

    # -- PKI and kubeconfigs ----------------------------------------------------------------

    def _write_pki(self) -> None:
        now = datetime.now(UTC)
        serving_ca = pki.new_ca("pullsecret-e2e-serving-ca", now, CERT_DAYS)
        client_ca = pki.new_ca("pullsecret-e2e-client-ca", now, CERT_DAYS)
        self._write_pair("ca", serving_ca)
        self._write_pair("client-ca", client_ca)
        self._write_pair(
            "apiserver",
            pki.issue(
                serving_ca,
                "kube-apiserver",
                now=now,
                days=CERT_DAYS,
                hosts=["127.0.0.1", "localhost"],
            ),
        )
        sa_key = pki.new_private_key_pem()
        write_atomic(self.pki_dir / "sa.key", sa_key, 0o600)
        write_atomic(self.pki_dir / "sa.pub", pki.public_key_pem(sa_key), 0o644)
        admin = self._client_cert(client_ca, "pullsecret-e2e-admin", ["system:masters"], now)
        kcm = self._client_cert(client_ca, "system:kube-controller-manager", [], now)
        self._write_pair("admin", admin)
        self._write_pair("kube-controller-manager", kcm)
        self._write_pair(
            "apiserver-kubelet-client",
            self._client_cert(client_ca, "kube-apiserver-kubelet-client", ["system:masters"], now),
        )
        self._write_kubeconfig(self.admin_kubeconfig, "pullsecret-e2e-admin", _cert_user(admin))
        self._write_kubeconfig(
            self.controller_manager_kubeconfig, "system:kube-controller-manager", _cert_user(kcm)
        )

    @staticmethod
    def _client_cert(ca: pki.Issued, name: str, groups: Sequence[str], now: datetime) -> pki.Issued:
        return pki.issue(
            ca, name, now=now, days=CERT_DAYS, organizations=groups, server=False, client=True
        )

    def _write_pair(self, stem: str, issued: pki.Issued) -> None:
        write_atomic(self.pki_dir / f"{stem}.crt", issued.cert_pem, 0o644)
        write_atomic(self.pki_dir / f"{stem}.key", issued.key_pem, 0o600)

    def _write_kubeconfig(self, path: Path, user: str, credentials: dict[str, str]) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": CLUSTER_NAME,
                    "cluster": {
                        "server": self.api_url,
                        "certificate-authority-data": _b64(self.ca_pem),
                    },
                }
            ],
            "users": [{"name": user, "user": credentials}],
            "contexts": [{"name": user, "context": {"cluster": CLUSTER_NAME, "user": user}}],
            "current-context": user,
        }
        write_atomic(path, yaml.safe_dump(config, sort_keys=False).encode(), 0o600)

    def kubeconfig_for_user(self, name: str, groups: Sequence[str] = ()) -> Path:
        """A kubeconfig authenticating as ``name`` in ``groups`` by a fresh client certificate."""
        client_ca = pki.load(
            (self.pki_dir / "client-ca.crt").read_bytes(),
            (self.pki_dir / "client-ca.key").read_bytes(),
        )
        cert = self._client_cert(client_ca, name, groups, datetime.now(UTC))
        path = self.workdir / "users" / f"{_slug(name)}-{_digest(name, *groups)}.kubeconfig"
        self._write_kubeconfig(path, name, _cert_user(cert))
        return path

    def kubeconfig_for_token(self, token: str) -> Path:
        """A kubeconfig presenting ``token`` (e.g. from the TokenRequest API) as bearer token."""
        path = self.workdir / "users" / f"token-{_digest(token)}.kubeconfig"
        self._write_kubeconfig(path, "token", {"token": token})
        return path

    # -- starting the components --------------------------------------------------------------

    def _spawn(
        self, name: str, args: list[str], detach: bool, program: str | None = None
    ) -> ProcessRecord:
        log = self.logs_dir / f"{name}.log"
        log.unlink(missing_ok=True)  # one log per run: spawn() appends
        child, record = spawn(
            name,
            [str(self.bin_dir / (program or name)), *args],
            log=log,
            cwd=self.workdir,
            detach=detach,
        )
        self.processes.append(record)
        self._children[child.pid] = child
        self._save_state()
        return record

    def _start_etcd(self, detach: bool) -> None:
        p = self.ports
        peer = f"http://127.0.0.1:{p.etcd_peer}"
        client = f"http://127.0.0.1:{p.etcd_client}"
        self._spawn(
            "etcd",
            [
                "--name=e2e",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=e2e={peer}",
                "--unsafe-no-fsync=true",  # throw-away data: no fsync keeps 2-core CI fast
                "--log-level=warn",
            ],
            detach,
        )

        def healthy() -> bool:
            status, body = _http_get(None, p.etcd_client, "/health", 2.0)
            return status == 200 and json.loads(body).get("health") == "true"

        self._wait_for(healthy, "etcd /health", ETCD_TIMEOUT)

    def _start_apiserver(self, controller_manager: bool, detach: bool) -> None:
        d = self.pki_dir
        args = [
            f"--etcd-servers=http://127.0.0.1:{self.ports.etcd_client}",
            "--bind-address=127.0.0.1",
            f"--secure-port={self.ports.apiserver}",
            # A loopback advertise address is only accepted without an endpoint reconciler
            # (the `kubernetes` Endpoints may not point at 127.0.0.0/8).
            "--advertise-address=127.0.0.1",
            "--endpoint-reconciler-type=none",
            f"--cert-dir={self.workdir / 'apiserver-certs'}",
            f"--tls-cert-file={d / 'apiserver.crt'}",
            f"--tls-private-key-file={d / 'apiserver.key'}",
            f"--client-ca-file={d / 'client-ca.crt'}",
            # Node before RBAC, as in kubeadm clusters: a kubelet (``system:node:<name>``, see
            # tools/node.py) reads only the Secrets and ConfigMaps of pods bound to it, and
            # NodeRestriction keeps it from writing other nodes' objects.
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            # Logs and exec of pods on a real node: the API server calls the kubelet with a
            # client certificate of our client CA and checks the kubelet's serving certificate.
            f"--kubelet-client-certificate={d / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={d / 'apiserver-kubelet-client.key'}",
            f"--kubelet-certificate-authority={d / 'ca.crt'}",
            f"--service-account-issuer={SA_ISSUER}",
            f"--service-account-key-file={d / 'sa.pub'}",
            f"--service-account-signing-key-file={d / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--allow-privileged=true",
            "--v=1",
        ]
        if not controller_manager:
            args.append("--disable-admission-plugins=ServiceAccount")
        args.extend(self.apiserver_args)
        self._spawn("kube-apiserver", args, detach)
        self._wait_for(
            lambda: self.get("/readyz", timeout=5.0) == (200, b"ok"),
            "kube-apiserver /readyz",
            APISERVER_TIMEOUT,
        )

    def _start_controller_manager(
        self,
        detach: bool,
        controllers: Sequence[str] = CONTROLLERS,
        name: str = "kube-controller-manager",
        port: int | None = None,
    ) -> ProcessRecord:
        kubeconfig = self.controller_manager_kubeconfig
        return self._spawn(
            name,
            [
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                # Nothing calls kcm's own port with a client certificate; skipping the lookup of
                # extension-apiserver-authentication avoids an endless "missing content for CA
                # bundle requestheader-client-ca-file" error loop (we run no front proxy).
                "--authentication-skip-lookup=true",
                f"--controllers={','.join(controllers)}",
                # Each controller acts as its own ServiceAccount, as in kubeadm clusters, so a
                # webhook sees real controller identities in userInfo.
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={self.pki_dir / 'sa.key'}",
                f"--root-ca-file={self.pki_dir / 'ca.crt'}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={port or self.ports.controller_manager}",
                f"--cert-dir={self.workdir / f'{name}-certs'}",
                "--v=1",
            ],
            detach,
            program="kube-controller-manager",
        )

    def _save_state(self) -> None:
        state = {
            "workdir": str(self.workdir),
            "bin_dir": str(self.bin_dir),
            "api_url": self.api_url,
            "admin_kubeconfig": str(self.admin_kubeconfig),
            "ports": asdict(self.ports),
            "processes": [asdict(record) for record in self.processes],
        }
        write_atomic(self.state_file, json.dumps(state, indent=2).encode() + b"\n", 0o644)

    # -- probing -------------------------------------------------------------------------

    def _check_processes(self, waiting_for: str) -> None:
        for record in self.processes:
            child = self._children.get(record.pid)
            code = child.poll() if child is not None else None
            if code is not None or not is_running(record):
                raise ControlPlaneError(
                    f"{record.name} (pid {record.pid}) exited"
                    + (f" with code {code}" if code is not None else "")
                    + f" while waiting for {waiting_for}; last lines of {record.log}:\n"
                    + tail(Path(record.log), 40)
                )

    def _wait_for(self, check: Callable[[], bool], what: str, timeout: float) -> None:
        """Poll ``check`` until true; fail fast if one of our processes dies meanwhile."""
        deadline = time.monotonic() + timeout
        for _ in range(int(timeout / POLL_INTERVAL) + 1):
            self._check_processes(what)
            with contextlib.suppress(OSError, http.client.HTTPException, ValueError):
                if check():
                    return
            if time.monotonic() >= deadline:
                break
            time.sleep(POLL_INTERVAL)
        raise ControlPlaneError(
            f"timed out after {timeout:.0f}s waiting for {what}\n{self.log_tails()}"
        )

    def _admin_tls(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki_dir / "ca.crt"))
        context.load_cert_chain(self.pki_dir / "admin.crt", self.pki_dir / "admin.key")
        return context

    def get(self, path: str, timeout: float = 10.0) -> tuple[int, bytes]:
        """``GET path`` on the API server as admin: ``(status, body)``. For probes and
        endpoints the typed client does not cover (``/readyz``, ``/metrics``)."""
        return _http_get(self._admin_tls(), self.ports.apiserver, path, timeout)

    def wait_for_service_account(
        self, namespace: str, name: str = "default", timeout: float = SERVICE_ACCOUNT_TIMEOUT
    ) -> None:
        """Wait until kube-controller-manager has created ServiceAccount ``namespace/name``."""
        path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}"
        self._wait_for(
            lambda: self.get(path)[0] == 200, f"ServiceAccount {namespace}/{name}", timeout
        )

    def log_tails(self, lines: int = 40) -> str:
        """The last ``lines`` of every component's log, for failure reports."""
        return "\n".join(
            f"----- {r.name} (pid {r.pid}, {'running' if is_running(r) else 'NOT running'})"
            f" {r.log}\n{tail(Path(r.log), lines)}"
            for r in self.processes
        )

    # -- clients ---------------------------------------------------------------------------

    def api_client(self, kubeconfig: Path | None = None) -> ApiClient:
        """A ``kubernetes`` client, as admin unless ``kubeconfig`` (e.g. from
        :meth:`kubeconfig_for_token`) says otherwise. Close it: ``with plane.api_client() as api:``.
        """
        from kubernetes import client, config  # noqa: PLC0415 - heavy import only tests need

        if kubeconfig is not None:
            return config.new_client_from_config(config_file=str(kubeconfig))
        configuration = client.Configuration()
        configuration.host = self.api_url
        configuration.ssl_ca_cert = str(self.pki_dir / "ca.crt")
        configuration.cert_file = str(self.pki_dir / "admin.crt")
        configuration.key_file = str(self.pki_dir / "admin.key")
        configuration.verify_ssl = True
        return client.ApiClient(configuration)

    def kubectl(
        self, *args: str, kubeconfig: Path | None = None, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run the matching kubectl (as admin unless ``kubeconfig``); never raises on exit code."""
        return subprocess.run(
            [
                str(self.bin_dir / "kubectl"),
                f"--kubeconfig={kubeconfig or self.admin_kubeconfig}",
                # Discovery cache in the work directory, not ~/.kube/cache of the host's user.
                f"--cache-dir={self.workdir / 'kubectl-cache'}",
                *args,
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )


def _http_get(
    context: ssl.SSLContext | None, port: int, path: str, timeout: float
) -> tuple[int, bytes]:
    # http.client rather than urllib: no proxy environment variables can reroute loopback.
    connection: http.client.HTTPConnection
    if context is None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    else:
        connection = http.client.HTTPSConnection(
            "127.0.0.1", port, timeout=timeout, context=context
        )
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _cert_user(issued: pki.Issued) -> dict[str, str]:
    return {
        "client-certificate-data": _b64(issued.cert_pem),
        "client-key-data": _b64(issued.key_pem),
    }


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:60]


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]


@contextlib.contextmanager
def running(
    workdir: Path, bin_dir: Path, controller_manager: bool = True
) -> Iterator[ControlPlane]:
    """``with running(dir, bins) as plane:`` — start, and always stop."""
    plane = ControlPlane.start(workdir, bin_dir, controller_manager)
    with plane:
        yield plane


# --------------------------------------------------------------------------------------------
# CLI: `up` leaves the processes running (own session) and records them; `down` stops them.


def _up(workdir: Path, bin_dir: Path | None, controller_manager: bool) -> int:
    plane = ControlPlane.start(workdir, resolve_bin_dir(bin_dir), controller_manager, detach=True)
    print(
        f"control plane ready in {plane.timings['ready']:.1f}s at {plane.api_url} "
        f"(logs in {plane.logs_dir}, stop with: python -m tools.controlplane down --dir {workdir})",
        file=sys.stderr,
    )
    print(plane.admin_kubeconfig)
    return 0


def _down(workdir: Path) -> int:
    if not (workdir / "state.json").exists():
        print(f"no control plane recorded in {workdir}", file=sys.stderr)
        return 0
    plane = ControlPlane.attach(workdir)
    for record in plane.processes:
        if not is_running(record):
            print(f"{record.name} (pid {record.pid}): already gone", file=sys.stderr)
    plane.stop()
    print(f"control plane in {workdir} stopped (logs kept in {plane.logs_dir})", file=sys.stderr)
    return 0


def _status(workdir: Path) -> int:
    if not (workdir / "state.json").exists():
        print(f"no control plane recorded in {workdir}", file=sys.stderr)
        return 1
    plane = ControlPlane.attach(workdir)
    states = plane.running()
    for record in plane.processes:
        print(f"{record.name}: pid {record.pid} {'running' if states[record.name] else 'gone'}")
    print(f"api: {plane.api_url}  kubeconfig: {plane.admin_kubeconfig}")
    return 0 if all(states.values()) else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.controlplane",
        description="Run a real etcd + kube-apiserver + kube-controller-manager on 127.0.0.1.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    default_dir = REPO / ".work" / "cluster"
    up = sub.add_parser("up", help="start, print the admin kubeconfig path, leave running")
    up.add_argument(
        "--dir", type=Path, default=default_dir, help="work directory: PKI, logs, state.json"
    )
    up.add_argument(
        "--bin-dir",
        type=Path,
        default=None,
        help=f"binaries (default: ${BIN_DIR_ENV}, else tools/build-control-plane.sh)",
    )
    up.add_argument(
        "--no-controller-manager", action="store_true", help="etcd + kube-apiserver only"
    )
    down = sub.add_parser("down", help="stop the processes recorded in DIR/state.json")
    down.add_argument("--dir", type=Path, default=default_dir)
    status = sub.add_parser("status", help="are the recorded processes running? (exit 1 if not)")
    status.add_argument("--dir", type=Path, default=default_dir)
    args = parser.parse_args(argv)
    workdir: Path = args.dir.resolve()
    try:
        if args.command == "up":
            return _up(workdir, args.bin_dir, not args.no_controller_manager)
        if args.command == "status":
            return _status(workdir)
        return _down(workdir)
    except ControlPlaneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
