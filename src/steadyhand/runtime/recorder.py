"""Group commit of call outcomes: many finished calls, one transaction.

Calls that finish close together are recorded, and decided on, in one transaction; the
next call each decision schedules comes back already leased to this worker, so it costs
no lease commit. An outcome waiting for its batch belongs to a leased task that the
heartbeat keeps renewing, so a worker killed here loses nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from steadyhand.core.decisions import Decision
from steadyhand.core.records import Task
from steadyhand.engine.answers import Outcome
from steadyhand.engine.engine import Engine
from steadyhand.engine.writes import Claim
from steadyhand.runtime.storecalls import StoreCalls


class GroupCommit:
    """Collects outcomes and records each batch in one transaction (see the module doc)."""

    def __init__(
        self,
        engine: Engine,
        calls: StoreCalls,
        worker_id: str,
        *,
        batch_size: int,
        lease_seconds: float,
        busy: Callable[[], bool],
        stopping: Callable[[], bool],
        handed_over: Callable[[Task, float], None],
    ) -> None:
        self._engine = engine
        self._calls = calls
        self._worker_id = worker_id
        self._batch_size = batch_size
        self._lease_seconds = lease_seconds
        self._busy = busy
        self._stopping = stopping
        self._handed_over = handed_over
        self._waiting: list[tuple[Task, Outcome, asyncio.Future[Decision | None]]] = []
        self._ready = asyncio.Event()

    async def record(self, task: Task, outcome: Outcome) -> Decision | None:
        """Hand an outcome to the recorder, wait until it is committed, and return what
        the supervisor decided after it (None when nothing was decided)."""
        done: asyncio.Future[Decision | None] = asyncio.get_running_loop().create_future()
        self._waiting.append((task, outcome, done))
        self._ready.set()
        return await done

    async def run(self) -> None:
        """Record every outcome waiting, up to `batch_size` per transaction: an idle
        worker records each one at once, a busy one shares each commit among many.

        One recorder per worker: a second one, measured, split the batches in two and made
        the whole slower (the Python half of two batches cannot overlap; the database half
        is too short to gain from it)."""
        while True:
            await self._ready.wait()
            if not self._waiting:
                self._ready.clear()
                continue
            batch = self._waiting[: self._batch_size]
            del self._waiting[: len(batch)]
            if not self._waiting:
                self._ready.clear()
            claim = None if self._stopping() else Claim(self._worker_id, self._lease_seconds)
            sent = time.monotonic()  # a handed-over lease was granted after this
            try:
                decisions = await self._calls.call_until_answered(
                    self._engine.record_outcomes,
                    [(task, outcome) for task, outcome, _ in batch],
                    self._worker_id,
                    notify=self._busy(),
                    claim=claim,
                )
            except Exception as exc:  # each waiting task logs it; their leases will expire
                for _, _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for next_task in claim.tasks if claim else ():  # handed to us: no lease commit
                self._handed_over(next_task, sent)
            for (_, _, done), decision in zip(batch, decisions, strict=True):
                if not done.done():
                    done.set_result(decision)
