"""A registry token service (the Docker/OCI "token auth" protocol) on its own loopback port.

A registry in token mode (distribution's ``auth: token``) answers an unauthenticated request
with ``401`` and ``WWW-Authenticate: Bearer realm="https://<token host>/token",service=...``;
the client asks the realm for a token — with whatever credentials it has — and retries with
``Authorization: Bearer <jwt>``. This is how registry.redhat.io sends clients to sso.redhat.com.
The facts test (test_registry_facts.py) asks: which pull secret does the kubelet's pull need
then, the registry host's or also the token host's?

The service here is just enough of the protocol: ``GET /token`` with Basic auth and ``POST
/token`` with an OAuth2 password grant (containerd tries the POST first), both checked against
the registry's own users (the same dict), and an ES256 JWT whose ``x5c`` header carries a
signing certificate from a CA of ours (certs.pki) the registry trusts (``rootcertbundle``).
Anonymous requests are refused, so an image behind it can only be pulled by someone whose
credentials reached it. Every request is recorded (who, which host header, granted or not).
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import ssl
import threading
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from certs import pki
from certs.files import write_atomic

__all__ = ["TokenRequest", "TokenService"]

ISSUER = "pullsecret-e2e-token-service"
SERVICE = "pullsecret-e2e-registry"
TOKEN_SECONDS = 300


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class TokenRequest:
    """One request the service answered."""

    method: str
    user: str
    """The authenticated user; empty for an anonymous or refused request."""
    offered: str
    """The user name the client offered (Basic or form), right or wrong; empty if none."""
    scopes: tuple[str, ...]
    granted: bool


@dataclass
class TokenService:
    """Serves ``https://127.0.0.1:<port>/token`` with ``tls`` (cert, key) until stopped."""

    workdir: Path
    users: Mapping[str, str]
    """User → password; the registry's own dict, so password changes apply here too."""
    tls: tuple[Path, Path]
    requests: list[TokenRequest] = field(default_factory=list)
    port: int = 0
    _server: ThreadingHTTPServer | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _signer: pki.Issued | None = field(default=None, repr=False)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def realm(self) -> str:
        return f"https://{self.host}/token"

    @property
    def root_bundle(self) -> Path:
        """The CA of the signing certificate: the registry's ``rootcertbundle``."""
        return self.workdir / "token-signing-ca.crt"

    def registry_auth(self) -> dict[str, str]:
        """distribution's ``auth.token`` section for a registry that trusts this service."""
        return {
            "realm": self.realm,
            "service": SERVICE,
            "issuer": ISSUER,
            "rootcertbundle": str(self.root_bundle),
        }

    def start(self) -> None:
        now = datetime.now(UTC)
        ca = pki.new_ca("pullsecret-e2e token signing CA", now, 1)
        self._signer = pki.issue(ca, "token-signer", now=now, days=1)
        self.workdir.mkdir(parents=True, exist_ok=True)
        write_atomic(self.root_bundle, ca.cert_pem, 0o644)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*map(str, self.tls))
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                user, password = _basic(self.headers.get("Authorization", ""))
                service.answer(self, "GET", user, password, query.get("scope", []))

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                user = (form.get("username") or [""])[0]
                password = (form.get("password") or [""])[0]
                scopes = [s for value in form.get("scope", []) for s in value.split(" ")]
                service.answer(self, "POST", user, password, scopes)

            def log_message(self, format: str, *args: Any) -> None:
                del format, args  # the requests list is the log

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self.port = int(server.server_address[1])
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def answer(
        self,
        handler: BaseHTTPRequestHandler,
        method: str,
        user: str,
        password: str,
        scopes: list[str],
    ) -> None:
        known = self.users.get(user)
        granted = bool(user) and known is not None and secrets.compare_digest(known, password)
        self.requests.append(
            TokenRequest(method, user if granted else "", user, tuple(scopes), granted)
        )
        if not granted:
            body = json.dumps({"errors": [{"code": "UNAUTHORIZED"}]}).encode()
            handler.send_response(401)
            handler.send_header("WWW-Authenticate", 'Basic realm="pullsecret-e2e-token"')
        else:
            token = self.token(user, scopes)
            body = json.dumps(
                {"token": token, "access_token": token, "expires_in": TOKEN_SECONDS}
            ).encode()
            handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        with contextlib.suppress(OSError):
            handler.wfile.write(body)

    def token(self, user: str, scopes: list[str]) -> str:
        """An ES256 JWT granting ``user`` every action of every scope asked for."""
        if self._signer is None:
            raise RuntimeError("not started")
        now = int(time.time())
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        header = {
            "typ": "JWT",
            "alg": "ES256",
            "x5c": [
                base64.b64encode(
                    self._signer.certificate.public_bytes(serialization.Encoding.DER)
                ).decode()
            ],
        }
        claims = {
            "iss": ISSUER,
            "sub": user,
            "aud": SERVICE,
            "exp": now + TOKEN_SECONDS,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        signing_input = ".".join(
            _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
        )
        der = self._signer.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return f"{signing_input}.{_b64url(signature)}"


def _basic(header: str) -> tuple[str, str]:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return "", ""
    with contextlib.suppress(ValueError):
        user, _, password = base64.b64decode(value).decode().partition(":")
        return user, password
    return "", ""
