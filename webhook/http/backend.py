"""What the HTTP layer needs from the rest of the process, as a protocol.

Production passes ``webhook.k8s.live.LiveBackend`` (watches + API writes); unit tests and
offline runs pass ``StaticBackend`` (a fixed policy and a hand-filled view). The HTTP code
cannot tell them apart, which is what lets ``app.test_client()`` tests exercise the real
request path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from webhook.core.clusterview import ClusterStore, ClusterView
from webhook.core.copies import CopiesEnsured
from webhook.core.plan import Plan, Planner, PlannerSlot
from webhook.core.policy import Policy

__all__ = ["AdmissionBackend", "StaticBackend"]


class AdmissionBackend(Protocol):
    @property
    def view(self) -> ClusterView: ...

    def policy(self) -> Policy | None:
        """The policy in force, or ``None`` before a valid one has loaded."""
        ...

    def planner(self) -> Planner | None:
        """Decisions for the policy in force and the current view (``None``: no policy)."""
        ...

    def refresh_namespace(self, namespace: str) -> bool:
        """Fetch one namespace the view has not seen yet; True if it is now known."""
        ...

    def ensure_copies(self, plan: Plan, uid: str) -> CopiesEnsured:
        """Make sure ``plan.copies`` exist; say which could not be, and which were refused."""
        ...

    def readiness(self) -> tuple[bool, str]:
        """(ready, why not) — policy loaded and view synced."""
        ...


@dataclass
class StaticBackend:
    """A fixed policy and view; copies are recorded instead of written."""

    current_policy: Policy | None
    store: ClusterStore = field(default_factory=ClusterStore)
    ensured: list[str] = field(default_factory=list)
    planners: PlannerSlot = field(default_factory=PlannerSlot)

    @property
    def view(self) -> ClusterView:
        return self.store

    def policy(self) -> Policy | None:
        return self.current_policy

    def planner(self) -> Planner | None:
        if self.current_policy is None:
            return None
        return self.planners.get(self.current_policy, self.store)

    def refresh_namespace(self, namespace: str) -> bool:
        return self.store.namespace_labels(namespace) is not None

    def ensure_copies(self, plan: Plan, uid: str) -> CopiesEnsured:
        self.ensured.extend(f"{c.namespace}/{c.name}" for c in plan.copies)
        return CopiesEnsured()

    def readiness(self) -> tuple[bool, str]:
        if self.current_policy is None:
            return False, "no valid policy loaded"
        return True, ""
