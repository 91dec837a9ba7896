"""Benchmark: the worst single review a hostile object can buy, and memory under 10,000 of them.

    python -m tests.bench.bench_adversarial [--samples 200] [--reviews 10000]

Issue 16 §4: one pod spec with megabyte image strings, or a glob with many stars against a
long label, used to cost seconds of a worker (over the API server's 3 s timeout) and grow it
by hundreds of MiB. Image strings over the bounds a runtime would reject are now refused
before any regex or cache, memos are bounded in bytes and glob matching is linear; this
benchmark measures what is left. Two paths, both in this process, nothing on the network:

* core: ``Planner.plan`` on a decoded ``AdmissionRequest`` (what a worker runs per review);
* http: the Flask app's ``POST /mutate`` (``create_app`` with a ``StaticBackend``, Flask's
  test client): content type, 3 MiB body limit, ``json.loads``, envelope checks, the plan,
  the JSON response. Cases that are only bytes (garbage JSON) run here only.

Every sample of a case is a different input (its strings carry the sample number), so no
memo answers: the figures are the cold, worst-case cost. Reported per case: max and p99 of
the CPU time of the reviewing thread in ms (target ≤ 5 ms for a pod within the bounds; cost
grows linearly with distinct images, so pods of a thousand at-bound images, and of as many as
a 3 MiB body holds, are cases of their own). Building the inputs is not timed.

Memory: RSS and PSS (``/proc/self/status``, ``/proc/self/smaps_rollup``) of this process,
after ``gc.collect()``, before the run, after the first 1,000 and after ``--reviews``
adversarial reviews through the http path with distinct inputs, cycling the cases (target:
flat; what the byte-bounded memos hold once full is the growth up to the first reading).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from flask.testing import FlaskClient

from tests.bench.harness import machine_summary, percentile, pss_kib, rss_kib
from tests.unit.factories import pod, pull_secret
from webhook.app import create_app
from webhook.core.clusterview import ClusterStore, source_from_object
from webhook.core.images import MAX_HOST_LENGTH, MAX_REFERENCE_LENGTH, NAME_TOTAL_LENGTH_MAX
from webhook.core.plan import Planner
from webhook.core.policy import load_policy
from webhook.core.review import AdmissionRequest
from webhook.http.backend import StaticBackend
from webhook.metrics import Metrics
from webhook.settings import Settings

NAMESPACE = "team-a"
SOURCE_NAMESPACE = "pull-secrets"
MIB = 1024

# The glob patterns of issue 16 (exponential in a backtracking matcher), as registries and as
# namespace names; a selector too, so the namespace scope does real work.
POLICY = f"""
apiVersion: pullsecret-injector.io/v1
kind: PullSecretPolicy
defaults: {{sourceNamespace: {SOURCE_NAMESPACE}}}
rules:
  - {{name: cache, registries: ['*-*-cache.example.com'], secrets: [cache-pull]}}
  - name: stars
    registries: ['*a*a*a*b.example.com', '*.*.*.example.org']
    secrets: [stars-pull]
  - name: scoped
    registries: ['*-*-*-*.example.net']
    secrets: [scoped-pull]
    namespaces:
      include: ['*-*-cache', '*a*a*a*b', 'team-*']
      selector: {{matchExpressions: [{{key: tier, operator: NotIn, values: [prod]}}]}}
"""


def at_bound_host(label_char: str, suffix: str, i: int) -> str:
    """A host of exactly ``MAX_HOST_LENGTH`` characters: one long first label that the
    patterns above almost match, made distinct by ``i``, then ``suffix``."""
    head = f"{i}-"
    fill = MAX_HOST_LENGTH - len(head) - len(suffix)
    return head + (label_char * fill)[:fill] + suffix


def at_bound_image(i: int, host_suffix: str = "-cach.example.com", fill: str = "a-") -> str:
    """Every part at its bound: host 255, path 255, tag 128, a digest (valid, no rule hit)."""
    path = ("p/" * (NAME_TOTAL_LENGTH_MAX // 2))[: NAME_TOTAL_LENGTH_MAX - 1] + "x"
    return f"{at_bound_host(fill, host_suffix, i)}/{path}:{'t' * 128}@sha256:{'a' * 64}"


def many(count: int, i: int) -> list[str]:
    return [at_bound_image(i * 100_000 + c) for c in range(count)]


@dataclass(frozen=True)
class Case:
    name: str
    pod: Callable[[int], dict[str, Any]] | None
    """Sample ``i``'s pod (core and http paths); ``None``: bytes only (http path)."""
    body: Callable[[int], bytes] | None = None
    """Sample ``i``'s raw body, when it is not a review of ``pod``."""
    namespace: Callable[[int], str] = lambda i: NAMESPACE
    memory: bool = True
    """Part of the 10,000-review memory run (the slowest cases are measured, not cycled)."""


