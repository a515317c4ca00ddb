"""After a rollback: a call that was in flight when the workflow ended `compensated` may
still succeed. Its effect is then undone too (its compensation runs, with its own retry
policy), so "compensated" keeps meaning that nothing done is left in effect.

Only successes recorded after the terminal fact count: a step the supervisor chose to keep
stays kept.
"""

from __future__ import annotations

from typing import Any

from steadyhand.core.decisions import CallAgent, Decision, RecordFact, WaitUntil
from steadyhand.core.facts import (
    ACTION,
    COMPENSATION,
    LATE_UNDO_FAILED,
    OUTCOME_REPORTED_LATE,
    SUCCEEDED,
    WORKFLOW_COMPENSATED,
    call_kind,
)
from steadyhand.core.plans import StepSpec
from steadyhand.core.progress import DONE, IN_FLIGHT, NOT_STARTED, RETRY, call_progress
from steadyhand.core.slots import late_undo_failed_slot
from steadyhand.core.view import WorkflowView


def late_success(view: WorkflowView, step: str, after: int) -> Any:
    """The result of a success of `step` recorded after seq `after`, or None."""
    succeeded = call_kind(ACTION, SUCCEEDED)
    for fact in view.facts:
        if fact.seq <= after or fact.step != step:
            continue
        if fact.kind == succeeded:
            return {"result": fact.get("result")}
        late = fact.kind == OUTCOME_REPORTED_LATE and fact.get("phase") == ACTION
        if late and fact.get("outcome") == SUCCEEDED:
            return {"result": fact.get("result")}
    return None


def undo_late_successes(view: WorkflowView, now: float) -> Decision | None:
    """Compensate steps that succeeded after the workflow ended `compensated`; None when
    there is nothing (more) to do."""
    end = view.terminal
    if end is None or end.kind != WORKFLOW_COMPENSATED:
        return None
    for spec in view.plan.steps:
        if spec.compensation is None or spec.action is None:
            continue
        late = late_success(view, spec.name, end.seq)
        if late is None:
            continue
        decision = _next_undo(view, spec, late["result"], now)
        if decision is not None:
            return decision
    return None


def _next_undo(view: WorkflowView, spec: StepSpec, result: Any, now: float) -> Decision | None:
    assert spec.compensation is not None
    undo = call_progress(view, COMPENSATION, spec.name, spec.compensation_retry)
    why = f"{spec.name} succeeded after the workflow was rolled back; undoing it"

    def call(attempt: int) -> CallAgent:
        assert spec.compensation is not None
        args = {"result": result, "results": {}}
        return CallAgent(
            COMPENSATION, spec.name, attempt, spec.compensation, spec.compensation_timeout, args
        )

    if undo.status == DONE:
        return None
    if undo.status == NOT_STARTED:
        return Decision((call(1),), why)
    if undo.status == IN_FLIGHT:
        return Decision((call(undo.attempt),), why)
    if undo.status == RETRY and undo.retry_at is not None:
        if undo.retry_at <= now:
            return Decision((call(undo.attempt + 1),), f"{why}; retrying ({undo.reason})")
        return Decision((WaitUntil(undo.retry_at),), f"{why}; backing off ({undo.reason})")
    slot = late_undo_failed_slot(spec.name)
    if view.slot(slot) is not None:
        return None
    reason = (
        f"{spec.name} succeeded after the workflow was rolled back and could not be undone "
        f"({undo.reason or undo.status}); it is still in effect: settle it by hand"
    )
    return Decision((RecordFact(LATE_UNDO_FAILED, {"reason": reason}, spec.name, slot),), reason)
