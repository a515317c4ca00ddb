"""One clock for every process of a deployment: the store's.

Leases, due times and fact times are all stamped and judged on the store's clock, never on
a machine's own wall clock, so a worker whose wall clock is 40 s fast neither steals a live
call (it would judge the lease expired) nor runs "retry in 30 s" early.

What "the store's clock" is:

- **PostgreSQL**: the database server's clock (`clock_timestamp()`). The lease statements
  read it in SQL (see `postgres.py`); everything else reads this process's estimate of it.
- **SQLite**: every process shares one host (WAL needs it), so the host's kernel boot clock
  (`/proc/uptime`: never stepped, not faked by libfaketime, the same for every process on
  the host) anchored once per boot to a wall time recorded in the store
  (`store_clock` table). A wall clock step after the anchor moves nothing. Where there is
  no `/proc/uptime` (not Linux) it falls back to the wall clock, shared by every process.

`StoreClock` keeps this process's estimate: `now()` is `monotonic() + offset`, and
`sync()` measures the offset by reading the store's clock between two monotonic readings
(the midpoint of the fastest of a few samples, as NTP does). The monotonic clock is never
stepped, so the estimate survives a wall clock step; drift between syncs is parts per
million (milliseconds per hour). A sync also measures how far this machine's wall clock is
from the store's (`skew`), which the worker logs and exports.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from steadyhand.store.base import Store

log = logging.getLogger("steadyhand.clock")

SAMPLES = 3


@dataclass(frozen=True)
class ClockReading:
    """One sync: the store's time, how sure we are of it, and this machine's skew."""

    store_time: float  # the store's clock at `monotonic`
    monotonic: float  # this process's monotonic clock at the same instant (midpoint)
    round_trip: float  # seconds the fastest sample took: the estimate's error is below half
    skew: float  # this machine's wall clock minus the store's clock (positive: fast)


class StoreClock:
    """This process's reading of the store's clock (see the module docstring).

    `read` returns the store's current time (`Store.read_clock`). `resync_after` makes
    `now()` sync again when the last sync is that old (None: only explicit `sync()` calls,
    as a worker does from its clock duty). Thread-safe.
    """

    def __init__(
        self,
        read: Callable[[], float],
        *,
        samples: int = SAMPLES,
        at_end: bool = False,
        resync_after: float | None = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._read = read
        self._samples = samples
        self._at_end = at_end  # `read` returns the time as of its return, not mid-call
        self._monotonic = monotonic
        self._wall = wall
        self._resync_after = resync_after
        self._lock = threading.Lock()
        self._offset: float | None = None
        self._synced_at = 0.0
        self.last: ClockReading | None = None

    def now(self) -> float:
        """The store's current time, in seconds since the epoch (syncs first if needed)."""
        offset = self._offset
        if offset is None:
            self.sync()
            offset = self._offset
            assert offset is not None
        elif self._due_for_sync():
            try:
                self.sync()
                offset = self._offset or offset
            except Exception as exc:  # keep the last offset: it drifts by ppm only
                log.warning("could not read the store's clock (%s); keeping the last offset", exc)
        return self._monotonic() + offset

    def _better(self, reading: ClockReading, best: ClockReading) -> bool:
        """The fastest round trip (the midpoint's error is below half of it); for a read
        that returns the time as of its return (`at_end`) every error makes the estimate
        late, so the sample that puts the store furthest ahead is the best."""
        if self._at_end:
            return reading.store_time - reading.monotonic > best.store_time - best.monotonic
        return reading.round_trip < best.round_trip

    def _due_for_sync(self) -> bool:
        after = self._resync_after
        return after is not None and self._monotonic() - self._synced_at > after

    def __call__(self) -> float:
        return self.now()

    def sync(self) -> ClockReading:
        """Measure the offset to the store's clock; raises what the store raises."""
        best: ClockReading | None = None
        for _ in range(max(1, self._samples)):
            before_wall = self._wall()
            before = self._monotonic()
            store_time = self._read()
            after = self._monotonic()
            after_wall = self._wall()
            mid = after if self._at_end else (before + after) / 2
            reading = ClockReading(
                store_time=store_time,
                monotonic=mid,
                round_trip=after - before,
                skew=(before_wall + after_wall) / 2 - store_time,
            )
            if best is None or self._better(reading, best):
                best = reading
        assert best is not None
        with self._lock:
            self._offset = best.store_time - best.monotonic
            self._synced_at = best.monotonic
            self.last = best
        return best

    @property
    def skew(self) -> float | None:
        """This machine's wall clock minus the store's, at the last sync (None: never synced)."""
        return None if self.last is None else self.last.skew


def store_clock(store: Store, *, resync_after: float | None = 60.0) -> StoreClock:
    """A `StoreClock` reading `store` (SQLite's read is exact as of its return)."""
    local = store.dialect == "sqlite"  # read on this host, exact as of its return
    return StoreClock(store.read_clock, at_end=local, resync_after=resync_after)
