"""Prometheus metrics, safe under gunicorn's multiple worker processes.

With ``PROMETHEUS_MULTIPROC_DIR`` set (``gunicorn.conf.py`` sets it before any worker
imports this), every worker writes its samples to files and any process can expose the sum;
without it (unit tests, the CLI) metrics live in a private registry per app instance.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess

__all__ = ["CONTENT_TYPE_LATEST", "Metrics", "exposition", "multiprocess_enabled"]

NAMESPACE = "pullsecret_injector"


def multiprocess_enabled() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class Metrics:
    """The product's metrics; one instance per process (per app in tests)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.admissions = Counter(
            "admission_requests",
            "Admission reviews answered.",
            ["kind", "operation", "result"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.admission_seconds = Histogram(
            "admission_duration_seconds",
            "Time to answer an admission review.",
            ["kind", "operation"],
            namespace=NAMESPACE,
            registry=r,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.injections = Counter(
            "injections",
            "Pull secrets added to objects.",
            ["rule", "registry", "kind"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.warnings = Counter(
            "admission_warnings",
            "Warnings returned with admission responses.",
            ["kind"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.copies = Counter(
            "secret_copies",
            "Secret copy writes by outcome.",
            ["action", "result"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.copies_refused = Counter(
            "copies_refused",
            "Copies the API server refused to create at admission; their names were not "
            "injected (a pod never names a Secret that will not exist).",
            namespace=NAMESPACE,
            registry=r,
        )
        self.conflicts = Counter(
            "ownership_conflicts",
            "Secrets with a managed name that we do not own.",
            namespace=NAMESPACE,
            registry=r,
        )
        self.protected_sources = Counter(
            "protected_sources",
            "Policy sources carrying our managed-by label where no rule wants a copy: left alone.",
            namespace=NAMESPACE,
            registry=r,
        )
        self.policy_loads = Counter(
            "policy_loads",
            "Policy load attempts by result.",
            ["result"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.policy_valid = Gauge(
            "policy_valid",
            "1 when the latest policy edit was valid and is in force.",
            namespace=NAMESPACE,
            registry=r,
            multiprocess_mode="livemin",
        )
        self.policy_generation = Gauge(
            "policy_generation",
            "resourceVersion of the policy in force (min over workers: all have at least it).",
            namespace=NAMESPACE,
            registry=r,
            multiprocess_mode="livemin",
        )
        self.policy_rules = Gauge(
            "policy_rules",
            "Rules in the policy in force.",
            namespace=NAMESPACE,
            registry=r,
            multiprocess_mode="livemax",
        )
        self.cache_objects = Gauge(
            "cache_objects",
            "Objects held in the in-memory cluster view (min over workers: every worker has "
            "at least these; a lagging watch shows here).",
            ["kind"],
            namespace=NAMESPACE,
            registry=r,
            multiprocess_mode="livemin",
        )
        self.ready = Gauge(
            "ready",
            "1 when this process has a policy, a synced view and a certificate.",
            namespace=NAMESPACE,
            registry=r,
            multiprocess_mode="livemin",
        )
        self.permission_missing = Gauge(
            "policy_permission_missing",
            "1 while the API server refuses a permission the policy in force needs (the labels "
            "name it; an Event on the policy ConfigMap says how to fix it), 0 once granted.",
            ["component", "rule", "verb", "resource", "namespace", "name"],
            namespace=NAMESPACE,
            registry=r,
            multiprocess_mode="livemax",
        )
        self.client_requests = Counter(
            "client_requests",
            "Requests this process sent to the API server (the controller's, which a "
            "client-side bound of controller_qps/controller_burst paces).",
            namespace=NAMESPACE,
            registry=r,
        )
        self.client_rate_limited_seconds = Counter(
            "client_rate_limited_seconds",
            "Time requests waited for the client-side bound: steadily rising means the "
            "controller has more work than its qps allows (a resync of many namespaces).",
            namespace=NAMESPACE,
            registry=r,
        )
        self.watch_restarts = Counter(
            "watch_restarts",
            "Watches re-opened after an error or expiry.",
            ["resource"],
            namespace=NAMESPACE,
            registry=r,
        )


def exposition(metrics: Metrics | None) -> bytes:
    """Text exposition: the multiprocess sum when enabled, else ``metrics``' own registry."""
    if multiprocess_enabled():
        registry = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(metrics.registry if metrics is not None else CollectorRegistry())
