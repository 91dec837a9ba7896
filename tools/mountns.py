"""A private mount namespace for the node's daemons, held open by one small process.

The kubelet and containerd mount a lot: the kubelet bind-mounts its root directory onto itself
and mounts tmpfs volumes (ServiceAccount tokens), containerd mounts overlay root filesystems and
``/dev/shm`` for every pod. In the host's namespace each of those would be one more thing to
unmount on every exit path, and a crash would leave them. Here they happen in a namespace that
exists for one node only: when its last process ends, the kernel takes every mount in it away.

The namespace also lets the node see a few paths differently from the host without changing
the host:

* the kernel tunables the kubelet insists on (``vm.overcommit_memory=1``, ``kernel.panic=10``,
  ...) are regular files bind-mounted over their ``/proc/sys`` entries, holding the values the
  kubelet wants, so it finds them "already set" and writes nothing (and anything it wrote would
  land in our file, not the kernel);
* paths the kubelet hard-codes (``/var/lib/kubelet/device-plugins``, ``/var/log/containers``)
  are directories of the test directory bind-mounted there;
* the shim socket directory, which containerd limits to 42 characters, is a short mount point.

Both daemons must be in the same namespace: runc, started by containerd's shim, bind-mounts the
volumes the kubelet mounted into the container. The holder is ``unshare --mount --propagation
private cat`` reading a pipe from us: it ends when we close the pipe or die, and the daemons we
put in the namespace (``nsenter --mount=/proc/<holder>/ns/mnt``) keep it alive until they end.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from tools.processes import ProcessError, ProcessRecord, is_running, spawn, stop

__all__ = ["MountNamespace", "MountNamespaceError", "namespace_of"]


class MountNamespaceError(RuntimeError):
    """The namespace could not be made, entered or set up."""


def _tool(name: str) -> str:
    path = shutil.which(name, path="/usr/bin:/bin:/usr/sbin:/sbin")
    if path is None:
        raise MountNamespaceError(f"{name} not found (util-linux is part of every Debian system)")
    return str(Path(path).resolve())


def namespace_of(pid: int | str) -> int | None:
    """Inode of the mount namespace of process ``pid`` ("self" for ours); None if gone."""
    try:
        return os.stat(f"/proc/{pid}/ns/mnt").st_ino
    except OSError:
        return None


class MountNamespace:
    """A mount namespace we created, its holder process, and helpers to act inside it."""

    def __init__(self, holder: subprocess.Popen[bytes], record: ProcessRecord, inode: int) -> None:
        self._holder = holder
        self.record = record
        self.inode = inode

    @classmethod
    def create(cls, log: Path, cwd: Path) -> MountNamespace:
        """Start the holder; refuse (and stop it) unless it really is in a new namespace."""
        cat = _tool("cat")
        holder, record = spawn(
            "mount-namespace",
            [_tool("unshare"), "--mount", "--propagation", "private", "--", cat],
            exe=cat,
            log=log,
            cwd=cwd,
            stdin=subprocess.PIPE,
        )
        inode = namespace_of(record.pid)
        if inode is None or inode == namespace_of("self"):
            # Never go on: every mount below would land in the host's namespace.
            with contextlib.suppress(ProcessError):
                stop(record, holder)
            raise MountNamespaceError(f"pid {record.pid} is not in a new mount namespace")
        return cls(holder, record, inode)

    @property
    def path(self) -> str:
        return f"/proc/{self.record.pid}/ns/mnt"

    def alive(self) -> bool:
        return is_running(self.record) and namespace_of(self.record.pid) == self.inode

    def enter(self, argv: Sequence[str], cwd: Path) -> list[str]:
        """``argv`` prefixed so that it runs in the namespace, in ``cwd``."""
        if not self.alive():
            raise MountNamespaceError("the namespace holder is gone")
        return [_tool("nsenter"), f"--mount={self.path}", f"--wd={cwd}", "--", *argv]

    def run(self, argv: Sequence[str], cwd: Path, timeout: float = 60.0) -> str:
        """Run ``argv`` in the namespace; its output, or :class:`MountNamespaceError`."""
        result = subprocess.run(
            self.enter(argv, cwd), capture_output=True, text=True, timeout=timeout, check=False
        )
        if result.returncode != 0:
            raise MountNamespaceError(
                f"{' '.join(argv)} failed in the node's mount namespace "
                f"(exit {result.returncode}): {result.stderr.strip()[-2000:]}"
            )
        return result.stdout

    def bind(self, source: Path, target: Path) -> None:
        """Bind-mount ``source`` over ``target``, seen only inside the namespace."""
        self.run([_tool("mount"), "--bind", str(source), str(target)], cwd=source.parent)

    def mounts(self) -> str:
        """The namespace's mount table (``/proc/<holder>/mountinfo``)."""
        return Path(f"/proc/{self.record.pid}/mountinfo").read_text()

    def members(self) -> set[int]:
        """Every process in the namespace but the holder: daemons and the shims they started.
        (Container processes have namespaces of their own; the cgroup tree finds those.)"""
        found = set()
        for entry in os.scandir("/proc"):
            if (
                entry.name.isdigit()
                and int(entry.name) != self.record.pid
                and namespace_of(entry.name) == self.inode
            ):
                found.add(int(entry.name))
        return found

    def close(self, timeout: float = 10.0) -> None:
        """End the holder. The namespace, and every mount in it, goes with its last member."""
        if self._holder.stdin is not None:
            with contextlib.suppress(OSError):
                self._holder.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._holder.wait(timeout)
        stop(self.record, self._holder, timeout)
