"""The circuit breaker's decision, as a pure function of recent outcomes and `now`."""

from __future__ import annotations

from steadyhand.core.circuit import (
    CIRCUIT_CLOSED,
    CIRCUIT_HALF_OPENED,
    CIRCUIT_OPENED,
    CLOSED,
    HALF_OPEN,
    OPEN,
    CircuitPolicy,
    Gate,
    decide_circuit,
)

POLICY = CircuitPolicy(failure_ratio=0.5, min_calls=4, sample=10, window=10, cooldown=2,
                       max_cooldown=5, trial_calls=2)  # fmt: skip
OK, FAIL, TIMEOUT = "attempt_succeeded", "attempt_failed", "attempt_timed_out"


def outcomes(*kinds: str, at: float = 99.0) -> list[tuple[str, float]]:
    return [(k, at) for k in kinds]


def test_a_healthy_service_stays_closed() -> None:
    assert decide_circuit(Gate("s"), outcomes(OK, OK, FAIL, OK), 100, POLICY) is None


def test_too_few_calls_never_open_the_circuit() -> None:
    assert decide_circuit(Gate("s"), outcomes(FAIL, FAIL, FAIL), 100, POLICY) is None


def test_mostly_failing_recent_calls_open_it_with_a_reason() -> None:
    change = decide_circuit(Gate("s"), outcomes(TIMEOUT, TIMEOUT, TIMEOUT, OK), 100, POLICY)
    assert change is not None and change.kind == CIRCUIT_OPENED
    assert change.gate.circuit == OPEN and change.gate.open_until == 102
    assert change.data["reason"] == "3 of the last 4 attempts timed out"


def test_old_failures_outside_the_window_do_not_count() -> None:
    assert decide_circuit(Gate("s"), outcomes(FAIL, FAIL, FAIL, FAIL, at=80), 100, POLICY) is None


def test_open_waits_for_the_cooldown_then_allows_trials() -> None:
    gate = Gate("s", OPEN, 100, 102, 1, "x")
    assert decide_circuit(gate, [], 101, POLICY) is None
    change = decide_circuit(gate, [], 102, POLICY)
    assert change is not None and change.kind == CIRCUIT_HALF_OPENED
    assert change.gate.circuit == HALF_OPEN


def test_successful_trials_close_it_and_failing_ones_reopen_it_for_longer() -> None:
    gate = Gate("s", HALF_OPEN, 102, None, 1, "x")
    closed = decide_circuit(gate, outcomes(OK, OK, at=103), 104, POLICY)
    assert closed is not None and closed.kind == CIRCUIT_CLOSED and closed.gate.circuit == CLOSED
    assert closed.gate.opens == 0, "a close starts the backoff over"
    tolerated = decide_circuit(gate, outcomes(OK, FAIL, at=103), 104, POLICY)
    assert tolerated is not None and tolerated.kind == CIRCUIT_CLOSED  # 1 of 2 is within 50%
    reopened = decide_circuit(gate, outcomes(FAIL, FAIL, at=103), 104, POLICY)
    assert reopened is not None and reopened.gate.open_until == 104 + 4  # cooldown doubled
    assert decide_circuit(gate, outcomes(OK, at=103), 104, POLICY) is None  # one more trial


def test_cooldown_is_capped() -> None:
    gate = Gate("s", HALF_OPEN, 0, None, 9, "x")
    change = decide_circuit(gate, outcomes(FAIL, FAIL), 100, POLICY)
    assert change is not None and change.gate.open_until == 100 + POLICY.max_cooldown


def test_trials_before_the_half_open_moment_are_ignored() -> None:
    gate = Gate("s", HALF_OPEN, 102, None, 1, "x")
    assert decide_circuit(gate, outcomes(FAIL, FAIL, at=101), 104, POLICY) is None


def test_calls_lost_with_a_dead_worker_do_not_count_against_the_service() -> None:
    lost = outcomes("attempt_lost", "attempt_lost", "attempt_lost", OK)
    assert decide_circuit(Gate("s"), lost, 100, POLICY) is None
