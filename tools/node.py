"""A real Kubernetes node next to the control plane: kubelet + containerd + runc, and a registry.

The control plane (:mod:`tools.controlplane`) stores pods; this makes one of them run. The
kubelet registers as ``system:node:<name>`` (Node authorizer, NodeRestriction), asks containerd
over CRI to pull each image with the pod's pull secrets from an authenticated registry on
127.0.0.1 (:mod:`tools.registry`), and runc starts the container. Pods set ``hostNetwork:
true`` and ``spec.nodeName`` (there is no scheduler and no pod network): :meth:`Node.pod`
writes such a manifest.

The host must end every run as it was. How each effect of the daemons is kept away from it:

* **processes**: ours are recorded by PID, executable and start time and stopped only by
  that record (:func:`tools.processes.terminate`). What containerd starts (shims, and the
  containers runc starts) is found by membership, never by name: shims are in the node's
  mount namespace, containers in the node's cgroup subtree; :meth:`Node.stop` first lets the
  kubelet and containerd remove their pods, then kills whatever is still a member.
* **mounts**: the kubelet and containerd run in a private mount namespace
  (:mod:`tools.mountns`); every mount they make goes with it.
* **kernel tunables**: the kubelet sees files with the values it wants over its
  ``/proc/sys`` entries (:data:`tools.nodeconfig.KERNEL_TUNABLES`) and runs with
  ``protectKernelDefaults``, so it neither writes nor silently changes anything.
* **cgroups**: ``cgroupRoot`` is a child of the suite's own cgroup in every hierarchy
  (:mod:`tools.cgroups`), removed on stop.
* **files**: everything is under the node's directory; the two paths the kubelet hard-codes
  (``/var/lib/kubelet``'s device-plugin socket, ``/var/log/containers``) are test directories
  bind-mounted there inside the namespace. Their mount points are created on the host only if
  absent and removed (only if still empty) on stop.
* **firewall**: nothing here installs iptables, and without it the kubelet writes no rule.

Usage (the e2e fixture)::

    with Node.start(tmp_path / "node", plane) as node:
        image = node.push_sleeper("team/app:1")
        api.create_namespaced_secret(ns, node.registry.pull_secret("pull", ns))
        api.create_namespaced_pod(ns, node.pod("app", image, pull_secrets=["pull"]))
        node.wait_for_pod(ns, "app", lambda p: pod_state(p) == "Running")
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import ipaddress
import json
import os
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from uuid import uuid4

import yaml

from certs import pki
from certs.files import write_atomic
from tools.cgroups import CgroupTree
from tools.controlplane import REPO, ControlPlane, ControlPlaneError, free_port
from tools.mountns import MountNamespace, MountNamespaceError
from tools.nodeconfig import (
    KERNEL_TUNABLES,
    NodeLayout,
    containerd_config,
    hosts_toml,
    kubelet_config,
    loopback_conflist,
)
from tools.processes import (
    POLL_INTERVAL,
    ProcessRecord,
    adopt,
    is_running,
    spawn,
    stop,
    tail,
    terminate,
)
from tools.registry import Registry, make_image

__all__ = [
    "NODE_BINARIES",
    "Node",
    "NodeError",
    "NodePorts",
    "pod_messages",
    "pod_state",
    "resolve_node_bin_dir",
]

NODE_BUILD_SCRIPT = REPO / "tools" / "build-node.sh"
NODE_BIN_DIR_ENV = "PULLSECRET_NODE_BIN_DIR"
NODE_BINARIES = (
    "kubelet",
    "containerd",
    "ctr",
    "containerd-shim-runc-v2",
    "runc",
    "registry",
    "loopback",
    "imagetool",
    "sleeper",
)
#: The pod sandbox ("pause") image: our sleeper, imported into containerd before the kubelet
#: starts. ``.invalid`` can never resolve, so it is never pulled from anywhere.
SANDBOX_IMAGE = "registry.invalid/pullsecret-e2e/pause:1"
CRI_NAMESPACE = "k8s.io"
#: The kubelet refuses a loopback ``--node-ip`` ("nodeIP can't be loopback address") and then
#: reports no address at all: the API server cannot reach it for logs and exec ("no preferred
#: addresses found") and hostNetwork pods get no IP. The one way it takes 127.0.0.1 as the
#: node's InternalIP is a node name that is that IP (``--hostname-override``, see
#: pkg/kubelet/nodestatus/setters.go). Nodes with other names work, without an address; only
#: one node per host can have this name.
DEFAULT_NAME = "127.0.0.1"
#: Paths the kubelet uses whatever its configuration says. Inside the namespace each is a
#: directory of the test; the whole of /var/lib/kubelet is covered so that no stray write of
#: the kubelet's lands in the host's.
HARD_CODED = ("/var/lib/kubelet", "/var/log/containers")
#: Short, always-present directories to mount the shim socket directory on inside the
#: namespace (containerd allows at most 42 characters); the first that exists is used.
SHIM_MOUNT_POINTS = ("/media", "/srv", "/mnt")

# Budgets (seconds). Measured on the 2-core dev machine: containerd ready ~0.3 s, node
# registered ~1 s after the kubelet starts, Ready a few seconds later. Generous on purpose.
CONTAINERD_TIMEOUT = 60.0
NODE_REGISTERED_TIMEOUT = 90.0
NODE_READY_TIMEOUT = 120.0
DRAIN_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


class NodeError(RuntimeError):
    """Starting, probing or stopping the node failed; the message carries log tails."""


def resolve_node_bin_dir(explicit: Path | None = None) -> Path:
    """``explicit``, ``$PULLSECRET_NODE_BIN_DIR``, or what ``tools/build-node.sh`` prints
    (building on first use); :class:`NodeError` if a binary is missing."""
    if explicit is None and os.environ.get(NODE_BIN_DIR_ENV):
        explicit = Path(os.environ[NODE_BIN_DIR_ENV])
    if explicit is None:
        try:
            result = subprocess.run(
                [str(NODE_BUILD_SCRIPT)], capture_output=True, text=True, timeout=3600, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise NodeError(f"{NODE_BUILD_SCRIPT} could not run: {exc}") from exc
        if result.returncode != 0 or not result.stdout.strip():
            raise NodeError(
                f"{NODE_BUILD_SCRIPT} failed (exit {result.returncode}):\n{result.stderr[-4000:]}"
            )
        explicit = Path(result.stdout.strip().splitlines()[-1])
    missing = [b for b in NODE_BINARIES if not os.access(explicit / b, os.X_OK)]
    if missing:
        raise NodeError(f"not executable in {explicit}: {', '.join(missing)}")
    return explicit


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def pod_state(pod: Mapping[str, Any]) -> str:
    """What a user reads in ``kubectl get pod``'s STATUS: a container's waiting or
    terminated reason (``ErrImagePull``, ``ImagePullBackOff``, ``ContainerCreating``, ...),
    else the phase (``Pending``, ``Running``, ...)."""
    status = pod.get("status") or {}
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        for kind in ("waiting", "terminated"):
            reason = (state.get(kind) or {}).get("reason")
            if reason:
                return str(reason)
    return str(status.get("phase") or "Pending")


def pod_messages(pod: Mapping[str, Any]) -> list[str]:
    """The containers' waiting/terminated messages (e.g. the pull error's text)."""
    found = []
    for container in (pod.get("status") or {}).get("containerStatuses") or []:
        for detail in (container.get("state") or {}).values():
            if isinstance(detail, dict) and detail.get("message"):
                found.append(str(detail["message"]))
    return found


@dataclass(frozen=True)
class NodePorts:
    """Loopback ports chosen at start."""

    kubelet: int
    kubelet_healthz: int
    stream: int


class Node:
    """One running node (registry, containerd, kubelet) attached to a :class:`ControlPlane`.

    Build it with :meth:`start`; it is a context manager that stops on exit. ``timings``
    holds seconds from the start of :meth:`start` to each milestone, and
    ``kubelet_started`` the monotonic time the kubelet was started (to time pods against).
    """

    def __init__(self, workdir: Path, bin_dir: Path, plane: ControlPlane, name: str) -> None:
        self.layout = NodeLayout(workdir)
        self.bin_dir = bin_dir
        self.plane = plane
        self.name = name
        self.ports = NodePorts(*(free_port() for _ in range(3)))
        self.registry = Registry(workdir / "registry", bin_dir)
        self.processes: list[ProcessRecord] = []
        """containerd and the kubelet, in start order (the registry has its own record)."""
        self.timings: dict[str, float] = {}
        self.kubelet_started = 0.0
        self.namespace: MountNamespace | None = None
        self.cgroups: CgroupTree | None = None
        self.swept: list[str] = []
        """Processes :meth:`stop` had to kill because nothing else ended them."""
        self._created: list[Path] = []
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._shim_dir = ""

    # -- lifecycle -------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        workdir: Path,
        plane: ControlPlane,
        bin_dir: Path | None = None,
        name: str | None = None,
    ) -> Node:
        """Start everything and return once the node is Ready; on failure stop what was
        started and raise :class:`NodeError` with the logs' tails."""
        began = time.monotonic()
        workdir = workdir.resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        node = cls(workdir, resolve_node_bin_dir(bin_dir), plane, name or DEFAULT_NAME)
        steps: list[tuple[str, Callable[[], None]]] = [
            ("files", node._write_files),
            ("registry", node.registry.start),
            ("cgroups", node._make_cgroups),
            ("mount namespace", node._make_namespace),
            ("containerd", node._start_containerd),
            ("sandbox image", node._import_sandbox_image),
            ("kubelet started", node._start_kubelet),
            ("node registered", node._wait_registered),
            ("node ready", node._wait_ready),
        ]
        try:
            for milestone, step in steps:
                step()
                node.timings[milestone] = time.monotonic() - began
        except BaseException as exc:
            tails = node.log_tails()
            with contextlib.suppress(Exception):
                node.stop()
            if isinstance(exc, Exception):
                raise NodeError(f"node failed to start: {exc}\n{tails}") from exc
            raise
        return node

    def stop(self) -> None:
        """Stop everything, pods first, and give the host back as it was. Idempotent.

        Order: pods on this node are deleted through the API and the kubelet given time to
        stop them; then the kubelet; then containerd removes what is left (``ctr``); then
        containerd; then any process still in the namespace or the cgroup tree is killed
        (listed in :attr:`swept`); then the namespace holder (all mounts go), the cgroups,
        the host mount points we created, and the registry. Errors are collected and raised
        together at the end, after every step has been tried.
        """
        began = time.monotonic()
        errors: list[str] = []

        def attempt(what: str, action: Callable[[], None]) -> None:
            try:
                action()
            except Exception as exc:  # every step runs, whatever failed before
                errors.append(f"{what}: {exc}")

        if any(is_running(r) for r in self.processes):
            attempt("drain", self._drain)
        for record in reversed(self.processes):
            if record.name == "containerd":
                attempt("leftover containers", self._remove_containers)
            attempt(record.name, functools.partial(self._terminate, record))
        attempt("sweep", self._sweep)
        if self.namespace is not None:
            attempt("mount namespace", self.namespace.close)
        if self.cgroups is not None:
            attempt("cgroups", self.cgroups.remove)
        attempt("host mount points", self._remove_created)
        attempt("registry", self.registry.stop)
        self.timings["stop"] = time.monotonic() - began
        if errors:
            raise NodeError("; ".join(errors))

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def created_host_dirs(self) -> list[Path]:
        """Host directories this node created (mount points), removed again by :meth:`stop`."""
        return list(self._created)

    # -- starting --------------------------------------------------------------------------

    def _write_files(self) -> None:
        layout = self.layout
        for directory in (
            layout.logs,
            layout.tmp,
            layout.images,
            layout.containerd_root,
            layout.containerd_state,
            layout.containerd_opt,
            layout.shim_sockets,
            layout.runc_root,
            layout.certs_d,
            layout.cdi,
            layout.cni_bin,
            layout.cni_conf,
            layout.kubelet_root,
            layout.kubelet_cert_dir,
            layout.pod_logs,
            layout.volume_plugins,
            layout.device_plugins,
            layout.container_logs,
            layout.tunables,
            layout.workdir / "home",
        ):
            directory.mkdir(parents=True, exist_ok=True)
        loopback = layout.cni_bin / "loopback"
        loopback.unlink(missing_ok=True)
        loopback.symlink_to(self.bin_dir / "loopback")
        write_atomic(
            layout.cni_conf / "10-loopback.conflist",
            json.dumps(loopback_conflist(), indent=2).encode(),
            0o644,
        )
        for tunable, value in KERNEL_TUNABLES.items():
            write_atomic(layout.tunables / tunable.replace("/", "."), f"{value}\n".encode(), 0o644)
        self._write_kubelet_pki()

    def _write_kubelet_pki(self) -> None:
        """Serving certificate from the control plane's serving CA (the API server checks
        it when it calls the kubelet); client identity ``system:node:<name>``."""
        now = datetime.now(UTC)
        pki_dir = self.plane.pki_dir
        serving_ca = pki.load((pki_dir / "ca.crt").read_bytes(), (pki_dir / "ca.key").read_bytes())
        hosts = ["127.0.0.1"] + ([] if _is_ip(self.name) else [self.name])
        serving = pki.issue(serving_ca, self.name, now=now, days=30, hosts=hosts)
        write_atomic(self.layout.kubelet_cert_dir / "kubelet.crt", serving.cert_pem, 0o644)
        write_atomic(self.layout.kubelet_cert_dir / "kubelet.key", serving.key_pem, 0o600)
        kubeconfig = self.plane.kubeconfig_for_user(f"system:node:{self.name}", ["system:nodes"])
        write_atomic(self.layout.kubelet_kubeconfig, kubeconfig.read_bytes(), 0o600)

    def _make_cgroups(self) -> None:
        self.cgroups = CgroupTree.create(f"pullsecret-node-{uuid4().hex[:8]}")

    def _make_namespace(self) -> None:
        """The namespace and what the daemons see differently in it."""
        layout = self.layout
        for target in HARD_CODED:
            self._mkdirs(Path(target))
        shim_point = next((p for p in SHIM_MOUNT_POINTS if Path(p).is_dir()), None)
        if shim_point is None:
            raise NodeError(f"none of {SHIM_MOUNT_POINTS} exists for the shim sockets")
        self._shim_dir = shim_point
        namespace = MountNamespace.create(layout.logs / "mount-namespace.log", layout.workdir)
        self.namespace = namespace
        for tunable in KERNEL_TUNABLES:
            namespace.bind(layout.tunables / tunable.replace("/", "."), Path("/proc/sys", tunable))
        namespace.bind(layout.var_lib_kubelet, Path(HARD_CODED[0]))
        namespace.bind(layout.container_logs, Path(HARD_CODED[1]))
        namespace.bind(layout.shim_sockets, Path(shim_point))

    def _mkdirs(self, target: Path) -> None:
        """Create ``target`` and any missing parents, remembering exactly which."""
        missing = [p for p in (target, *target.parents) if not p.exists()]
        for directory in reversed(missing):
            directory.mkdir()
            self._created.append(directory)

    def _env(self) -> dict[str, str]:
        """The daemons' whole environment: no proxy, no docker config of the host's user
        (the kubelet reads ``$HOME/.docker/config.json`` as node-wide credentials)."""
        return {
            "PATH": f"{self.bin_dir}:/usr/sbin:/usr/bin:/sbin:/bin",
            "TMPDIR": str(self.layout.tmp),
            "HOME": str(self.layout.workdir / "home"),
        }

    def _spawn_inside(self, name: str, args: Sequence[str]) -> ProcessRecord:
        if self.namespace is None:
            raise NodeError("no mount namespace")
        exe = str((self.bin_dir / name).resolve())
        cwd = self.layout.workdir
        log = self.layout.logs / f"{name}.log"
        log.unlink(missing_ok=True)
        child, record = spawn(
            name,
            self.namespace.enter([exe, *args], cwd),
            exe=exe,
            log=log,
            cwd=cwd,
            env=self._env(),
        )
        self.processes.append(record)
        self._children[record.pid] = child
        return record

    def _start_containerd(self) -> None:
        layout = self.layout
        write_atomic(
            layout.containerd_config,
            containerd_config(
                layout,
                runc=self.bin_dir / "runc",
                shim_socket_dir=self._shim_dir,
                sandbox_image=SANDBOX_IMAGE,
                stream_port=self.ports.stream,
            ).encode(),
            0o644,
        )
        self.trust_registry(self.registry)
        self._spawn_inside("containerd", ["--config", str(layout.containerd_config)])
        self._wait_for(lambda: bool(self.ctr("version")), "containerd", CONTAINERD_TIMEOUT)

    def _import_sandbox_image(self) -> None:
        tarball = make_image(
            self.bin_dir, self.bin_dir / "sleeper", SANDBOX_IMAGE, self.layout.images / "pause.tar"
        )
        self.ctr("images", "import", str(tarball))

    def _start_kubelet(self) -> None:
        layout = self.layout
        if self.cgroups is None:
            raise NodeError("no cgroup tree")
        config = kubelet_config(
            layout,
            port=self.ports.kubelet,
            healthz_port=self.ports.kubelet_healthz,
            client_ca=self.plane.pki_dir / "client-ca.crt",
            tls_cert=layout.kubelet_cert_dir / "kubelet.crt",
            tls_key=layout.kubelet_cert_dir / "kubelet.key",
            cgroup_root=self.cgroups.path,
        )
        write_atomic(layout.kubelet_config, yaml.safe_dump(config).encode(), 0o644)
        self.kubelet_started = time.monotonic()
        self._spawn_inside(
            "kubelet",
            [
                f"--config={layout.kubelet_config}",
                f"--kubeconfig={layout.kubelet_kubeconfig}",
                f"--root-dir={layout.kubelet_root}",
                f"--cert-dir={layout.kubelet_cert_dir}",
                f"--hostname-override={self.name}",
                *([] if _is_ip(self.name) else ["--node-ip=127.0.0.1"]),
                "--v=2",
            ],
        )

    def _node(self) -> dict[str, Any] | None:
        status, body = self.plane.get(f"/api/v1/nodes/{self.name}")
        if status != 200:
            return None
        node: dict[str, Any] = json.loads(body)
        return node

    def _wait_registered(self) -> None:
        self._wait_for(lambda: self._node() is not None, "node registered", NODE_REGISTERED_TIMEOUT)

    def ready(self) -> bool:
        """The node's Ready condition is True."""
        node = self._node() or {}
        return any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (node.get("status") or {}).get("conditions") or []
        )

    def _wait_ready(self) -> None:
        self._wait_for(self.ready, "node Ready", NODE_READY_TIMEOUT)

    # -- stopping --------------------------------------------------------------------------

    def _drain(self) -> None:
        """Delete this node's pods (at once) and wait until the kubelet has stopped their
        containers, so that the runtime tears them down the normal way. Without a reachable
        API server (or kubelet) there is no one to ask: the ctr clean-up that follows does it.
        """
        try:
            status, body = self.plane.get(
                f"/api/v1/pods?fieldSelector=spec.nodeName%3D{self.name}", timeout=5.0
            )
        except (OSError, http.client.HTTPException):
            return
        if status != 200 or not any(r.name == "kubelet" and is_running(r) for r in self.processes):
            return
        from kubernetes import client  # noqa: PLC0415 - heavy import only tests need

        with self.plane.api_client() as api:
            core = client.CoreV1Api(api)
            for item in json.loads(body).get("items", []):
                meta = item["metadata"]
                with contextlib.suppress(client.ApiException):
                    core.delete_namespaced_pod(
                        meta["name"], meta["namespace"], grace_period_seconds=0
                    )
        self._wait_for(lambda: not self.tasks(), "pods' containers stopped", DRAIN_TIMEOUT)

    def _remove_containers(self) -> None:
        """What the kubelet left: kill and delete every task, then every container."""
        if not any(r.name == "containerd" and is_running(r) for r in self.processes):
            return
        for task in self.tasks():
            with contextlib.suppress(NodeError):
                self.ctr("tasks", "rm", "--force", task)
        for container in self.ctr("containers", "ls", "--quiet").split():
            with contextlib.suppress(NodeError):
                self.ctr("containers", "rm", container)

    def _terminate(self, record: ProcessRecord) -> None:
        stop(record, self._children.pop(record.pid, None), STOP_TIMEOUT)

    def _sweep(self) -> None:
        """Kill (by PID, after checking identity) every process still in the namespace or the
        cgroup tree: shims and containers nobody else ended."""
        for _ in range(3):
            pids: set[int] = set()
            if self.namespace is not None:
                pids |= self.namespace.members()
            if self.cgroups is not None:
                pids |= self.cgroups.pids()
            records = [r for r in (adopt("leftover", pid) for pid in sorted(pids)) if r]
            if not records:
                return
            for record in records:
                self.swept.append(f"{Path(record.exe).name} (pid {record.pid})")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(record.pid, 9)
            for record in records:
                terminate(record, 5.0)
        raise NodeError("processes keep appearing in the node's namespace or cgroups")

    def _remove_created(self) -> None:
        """rmdir (never rm -r) the host directories we created, deepest first."""
        problems = []
        for directory in reversed(self._created):
            try:
                directory.rmdir()
            except FileNotFoundError:
                pass
            except OSError as exc:
                problems.append(f"{directory}: {exc.strerror}")
        self._created = []
        if problems:
            raise NodeError("host directories not removed: " + "; ".join(problems))

    # -- probing ---------------------------------------------------------------------------

    def _wait_for(self, check: Callable[[], bool], what: str, timeout: float) -> None:
        """Poll ``check`` until true; fail fast if one of our daemons died meanwhile."""
        deadline = time.monotonic() + timeout
        for _ in range(int(timeout / POLL_INTERVAL) + 1):
            for record in self.processes:
                if not is_running(record):
                    raise NodeError(
                        f"{record.name} (pid {record.pid}) exited while waiting for {what}"
                    )
            with contextlib.suppress(NodeError, OSError, ValueError, ControlPlaneError):
                if check():
                    return
            if time.monotonic() >= deadline:
                break
            time.sleep(POLL_INTERVAL)
        raise NodeError(f"timed out after {timeout:.0f}s waiting for {what}")

    def ctr(self, *args: str, timeout: float = 120.0) -> str:
        """Run ``ctr`` against this node's containerd (CRI namespace), in the node's mount
        namespace (an image import unpacks layers); its stdout, or :class:`NodeError`."""
        if self.namespace is None:
            raise NodeError("no mount namespace")
        argv = [
            str(self.bin_dir / "ctr"),
            f"--address={self.layout.containerd_socket}",
            f"--namespace={CRI_NAMESPACE}",
            *args,
        ]
        try:
            return self.namespace.run(argv, cwd=self.layout.workdir, timeout=timeout)
        except MountNamespaceError as exc:
            raise NodeError(str(exc)) from exc

    def tasks(self) -> dict[str, int]:
        """Container ID → PID of every task containerd runs for the node (sandboxes too)."""
        found = {}
        for line in self.ctr("tasks", "ls").splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 2 and fields[1].isdigit():
                found[fields[0]] = int(fields[1])
        return found

    def log_tails(self, lines: int = 30) -> str:
        """The last ``lines`` of every daemon's log, for failure reports."""
        parts = []
        for record in [*self.processes, *([self.registry.record] if self.registry.record else [])]:
            state = "running" if is_running(record) else "NOT running"
            parts.append(f"----- {record.name} (pid {record.pid}, {state}) {record.log}")
            parts.append(tail(Path(record.log), lines))
        return "\n".join(parts)

    # -- registries, images and pods -------------------------------------------------------

    def trust_registry(self, registry: Registry, mirrors: Sequence[Registry] = ()) -> None:
        """Write ``certs.d/<host>/hosts.toml`` so containerd trusts ``registry``'s CA
        (``mirrors`` are tried first, for pulls). containerd reads it on every pull."""
        directory = self.layout.certs_d / registry.host
        directory.mkdir(parents=True, exist_ok=True)
        text = hosts_toml(registry.host, registry.ca_file, [(m.host, m.ca_file) for m in mirrors])
        write_atomic(directory / "hosts.toml", text.encode(), 0o644)

    def push_sleeper(self, repository: str, registry: Registry | None = None) -> str:
        """Make an image of our sleeper program, push it as ``repository`` (``repo:tag``)
        with the registry's credentials, return the reference pinned by digest."""
        target = registry or self.registry
        tarball = make_image(
            self.bin_dir,
            self.bin_dir / "sleeper",
            f"{target.host}/{repository}",
            self.layout.images / f"{repository.replace('/', '_').replace(':', '_')}.tar",
            entrypoint="/app",
        )
        return target.push(tarball, repository)

    def pod(
        self,
        name: str,
        image: str,
        *,
        pull_secrets: Sequence[str] = (),
        pull_policy: str = "Always",
        labels: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """A pod bound to this node on the host network (no scheduler, no pod network)."""
        spec: dict[str, Any] = {
            "nodeName": self.name,
            "hostNetwork": True,
            "terminationGracePeriodSeconds": 5,
            "containers": [{"name": "app", "image": image, "imagePullPolicy": pull_policy}],
        }
        if pull_secrets:
            spec["imagePullSecrets"] = [{"name": s} for s in pull_secrets]
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": dict(labels or {})},
            "spec": spec,
        }

    def read_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        status, body = self.plane.get(f"/api/v1/namespaces/{namespace}/pods/{name}")
        if status != 200:
            return None
        pod: dict[str, Any] = json.loads(body)
        return pod

    def wait_for_pod(
        self,
        namespace: str,
        name: str,
        outcome: Callable[[Mapping[str, Any]], bool],
        what: str = "the expected state",
        timeout: float = 120.0,
    ) -> dict[str, Any]:
        """Poll the pod until ``outcome(pod)``; returns it. On time-out, raises
        :class:`NodeError` with the pod's last state and events."""
        last: dict[str, Any] | None = None

        def check() -> bool:
            nonlocal last
            last = self.read_pod(namespace, name)
            return last is not None and outcome(last)

        try:
            self._wait_for(check, f"pod {namespace}/{name}: {what}", timeout)
        except NodeError as exc:
            state = pod_state(last) if last else "absent"
            raise NodeError(
                f"{exc} (last state {state}; events: {self.events(namespace, name)})"
            ) from exc
        if last is None:  # pragma: no cover - check() returned True
            raise NodeError(f"pod {namespace}/{name} vanished")
        return last

    def events(self, namespace: str, name: str) -> list[str]:
        """``reason: message`` of the events about pod ``namespace/name``, oldest first."""
        path = (
            f"/api/v1/namespaces/{namespace}/events"
            f"?fieldSelector=involvedObject.kind%3DPod,involvedObject.name%3D{name}"
        )
        status, body = self.plane.get(path)
        if status != 200:
            return []
        items = sorted(
            json.loads(body).get("items", []),
            key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""),
        )
        return [f"{e.get('reason')}: {e.get('message')}" for e in items]
