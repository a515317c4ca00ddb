"""`AsyncClient`: the `Client` for asyncio services (FastAPI, Starlette). Each call runs the
sync client's one short transaction on a thread, so the event loop never blocks on the
store; `wait` sleeps until the store says the workflow ended (LISTEN/NOTIFY on PostgreSQL)
and polls, with backoff, only where the store cannot say (SQLite)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from steadyhand.core.actions import ActionStatus
from steadyhand.core.status import Status
from steadyhand.core.view import WorkflowView
from steadyhand.define.client import Client
from steadyhand.engine.answers import Signalled, Started
from steadyhand.store import Store

if TYPE_CHECKING:
    from steadyhand.define.app import App
    from steadyhand.ops.reports import Page

T = TypeVar("T")
log = logging.getLogger("steadyhand.client")
RECHECK = 5.0  # seconds between looks while listening, in case a notification was lost
POLL_FIRST, POLL_MAX = 0.05, 0.5  # polling backoff where the store cannot notify


class AsyncClient:
    """Starts, signals, inspects, waits for, cancels and retries workflows from asyncio code.

    Create it with `app.connect_async(url)`; close it with `await client.aclose()` (or use
    `async with`). Safe to share across the tasks of one event loop.
    """

    def __init__(self, app: App, store: Store, *, recheck: float = RECHECK) -> None:
        self.sync = Client(app, store)
        self.store = store
        self.recheck = recheck
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._listener: asyncio.Task[None] | None = None
        self._ready: asyncio.Event | None = None

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.to_thread(functools.partial(fn, *args, **kwargs))

    async def start(self, name: str, input: Any = None, *, key: str | None = None) -> Started:
        """Start workflow `name` with `input`; with `key`, starting twice returns the first."""
        return await self._run(self.sync.start, name, input, key=key)

    async def start_many(self, requests: Iterable[tuple[str, Any, str | None]]) -> list[Started]:
        """Start several `(name, input, key or None)` in one transaction (all or none)."""
        return await self._run(self.sync.start_many, list(requests))

    async def signal(self, event: str, payload: Any = None, **options: Any) -> Signalled:
        """Record `event` on a workflow and wake it (the options of `Client.signal`)."""
        return await self._run(self.sync.signal, event, payload, **options)

    async def status(self, workflow_id: str) -> Status:
        return await self._run(self.sync.status, workflow_id)

    async def view(self, workflow_id: str) -> WorkflowView:
        return await self._run(self.sync.view, workflow_id)

    async def cancel(
        self, workflow_id: str, reason: str = "", by: str | None = None
    ) -> ActionStatus:
        """Ask a workflow to stop and roll back what took effect (see `Client.cancel`)."""
        return await self._run(self.sync.cancel, workflow_id, reason, by)

    async def retry(
        self, workflow_id: str, reason: str = "", by: str | None = None
    ) -> ActionStatus:
        """Resume a `failed` workflow: a new round of attempts where it stopped (see
        `Client.retry`; `InputError` when it is not failed)."""
        return await self._run(self.sync.retry, workflow_id, reason, by)

    async def list(
        self,
        *,
        state: str | None = None,
        name: str | None = None,
        key: str | None = None,
        id_prefix: str | None = None,
        service: str | None = None,
        input: Mapping[str, Any] | None = None,
        since: float | datetime | str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        """One page of workflows, filtered as `Client.list` (and `steadyhand list`) filter."""
        filters = {
            "state": state,
            "name": name,
            "key": key,
            "id_prefix": id_prefix,
            "service": service,
            "input": input,
            "since": since,
            "limit": limit,
            "cursor": cursor,
        }
        return await self._run(self.sync.list, **filters)

    async def wait(self, workflow_id: str, timeout: float = 60.0) -> Status:
        """Return the workflow's final status once it ends; raise `TimeoutError` when
        `timeout` seconds pass first (the workflow keeps running)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        woken = asyncio.Event()
        self._waiters.setdefault(workflow_id, set()).add(woken)
        try:
            listening = await self._listening()
            pause = POLL_FIRST
            while True:
                status = await self.status(workflow_id)  # after registering: no lost wake-up
                if status.done:
                    return status
                left = deadline - loop.time()
                if left <= 0:
                    raise TimeoutError(
                        f"workflow {workflow_id} is still {status.state} after {timeout:g}s"
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        woken.wait(), min(self.recheck if listening else pause, left)
                    )
                woken.clear()
                pause = min(pause * 1.5, POLL_MAX)
                listening = listening and self._listener is not None and not self._listener.done()
        finally:
            waiters = self._waiters.get(workflow_id)
            if waiters is not None:
                waiters.discard(woken)
                if not waiters:
                    del self._waiters[workflow_id]

    def _ended(self, workflow_id: str) -> None:
        for event in self._waiters.get(workflow_id, ()):
            event.set()

    async def _listening(self) -> bool:
        """Whether store notifications wake `wait` (starting the listener if needed)."""
        if self.store.dialect != "postgresql":
            return False
        if self._listener is None or self._listener.done():
            from steadyhand.store.pg_endings import listen_endings

            conninfo, schema = self.store.conninfo, self.store.schema  # type: ignore[attr-defined]
            self._ready = asyncio.Event()
            self._listener = asyncio.create_task(
                listen_endings(conninfo, schema, self._ended, self._ready), name="endings"
            )
        assert self._ready is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), 5.0)
        if not self._ready.is_set() or self._listener.done():
            log.warning("cannot LISTEN for workflow endings; waiting by polling")
            return False
        return True

    async def aclose(self, *, close_store: bool = True) -> None:
        """Stop listening and (unless `close_store=False`, for a store shared with others in
        this process, e.g. a worker) close the store."""
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(BaseException):
                await self._listener
            self._listener = None
        if close_store:
            await self._run(self.sync.close)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
