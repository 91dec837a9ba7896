"""An OCI image archive opened without a container runtime: its config, its root filesystem,
and commands run there the way a restricted pod runs them.

This machine has no container runtime, yet the image's runtime contract (numeric non-root
user, read-only root filesystem, an arbitrary UID in group 0 as OpenShift's restricted-v2 SCC
assigns, only ``/tmp`` writable) should be proven before a kubelet ever pulls the image. So:

* :func:`read_config` reads ``index.json`` → manifest → config straight from the archive, i.e.
  exactly what a registry will serve and a kubelet will run;
* :func:`unpack` applies the layers in order into a directory, honouring OCI whiteouts and
  refusing any path that would land outside it;
* :func:`run` / :func:`start` run a command in that directory inside namespaces created here
  with ``unshare --mount --pid --fork --propagation private``: the rootfs is bind-mounted onto
  itself and remounted read-only, fresh tmpfs go on ``/tmp``, ``/dev/shm`` and ``/dev`` (with
  the five character devices bound from the host), ``proc`` is the namespace's own, read-only
  bind mounts stand in for Secret/ConfigMap volumes, and ``chroot --userspec`` drops to the
  given UID:GID (no supplementary groups, no capabilities left). Every mount lives and dies with
  the namespace; nothing is ever mounted on the host.

Needs root (to create the namespaces and extract files with their owners).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import tarfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from tools.processes import adopt, stop, terminate

__all__ = [
    "ImageConfig",
    "RootfsError",
    "RootfsProcess",
    "read_config",
    "read_manifest",
    "run",
    "start",
    "unpack",
]

# The character devices a container runtime provides in /dev.
_DEVICES = ("null", "zero", "full", "random", "urandom")
_WHITEOUT = ".wh."
_OPAQUE = ".wh..wh..opq"
UNSHARE_EXIT_TIMEOUT = 10.0
"""unshare exits as soon as its child, the namespace's PID 1, has: this only bounds a hang."""


class RootfsError(RuntimeError):
    """The archive is not the OCI image we expect, or a layer tries to escape the rootfs."""


@dataclass(frozen=True)
class ImageConfig:
    """The runtime part of an OCI image config (``config`` in the config blob)."""

    user: str
    entrypoint: list[str]
    cmd: list[str]
    env: dict[str, str]
    working_dir: str
    labels: dict[str, str]
    exposed_ports: list[str]
    architecture: str
    os: str


# -- reading the archive ------------------------------------------------------------------------


def _blob(outer: tarfile.TarFile, digest: str) -> IO[bytes]:
    algorithm, _, value = digest.partition(":")
    member = outer.extractfile(f"blobs/{algorithm}/{value}")
    if member is None:
        raise RootfsError(f"blob {digest} is missing from the archive")
    return member


def _json_member(outer: tarfile.TarFile, name: str) -> Any:
    member = outer.extractfile(name)
    if member is None:
        raise RootfsError(f"{name} is missing from the archive")
    return json.load(member)


def _manifest(outer: tarfile.TarFile) -> dict[str, Any]:
    index = _json_member(outer, "index.json")
    manifests = index.get("manifests", [])
    if len(manifests) != 1:
        raise RootfsError(f"expected one manifest in index.json, found {len(manifests)}")
    manifest: dict[str, Any] = json.load(_blob(outer, manifests[0]["digest"]))
    return manifest


