"""Benchmark: pod creation through the real API server — no webhook, the Go webhook, ours.

    python -m tests.bench.bench_apiserver [--pods 2000] [--rate 100] [--rounds 2] [--interleaved]
    python -m tests.bench.bench_apiserver --report run1.json [run2.json ...]  # saved with --json

A real etcd + kube-apiserver + kube-controller-manager (``tools.controlplane``) with the
default admission chain. For each phase a fresh namespace (labelled for the webhook) gets
``--pods`` Deployment-like pods created at a fixed rate by an open-loop client (bounded
in-flight requests, bounded time):

* ``none``: no MutatingWebhookConfiguration;
* ``flask``: ``tests/bench/noop_app`` (a do-nothing Flask handler returning the same patch,
  standard-library ``json``, same gunicorn/TLS layout as ours): the framework's floor;
* ``go``: ``tests/bench/gowebhook`` registered by URL (it returns the same patch as ours);
* ``ours``: the webhook as the container runs it, registered by URL;
* ``ours-quiet`` (``--quiet-variant``): the same with ``PSI_LOG_LEVEL=WARNING``, which drops
  the per-review INFO log line (isolates what synchronous logging costs).

Phases run one after another (``--pods`` each, the order rotated every round), or, with
``--interleaved``, all at once: every phase has its own namespace and its own
MutatingWebhookConfiguration (selecting that namespace by label), and the client sends one pod
to each phase in a shuffled order, block after block, at the same total ``--rate``. Then a
slow moment of the API server, etcd or the machine falls on every phase alike instead of on
whichever phase ran during it, and "added over ``none``" compares samples from the same
seconds; sequential rounds put the API server's own drift between phases (BENCHMARKS.md §3:
per-round ratios of 0.03-4.23). For interleaved runs the report adds a 90 % interval of the
pooled ratio to the Flask floor, from resampling blocks of seconds (``bootstrap_ratio``): how
far this many pods can settle the 1.1 target at all.

Both webhooks use ``failurePolicy: Fail`` so every pod really went through them. Reported:
the client-side create latency (p50/p99; also measured from the scheduled send time, which
shows any queueing in the client), the latency each webhook *adds* over ``none`` in the same
round (as a ratio to the Flask floor's, the target, and to Go's, the distance to the limit),
and the API server's own ``apiserver_admission_webhook_admission_duration_seconds``
histogram (scraped from ``/metrics`` before and after each phase).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.bench.harness import (
    CORP_SECRET,
    Certificates,
    Cluster,
    GoWebhook,
    NoopFlask,
    Ours,
    RawApi,
    Server,
    bench_pod,
    learn_patch,
    machine_summary,
    median,
    percentile,
    record_review,
    review_variant,
    scratch_dir,
    spread,
)
from tests.e2e.support import (
    INJECT_LABEL,
    register_webhook,
    unregister_webhook,
    wait_until,
    webhook_configuration,
)

WEBHOOK_METRIC = "apiserver_admission_webhook_admission_duration_seconds"
PHASE_LABEL_PREFIX = "bench.pullsecret-injector.io/"
"""``--interleaved``: namespace label ``<prefix><phase>=true`` selects that phase's webhook."""
INAPP_METRIC = "pullsecret_injector_admission_duration_seconds"


