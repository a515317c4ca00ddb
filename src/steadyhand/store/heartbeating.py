"""The store's side of agent heartbeats: write the latest details onto the task rows of
calls in flight (with the lease renewal, in one transaction), and read them back when a
lease expires. A task another transaction holds is skipped, as renewals skip it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from steadyhand.core import jsoncodec
from steadyhand.store.base import Store, Tx

_SAVE = {
    "sqlite": """
        UPDATE tasks SET heartbeat = :details WHERE id = :task_id AND lease_owner = :owner
    """,
    "postgresql": """
        UPDATE tasks SET heartbeat = :details
        WHERE id IN (SELECT id FROM tasks WHERE id = :task_id AND lease_owner = :owner
                     FOR UPDATE SKIP LOCKED)
    """,
}
_READ = "SELECT heartbeat FROM tasks WHERE id = :task_id"


def renew_with_heartbeats(
    store: Store, owner: str, task_ids: Sequence[int], until: float, beats: Mapping[int, str]
) -> list[int]:
    """Renew `owner`'s leases and save the unsaved heartbeat details (JSON text by task id)
    in one transaction; returns the ids of the leases renewed."""
    with store.transaction() as tx:
        params = {"ids": tx.ids(sorted(task_ids)), "owner": owner, "until": until}
        renewed = [int(row[0]) for row in tx.execute("renew_leases", params).fetchall()]
        save = _SAVE[store.dialect]
        for task_id in sorted(beats):
            tx.query(save, {"details": beats[task_id], "task_id": task_id, "owner": owner})
    return renewed


def heartbeat_txn(tx: Tx, task_id: int) -> Any:
    """The details last saved for a task (None when it never beat, or is gone)."""
    row = tx.query(_READ, {"task_id": task_id}).fetchone()
    return None if row is None or row[0] is None else jsoncodec.loads(row[0])
