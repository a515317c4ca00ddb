"""What the test kit hands back: the events a test feeds in, each call performed, and the
`Run` of a workflow with its history in the shape of `steadyhand explain --json`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from steadyhand.core.decisions import Decision
from steadyhand.core.facts import ACTION, SUPERVISOR_RAN
from steadyhand.core.view import WorkflowView


class CallTimedOut(Exception):
    """Raise it from a fake agent to stand for a call that got no answer in time (an
    uncertain outcome: the step is probed, if it has a probe, before it is retried)."""


@dataclass(frozen=True)
class Event:
    """An outside event delivered `after` virtual seconds from the start."""

    name: str
    payload: Any = None
    after: float = 0.0


@dataclass(frozen=True)
class Call:
    """One agent call the simulator performed, with its outcome (`succeeded`, `failed`, …)."""

    workflow_id: str
    phase: str
    step: str
    attempt: int
    agent: str
    input: Any
    outcome: str
    at: float


@dataclass
class Run:
    """What a simulated run did: how the workflow ended, its facts, decisions and calls."""

    workflow_id: str
    state: str
    result: Any
    reason: str | None
    view: WorkflowView
    decisions: list[Decision]
    calls: list[Call]
    violations: list[str]
    elapsed: float  # virtual seconds from start to the end

    def steps(self, phase: str = ACTION) -> list[str]:
        """Step names in the order their calls were performed (each attempt once)."""
        return [
            c.step for c in self.calls if c.phase == phase and c.workflow_id == self.workflow_id
        ]

    def history(self) -> dict[str, Any]:
        """The run in the shape of `steadyhand explain --json` (for `replay_history`)."""
        return history_of(self.view, self.state)


def history_of(view: WorkflowView, state: str) -> dict[str, Any]:
    facts = []
    for fact in view.facts:
        entry = {"seq": fact.seq, "at": fact.at, "kind": fact.kind, "step": fact.step}
        entry.update({"attempt": fact.attempt, "slot": fact.slot, "data": fact.data})
        if fact.kind == SUPERVISOR_RAN:
            entry["decided"] = list((fact.data or {}).get("decided", ()))
        facts.append(entry)
    status: dict[str, Any] = {"id": view.workflow_id, "name": view.name, "state": state}
    status["created_at"] = view.created_at
    return {"status": status, "input": view.input, "facts": facts}
