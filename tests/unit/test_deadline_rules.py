"""The workflow-deadline rules, from tables of facts: a wake-up at the deadline while it is
ahead, one cancel by `deadline` once it passed (once per round), nothing after the end or
while a rollback is already under way."""

from __future__ import annotations

from steadyhand.core.decisions import Decision, RecordFact, WaitUntil
from steadyhand.core.facts import (
    CANCEL_REQUESTED,
    COMPENSATION_BEGAN,
    RETRY_REQUESTED,
    WORKFLOW_COMPLETED,
    WORKFLOW_FAILED,
    WORKFLOW_STARTED,
    Fact,
    terminal_slot,
)
from steadyhand.core.guard import guarded
from steadyhand.core.plans import Plan
from steadyhand.core.view import WorkflowView

PLAN = Plan("p", (), "custom", 50, {})
STARTED = Fact(
    1, WORKFLOW_STARTED, 100.0, slot="started", data={"deadline": 10.0, "deadline_at": 110.0}
)


def view(*facts: Fact) -> WorkflowView:
    return WorkflowView("w", "p", {}, PLAN, 100.0, (STARTED, *facts))


def waiting(v: WorkflowView, now: float) -> Decision:
    return Decision((WaitUntil(now + 1000),), "waiting")


def test_before_the_deadline_every_decision_also_wakes_at_it() -> None:
    decision = guarded(waiting, view(), 105.0)
    assert decision.commands == (WaitUntil(110.0),)  # the earlier of the two wake-ups


def test_after_the_deadline_one_cancel_by_deadline_and_a_prompt_rerun() -> None:
    decision = guarded(waiting, view(), 110.0)
    [record, wait] = decision.commands
    assert isinstance(record, RecordFact) and record.kind == CANCEL_REQUESTED
    assert record.slot == "deadline:0" and record.data["by"] == "deadline"
    assert "deadline (10s) passed" in record.data["reason"]
    assert wait == WaitUntil(110.0)


def test_no_deadline_rule_once_a_rollback_began_or_the_workflow_ended() -> None:
    cancelled = view(Fact(2, CANCEL_REQUESTED, 111.0, slot="deadline:0", data={}))
    assert guarded(waiting, cancelled, 120.0).commands == (WaitUntil(1120.0),)
    rolling = view(Fact(2, COMPENSATION_BEGAN, 105.0, data={"reason": "x"}))
    assert guarded(waiting, rolling, 120.0).commands == (WaitUntil(1120.0),)
    done = view(Fact(2, WORKFLOW_COMPLETED, 105.0, slot=terminal_slot(0), data={}))
    assert guarded(waiting, done, 120.0).commands == ()


def test_a_retried_round_after_the_deadline_rolls_back_again() -> None:
    retried = view(
        Fact(2, CANCEL_REQUESTED, 111.0, slot="deadline:0", data={}),
        Fact(3, WORKFLOW_FAILED, 112.0, slot=terminal_slot(0), data={"reason": "x"}),
        Fact(4, RETRY_REQUESTED, 113.0, slot="retry:1", data={}),
    )
    [record, _] = guarded(waiting, retried, 120.0).commands
    assert isinstance(record, RecordFact) and record.slot == "deadline:1"


def test_a_workflow_without_deadline_is_untouched() -> None:
    plain = WorkflowView("w", "p", {}, PLAN, 100.0, (Fact(1, WORKFLOW_STARTED, 100.0),))
    assert guarded(waiting, plain, 1e9).commands == (WaitUntil(1e9 + 1000),)
