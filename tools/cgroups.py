"""A cgroup subtree the harness owns: created under the cgroup it runs in, removed after.

With ``cgroupDriver: cgroupfs`` runc puts each container at one path in every cgroup
hierarchy (each v1 hierarchy, and in hybrid mode the v2 one too). Left to its defaults that
path is ``/k8s.io/<id>``: at the root of each hierarchy, outside the cgroup the test suite was
started in, so the suite's memory and process limits no longer apply to the pods it runs, and a
crash leaves directories at the top of the host's tree. The node therefore gets one child of
our own cgroup as its kubelet's ``cgroupRoot`` (with ``cgroupsPerQOS``, so that the kubelet
really parents every pod there: without it the kubelet sends the runtime no cgroup parent).

The kubelet takes one path for all hierarchies, while a process may sit at a different path in
each (here: ``memory`` at ``/process_api/<id>``, everything else at ``/``). The subtree's path
is the deepest of our own paths plus a unique name; it is under our own cgroup in every
hierarchy only if the other paths are its ancestors, which :meth:`CgroupTree.create` checks
instead of assuming. Missing intermediate directories are created and recorded, and
:meth:`CgroupTree.remove` takes away exactly the recorded ones plus everything below the
subtree's own directory (the QoS, pod and container cgroups made there), bottom-up.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

__all__ = ["CgroupError", "CgroupTree", "Hierarchy", "hierarchies", "own_paths", "subtree_path"]

_SUPER_OPTIONS = {"rw", "ro", "noprefix", "clone_children", "xattr", "nsdelegate"}


class CgroupError(RuntimeError):
    """The subtree could not be placed under our cgroup, or not be removed."""


@dataclass(frozen=True)
class Hierarchy:
    """One mounted cgroup hierarchy."""

    controllers: frozenset[str]
    """As ``/proc/self/cgroup`` names them: ``{"cpu"}``, ``{"cpu", "cpuacct"}``,
    ``{"name=systemd"}``; empty for cgroup v2."""
    mountpoint: Path
    root: str
    """The hierarchy path mounted there (``/`` unless we run in a cgroup namespace)."""

    def directory(self, path: str) -> Path:
        """The directory of cgroup ``path`` (a hierarchy path like ``/a/b``)."""
        relative = PurePosixPath(path).relative_to(self.root)
        return self.mountpoint / relative


def hierarchies(mountinfo: str | None = None) -> list[Hierarchy]:
    """Every cgroup hierarchy mounted in our mount namespace: each v1 hierarchy, and the v2
    one if mounted next to them (hybrid mode, ``/sys/fs/cgroup/unified``), where runc places
    every container at the same path too; its key is the empty set."""
    text = mountinfo if mountinfo is not None else Path("/proc/self/mountinfo").read_text()
    found: dict[frozenset[str], Hierarchy] = {}
    for line in text.splitlines():
        before, _, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        controllers = frozenset(
            o for o in tail[2].split(",") if tail[0] == "cgroup" and o not in _SUPER_OPTIONS
        )
        # The same hierarchy may be mounted twice; the first mount is as good as any.
        found.setdefault(controllers, Hierarchy(controllers, Path(fields[4]), fields[3]))
    return list(found.values())


def own_paths(proc_cgroup: str | None = None) -> dict[frozenset[str], str]:
    """Controllers → our cgroup path in that hierarchy (v2: the empty set), from
    ``/proc/self/cgroup``."""
    text = proc_cgroup if proc_cgroup is not None else Path("/proc/self/cgroup").read_text()
    paths = {}
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        paths[frozenset(controllers.split(",")) if controllers else frozenset()] = path
    return paths


def subtree_path(own: Mapping[frozenset[str], str], mounted: Sequence[Hierarchy], name: str) -> str:
    """The one path, under our own cgroup in every mounted hierarchy, for subtree ``name``:
    the deepest of our paths plus ``name``. :class:`CgroupError` if there is none."""
    missing = [h for h in mounted if h.controllers not in own]
    if not mounted or missing:
        raise CgroupError(
            f"cannot match the cgroup mounts with /proc/self/cgroup (unmatched: "
            f"{[sorted(h.controllers) for h in missing]})"
        )
    base = max((own[h.controllers] for h in mounted), key=lambda p: len(PurePosixPath(p).parts))
    strangers = {
        ",".join(sorted(h.controllers)) or "unified": own[h.controllers]
        for h in mounted
        if not _is_under(base, own[h.controllers])
    }
    if strangers:
        raise CgroupError(
            f"no single cgroupRoot is under our cgroup in every hierarchy: {base} is not "
            f"under {strangers}"
        )
    return str(PurePosixPath(base) / name)


def _is_under(path: str, ancestor: str) -> bool:
    return PurePosixPath(path).is_relative_to(PurePosixPath(ancestor))


@dataclass
class CgroupTree:
    """``path`` in every hierarchy, under our own cgroup there."""

    path: str
    hierarchies: list[Hierarchy]
    created: list[Path] = field(default_factory=list)
    """Directories this object made, parents first (removal goes in reverse)."""

    @classmethod
    def create(cls, name: str) -> CgroupTree:
        """Make ``<deepest own path>/<name>`` in every hierarchy (``name`` must be unique)."""
        mounted = hierarchies()
        own = own_paths()
        tree = cls(subtree_path(own, mounted, name), mounted)
        try:
            for hierarchy in mounted:
                tree._make(hierarchy, own[hierarchy.controllers])
        except BaseException:
            with contextlib.suppress(CgroupError):
                tree.remove()
            raise
        return tree

    def _make(self, hierarchy: Hierarchy, own: str) -> None:
        relative = PurePosixPath(self.path).relative_to(own)
        current = PurePosixPath(own)
        for part in relative.parts:
            current /= part
            directory = hierarchy.directory(str(current))
            try:
                directory.mkdir()
            except FileExistsError:
                if current == PurePosixPath(self.path):
                    raise CgroupError(f"{directory} exists already: not ours") from None
                continue
            self.created.append(directory)
            if "cpuset" in hierarchy.controllers:
                # A new cpuset cgroup has no CPUs and no memory nodes: nothing could join it.
                for knob in ("cpuset.cpus", "cpuset.mems"):
                    (directory / knob).write_text((directory.parent / knob).read_text())

    def directories(self) -> Iterator[Path]:
        """The subtree's directory in each hierarchy and everything below, deepest first."""
        for hierarchy in self.hierarchies:
            top = hierarchy.directory(self.path)
            if not top.is_dir():
                continue
            for current, _, _ in os.walk(top, topdown=False):
                yield Path(current)

    def pids(self) -> set[int]:
        """Every process in the subtree, in any hierarchy."""
        found: set[int] = set()
        for directory in self.directories():
            with contextlib.suppress(OSError):
                found.update(int(p) for p in (directory / "cgroup.procs").read_text().split())
        return found

    def remove(self, timeout: float = 10.0) -> None:
        """rmdir the subtree and the directories we created, bottom-up; only empty cgroups can
        go, so call it once every process in it is gone. Retries briefly: the kernel releases
        a cgroup a moment after its last process was reaped."""
        deadline = time.monotonic() + timeout
        errors: list[str] = []
        for _ in range(int(timeout / 0.1) + 1):
            left = [d for d in (*self.directories(), *reversed(self.created)) if d.is_dir()]
            errors = []
            for directory in left:
                try:
                    directory.rmdir()
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    errors.append(f"{directory}: {exc.strerror}")
            if not errors:
                self.created.clear()
                return
            if time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        raise CgroupError("cgroups left behind: " + "; ".join(errors))