def read_manifest(archive: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the index.json descriptor of the single image, its manifest)."""
    with tarfile.open(archive) as outer:
        descriptor: dict[str, Any] = _json_member(outer, "index.json")["manifests"][0]
        return descriptor, _manifest(outer)


def read_config(archive: Path) -> ImageConfig:
    """The image config as a registry would serve it (no defaults filled in)."""
    with tarfile.open(archive) as outer:
        blob = json.load(_blob(outer, _manifest(outer)["config"]["digest"]))
    config = blob.get("config", {})
    env = dict(item.partition("=")[::2] for item in config.get("Env") or [])
    return ImageConfig(
        user=config.get("User", ""),
        entrypoint=list(config.get("Entrypoint") or []),
        cmd=list(config.get("Cmd") or []),
        env=env,
        working_dir=config.get("WorkingDir", ""),
        labels=dict(config.get("Labels") or {}),
        exposed_ports=sorted(config.get("ExposedPorts") or {}),
        architecture=blob.get("architecture", ""),
        os=blob.get("os", ""),
    )


# -- unpacking the layers -----------------------------------------------------------------------


def _inside(root: Path, relative: str) -> Path:
    """``root/relative`` after checking that no component (symlinks resolved as they are now)
    leads outside ``root``: a layer must never write through an absolute symlink to the host."""
    path = PurePosixPath(relative)
    if path.is_absolute() or ".." in path.parts:
        raise RootfsError(f"layer member {relative!r} is not a plain relative path")
    target = root / path
    parent = Path(os.path.realpath(target.parent))
    if parent != root and root not in parent.parents:
        raise RootfsError(f"layer member {relative!r} resolves outside the rootfs ({parent})")
    return target


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file() or (path.exists() and not path.is_dir()):
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _apply_layer(layer: IO[bytes], root: Path) -> None:
    extract_options: dict[str, Any] = {"numeric_owner": True}
    if hasattr(tarfile, "fully_trusted_filter"):
        # Python 3.12+: keep modes and owners exactly (sticky /tmp, g=u for OpenShift); the
        # paths were checked by _inside() already.
        extract_options["filter"] = "fully_trusted"
    with tarfile.open(fileobj=layer, mode="r:*") as tar:
        members = tar.getmembers()
        # Whiteouts apply to the layers below; handle them before this layer's own entries.
        for member in members:
            name = PurePosixPath(member.name)
            if name.name == _OPAQUE:
                directory = _inside(root, str(name.parent))
                if directory.is_dir():
                    for child in directory.iterdir():
                        _remove(child)
            elif name.name.startswith(_WHITEOUT):
                _remove(_inside(root, str(name.parent / name.name[len(_WHITEOUT) :])))
        for member in members:
            relative = str(PurePosixPath(member.name))  # "./etc/x" -> "etc/x", "./" -> "."
            if relative == "." or PurePosixPath(relative).name.startswith(_WHITEOUT):
                continue
            target = _inside(root, relative)
            # A runtime replaces what a lower layer had, never writes through it.
            if target.is_symlink() or (
                target.exists() and not (target.is_dir() and member.isdir())
            ):
                _remove(target)
            tar.extract(member, root, **extract_options)


def unpack(archive: Path, dest: Path) -> Path:
    """Apply the image's layers, in order, into the new directory ``dest``; return it."""
    dest.mkdir(parents=True)
    root = Path(os.path.realpath(dest))
    with tarfile.open(archive) as outer:
        for layer in _manifest(outer)["layers"]:
            _apply_layer(_blob(outer, layer["digest"]), root)
    return root


# -- running a command in the rootfs ------------------------------------------------------------


