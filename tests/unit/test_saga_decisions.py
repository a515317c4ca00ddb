"""The saga supervisor as a pure function: tables of fact histories in, decisions out."""

from __future__ import annotations

from typing import Any

import pytest

from steadyhand.core.decisions import CallAgent, Complete, Decision, EndCompensated, Fail, WaitUntil
from steadyhand.core.facts import Fact
from steadyhand.core.guard import guarded
from steadyhand.core.plans import Plan, RetryPolicy, StepSpec
from steadyhand.core.saga import saga
from steadyhand.core.view import WorkflowView

RETRY = RetryPolicy(max_attempts=3, initial_backoff=1.0, multiplier=2.0, jitter=0.0)
PLAN = Plan(
    "trip",
    tuple(
        StepSpec(
            name,
            f"book_{name}",
            f"cancel_{name}",
            probe=f"{name}_status" if name == "hotel" else None,
            retry=RETRY,
            compensation_retry=RETRY,
        )
        for name in ("flight", "hotel", "car")
    ),
    max_supervisor_runs=50,
)
NOW = 1000.0


def history(*events: tuple[Any, ...]) -> WorkflowView:
    """Build facts from (kind, step, attempt, data) tuples, with slots as the engine sets them."""
    facts = [Fact(1, "workflow_started", 0.0, slot="started")]
    for seq, event in enumerate(events, start=2):
        kind, step, attempt, data = (*event, None, None, None)[:4]
        slot = None
        if kind.endswith("_scheduled"):
            phase = {"attempt": "action", "compensation": "compensation", "probe": "probe"}[
                kind.split("_")[0]
            ]
            slot = f"{phase}:{step}:{attempt}:scheduled"
        elif step is not None and attempt is not None and kind != "outcome_reported_late":
            phase = {"attempt": "action", "compensation": "compensation", "probe": "probe"}[
                kind.split("_")[0]
            ]
            slot = f"{phase}:{step}:{attempt}:outcome"
        facts.append(Fact(seq, kind, float(seq), step, attempt, slot, data or {}))
    return WorkflowView("wf", "trip", {}, PLAN, 0.0, tuple(facts))


def ok(step: str, attempt: int = 1) -> list[tuple[Any, ...]]:
    return [
        ("attempt_scheduled", step, attempt),
        ("attempt_succeeded", step, attempt, {"result": step}),
    ]


def calls(decision: Decision) -> list[tuple[str, str, int]]:
    return [(c.phase, c.step, c.attempt) for c in decision.commands if isinstance(c, CallAgent)]


def test_a_new_workflow_schedules_the_first_step() -> None:
    assert calls(saga(history(), NOW)) == [("action", "flight", 1)]


def test_each_success_schedules_the_next_step() -> None:
    assert calls(saga(history(*ok("flight")), NOW)) == [("action", "hotel", 1)]


def test_all_steps_done_completes_with_every_result() -> None:
    decision = saga(history(*ok("flight"), *ok("hotel"), *ok("car")), NOW)
    assert decision.terminal == Complete({"flight": "flight", "hotel": "hotel", "car": "car"})


def test_an_attempt_in_flight_is_only_reasserted() -> None:
    decision = saga(history(*ok("flight"), ("attempt_scheduled", "hotel", 1)), NOW)
    assert calls(decision) == [("action", "hotel", 1)]
    assert "waiting" in decision.why


def test_transient_failure_backs_off_then_retries() -> None:
    failed = history(
        *ok("flight"),
        ("attempt_scheduled", "hotel", 1),
        ("attempt_failed", "hotel", 1, {"error": "503", "permanent": False}),
    )
    at = failed.facts[-1].at
    wait = saga(failed, at + 0.5)
    assert wait.commands == (WaitUntil(at + 1.0),)
    assert calls(saga(failed, at + 1.0)) == [("action", "hotel", 2)]


def test_retry_after_is_a_lower_bound_on_the_backoff() -> None:
    failed = history(
        ("attempt_scheduled", "flight", 1),
        ("attempt_failed", "flight", 1, {"permanent": False, "retry_after": 30}),
    )
    at = failed.facts[-1].at
    assert saga(failed, at + 1).commands == (WaitUntil(at + 30),)


@pytest.mark.parametrize(
    ("events", "expected_calls"),
    [
        # permanent failure of car: undo hotel first (reverse order)
        (
            [
                *ok("flight"),
                *ok("hotel"),
                ("attempt_scheduled", "car", 1),
                ("attempt_failed", "car", 1, {"permanent": True, "error": "sold out"}),
            ],
            [("compensation", "hotel", 1)],
        ),
        # hotel undone: flight next
        (
            [
                *ok("flight"),
                *ok("hotel"),
                ("attempt_scheduled", "car", 1),
                ("attempt_failed", "car", 1, {"permanent": True}),
                ("compensation_began", None, None, {"reason": "x"}),
                ("compensation_scheduled", "hotel", 1),
                ("compensation_succeeded", "hotel", 1),
            ],
            [("compensation", "flight", 1)],
        ),
    ],
)
def test_rollback_undoes_in_reverse_order(
    events: list[tuple[Any, ...]], expected_calls: list[Any]
) -> None:
    assert calls(saga(history(*events), NOW)) == expected_calls


def test_exhausted_retries_begin_the_rollback_with_the_reason() -> None:
    events = [*ok("flight")]
    for attempt in (1, 2, 3):
        events += [
            ("attempt_scheduled", "hotel", attempt),
            ("attempt_failed", "hotel", attempt, {"permanent": False, "error": "503"}),
        ]
    decision = saga(history(*events), NOW)
    began = [c for c in decision.commands if getattr(c, "kind", "") == "compensation_began"]
    assert began and "gave up after 3 attempts" in began[0].data["reason"]  # type: ignore[union-attr]
    assert calls(decision) == [("compensation", "flight", 1)]


