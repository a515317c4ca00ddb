"""The code-first supervisor: the workflow function *is* the supervisor.

To decide, replay the function over the workflow's facts (`core/replay.py`) and turn how the
replay ended into a `Decision`: blocked → the calls, waits and children it awaits; returned
→ complete; an uncaught `StepFailed` / `WaitTimedOut` or a cancel → roll back with the
saga's own compensation (over the steps the replay found); any other exception → a bug in
workflow code: end `failed` with the traceback, nothing compensated (`steadyhand retry`
replays it with fixed code, `cancel` rolls it back).
"""

from __future__ import annotations

import dataclasses
import traceback
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steadyhand.core.decisions import CallAgent, Command, Complete, Decision, Fail, WaitUntil
from steadyhand.core.errors import InputError
from steadyhand.core.facts import (
    CANCEL_REQUESTED,
    COMPENSATION,
    COMPENSATION_BEGAN,
    PATCH_RECORDED,
)
from steadyhand.core.plans import StepSpec, encode_json
from steadyhand.core.replay import Ending, Halt, Replay
from steadyhand.core.saga import roll_back
from steadyhand.core.view import WorkflowView
from steadyhand.core.workflow import ChildCall, StepCall, Workflow

SUPERVISOR = "code"
"""The name code-first plans give as their supervisor (one for every code-first workflow)."""

MAX_TRACEBACK_CHARS = 4000
_CORE = str(Path(__file__).parent)


@dataclass(frozen=True)
class CodeWorkflow:
    """A registered workflow function; `takes_input`: called as fn(wf, input), else fn(wf).

    `typed`, when the input parameter is annotated with a model or dataclass, turns the
    stored input (plain JSON data) into that type afresh for every replay."""

    name: str
    fn: Callable[..., Coroutine[Any, Any, Any]]
    takes_input: bool = True
    typed: Callable[[Any], Any] | None = None

    def start(self, wf: Workflow) -> Coroutine[Any, Any, Any]:
        if not self.takes_input:
            return self.fn(wf)
        return self.fn(wf, wf.input if self.typed is None else self.typed(wf.input))


class CodeFirst:
    """The supervisor registered as `code`: finds the function by the plan's workflow name."""

    def __init__(
        self, workflows: Mapping[str, CodeWorkflow], agent_names: Callable[[Any], str]
    ) -> None:
        self.workflows = workflows
        self.agent_names = agent_names

    def __call__(self, view: WorkflowView, now: float) -> Decision:
        workflow = self.workflows.get(view.plan.workflow)
        if workflow is None:
            reason = (
                f"no code-first workflow function {view.plan.workflow!r} is registered in this "
                "deploy; deploy code that registers it (@app.workflow()), then "
                "`steadyhand retry` this workflow"
            )
            return Decision((Fail(reason),), reason)
        return decide(workflow, view, now, self.agent_names)


def decide(
    workflow: CodeWorkflow, view: WorkflowView, now: float, agent_names: Callable[[Any], str]
) -> Decision:
    """Replay `workflow` over `view` at `now` and decide (see the module docstring)."""
    replay = Replay(view, now, agent_names)
    try:
        ending = replay.run(workflow.start)
        replay.check_complete()
    except Halt as halt:
        return Decision((Fail(halt.reason),), halt.reason, summary(view, replay))
    saw = summary(view, replay)
    # Rolling back still records `wf.patched` answers: later replays must take the same path.
    patches = tuple(r for r in replay.records if r.kind == PATCH_RECORDED)
    began = view.latest(COMPENSATION_BEGAN)
    if began is not None:
        return _roll_back(view, replay, now, str(began.get("reason", "")), saw, patches)
    cancel = view.latest(CANCEL_REQUESTED)
    if cancel is not None:
        reason = f"cancelled: {cancel.get('reason') or 'no reason given'}"
        return _roll_back(view, replay, now, reason, saw, patches)
    records: tuple[Command, ...] = tuple(replay.records)
    if ending.kind == "blocked":
        return Decision((*records, *_merged(ending.commands)), _awaiting(ending), saw)
    if ending.kind == "continued":
        return _continued(view, records, ending.value, saw)
    if ending.kind == "returned":
        try:
            encode_json(ending.value, f"the result of workflow {view.name}")
        except InputError as exc:
            reason = f"{exc} (a bug in the workflow code; fix it, then `steadyhand retry`)"
            return Decision((Fail(reason),), reason, saw)
        return Decision((*records, Complete(ending.value)), "the workflow function returned", saw)
    assert ending.error is not None
    if ending.kind == "raised":
        return _roll_back(view, replay, now, str(ending.error), saw, records)
    reason = bug_reason(view.name, ending.error)
    return Decision((Fail(reason),), reason.split("\n", 1)[0], saw)


