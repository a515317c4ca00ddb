"""Listing workflows by state for people on call: the SQL that finds them, page by page.

Every query is index-driven and keyset-paged, so a page costs the same with 100 or 10 million
workflows: open workflows come from `open_workflows`, ended ones from the `facts_terminal`
index, and everything else from `workflows_created` / `workflows_name`.
"""

from __future__ import annotations

import math
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from steadyhand.core import jsoncodec
from steadyhand.core.facts import (
    COMPENSATION_BEGAN,
    RETRY_REQUESTED,
    TERMINAL_KINDS,
    TERMINAL_STATES,
    Fact,
)
from steadyhand.core.limits import MAX_FILTER_CHARS, MAX_WORKFLOW_ID_CHARS, check_text
from steadyhand.core.plans import Plan
from steadyhand.core.records import Task
from steadyhand.core.status import derive_status
from steadyhand.core.stuck import STUCK_EVIDENCE_SQL, StuckRule, stuck_predicate, why_stuck
from steadyhand.core.view import WorkflowView
from steadyhand.ops.filters import workflow_conditions
from steadyhand.store.base import Store, Tx, task_from_row

OPEN_STATES = ("running", "waiting", "compensating")
ENDED_STATES = ("completed", "compensated", "failed")
STATES = OPEN_STATES + ENDED_STATES
FILTERS = (*STATES, "stuck")
KIND_OF_STATE = {state: kind for kind, state in TERMINAL_STATES.items()}
MAX_PAGE = 500

_TERMINAL_IN = "(" + ", ".join(f"'{k}'" for k in TERMINAL_KINDS) + ")"

# The seq of the latest operator retry of `{wid}` (0 when none): a retry opens a new round.
# Scalar subqueries (not EXISTS) keep PostgreSQL from turning these per-workflow probes into
# joins over every terminal or retry fact in the store.
LATEST_RETRY_SQL = f"""COALESCE((SELECT MAX(r.seq) FROM facts r
    WHERE r.workflow_id = {{wid}} AND r.kind = '{RETRY_REQUESTED}'), 0)"""
# The current round of `{wid}` has ended: its latest terminal fact is newer than any retry.
ENDED_SQL = f"""(COALESCE((SELECT MAX(e.seq) FROM facts e
    WHERE e.workflow_id = {{wid}} AND e.kind IN {_TERMINAL_IN}), 0)
    > {LATEST_RETRY_SQL})"""

# The state of a workflow that has not ended, exactly as `status.derive_status` derives it.
OPEN_STATE_SQL = f"""CASE
    WHEN (SELECT 1 FROM facts c WHERE c.workflow_id = {{wid}}
          AND c.kind = '{COMPENSATION_BEGAN}' LIMIT 1) IS NOT NULL THEN 'compensating'
    WHEN NOT EXISTS (SELECT 1 FROM tasks ct WHERE ct.workflow_id = {{wid}}
                     AND ct.kind <> 'supervise')
     AND EXISTS (SELECT 1 FROM tasks wt WHERE wt.workflow_id = {{wid}}
                 AND wt.kind = 'supervise') THEN 'waiting'
    ELSE 'running' END"""

LIST_ALL_SQL = """
    SELECT w.id, w.created_at FROM workflows w WHERE 1 = 1 {filters}
    ORDER BY w.created_at DESC, w.id DESC LIMIT :limit
"""
# Open workflows are few: filter all of them by state first, then sort. `{fence}` keeps
# PostgreSQL from walking `workflows_created` and re-checking every open row per workflow.
LIST_OPEN_SQL = """
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
LIST_ENDED_SQL = f"""
    SELECT e.workflow_id, e.at FROM facts e
    WHERE e.kind IN {_TERMINAL_IN} AND e.kind = :kind
      AND e.seq > {LATEST_RETRY_SQL.format(wid="e.workflow_id")} {{filters}}
    ORDER BY e.at DESC, e.workflow_id DESC LIMIT :limit
"""
FILTER_SQL = {
    "since": "AND w.created_at >= :since",
    "cursor": "AND w.created_at <= :c_at AND (w.created_at < :c_at OR w.id < :c_id)",
    "ended_row": "AND EXISTS (SELECT 1 FROM workflows w WHERE w.id = e.workflow_id AND {conds})",
    "ended_since": "AND e.at >= :since",
    "ended_cursor": "AND e.at <= :c_at AND (e.at < :c_at OR e.workflow_id < :c_id)",
}

# What a page shows: the rows of the chosen ids, with only the fact data a row needs.
PAGE_WORKFLOWS_SQL = "SELECT id, name, created_at FROM workflows WHERE id IN ({ids})"
PAGE_FACTS_SQL = f"""
    SELECT workflow_id, seq, kind, at, step, attempt, slot,
           CASE WHEN kind IN ('workflow_compensated', 'workflow_failed', '{COMPENSATION_BEGAN}')
                THEN data ELSE '{{{{}}}}' END
    FROM facts WHERE workflow_id IN ({{ids}}) ORDER BY workflow_id, seq
