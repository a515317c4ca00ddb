"""What operators read, as SQL: listing workflows by state, the stuck rule, stats over a
recent window, each service's health, and raw rows for the demo's and chaos run's audits.

Reports ask for these by name (`REPORTS`, run with `report`) or through the few builders
below whose text depends on the request (filters, a page of ids, the dialect). Every query
is index-driven and keyset-paged, so a page costs the same with 100 or 10 million workflows:
open workflows come from `open_workflows`, ended ones from the `facts_terminal` index, and
windowed counts from the `facts_activity` index. Fact kinds come from `core.facts`, never
typed here. The one dialect difference of reports (PostgreSQL's optimisation fence and JIT)
is decided here too.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from typing import Any

from steadyhand.core.circuit import OUTCOME_KINDS as SERVICE_OUTCOME_KINDS
from steadyhand.core.facts import (
    CALL_OUTCOME_KINDS,
    COMPENSATION_BEGAN,
    RETRY_REQUESTED,
    SUPERVISOR_RAN,
    TERMINAL_KINDS,
    WORKFLOW_COMPENSATED,
    WORKFLOW_FAILED,
)
from steadyhand.store.base import Tx
from steadyhand.store.queries import in_list

# The kinds of the partial index `facts_activity` (migration 002), in its order: SQLite uses
# a partial index only when the query repeats the index's WHERE term exactly, so every
# windowed query over these kinds carries `kind IN ACTIVITY` besides its own condition (a
# test compares this list with the migration's).
ACTIVITY_KINDS = (*CALL_OUTCOME_KINDS, SUPERVISOR_RAN, COMPENSATION_BEGAN)
_TERMINAL_IN = in_list(TERMINAL_KINDS)
_OUTCOMES_IN = in_list(CALL_OUTCOME_KINDS)
_ACTIVITY_IN = in_list(ACTIVITY_KINDS)

# -- fragments about one workflow, whose id is in the column `{wid}` --------------------------
# The seq of the latest operator retry (0 when none): a retry opens a new round. Scalar
# subqueries (not EXISTS) keep PostgreSQL from turning these per-workflow probes into joins
# over every terminal or retry fact in the store.
LATEST_RETRY = f"""COALESCE((SELECT MAX(r.seq) FROM facts r
    WHERE r.workflow_id = {{wid}} AND r.kind = '{RETRY_REQUESTED}'), 0)"""
# The current round has ended: its latest terminal fact is newer than any retry.
ENDED = f"""(COALESCE((SELECT MAX(e.seq) FROM facts e
    WHERE e.workflow_id = {{wid}} AND e.kind IN {_TERMINAL_IN}), 0)
    > {LATEST_RETRY})"""
# The state of a workflow that has not ended, exactly as `status.derive_status` derives it.
OPEN_STATE = f"""CASE
    WHEN (SELECT 1 FROM facts c WHERE c.workflow_id = {{wid}}
          AND c.kind = '{COMPENSATION_BEGAN}' LIMIT 1) IS NOT NULL THEN 'compensating'
    WHEN NOT EXISTS (SELECT 1 FROM tasks ct WHERE ct.workflow_id = {{wid}}
                     AND ct.kind <> 'supervise')
     AND EXISTS (SELECT 1 FROM tasks wt WHERE wt.workflow_id = {{wid}}
                 AND wt.kind = 'supervise') THEN 'waiting'
    ELSE 'running' END"""
# Stuck (see `core.stuck` for the rule in words), when ANY of these holds (the workflow must
# also be not ended; callers pick candidates from `open_workflows` and exclude ended ones):
#   silent:    its last fact is older than the threshold and no wake-up is planned later;
#   overdue:   a task has been due for longer than the threshold and no worker took it;
#   abandoned: a lease expired longer than the threshold ago and no watchdog recovered it.
STUCK = """(
    ((SELECT sf.at FROM facts sf WHERE sf.workflow_id = {wid} ORDER BY sf.seq DESC LIMIT 1)
        < :stuck_before
     AND NOT EXISTS (SELECT 1 FROM tasks st WHERE st.workflow_id = {wid}
                     AND st.lease_owner IS NULL AND st.due_at > :now))
    OR EXISTS (SELECT 1 FROM tasks st WHERE st.workflow_id = {wid}
               AND st.lease_owner IS NULL AND st.due_at < :stuck_before)
    OR EXISTS (SELECT 1 FROM tasks st WHERE st.workflow_id = {wid}
               AND st.lease_owner IS NOT NULL AND st.lease_expires_at < :stuck_before)
)"""


def stuck_predicate(workflow_id_column: str) -> str:
    """The stuck condition as SQL for the workflow whose id is in `workflow_id_column`."""
    return STUCK.format(wid=workflow_id_column)


def _open(fragment: str) -> str:
    return fragment.format(wid="o.workflow_id")


# -- named reports (fixed text) ---------------------------------------------------------------
REPORTS: dict[str, str] = {
    # The newest rolled-back and failed endings, for grouping their reasons (the overview).
    "ending_reasons": f"""
        SELECT kind, data FROM facts
        WHERE kind IN {_TERMINAL_IN}
          AND kind IN ('{WORKFLOW_COMPENSATED}', '{WORKFLOW_FAILED}')
          AND at >= :since
        ORDER BY at DESC LIMIT :limit
    """,
    # stats: open workflows by state, exactly; stuck ones; ended ones within the window.
    "open_counts": f"""
        SELECT {_open(OPEN_STATE)}, COUNT(*) FROM open_workflows o
        WHERE NOT {_open(ENDED)} GROUP BY 1
    """,
    "stuck_count": f"""
        SELECT COUNT(*) FROM open_workflows o
        WHERE NOT {_open(ENDED)} AND {stuck_predicate("o.workflow_id")}
    """,
    # Workflows whose current round ended inside the window, by how it ended.
    "ended_counts": f"""
        SELECT e.kind, COUNT(*) FROM facts e
        WHERE e.kind IN {_TERMINAL_IN} AND e.at >= :since AND e.at < :until
          AND e.seq > {LATEST_RETRY.format(wid="e.workflow_id")}
        GROUP BY e.kind
    """,
    # Endings per bucket of `:width` seconds (ROUND(x - 0.4999999) is a portable floor).
    "throughput": f"""
        SELECT ROUND((e.at - :since) / :width - 0.4999999), COUNT(*) FROM facts e
        WHERE e.kind IN {_TERMINAL_IN} AND e.at >= :since GROUP BY 1
    """,
    "started": """
        SELECT COUNT(*) FROM workflows WHERE created_at >= :since AND created_at < :until
    """,
    "queue": """
        SELECT kind, COUNT(*), MIN(due_at) FROM tasks
        WHERE lease_owner IS NULL AND due_at <= :now GROUP BY kind
    """,
    "leases": """
        SELECT
          (SELECT COUNT(*) FROM tasks WHERE lease_owner IS NOT NULL AND lease_expires_at >= :now),
          (SELECT COUNT(*) FROM tasks WHERE lease_owner IS NOT NULL AND lease_expires_at < :now),
          (SELECT COUNT(*) FROM tasks WHERE lease_owner IS NULL AND due_at > :now)
    """,
    "attempts": f"""
        SELECT kind, step, COUNT(*), SUM(CASE WHEN attempt > 1 THEN 1 ELSE 0 END) FROM facts
        WHERE kind IN {_ACTIVITY_IN} AND kind IN {_OUTCOMES_IN} AND at >= :since
          AND at < :until
        GROUP BY kind, step
    """,
    "compensations_began": f"""
        SELECT COUNT(*) FROM facts
        WHERE kind IN {_ACTIVITY_IN} AND kind = '{COMPENSATION_BEGAN}' AND at >= :since
          AND at < :until
    """,
    "decisions": f"""
        SELECT data FROM facts
        WHERE kind IN {_ACTIVITY_IN} AND kind = '{SUPERVISOR_RAN}' AND at >= :since
          AND at < :until
        ORDER BY at DESC LIMIT :limit
    """,
    # service health: calls in flight per service, and recent outcomes of one service.
    "services_in_flight": """
        SELECT service, COUNT(*) FROM tasks
        WHERE lease_owner IS NOT NULL AND service IS NOT NULL GROUP BY service
    """,
    "service_outcome_counts": f"""
        SELECT kind, COUNT(*) FROM facts
        WHERE service = :service AND at >= :since AND kind IN {in_list(SERVICE_OUTCOME_KINDS)}
        GROUP BY kind
    """,
    # How often each service's circuit changed (the demo's summary).
    "circuit_changes": """
        SELECT service, kind, COUNT(*) FROM service_facts GROUP BY service, kind
    """,
    # One workflow's facts exactly as stored (data as its JSON text), for audits and digests.
    "fact_rows": """
        SELECT workflow_id, seq, kind, step, attempt, slot, data, at FROM facts
        WHERE workflow_id = :id ORDER BY seq
    """,
}


def report(tx: Tx, name: str, params: Mapping[str, Any] | None = None) -> list[Any]:
    """Every row of the named report, run in the caller's snapshot."""
    return tx.query(REPORTS[name], params).fetchall()