@dataclass
class Phase:
    name: str
    round: int
    ok: int
    errors: int
    seconds: float
    service_ms: list[float]
    """Per pod: from sending the request to its response."""
    scheduled_ms: list[float]
    """Per pod: from its scheduled send time to its response (includes client queueing)."""
    buckets: dict[float, float]
    """Webhook duration histogram delta: upper bound (s) -> cumulative count."""
    first_error: str = ""
    inapp: dict[float, float] = field(default_factory=dict)
    """Ours only: its own ``review()`` duration histogram delta (same shape)."""
    sent_at: list[float] = field(default_factory=list)
    """Per pod, in the order of ``service_ms``: when it was sent (``time.monotonic()``)."""

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def p(self, q: float, scheduled: bool = False) -> float:
        return percentile(self.scheduled_ms if scheduled else self.service_ms, q)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", type=int, default=2000, help="pods per phase (default 2000)")
    parser.add_argument("--rate", type=float, default=100, help="pods/s (default 100)")
    parser.add_argument("--rounds", type=int, default=2, help="repeat all phases (default 2)")
    parser.add_argument("--warmup", type=int, default=100, help="unmeasured pods per phase")
    parser.add_argument("--in-flight", type=int, default=32, help="client threads (max in flight)")
    parser.add_argument("--rules", type=int, default=100, help="rules in our policy")
    parser.add_argument("--pool", type=int, default=10, help="source secrets the rules share")
    parser.add_argument("--workers", type=int, default=2, help="PSI_WORKERS")
    parser.add_argument("--threads", type=int, default=4, help="PSI_THREADS")
    parser.add_argument(
        "--quiet-variant",
        action="store_true",
        help="also a phase 'ours-quiet': ours with PSI_LOG_LEVEL=WARNING (no per-review log)",
    )
    parser.add_argument(
        "--interleaved",
        action="store_true",
        help="run the phases at once, pods shuffled across them (see the module docstring)",
    )
    parser.add_argument("--json", type=Path, help="write raw results here")
    parser.add_argument(
        "--report",
        type=Path,
        nargs="+",
        metavar="JSON",
        help="print the tables of runs saved with --json (rounds of several runs pooled)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args(argv)
    if args.report:
        print_tables(load_runs(args.report))
        return
    workdir = scratch_dir("apiserver")
    print(f"# Pod creation through the API server\n\n{machine_summary()}\n", flush=True)
    certificates = Certificates.write(workdir / "tls")
    cluster = Cluster.start(workdir, rules=args.rules, pool=args.pool)
    phases: list[Phase] = []
    try:
        body = review_variant(record_review(cluster, workdir, certificates), uid=str(uuid.uuid4()))
        ours = Ours(cluster, workdir / "ours", certificates, args.workers, args.threads)
        go = GoWebhook(workdir / "go", certificates, workdir / "patch.json")
        flask = NoopFlask(
            workdir / "flask", certificates, workdir / "patch.json", args.workers, args.threads
        )
        servers: dict[str, Server | None] = {"none": None, "flask": flask, "go": go, "ours": ours}
        if args.quiet_variant:
            servers["ours-quiet"] = Ours(
                cluster,
                workdir / "ours-quiet",
                certificates,
                args.workers,
                args.threads,
                extra_env={"PSI_LOG_LEVEL": "WARNING"},
            )
        names = list(servers)
        try:
            ours.start()
            patch = learn_patch(ours, body, certificates)
            (workdir / "patch.json").write_text(json.dumps(patch, separators=(",", ":")))
            for server in servers.values():
                if server is not None and server is not ours:
                    server.start()
            layout = (
                f"interleaved: all {len(names)} phases at once, {args.rate:.0f} pods/s in all"
                if args.interleaved
                else f"sequential, at {args.rate:.0f}/s"
            )
            print(
                f"{args.pods} pods per phase, {layout}, after {args.warmup} unmeasured;"
                f" ours: {ours.name}, policy of {args.rules} rules; both webhooks return "
                f"`{json.dumps(patch)}`\n",
                flush=True,
            )
            for round_ in range(args.rounds):
                if args.interleaved:
                    done = run_interleaved(cluster, certificates, servers, round_, args)
                else:
                    shift = round_ % len(names)
                    done = [
                        run_phase(cluster, certificates, name, servers[name], round_, args)
                        for name in names[shift:] + names[:shift]
                    ]
                for phase in done:
                    print(
                        f"  round {round_ + 1} {phase.name:>10}: {phase.ok} ok, "
                        f"{phase.errors} errors, {phase.rate:.0f}/s, p50 {phase.p(50):.1f} ms, "
                        f"p99 {phase.p(99):.1f} ms",
                        file=sys.stderr,
                        flush=True,
                    )
                phases += done
        finally:
            for server in servers.values():
                if server is not None:
                    server.stop()
        print_tables(phases)
    finally:
        cluster.stop()
        if args.json:
            args.json.write_text(json.dumps([vars(p) for p in phases]))
        if args.keep:
            print(f"scratch directory kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def run_phase(
    cluster: Cluster,
    certificates: Certificates,
    name: str,
    server: Server | None,
    round_: int,
    args: argparse.Namespace,
) -> Phase:
    namespace = f"apib-{name}-{round_ + 1}"
    cluster.api.ensure_namespace(namespace, {INJECT_LABEL: "true"})
    cluster.plane.wait_for_service_account(namespace)
    config = "bench-webhook"
    if server is None:
        unregister_webhook(cluster.api, config)
    else:
        register_webhook(
            cluster.api,
            webhook_configuration(
                config, certificates.ca_pem, url=server.url, failure_policy="Fail"
            ),
        )
    wait_for_routing(cluster.raw, namespace, called=server is not None)
    path = f"/api/v1/namespaces/{namespace}/pods"
    pod = bench_pod(f"{name}-{round_ + 1}")
    create_pods(cluster.raw, [path], pod, args.warmup, args.rate, args.in_flight)  # unmeasured
    before, inapp_before = webhook_histogram(cluster), inapp_histogram(server)
    [phase] = create_pods(cluster.raw, [path], pod, args.pods, args.rate, args.in_flight)
    after, inapp_after = webhook_histogram(cluster), inapp_histogram(server)
    phase.name, phase.round = name, round_ + 1
    phase.buckets = {le: after.get(le, 0) - before.get(le, 0) for le in after}
    phase.inapp = {le: inapp_after[le] - inapp_before.get(le, 0) for le in inapp_after}
    if server is not None:
        unregister_webhook(cluster.api, config)
    return phase


def run_interleaved(
    cluster: Cluster,
    certificates: Certificates,
    servers: dict[str, Server | None],
    round_: int,
    args: argparse.Namespace,
) -> list[Phase]:
    """One round of every phase at once: a namespace and a webhook configuration per phase.

    The namespaces and their default ServiceAccounts come first: the configurations match
    ServiceAccounts too, and the floors answer every review with the pod's patch.
    """
    namespaces = {name: f"apib-{name}-{round_ + 1}" for name in servers}
    for name, server in servers.items():
        labels = {INJECT_LABEL: "true"}
        if server is not None:
            labels[PHASE_LABEL_PREFIX + name] = "true"
        cluster.api.ensure_namespace(namespaces[name], labels)
        cluster.plane.wait_for_service_account(namespaces[name])
    webhook_names = {}
    for name, server in servers.items():
        if server is None:
            continue
        configuration = webhook_configuration(
            f"bench-webhook-{name}",
            certificates.ca_pem,
            url=server.url,
            failure_policy="Fail",
            namespace_label=PHASE_LABEL_PREFIX + name,
        )
        webhook_names[name] = f"{name}.bench.pullsecret-injector.io"
        configuration["webhooks"][0]["name"] = webhook_names[name]
        register_webhook(cluster.api, configuration)
    for name, server in servers.items():
        wait_for_routing(cluster.raw, namespaces[name], called=server is not None)
    paths = [f"/api/v1/namespaces/{namespaces[name]}/pods" for name in servers]
    pod = bench_pod(f"interleaved-{round_ + 1}")
    count = args.pods * len(servers)
    create_pods(cluster.raw, paths, pod, args.warmup * len(servers), args.rate, args.in_flight)
    before = {n: webhook_histogram(cluster, w) for n, w in webhook_names.items()}
    inapp_before = {n: inapp_histogram(s) for n, s in servers.items()}
    phases = create_pods(cluster.raw, paths, pod, count, args.rate, args.in_flight, seed=round_)
    for phase, (name, server) in zip(phases, servers.items(), strict=True):
        phase.name, phase.round = name, round_ + 1
        if name in webhook_names:
            after = webhook_histogram(cluster, webhook_names[name])
            phase.buckets = {le: after[le] - before[name].get(le, 0) for le in after}
        inapp_after = inapp_histogram(server)
        phase.inapp = {le: inapp_after[le] - inapp_before[name].get(le, 0) for le in inapp_after}
    for name in webhook_names:
        unregister_webhook(cluster.api, f"bench-webhook-{name}")
    return phases


def wait_for_routing(raw: RawApi, namespace: str, *, called: bool) -> None:
    """Wait until the API server's webhook set for ``namespace`` is the one just registered."""
    wait_until(
        lambda: patched_on_dry_run(raw, namespace) == called,
        f"the API server to {'call' if called else 'not call'} a webhook for {namespace}",
        timeout=60,
        interval=0.25,
    )


def patched_on_dry_run(raw: RawApi, namespace: str) -> bool:
    status, stored = raw.request(
        "POST", f"/api/v1/namespaces/{namespace}/pods?dryRun=All", bench_pod("probe")
    )
    if status != 201:
        return False
    names = [s.get("name") for s in stored.get("spec", {}).get("imagePullSecrets") or []]
    return CORP_SECRET in names


def create_pods(
    raw: RawApi,
    paths: list[str],
    pod: dict[str, object],
    count: int,
    rate: float,
    in_flight: int,
    seed: int = 0,
) -> list[Phase]:
    """Open loop: pod ``i`` is due at ``start + i / rate``; ``in_flight`` threads send them.

    Pods go to ``paths`` in ``interleaved_order``; one Phase per path, in the order of ``paths``.
    """
    targets = interleaved_order(count, len(paths), seed)
    phases = [Phase("", 0, 0, 0, 0.0, [], [], {}) for _ in paths]
    errors: list[list[str]] = [[] for _ in paths]
    lock = threading.Lock()
    next_index = [0]
    start = time.monotonic() + 0.2
    deadline = start + count / rate + 120

    def claim() -> int | None:
        with lock:
            if next_index[0] >= count or time.monotonic() > deadline:
                return None
            next_index[0] += 1
            return next_index[0] - 1

    def worker() -> None:
        while (index := claim()) is not None:
            due = start + index / rate
            if (wait := due - time.monotonic()) > 0:
                time.sleep(wait)
            target = targets[index]
            sent = time.monotonic()
            try:
                status, document = raw.request("POST", paths[target], pod)
            except OSError as exc:
                status, document = 0, {"message": repr(exc)}
            done = time.monotonic()
            with lock:
                phase = phases[target]
                if status == 201:
                    phase.service_ms.append((done - sent) * 1000)
                    phase.scheduled_ms.append((done - due) * 1000)
                    phase.sent_at.append(sent)
                else:
                    message = str(document.get("message", document))[:300]
                    errors[target].append(f"{status} {message}")

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(in_flight)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()) + 5)
    seconds = time.monotonic() - start
    for phase, failed in zip(phases, errors, strict=True):
        phase.ok, phase.errors, phase.seconds = len(phase.service_ms), len(failed), seconds
        phase.first_error = failed[0] if failed else ""
    return phases


