"""Creating a batch of workflows (`Client.start_many`): their root rows, their places on
the watch list and their priorities, written with one statement per table on SQLite
(`executemany` under the write lock taken at BEGIN) and one statement for all three on
PostgreSQL (data-modifying CTEs over one JSON parameter, each plan's text sent once).

Either way a row whose id or idempotency key is taken is skipped (so are all but one of
the rows that repeat an id or key within the batch; the engine sends each claim once), and
only the ids inserted are returned: the engine then finds what holds them. Inserting wakes
idle workers once the transaction commits, as `Tx.notify` does: a new workflow's first
decision almost always queues work.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from steadyhand.core import jsoncodec
from steadyhand.core.records import WorkflowRow

if TYPE_CHECKING:
    import sqlite3

    from steadyhand.store.base import Tx


@dataclass(frozen=True)
class NewWorkflow:
    """A root row to insert, with its encoded input and plan (pass one `plan_json` string
    object per plan: the PostgreSQL store sends each distinct one once) and its priority."""

    row: WorkflowRow
    input_json: str
    plan_json: str
    priority: int = 0
    fairness_key: str | None = None

    @property
    def ranked(self) -> bool:
        """Whether it needs a `workflow_priorities` row (the default needs none)."""
        return self.priority != 0 or self.fairness_key is not None


def insert_workflows_one_by_one(tx: Tx, batch: Sequence[NewWorkflow]) -> set[str]:
    """The portable way: one `insert_workflow` (and its watch-list entry and priority) per
    row. Correct on any backend; the backends override `Tx.insert_workflows` with one of
    the batched ways below."""
    from steadyhand.store.priorities import set_priority_txn

    inserted: set[str] = set()
    for new in batch:
        row = new.row
        if tx.insert_workflow(row, new.input_json, new.plan_json):
            inserted.add(row.id)
            tx.open_workflow(row.id, row.created_at)
            set_priority_txn(tx, row.id, new.priority, new.fairness_key)
    return inserted


# -- SQLite ----------------------------------------------------------------------------------
# The write lock is held from BEGIN IMMEDIATE, so what this finds taken stays exactly that
# until commit: no other writer can claim an id or a key between the look and the insert.
_SQLITE_TAKEN = """
    SELECT id, idempotency_key FROM workflows
    WHERE id IN (SELECT value FROM json_each(:ids))
       OR idempotency_key IN (SELECT value FROM json_each(:keys))
"""


def insert_workflows_locked(
    conn: sqlite3.Connection, queries: dict[str, str], batch: Sequence[NewWorkflow]
) -> set[str]:
    """Insert `batch` on a SQLite connection that holds the write lock (see above), one
    `executemany` per table; returns the ids inserted."""
    ids = jsoncodec.dumps([new.row.id for new in batch])
    keys = jsoncodec.dumps([k for new in batch if (k := new.row.idempotency_key) is not None])
    taken_ids: set[str] = set()
    taken_keys: set[str] = set()
    for found_id, found_key in conn.execute(_SQLITE_TAKEN, {"ids": ids, "keys": keys}):
        taken_ids.add(found_id)
        if found_key is not None:
            taken_keys.add(found_key)
    kept = []
    for new in batch:
        row = new.row
        key = row.idempotency_key
        if row.id in taken_ids or (key is not None and key in taken_keys):
            continue
        taken_ids.add(row.id)
        if key is not None:
            taken_keys.add(key)
        kept.append(new)
    if not kept:
        return set()
    # Plain inserts: the look above was exact (and the triggers of migration 006 would
    # refuse a taken id or key, failing the transaction, never skipping a row).
    conn.executemany(_SQLITE_INSERT, [_row_values(new) for new in kept])
    opened = [(new.row.id, new.row.created_at) for new in kept]
    conn.executemany(_SQLITE_OPEN, opened)
    ranked = [_rank_params(new) for new in kept if new.ranked]
    if ranked:
        conn.executemany(queries["set_priority"], ranked)
    return {new.row.id for new in kept}


_SQLITE_INSERT = """
    INSERT INTO workflows (id, name, idempotency_key, input, plan, parent_id, created_at)
    VALUES (?, ?, ?, ?, ?, ?, ?)
"""
_SQLITE_OPEN = (
    "INSERT INTO open_workflows (workflow_id, since) VALUES (?, ?) ON CONFLICT DO NOTHING"
)


def _row_values(new: NewWorkflow) -> tuple[Any, ...]:
    row = new.row
    return (row.id, row.name, row.idempotency_key, new.input_json, new.plan_json,
            row.parent_id, row.created_at)  # fmt: skip


def _rank_params(new: NewWorkflow) -> dict[str, Any]:
    return {"id": new.row.id, "priority": new.priority, "fairness_key": new.fairness_key}


# -- PostgreSQL ------------------------------------------------------------------------------
# One statement: the rows arrive as one JSON parameter (see pg_statements.RECORDS for why),
# each plan's text once in a JSON array the rows index. ON CONFLICT DO NOTHING skips a row whose
# id or key is taken, also by a concurrent transaction (it waits for that one to end) or by
# an earlier row of the same batch; only the rows inserted get a watch-list entry and a
# priority, and their ids come back. The NOTIFY that wakes idle workers for the new
# workflows' first tasks rides along (once: an InitPlan, run only if a row was inserted),
# which saves the transaction a round trip (see `PgTx.notify`).
PG_INSERT_WORKFLOWS = """
    WITH given AS MATERIALIZED (
        SELECT * FROM json_to_recordset(%(rows)s::json) AS r (
            id text, name text, key text, input text, plan int, parent_id text, now float8,
            priority int, fairness_key text)
    ), new AS (
        INSERT INTO workflows (id, name, idempotency_key, input, plan, parent_id, created_at)
        SELECT g.id, g.name, g.key, g.input, %(plans)s::json ->> g.plan, g.parent_id, g.now
        FROM given g
        ON CONFLICT DO NOTHING
        RETURNING id, created_at
    ), opened AS (
        INSERT INTO open_workflows (workflow_id, since)
        SELECT id, created_at FROM new
        ON CONFLICT DO NOTHING
    ), ranked AS (
        INSERT INTO workflow_priorities (workflow_id, priority, fairness_key)
        SELECT g.id, g.priority, g.fairness_key FROM given g JOIN new ON new.id = g.id
        WHERE g.priority <> 0 OR g.fairness_key IS NOT NULL
    )
    SELECT id, (SELECT pg_notify(%(channel)s, '')) FROM new
"""


def pg_insert_params(batch: Sequence[NewWorkflow], channel: str) -> dict[str, Any]:
    """The parameters of `PG_INSERT_WORKFLOWS`: the rows as JSON, the distinct plans as a
    JSON array of their texts (a text array would be escaped by psycopg character by
    character: 0.7 ms of client CPU per plan, measured)."""
    plans: dict[str, int] = {}
    rows = []
    # Keys in one order: two batches that share keys wait for each other, never in a cycle.
    for new in sorted(batch, key=lambda new: (new.row.idempotency_key or "", new.row.id)):
        row = new.row
        plan = plans.setdefault(new.plan_json, len(plans))
        rows.append(
            {
                "id": row.id,
                "name": row.name,
                "key": row.idempotency_key,
                "input": new.input_json,
                "plan": plan,
                "parent_id": row.parent_id,
                "now": row.created_at,
                "priority": new.priority,
                "fairness_key": new.fairness_key,
            }
        )
    return {
        "rows": jsoncodec.dumps(rows),
        "plans": jsoncodec.dumps(list(plans)),
        "channel": channel,
    }
