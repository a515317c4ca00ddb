"""What an operator's action (retry, cancel) does to one workflow, decided from its facts
under the workflow's lock: the facts to append, whether to wake the supervisor, and what
to tell the operator. Pure, so two operators acting at once cannot both act on a stale
read: the second one decides from the facts the first one wrote, and is told so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from steadyhand.core.facts import CANCEL_IGNORED, CANCEL_REQUESTED, RETRY_REQUESTED, Fact
from steadyhand.core.records import NewFact
from steadyhand.core.slots import retry_slot
from steadyhand.core.view import WorkflowView

DONE = "done"  # this call did it
ALREADY = "already"  # someone else already did it; nothing changed
ENDED = "ended"  # a cancel after the end: nothing to roll back (the CLI exits 5)
NOT_APPLICABLE = "not_applicable"  # the action does not apply to the workflow's state


@dataclass(frozen=True)
class ActionStatus:
    """The answer to an operator's action: what happened (`result`), the workflow's state
    afterwards, and a sentence for the operator."""

    workflow_id: str
    action: str  # retry or cancel
    result: str  # done, already, ended or not_applicable
    state: str
    message: str

    @property
    def applied(self) -> bool:
        return self.result == DONE

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.workflow_id,
            "action": self.action,
            "result": self.result,
            "state": self.state,
            "message": self.message,
        }


@dataclass(frozen=True)
class ActionPlan:
    """What to write: facts (appended in order) and whether the supervisor must run."""

    status: ActionStatus
    facts: tuple[NewFact, ...] = ()
    wake: bool = False


def _who(fact: Fact) -> str:
    by = fact.get("by")
    return f" by {by}" if by else ""


def _data(reason: str, by: str, batch: str | None) -> dict[str, Any]:
    """An operator fact's data: why, who, and the bulk action it belongs to (if any)."""
    data: dict[str, Any] = {"reason": reason, "by": by}
    if batch:
        data["batch"] = batch
    return data


def retry(view: WorkflowView, reason: str, by: str, batch: str | None = None) -> ActionPlan:
    """Open a new round of a failed workflow; asked twice, the second is told it was done."""
    wid, state = view.workflow_id, view.state
    if state == "failed":
        data = _data(reason or "operator retry", by, batch)
        fact = NewFact(RETRY_REQUESTED, slot=retry_slot(view.round + 1), data=data)
        message = f"retried: round {view.round + 1} began"
        return ActionPlan(ActionStatus(wid, "retry", DONE, "running", message), (fact,), wake=True)
    opened = view.latest(RETRY_REQUESTED)
    if opened is not None and view.terminal is None:
        message = f"already retried{_who(opened)}: round {view.round} is {state}; nothing was added"
        return ActionPlan(ActionStatus(wid, "retry", ALREADY, state, message))
    message = f"workflow {wid} is {state}; only a failed workflow can be retried"
    return ActionPlan(ActionStatus(wid, "retry", NOT_APPLICABLE, state, message))


def cancel(view: WorkflowView, reason: str, by: str, batch: str | None = None) -> ActionPlan:
    """Roll back a workflow that has not ended, or a failed one (a new round that
    compensates what took effect); after any other end, nothing to do."""
    wid, state = view.workflow_id, view.state
    data: Mapping[str, Any] = _data(reason or "cancel requested", by, batch)
    if state in ("completed", "compensated"):
        message = f"already ended {state}: nothing to cancel"
        ignored = NewFact(CANCEL_IGNORED, data={**data, "state": state})
        return ActionPlan(ActionStatus(wid, "cancel", ENDED, state, message), (ignored,))
    if state == "failed":
        reopen = NewFact(
            RETRY_REQUESTED,
            slot=retry_slot(view.round + 1),
            data={**data, "reason": f"roll back: {data['reason']}", "rollback": True},
        )
        both = (reopen, NewFact(CANCEL_REQUESTED, data=data))
        message = f"rolling back what took effect (round {view.round + 1})"
        status = ActionStatus(wid, "cancel", DONE, "compensating", message)
        return ActionPlan(status, both, wake=True)
    earlier = view.latest(CANCEL_REQUESTED)
    if earlier is not None and earlier.seq > view.round_start:
        message = f"already cancelled{_who(earlier)}: the workflow is {state}"
        return ActionPlan(ActionStatus(wid, "cancel", ALREADY, state, message))
    message = "cancel recorded: rolling back"
    facts = (NewFact(CANCEL_REQUESTED, data=data),)
    return ActionPlan(ActionStatus(wid, "cancel", DONE, "compensating", message), facts, wake=True)
