"""List-then-watch into a callback, forever: the Python counterpart of client-go's Reflector.

Raw JSON all the way (``_preload_content=False``, decoded by orjson): the core works on dicts,
and decoding every event into the client's model classes would cost more CPU than the rest of
the webhook; a relist of 50,000 namespaces is the view keeper's start-up time. The
loop re-opens the watch from the last resourceVersion (bookmarks keep it fresh), relists on
410 Gone, and backs off with jitter on errors so a restarting API server is not stampeded.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

import orjson

from webhook.k8s.rest import ApiError

__all__ = [
    "ListCall",
    "OnEvent",
    "OnReplace",
    "Reflector",
    "ReflectorFactory",
    "Watch",
    "stop_all",
    "watch_timeout_seconds",
]

log = logging.getLogger("webhook.k8s.reflector")

ListCall = Callable[..., Any]
"""A bound client ``list_*`` method with its namespace/selector arguments already applied."""
OnReplace = Callable[[list[dict[str, Any]]], None]
"""Receives every object of a (re)list."""
OnEvent = Callable[[str, dict[str, Any]], None]
"""Receives each watch event: ``ADDED``/``MODIFIED``/``DELETED`` and the object."""


class Watch(Protocol):
    """What the rest of the shell needs from a reflector (tests pass stand-ins)."""

    name: str
    synced: threading.Event
    """Set once the first list has been delivered."""
    last_error: str
    forbidden: bool
    """The last attempt was refused with 403."""

    def start(self) -> Watch: ...

    def stop(self, timeout: float = 5.0) -> None: ...


class ReflectorFactory(Protocol):
    """Builds a ``Watch`` (``Reflector`` itself, or a stand-in in unit tests)."""

    def __call__(
        self,
        name: str,
        list_call: ListCall,
        on_replace: OnReplace,
        on_event: OnEvent,
        *,
        watch_timeout: int = 300,
        on_restart: Callable[[], None] | None = None,
    ) -> Watch: ...


_PAGE_SIZE = 500


class _Expired(Exception):
    """The resourceVersion is too old (410): relist."""


class Reflector:
    """Mirror one list/watch into ``on_replace`` (full lists) and ``on_event`` (changes)."""

    def __init__(
        self,
        name: str,
        list_call: ListCall,
        on_replace: OnReplace,
        on_event: OnEvent,
        *,
        watch_timeout: int = 300,
        on_restart: Callable[[], None] | None = None,
        max_backoff: float = 30.0,
    ) -> None:
        self.name = name
        self._list_call = list_call
        self._on_replace = on_replace
        self._on_event = on_event
        self._watch_timeout = watch_timeout
        self._on_restart = on_restart
        self._max_backoff = max_backoff
        self._stop = threading.Event()
        self.synced = threading.Event()
        self.last_error = ""
        self.forbidden = False
        """The last attempt was refused (403): RBAC does not let us list/watch this."""
        self._response: Any = None
        self._thread = threading.Thread(target=self._run, name=f"reflector-{name}", daemon=True)

    def start(self) -> Reflector:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop delivering at once; the thread ends when its watch request returns.

        Closing a response another thread is reading can block, so the close happens on a
        helper thread; events that still arrive are dropped (``_deliver`` checks the flag).
        """
        self._stop.set()
        response = self._response
        if response is not None:
            threading.Thread(target=_close_quietly, args=(response,), daemon=True).start()
        if timeout > 0:
            self._thread.join(timeout)

    def _run(self) -> None:
        resource_version: str | None = None
        backoff = 0.5
        while not self._stop.is_set():
            try:
                if resource_version is None:
                    resource_version = self._relist()
                resource_version = self._watch(resource_version)
                backoff = 0.5
            except _Expired:
                resource_version = None
            except Exception as exc:
                if self._stop.is_set():
                    break
                if isinstance(exc, ApiError) and exc.status == 410:
                    resource_version = None
                    continue
                forbidden = isinstance(exc, ApiError) and exc.status == 403
                self.last_error = _describe(exc)
                # A missing permission stays missing until RBAC changes: say it once, then
                # keep retrying quietly (the retry is what picks up a `helm upgrade`).
                level = logging.DEBUG if forbidden and self.forbidden else logging.WARNING
                self.forbidden = forbidden
                log.log(
                    level,
                    "watch forbidden, retrying" if forbidden else "watch failed, retrying",
                    extra={
                        "event": "watch.forbidden" if forbidden else "watch.error",
                        "reflector": self.name,
                        "error": self.last_error,
                        "retry_in_s": round(backoff, 2),
                    },
                )
                if self._on_restart:
                    self._on_restart()
                self._stop.wait(backoff * random.uniform(0.8, 1.2))  # noqa: S311 - jitter
                backoff = min(backoff * 2, self._max_backoff)

    def _relist(self) -> str:
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"limit": _PAGE_SIZE, "_preload_content": False}
            if token:
                kwargs["_continue"] = token
            response = self._list_call(**kwargs, _request_timeout=60)
            document = orjson.loads(response.data)
            items.extend(document.get("items") or [])
            metadata = document.get("metadata") or {}
            token = metadata.get("continue")
            if not token:
                break
        if self._stop.is_set():
            return ""
        self._on_replace(items)
        self.synced.set()
        self.last_error = ""
        self.forbidden = False
        return str(metadata.get("resourceVersion", ""))

    def _watch(self, resource_version: str) -> str:
        timeout = watch_timeout_seconds(self._watch_timeout)
        response = self._list_call(
            watch=True,
            resource_version=resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=timeout,
            _preload_content=False,
            _request_timeout=(10, timeout + 30),
        )
        self._response = response
        try:
            for event in _events(response):
                kind = event.get("type")
                obj = event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise _Expired
                    raise RuntimeError(f"watch error: {obj.get('message', obj)}")
                version = (obj.get("metadata") or {}).get("resourceVersion")
                if self._stop.is_set():
                    break
                if kind != "BOOKMARK":
                    self._on_event(str(kind), obj)
                if version:
                    resource_version = str(version)
                if self._stop.is_set():
                    break
        finally:
            self._response = None
            response.release_conn()
        return resource_version


