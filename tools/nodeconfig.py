"""What the real node's daemons are told: pure functions from paths and ports to config text.

Every setting that keeps the node inside its test directory, on loopback, and off the host's
kernel tunables, cgroups and firewall is here, each with the reason it is needed on this machine
class (Debian 12, cgroup v1, root without CAP_SYS_RESOURCE, no iptables); the measurements
behind them are in ``/work/shared/notes/real-node.md``. :mod:`tools.node` writes the files and
starts the processes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "KERNEL_TUNABLES",
    "NodeLayout",
    "containerd_config",
    "hosts_toml",
    "kubelet_config",
    "loopback_conflist",
]

#: The ``/proc/sys`` entries the kubelet checks at start, with the values it wants
#: (``setupKernelTunables`` in pkg/kubelet/cm/container_manager_linux.go). The node shows the
#: kubelet files with these values in place of the real entries (see :mod:`tools.mountns`),
#: and runs it with ``protectKernelDefaults: true``, so a list that fell out of date with the
#: kubelet makes it refuse to start instead of writing to the host's kernel.
KERNEL_TUNABLES: Mapping[str, int] = {
    "vm/overcommit_memory": 1,
    "vm/panic_on_oom": 0,
    "kernel/panic": 10,
    "kernel/panic_on_oops": 1,
    "kernel/keys/root_maxkeys": 1000000,
    "kernel/keys/root_maxbytes": 25000000,
}


@dataclass(frozen=True)
class NodeLayout:
    """Where everything of one node lives: all of it under ``workdir``."""

    workdir: Path

    def _d(self, *parts: str) -> Path:
        return self.workdir.joinpath(*parts)

    @property
    def logs(self) -> Path:
        return self._d("logs")

    @property
    def pki(self) -> Path:
        return self._d("pki")

    @property
    def tmp(self) -> Path:
        """``TMPDIR`` of the daemons: temporary mounts and files stay in the test directory."""
        return self._d("tmp")

    @property
    def images(self) -> Path:
        return self._d("images")

    # containerd
    @property
    def containerd_config(self) -> Path:
        return self._d("containerd", "config.toml")

    @property
    def containerd_root(self) -> Path:
        return self._d("containerd", "root")

    @property
    def containerd_state(self) -> Path:
        return self._d("containerd", "state")

    @property
    def containerd_socket(self) -> Path:
        return self._d("containerd", "containerd.sock")

    @property
    def containerd_opt(self) -> Path:
        return self._d("containerd", "opt")

    @property
    def shim_sockets(self) -> Path:
        """Shim sockets; the daemons see it at a short mount point (see :mod:`tools.node`)."""
        return self._d("containerd", "s")

    @property
    def runc_root(self) -> Path:
        return self._d("containerd", "runc")

    @property
    def certs_d(self) -> Path:
        """containerd's ``registry.config_path``: ``<host:port>/hosts.toml`` per registry."""
        return self._d("containerd", "certs.d")

    @property
    def cdi(self) -> Path:
        return self._d("containerd", "cdi")

    @property
    def cni_bin(self) -> Path:
        return self._d("cni", "bin")

    @property
    def cni_conf(self) -> Path:
        return self._d("cni", "net.d")

    # kubelet
    @property
    def kubelet_root(self) -> Path:
        return self._d("kubelet", "root")

    @property
    def kubelet_config(self) -> Path:
        return self._d("kubelet", "config.yaml")

    @property
    def kubelet_kubeconfig(self) -> Path:
        return self._d("kubelet", "kubeconfig")

    @property
    def kubelet_cert_dir(self) -> Path:
        return self._d("kubelet", "pki")

    @property
    def pod_logs(self) -> Path:
        return self._d("kubelet", "pod-logs")

    @property
    def volume_plugins(self) -> Path:
        return self._d("kubelet", "volume-plugins")

    @property
    def var_lib_kubelet(self) -> Path:
        """Seen by the kubelet at ``/var/lib/kubelet``, where it hard-codes its device-plugin
        socket (``device-plugins/kubelet.sock``) whatever ``--root-dir`` says."""
        return self._d("kubelet", "var-lib-kubelet")

    @property
    def device_plugins(self) -> Path:
        return self.var_lib_kubelet / "device-plugins"

    @property
    def container_logs(self) -> Path:
        """Seen by the kubelet at the hard-coded ``/var/log/containers``."""
        return self._d("kubelet", "container-logs")

    @property
    def tunables(self) -> Path:
        """Files shown to the kubelet over the ``/proc/sys`` entries of :data:`KERNEL_TUNABLES`."""
        return self._d("sysctl")


