"""Asking a probe what became of an uncertain attempt, until it can tell (pure).

An attempt whose outcome is unknown (timed out, lost with its worker, uncertain) may have
taken effect at the remote service, or may still be taking effect: a service that is still
working on the first request answers "unknown". So:

- `done`: the attempt took effect (its result stands in for the lost answer);
- `not_done`: the service has no trace of it: the only answer that allows a retry;
- `unknown` (or a probe that itself failed, timed out or was lost): ask again later, with
  backoff, up to the step's probe budget. Still unknown when the budget runs out: the
  outcome stays uncertain: the step is treated as possibly done (compensated when rolling
  back) and never re-sent blindly.

Probes are numbered per step (1, 2, … across all attempts); the probes about attempt N are
those scheduled after N's outcome and before attempt N+1 was scheduled (so histories from
before this numbering, where probe N was about attempt N, read the same). This module only
reads facts: how an outcome came to be uncertain is the worker's business, not its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from steadyhand.core.facts import ACTION, PROBE, SCHEDULED, SUCCEEDED, Fact, call_kind, call_slot
from steadyhand.core.plans import RetryPolicy
from steadyhand.core.view import WorkflowView

ASK = "ask"  # schedule probe `number` now
ASKING = "asking"  # probe `number` is scheduled and has not answered
WAIT = "wait"  # the last probe could not tell; ask probe `number` at `at`
DONE = "done"  # a probe found the effect; `result` stands in for the lost answer
NOT_DONE = "not_done"  # a probe found no trace: retrying is safe
EXHAUSTED = "exhausted"  # the budget ran out without an answer: possibly done, do not resend


@dataclass(frozen=True)
class ProbeState:
    """Where asking about one uncertain attempt stands."""

    status: str
    number: int = 0  # the probe call to schedule or wait for (1-based, per step)
    asked: int = 0  # probes about this attempt that answered (or failed to)
    at: float | None = None  # for WAIT: when to ask again
    result: Any = None  # for DONE
    why: str = ""  # what the last probe said, for reasons and breadcrumbs


def probe_state(
    view: WorkflowView, step: str, attempt: int, outcome: Fact, budget: RetryPolicy
) -> ProbeState:
    """Where probing attempt `attempt` of `step` (whose unknown `outcome` is given) stands.

    `budget.max_attempts` is how many probes may be asked about one attempt;
    `budget.backoff(k, seed)` how long to wait after the k-th could not tell."""
    mine = probes_about(view, step, attempt, outcome)
    if not mine:
        return ProbeState(ASK, next_probe_number(view, step))
    number, answer = mine[-1]
    if answer is None:
        return ProbeState(ASKING, number, asked=len(mine) - 1)
    said = _said(answer)
    if said == "done":
        return ProbeState(DONE, number, len(mine), result=answer.get("result"), why=said)
    if said == "not_done":
        return ProbeState(NOT_DONE, number, len(mine), why=said)
    asked = len(mine)
    if asked >= budget.max_attempts:
        why = f"{asked} probe{'s' if asked > 1 else ''} could not tell (last: {said})"
        return ProbeState(EXHAUSTED, number, asked, why=why)
    delay = budget.backoff(asked, seed=f"{view.workflow_id}:probe:{step}:{attempt}")
    return ProbeState(WAIT, number + 1, asked, at=answer.at + delay, why=said)


def probes_about(
    view: WorkflowView, step: str, attempt: int, outcome: Fact
) -> list[tuple[int, Fact | None]]:
    """(probe number, its outcome fact or None) for each probe asked about `attempt`."""
    scheduled_kind = call_kind(PROBE, SCHEDULED)
    later = view.slot(call_slot(ACTION, step, attempt + 1, SCHEDULED))
    until = later.seq if later is not None else None
    found = []
    for fact in view.of(scheduled_kind, step):
        if fact.seq < outcome.seq or (until is not None and fact.seq > until):
            continue
        number = fact.attempt or 0
        found.append((number, view.slot(call_slot(PROBE, step, number, "outcome"))))
    return found


def next_probe_number(view: WorkflowView, step: str) -> int:
    scheduled = view.of(call_kind(PROBE, SCHEDULED), step)
    return max((f.attempt or 0 for f in scheduled), default=0) + 1


def last_answer(view: WorkflowView, step: str, attempt: int, outcome: Fact) -> str | None:
    """What the last probe about `attempt` said ("done", "not_done", "unknown" or how it
    failed), or None when none answered."""
    mine = [answer for _, answer in probes_about(view, step, attempt, outcome) if answer]
    return _said(mine[-1]) if mine else None


def _said(answer: Fact) -> str:
    """A probe's answer; a probe that failed, timed out or was lost could not tell."""
    if answer.kind == call_kind(PROBE, SUCCEEDED):
        return str(answer.get("answer") or "unknown")
    suffix = answer.kind.split("_", 1)[1].replace("_", " ")
    error = answer.get("error")
    return f"unknown (the probe {suffix}{': ' + str(error) if error else ''})"
