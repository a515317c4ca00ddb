"""Schedules as operators read them (dashboard overview): what each starts and when, its
next tick (or paused), its last run and how many ticks it skipped."""

from __future__ import annotations

from dataclasses import dataclass

from steadyhand.core.schedules import ScheduleSpec
from steadyhand.store import Store, scheduling


@dataclass(frozen=True)
class ScheduleLine:
    name: str
    workflow: str
    when: str  # "every 60s" or the cron expression and its time zone
    paused: bool
    next_at: float
    last_tick: float | None
    last_workflow_id: str | None
    skipped: int


def schedule_lines(store: Store) -> list[ScheduleLine]:
    """Every published schedule, by name."""
    with store.snapshot() as tx:
        rows = scheduling.every_schedule(tx)
    lines = []
    for row in rows:
        spec = ScheduleSpec.from_json(row.spec)
        lines.append(
            ScheduleLine(
                row.name,
                spec.workflow,
                spec.describe(),
                row.paused,
                row.next_at,
                row.last_tick,
                row.last_workflow_id,
                row.skipped,
            )
        )
    return lines
