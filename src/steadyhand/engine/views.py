"""Reading a workflow the way a supervisor needs it: its root row locked, its facts, how
each child stands, and the circuits of the services it calls, all inside the caller's
transaction. Helpers here only read (and drop idle wake-ups when about to decide)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from steadyhand.core import jsoncodec
from steadyhand.core.circuit import gate_of
from steadyhand.core.facts import (
    CHILD_STARTED,
    RETRY_REQUESTED,
    TERMINAL_KINDS,
    TERMINAL_STATES,
    Fact,
)
from steadyhand.core.records import WorkflowRow
from steadyhand.core.view import ChildState, WorkflowView
from steadyhand.store.base import Tx


def load_txn(tx: Tx, workflow_id: str, *, deciding: bool = True) -> WorkflowView | None:
    """Lock the root row and read everything the supervisor may know, consistently.

    When `deciding`, pending wake-ups nobody holds are dropped *before* reading: this run
    decides from what it reads, and a wake-up that arrives after the read (a child ending)
    survives. Callers that only append and wake keep them.
    """
    row = tx.lock_workflow(workflow_id)
    if row is None:
        return None
    if deciding:
        tx.drop_idle_supervise(workflow_id)
    facts = tx.read_facts(workflow_id)
    return with_services_txn(tx, view_of(row, facts, children_txn(tx, facts)))


def load_many_txn(tx: Tx, workflow_ids: Sequence[str]) -> dict[str, WorkflowView]:
    """`load_txn` for a batch: lock the root rows in id order and read all their facts in
    one statement; circuits are read once for the batch."""
    rows, facts = tx.lock_and_read(sorted(set(workflow_ids)))
    gates: dict[str, Any] = {}
    return {
        wid: with_services_txn(tx, view_of(row, facts[wid], children_txn(tx, facts[wid])), gates)
        for wid, row in rows.items()
    }


def extended(view: WorkflowView, facts: Sequence[Fact]) -> WorkflowView:
    """The view plus facts this transaction is about to append, without reading them back
    (the row lock is held: nothing else can have been appended)."""
    return view.with_facts(facts)


def view_of(
    row: WorkflowRow, facts: tuple[Fact, ...], children: Mapping[str, ChildState] | None = None
) -> WorkflowView:
    """The view of a root row and its facts (children and circuits added by the loaders)."""
    return WorkflowView(
        workflow_id=row.id,
        name=row.name,
        input=row.input,
        plan=row.plan,
        created_at=row.created_at,
        facts=facts,
        parent_id=row.parent_id,
        children=children or {},
    )


def with_services_txn(
    tx: Tx, view: WorkflowView, read: dict[str, Any] | None = None
) -> WorkflowView:
    """Add the circuits of the services this plan calls (what a supervisor may defer on);
    `read` caches the gates already read in this transaction."""
    names = set((view.plan.options.get("services") or {}).values())
    if not names:
        return view
    read = {} if read is None else read
    gates = {}
    for name in sorted(names):
        if name not in read:
            row = tx.gate(name)
            read[name] = None if row is None else gate_of(row)
        if read[name] is not None:
            gates[name] = read[name]
    return dataclasses.replace(view, services=gates)


def children_txn(tx: Tx, facts: tuple[Fact, ...]) -> dict[str, ChildState]:
    """How each started child stands, read from its own facts (committed ones)."""
    children: dict[str, ChildState] = {}
    for fact in facts:
        if fact.kind != CHILD_STARTED:
            continue
        cid = str(fact.get("child_id"))
        if fact.get("error"):
            children[cid] = ChildState(cid, "failed", reason=str(fact.get("error")))
            continue
        row = tx.execute("child_outcome", {"id": cid}).fetchone()
        if row is None or row[1] == RETRY_REQUESTED:
            children[cid] = ChildState(cid, "running")
            continue
        data = jsoncodec.loads_stored(row[2])
        children[cid] = ChildState(
            cid, TERMINAL_STATES[row[1]], data.get("result"), data.get("reason")
        )
    return children


def newest_run(tx: Tx, row: WorkflowRow) -> WorkflowRow:
    """The run a workflow's key stands for now: a workflow that continued as new
    (`wf.continue_as_new`) hands its key on to its next run, and so on."""
    for _ in range(10_000):  # a chain, never a cycle (run ids only grow)
        following = continued_as(tx.read_facts(row.id))
        if following is None:
            return row
        found = tx.get_workflow(following)
        if found is None:
            return row
        row = found
    return row


def continued_as(facts: tuple[Fact, ...]) -> str | None:
    """The next run's id, if this run ended by continuing as new."""
    for fact in reversed(facts):
        if fact.kind in TERMINAL_KINDS:
            value = fact.get("continued_as")
            return value if isinstance(value, str) else None
    return None
