"""Numbers for the overview, `steadyhand stats` and `/metrics`: bounded queries, one snapshot.

Open workflows are counted exactly (there are few); ended ones, throughput, attempts and
decision latency are counted over a recent window through partial indexes, so the cost
follows the recent rate of work, never the size of the history.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from steadyhand.core.facts import (
    COMPENSATION_BEGAN,
    OUTCOMES,
    PHASE_PREFIX,
    SUPERVISOR_RAN,
    TERMINAL_KINDS,
    TERMINAL_STATES,
)
from steadyhand.core.stuck import StuckRule, stuck_predicate
from steadyhand.ops.reports import (
    ENDED_SQL,
    ENDED_STATES,
    LATEST_RETRY_SQL,
    OPEN_STATE_SQL,
    OPEN_STATES,
    reporting,
)
from steadyhand.ops.service_health import ServiceHealth, service_health
from steadyhand.store.base import Store

OUTCOME_KINDS = tuple(f"{p}_{suffix}" for p in PHASE_PREFIX.values() for suffix in OUTCOMES)
# The kinds of the partial index `facts_activity` (migration 002), in its order: SQLite uses
# a partial index only when the query repeats the index's WHERE term exactly, so every
# windowed query over these kinds carries `kind IN ACTIVITY` besides its own condition.
ACTIVITY_KINDS = (*OUTCOME_KINDS, SUPERVISOR_RAN, COMPENSATION_BEGAN)
_IN = {
    "terminal": "(" + ", ".join(f"'{k}'" for k in TERMINAL_KINDS) + ")",
    "outcomes": "(" + ", ".join(f"'{k}'" for k in OUTCOME_KINDS) + ")",
    "activity": "(" + ", ".join(f"'{k}'" for k in ACTIVITY_KINDS) + ")",
}
NO_END = 1e18  # an `until` later than any fact (facts stamped by a clock ahead of ours count)
DECISION_SAMPLE = 2000  # most recent supervisor runs whose latency is summarised

OPEN_COUNTS_SQL = f"""
    SELECT {OPEN_STATE_SQL.format(wid="o.workflow_id")}, COUNT(*) FROM open_workflows o
    WHERE NOT {ENDED_SQL.format(wid="o.workflow_id")} GROUP BY 1
"""
STUCK_COUNT_SQL = f"""
    SELECT COUNT(*) FROM open_workflows o
    WHERE NOT {ENDED_SQL.format(wid="o.workflow_id")} AND {stuck_predicate("o.workflow_id")}
"""
# Workflows whose current round ended inside the window, by how it ended.
ENDED_COUNTS_SQL = f"""
    SELECT e.kind, COUNT(*) FROM facts e
    WHERE e.kind IN {_IN["terminal"]} AND e.at >= :since AND e.at < :until
      AND e.seq > {LATEST_RETRY_SQL.format(wid="e.workflow_id")}
    GROUP BY e.kind
"""
# Endings per bucket of `:width` seconds (ROUND(x - 0.4999999) is a portable floor).
THROUGHPUT_SQL = f"""
    SELECT ROUND((e.at - :since) / :width - 0.4999999), COUNT(*) FROM facts e
    WHERE e.kind IN {_IN["terminal"]} AND e.at >= :since GROUP BY 1
"""
STARTED_SQL = """
    SELECT COUNT(*) FROM workflows WHERE created_at >= :since AND created_at < :until
"""
QUEUE_SQL = """
    SELECT kind, COUNT(*), MIN(due_at) FROM tasks
    WHERE lease_owner IS NULL AND due_at <= :now GROUP BY kind
"""
LEASES_SQL = """
    SELECT
      (SELECT COUNT(*) FROM tasks WHERE lease_owner IS NOT NULL AND lease_expires_at >= :now),
      (SELECT COUNT(*) FROM tasks WHERE lease_owner IS NOT NULL AND lease_expires_at < :now),
      (SELECT COUNT(*) FROM tasks WHERE lease_owner IS NULL AND due_at > :now)
"""
ATTEMPTS_SQL = f"""
    SELECT kind, step, COUNT(*), SUM(CASE WHEN attempt > 1 THEN 1 ELSE 0 END) FROM facts
    WHERE kind IN {_IN["activity"]} AND kind IN {_IN["outcomes"]} AND at >= :since
      AND at < :until
    GROUP BY kind, step
"""
COMPENSATIONS_BEGAN_SQL = f"""
    SELECT COUNT(*) FROM facts
    WHERE kind IN {_IN["activity"]} AND kind = '{COMPENSATION_BEGAN}' AND at >= :since
      AND at < :until
"""
DECISIONS_SQL = f"""
    SELECT data FROM facts
    WHERE kind IN {_IN["activity"]} AND kind = '{SUPERVISOR_RAN}' AND at >= :since
      AND at < :until
    ORDER BY at DESC LIMIT :limit
"""


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
        for state, n in tx.query(OPEN_COUNTS_SQL).fetchall():
            states[state] = int(n)
        stuck = int(tx.query(STUCK_COUNT_SQL, rule.params(now)).fetchone()[0])
        for kind, n in tx.query(ENDED_COUNTS_SQL, window_params).fetchall():
            states[TERMINAL_STATES[kind]] = int(n)
        throughput = [0] * buckets
        for index, n in tx.query(THROUGHPUT_SQL, {"since": since, "width": width}).fetchall():
            throughput[min(buckets - 1, max(0, int(index)))] += int(n)
        started = int(tx.query(STARTED_SQL, window_params).fetchone()[0])
        queue: dict[str, int] = {}
        oldest: float | None = None
        for kind, n, due in tx.query(QUEUE_SQL, {"now": now}).fetchall():
            queue[kind] = int(n)
            oldest = float(due) if oldest is None else min(oldest, float(due))
        leased, expired, later = tx.query(LEASES_SQL, {"now": now}).fetchone()
        attempts = _attempts(tx.query(ATTEMPTS_SQL, window_params).fetchall())
        began = int(tx.query(COMPENSATIONS_BEGAN_SQL, window_params).fetchone()[0])
        rows = tx.query(DECISIONS_SQL, {**window_params, "limit": DECISION_SAMPLE}).fetchall()
        services = service_health(tx, now, min(window, 60.0))
    latencies = sorted(float(json.loads(r[0]).get("decide_ms", 0.0)) for r in rows)
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
