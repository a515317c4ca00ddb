"""Priorities and fairness when leasing: the SQL that picks which due tasks go first.

A workflow started with `priority` (0..9) or a `fairness_key` gets a row in
`workflow_priorities`; a trigger copies both onto every task it queues (migration 015).

Plain tasks (supervisor runs, calls to no service) are leased highest priority first,
oldest first within a priority — but a task due for longer than `AGE_BOOST` seconds goes
before every priority, oldest first: a flood of priority 9 delays priority 0 by at most
that long, never forever. The statement is eleven index range scans (one per priority on
`tasks_due_by_priority`, one on `tasks_due` for the aged), each stopping after `limit`
rows, so its cost does not grow with the queue.

Calls to a remote service are leased round-robin across fairness keys (the first due call
of each key, then the second of each, …; priority then age within a key), so one tenant's
burst cannot take every slot of the service's `max_in_flight` from another. That ranking
reads every due call of the service (as `gated_due_services` already does); the service's
gate row, locked while leasing, keeps two workers from leasing the same service at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from steadyhand.core.errors import InputError

if TYPE_CHECKING:
    from steadyhand.store.base import Tx

AGE_BOOST = 30.0
"""Seconds a due task waits before it is leased ahead of any priority (oldest first)."""
PRIORITIES = range(10)
MAX_FAIRNESS_KEY = 200

_COLUMNS = (
    "id, workflow_id, kind, step, attempt, due_at, payload, lease_owner, lease_expires_at, service"
)


def lease_by_priority_sql(lock: str = "") -> str:
    """The `lease_tasks` statement; `lock` is appended to each branch (PostgreSQL: FOR
    UPDATE SKIP LOCKED, so workers leasing at once pass each other's rows by)."""

    def branch(rank: int, where: str) -> str:
        return f"""SELECT id, due_at, {rank} AS rank FROM (
            SELECT id, due_at FROM tasks
            WHERE lease_owner IS NULL AND service IS NULL AND {where}
            ORDER BY due_at LIMIT :limit {lock}) AS b{rank}"""

    branches = [branch(10, "due_at <= :aged")]
    branches += [branch(p, f"priority = {p} AND due_at <= :now") for p in reversed(PRIORITIES)]
    union = "\n            UNION ALL ".join(branches)
    return f"""
        UPDATE tasks SET lease_owner = :owner, lease_expires_at = :until
        WHERE id IN (
            SELECT id FROM ({union}) AS candidates
            GROUP BY id ORDER BY MAX(rank) DESC, MIN(due_at) LIMIT :limit
        )
        RETURNING {_COLUMNS}
    """


# Round-robin: each key's due calls are numbered (priority, then age, within the key);
# first go the first calls of every key, starting with the key after the one served last
# (`fairness_turns`), then the second calls, and so on. Workflows without a key share one.
_RANK = """
    SELECT id, COALESCE(fairness_key, '') AS k FROM (
        SELECT id, fairness_key, priority, due_at, ROW_NUMBER() OVER (
            PARTITION BY fairness_key ORDER BY priority DESC, due_at, id) AS turn
        FROM tasks
        WHERE lease_owner IS NULL AND service = :service AND due_at <= :now
    ) AS ranked
    ORDER BY turn, CASE WHEN COALESCE(fairness_key, '') > :last THEN 0 ELSE 1 END,
             COALESCE(fairness_key, ''), priority DESC, due_at, id
    LIMIT :limit
"""
_LAST = "SELECT last_key FROM fairness_turns WHERE service = :service"
_SAVE_LAST = """
    INSERT INTO fairness_turns (service, last_key) VALUES (:service, :last)
    ON CONFLICT (service) DO UPDATE SET last_key = excluded.last_key
"""
# `lease_owner IS NULL` again: on PostgreSQL a row leased meanwhile is re-read and skipped.
_LEASE = f"""
    UPDATE tasks SET lease_owner = :owner, lease_expires_at = :until
    WHERE lease_owner IS NULL AND id IN ({{ids}})
    RETURNING {_COLUMNS}
"""


def lease_service_fairly_txn(
    tx: Tx, owner: str, service: str, now: float, until: float, limit: int
) -> list[Any]:
    """Lease up to `limit` due calls to `service`, taking turns across fairness keys. The
    caller holds the service's gate row, so no other worker leases this service meanwhile."""
    row = tx.query(_LAST, {"service": service}).fetchone()
    params = {"service": service, "now": now, "limit": limit, "last": "" if row is None else row[0]}
    chosen = tx.query(_RANK, params).fetchall()
    if not chosen:
        return []
    names = {f"t_{chr(97 + i // 26)}{chr(97 + i % 26)}": r[0] for i, r in enumerate(chosen)}
    ids = ", ".join(f":{name}" for name in names)
    rows = tx.query(_LEASE.format(ids=ids), {"owner": owner, "until": until, **names}).fetchall()
    tx.query(_SAVE_LAST, {"service": service, "last": str(chosen[-1][1])})
    return rows


def check_priority(priority: object, fairness_key: object) -> tuple[int, str | None]:
    """`priority` as 0..9 and `fairness_key` as a short string or None; else `InputError`."""
    if isinstance(priority, bool) or not isinstance(priority, int) or priority not in PRIORITIES:
        raise InputError(f"priority must be a whole number from 0 to 9, not {priority!r}")
    if fairness_key is not None and (
        not isinstance(fairness_key, str)
        or not fairness_key
        or len(fairness_key) > MAX_FAIRNESS_KEY
    ):
        raise InputError(
            f"fairness_key must be a non-empty string of at most {MAX_FAIRNESS_KEY} characters"
        )
    return priority, fairness_key


def set_priority_txn(tx: Tx, workflow_id: str, priority: int, fairness_key: str | None) -> None:
    """Give a new workflow its priority and fairness key, before its first task is queued."""
    if priority == 0 and fairness_key is None:
        return  # the default: no row, and the trigger leaves its tasks alone
    params = {"id": workflow_id, "priority": priority, "fairness_key": fairness_key}
    tx.execute("set_priority", params)


_INHERIT = """
    INSERT INTO workflow_priorities (workflow_id, priority, fairness_key)
    SELECT :child, priority, fairness_key FROM workflow_priorities WHERE workflow_id = :parent
"""


def inherit_priority_txn(tx: Tx, parent_id: str, child_id: str) -> None:
    """A child workflow runs at its parent's priority, under its parent's fairness key."""
    tx.query(_INHERIT, {"parent": parent_id, "child": child_id})
