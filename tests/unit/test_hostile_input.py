"""Hostile pod specs cost bounded CPU and memory (issue 16 §4).

An image string no runtime could pull is refused before any regex runs and never enters a
cache; the planner's memos are bounded in bytes, so pods carrying megabytes of distinct image
names cannot grow a worker; glob patterns with many stars against long labels answer (their
linear cost is measured in tests/bench, their answers against Go in test_glob_oracle).
"""

from __future__ import annotations

import gc
import tracemalloc

import pytest

from tests.unit.factories import pod, pull_secret
from webhook.core import images, registry
from webhook.core.clusterview import ClusterStore, source_from_object
from webhook.core.images import InvalidImageReference, parse_image
from webhook.core.plan import Planner
from webhook.core.policy import load_policy
from webhook.core.review import AdmissionRequest

POLICY = load_policy(
    "apiVersion: pullsecret-injector.io/v1\nkind: PullSecretPolicy\n"
    "defaults: {sourceNamespace: pull-secrets}\n"
    "rules:\n  - {name: corp, registries: ['*.example.com'], secrets: [corp-pull]}\n"
)


@pytest.mark.parametrize(
    ("image", "problem"),
    [
        pytest.param("a" * 2_400_000, "longer than any image a runtime can pull", id="2.4 MB"),
        pytest.param("h" * 300 + ".com/app", "registry host is 304 characters", id="long host"),
        pytest.param("r.example.com/" + "p" * 300, "repository path is over 255", id="long path"),
        pytest.param("p/" * 130 + "x:tag", "repository path is over 255", id="long hub path"),
    ],
)
def test_an_image_no_runtime_could_pull_is_refused_without_entering_the_cache(
    image: str, problem: str
) -> None:
    cached = images._PARSED.size
    with pytest.raises(InvalidImageReference) as caught:
        parse_image(image)
    assert problem in str(caught.value)
    assert len(str(caught.value)) < 300  # the message shows a prefix, not the whole string
    assert images._PARSED.size == cached


def test_the_longest_valid_references_still_parse() -> None:
    host = ".".join(["h" * 63] * 3) + ".io"  # 195 characters
    ref = parse_image(f"{host}:5000/{'p' * 255}:{'t' * 128}@sha256:{'a' * 64}")
    assert ref.path == "p" * 255


def test_pods_full_of_distinct_long_image_names_do_not_grow_the_planner() -> None:
    view = ClusterStore()
    view.put_source(source_from_object(pull_secret("corp-pull", "pull-secrets", ["r.example.com"])))
    planner = Planner(POLICY, view)

    def hostile(n: int) -> AdmissionRequest:
        # 1,000 characters each: under the overall bound, refused for the host's length
        names = [f"{'h' * 300}{n}-{i}.example.com/{'x' * 600}:1" for i in range(2500)]
        return AdmissionRequest("Pod", "CREATE", "team-a", pod(names))  # ~2.5 MB each

    planner.plan(hostile(0))
    gc.collect()
    tracemalloc.start()
    try:
        for n in range(1, 40):  # ~100 MB of distinct image names
            planner.plan(hostile(n))
        gc.collect()
        grown, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024 * 1024, f"the planner kept {grown / 2**20:.0f} MiB"


def test_distinct_valid_images_at_the_bounds_cost_a_bounded_amount_of_memory() -> None:
    """Images every runtime could pull, each new: the parse and match memos stay small."""
    view = ClusterStore()
    view.put_source(source_from_object(pull_secret("corp-pull", "pull-secrets", ["r.example.com"])))
    planner = Planner(POLICY, view)

    def near_bounds(n: int) -> AdmissionRequest:
        names = [
            f"{'h' * 62}.{'g' * 62}.{'f' * 62}.n{n}-{i}.example.com/{'p' * 200}/{n}-{i}:{'t' * 120}"
            for i in range(500)
        ]
        return AdmissionRequest("Pod", "CREATE", "team-a", pod(names))

    for memo in (images._PARSED, registry._SCHEMELESS, registry._GLOB_MATCHES):
        memo.clear()
    planner.plan(near_bounds(0))
    gc.collect()
    tracemalloc.start()
    try:
        for n in range(1, 80):  # 40,000 distinct images of ~560 characters
            planner.plan(near_bounds(n))
        gc.collect()
        grown, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert grown < 24 * 1024 * 1024, f"parsing and matching kept {grown / 2**20:.0f} MiB"


def test_a_huge_image_in_a_pod_is_a_warning_not_an_error() -> None:
    view = ClusterStore()
    request = AdmissionRequest("Pod", "CREATE", "team-a", pod(["a" * 2_400_000, "nginx"]))
    decided = Planner(POLICY, view).plan(request)
    assert decided.deny is None
    assert any("longer than any image a runtime can pull" in w for w in decided.warnings)
    assert all(len(w) <= 256 for w in decided.warnings)
