"""Running the travel-booking demo: services, worker processes, trips, kills, and the audit.

`run_demo` is the whole demo without a screen: the command adds the live display and the
summary, and the tests call it directly. Every process it starts, it stops, even on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx

from steadyhand.define.client import Client
from steadyhand.demo.audit import Audit, audit
from steadyhand.demo.faults import KINDS
from steadyhand.demo.options import DB_FILE, DemoError, DemoOptions
from steadyhand.demo.report import Tally, Tracker, Trip, TripRecord, tally
from steadyhand.demo.service_process import RunningService, fetch_ledger, start_service
from steadyhand.demo.trip import SERVICES_ENV
from steadyhand.demo.trip import app as trip_app
from steadyhand.store import Store, open_store
from steadyhand.store.sqlite import sqlite_path

APP_REF = "steadyhand.demo.trip:app"
START_BATCH = 100
TRAVELLERS = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia")
AIRPORTS = ("AMS", "LIS", "CDG", "FRA", "MAD", "OSL", "VIE", "DUB", "ATH", "WAW", "PRG", "BCN")


@dataclass(frozen=True)
class DemoResult:
    """Everything the summary shows; `ok` is what the exit code reports."""

    options: DemoOptions
    db_url: str
    records: list[TripRecord]
    tally: Tally
    audit: Audit
    duration_s: float
    workers_started: int
    workers_killed: int
    faults_injected: dict[str, int] = field(default_factory=dict)
    circuits: dict[str, dict[str, int]] = field(default_factory=dict)  # service -> kind -> n

    @property
    def ok(self) -> bool:
        return self.audit.ok

    def to_json(self) -> dict[str, Any]:
        states = self.tally.states
        problems = [
            {
                "check": check.name,
                "workflow_id": p.workflow_id,
                "trip": p.label,
                "problem": p.detail,
            }
            for check in self.audit.checks
            for p in check.problems
        ]
        return {
            "ok": self.ok,
            "trips": self.tally.trips,
            "completed": states["completed"],
            "compensated": states["compensated"],
            "failed": states["failed"],
            "unfinished": states["running"] + states["compensating"],
            "half_done": self.audit.half_done,
            "double_bookings": self.audit.double_bookings,
            "attempts": self.tally.attempts,
            "retries": self.tally.retries,
            "probes": self.tally.probes,
            "compensations": self.tally.compensations,
            "calls_lost": self.tally.lost,
            "calls_timed_out": self.tally.timed_out,
            "calls_uncertain": self.tally.uncertain,
            "workers": self.options.workers,
            "workers_started": self.workers_started,
            "workers_killed": self.workers_killed,
            "faults": self.options.faults,
            "faults_injected": self.faults_injected,
            "circuits": self.circuits,
            "seed": self.options.seed,
            "duration_s": round(self.duration_s, 2),
            "db": self.db_url,
            "audit": [{"check": c.name, "ok": c.ok} for c in self.audit.checks],
            "problems": problems,
        }


@dataclass(frozen=True)
class Snapshot:
    """Where a run stands, as the live display shows it."""

    tally: Tally
    started: int
    elapsed: float
    workers_alive: int
    workers_killed: int


class Observer(Protocol):
    """Who watches a run: the live display, or nobody (tests, --json)."""

    def begin(self, options: DemoOptions, db_url: str) -> None: ...
    def note(self, message: str) -> None: ...
    def update(self, snapshot: Snapshot) -> None: ...
    def end(self) -> None: ...


class Silent:
    """An observer that shows nothing."""

    def begin(self, options: DemoOptions, db_url: str) -> None:
        pass

    def note(self, message: str) -> None:
        pass

    def update(self, snapshot: Snapshot) -> None:
        pass

    def end(self) -> None:
        pass


def _child_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment of a child process: this very copy of steadyhand, plus `extra`."""
    src_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [src_root, env.get("PYTHONPATH")]))
    env.update(extra)
    return env


@dataclass
class WorkerProcess:
    number: int
    process: subprocess.Popen[bytes]
    started_at: float
    log_path: Path


