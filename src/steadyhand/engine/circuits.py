"""Service bookkeeping: publishing each service's limits, and opening, half-opening or
closing its circuit from its recent attempt facts (the rule itself is pure, in
`core.circuit`; this module reads its inputs and writes its result)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

from steadyhand.core.circuit import (
    OUTCOME_KINDS,
    ServicePolicy,
    Transition,
    decide_circuit,
    gate_of,
)
from steadyhand.store.base import Store


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
            data = json.dumps(dict(change.data), separators=(",", ":"))
            tx.execute("append_service_fact", {**fact, "data": data})
            if after.circuit == "half_open":
                tx.notify()
            changes.append(change)
    return changes
