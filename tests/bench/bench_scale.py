"""Benchmark: a large cluster — 50,000 namespaces, 2,000 rules, 500 source secrets.

    python -m tests.bench.bench_scale [--namespaces 50000] [--rules 2000] [--sources 500]

A real etcd + kube-apiserver (``tools.controlplane``, no controller manager: its 50,000
ServiceAccounts and ConfigMaps would be load we do not cause). Namespaces are
``t<team>-<k>``, ``--per-team`` of them per team; rule ``r<i>`` reaches team ``i``'s
namespaces (``include: ["t<i>-*"]``) with source secret ``s<i mod sources>``, so the policy
implies ``rules x per-team`` copies (10,000 by default) and most namespaces are reached by
none, as in a cluster where a few teams use private registries. Reported:

1. the webhook (2 workers and its view keeper, as in the chart): ready time on a cold start
   and after a restart, PSS per process and in total, threads, and the watches the API server
   holds for it (``apiserver_longrunning_requests{verb="WATCH"}`` before and after);
2. the controller's initial convergence: time until every implied copy exists, and its
   request rate as the API server counts it (``apiserver_request_total`` without WATCH, over
   the whole convergence and its busiest 10-second window), which ``PSI_CONTROLLER_QPS`` bounds;
3. admission while the controller converges: ``--rate`` pods/s created through the API
   server with ours registered (``failurePolicy: Fail``), client-side and webhook p99, over
   the whole phase and per ~5 s window (with the API server's garbage collections in each),
   so that "throughout" can be read off. ``--admission go|flask`` has the Go or the no-op
   Flask webhook answer instead, ours still running: the floors this machine sets.
   ``--pods-from ready`` starts the pods once the controller is ready (its first full pass
   under way) rather than with its process, whose start-up shares the same two cores.

Targets (issue 19): ready ≤ 30 s, PSS ≤ 300 MiB per webhook pod, convergence ≤ 10 min at
≤ 50 requests/s, admission p99 ≤ 25 ms throughout.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import re
import shutil
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tests.bench.bench_apiserver import (
    WEBHOOK_METRIC,
    Phase,
    create_pods,
    histogram_quantile,
    inapp_histogram,
    share_within,
)
from tests.bench.harness import (
    Certificates,
    Cluster,
    GoWebhook,
    NoopFlask,
    Ours,
    RawApi,
    Server,
    bulk,
    machine_summary,
    percentile,
    process_role,
    scratch_dir,
    threads_of,
    tree_cpu_seconds,
    tree_pids,
    tree_pss_kib,
)
from tests.e2e.support import (
    INJECT_LABEL,
    POLICY_NAMESPACE,
    SOURCE_NAMESPACE,
    Api,
    ControllerProcess,
    pull_secret,
    register_webhook,
    set_policy,
    wait_until,
    webhook_configuration,
)
from tools.controlplane import ControlPlane, resolve_bin_dir
from webhook.settings import Settings

MIB = 1024
WINDOW_SECONDS = 5.0
DEFAULTS = Settings()
"""The product's settings, which ours and the controller run with here (not the e2e harness's)."""


@dataclass
class Scale:
    namespaces: int
    per_team: int
    rules: int
    sources: int

    @property
    def teams(self) -> int:
        return self.namespaces // self.per_team

    def namespace(self, team: int, k: int) -> str:
        return f"t{team:05d}-{k}"

    @property
    def copies(self) -> int:
        return min(self.rules, self.teams) * self.per_team

    def policy(self) -> str:
        lines = [
            "apiVersion: pullsecret-injector.io/v1",
            "kind: PullSecretPolicy",
            f"defaults: {{sourceNamespace: {SOURCE_NAMESPACE}}}",
            "rules:",
        ]
        for i in range(self.rules):
            lines.append(
                f"  - {{name: r{i}, registries: [registry-{i}.example.com], "
                f"secrets: [s{i % self.sources}], namespaces: {{include: ['t{i:05d}-*']}}}}"
            )
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Counts:
    """One scrape of the API server: its request count (without watches), the watches it
    holds, and its admit-webhook duration histogram (cumulative buckets, seconds)."""

    at: float
    requests: float
    watches: float
    webhook: dict[float, float]
    collections: float = 0.0
    """Garbage collections the API server's Go runtime has completed."""
    cpu: dict[str, float] = field(default_factory=dict)
    """CPU seconds each process (or process tree) has used so far, by role."""