def _continued(
    view: WorkflowView, records: tuple[Command, ...], next_input: Any, saw: str
) -> Decision:
    """`wf.continue_as_new(input)`: end this run, and start the next in the same commit."""
    if view.parent_id is not None:
        reason = (
            f"workflow {view.name} called wf.continue_as_new, but it runs as a child of "
            f"{view.parent_id}, which waits for this run to end: continue the parent instead "
            "(a bug in the workflow code; fix it, then `steadyhand retry`)"
        )
        return Decision((Fail(reason),), reason, saw)
    try:
        encode_json(next_input, f"the input of the next run of {view.name}")
    except InputError as exc:
        reason = f"{exc} (a bug in the workflow code; fix it, then `steadyhand retry`)"
        return Decision((Fail(reason),), reason, saw)
    command = Complete(continue_as_new=True, next_input=next_input)
    return Decision((*records, command), "the workflow continues as a new run", saw)


def bug_reason(name: str, error: BaseException) -> str:
    """Why a workflow whose code raised ended `failed`, with the traceback of its own frames."""
    summary = traceback.TracebackException.from_exception(error)
    frames = [f for f in summary.stack if not f.filename.startswith(_CORE)]
    lines = traceback.StackSummary.from_list(frames).format()
    lines += list(summary.format_exception_only())
    text = "".join(["Traceback (most recent call last):\n", *lines])
    if len(text) > MAX_TRACEBACK_CHARS:
        text = "…" + text[-MAX_TRACEBACK_CHARS:]
    return (
        f"workflow {name} raised {type(error).__name__}: {error} — a bug in the workflow code; "
        "nothing was compensated. Deploy a fix, then `steadyhand retry` this workflow to replay "
        f"it with the new code, or `steadyhand cancel` it to roll back.\n{text}"
    )


def _roll_back(
    view: WorkflowView,
    replay: Replay,
    now: float,
    reason: str,
    saw: str,
    extra: tuple[Command, ...],
) -> Decision:
    """The saga's rollback over the steps and children this replay found, in their order."""
    specs: list[StepSpec] = []
    inputs: dict[str, Any] = {}
    for name, request in replay.requested.items():
        if isinstance(request, StepCall):
            specs.append(
                StepSpec(
                    name,
                    action=request.agent,
                    compensation=request.compensation,
                    probe=request.probe,
                    retry=request.retry,
                    timeout=request.timeout,
                    compensation_retry=request.compensation_retry,
                    compensation_timeout=request.timeout,
                    heartbeat_timeout=request.heartbeat_timeout,
                )
            )
            inputs[name] = request.input
        elif isinstance(request, ChildCall):
            specs.append(StepSpec(name, child=request.workflow))
    plan = dataclasses.replace(view.plan, steps=tuple(specs))
    decision = roll_back(dataclasses.replace(view, plan=plan), now, reason, saw, extra)
    commands = tuple(_with_step_input(command, inputs) for command in decision.commands)
    return Decision(commands, decision.why, decision.saw)


def _with_step_input(command: Command, inputs: Mapping[str, Any]) -> Command:
    """A code-first agent sees its step's own input; a compensation also the step's result."""
    if not isinstance(command, CallAgent):
        return command
    args: dict[str, Any] = {"input": inputs.get(command.step)}
    if command.phase == COMPENSATION:
        args["result"] = command.args.get("result")
    return dataclasses.replace(command, args=args)


def _merged(commands: tuple[Command, ...]) -> tuple[Command, ...]:
    """Each call once (a request awaited twice asks twice), and one wake-up: the earliest."""
    seen: set[tuple[Any, ...]] = set()
    kept: list[Command] = []
    wake: float | None = None
    for command in commands:
        if isinstance(command, WaitUntil):
            wake = command.at if wake is None else min(wake, command.at)
            continue
        if isinstance(command, CallAgent):
            key: tuple[Any, ...] = ("call", command.phase, command.step, command.attempt)
        else:
            key = ("other", repr(command))
        if key not in seen:
            seen.add(key)
            kept.append(command)
    if wake is not None:
        kept.append(WaitUntil(wake))
    return tuple(kept)


def _awaiting(ending: Ending) -> str:
    shown = list(ending.why[:8])
    more = len(ending.why) - len(shown)
    text = "; ".join(shown) + (f"; and {more} more" if more > 0 else "")
    return ("awaiting side by side: " if len(ending.why) > 1 else "awaiting ") + text


def summary(view: WorkflowView, replay: Replay) -> str:
    """What the run saw: the facts, and where each step the replay reached stands."""
    items = list(replay.statuses.items())
    shown = items[-12:]
    parts = [f"{name}: {status}" for name, status in shown]
    if len(items) > len(shown):
        parts.insert(0, f"… {len(items) - len(shown)} earlier")
    head = f"{len(view)} facts up to #{view.last_seq}; replay reached {len(items)} step(s)"
    return head + (": " + ", ".join(parts) if parts else "")
