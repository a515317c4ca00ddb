"""The worker: lease due tasks, run supervisors and agents, heartbeat leases, and sweep.

One asyncio loop per process schedules the work; store calls run in a small thread pool
(the store is synchronous), sync agents on agent threads, async agents on the loop. The
outcomes of calls that finish close together are recorded in one transaction (the
recorder), and the next call each decision schedules comes back already leased to this
worker. Nothing waits in memory: every wait is a task row, so killing a worker at any line
loses nothing that another worker will not pick up after its lease expires (an outcome
waiting for its batch belongs to a leased task, renewed by the heartbeat).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import random
import signal
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from steadyhand.core.circuit import allowance, trial_window_start
from steadyhand.core.errors import StoreUnavailable
from steadyhand.core.records import SUPERVISE, Task
from steadyhand.define.app import App
from steadyhand.engine.answers import Outcome
from steadyhand.engine.engine import Engine
from steadyhand.engine.writes import Claim
from steadyhand.runtime.calls import missing_agent, perform
from steadyhand.store.base import Store

log = logging.getLogger("steadyhand.worker")
T = TypeVar("T")


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


class WorkerObserver(Protocol):
    """Optional hook told what the worker did (e.g. `steadyhand.ops.metrics.WorkerMetrics`)."""

    def task_done(
        self, task: Task, outcome: Outcome | None, call_seconds: float, decide_seconds: float
    ) -> None: ...

    def lease_expired(self, task: Task) -> None: ...


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{random.randrange(16**4):04x}"


class Worker:
    """Runs tasks from one store for one app until asked to stop (see the module docstring)."""

    def __init__(
        self,
        app: App,
        store: Store,
        options: WorkerOptions | None = None,
        metrics: WorkerObserver | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.store = store
        self.options = options or WorkerOptions()
        self.id = worker_id()
        self.engine = Engine(store, app.supervisors, plans=app.plans)
        self.poll = self.options.poll_interval or (0.05 if store.dialect == "sqlite" else 1.0)
        self._inflight: dict[int, tuple[Task, asyncio.Task[None]]] = {}
        self._db_pool = ThreadPoolExecutor(
            max_workers=min(self.options.concurrency, 8) + 2, thread_name_prefix="steadyhand-db"
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._kick: asyncio.Event | None = None
        self._outcomes: list[tuple[Task, Outcome, asyncio.Future[None]]] = []
        self._outcomes_ready: asyncio.Event | None = None
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
        self._outcomes_ready = asyncio.Event()
        if self._stopping:
            self._stop.set()
        if install_signal_handlers:
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._loop.add_signal_handler(sig, self._on_signal, sig)
        await self._db_retry(self.engine.publish_plans)
        await self._db_retry(self.engine.publish_services, self.app.services)
        log.info("worker %s started on %s", self.id, self.store.url)
        background = [
            asyncio.create_task(self._heartbeat(), name="heartbeat"),
            asyncio.create_task(self._watchdog(), name="watchdog"),
            asyncio.create_task(self._listen(), name="listen"),
            asyncio.create_task(self._circuits(), name="circuits"),
            asyncio.create_task(self._recorder(), name="recorder"),
        ]
        try:
            await self._fetch_loop()
        finally:
            await self._drain()
            for job in background:
                job.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await self._finish_store_calls()
            log.info("worker %s stopped after %d tasks", self.id, self.completed_tasks)

    async def _finish_store_calls(self, timeout: float = 10.0) -> None:
        """Let store calls already running in the pool end before `run` returns.

        A cancelled coroutine does not stop its call in the pool (a heartbeat, say), and
        a caller that closes the store as soon as `run` returns would pull the connection
        from under it; on SQLite that crashes the process. Queued calls are dropped.
        """
        self._db_pool.shutdown(wait=False, cancel_futures=True)
        waiting = asyncio.to_thread(self._db_pool.shutdown, wait=True)
        try:
            await asyncio.wait_for(waiting, timeout)
        except TimeoutError:
            log.warning("store calls still running after %.0fs; stopping anyway", timeout)

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
            free = self.options.concurrency - len(self._inflight)
            leased: list[Task] = []
            if free > 0:
                now = time.time()
                try:
                    leased = await self._db(
                        self.store.lease_tasks,
                        self.id,
                        min(free, self.options.lease_batch),
                        now,
                        now + self.options.lease_seconds,
                    )
                except StoreUnavailable as exc:
                    log.warning("cannot lease tasks (%s); retrying", exc)
                    await self._sleep(1.0)
                    continue
                if len(leased) < free and self.app.services:
                    leased += await self._lease_gated(free - len(leased))
                for task in leased:
                    job = asyncio.create_task(self._handle(task), name=f"task-{task.id}")
                    self._inflight[task.id] = (task, job)
            if leased and len(leased) == free:
                continue
            if leased:
                await asyncio.sleep(0)
                continue
            self._kick.clear()
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
        now = time.time()
        try:
            return await self._db(
                self.store.lease_gated,
                self.id,
                min(room, self.options.lease_batch),
                now,
                now + self.options.lease_seconds,
                allowance,
                trial_window_start,
            )
        except StoreUnavailable as exc:
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
                await self._db_retry(self.engine.supervise, task, notify=self._busy())
            else:
                outcome = await self._call(task)
                called = time.perf_counter()
                await self._record(task, outcome)
            self.completed_tasks += 1
            if self.metrics is not None:
                call_seconds = 0.0 if outcome is None else called - started
                decide_seconds = time.perf_counter() - started - call_seconds
                self.metrics.task_done(task, outcome, call_seconds, decide_seconds)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "task %s failed inside the worker; its lease will expire and it will be retried",
                task.id,
                extra={"workflow_id": task.workflow_id, "step": task.step, "attempt": task.attempt},
            )
        finally:
            self._inflight.pop(task.id, None)
            if self._kick is not None:
                self._kick.set()

    async def _call(self, task: Task) -> Outcome:
        name = str(task.payload.get("agent"))
        agent = self.app.agents.get(name)
        if agent is None:
            return missing_agent(task, self.app.agents.names())
        extra = {"workflow_id": task.workflow_id, "step": task.step, "attempt": task.attempt}
        log.debug("calling %s (%s)", name, task.kind, extra=extra)
        outcome = await perform(agent, task, functools.partial(self._report_late, task))
        log.debug("%s %s: %s", name, task.kind, outcome.suffix, extra=extra)
        return outcome

    # -- recording outcomes (group commit) ----------------------------------------------------
    async def _record(self, task: Task, outcome: Outcome) -> None:
        """Hand an outcome to the recorders and wait until it is committed."""
        assert self._outcomes_ready is not None
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._outcomes.append((task, outcome, done))
        self._outcomes_ready.set()
        await done

    async def _recorder(self) -> None:
        """Record every outcome waiting, up to `record_batch` per transaction: an idle
        worker records each one at once, a busy one shares each commit among many.

        One recorder per worker: a second one, measured, split the batches in two and made
        the whole slower (the Python half of two batches cannot overlap; the database half
        is too short to gain from it)."""
        assert self._outcomes_ready is not None
        while True:
            await self._outcomes_ready.wait()
            if not self._outcomes:
                self._outcomes_ready.clear()
                continue
            batch = self._outcomes[: self.options.record_batch]
            del self._outcomes[: len(batch)]
            if not self._outcomes:
                self._outcomes_ready.clear()
            claim = None if self._stopping else Claim(self.id, self.options.lease_seconds)
            try:
                await self._db_retry(
                    self.engine.record_outcomes,
                    [(task, outcome) for task, outcome, _ in batch],
                    self.id,
                    notify=self._busy(),
                    claim=claim,
                )
            except Exception as exc:  # each waiting task logs it; their leases will expire
                for _, _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for next_task in claim.tasks if claim else ():  # handed to us: no lease commit
                job = asyncio.create_task(self._handle(next_task), name=f"task-{next_task.id}")
                self._inflight[next_task.id] = (next_task, job)
            for _, _, done in batch:
                if not done.done():
                    done.set_result(None)

    def _report_late(self, task: Task, outcome: Outcome) -> None:
        """A sync agent answered after its timeout: record it (from the agent's own thread)."""
        try:
            self.engine.record_outcome(task, outcome, self.id)
        except Exception as exc:
            log.warning("could not record a late answer for task %s: %s", task.id, exc)

    # -- store access -----------------------------------------------------------------------
    async def _db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._db_pool, functools.partial(fn, *args, **kwargs))

    async def _db_retry(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call the store until it answers: losing the database only pauses the work."""
        delay = 0.05
        while True:
            try:
                return await self._db(fn, *args, **kwargs)
            except StoreUnavailable as exc:
                log.warning("store unavailable (%s); retrying in %.2fs", exc, delay)
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 5.0)

    # -- background duties ------------------------------------------------------------------
    async def _heartbeat(self) -> None:
        interval = self.options.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            ids = list(self._inflight)
            if not ids:
                continue
            try:
                until = time.time() + self.options.lease_seconds
                await self._db(self.store.renew_leases, self.id, ids, until)
            except StoreUnavailable as exc:
                log.warning("could not renew leases (%s)", exc)

    async def _watchdog(self) -> None:
        interval = self.options.watchdog_interval
        while True:
            await asyncio.sleep(interval * (0.75 + random.random() / 2))
            try:
                await self._sweep_once()
            except StoreUnavailable as exc:
                log.warning("watchdog skipped a sweep (%s)", exc)
            except Exception:
                log.exception("watchdog sweep failed")

    async def _sweep_once(self) -> None:
        expired = await self._db(self._expired)
        for task in expired:
            if await self._db(self.engine.expire_lease, task):
                if self.metrics is not None:
                    self.metrics.lease_expired(task)
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
        woken = await self._db(self.engine.wake_unwatched, 100, self.options.unwatched_grace)
        if woken:
            log.info("woke %d workflows that had nothing scheduled", woken)

    async def _circuits(self) -> None:
        """Re-judge each service's circuit often: a retry storm builds up in seconds."""
        if not self.app.services:
            return
        while True:
            await asyncio.sleep(self.options.circuit_interval * (0.75 + random.random() / 2))
            try:
                changes = await self._db(self.engine.evaluate_circuits)
            except StoreUnavailable as exc:
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

    def _expired(self) -> list[Task]:
        with self.store.snapshot() as tx:
            return tx.expired_leases(time.time(), 100)

    async def _listen(self) -> None:
        """Turn store notifications (NOTIFY, or this process's own commits) into kicks."""
        while True:
            await self._db(self.store.wait_for_work, self.poll)
            if self._kick is not None:
                self._kick.set()

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
                await self._db(self.store.release_leases, self.id, ids)
            except StoreUnavailable:
                log.warning("could not release %d leases; they will expire", len(ids))
