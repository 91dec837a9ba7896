"""The interleaved API-server bench gives every phase the same share of every moment."""

from __future__ import annotations

from itertools import pairwise

import pytest

from tests.bench.bench_apiserver import interleaved_order


@pytest.mark.parametrize(("count", "paths"), [(8000, 4), (10, 5), (7, 3), (5, 1)])
def test_each_block_holds_every_phase_once(count: int, paths: int) -> None:
    order = interleaved_order(count, paths, seed=3)
    assert len(order) == count
    for start in range(0, count - paths + 1, paths):
        assert sorted(order[start : start + paths]) == list(range(paths))


def test_no_phase_always_follows_another() -> None:
    order = interleaved_order(4000, 4, seed=0)
    successions = {(a, b) for a, b in pairwise(order) if a != b}
    assert len(successions) == 4 * 3  # every phase is followed by each of the others
    assert order != interleaved_order(4000, 4, seed=1)  # rounds differ
