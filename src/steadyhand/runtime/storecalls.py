"""How the worker's event loop talks to the (synchronous) store: a small thread pool.

Every store call of a worker goes through here, so that "the database is unavailable"
is handled one way (retry with backoff: losing the database only pauses the work) and
shutdown can wait for the calls already running before the store is closed.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from steadyhand.core.errors import StoreError, StoreUnavailable

log = logging.getLogger("steadyhand.worker")
T = TypeVar("T")


class StoreCalls:
    """Runs store calls off the event loop, in a pool sized for the worker's concurrency."""

    def __init__(self, concurrency: int) -> None:
        self._pool = ThreadPoolExecutor(
            max_workers=min(concurrency, 8) + 2, thread_name_prefix="steadyhand-db"
        )
        self.noticed: Callable[[str, str], None] | None = None  # counts store errors

    def store_failed(self, exc: StoreError) -> None:
        """Count a store error by its cause (disk_full, locked, connection_refused, ...)."""
        if self.noticed is not None:
            self.noticed("store_error", exc.cause)

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one store call in the pool; its errors reach the caller."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    async def call_until_answered(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call the store until it answers: losing the database only pauses the work."""
        delay = 0.05
        while True:
            try:
                return await self.call(fn, *args, **kwargs)
            except StoreUnavailable as exc:
                self.store_failed(exc)
                log.warning("store unavailable (%s); retrying in %.2fs", exc, delay)
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 5.0)

    async def finish(self, timeout: float = 10.0) -> None:
        """Let store calls already running end; drop the queued ones.

        A cancelled coroutine does not stop its call in the pool (a heartbeat, say), and
        a caller that closes the store as soon as the worker returns would pull the
        connection from under it; on SQLite that crashes the process.
        """
        self._pool.shutdown(wait=False, cancel_futures=True)
        waiting = asyncio.to_thread(self._pool.shutdown, wait=True)
        try:
            await asyncio.wait_for(waiting, timeout)
        except TimeoutError:
            log.warning("store calls still running after %.0fs; stopping anyway", timeout)
