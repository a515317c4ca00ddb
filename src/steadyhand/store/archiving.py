"""The store's side of sealed archives: find ended workflows, read them whole, remove them.

Removal is the one narrow path through the append-only guards (migration 013): a workflow
can be deleted only once an archive run is recorded and names it, and only if it has ended
and has nothing queued (the store checks both, whatever the caller says). Each batch is
one short transaction, so archiving a million facts never holds workers up for long.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from steadyhand.core import jsoncodec
from steadyhand.store.base import Store

TERMINAL = "('workflow_completed', 'workflow_compensated', 'workflow_failed')"

# Ended before the cutoff, nothing queued, and no parent still running (a running parent
# may still read its child's end).
_CANDIDATES = f"""
SELECT w.id, e.at FROM workflows w
JOIN facts e ON e.workflow_id = w.id AND e.kind IN {TERMINAL}
WHERE e.at < :ended_before
  AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.workflow_id = w.id)
  AND NOT EXISTS (SELECT 1 FROM open_workflows o WHERE o.workflow_id = w.id)
  AND (w.parent_id IS NULL OR NOT EXISTS (
        SELECT 1 FROM open_workflows p WHERE p.workflow_id = w.parent_id))
ORDER BY w.id
LIMIT :limit
"""

# `{ids}` is the dialect's "one of these ids" (see `_in_ids`).
_WORKFLOWS = """
SELECT id, name, idempotency_key, input, plan, parent_id, created_at
FROM workflows WHERE id {ids} ORDER BY id
"""
_FACTS = """
SELECT workflow_id, seq, kind, step, attempt, slot, data, at, service
FROM facts WHERE workflow_id {ids} ORDER BY workflow_id, seq
"""
_SERVICE_FACTS = """
SELECT service, seq, kind, data, at FROM service_facts
WHERE service = :service AND at >= :since AND at <= :until ORDER BY seq
"""
_RECORD_RUN = """
INSERT INTO archive_runs (id, name, directory, ended_before, workflows, facts,
                          manifest_sha256, by, at)
VALUES (:id, :name, :directory, :ended_before, :workflows, :facts, :manifest_hash, :by, :at)
"""
_NAME_FOR_REMOVAL = """
INSERT INTO archive_removals (workflow_id, run_id) SELECT id, :run FROM workflows WHERE id {ids}
"""
_DELETE_FACTS = "DELETE FROM facts WHERE workflow_id {ids}"
_DELETE_WORKFLOWS = "DELETE FROM workflows WHERE id {ids}"
_RUNS = "SELECT id, name, directory, workflows, facts, at FROM archive_runs ORDER BY at"

WORKFLOW_COLUMNS = ("id", "name", "idempotency_key", "input", "plan", "parent_id", "created_at")
FACT_COLUMNS = ("seq", "kind", "step", "attempt", "slot", "data", "at", "service")
SERVICE_FACT_COLUMNS = ("service", "seq", "kind", "data", "at")


@dataclass(frozen=True)
class Candidate:
    workflow_id: str
    ended_at: float


def candidates(store: Store, ended_before: float, limit: int) -> list[Candidate]:
    """Up to `limit` archivable workflows, in id order: one statement (the terminal-fact
    index finds them; paging by id would rescan it for every page)."""
    with store.snapshot() as tx:
        rows = tx.query(_CANDIDATES, {"ended_before": ended_before, "limit": limit}).fetchall()
    return [Candidate(str(r[0]), float(r[1])) for r in rows]


def _in_ids(store: Store, ids: Sequence[str]) -> tuple[str, Any]:
    """The SQL for "is one of `ids`" in this store's dialect, and the parameter it takes."""
    if store.dialect == "postgresql":
        return "= ANY(:ids)", list(ids)
    return "IN (SELECT value FROM json_each(:ids))", jsoncodec.dumps(list(ids))


def read_whole(store: Store, workflow_ids: Sequence[str]) -> list[dict[str, Any]]:
    """Each workflow's row and every fact, as JSON-ready records (stored JSON decoded), in
    id order; two statements for the whole batch."""
    match, ids = _in_ids(store, workflow_ids)
    with store.snapshot() as tx:
        rows = tx.query(_WORKFLOWS.format(ids=match), {"ids": ids}).fetchall()
        fact_rows = tx.query(_FACTS.format(ids=match), {"ids": ids}).fetchall()
    facts: dict[str, list[dict[str, Any]]] = {}
    for fact_row in fact_rows:
        fact = dict(zip(FACT_COLUMNS, fact_row[1:], strict=True))
        fact["data"] = jsoncodec.loads(fact["data"])
        facts.setdefault(fact_row[0], []).append(fact)
    records = []
    for row in rows:
        workflow = dict(zip(WORKFLOW_COLUMNS, row, strict=True))
        workflow["input"] = jsoncodec.loads(workflow["input"])
        workflow["plan"] = jsoncodec.loads(workflow["plan"])
        records.append({"workflow": workflow, "facts": facts.get(workflow["id"], [])})
    return records


def service_history(
    store: Store, services: Sequence[str], since: float, until: float
) -> list[dict[str, Any]]:
    """The service facts (circuits, holds) of `services` recorded between `since` and `until`."""
    found = []
    with store.snapshot() as tx:
        for service in sorted(services):
            rows = tx.query(
                _SERVICE_FACTS, {"service": service, "since": since, "until": until}
            ).fetchall()
            for row in rows:
                record = dict(zip(SERVICE_FACT_COLUMNS, row, strict=True))
                record["data"] = jsoncodec.loads(record["data"])
                found.append(record)
    return found


def record_run(store: Store, run: dict[str, Any]) -> None:
    """Record an archive run (its manifest is written and fsynced before this is called)."""
    with store.transaction() as tx:
        tx.query(_RECORD_RUN, run)


def remove(store: Store, run_id: str, workflow_ids: Sequence[str]) -> int:
    """Remove archived workflows in one short transaction; returns how many facts went.
    The store refuses the whole batch if any of them has not ended (migration 013)."""
    match, ids = _in_ids(store, workflow_ids)
    with store.transaction() as tx:
        tx.query(_NAME_FOR_REMOVAL.format(ids=match), {"ids": ids, "run": run_id})
        removed = int(tx.query(_DELETE_FACTS.format(ids=match), {"ids": ids}).rowcount)
        tx.query(_DELETE_WORKFLOWS.format(ids=match), {"ids": ids})
    return removed


def runs(store: Store) -> list[dict[str, Any]]:
    """Every archive run recorded in this store, oldest first."""
    with store.snapshot() as tx:
        rows = tx.query(_RUNS).fetchall()
    keys = ("id", "name", "directory", "workflows", "facts", "at")
    return [dict(zip(keys, row, strict=True)) for row in rows]