@dataclass
class ApiServerCounters:
    """What the API server itself counts, scraped from its ``/metrics``."""

    plane: ControlPlane

    def scrape(self) -> Counts:
        status, text = self.plane.get("/metrics", timeout=30)
        if status != 200:
            raise RuntimeError(f"/metrics: {status}")
        # A line filter, not the prometheus parser: the API server's exposition is megabytes,
        # and parsing all of it every window took this process a core-second per scrape, on
        # the same two cores as what is measured.
        requests = watches = collections = 0.0
        webhook: dict[float, float] = {}
        for line in text.decode().splitlines():
            if line.startswith(_REQUESTS):
                labels, value = _sample(line)
                if labels.get("verb") not in ("WATCH", "CONNECT"):
                    requests += value
            elif line.startswith(_LONGRUNNING):
                labels, value = _sample(line)
                if labels.get("verb") == "WATCH":
                    watches += value
            elif line.startswith(_GC_COUNT):
                collections = float(line.split()[-1])
            elif line.startswith(_WEBHOOK_BUCKETS):
                labels, value = _sample(line)
                if labels.get("type") == "admit":
                    le = float(labels["le"])
                    webhook[le] = webhook.get(le, 0) + value
        return Counts(time.monotonic(), requests, watches, webhook, collections)


