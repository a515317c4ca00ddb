"""What a worker can be tuned with, and the hook that is told what it did."""

from __future__ import annotations

import os
import random
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from steadyhand.core.records import Task
from steadyhand.engine.answers import Outcome


@dataclass(frozen=True)
class WorkerOptions:
    """Tuning knobs; the defaults suit a few workers against a nearby database."""

    # Tasks in progress at once in this process. Calls that finish together share one
    # transaction, so more in flight means fewer commits per step (bench/RESULTS.md).
    concurrency: int = 32
    lease_seconds: float = 15.0  # how long a claim lasts without a heartbeat
    poll_interval: float | None = None  # None: 0.05 s on SQLite, 1 s on PostgreSQL (NOTIFY)
    watchdog_interval: float = 2.0  # how often expired leases and unwatched workflows are swept
    unwatched_grace: float = 5.0  # an open workflow with no task this long gets a wake-up
    shutdown_grace: float | None = None  # None: wait for in-flight calls' own timeouts
    lease_batch: int = 32  # most tasks claimed per lease transaction
    record_batch: int = 64  # most call outcomes recorded (and decided on) per transaction
    circuit_interval: float = 0.5  # how often service circuits are re-judged from their facts
    schedule_interval: float = 1.0  # how often due schedule ticks are looked for
    # A supervisor run longer than this (seconds) is logged with its workflow and counted:
    # the workflow stays locked while its supervisor runs.
    slow_decision: float = 1.0
    # The store's clock is the one clock (see store.clock): measure this machine's offset
    # from it this often, and warn when the wall clock is further off than the threshold.
    clock_check_interval: float = 10.0
    clock_skew_warning: float = 2.0


class WorkerObserver(Protocol):
    """Optional hook told what the worker did (e.g. `steadyhand.ops.metrics.WorkerMetrics`)."""

    def task_done(
        self, task: Task, outcome: Outcome | None, call_seconds: float, decide_seconds: float
    ) -> None: ...

    def lease_expired(self, task: Task) -> None: ...

    # Optional: `clock_measured(skew, round_trip)`, this machine's wall clock minus the
    # store's clock and the round trip that measured it (see `Duties.clock_measured`).


Noticed = Callable[[str, str], None]
"""An optional observer method, `noticed(what, detail)`, told of trouble worth counting:
`supervisor_raised` / `decision_refused` / `slow_decision` (detail: the workflow id) and
`store_error` (detail: the error's cause, e.g. `disk_full`)."""


def noticer(metrics: object) -> Noticed | None:
    """The observer's `noticed` method, if it has one (it is optional)."""
    found = getattr(metrics, "noticed", None)
    return found if callable(found) else None


def worker_id() -> str:
    """A name for this worker process that is unique across machines and restarts."""
    return f"{socket.gethostname()}:{os.getpid()}:{random.randrange(16**4):04x}"
