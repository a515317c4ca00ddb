"""Where one step stands, read from facts: the building block of every supervisor.

`call_progress` answers "what happened to the calls of this step in this phase, and what
is the next sensible move?" from the facts alone, so sagas and custom supervisors share
one definition of in flight, succeeded, worth retrying, uncertain, and given up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from steadyhand.core.facts import (
    ACTION,
    FAILED,
    OUTCOME_REPORTED_LATE,
    PHASE_PREFIX,
    SCHEDULED,
    SUCCEEDED,
    UNCERTAIN,
    UNKNOWN_OUTCOMES,
    Fact,
    call_kind,
    call_slot,
)
from steadyhand.core.plans import RetryPolicy
from steadyhand.core.probing import ASK, ASKING, EXHAUSTED, WAIT, last_answer, probe_state
from steadyhand.core.probing import DONE as FOUND
from steadyhand.core.view import WorkflowView

NOT_STARTED = "not_started"  # no call scheduled yet
IN_FLIGHT = "in_flight"  # the latest call has no outcome yet
NEEDS_PROBE = "needs_probe"  # outcome unknown and the step has a probe nobody asked yet
PROBING = "probing"  # the probe was scheduled and has not answered
PROBE_WAIT = "probe_wait"  # the probe could not tell yet; ask again at `retry_at`
DONE = "succeeded"  # the call took effect; `result` holds what it returned
RETRY = "retry"  # failed for a passing reason; try again at `retry_at`
GAVE_UP = "gave_up"  # failed permanently or used every attempt of this round
AGENT_MISSING = "agent_missing"  # the agent is not registered in the running deploy


@dataclass(frozen=True)
class Progress:
    """The state of one step in one phase, derived from its facts."""

    status: str
    attempt: int = 0  # number of the latest call (0 when none was scheduled)
    used: int = 0  # calls scheduled in the current round (what the retry budget counts)
    result: Any = None
    retry_at: float | None = None
    reason: str = ""
    possibly_done: bool = False  # the remote effect may exist although no success was seen
    probe: int = 0  # for NEEDS_PROBE, PROBING, PROBE_WAIT: the probe call's number

    @property
    def took_effect(self) -> bool:
        """Whether rolling back must undo this step (succeeded, or cannot rule it out)."""
        return self.status == DONE or self.possibly_done


DEFAULT_PROBING = RetryPolicy(max_attempts=6, initial_backoff=1.0, max_backoff=30.0)
"""How a probe is asked again when the caller gives no policy (`StepSpec.probe_policy`)."""


def _suffix(fact: Fact, phase: str) -> str:
    return fact.kind[len(PHASE_PREFIX[phase]) + 1 :]


def describe_failure(fact: Fact) -> str:
    """A short account of a failed or unknown outcome for reasons and breadcrumbs."""
    error = fact.get("error")
    kind = fact.kind.split("_", 1)[1].replace("_", " ")
    if kind == FAILED and error:
        return str(error)
    return f"{kind}: {error}" if error else kind


def call_progress(
    view: WorkflowView,
    phase: str,
    step: str,
    policy: RetryPolicy,
    has_probe: bool = False,
    probe_policy: RetryPolicy | None = None,
) -> Progress:
    """Derive where `step` stands in `phase` (action or compensation) from the facts.

    `probe_policy` bounds asking the probe again when it cannot tell (`core.probing`)."""
    scheduled_kind = call_kind(phase, SCHEDULED)
    scheduled = view.of(scheduled_kind, step)
    if not scheduled:
        return Progress(NOT_STARTED)
    round_start = view.round_start
    attempt = max(f.attempt or 0 for f in scheduled)
    used = sum(1 for f in scheduled if f.seq > round_start)
    outcome = view.slot(call_slot(phase, step, attempt, "outcome"))
    if outcome is None:
        return Progress(IN_FLIGHT, attempt, used)
    suffix = _suffix(outcome, phase)
    if suffix == SUCCEEDED:
        return Progress(DONE, attempt, used, result=outcome.get("result"))

    late = _late_success(view, phase, step)
    if late is not None:
        return Progress(DONE, attempt, used, result=late.get("result"))

    possibly_done = _any_unknown_unresolved(view, phase, step, attempt, has_probe)
    exhausted = ""
    if suffix in UNKNOWN_OUTCOMES and phase == ACTION and has_probe:
        probing = probe_state(view, step, attempt, outcome, probe_policy or DEFAULT_PROBING)
        if probing.status == ASK:
            return Progress(NEEDS_PROBE, attempt, used, possibly_done=True, probe=probing.number)
        if probing.status == ASKING:
            return Progress(PROBING, attempt, used, possibly_done=True, probe=probing.number)
        if probing.status == WAIT:
            budget = (probe_policy or DEFAULT_PROBING).max_attempts
            said = f"probe {probing.asked} of {budget} answered {probing.why}"
            return Progress(
                PROBE_WAIT,
                attempt,
                used,
                retry_at=probing.at,
                reason=said,
                possibly_done=True,
                probe=probing.number,
            )
        if probing.status == FOUND:
            return Progress(DONE, attempt, used, result=probing.result)
        if probing.status == EXHAUSTED:
            exhausted = (
                f"attempt {attempt} ended without a known outcome and {probing.why}: "
                "treating it as possibly done, not sending it again"
            )
        else:  # not_done: this attempt did nothing; only earlier ones may have
            possibly_done = _any_unknown_unresolved(view, phase, step, attempt - 1, has_probe)

    if outcome.seq < round_start:
        # An operator opened a new round after this failure: try again straight away.
        return Progress(
            RETRY, attempt, used, retry_at=view.facts[-1].at, possibly_done=possibly_done
        )
    if exhausted:
        return Progress(GAVE_UP, attempt, used, reason=exhausted, possibly_done=True)
    reason = describe_failure(outcome)
    if suffix == FAILED and outcome.get("agent_missing"):
        return Progress(AGENT_MISSING, attempt, used, reason=reason, possibly_done=possibly_done)
    if suffix in (FAILED, UNCERTAIN) and outcome.get("permanent"):
        return Progress(
            GAVE_UP,
            attempt,
            used,
            reason=f"permanent failure: {reason}",
            possibly_done=possibly_done,
        )
    if used >= policy.max_attempts:
        return Progress(
            GAVE_UP,
            attempt,
            used,
            reason=f"gave up after {used} attempts; last {reason}",
            possibly_done=possibly_done,
        )
    delay = policy.backoff(used, seed=f"{view.workflow_id}:{phase}:{step}")
    retry_after = outcome.get("retry_after")
    if isinstance(retry_after, int | float) and retry_after > delay:
        delay = float(retry_after)
    return Progress(
        RETRY,
        attempt,
        used,
        retry_at=outcome.at + delay,
        reason=reason,
        possibly_done=possibly_done,
    )


def _any_unknown_unresolved(
    view: WorkflowView, phase: str, step: str, up_to: int, has_probe: bool
) -> bool:
    """Whether any attempt up to `up_to` may have taken effect unseen.

    Every attempt shares one idempotency key, so a later definite failure (a 503) does not
    prove an earlier timed-out attempt did nothing; only a probe that answered `not_done`
    for that attempt does. Rolling back therefore undoes a step with any such attempt.
    """
    for number in range(1, up_to + 1):
        outcome = view.slot(call_slot(phase, step, number, "outcome"))
        if outcome is None or _suffix(outcome, phase) not in UNKNOWN_OUTCOMES:
            continue
        if phase == ACTION and has_probe and last_answer(view, step, number, outcome) == "not_done":
            continue
        return True
    return False


def _late_success(view: WorkflowView, phase: str, step: str) -> Fact | None:
    for fact in view.of(OUTCOME_REPORTED_LATE, step):
        if fact.get("phase") == phase and fact.get("outcome") == SUCCEEDED:
            return fact
    return None
