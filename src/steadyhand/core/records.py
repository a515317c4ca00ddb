"""The rows the store hands back and takes: a workflow's root row, a queue task, a fact
about to be appended, a service's gate. Plain values shared by the store and the engine."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from steadyhand.core.plans import Plan

CALL_KINDS = ("action", "compensation", "probe")


SUPERVISE = "supervise"


@dataclass(frozen=True)
class WorkflowRow:
    """The immutable root row of a workflow: what started it and with which plan."""

    id: str
    name: str
    idempotency_key: str | None
    input: Any
    plan: Plan
    parent_id: str | None
    created_at: float


@dataclass(frozen=True)
class Task:
    """A row of the queue: supervise a workflow, or perform one agent call."""

    id: int
    workflow_id: str
    kind: str  # "supervise", or the phase of a call: "action", "compensation", "probe"
    step: str | None
    attempt: int | None
    due_at: float
    payload: Mapping[str, Any]
    lease_owner: str | None = None
    lease_expires_at: float | None = None
    service: str | None = None  # the remote service a call goes to (limits apply)

    @property
    def is_call(self) -> bool:
        return self.kind in CALL_KINDS


@dataclass(frozen=True)
class NewFact:
    """A fact about to be appended (its seq is assigned by the engine under the lock)."""

    kind: str
    step: str | None = None
    attempt: int | None = None
    slot: str | None = None
    data: Mapping[str, Any] | None = None
    service: str | None = None  # set on call outcomes, so circuits can read them by service


@dataclass(frozen=True)
class GateRow:
    """A service's row in `service_gates`: its policy (JSON), rate tokens and circuit."""

    service: str
    policy: str
    tokens: float
    tokens_at: float
    circuit: str
    circuit_since: float | None
    open_until: float | None
    opens: int
    reason: str | None

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> GateRow:
        return cls(
            row[0], row[1], float(row[2]), float(row[3]), row[4],
            None if row[5] is None else float(row[5]),
            None if row[6] is None else float(row[6]),
            int(row[7]), row[8],
        )  # fmt: skip
