"""An authenticated image registry on 127.0.0.1: what the real node pulls from.

The program is the CNCF distribution registry (``registry:3``) built by ``tools/build-node.sh``,
serving TLS with a certificate from a CA of its own (made with :mod:`certs.pki`) and wanting a
bcrypt htpasswd login for every request, pulls included: a pod gets its image only with a
working pull secret, which is the whole point of the product under test. Images are pushed
with ``imagetool`` (passwords on stdin, never in argv), storage is a directory of the test.

Users and passwords are made up by the harness; no output of this module contains a password.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import re
import secrets
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from certs import pki
from certs.files import write_atomic
from tools.controlplane import free_port
from tools.processes import (
    POLL_INTERVAL,
    ProcessError,
    ProcessRecord,
    is_running,
    spawn,
    stop,
    tail,
)

__all__ = ["Registry", "RegistryError", "dockerconfigjson_secret", "make_image"]

CERT_DAYS = 30
READY_TIMEOUT = 30.0
REALM = "pullsecret-e2e"
#: One ``key=value`` or ``key="quoted value"`` field of the registry's logfmt lines.
_LOGFMT_FIELD = re.compile(r'([\w.]+)=(?:"((?:[^"\\]|\\.)*)"|(\S*))')


class RegistryError(RuntimeError):
    """Starting, pushing to or probing the registry failed (never with a password inside)."""


def dockerconfigjson_secret(
    name: str, namespace: str, auths: dict[str, tuple[str, str]]
) -> dict[str, Any]:
    """A ``kubernetes.io/dockerconfigjson`` Secret: registry host → (user, password)."""
    entries = {
        host: {
            "username": user,
            "password": password,
            "auth": base64.b64encode(f"{user}:{password}".encode()).decode(),
        }
        for host, (user, password) in auths.items()
    }
    payload = json.dumps({"auths": entries}).encode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"name": name, "namespace": namespace},
        "data": {".dockerconfigjson": base64.b64encode(payload).decode()},
    }


def make_image(bin_dir: Path, binary: Path, ref: str, out: Path, entrypoint: str = "") -> Path:
    """A one-file image of ``binary`` (static) as a docker-archive tarball ``out`` named
    ``ref``; the same binary always gives the same digest. Returns ``out``."""
    args = ["image", "--binary", str(binary), "--ref", ref, "--out", str(out)]
    if entrypoint:
        args += ["--entrypoint", entrypoint]
    out.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [str(bin_dir / "imagetool"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/bin:/bin", "TMPDIR": str(out.parent)},
    )
    if result.returncode != 0:
        raise RegistryError(f"imagetool image failed: {result.stderr.strip()[-2000:]}")
    return out


@dataclass
class Registry:
    """One registry process; :meth:`start` it, :meth:`stop` it (by PID)."""

    workdir: Path
    bin_dir: Path
    port: int = 0
    users: dict[str, str] = field(default_factory=dict, repr=False)
    """User → password (made up). Changed only through :meth:`set_password`."""
    record: ProcessRecord | None = None
    token_auth: dict[str, str] | None = None
    """distribution's ``auth.token`` options (realm, service, issuer, rootcertbundle): the
    registry sends clients to that token service instead of checking htpasswd itself."""
    _child: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    # -- layout ----------------------------------------------------------------------------

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>``: the registry part of image references, and the key of
        pull-secret ``auths`` entries and of containerd's ``certs.d`` directory."""
        return f"127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Path:
        return self.workdir / "pki" / "ca.crt"

    @property
    def tls_files(self) -> tuple[Path, Path]:
        """The serving certificate and key (for 127.0.0.1 and localhost, any port), signed by
        :attr:`ca_file`; written by :meth:`write_pki`."""
        return self.workdir / "pki" / "registry.crt", self.workdir / "pki" / "registry.key"

    @property
    def htpasswd(self) -> Path:
        return self.workdir / "htpasswd"

    @property
    def log(self) -> Path:
        return self.workdir / "registry.log"

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, user: str = "e2e-puller") -> None:
        """Write PKI, config and a first user (random password), start, wait until it
        answers ``/v2/`` over verified TLS with 401 (auth required)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self.write_pki()
        if not self.users:
            self.users[user] = secrets.token_urlsafe(18)
        self._write_htpasswd()
        config = {
            "version": 0.1,
            "log": {"level": "info", "formatter": "text"},
            "storage": {
                "filesystem": {"rootdirectory": str(self.workdir / "storage")},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {
                "addr": self.host,
                "tls": {"certificate": str(self.tls_files[0]), "key": str(self.tls_files[1])},
            },
            # Re-read when the file's mtime changes: set_password() needs no restart.
            "auth": (
                {"token": dict(self.token_auth)}
                if self.token_auth
                else {"htpasswd": {"realm": REALM, "path": str(self.htpasswd)}}
            ),
        }
        config_file = self.workdir / "config.yml"
        write_atomic(config_file, yaml.safe_dump(config).encode(), 0o600)
        env = {
            "PATH": "/usr/bin:/bin",
            # No trace exporter: it would try to reach an OTLP collector.
            "OTEL_TRACES_EXPORTER": "none",
        }
        try:
            self._child, self.record = spawn(
                "registry",
                [str(self.bin_dir / "registry"), "serve", str(config_file)],
                log=self.log,
                cwd=self.workdir,
                env=env,
            )
        except ProcessError as exc:
            raise RegistryError(str(exc)) from exc
        self._wait_ready()

    def write_pki(self) -> None:
        """Our CA and a serving certificate, unless already written (before :meth:`start`
        when something else must serve with the registry's certificate: a token service)."""
        if self.ca_file.exists():
            return
        now = datetime.now(UTC)
        ca = pki.new_ca("pullsecret-e2e-registry-ca", now, CERT_DAYS)
        leaf = pki.issue(ca, "registry", now=now, days=CERT_DAYS, hosts=["127.0.0.1", "localhost"])
        write_atomic(self.ca_file, ca.cert_pem, 0o644)
        cert, key = self.tls_files
        write_atomic(cert, leaf.cert_pem, 0o644)
        write_atomic(key, leaf.key_pem, 0o600)

    def _write_htpasswd(self) -> None:
        lines = [
            self._imagetool(["htpasswd", "--user", user], stdin=password).strip()
            for user, password in sorted(self.users.items())
        ]
        write_atomic(self.htpasswd, ("\n".join(lines) + "\n").encode(), 0o600)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        last: object = None
        for _ in range(int(READY_TIMEOUT / POLL_INTERVAL) + 1):
            if self.record is None or not is_running(self.record):
                raise RegistryError(f"registry exited; last lines of {self.log}:\n{self.tail()}")
            try:
                status = self.get("/v2/")
                if status == 401:
                    return
                last = status
            except (OSError, http.client.HTTPException) as exc:
                last = exc
            if time.monotonic() >= deadline:
                break
            time.sleep(POLL_INTERVAL)
        raise RegistryError(f"registry not ready after {READY_TIMEOUT:.0f}s ({last!r})")

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the process we started (by its recorded PID). Idempotent."""
        if self.record is not None:
            try:
                stop(self.record, self._child, timeout)
            except ProcessError as exc:
                raise RegistryError(str(exc)) from exc
        self._child = None

    def running(self) -> bool:
        return self.record is not None and is_running(self.record)

    def tail(self, lines: int = 30) -> str:
        return tail(self.log, lines)

    # -- users and images ------------------------------------------------------------------

    def set_password(self, user: str, password: str | None = None) -> str:
        """Create ``user`` or change their password (random unless given); returns it.

        The registry re-reads the htpasswd file on the next request after its mtime moved;
        the rewrite is atomic, so a request never sees half a file.
        """
        self.users[user] = password or secrets.token_urlsafe(18)
        before = self.htpasswd.stat().st_mtime_ns if self.htpasswd.exists() else None
        self._write_htpasswd()
        if before is not None and self.htpasswd.stat().st_mtime_ns == before:
            # Same-tick rewrite on a coarse-clock filesystem: make the change visible.
            os.utime(self.htpasswd, ns=(before + 1_000_000, before + 1_000_000))
        return self.users[user]

    def credentials(self, user: str | None = None) -> tuple[str, str]:
        """``(user, password)`` of ``user`` (default: the first one)."""
        name = user or next(iter(self.users))
        return name, self.users[name]

    def pull_secret(self, name: str, namespace: str, user: str | None = None) -> dict[str, Any]:
        """A dockerconfigjson Secret holding ``user``'s current credentials for this host."""
        return dockerconfigjson_secret(name, namespace, {self.host: self.credentials(user)})

    def push(self, source: Path, repository: str, *, user: str | None = None) -> str:
        """Push a docker-archive tarball, OCI layout or OCI archive as
        ``<host>/<repository>`` (``repo:tag``) with ``user``'s credentials; returns the
        reference pinned by digest (``<host>/<repo>@sha256:...``)."""
        name, password = self.credentials(user)
        target = f"{self.host}/{repository}"
        digest = self._imagetool(
            [
                "push",
                "--from",
                str(source),
                "--ref",
                target,
                "--ca",
                str(self.ca_file),
                "--username",
                name,
                "--password-stdin",
            ],
            stdin=password,
        ).strip()
        untagged = (
            repository.rsplit(":", 1)[0]
            if ":" in repository.rsplit("/", maxsplit=1)[-1]
            else repository
        )
        return f"{self.host}/{untagged}@{digest}"

    def _imagetool(self, args: list[str], stdin: str) -> str:
        result = subprocess.run(
            [str(self.bin_dir / "imagetool"), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={"PATH": "/usr/bin:/bin", "TMPDIR": str(self.workdir)},
        )
        if result.returncode != 0:
            raise RegistryError(f"imagetool {args[0]} failed: {result.stderr.strip()[-2000:]}")
        return result.stdout

    # -- probing ---------------------------------------------------------------------------

    def log_records(self) -> list[dict[str, str]]:
        """The registry's structured log lines as dicts (``msg``, ``auth.user.name``,
        ``http.request.uri``, ``http.request.method``, ``err.message``...): which requests
        reached it, as whom, and how they were answered. Access-log lines are skipped."""
        records = []
        with contextlib.suppress(OSError):
            for line in self.log.read_text(errors="replace").splitlines():
                if not line.startswith("time="):
                    continue
                records.append(
                    {
                        key: (quoted.replace('\\"', '"') or bare)
                        for key, quoted, bare in _LOGFMT_FIELD.findall(line)
                    }
                )
        return records

    def get(self, path: str, auth: tuple[str, str] | None = None, timeout: float = 5.0) -> int:
        """Status of ``GET path`` over TLS verified against our CA (``auth``: basic)."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        connection = http.client.HTTPSConnection(
            "127.0.0.1", self.port, timeout=timeout, context=context
        )
        headers = {}
        if auth is not None:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        try:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            response.read()
            return response.status
        finally:
            connection.close()