class Fleet:
    """The worker processes: start, SIGKILL one and replace it, notice crashes, stop all."""

    def __init__(self, options: DemoOptions, db_url: str, env: dict[str, str]) -> None:
        self.options = options
        self.command = [
            sys.executable,
            "-m",
            "steadyhand",
            "--log-level",
            "INFO",
            "worker",
            "--app",
            APP_REF,
            "--db",
            db_url,
            "--concurrency",
            str(options.concurrency),
            "--lease",
            str(options.lease),
            "--watchdog",
            "1",
        ]
        self.env = env
        self.log_dir = options.workdir / "logs"
        self.alive: list[WorkerProcess] = []
        self.started = 0
        self.killed = 0
        self.early_exits = 0

    def start_one(self) -> WorkerProcess:
        self.started += 1
        log_path = self.log_dir / f"worker-{self.started}.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,  # Ctrl-C reaches the demo, which stops workers in order
            )
        worker = WorkerProcess(self.started, process, time.monotonic(), log_path)
        self.alive.append(worker)
        return worker

    def kill_one(
        self, rng: random.Random, prefer: Collection[int] = ()
    ) -> tuple[WorkerProcess, WorkerProcess]:
        """SIGKILL a random worker (of `prefer`'s pids if one lives), like a crash; replace it."""
        victim = rng.choice([w for w in self.alive if w.process.pid in prefer] or self.alive)
        with contextlib.suppress(ProcessLookupError):
            victim.process.send_signal(signal.SIGKILL)
        victim.process.wait()
        self.alive.remove(victim)
        self.killed += 1
        return victim, self.start_one()

    def replace_exited(self) -> list[tuple[WorkerProcess, int]]:
        """Restart workers that exited on their own; give up if they keep dying at once."""
        gone: list[tuple[WorkerProcess, int]] = []
        for worker in list(self.alive):
            code = worker.process.poll()
            if code is None:
                continue
            self.alive.remove(worker)
            gone.append((worker, code))
            if time.monotonic() - worker.started_at < 5.0:
                self.early_exits += 1
            if self.early_exits > 3:
                tail = worker.log_path.read_text(errors="replace")[-3000:]
                raise DemoError(f"worker processes keep exiting at start; last log:\n{tail}")
            self.start_one()
        return gone

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM everyone (they finish in-flight calls), then SIGKILL the stragglers."""
        for worker in self.alive:
            with contextlib.suppress(ProcessLookupError):
                worker.process.terminate()
        deadline = time.monotonic() + timeout
        for worker in self.alive:
            try:
                worker.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()
        self.alive.clear()


def reset_workdir(options: DemoOptions) -> None:
    """Make room for a fresh run, removing only files an earlier demo run left behind."""
    for sub in ("services", "logs"):
        (options.workdir / sub).mkdir(parents=True, exist_ok=True)
    names = [f"{kind}{suffix}" for kind in KINDS for suffix in (".db", ".db-wal", ".db-shm")]
    names += [f"{kind}.{ext}" for kind in KINDS for ext in ("port", "log")]
    for name in names:
        (options.workdir / "services" / name).unlink(missing_ok=True)
    for log in (options.workdir / "logs").glob("worker-*.log"):
        log.unlink()
    if options.db is None:
        for suffix in ("", "-wal", "-shm"):
            (options.workdir / f"{DB_FILE}{suffix}").unlink(missing_ok=True)
    elif options.db.startswith("sqlite:") or "://" not in options.db:
        parent = sqlite_path(options.db).parent
        parent.mkdir(parents=True, exist_ok=True)


@contextlib.contextmanager
def running_services(options: DemoOptions) -> Iterator[dict[str, RunningService]]:
    """The three services, started side by side (each takes a moment to come up)."""
    services: dict[str, RunningService] = {}
    workdir = options.workdir / "services"
    try:
        with ThreadPoolExecutor(len(KINDS)) as pool:
            futures = {
                kind: pool.submit(start_service, kind, workdir, options.faults, options.seed)
                for kind in KINDS
            }
            for kind, future in futures.items():
                services[kind] = future.result()
        yield services
    finally:
        for service in services.values():
            service.stop()


def trip_inputs(count: int, seed: int) -> list[dict[str, Any]]:
    """Seeded, readable trips: who travels where, labelled trip-001, trip-002, …"""
    rng = random.Random(f"{seed}:trips")
    width = max(3, len(str(count)))
    trips = []
    for n in range(1, count + 1):
        origin, destination = rng.sample(AIRPORTS, 2)
        trips.append(
            {
                "label": f"trip-{n:0{width}d}",
                "traveller": rng.choice(TRAVELLERS),
                "origin": origin,
                "destination": destination,
                "nights": rng.randint(1, 7),
            }
        )
    return trips


def injected_faults(services: dict[str, RunningService]) -> dict[str, int]:
    """What the services did to us, added up over the three (from their /stats)."""
    total: dict[str, int] = {}
    for service in services.values():
        with contextlib.suppress(httpx.HTTPError, ValueError):
            stats = httpx.get(f"{service.url}/stats", timeout=5.0).json()
            for name, count in stats.get("faults", {}).items():
                if not name.startswith("hang_ended"):
                    total[name] = total.get(name, 0) + int(count)
    return dict(sorted(total.items()))


def run_demo(options: DemoOptions, observer: Observer | None = None) -> DemoResult:
    """Book `options.trips` trips against the unreliable services and audit the outcome."""
    watch: Observer = observer or Silent()
    reset_workdir(options)
    db_url = options.db_url
    store = open_store(db_url)  # creates the schema before the workers race to
    rng = random.Random(f"{options.seed}:kills")
    try:
        watch.begin(options, db_url)
        with running_services(options) as services:
            urls = {kind: service.url for kind, service in services.items()}
            fleet = Fleet(options, db_url, _child_env({SERVICES_ENV: json.dumps(urls)}))
            try:
                for _ in range(options.workers):
                    fleet.start_one()
                watch.note(
                    f"started the flights, hotels and cars services ({options.faults} faults) "
                    f"and {options.workers} workers"
                )
                tracker, began = _book_and_watch(options, store, fleet, rng, watch)
                duration = time.monotonic() - began
            finally:
                fleet.stop()
            ledgers = {kind: fetch_ledger(service.url) for kind, service in services.items()}
            faults = injected_faults(services)
        records = tracker.final()
        circuits = circuit_history(store)
    finally:
        watch.end()
        store.close()
    return DemoResult(
        options=options,
        db_url=db_url,
        records=records,
        tally=tally(records),
        audit=audit(records, ledgers),
        duration_s=duration,
        workers_started=fleet.started,
        workers_killed=fleet.killed,
        faults_injected=faults,
        circuits=circuits,
    )


CIRCUITS_SQL = "SELECT service, kind, COUNT(*) FROM service_facts GROUP BY service, kind"


def circuit_history(store: Store) -> dict[str, dict[str, int]]:
    """How often each service's circuit opened and closed during the run (service facts)."""
    found: dict[str, dict[str, int]] = {}
    with store.snapshot() as tx:
        for service, kind, n in tx.query(CIRCUITS_SQL).fetchall():
            found.setdefault(str(service), {})[str(kind)] = int(n)
    return found


