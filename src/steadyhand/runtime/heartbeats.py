"""Agent heartbeats: `ctx.heartbeat(details)` from a long call, and what it buys.

A beat is kept in memory on the call's `Heartbeat` (a lock and two fields: calling it
often costs nothing). The worker writes the latest details of the calls that beat since
its last lease renewal onto their task rows, together with that renewal — so heartbeats
cost no transaction of their own and no fact (facts are forever; beats are many). When the
call ends, its last details go into the outcome fact (`heartbeat`), and a worker that dies
leaves them on the task row, from which the watchdog copies them into the `lost` fact:
either way the next attempt reads them as `ctx.last_heartbeat`.

A step with `heartbeat_timeout` is watched: a call that has not beaten for that long (since
it started or since its last beat) is given up as `lost` — its outcome unknown, probed or
compensated like any other — without waiting for its whole timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

from steadyhand.core.facts import LOST
from steadyhand.core.plans import encode_json
from steadyhand.core.records import Task
from steadyhand.engine.answers import Outcome

MAX_DETAILS_BYTES = 16_000


class Heartbeat:
    """The beats of one call in flight (thread-safe: sync agents beat from their thread)."""

    def __init__(self, timeout: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._at = clock()
        self.details: Any = None
        self.beats = 0
        self._unsaved = False
        self._text = "null"

    @classmethod
    def for_task(cls, task: Task) -> Heartbeat:
        value = task.payload.get("heartbeat_timeout")
        return cls(None if value is None else float(value))

    def beat(self, details: Any = None) -> None:
        """Record a beat; details must be JSON (checked here, where the agent can see it)."""
        text = encode_json(details, "heartbeat details", MAX_DETAILS_BYTES)
        with self._lock:
            self._at = self._clock()
            self.details = details
            self.beats += 1
            self._unsaved = True
            self._text = text

    def stale_in(self) -> float:
        """Seconds until the call counts as silent (negative: it already does)."""
        assert self.timeout is not None
        with self._lock:
            return self._at + self.timeout - self._clock()

    def unsaved(self) -> str | None:
        """The details (as JSON) beaten since the last call of this, once."""
        with self._lock:
            if not self._unsaved:
                return None
            self._unsaved = False
            return self._text

    def stamp(self, outcome: Outcome) -> Outcome:
        """`outcome` carrying the last details, if the call beat at all."""
        if self.beats == 0:
            return outcome
        return Outcome(outcome.suffix, {**outcome.data, "heartbeat": self.details})


async def watch(call: Coroutine[Any, Any, Outcome], beat: Heartbeat) -> Outcome:
    """Run `call`; with a heartbeat timeout, give it up as `lost` once it falls silent."""
    if beat.timeout is None:
        return await call
    job = asyncio.ensure_future(call)
    while True:
        done, _ = await asyncio.wait({job}, timeout=max(beat.stale_in(), 0.001))
        if job in done:
            return job.result()
        if beat.stale_in() <= 0:
            job.cancel()  # an async agent is cancelled; a sync one's thread is abandoned
            with contextlib.suppress(asyncio.CancelledError):
                await job
            error = f"no heartbeat for {beat.timeout:g}s (the step's heartbeat_timeout)"
            return Outcome(LOST, {"error": error, "heartbeat_timeout": beat.timeout})
