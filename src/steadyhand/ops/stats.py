"""Numbers for the overview, `steadyhand stats` and `/metrics`: bounded queries, one snapshot.

Open workflows are counted exactly (there are few); ended ones, throughput, attempts and
decision latency are counted over a recent window through partial indexes, so the cost
follows the recent rate of work, never the size of the history.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from steadyhand.core import jsoncodec
from steadyhand.core.facts import PHASE_PREFIX, TERMINAL_STATES
from steadyhand.core.stuck import StuckRule
from steadyhand.ops.reports import ENDED_STATES, OPEN_STATES, reporting
from steadyhand.ops.service_health import ServiceHealth, service_health
from steadyhand.store.base import Store
from steadyhand.store.reporting import report

NO_END = 1e18  # an `until` later than any fact (facts stamped by a clock ahead of ours count)
DECISION_SAMPLE = 2000  # most recent supervisor runs whose latency is summarised


@dataclass(frozen=True)
class Attempts:
    """Calls that ended inside the window, for one phase and step, by outcome."""

    phase: str
    step: str
    outcomes: dict[str, int]
    retries: int  # outcomes of attempts after the first


@dataclass(frozen=True)
class Stats:
    """A snapshot of the whole store at `now`; windowed figures cover `window` seconds."""

    now: float
    window: float
    stuck_after: float
    states: dict[str, int]  # open states now; ended states within the window
    stuck: int
    started: int
    ended: int
    throughput: list[int]  # endings per bucket, oldest first
    bucket: float
    queue: dict[str, int]  # due and unleased, by task kind
    queue_depth: int
    queue_lag: float  # seconds the oldest due, unleased task has waited (0 when none)
    leased: int
    expired_leases: int
    scheduled_later: int
    attempts: list[Attempts] = field(default_factory=list)
    compensations_began: int = 0
    decisions: int = 0
    decision_ms: dict[str, float] = field(default_factory=dict)  # p50, p95, max
    decision_samples: list[float] = field(default_factory=list)  # ms, the sample itself
    services: list[ServiceHealth] = field(default_factory=list)  # remote services, last minute

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        del out["decision_samples"]
        return out

    def outcome_totals(self) -> dict[tuple[str, str], int]:
        """(phase, outcome) -> count over every step."""
        totals: dict[tuple[str, str], int] = {}
        for row in self.attempts:
            for outcome, n in row.outcomes.items():
                totals[(row.phase, outcome)] = totals.get((row.phase, outcome), 0) + n
        return totals


def collect(
    store: Store,
    now: float,
    rule: StuckRule,
    window: float = 3600.0,
    buckets: int = 60,
    until: float | None = None,
) -> Stats:
    """Everything `stats`, the overview and `/metrics` show, read in one snapshot.

    Windowed figures count what happened in `[now - window, until)`; `until` defaults to no
    upper bound (`/metrics` sets it to count each fact in exactly one scrape)."""
    since = now - window
    width = window / buckets
    window_params = {"since": since, "until": NO_END if until is None else until}
    with store.snapshot() as tx:
        reporting(store, tx)
        states = dict.fromkeys((*OPEN_STATES, *ENDED_STATES), 0)
        for state, n in report(tx, "open_counts"):
            states[state] = int(n)
        stuck = int(report(tx, "stuck_count", rule.params(now))[0][0])
        for kind, n in report(tx, "ended_counts", window_params):
            states[TERMINAL_STATES[kind]] = int(n)
        throughput = [0] * buckets
        for index, n in report(tx, "throughput", {"since": since, "width": width}):
            throughput[min(buckets - 1, max(0, int(index)))] += int(n)
        started = int(report(tx, "started", window_params)[0][0])
        queue: dict[str, int] = {}
        oldest: float | None = None
        for kind, n, due in report(tx, "queue", {"now": now}):
            queue[kind] = int(n)
            oldest = float(due) if oldest is None else min(oldest, float(due))
        leased, expired, later = report(tx, "leases", {"now": now})[0]
        attempts = _attempts(report(tx, "attempts", window_params))
        began = int(report(tx, "compensations_began", window_params)[0][0])
        rows = report(tx, "decisions", {**window_params, "limit": DECISION_SAMPLE})
        services = service_health(tx, now, min(window, 60.0))
    latencies = sorted(float(jsoncodec.loads(r[0]).get("decide_ms", 0.0)) for r in rows)
    return Stats(
        now=now,
        window=window,
        stuck_after=rule.after,
        states=states,
        stuck=stuck,
        started=started,
        ended=sum(throughput),
        throughput=throughput,
        bucket=width,
        queue=queue,
        queue_depth=sum(queue.values()),
        queue_lag=0.0 if oldest is None else max(0.0, now - oldest),
        leased=int(leased),
        expired_leases=int(expired),
        scheduled_later=int(later),
        attempts=attempts,
        compensations_began=began,
        decisions=len(latencies),
        decision_ms=_summary(latencies),
        decision_samples=latencies,
        services=services,
    )


def _attempts(rows: list[Any]) -> list[Attempts]:
    by_key: dict[tuple[str, str], Attempts] = {}
    phases = {prefix: phase for phase, prefix in PHASE_PREFIX.items()}
    for kind, step, n, retries in rows:
        prefix, _, outcome = str(kind).partition("_")
        key = (phases[prefix], str(step))
        if key not in by_key:
            by_key[key] = Attempts(key[0], key[1], {}, 0)
        row = by_key[key]
        row.outcomes[outcome] = row.outcomes.get(outcome, 0) + int(n)
        by_key[key] = Attempts(row.phase, row.step, row.outcomes, row.retries + int(retries or 0))
    return sorted(by_key.values(), key=lambda a: (a.phase, a.step))


def _summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {}

    def pick(q: float) -> float:
        return values[min(len(values) - 1, int(q * len(values)))]

    return {"p50": pick(0.5), "p95": pick(0.95), "max": values[-1]}