def _book_and_watch(
    options: DemoOptions, store: Store, fleet: Fleet, rng: random.Random, watch: Observer
) -> tuple[Tracker, float]:
    """Start trips at the arrival rate and follow them to the end, killing workers on schedule.

    Trips arrive over time, as customers would, so workers are killed while calls are in
    flight throughout the run rather than only at its start.
    """
    client = Client(trip_app, store)
    run_id = f"{int(time.time()):x}"
    inputs = trip_inputs(options.trips, options.seed)
    tracker = Tracker(store)
    began = time.monotonic()
    next_kill = began + rng.uniform(0.5, 1.5) * options.kill_every
    deadline = began + options.timeout
    started = 0
    while True:
        now = time.monotonic()
        due = options.trips if options.rate == 0 else int((now - began) * options.rate) + 1
        # At most START_BATCH per tick, so the display and the kills keep their rhythm.
        for trip in inputs[started : min(due, options.trips, started + START_BATCH)]:
            begun = client.start("trip", trip, key=f"demo-{run_id}-{trip['label']}")
            tracker.add(Trip(begun.workflow_id, trip["label"]))
            started += 1
        current = tracker.refresh()
        now = time.monotonic()
        watch.update(Snapshot(current, started, now - began, len(fleet.alive), fleet.killed))
        if started == options.trips and tracker.all_done:
            break
        if now > deadline:
            unstarted = (
                f" ({options.trips - started} never started)" if started < options.trips else ""
            )
            watch.note(
                f"gave up waiting after {options.timeout:g}s{unstarted}; "
                "the audit names the trips left open"
            )
            break
        for worker, code in fleet.replace_exited():
            watch.note(f"worker {worker.number} exited by itself ({code}); started a replacement")
        if options.kill_workers and now >= next_kill:
            held = tracker.calls_held()
            victim, fresh = fleet.kill_one(rng)
            calls = held[victim.process.pid]
            watch.note(
                f"SIGKILLed worker {victim.number} (pid {victim.process.pid}) holding "
                f"{calls} call{'' if calls == 1 else 's'}; started worker {fresh.number}"
            )
            next_kill = now + rng.uniform(0.5, 1.5) * options.kill_every
        time.sleep(0.25)
    return tracker, began
