"""Create the pull-secret copies a decision needs, inside the admission time budget.

Create-only: at admission we never update or delete (that is the sync controller's job, and
it never touches a Secret we do not own). ``AlreadyExists`` means someone — another replica,
the controller, or the namespace owner — got there first, which is fine.

One create per copy at a time in a worker (``CopyCreates``): a Deployment's first replicas in
a new namespace arrive together, each review finds the copy missing, and without this each
thread sent its own POST (the bench's first second: four creates of one copy, one ``created``
and three ``exists``, each 22-50 ms on an API server busy with a controller's start). A review
that finds a create of its copy under way waits for that answer, within its own budget.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from webhook.core.clusterview import ViewStore, target_from_object
from webhook.core.conventions import WARNING_PREFIX
from webhook.core.copies import CopiesEnsured, CopySpec, render_copy
from webhook.core.messages import MAX_WARNING_LENGTH, shorten
from webhook.k8s.rest import ApiError
from webhook.metrics import Metrics

__all__ = ["CopyCreates", "create_copies"]

log = logging.getLogger("webhook.k8s.copies")


@dataclass(frozen=True, slots=True)
class _Answer:
    """What one create of one copy came to."""

    outcome: str
    warning: str | None = None
    refused: bool = False


class CopyCreates:
    """The creates under way in this worker, by (namespace, name): one POST per copy at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str], Future[_Answer]] = {}
        self._waiting: dict[tuple[str, str], int] = {}

    def run(self, key: tuple[str, str], create: Callable[[], _Answer], timeout: float) -> _Answer:
        """``create()``'s answer, or the answer of the same create another thread is sending:
        "created" becomes "exists" for the one that waited (it did not create it)."""
        with self._lock:
            pending = self._pending.get(key)
            if pending is None:
                mine: Future[_Answer] = Future()
                self._pending[key] = mine
            else:
                self._waiting[key] = self._waiting.get(key, 0) + 1
        if pending is not None:
            try:
                answer = pending.result(timeout)
            except TimeoutError:
                return _Answer("timeout")
            finally:
                with self._lock:
                    self._waiting[key] -= 1
                    if not self._waiting[key]:
                        del self._waiting[key]
            return _Answer("exists") if answer.outcome == "created" else answer
        try:
            answer = create()
        except BaseException as exc:
            mine.set_exception(exc)
            raise
        else:
            mine.set_result(answer)
            return answer
        finally:
            with self._lock:
                del self._pending[key]

    def waiting(self, key: tuple[str, str]) -> int:
        """Reviews waiting for the create of ``key`` under way."""
        with self._lock:
            return self._waiting.get(key, 0)


def create_copies(
    core: Any,
    store: ViewStore,
    copies: Sequence[CopySpec],
    *,
    timeout: float,
    metrics: Metrics,
    creates: CopyCreates,
    uid: str = "",
) -> CopiesEnsured:
    """Create each missing copy; warn for each one that could not be ensured, and name those
    the API server refused outright (as opposed to running out of time)."""
    deadline = time.monotonic() + timeout
    warnings: list[str] = []
    refused: set[str] = set()
    for spec in copies:
        source = store.source_secret(spec.source_namespace, spec.source_name)
        if source is None or source.config is None:
            continue  # the core already warned and did not inject it
        remaining = deadline - time.monotonic()
        if remaining <= 0.05:
            answer = _Answer("timeout")
        else:
            body = render_copy(spec, source)
            create = functools.partial(_create, core, store, spec, body, remaining)
            answer = creates.run((spec.namespace, spec.name), create, remaining)
        if answer.outcome == "timeout":
            answer = _Answer("timeout", _warning(spec, "out of time"))
        if answer.warning:
            warnings.append(answer.warning)
        if answer.refused:
            refused.add(spec.name)
        metrics.copies.labels("create", answer.outcome).inc()
        log.info(
            "copy ensured" if answer.outcome in ("created", "exists") else "copy not ensured",
            extra={
                "event": "copy.create",
                "uid": uid,
                "namespace": spec.namespace,
                "secret": spec.name,
                "source": spec.source,
                "outcome": answer.outcome,
            },
        )
    return CopiesEnsured(tuple(warnings), frozenset(refused))


def _create(
    core: Any, store: ViewStore, spec: CopySpec, body: dict[str, Any], remaining: float
) -> _Answer:
    """One POST; a copy we created goes into the shared view at once, for every worker."""
    try:
        core.create_namespaced_secret(
            spec.namespace, body, _request_timeout=remaining, _preload_content=False
        )
        store.put_target(target_from_object(body))
    except ApiError as exc:
        if exc.status == 409:
            return _Answer("exists")
        if exc.status in _REFUSALS:
            return _Answer(f"http_{exc.status}", _refused(spec, _api_message(exc)), refused=True)
        return _Answer(
            f"http_{exc.status}", _warning(spec, f"API server said {exc.status} {exc.reason}")
        )
    except Exception as exc:
        return _Answer("error", _warning(spec, type(exc).__name__))
    return _Answer("created")


_REFUSALS = frozenset({400, 403, 404, 422})
"""Answers that will not change on a retry within the budget (forbidden by RBAC or an
admission policy, quota exceeded, namespace gone or terminating, invalid)."""


def _api_message(exc: ApiError) -> str:
    """The API server's own reason (it names the quota or admission policy that refused)."""
    try:
        message = str(json.loads(exc.body or "").get("message") or "")
    except (ValueError, AttributeError):
        message = ""
    # "secrets \"x\" is forbidden: " repeats what the warning says; the rest names the rule
    _, forbidden, rest = message.partition(" is forbidden: ")
    message = rest if forbidden else message
    message = _without_preamble(message)
    text = f"{exc.status}: {message}" if message else f"{exc.status} {exc.reason}"
    return shorten(text, 150)


_ADMISSION_POLICY = re.compile(
    r"^ValidatingAdmissionPolicy '(?P<policy>[^']*)' with binding '[^']*' denied request: "
)


def _without_preamble(message: str) -> str:
    """An admission policy's refusal without the API server's preamble, which would use up
    the warning's length before the part that says why (the chart's own refusals begin
    "pullsecret-injector rule <rule>:"; another policy's are prefixed with its name)."""
    match = _ADMISSION_POLICY.match(message)
    if match is None:
        return message
    rest = message[match.end() :]
    if rest.startswith("pullsecret-injector rule "):
        return rest
    return f"admission policy {match['policy']}: {rest}"


def _refused(spec: CopySpec, why: str) -> str:
    return shorten(
        f"{WARNING_PREFIX}the API server refused Secret {spec.name} in {spec.namespace} "
        f"({why}); not injected",
        MAX_WARNING_LENGTH,
    )


def _warning(spec: CopySpec, why: str) -> str:
    return (
        f"pullsecret-injector: could not create Secret {spec.name} in {spec.namespace} "
        f"({why}); the sync controller will retry, pulls may fail until then"
    )