def watch_timeout_seconds(shortest: int) -> int:
    """Between ``shortest`` and twice that, as client-go's reflectors ask: the API server ends
    a watch exactly when asked, so a process's hundreds of watches, opened together, would
    otherwise all end and re-open together, every period. Measured in the scale bench with
    one fixed 60 s timeout: the view keeper's 503 watches re-opened in one burst a minute in,
    the keeper at 0.2 of a core and the API server at 0.8 for 4 s, and admission's p99 in
    that window 52 ms where its neighbours stayed under 25 ms (BENCHMARKS.md §7)."""
    return shortest + random.randrange(shortest + 1)  # noqa: S311 - jitter, not a secret


def stop_all(watches: Iterable[Watch], timeout: float = 5.0) -> None:
    """Signal every watch, then wait for them under one deadline. A watch whose request is
    still open ends only at its deadline: waited for one by one, the watches of a controller
    with a few rules outlasted its 30 s grace period on a real node, and it was killed."""
    pending = list(watches)
    for watch in pending:
        watch.stop(timeout=0)
    deadline = time.monotonic() + timeout
    for watch in pending:
        watch.stop(timeout=max(0.0, deadline - time.monotonic()))


def _describe(exc: Exception) -> str:
    """One line for logs and readiness: the API server's own message when it sent one."""
    if isinstance(exc, ApiError):
        try:
            message = json.loads(exc.body or "").get("message")
        except (ValueError, AttributeError):
            message = None
        return f"HTTP {exc.status}: {message or exc.reason}"[:300]
    return f"{type(exc).__name__}: {str(exc)[:300]}"


def _close_quietly(response: Any) -> None:
    try:
        response.close()
    except Exception:
        log.debug("closing watch response failed")


def _events(response: Any) -> Iterator[dict[str, Any]]:
    """Newline-delimited JSON watch events from a streaming response."""
    buffer = b""
    for chunk in response.stream(amt=65536, decode_content=True):
        *lines, buffer = (buffer + chunk).split(b"\n")
        for line in lines:
            if line.strip():
                yield orjson.loads(line)
    if buffer.strip():
        yield orjson.loads(buffer)