_REQUESTS = "apiserver_request_total{"
_LONGRUNNING = "apiserver_longrunning_requests{"
_WEBHOOK_BUCKETS = WEBHOOK_METRIC + "_bucket{"
_GC_COUNT = "go_gc_duration_seconds_count "
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def _sample(line: str) -> tuple[dict[str, str], float]:
    """Labels and value of one exposition line ``name{k="v",...} value``."""
    labels, _, value = line.rpartition("}")
    return dict(_LABEL.findall(labels)), float(value.split()[0])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--namespaces", type=int, default=50_000)
    parser.add_argument("--per-team", type=int, default=5, help="namespaces per team")
    parser.add_argument("--rules", type=int, default=2_000)
    parser.add_argument("--sources", type=int, default=500)
    parser.add_argument("--rate", type=float, default=100, help="pods/s during convergence")
    parser.add_argument("--pods", type=int, default=6000, help="pods created during it")
    parser.add_argument("--controller-qps", type=float, default=40.0, help="PSI_CONTROLLER_QPS")
    parser.add_argument("--controller-burst", type=int, default=50, help="PSI_CONTROLLER_BURST")
    parser.add_argument(
        "--admission",
        choices=("ours", "flask", "go"),
        default="ours",
        help="who answers the pods' admission during convergence: ours, or bench_apiserver's "
        "no-op Flask (same gunicorn layout) or Go webhook (ours keeps running and watching "
        "either way), to show the floors this machine sets",
    )
    parser.add_argument(
        "--pods-from",
        choices=("start", "ready"),
        default="start",
        help="start the pods with the controller's process (its start-up on the same two cores "
        "included) or once it is ready and its first full pass is under way",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args(argv)
    scale = Scale(args.namespaces, args.per_team, args.rules, args.sources)
    workdir = scratch_dir("scale")
    print(f"# Scale benchmark\n\n{machine_summary()}\n", flush=True)
    print(
        f"{scale.namespaces} namespaces ({scale.teams} teams of {scale.per_team}), "
        f"{scale.rules} rules, {scale.sources} source secrets, {scale.copies} implied copies; "
        f"controller bound {args.controller_qps:g} qps / burst {args.controller_burst}.\n",
        flush=True,
    )
    plane = ControlPlane.start(workdir / "cluster", resolve_bin_dir(), False)
    try:
        run(plane, scale, workdir, args)
    finally:
        plane.stop()
        if args.keep:
            print(f"scratch directory kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def run(plane: ControlPlane, scale: Scale, workdir: Path, args: argparse.Namespace) -> None:
    api, raw, counters = Api(plane), RawApi(plane), ApiServerCounters(plane)
    started = time.monotonic()
    populate(api, raw, scale)
    print(f"Cluster populated in {time.monotonic() - started:.0f} s.\n", flush=True)

    certificates = Certificates.write(workdir / "tls")
    before = counters.scrape()
    cluster = Cluster(workdir, plane, api, raw)
    # The product's default watch timeout, as for the controller below, not the e2e harness's
    # 60 s (with which the keeper's 503 watches re-opened a minute in, inside the pod phase).
    ours = Ours(
        cluster,
        workdir / "ours",
        certificates,
        extra_env={"PSI_WATCH_TIMEOUT_SECONDS": str(DEFAULTS.watch_timeout_seconds)},
    )
    cold = timed(ours.start)
    held = counters.scrape().watches - before.watches
    memory = tree_pss_kib(ours.pid)
    threads = {pid: threads_of(pid) for pid in tree_pids(ours.pid)}
    roles = {pid: process_role(pid, ours.pid) for pid in memory}
    ours.stop()
    warm = timed(ours.start)
    print("## Webhook pod (2 workers + view keeper)\n")
    print("| cold start to ready s | restart to ready s | watches held | threads | PSS MiB |")
    print("|---|---|---|---|---|")
    print(
        f"| {cold:.1f} | {warm:.1f} | {held:.0f} | {sum(threads.values())} | "
        f"{sum(memory.values()) / MIB:.1f} |\n"
    )
    print(
        "Per process (PSS MiB, threads): "
        + ", ".join(
            f"{roles[pid]} {kib / MIB:.1f}/{threads.get(pid, 0)}" for pid, kib in memory.items()
        )
        + "\n",
        flush=True,
    )
    try:
        converge(cluster, counters, ours, certificates, scale, args)
    finally:
        ours.stop()


def populate(api: Api, raw: RawApi, scale: Scale) -> None:
    for name in (POLICY_NAMESPACE, SOURCE_NAMESPACE):
        api.ensure_namespace(name)
    bulk(
        [
            pull_secret(f"s{s}", SOURCE_NAMESPACE, {f"registry-{s}.example.com": f"u{s}"})
            for s in range(scale.sources)
        ],
        api.apply_secret,
    )
    names = [scale.namespace(t, k) for t in range(scale.teams) for k in range(scale.per_team)]
    bulk(
        names,
        lambda n: raw.create(
            "/api/v1/namespaces", {"metadata": {"name": n, "labels": {INJECT_LABEL: "true"}}}
        ),
        threads=8,
        timeout=1800,
    )
    set_policy(api, scale.policy())


def converge(
    cluster: Cluster,
    counters: ApiServerCounters,
    ours: Ours,
    certificates: Certificates,
    scale: Scale,
    args: argparse.Namespace,
) -> None:
    plane, api, raw = cluster.plane, cluster.api, cluster.raw
    namespace = scale.namespace(0, 0)
    raw.create(f"/api/v1/namespaces/{namespace}/serviceaccounts", {"metadata": {"name": "default"}})
    admitter: Server = ours
    if args.admission == "go":
        admitter = GoWebhook(cluster.workdir / "go", certificates, None)
    elif args.admission == "flask":
        no_patch = cluster.workdir / "no-patch.json"
        no_patch.write_text("[]")
        admitter = NoopFlask(cluster.workdir / "flask", certificates, no_patch)
    if admitter is not ours:
        admitter.start()
    print(f"Admission during convergence answered by: {admitter.name}.\n", flush=True)
    register_webhook(
        api,
        webhook_configuration(
            "bench-scale", certificates.ca_pem, url=admitter.url, failure_policy="Fail"
        ),
    )
    controller = ControllerProcess(
        plane,
        cluster.workdir / "controller",
        "scale-controller",
        extra_env={
            "PSI_CONTROLLER_QPS": str(args.controller_qps),
            "PSI_CONTROLLER_BURST": str(args.controller_burst),
            # The product's defaults, not the e2e harness's short ones (a 60 s watch timeout
            # re-opens ~500 per-name watches every minute, half the request budget here).
            "PSI_RESYNC_SECONDS": str(DEFAULTS.resync_seconds),
            "PSI_WATCH_TIMEOUT_SECONDS": str(DEFAULTS.watch_timeout_seconds),
        },
    )
    controller.workdir.mkdir(parents=True, exist_ok=True)
    pod = _pod(namespace)
    path = f"/api/v1/namespaces/{namespace}/pods"
    samples: list[Counts] = []
    done = threading.Event()
    roles = {record.name: record.pid for record in plane.processes}
    roles["webhook pod"] = ours.pid
    if admitter is not ours:
        roles[admitter.name] = admitter.pid

    def sample() -> None:
        while not done.is_set():
            counts = counters.scrape()
            cpu = {role: sum(tree_cpu_seconds(pid).values()) for role, pid in roles.items()}
            if controller.child is not None:
                cpu["controller"] = sum(tree_cpu_seconds(controller.child.pid).values())
            # This process alone (the pods' load and the scrapes): the others are its children.
            cpu["bench"] = tree_cpu_seconds(os.getpid()).get(os.getpid(), 0.0)
            samples.append(replace(counts, cpu=cpu))
            done.wait(WINDOW_SECONDS)

    sampler = threading.Thread(target=sample, daemon=True)
    start = time.monotonic()
    first = counters.scrape()
    base, histogram_before, inapp_before = first.requests, first.webhook, inapp_histogram(ours)
    sampler.start()
    controller.start(wait_ready=False)
    try:
        if args.pods_from == "ready":
            wait_until(controller.ready, "the controller ready", timeout=600, interval=0.2)
            print(f"Pods from the controller's readiness, {time.monotonic() - start:.1f} s in.\n")
        [phase] = create_pods(raw, [path], pod, args.pods, args.rate, in_flight=32)
        histogram_after, inapp_after = counters.scrape().webhook, inapp_histogram(ours)
        wait_until(
            lambda: created_copies(controller, ours) >= scale.copies,
            f"all {scale.copies} copies to exist",
            timeout=3600,
            interval=5,
        )
        converged = time.monotonic() - start
        total = counters.scrape().requests - base
        own = controller.metric_value("pullsecret_injector_client_requests_total")
        throttled = controller.metric_value("pullsecret_injector_client_rate_limited_seconds_total")
    finally:
        done.set()
        sampler.join(15)
        controller.stop()
        if admitter is not ours:
            admitter.stop()
    busiest = max(
        (
            (b.requests - a.requests) / (b.at - a.at)
            for a, b in zip(samples, samples[2:], strict=False)  # 2 windows: 10 s
        ),
        default=float("nan"),
    )
    buckets = {le: histogram_after[le] - histogram_before.get(le, 0) for le in histogram_after}
    inapp = {le: inapp_after[le] - inapp_before.get(le, 0) for le in inapp_after}
    print("## Controller convergence, with pods created meanwhile\n")
    print(
        "| copies | converged in s | controller requests (req/s) | waited for the bound s | "
        "API server requests | busiest 10 s req/s | "
        "pods ok / errors | pods/s | create p99 ms | webhook p99 ms (interp.) | "
        "webhook calls ≤ 25 ms | ours review() p99 ms |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {scale.copies} | {converged:.0f} | {own:.0f} ({own / converged:.1f}) | "
        f"{throttled:.0f} | {total:.0f} | "
        f"{busiest:.1f} | {phase.ok} / {phase.errors} | {phase.rate:.0f} | "
        f"{percentile(phase.service_ms, 99):.1f} | "
        f"{histogram_quantile(0.99, buckets) * 1000:.1f} | {share_within(buckets, 0.025):.1%} | "
        f"{histogram_quantile(0.99, inapp) * 1000:.1f} |"
    )
    print(
        "\nController requests are its own count (every request through its bounded client);"
        " API server requests are the API server's count of all clients but watches: the"
        " controller's, the pods' creates, the webhook's and this benchmark's scrapes."
    )
    if phase.first_error:
        print(f"\nFirst pod error: {phase.first_error}")
    print(timeline(samples, phase, start))


def timeline(samples: Sequence[Counts], phase: Phase, start: float) -> str:
    """Admission per window of the convergence: is the tail spread out or in one burst?

    Beside each window, the cores each process used in it (``/proc/<pid>/stat``): a window
    missed while the machine's cores were all busy reads differently from one missed alone.
    """
    roles = list(samples[-1].cpu) if samples else []
    lines = [
        f"\n#### Admission per window of ~{WINDOW_SECONDS:g} s\n",
        "| window s | API server req/s | API server GCs | webhook calls | ≤ 25 ms | > 100 ms | "
        "webhook p99 ms (interp.) | pods created | create p99 ms | "
        + "".join(f"{role} cores | " for role in roles)
        + "all cores |",
        "|---|---|---|---|---|---|---|---|---|" + "---|" * (len(roles) + 1),
    ]
    for a, b in itertools.pairwise(samples):
        window = {le: b.webhook.get(le, 0) - a.webhook.get(le, 0) for le in b.webhook}
        calls = window.get(math.inf, 0)
        if not calls:
            continue
        creates = [
            ms for ms, at in zip(phase.service_ms, phase.sent_at, strict=True) if a.at <= at < b.at
        ]
        cores = {
            role: (b.cpu[role] - a.cpu.get(role, 0.0)) / (b.at - a.at)
            for role in b.cpu  # a process started in the window counts from its start
        }
        lines.append(
            f"| {a.at - start:.0f}-{b.at - start:.0f} | "
            f"{(b.requests - a.requests) / (b.at - a.at):.0f} | "
            f"{b.collections - a.collections:.0f} | {calls:.0f} | "
            f"{share_within(window, 0.025):.1%} | {calls - window.get(0.1, 0):.0f} | "
            f"{histogram_quantile(0.99, window) * 1000:.1f} | {len(creates)} | "
            f"{percentile(creates, 99):.1f} | "
            + "".join(f"{cores.get(role, 0.0):.2f} | " for role in roles)
            + f"{sum(cores.values()):.2f} |"
        )
    return "\n".join(lines)


def created_copies(controller: ControllerProcess, ours: Ours) -> float:
    """Copies created so far, each counted once: by the controller or at admission."""
    metric = "pullsecret_injector_secret_copies_total"
    by_controller = controller.metric_value(metric, {"action": "CreateCopy", "result": "created"})
    at_admission = ours.server.metric_value(metric, {"action": "create", "result": "created"})
    return by_controller + (at_admission or 0.0)


def _pod(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": "scale-", "namespace": namespace},
        "spec": {"containers": [{"name": "app", "image": "registry-0.example.com/team/app:1"}]},
    }


def timed(action: Callable[[], None]) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


if __name__ == "__main__":
    main()
