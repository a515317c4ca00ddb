"""A worker's periodic duties besides running tasks: heartbeat, sweep, circuits, listen.

Each duty is a loop that runs until cancelled and survives a store that is briefly
unavailable (it logs and tries again at its next turn).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping

from steadyhand.core.errors import StoreUnavailable
from steadyhand.core.records import Task
from steadyhand.define.app import App
from steadyhand.engine.engine import Engine
from steadyhand.runtime.heartbeats import Heartbeat
from steadyhand.runtime.options import WorkerObserver, WorkerOptions
from steadyhand.runtime.presence import keep_present
from steadyhand.runtime.storecalls import StoreCalls
from steadyhand.store.base import Store
from steadyhand.store.heartbeating import renew_with_heartbeats

log = logging.getLogger("steadyhand.worker")


class Duties:
    """The background loops of one worker (see the module docstring)."""

    def __init__(
        self,
        *,
        app: App,
        store: Store,
        engine: Engine,
        calls: StoreCalls,
        options: WorkerOptions,
        worker_id: str,
        poll: float,
        leased_ids: Callable[[], list[int]],
        kick: Callable[[], None],
        metrics: WorkerObserver | None,
        beats: Callable[[], Mapping[int, Heartbeat]] | None = None,
    ) -> None:
        self._app = app
        self._store = store
        self._engine = engine
        self._calls = calls
        self._options = options
        self._worker_id = worker_id
        self._poll = poll
        self._leased_ids = leased_ids
        self._kick = kick
        self._metrics = metrics
        self._beats = beats

    def start(self) -> list[asyncio.Task[None]]:
        """Start every duty on the running loop; the caller cancels them at shutdown."""
        return [
            asyncio.create_task(self.heartbeat(), name="heartbeat"),
            asyncio.create_task(self.watchdog(), name="watchdog"),
            asyncio.create_task(self.listen(), name="listen"),
            asyncio.create_task(self.circuits(), name="circuits"),
            asyncio.create_task(self.schedules(), name="schedules"),
            asyncio.create_task(
                keep_present(
                    self._store,
                    self._calls,
                    self._worker_id,
                    self._options.concurrency,
                    lambda: len(self._leased_ids()),
                    self._options.lease_seconds / 3,
                ),
                name="presence",
            ),
        ]

    async def heartbeat(self) -> None:
        """Renew the leases of the tasks in flight, three times per lease period."""
        interval = self._options.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            ids = self._leased_ids()
            if not ids:
                continue
            try:
                until = time.time() + self._options.lease_seconds
                beats = self._unsaved_beats()
                if beats:  # the agents' latest details ride along with the renewal
                    await self._calls.call(
                        renew_with_heartbeats, self._store, self._worker_id, ids, until, beats
                    )
                else:
                    await self._calls.call(self._store.renew_leases, self._worker_id, ids, until)
            except StoreUnavailable as exc:
                self._calls.store_failed(exc)
                log.warning("could not renew leases (%s)", exc)

    def _unsaved_beats(self) -> dict[int, str]:
        if self._beats is None:
            return {}
        found = {task_id: beat.unsaved() for task_id, beat in self._beats().items()}
        return {task_id: text for task_id, text in found.items() if text is not None}

    async def watchdog(self) -> None:
        """Sweep for expired leases and unwatched workflows, at a jittered interval."""
        interval = self._options.watchdog_interval
        while True:
            await asyncio.sleep(interval * (0.75 + random.random() / 2))
            try:
                await self.sweep_once()
            except StoreUnavailable as exc:
                self._calls.store_failed(exc)
                log.warning("watchdog skipped a sweep (%s)", exc)
            except Exception:
                log.exception("watchdog sweep failed")

    async def sweep_once(self) -> None:
        """Record each expired lease (waking its supervisor) and wake unwatched workflows."""
        expired = await self._calls.call(self._expired)
        for task in expired:
            if await self._calls.call(self._engine.expire_lease, task):
                if self._metrics is not None:
                    self._metrics.lease_expired(task)
                log.warning(
                    "lease of %s expired (worker %s); recorded and woke the supervisor",
                    task.kind,
                    task.lease_owner,
                    extra={
                        "workflow_id": task.workflow_id,
                        "step": task.step,
                        "attempt": task.attempt,
                    },
                )
        woken = await self._calls.call(
            self._engine.wake_unwatched, 100, self._options.unwatched_grace
        )
        if woken:
            log.info("woke %d workflows that had nothing scheduled", woken)

    def _expired(self) -> list[Task]:
        with self._store.snapshot() as tx:
            return tx.expired_leases(time.time(), 100)

    async def circuits(self) -> None:
        """Re-judge each service's circuit often: a retry storm builds up in seconds."""
        if not self._app.services:
            return
        while True:
            await asyncio.sleep(self._options.circuit_interval * (0.75 + random.random() / 2))
            try:
                changes = await self._calls.call(self._engine.evaluate_circuits)
            except StoreUnavailable as exc:
                self._calls.store_failed(exc)
                log.warning("circuits not evaluated (%s)", exc)
                continue
            for change in changes:
                gate = change.gate
                log.warning(
                    "%s circuit %s: %s",
                    gate.service,
                    gate.circuit.replace("_", "-"),
                    change.data.get("reason") or f"{change.kind.replace('_', ' ')}",
                )

    async def schedules(self) -> None:
        """Start the workflows of due schedule ticks, about once a second (every worker
        tries; a tick's idempotency key and the schedule's row lock make it one start)."""
        if not self._app.schedules:
            return
        firing = self._engine.schedules
        while True:
            await asyncio.sleep(self._options.schedule_interval * (0.75 + random.random() / 2))
            try:
                fired = await self._calls.call(firing.fire_due)
            except StoreUnavailable as exc:
                log.warning("schedules not fired (%s)", exc)
                continue
            except Exception:
                log.exception("firing schedules failed; trying again at the next pass")
                continue
            for result in fired:
                if result.started:
                    log.info("schedule %s started %s", result.schedule, ", ".join(result.started))
                if result.skipped:
                    log.info(
                        "schedule %s skipped %d tick(s): the previous run is still going",
                        result.schedule,
                        result.skipped,
                    )

    async def listen(self) -> None:
        """Turn store notifications (NOTIFY, or this process's own commits) into kicks."""
        while True:
            await self._calls.call(self._store.wait_for_work, self._poll)
            self._kick()
