"""The engine applies decisions: every change to a workflow is one short transaction that
locks its root row, reads its facts, asks its supervisor, and appends facts and tasks.

This is the only module that turns decisions into effects on the store. It makes no
remote calls (agents run in the worker, outside any transaction).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .decisions import (
    CallAgent,
    Complete,
    Decision,
    EndCompensated,
    Fail,
    RecordFact,
    WaitUntil,
)
from .errors import IdempotencyConflict, NotFoundError
from .facts import (
    ACTION,
    COMPENSATION,
    LOST,
    OUTCOME_REPORTED_LATE,
    SCHEDULED,
    SUPERVISOR_RAN,
    WORKFLOW_COMPENSATED,
    WORKFLOW_COMPLETED,
    WORKFLOW_FAILED,
    WORKFLOW_STARTED,
    WorkflowFacts,
    call_kind,
    call_slot,
    terminal_slot,
)
from .model import Plan
from .store.base import SUPERVISE, NewFact, Store, Task, Tx, WorkflowRow
from .supervise import Supervisor, guarded

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


class Engine:
    """Applies supervisor decisions to one store (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        supervisors: Mapping[str, Supervisor],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.supervisors = supervisors
        self.clock = clock

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
            row = WorkflowRow(workflow_id, plan.workflow, key, input_value, {}, parent_id, now)
            if not tx.insert_workflow(row, input_json, plan_json):
                existing = tx.workflow_by_key(key) if key else tx.get_workflow(workflow_id)
                if existing is None:
                    raise IdempotencyConflict(f"workflow id {workflow_id} is already taken")
                _check_same(existing, plan.workflow, input_value, key or existing.id)
                return Started(existing.id, created=False)
            tx.open_workflow(workflow_id, now)
            tx.append_fact(workflow_id, 1, NewFact(WORKFLOW_STARTED, slot="started"), now)
            view = WorkflowFacts(
                workflow_id=workflow_id,
                name=plan.workflow,
                input=input_value,
                plan=plan,
                created_at=now,
                facts=tx.read_facts(workflow_id),
                parent_id=parent_id,
            )
            self._decide_and_apply(tx, view, now, notify=True)
        return Started(workflow_id, created=True)

    def supervise(self, task: Task, *, notify: bool = False) -> Decision | None:
        """Run the supervisor for a `supervise` task and consume the task."""
        now = self.clock()
        with self.store.transaction() as tx:
            view = self._load(tx, task.workflow_id)
            tx.delete_task(task.id)
            if view is None:
                log.warning("dropped a task for unknown workflow %s", task.workflow_id)
                return None
            return self._decide_and_apply(tx, view, now, notify=notify)

    def record_outcome(
        self, task: Task, outcome: Outcome, worker: str, *, notify: bool = False
    ) -> Decision | None:
        """Record what an agent call did, then decide what comes next, in one transaction."""
        assert task.step is not None and task.attempt is not None
        now = self.clock()
        kind = call_kind(task.kind, outcome.suffix)
        slot = call_slot(task.kind, task.step, task.attempt, "outcome")
        with self.store.transaction() as tx:
            view = self._load(tx, task.workflow_id)
            if view is None:
                tx.delete_task(task.id)
                return None
            existing = view.slot(slot)
            data = {**outcome.data, "worker": worker}
            if existing is not None:
                if existing.kind == kind and existing.get("worker") == worker:
                    tx.delete_task(task.id)  # our own earlier commit went through
                    return None
                late = {
                    **data,
                    "phase": task.kind,
                    "outcome": outcome.suffix,
                    "attempt": task.attempt,
                    "recorded": existing.kind,
                }
                fact = NewFact(OUTCOME_REPORTED_LATE, task.step, task.attempt, data=late)
            else:
                fact = NewFact(kind, task.step, task.attempt, slot, data)
            tx.append_fact(task.workflow_id, view.last_seq + 1, fact, now)
            tx.delete_task(task.id)
            view = self._reload(tx, view)
            return self._decide_and_apply(tx, view, now, notify=notify)

    def expire_lease(self, task: Task) -> bool:
        """Turn an expired lease into a fact (a call's outcome becomes unknown: `lost`)."""
        now = self.clock()
        with self.store.transaction() as tx:
            view = self._load(tx, task.workflow_id)
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
                fact = NewFact(
                    call_kind(current.kind, LOST), current.step, current.attempt, slot, data
                )
                tx.append_fact(view.workflow_id, view.last_seq + 1, fact, now)
            tx.delete_task(current.id)
            self._decide_and_apply(tx, self._reload(tx, view), now, notify=True)
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
    ) -> tuple[WorkflowFacts, bool]:
        """Append an outside fact (cancel, retry, a signal) and wake the supervisor, atomically.

        Returns the workflow's facts after the append and whether the fact was new (False when
        its slot was already taken, e.g. a duplicate delivery).
        """
        now = self.clock()
        with self.store.transaction() as tx:
            view = self._load(tx, workflow_id)
            if view is None:
                raise NotFoundError(f"no workflow {workflow_id!r} in {self.store.url}")
            added = tx.append_fact(workflow_id, view.last_seq + 1, fact, now)
            if added and wake:
                tx.open_workflow(workflow_id, now)
                tx.wake_supervisor(workflow_id, now, now)
                tx.notify()
            return self._reload(tx, view), added

    # -- reading ----------------------------------------------------------------------------
    def read(self, workflow_id: str) -> tuple[WorkflowFacts, list[Task]] | None:
        with self.store.snapshot() as tx:
            row = tx.get_workflow(workflow_id)
            if row is None:
                return None
            return _view(row, tx.read_facts(workflow_id)), tx.workflow_tasks(workflow_id)

    # -- internals --------------------------------------------------------------------------
    def _load(self, tx: Tx, workflow_id: str) -> WorkflowFacts | None:
        row = tx.lock_workflow(workflow_id)
        if row is None:
            return None
        return _view(row, tx.read_facts(workflow_id))

    def _reload(self, tx: Tx, view: WorkflowFacts) -> WorkflowFacts:
        return WorkflowFacts(
            workflow_id=view.workflow_id,
            name=view.name,
            input=view.input,
            plan=view.plan,
            created_at=view.created_at,
            facts=tx.read_facts(view.workflow_id),
            parent_id=view.parent_id,
        )

    def _decide_and_apply(
        self, tx: Tx, view: WorkflowFacts, now: float, *, notify: bool
    ) -> Decision:
        supervisor = self.supervisors.get(view.plan.supervisor)
        if supervisor is None:
            decision = Decision(why=f"no supervisor {view.plan.supervisor!r} is registered here")
            tx.wake_supervisor(view.workflow_id, now + 5.0, now)
            log.error("workflow %s: %s", view.workflow_id, decision.why)
            return decision
        started = time.perf_counter()
        decision = guarded(supervisor, view, now)
        elapsed = time.perf_counter() - started
        self._apply(tx, view, decision, now, elapsed, notify=notify)
        return decision

    def _apply(
        self,
        tx: Tx,
        view: WorkflowFacts,
        decision: Decision,
        now: float,
        elapsed: float,
        *,
        notify: bool,
    ) -> None:
        workflow_id = view.workflow_id
        seq = view.last_seq

        def append(fact: NewFact) -> None:
            nonlocal seq
            if tx.append_fact(workflow_id, seq + 1, fact, now):
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
        tx.drop_idle_supervise(workflow_id)
        enqueued = False
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
                enqueued |= tx.insert_call_task(
                    workflow_id,
                    command.phase,
                    command.step,
                    command.attempt,
                    payload,
                    now,
                    now,
                )
            elif isinstance(command, WaitUntil):
                tx.wake_supervisor(workflow_id, command.at, now)
            elif isinstance(command, RecordFact):
                if command.slot is None or view.slot(command.slot) is None:
                    append(NewFact(command.kind, command.step, None, command.slot, command.data))
            elif isinstance(command, Complete | EndCompensated | Fail):
                append(_terminal_fact(command, view.round))
                tx.close_workflow(workflow_id)
        if enqueued and notify:
            tx.notify()