def interleaved_order(count: int, paths: int, seed: int) -> list[int]:
    """Which path each of ``count`` pods goes to: blocks holding each path once, shuffled."""
    shuffler = random.Random(seed)
    order: list[int] = []
    while len(order) < count:
        block = list(range(paths))
        shuffler.shuffle(block)
        order += block
    return order[:count]


def webhook_histogram(cluster: Cluster, webhook: str | None = None) -> dict[float, float]:
    """Cumulative buckets of the API server's admit-webhook duration histogram.

    With ``webhook``, only that webhook's calls (the metric's ``name`` label).
    """
    status, text = cluster.plane.get("/metrics", timeout=30)
    if status != 200:
        raise RuntimeError(f"/metrics: {status}")
    labels = {"type": "admit"} | ({"name": webhook} if webhook else {})
    return histogram(text.decode(), WEBHOOK_METRIC, labels)


def inapp_histogram(server: Server | None) -> dict[float, float]:
    """Ours' own ``review()`` duration histogram (summed over workers), if ``server`` is ours."""
    if not isinstance(server, Ours):
        return {}
    return histogram(server.server.metrics(), INAPP_METRIC, {})


def histogram(text: str, metric: str, labels: dict[str, str]) -> dict[float, float]:
    """Cumulative buckets ``le -> count`` of ``metric``, summed over label sets that match."""
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != metric:
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket") and all(
                sample.labels.get(k) == v for k, v in labels.items()
            ):
                le = float(sample.labels["le"])
                buckets[le] = buckets.get(le, 0) + sample.value
    return buckets


