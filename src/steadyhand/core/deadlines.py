"""A workflow's deadline: when it passes, the workflow rolls back.

The deadline is fixed when the workflow starts (`start(..., deadline=)` or the definition's
`deadline=`) and recorded on its `workflow_started` fact as `deadline_at`, so it survives
any restart and every supervisor reads the same time. Two pure rules, applied by the guard
around every supervisor (`guard.guarded`):

- before it passes, every decision of an open workflow also asks for a supervisor run at
  `deadline_at` (a wake-up row, coalesced with the others), so nothing waits in memory;
- once it has passed, the run records a `cancel_requested` fact (by `deadline`, once per
  round) and asks to run again at once: the workflow's own supervisor then rolls back what
  took effect, exactly as for an operator's cancel, with a reason that names the deadline.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from steadyhand.core.decisions import Decision, RecordFact, WaitUntil
from steadyhand.core.errors import InputError
from steadyhand.core.facts import CANCEL_REQUESTED, COMPENSATION_BEGAN, WORKFLOW_STARTED
from steadyhand.core.slots import deadline_slot
from steadyhand.core.view import WorkflowView

BY_DEADLINE = "deadline"


def check_deadline(seconds: Any, where: str = "deadline") -> float | None:
    """A deadline as seconds (> 0 and finite), or None; anything else is an `InputError`."""
    if seconds is None:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise InputError(f"{where} must be a number of seconds, not {seconds!r}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise InputError(f"{where} must be more than 0 seconds (got {seconds!r})")
    return float(seconds)


def started_data(seconds: float | None, now: float) -> dict[str, Any] | None:
    """The data of a `workflow_started` fact for a workflow with this deadline."""
    if seconds is None:
        return None
    return {"deadline": seconds, "deadline_at": now + seconds}


def deadline_at(view: WorkflowView) -> float | None:
    """When the workflow's deadline passes (None: it has none)."""
    started = view.latest(WORKFLOW_STARTED)
    value = started.get("deadline_at") if started is not None else None
    return None if value is None else float(value)


def _rolling_back(view: WorkflowView) -> bool:
    """This round already rolls back (a cancel or a compensation began in it)."""
    start = view.round_start
    return any(
        fact.seq > start for fact in (*view.of(CANCEL_REQUESTED), *view.of(COMPENSATION_BEGAN))
    )


def passed(view: WorkflowView, now: float) -> Decision | None:
    """The decision when the deadline has passed and nothing rolls back yet, else None."""
    at = deadline_at(view)
    if at is None or now < at or view.terminal is not None or _rolling_back(view):
        return None
    started = view.latest(WORKFLOW_STARTED)
    seconds = float(started.get("deadline", 0)) if started is not None else 0.0
    when = datetime.fromtimestamp(at, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    reason = f"the workflow's deadline ({seconds:g}s) passed at {when}"
    data = {"reason": reason, "by": BY_DEADLINE, "deadline_at": at}
    record = RecordFact(CANCEL_REQUESTED, data, slot=deadline_slot(view.round))
    return Decision((record, WaitUntil(now)), f"{reason}: rolling back", f"deadline_at={at}")


def with_wakeup(view: WorkflowView, decision: Decision, now: float) -> Decision:
    """`decision`, plus a supervisor run at the deadline while it is still ahead."""
    at = deadline_at(view)
    if at is None or at <= now or decision.terminal is not None or _rolling_back(view):
        return decision
    waits = [c.at for c in decision.commands if isinstance(c, WaitUntil)]
    others = tuple(c for c in decision.commands if not isinstance(c, WaitUntil))
    wake = WaitUntil(min([*waits, at]))  # one wake-up: the earliest is the one that counts
    return Decision((*others, wake), decision.why, decision.saw)