TomlValue = str | bool | int | Sequence[str]


def _toml(value: TomlValue) -> str:
    """A TOML value. JSON's string escapes are valid TOML basic-string escapes."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | str):
        return json.dumps(value)
    return "[" + ", ".join(json.dumps(v) for v in value) + "]"


def _table(name: str, values: Mapping[str, TomlValue]) -> str:
    lines = [f"[{name}]"] + [f"  {key} = {_toml(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def containerd_config(
    layout: NodeLayout,
    *,
    runc: Path,
    shim_socket_dir: str,
    sandbox_image: str,
    stream_port: int,
) -> str:
    """containerd's ``config.toml`` (version 3, containerd 2.x plugin names)."""
    cri_runtime = 'plugins."io.containerd.cri.v1.runtime"'
    runc_runtime = f"{cri_runtime}.containerd.runtimes.runc"
    cri_images = 'plugins."io.containerd.cri.v1.images"'
    top: dict[str, TomlValue] = {
        "version": 3,
        "root": str(layout.containerd_root),
        "state": str(layout.containerd_state),
        "temp": str(layout.tmp),
    }
    return "\n".join(
        [
            "# Written by tools/node.py for one test node; everything under its directory.",
            *(f"{key} = {_toml(value)}" for key, value in top.items()),
            "",
            _table("grpc", {"address": str(layout.containerd_socket)}),
            _table("ttrpc", {"address": f"{layout.containerd_socket}.ttrpc"}),
            # No debug or metrics listener: nothing of the node listens beyond what tests use.
            _table("debug", {"address": "", "level": "info"}),
            _table("metrics", {"address": ""}),
            # NRI plugins would be looked for in /opt/nri and /etc/nri.
            _table('plugins."io.containerd.nri.v1.nri"', {"disable": True}),
            _table('plugins."io.containerd.internal.v1.opt"', {"path": str(layout.containerd_opt)}),
            # Shim sockets default to /run/containerd/s; the directory may have at most 42
            # characters, hence a short mount point inside the node's mount namespace.
            _table('plugins."io.containerd.shim.v1.manager"', {"socket_dir": shim_socket_dir}),
            _table(
                cri_runtime,
                {
                    # Root here lacks CAP_SYS_RESOURCE: runc's nsexec may not lower
                    # oom_score_adj below ours, and without this every sandbox fails with
                    # "can't get final child's PID from pipe: EOF".
                    "restrict_oom_score_adj": True,
                    "enable_selinux": False,
                    "disable_apparmor": True,
                    # Pod network namespaces (none with hostNetwork) not under /var/run/netns.
                    "netns_mounts_under_state_dir": True,
                    "cdi_spec_dirs": [str(layout.cdi)],
                },
            ),
            _table(f"{cri_runtime}.containerd", {"default_runtime_name": "runc"}),
            _table(runc_runtime, {"runtime_type": "io.containerd.runc.v2"}),
            _table(
                f"{runc_runtime}.options",
                {
                    # runc, not crun: crun 1.8 refuses this machine class's hybrid cgroups.
                    "BinaryName": str(runc),
                    "Root": str(layout.runc_root),
                    "SystemdCgroup": False,  # cgroupfs, like the kubelet: no systemd here
                },
            ),
            _table(
                f"{cri_runtime}.cni",
                {"bin_dirs": [str(layout.cni_bin)], "conf_dir": str(layout.cni_conf)},
            ),
            _table(cri_images, {"snapshotter": "overlayfs"}),
            # The sandbox image is ours, imported before the kubelet starts: nothing is ever
            # pulled from the internet.
            _table(f"{cri_images}.pinned_images", {"sandbox": sandbox_image}),
            _table(f"{cri_images}.registry", {"config_path": str(layout.certs_d)}),
            _table(
                'plugins."io.containerd.grpc.v1.cri"',
                {
                    "stream_server_address": "127.0.0.1",
                    "stream_server_port": str(stream_port),
                },
            ),
        ]
    )


