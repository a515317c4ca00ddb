"""The plain-queue anchor: pgqueuer running N no-op jobs with K worker processes.

pgqueuer keeps no workflow state: a job is a row, dequeued in batches (FOR UPDATE SKIP
LOCKED) and deleted when done, with its status logged in batches. Its defaults are kept
(batch size 10, durable tables, asyncpg driver), since it is here as the fastest Python
queue to read steadyhand's steps/s against. Jobs are enqueued first (batched INSERTs);
the clock runs from `go` to the moment the queue table is seen empty (polled every 20 ms).

Needs `pgqueuer` and `asyncpg` (the `bench` extra) and its own database on the server.
"""

from __future__ import annotations

import asyncio
import importlib.util
import time
from dataclasses import dataclass
from multiprocessing.synchronize import Event
from typing import Any

from ..common import Fleet, quiet_logging, settle_stats, xact_commits

ENTRYPOINT = "noop"


def installed() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("pgqueuer", "asyncpg"))


def _dsn(url: str) -> str:
    return url.split("?", 1)[0]


def worker_main(url: str, batch_size: int, index: int, ready: Event, go: Event) -> None:
    quiet_logging()
    asyncio.run(_worker(url, batch_size, ready, go))


async def _worker(url: str, batch_size: int, ready: Event, go: Event) -> None:
    import asyncpg
    from pgqueuer import QueueManager
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.models import Job
    from pgqueuer.queries import Queries

    conn = await asyncpg.connect(_dsn(url))
    qm = QueueManager(Queries(AsyncpgDriver(conn)))

    @qm.entrypoint(ENTRYPOINT)
    async def noop(job: Job) -> None:
        return None

    ready.set()
    await asyncio.to_thread(go.wait)
    try:
        await qm.run(batch_size=batch_size)
    finally:
        await conn.close()


async def _prepare(url: str, n: int) -> float:
    import asyncpg
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.queries import Queries

    conn = await asyncpg.connect(_dsn(url))
    try:
        queries = Queries(AsyncpgDriver(conn))
        await queries.install()
        started = time.perf_counter()
        chunk = 1000
        for offset in range(0, n, chunk):
            size = min(chunk, n - offset)
            await queries.enqueue([ENTRYPOINT] * size, [None] * size, [0] * size)
        return time.perf_counter() - started
    finally:
        await conn.close()


async def _remaining(url: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(_dsn(url))
    try:
        return int(await conn.fetchval("SELECT count(*) FROM pgqueuer"))
    finally:
        await conn.close()


@dataclass
class PgqResult:
    workers: int
    n: int
    enqueue_seconds: float = 0.0
    seconds: float = 0.0
    commits: int | None = None

    @property
    def jobs_per_s(self) -> float:
        return self.n / self.seconds if self.seconds else 0.0


def run(
    url: str,
    *,
    n: int,
    workers_count: int,
    batch_size: int = 10,
    timeout: float = 300.0,
    count_commits: bool = True,
) -> PgqResult:
    """Run pgqueuer once against the (empty) database at `url`."""
    import asyncpg

    result = PgqResult(workers_count, n)
    result.enqueue_seconds = asyncio.run(_prepare(url, n))
    fleet = Fleet.spawn(worker_main, workers_count, (url, batch_size))
    try:
        fleet.wait_ready()
        before = None
        if count_commits:
            settle_stats()
            before = xact_commits(url)

        async def watch() -> tuple[float, int]:
            conn: Any = await asyncpg.connect(_dsn(url))
            reads = 0
            try:
                go = fleet.start()
                deadline = time.monotonic() + timeout
                while True:
                    left = int(await conn.fetchval("SELECT count(*) FROM pgqueuer"))
                    reads += 1
                    if left == 0:
                        return time.time() - go, reads
                    fleet.check_alive()
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"pgqueuer left {left} of {n} jobs after {timeout}s")
                    await asyncio.sleep(0.02)
            finally:
                await conn.close()

        result.seconds, reads = asyncio.run(watch())
    finally:
        fleet.stop(timeout=10)
    if before is not None:
        settle_stats()
        result.commits = xact_commits(url) - before - reads
    return result


