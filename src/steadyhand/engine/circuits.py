"""Service bookkeeping: publishing each service's limits, and opening, half-opening or
closing its circuit from its recent attempt facts (the rule itself is pure, in
`core.circuit`; this module reads its inputs and writes its result)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from steadyhand.core import jsoncodec
from steadyhand.core.circuit import (
    OUTCOME_KINDS,
    SERVICE_RELEASED,
    ServicePolicy,
    Transition,
    decide_circuit,
    gate_of,
    hold,
    release,
)
from steadyhand.core.errors import NotFoundError
from steadyhand.store.base import Store, Tx


def publish_services(
    store: Store, policies: Mapping[str, ServicePolicy], clock: Callable[[], float]
) -> None:
    """Write each service's limits to the store (its rate bucket starts full)."""
    if not policies:
        return
    now = clock()
    with store.transaction() as tx:
        for name in sorted(policies):
            policy = policies[name]
            params = {"service": name, "policy": policy.to_json(), "tokens": policy.bucket}
            tx.execute("publish_service", {**params, "now": now})


def evaluate_circuits(store: Store, clock: Callable[[], float]) -> list[Transition]:
    """Open, half-open or close each service's circuit from its recent attempt facts.

    One short transaction per service: lock its gate, read its newest outcomes (index
    `facts_service`), decide (pure), and record the change as a service fact and in the
    gate that leasing reads.
    """
    with store.snapshot() as tx:
        names = [row.service for row in tx.gates()]
    changes = []
    for name in names:
        now = clock()
        with store.transaction() as tx:
            row = tx.gate(name, lock=True)
            if row is None:
                continue
            policy = ServicePolicy.from_json(row.policy).circuit
            if row.circuit == "half_open":
                since = row.circuit_since or now  # judge only the trial calls
            else:  # never count failures from before the circuit last closed
                since = max(now - policy.window, row.circuit_since or 0.0)
            rows = tx.execute(
                "recent_service_outcomes",
                {"service": name, "since": since, "limit": max(policy.sample, 100)},
            ).fetchall()
            outcomes = [(str(r[0]), float(r[1])) for r in rows if r[0] in OUTCOME_KINDS]
            change = decide_circuit(gate_of(row), outcomes, now, policy)
            if change is None:
                continue
            _record(tx, name, change, now)
            if change.gate.circuit == "half_open":
                tx.notify()
            changes.append(change)
    return changes


def _record(tx: Tx, name: str, change: Transition, now: float) -> None:
    """Save a circuit change in the gate leasing reads, and as a service fact."""
    after = change.gate
    tx.execute(
        "save_circuit",
        {
            "service": name,
            "circuit": after.circuit,
            "since": after.since,
            "open_until": after.open_until,
            "opens": after.opens,
            "reason": after.reason,
        },
    )
    seq = int(tx.execute("last_service_seq", {"service": name}).fetchone()[0]) + 1
    fact = {"service": name, "seq": seq, "kind": change.kind, "at": now}
    data = jsoncodec.dumps(dict(change.data))
    tx.execute("append_service_fact", {**fact, "data": data})


def set_hold(
    store: Store, name: str, *, held: bool, reason: str, by: str, clock: Callable[[], float]
) -> Transition | None:
    """Hold a service by hand, or release it: calls to a held service wait exactly as with
    an open circuit (no attempt spent). Releasing wakes every workflow that deferred a call
    during the hold. None when there was nothing to change (held twice, released twice)."""
    with store.transaction() as tx:
        row = tx.gate(name, lock=True)
        if row is None:
            known = ", ".join(g.service for g in tx.gates()) or "none"
            raise NotFoundError(
                f"no service {name!r} in this store (known: {known}); services are "
                "published by workers of an App that declares them with app.service()"
            )
        now = clock()
        gate = gate_of(row)
        change = (hold if held else release)(gate, now, reason, by)
        if change is None:
            return None
        _record(tx, name, change, now)
        if change.kind == SERVICE_RELEASED:
            since = float(change.data.get("held_since") or 0.0)
            tx.execute("wake_deferred_by_service", {"service": name, "since": since, "now": now})
            tx.notify()
    return change