def nested(depth: int, i: int) -> Any:
    value: Any = f"leaf-{i}"
    for _ in range(depth):
        value = {"x": [value]}
    return value


CASES: tuple[Case, ...] = (
    Case("image at every bound, '*-*-cache' almost matches", lambda i: pod([at_bound_image(i)])),
    Case(
        "host label of 240 'a', '*a*a*a*b' almost matches",
        lambda i: pod([f"{at_bound_host('a', 'a.example.com', i)}/app:1"]),
    ),
    Case(
        "host label of 240 'a-', '*-*-*-*' matches",
        lambda i: pod([f"{at_bound_host('a-', 'x.example.net', i)}/app:1"]),
    ),
    Case(
        f"reference of {MAX_REFERENCE_LENGTH + 1} characters (refused)",
        lambda i: pod([f"r{i}.example.com/" + "p" * MAX_REFERENCE_LENGTH]),
    ),
    Case(
        f"host of {MAX_HOST_LENGTH + 1} characters (refused)",
        lambda i: pod([at_bound_host("h", "0.example.com", i).replace("-", "hh", 1) + "/a"]),
    ),
    Case(
        f"path of {NAME_TOTAL_LENGTH_MAX + 1} characters (refused)",
        lambda i: pod([f"r{i}.example.com/" + "p" * (NAME_TOTAL_LENGTH_MAX + 1)]),
    ),
    Case("2.4 MB image (refused)", lambda i: pod([f"{i}" + "a" * 2_400_000, "nginx"])),
    Case(
        "100 containers + 100 init containers, distinct at-bound images",
        lambda i: pod(many(100, i), init=many(100, i + 50_000)),
    ),
    Case("1,000 containers, distinct at-bound images", lambda i: pod(many(1000, i)), memory=False),
    Case(
        "forged namespace name of 4,000 'a-' (name globs, NotIn selector)",
        lambda i: pod([f"{at_bound_host('a-', 'x.example.net', i)}/app:1"], namespace=None),
        namespace=lambda i: f"{i}-" + "a-" * 2000,
    ),
    Case(
        "wrong types: image an 800-deep object, labels a list",
        lambda i: {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", "labels": [i]},
            "spec": {"containers": [{"name": "c", "image": nested(400, i)}]},
        },
    ),
    Case("body: 1 MB of '[' (RecursionError)", None, body=lambda i: b"[" * 2**20 + f"{i}".encode()),
    Case(
        "body: 3 MiB - 1 of garbage bytes",
        None,
        body=lambda i: (f"{i}".encode() + bytes(range(256)) * 12288)[: 3 * 2**20 - 1],
    ),
    Case(
        "body: over 3 MiB (413 before reading)",
        None,
        body=lambda i: b'{"a":"' + b"x" * (3 * 2**20) + f'{i}"}}'.encode(),
    ),
)


def body_limit_pod(i: int) -> dict[str, Any]:
    """As many distinct at-bound containers as a 3 MiB body holds (the request limit of both
    the API server and the webhook): the most plan work one review can carry."""
    per_container = len(json.dumps({"name": "c0000", "image": at_bound_image(0)})) + 2
    return pod(many((3 * 2**20 - 1024) // per_container, i))


def review_document(obj: dict[str, Any], namespace: str, i: int) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": f"00000000-0000-4000-8000-{i:012d}",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": obj,
            "dryRun": True,
        },
    }


def store() -> ClusterStore:
    view = ClusterStore()
    for name, key in (
        ("cache-pull", "*-*-cache.example.com"),
        ("stars-pull", "*a*a*a*b.example.com"),
        ("scoped-pull", "*-*-*-*.example.net"),
    ):
        view.put_source(source_from_object(pull_secret(name, SOURCE_NAMESPACE, [key])))
    view.put_namespace(NAMESPACE, {"kubernetes.io/metadata.name": NAMESPACE})
    return view


