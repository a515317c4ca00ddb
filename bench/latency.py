"""Latency on an idle system: start-to-completion of one workflow at a time.

One worker process with its default options (PostgreSQL: woken by LISTEN/NOTIFY; SQLite:
polling every 50 ms, since the client is another process). The client starts a workflow,
waits for its terminal fact, then starts the next. Latency is read from the store's own
clock readings: the terminal fact's `at` minus the workflow row's `created_at`, so the
waiting loop adds nothing. The added latency per step is (p50 of 3 steps - p50 of 1) / 2.
"""

from __future__ import annotations

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
    def p99(self) -> float:
        return percentile(self.ms, 99)


def measure(
    url: str, workflow: str, runs: int, *, warmup: int = 10, config: WorkerConfig | None = None
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
                started = client.start(workflow)
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
