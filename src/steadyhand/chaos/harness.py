"""The chaos harness: the demo's services and worker fleet, hostile faults, SIGKILLs on a
schedule, store disruptions on another thread, history digests mid-run, and the verdict.

It reuses the demo's orchestration (services, fleet, trips, tracker, audit) and adds what
chaos needs: a loop that survives the store going away, and invariants beyond the audit.
"""

from __future__ import annotations

import contextlib
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from steadyhand.chaos.disruptions import APP_NAME_PREFIX, Disruption, with_app_name
from steadyhand.chaos.disruptor import Disruptor, plan_disruptions
from steadyhand.chaos.gathers import gather_calls_held
from steadyhand.chaos.invariants import Digest, Verdict, read_rows, snapshot_history, verify
from steadyhand.chaos.options import ChaosOptions
from steadyhand.core import jsoncodec
from steadyhand.core.errors import StoreUnavailable
from steadyhand.define.client import Client
from steadyhand.demo.audit import audit
from steadyhand.demo.fleet import Fleet, child_env
from steadyhand.demo.report import Tally, Tracker, Trip, TripRecord, tally
from steadyhand.demo.run import (
    START_BATCH,
    injected_faults,
    reset_workdir,
    running_services,
    trip_inputs,
)
from steadyhand.demo.service_process import fetch_ledger
from steadyhand.demo.trip import SERVICES_ENV
from steadyhand.demo.trip import app as trip_app
from steadyhand.store import Store, open_store
from steadyhand.store.pg_admin import drop_schema
from steadyhand.store.sqlite import sqlite_path

T = TypeVar("T")
Note = Callable[[str], None]
STORE_TROUBLE = re.compile(
    r"store unavailable|cannot lease tasks|could not renew \d* ?leases|watchdog skipped"
)
"""Worker log lines that say a store call failed and was retried (the worker went on)."""
AIM_PATIENCE = 2.0
"""Seconds an aimed kill waits for a worker to hold a branch of a gather in flight."""


@dataclass(frozen=True)
class ChaosResult:
    """Everything the report shows; `ok` is what the exit code and the tests assert."""

    options: ChaosOptions
    db_url: str
    run_id: str
    records: list[TripRecord]
    tally: Tally
    verdict: Verdict
    duration_s: float
    workers_started: int
    workers_killed: int
    workers_exited: int
    store_retries_logged: int
    snapshots: int
    disruptions: list[Disruption] = field(default_factory=list)
    faults_injected: dict[str, int] = field(default_factory=dict)
    kills_mid_gather: int = 0  # kills of a worker holding a call of a gather in flight

    @property
    def ok(self) -> bool:
        return self.verdict.ok and self.tally.trips == self.options.workflows

    def disruption_counts(self) -> dict[str, int]:
        counts = Counter(d.kind for d in self.disruptions)
        kinds: tuple[str, ...] = ("terminate", "restart", "lock", "failover")
        kinds += ("skew_fast", "skew_slow", "pause", "partition")
        return {k: counts.get(k, 0) for k in kinds}

    def to_json(self) -> dict[str, Any]:
        states = self.tally.states
        return {
            "ok": self.ok,
            "backend": self.options.dialect,
            "workflows": self.tally.trips,
            "completed": states["completed"],
            "compensated": states["compensated"],
            "failed": states["failed"],
            "unfinished": states["running"] + states["compensating"],
            "kills": self.workers_killed,
            "kills_mid_gather": self.kills_mid_gather,
            "workers_started": self.workers_started,
            "workers_exited_by_themselves": self.workers_exited,
            "db_disruptions": self.disruption_counts(),
            "store_retries_logged": self.store_retries_logged,
            "attempts": self.tally.attempts,
            "retries": self.tally.retries,
            "probes": self.tally.probes,
            "compensations": self.tally.compensations,
            "calls_lost": self.tally.lost,
            "calls_timed_out": self.tally.timed_out,
            "calls_uncertain": self.tally.uncertain,
            "history_snapshots": self.snapshots,
            "invariant_violations": self.verdict.violations,
            "checks": [
                {"check": c.name, "violations": len(c.problems)} for c in self.verdict.checks
            ],
            "problems": [
                {
                    "check": c.name,
                    "workflow_id": p.workflow_id,
                    "trip": p.label,
                    "problem": p.detail,
                }
                for c in self.verdict.checks
                for p in c.problems
            ],
            "failed_trips": [
                {"workflow_id": p.workflow_id, "reason": p.detail} for p in self.verdict.failed
            ],
            "disruptions": [
                {
                    "kind": d.kind,
                    "at_s": round(d.at, 1),
                    "took_s": round(d.duration, 2),
                    "detail": d.detail,
                }
                for d in self.disruptions
            ],
            "faults_injected": self.faults_injected,
            "seed": self.options.seed,
            "duration_s": round(self.duration_s, 1),
            "db": self.db_url,
            "run_id": self.run_id,
        }


