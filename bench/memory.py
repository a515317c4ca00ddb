"""Memory: the resident set of one worker holding W workflows in flight.

W one-step workflows call an async agent that waits (a slow remote service). One worker
with concurrency W leases them all; once every call is leased (tasks with a lease), its RSS
is read with psutil and compared with the RSS it had, connected and idle, before `go`.
The worker is then killed outright (a graceful stop would wait for the agents' timeouts).
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

from .throughput import Monitor, WorkerConfig, start_workflows, workers


@dataclass
class MemoryResult:
    in_flight: int
    idle_rss_mb: float
    rss_mb: float
    ramp_seconds: float
    start_seconds: float

    @property
    def kb_per_workflow(self) -> float:
        return (self.rss_mb - self.idle_rss_mb) * 1024 / max(self.in_flight, 1)


def _rss_mb(pid: int) -> float:
    import psutil

    return float(psutil.Process(pid).memory_info().rss) / (1024 * 1024)


def measure(url: str, in_flight: int, *, timeout: float = 300.0) -> MemoryResult:
    config = WorkerConfig(concurrency=in_flight, lease_batch=256)
    start_seconds = start_workflows(url, "slow1", in_flight, data={"sleep": 3000})
    monitor = Monitor(url)
    try:
        with workers(url, 1, config) as fleet:
            pid = fleet.pids[0]
            idle = _rss_mb(pid)
            go = time.monotonic()
            fleet.start()
            deadline = go + timeout
            while True:
                held = int(
                    monitor.query(
                        "SELECT count(*) FROM tasks WHERE kind = 'action' "
                        "AND lease_owner IS NOT NULL"
                    )[0][0]
                )
                if held >= in_flight:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"only {held} of {in_flight} calls leased in {timeout}s")
                fleet.check_alive()
                time.sleep(0.25)
            ramp = time.monotonic() - go
            time.sleep(1.0)  # let the asyncio tasks of the last batch start their calls
            rss = _rss_mb(pid)
            os.kill(pid, signal.SIGKILL)
    finally:
        monitor.close()
    return MemoryResult(in_flight, idle, rss, ramp, start_seconds)