"""
PAGE_TASKS_SQL = """
    SELECT id, workflow_id, kind, step, attempt, due_at, '{{}}', lease_owner, lease_expires_at
    FROM tasks WHERE workflow_id IN ({ids})
"""


@dataclass(frozen=True)
class Listing:
    """What to list: a state (or "stuck"), a workflow name, idempotency key, id prefix, a
    remote service it called, values in its input, a start time, and a page."""

    state: str | None = None
    name: str | None = None
    since: float | None = None  # created since; for ended states: ended since
    limit: int = 50
    cursor: str | None = None  # from the previous page's `next_cursor`
    key: str | None = None
    id_prefix: str | None = None
    service: str | None = None
    input: tuple[tuple[str, Any], ...] = ()  # (dotted key, JSON value) pairs, all must match


@dataclass(frozen=True)
class Row:
    """One workflow as a list shows it."""

    id: str
    name: str
    state: str
    created_at: float
    updated_at: float
    step: str | None
    phase: str | None
    attempt: int | None
    next_check_at: float | None
    reason: str | None
    stuck: str | None  # why it is stuck, or None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Page:
    rows: list[Row]
    next_cursor: str | None


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


def encode_cursor(at: float, workflow_id: str) -> str:
    return f"{at!r}~{workflow_id}"


def decode_cursor(cursor: str) -> tuple[float, str]:
    from steadyhand.core.errors import InputError

    at, sep, workflow_id = cursor.partition("~")
    try:
        if not sep or not workflow_id:
            raise ValueError(cursor)
        value = float(at)
        if not math.isfinite(value):
            raise ValueError(cursor)
        return value, workflow_id
    except ValueError:
        raise InputError(f"cursor {cursor!r} is not one this listing handed out") from None


def reporting(store: Store, tx: Tx) -> Tx:
    """Prepare a snapshot for report queries: on PostgreSQL, no JIT (it costs more than the
    few milliseconds these index-driven queries take)."""
    if store.dialect == "postgresql":
        tx.query("SET LOCAL jit = off")
    return tx


def list_workflows(store: Store, listing: Listing, now: float, rule: StuckRule) -> Page:
    """One page of workflows matching `listing`, newest first, and the cursor of the next."""
    from steadyhand.core.errors import InputError

    if listing.state is not None and listing.state not in FILTERS:
        raise InputError(f"unknown state {listing.state!r}; choose one of {', '.join(FILTERS)}")
    if listing.name is not None:
        check_text(listing.name, "name filter", MAX_FILTER_CHARS, empty=True)
    if listing.cursor is not None:
        check_text(listing.cursor, "cursor", MAX_FILTER_CHARS, empty=True)
    limit = max(1, min(listing.limit, MAX_PAGE))
    with store.snapshot() as tx:
        reporting(store, tx)
        keys = _page_keys(tx, listing, limit + 1, now, rule, store.dialect)
        more = len(keys) > limit
        keys = keys[:limit]
        rows = page_rows(tx, [k for k, _ in keys], now, rule)
    next_cursor = encode_cursor(keys[-1][1], keys[-1][0]) if more else None
    return Page(rows, next_cursor)


def _page_keys(
    tx: Tx, listing: Listing, limit: int, now: float, rule: StuckRule, dialect: str
) -> list[tuple[str, float]]:
    params: dict[str, Any] = {"limit": limit}
    ended = listing.state in ENDED_STATES
    prefix = "ended_" if ended else ""
    filters = []
    conds, extra = workflow_conditions(
        dialect,
        name=listing.name,
        key=listing.key,
        id_prefix=listing.id_prefix,
        service=listing.service,
        input=listing.input,
    )
    params.update(extra)
    if conds and ended:
        filters.append(FILTER_SQL["ended_row"].format(conds=" AND ".join(conds)))
    else:
        filters += [f"AND {cond}" for cond in conds]
    if listing.since is not None:
        filters.append(FILTER_SQL[prefix + "since"])
        params["since"] = listing.since
    if listing.cursor:
        params["c_at"], params["c_id"] = decode_cursor(listing.cursor)
        filters.append(FILTER_SQL[prefix + "cursor"])
    where = "\n".join(filters)
    if listing.state is None:
        sql = LIST_ALL_SQL.format(filters=where)
    elif ended:
        params["kind"] = KIND_OF_STATE[listing.state]
        sql = LIST_ENDED_SQL.format(filters=where)
    else:
        if listing.state == "stuck":
            state = "AND " + stuck_predicate("o.workflow_id")
            params.update(rule.params(now))
        else:
            state = f"AND {OPEN_STATE_SQL.format(wid='o.workflow_id')} = :state"
            params["state"] = listing.state
        sql = LIST_OPEN_SQL.format(
            ended=ENDED_SQL.format(wid="o.workflow_id"),
            state=state,
            filters=where,
            fence=OPTIMISATION_FENCE.get(dialect, ""),
        )
    return [(r[0], float(r[1])) for r in tx.query(sql, params).fetchall()]


def page_rows(tx: Tx, ids: Sequence[str], now: float, rule: StuckRule) -> list[Row]:
    """Rows for `ids` (in that order), derived from their facts as `status` derives them."""
    if not ids:
        return []
    in_list, params = named_params("id", ids)
    workflows = {
        r[0]: (r[1], float(r[2]))
        for r in tx.query(PAGE_WORKFLOWS_SQL.format(ids=in_list), params).fetchall()
    }
    facts: dict[str, list[Fact]] = {i: [] for i in ids}
    for r in tx.query(PAGE_FACTS_SQL.format(ids=in_list), params).fetchall():
        facts[r[0]].append(
            Fact(
                int(r[1]), r[2], float(r[3]), r[4], r[5], r[6], jsoncodec.loads_stored(r[7]) or None
            )
        )
    tasks: dict[str, list[Any]] = {i: [] for i in ids}
    for r in tx.query(PAGE_TASKS_SQL.format(ids=in_list), params).fetchall():
        tasks[r[1]].append(task_from_row(r))
    stuck = stuck_reasons(tx, [i for i in ids if i in workflows], now, rule)
    rows = []
    for workflow_id in ids:
        if workflow_id not in workflows:
            continue
        name, created_at = workflows[workflow_id]
        view = WorkflowView(
            workflow_id, name, None, Plan(name), created_at, tuple(facts[workflow_id])
        )
        status = derive_status(view, tasks[workflow_id])
        rows.append(
            Row(
                id=workflow_id,
                name=name,
                state=status.state,
                created_at=created_at,
                updated_at=status.updated_at,
                step=status.step,
                phase=status.phase,
                attempt=status.attempt,
                next_check_at=status.next_check_at,
                reason=status.reason,
                stuck=None if status.done else stuck.get(workflow_id),
            )
        )
    return rows


def stuck_reasons(tx: Tx, ids: Iterable[str], now: float, rule: StuckRule) -> dict[str, str]:
    """For those of `ids` that are stuck: why, in words (ended workflows are never stuck)."""
    ids = list(ids)
    if not ids:
        return {}
    in_list, params = named_params("id", ids)
    sql = STUCK_EVIDENCE_SQL.format(ids=in_list, stuck=stuck_predicate("w.id"))
    params.update(rule.params(now))
    return {
        r[0]: why_stuck(now, _float(r[1]), _float(r[2]), _float(r[3]), int(r[4]))
        for r in tx.query(sql, params).fetchall()
    }


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def rows_json(rows: Iterable[Row]) -> list[Mapping[str, Any]]:
    return [row.to_json() for row in rows]


def inspect_workflow(
    store: Store, workflow_id: str, now: float, rule: StuckRule
) -> tuple[WorkflowView, list[Task], str | None]:
    """One workflow's facts, tasks and (if it is stuck) why, read in one snapshot."""
    from steadyhand.core.errors import NotFoundError

    check_text(workflow_id, "workflow id", MAX_WORKFLOW_ID_CHARS)
    with store.snapshot() as tx:
        row = tx.get_workflow(workflow_id)
        if row is None:
            raise NotFoundError(f"no workflow {workflow_id!r} in {store.safe_url}")
        view = WorkflowView(
            workflow_id=row.id,
            name=row.name,
            input=row.input,
            plan=row.plan,
            created_at=row.created_at,
            facts=tx.read_facts(workflow_id),
            parent_id=row.parent_id,
        )
        tasks = tx.workflow_tasks(workflow_id)
        stuck = None if view.terminal else stuck_reasons(tx, [workflow_id], now, rule).get(row.id)
    return view, tasks, stuck