def _retrying(fn: Callable[[], T], patience: float = 120.0) -> T:
    """Call `fn` until the store answers (the harness rides out its own disruptions)."""
    deadline = time.monotonic() + patience
    while True:
        try:
            return fn()
        except StoreUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _reset_store(options: ChaosOptions) -> None:
    """Start from an empty store when the harness owns it (its own file or schema)."""
    if not options.owns_store:
        return
    url = options.db_url
    if options.dialect == "sqlite":
        path = sqlite_path(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            path.with_name(path.name + suffix).unlink(missing_ok=True)
        return
    drop_schema(url)


def _store_retries(options: ChaosOptions) -> int:
    count = 0
    for log in (options.workdir / "logs").glob("worker-*.log"):
        count += len(STORE_TROUBLE.findall(log.read_text(errors="replace")))
    return count


@contextlib.contextmanager
def _observer_store(url: str) -> Iterator[Store]:
    store = _retrying(lambda: open_store(url))
    try:
        yield store
    finally:
        store.close()


def run_chaos(options: ChaosOptions, note: Note | None = None) -> ChaosResult:
    """Run the whole chaos experiment (see the module docstring) and return its verdict."""
    say: Note = note or (lambda message: None)
    demo = options.demo_options()
    reset_workdir(demo)
    _reset_store(options)
    run_id = f"{int(time.time()):x}{random.randrange(16**3):03x}"
    prefix = f"{APP_NAME_PREFIX}-{run_id}"
    db_url = options.db_url
    worker_url = observer_url = db_url
    if options.dialect == "postgresql":
        worker_url = with_app_name(db_url, f"{prefix}-worker")
        observer_url = with_app_name(db_url, f"{prefix}-observer")
    rng = random.Random(f"{options.seed}:chaos")
    disruptor = Disruptor(options, db_url, prefix, rng)
    snapshots: list[dict[str, Digest]] = []
    with _observer_store(observer_url) as store:
        with running_services(demo) as services:
            urls = {kind: service.url for kind, service in services.items()}
            fleet = Fleet(demo, worker_url, child_env({SERVICES_ENV: jsoncodec.dumps(urls)}))
            disruptor.fleet = fleet
            try:
                for _ in range(options.workers):
                    fleet.start_one()
                say(
                    f"{options.dialect}: {options.workflows} trips at {options.rate:g}/s, "
                    f"{options.workers} workers, {options.faults} faults, store {db_url}"
                )
                loop = _Loop(options, store, fleet, disruptor, rng, run_id, say, snapshots)
                tracker, exited, began = loop.run()
                duration = time.monotonic() - began
            finally:
                fleet.stop()
                disruptor.close()
            ledgers = {kind: fetch_ledger(service.url) for kind, service in services.items()}
            faults = injected_faults(services)
        records = _retrying(tracker.final)
        trips = [r.trip for r in records]
        rows = _retrying(lambda: read_rows(store, [t.workflow_id for t in trips]))
    verdict = verify(trips, rows, ledgers, snapshots, audit(records, ledgers))
    return ChaosResult(
        options=options,
        db_url=db_url,
        run_id=run_id,
        records=records,
        tally=tally(records),
        verdict=verdict,
        duration_s=duration,
        workers_started=fleet.started,
        workers_killed=fleet.killed,
        workers_exited=exited,
        store_retries_logged=_store_retries(options),
        snapshots=len(snapshots),
        disruptions=disruptor.done,
        faults_injected=faults,
        kills_mid_gather=loop.kills_mid_gather,
    )


class _Loop:
    """The run's heartbeat: start trips, follow them, kill workers, strike the store."""

    def __init__(
        self,
        options: ChaosOptions,
        store: Store,
        fleet: Fleet,
        disruptor: Disruptor,
        rng: random.Random,
        run_id: str,
        say: Note,
        snapshots: list[dict[str, Digest]],
    ) -> None:
        self.options = options
        self.store = store
        self.fleet = fleet
        self.disruptor = disruptor
        self.rng = rng
        self.run_id = run_id
        self.say = say
        self.snapshots = snapshots
        self.client = Client(trip_app, store)
        self.tracker = Tracker(store)
        self.inputs = trip_inputs(options.workflows, options.seed)
        self.started = 0
        self.exited = 0
        self.kills_mid_gather = 0
        self.current = tally([])

    def _start_due(self, due: int) -> None:
        end = min(due, self.options.workflows, self.started + START_BATCH)
        for trip in self.inputs[self.started : end]:
            key = f"chaos-{self.run_id}-{trip['label']}"
            try:
                begun = self.client.start("trip", trip, key=key)
            except StoreUnavailable:
                return  # the same key next tick: idempotent if this one did commit
            self.tracker.add(Trip(begun.workflow_id, trip["label"]))
            self.started += 1

    def _snapshot(self) -> None:
        ids = list(self.tracker.records)
        try:
            self.snapshots.append(_retrying(lambda: snapshot_history(self.store, ids), 30.0))
        except StoreUnavailable as exc:
            self.say(f"could not snapshot the history ({exc}); one comparison fewer")

    def run(self) -> tuple[Tracker, int, float]:
        opts = self.options
        plan = plan_disruptions(opts)
        began = time.monotonic()
        next_kill = began + self.rng.uniform(0.5, 1.5) * opts.kill_every
        next_note = began + 5.0
        deadline = began + opts.timeout
        while True:
            now = time.monotonic()
            self._start_due(int((now - began) * opts.rate) + 1)
            with contextlib.suppress(StoreUnavailable):
                self.current = self.tracker.refresh()
            now = time.monotonic()
            ended = self.disruptor.poll(now)
            if ended is not None:
                self.say(f"{now - began:6.1f}s  {ended.kind}: {ended.detail}")
            finished = self.started == opts.workflows and self.tracker.all_done
            if finished and not plan and not self.disruptor.busy:
                break
            if now > deadline:
                self.say(f"gave up after {opts.timeout:g}s; the checks name what is left open")
                break
            if plan and not self.disruptor.busy and now - began >= plan[0][0]:
                kind = plan.pop(0)[1]
                self._snapshot()  # the history before the strike must survive it unchanged
                self.say(f"{now - began:6.1f}s  {kind} begins")
                self.disruptor.start(kind, now - began)
            for worker, code in self.fleet.replace_exited():
                self.exited += 1
                self.say(f"worker {worker.number} exited by itself ({code}); replaced it")
            paused = self.disruptor.kills_paused(now) or finished
            if now >= next_kill and not paused and self._kill(now - next_kill):
                next_kill = now + self.rng.uniform(0.5, 1.5) * opts.kill_every
            if now >= next_note:
                self._progress(now - began)
                next_note = now + 5.0
            time.sleep(0.1)
        if not self.snapshots:
            self._snapshot()
        return self.tracker, self.exited, began

    def _kill(self, late: float) -> bool:
        """SIGKILL a worker; aimed kills strike one holding a branch of a gather in flight
        (waiting up to AIM_PATIENCE seconds for one). False: wait for the next tick."""
        held: Counter[int] = Counter()
        with contextlib.suppress(StoreUnavailable):
            held = gather_calls_held(self.tracker)
        # Every other kill aims, and every kill until one has struck mid-gather: the run
        # must show a code-first workflow surviving a crash between its parallel branches.
        aimed = self.fleet.killed % 2 == 1 or self.kills_mid_gather == 0
        if aimed and not held and late < AIM_PATIENCE:
            return False
        victim, _ = self.fleet.kill_one(self.rng, prefer=held if aimed else ())
        self.kills_mid_gather += held[victim.process.pid] > 0
        return True

    def _progress(self, elapsed: float) -> None:
        s = self.current.states
        self.say(
            f"{elapsed:6.1f}s  started {self.started}/{self.options.workflows}, ended "
            f"{self.current.finished} ({s['completed']} completed, {s['compensated']} "
            f"compensated, {s['failed']} failed), kills {self.fleet.killed}, "
            f"disruptions {len(self.disruptor.done)}"
        )
