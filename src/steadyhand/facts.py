"""Facts: the immutable records of what happened to a workflow, and a read-only view of them.

Fact kinds are past-tense names. A fact may carry a *slot*: a name unique within its
workflow, which is how the database (not the code) makes "attempt 2 of hotel scheduled"
or "the workflow ended" impossible to record twice.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from .model import Plan

# Workflow-level facts.
WORKFLOW_STARTED = "workflow_started"  # the scheduler wrote the plan and the input
CANCEL_REQUESTED = "cancel_requested"  # someone asked to stop and roll back
RETRY_REQUESTED = "retry_requested"  # an operator resumed a failed workflow: a new round
COMPENSATION_BEGAN = "compensation_began"  # the supervisor decided to roll back, and why
SUPERVISOR_RAN = "supervisor_ran"  # breadcrumb: what one supervisor run saw, decided, and why
WORKFLOW_COMPLETED = "workflow_completed"  # every step succeeded; carries the result
WORKFLOW_COMPENSATED = "workflow_compensated"  # rolled back cleanly; carries the reason
WORKFLOW_FAILED = "workflow_failed"  # could neither finish nor roll back: a person must look
ATTEMPT_DEFERRED = "attempt_deferred"  # a call was held back: its service's circuit is open
OUTCOME_REPORTED_LATE = "outcome_reported_late"  # an agent answered after its attempt was closed
EVENT_RECEIVED = "event_received"  # an outside event arrived; `step` holds the event's name
WAIT_BEGAN = "wait_began"  # a step began waiting for its event (its deadline counts from here)
WAIT_TIMED_OUT = "wait_timed_out"  # a step's awaited event did not come before its deadline
CHILD_STARTED = "child_started"  # a child workflow was started for `step`; data has its id
CHILD_CANCEL_REQUESTED = "child_cancel_requested"  # the parent asked its child to roll back

TERMINAL_KINDS = (WORKFLOW_COMPLETED, WORKFLOW_COMPENSATED, WORKFLOW_FAILED)
TERMINAL_STATES = {
    WORKFLOW_COMPLETED: "completed",
    WORKFLOW_COMPENSATED: "compensated",
    WORKFLOW_FAILED: "failed",
}

# Calls to agents come in three phases; each phase has its own fact prefix.
ACTION, COMPENSATION, PROBE = "action", "compensation", "probe"
PHASE_PREFIX = {ACTION: "attempt", COMPENSATION: "compensation", PROBE: "probe"}

# Suffixes of call facts: f"{prefix}_{suffix}", e.g. attempt_scheduled, compensation_failed.
SCHEDULED = "scheduled"  # the supervisor asked for this call; its task is in the queue
SUCCEEDED = "succeeded"  # the agent returned a result
FAILED = "failed"  # the agent raised; data says whether the failure is transient
TIMED_OUT = "timed_out"  # the agent did not answer within its timeout: outcome unknown
LOST = "lost"  # the worker's lease expired mid-call (it died): outcome unknown
UNCERTAIN = "uncertain"  # the agent raised OutcomeUnknown (e.g. the answer was cut off)
OUTCOMES = (SUCCEEDED, FAILED, TIMED_OUT, LOST, UNCERTAIN)
UNKNOWN_OUTCOMES = (TIMED_OUT, LOST, UNCERTAIN)


def call_kind(phase: str, suffix: str) -> str:
    """The fact kind for a call event, e.g. ("compensation", "failed") -> compensation_failed."""
    return f"{PHASE_PREFIX[phase]}_{suffix}"


def call_slot(phase: str, step: str, attempt: int, what: str) -> str:
    """Unique slot of a call's scheduling ("scheduled") or its outcome ("outcome")."""
    return f"{phase}:{step}:{attempt}:{what}"


def terminal_slot(round_: int) -> str:
    """One terminal fact per round: an operator's retry opens a new round."""
    return f"terminal:{round_}"


@dataclass(frozen=True)
class Fact:
    """One immutable row of a workflow's history."""

    seq: int
    kind: str
    at: float
    step: str | None = None
    attempt: int | None = None
    slot: str | None = None
    data: Mapping[str, Any] | None = None

    def get(self, key: str, default: Any = None) -> Any:
        return (self.data or {}).get(key, default)


