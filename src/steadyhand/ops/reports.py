"""Listing workflows by state for people on call, page by page, and inspecting one.

The SQL lives in `store.reporting` (index-driven, keyset-paged: a page costs the same with
100 or 10 million workflows); this module turns a request into its parameters and the rows
into what a person reads, derived from facts exactly as `status` derives them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from steadyhand.core import jsoncodec
from steadyhand.core.facts import (
    TERMINAL_STATES,
    Fact,
)
from steadyhand.core.limits import MAX_FILTER_CHARS, MAX_WORKFLOW_ID_CHARS, check_text
from steadyhand.core.plans import Plan
from steadyhand.core.records import Task
from steadyhand.core.status import derive_status
from steadyhand.core.stuck import StuckRule, why_stuck
from steadyhand.core.view import WorkflowView
from steadyhand.ops.filters import check_path
from steadyhand.store import reporting as report_sql
from steadyhand.store.base import Store, Tx, task_from_row
from steadyhand.store.listing_filters import workflow_conditions

OPEN_STATES = ("running", "waiting", "compensating")
ENDED_STATES = ("completed", "compensated", "failed")
STATES = OPEN_STATES + ENDED_STATES
FILTERS = (*STATES, "stuck")
KIND_OF_STATE = {state: kind for kind, state in TERMINAL_STATES.items()}
MAX_PAGE = 500


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
    """Ready a snapshot for report queries (see `store.reporting.prepare_txn`)."""
    report_sql.prepare_txn(tx, store.dialect)
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
    filters = []
    conds, extra = workflow_conditions(
        dialect,
        name=listing.name,
        key=listing.key,
        id_prefix=listing.id_prefix,
        service=listing.service,
        input=[(check_path(path), value) for path, value in listing.input],
    )
    params.update(extra)
    if listing.since is not None:
        filters.append("since")
        params["since"] = listing.since
    if listing.cursor:
        params["c_at"], params["c_id"] = decode_cursor(listing.cursor)
        filters.append("cursor")
    if listing.state is None:
        scope = "all"
    elif listing.state in ENDED_STATES:
        scope = "ended"
        params["kind"] = KIND_OF_STATE[listing.state]
    elif listing.state == "stuck":
        scope = "stuck"
        params.update(rule.params(now))
    else:
        scope = "open"
        params["state"] = listing.state
    return report_sql.page_keys_txn(tx, dialect, scope, filters, params, conds)


def page_rows(tx: Tx, ids: Sequence[str], now: float, rule: StuckRule) -> list[Row]:
    """Rows for `ids` (in that order), derived from their facts as `status` derives them."""
    if not ids:
        return []
    workflow_rows, fact_rows, task_rows = report_sql.page_txn(tx, ids)
    workflows = {r[0]: (r[1], float(r[2])) for r in workflow_rows}
    facts: dict[str, list[Fact]] = {i: [] for i in ids}
    for r in fact_rows:
        facts[r[0]].append(
            Fact(
                int(r[1]), r[2], float(r[3]), r[4], r[5], r[6], jsoncodec.loads_stored(r[7]) or None
            )
        )
    tasks: dict[str, list[Any]] = {i: [] for i in ids}
    for r in task_rows:
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
    return {
        r[0]: why_stuck(now, _float(r[1]), _float(r[2]), _float(r[3]), int(r[4]))
        for r in report_sql.stuck_evidence_txn(tx, ids, rule.params(now))
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
