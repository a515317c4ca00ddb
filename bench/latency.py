"""Latency on an idle system: start-to-completion of one workflow at a time.

One worker process with its default options (PostgreSQL: woken by LISTEN/NOTIFY; SQLite:
polling every 50 ms, since the client is another process). The client starts a workflow,
waits for its terminal fact, then starts the next. Latency is read from the store's own
clock readings: the terminal fact's `at` minus the workflow row's `created_at`, so the
waiting loop adds nothing. The added latency per step is (p50 of 3 steps - p50 of 1) / 2.

With `via="wait"` the latency is the client's instead: from just before `Client.start` to
`Client.wait` returning the final status (the worker in another process), which is what an
application sees. Run it alone: `python -m bench.latency --help`.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass, field

from .common import percentile
from .throughput import Monitor, WorkerConfig, workers


@dataclass
class LatencyResult:
    workflow: str
    runs: int
    ms: list[float] = field(default_factory=list)

    @property
    def p50(self) -> float:
        return percentile(self.ms, 50)

    @property
    def p95(self) -> float:
        return percentile(self.ms, 95)

    @property
    def p99(self) -> float:
        return percentile(self.ms, 99)


def measure(
    url: str,
    workflow: str,
    runs: int,
    *,
    warmup: int = 10,
    config: WorkerConfig | None = None,
    via: str = "store",
) -> LatencyResult:
    from steadyhand import Client, open_store

    from .workload import app

    config = config or WorkerConfig(concurrency=8)
    result = LatencyResult(workflow, runs)
    store = open_store(url)
    client = Client(app, store)
    monitor = Monitor(url)
    try:
        with workers(url, 1, config) as fleet:
            fleet.start()
            for i in range(warmup + runs):
                began = time.perf_counter()
                started = client.start(workflow)
                if via == "wait":
                    client.wait(started.workflow_id, timeout=30.0)
                    elapsed = time.perf_counter() - began
                else:
                    elapsed = _wait(monitor, started.workflow_id, timeout=30.0)
                if i >= warmup:
                    result.ms.append(elapsed * 1000)
    finally:
        monitor.close()
        store.close()
    return result


def _wait(monitor: Monitor, workflow_id: str, timeout: float) -> float:
    kinds = "'workflow_completed', 'workflow_compensated', 'workflow_failed'"
    query = (
        f"SELECT f.at - w.created_at FROM facts f JOIN workflows w ON w.id = f.workflow_id "
        f"WHERE f.workflow_id = '{workflow_id}' AND f.kind IN ({kinds})"
    )
    deadline = time.monotonic() + timeout
    while True:
        rows = monitor.query(query)
        if rows:
            return float(rows[0][0])
        if time.monotonic() > deadline:
            raise TimeoutError(f"workflow {workflow_id} did not end within {timeout}s")
        time.sleep(0.001)


def main(argv: list[str] | None = None) -> None:
    """Measure one store's latency and print it as one JSON line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.latency",
        description="Start-to-end latency of one workflow at a time, worker in another process.",
    )
    parser.add_argument("url", help="store URL (sqlite:///path.db or postgresql://...)")
    parser.add_argument("--workflow", default="one", help="bench workload: one or three steps")
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument(
        "--via",
        choices=("wait", "store"),
        default="wait",
        help="wait: the client's clock, start to Client.wait returning (default); "
        "store: the terminal fact's time minus the workflow's creation, by the store's clock",
    )
    parser.add_argument("--label", default="", help="a name for the line (e.g. before/after)")
    args = parser.parse_args(argv)
    result = measure(args.url, args.workflow, args.runs, warmup=args.warmup, via=args.via)
    line = {
        "label": args.label,
        "store": args.url.split(":", 1)[0],
        "via": args.via,
        "workflow": args.workflow,
        "runs": args.runs,
        "p50_ms": round(result.p50, 3),
        "p95_ms": round(result.p95, 3),
        "p99_ms": round(result.p99, 3),
        "pid": os.getpid(),
    }
    print(json.dumps(line))


if __name__ == "__main__":
    main()
