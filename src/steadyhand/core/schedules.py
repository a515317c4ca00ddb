"""Schedules: recurring workflows, and which ticks are due (pure: a spec and times in).

A schedule names a workflow and when to start it: a cron expression in a time zone, or a
fixed interval. Each tick has a time, and the workflow a tick starts has an idempotency key
naming the schedule and the tick, so however many workers fire the same tick, one workflow
starts. What happens to ticks that passed while no worker ran is `catch_up`; what happens
when a tick comes while the previous run is still going is `overlap`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from steadyhand.core import jsoncodec
from steadyhand.core.errors import DefinitionError
from steadyhand.core.plans import check_name

OVERLAPS = ("skip", "allow", "cancel_previous")
CATCH_UPS = ("latest", "all", "none")
LATE_GRACE = 60.0
"""With catch_up="none", a tick found later than this after its time (or than half the
schedule's period, if that is shorter, but never under MIN_GRACE) is skipped."""
MIN_GRACE = 5.0
MAX_TICKS_PER_PASS = 100
"""Most ticks one firing pass starts for one schedule (catch_up="all" after a long outage
goes on at the next pass)."""
_LATER_OPTIONS = (("priority", 0), ("fairness_key", None))


@dataclass(frozen=True)
class ScheduleSpec:
    """When to start which workflow with which input (see the module docstring)."""

    name: str
    workflow: str
    cron: str | None = None
    every: float | None = None
    input: Any = None
    timezone: str = "UTC"
    overlap: str = "skip"
    catch_up: str = "latest"
    priority: int = 0  # of the workflows it starts (checked by `App.schedule`)
    fairness_key: str | None = None

    def __post_init__(self) -> None:
        check_name(self.name, "schedule name")
        if (self.cron is None) == (self.every is None):
            raise DefinitionError(f"schedule {self.name}: give exactly one of cron= or every=")
        if self.cron is not None and not croniter.is_valid(self.cron):
            raise DefinitionError(
                f"schedule {self.name}: {self.cron!r} is not a cron expression "
                "(five fields: minute hour day-of-month month day-of-week, e.g. '0 2 * * *')"
            )
        if self.every is not None and not (math.isfinite(self.every) and self.every >= 1):
            raise DefinitionError(f"schedule {self.name}: every= must be at least 1 second")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise DefinitionError(
                f"schedule {self.name}: unknown timezone {self.timezone!r} (e.g. 'Europe/Paris')"
            ) from None
        if self.overlap not in OVERLAPS:
            raise DefinitionError(f"schedule {self.name}: overlap must be one of {OVERLAPS}")
        if self.catch_up not in CATCH_UPS:
            raise DefinitionError(f"schedule {self.name}: catch_up must be one of {CATCH_UPS}")
        try:
            jsoncodec.dumps_plan(self.input)
        except (TypeError, ValueError):
            raise DefinitionError(f"schedule {self.name}: input must be JSON") from None

    def to_json(self) -> str:
        """The stored form; options left at their defaults are left out, so a schedule
        published before they existed is not taken for a changed one."""
        data = asdict(self)
        for name, default in _LATER_OPTIONS:
            if data[name] == default:
                del data[name]
        return jsoncodec.dumps_plan(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ScheduleSpec:
        return cls(**jsoncodec.loads(text))

    def describe(self) -> str:
        if self.cron is not None:
            return f"cron {self.cron} ({self.timezone})"
        return f"every {self.every:g}s"


def next_tick(spec: ScheduleSpec, after: float) -> float:
    """The first tick strictly after `after` (epoch seconds)."""
    if spec.every is not None:
        return (math.floor(after / spec.every) + 1) * spec.every  # aligned to the epoch
    assert spec.cron is not None
    start = datetime.fromtimestamp(after, tz=ZoneInfo(spec.timezone))
    return float(croniter(spec.cron, start).get_next(float))


def latest_tick(spec: ScheduleSpec, at: float) -> float:
    """The newest tick at or before `at`."""
    if spec.every is not None:
        return math.floor(at / spec.every) * spec.every
    assert spec.cron is not None
    start = datetime.fromtimestamp(at + 0.001, tz=ZoneInfo(spec.timezone))
    return float(croniter(spec.cron, start).get_prev(float))


def due_ticks(spec: ScheduleSpec, next_at: float, now: float) -> tuple[list[float], float]:
    """The ticks to start now, and the next tick to wait for.

    `next_at` is the first tick not yet handled. Ticks up to `now` are due: with
    catch_up="all" each of them (at most MAX_TICKS_PER_PASS per pass; the next pass goes
    on), with "latest" only the newest, with "none" only a tick that is late by less than
    LATE_GRACE (ticks that passed while no worker ran are skipped).
    """
    if next_at > now:
        return [], next_at
    if spec.catch_up == "all":
        ticks: list[float] = []
        tick = next_at
        while tick <= now and len(ticks) < MAX_TICKS_PER_PASS:
            ticks.append(tick)
            tick = next_tick(spec, tick)
        return ticks, tick
    following = next_tick(spec, now)
    newest = latest_tick(spec, now)
    if newest < next_at:
        return [], following
    grace = max(MIN_GRACE, min(LATE_GRACE, (following - newest) / 2))
    if spec.catch_up == "latest" or now - newest <= grace:
        return [newest], following
    return [], following


def tick_key(spec: ScheduleSpec, tick: float) -> str:
    """The idempotency key of the workflow a tick starts: one per schedule and tick."""
    stamp = datetime.fromtimestamp(tick, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"schedule:{spec.name}:{stamp}"
