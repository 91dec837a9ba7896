"""Benchmark: memory of the whole webhook server, at scale and over a sustained run.

    python -m tests.bench.bench_memory [--duration 600] [--rate 200]

Memory is reported two ways for the gunicorn master plus every worker: summed ``VmRSS``
(``/proc/<pid>/status``; pages the workers share copy-on-write with the master are counted
once per process, so it is an upper bound) and summed PSS (``/proc/<pid>/smaps_rollup``; every
page once, which is what a container's memory cgroup is charged). Targets are judged on PSS.
Steps:

1. floors, on a small cluster: the no-op Flask app under the same gunicorn config, and ours
   with the policy but an empty cluster view;
2. the cluster grows to ``--namespaces`` namespaces and ``--secrets`` secrets (``--pool``
   + 1 source secrets, the rest managed copies of them spread over namespaces), the policy to
   ``--rules`` rules; ours restarts and lists it all (idle RSS, and the cache sizes it reports);
3. ``--duration`` seconds of ``--rate`` req/s (wrk, keep-alive) of reviews for 200 different
   pods in 200 namespaces, RSS sampled every ``--sample`` seconds. Growth compares the
   median of the first and the last minute after ``--warmup`` seconds.

Targets (issue 10): ≤ 150 MiB, growth ≤ 5%. Reviews are ``dryRun`` so the load does not add
copies: the view stays the size it was given.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.bench.harness import (
    Certificates,
    Cluster,
    NoopFlask,
    Ours,
    bulk,
    filler_registry,
    learn_patch,
    machine_summary,
    median,
    process_role,
    record_review,
    review_variant,
    run_wrk,
    scratch_dir,
    source_secrets,
    tree_pss_kib,
    tree_rss_kib,
    write_bodies,
)
from tests.e2e.support import SOURCE_NAMESPACE, wait_until
from webhook.core.conventions import (
    HASH_ANNOTATION,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    SOURCE_ANNOTATION,
)
from webhook.core.copies import content_hash

MIB = 1024
DISTINCT_PODS = 200


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--namespaces", type=int, default=10_000)
    parser.add_argument("--secrets", type=int, default=1_000, help="in the view, sources+copies")
    parser.add_argument("--rules", type=int, default=1_000)
    parser.add_argument("--pool", type=int, default=100, help="source secrets besides corp-pull")
    parser.add_argument("--duration", type=float, default=600, help="seconds under load")
    parser.add_argument("--rate", type=float, default=200, help="req/s during the run")
    parser.add_argument("--warmup", type=float, default=30, help="seconds before the baseline")
    parser.add_argument("--sample", type=float, default=5, help="seconds between RSS samples")
    parser.add_argument("--slice", type=float, default=60, help="seconds per wrk run")
    parser.add_argument("--workers", type=int, default=2, help="PSI_WORKERS")
    parser.add_argument("--threads", type=int, default=4, help="PSI_THREADS")
    parser.add_argument("--json", type=Path, help="write raw samples here")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args(argv)
    if args.secrets < args.pool + 1:
        parser.error("--secrets must be at least --pool + 1 (the sources)")
    workdir = scratch_dir("memory")
    print(f"# Memory benchmark\n\n{machine_summary()}\n", flush=True)
    certificates = Certificates.write(workdir / "tls")
    cluster = Cluster.start(workdir, rules=args.rules, pool=args.pool, controller_manager=False)
    report: dict[str, Any] = {}
    try:
        body = review_variant(record_review(cluster, workdir, certificates), uid=str(uuid.uuid4()))
        ours_args = (certificates, args.workers, args.threads)
        print(f"## Floors (small cluster)\n\n{TABLE_HEAD}")
        ours = Ours(cluster, workdir / "ours-empty", *ours_args)
        ours.start()
        patch_file = workdir / "patch.json"
        patch_file.write_text(json.dumps(learn_patch(ours, body, certificates)))
        report["ours_small"] = idle_rss(ours.pid)
        ours.stop()
        noop = NoopFlask(workdir / "noop", certificates, patch_file, args.workers, args.threads)
        noop.start()
        report["noop"] = idle_rss(noop.pid)
        noop.stop()
        print(rss_row(f"no-op Flask {args.workers}x{args.threads}", report["noop"]))
        print(rss_row(f"ours, {args.rules} rules, empty view", report["ours_small"]), flush=True)

        started = time.monotonic()
        grow_cluster(cluster, args)
        print(
            f"\nCluster grown to {args.namespaces} namespaces and {args.secrets} secrets in "
            f"{time.monotonic() - started:.0f} s.\n",
            flush=True,
        )
        ours = Ours(cluster, workdir / "ours-full", *ours_args)
        started = time.monotonic()
        ours.start()
        sizes = view_sizes(ours, args)
        print(
            f"Ours ready with the full view in {time.monotonic() - started:.1f} s; "
            f"cache_objects: {sizes}.\n"
        )
        try:
            report["ours_full_idle"] = idle_rss(ours.pid)
            print(TABLE_HEAD)
            print(rss_row("ours, full view, idle", report["ours_full_idle"]), flush=True)
            bodies = write_bodies(workdir / "bodies.jsonl", pod_variants(body, args))
            samples = sustained(ours, bodies, args)
        finally:
            ours.stop()
        report["samples"] = samples
        print(run_report(samples, args))
    finally:
        cluster.stop()
        if args.json:
            args.json.write_text(json.dumps(report))
        if args.keep:
            print(f"scratch directory kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


TABLE_HEAD = (
    "| server | processes | PSS MiB (total) | RSS MiB (sum) | RSS per process |\n"
    "|---|---|---|---|---|"
)


def idle_rss(pid: int, settle: float = 3.0) -> dict[str, dict[int, Any]]:
    time.sleep(settle)
    rss = tree_rss_kib(pid)
    return {
        "rss": rss,
        "pss": tree_pss_kib(pid),
        "role": {p: process_role(p, pid) for p in rss},
    }


def rss_row(label: str, memory: dict[str, dict[int, Any]]) -> str:
    rss, pss, role = memory["rss"], memory["pss"], memory["role"]
    parts = ", ".join(f"{role.get(p, '?')} {kib / MIB:.1f}" for p, kib in rss.items())
    return (
        f"| {label} | {len(rss)} | {sum(pss.values()) / MIB:.1f} | "
        f"{sum(rss.values()) / MIB:.1f} | {parts} |"
    )


def grow_cluster(cluster: Cluster, args: argparse.Namespace) -> None:
    """Namespaces ``ns-00000..``, then managed copies of the sources spread over them."""
    raw = cluster.raw
    names = [f"ns-{i:05d}" for i in range(args.namespaces)]
    bulk(
        names,
        lambda n: raw.create(
            "/api/v1/namespaces",
            {"metadata": {"name": n, "labels": {"team": f"t{int(n[3:]) % 50}", "env": "bench"}}},
        ),
    )
    sources = {s["metadata"]["name"]: s for s in source_secrets(args.pool)}
    copies = []
    for i in range(args.secrets - len(sources)):
        source = sources[f"s{i % args.pool}"]
        copies.append((names[(i * 7) % len(names)], source))
    bulk(copies, lambda item: raw.create(f"/api/v1/namespaces/{item[0]}/secrets", copy(*item)))


def copy(namespace: str, source: dict[str, Any]) -> dict[str, Any]:
    """A managed copy as ours writes it (labels and annotations of ``render_copy``)."""
    name = source["metadata"]["name"]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": source["type"],
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE},
            "annotations": {
                SOURCE_ANNOTATION: f"{SOURCE_NAMESPACE}/{name}",
                HASH_ANNOTATION: content_hash(source["type"], source["data"]),
            },
        },
        "data": source["data"],
    }


def view_sizes(ours: Ours, args: argparse.Namespace) -> dict[str, float]:
    """Wait until the worker views hold the grown cluster; return ``cache_objects`` by kind."""

    def sizes() -> dict[str, float]:
        out = {}
        for kind in ("namespaces", "source_secrets", "target_secrets"):
            value = ours.server.metric_value("pullsecret_injector_cache_objects", {"kind": kind})
            out[kind] = value or 0.0
        return out

    wait_until(
        lambda: (sizes().get("namespaces") or 0) >= args.namespaces,
        "the view to hold every namespace",
        timeout=120,
    )
    return sizes()


def pod_variants(body: bytes, args: argparse.Namespace) -> list[bytes]:
    """``DISTINCT_PODS`` reviews: the recorded pod in different namespaces, with images
    that hit different rules (and a public one no rule covers)."""
    document = json.loads(body)
    out = []
    for k in range(DISTINCT_PODS):
        namespace = f"ns-{(k * 37) % args.namespaces:05d}"
        pod = json.loads(json.dumps(document["request"]["object"]))
        pod["metadata"]["namespace"] = namespace
        rule = 1 + (k * 13) % max(1, args.rules - 1)
        host = filler_registry(rule).strip("'").replace("*", "eu-west-1")
        pod["spec"]["containers"][0]["image"] = f"{host}/team/app-{k % 17}:1.{k}"
        pod["spec"]["initContainers"][0]["image"] = f"registry.example.com/shop/migrate:{k}"
        out.append(
            review_variant(
                body, uid=str(uuid.uuid4()), namespace=namespace, object=pod, dryRun=True
            )
        )
    return out


def sustained(ours: Ours, bodies: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Run wrk for ``--duration`` while a thread samples RSS; return the samples."""
    samples: list[dict[str, Any]] = []
    stop = threading.Event()
    start = time.monotonic()

    def sample() -> None:
        while not stop.is_set():
            rss = tree_rss_kib(ours.pid)
            samples.append(
                {
                    "t": time.monotonic() - start,
                    "total_kib": sum(tree_pss_kib(ours.pid).values()),
                    "rss_sum_kib": sum(rss.values()),
                    **{str(pid): kib for pid, kib in rss.items()},
                }
            )
            stop.wait(args.sample)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    slices = []
    try:
        deadline = start + args.duration
        while (left := deadline - time.monotonic()) >= 1:
            slices.append(
                run_wrk(ours, bodies, min(args.slice, left), connections=16, rate=args.rate)
            )
    finally:
        stop.set()
        sampler.join(args.sample + 5)
    requests = sum(r.requests for r in slices)
    print(
        f"Load: {requests} requests in {len(slices)} slices of {args.slice:.0f} s, "
        f"errors {sum(r.errors for r in slices)}. Per slice (does serving get dearer?):\n\n"
        "| slice | req/s | p50 ms | p99 ms | server CPU µs/req |\n|---|---|---|---|---|"
    )
    for i, r in enumerate(slices):
        print(
            f"| {i + 1} | {r.rps:.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | "
            f"{r.cpu_us_per_request:.0f} |"
        )
    print()
    return samples


