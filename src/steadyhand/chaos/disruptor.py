"""When each disruption of a chaos run strikes, and the thread that runs them one at a time
(store disruptions in `disruptions`, worker disruptions in `workerfaults`).
"""

from __future__ import annotations

import random
from concurrent.futures import Future, ThreadPoolExecutor

from steadyhand.chaos.disruptions import (
    Disruption,
    hold_write_lock,
    restart_server,
    terminate_connections,
)
from steadyhand.chaos.options import ChaosOptions
from steadyhand.chaos.workerfaults import run_worker_fault
from steadyhand.demo.fleet import Fleet

QUIET_AFTER_RESTART = 3.0
"""Seconds without kills around a server restart, so a fresh worker does not meet a dead
server while it opens the store (a worker that cannot open the store exits)."""


def plan_disruptions(options: ChaosOptions) -> list[tuple[float, str]]:
    """When (seconds into the run) each disruption strikes: spread over the arrivals."""
    if options.dialect == "postgresql":
        kinds = ["terminate"] * options.disruptions
        for n in range(options.restarts):
            kinds.insert((n + 1) * len(kinds) // (options.restarts + 1) + n, "restart")
    else:
        kinds = ["lock"] * options.disruptions
    if options.failover is not None:
        kinds[len(kinds) // 2 : len(kinds) // 2] = ["failover"] * options.failovers
    for n, kind in enumerate(options.worker_faults_for_dialect):  # between the store's
        kinds.insert(min(len(kinds), 2 * n + 1), kind)
    span = options.workflows / options.rate
    return [(span * (i + 1) / (len(kinds) + 1), kind) for i, kind in enumerate(kinds)]


class Disruptor:
    """Runs one disruption at a time on a thread, so kills and tracking carry on meanwhile."""

    def __init__(self, options: ChaosOptions, url: str, prefix: str, rng: random.Random) -> None:
        self.options = options
        self.url = url
        self.prefix = prefix
        self.rng = rng
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="chaos-disruption")
        self.running: Future[Disruption] | None = None
        self.running_kind = ""
        self.done: list[Disruption] = []
        self.quiet_until = 0.0
        self.fleet: Fleet | None = None  # set once the fleet exists (worker disruptions)

    def start(self, kind: str, at: float) -> None:
        opts = self.options
        if kind == "terminate":
            scope = self.prefix if opts.terminate_scope == "run" else None
            self.running = self.pool.submit(terminate_connections, self.url, scope, at)
        elif kind == "restart":
            self.running = self.pool.submit(restart_server, self.url, opts.pg_cluster, at)
        elif kind == "failover" and opts.failover is not None:
            self.running = self.pool.submit(opts.failover, at)
        elif kind == "lock":
            seconds = self.rng.uniform(*opts.lock_hold)
            self.running = self.pool.submit(hold_write_lock, self.url, seconds, at)
        else:
            assert self.fleet is not None
            self.running = self.pool.submit(
                run_worker_fault, self.fleet, self.url, kind, opts.lease, at
            )
        self.running_kind = kind

    def poll(self, now: float) -> Disruption | None:
        """The disruption that just ended, if any (re-raising what went wrong in it)."""
        if self.running is None or not self.running.done():
            return None
        finished = self.running.result()
        self.running = None
        if finished.kind == "restart":
            self.quiet_until = now + QUIET_AFTER_RESTART
        self.done.append(finished)
        return finished

    @property
    def busy(self) -> bool:
        return self.running is not None

    def kills_paused(self, now: float) -> bool:
        return (self.busy and self.running_kind == "restart") or now < self.quiet_until

    def close(self) -> None:
        self.pool.shutdown(wait=True)
