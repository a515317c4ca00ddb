"""The vocabulary of supervisor decisions: plain values that say what should happen next.

A supervisor returns a `Decision` (commands plus the reason for them); the engine applies
it. Keeping decisions as data is what lets the supervisor stay pure and be tested from
tables of facts, and what lets every run leave a readable breadcrumb.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from steadyhand.core.facts import ACTION, COMPENSATION, PROBE


@dataclass(frozen=True)
class CallAgent:
    """Schedule one call of an agent now: attempt `attempt` of `step` in `phase`.

    Idempotent: asking again for a call that is already scheduled (same phase, step and
    attempt) only makes sure its task exists, which is how a lost queue is rebuilt.
    `args` are what the agent sees besides the workflow input (earlier results, the action's
    result for a compensation).
    """

    phase: str
    step: str
    attempt: int
    agent: str
    timeout: float
    args: Mapping[str, Any] = field(default_factory=dict)
    permanent: tuple[str, ...] = ()  # exception names the retry policy treats as permanent
    transient: tuple[str, ...] = ()  # if set, only these exception names are transient
    not_done: tuple[str, ...] = ()  # exception names this step knows leave nothing done
    uncertain: tuple[str, ...] = ()  # exception names this step knows leave the outcome open
    heartbeat_timeout: float | None = None  # a call silent this long is lost (None: not watched)

    def __post_init__(self) -> None:
        if self.phase not in (ACTION, COMPENSATION, PROBE):
            raise ValueError(f"unknown phase {self.phase!r}")
        if self.attempt < 1:
            raise ValueError("attempts are numbered from 1")

    def describe(self) -> str:
        noun = {ACTION: "attempt", COMPENSATION: "compensation", PROBE: "probe"}
        return f"call {self.agent} for {self.step} ({noun[self.phase]} {self.attempt})"


@dataclass(frozen=True)
class WaitUntil:
    """Run the supervisor again at `at` (a retry's backoff, a deadline, a scheduled check)."""

    at: float

    def describe(self) -> str:
        moment = datetime.fromtimestamp(self.at, tz=UTC).isoformat(timespec="milliseconds")
        return f"check again at {moment.replace('+00:00', 'Z')}"


@dataclass(frozen=True)
class RecordFact:
    """Append a fact of the supervisor's own (e.g. `compensation_began` with its reason)."""

    kind: str
    data: Mapping[str, Any] = field(default_factory=dict)
    step: str | None = None
    slot: str | None = None
    service: str | None = None  # tags the fact with a remote service (found by service)

    def describe(self) -> str:
        return f"record {self.kind}" + (f" for {self.step}" if self.step else "")


@dataclass(frozen=True)
class Complete:
    """End the workflow `completed` with `result`; with `continue_as_new`, the same step
    starts its next run (a fresh history, `next_input` as its input) in the same
    transaction, and the result names that run (`{"continued_as": id}`)."""

    result: Any = None
    continue_as_new: bool = False
    next_input: Any = None

    def describe(self) -> str:
        return "continue as a new run" if self.continue_as_new else "complete the workflow"


@dataclass(frozen=True)
class EndCompensated:
    """End the workflow `compensated`: everything done was undone."""

    reason: str

    def describe(self) -> str:
        return "end compensated"


@dataclass(frozen=True)
class Fail:
    """End the workflow `failed`: a person must look; `reason` says what and why."""

    reason: str

    def describe(self) -> str:
        return "end failed"


@dataclass(frozen=True)
class StartChild:
    """Start workflow `workflow` as a child for `step` (its id derives from the parent's).

    Idempotent: the child's id is `<parent id>.<step>`, so asking again never starts a second.
    The child's end wakes the parent, whose facts then show it in `children`.
    """

    step: str
    workflow: str
    input: Any = None
    key: str | None = None  # the child's idempotency key (events may address it by key)

    def describe(self) -> str:
        return f"start child {self.workflow} for {self.step}"


@dataclass(frozen=True)
class CancelChild:
    """Ask the child started for `step` to roll back (a parent being cancelled)."""

    step: str
    reason: str = ""

    def describe(self) -> str:
        return f"cancel the child of {self.step}"


Command = (
    CallAgent | WaitUntil | RecordFact | Complete | EndCompensated | Fail | StartChild | CancelChild
)


@dataclass(frozen=True)
class Decision:
    """What a supervisor run decided (`commands`) and why, in words a person can act on."""

    commands: tuple[Command, ...] = ()
    why: str = ""
    saw: str = ""

    @property
    def terminal(self) -> Complete | EndCompensated | Fail | None:
        for command in self.commands:
            if isinstance(command, Complete | EndCompensated | Fail):
                return command
        return None

    def describe(self) -> list[str]:
        return [c.describe() for c in self.commands] or ["wait"]
