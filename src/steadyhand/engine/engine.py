"""The engine applies decisions: every change to a workflow is one short transaction that
locks its root row, reads its facts, asks its supervisor, and appends facts and tasks.

This is the only module that turns decisions into effects on the store. It makes no
remote calls (agents run in the worker, outside any transaction).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from steadyhand.core.circuit import (
    OUTCOME_KINDS,
    ServicePolicy,
    Transition,
    decide_circuit,
    gate_of,
)
from steadyhand.core.decisions import (
    CallAgent,
    CancelChild,
    Complete,
    Decision,
    EndCompensated,
    Fail,
    RecordFact,
    StartChild,
    WaitUntil,
)
from steadyhand.core.errors import IdempotencyConflict, NotFoundError, StoreError
from steadyhand.core.facts import (
    ACTION,
    CANCEL_REQUESTED,
    CHILD_CANCEL_REQUESTED,
    CHILD_STARTED,
    COMPENSATION,
    EVENT_RECEIVED,
    FAILED,
    LOST,
    OUTCOME_REPORTED_LATE,
    RETRY_REQUESTED,
    SCHEDULED,
    SUPERVISOR_RAN,
    TERMINAL_STATES,
    WORKFLOW_COMPENSATED,
    WORKFLOW_COMPLETED,
    WORKFLOW_FAILED,
    WORKFLOW_STARTED,
    Fact,
    call_kind,
    call_slot,
    terminal_slot,
)
from steadyhand.core.guard import Supervisor, guarded
from steadyhand.core.plans import Plan
from steadyhand.core.records import SUPERVISE, NewFact, Task, WorkflowRow
from steadyhand.core.view import ChildState, WorkflowView
from steadyhand.engine.writes import Claim, Writes
from steadyhand.store.base import Store, Tx

log = logging.getLogger("steadyhand.engine")


def idempotency_key(workflow_id: str, step: str, phase: str) -> str:
    """The key an agent passes to its remote service: stable across attempts and workers."""
    return f"{workflow_id}:{step}:undo" if phase == COMPENSATION else f"{workflow_id}:{step}"


@dataclass(frozen=True)
class Outcome:
    """What a worker learned from one agent call, ready to become a fact."""

    suffix: str  # succeeded, failed, timed_out or lost
    data: Mapping[str, Any]


@dataclass(frozen=True)
class Started:
    """The answer to a start request: the workflow's id and whether this call created it."""

    workflow_id: str
    created: bool


@dataclass(frozen=True)
class Signalled:
    """The answer to an event: which workflow got it, whether it was new, whether it started."""

    workflow_id: str
    recorded: bool  # False: a duplicate delivery (same dedupe key); nothing changed
    started: bool  # True: this event created the workflow (signal-with-start)


