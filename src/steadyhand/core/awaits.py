"""Answering one awaited request from the facts: a step's result or failure, a child's end,
a sleep that is over, an event that arrived; or what is still needed (`Pending`: the calls,
wake-ups and children that become the decision). The replay driver (`core/replay.py`) asks;
this module owns what each kind of request means in facts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from steadyhand.core.decisions import CallAgent, Command, RecordFact, StartChild, WaitUntil
from steadyhand.core.errors import InputError, StepFailed, WaitTimedOut
from steadyhand.core.facts import (
    ACTION,
    EVENT_RECEIVED,
    PROBE,
    SLEEP_BEGAN,
    WAIT_BEGAN,
    WAIT_TIMED_OUT,
    call_slot,
)
from steadyhand.core.plans import encode_json
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
    call_progress,
)
from steadyhand.core.slots import child_slot, sleep_slot, wait_slot
from steadyhand.core.view import ChildState, WorkflowView
from steadyhand.core.workflow import Await, ChildCall, MapCall, Sleep, StepCall, WaitFor

RECHECK_SECONDS = 3600.0
"""Safety-net check while a child runs or an event has no deadline (their ends wake us)."""


class Halt(Exception):
    """The replay cannot go on (changed code, refused await, missing agent): end `failed`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Done:
    value: Any
    at: float


@dataclass(frozen=True)
class Failed:
    error: StepFailed | WaitTimedOut
    at: float


@dataclass(frozen=True)
class Pending:
    commands: tuple[Command, ...]
    why: tuple[str, ...]
    fresh: bool = False  # nothing recorded yet: not started (what `wf.map` may hold back)


Answer = Done | Failed | Pending


def changed_code(recorded: str, asked: str) -> str:
    """The reason a workflow whose code changed under it ends `failed`, with the way out."""
    return (
        f"the workflow code changed under this running workflow: its facts record {recorded} "
        f"where the code now asks for {asked}. Deploy the code it started with (to let it "
        'finish, or to cancel it), or guard the change with `if wf.patched("<change-id>"):` '
        "so workflows already past that point keep the old path; then `steadyhand retry` it."
    )


