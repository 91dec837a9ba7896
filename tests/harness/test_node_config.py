"""The real node's promises that can be checked without running it (milliseconds).

Its configuration keeps every file under the node's directory and every listener on
loopback, and its cgroup subtree is under the suite's own cgroup in every hierarchy or is
refused. These read the generated files the way the daemons do (TOML, YAML-as-JSON) and the
kernel's formats as the kernel writes them.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from tools.cgroups import CgroupError, Hierarchy, hierarchies, own_paths, subtree_path
from tools.nodeconfig import NodeLayout, containerd_config, hosts_toml, kubelet_config

WORKDIR = Path("/srv/test-node")
BIN = Path("/cache/node/abc")

# /proc/self/mountinfo and /proc/self/cgroup of this machine class (hybrid, combined cpu).
MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
50 23 0:40 / /proc rw - proc proc rw
"""
PROC_CGROUP = """\
4:memory:/process_api/c68c
2:cpu,cpuacct:/
1:name=systemd:/
0::/
"""


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def absolute_paths(config: Any) -> list[str]:
    return [s for s in strings(config) if s.startswith("/")]


def test_containerd_writes_only_under_the_node_directory() -> None:
    layout = NodeLayout(WORKDIR)
    text = containerd_config(
        layout,
        runc=BIN / "runc",
        shim_socket_dir="/media",
        sandbox_image="x/pause:1",
        stream_port=1,
    )
    config = tomllib.loads(text)

    outside = [p for p in absolute_paths(config) if not PurePosixPath(p).is_relative_to(WORKDIR)]
    assert sorted(outside) == ["/cache/node/abc/runc", "/media"]  # a binary; a mount point
    assert config["version"] == 3
    runtime = config["plugins"]["io.containerd.cri.v1.runtime"]
    assert runtime["restrict_oom_score_adj"] is True, "without it every sandbox fails here"
    runc = runtime["containerd"]["runtimes"]["runc"]
    assert runc["options"]["SystemdCgroup"] is False
    assert config["plugins"]["io.containerd.nri.v1.nri"]["disable"] is True
    assert config["plugins"]["io.containerd.grpc.v1.cri"]["stream_server_address"] == "127.0.0.1"
    assert config["debug"]["address"] == config["metrics"]["address"] == ""


def test_the_kubelet_listens_on_loopback_and_writes_only_under_the_node_directory() -> None:
    layout = NodeLayout(WORKDIR)
    config = kubelet_config(
        layout,
        port=1,
        healthz_port=2,
        client_ca=WORKDIR / "ca.crt",
        tls_cert=WORKDIR / "k.crt",
        tls_key=WORKDIR / "k.key",
        cgroup_root="/process_api/c68c/pullsecret-node-1",
    )

    outside = [p for p in absolute_paths(config) if not PurePosixPath(p).is_relative_to(WORKDIR)]
    assert outside == ["/process_api/c68c/pullsecret-node-1"]  # a cgroup, not a file
    assert config["address"] == config["healthzBindAddress"] == "127.0.0.1"
    assert config["readOnlyPort"] == 0
    assert config["authentication"]["anonymous"]["enabled"] is False
    assert config["protectKernelDefaults"] is True, "never write the host's kernel tunables"
    assert config["cgroupsPerQOS"] is True, "without it pods get no cgroup parent"
    assert config["imageGCHighThresholdPercent"] == 100


def test_a_mirror_is_tried_before_the_registry_and_only_for_pulls() -> None:
    config = tomllib.loads(
        hosts_toml("127.0.0.1:5000", WORKDIR / "ca.crt", [("127.0.0.1:6000", WORKDIR / "m.crt")])
    )

    assert config["server"] == "https://127.0.0.1:5000"
    assert list(config["host"]) == ["https://127.0.0.1:6000", "https://127.0.0.1:5000"]
    assert config["host"]["https://127.0.0.1:6000"]["capabilities"] == ["pull", "resolve"]
    assert config["host"]["https://127.0.0.1:5000"]["ca"] == str(WORKDIR / "ca.crt")


def test_cgroup_mounts_and_our_paths_are_read_as_the_kernel_writes_them() -> None:
    mounted = {h.controllers: h for h in hierarchies(MOUNTINFO)}
    own = own_paths(PROC_CGROUP)

    assert set(mounted) == set(own)
    assert mounted[frozenset({"cpu", "cpuacct"})].mountpoint == Path("/sys/fs/cgroup/cpu,cpuacct")
    assert frozenset({"name=systemd"}) in mounted, "xattr is a mount option, not a controller"
    assert mounted[frozenset()].mountpoint == Path("/sys/fs/cgroup/unified")
    assert own[frozenset({"memory"})] == "/process_api/c68c"


def test_the_subtree_is_under_our_cgroup_in_every_hierarchy() -> None:
    path = subtree_path(own_paths(PROC_CGROUP), hierarchies(MOUNTINFO), "pullsecret-node-1")

    assert path == "/process_api/c68c/pullsecret-node-1"


def test_no_subtree_when_our_cgroups_diverge() -> None:
    diverging = PROC_CGROUP.replace("2:cpu,cpuacct:/", "2:cpu,cpuacct:/elsewhere")

    with pytest.raises(CgroupError, match="not under"):
        subtree_path(own_paths(diverging), hierarchies(MOUNTINFO), "pullsecret-node-1")


def test_a_mount_of_a_cgroup_namespace_maps_paths_relative_to_its_root() -> None:
    hierarchy = Hierarchy(frozenset({"memory"}), Path("/sys/fs/cgroup/memory"), "/process_api")

    assert hierarchy.directory("/process_api/c68c/x") == Path("/sys/fs/cgroup/memory/c68c/x")