def run_report(samples: Sequence[dict[str, Any]], args: argparse.Namespace) -> str:
    window = min(60.0, max(args.sample, (args.duration - args.warmup) / 4))
    first = [s["total_kib"] for s in samples if args.warmup <= s["t"] < args.warmup + window]
    last = [s["total_kib"] for s in samples if s["t"] >= samples[-1]["t"] - window]
    base, end = median(first), median(last)
    peak = max(s["total_kib"] for s in samples)
    growth = end / base - 1
    verdict_size = "met" if peak / MIB <= 150 else "MISSED"
    verdict_growth = "met" if growth <= 0.05 else "MISSED"
    lines = [
        f"## Memory (PSS, all processes) under {args.rate:.0f} req/s for {args.duration:.0f} s "
        f"(samples every {args.sample:.0f} s, windows of {window:.0f} s)\n",
        "| first window MiB | last window MiB | growth | peak MiB | target ≤ 150 MiB | "
        "target growth ≤ 5% |",
        "|---|---|---|---|---|---|",
        f"| {base / MIB:.1f} | {end / MIB:.1f} | {growth:+.1%} | {peak / MIB:.1f} | "
        f"{verdict_size} | {verdict_growth} |",
        "",
        "Samples (t s: total MiB): "
        + ", ".join(
            f"{s['t']:.0f}: {s['total_kib'] / MIB:.1f}"
            for s in samples[:: max(1, len(samples) // 20)]
        ),
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
