"""Turning one decision into writes: the breadcrumb of the run, the calls it schedules,
its waits, its own facts, the terminal fact, and the children it starts or cancels.

Everything is queued in the transaction's `Writes`; nothing here commits. Creating a
workflow (by a client, by an event, or as a child) is `create_workflow_txn`, the one place
that sequence is written (a client's batch, `starting`, writes the same rows set-wise).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from steadyhand.core import jsoncodec
from steadyhand.core.deadlines import check_deadline, started_data
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
from steadyhand.core.facts import (
    ACTION,
    CANCEL_REQUESTED,
    CHILD_CANCEL_REQUESTED,
    CHILD_STARTED,
    COMPENSATION,
    CONTINUED_FROM,
    EVENT_RECEIVED,
    PHASE_PREFIX,
    SCHEDULED,
    SUPERVISOR_RAN,
    TERMINAL_STATES,
    WITHDRAWN,
    WORKFLOW_COMPENSATED,
    WORKFLOW_COMPLETED,
    WORKFLOW_FAILED,
    WORKFLOW_STARTED,
    call_kind,
    call_slot,
    terminal_slot,
)
from steadyhand.core.plans import Plan
from steadyhand.core.records import NewFact, WorkflowRow
from steadyhand.core.slots import PARENT_CANCEL, STARTED, child_cancel_slot, child_slot
from steadyhand.core.view import WorkflowView
from steadyhand.engine.heartbeats import heartbeat_payload
from steadyhand.engine.writes import Claim, Writes
from steadyhand.store.base import Tx
from steadyhand.store.priorities import inherit_priority_txn


def idempotency_key(workflow_id: str, step: str, phase: str) -> str:
    """The key an agent passes to its remote service: stable across attempts and workers."""
    return f"{workflow_id}:{step}:undo" if phase == COMPENSATION else f"{workflow_id}:{step}"


def child_id(parent_id: str, step: str) -> str:
    """A child's id derives from its parent's, so a re-run never starts a second child."""
    return f"{parent_id}.{step}"


def create_workflow_txn(
    tx: Tx,
    writes: Writes,
    row: WorkflowRow,
    input_json: str,
    *,
    wake: bool,
    deadline: float | None = None,
    started: Mapping[str, Any] | None = None,
) -> bool:
    """Create a workflow: its root row, its place among the watched workflows, its
    `workflow_started` fact (with its deadline: `deadline` seconds, else the definition's)
    and (with `wake`) a first supervisor run. False when the id or the idempotency key is
    taken, and then nothing else is written."""
    if not writes.insert_workflow(tx, row, input_json, dumps(row.plan.to_json())):
        return False
    writes.open(row.id, row.created_at)
    writes.append_fact(row.id, 1, started_fact(row, deadline, started), row.created_at)
    if wake:
        writes.wake(row.id, row.created_at, row.created_at)
    return True


def started_fact(
    row: WorkflowRow, deadline: float | None, started: Mapping[str, Any] | None
) -> NewFact:
    """A new workflow's first fact, `workflow_started`, with its deadline (`deadline`
    seconds, else the definition's) and the extra data `started` (e.g. a trace context)."""
    if deadline is None:
        deadline = check_deadline(row.plan.options.get("deadline"))
    data = {**(started_data(deadline, row.created_at) or {}), **(started or {})}
    return NewFact(WORKFLOW_STARTED, slot=STARTED, data=data or None)


def latest_trace(view: WorkflowView) -> Any:
    """The trace context of the latest start or signal that carried one (None when none)."""
    for fact in reversed(view.facts):
        if fact.kind in (WORKFLOW_STARTED, EVENT_RECEIVED) and fact.data and "trace" in fact.data:
            return fact.data["trace"]
    return None


class DecisionApplier:
    """Queues the writes of one decision for one workflow (see the module docstring).

    `plans` are the definitions children are started from; `clock` stamps a handed-off
    call's lease after the lock was taken (its lease must be fresh, not the decision's).
    """

    def __init__(self, plans: Mapping[str, Plan], clock: Callable[[], float]) -> None:
        self.plans = plans
        self.clock = clock

    def apply_txn(
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

        append(breadcrumb(view, decision, elapsed))
        handed_off = False
        ended: NewFact | None = None
        for command in decision.commands:
            if isinstance(command, CallAgent):
                handed_off |= self._call(view, command, now, writes, claim, handed_off, append)
            elif isinstance(command, WaitUntil):
                writes.wake(workflow_id, command.at, now, notify=False)
            elif isinstance(command, RecordFact):
                if command.slot is None or view.slot(command.slot) is None:
                    append(
                        NewFact(
                            command.kind,
                            command.step,
                            None,
                            command.slot,
                            command.data,
                            service=command.service,
                        )
                    )
            elif isinstance(command, Complete | EndCompensated | Fail):
                ended = terminal_fact(command, view.round)
                if isinstance(command, Complete) and command.continue_as_new:
                    ended = self._continue_txn(tx, view, command, ended, now, writes)
                append(ended)
                writes.closed.append(workflow_id)
                if view.parent_id is not None:
                    writes.wake(view.parent_id, now, now)  # the parent learns at once
            elif isinstance(command, StartChild):
                slot = child_slot(command.step)
                if view.slot(slot) is None:
                    data = self._start_child_txn(tx, view, command, now, writes)
                    append(NewFact(CHILD_STARTED, command.step, None, slot, data))
            elif isinstance(command, CancelChild):
                started = view.slot(child_slot(command.step))
                slot = child_cancel_slot(command.step)
                if started is not None and view.slot(slot) is None:
                    cid = str(started.get("child_id"))
                    cancel_child_txn(tx, cid, command.reason, now, writes)
                    append(NewFact(CHILD_CANCEL_REQUESTED, command.step, None, slot, {}))
        if ended is not None:
            for fact in withdrawn_facts(tx, view, writes, TERMINAL_STATES[ended.kind]):
                append(fact)

    def _call(
        self,
        view: WorkflowView,
        command: CallAgent,
        now: float,
        writes: Writes,
        claim: Claim | None,
        handed_off: bool,
        append: Callable[[NewFact], None],
    ) -> bool:
        """Schedule one call (its fact once, its task always); True when it was handed off
        to the deciding worker already leased."""
        workflow_id = view.workflow_id
        slot = call_slot(command.phase, command.step, command.attempt, SCHEDULED)
        if view.slot(slot) is None:
            data = {"agent": command.agent, "timeout": command.timeout}
            kind = call_kind(command.phase, SCHEDULED)
            append(NewFact(kind, command.step, command.attempt, slot, data))
        args = dict(command.args)
        payload = {
            "agent": command.agent,
            "timeout": command.timeout,
            "workflow": view.name,
            # A code-first step passes its own input; a saga's agents see the workflow's.
            "input": args.pop("input") if "input" in args else view.input,
            "args": args,
            "key": idempotency_key(workflow_id, command.step, command.phase),
            "action_key": idempotency_key(workflow_id, command.step, ACTION),
            "permanent": list(command.permanent),
            "transient": list(command.transient),
            "not_done": list(command.not_done),
            "uncertain": list(command.uncertain),
            **heartbeat_payload(view, command),
            # The fencing token: facts only grow, so every later decision (a later attempt of
            # this step) hands out a larger one (see `Context.fencing_token`).
            "token": view.last_seq + 1,
        }
        trace = latest_trace(view)
        if trace is not None:  # the agent's spans continue the trace of start or signal
            payload["trace"] = trace
        service = view.service_of(command.agent)
        if claim is not None and not handed_off and service is None:
            # Hand-off: the worker that decided runs the call next, no lease commit.
            return writes.leased_call(
                workflow_id,
                command.phase,
                command.step,
                command.attempt,
                payload,
                now,
                claim,
                self.clock() + claim.lease_seconds,
            )
        writes.call_task(
            workflow_id, command.phase, command.step, command.attempt, payload, now, now, service
        )
        return False

    def _continue_txn(
        self,
        tx: Tx,
        view: WorkflowView,
        command: Complete,
        ended: NewFact,
        now: float,
        writes: Writes,
    ) -> NewFact:
        """Start the next run of a workflow that continues as new (the current deploy's
        plan, a fresh history, `next_input`); returns this run's terminal fact naming it."""
        next_id = next_run_id(view.workflow_id)
        plan = self.plans.get(view.name, view.plan)
        row = WorkflowRow(next_id, view.name, None, command.next_input, plan, None, now)
        create_workflow_txn(tx, writes, row, dumps(command.next_input), wake=True)
        writes.append_fact(
            next_id, 2, NewFact(CONTINUED_FROM, data={"workflow_id": view.workflow_id}), now
        )
        result = {"continued_as": next_id}
        return NewFact(ended.kind, slot=ended.slot, data={"result": result, **result})

    def _start_child_txn(
        self, tx: Tx, parent: WorkflowView, command: StartChild, now: float, writes: Writes
    ) -> dict[str, Any]:
        """Create the child in the parent's transaction (one atomic step) and wake it."""
        cid = child_id(parent.workflow_id, command.step)
        data: dict[str, Any] = {"child_id": cid, "workflow": command.workflow}
        plan = self.plans.get(command.workflow)
        if plan is None:
            data["error"] = f"no workflow named {command.workflow!r} is registered in this deploy"
            return data
        row = WorkflowRow(
            cid, plan.workflow, command.key, command.input, plan, parent.workflow_id, now
        )
        if not create_workflow_txn(tx, writes, row, dumps(command.input), wake=True):
            data["error"] = (
                f"could not start child {cid}: its id or idempotency key {command.key!r} is "
                "already used by another workflow"
            )
        else:
            inherit_priority_txn(tx, parent.workflow_id, cid)  # before its tasks are queued
        return data


def cancel_child_txn(tx: Tx, cid: str, reason: str, now: float, writes: Writes) -> None:
    """Ask a child to roll back. Lock order is always parent, then child; a child never
    locks its parent. (A child decided for in the same batch makes this append collide
    with the batch's own; the batch is then refused and its outcomes recorded one by one.)"""
    child = tx.lock_workflow(cid)
    if child is None:
        return
    facts = tx.read_facts(cid)
    if any(fact.slot == PARENT_CANCEL for fact in facts):
        return
    data = {"reason": reason or "the parent was cancelled", "by": "parent"}
    fact = NewFact(CANCEL_REQUESTED, slot=PARENT_CANCEL, data=data)
    if writes.append_fact(cid, facts[-1].seq + 1, fact, now):
        writes.wake(cid, now, now)


def withdrawn_facts(tx: Tx, view: WorkflowView, writes: Writes, state: str) -> list[NewFact]:
    """Withdraw the calls still queued for a workflow that ends in this transaction (in the
    store and in `writes`): one `<phase>_withdrawn` fact each, in its outcome slot, so the
    call reads as never run. Calls a worker holds are in flight and will be recorded late.

    The store is asked only when the view shows a call still open: a call's task is queued
    with its `scheduled` fact, and goes (consumed, expired, withdrawn) with the fact in its
    outcome slot, so a workflow whose every scheduled call has an outcome has no queued call
    (the common ending: one round trip saved per workflow)."""
    calls = set(writes.withdraw_calls(view.workflow_id))
    if has_open_calls(view):
        queued = tx.execute("withdraw_calls", {"id": view.workflow_id}).fetchall()
        calls |= {(str(r[0]), str(r[1]), int(r[2])) for r in queued}
    facts = []
    for phase, step, attempt in sorted(calls):
        slot = call_slot(phase, step, attempt, "outcome")
        if view.slot(slot) is None:
            data = {"reason": f"the workflow ended {state} before the call ran"}
            facts.append(NewFact(call_kind(phase, WITHDRAWN), step, attempt, slot, data))
    return facts


_SCHEDULED_PHASE: dict[str, str] = {call_kind(phase, SCHEDULED): phase for phase in PHASE_PREFIX}


def has_open_calls(view: WorkflowView) -> bool:
    """True when some call the view records as scheduled has no outcome yet."""
    return any(
        view.slot(call_slot(_SCHEDULED_PHASE[f.kind], f.step, f.attempt, "outcome")) is None
        for f in view.facts
        if f.kind in _SCHEDULED_PHASE and f.step is not None and f.attempt is not None
    )


def breadcrumb(view: WorkflowView, decision: Decision, elapsed: float) -> NewFact:
    """The `supervisor_ran` fact: what this run saw, decided and why, and how long it took."""
    return NewFact(
        SUPERVISOR_RAN,
        data={
            "run": view.supervisor_runs_this_round() + 1,
            "saw": decision.saw or f"{len(view)} facts up to #{view.last_seq}",
            "decided": decision.describe(),
            "why": decision.why,
            "decide_ms": round(elapsed * 1000, 3),
        },
    )


def next_run_id(workflow_id: str) -> str:
    """The id of the run a workflow continues as: `<id>~2`, then `<id>~3`, ... (fixed, so
    asking twice never starts two)."""
    base, _, number = workflow_id.rpartition("~")
    if base and number.isdigit():
        return f"{base}~{int(number) + 1}"
    return f"{workflow_id}~2"


def terminal_fact(command: Complete | EndCompensated | Fail, round_: int) -> NewFact:
    slot = terminal_slot(round_)
    if isinstance(command, Complete):
        return NewFact(WORKFLOW_COMPLETED, slot=slot, data={"result": command.result})
    if isinstance(command, EndCompensated):
        return NewFact(WORKFLOW_COMPENSATED, slot=slot, data={"reason": command.reason})
    return NewFact(WORKFLOW_FAILED, slot=slot, data={"reason": command.reason})


def dumps(value: Any) -> str:
    """Compact JSON of a plan or an input, as the root row keeps it (the standard
    library's, which keeps an infinite backoff cap as `Infinity`)."""
    return jsoncodec.dumps_plan(value)
