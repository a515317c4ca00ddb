"""What the engine hears and answers: what a worker learned from a call (`Outcome`) and
the fact it becomes, and the answers to a start (`Started`) and to an event (`Signalled`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from steadyhand.core.facts import FAILED, OUTCOME_REPORTED_LATE, call_kind, call_slot
from steadyhand.core.records import NewFact, Task
from steadyhand.core.view import WorkflowView


@dataclass(frozen=True)
class Outcome:
    """What a worker learned from one agent call, ready to become a fact."""

    suffix: str  # succeeded, failed, timed_out, lost or uncertain
    data: Mapping[str, Any]


@dataclass(frozen=True)
class Started:
    """The answer to a start request: the workflow's id and whether this call created it."""

    workflow_id: str
    created: bool


@dataclass(frozen=True)
class Signalled:
    """The answer to an event: which workflow got it, whether it was new, whether it started."""

    workflow_id: str
    recorded: bool  # False: a duplicate delivery (same dedupe key); nothing changed
    started: bool  # True: this event created the workflow (signal-with-start)


def outcome_fact(view: WorkflowView, task: Task, outcome: Outcome, worker: str) -> NewFact | None:
    """The fact an agent call's outcome becomes: in its slot, or, when the slot already
    holds another outcome, a late report; None when it is our own earlier record."""
    assert task.step is not None and task.attempt is not None
    kind = call_kind(task.kind, outcome.suffix)
    slot = call_slot(task.kind, task.step, task.attempt, "outcome")
    existing = view.slot(slot)
    data = {**outcome.data, "worker": worker}
    if existing is not None:
        if existing.kind == kind and existing.get("worker") == worker:
            return None  # our own earlier commit went through
        late = {
            **data,
            "phase": task.kind,
            "outcome": outcome.suffix,
            "attempt": task.attempt,
            "recorded": existing.kind,
        }
        return NewFact(OUTCOME_REPORTED_LATE, task.step, task.attempt, data=late)
    # A refusal (sold out) is a healthy answer: only other outcomes speak for the service's
    # health, so only they carry its name into the circuit's reading.
    if view.terminal is not None:  # in flight when the workflow ended: recorded as late
        data["after_end"] = view.state
    refused = outcome.suffix == FAILED and bool(outcome.data.get("permanent"))
    service = None if refused else task.service
    return NewFact(kind, task.step, task.attempt, slot, data, service)