def histogram_quantile(q: float, buckets: dict[float, float]) -> float:
    """Prometheus' ``histogram_quantile`` (linear within the bucket), in seconds."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return math.nan
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower
            return lower + (bound - lower) * ((rank - below) / max(count - below, 1e-9))
        lower, below = bound, count
    return math.nan


def share_within(buckets: dict[float, float], bound: float) -> float:
    total = buckets.get(math.inf, 0)
    return buckets.get(bound, math.nan) / total if total else math.nan


def load_runs(paths: Sequence[Path]) -> list[Phase]:
    """Phases saved by ``--json``, the rounds of later files numbered after earlier ones'."""
    phases: list[Phase] = []
    for path in paths:
        offset = max((p.round for p in phases), default=0)
        for saved in json.loads(path.read_text()):
            phase = Phase(**saved)
            phase.round += offset
            phase.buckets = {float(le): n for le, n in saved["buckets"].items()}
            phase.inapp = {float(le): n for le, n in saved["inapp"].items()}
            phases.append(phase)
    return phases


def print_tables(phases: Sequence[Phase]) -> None:
    names = list(dict.fromkeys(p.name for p in phases))
    rounds = max(p.round for p in phases)
    print(latency_table(phases, names))
    print(added_table(phases, names, rounds))
    print(webhook_table(phases))