class Answers:
    """What each kind of request means in facts; mixed into `Replay`, which holds the state."""

    view: WorkflowView
    now_at: float
    clock: float
    records: list[RecordFact]
    requested: dict[str, Await]
    first_new: str | None
    _recorded: dict[str, tuple[str, str | None]]
    _consumed: dict[str, int]

    def resolve(self, request: Await) -> Answer:
        raise NotImplementedError

    def _check(self, request: Await, kind: str, what: str | None) -> None:
        name = request.name
        self.requested.setdefault(name, request)
        recorded = self._recorded.get(name)
        if recorded is None:
            if self.first_new is None:
                self.first_new = name
        elif recorded != (kind, what):
            raise Halt(changed_code(recorded_text(name, *recorded), describe_request(request)))

    def _step(self, req: StepCall) -> Answer:
        self._check(req, "step", req.agent)
        name = req.name
        has_probe = req.probe is not None
        progress = call_progress(self.view, ACTION, name, req.retry, has_probe=has_probe)
        status = progress.status
        if status == DONE:
            return Done(progress.result, self._outcome_at(name, progress.attempt))
        if status == GAVE_UP:
            at = self._outcome_at(name, progress.attempt)
            return Failed(StepFailed(name, progress.reason), at)
        if status == AGENT_MISSING:
            raise Halt(
                f"step {name}: {progress.reason}. Deploy code that registers the agent, then "
                "`steadyhand retry` this workflow (or cancel it to roll back)."
            )
        args = {"input": req.input}

        def call(phase: str, attempt: int) -> CallAgent:
            agent = req.probe if phase == PROBE else req.agent
            assert agent is not None
            policy = req.retry
            return CallAgent(
                phase,
                name,
                attempt,
                agent,
                req.timeout,
                args,
                policy.permanent,
                policy.transient,
                policy.not_done,
                policy.uncertain,
                None if phase == PROBE else req.heartbeat_timeout,
            )

        if status == NOT_STARTED:
            _check_json(req.input, f"the input of step {name}")
            return Pending((call(ACTION, 1),), (f"{name} (first attempt)",), fresh=True)
        if status == IN_FLIGHT:
            return Pending((call(ACTION, progress.attempt),), (f"{name} (in flight)",))
        if status in (NEEDS_PROBE, PROBING):  # probes are numbered per step (core.probing)
            why = f"{name} (probing attempt {progress.attempt}: its outcome is unknown)"
            return Pending((call(PROBE, progress.probe),), (why,))
        if status == PROBE_WAIT:  # the probe could not tell: ask again later, never re-send
            assert progress.retry_at is not None
            if progress.retry_at <= self.now_at:
                why = f"{name} (asking the probe again: {progress.reason})"
                return Pending((call(PROBE, progress.probe),), (why,))
            why = f"{name} (probe could not tell: {progress.reason}; asking again later)"
            return Pending((WaitUntil(progress.retry_at),), (why,))
        assert status == RETRY and progress.retry_at is not None
        if progress.retry_at <= self.now_at:
            why = f"{name} (retrying after {progress.reason})"
            return Pending((call(ACTION, progress.attempt + 1),), (why,))
        why = f"{name} (backing off after {progress.reason})"
        return Pending((WaitUntil(progress.retry_at),), (why,))

    def _outcome_at(self, name: str, attempt: int) -> float:
        times = [
            fact.at
            for phase in (ACTION, PROBE)
            if (fact := self.view.slot(call_slot(phase, name, attempt, "outcome"))) is not None
        ]
        return max(times, default=self.clock)

    def _child(self, req: ChildCall) -> Answer:
        self._check(req, "child", req.workflow)
        started = self.view.slot(child_slot(req.name))
        recheck = WaitUntil(self.now_at + RECHECK_SECONDS)
        if started is None:
            _check_json(req.input, f"the input of child {req.name}")
            start = StartChild(req.name, req.workflow, req.input, req.key)
            return Pending((start, recheck), (f"child {req.workflow} (starting)",), fresh=True)
        cid = str(started.get("child_id"))
        child = self.view.children.get(cid, ChildState(cid, "running"))
        if child.state == "running":
            return Pending((recheck,), (f"child {req.workflow} {cid} (running)",))
        if child.state == "completed":
            return Done(child.result, started.at)
        reason = f"(child {cid}, {req.workflow}) ended {child.state}"
        reason += f": {child.reason}" if child.reason else ""
        return Failed(StepFailed(req.name, reason), started.at)

    def _sleep(self, req: Sleep) -> Answer:
        self._check(req, "sleep", None)
        slot = sleep_slot(req.name)
        began = self.view.slot(slot)
        if began is not None:
            until = float(began.get("until"))
        else:
            # From when it is first reached (this decision), then fixed by the recorded fact.
            until = req.until if req.until is not None else self.now_at + (req.seconds or 0.0)
            self.records.append(RecordFact(SLEEP_BEGAN, {"until": until}, req.name, slot))
        if self.now_at >= until:
            return Done(None, until)
        return Pending((WaitUntil(until),), (f"{req.name} (until {until:.3f})",), began is None)

    def _wait(self, req: WaitFor) -> Answer:
        self._check(req, "wait", req.event)
        name, event = req.name, req.event
        timed_out = self.view.slot(wait_slot(name, "timed_out"))
        if timed_out is not None:
            return Failed(WaitTimedOut(event, req.timeout or 0.0), timed_out.at)
        counter = event if req.sources is None else f"{event}\x00{','.join(req.sources)}"
        index = self._consumed.get(counter, 0)
        arrived = self.view.of(EVENT_RECEIVED, event)
        if req.sources is not None:
            arrived = [f for f in arrived if f.get("source") in req.sources]
        if len(arrived) > index:  # the n-th wait for an event takes its n-th arrival
            self._consumed[counter] = index + 1
            return Done(arrived[index].get("payload"), arrived[index].at)
        began = self.view.slot(wait_slot(name, "began"))
        since = began.at if began is not None else self.now_at
        deadline = None if req.timeout is None else since + req.timeout
        if began is None:
            data = {"event": event, "timeout": req.timeout, "until": deadline}
            self.records.append(RecordFact(WAIT_BEGAN, data, name, wait_slot(name, "began")))
        if deadline is None:
            recheck = WaitUntil(self.now_at + RECHECK_SECONDS)
            return Pending((recheck,), (f"event {event} (no deadline)",), began is None)
        if self.now_at >= deadline:
            slot = wait_slot(name, "timed_out")
            self.records.append(RecordFact(WAIT_TIMED_OUT, {"event": event}, name, slot))
            return Failed(WaitTimedOut(event, req.timeout or 0.0), deadline)
        why = f"event {event} (until {deadline:.3f})"
        return Pending((WaitUntil(deadline),), (why,), began is None)

    def _map(self, req: MapCall) -> Answer:
        answers = [self.resolve(part) for part in req.parts]
        running = [a for a in answers if isinstance(a, Pending) and not a.fresh]
        fresh = [a for a in answers if isinstance(a, Pending) and a.fresh]
        failed = [a for a in answers if isinstance(a, Failed)]
        room = math.inf if req.max_parallel is None else req.max_parallel - len(running)
        starting = [] if failed else fresh[: int(max(0, min(room, len(fresh))))]
        if running or starting:
            held = len(fresh) - len(starting)
            pending = together([*running, *starting])
            if held:
                why = f"{held} more item(s) held back (max_parallel={req.max_parallel})"
                assert isinstance(pending, Pending)
                return Pending(pending.commands, (*pending.why, why))
            return pending
        if failed:
            return failed[0]
        done = [a for a in answers if isinstance(a, Done)]
        return Done([a.value for a in done], max((a.at for a in done), default=self.clock))


