"""Facts: the immutable records of what happened to a workflow, and a read-only view of them.

Fact kinds are past-tense names. A fact may carry a *slot*: a name unique within its
workflow, which is how the database (not the code) makes "attempt 2 of hotel scheduled"
or "the workflow ended" impossible to record twice.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from steadyhand.core import slots


class FactKind(StrEnum):
    """Every kind of workflow fact, in the past tense, with what it means.

    Members are strings (`FactKind.WORKFLOW_STARTED == "workflow_started"`), so they are
    stored and compared as the kind text itself. Call facts are named
    `<phase prefix>_<suffix>` (see `call_kind`); a test keeps this list and that rule in step.
    """

    # Workflow-level facts.
    WORKFLOW_STARTED = "workflow_started"  # the scheduler wrote the plan and the input
    CANCEL_REQUESTED = "cancel_requested"  # someone asked to stop and roll back
    RETRY_REQUESTED = "retry_requested"  # an operator resumed a failed workflow: a new round
    COMPENSATION_BEGAN = "compensation_began"  # the supervisor decided to roll back, and why
    SUPERVISOR_RAN = "supervisor_ran"  # breadcrumb: what one run saw, decided, and why
    WORKFLOW_COMPLETED = "workflow_completed"  # every step succeeded; carries the result
    WORKFLOW_COMPENSATED = "workflow_compensated"  # rolled back cleanly; carries the reason
    WORKFLOW_FAILED = "workflow_failed"  # could neither finish nor roll back: a person must look
    ATTEMPT_DEFERRED = "attempt_deferred"  # a call was held back: its service's circuit is open
    OUTCOME_REPORTED_LATE = "outcome_reported_late"  # an answer came after its attempt closed
    EVENT_RECEIVED = "event_received"  # an outside event arrived; `step` holds its name
    WAIT_BEGAN = "wait_began"  # a step began waiting for its event (its deadline counts from here)
    WAIT_TIMED_OUT = "wait_timed_out"  # a step's awaited event did not come before its deadline
    CHILD_STARTED = "child_started"  # a child workflow was started for `step`; data has its id
    CHILD_CANCEL_REQUESTED = "child_cancel_requested"  # the parent asked its child to roll back
    CONTINUED_FROM = "continued_from"  # this run continues an earlier one (wf.continue_as_new)
    SLEEP_BEGAN = "sleep_began"  # a code-first `wf.sleep` began; data has `until` (epoch s)
    PATCH_RECORDED = "patch_recorded"  # a code-first `wf.patched(id)` was answered; has `value`
    SUPERVISOR_RAISED = "supervisor_raised"  # supervisor code raised: a bug; data has the traceback
    DECISION_REFUSED = "decision_refused"  # a decision could not be applied; data says why
    CANCEL_IGNORED = "cancel_ignored"  # a cancel arrived after the end; nothing changed
    LATE_UNDO_FAILED = "late_undo_failed"  # a step that succeeded after the rollback stays done

    # Calls to agents: the action of a step (attempt_*), its compensation (compensation_*),
    # and a probe asking the remote service what became of an unknown outcome (probe_*).
    ATTEMPT_SCHEDULED = "attempt_scheduled"  # the supervisor asked for the call; task queued
    ATTEMPT_SUCCEEDED = "attempt_succeeded"  # the agent returned a result
    ATTEMPT_FAILED = "attempt_failed"  # the agent raised; data says whether it is transient
    ATTEMPT_TIMED_OUT = "attempt_timed_out"  # no answer within the timeout: outcome unknown
    ATTEMPT_LOST = "attempt_lost"  # the worker's lease expired mid-call: outcome unknown
    ATTEMPT_UNCERTAIN = "attempt_uncertain"  # the agent said OutcomeUnknown (answer cut off)
    ATTEMPT_WITHDRAWN = "attempt_withdrawn"  # the workflow ended while the call was queued
    COMPENSATION_SCHEDULED = "compensation_scheduled"  # an undo was asked for; task queued
    COMPENSATION_SUCCEEDED = "compensation_succeeded"  # the undo returned
    COMPENSATION_FAILED = "compensation_failed"  # the undo raised
    COMPENSATION_TIMED_OUT = "compensation_timed_out"  # the undo did not answer in time
    COMPENSATION_LOST = "compensation_lost"  # the undo's worker died mid-call
    COMPENSATION_UNCERTAIN = "compensation_uncertain"  # the undo's answer was cut off
    COMPENSATION_WITHDRAWN = "compensation_withdrawn"  # the workflow ended; the undo never ran
    PROBE_SCHEDULED = "probe_scheduled"  # the supervisor asked what became of an unknown call
    PROBE_SUCCEEDED = "probe_succeeded"  # the probe answered (done, not done, or unknown)
    PROBE_FAILED = "probe_failed"  # the probe raised
    PROBE_TIMED_OUT = "probe_timed_out"  # the probe did not answer in time
    PROBE_LOST = "probe_lost"  # the probe's worker died mid-call
    PROBE_UNCERTAIN = "probe_uncertain"  # the probe's answer was cut off
    PROBE_WITHDRAWN = "probe_withdrawn"  # the workflow ended; the probe never ran


# The names other modules import: aliases of the members (kept so existing code reads on;
# typed `str` so that maps and sets mixing them with plain kind text type-check as before).
WORKFLOW_STARTED: str = FactKind.WORKFLOW_STARTED
CANCEL_REQUESTED: str = FactKind.CANCEL_REQUESTED
RETRY_REQUESTED: str = FactKind.RETRY_REQUESTED
COMPENSATION_BEGAN: str = FactKind.COMPENSATION_BEGAN
SUPERVISOR_RAN: str = FactKind.SUPERVISOR_RAN
WORKFLOW_COMPLETED: str = FactKind.WORKFLOW_COMPLETED
WORKFLOW_COMPENSATED: str = FactKind.WORKFLOW_COMPENSATED
WORKFLOW_FAILED: str = FactKind.WORKFLOW_FAILED
ATTEMPT_DEFERRED: str = FactKind.ATTEMPT_DEFERRED
OUTCOME_REPORTED_LATE: str = FactKind.OUTCOME_REPORTED_LATE
EVENT_RECEIVED: str = FactKind.EVENT_RECEIVED
WAIT_BEGAN: str = FactKind.WAIT_BEGAN
WAIT_TIMED_OUT: str = FactKind.WAIT_TIMED_OUT
CHILD_STARTED: str = FactKind.CHILD_STARTED
CHILD_CANCEL_REQUESTED: str = FactKind.CHILD_CANCEL_REQUESTED
SUPERVISOR_RAISED: str = FactKind.SUPERVISOR_RAISED
DECISION_REFUSED: str = FactKind.DECISION_REFUSED
CANCEL_IGNORED: str = FactKind.CANCEL_IGNORED
LATE_UNDO_FAILED: str = FactKind.LATE_UNDO_FAILED
SLEEP_BEGAN: str = FactKind.SLEEP_BEGAN
PATCH_RECORDED: str = FactKind.PATCH_RECORDED
CONTINUED_FROM: str = FactKind.CONTINUED_FROM

TERMINAL_KINDS = (WORKFLOW_COMPLETED, WORKFLOW_COMPENSATED, WORKFLOW_FAILED)
TERMINAL_STATES: dict[str, str] = {
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
CALL_SUFFIXES = (SCHEDULED, *OUTCOMES, WITHDRAWN)  # every call kind is a prefix and one of these


@functools.cache
def call_kind(phase: str, suffix: str) -> FactKind:
    """The fact kind for a call event, e.g. ("compensation", "failed") -> compensation_failed.
    (Looked up once per pair: every decision asks for them.)"""
    return FactKind(f"{PHASE_PREFIX[phase]}_{suffix}")


def outcome_kinds(phase: str, suffixes: tuple[str, ...] = OUTCOMES) -> tuple[FactKind, ...]:
    """The outcome kinds of one phase, e.g. every `attempt_*` outcome (in `suffixes` order)."""
    return tuple(call_kind(phase, suffix) for suffix in suffixes)


# Slot builders, at their old address (`core.slots` builds every slot name).
call_slot = slots.call_slot
terminal_slot = slots.terminal_slot

# Every call outcome of every phase (what stats count), derived, never listed by hand.
CALL_OUTCOME_KINDS = tuple(kind for phase in PHASE_PREFIX for kind in outcome_kinds(phase))


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
