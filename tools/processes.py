"""The processes the harness starts: spawn, identify, stop, read their logs. Only by record.

Every process the control plane, the node, the demo and the e2e tests start is described by a
:class:`ProcessRecord`: its PID, the executable it runs and its kernel start time (field 22 of
``/proc/<pid>/stat``). A PID alone is not an identity: once a process is gone and reaped the
kernel hands its PID to the next process, and a ``kill`` by PID would then hit a stranger (a
state file left by ``up`` is read long after). Before any signal, :func:`is_running` checks that
the PID still has the recorded start time and executable; nothing is ever looked up or killed
by name or command line.

* :func:`spawn` starts a command with its output appended to a log file and records it;
  :class:`Child` keeps the ``Popen`` (for the exit status) next to the record.
* :func:`adopt` records a live process we own but did not start (a shim our containerd
  started, or ``tools.demo up`` itself, for ``down``).
* :func:`terminate` (SIGTERM, wait, SIGKILL) and :func:`kill` (SIGKILL) signal exactly the
  recorded process; :func:`stop` also collects a child's exit status.
* :func:`tail` reads the last lines of a log without reading a whole large file.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "POLL_INTERVAL",
    "STOP_TIMEOUT",
    "Child",
    "ProcessError",
    "ProcessRecord",
    "adopt",
    "is_running",
    "kill",
    "spawn",
    "stop",
    "tail",
    "terminate",
]

STOP_TIMEOUT = 15.0
"""Seconds a process gets to exit after SIGTERM before SIGKILL (every component we run exits
in well under a second when healthy; the bound only ends a hung one)."""
KILL_TIMEOUT = 5.0
"""Seconds to wait for a SIGKILLed process to disappear (the kernel takes milliseconds)."""
POLL_INTERVAL = 0.1
"""Seconds between two looks at a process (or a readiness probe of one) while waiting."""
TAIL_BYTES = 256 * 1024
"""How much of a log's end :func:`tail` reads: enough for any number of lines a report shows."""


class ProcessError(RuntimeError):
    """A process did not start, or survived SIGKILL; the message carries its log's tail."""


@dataclass(frozen=True)
class ProcessRecord:
    """One process we started: enough to find it again, and to be sure it is still ours.

    Plain data (``dataclasses.asdict`` / ``ProcessRecord(**d)``) so that ``up`` commands can
    write it to a state file and ``down`` commands in another process can act on it.
    """

    name: str
    """Component name, also the log file's stem (``etcd``, ``kube-apiserver``, ...)."""
    pid: int
    exe: str
    """Resolved path of the executable, compared with ``/proc/<pid>/exe`` before signalling."""
    start_ticks: int
    """Field 22 of ``/proc/<pid>/stat``: tells a reused PID from ours."""
    log: str
    """Path of the file receiving the process's stdout and stderr ("" for adopted ones)."""


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """``(state, start_ticks)`` of a live PID, or None if there is no such process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


def _proc_exe(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/exe").removesuffix(" (deleted)")
    except OSError:
        return None


def _proc_argv0(pid: int) -> str | None:
    """For processes whose ``exe`` link we may not read (another user's, e.g. a setuid shim)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0].decode()
    except (OSError, UnicodeDecodeError):
        return None


def _record(name: str, pid: int, exe: str, log: str) -> ProcessRecord | None:
    stat = _proc_stat(pid)
    return ProcessRecord(name, pid, exe, stat[1], log) if stat is not None else None


def is_running(record: ProcessRecord) -> bool:
    """True if ``record.pid`` is alive and is still the process we recorded (not a reuse).

    A zombie counts as gone: it runs nothing, and only its parent's wait can remove it.
    """
    stat = _proc_stat(record.pid)
    if stat is None or stat[0] in ("Z", "X") or stat[1] != record.start_ticks:
        return False
    exe = _proc_exe(record.pid)
    if exe is not None:
        return exe == record.exe
    return _proc_argv0(record.pid) == record.exe


def _gone(record: ProcessRecord, child: subprocess.Popen[bytes] | None) -> bool:
    """Whether the process has exited, collecting its exit status if it is our child.

    With its ``Popen`` (our child, unreaped: its PID cannot be reused) the answer is the exit
    status itself, and ``returncode`` keeps it (a bare ``waitpid`` would take it, and
    ``Popen`` would then report 0). Without it (a process ``up`` started, or one we adopted)
    /proc decides, after reaping it in case it is our child all the same: gone is no such PID,
    a zombie, or another start time. Not :func:`is_running`: an exiting process has already
    lost its ``exe`` link and ``cmdline`` while it still runs its exit (CI once saw a ``sleep``
    alive after ``terminate`` returned), and PID plus start time is an identity on its own."""
    if child is not None:
        return child.poll() is not None
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(record.pid, os.WNOHANG)
    stat = _proc_stat(record.pid)
    return stat is None or stat[0] in ("Z", "X") or stat[1] != record.start_ticks


def _wait_gone(
    record: ProcessRecord, child: subprocess.Popen[bytes] | None, timeout: float
) -> bool:
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / POLL_INTERVAL) + 1):
        if _gone(record, child):
            return True
        if time.monotonic() >= deadline:
            break
        time.sleep(POLL_INTERVAL)
    return False


def _signal_until_gone(
    record: ProcessRecord,
    child: subprocess.Popen[bytes] | None,
    steps: Sequence[tuple[signal.Signals, float]],
) -> None:
    for sig, wait in steps:
        if _wait_gone(record, child, 0):
            return
        # Our unreaped child's PID cannot be someone else's; any other PID is signalled only
        # while it is still the recorded program. One already exiting (no exe link any more)
        # is waited for; one that runs another program now is not ours to stop.
        if child is not None or is_running(record):
            with contextlib.suppress(ProcessLookupError):
                os.kill(record.pid, sig)
        elif _proc_exe(record.pid) is not None:
            return
        if _wait_gone(record, child, wait):
            return
    raise ProcessError(f"{record.name} (pid {record.pid}) survived SIGKILL")


