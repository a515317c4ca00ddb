"""A stopping worker returns only once its store calls have ended.

Found by CI: a heartbeat still renewing leases in the worker's pool when the test closed
the store crashed the process on SQLite (a connection closed under a running statement).
Shutdown cancels the heartbeat's coroutine, not the call it started, so `run` must wait.
"""

from __future__ import annotations

import asyncio
import threading
import time

from steadyhand import App, Worker
from steadyhand.store import Store
from tests.conftest import FAST


def test_run_returns_only_after_the_store_calls_it_started(store: Store) -> None:
    worker = Worker(App(), store, FAST)
    entered, release = threading.Event(), threading.Event()
    ended: list[float] = []

    def renew_leases_slowly() -> None:  # stands for a heartbeat held up by the database
        entered.set()
        release.wait(10)
        store.renew_leases(worker.id, [], time.time())
        ended.append(time.monotonic())

    async def stop_while_a_call_runs() -> float:
        call = asyncio.ensure_future(worker.store_calls.call(renew_leases_slowly))
        assert await asyncio.to_thread(entered.wait, 10)
        call.cancel()  # what shutdown does to the heartbeat coroutine
        threading.Timer(0.3, release.set).start()
        await worker.store_calls.finish()
        return time.monotonic()

    returned = asyncio.run(stop_while_a_call_runs())
    assert ended, "the call in flight was allowed to finish"
    assert ended[0] <= returned, "run returned while a store call was still running"
    store.close()  # safe now: nothing is using the connections
