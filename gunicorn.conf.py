"""gunicorn configuration for the webhook: the container, the chart and the e2e tests use this file.

Every value comes from ``webhook.settings.Settings`` (``PSI_*`` environment variables), so there
is one place that documents and validates them. Choices, and why:

* ``gthread`` workers: the API server reuses keep-alive connections; the default sync worker
  closes each one, and every review would pay a TLS handshake. ``WebhookWorker`` is gthread
  with one change: a connection that has no request waiting (the API server parks spare
  connections after the handshake) returns to the poller instead of holding a thread.
* TLS 1.2+ through the ``ssl_context`` hook, with a context that follows rotated certificate
  files (``ReloadingServerContext``): new connections get the new certificate, in-flight
  requests finish on the old one, nothing restarts.
* probes and metrics on a separate plain-HTTP port served by the master, which stays up while
  workers are recycled and reports ready only when every worker is.
"""

from __future__ import annotations

import gc
import logging
import os
import shutil
import tempfile
from pathlib import Path

from webhook.settings import Settings

_settings = Settings.from_env()

# Multiprocess metrics: must be set before any worker imports prometheus_client.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="pullsecret-metrics-")

# The pod's shared view (webhook.sharedview), written by the view keeper, read by the workers;
# started empty: what a previous run of this container left would be stale.
if _settings.cluster:
    if _settings.shared_view_dir:
        shutil.rmtree(_settings.shared_view_dir, ignore_errors=True)
    else:
        os.environ["PSI_SHARED_VIEW_DIR"] = tempfile.mkdtemp(prefix="pullsecret-view-")
        _settings = Settings.from_env()
_keeper = None

wsgi_app = "webhook.app:create_app()"
bind = [f"{_settings.bind_address}:{_settings.port}"]
worker_class = "webhook.http.worker.WebhookWorker"
workers = _settings.workers
threads = _settings.threads
keepalive = _settings.keepalive_seconds
graceful_timeout = _settings.graceful_timeout_seconds
max_requests = _settings.max_requests
max_requests_jitter = _settings.max_requests_jitter
timeout = 30
accesslog = "-" if _settings.access_log else None
errorlog = "-"
loglevel = _settings.log_level.lower()
logger_class = "webhook.http.serving.JsonLogger"
if Path("/dev/shm").is_dir():  # noqa: S108 - a RAM-backed dir, as gunicorn's docs advise
    worker_tmp_dir = "/dev/shm"  # noqa: S108 - heartbeat files off the read-only root fs
limit_request_line = 8190
control_socket_disable = True  # gunicorn 24+ would write a socket under $HOME (read-only)

_tls = None
if _settings.tls_files:
    from webhook.http.tls import ReloadingServerContext

    certfile, keyfile = (str(p) for p in _settings.tls_files)
    _client_ca = Path(_settings.tls_client_ca_file) if _settings.tls_client_ca_file else None
    _tls = ReloadingServerContext(*_settings.tls_files, client_ca_file=_client_ca)


def ssl_context(conf, default_ssl_context_factory):
    """Called per accepted connection by gthread workers: return the current context."""
    return _tls.get() if _tls is not None else default_ssl_context_factory()


def on_starting(server):
    """Start from an empty metrics directory: stale files would report dead workers."""
    directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    for entry in directory.glob("*.db"):
        entry.unlink()
    if getattr(server.app, "app_uri", None) == wsgi_app:  # not for other apps (benchmarks)
        _preload_libraries()


def _preload_libraries():
    """Import the libraries in the master, so that the forked workers share those pages.

    Flask, prometheus_client and our own modules are a few tens of MiB per process; imported
    after the fork, every worker holds its own copy. (The pod talks to the API server through
    ``webhook.k8s.rest`` and never imports the ~55 MiB kubernetes client.) ``gc.freeze`` keeps
    the collector from writing to (and so un-sharing) the objects imported here. Only imports:
    no threads, clients or metrics exist in the master.
    """
    import webhook.app  # noqa: PLC0415

    if _settings.cluster:
        import webhook.k8s.backend  # noqa: PLC0415
        import webhook.k8s.viewkeeper  # noqa: F401, PLC0415 - forked from here (when_ready)
    gc.freeze()


def when_ready(server):
    # Imported lazily, like every prometheus_client user here: PROMETHEUS_MULTIPROC_DIR
    # must be in the environment before prometheus_client is first imported.
    from webhook.http.serving import master_readiness  # noqa: PLC0415
    from webhook.http.viewkeeper import KeeperSupervisor  # noqa: PLC0415
    from webhook.ops import start_ops_server  # noqa: PLC0415

    global _keeper  # noqa: PLW0603 - one supervisor per master, stopped in on_exit
    # First: the keeper's zygote is forked while the master has one thread. Not for other apps
    # (the benchmarks' do-nothing handler runs under this file too).
    if _settings.cluster and getattr(server.app, "app_uri", None) == wsgi_app:
        from webhook.k8s import viewkeeper  # noqa: PLC0415

        _keeper = KeeperSupervisor(viewkeeper.main, _mark_dead).start(server.LISTENERS)
    start_ops_server(_settings.bind_address, _settings.health_port, master_readiness(_tls))
    effective = {
        "bind": bind,
        "health_port": _settings.health_port,
        "workers": workers,
        "threads": threads,
        "keepalive": keepalive,
        "graceful_timeout": graceful_timeout,
        "max_requests": max_requests,
        "tls": bool(_tls),
        "client_certificates": "required" if _settings.tls_client_ca_file else "not required",
        "policy": _settings.policy_configmap or _settings.policy_file,
    }
    logging.getLogger("gunicorn.error").info(
        "webhook ready to serve", extra={"event": "server.ready", "settings": effective}
    )


def child_exit(server, worker):
    _mark_dead(worker.pid)


def _mark_dead(pid):
    from prometheus_client import multiprocess  # noqa: PLC0415 - see when_ready

    multiprocess.mark_process_dead(pid)


def on_exit(server):
    if _keeper is not None:
        _keeper.stop()
    for variable, prefix in (
        ("PROMETHEUS_MULTIPROC_DIR", "pullsecret-metrics-"),
        ("PSI_SHARED_VIEW_DIR", "pullsecret-view-"),
    ):
        directory = os.environ.get(variable, "")
        if directory.startswith(tempfile.gettempdir()) and prefix in directory:
            shutil.rmtree(directory, ignore_errors=True)
