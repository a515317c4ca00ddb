"""The built-in supervisor, `saga` (pure: facts and `now` in, a `Decision` out): run steps
in order, retry passing failures, probe uncertain outcomes, and on a permanent failure or a
cancel undo what took effect, in reverse order. (`guard.guarded` wraps every supervisor.)
"""

from __future__ import annotations

from typing import Any

from steadyhand.core.decisions import (
    CallAgent,
    CancelChild,
    Command,
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
    COMPENSATION,
    COMPENSATION_BEGAN,
    PROBE,
    WAIT_BEGAN,
    WAIT_TIMED_OUT,
)
from steadyhand.core.plans import StepSpec
from steadyhand.core.progress import (
    AGENT_MISSING,
    DONE,
    GAVE_UP,
    IN_FLIGHT,
    NEEDS_PROBE,
    NOT_STARTED,
    PROBE_WAIT,
    PROBING,
    RETRY,
    Progress,
    call_progress,
)
from steadyhand.core.saga_steps import child_of, summarise
from steadyhand.core.slots import compensation_began_slot, wait_slot
from steadyhand.core.view import WorkflowView

RECHECK_SECONDS = 3600.0
"""A safety-net check while waiting on a child or an event without deadline; the child's end
or the event itself wakes the workflow at once, so this only bounds how long a lost wake-up
could go unnoticed."""


def saga(view: WorkflowView, now: float) -> Decision:
    """The built-in saga supervisor (see the module docstring)."""
    progress = {spec.name: _action_progress(view, spec) for spec in view.plan.steps}
    saw = summarise(view, progress)
    began = view.latest(COMPENSATION_BEGAN)
    if began is not None:
        return _compensate(view, now, progress, str(began.get("reason", "")), saw, ())
    cancel = view.latest(CANCEL_REQUESTED)
    if cancel is not None:
        reason = f"cancelled: {cancel.get('reason') or 'no reason given'}"
        return _begin_compensation(view, now, progress, reason, saw)
    return _forward(view, now, progress, saw)


def roll_back(
    view: WorkflowView, now: float, reason: str, saw: str, extra: tuple[Command, ...] = ()
) -> Decision:
    """Begin, or carry on, rolling back every step of `view.plan` that took effect (or may
    have), newest first. Code-first workflows use it with the steps their replay found."""
    progress = {spec.name: _action_progress(view, spec) for spec in view.plan.steps}
    if view.latest(COMPENSATION_BEGAN) is not None:
        return _compensate(view, now, progress, reason, saw, extra)
    return _begin_compensation(view, now, progress, reason, saw, extra)


def effects_in_place(view: WorkflowView) -> list[str]:
    """The steps that took effect, may have, or may still (a call or child still open),
    and are not undone yet."""
    names = []
    for spec in view.plan.steps:
        progress = _action_progress(view, spec)
        child = child_of(view, spec) if spec.child is not None else None
        open_call = spec.action is not None and progress.status in (IN_FLIGHT, NEEDS_PROBE, PROBING)
        running = child is not None and child.state == "running"
        effect = _took_effect(view, spec, progress) or open_call or running
        if effect and not _undone(view, spec):
            names.append(spec.name)
    return names


def _action_progress(view: WorkflowView, spec: StepSpec) -> Progress:
    if spec.action is None:
        return Progress(DONE)  # nothing to call: the step's wait or child decides
    return call_progress(
        view,
        ACTION,
        spec.name,
        spec.retry,
        has_probe=spec.probe is not None,
        probe_policy=spec.probe_policy,
    )


def _took_effect(view: WorkflowView, spec: StepSpec, progress: Progress) -> bool:
    if spec.child is not None:
        child = child_of(view, spec)
        return child is not None and child.state == "completed"
    return spec.action is not None and progress.took_effect


def _results(view: WorkflowView, progress: dict[str, Progress]) -> dict[str, Any]:
    results = {}
    for spec in view.plan.steps:
        if spec.child is not None:
            child = child_of(view, spec)
            if child is not None and child.state == "completed":
                results[spec.name] = child.result
        elif spec.wait_for is not None and view.event(spec.wait_for, spec.sources) is not None:
            event = view.event(spec.wait_for, spec.sources)
            results[spec.name] = event.get("payload")  # type: ignore[union-attr]
        elif spec.action is not None and progress[spec.name].status == DONE:
            results[spec.name] = progress[spec.name].result
    return results


