"""The replay driver: run a code-first workflow function over its facts, without an event loop.

The coroutine is driven by hand (`coro.send` / `coro.throw`). Each `wf` request it awaits is
answered from the facts when its outcome is recorded (a step's result, an event, a passed
sleep) and the function carries on; the first requests that are not decided stop the
replay and become the decision (call these agents, wait until T, start that child). So a
replay is a pure function of the facts and `now`: run it twice, get the same answer.

Two checks keep replays honest: a step the code asks for must match what the facts record
under its name (same kind, same agent), and every step the facts record must be asked for
again; otherwise the code changed under a running workflow (`Halt`).
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from steadyhand.core.decisions import CallAgent, Command, RecordFact, StartChild, WaitUntil
from steadyhand.core.errors import InputError, StepFailed, WaitTimedOut
from steadyhand.core.facts import (
    ACTION,
    CHILD_STARTED,
    EVENT_RECEIVED,
    PATCH_RECORDED,
    PROBE,
    SCHEDULED,
    SLEEP_BEGAN,
    WAIT_BEGAN,
    WAIT_TIMED_OUT,
    call_kind,
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
    PROBING,
    RETRY,
    call_progress,
)
from steadyhand.core.view import ChildState, WorkflowView
from steadyhand.core.workflow import (
    Await,
    ChildCall,
    Gather,
    MapCall,
    Sleep,
    StepCall,
    WaitFor,
    Workflow,
)

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


@dataclass
class Ending:
    """How one replay ended: `returned` (value), `raised` (StepFailed / WaitTimedOut),
    `bug` (any other exception) or `blocked` (commands and why)."""

    kind: str
    value: Any = None
    error: BaseException | None = None
    commands: tuple[Command, ...] = ()
    why: tuple[str, ...] = ()


WorkflowStart = Callable[[Workflow], Coroutine[Any, Any, Any]]
"""Calls the user's function with the handle (and the input): gives the coroutine."""


def changed_code(recorded: str, asked: str) -> str:
    """The reason a workflow whose code changed under it ends `failed`, with the way out."""
    return (
        f"the workflow code changed under this running workflow: its facts record {recorded} "
        f"where the code now asks for {asked}. Deploy the code it started with (to let it "
        'finish, or to cancel it), or guard the change with `if wf.patched("<change-id>"):` '
        "so workflows already past that point keep the old path; then `steadyhand retry` it."
    )