def terminate(record: ProcessRecord, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM ``record``'s process, wait up to ``timeout``, then SIGKILL. Never another PID.

    Returns at once if the process is already gone (or the PID is someone else's now);
    raises :class:`ProcessError` if it survives SIGKILL. For a process whose ``Popen`` we
    hold, :func:`stop` keeps its exit status.
    """
    stop(record, None, timeout)


def stop(
    record: ProcessRecord,
    child: subprocess.Popen[bytes] | None = None,
    timeout: float = STOP_TIMEOUT,
) -> None:
    """:func:`terminate`, reaping through ``child`` (our ``Popen`` of it, if we hold one), so
    that it leaves no zombie and ``child.returncode`` is its real exit status."""
    steps = ((signal.SIGTERM, timeout), (signal.SIGKILL, KILL_TIMEOUT))
    _signal_until_gone(record, child, steps)


def kill(record: ProcessRecord, child: subprocess.Popen[bytes] | None = None) -> None:
    """SIGKILL ``record``'s process and wait until it is gone (a crash, for fault tests);
    ``child`` as for :func:`stop`."""
    _signal_until_gone(record, child, ((signal.SIGKILL, KILL_TIMEOUT),))


def spawn(
    name: str,
    argv: Sequence[str],
    *,
    log: Path,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    detach: bool = False,
    exe: str | None = None,
    stdin: int = subprocess.DEVNULL,
    exec_timeout: float = 10.0,
) -> tuple[subprocess.Popen[bytes], ProcessRecord]:
    """Start ``argv`` with stdout and stderr appended to ``log`` and return its record.

    ``exe`` names the program the process ends up running when ``argv[0]`` is a wrapper that
    execs it (``nsenter``, ``unshare``) or a script (a console script runs the Python
    interpreter: pass ``sys.executable``); without ``exe`` it is ``argv[0]``, resolved. The
    record names that program, since :func:`is_running` compares it with ``/proc/<pid>/exe``,
    so this returns only once the exec happened (bounded): until then the forked child still
    runs our interpreter, and would not count as running. An exec that never comes (the
    wrapper failed) raises :class:`ProcessError` with the log's tail. ``detach`` starts a new
    session, so the process outlives ours (``up`` commands) and a Ctrl-C does not reach it.
    """
    final = str(Path(exe or argv[0]).resolve())
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as sink:
        child = subprocess.Popen(
            list(argv),
            stdin=stdin,
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=None if env is None else dict(env),
            start_new_session=detach,
        )
    # An unreaped child keeps its PID, so these reads are of the process we started.
    deadline = time.monotonic() + exec_timeout
    for _ in range(int(exec_timeout / POLL_INTERVAL) + 1):
        if _proc_exe(child.pid) == final:
            record = _record(name, child.pid, final, str(log))
            if record is not None and child.poll() is None:
                return child, record
        if child.poll() is not None or time.monotonic() >= deadline:
            break
        time.sleep(POLL_INTERVAL / 5)
    code = child.poll()
    if code is None:
        child.kill()
        child.wait(KILL_TIMEOUT)
    raise ProcessError(
        f"{name} did not start {final} (exit {code}); last lines of {log}:\n{tail(log, 20)}"
    )


def adopt(name: str, pid: int) -> ProcessRecord | None:
    """A record for a live process we own but did not spawn (e.g. a container shim our
    containerd started, or this very process for a later ``down``), so that
    :func:`terminate` can stop it with the same identity checks. None if ``pid`` is gone."""
    exe = _proc_exe(pid) or _proc_argv0(pid)
    return _record(name, pid, exe, "") if exe is not None else None


def tail(path: Path, lines: int) -> str:
    """The last ``lines`` lines of ``path`` (reading at most its last 256 KiB): "" if nothing
    was logged yet, a note instead of an exception if it cannot be read (failure reports
    must not fail themselves)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - TAIL_BYTES))
            data = handle.read()
    except FileNotFoundError:
        return ""
    except OSError as exc:
        return f"(cannot read {path}: {exc})"
    return "\n".join(data.decode(errors="replace").splitlines()[-lines:])


@dataclass
class Child:
    """A process we spawned and wait for: its ``Popen`` (exit status, PID for tests that look
    at its children) and its record (identity for every signal)."""

    process: subprocess.Popen[bytes]
    record: ProcessRecord

    @classmethod
    def spawn(
        cls,
        name: str,
        argv: Sequence[str],
        *,
        log: Path,
        cwd: Path,
        env: Mapping[str, str] | None = None,
        exe: str | None = None,
    ) -> Child:
        """:func:`spawn` in our session (it dies with a Ctrl-C of the test run)."""
        process, record = spawn(name, argv, log=log, cwd=cwd, env=env, exe=exe)
        return cls(process, record)

    @property
    def pid(self) -> int:
        return self.record.pid

    def exit_code(self) -> int | None:
        """The exit status once it has exited, else None."""
        return self.process.poll()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM, wait up to ``timeout``, SIGKILL; collect the status. Idempotent."""
        stop(self.record, self.process, timeout)

    def kill(self) -> None:
        """SIGKILL (no chance to clean up, as in a crash); collect the status. Idempotent."""
        kill(self.record, self.process)

    def log_tail(self, lines: int = 40) -> str:
        return tail(Path(self.record.log), lines)
