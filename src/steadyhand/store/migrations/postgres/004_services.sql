-- steadyhand schema, version 4: remote services. Calls to an agent that belongs to a service
-- carry its name (tasks and outcome facts), so limits and circuit breaking can be applied
-- per service and grounded in the facts. service_facts is the append-only history of each
-- service's circuit; service_gates is its operational mirror plus limits and rate tokens.

ALTER TABLE facts ADD COLUMN IF NOT EXISTS service TEXT;
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS service TEXT;
CREATE INDEX IF NOT EXISTS facts_service ON facts (service, at) WHERE service IS NOT NULL;
CREATE INDEX IF NOT EXISTS tasks_service_due ON tasks (service, due_at)
    WHERE lease_owner IS NULL AND service IS NOT NULL;
CREATE INDEX IF NOT EXISTS tasks_service_leased ON tasks (service)
    WHERE lease_owner IS NOT NULL AND service IS NOT NULL;

CREATE TABLE IF NOT EXISTS service_gates (
    service TEXT PRIMARY KEY,
    policy TEXT NOT NULL,
    tokens DOUBLE PRECISION NOT NULL,
    tokens_at DOUBLE PRECISION NOT NULL,
    circuit TEXT NOT NULL DEFAULT 'closed',
    circuit_since DOUBLE PRECISION,
    open_until DOUBLE PRECISION,
    opens INTEGER NOT NULL DEFAULT 0,
    reason TEXT
);

CREATE TABLE IF NOT EXISTS service_facts (
    service TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL DEFAULT '{}',
    at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (service, seq)
);
DROP TRIGGER IF EXISTS service_facts_append_only ON service_facts;
CREATE TRIGGER service_facts_append_only BEFORE UPDATE OR DELETE ON service_facts
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
DROP TRIGGER IF EXISTS service_facts_no_truncate ON service_facts;
CREATE TRIGGER service_facts_no_truncate BEFORE TRUNCATE ON service_facts
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
