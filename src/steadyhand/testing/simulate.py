"""Run a workflow in-process, against fake agents, on a virtual clock.

The simulator plays the engine's part in memory: it asks the workflow's supervisor (the same
pure function a worker runs, behind the same guard), applies the decision the way the engine
does (facts by slot, calls, wake-ups, children), performs the calls with the worker's own
rules for what counts as a success, a passing or a permanent failure, and jumps the clock
to the next wake-up when nothing else can happen, so sleeps, backoffs and deadlines pass
instantly. It also checks, on every decision, that no call that already has an outcome is
asked for again and that attempt numbers only ever grow by one.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

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
    EVENT_RECEIVED,
    PROBE,
    SCHEDULED,
    SUPERVISOR_RAN,
    TERMINAL_STATES,
    TIMED_OUT,
    WORKFLOW_COMPENSATED,
    WORKFLOW_COMPLETED,
    WORKFLOW_FAILED,
    WORKFLOW_STARTED,
    Fact,
    call_kind,
    call_slot,
    terminal_slot,
)
from steadyhand.core.guard import guarded
from steadyhand.core.plans import Plan
from steadyhand.core.records import Task
from steadyhand.core.slots import PARENT_CANCEL, child_cancel_slot, child_slot
from steadyhand.core.view import ChildState, WorkflowView
from steadyhand.define.agents import Agent
from steadyhand.define.app import App
from steadyhand.runtime.calls import perform
from steadyhand.testing.results import Call, CallTimedOut, Event, Run

START_AT = 1_700_000_000.0
"""Where the virtual clock starts (a fixed Unix time, so runs are reproducible)."""


@dataclass
class _Flow:
    id: str
    name: str
    input: Any
    plan: Plan
    created_at: float
    parent: str | None = None
    facts: list[Fact] = field(default_factory=list)
    wake_at: float | None = None
    due: bool = True
    pending: list[CallAgent] = field(default_factory=list)

    def slots(self) -> dict[str, Fact]:
        return {f.slot: f for f in self.facts if f.slot is not None}


class Simulator:
    """Runs workflows of `app` in memory (see the module docstring).

    `agents` replaces registered agents by name or function with fakes (plain functions of a
    `Context`; raise `PermanentError`, `TransientError`, `OutcomeUnknown` or `CallTimedOut`
    to stand for failures). Agents not replaced run for real.
    """

    def __init__(
        self,
        app: App,
        agents: Mapping[str | Callable[..., Any], Callable[..., Any]] | None = None,
        *,
        start_at: float = START_AT,
        max_decisions: int = 100_000,
    ) -> None:
        self.app = app
        self.fakes = {app.agents.name_of(k): v for k, v in (agents or {}).items()}
        self.start_at = start_at
        self.max_decisions = max_decisions

    def run(
        self,
        name: str,
        input: Any = None,
        *,
        events: Iterable[Event] = (),
        workflow_id: str = "wf-test",
        cancel_after: float | None = None,
    ) -> Run:
        """Run workflow `name` with `input` until it ends (or can make no more progress)."""
        now = self.start_at
        flows: dict[str, _Flow] = {}
        root = self._create(flows, workflow_id, name, input, None, now)
        waiting = sorted(events, key=lambda e: e.after)
        if cancel_after is not None:
            waiting.append(Event("", {"cancel": True}, cancel_after))
            waiting.sort(key=lambda e: e.after)
        decisions: list[Decision] = []
        calls: list[Call] = []
        violations: list[str] = []
        while True:
            for flow in sorted(flows.values(), key=lambda f: f.id):
                if flow.due and _ended(flow) is None:
                    if len(decisions) >= self.max_decisions:
                        raise RuntimeError(f"more than {self.max_decisions} decisions")
                    decisions.append(self._decide(flows, flow, now, violations))
                flow.due = False
            running = [(flow, call) for flow in flows.values() for call in flow.pending]
            if running:
                for flow, call in running:
                    flow.pending.remove(call)
                    calls.append(self._perform(flow, call, now))
                    flow.due = True
                continue
            if any(f.due and _ended(f) is None for f in flows.values()):
                continue  # a child ended (or was cancelled) after its parent's turn
            if _ended(root) is not None and all(_ended(f) is not None for f in flows.values()):
                break
            times = [f.wake_at for f in flows.values() if f.wake_at is not None and not _ended(f)]
            times += [self.start_at + e.after for e in waiting]
            if not times:
                break  # nothing can happen any more: the run is stuck
            now = max(now, min(times))
            while waiting and self.start_at + waiting[0].after <= now:
                event = waiting.pop(0)
                if event.name == "" and isinstance(event.payload, dict):
                    data = {"reason": "cancelled in the simulation", "by": "test"}
                    _append(root, CANCEL_REQUESTED, now, data=data)
                else:
                    _append(root, EVENT_RECEIVED, now, event.name, data={"payload": event.payload})
                root.due = True
            for flow in flows.values():
                if flow.wake_at is not None and flow.wake_at <= now:
                    flow.wake_at, flow.due = None, True
        end = _ended(root)
        state = TERMINAL_STATES[end.kind] if end is not None else "stuck"
        view = self._view(flows, root)
        result = end.get("result") if end is not None else None
        reason = end.get("reason") if end is not None else "no decision, call or wake-up left"
        return Run(
            root.id, state, result, reason, view, decisions, calls, violations, now - self.start_at
        )

    # -- the engine's part ------------------------------------------------------------------
    def _create(
        self, flows: dict[str, _Flow], wid: str, name: str, input: Any, parent: str | None,
        now: float,
    ) -> _Flow:  # fmt: skip
        flow = _Flow(wid, name, input, self.app.plan(name), now, parent)
        flows[wid] = flow
        _append(flow, WORKFLOW_STARTED, now, slot="started")
        return flow

    def _view(self, flows: dict[str, _Flow], flow: _Flow) -> WorkflowView:
        children = {}
        for fact in flow.facts:
            if fact.kind != CHILD_STARTED:
                continue
            cid = str(fact.get("child_id"))
            child = flows.get(cid)
            end = _ended(child) if child is not None else None
            if fact.get("error"):
                children[cid] = ChildState(cid, "failed", reason=str(fact.get("error")))
            elif end is None:
                children[cid] = ChildState(cid, "running")
            else:
                state = TERMINAL_STATES[end.kind]
                children[cid] = ChildState(cid, state, end.get("result"), end.get("reason"))
        # Fresh copies, as a store read gives: code that changes a result changes no fact.
        facts = tuple(dataclasses.replace(f, data=copy.deepcopy(f.data)) for f in flow.facts)
        return WorkflowView(
            flow.id, flow.name, copy.deepcopy(flow.input), flow.plan, flow.created_at, facts,
            flow.parent, children,
        )  # fmt: skip

    def _decide(
        self, flows: dict[str, _Flow], flow: _Flow, now: float, violations: list[str]
    ) -> Decision:
        view = self._view(flows, flow)
        supervisor = self.app.supervisors[view.plan.supervisor]
        decision = guarded(supervisor, view, now)
        slots = flow.slots()
        breadcrumb = {"run": view.supervisor_runs_this_round() + 1, "saw": decision.saw,
                      "decided": decision.describe(), "why": decision.why}  # fmt: skip
        _append(flow, SUPERVISOR_RAN, now, data=breadcrumb)
        flow.wake_at = None
        for command in decision.commands:
            if isinstance(command, CallAgent):
                self._call(flow, command, slots, now, violations)
            elif isinstance(command, WaitUntil):
                flow.wake_at = command.at if flow.wake_at is None else min(flow.wake_at, command.at)
            elif isinstance(command, RecordFact):
                if command.slot is None or command.slot not in slots:
                    _append(flow, command.kind, now, command.step, command.slot, command.data)
            elif isinstance(command, Complete | EndCompensated | Fail):
                _end(flow, command, view.round, now)
                if flow.parent is not None:
                    flows[flow.parent].due = True
            elif isinstance(command, StartChild):
                self._start_child(flows, flow, command, slots, now)
            elif isinstance(command, CancelChild):
                started = slots.get(child_slot(command.step))
                slot = child_cancel_slot(command.step)
                if started is not None and slot not in slots:
                    child = flows.get(str(started.get("child_id")))
                    if child is not None and _ended(child) is None:
                        data = {"reason": command.reason, "by": "parent"}
                        _append(child, CANCEL_REQUESTED, now, slot=PARENT_CANCEL, data=data)
                        child.due = True
                    _append(flow, CHILD_CANCEL_REQUESTED, now, command.step, slot)
        return decision

    def _call(
        self, flow: _Flow, command: CallAgent, slots: dict[str, Fact], now: float,
        violations: list[str],
    ) -> None:  # fmt: skip
        phase, step, attempt = command.phase, command.step, command.attempt
        if call_slot(phase, step, attempt, "outcome") in slots:
            violations.append(f"{flow.id}: asked again for {command.describe()}, already ended")
            return
        scheduled = call_slot(phase, step, attempt, SCHEDULED)
        if scheduled not in slots:
            earlier = [f.attempt or 0 for f in flow.facts
                       if f.kind == call_kind(phase, SCHEDULED) and f.step == step]  # fmt: skip
            if phase == PROBE:  # a probe carries the number of the attempt it asks about
                if call_slot(ACTION, step, attempt, SCHEDULED) not in slots:
                    violations.append(f"{flow.id}: {command.describe()} probes no attempt")
            elif attempt != max(earlier, default=0) + 1:
                violations.append(f"{flow.id}: {command.describe()} skips an attempt number")
            data = {"agent": command.agent, "timeout": command.timeout}
            _append(flow, call_kind(phase, SCHEDULED), now, step, scheduled, data, attempt)
        if not any(_same(c, command) for c in flow.pending):
            flow.pending.append(command)

    def _start_child(
        self, flows: dict[str, _Flow], flow: _Flow, command: StartChild, slots: dict[str, Fact],
        now: float,
    ) -> None:  # fmt: skip
        slot = child_slot(command.step)
        if slot in slots:
            return
        cid = f"{flow.id}.{command.step}"
        data: dict[str, Any] = {"child_id": cid, "workflow": command.workflow}
        if command.workflow not in self.app.plans:
            data["error"] = f"no workflow named {command.workflow!r} is registered"
        else:
            self._create(flows, cid, command.workflow, command.input, flow.id, now)
        _append(flow, CHILD_STARTED, now, command.step, slot, data)

    def _perform(self, flow: _Flow, command: CallAgent, now: float) -> Call:
        args = dict(command.args)
        step_input = args.pop("input") if "input" in args else flow.input
        payload = {
            "agent": command.agent, "timeout": command.timeout, "workflow": flow.name,
            "input": step_input, "args": args,
            "key": f"{flow.id}:{command.step}" + (":undo" if command.phase == COMPENSATION else ""),
            "action_key": f"{flow.id}:{command.step}",
            "permanent": list(command.permanent), "transient": list(command.transient),
        }  # fmt: skip
        task = Task(0, flow.id, command.phase, command.step, command.attempt, now, payload)
        fn = self.fakes.get(command.agent)
        registered = self.app.agents.get(command.agent)
        if fn is None and registered is None:
            suffix, data = "failed", {"error": f"agent {command.agent!r} is not registered",
                                      "permanent": True, "agent_missing": True}  # fmt: skip
        else:
            agent = Agent(command.agent, fn or registered.fn)  # type: ignore[union-attr]
            suffix, data = _outcome(agent, task)
        slot = call_slot(command.phase, command.step, command.attempt, "outcome")
        kind = call_kind(command.phase, suffix)
        _append(flow, kind, now, command.step, slot, data, command.attempt)
        return Call(flow.id, command.phase, command.step, command.attempt, command.agent,
                    step_input, suffix, now)  # fmt: skip


def _outcome(agent: Agent, task: Task) -> tuple[str, dict[str, Any]]:
    def timed_out(ctx: Any) -> Any:
        try:
            value = agent.fn(ctx)
            if asyncio.iscoroutine(value):
                value = asyncio.run(value)
        except CallTimedOut:
            return _TIMED_OUT
        return value

    outcome = asyncio.run(perform(Agent(agent.name, timed_out), task))
    if outcome.suffix == "succeeded" and outcome.data.get("result") == _TIMED_OUT:
        return TIMED_OUT, {"error": "no answer in time (simulated)"}
    return outcome.suffix, dict(outcome.data)


_TIMED_OUT = "__steadyhand_testing_timed_out__"


def _same(a: CallAgent, b: CallAgent) -> bool:
    return (a.phase, a.step, a.attempt) == (b.phase, b.step, b.attempt)


def _append(
    flow: _Flow, kind: str, at: float, step: str | None = None, slot: str | None = None,
    data: Mapping[str, Any] | None = None, attempt: int | None = None,
) -> None:  # fmt: skip
    seq = flow.facts[-1].seq + 1 if flow.facts else 1
    flow.facts.append(Fact(seq, kind, at, step, attempt, slot, dict(data or {})))


def _end(flow: _Flow, command: Complete | EndCompensated | Fail, round_: int, now: float) -> None:
    slot = terminal_slot(round_)
    if any(f.slot == slot for f in flow.facts):
        return
    if isinstance(command, Complete):
        _append(flow, WORKFLOW_COMPLETED, now, slot=slot, data={"result": command.result})
    elif isinstance(command, EndCompensated):
        _append(flow, WORKFLOW_COMPENSATED, now, slot=slot, data={"reason": command.reason})
    else:
        _append(flow, WORKFLOW_FAILED, now, slot=slot, data={"reason": command.reason})


def _ended(flow: _Flow | None) -> Fact | None:
    if flow is None:
        return None
    rounds = sum(1 for f in flow.facts if f.kind == "retry_requested")
    slot = terminal_slot(rounds)
    for fact in reversed(flow.facts):
        if fact.slot == slot:
            return fact
    return None
