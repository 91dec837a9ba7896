"""A real Kubernetes control plane on loopback: etcd + kube-apiserver + kube-controller-manager.

What envtest does for Go projects, for ours: the e2e tests and the demo run against the same
API server code a cluster runs, with the default admission chain (ServiceAccount admission
included) and kube-controller-manager creating ``default`` ServiceAccounts by itself. The
binaries come from ``tools/build-control-plane.sh``; certificates from the project's own
``certs.pki``. Every process is started by us, recorded by PID and stopped by PID.

Usage from Python::

    plane = ControlPlane.start(workdir, bin_dir)
    ... plane.admin_kubeconfig, plane.api_client() ...
    plane.stop()

From a shell (the demo)::

    python -m tools.controlplane up --dir .work/cluster
    python -m tools.controlplane down --dir .work/cluster
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from certs.files import write_atomic
from certs.pki import Issued, issue, new_ca, new_private_key_pem, public_key_pem

__all__ = ["ControlPlane", "ControlPlaneError", "bin_dir_from_env", "free_port"]

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT = 120.0
CONTROLLERS = (
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "namespace-controller",
    "garbage-collector-controller",
    "root-ca-certificate-publisher-controller",
)


class ControlPlaneError(RuntimeError):
    """The control plane could not be started; the message carries the logs' tails."""


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bin_dir_from_env() -> Path:
    """``PULLSECRET_BIN_DIR``, or build/reuse the binaries with the project's script."""
    configured = os.environ.get("PULLSECRET_BIN_DIR")
    if configured:
        return Path(configured)
    result = subprocess.run(
        [str(REPO / "tools" / "build-control-plane.sh")],
        capture_output=True,
        text=True,
        check=False,
        timeout=3600,
    )
    if result.returncode != 0:
        raise ControlPlaneError("tools/build-control-plane.sh failed:\n" + result.stderr[-4000:])
    return Path(result.stdout.strip().splitlines()[-1])


@dataclass
class Process:
    name: str
    pid: int
    log: str
    exe: str


