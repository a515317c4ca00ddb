"""`Tx.insert_workflows`, the batched insert of root rows behind `Client.start_many`, on both
stores: each backend's batched way inserts exactly what the portable one-by-one way does
(rows whose id or key is taken, in the store or earlier in the batch, are skipped), with
their watch-list entries and priorities."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import pytest

from steadyhand.core.records import WorkflowRow
from steadyhand.store import Store, Tx
from steadyhand.store.starts import NewWorkflow, insert_workflows_one_by_one
from tests.apps.scripted import app

Insert = Callable[[Tx, Sequence[NewWorkflow]], set[str]]


def _new(workflow_id: str, key: str | None, priority: int = 0) -> NewWorkflow:
    plan = app.plans["trip"]
    row = WorkflowRow(workflow_id, "trip", key, {}, plan, None, time.time())
    return NewWorkflow(row, "{}", '{"plan": true}', priority, None)


@pytest.mark.parametrize(
    "insert",
    [lambda tx, batch: tx.insert_workflows(batch), insert_workflows_one_by_one],
    ids=["batched", "one_by_one"],
)
def test_taken_ids_and_keys_are_skipped(store: Store, insert: Insert) -> None:
    with store.transaction() as tx:
        assert insert(tx, [_new("w-old", "k-old")]) == {"w-old"}
    batch = [
        _new("w-1", "k-1", priority=7),
        _new("w-old", None),  # id taken in the store
        _new("w-2", "k-old"),  # key taken in the store
        _new("w-3", "k-1"),  # key taken earlier in this batch
        _new("w-1", "k-9"),  # id taken earlier in this batch
        _new("w-4", None),
    ]
    with store.transaction() as tx:
        assert insert(tx, batch) == {"w-1", "w-4"}
    with store.snapshot() as tx:
        rows = tx.query("SELECT id, idempotency_key, plan FROM workflows ORDER BY id").fetchall()
        opened = tx.query("SELECT workflow_id FROM open_workflows ORDER BY workflow_id")
        ranked = tx.query("SELECT workflow_id, priority FROM workflow_priorities").fetchall()
        assert [tuple(r) for r in rows] == [
            ("w-1", "k-1", '{"plan": true}'),
            ("w-4", None, '{"plan": true}'),
            ("w-old", "k-old", '{"plan": true}'),
        ]
        assert [r[0] for r in opened.fetchall()] == ["w-1", "w-4", "w-old"]
        assert [tuple(r) for r in ranked] == [("w-1", 7)]


def test_an_empty_batch_inserts_nothing(store: Store) -> None:
    with store.transaction() as tx:
        assert tx.insert_workflows([]) == set()
