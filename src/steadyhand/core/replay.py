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
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from steadyhand.core.awaits import (
    RECHECK_SECONDS,
    Answer,
    Answers,
    Done,
    Halt,
    Pending,
    changed_code,
    describe_request,
    recorded_text,
    status_of,
    together,
)
from steadyhand.core.decisions import Command, RecordFact
from steadyhand.core.errors import StepFailed, WaitTimedOut
from steadyhand.core.facts import (
    ACTION,
    CHILD_STARTED,
    PATCH_RECORDED,
    SCHEDULED,
    SLEEP_BEGAN,
    WAIT_BEGAN,
    call_kind,
)
from steadyhand.core.slots import patch_slot
from steadyhand.core.view import WorkflowView
from steadyhand.core.workflow import (
    Await,
    ChildCall,
    ContinuedAsNew,
    Gather,
    MapCall,
    Sleep,
    StepCall,
    WaitFor,
    Workflow,
)

__all__ = ["RECHECK_SECONDS", "Ending", "Halt", "Replay", "WorkflowStart", "changed_code"]


@dataclass
class Ending:
    """How one replay ended: `returned` (value), `continued` (value: the next run's input),
    `raised` (StepFailed / WaitTimedOut), `bug` (any other exception) or `blocked`
    (commands and why)."""

    kind: str
    value: Any = None
    error: BaseException | None = None
    commands: tuple[Command, ...] = ()
    why: tuple[str, ...] = ()


WorkflowStart = Callable[[Workflow], Coroutine[Any, Any, Any]]
"""Calls the user's function with the handle (and the input): gives the coroutine."""


@dataclass
class Replay(Answers):
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
        slot = patch_slot(change_id)
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
                except ContinuedAsNew as again:
                    return Ending("continued", again.input)
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
                wanted = (
                    "nothing more" if asked is None else describe_request(self.requested[asked])
                )
                raise Halt(changed_code(recorded_text(name, kind, what), wanted))

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
            return together([self.resolve(part) for part in request.parts])
        elif isinstance(request, MapCall):
            return self._map(request)
        else:
            raise Halt(_refusal(request))
        self.statuses[request.name] = status_of(answer, request.name)
        return answer


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