@dataclass
class ControlPlane:
    """A running control plane. Build it with ``start``; ``stop`` ends exactly its processes."""

    workdir: Path
    bin_dir: Path
    api_port: int = 0
    etcd_port: int = 0
    processes: list[Process] = field(default_factory=list)
    started_seconds: float = 0.0
    _children: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)
    """Popen handles of processes started by this object (reaped on stop)."""

    # -- paths ---------------------------------------------------------------------------------

    @property
    def pki(self) -> Path:
        return self.workdir / "pki"

    @property
    def api_url(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.workdir / "admin.kubeconfig"

    @property
    def ca_pem(self) -> bytes:
        return (self.pki / "ca.crt").read_bytes()

    def binary(self, name: str) -> Path:
        return self.bin_dir / name

    # -- start / stop ------------------------------------------------------------------------

    @classmethod
    def start(
        cls, workdir: Path, bin_dir: Path, *, controller_manager: bool = True, detach: bool = False
    ) -> ControlPlane:
        started = time.monotonic()
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "logs").mkdir(exist_ok=True)
        plane = cls(workdir=workdir, bin_dir=bin_dir)
        missing = [
            b
            for b in ("etcd", "kube-apiserver", "kube-controller-manager")
            if not plane.binary(b).exists()
        ]
        if missing:
            raise ControlPlaneError(f"missing binaries in {bin_dir}: {', '.join(missing)}")
        try:
            plane._write_pki()
            plane._start_etcd(detach)
            plane._start_apiserver(controller_manager, detach)
            if controller_manager:
                plane._start_controller_manager(detach)
                plane.wait_for_service_account("default", "default", timeout=START_TIMEOUT)
        except BaseException:
            tails = plane.log_tails()
            plane.stop()
            if sys.exc_info()[0] is ControlPlaneError:
                raise
            raise ControlPlaneError("control plane failed to start\n" + tails) from None
        plane.started_seconds = time.monotonic() - started
        plane.save_state()
        return plane

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL, exactly the processes we started, newest first.

        One at a time: the API server shuts down quickly while etcd is still there, and
        data in this throw-away etcd is not worth a long graceful wait.
        """
        for process in reversed(self.processes):
            if not _is_ours(process):
                continue
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while _is_ours(process) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _is_ours(process):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGKILL)
                while _is_ours(process) and time.monotonic() < deadline + 5:
                    time.sleep(0.05)
        for child in self._children.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(1)
        self._children.clear()
        self.processes = []

    # -- state file (for `down` from another shell) ----------------------------------------------

    def save_state(self) -> None:
        state = {
            "workdir": str(self.workdir),
            "bin_dir": str(self.bin_dir),
            "api_port": self.api_port,
            "etcd_port": self.etcd_port,
            "processes": [asdict(p) for p in self.processes],
        }
        (self.workdir / "state.json").write_text(json.dumps(state, indent=2))

    @classmethod
    def load_state(cls, workdir: Path) -> ControlPlane:
        state = json.loads((workdir / "state.json").read_text())
        return cls(
            workdir=Path(state["workdir"]),
            bin_dir=Path(state["bin_dir"]),
            api_port=state["api_port"],
            etcd_port=state["etcd_port"],
            processes=[Process(**p) for p in state["processes"]],
        )

    # -- PKI and kubeconfigs -----------------------------------------------------------------

    def _write_pki(self) -> None:
        now = datetime.now(UTC)
        ca = new_ca("pullsecret-e2e-serving-ca", now, 30)
        client_ca = new_ca("pullsecret-e2e-client-ca", now, 30)
        serving = issue(ca, "kube-apiserver", now=now, days=30, hosts=["127.0.0.1", "localhost"])
        self._write_pair("ca", ca)
        self._write_pair("client-ca", client_ca)
        self._write_pair("apiserver", serving)
        sa_key = new_private_key_pem()
        write_atomic(self.pki / "sa.key", sa_key, 0o600)
        write_atomic(self.pki / "sa.pub", public_key_pem(sa_key), 0o644)
        self.api_port = free_port()
        admin = issue(
            client_ca,
            "pullsecret-e2e-admin",
            now=now,
            days=30,
            organizations=["system:masters"],
            server=False,
            client=True,
        )
        kcm = issue(
            client_ca,
            "system:kube-controller-manager",
            now=now,
            days=30,
            server=False,
            client=True,
        )
        self._write_pair("admin", admin)
        self._write_pair("kcm", kcm)
        self._write_kubeconfig(
            self.admin_kubeconfig,
            "admin",
            {"client-certificate-data": admin.cert_pem, "client-key-data": admin.key_pem},
        )
        self._write_kubeconfig(
            self.workdir / "kcm.kubeconfig",
            "kcm",
            {"client-certificate-data": kcm.cert_pem, "client-key-data": kcm.key_pem},
        )

    def _write_pair(self, name: str, issued: Issued) -> None:
        write_atomic(self.pki / f"{name}.crt", issued.cert_pem, 0o644)
        write_atomic(self.pki / f"{name}.key", issued.key_pem, 0o600)

    def _write_kubeconfig(self, path: Path, user: str, credentials: dict[str, bytes | str]) -> None:
        encoded = {
            key: base64.b64encode(value).decode() if isinstance(value, bytes) else value
            for key, value in credentials.items()
        }
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "pullsecret-e2e",
                    "cluster": {
                        "server": self.api_url,
                        "certificate-authority-data": base64.b64encode(
                            (self.pki / "ca.crt").read_bytes()
                        ).decode(),
                    },
                }
            ],
            "users": [{"name": user, "user": encoded}],
            "contexts": [{"name": user, "context": {"cluster": "pullsecret-e2e", "user": user}}],
            "current-context": user,
        }
        write_atomic(path, yaml.safe_dump(config).encode(), 0o600)

    def kubeconfig_for_user(self, name: str, groups: Sequence[str] = ()) -> Path:
        """A client-certificate kubeconfig for any user/groups (RBAC tests)."""
        client_ca_cert = (self.pki / "client-ca.crt").read_bytes()
        client_ca_key = (self.pki / "client-ca.key").read_bytes()
        from certs.pki import load  # noqa: PLC0415

        client_ca = load(client_ca_cert, client_ca_key)
        user = issue(
            client_ca,
            name,
            now=datetime.now(UTC),
            days=7,
            organizations=list(groups),
            server=False,
            client=True,
        )
        path = self.workdir / f"user-{name.replace(':', '_')}.kubeconfig"
        self._write_kubeconfig(
            path, name, {"client-certificate-data": user.cert_pem, "client-key-data": user.key_pem}
        )
        return path

    def kubeconfig_for_token(self, token: str, label: str = "token") -> Path:
        """A bearer-token kubeconfig (e.g. a TokenRequest token of the chart's ServiceAccount)."""
        path = self.workdir / f"{label}.kubeconfig"
        self._write_kubeconfig(path, label, {"token": token})
        return path

    # -- processes -----------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str], detach: bool) -> Process:
        log_path = self.workdir / "logs" / f"{name}.log"
        with log_path.open("ab") as log:
            child = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
                start_new_session=detach,
            )
        process = Process(name=name, pid=child.pid, log=str(log_path), exe=argv[0])
        self.processes.append(process)
        self._children[child.pid] = child
        return process

    def _start_etcd(self, detach: bool) -> None:
        self.etcd_port = free_port()
        peer = free_port()
        process = self._spawn(
            "etcd",
            [
                str(self.binary("etcd")),
                "--name=e2e",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{self.etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{self.etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=e2e=http://127.0.0.1:{peer}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
            detach,
        )
        self._wait(
            process,
            f"http://127.0.0.1:{self.etcd_port}/health",
            lambda body: b'"health":"true"' in body,
        )

    def _start_apiserver(self, controller_manager: bool, detach: bool) -> None:
        pki = self.pki
        argv = [
            str(self.binary("kube-apiserver")),
            f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            "--bind-address=127.0.0.1",
            f"--secure-port={self.api_port}",
            "--advertise-address=127.0.0.1",
            "--endpoint-reconciler-type=none",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'client-ca.crt'}",
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--allow-privileged=true",
            f"--cert-dir={self.workdir / 'apiserver-certs'}",
            "--v=1",
        ]
        if not controller_manager:
            # Without kube-controller-manager no `default` ServiceAccount ever appears.
            argv.append("--disable-admission-plugins=ServiceAccount")
        process = self._spawn("kube-apiserver", argv, detach)
        self._wait(process, f"{self.api_url}/readyz", lambda body: body.strip() == b"ok", tls=True)
        self._wait_for(lambda: self._namespace_exists("default"), "namespace default", process)

    def _start_controller_manager(self, detach: bool) -> None:
        kubeconfig = self.workdir / "kcm.kubeconfig"
        process = self._spawn(
            "kube-controller-manager",
            [
                str(self.binary("kube-controller-manager")),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                f"--controllers={','.join(CONTROLLERS)}",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={self.pki / 'sa.key'}",
                f"--root-ca-file={self.pki / 'ca.crt'}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                "--v=1",
            ],
            detach,
        )
        del process

    # -- readiness helpers -----------------------------------------------------------------------

    def _admin_ssl(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        context.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        return context

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        """GET an API path as admin: (status, body). For probes and small checks."""
        request = urllib.request.Request(self.api_url + path)
        try:
            with urllib.request.urlopen(
                request, timeout=timeout, context=self._admin_ssl()
            ) as response:
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), bytes(exc.read())

    def _namespace_exists(self, name: str) -> bool:
        return self.get(f"/api/v1/namespaces/{name}")[0] == 200

    def wait_for_service_account(
        self, namespace: str, name: str = "default", timeout: float = 60.0
    ) -> None:
        path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}"
        kcm = next((p for p in self.processes if p.name == "kube-controller-manager"), None)
        self._wait_for(
            lambda: self.get(path)[0] == 200, f"serviceaccount {namespace}/{name}", kcm, timeout
        )

    def _wait(self, process: Process, url: str, ok: Any, tls: bool = False) -> None:
        def probe() -> bool:
            try:
                context = self._admin_ssl() if tls else None
                with urllib.request.urlopen(url, timeout=2, context=context) as response:
                    return bool(ok(response.read()))
            except (OSError, ssl.SSLError):
                return False

        self._wait_for(probe, f"{process.name} ready", process)

    def _wait_for(
        self, check: Any, what: str, process: Process | None, timeout: float = START_TIMEOUT
    ) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process is not None and not _is_ours(process):
                raise ControlPlaneError(
                    f"{process.name} exited while waiting for {what}\n{self.log_tails()}"
                )
            with contextlib.suppress(OSError):
                if check():
                    return
            time.sleep(0.2)
        raise ControlPlaneError(
            f"timed out after {timeout:.0f}s waiting for {what}\n{self.log_tails()}"
        )

    def log_tails(self, lines: int = 40) -> str:
        out = []
        for process in self.processes:
            path = Path(process.log)
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {process.name} (pid {process.pid}) {path}\n" + "\n".join(tail))
        return "\n".join(out)

    # -- clients -------------------------------------------------------------------------------

    def api_client(self, kubeconfig: Path | None = None) -> Any:
        from kubernetes import config  # noqa: PLC0415 - only tests need the client

        return config.new_client_from_config(config_file=str(kubeconfig or self.admin_kubeconfig))

    def kubectl(
        self,
        *args: str,
        kubeconfig: Path | None = None,
        check: bool = True,
        input_text: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                str(self.binary("kubectl")),
                f"--kubeconfig={kubeconfig or self.admin_kubeconfig}",
                *args,
            ],
            capture_output=True,
            text=True,
            check=check,
            timeout=60,
            input=input_text,
        )


