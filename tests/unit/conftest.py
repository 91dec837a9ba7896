"""Shared fixtures: a real TLS echo server on loopback, with a verifying client.

The server asks for its ``ssl.SSLContext`` once per accepted connection, exactly as
gunicorn's ``ssl_context`` hook does, so a test can pass a fixed context or a
``ReloadingServerContext.get``. Every socket has a bounded timeout; nothing outlives the test.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

TIMEOUT = 5.0


@dataclass
class TlsEchoServer:
    """Accepts TLS connections on 127.0.0.1; answers each line ``x`` with ``echo:x``."""

    context_for_connection: Callable[[], ssl.SSLContext]
    listener: socket.socket = field(init=False)
    handshake_errors: list[BaseException] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _open: list[socket.socket] = field(default_factory=list)
    _clients: list[socket.socket] = field(default_factory=list)

    def start(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(TIMEOUT)
        self._spawn(self._accept_loop)

    @property
    def port(self) -> int:
        port: int = self.listener.getsockname()[1]
        return port

    def stop(self) -> None:
        self._stopping.set()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() at once
        for sock in [*self._clients, *self._open, self.listener]:
            sock.close()
        for thread in self._threads:
            thread.join(TIMEOUT)

    def connect(
        self, ca_file: Path, server_hostname: str, client_cert: tuple[Path, Path] | None = None
    ) -> ssl.SSLSocket:
        """A verified TLS connection, as a careful client (the API server) makes it: trust
        only ``ca_file`` and check ``server_hostname`` against the SANs; present
        ``client_cert`` (cert, key) when given. Closed at teardown."""
        context = ssl.create_default_context(cafile=str(ca_file))
        if client_cert is not None:
            context.load_cert_chain(str(client_cert[0]), str(client_cert[1]))
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT)
        self._clients.append(raw)
        conn = context.wrap_socket(raw, server_hostname=server_hostname)
        self._clients.append(conn)
        return conn

    @staticmethod
    def exchange(conn: ssl.SSLSocket, line: bytes) -> bytes:
        """Send one request on an open connection and return the answer."""
        conn.sendall(line)
        return conn.recv(4096)

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                raw, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            raw.settimeout(TIMEOUT)
            self._open.append(raw)
            self._spawn(self._serve, raw)

    def _serve(self, raw: socket.socket) -> None:
        try:
            conn = self.context_for_connection().wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            self.handshake_errors.append(exc)
            raw.close()
            return
        self._open.append(conn)
        with conn:
            try:
                while data := conn.recv(4096):
                    conn.sendall(b"echo:" + data)
            except (ssl.SSLError, OSError):
                return


@pytest.fixture
def tls_server() -> Iterator[Callable[[Callable[[], ssl.SSLContext]], TlsEchoServer]]:
    """Factory: ``tls_server(lambda: context)`` starts a server; all are stopped at teardown."""
    started: list[TlsEchoServer] = []

    def start(context_for_connection: Callable[[], ssl.SSLContext]) -> TlsEchoServer:
        server = TlsEchoServer(context_for_connection)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
