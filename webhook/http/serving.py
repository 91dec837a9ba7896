"""gunicorn integration kept out of ``gunicorn.conf.py`` so it is typed and tested.

* ``JsonLogger``: gunicorn's error and access logs as JSON lines, like ours.
* ``master_readiness``: the master answers probes; it is ready when a certificate loads and
  every live worker reports ready through the multiprocess ``ready`` gauge (min over workers).
* ``KeeperSupervisor``: the master starts the pod's view keeper (``webhook.k8s.viewkeeper``,
  the one process that watches) and starts it again should it die.

The plain-HTTP health/metrics server itself is ``webhook.ops`` (the controller serves it too).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from gunicorn import glogging
from prometheus_client import CollectorRegistry
from prometheus_client import multiprocess as prometheus_multiprocess

from webhook.http.tls import ReloadingServerContext
from webhook.logs import JsonFormatter

__all__ = ["JsonLogger", "KeeperSupervisor", "master_readiness", "workers_ready"]

READY_METRIC = "pullsecret_injector_ready"


class JsonLogger(glogging.Logger):  # type: ignore[misc]
    """gunicorn's logger with JSON formatting and a structured access log."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for handler in [*self.error_log.handlers, *self.access_log.handlers]:
            handler.setFormatter(JsonFormatter())

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        if not self.cfg.accesslog:
            return
        self.access_log.info(
            "request",
            extra={
                "event": "http.access",
                "method": req.method,
                "path": req.path,
                "status": getattr(resp, "status_code", None) or str(resp.status).split()[0],
                "bytes": getattr(resp, "sent", None),
                "duration_ms": round(request_time.total_seconds() * 1000, 3),
                "remote": environ.get("REMOTE_ADDR"),
            },
        )


def workers_ready() -> tuple[bool, str]:
    """Min over live workers of the ``ready`` gauge (multiprocess mode ``livemin``)."""
    registry = CollectorRegistry()
    prometheus_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    values = [
        sample.value
        for family in registry.collect()
        if family.name == READY_METRIC
        for sample in family.samples
    ]
    if not values:
        return False, "no worker has reported yet"
    if min(values) < 1:
        return False, "a worker is not ready (policy or cluster view not loaded)"
    return True, ""


def master_readiness(tls: ReloadingServerContext | None) -> Callable[[], tuple[bool, str]]:
    def readiness() -> tuple[bool, str]:
        if tls is not None:
            try:
                tls.get()
            except OSError as exc:
                return False, f"no serving certificate: {exc}"
        return workers_ready()

    return readiness


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


class KeeperSupervisor:
    """Runs ``python -m webhook.k8s.viewkeeper`` next to the workers, restarting it on exit.

    A separate process rather than master threads: the master forks workers, and a worker
    forked while a watch thread is inside OpenSSL would inherit its locks held. The keeper
    exits by itself when the master dies (it checks its parent), so a SIGKILLed master
    leaves nothing behind; a dead keeper is restarted with a backoff (the workers keep
    answering from the last view meanwhile).
    """

    def __init__(self, on_exit: Callable[[int], None] = lambda pid: None) -> None:
        self._on_exit = on_exit
        self._stop = threading.Event()
        self.pid = 0

    def start(self) -> KeeperSupervisor:
        threading.Thread(target=self._run, name="view-keeper", daemon=True).start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        pid = self.pid
        if not pid:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        for _ in range(int(timeout / 0.05)):
            if not self.pid:
                return  # reaped by the supervising thread
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    def _run(self) -> None:
        backoff = 1.0
        log = logging.getLogger("gunicorn.error")
        while not self._stop.is_set():
            # posix_spawn, not subprocess.Popen: Popen waits on a pipe until the child execs,
            # and a worker gunicorn forks meanwhile inherits that pipe and keeps it open for
            # its whole life (the master then hangs in Popen until the worker exits).
            with open(os.devnull, "rb") as devnull:
                self.pid = os.posix_spawn(
                    sys.executable,
                    [sys.executable, "-m", "webhook.k8s.viewkeeper"],
                    os.environ,
                    file_actions=[(os.POSIX_SPAWN_DUP2, devnull.fileno(), 0)],
                )
            log.info("view keeper started", extra={"event": "keeper.started", "pid": self.pid})
            code = _wait(self.pid)
            self._on_exit(self.pid)
            self.pid = 0
            if self._stop.is_set():
                return
            log.error(
                "view keeper exited; restarting",
                extra={"event": "keeper.exited", "code": code, "retry_in_s": backoff},
            )
            self._stop.wait(backoff)
            backoff = min(backoff * 2, 30.0)
