"""`AsyncClient`: the `Client` for asyncio services (FastAPI, Starlette). Each call runs the
sync client's one short transaction on a thread, so the event loop never blocks on the
store; `wait` sleeps until the store's one shared listener hears the workflow end
(`Store.endings`: LISTEN/NOTIFY on PostgreSQL, the wake-up channel on SQLite) and polls,
with backoff, only while it cannot."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from steadyhand.core.actions import ActionStatus
from steadyhand.core.errors import WorkflowStillRunning
from steadyhand.core.status import Status
from steadyhand.core.view import WorkflowView
from steadyhand.define.client import Client
from steadyhand.engine.answers import Signalled, Started
from steadyhand.store import Store

if TYPE_CHECKING:
    from steadyhand.define.app import App
    from steadyhand.ops.reports import Page

T = TypeVar("T")
POLL_FIRST, POLL_MAX = 0.05, 0.5  # polling backoff while the store cannot say


class AsyncClient:
    """Starts, signals, inspects, waits for, cancels and retries workflows from asyncio code.

    Create it with `app.connect_async(url)`; close it with `await client.aclose()` (or use
    `async with`). Safe to share across the tasks of one event loop.
    """

    def __init__(self, app: App, store: Store, *, recheck: float | None = None) -> None:
        """`recheck`: seconds between a wait's safety-net looks while the store's listener
        hears ends (default: the store's own, see `Store.endings`)."""
        self.sync = Client(app, store)
        self.store = store
        self.recheck = recheck

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

    async def wait(
        self, workflow_id: str, timeout: float = 60.0, poll: float | None = None
    ) -> Status:
        """Return the workflow's final status once it ends; raise `WorkflowStillRunning` (a
        `TimeoutError`) when `timeout` seconds pass first (the workflow keeps running).

        Woken by the store's listener when the workflow ends; the status is also re-read
        every `poll` seconds (default: `recheck` while the listener hears, a backoff from
        0.05 s to 0.5 s while it does not)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        woken = asyncio.Event()
        endings = self.store.endings()

        def wake() -> None:  # called on the listener's thread
            loop.call_soon_threadsafe(woken.set)

        heard = contextlib.nullcontext() if endings is None else endings.watch(workflow_id, wake)
        pause = POLL_FIRST
        with heard:
            while True:
                woken.clear()  # before the look: an end heard after it wakes the sleep
                status = await self.status(workflow_id)
                if status.done:
                    return status
                left = deadline - loop.time()
                if left <= 0:
                    raise WorkflowStillRunning(
                        f"workflow {workflow_id} is still {status.state} after {timeout:g}s; it "
                        "goes on (wait again, or look with `steadyhand status`)",
                        status,
                    )
                if endings is not None:
                    endings.listen()
                if poll is not None:
                    interval = poll
                elif endings is not None and endings.hearing:
                    interval = self.recheck or endings.recheck
                else:
                    interval, pause = pause, min(pause * 1.5, POLL_MAX)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), min(interval, left))

    async def aclose(self, *, close_store: bool = True) -> None:
        """Close the store (and with it its listener), unless `close_store=False`: for a
        store shared with others in this process, e.g. a worker."""
        if close_store:
            await self._run(self.sync.close)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
