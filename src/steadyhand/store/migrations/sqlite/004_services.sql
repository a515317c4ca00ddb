-- steadyhand schema, version 4: remote services. Calls to an agent that belongs to a service
-- carry its name (tasks and outcome facts), so limits and circuit breaking can be applied
-- per service and grounded in the facts. service_facts is the append-only history of each
-- service's circuit; service_gates is its operational mirror plus limits and rate tokens.

ALTER TABLE facts ADD COLUMN service TEXT;
ALTER TABLE tasks ADD COLUMN service TEXT;
CREATE INDEX IF NOT EXISTS facts_service ON facts (service, at) WHERE service IS NOT NULL;
CREATE INDEX IF NOT EXISTS tasks_service_due ON tasks (service, due_at)
    WHERE lease_owner IS NULL AND service IS NOT NULL;
CREATE INDEX IF NOT EXISTS tasks_service_leased ON tasks (service)
    WHERE lease_owner IS NOT NULL AND service IS NOT NULL;

CREATE TABLE IF NOT EXISTS service_gates (
    service TEXT PRIMARY KEY,
    policy TEXT NOT NULL,
    tokens REAL NOT NULL,
    tokens_at REAL NOT NULL,
    circuit TEXT NOT NULL DEFAULT 'closed',
    circuit_since REAL,
    open_until REAL,
    opens INTEGER NOT NULL DEFAULT 0,
    reason TEXT
);

CREATE TABLE IF NOT EXISTS service_facts (
    service TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL DEFAULT '{}',
    at REAL NOT NULL,
    PRIMARY KEY (service, seq)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS service_facts_refuse_update BEFORE UPDATE ON service_facts
BEGIN SELECT RAISE(ABORT, 'steadyhand service_facts are append-only: UPDATE is refused'); END;
CREATE TRIGGER IF NOT EXISTS service_facts_refuse_delete BEFORE DELETE ON service_facts
BEGIN SELECT RAISE(ABORT, 'steadyhand service_facts are append-only: DELETE is refused'); END;
