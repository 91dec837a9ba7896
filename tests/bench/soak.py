"""Soak: hours-in-minutes of steady admission traffic; count errors, watch memory grow (or not).

Starts a real control plane (``tools.controlplane``), the webhook exactly as the e2e suite
runs it (gunicorn with ``gunicorn.conf.py`` over TLS, policy from a watched ConfigMap), and
sends AdmissionReviews at a fixed rate from a pool of keep-alive HTTPS connections (Python
threads with ``http.client``: a fixed *rate*, which ``wrk`` cannot do). Every answer is
checked (status 200, uid echoed, the expected patch or none). RSS (``VmRSS`` from
``/proc/<pid>/status``) of the gunicorn master and each worker is sampled throughout.

    .venv/bin/python -m tests.bench.soak --duration 600 --rate 200

Exit status 0 only if there were no errors, the achieved rate is within 2% of the target and
RSS grew by at most ``--max-rss-growth`` percent from the end of the warm-up to the end.
Not part of the test suite (it takes ``--duration`` seconds).
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import ssl
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.e2e.reliability import ForkSafeWebhookServer, alive, children, kill_pid, rss_kib
from tests.e2e.support import (
    INJECT_LABEL,
    POLICY_CONFIGMAP,
    POLICY_HEADER,
    POLICY_NAMESPACE,
    SOURCE_NAMESPACE,
    Api,
    pull_secret,
    set_policy,
)
from tools.controlplane import ControlPlane, resolve_bin_dir

NAMESPACE = "soak"
RULES = "rules:\n  - {name: corp, registries: [registry.example.com], secrets: [corp-pull]}\n"


@dataclass
class Stats:
    sent: int = 0
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    error_samples: list[str] = field(default_factory=list)
    late: int = 0
    """Requests sent more than 50 ms after their scheduled time (the generator fell behind)."""
    reconnects: int = 0
    latencies: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def error(self, kind: str, detail: str) -> None:
        with self.lock:
            self.errors[kind] = self.errors.get(kind, 0) + 1
            if len(self.error_samples) < 10:
                self.error_samples.append(f"{kind}: {detail[:200]}")


def review_body(index: int) -> tuple[bytes, str, bool]:
    """(body, uid, patch expected): 4 in 5 pods need the secret, 1 in 5 need nothing."""
    uid = str(uuid.uuid4())
    needs = index % 5 != 0
    image = f"registry.example.com/team/app-{index % 50}:1" if needs else f"nginx:1.{index % 30}"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": "soak-", "namespace": NAMESPACE},
        "spec": {"containers": [{"name": "app", "image": image}]},
    }
    document = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": "CREATE",
            "namespace": NAMESPACE,
            "object": pod,
            "dryRun": False,
        },
    }
    return json.dumps(document).encode(), uid, needs


def check_answer(status: int, raw: bytes, uid: str, needs: bool) -> str | None:
    """None if the answer is right, else what is wrong."""
    if status != 200:
        return f"status {status}"
    try:
        response = json.loads(raw)["response"]
    except (ValueError, KeyError, TypeError):
        return "not an AdmissionReview"
    if response.get("uid") != uid or response.get("allowed") is not True:
        return "uid not echoed or not allowed"
    if not needs:
        return None if "patch" not in response else "unexpected patch"
    if "patch" not in response:
        return "missing patch"
    ops = json.loads(base64.b64decode(response["patch"]))
    names = [
        v["name"]
        for op in ops
        for v in (op["value"] if isinstance(op["value"], list) else [op["value"]])
    ]
    return None if names == ["corp-pull"] else f"wrong patch {names}"


class LoadGenerator:
    """``rate`` requests/s spread over ``connections`` keep-alive connections, on a schedule."""

    def __init__(
        self, port: int, context: ssl.SSLContext, rate: float, duration: float, connections: int
    ) -> None:
        self.port, self.context = port, context
        self.rate, self.duration, self.connections = rate, duration, connections
        self.stats = Stats()
        self._next = 0
        self._next_lock = threading.Lock()
        self.started = 0.0

    def run(self) -> Stats:
        self.started = time.monotonic() + 0.5
        threads = [
            threading.Thread(target=self._worker, name=f"soak-{n}", daemon=True)
            for n in range(self.connections)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(self.duration + 120)
        return self.stats

    def _ticket(self) -> int | None:
        with self._next_lock:
            index = self._next
            if index >= int(self.rate * self.duration):
                return None
            self._next += 1
            return index

    def _connect(self) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=self.context, timeout=10)

    def _worker(self) -> None:
        connection = self._connect()
        stats = self.stats
        while (index := self._ticket()) is not None:
            due = self.started + index / self.rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -0.05:
                with stats.lock:
                    stats.late += 1
            body, uid, needs = review_body(index)
            began = time.monotonic()
            try:
                connection.request("POST", "/mutate", body, {"Content-Type": "application/json"})
                response = connection.getresponse()
                raw = response.read()
                if response.getheader("Connection", "").lower() == "close":
                    connection.close()
                    connection = self._connect()
                    with stats.lock:
                        stats.reconnects += 1
            except (OSError, http.client.HTTPException) as exc:
                stats.error(type(exc).__name__, str(exc))
                connection.close()
                connection = self._connect()
                with stats.lock:
                    stats.sent += 1
                    stats.reconnects += 1
                continue
            elapsed = time.monotonic() - began
            problem = check_answer(response.status, raw, uid, needs)
            with stats.lock:
                stats.sent += 1
                stats.latencies.append(elapsed)
                if problem is None:
                    stats.ok += 1
            if problem is not None:
                stats.error("bad answer", problem)
        connection.close()


def total_kib(snapshot: dict[str, int]) -> int:
    return sum(snapshot.values())


def rss_snapshot(master: int) -> dict[str, int]:
    """VmRSS in KiB of the master and each live worker (keyed by role and PID)."""
    snapshot = {f"master {master}": rss_kib(master)}
    for worker in children(master):
        snapshot[f"worker {worker}"] = rss_kib(worker)
    return snapshot


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.soak", description=__doc__)
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load")
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    parser.add_argument("--connections", type=int, default=8, help="keep-alive connections")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (PSI_WORKERS)")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker")
    parser.add_argument(
        "--warmup", type=float, default=60.0, help="seconds before the RSS baseline is taken"
    )
    parser.add_argument("--max-rss-growth", type=float, default=5.0, help="percent")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temp dir")
    parser.add_argument("--json", type=Path, default=None, help="write the summary here")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="psi-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"soak: {args.rate:g} req/s for {args.duration:g}s; work dir {workdir}", file=sys.stderr)

    plane = ControlPlane.start(workdir / "cluster", resolve_bin_dir())
    server: ForkSafeWebhookServer | None = None
    try:
        api = Api(plane)
        for namespace in (POLICY_NAMESPACE, SOURCE_NAMESPACE):
            api.ensure_namespace(namespace)
        api.ensure_namespace(NAMESPACE, {INJECT_LABEL: "true"})
        api.apply_secret(pull_secret("corp-pull", SOURCE_NAMESPACE, {"registry.example.com": "x"}))
        set_policy(api, POLICY_HEADER + RULES)
        server = ForkSafeWebhookServer(plane, workdir / "webhook")
        server.extra_env.update(
            {
                "PSI_WORKERS": str(args.workers),
                "PSI_THREADS": str(args.threads),
                "PSI_POLICY_CONFIGMAP": POLICY_CONFIGMAP,
                "PROMETHEUS_MULTIPROC_DIR": str(workdir / "metrics"),
            }
        )
        (workdir / "metrics").mkdir(exist_ok=True)
        server.start()
        assert server.process is not None
        master = server.process.pid
        workers_at_start = children(master)
        context = ssl.create_default_context(cadata=server.ca_pem.decode())
        generator = LoadGenerator(server.port, context, args.rate, args.duration, args.connections)
        samples: list[tuple[float, dict[str, int]]] = [(0.0, rss_snapshot(master))]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(5.0):
                samples.append((time.monotonic() - generator.started, rss_snapshot(master)))

        sampler = threading.Thread(target=sample, name="rss", daemon=True)
        sampler.start()
        stats = generator.run()
        elapsed = time.monotonic() - generator.started
        done.set()
        sampler.join(10)
        end = rss_snapshot(master)
        samples.append((elapsed, end))
        baseline = next((s for t, s in samples if t >= args.warmup), samples[0][1])
        growth = 100.0 * (total_kib(end) - total_kib(baseline)) / total_kib(baseline)
        growth_from_start = (
            100.0 * (total_kib(end) - total_kib(samples[0][1])) / total_kib(samples[0][1])
        )
        errors_logged = sum(
            1 for r in server.log_records() if r.get("level") in ("error", "critical")
        )
        summary: dict[str, Any] = {
            "target_rate": args.rate,
            "duration_s": round(elapsed, 1),
            "sent": stats.sent,
            "ok": stats.ok,
            "errors": sum(stats.errors.values()),
            "error_kinds": stats.errors,
            "error_samples": stats.error_samples,
            "achieved_rate": round(stats.sent / elapsed, 1),
            "late_sends": stats.late,
            "reconnects": stats.reconnects,
            "latency_ms": {
                "p50": round(percentile(stats.latencies, 0.5) * 1000, 2),
                "p99": round(percentile(stats.latencies, 0.99) * 1000, 2),
                "max": round(max(stats.latencies, default=0) * 1000, 2),
            },
            "rss_kib_start": samples[0][1],
            "rss_kib_after_warmup": baseline,
            "rss_kib_end": end,
            "rss_total_kib": {
                "start": total_kib(samples[0][1]),
                "after_warmup": total_kib(baseline),
                "end": total_kib(end),
            },
            "rss_growth_pct_after_warmup": round(growth, 2),
            "rss_growth_pct_from_start": round(growth_from_start, 2),
            "workers_restarted": sorted(set(workers_at_start) ^ set(children(master))),
            "error_log_lines": errors_logged,
            "rss_timeline_total_kib": [f"{round(t)}s={total_kib(s)}" for t, s in samples],
        }
        text = json.dumps(summary, indent=2)
        print(text)
        if args.json:
            args.json.write_text(text + "\n")
        passed = (
            summary["errors"] == 0
            and summary["achieved_rate"] >= 0.98 * args.rate
            and growth <= args.max_rss_growth
            and not summary["workers_restarted"]
        )
        print("soak: PASS" if passed else "soak: FAIL", file=sys.stderr)
        return 0 if passed else 1
    finally:
        if server is not None and server.process is not None:
            workers = children(server.process.pid)
            server.stop()
            for worker in workers:
                if alive(worker):
                    kill_pid(worker)
        plane.stop()


if __name__ == "__main__":
    raise SystemExit(main())
