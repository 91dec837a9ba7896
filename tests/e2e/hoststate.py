"""What a real node could leave behind on the host, read so that two readings can be compared.

The node fixture promises to leave no process, mount, cgroup, kernel tunable, file outside its
directory, or firewall rule behind. :func:`snapshot` reads each of those from the host's point
of view (our mount namespace, which is the host's), and :func:`differences` says in words what
changed between two snapshots. Another node that is running the whole time (the session's)
can be left out with ``ignore``, so that its own life does not count.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path, PurePosixPath

from tools.cgroups import hierarchies, own_paths
from tools.node import HARD_CODED, SHIM_MOUNT_POINTS, Node
from tools.nodeconfig import KERNEL_TUNABLES

#: Where containerd, runc, CNI, CDI and the kubelet write by default, and the host's own
#: docker config (node-wide credentials the kubelet would use).
WATCHED_PATHS = (
    *HARD_CODED,
    *SHIM_MOUNT_POINTS,
    "/run/containerd",
    "/var/run/containerd",
    "/var/lib/containerd",
    "/etc/containerd",
    "/opt/containerd",
    "/run/runc",
    "/etc/cni",
    "/opt/cni",
    "/var/lib/cni",
    "/run/netns",
    "/etc/cdi",
    "/var/run/cdi",
    "/etc/nri",
    "/opt/nri",
    "/var/log/pods",
    "/etc/kubernetes",
    "/root/.docker",
)
#: Kernel tunables the kubelet or containerd are known to set, beside the kubelet's list.
EXTRA_SYSCTLS = (
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/route_localnet",
    "net/ipv4/ip_unprivileged_port_start",
    "net/ipv4/ping_group_range",
    "net/bridge/bridge-nf-call-iptables",
    "fs/inotify/max_user_instances",
    "fs/inotify/max_user_watches",
)
FIREWALL_TOOLS = ("iptables", "ip6tables", "iptables-legacy", "iptables-nft", "nft")
MAX_ENTRIES = 5000


@dataclass(frozen=True)
class HostState:
    """One reading of everything a node could change on the host."""

    processes: frozenset[str]
    """``pid exe`` of every process that is our child, runs a binary of the node's bin
    directory (daemons, shims), or sits in a node's cgroup tree (containers)."""
    mounts: frozenset[tuple[str, str, str]]
    """``(mount point, type, source)`` of the host's mount namespace."""
    sysctls: tuple[tuple[str, str], ...]
    cgroups: frozenset[str]
    """Every cgroup directory below our own cgroup, per hierarchy."""
    paths: tuple[tuple[str, tuple[str, ...] | None], ...]
    """Each watched path: its files (recursively), or None if it does not exist."""
    firewall: tuple[tuple[str, str], ...]


def snapshot(bin_dirs: Sequence[Path], ignore: Sequence[Node] = ()) -> HostState:
    """Read the host now. ``ignore``: nodes whose processes and cgroups do not count."""
    ignored_pids: set[int] = set()
    ignored_trees: list[str] = []
    for node in ignore:
        ignored_pids |= {r.pid for r in node.processes}
        if node.registry.record is not None:
            ignored_pids.add(node.registry.record.pid)
        if node.namespace is not None:
            ignored_pids |= node.namespace.members() | {node.namespace.record.pid}
        if node.cgroups is not None:
            ignored_pids |= node.cgroups.pids()
            ignored_trees.append(node.cgroups.path)
    return HostState(
        processes=_processes(bin_dirs, ignored_pids),
        mounts=_mounts(),
        sysctls=tuple((name, _read(Path("/proc/sys", name))) for name in _sysctl_names()),
        cgroups=_cgroups(ignored_trees),
        paths=tuple((path, _listing(Path(path))) for path in WATCHED_PATHS),
        firewall=_firewall(),
    )


def differences(before: HostState, after: HostState) -> list[str]:
    """What changed, one sentence per field (empty: nothing)."""
    found = []
    for field in fields(HostState):
        old, new = getattr(before, field.name), getattr(after, field.name)
        if old == new:
            continue
        if isinstance(old, frozenset):
            appeared, vanished = sorted(new - old)[:20], sorted(old - new)[:20]
            found.append(f"{field.name}: appeared {appeared}, vanished {vanished}")
        else:
            changed = [(k, v, dict(new).get(k)) for k, v in old if dict(new).get(k) != v]
            found.append(f"{field.name}: (name, before, after) {changed[:20]}")
    return found


def _sysctl_names() -> list[str]:
    return [*KERNEL_TUNABLES, *EXTRA_SYSCTLS]


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError as exc:
        return f"<{exc.strerror}>"


def _processes(bin_dirs: Sequence[Path], ignored: set[int]) -> frozenset[str]:
    me = os.getpid()
    own_session = os.getsid(0)
    roots = [str(d.resolve()) + "/" for d in bin_dirs]
    tree_pids = _pids_in_node_trees()
    found = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) in ignored:
            continue
        pid = int(entry.name)
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        ppid, session = int(fields[1]), int(fields[4])
        # Binaries from the shared cache run in other sessions too (another suite's control
        # plane on the same machine): only ours count.
        ours = session == own_session and any(exe.startswith(r) for r in roots)
        if ppid == me or pid in tree_pids or ours:
            found.add(f"{pid} {exe}")
    return frozenset(found)


def _node_tree_dirs() -> Iterable[Path]:
    own = own_paths()
    for hierarchy in hierarchies():
        base = hierarchy.directory(own[hierarchy.controllers])
        yield from base.glob("**/pullsecret-node-*")


def _pids_in_node_trees() -> set[int]:
    pids: set[int] = set()
    for tree in _node_tree_dirs():
        for current, _, _ in os.walk(tree):
            procs = _read(Path(current) / "cgroup.procs")
            pids |= {int(p) for p in procs.split() if p.isdigit()}
    return pids


def _mounts() -> frozenset[tuple[str, str, str]]:
    found = set()
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        before, _, after = line.partition(" - ")
        tail = after.split()
        found.add((before.split()[4], tail[0], tail[1] if len(tail) > 1 else ""))
    return frozenset(found)


def _cgroups(ignored_trees: Sequence[str]) -> frozenset[str]:
    own = own_paths()
    found = set()
    for hierarchy in hierarchies():
        start = own[hierarchy.controllers]
        base = hierarchy.directory(start)
        name = ",".join(sorted(hierarchy.controllers)) or "unified"
        for current, _, _ in os.walk(base):
            path = str(PurePosixPath(start) / Path(current).relative_to(base))
            if any(PurePosixPath(path).is_relative_to(tree) for tree in ignored_trees):
                continue
            found.add(f"{name}:{path}")
            if len(found) > MAX_ENTRIES * 4:
                break
    return frozenset(found)


def _listing(path: Path) -> tuple[str, ...] | None:
    if not path.exists() and not path.is_symlink():
        return None
    if not path.is_dir():
        return ("<file>",)
    entries = []
    for current, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            entries.append(str((Path(current) / name).relative_to(path)))
        if len(entries) > MAX_ENTRIES:
            break
    return tuple(sorted(entries))


def _firewall() -> tuple[tuple[str, str], ...]:
    tools = [(tool, str(shutil.which(tool))) for tool in FIREWALL_TOOLS]
    tables = [
        (name, _read(Path("/proc/net", name))) for name in ("ip_tables_names", "ip6_tables_names")
    ]
    return tuple(tools + tables)
