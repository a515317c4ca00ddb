"""The demo's audit: compare how each trip ended with what the services' own ledgers hold.

The ledgers are the ground truth a customer would see; the workflow's terminal state is
what steadyhand claims. Any disagreement is named by trip, never averaged away.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from steadyhand.demo.report import TripRecord
from steadyhand.demo.trip import STEPS

Ledger = Mapping[str, Any]
"""A service's GET /ledger answer: {"bookings": [...], "double_booked": [...]}."""

COMPLETED = "every completed trip holds exactly one live flight, hotel and car booking"
COMPENSATED = "every compensated trip holds no live booking"
DOUBLE = "no idempotency key is booked twice"
HALF_DONE = "no trip is half-done (each ended, none holds only some of its bookings)"
FAILED = "no trip ended failed (a failed trip waits for a person)"
STRAY = "every booking belongs to a trip of this run, under that trip's own key"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one trip (or with a booking no trip owns)."""

    workflow_id: str
    label: str
    detail: str


@dataclass(frozen=True)
class Check:
    """One line of the audit: what must hold, and every trip that breaks it."""

    name: str
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class Audit:
    """The whole audit; `half_done` and `double_bookings` are what the JSON summary reports."""

    checks: tuple[Check, ...]
    half_done: int
    double_bookings: int

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def broken(self) -> list[str]:
        """Workflow ids of every trip that broke a check, in first-seen order."""
        seen: dict[str, None] = {}
        for check in self.checks:
            for problem in check.problems:
                seen.setdefault(problem.workflow_id, None)
        return list(seen)


def _action_key(workflow_id: str, step: str) -> str:
    # The engine's idempotency key for an action (engine.idempotency_key); restated here so
    # the audit checks the agents against an independent statement of the rule.
    return f"{workflow_id}:{step}"


def audit(records: Sequence[TripRecord], ledgers: Mapping[str, Ledger]) -> Audit:
    """Check every rule of the module docstring; see the constants above for their wording."""
    by_id = {r.trip.workflow_id: r for r in records}
    rows: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    stray: list[Problem] = []
    step_of = {service: step for step, service in STEPS}
    for service, ledger in ledgers.items():
        for row in ledger.get("bookings", []):
            trip_id = str(row.get("trip"))
            record = by_id.get(trip_id)
            if record is None:
                stray.append(
                    Problem(trip_id, "?", f"{service} holds {row.get('key')} for an unknown trip")
                )
                continue
            expected = _action_key(trip_id, step_of[service])
            if row.get("key") != expected:
                stray.append(
                    Problem(
                        trip_id,
                        record.trip.label,
                        f"{service} booked it under key {row.get('key')!r}, not {expected!r}",
                    )
                )
            rows[(trip_id, service)].append(row)

    completed: list[Problem] = []
    compensated: list[Problem] = []
    half_done: list[Problem] = []
    failed: list[Problem] = []
    double: list[Problem] = []
    for record in records:
        wid, label = record.trip.workflow_id, record.trip.label
        live = {
            service: [r for r in rows[(wid, service)] if r.get("status") == "booked"]
            for _, service in STEPS
        }
        held = [step for step, service in STEPS if live[service]]
        if record.state == "completed":
            completed.extend(_completed_problems(record, live))
        elif record.state == "compensated" and held:
            compensated.append(
                Problem(wid, label, f"compensated ({record.reason}) but still holds {_and(held)}")
            )
        elif record.state == "failed":
            failed.append(Problem(wid, label, f"failed: {record.reason}"))
        if not record.done:
            half_done.append(Problem(wid, label, f"still {record.state} when the run ended"))
        elif 0 < len(held) < len(STEPS):
            missing = [step for step, _ in STEPS if step not in held]
            half_done.append(
                Problem(wid, label, f"{record.state}, holds {_and(held)} but not {_and(missing)}")
            )
        for _, service in STEPS:
            keys = {str(r.get("key")) for r in rows[(wid, service)]}
            if len(keys) > 1:
                double.append(Problem(wid, label, f"{service} booked it under {sorted(keys)}"))
    for service, ledger in ledgers.items():
        for key in ledger.get("double_booked", []):
            wid = str(key).rsplit(":", 1)[0]
            label = by_id[wid].trip.label if wid in by_id else "?"
            double.append(Problem(wid, label, f"{service} booked key {key!r} more than once"))

    checks = (
        Check(COMPLETED, tuple(completed)),
        Check(COMPENSATED, tuple(compensated)),
        Check(DOUBLE, tuple(double)),
        Check(HALF_DONE, tuple(half_done)),
        Check(FAILED, tuple(failed)),
        Check(STRAY, tuple(stray)),
    )
    return Audit(checks, half_done=len(half_done), double_bookings=len(double))


def _completed_problems(
    record: TripRecord, live: Mapping[str, list[Mapping[str, Any]]]
) -> list[Problem]:
    wid, label = record.trip.workflow_id, record.trip.label
    result = record.result if isinstance(record.result, dict) else {}
    problems = []
    for step, service in STEPS:
        held = live[service]
        if len(held) != 1:
            problems.append(Problem(wid, label, f"completed but holds {len(held)} live {step}s"))
            continue
        claimed = (result.get(step) or {}).get("booking_id")
        actual = held[0].get("booking_id")
        if claimed != actual:
            problems.append(
                Problem(wid, label, f"its result names {step} {claimed}, the ledger holds {actual}")
            )
    return problems


def _and(items: Sequence[str]) -> str:
    return ", ".join(items) if items else "nothing"
