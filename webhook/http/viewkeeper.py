"""The master's half of the pod's view keeper: fork it from the preloaded master, restart it.

The keeper itself (``webhook.k8s.viewkeeper``) is the one process of the pod that watches the
API server. It used to be ``posix_spawn``-ed as a fresh interpreter, so that nothing of the
master crossed a fork, and so it shared none of the ~65 MiB of modules the master imports
before forking the workers (``gunicorn.conf.py``): at 10,000 namespaces it was the pod's
largest process. Now it is forked from that same preloaded, ``gc.freeze()``-d master image,
and shares those pages as the workers do.

Forking is safe only from a process with one thread: a fork copies locks held by threads
that do not exist in the child. The master is single-threaded only until ``when_ready``
starts its probe server and this module's waiting thread, and a keeper may need restarting at
any time. So :meth:`KeeperSupervisor.start` forks, once and first, a small *zygote* that
stays single-threaded: it closes what it inherited of gunicorn (the listening sockets, the
signal handlers, stdin), then forks the keeper, waits for it, and forks it again after a
backoff should it die. The keeper's process name (``/proc/<pid>/comm``) is
``view-keeper``, the zygote's ``view-keeper-sup``; ``ps`` and the tests tell them apart by it.

Lifetimes follow the master: the zygote exits when the master is gone (it watches its
parent) or on SIGTERM, stopping the keeper first; the keeper exits when the zygote is gone.
A zygote that dies while the master runs (someone killed it) stops the master, so that the
container restarts whole instead of serving on with a view that no longer changes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NoReturn

__all__ = ["KEEPER_NAME", "SUPERVISOR_NAME", "KeeperSupervisor"]

KEEPER_NAME = "view-keeper"
"""``/proc/<pid>/comm`` of the keeper (the kernel keeps 15 bytes)."""
SUPERVISOR_NAME = "view-keeper-sup"
"""``/proc/<pid>/comm`` of the zygote that forks and restarts it."""
POLL_SECONDS = 0.2
"""How often the zygote looks at its keeper and at its own parent."""
STOP_SECONDS = 10.0
"""How long a stopping keeper (or zygote) gets after SIGTERM before SIGKILL."""
MAX_BACKOFF_SECONDS = 30.0

log = logging.getLogger("gunicorn.error")


class KeeperSupervisor:
    """Forks the zygote that runs ``run_keeper`` (the keeper's ``main``) as a restarted child.

    ``on_keeper_exit(pid)`` runs in the zygote after each keeper exits (the multiprocess
    metrics files of that pid are marked dead there).
    """

    def __init__(
        self,
        run_keeper: Callable[[], int],
        on_keeper_exit: Callable[[int], None] = lambda pid: None,
    ) -> None:
        self._run_keeper = run_keeper
        self._on_keeper_exit = on_keeper_exit
        self._stopping = threading.Event()
        self.pid = 0
        """The zygote's PID (0 once it has exited)."""

    def start(self, inherited: Iterable[socket.socket] = ()) -> KeeperSupervisor:
        """Fork the zygote; call while the master has no other thread (``when_ready``, first).

        ``inherited`` are the master's listening sockets, closed in the zygote (a keeper
        holding the webhook port would keep it bound after the master died).
        """
        if threading.active_count() != 1:
            raise RuntimeError(
                "the view keeper's zygote must be forked while the master has one thread"
            )
        pid = os.fork()
        if pid == 0:
            _Zygote(self._run_keeper, self._on_keeper_exit).run(list(inherited))
        self.pid = pid
        log.info("view keeper supervisor started", extra={"event": "keeper.supervisor", "pid": pid})
        threading.Thread(target=self._watch, name="view-keeper-sup", daemon=True).start()
        return self

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        """SIGTERM the zygote (it stops the keeper) and wait for it, SIGKILL after ``timeout``."""
        self._stopping.set()
        pid = self.pid
        if not pid:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        for _ in range(int(timeout / 0.05)):
            if not self.pid:
                return  # reaped by the watching thread
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    def _watch(self) -> None:
        code = _wait(self.pid)
        self.pid = 0
        if self._stopping.is_set():
            return
        log.error(
            "view keeper supervisor exited; stopping the master so that the pod restarts whole",
            extra={"event": "keeper.supervisor_exited", "code": code},
        )
        os.kill(os.getpid(), signal.SIGTERM)


class _Zygote:
    """The single-threaded process that forks the keeper and restarts it (never returns)."""

    def __init__(self, run_keeper: Callable[[], int], on_keeper_exit: Callable[[int], None]):
        self._run_keeper = run_keeper
        self._on_keeper_exit = on_keeper_exit
        self._stopping = False
        self._keeper = 0

    def run(self, inherited: list[socket.socket]) -> NoReturn:
        code = 1
        try:
            self._leave_gunicorn(inherited)
            _name_process(SUPERVISOR_NAME)
            self._supervise()
            code = 0
        except BaseException:
            log.exception("view keeper supervisor failed", extra={"event": "keeper.failed"})
        finally:
            _flush_and_exit(code)

    @staticmethod
    def _leave_gunicorn(inherited: list[socket.socket]) -> None:
        # gunicorn's handlers queue signals for an arbiter loop this process never runs.
        for signum in (
            signal.SIGHUP,
            signal.SIGQUIT,
            signal.SIGTTIN,
            signal.SIGTTOU,
            signal.SIGUSR1,
            signal.SIGUSR2,
            signal.SIGWINCH,
            signal.SIGCHLD,
        ):
            signal.signal(signum, signal.SIG_DFL)
        for listener in inherited:
            listener.close()
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)

    def _supervise(self) -> None:
        master = os.getppid()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_term)
        backoff = 1.0
        while not self._stopping:
            self._keeper = os.fork()
            if self._keeper == 0:
                _run_keeper_process(self._run_keeper)
            log.info("view keeper started", extra={"event": "keeper.started", "pid": self._keeper})
            code = self._wait_keeper(master)
            self._on_keeper_exit(self._keeper)
            self._keeper = 0
            if self._stopping:
                return
            log.error(
                "view keeper exited; restarting",
                extra={"event": "keeper.exited", "code": code, "retry_in_s": backoff},
            )
            deadline = time.monotonic() + backoff
            while not self._stopping and time.monotonic() < deadline:
                if os.getppid() != master:
                    return
                time.sleep(POLL_SECONDS)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    def _wait_keeper(self, master: int) -> int:
        """The keeper's exit code; stops it when the master is gone or we are told to stop."""
        kill_at = None
        while True:
            pid, status = os.waitpid(self._keeper, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
            if os.getppid() != master and not self._stopping:
                self._on_term()
            if self._stopping:
                now = time.monotonic()
                kill_at = kill_at or now + STOP_SECONDS
                if now >= kill_at:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(self._keeper, signal.SIGKILL)
            time.sleep(POLL_SECONDS)

    def _on_term(self, *_: object) -> None:
        self._stopping = True
        if self._keeper:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._keeper, signal.SIGTERM)


def _run_keeper_process(run_keeper: Callable[[], int]) -> NoReturn:
    code = 1
    try:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, signal.SIG_DFL)  # until the keeper installs its own
        _name_process(KEEPER_NAME)
        code = run_keeper()
    except BaseException:
        log.exception("view keeper failed", extra={"event": "keeper.failed"})
    finally:
        _flush_and_exit(code)


def _name_process(name: str) -> None:
    """Set ``/proc/self/comm``, what ``ps``/``top`` show (no library needed on Linux)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/comm").write_text(name)


def _flush_and_exit(code: int) -> NoReturn:
    """Leave a forked child without running the master's exit handlers (gunicorn's, atexit)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _wait(pid: int) -> int | None:
    """Exit code of our child ``pid``; ``None`` when gunicorn's own SIGCHLD handler reaped it
    first (it reaps every child with ``waitpid(-1)``)."""
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        while True:  # reaped by the arbiter: wait until the pid is really gone
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return None
            time.sleep(0.2)
    return os.waitstatus_to_exitcode(status)