def _by(phases: Sequence[Phase], name: str) -> list[Phase]:
    return [p for p in phases if p.name == name]


def latency_table(phases: Sequence[Phase], names: Sequence[str]) -> str:
    lines = [
        "## Client-side create latency (median (min..max) over rounds)\n",
        "| phase | pods ok | errors | achieved pods/s | p50 ms | p99 ms | p99 ms from schedule |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in names:
        runs = _by(phases, name)
        ok = sum(p.ok for p in runs)
        errors = sum(p.errors for p in runs)
        first = next((p.first_error for p in runs if p.first_error), "")
        lines.append(
            f"| {name} | {ok} | {errors}{f' ({first})' if first else ''} | "
            f"{spread([p.rate for p in runs])} | {spread([p.p(50) for p in runs], '{:.1f}')} | "
            f"{spread([p.p(99) for p in runs], '{:.1f}')} | "
            f"{spread([p.p(99, scheduled=True) for p in runs], '{:.1f}')} |"
        )
    return "\n".join(lines) + "\n"


def added_table(phases: Sequence[Phase], names: Sequence[str], rounds: int) -> str:
    """Latency each webhook adds over ``none`` of the same round, relative to the floors'."""
    lines = [
        "## Added latency over no webhook (ms), per round and pooled over rounds\n",
        "| round | webhook | added p50 | added p99 | added p99 / Flask's | added p99 / Go's |",
        "|---|---|---|---|---|---|",
    ]
    by_key = {(p.name, p.round): p for p in phases}
    webhooks = [n for n in names if n != "none"]
    ratios: dict[tuple[str, str], list[float]] = {}

    def row(label: str, samples: dict[str, list[float]]) -> list[str]:
        none = samples["none"]
        floors = {
            floor: percentile(samples[floor], 99) - percentile(none, 99)
            for floor in ("flask", "go")
            if floor in samples
        }
        out = []
        for name in webhooks:
            added50 = percentile(samples[name], 50) - percentile(none, 50)
            added99 = percentile(samples[name], 99) - percentile(none, 99)
            cells = []
            for floor in ("flask", "go"):
                ratio = added99 / floors[floor] if floors.get(floor, 0) > 0 else math.nan
                if label != "pooled":
                    ratios.setdefault((name, floor), []).append(ratio)
                cells.append(f"{ratio:.2f}")
            ratio_cells = " | ".join(cells)
            out.append(f"| {label} | {name} | {added50:.2f} | {added99:.2f} | {ratio_cells} |")
        return out

    for round_ in range(1, rounds + 1):
        lines += row(str(round_), {n: by_key[(n, round_)].service_ms for n in names})
    pooled = {n: [ms for p in phases if p.name == n for ms in p.service_ms] for n in names}
    lines += row("pooled", pooled)
    for name in webhooks:
        if name in ("go", "flask"):
            continue
        lines.append(
            f"\nMedian {name} added-p99 ratio over rounds: "
            f"{median(ratios[(name, 'flask')]):.2f} of the no-op Flask handler's (target ≤ 1.1), "
            f"{median(ratios[(name, 'go')]):.2f} of Go's (the distance to the limit)."
        )
        if "flask" in names and interleaved(phases):
            low, high = bootstrap_ratio(phases, name, "flask")
            lines.append(
                f"Pooled {name}/Flask ratio, 90 % interval from {BOOTSTRAP_DRAWS} resamples of "
                f"{BLOCK_SECONDS:.0f}-s blocks (all phases' pods of those seconds together): "
                f"{low:.2f}-{high:.2f}."
            )
    return "\n".join(lines) + "\n"


BLOCK_SECONDS = 5.0
BOOTSTRAP_DRAWS = 400


def interleaved(phases: Sequence[Phase]) -> bool:
    """Whether each round's phases ran at once (``--interleaved``), judged by their send times."""
    for round_ in {p.round for p in phases}:
        spans = [(p.sent_at[0], p.sent_at[-1]) for p in phases if p.round == round_ and p.sent_at]
        if min(end for _, end in spans) < max(start for start, _ in spans):
            return False
    return True


def bootstrap_ratio(
    phases: Sequence[Phase], name: str, floor: str, seed: int = 0
) -> tuple[float, float]:
    """5th and 95th percentiles of the pooled added-p99 ratio ``name``/``floor`` over resamples.

    The unit resampled is a block of ``BLOCK_SECONDS`` of one round with every phase's pods
    sent in it, because pods of the same seconds share the API server's state: resampling pods
    one by one would treat a burst that slowed every phase as independent luck of each.
    """
    blocks: dict[tuple[int, int], dict[str, list[float]]] = {}
    starts: dict[int, float] = {}
    for phase in phases:
        starts[phase.round] = min(starts.get(phase.round, math.inf), phase.sent_at[0])
    for phase in phases:
        for ms, sent in zip(phase.service_ms, phase.sent_at, strict=True):
            key = (phase.round, int((sent - starts[phase.round]) // BLOCK_SECONDS))
            blocks.setdefault(key, {}).setdefault(phase.name, []).append(ms)
    keys = list(blocks)
    chooser = random.Random(seed)
    ratios = []
    for _ in range(BOOTSTRAP_DRAWS):
        sample: dict[str, list[float]] = {"none": [], name: [], floor: []}
        for key in chooser.choices(keys, k=len(keys)):
            for phase_name in sample:
                sample[phase_name] += blocks[key].get(phase_name, [])
        none99 = percentile(sample["none"], 99)
        floor_added = percentile(sample[floor], 99) - none99
        if floor_added > 0:
            ratios.append((percentile(sample[name], 99) - none99) / floor_added)
    return percentile(ratios, 5), percentile(ratios, 95)


def webhook_table(phases: Sequence[Phase]) -> str:
    lines = [
        f"## API server's `{WEBHOOK_METRIC}` (type=admit), per phase\n",
        "Next to it, for ours, its own `review()` time (`" + INAPP_METRIC + "`): what is not in",
        "`review()` was spent in TLS, gunicorn, Flask, thread hand-offs and waiting for a CPU.\n",
        "| webhook | round | calls | ≤ 5 ms | ≤ 25 ms | p50 ms (interp.) | p99 ms (interp.) | "
        "ours review() ≤ 25 ms | review() p99 ms (interp.) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for phase in phases:
        if phase.name == "none":
            continue
        b, inapp = phase.buckets, phase.inapp
        inapp_cells = (
            f"{share_within(inapp, 0.025):.1%} | {histogram_quantile(0.99, inapp) * 1000:.1f}"
            if inapp
            else "- | -"
        )
        lines.append(
            f"| {phase.name} | {phase.round} | {b.get(math.inf, 0):.0f} | "
            f"{share_within(b, 0.005):.1%} | {share_within(b, 0.025):.1%} | "
            f"{histogram_quantile(0.5, b) * 1000:.1f} | {histogram_quantile(0.99, b) * 1000:.1f} | "
            f"{inapp_cells} |"
        )
    bounds = sorted(next((p.buckets for p in phases if p.buckets), {}))
    lines.append(f"\nAPI server bucket bounds (s): {', '.join(f'{b:g}' for b in bounds)}.")
    lines.append("Target: webhook-duration p99 ≤ 25 ms, i.e. ≥ 99% of calls in the ≤ 25 ms bucket.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
