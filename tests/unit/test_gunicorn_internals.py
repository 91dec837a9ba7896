"""The gunicorn internals ``webhook/http/worker.py`` overrides and calls, pinned.

``WebhookWorker`` subclasses gunicorn's gthread worker and relies on parts of it that are
not a public API: four methods it overrides, the attributes it reads, the ``_DEFER`` marker
that parks a connection on the poller, ``TConn.wait_for_data`` and ``data_ready``, and the
helpers its TLS handshake calls. All of these exist together from gunicorn 25.2.0 on (commit
b5f127e9, "prevent thread pool exhaustion from slow clients", added ``_DEFER``,
``DEFAULT_WORKER_DATA_TIMEOUT``, ``wait_for_data`` and ``data_ready``), hence
``gunicorn>=25.2`` in pyproject.toml. A gunicorn that renames, drops or re-signs any of them
fails here, by name, instead of as idle TLS clients occupying threads again in production
(tests/e2e/test_idle_connections.py shows the behaviour; this shows the contract).
"""

from __future__ import annotations

import inspect
import os
import selectors
import socket
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

import pytest
from gunicorn import http as gunicorn_http
from gunicorn import sock as gunicorn_sock
from gunicorn.config import Config
from gunicorn.workers import gthread

from webhook.http.worker import WebhookWorker

OVERRIDDEN = {
    "set_accept_enabled": ["self", "enabled"],
    "enqueue_req": ["self", "conn"],
    "finish_request": ["self", "conn", "fs"],
    "handle": ["self", "conn"],
}


def _parameters(function: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_every_method_the_worker_overrides_exists_in_gthread_with_the_same_parameters() -> None:
    own = {
        name
        for name, value in vars(WebhookWorker).items()
        if inspect.isfunction(value) and not name.startswith("__")
    }

    assert own == set(OVERRIDDEN), "a new override: pin it here"
    for name, parameters in OVERRIDDEN.items():
        assert _parameters(getattr(gthread.ThreadWorker, name)) == parameters, name
        assert _parameters(getattr(WebhookWorker, name)) == parameters, name


def test_the_module_level_internals_the_worker_uses_exist() -> None:
    assert isinstance(gthread._DEFER, object)
    assert gthread._DEFER not in (None, True, False)  # a marker, not a truth value
    assert isinstance(gthread.DEFAULT_WORKER_DATA_TIMEOUT, int | float)
    assert gthread.DEFAULT_WORKER_DATA_TIMEOUT > 0
    assert _parameters(gthread.TConn.wait_for_data) == ["self", "timeout"]
    assert _parameters(gunicorn_sock.ssl_wrap_socket) == ["sock", "conf"]
    assert _parameters(gunicorn_http.get_parser)[:3] == ["cfg", "source", "source_addr"]


@pytest.fixture
def worker() -> Iterator[WebhookWorker]:
    """A worker as the arbiter builds it before forking, with the poller ``init_process``
    would add (nothing else of a running worker is needed by the code under test)."""
    cfg = Config()
    cfg.set("threads", 2)
    made = WebhookWorker(1, os.getpid(), [], None, 30, cfg, None)
    made.poller = selectors.DefaultSelector()
    try:
        yield made
    finally:
        made.poller.close()
        made.tmp.close()


@pytest.fixture
def conn(worker: WebhookWorker) -> Iterator[gthread.TConn]:
    ours, peer = socket.socketpair()
    made = gthread.TConn(worker.cfg, ours, ("127.0.0.1", 40000), ("127.0.0.1", 8443))
    try:
        yield made
    finally:
        ours.close()
        peer.close()


def test_the_worker_attributes_it_reads_are_set_by_gthread(worker: WebhookWorker) -> None:
    assert worker._accepting is False
    assert worker.nr_conns == 0
    assert worker.worker_connections == worker.cfg.worker_connections
    assert worker.alive is True
    assert worker.cfg.threads == 2
    assert not worker.cfg.is_ssl
    worker.cfg.set("certfile", "/tls/tls.crt")
    worker.cfg.set("keyfile", "/tls/tls.key")
    assert worker.cfg.is_ssl


def test_a_connection_has_the_attributes_the_handshake_sets_and_reads(
    conn: gthread.TConn,
) -> None:
    assert conn.initialized is False
    assert conn.data_ready is False
    assert conn.parser is None
    assert conn.client == ("127.0.0.1", 40000)
    assert isinstance(conn.sock, socket.socket)


def test_an_initialised_connection_is_not_initialised_again(conn: gthread.TConn) -> None:
    """The worker completes the TLS handshake itself and marks the connection initialised;
    gthread's ``handle`` then calls ``init``, which must leave the socket alone."""
    sock, parser = conn.sock, object()
    conn.initialized = True
    conn.parser = parser

    conn.init()

    assert conn.sock is sock
    assert conn.parser is parser


def test_a_deferred_connection_is_parked_on_the_poller_and_frees_its_thread(
    worker: WebhookWorker, conn: gthread.TConn
) -> None:
    """``handle`` returning ``_DEFER`` is how the worker gives a thread back while a client
    that completed its handshake has sent nothing: gthread must park the connection (its
    "pending" list, on the poller) rather than close it or keep it busy."""
    worker.nr_conns = 1
    worker.busy = 1
    done: Future[object] = Future()
    done.set_result(gthread._DEFER)

    worker.finish_request(conn, done)

    assert list(worker.pending_conns) == [conn]
    assert worker.poller.get_key(conn.sock).fileobj is conn.sock
    assert worker.nr_conns == 1
    assert worker.busy == 0
    assert worker._accepting is True  # a thread is free again: accept


def test_a_finished_connection_that_wants_no_keepalive_is_closed(
    worker: WebhookWorker, conn: gthread.TConn
) -> None:
    worker.nr_conns = 1
    worker.busy = 1
    done: Future[object] = Future()
    done.set_result(False)

    worker.finish_request(conn, done)

    assert worker.nr_conns == 0
    assert not worker.pending_conns
    assert conn.sock.fileno() == -1
