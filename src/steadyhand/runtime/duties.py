"""A worker's periodic duties besides running tasks: sweep, circuits, listen, clock check
(the heartbeat that renews leases is `leases.LeaseKeeper`).

Each duty is a loop that runs until cancelled and survives a store that is briefly
unavailable (it logs and tries again at its next turn).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable

from steadyhand.core.errors import StoreUnavailable
from steadyhand.core.records import Task
from steadyhand.define.app import App
from steadyhand.engine.engine import Engine
from steadyhand.runtime.options import WorkerObserver, WorkerOptions
from steadyhand.runtime.presence import keep_present
from steadyhand.runtime.storecalls import StoreCalls
from steadyhand.store.base import Store
from steadyhand.store.clock import ClockReading, StoreClock

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
        clock: Callable[[], float],
        worker_id: str,
        leased_ids: Callable[[], list[int]],
        poll: float,
        kick: Callable[[], None],
        metrics: WorkerObserver | None,
    ) -> None:
        self._app = app
        self._store = store
        self._engine = engine
        self._calls = calls
        self._options = options
        self._clock = clock
        self._worker_id = worker_id
        self._leased_ids = leased_ids
        self._poll = poll
        self._kick = kick
        self._metrics = metrics
        self._last_skew: float | None = None

    def start(self) -> list[asyncio.Task[None]]:
        """Start every duty on the running loop; the caller cancels them at shutdown."""
        return [
            asyncio.create_task(self.clock_check(), name="clock"),
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
                    self._clock_offset,
                ),
                name="presence",
            ),
        ]

    async def clock_check(self) -> None:
        """Measure this worker's offset from the store's clock, periodically (see
        `store.clock`): it keeps the worker's reading of the store's clock exact, and tells
        operators about a machine whose wall clock is off."""
        clock = self._clock
        if not isinstance(clock, StoreClock):
            return  # a pinned clock (tests): nothing to measure
        while True:
            await asyncio.sleep(self._options.clock_check_interval)
            try:
                self.clock_measured(await self._calls.call(clock.sync))
            except StoreUnavailable as exc:
                self._calls.store_failed(exc)
                log.warning("could not read the store's clock (%s); keeping the last offset", exc)

    def _clock_offset(self) -> float | None:
        """The last measured offset of this machine's clock from the store's, if measured."""
        return self._last_skew

    def clock_measured(self, reading: ClockReading) -> None:
        """Log (a warning beyond the threshold) and export one offset measurement."""
        self._last_skew = reading.skew
        export = getattr(self._metrics, "clock_measured", None)  # optional in an observer
        if callable(export):
            export(reading.skew, reading.round_trip)
        if abs(reading.skew) > self._options.clock_skew_warning:
            log.warning(
                "this machine's clock is %+.3fs off the store's clock (threshold %.1fs; "
                "measured within %.3fs): steadyhand keeps time by the store, but check NTP "
                "on this host",
                reading.skew,
                self._options.clock_skew_warning,
                reading.round_trip / 2,
            )
        else:
            log.debug("clock offset from the store: %+.4fs", reading.skew)

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
            return tx.expired_leases(self._clock(), 100)

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
