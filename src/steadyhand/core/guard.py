"""The rules every supervisor obeys, whatever its kind: a workflow that ended decides
nothing (except undoing a step that succeeded after it was rolled back), a runaway loop is
stopped by the run budget, a supervisor that raises or returns a decision that cannot be
applied ends the workflow `failed` with the reason, and a call to a service whose circuit
is open waits instead of spending an attempt."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from steadyhand.core import deadlines
from steadyhand.core.budget import over_budget
from steadyhand.core.circuit import HELD
from steadyhand.core.decisions import (
    CallAgent,
    Command,
    Decision,
    Fail,
    RecordFact,
    WaitUntil,
)
from steadyhand.core.facts import (
    ATTEMPT_DEFERRED,
    CANCEL_REQUESTED,
)
from steadyhand.core.late import undo_late_successes
from steadyhand.core.slots import call_slot, deferred_slot
from steadyhand.core.validate import problems, raised, refused
from steadyhand.core.view import WorkflowView

HOLD_RECHECK = 3600.0
"""How long a call held back by an operator's hold waits before its supervisor looks again;
releasing the service wakes it at once."""

Supervisor = Callable[[WorkflowView, float], Decision]
"""The signature of every supervisor: facts and the current time in, a decision out."""


def deferral(view: WorkflowView, call: CallAgent, now: float) -> Decision | None:
    """Hold a new call back while its service's circuit is open (it costs no attempt).

    Recorded once per opening as `attempt_deferred`, with the circuit's reason, so explain
    can say: waited: flights circuit open since 02:13:07 (41 of the last 50 attempts...).
    """
    service = view.service_of(call.agent)
    gate = view.services.get(service) if service else None
    if gate is None or not gate.blocks(now):
        return None
    since = datetime.fromtimestamp(gate.since or now, tz=UTC).strftime("%H:%M:%S")
    if gate.circuit == HELD:
        why = f"waited: {service} held by an operator since {since} ({gate.reason})"
        until = now + HOLD_RECHECK  # the release wakes it; this is the safety net
    else:
        why = f"waited: {service} circuit open since {since} ({gate.reason})"
        until = float(gate.open_until or now)
    slot = deferred_slot(call.phase, call.step, call.attempt, gate.since)
    data = {
        "service": service,
        "phase": call.phase,
        "attempt": call.attempt,
        "until": until,
        "reason": why,
    }
    record = RecordFact(ATTEMPT_DEFERRED, data, call.step, slot, service=service)
    return Decision((record, WaitUntil(until)), why)


def guarded(
    supervisor: Supervisor, view: WorkflowView, now: float, name: str | None = None
) -> Decision:
    """Apply the rules every supervisor obeys, then ask `supervisor` what to do.

    An exception raised by `supervisor`, or a decision `validate.problems` finds wrong, is
    never raised to the caller: it becomes a decision that records it and ends the
    workflow `failed` (`validate.raised`, `validate.refused`)."""
    if view.terminal is not None:
        late = undo_late_successes(view, now)
        if late is not None:
            return late
        return Decision(why=f"the workflow already ended {view.state}; nothing to do")
    if view.undecodable is not None and not _cancelled_this_round(view):
        reason = (
            f"this workflow cannot be loaded: {view.undecodable}. Its facts are kept as they "
            "are; cancel it to roll back what took effect, or settle it by hand (see "
            "`steadyhand explain`)."
        )
        return Decision((Fail(reason),), why=reason, saw="an undecodable fact")
    spent = over_budget(view, now)
    if spent is not None:
        return _defer_new_calls(view, spent, now)
    expired = deadlines.passed(view, now)
    if expired is not None:
        return expired
    label = name or view.plan.supervisor
    try:
        decision = supervisor(view, now)
    except Exception as exc:
        return raised(exc, label)
    found = problems(decision)
    if found:
        return refused(decision, found, label)
    return deadlines.with_wakeup(view, _defer_new_calls(view, decision, now), now)


def _cancelled_this_round(view: WorkflowView) -> bool:
    """Whether an operator asked this round to roll back: then a workflow with an
    undecodable fact is compensated from the rest of its facts instead of failed again."""
    cancel = view.latest(CANCEL_REQUESTED)
    return cancel is not None and cancel.seq > view.round_start


def _defer_new_calls(view: WorkflowView, decision: Decision, now: float) -> Decision:
    """Replace calls not yet scheduled to a service whose circuit is open by a wait."""
    if not view.services:
        return decision
    kept: list[Command] = []
    waits: list[Decision] = []
    for command in decision.commands:
        if isinstance(command, CallAgent):
            slot = call_slot(command.phase, command.step, command.attempt, "scheduled")
            held = None if view.slot(slot) is not None else deferral(view, command, now)
            if held is not None:
                waits.append(held)
                continue
        kept.append(command)
    if not waits:
        return decision
    extra = tuple(c for w in waits for c in w.commands)
    return Decision((*kept, *extra), waits[0].why, decision.saw)
