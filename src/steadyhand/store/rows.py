"""Rows to values and values to parameters: how the store reads a workflow, a fact and a
task from a result row, and writes JSON values and a call task's row."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from steadyhand.core import jsoncodec
from steadyhand.core.facts import Fact
from steadyhand.core.plans import plan_from_text
from steadyhand.core.records import Task, WorkflowRow


def workflow_from_row(row: Sequence[Any]) -> WorkflowRow:
    return WorkflowRow(
        id=row[0],
        name=row[1],
        idempotency_key=row[2],
        input=jsoncodec.loads_stored(row[3]),
        plan=plan_from_text(row[4]),
        parent_id=row[5],
        created_at=float(row[6]),
    )


JSON_PARAMS = ("data", "payload")
"""Parameters of batch statements that hold JSON values (see `Tx.execute_many`)."""


def encode_json_params(params: Mapping[str, Any]) -> dict[str, Any]:
    encoded = dict(params)
    for key in JSON_PARAMS:
        if key in encoded:
            encoded[key] = jsoncodec.dumps(encoded[key])
    return encoded


def call_task_row(
    workflow_id: str,
    phase: str,
    step: str,
    attempt: int,
    payload: Mapping[str, Any],
    due_at: float,
    now: float,
) -> dict[str, Any]:
    """The parameters of a call task shared by `insert_call_task` and the leased variant
    (which adds `owner` and `until`; the queued one adds `service`)."""
    return {
        "id": workflow_id,
        "kind": phase,
        "step": step,
        "attempt": attempt,
        "due_at": due_at,
        "payload": payload,
        "now": now,
    }


def fact_from_row(row: Sequence[Any]) -> Fact:
    return Fact(
        seq=int(row[0]),
        kind=row[1],
        at=float(row[2]),
        step=row[3],
        attempt=row[4],
        slot=row[5],
        data=jsoncodec.loads_stored(row[6]),
    )


def task_from_row(row: Sequence[Any]) -> Task:
    return Task(
        id=int(row[0]),
        workflow_id=row[1],
        kind=row[2],
        step=row[3],
        attempt=row[4],
        due_at=float(row[5]),
        payload=jsoncodec.loads(row[6]),
        lease_owner=row[7],
        lease_expires_at=None if row[8] is None else float(row[8]),
        service=row[9] if len(row) > 9 else None,
    )


def grouped_facts(
    locked: Sequence[Any], read: Sequence[Any]
) -> tuple[dict[str, WorkflowRow], dict[str, tuple[Fact, ...]]]:
    """The root rows `lock_workflows` returned and the facts `read_facts_of` read, by id."""
    found = {row[0]: workflow_from_row(row) for row in locked}
    facts: dict[str, list[Fact]] = {wid: [] for wid in found}
    for row in read:
        if row[0] in facts:  # a fact of a workflow id without a root row cannot exist
            facts[row[0]].append(fact_from_row(row[1:]))
    return found, {wid: tuple(each) for wid, each in facts.items()}
