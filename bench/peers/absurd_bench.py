"""The end-to-end workload on Absurd: a task of three checkpointed no-op steps.

Absurd keeps its whole engine in PostgreSQL functions; its Python SDK (`absurd-sdk`) does
not ship the schema, so a run loads the peer's own `absurd.sql` (kept outside this
repository, see `schema_path`) into a fresh database first. Workers are `AsyncAbsurd`
workers with the same concurrency as steadyhand's, polling every 50 ms (the SDK's default
is 250 ms, which would cap it); the end of a run is the latest `completed_at` of the runs.

Needs `absurd-sdk` (the `bench` extra) and a PostgreSQL server.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import psycopg

from ..common import quiet_logging

QUEUE = "bench"
TASK = "three_steps"
POLL = 0.05


def installed() -> bool:
    return importlib.util.find_spec("absurd_sdk") is not None and schema_path().exists()


def schema_path() -> Path:
    """Absurd's schema: `$STEADYHAND_PEERS_DIR/absurd.sql`, else `../shared/peers/absurd.sql`
    beside the repository (a peer's file, read at run time and never copied in)."""
    default = Path(__file__).resolve().parents[3] / "shared" / "peers"
    return Path(os.environ.get("STEADYHAND_PEERS_DIR", default)) / "absurd.sql"


def prepare(url: str) -> None:
    """Load Absurd's schema into the (empty) database at `url` and create the queue."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(schema_path().read_text())  # type: ignore[arg-type]
        conn.execute("SELECT absurd.create_queue(%s)", (QUEUE,))


def worker_main(url: str, concurrency: int, index: int, ready: Event, go: Event) -> None:
    """One Absurd worker process: connect, report ready, run until SIGTERM."""
    quiet_logging()
    from absurd_sdk import AsyncAbsurd

    async def main() -> None:
        app = AsyncAbsurd(url, queue_name=QUEUE)

        @app.register_task(TASK)
        async def three_steps(params: Any, ctx: Any) -> None:
            for name in ("a", "b", "c"):
                await ctx.step(name, _noop)

        await app.create_queue(QUEUE)  # connects; the queue exists already
        ready.set()
        await asyncio.to_thread(go.wait)
        await app.start_worker(
            worker_id=f"bench-{index}", concurrency=concurrency, poll_interval=POLL
        )

    asyncio.run(main())


async def _noop() -> None:
    return None


def spawn_all(url: str, n: int) -> None:
    """Spawn `n` tasks through the SDK's client, one call each (as users start them)."""
    from absurd_sdk import Absurd

    client = Absurd(url, queue_name=QUEUE)
    try:
        for i in range(n):
            client.spawn(TASK, {"i": i}, queue=QUEUE)
    finally:
        client.close()


def finished(url: str) -> tuple[int, float | None]:
    """(tasks completed, latest completion as epoch seconds)."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            f"SELECT count(*), extract(epoch FROM max(r.completed_at)) "
            f"FROM absurd.t_{QUEUE} t JOIN absurd.r_{QUEUE} r ON r.run_id = t.last_attempt_run "
            "WHERE t.state = 'completed'"
        ).fetchone()
    assert row is not None
    return int(row[0]), (float(row[1]) if row[1] is not None else None)
