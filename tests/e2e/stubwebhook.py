"""A stub mutating webhook for e2e tests: HTTPS on 127.0.0.1, records what it saw.

Each AdmissionReview is answered with the JSONPatch ``respond`` returns (by default one that
adds ``STUB_LABEL``): the control-plane tests check the API server calls webhooks at all, the
reinvocation tests put an image-rewriting webhook next to ours.
"""

from __future__ import annotations

import base64
import json
import socketserver
import ssl
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from certs import pki
from certs.files import write_atomic

__all__ = ["STUB_LABEL", "STUB_VALUE", "StubWebhook", "add_stub_label"]

STUB_LABEL = "e2e.pullsecret-injector.io/stub"
STUB_VALUE = "mutated"


class _StubServer(ThreadingHTTPServer):
    daemon_threads = True
    stub: StubWebhook

    def server_bind(self) -> None:
        # HTTPServer.server_bind would resolve our FQDN (a DNS lookup); we need none.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", self.server_address[1]

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.stub.errors.append(repr(sys.exc_info()[1]))


def add_stub_label(request: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The default response: a JSONPatch adding ``STUB_LABEL`` to the object."""
    labels = ((request.get("object") or {}).get("metadata") or {}).get("labels")
    key = STUB_LABEL.replace("~", "~0").replace("/", "~1")
    if labels:
        return [{"op": "add", "path": f"/metadata/labels/{key}", "value": STUB_VALUE}]
    return [{"op": "add", "path": "/metadata/labels", "value": {STUB_LABEL: STUB_VALUE}}]


class _StubHandler(BaseHTTPRequestHandler):
    server: _StubServer
    # HTTP/1.0: one request per connection, so once the server is shut down nothing in this
    # process answers the API server any more (no kept-alive connection survives).
    protocol_version = "HTTP/1.0"

    def do_POST(self) -> None:
        review = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        self.server.stub.record(self.path, review)
        request = review["request"]
        ops = self.server.stub.respond(request)
        response: dict[str, Any] = {"uid": request["uid"], "allowed": True}
        if ops:
            response["patchType"] = "JSONPatch"
            response["patch"] = base64.b64encode(json.dumps(ops).encode()).decode()
        body = json.dumps(
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class StubWebhook:
    """``with StubWebhook(dir, hosts) as stub:`` serves ``https://127.0.0.1:<stub.port>``."""

    def __init__(
        self,
        workdir: Path,
        hosts: Sequence[str],
        respond: Callable[[Mapping[str, Any]], list[dict[str, Any]]] = add_stub_label,
    ) -> None:
        self.respond = respond
        """Turns each AdmissionReview request into the JSONPatch ops to answer with."""
        now = datetime.now(UTC)
        ca = pki.new_ca("e2e stub webhook CA", now, 1)
        leaf = pki.issue(ca, hosts[0], now=now, days=1, hosts=hosts)
        self.ca_pem = ca.cert_pem
        cert, key = workdir / "stub.crt", workdir / "stub.key"
        write_atomic(cert, leaf.cert_pem, 0o644)
        write_atomic(key, leaf.key_pem, 0o600)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(cert, key)
        context.sni_callback = self._sni
        self._server = _StubServer(("127.0.0.1", 0), _StubHandler)
        self._server.stub = self
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, name="stub-webhook")
        self._lock = threading.Lock()
        self.reviews: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.server_names: list[str | None] = []
        self.errors: list[str] = []

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def _sni(self, _sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        with self._lock:
            self.server_names.append(name)

    def record(self, path: str, review: dict[str, Any]) -> None:
        with self._lock:
            self.paths.append(path)
            self.reviews.append(review)

    def requests_for(self, namespace: str) -> list[dict[str, Any]]:
        with self._lock:
            return [r["request"] for r in self.reviews if r["request"]["namespace"] == namespace]

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=10)
        self._server.server_close()
