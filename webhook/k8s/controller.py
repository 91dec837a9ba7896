"""``pullsecret-injector controller``: the single writer that keeps copies true to the policy.

It watches what the webhook watches (plus ServiceAccounts when a rule backfills them),
holds a Lease so that exactly one replica writes, and after every change — debounced — runs
``webhook.core.sync.reconcile`` and applies the writes in parallel. Followers keep their view warm
so a failover takes one Lease period, not a relist of the cluster.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from webhook import logs
from webhook.core.clusterview import ViewStore
from webhook.core.conventions import MANAGED_BY_LABEL, MANAGED_BY_VALUE
from webhook.core.grants import RoleBindingState, grant_actions, role_binding_state
from webhook.core.permissions import Need, needs
from webhook.core.policy import Policy
from webhook.core.sync import Conflict, ProtectedSource, ServiceAccountState, reconcile
from webhook.k8s import client as k8s_client
from webhook.k8s.certificates import certificate_task
from webhook.k8s.grants import apply_grant_action
from webhook.k8s.leases import LeaseElector
from webhook.k8s.live import LiveState
from webhook.k8s.reflector import Watch
from webhook.k8s.rest import AdmissionregistrationV1, RbacAuthorizationV1, RestClient
from webhook.k8s.status import StatusPublisher
from webhook.k8s.sync import apply_action
from webhook.metrics import Metrics, exposition
from webhook.ops import start_ops_server
from webhook.settings import Settings

__all__ = ["Controller", "run"]

log = logging.getLogger("webhook.controller")

_DEBOUNCE_SECONDS = 0.2
_WRITERS = 8


class Controller:
    def __init__(
        self, settings: Settings, metrics: Metrics, api: RestClient, identity: str
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.api = api
        self.state = LiveState(settings, metrics, api, component="controller")
        self.elector = LeaseElector(
            api,
            settings.lease_namespace or settings.policy_namespace,
            settings.lease_name,
            identity,
            duration=settings.lease_duration_seconds,
            on_elected=self._elected,
        )
        self.accounts: dict[tuple[str, str], ServiceAccountState] = {}
        self._accounts_reflector: Watch | None = None
        self.bindings: dict[tuple[str, str], RoleBindingState] = {}
        self._bindings_reflector: Watch | None = None
        self.rbac = RbacAuthorizationV1(api)
        self._pool = ThreadPoolExecutor(_WRITERS, thread_name_prefix="writer")
        self._stop = threading.Event()
        self._periodic_now = threading.Event()
        self._configuration_watch: Watch | None = None
        self._reported: set[tuple[str, str, str]] = set()
        self.periodic: list[Callable[[], None]] = []
        """Run by the leader every ``cert_check_seconds`` (certificate management)."""

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Controller:
        self.state.on_policy(self._policy_changed)
        self.state.start()
        self.elector.start()
        threading.Thread(target=self._loop, name="reconcile", daemon=True).start()
        threading.Thread(target=self._periodic_loop, name="periodic", daemon=True).start()
        StatusPublisher(self.settings, self.state, lambda: self.elector.is_leader).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._periodic_now.set()
        self.state.changed.set()
        self.elector.stop(release=True)
        self.state.stop()  # its extra_watches are ours: stopped with the rest, one deadline
        for reflector in (self._accounts_reflector, self._bindings_reflector):
            if reflector is not None:
                reflector.stop(timeout=0)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def readiness(self) -> tuple[bool, str]:
        ready, why = self.state.readiness()
        for reflector in (self._accounts_reflector, self._bindings_reflector):
            if reflector is None or reflector.forbidden:  # a refused watch is reported instead
                continue
            if ready and not reflector.synced.is_set():
                return False, f"waiting for {reflector.name}"
        return ready, why

    # -- reconcile loop -------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.state.changed.wait(self.settings.resync_seconds)
            if self._stop.is_set():
                break
            time.sleep(_DEBOUNCE_SECONDS)  # let a burst of events land before deciding
            self.state.changed.clear()
            if not self.elector.is_leader or not self.readiness()[0]:
                continue
            try:
                self.reconcile_once()
            except Exception:
                log.exception("reconcile failed", extra={"event": "sync.failed"})
                self._stop.wait(1.0)
                self.state.changed.set()

    def _elected(self) -> None:
        """Work seen while following was skipped: reconcile and check certificates now."""
        self.state.changed.set()
        self._periodic_now.set()

    def watch_webhook_configuration(self) -> None:
        """Run the certificate task at once when our webhook configuration changes.

        The chart never renders caBundle in self-managed mode (the controller owns it), so a
        `helm upgrade` from a chart that did, or anyone's edit, may drop it: the API server
        then cannot verify the webhook. Checking only every ``cert_check_seconds`` would leave
        that gap open for a minute; this watch closes it in one pass.
        """
        if not self.settings.webhook_configuration:
            return
        self._configuration_watch = self.state.watches.watch(
            "webhookconfiguration",
            functools.partial(
                AdmissionregistrationV1(self.api).list_mutating_webhook_configuration,
                field_selector=f"metadata.name={self.settings.webhook_configuration}",
            ),
            lambda items: self._periodic_now.set(),
            lambda kind, obj: self._periodic_now.set(),
        ).start()
        self.state.extra_watches.append(self._configuration_watch)

    def _periodic_loop(self) -> None:
        while not self._stop.is_set():
            self._periodic_now.wait(self.settings.cert_check_seconds)
            self._periodic_now.clear()
            if self.elector.is_leader and not self._stop.is_set():
                for task in self.periodic:
                    task()

    def reconcile_once(self) -> Counter[str]:
        policy = self.state.policy()
        if policy is None:
            return Counter()
        # Names recorded in the Lease (from earlier policies, maybe from before a restart)
        # must be watched and synced before deciding, or their leftovers would be forgotten.
        self.state.set_extra_target_names(frozenset(self.elector.ledger))
        started = time.monotonic()
        actions = reconcile(
            policy, self.state.store, list(self.accounts.values()), self.elector.ledger
        )
        actions = [a for a in actions if not self._already_reported(a)]
        outcomes: Counter[str] = Counter()
        for outcome in self._pool.map(
            functools.partial(
                apply_action, self.state.core, self.state.store, metrics=self.metrics
            ),
            actions,
        ):
            outcomes[outcome] += 1
        if policy.image_puller_grants or self.bindings:
            grants = grant_actions(policy, self.state.store.namespaces(), self.bindings.values())
            for grant in grants:  # in order: a recreate is an unbind followed by a bind
                outcomes[apply_grant_action(self.rbac, grant, self.metrics)] += 1
        else:
            grants = []
        self._update_ledger(policy, self.state.store)
        if actions or grants:
            log.info(
                "reconciled",
                extra={
                    "event": "sync.pass",
                    "actions": len(actions) + len(grants),
                    "outcomes": dict(outcomes),
                    "seconds": round(time.monotonic() - started, 3),
                },
            )
            self.state.changed.set()  # look again: writes may have made more work visible
        return outcomes

    def _already_reported(self, action: Any) -> bool:
        """Report each conflicting Secret or protected source once per process, not on every
        pass."""
        if not isinstance(action, Conflict | ProtectedSource):
            return False
        key = (action.namespace, action.name, action.uid)
        if key in self._reported:
            return True
        self._reported.add(key)
        return False

    def _update_ledger(self, policy: Policy, store: ViewStore) -> None:
        """Remember managed names until no copy of an old one is left, then forget it."""
        names = set(policy.managed_names())
        # A name stays while copies of it are left, or while we cannot see (its watch has
        # not listed: just added, or forbidden by RBAC): forgetting it would orphan copies.
        leftovers = {t.name for t in store.targets() if t.managed}
        leftovers |= self.state.unsynced_target_names()
        self.elector.ledger = names | (self.elector.ledger & leftovers)
        # Keep watching every name in the ledger, including the policy's own: if a rule is
        # removed, its copies must still be visible to be cleaned up.
        self.state.set_extra_target_names(frozenset(self.elector.ledger))

    # -- service accounts (only when a rule backfills them) ----------------------------------------

    def _policy_changed(self, policy: Policy) -> None:
        if policy.image_puller_grants and self._bindings_reflector is None:
            self._bindings_reflector = self.state.watches.watch(
                "rolebindings",
                functools.partial(
                    self.rbac.list_role_binding_for_all_namespaces,
                    label_selector=f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}",
                ),
                self._replace_bindings,
                self._binding_event,
                functools.partial(_grants_need, rbac=True),
            ).start()
        wants = any(rule.service_accounts.backfill for rule in policy.rules)
        if wants and self._accounts_reflector is None:
            self._accounts_reflector = self.state.watches.watch(
                "serviceaccounts",
                self.state.core.list_service_account_for_all_namespaces,
                self._replace_accounts,
                self._account_event,
                functools.partial(_grants_need, rbac=False),
            ).start()
        elif not wants and self._accounts_reflector is not None:
            self._accounts_reflector.stop(timeout=0)
            self._accounts_reflector = None
            self.accounts = {}
        self.state.extra_watches = [
            w
            for w in (self._accounts_reflector, self._bindings_reflector, self._configuration_watch)
            if w is not None
        ]

    def _replace_accounts(self, items: list[dict[str, Any]]) -> None:
        self.accounts = dict(_account(item) for item in items)
        self.state.changed.set()

    def _account_event(self, kind: str, obj: dict[str, Any]) -> None:
        key, value = _account(obj)
        if kind == "DELETED":
            self.accounts.pop(key, None)
        else:
            self.accounts[key] = value
        self.state.changed.set()

    def _replace_bindings(self, items: list[dict[str, Any]]) -> None:
        self.bindings = {(b.namespace, b.name): b for b in map(role_binding_state, items)}
        self.state.changed.set()

    def _binding_event(self, kind: str, obj: dict[str, Any]) -> None:
        state = role_binding_state(obj)
        if kind == "DELETED":
            self.bindings.pop((state.namespace, state.name), None)
        else:
            self.bindings[(state.namespace, state.name)] = state
        self.state.changed.set()


def _grants_need(policy: Policy, *, rbac: bool) -> Need:
    """The permission behind the controller's ServiceAccount (backfill) or RoleBinding
    (image-puller grants) watch, as ``webhook.core.permissions`` states it."""
    resource = "rolebindings" if rbac else "serviceaccounts"
    found = [n for n in needs(policy, "controller") if n.resource == resource]
    return found[0] if found else Need("controller", ("get", "list", "watch"), resource)


def _account(obj: dict[str, Any]) -> tuple[tuple[str, str], ServiceAccountState]:
    metadata = obj.get("metadata") or {}
    entries = obj.get("imagePullSecrets")
    names = tuple(
        str(e.get("name")) for e in entries or [] if isinstance(e, dict) and e.get("name")
    )
    state = ServiceAccountState(
        namespace=str(metadata.get("namespace", "")),
        name=str(metadata.get("name", "")),
        pull_secrets=names,
        has_list=isinstance(entries, list),
        resource_version=str(metadata.get("resourceVersion", "")),
    )
    return (state.namespace, state.name), state


def run(settings: Settings) -> int:
    """Entry point of ``pullsecret-injector controller``: runs until SIGTERM/SIGINT."""
    logs.configure(settings.log_level)
    metrics = Metrics()
    identity = settings.pod_name or f"{socket.gethostname()}-{os.getpid()}"
    api = k8s_client.controller_api_client(settings, metrics)
    controller = Controller(settings, metrics, api, identity)
    task = certificate_task(settings, api)
    if task is not None:
        controller.periodic.append(task)
        controller.watch_webhook_configuration()
    done = threading.Event()

    def _stop(signum: int, frame: object) -> None:
        del signum, frame
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    server = start_ops_server(
        settings.bind_address,
        settings.metrics_port,
        controller.readiness,
        lambda: exposition(metrics),
    )
    controller.start()
    log.info("controller started", extra={"event": "controller.started", "identity": identity})
    done.wait()
    log.info("controller stopping", extra={"event": "controller.stopping"})
    controller.stop()
    server.shutdown()
    return 0
