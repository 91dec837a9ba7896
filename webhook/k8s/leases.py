"""Keep (or wait for) the controller Lease; the decisions come from ``webhook.core.leases``.

Writes use the Lease's resourceVersion, so two candidates racing for an expired Lease cannot
both win: the loser gets 409 and stays a follower. A leader that fails to renew before its
own deadline steps down *before* the Lease could be taken over, never after.

The Lease also carries the ledger of copy names the controller has managed
(``pullsecret-injector.io/managed-names``): after a rule is removed from the policy, that is
how a restarted controller still knows which leftover copies are its own to clean up.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from webhook.core.conventions import LEDGER_ANNOTATION
from webhook.core.leases import decide
from webhook.k8s.rest import ApiError, CoordinationV1, RestClient

__all__ = ["LeaseElector"]

log = logging.getLogger("webhook.k8s.leases")


class LeaseElector:
    def __init__(
        self,
        api: RestClient,
        namespace: str,
        name: str,
        identity: str,
        *,
        duration: int = 15,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_elected: Callable[[], None] = lambda: None,
    ) -> None:
        self.coordination = CoordinationV1(api)
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.duration = duration
        self._clock = clock
        self._on_elected = on_elected
        self._leader_until = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease", daemon=True)
        self.ledger: set[str] = set()
        self.holder = ""

    @property
    def is_leader(self) -> bool:
        return time.monotonic() < self._leader_until

    def start(self) -> LeaseElector:
        self._thread.start()
        return self

    def stop(self, release: bool = True) -> None:
        self._stop.set()
        self._thread.join(5)
        if release and self.is_leader:
            self._release()

    def _run(self) -> None:
        period = max(self.duration / 3, 0.5)
        while not self._stop.is_set():
            try:
                self._tick()
            except Exception as exc:
                log.warning(
                    "lease update failed", extra={"event": "lease.error", "error": str(exc)}
                )
            self._stop.wait(period)

    def _tick(self) -> None:
        started = time.monotonic()
        lease = self._get()
        spec = None if lease is None else lease.get("spec") or {}
        if lease is not None:
            annotations = (lease.get("metadata") or {}).get("annotations") or {}
            recorded = annotations.get(LEDGER_ANNOTATION, "")
            self.ledger |= {n for n in recorded.split(",") if n}
        decision = decide(spec, self.identity, self._clock(), self.duration)
        was_leader = self.is_leader
        self.holder = decision.holder
        if decision.action == "wait":
            self._leader_until = 0.0
            if was_leader:
                log.warning(
                    "lost the lease", extra={"event": "lease.lost", "holder": decision.holder}
                )
            return
        body: dict[str, Any] = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "annotations": {LEDGER_ANNOTATION: ",".join(sorted(self.ledger))},
            },
            "spec": dict(decision.spec or {}),
        }
        try:
            if lease is None:
                self.coordination.create_namespaced_lease(
                    self.namespace, body, _request_timeout=5, _preload_content=False
                )
            else:
                body["metadata"]["resourceVersion"] = lease["metadata"]["resourceVersion"]
                self.coordination.replace_namespaced_lease(
                    self.name, self.namespace, body, _request_timeout=5, _preload_content=False
                )
        except ApiError as exc:
            if exc.status == 409:
                self._leader_until = 0.0
                return
            raise
        # Valid until the Lease could expire for others, counted from before our write.
        self._leader_until = started + self.duration - 1
        if not was_leader:
            log.info("became leader", extra={"event": "lease.acquired", "lease": self.name})
            self._on_elected()  # work seen while following was skipped: look again now

    def _get(self) -> dict[str, Any] | None:
        try:
            response = self.coordination.read_namespaced_lease(
                self.name, self.namespace, _request_timeout=5, _preload_content=False
            )
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        document: dict[str, Any] = json.loads(response.data)
        return document

    def _release(self) -> None:
        """Hand over at once on shutdown instead of making the next leader wait it out."""
        try:
            lease = self._get()
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            lease["spec"]["holderIdentity"] = ""
            self.coordination.replace_namespaced_lease(
                self.name, self.namespace, lease, _request_timeout=5, _preload_content=False
            )
            self._leader_until = 0.0
            log.info("released the lease", extra={"event": "lease.released"})
        except Exception as exc:
            log.warning("lease release failed", extra={"event": "lease.error", "error": str(exc)})
