"""Firing schedules: start each due tick's workflow and move the schedule on, in one commit.

A pass claims the due schedules, asks `core.schedules.due_ticks` which ticks to start
(catch-up), applies the overlap rule against the previous run, creates each workflow with
the tick's idempotency key (its first supervisor run is queued like any start), and
records the next tick. If the process dies before the commit, nothing happened; the next
pass does it again. Two workers firing the same tick create one workflow: the key is
unique.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from steadyhand.core import jsoncodec
from steadyhand.core.errors import DefinitionError, InputError, NotFoundError
from steadyhand.core.plans import Plan
from steadyhand.core.records import WorkflowRow
from steadyhand.core.schedules import ScheduleSpec, due_ticks, next_tick, tick_key
from steadyhand.engine.actions import OperatorActions
from steadyhand.engine.apply import create_workflow_txn
from steadyhand.engine.writes import Writes
from steadyhand.store import scheduling
from steadyhand.store.base import Store, Tx
from steadyhand.store.clock import store_clock
from steadyhand.store.priorities import set_priority_txn
from steadyhand.store.scheduling import ScheduleRow


@dataclass(frozen=True)
class Fired:
    """What one pass did for one schedule."""

    schedule: str
    started: tuple[str, ...]  # workflow ids, one per tick started
    skipped: int  # ticks skipped because the previous run was still going (overlap="skip")
    cancelled: str | None  # the previous run asked to roll back (overlap="cancel_previous")


def new_workflow_id(now: float) -> str:
    """Time-ordered ids, the same shape the client uses."""
    return f"{int(now * 1000):012x}{secrets.token_hex(8)}"


def publish_schedules(
    store: Store,
    specs: Mapping[str, ScheduleSpec],
    plans: Mapping[str, Plan],
    clock: Callable[[], float],
) -> None:
    """Write each schedule to the store; a new or changed one waits for its next tick."""
    for spec in specs.values():
        if spec.workflow not in plans:
            known = ", ".join(sorted(plans)) or "none"
            raise DefinitionError(
                f"schedule {spec.name} starts workflow {spec.workflow!r}, which this app "
                f"does not declare (known: {known})"
            )
    if not specs:
        return
    now = clock()
    with store.transaction() as tx:
        for spec in specs.values():
            scheduling.publish(tx, spec.name, spec.to_json(), next_tick(spec, now), now)


class ScheduleFiring:
    """Fires due schedules for an app's plans (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        plans: Mapping[str, Plan],
        actions: OperatorActions,
        clock: Callable[[], float],
    ) -> None:
        self.store = store
        self.plans = plans
        self.actions = actions
        self.clock = clock

    def fire_due(self) -> list[Fired]:
        """One pass over every due schedule this app can start."""
        now = self.clock()
        fired: list[Fired] = []
        with self.store.transaction() as tx:
            for row in scheduling.due(tx, now, dialect=self.store.dialect):
                spec = ScheduleSpec.from_json(row.spec)
                if spec.workflow in self.plans:  # another app's schedule: its workers fire it
                    fired.append(self._fire(tx, row, spec, now))
        for result in fired:
            if result.cancelled is not None:
                self._cancel(result.cancelled, result.schedule)
        return [f for f in fired if f.started or f.skipped or f.cancelled]

    def trigger(self, name: str) -> Fired:
        """Start one run of a schedule now, whatever its next tick (overlap still applies)."""
        now = self.clock()
        with self.store.transaction() as tx:
            row = scheduling.one(tx, name, dialect=self.store.dialect, lock=True)
            if row is None:
                raise NotFoundError(_unknown(tx, name))
            spec = ScheduleSpec.from_json(row.spec)
            if spec.workflow not in self.plans:
                raise InputError(f"schedule {name} starts {spec.workflow!r}, unknown to this app")
            result = self._fire(tx, row, spec, now, ticks=[now], following=row.next_at)
        if result.cancelled is not None:
            self._cancel(result.cancelled, name)
        return result

    def _fire(
        self,
        tx: Tx,
        row: ScheduleRow,
        spec: ScheduleSpec,
        now: float,
        *,
        ticks: list[float] | None = None,
        following: float | None = None,
    ) -> Fired:
        if ticks is None:
            ticks, following = due_ticks(spec, row.next_at, now)
        assert following is not None
        previous, started, skipped, cancelled = row.last_workflow_id, [], 0, None
        last_tick, skipped_at = None, None
        for tick in ticks:
            running = previous is not None and scheduling.is_open(tx, previous)
            if running and spec.overlap == "skip":
                skipped, skipped_at = skipped + 1, tick
                continue
            if running and spec.overlap == "cancel_previous":
                cancelled = previous
            previous = self._start(tx, spec, tick, now)
            started.append(previous)
            last_tick = tick
        scheduling.advance(
            tx,
            row.name,
            next_at=following,
            now=now,
            last_tick=last_tick,
            workflow_id=started[-1] if started else None,
            skipped=skipped,
            skipped_at=skipped_at,
        )
        return Fired(row.name, tuple(started), skipped, cancelled)

    def _start(self, tx: Tx, spec: ScheduleSpec, tick: float, now: float) -> str:
        """Create the tick's workflow (or find the one an earlier pass created)."""
        key = tick_key(spec, tick) if tick != now else f"schedule:{spec.name}:manual:{now!r}"
        existing = tx.workflow_by_key(key)
        if existing is not None:
            return existing.id
        plan = self.plans[spec.workflow]
        row = WorkflowRow(new_workflow_id(now), plan.workflow, key, spec.input, plan, None, now)
        writes = Writes()
        create_workflow_txn(tx, writes, row, jsoncodec.dumps(spec.input), wake=True)
        set_priority_txn(tx, row.id, spec.priority, spec.fairness_key)  # before its tasks
        writes.flush(tx)
        return row.id

    def _cancel(self, workflow_id: str, schedule: str) -> None:
        reason = f"schedule {schedule}: the next tick came while it ran (overlap=cancel_previous)"
        with contextlib.suppress(NotFoundError):  # archived meanwhile: nothing to cancel
            self.actions.cancel(workflow_id, reason, f"schedule:{schedule}")


def set_paused(store: Store, name: str, paused: bool) -> None:
    """Pause or resume a schedule (a paused schedule's ticks pass by; on resume it waits
    for its next tick). The next tick is on the store's clock, like every due time."""
    now = store_clock(store).now()
    with store.transaction() as tx:
        row = scheduling.one(tx, name, dialect=store.dialect, lock=True)
        if row is None:
            raise NotFoundError(_unknown(tx, name))
        if not paused and row.paused:
            spec = ScheduleSpec.from_json(row.spec)
            scheduling.advance(tx, name, next_at=next_tick(spec, now), now=now)
        scheduling.set_paused(tx, name, paused, now)


def _unknown(tx: Tx, name: str) -> str:
    known = ", ".join(r.name for r in scheduling.every_schedule(tx)) or "none"
    return (
        f"no schedule {name!r} in this store (known: {known}); schedules are published by "
        "workers of an App that declares them with app.schedule()"
    )