# -- end to end (issue 16): a three-step workflow as a chain of three jobs ---------------------
#
# pgqueuer has no workflows, so the workload's three no-op steps are three entrypoints, each
# job enqueueing the next with the same payload: the cheapest durable hand-over a queue
# offers. A workflow has ended when its third job is logged successful; the end of a run is
# the latest such log row (pgqueuer writes its log in batches, so this is when the end
# became durable, as for every other system).

CHAIN = ("step_a", "step_b", "step_c")
LOG_TABLE = "pgqueuer_log"


def e2e_prepare(url: str) -> None:
    """Install pgqueuer's tables into the (empty) database at `url`."""
    asyncio.run(_install(url))


async def _install(url: str) -> None:
    import asyncpg
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.queries import Queries

    conn = await asyncpg.connect(_dsn(url))
    try:
        await Queries(AsyncpgDriver(conn)).install()
    finally:
        await conn.close()


def e2e_worker_main(url: str, batch_size: int, index: int, ready: Event, go: Event) -> None:
    """One worker process running the chain's three entrypoints until SIGTERM."""
    quiet_logging()
    asyncio.run(_e2e_worker(url, batch_size, ready, go))


async def _e2e_worker(url: str, batch_size: int, ready: Event, go: Event) -> None:
    import asyncpg
    from pgqueuer import QueueManager
    from pgqueuer.db import AsyncpgDriver, AsyncpgPoolDriver
    from pgqueuer.models import Job
    from pgqueuer.queries import Queries

    conn = await asyncpg.connect(_dsn(url))
    pool = await asyncpg.create_pool(_dsn(url), min_size=1, max_size=4)
    qm = QueueManager(Queries(AsyncpgDriver(conn)))
    handoff = Queries(AsyncpgPoolDriver(pool))  # the next step is enqueued on its own pool

    def chained(this: str, following: str | None) -> None:
        async def step(job: Job) -> None:
            if following is not None:
                await handoff.enqueue(following, job.payload)

        qm.entrypoint(this)(step)

    for this, following in zip(CHAIN, (*CHAIN[1:], None), strict=True):
        chained(this, following)
    ready.set()
    await asyncio.to_thread(go.wait)
    try:
        await qm.run(batch_size=batch_size)
    finally:
        await pool.close()
        await conn.close()


def e2e_start(url: str, n: int, chunk: int = 1000) -> None:
    """Enqueue `n` first steps, `chunk` per statement (pgqueuer's batched enqueue)."""
    asyncio.run(_e2e_start(url, n, chunk))


async def _e2e_start(url: str, n: int, chunk: int) -> None:
    import asyncpg
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.queries import Queries

    conn = await asyncpg.connect(_dsn(url))
    try:
        queries = Queries(AsyncpgDriver(conn))
        for offset in range(0, n, chunk):
            size = min(chunk, n - offset)
            payloads: list[bytes | None] = [str(offset + i).encode() for i in range(size)]
            await queries.enqueue([CHAIN[0]] * size, payloads, [0] * size)
    finally:
        await conn.close()


def e2e_finished(url: str) -> tuple[int, float | None]:
    """(workflows whose last step is logged successful, latest such log time, epoch s)."""
    import psycopg

    with psycopg.connect(_dsn(url), autocommit=True) as conn:
        row = conn.execute(
            f"SELECT count(*), extract(epoch FROM max(created)) FROM {LOG_TABLE} "
            "WHERE entrypoint = %s AND status = 'successful'",
            (CHAIN[-1],),
        ).fetchone()
    assert row is not None
    return int(row[0]), (float(row[1]) if row[1] is not None else None)
