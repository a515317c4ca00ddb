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
WHERE e.at < :ended_before AND w.id > :after
  AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.workflow_id = w.id)
  AND NOT EXISTS (SELECT 1 FROM open_workflows o WHERE o.workflow_id = w.id)
  AND (w.parent_id IS NULL OR NOT EXISTS (
        SELECT 1 FROM open_workflows p WHERE p.workflow_id = w.parent_id))
ORDER BY w.id
LIMIT :limit
"""

_WORKFLOW = """
SELECT id, name, idempotency_key, input, plan, parent_id, created_at
FROM workflows WHERE id = :id
"""
_FACTS = """
SELECT seq, kind, step, attempt, slot, data, at, service
FROM facts WHERE workflow_id = :id ORDER BY seq
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
_NAME_FOR_REMOVAL = "INSERT INTO archive_removals (workflow_id, run_id) VALUES (:id, :run)"
_DELETE_FACTS = "DELETE FROM facts WHERE workflow_id = :id"
_DELETE_WORKFLOW = "DELETE FROM workflows WHERE id = :id"
_RUNS = "SELECT id, name, directory, workflows, facts, at FROM archive_runs ORDER BY at"

WORKFLOW_COLUMNS = ("id", "name", "idempotency_key", "input", "plan", "parent_id", "created_at")
FACT_COLUMNS = ("seq", "kind", "step", "attempt", "slot", "data", "at", "service")
SERVICE_FACT_COLUMNS = ("service", "seq", "kind", "data", "at")


@dataclass(frozen=True)
class Candidate:
    workflow_id: str
    ended_at: float


def candidates(store: Store, ended_before: float, limit: int, after: str = "") -> list[Candidate]:
    """Up to `limit` archivable workflows with ids after `after`, in id order."""
    with store.snapshot() as tx:
        rows = tx.query(
            _CANDIDATES, {"ended_before": ended_before, "after": after, "limit": limit}
        ).fetchall()
    return [Candidate(str(r[0]), float(r[1])) for r in rows]


def read_whole(store: Store, workflow_ids: Sequence[str]) -> list[dict[str, Any]]:
    """Each workflow's row and every fact, as JSON-ready records (stored JSON decoded)."""
    records = []
    with store.snapshot() as tx:
        for workflow_id in workflow_ids:
            row = tx.query(_WORKFLOW, {"id": workflow_id}).fetchone()
            if row is None:
                continue
            workflow = dict(zip(WORKFLOW_COLUMNS, row, strict=True))
            workflow["input"] = jsoncodec.loads(workflow["input"])
            workflow["plan"] = jsoncodec.loads(workflow["plan"])
            facts = []
            for fact_row in tx.query(_FACTS, {"id": workflow_id}).fetchall():
                fact = dict(zip(FACT_COLUMNS, fact_row, strict=True))
                fact["data"] = jsoncodec.loads(fact["data"])
                facts.append(fact)
            records.append({"workflow": workflow, "facts": facts})
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
    """Remove archived workflows in one transaction; returns how many facts went."""
    removed = 0
    with store.transaction() as tx:
        for workflow_id in workflow_ids:
            tx.query(_NAME_FOR_REMOVAL, {"id": workflow_id, "run": run_id})
            removed += tx.query(_DELETE_FACTS, {"id": workflow_id}).rowcount
            tx.query(_DELETE_WORKFLOW, {"id": workflow_id})
    return removed


def runs(store: Store) -> list[dict[str, Any]]:
    """Every archive run recorded in this store, oldest first."""
    with store.snapshot() as tx:
        rows = tx.query(_RUNS).fetchall()
    keys = ("id", "name", "directory", "workflows", "facts", "at")
    return [dict(zip(keys, row, strict=True)) for row in rows]
