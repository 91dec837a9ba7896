"""Benchmark: HTTPS serving, side by side — ours, a do-nothing Flask app, a Go webhook.

    python -m tests.bench.bench_https [--rounds 2] [--seconds 10] [--tune]

All three servers use the same certificate and get the same body: an AdmissionReview the
real API server sent (recorded by the Go webhook for a Deployment-like pod), and answer with
the same JSONPatch (the one ours computes for that pod):

* ours: ``gunicorn --config gunicorn.conf.py`` with ``PSI_*`` env, watching a real control
  plane (policy ConfigMap of ``--rules`` rules, source secrets), as the container runs it;
* no-op Flask: ``tests.bench.noop_app:app`` under the same config file and TLS;
* Go: ``tests/bench/gowebhook`` (net/http, HTTP/1.1, TLS), built with ``go build``.

The load generator is Debian's ``wrk`` with ``wrk_post.lua``: keep-alive connections, paced to
fixed rates (100, 200, 500 req/s) and then unpaced (saturation). All servers run at once and
each measurement point visits them in turn (the order rotates each round), so drift in the
machine's background load hits all three alike. Besides req/s and latency it reports the
server's CPU time per request (``/proc``), which other load on the machine disturbs least.

``--tune`` first compares gunicorn worker x thread layouts for ours and the no-op app.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from tests.bench.harness import (
    Certificates,
    Cluster,
    GoWebhook,
    NoopFlask,
    Ours,
    Server,
    WrkResult,
    check_same_answer,
    ensure_wrk,
    learn_patch,
    machine_summary,
    median,
    record_review,
    review_variant,
    run_wrk,
    scratch_dir,
    spread,
    write_bodies,
)

LAYOUTS = ((1, 8), (2, 4), (2, 8), (3, 4))

Results = dict[str, dict[str, list[WrkResult]]]
"""server name -> point ("100", "200", "500", "sat") -> one result per round."""


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="repeat every point (default 2)")
    parser.add_argument("--seconds", type=float, default=10, help="per point (default 10)")
    parser.add_argument("--rates", default="100,200,500", help="fixed rates, req/s")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--rules", type=int, default=100, help="rules in our policy")
    parser.add_argument("--pool", type=int, default=10, help="source secrets the rules share")
    parser.add_argument("--workers", type=int, default=2, help="PSI_WORKERS for the comparison")
    parser.add_argument("--threads", type=int, default=4, help="PSI_THREADS for the comparison")
    parser.add_argument("--tune", action="store_true", help="also compare worker layouts")
    parser.add_argument("--json", type=Path, help="write raw results here")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args(argv)
    ensure_wrk()
    rates = [float(r) for r in args.rates.split(",") if r]
    workdir = scratch_dir("https")
    print(f"# HTTPS serving benchmark\n\n{machine_summary()}\n", flush=True)
    certificates = Certificates.write(workdir / "tls")
    cluster = Cluster.start(workdir, rules=args.rules, pool=args.pool)
    raw: dict[str, object] = {}
    try:
        body = record_review(cluster, workdir, certificates)
        body = review_variant(body, uid=str(uuid.uuid4()))
        bodies = write_bodies(workdir / "bodies.jsonl", [body])
        print(
            f"Payload: a recorded AdmissionReview of {len(body)} bytes; "
            f"policy: {args.rules} rules over {args.pool + 1} source secrets.\n"
        )
        patch_file = workdir / "patch.json"
        layouts = LAYOUTS if args.tune else ((args.workers, args.threads),)
        servers: list[Server] = []
        for workers, threads in layouts:
            servers.append(
                Ours(cluster, workdir / f"ours-{workers}x{threads}", certificates, workers, threads)
            )
        try:
            servers[0].start()
            patch = learn_patch(servers[0], body, certificates)
            patch_file.write_text(json.dumps(patch, separators=(",", ":")))
            print(f"Patch every server returns: `{json.dumps(patch)}`\n", flush=True)
            for server in servers[1:]:
                server.start()
            for workers, threads in layouts:
                noop = NoopFlask(
                    workdir / f"noop-{workers}x{threads}",
                    certificates,
                    patch_file,
                    workers,
                    threads,
                )
                noop.start()
                servers.append(noop)
            go = GoWebhook(workdir / "go", certificates, patch_file)
            go.start()
            servers.append(go)
            for server in servers:  # every server answers alike before anything is timed
                check_same_answer(server, body, certificates, patch)
            if args.tune:
                tuning = measure(servers[:-1], bodies, args, rates=[200.0], rounds=args.rounds)
                raw["tuning"] = tuning
                print(tuning_table(tuning), flush=True)
                chosen = choose_layout(tuning)
                print(f"\nChosen layout for the comparison: {chosen}.\n", flush=True)
                compared = [s for s in servers if s.name.endswith(chosen)] + [go]
            else:
                compared = servers
            results = measure(compared, bodies, args, rates=rates, rounds=args.rounds)
            raw["comparison"] = results
            print(comparison_table(results, rates), flush=True)
            print(ratio_table(results, [s.name for s in compared]), flush=True)
        finally:
            for server in servers:
                server.stop()
    finally:
        cluster.stop()
        if args.json:
            args.json.write_text(json.dumps(_plain(raw), indent=1))
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"scratch directory kept: {workdir}", file=sys.stderr)


def measure(
    servers: Sequence[Server],
    bodies: Path,
    args: argparse.Namespace,
    rates: Sequence[float],
    rounds: int,
) -> Results:
    results: Results = defaultdict(lambda: defaultdict(list))
    for server in servers:  # warm-up: JIT-free, but caches, memo and connections
        run_wrk(server, bodies, 3, args.connections)
    for round_ in range(rounds):
        order = list(servers[round_ % len(servers) :]) + list(servers[: round_ % len(servers)])
        for point in [*(str(int(r)) for r in rates), "sat"]:
            for server in order:
                rate = 0.0 if point == "sat" else float(point)
                result = run_wrk(server, bodies, args.seconds, args.connections, rate=rate)
                results[server.name][point].append(result)
                print(
                    f"  round {round_ + 1} {server.name:>20} {point:>4}: "
                    f"{result.rps:7.0f} req/s  p50 {result.p50_ms:6.2f} ms  "
                    f"p99 {result.p99_ms:6.2f} ms  cpu {result.cpu_us_per_request:5.0f} µs/req"
                    f"  worker split {result.worker_split}  errors {result.errors}",
                    file=sys.stderr,
                    flush=True,
                )
    return results


def _column(results: Sequence[WrkResult], attribute: str, fmt: str = "{:.2f}") -> str:
    values = [
        getattr(r, attribute) if r.errors == 0 or attribute == "errors" else math.nan
        for r in results
    ]
    return spread(values, fmt)


def comparison_table(results: Results, rates: Sequence[float]) -> str:
    head = ["server"]
    for rate in rates:
        head += [f"{rate:.0f}/s achieved", f"{rate:.0f}/s p50 ms", f"{rate:.0f}/s p99 ms"]
    head += ["saturation req/s", "sat p50 ms", "sat p99 ms", "sat CPU µs/req"]
    head += ["sat worker CPU split", "errors"]
    lines = [
        "## Comparison (median (min..max) over rounds)\n",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for name, points in results.items():
        row = [name]
        for rate in rates:
            runs = points[str(int(rate))]
            row += [
                _column(runs, "rps", "{:.0f}"),
                _column(runs, "p50_ms"),
                _column(runs, "p99_ms"),
            ]
        sat = points["sat"]
        errors = sum(r.errors for runs in points.values() for r in runs)
        row += [
            _column(sat, "rps", "{:.0f}"),
            _column(sat, "p50_ms"),
            _column(sat, "p99_ms"),
            _column(sat, "cpu_us_per_request", "{:.0f}"),
            ", ".join(r.worker_split for r in sat),
            str(errors),
        ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def ratio_table(results: Results, names: Sequence[str]) -> str:
    """Per-round ratios of saturation throughput and CPU per request (ours vs the others)."""
    ours = next(n for n in names if n.startswith("ours"))
    lines = [
        "## Ratios at saturation, per round (same round, same machine state)\n",
        "| ratio | per round | median |",
        "|---|---|---|",
    ]
    for other in (n for n in names if n != ours):
        pairs = list(zip(results[ours]["sat"], results[other]["sat"], strict=True))
        throughput = [a.rps / b.rps for a, b in pairs]
        cpu = [a.cpu_us_per_request / b.cpu_us_per_request for a, b in pairs]
        lines.append(
            f"| {ours} / {other} throughput | {', '.join(f'{x:.2f}' for x in throughput)} | "
            f"{median(throughput):.2f} |"
        )
        lines.append(
            f"| {ours} / {other} CPU per request | {', '.join(f'{x:.2f}' for x in cpu)} | "
            f"{median(cpu):.2f} |"
        )
    lines += [
        "",
        "Saturation throughput counting only runs where every worker got work (split no worse",
        "than 30/70; gthread assigns keep-alive connections to workers at accept time):\n",
        "| server | balanced runs | req/s (median (min..max)) |",
        "|---|---|---|",
    ]
    for name in names:
        runs = [r for r in results[name]["sat"] if r.balanced]
        lines.append(
            f"| {name} | {len(runs)} of {len(results[name]['sat'])} | "
            f"{spread([r.rps for r in runs])} |"
        )
    return "\n".join(lines) + "\n"


def tuning_table(results: Results) -> str:
    lines = [
        "## gunicorn layouts (workers x threads), median (min..max) over rounds\n",
        "| server | 200/s p50 ms | 200/s p99 ms | saturation req/s | sat p99 ms | "
        "sat CPU µs/req | sat worker CPU split |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, points in results.items():
        lines.append(
            f"| {name} | {_column(points['200'], 'p50_ms')} | {_column(points['200'], 'p99_ms')}"
            f" | {_column(points['sat'], 'rps', '{:.0f}')} | {_column(points['sat'], 'p99_ms')}"
            f" | {_column(points['sat'], 'cpu_us_per_request', '{:.0f}')}"
            f" | {', '.join(r.worker_split for r in points['sat'])} |"
        )
    return "\n".join(lines) + "\n"


def choose_layout(results: Results) -> str:
    """The layout with ours' best median saturation throughput (``"2x4"``, ...)."""
    ours = {name: points for name, points in results.items() if name.startswith("ours")}
    best = max(ours, key=lambda name: median([r.rps for r in ours[name]["sat"]]))
    return best.split()[-1]


def _plain(value: object) -> object:
    if isinstance(value, WrkResult):
        return {**asdict(value), "rps": value.rps}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


if __name__ == "__main__":
    main()
