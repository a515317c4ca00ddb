"""Facts: the immutable records of what happened to a workflow, and a read-only view of them.

Fact kinds are past-tense names. A fact may carry a *slot*: a name unique within its
workflow, which is how the database (not the code) makes "attempt 2 of hotel scheduled"
or "the workflow ended" impossible to record twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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
SLEEP_BEGAN = "sleep_began"  # a code-first `wf.sleep` began; data has `until` (epoch seconds)
PATCH_RECORDED = "patch_recorded"  # a code-first `wf.patched(id)` was answered; data has `value`
CHILD_STARTED = "child_started"  # a child workflow was started for `step`; data has its id
CHILD_CANCEL_REQUESTED = "child_cancel_requested"  # the parent asked its child to roll back
CONTINUED_FROM = "continued_from"  # this run continues an earlier one (wf.continue_as_new)
SUPERVISOR_RAISED = "supervisor_raised"  # supervisor code raised: a bug; data has the traceback
DECISION_REFUSED = "decision_refused"  # a decision could not be applied; data says what is wrong
CANCEL_IGNORED = "cancel_ignored"  # a cancel arrived after the end; nothing changed
LATE_UNDO_FAILED = "late_undo_failed"  # a step that succeeded after the rollback stays done

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
WITHDRAWN = "withdrawn"  # the workflow ended while the call was queued: it never ran
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
