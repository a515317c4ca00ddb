"""A probe that answers "unknown" is asked again later, with backoff, up to the step's probe
budget; only "not_done" allows a retry; a budget spent without an answer leaves the step
possibly done (compensated on rollback), never re-sent (issue 22). Pure: facts in, decision out.
"""

from __future__ import annotations

from steadyhand.core.decisions import Complete, Fail
from steadyhand.core.facts import CANCEL_REQUESTED
from steadyhand.core.plans import Plan, RetryPolicy, StepSpec
from steadyhand.core.probing import ASK, EXHAUSTED, WAIT, probe_state
from tests.unit.test_supervisor_properties import Sim

A1 = ("action", "s0", 1)


def probed(budget: int = 4, on_give_up: str = "compensate") -> Sim:
    spec = StepSpec(
        "s0", "do_0", "undo_0", probe="probe_0",
        retry=RetryPolicy(max_attempts=3, initial_backoff=0.5, jitter=0.0),
        probe_budget=budget, probe_backoff=1.0, on_give_up=on_give_up,
    )  # fmt: skip
    sim = Sim(Plan("prop", (spec,)))
    sim.run()
    return sim


def lose_attempt_one(sim: Sim) -> None:
    sim.deliver(A1, "lost", "")
    sim.run()


def answer_probe(sim: Sim, number: int, word: str = "succeeded", answer: str = "unknown") -> str:
    assert sim.in_flight() == [("probe", "s0", number)]
    sim.now += 0.1
    sim.deliver(("probe", "s0", number), word, answer)
    return sim.run().why


def wait_out(sim: Sim) -> float:
    assert sim.wake_at is not None
    waited = sim.wake_at - sim.now
    sim.now = sim.wake_at
    sim.run()
    return waited


def test_unknown_waits_with_growing_backoff_and_only_not_done_retries() -> None:
    sim = probed()
    lose_attempt_one(sim)
    waits, whys = [], []
    for number in (1, 2, 3):
        whys.append(answer_probe(sim, number))
        assert sim.in_flight() == [], "nothing re-sent while the probe cannot tell"
        waits.append(wait_out(sim))
    assert waits == sorted(waits) and waits[0] < waits[-1], waits
    assert "probe 1 of 4 answered unknown" in whys[0] and "asking again in" in whys[0]
    assert "probe 3 of 4" in whys[2] and "not retrying meanwhile" in whys[2]
    answer_probe(sim, 4, answer="not_done")
    if sim.wake_at is not None:  # the retry's own backoff, counted from attempt 1's end
        wait_out(sim)
    assert sim.in_flight() == [("action", "s0", 2)]


def test_a_probe_that_fails_could_not_tell_and_is_asked_again() -> None:
    sim = probed()
    lose_attempt_one(sim)
    why = answer_probe(sim, 1, word="timed_out")
    assert "unknown (the probe timed out" in why
    assert sim.in_flight() == []
    wait_out(sim)
    assert sim.in_flight() == [("probe", "s0", 2)]


def test_done_after_unknown_completes_without_a_second_attempt() -> None:
    sim = probed()
    lose_attempt_one(sim)
    answer_probe(sim, 1)
    wait_out(sim)
    answer_probe(sim, 2, answer="done")
    assert sim.view().has("workflow_completed")
    assert not sim.view().of("attempt_scheduled")[1:], "attempt 1 was never re-sent"


def test_a_spent_budget_leaves_the_step_possibly_done_and_compensates_it() -> None:
    sim = probed(budget=2)
    lose_attempt_one(sim)
    answer_probe(sim, 1)
    wait_out(sim)
    why = answer_probe(sim, 2)
    assert "2 probes could not tell" in why and "possibly done" in why
    assert sim.in_flight() == [("compensation", "s0", 1)]
    assert len(sim.view().of("attempt_scheduled")) == 1, "never re-sent blindly"


def test_a_spent_budget_with_on_give_up_fail_stops_for_a_person() -> None:
    sim = probed(budget=1, on_give_up="fail")
    lose_attempt_one(sim)
    answer_probe(sim, 1)
    end = sim.view().terminal
    assert end is not None and end.kind == "workflow_failed"
    assert "could not tell" in str(end.get("reason"))


def test_rolling_back_waits_for_the_probe_before_compensating() -> None:
    sim = probed()
    lose_attempt_one(sim)
    answer_probe(sim, 1)
    sim.append(CANCEL_REQUESTED, data={"reason": "operator"})
    decision = sim.run()
    assert sim.in_flight() == [], "no compensation while the first request may be in progress"
    assert "settling attempt 1 of s0: probe 1 of 4 answered unknown" in decision.why
    wait_out(sim)
    answer_probe(sim, 2, answer="not_done")
    assert not sim.view().of("compensation_scheduled"), "it never took effect: nothing to undo"
    assert sim.view().has("workflow_compensated")


def test_probes_are_numbered_per_step_and_read_per_attempt() -> None:
    sim = probed()
    lose_attempt_one(sim)
    answer_probe(sim, 1, answer="not_done")
    wait_out(sim)
    sim.deliver(("action", "s0", 2), "timed_out", "")
    sim.run()
    view = sim.view()
    outcome = view.slot("action:s0:2:outcome")
    assert outcome is not None
    state = probe_state(view, "s0", 2, outcome, RetryPolicy(max_attempts=2))
    assert state.status == "asking" and state.number == 2  # the step's second probe
    first = view.slot("action:s0:1:outcome")
    assert first is not None
    assert probe_state(view, "s0", 1, first, RetryPolicy(max_attempts=2)).status == "not_done"
    answer_probe(sim, 2)
    later = probe_state(sim.view(), "s0", 2, outcome, RetryPolicy(max_attempts=2))
    assert later.status == WAIT and later.number == 3
    spent = probe_state(sim.view(), "s0", 2, outcome, RetryPolicy(max_attempts=1))
    assert spent.status == EXHAUSTED
    assert isinstance(ASK, str)  # the names the module exports stay importable
    assert callable(Complete) and callable(Fail)
