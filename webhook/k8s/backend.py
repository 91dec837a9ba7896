"""What a webhook worker answers from: the pod's shared view, and the policy the keeper published.

``webhook.http.backend.AdmissionBackend`` for production. The worker runs no watch: the view
keeper of its pod (``webhook.k8s.viewkeeper``) does, and writes the view into the shared store
this backend reads. What stays in the worker is what admission itself must do against the
API server: look up a namespace created a moment ago, and create missing copies; both results
are written into the shared store, so every worker of the pod sees them at once.

The policy arrives through the store too: a thread here notices a new publication within
``POLICY_POLL_SECONDS``, builds this worker's rule index for it and then swaps it in; the same
thread rebuilds the index when a source secret changes, so reviews find it built. It also
keeps one connection to the API server open (``KEEP_WARM_SECONDS``), so that admission's rare
API calls do not begin with a TCP and TLS handshake.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

from urllib3.exceptions import HTTPError

from webhook.core.clusterview import ClusterView
from webhook.core.copies import CopiesEnsured
from webhook.core.namespaceindex import namespace_index
from webhook.core.plan import Plan, Planner, PlannerSlot
from webhook.core.policy import Policy
from webhook.k8s import client as k8s_client
from webhook.k8s.copies import CopyCreates, create_copies
from webhook.k8s.rest import ApiError, CoreV1, RestClient
from webhook.metrics import Metrics
from webhook.settings import Settings, SettingsError
from webhook.sharedview import SharedStore

__all__ = ["KEEP_WARM_SECONDS", "POLICY_POLL_SECONDS", "SharedBackend"]

log = logging.getLogger("webhook.k8s.backend")

POLICY_POLL_SECONDS = 0.1
"""How often a worker looks for a newly published policy (a key read: microseconds)."""

KEEP_WARM_SECONDS = 60.0
"""How often a worker asks the API server for ``/version``, under its 90 s idle timeout
(k8s.io/apiserver ``secure_serving.go``): a worker calls the API only to create a missing copy
or look up a new namespace, so its connection was otherwise always closed by then. Measured on
an idle control plane: a Secret POST took 8.3 ms (median of 30) on a new connection, 4.3 ms on
an open one; on the scale bench's busy start, the first pods of a namespace wait for it."""


class SharedBackend:
    """``AdmissionBackend`` over the pod's ``SharedStore``; copies and lookups via the API."""

    def __init__(self, store: SharedStore, settings: Settings, metrics: Metrics, api: RestClient):
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self.core = CoreV1(api)
        self._api = api
        self._warm_until = 0.0
        self.planners = PlannerSlot()
        self.copy_creates = CopyCreates()
        self._policy: Policy | None = None
        self._error = "no policy published yet by the view keeper"
        self._seen: str | None = None
        self.stopped = threading.Event()

    @classmethod
    def start(cls, settings: Settings, metrics: Metrics) -> SharedBackend:
        if not settings.shared_view_dir:
            raise SettingsError(
                "PSI_SHARED_VIEW_DIR is not set: the webhook runs under gunicorn.conf.py, "
                "which starts the pod's view keeper and sets it"
            )
        store = SharedStore(Path(settings.shared_view_dir))
        backend = cls(store, settings, metrics, k8s_client.api_client(settings))
        backend.follow_policy()
        threading.Thread(target=backend._follow, name="policy", daemon=True).start()
        return backend

    # -- the policy -----------------------------------------------------------------------------

    def _follow(self) -> None:
        while not self.stopped.wait(POLICY_POLL_SECONDS):
            try:
                self.follow_policy()
                self.warm_planner()
                self.readiness()
                self.keep_connection_warm(time.monotonic())
            except Exception:
                log.exception("reading the shared view failed", extra={"event": "view.failed"})

    def follow_policy(self) -> None:
        """Take the keeper's newest publication, if it is new."""
        stamp = self.store.policy_generation()
        if stamp is None or stamp == self._seen:
            return
        published = self.store.published_policy()
        if published is None:
            return
        self._seen = stamp
        if published.policy is not None:
            self._warm(published.policy)
            self._policy = published.policy
            generation = published.policy.generation
            if generation.isdigit():
                self.metrics.policy_generation.set(int(generation))
        else:
            self._error = published.error or self._error

    def warm_planner(self) -> None:
        """Rebuild the planner here when a source secret changed, not in the next review."""
        if (policy := self._policy) is not None:
            self._warm(policy)

    def keep_connection_warm(self, now: float) -> None:
        """One cheap request every ``KEEP_WARM_SECONDS``, whose connection stays in the pool."""
        if now < self._warm_until:
            return
        self._warm_until = now + KEEP_WARM_SECONDS
        try:
            self._api.request("GET", "/version", timeout=2.0)
        except (ApiError, OSError, HTTPError) as exc:
            # Not a problem of ours to report: the next review's call opens a connection.
            log.debug(
                "keeping a connection open failed",
                extra={"event": "api.keep_warm_failed", "error": str(exc)},
            )

    def _warm(self, policy: Policy) -> None:
        # What a review would otherwise build on the admission path: the rule index (20 ms at
        # 2,000 rules on an idle core, hundreds of ms on a busy one, with the reviews queued
        # behind it: BENCHMARKS.md §7) and the namespace index of cold decisions.
        self.planners.get(policy, self.store)
        namespace_index(policy)

    # -- AdmissionBackend -----------------------------------------------------------------------

    @property
    def view(self) -> ClusterView:
        return self.store

    def policy(self) -> Policy | None:
        return self._policy

    def planner(self) -> Planner | None:
        policy = self._policy
        return None if policy is None else self.planners.get(policy, self.store)

    def readiness(self) -> tuple[bool, str]:
        """Ready when this worker has a policy and the keeper's view has listed."""
        keeper = self.store.keeper_status()
        if self._policy is None:
            ready, why = False, self._error
        elif not keeper.ready:
            ready, why = False, f"view keeper: {keeper.reason}"
        else:
            ready, why = True, ""
        self.metrics.ready.set(1 if ready else 0)
        return ready, why

    def refresh_namespace(self, namespace: str) -> bool:
        """A namespace created a moment ago may not have reached the keeper's watch yet."""
        try:
            response = self.core.read_namespace(
                namespace, _request_timeout=1.0, _preload_content=False
            )
        except (ApiError, OSError, HTTPError) as exc:
            log.warning(
                "namespace lookup failed",
                extra={
                    "event": "namespace.lookup_failed",
                    "namespace": namespace,
                    "error": str(exc),
                },
            )
            return False
        obj = json.loads(response.data)
        self.store.put_namespace(namespace, (obj.get("metadata") or {}).get("labels") or {})
        return True

    def ensure_copies(self, plan: Plan, uid: str) -> CopiesEnsured:
        if not self.settings.write_copies:
            return CopiesEnsured()
        return create_copies(
            self.core,
            self.store,
            plan.copies,
            timeout=self.settings.ensure_timeout_seconds,
            metrics=self.metrics,
            creates=self.copy_creates,
            uid=uid,
        )
