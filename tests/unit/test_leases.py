"""decide(): leader election over a Lease, client-go's rules, with time as a parameter."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from webhook.core.leases import LeaseDecision, decide

ME = "controller-7d9f-abcde"
OTHER = "controller-7d9f-zzzzz"
DURATION = 15

NOW = datetime(2025, 3, 14, 15, 9, 26, 535897, tzinfo=UTC)
NOW_TEXT = "2025-03-14T15:09:26.535897Z"
ACQUIRED_TEXT = "2025-03-14T09:00:00.000000Z"


def micro(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def held(
    holder: str | None,
    renewed: str | None,
    *,
    duration: int | None = DURATION,
    acquired: str | None = ACQUIRED_TEXT,
    transitions: int | None = 4,
) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    for key, value in (
        ("holderIdentity", holder),
        ("leaseDurationSeconds", duration),
        ("acquireTime", acquired),
        ("renewTime", renewed),
        ("leaseTransitions", transitions),
    ):
        if value is not None:
            spec[key] = value
    return spec


def written(*, acquired: str = NOW_TEXT, transitions: int) -> dict[str, Any]:
    """The spec ``ME`` writes at ``NOW``."""
    return {
        "holderIdentity": ME,
        "leaseDurationSeconds": DURATION,
        "acquireTime": acquired,
        "renewTime": NOW_TEXT,
        "leaseTransitions": transitions,
    }


@dataclass(frozen=True)
class Case:
    spec: Mapping[str, Any] | None
    expected: LeaseDecision


def case(case_id: str, spec: Mapping[str, Any] | None, expected: LeaseDecision) -> Any:
    return pytest.param(Case(spec, expected), id=case_id)


def seconds_ago(seconds: float) -> str:
    return micro(NOW - timedelta(seconds=seconds))


CASES = [
    case(
        "no Lease yet: create it, holding it from now with no transitions",
        None,
        LeaseDecision("create", written(transitions=0), ME),
    ),
    case(
        "our own Lease: renew it, keeping when we acquired it and the transition count",
        held(ME, seconds_ago(5)),
        LeaseDecision("renew", written(acquired=ACQUIRED_TEXT, transitions=4), ME),
    ),
    case(
        "our own Lease, even past its expiry: renew it rather than count a transition",
        held(ME, seconds_ago(60)),
        LeaseDecision("renew", written(acquired=ACQUIRED_TEXT, transitions=4), ME),
    ),
    case(
        "our own Lease without an acquireTime: renew it and record one",
        held(ME, seconds_ago(5), acquired=None),
        LeaseDecision("renew", written(acquired=NOW_TEXT, transitions=4), ME),
    ),
    case(
        "another holder renewed recently: wait, and say who leads",
        held(OTHER, seconds_ago(5)),
        LeaseDecision("wait", None, OTHER),
    ),
    case(
        "another holder one microsecond before expiry: still wait",
        held(OTHER, micro(NOW - timedelta(seconds=DURATION) + timedelta(microseconds=1))),
        LeaseDecision("wait", None, OTHER),
    ),
    case(
        "another holder exactly at expiry: take over, counting one transition",
        held(OTHER, seconds_ago(DURATION)),
        LeaseDecision("acquire", written(transitions=5), ME),
    ),
    case(
        "another holder long expired: take over, counting one transition",
        held(OTHER, seconds_ago(3600)),
        LeaseDecision("acquire", written(transitions=5), ME),
    ),
    case(
        "the holder's own, longer lease duration is honoured, not ours",
        held(OTHER, seconds_ago(DURATION + 5), duration=60),
        LeaseDecision("wait", None, OTHER),
    ),
    case(
        "a Lease without a duration is judged by ours",
        held(OTHER, seconds_ago(DURATION), duration=None),
        LeaseDecision("acquire", written(transitions=5), ME),
    ),
    case(
        "a released Lease (empty holder) is taken at once, however fresh",
        held("", seconds_ago(1)),
        LeaseDecision("acquire", written(transitions=5), ME),
    ),
    case(
        "a Lease without holderIdentity is taken at once",
        held(None, seconds_ago(1)),
        LeaseDecision("acquire", written(transitions=5), ME),
    ),
    case(
        "a Lease without leaseTransitions counts from zero",
        held(OTHER, seconds_ago(60), transitions=None),
        LeaseDecision("acquire", written(transitions=1), ME),
    ),
    case(
        "an unreadable renewTime and no acquireTime: take over",
        held(OTHER, "yesterday-ish", acquired=None),
        LeaseDecision("acquire", written(transitions=5), ME),
    ),
    case(
        "an unreadable renewTime and an unreadable acquireTime: take over",
        held(OTHER, "not-a-time", acquired="also-not-a-time"),
        LeaseDecision("acquire", written(transitions=5), ME),
    ),
    case(
        "an empty renewTime and no acquireTime: take over",
        held(OTHER, "", acquired=None),
        LeaseDecision("acquire", written(transitions=5), ME),
    ),
    case(
        "a renewTime of the wrong JSON type: take over",
        {**held(OTHER, None, acquired=None), "renewTime": 1710428966},
        LeaseDecision("acquire", written(transitions=5), ME),
    ),
    case(
        "no renewTime but a recent acquireTime: the acquireTime counts, so wait",
        held(OTHER, None, acquired=seconds_ago(3)),
        LeaseDecision("wait", None, OTHER),
    ),
    case(
        "a renewTime with a UTC offset other than Z is read correctly",
        held(
            OTHER, (NOW - timedelta(seconds=5)).astimezone(timezone(timedelta(hours=2))).isoformat()
        ),
        LeaseDecision("wait", None, OTHER),
    ),
]


@pytest.mark.parametrize("c", CASES)
def test_decide(c: Case) -> None:
    assert decide(c.spec, ME, NOW, DURATION) == c.expected


def test_a_renewtime_without_a_timezone_is_treated_as_unreadable() -> None:
    spec = held(OTHER, "2025-03-14T15:09:20.000000", acquired=None)

    assert decide(spec, ME, NOW, DURATION).action == "acquire"


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        pytest.param(NOW, NOW_TEXT, id="UTC with microseconds"),
        pytest.param(
            datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
            "2025-01-02T03:04:05.000000Z",
            id="whole seconds still carry six fractional digits",
        ),
        pytest.param(
            datetime(2025, 1, 2, 1, 0, 0, 7, tzinfo=timezone(timedelta(hours=-5))),
            "2025-01-02T06:00:00.000007Z",
            id="another offset is converted to UTC and written with Z",
        ),
    ],
)
def test_times_are_written_as_kubernetes_microtime(now: datetime, expected: str) -> None:
    decision = decide(None, ME, now, DURATION)

    assert decision.spec is not None
    assert decision.spec["renewTime"] == expected
    assert decision.spec["acquireTime"] == expected


def test_two_controllers_hand_over_through_the_written_spec() -> None:
    """What one decision writes, the other reads back: a leader that stops renewing loses the
    Lease exactly ``leaseDurationSeconds`` after its last renewal, and not a microsecond earlier.
    """
    start = NOW
    created = decide(None, OTHER, start, DURATION)
    renewed = decide(created.spec, OTHER, start + timedelta(seconds=10), DURATION)
    assert renewed.action == "renew"
    assert renewed.spec is not None
    last_renewal = start + timedelta(seconds=10)

    just_before = last_renewal + timedelta(seconds=DURATION) - timedelta(microseconds=1)
    assert decide(renewed.spec, ME, just_before, DURATION) == LeaseDecision("wait", None, OTHER)

    taken = decide(renewed.spec, ME, last_renewal + timedelta(seconds=DURATION), DURATION)
    assert taken.action == "acquire"
    assert taken.holder == ME
    assert taken.spec is not None
    assert taken.spec["leaseTransitions"] == 1
    assert decide(taken.spec, OTHER, last_renewal + timedelta(seconds=DURATION + 1), DURATION) == (
        LeaseDecision("wait", None, ME)
    )
