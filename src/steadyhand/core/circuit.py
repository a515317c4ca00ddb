"""Remote services: per-service limits and a circuit breaker grounded in attempt facts.

A service (e.g. `flights`) is declared once; every agent that belongs to it shares its
limits across all workers on a store. The breaker's decision is a pure function of the
service's recent outcome facts and `now`; the engine applies it (a service fact plus the
gate row that leasing reads) in one short transaction.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from steadyhand.core import jsoncodec
from steadyhand.core.errors import DefinitionError
from steadyhand.core.facts import (
    ACTION,
    FAILED,
    SUCCEEDED,
    TIMED_OUT,
    UNCERTAIN,
    FactKind,
    outcome_kinds,
)
from steadyhand.core.records import GateRow

CLOSED, OPEN, HALF_OPEN, HELD = "closed", "open", "half_open", "held"
CIRCUIT_OPENED = "circuit_opened"  # recent attempts failed too often: new calls wait
CIRCUIT_HALF_OPENED = "circuit_half_opened"  # the cool-down passed: a few trial calls may go
CIRCUIT_CLOSED = "circuit_closed"  # trial calls succeeded: traffic flows again
SERVICE_HELD = "service_held"  # an operator held the service: calls wait as if it were open
SERVICE_RELEASED = "service_released"  # the operator let calls flow again (circuit closed)

# A lost call (its worker died) says nothing about the service, and is not counted; nor is a
# permanent refusal (the engine does not tag those with the service).
FAILURE_KINDS = outcome_kinds(ACTION, (FAILED, TIMED_OUT, UNCERTAIN))
OUTCOME_KINDS = outcome_kinds(ACTION, (SUCCEEDED, FAILED, TIMED_OUT, UNCERTAIN))
"""The attempt outcomes that speak for a service's health (what the circuit reads)."""


@dataclass(frozen=True)
class CircuitPolicy:
    """When a service's circuit opens, how long it stays open, and how it closes again.

    It opens when, among the last `sample` attempt outcomes within `window` seconds (and at
    least `min_calls` of them), more than `failure_ratio` were transient failures, timeouts
    or answers cut off; calls lost with a dead worker and permanent refusals (sold out) say
    nothing about the service's health and do not count. It stays open `cooldown` seconds
    (doubling on each reopening without a close between, up to `max_cooldown`), then lets
    `trial_calls` through: it closes when they fail no more often than `failure_ratio`
    allows, and opens again as soon as they cannot.
    """

    failure_ratio: float = 0.5
    min_calls: int = 10
    sample: int = 50
    window: float = 30.0
    cooldown: float = 5.0
    max_cooldown: float = 60.0
    trial_calls: int = 5
    enabled: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.failure_ratio <= 1 or self.min_calls < 1 or self.sample < self.min_calls:
            raise DefinitionError("circuit: 0 < failure_ratio <= 1 and 1 <= min_calls <= sample")
        if self.window <= 0 or self.cooldown <= 0 or self.max_cooldown < self.cooldown:
            raise DefinitionError("circuit: window, cooldown > 0 and max_cooldown >= cooldown")
        if self.trial_calls < 1:
            raise DefinitionError("circuit: trial_calls must be at least 1")


