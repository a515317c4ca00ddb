"""Every SQL statement steadyhand runs, by name, written once for both dialects.

Statements use `:name` parameters (SQLite's style); the PostgreSQL store rewrites them to
`%(name)s`. Where the dialects really differ (locking, leasing, LEAST vs min, sets of ids)
the backend overrides the named statement; everything else is shared.

Set statements take `:ids`: here a JSON array read with `json_each` (SQLite), on PostgreSQL
an array parameter matched with `= ANY(:ids)` (see `Tx.ids`).
"""

from __future__ import annotations

from collections.abc import Mapping

from steadyhand.core.circuit import OUTCOME_KINDS
from steadyhand.core.facts import RETRY_REQUESTED, TERMINAL_KINDS
from steadyhand.store.priorities import lease_by_priority_sql

IN_IDS = "IN (SELECT value FROM json_each(:ids))"
"""How the shared (SQLite) statements match a set of ids; PostgreSQL swaps in `ANY`."""


def override(shared: Mapping[str, str], name: str, old: str, new: str) -> str:
    """The shared statement `name` with `old` replaced by `new`; raises at import when `old`
    is not in it exactly once (the shared text changed, and the override would silently
    do nothing or too much)."""
    text = shared[name]
    if text.count(old) != 1:
        raise AssertionError(
            f"PostgreSQL override of {name!r}: expected {old!r} once in the shared statement, "
            f"found it {text.count(old)} times; update the override in the dialect's module"
        )
    return text.replace(old, new)


def locking(shared: Mapping[str, str], name: str) -> str:
    """The shared SELECT `name` with `FOR UPDATE` appended; raises when it is no longer a
    plain SELECT that can take it."""
    text = shared[name].rstrip()
    if not text.lstrip().startswith("SELECT") or text.endswith((";", "FOR UPDATE")):
        raise AssertionError(f"PostgreSQL override of {name!r}: not a plain SELECT any more")
    return text + " FOR UPDATE"


def in_list(kinds: tuple[str, ...]) -> str:
    """`('a', 'b')`: a SQL list of fact kinds, built from the vocabulary in `core.facts`."""
    return "(" + ", ".join(f"'{kind}'" for kind in kinds) + ")"


