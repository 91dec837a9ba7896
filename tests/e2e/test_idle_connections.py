"""Idle and stalled TLS clients must not starve the webhook of threads.

Go's HTTP client (the API server's) dials spare connections under concurrency and parks them
after the TLS handshake without sending a request. The stock gthread worker blocked a thread
on each; with workers x threads of them (8 here) every later admission timed out.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from collections.abc import Callable, Iterator

import pytest

from tests.e2e.reliability import children, post_mutate, review, socket_owner, tls_context
from tests.e2e.support import Api, WebhookServer, pod

WORKERS_TIMES_THREADS = 2 * 4  # WebhookServer.env(): PSI_WORKERS=2, PSI_THREADS=4
IDLE_CONNECTIONS = 3 * WORKERS_TIMES_THREADS


@pytest.fixture
def idle_tls_connections(webhook: WebhookServer) -> Iterator[list[ssl.SSLSocket]]:
    """Connections that complete the handshake and then say nothing, like Go's spare dials."""
    opened: list[ssl.SSLSocket] = []
    context = tls_context(webhook)
    try:
        for _ in range(IDLE_CONNECTIONS):
            raw = socket.create_connection(("127.0.0.1", webhook.port), timeout=10)
            opened.append(context.wrap_socket(raw, server_hostname="127.0.0.1"))
        yield opened
    finally:
        for connection in opened:
            with contextlib.suppress(OSError):
                connection.close()


def test_idle_connections_do_not_block_admissions(
    webhook: WebhookServer,
    api: Api,
    namespace: str,
    idle_tls_connections: list[ssl.SSLSocket],
) -> None:
    status, answer = post_mutate(webhook, review(namespace, pod("direct", "nginx")), timeout=5)
    assert status == 200
    assert answer["response"]["allowed"] is True
    # And through the API server, which would fail closed after the webhook timeout.
    stored, _ = api.create_pod(namespace, pod("through-api", "nginx"))
    assert stored["metadata"]["name"] == "through-api"


def test_a_parked_connection_is_served_when_it_finally_sends_a_request(
    webhook: WebhookServer, namespace: str, idle_tls_connections: list[ssl.SSLSocket]
) -> None:
    time.sleep(1)  # parked on the poller, not waiting in a thread
    connection = idle_tls_connections[0]
    body = review(namespace, pod("late", "nginx"))
    connection.sendall(
        b"POST /mutate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    head = connection.recv(65536)
    assert head.startswith(b"HTTP/1.1 200"), head[:200]


@pytest.fixture
def stalled_requests(webhook: WebhookServer) -> Iterator[Callable[[], ssl.SSLSocket]]:
    """Opens connections that send half a request: each holds a thread (up to 10 s)."""
    context = tls_context(webhook)
    opened: list[ssl.SSLSocket] = []

    def stall() -> ssl.SSLSocket:
        # Generous: a handshake needs a free thread, and earlier stalled ones hold theirs.
        raw = socket.create_connection(("127.0.0.1", webhook.port), timeout=30)
        connection = context.wrap_socket(raw, server_hostname="127.0.0.1")
        connection.sendall(b"POST /mutate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Len")
        opened.append(connection)
        return connection

    try:
        yield stall
    finally:
        for connection in opened:
            with contextlib.suppress(OSError):
                connection.close()


def test_a_client_stalled_mid_request_does_not_block_others(
    webhook: WebhookServer, namespace: str, stalled_requests: Callable[[], ssl.SSLSocket]
) -> None:
    for _ in range(WORKERS_TIMES_THREADS):
        stalled_requests()
    # Each stalled request holds a thread for at most READ_TIMEOUT_SECONDS (10 s), then
    # is cut off; an admission arriving meanwhile waits for a thread, never forever.
    status, answer = post_mutate(webhook, review(namespace, pod("x", "nginx")), timeout=45)
    assert status == 200
    assert answer["response"]["allowed"] is True


def test_requests_in_progress_are_spread_over_the_workers(
    webhook: WebhookServer, stalled_requests: Callable[[], ssl.SSLSocket]
) -> None:
    """A worker with every thread busy leaves new connections to the others."""
    workers = children(webhook.process.pid) if webhook.process else []
    assert len(workers) == 2
    owners = []
    for _ in range(WORKERS_TIMES_THREADS):
        connection = stalled_requests()
        time.sleep(0.2)  # its half request reached a thread
        owners.append(socket_owner(workers, webhook.port, connection.getsockname()[1]))
    assert sorted(owners.count(pid) for pid in workers) == [4, 4], owners
