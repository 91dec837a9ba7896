"""gunicorn's gthread worker, changed so that idle TLS clients cannot occupy its threads.

The stock worker gives each new connection a thread, completes the TLS handshake there and
then blocks, without a timeout, reading the first request. A client that connects, finishes
the handshake and sends nothing holds that thread until it disconnects. The API server does
exactly this: Go's HTTP client dials spare connections when several admissions are in flight
and parks them in its idle pool after the handshake. A handful of such connections (threads
x workers, 8 by default) and the webhook stops answering; every pod creation then waits out
the webhook timeout. Measured before this change: 8 idle TLS connections made a 9th
handshake time out after 5 s.

Here the handshake runs with a deadline, and a connection with no request waiting goes back
to the worker's poller (gunicorn's own "pending" list, closed after the keep-alive timeout)
instead of holding a thread. Reads inside a request are bounded by ``ReloadingServerContext``'s
socket class (``webhook.http.tls``), so a client that stalls mid-request is cut off too.

Second change: a worker stops accepting new connections while all its threads are busy.
Workers share one listening socket, and whichever wakes first takes every connection that
arrives in a burst; keep-alive then pins them there. Measured before this change: at
saturation one of two workers served 100 % of the requests in some rounds (1,250 req/s
instead of ~3,400 with an even split). Accepting only with a free thread spreads concurrent
connections over the workers; a connection nobody can take yet waits in the kernel's backlog
exactly as long as it would have waited in a busy worker's queue.

Both changes build on gthread internals, not on a public API (the overridden methods, the
``_DEFER`` marker, ``TConn.wait_for_data``/``data_ready``): they exist from gunicorn 25.2.0 on,
which is what pyproject.toml requires, and tests/unit/test_gunicorn_internals.py pins each one.
"""

from __future__ import annotations

import logging
import select
import ssl
from typing import Any

from gunicorn import http as gunicorn_http
from gunicorn import sock as gunicorn_sock
from gunicorn.workers import gthread

__all__ = ["HANDSHAKE_TIMEOUT_SECONDS", "WebhookWorker"]

HANDSHAKE_TIMEOUT_SECONDS = 5.0
"""A TLS handshake on loopback or a cluster network takes milliseconds; 5 s is generous."""

log = logging.getLogger(__name__)


class WebhookWorker(gthread.ThreadWorker):  # type: ignore[misc]
    """``worker_class`` in ``gunicorn.conf.py``; plain-HTTP connections are left to gunicorn."""

    busy = 0
    """Connections handed to the thread pool and not finished yet (main thread only)."""

    def set_accept_enabled(self, enabled: bool) -> None:
        # gunicorn's loop asks to accept whenever it is below worker_connections; we add
        # "and a thread is free". Called again after every hand-off and completion.
        super().set_accept_enabled(enabled and self.alive and self.busy < self.cfg.threads)

    def enqueue_req(self, conn: Any) -> None:
        self.busy += 1
        try:
            super().enqueue_req(conn)
        except BaseException:
            self.busy -= 1
            raise
        self.set_accept_enabled(self._accepting)

    def finish_request(self, conn: Any, fs: Any) -> None:
        self.busy = max(0, self.busy - 1)
        super().finish_request(conn, fs)
        self.set_accept_enabled(self.nr_conns < self.worker_connections)

    def handle(self, conn: Any) -> Any:
        if self.cfg.is_ssl and not conn.initialized:
            if not conn.wait_for_data(gthread.DEFAULT_WORKER_DATA_TIMEOUT):
                return gthread._DEFER  # gunicorn's own "park this connection" marker
            if not _handshake(conn, self.cfg):
                return False  # gunicorn closes the connection
            if not _request_waiting(conn.sock):
                conn.data_ready = False
                return gthread._DEFER  # gunicorn's own "park this connection" marker
            conn.data_ready = True
        return super().handle(conn)


def _handshake(conn: Any, cfg: Any) -> bool:
    """What ``TConn.init`` does for TLS, with a deadline; ALPN offers only HTTP/1.1."""
    raw = conn.sock
    raw.settimeout(HANDSHAKE_TIMEOUT_SECONDS)
    try:
        tls = gunicorn_sock.ssl_wrap_socket(raw, cfg)
        tls.settimeout(HANDSHAKE_TIMEOUT_SECONDS)
        tls.do_handshake()
    except (OSError, ssl.SSLError) as exc:
        # Port scanners, clients that distrust our CA, stalled peers: not our error.
        log.debug(
            "tls handshake failed", extra={"event": "tls.handshake_failed", "error": str(exc)}
        )
        return False
    conn.sock = tls
    conn.initialized = True
    conn.parser = gunicorn_http.get_parser(cfg, tls, conn.client)
    return True


def _request_waiting(tls: ssl.SSLSocket) -> bool:
    """Decrypted bytes buffered in OpenSSL, or encrypted bytes waiting in the kernel."""
    if tls.pending():
        return True
    readable, _, _ = select.select([tls], [], [], 0)
    return bool(readable)