@dataclass(frozen=True)
class ChildState:
    """What a parent may know of a child: its id and, once it ended, how."""

    workflow_id: str
    state: str  # running, completed, compensated or failed (the child's current round)
    result: Any = None
    reason: str | None = None

    @property
    def done(self) -> bool:
        return self.state in ("completed", "compensated", "failed")


@dataclass(frozen=True)
class WorkflowFacts:
    """Everything a supervisor may know about one workflow: its identity, plan and facts.

    Built from one read inside the transaction that locked the workflow, so it is a
    consistent snapshot; supervisors receive it with `now` and nothing else.
    """

    workflow_id: str
    name: str
    input: Any
    plan: Plan
    created_at: float
    facts: tuple[Fact, ...]
    parent_id: str | None = None
    children: Mapping[str, ChildState] = field(default_factory=dict)  # by child workflow id
    services: Mapping[str, Any] = field(default_factory=dict)  # services.Gate by service name

    def service_of(self, agent: str) -> str | None:
        """The remote service an agent of this plan belongs to (frozen at start)."""
        mapping = self.plan.options.get("services") or {}
        value = mapping.get(agent)
        return value if isinstance(value, str) else None

    def __iter__(self) -> Iterator[Fact]:
        return iter(self.facts)

    def __len__(self) -> int:
        return len(self.facts)

    @property
    def last_seq(self) -> int:
        return self.facts[-1].seq if self.facts else 0

    def of(self, kind: str, step: str | None = None) -> list[Fact]:
        """All facts of `kind` (optionally of one step), oldest first."""
        return [f for f in self.facts if f.kind == kind and (step is None or f.step == step)]

    def has(self, kind: str, step: str | None = None) -> bool:
        return any(f.kind == kind and (step is None or f.step == step) for f in self.facts)

    def count(self, kind: str, step: str | None = None) -> int:
        return len(self.of(kind, step))

    def latest(self, kind: str, step: str | None = None) -> Fact | None:
        for fact in reversed(self.facts):
            if fact.kind == kind and (step is None or fact.step == step):
                return fact
        return None

    def data_of(self, kind: str, step: str | None = None) -> Mapping[str, Any] | None:
        """The data of the latest fact of `kind`, or None when there is none."""
        fact = self.latest(kind, step)
        return None if fact is None else (fact.data or {})

    def event(self, name: str) -> Fact | None:
        """The first arrival of event `name` (later duplicates with other keys are ignored)."""
        for fact in self.facts:
            if fact.kind == EVENT_RECEIVED and fact.step == name:
                return fact
        return None

    def events(self, name: str | None = None) -> list[Fact]:
        return [
            f for f in self.facts if f.kind == EVENT_RECEIVED and (name is None or f.step == name)
        ]

    def slot(self, slot: str) -> Fact | None:
        return self._by_slot.get(slot)

    @cached_property
    def _by_slot(self) -> dict[str, Fact]:
        """Facts by slot (a slot is unique in a workflow). Supervisors ask by slot many
        times per run; the view is immutable, so the index is built once."""
        return {fact.slot: fact for fact in self.facts if fact.slot is not None}

    @cached_property
    def round(self) -> int:
        """How many times an operator resumed this workflow after it failed."""
        return self.count(RETRY_REQUESTED)

    @cached_property
    def round_start(self) -> int:
        """Seq of the fact that opened the current round (0 for the first round)."""
        latest = self.latest(RETRY_REQUESTED)
        return latest.seq if latest else 0

    @property
    def terminal(self) -> Fact | None:
        """The terminal fact of the current round, if the workflow has ended."""
        return self.slot(terminal_slot(self.round))

    @property
    def state(self) -> str:
        """completed, compensated, failed, compensating or running; derived, never stored."""
        end = self.terminal
        if end is not None:
            return TERMINAL_STATES[end.kind]
        if self.has(COMPENSATION_BEGAN):
            return "compensating"
        return "running"

    def supervisor_runs_this_round(self) -> int:
        start = self.round_start
        return sum(1 for f in self.facts if f.kind == SUPERVISOR_RAN and f.seq > start)
