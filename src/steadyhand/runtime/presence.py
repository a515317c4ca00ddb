"""Worker presence: each worker keeps a row in `workers` (host, pid, last heartbeat, calls
in flight) so the dashboard can show who is alive. Operational, like the queue: nothing
decides from it, and a missing row loses nothing."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from steadyhand.runtime.storecalls import StoreCalls
from steadyhand.store.base import Store

log = logging.getLogger("steadyhand.worker")
PRUNE_AFTER = 86400.0  # rows silent this long are deleted by any live worker


@dataclass(frozen=True)
class WorkerRow:
    """One worker as the dashboard shows it."""

    id: str
    host: str
    pid: int
    started_at: float
    heartbeat_at: float
    in_flight: int
    concurrency: int
    stopped_at: float | None
    clock_offset: float | None = None  # seconds this machine's clock is off the store's

    def alive(self, now: float, silent_after: float) -> bool:
        return self.stopped_at is None and now - self.heartbeat_at <= silent_after


def mark_alive(
    store: Store,
    worker_id: str,
    in_flight: int,
    concurrency: int,
    clock_offset: float | None = None,
) -> None:
    now = time.time()
    params = {
        "id": worker_id,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "now": now,
        "in_flight": in_flight,
        "concurrency": concurrency,
        "clock_offset": clock_offset,
    }
    with store.transaction() as tx:
        tx.execute("worker_alive", params)
        tx.execute("prune_workers", {"before": now - PRUNE_AFTER})


def mark_stopped(store: Store, worker_id: str) -> None:
    with store.transaction() as tx:
        tx.execute("worker_stopped", {"id": worker_id, "now": time.time()})


def recent_workers(store: Store, now: float, since: float, limit: int = 100) -> list[WorkerRow]:
    """Workers heard from since `since`, newest first."""
    with store.snapshot() as tx:
        rows = tx.execute("recent_workers", {"since": since, "limit": limit}).fetchall()
    return [_row(r) for r in rows]


def _row(r: Any) -> WorkerRow:
    return WorkerRow(
        id=r[0],
        host=r[1],
        pid=int(r[2]),
        started_at=float(r[3]),
        heartbeat_at=float(r[4]),
        in_flight=int(r[5]),
        concurrency=int(r[6]),
        stopped_at=None if r[7] is None else float(r[7]),
        clock_offset=None if r[8] is None else float(r[8]),
    )


async def keep_present(
    store: Store,
    calls: StoreCalls,
    worker_id: str,
    concurrency: int,
    in_flight: Callable[[], int],
    interval: float,
    clock_offset: Callable[[], float | None] = lambda: None,
) -> None:
    """Refresh this worker's row every `interval` seconds until cancelled."""
    while True:
        try:
            await calls.call(mark_alive, store, worker_id, in_flight(), concurrency, clock_offset())
        except Exception as exc:  # the store is down, or a role lacks the grant: not fatal
            log.warning("could not record this worker's presence (%s)", exc)
        await asyncio.sleep(interval)
