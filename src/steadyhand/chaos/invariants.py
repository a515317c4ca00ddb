"""The invariants a chaos run must keep, checked from the store's facts and the services'
ledgers: one terminal fact per round, gap-free sequences, append-only history (digests taken
mid-run), complete breadcrumbs, and a trace in the facts for every booking a service holds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from steadyhand.core import jsoncodec
from steadyhand.core.facts import (
    ACTION,
    OUTCOME_REPORTED_LATE,
    RETRY_REQUESTED,
    SUPERVISOR_RAN,
    TERMINAL_KINDS,
    UNKNOWN_OUTCOMES,
    Fact,
    outcome_kinds,
)
from steadyhand.demo.audit import FAILED, Audit, Check, Ledger, Problem
from steadyhand.demo.report import Trip
from steadyhand.demo.trip import STEPS
from steadyhand.store import Store
from steadyhand.store.reporting import report

ONE_TERMINAL = "every workflow has exactly one terminal fact in its current round"
GAPLESS = "every workflow's facts are numbered 1..n without gaps"
APPEND_ONLY = "facts seen mid-run are byte-identical at the end (only appended after)"
BREADCRUMBS = "every supervisor run left its breadcrumb (run, saw, decided, why), runs 1..n"
TRACED = "every booking a service holds is a success, a 'done' probe, or an undone unknown"


@dataclass(frozen=True)
class Row:
    """One fact exactly as stored (data as its JSON text), for digests and checks."""

    workflow_id: str
    seq: int
    kind: str
    step: str | None
    attempt: int | None
    slot: str | None
    data: str
    at: float

    def encoded(self) -> bytes:
        fields = [self.workflow_id, self.seq, self.kind, self.step, self.attempt, self.slot]
        return jsoncodec.dumps([*fields, self.data, repr(self.at)]).encode()

    def fact(self) -> Fact:
        data = jsoncodec.loads(self.data)
        return Fact(self.seq, self.kind, self.at, self.step, self.attempt, self.slot, data)


@dataclass(frozen=True)
class Digest:
    """The first `count` facts of one workflow, hashed (sha256 over their encoded rows)."""

    count: int
    sha256: str


def read_rows(store: Store, workflow_ids: Iterable[str]) -> dict[str, list[Row]]:
    """Every fact of the given workflows, in one consistent snapshot (a query per workflow)."""
    rows: dict[str, list[Row]] = {}
    with store.snapshot() as tx:
        for wid in workflow_ids:
            found = report(tx, "fact_rows", {"id": wid})
            rows[wid] = [
                Row(r[0], int(r[1]), r[2], r[3], r[4], r[5], r[6], float(r[7])) for r in found
            ]
    return rows


def digest(rows: Sequence[Row]) -> Digest:
    h = hashlib.sha256()
    for row in rows:
        h.update(row.encoded())
        h.update(b"\n")
    return Digest(len(rows), h.hexdigest())


def snapshot_history(store: Store, workflow_ids: Iterable[str]) -> dict[str, Digest]:
    """Digests of every workflow's facts right now, to be compared with the end of the run."""
    return {wid: digest(rows) for wid, rows in read_rows(store, workflow_ids).items()}


@dataclass(frozen=True)
class Verdict:
    """Every check of the run; `violations` counts problems (failed trips are reported apart:
    ending `failed` is an honest outcome, though a failed trip that holds bookings is still
    caught as half-done)."""

    checks: tuple[Check, ...]
    failed: tuple[Problem, ...]

    @property
    def violations(self) -> int:
        return sum(len(c.problems) for c in self.checks)

    @property
    def ok(self) -> bool:
        return self.violations == 0


