"""The watches that keep a cluster view current, following whatever the policy names.

* all namespaces (labels only, for namespace selectors);
* each source namespace as a whole where RBAC allows it (the chart's default: source
  namespaces exist to hold pull secrets, so a secret added there later works at once, with
  no new permission and no new watch), otherwise each source Secret by field selector, so
  that RBAC can grant exactly those (``openshift-config`` holds much more than pull secrets);
* Secrets called like each copy the policy manages, cluster-wide, by field selector (RBAC
  ``resourceNames``), instead of every Secret in the cluster.

When the policy changes, ``follow`` starts the watches it newly needs and ``drop_stale`` stops
those it no longer names; what they see goes into a ``ViewStore``. Each watch knows the
permission it needs: one that the API server refuses is reported (``missing``) with the rule
that needs it and the fix, and the view records which sources cannot be read, so a decision
says "not allowed to read" instead of "not found".
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping
from typing import Any

from webhook.core.clusterview import ViewStore, source_from_object, target_from_object
from webhook.core.permissions import (
    Component,
    Need,
    copy_need,
    source_namespace_need,
    source_secret_need,
)
from webhook.core.policy import Policy
from webhook.k8s.reflector import (
    ListCall,
    OnEvent,
    OnReplace,
    ReflectorFactory,
    Watch,
    stop_all,
)
from webhook.metrics import Metrics

__all__ = ["NeedFor", "WatchSet"]

NeedFor = Callable[[Policy], Need]
"""The permission a watch needs, described against the policy in force."""


class WatchSet:
    """Reflectors feeding ``store``, one per thing the policy in force needs to see."""

    def __init__(
        self,
        core: Any,
        store: ViewStore,
        metrics: Metrics,
        reflectors: ReflectorFactory,
        *,
        watch_timeout: int,
        on_change: Callable[[], None],
        component: Component = "webhook",
        can_list_secrets: Callable[[str], bool] = lambda namespace: False,
    ) -> None:
        self.core = core
        self.store = store
        self.metrics = metrics
        self.component: Component = component
        self._reflectors = reflectors
        self._watch_timeout = watch_timeout
        self._on_change = on_change
        self._can_list_secrets = can_list_secrets
        self._lock = threading.Lock()
        self._namespaces: Watch | None = None
        self._source_namespaces: dict[str, Watch | None] = {}
        """Source namespace -> its whole-namespace watch, or None: watched secret by secret."""
        self._sources: dict[tuple[str, str], Watch] = {}
        self._targets: dict[str, Watch] = {}
        self._needs: dict[str, NeedFor] = {}

    def start(self) -> None:
        self._namespaces = self.watch(
            "namespaces", self.core.list_namespace, self._replace_namespaces, self._namespace_event
        ).start()

    def stop(self, timeout: float = 5.0) -> None:
        """All watches at once, under one deadline (:func:`stop_all`)."""
        stop_all(self.all(), timeout)

    def watch(
        self,
        name: str,
        list_call: ListCall,
        on_replace: OnReplace,
        on_event: OnEvent,
        need: NeedFor | None = None,
    ) -> Watch:
        """A watch counted in ``watch_restarts`` under its resource (``copies/x`` -> copies),
        and reported with ``need`` when the API server refuses it."""
        resource = name.split("/", 1)[0]
        if need is not None:
            self._needs[name] = need
        return self._reflectors(
            name,
            list_call,
            on_replace,
            on_event,
            watch_timeout=self._watch_timeout,
            on_restart=lambda: self.metrics.watch_restarts.labels(resource).inc(),
        )

    def all(self) -> list[Watch]:
        with self._lock:
            static = [self._namespaces] if self._namespaces is not None else []
            whole = [w for w in self._source_namespaces.values() if w is not None]
            return [*static, *whole, *self._sources.values(), *self._targets.values()]

    def missing(self, policy: Policy, extra: list[Watch] | None = None) -> list[Need]:
        """The permissions of every refused watch (``extra``: watches kept elsewhere)."""
        watches = [*self.all(), *(extra or [])]
        return [
            self._needs[w.name](policy) for w in watches if w.forbidden and w.name in self._needs
        ]

    def denied_sources(self, policy: Policy) -> dict[tuple[str, str], str]:
        """(namespace, name or "") of the sources a refused watch should have read -> why."""
        with self._lock:
            watches = {
                **{(ns, ""): w for ns, w in self._source_namespaces.items() if w is not None},
                **self._sources,
            }
        return {
            key: self._needs[w.name](policy).brief()
            for key, w in watches.items()
            if w.forbidden and w.name in self._needs
        }

    def unsynced_target_names(self) -> frozenset[str]:
        """Copy names whose cluster-wide watch has not listed (yet, or ever: e.g. RBAC)."""
        with self._lock:
            return frozenset(n for n, w in self._targets.items() if not w.synced.is_set())

    def follow(self, policy: Policy, extra_targets: frozenset[str]) -> list[Watch]:
        """Start watches for the sources and copies ``policy`` names that have none yet."""
        started: list[Watch] = []
        with self._lock:
            for namespace in sorted(policy.source_namespaces() - set(self._source_namespaces)):
                whole = self._can_list_secrets(namespace)
                self._source_namespaces[namespace] = None
                if whole:
                    watch = self.watch(
                        f"sources/{namespace}",
                        functools.partial(self.core.list_namespaced_secret, namespace),
                        functools.partial(self._replace_namespace_sources, namespace),
                        self._source_event,
                        functools.partial(
                            source_namespace_need, component=self.component, namespace=namespace
                        ),
                    ).start()
                    self._source_namespaces[namespace] = watch
                    started.append(watch)
            for namespace, name in sorted(policy.source_refs() - set(self._sources)):
                if self._source_namespaces.get(namespace) is not None:
                    continue  # the namespace is watched whole
                watch = self.watch(
                    f"sources/{namespace}/{name}",
                    functools.partial(
                        self.core.list_namespaced_secret,
                        namespace,
                        field_selector=f"metadata.name={name}",
                    ),
                    functools.partial(self._replace_sources, namespace, name),
                    self._source_event,
                    functools.partial(
                        source_secret_need, component=self.component, namespace=namespace, name=name
                    ),
                ).start()
                self._sources[(namespace, name)] = watch
                started.append(watch)
            for name in sorted((policy.managed_names() | extra_targets) - set(self._targets)):
                watch = self.watch(
                    f"copies/{name}",
                    functools.partial(
                        self.core.list_secret_for_all_namespaces,
                        field_selector=f"metadata.name={name}",
                    ),
                    functools.partial(self._replace_targets, name),
                    self._target_event,
                    functools.partial(copy_need, component=self.component, name=name),
                ).start()
                self._targets[name] = watch
                started.append(watch)
        return started

    def drop_stale(self, policy: Policy, extra_targets: frozenset[str]) -> None:
        """Stop the watches of sources and copies ``policy`` no longer names."""
        wanted_targets = policy.managed_names() | extra_targets
        with self._lock:
            for namespace in sorted(set(self._source_namespaces) - policy.source_namespaces()):
                whole = self._source_namespaces.pop(namespace)
                if whole is not None:
                    whole.stop(timeout=0)
                    self._needs.pop(whole.name, None)
                    self.store.replace_namespace_sources(namespace, [])
            for namespace, name in sorted(set(self._sources) - policy.source_refs()):
                watch = self._sources.pop((namespace, name))
                watch.stop(timeout=0)
                self._needs.pop(watch.name, None)
                self.store.replace_named_source(namespace, name, [])
            for name in sorted(set(self._targets) - wanted_targets):
                watch = self._targets.pop(name)
                watch.stop(timeout=0)
                self._needs.pop(watch.name, None)
                self.store.replace_targets(name, [])

    # -- what the watches deliver ----------------------------------------------------------

    def _replace_namespaces(self, items: list[dict[str, Any]]) -> None:
        self.store.replace_namespaces({_name(item): _labels(item) for item in items})
        self._changed()

    def _namespace_event(self, kind: str, obj: dict[str, Any]) -> None:
        if kind == "DELETED":
            self.store.delete_namespace(_name(obj))
        else:
            self.store.put_namespace(_name(obj), _labels(obj))
        self._changed()

    def _replace_namespace_sources(self, namespace: str, items: list[dict[str, Any]]) -> None:
        self.store.replace_namespace_sources(namespace, [source_from_object(i) for i in items])
        self._changed()

    def _replace_sources(self, namespace: str, name: str, items: list[dict[str, Any]]) -> None:
        self.store.replace_named_source(
            namespace, name, [source_from_object(item) for item in items]
        )
        self._changed()

    def _source_event(self, kind: str, obj: dict[str, Any]) -> None:
        if kind == "DELETED":
            self.store.delete_source(_namespace(obj), _name(obj))
        else:
            self.store.put_source(source_from_object(obj))
        self._changed()

    def _replace_targets(self, name: str, items: list[dict[str, Any]]) -> None:
        self.store.replace_targets(name, [target_from_object(item) for item in items])
        self._changed()

    def _target_event(self, kind: str, obj: dict[str, Any]) -> None:
        if kind == "DELETED":
            self.store.delete_target(_namespace(obj), _name(obj))
        else:
            self.store.put_target(target_from_object(obj))
        self._changed()

    def _changed(self) -> None:
        for kind, size in self.store.sizes().items():
            self.metrics.cache_objects.labels(kind).set(size)
        self._on_change()


def _metadata(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _name(obj: Mapping[str, Any]) -> str:
    return str(_metadata(obj).get("name", ""))


def _namespace(obj: Mapping[str, Any]) -> str:
    return str(_metadata(obj).get("namespace", ""))


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return _metadata(obj).get("labels") or {}