@dataclass
class Paths:
    planner: Planner
    client: FlaskClient

    @classmethod
    def build(cls) -> Paths:
        policy = load_policy(POLICY)
        backend = StaticBackend(policy, store())
        settings = Settings(cluster=False, log_level="WARNING")  # 3 MiB body limit, as served
        app = create_app(settings, backend=backend, metrics=Metrics())
        return cls(Planner(policy, store()), app.test_client())

    def core(self, case: Case, i: int) -> float:
        assert case.pod is not None
        request = AdmissionRequest("Pod", "CREATE", case.namespace(i), case.pod(i))
        started = clock()
        self.planner.plan(request)
        return clock() - started

    def http(self, case: Case, i: int) -> float:
        if case.body is not None:
            body = case.body(i)
        else:
            assert case.pod is not None
            body = json.dumps(review_document(case.pod(i), case.namespace(i), i)).encode()
        started = clock()
        response = self.client.post("/mutate", data=body, content_type="application/json")
        elapsed = clock() - started
        if response.status_code not in (200, 400, 413):
            raise RuntimeError(f"{case.name}: HTTP {response.status_code} {response.data[:200]!r}")
        if case.pod is not None and response.status_code != 200:
            raise RuntimeError(f"{case.name}: HTTP {response.status_code} {response.data[:200]!r}")
        return elapsed


def clock() -> float:
    """CPU time of this thread: what a review costs the worker, without the time other
    processes of a shared machine held the core (wall-clock maxima here were 4 ms scheduler
    slices, not our work). The worker is single-threaded per review, so the two agree on an
    idle core."""
    return time.thread_time()


@dataclass
class FullCollections:
    """Pauses of the garbage collector's full (generation 2) passes, which land inside
    whichever review happens to allocate at that moment: they explain lone maxima."""

    pauses: list[float]
    _started: float = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._started = clock()
        else:
            self.pauses.append(clock() - self._started)


def stats(seconds: Sequence[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return f"{max(ms):.2f} | {percentile(ms, 99):.2f}"


def memory() -> tuple[float, float]:
    gc.collect()
    return rss_kib(os.getpid()) / MIB, pss_kib(os.getpid()) / MIB


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=200, help="distinct inputs per case")
    parser.add_argument("--reviews", type=int, default=10_000, help="reviews of the memory run")
    args = parser.parse_args(argv)
    print(f"# Adversarial reviews benchmark\n\n{machine_summary()}\n", flush=True)
    paths = Paths.build()
    start_memory = memory()
    collections = FullCollections([])
    gc.callbacks.append(collections)
    seed = 10_000_000  # sample numbers of the latency part; the memory run uses others
    print("| case | core max ms | core p99 ms | http max ms | http p99 ms |")
    print("|---|---|---|---|---|")
    everything = [
        *CASES,
        Case("body-limit pod: 3 MiB of at-bound containers", body_limit_pod, memory=False),
    ]
    for case in everything:
        samples = args.samples if case.memory else max(5, args.samples // 40)
        core = stats([paths.core(case, seed + i) for i in range(samples)]) if case.pod else "- | -"
        # Other numbers than the core's: the image parser's caches are process-wide.
        http = stats([paths.http(case, 2 * seed + i) for i in range(samples)])
        print(f"| {case.name} | {core} | {http} |", flush=True)
    print(
        f"\n{len(collections.pauses)} full garbage collections ran during these samples, "
        f"the longest {max(collections.pauses, default=0) * 1000:.1f} ms (CPU)."
    )
    gc.callbacks.remove(collections)
    cycled = [c for c in CASES if c.memory]
    first = min(1000, args.reviews)
    readings = [("before", *start_memory)]
    started = time.monotonic()
    for i in range(args.reviews):
        paths.http(cycled[i % len(cycled)], i)
        if i + 1 == first:
            readings.append((f"after {first:,}", *memory()))
    readings.append((f"after {args.reviews:,}", *memory()))
    took = time.monotonic() - started
    print(
        f"\nMemory of this process over {args.reviews:,} adversarial reviews through the "
        f"http path ({len(cycled)} cases cycled, every input distinct, {took:.0f} s):\n"
    )
    print("| when | RSS MiB | PSS MiB |\n|---|---|---|")
    for label, rss, pss in readings:
        print(f"| {label} | {rss:.1f} | {pss:.1f} |")
    (_, rss0, pss0), (_, rss1, pss1), (_, rss2, pss2) = readings[0], readings[1], readings[-1]
    print(
        f"\nGrowth: {rss2 - rss0:+.1f} MiB RSS / {pss2 - pss0:+.1f} MiB PSS over the whole run; "
        f"{rss2 - rss1:+.1f} MiB RSS / {pss2 - pss1:+.1f} MiB PSS from review {first:,} to "
        f"{args.reviews:,}."
    )


if __name__ == "__main__":
    main()
