"""gunicorn integration kept out of ``gunicorn.conf.py`` so it is typed and tested.

* ``JsonLogger``: gunicorn's error and access logs as JSON lines, like ours.
* ``master_readiness``: the master answers probes; it is ready when a certificate loads and
  every live worker reports ready through the multiprocess ``ready`` gauge (min over workers).

The plain-HTTP health/metrics server itself is ``webhook.ops`` (the controller serves it too).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gunicorn import glogging
from prometheus_client import CollectorRegistry
from prometheus_client import multiprocess as prometheus_multiprocess

from webhook.http.tls import ReloadingServerContext
from webhook.logs import JsonFormatter

__all__ = ["JsonLogger", "master_readiness", "workers_ready"]

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