def _action_call(spec: StepSpec, attempt: int, results: dict[str, Any]) -> CallAgent:
    assert spec.action is not None
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
        policy.not_done,
        policy.uncertain,
        spec.heartbeat_timeout,
    )


def _probe_call(spec: StepSpec, number: int) -> CallAgent:
    """Probe number `number` of the step (probes are numbered per step: see core.probing)."""
    assert spec.probe is not None
    return CallAgent(PROBE, spec.name, number, spec.probe, spec.timeout, {})


def _forward(view: WorkflowView, now: float, progress: dict[str, Progress], saw: str) -> Decision:
    results: dict[str, Any] = {}
    for spec in view.plan.steps:
        name = spec.name
        if spec.child is not None:
            child = child_of(view, spec)
            if child is None:
                start = StartChild(name, spec.child, {"input": view.input, "results": results})
                wait = WaitUntil(now + RECHECK_SECONDS)
                return Decision((start, wait), f"{name} is next: starting child {spec.child}", saw)
            if child.state == "running":
                why = f"waiting for child {child.workflow_id} ({spec.child}) to end"
                return Decision((WaitUntil(now + RECHECK_SECONDS),), why, saw)
            if child.state != "completed":
                reason = f"step {name}: child {child.workflow_id} ended {child.state}"
                reason += f" ({child.reason})" if child.reason else ""
                return _begin_compensation(view, now, progress, reason, saw)
            results[name] = child.result
            continue
        step = progress[name]
        if step.status != DONE:
            return _advance_action(view, now, progress, saw, spec, step, results)
        if spec.wait_for is not None:
            event = view.event(spec.wait_for, spec.sources)
            if event is None:
                return _await_event(view, now, progress, saw, spec)
            results[name] = event.get("payload")
            continue
        results[name] = step.result
    return Decision((Complete(results),), "every step succeeded", saw)


def _await_event(
    view: WorkflowView, now: float, progress: dict[str, Progress], saw: str, spec: StepSpec
) -> Decision:
    """Wait for the step's event; the wait starts when first reached and has a deadline."""
    name, event = spec.name, spec.wait_for
    began = view.slot(wait_slot(name, "began"))
    since = began.at if began is not None else now
    record = (
        () if began else (RecordFact(WAIT_BEGAN, {"event": event}, name, wait_slot(name, "began")),)
    )
    if spec.deadline is None:
        why = f"{name} waits for event {event} (no deadline)"
        return Decision((*record, WaitUntil(now + RECHECK_SECONDS)), why, saw)
    deadline = since + spec.deadline
    if now >= deadline:
        reason = f"step {name}: no {event} event within {spec.deadline:g}s"
        timed_out = RecordFact(WAIT_TIMED_OUT, {"event": event}, name, wait_slot(name, "timed_out"))
        return _begin_compensation(view, now, progress, reason, saw, (timed_out,))
    why = f"{name} waits for event {event} until its deadline ({deadline - now:.1f}s left)"
    return Decision((*record, WaitUntil(deadline)), why, saw)


