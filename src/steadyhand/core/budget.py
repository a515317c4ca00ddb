"""What a workflow may spend, and what happens when it has spent it: the supervisor's run
budget and the cap on the events one workflow holds.

An event a saga does not wait for is recorded but wakes nobody, so a flood of them costs no
supervisor run; the cap bounds what a flood can store. When the run budget does run out, a
saga with effects in place begins compensation (with a fresh budget of the same size for
it) instead of stopping half-done; it ends `failed` only when the compensation cannot finish
within that budget either. Pure: facts in, a decision or a message out.
"""

from __future__ import annotations

from steadyhand.core.decisions import Decision, Fail
from steadyhand.core.facts import EVENT_RECEIVED, SUPERVISOR_RAN
from steadyhand.core.plans import Plan
from steadyhand.core.saga import effects_in_place, roll_back
from steadyhand.core.slots import compensation_began_slot
from steadyhand.core.view import WorkflowView

SAGA = "saga"


def awaits(view: WorkflowView, event: str) -> bool:
    """Whether recording `event` may change what the workflow decides (so it must wake)."""
    return awaited_by(view.plan, event, view.event(event) is not None)


def awaited_by(plan: Plan, event: str, arrived: bool) -> bool:
    """`awaits` from the plan and whether an event of that name arrived before.

    A saga reads only the first arrival of each event one of its steps waits for; any other
    supervisor may read any event, so for it every event counts.
    """
    if plan.supervisor != SAGA:
        return True
    waiting = [spec for spec in plan.steps if spec.wait_for == event]
    if any(spec.sources is not None for spec in waiting):
        return True  # an earlier arrival from another sender does not count: look again
    return not arrived and bool(waiting)


def event_refusal(view: WorkflowView, event: str) -> str | None:
    """Why `event` must be refused (the workflow holds its cap of events), or None."""
    held = view.count(EVENT_RECEIVED)
    return refuse_event(view.plan, view.workflow_id, event, held, awaits(view, event))


def refuse_event(plan: Plan, workflow_id: str, event: str, held: int, awaited: bool) -> str | None:
    """Why an event must be refused when the workflow holds `held` events, or None.

    An event a saga still waits for is always accepted: a flood must not lock out the one
    event that matters (there are at most as many as the plan has steps).
    """
    if plan.supervisor == SAGA and awaited:
        return None
    if held < plan.max_events:
        return None
    return (
        f"workflow {workflow_id} already holds {held} events, its limit (max_events="
        f"{plan.max_events}); event {event!r} was not recorded. Send fewer events to one "
        "workflow, or raise max_events on its definition."
    )


def over_budget(view: WorkflowView, now: float) -> Decision | None:
    """The decision when the run budget is spent, or None while there is budget left."""
    runs = view.supervisor_runs_this_round()
    budget = view.plan.max_supervisor_runs
    if runs < budget:
        return None
    stopped = (
        f"the supervisor ran {runs} times (the budget is {budget}) without ending the "
        "workflow; stopped to avoid a runaway loop"
    )
    if view.plan.supervisor == SAGA:
        began = view.slot(compensation_began_slot(view.round))
        if began is None and effects_in_place(view):
            why = f"{stopped}; rolling back what took effect"
            return roll_back(view, now, why, f"{runs} supervisor runs")
        if began is not None:
            since = sum(1 for f in view.facts if f.kind == SUPERVISOR_RAN and f.seq > began.seq)
            if since < budget:
                return None  # the compensation has a budget of its own
            stopped = (
                f"the supervisor ran {since} times while rolling back (the budget is {budget}) "
                "without finishing the compensation"
            )
    reason = f"{stopped}. Inspect `steadyhand explain`, fix the cause, then `steadyhand retry` it."
    return Decision((Fail(reason),), why=reason, saw=f"{runs} supervisor runs")
