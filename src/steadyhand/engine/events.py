"""Outside facts: an event (a webhook, a confirmation) for a workflow by id or key, which
may start it (signal-with-start), and operator facts such as cancel and retry."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from steadyhand.core.budget import awaited_by, refuse_event
from steadyhand.core.errors import IdempotencyConflict, NotFoundError, TooManyEvents
from steadyhand.core.facts import EVENT_RECEIVED, RETRY_REQUESTED
from steadyhand.core.plans import Plan
from steadyhand.core.records import NewFact, WorkflowRow
from steadyhand.core.slots import event_slot
from steadyhand.core.view import WorkflowView
from steadyhand.engine.answers import Signalled
from steadyhand.engine.apply import create_workflow_txn
from steadyhand.engine.deciding import Decider
from steadyhand.engine.views import (
    extended,
    load_txn,
    newest_run,
    view_of,
    with_services_txn,
)
from steadyhand.engine.writes import Writes
from steadyhand.store.base import Tx
from steadyhand.store.priorities import set_priority_txn

log = logging.getLogger("steadyhand.engine")


class EventIntake(Decider):
    """The entry points that append what the outside world says (module docstring)."""

    def append_event(
        self, workflow_id: str, fact: NewFact, *, wake: bool = True
    ) -> tuple[WorkflowView, bool]:
        """Append an outside fact (cancel, retry, a signal) and wake the supervisor, atomically.

        Returns the workflow's facts after the append and whether the fact was new (False when
        its slot was already taken, e.g. a duplicate delivery).
        """
        now = self.clock()
        with self.store.transaction() as tx:
            view = load_txn(tx, workflow_id, deciding=False)
            if view is None:
                raise NotFoundError(f"no workflow {workflow_id!r} in {self.store.safe_url}")
            writes = Writes()
            added = fact.slot is None or view.slot(fact.slot) is None
            added = added and writes.append_fact(workflow_id, view.last_seq + 1, fact, now)
            # An ended workflow stays ended (and unwatched) unless an operator reopens it.
            reopens = view.terminal is None or fact.kind == RETRY_REQUESTED
            if added and wake and reopens:
                writes.open(workflow_id, now)
                writes.wake(workflow_id, now, now)
            writes.flush(tx)
            return extended(view, writes.as_read(0)), added

    def signal(
        self,
        event: str,
        data: Mapping[str, Any],
        *,
        workflow_id: str | None = None,
        key: str | None = None,
        dedupe_key: str | None = None,
        start: tuple[str, Plan, Any, str] | None = None,
        priority: int = 0,
        fairness_key: str | None = None,
    ) -> Signalled:
        """Record an outside event on a workflow (by id or idempotency key) and wake it.

        With `start` (new id, plan, input, input JSON) and a `key`, an event for a workflow
        that does not exist yet starts it, in the same transaction: two webhooks that race
        from two connections meet in one workflow. With `dedupe_key`, a delivery retried by
        its sender is recorded once. A workflow it starts gets `priority` and `fairness_key`
        (see `Client.start`).
        """
        now = self.clock()
        with self.store.transaction() as tx:
            writes = Writes()
            created = False
            target = workflow_id
            if target is None and key is not None:
                found = tx.workflow_by_key(key)
                target = newest_run(tx, found).id if found else None
            if target is None:
                if start is None or key is None:
                    which = f"id {workflow_id!r}" if workflow_id else f"key {key!r}"
                    raise NotFoundError(
                        f"no workflow with {which} in {self.store.safe_url}; name a workflow to "
                        "start so the first event creates it"
                    )
                new_id, plan, input_value, input_json = start
                row = WorkflowRow(new_id, plan.workflow, key, input_value, plan, None, now)
                if create_workflow_txn(tx, writes, row, input_json, wake=False):
                    target, created = new_id, True
                    set_priority_txn(tx, new_id, priority, fairness_key)  # before any task
                else:
                    existing = tx.workflow_by_key(key)
                    if existing is None:  # pragma: no cover - the insert lost to this key
                        raise IdempotencyConflict(f"workflow id {new_id} is already taken")
                    target = newest_run(tx, existing).id
            slot = event_slot(dedupe_key) if dedupe_key else None
            fact = NewFact(EVENT_RECEIVED, event, None, slot, data)
            if created:  # the new root row is ours until commit: no lock to take
                view = extended(with_services_txn(tx, view_of(row, ())), writes.as_read(0))
                mark = len(writes.facts)
                recorded = writes.append_fact(view.workflow_id, view.last_seq + 1, fact, now)
                view = extended(view, writes.as_read(mark))
                self.decide_and_apply_txn(tx, view, now, writes)
            else:
                recorded = self._append_to_existing(tx, writes, target, fact, start, key, now)
            writes.flush(tx)
            return Signalled(target, recorded=recorded, started=created)

    def _append_to_existing(
        self,
        tx: Tx,
        writes: Writes,
        workflow_id: str,
        fact: NewFact,
        start: tuple[str, Plan, Any, str] | None,
        key: str | None,
        now: float,
    ) -> bool:
        """Append an event to a workflow that exists, reading three index lookups instead of
        its history: the next seq, whether the dedupe slot is taken, whether it is open. A
        workflow with 100,000 events costs the same per event as one with ten."""
        row = tx.lock_workflow(workflow_id)
        if row is None:
            raise NotFoundError(f"no workflow {workflow_id!r} in {self.store.safe_url}")
        if start is not None and row.name != start[1].workflow:
            raise IdempotencyConflict(
                f"key {key!r} belongs to workflow {row.id} ({row.name}), not a {start[1].workflow}"
            )
        params = {"id": workflow_id, "slot": fact.slot}
        last_seq, taken, is_open = tx.execute("append_point", params).fetchone()
        awaited = False
        if not taken:  # the cap and the wake-up (core.budget), from two counts, not history
            event = str(fact.step)
            held, arrived = tx.execute(
                "event_tally", {"id": workflow_id, "event": event}
            ).fetchone()
            awaited = awaited_by(row.plan, event, bool(arrived))
            refusal = refuse_event(row.plan, workflow_id, event, int(held or 0), awaited)
            if refusal is not None:
                raise TooManyEvents(refusal)
        recorded = not taken and writes.append_fact(workflow_id, int(last_seq) + 1, fact, now)
        if recorded and is_open and awaited:
            # An ended workflow stays ended (the SQL function agrees), and an event nothing
            # waits for is kept but wakes nobody: a flood spends none of the run budget.
            writes.wake(workflow_id, now, now)
        return recorded
