"""A worker's leases: renew them, and give up a call whose lease could not be renewed.

A lease is stamped on the store's clock (`store.clock`), but whether *this* worker still
holds it is judged on its own monotonic clock, which no wall clock step, NTP slew or time
faker can move backwards: a lease renewed by a request sent at monotonic time `t` lasts at
least until `t + lease_seconds` in the store (the store stamps it after `t`). So once
`lease_seconds` have passed since the last renewal confirmed by the store, the worker
cannot know that the call is still its own (it was paused, partitioned, or the store was
slow) and treats it as lost: it *fences itself* — cancels an async agent, marks the call
abandoned (`ctx.lease_lost`) and logs it — before any other worker can have judged the
lease expired on the store's clock.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping

from steadyhand.core.errors import StoreUnavailable
from steadyhand.core.records import Task
from steadyhand.runtime.heartbeats import Heartbeat
from steadyhand.runtime.storecalls import StoreCalls
from steadyhand.store.base import Store
from steadyhand.store.heartbeating import renew_with_heartbeats

log = logging.getLogger("steadyhand.worker")

FENCE_CHECKS_PER_LEASE = 10  # how finely a lost lease is noticed (a tenth of its period)


class LeaseKeeper:
    """The leases of one worker's tasks in flight (see the module docstring).

    `hold(task_id, since)` starts tracking a lease granted by a request sent at monotonic
    time `since`; `drop` stops it. `on_lost(task_id)` is called (on the event loop) when a
    lease went unrenewed for its whole period.
    """

    def __init__(
        self,
        *,
        store: Store,
        calls: StoreCalls,
        clock: Callable[[], float],
        worker_id: str,
        lease_seconds: float,
        on_lost: Callable[[int], None],
        beats: Callable[[], Mapping[int, Heartbeat]] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._calls = calls
        self._clock = clock
        self._worker_id = worker_id
        self._lease = lease_seconds
        self._on_lost = on_lost
        self._monotonic = monotonic
        self._beats = beats  # the agents' heartbeats ride along with the renewal
        self._held: dict[int, float] = {}  # task id -> when its lease was last granted

    def hold(self, task_id: int, since: float) -> None:
        self._held[task_id] = since

    def drop(self, task_id: int) -> None:
        self._held.pop(task_id, None)

    def held(self) -> list[int]:
        return list(self._held)

    async def run(self) -> None:
        """Renew three times per lease period; check for lost leases ten times."""
        renewing: asyncio.Task[None] | None = None
        tick = self._lease / FENCE_CHECKS_PER_LEASE
        next_renewal = self._monotonic() + self._lease / 3
        try:
            while True:
                await asyncio.sleep(tick)
                self.fence_expired()
                if self._monotonic() >= next_renewal and (renewing is None or renewing.done()):
                    # A renewal the store does not answer must not stop the checks: it runs
                    # beside them, and a new one starts only when it is over.
                    renewing = asyncio.create_task(self.renew_once(), name="renew-leases")
                    next_renewal = self._monotonic() + self._lease / 3
        finally:
            if renewing is not None:
                renewing.cancel()

    def fence_expired(self) -> list[int]:
        """Give up every lease not renewed for a whole lease period; returns their ids."""
        now = self._monotonic()
        lost = [tid for tid, since in self._held.items() if now - since >= self._lease]
        for task_id in lost:
            del self._held[task_id]
            self._on_lost(task_id)
        return lost

    def _unsaved_beats(self) -> dict[int, str]:
        if self._beats is None:
            return {}
        found = {task_id: beat.unsaved() for task_id, beat in self._beats().items()}
        return {task_id: text for task_id, text in found.items() if text is not None}

    async def renew_once(self) -> None:
        """Extend every held lease; a lease counts as renewed from when the request left."""
        ids = self.held()
        if not ids:
            return
        sent = self._monotonic()
        until = self._clock() + self._lease
        beats = self._unsaved_beats()
        try:
            if beats:
                renewed = await self._calls.call(
                    renew_with_heartbeats, self._store, self._worker_id, ids, until, beats
                )
            else:
                renewed = await self._calls.call(
                    self._store.renew_leases_of, self._worker_id, ids, until
                )
        except StoreUnavailable as exc:
            self._calls.store_failed(exc)
            log.warning("could not renew %d leases (%s)", len(ids), exc)
            return
        except Exception:
            log.exception("renewing %d leases failed", len(ids))
            return
        for task_id in renewed:
            if task_id in self._held:
                self._held[task_id] = max(self._held[task_id], sent)


def say_lease_lost(task: Task, lease_seconds: float) -> None:
    """The WARNING an operator greps for: which call this worker gave up, and why."""
    log.warning(
        "could not renew the lease of %s %s of workflow %s for %.1fs: abandoning the call "
        "(another worker may take it over; any answer it still gets is reported late)",
        task.kind,
        task.step or "",
        task.workflow_id,
        lease_seconds,
        extra={"workflow_id": task.workflow_id, "step": task.step, "attempt": task.attempt},
    )