def _script(
    rootfs: Path,
    argv: Sequence[str],
    *,
    uid: int,
    gid: int,
    env: Mapping[str, str],
    workdir: str,
    binds: Mapping[str, Path],
) -> str:
    """The shell run as the new namespaces' first process (PID 1 until it execs the command)."""
    q = shlex.quote
    r = q(str(rootfs))
    lines = [
        "set -eu",
        # A mount of the rootfs that this namespace owns, so it can be made read-only.
        f"mount --bind {r} {r}",
        f"mount -t proc -o nosuid,nodev,noexec proc {r}/proc",
        f"mount -t tmpfs -o mode=0755,nosuid,size=1m pullsecret-dev {r}/dev",
    ]
    for device in _DEVICES:
        lines += [f": > {r}/dev/{device}", f"mount --bind /dev/{device} {r}/dev/{device}"]
    lines += [
        f"ln -s /proc/self/fd {r}/dev/fd",
        # These are paths inside the image's rootfs (S108 is about the host's /tmp).
        f"mkdir {r}/dev/shm",  # noqa: S108
        f"mount -t tmpfs -o mode=1777,nosuid,nodev,size=64m pullsecret-shm {r}/dev/shm",  # noqa: S108
        # The chart's emptyDir on /tmp: the one writable place.
        f"mount -t tmpfs -o mode=1777,nosuid,nodev,size=256m pullsecret-tmp {r}/tmp",  # noqa: S108
    ]
    for target, source in binds.items():
        inside = q(f"{rootfs}/{target.lstrip('/')}")
        if source.is_dir():
            lines.append(f"mkdir -p {inside}")
        else:
            lines += [f"mkdir -p $(dirname {inside})", f"[ -e {inside} ] || : > {inside}"]
        lines += [
            f"mount --bind {q(str(source))} {inside}",
            f"mount -o remount,bind,ro {inside}",
        ]
    assignments = " ".join(q(f"{k}={v}") for k, v in env.items())
    lines += [
        f"mount -o remount,bind,ro {r}",
        # chroot first (it needs CAP_SYS_CHROOT), then the image's own env switches to the
        # working directory with exactly the given environment.
        f"exec chroot --userspec={uid}:{gid} {r} /usr/bin/env -i -C {q(workdir)} "
        f"{assignments} {' '.join(q(a) for a in argv)}",
    ]
    return "\n".join(lines)


def _command(rootfs: Path, argv: Sequence[str], **options: Any) -> list[str]:
    return [
        "unshare",
        "--mount",
        "--pid",
        "--fork",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        _script(rootfs, argv, **options),
    ]


def run(
    rootfs: Path,
    argv: Sequence[str],
    *,
    uid: int,
    gid: int,
    env: Mapping[str, str],
    workdir: str = "/",
    binds: Mapping[str, Path] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in ``rootfs`` as ``uid:gid`` with a read-only root; wait for it."""
    return subprocess.run(
        _command(rootfs, argv, uid=uid, gid=gid, env=env, workdir=workdir, binds=dict(binds or {})),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class RootfsProcess:
    """A long-running command started by :func:`start`; stop it with :meth:`stop`.

    ``process`` is the ``unshare`` we started; the command itself is its only child, the
    namespace's PID 1, which is signalled by its host PID (never by name)."""

    process: subprocess.Popen[bytes]
    log: Path

    def command_pid(self) -> int | None:
        """Host PID of the namespace's first process (the command, once it has exec'd)."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        with contextlib.suppress(OSError, ValueError):
            pids = children.read_text().split()
            return int(pids[0]) if pids else None
        return None

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM the command (as the kubelet does), wait, then SIGKILL; return unshare's exit
        status. Killing PID 1 of the namespace ends every process in it.

        The command is not our child (unshare's), so it is signalled by its record: a PID
        the kernel gave to another process after the command ended is never hit."""
        pid = self.command_pid()
        command = adopt("rootfs command", pid) if pid is not None else None
        if command is not None:
            terminate(command, timeout)
            with contextlib.suppress(subprocess.TimeoutExpired):
                return self.process.wait(UNSHARE_EXIT_TIMEOUT)  # it exits with its child
        unshare = adopt("unshare", self.process.pid)  # ours and unreaped: its PID is stable
        if unshare is not None:
            stop(unshare, self.process, timeout)
        return self.process.wait(5)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start(
    rootfs: Path,
    argv: Sequence[str],
    *,
    uid: int,
    gid: int,
    env: Mapping[str, str],
    log: Path,
    workdir: str = "/",
    binds: Mapping[str, Path] | None = None,
) -> RootfsProcess:
    """Start ``argv`` in ``rootfs`` like :func:`run`, without waiting; output goes to ``log``."""
    with log.open("wb") as handle:
        process = subprocess.Popen(
            _command(
                rootfs, argv, uid=uid, gid=gid, env=env, workdir=workdir, binds=dict(binds or {})
            ),
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    started = RootfsProcess(process=process, log=log)
    # Give the namespace a moment to exist, so command_pid() has a child to report.
    for _ in range(50):
        if started.command_pid() is not None or not started.running():
            break
        time.sleep(0.02)
    return started