def _terminal_fact(command: Complete | EndCompensated | Fail, round_: int) -> NewFact:
    slot = terminal_slot(round_)
    if isinstance(command, Complete):
        return NewFact(WORKFLOW_COMPLETED, slot=slot, data={"result": command.result})
    if isinstance(command, EndCompensated):
        return NewFact(WORKFLOW_COMPENSATED, slot=slot, data={"reason": command.reason})
    return NewFact(WORKFLOW_FAILED, slot=slot, data={"reason": command.reason})


def _view(row: WorkflowRow, facts: tuple[Any, ...]) -> WorkflowFacts:
    return WorkflowFacts(
        workflow_id=row.id,
        name=row.name,
        input=row.input,
        plan=Plan.from_json(row.plan),
        created_at=row.created_at,
        facts=facts,
        parent_id=row.parent_id,
    )


def _check_same(existing: WorkflowRow, name: str, input_value: Any, key: str) -> None:
    if existing.name != name or existing.input != input_value:
        raise IdempotencyConflict(
            f"idempotency key {key!r} already started workflow {existing.id} "
            f"({existing.name}) with a different "
            f"{'workflow name' if existing.name != name else 'input'}; use a new key for a "
            "new workflow, or the same name and input to get the existing one back"
        )


def _dumps(value: Any) -> str:
    import json

    return json.dumps(value, separators=(",", ":"))
