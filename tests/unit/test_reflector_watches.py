"""Watches opened together do not end together: each asks the API server for its own timeout.

The API server ends a watch exactly at the ``timeoutSeconds`` it was asked for. With one fixed
timeout, the view keeper's hundreds of watches (opened together at start) all ended and were
re-opened in one burst every period, which showed as a window of slow admissions in the scale
bench. Like client-go's reflectors, each watch asks for between the setting and twice it.
"""

from __future__ import annotations

import threading
from typing import Any

from webhook.k8s.reflector import Reflector, watch_timeout_seconds


def test_timeouts_lie_between_the_setting_and_twice_it_and_are_spread_out() -> None:
    asked = [watch_timeout_seconds(60) for _ in range(500)]

    assert min(asked) >= 60
    assert max(asked) <= 120
    assert len(set(asked)) > 30  # 500 watches opened together re-open over a minute, not at once


class _Answer:
    """A list page or an (empty) watch stream, as ``urllib3`` responses are read here."""

    data = b'{"items": [], "metadata": {"resourceVersion": "1"}}'

    def stream(self, amt: int, decode_content: bool) -> list[bytes]:
        return []

    def release_conn(self) -> None:
        pass


def test_a_reflector_asks_for_its_own_timeout_and_waits_longer_than_it() -> None:
    asked: list[dict[str, Any]] = []
    watched = threading.Event()

    def list_call(**kwargs: Any) -> _Answer:
        if kwargs.get("watch"):
            asked.append(kwargs)
            watched.set()
        return _Answer()

    reflector = Reflector("secret-a", list_call, lambda items: None, lambda kind, obj: None)
    reflector.start()
    try:
        assert watched.wait(10)
    finally:
        reflector.stop()

    first = asked[0]
    assert 300 <= first["timeout_seconds"] <= 600  # the default setting: 300 s
    assert first["_request_timeout"][1] > first["timeout_seconds"]
