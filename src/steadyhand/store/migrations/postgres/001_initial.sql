-- steadyhand schema, version 1, PostgreSQL dialect (created inside the configured schema).
-- workflows and facts are append-only (triggers refuse UPDATE, DELETE and TRUNCATE);
-- tasks and open_workflows are the operational, rebuildable part.

CREATE TABLE IF NOT EXISTS workflows (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    idempotency_key TEXT UNIQUE,
    input TEXT NOT NULL,
    plan TEXT NOT NULL,
    parent_id TEXT,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS workflows_created ON workflows (created_at);
CREATE INDEX IF NOT EXISTS workflows_name ON workflows (name, created_at);

CREATE TABLE IF NOT EXISTS facts (
    workflow_id TEXT NOT NULL REFERENCES workflows (id),
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    step TEXT,
    attempt INTEGER,
    slot TEXT,
    data TEXT NOT NULL DEFAULT '{}',
    at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (workflow_id, seq)
);
CREATE UNIQUE INDEX IF NOT EXISTS facts_slot ON facts (workflow_id, slot) WHERE slot IS NOT NULL;
CREATE INDEX IF NOT EXISTS facts_terminal ON facts (kind, at)
    WHERE kind IN ('workflow_completed', 'workflow_compensated', 'workflow_failed');

CREATE OR REPLACE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'steadyhand % are append-only: % is refused', TG_TABLE_NAME, TG_OP
        USING HINT = 'facts record what happened; append a new fact instead';
END;
$$;
DROP TRIGGER IF EXISTS facts_append_only ON facts;
CREATE TRIGGER facts_append_only BEFORE UPDATE OR DELETE ON facts
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
DROP TRIGGER IF EXISTS facts_no_truncate ON facts;
CREATE TRIGGER facts_no_truncate BEFORE TRUNCATE ON facts
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
DROP TRIGGER IF EXISTS workflows_append_only ON workflows;
CREATE TRIGGER workflows_append_only BEFORE UPDATE OR DELETE ON workflows
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
DROP TRIGGER IF EXISTS workflows_no_truncate ON workflows;
CREATE TRIGGER workflows_no_truncate BEFORE TRUNCATE ON workflows
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

CREATE TABLE IF NOT EXISTS tasks (
    id BIGSERIAL PRIMARY KEY,
    workflow_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    step TEXT,
    attempt INTEGER,
    due_at DOUBLE PRECISION NOT NULL,
    payload TEXT NOT NULL DEFAULT '{}',
    lease_owner TEXT,
    lease_expires_at DOUBLE PRECISION,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS tasks_one_supervise ON tasks (workflow_id) WHERE kind = 'supervise';
CREATE UNIQUE INDEX IF NOT EXISTS tasks_one_call ON tasks (workflow_id, kind, step, attempt)
    WHERE kind <> 'supervise';
CREATE INDEX IF NOT EXISTS tasks_due ON tasks (due_at) WHERE lease_owner IS NULL;
CREATE INDEX IF NOT EXISTS tasks_leased ON tasks (lease_expires_at) WHERE lease_owner IS NOT NULL;
CREATE INDEX IF NOT EXISTS tasks_workflow ON tasks (workflow_id);

CREATE TABLE IF NOT EXISTS open_workflows (
    workflow_id TEXT PRIMARY KEY,
    since DOUBLE PRECISION NOT NULL
);