def hosts_toml(host: str, ca_file: Path, mirrors: Sequence[tuple[str, Path]] = ()) -> str:
    """``certs.d/<host>/hosts.toml``: trust ``ca_file`` for ``host``; ``mirrors`` (``(host,
    ca_file)``, tried first, pull and resolve only) model a configured registry mirror."""
    lines = [f'server = "https://{host}"', ""]
    for mirror, mirror_ca in mirrors:
        lines += [
            f'[host."https://{mirror}"]',
            '  capabilities = ["pull", "resolve"]',
            f"  ca = {_toml(str(mirror_ca))}",
            "",
        ]
    lines += [
        f'[host."https://{host}"]',
        '  capabilities = ["pull", "resolve", "push"]',
        f"  ca = {_toml(str(ca_file))}",
        "",
    ]
    return "\n".join(lines)


def loopback_conflist() -> dict[str, Any]:
    """The only network the node has: enough for the kubelet to call the runtime's network
    ready, with no bridge, no IP range and no firewall rule. Pods use ``hostNetwork``."""
    return {
        "cniVersion": "1.0.0",
        "name": "pullsecret-e2e-loopback",
        "plugins": [{"type": "loopback"}],
    }


def kubelet_config(
    layout: NodeLayout,
    *,
    port: int,
    healthz_port: int,
    client_ca: Path,
    tls_cert: Path,
    tls_key: Path,
    cgroup_root: str,
) -> dict[str, Any]:
    """The KubeletConfiguration of a node that changes nothing on the host."""
    endpoint = f"unix://{layout.containerd_socket}"
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        # Loopback only, and no unauthenticated port.
        "address": "127.0.0.1",
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "tlsCertFile": str(tls_cert),
        "tlsPrivateKeyFile": str(tls_key),
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        # Only the API server (a client certificate of the control plane's CA) may call it,
        # and what it may do is asked of the API server, as in a real cluster.
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": False},
            "x509": {"clientCAFile": str(client_ca)},
        },
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": endpoint,
        "imageServiceEndpoint": endpoint,
        # cgroup v1 without systemd: the kubelet 1.35+ refuses v1 unless told otherwise.
        # Every pod goes under cgroupRoot, a child of the test suite's cgroup
        # (tools/cgroups.py), in the kubelet's usual kubepods/<qos>/pod<uid> layout. This needs
        # cgroupsPerQOS: without it the kubelet sends no cgroup parent at all and containerd
        # puts containers at /k8s.io/<id>, the root of every hierarchy. Node allocatable is
        # not enforced: no limit is written on the kubepods cgroup.
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "cgroupsPerQOS": True,
        "cgroupRoot": cgroup_root,
        "enforceNodeAllocatable": [],
        "failSwapOn": False,
        # Root here lacks CAP_SYS_RESOURCE: the kubelet may not lower its own oom_score_adj.
        "oomScoreAdj": 0,
        # Refuse to start rather than write the host's kernel tunables (see KERNEL_TUNABLES).
        "protectKernelDefaults": True,
        "podLogsDir": str(layout.pod_logs),
        "volumePluginDir": str(layout.volume_plugins),
        # A test machine's disk and memory are what they are: evict only when truly out.
        "evictionHard": {
            "memory.available": "1Mi",
            "nodefs.available": "1%",
            "nodefs.inodesFree": "1%",
            "imagefs.available": "1%",
            "imagefs.inodesFree": "1%",
        },
        # Images stay until the node goes: tests decide what is on the node.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "registerNode": True,
        "staticPodPath": "",
        "logging": {"format": "text"},
    }
