"""How each remote service is doing, for `stats`, the dashboard and `/metrics`: calls in
flight, recent rate and failure ratio (from its outcome facts), limits and circuit state."""

from __future__ import annotations

from dataclasses import dataclass

from steadyhand.core.circuit import FAILURE_KINDS, ServicePolicy
from steadyhand.store.base import Tx
from steadyhand.store.reporting import report


@dataclass(frozen=True)
class ServiceHealth:
    """One service at a glance."""

    service: str
    circuit: str  # closed, open or half_open
    circuit_since: float | None
    open_until: float | None
    reason: str | None  # why the circuit last opened
    in_flight: int
    calls: int  # attempt outcomes within the window
    failures: int
    rate: float  # attempts per second over the window
    max_in_flight: int | None
    rate_limit: float | None

    @property
    def failure_ratio(self) -> float:
        return self.failures / self.calls if self.calls else 0.0


def service_health(tx: Tx, now: float, window: float = 60.0) -> list[ServiceHealth]:
    """Read every declared service's health in the caller's snapshot (bounded by index)."""
    in_flight = {str(s): int(n) for s, n in report(tx, "services_in_flight")}
    found = []
    for gate in tx.gates():
        params = {"service": gate.service, "since": now - window}
        counts = {str(k): int(n) for k, n in report(tx, "service_outcome_counts", params)}
        calls = sum(counts.values())
        policy = ServicePolicy.from_json(gate.policy)
        found.append(
            ServiceHealth(
                service=gate.service,
                circuit=gate.circuit,
                circuit_since=gate.circuit_since,
                open_until=gate.open_until,
                reason=gate.reason,
                in_flight=in_flight.get(gate.service, 0),
                calls=calls,
                failures=sum(counts.get(k, 0) for k in FAILURE_KINDS),
                rate=calls / window,
                max_in_flight=policy.max_in_flight,
                rate_limit=policy.rate,
            )
        )
    return found