def test_unknown_outcome_of_a_step_with_a_probe_is_probed_first() -> None:
    events = [*ok("flight"), ("attempt_scheduled", "hotel", 1), ("attempt_timed_out", "hotel", 1)]
    assert calls(saga(history(*events), NOW)) == [("probe", "hotel", 1)]
    answered = [
        *events,
        ("probe_scheduled", "hotel", 1),
        ("probe_succeeded", "hotel", 1, {"answer": "done", "result": "from probe"}),
    ]
    assert calls(saga(history(*answered), NOW)) == [("action", "car", 1)]
    missing = [
        *events,
        ("probe_scheduled", "hotel", 1),
        ("probe_succeeded", "hotel", 1, {"answer": "not_done"}),
    ]
    assert saga(history(*missing), NOW).commands and calls(saga(history(*missing), NOW + 100)) == [
        ("action", "hotel", 2)
    ]


def test_unknown_outcome_without_a_probe_is_retried_with_the_same_key() -> None:
    events = [("attempt_scheduled", "flight", 1), ("attempt_lost", "flight", 1)]
    assert calls(saga(history(*events), NOW)) == [("action", "flight", 2)]


def test_cancel_waits_for_the_call_in_flight_before_undoing() -> None:
    events = [
        *ok("flight"),
        ("attempt_scheduled", "hotel", 1),
        ("cancel_requested", None, None, {"reason": "changed mind"}),
    ]
    decision = saga(history(*events), NOW)
    assert calls(decision) == [("action", "hotel", 1)]
    assert "rolling back" in decision.why
    settled = [*events, ("attempt_succeeded", "hotel", 1, {"result": "h"})]
    assert calls(saga(history(*settled), NOW)) == [("compensation", "hotel", 1)]


def test_a_step_known_not_to_have_happened_is_not_compensated() -> None:
    events = [
        *ok("flight"),
        ("attempt_scheduled", "hotel", 1),
        ("attempt_failed", "hotel", 1, {"permanent": True}),
    ]
    assert calls(saga(history(*events), NOW)) == [("compensation", "flight", 1)]


def test_compensation_failing_permanently_fails_the_workflow() -> None:
    events = [
        *ok("flight"),
        ("attempt_scheduled", "hotel", 1),
        ("attempt_failed", "hotel", 1, {"permanent": True}),
        ("compensation_began", None, None, {"reason": "r"}),
        ("compensation_scheduled", "flight", 1),
        ("compensation_failed", "flight", 1, {"permanent": True, "error": "gone"}),
    ]
    decision = saga(history(*events), NOW)
    assert isinstance(decision.terminal, Fail)
    assert "could not compensate flight" in decision.terminal.reason


def test_everything_undone_ends_compensated() -> None:
    events = [
        *ok("flight"),
        ("attempt_scheduled", "hotel", 1),
        ("attempt_failed", "hotel", 1, {"permanent": True}),
        ("compensation_began", None, None, {"reason": "r"}),
        ("compensation_scheduled", "flight", 1),
        ("compensation_succeeded", "flight", 1),
    ]
    assert isinstance(saga(history(*events), NOW).terminal, EndCompensated)


def test_a_late_success_counts_as_done() -> None:
    events = [
        ("attempt_scheduled", "flight", 1),
        ("attempt_timed_out", "flight", 1),
        (
            "outcome_reported_late",
            "flight",
            1,
            {"phase": "action", "outcome": "succeeded", "result": "late"},
        ),
    ]
    assert calls(saga(history(*events), NOW)) == [("action", "hotel", 1)]


def test_an_ended_workflow_decides_nothing() -> None:
    events = [*ok("flight"), *ok("hotel"), *ok("car"), ("workflow_completed", None, None, {})]
    view = history(*events)
    view = WorkflowView(
        view.workflow_id,
        view.name,
        view.input,
        view.plan,
        0.0,
        (*view.facts[:-1], Fact(view.facts[-1].seq, "workflow_completed", 99.0, slot="terminal:0")),
    )
    assert guarded(saga, view, NOW).commands == ()


def test_the_run_budget_ends_a_runaway_loop() -> None:
    events: list[tuple[Any, ...]] = [("supervisor_ran", None, None, {})] * 50
    decision = guarded(saga, history(*events), NOW)
    assert isinstance(decision.terminal, Fail) and "ran 50 times" in decision.terminal.reason


def test_decisions_are_a_function_of_the_facts_alone() -> None:
    view = history(
        *ok("flight"),
        ("attempt_scheduled", "hotel", 1),
        ("attempt_failed", "hotel", 1, {"permanent": False}),
    )
    assert saga(view, NOW) == saga(view, NOW)


def test_a_step_that_fails_when_it_gives_up_stops_without_rolling_back() -> None:
    spec = StepSpec("send", "send_email", "unsend", retry=RETRY, on_give_up="fail")
    plan = Plan("mail", (StepSpec("a", "do_a", "undo_a"), spec))
    events: list[tuple[Any, ...]] = [
        ("attempt_scheduled", "a", 1),
        ("attempt_succeeded", "a", 1, {"result": 1}),
    ]
    for attempt in (1, 2, 3):
        events += [
            ("attempt_scheduled", "send", attempt),
            ("attempt_failed", "send", attempt, {"permanent": False, "error": "503"}),
        ]
    view = history(*events)
    view = WorkflowView("wf", "mail", {}, plan, 0.0, view.facts)
    decision = saga(view, NOW)
    assert isinstance(decision.terminal, Fail)
    assert "stopped without rolling back" in decision.terminal.reason
    assert not calls(decision), "nothing is compensated: a person decides"