@dataclass
class Replay:
    """One replay of one workflow over its facts at `now` (see the module docstring)."""

    view: WorkflowView
    now_at: float
    agent_names: Callable[[Any], str]
    clock: float = 0.0
    records: list[RecordFact] = field(default_factory=list)
    requested: dict[str, Await] = field(default_factory=dict)  # in the order first awaited
    statuses: dict[str, str] = field(default_factory=dict)
    first_new: str | None = None
    _recorded: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    _consumed: dict[str, int] = field(default_factory=dict)
    _patches: dict[str, bool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.clock = self.view.created_at
        scheduled = call_kind(ACTION, SCHEDULED)
        kinds = {scheduled: "step", CHILD_STARTED: "child", SLEEP_BEGAN: "sleep"}
        kinds[WAIT_BEGAN] = "wait"
        for fact in self.view.facts:
            kind = kinds.get(fact.kind)
            if kind is None or fact.step is None or fact.step in self._recorded:
                continue
            what = {"step": "agent", "child": "workflow", "wait": "event"}.get(kind)
            self._recorded[fact.step] = (kind, None if what is None else fact.get(what))

    # -- the host the `Workflow` handle asks ------------------------------------------------
    def agent_name(self, ref: Any) -> str:
        return self.agent_names(ref)

    def now(self) -> float:
        return self.clock

    def patched(self, change_id: str) -> bool:
        if change_id in self._patches:
            return self._patches[change_id]
        slot = f"patch:{change_id}"
        fact = self.view.slot(slot)
        if fact is not None:
            value = bool(fact.get("value"))
        else:  # new path unless the facts show this workflow already went further
            value = all(name in self.requested for name in self._recorded)
            self.records.append(
                RecordFact(PATCH_RECORDED, {"id": change_id, "value": value}, None, slot)
            )
        self._patches[change_id] = value
        return value

    # -- driving ----------------------------------------------------------------------------
    def run(self, start: WorkflowStart) -> Ending:
        """Drive the workflow's coroutine until it returns, raises or blocks."""
        # A copy: code that changes its input must not change what the next replay sees.
        wf = Workflow(self.view.workflow_id, copy.deepcopy(self.view.input), self)
        coro = start(wf)
        value: Any = None
        error: BaseException | None = None
        try:
            while True:
                try:
                    request = coro.send(value) if error is None else coro.throw(error)
                except StopIteration as stop:
                    return Ending("returned", stop.value)
                except (StepFailed, WaitTimedOut) as exc:
                    return Ending("raised", error=exc)
                except Exception as exc:
                    if _outside_io(exc):
                        raise Halt(_refusal(exc)) from None
                    return Ending("bug", error=exc)
                value, error = None, None
                if not isinstance(request, Await):
                    raise Halt(_refusal(request))
                answer = self.resolve(request)
                if isinstance(answer, Pending):
                    return Ending("blocked", commands=answer.commands, why=answer.why)
                self.clock = max(self.clock, answer.at)
                if isinstance(answer, Done):
                    value = answer.value
                else:
                    error = answer.error
        finally:
            with contextlib.suppress(RuntimeError):  # the code swallowed GeneratorExit
                coro.close()

    def check_complete(self) -> None:
        """Every step the facts record must have been asked for again (else: changed code)."""
        for name, (kind, what) in self._recorded.items():
            if name not in self.requested:
                asked = self.first_new
                wanted = "nothing more" if asked is None else _describe(self.requested[asked])
                raise Halt(changed_code(_recorded_text(name, kind, what), wanted))

    # -- answering requests -----------------------------------------------------------------
    def resolve(self, request: Await) -> Answer:
        if isinstance(request, StepCall):
            answer: Answer = self._step(request)
        elif isinstance(request, ChildCall):
            answer = self._child(request)
        elif isinstance(request, Sleep):
            answer = self._sleep(request)
        elif isinstance(request, WaitFor):
            answer = self._wait(request)
        elif isinstance(request, Gather):
            return _together([self.resolve(part) for part in request.parts])
        elif isinstance(request, MapCall):
            return self._map(request)
        else:
            raise Halt(_refusal(request))
        self.statuses[request.name] = _status(answer)
        return answer

    def _check(self, request: Await, kind: str, what: str | None) -> None:
        name = request.name
        self.requested.setdefault(name, request)
        recorded = self._recorded.get(name)
        if recorded is None:
            if self.first_new is None:
                self.first_new = name
        elif recorded != (kind, what):
            raise Halt(changed_code(_recorded_text(name, *recorded), _describe(request)))

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
                phase, name, attempt, agent, req.timeout, args, policy.permanent, policy.transient
            )

        if status == NOT_STARTED:
            _check_json(req.input, f"the input of step {name}")
            return Pending((call(ACTION, 1),), (f"{name} (first attempt)",), fresh=True)
        if status == IN_FLIGHT:
            return Pending((call(ACTION, progress.attempt),), (f"{name} (in flight)",))
        if status in (NEEDS_PROBE, PROBING):
            why = f"{name} (probing attempt {progress.attempt}: its outcome is unknown)"
            return Pending((call(PROBE, progress.attempt),), (why,))
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
        started = self.view.slot(f"child:{req.name}")
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
        slot = f"sleep:{req.name}"
        began = self.view.slot(slot)
        if began is not None:
            until = float(began.get("until"))
        else:
            until = req.until if req.until is not None else self.clock + (req.seconds or 0.0)
            self.records.append(RecordFact(SLEEP_BEGAN, {"until": until}, req.name, slot))
        if self.now_at >= until:
            return Done(None, until)
        return Pending((WaitUntil(until),), (f"{req.name} (until {until:.3f})",), began is None)

    def _wait(self, req: WaitFor) -> Answer:
        self._check(req, "wait", req.event)
        name, event = req.name, req.event
        timed_out = self.view.slot(f"wait:{name}:timed_out")
        if timed_out is not None:
            return Failed(WaitTimedOut(event, req.timeout or 0.0), timed_out.at)
        index = self._consumed.get(event, 0)
        arrived = self.view.of(EVENT_RECEIVED, event)
        if len(arrived) > index:  # the n-th wait for an event takes its n-th arrival
            self._consumed[event] = index + 1
            return Done(arrived[index].get("payload"), arrived[index].at)
        began = self.view.slot(f"wait:{name}:began")
        since = began.at if began is not None else self.now_at
        deadline = None if req.timeout is None else since + req.timeout
        if began is None:
            data = {"event": event, "timeout": req.timeout, "until": deadline}
            self.records.append(RecordFact(WAIT_BEGAN, data, name, f"wait:{name}:began"))
        if deadline is None:
            recheck = WaitUntil(self.now_at + RECHECK_SECONDS)
            return Pending((recheck,), (f"event {event} (no deadline)",), began is None)
        if self.now_at >= deadline:
            slot = f"wait:{name}:timed_out"
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
            pending = _together([*running, *starting])
            if held:
                why = f"{held} more item(s) held back (max_parallel={req.max_parallel})"
                assert isinstance(pending, Pending)
                return Pending(pending.commands, (*pending.why, why))
            return pending
        if failed:
            return failed[0]
        done = [a for a in answers if isinstance(a, Done)]
        return Done([a.value for a in done], max((a.at for a in done), default=self.clock))


def _together(answers: list[Answer]) -> Answer:
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


def _status(answer: Answer) -> str:
    if isinstance(answer, Done):
        return "done"
    if isinstance(answer, Failed):
        return "failed"
    return answer.why[0] if answer.why else "pending"


def _check_json(value: Any, what: str) -> None:
    try:
        encode_json(value, what)
    except InputError as exc:
        raise Halt(f"{exc} (a bug in the workflow code; fix it, then `steadyhand retry`)") from None


def _describe(request: Await) -> str:
    if isinstance(request, StepCall):
        return f"step {request.name} (agent {request.agent})"
    if isinstance(request, ChildCall):
        return f"child {request.name} (workflow {request.workflow})"
    if isinstance(request, WaitFor):
        return f"wait {request.name} (event {request.event})"
    return f"{type(request).__name__.lower()} {request.name}"


def _recorded_text(name: str, kind: str, what: str | None) -> str:
    noun = {"step": "agent", "child": "workflow", "wait": "event"}.get(kind)
    return f"{kind} {name}" + (f" ({noun} {what})" if noun else "")


def _outside_io(exc: Exception) -> bool:
    """asyncio, anyio and httpx refuse to run without their event loop: the code tried I/O."""
    text = str(exc)
    return "no running event loop" in text or type(exc).__name__ == "AsyncLibraryNotFoundError"


def _refusal(awaited: object) -> str:
    return (
        f"the workflow awaited {type(awaited).__name__} {awaited!r:.80}, which is not one of "
        "wf's awaitables (wf.step, wf.gather, wf.map, wf.sleep, wf.sleep_until, wf.wait_for, "
        "wf.child). Workflow code is replayed and must be deterministic: do I/O in an agent "
        "(@app.agent) and call it with wf.step; then `steadyhand retry` this workflow."
    )
