"""Benchmark: the pure decision (``plan``) against the cost of merely decoding the review.

    python -m tests.bench.bench_core [--quick]

For pods of 1/10/50 containers x policies of 10/1,000/10,000 rules x pull secrets holding
1/100 ``auths`` keys, it reports the per-decision p50/p99 of ``plan`` in two states:

* warm: the steady state of a cluster (a few hundred distinct images, decided again and
  again; the per-repository memo answers);
* cold: every decision sees repositories the index has never seen (worst case; shows the
  rule index keeping cost flat as rules grow).

The floor is ``json.loads`` of the same AdmissionReview plus ``json.dumps`` of a response:
work any webhook must do. Ratios, not absolute times, are what carry across machines.
"""

from __future__ import annotations

import argparse
import base64
import json
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from webhook.core.clusterview import ClusterStore, source_from_object
from webhook.core.images import parse_image
from webhook.core.plan import Planner
from webhook.core.policy import load_policy
from webhook.core.registry import Keyring, lookup
from webhook.core.review import AdmissionRequest, allow

SOURCE = "pull-secrets"
POOL = 100  # distinct source secrets shared by the rules


def make_policy(rules: int) -> str:
    lines = [
        "apiVersion: pullsecret-injector.io/v1",
        "kind: PullSecretPolicy",
        f"defaults: {{sourceNamespace: {SOURCE}}}",
        "rules:",
    ]
    for i in range(rules):
        pattern = f"'{i}.dkr.ecr.*.amazonaws.com'" if i % 10 == 0 else f"registry-{i}.example.com"
        lines.append(f"  - {{name: r{i}, registries: [{pattern}], secrets: [s{i % POOL}]}}")
    return "\n".join(lines) + "\n"


def make_store(rules: int, keys: int) -> ClusterStore:
    store = ClusterStore()
    store.put_namespace("team-a", {"kubernetes.io/metadata.name": "team-a"})
    auth = base64.b64encode(b"fake-user:fake-pass").decode()
    for s in range(POOL):
        owned = list(range(s, rules, POOL))[: max(keys, 1)]
        registries = [
            f"{r}.dkr.ecr.eu-west-1.amazonaws.com" if r % 10 == 0 else f"registry-{r}.example.com"
            for r in owned
        ]
        registries += [f"other-{s}-{k}.example.org" for k in range(keys - len(registries))]
        payload = json.dumps({"auths": {k: {"auth": auth} for k in registries[:keys]}})
        secret = {
            "metadata": {"namespace": SOURCE, "name": f"s{s}"},
            "type": "kubernetes.io/dockerconfigjson",
            "data": {".dockerconfigjson": base64.b64encode(payload.encode()).decode()},
        }
        store.put_source(source_from_object(secret))
    return store


def images(containers: int, rules: int, salt: int) -> list[str]:
    out = []
    for c in range(containers):
        r = (salt * 7919 + c * 104729) % rules
        if c % 3 == 2:
            out.append(f"nginx:{salt}-{c}")  # public Docker Hub image: no rule covers it
        elif r % 10 == 0:
            out.append(f"{r}.dkr.ecr.eu-west-1.amazonaws.com/app-{salt % 97}:1")
        else:
            out.append(f"registry-{r}.example.com/team/app-{salt % 97}:1")
    return out


def review(image_list: list[str]) -> dict[str, Any]:
    containers = [
        {
            "name": f"c{i}",
            "image": image,
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
            "env": [{"name": "MODE", "value": "bench"}],
            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
        }
        for i, image in enumerate(image_list)
    ]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bench", "namespace": "team-a", "labels": {"app": "bench"}},
        "spec": {"containers": containers, "serviceAccountName": "default"},
    }
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "3f2a6c8e-0000-4000-8000-000000000000",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "team-a",
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": pod,
            "dryRun": False,
        },
    }


@dataclass
class Result:
    p50_us: float
    p99_us: float


def measure(fn: Callable[[int], object], samples: int) -> Result:
    times = []
    for i in range(samples):
        start = time.perf_counter_ns()
        fn(i)
        times.append((time.perf_counter_ns() - start) / 1000)
    times.sort()
    return Result(statistics.median(times), times[int(len(times) * 0.99) - 1])


