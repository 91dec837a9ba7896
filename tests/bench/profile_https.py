"""Where a webhook worker's CPU goes at saturation: py-spy over wrk load.

    python -m tests.bench.profile_https [--server ours|noop] [--seconds 20]

Starts the same setup as ``bench_https`` (control plane, policy, recorded review), drives
the chosen server with unpaced wrk load and samples every worker with ``py-spy record
--subprocesses``. Prints the functions with the largest inclusive and self share of the
samples (idle threads excluded; with ``--gil`` only the thread holding the GIL, i.e.
where the interpreter's CPU goes), grouped by file and function — enough to tell framework,
TLS, logging, metrics and our own decision apart.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from tests.bench.harness import (
    Certificates,
    Cluster,
    NoopFlask,
    Ours,
    Server,
    learn_patch,
    machine_summary,
    record_review,
    review_variant,
    run_wrk,
    scratch_dir,
    write_bodies,
)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", choices=("ours", "noop"), default="ours")
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rules", type=int, default=100)
    parser.add_argument("--pool", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--top", type=int, default=30, help="rows per table")
    parser.add_argument(
        "--focus",
        default="mutate (http/admission.py)",
        help="also break this frame down by direct callee",
    )
    parser.add_argument(
        "--gil", action="store_true", help="sample only the thread holding the GIL (CPU view)"
    )
    args = parser.parse_args(argv)
    workdir = scratch_dir("profile")
    view = "GIL holder only" if args.gil else "active threads"
    print(f"# Profile of {args.server} at saturation ({view})\n\n{machine_summary()}\n", flush=True)
    certificates = Certificates.write(workdir / "tls")
    cluster = Cluster.start(workdir, rules=args.rules, pool=args.pool)
    try:
        body = review_variant(record_review(cluster, workdir, certificates), uid=str(uuid.uuid4()))
        bodies = write_bodies(workdir / "bodies.jsonl", [body])
        ours = Ours(cluster, workdir / "ours", certificates, args.workers, args.threads)
        ours.start()
        patch_file = workdir / "patch.json"
        try:
            patch_file.write_text(json.dumps(learn_patch(ours, body, certificates)))
            if args.server == "noop":
                ours.stop()
                server: Server = NoopFlask(
                    workdir / "noop", certificates, patch_file, args.workers, args.threads
                )
                server.start()
            else:
                server = ours
            try:
                run_wrk(server, bodies, 3, args.connections)  # warm-up
                raw = profile(server, bodies, workdir, args)
            finally:
                server.stop()
        finally:
            ours.stop()
        print(summarize(raw, args.top, args.focus))
    finally:
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def profile(server: Server, bodies: Path, workdir: Path, args: argparse.Namespace) -> Path:
    """Record while wrk saturates the server; return the collapsed stacks file."""
    py_spy = str(Path(sys.executable).parent / "py-spy")
    raw = workdir / "profile.txt"
    record = [
        py_spy,
        "record",
        "--pid",
        str(server.pid),
        "--subprocesses",
        "--rate",
        "250",
        "--duration",
        str(args.seconds),
        "--nonblocking",
        *(["--gil"] if args.gil else []),
    ]
    load = threading.Thread(
        target=run_wrk, args=(server, bodies, args.seconds + 4, args.connections), daemon=True
    )
    load.start()
    subprocess.run(
        [*record, "--format", "raw", "-o", str(raw)],
        check=True,
        capture_output=True,
        timeout=args.seconds + 60,
    )
    load.join(args.seconds + 70)
    return raw


def summarize(raw: Path, top: int, focus: str = "") -> str:
    """Inclusive and self shares per ``function (file)`` from py-spy's collapsed stacks, and
    the time under ``focus`` split by its direct callees."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    callees: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame(f) for f in stack.split(";")[1:]]  # first element: process/thread
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
        if focus in frames:
            at = frames.index(focus)
            callees[frames[at + 1] if at + 1 < len(frames) else "(self)"] += count
    lines = [f"{total} samples over all workers.\n"]
    tables = [("Inclusive", inclusive), ("Self", own)]
    if callees:
        tables.append((f"Under `{focus}`, by direct callee (share of all samples)", callees))
    for title, counter in tables:
        lines += [f"### {title}\n", "| share | function (file) |", "|---|---|"]
        for frame, count in counter.most_common(top):
            lines.append(f"| {count / total:.1%} | `{frame}` |")
        lines.append("")
    return "\n".join(lines)


def _frame(text: str) -> str:
    """``name (path/file.py:123)`` -> ``name (file.py)``: lines merged, paths shortened."""
    name, _, where = text.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    parts = where.split("/")
    short = "/".join(parts[-2:]) if "site-packages" in where or "webhook" in where else parts[-1]
    return f"{name} ({short})"


if __name__ == "__main__":
    main()