def together(answers: list[Answer]) -> Answer:
    """Answers of requests run side by side: pending while any is; then the first failure
    (in argument order) once every sibling has ended; else every value in order."""
    pending = [a for a in answers if isinstance(a, Pending)]
    if pending:
        commands = tuple(c for a in pending for c in a.commands)
        why = tuple(w for a in pending for w in a.why)
        return Pending(commands, why, fresh=all(a.fresh for a in pending))
    for answer in answers:
        if isinstance(answer, Failed):
            return answer
    done = [a for a in answers if isinstance(a, Done)]
    return Done([a.value for a in done], max((a.at for a in done), default=0.0))


def status_of(answer: Answer, name: str) -> str:
    """A request's state in a few words, for the breadcrumb's `saw`."""
    if isinstance(answer, Done):
        return "done"
    if isinstance(answer, Failed):
        return "failed"
    why = answer.why[0] if answer.why else "pending"
    return why.removeprefix(name).strip().removeprefix("(").removesuffix(")") or why


def _check_json(value: Any, what: str) -> None:
    try:
        encode_json(value, what)
    except InputError as exc:
        raise Halt(f"{exc} (a bug in the workflow code; fix it, then `steadyhand retry`)") from None


def describe_request(request: Await) -> str:
    if isinstance(request, StepCall):
        return f"step {request.name} (agent {request.agent})"
    if isinstance(request, ChildCall):
        return f"child {request.name} (workflow {request.workflow})"
    if isinstance(request, WaitFor):
        return f"wait {request.name} (event {request.event})"
    return f"{type(request).__name__.lower()} {request.name}"


def recorded_text(name: str, kind: str, what: str | None) -> str:
    noun = {"step": "agent", "child": "workflow", "wait": "event"}.get(kind)
    return f"{kind} {name}" + (f" ({noun} {what})" if noun else "")
