"""What the demo's trips went through, read back from the store's facts.

Only the facts are consulted (never the workers' memory or logs), so the summary counts
exactly what the supervisor saw: attempts, retries, probes, compensations, lost calls.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from steadyhand.core.facts import COMPENSATION_BEGAN, TERMINAL_STATES, Fact
from steadyhand.store import Store

STATES = ("completed", "compensated", "failed", "compensating", "running")
"""Every state a trip can be in, terminal ones first (the order the display uses)."""
TERMINAL = ("completed", "compensated", "failed")


@dataclass(frozen=True)
class Trip:
    """One trip the demo started: its workflow id and the label people read."""

    workflow_id: str
    label: str


@dataclass(frozen=True)
class TripRecord:
    """A trip as its facts tell it: state, result or reason, and how much work it took."""

    trip: Trip
    state: str
    reason: str | None = None
    result: Any = None
    kinds: Mapping[str, int] = field(default_factory=dict)
    retries: int = 0

    @property
    def done(self) -> bool:
        return self.state in TERMINAL

    @property
    def recovered(self) -> int:
        """Calls whose outcome had to be found out (lost, timed out, cut off, probed)."""
        return sum(self.kinds.get(k, 0) for k in RECOVERY_KINDS)


RECOVERY_KINDS = ("attempt_lost", "attempt_timed_out", "attempt_uncertain", "probe_scheduled")


def record_of(trip: Trip, facts: Sequence[Fact]) -> TripRecord:
    """Summarise one trip's facts (the demo never retries by hand, so there is one round)."""
    kinds = Counter(f.kind for f in facts)
    retries = sum(
        1
        for f in facts
        if f.kind in ("attempt_scheduled", "compensation_scheduled") and (f.attempt or 0) > 1
    )
    end = next((f for f in facts if f.kind in TERMINAL_STATES), None)
    if end is not None:
        state = TERMINAL_STATES[end.kind]
        return TripRecord(
            trip, state, end.get("reason"), end.get("result"), dict(kinds), retries=retries
        )
    state = "compensating" if kinds[COMPENSATION_BEGAN] else "running"
    return TripRecord(trip, state, None, None, dict(kinds), retries=retries)


def read_records(store: Store, trips: Iterable[Trip]) -> list[TripRecord]:
    """Read each trip's facts in one consistent snapshot (a query per trip, index driven)."""
    with store.snapshot() as tx:
        return [record_of(trip, tx.read_facts(trip.workflow_id)) for trip in trips]


@dataclass(frozen=True)
class Tally:
    """The run in numbers: trips by state and the work the engine did for them."""

    trips: int
    states: Mapping[str, int]
    attempts: int
    retries: int
    probes: int
    compensations: int
    lost: int
    timed_out: int
    uncertain: int

    @property
    def finished(self) -> int:
        return sum(self.states.get(s, 0) for s in TERMINAL)


def tally(records: Iterable[TripRecord]) -> Tally:
    """Add up the records; `lost` counts calls cut short by a killed worker (any phase)."""
    states: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    retries = count = 0
    for record in records:
        count += 1
        states[record.state] += 1
        kinds.update(record.kinds)
        retries += record.retries
    return Tally(
        trips=count,
        states={s: states.get(s, 0) for s in STATES},
        attempts=kinds["attempt_scheduled"],
        retries=retries,
        probes=kinds["probe_scheduled"],
        compensations=kinds["compensation_succeeded"],
        lost=kinds["attempt_lost"] + kinds["compensation_lost"] + kinds["probe_lost"],
        timed_out=(
            kinds["attempt_timed_out"] + kinds["compensation_timed_out"] + kinds["probe_timed_out"]
        ),
        uncertain=kinds["attempt_uncertain"] + kinds["compensation_uncertain"],
    )


class Tracker:
    """Follows a run's trips cheaply: a trip's facts are re-read only until it has ended."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.records: dict[str, TripRecord] = {}

    def add(self, trip: Trip) -> None:
        self.records[trip.workflow_id] = TripRecord(trip, "running")

    def refresh(self) -> Tally:
        open_trips = [r.trip for r in self.records.values() if not r.done]
        if open_trips:
            for record in read_records(self.store, open_trips):
                self.records[record.trip.workflow_id] = record
        return tally(self.records.values())

    def final(self) -> list[TripRecord]:
        """Every trip re-read from scratch, for the summary and the audit."""
        records = read_records(self.store, [r.trip for r in self.records.values()])
        self.records = {r.trip.workflow_id: r for r in records}
        return records

    def calls_held(self) -> Counter[int]:
        """Agent calls in flight right now, by the pid of the worker holding their lease.

        Read from the queue of the trips still open; the pid is the second field of the
        worker id (host:pid:random), which is how the demo knows what a kill interrupts.
        """
        held: Counter[int] = Counter()
        with self.store.snapshot() as tx:
            for record in self.records.values():
                if record.done:
                    continue
                for task in tx.workflow_tasks(record.trip.workflow_id):
                    owner = (task.lease_owner or "").split(":")
                    if task.is_call and len(owner) == 3 and owner[1].isdigit():
                        held[int(owner[1])] += 1
        return held

    @property
    def all_done(self) -> bool:
        return all(r.done for r in self.records.values())
