"""Scale: does a step cost more when the store already holds a long history?

Two stores are seeded with finished workflows (10 facts each, closed, no tasks): one with
`small` facts, one with `large`. The same run of M three-step workflows by one worker is
then timed on each, alternately, `rounds` times. Reported: the per-step cost (worker
wall time per step, ms), and the supervisor's own decision time (`decide_ms`, recorded in
every `supervisor_ran` breadcrumb) of the new workflows. The ratio large/small of the
medians should stay near 1 (guarantee 9).
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import time
from dataclasses import dataclass, field

import psycopg

from .throughput import Monitor, WorkerConfig, backend_of, run_throughput

FACTS_PER_WORKFLOW = 10

# (seq, kind, slot); the middle looks like three steps run one after the other.
_SHAPE = [
    (1, "workflow_started", "'started'"),
    (2, "supervisor_ran", "NULL"),
    (3, "attempt_scheduled", "'action:a:1:scheduled'"),
    (4, "attempt_succeeded", "'action:a:1:outcome'"),
    (5, "supervisor_ran", "NULL"),
    (6, "attempt_scheduled", "'action:b:1:scheduled'"),
    (7, "attempt_succeeded", "'action:b:1:outcome'"),
    (8, "supervisor_ran", "NULL"),
    (9, "supervisor_ran", "NULL"),
    (10, "workflow_completed", "'terminal:1'"),
]


def _case(column: str) -> str:
    """A CASE over the fact number s.x giving each seeded fact its kind or its slot."""
    values = [(seq, f"'{kind}'" if column == "kind" else slot) for seq, kind, slot in _SHAPE]
    whens = " ".join(f"WHEN {seq} THEN {value}" for seq, value in values)
    return f"CASE s.x {whens} END"


def seed_history(url: str, facts: int, start_index: int = 0) -> int:
    """Append `facts` facts of finished workflows (ids h0000000001…); returns workflows added."""
    count = max(1, facts // FACTS_PER_WORKFLOW)
    t0 = time.time() - 86400
    data = json.dumps({"saw": "history", "decided": "nothing", "why": "seeded history"})
    first, last = start_index + 1, start_index + count
    kind, slot = _case("kind"), _case("slot")
    if backend_of(url) == "postgres":
        from steadyhand.store.postgres import split_url

        conninfo, schema = split_url(url)
        with psycopg.connect(conninfo, autocommit=True, options=f"-c search_path={schema}") as c:
            c.execute(
                "INSERT INTO workflows (id, name, idempotency_key, input, plan, parent_id, "
                "created_at) SELECT 'h' || lpad(g.x::text, 10, '0'), 'history', NULL, 'null', "
                "'{}', NULL, %(t0)s + g.x * 0.001 "
                "FROM generate_series(%(a)s::int, %(b)s::int) AS g(x)",
                {"t0": t0, "a": first, "b": last},
            )
            c.execute(
                "INSERT INTO facts (workflow_id, seq, kind, step, attempt, slot, data, at) "
                f"SELECT 'h' || lpad(g.x::text, 10, '0'), s.x, {kind}, NULL, NULL, {slot}, "
                "%(data)s, %(t0)s + g.x * 0.001 "
                "FROM generate_series(%(a)s::int, %(b)s::int) AS g(x), "
                f"generate_series(1, {FACTS_PER_WORKFLOW}) AS s(x)",
                {"t0": t0, "a": first, "b": last, "data": data},
            )
            c.execute("ANALYZE workflows, facts")  # only ours: other schemas are not our business
        return count
    from steadyhand.store.sqlite import sqlite_path

    with sqlite3.connect(sqlite_path(url), isolation_level=None) as conn:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "WITH RECURSIVE g(x) AS (SELECT :a UNION ALL SELECT x + 1 FROM g WHERE x < :b) "
            "INSERT INTO workflows (id, name, idempotency_key, input, plan, parent_id, "
            "created_at) SELECT 'h' || substr('0000000000' || g.x, -10, 10), 'history', NULL, "
            "'null', '{}', NULL, :t0 + g.x * 0.001 FROM g",
            {"t0": t0, "a": first, "b": last},
        )
        conn.execute(
            "WITH RECURSIVE g(x) AS (SELECT :a UNION ALL SELECT x + 1 FROM g WHERE x < :b), "
            f"s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < {FACTS_PER_WORKFLOW}) "
            "INSERT INTO facts (workflow_id, seq, kind, step, attempt, slot, data, at) "
            f"SELECT 'h' || substr('0000000000' || g.x, -10, 10), s.x, {kind}, NULL, NULL, "
            f"{slot}, :data, :t0 + g.x * 0.001 FROM g, s",
            {"t0": t0, "a": first, "b": last, "data": data},
        )
        conn.execute("COMMIT")
        conn.execute("ANALYZE")
    return count


def fact_count(url: str) -> int:
    monitor = Monitor(url)
    try:
        return int(monitor.query("SELECT count(*) FROM facts")[0][0])
    finally:
        monitor.close()


def decide_ms(url: str, since: float) -> list[float]:
    """`decide_ms` of every supervisor run of workflows started after `since`."""
    monitor = Monitor(url)
    try:
        rows = monitor.query(
            "SELECT f.data FROM facts f JOIN workflows w ON w.id = f.workflow_id "
            f"WHERE f.kind = 'supervisor_ran' AND w.name = 'three' AND w.created_at >= {since}"
        )
    finally:
        monitor.close()
    return [float(json.loads(r[0]).get("decide_ms", 0.0)) for r in rows]


@dataclass
class ScaleSample:
    facts: int
    step_ms: list[float] = field(default_factory=list)
    decide_ms: list[float] = field(default_factory=list)

    @property
    def step(self) -> float:
        return statistics.median(self.step_ms)

    @property
    def decide(self) -> float:
        return statistics.median(self.decide_ms) if self.decide_ms else float("nan")


def measure(
    small_url: str,
    large_url: str,
    *,
    small: int,
    large: int,
    m: int,
    rounds: int = 2,
    config: WorkerConfig | None = None,
) -> tuple[ScaleSample, ScaleSample]:
    """Seed both stores, then alternate runs of `m` workflows on each (see module doc)."""
    from steadyhand import open_store

    for url in (small_url, large_url):
        open_store(url).close()  # create the schema
    seed_history(small_url, small)
    seed_history(large_url, large)
    samples = (ScaleSample(fact_count(small_url)), ScaleSample(fact_count(large_url)))
    for _ in range(rounds):
        for url, sample in zip((small_url, large_url), samples, strict=True):
            since = time.time()
            result = run_throughput(url, n=m, workers_count=1, config=config, count_commits=False)
            sample.step_ms.append(1000.0 / result.calls_per_s)
            sample.decide_ms.extend(decide_ms(url, since))
    return samples
