"""The store's side of schedules: publish them, find the due ones, record each pass.

Every statement takes a transaction, so the engine can start a tick's workflow and move
the schedule on in one commit. On PostgreSQL a due schedule is claimed with `FOR UPDATE
SKIP LOCKED`, so two workers never work on the same schedule at once; SQLite has one
writer at a time anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

from steadyhand.store.base import Tx

_COLUMNS = "name, spec, paused, next_at, last_tick, last_workflow_id, last_skipped, skipped"

_PUBLISH = """
INSERT INTO schedules (name, spec, paused, next_at, updated_at)
VALUES (:name, :spec, FALSE, :next_at, :now)
ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, next_at = excluded.next_at,
    updated_at = excluded.updated_at
WHERE schedules.spec <> excluded.spec
"""
_DUE = f"SELECT {_COLUMNS} FROM schedules WHERE NOT paused AND next_at <= :now ORDER BY next_at"
_DUE_LOCKED = _DUE + " FOR UPDATE SKIP LOCKED"
_ONE = f"SELECT {_COLUMNS} FROM schedules WHERE name = :name"
_ONE_LOCKED = _ONE + " FOR UPDATE"
_ALL = f"SELECT {_COLUMNS} FROM schedules ORDER BY name"
_ADVANCE = """
UPDATE schedules SET next_at = :next_at, last_tick = COALESCE(:last_tick, last_tick),
    last_workflow_id = COALESCE(:workflow_id, last_workflow_id),
    last_skipped = COALESCE(:skipped_at, last_skipped), skipped = skipped + :skipped,
    updated_at = :now
WHERE name = :name
"""
_IS_OPEN = "SELECT 1 FROM open_workflows WHERE workflow_id = :id"
_PAUSE = "UPDATE schedules SET paused = :paused, updated_at = :now WHERE name = :name"


@dataclass(frozen=True)
class ScheduleRow:
    name: str
    spec: str
    paused: bool
    next_at: float
    last_tick: float | None
    last_workflow_id: str | None
    last_skipped: float | None
    skipped: int


def _row(values: tuple[object, ...]) -> ScheduleRow:
    name, spec, paused, next_at, last_tick, last_id, last_skipped, skipped = values
    return ScheduleRow(
        str(name),
        str(spec),
        bool(paused),
        float(next_at),  # type: ignore[arg-type]
        None if last_tick is None else float(last_tick),  # type: ignore[arg-type]
        None if last_id is None else str(last_id),
        None if last_skipped is None else float(last_skipped),  # type: ignore[arg-type]
        int(skipped),  # type: ignore[call-overload]
    )


def publish(tx: Tx, name: str, spec: str, next_at: float, now: float) -> None:
    """Create a schedule, or take a changed spec (its next tick is computed afresh);
    an unchanged one keeps its place and its paused state."""
    tx.query(_PUBLISH, {"name": name, "spec": spec, "next_at": next_at, "now": now})


def due(tx: Tx, now: float, *, dialect: str) -> list[ScheduleRow]:
    """Schedules whose next tick has come, claimed for this transaction."""
    text = _DUE_LOCKED if dialect == "postgresql" else _DUE
    return [_row(tuple(r)) for r in tx.query(text, {"now": now}).fetchall()]


def one(tx: Tx, name: str, *, dialect: str, lock: bool = False) -> ScheduleRow | None:
    text = _ONE_LOCKED if lock and dialect == "postgresql" else _ONE
    row = tx.query(text, {"name": name}).fetchone()
    return None if row is None else _row(tuple(row))


def every_schedule(tx: Tx) -> list[ScheduleRow]:
    return [_row(tuple(r)) for r in tx.query(_ALL).fetchall()]


def advance(
    tx: Tx,
    name: str,
    *,
    next_at: float,
    now: float,
    last_tick: float | None = None,
    workflow_id: str | None = None,
    skipped: int = 0,
    skipped_at: float | None = None,
) -> None:
    """Record a pass: the next tick to wait for, the last tick started and what was skipped."""
    tx.query(
        _ADVANCE,
        {
            "name": name,
            "next_at": next_at,
            "now": now,
            "last_tick": last_tick,
            "workflow_id": workflow_id,
            "skipped": skipped,
            "skipped_at": skipped_at,
        },
    )


def set_paused(tx: Tx, name: str, paused: bool, now: float) -> bool:
    """Pause or resume; False when there is no such schedule."""
    return bool(tx.query(_PAUSE, {"name": name, "paused": paused, "now": now}).rowcount)


def is_open(tx: Tx, workflow_id: str) -> bool:
    """Whether a workflow has not ended yet."""
    row = tx.query(_IS_OPEN, {"id": workflow_id}).fetchone()
    return row is not None