SHARED: dict[str, str] = {
    # -- workflows ----------------------------------------------------------------------------
    "insert_workflow": """
        INSERT INTO workflows (id, name, idempotency_key, input, plan, parent_id, created_at)
        VALUES (:id, :name, :key, :input, :plan, :parent_id, :now)
        ON CONFLICT DO NOTHING
    """,
    "lock_workflow": """
        SELECT id, name, idempotency_key, input, plan, parent_id, created_at
        FROM workflows WHERE id = :id
    """,
    "lock_workflows": f"""
        SELECT id, name, idempotency_key, input, plan, parent_id, created_at
        FROM workflows WHERE id {IN_IDS} ORDER BY id
    """,
    "get_workflow": """
        SELECT id, name, idempotency_key, input, plan, parent_id, created_at
        FROM workflows WHERE id = :id
    """,
    "workflow_by_key": """
        SELECT id, name, idempotency_key, input, plan, parent_id, created_at
        FROM workflows WHERE idempotency_key = :key
    """,
    "workflows_by_keys": f"""
        SELECT id, name, idempotency_key, input, plan, parent_id, created_at
        FROM workflows WHERE idempotency_key {IN_IDS}
    """,
    # A new workflow's priority and fairness key (store.priorities), before its first task.
    "set_priority": """
        INSERT INTO workflow_priorities (workflow_id, priority, fairness_key)
        VALUES (:id, :priority, :fairness_key)
    """,
    # -- facts --------------------------------------------------------------------------------
    "read_facts": """
        SELECT seq, kind, at, step, attempt, slot, data
        FROM facts WHERE workflow_id = :id ORDER BY seq
    """,
    "read_facts_of": f"""
        SELECT workflow_id, seq, kind, at, step, attempt, slot, data
        FROM facts WHERE workflow_id {IN_IDS} ORDER BY workflow_id, seq
    """,
    "child_outcome": f"""
        SELECT seq, kind, data FROM facts
        WHERE workflow_id = :id AND kind IN {in_list((*TERMINAL_KINDS, RETRY_REQUESTED))}
        ORDER BY seq DESC LIMIT 1
    """,
    "append_fact": """
        INSERT INTO facts (workflow_id, seq, kind, step, attempt, slot, data, at, service)
        VALUES (:id, :seq, :kind, :step, :attempt, :slot, :data, :at, :service)
        ON CONFLICT (workflow_id, slot) WHERE slot IS NOT NULL DO NOTHING
    """,
    # The events a workflow holds, and how many of one name (its cap and whether it wakes
    # the supervisor: core.budget).
    "event_tally": """
        SELECT count(*), COALESCE(SUM(CASE WHEN step = :event THEN 1 ELSE 0 END), 0)
        FROM facts WHERE workflow_id = :id AND kind = 'event_received'
    """,
    # Appending one event: the next seq, whether its dedupe slot is taken, whether the
    # workflow is open; three index lookups, whatever the length of its history.
    "append_point": """
        SELECT (SELECT COALESCE(MAX(seq), 0) FROM facts WHERE workflow_id = :id),
               EXISTS (SELECT 1 FROM facts WHERE workflow_id = :id AND slot = :slot),
               EXISTS (SELECT 1 FROM open_workflows WHERE workflow_id = :id)
    """,
    "insert_fact": """
        INSERT INTO facts (workflow_id, seq, kind, step, attempt, slot, data, at, service)
        VALUES (:id, :seq, :kind, :step, :attempt, :slot, :data, :at, :service)
    """,
    # -- open workflows (what the watchdog watches) ---------------------------------------------
    "open_workflow": """
        INSERT INTO open_workflows (workflow_id, since) VALUES (:id, :now)
        ON CONFLICT DO NOTHING
    """,
    "close_workflows": f"DELETE FROM open_workflows WHERE workflow_id {IN_IDS}",
    "unwatched_workflows": """
        SELECT o.workflow_id FROM open_workflows o
        WHERE o.since <= :before
          AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.workflow_id = o.workflow_id)
        ORDER BY o.since LIMIT :limit
    """,
    # -- tasks --------------------------------------------------------------------------------
    "wake_supervisor": """
        INSERT INTO tasks (workflow_id, kind, due_at, created_at)
        VALUES (:id, 'supervise', :due_at, :now)
        ON CONFLICT (workflow_id) WHERE kind = 'supervise'
        DO UPDATE SET due_at = min(tasks.due_at, excluded.due_at)
    """,
    "drop_idle_supervise": """
        DELETE FROM tasks WHERE workflow_id = :id AND kind = 'supervise' AND lease_owner IS NULL
    """,
    "drop_idle_supervise_of": f"""
        DELETE FROM tasks
        WHERE workflow_id {IN_IDS} AND kind = 'supervise' AND lease_owner IS NULL
    """,
    "insert_call_task": """
        INSERT INTO tasks (workflow_id, kind, step, attempt, due_at, payload, created_at, service)
        VALUES (:id, :kind, :step, :attempt, :due_at, :payload, :now, :service)
        ON CONFLICT (workflow_id, kind, step, attempt) WHERE kind <> 'supervise' DO NOTHING
    """,
    "insert_call_task_leased": """
        INSERT INTO tasks (workflow_id, kind, step, attempt, due_at, payload, created_at,
                           lease_owner, lease_expires_at)
        VALUES (:id, :kind, :step, :attempt, :due_at, :payload, :now, :owner, :until)
        ON CONFLICT (workflow_id, kind, step, attempt) WHERE kind <> 'supervise' DO NOTHING
        RETURNING id, workflow_id, kind, step, attempt, due_at, payload, lease_owner,
                  lease_expires_at, service
    """,
    "delete_task": "DELETE FROM tasks WHERE id = :task_id",
    "delete_tasks": f"DELETE FROM tasks WHERE id {IN_IDS}",
    # A workflow that ends withdraws the calls still queued for it (never those a worker
    # holds: they are in flight and will be recorded late).
    "withdraw_calls": """
        DELETE FROM tasks
        WHERE workflow_id = :id AND kind <> 'supervise' AND lease_owner IS NULL
        RETURNING kind, step, attempt
    """,
    "workflow_tasks": """
        SELECT id, workflow_id, kind, step, attempt, due_at, payload, lease_owner,
               lease_expires_at, service
        FROM tasks WHERE workflow_id = :id ORDER BY due_at
    """,
    "lock_task": """
        SELECT id, workflow_id, kind, step, attempt, due_at, payload, lease_owner,
               lease_expires_at, service
        FROM tasks WHERE id = :task_id
    """,
    # Highest priority first, and anything waiting longer than AGE_BOOST before all.
    "lease_tasks": lease_by_priority_sql(),
    "renew_leases": f"""
        UPDATE tasks SET lease_expires_at = :until
        WHERE id IN (SELECT id FROM tasks WHERE id {IN_IDS} AND lease_owner = :owner)
        RETURNING id
    """,
    "release_leases": f"""
        UPDATE tasks SET lease_owner = NULL, lease_expires_at = NULL
        WHERE id IN (SELECT id FROM tasks WHERE id {IN_IDS} AND lease_owner = :owner)
    """,
    "release_lease": """
        UPDATE tasks SET lease_owner = NULL, lease_expires_at = NULL
        WHERE id = :task_id AND lease_owner = :owner
    """,
    "expired_leases": """
        SELECT id, workflow_id, kind, step, attempt, due_at, payload, lease_owner,
               lease_expires_at, service
        FROM tasks WHERE lease_owner IS NOT NULL AND lease_expires_at < :now
        ORDER BY lease_expires_at LIMIT :limit
    """,
    "next_due": "SELECT MIN(due_at) FROM tasks WHERE lease_owner IS NULL",
    "publish_plan": """
        INSERT INTO workflow_definitions (name, plan, published_at) VALUES (:name, :plan, :now)
        ON CONFLICT (name) DO UPDATE SET plan = excluded.plan, published_at = excluded.published_at
    """,
    # -- remote services ---------------------------------------------------------------------
    "publish_service": """
        INSERT INTO service_gates (service, policy, tokens, tokens_at)
        VALUES (:service, :policy, :tokens, :now)
        ON CONFLICT (service) DO UPDATE SET policy = excluded.policy
    """,
    "get_gate": """
        SELECT service, policy, tokens, tokens_at, circuit, circuit_since, open_until, opens,
               reason
        FROM service_gates WHERE service = :service
    """,
    "lock_gate": """
        SELECT service, policy, tokens, tokens_at, circuit, circuit_since, open_until, opens,
               reason
        FROM service_gates WHERE service = :service
    """,
    "all_gates": """
        SELECT service, policy, tokens, tokens_at, circuit, circuit_since, open_until, opens,
               reason
        FROM service_gates ORDER BY service
    """,
    "save_circuit": """
        UPDATE service_gates SET circuit = :circuit, circuit_since = :since,
               open_until = :open_until, opens = :opens, reason = :reason
        WHERE service = :service
    """,
    "save_tokens": """
        UPDATE service_gates SET tokens = :tokens, tokens_at = :now WHERE service = :service
    """,
    "gated_due_services": """
        SELECT DISTINCT service FROM tasks
        WHERE lease_owner IS NULL AND service IS NOT NULL AND due_at <= :now
    """,
    "service_in_flight": """
        SELECT COUNT(*) FROM tasks WHERE lease_owner IS NOT NULL AND service = :service
    """,
    # The circuit's own list: a lost call never carries its service, so it is not in it.
    "recent_service_outcomes": f"""
        SELECT kind, at FROM facts
        WHERE service = :service AND at >= :since AND kind IN {in_list(OUTCOME_KINDS)}
        ORDER BY at DESC LIMIT :limit
    """,
    "last_service_seq": "SELECT COALESCE(MAX(seq), 0) FROM service_facts WHERE service = :service",
    "append_service_fact": """
        INSERT INTO service_facts (service, seq, kind, data, at)
        VALUES (:service, :seq, :kind, :data, :at)
    """,
    "wake_deferred_by_service": """
        UPDATE tasks SET due_at = :now
        WHERE kind = 'supervise' AND lease_owner IS NULL AND due_at > :now
          AND workflow_id IN (
            SELECT workflow_id FROM facts
            WHERE service = :service AND kind = 'attempt_deferred' AND at >= :since
          )
    """,
    # -- worker presence (operational, like the queue) -----------------------------------------
    "worker_alive": """
        INSERT INTO workers (id, host, pid, started_at, heartbeat_at, in_flight, concurrency,
                             clock_offset)
        VALUES (:id, :host, :pid, :now, :now, :in_flight, :concurrency, :clock_offset)
        ON CONFLICT (id) DO UPDATE SET heartbeat_at = :now, in_flight = :in_flight,
            stopped_at = NULL, clock_offset = :clock_offset
    """,
    "worker_stopped": "UPDATE workers SET stopped_at = :now, in_flight = 0 WHERE id = :id",
    "prune_workers": "DELETE FROM workers WHERE heartbeat_at < :before",
    "recent_workers": """
        SELECT id, host, pid, started_at, heartbeat_at, in_flight, concurrency, stopped_at,
               clock_offset
        FROM workers WHERE heartbeat_at >= :since ORDER BY started_at DESC LIMIT :limit
    """,
    # -- the store's clock (SQLite: the boot clock's anchor; see store/hostclock.py) ---------
    "create_store_clock": """
        CREATE TABLE IF NOT EXISTS store_clock (
            boot_id TEXT PRIMARY KEY, epoch_at_boot REAL NOT NULL
        )
    """,
    "anchor_clock": """
        INSERT INTO store_clock (boot_id, epoch_at_boot) VALUES (:boot_id, :epoch_at_boot)
        ON CONFLICT (boot_id) DO NOTHING
    """,
    "clock_anchor": "SELECT epoch_at_boot FROM store_clock WHERE boot_id = :boot_id",
    "schema_version": "SELECT MAX(version) FROM steadyhand_schema",
    "record_schema_version": """
        INSERT INTO steadyhand_schema (version, applied_at) VALUES (:version, :now)
    """,
}