def _is_ours(process: Process) -> bool:
    """Alive, and still the executable we started (PIDs get reused)."""
    _reap(process.pid)
    try:
        exe = os.readlink(f"/proc/{process.pid}/exe")
    except OSError:
        return False
    return Path(exe).name == Path(process.exe).name


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


@contextlib.contextmanager
def running(workdir: Path, bin_dir: Path, **kwargs: Any) -> Iterator[ControlPlane]:
    plane = ControlPlane.start(workdir, bin_dir, **kwargs)
    try:
        yield plane
    finally:
        plane.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.controlplane")
    parser.add_argument("action", choices=("up", "down", "status"))
    parser.add_argument("--dir", type=Path, default=REPO / ".work" / "cluster")
    parser.add_argument("--bin-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    workdir: Path = args.dir.resolve()
    if args.action == "up":
        bin_dir = args.bin_dir or bin_dir_from_env()
        plane = ControlPlane.start(workdir, bin_dir, detach=True)
        print(f"control plane up in {plane.started_seconds:.1f}s: {plane.api_url}")
        print(f"export KUBECONFIG={plane.admin_kubeconfig}")
        return 0
    if not (workdir / "state.json").exists():
        print(f"no control plane recorded in {workdir}")
        return 0 if args.action == "down" else 1
    plane = ControlPlane.load_state(workdir)
    if args.action == "status":
        for process in plane.processes:
            print(f"{process.name}: pid {process.pid} {'running' if _is_ours(process) else 'gone'}")
        return 0
    plane.stop()
    (workdir / "state.json").unlink()
    print("control plane stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
