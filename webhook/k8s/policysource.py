"""Where the policy comes from: the ConfigMap (watched) or a file (polled), validated.

Every text that arrives is parsed by ``webhook.core.policy``. A valid policy is handed to
``accept``, which decides when it goes into force (``LiveState`` first starts the watches it
needs). An invalid edit never replaces the last good policy: it is logged with every located
error, counted, and recorded as an Event on the ConfigMap, so ``kubectl describe`` shows it.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from webhook.core.policy import Policy, PolicyInvalid, load_policy
from webhook.k8s.events import record_event
from webhook.k8s.reflector import ReflectorFactory, Watch
from webhook.metrics import Metrics
from webhook.settings import Settings

__all__ = ["PolicySource"]

log = logging.getLogger("webhook.k8s.policysource")

Accept = Callable[[Policy, str], None]
"""Put a validated policy (and its generation) into force."""


class PolicySource:
    """Follows the policy ConfigMap or file and reports what it finds."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        core: Any,
        reflectors: ReflectorFactory,
        accept: Accept,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.core = core
        self._reflectors = reflectors
        self._accept = accept
        self.error = "policy not loaded yet"
        """Why no policy is in force (cleared once one is)."""
        self.in_force: Policy | None = None
        self.rejected: tuple[str, str] | None = None
        """The latest policy text not put in force, as (generation, why); cleared by a valid
        one (the controller's status document reports it)."""
        self.watch: Watch | None = None
        self.configmap: Mapping[str, Any] | None = None
        """The policy ConfigMap as last seen: Events about the policy are recorded on it."""
        self._stop = threading.Event()

    def start(self) -> None:
        if self.settings.policy_configmap:
            self.watch = self._reflectors(
                "policy",
                functools.partial(
                    self.core.list_namespaced_config_map,
                    self.settings.policy_namespace,
                    field_selector=f"metadata.name={self.settings.policy_configmap}",
                ),
                self._replace,
                self._event,
                watch_timeout=self.settings.watch_timeout_seconds,
            ).start()
        elif self.settings.policy_file:
            threading.Thread(target=self._poll_file, name="policy-file", daemon=True).start()
        else:
            self.error = "neither PSI_POLICY_CONFIGMAP nor PSI_POLICY_FILE is set"

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self.watch is not None:
            self.watch.stop(timeout=timeout)

    def apply_text(self, text: str, version: str, involved: Mapping[str, Any] | None) -> bool:
        """Parse and, if valid, hand the policy to ``accept``. Returns whether it was valid."""
        try:
            policy = load_policy(text, generation=version, exclusions=self.settings.exclusions)
        except PolicyInvalid as exc:
            self._reject([str(e) for e in exc.errors], version, involved)
            return False
        self._accept(policy, version)
        self.in_force = policy
        self.error = ""
        self.rejected = None
        return True

    # -- the ConfigMap ---------------------------------------------------------------------

    def _replace(self, items: list[dict[str, Any]]) -> None:
        if not items:
            self._missing()
            return
        self._apply_configmap(items[0])

    def _event(self, kind: str, obj: dict[str, Any]) -> None:
        if kind == "DELETED":
            self._missing()
        else:
            self._apply_configmap(obj)

    def _missing(self) -> None:
        where = f"{self.settings.policy_namespace}/{self.settings.policy_configmap}"
        if self.in_force is None:
            self.error = f"policy ConfigMap {where} not found"
        self.rejected = ("", f"policy ConfigMap {where} not found; the last good policy stays")
        log.warning(
            "policy ConfigMap missing; keeping the last good policy",
            extra={"event": "policy.missing", "configmap": where},
        )
        self.metrics.policy_loads.labels("missing").inc()

    def _apply_configmap(self, configmap: dict[str, Any]) -> None:
        self.configmap = configmap
        metadata = configmap.get("metadata") or {}
        data = configmap.get("data") or {}
        version = str(metadata.get("resourceVersion", ""))
        text = data.get(self.settings.policy_key)
        if not isinstance(text, str):
            self._reject([f"data key {self.settings.policy_key!r} is missing"], version, configmap)
            return
        self.apply_text(text, version, configmap)

    # -- a file ----------------------------------------------------------------------------

    def _poll_file(self) -> None:
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
                    self.apply_text(text, digest, None)
            except OSError as exc:
                if self.in_force is None:
                    self.error = f"policy file unreadable: {exc}"
            self._stop.wait(1.0)

    def record_event(self, reason: str, message: str) -> None:
        """An Event on the policy ConfigMap (nothing when the policy comes from a file)."""
        if self.configmap is None:
            return
        record_event(
            self.core,
            {"apiVersion": "v1", "kind": "ConfigMap", **self.configmap},
            reason,
            message,
            component=self.settings.event_source,
            dedupe_key=message,
        )

    # -- invalid edits ---------------------------------------------------------------------

    def _reject(
        self, errors: Sequence[str], version: str, involved: Mapping[str, Any] | None
    ) -> None:
        if self.in_force is None:
            self.error = "policy invalid: " + "; ".join(errors)[:500]
        self.rejected = (version, "; ".join(errors))
        self.metrics.policy_loads.labels("invalid").inc()
        self.metrics.policy_valid.set(0)
        log.error(
            "policy rejected; keeping the last good policy",
            extra={
                "event": "policy.rejected",
                "generation": version,
                "errors": list(errors),
                "in_force": self.in_force.generation if self.in_force else None,
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
