"""A server TLS context that follows certificate files as they are rotated.

gunicorn's gthread worker asks for an SSL context for every accepted connection (through the
``ssl_context`` hook in ``gunicorn.conf.py``); this class answers with a cached context and
swaps in a new one when the files change. A connection keeps the context it was accepted
with, so in-flight requests are never dropped; new connections get the new certificate.
A half-written pair (the kubelet updates Secret volumes atomically, but other tools may not)
fails to load and is retried on the next check while the old context keeps serving.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path

__all__ = ["READ_TIMEOUT_SECONDS", "BoundedSSLSocket", "ReloadingServerContext"]

READ_TIMEOUT_SECONDS = 10.0
"""Longest wait for a client's next bytes inside a request. The API server gives up on a
webhook after its ``timeoutSeconds`` (at most 30 s, 3 s in our chart), so waiting longer only
holds a worker thread for a client that is gone."""

log = logging.getLogger(__name__)

Signature = tuple[tuple[int, int, int], ...]


class ReloadingServerContext:
    """``get()`` returns an ``ssl.SSLContext`` for the current contents of the files."""

    def __init__(
        self,
        cert_file: Path,
        key_file: Path,
        *,
        client_ca_file: Path | None = None,
        check_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        factory: Callable[[], ssl.SSLContext] | None = None,
    ) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self.client_ca_file = client_ca_file
        """When set, a client must present a certificate signed by this CA (mutual TLS: the
        API server's, configured in its AdmissionConfiguration); reloaded like the pair."""
        self.check_interval = check_interval
        self._clock = clock
        self._factory = factory or _default_factory
        self._lock = threading.Lock()
        self._context: ssl.SSLContext | None = None
        self._signature: Signature | None = None
        self._next_check = 0.0
        self.loads = 0
        _LIVE_CONTEXTS.add(self)

    @property
    def loaded(self) -> bool:
        return self._context is not None

    def get(self) -> ssl.SSLContext:
        """The current context; raises only if no certificate has ever loaded."""
        now = self._clock()
        if self._context is None or now >= self._next_check:
            with self._lock:
                if self._context is None or now >= self._next_check:
                    self._next_check = now + self.check_interval
                    self._maybe_reload()
        if self._context is None:
            raise ssl.SSLError(f"no usable certificate in {self.cert_file} / {self.key_file}")
        return self._context

    def _maybe_reload(self) -> None:
        files = [self.cert_file, self.key_file]
        if self.client_ca_file is not None:
            files.append(self.client_ca_file)
        try:
            signature = _signature(*files)
        except OSError as exc:
            log.warning("tls files unreadable", extra={"event": "tls.missing", "error": str(exc)})
            return
        if signature == self._signature and self._context is not None:
            return
        context = self._factory()
        try:
            context.load_cert_chain(str(self.cert_file), str(self.key_file))
            if self.client_ca_file is not None:
                context.load_verify_locations(cafile=str(self.client_ca_file))
                context.verify_mode = ssl.CERT_REQUIRED
        except (ssl.SSLError, OSError) as exc:
            log.warning(
                "tls certificate not loaded, keeping the previous one",
                extra={"event": "tls.load_failed", "error": str(exc)},
            )
            return
        self._context, self._signature = context, signature
        self.loads += 1
        log.info("tls certificate loaded", extra={"event": "tls.loaded", "count": self.loads})


_LIVE_CONTEXTS: weakref.WeakSet[ReloadingServerContext] = weakref.WeakSet()
_HELD_ACROSS_FORK: list[threading.Lock] = []


def _before_fork() -> None:
    """No thread may be inside OpenSSL, loading a certificate, while gunicorn forks.

    The master's probe thread calls ``get()``; a worker forked while it loaded the files
    inherited OpenSSL's internal locks held, with no thread left to release them, and hung
    in its first TLS handshake (seen in the HTTPS benchmark: a worker stuck in
    ``do_handshake`` towards the API server, the other fine). All OpenSSL work here happens
    under each context's lock, so taking those locks around the fork excludes it.
    """
    for context in list(_LIVE_CONTEXTS):
        context._lock.acquire()
        _HELD_ACROSS_FORK.append(context._lock)


def _after_fork_in_parent() -> None:
    while _HELD_ACROSS_FORK:
        _HELD_ACROSS_FORK.pop().release()


def _after_fork_in_child() -> None:
    _HELD_ACROSS_FORK.clear()
    for context in list(_LIVE_CONTEXTS):
        context._lock = threading.Lock()


os.register_at_fork(
    before=_before_fork,
    after_in_parent=_after_fork_in_parent,
    after_in_child=_after_fork_in_child,
)


class BoundedSSLSocket(ssl.SSLSocket):
    """An ``SSLSocket`` whose "blocking" mode has a deadline.

    gunicorn switches a connection to blocking before reading a request and never sets a
    timeout, so a client that stops mid-request would hold a worker thread forever.
    Turning ``setblocking(True)`` into a timeout bounds every such read in one place.
    """

    def setblocking(self, flag: bool) -> None:
        self.settimeout(READ_TIMEOUT_SECONDS if flag else 0.0)


def _default_factory() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.sslsocket_class = BoundedSSLSocket
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    return context


def _signature(*paths: Path) -> Signature:
    """(inode, size, mtime_ns) of each file, following symlinks (Secret volumes use them)."""
    result = []
    for path in paths:
        stat = os.stat(path)
        result.append((stat.st_ino, stat.st_size, stat.st_mtime_ns))
    return tuple(result)
