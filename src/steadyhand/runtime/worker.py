"""The worker: lease due tasks, run supervisors and agents, and shut down gracefully.

One asyncio loop per process schedules the work; store calls run in a small thread pool
(`storecalls`), sync agents on agent threads, async agents on the loop. Outcomes are
recorded in batches (`recorder`), and the heartbeat, sweep, circuits and listener run
beside the fetch loop (`duties`). Nothing waits in memory: every wait is a task row, so
killing a worker at any line loses nothing that another worker will not pick up after its
lease expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import time
from collections.abc import Callable
from typing import Any

from steadyhand.core.circuit import allowance, trial_window_start
from steadyhand.core.decisions import Decision
from steadyhand.core.errors import StoreError, StoreUnavailable
from steadyhand.core.records import SUPERVISE, Task
from steadyhand.define.agents import Context
from steadyhand.define.app import App
from steadyhand.engine.answers import Outcome
from steadyhand.engine.engine import Engine
from steadyhand.runtime.calls import Abandoned, context_for, log_outcome, missing_agent, perform
from steadyhand.runtime.duties import Duties
from steadyhand.runtime.heartbeats import Heartbeat, watch
from steadyhand.runtime.leases import LeaseKeeper, say_lease_lost
from steadyhand.runtime.options import WorkerObserver, WorkerOptions, noticer, worker_id
from steadyhand.runtime.presence import mark_stopped
from steadyhand.runtime.recorder import GroupCommit
from steadyhand.runtime.storecalls import StoreCalls
from steadyhand.runtime.tracing import tracing_for, workflow_trace
from steadyhand.store.base import Store
from steadyhand.store.clock import StoreClock, store_clock

__all__ = ["Worker", "WorkerObserver", "WorkerOptions", "worker_id"]

log = logging.getLogger("steadyhand.worker")
DUE_SLACK = 0.05
"""Seconds early a task may be leased: processes read the store's clock to within a few
milliseconds of each other, so work another process stamped "due now" must not look a
millisecond early here and wait a whole poll (`store.clock`)."""


class Worker:
    """Runs tasks from one store for one app until asked to stop (see the module docstring)."""

    def __init__(
        self,
        app: App,
        store: Store,
        options: WorkerOptions | None = None,
        metrics: WorkerObserver | None = None,
        *,
        tracer_provider: Any = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """`tracer_provider`: an OpenTelemetry provider for this worker's spans (default:
        the process's configured SDK, if any; see `runtime.tracing`). `clock` is the one
        clock of this worker and its engine: leases, due times and facts are stamped with
        it. By default the store's clock (`StoreClock`, synced at start and by the clock
        duty); tests may pin any function."""
        self.app = app
        self.tracing = tracing_for(tracer_provider)
        self.metrics = metrics
        self.store = store
        self.options = options or WorkerOptions()
        self.id = worker_id()
        self.clock: Callable[[], float] = clock or store_clock(store, resync_after=None)
        self.engine = Engine(store, app.supervisors, clock=self.clock, plans=app.plans)
        self.engine.slow_decision = self.options.slow_decision
        self.engine.noticed = noticer(metrics)
        self.poll = self.options.poll_interval or (0.05 if store.dialect == "sqlite" else 1.0)
        self._inflight: dict[int, tuple[Task, asyncio.Task[None]]] = {}
        self._beats: dict[int, Heartbeat] = {}  # calls in flight: their agents' heartbeats
        self._contexts: dict[int, Context] = {}  # of the calls in flight
        self.store_calls = StoreCalls(self.options.concurrency)
        self.store_calls.noticed = noticer(metrics)
        self.leases = LeaseKeeper(
            store=store,
            calls=self.store_calls,
            clock=self.clock,
            worker_id=self.id,
            lease_seconds=self.options.lease_seconds,
            on_lost=self._lease_lost,
            beats=lambda: dict(self._beats),
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._kick: asyncio.Event | None = None
        self._recorder: GroupCommit | None = None
        self._stopping = False
        self.completed_tasks = 0

    # -- lifecycle --------------------------------------------------------------------------
    def run(self, *, install_signal_handlers: bool = True) -> None:
        """Run until SIGTERM/SIGINT (or `stop()`), then shut down gracefully."""
        asyncio.run(self.run_async(install_signal_handlers=install_signal_handlers))

    def stop(self) -> None:
        """Ask the worker to finish in-flight work and exit; safe from any thread."""
        self._stopping = True
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)

    async def run_async(self, *, install_signal_handlers: bool = False) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._kick = asyncio.Event()
        self._recorder = GroupCommit(
            self.engine,
            self.store_calls,
            self.id,
            batch_size=self.options.record_batch,
            lease_seconds=self.options.lease_seconds,
            busy=self._busy,
            stopping=lambda: self._stopping,
            handed_over=self._start_task,
        )
        if self._stopping:
            self._stop.set()
        if install_signal_handlers:
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._loop.add_signal_handler(sig, self._on_signal, sig)
        duties = self._duties()  # one instance: it keeps the last clock offset measured
        if isinstance(self.clock, StoreClock):
            reading = await self.store_calls.call_until_answered(self.clock.sync)
            duties.clock_measured(reading)
        await self.store_calls.call_until_answered(self.engine.publish_plans)
        await self.store_calls.call_until_answered(self.engine.publish_services, self.app.services)
        await self.store_calls.call_until_answered(
            self.engine.publish_schedules, self.app.schedules
        )
        log.info("worker %s started on %s", self.id, self.store.safe_url)
        background = [
            *duties.start(),
            asyncio.create_task(self._recorder.run(), name="recorder"),
            asyncio.create_task(self.leases.run(), name="leases"),
        ]
        try:
            await self._fetch_loop()
        finally:
            await self._drain()
            for job in background:
                job.cancel()
            self.store.interrupt_wait()  # the listener's wait runs in the pool
            await asyncio.gather(*background, return_exceptions=True)
            with contextlib.suppress(Exception):  # presence is a courtesy, not a duty
                await self.store_calls.call(mark_stopped, self.store, self.id)
            await self.store_calls.finish()
            log.info("worker %s stopped after %d tasks", self.id, self.completed_tasks)

    def _duties(self) -> Duties:
        return Duties(
            app=self.app,
            store=self.store,
            engine=self.engine,
            calls=self.store_calls,
            options=self.options,
            clock=self.clock,
            worker_id=self.id,
            leased_ids=lambda: list(self._inflight),
            poll=self.poll,
            kick=self._kick_fetch,
            metrics=self.metrics,
        )

    def _kick_fetch(self) -> None:
        if self._kick is not None:
            self._kick.set()

    def _start_task(self, task: Task, leased_at: float) -> None:
        """Run `task`, whose lease was granted by a request sent at monotonic `leased_at`."""
        self.leases.hold(task.id, leased_at)
        job = asyncio.create_task(self._handle(task), name=f"task-{task.id}")
        self._inflight[task.id] = (task, job)

    def _lease_lost(self, task_id: int) -> None:
        """No renewal of this task's lease for a whole lease period: the call is no longer
        ours. Cancel an async agent, flag a sync one (`ctx.lease_lost`), and say so."""
        entry = self._inflight.get(task_id)
        if entry is None:
            return
        say_lease_lost(entry[0], self.options.lease_seconds)
        ctx = self._contexts.get(task_id)
        if ctx is not None:
            ctx._fence.raise_()

    def _on_signal(self, sig: signal.Signals) -> None:
        if self._stopping:
            log.warning("second %s: exiting now; leases will expire and be recovered", sig.name)
            os._exit(1)
        log.info("%s received: finishing in-flight work, taking no more", sig.name)
        self.stop()

    # -- the fetch loop ---------------------------------------------------------------------
    async def _fetch_loop(self) -> None:
        assert self._stop is not None and self._kick is not None
        while not self._stop.is_set():
            # Cleared before leasing, not after: a wake-up that lands while the lease is on
            # its way (a start committed meanwhile) must not be lost to a full poll's sleep.
            self._kick.clear()
            free = self.options.concurrency - len(self._inflight)
            leased: list[Task] = []
            if free > 0:
                sent, now = time.monotonic(), self.clock() + DUE_SLACK
                try:
                    leased = await self.store_calls.call(
                        self.store.lease_tasks,
                        self.id,
                        min(free, self.options.lease_batch),
                        now,
                        now + self.options.lease_seconds,
                    )
                except StoreUnavailable as exc:
                    self.store_calls.store_failed(exc)
                    log.warning("cannot lease tasks (%s); retrying", exc)
                    await self._sleep(1.0)
                    continue
                if len(leased) < free and self.app.services:
                    leased += await self._lease_gated(free - len(leased))
                for task in leased:
                    self._start_task(task, sent)
            if leased and len(leased) == free:
                continue
            if leased:
                await asyncio.sleep(0)
                continue
            await self._wait_any(self._kick.wait(), self._stop.wait(), timeout=self.poll)

    async def _wait_any(self, *aws: Any, timeout: float) -> None:
        jobs = [asyncio.ensure_future(a) for a in aws]
        try:
            await asyncio.wait(jobs, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for job in jobs:
                job.cancel()

    async def _sleep(self, seconds: float) -> None:
        assert self._stop is not None
        await self._wait_any(self._stop.wait(), timeout=seconds)

    async def _lease_gated(self, room: int) -> list[Task]:
        """Claim calls to remote services, within their limits and circuits."""
        now = self.clock() + DUE_SLACK
        try:
            return await self.store_calls.call(
                self.store.lease_gated,
                self.id,
                min(room, self.options.lease_batch),
                now,
                now + self.options.lease_seconds,
                allowance,
                trial_window_start,
            )
        except StoreUnavailable as exc:
            self.store_calls.store_failed(exc)
            log.warning("cannot lease calls to services (%s); retrying", exc)
            return []

    def _busy(self) -> bool:
        """True when this worker cannot take new work soon, so others should be woken."""
        return len(self._inflight) >= self.options.concurrency

    # -- handling one task ------------------------------------------------------------------
    async def _handle(self, task: Task) -> None:
        outcome: Outcome | None = None
        started = called = time.perf_counter()
        try:
            if task.kind == SUPERVISE:
                begun = time.time()
                decision = await self.store_calls.call_until_answered(
                    self.engine.supervise, task, notify=self._busy()
                )
                if self.tracing is not None:
                    carrier, name = await self.store_calls.call(
                        workflow_trace, self.store, task.workflow_id
                    )
                    self.tracing.decision(
                        carrier, task.workflow_id, name, decision, begun, "supervise"
                    )
            else:
                outcome = await self._call(task)
                called = time.perf_counter()
                begun = time.time()
                decision = await self._record(task, outcome)
                if self.tracing is not None:
                    self.tracing.decision(
                        task.payload.get("trace"),
                        task.workflow_id,
                        str(task.payload.get("workflow", "")),
                        decision,
                        begun,
                        "outcome",
                    )
            self.completed_tasks += 1
            if self.metrics is not None:
                call_seconds = 0.0 if outcome is None else called - started
                decide_seconds = time.perf_counter() - started - call_seconds
                self.metrics.task_done(task, outcome, call_seconds, decide_seconds)
        except asyncio.CancelledError:
            raise
        except Abandoned:
            log.info(
                "cancelled %s %s after losing its lease",
                task.kind,
                task.step,
                extra={"workflow_id": task.workflow_id, "step": task.step, "attempt": task.attempt},
            )
        except StoreError as exc:  # refused, not unavailable: said once, without a traceback
            self.store_calls.store_failed(exc)
            log.error(
                "task %s could not be recorded: %s; its lease will expire and it will be retried",
                task.id,
                exc,
                extra={"workflow_id": task.workflow_id, "step": task.step, "attempt": task.attempt},
            )
        except Exception:
            log.exception(
                "task %s failed inside the worker; its lease will expire and it will be retried",
                task.id,
                extra={"workflow_id": task.workflow_id, "step": task.step, "attempt": task.attempt},
            )
        finally:
            self._inflight.pop(task.id, None)
            self._contexts.pop(task.id, None)
            self.leases.drop(task.id)
            self._kick_fetch()

    async def _call(self, task: Task) -> Outcome:
        name = str(task.payload.get("agent"))
        agent = self.app.agents.get(name)
        if agent is None:
            return missing_agent(task, self.app.agents.names())
        extra = {"workflow_id": task.workflow_id, "step": task.step, "attempt": task.attempt}
        log.debug("calling %s (%s)", name, task.kind, extra=extra)
        beat = Heartbeat.for_task(task)
        self._beats[task.id] = beat
        ctx = self._contexts[task.id] = context_for(task, beat.beat)
        late = functools.partial(self._report_late, task)
        try:
            if self.tracing is None:
                outcome = beat.stamp(await watch(perform(agent, task, late, beat.beat, ctx), beat))
            else:
                with self.tracing.attempt(task, name) as span:
                    called = perform(agent, task, late, beat.beat, ctx)
                    outcome = beat.stamp(await watch(called, beat))
                    self.tracing.outcome(span, outcome)
        finally:
            self._beats.pop(task.id, None)
        log_outcome(name, task, outcome, extra)
        if ctx.lease_lost:
            log.warning(
                "%s answered after its lease was lost (%s); reporting it: late if another "
                "worker took the call over",
                name,
                outcome.suffix,
                extra=extra,
            )
        return outcome

    async def _record(self, task: Task, outcome: Outcome) -> Decision | None:
        assert self._recorder is not None
        return await self._recorder.record(task, outcome)

    def _report_late(self, task: Task, outcome: Outcome) -> None:
        """A sync agent answered after its timeout: record it (from the agent's own thread)."""
        try:
            self.engine.record_outcome(task, outcome, self.id)
        except Exception as exc:
            log.warning("could not record a late answer for task %s: %s", task.id, exc)

    async def _drain(self) -> None:
        """Let in-flight tasks finish (each call has its own timeout), then release the rest."""
        if not self._inflight:
            return
        timeouts = [float(t.payload.get("timeout", 0)) for t, _ in self._inflight.values()]
        grace = self.options.shutdown_grace
        if grace is None:
            grace = max(timeouts, default=0) + 5.0
        jobs = [job for _, job in self._inflight.values()]
        log.info("waiting up to %.1fs for %d in-flight tasks", grace, len(jobs))
        _, pending = await asyncio.wait(jobs, timeout=grace)
        if pending:
            ids = [t.id for t, job in self._inflight.values() if job in pending]
            for job in pending:
                job.cancel()
            try:
                await self.store_calls.call(self.store.release_leases, self.id, ids)
            except StoreUnavailable:
                log.warning("could not release %d leases; they will expire", len(ids))