def prepare_txn(tx: Tx, dialect: str) -> None:
    """Ready a snapshot for reports: on PostgreSQL, no JIT (it costs more than the few
    milliseconds these index-driven queries take)."""
    if dialect == "postgresql":
        tx.query("SET LOCAL jit = off")


# -- listings: one page of workflow ids, newest first ------------------------------------------
LIST_ALL = """
    SELECT w.id, w.created_at FROM workflows w WHERE 1 = 1 {filters}
    ORDER BY w.created_at DESC, w.id DESC LIMIT :limit
"""
# Open workflows are few: filter all of them by state first, then sort. `{fence}` keeps
# PostgreSQL from walking `workflows_created` and re-checking every open row per workflow.
LIST_OPEN = """
    SELECT w.id, w.created_at FROM (
        SELECT ow.id, ow.name, ow.created_at, ow.idempotency_key, ow.input, ow.plan
        FROM open_workflows o
        JOIN workflows ow ON ow.id = o.workflow_id
        WHERE NOT {ended} {state} {fence}
    ) w WHERE 1 = 1 {filters}
    ORDER BY w.created_at DESC, w.id DESC LIMIT :limit
"""
OPTIMISATION_FENCE = {"postgresql": "OFFSET 0", "sqlite": ""}
# Ended workflows, newest end first, straight from the partial index on terminal facts.
LIST_ENDED = f"""
    SELECT e.workflow_id, e.at FROM facts e
    WHERE e.kind IN {_TERMINAL_IN} AND e.kind = :kind
      AND e.seq > {LATEST_RETRY.format(wid="e.workflow_id")} {{filters}}
    ORDER BY e.at DESC, e.workflow_id DESC LIMIT :limit
"""
FILTERS = {
    "since": "AND w.created_at >= :since",
    "cursor": "AND w.created_at <= :c_at AND (w.created_at < :c_at OR w.id < :c_id)",
    "ended_since": "AND e.at >= :since",
    "ended_cursor": "AND e.at <= :c_at AND (e.at < :c_at OR e.workflow_id < :c_id)",
}


