"""Live state: the policy in force and the cluster view that decisions read, kept current.

``LiveState`` joins a ``PolicySource`` (where the policy comes from) and a ``WatchSet`` (what
the view needs to see). Their one rule of engagement: a valid policy edit goes into force only
after the watches of the secrets it newly names have listed (bounded by
``NEW_WATCH_SYNC_SECONDS``); put in force at once, a rule naming a new secret would warn "not
found" for the moment its watch takes to list.

The sync controller runs one ``LiveState`` over an in-memory ``ClusterStore``; in a webhook pod
the view keeper (``webhook.k8s.viewkeeper``) runs the one ``LiveState`` of the pod over the
shared store every worker reads (``webhook.sharedview``).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from webhook.core.clusterview import ClusterStore, ViewStore
from webhook.core.permissions import Component, Need
from webhook.core.policy import Policy
from webhook.k8s import access
from webhook.k8s.policysource import PolicySource
from webhook.k8s.reflector import Reflector, ReflectorFactory, Watch, stop_all
from webhook.k8s.rest import CoreV1, RestClient
from webhook.k8s.watches import WatchSet
from webhook.metrics import Metrics
from webhook.settings import Settings

__all__ = ["NEW_WATCH_SYNC_SECONDS", "LiveState"]

log = logging.getLogger("webhook.k8s.live")

NEW_WATCH_SYNC_SECONDS = 2.0
"""How long a policy edit waits for the watches of newly named secrets to list."""

PolicyListener = Callable[[Policy], None]


class LiveState:
    """The policy in force and a view (``store``) that follows it."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        api: RestClient,
        reflectors: ReflectorFactory = Reflector,
        *,
        component: Component = "webhook",
        can_list_secrets: Callable[[str], bool] | None = None,
        store: ViewStore | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.component: Component = component
        self.core = CoreV1(api)
        self.store: ViewStore = store if store is not None else ClusterStore()
        self.changed = threading.Event()
        """Set after any change to the policy or the view (the controller waits on it)."""
        self.stopped = threading.Event()
        self.watches = WatchSet(
            self.core,
            self.store,
            metrics,
            reflectors,
            watch_timeout=settings.watch_timeout_seconds,
            on_change=self.changed.set,
            component=component,
            can_list_secrets=can_list_secrets or functools.partial(access.can_list_secrets, api),
        )
        self.source = PolicySource(settings, metrics, self.core, reflectors, self._put_in_force)
        self._policy: Policy | None = None
        self._incoming: Policy | None = None
        """A policy whose new watches are being waited for: what they are reported against."""
        self._lock = threading.RLock()
        self._listeners: list[PolicyListener] = []
        self._extra_target_names: frozenset[str] = frozenset()
        self._ready_once = False
        self.extra_watches: list[Watch] = []
        """Watches kept by the component itself (the controller's ServiceAccounts), reported
        with the others when refused."""
        self._reported: list[Need] = []

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> LiveState:
        self.watches.start()
        self.source.start()
        threading.Thread(target=self._report_access_loop, name="access", daemon=True).start()
        return self

    def stop(self) -> None:
        """Every watch (policy, cluster view, the component's own) at once, one deadline."""
        self.stopped.set()
        policy = [self.source.watch] if self.source.watch is not None else []
        stop_all([*policy, *self.watches.all(), *self.extra_watches])
        self.source.stop(timeout=0)

    def on_policy(self, listener: PolicyListener) -> None:
        self._listeners.append(listener)

    def set_extra_target_names(self, names: frozenset[str]) -> None:
        """Also watch copies with these names (left over from earlier policies)."""
        with self._lock:
            if names == self._extra_target_names:
                return
            self._extra_target_names = names
            if self._policy is not None:
                self.watches.follow(self._policy, names)
                self.watches.drop_stale(self._policy, names)

    # -- reads -------------------------------------------------------------------------------

    def policy(self) -> Policy | None:
        return self._policy

    def unsynced_target_names(self) -> frozenset[str]:
        return self.watches.unsynced_target_names()

    def readiness(self) -> tuple[bool, str]:
        """Ready once a policy is in force and every watch has listed once.

        After that, a watch that cannot sync (a live policy edit naming a namespace or a
        copy name the RBAC does not cover, say) degrades only what it feeds: it is logged
        and counted, but does not take every replica out of service.
        """
        if self._policy is None:
            return False, self.source.error
        if self._ready_once:
            return True, ""
        watches = self.watches.all()
        if self.source.watch is not None:
            watches.append(self.source.watch)
        # A refused watch (a live edit the RBAC does not cover) is reported, not waited for:
        # waiting would take every replica out of service for one rule's missing grant.
        pending = [w.name for w in watches if not w.synced.is_set() and not w.forbidden]
        if pending:
            errors = [f"{w.name}: {w.last_error}" for w in watches if w.last_error]
            return False, f"waiting for {', '.join(pending)}" + (
                f" ({'; '.join(errors)})" if errors else ""
            )
        self._ready_once = True
        return True, ""

    # -- permissions the API server refuses ------------------------------------------------------

    def _report_access_loop(self) -> None:
        while not self.stopped.wait(self.settings.access_report_seconds):
            try:
                self.report_access()
            except Exception:
                log.exception("access report failed", extra={"event": "access.report_failed"})

    def report_access(self) -> list[Need]:
        """Say what the refused watches needed: in the view (decisions tell "not allowed"
        from "not found"), the log, the metric and an Event on the policy ConfigMap."""
        # While an edit waits for its new watches, those watches are the edit's: reported
        # against the policy in force they would name no rule and the wrong fix.
        policy = self._incoming or self._policy
        if policy is None:
            return []
        self.store.set_denied(self.watches.denied_sources(policy))
        missing = self.watches.missing(policy, self.extra_watches)
        if missing == self._reported:
            return missing
        for need in self._reported:
            self._set_missing(need, 0)
        for need in missing:
            self._set_missing(need, 1)
        self._reported = missing
        if missing:
            message = "; ".join(need.describe() for need in missing)
            log.warning(
                "permissions missing for the policy in force",
                extra={
                    "event": "policy.permission_missing",
                    "missing": [n.describe() for n in missing],
                },
            )
            self.source.record_event("PermissionMissing", message)
        else:
            log.info(
                "every permission the policy needs is granted",
                extra={"event": "policy.permissions_ok"},
            )
        self.changed.set()
        return missing

    def _set_missing(self, need: Need, value: int) -> None:
        for rule in need.rules or ("",):
            self.metrics.permission_missing.labels(
                need.component, rule, "/".join(need.verbs), need.resource, need.namespace, need.name
            ).set(value)

    # -- the policy going into force -----------------------------------------------------------

    def apply_policy_text(
        self, text: str, version: str, involved: Mapping[str, Any] | None = None
    ) -> bool:
        """Parse and, if valid, put a policy in force. Returns whether it was applied."""
        return self.source.apply_text(text, version, involved)

    def _put_in_force(self, policy: Policy, version: str) -> None:
        with self._lock:
            self._incoming = policy
            started = self.watches.follow(policy, self._extra_target_names)
        deadline = time.monotonic() + NEW_WATCH_SYNC_SECONDS
        for watch in started:
            watch.synced.wait(max(0.0, deadline - time.monotonic()))
        with self._lock:
            self._policy = policy
            self._incoming = None
            self.watches.drop_stale(policy, self._extra_target_names)
        self.metrics.policy_loads.labels("applied").inc()
        self.metrics.policy_valid.set(1)
        self.metrics.policy_rules.set(len(policy.rules))
        if version.isdigit():
            self.metrics.policy_generation.set(int(version))
        log.info(
            "policy applied",
            extra={
                "event": "policy.applied",
                "generation": version,
                "rules": len(policy.rules),
                "source_namespaces": sorted(policy.source_namespaces()),
                "managed_names": sorted(policy.managed_names()),
            },
        )
        for listener in self._listeners:
            listener(policy)
        self.changed.set()
