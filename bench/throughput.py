"""Throughput of steadyhand: N workflows started first, then K worker processes run them.

The clock runs from the moment the (already imported and connected) workers are told to go
to the `at` of the last terminal fact; starting the N workflows is timed separately. On
PostgreSQL the commits of the run are the `pg_stat_database.xact_commit` delta of the
run's database, minus this module's own monitoring reads.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.synchronize import Event
from typing import Any

import psycopg

from .common import (
    TERMINAL_KINDS,
    Fleet,
    quiet_logging,
    settle_stats,
    xact_commits,
)

CALL_OUTCOMES = ("attempt_succeeded", "attempt_failed", "attempt_timed_out", "attempt_lost")


@dataclass(frozen=True)
class WorkerConfig:
    concurrency: int = 16
    lease_batch: int = 32
    poll_interval: float | None = None  # None: the worker's default for the backend
    watchdog_interval: float = 2.0

    def options(self) -> dict[str, Any]:
        return {
            "concurrency": self.concurrency,
            "lease_batch": self.lease_batch,
            "poll_interval": self.poll_interval,
            "watchdog_interval": self.watchdog_interval,
        }


@dataclass
class RunResult:
    backend: str
    workers: int
    workflow: str
    n: int
    start_seconds: float = 0.0
    seconds: float = 0.0
    calls: int = 0  # agent calls recorded (steps, plus retries where there are failures)
    states: dict[str, int] = field(default_factory=dict)
    commits: int | None = None
    first_outcome_ms: float | None = None
    pids: list[int] = field(default_factory=list)

    @property
    def workflows_per_s(self) -> float:
        return self.n / self.seconds if self.seconds else 0.0

    @property
    def calls_per_s(self) -> float:
        return self.calls / self.seconds if self.seconds else 0.0

    @property
    def starts_per_s(self) -> float:
        return self.n / self.start_seconds if self.start_seconds else 0.0

    @property
    def commits_per_call(self) -> float | None:
        if self.commits is None or not self.calls:
            return None
        return self.commits / self.calls


def backend_of(url: str) -> str:
    return "postgres" if url.startswith(("postgresql:", "postgres:")) else "sqlite"


def worker_main(url: str, options: dict[str, Any], index: int, ready: Event, go: Event) -> None:
    """Body of one worker process (spawned): get ready, wait for `go`, run until SIGTERM."""
    quiet_logging()
    from steadyhand import Worker, WorkerOptions, open_store

    from .workload import app

    store = open_store(url, migrate=False)
    worker = Worker(app, store, WorkerOptions(**options))
    ready.set()
    go.wait()
    try:
        worker.run()
    finally:
        store.close()


def start_workflows(url: str, workflow: str, n: int, threads: int = 4, data: Any = None) -> float:
    """Start `n` workflows through the public client; returns the seconds it took."""
    from steadyhand import Client, open_store

    from .workload import app

    store = open_store(url)
    client = Client(app, store)
    started = time.perf_counter()
    try:
        if threads <= 1 or n < 50:
            for _ in range(n):
                client.start(workflow, data)
        else:
            per = [n // threads + (1 if i < n % threads else 0) for i in range(threads)]

            def run(count: int) -> None:
                for _ in range(count):
                    client.start(workflow, data)

            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(run, per))
    finally:
        store.close()
    return time.perf_counter() - started


class Monitor:
    """Reads how far a run has got, straight from the store's tables."""

    def __init__(self, url: str, since: float = 0.0) -> None:
        self.url = url
        self.since = since  # facts older than this (seeded history) are not counted
        self.backend = backend_of(url)
        self.reads = 0
        self._pg: psycopg.Connection[Any] | None = None
        self._sqlite: sqlite3.Connection | None = None
        if self.backend == "postgres":
            from steadyhand.store.postgres import split_url

            conninfo, schema = split_url(url)
            self._pg = psycopg.connect(
                conninfo, autocommit=True, options=f"-c search_path={schema}"
            )
        else:
            from steadyhand.store.sqlite import sqlite_path

            self._sqlite = sqlite3.connect(sqlite_path(url), isolation_level=None, timeout=30)

    def query(self, sql_text: str) -> list[tuple[Any, ...]]:
        self.reads += 1
        if self._pg is not None:
            return list(self._pg.execute(sql_text).fetchall())
        assert self._sqlite is not None
        return list(self._sqlite.execute(sql_text).fetchall())

    def terminal(self) -> tuple[int, float | None, float | None]:
        kinds = ", ".join(f"'{k}'" for k in TERMINAL_KINDS)
        row = self.query(
            f"SELECT count(*), min(at), max(at) FROM facts WHERE kind IN ({kinds}) "
            f"AND at >= {self.since!r}"
        )
        count, first, last = row[0]
        return int(count), first, last

    def summary(self) -> tuple[dict[str, int], int, float | None]:
        kinds = ", ".join(f"'{k}'" for k in (*TERMINAL_KINDS, *CALL_OUTCOMES))
        rows = self.query(
            f"SELECT kind, count(*) FROM facts WHERE kind IN ({kinds}) "
            f"AND at >= {self.since!r} GROUP BY kind"
        )
        counts = {str(k): int(c) for k, c in rows}
        first = self.query(
            f"SELECT min(at) FROM facts WHERE kind = 'attempt_succeeded' AND at >= {self.since!r}"
        )[0][0]
        states = {k.removeprefix("workflow_"): counts.get(k, 0) for k in TERMINAL_KINDS}
        calls = sum(counts.get(k, 0) for k in CALL_OUTCOMES)
        return states, calls, first

    def close(self) -> None:
        if self._pg is not None:
            self._pg.close()
        if self._sqlite is not None:
            self._sqlite.close()