@dataclass(frozen=True)
class ServicePolicy:
    """Limits for one remote service, shared by every worker on the store."""

    name: str
    max_in_flight: int | None = None  # attempts running at once, across all workers
    rate: float | None = None  # attempts started per second (token bucket)
    burst: float | None = None  # bucket size; default: max(1, rate)
    circuit: CircuitPolicy = field(default_factory=CircuitPolicy)

    def __post_init__(self) -> None:
        if self.max_in_flight is not None and self.max_in_flight < 1:
            raise DefinitionError(f"service {self.name}: max_in_flight must be at least 1")
        if self.rate is not None and self.rate <= 0:
            raise DefinitionError(f"service {self.name}: rate must be positive")

    @property
    def bucket(self) -> float:
        if self.rate is None:
            return 0.0
        return self.burst if self.burst is not None else max(1.0, self.rate)

    def to_json(self) -> str:
        return jsoncodec.dumps_plan(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServicePolicy:
        data = jsoncodec.loads(text)
        circuit = CircuitPolicy(**data.pop("circuit", {}))
        return cls(circuit=circuit, **data)


@dataclass(frozen=True)
class Gate:
    """A service's circuit as the engine and supervisors see it (mirrors its service facts)."""

    service: str
    circuit: str = CLOSED
    since: float | None = None
    open_until: float | None = None
    opens: int = 0
    reason: str | None = None

    def blocks(self, now: float) -> bool:
        """Whether new calls must wait: held by an operator, or open within its cool-down."""
        if self.circuit == HELD:
            return True
        return self.circuit == OPEN and self.open_until is not None and now < self.open_until


@dataclass(frozen=True)
class Transition:
    """A change of circuit state, with the fact that records it."""

    kind: str
    gate: Gate
    data: Mapping[str, Any]


def decide_circuit(
    gate: Gate, outcomes: Sequence[tuple[str, float]], now: float, policy: CircuitPolicy
) -> Transition | None:
    """Pure: from the gate and recent outcomes (kind, at), newest first, the next state."""
    if not policy.enabled or gate.circuit == HELD:  # a hold ends only by an operator
        return None
    if gate.circuit == CLOSED:
        recent = [(k, at) for k, at in outcomes if at >= now - policy.window][: policy.sample]
        if len(recent) < policy.min_calls:
            return None
        failures = sum(1 for k, _ in recent if k in FAILURE_KINDS)
        if failures / len(recent) <= policy.failure_ratio:
            return None
        reason = _failures_text(recent, failures)
        return _open(gate, now, policy, reason, failures, len(recent))
    if gate.circuit == OPEN:
        if gate.open_until is not None and now >= gate.open_until:
            # Trials were let through from the end of the cool-down (see `allowance`), which
            # may be before this judgement: count them from there, or a trial that already
            # succeeded would never close the circuit.
            began = gate.open_until
            after = Gate(gate.service, HALF_OPEN, began, None, gate.opens, gate.reason)
            return Transition(CIRCUIT_HALF_OPENED, after, {"trial_calls": policy.trial_calls})
        return None
    # half open: judge only the trial calls made since the cool-down ended, by the same ratio
    trials = [(k, at) for k, at in outcomes if gate.since is not None and at >= gate.since]
    failed = [k for k, _ in trials if k in FAILURE_KINDS]
    if len(failed) > policy.trial_calls * policy.failure_ratio:
        reason = f"{len(failed)} of {len(trials)} trial calls failed"
        return _open(gate, now, policy, reason, len(failed), len(trials))
    if len(trials) >= policy.trial_calls:
        after = Gate(gate.service, CLOSED, now, None, 0, None)  # backoff starts over
        data = {"trial_calls": len(trials), "trial_failures": len(failed)}
        return Transition(CIRCUIT_CLOSED, after, data)
    return None


def _open(
    gate: Gate, now: float, policy: CircuitPolicy, reason: str, failures: int, of: int
) -> Transition:
    cooldown = min(policy.max_cooldown, policy.cooldown * 2 ** min(gate.opens, 10))
    after = Gate(gate.service, OPEN, now, now + cooldown, gate.opens + 1, reason)
    data = {"reason": reason, "failures": failures, "of": of, "cooldown": cooldown}
    return Transition(CIRCUIT_OPENED, after, data)


def _failures_text(recent: Sequence[tuple[str, float]], failures: int) -> str:
    timed_out = sum(1 for k, _ in recent if k == FactKind.ATTEMPT_TIMED_OUT)
    what = "timed out" if timed_out * 2 >= failures else "failed"
    return f"{failures} of the last {len(recent)} attempts {what}"


UNLIMITED = 1_000_000


def trial_window_start(gate: GateRow, now: float) -> float | None:
    """When the current trial period began (cool-down over), or None outside one."""
    if gate.circuit == HALF_OPEN:
        return gate.circuit_since
    if gate.circuit == OPEN and gate.open_until is not None and now >= gate.open_until:
        return gate.open_until
    return None


def allowance(gate: GateRow | None, in_flight: int, trials: int, now: float) -> int:
    """How many more calls to a service may start now: its circuit, concurrency and rate.

    `trials` counts calls that already ended in the current trial period: together with
    those in flight, at most `trial_calls` go through until the circuit is judged again.
    """
    if gate is None:
        return UNLIMITED
    policy = ServicePolicy.from_json(gate.policy)
    if gate.circuit == HELD:
        return 0
    if gate.circuit == OPEN and gate.open_until is not None and now < gate.open_until:
        return 0
    room = UNLIMITED
    if trial_window_start(gate, now) is not None:  # cool-down over: only a few trial calls
        room = policy.circuit.trial_calls - in_flight - trials
    if policy.max_in_flight is not None:
        room = min(room, policy.max_in_flight - in_flight)
    if policy.rate is not None:
        room = min(room, math.floor(refill_tokens(gate, policy.rate, policy.bucket, now)))
    return max(0, room)


def hold(gate: Gate, now: float, reason: str, by: str) -> Transition | None:
    """Pure: hold a service by hand (None if it is held already)."""
    if gate.circuit == HELD:
        return None
    after = Gate(gate.service, HELD, now, None, gate.opens, reason)
    data = {"reason": reason, "by": by, "was": gate.circuit}
    return Transition(SERVICE_HELD, after, data)


def release(gate: Gate, now: float, reason: str, by: str) -> Transition | None:
    """Pure: let calls flow again after a hold (None if it is not held). The circuit starts
    closed with its backoff reset: the breaker judges the service afresh from here."""
    if gate.circuit != HELD:
        return None
    after = Gate(gate.service, CLOSED, now, None, 0, None)
    data = {"reason": reason, "by": by, "held_since": gate.since}
    return Transition(SERVICE_RELEASED, after, data)


def gate_of(row: GateRow) -> Gate:
    return Gate(row.service, row.circuit, row.circuit_since, row.open_until, row.opens, row.reason)


def refill_tokens(gate: GateRow, rate: float | None, bucket: float, now: float) -> float:
    """Tokens in a service's bucket at `now` (a rate limit shared through the store)."""
    if rate is None:
        return float("inf")
    return min(bucket, gate.tokens + max(0.0, now - gate.tokens_at) * rate)


def spend_tokens(gate: GateRow, count: int, now: float) -> float:
    from steadyhand.core.circuit import ServicePolicy

    policy = ServicePolicy.from_json(gate.policy)
    if policy.rate is None:
        return gate.tokens
    return refill_tokens(gate, policy.rate, policy.bucket, now) - count