class Engine:
    """Applies supervisor decisions to one store (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        supervisors: Mapping[str, Supervisor],
        clock: Callable[[], float] = time.time,
        plans: Mapping[str, Plan] | None = None,
    ) -> None:
        self.store = store
        self.supervisors = supervisors
        self.clock = clock
        self.plans: Mapping[str, Plan] = plans if plans is not None else {}

    # -- entry points (each is one transaction) ----------------------------------------------
    def start(
        self,
        workflow_id: str,
        plan: Plan,
        input_value: Any,
        input_json: str,
        key: str | None,
        parent_id: str | None = None,
    ) -> Started:
        """Create a workflow with its plan, or return the one its idempotency key started."""
        now = self.clock()
        plan_json = _dumps(plan.to_json())
        with self.store.transaction() as tx:
            if key is not None:
                existing = tx.workflow_by_key(key)
                if existing is not None:
                    _check_same(existing, plan.workflow, input_value, key)
                    return Started(existing.id, created=False)
            row = WorkflowRow(workflow_id, plan.workflow, key, input_value, plan, parent_id, now)
            if not tx.insert_workflow(row, input_json, plan_json):
                existing = tx.workflow_by_key(key) if key else tx.get_workflow(workflow_id)
                if existing is None:
                    raise IdempotencyConflict(f"workflow id {workflow_id} is already taken")
                _check_same(existing, plan.workflow, input_value, key or existing.id)
                return Started(existing.id, created=False)
            tx.open_workflow(workflow_id, now)
            tx.append_fact(workflow_id, 1, NewFact(WORKFLOW_STARTED, slot="started"), now)
            view = WorkflowView(
                workflow_id=workflow_id,
                name=plan.workflow,
                input=input_value,
                plan=plan,
                created_at=now,
                facts=tx.read_facts(workflow_id),
                parent_id=parent_id,
            )
            self._decide_alone(tx, view, now, notify=True)
        return Started(workflow_id, created=True)

    def supervise(self, task: Task, *, notify: bool = False) -> Decision | None:
        """Run the supervisor for a `supervise` task and consume the task."""
        now = self.clock()
        with self.store.transaction() as tx:
            view = self._load(tx, task.workflow_id)
            tx.delete_task(task.id)
            if view is None:
                log.warning(
                    "dropped a task for unknown workflow %s",
                    task.workflow_id,
                    extra={"workflow_id": task.workflow_id},
                )
                return None
            return self._decide_alone(tx, view, now, notify=notify)

    def record_outcome(
        self,
        task: Task,
        outcome: Outcome,
        worker: str,
        *,
        notify: bool = False,
        claim: Claim | None = None,
    ) -> Decision | None:
        """Record what one agent call did and decide what comes next (see `record_outcomes`)."""
        return self.record_outcomes([(task, outcome)], worker, notify=notify, claim=claim)[0]

    def record_outcomes(
        self,
        reports: Sequence[tuple[Task, Outcome]],
        worker: str,
        *,
        notify: bool = False,
        claim: Claim | None = None,
    ) -> list[Decision | None]:
        """Record what agent calls did, and decide what comes next for each workflow, in one
        transaction: their workflows are locked in id order, their facts read in one
        statement, and the writes of all the decisions sent together (`writes.Writes`).

        With `claim`, a call a decision schedules may be inserted already leased to the
        claim's owner (a hand-off: no lease commit); `claim.tasks` gets it once committed.
        If the batch as a whole is refused, each report is recorded on its own, so one
        bad report costs only itself.
        """
        if len(reports) > 1:
            try:
                return self._record_batch(reports, worker, notify=notify, claim=claim)
            except StoreError as exc:
                log.warning(
                    "a batch of %d outcomes was refused (%s); recording them one by one",
                    len(reports),
                    exc,
                )
        decisions: list[Decision | None] = []
        for task, outcome in reports:
            try:
                decisions += self._record_batch(
                    [(task, outcome)], worker, notify=notify, claim=claim
                )
            except StoreError as exc:
                if len(reports) == 1:
                    raise
                log.error(  # the others of the batch are recorded; this one is retried
                    "could not record the outcome of task %s (%s); its lease will expire "
                    "and the call be retried",
                    task.id,
                    exc,
                    extra={"workflow_id": task.workflow_id, "step": task.step},
                )
                decisions.append(None)
        return decisions

    def _record_batch(
        self,
        reports: Sequence[tuple[Task, Outcome]],
        worker: str,
        *,
        notify: bool,
        claim: Claim | None,
    ) -> list[Decision | None]:
        now = self.clock()
        writes = Writes(notify_others=notify)
        decisions: list[Decision | None] = []
        remaining = Counter(task.workflow_id for task, _ in reports)
        with self.store.transaction() as tx:
            views = self._load_many(tx, list(remaining))
            for task, _ in reports:  # all first: no decision may re-queue a reported call
                writes.consume(task)
            for task, outcome in reports:
                remaining[task.workflow_id] -= 1
                view = views.get(task.workflow_id)
                fact = None if view is None else _outcome_fact(view, task, outcome, worker)
                if view is None or fact is None:
                    decisions.append(None)  # unknown workflow, or our own earlier commit
                    continue
                mark = len(writes.facts)
                writes.append_fact(view.workflow_id, view.last_seq + 1, fact, now)
                writes.dropped_wakeups.append(view.workflow_id)
                view = _extended(view, writes.as_read(mark))
                mark = len(writes.facts)
                decisions.append(self._decide_and_apply(tx, view, now, writes, claim=claim))
                if remaining[view.workflow_id]:  # decided on again later in this batch
                    views[view.workflow_id] = _extended(view, writes.as_read(mark))
            writes.flush(tx)
        writes.committed()
        return decisions

    def expire_lease(self, task: Task) -> bool:
        """Turn an expired lease into a fact (a call's outcome becomes unknown: `lost`)."""
        now = self.clock()
        with self.store.transaction() as tx:
            view = self._load(tx, task.workflow_id, deciding=False)
            current = tx.lock_task(task.id)
            if current is None or current.lease_owner != task.lease_owner:
                return False
            if current.lease_expires_at is None or current.lease_expires_at >= now:
                return False
            if current.kind == SUPERVISE or view is None:
                tx.release_lease(current.id, str(current.lease_owner))
                return True
            assert current.step is not None and current.attempt is not None
            slot = call_slot(current.kind, current.step, current.attempt, "outcome")
            if view.slot(slot) is None:
                data = {
                    "error": f"worker {current.lease_owner} stopped renewing its lease",
                    "worker": current.lease_owner,
                }
                # No service tag: a dead worker says nothing about the remote service's health.
                fact = NewFact(
                    call_kind(current.kind, LOST), current.step, current.attempt, slot, data
                )
                tx.append_fact(view.workflow_id, view.last_seq + 1, fact, now)
            tx.delete_task(current.id)
            tx.drop_idle_supervise(view.workflow_id)
            self._decide_alone(tx, self._reload(tx, view), now, notify=True)
            return True

    def wake_unwatched(self, limit: int = 100, grace: float = 5.0) -> int:
        """Give every open workflow without any task a supervisor run (nothing goes unwatched)."""
        now = self.clock()
        with self.store.transaction() as tx:
            ids = tx.unwatched_workflows(now - grace, limit)
            for workflow_id in ids:
                tx.wake_supervisor(workflow_id, now, now)
            if ids:
                tx.notify()
        return len(ids)

    def append_event(
        self, workflow_id: str, fact: NewFact, *, wake: bool = True
    ) -> tuple[WorkflowView, bool]:
        """Append an outside fact (cancel, retry, a signal) and wake the supervisor, atomically.

        Returns the workflow's facts after the append and whether the fact was new (False when
        its slot was already taken, e.g. a duplicate delivery).
        """
        now = self.clock()
        with self.store.transaction() as tx:
            view = self._load(tx, workflow_id, deciding=False)
            if view is None:
                raise NotFoundError(f"no workflow {workflow_id!r} in {self.store.url}")
            added = tx.append_fact(workflow_id, view.last_seq + 1, fact, now)
            # An ended workflow stays ended (and unwatched) unless an operator reopens it.
            reopens = view.terminal is None or fact.kind == RETRY_REQUESTED
            if added and wake and reopens:
                tx.open_workflow(workflow_id, now)
                tx.wake_supervisor(workflow_id, now, now)
                tx.notify()
            return self._reload(tx, view), added

    def signal(
        self,
        event: str,
        data: Mapping[str, Any],
        *,
        workflow_id: str | None = None,
        key: str | None = None,
        dedupe_key: str | None = None,
        start: tuple[str, Plan, Any, str] | None = None,
    ) -> Signalled:
        """Record an outside event on a workflow (by id or idempotency key) and wake it.

        With `start` (new id, plan, input, input JSON) and a `key`, an event for a workflow
        that does not exist yet starts it, in the same transaction: two webhooks that race
        from two connections meet in one workflow. With `dedupe_key`, a delivery retried by
        its sender is recorded once.
        """
        now = self.clock()
        with self.store.transaction() as tx:
            created = False
            target = workflow_id
            if target is None and key is not None:
                found = tx.workflow_by_key(key)
                target = found.id if found else None
            if target is None:
                if start is None or key is None:
                    which = f"id {workflow_id!r}" if workflow_id else f"key {key!r}"
                    raise NotFoundError(
                        f"no workflow with {which} in {self.store.url}; name a workflow to "
                        "start so the first event creates it"
                    )
                new_id, plan, input_value, input_json = start
                row = WorkflowRow(new_id, plan.workflow, key, input_value, plan, None, now)
                if tx.insert_workflow(row, input_json, _dumps(plan.to_json())):
                    tx.open_workflow(new_id, now)
                    tx.append_fact(new_id, 1, NewFact(WORKFLOW_STARTED, slot="started"), now)
                    target, created = new_id, True
                else:
                    existing = tx.workflow_by_key(key)
                    if existing is None:  # pragma: no cover - the insert lost to this key
                        raise IdempotencyConflict(f"workflow id {new_id} is already taken")
                    target = existing.id
            view = self._load(tx, target, deciding=created)
            if view is None:
                raise NotFoundError(f"no workflow {target!r} in {self.store.url}")
            if start is not None and not created and view.name != start[1].workflow:
                raise IdempotencyConflict(
                    f"key {key!r} belongs to workflow {view.workflow_id} ({view.name}), not a "
                    f"{start[1].workflow}"
                )
            slot = f"event:{dedupe_key}" if dedupe_key else None
            fact = NewFact(EVENT_RECEIVED, event, None, slot, data)
            recorded = tx.append_fact(view.workflow_id, view.last_seq + 1, fact, now)
            if created:
                self._decide_alone(tx, self._reload(tx, view), now, notify=True)
            elif recorded and view.terminal is None:
                tx.wake_supervisor(view.workflow_id, now, now)
                tx.notify()
            return Signalled(view.workflow_id, recorded=recorded, started=created)

    def publish_services(self, policies: Mapping[str, ServicePolicy]) -> None:
        """Write each service's limits to the store (its rate bucket starts full)."""
        if not policies:
            return
        now = self.clock()
        with self.store.transaction() as tx:
            for name in sorted(policies):
                policy = policies[name]
                params = {
                    "service": name,
                    "policy": policy.to_json(),
                    "tokens": policy.bucket,
                    "now": now,
                }
                tx.execute("publish_service", params)

    def evaluate_circuits(self) -> list[Transition]:
        """Open, half-open or close each service's circuit from its recent attempt facts.

        One short transaction per service: lock its gate, read its newest outcomes (index
        `facts_service`), decide (pure), and record the change as a service fact and in the
        gate that leasing reads.
        """
        with self.store.snapshot() as tx:
            names = [row.service for row in tx.gates()]
        changes = []
        for name in names:
            now = self.clock()
            with self.store.transaction() as tx:
                row = tx.gate(name, lock=True)
                if row is None:
                    continue
                policy = ServicePolicy.from_json(row.policy).circuit
                if row.circuit == "half_open":
                    since = row.circuit_since or now  # judge only the trial calls
                else:  # never count failures from before the circuit last closed
                    since = max(now - policy.window, row.circuit_since or 0.0)
                rows = tx.execute(
                    "recent_service_outcomes",
                    {"service": name, "since": since, "limit": max(policy.sample, 100)},
                ).fetchall()
                outcomes = [(str(r[0]), float(r[1])) for r in rows if r[0] in OUTCOME_KINDS]
                change = decide_circuit(gate_of(row), outcomes, now, policy)
                if change is None:
                    continue
                after = change.gate
                tx.execute(
                    "save_circuit",
                    {
                        "service": name,
                        "circuit": after.circuit,
                        "since": after.since,
                        "open_until": after.open_until,
                        "opens": after.opens,
                        "reason": after.reason,
                    },
                )
                seq = int(tx.execute("last_service_seq", {"service": name}).fetchone()[0]) + 1
                fact = {"service": name, "seq": seq, "kind": change.kind, "at": now}
                tx.execute("append_service_fact", {**fact, "data": _dumps(dict(change.data))})
                if after.circuit == "half_open":
                    tx.notify()
                changes.append(change)
        return changes

    def publish_plans(self) -> None:
        """Write the current definitions to the store, so SQL callers can start them by name."""
        if not self.plans:
            return
        now = self.clock()
        with self.store.transaction() as tx:
            for name in sorted(self.plans):
                plan_json = _dumps(self.plans[name].to_json())
                tx.execute("publish_plan", {"name": name, "plan": plan_json, "now": now})

    # -- reading ----------------------------------------------------------------------------
    def read(self, workflow_id: str) -> tuple[WorkflowView, list[Task]] | None:
        with self.store.snapshot() as tx:
            row = tx.get_workflow(workflow_id)
            if row is None:
                return None
            return _view(row, tx.read_facts(workflow_id)), tx.workflow_tasks(workflow_id)

    # -- internals --------------------------------------------------------------------------
    def _load_many(self, tx: Tx, workflow_ids: Sequence[str]) -> dict[str, WorkflowView]:
        """`_load` for a batch: lock the root rows in id order and read all their facts in
        one statement; circuits are read once for the batch."""
        rows, facts = tx.lock_and_read(sorted(set(workflow_ids)))
        gates: dict[str, Any] = {}
        return {
            wid: _with_services(tx, _view(row, facts[wid], _children(tx, facts[wid])), gates)
            for wid, row in rows.items()
        }

    def _load(self, tx: Tx, workflow_id: str, *, deciding: bool = True) -> WorkflowView | None:
        """Lock the root row and read everything the supervisor may know, consistently.

        When `deciding`, pending wake-ups nobody holds are dropped *before* reading: this
        run decides from what it reads, and a wake-up that arrives after the read (a child
        ending) survives. Callers that only append and wake keep them.
        """
        row = tx.lock_workflow(workflow_id)
        if row is None:
            return None
        if deciding:
            tx.drop_idle_supervise(workflow_id)
        facts = tx.read_facts(workflow_id)
        view = _view(row, facts, _children(tx, facts))
        return _with_services(tx, view)

    def _reload(self, tx: Tx, view: WorkflowView) -> WorkflowView:
        facts = tx.read_facts(view.workflow_id)
        fresh = WorkflowView(
            workflow_id=view.workflow_id,
            name=view.name,
            input=view.input,
            plan=view.plan,
            created_at=view.created_at,
            facts=facts,
            parent_id=view.parent_id,
            children=_children(tx, facts),
        )
        return _with_services(tx, fresh)

    def _decide_alone(self, tx: Tx, view: WorkflowView, now: float, *, notify: bool) -> Decision:
        """Decide for one workflow and write the decision at once (single-workflow paths)."""
        writes = Writes(notify_others=notify)
        decision = self._decide_and_apply(tx, view, now, writes)
        writes.flush(tx)
        return decision

    def _decide_and_apply(
        self,
        tx: Tx,
        view: WorkflowView,
        now: float,
        writes: Writes,
        *,
        claim: Claim | None = None,
    ) -> Decision:
        """Run the workflow's supervisor and queue its decision in `writes`."""
        if view.terminal is not None:
            writes.closed.append(view.workflow_id)  # heal a stale watch entry; never reopen
        supervisor = self.supervisors.get(view.plan.supervisor)
        started = time.perf_counter()
        if supervisor is None:
            reason = (
                f"no supervisor {view.plan.supervisor!r} is registered in this deploy; deploy "
                "code that registers it, then `steadyhand retry` this workflow"
            )
            log.error("%s", reason, extra={"workflow_id": view.workflow_id})
            decision = guarded(lambda v, n: Decision((Fail(reason),), reason), view, now)
        else:
            decision = guarded(supervisor, view, now)
        elapsed = time.perf_counter() - started
        self._apply(tx, view, decision, now, elapsed, writes, claim)
        return decision

    def _apply(
        self,
        tx: Tx,
        view: WorkflowView,
        decision: Decision,
        now: float,
        elapsed: float,
        writes: Writes,
        claim: Claim | None,
    ) -> None:
        workflow_id = view.workflow_id
        seq = view.last_seq

        def append(fact: NewFact) -> None:
            nonlocal seq
            if writes.append_fact(workflow_id, seq + 1, fact, now):
                seq += 1

        runs = view.supervisor_runs_this_round() + 1
        append(
            NewFact(
                SUPERVISOR_RAN,
                data={
                    "run": runs,
                    "saw": decision.saw or f"{len(view)} facts up to #{view.last_seq}",
                    "decided": decision.describe(),
                    "why": decision.why,
                    "decide_ms": round(elapsed * 1000, 3),
                },
            )
        )
        handed_off = False
        for command in decision.commands:
            if isinstance(command, CallAgent):
                slot = call_slot(command.phase, command.step, command.attempt, SCHEDULED)
                if view.slot(slot) is None:
                    data = {"agent": command.agent, "timeout": command.timeout}
                    kind = call_kind(command.phase, SCHEDULED)
                    append(NewFact(kind, command.step, command.attempt, slot, data))
                payload = {
                    "agent": command.agent,
                    "timeout": command.timeout,
                    "workflow": view.name,
                    "input": view.input,
                    "args": dict(command.args),
                    "key": idempotency_key(workflow_id, command.step, command.phase),
                    "action_key": idempotency_key(workflow_id, command.step, ACTION),
                    "permanent": list(command.permanent),
                    "transient": list(command.transient),
                }
                ungated = view.service_of(command.agent) is None
                if claim is not None and not handed_off and ungated:
                    # Hand-off: the worker that decided runs the call next, no lease commit.
                    handed_off = writes.leased_call(
                        workflow_id,
                        command.phase,
                        command.step,
                        command.attempt,
                        payload,
                        now,
                        claim,
                        self.clock() + claim.lease_seconds,  # after the lock: a fresh lease
                    )
                    continue
                writes.call_task(
                    workflow_id,
                    command.phase,
                    command.step,
                    command.attempt,
                    payload,
                    now,
                    now,
                    view.service_of(command.agent),
                )
            elif isinstance(command, WaitUntil):
                writes.wake(workflow_id, command.at, now, notify=False)
            elif isinstance(command, RecordFact):
                if command.slot is None or view.slot(command.slot) is None:
                    append(NewFact(command.kind, command.step, None, command.slot, command.data))
            elif isinstance(command, Complete | EndCompensated | Fail):
                append(_terminal_fact(command, view.round))
                writes.closed.append(workflow_id)
                if view.parent_id is not None:
                    writes.wake(view.parent_id, now, now)  # the parent learns at once
            elif isinstance(command, StartChild):
                slot = f"child:{command.step}"
                if view.slot(slot) is None:
                    data = self._start_child(tx, view, command, now, writes)
                    append(NewFact(CHILD_STARTED, command.step, None, slot, data))
            elif isinstance(command, CancelChild):
                started = view.slot(f"child:{command.step}")
                slot = f"child_cancel:{command.step}"
                if started is not None and view.slot(slot) is None:
                    cid = str(started.get("child_id"))
                    self._cancel_child(tx, cid, command.reason, now, writes)
                    append(NewFact(CHILD_CANCEL_REQUESTED, command.step, None, slot, {}))

    def _start_child(
        self, tx: Tx, parent: WorkflowView, command: StartChild, now: float, writes: Writes
    ) -> dict[str, Any]:
        """Create the child in the parent's transaction (one atomic step) and wake it."""
        cid = child_id(parent.workflow_id, command.step)
        data: dict[str, Any] = {"child_id": cid, "workflow": command.workflow}
        plan = self.plans.get(command.workflow)
        if plan is None:
            data["error"] = f"no workflow named {command.workflow!r} is registered in this deploy"
            return data
        input_json = _dumps(command.input)
        row = WorkflowRow(cid, plan.workflow, None, command.input, plan, parent.workflow_id, now)
        if tx.insert_workflow(row, input_json, _dumps(plan.to_json())):
            tx.open_workflow(cid, now)
            tx.append_fact(cid, 1, NewFact(WORKFLOW_STARTED, slot="started"), now)
            writes.wake(cid, now, now)
        return data

    def _cancel_child(self, tx: Tx, cid: str, reason: str, now: float, writes: Writes) -> None:
        """Lock order is always parent, then child; a child never locks its parent. (A
        child decided for in the same batch makes this append collide with the batch's own;
        the batch is then refused and its outcomes recorded one by one.)"""
        child = tx.lock_workflow(cid)
        if child is None:
            return
        facts = tx.read_facts(cid)
        data = {"reason": reason or "the parent was cancelled", "by": "parent"}
        if tx.append_fact(
            cid, facts[-1].seq + 1, NewFact(CANCEL_REQUESTED, slot="cancel:parent", data=data), now
        ):
            writes.wake(cid, now, now)


def _outcome_fact(view: WorkflowView, task: Task, outcome: Outcome, worker: str) -> NewFact | None:
    """The fact an agent call's outcome becomes: in its slot, or, when the slot already
    holds another outcome, a late report; None when it is our own earlier record."""
    assert task.step is not None and task.attempt is not None
    kind = call_kind(task.kind, outcome.suffix)
    slot = call_slot(task.kind, task.step, task.attempt, "outcome")
    existing = view.slot(slot)
    data = {**outcome.data, "worker": worker}
    if existing is not None:
        if existing.kind == kind and existing.get("worker") == worker:
            return None  # our own earlier commit went through
        late = {
            **data,
            "phase": task.kind,
            "outcome": outcome.suffix,
            "attempt": task.attempt,
            "recorded": existing.kind,
        }
        return NewFact(OUTCOME_REPORTED_LATE, task.step, task.attempt, data=late)
    # A refusal (sold out) is a healthy answer: only other outcomes speak for the service's
    # health, so only they carry its name into the circuit's reading.
    refused = outcome.suffix == FAILED and bool(outcome.data.get("permanent"))
    service = None if refused else task.service
    return NewFact(kind, task.step, task.attempt, slot, data, service)


def _extended(view: WorkflowView, facts: Sequence[Fact]) -> WorkflowView:
    """The view plus facts this transaction appended, without reading them back (the row
    lock is held: nothing else can have been appended)."""
    if not facts:
        return view
    return dataclasses.replace(view, facts=(*view.facts, *facts))


def _terminal_fact(command: Complete | EndCompensated | Fail, round_: int) -> NewFact:
    slot = terminal_slot(round_)
    if isinstance(command, Complete):
        return NewFact(WORKFLOW_COMPLETED, slot=slot, data={"result": command.result})
    if isinstance(command, EndCompensated):
        return NewFact(WORKFLOW_COMPENSATED, slot=slot, data={"reason": command.reason})
    return NewFact(WORKFLOW_FAILED, slot=slot, data={"reason": command.reason})


def _view(
    row: WorkflowRow, facts: tuple[Fact, ...], children: Mapping[str, ChildState] | None = None
) -> WorkflowView:
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


def _with_services(tx: Tx, view: WorkflowView, read: dict[str, Any] | None = None) -> WorkflowView:
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


def child_id(parent_id: str, step: str) -> str:
    """A child's id derives from its parent's, so a re-run never starts a second child."""
    return f"{parent_id}.{step}"


def _children(tx: Tx, facts: tuple[Fact, ...]) -> dict[str, ChildState]:
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
        data = json.loads(row[2])
        children[cid] = ChildState(
            cid, TERMINAL_STATES[row[1]], data.get("result"), data.get("reason")
        )
    return children


def _check_same(existing: WorkflowRow, name: str, input_value: Any, key: str) -> None:
    if existing.name != name or existing.input != input_value:
        raise IdempotencyConflict(
            f"idempotency key {key!r} already started workflow {existing.id} "
            f"({existing.name}) with a different "
            f"{'workflow name' if existing.name != name else 'input'}; use a new key for a "
            "new workflow, or the same name and input to get the existing one back"
        )


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