def wait_terminal(
    monitor: Monitor, n: int, fleet: Fleet | None, timeout: float, poll: float = 0.25
) -> float:
    """Wait until `n` workflows ended; returns the `at` of the last terminal fact."""
    deadline = time.monotonic() + timeout
    while True:
        count, _, last = monitor.terminal()
        if count >= n and last is not None:
            return float(last)
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {count} of {n} workflows ended within {timeout:.0f}s")
        if fleet is not None:
            fleet.check_alive()
        time.sleep(poll)


@contextmanager
def workers(url: str, count: int, config: WorkerConfig) -> Iterator[Fleet]:
    fleet = Fleet.spawn(worker_main, count, (url, config.options()))
    try:
        fleet.wait_ready()
        yield fleet
    finally:
        fleet.stop()


def run_throughput(
    url: str,
    *,
    n: int,
    workers_count: int,
    workflow: str = "three",
    config: WorkerConfig | None = None,
    timeout: float = 600.0,
    count_commits: bool = True,
    on_started: Any = None,
) -> RunResult:
    """Start `n` workflows, then run them with `workers_count` processes (see module doc)."""
    config = config or WorkerConfig()
    backend = backend_of(url)
    result = RunResult(backend, workers_count, workflow, n)
    since = time.time()
    result.start_seconds = start_workflows(url, workflow, n)
    monitor = Monitor(url, since)
    try:
        with workers(url, workers_count, config) as fleet:
            result.pids = fleet.pids
            commits_before = None
            if backend == "postgres" and count_commits:
                settle_stats()
                commits_before = xact_commits(url)
            reads_before = monitor.reads
            go = fleet.start()
            if on_started is not None:
                on_started(fleet)
            last = wait_terminal(monitor, n, fleet, timeout)
            result.seconds = max(last - go, 1e-9)
        states, calls, first = monitor.summary()
        reads = monitor.reads - reads_before
        result.states, result.calls = states, calls
        result.first_outcome_ms = None if first is None else (float(first) - go) * 1000
        if commits_before is not None:
            monitor.close()
            settle_stats()
            result.commits = xact_commits(url) - commits_before - reads
    finally:
        monitor.close()
    return result


def cpu_count() -> int:
    return os.cpu_count() or 1