def verify(
    trips: Sequence[Trip],
    rows: Mapping[str, Sequence[Row]],
    ledgers: Mapping[str, Ledger],
    snapshots: Sequence[Mapping[str, Digest]],
    audit: Audit,
) -> Verdict:
    """Run every check; the demo's ledger audit is included (its checks keep their names)."""
    labels = {t.workflow_id: t.label for t in trips}
    one_terminal: list[Problem] = []
    gapless: list[Problem] = []
    breadcrumbs: list[Problem] = []
    for trip in trips:
        wid, label = trip.workflow_id, trip.label
        mine = rows.get(wid, [])
        facts = [r.fact() for r in mine]
        seqs = [f.seq for f in facts]
        if seqs != list(range(1, len(seqs) + 1)):
            gapless.append(Problem(wid, label, f"seq numbers are {_runs(seqs)}"))
        ends = _terminals_this_round(facts)
        if len(ends) != 1:
            kinds = ", ".join(f"#{f.seq} {f.kind}" for f in ends) or "none"
            one_terminal.append(Problem(wid, label, f"terminal facts this round: {kinds}"))
        breadcrumbs.extend(Problem(wid, label, d) for d in _breadcrumb_problems(facts))
    append_only = [
        Problem(wid, labels.get(wid, "?"), detail)
        for snap in snapshots
        for wid, detail in _changed(snap, rows)
    ]
    traced = _untraced(labels, rows, ledgers)
    audit_checks = tuple(c for c in audit.checks if c.name != FAILED)
    failed = next((c.problems for c in audit.checks if c.name == FAILED), ())
    checks = (
        *audit_checks,
        Check(ONE_TERMINAL, tuple(one_terminal)),
        Check(GAPLESS, tuple(gapless)),
        Check(APPEND_ONLY, tuple(append_only)),
        Check(BREADCRUMBS, tuple(breadcrumbs)),
        Check(TRACED, tuple(traced)),
    )
    return Verdict(checks, tuple(failed))


def _terminals_this_round(facts: Sequence[Fact]) -> list[Fact]:
    start = max((f.seq for f in facts if f.kind == RETRY_REQUESTED), default=0)
    return [f for f in facts if f.seq > start and f.kind in TERMINAL_KINDS]


def _breadcrumb_problems(facts: Sequence[Fact]) -> list[str]:
    problems = []
    expected = 1
    for fact in facts:
        if fact.kind == RETRY_REQUESTED:
            expected = 1
            continue
        if fact.kind != SUPERVISOR_RAN:
            continue
        data = fact.data or {}
        missing = [
            name
            for name, kind in (("run", int), ("saw", str), ("decided", list), ("why", str))
            if not isinstance(data.get(name), kind) or not data.get(name)
        ]
        if missing:
            problems.append(f"supervisor_ran #{fact.seq} lacks {', '.join(missing)}")
        if data.get("run") != expected:
            problems.append(f"supervisor_ran #{fact.seq} is run {data.get('run')}, not {expected}")
        expected += 1
    return problems


def _changed(
    snapshot: Mapping[str, Digest], rows: Mapping[str, Sequence[Row]]
) -> list[tuple[str, str]]:
    changed = []
    for wid, before in snapshot.items():
        now = rows.get(wid, [])
        if len(now) < before.count:
            changed.append((wid, f"had {before.count} facts mid-run, {len(now)} at the end"))
        elif digest(now[: before.count]).sha256 != before.sha256:
            changed.append((wid, f"its first {before.count} facts changed after the snapshot"))
    return changed


def _untraced(
    labels: Mapping[str, str], rows: Mapping[str, Sequence[Row]], ledgers: Mapping[str, Ledger]
) -> list[Problem]:
    step_of = {service: step for step, service in STEPS}
    problems = []
    for service, ledger in ledgers.items():
        step = step_of[service]
        for booking in ledger.get("bookings", []):
            wid = str(booking.get("trip"))
            if wid not in labels:
                continue  # the demo audit's STRAY check names bookings of unknown trips
            facts = [r.fact() for r in rows.get(wid, [])]
            if not _explains(facts, step):
                what = f"{service} holds {booking.get('booking_id')} ({booking.get('status')})"
                problems.append(Problem(wid, labels[wid], f"{what}, unexplained by the facts"))
    return problems


def _explains(facts: Sequence[Fact], step: str) -> bool:
    """Whether the facts account for a booking of `step` (see TRACED)."""
    unknown_at: int | None = None
    for fact in facts:
        if fact.step != step:
            continue
        if fact.kind == "attempt_succeeded":
            return True
        if fact.kind == "probe_succeeded" and fact.get("answer") == "done":
            return True
        if (
            fact.kind == OUTCOME_REPORTED_LATE
            and fact.get("phase") == "action"
            and fact.get("outcome") == "succeeded"
        ):
            return True
        if fact.kind in outcome_kinds(ACTION, UNKNOWN_OUTCOMES) and unknown_at is None:
            unknown_at = fact.seq
        if fact.kind == "compensation_succeeded" and unknown_at is not None:
            return True
    return False


def _runs(seqs: Sequence[int]) -> str:
    shown = ", ".join(str(s) for s in seqs[:12])
    return f"[{shown}{', …' if len(seqs) > 12 else ''}]"
