"""Supervisors: pure functions from a workflow's facts and `now` to a `Decision`.

`guarded` wraps any supervisor with the rules every workflow obeys (an ended workflow
stays ended; a runaway loop is stopped by the run budget). `saga` is the built-in
supervisor: run steps in order, retry passing failures, probe uncertain outcomes, and on a
permanent failure or a cancel undo what took effect, in reverse order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .decisions import (
    CallAgent,
    Command,
    Complete,
    Decision,
    EndCompensated,
    Fail,
    RecordFact,
    WaitUntil,
)
from .facts import (
    ACTION,
    CANCEL_REQUESTED,
    COMPENSATION,
    COMPENSATION_BEGAN,
    PROBE,
    WorkflowFacts,
)
from .model import StepSpec
from .progress import (
    AGENT_MISSING,
    DONE,
    GAVE_UP,
    IN_FLIGHT,
    NEEDS_PROBE,
    NOT_STARTED,
    PROBING,
    RETRY,
    Progress,
    call_progress,
)

Supervisor = Callable[[WorkflowFacts, float], Decision]
"""The signature of every supervisor: facts and the current time in, a decision out."""


def guarded(supervisor: Supervisor, view: WorkflowFacts, now: float) -> Decision:
    """Apply the rules every supervisor obeys, then ask `supervisor` what to do."""
    if view.terminal is not None:
        return Decision(why=f"the workflow already ended {view.state}; nothing to do")
    runs = view.supervisor_runs_this_round()
    budget = view.plan.max_supervisor_runs
    if runs >= budget:
        reason = (
            f"the supervisor ran {runs} times (the budget is {budget}) without ending the "
            "workflow; stopped to avoid a runaway loop. Inspect `steadyhand explain`, fix the "
            "cause, then `steadyhand retry` it."
        )
        return Decision((Fail(reason),), why=reason, saw=f"{runs} supervisor runs")
    return supervisor(view, now)


def saga(view: WorkflowFacts, now: float) -> Decision:
    """The built-in saga supervisor (see the module docstring)."""
    progress = {spec.name: _action_progress(view, spec) for spec in view.plan.steps}
    saw = _summarise(view, progress)
    began = view.latest(COMPENSATION_BEGAN)
    if began is not None:
        return _compensate(view, now, progress, str(began.get("reason", "")), saw, ())
    cancel = view.latest(CANCEL_REQUESTED)
    if cancel is not None:
        reason = f"cancelled: {cancel.get('reason') or 'no reason given'}"
        return _begin_compensation(view, now, progress, reason, saw)
    return _forward(view, now, progress, saw)


def _action_progress(view: WorkflowFacts, spec: StepSpec) -> Progress:
    return call_progress(view, ACTION, spec.name, spec.retry, has_probe=spec.probe is not None)


def _results(view: WorkflowFacts, progress: dict[str, Progress]) -> dict[str, Any]:
    return {
        s.name: progress[s.name].result for s in view.plan.steps if progress[s.name].status == DONE
    }


def _action_call(spec: StepSpec, attempt: int, results: dict[str, Any]) -> CallAgent:
    policy = spec.retry
    args = {"results": results}
    return CallAgent(
        ACTION,
        spec.name,
        attempt,
        spec.action,
        spec.timeout,
        args,
        policy.permanent,
        policy.transient,
    )


def _probe_call(spec: StepSpec, attempt: int) -> CallAgent:
    assert spec.probe is not None
    return CallAgent(PROBE, spec.name, attempt, spec.probe, spec.timeout, {})


def _forward(view: WorkflowFacts, now: float, progress: dict[str, Progress], saw: str) -> Decision:
    results: dict[str, Any] = {}
    for spec in view.plan.steps:
        step = progress[spec.name]
        name = spec.name
        if step.status == DONE:
            results[name] = step.result
            continue
        if step.status == NOT_STARTED:
            call = _action_call(spec, 1, results)
            return Decision((call,), f"{name} is next: first attempt", saw)
        if step.status == IN_FLIGHT:
            call = _action_call(spec, step.attempt, results)
            return Decision((call,), f"waiting for attempt {step.attempt} of {name}", saw)
        if step.status == NEEDS_PROBE:
            why = (
                f"attempt {step.attempt} of {name} ended without a known outcome; asking the "
                "remote service what became of it before retrying"
            )
            return Decision((_probe_call(spec, step.attempt),), why, saw)
        if step.status == PROBING:
            why = f"waiting for the probe of attempt {step.attempt} of {name}"
            return Decision((_probe_call(spec, step.attempt),), why, saw)
        if step.status == RETRY:
            assert step.retry_at is not None
            used = f"{step.used} of {spec.retry.max_attempts} attempts used"
            if step.retry_at <= now:
                call = _action_call(spec, step.attempt + 1, results)
                why = f"{name} failed for a passing reason ({step.reason}); {used}; retrying"
                return Decision((call,), why, saw)
            why = (
                f"{name} failed for a passing reason ({step.reason}); {used}; "
                f"backing off {step.retry_at - now:.2f}s"
            )
            return Decision((WaitUntil(step.retry_at),), why, saw)
        if step.status == AGENT_MISSING:
            reason = (
                f"step {name}: {step.reason}. Deploy code that registers the agent, then "
                "`steadyhand retry` this workflow (or cancel it to roll back)."
            )
            return Decision((Fail(reason),), reason, saw)
        if step.status == GAVE_UP:
            reason = f"step {name} {step.reason}"
            return _begin_compensation(view, now, progress, reason, saw)
        raise AssertionError(f"unhandled status {step.status}")
    return Decision((Complete(results),), "every step succeeded", saw)


def _begin_compensation(
    view: WorkflowFacts, now: float, progress: dict[str, Progress], reason: str, saw: str
) -> Decision:
    began = RecordFact(
        COMPENSATION_BEGAN, {"reason": reason}, slot=f"compensation_began:{view.round}"
    )
    return _compensate(view, now, progress, reason, saw, (began,))


def _compensate(
    view: WorkflowFacts,
    now: float,
    progress: dict[str, Progress],
    reason: str,
    saw: str,
    prefix: tuple[Command, ...],
) -> Decision:
    """Undo, newest first, every step that took effect; first settle calls still open."""
    plan = view.plan
    results = _results(view, progress)
    settling: list[Command] = []
    for spec in plan.steps:
        step = progress[spec.name]
        if step.status == IN_FLIGHT:
            settling.append(_action_call(spec, step.attempt, results))
        elif step.status in (NEEDS_PROBE, PROBING):
            settling.append(_probe_call(spec, step.attempt))
    if settling:
        why = f"rolling back ({reason}); first waiting for calls still open to settle"
        return Decision((*prefix, *settling), why, saw)

    to_undo = [spec for spec in plan.steps if progress[spec.name].took_effect]
    kept = [spec.name for spec in to_undo if spec.compensation is None]
    for spec in reversed(to_undo):
        if spec.compensation is None:
            continue
        undo = call_progress(view, COMPENSATION, spec.name, spec.compensation_retry)
        args = {"result": progress[spec.name].result, "results": results}
        name = spec.name

        def call(attempt: int, spec: StepSpec = spec, args: dict[str, Any] = args) -> CallAgent:
            assert spec.compensation is not None
            return CallAgent(
                COMPENSATION, spec.name, attempt, spec.compensation, spec.compensation_timeout, args
            )

        if undo.status == DONE:
            continue
        if undo.status == NOT_STARTED:
            why = f"rolling back ({reason}); compensating {name}"
            return Decision((*prefix, call(1)), why, saw)
        if undo.status == IN_FLIGHT:
            why = f"rolling back ({reason}); waiting for compensation {undo.attempt} of {name}"
            return Decision((*prefix, call(undo.attempt)), why, saw)
        if undo.status == RETRY:
            assert undo.retry_at is not None
            if undo.retry_at <= now:
                why = f"rolling back ({reason}); undoing {name} failed ({undo.reason}); retrying"
                return Decision((*prefix, call(undo.attempt + 1)), why, saw)
            why = f"rolling back ({reason}); undoing {name} failed ({undo.reason}); backing off"
            return Decision((*prefix, WaitUntil(undo.retry_at)), why, saw)
        still = [s.name for s in to_undo if s.compensation is not None and not _undone(view, s)]
        fail = (
            f"could not compensate {name} ({undo.reason}) while rolling back ({reason}). "
            f"Still in effect: {', '.join(still)}. Fix the cause and `steadyhand retry` this "
            "workflow to resume the compensation, or settle it by hand."
        )
        return Decision((*prefix, Fail(fail)), fail, saw)
    ending = f"rolled back ({reason})"
    if kept:
        ending += f"; kept {', '.join(kept)} (no compensation declared)"
    return Decision((*prefix, EndCompensated(ending)), ending, saw)


def _undone(view: WorkflowFacts, spec: StepSpec) -> bool:
    return call_progress(view, COMPENSATION, spec.name, spec.compensation_retry).status == DONE


def _summarise(view: WorkflowFacts, progress: dict[str, Progress]) -> str:
    parts = []
    for name, step in progress.items():
        label = step.status.replace("_", " ")
        if step.attempt and step.status != DONE:
            label += f" (attempt {step.attempt})"
        parts.append(f"{name}: {label}")
    return f"{len(view)} facts up to #{view.last_seq}; " + ", ".join(parts)