def cases(quick: bool) -> Iterator[tuple[int, int, int]]:
    for containers in (1, 10, 50):
        for rules in (10, 1000, 10000):
            for keys in (1, 100):
                if quick and (rules == 10000 or keys == 100) and containers != 10:
                    continue
                yield containers, rules, keys


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer cases and samples")
    args = parser.parse_args()
    samples = 2000 if args.quick else 5000
    print(
        f"# pure decision benchmark ({platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}, {samples} samples per cell)\n"
    )
    print(
        "| containers | rules | keys/secret | warm p50 µs | warm p99 µs | cold p50 µs | "
        "cold p99 µs | floor p50 µs | warm/floor |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for containers, rules, keys in cases(args.quick):
        print(run_case(containers, rules, keys, samples), flush=True)
    print()
    print(keyring_case(samples))


def keyring_case(samples: int) -> str:
    """Issue 2's figure: 20 images against 500 auths keys (parse + kubelet lookup)."""
    keys = [f"registry-{i}.example.com" for i in range(480)]
    keys += [f"*.team{i}.example.org" for i in range(19)] + ["https://index.docker.io/v1/"]
    refs = [f"registry-{i * 23}.example.com/app-{i}:1" for i in range(15)]
    refs += [f"x.team{i}.example.org/y" for i in range(3)] + ["nginx", "quay.io/a/b"]
    lookup(keys, "warm.example.com/x")  # index the key set once, as a Planner does per secret set
    warm = measure(lambda i: [lookup(keys, parse_image(r).repository) for r in refs], samples)
    cold = measure(lambda i: Keyring(keys).lookup("docker.io/library/nginx"), 200)
    return (
        f"20 images x 500 keys: {warm.p50_us:.0f} us p50, {warm.p99_us:.0f} us p99 per pod "
        f"(indexing a new set of 500 keys, once per source change: {cold.p50_us:.0f} us p50)"
    )


def run_case(containers: int, rules: int, keys: int, samples: int) -> str:
    policy = load_policy(make_policy(rules))
    store = make_store(rules, keys)
    warm_reviews = [review(images(containers, rules, salt)) for salt in range(200)]
    warm_bodies = [json.dumps(r).encode() for r in warm_reviews]
    warm_requests = [
        AdmissionRequest("Pod", "CREATE", "team-a", r["request"]["object"]) for r in warm_reviews
    ]
    planner = Planner(policy, store)  # what the backend's PlannerSlot holds between edits
    for request in warm_requests:  # fill the memo: the steady state of a cluster
        planner.plan(request)
    warm = measure(lambda i: planner.plan(warm_requests[i % 200]), samples)
    # every cold request names repositories no earlier decision has seen
    cold_requests = [
        _fresh(
            AdmissionRequest(
                "Pod", "CREATE", "team-a", review(images(containers, rules, s))["request"]["object"]
            ),
            s,
        )
        for s in range(min(samples, 1500))
    ]
    cold = measure(lambda i: planner.plan(cold_requests[i]), len(cold_requests))
    floor = measure(
        lambda i: json.dumps(allow(json.loads(warm_bodies[i % 200])["request"]["uid"])), samples
    )
    return (
        f"| {containers} | {rules} | {keys} | {warm.p50_us:.1f} | {warm.p99_us:.1f} | "
        f"{cold.p50_us:.1f} | {cold.p99_us:.1f} | {floor.p50_us:.1f} | "
        f"{warm.p50_us / floor.p50_us:.2f} |"
    )


def _fresh(request: AdmissionRequest, i: int) -> AdmissionRequest:
    """The same pod with repository names never seen before (defeats the memo)."""
    pod = json.loads(json.dumps(request.object))
    for container in pod["spec"]["containers"]:
        name, _, tag = container["image"].rpartition(":")
        container["image"] = f"{name}-n{i}:{tag}"
    return AdmissionRequest("Pod", "CREATE", "team-a", pod)


if __name__ == "__main__":
    main()