def page_keys_txn(
    tx: Tx,
    dialect: str,
    scope: str,
    filters: Sequence[str],
    params: Mapping[str, Any],
    conds: Sequence[str] = (),
) -> list[tuple[str, float]]:
    """(id, sort time) of one page. `scope` is "all", "ended" (`:kind` names the terminal
    kind), "stuck" (with the stuck rule's parameters) or "open" (`:state` names the state);
    `filters` are keys of `FILTERS` (since, cursor) whose parameters are in `params`, and
    `conds` conditions on the root row `w` (`listing_filters.workflow_conditions`)."""
    prefix = "ended_" if scope == "ended" else ""
    lines = [FILTERS[prefix + f] for f in filters]
    if conds and scope == "ended":
        lines.append(
            "AND EXISTS (SELECT 1 FROM workflows w WHERE w.id = e.workflow_id AND "
            + " AND ".join(conds)
            + ")"
        )
    else:
        lines += [f"AND {cond}" for cond in conds]
    where = "\n".join(lines)
    if scope == "all":
        sql = LIST_ALL.format(filters=where)
    elif scope == "ended":
        sql = LIST_ENDED.format(filters=where)
    else:
        if scope == "stuck":
            state = "AND " + stuck_predicate("o.workflow_id")
        else:
            state = f"AND {_open(OPEN_STATE)} = :state"
        sql = LIST_OPEN.format(
            ended=_open(ENDED), state=state, filters=where, fence=OPTIMISATION_FENCE[dialect]
        )
    return [(r[0], float(r[1])) for r in tx.query(sql, params).fetchall()]