def _advance_action(
    view: WorkflowView,
    now: float,
    progress: dict[str, Progress],
    saw: str,
    spec: StepSpec,
    step: Progress,
    results: dict[str, Any],
) -> Decision:
    """The next move for a step whose action has not succeeded yet."""
    name = spec.name
    if step.status == NOT_STARTED:
        return Decision((_action_call(spec, 1, results),), f"{name} is next: first attempt", saw)
    if step.status == IN_FLIGHT:
        call = _action_call(spec, step.attempt, results)
        return Decision((call,), f"waiting for attempt {step.attempt} of {name}", saw)
    if step.status == NEEDS_PROBE:
        why = (
            f"attempt {step.attempt} of {name} ended without a known outcome; asking the "
            f"remote service what became of it before retrying (probe {step.probe})"
        )
        return Decision((_probe_call(spec, step.probe),), why, saw)
    if step.status == PROBING:
        why = f"waiting for probe {step.probe} of attempt {step.attempt} of {name}"
        return Decision((_probe_call(spec, step.probe),), why, saw)
    if step.status == PROBE_WAIT:
        return _probe_again(spec, step, now, saw, "")
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
        if spec.on_give_up == "fail":
            reason = (
                f"step {name} {step.reason}; stopped without rolling back (on_give_up='fail'). "
                "Fix the cause and `steadyhand retry` this workflow, or cancel it to roll back."
            )
            return Decision((Fail(reason),), reason, saw)
        return _begin_compensation(view, now, progress, f"step {name} {step.reason}", saw)
    raise AssertionError(f"unhandled status {step.status}")


def _probe_again(spec: StepSpec, step: Progress, now: float, saw: str, rolling: str) -> Decision:
    """The probe could not tell yet (the service may still be working on the attempt): ask
    again when its backoff ends, never re-send the attempt meanwhile."""
    assert step.retry_at is not None
    about = f"attempt {step.attempt} of {spec.name}: {step.reason}"
    if rolling:
        about = f"rolling back ({rolling}); first settling {about}"
    if step.retry_at <= now:
        return Decision((_probe_call(spec, step.probe),), f"{about}; asking again", saw)
    why = f"{about}; asking again in {step.retry_at - now:.2f}s (not retrying meanwhile)"
    return Decision((WaitUntil(step.retry_at),), why, saw)


def _begin_compensation(
    view: WorkflowView,
    now: float,
    progress: dict[str, Progress],
    reason: str,
    saw: str,
    extra: tuple[Command, ...] = (),
) -> Decision:
    slot = compensation_began_slot(view.round)
    began = RecordFact(COMPENSATION_BEGAN, {"reason": reason}, slot=slot)
    return _compensate(view, now, progress, reason, saw, (*extra, began))


def _compensate(
    view: WorkflowView,
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
    notes: list[str] = []  # probes that could not tell yet, and when they are asked again
    for spec in plan.steps:
        step = progress[spec.name]
        if spec.child is not None:
            child = child_of(view, spec)
            if child is not None and child.state == "running":
                settling += [CancelChild(spec.name, f"rolling back: {reason}")]
        elif step.status == IN_FLIGHT:
            settling.append(_action_call(spec, step.attempt, results))
        elif step.status in (NEEDS_PROBE, PROBING):
            settling.append(_probe_call(spec, step.probe))
        elif step.status == PROBE_WAIT:  # compensating now could race the first request
            again = _probe_again(spec, step, now, saw, reason)
            settling += again.commands
            notes.append(again.why.split("; ", 1)[1])
    if settling:
        why = f"rolling back ({reason}); first waiting for calls and children still open"
        why += "".join(f"; {note}" for note in notes)
        recheck = WaitUntil(now + RECHECK_SECONDS)
        return Decision((*prefix, *settling, recheck), why, saw)

    to_undo = [spec for spec in plan.steps if _took_effect(view, spec, progress[spec.name])]
    kept = [spec.name for spec in to_undo if spec.compensation is None]
    for spec in reversed(to_undo):
        if spec.compensation is None:
            continue
        undo = call_progress(view, COMPENSATION, spec.name, spec.compensation_retry)
        child = child_of(view, spec)
        done = child.result if child is not None else progress[spec.name].result
        args = {"result": done, "results": results}
        name = spec.name

        def call(attempt: int, spec: StepSpec = spec, args: dict[str, Any] = args) -> CallAgent:
            assert spec.compensation is not None
            policy = spec.compensation_retry
            return CallAgent(
                COMPENSATION,
                spec.name,
                attempt,
                spec.compensation,
                spec.compensation_timeout,
                args,
                policy.permanent,
                policy.transient,
                policy.not_done,
                policy.uncertain,
                spec.heartbeat_timeout,
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


def _undone(view: WorkflowView, spec: StepSpec) -> bool:
    return call_progress(view, COMPENSATION, spec.name, spec.compensation_retry).status == DONE
