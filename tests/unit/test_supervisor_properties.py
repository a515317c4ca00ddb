"""Property-based tests of the pure saga supervisor against a simulated, hostile environment.

The simulation applies decisions to an in-memory fact list the way `engine._apply` does
(slots make duplicates impossible, one `supervisor_ran` per run) and lets hypothesis pick
outcomes, duplicate and late deliveries, cancels and clock jumps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from steadyhand.core.decisions import (
    CallAgent,
    Complete,
    Decision,
    EndCompensated,
    Fail,
    RecordFact,
    WaitUntil,
)
from steadyhand.core.facts import (
    CANCEL_REQUESTED,
    COMPENSATION_BEGAN,
    OUTCOME_REPORTED_LATE,
    SUPERVISOR_RAN,
    TERMINAL_KINDS,
    WORKFLOW_COMPENSATED,
    WORKFLOW_COMPLETED,
    WORKFLOW_FAILED,
    Fact,
    call_kind,
    call_slot,
    terminal_slot,
)
from steadyhand.core.guard import guarded
from steadyhand.core.plans import Plan, RetryPolicy, StepSpec
from steadyhand.core.probing import last_answer
from steadyhand.core.saga import saga
from steadyhand.core.view import WorkflowView

PHASES = ("action", "compensation", "probe")
OUTCOME_WORDS = ("succeeded", "transient", "permanent", "timed_out", "lost", "uncertain")
PROBE_ANSWERS = ("done", "not_done", "unknown")
UNKNOWN_KINDS = ("attempt_timed_out", "attempt_lost", "attempt_uncertain")
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def plans(draw: st.DrawFn, budget: int = 1000) -> Plan:
    steps = []
    for i in range(draw(st.integers(1, 4))):
        retry = RetryPolicy(
            max_attempts=draw(st.integers(1, 3)), initial_backoff=1.0, jitter=0.0, max_backoff=8.0
        )
        undo = RetryPolicy(
            max_attempts=draw(st.integers(1, 3)), initial_backoff=1.0, jitter=0.0, max_backoff=8.0
        )
        steps.append(
            StepSpec(
                f"s{i}",
                f"do_{i}",
                f"undo_{i}" if draw(st.booleans()) else None,
                probe=f"probe_{i}" if draw(st.booleans()) else None,
                retry=retry,
                compensation_retry=undo,
                timeout=5.0,
            )
        )
    return Plan("prop", tuple(steps), max_supervisor_runs=budget)


@dataclass
class Sim:
    """A workflow's facts in memory, appended exactly as the engine appends them."""

    plan: Plan
    now: float = 100.0
    facts: list[Fact] = field(default_factory=list)
    wake_at: float | None = None
    runs: int = 0

    def __post_init__(self) -> None:
        self.append("workflow_started", slot="started")

    def view(self) -> WorkflowView:
        return WorkflowView("wf-prop", "prop", {}, self.plan, 0.0, tuple(self.facts))

    def taken(self, slot: str | None) -> bool:
        return slot is not None and any(f.slot == slot for f in self.facts)

    def append(
        self,
        kind: str,
        step: str | None = None,
        attempt: int | None = None,
        slot: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> bool:
        if self.taken(slot):
            return False  # the unique slot index refuses it
        self.facts.append(Fact(len(self.facts) + 1, kind, self.now, step, attempt, slot, data))
        return True

    def run(self) -> Decision:
        view = self.view()
        decision = guarded(saga, view, self.now)
        assert decision == guarded(saga, view, self.now), "a decision depends on facts and now only"
        assert decision == guarded(saga, self.view(), self.now)
        self.runs += 1
        if view.terminal is not None:
            return decision  # the engine still runs; nothing to apply
        self.append(SUPERVISOR_RAN, data={"decided": decision.describe(), "why": decision.why})
        self.wake_at = None
        for command in decision.commands:
            if isinstance(command, CallAgent):
                slot = call_slot(command.phase, command.step, command.attempt, "scheduled")
                kind = call_kind(command.phase, "scheduled")
                self.append(kind, command.step, command.attempt, slot, {"agent": command.agent})
            elif isinstance(command, RecordFact):
                self.append(command.kind, command.step, None, command.slot, dict(command.data))
            elif isinstance(command, WaitUntil):
                self.wake_at = command.at
            elif isinstance(command, Complete):
                self.append("workflow_completed", slot=terminal_slot(0), data={"result": 1})
            elif isinstance(command, EndCompensated):
                self.append(WORKFLOW_COMPENSATED, slot=terminal_slot(0), data={"reason": "x"})
            elif isinstance(command, Fail):
                self.append(WORKFLOW_FAILED, slot=terminal_slot(0), data={"reason": command.reason})
            else:  # pragma: no cover - no children in these plans
                raise AssertionError(f"unexpected command {command}")
        return decision

    def in_flight(self) -> list[tuple[str, str, int]]:
        open_calls = []
        for fact in self.facts:
            if fact.slot and fact.slot.endswith(":scheduled"):
                phase, step, attempt, _ = fact.slot.split(":")
                if not self.taken(call_slot(phase, step, int(attempt), "outcome")):
                    open_calls.append((phase, step, int(attempt)))
        return open_calls

    def closed(self) -> list[tuple[str, str, int]]:
        done = []
        for fact in self.facts:
            if fact.slot and fact.slot.endswith(":outcome"):
                phase, step, attempt, _ = fact.slot.split(":")
                done.append((phase, step, int(attempt)))
        return done

    def deliver(self, call: tuple[str, str, int], word: str, answer: str) -> None:
        """Record an outcome as `record_outcome` does: in the slot, or as a late report."""
        phase, step, attempt = call
        suffix, data = _outcome(phase, word, answer)
        slot = call_slot(phase, step, attempt, "outcome")
        existing = next((f for f in self.facts if f.slot == slot), None)
        if existing is None:
            self.append(call_kind(phase, suffix), step, attempt, slot, data)
        elif existing.kind != call_kind(phase, suffix):
            late = {**data, "phase": phase, "outcome": suffix, "attempt": attempt}
            self.append(OUTCOME_REPORTED_LATE, step, attempt, None, late)


def _outcome(phase: str, word: str, answer: str) -> tuple[str, dict[str, Any]]:
    if word == "succeeded":
        data: dict[str, Any] = {"result": f"{phase}-ok"}
        if phase == "probe":
            data["answer"] = answer
        return "succeeded", data
    if word in ("transient", "permanent"):
        return "failed", {"error": word, "permanent": word == "permanent"}
    return word, {"error": word}


# -- invariants -------------------------------------------------------------------------------


def check_invariants(sim: Sim) -> None:
    view = sim.view()
    order = [s.name for s in sim.plan.steps]
    # Never two calls of the same step and phase in flight.
    flying = [(phase, step) for phase, step, _ in sim.in_flight()]
    assert len(flying) == len(set(flying)), f"two calls in flight: {flying}"
    # At most one terminal fact.
    assert sum(1 for f in sim.facts if f.kind in TERMINAL_KINDS) <= 1
    # Compensation only after it began, and no action scheduled after it began.
    began = view.latest(COMPENSATION_BEGAN)
    comp = view.of("compensation_scheduled")
    if comp:
        assert began is not None and began.seq < comp[0].seq
    if began is not None:
        assert not any(f.kind == "attempt_scheduled" and f.seq > began.seq for f in sim.facts)
    # A probed step's uncertain attempt is re-sent only after a probe said `not_done`.
    for spec in sim.plan.steps:
        if spec.probe is None:
            continue
        for again in view.of("attempt_scheduled", spec.name):
            before = view.slot(call_slot("action", spec.name, (again.attempt or 1) - 1, "outcome"))
            if before is None or before.kind not in UNKNOWN_KINDS or before.seq > again.seq:
                continue
            answer = last_answer(view, spec.name, (again.attempt or 1) - 1, before)
            assert answer == "not_done" or before.seq < view.round_start, (
                f"attempt {again.attempt} of {spec.name} re-sent after an unknown outcome "
                f"(the probe said {answer})"
            )
    # Never compensate a step known not to have taken effect.
    for step in {f.step for f in comp}:
        assert step is not None
        assert not known_not_done(view, step), f"compensated {step}, which never took effect"
    # Compensations in reverse plan order (first scheduling of each step), among the steps
    # known to have taken effect when the rollback began: a success reported late, after
    # earlier steps were already being undone, can only be undone after them.
    known = began.seq if began is not None else 0
    evidence = ("attempt_succeeded", "attempt_timed_out", "attempt_lost", "attempt_uncertain")
    first: list[str] = []
    for fact in comp:
        seen_before = any(
            f.step == fact.step
            and f.seq < known
            and (
                f.kind in evidence
                or (f.kind == "outcome_reported_late" and f.get("phase") == "action")
            )
            for f in sim.facts
        )
        if fact.step not in first and seen_before:
            first.append(str(fact.step))
    indexes = [order.index(s) for s in first]
    assert indexes == sorted(indexes, reverse=True), f"compensation order {first}"
    # A compensation is never scheduled while another compensation or an action is open.
    open_phases = [(p, s) for p, s, _ in sim.in_flight() if p != "probe"]
    if any(p == "compensation" for p, _ in open_phases):
        assert len(open_phases) == 1, f"compensation overlaps other calls: {open_phases}"


def known_not_done(view: WorkflowView, step: str) -> bool:
    """The action never succeeded and every attempt failed definitively."""
    if view.has("attempt_succeeded", step):
        return False
    if late_success(view, "action", step):
        return False
    scheduled = view.of("attempt_scheduled", step)
    for fact in scheduled:
        attempt = fact.attempt or 0
        outcome = view.slot(call_slot("action", step, attempt, "outcome"))
        if outcome is None:
            return False
        if outcome.kind == "attempt_failed":
            continue
        if last_answer(view, step, attempt, outcome) != "not_done":  # probes: per step
            return False
    return True


def late_success(view: WorkflowView, phase: str, step: str) -> bool:
    return any(
        f.get("phase") == phase and f.get("outcome") == "succeeded"
        for f in view.of(OUTCOME_REPORTED_LATE, step)
    )


def took_effect(view: WorkflowView, step: str) -> bool:
    """The action certainly took effect (a success was seen, or a probe said done)."""
    if view.has("attempt_succeeded", step):
        return True
    if late_success(view, "action", step):
        return True
    return any(f.get("answer") == "done" for f in view.of("probe_succeeded", step))


def check_end(sim: Sim) -> None:
    """Once ended, a compensated workflow left nothing that certainly took effect undone."""
    view = sim.view()
    end = view.terminal
    assert end is not None
    if end.kind == WORKFLOW_COMPENSATED:
        for spec in sim.plan.steps:
            if spec.compensation and took_effect(view, spec.name):
                undone = view.has("compensation_succeeded", spec.name) or late_success(
                    view, "compensation", spec.name
                )
                assert undone, f"{spec.name} took effect and was left done"
    if end.kind == "workflow_completed":
        for spec in sim.plan.steps:
            assert took_effect(view, spec.name)
        assert not view.has(COMPENSATION_BEGAN)
    # An ended workflow stays ended, whatever arrives later.
    assert guarded(saga, view, sim.now + 1e6).commands == ()


# -- the environment --------------------------------------------------------------------------


def environment_step(data: st.DataObject, sim: Sim, extras: dict[str, int]) -> None:
    """Hostile but fair: extras (duplicates, cancels, jumps), then one call answers."""
    while True:
        move = data.draw(st.sampled_from(("deliver", "duplicate", "cancel", "jump")))
        if move == "duplicate" and extras["duplicates"] > 0 and sim.closed():
            extras["duplicates"] -= 1
            call = data.draw(st.sampled_from(sim.closed()))
            word = data.draw(st.sampled_from(OUTCOME_WORDS))
            sim.deliver(call, word, data.draw(st.sampled_from(PROBE_ANSWERS)))
            sim.run()  # the engine decides in the same transaction
        elif move == "cancel" and extras["cancels"] > 0:
            extras["cancels"] -= 1
            sim.append(CANCEL_REQUESTED, data={"reason": "hypothesis"})
            sim.run()
        elif move == "jump" and extras["jumps"] > 0:
            extras["jumps"] -= 1
            sim.now += data.draw(st.floats(0.0, 20.0, allow_nan=False))
            sim.run()
        else:
            break
        if sim.view().terminal is not None:
            return
    flying = sim.in_flight()
    if flying:
        call = data.draw(st.sampled_from(flying))
        sim.now += data.draw(st.floats(0.0, 6.0, allow_nan=False))
        word = data.draw(st.sampled_from(OUTCOME_WORDS))
        sim.deliver(call, word, data.draw(st.sampled_from(PROBE_ANSWERS)))
    elif sim.wake_at is not None:
        sim.now = max(sim.now, sim.wake_at)  # the queue's delayed "supervise W" task fires
    sim.run()


MAX_RUNS = 300


@SETTINGS
@given(plan=plans(), data=st.data())
def test_every_workflow_ends_once_and_keeps_the_invariants(plan: Plan, data: st.DataObject) -> None:
    sim = Sim(plan)
    extras = {"duplicates": 4, "cancels": 2, "jumps": 4}
    sim.run()
    while sim.view().terminal is None:
        check_invariants(sim)
        assert sim.in_flight() or sim.wake_at is not None, "stuck: nothing in flight, no wake-up"
        assert sim.runs < MAX_RUNS, "no terminal state within the bound on runs"
        environment_step(data, sim, extras)
    check_invariants(sim)
    check_end(sim)
    # Late and duplicate outcomes after the end change nothing, except that an action that
    # succeeded after a rollback is undone (its compensation is called).
    rolled_back = sim.view().terminal.kind == WORKFLOW_COMPENSATED  # type: ignore[union-attr]
    delivered: set[str] = set()
    for call in sim.closed()[:3]:
        sim.deliver(call, "succeeded", "done")
        delivered.add(call[1])
        for command in sim.run().commands:
            assert rolled_back and isinstance(command, CallAgent), command
            assert command.phase == "compensation" and command.step in delivered
    assert sum(1 for f in sim.facts if f.kind in TERMINAL_KINDS) == 1


@SETTINGS
@given(plan=plans(), budget=st.integers(1, 8), data=st.data())
def test_the_run_budget_ends_runaway_loops(plan: Plan, budget: int, data: st.DataObject) -> None:
    plan = Plan(plan.workflow, plan.steps, max_supervisor_runs=budget)
    sim = Sim(plan)
    extras = {"duplicates": 4, "cancels": 1, "jumps": 4}
    sim.run()
    while sim.view().terminal is None:
        assert sim.runs <= 2 * budget + 2
        environment_step(data, sim, extras)
    ran = sim.view().count(SUPERVISOR_RAN)
    # One budget to go forward; when it is spent with effects in place, one more to roll
    # back (core.budget): never an endless loop, and never stopped half-done silently.
    assert ran <= 2 * budget + 2
    end = sim.view().terminal
    assert end is not None
    if ran > budget:
        assert end.kind != WORKFLOW_COMPLETED


def test_a_supervisor_looping_forever_is_failed_by_the_budget() -> None:
    sim = Sim(Plan("prop", (StepSpec("s0", "do_0"),), max_supervisor_runs=7))
    while sim.view().terminal is None:
        sim.run()  # nothing ever answers: every run only re-asserts the call
    # The call may still take effect, so the spent budget begins a rollback, which waits
    # for the call with a budget of its own; that runs out too and the workflow fails.
    assert sim.runs == 7 + 1 + 7 + 1  # forward, the run that begins, rollback, the last
    end = sim.view().terminal
    assert end is not None and end.kind == WORKFLOW_FAILED
    assert "while rolling back (the budget is 7)" in str(end.get("reason"))
    began = sim.view().latest("compensation_began")
    assert began is not None and "the budget is 7" in str(began.get("reason"))


@pytest.mark.parametrize("answer", PROBE_ANSWERS)
def test_probe_answers_after_a_timeout(answer: str) -> None:
    spec = StepSpec(
        "s0", "do_0", "undo_0", probe="probe_0", retry=RetryPolicy(max_attempts=1), probe_budget=2
    )
    sim = Sim(Plan("prop", (spec,)))
    sim.run()
    sim.deliver(("action", "s0", 1), "timed_out", "")
    sim.run()
    assert sim.in_flight() == [("probe", "s0", 1)]
    sim.deliver(("probe", "s0", 1), "succeeded", answer)
    decision = sim.run()
    if answer == "done":
        assert isinstance(decision.terminal, Complete)
    elif answer == "not_done":
        assert isinstance(decision.terminal, EndCompensated)  # nothing to undo
        assert not sim.view().has("compensation_scheduled")
    else:
        assert sim.in_flight() == [], "unknown: neither re-sent nor undone yet, asked later"
        assert sim.wake_at is not None and sim.wake_at > sim.now
        sim.now = sim.wake_at
        sim.run()
        assert sim.in_flight() == [("probe", "s0", 2)]
        sim.deliver(("probe", "s0", 2), "succeeded", "unknown")
        sim.run()
        assert sim.in_flight() == [("compensation", "s0", 1)]  # budget spent: possibly done


def test_an_earlier_unknown_attempt_is_still_compensated() -> None:
    spec = StepSpec(
        "s0",
        "do_0",
        "undo_0",
        retry=RetryPolicy(max_attempts=2, initial_backoff=1.0, jitter=0.0),
    )
    sim = Sim(Plan("prop", (spec,)))
    sim.run()
    sim.deliver(("action", "s0", 1), "timed_out", "")  # may have booked it
    sim.run()
    sim.now += 10
    sim.run()
    sim.deliver(("action", "s0", 2), "transient", "")  # a 503: says nothing about attempt 1
    decision = sim.run()
    assert not isinstance(decision.terminal, EndCompensated), decision.why
    assert sim.in_flight() == [("compensation", "s0", 1)]
