"""PostgreSQL's statements: the shared ones with `%(name)s` parameters and `= ANY(...)` sets,
the few it overrides (locks, `SKIP LOCKED`, `LEAST`), and the batch writes sent as one
statement each. Kept apart from the store (pool, transactions, migrations, LISTEN) so each
module owns one thing.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any

from steadyhand.core import jsoncodec
from steadyhand.store.base import encode_json_params
from steadyhand.store.priorities import lease_by_priority_sql
from steadyhand.store.queries import IN_IDS, SHARED, locking, override

_OWNED = "lease_owner = :owner)"
OVERRIDES = {
    "lock_workflow": locking(SHARED, "lock_workflow"),
    "lock_task": locking(SHARED, "lock_task"),
    "wake_supervisor": override(SHARED, "wake_supervisor", "min(", "LEAST("),
    "lease_tasks": lease_by_priority_sql("FOR UPDATE SKIP LOCKED"),
    "lock_gate": locking(SHARED, "lock_gate"),
    "lock_workflows": locking(SHARED, "lock_workflows"),
    # Heartbeats and releases skip rows another transaction holds (see Store.renew_leases).
    "renew_leases": override(
        SHARED, "renew_leases", _OWNED, "lease_owner = :owner ORDER BY id FOR UPDATE SKIP LOCKED)"
    ),
    "release_leases": override(
        SHARED, "release_leases", _OWNED, "lease_owner = :owner ORDER BY id FOR UPDATE SKIP LOCKED)"
    ),
    "notify": "SELECT pg_notify(:channel, '')",
}


# Batch writes as one statement over one JSON parameter (`json_to_recordset`), instead of
# one statement per row: psycopg adapts parameters in Python, so one text parameter costs
# a fraction of nine per row (measured: 24 fact rows, 0.15 ms of client CPU against 0.5 ms
# for executemany or arrays). JSON values (`data`, `payload`) travel as JSON inside it and
# are stored as their text (compact JSON, as every other fact). They travel encoded, as
# strings: decoded by `json_to_recordset`, a string holding an escaped NUL (\u0000, which
# a payload may carry) would be refused as text.
RECORDS: dict[str, str] = {
    "insert_fact": """
        INSERT INTO facts (workflow_id, seq, kind, step, attempt, slot, data, at, service)
        SELECT id, seq, kind, step, attempt, slot, data, at, service
        FROM json_to_recordset(%(rows)s::json) AS r (
            id text, seq int, kind text, step text, attempt int, slot text, data text,
            at float8, service text)
    """,
    "insert_call_task": """
        INSERT INTO tasks (workflow_id, kind, step, attempt, due_at, payload, created_at,
                           service)
        SELECT id, kind, step, attempt, due_at, payload, now, service
        FROM json_to_recordset(%(rows)s::json) AS r (
            id text, kind text, step text, attempt int, due_at float8, payload text,
            now float8, service text)
        ON CONFLICT (workflow_id, kind, step, attempt) WHERE kind <> 'supervise' DO NOTHING
    """,
    "insert_call_task_leased": """
        INSERT INTO tasks (workflow_id, kind, step, attempt, due_at, payload, created_at,
                           lease_owner, lease_expires_at)
        SELECT id, kind, step, attempt, due_at, payload, now, owner, until
        FROM json_to_recordset(%(rows)s::json) AS r (
            id text, kind text, step text, attempt int, due_at float8, payload text,
            now float8, owner text, until float8)
        ON CONFLICT (workflow_id, kind, step, attempt) WHERE kind <> 'supervise' DO NOTHING
        RETURNING id, workflow_id, kind, step, attempt, due_at, payload, lease_owner,
                  lease_expires_at, service
    """,
    # Callers pass each workflow once (Writes merges wake-ups): an upsert may not touch
    # one row twice in a statement.
    "wake_supervisor": """
        INSERT INTO tasks (workflow_id, kind, due_at, created_at)
        SELECT id, 'supervise', due_at, now
        FROM json_to_recordset(%(rows)s::json) AS r (id text, due_at float8, now float8)
        ON CONFLICT (workflow_id) WHERE kind = 'supervise'
        DO UPDATE SET due_at = LEAST(tasks.due_at, excluded.due_at)
    """,
}


def from_records(name: str) -> str:
    """The `INSERT … SELECT … FROM json_to_recordset(…)` of `name`, reading `%(name)s`."""
    return RECORDS[name].replace("%(rows)s", f"%({name})s").strip()


# All of a batch's set-based writes in one statement (data-modifying CTEs, each run once
# whatever it is given, so the text is fixed and prepared once). The parts touch disjoint
# rows: finished call tasks, idle wake-ups, new facts, new call tasks (a finished call is
# never queued again: see writes.Writes.consume). Saves ~4 round trips per batch.
WRITE_BATCH = f"""
    WITH finished AS (
        DELETE FROM tasks WHERE id = ANY(%(finished)s::bigint[])
    ), idle AS (
        DELETE FROM tasks
        WHERE workflow_id = ANY(%(idle)s::text[]) AND kind = 'supervise' AND lease_owner IS NULL
    ), closed AS (
        DELETE FROM open_workflows WHERE workflow_id = ANY(%(closed)s::text[])
    ), new_facts AS (
        {from_records("insert_fact")}
    ), queued AS (
        {from_records("insert_call_task")}
    )
    {from_records("insert_call_task_leased")}
"""


def rows_param(rows: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    return {"rows": records(rows)}


def records(rows: Sequence[Mapping[str, Any]]) -> str:
    """Rows as one JSON parameter, their JSON values encoded as strings (see `RECORDS`)."""
    return jsoncodec.dumps([encode_json_params(row) for row in rows])


def to_pyformat(query: str) -> str:
    return re.sub(r"(?<![:\w]):([a-z_]+)", r"%(\1)s", query)


@functools.lru_cache(maxsize=256)
def pyformat_cached(query: str) -> str:
    return to_pyformat(query)


QUERIES = {
    name: to_pyformat(text.replace(IN_IDS, "= ANY(:ids)"))
    for name, text in {**SHARED, **OVERRIDES}.items()
}
