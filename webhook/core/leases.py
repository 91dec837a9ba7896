"""Leader election over a coordination.k8s.io Lease: the decision, without the I/O.

Exactly one controller may write at a time (two writers would fight over every copy). The
rules are client-go's: a holder keeps the Lease by renewing it before ``leaseDurationSeconds``
runs out; anyone may take a Lease whose renewTime is older than that, or one that was
released (empty holder). Time comes in as a parameter, so the edge cases are table tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

__all__ = ["LeaseDecision", "decide", "lease_spec"]

Action = Literal["create", "renew", "acquire", "wait"]


@dataclass(frozen=True, slots=True)
class LeaseDecision:
    action: Action
    """``wait``: someone else holds a live Lease; the others mean write ``spec``."""
    spec: Mapping[str, Any] | None
    """The Lease spec to write (None for ``wait``)."""
    holder: str
    """Who holds the Lease after this decision (if the write succeeds)."""


def _format(moment: datetime) -> str:
    """MicroTime, as the API server expects (RFC 3339 with microseconds)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = value.replace("Z", "+00:00")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None  # MicroTime always carries a zone


def lease_spec(
    identity: str, now: datetime, duration: int, acquired: str | None, transitions: int
) -> dict[str, Any]:
    return {
        "holderIdentity": identity,
        "leaseDurationSeconds": duration,
        "acquireTime": acquired or _format(now),
        "renewTime": _format(now),
        "leaseTransitions": transitions,
    }


def decide(
    spec: Mapping[str, Any] | None, identity: str, now: datetime, duration: int
) -> LeaseDecision:
    """What ``identity`` should do with a Lease whose current spec is ``spec`` (None: absent)."""
    if spec is None:
        return LeaseDecision("create", lease_spec(identity, now, duration, None, 0), identity)
    holder = str(spec.get("holderIdentity") or "")
    transitions = int(spec.get("leaseTransitions") or 0)
    if holder == identity:
        acquired = spec.get("acquireTime")
        return LeaseDecision(
            "renew",
            lease_spec(identity, now, duration, str(acquired) if acquired else None, transitions),
            identity,
        )
    renewed = _parse(spec.get("renewTime")) or _parse(spec.get("acquireTime"))
    held_for = int(spec.get("leaseDurationSeconds") or duration)
    expired = renewed is None or now >= renewed + timedelta(seconds=held_for)
    if not holder or expired:
        return LeaseDecision(
            "acquire", lease_spec(identity, now, duration, None, transitions + 1), identity
        )
    return LeaseDecision("wait", None, holder)
