"""Live state: the policy in force and the cluster view, kept current by watches.

Every webhook worker (and the sync controller) runs one ``LiveState``. It watches

* the policy ConfigMap (one object, by field selector) — or polls a policy file;
* all namespaces (labels only, for namespace selectors);
* Secrets in each source namespace the policy names;
* Secrets called like each copy the policy manages, cluster-wide, by field selector — so
  RBAC can limit us to those names (``resourceNames``) instead of every Secret.

When the policy changes, the set of source namespaces and managed names changes with it,
and the watches follow. An invalid edit never replaces the last good policy: it is logged
with every located error, counted, and recorded as an Event on the ConfigMap.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException

from webhook.core.clusterview import (
    ClusterStore,
    ClusterView,
    source_from_object,
    target_from_object,
)
from webhook.core.plan import Plan, Planner, PlannerSlot
from webhook.core.policy import Policy, PolicyInvalid, load_policy
from webhook.k8s import client as k8s_client
from webhook.k8s.copier import create_copies
from webhook.k8s.events import record_event
from webhook.k8s.reflector import Reflector
from webhook.metrics import Metrics
from webhook.settings import Settings

__all__ = ["LiveBackend", "LiveState"]

log = logging.getLogger("webhook.k8s.live")

NEW_WATCH_SYNC_SECONDS = 2.0
"""How long a policy edit waits for the watches of newly named secrets to list."""

PolicyListener = Callable[[Policy], None]


class LiveState:
    """Policy + ``ClusterStore``, fed by reflectors that follow the policy."""

    def __init__(self, settings: Settings, metrics: Metrics, api: Any) -> None:
        self.settings = settings
        self.metrics = metrics
        self.api = api
        self.core = k8s_client.core_api(api)
        self.store = ClusterStore()
        self._policy: Policy | None = None
        self._policy_error = "policy not loaded yet"
        self._lock = threading.RLock()
        self._static: list[Reflector] = []
        self._sources: dict[tuple[str, str], Reflector] = {}
        self._targets: dict[str, Reflector] = {}
        self._listeners: list[PolicyListener] = []
        self._stop = threading.Event()
        self.stopped = self._stop
        self.changed = threading.Event()
        """Set after any change to the policy or the view (the controller waits on it)."""
        self._extra_target_names: frozenset[str] = frozenset()
        self._ready_once = False
        self._file_thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> LiveState:
        self._static.append(
            self._reflector(
                "namespaces",
                self.core.list_namespace,
                self._replace_namespaces,
                self._namespace_event,
            )
        )
        if self.settings.policy_configmap:
            self._static.append(
                self._reflector(
                    "policy",
                    functools.partial(
                        self.core.list_namespaced_config_map,
                        self.settings.policy_namespace,
                        field_selector=f"metadata.name={self.settings.policy_configmap}",
                    ),
                    self._replace_policy_configmap,
                    self._policy_configmap_event,
                )
            )
        elif self.settings.policy_file:
            self._file_thread = threading.Thread(
                target=self._poll_policy_file, name="policy-file", daemon=True
            )
            self._file_thread.start()
        else:
            self._policy_error = "neither PSI_POLICY_CONFIGMAP nor PSI_POLICY_FILE is set"
        for reflector in self._static:
            reflector.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            reflectors = [*self._static, *self._sources.values(), *self._targets.values()]
        for reflector in reflectors:
            reflector.stop()

    def set_extra_target_names(self, names: frozenset[str]) -> None:
        """Also watch copies with these names (left over from earlier policies)."""
        with self._lock:
            if names == self._extra_target_names:
                return
            self._extra_target_names = names
            if self._policy is not None:
                self._start_watches(self._policy)
                self._stop_stale_watches(self._policy)

    def on_policy(self, listener: PolicyListener) -> None:
        self._listeners.append(listener)

    # -- reads -------------------------------------------------------------------------------

    def policy(self) -> Policy | None:
        return self._policy

    def readiness(self) -> tuple[bool, str]:
        """Ready once a policy is in force and every watch has listed once.

        After that, a watch that cannot sync (a live policy edit naming a namespace or a
        copy name the RBAC does not cover, say) degrades only what it feeds: it is logged
        and counted, but does not take every replica out of service.
        """
        if self._policy is None:
            return False, self._policy_error
        if self._ready_once:
            return True, ""
        with self._lock:
            reflectors = [*self._static, *self._sources.values(), *self._targets.values()]
        pending = [r.name for r in reflectors if not r.synced.is_set()]
        if pending:
            errors = [f"{r.name}: {r.last_error}" for r in reflectors if r.last_error]
            return False, f"waiting for {', '.join(pending)}" + (
                f" ({'; '.join(errors)})" if errors else ""
            )
        self._ready_once = True
        return True, ""

    def unsynced_target_names(self) -> frozenset[str]:
        """Copy names whose cluster-wide watch has not listed (yet, or ever: e.g. RBAC)."""
        with self._lock:
            return frozenset(n for n, r in self._targets.items() if not r.synced.is_set())

    def pending_watches(self) -> list[str]:
        """Watches that have not (yet) listed, with their last error (for logs/metrics)."""
        with self._lock:
            reflectors = [*self._static, *self._sources.values(), *self._targets.values()]
        return [
            f"{r.name}: {r.last_error or 'syncing'}" for r in reflectors if not r.synced.is_set()
        ]

    def wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.readiness()[0]:
                return True
            time.sleep(0.05)
        return False

    # -- policy ------------------------------------------------------------------------------

    def _replace_policy_configmap(self, items: list[dict[str, Any]]) -> None:
        if not items:
            self._policy_missing()
            return
        self._apply_configmap(items[0])

    def _policy_configmap_event(self, kind: str, obj: dict[str, Any]) -> None:
        if kind == "DELETED":
            self._policy_missing()
        else:
            self._apply_configmap(obj)

    def _policy_missing(self) -> None:
        where = f"{self.settings.policy_namespace}/{self.settings.policy_configmap}"
        if self._policy is None:
            self._policy_error = f"policy ConfigMap {where} not found"
        log.warning(
            "policy ConfigMap missing; keeping the last good policy",
            extra={"event": "policy.missing", "configmap": where},
        )
        self.metrics.policy_loads.labels("missing").inc()

    def _apply_configmap(self, configmap: dict[str, Any]) -> None:
        metadata = configmap.get("metadata") or {}
        data = configmap.get("data") or {}
        version = str(metadata.get("resourceVersion", ""))
        text = data.get(self.settings.policy_key)
        if not isinstance(text, str):
            self._reject([f"data key {self.settings.policy_key!r} is missing"], version, configmap)
            return
        self.apply_policy_text(text, version, configmap)

    def apply_policy_text(
        self, text: str, version: str, involved: Mapping[str, Any] | None = None
    ) -> bool:
        """Parse and, if valid, put a policy in force. Returns whether it was applied."""
        try:
            policy = load_policy(text, generation=version)
        except PolicyInvalid as exc:
            self._reject([str(e) for e in exc.errors], version, involved)
            return False
        # Watches for secrets the new policy names first, then the policy: put in force at
        # once, a rule naming a new secret would warn "not found" for the few milliseconds
        # its watch takes to list, on every worker. Bounded: a slow list does not hold the
        # policy back for long (the secret then arrives through the watch).
        with self._lock:
            started = self._start_watches(policy)
        deadline = time.monotonic() + NEW_WATCH_SYNC_SECONDS
        for reflector in started:
            reflector.synced.wait(max(0.0, deadline - time.monotonic()))
        with self._lock:
            self._policy = policy
            self._policy_error = ""
            self._stop_stale_watches(policy)
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
        return True

    def _reject(
        self, errors: Sequence[str], version: str, involved: Mapping[str, Any] | None
    ) -> None:
        if self._policy is None:
            self._policy_error = "policy invalid: " + "; ".join(errors)[:500]
        self.metrics.policy_loads.labels("invalid").inc()
        self.metrics.policy_valid.set(0)
        log.error(
            "policy rejected; keeping the last good policy",
            extra={
                "event": "policy.rejected",
                "generation": version,
                "errors": list(errors),
                "in_force": self._policy.generation if self._policy else None,
            },
        )
        if involved is not None:
            message = "policy not applied, the previous one stays in force: " + "; ".join(errors)
            record_event(
                self.core,
                {"apiVersion": "v1", "kind": "ConfigMap", **involved},
                "InvalidPolicy",
                message,
                component=self.settings.event_source,
            )

    def _poll_policy_file(self) -> None:
        path = Path(self.settings.policy_file)
        last: tuple[int, int] | None = None
        while not self._stop.is_set():
            try:
                stat = path.stat()
                signature = (stat.st_mtime_ns, stat.st_size)
                if signature != last:
                    last = signature
                    text = path.read_text()
                    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
                    self.apply_policy_text(text, digest)
            except OSError as exc:
                if self._policy is None:
                    self._policy_error = f"policy file unreadable: {exc}"
            self._stop.wait(1.0)

    def _stop_stale_watches(self, policy: Policy) -> None:
        """Stop the watches of sources and copies the policy in force no longer names."""
        wanted_sources = policy.source_refs()
        wanted_targets = policy.managed_names() | self._extra_target_names
        for namespace, name in sorted(set(self._sources) - wanted_sources):
            self._sources.pop((namespace, name)).stop(timeout=0)
            self.store.replace_named_source(namespace, name, [])
        for name in sorted(set(self._targets) - wanted_targets):
            self._targets.pop(name).stop(timeout=0)
            self.store.replace_targets(name, [])

    def _start_watches(self, policy: Policy) -> list[Reflector]:
        """Start watches for the sources and copies ``policy`` names that have none yet."""
        wanted_sources = policy.source_refs()
        wanted_targets = policy.managed_names() | self._extra_target_names
        started: list[Reflector] = []
        for namespace, name in sorted(wanted_sources - set(self._sources)):
            # One Secret per watch, by field selector: RBAC can then grant exactly the
            # policy's source secrets (resourceNames), not every Secret of the namespace.
            self._sources[(namespace, name)] = self._reflector(
                f"sources/{namespace}/{name}",
                functools.partial(
                    self.core.list_namespaced_secret,
                    namespace,
                    field_selector=f"metadata.name={name}",
                ),
                functools.partial(self._replace_sources, namespace, name),
                self._source_event,
            ).start()
            started.append(self._sources[(namespace, name)])
        for name in sorted(wanted_targets - set(self._targets)):
            self._targets[name] = self._reflector(
                f"copies/{name}",
                functools.partial(
                    self.core.list_secret_for_all_namespaces,
                    field_selector=f"metadata.name={name}",
                ),
                functools.partial(self._replace_targets, name),
                self._target_event,
            ).start()
            started.append(self._targets[name])
        return started

    # -- view updates --------------------------------------------------------------------------

    def _reflector(
        self,
        name: str,
        list_call: Callable[..., Any],
        on_replace: Callable[[list[dict[str, Any]]], None],
        on_event: Callable[[str, dict[str, Any]], None],
    ) -> Reflector:
        resource = name.split("/", 1)[0]
        return Reflector(
            name,
            list_call,
            on_replace,
            on_event,
            watch_timeout=self.settings.watch_timeout_seconds,
            on_restart=lambda: self.metrics.watch_restarts.labels(resource).inc(),
        )

    def _replace_namespaces(self, items: list[dict[str, Any]]) -> None:
        self.store.replace_namespaces(
            {_name(item): (item.get("metadata") or {}).get("labels") or {} for item in items}
        )
        self._sizes()

    def _namespace_event(self, kind: str, obj: dict[str, Any]) -> None:
        if kind == "DELETED":
            self.store.delete_namespace(_name(obj))
        else:
            self.store.put_namespace(_name(obj), (obj.get("metadata") or {}).get("labels") or {})
        self._sizes()

    def _replace_sources(self, namespace: str, name: str, items: list[dict[str, Any]]) -> None:
        self.store.replace_named_source(
            namespace, name, [source_from_object(item) for item in items]
        )
        self._sizes()

    def _source_event(self, kind: str, obj: dict[str, Any]) -> None:
        metadata = obj.get("metadata") or {}
        if kind == "DELETED":
            self.store.delete_source(str(metadata.get("namespace")), _name(obj))
        else:
            self.store.put_source(source_from_object(obj))
        self._sizes()

    def _replace_targets(self, name: str, items: list[dict[str, Any]]) -> None:
        self.store.replace_targets(name, [target_from_object(item) for item in items])
        self._sizes()

    def _target_event(self, kind: str, obj: dict[str, Any]) -> None:
        metadata = obj.get("metadata") or {}
        if kind == "DELETED":
            self.store.delete_target(str(metadata.get("namespace")), _name(obj))
        else:
            self.store.put_target(target_from_object(obj))
        self._sizes()

    def _sizes(self) -> None:
        self.changed.set()
        for kind, size in self.store.sizes().items():
            self.metrics.cache_objects.labels(kind).set(size)


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


class LiveBackend:
    """``AdmissionBackend`` over a ``LiveState``: reads from memory, writes copies via the API."""

    def __init__(self, state: LiveState, settings: Settings, metrics: Metrics) -> None:
        self.state = state
        self.settings = settings
        self.metrics = metrics
        self.planners = PlannerSlot()

    @classmethod
    def start(cls, settings: Settings, metrics: Metrics) -> LiveBackend:
        state = LiveState(settings, metrics, k8s_client.api_client(settings)).start()
        backend = cls(state, settings, metrics)
        threading.Thread(target=backend._report_readiness, name="readiness", daemon=True).start()
        return backend

    def _report_readiness(self) -> None:
        """Keep the ``ready`` gauge current: the gunicorn master reads it for /readyz."""
        while not self.state.stopped.wait(0.5):
            self.readiness()

    @property
    def view(self) -> ClusterView:
        return self.state.store

    def policy(self) -> Policy | None:
        return self.state.policy()

    def planner(self) -> Planner | None:
        policy = self.state.policy()
        return None if policy is None else self.planners.get(policy, self.state.store)

    def readiness(self) -> tuple[bool, str]:
        ready, why = self.state.readiness()
        self.metrics.ready.set(1 if ready else 0)
        return ready, why

    def refresh_namespace(self, namespace: str) -> bool:
        """A namespace created a moment ago may not have reached our watch yet."""
        try:
            response = self.state.core.read_namespace(
                namespace, _request_timeout=1.0, _preload_content=False
            )
        except (ApiException, OSError) as exc:
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
        self.state.store.put_namespace(namespace, (obj.get("metadata") or {}).get("labels") or {})
        return True

    def ensure_copies(self, plan: Plan, uid: str) -> Sequence[str]:
        if not self.settings.write_copies:
            return ()
        return create_copies(
            self.state.core,
            self.state.store,
            plan.copies,
            timeout=self.settings.ensure_timeout_seconds,
            metrics=self.metrics,
            uid=uid,
        )
