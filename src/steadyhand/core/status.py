"""A workflow's status as people and scripts read it, derived from its facts and tasks."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from steadyhand.core.facts import COMPENSATION_BEGAN, PHASE_PREFIX, SCHEDULED, WORKFLOW_COMPLETED
from steadyhand.core.records import SUPERVISE, Task
from steadyhand.core.view import WorkflowView

TERMINAL = ("completed", "compensated", "failed")


@dataclass(frozen=True)
class Status:
    """Where a workflow stands: state, what it is doing, and its result or reason."""

    id: str
    name: str
    state: str  # running, waiting, compensating, completed, compensated, failed
    created_at: float
    updated_at: float
    step: str | None
    phase: str | None
    attempt: int | None
    next_check_at: float | None
    result: Any
    reason: str | None
    facts: int

    @property
    def done(self) -> bool:
        return self.state in TERMINAL

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def derive_status(view: WorkflowView, tasks: list[Task]) -> Status:
    """Build a `Status` from one consistent read of facts and pending tasks."""
    state = view.state
    end = view.terminal
    step = phase = attempt = None
    scheduled = {f"{prefix}_{SCHEDULED}": ph for ph, prefix in PHASE_PREFIX.items()}
    for fact in reversed(view.facts):
        if fact.kind in scheduled:
            step, phase, attempt = fact.step, scheduled[fact.kind], fact.attempt
            break
    calls = [t for t in tasks if t.kind != SUPERVISE]
    wakeups = [t.due_at for t in tasks if t.kind == SUPERVISE]
    next_check = min(wakeups) if wakeups else None
    if end is None and not calls and next_check is not None and state == "running":
        state = "waiting"
    reason = None
    result = None
    if end is not None:
        if end.kind == WORKFLOW_COMPLETED:
            result = end.get("result")
        else:
            reason = end.get("reason")
    elif view.has(COMPENSATION_BEGAN):
        reason = view.data_of(COMPENSATION_BEGAN)["reason"]  # type: ignore[index]
    return Status(
        id=view.workflow_id,
        name=view.name,
        state=state,
        created_at=view.created_at,
        updated_at=view.facts[-1].at if view.facts else view.created_at,
        step=step,
        phase=phase,
        attempt=attempt,
        next_check_at=next_check,
        result=result,
        reason=reason,
        facts=len(view),
    )
