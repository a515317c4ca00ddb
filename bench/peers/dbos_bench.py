"""The same workload on DBOS Transact: a workflow of three no-op steps, run through a DBOS
queue by K worker processes with the same per-process concurrency as steadyhand's workers.

The N workflows are enqueued first (DBOSClient) on a queue whose worker concurrency is 0,
so nothing runs; once every worker process has launched DBOS, the queue's worker
concurrency is raised to C (DBOS re-reads queue settings on every poll) and the clock
starts. The run ends at the latest `updated_at` of the N workflow status rows. DBOS's queue
polls (no wake-up on enqueue); its polling interval is set low (default 0.05 s, DBOS's own
default is 1 s) so that it is not throttled by the poll.

Needs the `dbos` package (the `bench` extra). PostgreSQL: a system database of its own on
the same server; SQLite: a fresh file.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import time
from dataclasses import dataclass, field
from multiprocessing.synchronize import Event
from typing import Any

from ..common import Fleet, quiet_logging, settle_stats, xact_commits

APP_NAME = "shbench"
QUEUE = "bench"
WORKFLOW = "bench_three_steps"


def installed() -> bool:
    return importlib.util.find_spec("dbos") is not None


def _define() -> Any:
    """Register the workflow and its steps (in whichever process runs or enqueues them)."""
    from dbos import DBOS

    @DBOS.step()
    def noop_step() -> None:
        return None

    @DBOS.workflow(name=WORKFLOW)
    def three_steps() -> None:
        noop_step()
        noop_step()
        noop_step()

    return three_steps


def worker_main(url: str, index: int, ready: Event, go: Event) -> None:
    """One DBOS worker process: launch (connect, recover), report ready, run until killed."""
    quiet_logging()
    os.environ.setdefault("DBOS__VMID", f"bench-{index}")
    from dbos import DBOS, DBOSConfig

    _define()
    config: DBOSConfig = {
        "name": APP_NAME,
        "system_database_url": url,
        "executor_id": f"bench-{index}-{os.getpid()}",
        "log_level": "WARNING",
    }
    DBOS(config=config)
    DBOS.launch()
    ready.set()
    go.wait()
    while True:  # the queue threads do the work; SIGTERM ends the process
        time.sleep(3600)


@dataclass
class DbosResult:
    backend: str
    workers: int
    n: int
    concurrency: int
    enqueue_seconds: float = 0.0
    seconds: float = 0.0
    completed: int = 0
    commits: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def workflows_per_s(self) -> float:
        return self.n / self.seconds if self.seconds else 0.0

    @property
    def steps_per_s(self) -> float:
        return 3 * self.workflows_per_s


def _finished(client: Any, n: int) -> tuple[int, float | None, float | None]:
    """(workflows in SUCCESS, first created_at, last updated_at) in seconds."""
    sys_db = client._sys_db
    import sqlalchemy as sa

    status = sys_db.schema
    prefix = f'"{status}".' if status and sys_db.engine.dialect.name == "postgresql" else ""
    query = sa.text(
        f"SELECT count(*), min(created_at), max(updated_at) FROM {prefix}workflow_status "
        "WHERE status = 'SUCCESS' AND name = :name"
    )
    with sys_db.engine.connect() as conn:
        count, first, last = conn.execute(query, {"name": WORKFLOW}).one()
    return int(count), (first / 1000 if first else None), (last / 1000 if last else None)


def run(
    url: str,
    *,
    n: int,
    workers_count: int,
    concurrency: int,
    polling: float = 0.05,
    timeout: float = 900.0,
    count_commits: bool = True,
) -> DbosResult:
    """Run the DBOS side once against the system database at `url` (empty, or missing)."""
    from dbos import DBOSClient, EnqueueOptions

    backend = "sqlite" if url.startswith("sqlite") else "postgres"
    result = DbosResult(backend, workers_count, n, concurrency)
    client = DBOSClient(system_database_url=url, application_name=APP_NAME)
    try:
        with _launched(url, 1) as _:
            pass  # a first DBOS launch creates and migrates the system database
        client.register_queue(
            QUEUE, worker_concurrency=0, polling_interval_sec=polling, on_conflict="always_update"
        )
        options: EnqueueOptions = {"queue_name": QUEUE, "workflow_name": WORKFLOW}
        started = time.perf_counter()
        for _ in range(n):
            client.enqueue(options)
        result.enqueue_seconds = time.perf_counter() - started
        with _launched(url, workers_count) as fleet:
            before = None
            if backend == "postgres" and count_commits:
                settle_stats()
                before = xact_commits(url)
            go = fleet.start()
            client.register_queue(
                QUEUE,
                worker_concurrency=concurrency,
                polling_interval_sec=polling,
                on_conflict="always_update",
            )
            deadline = time.monotonic() + timeout
            reads = 0
            while True:
                done, _, last = _finished(client, n)
                reads += 1
                if done >= n and last is not None:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"DBOS finished {done} of {n} within {timeout:.0f}s")
                fleet.check_alive()
                time.sleep(0.25)
            result.seconds = max(last - go, 1e-9)
            result.completed = done
        if before is not None:
            client.destroy()
            settle_stats()
            result.commits = xact_commits(url) - before - reads - 1
    finally:
        with contextlib.suppress(Exception):
            client.destroy()
    return result


@contextlib.contextmanager
def _launched(url: str, count: int) -> Any:
    fleet = Fleet.spawn(worker_main, count, (url,))
    try:
        fleet.wait_ready(timeout=120)
        yield fleet
    finally:
        fleet.stop(timeout=10)