# What a page shows: the rows of the chosen ids, with only the fact data a row needs.
PAGE_WORKFLOWS = "SELECT id, name, created_at FROM workflows WHERE id IN ({ids})"
PAGE_FACTS = f"""
    SELECT workflow_id, seq, kind, at, step, attempt, slot,
           CASE WHEN kind IN {in_list((WORKFLOW_COMPENSATED, WORKFLOW_FAILED, COMPENSATION_BEGAN))}
                THEN data ELSE '{{{{}}}}' END
    FROM facts WHERE workflow_id IN ({{ids}}) ORDER BY workflow_id, seq
"""
PAGE_TASKS = """
    SELECT id, workflow_id, kind, step, attempt, due_at, '{{}}', lease_owner, lease_expires_at
    FROM tasks WHERE workflow_id IN ({ids})
"""
# The evidence behind a stuck verdict, one row per stuck workflow, to say *why* in words.
STUCK_EVIDENCE = """
    SELECT w.id,
           (SELECT sf.at FROM facts sf WHERE sf.workflow_id = w.id ORDER BY sf.seq DESC LIMIT 1),
           (SELECT MIN(st.due_at) FROM tasks st WHERE st.workflow_id = w.id
               AND st.lease_owner IS NULL AND st.due_at < :stuck_before),
           (SELECT MIN(st.lease_expires_at) FROM tasks st WHERE st.workflow_id = w.id
               AND st.lease_owner IS NOT NULL AND st.lease_expires_at < :stuck_before),
           (SELECT COUNT(*) FROM tasks st WHERE st.workflow_id = w.id
               AND st.lease_owner IS NOT NULL AND st.lease_expires_at >= :now)
    FROM workflows w WHERE w.id IN ({ids}) AND {stuck}
"""


def page_txn(tx: Tx, ids: Sequence[str]) -> tuple[list[Any], list[Any], list[Any]]:
    """The workflow rows (id, name, created_at), fact rows (workflow_id, seq, kind, at, step,
    attempt, slot, data text) and task rows (as `task_from_row` reads them) of `ids`."""
    listed, params = named_params("id", ids)
    return (
        tx.query(PAGE_WORKFLOWS.format(ids=listed), params).fetchall(),
        tx.query(PAGE_FACTS.format(ids=listed), params).fetchall(),
        tx.query(PAGE_TASKS.format(ids=listed), params).fetchall(),
    )


def stuck_evidence_txn(tx: Tx, ids: Sequence[str], rule: Mapping[str, float]) -> list[Any]:
    """(id, last fact at, overdue since, lease expired at, live leases) of those of `ids`
    that are stuck under the rule's parameters `rule` (see `StuckRule.params`)."""
    listed, params = named_params("id", ids)
    sql = STUCK_EVIDENCE.format(ids=listed, stuck=stuck_predicate("w.id"))
    return tx.query(sql, {**params, **rule}).fetchall()


def named_params(prefix: str, values: Sequence[Any]) -> tuple[str, dict[str, Any]]:
    """`:prefix_a, :prefix_b, …` for an IN list (parameter names carry no digits)."""
    names = [f"{prefix}_{_letters(i)}" for i in range(len(values))]
    return ", ".join(f":{n}" for n in names), dict(zip(names, values, strict=True))


def _letters(i: int) -> str:
    out = ""
    while True:
        i, r = divmod(i, 26)
        out = string.ascii_lowercase[r] + out
        if i == 0:
            return out
        i -= 1
